/* fm_fused.c — Rendle's factorization machine on a fused (weights + AdaGrad accumulators) table, on the CPU.
 *
 * A row's pairwise term comes from Rendle's O(kn) identity ½·Σ_f[(Σ_i v_if x_i)² − Σ_i v_if² x_i²], times the
 * instance scale r; linear terms see x·√r (with r = 1/Σx² that is the row scaled to unit norm, as the pairwise term
 * sees it), the bias is added as is. Training is per instance like libffm's FFM (and
 * xLearn's FM): score the row, keep the sums s_f = Σ_i v_if x_i, then give each entry's vector one AdaGrad step with
 *     g = κ·scale·x_i·(s − v_i·x_i) + λ·v_i,   G += g²,   v_i −= η·g/√G,
 * the linear weight g = κ·x_i·√r + λ·w_i, and the bias g = κ. An FM row is one block [v | G] (kpad 4: 32 bytes) and,
 * with linear terms, (w, G_w) in the same 64-byte line, so an entry costs one cache line.
 *
 * Threads and prefetching as in ffm_fused.c: contiguous parts of the batch per thread, lock-free (Hogwild), the
 * rows of the instance PREFETCH_AHEAD ahead requested before each instance. */
#include <omp.h>

#include "ops/cpu/cpu_sparse_fused.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define PREFETCH_AHEAD 4
/* The widest kpad the kernels keep sums for (model.k <= 4096). */
#define FM_MAX_KPAD 4096

/* Fills s[0..kpad) with Σ v x and returns bias + Σ w x √scale + scale·½Σ_f(s_f² − Σ v_f² x²). */
static ALWAYS_INLINE float fm_row_sums(const dl_click_table *tb, const dl_click_rows *b, int row, float *s, int kpad) {
    const int32_t e0 = b->row_ptr[row], e1 = b->row_ptr[row + 1];
    const float scale = b->instance_scale ? b->instance_scale[row] : 1.0f;
    const size_t rf = (size_t)tb->row_floats;
    const float *T = tb->data;
    dl_v4 acc = dl_v4_set1(0.0f);
    for (int d = 0; d < kpad; d += 4) {
        dl_v4 sv = dl_v4_set1(0.0f), sq = dl_v4_set1(0.0f);
        for (int32_t e = e0; e < e1; e++) {
            dl_v4 xv = dl_v4_load(T + (size_t)b->rows[e] * rf + d) * dl_v4_set1(b->values[e]);
            sv += xv;
            sq += xv * xv;
        }
        dl_v4_store(s + d, sv);
        acc += sv * sv - sq;
    }
    float t = tb->bias ? tb->bias[0] : 0.0f;
    const float root = sqrtf(scale);
    if (tb->linear_offset >= 0)
        for (int32_t e = e0; e < e1; e++)
            t += T[(size_t)b->rows[e] * rf + (size_t)tb->linear_offset] * (b->values[e] * root);
    return t + scale * (0.5f * dl_v4_fold(acc));
}

static float fm_score(const dl_click_table *tb, const dl_click_rows *b, int row, float *s) {
    switch (tb->kpad) {
    case 4:
        return fm_row_sums(tb, b, row, s, 4);
    case 8:
        return fm_row_sums(tb, b, row, s, 8);
    default:
        return fm_row_sums(tb, b, row, s, tb->kpad);
    }
}

static ALWAYS_INLINE void fm_update_entries(dl_click_table *tb, const dl_click_rows *b, int row, const float *s,
                                            float kappa, float lambda, float eta, int kpad) {
    const int32_t e0 = b->row_ptr[row], e1 = b->row_ptr[row + 1];
    const float scale = b->instance_scale ? b->instance_scale[row] : 1.0f;
    const size_t rf = (size_t)tb->row_floats;
    const dl_v4 vl = dl_v4_set1(lambda), ve = dl_v4_set1(eta);
    const float root = sqrtf(scale);
    for (int32_t e = e0; e < e1; e++) {
        float *blk = tb->data + (size_t)b->rows[e] * rf;
        const float x = b->values[e];
        const dl_v4 c = dl_v4_set1((kappa * scale) * x), vx = dl_v4_set1(x);
        for (int d = 0; d < kpad; d += 4) {
            dl_v4 v = dl_v4_load(blk + d), G = dl_v4_load(blk + kpad + d);
            dl_v4 g = c * (dl_v4_load(s + d) - v * vx) + vl * v;
            G = G + g * g;
            v = v - (ve * g) / dl_v4_sqrt(G);
            dl_v4_store(blk + d, v);
            dl_v4_store(blk + kpad + d, G);
        }
        if (tb->linear_offset >= 0) {
            float *w = blk + tb->linear_offset;
            float g = kappa * (x * root) + lambda * w[0];
            w[1] = w[1] + g * g;
            w[0] = w[0] - (eta * g) / sqrtf(w[1]);
        }
    }
    if (tb->bias) {
        float g = kappa;
        tb->bias[1] = tb->bias[1] + g * g;
        tb->bias[0] = tb->bias[0] - (eta * g) / sqrtf(tb->bias[1]);
    }
}

static float fm_train_row(dl_click_table *tb, const dl_click_rows *b, int row, float *s, float eta, float lambda) {
    float t = fm_score(tb, b, row, s);
    float kappa = dl_click_kappa(t, b->labels[row]);
    switch (tb->kpad) {
    case 4:
        fm_update_entries(tb, b, row, s, kappa, lambda, eta, 4);
        break;
    case 8:
        fm_update_entries(tb, b, row, s, kappa, lambda, eta, 8);
        break;
    default:
        fm_update_entries(tb, b, row, s, kappa, lambda, eta, tb->kpad);
        break;
    }
    return t;
}

static void prefetch_row(const dl_click_table *tb, const dl_click_rows *b, int row) {
    const size_t bytes = (size_t)tb->row_floats * sizeof(float);
    for (int32_t e = b->row_ptr[row]; e < b->row_ptr[row + 1]; e++) {
        const char *base = (const char *)(tb->data + (size_t)b->rows[e] * (size_t)tb->row_floats);
        for (size_t o = 0; o < bytes; o += 64)
            __builtin_prefetch(base + o, 1, 3);
    }
}

static int team_size(int B) {
    int nt = omp_get_max_threads();
    int most = B / DL_CLICK_ROWS_PER_THREAD;
    return nt < most ? nt : (most > 1 ? most : 1);
}

dl_status dl_cpu_fm_fused_forward(void *state, float *logits, const dl_click_table *table,
                                  const dl_click_rows *batch) {
    (void)state;
    const int B = batch->B, nt = team_size(B);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float s[FM_MAX_KPAD];
#pragma omp for schedule(static)
        for (int row = 0; row < B; row++)
            logits[row] = fm_score(table, batch, row, s);
    }
    return DL_OK;
}

dl_status dl_cpu_fm_fused_sgd(void *state, float *logits, dl_click_table *table, const dl_click_rows *batch,
                              float lr, float weight_decay) {
    (void)state;
    const int B = batch->B, nt = team_size(B);
    const int prefetch = (size_t)table->num_rows * (size_t)table->row_floats * sizeof(float) >=
                         DL_CLICK_PREFETCH_MIN_BYTES;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float s[FM_MAX_KPAD];
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        const int lo = (int)((int64_t)B * t / n), hi = (int)((int64_t)B * (t + 1) / n);
        if (prefetch)
            for (int p = lo; p < hi && p < lo + PREFETCH_AHEAD; p++)
                prefetch_row(table, batch, p);
        for (int row = lo; row < hi; row++) {
            if (prefetch && row + PREFETCH_AHEAD < hi)
                prefetch_row(table, batch, row + PREFETCH_AHEAD);
            logits[row] = fm_train_row(table, batch, row, s, lr, weight_decay);
        }
    }
    return DL_OK;
}
