/* fm.h — Rendle's factorization machine (model.kind: fm) for click data.
 *
 *     logit = bias + Σ_i w_i x_i + r · Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j,   r = 1/Σx² with model.normalize
 *
 * with the pairwise sum computed by the O(kn) identity, trained per instance with AdaGrad (libffm's semantics, as
 * xLearn's FM does). Everything an FM shares with FFM (hashing, tables, ranks, evaluation) is in click_model.h. */
#ifndef DL_MODELS_CLICK_FM_H
#define DL_MODELS_CLICK_FM_H

#include "models/click/click_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The FM kernels for click_model.c. */
extern const dl_click_kind dl_fm_kind;

/* Builds an FM into *model from config (model.k, model.hash_buckets, model.linear_terms, model.normalize, optim.*,
 * comm.embeddings) for batches of up to `rows` rows. */
dl_status dl_fm_create(dl_model *model, const dl_model_setup *setup, const dl_backend *be, int rows);

#ifdef __cplusplus
}
#endif

#endif
