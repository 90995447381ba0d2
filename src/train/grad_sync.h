/* grad_sync.h — turning each rank's gradient sums into one optimizer update: the bucketed, overlapped gradient
 * reduction (all-reduce, or reduce-scatter under ZeRO-1), the global gradient norm, and the optimizer step on this
 * rank's slice (then, under ZeRO-1, the parameter all-gather).
 *
 * The trainer drives it once per step:
 *
 *     dl_grad_sync_begin(sync, final_micro_batch);     // before each micro-batch's backward
 *     ... model backward, calling dl_grad_sync_layer_done(sync, layer) as layers finish (the step context hook)
 *     dl_grad_sync_reduce(sync, &sumsq);               // all gradients summed over ranks; Σ g² of the sum
 *     dl_grad_sync_update(sync, lr, grad_scale);       // optimizer on this rank's slice (+ all-gather with ZeRO)
 *
 * Buckets: the gradient buffer is cut into contiguous buckets of about comm.bucket_mb, at layer boundaries (and at
 * the boundary between a block's MLP and attention halves) where possible (a layer bigger than two buckets is cut
 * inside). A bucket's ready stage is the earliest point of backward at which all its gradients are final; the
 * GPT's layout (token embedding and final LayerNorm, block L-1, …, block 0, position embedding) makes the first
 * buckets the first ready. During the final micro-batch's backward the hooks start every bucket whose stage was
 * reached, in order, and then drives the messages in flight (MPI progresses only inside MPI calls); `reduce` starts
 * the rest and waits. The tied token embedding gets gradient from the LM head first and from the embedding last:
 * the gpt hands the embedding's rows to the embedding_rows hook, so the table's bucket (first in the buffer) leaves
 * right after the head, and `reduce` exchanges the rows apart and adds them once that bucket has arrived
 * (comm/tied_rows.h). Models other than gpt report no layer ranges: their buckets all leave in `reduce`.
 *
 * The reduction itself is comm/exchange.h (CPU: MPI point-to-point; GPU: NCCL, or host staging when NCCL cannot
 * start): each element's sum is added in rank order, so results do not depend on comm.bucket_mb or comm.zero.
 *
 * ZeRO-1 (comm.zero = 1): rank r owns the elements [slice r) of the parameter buffer (W nearly equal slices). The
 * gradient reduction is a reduce-scatter onto the slices, the optimizer (and its state: 1/W of the memory) covers
 * only the slice, the gradient norm is the all-reduced sum of the slices' Σ g², and the updated slices are
 * all-gathered into every rank's parameters. */
#ifndef DL_TRAIN_GRAD_SYNC_H
#define DL_TRAIN_GRAD_SYNC_H

#include "comm/world.h"
#include "train/run_config.h"
#include "models/model.h"
#include "train/optimizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_grad_sync dl_grad_sync;

/* Timings of the last step's gradient communication, for the step log. */
typedef struct dl_grad_sync_stats {
    double comm_seconds;    /* from the first bucket's start to the end of `reduce` (0 on one rank) */
    double exposed_seconds; /* the part `reduce` waited for: not hidden behind the backward pass */
    int buckets;            /* buckets of the exchange */
    int buckets_overlapped; /* buckets that started during the backward pass (the rest started in `reduce`) */
} dl_grad_sync_stats;

/* Reads comm.zero and comm.bucket_mb from config; creates the optimizer over this rank's slice. Collective (it
 * builds the communicators). */
dl_status dl_grad_sync_create(dl_grad_sync **sync, dl_world *world, const dl_backend *be, dl_model *model,
                              const dl_config *config, const dl_optimizer_settings *optimizer);
/* Frees everything; messages of an abandoned step still in flight are cancelled. */
void dl_grad_sync_destroy(dl_grad_sync *sync);

/* Marks the start of a micro-batch; communication overlaps only the final micro-batch's backward. */
dl_status dl_grad_sync_begin(dl_grad_sync *sync, int final_micro_batch);
/* The hooks to pass to the model's backward (dl_step_context.hooks): both of the calls below, on this sync. */
const dl_backward_hooks *dl_grad_sync_hooks(dl_grad_sync *sync);
/* The model's layer hook (ctx = the dl_grad_sync): layer n_layer (head and final LayerNorm), n_layer-1 … 0, then
 * -1. */
dl_status dl_grad_sync_layer_done(void *sync, int layer);
/* The model's part_done hook: the first part of block `layer` (its MLP half) is complete. */
dl_status dl_grad_sync_part_done(void *sync, int layer);
/* The model's embedding_rows hook (comm/backward_hooks.h): on the step's final micro-batch with several ranks,
 * the token table's rows are kept and exchanged in `reduce` after the table's bucket; otherwise they are added to
 * table_grad at once. */
dl_status dl_grad_sync_embedding_rows(void *sync, float *table_grad, int table_rows, const int32_t *ids,
                                      const float *rows, int n, int width);
/* Completes the reduction of the gradient buffer over ranks; *sumsq gets Σ g² of the reduced gradient (all of it,
 * the same on every rank). Collective. */
dl_status dl_grad_sync_reduce(dl_grad_sync *sync, double *sumsq);
/* One optimizer step with learning rate lr on gradients scaled by grad_scale (then the ZeRO-1 all-gather).
 * Collective under ZeRO-1. */
dl_status dl_grad_sync_update(dl_grad_sync *sync, double lr, double grad_scale);
/* After a failure on some rank in the middle of a step, on every rank (collective): completes whatever the step's
 * buckets started, so no message stays in flight; the gradients are garbage afterwards. */
dl_status dl_grad_sync_abandon(dl_grad_sync *sync);

dl_optimizer *dl_grad_sync_optimizer(dl_grad_sync *sync);
void dl_grad_sync_stats_get(const dl_grad_sync *sync, dl_grad_sync_stats *stats);

/* The bucket plan, for tests and benchmarks: bucket b is [bounds[b], bounds[b+1]) elements and leaves at stage
 * ready[b]: 2·layer after layer_done(layer), 2·layer + 1 after part_done(layer), -2 only after the embeddings
 * (layer_done(-1)). Pointers stay valid for the sync's life. */
int dl_grad_sync_buckets(const dl_grad_sync *sync, const size_t **bounds, const int **ready);

#ifdef __cplusplus
}
#endif

#endif
