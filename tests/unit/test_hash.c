/* test_hash.c — the hashes against values computed independently, and their spread over buckets and ranks.
 *
 * The expected values come from a separate Python implementation written from the same public definitions
 * (splitmix64's output function; the xxHash64 specification), and for xxHash64 they include the published
 * reference values ("" -> 0xEF46DB3751D8E999, "abc" -> 0x44BC2CF5AD770999, "The quick brown fox jumps over the lazy
 * dog" -> 0x0B242D361FDA71BC). splitmix64 seeded with 0 famously starts 0xE220A8397B1DCDAF, which is
 * dl_hash_u64(0). The Python used:
 *
 *     M = 2**64 - 1
 *     def u64(x):
 *         z = (x + 0x9E3779B97F4A7C15) & M
 *         z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
 *         z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
 *         return z ^ (z >> 31)
 *
 * These values are a compatibility promise (docs/core.md): if one changes, bucket ids in existing checkpoints
 * change with it. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "core/hash.h"

static void u64_matches_reference_values(void **state) {
    (void)state;
    static const struct {
        uint64_t x, h;
    } cases[] = {
        {0, 0xe220a8397b1dcdafull},
        {1, 0x910a2dec89025cc1ull},
        {2, 0x975835de1c9756ceull},
        {42, 0xbdd732262feb6e95ull},
        {123456789, 0x223c74d93deb7679ull},
        {0x8000000000000000ull, 0x481ec0a212a9f3dbull},
        {0xffffffffffffffffull, 0xe4d971771b652c20ull},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(dl_hash_u64(cases[i].x), cases[i].h);
    assert_int_equal(dl_hash_pair(3, 7), 0xe880a903bcff6547ull);
}

static void bucket_and_owner_match_reference_values(void **state) {
    (void)state;
    assert_int_equal(dl_hash_bucket(42, 1000), 413);
    /* A negative id is its two's-complement value widened to 64 bits. */
    assert_int_equal(dl_hash_bucket((uint64_t)(int64_t)(int32_t)-1, 1u << 20), 338976);
    assert_int_equal(dl_hash_bucket((uint64_t)(int64_t)-1, 1u << 20), 338976);
    assert_int_equal(dl_hash_owner(12345, 3), 2);
    /* Degenerate sizes return 0 instead of dividing by zero. */
    assert_int_equal(dl_hash_bucket(42, 0), 0);
    assert_int_equal(dl_hash_owner(42, 0), 0);
    assert_int_equal(dl_hash_owner(42, 1), 0);
}

static void bytes_match_xxhash64_reference_values(void **state) {
    (void)state;
    unsigned char seq[100];
    for (int i = 0; i < 100; i++)
        seq[i] = (unsigned char)i;
    static const char fox[] = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(dl_hash_bytes("", 0, 0), 0xef46db3751d8e999ull);
    assert_int_equal(dl_hash_bytes(NULL, 0, 0), 0xef46db3751d8e999ull);
    assert_int_equal(dl_hash_bytes("", 0, 1), 0xd5afba1336a3be4bull);
    assert_int_equal(dl_hash_bytes("a", 1, 0), 0xd24ec4f1a98c6e5bull);
    assert_int_equal(dl_hash_bytes("abc", 3, 0), 0x44bc2cf5ad770999ull);
    assert_int_equal(dl_hash_bytes(fox, strlen(fox), 0), 0x0b242d361fda71bcull);
    /* Lengths that reach each tail path: 7 (bytes only), 12 (8 + 4), 19, 32 (one stripe), 100 (stripes + all). */
    assert_int_equal(dl_hash_bytes(seq, 7, 5), 0xe4878bbf72f59115ull);
    assert_int_equal(dl_hash_bytes(seq, 12, 0), 0x424af23f1f08dca5ull);
    assert_int_equal(dl_hash_bytes("h.3.attn.qkv.weight", 19, 0), 0xf9af0e843e47383aull);
    assert_int_equal(dl_hash_bytes(seq, 32, 0), 0xcbf59c5116ff32b4ull);
    assert_int_equal(dl_hash_bytes(seq, 100, 0), 0x6ac1e58032166597ull);
    assert_int_equal(dl_hash_bytes(seq, 100, 0x9e3779b97f4a7c15ull), 0x3b97d91eba03e785ull);
    assert_int_equal(dl_hash_str("abc"), 0x44bc2cf5ad770999ull);
    assert_int_equal(dl_hash_str(NULL), 0xef46db3751d8e999ull);
}

static void bytes_do_not_depend_on_alignment(void **state) {
    (void)state;
    /* The same bytes at every offset of a buffer hash the same: reads are byte-assembled, never unaligned loads. */
    unsigned char buffer[128 + 8];
    dl_rng rng;
    dl_test_rng(&rng, 1);
    unsigned char data[128];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)dl_rng_u32(&rng);
    for (size_t len = 0; len <= sizeof data; len += 13) {
        uint64_t want = dl_hash_bytes(data, len, 99);
        for (size_t shift = 0; shift < 8; shift++) {
            memcpy(buffer + shift, data, len);
            if (dl_hash_bytes(buffer + shift, len, 99) != want)
                DL_TEST_FAIL("length %zu at offset %zu hashes differently", len, shift);
        }
    }
}

/* Chi-square statistic of `counts` against a uniform spread of `total` over `n` cells. */
static double chi_square(const unsigned *counts, size_t n, size_t total) {
    double expected = (double)total / (double)n, chi = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = counts[i] - expected;
        chi += d * d / expected;
    }
    return chi;
}

/* Feature ids are often small consecutive integers or multiples of a stride: both must spread evenly. */
static void buckets_spread_evenly(void **state) {
    (void)state;
    enum { BUCKETS = 1000, IDS = 200000 };
    static unsigned counts[BUCKETS];
    const uint64_t strides[] = {1, 1000, 1u << 20};
    for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
        memset(counts, 0, sizeof counts);
        for (uint64_t i = 0; i < IDS; i++)
            counts[dl_hash_bucket(i * strides[s], BUCKETS)]++;
        /* 999 degrees of freedom: mean 999, sd ~44.7; 1200 is ~4.5 sd, so a fair hash fails ~never. */
        double chi = chi_square(counts, BUCKETS, IDS);
        if (chi > 1200.0)
            DL_TEST_FAIL("stride %llu: chi-square %.1f over %d buckets", (unsigned long long)strides[s], chi,
                         BUCKETS);
    }
}

static void owners_spread_evenly(void **state) {
    (void)state;
    for (int world = 2; world <= 7; world++) {
        unsigned counts[7] = {0};
        const size_t rows = 70000;
        for (uint64_t r = 0; r < rows; r++) {
            int owner = dl_hash_owner(r, world);
            assert_true(owner >= 0 && owner < world);
            counts[owner]++;
        }
        /* world - 1 <= 6 degrees of freedom: chi-square above 30 has probability below 1e-4. */
        double chi = chi_square(counts, (size_t)world, rows);
        if (chi > 30.0)
            DL_TEST_FAIL("world %d: chi-square %.1f", world, chi);
    }
}

/* One flipped input bit flips each output bit with probability about 1/2 (the avalanche property). */
static void single_bit_changes_avalanche(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    double flips_u64 = 0, flips_bytes = 0;
    const int trials = 2000;
    for (int t = 0; t < trials; t++) {
        uint64_t x = dl_rng_u64(&rng);
        int bit = (int)dl_rng_below(&rng, 64);
        uint64_t y = x ^ (1ull << bit);
        flips_u64 += __builtin_popcountll(dl_hash_u64(x) ^ dl_hash_u64(y));
        unsigned char a[40], b[40];
        for (int i = 0; i < 40; i++)
            a[i] = (unsigned char)dl_rng_u32(&rng);
        memcpy(b, a, sizeof b);
        int byte_bit = (int)dl_rng_below(&rng, 40 * 8);
        b[byte_bit / 8] ^= (unsigned char)(1u << (byte_bit % 8));
        flips_bytes += __builtin_popcountll(dl_hash_bytes(a, 40, 0) ^ dl_hash_bytes(b, 40, 0));
    }
    /* Mean of 2000 Binomial(64, 1/2) counts: 32 with sd 0.09, so +-0.6 is far outside chance. */
    assert_true(fabs(flips_u64 / trials - 32.0) < 0.6);
    assert_true(fabs(flips_bytes / trials - 32.0) < 0.6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(u64_matches_reference_values),
        cmocka_unit_test(bucket_and_owner_match_reference_values),
        cmocka_unit_test(bytes_match_xxhash64_reference_values),
        cmocka_unit_test(bytes_do_not_depend_on_alignment),
        cmocka_unit_test(buckets_spread_evenly),
        cmocka_unit_test(owners_spread_evenly),
        cmocka_unit_test(single_bit_changes_avalanche),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
