/* tensor.c — see tensor.h.
 *
 * The table keeps its views in a growing array (the order is the layout) and a separate open-addressing index from
 * name hash to view, so lookups by name stay O(1) for models with thousands of parameters while iteration stays a
 * plain array walk. Both are host memory owned by the table; the buffer the views describe is not. */
#include "core/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

size_t dl_dtype_size(dl_dtype dtype) {
    switch (dtype) {
    case DL_F32: return 4;
    case DL_BF16: return 2;
    case DL_I32: return 4;
    }
    return 0;
}

const char *dl_dtype_name(dl_dtype dtype) {
    switch (dtype) {
    case DL_F32: return "f32";
    case DL_BF16: return "bf16";
    case DL_I32: return "i32";
    }
    return "?";
}

/* a * b into *out; 0 on overflow. */
static int mul_ok(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static int add_ok(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

/* Prints a name for an error message: cut to a readable length and safe to show when it was rejected. */
static const char *printable_name(const char *name, char *buf, size_t cap) {
    if (!name)
        return "(null)";
    size_t i = 0;
    for (; name[i] && i + 4 < cap; i++)
        buf[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    if (name[i]) {
        memcpy(buf + i, "...", 4);
    } else {
        buf[i] = '\0';
    }
    return buf;
}

dl_status dl_tensor_init(dl_tensor *t, const char *name, dl_dtype dtype, int ndim, const size_t *shape,
                         size_t offset) {
    char shown[64];
    DL_REQUIRE(t, DL_ERR_INVALID, "dl_tensor_init: no tensor to fill");
    DL_REQUIRE(name && name[0], DL_ERR_INVALID, "tensor with an empty name");
    size_t len = strnlen(name, DL_TENSOR_NAME_MAX);
    if (len >= DL_TENSOR_NAME_MAX) {
        DL_FAIL(DL_ERR_INVALID, "tensor %s: name longer than %d characters",
                printable_name(name, shown, sizeof shown), DL_TENSOR_NAME_MAX - 1);
        dl_error_hint("use a shorter parameter name");
        return DL_ERR_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        DL_REQUIRE(c >= 0x20 && c < 0x7f, DL_ERR_INVALID,
                   "tensor %s: name has a non-printable character at position %zu (byte 0x%02x)",
                   printable_name(name, shown, sizeof shown), i, c);
    }
    size_t elem = dl_dtype_size(dtype);
    DL_REQUIRE(elem != 0, DL_ERR_INVALID, "tensor %s: unknown dtype %d", name, (int)dtype);
    DL_REQUIRE(ndim >= 0 && ndim <= DL_TENSOR_MAX_DIMS, DL_ERR_INVALID, "tensor %s: %d dims (at most %d supported)",
               name, ndim, DL_TENSOR_MAX_DIMS);
    DL_REQUIRE(ndim == 0 || shape, DL_ERR_INVALID, "tensor %s: %d dims but no shape", name, ndim);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        DL_REQUIRE(shape[d] != 0, DL_ERR_INVALID, "tensor %s: dim %d is 0 (every dim must be at least 1)", name, d);
        DL_REQUIRE(mul_ok(numel, shape[d], &numel), DL_ERR_INVALID,
                   "tensor %s: element count overflows size_t at dim %d (size %zu)", name, d, shape[d]);
    }
    size_t end, end_bytes;
    DL_REQUIRE(add_ok(offset, numel, &end) && mul_ok(end, elem, &end_bytes), DL_ERR_INVALID,
               "tensor %s: offset %zu + %zu elements of %s overflows size_t bytes", name, offset, numel,
               dl_dtype_name(dtype));
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->offset = offset;
    t->numel = numel;
    return DL_OK;
}

size_t dl_tensor_bytes(const dl_tensor *t) { return t ? t->numel * dl_dtype_size(t->dtype) : 0; }

dl_byte_range dl_tensor_byte_range(const dl_tensor *t) {
    dl_byte_range r = {0, 0};
    if (t) {
        size_t elem = dl_dtype_size(t->dtype);
        r.begin = t->offset * elem;
        r.end = r.begin + t->numel * elem;
    }
    return r;
}

const char *dl_tensor_shape_str(const dl_tensor *t, char *buf, size_t cap) {
    if (!buf || cap == 0)
        return buf;
    size_t used = 0;
    /* snprintf cuts and terminates; once the buffer is full the remaining parts are dropped. */
    used += (size_t)snprintf(buf, cap, "[");
    for (int d = 0; t && d < t->ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%zu", d ? ", " : "", t->shape[d]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

dl_status dl_tensor_table_init(dl_tensor_table *table, dl_dtype dtype, size_t align) {
    DL_REQUIRE(table, DL_ERR_INVALID, "dl_tensor_table_init: no table");
    memset(table, 0, sizeof *table);
    DL_REQUIRE(dl_dtype_size(dtype) != 0, DL_ERR_INVALID, "tensor table: unknown dtype %d", (int)dtype);
    DL_REQUIRE(align >= 1, DL_ERR_INVALID, "tensor table: alignment must be at least 1 element (got 0)");
    table->dtype = dtype;
    table->align = align;
    return DL_OK;
}

void dl_tensor_table_free(dl_tensor_table *table) {
    if (!table)
        return;
    free(table->tensors);
    free(table->slots);
    dl_dtype dtype = table->dtype;
    size_t align = table->align;
    memset(table, 0, sizeof *table);
    table->dtype = dtype;
    table->align = align;
}

/* The slot holding `name`, or the empty slot where it would go. slot_count must be a power of two, not full. */
static size_t find_slot(const dl_tensor_table *table, const char *name) {
    size_t mask = table->slot_count - 1;
    size_t s = (size_t)dl_hash_str(name) & mask;
    while (table->slots[s] != 0) {
        if (strcmp(table->tensors[table->slots[s] - 1].name, name) == 0)
            return s;
        s = (s + 1) & mask;
    }
    return s;
}

/* Grows the view array and the index so one more view fits. */
static dl_status reserve_one(dl_tensor_table *table, const char *name) {
    if (table->count == table->capacity) {
        size_t cap = table->capacity ? table->capacity * 2 : 16;
        DL_REQUIRE(cap <= UINT32_MAX - 1, DL_ERR_INVALID, "tensor %s: table holds too many views (%zu)", name,
                   table->count);
        dl_tensor *grown = realloc(table->tensors, cap * sizeof *grown);
        DL_REQUIRE(grown, DL_ERR_NOMEM, "tensor %s: out of memory growing the tensor table to %zu views", name, cap);
        table->tensors = grown;
        table->capacity = cap;
    }
    if ((table->count + 1) * 2 > table->slot_count) {
        size_t slots = table->slot_count ? table->slot_count * 2 : 32;
        while ((table->count + 1) * 2 > slots)
            slots *= 2;
        uint32_t *index = calloc(slots, sizeof *index);
        DL_REQUIRE(index, DL_ERR_NOMEM, "tensor %s: out of memory growing the tensor name index", name);
        free(table->slots);
        table->slots = index;
        table->slot_count = slots;
        for (size_t i = 0; i < table->count; i++)
            table->slots[find_slot(table, table->tensors[i].name)] = (uint32_t)(i + 1);
    }
    return DL_OK;
}

dl_status dl_tensor_table_add(dl_tensor_table *table, const char *name, int ndim, const size_t *shape,
                              size_t *index) {
    DL_REQUIRE(table && table->align >= 1, DL_ERR_INVALID, "dl_tensor_table_add: table not initialised");
    /* Place the view first: rounding the end of the buffer up to the alignment may overflow by itself. */
    size_t offset = table->numel;
    size_t rem = offset % table->align;
    if (rem) {
        size_t aligned;
        if (!add_ok(offset, table->align - rem, &aligned)) {
            char shown[64];
            return DL_FAIL(DL_ERR_INVALID, "tensor %s: buffer offset overflows size_t when aligned to %zu elements",
                           printable_name(name, shown, sizeof shown), table->align);
        }
        offset = aligned;
    }
    dl_tensor view;
    DL_CHECK(dl_tensor_init(&view, name, table->dtype, ndim, shape, offset));
    if (table->slot_count && table->slots[find_slot(table, name)] != 0) {
        const dl_tensor *prev = dl_tensor_table_find(table, name);
        DL_FAIL(DL_ERR_INVALID, "tensor %s: duplicate name (already view %zu of %zu)", name,
                (size_t)(prev - table->tensors), table->count);
        dl_error_hint("every parameter needs a unique name");
        return DL_ERR_INVALID;
    }
    DL_CHECK(reserve_one(table, name));
    size_t i = table->count;
    table->tensors[i] = view;
    table->slots[find_slot(table, name)] = (uint32_t)(i + 1);
    table->count++;
    table->numel = view.offset + view.numel;
    if (index)
        *index = i;
    return DL_OK;
}

const dl_tensor *dl_tensor_table_find(const dl_tensor_table *table, const char *name) {
    if (!table || !name || table->slot_count == 0)
        return NULL;
    uint32_t slot = table->slots[find_slot(table, name)];
    return slot ? &table->tensors[slot - 1] : NULL;
}

dl_status dl_tensor_table_get(const dl_tensor_table *table, const char *name, const dl_tensor **out) {
    DL_REQUIRE(table && out, DL_ERR_INVALID, "dl_tensor_table_get: no table or output");
    char shown[64];
    const dl_tensor *t = dl_tensor_table_find(table, name);
    if (!t) {
        DL_FAIL(DL_ERR_INVALID, "no tensor named %s (the table has %zu)", printable_name(name, shown, sizeof shown),
                table->count);
        dl_error_hint("check the parameter name against `dealer ckpt show`");
        return DL_ERR_INVALID;
    }
    *out = t;
    return DL_OK;
}

const dl_tensor *dl_tensor_table_at(const dl_tensor_table *table, size_t i) {
    return table && i < table->count ? &table->tensors[i] : NULL;
}

size_t dl_tensor_table_numel(const dl_tensor_table *table) { return table ? table->numel : 0; }

/* Cannot overflow: every add checked (offset + numel) * size of the view that ends the buffer. */
size_t dl_tensor_table_bytes(const dl_tensor_table *table) {
    return table ? table->numel * dl_dtype_size(table->dtype) : 0;
}

dl_status dl_tensor_table_byte_range(const dl_tensor_table *table, size_t i, dl_byte_range *out) {
    DL_REQUIRE(table && out, DL_ERR_INVALID, "dl_tensor_table_byte_range: no table or output");
    DL_REQUIRE(i < table->count, DL_ERR_INVALID, "tensor index %zu out of range (the table has %zu)", i,
               table->count);
    *out = dl_tensor_byte_range(&table->tensors[i]);
    return DL_OK;
}

dl_status dl_tensor_table_overlapping(const dl_tensor_table *table, dl_byte_range range, size_t *first,
                                      size_t *count) {
    DL_REQUIRE(table && first && count, DL_ERR_INVALID, "dl_tensor_table_overlapping: no table or output");
    DL_REQUIRE(range.begin <= range.end, DL_ERR_INVALID, "byte range [%zu, %zu) ends before it begins",
               range.begin, range.end);
    /* Views are sorted and disjoint: the first overlap is the first view ending after `begin`. */
    size_t lo = 0, hi = table->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dl_tensor_byte_range(&table->tensors[mid]).end <= range.begin)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = 0;
    if (range.begin < range.end)
        while (lo + n < table->count && dl_tensor_byte_range(&table->tensors[lo + n]).begin < range.end)
            n++;
    *first = lo;
    *count = n;
    return DL_OK;
}

dl_status dl_tensor_table_print(const dl_tensor_table *table, FILE *out) {
    DL_REQUIRE(table && out, DL_ERR_INVALID, "dl_tensor_table_print: no table or stream");
    int width = 4;
    for (size_t i = 0; i < table->count; i++) {
        int n = (int)strlen(table->tensors[i].name);
        if (n > width)
            width = n;
    }
    int ok = fprintf(out, "%5s  %-*s  %-5s  %-24s  %12s  %12s\n", "#", width, "name", "dtype", "shape", "offset",
                     "numel") >= 0;
    for (size_t i = 0; i < table->count && ok; i++) {
        const dl_tensor *t = &table->tensors[i];
        char shape[96];
        ok = fprintf(out, "%5zu  %-*s  %-5s  %-24s  %12zu  %12zu\n", i, width, t->name, dl_dtype_name(t->dtype),
                     dl_tensor_shape_str(t, shape, sizeof shape), t->offset, t->numel) >= 0;
    }
    if (ok)
        ok = fprintf(out, "total: %zu views, %zu elements, %zu bytes (%s, aligned to %zu elements)\n", table->count,
                     table->numel, dl_tensor_table_bytes(table), dl_dtype_name(table->dtype), table->align) >= 0;
    DL_REQUIRE(ok, DL_ERR_IO, "writing the tensor table failed");
    return DL_OK;
}
