/* train_config.h — the config sections the training loop owns: run (where and with which seed), optim (the
 * optimizer and its schedule), train (steps, batches, resume, evaluation), ckpt (when checkpoints are written and
 * kept) and log (what is reported). The application joins them with the sections of the other modules
 * (run_config.h). */
#ifndef DL_TRAIN_TRAIN_CONFIG_H
#define DL_TRAIN_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The YAML spelling is in the comment; values are stable. */
typedef enum dl_optim_name { DL_OPTIM_ADAMW = 0, DL_OPTIM_ADAGRAD = 1, DL_OPTIM_SGD = 2 } dl_optim_name;
typedef enum dl_lr_schedule {
    DL_SCHEDULE_CONSTANT = 0,
    DL_SCHEDULE_COSINE = 1,
    DL_SCHEDULE_LINEAR = 2,
    DL_SCHEDULE_INVERSE_SQRT = 3,
} dl_lr_schedule;
/* train.resume: auto | never | PATH (PATH in train.resume_path). */
typedef enum dl_resume { DL_RESUME_AUTO = 0, DL_RESUME_NEVER = 1, DL_RESUME_PATH = 2 } dl_resume;
typedef enum dl_cfg_log_level {
    DL_CFG_LOG_DEBUG = 0,
    DL_CFG_LOG_INFO = 1,
    DL_CFG_LOG_WARN = 2,
    DL_CFG_LOG_ERROR = 3,
} dl_cfg_log_level;

/* Strings are never NULL ("" when unset); the meaning, default and range of each field is in `dealer config keys`. */
typedef struct dl_run_config {
    char *dir;
    int64_t seed;
    bool overwrite; /* train.resume=never may delete an old run's checkpoints in run.dir */
} dl_run_config;

typedef struct dl_optim_config {
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
} dl_optim_config;

typedef struct dl_train_config {
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
} dl_train_config;

typedef struct dl_ckpt_config {
    int every;
    int keep;
    int keep_every;
    bool compress;
    bool fsync;
} dl_ckpt_config;

typedef struct dl_log_config {
    int every;
    bool jsonl;
    bool tensorboard;
    dl_cfg_log_level level;
} dl_log_config;

/* The sections' rows, each ended by DL_CFG_END (offsets within their structs). */
extern const dl_cfg_key dl_run_config_keys[];
extern const dl_cfg_key dl_optim_config_keys[];
extern const dl_cfg_key dl_train_config_keys[];
extern const dl_cfg_key dl_ckpt_config_keys[];
extern const dl_cfg_key dl_log_config_keys[];

#ifdef __cplusplus
}
#endif

#endif
