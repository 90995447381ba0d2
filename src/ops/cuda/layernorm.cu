/* layernorm.cu — LayerNorm over the last dimension, forward (saving mean and rstd) and backward.
 *
 * One warp per row: the row is read once for the mean, once for the variance (two passes around the mean, so a large
 * mean does not cancel the variance away) and once to write; the second and third reads hit L1/L2. rstd is
 * 1/sqrtf(var + eps) with the IEEE sqrt, like the CPU. Backward computes dinp per row in the same warp layout and the
 * parameter gradients (sums over rows) with the deterministic column sum of cuda_colsum.cuh, so no float atomics. */
#include "ops/cuda/cuda_colsum.cuh"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define LN_WARPS 8

__global__ void __launch_bounds__(LN_WARPS * 32)
    layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                             const float *bias, int N, int C, float eps) {
    int lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= (size_t)N)
        return;
    const float *x = inp + row * (size_t)C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32)
        s += x[c];
    float m = dl_warp_sum(s) / (float)C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(dl_warp_sum(v) / (float)C + eps);
    float *y = out + row * (size_t)C;
    for (int c = lane; c < C; c += 32) {
        float n = (x[c] - m) * r;
        y[c] = n * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
    }
    if (lane == 0) {
        if (mean)
            mean[row] = m;
        if (rstd)
            rstd[row] = r;
    }
}

__global__ void __launch_bounds__(LN_WARPS * 32)
    layernorm_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *weight, const float *mean,
                          const float *rstd, int N, int C) {
    int lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= (size_t)N)
        return;
    const float *x = inp + row * (size_t)C;
    const float *g = dout + row * (size_t)C;
    float m = mean[row], r = rstd[row];
    float a = 0.0f, b = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dn = g[c] * (weight ? weight[c] : 1.0f);
        a += dn;
        b += dn * (x[c] - m) * r;
    }
    float dnorm_mean = dl_warp_sum(a) / (float)C;
    float dnorm_norm_mean = dl_warp_sum(b) / (float)C;
    float *dx = dinp + row * (size_t)C;
    for (int c = lane; c < C; c += 32) {
        float dn = g[c] * (weight ? weight[c] : 1.0f);
        float n = (x[c] - m) * r;
        dx[c] += (dn - dnorm_mean - n * dnorm_norm_mean) * r;
    }
}

/* (dout·norm, dout) of element (n, c): the terms of dweight and dbias. */
struct ln_param_grads {
    const float *dout, *inp, *mean, *rstd;
    int C;
    __device__ void operator()(size_t n, int c, float v[2]) const {
        size_t i = n * (size_t)C + c;
        float g = dout[i];
        v[0] = g * (inp[i] - mean[n]) * rstd[n];
        v[1] = g;
    }
};

extern "C" dl_status dl_cuda_layernorm_forward(void *state, float *out, float *mean, float *rstd, const float *inp,
                                               const float *weight, const float *bias, int N, int C, float eps) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || C <= 0)
        return DL_OK;
    unsigned grid = (unsigned)((N + LN_WARPS - 1) / LN_WARPS);
    layernorm_forward_kernel<<<grid, LN_WARPS * 32, 0, st->stream>>>(out, mean, rstd, inp, weight, bias, N, C, eps);
    DL_CUDA_CHECK_LAUNCH("layernorm_forward");
    return DL_OK;
}

extern "C" dl_status dl_cuda_layernorm_backward(void *state, float *dinp, float *dweight, float *dbias,
                                                const float *dout, const float *inp, const float *weight,
                                                const float *mean, const float *rstd, int N, int C) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || C <= 0)
        return DL_OK;
    if (dinp) {
        unsigned grid = (unsigned)((N + LN_WARPS - 1) / LN_WARPS);
        layernorm_dinp_kernel<<<grid, LN_WARPS * 32, 0, st->stream>>>(dinp, dout, inp, weight, mean, rstd, N, C);
        DL_CUDA_CHECK_LAUNCH("layernorm_backward dinp");
    }
    if (dweight || dbias) {
        dl_colsum_dst<2> dst = {{dweight, dbias}};
        ln_param_grads f = {dout, inp, mean, rstd, C};
        DL_CHECK(dl_cuda_colsum<2>(st, dst, N, C, f, "layernorm_backward dweight/dbias"));
    }
    return DL_OK;
}
