/* example_wire.c — direct wire-format decoding of canonical tf.train.Example payloads (see example_wire.h).
 *
 * Two steps per record. scan() walks the whole message once, checking the canonical layout of every map entry and
 * list and remembering, for each feature name asked for, where the last entry with that name keeps its list
 * (protobuf map semantics: the last duplicate wins). Then each wanted list is decoded straight into the output
 * array: packed varints one byte loop, packed floats one memcpy. Any surprise returns 0 and leaves the record to
 * protobuf-c, so this file only has to be right about what it accepts, never about error messages.
 *
 * Wire format reminders: a tag byte is (field << 3 | wire type); wire type 0 = varint, 2 = length-delimited,
 * 5 = 4-byte fixed. All tags used here are one byte (fields 1-3): a multi-byte tag is an unknown field, so it
 * falls back. A 10-byte varint's last byte may only hold the top bit of 64 (0 or 1). */
#include "data/example_wire.h"

#include <math.h>
#include <string.h>

enum { KIND_BYTES = 1, KIND_FLOAT = 2, KIND_INT64 = 3 };

typedef struct span {
    const uint8_t *p;
    size_t n;
} span;

typedef struct wanted {
    const char *name;
    size_t name_len;
    span list; /* the list message's bytes */
    int kind;  /* 0 when not found */
} wanted;

/* Reads a varint at *p (< end); 1 on success. */
static inline int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    const uint8_t *q = *p;
    for (int i = 0; i < 10; i++) {
        if (q >= end)
            return 0;
        uint8_t b = *q++;
        if (i == 9 && b > 1)
            return 0;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *p = q;
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* Reads a length prefix and the span it announces; 1 on success. */
static inline int read_span(const uint8_t **p, const uint8_t *end, span *out) {
    uint64_t len;
    if (!read_varint(p, end, &len) || len > (uint64_t)(end - *p))
        return 0;
    out->p = *p;
    out->n = (size_t)len;
    *p += len;
    return 1;
}

/* Checks that a packed varint payload is a whole number of well-formed varints. */
static int valid_packed_varints(span s) {
    const uint8_t *p = s.p, *end = s.p + s.n;
    uint64_t v;
    while (p < end)
        if (!read_varint(&p, end, &v))
            return 0;
    return 1;
}

/* Checks a list message of the given kind: only field 1, in the encodings protobuf-c accepts for it. */
static int valid_list(span s, int kind) {
    const uint8_t *p = s.p, *end = s.p + s.n;
    while (p < end) {
        uint8_t tag = *p++;
        span inner = {NULL, 0};
        uint64_t v;
        if (tag == 0x0a) { /* field 1, length-delimited: packed numbers or one bytes value */
            if (!read_span(&p, end, &inner))
                return 0;
            if (kind == KIND_INT64 && !valid_packed_varints(inner))
                return 0;
            if (kind == KIND_FLOAT && inner.n % 4 != 0)
                return 0;
        } else if (tag == 0x08 && kind == KIND_INT64) { /* one unpacked varint */
            if (!read_varint(&p, end, &v))
                return 0;
        } else if (tag == 0x0d && kind == KIND_FLOAT) { /* one unpacked float */
            if (end - p < 4)
                return 0;
            p += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* Walks Example -> Features -> entries; fills want[i].list/kind for the names asked for. 1 when canonical. The
 * lists it returns are not checked yet: the decoders below check them while decoding (each wanted list must be
 * decoded, or checked with valid_list, before the payload counts as canonical). */
static int scan(const uint8_t *payload, size_t len, wanted *want, int n_want) {
    if (!payload || len == 0)
        return payload != NULL || len == 0; /* an empty Example: canonical, no features */
    const uint8_t *p = payload, *end = payload + len;
    span features = {NULL, 0};
    int seen = 0;
    while (p < end) {
        if (*p++ != 0x0a || seen || !read_span(&p, end, &features))
            return 0;
        seen = 1;
    }
    if (!seen || features.n == 0)
        return 1;
    p = features.p;
    end = features.p + features.n;
    while (p < end) {
        span entry, key, feature, list;
        if (*p++ != 0x0a || !read_span(&p, end, &entry))
            return 0;
        const uint8_t *e = entry.p, *e_end = entry.p + entry.n;
        if (e >= e_end || *e++ != 0x0a || !read_span(&e, e_end, &key))
            return 0;
        if (e >= e_end || *e++ != 0x12 || !read_span(&e, e_end, &feature) || e != e_end)
            return 0;
        if (key.n && memchr(key.p, 0, key.n))
            return 0;
        const uint8_t *f = feature.p, *f_end = feature.p + feature.n;
        if (f >= f_end)
            return 0;
        uint8_t tag = *f++;
        int kind = tag == 0x0a ? KIND_BYTES : tag == 0x12 ? KIND_FLOAT : tag == 0x1a ? KIND_INT64 : 0;
        if (!kind || !read_span(&f, f_end, &list) || f != f_end)
            return 0;
        int matched = 0;
        for (int i = 0; i < n_want && !matched; i++) {
            if (key.n != want[i].name_len || key.p[0] != (uint8_t)want[i].name[0] ||
                memcmp(key.p, want[i].name, key.n) != 0)
                continue;
            /* A wanted list is checked as it is decoded; one it replaces (a duplicate key) is checked now. */
            if (want[i].kind && !valid_list(want[i].list, want[i].kind))
                return 0;
            want[i].list = list;
            want[i].kind = kind;
            matched = 1;
        }
        if (!matched && !valid_list(list, kind))
            return 0;
    }
    return 1;
}

/* How an int64 list becomes int32s. */
enum { IDS_TOKEN = 0, IDS_FEATURE = 1 };

/* Decodes and checks an int64 list into out: tokens/fields must lie in [0, 2^31), features are folded. */
static int decode_int64(span s, int mode, dl_i32_array *out) {
    out->len = 0;
    if (dl_i32_array_reserve(out, s.n) != DL_OK) /* at most one value per byte */
        return 0;
    int32_t *dst = out->data;
    size_t n = 0;
    const uint8_t *p = s.p, *end = s.p + s.n;
    while (p < end) {
        uint8_t tag = *p++;
        const uint8_t *q, *q_end;
        span inner = {NULL, 0};
        if (tag == 0x0a) {
            if (!read_span(&p, end, &inner))
                return 0;
            q = inner.p;
            q_end = inner.p + inner.n;
        } else if (tag == 0x08) {
            q = p;
            q_end = end;
        } else {
            return 0;
        }
        while (q < q_end) {
            uint64_t u;
            if (*q < 0x80) { /* one-byte varints: bytes as tokens, small ids */
                u = *q++;
            } else if (!read_varint(&q, q_end, &u)) {
                return 0;
            }
            int64_t v = (int64_t)u;
            if (mode == IDS_FEATURE) {
                dst[n++] = v >= INT32_MIN && v <= INT32_MAX ? (int32_t)v : dl_feature_id_fold(v);
            } else {
                if (v < 0 || v > INT32_MAX)
                    return 0;
                dst[n++] = (int32_t)v;
            }
            if (tag != 0x0a)
                break; /* an unpacked field holds one value */
        }
        if (tag != 0x0a)
            p = q;
    }
    out->len = n;
    return 1;
}

/* Decodes and checks a float list into out; every value must be finite. */
static int decode_float(span s, dl_f32_array *out) {
    out->len = 0;
    if (dl_f32_array_reserve(out, s.n / 4 + 1) != DL_OK)
        return 0;
    size_t n = 0;
    const uint8_t *p = s.p, *end = s.p + s.n;
    while (p < end) {
        uint8_t tag = *p++;
        span inner = {NULL, 0};
        if (tag == 0x0a) {
            if (!read_span(&p, end, &inner) || inner.n % 4 != 0)
                return 0;
        } else if (tag == 0x0d && end - p >= 4) {
            inner.p = p;
            inner.n = 4;
            p += 4;
        } else {
            return 0;
        }
        memcpy(out->data + n, inner.p, inner.n); /* little-endian IEEE floats, as on the wire */
        n += inner.n / 4;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out->data[i]))
            return 0;
    out->len = n;
    return 1;
}

static void want_init(wanted *w, const char *name) {
    w->name = name;
    w->name_len = strlen(name);
    w->list.p = NULL;
    w->list.n = 0;
    w->kind = 0;
}

int dl_wire_decode_tokens(const uint8_t *payload, size_t len, dl_i32_array *tokens) {
    wanted w;
    want_init(&w, "tokens");
    if (!scan(payload, len, &w, 1) || w.kind != KIND_INT64)
        return 0;
    return decode_int64(w.list, IDS_TOKEN, tokens);
}

int dl_wire_decode_pair(const uint8_t *payload, size_t len, dl_pref_pair *pair) {
    wanted w[3];
    want_init(&w[0], "prompt");
    want_init(&w[1], "chosen");
    want_init(&w[2], "rejected");
    if (!scan(payload, len, w, 3))
        return 0;
    dl_i32_array *outs[3] = {&pair->prompt, &pair->chosen, &pair->rejected};
    for (int i = 0; i < 3; i++)
        if (w[i].kind != KIND_INT64 || !decode_int64(w[i].list, IDS_TOKEN, outs[i]))
            return 0;
    return 1;
}

int dl_wire_decode_click(const uint8_t *payload, size_t len, dl_click_row *row) {
    wanted w[4];
    want_init(&w[0], "label");
    want_init(&w[1], "field");
    want_init(&w[2], "feature");
    want_init(&w[3], "value");
    if (!scan(payload, len, w, 4))
        return 0;
    if (w[1].kind != KIND_INT64 || w[2].kind != KIND_INT64 || w[3].kind != KIND_FLOAT)
        return 0;
    /* The label: a float list (or an int64 list) of exactly one value, read with the protobuf-c path's rules. */
    double label;
    if (w[0].kind == KIND_FLOAT) {
        /* One float: packed (0x0a, length 4) or not (0x0d); longer lists go to protobuf-c. */
        const uint8_t *p = w[0].list.p;
        size_t n = w[0].list.n;
        float f;
        if (n == 6 && p[0] == 0x0a && p[1] == 4)
            memcpy(&f, p + 2, 4);
        else if (n == 5 && p[0] == 0x0d)
            memcpy(&f, p + 1, 4);
        else
            return 0;
        label = f;
    } else if (w[0].kind == KIND_INT64) {
        /* Single varint lists only; anything longer goes to protobuf-c. */
        const uint8_t *p = w[0].list.p, *end = p + w[0].list.n;
        uint64_t u;
        span inner = {NULL, 0};
        if (p < end && *p == 0x08) {
            p++;
            if (!read_varint(&p, end, &u) || p != end)
                return 0;
        } else if (p < end && *p == 0x0a) {
            p++;
            if (!read_span(&p, end, &inner))
                return 0;
            const uint8_t *q = inner.p;
            if (p != end || !read_varint(&q, inner.p + inner.n, &u) || q != inner.p + inner.n)
                return 0;
        } else {
            return 0;
        }
        label = (double)(int64_t)u;
    } else {
        return 0;
    }
    if (label == -1.0)
        label = 0.0;
    if (!(label >= 0.0 && label <= 1.0))
        return 0;
    if (!decode_int64(w[1].list, IDS_TOKEN, &row->field) || !decode_int64(w[2].list, IDS_FEATURE, &row->feature) ||
        !decode_float(w[3].list, &row->value))
        return 0;
    if (row->field.len != row->feature.len || row->value.len != row->feature.len)
        return 0;
    row->label = (float)label;
    return 1;
}
