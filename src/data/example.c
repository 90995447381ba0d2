/* example.c — tf.train.Example payloads to and from dealer's plain structs, through protoc-c's generated code.
 *
 * Encoding builds the message tree on the stack (no allocation besides the output buffer and, for int32 inputs, one
 * int64 staging array) with features in sorted key order, as TensorFlow's deterministic serialization writes them, so
 * the same input always gives the same bytes. Repeated numbers are packed, as TensorFlow writes them.
 *
 * Decoding is the hot path of training input. Canonical payloads (what TensorFlow and dealer write) go through
 * example_wire.c, which reads the wire format straight into the output arrays; everything else, and every error,
 * goes through protobuf-c, the reference. protobuf-c allocates every sub-message, string and array it unpacks, so
 * it allocates from a per-call arena here: a bump pointer over an 8 KiB stack buffer that spills into heap chunks
 * for large records, released in one go when the call returns (thread-safe, leak-free). protobuf-c accepts map
 * entries in any order and both packed and unpacked repeated numbers; we then pick features by name (the last
 * duplicate wins, as protobuf's map semantics say). */
#include "data/example.h"
#include "data/example_wire.h"

#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.pb-c.h"
#include "feature.pb-c.h"
#include "core/grow.h"

/* ---- the arena -------------------------------------------------------------------------------------------- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    alignas(16) unsigned char data[];
} arena_chunk;

typedef struct arena {
    unsigned char *base;
    size_t cap, used;
    size_t next_chunk;
    arena_chunk *chunks;
    alignas(16) unsigned char initial[8192];
} arena;

static void *arena_alloc(void *opaque, size_t size) {
    arena *a = opaque;
    if (size > SIZE_MAX - 64)
        return NULL;
    size = (size + 15) & ~(size_t)15;
    if (a->cap - a->used < size) {
        size_t chunk = a->next_chunk > size ? a->next_chunk : size;
        arena_chunk *c = malloc(sizeof *c + chunk);
        if (!c)
            return NULL;
        c->next = a->chunks;
        a->chunks = c;
        a->base = c->data;
        a->cap = chunk;
        a->used = 0;
        if (a->next_chunk < (64u << 20))
            a->next_chunk *= 2;
    }
    void *p = a->base + a->used;
    a->used += size;
    return p;
}

static void arena_free(void *opaque, void *p) {
    (void)opaque;
    (void)p; /* everything goes at once in arena_release */
}

static void arena_init(arena *a) {
    a->base = a->initial;
    a->cap = sizeof a->initial;
    a->used = 0;
    a->next_chunk = 64u << 10;
    a->chunks = NULL;
}

static void arena_release(arena *a) {
    while (a->chunks) {
        arena_chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
}

/* Unpacks an Example from payload into the arena. */
static dl_status unpack(arena *a, const uint8_t *payload, size_t len, Tensorflow__Example **out) {
    DL_REQUIRE(payload || len == 0, DL_ERR_INVALID, "decoding an Example: NULL payload");
    ProtobufCAllocator allocator = {arena_alloc, arena_free, a};
    static const uint8_t empty[1];
    Tensorflow__Example *ex = tensorflow__example__unpack(&allocator, len, payload ? payload : empty);
    if (!ex) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "the payload (%zu bytes) is not a valid tf.train.Example protobuf", len);
        dl_error_hint("the record was not written as a tf.train.Example, or it is damaged");
        return s;
    }
    *out = ex;
    return DL_OK;
}

static const char *kind_name(const Tensorflow__Feature *f) {
    if (!f)
        return "empty";
    switch (f->kind_case) {
    case TENSORFLOW__FEATURE__KIND_BYTES_LIST: return "bytes_list";
    case TENSORFLOW__FEATURE__KIND_FLOAT_LIST: return "float_list";
    case TENSORFLOW__FEATURE__KIND_INT64_LIST: return "int64_list";
    default: return "empty";
    }
}

/* The feature named `name` (the last one when repeated), or NULL. */
static const Tensorflow__Feature *find(const Tensorflow__Example *ex, const char *name) {
    const Tensorflow__Feature *found = NULL;
    if (!ex->features)
        return NULL;
    for (size_t i = 0; i < ex->features->n_feature; i++) {
        const Tensorflow__Features__FeatureEntry *e = ex->features->feature[i];
        if (e && e->key && strcmp(e->key, name) == 0)
            found = e->value;
    }
    return found;
}

/* Fails naming a missing feature and listing those present. */
static dl_status missing(const Tensorflow__Example *ex, const char *name, const char *expected_kind) {
    char present[512];
    size_t used = 0;
    present[0] = '\0';
    size_t n = ex->features ? ex->features->n_feature : 0;
    for (size_t i = 0; i < n && used + 1 < sizeof present; i++) {
        const Tensorflow__Features__FeatureEntry *e = ex->features->feature[i];
        int w = snprintf(present + used, sizeof present - used, "%s'%s'", used ? ", " : "",
                         e && e->key ? e->key : "");
        if (w < 0)
            break;
        used += (size_t)w < sizeof present - used ? (size_t)w : sizeof present - used - 1;
    }
    return DL_FAIL(DL_ERR_FORMAT, "missing feature '%s' (%s); the record has %s", name, expected_kind,
                   n ? present : "no features");
}

/* The int64 list named `name`, or a DL_ERR_FORMAT naming the problem. */
static dl_status get_int64(const Tensorflow__Example *ex, const char *name, const Tensorflow__Int64List **list) {
    const Tensorflow__Feature *f = find(ex, name);
    if (!f)
        return missing(ex, name, "int64_list");
    if (f->kind_case != TENSORFLOW__FEATURE__KIND_INT64_LIST || !f->int64_list)
        return DL_FAIL(DL_ERR_FORMAT, "feature '%s' is a %s, expected an int64_list", name, kind_name(f));
    *list = f->int64_list;
    return DL_OK;
}

static dl_status get_float(const Tensorflow__Example *ex, const char *name, const Tensorflow__FloatList **list) {
    const Tensorflow__Feature *f = find(ex, name);
    if (!f)
        return missing(ex, name, "float_list");
    if (f->kind_case != TENSORFLOW__FEATURE__KIND_FLOAT_LIST || !f->float_list)
        return DL_FAIL(DL_ERR_FORMAT, "feature '%s' is a %s, expected a float_list", name, kind_name(f));
    *list = f->float_list;
    return DL_OK;
}

/* Copies token ids, checking each lies in [0, 2^31). */
static dl_status copy_tokens(const Tensorflow__Int64List *list, const char *name, dl_i32_array *out) {
    DL_CHECK(dl_i32_array_reserve(out, list->n_value));
    for (size_t i = 0; i < list->n_value; i++) {
        int64_t v = list->value[i];
        if (v < 0 || v > INT32_MAX) {
            out->len = 0;
            return DL_FAIL(DL_ERR_FORMAT, "feature '%s' entry %zu: token id %lld is outside [0, 2^31)", name, i,
                           (long long)v);
        }
        out->data[i] = (int32_t)v;
    }
    out->len = list->n_value;
    return DL_OK;
}

/* ---- decoding ------------------------------------------------------------------------------------------------ */

dl_status dl_example_decode_tokens_reference(const uint8_t *payload, size_t len, dl_i32_array *tokens) {
    DL_REQUIRE(tokens, DL_ERR_INVALID, "dl_example_decode_tokens: NULL output");
    arena a;
    arena_init(&a);
    Tensorflow__Example *ex = NULL;
    dl_status s = unpack(&a, payload, len, &ex);
    const Tensorflow__Int64List *list = NULL;
    if (s == DL_OK)
        s = get_int64(ex, "tokens", &list);
    if (s == DL_OK)
        s = copy_tokens(list, "tokens", tokens);
    arena_release(&a);
    return s;
}

/* A label from a float or int64 list of one value: [0,1] kept, -1 read as 0, anything else refused. */
static dl_status get_label(const Tensorflow__Example *ex, float *label) {
    const Tensorflow__Feature *f = find(ex, "label");
    if (!f)
        return missing(ex, "label", "float_list of one value");
    double v;
    size_t n;
    if (f->kind_case == TENSORFLOW__FEATURE__KIND_FLOAT_LIST && f->float_list) {
        n = f->float_list->n_value;
        v = n ? f->float_list->value[0] : 0.0;
    } else if (f->kind_case == TENSORFLOW__FEATURE__KIND_INT64_LIST && f->int64_list) {
        n = f->int64_list->n_value;
        v = n ? (double)f->int64_list->value[0] : 0.0;
    } else {
        return DL_FAIL(DL_ERR_FORMAT, "feature 'label' is a %s, expected a float_list", kind_name(f));
    }
    if (n != 1)
        return DL_FAIL(DL_ERR_FORMAT, "feature 'label' has %zu values, expected 1", n);
    if (v == -1.0)
        v = 0.0;
    if (!(v >= 0.0 && v <= 1.0))
        return DL_FAIL(DL_ERR_FORMAT, "feature 'label' is %g, expected a value in [0, 1] (or -1 for 0)", v);
    *label = (float)v;
    return DL_OK;
}

static dl_status decode_click(const Tensorflow__Example *ex, dl_click_row *row) {
    const Tensorflow__Int64List *field = NULL, *feature = NULL;
    const Tensorflow__FloatList *value = NULL;
    DL_CHECK(get_label(ex, &row->label));
    DL_CHECK(get_int64(ex, "field", &field));
    DL_CHECK(get_int64(ex, "feature", &feature));
    DL_CHECK(get_float(ex, "value", &value));
    size_t n = feature->n_value;
    if (field->n_value != n || value->n_value != n)
        return DL_FAIL(DL_ERR_FORMAT, "features 'field', 'feature' and 'value' differ in length (%zu, %zu, %zu)",
                       field->n_value, n, value->n_value);
    DL_CHECK(dl_i32_array_reserve(&row->field, n));
    DL_CHECK(dl_i32_array_reserve(&row->feature, n));
    DL_CHECK(dl_f32_array_reserve(&row->value, n));
    for (size_t i = 0; i < n; i++) {
        int64_t fld = field->value[i];
        if (fld < 0 || fld > INT32_MAX)
            return DL_FAIL(DL_ERR_FORMAT, "feature 'field' entry %zu: field id %lld is outside [0, 2^31)", i,
                           (long long)fld);
        if (!isfinite(value->value[i]))
            return DL_FAIL(DL_ERR_FORMAT, "feature 'value' entry %zu is not finite (%g)", i,
                           (double)value->value[i]);
        row->field.data[i] = (int32_t)fld;
        row->feature.data[i] = dl_feature_id_fold(feature->value[i]);
    }
    if (n)
        memcpy(row->value.data, value->value, n * sizeof(float));
    row->field.len = row->feature.len = row->value.len = n;
    return DL_OK;
}

dl_status dl_example_decode_click_reference(const uint8_t *payload, size_t len, dl_click_row *row) {
    DL_REQUIRE(row, DL_ERR_INVALID, "dl_example_decode_click: NULL output");
    arena a;
    arena_init(&a);
    Tensorflow__Example *ex = NULL;
    dl_status s = unpack(&a, payload, len, &ex);
    if (s == DL_OK)
        s = decode_click(ex, row);
    if (s != DL_OK)
        row->field.len = row->feature.len = row->value.len = 0;
    arena_release(&a);
    return s;
}

dl_status dl_example_decode_pair_reference(const uint8_t *payload, size_t len, dl_pref_pair *pair) {
    DL_REQUIRE(pair, DL_ERR_INVALID, "dl_example_decode_pair: NULL output");
    arena a;
    arena_init(&a);
    Tensorflow__Example *ex = NULL;
    dl_status s = unpack(&a, payload, len, &ex);
    static const char *const names[3] = {"prompt", "chosen", "rejected"};
    dl_i32_array *outs[3] = {&pair->prompt, &pair->chosen, &pair->rejected};
    for (int k = 0; k < 3 && s == DL_OK; k++) {
        const Tensorflow__Int64List *list = NULL;
        s = get_int64(ex, names[k], &list);
        if (s == DL_OK)
            s = copy_tokens(list, names[k], outs[k]);
    }
    if (s != DL_OK)
        pair->prompt.len = pair->chosen.len = pair->rejected.len = 0;
    arena_release(&a);
    return s;
}

/* The public decoders: the wire fast path for canonical payloads, protobuf-c for everything else (and for every
 * error, so messages come from one place). */
dl_status dl_example_decode_tokens(const uint8_t *payload, size_t len, dl_i32_array *tokens) {
    DL_REQUIRE(tokens, DL_ERR_INVALID, "dl_example_decode_tokens: NULL output");
    if (dl_wire_decode_tokens(payload, len, tokens))
        return DL_OK;
    return dl_example_decode_tokens_reference(payload, len, tokens);
}

dl_status dl_example_decode_click(const uint8_t *payload, size_t len, dl_click_row *row) {
    DL_REQUIRE(row, DL_ERR_INVALID, "dl_example_decode_click: NULL output");
    if (dl_wire_decode_click(payload, len, row))
        return DL_OK;
    return dl_example_decode_click_reference(payload, len, row);
}

dl_status dl_example_decode_pair(const uint8_t *payload, size_t len, dl_pref_pair *pair) {
    DL_REQUIRE(pair, DL_ERR_INVALID, "dl_example_decode_pair: NULL output");
    if (dl_wire_decode_pair(payload, len, pair))
        return DL_OK;
    return dl_example_decode_pair_reference(payload, len, pair);
}

dl_status dl_example_detect(const uint8_t *payload, size_t len, dl_example_kind *kind) {
    DL_REQUIRE(kind, DL_ERR_INVALID, "dl_example_detect: NULL output");
    arena a;
    arena_init(&a);
    Tensorflow__Example *ex = NULL;
    dl_status s = unpack(&a, payload, len, &ex);
    if (s == DL_OK) {
        if (find(ex, "tokens"))
            *kind = DL_EXAMPLE_TOKENS;
        else if (find(ex, "chosen") && find(ex, "rejected"))
            *kind = DL_EXAMPLE_PAIR;
        else if (find(ex, "label") && find(ex, "feature"))
            *kind = DL_EXAMPLE_CLICK;
        else
            *kind = DL_EXAMPLE_UNKNOWN;
    }
    arena_release(&a);
    return s;
}

const char *dl_example_kind_name(dl_example_kind kind) {
    switch (kind) {
    case DL_EXAMPLE_TOKENS: return "tokens";
    case DL_EXAMPLE_CLICK: return "click";
    case DL_EXAMPLE_PAIR: return "pair";
    default: return "unknown";
    }
}

static int compare_entries(const void *a, const void *b) {
    const Tensorflow__Features__FeatureEntry *x = *(Tensorflow__Features__FeatureEntry *const *)a;
    const Tensorflow__Features__FeatureEntry *y = *(Tensorflow__Features__FeatureEntry *const *)b;
    return strcmp(x && x->key ? x->key : "", y && y->key ? y->key : "");
}

static size_t feature_len(const Tensorflow__Feature *f) {
    if (!f)
        return 0;
    switch (f->kind_case) {
    case TENSORFLOW__FEATURE__KIND_BYTES_LIST: return f->bytes_list ? f->bytes_list->n_value : 0;
    case TENSORFLOW__FEATURE__KIND_FLOAT_LIST: return f->float_list ? f->float_list->n_value : 0;
    case TENSORFLOW__FEATURE__KIND_INT64_LIST: return f->int64_list ? f->int64_list->n_value : 0;
    default: return 0;
    }
}

dl_status dl_example_describe(const uint8_t *payload, size_t len, char *buf, size_t cap) {
    DL_REQUIRE(buf && cap > 0, DL_ERR_INVALID, "dl_example_describe: no output buffer");
    buf[0] = '\0';
    arena a;
    arena_init(&a);
    Tensorflow__Example *ex = NULL;
    dl_status s = unpack(&a, payload, len, &ex);
    if (s == DL_OK && ex->features && ex->features->n_feature) {
        size_t n = ex->features->n_feature;
        qsort(ex->features->feature, n, sizeof *ex->features->feature, compare_entries);
        size_t used = 0;
        for (size_t i = 0; i < n && used + 1 < cap; i++) {
            const Tensorflow__Features__FeatureEntry *e = ex->features->feature[i];
            int w = snprintf(buf + used, cap - used, "%s%s: %s[%zu]", i ? ", " : "", e && e->key ? e->key : "",
                             kind_name(e ? e->value : NULL), feature_len(e ? e->value : NULL));
            if (w < 0)
                break;
            used += (size_t)w < cap - used ? (size_t)w : cap - used - 1;
        }
    } else if (s == DL_OK) {
        snprintf(buf, cap, "no features");
    }
    arena_release(&a);
    return s;
}

/* ---- encoding ------------------------------------------------------------------------------------------------ */

/* Packs `ex` into *out. */
static dl_status pack(const Tensorflow__Example *ex, uint8_t **out, size_t *cap, size_t *len) {
    size_t n = tensorflow__example__get_packed_size(ex);
    if (*cap < n || !*out) {
        size_t want = n > 64 ? n : 64;
        uint8_t *p = realloc(*out, want);
        if (!p)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory encoding an Example of %zu bytes", n);
        *out = p;
        *cap = want;
    }
    size_t written = tensorflow__example__pack(ex, *out);
    if (written != n)
        return DL_FAIL(DL_ERR_RUNTIME, "protobuf-c packed %zu bytes, expected %zu", written, n);
    *len = n;
    return DL_OK;
}

/* int32 -> int64 staging for Int64List. */
static dl_status widen(const int32_t *v, size_t n, int64_t **out) {
    *out = malloc((n ? n : 1) * sizeof(int64_t));
    if (!*out)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory encoding %zu values", n);
    for (size_t i = 0; i < n; i++)
        (*out)[i] = v[i];
    return DL_OK;
}

static dl_status check_tokens(const int32_t *tokens, size_t n, const char *name) {
    DL_REQUIRE(tokens || n == 0, DL_ERR_INVALID, "encoding '%s': NULL tokens", name);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0)
            return DL_FAIL(DL_ERR_INVALID, "encoding '%s': token %zu is negative (%d)", name, i, tokens[i]);
    return DL_OK;
}

/* Builds and packs an Example from `n` (name, feature) pairs given in sorted name order. */
static dl_status pack_features(const char *const *names, Tensorflow__Feature *const *features, size_t n,
                               uint8_t **out, size_t *cap, size_t *len) {
    Tensorflow__Features__FeatureEntry entries[4];
    Tensorflow__Features__FeatureEntry *pointers[4];
    for (size_t i = 0; i < n; i++) {
        Tensorflow__Features__FeatureEntry init = TENSORFLOW__FEATURES__FEATURE_ENTRY__INIT;
        entries[i] = init;
        entries[i].key = (char *)names[i];
        entries[i].value = features[i];
        pointers[i] = &entries[i];
    }
    Tensorflow__Features feats = TENSORFLOW__FEATURES__INIT;
    feats.n_feature = n;
    feats.feature = pointers;
    Tensorflow__Example ex = TENSORFLOW__EXAMPLE__INIT;
    ex.features = &feats;
    return pack(&ex, out, cap, len);
}

static void int64_feature(Tensorflow__Feature *f, Tensorflow__Int64List *list, int64_t *values, size_t n) {
    Tensorflow__Int64List list_init = TENSORFLOW__INT64_LIST__INIT;
    Tensorflow__Feature feature_init = TENSORFLOW__FEATURE__INIT;
    *list = list_init;
    list->n_value = n;
    list->value = values;
    *f = feature_init;
    f->kind_case = TENSORFLOW__FEATURE__KIND_INT64_LIST;
    f->int64_list = list;
}

static void float_feature(Tensorflow__Feature *f, Tensorflow__FloatList *list, float *values, size_t n) {
    Tensorflow__FloatList list_init = TENSORFLOW__FLOAT_LIST__INIT;
    Tensorflow__Feature feature_init = TENSORFLOW__FEATURE__INIT;
    *list = list_init;
    list->n_value = n;
    list->value = values;
    *f = feature_init;
    f->kind_case = TENSORFLOW__FEATURE__KIND_FLOAT_LIST;
    f->float_list = list;
}

dl_status dl_example_encode_tokens(const int32_t *tokens, size_t n, uint8_t **out, size_t *cap, size_t *len) {
    DL_REQUIRE(out && cap && len, DL_ERR_INVALID, "dl_example_encode_tokens: NULL output");
    DL_CHECK(check_tokens(tokens, n, "tokens"));
    int64_t *wide;
    DL_CHECK(widen(tokens, n, &wide));
    Tensorflow__Int64List list;
    Tensorflow__Feature feature;
    int64_feature(&feature, &list, wide, n);
    static const char *const names[1] = {"tokens"};
    Tensorflow__Feature *features[1] = {&feature};
    dl_status s = pack_features(names, features, 1, out, cap, len);
    free(wide);
    return s;
}

dl_status dl_example_encode_click(const dl_click_row *row, uint8_t **out, size_t *cap, size_t *len) {
    DL_REQUIRE(row && out && cap && len, DL_ERR_INVALID, "dl_example_encode_click: NULL argument");
    size_t n = row->feature.len;
    DL_REQUIRE(row->field.len == n && row->value.len == n, DL_ERR_INVALID,
               "encoding a click row: field, feature and value differ in length (%zu, %zu, %zu)", row->field.len, n,
               row->value.len);
    DL_REQUIRE(isfinite(row->label), DL_ERR_INVALID, "encoding a click row: the label is not finite");
    for (size_t i = 0; i < n; i++) {
        DL_REQUIRE(row->field.data[i] >= 0, DL_ERR_INVALID, "encoding a click row: field %zu is negative", i);
        DL_REQUIRE(isfinite(row->value.data[i]), DL_ERR_INVALID, "encoding a click row: value %zu is not finite",
                   i);
    }
    int64_t *fields, *ids;
    DL_CHECK(widen(row->field.data, n, &fields));
    dl_status s = widen(row->feature.data, n, &ids);
    if (s != DL_OK) {
        free(fields);
        return s;
    }
    float label = row->label;
    Tensorflow__Int64List field_list, feature_list;
    Tensorflow__FloatList label_list, value_list;
    Tensorflow__Feature f_feature, f_field, f_label, f_value;
    int64_feature(&f_feature, &feature_list, ids, n);
    int64_feature(&f_field, &field_list, fields, n);
    float_feature(&f_label, &label_list, &label, 1);
    float_feature(&f_value, &value_list, row->value.data, n);
    static const char *const names[4] = {"feature", "field", "label", "value"};
    Tensorflow__Feature *features[4] = {&f_feature, &f_field, &f_label, &f_value};
    s = pack_features(names, features, 4, out, cap, len);
    free(fields);
    free(ids);
    return s;
}

dl_status dl_example_encode_pair(const dl_pref_pair *pair, uint8_t **out, size_t *cap, size_t *len) {
    DL_REQUIRE(pair && out && cap && len, DL_ERR_INVALID, "dl_example_encode_pair: NULL argument");
    /* Sorted key order: chosen, prompt, rejected. */
    const dl_i32_array *arrays[3] = {&pair->chosen, &pair->prompt, &pair->rejected};
    static const char *const names[3] = {"chosen", "prompt", "rejected"};
    for (int k = 0; k < 3; k++)
        DL_CHECK(check_tokens(arrays[k]->data, arrays[k]->len, names[k]));
    int64_t *wide[3] = {NULL, NULL, NULL};
    Tensorflow__Int64List lists[3];
    Tensorflow__Feature feats[3];
    Tensorflow__Feature *features[3];
    dl_status s = DL_OK;
    for (int k = 0; k < 3 && s == DL_OK; k++) {
        s = widen(arrays[k]->data, arrays[k]->len, &wide[k]);
        if (s == DL_OK) {
            int64_feature(&feats[k], &lists[k], wide[k], arrays[k]->len);
            features[k] = &feats[k];
        }
    }
    if (s == DL_OK)
        s = pack_features(names, features, 3, out, cap, len);
    for (int k = 0; k < 3; k++)
        free(wide[k]);
    return s;
}
