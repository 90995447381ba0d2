/* test_cpu_variants.c — every CPU kernel variant this machine runs (baseline, avx2, avx512) gives the same results
 * as the others to rounding, and each one the same bits run after run.
 *
 * Each case runs one dispatched op (forward and backward, optimizer steps, fused click-model training) on fixed
 * random inputs and collects all its outputs; the cases run on a backend opened per variant
 * (dl_backend_open_cpu_variant). Against the baseline variant the outputs must agree within the case's tolerance,
 * a norm-wise relative difference ‖a − b‖₂/‖b‖₂:
 *
 *  - The variants compute the same sums in a different rounding: with FMA a product is added unrounded (one
 *    rounding instead of two), `omp simd` reductions and the hand-written vector layers add in lanes of 4, 8 or 16
 *    (another order), and the vectorised exp differs (within 2 ulp in each variant). A sum of K terms computed two
 *    ways differs by at most 2·γ_K·Σ|terms|, γ_K = K·u/(1 − K·u), u = 2⁻²⁴ ≈ 6e-8; with the terms of these random
 *    inputs (uniform, mixed signs, |Σ| not much smaller than Σ|terms|/√K) that is about 2·K·√K·u relative.
 *  - Elementwise ops with no sum (residual, dropout, scale, GELU apart from its exp, the optimizer steps, whose
 *    vector and scalar paths are written to round identically: cpu_optim.h) differ by a few ulp at most: 1e-6.
 *  - Where the largest K is 64 (attention's head size and tile, layer norm's C, the latent k) the bound is about
 *    2·64·8·6e-8 = 6e-5; backward passes chain two or three such sums: 2e-4. Matrix products go through OpenBLAS,
 *    the same kernel in every variant, so only their bias sums (K = N) differ.
 *  - The fused click-model training updates each vector many times in sequence (AdaGrad, per instance); each
 *    update carries the previous rounding forward, so differences grow with the number of updates (about 100 per
 *    table row here) but stay far below 1e-3.
 * A kernel that reads a wrong element, drops a term or mishandles a tail gives a relative difference of order 1e-2
 * to 1 on these inputs, so the tolerances separate rounding from bugs by two orders of magnitude at least.
 *
 * Every case also runs twice on the same variant and must give identical bits (same code, same shapes, same thread
 * count). The test uses two OpenMP threads so the parallel splits run; the fused click-model training uses one,
 * because with several it is Hogwild (its result depends on timing by design: ops.h). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Where a case appends its outputs. */
typedef struct outputs {
    float *data;
    size_t len, cap;
} outputs;

static void put(outputs *o, const float *x, size_t n) {
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (cap < o->len + n)
            cap *= 2;
        float *grown = realloc(o->data, cap * sizeof(float));
        if (!grown)
            DL_TEST_FAIL("out of memory collecting %zu outputs", o->len + n);
        o->data = grown;
        o->cap = cap;
    }
    memcpy(o->data + o->len, x, n * sizeof(float));
    o->len += n;
}

static float *uniform(uint64_t stream, size_t n, float lo, float hi) {
    dl_rng rng;
    dl_test_rng(&rng, stream);
    float *x = dl_test_alloc_f(n);
    dl_test_fill_uniform(&rng, x, n, lo, hi);
    return x;
}

static float *zeros(size_t n) {
    float *x = dl_test_alloc_f(n);
    memset(x, 0, n * sizeof(float));
    return x;
}

#define OK(call) DL_EXPECT_OK(call)

/* ---- dense --------------------------------------------------------------------------------------------------- */

enum { N = 150, C = 64, OC = 96, V = 301 };

static void case_matmul(const dl_backend *be, outputs *o) {
    float *inp = uniform(1, (size_t)N * C, -1, 1), *w = uniform(2, (size_t)OC * C, -1, 1), *b = uniform(3, OC, -1, 1);
    float *out = zeros((size_t)N * OC), *dout = uniform(4, (size_t)N * OC, -1, 1);
    float *dinp = zeros((size_t)N * C), *dw = zeros((size_t)OC * C), *db = zeros(OC);
    OK(dl_op_matmul_forward(be, out, inp, w, b, N, C, OC));
    OK(dl_op_matmul_backward(be, dinp, dw, db, dout, inp, w, N, C, OC));
    put(o, out, (size_t)N * OC);
    put(o, dinp, (size_t)N * C);
    put(o, dw, (size_t)OC * C);
    put(o, db, OC);
    free(inp), free(w), free(b), free(out), free(dout), free(dinp), free(dw), free(db);
}

static void case_embedding(const dl_backend *be, outputs *o) {
    const int max_pos = 40;
    int32_t tokens[N], positions[N];
    for (int n = 0; n < N; n++) {
        tokens[n] = (n * 37 + 11) % V;
        positions[n] = n % max_pos;
    }
    float *wte = uniform(5, (size_t)V * C, -1, 1), *wpe = uniform(6, (size_t)max_pos * C, -1, 1);
    float *out = zeros((size_t)N * C), *dout = uniform(7, (size_t)N * C, -1, 1);
    float *dwte = zeros((size_t)V * C), *dwpe = zeros((size_t)max_pos * C);
    OK(dl_op_embedding_forward(be, out, tokens, positions, wte, wpe, N, C, V, max_pos));
    OK(dl_op_embedding_backward(be, dwte, dwpe, dout, tokens, positions, N, C, V, max_pos));
    put(o, out, (size_t)N * C);
    put(o, dwte, (size_t)V * C);
    put(o, dwpe, (size_t)max_pos * C);
    free(wte), free(wpe), free(out), free(dout), free(dwte), free(dwpe);
}

static void case_rope(const dl_backend *be, outputs *o) {
    const int H = 4, D = 16;
    int32_t positions[N];
    for (int n = 0; n < N; n++)
        positions[n] = (n * 7) % 100;
    float *inp = uniform(8, (size_t)N * H * D, -1, 1), *out = zeros((size_t)N * H * D);
    float *dout = uniform(9, (size_t)N * H * D, -1, 1), *dinp = zeros((size_t)N * H * D);
    OK(dl_op_rope_forward(be, out, inp, positions, N, H, D, H * D, 10000.0f));
    OK(dl_op_rope_backward(be, dinp, dout, positions, N, H, D, H * D, 10000.0f));
    put(o, out, (size_t)N * H * D);
    put(o, dinp, (size_t)N * H * D);
    free(inp), free(out), free(dout), free(dinp);
}

static void case_layernorm(const dl_backend *be, outputs *o) {
    float *inp = uniform(10, (size_t)N * C, -2, 2), *w = uniform(11, C, 0.5f, 1.5f), *b = uniform(12, C, -1, 1);
    float *out = zeros((size_t)N * C), *mean = zeros(N), *rstd = zeros(N), *dout = uniform(13, (size_t)N * C, -1, 1);
    float *dinp = zeros((size_t)N * C), *dw = zeros(C), *db = zeros(C);
    OK(dl_op_layernorm_forward(be, out, mean, rstd, inp, w, b, N, C, 1e-5f));
    OK(dl_op_layernorm_backward(be, dinp, dw, db, dout, inp, w, mean, rstd, N, C));
    put(o, out, (size_t)N * C);
    put(o, mean, N);
    put(o, rstd, N);
    put(o, dinp, (size_t)N * C);
    put(o, dw, C);
    put(o, db, C);
    free(inp), free(w), free(b), free(out), free(mean), free(rstd), free(dout), free(dinp), free(dw), free(db);
}

static void case_elementwise(const dl_backend *be, outputs *o) {
    const size_t n = 10007; /* not a multiple of any vector width: the tails run too */
    float *x = uniform(14, n, -6, 6), *y = uniform(15, n, -1, 1), *dout = uniform(16, n, -1, 1);
    float *out = zeros(n), *dx = zeros(n), *dy = zeros(n);
    OK(dl_op_gelu_forward(be, out, x, n));
    put(o, out, n);
    OK(dl_op_gelu_backward(be, dx, x, dout, n));
    put(o, dx, n);
    OK(dl_op_residual_forward(be, out, x, y, n));
    put(o, out, n);
    OK(dl_op_residual_backward(be, dx, dy, dout, n));
    put(o, dx, n);
    put(o, dy, n);
    OK(dl_op_dropout_forward(be, out, x, n, 0.25f, 42, 3));
    put(o, out, n);
    memset(dx, 0, n * sizeof(float));
    OK(dl_op_dropout_backward(be, dx, dout, n, 0.25f, 42, 3));
    put(o, dx, n);
    OK(dl_op_scale(be, y, n, 0.37f));
    put(o, y, n);
    free(x), free(y), free(dout), free(out), free(dx), free(dy);
}

static void case_xent(const dl_backend *be, outputs *o) {
    int32_t targets[N];
    for (int n = 0; n < N; n++)
        targets[n] = n % 9 == 4 ? -1 : (n * 53) % V;
    float *logits = uniform(17, (size_t)N * V, -4, 4), *losses = zeros(N), *lse = zeros(N);
    float *dlosses = uniform(18, N, 0, 1), *dlogits = zeros((size_t)N * V);
    OK(dl_op_xent_forward(be, losses, lse, logits, targets, N, V));
    OK(dl_op_xent_backward(be, dlogits, logits, lse, targets, dlosses, N, V));
    int32_t cu[4] = {0, 40, 41, N};
    float sums[3] = {0}, dsum[3] = {0.5f, -1.0f, 2.0f}, *dvalues = zeros(N);
    OK(dl_op_sequence_sum_forward(be, sums, losses, cu, 3));
    OK(dl_op_sequence_sum_backward(be, dvalues, dsum, cu, 3));
    put(o, losses, N);
    put(o, lse, N);
    put(o, dlogits, (size_t)N * V);
    put(o, sums, 3);
    put(o, dvalues, N);
    free(logits), free(losses), free(lse), free(dlosses), free(dlogits), free(dvalues);
}

/* Documents of 1, 63, 64, 65 and 200 tokens: single tokens, partial and whole tiles, several tiles. */
static void case_attention(const dl_backend *be, outputs *o) {
    const int H = 3, D = 64, num_seqs = 5;
    const int32_t cu[6] = {0, 1, 64, 128, 193, 393};
    const int tokens = cu[num_seqs];
    const size_t nqkv = (size_t)tokens * 3 * H * D, nout = (size_t)tokens * H * D;
    float *qkv = uniform(19, nqkv, -1, 1), *out = zeros(nout), *lse = zeros((size_t)tokens * H);
    float *dout = uniform(20, nout, -1, 1), *dqkv = zeros(nqkv);
    OK(dl_op_attention_forward(be, out, lse, qkv, cu, num_seqs, tokens, H, D));
    OK(dl_op_attention_backward(be, dqkv, dout, qkv, out, lse, cu, num_seqs, tokens, H, D));
    put(o, out, nout);
    put(o, lse, (size_t)tokens * H);
    put(o, dqkv, nqkv);
    free(qkv), free(out), free(lse), free(dout), free(dqkv);
}

/* ---- optimizers and losses ----------------------------------------------------------------------------------- */

static void case_optimizers(const dl_backend *be, outputs *o) {
    const size_t n = 50021; /* above the parallel threshold, odd length */
    float *p = uniform(21, n, -1, 1), *m = zeros(n), *v = zeros(n), *acc = zeros(n), *mom = zeros(n);
    for (size_t i = 0; i < n; i++)
        acc[i] = 1.0f;
    for (int step = 1; step <= 3; step++) {
        float *g = uniform(22 + (uint64_t)step, n, -1, 1);
        OK(dl_op_adamw_update(be, p, g, m, v, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, step));
        OK(dl_op_adagrad_update(be, p, g, acc, n, 0.2f, 1e-4f, 1.0f));
        OK(dl_op_sgd_update(be, p, g, mom, n, 0.05f, 0.9f, 1e-4f, 1.0f));
        free(g);
    }
    double sumsq = 0;
    OK(dl_op_sumsq(be, &sumsq, p, n));
    float sumsq_f = (float)sumsq;
    put(o, p, n);
    put(o, m, n);
    put(o, v, n);
    put(o, acc, n);
    put(o, mom, n);
    put(o, &sumsq_f, 1);
    free(p), free(m), free(v), free(acc), free(mom);
}

static void case_dpo_loss(const dl_backend *be, outputs *o) {
    enum { P = 37 };
    float *pc = uniform(30, P, -40, -10), *pr = uniform(31, P, -40, -10), *rc = uniform(32, P, -40, -10);
    float *rr = uniform(33, P, -40, -10), *dl = uniform(34, P, 0, 1);
    for (int kind = DL_DPO_SIGMOID; kind <= DL_DPO_HINGE; kind++) {
        float losses[P], cr[P], rj[P], dc[P] = {0}, dr[P] = {0};
        const float smoothing = kind == DL_DPO_SIGMOID ? 0.1f : 0.0f; /* defined for the sigmoid loss only */
        OK(dl_op_dpo_loss_forward(be, losses, cr, rj, pc, pr, rc, rr, P, kind, 0.1f, smoothing));
        OK(dl_op_dpo_loss_backward(be, dc, dr, dl, pc, pr, rc, rr, P, kind, 0.1f, smoothing));
        put(o, losses, P);
        put(o, cr, P);
        put(o, rj, P);
        put(o, dc, P);
        put(o, dr, P);
    }
    free(pc), free(pr), free(rc), free(rr), free(dl);
}

/* ---- sparse -------------------------------------------------------------------------------------------------- */

enum { B = 64, ROWS = 500, FIELDS = 6, K = 13, KPAD = 16 };

/* A CSR batch of B rows of 1..12 entries (every ninth empty) over ROWS table rows and FIELDS fields. */
typedef struct csr {
    int32_t row_ptr[B + 1], rows[B * 12], fields[B * 12];
    float values[B * 12], labels[B], scale[B];
} csr;

static void make_csr(csr *c, uint64_t stream) {
    dl_rng rng;
    dl_test_rng(&rng, stream);
    c->row_ptr[0] = 0;
    for (int b = 0; b < B; b++) {
        int n = b % 9 == 4 ? 0 : 1 + (int)dl_rng_below(&rng, 12);
        c->row_ptr[b + 1] = c->row_ptr[b] + n;
        for (int e = c->row_ptr[b]; e < c->row_ptr[b + 1]; e++) {
            c->rows[e] = (int32_t)dl_rng_below(&rng, ROWS);
            c->fields[e] = (int32_t)dl_rng_below(&rng, FIELDS);
            c->values[e] = 2.0f * dl_rng_uniform(&rng) - 1.0f;
        }
        c->labels[b] = (float)dl_rng_below(&rng, 2);
        c->scale[b] = 0.2f + dl_rng_uniform(&rng);
    }
}

static void case_embedding_bag(const dl_backend *be, outputs *o) {
    csr c;
    make_csr(&c, 40);
    const int dim = 24;
    float *table = uniform(41, (size_t)ROWS * dim, -1, 1), *out = zeros((size_t)B * dim);
    float *dout = uniform(42, (size_t)B * dim, -1, 1), *dtable = zeros((size_t)ROWS * dim);
    OK(dl_op_embedding_bag_forward(be, out, table, c.rows, c.values, c.row_ptr, B, dim, ROWS));
    OK(dl_op_embedding_bag_backward(be, dtable, dout, c.rows, c.values, c.row_ptr, B, dim, ROWS));
    put(o, out, (size_t)B * dim);
    put(o, dtable, (size_t)ROWS * dim);
    free(table), free(out), free(dout), free(dtable);
}

/* Latent rows with the padding lanes zero, as the models keep them. */
static float *latent_table(uint64_t stream, size_t vectors) {
    float *t = uniform(stream, vectors * KPAD, -0.5f, 0.5f);
    for (size_t r = 0; r < vectors; r++)
        for (int d = K; d < KPAD; d++)
            t[r * KPAD + (size_t)d] = 0.0f;
    return t;
}

static void case_fm_ffm(const dl_backend *be, outputs *o) {
    csr c;
    make_csr(&c, 43);
    float *linear = uniform(44, ROWS, -0.5f, 0.5f), *latent = latent_table(45, ROWS), bias = 0.1f;
    float logits[B], *sum_vx = zeros((size_t)B * KPAD), *dlogits = uniform(46, B, -1, 1);
    float *dlinear = zeros(ROWS), *dlatent = zeros((size_t)ROWS * KPAD), dbias = 0.0f;
    OK(dl_op_fm_forward(be, logits, sum_vx, linear, latent, &bias, c.row_ptr, c.rows, c.values, c.scale, B, K, KPAD,
                        ROWS));
    OK(dl_op_fm_backward(be, dlinear, dlatent, &dbias, dlogits, sum_vx, latent, c.row_ptr, c.rows, c.values, c.scale,
                         B, K, KPAD, ROWS));
    put(o, logits, B);
    put(o, sum_vx, (size_t)B * KPAD);
    put(o, dlinear, ROWS);
    put(o, dlatent, (size_t)ROWS * KPAD);
    put(o, &dbias, 1);
    float *ffm_latent = latent_table(47, (size_t)ROWS * FIELDS), *dffm = zeros((size_t)ROWS * FIELDS * KPAD);
    OK(dl_op_ffm_forward(be, logits, ffm_latent, c.row_ptr, c.rows, c.fields, c.values, c.scale, B, FIELDS, K, KPAD,
                         ROWS));
    OK(dl_op_ffm_backward(be, dffm, dlogits, ffm_latent, c.row_ptr, c.rows, c.fields, c.values, c.scale, B, FIELDS,
                          K, KPAD, ROWS));
    put(o, logits, B);
    put(o, dffm, (size_t)ROWS * FIELDS * KPAD);
    /* AdaGrad on the rows a batch touched (each once). */
    int32_t touched[100];
    for (int i = 0; i < 100; i++)
        touched[i] = (int32_t)((i * 7) % ROWS);
    float *acc = uniform(48, (size_t)ROWS * KPAD, 1, 2), *grads = uniform(49, (size_t)100 * KPAD, -1, 1);
    OK(dl_op_adagrad_rows_update(be, latent, acc, grads, touched, 100, KPAD, 0.2f, 1e-4f));
    put(o, latent, (size_t)ROWS * KPAD);
    put(o, acc, (size_t)ROWS * KPAD);
    free(linear), free(latent), free(sum_vx), free(dlogits), free(dlinear), free(dlatent), free(ffm_latent);
    free(dffm), free(acc), free(grads);
}

/* A fused table (libffm layout: weights then accumulators per block, linear weight and accumulator after). */
static dl_click_table fused_table(uint64_t stream, int num_fields, float *bias) {
    const int blocks = num_fields * 2 * KPAD, row_floats = (blocks + 2 + 3) / 4 * 4;
    dl_click_table t = {NULL, ROWS, row_floats, num_fields, K, KPAD, blocks, bias};
    t.data = zeros((size_t)ROWS * (size_t)row_floats);
    dl_rng rng;
    dl_test_rng(&rng, stream);
    for (int r = 0; r < ROWS; r++) {
        float *row = t.data + (size_t)r * (size_t)row_floats;
        for (int f = 0; f < num_fields; f++)
            for (int d = 0; d < KPAD; d++) {
                row[f * 2 * KPAD + d] = d < K ? (dl_rng_uniform(&rng) - 0.5f) / sqrtf((float)K) : 0.0f;
                row[f * 2 * KPAD + KPAD + d] = 1.0f + dl_rng_uniform(&rng);
            }
        row[blocks] = dl_rng_uniform(&rng) - 0.5f;
        row[blocks + 1] = 1.0f + dl_rng_uniform(&rng);
    }
    bias[0] = 0.1f;
    bias[1] = 1.5f;
    return t;
}

static void case_fused_click(const dl_backend *be, outputs *o) {
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1); /* Hogwild with more threads: timing-dependent by design */
    for (int ffm = 0; ffm <= 1; ffm++) {
        float bias[2], logits[B];
        dl_click_table t = fused_table(50 + (uint64_t)ffm, ffm ? FIELDS : 1, bias);
        for (int epoch = 0; epoch < 8; epoch++) {
            csr c;
            make_csr(&c, 60 + (uint64_t)epoch);
            dl_click_rows rows = {B, c.row_ptr, c.rows, ffm ? c.fields : NULL, c.values, c.labels, c.scale};
            OK(ffm ? dl_op_ffm_fused_sgd(be, logits, &t, &rows, 0.2f, 2e-5f)
                   : dl_op_fm_fused_sgd(be, logits, &t, &rows, 0.2f, 2e-5f));
            put(o, logits, B);
            OK(ffm ? dl_op_ffm_fused_forward(be, logits, &t, &rows) : dl_op_fm_fused_forward(be, logits, &t, &rows));
            put(o, logits, B);
        }
        put(o, t.data, (size_t)t.num_rows * (size_t)t.row_floats);
        put(o, bias, 2);
        free(t.data);
    }
    omp_set_num_threads(threads);
}

/* ---- the comparison ------------------------------------------------------------------------------------------ */

typedef struct variant_case {
    const char *name;
    void (*run)(const dl_backend *be, outputs *o);
    double tol; /* ‖variant − baseline‖₂ / ‖baseline‖₂; see the top of the file for each figure */
} variant_case;

static const variant_case cases[] = {
    {"matmul", case_matmul, 1e-6},          /* OpenBLAS in every variant; the bias sum over N = 150 rows */
    {"embedding", case_embedding, 1e-6},    /* sums of a few rows per token or position */
    {"rope", case_rope, 1e-6},              /* two products per element; sincos in double */
    {"layernorm", case_layernorm, 6e-5},    /* K = C = 64: mean, variance, then the backward's two row sums */
    {"elementwise", case_elementwise, 1e-6}, /* GELU's exp within 2 ulp; the rest exact */
    {"xent", case_xent, 2e-5},              /* log-sum-exp over V = 301: the exp sum in lanes (γ_V·√V ≈ 1e-5) */
    {"attention", case_attention, 2e-4},    /* K = D = 64 and tiles of 64, softmax chains; backward: three sums */
    {"optimizers", case_optimizers, 1e-6},  /* vector and scalar paths round alike (cpu_optim.h); Σx² in double */
    {"dpo_loss", case_dpo_loss, 1e-6},      /* per-pair scalar math */
    {"embedding_bag", case_embedding_bag, 1e-6}, /* at most 12 terms per bag, in entry order */
    {"fm_ffm", case_fm_ffm, 2e-5},          /* dot products over k = 13 in lanes of 4..16, pair sums per row */
    {"fused_click", case_fused_click, 1e-4}, /* 8 epochs of per-instance AdaGrad carry rounding forward */
};
enum { NUM_CASES = sizeof cases / sizeof cases[0] };

static outputs run_case(const variant_case *c, const char *variant) {
    dl_backend be;
    if (dl_backend_open_cpu_variant(&be, variant) != DL_OK)
        DL_TEST_FAIL("opening the CPU backend with variant %s: %s", variant, dl_error_message());
    assert_string_equal(be.cpu_variant, variant);
    outputs o = {0};
    c->run(&be, &o);
    dl_backend_close(&be);
    if (dl_test_first_nonfinite(o.data, o.len) >= 0)
        DL_TEST_FAIL("%s on %s: output %ld is not finite", c->name, variant, dl_test_first_nonfinite(o.data, o.len));
    return o;
}

static void every_variant_agrees_with_baseline_and_repeats_bit_for_bit(void **state) {
    (void)state;
    const int count = dl_cpu_variant_count();
    assert_true(count >= 1);
    int compared = 0;
    for (int c = 0; c < NUM_CASES; c++) {
        outputs reference = run_case(&cases[c], dl_cpu_variant_at(0));
        for (int v = 0; v < count; v++) {
            const char *variant = dl_cpu_variant_at(v);
            if (!dl_cpu_variant_supported(v)) {
                printf("# %s: variant %s: not run, this CPU lacks its instructions\n", cases[c].name, variant);
                continue;
            }
            outputs first = run_case(&cases[c], variant), again = run_case(&cases[c], variant);
            assert_int_equal(first.len, reference.len);
            assert_int_equal(again.len, first.len);
            if (memcmp(first.data, again.data, first.len * sizeof(float)) != 0)
                DL_TEST_FAIL("%s on %s: two runs of the same variant differ", cases[c].name, variant);
            double rel = dl_test_rel_error_f(first.data, reference.data, first.len);
            printf("# %-13s %-8s vs %s: relative difference %.3g (tolerance %.0e)\n", cases[c].name, variant,
                   dl_cpu_variant_at(0), rel, cases[c].tol);
            if (!(rel <= cases[c].tol))
                DL_TEST_FAIL("%s: variant %s differs from %s by %.3g relative, more than rounding allows (%.0e)",
                             cases[c].name, variant, dl_cpu_variant_at(0), rel, cases[c].tol);
            compared += v > 0;
            free(first.data);
            free(again.data);
        }
        free(reference.data);
    }
    if (count > 1 && compared == 0)
        printf("# only the first variant runs on this CPU: nothing to compare it with\n");
}

static void unknown_or_missing_variants_are_refused(void **state) {
    (void)state;
    dl_backend be;
    DL_EXPECT_INVALID(dl_backend_open_cpu_variant(&be, "sse9"));
    assert_non_null(strstr(dl_error_message(), "sse9"));
    for (int v = 0; v < dl_cpu_variant_count(); v++) {
        if (dl_cpu_variant_supported(v))
            continue;
        DL_EXPECT_INVALID(dl_backend_open_cpu_variant(&be, dl_cpu_variant_at(v)));
        assert_non_null(strstr(dl_error_message(), "lacks"));
    }
    DL_EXPECT_INVALID(dl_backend_open_cpu_variant(NULL, "baseline"));
}

/* The chosen variant is the best supported one unless DEALER_CPU_VARIANT says otherwise (ctest runs without it). */
static void the_default_is_the_best_variant_the_cpu_runs(void **state) {
    (void)state;
    const char *forced = getenv("DEALER_CPU_VARIANT");
    if (forced && forced[0] && strcmp(forced, "auto") != 0) {
        printf("# DEALER_CPU_VARIANT=%s is set: the automatic choice is not what runs\n", forced);
        DL_EXPECT_OK(dl_cpu_variant_select());
        assert_string_equal(dl_cpu_variant_name(), forced);
        return;
    }
    DL_EXPECT_OK(dl_cpu_variant_select());
    int best = -1;
    for (int v = 0; v < dl_cpu_variant_count(); v++)
        if (dl_cpu_variant_supported(v))
            best = v;
    assert_true(best >= 0);
    assert_string_equal(dl_cpu_variant_name(), dl_cpu_variant_at(best));
    assert_non_null(dl_cpu_variant_reason());
    dl_backend be;
    DL_EXPECT_OK(dl_backend_open(&be, "cpu", 0));
    assert_string_equal(be.cpu_variant, dl_cpu_variant_at(best));
    dl_backend_close(&be);
}

int main(void) {
    omp_set_num_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_variant_agrees_with_baseline_and_repeats_bit_for_bit),
        cmocka_unit_test(unknown_or_missing_variants_are_refused),
        cmocka_unit_test(the_default_is_the_best_variant_the_cpu_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
