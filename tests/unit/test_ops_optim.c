/* test_ops_optim.c — the CPU optimizer steps (AdamW, AdaGrad, SGD), Σx² and scale: against double-precision
 * references over several steps, bit-identical across thread counts, and the argument checks of src/ops/optim.c.
 *
 * Inputs are fresh random numbers each run (the seed is printed on failure). The references run the formulas of
 * ops.h in double from the same float inputs; the float kernels may differ by rounding only. Parameter updates are
 * compared as deltas (p − p0), since lr·update is much smaller than p and a plain comparison of p would hide errors
 * in the update. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/backend_internal.h"
#include "ops/ops.h"

/* Not a multiple of any vector width, so the scalar tails run; and one size above the parallel threshold. */
#define N_SMALL 1037
#define N_LARGE 70001

typedef struct buffers {
    float *p, *g, *m, *v;
    double *rp, *rm, *rv, *p0;
} buffers;

static void buffers_init(buffers *b, size_t n) {
    b->p = dl_test_alloc_f(n);
    b->g = dl_test_alloc_f(n);
    b->m = dl_test_alloc_f(n);
    b->v = dl_test_alloc_f(n);
    b->rp = dl_test_alloc_d(n);
    b->rm = dl_test_alloc_d(n);
    b->rv = dl_test_alloc_d(n);
    b->p0 = dl_test_alloc_d(n);
}

static void buffers_free(buffers *b) {
    free(b->p);
    free(b->g);
    free(b->m);
    free(b->v);
    free(b->rp);
    free(b->rm);
    free(b->rv);
    free(b->p0);
}

/* Compares float params against the double reference as deltas from p0. */
static void assert_delta(const float *p, const double *ref, const double *p0, size_t n, double tol, const char *what) {
    float *dp = dl_test_alloc_f(n);
    double *dr = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++) {
        dp[i] = (float)((double)p[i] - p0[i]);
        dr[i] = ref[i] - p0[i];
    }
    long bad = dl_test_first_nonfinite(p, n);
    if (bad >= 0)
        DL_TEST_FAIL("%s: params[%ld] = %f", what, bad, (double)p[bad]);
    double err = dl_test_rel_error(dp, dr, n);
    if (!(err <= tol))
        DL_TEST_FAIL("%s: update differs from the double reference, relative error %.3g > %.3g", what, err, tol);
    free(dp);
    free(dr);
}

/* ---- AdamW ------------------------------------------------------------------------------------------------------ */

static void adamw_reference(double *p, const float *g, double *m, double *v, size_t n, double lr, double b1,
                            double b2, double eps, double wd, double gs, int64_t step) {
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    for (size_t i = 0; i < n; i++) {
        double gi = gs * (double)g[i];
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        p[i] -= lr * ((m[i] / bc1) / (sqrt(v[i] / bc2) + eps) + wd * p[i]);
    }
}

static void run_adamw_case(size_t n, float wd, float gs, uint64_t stream) {
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, stream);
    buffers b;
    buffers_init(&b, n);
    dl_test_fill_uniform(&rng, b.p, n, -1.0f, 1.0f);
    memset(b.m, 0, n * sizeof(float));
    memset(b.v, 0, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        b.rp[i] = b.p0[i] = b.p[i];
        b.rm[i] = b.rv[i] = 0.0;
    }
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f;
    for (int64_t step = 1; step <= 5; step++) {
        dl_test_fill_uniform(&rng, b.g, n, -2.0f, 2.0f);
        assert_int_equal(dl_op_adamw_update(&be, b.p, b.g, b.m, b.v, n, lr, b1, b2, eps, wd, gs, step), DL_OK);
        adamw_reference(b.rp, b.g, b.rm, b.rv, n, lr, b1, b2, eps, wd, gs, step);
    }
    DL_ASSERT_REL(b.m, b.rm, n, 1e-6);
    DL_ASSERT_REL(b.v, b.rv, n, 1e-6);
    assert_delta(b.p, b.rp, b.p0, n, 1e-5, "adamw params");
    buffers_free(&b);
    dl_backend_close(&be);
}

static void adamw_matches_double_reference_without_decay(void **state) {
    (void)state;
    run_adamw_case(N_SMALL, 0.0f, 1.0f, 1);
}

static void adamw_matches_double_reference_with_decay_and_grad_scale(void **state) {
    (void)state;
    run_adamw_case(N_SMALL, 0.1f, 0.25f, 2);
    run_adamw_case(N_LARGE, 0.01f, 3.0f, 3);
}

/* The first step's update is lr·sign(g) (m̂ = g, v̂ = g²) when eps is negligible: a check by hand. */
static void adamw_first_step_is_lr_times_sign(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    float p[4] = {1.0f, -1.0f, 0.5f, 0.0f}, g[4] = {0.5f, -2.0f, 4.0f, -0.125f};
    float m[4] = {0}, v[4] = {0};
    assert_int_equal(dl_op_adamw_update(&be, p, g, m, v, 4, 0.25f, 0.9f, 0.999f, 1e-12f, 0.0f, 1.0f, 1), DL_OK);
    const float want[4] = {0.75f, -0.75f, 0.25f, 0.25f};
    for (int i = 0; i < 4; i++)
        if (fabsf(p[i] - want[i]) > 1e-6f)
            DL_TEST_FAIL("p[%d] = %.9g, want %.9g", i, (double)p[i], (double)want[i]);
    dl_backend_close(&be);
}

/* Runs `fn` on copies with one and with two threads and requires identical bits. */
static void adamw_is_bit_identical_across_thread_counts(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    const size_t n = N_LARGE;
    dl_rng rng;
    dl_test_rng(&rng, 4);
    float *p[2], *m[2], *v[2], *g = dl_test_alloc_f(n);
    dl_test_fill_uniform(&rng, g, n, -1.0f, 1.0f);
    for (int t = 0; t < 2; t++) {
        p[t] = dl_test_alloc_f(n);
        m[t] = dl_test_alloc_f(n);
        v[t] = dl_test_alloc_f(n);
    }
    dl_test_fill_uniform(&rng, p[0], n, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, m[0], n, -0.1f, 0.1f);
    dl_test_fill_uniform(&rng, v[0], n, 0.0f, 0.1f);
    memcpy(p[1], p[0], n * sizeof(float));
    memcpy(m[1], m[0], n * sizeof(float));
    memcpy(v[1], v[0], n * sizeof(float));
    int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        assert_int_equal(dl_op_adamw_update(&be, p[t], g, m[t], v[t], n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 7),
                         DL_OK);
    }
    omp_set_num_threads(saved);
    /* Bits hold: AdamW is elementwise; threads only split the elements. */
    assert_memory_equal(p[0], p[1], n * sizeof(float));
    assert_memory_equal(m[0], m[1], n * sizeof(float));
    assert_memory_equal(v[0], v[1], n * sizeof(float));
    for (int t = 0; t < 2; t++) {
        free(p[t]);
        free(m[t]);
        free(v[t]);
    }
    free(g);
    dl_backend_close(&be);
}

/* ---- AdaGrad ---------------------------------------------------------------------------------------------------- */

static void run_adagrad_case(size_t n, float wd, float gs, uint64_t stream) {
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, stream);
    buffers b;
    buffers_init(&b, n);
    dl_test_fill_uniform(&rng, b.p, n, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
        b.m[i] = 1.0f; /* the accumulator starts at 1 (libffm) */
        b.rm[i] = 1.0;
        b.rp[i] = b.p0[i] = b.p[i];
    }
    const float lr = 0.2f;
    for (int step = 0; step < 5; step++) {
        dl_test_fill_uniform(&rng, b.g, n, -2.0f, 2.0f);
        assert_int_equal(dl_op_adagrad_update(&be, b.p, b.g, b.m, n, lr, wd, gs), DL_OK);
        for (size_t i = 0; i < n; i++) {
            double g = gs * (double)b.g[i] + wd * b.rp[i];
            b.rm[i] += g * g;
            b.rp[i] -= lr * g / sqrt(b.rm[i]);
        }
    }
    DL_ASSERT_REL(b.m, b.rm, n, 1e-6);
    assert_delta(b.p, b.rp, b.p0, n, 1e-5, "adagrad params");
    buffers_free(&b);
    dl_backend_close(&be);
}

static void adagrad_matches_double_reference(void **state) {
    (void)state;
    run_adagrad_case(N_SMALL, 0.0f, 1.0f, 10);
    run_adagrad_case(N_SMALL, 2e-2f, 0.5f, 11);
    run_adagrad_case(N_LARGE, 1e-4f, 2.0f, 12);
}

/* One step by hand: w = 1, g = 0.5 + 0.1·1 = 0.6, G = 1 + 0.36 = 1.36, w = 1 − 0.1·0.6/√1.36 = 0.948550... */
static void adagrad_one_step_by_hand(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    float p = 1.0f, g = 0.5f, a = 1.0f;
    assert_int_equal(dl_op_adagrad_update(&be, &p, &g, &a, 1, 0.1f, 0.1f, 1.0f), DL_OK);
    if (fabsf(a - 1.36f) > 1e-6f || fabs((double)p - 0.94855042) > 1e-6)
        DL_TEST_FAIL("got w = %.9g, G = %.9g; want 0.94855042, 1.36", (double)p, (double)a);
    dl_backend_close(&be);
}

/* ---- SGD -------------------------------------------------------------------------------------------------------- */

static void run_sgd_case(size_t n, float momentum, float wd, float gs, uint64_t stream) {
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, stream);
    buffers b;
    buffers_init(&b, n);
    dl_test_fill_uniform(&rng, b.p, n, -1.0f, 1.0f);
    memset(b.m, 0, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        b.rp[i] = b.p0[i] = b.p[i];
        b.rm[i] = 0.0;
    }
    const float lr = 0.05f;
    for (int step = 0; step < 5; step++) {
        dl_test_fill_uniform(&rng, b.g, n, -2.0f, 2.0f);
        assert_int_equal(dl_op_sgd_update(&be, b.p, b.g, momentum > 0 ? b.m : NULL, n, lr, momentum, wd, gs), DL_OK);
        for (size_t i = 0; i < n; i++) {
            double g = gs * (double)b.g[i] + wd * b.rp[i];
            if (momentum > 0) {
                b.rm[i] = momentum * b.rm[i] + g;
                g = b.rm[i];
            }
            b.rp[i] -= lr * g;
        }
    }
    if (momentum > 0)
        DL_ASSERT_REL(b.m, b.rm, n, 1e-6);
    assert_delta(b.p, b.rp, b.p0, n, 1e-5, "sgd params");
    buffers_free(&b);
    dl_backend_close(&be);
}

static void sgd_matches_double_reference(void **state) {
    (void)state;
    run_sgd_case(N_SMALL, 0.0f, 0.0f, 1.0f, 20);
    run_sgd_case(N_SMALL, 0.0f, 0.1f, 0.5f, 21);
    run_sgd_case(N_SMALL, 0.9f, 0.0f, 1.0f, 22);
    run_sgd_case(N_LARGE, 0.9f, 1e-2f, 2.0f, 23);
}

/* ---- sumsq and scale -------------------------------------------------------------------------------------------- */

static void sumsq_matches_double_and_is_repeatable(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 30);
    const size_t sizes[] = {1, 7, 8, 9, N_SMALL, N_LARGE, 300007};
    int saved = omp_get_max_threads();
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *x = dl_test_alloc_f(n);
        /* Mixed magnitudes: a float accumulator would lose the small squares. */
        dl_test_fill_uniform(&rng, x, n, -1.0f, 1.0f);
        for (size_t i = 0; i < n; i += 97)
            x[i] *= 1000.0f;
        long double ref = 0.0L;
        for (size_t i = 0; i < n; i++)
            ref += (long double)x[i] * (long double)x[i];
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            double got = NAN, again = NAN;
            assert_int_equal(dl_op_sumsq(&be, &got, x, n), DL_OK);
            assert_int_equal(dl_op_sumsq(&be, &again, x, n), DL_OK);
            if (memcmp(&got, &again, sizeof got) != 0)
                DL_TEST_FAIL("n = %zu, %d threads: two calls gave %.17g and %.17g", n, threads, got, again);
            double rel = fabs(got - (double)ref) / (double)ref;
            if (!(rel < 1e-12))
                DL_TEST_FAIL("n = %zu, %d threads: sumsq = %.17g, want %.17Lg (rel %.3g)", n, threads, got, ref, rel);
        }
        free(x);
    }
    omp_set_num_threads(saved);
    double zero = 1.0;
    assert_int_equal(dl_op_sumsq(&be, &zero, NULL, 0), DL_OK);
    assert_true(zero == 0.0);
    dl_backend_close(&be);
}

static void scale_multiplies_every_element(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 31);
    const size_t n = N_LARGE;
    float *x = dl_test_alloc_f(n), *want = dl_test_alloc_f(n);
    dl_test_fill_uniform(&rng, x, n, -3.0f, 3.0f);
    const float factor = 0.3721f;
    for (size_t i = 0; i < n; i++)
        want[i] = x[i] * factor;
    omp_set_num_threads(2);
    assert_int_equal(dl_op_scale(&be, x, n, factor), DL_OK);
    omp_set_num_threads(1);
    /* Bits hold: one multiply per element, rounded once, the same in the op and here (no FMA contraction in C17). */
    assert_memory_equal(x, want, n * sizeof(float));
    free(x);
    free(want);
    dl_backend_close(&be);
}

/* ---- argument checks -------------------------------------------------------------------------------------------- */

/* Requires `call` to fail with `code` and a message containing `needle`. */
#define EXPECT_FAIL(call, code, needle)                                                                        \
    do {                                                                                                       \
        dl_error_clear();                                                                                      \
        dl_status s_ = (call);                                                                                 \
        if (s_ != (code) || strstr(dl_error_message(), (needle)) == NULL)                                      \
            DL_TEST_FAIL("%s: got status %d and message '%s', want status %d mentioning '%s'", #call, (int)s_, \
                         dl_error_message(), (int)(code), (needle));                                          \
    } while (0)

static void optimizer_arguments_are_checked(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    float p[4] = {0}, g[4] = {0}, m[4] = {0}, v[4] = {0};
    EXPECT_FAIL(dl_op_adamw_update(&be, NULL, g, m, v, 4, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1, 1), DL_ERR_INVALID,
                "params is NULL");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, NULL, 4, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1, 1), DL_ERR_INVALID,
                "v is NULL");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, -1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1, 1), DL_ERR_INVALID,
                "lr = -0.001");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, NAN, 0.9f, 0.95f, 1e-8f, 0, 1, 1), DL_ERR_INVALID, "lr = nan");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, 1e-3f, 1.0f, 0.95f, 1e-8f, 0, 1, 1), DL_ERR_INVALID,
                "beta1 = 1 is outside [0, 1)");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, 1e-3f, 0.9f, -0.5f, 1e-8f, 0, 1, 1), DL_ERR_INVALID,
                "beta2 = -0.5");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, 1e-3f, 0.9f, 0.95f, 0.0f, 0, 1, 1), DL_ERR_INVALID,
                "eps = 0 must be finite and > 0");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, 1e-3f, 0.9f, 0.95f, 1e-8f, -0.1f, 1, 1), DL_ERR_INVALID,
                "weight_decay = -0.1");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, INFINITY, 1), DL_ERR_INVALID,
                "grad_scale = inf");
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 4, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1, 0), DL_ERR_INVALID,
                "step = 0 must be >= 1");
    EXPECT_FAIL(dl_op_adagrad_update(&be, p, g, NULL, 4, 0.1f, 0, 1), DL_ERR_INVALID, "accum is NULL");
    EXPECT_FAIL(dl_op_adagrad_update(&be, p, g, m, 4, 0.1f, -1.0f, 1), DL_ERR_INVALID, "weight_decay = -1");
    EXPECT_FAIL(dl_op_sgd_update(&be, p, g, NULL, 4, 0.1f, 0.9f, 0, 1), DL_ERR_INVALID,
                "momentum = 0.9 needs a momentum buffer");
    EXPECT_FAIL(dl_op_sgd_update(&be, p, g, m, 4, 0.1f, 1.0f, 0, 1), DL_ERR_INVALID, "momentum = 1 is outside");
    EXPECT_FAIL(dl_op_sgd_update(&be, p, NULL, m, 4, 0.1f, 0.0f, 0, 1), DL_ERR_INVALID, "grads is NULL");
    double r;
    EXPECT_FAIL(dl_op_sumsq(&be, NULL, p, 4), DL_ERR_INVALID, "host_result is NULL");
    EXPECT_FAIL(dl_op_sumsq(&be, &r, NULL, 4), DL_ERR_INVALID, "x is NULL");
    EXPECT_FAIL(dl_op_scale(&be, p, 4, NAN), DL_ERR_INVALID, "factor = nan is not finite");
    EXPECT_FAIL(dl_op_scale(NULL, p, 4, 1.0f), DL_ERR_INVALID, "backend is not open");
    /* Nothing to do is fine, and touches nothing. */
    assert_int_equal(dl_op_adamw_update(&be, NULL, NULL, NULL, NULL, 0, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1, 1), DL_OK);
    dl_backend_close(&be);
}

/* A backend whose table lacks the family answers DL_ERR_UNSUPPORTED naming the op, never a crash. */
static void missing_op_is_unsupported(void **state) {
    (void)state;
    const dl_optim_ops empty = {0};
    const dl_backend_ops ops = {.optim = &empty};
    dl_backend be = {.kind = DL_DEVICE_CPU, .name = "test", .ops = &ops};
    float p[2] = {0}, g[2] = {0}, m[2] = {0}, v[2] = {0};
    EXPECT_FAIL(dl_op_adamw_update(&be, p, g, m, v, 2, 1e-3f, 0.9f, 0.95f, 1e-8f, 0, 1, 1), DL_ERR_UNSUPPORTED,
                "optim.adamw_update is not available on backend test");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adamw_matches_double_reference_without_decay),
        cmocka_unit_test(adamw_matches_double_reference_with_decay_and_grad_scale),
        cmocka_unit_test(adamw_first_step_is_lr_times_sign),
        cmocka_unit_test(adamw_is_bit_identical_across_thread_counts),
        cmocka_unit_test(adagrad_matches_double_reference),
        cmocka_unit_test(adagrad_one_step_by_hand),
        cmocka_unit_test(sgd_matches_double_reference),
        cmocka_unit_test(sumsq_matches_double_and_is_repeatable),
        cmocka_unit_test(scale_multiplies_every_element),
        cmocka_unit_test(optimizer_arguments_are_checked),
        cmocka_unit_test(missing_op_is_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
