/* test_ops_layernorm.c — dl_op_layernorm_forward/backward on the CPU backend: out, mean and rstd against a double
 * reference (including rows with a large common offset, where a one-pass variance fails), all three gradients by
 * central differences of the full double forward, accumulation, and bit-identical gradients for any thread count. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;
static const float EPS = 1e-5f;

static float *random_f(dl_rng *rng, size_t n, float lo, float hi) {
    float *p = dl_test_alloc_f(n);
    dl_test_fill_uniform(rng, p, n, lo, hi);
    return p;
}

typedef struct ln_ctx {
    double *inp, *weight, *bias, *dout, *out, *mean, *rstd;
    int N, C;
} ln_ctx;

static void ref_forward(ln_ctx *l) {
    for (int n = 0; n < l->N; n++) {
        const double *x = l->inp + (size_t)n * l->C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < l->C; c++)
            m += x[c];
        m /= l->C;
        for (int c = 0; c < l->C; c++)
            v += (x[c] - m) * (x[c] - m);
        v /= l->C;
        double rs = 1.0 / sqrt(v + (double)EPS);
        for (int c = 0; c < l->C; c++)
            l->out[(size_t)n * l->C + c] = (x[c] - m) * rs * l->weight[c] + l->bias[c];
        l->mean[n] = m;
        l->rstd[n] = rs;
    }
}

static double ln_loss(void *p) {
    ln_ctx *l = p;
    ref_forward(l);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)l->N * l->C; i++)
        L += l->dout[i] * l->out[i];
    return L;
}

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

static void check_added(const float *g, const float *g0, const double *ref, size_t n, double k, double tol,
                        const char *what) {
    float *diff = dl_test_alloc_f(n);
    double *want = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++) {
        diff[i] = (float)((double)g[i] - (double)g0[i]);
        want[i] = k * ref[i];
    }
    if (dl_test_first_nonfinite(g, n) >= 0)
        DL_TEST_FAIL("%s is not finite everywhere", what);
    double err = dl_test_rel_error(diff, want, n);
    if (!(err <= tol))
        DL_TEST_FAIL("%s: accumulated gradient (x%g) relative error %.3g > %.3g", what, k, err, tol);
    free(diff);
    free(want);
}

static void forward_case(dl_rng *rng, int N, int C, float offset, float spread) {
    size_t na = (size_t)N * C;
    float *inp = random_f(rng, na, offset - spread, offset + spread);
    float *w = random_f(rng, C, 0.5f, 1.5f), *b = random_f(rng, C, -0.5f, 0.5f);
    float *out = dl_test_alloc_f(na), *mean = dl_test_alloc_f(N), *rstd = dl_test_alloc_f(N);
    dl_test_poison(out, na);
    dl_test_poison(mean, N);
    dl_test_poison(rstd, N);
    DL_EXPECT_OK(dl_op_layernorm_forward(&be, out, mean, rstd, inp, w, b, N, C, EPS));
    ln_ctx l = {dl_test_to_double(inp, na),
                dl_test_to_double(w, C),
                dl_test_to_double(b, C),
                NULL,
                dl_test_alloc_d(na),
                dl_test_alloc_d(N),
                dl_test_alloc_d(N),
                N,
                C};
    ref_forward(&l);
    if (dl_test_first_nonfinite(out, na) >= 0)
        DL_TEST_FAIL("out[%ld] was not written", dl_test_first_nonfinite(out, na));
    /* Element by element, against the scale of the two terms (x̂·w and b may cancel). */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)n * C + c;
            double xhat = (l.inp[i] - l.mean[n]) * l.rstd[n];
            double scale = fabs(xhat * l.weight[c]) + fabs(l.bias[c]);
            if (fabs(out[i] - l.out[i]) > 2e-6 * scale)
                DL_TEST_FAIL("N=%d C=%d: out[%d, %d] = %.9g, want %.9g", N, C, n, c, (double)out[i], l.out[i]);
        }
    DL_ASSERT_REL(mean, l.mean, N, 1e-6);
    DL_ASSERT_REL(rstd, l.rstd, N, 1e-6);
    free(inp), free(w), free(b), free(out), free(mean), free(rstd);
    free(l.inp), free(l.weight), free(l.bias), free(l.out), free(l.mean), free(l.rstd);
}

static void forward_matches_double_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    forward_case(&rng, 1, 1, 0.0f, 1.0f); /* C = 1: every row is its own mean, out = bias */
    forward_case(&rng, 1, 3, 0.0f, 1.0f);
    forward_case(&rng, 7, 37, 0.5f, 2.0f);
    forward_case(&rng, 4, 768, 0.0f, 1.0f);
    forward_case(&rng, 5, 100, 1000.0f, 1.0f); /* large offset: E[x²] − E[x]² would lose every digit */
    forward_case(&rng, 64, 770, 0.0f, 3.0f);   /* above the single-thread cut-off */
}

static void backward_case(dl_rng *rng, int N, int C) {
    size_t na = (size_t)N * C;
    float *inp = random_f(rng, na, -2.0f, 2.0f), *w = random_f(rng, C, 0.5f, 1.5f), *b = random_f(rng, C, -1, 1);
    float *dout = random_f(rng, na, -1.0f, 1.0f);
    float *out = dl_test_alloc_f(na), *mean = dl_test_alloc_f(N), *rstd = dl_test_alloc_f(N);
    DL_EXPECT_OK(dl_op_layernorm_forward(&be, out, mean, rstd, inp, w, b, N, C, EPS));
    float *dinp = dl_test_alloc_f(na), *dw = dl_test_alloc_f(C), *db = dl_test_alloc_f(C);
    float *dinp0 = dl_test_alloc_f(na), *dw0 = dl_test_alloc_f(C), *db0 = dl_test_alloc_f(C);

    ln_ctx l = {dl_test_to_double(inp, na),
                dl_test_to_double(w, C),
                dl_test_to_double(b, C),
                dl_test_to_double(dout, na),
                dl_test_alloc_d(na),
                dl_test_alloc_d(N),
                dl_test_alloc_d(N),
                N,
                C};
    double *gi = dl_test_alloc_d(na), *gw = dl_test_alloc_d(C), *gb = dl_test_alloc_d(C);
    fd_grad(ln_loss, &l, l.inp, na, gi);
    fd_grad(ln_loss, &l, l.weight, C, gw);
    fd_grad(ln_loss, &l, l.bias, C, gb);
    dl_test_prefill_like(rng, dinp, gi, na);
    dl_test_prefill_like(rng, dw, gw, C);
    dl_test_prefill_like(rng, db, gb, C);
    memcpy(dinp0, dinp, na * sizeof(float));
    memcpy(dw0, dw, C * sizeof(float));
    memcpy(db0, db, C * sizeof(float));
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_layernorm_backward(&be, dinp, dw, db, dout, inp, w, mean, rstd, N, C));
        check_added(dinp, dinp0, gi, na, call, 1e-4, "dinp");
        check_added(dw, dw0, gw, C, call, 1e-4, "dweight");
        check_added(db, db0, gb, C, call, 1e-4, "dbias");
    }
    free(inp), free(w), free(b), free(dout), free(out), free(mean), free(rstd), free(dinp), free(dw), free(db);
    free(dinp0), free(dw0), free(db0), free(gi), free(gw), free(gb);
    free(l.inp), free(l.weight), free(l.bias), free(l.dout), free(l.out), free(l.mean), free(l.rstd);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    backward_case(&rng, 1, 5);
    backward_case(&rng, 4, 19);
    backward_case(&rng, 3, 70);
}

static void backward_is_identical_for_any_thread_count(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 3);
    const int N = 64, C = 777;
    size_t na = (size_t)N * C;
    float *inp = random_f(&rng, na, -2, 2), *w = random_f(&rng, C, 0.5f, 1.5f), *b = random_f(&rng, C, -1, 1);
    float *dout = random_f(&rng, na, -1, 1), *out = dl_test_alloc_f(na), *mean = dl_test_alloc_f(N), *rstd = dl_test_alloc_f(N);
    DL_EXPECT_OK(dl_op_layernorm_forward(&be, out, mean, rstd, inp, w, b, N, C, EPS));
    int saved = omp_get_max_threads();
    float *dinp[2], *dw[2], *db[2];
    for (int t = 0; t < 2; t++) {
        dinp[t] = calloc(na, sizeof(float));
        dw[t] = calloc(C, sizeof(float));
        db[t] = calloc(C, sizeof(float));
        assert_true(dinp[t] && dw[t] && db[t]);
        omp_set_num_threads(t == 0 ? 1 : 3);
        DL_EXPECT_OK(dl_op_layernorm_backward(&be, dinp[t], dw[t], db[t], dout, inp, w, mean, rstd, N, C));
    }
    omp_set_num_threads(saved);
    /* Bits hold: dinp is per row; dw and db are column sums over rows in a fixed order that the thread count does
     * not change (our code, no BLAS). */
    assert_memory_equal(dinp[0], dinp[1], na * sizeof(float));
    assert_memory_equal(dw[0], dw[1], C * sizeof(float));
    assert_memory_equal(db[0], db[1], C * sizeof(float));
    double *ref_b = dl_test_alloc_d(C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            ref_b[c] += dout[(size_t)n * C + c];
    DL_ASSERT_REL(db[0], ref_b, C, 1e-6);
    for (int t = 0; t < 2; t++)
        free(dinp[t]), free(dw[t]), free(db[t]);
    free(inp), free(w), free(b), free(dout), free(out), free(mean), free(rstd), free(ref_b);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float x[64] = {0}, y[64] = {0}, w[8] = {0}, b[8] = {0}, m[8] = {0}, r[8] = {0}, g[64] = {0};
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, NULL, m, r, x, w, b, 2, 8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, NULL, r, x, w, b, 2, 8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, NULL, x, w, b, 2, 8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, NULL, w, b, 2, 8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, x, NULL, b, 2, 8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, x, w, NULL, 2, 8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, x, w, b, 0, 8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, x, w, b, 2, -8, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, x, w, b, 2, 8, 0.0f));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, x, w, b, 2, 8, NAN));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, r, x, w, b, INT_MAX, INT_MAX, EPS));
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, x, m, r, x, w, b, 2, 8, EPS)); /* out is inp */
    DL_EXPECT_INVALID(dl_op_layernorm_forward(&be, y, m, m, x, w, b, 2, 8, EPS)); /* rstd is mean */
    DL_EXPECT_INVALID(dl_op_layernorm_backward(&be, NULL, w, b, y, x, w, m, r, 2, 8));
    DL_EXPECT_INVALID(dl_op_layernorm_backward(&be, g, w, b, y, x, w, m, r, 2, 8)); /* dweight is weight */
    DL_EXPECT_INVALID(dl_op_layernorm_backward(&be, y, g, g + 32, y, x, w, m, r, 2, 8)); /* dinp is dout */
    DL_EXPECT_INVALID(dl_op_layernorm_backward(&be, g, g + 8, g + 12, y, x, w, m, r, 1, 8));
    DL_EXPECT_INVALID(dl_op_layernorm_backward(&be, g, w, b, y, x, NULL, m, r, 2, 8));
    dl_error_clear();
    for (int i = 0; i < 64; i++)
        assert_true(x[i] == 0.0f && y[i] == 0.0f && g[i] == 0.0f);
    for (int i = 0; i < 8; i++)
        assert_true(w[i] == 0.0f && b[i] == 0.0f && m[i] == 0.0f && r[i] == 0.0f);
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
        cmocka_unit_test(backward_is_identical_for_any_thread_count),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
