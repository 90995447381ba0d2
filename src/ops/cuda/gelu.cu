/* gelu.cu — GELU (tanh approximation) forward and backward, elementwise.
 *
 * Same formula as the CPU, with the accurate tanhf (no fast-math), so the two agree to a few float roundings. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
        out[i] = 0.5f * x * (1.0f + t);
    }
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
        float sech2 = 1.0f - t * t;
        float local = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
        dinp[i] += local * dout[i];
    }
}

extern "C" dl_status dl_cuda_gelu_forward(void *state, float *out, const float *inp, size_t n) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0)
        return DL_OK;
    gelu_forward_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(out, inp, n);
    DL_CUDA_CHECK_LAUNCH("gelu_forward");
    return DL_OK;
}

extern "C" dl_status dl_cuda_gelu_backward(void *state, float *dinp, const float *inp, const float *dout, size_t n) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0)
        return DL_OK;
    gelu_backward_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(dinp, inp, dout, n);
    DL_CUDA_CHECK_LAUNCH("gelu_backward");
    return DL_OK;
}
