/* dpo_config.h — the `dpo` section of the config, which the dpo model owns (read only when model.kind is dpo). The
 * loss is the ops' own enum (ops.h: dl_dpo_loss_kind), so the setting reaches the kernels as it was read. */
#ifndef DL_MODELS_DPO_CONFIG_H
#define DL_MODELS_DPO_CONFIG_H

#include "core/config.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dpo.reference: model | precomputed. */
typedef enum dl_dpo_reference { DL_DPO_REF_MODEL = 0, DL_DPO_REF_PRECOMPUTED = 1 } dl_dpo_reference;

typedef struct dl_dpo_config {
    double beta;
    enum dl_dpo_loss_kind loss; /* dpo.loss: sigmoid | ipo | hinge */
    double label_smoothing;
    dl_dpo_reference reference;
    char *reference_file;
} dl_dpo_config;

/* The section's rows, ended by DL_CFG_END (offsets within dl_dpo_config). */
extern const dl_cfg_key dl_dpo_config_keys[];

#ifdef __cplusplus
}
#endif

#endif
