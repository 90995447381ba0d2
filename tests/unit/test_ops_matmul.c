/* test_ops_matmul.c — dl_op_matmul_forward/backward/forward_bf16/backward_bf16 on the CPU backend against
 * double-precision references: forward by a plain triple loop, backward by central differences of L = Σ dout·out
 * (the bf16 backward by exact sums of its bf16 operands). */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;

static float *random_f(dl_rng *rng, size_t n) {
    float *p = dl_test_alloc_f(n);
    dl_test_fill_uniform(rng, p, n, -1.0f, 1.0f);
    return p;
}

/* out = inp·weightᵀ + bias in double. */
static void ref_forward(double *out, const double *inp, const double *weight, const double *bias, int N, int C,
                        int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = s;
        }
}

/* Each out[n, o] within tol of the reference, relative to Σ_c |inp·weight| + |bias| (the scale of the terms that
 * were summed: an output near zero from cancelling terms cannot be more exact than that). */
static void check_forward(const float *out, const double *ref, const double *inp, const double *weight,
                          const double *bias, int N, int C, int OC, double tol) {
    long bad = dl_test_first_nonfinite(out, (size_t)N * OC);
    if (bad >= 0)
        DL_TEST_FAIL("out[%ld] is %f (not written or not finite)", bad, (double)out[bad]);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double scale = bias ? fabs(bias[o]) : 0.0;
            for (int c = 0; c < C; c++)
                scale += fabs(inp[(size_t)n * C + c] * weight[(size_t)o * C + c]);
            size_t i = (size_t)n * OC + o;
            if (fabs(out[i] - ref[i]) > tol * scale)
                DL_TEST_FAIL("N=%d C=%d OC=%d: out[%d, %d] = %.9g, want %.9g (term scale %.3g)", N, C, OC, n, o,
                             (double)out[i], ref[i], scale);
        }
}

/* Loss L = Σ dout·out of the double reference; the finite-difference target. */
typedef struct matmul_ctx {
    double *inp, *weight, *bias, *dout, *out;
    int N, C, OC;
} matmul_ctx;

static double matmul_loss(void *p) {
    matmul_ctx *m = p;
    ref_forward(m->out, m->inp, m->weight, m->bias, m->N, m->C, m->OC);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)m->N * m->OC; i++)
        L += m->dout[i] * m->out[i];
    return L;
}

/* Central differences of loss() with respect to x[0..n). */
static void fd_grad(double (*loss)(void *), void *ctx, double *x, size_t n, double *grad) {
    for (size_t i = 0; i < n; i++) {
        double save = x[i], h = 1e-5 * fmax(1.0, fabs(save));
        x[i] = save + h;
        double lp = loss(ctx);
        x[i] = save - h;
        double lm = loss(ctx);
        x[i] = save;
        grad[i] = (lp - lm) / (2.0 * h);
    }
}

/* g − g0 (what one or more backward calls added) against k·ref. */
static void check_added(const float *g, const float *g0, const double *ref, size_t n, double k, double tol,
                        const char *what) {
    float *diff = dl_test_alloc_f(n);
    double *want = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++) {
        diff[i] = (float)((double)g[i] - (double)g0[i]);
        want[i] = k * ref[i];
    }
    long bad = dl_test_first_nonfinite(g, n);
    if (bad >= 0)
        DL_TEST_FAIL("%s[%ld] is not finite", what, bad);
    double err = dl_test_rel_error(diff, want, n);
    if (!(err <= tol))
        DL_TEST_FAIL("%s: accumulated gradient (x%g) relative error %.3g > %.3g", what, k, err, tol);
    free(diff);
    free(want);
}

static void forward_case(dl_rng *rng, int N, int C, int OC, int with_bias) {
    float *inp = random_f(rng, (size_t)N * C), *w = random_f(rng, (size_t)OC * C), *b = random_f(rng, OC);
    float *out = dl_test_alloc_f((size_t)N * OC);
    dl_test_poison(out, (size_t)N * OC);
    DL_EXPECT_OK(dl_op_matmul_forward(&be, out, inp, w, with_bias ? b : NULL, N, C, OC));
    double *di = dl_test_to_double(inp, (size_t)N * C), *dw = dl_test_to_double(w, (size_t)OC * C),
           *db = dl_test_to_double(b, OC);
    double *ref = dl_test_alloc_d((size_t)N * OC);
    ref_forward(ref, di, dw, with_bias ? db : NULL, N, C, OC);
    check_forward(out, ref, di, dw, with_bias ? db : NULL, N, C, OC, 3e-6);
    free(inp), free(w), free(b), free(out), free(di), free(dw), free(db), free(ref);
}

static void forward_matches_double_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    forward_case(&rng, 1, 1, 1, 1);
    forward_case(&rng, 1, 13, 5, 0);
    forward_case(&rng, 7, 13, 5, 1);
    forward_case(&rng, 33, 70, 257, 1);
    forward_case(&rng, 64, 96, 48, 0);
}

static void backward_case(dl_rng *rng, int N, int C, int OC, int with_dinp, int with_dbias) {
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = random_f(rng, ni), *w = random_f(rng, nw), *b = random_f(rng, OC), *dout = random_f(rng, no);
    float *dinp = dl_test_alloc_f(ni), *dw = dl_test_alloc_f(nw), *dbias = dl_test_alloc_f(OC);
    float *dinp0 = dl_test_alloc_f(ni), *dw0 = dl_test_alloc_f(nw), *dbias0 = dl_test_alloc_f(OC);

    matmul_ctx m = {dl_test_to_double(inp, ni),
                    dl_test_to_double(w, nw),
                    dl_test_to_double(b, OC),
                    dl_test_to_double(dout, no),
                    dl_test_alloc_d(no),
                    N,
                    C,
                    OC};
    double *gi = dl_test_alloc_d(ni), *gw = dl_test_alloc_d(nw), *gb = dl_test_alloc_d(OC);
    fd_grad(matmul_loss, &m, m.inp, ni, gi);
    fd_grad(matmul_loss, &m, m.weight, nw, gw);
    fd_grad(matmul_loss, &m, m.bias, OC, gb);
    dl_test_prefill_like(rng, dinp, gi, ni);
    dl_test_prefill_like(rng, dw, gw, nw);
    dl_test_prefill_like(rng, dbias, gb, OC);
    memcpy(dinp0, dinp, ni * sizeof(float));
    memcpy(dw0, dw, nw * sizeof(float));
    memcpy(dbias0, dbias, OC * sizeof(float));

    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_matmul_backward(&be, with_dinp ? dinp : NULL, dw, with_dbias ? dbias : NULL, dout, inp, w,
                                        N, C, OC));
        check_added(dw, dw0, gw, nw, call, 1e-4, "dweight");
        if (with_dinp)
            check_added(dinp, dinp0, gi, ni, call, 1e-4, "dinp");
        if (with_dbias)
            check_added(dbias, dbias0, gb, OC, call, 1e-4, "dbias");
    }
    /* A NULL (skipped) gradient buffer is left alone: the op never wrote through a stale pointer. */
    if (!with_dinp)
        assert_memory_equal(dinp, dinp0, ni * sizeof(float));
    if (!with_dbias)
        assert_memory_equal(dbias, dbias0, OC * sizeof(float));

    free(inp), free(w), free(b), free(dout), free(dinp), free(dw), free(dbias), free(dinp0), free(dw0), free(dbias0);
    free(m.inp), free(m.weight), free(m.bias), free(m.dout), free(m.out), free(gi), free(gw), free(gb);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    backward_case(&rng, 1, 1, 1, 1, 1);
    backward_case(&rng, 5, 11, 7, 1, 1);
    backward_case(&rng, 3, 17, 19, 0, 1);
    backward_case(&rng, 4, 9, 6, 1, 0);
}

/* Shapes above the single-thread cut-off, where each OpenMP thread runs sgemm on a slab of the output: rows or
 * columns (whichever is larger) of each of the three products, at 1, 2 and 3 threads (3: a short last slab). The
 * backward products are checked against double-precision products directly (finite differences would take
 * minutes at this size); accumulation into prefilled gradients is checked too. */
static void split_case(dl_rng *rng, int N, int C, int OC) {
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = random_f(rng, ni), *w = random_f(rng, nw), *b = random_f(rng, OC), *dout = random_f(rng, no);
    double *di = dl_test_to_double(inp, ni), *dw = dl_test_to_double(w, nw), *db = dl_test_to_double(b, OC),
           *ddout = dl_test_to_double(dout, no);
    double *ref = dl_test_alloc_d(no), *gi = dl_test_alloc_d(ni), *gw = dl_test_alloc_d(nw);
    ref_forward(ref, di, dw, db, N, C, OC);
    for (int n = 0; n < N; n++) /* gi = dout·weight, gw = doutᵀ·inp */
        for (int o = 0; o < OC; o++) {
            double g = ddout[(size_t)n * OC + o];
            for (int c = 0; c < C; c++) {
                gi[(size_t)n * C + c] += g * dw[(size_t)o * C + c];
                gw[(size_t)o * C + c] += g * di[(size_t)n * C + c];
            }
        }
    float *out = dl_test_alloc_f(no), *dinp = dl_test_alloc_f(ni), *dweight = dl_test_alloc_f(nw), *dinp0 = dl_test_alloc_f(ni), *dw0 = dl_test_alloc_f(nw);
    int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        dl_test_poison(out, no);
        DL_EXPECT_OK(dl_op_matmul_forward(&be, out, inp, w, b, N, C, OC));
        check_forward(out, ref, di, dw, db, N, C, OC, 3e-6);
        dl_test_prefill_like(rng, dinp0, gi, ni);
        dl_test_prefill_like(rng, dw0, gw, nw);
        memcpy(dinp, dinp0, ni * sizeof(float));
        memcpy(dweight, dw0, nw * sizeof(float));
        DL_EXPECT_OK(dl_op_matmul_backward(&be, dinp, dweight, NULL, dout, inp, w, N, C, OC));
        check_added(dinp, dinp0, gi, ni, 1.0, 1e-5, "dinp");
        check_added(dweight, dw0, gw, nw, 1.0, 1e-5, "dweight");
    }
    omp_set_num_threads(saved);
    free(inp), free(w), free(b), free(dout), free(di), free(dw), free(db), free(ddout), free(ref), free(gi), free(gw);
    free(out), free(dinp), free(dweight), free(dinp0), free(dw0);
}

static void split_products_match_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 5);
    split_case(&rng, 300, 80, 100); /* every product split by rows */
    split_case(&rng, 70, 160, 300); /* forward and dinp by columns, dweight by rows */
    split_case(&rng, 70, 300, 160); /* dweight by columns */
}

/* Round-to-nearest-even to bf16 and back, as the reference for the bf16 path sees its inputs. */
static void bf16_case(dl_rng *rng, int N, int C, int OC, int with_bias) {
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = random_f(rng, ni), *w = random_f(rng, nw), *b = random_f(rng, OC), *out = dl_test_alloc_f(no);
    dl_bf16 *inp16 = malloc(ni * sizeof(dl_bf16)), *w16 = malloc(nw * sizeof(dl_bf16));
    assert_non_null(inp16);
    assert_non_null(w16);
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, inp16, inp, ni));
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, w16, w, nw));
    DL_EXPECT_OK(dl_op_bf16_to_f32(&be, inp, inp16, ni));
    DL_EXPECT_OK(dl_op_bf16_to_f32(&be, w, w16, nw));
    dl_test_poison(out, no);
    DL_EXPECT_OK(dl_op_matmul_forward_bf16(&be, out, inp16, w16, with_bias ? b : NULL, N, C, OC));
    double *di = dl_test_to_double(inp, ni), *dw = dl_test_to_double(w, nw), *db = dl_test_to_double(b, OC),
           *ref = dl_test_alloc_d(no);
    ref_forward(ref, di, dw, with_bias ? db : NULL, N, C, OC);
    check_forward(out, ref, di, dw, with_bias ? db : NULL, N, C, OC, 3e-6);
    free(inp), free(w), free(b), free(out), free(inp16), free(w16), free(di), free(dw), free(db), free(ref);
}

static void bf16_forward_matches_double_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 3);
    bf16_case(&rng, 1, 1, 1, 1);
    bf16_case(&rng, 1, 300, 70, 0);
    bf16_case(&rng, 19, 130, 67, 1); /* partial tiles in every dimension */
    bf16_case(&rng, 32, 256, 128, 1);
}

/* Each g[i] − g0[i] (what one backward call added) against the exact sum ref[i] of products of bf16 values, within
 * γ·(scale[i] + |g0[i]|) where scale[i] = Σ|terms|. Why that bound: the products of two bf16 values (8-bit
 * significands, 16 bits together) are exact in fp32, so the op's only errors are the K − 1 fp32 additions of its
 * FMA chain (Higham: |error| ≤ γ_K·Σ|terms|, γ_K ≈ K·2⁻²⁴) and the one rounding of g0 + sum (≤ 2⁻²⁴·|g0 + sum|);
 * γ = (K + 2)·2⁻²⁴ covers both. A wrong operand, transpose or stride is off by O(scale), far above it. */
static void check_bf16_added(const float *g, const float *g0, const double *ref, const double *scale, size_t n,
                             int K, const char *what) {
    double gamma = (K + 2) * ldexp(1.0, -24);
    long bad = dl_test_first_nonfinite(g, n);
    if (bad >= 0)
        DL_TEST_FAIL("%s[%ld] is not finite", what, bad);
    for (size_t i = 0; i < n; i++) {
        double added = (double)g[i] - (double)g0[i];
        if (fabs(added - ref[i]) > gamma * (scale[i] + fabs((double)g0[i])))
            DL_TEST_FAIL("%s[%zu]: added %.9g, want %.9g (term scale %.3g, K %d)", what, i, added, ref[i], scale[i],
                         K);
    }
}

/* The bf16 backward against double sums of the same bf16 values (the op is linear in each operand, so these sums
 * are its exact derivative: finite differences would only add their own error), accumulating into prefilled
 * gradients, with and without the nullable dinp and dbias. */
static void bf16_backward_case(dl_rng *rng, int N, int C, int OC, int with_dinp, int with_dbias) {
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = random_f(rng, ni), *w = random_f(rng, nw), *dout = random_f(rng, no);
    dl_bf16 *inp16 = malloc(ni * sizeof(dl_bf16)), *w16 = malloc(nw * sizeof(dl_bf16));
    dl_bf16 *dout16 = malloc(no * sizeof(dl_bf16));
    assert_true(inp16 && w16 && dout16);
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, inp16, inp, ni));
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, w16, w, nw));
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, dout16, dout, no));
    DL_EXPECT_OK(dl_op_bf16_to_f32(&be, inp, inp16, ni));
    DL_EXPECT_OK(dl_op_bf16_to_f32(&be, w, w16, nw));
    DL_EXPECT_OK(dl_op_bf16_to_f32(&be, dout, dout16, no));
    double *gi = dl_test_alloc_d(ni), *gw = dl_test_alloc_d(nw), *gb = dl_test_alloc_d(OC);
    double *si = dl_test_alloc_d(ni), *sw = dl_test_alloc_d(nw), *sb = dl_test_alloc_d(OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double g = dout[(size_t)n * OC + o];
            gb[o] += g;
            sb[o] += fabs(g);
            for (int c = 0; c < C; c++) {
                double wi = (double)w[(size_t)o * C + c] * g, iw = (double)inp[(size_t)n * C + c] * g;
                gi[(size_t)n * C + c] += wi;
                si[(size_t)n * C + c] += fabs(wi);
                gw[(size_t)o * C + c] += iw;
                sw[(size_t)o * C + c] += fabs(iw);
            }
        }
    float *dinp = dl_test_alloc_f(ni), *dw = dl_test_alloc_f(nw), *dbias = dl_test_alloc_f(OC);
    float *dinp0 = dl_test_alloc_f(ni), *dw0 = dl_test_alloc_f(nw), *dbias0 = dl_test_alloc_f(OC);
    dl_test_prefill_like(rng, dinp0, gi, ni);
    dl_test_prefill_like(rng, dw0, gw, nw);
    dl_test_prefill_like(rng, dbias0, gb, OC);
    memcpy(dinp, dinp0, ni * sizeof(float));
    memcpy(dw, dw0, nw * sizeof(float));
    memcpy(dbias, dbias0, OC * sizeof(float));
    DL_EXPECT_OK(dl_op_matmul_backward_bf16(&be, with_dinp ? dinp : NULL, dw, with_dbias ? dbias : NULL, dout16,
                                            inp16, w16, N, C, OC));
    check_bf16_added(dw, dw0, gw, sw, nw, N, "dweight");
    if (with_dinp)
        check_bf16_added(dinp, dinp0, gi, si, ni, OC, "dinp");
    else
        assert_memory_equal(dinp, dinp0, ni * sizeof(float));
    if (with_dbias)
        check_bf16_added(dbias, dbias0, gb, sb, OC, N, "dbias");
    else
        assert_memory_equal(dbias, dbias0, OC * sizeof(float));

    /* The fp32 backward of the same (bf16-valued) operands: the same math, another summation order, so the two
     * differ by at most both bounds above, 2γ·scale relative to each element's term scale. */
    float *fdinp = dl_test_alloc_f(ni), *fdw = dl_test_alloc_f(nw);
    memcpy(fdinp, dinp0, ni * sizeof(float));
    memcpy(fdw, dw0, nw * sizeof(float));
    DL_EXPECT_OK(dl_op_matmul_backward(&be, fdinp, fdw, NULL, dout, inp, w, N, C, OC));
    double gamma2 = 2.0 * (N + OC + 2) * ldexp(1.0, -24);
    for (size_t i = 0; i < nw; i++)
        if (fabs((double)fdw[i] - (double)dw[i]) > gamma2 * (sw[i] + fabs((double)dw0[i])))
            DL_TEST_FAIL("dweight[%zu]: bf16 path %.9g, fp32 path %.9g", i, (double)dw[i], (double)fdw[i]);
    if (with_dinp)
        for (size_t i = 0; i < ni; i++)
            if (fabs((double)fdinp[i] - (double)dinp[i]) > gamma2 * (si[i] + fabs((double)dinp0[i])))
                DL_TEST_FAIL("dinp[%zu]: bf16 path %.9g, fp32 path %.9g", i, (double)dinp[i], (double)fdinp[i]);
    free(inp), free(w), free(dout), free(inp16), free(w16), free(dout16), free(gi), free(gw), free(gb), free(si);
    free(sw), free(sb), free(dinp), free(dw), free(dbias), free(dinp0), free(dw0), free(dbias0), free(fdinp), free(fdw);
}

static void bf16_backward_matches_double_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 6);
    bf16_backward_case(&rng, 1, 1, 1, 1, 1);
    bf16_backward_case(&rng, 5, 11, 7, 0, 1);
    bf16_backward_case(&rng, 19, 130, 67, 1, 0); /* partial tiles in every dimension, depth past one block */
    bf16_backward_case(&rng, 150, 70, 300, 1, 1); /* above the single-thread cut-off: tiles spread over threads */
}

/* The bf16 backward gives the same bits for 1 and 3 threads: every output tile is one thread's FMA chain in k
 * order, and the bias gradient sums each column in row order. */
static void bf16_backward_is_thread_count_independent(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 7);
    const int N = 150, C = 70, OC = 300;
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *tmp = random_f(&rng, no);
    dl_bf16 *inp16 = malloc(ni * 2), *w16 = malloc(nw * 2), *dout16 = malloc(no * 2);
    assert_true(inp16 && w16 && dout16);
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, dout16, tmp, no));
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, inp16, tmp, ni));
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, w16, tmp + 7, nw));
    float *g[2][3];
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        g[r][0] = dl_test_alloc_f(ni), g[r][1] = dl_test_alloc_f(nw), g[r][2] = dl_test_alloc_f(OC);
        memset(g[r][0], 0, ni * 4), memset(g[r][1], 0, nw * 4), memset(g[r][2], 0, OC * 4);
        omp_set_num_threads(r ? 3 : 1);
        DL_EXPECT_OK(dl_op_matmul_backward_bf16(&be, g[r][0], g[r][1], g[r][2], dout16, inp16, w16, N, C, OC));
    }
    omp_set_num_threads(saved);
    assert_memory_equal(g[0][0], g[1][0], ni * 4);
    assert_memory_equal(g[0][1], g[1][1], nw * 4);
    assert_memory_equal(g[0][2], g[1][2], OC * 4);
    for (int r = 0; r < 2; r++)
        free(g[r][0]), free(g[r][1]), free(g[r][2]);
    free(tmp), free(inp16), free(w16), free(dout16);
}

/* Same inputs, same thread count: the same bits. The bias gradient (our own column sum) gives the same bits for
 * any thread count. */
static void results_are_deterministic(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 4);
    const int N = 200, C = 40, OC = 300; /* N·OC above the single-thread cut-off */
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = random_f(&rng, ni), *w = random_f(&rng, nw), *b = random_f(&rng, OC), *dout = random_f(&rng, no);
    float *out1 = dl_test_alloc_f(no), *out2 = dl_test_alloc_f(no);
    DL_EXPECT_OK(dl_op_matmul_forward(&be, out1, inp, w, b, N, C, OC));
    DL_EXPECT_OK(dl_op_matmul_forward(&be, out2, inp, w, b, N, C, OC));
    /* Bits hold: the same BLAS call, shapes and thread count twice. */
    assert_memory_equal(out1, out2, no * sizeof(float));

    int saved = omp_get_max_threads();
    float *dw = dl_test_alloc_f(nw), *db1 = dl_test_alloc_f(OC), *db3 = dl_test_alloc_f(OC);
    double *ref = dl_test_alloc_d(OC);
    for (int o = 0; o < OC; o++)
        for (int n = 0; n < N; n++)
            ref[o] += dout[(size_t)n * OC + o];
    memset(db1, 0, OC * sizeof(float));
    memset(db3, 0, OC * sizeof(float));
    memset(dw, 0, nw * sizeof(float));
    omp_set_num_threads(1);
    DL_EXPECT_OK(dl_op_matmul_backward(&be, NULL, dw, db1, dout, inp, w, N, C, OC));
    omp_set_num_threads(3);
    DL_EXPECT_OK(dl_op_matmul_backward(&be, NULL, dw, db3, dout, inp, w, N, C, OC));
    omp_set_num_threads(saved);
    DL_ASSERT_REL(db1, ref, OC, 1e-6);
    /* Bits hold: the bias gradient is our own column sum in row order per column; threads split the columns. */
    assert_memory_equal(db1, db3, OC * sizeof(float));
    free(inp), free(w), free(b), free(dout), free(out1), free(out2), free(dw), free(db1), free(db3), free(ref);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float x[64] = {0}, y[64] = {0}, z[64] = {0}, g[64] = {0};
    dl_bf16 h[64] = {0};
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, NULL, x, y, NULL, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, z, NULL, y, NULL, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, z, x, NULL, NULL, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, z, x, y, NULL, 0, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, z, x, y, NULL, 2, -1, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, z, x, y, NULL, 2, 2, 0));
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, z, x, y, NULL, INT_MAX, INT_MAX, 2)); /* N·C·4 bytes > PTRDIFF_MAX */
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, x, x, y, NULL, 2, 2, 2));             /* out overlaps inp */
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, x + 2, x, y, NULL, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward(NULL, z, x, y, NULL, 2, 2, 2));
    dl_backend closed = {0};
    DL_EXPECT_INVALID(dl_op_matmul_forward(&closed, z, x, y, NULL, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_backward(&be, g, NULL, NULL, z, x, y, 2, 2, 2)); /* dweight is required */
    DL_EXPECT_INVALID(dl_op_matmul_backward(&be, g, z, NULL, NULL, x, y, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_backward(&be, g, x, NULL, x, z, y, 2, 2, 2)); /* dweight is dout */
    DL_EXPECT_INVALID(dl_op_matmul_backward(&be, x, g, NULL, z, x, y, 2, 2, 2)); /* dinp is inp */
    DL_EXPECT_INVALID(dl_op_matmul_backward(&be, g, z, g + 2, x, y, x + 8, 2, 2, 2)); /* dbias overlaps dinp */
    DL_EXPECT_INVALID(dl_op_matmul_backward(&be, g, z, NULL, x, y, g + 32, 2, 0, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward_bf16(&be, z, NULL, h, NULL, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_forward_bf16(&be, z, h, h, NULL, 2, 2, -3));
    DL_EXPECT_INVALID(dl_op_matmul_backward_bf16(&be, g, NULL, NULL, h, h + 8, h + 16, 2, 2, 2)); /* dweight */
    DL_EXPECT_INVALID(dl_op_matmul_backward_bf16(&be, g, z, NULL, NULL, h + 8, h + 16, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_backward_bf16(&be, g, z, NULL, h, h + 8, h + 16, 2, 0, 2));
    DL_EXPECT_INVALID(dl_op_matmul_backward_bf16(&be, g, z, NULL, h, h + 8, h + 16, INT_MAX, INT_MAX, 2));
    DL_EXPECT_INVALID(dl_op_matmul_backward_bf16(&be, g, g + 2, NULL, h, h + 8, h + 16, 2, 2, 2)); /* dw in dinp */
    DL_EXPECT_INVALID(dl_op_matmul_backward_bf16(&be, (float *)(void *)h, z, NULL, h, h + 8, h + 16, 2, 2, 2));
    DL_EXPECT_INVALID(dl_op_matmul_backward_bf16(&be, g, z, z + 2, h, h + 8, h + 16, 2, 2, 2)); /* dbias in dw */
    /* Nothing was written by any failed call. */
    for (int i = 0; i < 64; i++)
        assert_true(x[i] == 0.0f && y[i] == 0.0f && z[i] == 0.0f && g[i] == 0.0f);
    /* The message names the op and the argument. */
    DL_EXPECT_INVALID(dl_op_matmul_forward(&be, z, x, NULL, NULL, 2, 2, 2));
    dl_status s = dl_op_matmul_forward(&be, z, x, y, NULL, 2, 0, 2);
    assert_int_equal(s, DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "dl_op_matmul_forward"));
    assert_non_null(strstr(dl_error_message(), "C = 0"));
    dl_error_clear();
}

static int setup(void **state) {
    (void)state;
    return dl_backend_open(&be, "cpu", 0) == DL_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    dl_backend_close(&be);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forward_matches_double_reference),
        cmocka_unit_test(backward_matches_finite_differences_and_accumulates),
        cmocka_unit_test(split_products_match_reference),
        cmocka_unit_test(bf16_forward_matches_double_reference),
        cmocka_unit_test(bf16_backward_matches_double_reference),
        cmocka_unit_test(bf16_backward_is_thread_count_independent),
        cmocka_unit_test(results_are_deterministic),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
