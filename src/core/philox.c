/* philox.c — the sequential generator over a Philox stream (see philox.h). */
#include "core/philox.h"

#include <math.h>

void dl_rng_init(dl_rng *rng, uint64_t seed, uint64_t stream) {
    rng->seed = seed;
    rng->stream = stream;
    rng->position = 0;
}

uint32_t dl_rng_u32(dl_rng *rng) { return dl_philox_word(rng->seed, rng->stream, rng->position++); }

uint64_t dl_rng_u64(dl_rng *rng) {
    uint64_t lo = dl_rng_u32(rng);
    uint64_t hi = dl_rng_u32(rng);
    return (hi << 32) | lo;
}

float dl_rng_uniform(dl_rng *rng) { return dl_philox_uniform(dl_rng_u32(rng)); }

double dl_rng_uniform_double(dl_rng *rng) { return (double)(dl_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0); }

float dl_rng_normal(dl_rng *rng) {
    double u1 = dl_rng_uniform_double(rng);
    double u2 = dl_rng_uniform_double(rng);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t dl_rng_below(dl_rng *rng, uint64_t n) {
    if (n <= 1)
        return 0;
    /* Rejection: draw until the value falls below the largest multiple of n. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    uint64_t x;
    do {
        x = dl_rng_u64(rng);
    } while (x >= limit);
    return x % n;
}
