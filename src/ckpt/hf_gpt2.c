/* hf_gpt2.c — GPT-2 names, config.json, and the Hugging Face directory export (see hf_gpt2.h). */
#include "ckpt/hf_gpt2.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/checkpoint.h"
#include "core/fs.h"

/* ---- config.json ----------------------------------------------------------------------------------------------- */

/* An integer key with GPT2Config's default when absent. */
static dl_status int_key(json_t *root, const char *path, const char *key, int fallback, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return DL_OK;
    }
    DL_REQUIRE(json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= (1 << 30), DL_ERR_FORMAT,
               "%s: %s must be a positive integer", path, key);
    *out = (int)json_integer_value(v);
    return DL_OK;
}

static int bool_key(json_t *root, const char *key, int fallback) {
    json_t *v = json_object_get(root, key);
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

static dl_status unsupported(const char *path, const char *key, const char *value, const char *why) {
    dl_status s = DL_FAIL(DL_ERR_UNSUPPORTED, "%s: %s %s is not supported: %s", path, key, value, why);
    dl_error_hint("dealer's gpt is GPT-2's architecture exactly (gelu_new, LayerNorm epsilon 1e-5, tied head); "
                  "this model is a variant it cannot run");
    return s;
}

dl_status dl_hf_gpt2_read_config(const char *path, dl_gpt2_shape *shape) {
    DL_REQUIRE(path && shape, DL_ERR_INVALID, "dl_hf_gpt2_read_config: NULL argument");
    memset(shape, 0, sizeof *shape);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        FILE *probe = fopen(path, "r");
        if (!probe)
            return DL_FAIL(DL_ERR_CONFIG, "%s does not exist or cannot be read", path);
        fclose(probe);
        return DL_FAIL(DL_ERR_FORMAT, "%s:%d: not valid JSON (%s)", path, err.line, err.text);
    }
    dl_status s = DL_OK;
    if (!json_is_object(root))
        s = DL_FAIL(DL_ERR_FORMAT, "%s: expected a JSON object", path);
    json_t *type = json_object_get(root, "model_type");
    if (s == DL_OK && type && !(json_is_string(type) && strcmp(json_string_value(type), "gpt2") == 0)) {
        s = DL_FAIL(DL_ERR_UNSUPPORTED, "%s: model_type %s is not gpt2", path,
                    json_is_string(type) ? json_string_value(type) : "(not a string)");
        dl_error_hint("dealer imports GPT-2-architecture models (model_type gpt2) only");
    }
    if (s == DL_OK)
        s = int_key(root, path, "vocab_size", 50257, &shape->vocab_size);
    if (s == DL_OK)
        s = int_key(root, path, "n_positions", 1024, &shape->n_positions);
    if (s == DL_OK)
        s = int_key(root, path, "n_embd", 768, &shape->n_embd);
    if (s == DL_OK)
        s = int_key(root, path, "n_layer", 12, &shape->n_layer);
    if (s == DL_OK)
        s = int_key(root, path, "n_head", 12, &shape->n_head);
    int n_inner = 0;
    if (s == DL_OK)
        s = int_key(root, path, "n_inner", 4 * shape->n_embd, &n_inner);
    if (s == DL_OK && n_inner != 4 * shape->n_embd) {
        char v[32];
        snprintf(v, sizeof v, "%d", n_inner);
        s = unsupported(path, "n_inner", v, "the MLP is 4 × n_embd wide");
    }
    json_t *act = json_object_get(root, "activation_function");
    const char *act_name = json_is_string(act) ? json_string_value(act) : act ? "(not a string)" : "gelu_new";
    /* gelu_new and gelu_pytorch_tanh are the same tanh formula; plain "gelu" is the erf form, which differs by up
     * to 1e-3 and would change every logit. */
    if (s == DL_OK && strcmp(act_name, "gelu_new") != 0 && strcmp(act_name, "gelu_pytorch_tanh") != 0)
        s = unsupported(path, "activation_function", act_name, "the MLP uses GELU's tanh form (gelu_new)");
    json_t *eps = json_object_get(root, "layer_norm_epsilon");
    if (s == DL_OK && eps && !(json_is_number(eps) && fabs(json_number_value(eps) - 1e-5) <= 1e-12)) {
        char v[32];
        snprintf(v, sizeof v, "%g", json_is_number(eps) ? json_number_value(eps) : NAN);
        s = unsupported(path, "layer_norm_epsilon", v, "LayerNorm uses epsilon 1e-5");
    }
    if (s == DL_OK && !bool_key(root, "tie_word_embeddings", 1))
        s = unsupported(path, "tie_word_embeddings", "false", "the LM head is tied to the token embedding");
    if (s == DL_OK && !bool_key(root, "scale_attn_weights", 1))
        s = unsupported(path, "scale_attn_weights", "false", "attention scores are scaled by 1/sqrt(head size)");
    if (s == DL_OK && bool_key(root, "scale_attn_by_inverse_layer_idx", 0))
        s = unsupported(path, "scale_attn_by_inverse_layer_idx", "true", "no per-layer attention scaling");
    if (s == DL_OK && bool_key(root, "add_cross_attention", 0))
        s = unsupported(path, "add_cross_attention", "true", "a decoder-only model has no cross-attention");
    if (s == DL_OK && shape->n_embd % shape->n_head != 0)
        s = DL_FAIL(DL_ERR_FORMAT, "%s: n_embd %d is not a multiple of n_head %d", path, shape->n_embd,
                    shape->n_head);
    shape->n_head_known = 1;
    json_decref(root);
    return s;
}

/* ---- names ----------------------------------------------------------------------------------------------------- */

static const struct {
    const char *dealer, *hf;
    int transposed;
} block_names[] = {
    {"ln1.weight", "ln_1.weight", 0},           {"ln1.bias", "ln_1.bias", 0},
    {"attn.qkv.weight", "attn.c_attn.weight", 1}, {"attn.qkv.bias", "attn.c_attn.bias", 0},
    {"attn.proj.weight", "attn.c_proj.weight", 1}, {"attn.proj.bias", "attn.c_proj.bias", 0},
    {"ln2.weight", "ln_2.weight", 0},           {"ln2.bias", "ln_2.bias", 0},
    {"mlp.fc.weight", "mlp.c_fc.weight", 1},    {"mlp.fc.bias", "mlp.c_fc.bias", 0},
    {"mlp.proj.weight", "mlp.c_proj.weight", 1}, {"mlp.proj.bias", "mlp.c_proj.bias", 0},
};

int dl_hf_gpt2_name(const char *name, int bare, char *hf, size_t cap, int *transposed) {
    if (!name || !hf || cap == 0)
        return 0;
    const char *prefix = bare ? "" : "transformer.";
    int t = 0, ok = 1;
    if (strcmp(name, "wte") == 0)
        snprintf(hf, cap, "%swte.weight", prefix);
    else if (strcmp(name, "wpe") == 0)
        snprintf(hf, cap, "%swpe.weight", prefix);
    else if (strcmp(name, "lnf.weight") == 0)
        snprintf(hf, cap, "%sln_f.weight", prefix);
    else if (strcmp(name, "lnf.bias") == 0)
        snprintf(hf, cap, "%sln_f.bias", prefix);
    else {
        int layer = -1, used = 0;
        ok = 0;
        if (sscanf(name, "h.%d.%n", &layer, &used) == 1 && used > 0 && layer >= 0)
            for (size_t i = 0; i < sizeof block_names / sizeof block_names[0]; i++)
                if (strcmp(name + used, block_names[i].dealer) == 0) {
                    snprintf(hf, cap, "%sh.%d.%s", prefix, layer, block_names[i].hf);
                    t = block_names[i].transposed;
                    ok = 1;
                }
    }
    if (ok && transposed)
        *transposed = t;
    return ok;
}

int dl_hf_gpt2_detect(const dl_st_file *file, const char **prefix) {
    const char *p = dl_st_find(file, "transformer.wte.weight") ? "transformer." : dl_st_find(file, "wte.weight") ? ""
                                                                                                                : NULL;
    if (prefix)
        *prefix = p;
    return p != NULL;
}

dl_status dl_hf_gpt2_infer_shape(const dl_st_file *file, dl_gpt2_shape *shape) {
    DL_REQUIRE(file && shape, DL_ERR_INVALID, "dl_hf_gpt2_infer_shape: NULL argument");
    memset(shape, 0, sizeof *shape);
    const char *prefix = NULL;
    DL_REQUIRE(dl_hf_gpt2_detect(file, &prefix), DL_ERR_FORMAT, "%s has no transformer.wte.weight (not a GPT-2 model)",
               dl_st_path(file));
    char name[DL_ST_NAME_MAX];
    snprintf(name, sizeof name, "%swte.weight", prefix);
    const dl_st_tensor *wte = dl_st_find(file, name);
    snprintf(name, sizeof name, "%swpe.weight", prefix);
    const dl_st_tensor *wpe = dl_st_find(file, name);
    DL_REQUIRE(wte->ndim == 2, DL_ERR_FORMAT, "%s: %swte.weight is not 2-D", dl_st_path(file), prefix);
    DL_REQUIRE(wpe && wpe->ndim == 2, DL_ERR_FORMAT, "%s: %swpe.weight is missing or not 2-D (GPT-2 has learned "
               "positions)", dl_st_path(file), prefix);
    shape->vocab_size = (int)wte->shape[0];
    shape->n_embd = (int)wte->shape[1];
    shape->n_positions = (int)wpe->shape[0];
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < dl_st_count(file); i++) {
        const char *n = dl_st_at(file, i)->name;
        int layer = -1;
        if (strncmp(n, prefix, plen) == 0 && sscanf(n + plen, "h.%d.", &layer) == 1 && layer + 1 > shape->n_layer)
            shape->n_layer = layer + 1;
    }
    DL_REQUIRE(shape->n_layer >= 1, DL_ERR_FORMAT, "%s holds no transformer blocks (%sh.0.*)", dl_st_path(file),
               prefix);
    return DL_OK;
}

/* ---- loading --------------------------------------------------------------------------------------------------- */

static int is_mask_buffer(const char *name) {
    size_t n = strlen(name);
    return (n >= 10 && strcmp(name + n - 10, ".attn.bias") == 0) ||
           (n >= 17 && strcmp(name + n - 17, ".attn.masked_bias") == 0);
}

/* Reads file tensor `src_name` into dst (dealer tensor t), transposing a Conv1D weight. */
static dl_status load_one(dl_st_file *file, const char *src_name, const dl_tensor *t, int transposed, float *dst) {
    const char *path = dl_st_path(file);
    const dl_st_tensor *st = dl_st_find(file, src_name);
    char want[96], have[96];
    dl_tensor_shape_str(t, want, sizeof want);
    if (transposed && t->ndim == 2)
        snprintf(want, sizeof want, "[%zu, %zu]", t->shape[1], t->shape[0]);
    if (!st) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s %s is missing (dealer's %s)", path, src_name, want,
                              t->name);
        dl_error_hint("the model in the file has fewer layers or another architecture than this config");
        return s;
    }
    int same = st->ndim == t->ndim;
    for (int k = 0; same && k < t->ndim; k++)
        same = st->shape[k] == (transposed ? t->shape[t->ndim - 1 - k] : t->shape[k]);
    if (!same) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: tensor %s is %s in the file, the model wants %s", path, src_name,
                              dl_st_shape_str(st, have, sizeof have), want);
        dl_error_hint("set the model section to the file's shape (dealer ckpt import prints it)");
        return s;
    }
    if (!transposed)
        return dl_st_read_f32(file, st, dst);
    float *tmp = malloc(t->numel * sizeof *tmp);
    DL_REQUIRE(tmp != NULL, DL_ERR_NOMEM, "cannot allocate %zu floats for %s", t->numel, src_name);
    dl_status s = dl_st_read_f32(file, st, tmp);
    size_t rows = st->shape[0], cols = st->shape[1]; /* [in, out] -> dealer [out, in] */
    for (size_t i = 0; s == DL_OK && i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            dst[j * rows + i] = tmp[i * cols + j];
    free(tmp);
    return s;
}

dl_status dl_hf_gpt2_load(dl_st_file *file, const dl_tensor_table *params, float *host) {
    DL_REQUIRE(file && params && host, DL_ERR_INVALID, "dl_hf_gpt2_load: NULL argument");
    const char *prefix = NULL, *path = dl_st_path(file);
    DL_REQUIRE(dl_hf_gpt2_detect(file, &prefix), DL_ERR_FORMAT, "%s has no transformer.wte.weight (not a GPT-2 model)",
               path);
    int bare = prefix[0] == '\0';
    size_t n = dl_st_count(file);
    char *used = calloc(n ? n : 1, 1);
    DL_REQUIRE(used != NULL, DL_ERR_NOMEM, "cannot allocate the listing of %s", path);
    dl_status s = DL_OK;
    for (size_t i = 0; s == DL_OK && i < params->count; i++) {
        const dl_tensor *t = dl_tensor_table_at(params, i);
        char hf[DL_ST_NAME_MAX];
        int transposed = 0;
        if (!dl_hf_gpt2_name(t->name, bare, hf, sizeof hf, &transposed)) {
            s = DL_FAIL(DL_ERR_INVALID, "parameter %s has no GPT-2 name (not a gpt model)", t->name);
            break;
        }
        s = load_one(file, hf, t, transposed, host + t->offset);
        const dl_st_tensor *st = dl_st_find(file, hf);
        if (st)
            used[st - dl_st_at(file, 0)] = 1;
    }
    const dl_tensor *wte = dl_tensor_table_find(params, "wte");
    for (size_t i = 0; s == DL_OK && i < n; i++) {
        const dl_st_tensor *st = dl_st_at(file, i);
        if (used[i] || is_mask_buffer(st->name))
            continue;
        if (strcmp(st->name, "lm_head.weight") == 0 && wte) {
            /* GPT2LMHeadModel may save its tied head; it must be the token embedding itself. */
            int same = st->ndim == 2 && st->shape[0] == wte->shape[0] && st->shape[1] == wte->shape[1];
            float *head = same ? malloc(wte->numel * sizeof *head) : NULL;
            if (same && !head) {
                s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate lm_head.weight");
                break;
            }
            if (same)
                s = dl_st_read_f32(file, st, head);
            if (s == DL_OK && (!same || memcmp(head, host + wte->offset, wte->numel * sizeof *head) != 0)) {
                s = DL_FAIL(DL_ERR_UNSUPPORTED, "%s: lm_head.weight differs from %swte.weight (an untied LM head)",
                            path, prefix);
                dl_error_hint("dealer's gpt ties the LM head to the token embedding; this model cannot be imported");
            }
            free(head);
            continue;
        }
        s = DL_FAIL(DL_ERR_CONFIG, "%s: tensor %s is not part of the configured GPT-2 model", path, st->name);
        dl_error_hint("a layer beyond model.n_layer, or another architecture: set the model section to the file's "
                      "shape (dealer ckpt import prints it)");
    }
    free(used);
    return s;
}

dl_status dl_st_load_dealer_names(dl_st_file *file, const dl_tensor_table *params, float *host) {
    DL_REQUIRE(file && params && host, DL_ERR_INVALID, "dl_st_load_dealer_names: NULL argument");
    dl_status s = DL_OK;
    for (size_t i = 0; s == DL_OK && i < params->count; i++) {
        const dl_tensor *t = dl_tensor_table_at(params, i);
        s = load_one(file, t->name, t, 0, host + t->offset);
    }
    for (size_t i = 0; s == DL_OK && i < dl_st_count(file); i++)
        if (!dl_tensor_table_find(params, dl_st_at(file, i)->name)) {
            s = DL_FAIL(DL_ERR_CONFIG, "%s: tensor %s is not a parameter of the configured model", dl_st_path(file),
                        dl_st_at(file, i)->name);
            dl_error_hint("set the model section to the file's shape (its __metadata__ dealer_config holds it)");
        }
    return s;
}
