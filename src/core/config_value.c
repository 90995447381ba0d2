/* config_value.c — checking one value against its key and storing it: the scalar parsers, ranges, and
 * dl_cfg_assign, which every value goes through whatever its origin (a default, a YAML file, an override). It sits
 * below both config_load.c (defaults, overrides, loading) and config_yaml.c (reading YAML), so those two no longer call
 * each other in a circle. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"

/* ---- small helpers ---------------------------------------------------------------------------------------------- */

/* Copies user text for a message: at most 80 characters, control characters shown as '?'. */
void dl_cfg_printable(const char *s, size_t len, char *buf, size_t cap) {
    size_t limit = cap - 4 < 80 ? cap - 4 : 80, o = 0;
    for (size_t i = 0; i < len && o < limit; i++)
        buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (len > limit) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

char *dl_cfg_strndup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void dl_cfg_free_list(dl_str_list *list) {
    for (int i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* ---- parsing scalars -------------------------------------------------------------------------------------------- */

/* A finite decimal number: what strtod takes, minus hex, inf/nan and surrounding space. */
static int parse_double(const char *s, double *out) {
    if (!*s || isspace((unsigned char)*s))
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isdigit((unsigned char)*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
            return 0;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* A decimal integer, or a number in exponent form with an integral value ("1e6"). 1: ok, 0: not an integer,
 * -1: an integer too large for int64. */
static int parse_int64(const char *s, int64_t *out) {
    if (!*s || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end != s && *end == '\0') {
        if (errno == ERANGE)
            return -1;
        *out = v;
        return 1;
    }
    double d;
    if (!parse_double(s, &d) || d != floor(d))
        return 0;
    if (d < -9.2e18 || d > 9.2e18)
        return -1;
    *out = (int64_t)d;
    return 1;
}

static int parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 1;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 1;
    }
    return 0;
}

/* ---- ranges ------------------------------------------------------------------------------------------------------ */

static int in_range(const dl_cfg_key *key, double v) {
    if (key->range & DL_CFG_HAS_MIN) {
        if ((key->range & DL_CFG_MIN_OPEN) ? !(v > key->min) : !(v >= key->min))
            return 0;
    }
    if (key->range & DL_CFG_HAS_MAX) {
        if ((key->range & DL_CFG_MAX_OPEN) ? !(v < key->max) : !(v <= key->max))
            return 0;
    }
    return 1;
}

/* "must be >= 1", "must be > 0 and < 1", "must be between 0 and 1". */
static void range_text(const dl_cfg_key *key, char *buf, size_t cap) {
    char lo[32], hi[32];
    dl_cfg_format_double(key->min, lo, sizeof lo);
    dl_cfg_format_double(key->max, hi, sizeof hi);
    int has_min = key->range & DL_CFG_HAS_MIN, has_max = key->range & DL_CFG_HAS_MAX;
    const char *lo_op = (key->range & DL_CFG_MIN_OPEN) ? ">" : ">=";
    const char *hi_op = (key->range & DL_CFG_MAX_OPEN) ? "<" : "<=";
    if (has_min && has_max && !(key->range & (DL_CFG_MIN_OPEN | DL_CFG_MAX_OPEN)))
        snprintf(buf, cap, "must be between %s and %s", lo, hi);
    else if (has_min && has_max)
        snprintf(buf, cap, "must be %s %s and %s %s", lo_op, lo, hi_op, hi);
    else if (has_min)
        snprintf(buf, cap, "must be %s %s", lo_op, lo);
    else if (has_max)
        snprintf(buf, cap, "must be %s %s", hi_op, hi);
    else
        snprintf(buf, cap, "must fit the type");
}

/* ---- assigning one value ----------------------------------------------------------------------------------------- */

/* What a key expects, for "expected ..., got ..." messages. */
static void expected_text(const dl_cfg_key *key, char *buf, size_t cap) {
    if (key->expect) {
        snprintf(buf, cap, "%s", key->expect);
        return;
    }
    switch (key->type) {
    case DL_CFG_INT:
    case DL_CFG_I64: snprintf(buf, cap, "an integer"); return;
    case DL_CFG_FLOAT: snprintf(buf, cap, "a number"); return;
    case DL_CFG_BOOL: snprintf(buf, cap, "true or false"); return;
    case DL_CFG_STRING: snprintf(buf, cap, "a string"); return;
    case DL_CFG_LIST: snprintf(buf, cap, "a path or a list of paths"); return;
    case DL_CFG_ENUM_COUNT:
    case DL_CFG_ENUM_TEXT:
    case DL_CFG_ENUM: {
        size_t used = (size_t)snprintf(buf, cap, "one of ");
        for (int i = 0; key->choices[i] && used < cap; i++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", key->choices[i]);
        return;
    }
    }
}

/* "'fast'", "a list", "a mapping", "an empty value". */
static void got_text(const dl_cfg_raw *raw, char *buf, size_t cap) {
    char shown[96];
    switch (raw->kind) {
    case DL_RAW_SCALAR:
        dl_cfg_printable(raw->text, raw->len, shown, sizeof shown);
        snprintf(buf, cap, "'%s'", shown);
        return;
    case DL_RAW_NULL: snprintf(buf, cap, "an empty value"); return;
    case DL_RAW_LIST: snprintf(buf, cap, raw->nested ? "a nested list" : "a list"); return;
    case DL_RAW_MAPPING: snprintf(buf, cap, "a mapping"); return;
    }
}

static dl_status type_error(const dl_cfg_key *key, const dl_cfg_raw *raw, const char *where, const char *full) {
    char expected[256], got[128];
    expected_text(key, expected, sizeof expected);
    got_text(raw, got, sizeof got);
    return DL_FAIL(DL_ERR_CONFIG, "%s: %s: expected %s, got %s", where, full, expected, got);
}

static dl_status range_error(const dl_cfg_key *key, const dl_cfg_raw *raw, const char *where, const char *full,
                             const char *bounds) {
    char shown[96], text[128];
    dl_cfg_printable(raw->text, raw->len, shown, sizeof shown);
    if (bounds)
        snprintf(text, sizeof text, "%s", bounds);
    else
        range_text(key, text, sizeof text);
    return DL_FAIL(DL_ERR_CONFIG, "%s: %s: %s is out of range (%s)", where, full, shown, text);
}

/* Checks a string value: no NUL inside (YAML's "\0" escape makes one), valid UTF-8. */
static dl_status check_text(const char *s, size_t len, const char *where, const char *full) {
    if (memchr(s, '\0', len))
        return DL_FAIL(DL_ERR_CONFIG, "%s: %s: the value contains a NUL character", where, full);
    if (!dl_cfg_utf8_valid(s, len))
        return DL_FAIL(DL_ERR_CONFIG, "%s: %s: the value is not valid UTF-8", where, full);
    return DL_OK;
}

static dl_status set_string(char **slot, const char *s, size_t len) {
    char *copy = dl_cfg_strndup(s, len);
    if (!copy)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory copying a config string");
    free(*slot);
    *slot = copy;
    return DL_OK;
}

static dl_status assign_list(dl_str_list *list, const dl_cfg_key *key, const dl_cfg_raw *raw, const char *where,
                             const char *full) {
    if (raw->kind == DL_RAW_MAPPING || (raw->kind == DL_RAW_LIST && raw->nested))
        return type_error(key, raw, where, full);
    int count = raw->kind == DL_RAW_NULL ? 0 : raw->kind == DL_RAW_SCALAR ? 1 : raw->count;
    for (int i = 0; i < count; i++) {
        const char *s = raw->kind == DL_RAW_SCALAR ? raw->text : raw->items[i];
        size_t n = raw->kind == DL_RAW_SCALAR ? raw->len : raw->item_lens[i];
        if (n == 0)
            return DL_FAIL(DL_ERR_CONFIG, "%s: %s: path %d of the list is empty", where, full, i + 1);
        DL_CHECK(check_text(s, n, where, full));
    }
    dl_str_list fresh = {0, NULL};
    if (count > 0) {
        fresh.items = calloc((size_t)count, sizeof *fresh.items);
        if (!fresh.items)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory for the list of %s", full);
        for (int i = 0; i < count; i++) {
            const char *s = raw->kind == DL_RAW_SCALAR ? raw->text : raw->items[i];
            size_t n = raw->kind == DL_RAW_SCALAR ? raw->len : raw->item_lens[i];
            fresh.items[i] = dl_cfg_strndup(s, n);
            fresh.count = i + 1;
            if (!fresh.items[i]) {
                dl_cfg_free_list(&fresh);
                return DL_FAIL(DL_ERR_NOMEM, "out of memory for the list of %s", full);
            }
        }
    }
    dl_cfg_free_list(list);
    *list = fresh;
    return DL_OK;
}

dl_status dl_cfg_assign(const dl_cfg_schema *schema, void *cfg, int index, const dl_cfg_raw *raw, const char *where,
                        dl_cfg_source source) {
    DL_REQUIRE(schema && cfg && dl_cfg_origin_of(schema, cfg) && raw && where && index >= 0 &&
                   index < dl_cfg_num_keys(schema),
               DL_ERR_INVALID, "dl_cfg_assign: bad arguments");
    dl_cfg_origin *origin = dl_cfg_origin_of(schema, cfg);
    const dl_cfg_key *key = dl_cfg_key_at(schema, index, NULL);
    char full[96];
    dl_cfg_key_name(schema, index, full, sizeof full);
    void *field = dl_cfg_field(schema, cfg, index);

    if (key->type == DL_CFG_LIST) {
        DL_CHECK(assign_list(field, key, raw, where, full));
        origin->sources[index] = source;
        return DL_OK;
    }
    /* Every other type takes one scalar; strings and paths take an empty value as "". */
    if (raw->kind == DL_RAW_LIST || raw->kind == DL_RAW_MAPPING)
        return type_error(key, raw, where, full);
    if (raw->kind == DL_RAW_NULL && key->type != DL_CFG_STRING)
        return type_error(key, raw, where, full);
    const char *text = raw->kind == DL_RAW_NULL ? "" : raw->text;
    size_t len = raw->kind == DL_RAW_NULL ? 0 : raw->len;
    DL_CHECK(check_text(text, len, where, full));

    switch (key->type) {
    case DL_CFG_INT:
    case DL_CFG_I64: {
        int64_t v;
        int ok = parse_int64(text, &v);
        if (ok == 0)
            return type_error(key, raw, where, full);
        if (ok < 0)
            return range_error(key, raw, where, full,
                               text[0] == '-' ? "must be >= -9223372036854775808" : "must be <= 9223372036854775807");
        if (!in_range(key, (double)v))
            return range_error(key, raw, where, full, NULL);
        if (key->type == DL_CFG_INT) {
            if (v > INT_MAX)
                return range_error(key, raw, where, full, "must be <= 2147483647");
            if (v < INT_MIN)
                return range_error(key, raw, where, full, "must be >= -2147483648");
            *(int *)field = (int)v;
        } else {
            *(int64_t *)field = v;
        }
        break;
    }
    case DL_CFG_FLOAT: {
        double v;
        if (!parse_double(text, &v))
            return type_error(key, raw, where, full);
        if (!in_range(key, v))
            return range_error(key, raw, where, full, NULL);
        *(double *)field = v;
        break;
    }
    case DL_CFG_BOOL: {
        bool v;
        if (!parse_bool(text, &v))
            return type_error(key, raw, where, full);
        *(bool *)field = v;
        break;
    }
    case DL_CFG_STRING: DL_CHECK(set_string(field, text, len)); break;
    case DL_CFG_ENUM: {
        int found = -1;
        for (int i = 0; key->choices[i]; i++)
            if (strcmp(text, key->choices[i]) == 0)
                found = i;
        if (found < 0)
            return type_error(key, raw, where, full);
        *(int *)field = found;
        break;
    }
    case DL_CFG_ENUM_COUNT: {
        /* The last choice is "word:K": the word, a colon and a placeholder for the count. */
        int last = 0;
        while (key->choices[last + 1])
            last++;
        const char *colon = strchr(key->choices[last], ':');
        size_t word = colon ? (size_t)(colon - key->choices[last]) + 1 : 0;
        int mode = -1, count = 0;
        for (int i = 0; i < last; i++)
            if (strcmp(text, key->choices[i]) == 0)
                mode = i;
        if (mode < 0 && word && strncmp(text, key->choices[last], word) == 0) {
            int64_t k;
            int ok = parse_int64(text + word, &k);
            if (ok == 0)
                return type_error(key, raw, where, full);
            if (ok < 0 || !in_range(key, (double)k)) {
                char bounds[96], range[80];
                range_text(key, range, sizeof range);
                snprintf(bounds, sizeof bounds, "%s %s", colon + 1, range);
                return range_error(key, raw, where, full, bounds);
            }
            mode = last;
            count = (int)k;
        }
        if (mode < 0)
            return type_error(key, raw, where, full);
        *(int *)field = mode;
        *(int *)dl_cfg_field2(schema, cfg, index) = count;
        break;
    }
    case DL_CFG_ENUM_TEXT: {
        /* The last choice is a placeholder for any other text (PATH). */
        if (len == 0)
            return type_error(key, raw, where, full);
        int last = 0;
        while (key->choices[last + 1])
            last++;
        int mode = last;
        for (int i = 0; i < last; i++)
            if (strcmp(text, key->choices[i]) == 0)
                mode = i;
        DL_CHECK(set_string(dl_cfg_field2(schema, cfg, index), mode == last ? text : "", mode == last ? len : 0));
        *(int *)field = mode;
        break;
    }
    case DL_CFG_LIST: break; /* handled above */
    }
    origin->sources[index] = source;
    return DL_OK;
}
