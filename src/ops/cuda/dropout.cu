/* dropout.cu — inverted dropout with a mask regenerated from Philox, never stored.
 *
 * Element i is kept when dl_philox_uniform(dl_philox_word(seed, stream, i)) >= p: the same function the CPU calls
 * (core/philox.h is host and device code), so both backends drop the same elements bit for bit. Word i lives in
 * Philox block i/4, so each thread handles four consecutive elements from one block evaluation. Kept elements are
 * scaled by 1/(1-p), computed once in float like the CPU. */
#include "core/philox.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

/* backward = 0: out = mask(inp); backward = 1: out += mask(inp) (inp is dout). */
template <int BACKWARD>
__global__ void dropout_kernel(float *out, const float *inp, size_t n, float p, float scale, uint64_t seed,
                               uint64_t stream) {
    size_t groups = (n + 3) / 4;
    for (size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x; g < groups; g += (size_t)gridDim.x * blockDim.x) {
        uint32_t words[4];
        dl_philox_block(seed, stream, (uint64_t)g, words);
#pragma unroll
        for (int lane = 0; lane < 4; lane++) {
            size_t i = g * 4 + lane;
            if (i >= n)
                break;
            float y = dl_philox_uniform(words[lane]) >= p ? inp[i] * scale : 0.0f;
            if (BACKWARD)
                out[i] += y;
            else
                out[i] = y;
        }
    }
}

static dl_status dropout_launch(dl_cuda_state *st, int backward, float *out, const float *inp, size_t n, float p,
                                uint64_t seed, uint64_t stream) {
    if (!(p >= 0.0f && p < 1.0f))
        return DL_FAIL(DL_ERR_INVALID, "dropout_%s (cuda): p = %g is outside [0, 1)", backward ? "backward" : "forward",
                       (double)p);
    if (n == 0)
        return DL_OK;
    float scale = 1.0f / (1.0f - p);
    unsigned grid = dl_cuda_grid((n + 3) / 4, DL_CUDA_THREADS);
    if (backward)
        dropout_kernel<1><<<grid, DL_CUDA_THREADS, 0, st->stream>>>(out, inp, n, p, scale, seed, stream);
    else
        dropout_kernel<0><<<grid, DL_CUDA_THREADS, 0, st->stream>>>(out, inp, n, p, scale, seed, stream);
    DL_CUDA_CHECK_LAUNCH(backward ? "dropout_backward" : "dropout_forward");
    return DL_OK;
}

extern "C" dl_status dl_cuda_dropout_forward(void *state, float *out, const float *inp, size_t n, float p,
                                             uint64_t seed, uint64_t stream) {
    return dropout_launch((dl_cuda_state *)state, 0, out, inp, n, p, seed, stream);
}

extern "C" dl_status dl_cuda_dropout_backward(void *state, float *dinp, const float *dout, size_t n, float p,
                                              uint64_t seed, uint64_t stream) {
    return dropout_launch((dl_cuda_state *)state, 1, dinp, dout, n, p, seed, stream);
}
