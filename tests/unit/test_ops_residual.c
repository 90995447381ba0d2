/* test_ops_residual.c — dl_op_residual_forward/backward on the CPU backend: the sum against double, the gradient by
 * central differences, accumulation, the in-place forms (out = a, da = dout), and bad arguments. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;

static float *random_f(dl_rng *rng, size_t n) {
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    dl_test_fill_uniform(rng, p, n, -1.0f, 1.0f);
    return p;
}

static double *alloc_d(size_t n) {
    double *p = calloc(n, sizeof(double));
    assert_non_null(p);
    return p;
}

static void forward_case(dl_rng *rng, size_t n) {
    float *a = random_f(rng, n), *b = random_f(rng, n), *out = random_f(rng, n);
    dl_test_poison(out, n);
    DL_EXPECT_OK(dl_op_residual_forward(&be, out, a, b, n));
    double *ref = alloc_d(n);
    for (size_t i = 0; i < n; i++)
        ref[i] = (double)a[i] + (double)b[i];
    DL_ASSERT_REL(out, ref, n, 1e-7);
    /* out = a (the residual stream updated in place) and out = b. */
    float *a2 = malloc(n * sizeof(float)), *b2 = malloc(n * sizeof(float));
    assert_true(a2 && b2);
    memcpy(a2, a, n * sizeof(float));
    memcpy(b2, b, n * sizeof(float));
    DL_EXPECT_OK(dl_op_residual_forward(&be, a2, a2, b, n));
    DL_EXPECT_OK(dl_op_residual_forward(&be, b2, a, b2, n));
    /* Bits hold: one addition per element, in place or not. */
    assert_memory_equal(a2, out, n * sizeof(float));
    assert_memory_equal(b2, out, n * sizeof(float));
    free(a), free(b), free(out), free(ref), free(a2), free(b2);
}

static void forward_matches_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    forward_case(&rng, 1);
    forward_case(&rng, 17);
    forward_case(&rng, 100003); /* above the single-thread cut-off */
}

static void backward_case(dl_rng *rng, size_t n) {
    float *dout = random_f(rng, n), *da = random_f(rng, n), *db = random_f(rng, n);
    float *da0 = malloc(n * sizeof(float)), *db0 = malloc(n * sizeof(float)), *diff = malloc(n * sizeof(float));
    assert_true(da0 && db0 && diff);
    memcpy(da0, da, n * sizeof(float));
    memcpy(db0, db, n * sizeof(float));
    /* L = Σ dout·(a + b) in double at random a, b; element i of a or b moves only term i, whose central
     * difference is ∂L/∂a_i (∂L/∂b_i). */
    float *a = random_f(rng, n), *b = random_f(rng, n);
    double *ga = alloc_d(n), *gb = alloc_d(n), *want = alloc_d(n);
    for (size_t i = 0; i < n; i++) {
        double h = 1e-5, ai = a[i], bi = b[i];
        ga[i] = (dout[i] * ((ai + h) + bi) - dout[i] * ((ai - h) + bi)) / (2.0 * h);
        gb[i] = (dout[i] * (ai + (bi + h)) - dout[i] * (ai + (bi - h))) / (2.0 * h);
    }
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_residual_backward(&be, da, db, dout, n));
        for (size_t i = 0; i < n; i++) {
            diff[i] = (float)((double)da[i] - da0[i]);
            want[i] = call * ga[i];
        }
        DL_ASSERT_REL(diff, want, n, 1e-5);
        for (size_t i = 0; i < n; i++) {
            diff[i] = (float)((double)db[i] - db0[i]);
            want[i] = call * gb[i];
        }
        DL_ASSERT_REL(diff, want, n, 1e-5);
    }
    /* da may be dout: da = dout + dout. */
    memcpy(da, dout, n * sizeof(float));
    memcpy(db, db0, n * sizeof(float));
    DL_EXPECT_OK(dl_op_residual_backward(&be, da, db, da, n));
    for (size_t i = 0; i < n; i++)
        want[i] = 2.0 * dout[i];
    DL_ASSERT_REL(da, want, n, 1e-7);
    free(dout), free(da), free(db), free(da0), free(db0), free(diff), free(a), free(b), free(ga), free(gb), free(want);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    backward_case(&rng, 1);
    backward_case(&rng, 33);
    backward_case(&rng, 70001);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float a[16] = {0}, b[16] = {0}, c[16] = {0};
    DL_EXPECT_INVALID(dl_op_residual_forward(&be, NULL, a, b, 16));
    DL_EXPECT_INVALID(dl_op_residual_forward(&be, c, NULL, b, 16));
    DL_EXPECT_INVALID(dl_op_residual_forward(&be, c, a, NULL, 16));
    DL_EXPECT_INVALID(dl_op_residual_forward(&be, c, a, b, 0));
    DL_EXPECT_INVALID(dl_op_residual_forward(&be, a + 1, a, b, 8));
    DL_EXPECT_INVALID(dl_op_residual_forward(&be, c, a, b, SIZE_MAX / 4 + 1));
    DL_EXPECT_INVALID(dl_op_residual_backward(&be, NULL, b, c, 16));
    DL_EXPECT_INVALID(dl_op_residual_backward(&be, a, NULL, c, 16));
    DL_EXPECT_INVALID(dl_op_residual_backward(&be, a, b, NULL, 16));
    DL_EXPECT_INVALID(dl_op_residual_backward(&be, a, a + 4, c, 8));
    DL_EXPECT_INVALID(dl_op_residual_backward(&be, a, b, c, 0));
    DL_EXPECT_INVALID(dl_op_residual_forward(NULL, c, a, b, 16));
    dl_error_clear();
    for (int i = 0; i < 16; i++)
        assert_true(a[i] == 0.0f && b[i] == 0.0f && c[i] == 0.0f);
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
        cmocka_unit_test(forward_matches_reference),
        cmocka_unit_test(backward_matches_finite_differences_and_accumulates),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
