/* config.h — dealer's experiment configuration: a YAML file plus command-line overrides, resolved into one typed
 * struct that every module reads as plain fields.
 *
 *     dl_config cfg;
 *     DL_CHECK(dl_config_load(&cfg, "configs/gpt-shakespeare.yaml", argc - 2, argv + 2));  // "optim.lr=1e-3" ...
 *     printf("%d layers, lr %g\n", cfg.model.n_layer, cfg.optim.lr);
 *     if (cfg.model.kind == DL_MODEL_GPT) ...
 *     dl_config_free(&cfg);
 *
 * A config file is one YAML mapping: the top-level key `device` and the sections run, model, data, optim, train,
 * comm, ckpt, log and dpo, each a mapping of keys. Every key is declared once, in the schema table of
 * config_schema.c, with its type, default, range and a one-line doc; loading, overrides, `dealer config keys`,
 * `dealer config show` and the YAML written into checkpoints all work from that table, so adding a key is one line
 * there plus a field here. Every key has a default, so an empty file is a valid config.
 *
 * Errors are DL_ERR_CONFIG with one line that names the file and line (or the override) and, for a misspelt key, the
 * nearest valid one:
 *     configs/x.yaml:12: unknown key 'lrr' in section optim (did you mean 'lr'?)
 *     override 'optim.lr=fast': optim.lr: expected a number, got 'fast'
 *
 * Paths in a config (data.train, run.dir, ...) are kept as written: a relative path resolves against the current
 * directory of the process, not the directory of the config file, so a config means the same thing whether it is
 * read from configs/ or from a checkpoint. */
#ifndef DL_CORE_CONFIG_H
#define DL_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- enumerated values (the YAML spelling is in the comment; values are stable) ------------------------------- */

typedef enum dl_cfg_device { DL_CFG_DEVICE_AUTO = 0, DL_CFG_DEVICE_CPU = 1, DL_CFG_DEVICE_CUDA = 2 } dl_cfg_device;
typedef enum dl_model_kind { DL_MODEL_GPT = 0, DL_MODEL_FM = 1, DL_MODEL_FFM = 2, DL_MODEL_DPO = 3 } dl_model_kind;
/* model.checkpoint: none | blocks | every:K (K in model.checkpoint_every). */
typedef enum dl_grad_ckpt { DL_GRAD_CKPT_NONE = 0, DL_GRAD_CKPT_BLOCKS = 1, DL_GRAD_CKPT_EVERY = 2 } dl_grad_ckpt;
typedef enum dl_positions { DL_POSITIONS_LEARNED = 0, DL_POSITIONS_ROPE = 1 } dl_positions;
/* model.precision: fp32 | bf16 (gpt/dpo: bf16 matmul operands, fp32 master weights and everything else). */
typedef enum dl_precision { DL_PRECISION_FP32 = 0, DL_PRECISION_BF16 = 1 } dl_precision;
/* data.format: which tf.Example features the records hold; auto follows model.kind. */
typedef enum dl_data_format {
    DL_FORMAT_AUTO = 0,
    DL_FORMAT_TOKENS = 1, /* tokens */
    DL_FORMAT_CLICKS = 2, /* label, field, feature, value */
    DL_FORMAT_PAIRS = 3,  /* prompt, chosen, rejected */
} dl_data_format;
/* data.overlong: a document longer than data.seq_len. */
typedef enum dl_overlong {
    DL_OVERLONG_TRUNCATE = 0, /* keep the first seq_len tokens */
    DL_OVERLONG_DROP = 1,     /* skip the document */
    DL_OVERLONG_ERROR = 2,    /* fail naming the record */
    DL_OVERLONG_SPLIT = 3,    /* cut into seq_len pieces, each a document of its own */
} dl_overlong;
typedef enum dl_optim_name { DL_OPTIM_ADAMW = 0, DL_OPTIM_ADAGRAD = 1, DL_OPTIM_SGD = 2 } dl_optim_name;
typedef enum dl_lr_schedule {
    DL_SCHEDULE_CONSTANT = 0,
    DL_SCHEDULE_COSINE = 1,
    DL_SCHEDULE_LINEAR = 2,
    DL_SCHEDULE_INVERSE_SQRT = 3,
} dl_lr_schedule;
/* train.resume: auto | never | PATH (PATH in train.resume_path). */
typedef enum dl_resume { DL_RESUME_AUTO = 0, DL_RESUME_NEVER = 1, DL_RESUME_PATH = 2 } dl_resume;
typedef enum dl_embeddings {
    DL_EMBEDDINGS_REPLICATED = 0,
    DL_EMBEDDINGS_SHARDED = 1,
    DL_EMBEDDINGS_SHARED = 2, /* one table per node in shared memory, trained in place (lock-free) */
} dl_embeddings;
typedef enum dl_cfg_log_level {
    DL_CFG_LOG_DEBUG = 0,
    DL_CFG_LOG_INFO = 1,
    DL_CFG_LOG_WARN = 2,
    DL_CFG_LOG_ERROR = 3,
} dl_cfg_log_level;
/* The same numbering as the loss_kind argument of the dpo_loss ops. */
typedef enum dl_dpo_loss { DL_DPO_LOSS_SIGMOID = 0, DL_DPO_LOSS_IPO = 1, DL_DPO_LOSS_HINGE = 2 } dl_dpo_loss;
typedef enum dl_dpo_reference { DL_DPO_REF_MODEL = 0, DL_DPO_REF_PRECOMPUTED = 1 } dl_dpo_reference;

/* A list of strings (data.train, data.valid): a single YAML string loads as a list of one. */
typedef struct dl_str_list {
    int count;
    char **items;
} dl_str_list;

/* ---- the resolved config ---------------------------------------------------------------------------------------
 * Strings are never NULL ("" when unset). Everything is owned by the config and freed by dl_config_free. The
 * meaning, default and range of each field is in `dealer config keys` (and docs/config.md). */
typedef struct dl_config {
    dl_cfg_device device;
    struct {
        char *dir;
        int64_t seed;
        bool overwrite; /* train.resume=never may delete an old run's checkpoints in run.dir */
    } run;
    struct {
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
    } model;
    struct {
        dl_str_list train;
        dl_str_list valid;
        dl_data_format format;
        int seq_len;
        bool packing;
        int pack_window;
        dl_overlong overlong;
        bool shuffle;
        int skip_corrupt; /* how many damaged records may be skipped (with a warning) before failing */
        int prefetch;
        char *tokenizer;  /* "bytes" or a tokenizer.json (gpt/dpo) */
    } data;
    struct {
        dl_optim_name name;
        double lr;
        double beta1;
        double beta2;
        double eps;
        double weight_decay;
        double momentum;
        double adagrad_init;
        double grad_clip;
        dl_lr_schedule schedule;
        int warmup_steps;
        double min_lr_ratio;
    } optim;
    struct {
        int64_t steps;
        int epochs;
        int batch_per_rank;
        int grad_accum;
        int eval_every;
        int eval_steps;
        dl_resume resume;
        char *resume_path; /* the PATH of train.resume, "" otherwise */
        int max_bad_steps;
        bool early_stop;
        int threads;
    } train;
    struct {
        int zero;
        double bucket_mb;
        dl_embeddings embeddings;
        int timeout_s;
    } comm;
    struct {
        int every;
        int keep;
        int keep_every;
        bool compress;
    } ckpt;
    struct {
        int every;
        bool jsonl;
        bool tensorboard;
        dl_cfg_log_level level;
    } log;
    struct {
        double beta;
        dl_dpo_loss loss;
        double label_smoothing;
        dl_dpo_reference reference;
        char *reference_file;
    } dpo;
    /* Private: where each value came from (default, file:line, override), for `dealer config show`. */
    struct dl_config_origin *origin;
} dl_config;

/* ---- API ------------------------------------------------------------------------------------------------------ */

/* Fills *cfg with every key's default. *cfg needs no initialisation; free it with dl_config_free. */
dl_status dl_config_defaults(dl_config *cfg);

/* Resolves a config: defaults, then the YAML file at `path` (NULL: none), then `overrides` ("section.key=value",
 * or "device=cuda"), in order, then the checks that involve several keys. *cfg needs no initialisation. On failure
 * it fails with DL_ERR_CONFIG (DL_ERR_NOMEM when memory ran out) and leaves *cfg empty (dl_config_free is safe). */
dl_status dl_config_load(dl_config *cfg, const char *path, int n_overrides, char **overrides);

/* Like dl_config_load with YAML text instead of a file: `name` is the file name errors and sources show (e.g.
 * "run/ckpt/step_00000100.h5:/config"). Reads back exactly what dl_config_to_yaml wrote. */
dl_status dl_config_load_string(dl_config *cfg, const char *text, size_t len, const char *name);

/* Releases everything *cfg owns and zeroes it. Safe on a zeroed or already freed config. */
void dl_config_free(dl_config *cfg);

/* The resolved config as YAML (every key, in schema order), in a malloc'd string the caller frees. With
 * with_sources, each value carries a trailing comment saying where it came from ("# default",
 * "# configs/x.yaml:12", "# override"). dl_config_load_string of this text gives a dl_config_equal config. */
dl_status dl_config_to_yaml(const dl_config *cfg, int with_sources, char **text);

/* True when every key of a and b holds the same value (sources are not compared). */
bool dl_config_equal(const dl_config *a, const dl_config *b);

/* Lists the keys whose values differ between a and b (all but the rank-local log.level) into buf as
 * "optim.lr = 0.001 (A_NAME) vs 0.002 (B_NAME); ..." (cut with "..." at cap) and returns how many differ; -1 when
 * out of memory. buf may be NULL. What ranks compare when they start (see dl_config_rank_hash). */
int dl_config_diff(const dl_config *a, const dl_config *b, const char *a_name, const char *b_name, char *buf,
                   size_t cap);

/* A 64-bit hash of every value the ranks of one run must share (all keys but the rank-local log.level): equal
 * configs hash equal, so ranks compare their configs with one all-reduce before they start. */
dl_status dl_config_rank_hash(const dl_config *cfg, uint64_t *hash);

/* True when model kind `kind` reads key `key` ("model.k" is read by fm and ffm only); false for an unknown key. A
 * config file or override that sets a key its kind does not read fails to load. */
bool dl_config_key_read_by(const char *key, dl_model_kind kind);

/* Writes the YAML spelling of one key's value ("optim.lr" -> "0.0006", "model.kind" -> "gpt") into buf. Fails
 * with DL_ERR_INVALID for an unknown key; the text is cut to cap - 1 bytes. */
dl_status dl_config_get_text(const dl_config *cfg, const char *key, char *buf, size_t cap);

/* Writes where a key's value came from ("default", "configs/x.yaml:12", "override 'optim.lr=3e-4'") into buf. */
dl_status dl_config_source(const dl_config *cfg, const char *key, char *buf, size_t cap);

/* The YAML spelling of an enumerated value of a key: dl_config_enum_text("device", cfg.device) -> "auto".
 * NULL for an unknown key or value. */
const char *dl_config_enum_text(const char *key, int value);

/* Prints every key with its type, default, range and doc line; markdown != 0 prints a markdown table instead. */
void dl_config_print_keys(FILE *out, int markdown);

#ifdef __cplusplus
}
#endif

#endif
