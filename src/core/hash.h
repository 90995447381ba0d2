/* hash.h — stable 64-bit hashes for feature hashing, row ownership and name lookup.
 *
 * Hashes here are part of dealer's on-disk and cross-rank contract: the bucket a feature id lands in decides which
 * embedding row it trains, and a checkpoint is only meaningful if the same id lands in the same row on every machine,
 * rank count and release. So each function is a fixed, documented formula on integers (no dependence on
 * endianness, pointer size or compiler), and its exact definition is in docs/core.md so users can compute bucket
 * ids in other tools. Never change one; add a new function instead.
 *
 *   dl_hash_u64(x)        the splitmix64 output function applied to x: z = x + 0x9E3779B97F4A7C15,
 *                         z = (z ^ z>>30) * 0xBF58476D1CE4E5B9, z = (z ^ z>>27) * 0x94D049BB133111EB, z ^ z>>31
 *                         (all mod 2^64). A bijection on 64-bit values, so distinct ids never collide before
 *                         the reduction to buckets.
 *   dl_hash_pair(a, b)    dl_hash_u64(dl_hash_u64(a) ^ b): a (field, feature) or (table, id) key.
 *   dl_hash_bytes(p,n,s)  xxHash64 of n bytes with seed s (Yann Collet's specification, little-endian reads).
 *   dl_hash_bucket(k, n)  dl_hash_u64(k) % n: the feature-hashing bucket of id k in a table of n rows.
 *   dl_hash_owner(r, w)   dl_hash_u64(r) % w: the rank that owns row r of a sharded table on w ranks.
 *
 * Signed ids (int32/int64) are hashed as their two's-complement value widened to 64 bits: cast to int64_t first,
 * then to uint64_t, so -1 is 0xFFFFFFFFFFFFFFFF whatever its original width.
 *
 * The modulo reduction has a bias of at most n / 2^64, negligible for any real table size. */
#ifndef DL_CORE_HASH_H
#define DL_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DL_HASH_GAMMA 0x9E3779B97F4A7C15ull

/* The splitmix64 output for state x (see the top of this file). Inline: it sits in the inner loop of the sparse
 * models' feature lookup. */
static inline uint64_t dl_hash_u64(uint64_t x) {
    uint64_t z = x + DL_HASH_GAMMA;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A hash of the ordered pair (a, b); dl_hash_pair(a, b) != dl_hash_pair(b, a) in general. */
static inline uint64_t dl_hash_pair(uint64_t a, uint64_t b) { return dl_hash_u64(dl_hash_u64(a) ^ b); }

/* xxHash64 of `len` bytes at `data` (NULL is allowed when len is 0) with `seed`. */
uint64_t dl_hash_bytes(const void *data, size_t len, uint64_t seed);

/* xxHash64 of a NUL-terminated string with seed 0 (NULL hashes like ""). */
uint64_t dl_hash_str(const char *s);

/* The bucket in [0, buckets) of id `key` for feature hashing; buckets > 0 (0 returns 0 rather than dividing by
 * zero, but callers validate the table size up front). */
static inline uint64_t dl_hash_bucket(uint64_t key, uint64_t buckets) {
    return buckets ? dl_hash_u64(key) % buckets : 0;
}

/* The rank in [0, world) that owns row `row` of a row-sharded table; world > 0 (0 returns 0). */
static inline int dl_hash_owner(uint64_t row, int world) {
    return world > 0 ? (int)(dl_hash_u64(row) % (uint64_t)world) : 0;
}

#ifdef __cplusplus
}
#endif

#endif
