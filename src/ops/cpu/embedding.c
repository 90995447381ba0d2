/* embedding.c — token (+ learned position) embedding lookup on CPU, and its backward.
 *
 * Forward is a gather: one row of wte (and of wpe) per token, tokens split among threads.
 *
 * Backward is a scatter-add into the rows the batch used, where two tokens with the same id hit the same row. Float
 * atomics would make the sums depend on thread timing, and exact resume needs bit-identical gradients, so instead
 * each thread owns a block of columns of every row: it walks all N tokens in order and adds only its columns. Every
 * element of dwte then receives its contributions in token order 0..N-1 whatever the thread count, and no two threads
 * ever touch the same float. Tokens are read once per thread, which is nothing next to the N·C floats of dout.
 *
 * Ids and positions come from data files; both are checked before anything is written, and a bad one fails naming
 * the index and the value. */
#include <omp.h>

#include "ops/cpu/cpu_dense.h"

static dl_status check_ids(const char *op, const char *what, const int32_t *ids, int N, int limit,
                           const char *limit_name) {
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0 || ids[n] >= limit) {
            dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: %s[%d] = %d is outside [0, %s = %d)", op, what, n, (int)ids[n],
                                  limit_name, limit);
            dl_error_hint("the data does not fit the model: token ids must be below its vocabulary size and "
                          "positions below its context length");
            return s;
        }
    }
    return DL_OK;
}

dl_status dl_cpu_embedding_forward(void *state, float *out, const int32_t *tokens, const int32_t *positions,
                                   const float *wte, const float *wpe, int N, int C, int V, int max_pos) {
    (void)state;
    DL_CHECK(check_ids("embedding_forward", "tokens", tokens, N, V, "V"));
    if (positions)
        DL_CHECK(check_ids("embedding_forward", "positions", positions, N, max_pos, "max_pos"));
    size_t work = (size_t)N * (size_t)C;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        float *restrict o = out + (size_t)n * C;
        const float *restrict t = wte + (size_t)tokens[n] * C;
        if (positions) {
            const float *restrict p = wpe + (size_t)positions[n] * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] = t[c] + p[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] = t[c];
        }
    }
    return DL_OK;
}

/* dtable[ids[n], c0:c0+w] += dout[n, c0:c0+w] for n = 0..N-1 in order. */
static void scatter_columns(float *restrict dtable, const float *restrict dout, const int32_t *ids, int N, int C,
                            int c0, int w) {
    for (int n = 0; n < N; n++) {
        float *restrict d = dtable + (size_t)ids[n] * C + c0;
        const float *restrict g = dout + (size_t)n * C + c0;
#pragma omp simd
        for (int j = 0; j < w; j++)
            d[j] += g[j];
    }
}

dl_status dl_cpu_embedding_backward(void *state, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                                    const int32_t *positions, int N, int C, int V, int max_pos) {
    (void)state;
    DL_CHECK(check_ids("embedding_backward", "tokens", tokens, N, V, "V"));
    if (positions)
        DL_CHECK(check_ids("embedding_backward", "positions", positions, N, max_pos, "max_pos"));
    size_t work = (size_t)N * (size_t)C;
    int threads = work >= DL_CPU_PARALLEL_MIN ? omp_get_max_threads() : 1;
    int width = dl_cpu_column_block(C, threads);
    int blocks = (C + width - 1) / width;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * width;
        int w = C - c0 < width ? C - c0 : width;
        scatter_columns(dwte, dout, tokens, N, C, c0, w);
        if (positions)
            scatter_columns(dwpe, dout, positions, N, C, c0, w);
    }
    return DL_OK;
}
