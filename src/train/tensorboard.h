/* tensorboard.h — TensorBoard event files: the training curves `tensorboard --logdir RUN_DIR` shows.
 *
 * An event file (RUN_DIR/events.out.tfevents.<unix time>.<host>.<pid>.<n>) is a sequence of serialized
 * tensorflow.Event messages (proto/event.proto, proto/summary.proto: TensorFlow's field numbers) in TFRecord framing
 * (u64 length, masked CRC32C of the length, payload, masked CRC32C of the payload; data/record.h). The first event
 * carries file_version "brain.Event:2"; every later one a Summary of scalar values at a step:
 *
 *     dl_tb_writer *tb;
 *     DL_CHECK(dl_tb_open(&tb, run_dir));
 *     const char *tags[] = {"loss", "lr"};
 *     double values[] = {2.31, 3e-4};
 *     DL_CHECK(dl_tb_scalars(tb, step, 2, tags, values));   // one Event, flushed to the OS at once
 *     dl_tb_close(tb);
 *
 * Each event goes to the OS as soon as it is written (one write per step), so TensorBoard sees a live run and a
 * killed run loses nothing it logged. Nothing is fsynced: curves are worth less than a syscall stall per step.
 * Writers never share a file (the pid and a per-process counter are in the name); a resumed run starts a new file
 * and writes a SessionLog START at its first step, which makes TensorBoard drop the points older files hold from
 * that step on.
 *
 * The reader decodes a whole file (both CRCs of every record checked) into plain structs, for tests and tools. */
#ifndef DL_TRAIN_TENSORBOARD_H
#define DL_TRAIN_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_tb_writer dl_tb_writer;

/* Creates a new event file in `dir` (which must exist) and writes its file_version event. */
dl_status dl_tb_open(dl_tb_writer **writer, const char *dir);
/* The file's path (valid until close). */
const char *dl_tb_path(const dl_tb_writer *writer);
/* Writes one Event at `step` holding `count` scalar values (tags[i], values[i]); non-finite values are written as
 * they are (TensorBoard shows NaN and Inf). Tags must be non-empty. */
dl_status dl_tb_scalars(dl_tb_writer *writer, int64_t step, int count, const char *const *tags, const double *values);
/* Writes a SessionLog START event at `step`: the run (re)starts there. */
dl_status dl_tb_session_start(dl_tb_writer *writer, int64_t step);
/* Closes the file. NULL is allowed. */
void dl_tb_close(dl_tb_writer *writer);

/* One decoded event. kind says which part of the Event was set; tag/value only for DL_TB_SCALAR, which the reader
 * produces once per Summary value (an Event with three values gives three entries with the same step). */
typedef enum dl_tb_kind { DL_TB_FILE_VERSION = 1, DL_TB_SCALAR = 2, DL_TB_SESSION_START = 3, DL_TB_OTHER = 4 } dl_tb_kind;

typedef struct dl_tb_event {
    dl_tb_kind kind;
    double wall_time;
    int64_t step;
    char tag[128];   /* DL_TB_SCALAR: the tag; DL_TB_FILE_VERSION: the version string */
    double value;    /* DL_TB_SCALAR */
} dl_tb_event;

/* Reads every event of the file at `path` into a malloc'd array (*events, freed by the caller; *count entries).
 * A damaged or truncated record fails with DL_ERR_FORMAT naming the file, the record and its byte offset. */
dl_status dl_tb_read(const char *path, dl_tb_event **events, size_t *count);

#ifdef __cplusplus
}
#endif

#endif
