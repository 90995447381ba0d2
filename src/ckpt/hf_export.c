/* hf_export.c — a dealer checkpoint written out for the Hugging Face tools, in the safetensors layout of
 * ckpt/safetensors.c: its /model tensors as one safetensors file under their dealer names (`dealer ckpt export
 * --format safetensors`, dl_ckpt_export_safetensors in checkpoint.h), or a gpt checkpoint as a GPT-2 model directory
 * (`--format hf`). The second reads the checkpoint's shape through weights.h and maps names through hf_gpt2.h, so it
 * sits above both. Both stream the tensors one at a time, each CRC checked before it is written. */
#include "ckpt/hf_export.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/checkpoint.h"
#include "ckpt/ckpt_internal.h"
#include "ckpt/hf_gpt2.h"
#include "ckpt/safetensors.h"
#include "ckpt/weights.h"
#include "core/fs.h"

/* ---- dealer names: one safetensors file ------------------------------------------------------------------------ */

/* A dataset read whole with its CRC checked (a mismatch is a failure naming it). */
static dl_status read_tensor_verified(dl_ckpt_file *f, const dl_ckpt_dataset *d, void **out) {
    size_t bytes = d->numel * dl_ckpt_dtype_size(d->dtype);
    *out = malloc(bytes ? bytes : 1);
    DL_REQUIRE(*out != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes for %s", bytes, d->name);
    dl_status s = dl_ckpt_read_checked(f, d->name, d->dtype, d->ndim, d->shape, *out);
    if (s != DL_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}

dl_status dl_ckpt_export_safetensors(const char *path, const char *out, size_t *tensors, uint64_t *data_bytes) {
    DL_REQUIRE(path && out, DL_ERR_INVALID, "dl_ckpt_export_safetensors: NULL argument");
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    DL_CHECK(dl_ckpt_read_meta(path, &meta));
    dl_ckpt_file *f = NULL;
    dl_status s = dl_ckpt_open(&f, path);
    size_t count = 0, n = s == DL_OK ? dl_ckpt_count(f) : 0;
    dl_st_entry *entries = calloc(n ? n : 1, sizeof *entries);
    if (s == DL_OK && !entries)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the safetensors header");
    for (size_t i = 0; s == DL_OK && i < n; i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        if (strncmp(d->name, "/model/", 7) != 0)
            continue;
        if (d->dtype != DL_CKPT_F32) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is %s, not float32", path, d->name,
                        dl_ckpt_dtype_name(d->dtype));
            break;
        }
        entries[count].name = d->name + 7;
        entries[count].ndim = d->ndim;
        for (int k = 0; k < d->ndim; k++)
            entries[count].shape[k] = d->shape[k];
        count++;
    }
    if (s == DL_OK && count == 0)
        s = DL_FAIL(DL_ERR_FORMAT, "%s holds no /model tensors", path);
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)meta.step);
    const char *keys[] = {"format", "dealer_model_kind", "dealer_step", "dealer_config"};
    const char *values[] = {"pt", meta.model_kind, step, meta.config_yaml ? meta.config_yaml : ""};
    dl_st_writer w;
    memset(&w, 0, sizeof w);
    if (s == DL_OK)
        s = dl_st_write_begin(&w, out, entries, count, keys, values, 4);
    for (size_t i = 0; s == DL_OK && i < n; i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        if (strncmp(d->name, "/model/", 7) != 0)
            continue;
        void *data = NULL;
        s = read_tensor_verified(f, d, &data);
        if (s == DL_OK)
            s = dl_st_write_tensor(&w, data, d->numel);
        free(data);
    }
    if (s == DL_OK)
        s = dl_st_write_commit(&w);
    else
        dl_st_write_abort(&w);
    if (s == DL_OK && tensors)
        *tensors = count;
    if (s == DL_OK && data_bytes)
        *data_bytes = w.data_bytes;
    free(entries);
    dl_ckpt_close(f);
    free(meta.config_yaml);
    return s;
}

/* ---- Hugging Face GPT-2 names: a model directory --------------------------------------------------------------- */

/* The id of <|endoftext|> in a tokenizer.json's added tokens or vocabulary, -1 when it has none. */
static long endoftext_id(json_t *tok) {
    json_t *added = json_object_get(tok, "added_tokens"), *item;
    size_t i;
    json_array_foreach(added, i, item) {
        json_t *content = json_object_get(item, "content"), *id = json_object_get(item, "id");
        if (json_is_string(content) && strcmp(json_string_value(content), "<|endoftext|>") == 0 && json_is_integer(id))
            return (long)json_integer_value(id);
    }
    json_t *id = json_object_get(json_object_get(json_object_get(tok, "model"), "vocab"), "<|endoftext|>");
    return json_is_integer(id) ? (long)json_integer_value(id) : -1;
}

static dl_status write_config_json(const char *path, const dl_gpt2_shape *shape, long eos) {
    json_t *c = json_object();
    DL_REQUIRE(c != NULL, DL_ERR_NOMEM, "cannot build %s", path);
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("GPT2LMHeadModel"));
    json_object_set_new(c, "architectures", arch);
    json_object_set_new(c, "model_type", json_string("gpt2"));
    json_object_set_new(c, "vocab_size", json_integer(shape->vocab_size));
    json_object_set_new(c, "n_positions", json_integer(shape->n_positions));
    json_object_set_new(c, "n_ctx", json_integer(shape->n_positions));
    json_object_set_new(c, "n_embd", json_integer(shape->n_embd));
    json_object_set_new(c, "n_layer", json_integer(shape->n_layer));
    json_object_set_new(c, "n_head", json_integer(shape->n_head));
    json_object_set_new(c, "n_inner", json_null());
    json_object_set_new(c, "activation_function", json_string("gelu_new"));
    json_object_set_new(c, "layer_norm_epsilon", json_real(1e-5));
    /* dealer trains without dropout; saying so keeps a fine-tune in transformers on the same model. */
    json_object_set_new(c, "resid_pdrop", json_real(0.0));
    json_object_set_new(c, "embd_pdrop", json_real(0.0));
    json_object_set_new(c, "attn_pdrop", json_real(0.0));
    json_object_set_new(c, "initializer_range", json_real(0.02));
    json_object_set_new(c, "scale_attn_weights", json_true());
    json_object_set_new(c, "scale_attn_by_inverse_layer_idx", json_false());
    json_object_set_new(c, "reorder_and_upcast_attn", json_false());
    json_object_set_new(c, "tie_word_embeddings", json_true());
    json_object_set_new(c, "use_cache", json_true());
    json_object_set_new(c, "torch_dtype", json_string("float32"));
    if (eos >= 0) {
        json_object_set_new(c, "bos_token_id", json_integer(eos));
        json_object_set_new(c, "eos_token_id", json_integer(eos));
    }
    char *text = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(c);
    DL_REQUIRE(text != NULL, DL_ERR_NOMEM, "cannot serialise %s", path);
    size_t len = strlen(text);
    text[len] = '\0';
    char *with_newline = malloc(len + 2);
    dl_status s = with_newline ? DL_OK : DL_FAIL(DL_ERR_NOMEM, "cannot serialise %s", path);
    if (s == DL_OK) {
        memcpy(with_newline, text, len);
        with_newline[len] = '\n';
        s = dl_write_file_atomic(path, with_newline, len + 1);
    }
    free(with_newline);
    free(text);
    return s;
}

dl_status dl_hf_gpt2_export(const char *ckpt_path, const char *out_dir, const char *tokenizer_json, size_t *tensors) {
    DL_REQUIRE(ckpt_path && out_dir, DL_ERR_INVALID, "dl_hf_gpt2_export: NULL argument");
    dl_weights_source src;
    memset(&src, 0, sizeof src);
    src.kind = DL_WEIGHTS_DEALER;
    snprintf(src.path, sizeof src.path, "%s", ckpt_path);
    dl_gpt2_shape shape;
    DL_CHECK(dl_weights_shape(&src, &shape));
    if (shape.rope) {
        dl_status s = DL_FAIL(DL_ERR_UNSUPPORTED, "%s uses rotary positions (model.positions: rope), which GPT-2 "
                              "does not have", ckpt_path);
        dl_error_hint("export it with --format safetensors (dealer names) instead");
        return s;
    }
    /* The tokenizer first: a bad one must not leave a half-written directory behind. */
    uint8_t *tok_bytes = NULL;
    size_t tok_len = 0;
    long eos = -1;
    if (tokenizer_json) {
        DL_CHECK_CTX(dl_read_file(tokenizer_json, &tok_bytes, &tok_len), "the run's tokenizer");
        json_error_t err;
        json_t *tok = json_loadb((const char *)tok_bytes, tok_len, 0, &err);
        if (!tok) {
            free(tok_bytes);
            return DL_FAIL(DL_ERR_FORMAT, "%s:%d: not valid JSON (%s)", tokenizer_json, err.line, err.text);
        }
        eos = endoftext_id(tok);
        json_decref(tok);
        if (eos >= shape.vocab_size)
            eos = -1;
    }
    dl_status s = dl_make_dirs(out_dir);
    dl_ckpt_file *f = NULL;
    if (s == DL_OK)
        s = dl_ckpt_open(&f, ckpt_path);
    size_t n = s == DL_OK ? dl_ckpt_count(f) : 0, count = 0;
    dl_st_entry *entries = calloc(n ? n : 1, sizeof *entries);
    char (*names)[DL_ST_NAME_MAX] = calloc(n ? n : 1, sizeof *names);
    int *transposed = calloc(n ? n : 1, sizeof *transposed);
    const dl_ckpt_dataset **sets = calloc(n ? n : 1, sizeof *sets);
    if (s == DL_OK && (!entries || !names || !transposed || !sets))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the export of %s", ckpt_path);
    for (size_t i = 0; s == DL_OK && i < n; i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        if (strncmp(d->name, "/model/", 7) != 0)
            continue;
        if (!dl_hf_gpt2_name(d->name + 7, 0, names[count], sizeof names[count], &transposed[count]) ||
            d->dtype != DL_CKPT_F32) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: %s is not a float32 gpt parameter", ckpt_path, d->name);
            break;
        }
        sets[count] = d;
        entries[count].name = names[count];
        entries[count].ndim = d->ndim;
        for (int k = 0; k < d->ndim; k++)
            entries[count].shape[k] = transposed[count] ? d->shape[d->ndim - 1 - k] : d->shape[k];
        count++;
    }
    char path[DL_WEIGHTS_PATH_MAX];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    const char *keys[] = {"format"}, *values[] = {"pt"};
    dl_st_writer w;
    memset(&w, 0, sizeof w);
    if (s == DL_OK)
        s = dl_st_write_begin(&w, path, entries, count, keys, values, 1);
    for (size_t i = 0; s == DL_OK && i < count; i++) {
        const dl_ckpt_dataset *d = sets[i];
        float *data = malloc(d->numel * sizeof *data), *out = transposed[i] ? malloc(d->numel * sizeof *out) : data;
        int crc_ok = 0;
        if (!data || !out)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu floats for %s", d->numel, d->name);
        if (s == DL_OK)
            s = dl_ckpt_read(f, d, data, &crc_ok);
        if (s == DL_OK && crc_ok != 1) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s %s", ckpt_path, d->name,
                        crc_ok == 0 ? "fails its CRC check" : "has no CRC");
            dl_error_hint("the file is damaged; export an intact copy");
        }
        if (s == DL_OK && transposed[i]) {
            size_t rows = d->shape[0], cols = d->shape[1]; /* dealer [out, in] -> Conv1D [in, out] */
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++)
                    out[c * rows + r] = data[r * cols + c];
        }
        if (s == DL_OK)
            s = dl_st_write_tensor(&w, out, d->numel);
        if (out != data)
            free(out);
        free(data);
    }
    if (s == DL_OK)
        s = dl_st_write_commit(&w);
    else
        dl_st_write_abort(&w);
    if (s == DL_OK) {
        snprintf(path, sizeof path, "%s/config.json", out_dir);
        s = write_config_json(path, &shape, eos);
    }
    if (s == DL_OK && tok_bytes) {
        snprintf(path, sizeof path, "%s/tokenizer.json", out_dir);
        s = dl_write_file_atomic(path, tok_bytes, tok_len);
    }
    if (s == DL_OK && tensors)
        *tensors = count;
    free(tok_bytes);
    free(entries);
    free(names);
    free(transposed);
    free(sets);
    dl_ckpt_close(f);
    return s;
}
