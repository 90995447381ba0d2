/* train_config.c — the rows of the run, optim, train, ckpt and log sections (train_config.h). */
#include "train/train_config.h"

#include <stddef.h>

static const char *const optim_choices[] = {"adamw", "adagrad", "sgd", NULL};
static const char *const schedule_choices[] = {"constant", "cosine", "linear", "inverse_sqrt", NULL};
static const char *const resume_choices[] = {"auto", "never", "PATH", NULL};
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_run_config, name, type, field, def, __VA_ARGS__)
const dl_cfg_key dl_run_config_keys[] = {
    KEY("dir", DL_CFG_STRING, dir, "runs/default", DL_CFG_ANY,
        "run directory: checkpoints, metrics.jsonl, TensorBoard events (created when missing)"),
    KEY("seed", DL_CFG_I64, seed, "1337", DL_CFG_GE(0),
        "seed of every random stream (init, dropout, shuffling): same seed and data, same run"),
    KEY("overwrite", DL_CFG_BOOL, overwrite, "false", DL_CFG_ANY,
        "with train.resume=never: delete the checkpoints, metrics.jsonl and events an old run left in run.dir and "
        "start over (false: such a run.dir is refused)"),
    DL_CFG_END,
};
#undef KEY

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_optim_config, name, type, field, def, __VA_ARGS__)
const dl_cfg_key dl_optim_config_keys[] = {
    DL_CFG_ENUM_KEY(dl_optim_config, "name", name, optim_choices, "adamw", "optimizer: adamw, adagrad or sgd"),
    KEY("lr", DL_CFG_FLOAT, lr, "0.0006", DL_CFG_GT(0), "peak learning rate"),
    KEY("beta1", DL_CFG_FLOAT, beta1, "0.9", DL_CFG_IN_HALF_OPEN(0, 1), "adamw: first-moment decay"),
    KEY("beta2", DL_CFG_FLOAT, beta2, "0.95", DL_CFG_IN_HALF_OPEN(0, 1), "adamw: second-moment decay"),
    KEY("eps", DL_CFG_FLOAT, eps, "1e-8", DL_CFG_GT(0), "adamw/adagrad: denominator epsilon"),
    KEY("weight_decay", DL_CFG_FLOAT, weight_decay, "0.1", DL_CFG_GE(0),
        "adamw: decoupled weight decay; adagrad/sgd: L2 term added to the gradient (libffm's lambda)"),
    KEY("momentum", DL_CFG_FLOAT, momentum, "0.9", DL_CFG_IN_HALF_OPEN(0, 1), "sgd: momentum (0: plain)"),
    KEY("adagrad_init", DL_CFG_FLOAT, adagrad_init, "1", DL_CFG_GE(0),
        "adagrad: starting value of the squared-gradient sums (libffm: 1)"),
    KEY("grad_clip", DL_CFG_FLOAT, grad_clip, "1", DL_CFG_GE(0),
        "clip the global gradient norm to this (0: no clipping)"),
    DL_CFG_ENUM_KEY(dl_optim_config, "schedule", schedule, schedule_choices, "cosine",
                    "learning-rate schedule after warm-up: constant, cosine, linear or inverse_sqrt decay"),
    KEY("warmup_steps", DL_CFG_INT, warmup_steps, "0", DL_CFG_GE(0), "steps of linear warm-up from 0 to optim.lr"),
    KEY("min_lr_ratio", DL_CFG_FLOAT, min_lr_ratio, "0.1", DL_CFG_IN(0, 1),
        "cosine/linear: final learning rate as a fraction of optim.lr"),
    DL_CFG_END,
};
#undef KEY

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_train_config, name, type, field, def, __VA_ARGS__)
const dl_cfg_key dl_train_config_keys[] = {
    KEY("steps", DL_CFG_I64, steps, "5000", DL_CFG_GE(1),
        "optimizer steps to run (the run ends earlier when train.epochs is reached)"),
    KEY("epochs", DL_CFG_INT, epochs, "0", DL_CFG_GE(0), "passes over data.train (0: no limit, train.steps decides)"),
    KEY("batch_per_rank", DL_CFG_INT, batch_per_rank, "8", DL_CFG_GE(1),
        "rows per rank per micro-batch: sequences of seq_len tokens (gpt), click rows (fm/ffm), pairs (dpo)"),
    KEY("grad_accum", DL_CFG_INT, grad_accum, "1", DL_CFG_GE(1), "micro-batches per optimizer step"),
    KEY("eval_every", DL_CFG_INT, eval_every, "500", DL_CFG_GE(0),
        "evaluate on data.valid every this many steps (0: only after each epoch and at the end)"),
    KEY("eval_steps", DL_CFG_INT, eval_steps, "20", DL_CFG_GE(0), "batches per evaluation (0: all of data.valid)"),
    {"resume", DL_CFG_ENUM_TEXT, offsetof(dl_train_config, resume), offsetof(dl_train_config, resume_path),
     resume_choices, "auto", DL_CFG_ANY,
     "auto: continue from run.dir's latest checkpoint if any; never: start afresh; or a checkpoint path",
     "auto, never or a checkpoint path", 0},
    KEY("max_bad_steps", DL_CFG_INT, max_bad_steps, "10", DL_CFG_GE(0),
        "consecutive steps with a non-finite loss or gradient skipped before the run fails"),
    KEY("early_stop", DL_CFG_BOOL, early_stop, "false", DL_CFG_ANY,
        "stop when the validation loss stops improving and keep the best model (libffm's --auto-stop)"),
    KEY("threads", DL_CFG_INT, threads, "0", DL_CFG_IN(0, 4096), "CPU threads per rank (0: OpenMP's default)"),
    DL_CFG_END,
};
#undef KEY

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_ckpt_config, name, type, field, def, __VA_ARGS__)
const dl_cfg_key dl_ckpt_config_keys[] = {
    KEY("every", DL_CFG_INT, every, "1000", DL_CFG_GE(0),
        "write a checkpoint every this many steps (0: only at the end)"),
    KEY("keep", DL_CFG_INT, keep, "3", DL_CFG_GE(0), "newest checkpoints kept (0: keep all)"),
    KEY("keep_every", DL_CFG_INT, keep_every, "0", DL_CFG_GE(0),
        "also keep every checkpoint whose step is a multiple of this (0: none)"),
    KEY("compress", DL_CFG_BOOL, compress, "false", DL_CFG_ANY, "deflate-compress checkpoint datasets"),
    KEY("fsync", DL_CFG_BOOL, fsync, "true", DL_CFG_ANY,
        "fsync each checkpoint file before it replaces latest (false: it survives dealer dying, not the machine)"),
    DL_CFG_END,
};
#undef KEY

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_log_config, name, type, field, def, __VA_ARGS__)
const dl_cfg_key dl_log_config_keys[] = {
    KEY("every", DL_CFG_INT, every, "10", DL_CFG_GE(1), "print a metrics line every this many steps"),
    KEY("jsonl", DL_CFG_BOOL, jsonl, "true", DL_CFG_ANY, "write run.dir/metrics.jsonl"),
    KEY("tensorboard", DL_CFG_BOOL, tensorboard, "true", DL_CFG_ANY, "write a TensorBoard event file in run.dir"),
    /* Rank-local: it changes what a rank prints, not what it computes, so the ranks' config check leaves it out. */
    {"level", DL_CFG_ENUM, offsetof(dl_log_config, level), 0, level_choices, "info", DL_CFG_ANY,
     "log level: debug, info, warn or error", NULL, DL_CFG_RANK_LOCAL},
    DL_CFG_END,
};
#undef KEY
