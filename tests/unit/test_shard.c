/* test_shard.c — the per-epoch permutation and the rank slices: bijection, exactly-once coverage for W = 1, 2, 3, 5
 * over several epochs, the same order whatever the rank or world size, fresh orders per epoch and seed, uniformity,
 * and the fewer-records-than-ranks error. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "data/shard.h"

static uint64_t seed_for_test(void) { return dl_test_seed() * 0x9E3779B97F4A7C15ull + 1; }

static void perm_is_a_bijection_for_every_small_size(void **state) {
    (void)state;
    uint8_t *seen = malloc(5000);
    assert_non_null(seen);
    for (uint64_t n = 1; n <= 5000; n = n < 70 ? n + 1 : n * 3 + 1) {
        for (uint64_t epoch = 0; epoch < 3; epoch++) {
            dl_perm perm;
            dl_perm_init(&perm, n, seed_for_test(), epoch, 1);
            memset(seen, 0, n);
            for (uint64_t i = 0; i < n; i++) {
                uint64_t x = dl_perm_at(&perm, i);
                if (x >= n || seen[x])
                    DL_TEST_FAIL("n %llu epoch %llu: position %llu maps to %llu (%s)", (unsigned long long)n,
                                 (unsigned long long)epoch, (unsigned long long)i, (unsigned long long)x,
                                 x >= n ? "out of range" : "twice");
                seen[x] = 1;
            }
        }
    }
    free(seen);
}

static void perm_of_a_huge_domain_stays_in_range_and_is_injective_on_a_sample(void **state) {
    (void)state;
    const uint64_t n = (UINT64_C(1) << 40) + 12345;
    dl_perm perm;
    dl_perm_init(&perm, n, seed_for_test(), 7, 1);
    enum { SAMPLE = 4096 };
    uint64_t *out = malloc(SAMPLE * sizeof *out);
    assert_non_null(out);
    for (uint64_t i = 0; i < SAMPLE; i++) {
        out[i] = dl_perm_at(&perm, i * 268435399ull % n);
        assert_true(out[i] < n);
    }
    for (int i = 0; i < SAMPLE; i++)
        for (int j = i + 1; j < SAMPLE; j++)
            if (out[i] == out[j])
                DL_TEST_FAIL("two positions map to %llu", (unsigned long long)out[i]);
    free(out);
}

static void shuffle_off_is_the_identity(void **state) {
    (void)state;
    dl_perm perm;
    dl_perm_init(&perm, 1000, seed_for_test(), 3, 0);
    for (uint64_t i = 0; i < 1000; i++)
        assert_int_equal(dl_perm_at(&perm, i), i);
}

/* Every record exactly once per epoch across the W ranks, floor/ceil shares, for W = 1, 2, 3, 5 and sizes that
 * divide evenly and that don't. */
static void every_record_exactly_once_per_epoch_across_ranks(void **state) {
    (void)state;
    const uint32_t worlds[] = {1, 2, 3, 5};
    const uint64_t sizes[] = {5, 17, 100, 1001, 4099};
    uint32_t *hits = malloc(4099 * sizeof *hits);
    assert_non_null(hits);
    for (size_t wi = 0; wi < 4; wi++) {
        uint32_t W = worlds[wi];
        for (size_t si = 0; si < 5; si++) {
            uint64_t n = sizes[si];
            for (uint64_t epoch = 0; epoch < 4; epoch++) {
                memset(hits, 0, n * sizeof *hits);
                for (uint32_t r = 0; r < W; r++) {
                    dl_shard shard;
                    assert_int_equal(dl_shard_init(&shard, n, W, r, seed_for_test(), 1), DL_OK);
                    uint64_t want = n / W + (r < n % W ? 1 : 0);
                    if (shard.count != want)
                        DL_TEST_FAIL("n %llu W %u rank %u: %llu records, want %llu", (unsigned long long)n, W, r,
                                     (unsigned long long)shard.count, (unsigned long long)want);
                    assert_int_equal(shard.max_count, (n + W - 1) / W);
                    for (uint64_t p = 0; p < shard.count; p++)
                        hits[dl_shard_record(&shard, epoch, p)]++;
                }
                for (uint64_t i = 0; i < n; i++)
                    if (hits[i] != 1)
                        DL_TEST_FAIL("n %llu W %u epoch %llu: record %llu read %u times", (unsigned long long)n, W,
                                     (unsigned long long)epoch, (unsigned long long)i, hits[i]);
            }
        }
    }
    free(hits);
}

/* The order is a function of (seed, epoch, n) only: rank r of W reads the global positions r, r + W, ... of the
 * same sequence whatever W is, so every rank agrees without talking. */
static void every_rank_and_world_size_sees_the_same_permutation(void **state) {
    (void)state;
    const uint64_t n = 997;
    uint64_t reference[997];
    dl_shard one;
    assert_int_equal(dl_shard_init(&one, n, 1, 0, seed_for_test(), 1), DL_OK);
    for (uint64_t epoch = 0; epoch < 3; epoch++) {
        for (uint64_t g = 0; g < n; g++)
            reference[g] = dl_shard_record(&one, epoch, g);
        for (uint32_t W = 2; W <= 7; W++)
            for (uint32_t r = 0; r < W; r++) {
                dl_shard shard;
                assert_int_equal(dl_shard_init(&shard, n, W, r, seed_for_test(), 1), DL_OK);
                for (uint64_t p = 0; p < shard.count; p++)
                    if (dl_shard_record(&shard, epoch, p) != reference[r + p * W])
                        DL_TEST_FAIL("W %u rank %u position %llu disagrees with the global order", W, r,
                                     (unsigned long long)p);
            }
    }
}

static uint64_t same_positions(uint64_t n, uint64_t seed_a, uint64_t epoch_a, uint64_t seed_b, uint64_t epoch_b) {
    dl_perm a, b;
    dl_perm_init(&a, n, seed_a, epoch_a, 1);
    dl_perm_init(&b, n, seed_b, epoch_b, 1);
    uint64_t same = 0;
    for (uint64_t i = 0; i < n; i++)
        same += dl_perm_at(&a, i) == dl_perm_at(&b, i);
    return same;
}

static void epochs_and_seeds_give_different_orders(void **state) {
    (void)state;
    const uint64_t n = 10000, seed = seed_for_test();
    /* Two independent random orders agree in about one position; allow plenty. */
    for (uint64_t e = 0; e < 5; e++) {
        uint64_t same = same_positions(n, seed, e, seed, e + 1);
        if (same > 20)
            DL_TEST_FAIL("epochs %llu and %llu agree in %llu of %llu positions", (unsigned long long)e,
                         (unsigned long long)e + 1, (unsigned long long)same, (unsigned long long)n);
    }
    uint64_t same = same_positions(n, seed, 0, seed + 1, 0);
    if (same > 20)
        DL_TEST_FAIL("seeds %llu and %llu agree in %llu positions", (unsigned long long)seed,
                     (unsigned long long)seed + 1, (unsigned long long)same);
    assert_int_equal(same_positions(n, seed, 4, seed, 4), n);
}

/* All 120 orders of 5 records, each about equally often over many epochs (chi-square, 119 degrees of freedom:
 * mean 119, sd 15.4; the bound is 6 sd). Tiny domains are where a Feistel network is weakest. */
static void orders_of_five_records_are_uniform(void **state) {
    (void)state;
    enum { N = 5, ORDERS = 120, PER = 200 };
    int counts[ORDERS] = {0};
    uint64_t seed = seed_for_test();
    for (uint64_t e = 0; e < ORDERS * PER; e++) {
        dl_perm perm;
        dl_perm_init(&perm, N, seed, e, 1);
        int p[N], code = 0;
        for (int i = 0; i < N; i++)
            p[i] = (int)dl_perm_at(&perm, (uint64_t)i);
        for (int i = 0; i < N; i++) {
            int smaller = 0;
            for (int j = i + 1; j < N; j++)
                smaller += p[j] < p[i];
            code = code * (N - i) + smaller;
        }
        counts[code]++;
    }
    double chi2 = 0;
    for (int i = 0; i < ORDERS; i++)
        chi2 += (counts[i] - (double)PER) * (counts[i] - (double)PER) / PER;
    if (chi2 > 119 + 6 * 15.4)
        DL_TEST_FAIL("orders of 5 records: chi-square %.1f over 119 degrees of freedom", chi2);
}

/* Which record lands first, and which in the middle, is uniform over records for a mid-sized dataset. */
static void first_and_middle_positions_are_uniform(void **state) {
    (void)state;
    enum { N = 300, EPOCHS = 60000 };
    int *first = calloc(N, sizeof *first), *middle = calloc(N, sizeof *middle);
    assert_true(first && middle);
    uint64_t seed = seed_for_test();
    for (uint64_t e = 0; e < EPOCHS; e++) {
        dl_perm perm;
        dl_perm_init(&perm, N, seed, e, 1);
        first[dl_perm_at(&perm, 0)]++;
        middle[dl_perm_at(&perm, N / 2)]++;
    }
    double expect = (double)EPOCHS / N, c1 = 0, c2 = 0;
    for (int i = 0; i < N; i++) {
        c1 += (first[i] - expect) * (first[i] - expect) / expect;
        c2 += (middle[i] - expect) * (middle[i] - expect) / expect;
    }
    /* 299 degrees of freedom: sd 24.5, bound 6 sd. */
    if (c1 > 299 + 6 * 24.5 || c2 > 299 + 6 * 24.5)
        DL_TEST_FAIL("position frequencies: chi-square %.1f (first) and %.1f (middle) over 299 dof", c1, c2);
    free(first);
    free(middle);
}

static void fewer_records_than_ranks_is_invalid(void **state) {
    (void)state;
    dl_shard shard;
    dl_error_clear();
    assert_int_equal(dl_shard_init(&shard, 2, 3, 0, 1, 1), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "2 records cannot feed 3 ranks"));
    assert_non_null(strstr(dl_error_message(), "hint"));
    assert_int_equal(dl_shard_init(&shard, 0, 1, 0, 1, 1), DL_ERR_INVALID);
    assert_int_equal(dl_shard_init(&shard, 10, 0, 0, 1, 1), DL_ERR_INVALID);
    assert_int_equal(dl_shard_init(&shard, 10, 2, 2, 1, 1), DL_ERR_INVALID);
    assert_int_equal(dl_shard_init(&shard, 3, 3, 2, 1, 1), DL_OK);
    assert_int_equal(shard.count, 1);
    dl_error_clear();
}

static void batches_per_epoch_is_the_same_on_every_rank(void **state) {
    (void)state;
    /* n = 10, W = 3: ranks get 4, 3, 3 records; with B = 3 every rank runs ceil(4 / 3) = 2 batches. */
    for (uint32_t r = 0; r < 3; r++) {
        dl_shard shard;
        assert_int_equal(dl_shard_init(&shard, 10, 3, r, 1, 1), DL_OK);
        assert_int_equal(dl_shard_batches_per_epoch(&shard, 3), 2);
        assert_int_equal(dl_shard_batches_per_epoch(&shard, 4), 1);
        assert_int_equal(dl_shard_batches_per_epoch(&shard, 1), 4);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(perm_is_a_bijection_for_every_small_size),
        cmocka_unit_test(perm_of_a_huge_domain_stays_in_range_and_is_injective_on_a_sample),
        cmocka_unit_test(shuffle_off_is_the_identity),
        cmocka_unit_test(every_record_exactly_once_per_epoch_across_ranks),
        cmocka_unit_test(every_rank_and_world_size_sees_the_same_permutation),
        cmocka_unit_test(epochs_and_seeds_give_different_orders),
        cmocka_unit_test(orders_of_five_records_are_uniform),
        cmocka_unit_test(first_and_middle_positions_are_uniform),
        cmocka_unit_test(fewer_records_than_ranks_is_invalid),
        cmocka_unit_test(batches_per_epoch_is_the_same_on_every_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
