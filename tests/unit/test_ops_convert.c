/* test_ops_convert.c — dl_op_f32_to_bf16/dl_op_bf16_to_f32 on the CPU backend: round to nearest, ties to even,
 * checked against a reference that picks the nearer of the two neighbouring bf16 values in double arithmetic, over
 * every bf16 value with the low-half patterns that matter (0, just under/at/over the half-way point, all ones);
 * NaN stays NaN with its sign; overflow rounds to inf; widening is exact for all 65536 values. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* bf16 h as a double (h not NaN); the value one step beyond the largest finite is 2^128. */
static double bf16_value(uint16_t h) {
    if ((h & 0x7FFF) == 0x7F80)
        return (h & 0x8000) ? -ldexp(1.0, 128) : ldexp(1.0, 128);
    return (double)from_bits((uint32_t)h << 16);
}

/* Round-to-nearest-even by comparing distances: the truncation and the next value away from zero. */
static uint16_t ref_to_bf16(float f) {
    if (isnan(f))
        return 0; /* checked separately */
    uint32_t u = to_bits(f);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    if ((u & 0xFFFF) == 0)
        return lo;
    double x = f, dlo = fabs(x - bf16_value(lo)), dhi = fabs(bf16_value(hi) - x);
    if (dlo < dhi)
        return lo;
    if (dhi < dlo)
        return hi;
    return (lo & 1) ? hi : lo;
}

static void rounding_is_nearest_even(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    enum { LOWS = 8 };
    const size_t n = 65536u * LOWS;
    float *x = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    dl_bf16 *h = malloc(n * sizeof(dl_bf16));
    assert_true(x && back && h);
    for (uint32_t high = 0; high < 65536u; high++) {
        const uint32_t lows[LOWS] = {0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF,
                                     dl_rng_u32(&rng) & 0xFFFF, dl_rng_u32(&rng) & 0xFFFF};
        for (int k = 0; k < LOWS; k++)
            x[(size_t)high * LOWS + k] = from_bits(high << 16 | lows[k]);
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, h, x, n));
    omp_set_num_threads(saved);
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            uint16_t got = h[i];
            if ((got & 0x7F80) != 0x7F80 || (got & 0x7F) == 0)
                DL_TEST_FAIL("NaN 0x%08x became 0x%04x, not a NaN", to_bits(x[i]), got);
            if ((got & 0x8000) != ((to_bits(x[i]) >> 16) & 0x8000))
                DL_TEST_FAIL("NaN 0x%08x lost its sign: 0x%04x", to_bits(x[i]), got);
            continue;
        }
        uint16_t want = ref_to_bf16(x[i]);
        if (h[i] != want)
            DL_TEST_FAIL("f32 0x%08x (%.9g) -> bf16 0x%04x, want 0x%04x", to_bits(x[i]), (double)x[i], h[i], want);
    }
    /* Named cases. */
    float special[6] = {1.0f, from_bits(0x3F808000), from_bits(0x3F818000), from_bits(0x7F7FFFFF), INFINITY,
                        -0.0f};
    dl_bf16 hs[6];
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, hs, special, 6));
    assert_int_equal(hs[0], 0x3F80);
    assert_int_equal(hs[1], 0x3F80); /* tie, even stays */
    assert_int_equal(hs[2], 0x3F82); /* tie, odd rounds up */
    assert_int_equal(hs[3], 0x7F80); /* past the largest bf16: inf */
    assert_int_equal(hs[4], 0x7F80);
    assert_int_equal(hs[5], 0x8000);
    free(x), free(back), free(h);
}

static void widening_is_exact(void **state) {
    (void)state;
    const size_t n = 65536;
    dl_bf16 *h = malloc(n * sizeof(dl_bf16)), *again = malloc(n * sizeof(dl_bf16));
    float *f = malloc(n * sizeof(float));
    assert_true(h && f && again);
    for (size_t i = 0; i < n; i++)
        h[i] = (dl_bf16)i;
    dl_test_poison(f, n);
    DL_EXPECT_OK(dl_op_bf16_to_f32(&be, f, h, n));
    for (size_t i = 0; i < n; i++)
        if (to_bits(f[i]) != (uint32_t)i << 16)
            DL_TEST_FAIL("bf16 0x%04zx widened to 0x%08x", i, to_bits(f[i]));
    /* Narrowing a widened value gives it back, NaN payloads included where the quiet bit was already set. */
    DL_EXPECT_OK(dl_op_f32_to_bf16(&be, again, f, n));
    for (size_t i = 0; i < n; i++) {
        int quiet_or_number = !isnan(f[i]) || (i & 0x40);
        if (quiet_or_number && again[i] != h[i])
            DL_TEST_FAIL("round trip of bf16 0x%04zx gave 0x%04x", i, again[i]);
    }
    free(h), free(f), free(again);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float f[16] = {0};
    dl_bf16 h[16] = {0};
    DL_EXPECT_INVALID(dl_op_f32_to_bf16(&be, NULL, f, 16));
    DL_EXPECT_INVALID(dl_op_f32_to_bf16(&be, h, NULL, 16));
    DL_EXPECT_INVALID(dl_op_f32_to_bf16(&be, h, f, 0));
    DL_EXPECT_INVALID(dl_op_f32_to_bf16(&be, (dl_bf16 *)f, f, 16)); /* in place is not supported */
    DL_EXPECT_INVALID(dl_op_f32_to_bf16(&be, h, f, SIZE_MAX / 2));
    DL_EXPECT_INVALID(dl_op_bf16_to_f32(&be, NULL, h, 16));
    DL_EXPECT_INVALID(dl_op_bf16_to_f32(&be, f, NULL, 16));
    DL_EXPECT_INVALID(dl_op_bf16_to_f32(&be, f, h, 0));
    DL_EXPECT_INVALID(dl_op_bf16_to_f32(&be, f, (dl_bf16 *)f + 4, 8));
    dl_error_clear();
    for (int i = 0; i < 16; i++)
        assert_true(f[i] == 0.0f && h[i] == 0);
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
        cmocka_unit_test(rounding_is_nearest_even),
        cmocka_unit_test(widening_is_exact),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
