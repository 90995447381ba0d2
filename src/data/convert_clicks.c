/* convert_clicks.c — the libffm and libsvm line parsers (click rows).
 *
 * Both formats are whitespace-separated tokens: a label, then `field:feature:value` (libffm) or `feature:value`
 * (libsvm). The parsers walk one line in memory with explicit lengths, never reading past it and never needing a
 * NUL terminator, and copy each number into a small stack buffer before strtod: the only allocation is growing the
 * row's arrays, which are reused from line to line. Numbers are checked strictly (digits for ids; digits, sign,
 * point and exponent for values, so "nan", "inf" and hex floats are refused) because a silently misread id trains a
 * different model. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/convert.h"

#include "core/fs.h"

enum { NUMBER_MAX = 64 };

/* Writes a token for a message: printable ASCII as is, other bytes as \xHH, cut at 40 bytes. */
static const char *quote(char *out, size_t cap, const char *tok, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A non-negative decimal integer of digits only, at most `limit`. Returns 0 on success. */
static int parse_id(const char *s, size_t n, uint64_t limit, uint64_t *out) {
    if (n == 0 || n > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* A finite decimal number (sign, digits, point, exponent). Returns 0 on success. */
static int parse_number(const char *s, size_t n, double *out) {
    if (n == 0 || n >= NUMBER_MAX)
        return -1;
    char buf[NUMBER_MAX];
    int digits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digits = 1;
        else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E')
            return -1;
        buf[i] = c;
    }
    if (!digits)
        return -1;
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || !isfinite(v) || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* The next whitespace-separated token at or after *pos; returns 0 when none is left. */
static int next_token(const char *line, size_t len, size_t *pos, const char **tok, size_t *tok_len) {
    size_t i = *pos;
    while (i < len && is_space(line[i]))
        i++;
    if (i >= len)
        return 0;
    size_t start = i;
    while (i < len && !is_space(line[i]))
        i++;
    *tok = line + start;
    *tok_len = i - start;
    *pos = i;
    return 1;
}

static dl_status parse_label(const char *line, const char *tok, size_t n, float *label) {
    char q[200];
    double v;
    size_t column = (size_t)(tok - line) + 1;
    if (parse_number(tok, n, &v) != 0)
        return DL_FAIL(DL_ERR_FORMAT, "column %zu: label '%s' is not a number", column, quote(q, sizeof q, tok, n));
    if (v != 0.0 && v != 1.0 && v != -1.0)
        return DL_FAIL(DL_ERR_FORMAT, "column %zu: label '%s' is not a click label (0, 1 or -1)", column,
                       quote(q, sizeof q, tok, n));
    *label = v > 0 ? 1.0f : 0.0f;
    return DL_OK;
}

static void clear_row(dl_click_row *row) {
    row->label = 0;
    row->field.len = row->feature.len = row->value.len = 0;
}

static dl_status push_entry(dl_click_row *row, int32_t field, uint64_t feature, float value) {
    DL_CHECK(dl_i32_array_push(&row->field, field));
    DL_CHECK(dl_i32_array_push(&row->feature, dl_feature_id_fold((int64_t)feature)));
    return dl_f32_array_push(&row->value, value);
}

/* Splits an entry at its colons: up to 3 parts; *parts gets how many there were. */
static void split_colons(const char *tok, size_t n, const char *part[3], size_t part_len[3], int *parts) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || tok[i] == ':') {
            if (k < 3) {
                part[k] = tok + start;
                part_len[k] = i - start;
            }
            k++;
            start = i + 1;
        }
    }
    *parts = k;
}

/* Parses one entry into (field, feature, value); `with_field` selects libffm's three parts over libsvm's two. */
static dl_status parse_entry(const char *line, const char *tok, size_t n, int with_field, uint64_t *field,
                             uint64_t *feature, double *value) {
    char q[200];
    size_t column = (size_t)(tok - line) + 1;
    const char *part[3];
    size_t plen[3];
    int parts;
    split_colons(tok, n, part, plen, &parts);
    int want = with_field ? 3 : 2;
    if (parts != want) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "column %zu: token '%s': expected %s", column, quote(q, sizeof q, tok, n),
                              with_field ? "field:feature:value" : "feature:value");
        if (with_field && parts == 2)
            dl_error_hint("this looks like libsvm (feature:value); use --format libsvm");
        else if (!with_field && parts == 3)
            dl_error_hint("this looks like libffm (field:feature:value); use --format libffm");
        return s;
    }
    char p[200];
    int k = 0;
    if (with_field) {
        if (parse_id(part[0], plen[0], INT32_MAX, field) != 0)
            return DL_FAIL(DL_ERR_FORMAT, "column %zu: token '%s': field '%s' is not an integer in [0, 2^31)", column,
                           quote(q, sizeof q, tok, n), quote(p, sizeof p, part[0], plen[0]));
        k = 1;
    }
    if (parse_id(part[k], plen[k], INT64_MAX, feature) != 0)
        return DL_FAIL(DL_ERR_FORMAT, "column %zu: token '%s': feature '%s' is not an integer in [0, 2^63)", column,
                       quote(q, sizeof q, tok, n), quote(p, sizeof p, part[k], plen[k]));
    if (parse_number(part[k + 1], plen[k + 1], value) != 0 || !isfinite((float)*value))
        return DL_FAIL(DL_ERR_FORMAT, "column %zu: token '%s': value '%s' is not a finite number", column,
                       quote(q, sizeof q, tok, n), quote(p, sizeof p, part[k + 1], plen[k + 1]));
    return DL_OK;
}

static dl_status parse_click_line(const char *line, size_t len, int with_field, int field_by_position,
                                  dl_click_row *row) {
    DL_REQUIRE(row && (line || len == 0), DL_ERR_INVALID, "parsing a click row: NULL argument");
    clear_row(row);
    size_t pos = 0;
    const char *tok;
    size_t n;
    if (!next_token(line, len, &pos, &tok, &n))
        return DL_FAIL(DL_ERR_FORMAT, "empty line: expected a label");
    DL_CHECK(parse_label(line, tok, n, &row->label));
    uint64_t position = 0;
    while (next_token(line, len, &pos, &tok, &n)) {
        uint64_t field = 0, feature = 0;
        double value = 0;
        DL_CHECK(parse_entry(line, tok, n, with_field, &field, &feature, &value));
        if (!with_field)
            field = field_by_position ? position : 0;
        if (field > INT32_MAX)
            return DL_FAIL(DL_ERR_FORMAT, "column %zu: more than 2^31 entries in one line", (size_t)(tok - line) + 1);
        DL_CHECK(push_entry(row, (int32_t)field, feature, (float)value));
        position++;
    }
    return DL_OK;
}

dl_status dl_parse_libffm_line(const char *line, size_t len, dl_click_row *row) {
    return parse_click_line(line, len, 1, 0, row);
}

dl_status dl_parse_libsvm_line(const char *line, size_t len, int field_by_position, dl_click_row *row) {
    return parse_click_line(line, len, 0, field_by_position, row);
}

dl_status dl_libffm_for_each_row(const char *path, const char *hint,
                                 dl_status (*on_row)(void *ctx, const dl_click_row *row, const char *where),
                                 void *ctx) {
    DL_REQUIRE(path && hint && on_row, DL_ERR_INVALID, "dl_libffm_for_each_row: NULL argument");
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dl_open_failure(path, errno, hint);
    dl_click_row row;
    memset(&row, 0, sizeof row);
    char *line = NULL, where[4200];
    size_t cap = 0;
    ssize_t got;
    uint64_t line_no = 0;
    dl_status s = DL_OK;
    while (s == DL_OK && (got = getline(&line, &cap, fp)) >= 0) {
        size_t len = (size_t)got;
        line_no++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (dl_line_is_blank(line, len))
            continue;
        snprintf(where, sizeof where, "%s:%" PRIu64, path, line_no);
        s = dl_parse_libffm_line(line, len, &row);
        if (s != DL_OK)
            dl_error_context("%s", where);
        else
            s = on_row(ctx, &row, where);
    }
    if (s == DL_OK && ferror(fp))
        s = DL_FAIL(DL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    fclose(fp);
    free(line);
    dl_click_row_free(&row);
    return s;
}
