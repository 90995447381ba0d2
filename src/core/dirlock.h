/* dirlock.h — one writer per directory: an flock'ed lock file that names its holder.
 *
 *     dl_dir_lock lock;
 *     DL_CHECK(dl_dir_lock_acquire(&lock, "runs/x", "run.dir"));   // runs/x/run.lock now holds "host pid"
 *     ...
 *     dl_dir_lock_release(&lock);
 *
 * The kernel's flock is the authority: it is released when the holder exits however it exits (kill -9 included), so
 * a lock can never outlive its process. The host and PID written into the file only serve the messages: a second
 * writer is told who holds the directory, and a writer that finds the file naming a process that no longer holds
 * the lock (it was killed before it could clear the file) takes it over with a warning. */
#ifndef DL_CORE_DIRLOCK_H
#define DL_CORE_DIRLOCK_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The lock file's name inside the directory. */
#define DL_DIR_LOCK_NAME "run.lock"

typedef struct dl_dir_lock {
    int fd;      /* the open, flock'ed lock file; -1 when not held */
    char *path;  /* DIR/run.lock */
} dl_dir_lock;

/* Creates `dir` when missing and takes its lock without waiting. Held by another process: DL_ERR_INVALID (exit 2)
 * "WHAT DIR is in use by another run (pid P on host H)". Left behind by a process that ended without releasing it:
 * taken over, and *stale (may be NULL) gets "pid P on host H" for the caller's warning ("" otherwise). `what` names
 * the directory in messages ("run.dir"). */
dl_status dl_dir_lock_acquire(dl_dir_lock *lock, const char *dir, const char *what, char *stale, size_t stale_cap);

/* Clears the holder's line and drops the lock. Safe on a zeroed or released lock (fd 0 is never a lock: zeroed
 * locks have path NULL). */
void dl_dir_lock_release(dl_dir_lock *lock);

#ifdef __cplusplus
}
#endif

#endif
