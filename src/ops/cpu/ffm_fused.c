/* ffm_fused.c — field-aware FM on a fused (weights + AdaGrad accumulators) table, libffm style, on the CPU.
 *
 * A row's score is the sum over its entry pairs i < j of ⟨v[row_i, field_j], v[row_j, field_i]⟩·x_i·x_j·scale
 * (plus the optional bias and linear terms Σ w_i·x_i·√scale). Training is libffm's: one instance at a time, score
 * it, then walk the same pairs again and update both vectors of each pair with AdaGrad, λ once per pair, each
 * side's gradient taken from the other side's vector as it is at that moment (so a block two pairs share sees the
 * first update, exactly as in libffm's wTx). No gradient buffer, no second pass over the table, one cache line for a weight and its
 * accumulator when kpad is 4 (8 floats = 32 bytes), two when kpad is 8.
 *
 * Speed. Hashed tables are far larger than the caches and every entry's row sits somewhere random, so the time goes
 * into waiting for memory: before training instance b the kernel asks for the rows of instance b + PREFETCH_AHEAD
 * (the span of blocks its fields select, with write intent), so their lines arrive while b computes. The pair
 * update packs both blocks of a pair into one register (kpad 4: AVX, 8 lanes = w1|w2 and G1|G2; kpad 8: AVX-512)
 * so one square root and one division serve both sides. Other kpad run four-lane chunks (any x86-64, or plain C).
 *
 * Threads. A batch's rows are split into contiguous parts, one per thread, each trained in order without locks
 * (Hogwild, as libffm does with OpenMP): two threads may update the same block at once, and a lost update there is
 * accepted, as in libffm. With one thread the result is deterministic. Scoring (the forward op) only reads. */
#include <omp.h>

#include "ops/cpu/cpu_sparse_fused.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define PREFETCH_AHEAD 2

/* Sum over pairs of ⟨a, c⟩·x_i·x_j·scale. Two accumulators alternate by pair so consecutive adds do not wait on
 * each other; their order is fixed, so a given kpad always rounds the same way. */
static ALWAYS_INLINE float ffm_pairs(const float *T, size_t rf, const int32_t *rows, const int32_t *fields,
                                     const float *x, int32_t e0, int32_t e1, float scale, int kpad) {
    dl_v4 acc0 = dl_v4_set1(0.0f), acc1 = dl_v4_set1(0.0f);
    const size_t bs = 2 * (size_t)kpad;
    for (int32_t i = e0; i < e1; i++) {
        const float *base_i = T + (size_t)rows[i] * rf;
        const size_t fi = (size_t)fields[i] * bs;
        const float xi = x[i];
        for (int32_t j = i + 1; j < e1; j++) {
            const float *a = base_i + (size_t)fields[j] * bs;
            const float *c = T + (size_t)rows[j] * rf + fi;
            const dl_v4 v = dl_v4_set1((xi * x[j]) * scale);
            for (int d = 0; d < kpad; d += 4) {
                dl_v4 p = (dl_v4_load(a + d) * dl_v4_load(c + d)) * v;
                if (((j + (d >> 2)) & 1) == 0)
                    acc0 += p;
                else
                    acc1 += p;
            }
        }
    }
    return dl_v4_fold(acc0 + acc1);
}

/* bias + Σ w_i x_i·√scale (the linear terms see the normalised values x/‖x‖), 0 without them. */
static ALWAYS_INLINE float linear_part(const float *T, size_t rf, int lin, const float *bias, const int32_t *rows,
                                       const float *x, int32_t e0, int32_t e1, float root_scale) {
    float t = bias ? bias[0] : 0.0f;
    if (lin >= 0)
        for (int32_t e = e0; e < e1; e++)
            t += T[(size_t)rows[e] * rf + (size_t)lin] * (x[e] * root_scale);
    return t;
}

static float ffm_score(const dl_click_table *tb, const dl_click_rows *b, int row) {
    const int32_t e0 = b->row_ptr[row], e1 = b->row_ptr[row + 1];
    const float scale = b->instance_scale ? b->instance_scale[row] : 1.0f;
    const size_t rf = (size_t)tb->row_floats;
    float pairs;
    switch (tb->kpad) {
    case 4:
        pairs = ffm_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, scale, 4);
        break;
    case 8:
        pairs = ffm_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, scale, 8);
        break;
    case 16:
        pairs = ffm_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, scale, 16);
        break;
    default:
        pairs = ffm_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, scale, tb->kpad);
        break;
    }
    return linear_part(tb->data, rf, tb->linear_offset, tb->bias, b->rows, b->values, e0, e1, sqrtf(scale)) + pairs;
}

/* One AdaGrad step on both blocks of a pair, four lanes at a time:
 *   g1 = λ·w1 + κv·w2,  g2 = λ·w2 + κv·w1,  G += g²,  w −= η·g/√G.
 * b1 is stored before b2, so when both are the same block b2's result stays (libffm's order). */
static ALWAYS_INLINE void pair_update_v4(float *b1, float *b2, float kv, float lambda, float eta, int kpad) {
    const dl_v4 vkv = dl_v4_set1(kv), vl = dl_v4_set1(lambda), ve = dl_v4_set1(eta);
    for (int d = 0; d < kpad; d += 4) {
        dl_v4 w1 = dl_v4_load(b1 + d), w2 = dl_v4_load(b2 + d);
        dl_v4 G1 = dl_v4_load(b1 + kpad + d), G2 = dl_v4_load(b2 + kpad + d);
        dl_v4 g1 = vl * w1 + vkv * w2;
        dl_v4 g2 = vl * w2 + vkv * w1;
        G1 = G1 + g1 * g1;
        G2 = G2 + g2 * g2;
        w1 = w1 - (ve * g1) / dl_v4_sqrt(G1);
        w2 = w2 - (ve * g2) / dl_v4_sqrt(G2);
        dl_v4_store(b1 + d, w1);
        dl_v4_store(b1 + kpad + d, G1);
        dl_v4_store(b2 + d, w2);
        dl_v4_store(b2 + kpad + d, G2);
    }
}

#if defined(__AVX__)
/* kpad 4: a block is [w | G] in 8 floats, so the pair (w1|w2, G1|G2) fills two 8-lane registers. Same arithmetic
 * per lane as pair_update_v4. */
static ALWAYS_INLINE void pair_update_k4_avx(float *b1, float *b2, float kv, float lambda, float eta) {
    __m256 A = _mm256_loadu_ps(b1), C = _mm256_loadu_ps(b2);
    __m256 W = _mm256_permute2f128_ps(A, C, 0x20);  /* w1 | w2 */
    __m256 Wx = _mm256_permute2f128_ps(C, A, 0x20); /* w2 | w1 */
    __m256 G = _mm256_permute2f128_ps(A, C, 0x31);  /* G1 | G2 */
    __m256 g = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(lambda), W), _mm256_mul_ps(_mm256_set1_ps(kv), Wx));
    G = _mm256_add_ps(G, _mm256_mul_ps(g, g));
    W = _mm256_sub_ps(W, _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(eta), g), _mm256_sqrt_ps(G)));
    _mm256_storeu_ps(b1, _mm256_permute2f128_ps(W, G, 0x20));
    _mm256_storeu_ps(b2, _mm256_permute2f128_ps(W, G, 0x31));
}
#endif

#if defined(__AVX512F__)
/* kpad 8: a block is [w | G] in 16 floats; the pair fills two 16-lane registers. */
static ALWAYS_INLINE void pair_update_k8_avx512(float *b1, float *b2, float kv, float lambda, float eta) {
    __m512 A = _mm512_loadu_ps(b1), C = _mm512_loadu_ps(b2);
    __m512 W = _mm512_shuffle_f32x4(A, C, 0x44);  /* w1 | w2 */
    __m512 Wx = _mm512_shuffle_f32x4(C, A, 0x44); /* w2 | w1 */
    __m512 G = _mm512_shuffle_f32x4(A, C, 0xEE);  /* G1 | G2 */
    __m512 g = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(lambda), W), _mm512_mul_ps(_mm512_set1_ps(kv), Wx));
    G = _mm512_add_ps(G, _mm512_mul_ps(g, g));
    W = _mm512_sub_ps(W, _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(eta), g), _mm512_sqrt_ps(G)));
    _mm512_storeu_ps(b1, _mm512_shuffle_f32x4(W, G, 0x44));
    _mm512_storeu_ps(b2, _mm512_shuffle_f32x4(W, G, 0xEE));
}
#endif

static ALWAYS_INLINE void ffm_update_pairs(float *T, size_t rf, const int32_t *rows, const int32_t *fields,
                                           const float *x, int32_t e0, int32_t e1, float kappa, float scale,
                                           float lambda, float eta, int kpad) {
    const size_t bs = 2 * (size_t)kpad;
    for (int32_t i = e0; i < e1; i++) {
        float *base_i = T + (size_t)rows[i] * rf;
        const size_t fi = (size_t)fields[i] * bs;
        const float xi = x[i];
        for (int32_t j = i + 1; j < e1; j++) {
            float *b1 = base_i + (size_t)fields[j] * bs;
            float *b2 = T + (size_t)rows[j] * rf + fi;
            const float kv = kappa * ((xi * x[j]) * scale);
#if defined(__AVX__)
            if (kpad == 4) {
                pair_update_k4_avx(b1, b2, kv, lambda, eta);
                continue;
            }
#endif
#if defined(__AVX512F__)
            if (kpad == 8) {
                pair_update_k8_avx512(b1, b2, kv, lambda, eta);
                continue;
            }
#endif
            pair_update_v4(b1, b2, kv, lambda, eta, kpad);
        }
    }
}

/* AdaGrad on the linear weights (g = κ·x·√scale + λw) and the bias (g = κ). */
static void linear_update(float *T, size_t rf, int lin, float *bias, const int32_t *rows, const float *x, int32_t e0,
                          int32_t e1, float kappa, float lambda, float eta, float root_scale) {
    if (lin >= 0)
        for (int32_t e = e0; e < e1; e++) {
            float *w = T + (size_t)rows[e] * rf + (size_t)lin;
            float g = kappa * (x[e] * root_scale) + lambda * w[0];
            w[1] = w[1] + g * g;
            w[0] = w[0] - (eta * g) / sqrtf(w[1]);
        }
    if (bias) {
        float g = kappa;
        bias[1] = bias[1] + g * g;
        bias[0] = bias[0] - (eta * g) / sqrtf(bias[1]);
    }
}

/* Asks for the blocks batch row `row` will use: for each entry, its row's blocks from the lowest to the highest
 * field of the batch row (every field, for Criteo-style data), and its linear pair. Changes no result. */
static void prefetch_row(const dl_click_table *tb, const dl_click_rows *b, int row) {
    const int32_t e0 = b->row_ptr[row], e1 = b->row_ptr[row + 1];
    if (e0 == e1)
        return;
    int32_t lo = b->fields[e0], hi = lo;
    for (int32_t e = e0 + 1; e < e1; e++) {
        lo = b->fields[e] < lo ? b->fields[e] : lo;
        hi = b->fields[e] > hi ? b->fields[e] : hi;
    }
    const size_t bs = 2 * (size_t)tb->kpad * sizeof(float);
    for (int32_t e = e0; e < e1; e++) {
        const char *base = (const char *)(tb->data + (size_t)b->rows[e] * (size_t)tb->row_floats);
        for (size_t o = (size_t)lo * bs; o < (size_t)(hi + 1) * bs; o += 64)
            __builtin_prefetch(base + o, 1, 3);
        if (tb->linear_offset >= 0)
            __builtin_prefetch(base + (size_t)tb->linear_offset * sizeof(float), 1, 3);
    }
}

static float ffm_train_row(dl_click_table *tb, const dl_click_rows *b, int row, float eta, float lambda) {
    const int32_t e0 = b->row_ptr[row], e1 = b->row_ptr[row + 1];
    const float scale = b->instance_scale ? b->instance_scale[row] : 1.0f;
    const size_t rf = (size_t)tb->row_floats;
    float t = ffm_score(tb, b, row);
    float kappa = dl_click_kappa(t, b->labels[row]);
    switch (tb->kpad) {
    case 4:
        ffm_update_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, kappa, scale, lambda, eta, 4);
        break;
    case 8:
        ffm_update_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, kappa, scale, lambda, eta, 8);
        break;
    case 16:
        ffm_update_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, kappa, scale, lambda, eta, 16);
        break;
    default:
        ffm_update_pairs(tb->data, rf, b->rows, b->fields, b->values, e0, e1, kappa, scale, lambda, eta, tb->kpad);
        break;
    }
    linear_update(tb->data, rf, tb->linear_offset, tb->bias, b->rows, b->values, e0, e1, kappa, lambda, eta,
                  sqrtf(scale));
    return t;
}

/* Threads for a batch of B rows: at most one per DL_CLICK_ROWS_PER_THREAD rows. */
static int team_size(int B) {
    int nt = omp_get_max_threads();
    int most = B / DL_CLICK_ROWS_PER_THREAD;
    return nt < most ? nt : (most > 1 ? most : 1);
}

dl_status dl_cpu_ffm_fused_forward(void *state, float *logits, const dl_click_table *table,
                                   const dl_click_rows *batch) {
    (void)state;
    const int B = batch->B;
#pragma omp parallel for schedule(static) num_threads(team_size(B)) if (team_size(B) > 1)
    for (int row = 0; row < B; row++)
        logits[row] = ffm_score(table, batch, row);
    return DL_OK;
}

dl_status dl_cpu_ffm_fused_sgd(void *state, float *logits, dl_click_table *table, const dl_click_rows *batch,
                               float lr, float weight_decay) {
    (void)state;
    const int B = batch->B, nt = team_size(B);
    const int prefetch = (size_t)table->num_rows * (size_t)table->row_floats * sizeof(float) >=
                         DL_CLICK_PREFETCH_MIN_BYTES;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        const int lo = (int)((int64_t)B * t / n), hi = (int)((int64_t)B * (t + 1) / n);
        if (prefetch)
            for (int p = lo; p < hi && p < lo + PREFETCH_AHEAD; p++)
                prefetch_row(table, batch, p);
        for (int row = lo; row < hi; row++) {
            if (prefetch && row + PREFETCH_AHEAD < hi)
                prefetch_row(table, batch, row + PREFETCH_AHEAD);
            logits[row] = ffm_train_row(table, batch, row, lr, weight_decay);
        }
    }
    return DL_OK;
}
