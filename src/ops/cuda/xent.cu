/* xent.cu — softmax cross-entropy over the vocabulary, fused: forward writes the per-token loss and log-sum-exp,
 * backward writes dlogits from logits and lse without materialising the softmax (in place when dlogits == logits,
 * the fused classifier of llm.c: the logits buffer becomes the gradient).
 *
 * One block per token row. Forward keeps a running (max, sum) per thread (online softmax: one exp per element, one
 * read of the row), merges them across the block, and writes lse = max + log(sum). Targets come from device memory:
 * negative means ignored (loss 0); one >= V is reported through the fault record and fails the op. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define XENT_THREADS 512

/* Merges (m2, s2) into (m, s): s·e^m + s2·e^m2 with the larger max as reference. */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float mx = fmaxf(m, m2);
    if (mx == -INFINITY)
        return; /* both empty */
    s = (m == -INFINITY ? 0.0f : s * expf(m - mx)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mx));
    m = mx;
}

__global__ void __launch_bounds__(XENT_THREADS)
    xent_forward_kernel(float *losses, float *lse, const float *logits, const int32_t *targets, int V,
                        dl_cuda_fault *fault) {
    __shared__ float sm[XENT_THREADS / 32], ss[XENT_THREADS / 32];
    size_t row = blockIdx.x;
    const float *x = logits + row * (size_t)V;
    float m = -INFINITY, s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float xv = x[v];
        if (xv > m) {
            s = (m == -INFINITY ? 0.0f : s * expf(m - xv)) + 1.0f;
            m = xv;
        } else {
            s += expf(xv - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        float s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) {
        sm[warp] = m;
        ss[warp] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float M = sm[0], S = ss[0];
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            lse_merge(M, S, sm[w], ss[w]);
        float l = M + logf(S);
        lse[row] = l;
        int t = targets[row];
        float loss = 0.0f;
        if (t >= V) {
            dl_cuda_report(fault, DL_FAULT_TARGET, (long long)row, t, V);
        } else if (t >= 0) {
            loss = l - x[t];
        }
        losses[row] = loss;
    }
}

/* IN_PLACE: dlogits == logits, overwritten; otherwise accumulated. */
template <int IN_PLACE>
__global__ void __launch_bounds__(XENT_THREADS)
    xent_backward_kernel(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                         const float *dlosses, int V, dl_cuda_fault *fault) {
    size_t row = blockIdx.x;
    int t = targets[row];
    float *dx = dlogits + row * (size_t)V;
    if (t < 0 || t >= V) {
        if (t >= V && threadIdx.x == 0)
            dl_cuda_report(fault, DL_FAULT_TARGET, (long long)row, t, V);
        if (IN_PLACE) /* an ignored row's gradient is zero: overwrite its logits */
            for (int v = threadIdx.x; v < V; v += blockDim.x)
                dx[v] = 0.0f;
        return;
    }
    const float *x = logits + row * (size_t)V;
    float l = lse[row], d = dlosses[row];
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float g = d * (expf(x[v] - l) - (v == t ? 1.0f : 0.0f));
        if (IN_PLACE)
            dx[v] = g;
        else
            dx[v] += g;
    }
}

extern "C" dl_status dl_cuda_xent_forward(void *state, float *losses, float *lse, const float *logits,
                                          const int32_t *targets, int N, int V) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0)
        return DL_OK;
    if (V <= 0)
        return DL_FAIL(DL_ERR_INVALID, "xent_forward (cuda): vocabulary size %d must be positive", V);
    DL_CHECK(dl_cuda_fault_reset(st));
    xent_forward_kernel<<<(unsigned)N, XENT_THREADS, 0, st->stream>>>(losses, lse, logits, targets, V, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("xent_forward");
    return dl_cuda_fault_check(st, "xent_forward");
}

extern "C" dl_status dl_cuda_xent_backward(void *state, float *dlogits, const float *logits, const float *lse,
                                           const int32_t *targets, const float *dlosses, int N, int V) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0)
        return DL_OK;
    if (V <= 0)
        return DL_FAIL(DL_ERR_INVALID, "xent_backward (cuda): vocabulary size %d must be positive", V);
    DL_CHECK(dl_cuda_fault_reset(st));
    if (dlogits == logits)
        xent_backward_kernel<1><<<(unsigned)N, XENT_THREADS, 0, st->stream>>>(dlogits, logits, lse, targets, dlosses,
                                                                              V, st->fault_dev);
    else
        xent_backward_kernel<0><<<(unsigned)N, XENT_THREADS, 0, st->stream>>>(dlogits, logits, lse, targets, dlosses,
                                                                              V, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("xent_backward");
    return dl_cuda_fault_check(st, "xent_backward");
}
