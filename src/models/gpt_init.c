/* gpt_init.c — model.init_from for the gpt (see gpt_init.h). */
#include "models/gpt_init.h"

#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"

dl_status dl_gpt_init_check(const dl_weights_source *src, const dl_gpt_config *want) {
    DL_REQUIRE(src && want, DL_ERR_INVALID, "dl_gpt_init_check: NULL argument");
    dl_gpt2_shape have;
    DL_CHECK_CTX(dl_weights_shape(src, &have), "model.init_from");
    const char *where = src->kind == DL_WEIGHTS_HF_DIR ? src->config_json : src->path;
    struct {
        const char *key;
        double have, want;
        int known;
    } keys[] = {
        {"model.vocab_size", have.vocab_size, want->vocab_size, 1},
        {"model.n_layer", have.n_layer, want->n_layer, 1},
        {"model.n_head", have.n_head, want->n_head, have.n_head_known},
        {"model.n_embd", have.n_embd, want->n_embd, 1},
        {"model.max_seq_len", have.n_positions, want->max_seq_len, !want->rope},
        {"model.rope_theta", have.rope ? have.rope_theta : 0, want->rope ? want->rope_theta : 0, 1},
    };
    if (have.rope != want->rope) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "model.positions is %s in this config but %s in the %s %s "
                              "(model.init_from)", want->rope ? "rope" : "learned", have.rope ? "rope" : "learned",
                              src->kind == DL_WEIGHTS_DEALER ? "checkpoint" : dl_weights_kind_name(src->kind), where);
        dl_error_hint("set model.positions: %s (GPT-2 models have learned positions)", have.rope ? "rope" : "learned");
        return s;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!keys[i].known || keys[i].have == keys[i].want)
            continue;
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s is %g in this config but %g in the %s %s (model.init_from)",
                              keys[i].key, keys[i].want, keys[i].have,
                              src->kind == DL_WEIGHTS_DEALER ? "checkpoint" : dl_weights_kind_name(src->kind), where);
        dl_error_hint("the model has the shape of the weights it starts from: copy the model section of that run's "
                      "config.yaml, or the one dealer ckpt import prints");
        return s;
    }
    return DL_OK;
}

dl_status dl_gpt_init_resolve(const char *spec, const dl_gpt_config *want, dl_weights_source *src) {
    DL_REQUIRE(spec && want && src, DL_ERR_INVALID, "dl_gpt_init_resolve: NULL argument");
    DL_CHECK(dl_weights_resolve(spec, "model.init_from", src));
    return dl_gpt_init_check(src, want);
}

dl_status dl_gpt_init_load(const dl_weights_source *src, const dl_backend *be, dl_gpt *gpt, uint32_t *params_crc) {
    DL_REQUIRE(src && be && gpt, DL_ERR_INVALID, "dl_gpt_init_load: NULL argument");
    size_t numel = dl_gpt_num_params(gpt), bytes = numel * sizeof(float);
    float *host = calloc(numel ? numel : 1, sizeof *host); /* zeroed: any alignment padding is defined */
    DL_REQUIRE(host != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes to load %s", bytes, src->path);
    dl_status s = dl_weights_load(src, dl_gpt_params(gpt), host);
    if (s == DL_OK)
        s = dl_mem_to_device(be, dl_gpt_param_data(gpt), host, bytes);
    if (s == DL_OK && params_crc)
        *params_crc = dl_crc32c(0, host, bytes);
    free(host);
    if (s != DL_OK)
        dl_error_context("loading model.init_from");
    return s;
}
