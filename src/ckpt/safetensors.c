/* safetensors.c — the safetensors reader and writer (see safetensors.h for the format and the checks). */
#include "ckpt/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The format's own limit on the header (100 MB): a larger length field is damage, not a header. */
#define MAX_HEADER_BYTES (100u * 1000u * 1000u)

struct dl_st_file {
    char *path;
    int fd;
    uint64_t data_start, data_bytes;
    dl_st_tensor *tensors;
    size_t count;
    json_t *metadata; /* the __metadata__ object, or NULL */
};

static const struct {
    const char *name;
    dl_st_dtype dtype;
    size_t size;
} dtypes[] = {
    {"F32", DL_ST_F32, 4},  {"F16", DL_ST_F16, 2},  {"BF16", DL_ST_BF16, 2}, {"F64", DL_ST_F64, 8},
    {"I64", DL_ST_OTHER, 8}, {"I32", DL_ST_OTHER, 4}, {"I16", DL_ST_OTHER, 2}, {"I8", DL_ST_OTHER, 1},
    {"U8", DL_ST_OTHER, 1},  {"U16", DL_ST_OTHER, 2}, {"U32", DL_ST_OTHER, 4}, {"U64", DL_ST_OTHER, 8},
    {"BOOL", DL_ST_OTHER, 1}, {"F8_E4M3", DL_ST_OTHER, 1}, {"F8_E5M2", DL_ST_OTHER, 1},
};

const char *dl_st_shape_str(const dl_st_tensor *t, char *buf, size_t cap) {
    size_t at = 0;
    if (cap == 0)
        return buf;
    at += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; t && i < t->ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%zu", i ? ", " : "", t->shape[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
    return buf;
}

static int by_begin(const void *a, const void *b) {
    const dl_st_tensor *x = *(const dl_st_tensor *const *)a, *y = *(const dl_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Fills t from one header entry; the message names the file and the tensor. */
static dl_status parse_entry(const char *path, const char *name, json_t *e, uint64_t data_bytes, dl_st_tensor *t) {
    DL_REQUIRE(strlen(name) > 0 && strlen(name) < DL_ST_NAME_MAX, DL_ERR_FORMAT,
               "%s: a tensor name is empty or longer than %d bytes", path, DL_ST_NAME_MAX - 1);
    snprintf(t->name, sizeof t->name, "%s", name);
    json_t *dtype = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape"),
           *offsets = json_object_get(e, "data_offsets");
    DL_REQUIRE(json_is_object(e) && json_is_string(dtype) && json_is_array(shape) && json_is_array(offsets) &&
                   json_array_size(offsets) == 2,
               DL_ERR_FORMAT, "%s: tensor %s: the header entry needs dtype, shape and data_offsets [begin, end]", path,
               name);
    size_t elem = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(json_string_value(dtype), dtypes[i].name) == 0) {
            t->dtype = dtypes[i].dtype;
            elem = dtypes[i].size;
        }
    DL_REQUIRE(elem > 0, DL_ERR_FORMAT, "%s: tensor %s has an unknown dtype '%s'", path, name,
               json_string_value(dtype));
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", json_string_value(dtype));
    DL_REQUIRE(json_array_size(shape) <= DL_ST_MAX_DIMS, DL_ERR_FORMAT, "%s: tensor %s has %zu dimensions (at most %d)",
               path, name, json_array_size(shape), DL_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        DL_REQUIRE(json_is_integer(d) && json_integer_value(d) >= 0, DL_ERR_FORMAT,
                   "%s: tensor %s: shape entries must be integers >= 0", path, name);
        uint64_t dim = (uint64_t)json_integer_value(d);
        DL_REQUIRE(dim == 0 || t->numel <= (UINT64_MAX / 16) / dim, DL_ERR_FORMAT, "%s: tensor %s: shape overflows",
                   path, name);
        t->shape[i] = (size_t)dim;
        t->numel *= (size_t)dim;
    }
    json_t *b = json_array_get(offsets, 0), *en = json_array_get(offsets, 1);
    DL_REQUIRE(json_is_integer(b) && json_is_integer(en) && json_integer_value(b) >= 0 &&
                   json_integer_value(en) >= json_integer_value(b),
               DL_ERR_FORMAT, "%s: tensor %s: data_offsets must be integers 0 <= begin <= end", path, name);
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(en);
    DL_REQUIRE(t->end <= data_bytes, DL_ERR_FORMAT,
               "%s: tensor %s ends at byte %llu of the data, which holds %llu (the file is truncated)", path, name,
               (unsigned long long)t->end, (unsigned long long)data_bytes);
    char s[96];
    DL_REQUIRE(t->end - t->begin == (uint64_t)t->numel * elem, DL_ERR_FORMAT,
               "%s: tensor %s: %s %s needs %llu bytes, data_offsets give %llu", path, name, t->dtype_name,
               dl_st_shape_str(t, s, sizeof s), (unsigned long long)t->numel * elem,
               (unsigned long long)(t->end - t->begin));
    return DL_OK;
}

static dl_status parse_header(dl_st_file *f, const char *text, size_t len) {
    json_error_t err;
    json_t *root = json_loadb(text, len, 0, &err);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return DL_FAIL(DL_ERR_FORMAT, "%s: the safetensors header is not a JSON object (%s at column %d)", f->path,
                       root ? "not an object" : err.text, root ? 0 : err.column);
    }
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        json_decref(root);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the listing of %s", f->path);
    }
    const char *key;
    json_t *value;
    dl_status s = DL_OK;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(value)) {
                s = DL_FAIL(DL_ERR_FORMAT, "%s: __metadata__ must be a JSON object of strings", f->path);
                break;
            }
            f->metadata = json_incref(value);
            continue;
        }
        s = parse_entry(f->path, key, value, f->data_bytes, &f->tensors[f->count]);
        if (s != DL_OK)
            break;
        f->count++;
    }
    json_decref(root);
    if (s != DL_OK)
        return s;
    /* No two tensors may share bytes: a damaged header could otherwise alias one tensor onto another. */
    dl_st_tensor **order = malloc((f->count ? f->count : 1) * sizeof *order);
    DL_REQUIRE(order != NULL, DL_ERR_NOMEM, "cannot allocate the listing of %s", f->path);
    for (size_t i = 0; i < f->count; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->count, sizeof *order, by_begin);
    for (size_t i = 1; i < f->count && s == DL_OK; i++)
        if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end)
            s = DL_FAIL(DL_ERR_FORMAT, "%s: tensors %s and %s overlap in the data section", f->path,
                        order[i - 1]->name, order[i]->name);
    free(order);
    return s;
}

dl_status dl_st_open(dl_st_file **file, const char *path) {
    DL_REQUIRE(file && path, DL_ERR_INVALID, "dl_st_open: NULL argument");
    *file = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return dl_open_failure(path, err, "name a .safetensors file or a Hugging Face model directory");
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return DL_FAIL(DL_ERR_FORMAT, "%s is not a regular file", path);
    }
    dl_st_file *f = calloc(1, sizeof *f);
    char *header = NULL;
    dl_status s = DL_OK;
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return DL_FAIL(DL_ERR_NOMEM, "cannot open %s: out of memory", path);
    }
    f->fd = fd;
    uint64_t size = (uint64_t)st.st_size, header_len = 0;
    uint8_t prefix[8];
    if (size < 8)
        s = DL_FAIL(DL_ERR_FORMAT, "%s: %llu bytes, too short for a safetensors file (8-byte header length first)",
                    path, (unsigned long long)size);
    if (s == DL_OK)
        s = dl_pread_exact(fd, prefix, 8, 0, path);
    if (s == DL_OK) {
        for (int k = 7; k >= 0; k--)
            header_len = header_len << 8 | prefix[k];
        if (header_len > MAX_HEADER_BYTES || header_len > size - 8)
            s = DL_FAIL(DL_ERR_FORMAT, "%s: header length %llu does not fit the file (%llu bytes); not a safetensors "
                        "file, or a truncated one", path, (unsigned long long)header_len, (unsigned long long)size);
    }
    if (s == DL_OK && !(header = malloc(header_len + 1)))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the %llu-byte header of %s", (unsigned long long)header_len, path);
    if (s == DL_OK)
        s = dl_pread_exact(fd, header, (size_t)header_len, 8, path);
    if (s == DL_OK) {
        f->data_start = 8 + header_len;
        f->data_bytes = size - f->data_start;
        s = parse_header(f, header, (size_t)header_len);
    }
    free(header);
    if (s != DL_OK) {
        dl_st_close(f);
        return s;
    }
    *file = f;
    return DL_OK;
}

void dl_st_close(dl_st_file *f) {
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    json_decref(f->metadata);
    free(f->tensors);
    free(f->path);
    free(f);
}

const char *dl_st_path(const dl_st_file *f) { return f ? f->path : ""; }
size_t dl_st_count(const dl_st_file *f) { return f ? f->count : 0; }
const dl_st_tensor *dl_st_at(const dl_st_file *f, size_t i) { return f && i < f->count ? &f->tensors[i] : NULL; }

const dl_st_tensor *dl_st_find(const dl_st_file *f, const char *name) {
    for (size_t i = 0; f && name && i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *dl_st_metadata(const dl_st_file *f, const char *key) {
    json_t *v = f && f->metadata && key ? json_object_get(f->metadata, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* IEEE half to float, subnormals and specials included. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexpf((float)(mant | 0x400), (int)exp - 25);
    return sign ? -v : v;
}

dl_status dl_st_read_f32(dl_st_file *f, const dl_st_tensor *t, float *out) {
    DL_REQUIRE(f && t && out, DL_ERR_INVALID, "dl_st_read_f32: NULL argument");
    if (t->dtype == DL_ST_OTHER)
        return DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is %s, not a floating-point type (F32, F16, BF16, F64)", f->path,
                       t->name, t->dtype_name);
    uint64_t bytes = t->end - t->begin;
    if (t->dtype == DL_ST_F32)
        return dl_pread_exact(f->fd, out, (size_t)bytes, f->data_start + t->begin, f->path);
    void *raw = malloc(bytes ? (size_t)bytes : 1);
    DL_REQUIRE(raw != NULL, DL_ERR_NOMEM, "cannot allocate %llu bytes for %s", (unsigned long long)bytes, t->name);
    dl_status s = dl_pread_exact(f->fd, raw, (size_t)bytes, f->data_start + t->begin, f->path);
    for (size_t i = 0; s == DL_OK && i < t->numel; i++) {
        if (t->dtype == DL_ST_F64) {
            out[i] = (float)((const double *)raw)[i];
        } else if (t->dtype == DL_ST_BF16) {
            uint32_t bits = (uint32_t)((const uint16_t *)raw)[i] << 16;
            memcpy(&out[i], &bits, 4);
        } else {
            out[i] = half_to_float(((const uint16_t *)raw)[i]);
        }
    }
    free(raw);
    return s;
}

/* ---- writer ---------------------------------------------------------------------------------------------------- */

dl_status dl_st_write_begin(dl_st_writer *w, const char *path, const dl_st_entry *entries, size_t count,
                            const char *const *meta_keys, const char *const *meta_values, size_t meta_count) {
    DL_REQUIRE(w && path && (entries || count == 0) && (meta_count == 0 || (meta_keys && meta_values)), DL_ERR_INVALID,
               "dl_st_write_begin: NULL argument");
    memset(w, 0, sizeof *w);
    DL_REQUIRE(count > 0, DL_ERR_INVALID, "%s: a safetensors file needs at least one tensor", path);
    json_t *header = json_object(), *metadata = meta_count ? json_object() : NULL;
    w->bytes = calloc(count, sizeof *w->bytes);
    dl_status s = DL_OK;
    if (!header || (meta_count && !metadata) || !w->bytes)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot build the safetensors header of %s", path);
    for (size_t i = 0; s == DL_OK && i < meta_count; i++)
        if (json_object_set_new(metadata, meta_keys[i], json_string(meta_values[i] ? meta_values[i] : "")) != 0)
            s = DL_FAIL(DL_ERR_INVALID, "%s: metadata %s is not valid UTF-8 text", path, meta_keys[i]);
    if (s == DL_OK && metadata) {
        json_object_set_new(header, "__metadata__", metadata);
        metadata = NULL;
    }
    uint64_t offset = 0;
    for (size_t i = 0; s == DL_OK && i < count; i++) {
        const dl_st_entry *e = &entries[i];
        if (!e->name || !e->name[0] || strcmp(e->name, "__metadata__") == 0 || json_object_get(header, e->name)) {
            s = DL_FAIL(DL_ERR_INVALID, "%s: tensor name '%s' is empty, reserved or used twice", path,
                        e->name ? e->name : "");
            break;
        }
        DL_REQUIRE(e->ndim >= 0 && e->ndim <= DL_ST_MAX_DIMS, DL_ERR_INVALID, "%s: tensor %s has %d dimensions", path,
                   e->name, e->ndim);
        json_t *entry = json_object(), *shape = json_array(), *offsets = json_array();
        uint64_t numel = 1;
        for (int k = 0; k < e->ndim; k++) {
            json_array_append_new(shape, json_integer((json_int_t)e->shape[k]));
            numel *= e->shape[k];
        }
        w->bytes[i] = numel * 4;
        json_array_append_new(offsets, json_integer((json_int_t)offset));
        json_array_append_new(offsets, json_integer((json_int_t)(offset + w->bytes[i])));
        json_object_set_new(entry, "dtype", json_string("F32"));
        json_object_set_new(entry, "shape", shape);
        json_object_set_new(entry, "data_offsets", offsets);
        if (json_object_set_new(header, e->name, entry) != 0)
            s = DL_FAIL(DL_ERR_INVALID, "%s: tensor name '%s' is not valid UTF-8", path, e->name);
        offset += w->bytes[i];
    }
    /* Keys in insertion order keep the header in the order of the data (readers do not need it; people do). */
    char *text = s == DL_OK ? json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s == DL_OK && !text)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot serialise the safetensors header of %s", path);
    json_decref(header);
    json_decref(metadata);
    if (s == DL_OK)
        s = dl_atomic_open(&w->out, path);
    if (s == DL_OK) {
        w->open = 1;
        /* Padding the header with spaces to a multiple of 8 aligns every tensor for readers that map the file. */
        size_t len = strlen(text), padded = (len + 7) / 8 * 8;
        uint8_t prefix[8];
        for (int k = 0; k < 8; k++)
            prefix[k] = (uint8_t)((uint64_t)padded >> (8 * k));
        s = dl_atomic_write(&w->out, prefix, 8);
        if (s == DL_OK)
            s = dl_atomic_write(&w->out, text, len);
        if (s == DL_OK && padded > len)
            s = dl_atomic_write(&w->out, "        ", padded - len);
    }
    free(text);
    w->count = count;
    w->data_bytes = offset;
    if (s != DL_OK)
        dl_st_write_abort(w);
    return s;
}

dl_status dl_st_write_tensor(dl_st_writer *w, const float *data, size_t numel) {
    DL_REQUIRE(w && w->open && (data || numel == 0), DL_ERR_INVALID, "dl_st_write_tensor: no write in progress");
    DL_REQUIRE(w->next < w->count, DL_ERR_INVALID, "dl_st_write_tensor: all %zu tensors are written already",
               w->count);
    DL_REQUIRE((uint64_t)numel * 4 == w->bytes[w->next], DL_ERR_INVALID,
               "dl_st_write_tensor: tensor %zu has %llu elements in the header, %zu given", w->next,
               (unsigned long long)(w->bytes[w->next] / 4), numel);
    w->next++;
    return dl_atomic_write(&w->out, data, numel * 4); /* float32 little endian: this host's layout */
}

dl_status dl_st_write_commit(dl_st_writer *w) {
    DL_REQUIRE(w && w->open, DL_ERR_INVALID, "dl_st_write_commit: no write in progress");
    dl_status s = w->next == w->count
                      ? DL_OK
                      : DL_FAIL(DL_ERR_INVALID, "dl_st_write_commit: %zu of %zu tensors written", w->next, w->count);
    if (s == DL_OK) {
        s = dl_atomic_commit(&w->out);
        w->open = 0;
    }
    if (s != DL_OK)
        dl_st_write_abort(w);
    free(w->bytes);
    w->bytes = NULL;
    return s;
}

void dl_st_write_abort(dl_st_writer *w) {
    if (!w)
        return;
    if (w->open)
        dl_atomic_abort(&w->out);
    w->open = 0;
    free(w->bytes);
    w->bytes = NULL;
}
