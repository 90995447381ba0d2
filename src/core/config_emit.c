/* config_emit.c — writing a resolved config as YAML, and the key list behind `dealer config keys`.
 *
 * The YAML is written by hand rather than with libyaml's emitter because `dealer config show` puts each value's
 * source in a trailing comment, which the emitter cannot do. What is written must read back to the identical
 * config (it is stored in every checkpoint), so:
 *   - strings are always double-quoted, and anything YAML would not carry verbatim inside double quotes (control
 *     and C1 characters, line and paragraph separators, the byte-order mark, quotes, backslashes) is escaped;
 *   - doubles are printed with the fewest digits that strtod reads back to the same bits (%.17g at worst);
 *   - enums, booleans and integers are plain words. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"

/* ---- a growing text buffer --------------------------------------------------------------------------------------- */

void dl_cfg_buf_add(dl_cfg_buf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void dl_cfg_buf_printf(dl_cfg_buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        dl_cfg_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    dl_cfg_buf_add(b, big, (size_t)n);
    free(big);
}

/* ---- values ------------------------------------------------------------------------------------------------------ */

void dl_cfg_format_double(double v, char *buf, size_t cap) {
    /* Whole numbers as whole numbers (10000, not 1e+04), as long as they stay short. */
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {
        snprintf(buf, cap, "%lld", (long long)v);
        return;
    }
    char tmp[48];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(tmp, sizeof tmp, "%.*g", precision, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* Tidy the exponent: 1e-05 -> 1e-5, 1e+20 -> 1e20. */
    char *e = strchr(tmp, 'e');
    if (e) {
        char *digits = e + 1, *out = e + 1;
        if (*digits == '+')
            digits++;
        else if (*digits == '-')
            *out++ = *digits++;
        while (*digits == '0' && digits[1])
            digits++;
        memmove(out, digits, strlen(digits) + 1);
    }
    snprintf(buf, cap, "%s", tmp);
}

/* Decodes one UTF-8 sequence at s (valid by construction: every string was checked on the way in); returns its
 * length and the code point. A stray byte decodes as itself. */
static int utf8_next(const unsigned char *s, size_t left, unsigned *cp) {
    unsigned c = s[0];
    int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    if (c < 0x80 || (size_t)extra >= left) {
        *cp = c;
        return 1;
    }
    unsigned v = c & (0x3f >> extra);
    for (int k = 1; k <= extra; k++)
        v = v << 6 | (s[k] & 0x3f);
    *cp = v;
    return extra + 1;
}

static void add_quoted(dl_cfg_buf *b, const char *s) {
    dl_cfg_buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left > 0) {
        unsigned cp;
        int n = utf8_next(p, left, &cp);
        if (cp == '"' || cp == '\\') {
            char esc[2] = {'\\', (char)cp};
            dl_cfg_buf_add(b, esc, 2);
        } else if (cp == '\n') {
            dl_cfg_buf_add(b, "\\n", 2);
        } else if (cp == '\t') {
            dl_cfg_buf_add(b, "\\t", 2);
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            dl_cfg_buf_printf(b, "\\x%02x", cp);
        } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff) {
            dl_cfg_buf_printf(b, "\\u%04x", cp);
        } else {
            dl_cfg_buf_add(b, (const char *)p, (size_t)n);
        }
        p += n;
        left -= (size_t)n;
    }
    dl_cfg_buf_add(b, "\"", 1);
}

static const void *cfield(const dl_config *cfg, size_t offset) { return (const char *)cfg + offset; }

void dl_cfg_format_value(const dl_config *cfg, int index, dl_cfg_buf *b) {
    const dl_cfg_key *key = &dl_cfg_keys[index];
    const void *p = cfield(cfg, key->offset);
    char num[40];
    switch (key->type) {
    case DL_CFG_INT: dl_cfg_buf_printf(b, "%d", *(const int *)p); break;
    case DL_CFG_I64: dl_cfg_buf_printf(b, "%lld", (long long)*(const int64_t *)p); break;
    case DL_CFG_FLOAT:
        dl_cfg_format_double(*(const double *)p, num, sizeof num);
        dl_cfg_buf_printf(b, "%s", num);
        break;
    case DL_CFG_BOOL: dl_cfg_buf_printf(b, "%s", *(const bool *)p ? "true" : "false"); break;
    case DL_CFG_STRING: add_quoted(b, *(char *const *)p); break;
    case DL_CFG_ENUM: {
        int v = *(const int *)p;
        dl_cfg_buf_printf(b, "%s", v >= 0 && v < 64 ? key->choices[v] : "?");
        break;
    }
    case DL_CFG_LIST: {
        const dl_str_list *list = p;
        dl_cfg_buf_add(b, "[", 1);
        for (int i = 0; i < list->count; i++) {
            if (i)
                dl_cfg_buf_add(b, ", ", 2);
            add_quoted(b, list->items[i]);
        }
        dl_cfg_buf_add(b, "]", 1);
        break;
    }
    case DL_CFG_GRAD_CKPT: {
        int mode = *(const int *)p;
        if (mode == DL_GRAD_CKPT_EVERY)
            dl_cfg_buf_printf(b, "every:%d", *(const int *)cfield(cfg, key->offset2));
        else
            dl_cfg_buf_printf(b, "%s", mode == DL_GRAD_CKPT_BLOCKS ? "blocks" : "none");
        break;
    }
    case DL_CFG_RESUME: {
        int mode = *(const int *)p;
        if (mode == DL_RESUME_PATH)
            add_quoted(b, *(char *const *)cfield(cfg, key->offset2));
        else
            dl_cfg_buf_printf(b, "%s", mode == DL_RESUME_NEVER ? "never" : "auto");
        break;
    }
    }
}

void dl_cfg_format_source(const dl_config *cfg, int index, char *buf, size_t cap) {
    const dl_cfg_source *s = &cfg->origin->sources[index];
    switch (s->kind) {
    case DL_SRC_DEFAULT: snprintf(buf, cap, "default"); return;
    case DL_SRC_FILE: snprintf(buf, cap, "%s:%d", cfg->origin->file ? cfg->origin->file : "?", s->line); return;
    case DL_SRC_OVERRIDE: {
        const char *text = s->override < cfg->origin->n_overrides ? cfg->origin->overrides[s->override] : "?";
        char shown[160];
        size_t o = 0;
        for (size_t i = 0; text[i] && o < sizeof shown - 4; i++)
            shown[o++] = ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) ? '?' : text[i];
        shown[o] = '\0';
        snprintf(buf, cap, "override '%s'", shown);
        return;
    }
    }
}

/* ---- the whole config -------------------------------------------------------------------------------------------- */

/* Appends "  name: value", and with sources a comment aligned at column 44. */
static void add_line(dl_cfg_buf *b, const dl_config *cfg, int index, int indent, int with_sources) {
    size_t start = b->len;
    dl_cfg_buf_printf(b, "%*s%s: ", indent, "", dl_cfg_keys[index].name);
    dl_cfg_format_value(cfg, index, b);
    if (with_sources) {
        size_t width = b->len - start;
        for (size_t col = width; col < 42; col++)
            dl_cfg_buf_add(b, " ", 1);
        char source[256];
        if (cfg->origin->sources[index].kind == DL_SRC_OVERRIDE)
            snprintf(source, sizeof source, "override");
        else
            dl_cfg_format_source(cfg, index, source, sizeof source);
        /* A file name could hold a line break; a comment must stay on its line. */
        for (char *c = source; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        dl_cfg_buf_printf(b, "  # %s", source);
    }
    dl_cfg_buf_add(b, "\n", 1);
}

dl_status dl_config_to_yaml(const dl_config *cfg, int with_sources, char **text) {
    DL_REQUIRE(cfg && cfg->origin && text, DL_ERR_INVALID, "dl_config_to_yaml: bad arguments");
    *text = NULL;
    dl_cfg_buf b = {0};
    dl_cfg_buf_printf(&b, with_sources ? "# dealer config, resolved; each value's source in its comment\n"
                                       : "# dealer config, resolved\n");
    for (int i = 0; i < dl_cfg_num_keys; i++)
        if (!dl_cfg_keys[i].section[0])
            add_line(&b, cfg, i, 0, with_sources);
    for (int s = 0; dl_cfg_sections[s]; s++) {
        dl_cfg_buf_printf(&b, "%s:\n", dl_cfg_sections[s]);
        for (int i = 0; i < dl_cfg_num_keys; i++)
            if (strcmp(dl_cfg_keys[i].section, dl_cfg_sections[s]) == 0)
                add_line(&b, cfg, i, 2, with_sources);
    }
    if (b.failed) {
        free(b.data);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory writing a config as YAML");
    }
    *text = b.data;
    return DL_OK;
}

/* ---- the key list ------------------------------------------------------------------------------------------------ */

/* "int >= 1", "float [0, 1)", "gpt|fm|ffm|dpo". */
static void type_text(const dl_cfg_key *key, char *buf, size_t cap) {
    static const char *const names[] = {
        [DL_CFG_INT] = "int",     [DL_CFG_I64] = "int",  [DL_CFG_FLOAT] = "float",
        [DL_CFG_BOOL] = "bool",   [DL_CFG_STRING] = "string", [DL_CFG_LIST] = "path list",
        [DL_CFG_ENUM] = "",       [DL_CFG_GRAD_CKPT] = "",    [DL_CFG_RESUME] = "",
    };
    size_t used = 0;
    if (key->choices) {
        for (int i = 0; key->choices[i] && used < cap; i++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "|" : "", key->choices[i]);
        return;
    }
    used = (size_t)snprintf(buf, cap, "%s", names[key->type]);
    if (!(key->range & (DL_CFG_HAS_MIN | DL_CFG_HAS_MAX)) || used >= cap)
        return;
    char lo[32], hi[32];
    dl_cfg_format_double(key->min, lo, sizeof lo);
    dl_cfg_format_double(key->max, hi, sizeof hi);
    if ((key->range & DL_CFG_HAS_MIN) && (key->range & DL_CFG_HAS_MAX))
        snprintf(buf + used, cap - used, " %s%s, %s%s", (key->range & DL_CFG_MIN_OPEN) ? "(" : "[", lo, hi,
                 (key->range & DL_CFG_MAX_OPEN) ? ")" : "]");
    else if (key->range & DL_CFG_HAS_MIN)
        snprintf(buf + used, cap - used, " %s %s", (key->range & DL_CFG_MIN_OPEN) ? ">" : ">=", lo);
    else
        snprintf(buf + used, cap - used, " %s %s", (key->range & DL_CFG_MAX_OPEN) ? "<" : "<=", hi);
}

static void default_text(const dl_cfg_key *key, char *buf, size_t cap) {
    if (key->type == DL_CFG_LIST && !key->def[0])
        snprintf(buf, cap, "[]");
    else if ((key->type == DL_CFG_STRING || key->type == DL_CFG_LIST) && !key->def[0])
        snprintf(buf, cap, "\"\"");
    else
        snprintf(buf, cap, "%s", key->def);
}

/* Markdown cells: a '|' inside one would end it. */
static void markdown_cell(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
}

void dl_config_print_keys(FILE *out, int markdown) {
    if (!out)
        return;
    if (markdown)
        fprintf(out, "| key | type | default | read by | meaning |\n|---|---|---|---|---|\n");
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        const dl_cfg_key *key = &dl_cfg_keys[i];
        char name[96], type[128], def[64], kinds[64];
        dl_cfg_key_name(key, name, sizeof name);
        type_text(key, type, sizeof type);
        default_text(key, def, sizeof def);
        dl_cfg_kinds_text(dl_cfg_key_kinds(i), kinds, sizeof kinds);
        if (markdown) {
            fprintf(out, "| `%s` | ", name);
            markdown_cell(out, type);
            fprintf(out, " | `%s` | %s | ", def, kinds);
            markdown_cell(out, key->doc);
            fprintf(out, " |\n");
        } else {
            fprintf(out, "%-22s %-36s %-13s %-12s %s\n", name, type, def, kinds, key->doc);
        }
    }
}
