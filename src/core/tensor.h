/* tensor.h — named views into one contiguous buffer, and the table that lays a model's parameters out.
 *
 * dealer keeps all of a model's parameters in one flat buffer (gradients and optimizer state in more buffers of the
 * same layout), llm.c style. A dl_tensor is only a description: a name, a dtype, a shape and an element offset into
 * that buffer; it never owns memory. A dl_tensor_table is the ordered list of views of one buffer. Adding a view
 * assigns it the next offset, so the layout is decided once, in one place, by the order of the adds — which is why
 * bucketed all-reduce, ZeRO slices and checkpoint I/O can all work on plain byte ranges of the buffer:
 *
 *     dl_tensor_table params;
 *     DL_CHECK(dl_tensor_table_init(&params, DL_F32, 16));          // each view starts on a multiple of 16 elements
 *     DL_CHECK(dl_tensor_table_add(&params, "wte", 2, DL_SHAPE(V, C), NULL));
 *     DL_CHECK(dl_tensor_table_add(&params, "h.0.attn.qkv.weight", 2, DL_SHAPE(C, 3 * C), NULL));
 *     float *buffer = ...dl_tensor_table_bytes(&params) bytes...;
 *     const dl_tensor *wte = dl_tensor_table_find(&params, "wte");
 *     float *w = buffer + wte->offset;
 *
 * With alignment N > 1 the gap between views is padding: it belongs to no view, and code that walks the buffer
 * (optimizers, all-reduce) treats it like any other element, so the owner of the buffer should zero it once.
 *
 * Shapes are size_t; every product, offset and byte count is checked for overflow, and every failure names the
 * tensor. A view has 0 to DL_TENSOR_MAX_DIMS dims (0 dims is a scalar, one element); a dim of 0 is an error, since a
 * parameter without elements is always a config mistake. */
#ifndef DL_CORE_TENSOR_H
#define DL_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DL_TENSOR_NAME_MAX = 128, /* bytes including the NUL: names have at most 127 characters */
    DL_TENSOR_MAX_DIMS = 4,
};

/* Element types. Values are stable (checkpoints may record them); new ones go at the end. */
typedef enum dl_dtype {
    DL_F32 = 0,
    DL_BF16 = 1,
    DL_I32 = 2,
} dl_dtype;

/* Bytes per element (4, 2, 4); 0 for a value outside the enum. */
size_t dl_dtype_size(dl_dtype dtype);
/* "f32", "bf16", "i32"; "?" for a value outside the enum. */
const char *dl_dtype_name(dl_dtype dtype);

/* A shape literal for the add functions: DL_SHAPE(768, 2304). */
#define DL_SHAPE(...) ((const size_t[]){__VA_ARGS__})

typedef struct dl_tensor {
    char name[DL_TENSOR_NAME_MAX];
    dl_dtype dtype;
    int ndim;
    size_t shape[DL_TENSOR_MAX_DIMS]; /* unused dims are 0 */
    size_t offset;                    /* in elements, from the start of the buffer */
    size_t numel;                     /* product of the dims (1 for a scalar) */
} dl_tensor;

/* Half-open byte range [begin, end) of a buffer. */
typedef struct dl_byte_range {
    size_t begin;
    size_t end;
} dl_byte_range;

/* Fills `t` with a validated view (name copied, numel computed, offset as given). Fails, naming the tensor, on an
 * empty or too long name, a name with characters outside printable ASCII, ndim outside [0, 4], a zero dim, or
 * a numel, offset + numel or byte size that overflows size_t. `t` is unchanged on failure. */
dl_status dl_tensor_init(dl_tensor *t, const char *name, dl_dtype dtype, int ndim, const size_t *shape, size_t offset);

/* Bytes of the view's data: numel * dtype size (cannot overflow for a view made by dl_tensor_init). */
size_t dl_tensor_bytes(const dl_tensor *t);

/* The view's bytes in its buffer: [offset * size, (offset + numel) * size). */
dl_byte_range dl_tensor_byte_range(const dl_tensor *t);

/* Writes the shape as "[768, 2304]" ("[]" for a scalar) into buf (cut to cap, always NUL-terminated when cap > 0);
 * returns buf, so it can be used inside a message. */
const char *dl_tensor_shape_str(const dl_tensor *t, char *buf, size_t cap);

/* The ordered views of one buffer. Treat the fields as read-only; use the functions below to change it. */
typedef struct dl_tensor_table {
    dl_dtype dtype;       /* of every view, and so of the buffer */
    size_t align;         /* each view starts at a multiple of this many elements */
    dl_tensor *tensors;   /* in order of addition, offsets increasing */
    size_t count;
    size_t capacity;
    size_t numel;         /* elements the buffer needs: end of the last view (padding between views included) */
    uint32_t *slots;      /* name index: open addressing, slot holds view index + 1, 0 when empty */
    size_t slot_count;    /* a power of two, at least twice count */
} dl_tensor_table;

/* An empty table whose views are `dtype` and start at multiples of `align` elements (1 packs them back to back).
 * Fails when align is 0 or dtype unknown. Call dl_tensor_table_free when done, even after a failed add. */
dl_status dl_tensor_table_init(dl_tensor_table *table, dl_dtype dtype, size_t align);

/* Releases the table's memory and leaves it empty (safe on a zeroed or already freed table). */
void dl_tensor_table_free(dl_tensor_table *table);

/* Appends a view named `name` of the given shape at the next aligned offset; its index goes to *index when index is
 * not NULL. Fails (naming the tensor, table unchanged) on a duplicate name, anything dl_tensor_init rejects, or a
 * buffer size that would overflow size_t. */
dl_status dl_tensor_table_add(dl_tensor_table *table, const char *name, int ndim, const size_t *shape, size_t *index);

/* The view named `name`, or NULL when there is none. */
const dl_tensor *dl_tensor_table_find(const dl_tensor_table *table, const char *name);

/* Like find, but a missing name is a DL_ERR_INVALID failure naming it (for checkpoint loading and config lookups). */
dl_status dl_tensor_table_get(const dl_tensor_table *table, const char *name, const dl_tensor **out);

/* The i-th view in order of addition, NULL when i >= count. Iterate with for (i = 0; i < table->count; i++). */
const dl_tensor *dl_tensor_table_at(const dl_tensor_table *table, size_t i);

/* Elements and bytes the whole buffer needs (padding between views included, none after the last view). */
size_t dl_tensor_table_numel(const dl_tensor_table *table);
size_t dl_tensor_table_bytes(const dl_tensor_table *table);

/* The byte range of view i (padding excluded). Fails when i is out of range. */
dl_status dl_tensor_table_byte_range(const dl_tensor_table *table, size_t i, dl_byte_range *out);

/* The views whose bytes overlap [begin, end): indices first .. first + *count - 1 (count 0 when none, first then
 * the index of the first view after `begin`). For a gradient bucket or a ZeRO slice: the views it touches. Fails
 * when begin > end. */
dl_status dl_tensor_table_overlapping(const dl_tensor_table *table, dl_byte_range range, size_t *first, size_t *count);

/* Writes the table to `out`, one line per view (index, name, dtype, shape, offset, numel) and a total line, for
 * logs and `dealer ckpt show`. */
dl_status dl_tensor_table_print(const dl_tensor_table *table, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
