/* checkpoint.h — HDF5 checkpoints that resume exactly (docs/checkpoint-format.md).
 *
 *     run_dir/ckpt/step_00000100.h5     one file per saved step
 *     run_dir/ckpt/latest               the file name of the newest complete checkpoint, one line
 *
 * Inside a file: /model/<param> float32 datasets with the parameters' true shapes, /optimizer/<state>/<param> in the
 * same shapes, /data/cursors (every rank's data cursor, back to back, uint8) with /data/cursor_lengths (int32 per
 * rank), and attributes on / : format_version, dealer_version, step, epoch, tokens_seen, samples_seen, world_size,
 * zero_stage, model_kind, optimizer_step, seed, config (the resolved YAML). Every dataset carries a crc32c
 * attribute checked on load.
 *
 * Writes are atomic: the file is written as step_N.h5.tmp, flushed, fsynced and renamed, the directory fsynced, and
 * only then `latest` is replaced (atomically too). A crash at any moment leaves `latest` naming a complete file. */
#ifndef DL_TRAIN_CHECKPOINT_H
#define DL_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "comm/world.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DL_CKPT_FORMAT_VERSION = 1 };

typedef struct dl_ckpt_meta {
    int64_t step;           /* optimizer steps completed */
    int64_t epoch;
    double tokens_seen;
    double samples_seen;
    int64_t optimizer_step;
    int64_t seed;
    int world_size;
    int zero_stage;
    char model_kind[16];
    char *config_yaml;      /* malloc'd on load; the caller frees */
} dl_ckpt_meta;

/* What a checkpoint holds besides the meta: the parameter table and host copies of parameters and optimizer
 * states (each in the parameter layout), and this rank's data cursor. */
typedef struct dl_ckpt_tensors {
    const dl_tensor_table *params;
    float *params_data;            /* host, numel(params) floats */
    int num_states;
    const char *const *state_names;
    float **states_data;           /* host, numel(params) floats each; only [state_begin, state_end) is this rank's */
    size_t state_begin, state_end; /* the elements whose optimizer state this rank holds (all of them without ZeRO) */
} dl_ckpt_tensors;

/* Saves a checkpoint of `meta->step` under run_dir/ckpt. Collective: every rank passes its cursor; rank 0 writes
 * the file (from its tensors; other ranks may pass NULL data) and updates `latest`; then old checkpoints beyond
 * `keep` are deleted, except every step that is a multiple of keep_every (0: none kept specially). The path
 * written goes to path_out (may be NULL) on rank 0. */
dl_status dl_ckpt_save(dl_world *world, const char *run_dir, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                       const uint8_t *cursor, size_t cursor_len, int keep, int keep_every, char *path_out,
                       size_t path_cap);

/* The path of the checkpoint `latest` names in run_dir/ckpt; *found = 0 when there is none. A `latest` that names a
 * missing file is an error (DL_ERR_FORMAT). */
dl_status dl_ckpt_latest(const char *run_dir, char *path, size_t cap, int *found);

/* Reads the meta of a checkpoint (config_yaml malloc'd). */
dl_status dl_ckpt_read_meta(const char *path, dl_ckpt_meta *meta);

/* Loads parameters and optimizer states into t (shapes must match the table: a mismatch names the tensor) and this
 * rank's cursor (malloc'd into *cursor, length *cursor_len; NULL/0 when the checkpoint's world size differs).
 * Every dataset's CRC is checked. */
dl_status dl_ckpt_load(const char *path, const dl_ckpt_tensors *t, int rank, int world_size, uint8_t **cursor,
                       size_t *cursor_len);

#ifdef __cplusplus
}
#endif

#endif
