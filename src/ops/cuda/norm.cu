/* norm.cu — Σx² in double (for the gradient norm, returned to the host) and x *= factor (for clipping).
 *
 * The sum is deterministic: a fixed number of blocks that depends only on n each sum a fixed grid-stride slice in
 * double and reduce it in a fixed tree order; one block then adds the block sums in order. The result is copied to
 * pinned host memory and the call waits for it, since the caller (clipping, logging, the all-reduce of ZeRO shards)
 * needs the number now. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define SUMSQ_THREADS 256
#define SUMSQ_MAX_BLOCKS 1024

__device__ __forceinline__ double block_sum_d(double v, double *shared) {
    v = dl_warp_sum_d(v);
    if ((threadIdx.x & 31) == 0)
        shared[threadIdx.x >> 5] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < (int)(blockDim.x >> 5); w++)
            total += shared[w];
    return total; /* valid in thread 0 */
}

__global__ void __launch_bounds__(SUMSQ_THREADS) sumsq_partial_kernel(double *partial, const float *x, size_t n) {
    __shared__ double shared[SUMSQ_THREADS / 32];
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double v = (double)x[i];
        acc += v * v;
    }
    double total = block_sum_d(acc, shared);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = total;
}

__global__ void __launch_bounds__(SUMSQ_THREADS) sumsq_final_kernel(double *result, const double *partial, int count) {
    __shared__ double shared[SUMSQ_THREADS / 32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        acc += partial[i];
    double total = block_sum_d(acc, shared);
    if (threadIdx.x == 0)
        *result = total;
}

__global__ void scale_kernel(float *x, size_t n, float factor) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= factor;
}

extern "C" dl_status dl_cuda_sumsq(void *state, double *host_result, const float *x, size_t n) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0) {
        *host_result = 0.0;
        return DL_OK;
    }
    /* Depends only on n, so the summation order (and the bits) never change for a given buffer size. */
    size_t blocks = (n + (size_t)SUMSQ_THREADS * 8 - 1) / ((size_t)SUMSQ_THREADS * 8);
    if (blocks > SUMSQ_MAX_BLOCKS)
        blocks = SUMSQ_MAX_BLOCKS;
    void *scratch;
    DL_CHECK(dl_cuda_scratch(st, (blocks + 1) * sizeof(double), &scratch));
    double *partial = (double *)scratch, *result = partial + blocks;
    sumsq_partial_kernel<<<(unsigned)blocks, SUMSQ_THREADS, 0, st->stream>>>(partial, x, n);
    DL_CUDA_CHECK_LAUNCH("sumsq partial");
    sumsq_final_kernel<<<1, SUMSQ_THREADS, 0, st->stream>>>(result, partial, (int)blocks);
    DL_CUDA_CHECK_LAUNCH("sumsq final");
    DL_CHECK(dl_cuda_pinned_ready(st));
    DL_CUDA_CHECK(cudaMemcpyAsync(&st->pinned->sumsq, result, sizeof(double), cudaMemcpyDeviceToHost, st->stream));
    DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    *host_result = st->pinned->sumsq;
    return DL_OK;
}

extern "C" dl_status dl_cuda_scale(void *state, float *x, size_t n, float factor) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0)
        return DL_OK;
    scale_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(x, n, factor);
    DL_CUDA_CHECK_LAUNCH("scale");
    return DL_OK;
}
