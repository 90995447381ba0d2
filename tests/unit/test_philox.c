/* test_philox.c — Philox4x32-10 against the Random123 known-answer vectors, and the stream helpers. */
#include "testutil.h"

#include <math.h>

#include "core/philox.h"

typedef struct philox_kat {
    uint32_t ctr[4];
    uint32_t key[2];
    uint32_t expected[4];
} philox_kat;

/* Random123's kat_vectors for philox4x32 with 10 rounds. */
static const philox_kat kats[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void philox_matches_random123_known_answers(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof kats / sizeof kats[0]; t++) {
        uint32_t out[4];
        dl_philox4x32_10(kats[t].ctr, kats[t].key, out);
        for (int i = 0; i < 4; i++)
            if (out[i] != kats[t].expected[i])
                DL_TEST_FAIL("vector %zu word %d: got 0x%08x, want 0x%08x", t, i, out[i], kats[t].expected[i]);
    }
}

static void rng_stream_is_random_access(void **state) {
    (void)state;
    dl_rng rng;
    dl_rng_init(&rng, 42, 7);
    for (uint64_t i = 0; i < 37; i++) {
        uint32_t sequential = dl_rng_u32(&rng);
        assert_int_equal(sequential, dl_philox_word(42, 7, i));
    }
}

static void rng_uniform_and_normal_have_expected_moments(void **state) {
    (void)state;
    dl_rng rng;
    dl_rng_init(&rng, 1, DL_STREAM_INIT);
    double sum = 0, sumsq = 0, nsum = 0, nsumsq = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = dl_rng_uniform(&rng);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
        sumsq += u * u;
        float z = dl_rng_normal(&rng);
        nsum += z;
        nsumsq += z * z;
    }
    assert_true(fabs(sum / n - 0.5) < 0.005);
    assert_true(fabs(sumsq / n - sum / n * sum / n - 1.0 / 12) < 0.003);
    assert_true(fabs(nsum / n) < 0.01);
    assert_true(fabs(nsumsq / n - 1.0) < 0.02);
}

static void rng_below_stays_in_range_and_covers_it(void **state) {
    (void)state;
    dl_rng rng;
    dl_rng_init(&rng, 9, DL_STREAM_DATA);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t v = dl_rng_below(&rng, 7);
        assert_true(v < 7);
        seen[v]++;
    }
    for (int i = 0; i < 7; i++)
        assert_true(seen[i] > 800 && seen[i] < 1200);
    assert_int_equal(dl_rng_below(&rng, 1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(philox_matches_random123_known_answers),
        cmocka_unit_test(rng_stream_is_random_access),
        cmocka_unit_test(rng_uniform_and_normal_have_expected_moments),
        cmocka_unit_test(rng_below_stays_in_range_and_covers_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
