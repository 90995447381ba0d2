/* embedding.cu — token (+ learned position) embedding lookup and its backward.
 *
 * Forward is a gather, one thread per output float. The backward is a scatter-add (each token's gradient row goes
 * into its id's row of dwte, and into its position's row of dwpe), and repeated ids must meet there in a fixed order
 * for the result to be the same bits on every run, as on the CPU; float atomics would add them in whatever order
 * the threads happen to run. So the ids are sorted first, with their token indices as values (CUB's radix sort is
 * stable: equal ids keep ascending token order), and one block per run of equal ids sums that run's gradient rows in
 * a fixed order (four interleaved partial sums, then (s0 + s1) + (s2 + s3)) and adds the total once. Cost: the sort
 * (a few microseconds for a batch of tokens) and one pass over dout; the hot ids of a batch (spaces, punctuation)
 * become long runs read by one block, still far below the matmuls around them.
 *
 * Ids come from device memory; a bad id is skipped and reported through the fault record (cuda_common.cuh), failing
 * the op with DL_ERR_INVALID. */
#include <cub/device/device_radix_sort.cuh>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__global__ void embedding_forward_kernel(float *out, const int32_t *tokens, const int32_t *positions, const float *wte,
                                         const float *wpe, int N, int C, int V, int max_pos, dl_cuda_fault *fault) {
    size_t total = (size_t)N * (size_t)C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / (size_t)C;
        int c = (int)(i % (size_t)C);
        int tok = tokens[n];
        float v = 0.0f;
        if (tok < 0 || tok >= V) {
            if (c == 0)
                dl_cuda_report(fault, DL_FAULT_TOKEN, (long long)n, tok, V);
        } else {
            v = wte[(size_t)tok * C + c];
        }
        if (wpe) {
            int pos = positions[n];
            if (pos < 0 || pos >= max_pos) {
                if (c == 0)
                    dl_cuda_report(fault, DL_FAULT_POSITION, (long long)n, pos, max_pos);
            } else {
                v += wpe[(size_t)pos * C + c];
            }
        }
        out[i] = v;
    }
}

__global__ void embedding_iota_kernel(int32_t *v, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        v[i] = i;
}

/* One block per sorted position; the first position of each run of equal ids adds the run's rows of src into that
 * id's row of dst. keys are sorted ascending, order[j] is the token index of sorted position j. */
__global__ void __launch_bounds__(256)
    embedding_runs_add_kernel(float *dst, const float *src, const int32_t *keys, const int32_t *order, int N, int C,
                              int limit, int kind, dl_cuda_fault *fault) {
    const int i = blockIdx.x;
    const int key = keys[i];
    if (i > 0 && keys[i - 1] == key)
        return; /* not the first of its run */
    if (key < 0 || key >= limit) {
        if (threadIdx.x == 0)
            dl_cuda_report(fault, kind, order[i], key, limit);
        return;
    }
    /* The run ends at the first key above `key` (binary search: the keys are sorted). */
    int lo = i + 1, hi = N;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (keys[mid] == key)
            lo = mid + 1;
        else
            hi = mid;
    }
    const int end = lo;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int j = i;
        for (; j + 4 <= end; j += 4) {
            s0 += src[(size_t)order[j] * C + c];
            s1 += src[(size_t)order[j + 1] * C + c];
            s2 += src[(size_t)order[j + 2] * C + c];
            s3 += src[(size_t)order[j + 3] * C + c];
        }
        for (; j < end; j++)
            s0 += src[(size_t)order[j] * C + c];
        dst[(size_t)key * C + c] += (s0 + s1) + (s2 + s3);
    }
}

/* Scratch for one sort of N ids: sorted keys, token indices in and out, and CUB's temporary storage. */
typedef struct emb_sort_scratch {
    int32_t *keys, *iota, *order;
    void *temp;
    size_t temp_bytes;
} emb_sort_scratch;

static size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* dst[ids[n]] += src[n] for every token n, in a fixed order (see the top of the file). */
static dl_status embedding_scatter_add(dl_cuda_state *st, const emb_sort_scratch *sc, float *dst, const float *src,
                                       const int32_t *ids, int N, int C, int limit, int kind) {
    size_t temp_bytes = sc->temp_bytes;
    DL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sc->temp, temp_bytes, ids, sc->keys, sc->iota, sc->order, N, 0,
                                                  (int)(sizeof(int32_t) * 8), st->stream));
    embedding_runs_add_kernel<<<(unsigned)N, 256, 0, st->stream>>>(dst, src, sc->keys, sc->order, N, C, limit, kind,
                                                                   st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("embedding_backward runs");
    return DL_OK;
}

extern "C" dl_status dl_cuda_embedding_forward(void *state, float *out, const int32_t *tokens,
                                               const int32_t *positions, const float *wte, const float *wpe, int N,
                                               int C, int V, int max_pos) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || C <= 0)
        return DL_OK;
    if (!positions)
        wpe = NULL; /* wpe and positions are nullable together */
    DL_CHECK(dl_cuda_fault_reset(st));
    size_t total = (size_t)N * (size_t)C;
    embedding_forward_kernel<<<dl_cuda_grid(total, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(
        out, tokens, positions, wte, wpe, N, C, V, max_pos, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("embedding_forward");
    return dl_cuda_fault_check(st, "embedding_forward");
}

extern "C" dl_status dl_cuda_embedding_backward(void *state, float *dwte, float *dwpe, const float *dout,
                                                const int32_t *tokens, const int32_t *positions, int N, int C, int V,
                                                int max_pos) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || C <= 0)
        return DL_OK;
    if (!positions)
        dwpe = NULL;
    if (!dwte && !dwpe)
        return DL_OK;
    emb_sort_scratch sc;
    sc.temp = NULL;
    sc.temp_bytes = 0;
    DL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sc.temp, sc.temp_bytes, tokens, (int32_t *)NULL,
                                                  (const int32_t *)NULL, (int32_t *)NULL, N, 0,
                                                  (int)(sizeof(int32_t) * 8), st->stream));
    size_t ids = align256((size_t)N * sizeof(int32_t));
    void *scratch;
    DL_CHECK(dl_cuda_scratch(st, 3 * ids + align256(sc.temp_bytes), &scratch));
    sc.keys = (int32_t *)scratch;
    sc.iota = (int32_t *)((char *)scratch + ids);
    sc.order = (int32_t *)((char *)scratch + 2 * ids);
    sc.temp = (char *)scratch + 3 * ids;
    DL_CHECK(dl_cuda_fault_reset(st));
    embedding_iota_kernel<<<dl_cuda_grid((size_t)N, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(sc.iota, N);
    DL_CUDA_CHECK_LAUNCH("embedding_backward iota");
    if (dwte)
        DL_CHECK(embedding_scatter_add(st, &sc, dwte, dout, tokens, N, C, V, DL_FAULT_TOKEN));
    if (dwpe)
        DL_CHECK(embedding_scatter_add(st, &sc, dwpe, dout, positions, N, C, max_pos, DL_FAULT_POSITION));
    return dl_cuda_fault_check(st, "embedding_backward");
}
