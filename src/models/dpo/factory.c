/* factory.c — the model.kind dpo model behind model.h: the starting checkpoint (model.init_from), the reference
 * (a frozen model or a precomputed file) and the model interface the trainer drives. */
#include "models/dpo/dpo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/checkpoint.h"
#include "models/gpt_init.h"

/* ---- checkpoints ----------------------------------------------------------------------------------------------- */

dl_status dl_dpo_resolve_checkpoint(const char *spec, char *path, size_t cap) {
    DL_REQUIRE(spec && path && cap > 0, DL_ERR_INVALID, "dl_dpo_resolve_checkpoint: NULL argument");
    path[0] = '\0';
    DL_REQUIRE(spec[0] != '\0', DL_ERR_CONFIG, "model.init_from is empty: DPO starts from a gpt checkpoint");
    dl_weights_source src;
    DL_CHECK(dl_weights_resolve(spec, "model.init_from", &src));
    /* A Hugging Face directory is named by the directory (its config.json is part of it); the rest by the file. */
    const char *name = src.kind == DL_WEIGHTS_HF_DIR ? spec : src.path;
    DL_REQUIRE(strlen(name) < cap, DL_ERR_CONFIG, "model.init_from: the path %s is too long", name);
    memcpy(path, name, strlen(name) + 1);
    return DL_OK;
}

dl_status dl_dpo_load_checkpoint(const char *path, const dl_backend *be, dl_gpt *gpt, uint32_t *params_crc,
                                 int64_t *step) {
    DL_REQUIRE(path && be && gpt, DL_ERR_INVALID, "dl_dpo_load_checkpoint: NULL argument");
    dl_weights_source src;
    DL_CHECK(dl_gpt_init_resolve(path, dl_gpt_get_config(gpt), &src));
    int64_t from_step = 0;
    if (src.kind == DL_WEIGHTS_DEALER) {
        dl_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        DL_CHECK_CTX(dl_ckpt_read_meta(src.path, &meta), "model.init_from");
        free(meta.config_yaml);
        from_step = meta.step;
    }
    DL_CHECK(dl_gpt_init_load(&src, be, gpt, params_crc));
    if (step)
        *step = from_step;
    return DL_OK;
}

/* ---- the model interface --------------------------------------------------------------------------------------- */

typedef struct dpo_model {
    dl_dpo *dpo;
    const dl_backend *be;
    char init_path[4300];
    int reference_model;
} dpo_model;

static dl_status dpo_train_batch(dl_model *model, const dl_batch *batch, const dl_step_context *ctx,
                                 dl_step_stats *stats) {
    dpo_model *m = model->impl;
    return dl_dpo_batch(m->dpo, &batch->tokens, 1, ctx ? ctx->hooks : NULL, stats);
}

static dl_status dpo_eval_batch(dl_model *model, const dl_batch *batch, dl_step_stats *stats) {
    dpo_model *m = model->impl;
    return dl_dpo_batch(m->dpo, &batch->tokens, 0, NULL, stats);
}

/* The starting point is the checkpoint, not a random draw: the seed is not used. */
static dl_status dpo_init_params(dl_model *model, uint64_t seed) {
    (void)seed;
    dpo_model *m = model->impl;
    return dl_dpo_load_checkpoint(m->init_path, m->be, m->dpo->policy, NULL, NULL);
}

/* The policy's forward and backward, plus the reference's forward (a third of it) when a model is the reference. */
static double dpo_step_flops(const dl_model *model, const dl_step_stats *stats) {
    const dpo_model *m = model->impl;
    if (stats->tokens <= 0)
        return 0.0;
    double context = stats->attended / stats->tokens;
    double policy = dl_gpt_flops_per_token(&m->dpo->config, context) * stats->tokens;
    return m->reference_model ? policy * 4.0 / 3.0 : policy;
}

static void dpo_destroy(dl_model *model) {
    dpo_model *m = model->impl;
    if (!m)
        return;
    dl_dpo_destroy(m->dpo);
    free(m);
    model->impl = NULL;
}

dl_status dl_dpo_model_create(dl_model *model, const dl_model_setup *setup, const dl_backend *be, int rows,
                              int seq_len) {
    DL_REQUIRE(model && setup && setup->model && setup->dpo && setup->data && be, DL_ERR_INVALID,
               "dl_dpo_model_create: NULL argument");
    const dl_data_config *data = setup->data;
    DL_REQUIRE(rows >= 2, DL_ERR_CONFIG, "train.batch_per_rank must be at least 2 for DPO (a pair's two documents "
                                         "may take two rows), got %d", rows);
    if (data->overlong == DL_OVERLONG_SPLIT) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "data.overlong split does not apply to preference pairs");
        dl_error_hint("use truncate, drop or error: a split would change the log-probs the loss compares");
        return s;
    }
    dl_gpt_config gc = dl_model_gpt_config(setup->model);
    if (!gc.rope && seq_len > gc.max_seq_len) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "data.seq_len (%d) exceeds model.max_seq_len (%d)", seq_len,
                              gc.max_seq_len);
        dl_error_hint("lower data.seq_len");
        return s;
    }
    dl_dpo_settings st = dl_dpo_settings_of(setup->dpo);
    DL_CHECK(dl_dpo_settings_check(&st));
    dpo_model *m = calloc(1, sizeof *m);
    DL_REQUIRE(m != NULL, DL_ERR_NOMEM, "cannot allocate the DPO model");
    m->be = be;
    m->reference_model = setup->dpo->reference == DL_DPO_REF_MODEL;
    int max_tokens = rows * seq_len;
    dl_status s = dl_dpo_resolve_checkpoint(setup->model->init_from, m->init_path, sizeof m->init_path);
    if (s == DL_OK)
        s = dl_dpo_create(&m->dpo, &gc, &st, be, max_tokens, m->reference_model);
    if (s == DL_OK && m->reference_model)
        s = dl_dpo_load_checkpoint(m->init_path, be, m->dpo->reference, NULL, NULL);
    if (s == DL_OK && !m->reference_model)
        s = dl_dpo_load_reference_file(m->dpo, m->init_path, setup);
    if (s != DL_OK) {
        if (m->dpo)
            dl_dpo_destroy(m->dpo);
        free(m);
        return s;
    }
    dl_gpt *policy = m->dpo->policy;
    model->kind = "dpo";
    model->impl = m;
    model->params = dl_gpt_params(policy);
    model->param_data = dl_gpt_param_data(policy);
    model->grad_data = dl_gpt_grad_data(policy);
    model->train_batch = dpo_train_batch;
    model->eval_batch = dpo_eval_batch;
    model->init_params = dpo_init_params;
    model->step_flops = dpo_step_flops;
    model->destroy = dpo_destroy;
    for (int i = 0; i < DL_DPO_NUM_METRICS && i < DL_MAX_MODEL_METRICS; i++)
        model->metric_names[i] = dl_dpo_metric_names[i];
    dl_gpt_config none = gc, ref = gc;
    none.checkpoint_every = 0;
    ref.checkpoint_every = 1;
    size_t ref_bytes = m->reference_model ? dl_gpt_activation_bytes(&ref, max_tokens, max_tokens) : 0;
    model->activation_bytes = dl_gpt_activation_bytes(&gc, max_tokens, max_tokens) + ref_bytes;
    model->activation_bytes_without_checkpointing = dl_gpt_activation_bytes(&none, max_tokens, max_tokens) + ref_bytes;
    return DL_OK;
}
