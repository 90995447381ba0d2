/* test_ops_gelu.c — dl_op_gelu_forward/backward on the CPU backend against the tanh formula in double (forward) and
 * central differences of it (backward), plus the vectorisable exp both GELU and the softmax rely on, swept against
 * libm's double exp over the whole float range. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_dense_math.h"
#include "ops/ops.h"

static dl_backend be;

/* ops.h's formula, in double. */
static double ref_gelu(double x) {
    const double k = sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

static void forward_case(dl_rng *rng, size_t n, float lo, float hi) {
    float *x = dl_test_alloc_f(n), *y = dl_test_alloc_f(n), *inplace = dl_test_alloc_f(n);
    dl_test_fill_uniform(rng, x, n, lo, hi);
    dl_test_poison(y, n);
    DL_EXPECT_OK(dl_op_gelu_forward(&be, y, x, n));
    double *ref = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++)
        ref[i] = ref_gelu(x[i]);
    DL_ASSERT_REL(y, ref, n, 1e-6);
    for (size_t i = 0; i < n; i++) /* and element by element, absolute near 0, relative elsewhere */
        if (fabs(y[i] - ref[i]) > 1e-6 * fmax(1.0, fabs(ref[i])))
            DL_TEST_FAIL("gelu(%.9g) = %.9g, want %.9g", (double)x[i], (double)y[i], ref[i]);
    memcpy(inplace, x, n * sizeof(float));
    DL_EXPECT_OK(dl_op_gelu_forward(&be, inplace, inplace, n));
    /* Bits hold: the same elementwise code on the same input, in place or not. */
    assert_memory_equal(inplace, y, n * sizeof(float));
    free(x), free(y), free(inplace), free(ref);
}

static void forward_matches_tanh_formula(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    forward_case(&rng, 1, -3.0f, 3.0f);
    forward_case(&rng, 1001, -6.0f, 6.0f);
    forward_case(&rng, 40000, -30.0f, 30.0f); /* the saturated tails, and above the single-thread cut-off */
    /* Special values. */
    float x[7] = {0.0f, -0.0f, 1e-30f, -1e-30f, 40.0f, -40.0f, NAN}, y[7];
    DL_EXPECT_OK(dl_op_gelu_forward(&be, y, x, 7));
    assert_true(y[0] == 0.0f && y[1] == 0.0f);
    assert_true(fabsf(y[2] - 0.5e-30f) < 1e-36f && fabsf(y[3] + 0.5e-30f) < 1e-36f);
    assert_true(y[4] == 40.0f);
    assert_true(fabsf(y[5]) < 1e-30f);
    assert_true(isnan(y[6]));
}

static void backward_case(dl_rng *rng, size_t n, float lo, float hi) {
    float *x = dl_test_alloc_f(n), *dout = dl_test_alloc_f(n), *dinp = dl_test_alloc_f(n), *dinp0 = dl_test_alloc_f(n);
    dl_test_fill_uniform(rng, x, n, lo, hi);
    dl_test_fill_uniform(rng, dout, n, -1.0f, 1.0f);
    /* L = Σ dout·gelu(x): each x only moves its own term, so the difference quotient of that term is ∂L/∂x. */
    double *grad = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++) {
        double h = 1e-5 * fmax(1.0, fabs((double)x[i]));
        grad[i] = dout[i] * (ref_gelu((double)x[i] + h) - ref_gelu((double)x[i] - h)) / (2.0 * h);
    }
    dl_test_prefill_like(rng, dinp, grad, n);
    memcpy(dinp0, dinp, n * sizeof(float));
    float *added = dl_test_alloc_f(n);
    double *want = dl_test_alloc_d(n);
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_gelu_backward(&be, dinp, x, dout, n));
        for (size_t i = 0; i < n; i++) {
            added[i] = (float)((double)dinp[i] - dinp0[i]);
            want[i] = call * grad[i];
        }
        DL_ASSERT_REL(added, want, n, 1e-4);
    }
    /* dinp may be dout: dout + gelu'(x)·dout. */
    float *both = dl_test_alloc_f(n);
    memcpy(both, dout, n * sizeof(float));
    DL_EXPECT_OK(dl_op_gelu_backward(&be, both, x, both, n));
    for (size_t i = 0; i < n; i++)
        want[i] = dout[i] + grad[i];
    DL_ASSERT_REL(both, want, n, 1e-4);
    free(x), free(dout), free(dinp), free(dinp0), free(grad), free(added), free(want), free(both);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    backward_case(&rng, 1, -2.0f, 2.0f);
    backward_case(&rng, 257, -5.0f, 5.0f);
    backward_case(&rng, 50000, -12.0f, 12.0f);
    /* Far tails: the derivative is 0 or 1 and must not be NaN (σ·(1−σ) as inf/inf). */
    float x[4] = {-60.0f, -1e20f, 60.0f, 1e20f}, dout[4] = {1, 1, 1, 1}, dinp[4] = {0};
    DL_EXPECT_OK(dl_op_gelu_backward(&be, dinp, x, dout, 4));
    assert_true(fabsf(dinp[0]) < 1e-30f && fabsf(dinp[1]) < 1e-30f);
    assert_true(dinp[2] == 1.0f && dinp[3] == 1.0f);
}

/* dl_cpu_expf within 2 ulp of exp over the float range, inf above, 0 far below, NaN kept. */
static void fast_exp_is_accurate_over_the_float_range(void **state) {
    (void)state;
    double worst = 0.0;
    float worst_x = 0.0f;
    for (float x = -103.0f; x < 88.72f; x += 0.0009765625f * 3.7f) {
        double want = exp((double)x);
        float got = dl_cpu_expf(x);
        double ulp = want >= FLT_MIN ? ldexp(1.0, ilogb(want) - 23) : ldexp(1.0, -149);
        double err = fabs((double)got - want) / ulp;
        if (err > worst) {
            worst = err;
            worst_x = x;
        }
    }
    if (worst > 2.0)
        DL_TEST_FAIL("dl_cpu_expf: %.2f ulp at x = %.9g (got %.9g, want %.9g)", worst, (double)worst_x,
                     (double)dl_cpu_expf(worst_x), exp((double)worst_x));
    assert_true(dl_cpu_expf(0.0f) == 1.0f);
    assert_true(isinf(dl_cpu_expf(88.8f)) && isinf(dl_cpu_expf(1000.0f)) && isinf(dl_cpu_expf(INFINITY)));
    assert_true(dl_cpu_expf(-110.0f) == 0.0f && dl_cpu_expf(-INFINITY) == 0.0f);
    assert_true(isnan(dl_cpu_expf(NAN)));
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float x[16] = {0}, y[16] = {0};
    DL_EXPECT_INVALID(dl_op_gelu_forward(&be, NULL, x, 16));
    DL_EXPECT_INVALID(dl_op_gelu_forward(&be, y, NULL, 16));
    DL_EXPECT_INVALID(dl_op_gelu_forward(&be, y, x, 0));
    DL_EXPECT_INVALID(dl_op_gelu_forward(&be, x + 1, x, 8)); /* partial overlap */
    DL_EXPECT_INVALID(dl_op_gelu_forward(&be, y, x, SIZE_MAX / 2));
    DL_EXPECT_INVALID(dl_op_gelu_backward(&be, NULL, x, y, 16));
    DL_EXPECT_INVALID(dl_op_gelu_backward(&be, y, NULL, x, 16));
    DL_EXPECT_INVALID(dl_op_gelu_backward(&be, y, x, NULL, 16));
    DL_EXPECT_INVALID(dl_op_gelu_backward(&be, y, x, y + 2, 8));
    DL_EXPECT_INVALID(dl_op_gelu_backward(&be, y, x, x, 0));
    dl_error_clear();
    for (int i = 0; i < 16; i++)
        assert_true(x[i] == 0.0f && y[i] == 0.0f);
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
        cmocka_unit_test(forward_matches_tanh_formula),
        cmocka_unit_test(backward_matches_finite_differences_and_accumulates),
        cmocka_unit_test(fast_exp_is_accurate_over_the_float_range),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
