/* config_load.c — resolving a config: defaults, then a YAML file, then command-line overrides, then the checks that
 * involve several keys.
 *
 * Every value, whatever its origin (a default in the schema table, a YAML scalar or list, an override), goes
 * through one function, dl_cfg_assign, which checks it against the key's type and range and stores it at the key's
 * offset in the caller's config struct. So a default, a file value and an override are held to exactly the same rules, and the
 * error for each names where the value came from. The first error stops loading: a config is either fully valid
 * or not loaded at all (the half-built struct is freed), so callers never see a partly applied file.
 *
 * Each key also records its source (default, file:line, override) in the private origin block, which
 * `dealer config show` prints next to the value. Which keys exist, and the checks that involve several of them,
 * are the caller's schema: nothing here knows a setting by name. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/hash.h"

enum { MAX_CONFIG_BYTES = 16 << 20 };

/* ---- defaults, free ---------------------------------------------------------------------------------------------- */

void dl_cfg_free(const dl_cfg_schema *schema, void *cfg) {
    if (!schema || !cfg)
        return;
    int n = dl_cfg_num_keys(schema);
    for (int i = 0; i < n; i++) {
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, NULL);
        if (key->type == DL_CFG_STRING)
            free(*(char **)dl_cfg_field(schema, cfg, i));
        else if (key->type == DL_CFG_ENUM_TEXT)
            free(*(char **)dl_cfg_field2(schema, cfg, i));
        else if (key->type == DL_CFG_LIST)
            dl_cfg_free_list(dl_cfg_field(schema, cfg, i));
    }
    dl_cfg_origin *origin = dl_cfg_origin_of(schema, cfg);
    if (origin) {
        free(origin->file);
        for (int i = 0; i < origin->n_overrides; i++)
            free(origin->overrides[i]);
        free(origin->overrides);
        free(origin->sources);
        free(origin);
    }
    memset(cfg, 0, schema->size);
}

dl_status dl_cfg_defaults(const dl_cfg_schema *schema, void *cfg) {
    DL_REQUIRE(schema && cfg, DL_ERR_INVALID, "dl_cfg_defaults: schema or cfg is NULL");
    memset(cfg, 0, schema->size);
    int n = dl_cfg_num_keys(schema);
    dl_cfg_origin *origin = calloc(1, sizeof *origin);
    if (origin) {
        dl_cfg_set_origin(schema, cfg, origin);
        origin->sources = calloc((size_t)n + 1, sizeof *origin->sources);
    }
    if (!origin || !origin->sources) {
        dl_cfg_free(schema, cfg);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory for a config");
    }
    for (int i = 0; i < n; i++) {
        const char *def = dl_cfg_key_at(schema, i, NULL)->def;
        dl_cfg_raw raw = {.kind = def[0] ? DL_RAW_SCALAR : DL_RAW_NULL, .text = def, .len = strlen(def)};
        dl_cfg_source source = {DL_SRC_DEFAULT, 0, 0};
        dl_status s = dl_cfg_assign(schema, cfg, i, &raw, "default", source);
        if (s != DL_OK) {
            dl_cfg_free(schema, cfg);
            return s;
        }
    }
    return DL_OK;
}

/* ---- overrides --------------------------------------------------------------------------------------------------- */

static dl_status apply_override(const dl_cfg_schema *schema, void *cfg, int number) {
    const char *text = dl_cfg_origin_of(schema, cfg)->overrides[number];
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
        index = dl_cfg_find(schema, "", name);
        if (index < 0) {
            dl_cfg_printable(name, strlen(name), shown_name, sizeof shown_name);
            if (dl_cfg_find_section(schema, name) >= 0)
                return DL_FAIL(DL_ERR_CONFIG, "%s: '%s' is a section; name one of its keys (%s.KEY=VALUE)", where,
                               shown_name, shown_name);
            dl_cfg_suggest_section(schema, name, suggestion, sizeof suggestion);
            dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: unknown key '%s'%s", where, shown_name, suggestion);
            if (!suggestion[0])
                dl_error_hint("'dealer config keys' lists every key");
            return s;
        }
    } else {
        *dot = '\0';
        const char *key_name = dot + 1;
        if (dl_cfg_find_section(schema, name) < 0) {
            dl_cfg_printable(name, strlen(name), shown_name, sizeof shown_name);
            dl_cfg_suggest_section(schema, name, suggestion, sizeof suggestion);
            dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: unknown section '%s'%s", where, shown_name, suggestion);
            if (!suggestion[0])
                dl_error_hint("'dealer config keys' lists every key");
            return s;
        }
        index = dl_cfg_find(schema, name, key_name);
        if (index < 0) {
            dl_cfg_printable(key_name, strlen(key_name), shown_name, sizeof shown_name);
            dl_cfg_suggest_key(schema, name, key_name, suggestion, sizeof suggestion);
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
    dl_status s = dl_cfg_assign(schema, cfg, index, &raw, where, source);
    dl_cfg_raw_free(&raw);
    return s;
}

/* ---- checks across keys ------------------------------------------------------------------------------------------ */

static int source_rank(const dl_cfg_origin *origin, int index) {
    const dl_cfg_source *s = &origin->sources[index];
    return s->kind == DL_SRC_OVERRIDE ? 1000000 + s->override : s->kind == DL_SRC_FILE ? s->line : 0;
}

/* The place to blame for a conflict between keys (space-separated dotted names): the one set last, since an
 * override beats the file and a later line an earlier one. */
static void blame(const dl_cfg_schema *schema, const void *cfg, const char *keys, char *buf, size_t cap) {
    const dl_cfg_origin *origin = dl_cfg_origin_of(schema, cfg);
    int pick = -1;
    char name[64];
    for (const char *p = keys; *p;) {
        size_t n = strcspn(p, " ");
        if (n < sizeof name) {
            memcpy(name, p, n);
            name[n] = '\0';
            int index = dl_cfg_find_dotted(schema, name);
            if (index >= 0 && (pick < 0 || source_rank(origin, index) > source_rank(origin, pick)))
                pick = index;
        }
        p += n;
        p += *p == ' ';
    }
    if (pick < 0 || origin->sources[pick].kind == DL_SRC_DEFAULT)
        snprintf(buf, cap, "%s", origin->file ? origin->file : "config");
    else
        dl_cfg_format_source(schema, cfg, pick, buf, cap);
}

dl_status dl_cfg_conflict(const dl_cfg_schema *schema, const void *cfg, const char *keys, const char *fmt, ...) {
    DL_REQUIRE(schema && cfg && dl_cfg_origin_of(schema, cfg) && keys && fmt, DL_ERR_INVALID,
               "dl_cfg_conflict: bad arguments");
    char where[256], what[512];
    blame(schema, cfg, keys, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return DL_FAIL(DL_ERR_CONFIG, "%s: %s", where, what);
}

/* A key that the selector's value does not read, set to anything but its default, would be ignored without a word:
 * refuse it. A value equal to the default is let through, so that a resolved config (config.yaml of a run, which
 * lists every key) loads again as it was written. */
static dl_status check_selected_keys(const dl_cfg_schema *schema, const void *cfg) {
    int selector = schema->selector ? dl_cfg_find_dotted(schema, schema->selector) : -1;
    if (selector < 0)
        return DL_OK;
    int choice = *(const int *)dl_cfg_cfield(schema, cfg, selector);
    void *defaults = calloc(1, schema->size);
    if (!defaults)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory checking config keys");
    dl_status s = dl_cfg_defaults(schema, defaults);
    if (s != DL_OK) {
        free(defaults);
        return s;
    }
    const dl_cfg_origin *origin = dl_cfg_origin_of(schema, cfg);
    unsigned choice_bit = choice >= 0 && choice < 32 ? 1u << choice : 0;
    int n = dl_cfg_num_keys(schema);
    for (int i = 0; i < n && s == DL_OK; i++) {
        unsigned readers = dl_cfg_key_readers(schema, i);
        if ((readers & choice_bit) || origin->sources[i].kind == DL_SRC_DEFAULT)
            continue;
        dl_cfg_buf mine = {0}, def = {0};
        dl_cfg_format_value(schema, cfg, i, &mine);
        dl_cfg_format_value(schema, defaults, i, &def);
        if (mine.failed || def.failed) {
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory checking config keys");
        } else if (strcmp(mine.data ? mine.data : "", def.data ? def.data : "") != 0) {
            char where[256], name[96], readers_text[64];
            dl_cfg_format_source(schema, cfg, i, where, sizeof where);
            dl_cfg_key_name(schema, i, name, sizeof name);
            dl_cfg_readers_text(schema, readers, readers_text, sizeof readers_text);
            const char *value = dl_cfg_enum_text(schema, schema->selector, choice);
            s = DL_FAIL(DL_ERR_CONFIG, "%s: %s is not read by %s %s (only by %s), so it would be ignored", where, name,
                        schema->selector, value ? value : "?", readers_text);
            dl_error_hint("remove it, or set %s; 'dealer config keys' shows which kinds read each key",
                          schema->selector);
        }
        free(mine.data);
        free(def.data);
    }
    dl_cfg_free(schema, defaults);
    free(defaults);
    return s;
}

/* ---- loading ----------------------------------------------------------------------------------------------------- */

static dl_status load_text(const dl_cfg_schema *schema, void *cfg, const char *text, size_t len, const char *name,
                           int n_overrides, char **overrides, int check_selected) {
    DL_CHECK(dl_cfg_defaults(schema, cfg));
    dl_cfg_origin *origin = dl_cfg_origin_of(schema, cfg);
    dl_status s = DL_OK;
    if (name) {
        origin->file = dl_cfg_strndup(name, strlen(name));
        if (!origin->file)
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory for a config");
    }
    if (s == DL_OK && text)
        s = dl_cfg_parse_yaml(schema, cfg, text, len, name);
    if (s == DL_OK && n_overrides > 0) {
        origin->overrides = calloc((size_t)n_overrides, sizeof *origin->overrides);
        if (!origin->overrides)
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory for overrides");
        for (int i = 0; s == DL_OK && i < n_overrides; i++) {
            if (!overrides[i]) {
                s = DL_FAIL(DL_ERR_INVALID, "override %d is NULL", i);
                break;
            }
            origin->overrides[i] = dl_cfg_strndup(overrides[i], strlen(overrides[i]));
            if (!origin->overrides[i]) {
                s = DL_FAIL(DL_ERR_NOMEM, "out of memory for overrides");
                break;
            }
            origin->n_overrides = i + 1;
            s = apply_override(schema, cfg, i);
        }
    }
    if (s == DL_OK && schema->check)
        s = schema->check(schema, cfg);
    if (s == DL_OK && check_selected)
        s = check_selected_keys(schema, cfg);
    if (s != DL_OK)
        dl_cfg_free(schema, cfg);
    return s;
}

dl_status dl_cfg_load_string(const dl_cfg_schema *schema, void *cfg, const char *text, size_t len, const char *name) {
    DL_REQUIRE(schema && cfg, DL_ERR_INVALID, "dl_cfg_load_string: schema or cfg is NULL");
    memset(cfg, 0, schema->size);
    DL_REQUIRE(text || len == 0, DL_ERR_INVALID, "dl_cfg_load_string: text is NULL");
    return load_text(schema, cfg, text ? text : "", len, name ? name : "<string>", 0, NULL, 0);
}

dl_status dl_cfg_load(const dl_cfg_schema *schema, void *cfg, const char *path, int n_overrides, char **overrides) {
    DL_REQUIRE(schema && cfg, DL_ERR_INVALID, "dl_cfg_load: schema or cfg is NULL");
    memset(cfg, 0, schema->size);
    DL_REQUIRE(n_overrides >= 0 && (n_overrides == 0 || overrides), DL_ERR_INVALID,
               "dl_config_load: %d overrides but no array", n_overrides);
    if (!path)
        return load_text(schema, cfg, NULL, 0, NULL, n_overrides, overrides, 1);

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
        s = load_text(schema, cfg, text, len, path, n_overrides, overrides, 1);
    free(text);
    return s;
}

/* ---- queries ----------------------------------------------------------------------------------------------------- */

bool dl_cfg_equal(const dl_cfg_schema *schema, const void *a, const void *b) {
    if (!schema || !a || !b)
        return false;
    int n = dl_cfg_num_keys(schema);
    for (int i = 0; i < n; i++) {
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, NULL);
        const void *pa = dl_cfg_cfield(schema, a, i), *pb = dl_cfg_cfield(schema, b, i);
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
        case DL_CFG_ENUM_COUNT:
            if (*(const int *)pa != *(const int *)pb ||
                *(const int *)dl_cfg_cfield2(schema, a, i) != *(const int *)dl_cfg_cfield2(schema, b, i))
                return false;
            break;
        case DL_CFG_ENUM_TEXT:
            if (*(const int *)pa != *(const int *)pb ||
                strcmp(*(char *const *)dl_cfg_cfield2(schema, a, i), *(char *const *)dl_cfg_cfield2(schema, b, i)) != 0)
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

static int rank_local(const dl_cfg_schema *schema, int index) {
    return (dl_cfg_key_at(schema, index, NULL)->flags & DL_CFG_RANK_LOCAL) != 0;
}

int dl_cfg_diff(const dl_cfg_schema *schema, const void *a, const void *b, const char *a_name, const char *b_name,
                char *buf, size_t cap) {
    if (buf && cap)
        buf[0] = '\0';
    if (!schema || !a || !b || !dl_cfg_origin_of(schema, a) || !dl_cfg_origin_of(schema, b))
        return -1;
    int count = 0, n = dl_cfg_num_keys(schema);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (rank_local(schema, i))
            continue;
        dl_cfg_buf va = {0}, vb = {0};
        dl_cfg_format_value(schema, a, i, &va);
        dl_cfg_format_value(schema, b, i, &vb);
        if (va.failed || vb.failed) {
            free(va.data);
            free(vb.data);
            return -1;
        }
        if (strcmp(va.data ? va.data : "", vb.data ? vb.data : "") != 0) {
            count++;
            if (buf && cap) {
                char name[96], entry[512];
                dl_cfg_key_name(schema, i, name, sizeof name);
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

dl_status dl_cfg_rank_hash(const dl_cfg_schema *schema, const void *cfg, uint64_t *hash) {
    DL_REQUIRE(schema && cfg && dl_cfg_origin_of(schema, cfg) && hash, DL_ERR_INVALID,
               "dl_cfg_rank_hash: bad arguments");
    dl_cfg_buf b = {0};
    int n = dl_cfg_num_keys(schema);
    for (int i = 0; i < n; i++) {
        if (rank_local(schema, i))
            continue;
        char name[96];
        dl_cfg_key_name(schema, i, name, sizeof name);
        dl_cfg_buf_printf(&b, "%s=", name);
        dl_cfg_format_value(schema, cfg, i, &b);
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

dl_status dl_cfg_get_text(const dl_cfg_schema *schema, const void *cfg, const char *key, char *buf, size_t cap) {
    DL_REQUIRE(schema && cfg && dl_cfg_origin_of(schema, cfg) && key && buf && cap > 0, DL_ERR_INVALID,
               "dl_cfg_get_text: bad arguments");
    int index = dl_cfg_find_dotted(schema, key);
    DL_REQUIRE(index >= 0, DL_ERR_INVALID, "dl_config_get_text: unknown key '%s'", key);
    dl_cfg_buf b = {0};
    dl_cfg_format_value(schema, cfg, index, &b);
    if (b.failed) {
        free(b.data);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory formatting %s", key);
    }
    snprintf(buf, cap, "%s", b.data ? b.data : "");
    free(b.data);
    return DL_OK;
}

dl_status dl_cfg_source_text(const dl_cfg_schema *schema, const void *cfg, const char *key, char *buf, size_t cap) {
    DL_REQUIRE(schema && cfg && dl_cfg_origin_of(schema, cfg) && key && buf && cap > 0, DL_ERR_INVALID,
               "dl_cfg_source_text: bad arguments");
    int index = dl_cfg_find_dotted(schema, key);
    DL_REQUIRE(index >= 0, DL_ERR_INVALID, "dl_config_source: unknown key '%s'", key);
    dl_cfg_format_source(schema, cfg, index, buf, cap);
    return DL_OK;
}

const char *dl_cfg_rows_enum_text(const dl_cfg_key *keys, const char *name, int value) {
    if (!keys || !name || value < 0)
        return NULL;
    for (int k = 0; keys[k].name; k++) {
        if (strcmp(keys[k].name, name) != 0 || !keys[k].choices)
            continue;
        for (int i = 0; keys[k].choices[i]; i++)
            if (i == value)
                return keys[k].choices[i];
        return NULL;
    }
    return NULL;
}

const char *dl_cfg_enum_text(const dl_cfg_schema *schema, const char *key, int value) {
    if (!schema || !key)
        return NULL;
    int index = dl_cfg_find_dotted(schema, key);
    const dl_cfg_key *row = dl_cfg_key_at(schema, index, NULL);
    if (!row || !row->choices || value < 0)
        return NULL;
    for (int i = 0; row->choices[i]; i++)
        if (i == value)
            return row->choices[i];
    return NULL;
}
