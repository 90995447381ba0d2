/* model.c — the model factory, and the gpt model behind the generic interface (model.h); fm and ffm live in
 * fm.c, ffm.c and click_model.c (click/), dpo in dpo/. */
#include "models/model.h"

#include <stdlib.h>

#include "models/dpo/dpo.h"
#include "models/click/ffm.h"
#include "models/click/fm.h"
#include "models/gpt.h"
#include "models/gpt_init.h"

dl_data_kind dl_model_data_kind(const dl_model_config *model) {
    switch (dl_model_kind_data(model->kind)) {
    case DL_FORMAT_CLICKS: return DL_DATA_CLICKS;
    case DL_FORMAT_PAIRS: return DL_DATA_PAIRS;
    default: return DL_DATA_TEXT;
    }
}

static dl_gpt_inputs gpt_inputs(const dl_token_batch *b) {
    return (dl_gpt_inputs){b->tokens, b->targets, b->positions, b->cu_seqlens, b->num_seqs, b->num_tokens};
}

static void add_batch_counts(const dl_token_batch *b, dl_step_stats *stats) {
    stats->tokens += b->num_tokens;
    stats->slots += (double)b->rows * b->seq_len;
    for (int s = 0; s < b->num_seqs; s++) {
        double n = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        stats->attended += n * (n + 1) / 2;
    }
}

static dl_status gpt_train_batch(dl_model *model, const dl_batch *batch, const dl_step_context *ctx,
                                 dl_step_stats *stats) {
    const dl_token_batch *b = &batch->tokens;
    add_batch_counts(b, stats);
    if (b->num_tokens == 0) /* an empty end-of-data batch: this rank contributes nothing, but still reports layers */
        return ctx && ctx->hooks && ctx->hooks->layer_done ? ctx->hooks->layer_done(ctx->hooks->ctx, -1) : DL_OK;
    dl_gpt_inputs in = gpt_inputs(b);
    double loss;
    int64_t targets;
    DL_CHECK(dl_gpt_forward(model->impl, &in, &loss, &targets));
    stats->loss_sum += loss;
    stats->targets += (double)targets;
    return dl_gpt_backward(model->impl, ctx ? ctx->hooks : NULL);
}

static dl_status gpt_eval_batch(dl_model *model, const dl_batch *batch, dl_step_stats *stats) {
    const dl_token_batch *b = &batch->tokens;
    add_batch_counts(b, stats);
    if (b->num_tokens == 0)
        return DL_OK;
    dl_gpt_inputs in = gpt_inputs(b);
    double loss;
    int64_t targets;
    DL_CHECK(dl_gpt_forward(model->impl, &in, &loss, &targets));
    stats->loss_sum += loss;
    stats->targets += (double)targets;
    return DL_OK;
}

/* With model.init_from the weights are the source's (checked against the config at creation) and the seed is not
 * used; without, GPT-2's initialisation from the seed. */
static dl_status gpt_init_params(dl_model *model, uint64_t seed) {
    const dl_weights_source *init = model->init_source;
    if (init)
        return dl_gpt_init_load(init, model->backend, model->impl, NULL);
    return dl_gpt_init_params(model->impl, seed);
}

static double gpt_step_flops(const dl_model *model, const dl_step_stats *stats) {
    const dl_gpt_config *c = dl_gpt_get_config(model->impl);
    if (!c || stats->tokens <= 0)
        return 0.0;
    double context = stats->attended / stats->tokens;
    return dl_gpt_flops_per_token(c, context) * stats->tokens;
}

static void gpt_destroy(dl_model *model) {
    dl_gpt_destroy(model->impl);
    free(model->init_source);
    model->init_source = NULL;
}

static dl_status create_gpt(dl_model *model, const dl_model_config *cfg, const dl_backend *be, int rows, int seq_len) {
    dl_gpt_config gc = dl_model_gpt_config(cfg);
    /* Keys the GPT does not implement must not be accepted silently. */
    const char *unsupported = cfg->dropout != 0.0          ? "dropout other than 0"
                              : !cfg->tied_head             ? "tied_head: false"
                              : cfg->init_std != 0.02       ? "init_std other than 0.02"
                              : cfg->layernorm_eps != 1e-5  ? "layernorm_eps other than 1e-5"
                                                                  : NULL;
    if (unsupported) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "model.%s is not supported by the gpt model", unsupported);
        dl_error_hint("the gpt model trains without dropout, with the LM head tied to the token embedding, GPT-2 "
                      "initialisation (std 0.02) and LayerNorm epsilon 1e-5: remove the key");
        return s;
    }
    if (!gc.rope && seq_len > gc.max_seq_len) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "data.seq_len (%d) exceeds model.max_seq_len (%d), the learned "
                                             "position table's length", seq_len, gc.max_seq_len);
        dl_error_hint("raise model.max_seq_len or lower data.seq_len");
        return s;
    }
    dl_weights_source *init = NULL;
    dl_status s = DL_OK;
    if (cfg->init_from[0]) {
        /* A bad model.init_from stops the run here, before the first step (exit 2). */
        init = calloc(1, sizeof *init);
        s = init ? dl_gpt_init_resolve(cfg->init_from, &gc, init)
                 : DL_FAIL(DL_ERR_NOMEM, "cannot allocate model.init_from");
    }
    int max_tokens = rows * seq_len;
    dl_gpt *gpt = NULL;
    if (s == DL_OK)
        s = dl_gpt_create(&gpt, &gc, be, max_tokens, max_tokens);
    if (s != DL_OK) {
        free(init);
        return s;
    }
    model->kind = "gpt";
    model->impl = gpt;
    model->init_source = init;
    model->backend = be;
    model->params = dl_gpt_params(gpt);
    model->param_data = dl_gpt_param_data(gpt);
    model->grad_data = dl_gpt_grad_data(gpt);
    model->train_batch = gpt_train_batch;
    model->eval_batch = gpt_eval_batch;
    model->init_params = gpt_init_params;
    model->step_flops = gpt_step_flops;
    model->destroy = gpt_destroy;
    model->activation_bytes = dl_gpt_activation_bytes(&gc, max_tokens, max_tokens);
    dl_gpt_config none = gc;
    none.checkpoint_every = 0;
    model->activation_bytes_without_checkpointing = dl_gpt_activation_bytes(&none, max_tokens, max_tokens);
    return DL_OK;
}

dl_status dl_model_create(dl_model **out, const dl_model_setup *setup, const dl_backend *be, int rows, int seq_len) {
    DL_REQUIRE(out && setup && setup->model && be, DL_ERR_INVALID, "dl_model_create: NULL argument");
    DL_REQUIRE(rows >= 1 && seq_len >= 1, DL_ERR_CONFIG, "train.batch_per_rank and data.seq_len must be positive");
    *out = NULL;
    dl_model *model = calloc(1, sizeof *model);
    DL_REQUIRE(model != NULL, DL_ERR_NOMEM, "cannot allocate a model");
    dl_status s;
    switch (setup->model->kind) {
    case DL_MODEL_GPT:
        s = create_gpt(model, setup->model, be, rows, seq_len);
        break;
    case DL_MODEL_FM:
        s = dl_fm_create(model, setup, be, rows);
        break;
    case DL_MODEL_FFM:
        s = dl_ffm_create(model, setup, be, rows);
        break;
    case DL_MODEL_DPO:
        s = dl_dpo_model_create(model, setup, be, rows, seq_len);
        break;
    default:
        s = DL_FAIL(DL_ERR_CONFIG, "unknown model.kind %d", (int)setup->model->kind);
        dl_error_hint("use model.kind: gpt, fm, ffm or dpo");
        break;
    }
    if (s != DL_OK) {
        free(model);
        return s;
    }
    *out = model;
    return DL_OK;
}

void dl_model_destroy(dl_model *model) {
    if (!model)
        return;
    if (model->destroy)
        model->destroy(model);
    free(model);
}

dl_status dl_model_init_params(dl_model *model, uint64_t seed, int background) {
    DL_REQUIRE(model != NULL && model->init_params != NULL, DL_ERR_INVALID, "dl_model_init_params: NULL model");
    if (background && model->init_params_background)
        return model->init_params_background(model, seed);
    return model->init_params(model, seed);
}

dl_status dl_model_params_ready(dl_model *model) {
    DL_REQUIRE(model != NULL, DL_ERR_INVALID, "dl_model_params_ready: NULL model");
    return model->params_ready ? model->params_ready(model) : DL_OK;
}
