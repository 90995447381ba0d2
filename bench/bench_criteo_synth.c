/* bench_criteo_synth.c — writes Criteo-Kaggle-shaped click rows as libffm text, for bench/criteo_kaggle.sh.
 *
 *     bench_criteo_synth -o OUT.txt [--rows N] [--buckets M] [--seed S]
 *
 * The shape of the Kaggle Display Advertising Challenge data after libffm's winning recipe (the "3 idiots'"
 * converters): 39 fields, every row holding all 39 (a missing value is a feature of its own), value 1 everywhere.
 *   - Fields 0-12 (I1-I13) are counts. A count v > 2 becomes the bin floor(log(v)^2), v <= 2 the bin "SP<v>",
 *     a missing one the bin "-": as the recipe does. Counts are log-normal with a per-field scale; 0-40 % missing.
 *   - Fields 13-38 (C1-C26) are categories with Zipf-skewed frequencies (exponent 1.05-1.25) over vocabularies of
 *     4 to 10 million values, as Criteo's range from a handful (C20) to millions (C3, C12, C21); 0-40 % missing.
 *   - Each (field, value) key is hashed into [1, M) (the recipe's `hash % (nr_bins - 1) + 1`, with splitmix64 in
 *     place of md5), M = 1,000,000 by default: the recipe's 1e6 bins.
 *   - The label is a Bernoulli draw from σ(−1.8 + Σ effect(key)), each key's effect fixed by its hash (N(0, 0.35²)
 *     approximated by a sum of uniforms), which gives about 30 % clicks (Criteo: 25.6 %).
 * The same arguments give the same bytes. Not a benchmark by itself; the timed runs are bench/ffm_e2e.sh. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

enum { NUMERIC = 13, CATEGORICAL = 26, FIELDS = NUMERIC + CATEGORICAL };

/* splitmix64 stream: the generator's randomness. */
static uint64_t next_u64(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15ull;
    return dl_hash_u64(*state);
}

static double next_unit(uint64_t *state) { return (double)(next_u64(state) >> 11) * (1.0 / 9007199254740992.0); }

static double next_normal(uint64_t *state) {
    double u1 = next_unit(state), u2 = next_unit(state);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A rank in [1, v] with P(r) ∝ r^-s (s > 1), by inverting the continuous approximation of the Zipf CDF. */
static uint64_t zipf_rank(uint64_t *state, double s, double v) {
    double u = next_unit(state);
    double a = pow(v, 1.0 - s) - 1.0;
    double r = pow(a * u + 1.0, 1.0 / (1.0 - s));
    uint64_t k = (uint64_t)r;
    return k < 1 ? 1 : k > (uint64_t)v ? (uint64_t)v : k;
}

/* The effect of a key on the logit: fixed by its hash, mean 0, standard deviation 0.35 (a sum of 4 uniforms). */
static double key_effect(uint64_t key) {
    uint64_t h = dl_hash_u64(key ^ 0x5eedull);
    double sum = 0.0;
    for (int i = 0; i < 4; i++, h >>= 16)
        sum += (double)(h & 0xffff) / 65535.0 - 0.5;
    return sum * 0.35 * sqrt(3.0); /* a uniform on [-1/2, 1/2] has variance 1/12; four: 1/3 */
}

int main(int argc, char **argv) {
    const char *out = NULL;
    uint64_t rows = 10000000, buckets = 1000000, seed = 1;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && more)
            out = argv[++i];
        else if (!strcmp(argv[i], "--rows") && more)
            rows = (uint64_t)strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--buckets") && more)
            buckets = (uint64_t)strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--seed") && more)
            seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_criteo_synth -o OUT.txt [--rows N] [--buckets M] [--seed S]\n");
            return 2;
        }
    }
    if (!out || rows < 1 || buckets < 2) {
        fprintf(stderr, "bench_criteo_synth: need -o OUT.txt, --rows >= 1 and --buckets >= 2\n");
        return 2;
    }
    FILE *f = fopen(out, "w");
    if (!f) {
        perror(out);
        return 1;
    }
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    /* Per field: missing rate, and the count scale (numeric) or the vocabulary and Zipf exponent (categorical). */
    double missing[FIELDS], scale[FIELDS], vocab[FIELDS], skew[FIELDS];
    uint64_t setup = seed * 0x100000001B3ull + 7;
    for (int j = 0; j < FIELDS; j++) {
        missing[j] = 0.4 * next_unit(&setup) * next_unit(&setup);
        scale[j] = 0.5 + 4.5 * next_unit(&setup);                  /* log-normal: e^N(scale, 1.5²) */
        vocab[j] = floor(pow(10.0, 0.6 + 6.4 * next_unit(&setup))); /* 4 .. 10^7 values */
        skew[j] = 1.05 + 0.2 * next_unit(&setup);
    }
    uint64_t state = seed;
    uint64_t keys[FIELDS];
    char line[FIELDS * 24 + 8];
    for (uint64_t r = 0; r < rows; r++) {
        double logit = -1.8;
        for (int j = 0; j < FIELDS; j++) {
            uint64_t value; /* the recipe's bin or category, as a number: 0 stands for missing */
            if (next_unit(&state) < missing[j]) {
                value = 0;
            } else if (j < NUMERIC) {
                double v = floor(exp(scale[j] + 1.5 * next_normal(&state))) - 1.0;
                if (v < 0)
                    v = 0;
                double lv = log(v);
                value = v > 2 ? 16 + (uint64_t)(lv * lv) : 1 + (uint64_t)v; /* bins; "SP0".."SP2" below 16 */
            } else {
                value = zipf_rank(&state, skew[j], vocab[j]);
            }
            uint64_t key = dl_hash_pair((uint64_t)j, value);
            keys[j] = key % (buckets - 1) + 1;
            logit += key_effect(key);
        }
        int label = next_unit(&state) < 1.0 / (1.0 + exp(-logit));
        int n = snprintf(line, sizeof line, "%d", label);
        for (int j = 0; j < FIELDS; j++)
            n += snprintf(line + n, sizeof line - (size_t)n, " %d:%llu:1", j, (unsigned long long)keys[j]);
        line[n++] = '\n';
        if (fwrite(line, 1, (size_t)n, f) != (size_t)n) {
            perror(out);
            fclose(f);
            return 1;
        }
    }
    if (fclose(f) != 0) {
        perror(out);
        return 1;
    }
    return 0;
}
