/* grad_sync.h — turning each rank's gradient sums into one optimizer update: the gradient all-reduce (or
 * reduce-scatter under ZeRO-1), the global gradient norm, and the optimizer step on this rank's slice.
 *
 * The trainer drives it once per step:
 *
 *     dl_grad_sync_begin(sync, final_micro_batch);     // before each micro-batch's backward
 *     ... model backward, calling dl_grad_sync_layer_done(sync, layer) as layers finish (the step context hook)
 *     dl_grad_sync_reduce(sync, &sumsq);               // all gradients summed over ranks; Σ g² of the sum
 *     dl_grad_sync_update(sync, lr, grad_scale);       // optimizer on this rank's slice (+ all-gather with ZeRO)
 *
 * The layer hook is where overlapped, bucketed communication starts (comm.bucket_mb); `reduce` waits for what is in
 * flight. The optimizer's state covers the elements this rank updates (all of them without ZeRO). */
#ifndef DL_TRAIN_GRAD_SYNC_H
#define DL_TRAIN_GRAD_SYNC_H

#include "comm/world.h"
#include "core/config.h"
#include "train/model.h"
#include "train/optimizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_grad_sync dl_grad_sync;

/* Timings of the last step's communication, for the step log. */
typedef struct dl_grad_sync_stats {
    double comm_seconds;    /* time communication was in flight */
    double exposed_seconds; /* time the trainer waited for it (not hidden behind compute) */
} dl_grad_sync_stats;

dl_status dl_grad_sync_create(dl_grad_sync **sync, dl_world *world, const dl_backend *be, dl_model *model,
                              const dl_config *config, const dl_optimizer_settings *optimizer);
void dl_grad_sync_destroy(dl_grad_sync *sync);

/* Marks the start of a micro-batch; communication overlaps only the final micro-batch's backward. */
dl_status dl_grad_sync_begin(dl_grad_sync *sync, int final_micro_batch);
/* The model's layer hook (ctx = the dl_grad_sync). */
dl_status dl_grad_sync_layer_done(void *sync, int layer);
/* Completes the reduction of the gradient buffer over ranks; *sumsq gets Σ g² of the reduced gradient. */
dl_status dl_grad_sync_reduce(dl_grad_sync *sync, double *sumsq);
/* One optimizer step with learning rate lr on gradients scaled by grad_scale. */
dl_status dl_grad_sync_update(dl_grad_sync *sync, double lr, double grad_scale);

dl_optimizer *dl_grad_sync_optimizer(dl_grad_sync *sync);
void dl_grad_sync_stats_get(const dl_grad_sync *sync, dl_grad_sync_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
