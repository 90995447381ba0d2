/* layernorm.c — LayerNorm over the last dimension on CPU: forward saving mean and rstd, and backward.
 *
 * Forward is one row per iteration, rows split among threads. The variance is taken in two passes (mean first,
 * then the mean squared deviation), with double accumulators: the one-pass E[x²] − E[x]² loses every digit when
 * activations have a large common offset. rstd = 1/sqrt(var + eps) with the biased variance, as ops.h says.
 * The mean is saved as a float, but rounding it costs up to half an ulp of the offset, which is a large error in
 * x − mean when the offset dwarfs the spread; so the output subtracts the float mean (exact for x near it) and then
 * the small remainder the rounding lost. Backward sees only the saved float mean, as a GPU kernel would.
 *
 * Backward has two shapes of work. The input gradient is per row:
 *     dinp += rstd · (dn − mean(dn) − x̂ · mean(dn · x̂)),  dn = weight · dout,  x̂ = (x − mean) · rstd,
 * so rows are split among threads. The weight and bias gradients are sums over rows of each column, so a second
 * pass splits the columns among threads instead; each thread adds its columns' rows in order (in double) and writes
 * its own columns once. No atomics, and the same bits for any thread count. The second pass re-reads inp and dout,
 * which costs less than a per-thread partial-sum buffer would (there is none to allocate per call). */
#include <math.h>
#include <omp.h>

#include "ops/cpu/cpu_dense.h"

dl_status dl_cpu_layernorm_forward(void *state, float *out, float *mean, float *rstd, const float *inp,
                                   const float *weight, const float *bias, int N, int C, float eps) {
    (void)state;
    size_t work = (size_t)N * (size_t)C;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *restrict x = inp + (size_t)n * C;
        float *restrict y = out + (size_t)n * C;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++)
            sum += (double)x[c];
        double md = sum / C;
        float m = (float)md;
        float delta = (float)(md - (double)m); /* what rounding the mean to float lost */
        double sq = 0.0;
#pragma omp simd reduction(+ : sq)
        for (int c = 0; c < C; c++) {
            double d = (double)x[c] - md;
            sq += d * d;
        }
        float rs = (float)(1.0 / sqrt(sq / C + (double)eps));
#pragma omp simd
        for (int c = 0; c < C; c++)
            y[c] = ((x[c] - m) - delta) * rs * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = rs;
    }
    return DL_OK;
}

/* dinp rows. */
static void input_gradient(float *restrict dinp, const float *restrict dout, const float *restrict inp,
                           const float *restrict weight, const float *restrict mean, const float *restrict rstd, int N,
                           int C) {
    size_t work = (size_t)N * (size_t)C;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *restrict x = inp + (size_t)n * C;
        const float *restrict g = dout + (size_t)n * C;
        float *restrict dx = dinp + (size_t)n * C;
        float m = mean[n], rs = rstd[n];
        double sum_dn = 0.0, sum_dn_xhat = 0.0;
#pragma omp simd reduction(+ : sum_dn, sum_dn_xhat)
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * rs;
            float dn = weight[c] * g[c];
            sum_dn += (double)dn;
            sum_dn_xhat += (double)dn * (double)xhat;
        }
        float a = (float)(sum_dn / C), b = (float)(sum_dn_xhat / C);
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * rs;
            float dn = weight[c] * g[c];
            dx[c] += rs * (dn - a - xhat * b);
        }
    }
}

enum { LN_STRIP = 64 }; /* columns one accumulator strip covers */

/* dweight[c] += Σ_n dout[n,c]·x̂[n,c]; dbias[c] += Σ_n dout[n,c]; columns split among threads. */
static void parameter_gradients(float *restrict dweight, float *restrict dbias, const float *restrict dout,
                                const float *restrict inp, const float *restrict mean, const float *restrict rstd,
                                int N, int C) {
    size_t work = (size_t)N * (size_t)C;
    int threads = work >= DL_CPU_PARALLEL_MIN ? omp_get_max_threads() : 1;
    int width = dl_cpu_column_block(C, threads);
    int blocks = (C + width - 1) / width;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int blk = 0; blk < blocks; blk++) {
        int block0 = blk * width;
        int len = C - block0 < width ? C - block0 : width;
        for (int s = 0; s < len; s += LN_STRIP) {
            int c0 = block0 + s;
            int w = len - s < LN_STRIP ? len - s : LN_STRIP;
            double acc_w[LN_STRIP], acc_b[LN_STRIP];
            for (int j = 0; j < w; j++)
                acc_w[j] = acc_b[j] = 0.0;
            for (int n = 0; n < N; n++) {
                const float *restrict x = inp + (size_t)n * C + c0;
                const float *restrict g = dout + (size_t)n * C + c0;
                float m = mean[n], rs = rstd[n];
#pragma omp simd
                for (int j = 0; j < w; j++) {
                    float xhat = (x[j] - m) * rs;
                    acc_w[j] += (double)g[j] * (double)xhat;
                    acc_b[j] += (double)g[j];
                }
            }
            for (int j = 0; j < w; j++) {
                dweight[c0 + j] += (float)acc_w[j];
                dbias[c0 + j] += (float)acc_b[j];
            }
        }
    }
}

dl_status dl_cpu_layernorm_backward(void *state, float *dinp, float *dweight, float *dbias, const float *dout,
                                    const float *inp, const float *weight, const float *mean, const float *rstd,
                                    int N, int C) {
    (void)state;
    input_gradient(dinp, dout, inp, weight, mean, rstd, N, C);
    parameter_gradients(dweight, dbias, dout, inp, mean, rstd, N, C);
    return DL_OK;
}
