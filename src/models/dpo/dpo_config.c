/* dpo_config.c — the rows of the dpo section (dpo_config.h). */
#include "models/dpo/dpo_config.h"

#include <stddef.h>

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_dpo_config, name, type, field, def, __VA_ARGS__)
#define ENUM(name, field, choices, def, doc) DL_CFG_ENUM_KEY(dl_dpo_config, name, field, choices, def, doc)

/* In the order of enum dl_dpo_loss_kind (ops.h). */
static const char *const loss_choices[] = {"sigmoid", "ipo", "hinge", NULL};
static const char *const reference_choices[] = {"model", "precomputed", NULL};
_Static_assert(DL_DPO_SIGMOID == 0 && DL_DPO_IPO == 1 && DL_DPO_HINGE == 2, "dpo.loss choices follow ops.h");
_Static_assert(sizeof(enum dl_dpo_loss_kind) == sizeof(int), "config enums must be int-sized");

const dl_cfg_key dl_dpo_config_keys[] = {
    KEY("beta", DL_CFG_FLOAT, beta, "0.1", DL_CFG_GT(0), "strength of the pull towards the reference model"),
    ENUM("loss", loss, loss_choices, "sigmoid", "sigmoid (the DPO paper), ipo or hinge"),
    KEY("label_smoothing", DL_CFG_FLOAT, label_smoothing, "0", DL_CFG_IN_HALF_OPEN(0, 0.5),
        "sigmoid: assumed rate of flipped preference labels (conservative DPO)"),
    ENUM("reference", reference, reference_choices, "model",
         "reference log-probs from a frozen copy of the model, or precomputed into dpo.reference_file"),
    KEY("reference_file", DL_CFG_STRING, reference_file, "", DL_CFG_ANY,
        "precomputed: the reference log-probs file (dealer dpo precompute-ref)"),
    DL_CFG_END,
};
