/* record.h — TFRecord files: the framing every dealer dataset is stored in, and its sidecar index.
 *
 * A record is   u64 length (little endian) | u32 masked CRC32C of those 8 bytes | payload | u32 masked CRC32C of
 * the payload,  with TensorFlow's mask ((crc >> 15 | crc << 17) + 0xa282ead8). TensorFlow's TFRecordDataset reads
 * what dealer writes and the other way round. The payload is a serialized tf.train.Example (example.h).
 *
 * FILE.idx, written beside FILE.tfrecord, holds the byte offset of every record so a reader can seek to record i
 * (shuffling, sharding) without scanning; see docs/data-format.md for its layout. A missing index is rebuilt by a
 * scan (dealer data index). */
#ifndef DL_DATA_RECORD_H
#define DL_DATA_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CRC32C (Castagnoli), hardware SSE4.2 instruction where the CPU has it. */
uint32_t dl_crc32c(uint32_t crc, const void *data, size_t len);
/* TensorFlow's masked form stored in record files. */
uint32_t dl_crc32c_mask(uint32_t crc);

/* ---- writing ---------------------------------------------------------------------------------------------------
 * Records go to PATH.tmp; close flushes, fsyncs and renames it to PATH and writes PATH.idx the same way, so a
 * crash never leaves a half-written file under the final name. */
typedef struct dl_record_writer dl_record_writer;
dl_status dl_record_writer_open(dl_record_writer **writer, const char *path);
dl_status dl_record_writer_append(dl_record_writer *writer, const void *payload, size_t len);
uint64_t dl_record_writer_count(const dl_record_writer *writer);
dl_status dl_record_writer_close(dl_record_writer *writer);
/* Drops the .tmp file (after an error). */
void dl_record_writer_abort(dl_record_writer *writer);

/* ---- reading ---------------------------------------------------------------------------------------------------
 * Random access by record number through the index. Errors name the file and byte offset:
 *   "data/train.tfrecord: record 17 at byte 4096: payload CRC mismatch (hint: ...)". */
typedef struct dl_record_file dl_record_file;
/* Opens PATH and its index (built by scanning when PATH.idx is missing or older than PATH). */
dl_status dl_record_file_open(dl_record_file **file, const char *path);
void dl_record_file_close(dl_record_file *file);
uint64_t dl_record_file_count(const dl_record_file *file);
const char *dl_record_file_path(const dl_record_file *file);
/* Reads record `index` into *buffer (grown with realloc as needed; *capacity tracks its size), checking both CRCs.
 * A damaged record fails with DL_ERR_FORMAT. Safe to call from one thread per dl_record_file. */
dl_status dl_record_file_read(dl_record_file *file, uint64_t index, uint8_t **buffer, size_t *capacity,
                              size_t *length);

/* Scans PATH from the start and writes PATH.idx; *count gets the number of records. */
dl_status dl_record_index_build(const char *path, uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif
