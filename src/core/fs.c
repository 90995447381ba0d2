/* fs.c — checked file I/O and atomic writes (see fs.h).
 *
 * Atomic writes use the classic sequence: write PATH.tmp, fflush, fsync, close, rename over PATH, fsync the
 * directory. rename is atomic within one file system, so readers see the old file or the new one, never a mix; the
 * two fsyncs make the data and then the directory entry durable, in that order. Writes go through stdio with a 1 MiB
 * buffer: record writers append many small pieces and a syscall per record would dominate. */
#include "core/fs.h"

#include "core/fault.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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

/* DL_ERR_IO with "WHAT: strerror(err)", and a hint when the disk is full. */
static dl_status io_failure(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dl_status io_failure(int err, const char *fmt, ...) {
    char what[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    dl_status s = DL_FAIL(DL_ERR_IO, "%s: %s", what, strerror(err));
    if (err == ENOSPC || err == EDQUOT)
        dl_error_hint("the disk is full: free space, or write elsewhere");
    return s;
}

static void atomic_release(dl_atomic_file *f) {
    free(f->path);
    free(f->tmp_path);
    f->path = NULL;
    f->tmp_path = NULL;
    f->fp = NULL;
}

/* A host name fit for a file name: characters other than letters, digits and '.' become '_' (so '-' separates the
 * name's fields unambiguously), and at most TMP_HOST_CHARS of them (a long name would push long file names past
 * NAME_MAX). */
enum { TMP_HOST_CHARS = 32 };
static void tmp_host(char *out, size_t cap) {
    if (cap > TMP_HOST_CHARS + 1)
        cap = TMP_HOST_CHARS + 1;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "host");
    size_t n = 0;
    for (const char *c = host; *c && n + 1 < cap; c++)
        out[n++] = isalnum((unsigned char)*c) || *c == '.' ? *c : '_';
    out[n] = '\0';
}

/* The permissions a plain fopen(path, "w") would give (0666 less the umask): mkstemp creates files 0600. The umask
 * is read once; umask() has no read-only form. */
static mode_t create_mode(void) {
    static atomic_int cached = -1;
    int m = atomic_load(&cached);
    if (m < 0) {
        mode_t mask = umask(022);
        umask(mask);
        m = (int)(0666 & ~mask);
        atomic_store(&cached, m);
    }
    return (mode_t)m;
}

int dl_tmp_name_is_stale(const char *name, const char *base) {
    size_t b = strlen(base);
    if (strncmp(name, base, b) != 0 || strncmp(name + b, ".tmp", 4) != 0)
        return 0;
    const char *rest = name + b + 4;
    if (*rest == '\0')
        return 1; /* PATH.tmp: the fixed name of earlier releases, whose writer truncated it anyway */
    if (*rest != '.')
        return 0;
    /* PATH.tmp.HOST-PID-XXXXXX */
    const char *dash2 = strrchr(rest, '-');
    if (!dash2 || dash2 == rest)
        return 0;
    const char *dash1 = dash2 - 1;
    while (dash1 > rest && *dash1 != '-')
        dash1--;
    if (*dash1 != '-')
        return 0;
    char host[256], mine[256];
    size_t hl = (size_t)(dash1 - (rest + 1));
    if (hl == 0 || hl >= sizeof host)
        return 0;
    memcpy(host, rest + 1, hl);
    host[hl] = '\0';
    tmp_host(mine, sizeof mine);
    if (strcmp(host, mine) != 0)
        return 0; /* another machine's writer: whether it lives cannot be known from here */
    char *end = NULL;
    long pid = strtol(dash1 + 1, &end, 10);
    if (end != dash2 || pid <= 0)
        return 0;
    if ((pid_t)pid == getpid())
        return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Removes leftovers of dead writers of PATH on this host (see dl_tmp_name_is_stale). Best effort: a directory that
 * cannot be listed leaves them, and creating the new file reports what matters. */
static void remove_stale_tmps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!dl_tmp_name_is_stale(e->d_name, base))
            continue;
        char full[4352];
        int n = snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (n > 0 && (size_t)n < sizeof full)
            unlink(full);
    }
    closedir(d);
}

dl_status dl_tmp_create(const char *path, char **tmp_path, int *fd) {
    DL_REQUIRE(path && *path && tmp_path && fd, DL_ERR_INVALID, "dl_tmp_create: no path given");
    *tmp_path = NULL;
    *fd = -1;
    char host[128];
    tmp_host(host, sizeof host);
    size_t cap = strlen(path) + sizeof host + 48;
    char *tmp = malloc(cap);
    char *dir_copy = dl_path_join_suffix(path, ""), *base_copy = dl_path_join_suffix(path, "");
    if (!tmp || !dir_copy || !base_copy) {
        free(tmp);
        free(dir_copy);
        free(base_copy);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory opening %s", path);
    }
    remove_stale_tmps(dirname(dir_copy), basename(base_copy));
    free(dir_copy);
    free(base_copy);
    snprintf(tmp, cap, "%s.tmp.%s-%ld-XXXXXX", path, host, (long)getpid());
    int f = mkostemp(tmp, O_CLOEXEC);
    if (f < 0) {
        int e = errno;
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot create %s: %s", tmp, strerror(e));
        if (e == ENOENT)
            dl_error_hint("create the output directory first");
        else if (e == EACCES || e == EROFS)
            dl_error_hint("the output directory is not writable");
        else if (e == ENOSPC || e == EDQUOT)
            dl_error_hint("the disk is full");
        free(tmp);
        return s;
    }
    if (fchmod(f, create_mode()) != 0) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot set the permissions of %s: %s", tmp, strerror(errno));
        close(f);
        unlink(tmp);
        free(tmp);
        return s;
    }
    *tmp_path = tmp;
    *fd = f;
    return DL_OK;
}

dl_status dl_atomic_open(dl_atomic_file *f, const char *path) {
    DL_REQUIRE(f && path && *path, DL_ERR_INVALID, "dl_atomic_open: no path given");
    memset(f, 0, sizeof *f);
    f->path = dl_path_join_suffix(path, "");
    if (!f->path)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory opening %s", path);
    int fd = -1;
    dl_status s = dl_tmp_create(path, &f->tmp_path, &fd);
    if (s != DL_OK) {
        atomic_release(f);
        return s;
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        s = DL_FAIL(DL_ERR_IO, "cannot open %s: %s", f->tmp_path, strerror(errno));
        close(fd);
        unlink(f->tmp_path);
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
    int injected = len ? dl_fault_hit(DL_FAULT_WRITE) : 0;
    if (len && (injected || fwrite(data, 1, len, f->fp) != len)) {
        int e = injected ? injected : errno;
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
    int injected = 0;
    if (fflush(f->fp) != 0)
        s = io_failure(errno, "writing %s", f->tmp_path);
    else if ((injected = dl_fault_hit(DL_FAULT_FSYNC)) != 0 || fsync(fileno(f->fp)) != 0)
        s = io_failure(injected ? injected : errno, "fsync %s", f->tmp_path);
    if (fclose(f->fp) != 0 && s == DL_OK)
        s = io_failure(errno, "closing %s", f->tmp_path);
    f->fp = NULL;
    if (s == DL_OK)
        s = dl_rename_file(f->tmp_path, f->path);
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

dl_status dl_open_regular(const char *path, const char *what, const char *hint, int *fd, struct stat *st) {
    DL_REQUIRE(path && what && hint && fd, DL_ERR_INVALID, "dl_open_regular: NULL argument");
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return dl_open_failure(path, errno, hint);
    struct stat own;
    if (fstat(*fd, &own) != 0) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        close(*fd);
        *fd = -1;
        return s;
    }
    if (!S_ISREG(own.st_mode)) {
        close(*fd);
        *fd = -1;
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s is %s, not a %s", path,
                              S_ISDIR(own.st_mode) ? "a directory" : "not a regular file", what);
        dl_error_hint("%s", hint);
        return s;
    }
    if (st)
        *st = own;
    return DL_OK;
}

dl_status dl_read_file(const char *path, uint8_t **data, size_t *len) {
    DL_REQUIRE(path && data && len, DL_ERR_INVALID, "dl_read_file: NULL argument");
    *data = NULL;
    *len = 0;
    int fd = -1;
    struct stat st = {0};
    DL_CHECK(dl_open_regular(path, "file", "check the path", &fd, &st));
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
    int injected = n ? dl_fault_hit(DL_FAULT_WRITE) : 0;
    if (n && (injected || fwrite(buf, 1, n, fp) != n))
        return io_failure(injected ? injected : errno, "writing %s", path ? path : "?");
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
    int injected = dl_fault_hit(DL_FAULT_FSYNC);
    if (injected || fsync(fd) != 0) {
        dl_status s = io_failure(injected ? injected : errno, "fsync %s", from);
        close(fd);
        return s;
    }
    close(fd);
    DL_CHECK(dl_rename_file(from, to));
    return dl_fsync_parent_dir(to);
}

dl_status dl_rename_file(const char *from, const char *to) {
    DL_REQUIRE(from && to, DL_ERR_INVALID, "dl_rename_file: NULL path");
    int injected = dl_fault_hit(DL_FAULT_RENAME);
    if (injected || rename(from, to) != 0)
        return io_failure(injected ? injected : errno, "renaming %s to %s", from, to);
    return DL_OK;
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

dl_status dl_free_space(const char *path, uint64_t *bytes) {
    DL_REQUIRE(path && bytes, DL_ERR_INVALID, "dl_free_space: NULL argument");
    struct statvfs st;
    if (statvfs(path, &st) != 0)
        return DL_FAIL(DL_ERR_IO, "cannot query the free space of %s: %s", path, strerror(errno));
    *bytes = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    return DL_OK;
}

int dl_write_whole_or_cut(int fd, const void *buf, size_t len, off_t keep) {
    const char *bytes = (const char *)buf;
    int err = dl_fault_hit(DL_FAULT_WRITE);
    for (size_t done = 0; !err && done < len;) {
        ssize_t n = write(fd, bytes + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            err = n < 0 ? errno : EIO;
        else
            done += (size_t)n;
    }
    if (err && keep >= 0 && ftruncate(fd, keep) == 0)
        (void)lseek(fd, keep, SEEK_SET);
    return err;
}
