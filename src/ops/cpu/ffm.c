/* ffm.c — Juan et al.'s field-aware factorization machine on the CPU, forward and backward.
 *
 * Each table row holds one latent vector per field: latent[row, field, 0..kpad). For a batch row with entries
 * (row_i, field_i, x_i),
 *     logit = scale · Σ_{i<j} ⟨v[row_i, field_j], v[row_j, field_i]⟩ x_i x_j
 * and the gradient with respect to v[row_i, field_j] is dlogit·scale·Σ_{j≠i} v[row_j, field_i] x_i x_j. There is
 * no O(kn) shortcut (the vectors differ per pair), so the cost is n(n−1)/2 kpad-wide products per row.
 *
 * Forward gives each thread whole batch rows and accumulates all pairs of a row into eight float lanes (dl_f8),
 * folded once per row in a fixed tree (cpu_sparse.h), so the horizontal add is paid once per row, not per pair.
 * Backward visits, for every entry i whose table row the thread owns, all partners j in index order and adds
 * into v[row_i, field_j]: each table row gets its contributions in batch order for any thread count (row ownership,
 * cpu_sparse.h). The bodies are specialised for kpad 8, 16 and 32 so the lane loops become whole vectors. */
#include <omp.h>

#include "ops/cpu/cpu_sparse.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Backward prefetches the blocks of the batch row this many rows ahead, for tables of at least PREFETCH_MIN_BYTES
 * (below that the blocks are in cache already and the prefetch instructions are pure overhead). */
#define PREFETCH_AHEAD 2
#define PREFETCH_MIN_BYTES ((size_t)8 << 20)

/* Asks the cache for the whole latent block (all fields) of each entry of one batch row, for reading. A hashed table
 * is far larger than the caches and every entry's block sits somewhere random, so each row brings in about
 * n·num_fields·kpad·4/64 cache lines the hardware prefetcher cannot guess. Measured on a 75 MB table, this gains
 * 5-15 % in backward (whose read-modify-writes stall more) and nothing in forward, which therefore does without.
 * It changes no result. */
static inline void prefetch_blocks_read(const float *table, const int32_t *rows, int32_t e0, int32_t e1,
                                        size_t row_stride) {
    const size_t bytes = row_stride * sizeof(float);
    for (int32_t e = e0; e < e1; e++) {
        const char *p = (const char *)(table + (size_t)rows[e] * row_stride);
        for (size_t o = 0; o < bytes; o += 64)
            __builtin_prefetch(p + o, 0, 3);
    }
}

/* The same for the gradient blocks a thread owns, for writing. */
static inline void prefetch_blocks_write(float *table, const int32_t *rows, int32_t e0, int32_t e1, size_t row_stride,
                                         int64_t lo, int64_t hi) {
    const size_t bytes = row_stride * sizeof(float);
    for (int32_t e = e0; e < e1; e++) {
        if (rows[e] < lo || rows[e] >= hi)
            continue;
        char *p = (char *)(table + (size_t)rows[e] * row_stride);
        for (size_t o = 0; o < bytes; o += 64)
            __builtin_prefetch(p + o, 1, 3);
    }
}

static ALWAYS_INLINE float ffm_row_forward(const float *latent, const int32_t *rows, const int32_t *fields,
                                           const float *values, int32_t e0, int32_t e1, size_t row_stride,
                                           int kpad) {
    dl_f8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int32_t i = e0; i < e1; i++) {
        const float xi = values[i];
        const float *vi = latent + (size_t)rows[i] * row_stride;
        const size_t fi = (size_t)fields[i] * (size_t)kpad;
        for (int32_t j = i + 1; j < e1; j++) {
            const float *a = vi + (size_t)fields[j] * (size_t)kpad;
            const float *c = latent + (size_t)rows[j] * row_stride + fi;
            const float xx = xi * values[j];
            int f = 0;
            for (; f + 8 <= kpad; f += 8)
                acc += (dl_f8_load(a + f) * dl_f8_load(c + f)) * xx;
            for (int l = 0; f + l < kpad; l++)
                acc[l] += (a[f + l] * c[f + l]) * xx;
        }
    }
    return dl_f8_fold(acc);
}

/* logits[b] = scale_b · Σ_{i<j} ⟨v[row_i, field_j], v[row_j, field_i]⟩ x_i x_j. */
dl_status dl_cpu_ffm_forward(void *state, float *logits, const float *latent, const int32_t *row_ptr,
                             const int32_t *rows, const int32_t *fields, const float *values,
                             const float *instance_scale, int B, int num_fields, int k, int kpad, int64_t num_rows) {
    (void)state;
    (void)k;
    (void)num_rows;
    const size_t row_stride = (size_t)num_fields * (size_t)kpad;
    size_t work = (size_t)row_ptr[B] * (size_t)kpad * 16;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_SPARSE_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        const int32_t e0 = row_ptr[b], e1 = row_ptr[b + 1];
        float pairs;
        switch (kpad) {
        case 8:
            pairs = ffm_row_forward(latent, rows, fields, values, e0, e1, row_stride, 8);
            break;
        case 16:
            pairs = ffm_row_forward(latent, rows, fields, values, e0, e1, row_stride, 16);
            break;
        case 32:
            pairs = ffm_row_forward(latent, rows, fields, values, e0, e1, row_stride, 32);
            break;
        default:
            pairs = ffm_row_forward(latent, rows, fields, values, e0, e1, row_stride, kpad);
            break;
        }
        logits[b] = pairs * (instance_scale ? instance_scale[b] : 1.0f);
    }
    return DL_OK;
}

/* dlatent[row_i, field_j, :] += g·x_i x_j·latent[row_j, field_i, :] for every ordered partner j ≠ i of entry i. */
static ALWAYS_INLINE void ffm_entry_backward(float *dvi, const float *latent, const int32_t *rows,
                                             const int32_t *fields, const float *values, int32_t e0, int32_t e1,
                                             int32_t i, float g, size_t row_stride, int kpad) {
    const float xi = values[i];
    const size_t fi = (size_t)fields[i] * (size_t)kpad;
    for (int32_t j = e0; j < e1; j++) {
        if (j == i)
            continue;
        float *d = dvi + (size_t)fields[j] * (size_t)kpad;
        const float *c = latent + (size_t)rows[j] * row_stride + fi;
        const float gg = g * (xi * values[j]);
        int f = 0;
        for (; f + 8 <= kpad; f += 8)
            dl_f8_store(d + f, dl_f8_load(d + f) + dl_f8_load(c + f) * gg);
        for (; f < kpad; f++)
            d[f] += gg * c[f];
    }
}

/* dlatent += ∂(Σ_b dlogits[b]·logit_b)/∂latent, at exactly the (row_i, field_j) vectors forward read. */
dl_status dl_cpu_ffm_backward(void *state, float *dlatent, const float *dlogits, const float *latent,
                              const int32_t *row_ptr, const int32_t *rows, const int32_t *fields,
                              const float *values, const float *instance_scale, int B, int num_fields, int k,
                              int kpad, int64_t num_rows) {
    (void)state;
    (void)k;
    const size_t row_stride = (size_t)num_fields * (size_t)kpad;
    size_t work = (size_t)row_ptr[B] * (size_t)kpad * 32;
    const int prefetch = (size_t)num_rows * row_stride * sizeof(float) >= PREFETCH_MIN_BYTES;
#pragma omp parallel if (work >= DL_CPU_SPARSE_PARALLEL_MIN)
    {
        int64_t lo, hi;
        dl_cpu_owned_rows(num_rows, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int b = 0; b < B; b++) {
            const int32_t e0 = row_ptr[b], e1 = row_ptr[b + 1];
            if (prefetch && b + PREFETCH_AHEAD < B) {
                const int32_t p0 = row_ptr[b + PREFETCH_AHEAD], p1 = row_ptr[b + PREFETCH_AHEAD + 1];
                prefetch_blocks_read(latent, rows, p0, p1, row_stride);
                prefetch_blocks_write(dlatent, rows, p0, p1, row_stride, lo, hi);
            }
            const float g = dlogits[b] * (instance_scale ? instance_scale[b] : 1.0f);
            for (int32_t i = e0; i < e1; i++) {
                const int32_t r = rows[i];
                if (r < lo || r >= hi)
                    continue;
                float *dvi = dlatent + (size_t)r * row_stride;
                switch (kpad) {
                case 8:
                    ffm_entry_backward(dvi, latent, rows, fields, values, e0, e1, i, g, row_stride, 8);
                    break;
                case 16:
                    ffm_entry_backward(dvi, latent, rows, fields, values, e0, e1, i, g, row_stride, 16);
                    break;
                case 32:
                    ffm_entry_backward(dvi, latent, rows, fields, values, e0, e1, i, g, row_stride, 32);
                    break;
                default:
                    ffm_entry_backward(dvi, latent, rows, fields, values, e0, e1, i, g, row_stride, kpad);
                    break;
                }
            }
        }
    }
    return DL_OK;
}
