/* fm.c — Rendle's factorization machine on the CPU, forward and backward.
 *
 * The pairwise part Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j is computed with Rendle's O(kn) identity
 *     ½ Σ_f [(Σ_i v_if x_i)² − Σ_i v_if² x_i²]
 * and scaled by instance_scale[b]; bias and the linear terms are added unscaled. Forward saves s_f = Σ_i v_if x_i
 * (sum_vx, kpad floats per batch row, zero padding) because the gradient needs it:
 *     ∂logit/∂v_if = scale·x_i·(s_f − v_if x_i),   ∂logit/∂w_i = x_i,   ∂logit/∂bias = 1.
 * Forward gives each thread whole batch rows; backward scatters into table rows by row ownership (cpu_sparse.h).
 * The per-row bodies work in eight-float vectors (dl_f8) and are specialised for kpad 8, 16 and 32. */
#include <omp.h>

#include "ops/cpu/cpu_sparse.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE float fm_row_forward(float *sv, const float *linear, const float *latent, const int32_t *rows,
                                          const float *values, int32_t e0, int32_t e1, float scale, int kpad) {
    dl_f8 sq = {0, 0, 0, 0, 0, 0, 0, 0}, d = {0, 0, 0, 0, 0, 0, 0, 0};
    float lin = 0.0f;
    for (int f = 0; f < kpad; f++)
        sv[f] = 0.0f;
    for (int32_t e = e0; e < e1; e++) {
        const float x = values[e];
        const float *v = latent + (size_t)rows[e] * (size_t)kpad;
        if (linear)
            lin += linear[rows[e]] * x;
        int f = 0;
        for (; f + 8 <= kpad; f += 8) {
            dl_f8 t = dl_f8_load(v + f) * x;
            dl_f8_store(sv + f, dl_f8_load(sv + f) + t);
            sq += t * t;
        }
        for (int l = 0; f + l < kpad; l++) {
            float t = v[f + l] * x;
            sv[f + l] += t;
            sq[l] += t * t;
        }
    }
    int f = 0;
    for (; f + 8 <= kpad; f += 8) {
        dl_f8 s = dl_f8_load(sv + f);
        d += s * s;
    }
    for (int l = 0; f + l < kpad; l++)
        d[l] += sv[f + l] * sv[f + l];
    return lin + scale * (0.5f * dl_f8_fold(d - sq));
}

/* logits[b] = bias + Σ w_i x_i + scale_b·½Σ_f[(Σ v_if x_i)² − Σ v_if² x_i²]; sum_vx[b, f] = Σ_i v_if x_i. */
dl_status dl_cpu_fm_forward(void *state, float *logits, float *sum_vx, const float *linear, const float *latent,
                            const float *bias, const int32_t *row_ptr, const int32_t *rows, const float *values,
                            const float *instance_scale, int B, int k, int kpad, int64_t num_rows) {
    (void)state;
    (void)k;
    (void)num_rows;
    const float b0 = bias ? *bias : 0.0f;
    size_t work = (size_t)row_ptr[B] * (size_t)kpad * 4;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_SPARSE_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        float *sv = sum_vx + (size_t)b * (size_t)kpad;
        const float scale = instance_scale ? instance_scale[b] : 1.0f;
        const int32_t e0 = row_ptr[b], e1 = row_ptr[b + 1];
        float rest;
        switch (kpad) {
        case 8:
            rest = fm_row_forward(sv, linear, latent, rows, values, e0, e1, scale, 8);
            break;
        case 16:
            rest = fm_row_forward(sv, linear, latent, rows, values, e0, e1, scale, 16);
            break;
        case 32:
            rest = fm_row_forward(sv, linear, latent, rows, values, e0, e1, scale, 32);
            break;
        default:
            rest = fm_row_forward(sv, linear, latent, rows, values, e0, e1, scale, kpad);
            break;
        }
        logits[b] = b0 + rest;
    }
    return DL_OK;
}

static ALWAYS_INLINE void fm_entry_backward(float *dv, const float *v, const float *sv, float c, float x, int kpad) {
    int f = 0;
    for (; f + 8 <= kpad; f += 8)
        dl_f8_store(dv + f, dl_f8_load(dv + f) + (dl_f8_load(sv + f) - dl_f8_load(v + f) * x) * c);
    for (; f < kpad; f++)
        dv[f] += c * (sv[f] - v[f] * x);
}

/* dlinear[r] += dlogit·x, dlatent[r, f] += dlogit·scale·x·(sum_vx[f] − v_f x), dbias += Σ dlogit. dlinear and
 * dbias may be NULL. */
dl_status dl_cpu_fm_backward(void *state, float *dlinear, float *dlatent, float *dbias, const float *dlogits,
                             const float *sum_vx, const float *latent, const int32_t *row_ptr, const int32_t *rows,
                             const float *values, const float *instance_scale, int B, int k, int kpad,
                             int64_t num_rows) {
    (void)state;
    (void)k;
    if (dbias) {
        double total = 0.0;
        for (int b = 0; b < B; b++)
            total += (double)dlogits[b];
        *dbias += (float)total;
    }
    size_t work = (size_t)row_ptr[B] * (size_t)kpad * 3;
#pragma omp parallel if (work >= DL_CPU_SPARSE_PARALLEL_MIN)
    {
        int64_t lo, hi;
        dl_cpu_owned_rows(num_rows, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int b = 0; b < B; b++) {
            const float g = dlogits[b];
            const float gs = g * (instance_scale ? instance_scale[b] : 1.0f);
            const float *sv = sum_vx + (size_t)b * (size_t)kpad;
            for (int32_t e = row_ptr[b]; e < row_ptr[b + 1]; e++) {
                const int32_t r = rows[e];
                if (r < lo || r >= hi)
                    continue;
                const float x = values[e];
                if (dlinear)
                    dlinear[r] += g * x;
                float *dv = dlatent + (size_t)r * (size_t)kpad;
                const float *v = latent + (size_t)r * (size_t)kpad;
                switch (kpad) {
                case 8:
                    fm_entry_backward(dv, v, sv, gs * x, x, 8);
                    break;
                case 16:
                    fm_entry_backward(dv, v, sv, gs * x, x, 16);
                    break;
                default:
                    fm_entry_backward(dv, v, sv, gs * x, x, kpad);
                    break;
                }
            }
        }
    }
    return DL_OK;
}
