/* hash.c — xxHash64 over bytes (see hash.h for the integer hashes, which are inline).
 *
 * Written from Yann Collet's xxHash specification (doc/xxhash_spec.md, "XXH64 algorithm"): four 64-bit accumulators
 * consume 32-byte stripes, are merged, then the tail is folded in 8, 4 and 1 bytes at a time and the result is
 * avalanched. Lanes are assembled from bytes in little-endian order so the value is the same on any host; compilers
 * turn the shifts back into single loads on little-endian machines. */
#include "core/hash.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read_le64(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline uint64_t read_le32(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t lane) {
    acc += lane * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t v) {
    acc ^= xxh_round(0, v);
    return acc * P1 + P4;
}

uint64_t dl_hash_bytes(const void *data, size_t len, uint64_t seed) {
    static const unsigned char empty[1] = {0};
    const unsigned char *p = data ? (const unsigned char *)data : empty;
    const unsigned char *end = p + (data ? len : 0);
    if (!data)
        len = 0;
    uint64_t acc;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const unsigned char *limit = end - 32;
        do {
            v1 = xxh_round(v1, read_le64(p));
            v2 = xxh_round(v2, read_le64(p + 8));
            v3 = xxh_round(v3, read_le64(p + 16));
            v4 = xxh_round(v4, read_le64(p + 24));
            p += 32;
        } while (p <= limit);
        acc = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        acc = xxh_merge(acc, v1);
        acc = xxh_merge(acc, v2);
        acc = xxh_merge(acc, v3);
        acc = xxh_merge(acc, v4);
    } else {
        acc = seed + P5;
    }
    acc += (uint64_t)len;
    while ((size_t)(end - p) >= 8) {
        acc ^= xxh_round(0, read_le64(p));
        acc = rotl64(acc, 27) * P1 + P4;
        p += 8;
    }
    if ((size_t)(end - p) >= 4) {
        acc ^= read_le32(p) * P1;
        acc = rotl64(acc, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        acc ^= (uint64_t)*p * P5;
        acc = rotl64(acc, 11) * P1;
        p++;
    }
    acc ^= acc >> 33;
    acc *= P2;
    acc ^= acc >> 29;
    acc *= P3;
    acc ^= acc >> 32;
    return acc;
}

uint64_t dl_hash_str(const char *s) { return dl_hash_bytes(s, s ? strlen(s) : 0, 0); }
