/* test_ops_dropout.c — dl_op_dropout_forward/backward on the CPU backend: the mask is exactly the documented one
 * (element i kept when dl_philox_uniform(dl_philox_word(seed, stream, i)) >= p), computed here element by element;
 * p = 0 is the identity; results do not depend on threads or on in-place use; backward by central differences of
 * the masked forward and accumulation. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "ops/ops.h"

static dl_backend be;

static int kept(uint64_t seed, uint64_t stream, size_t i, float p) {
    return dl_philox_uniform(dl_philox_word(seed, stream, i)) >= p;
}

static void forward_case(dl_rng *rng, size_t n, float p, uint64_t seed, uint64_t stream) {
    float *x = dl_test_alloc_f(n), *y = dl_test_alloc_f(n), *y3 = dl_test_alloc_f(n), *inplace = dl_test_alloc_f(n);
    dl_test_fill_uniform(rng, x, n, -1.0f, 1.0f);
    dl_test_poison(y, n);
    DL_EXPECT_OK(dl_op_dropout_forward(&be, y, x, n, p, seed, stream));
    double *ref = dl_test_alloc_d(n);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        int k = kept(seed, stream, i, p);
        count += (size_t)k;
        ref[i] = k ? (double)x[i] / (1.0 - (double)p) : 0.0;
        if (!k && y[i] != 0.0f)
            DL_TEST_FAIL("p=%g n=%zu: element %zu should be dropped, got %.9g", (double)p, n, i, (double)y[i]);
        if (k && y[i] == 0.0f && x[i] != 0.0f)
            DL_TEST_FAIL("p=%g n=%zu: element %zu should be kept", (double)p, n, i);
    }
    DL_ASSERT_REL(y, ref, n, 2e-7);
    if (n >= 10000) { /* the kept fraction is 1 − p within 5 standard deviations */
        double sd = sqrt((double)n * p * (1.0 - p));
        if (fabs((double)count - (double)n * (1.0 - p)) > 5.0 * sd + 1.0)
            DL_TEST_FAIL("p=%g: kept %zu of %zu", (double)p, count, n);
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(3);
    DL_EXPECT_OK(dl_op_dropout_forward(&be, y3, x, n, p, seed, stream));
    omp_set_num_threads(saved);
    /* Bits hold: each element's mask comes from its own Philox counter and one multiply (no reduction). */
    assert_memory_equal(y, y3, n * sizeof(float));
    memcpy(inplace, x, n * sizeof(float));
    DL_EXPECT_OK(dl_op_dropout_forward(&be, inplace, inplace, n, p, seed, stream));
    assert_memory_equal(y, inplace, n * sizeof(float));
    free(x), free(y), free(y3), free(inplace), free(ref);
}

static void forward_applies_the_documented_mask(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    uint64_t seed = dl_rng_u64(&rng), stream = ((uint64_t)DL_STREAM_DROPOUT << 32) | 7;
    const size_t sizes[] = {1, 5, 1023, 1025, 3001, 100003};
    const float ps[] = {0.1f, 0.5f, 0.9f};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t q = 0; q < 3; q++)
            forward_case(&rng, sizes[s], ps[q], seed, stream);
}

static void zero_probability_is_the_identity(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    const size_t n = 40001;
    float *x = dl_test_alloc_f(n), *y = dl_test_alloc_f(n), *d = dl_test_alloc_f(n), *d0 = dl_test_alloc_f(n), *g = dl_test_alloc_f(n);
    dl_test_fill_uniform(&rng, x, n, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, g, n, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, d, n, -1.0f, 1.0f);
    memcpy(d0, d, n * sizeof(float));
    dl_test_poison(y, n);
    DL_EXPECT_OK(dl_op_dropout_forward(&be, y, x, n, 0.0f, 1, 2));
    /* p = 0: the op must copy, and x·1 is exact. */
    assert_memory_equal(y, x, n * sizeof(float));
    DL_EXPECT_OK(dl_op_dropout_forward(&be, y, y, n, 0.0f, 1, 2));
    assert_memory_equal(y, x, n * sizeof(float));
    DL_EXPECT_OK(dl_op_dropout_backward(&be, d, g, n, 0.0f, 1, 2));
    for (size_t i = 0; i < n; i++)
        if (d[i] != d0[i] + g[i])
            DL_TEST_FAIL("p = 0 backward: element %zu is %.9g, want %.9g", i, (double)d[i], (double)(d0[i] + g[i]));
    free(x), free(y), free(d), free(d0), free(g);
}

static void seed_and_stream_select_the_mask(void **state) {
    (void)state;
    const size_t n = 4096;
    float *x = dl_test_alloc_f(n), *a = dl_test_alloc_f(n), *b = dl_test_alloc_f(n), *c = dl_test_alloc_f(n), *e = dl_test_alloc_f(n);
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f;
    const uint64_t seed = 0x1234, stream = 3;
    DL_EXPECT_OK(dl_op_dropout_forward(&be, a, x, n, 0.5f, seed, stream));
    DL_EXPECT_OK(dl_op_dropout_forward(&be, b, x, n, 0.5f, seed, stream + 1));
    DL_EXPECT_OK(dl_op_dropout_forward(&be, c, x, n, 0.5f, seed + (1ull << 32), stream)); /* high seed bits count */
    DL_EXPECT_OK(dl_op_dropout_forward(&be, e, x, n, 0.5f, seed, stream + (1ull << 32))); /* high stream bits too */
    size_t db = 0, dc = 0, de = 0;
    for (size_t i = 0; i < n; i++) {
        db += a[i] != b[i];
        dc += a[i] != c[i];
        de += a[i] != e[i];
    }
    /* Independent masks at p = 0.5 disagree on about half the elements. */
    assert_true(db > n / 4 && dc > n / 4 && de > n / 4);
    free(x), free(a), free(b), free(c), free(e);
}

static void backward_case(dl_rng *rng, size_t n, float p) {
    const uint64_t seed = dl_rng_u64(rng), stream = 11;
    float *x = dl_test_alloc_f(n), *dout = dl_test_alloc_f(n), *dinp = dl_test_alloc_f(n), *dinp0 = dl_test_alloc_f(n), *diff = dl_test_alloc_f(n);
    dl_test_fill_uniform(rng, x, n, -1.0f, 1.0f);
    dl_test_fill_uniform(rng, dout, n, -1.0f, 1.0f);
    dl_test_fill_uniform(rng, dinp, n, -1.0f, 1.0f);
    memcpy(dinp0, dinp, n * sizeof(float));
    /* L = Σ dout·mask·x/(1−p) in double; element i moves only term i. */
    double *grad = dl_test_alloc_d(n), *want = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++) {
        double m = kept(seed, stream, i, p) ? 1.0 / (1.0 - (double)p) : 0.0, h = 1e-5, xi = x[i];
        grad[i] = (dout[i] * m * (xi + h) - dout[i] * m * (xi - h)) / (2.0 * h);
    }
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_dropout_backward(&be, dinp, dout, n, p, seed, stream));
        for (size_t i = 0; i < n; i++) {
            diff[i] = (float)((double)dinp[i] - dinp0[i]);
            want[i] = call * grad[i];
        }
        DL_ASSERT_REL(diff, want, n, 1e-5);
    }
    /* dinp may be dout. */
    memcpy(dinp, dout, n * sizeof(float));
    DL_EXPECT_OK(dl_op_dropout_backward(&be, dinp, dinp, n, p, seed, stream));
    for (size_t i = 0; i < n; i++)
        want[i] = dout[i] + grad[i];
    DL_ASSERT_REL(dinp, want, n, 1e-6);
    free(x), free(dout), free(dinp), free(dinp0), free(diff), free(grad), free(want);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 3);
    backward_case(&rng, 1, 0.3f);
    backward_case(&rng, 1027, 0.1f);
    backward_case(&rng, 50001, 0.7f);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float x[16] = {0}, y[16] = {0};
    DL_EXPECT_INVALID(dl_op_dropout_forward(&be, NULL, x, 16, 0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_forward(&be, y, NULL, 16, 0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_forward(&be, y, x, 0, 0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_forward(&be, y, x, 16, 1.0f, 1, 1));
    assert_non_null(strstr(dl_error_message(), "p = 1"));
    DL_EXPECT_INVALID(dl_op_dropout_forward(&be, y, x, 16, -0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_forward(&be, y, x, 16, NAN, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_forward(&be, x + 1, x, 8, 0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_backward(&be, NULL, x, 16, 0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_backward(&be, y, NULL, 16, 0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_backward(&be, y, x, 16, 2.0f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_backward(&be, y, y + 3, 8, 0.1f, 1, 1));
    DL_EXPECT_INVALID(dl_op_dropout_backward(&be, y, x, 0, 0.1f, 1, 1));
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
        cmocka_unit_test(forward_applies_the_documented_mask),
        cmocka_unit_test(zero_probability_is_the_identity),
        cmocka_unit_test(seed_and_stream_select_the_mask),
        cmocka_unit_test(backward_matches_finite_differences_and_accumulates),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
