/* run_guard.h — what `dealer train` settles with every rank before its first step, so that a run never starts in a
 * state it cannot finish cleanly:
 *
 *   1. the ranks agree on the config: each rank resolves its own (a `mpirun ... : ...` line, or different overrides
 *      per rank, can give them different ones), they compare a hash of it (every key but the rank-local log.level),
 *      and on a mismatch every rank fails with the keys that differ and the value on each side;
 *   2. one run per run directory: rank 0 holds run.dir/run.lock (see core/dirlock.h) for the whole run;
 *   3. train.resume=never does not mix two runs' checkpoints in one run.dir: refused unless run.overwrite is true,
 *      which deletes the old run's checkpoints, metrics.jsonl and event files first.
 *
 * Every function here is collective: all ranks call it and all get the same verdict (the failing rank keeps its own
 * message; the others say where to look). */
#ifndef DL_TRAIN_RUN_GUARD_H
#define DL_TRAIN_RUN_GUARD_H

#include "comm/world.h"
#include "train/run_config.h"
#include "core/dirlock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Agrees that every rank loaded its config (`loaded` says whether this one did) and that all configs are equal.
 * A rank whose config failed keeps its own error; the others fail with DL_ERR_CONFIG naming the ranks that failed.
 * Different configs: DL_ERR_CONFIG on every rank; rank 0's message lists each differing rank's keys with both
 * values, each other differing rank's lists its own. `cfg` is only read when `loaded`. *report (may be NULL) says
 * whether this rank should print its message: rank 0 always; another rank only when its message is news (its own
 * load failure while rank 0's loaded, or its own differences), so a failure every rank shares prints once. */
dl_status dl_run_agree_config(dl_world *world, int loaded, const dl_config *cfg, int *report);

/* Rank 0 takes run.dir's lock (warning when it takes over one left by a dead process) and, for train.resume=never,
 * checks or clears the old run's checkpoints; every rank learns the outcome. `lock` is held by rank 0 only; release
 * it with dl_dir_lock_release at the end of the run. */
dl_status dl_run_claim_dir(dl_world *world, const dl_config *cfg, dl_dir_lock *lock);

#ifdef __cplusplus
}
#endif

#endif
