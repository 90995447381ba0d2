/* progress.h — a one-line progress bar on stderr for long jobs (converting, indexing).
 *
 *     convert  [#########.........]  48%  53.2 MB/110.4 MB  21.0 MB/s  3,512 records  ETA 0:03
 *
 * Drawn only when stderr is a terminal, and at most ten times a second, so calling dl_progress_update for every
 * record is cheap and logs or pipes never fill with carriage returns. DEALER_PROGRESS=0 turns it off on a terminal
 * too. With an unknown total (reading a pipe) it shows the amount, rate and count without a bar or ETA. */
#ifndef DL_CORE_PROGRESS_H
#define DL_CORE_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_progress {
    int enabled;        /* drawing at all (stderr is a TTY) */
    int bytes;          /* amounts are bytes (shown as kB/MB/GB) rather than plain counts */
    const char *label;  /* shown first; the caller keeps it alive */
    const char *items;  /* name of the secondary count ("records"), NULL for none */
    uint64_t total;     /* 0 when unknown */
    uint64_t done;
    uint64_t count;
    double start;
    double last_draw;
    int drawn;          /* something is on the line (end prints a newline) */
} dl_progress;

/* Starts a bar: `total` amount expected (0 = unknown), `bytes` whether amounts are bytes, `items` the secondary
 * count's name or NULL. Decides once whether stderr is a TTY. */
void dl_progress_begin(dl_progress *p, const char *label, uint64_t total, int bytes, const char *items);
/* Reports progress: `done` of the total, `count` items so far. Redraws when 0.1 s passed since the last draw. */
void dl_progress_update(dl_progress *p, uint64_t done, uint64_t count);
/* Draws the final state and ends the line (nothing when never drawn). */
void dl_progress_end(dl_progress *p);

/* Formats one line into buf (always NUL-terminated) for `elapsed` seconds: the drawing above, exposed so tests can
 * check it without a terminal. `width` is the bar's width in characters. Returns the length written. */
size_t dl_progress_format(char *buf, size_t cap, const char *label, uint64_t done, uint64_t total, int bytes,
                          const char *items, uint64_t count, double elapsed, int width);

#ifdef __cplusplus
}
#endif

#endif
