/* model_config.h — the `model` section of the config, which models/ owns: which kind of model a run trains
 * (model.kind) and the shape and settings of each kind (gpt: n_layer, n_head, ...; fm/ffm: k, hash_buckets, ...);
 * and the "read by" rule: which model kinds read which keys of any section (model.k only fm and ffm, data.seq_len
 * only gpt and dpo, dpo.* only dpo). The application joins this section with the others (src/train/run_config.h);
 * core/ only knows how to read it.
 *
 * A new model kind touches models/ and its configs only: a value of dl_model_kind and its spelling in
 * kind_choices (model_config.c), its own keys here (or a section of its own, as dpo_config.h), its rows in
 * dl_model_readers, its cases in dl_model_kind_data and dl_model_config_check, and its factory in model.c. */
#ifndef DL_MODELS_MODEL_CONFIG_H
#define DL_MODELS_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "comm/comm_config.h"
#include "data/data_config.h"
#include "models/dpo/dpo_config.h"
#include "models/gpt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The YAML spelling is in the comment; values are stable (new kinds go at the end). */
typedef enum dl_model_kind { DL_MODEL_GPT = 0, DL_MODEL_FM = 1, DL_MODEL_FFM = 2, DL_MODEL_DPO = 3 } dl_model_kind;
/* model.checkpoint: none | blocks | every:K (K in model.checkpoint_every). */
typedef enum dl_grad_ckpt { DL_GRAD_CKPT_NONE = 0, DL_GRAD_CKPT_BLOCKS = 1, DL_GRAD_CKPT_EVERY = 2 } dl_grad_ckpt;
typedef enum dl_positions { DL_POSITIONS_LEARNED = 0, DL_POSITIONS_ROPE = 1 } dl_positions;
/* model.precision: fp32 | bf16 (gpt/dpo: bf16 matmul operands, fp32 master weights and everything else). */
typedef enum dl_precision { DL_PRECISION_FP32 = 0, DL_PRECISION_BF16 = 1 } dl_precision;

/* The model section. Strings are never NULL ("" when unset); the meaning, default and range of each field is in
 * `dealer config keys` (and docs/config.md). */
typedef struct dl_model_config {
    dl_model_kind kind;
    dl_grad_ckpt checkpoint;
    int checkpoint_every; /* K of every:K, 0 otherwise */
    char *init_from;
    double init_std;
    int vocab_size;
    int n_layer;
    int n_head;
    int n_embd;
    int max_seq_len;
    dl_positions positions;
    double rope_theta;
    dl_precision precision;
    double dropout;
    bool tied_head;
    double layernorm_eps;
    int k;
    int64_t hash_buckets;
    int num_fields;
    bool linear_terms;
    bool normalize;
} dl_model_config;

/* The section's rows, ended by DL_CFG_END (offsets within dl_model_config). */
extern const dl_cfg_key dl_model_config_keys[];
/* The "read by" column: a bit (1 << dl_model_kind) per kind that reads a key; a key without a row is read by all.
 * Ended by a row whose key is NULL. */
extern const dl_cfg_reader dl_model_readers[];

/* "gpt", "fm", ...; NULL for a value that is no kind. */
const char *dl_model_kind_name(dl_model_kind kind);
/* What the records of a kind hold (data.format auto follows it). */
dl_data_format dl_model_kind_data(dl_model_kind kind);
/* True for the kinds built on the gpt (gpt, dpo): they read tokens, model.n_* and data.seq_len. */
bool dl_model_kind_is_gpt(dl_model_kind kind);
/* The GPT shape the section describes, with gradient checkpointing per model.checkpoint. */
dl_gpt_config dl_model_gpt_config(const dl_model_config *model);

/* The checks that involve the model kind and keys of other sections (model.n_embd a multiple of model.n_head,
 * data.seq_len <= model.max_seq_len, a dpo run's model.init_from, comm.embeddings sharded only for fm/ffm, ...).
 * `schema` and `cfg` are the application's config, for dl_cfg_conflict's blame; the sections are parts of it. */
dl_status dl_model_config_check(const dl_cfg_schema *schema, const void *cfg, const dl_model_config *model,
                                const dl_data_config *data, const dl_dpo_config *dpo, const dl_comm_config *comm,
                                int batch_per_rank);

#ifdef __cplusplus
}
#endif

#endif
