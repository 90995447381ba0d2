/* click_model.h — what FM and FFM share behind the generic model interface (model.h): feature hashing, the fused
 * table (latent vectors next to their AdaGrad accumulators, libffm's layout), per-instance training, replicated or
 * row-sharded tables across ranks, and an evaluation with logloss and AUC. fm.c and ffm.c only say which kernels
 * score and train a row (ops.h, "sparse, fused") and how a row is laid out.
 *
 * Parameters. One view "<kind>.table" of shape [model.hash_buckets, row_floats] holds every row: FFM rows are
 * num_fields blocks of [k weights padded to kpad | kpad accumulators], FM rows one such block; with
 * model.linear_terms each row ends with (linear weight, accumulator, zero padding) and a second view "<kind>.bias"
 * [2] holds (bias, accumulator). kpad is k rounded up to a multiple of 4. Checkpoints hold exactly this, so a
 * run resumes with its accumulators and `dealer predict` reads the weights.
 *
 * Feature ids map to rows as: id itself when 0 <= id < hash_buckets (the identity when ids already fit),
 * dl_hash_bucket(id, hash_buckets) for larger ids, and dl_hash_bucket(2^63 | h, hash_buckets) for a wide id
 * (>= 2^31) that the data carries hashed as -1 - h (dl_feature_id_fold). Fields must be in [0, model.num_fields) (FFM; FM ignores them).
 *
 * Training (libffm semantics). Each batch row is scaled by r = 1/Σx² (model.normalize), scored, and its vectors
 * updated at once (dl_op_*_fused_sgd): per-instance AdaGrad with G starting at optim.adagrad_init, λ =
 * optim.weight_decay per pair, η = the scheduled optim.lr. So batch_per_rank changes how often the trainer steps
 * (and how rows are split over threads), not the arithmetic. Across ranks (data parallel):
 *   - replicated tables (comm.embeddings: replicated): each rank trains its rows on its copy, then the ranks add up
 *     what each changed in the rows it touched (dl_sparse_sum_rows) and every copy becomes old + Σ changes, so the
 *     copies stay identical;
 *   - sharded tables (comm.embeddings: sharded, W > 1): rank dl_hash_owner(row, W) stores the row; a step fetches
 *     the batch's rows from their owners, trains on that compact copy and sends the changes back, which the owners
 *     add (sharded_table.h). A rank holds 1/W of the table. With one rank both modes are the same single table.
 * The bias is replicated in both and summed like a row.
 *
 * Evaluation (model->evaluate): logloss and AUC over all of data.valid, computed on rank 0 from every rank's
 * scores, reported as val_logloss and val_auc (and as the evaluation loss).
 *
 * Devices. On the CPU backend the table is host memory and the kernels train it in place. On the CUDA backend it
 * lives in device memory ("staged"): each batch is copied over, trained by the CUDA fused kernels (all its rows at
 * once, Hogwild: see src/ops/cuda/click_fused.cu), and its logits copied back; replicated tables on several ranks
 * exchange their changes through host copies of the rows a step touched. Checkpoints, the parameter broadcast and
 * early stopping move param_data with the backend's copies, as for any model. Row-sharded tables over several ranks
 * need the CPU backend (their MPI exchange reads rows from host memory). */
#ifndef DL_MODELS_CLICK_CLICK_MODEL_H
#define DL_MODELS_CLICK_CLICK_MODEL_H

#include <stdint.h>

#include "data/batch.h"
#include "ops/ops.h"
#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The per-kind part: the name (tensor prefix), whether rows have one block per field, and the two kernels. */
typedef struct dl_click_kind {
    const char *name; /* "fm" or "ffm" */
    int field_aware;
    dl_status (*forward)(const dl_backend *be, float *logits, const dl_click_table *table, const dl_click_rows *batch);
    dl_status (*sgd)(const dl_backend *be, float *logits, dl_click_table *table, const dl_click_rows *batch, float lr,
                     float weight_decay);
} dl_click_kind;

/* Builds an FM or FFM model from the setup (model.*, optim.*, comm.embeddings) into *model, for batches of up to
 * `rows` rows. Checks the settings that only click models have (optim.name adagrad, optim.adagrad_init > 0,
 * hash_buckets < 2^31, no row-sharded table on a GPU) with one clear message each. When `single_process` is set the
 * model ignores MPI and keeps a whole replicated table (dealer predict). */
dl_status dl_click_model_create(dl_model *model, const dl_click_kind *kind, const dl_model_setup *setup,
                                const dl_backend *be, int rows, int single_process);
/* Like dl_click_model_create, but the model treats its table as device memory on any backend (staged, as on the
 * CUDA backend): batches and rows move through the backend's copies and ops. On the CPU backend this gives the same
 * bits as the direct path, which is how tests check the GPU's model code where no GPU is. */
dl_status dl_click_model_create_staged(dl_model *model, const dl_click_kind *kind, const dl_model_setup *setup,
                                       const dl_backend *be, int rows, int single_process);

/* The table row feature id `id` trains (see the top of this file). */
int64_t dl_click_feature_row(int64_t id, int64_t hash_buckets);

/* Scores a click batch with the current parameters (replicated model, one process): prob[b] = σ(logit_b). When
 * labels matter, *loss_sum (nullable) gets Σ logloss. */
dl_status dl_click_model_predict(dl_model *model, const dl_click_batch *batch, float *prob, double *loss_sum);

/* Area under the ROC curve of scores against labels (> 0 is positive), ties counted half; NaN when one class is
 * missing. Sorts `scores`/`labels` in place (by score). */
double dl_click_auc(float *scores, float *labels, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
