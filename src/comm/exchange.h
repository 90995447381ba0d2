/* exchange.h — summing a float buffer over ranks bucket by bucket, in a fixed order, without blocking.
 *
 * The buffer (a model's gradients) is cut into contiguous buckets. Each bucket is cut again into one chunk per rank:
 * rank r reduces chunk r. Reducing a bucket is a reduce-scatter — every rank sends chunk p of its buffer to rank p and
 * receives the other ranks' copies of its own chunk — then, for an all-reduce, an all-gather of the reduced chunks.
 * For ZeRO-1 the chunks are the ranks' optimizer slices (`slice_bounds`) cut by the bucket, and there is no
 * all-gather: each rank ends with the sums of its slice only.
 *
 * Why our own point-to-point messages and not MPI_Iallreduce: the owner of a chunk adds the W contributions in rank
 * order, ((g0 + g1) + g2) + ..., whatever the bucket boundaries, the chunk boundaries, the MPI library or its
 * algorithm choice for a message size. So the result does not depend on comm.bucket_mb, ZeRO-1 produces bit for bit
 * the gradient sums of the all-reduce, and two runs are identical. The traffic is the bandwidth-optimal
 * 2 (W-1)/W of the buffer per rank, like a ring all-reduce, in at most 2 (W-1) concurrent messages per bucket
 * (W - 1 steps of latency fewer than a ring). The cost is a staging area of (W-1)/W of the buffer for the copies
 * received, and a sum pass that reads W streams.
 *
 * Nothing moves unless some MPI call drives it (Open MPI has no progress thread): dl_exchange_progress tests
 * everything in flight, finishes the reduce-scatter of every bucket whose messages all arrived (the sum happens
 * there) and starts its all-gather. The trainer calls it between layers of the backward pass. dl_exchange_finish
 * starts any bucket not yet started and waits for all of them under the watchdog (comm.timeout_s).
 *
 * Buckets start in index order on every rank (start() refuses anything else), and each bucket and phase has its own
 * message tag on a private communicator, so messages can never match the wrong receive even when a rank starts all
 * buckets at once. */
#ifndef DL_COMM_EXCHANGE_H
#define DL_COMM_EXCHANGE_H

#include <stddef.h>

#include "comm/world.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_exchange_layout {
    size_t count;                /* floats in the buffer */
    int num_buckets;             /* ≥ 1 */
    const size_t *bucket_bounds; /* [num_buckets + 1]: bucket b is [bounds[b], bounds[b+1]); 0 … count, increasing */
    const size_t *slice_bounds;  /* [world + 1] or NULL: rank r owns [slice[r], slice[r+1]) of the whole buffer
                                    (ZeRO-1); NULL splits every bucket evenly among the ranks */
    int gather;                  /* 1: all-reduce (everyone gets every sum); 0: reduce-scatter only */
} dl_exchange_layout;

typedef struct dl_exchange dl_exchange;

/* The largest number of buckets a layout may have (two message tags each, within MPI's guaranteed tag range). */
int dl_exchange_max_buckets(void);

/* Where rank r's chunk of [begin, end) starts when a bucket is split evenly among `world` ranks (cut points are
 * multiples of 16 floats, 64 bytes, so every chunk but the last starts on a cache line). r = world gives end. */
size_t dl_exchange_even_cut(size_t begin, size_t end, int world, int r);

/* Prepares the exchange of `buffer` (host memory; it must stay allocated) over `world`. Collective: it duplicates
 * the world's communicator. With one rank every operation completes at once. */
dl_status dl_exchange_create(dl_exchange **exchange, dl_world *world, float *buffer, const dl_exchange_layout *layout);
/* Frees everything. Messages still in flight (after a failure on some rank) are cancelled or released. */
void dl_exchange_destroy(dl_exchange *exchange);

/* Starts bucket `bucket`: its part of the buffer must hold this rank's final values. Buckets must start in index
 * order (0, 1, ...) in every round. */
dl_status dl_exchange_start(dl_exchange *exchange, int bucket);
/* Drives what is in flight without waiting; *in_flight (nullable) gets the number of started, unfinished buckets. */
dl_status dl_exchange_progress(dl_exchange *exchange, int *in_flight);
/* Starts every bucket not started yet, waits for all under the watchdog (`what` names the collective in its
 * message), and makes the exchange ready for the next round. Afterwards each rank's chunks hold the sums (and with
 * gather, the whole buffer does). */
dl_status dl_exchange_finish(dl_exchange *exchange, const char *what);

/* Buckets started so far in this round (buckets [0, started) are). */
int dl_exchange_started(const dl_exchange *exchange);
/* The element range of `bucket` this rank reduces. */
void dl_exchange_owned(const dl_exchange *exchange, int bucket, size_t *begin, size_t *end);

/* Sums the same-length arrays src[0..n_src) into out in index order: out[i] = ((src[0][i] + src[1][i]) + ...).
 * out may be one of the sources. The order is fixed, so the result is the same for every caller and split. */
void dl_sum_in_order(float *out, const float *const *src, int n_src, size_t n);

#ifdef __cplusplus
}
#endif

#endif
