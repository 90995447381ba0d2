/* residual.c — the residual connection on CPU: out = a + b; backward da += dout, db += dout.
 *
 * Pure streaming: one vectorised loop, elements split among threads when there are enough of them. Elementwise, so
 * out may be a or b, and da may be dout (the residual stream's gradient passing straight through). */
#include "ops/cpu/cpu_dense.h"

dl_status dl_cpu_residual_forward(void *state, float *out, const float *a, const float *b, size_t n) {
    (void)state;
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
    return DL_OK;
}

dl_status dl_cpu_residual_backward(void *state, float *da, float *db, const float *dout, size_t n) {
    (void)state;
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = dout[i];
        da[i] += g;
        db[i] += g;
    }
    return DL_OK;
}
