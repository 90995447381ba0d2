/* trainer.h — the training loop every model kind shares.
 *
 * One step: each rank runs train.grad_accum micro-batches of train.batch_per_rank rows (forward + backward,
 * gradients summed), the ranks sum their step statistics and gradients, the loss is normalised by the global number
 * of targets (Σ over micro-batches and ranks, not a mean of per-rank means), gradients are clipped by their global
 * norm, a non-finite norm skips the step (counted; train.max_bad_steps ends the run), the optimizer updates with the
 * scheduled learning rate, and rank 0 logs one line and one metrics.jsonl record. Evaluation on data.valid every
 * train.eval_every steps; checkpoints every ckpt.every steps and at the end; train.resume: auto continues from
 * run_dir/ckpt/latest with the data cursor, optimizer state and step, so the run continues exactly.
 *
 * MFU is model FLOPs per second over the sgemm rate this machine reaches (`dealer bench gemm`, measured at start-up
 * with the training thread count) times the world size. */
#ifndef DL_TRAIN_TRAINER_H
#define DL_TRAIN_TRAINER_H

#include "comm/world.h"
#include "train/run_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the training the config describes on this rank. Collective: every rank calls it. A failure that every rank
 * sees the same way (a bad config value, a missing file) returns on every rank; a failure on one rank returns its
 * error there and a DL_ERR_RUNTIME "rank N failed" on the others, at the next step boundary. */
dl_status dl_train(const dl_config *config, dl_world *world);

#ifdef __cplusplus
}
#endif

#endif
