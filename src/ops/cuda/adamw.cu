/* adamw.cu — the AdamW update, one thread per parameter, fp32 master weights and moments.
 *
 * The bias corrections 1 − β^step are computed once on the host in double and rounded to float, then each element
 * follows ops.h's formula in float in the same order as the CPU (m̂/(√v̂ + eps) + wd·p), with IEEE sqrt and division,
 * so the two backends agree to a rounding or two per step. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__global__ void adamw_kernel(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, float bc1, float bc2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grad_scale * grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        float p = params[i];
        params[i] = p - lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
    }
}

extern "C" dl_status dl_cuda_adamw_update(void *state, float *params, const float *grads, float *m, float *v,
                                          size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                                          float grad_scale, int64_t step) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (step < 1)
        return DL_FAIL(DL_ERR_INVALID, "adamw_update (cuda): step %lld must be >= 1 (it is 1-based)", (long long)step);
    if (n == 0)
        return DL_OK;
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    adamw_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(
        params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, bc1, bc2);
    DL_CUDA_CHECK_LAUNCH("adamw_update");
    return DL_OK;
}
