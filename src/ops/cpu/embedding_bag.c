/* embedding_bag.c — weighted sums of table rows ("bags") and their scatter-add backward on the CPU.
 *
 * Bag b holds entries offsets[b]..offsets[b+1]-1; out[b] = Σ weights[j]·table[rows[j]]. Forward gives each thread
 * whole bags (outputs never overlap). Backward adds weights[j]·dout[b] into dtable[rows[j]], where bags share rows,
 * so it uses row ownership (cpu_sparse.h): bit-identical for any thread count, no atomics. */
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_sparse.h"

/* out[b, :] = Σ weights[j]·table[rows[j], :] over bag b (weights NULL = 1; an empty bag gives zeros). */
dl_status dl_cpu_embedding_bag_forward(void *state, float *out, const float *table, const int32_t *rows,
                                       const float *weights, const int32_t *offsets, int num_bags, int dim,
                                       int64_t num_rows) {
    (void)state;
    (void)num_rows;
    size_t work = (size_t)offsets[num_bags] * (size_t)dim;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_SPARSE_PARALLEL_MIN)
    for (int b = 0; b < num_bags; b++) {
        float *restrict o = out + (size_t)b * (size_t)dim;
        memset(o, 0, (size_t)dim * sizeof *o);
        for (int32_t j = offsets[b]; j < offsets[b + 1]; j++) {
            const float *restrict t = table + (size_t)rows[j] * (size_t)dim;
            const float w = weights ? weights[j] : 1.0f;
            for (int c = 0; c < dim; c++)
                o[c] += w * t[c];
        }
    }
    return DL_OK;
}

/* dtable[rows[j], :] += weights[j]·dout[b, :] for every entry j of every bag b. */
dl_status dl_cpu_embedding_bag_backward(void *state, float *dtable, const float *dout, const int32_t *rows,
                                        const float *weights, const int32_t *offsets, int num_bags, int dim,
                                        int64_t num_rows) {
    (void)state;
    size_t work = (size_t)offsets[num_bags] * (size_t)dim;
#pragma omp parallel if (work >= DL_CPU_SPARSE_PARALLEL_MIN)
    {
        int64_t lo, hi;
        dl_cpu_owned_rows(num_rows, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int b = 0; b < num_bags; b++) {
            const float *restrict d = dout + (size_t)b * (size_t)dim;
            for (int32_t j = offsets[b]; j < offsets[b + 1]; j++) {
                if (rows[j] < lo || rows[j] >= hi)
                    continue;
                float *restrict t = dtable + (size_t)rows[j] * (size_t)dim;
                const float w = weights ? weights[j] : 1.0f;
                for (int c = 0; c < dim; c++)
                    t[c] += w * d[c];
            }
        }
    }
    return DL_OK;
}
