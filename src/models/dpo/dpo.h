/* dpo.h — preference tuning of a GPT: DPO (Rafailov et al. 2023), with the IPO and hinge (SLiC) variants.
 *
 * A batch holds preference pairs packed as documents (batch.h): prompt+chosen and prompt+rejected, targets only on
 * response tokens. For each document the policy's log-probability of its response is the sum of its tokens'
 * −cross-entropies (dl_gpt_token_losses summed per document by dl_op_sequence_sum_forward). With π the policy's and
 * ρ the reference's summed log-probs of the chosen (c) and rejected (r) responses, the loss per pair is the
 * dl_op_dpo_loss_forward of (πc, πr, ρc, ρr) — sigmoid (label smoothing ε), ipo or hinge, strength β — and the
 * trainer averages it over pairs. Backward runs the chain the other way: dL/dπ per pair (dl_op_dpo_loss_backward),
 * −dL/dπ for every token of its document (dl_op_sequence_sum_backward), and the GPT's backward with those per-token
 * weights (dl_gpt_backward_weighted).
 *
 * The reference is either
 *   - model: a second, frozen copy of the starting checkpoint, run forward on every batch (a third more compute
 *     and a second model in memory; nothing to prepare), or
 *   - precomputed: ρ read from a table made once (`dealer dpo precompute-ref`, dl_dpo_sequence_table) and stored in
 *     an HDF5 file: one value per record of data.train and data.valid, looked up by the batch's pair_record. Only
 *     the policy is in memory. The file remembers what it was computed from (the checkpoint's parameter CRC, the
 *     datasets' record counts and sizes, seq_len, data.overlong), and a file that does not fit the run is an error.
 * Both give the same numbers: the reference forward is the same computation either way.
 *
 * Metrics (sums per pair; the trainer reports them ÷ pairs, averaged across ranks by pair count):
 *   rewards/chosen β(πc − ρc), rewards/rejected β(πr − ρr), rewards/accuracy [reward chosen > reward rejected]
 *   (a tie counts ½, so the untrained policy, equal to the reference, scores 0.5), rewards/margin (their
 *   difference), logps/chosen πc and logps/rejected πr (the policy's log-probs: a falling logps/chosen is the
 *   "chosen likelihood collapses" failure), data/truncated and data/dropped (pairs cut or left out per kept pair,
 *   data.overlong). */
#ifndef DL_MODELS_DPO_H
#define DL_MODELS_DPO_H

#include <stddef.h>
#include <stdint.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "ops/ops.h"
#include "models/gpt.h"
#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_dpo_settings {
    enum dl_dpo_loss_kind loss_kind; /* DL_DPO_SIGMOID, DL_DPO_IPO or DL_DPO_HINGE (ops.h), as dpo.loss holds it */
    float beta;            /* > 0 */
    float label_smoothing; /* [0, 0.5); sigmoid only */
} dl_dpo_settings;

/* Checks the settings; the message names the dpo.* key at fault (label smoothing with ipo or hinge is an error). */
dl_status dl_dpo_settings_check(const dl_dpo_settings *settings);

/* The model metrics, in the order of dl_dpo_metric_names. */
enum {
    DL_DPO_REWARD_CHOSEN,
    DL_DPO_REWARD_REJECTED,
    DL_DPO_ACCURACY,
    DL_DPO_MARGIN,
    DL_DPO_LOGP_CHOSEN,
    DL_DPO_LOGP_REJECTED,
    DL_DPO_TRUNCATED,
    DL_DPO_DROPPED,
    DL_DPO_NUM_METRICS
};
extern const char *const dl_dpo_metric_names[DL_DPO_NUM_METRICS];

/* ---- the pair head: per-pair log-probs -> losses, metrics and dL/dπ -------------------------------------------- */

typedef struct dl_dpo_head dl_dpo_head;

/* A head for up to max_pairs pairs per call, with its device scratch on `backend`. */
dl_status dl_dpo_head_create(dl_dpo_head **head, const dl_dpo_settings *settings, const dl_backend *backend,
                             int max_pairs);
void dl_dpo_head_destroy(dl_dpo_head *head);

/* For n pairs of summed log-probs (host arrays: policy chosen/rejected, reference chosen/rejected) adds Σ loss to
 * *loss_sum and the sums of the first six metrics to metrics[DL_DPO_REWARD_CHOSEN .. DL_DPO_LOGP_REJECTED]. When
 * dchosen and drejected (host, [n]) are non-NULL they receive d(Σ loss)/dπc and d(Σ loss)/dπr. */
dl_status dl_dpo_head_run(dl_dpo_head *head, int n, const float *policy_chosen, const float *policy_rejected,
                          const float *ref_chosen, const float *ref_rejected, double *loss_sum, double *metrics,
                          float *dchosen, float *drejected);

/* ---- reference tables ------------------------------------------------------------------------------------------ */

/* Summed response log-probs of one dataset, by global record index; NaN where a record gave no pair (unusable,
 * skipped as corrupt, dropped as too long). */
typedef struct dl_dpo_table {
    uint64_t num_records;
    uint64_t bytes;   /* total size of the dataset's files when computed (a cheap identity check) */
    float *chosen;    /* host [num_records] */
    float *rejected;
} dl_dpo_table;

/* Allocates a table of num_records NaNs. */
dl_status dl_dpo_table_alloc(dl_dpo_table *table, uint64_t num_records);
void dl_dpo_table_free(dl_dpo_table *table);

/* What a reference file was computed from. */
typedef struct dl_dpo_reference_meta {
    int seq_len;
    int overlong;          /* dl_pack_overlong */
    uint32_t params_crc;   /* crc32c of the reference parameters (float32, layout order) */
    int64_t checkpoint_step;
    char checkpoint[4096]; /* the checkpoint file */
} dl_dpo_reference_meta;

/* Writes the tables (valid may be NULL) to `path` atomically (a temporary of this writer's own, then renamed);
 * parent directories are created. */
dl_status dl_dpo_reference_write(const char *path, const dl_dpo_reference_meta *meta, const dl_dpo_table *train,
                                 const dl_dpo_table *valid);
/* Reads a file written by dl_dpo_reference_write; valid may be NULL (not read); *has_valid says whether the file
 * holds valid log-probs. A damaged or foreign file fails with DL_ERR_FORMAT naming it. */
dl_status dl_dpo_reference_read(const char *path, dl_dpo_reference_meta *meta, dl_dpo_table *train,
                                dl_dpo_table *valid, int *has_valid);

/* ---- the DPO model --------------------------------------------------------------------------------------------- */

typedef struct dl_dpo dl_dpo;

/* A policy GPT for batches of up to max_tokens tokens, and a frozen reference GPT of the same shape when
 * reference_model is 1 (with 0, reference log-probs come from tables: dl_dpo_set_tables). Parameters are left
 * uninitialised (dl_dpo_load_checkpoint, or write them through dl_gpt_param_data). */
dl_status dl_dpo_create(dl_dpo **dpo, const dl_gpt_config *config, const dl_dpo_settings *settings,
                        const dl_backend *backend, int max_tokens, int reference_model);
void dl_dpo_destroy(dl_dpo *dpo);

dl_gpt *dl_dpo_policy(dl_dpo *dpo);
/* The frozen reference, NULL when the reference is precomputed. */
dl_gpt *dl_dpo_reference_model(dl_dpo *dpo);

/* Hands over the reference tables for training batches and for evaluation batches (valid may be NULL: evaluation
 * then fails). The dpo takes ownership; the structs are zeroed. */
dl_status dl_dpo_set_tables(dl_dpo *dpo, dl_dpo_table *train, dl_dpo_table *valid);

/* One micro-batch of pairs: forward, loss and metrics added to *stats (targets = pairs); with train = 1 also the
 * backward, ACCUMULATING into the policy's gradients (hooks as in dl_gpt_backward, may be NULL). Evaluation batches
 * (train = 0) look precomputed reference values up in the valid table. An empty batch adds nothing (the layer hook
 * still hears layer -1). */
dl_status dl_dpo_batch(dl_dpo *dpo, const dl_token_batch *batch, int train, const dl_backward_hooks *hooks,
                       dl_step_stats *stats);

/* Progress of a long job: `what` ("data.train", ...), records read so far of `total`. */
typedef void (*dl_dpo_progress_fn)(void *ctx, const char *what, uint64_t done, uint64_t total);

/* Fills `table` (allocated with the source's record count) with the policy's summed response log-probs of every pair
 * `source` yields under the loader settings (kind pairs; shuffle, epochs, world and rank are forced to one pass on
 * one rank). stats (may be NULL) gets the loader's counts; progress (may be NULL) is called after each batch. */
dl_status dl_dpo_sequence_table(dl_dpo *dpo, const dl_doc_source *source, const dl_loader_config *loader,
                                dl_dpo_table *table, dl_loader_stats *stats, const char *what,
                                dl_dpo_progress_fn progress, void *progress_ctx);

/* ---- checkpoints and the model interface --------------------------------------------------------------------- */

/* Resolves model.init_from to a checkpoint file: a step_N.h5 file, a `latest` file (ckpt/latest), a run directory
 * or a ckpt directory. A name that leads nowhere fails with DL_ERR_CONFIG and a hint. */
dl_status dl_dpo_resolve_checkpoint(const char *spec, char *path, size_t cap);

/* Loads the gpt (or dpo) checkpoint `path` into `gpt` (on `backend`) after checking that the checkpoint's model
 * shape is `gpt`'s (a mismatch names the model.* key, both values and the file: DL_ERR_CONFIG). *params_crc (may
 * be NULL) gets the crc32c of the parameters, *step (may be NULL) the checkpoint's step. */
dl_status dl_dpo_load_checkpoint(const char *path, const dl_backend *backend, dl_gpt *gpt, uint32_t *params_crc,
                                 int64_t *step);

/* The model.kind dpo factory (model.h): policy from model.init_from, reference per dpo.reference, for micro-batches
 * of `rows` rows of `seq_len` tokens. */
dl_status dl_dpo_model_create(dl_model *model, const dl_model_setup *setup, const dl_backend *backend, int rows,
                              int seq_len);

/* `dealer dpo precompute-ref`: the reference log-probs of every pair of data.train (and data.valid) under the
 * checkpoint model.init_from names, written to `out_path` (the run's dpo.reference_file). *train_stats and
 * *valid_stats (may be NULL) get the loaders' counts; progress as in dl_dpo_sequence_table. */
dl_status dl_dpo_precompute_reference(const dl_model_setup *setup, const dl_backend *backend, const char *out_path,
                                      dl_loader_stats *train_stats, dl_loader_stats *valid_stats,
                                      dl_dpo_progress_fn progress, void *progress_ctx);

#ifdef __cplusplus
}
#endif

#endif
