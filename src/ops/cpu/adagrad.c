/* adagrad.c — the CPU AdaGrad steps with libffm's semantics: the squared-gradient accumulator starts at 1 (the
 * caller initialises it; that keeps the first steps from being huge) and the gradient includes the L2 term λ·w:
 *
 *     g = grad_scale·grad + λ·w;   G += g²;   w −= lr·g/√G
 *
 * Two entry points share one loop body: the dense update over a whole buffer (FM/FFM replicated tables, linear
 * terms) and the row update over the distinct rows a batch touched (sharded tables, where a rank applies the
 * gradients of the rows it owns). Elements are independent, so threads take contiguous slices (dense) or whole
 * rows (row update) and the result never depends on the thread count. The body exists in vector and scalar form
 * with the same operations in the same order (see cpu_optim.h), so both round identically. */
#include <math.h>
#include <omp.h>

#include "ops/cpu/cpu_optim.h"

static void adagrad_range(float *params, const float *grads, float *accum, size_t n, float lr, float weight_decay,
                          float grad_scale) {
    size_t i = 0;
#if DL_VW
    const dl_vf vlr = dl_v_set1(lr), vwd = dl_v_set1(weight_decay), vgs = dl_v_set1(grad_scale);
    for (; i + DL_VW <= n; i += DL_VW) {
        dl_vf p = dl_v_load(params + i);
        dl_vf g = dl_v_add(dl_v_mul(vgs, dl_v_load(grads + i)), dl_v_mul(vwd, p));
        dl_vf a = dl_v_add(dl_v_load(accum + i), dl_v_mul(g, g));
        dl_v_store(accum + i, a);
        dl_v_store(params + i, dl_v_sub(p, dl_v_div(dl_v_mul(vlr, g), dl_v_sqrt(a))));
    }
#endif
    for (; i < n; i++) {
        float p = params[i];
        float g = grad_scale * grads[i] + weight_decay * p;
        float a = accum[i] + g * g;
        accum[i] = a;
        params[i] = p - (lr * g) / sqrtf(a);
    }
}

/* AdaGrad over n elements as documented in ops.h. */
dl_status dl_cpu_adagrad_update(void *state, float *params, const float *grads, float *accum, size_t n, float lr,
                                float weight_decay, float grad_scale) {
    (void)state;
#pragma omp parallel if (n >= DL_CPU_PARALLEL_MIN)
    {
        size_t lo, hi;
        dl_cpu_slice(n, omp_get_thread_num(), omp_get_num_threads(), 64, &lo, &hi);
        adagrad_range(params + lo, grads + lo, accum + lo, hi - lo, lr, weight_decay, grad_scale);
    }
    return DL_OK;
}

/* AdaGrad on table rows rows[0..num_rows_touched) of row_floats floats each; the gradient of rows[i] is
 * grads[i·row_floats ...]. Rows are meant to be distinct (ops.h), which nobody can check here without scratch
 * memory, so threads split the table by row range rather than the list by position: each thread walks the whole
 * list and updates only the rows it owns. A repeated row is then applied twice, in list order, by one thread: a
 * defined result and never a data race. */
dl_status dl_cpu_adagrad_rows_update(void *state, float *table, float *accum, const float *grads,
                                     const int32_t *rows, int num_rows_touched, int row_floats, float lr,
                                     float weight_decay) {
    (void)state;
    size_t work = (size_t)num_rows_touched * (size_t)row_floats;
    int32_t max_row = 0;
    for (int i = 0; i < num_rows_touched; i++)
        max_row = rows[i] > max_row ? rows[i] : max_row;
#pragma omp parallel if (work >= DL_CPU_PARALLEL_MIN)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t span = (int64_t)max_row + 1;
        int64_t lo = span * t / nt, hi = span * (t + 1) / nt;
        for (int i = 0; i < num_rows_touched; i++) {
            if (rows[i] < lo || rows[i] >= hi)
                continue;
            size_t at = (size_t)rows[i] * (size_t)row_floats;
            adagrad_range(table + at, grads + (size_t)i * (size_t)row_floats, accum + at, (size_t)row_floats, lr,
                          weight_decay, 1.0f);
        }
    }
    return DL_OK;
}
