/* fs.h — checked file operations and atomic (crash-safe) file writes.
 *
 * Every helper returns a dl_status whose message names the path and the OS error (strerror(errno)), so callers never
 * format errno themselves. Files users keep (records, indexes, checkpoints) are written atomically:
 *
 *     dl_atomic_file f;
 *     DL_CHECK(dl_atomic_open(&f, "out/train.tfrecord"));     // writes go to out/train.tfrecord.tmp.HOST-PID-XXXXXX
 *     ... dl_atomic_write(&f, data, n) ...                     // on failure: dl_atomic_abort(&f) removes the .tmp
 *     DL_CHECK(dl_atomic_commit(&f));                          // flush, fsync, rename, fsync the directory
 *
 * After commit returns, the file is on disk under its final name even if the machine loses power; before, the final
 * name holds the previous version (or nothing). Every writer has a temporary file of its own (mkstemp in the target
 * directory, named PATH.tmp.HOST-PID-XXXXXX), so two writers of one PATH never write into each other's bytes: the
 * last rename wins with a whole file. A crash may leave a temporary behind; the next writer of PATH on the same
 * host removes those whose process is gone (and the plain PATH.tmp of earlier releases).
 *
 * Failures can be injected for tests (core/fault.h: DEALER_FAULT=write|fsync|rename:RANK:NTH). */
#ifndef DL_CORE_FS_H
#define DL_CORE_FS_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An atomic write in progress. Plain data: lives on the caller's stack or inside another struct. */
typedef struct dl_atomic_file {
    FILE *fp;        /* the open PATH.tmp, NULL once committed or aborted */
    char *path;      /* final name */
    char *tmp_path;  /* PATH.tmp */
    uint64_t written;
} dl_atomic_file;

/* Creates directory `path` and any missing parents (mkdir -p, mode 0755). An empty path is DL_ERR_INVALID; a
 * directory the OS refuses is DL_ERR_IO naming it. */
dl_status dl_make_dirs(const char *path);

/* The failure for an input file that could not be opened (errno `err`): a path that names nothing (ENOENT,
 * ENOTDIR, EISDIR, ENAMETOOLONG) is bad input (DL_ERR_INVALID, exit 2); anything else the OS refused is DL_ERR_IO.
 * `hint` (may be NULL) becomes the message's hint for the bad-path case. */
dl_status dl_open_failure(const char *path, int err, const char *hint);

/* Refuses to write `output` over an input: DL_ERR_INVALID (exit 2) when `output`, or the index `output`.idx written
 * beside record files, is the same file as `input` (same device and inode, so symlinks, "./" and hard links are
 * seen through). Paths that do not exist never match. An output that is a directory is refused too. `output_what`
 * names the output in the message ("-o"). Every command that writes a file from inputs calls it before it opens
 * anything. */
dl_status dl_check_output_not_input(const char *output, const char *input, const char *output_what);

/* An input path that names nothing or a directory is bad input: DL_ERR_INVALID (exit 2) naming it, with `hint`
 * (may be NULL). Other files pass (a FIFO or "-" are the caller's business). */
dl_status dl_check_input_file(const char *path, const char *hint);

/* Creates (truncating) PATH.tmp for writing. On failure nothing is left open and f needs no abort. */
dl_status dl_atomic_open(dl_atomic_file *f, const char *path);
/* Appends len bytes (buffered). */
dl_status dl_atomic_write(dl_atomic_file *f, const void *data, size_t len);
/* Flushes, fsyncs and closes PATH.tmp, renames it to PATH and fsyncs PATH's directory. On failure the .tmp is
 * removed and the final name is untouched. Always releases f. */
dl_status dl_atomic_commit(dl_atomic_file *f);
/* Closes and removes PATH.tmp and releases f. Safe on a zeroed, committed or already aborted f. */
void dl_atomic_abort(dl_atomic_file *f);

/* Writes a whole buffer to PATH atomically (open + write + commit). */
dl_status dl_write_file_atomic(const char *path, const void *data, size_t len);

/* Writes all len bytes of buf to fd with write(2) (retrying on EINTR); an injected DEALER_FAULT write counts as a
 * failure. On failure the file is cut back to `keep` bytes and the offset moved there, so an append-only record file
 * (metrics.jsonl, TensorBoard events) still ends with whole records. Returns 0, or the errno of the failure. */
int dl_write_whole_or_cut(int fd, const void *buf, size_t len, off_t keep);

/* Opens path read-only as a regular file (*fd, and its stat in *st when st is not NULL). A missing or unreadable
 * path is dl_open_failure's error with `hint`; a directory or other non-regular file is DL_ERR_INVALID "PATH is a
 * directory, not WHAT" (or "is not a regular file, not WHAT"), with `hint` too. */
dl_status dl_open_regular(const char *path, const char *what, const char *hint, int *fd, struct stat *st);

/* Reads a whole file into a fresh malloc'd buffer (*data, freed by the caller; NUL-terminated one byte past *len so
 * text can be parsed in place). Fails with DL_ERR_IO naming the path. */
dl_status dl_read_file(const char *path, uint8_t **data, size_t *len);

/* Creates a new, empty temporary file next to PATH for one writer: PATH.tmp.HOST-PID-XXXXXX (mkstemp), with the
 * permissions a plain create gives, after removing the leftovers of dead writers of PATH on this host. *tmp_path is
 * malloc'd (the caller frees it) and *fd open for writing (the caller closes it). */
dl_status dl_tmp_create(const char *path, char **tmp_path, int *fd);
/* Whether directory entry `name` is a leftover temporary of a writer of `base` (a file name, no directory) that
 * is gone: `base`.tmp, or `base`.tmp.HOST-PID-XXXXXX of this host whose PID no longer runs. */
int dl_tmp_name_is_stale(const char *name, const char *base);

/* Bytes available to this user on the file system holding `path` (statvfs: f_bavail · f_frsize). */
dl_status dl_free_space(const char *path, uint64_t *bytes);

/* fopen that fails with DL_ERR_IO naming the path and errno. */
dl_status dl_fopen(FILE **fp, const char *path, const char *mode);
/* Reads exactly n bytes; a short read is DL_ERR_FORMAT ("PATH: truncated: wanted N bytes at byte OFF, got M") and an
 * OS error is DL_ERR_IO. `path` is only used in messages. */
dl_status dl_fread_exact(FILE *fp, void *buf, size_t n, const char *path);
/* Writes exactly n bytes or fails with DL_ERR_IO naming the path. */
dl_status dl_fwrite_all(FILE *fp, const void *buf, size_t n, const char *path);
/* pread of exactly n bytes at offset from fd; EINTR and short reads are retried. Reaching end of file first is
 * DL_ERR_FORMAT, an OS error DL_ERR_IO. */
dl_status dl_pread_exact(int fd, void *buf, size_t n, uint64_t offset, const char *path);

/* fsyncs the directory holding PATH so a rename or create in it is durable. */
dl_status dl_fsync_parent_dir(const char *path);
/* fsyncs FROM, renames it to TO and fsyncs TO's directory: commits a file written by other means (e.g. HDF5). */
dl_status dl_rename_durable(const char *from, const char *to);
/* Renames FROM to TO (atomically, replacing TO) with no fsync: complete for every other process at once, durable
 * only once the kernel writes it back. */
dl_status dl_rename_file(const char *from, const char *to);
/* Removes PATH; a missing file is not an error. */
dl_status dl_remove_if_exists(const char *path);

/* Size of PATH in bytes. */
dl_status dl_file_size(const char *path, uint64_t *size);

/* A malloc'd "A" "B" concatenation (e.g. path + ".idx"); NULL when out of memory. */
char *dl_path_join_suffix(const char *path, const char *suffix);

#ifdef __cplusplus
}
#endif

#endif
