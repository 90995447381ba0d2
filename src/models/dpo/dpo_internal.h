/* dpo_internal.h — what the files of src/models/dpo/ share: the dl_dpo struct and the step between the factory
 * and the reference tables. Not for use outside src/models/dpo/. */
#ifndef DL_MODELS_DPO_DPO_INTERNAL_H
#define DL_MODELS_DPO_DPO_INTERNAL_H

#include "models/dpo/dpo.h"

struct dl_dpo {
    dl_gpt_config config;
    dl_dpo_settings settings;
    const dl_backend *be;
    int max_tokens, max_seqs, max_pairs;
    dl_gpt *policy, *reference;
    dl_dpo_head *head;
    dl_dpo_table train_table, valid_table;
    int have_valid_table;
    /* device */
    int32_t *cu_dev;
    float *seq_dev, *dseq_dev, *dtok_dev;
    /* host */
    float *seq_host, *dseq_host, *pc, *pr, *rc, *rr, *dpc, *dpr;
};

/* The loss settings the dpo section holds (dpo.loss, dpo.beta, dpo.label_smoothing). */
dl_dpo_settings dl_dpo_settings_of(const dl_dpo_config *dpo);

/* dpo.reference precomputed: reads dpo.reference_file into d's tables after checking that it was computed from the
 * checkpoint at init_path and from this run's datasets and data settings (DL_ERR_CONFIG naming what differs). */
dl_status dl_dpo_load_reference_file(dl_dpo *d, const char *init_path, const dl_model_setup *setup);

#endif
