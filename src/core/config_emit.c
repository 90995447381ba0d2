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

void dl_cfg_format_value(const dl_cfg_schema *schema, const void *cfg, int index, dl_cfg_buf *b) {
    const dl_cfg_key *key = dl_cfg_key_at(schema, index, NULL);
    const void *p = dl_cfg_cfield(schema, cfg, index);
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
    case DL_CFG_ENUM_COUNT:
    case DL_CFG_ENUM_TEXT: {
        int mode = *(const int *)p, last = 0;
        while (key->choices[last + 1])
            last++;
        const void *p2 = dl_cfg_cfield2(schema, cfg, index);
        if (mode == last && key->type == DL_CFG_ENUM_TEXT) {
            add_quoted(b, *(char *const *)p2);
        } else if (mode == last) {
            const char *colon = strchr(key->choices[last], ':');
            int word = colon ? (int)(colon - key->choices[last]) + 1 : 0;
            dl_cfg_buf_printf(b, "%.*s%d", word, key->choices[last], *(const int *)p2);
        } else {
            dl_cfg_buf_printf(b, "%s", mode >= 0 && mode < last ? key->choices[mode] : "?");
        }
        break;
    }
    }
}

void dl_cfg_format_source(const dl_cfg_schema *schema, const void *cfg, int index, char *buf, size_t cap) {
    const dl_cfg_origin *origin = dl_cfg_origin_of(schema, cfg);
    const dl_cfg_source *s = &origin->sources[index];
    switch (s->kind) {
    case DL_SRC_DEFAULT: snprintf(buf, cap, "default"); return;
    case DL_SRC_FILE: snprintf(buf, cap, "%s:%d", origin->file ? origin->file : "?", s->line); return;
    case DL_SRC_OVERRIDE: {
        const char *text = s->override < origin->n_overrides ? origin->overrides[s->override] : "?";
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
static void add_line(dl_cfg_buf *b, const dl_cfg_schema *schema, const void *cfg, int index, int indent,
                     int with_sources) {
    size_t start = b->len;
    dl_cfg_buf_printf(b, "%*s%s: ", indent, "", dl_cfg_key_at(schema, index, NULL)->name);
    dl_cfg_format_value(schema, cfg, index, b);
    if (with_sources) {
        size_t width = b->len - start;
        for (size_t col = width; col < 42; col++)
            dl_cfg_buf_add(b, " ", 1);
        char source[256];
        if (dl_cfg_origin_of(schema, cfg)->sources[index].kind == DL_SRC_OVERRIDE)
            snprintf(source, sizeof source, "override");
        else
            dl_cfg_format_source(schema, cfg, index, source, sizeof source);
        /* A file name could hold a line break; a comment must stay on its line. */
        for (char *c = source; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        dl_cfg_buf_printf(b, "  # %s", source);
    }
    dl_cfg_buf_add(b, "\n", 1);
}

dl_status dl_cfg_to_yaml(const dl_cfg_schema *schema, const void *cfg, int with_sources, char **text) {
    DL_REQUIRE(schema && cfg && dl_cfg_origin_of(schema, cfg) && text, DL_ERR_INVALID, "dl_cfg_to_yaml: bad arguments");
    *text = NULL;
    dl_cfg_buf b = {0};
    dl_cfg_buf_printf(&b, with_sources ? "# dealer config, resolved; each value's source in its comment\n"
                                       : "# dealer config, resolved\n");
    /* The top-level keys first, wherever their section stands: a section's mapping would otherwise swallow them. */
    for (int top = 1; top >= 0; top--) {
        int index = 0;
        for (int s = 0; s < schema->n_sections; s++) {
            const dl_cfg_section *sec = &schema->sections[s];
            int n = dl_cfg_section_len(sec);
            if ((sec->name[0] == '\0') != top) {
                index += n;
                continue;
            }
            if (!top)
                dl_cfg_buf_printf(&b, "%s:\n", sec->name);
            for (int i = 0; i < n; i++, index++)
                add_line(&b, schema, cfg, index, top ? 0 : 2, with_sources);
        }
    }
    if (b.failed) {
        free(b.data);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory writing a config as YAML");
    }
    *text = b.data;
    return DL_OK;
}

/* ---- the key list ------------------------------------------------------------------------------------------------ */

/* "int >= 1", "float [0, 1)", "auto|cpu|cuda". */
static void type_text(const dl_cfg_key *key, char *buf, size_t cap) {
    static const char *const names[] = {
        [DL_CFG_INT] = "int",     [DL_CFG_I64] = "int",  [DL_CFG_FLOAT] = "float",
        [DL_CFG_BOOL] = "bool",   [DL_CFG_STRING] = "string", [DL_CFG_LIST] = "path list",
        [DL_CFG_ENUM] = "",       [DL_CFG_ENUM_COUNT] = "",   [DL_CFG_ENUM_TEXT] = "",
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

void dl_cfg_print_keys(const dl_cfg_schema *schema, FILE *out, int markdown) {
    if (!schema || !out)
        return;
    if (markdown)
        fprintf(out, "| key | type | default | read by | meaning |\n|---|---|---|---|---|\n");
    int n = dl_cfg_num_keys(schema);
    for (int i = 0; i < n; i++) {
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, NULL);
        char name[96], type[128], def[64], readers[64];
        dl_cfg_key_name(schema, i, name, sizeof name);
        type_text(key, type, sizeof type);
        default_text(key, def, sizeof def);
        dl_cfg_readers_text(schema, dl_cfg_key_readers(schema, i), readers, sizeof readers);
        if (markdown) {
            fprintf(out, "| `%s` | ", name);
            markdown_cell(out, type);
            fprintf(out, " | `%s` | %s | ", def, readers);
            markdown_cell(out, key->doc);
            fprintf(out, " |\n");
        } else {
            fprintf(out, "%-22s %-36s %-13s %-12s %s\n", name, type, def, readers, key->doc);
        }
    }
}
