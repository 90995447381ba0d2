/* record.h — TFRecord files: the framing every dealer dataset is stored in, and its sidecar index.
 *
 * A record is   u64 length (little endian) | u32 masked CRC32C of those 8 bytes | payload | u32 masked CRC32C of
 * the payload,  with TensorFlow's mask ((crc >> 15 | crc << 17) + 0xa282ead8). TensorFlow's TFRecordDataset reads
 * what dealer writes and the other way round. The payload is a serialized tf.train.Example (example.h).
 *
 * PATH.idx (the record file's full name plus ".idx": train.tfrecord -> train.tfrecord.idx), written beside it,
 * holds the byte offset of every record so a reader can seek to record i (shuffling, sharding) without scanning;
 * docs/data-format.md gives its layout (magic, version, count, data file size, u64 offsets, CRC). A reader that
 * finds the index missing, older than the data, or not matching it (size, CRC, offsets) does not fail: it scans the
 * file once into memory, logs a warning suggesting `dealer data index PATH`, and reads on. It never writes the
 * index itself (many ranks open the same file at once, and data directories may be read-only). */
#ifndef DL_DATA_RECORD_H
#define DL_DATA_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "core/crc32c.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif


/* Framing overhead per record: 8-byte length, 4-byte length CRC, 4-byte payload CRC. */
#define DL_RECORD_OVERHEAD 16u

/* ---- writing ---------------------------------------------------------------------------------------------------
 * Records go to a temporary of this writer (PATH.tmp.HOST-PID-XXXXXX, core/fs.h); close flushes, fsyncs and
 * renames it to PATH and writes PATH.idx the same way, so a crash never leaves a half-written file under the final
 * name, and two writers of one PATH never share a file. */
typedef struct dl_record_writer dl_record_writer;
/* Creates the writer's temporary next to PATH (removing leftovers of dead writers). */
dl_status dl_record_writer_open(dl_record_writer **writer, const char *path);
/* Appends one framed record (len may be 0). */
dl_status dl_record_writer_append(dl_record_writer *writer, const void *payload, size_t len);
/* Records appended so far. */
uint64_t dl_record_writer_count(const dl_record_writer *writer);
/* Bytes written so far (framing included): the record file's size after close. */
uint64_t dl_record_writer_bytes(const dl_record_writer *writer);
/* Commits PATH then PATH.idx (any old PATH.idx is removed first, so a crash in between leaves no stale index).
 * Always frees the writer; on failure the temporary is removed. */
dl_status dl_record_writer_close(dl_record_writer *writer);
/* Drops the temporary (after an error) and frees the writer. NULL is allowed. */
void dl_record_writer_abort(dl_record_writer *writer);

/* ---- reading ---------------------------------------------------------------------------------------------------
 * Random access by record number through the index. The data file (and a valid index) are memory-mapped
 * read-only, so reading a record is two CRC checks and a copy, with no system call, and ranks on one machine share
 * the page cache. Errors name the file, the record number and its byte offset:
 *   "data/train.tfrecord: record 17 at byte 4096: payload CRC mismatch (stored 0x..., computed 0x...)". */
typedef struct dl_record_file dl_record_file;
/* Opens PATH and its index (scanned into memory when PATH.idx is missing, older than PATH or does not match it).
 * A scan that meets a damaged or truncated record fails with DL_ERR_FORMAT. */
dl_status dl_record_file_open(dl_record_file **file, const char *path);
/* Unmaps and frees; NULL is allowed. Views returned by dl_record_file_view die with it. */
void dl_record_file_close(dl_record_file *file);
uint64_t dl_record_file_count(const dl_record_file *file);
const char *dl_record_file_path(const dl_record_file *file);
/* Byte offset of record `index` in the file, for cursors and messages; index == count gives the file size. */
uint64_t dl_record_file_offset(const dl_record_file *file, uint64_t index);
/* 1 when the records came from a valid PATH.idx, 0 when the file was scanned because it was missing or stale. */
int dl_record_file_indexed(const dl_record_file *file);
/* Reads record `index` into *buffer (grown with realloc as needed; *capacity tracks its size), checking both CRCs.
 * A damaged record fails with DL_ERR_FORMAT. The file is read-only after open, so any number of threads may read
 * the same dl_record_file at once (each with its own buffer). */
dl_status dl_record_file_read(dl_record_file *file, uint64_t index, uint8_t **buffer, size_t *capacity,
                              size_t *length);
/* Like dl_record_file_read without the copy: *payload points into the mapping (valid until close). */
dl_status dl_record_file_view(dl_record_file *file, uint64_t index, const uint8_t **payload, size_t *length);
/* A hint that record `index` will be viewed soon; changes nothing and checks nothing. Stage 0 asks for its index
 * entry, stage 1 for its bytes (reading the entry, which stage 0 brought in earlier): in a shuffled order every
 * record is a cache miss twice over, which the loader hides by asking a few records ahead. */
void dl_record_file_prefetch(const dl_record_file *file, uint64_t index, int stage);

/* Scans PATH from the start, checking every record, and writes PATH.idx atomically; *count (may be NULL) gets
 * the number of records. */
dl_status dl_record_index_build(const char *path, uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif
