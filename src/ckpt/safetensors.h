/* safetensors.h — reading and writing the safetensors format (Hugging Face, PyTorch) without Python.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON, then the tensors' raw little-endian bytes.
 * The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the end of
 * the header) and may hold "__metadata__", a map of strings. This module is the one place that parses or writes that
 * layout: `dealer ckpt export` (dealer names or Hugging Face GPT-2 names), `dealer ckpt import` and
 * `model.init_from` all go through it.
 *
 * The reader trusts nothing in the file: a header longer than the file, an entry whose byte range does not match its
 * dtype and shape, ranges that leave the data section or overlap, an unknown dtype — each is DL_ERR_FORMAT naming the
 * file and the tensor. Tensors are read one at a time (pread), so a 500 MB file never sits in memory twice. F32 is
 * read as is; F16, BF16 and F64 are converted to float32 on reading (Hugging Face publishes many models in half
 * precision).
 *
 * The writer streams: dl_st_write_begin takes every tensor's name and shape (the header comes first), then
 * dl_st_write_tensor is called once per tensor, in the same order, with its float32 data, and dl_st_write_commit
 * renames the finished file into place (core/fs.h atomic write: a failure leaves no partial file). */
#ifndef DL_CKPT_SAFETENSORS_H
#define DL_CKPT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/fs.h"
#include "core/status.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_st_dtype { DL_ST_F32 = 0, DL_ST_F16 = 1, DL_ST_BF16 = 2, DL_ST_F64 = 3, DL_ST_OTHER = 4 } dl_st_dtype;

enum { DL_ST_MAX_DIMS = 8, DL_ST_NAME_MAX = 256 };

/* One tensor of a safetensors file. */
typedef struct dl_st_tensor {
    char name[DL_ST_NAME_MAX];
    dl_st_dtype dtype;
    char dtype_name[16];      /* as the file spells it ("F32", "I64", ...) */
    int ndim;
    size_t shape[DL_ST_MAX_DIMS];
    size_t numel;
    uint64_t begin, end;      /* byte range in the data section */
} dl_st_tensor;

typedef struct dl_st_file dl_st_file;

/* Opens and validates a safetensors file (header and every entry's byte range); the tensors are not read yet. */
dl_status dl_st_open(dl_st_file **file, const char *path);
void dl_st_close(dl_st_file *file);
const char *dl_st_path(const dl_st_file *file);
size_t dl_st_count(const dl_st_file *file);
/* The i-th tensor in the order of the header (NULL when i >= count). */
const dl_st_tensor *dl_st_at(const dl_st_file *file, size_t i);
/* The tensor named `name`, NULL when there is none. */
const dl_st_tensor *dl_st_find(const dl_st_file *file, const char *name);
/* A string of __metadata__, NULL when absent. */
const char *dl_st_metadata(const dl_st_file *file, const char *key);
/* Reads tensor t whole into out (t->numel floats), converting F16/BF16/F64 to float32. A dtype that is not a float
 * is DL_ERR_FORMAT naming it. */
dl_status dl_st_read_f32(dl_st_file *file, const dl_st_tensor *t, float *out);
/* "[768, 2304]": the shape as text (for messages). */
const char *dl_st_shape_str(const dl_st_tensor *t, char *buf, size_t cap);

/* One tensor to write: float32 data, row-major. */
typedef struct dl_st_entry {
    const char *name;
    int ndim;
    size_t shape[DL_ST_MAX_DIMS];
} dl_st_entry;

typedef struct dl_st_writer {
    dl_atomic_file out;
    size_t count, next;
    uint64_t *bytes;       /* per entry, to check each dl_st_write_tensor call */
    uint64_t data_bytes;   /* total */
    int open;
} dl_st_writer;

/* Starts writing `path` (PATH.tmp until commit): the header with every entry (F32) and `meta_count` __metadata__
 * pairs meta_keys[i] -> meta_values[i] (strings). Names must be unique and non-empty. */
dl_status dl_st_write_begin(dl_st_writer *w, const char *path, const dl_st_entry *entries, size_t count,
                            const char *const *meta_keys, const char *const *meta_values, size_t meta_count);
/* Writes the next entry's data (numel floats of the shape given to begin). */
dl_status dl_st_write_tensor(dl_st_writer *w, const float *data, size_t numel);
/* Renames the finished file into place; fails when a tensor is missing. */
dl_status dl_st_write_commit(dl_st_writer *w);
/* Drops the partial file (safe after a failed call, and after commit). */
void dl_st_write_abort(dl_st_writer *w);

#ifdef __cplusplus
}
#endif

#endif
