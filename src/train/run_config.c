/* run_config.c — the application's config: the modules' sections joined into dl_config's schema, the top-level
 * `device` key, the checks across sections, and dl_config_* as thin calls of core/config.h on that schema. */
#include "train/run_config.h"

#include <stddef.h>

static const char *const device_choices[] = {"auto", "cpu", "cuda", NULL};

static const dl_cfg_key top_keys[] = {
    DL_CFG_ENUM_KEY(dl_config, "device", device, device_choices, "auto",
                    "where ranks compute: auto picks cuda when a GPU answers, else cpu"),
    DL_CFG_END,
};

/* In output order: what `dealer config keys` lists and the YAML shows. */
static const dl_cfg_section sections[] = {
    {"", 0, top_keys},
    {"run", offsetof(dl_config, run), dl_run_config_keys},
    {"model", offsetof(dl_config, model), dl_model_config_keys},
    {"data", offsetof(dl_config, data), dl_data_config_keys},
    {"optim", offsetof(dl_config, optim), dl_optim_config_keys},
    {"train", offsetof(dl_config, train), dl_train_config_keys},
    {"comm", offsetof(dl_config, comm), dl_comm_config_keys},
    {"ckpt", offsetof(dl_config, ckpt), dl_ckpt_config_keys},
    {"log", offsetof(dl_config, log), dl_log_config_keys},
    {"dpo", offsetof(dl_config, dpo), dl_dpo_config_keys},
};

/* The checks that involve several sections: the model kind's (models/ knows what each kind needs), then the
 * trainer's own. */
static dl_status check_across(const dl_cfg_schema *schema, const void *config) {
    const dl_config *cfg = config;
    DL_CHECK(dl_model_config_check(schema, cfg, &cfg->model, &cfg->data, &cfg->dpo, &cfg->comm,
                                   cfg->train.batch_per_rank));
    if (cfg->ckpt.keep_every > 0 && cfg->ckpt.every > 0 && cfg->ckpt.keep_every % cfg->ckpt.every != 0)
        return dl_cfg_conflict(schema, cfg, "ckpt.keep_every ckpt.every",
                               "ckpt.keep_every (%d) must be a multiple of ckpt.every (%d)", cfg->ckpt.keep_every,
                               cfg->ckpt.every);
    if (cfg->train.early_stop && cfg->data.valid.count == 0)
        return dl_cfg_conflict(schema, cfg, "train.early_stop data.valid",
                               "train.early_stop needs validation data (data.valid)");
    return DL_OK;
}

const dl_cfg_schema dl_config_schema = {
    .sections = sections,
    .n_sections = (int)(sizeof sections / sizeof sections[0]),
    .size = sizeof(dl_config),
    .origin_offset = offsetof(dl_config, origin),
    .selector = "model.kind",
    .readers = dl_model_readers,
    .check = check_across,
};

dl_status dl_config_defaults(dl_config *cfg) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_defaults: cfg is NULL");
    return dl_cfg_defaults(&dl_config_schema, cfg);
}

dl_status dl_config_load(dl_config *cfg, const char *path, int n_overrides, char **overrides) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_load: cfg is NULL");
    return dl_cfg_load(&dl_config_schema, cfg, path, n_overrides, overrides);
}

dl_status dl_config_load_string(dl_config *cfg, const char *text, size_t len, const char *name) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_load_string: cfg is NULL");
    return dl_cfg_load_string(&dl_config_schema, cfg, text, len, name);
}

void dl_config_free(dl_config *cfg) { dl_cfg_free(&dl_config_schema, cfg); }

dl_status dl_config_to_yaml(const dl_config *cfg, int with_sources, char **text) {
    DL_REQUIRE(cfg && text, DL_ERR_INVALID, "dl_config_to_yaml: bad arguments");
    return dl_cfg_to_yaml(&dl_config_schema, cfg, with_sources, text);
}

bool dl_config_equal(const dl_config *a, const dl_config *b) { return dl_cfg_equal(&dl_config_schema, a, b); }

int dl_config_diff(const dl_config *a, const dl_config *b, const char *a_name, const char *b_name, char *buf,
                   size_t cap) {
    return dl_cfg_diff(&dl_config_schema, a, b, a_name, b_name, buf, cap);
}

dl_status dl_config_rank_hash(const dl_config *cfg, uint64_t *hash) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_rank_hash: bad arguments");
    return dl_cfg_rank_hash(&dl_config_schema, cfg, hash);
}

bool dl_config_key_read_by(const char *key, dl_model_kind kind) {
    return dl_cfg_key_read_by(&dl_config_schema, key, (int)kind);
}

dl_status dl_config_get_text(const dl_config *cfg, const char *key, char *buf, size_t cap) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_get_text: bad arguments");
    return dl_cfg_get_text(&dl_config_schema, cfg, key, buf, cap);
}

dl_status dl_config_source(const dl_config *cfg, const char *key, char *buf, size_t cap) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_source: bad arguments");
    return dl_cfg_source_text(&dl_config_schema, cfg, key, buf, cap);
}

const char *dl_config_enum_text(const char *key, int value) {
    return dl_cfg_enum_text(&dl_config_schema, key, value);
}

void dl_config_print_keys(FILE *out, int markdown) { dl_cfg_print_keys(&dl_config_schema, out, markdown); }

dl_model_setup dl_config_model_setup(const dl_config *cfg) {
    const char *optimizer = dl_config_enum_text("optim.name", (int)cfg->optim.name);
    return (dl_model_setup){
        .model = &cfg->model,
        .dpo = &cfg->dpo,
        .data = &cfg->data,
        .comm = &cfg->comm,
        .optimizer = optimizer ? optimizer : "?",
        .weight_decay = cfg->optim.weight_decay,
        .adagrad_init = cfg->optim.adagrad_init,
        .seed = cfg->run.seed,
        .batch_per_rank = cfg->train.batch_per_rank,
    };
}

dl_status dl_config_create_model(dl_model **model, const dl_config *cfg, const dl_backend *backend, int rows,
                                 int seq_len) {
    DL_REQUIRE(model && cfg, DL_ERR_INVALID, "dl_model_create: NULL argument");
    dl_model_setup setup = dl_config_model_setup(cfg);
    return dl_model_create(model, &setup, backend, rows, seq_len);
}
