/* rope.cu — rotary position embedding (GPT-NeoX half-split: element i pairs with i + D/2), forward and backward.
 *
 * The angle pos·theta^(-2i/D) and its sine and cosine are computed in double and rounded once to float. Angles grow
 * with the position (thousands of radians at long context), where a float angle would already be off by ~1e-4;
 * double makes the rotation the correctly rounded one, independent of how each libm evaluates it. One thread per
 * pair (token, head, i). out may equal inp: each thread reads its pair before writing it. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

/* MODE 0: out = R x; 1: out += Rᵀ x; 2: out = Rᵀ x (backward in place, dinp == dout, as ops.h specifies). */
template <int MODE>
__global__ void rope_kernel(float *out, const float *inp, const int32_t *positions, int N, int H, int D, int stride,
                            float theta) {
    int half = D / 2;
    size_t total = (size_t)N * (size_t)H * (size_t)half;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(t % (size_t)half);
        size_t nh = t / (size_t)half;
        int h = (int)(nh % (size_t)H);
        size_t n = nh / (size_t)H;
        double freq = pow((double)theta, -2.0 * (double)i / (double)D);
        double s, c;
        sincos((double)positions[n] * freq, &s, &c);
        float sn = (float)s, cs = (float)c;
        size_t base = n * (size_t)stride + (size_t)h * D + i;
        float x1 = inp[base], x2 = inp[base + half];
        if (MODE == 1) {
            out[base] += x1 * cs + x2 * sn;
            out[base + half] += x2 * cs - x1 * sn;
        } else if (MODE == 2) {
            out[base] = x1 * cs + x2 * sn;
            out[base + half] = x2 * cs - x1 * sn;
        } else {
            out[base] = x1 * cs - x2 * sn;
            out[base + half] = x1 * sn + x2 * cs;
        }
    }
}

static dl_status rope_launch(dl_cuda_state *st, int backward, float *out, const float *inp, const int32_t *positions,
                             int N, int H, int D, int stride, float theta) {
    const char *name = backward ? "rope_backward" : "rope_forward";
    if (D % 2 != 0)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): head size D = %d must be even", name, D);
    if (stride < H * D)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): token stride %d is below H*D = %d", name, stride, H * D);
    if (N <= 0 || H <= 0 || D <= 0)
        return DL_OK;
    size_t total = (size_t)N * (size_t)H * (size_t)(D / 2);
    unsigned grid = dl_cuda_grid(total, DL_CUDA_THREADS);
    if (backward && out == inp)
        rope_kernel<2><<<grid, DL_CUDA_THREADS, 0, st->stream>>>(out, inp, positions, N, H, D, stride, theta);
    else if (backward)
        rope_kernel<1><<<grid, DL_CUDA_THREADS, 0, st->stream>>>(out, inp, positions, N, H, D, stride, theta);
    else
        rope_kernel<0><<<grid, DL_CUDA_THREADS, 0, st->stream>>>(out, inp, positions, N, H, D, stride, theta);
    DL_CUDA_CHECK_LAUNCH(name);
    return DL_OK;
}

extern "C" dl_status dl_cuda_rope_forward(void *state, float *out, const float *inp, const int32_t *positions, int N,
                                          int H, int D, int stride, float theta) {
    return rope_launch((dl_cuda_state *)state, 0, out, inp, positions, N, H, D, stride, theta);
}

extern "C" dl_status dl_cuda_rope_backward(void *state, float *dinp, const float *dout, const int32_t *positions,
                                           int N, int H, int D, int stride, float theta) {
    return rope_launch((dl_cuda_state *)state, 1, dinp, dout, positions, N, H, D, stride, theta);
}
