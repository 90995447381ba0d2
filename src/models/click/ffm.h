/* ffm.h — Juan et al.'s field-aware factorization machine (model.kind: ffm) for click data, as libffm trains it.
 *
 *     logit = r · Σ_{i<j} ⟨v[feature_i, field_j], v[feature_j, field_i]⟩ x_i x_j   (+ bias + Σ w_i x_i optionally)
 *
 * r = 1/Σx² with model.normalize; a latent vector per feature per field (model.num_fields of them, k floats each);
 * per-instance AdaGrad, λ per pair, weights initialised uniform in [0, 1)/√k. With model.linear_terms false and
 * libffm's hyper-parameters (k 4, λ 2e-5, η 0.2, 15 epochs) it reproduces libffm. Everything an FFM shares with FM
 * (hashing, tables, ranks, evaluation) is in click_model.h. */
#ifndef DL_MODELS_CLICK_FFM_H
#define DL_MODELS_CLICK_FFM_H

#include "models/click/click_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The FFM kernels for click_model.c. */
extern const dl_click_kind dl_ffm_kind;

/* Builds an FFM into *model from config (model.k, model.num_fields, model.hash_buckets, model.linear_terms,
 * model.normalize, optim.*, comm.embeddings) for batches of up to `rows` rows. */
dl_status dl_ffm_create(dl_model *model, const dl_model_setup *setup, const dl_backend *be, int rows);

#ifdef __cplusplus
}
#endif

#endif
