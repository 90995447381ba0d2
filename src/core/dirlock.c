/* dirlock.c — the flock'ed lock file of a directory (see dirlock.h).
 *
 * Why flock and not O_EXCL on a marker file: a marker outlives a killed process and must be cleaned by hand (or by
 * guessing from a PID, which the OS reuses); an flock dies with its process. The file itself stays in the directory
 * between runs, empty once released, so taking the lock never races with someone deleting it. */
#include "core/dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"

/* The holder's "host pid" line, or "" when the file is empty. */
static void read_holder(int fd, char *buf, size_t cap) {
    buf[0] = '\0';
    ssize_t n = pread(fd, buf, cap - 1, 0);
    if (n <= 0)
        return;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

/* "pid 123 on host h" from "h 123"; the raw text when it has another shape. */
static void describe_holder(const char *line, char *buf, size_t cap) {
    char host[256];
    long pid;
    if (sscanf(line, "%255s %ld", host, &pid) == 2)
        snprintf(buf, cap, "pid %ld on host %s", pid, host);
    else
        snprintf(buf, cap, "%s", line[0] ? line : "a process that left no name");
}

/* Closes the file without touching its content: for a lock this process never got. */
static void drop_unheld(dl_dir_lock *lock) {
    if (lock->fd >= 0)
        close(lock->fd);
    free(lock->path);
    lock->fd = -1;
    lock->path = NULL;
}

dl_status dl_dir_lock_acquire(dl_dir_lock *lock, const char *dir, const char *what, char *stale, size_t stale_cap) {
    DL_REQUIRE(lock && dir && *dir, DL_ERR_INVALID, "dl_dir_lock_acquire: no directory given");
    lock->fd = -1;
    lock->path = NULL;
    if (stale && stale_cap)
        stale[0] = '\0';
    const char *label = what ? what : "directory";
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s %s is a file, not a directory", label, dir);
        dl_error_hint("name a directory (it is created when missing)");
        return s;
    }
    DL_CHECK_CTX(dl_make_dirs(dir), "%s", label);
    lock->path = dl_path_join_suffix(dir, "/" DL_DIR_LOCK_NAME);
    DL_REQUIRE(lock->path != NULL, DL_ERR_NOMEM, "out of memory locking %s", dir);
    lock->fd = open(lock->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock->fd < 0) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot open the lock file %s: %s", lock->path, strerror(errno));
        drop_unheld(lock);
        return s;
    }
    char holder[512], described[600];
    int rc;
    while ((rc = flock(lock->fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
        int e = errno;
        dl_status s;
        if (e == EWOULDBLOCK) {
            read_holder(lock->fd, holder, sizeof holder);
            describe_holder(holder, described, sizeof described);
            s = DL_FAIL(DL_ERR_INVALID, "%s %s is in use by another run (%s; lock file %s)", label, dir, described,
                        lock->path);
            dl_error_hint("wait for that run to end, or give this one another %s", label);
        } else {
            s = DL_FAIL(DL_ERR_IO, "cannot lock %s: %s", lock->path, strerror(e));
        }
        drop_unheld(lock);
        return s;
    }
    /* Ours now. A line still in the file belongs to a process that died holding the lock. */
    read_holder(lock->fd, holder, sizeof holder);
    if (holder[0] && stale && stale_cap) {
        describe_holder(holder, described, sizeof described);
        snprintf(stale, stale_cap, "%s", described);
    }
    char host[256] = "unknown";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    char line[320];
    int n = snprintf(line, sizeof line, "%s %ld\n", host, (long)getpid());
    if (ftruncate(lock->fd, 0) != 0 || pwrite(lock->fd, line, (size_t)n, 0) != (ssize_t)n) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot write the lock file %s: %s", lock->path, strerror(errno));
        dl_dir_lock_release(lock);
        return s;
    }
    return DL_OK;
}

void dl_dir_lock_release(dl_dir_lock *lock) {
    if (!lock || !lock->path)
        return;
    if (lock->fd >= 0) {
        /* An empty file tells the next run that this one ended cleanly. */
        if (ftruncate(lock->fd, 0) != 0) {
            /* Nothing to do: the lock still drops with the close, and the next run only warns. */
        }
        close(lock->fd);
    }
    free(lock->path);
    lock->fd = -1;
    lock->path = NULL;
}
