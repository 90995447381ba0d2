/* convert.cu — fp32 <-> bf16 conversion. bf16 is the high half of an fp32; rounding to it is round-to-nearest-even
 * on the bit pattern (dl_f32_to_bf16_rne in cuda_common.cuh), the CPU's rule, so both give the same bits. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__global__ void f32_to_bf16_kernel(uint16_t *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = dl_f32_to_bf16_rne(inp[i]);
}

__global__ void bf16_to_f32_kernel(float *out, const uint16_t *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = dl_bf16_to_f32(inp[i]);
}

extern "C" dl_status dl_cuda_f32_to_bf16(void *state, dl_bf16 *out, const float *inp, size_t n) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0)
        return DL_OK;
    f32_to_bf16_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(out, inp, n);
    DL_CUDA_CHECK_LAUNCH("f32_to_bf16");
    return DL_OK;
}

extern "C" dl_status dl_cuda_bf16_to_f32(void *state, float *out, const dl_bf16 *inp, size_t n) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0)
        return DL_OK;
    bf16_to_f32_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(out, inp, n);
    DL_CUDA_CHECK_LAUNCH("bf16_to_f32");
    return DL_OK;
}
