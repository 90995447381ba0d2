/* sgd.c — the CPU SGD step, PyTorch's formulation without dampening or Nesterov:
 *
 *     g = grad_scale·grad + λ·p;   buf = μ·buf + g (μ > 0 only; buf starts at zero);   p −= lr·(μ > 0 ? buf : g)
 *
 * The weight decay is classic L2 (added to the gradient, so momentum carries it), unlike AdamW's decoupled decay.
 * Elementwise and free of square roots, so plain C vectorises; threads take contiguous slices and the result is
 * the same for any thread count. */
#include <omp.h>

#include "ops/cpu/cpu_optim.h"

/* SGD over n elements; momentum_buf is read and written only when momentum > 0. */
dl_status dl_cpu_sgd_update(void *state, float *params, const float *grads, float *momentum_buf, size_t n, float lr,
                            float momentum, float weight_decay, float grad_scale) {
    (void)state;
#pragma omp parallel if (n >= DL_CPU_PARALLEL_MIN)
    {
        size_t lo, hi;
        dl_cpu_slice(n, omp_get_thread_num(), omp_get_num_threads(), 64, &lo, &hi);
        float *restrict p = params;
        const float *restrict gr = grads;
        if (momentum > 0.0f) {
            float *restrict buf = momentum_buf;
            for (size_t i = lo; i < hi; i++) {
                float g = grad_scale * gr[i] + weight_decay * p[i];
                float b = momentum * buf[i] + g;
                buf[i] = b;
                p[i] = p[i] - lr * b;
            }
        } else {
            for (size_t i = lo; i < hi; i++) {
                float g = grad_scale * gr[i] + weight_decay * p[i];
                p[i] = p[i] - lr * g;
            }
        }
    }
    return DL_OK;
}
