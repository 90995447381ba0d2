/* run_config.h — dealer's experiment configuration: the sections every module owns, joined into one typed struct
 * that the commands and the trainer read as plain fields.
 *
 *     dl_config cfg;
 *     DL_CHECK(dl_config_load(&cfg, "configs/gpt-shakespeare.yaml", argc - 2, argv + 2));  // "optim.lr=1e-3" ...
 *     printf("%d layers, lr %g\n", cfg.model.n_layer, cfg.optim.lr);
 *     if (cfg.model.kind == DL_MODEL_GPT) ...
 *     dl_config_free(&cfg);
 *
 * A config file is one YAML mapping: the top-level key `device` and the sections run, model, data, optim, train,
 * comm, ckpt, log and dpo, each a mapping of keys. Each section is declared by the module that reads it, as a struct
 * and one row per key (type, default, range, doc line):
 *     run, optim, train, ckpt, log   train/train_config.h      model (and which kind reads which key)
 *     data                           data/data_config.h                            models/model_config.h
 *     comm                           comm/comm_config.h        dpo                 models/dpo/dpo_config.h
 * and core/config.h reads, checks, overrides and writes them; this file joins them (dl_config_schema) and adds
 * `device` and the checks that involve several sections. So adding a key is one row in its module plus a field in
 * its section's struct. Loading, overrides, `dealer config keys`, `dealer config show` and the YAML written into
 * checkpoints all work from the rows. Every key has a default, so an empty file is a valid config.
 *
 * Errors are DL_ERR_CONFIG with one line that names the file and line (or the override) and, for a misspelt key, the
 * nearest valid one:
 *     configs/x.yaml:12: unknown key 'lrr' in section optim (did you mean 'lr'?)
 *     override 'optim.lr=fast': optim.lr: expected a number, got 'fast'
 *
 * Paths in a config (data.train, run.dir, ...) are kept as written: a relative path resolves against the current
 * directory of the process, not the directory of the config file, so a config means the same thing whether it is
 * read from configs/ or from a checkpoint. */
#ifndef DL_TRAIN_RUN_CONFIG_H
#define DL_TRAIN_RUN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "comm/comm_config.h"
#include "data/data_config.h"
#include "models/dpo/dpo_config.h"
#include "models/model.h"
#include "models/model_config.h"
#include "train/train_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* device: auto | cpu | cuda. */
typedef enum dl_cfg_device { DL_CFG_DEVICE_AUTO = 0, DL_CFG_DEVICE_CPU = 1, DL_CFG_DEVICE_CUDA = 2 } dl_cfg_device;

/* The resolved config. Strings are never NULL ("" when unset). Everything is owned by the config and freed by
 * dl_config_free. The meaning, default and range of each field is in `dealer config keys` (and docs/config.md). */
typedef struct dl_config {
    dl_cfg_device device;
    dl_run_config run;
    dl_model_config model;
    dl_data_config data;
    dl_optim_config optim;
    dl_train_config train;
    dl_comm_config comm;
    dl_ckpt_config ckpt;
    dl_log_config log;
    dl_dpo_config dpo;
    /* Private: where each value came from (default, file:line, override), for `dealer config show`. */
    struct dl_cfg_origin *origin;
} dl_config;

/* The sections above, in output order, and the checks across them: what core/config.h's functions take. */
extern const dl_cfg_schema dl_config_schema;

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

/* What the models read of a config (models/model.h): their sections and the few values of the trainer's. The
 * pointers point into *cfg. */
dl_model_setup dl_config_model_setup(const dl_config *cfg);

/* dl_model_create with the setup of *cfg. */
dl_status dl_config_create_model(dl_model **model, const dl_config *cfg, const dl_backend *backend, int rows,
                                 int seq_len);

#ifdef __cplusplus
}
#endif

#endif
