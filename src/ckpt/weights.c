/* weights.c — resolving model.init_from (and `dealer ckpt import`'s input) and loading it (see weights.h). */
#include "ckpt/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt/checkpoint.h"
#include "ckpt/safetensors.h"
#include "core/config.h"

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

const char *dl_weights_kind_name(dl_weights_kind kind) {
    switch (kind) {
    case DL_WEIGHTS_DEALER: return "dealer checkpoint";
    case DL_WEIGHTS_SAFETENSORS: return "safetensors file";
    case DL_WEIGHTS_HF_DIR: return "Hugging Face model directory";
    }
    return "?";
}

/* Reads a `latest` file (one line: a checkpoint file name in the same directory) into path. */
static dl_status read_latest(const char *key, const char *latest, char *path, size_t cap) {
    FILE *f = fopen(latest, "r");
    char name[256] = "";
    int ok = f && fgets(name, sizeof name, f) != NULL;
    if (f)
        fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    DL_REQUIRE(ok && name[0] && !strchr(name, '/'), DL_ERR_CONFIG, "%s: %s should hold one line naming a checkpoint "
               "file", key, latest);
    const char *slash = strrchr(latest, '/');
    if (slash)
        snprintf(path, cap, "%.*s/%s", (int)(slash - latest), latest, name);
    else
        snprintf(path, cap, "%s", name);
    if (!is_file(path)) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: %s names %s, which does not exist", key, latest, path);
        dl_error_hint("point %s at an existing ckpt/step_N.h5 file", key);
        return s;
    }
    return DL_OK;
}

dl_status dl_weights_resolve(const char *spec, const char *key, dl_weights_source *src) {
    DL_REQUIRE(spec && src, DL_ERR_INVALID, "dl_weights_resolve: NULL argument");
    key = key ? key : "weights";
    src->kind = DL_WEIGHTS_DEALER;
    src->path[0] = src->config_json[0] = '\0';
    DL_REQUIRE(spec[0] != '\0', DL_ERR_CONFIG, "%s is empty", key);
    DL_REQUIRE(strlen(spec) < DL_WEIGHTS_PATH_MAX - 64, DL_ERR_CONFIG, "%s: the path is too long", key);
    char latest[DL_WEIGHTS_PATH_MAX];
    if (is_dir(spec)) {
        char model[DL_WEIGHTS_PATH_MAX], config[DL_WEIGHTS_PATH_MAX];
        snprintf(model, sizeof model, "%s/model.safetensors", spec);
        snprintf(config, sizeof config, "%s/config.json", spec);
        if (is_file(model) || is_file(config)) {
            if (!is_file(model) || !is_file(config)) {
                dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s %s is a Hugging Face model directory without %s", key, spec,
                                      is_file(model) ? "config.json" : "model.safetensors");
                dl_error_hint("a model directory holds config.json and model.safetensors (save_pretrained with "
                              "safe_serialization; pytorch_model.bin is not read)");
                return s;
            }
            src->kind = DL_WEIGHTS_HF_DIR;
            snprintf(src->path, sizeof src->path, "%s", model);
            snprintf(src->config_json, sizeof src->config_json, "%s", config);
            return DL_OK;
        }
        /* a run directory (RUN/ckpt/latest) or its ckpt directory (CKPT/latest) */
        snprintf(latest, sizeof latest, "%s/ckpt/latest", spec);
        if (!is_file(latest))
            snprintf(latest, sizeof latest, "%s/latest", spec);
        if (!is_file(latest)) {
            dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s %s is a directory without a checkpoint (no ckpt/latest) and "
                                  "without model.safetensors", key, spec);
            dl_error_hint("name a run directory, a ckpt/step_N.h5 file, a .safetensors file or a Hugging Face model "
                          "directory");
            return s;
        }
        src->kind = DL_WEIGHTS_DEALER;
        return read_latest(key, latest, src->path, sizeof src->path);
    }
    if (!is_file(spec)) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s %s does not exist", key, spec);
        dl_error_hint("name a run directory, a ckpt/step_N.h5 file, a .safetensors file or a Hugging Face model "
                      "directory (train the gpt first: dealer train configs/gpt-shakespeare.yaml)");
        return s;
    }
    const char *base = strrchr(spec, '/');
    if (strcmp(base ? base + 1 : spec, "latest") == 0) {
        src->kind = DL_WEIGHTS_DEALER;
        return read_latest(key, spec, src->path, sizeof src->path);
    }
    src->kind = ends_with(spec, ".safetensors") ? DL_WEIGHTS_SAFETENSORS : DL_WEIGHTS_DEALER;
    snprintf(src->path, sizeof src->path, "%s", spec);
    return DL_OK;
}

/* The gpt shape keys of a dealer config text, as a checkpoint stores it. ckpt sits below models/, which owns the
 * model section, so it reads these seven keys with rows of its own and skips the rest of the text; the defaults
 * (for a text written before a key existed) are the model section's, which test_config checks. */
typedef struct stored_shape {
    int vocab_size, n_layer, n_head, n_embd, max_seq_len, positions;
    double rope_theta;
    struct dl_cfg_origin *origin;
} stored_shape;

#define KEY(name, type, def, ...) DL_CFG_KEY(stored_shape, #name, type, name, def, __VA_ARGS__, "")
static const char *const positions_choices[] = {"learned", "rope", NULL};
static const dl_cfg_key stored_shape_keys[] = {
    KEY(vocab_size, DL_CFG_INT, "50257", DL_CFG_GE(1)),
    KEY(n_layer, DL_CFG_INT, "12", DL_CFG_IN(1, 1024)),
    KEY(n_head, DL_CFG_INT, "12", DL_CFG_GE(1)),
    KEY(n_embd, DL_CFG_INT, "768", DL_CFG_GE(1)),
    KEY(max_seq_len, DL_CFG_INT, "1024", DL_CFG_GE(1)),
    DL_CFG_ENUM_KEY(stored_shape, "positions", positions, positions_choices, "learned", ""),
    KEY(rope_theta, DL_CFG_FLOAT, "10000", DL_CFG_GT(0)),
    DL_CFG_END,
};
#undef KEY
static const dl_cfg_section stored_shape_sections[] = {{"model", 0, stored_shape_keys}};
const dl_cfg_schema dl_weights_stored_shape_schema = {
    .sections = stored_shape_sections,
    .n_sections = 1,
    .size = sizeof(stored_shape),
    .origin_offset = offsetof(stored_shape, origin),
    .skip_unknown = true,
};

static dl_status shape_from_yaml(const char *yaml, const char *kind, const char *path, dl_gpt2_shape *shape) {
    if (kind && strcmp(kind, "gpt") != 0 && strcmp(kind, "dpo") != 0) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s holds a %s model, not a gpt", path, kind);
        dl_error_hint("start from a gpt (or dpo) run's checkpoint");
        return s;
    }
    stored_shape cfg;
    dl_status s = dl_cfg_load_string(&dl_weights_stored_shape_schema, &cfg, yaml, strlen(yaml), path);
    if (s != DL_OK) {
        dl_error_context("reading the config stored in %s", path);
        return s;
    }
    shape->vocab_size = cfg.vocab_size;
    shape->n_layer = cfg.n_layer;
    shape->n_head = cfg.n_head;
    shape->n_embd = cfg.n_embd;
    shape->n_positions = cfg.max_seq_len;
    shape->rope = cfg.positions == 1;
    shape->rope_theta = cfg.rope_theta;
    shape->n_head_known = 1;
    dl_cfg_free(&dl_weights_stored_shape_schema, &cfg);
    return DL_OK;
}

dl_status dl_weights_shape(const dl_weights_source *src, dl_gpt2_shape *shape) {
    DL_REQUIRE(src && shape, DL_ERR_INVALID, "dl_weights_shape: NULL argument");
    memset(shape, 0, sizeof *shape);
    if (src->kind == DL_WEIGHTS_DEALER) {
        dl_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        DL_CHECK(dl_ckpt_read_meta(src->path, &meta));
        dl_status s = shape_from_yaml(meta.config_yaml ? meta.config_yaml : "", meta.model_kind, src->path, shape);
        free(meta.config_yaml);
        return s;
    }
    if (src->kind == DL_WEIGHTS_HF_DIR) {
        DL_CHECK(dl_hf_gpt2_read_config(src->config_json, shape));
        /* config.json and the tensors must agree too: a directory whose files disagree is refused here. */
        dl_st_file *f = NULL;
        DL_CHECK(dl_st_open(&f, src->path));
        dl_gpt2_shape found;
        dl_status s = dl_hf_gpt2_infer_shape(f, &found);
        dl_st_close(f);
        DL_CHECK(s);
        struct {
            const char *key;
            int config, tensors;
        } keys[] = {{"vocab_size", shape->vocab_size, found.vocab_size}, {"n_embd", shape->n_embd, found.n_embd},
                    {"n_positions", shape->n_positions, found.n_positions}, {"n_layer", shape->n_layer, found.n_layer}};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (keys[i].config != keys[i].tensors)
                return DL_FAIL(DL_ERR_FORMAT, "%s says %s %d but %s holds %d", src->config_json, keys[i].key,
                               keys[i].config, src->path, keys[i].tensors);
        return DL_OK;
    }
    dl_st_file *f = NULL;
    DL_CHECK(dl_st_open(&f, src->path));
    dl_status s;
    if (dl_hf_gpt2_detect(f, NULL)) {
        s = dl_hf_gpt2_infer_shape(f, shape);
    } else if (dl_st_metadata(f, "dealer_config")) {
        s = shape_from_yaml(dl_st_metadata(f, "dealer_config"), dl_st_metadata(f, "dealer_model_kind"), src->path,
                            shape);
    } else {
        s = DL_FAIL(DL_ERR_FORMAT, "%s has neither GPT-2 names (transformer.wte.weight) nor dealer's export metadata "
                    "(dealer_config)", src->path);
        dl_error_hint("init_from reads GPT-2 checkpoints and dealer's own safetensors exports");
    }
    dl_st_close(f);
    return s;
}

dl_status dl_weights_load(const dl_weights_source *src, const dl_tensor_table *params, float *host) {
    DL_REQUIRE(src && params && host, DL_ERR_INVALID, "dl_weights_load: NULL argument");
    if (src->kind == DL_WEIGHTS_DEALER) {
        dl_ckpt_tensors t = {params, host, 0, NULL, NULL, 0, 0};
        uint8_t *cursor = NULL;
        size_t cursor_len = 0;
        dl_status s = dl_ckpt_load(src->path, &t, 0, 0, &cursor, &cursor_len);
        free(cursor);
        return s;
    }
    dl_st_file *f = NULL;
    DL_CHECK(dl_st_open(&f, src->path));
    dl_status s = dl_hf_gpt2_detect(f, NULL) ? dl_hf_gpt2_load(f, params, host) : dl_st_load_dealer_names(f, params, host);
    dl_st_close(f);
    return s;
}
