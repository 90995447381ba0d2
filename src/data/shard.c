/* shard.c — the per-epoch Feistel permutation and the rank slice (see shard.h for why a Feistel network). */
#include "data/shard.h"

#include "core/philox.h"

void dl_perm_init(dl_perm *perm, uint64_t n, uint64_t seed, uint64_t epoch, int shuffle) {
    perm->n = n;
    perm->seed = seed;
    perm->stream = ((uint64_t)DL_STREAM_SHUFFLE << 32) | (epoch & 0xffffffffu);
    perm->shuffle = shuffle && n > 1;
    perm->bits_hi = perm->bits_lo = perm->rounds = 0;
    if (!perm->shuffle)
        return;
    /* b = smallest width with 2^b ≥ n, at least 2 so that both halves have a bit. */
    int b = 2;
    while (b < 64 && (UINT64_C(1) << b) < n)
        b++;
    perm->bits_hi = (b + 1) / 2;
    perm->bits_lo = b / 2;
    /* Narrow halves make weak rounds (a round function on 1-4 bit inputs has few choices), so small domains get
     * more of them; the count is even so the half widths are back in place after the last round. Measured: with
     * 6 rounds the 120 orders of 5 records come out with chi-square 1578 (119 degrees of freedom), with 24 rounds
     * 143; from 64 records up 6 rounds already pass position and pair-frequency tests. */
    perm->rounds = b <= 8 ? 24 : b <= 16 ? 12 : 8;
}

static inline uint64_t low_mask(int bits) { return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1; }

/* One pass of the network over [0, 2^b): state (L, R) with widths (wl, wr) becomes (R, L ^ F(R)) with widths
 * (wr, wl). F is Philox keyed by the seed, its counter holding the round and R, so every (round, R) is fresh. */
static uint64_t feistel(const dl_perm *perm, uint64_t x) {
    int wl = perm->bits_hi, wr = perm->bits_lo;
    uint64_t left = x >> wr, right = x & low_mask(wr);
    for (int round = 0; round < perm->rounds; round++) {
        uint32_t out[4];
        dl_philox_block(perm->seed, perm->stream, ((uint64_t)round << 32) | right, out);
        uint64_t f = ((uint64_t)out[1] << 32 | out[0]) & low_mask(wl);
        uint64_t new_right = (left ^ f) & low_mask(wl);
        left = right;
        right = new_right;
        int w = wl;
        wl = wr;
        wr = w;
    }
    return (left << wr) | right;
}

uint64_t dl_perm_at(const dl_perm *perm, uint64_t i) {
    if (!perm->shuffle)
        return i;
    /* Cycle walking: the network permutes [0, 2^b); following the cycle of i until it re-enters [0, n) gives a
     * permutation of [0, n). The domain is less than 2n, so on average fewer than two passes. */
    uint64_t x = i;
    do {
        x = feistel(perm, x);
    } while (x >= perm->n);
    return x;
}

uint64_t dl_shard_count_for(uint64_t num_records, uint32_t world, uint32_t rank) {
    if (world == 0 || rank >= world || num_records <= rank)
        return 0;
    return (num_records - rank + world - 1) / world;
}

dl_status dl_shard_init(dl_shard *shard, uint64_t num_records, uint32_t world, uint32_t rank, uint64_t seed,
                        int shuffle) {
    DL_REQUIRE(shard != NULL, DL_ERR_INVALID, "dl_shard_init: shard is NULL");
    DL_REQUIRE(world > 0 && rank < world, DL_ERR_INVALID, "rank %u of a world of %u ranks is out of range", rank,
               world);
    if (num_records < world) {
        dl_status s = DL_FAIL(DL_ERR_INVALID,
                              "%llu records cannot feed %u ranks: rank %llu and above would get no record at all",
                              (unsigned long long)num_records, world, (unsigned long long)num_records);
        dl_error_hint("give the data at least one record per rank, or run on fewer ranks");
        return s;
    }
    shard->num_records = num_records;
    shard->world = world;
    shard->rank = rank;
    shard->seed = seed;
    shard->shuffle = shuffle != 0;
    shard->count = dl_shard_count_for(num_records, world, rank);
    shard->max_count = dl_shard_count_for(num_records, world, 0);
    return DL_OK;
}

uint64_t dl_shard_record(const dl_shard *shard, uint64_t epoch, uint64_t position) {
    dl_perm perm;
    dl_perm_init(&perm, shard->num_records, shard->seed, epoch, shard->shuffle);
    return dl_perm_at(&perm, shard->rank + position * shard->world);
}

uint64_t dl_shard_batches_per_epoch(const dl_shard *shard, uint32_t rows) {
    if (!shard || rows == 0)
        return 0;
    return (shard->max_count + rows - 1) / rows;
}
