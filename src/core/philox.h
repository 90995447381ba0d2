/* philox.h — Philox4x32-10, the counter-based generator of Salmon et al. (Random123).
 *
 * A counter-based generator has no hidden state: the 128 random bits for (key, counter) are a pure function of
 * both, so any rank or GPU thread can jump straight to element i of a stream and every device draws the same
 * numbers for the same seed. dealer maps its streams onto the counter as
 *
 *     key     = seed (low 32 bits, high 32 bits)
 *     counter = (index low, index high, stream low, stream high)
 *
 * where `stream` separates uses (parameter init, dropout of layer l, the data shuffle of epoch e, ...) and `index`
 * walks through one stream four 32-bit words at a time. The block function is inline and marked for host and device
 * so the CPU and CUDA backends share one definition (dropout masks agree bit for bit).
 *
 * Uniform floats use the top 24 bits: u = (x >> 8) * 2^-24, in [0, 1), exact in float. */
#ifndef DL_CORE_PHILOX_H
#define DL_CORE_PHILOX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__CUDACC__)
#define DL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DL_HOST_DEVICE static inline
#endif

#define DL_PHILOX_M0 0xD2511F53u
#define DL_PHILOX_M1 0xCD9E8D57u
#define DL_PHILOX_W0 0x9E3779B9u
#define DL_PHILOX_W1 0xBB67AE85u

/* The raw block function: 10 rounds on counter `ctr` with key `key`, result in `out` (may alias ctr). */
DL_HOST_DEVICE void dl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)DL_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)DL_PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += DL_PHILOX_W0;
        k1 += DL_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Four words of stream `stream` at block `index` for `seed`. */
DL_HOST_DEVICE void dl_philox_block(uint64_t seed, uint64_t stream, uint64_t index, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    dl_philox4x32_10(ctr, key, out);
}

/* Word `i` of a stream: word i lives in block i/4, lane i%4. */
DL_HOST_DEVICE uint32_t dl_philox_word(uint64_t seed, uint64_t stream, uint64_t i) {
    uint32_t out[4];
    dl_philox_block(seed, stream, i >> 2, out);
    return out[i & 3];
}

/* A uniform float in [0, 1) from one word (top 24 bits). */
DL_HOST_DEVICE float dl_philox_uniform(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* Stream ids used across modules: one place, so two uses never share a stream by accident. New ones at the end. */
enum dl_rng_stream {
    DL_STREAM_INIT = 1,       /* parameter initialisation: stream + parameter index */
    DL_STREAM_SHUFFLE = 2,    /* data shuffle: (DL_STREAM_SHUFFLE << 32) | epoch */
    DL_STREAM_DROPOUT = 3,    /* dropout: (DL_STREAM_DROPOUT << 32) | (step * layers + layer) mixed by the model */
    DL_STREAM_SAMPLE = 4,     /* generation sampling */
    DL_STREAM_DATA = 5,       /* data-side randomness other than the shuffle (splits, synthetic data) */
};

/* A sequential generator over one stream: a position that advances one word per draw. Plain data, so a checkpoint
 * stores it as three integers and resumes the exact sequence. */
typedef struct dl_rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t position; /* index of the next word */
} dl_rng;

void dl_rng_init(dl_rng *rng, uint64_t seed, uint64_t stream);
uint32_t dl_rng_u32(dl_rng *rng);
uint64_t dl_rng_u64(dl_rng *rng);
/* Uniform in [0, 1). */
float dl_rng_uniform(dl_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double dl_rng_uniform_double(dl_rng *rng);
/* Standard normal (Box–Muller on two uniform doubles). */
float dl_rng_normal(dl_rng *rng);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t dl_rng_below(dl_rng *rng, uint64_t n);

#ifdef __cplusplus
}
#endif

#endif
