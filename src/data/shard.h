/* shard.h — which records a rank reads in each epoch, and in what order.
 *
 * Epoch e visits the records in the order of a permutation π_e of [0, n) that depends only on (seed, e, n), never on
 * the rank or the world size, so every rank computes the same π_e without talking to the others. Rank r of W takes
 * the positions r, r + W, r + 2W, ... of π_e: across the ranks every record is read exactly once per epoch, for any
 * W ≤ n (odd ones too), and each rank gets floor(n / W) or ceil(n / W) records (the first n mod W ranks one more).
 *
 * π_e is a keyed Feistel network on the smallest power of two ≥ n, walked in cycles until it lands inside [0, n)
 * ("cycle walking"): a bijection computed on the fly from its index. We chose it over a Fisher–Yates shuffle because
 *   - memory is O(1) instead of 8 bytes per record on every rank (a billion records would cost 8 GB per rank),
 *   - there is no O(n) pass at the start of every epoch, and a rank evaluates only its own positions,
 *   - position → record is random access, so a data cursor is just a position: resuming needs nothing rebuilt.
 * The round function is Philox4x32-10 keyed by the run seed on stream (DL_STREAM_SHUFFLE << 32 | e). Luby–Rackoff
 * needs four rounds for a pseudo-random permutation of a large domain; we use 8 above 2^16 records, 12 up to 2^16
 * and 24 up to 256, because rounds on narrow halves are weak (test_shard checks the orders of 5 records are
 * uniform). The halves have ceil(b/2) and floor(b/2) bits and swap widths each round, so the domain is less than
 * twice n and a lookup costs on average fewer than two walks: about 0.25 µs for a large dataset. */
#ifndef DL_DATA_SHARD_H
#define DL_DATA_SHARD_H

#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The permutation π_e of one epoch. Plain data: init it once per epoch, evaluate it anywhere. */
typedef struct dl_perm {
    uint64_t n;      /* domain [0, n) */
    uint64_t seed;   /* run seed (Philox key) */
    uint64_t stream; /* (DL_STREAM_SHUFFLE << 32) | epoch */
    int bits_hi;     /* width of the left half, ceil(b / 2); 0 when there is nothing to permute */
    int bits_lo;     /* width of the right half, floor(b / 2) */
    int rounds;      /* Feistel rounds: more for small domains */
    int shuffle;     /* 0: the identity (ordered reading, e.g. evaluation) */
} dl_perm;

/* Sets up π_epoch over [0, n) for `seed`; shuffle 0 gives the identity. */
void dl_perm_init(dl_perm *perm, uint64_t n, uint64_t seed, uint64_t epoch, int shuffle);
/* π(i) for i < n. */
uint64_t dl_perm_at(const dl_perm *perm, uint64_t i);

/* The records one rank reads per epoch. */
typedef struct dl_shard {
    uint64_t num_records; /* n */
    uint32_t world;       /* W */
    uint32_t rank;        /* r */
    uint64_t seed;
    int shuffle;
    uint64_t count;      /* records of rank r per epoch: ceil((n - r) / W) */
    uint64_t max_count;  /* records of rank 0 per epoch: ceil(n / W), the most any rank gets */
} dl_shard;

/* Records rank r of W reads per epoch: floor(n / W) or ceil(n / W). */
uint64_t dl_shard_count_for(uint64_t num_records, uint32_t world, uint32_t rank);

/* Sets up rank `rank` of `world`. Fails with DL_ERR_INVALID when world is 0, rank ≥ world, or n < world (some rank
 * would get no record at all); the message names the counts, the caller adds the files. */
dl_status dl_shard_init(dl_shard *shard, uint64_t num_records, uint32_t world, uint32_t rank, uint64_t seed,
                        int shuffle);

/* The global record index this rank reads at `position` (< shard->count) of epoch `epoch`: π_epoch(r + position·W). */
uint64_t dl_shard_record(const dl_shard *shard, uint64_t epoch, uint64_t position);

/* Batches of `rows` records per epoch when every rank must run the same number of steps: ceil(ceil(n / W) / rows).
 * Ranks with fewer records end the epoch with a partial or an empty batch (see docs/data-pipeline.md). */
uint64_t dl_shard_batches_per_epoch(const dl_shard *shard, uint32_t rows);

#ifdef __cplusplus
}
#endif

#endif
