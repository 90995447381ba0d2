/* config_load.c — resolving a config: defaults, then a YAML file, then command-line overrides, then the checks that
 * involve several keys.
 *
 * Every value, whatever its origin (a default in the schema table, a YAML scalar or list, an override), goes
 * through one function, dl_cfg_assign, which checks it against the key's type and range and stores it at the key's
 * offset in dl_config. So a default, a file value and an override are held to exactly the same rules, and the
 * error for each names where the value came from. The first error stops loading: a config is either fully valid
 * or not loaded at all (the half-built struct is freed), so callers never see a partly applied file.
 *
 * Each key also records its source (default, file:line, override) in the private origin block, which
 * `dealer config show` prints next to the value. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/hash.h"

enum { MAX_CONFIG_BYTES = 16 << 20 };

/* ---- defaults, free ---------------------------------------------------------------------------------------------- */

void dl_config_free(dl_config *cfg) {
    if (!cfg)
        return;
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        const dl_cfg_key *key = &dl_cfg_keys[i];
        if (key->type == DL_CFG_STRING)
            free(*(char **)dl_cfg_field(cfg, key->offset));
        else if (key->type == DL_CFG_RESUME)
            free(*(char **)dl_cfg_field(cfg, key->offset2));
        else if (key->type == DL_CFG_LIST)
            dl_cfg_free_list(dl_cfg_field(cfg, key->offset));
    }
    if (cfg->origin) {
        free(cfg->origin->file);
        for (int i = 0; i < cfg->origin->n_overrides; i++)
            free(cfg->origin->overrides[i]);
        free(cfg->origin->overrides);
        free(cfg->origin->sources);
        free(cfg->origin);
    }
    memset(cfg, 0, sizeof *cfg);
}

dl_status dl_config_defaults(dl_config *cfg) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_defaults: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    cfg->origin = calloc(1, sizeof *cfg->origin);
    if (cfg->origin)
        cfg->origin->sources = calloc((size_t)dl_cfg_num_keys, sizeof *cfg->origin->sources);
    if (!cfg->origin || !cfg->origin->sources) {
        dl_config_free(cfg);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory for a config");
    }
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        const char *def = dl_cfg_keys[i].def;
        dl_cfg_raw raw = {.kind = def[0] ? DL_RAW_SCALAR : DL_RAW_NULL, .text = def, .len = strlen(def)};
        dl_cfg_source source = {DL_SRC_DEFAULT, 0, 0};
        dl_status s = dl_cfg_assign(cfg, i, &raw, "default", source);
        if (s != DL_OK) {
            dl_config_free(cfg);
            return s;
        }
    }
    return DL_OK;
}

/* ---- overrides --------------------------------------------------------------------------------------------------- */

static dl_status apply_override(dl_config *cfg, int number) {
    const char *text = cfg->origin->overrides[number];
    char shown[128], where[160];
    dl_cfg_printable(text, strlen(text), shown, sizeof shown);
    snprintf(where, sizeof where, "override '%s'", shown);

    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return DL_FAIL(DL_ERR_CONFIG, "%s: expected section.key=value (e.g. optim.lr=3e-4)", where);
    char name[128];
    size_t name_len = (size_t)(eq - text);
    if (name_len >= sizeof name)
        name_len = sizeof name - 1;
    memcpy(name, text, name_len);
    name[name_len] = '\0';
    char shown_name[128], suggestion[160];

    int index;
    char *dot = strchr(name, '.');
    if (!dot) {
        index = dl_cfg_find("", name);
        if (index < 0) {
            dl_cfg_printable(name, strlen(name), shown_name, sizeof shown_name);
            if (dl_cfg_find_section(name) >= 0)
                return DL_FAIL(DL_ERR_CONFIG, "%s: '%s' is a section; name one of its keys (%s.KEY=VALUE)", where,
                               shown_name, shown_name);
            dl_cfg_suggest_section(name, suggestion, sizeof suggestion);
            dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: unknown key '%s'%s", where, shown_name, suggestion);
            if (!suggestion[0])
                dl_error_hint("'dealer config keys' lists every key");
            return s;
        }
    } else {
        *dot = '\0';
        const char *key_name = dot + 1;
        if (dl_cfg_find_section(name) < 0) {
            dl_cfg_printable(name, strlen(name), shown_name, sizeof shown_name);
            dl_cfg_suggest_section(name, suggestion, sizeof suggestion);
            dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: unknown section '%s'%s", where, shown_name, suggestion);
            if (!suggestion[0])
                dl_error_hint("'dealer config keys' lists every key");
            return s;
        }
        index = dl_cfg_find(name, key_name);
        if (index < 0) {
            dl_cfg_printable(key_name, strlen(key_name), shown_name, sizeof shown_name);
            dl_cfg_suggest_key(name, key_name, suggestion, sizeof suggestion);
            dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: unknown key '%s' in section %s%s", where, shown_name, name,
                                  suggestion);
            if (!suggestion[0])
                dl_error_hint("'dealer config keys' lists every key");
            return s;
        }
    }
    dl_cfg_raw raw;
    DL_CHECK(dl_cfg_parse_override_value(eq + 1, &raw, where));
    dl_cfg_source source = {DL_SRC_OVERRIDE, 0, number};
    dl_status s = dl_cfg_assign(cfg, index, &raw, where, source);
    dl_cfg_raw_free(&raw);
    return s;
}

/* ---- checks across keys ------------------------------------------------------------------------------------------ */

static int source_rank(const dl_config *cfg, int index) {
    const dl_cfg_source *s = &cfg->origin->sources[index];
    return s->kind == DL_SRC_OVERRIDE ? 1000000 + s->override : s->kind == DL_SRC_FILE ? s->line : 0;
}

/* The place to blame for a conflict between keys (space-separated dotted names): the one set last, since an
 * override beats the file and a later line an earlier one. */
static void blame(const dl_config *cfg, const char *keys, char *buf, size_t cap) {
    int pick = -1;
    char name[64];
    for (const char *p = keys; *p;) {
        size_t n = strcspn(p, " ");
        if (n < sizeof name) {
            memcpy(name, p, n);
            name[n] = '\0';
            int index = dl_cfg_find_dotted(name);
            if (index >= 0 && (pick < 0 || source_rank(cfg, index) > source_rank(cfg, pick)))
                pick = index;
        }
        p += n;
        p += *p == ' ';
    }
    if (pick < 0 || cfg->origin->sources[pick].kind == DL_SRC_DEFAULT)
        snprintf(buf, cap, "%s", cfg->origin->file ? cfg->origin->file : "config");
    else
        dl_cfg_format_source(cfg, pick, buf, cap);
}

#define CROSS_FAIL(keys, ...)                                            \
    do {                                                                 \
        char where_[256];                                                \
        blame(cfg, (keys), where_, sizeof where_);                       \
        char what_[512];                                                 \
        snprintf(what_, sizeof what_, __VA_ARGS__);                      \
        return DL_FAIL(DL_ERR_CONFIG, "%s: %s", where_, what_);          \
    } while (0)

static dl_status check_cross(const dl_config *cfg) {
    const char *kind = dl_config_enum_text("model.kind", cfg->model.kind);
    int is_gpt = cfg->model.kind == DL_MODEL_GPT || cfg->model.kind == DL_MODEL_DPO;
    if (is_gpt) {
        if (cfg->model.n_embd % cfg->model.n_head != 0)
            CROSS_FAIL("model.n_embd model.n_head", "model.n_embd (%d) must be a multiple of model.n_head (%d)",
                       cfg->model.n_embd, cfg->model.n_head);
        if (cfg->model.positions == DL_POSITIONS_ROPE && (cfg->model.n_embd / cfg->model.n_head) % 2 != 0)
            CROSS_FAIL("model.positions model.n_embd model.n_head",
                       "model.positions rope needs an even head size (model.n_embd / model.n_head = %d)",
                       cfg->model.n_embd / cfg->model.n_head);
        if (cfg->data.seq_len > cfg->model.max_seq_len)
            CROSS_FAIL("data.seq_len model.max_seq_len",
                       "data.seq_len (%d) must be <= model.max_seq_len (%d)", cfg->data.seq_len,
                       cfg->model.max_seq_len);
        /* A rank indexes the tokens of a micro-batch with int, and sizes activations as tokens × width: refuse
         * shapes whose products leave those ranges instead of running with wrapped (negative) sizes. 2^44 floats
         * (64 TiB) per activation is beyond any machine and keeps every byte count below 2^64. */
        double tokens = (double)cfg->train.batch_per_rank * (double)cfg->data.seq_len;
        if (tokens > (double)INT_MAX)
            CROSS_FAIL("train.batch_per_rank data.seq_len",
                       "train.batch_per_rank (%d) x data.seq_len (%d) = %.0f tokens per micro-batch is more than a "
                       "rank can index (%d)", cfg->train.batch_per_rank, cfg->data.seq_len, tokens, INT_MAX);
        if (tokens * (double)cfg->model.n_embd > 17592186044416.0)
            CROSS_FAIL("train.batch_per_rank data.seq_len model.n_embd",
                       "train.batch_per_rank (%d) x data.seq_len (%d) x model.n_embd (%d) = %.3g floats per "
                       "activation is more than any rank can hold (2^44)", cfg->train.batch_per_rank,
                       cfg->data.seq_len, cfg->model.n_embd, tokens * (double)cfg->model.n_embd);
    }
    if (!is_gpt && cfg->model.precision != DL_PRECISION_FP32)
        CROSS_FAIL("model.precision model.kind",
                   "model.precision %s applies to gpt and dpo only; model.kind %s trains in fp32 (remove the key)",
                   dl_config_enum_text("model.precision", cfg->model.precision), kind);
    if (!is_gpt && strcmp(cfg->data.tokenizer, "bytes") != 0)
        CROSS_FAIL("model.kind data.tokenizer", "data.tokenizer applies to gpt and dpo models, not %s", kind);
    if (!cfg->data.tokenizer[0])
        CROSS_FAIL("data.tokenizer", "data.tokenizer is empty (bytes, or the path of a tokenizer.json)");
    if (cfg->model.kind == DL_MODEL_DPO && !cfg->model.init_from[0])
        CROSS_FAIL("model.kind model.init_from",
                   "model.kind dpo needs model.init_from (the gpt checkpoint to tune)");
    if (!is_gpt && cfg->model.init_from[0])
        CROSS_FAIL("model.kind model.init_from",
                   "model.init_from applies to model.kind gpt and dpo, not %s (to continue an %s run, use train.resume)",
                   kind, kind);
    if (cfg->dpo.label_smoothing > 0 && cfg->dpo.loss != DL_DPO_LOSS_SIGMOID) {
        char ls[32];
        dl_cfg_format_double(cfg->dpo.label_smoothing, ls, sizeof ls);
        CROSS_FAIL("dpo.label_smoothing dpo.loss", "dpo.label_smoothing (%s) applies only to dpo.loss sigmoid, not %s",
                   ls, dl_config_enum_text("dpo.loss", cfg->dpo.loss));
    }
    if (cfg->dpo.reference == DL_DPO_REF_PRECOMPUTED && !cfg->dpo.reference_file[0])
        CROSS_FAIL("dpo.reference dpo.reference_file",
                   "dpo.reference precomputed needs dpo.reference_file (made by dealer dpo precompute-ref)");
    if (cfg->comm.embeddings != DL_EMBEDDINGS_REPLICATED && cfg->model.kind != DL_MODEL_FM &&
        cfg->model.kind != DL_MODEL_FFM)
        CROSS_FAIL("comm.embeddings model.kind", "comm.embeddings %s applies to model.kind fm or ffm, not %s",
                   dl_config_enum_text("comm.embeddings", (int)cfg->comm.embeddings), kind);
    if (cfg->ckpt.keep_every > 0 && cfg->ckpt.every > 0 && cfg->ckpt.keep_every % cfg->ckpt.every != 0)
        CROSS_FAIL("ckpt.keep_every ckpt.every", "ckpt.keep_every (%d) must be a multiple of ckpt.every (%d)",
                   cfg->ckpt.keep_every, cfg->ckpt.every);
    if (cfg->data.format != DL_FORMAT_AUTO) {
        dl_data_format want = cfg->model.kind == DL_MODEL_GPT   ? DL_FORMAT_TOKENS
                              : cfg->model.kind == DL_MODEL_DPO ? DL_FORMAT_PAIRS
                                                                : DL_FORMAT_CLICKS;
        if (cfg->data.format != want)
            CROSS_FAIL("data.format model.kind", "data.format %s does not fit model.kind %s (it reads %s)",
                       dl_config_enum_text("data.format", cfg->data.format), kind,
                       dl_config_enum_text("data.format", want));
    }
    if (cfg->train.early_stop && cfg->data.valid.count == 0)
        CROSS_FAIL("train.early_stop data.valid", "train.early_stop needs validation data (data.valid)");
    return DL_OK;
}

/* A key that model.kind does not read, set to anything but its default, would be ignored without a word: refuse it.
 * A value equal to the default is let through, so that a resolved config (config.yaml of a run, which lists every
 * key) loads again as it was written. */
static dl_status check_kind_keys(const dl_config *cfg) {
    dl_config defaults;
    DL_CHECK(dl_config_defaults(&defaults));
    dl_status s = DL_OK;
    unsigned kind_bit = 1u << cfg->model.kind;
    for (int i = 0; i < dl_cfg_num_keys && s == DL_OK; i++) {
        unsigned kinds = dl_cfg_key_kinds(i);
        if ((kinds & kind_bit) || cfg->origin->sources[i].kind == DL_SRC_DEFAULT)
            continue;
        dl_cfg_buf mine = {0}, def = {0};
        dl_cfg_format_value(cfg, i, &mine);
        dl_cfg_format_value(&defaults, i, &def);
        if (mine.failed || def.failed) {
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory checking config keys");
        } else if (strcmp(mine.data ? mine.data : "", def.data ? def.data : "") != 0) {
            char where[256], name[96], readers[64];
            dl_cfg_format_source(cfg, i, where, sizeof where);
            dl_cfg_key_name(&dl_cfg_keys[i], name, sizeof name);
            dl_cfg_kinds_text(kinds, readers, sizeof readers);
            s = DL_FAIL(DL_ERR_CONFIG, "%s: %s is not read by model.kind %s (only by %s), so it would be ignored",
                        where, name, dl_config_enum_text("model.kind", cfg->model.kind), readers);
            dl_error_hint("remove it, or set model.kind; 'dealer config keys' shows which kinds read each key");
        }
        free(mine.data);
        free(def.data);
    }
    dl_config_free(&defaults);
    return s;
}

/* ---- loading ----------------------------------------------------------------------------------------------------- */

static dl_status load_text(dl_config *cfg, const char *text, size_t len, const char *name, int n_overrides,
                           char **overrides, int check_kinds) {
    DL_CHECK(dl_config_defaults(cfg));
    dl_status s = DL_OK;
    if (name) {
        cfg->origin->file = dl_cfg_strndup(name, strlen(name));
        if (!cfg->origin->file)
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory for a config");
    }
    if (s == DL_OK && text)
        s = dl_cfg_parse_yaml(cfg, text, len, name);
    if (s == DL_OK && n_overrides > 0) {
        cfg->origin->overrides = calloc((size_t)n_overrides, sizeof *cfg->origin->overrides);
        if (!cfg->origin->overrides)
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory for overrides");
        for (int i = 0; s == DL_OK && i < n_overrides; i++) {
            if (!overrides[i]) {
                s = DL_FAIL(DL_ERR_INVALID, "override %d is NULL", i);
                break;
            }
            cfg->origin->overrides[i] = dl_cfg_strndup(overrides[i], strlen(overrides[i]));
            if (!cfg->origin->overrides[i]) {
                s = DL_FAIL(DL_ERR_NOMEM, "out of memory for overrides");
                break;
            }
            cfg->origin->n_overrides = i + 1;
            s = apply_override(cfg, i);
        }
    }
    if (s == DL_OK)
        s = check_cross(cfg);
    if (s == DL_OK && check_kinds)
        s = check_kind_keys(cfg);
    if (s != DL_OK)
        dl_config_free(cfg);
    return s;
}

dl_status dl_config_load_string(dl_config *cfg, const char *text, size_t len, const char *name) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_load_string: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    DL_REQUIRE(text || len == 0, DL_ERR_INVALID, "dl_config_load_string: text is NULL");
    return load_text(cfg, text ? text : "", len, name ? name : "<string>", 0, NULL, 0);
}

dl_status dl_config_load(dl_config *cfg, const char *path, int n_overrides, char **overrides) {
    DL_REQUIRE(cfg, DL_ERR_INVALID, "dl_config_load: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    DL_REQUIRE(n_overrides >= 0 && (n_overrides == 0 || overrides), DL_ERR_INVALID,
               "dl_config_load: %d overrides but no array", n_overrides);
    if (!path)
        return load_text(cfg, NULL, 0, NULL, n_overrides, overrides, 1);

    FILE *f = fopen(path, "rb");
    if (!f)
        return DL_FAIL(DL_ERR_CONFIG, "%s: cannot open config: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    dl_status s = DL_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_CONFIG_BYTES) {
                s = DL_FAIL(DL_ERR_CONFIG, "%s: config file is larger than %d MiB", path, MAX_CONFIG_BYTES >> 20);
                break;
            }
            cap = cap ? 2 * cap : 4096;
            char *grown = realloc(text, cap);
            if (!grown) {
                s = DL_FAIL(DL_ERR_NOMEM, "%s: out of memory reading config", path);
                break;
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                s = DL_FAIL(DL_ERR_CONFIG, "%s: cannot read config: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (s == DL_OK)
        s = load_text(cfg, text, len, path, n_overrides, overrides, 1);
    free(text);
    return s;
}

/* ---- queries ----------------------------------------------------------------------------------------------------- */

bool dl_config_equal(const dl_config *a, const dl_config *b) {
    if (!a || !b)
        return false;
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        const dl_cfg_key *key = &dl_cfg_keys[i];
        const void *pa = dl_cfg_cfield(a, key->offset), *pb = dl_cfg_cfield(b, key->offset);
        switch (key->type) {
        case DL_CFG_INT:
        case DL_CFG_ENUM:
            if (*(const int *)pa != *(const int *)pb)
                return false;
            break;
        case DL_CFG_I64:
            if (*(const int64_t *)pa != *(const int64_t *)pb)
                return false;
            break;
        case DL_CFG_FLOAT:
            if (*(const double *)pa != *(const double *)pb)
                return false;
            break;
        case DL_CFG_BOOL:
            if (*(const bool *)pa != *(const bool *)pb)
                return false;
            break;
        case DL_CFG_STRING:
            if (strcmp(*(char *const *)pa, *(char *const *)pb) != 0)
                return false;
            break;
        case DL_CFG_LIST: {
            const dl_str_list *la = pa, *lb = pb;
            if (la->count != lb->count)
                return false;
            for (int j = 0; j < la->count; j++)
                if (strcmp(la->items[j], lb->items[j]) != 0)
                    return false;
            break;
        }
        case DL_CFG_GRAD_CKPT:
            if (*(const int *)pa != *(const int *)pb ||
                *(const int *)dl_cfg_cfield(a, key->offset2) != *(const int *)dl_cfg_cfield(b, key->offset2))
                return false;
            break;
        case DL_CFG_RESUME:
            if (*(const int *)pa != *(const int *)pb ||
                strcmp(*(char *const *)dl_cfg_cfield(a, key->offset2), *(char *const *)dl_cfg_cfield(b, key->offset2)) != 0)
                return false;
            break;
        }
    }
    return true;
}

/* Appends "; " between entries, and "..." once the text no longer fits. */
static void diff_add(char *buf, size_t cap, size_t *used, const char *entry) {
    if (*used >= cap)
        return;
    int n = snprintf(buf + *used, cap - *used, "%s%s", *used ? "; " : "", entry);
    if (n < 0 || (size_t)n >= cap - *used) {
        if (cap >= 4)
            memcpy(buf + cap - 4, "...", 4);
        *used = cap;
        return;
    }
    *used += (size_t)n;
}

int dl_config_diff(const dl_config *a, const dl_config *b, const char *a_name, const char *b_name, char *buf,
                   size_t cap) {
    if (buf && cap)
        buf[0] = '\0';
    if (!a || !b || !a->origin || !b->origin)
        return -1;
    int count = 0;
    size_t used = 0;
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        if (dl_cfg_key_rank_local(i))
            continue;
        dl_cfg_buf va = {0}, vb = {0};
        dl_cfg_format_value(a, i, &va);
        dl_cfg_format_value(b, i, &vb);
        if (va.failed || vb.failed) {
            free(va.data);
            free(vb.data);
            return -1;
        }
        if (strcmp(va.data ? va.data : "", vb.data ? vb.data : "") != 0) {
            count++;
            if (buf && cap) {
                char name[96], entry[512];
                dl_cfg_key_name(&dl_cfg_keys[i], name, sizeof name);
                snprintf(entry, sizeof entry, "%s = %.200s (%s) vs %.200s (%s)", name, va.data ? va.data : "",
                         a_name ? a_name : "a", vb.data ? vb.data : "", b_name ? b_name : "b");
                diff_add(buf, cap, &used, entry);
            }
        }
        free(va.data);
        free(vb.data);
    }
    return count;
}

dl_status dl_config_rank_hash(const dl_config *cfg, uint64_t *hash) {
    DL_REQUIRE(cfg && cfg->origin && hash, DL_ERR_INVALID, "dl_config_rank_hash: bad arguments");
    dl_cfg_buf b = {0};
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        if (dl_cfg_key_rank_local(i))
            continue;
        char name[96];
        dl_cfg_key_name(&dl_cfg_keys[i], name, sizeof name);
        dl_cfg_buf_printf(&b, "%s=", name);
        dl_cfg_format_value(cfg, i, &b);
        dl_cfg_buf_add(&b, "\n", 1);
    }
    if (b.failed) {
        free(b.data);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory hashing a config");
    }
    *hash = dl_hash_bytes(b.data ? b.data : "", b.len, 0x6465616c6572ULL);
    free(b.data);
    return DL_OK;
}

dl_status dl_config_get_text(const dl_config *cfg, const char *key, char *buf, size_t cap) {
    DL_REQUIRE(cfg && cfg->origin && key && buf && cap > 0, DL_ERR_INVALID, "dl_config_get_text: bad arguments");
    int index = dl_cfg_find_dotted(key);
    DL_REQUIRE(index >= 0, DL_ERR_INVALID, "dl_config_get_text: unknown key '%s'", key);
    dl_cfg_buf b = {0};
    dl_cfg_format_value(cfg, index, &b);
    if (b.failed) {
        free(b.data);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory formatting %s", key);
    }
    snprintf(buf, cap, "%s", b.data ? b.data : "");
    free(b.data);
    return DL_OK;
}

dl_status dl_config_source(const dl_config *cfg, const char *key, char *buf, size_t cap) {
    DL_REQUIRE(cfg && cfg->origin && key && buf && cap > 0, DL_ERR_INVALID, "dl_config_source: bad arguments");
    int index = dl_cfg_find_dotted(key);
    DL_REQUIRE(index >= 0, DL_ERR_INVALID, "dl_config_source: unknown key '%s'", key);
    dl_cfg_format_source(cfg, index, buf, cap);
    return DL_OK;
}

bool dl_config_key_read_by(const char *key, dl_model_kind kind) {
    if (!key || (int)kind < 0 || (int)kind > DL_MODEL_DPO)
        return false;
    int index = dl_cfg_find_dotted(key);
    return index >= 0 && (dl_cfg_key_kinds(index) & (1u << kind)) != 0;
}

const char *dl_config_enum_text(const char *key, int value) {
    if (!key)
        return NULL;
    int index = dl_cfg_find_dotted(key);
    if (index < 0 || !dl_cfg_keys[index].choices || value < 0)
        return NULL;
    const char *const *choices = dl_cfg_keys[index].choices;
    for (int i = 0; choices[i]; i++)
        if (i == value)
            return choices[i];
    return NULL;
}
