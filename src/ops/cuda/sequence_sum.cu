/* sequence_sum.cu — per-document sums over a packed stream (DPO sums token log-probs per sequence) and the
 * broadcast backward.
 *
 * One block per document. The forward accumulates in double and reduces in a fixed tree order: deterministic, and
 * closer to the exact sum than any float order, so it agrees with the CPU to that backend's float rounding. The
 * backward is a gather (every token reads its document's gradient), so it needs no atomics. cu_seqlens lives in
 * device memory: a decreasing or negative boundary is reported through the fault record and fails the op. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define SEQSUM_THREADS 256

/* The document's [start, end), or a fault when the boundaries are not non-decreasing from 0. */
__device__ __forceinline__ bool seq_bounds(const int32_t *cu, int s, int &start, int &end, dl_cuda_fault *fault) {
    start = cu[s];
    end = cu[s + 1];
    if (start < 0 || end < start) {
        if (threadIdx.x == 0) {
            if (start < 0)
                dl_cuda_report(fault, DL_FAULT_OFFSETS, s, start, 0);
            else
                dl_cuda_report(fault, DL_FAULT_OFFSETS, s + 1, end, start);
        }
        return false;
    }
    return true;
}

__global__ void __launch_bounds__(SEQSUM_THREADS)
    sequence_sum_forward_kernel(float *out, const float *values, const int32_t *cu, dl_cuda_fault *fault) {
    __shared__ double partial[SEQSUM_THREADS / 32];
    int s = blockIdx.x, start, end;
    if (!seq_bounds(cu, s, start, end, fault)) {
        if (threadIdx.x == 0)
            out[s] = 0.0f;
        return;
    }
    double acc = 0.0;
    for (int n = start + (int)threadIdx.x; n < end; n += blockDim.x)
        acc += (double)values[n];
    acc = dl_warp_sum_d(acc);
    if ((threadIdx.x & 31) == 0)
        partial[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < SEQSUM_THREADS / 32; w++)
            total += partial[w];
        out[s] = (float)total;
    }
}

__global__ void __launch_bounds__(SEQSUM_THREADS)
    sequence_sum_backward_kernel(float *dvalues, const float *dout, const int32_t *cu, dl_cuda_fault *fault) {
    int s = blockIdx.x, start, end;
    if (!seq_bounds(cu, s, start, end, fault))
        return;
    float g = dout[s];
    for (int n = start + (int)threadIdx.x; n < end; n += blockDim.x)
        dvalues[n] += g;
}

extern "C" dl_status dl_cuda_sequence_sum_forward(void *state, float *out, const float *values,
                                                  const int32_t *cu_seqlens, int num_seqs) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (num_seqs <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    sequence_sum_forward_kernel<<<(unsigned)num_seqs, SEQSUM_THREADS, 0, st->stream>>>(out, values, cu_seqlens,
                                                                                       st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("sequence_sum_forward");
    return dl_cuda_fault_check(st, "sequence_sum_forward");
}

extern "C" dl_status dl_cuda_sequence_sum_backward(void *state, float *dvalues, const float *dout,
                                                   const int32_t *cu_seqlens, int num_seqs) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (num_seqs <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    sequence_sum_backward_kernel<<<(unsigned)num_seqs, SEQSUM_THREADS, 0, st->stream>>>(dvalues, dout, cu_seqlens,
                                                                                        st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("sequence_sum_backward");
    return dl_cuda_fault_check(st, "sequence_sum_backward");
}
