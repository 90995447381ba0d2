/* run_records.h — what a run leaves for people and tools besides its checkpoints: metrics.jsonl, TensorBoard events
 * and the step log on standard output, all written by rank 0.
 *
 * A failed write does not end the step that made it: the first failure is remembered (later records are then not
 * written at all), the trainer carries it to every rank on the next step's all-reduce, every rank checkpoints, and
 * the run stops with this message. Curves that silently end, or a metrics file cut mid-line, are losses a user
 * finds out about too late; a stop with a checkpoint loses nothing.
 *
 *     dl_run_records rec;
 *     dl_run_records_init(&rec);
 *     DL_CHECK(dl_run_records_open(&rec, "runs/x", 1, 1, resumed_step));
 *     dl_run_records_line(&rec, step, "{\"step\": 1, ...}\n", len);
 *     if (rec.failed) ... stop, with rec.error ...
 *     dl_run_records_close(&rec);
 *
 * JSON figures: JSON has no NaN or Infinity, so a non-finite figure is written as null and the record's "reason"
 * says which figure it was and what it held (a -1 or a huge number would read as a real value to a plot). */
#ifndef DL_TRAIN_RUN_RECORDS_H
#define DL_TRAIN_RUN_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "train/tensorboard.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_run_records {
    int metrics_fd;          /* metrics.jsonl opened for appending; -1 when not written */
    char metrics_path[4200];
    dl_tb_writer *tb;        /* NULL when not written */
    int failed;              /* the first failed write, whose message is in error */
    char error[1200];
} dl_run_records;

/* Nothing open, nothing failed (the state of a rank that writes no records). */
void dl_run_records_init(dl_run_records *records);
/* Opens RUN_DIR/metrics.jsonl (jsonl) for appending and the TensorBoard events (tensorboard); a run resumed after
 * `resumed_step` > 0 starts a TensorBoard session there, so the steps it redoes replace the older ones. */
dl_status dl_run_records_open(dl_run_records *records, const char *run_dir, int jsonl, int tensorboard,
                              int64_t resumed_step);
void dl_run_records_close(dl_run_records *records);

/* Appends one whole line to metrics.jsonl with one write(2) (a line the disk cannot take is cut off again, so the
 * file keeps ending with whole lines); len 0 writes nothing. A no-op without the file or after a failure. */
void dl_run_records_line(dl_run_records *records, int64_t step, const char *line, size_t len);
/* TensorBoard scalars at `step`. A no-op without events or after a failure. */
void dl_run_records_scalars(dl_run_records *records, int64_t step, int n, const char *const *tags,
                            const double *values);
/* Flushes the step log on stdout; a stdout that cannot take it (a full disk under `> train.log`) is a failure. */
void dl_run_records_flush_stdout(dl_run_records *records, int64_t step);
/* Whether stdout is a terminal a person watches (a progress bar runs between logged lines). Under mpirun or srun a
 * rank's stdout is a pseudo-terminal of the launcher even when the job's output goes to a file, so launched ranks
 * answer no unless DEALER_PROGRESS=1; DEALER_PROGRESS=0 says no everywhere. */
int dl_run_records_terminal(void);

typedef struct dl_json_figures {
    char reason[256];
    size_t used;
    char slots[12][32];
    int next;
} dl_json_figures;

/* v as JSON ("%.6g", or null for a non-finite v, which the reason then names). The text lives in one of 12 slots
 * of f, reused in turn: use it before asking for a 13th figure. */
const char *dl_json_figure(dl_json_figures *f, const char *name, double v);
/* ", \"reason\": \"...\"" when a figure was not finite, "" otherwise. */
void dl_json_reason(const dl_json_figures *f, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
