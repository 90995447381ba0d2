/* fs.c — checked file I/O and atomic writes (see fs.h).
 *
 * Atomic writes use the classic sequence: write PATH.tmp, fflush, fsync, close, rename over PATH, fsync the
 * directory. rename is atomic within one file system, so readers see the old file or the new one, never a mix; the
 * two fsyncs make the data and then the directory entry durable, in that order. Writes go through stdio with a 1 MiB
 * buffer: record writers append many small pieces and a syscall per record would dominate. */
#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DL_FS_WRITE_BUFFER = 1 << 20 };

char *dl_path_join_suffix(const char *path, const char *suffix) {
    size_t a = strlen(path), b = strlen(suffix);
    char *out = malloc(a + b + 1);
    if (!out)
        return NULL;
    memcpy(out, path, a);
    memcpy(out + a, suffix, b + 1);
    return out;
}

static void atomic_release(dl_atomic_file *f) {
    free(f->path);
    free(f->tmp_path);
    f->path = NULL;
    f->tmp_path = NULL;
    f->fp = NULL;
}

dl_status dl_atomic_open(dl_atomic_file *f, const char *path) {
    DL_REQUIRE(f && path && *path, DL_ERR_INVALID, "dl_atomic_open: no path given");
    memset(f, 0, sizeof *f);
    f->path = dl_path_join_suffix(path, "");
    f->tmp_path = dl_path_join_suffix(path, ".tmp");
    if (!f->path || !f->tmp_path) {
        atomic_release(f);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory opening %s", path);
    }
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp) {
        int e = errno;
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot create %s: %s", f->tmp_path, strerror(e));
        if (e == ENOENT)
            dl_error_hint("create the output directory first");
        else if (e == EACCES || e == EROFS)
            dl_error_hint("the output directory is not writable");
        atomic_release(f);
        return s;
    }
    /* A bigger stdio buffer: NULL lets stdio allocate (and free) it itself. */
    setvbuf(f->fp, NULL, _IOFBF, DL_FS_WRITE_BUFFER);
    return DL_OK;
}

dl_status dl_atomic_write(dl_atomic_file *f, const void *data, size_t len) {
    DL_REQUIRE(f && f->fp, DL_ERR_INVALID, "dl_atomic_write: the file is not open");
    DL_REQUIRE(data || len == 0, DL_ERR_INVALID, "dl_atomic_write: NULL data");
    if (len && fwrite(data, 1, len, f->fp) != len) {
        int e = errno;
        dl_status s = DL_FAIL(DL_ERR_IO, "writing %s at byte %llu: %s", f->tmp_path, (unsigned long long)f->written,
                              strerror(e));
        if (e == ENOSPC)
            dl_error_hint("the disk is full");
        return s;
    }
    f->written += len;
    return DL_OK;
}

dl_status dl_atomic_commit(dl_atomic_file *f) {
    DL_REQUIRE(f && f->fp, DL_ERR_INVALID, "dl_atomic_commit: the file is not open");
    dl_status s = DL_OK;
    if (fflush(f->fp) != 0)
        s = DL_FAIL(DL_ERR_IO, "writing %s: %s", f->tmp_path, strerror(errno));
    else if (fsync(fileno(f->fp)) != 0)
        s = DL_FAIL(DL_ERR_IO, "fsync %s: %s", f->tmp_path, strerror(errno));
    if (fclose(f->fp) != 0 && s == DL_OK)
        s = DL_FAIL(DL_ERR_IO, "closing %s: %s", f->tmp_path, strerror(errno));
    f->fp = NULL;
    if (s == DL_OK && rename(f->tmp_path, f->path) != 0)
        s = DL_FAIL(DL_ERR_IO, "renaming %s to %s: %s", f->tmp_path, f->path, strerror(errno));
    if (s != DL_OK) {
        unlink(f->tmp_path);
        atomic_release(f);
        return s;
    }
    s = dl_fsync_parent_dir(f->path);
    atomic_release(f);
    return s;
}

void dl_atomic_abort(dl_atomic_file *f) {
    if (!f)
        return;
    if (f->fp) {
        fclose(f->fp);
        f->fp = NULL;
        if (f->tmp_path)
            unlink(f->tmp_path);
    }
    atomic_release(f);
}

dl_status dl_write_file_atomic(const char *path, const void *data, size_t len) {
    dl_atomic_file f;
    DL_CHECK(dl_atomic_open(&f, path));
    dl_status s = dl_atomic_write(&f, data, len);
    if (s != DL_OK) {
        dl_atomic_abort(&f);
        return s;
    }
    return dl_atomic_commit(&f);
}

dl_status dl_make_dirs(const char *path) {
    DL_REQUIRE(path != NULL, DL_ERR_INVALID, "dl_make_dirs: NULL path");
    char buffer[4096];
    size_t len = strlen(path);
    DL_REQUIRE(len > 0 && len < sizeof buffer, DL_ERR_INVALID, "directory path '%s' is empty or too long", path);
    memcpy(buffer, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buffer[i] != '/' && buffer[i] != '\0')
            continue;
        char saved = buffer[i];
        buffer[i] = '\0';
        if (mkdir(buffer, 0755) != 0 && errno != EEXIST)
            return DL_FAIL(DL_ERR_IO, "cannot create directory %s: %s", buffer, strerror(errno));
        buffer[i] = saved;
    }
    return DL_OK;
}

dl_status dl_open_failure(const char *path, int err, const char *hint) {
    int bad_path = err == ENOENT || err == ENOTDIR || err == EISDIR || err == ENAMETOOLONG;
    dl_status s = DL_FAIL(bad_path ? DL_ERR_INVALID : DL_ERR_IO, "cannot open %s: %s", path, strerror(err));
    if (bad_path && hint)
        dl_error_hint("%s", hint);
    return s;
}

/* Same device and inode: the one test that sees through symlinks, "./", "a/../a" and hard links alike. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

dl_status dl_check_output_not_input(const char *output, const char *input, const char *output_what) {
    DL_REQUIRE(output && input, DL_ERR_INVALID, "dl_check_output_not_input: NULL path");
    const char *what = output_what ? output_what : "the output";
    struct stat st;
    if (stat(output, &st) == 0 && S_ISDIR(st.st_mode)) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s %s is a directory", what, output);
        dl_error_hint("name the file to write");
        return s;
    }
    if (same_file(output, input)) {
        dl_status s = strcmp(output, input) == 0
                          ? DL_FAIL(DL_ERR_INVALID, "%s %s is also an input: writing it would destroy the input", what,
                                    output)
                          : DL_FAIL(DL_ERR_INVALID, "%s %s is the input %s under another name: writing it would "
                                    "destroy the input", what, output, input);
        dl_error_hint("write to another file");
        return s;
    }
    /* The sidecar index written beside record outputs. */
    char *index = dl_path_join_suffix(output, ".idx");
    DL_REQUIRE(index != NULL, DL_ERR_NOMEM, "out of memory checking %s", output);
    int clash = same_file(index, input);
    dl_status s = DL_OK;
    if (clash) {
        s = DL_FAIL(DL_ERR_INVALID, "%s %s would write its index %s over the input %s", what, output, index, input);
        dl_error_hint("write to another file");
    }
    free(index);
    return s;
}

dl_status dl_check_input_file(const char *path, const char *hint) {
    DL_REQUIRE(path, DL_ERR_INVALID, "dl_check_input_file: NULL path");
    struct stat st;
    if (stat(path, &st) != 0)
        return dl_open_failure(path, errno, hint);
    if (S_ISDIR(st.st_mode)) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s is a directory, not a file", path);
        if (hint)
            dl_error_hint("%s", hint);
        return s;
    }
    return DL_OK;
}

dl_status dl_fopen(FILE **fp, const char *path, const char *mode) {
    DL_REQUIRE(fp && path && mode, DL_ERR_INVALID, "dl_fopen: NULL argument");
    *fp = fopen(path, mode);
    if (!*fp) {
        int e = errno;
        if (mode[0] == 'r')
            return dl_open_failure(path, e, "check the path");
        return DL_FAIL(DL_ERR_IO, "cannot open %s: %s", path, strerror(e));
    }
    return DL_OK;
}

dl_status dl_read_file(const char *path, uint8_t **data, size_t *len) {
    DL_REQUIRE(path && data && len, DL_ERR_INVALID, "dl_read_file: NULL argument");
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dl_open_failure(path, errno, "check the path");
    struct stat st;
    if (fstat(fd, &st) != 0) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return DL_FAIL(DL_ERR_INVALID, "%s is not a regular file%s", path, S_ISDIR(st.st_mode) ? " (a directory)" : "");
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, size);
    }
    dl_status s = dl_pread_exact(fd, buf, size, 0, path);
    close(fd);
    if (s != DL_OK) {
        free(buf);
        return s;
    }
    buf[size] = 0;
    *data = buf;
    *len = size;
    return DL_OK;
}

dl_status dl_fread_exact(FILE *fp, void *buf, size_t n, const char *path) {
    DL_REQUIRE(fp && (buf || n == 0), DL_ERR_INVALID, "dl_fread_exact: NULL argument");
    long long at = (long long)ftello(fp);
    size_t got = fread(buf, 1, n, fp);
    if (got == n)
        return DL_OK;
    if (ferror(fp))
        return DL_FAIL(DL_ERR_IO, "reading %s at byte %lld: %s", path ? path : "?", at, strerror(errno));
    return DL_FAIL(DL_ERR_FORMAT, "%s: truncated: wanted %zu bytes at byte %lld, got %zu", path ? path : "?", n, at,
                   got);
}

dl_status dl_fwrite_all(FILE *fp, const void *buf, size_t n, const char *path) {
    DL_REQUIRE(fp && (buf || n == 0), DL_ERR_INVALID, "dl_fwrite_all: NULL argument");
    if (n && fwrite(buf, 1, n, fp) != n)
        return DL_FAIL(DL_ERR_IO, "writing %s: %s", path ? path : "?", strerror(errno));
    return DL_OK;
}

dl_status dl_pread_exact(int fd, void *buf, size_t n, uint64_t offset, const char *path) {
    DL_REQUIRE(fd >= 0 && (buf || n == 0), DL_ERR_INVALID, "dl_pread_exact: bad argument");
    uint8_t *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return DL_FAIL(DL_ERR_IO, "reading %s at byte %llu: %s", path ? path : "?",
                           (unsigned long long)(offset + done), strerror(errno));
        }
        if (r == 0)
            return DL_FAIL(DL_ERR_FORMAT, "%s: truncated: wanted %zu bytes at byte %llu, file ends after %zu",
                           path ? path : "?", n, (unsigned long long)offset, done);
        done += (size_t)r;
    }
    return DL_OK;
}

dl_status dl_fsync_parent_dir(const char *path) {
    DL_REQUIRE(path, DL_ERR_INVALID, "dl_fsync_parent_dir: NULL path");
    char *copy = dl_path_join_suffix(path, "");
    if (!copy)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy); /* may point into copy or at a static "." */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    dl_status s = DL_OK;
    if (fd < 0) {
        s = DL_FAIL(DL_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    } else {
        /* Some file systems cannot fsync a directory (EINVAL); the rename is as durable as they make it. */
        if (fsync(fd) != 0 && errno != EINVAL)
            s = DL_FAIL(DL_ERR_IO, "fsync directory %s: %s", dir, strerror(errno));
        close(fd);
    }
    free(copy);
    return s;
}

dl_status dl_rename_durable(const char *from, const char *to) {
    DL_REQUIRE(from && to, DL_ERR_INVALID, "dl_rename_durable: NULL path");
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return DL_FAIL(DL_ERR_IO, "cannot open %s: %s", from, strerror(errno));
    if (fsync(fd) != 0) {
        dl_status s = DL_FAIL(DL_ERR_IO, "fsync %s: %s", from, strerror(errno));
        close(fd);
        return s;
    }
    close(fd);
    if (rename(from, to) != 0)
        return DL_FAIL(DL_ERR_IO, "renaming %s to %s: %s", from, to, strerror(errno));
    return dl_fsync_parent_dir(to);
}

dl_status dl_remove_if_exists(const char *path) {
    DL_REQUIRE(path, DL_ERR_INVALID, "dl_remove_if_exists: NULL path");
    if (unlink(path) != 0 && errno != ENOENT)
        return DL_FAIL(DL_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return DL_OK;
}

dl_status dl_file_size(const char *path, uint64_t *size) {
    DL_REQUIRE(path && size, DL_ERR_INVALID, "dl_file_size: NULL argument");
    struct stat st;
    if (stat(path, &st) != 0)
        return DL_FAIL(DL_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    *size = (uint64_t)st.st_size;
    return DL_OK;
}
