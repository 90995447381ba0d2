/* status.h — status codes and error context.
 *
 * Every public dealer function returns a dl_status. The innermost failure records what went wrong and why
 * (DL_FAIL), each caller on the way up may prepend where it was (DL_CHECK_CTX), and the top of the program prints
 * one line:
 *
 *     dealer: error: loading checkpoint run/ckpt/step_00000100.h5: tensor /model/wte: CRC mismatch
 *         (stored 0x1a2b3c4d, computed 0x5e6f7a8b) (hint: the file is damaged; resume from an earlier step)
 *
 * The context lives in thread-local storage, so worker threads keep their own; it is plain data, never allocated.
 *
 *     dl_status load(const char *path) {
 *         FILE *f = fopen(path, "rb");
 *         if (!f) return DL_FAIL(DL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
 *         DL_CHECK_CTX(parse(f), "reading %s", path);
 *         ...
 *     }
 */
#ifndef DL_CORE_STATUS_H
#define DL_CORE_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* New codes go at the end; values are stable. */
typedef enum dl_status {
    DL_OK = 0,
    DL_ERR_INVALID = -1,         /* a bad argument or a bad value from the user (exit 2) */
    DL_ERR_CONFIG = -2,          /* a bad config file or override (exit 2) */
    DL_ERR_FORMAT = -3,          /* a malformed input file: record, checkpoint, text (exit 2) */
    DL_ERR_IO = -4,              /* the OS refused: open, read, write, fsync (exit 1) */
    DL_ERR_NOMEM = -5,           /* an allocation failed (exit 1) */
    DL_ERR_RUNTIME = -6,         /* a failure while running: NaN storm, diverged (exit 1) */
    DL_ERR_COMM = -7,            /* an MPI/NCCL failure or a watchdog timeout (exit 1) */
    DL_ERR_DEVICE = -8,          /* a CUDA/cuBLAS failure or a missing device (exit 1) */
    DL_ERR_UNSUPPORTED = -9,     /* valid but not supported by this build (exit 2) */
    DL_ERR_NOT_IMPLEMENTED = -10,/* a command a later release fills in (exit 2) */
    DL_ERR_INTERRUPTED = -11,    /* stopped by a signal after a clean checkpoint (exit code of its own) */
} dl_status;

/* The short name of a status ("invalid", "io", ...). */
const char *dl_status_name(dl_status status);

/* The process exit code for a status: 0 ok, 2 bad usage or input, 75 (DL_EXIT_REQUEUE in signals.h) stopped by a
 * signal after a clean checkpoint, 1 any other failure. */
int dl_status_exit_code(dl_status status);

/* Records the innermost failure (replacing any earlier one) and returns `status`, so it can be returned at once.
 * Use through DL_FAIL, which adds the source location. */
dl_status dl_error_set(dl_status status, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepends "context: " to the recorded message (e.g. the file or step being handled). */
void dl_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sets the "what to do" part printed after the message as "(hint: ...)". */
void dl_error_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The whole message on one line: context, message and hint. Empty when nothing failed. */
const char *dl_error_message(void);

/* Where the innermost failure was recorded ("src/data/record.c:120"), for debug logs. */
const char *dl_error_location(void);

/* The status of the recorded failure, DL_OK when none. */
dl_status dl_error_status(void);

/* Forgets the recorded failure (after handling it). */
void dl_error_clear(void);

#define DL_FAIL(status, ...) dl_error_set((status), __FILE__, __LINE__, __VA_ARGS__)

/* Returns the status of `expr` from the enclosing function when it failed. */
#define DL_CHECK(expr)                      \
    do {                                    \
        dl_status dl_check_s_ = (expr);     \
        if (dl_check_s_ != DL_OK)           \
            return dl_check_s_;             \
    } while (0)

/* Like DL_CHECK, prepending a context to the message. */
#define DL_CHECK_CTX(expr, ...)             \
    do {                                    \
        dl_status dl_check_s_ = (expr);     \
        if (dl_check_s_ != DL_OK) {         \
            dl_error_context(__VA_ARGS__);  \
            return dl_check_s_;             \
        }                                   \
    } while (0)

/* Fails with `status` and a message unless `cond` holds: for checking arguments at the top of a function. */
#define DL_REQUIRE(cond, status, ...)                 \
    do {                                              \
        if (!(cond))                                  \
            return DL_FAIL((status), __VA_ARGS__);    \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
