/* dataset.h — a dataset is an ordered list of record files seen as one array of records.
 *
 * Global record i lives in the file f with first[f] ≤ i < first[f + 1] at local index i − first[f]; first[] are the
 * running record counts, so locating a record is a binary search over the files. The files are opened (and their
 * indexes loaded) once; reading is random access through the record layer (record.h).
 *
 * The pipeline reads documents through a dl_doc_source, a table of three "decode record i" functions: a dataset of
 * record files provides one (dl_dataset_source), and tests and benchmarks provide their own over documents in
 * memory, so sharding, packing and the loader never depend on where documents come from.
 *
 * A dataset is opened from the value of a config key such as data.train: a comma-separated list of files and glob
 * patterns ("data/train-*.tfrecord,extra.tfrecord"), each pattern expanded in sorted order. A pattern matching
 * nothing, a file listed twice and a dataset without records are errors naming the files. */
#ifndef DL_DATA_DATASET_H
#define DL_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/example.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where documents come from: decode global record `record` (< num_records) into the given struct (reusing its
 * memory). A damaged record fails with DL_ERR_FORMAT and a message naming the file and byte offset; with
 * data.skip_corrupt the loader skips such records. Only the functions of the kind being loaded need be set.
 * A loader calls them from its prefetch thread; the dataset's own source is thread-safe (each call decodes into the
 * caller's struct), so several loaders may share one dataset. */
typedef struct dl_doc_source {
    void *ctx;
    uint64_t num_records;
    const char *name; /* the files, for messages ("a.tfrecord, b.tfrecord") */
    dl_status (*read_tokens)(void *ctx, uint64_t record, dl_i32_array *tokens);
    dl_status (*read_click)(void *ctx, uint64_t record, dl_click_row *row);
    dl_status (*read_pair)(void *ctx, uint64_t record, dl_pref_pair *pair);
    /* Optional: record will be read soon (stage 0: where it is; stage 1: its bytes); changes nothing. */
    void (*prefetch)(void *ctx, uint64_t record, int stage);
} dl_doc_source;

typedef struct dl_dataset dl_dataset;

/* Opens the record files `paths[0..count)` (taken as they are, no glob expansion). */
dl_status dl_dataset_open(dl_dataset **dataset, const char *const *paths, size_t count);
/* dl_dataset_open, with `source` naming where the user gave the files ("data.valid", "dealer predict's DATA
 * argument") so that a hint says what to change; NULL gives a hint that names no setting. */
dl_status dl_dataset_open_as(dl_dataset **dataset, const char *const *paths, size_t count, const char *source);
/* Opens a comma-separated list of files and glob patterns (the value of data.train / data.valid). */
dl_status dl_dataset_open_spec(dl_dataset **dataset, const char *spec);
/* Closes the files; NULL is allowed. */
void dl_dataset_close(dl_dataset *dataset);

/* Records in all files together. */
uint64_t dl_dataset_count(const dl_dataset *dataset);
/* Files, in the order their records are numbered. */
size_t dl_dataset_num_files(const dl_dataset *dataset);
/* Path and record count of file `file` (NULL / 0 past the end). */
const char *dl_dataset_file_path(const dl_dataset *dataset, size_t file);
uint64_t dl_dataset_file_count(const dl_dataset *dataset, size_t file);
/* The files for messages: "a.tfrecord, b.tfrecord" (the first few, then "and N more"). */
const char *dl_dataset_name(const dl_dataset *dataset);

/* The file and local index of global record `record`. */
dl_status dl_dataset_locate(const dl_dataset *dataset, uint64_t record, size_t *file, uint64_t *local);
/* The payload of global record `record`, checked by CRC; *payload points into the file mapping (valid until
 * close). */
dl_status dl_dataset_view(const dl_dataset *dataset, uint64_t record, const uint8_t **payload, size_t *length);

/* A document source over this dataset (ctx = the dataset). The dataset must outlive the source. */
void dl_dataset_source(dl_dataset *dataset, dl_doc_source *source);

#ifdef __cplusplus
}
#endif

#endif
