/* norm.c — Σx² (for global-norm gradient clipping) and x *= factor (to apply the clip) on the CPU.
 *
 * The sum is taken in double: a float sum of millions of squares loses the small ones. Each thread sums a
 * contiguous slice into eight double lanes (so the loop vectorises without reassociating anything), folds the
 * lanes in a fixed tree, and the per-thread partials are added in thread order afterwards. The same input and
 * thread count therefore give the same bits every time; the partials live on the stack, so nothing is allocated. */
#include <omp.h>

#include "ops/cpu/cpu_optim.h"

/* Most threads whose partial sums are kept; a larger team is capped to this many for the sum. */
#define SUMSQ_MAX_PARTS 256

static double sumsq_range(const float *x, size_t n) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            double t = (double)x[i + l];
            lane[l] += t * t;
        }
    for (int l = 0; i + (size_t)l < n; l++) {
        double t = (double)x[i + (size_t)l];
        lane[l] += t * t;
    }
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* *host_result = Σ x[i]² in double. */
dl_status dl_cpu_sumsq(void *state, double *host_result, const float *x, size_t n) {
    (void)state;
    double part[SUMSQ_MAX_PARTS];
    int parts = 1;
    int team = omp_get_max_threads();
    if (team > SUMSQ_MAX_PARTS)
        team = SUMSQ_MAX_PARTS;
    if (n < DL_CPU_PARALLEL_MIN)
        team = 1;
    if (team == 1) {
        part[0] = sumsq_range(x, n);
    } else {
#pragma omp parallel num_threads(team)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t lo, hi;
            dl_cpu_slice(n, t, nt, 64, &lo, &hi);
            part[t] = sumsq_range(x + lo, hi - lo);
#pragma omp master
            parts = nt;
        }
    }
    double total = 0.0;
    for (int t = 0; t < parts; t++)
        total += part[t];
    *host_result = total;
    return DL_OK;
}

/* x[i] *= factor. */
dl_status dl_cpu_scale(void *state, float *x, size_t n, float factor) {
    (void)state;
#pragma omp parallel if (n >= DL_CPU_PARALLEL_MIN)
    {
        size_t lo, hi;
        dl_cpu_slice(n, omp_get_thread_num(), omp_get_num_threads(), 64, &lo, &hi);
        float *restrict p = x;
        for (size_t i = lo; i < hi; i++)
            p[i] = p[i] * factor;
    }
    return DL_OK;
}
