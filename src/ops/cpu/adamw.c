/* adamw.c — the CPU AdamW step (Loshchilov & Hutter, decoupled weight decay), one pass over params, grads, m, v.
 *
 * Every element's update is independent, so the threads take contiguous slices and the result is the same for any
 * thread count. The bias corrections 1 − βᵗ are computed once per call in double (βᵗ underflows gracefully for
 * large steps) and rounded to float, as the CUDA kernel does. The loop body exists twice, vector and scalar, with
 * the same operations in the same order (see cpu_optim.h for why), so the two agree bit for bit. */
#include <math.h>
#include <omp.h>

#include "ops/cpu/cpu_optim.h"

typedef struct adamw_coef {
    float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, grad_scale, bc1, bc2;
} adamw_coef;

static void adamw_range(float *params, const float *grads, float *m, float *v, size_t lo, size_t hi,
                        const adamw_coef *c) {
    size_t i = lo;
#if DL_VW
    const dl_vf lr = dl_v_set1(c->lr), b1 = dl_v_set1(c->beta1), omb1 = dl_v_set1(c->one_minus_beta1);
    const dl_vf b2 = dl_v_set1(c->beta2), omb2 = dl_v_set1(c->one_minus_beta2), eps = dl_v_set1(c->eps);
    const dl_vf wd = dl_v_set1(c->weight_decay), gs = dl_v_set1(c->grad_scale);
    const dl_vf bc1 = dl_v_set1(c->bc1), bc2 = dl_v_set1(c->bc2);
    for (; i + DL_VW <= hi; i += DL_VW) {
        dl_vf g = dl_v_mul(gs, dl_v_load(grads + i));
        dl_vf mi = dl_v_add(dl_v_mul(b1, dl_v_load(m + i)), dl_v_mul(omb1, g));
        dl_vf vi = dl_v_add(dl_v_mul(b2, dl_v_load(v + i)), dl_v_mul(omb2, dl_v_mul(g, g)));
        dl_vf mhat = dl_v_div(mi, bc1);
        dl_vf vhat = dl_v_div(vi, bc2);
        dl_vf step = dl_v_div(mhat, dl_v_add(dl_v_sqrt(vhat), eps));
        dl_vf p = dl_v_load(params + i);
        dl_v_store(params + i, dl_v_sub(p, dl_v_mul(lr, dl_v_add(step, dl_v_mul(wd, p)))));
        dl_v_store(m + i, mi);
        dl_v_store(v + i, vi);
    }
#endif
    for (; i < hi; i++) {
        float g = c->grad_scale * grads[i];
        float mi = c->beta1 * m[i] + c->one_minus_beta1 * g;
        float vi = c->beta2 * v[i] + c->one_minus_beta2 * (g * g);
        float mhat = mi / c->bc1;
        float vhat = vi / c->bc2;
        float step = mhat / (sqrtf(vhat) + c->eps);
        float p = params[i];
        params[i] = p - c->lr * (step + c->weight_decay * p);
        m[i] = mi;
        v[i] = vi;
    }
}

/* AdamW as documented in ops.h; step is 1-based. */
dl_status dl_cpu_adamw_update(void *state, float *params, const float *grads, float *m, float *v, size_t n, float lr,
                              float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                              int64_t step) {
    (void)state;
    adamw_coef c = {
        .lr = lr,
        .beta1 = beta1,
        .one_minus_beta1 = 1.0f - beta1,
        .beta2 = beta2,
        .one_minus_beta2 = 1.0f - beta2,
        .eps = eps,
        .weight_decay = weight_decay,
        .grad_scale = grad_scale,
        .bc1 = (float)(1.0 - pow((double)beta1, (double)step)),
        .bc2 = (float)(1.0 - pow((double)beta2, (double)step)),
    };
#pragma omp parallel if (n >= DL_CPU_PARALLEL_MIN)
    {
        size_t lo, hi;
        dl_cpu_slice(n, omp_get_thread_num(), omp_get_num_threads(), 64, &lo, &hi);
        adamw_range(params, grads, m, v, lo, hi, &c);
    }
    return DL_OK;
}
