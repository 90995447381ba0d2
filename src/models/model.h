/* model.h — what the trainer needs from a model, whatever its kind (gpt, fm, ffm, dpo).
 *
 * A model owns its parameters and gradients (one contiguous buffer each, same layout, described by a tensor table)
 * and turns a batch from the data pipeline into accumulated gradients plus step statistics. The trainer does the
 * rest — gradient all-reduce, clipping, the optimizer, schedules, evaluation, logging and checkpoints — the same
 * way for every kind. Losses are SUMS over the batch's targets (tokens for gpt, rows for fm/ffm, pairs for dpo);
 * the trainer divides by the global count. */
#ifndef DL_MODELS_MODEL_H
#define DL_MODELS_MODEL_H

#include <stdint.h>

#include "core/tensor.h"
#include "data/batch.h"
#include "data/loader.h"
#include "ops/ops.h"
#include "comm/backward_hooks.h"
#include "comm/shard_layout.h"
#include "models/model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DL_MAX_MODEL_METRICS = 8 };

/* Sums over one or more micro-batches; every field adds across micro-batches and ranks. */
typedef struct dl_step_stats {
    double loss_sum;        /* Σ loss over targets */
    double targets;         /* what the loss is averaged over (tokens, rows, pairs) */
    double tokens;          /* real input tokens (gpt/dpo) or rows (fm/ffm): throughput */
    double slots;           /* rows·seq_len of the batches: tokens/slots is the packing efficiency */
    double attended;        /* Σ over documents of n(n+1)/2: keys attended by all queries (MFU's attention term) */
    double metrics[DL_MAX_MODEL_METRICS]; /* the model's own sums (model->metric_names), reported / targets */
} dl_step_stats;

struct dl_world;

/* What a training micro-batch needs besides the batch. */
typedef struct dl_step_context {
    struct dl_world *world;  /* for models that exchange rows themselves (sharded embeddings) */
    int64_t step;            /* the optimizer step being computed, 1-based */
    double lr;               /* its learning rate (self-updating models apply it themselves) */
    const dl_backward_hooks *hooks; /* may be NULL: what backward reports as it goes (the gradient exchange) */
} dl_step_context;

/* What an evaluation reports: the mean loss over its targets and named metrics ("val_auc", ...). */
typedef struct dl_eval_result {
    double loss;
    double targets;
    int count;
    const char *names[DL_MAX_MODEL_METRICS];
    double values[DL_MAX_MODEL_METRICS];
} dl_eval_result;

typedef struct dl_model dl_model;
struct dl_model {
    const char *kind;                 /* "gpt", ... */
    const dl_tensor_table *params;
    float *param_data;                /* device buffers */
    float *grad_data;
    /* Forward and backward on one micro-batch, adding to the gradients and to *stats. */
    dl_status (*train_batch)(dl_model *model, const dl_batch *batch, const dl_step_context *ctx,
                             dl_step_stats *stats);
    /* Forward only, adding to *stats. */
    dl_status (*eval_batch)(dl_model *model, const dl_batch *batch, dl_step_stats *stats);
    /* Initialises the parameters from Philox(seed). */
    dl_status (*init_params)(dl_model *model, uint64_t seed);
    /* Optional: the same parameters as init_params, but the model may still be making them when this returns (a
     * click table filled by a thread of its own while training starts). train_batch and the model's other
     * functions use only what is made; anyone else reading or writing param_data first calls params_ready, which
     * returns once everything is made. NULL: init_params is all there is (dl_model_init_params handles both). */
    dl_status (*init_params_background)(dl_model *model, uint64_t seed);
    dl_status (*params_ready)(dl_model *model);
    /* Model FLOPs of the step described by stats (forward + backward), for MFU. */
    double (*step_flops)(const dl_model *model, const dl_step_stats *stats);
    /* Models that update their own parameters inside train_batch (sparse AdaGrad on embedding rows, libffm
     * style) set this: the trainer then skips the dense gradient all-reduce and optimizer for them. */
    int self_updating;
    /* Names of the model's own metrics (NULL-terminated prefix of the array): "rewards/accuracy", ... Each is
     * reported as Σ metrics[i] / Σ targets over the step (and over the evaluation). */
    const char *metric_names[DL_MAX_MODEL_METRICS];
    /* Optional: a whole evaluation of its own (e.g. AUC, which is not a sum). When NULL the trainer sums
     * eval_batch over at most max_batches batches of a loader it opens with `config` on `valid`. Collective:
     * every rank calls it and gets the same result. */
    dl_status (*evaluate)(dl_model *model, struct dl_world *world, const dl_doc_source *valid,
                          const dl_loader_config *config, int64_t max_batches, dl_eval_result *result);
    /* Optional, for models whose param_data holds only this rank's share of the parameters (row-sharded tables,
     * comm.embeddings: sharded): NULL otherwise. `params` still describes the whole model as checkpoints hold it;
     * param_data holds local_numel floats laid out as shard_layout says (which rows of which tensor this rank
     * holds, and where). The trainer then never broadcasts param_data, and checkpoints move each rank's own rows
     * (through bounded slabs, on any world size), so no rank ever holds the whole table.
     * Only self-updating models split their parameters (their optimizer state lives in the rows). */
    const dl_shard_layout *shard_layout;
    size_t local_numel;
    /* Activation bytes the model planned (and would plan without gradient checkpointing). */
    size_t activation_bytes, activation_bytes_without_checkpointing;
    void (*destroy)(dl_model *model);
    void *impl;
    /* gpt: where init_params takes the weights from (model.init_from resolved, a ckpt/weights.h source owned by the
     * model), NULL for a random start; and the backend the model lives on. */
    void *init_source;
    const dl_backend *backend;
};

/* What a model reads of the run's config: its own sections (model, and dpo for model.kind dpo), the data and comm
 * sections, and the few values of the trainer's sections that a model needs. The application fills it
 * (dl_config_model_setup, train/run_config.h); the pointers must outlive the model's creation. */
typedef struct dl_model_setup {
    const dl_model_config *model;
    const dl_dpo_config *dpo;
    const dl_data_config *data;
    const dl_comm_config *comm;
    const char *optimizer; /* optim.name as spelt: the click models update their rows with their own AdaGrad */
    double weight_decay;   /* optim.weight_decay: the click models' L2 term (libffm's lambda) */
    double adagrad_init;   /* optim.adagrad_init: where the click models' squared-gradient sums start */
    int64_t seed;          /* run.seed: dpo's reference precomputation shuffles nothing but packs with it */
    int batch_per_rank;    /* train.batch_per_rank: rows per batch of dpo's reference precomputation */
} dl_model_setup;

/* The data kind a model kind consumes. */
dl_data_kind dl_model_data_kind(const dl_model_config *model);

/* Builds the model named by setup->model->kind for micro-batches of `rows` rows of `seq_len` tokens. */
dl_status dl_model_create(dl_model **model, const dl_model_setup *setup, const dl_backend *backend, int rows,
                          int seq_len);
void dl_model_destroy(dl_model *model);

/* Initialises the parameters from Philox(seed): in the background where the model can (init_params_background),
 * when `background` is set; then dl_model_params_ready must come before param_data is read or written outside the
 * model's own functions. */
dl_status dl_model_init_params(dl_model *model, uint64_t seed, int background);
/* Returns once param_data holds every parameter (at once for models that initialise up front). */
dl_status dl_model_params_ready(dl_model *model);

#ifdef __cplusplus
}
#endif

#endif
