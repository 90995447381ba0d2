/* weights.h — where a run's starting weights come from (model.init_from) and `dealer ckpt import`.
 *
 * One spelling resolves to one of three sources:
 *   - a dealer checkpoint: a step_N.h5 file, a `latest` file (ckpt/latest), a run directory or its ckpt directory;
 *   - a .safetensors file: GPT-2 names (Hugging Face) or dealer's own names (`dealer ckpt export --format
 *     safetensors`), told apart by the names inside;
 *   - a Hugging Face model directory: config.json + model.safetensors.
 * Every source yields the model shape it holds (dl_weights_shape), so a caller can compare it with its config
 * before any step, and loads into any tensor table of that shape by name (dl_weights_load). A path that leads
 * nowhere, a directory with neither a checkpoint nor model.safetensors, a file of another kind: DL_ERR_CONFIG with a
 * hint. The messages name the file; callers add which setting named it (model.init_from, ...). */
#ifndef DL_CKPT_WEIGHTS_H
#define DL_CKPT_WEIGHTS_H

#include <stddef.h>

#include "ckpt/hf_gpt2.h"
#include "core/config.h"
#include "core/status.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_weights_kind {
    DL_WEIGHTS_DEALER = 0,      /* an HDF5 checkpoint */
    DL_WEIGHTS_SAFETENSORS = 1, /* one .safetensors file */
    DL_WEIGHTS_HF_DIR = 2,      /* config.json + model.safetensors */
} dl_weights_kind;

enum { DL_WEIGHTS_PATH_MAX = 4400 };

typedef struct dl_weights_source {
    dl_weights_kind kind;
    char path[DL_WEIGHTS_PATH_MAX];        /* the file read: step_N.h5 or the .safetensors */
    char config_json[DL_WEIGHTS_PATH_MAX]; /* HF directory: its config.json; "" otherwise */
} dl_weights_source;

/* Resolves `spec`; `key` (e.g. "model.init_from") opens every message. */
dl_status dl_weights_resolve(const char *spec, const char *key, dl_weights_source *source);

/* "dealer checkpoint", "safetensors file", "Hugging Face model directory". */
const char *dl_weights_kind_name(dl_weights_kind kind);

/* The gpt shape the source holds: a dealer checkpoint's (or a dealer safetensors file's) stored config, which must
 * be of model.kind gpt or dpo; config.json; or, for a bare GPT-2 safetensors file, what its tensors imply. */
dl_status dl_weights_shape(const dl_weights_source *source, dl_gpt2_shape *shape);
/* The rows dl_weights_shape reads a stored config with (model.vocab_size, n_layer, n_head, n_embd, max_seq_len,
 * positions, rope_theta; everything else skipped): exposed so that a test can hold their defaults to the model
 * section's. */
extern const dl_cfg_schema dl_weights_stored_shape_schema;

/* Loads the source's parameters into host (the layout of params: every tensor of params, by name, in its shape;
 * nothing left over in the source but the optimizer state of a dealer checkpoint). */
dl_status dl_weights_load(const dl_weights_source *source, const dl_tensor_table *params, float *host);

#ifdef __cplusplus
}
#endif

#endif
