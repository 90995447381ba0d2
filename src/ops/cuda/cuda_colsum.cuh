/* cuda_colsum.cuh — deterministic column sums over the rows of an [N, C] matrix, for the parameter gradients that
 * sum over tokens (matmul's dbias, layernorm's dweight and dbias).
 *
 * Float atomics would make these sums depend on thread timing. Instead the rows are cut into fixed chunks of
 * DL_COLSUM_ROWS (more for a huge N, so the chunks fit a grid); a first kernel sums each chunk's rows per column
 * (threads of a block take rows in a fixed stride, then add their partial sums in thread order), a second adds the
 * chunks in order and accumulates into the gradient. The chunking depends only on N, so the result is the same bits
 * on every run and every GPU model. Reads are coalesced along C (32 consecutive columns per block row). */
#ifndef DL_OPS_CUDA_COLSUM_CUH
#define DL_OPS_CUDA_COLSUM_CUH

#include "ops/cuda/cuda_common.cuh"

#define DL_COLSUM_ROWS 256

/* F is a functor with `__device__ void operator()(size_t n, int c, float v[NV]) const` giving the NV values of
 * element (n, c) to sum. */
template <int NV, class F>
__global__ void __launch_bounds__(256)
    dl_colsum_partial_kernel(float *partial, int N, int C, int chunks, int rows, F f) {
    __shared__ float sh[NV][8][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int chunk = blockIdx.y;
    float acc[NV];
#pragma unroll
    for (int k = 0; k < NV; k++)
        acc[k] = 0.0f;
    if (c < C) {
        long long end = min((long long)N, (long long)(chunk + 1) * rows);
        for (long long n = (long long)chunk * rows + threadIdx.y; n < end; n += 8) {
            float v[NV];
            f((size_t)n, c, v);
#pragma unroll
            for (int k = 0; k < NV; k++)
                acc[k] += v[k];
        }
    }
#pragma unroll
    for (int k = 0; k < NV; k++)
        sh[k][threadIdx.y][threadIdx.x] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
#pragma unroll
        for (int k = 0; k < NV; k++) {
            float s = 0.0f;
            for (int y = 0; y < 8; y++)
                s += sh[k][y][threadIdx.x];
            partial[((size_t)k * chunks + chunk) * C + c] = s;
        }
    }
}

template <int NV> struct dl_colsum_dst {
    float *d[NV]; /* nullable each */
};

template <int NV>
__global__ void dl_colsum_finish_kernel(dl_colsum_dst<NV> dst, const float *partial, int C, int chunks) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        if (!dst.d[k])
            continue;
        float s = 0.0f;
        for (int j = 0; j < chunks; j++)
            s += partial[((size_t)k * chunks + j) * C + c];
        dst.d[k][c] += s;
    }
}

/* dst[k][c] += Σ_n f(n, c)[k] for each non-NULL dst[k]. Uses the backend scratch. */
template <int NV, class F>
static dl_status dl_cuda_colsum(dl_cuda_state *st, dl_colsum_dst<NV> dst, int N, int C, F f, const char *what) {
    if (N <= 0 || C <= 0)
        return DL_OK;
    int rows = DL_COLSUM_ROWS;
    if ((N + rows - 1) / rows > 65535)
        rows = (int)(((long long)N + 65534) / 65535 + 7) / 8 * 8;
    int chunks = (N + rows - 1) / rows;
    void *scratch;
    DL_CHECK(dl_cuda_scratch(st, (size_t)NV * chunks * C * sizeof(float), &scratch));
    float *partial = (float *)scratch;
    dim3 grid((unsigned)((C + 31) / 32), (unsigned)chunks);
    dim3 block(32, 8);
    dl_colsum_partial_kernel<NV, F><<<grid, block, 0, st->stream>>>(partial, N, C, chunks, rows, f);
    DL_CUDA_CHECK_LAUNCH(what);
    dl_colsum_finish_kernel<NV><<<(unsigned)((C + 255) / 256), 256, 0, st->stream>>>(dst, partial, C, chunks);
    DL_CUDA_CHECK_LAUNCH(what);
    return DL_OK;
}

#endif
