/* residual.cu — the residual add and its backward (both gradients accumulate; either may be NULL). */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__global__ void residual_forward_kernel(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

/* One pass for both gradients, so dout is read once. */
__global__ void residual_backward_kernel(float *da, float *db, const float *dout, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = dout[i];
        if (da)
            da[i] += g;
        if (db)
            db[i] += g;
    }
}

extern "C" dl_status dl_cuda_residual_forward(void *state, float *out, const float *a, const float *b, size_t n) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0)
        return DL_OK;
    residual_forward_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(out, a, b, n);
    DL_CUDA_CHECK_LAUNCH("residual_forward");
    return DL_OK;
}

extern "C" dl_status dl_cuda_residual_backward(void *state, float *da, float *db, const float *dout, size_t n) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0 || (!da && !db))
        return DL_OK;
    residual_backward_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(da, db, dout, n);
    DL_CUDA_CHECK_LAUNCH("residual_backward");
    return DL_OK;
}
