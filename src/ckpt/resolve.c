/* resolve.c — from what a user typed to a checkpoint file (see dl_ckpt_resolve in checkpoint.h).
 *
 * One resolver for every command, so `ckpt show`, `ckpt diff`, `ckpt export`, `eval`, `generate`, `predict` and
 * train.resume accept the same four forms. A path that is none of them is classified before anything tries to open
 * it as HDF5: a record file or a stray text file gets a sentence saying what it is, not HDF5's "not a readable
 * file" or the OS's "FILE/ckpt/latest: Not a directory". */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/checkpoint.h"
#include "core/crc32c.h"
#include "core/fs.h"

static const unsigned char HDF5_SIGNATURE[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* HDF5 looks for its superblock at 0, 512, 1024, 2048, ... (after a user block). */
static int has_hdf5_signature(int fd, off_t size) {
    unsigned char buf[8];
    for (off_t at = 0; at + 8 <= size && at <= (off_t)1 << 20; at = at ? at * 2 : 512)
        if (pread(fd, buf, 8, at) == 8 && memcmp(buf, HDF5_SIGNATURE, 8) == 0)
            return 1;
    return 0;
}

/* TFRecord framing: u64 length, then the masked CRC32C of those 8 bytes. */
static int looks_like_records(int fd) {
    unsigned char h[12];
    if (pread(fd, h, 12, 0) != 12)
        return 0;
    uint32_t stored = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
    return dl_crc32c_unmask(stored) == dl_crc32c(0, h, 8);
}

/* A `latest` file: one line naming a step file in the same directory. */
static dl_status follow_latest(const char *latest, const char *label, char *path, size_t cap) {
    FILE *f = fopen(latest, "r");
    if (!f)
        return dl_open_failure(latest, errno, "name a step file or a run directory");
    char name[256] = "";
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    if (!ok || strncmp(name, "step_", 5) != 0 || strchr(name, '/')) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s%s: expected one line naming a step file (step_NNNNNNNN.h5)",
                              label, latest);
        dl_error_hint("name a step file instead (dealer ckpt ls lists them)");
        return s;
    }
    const char *slash = strrchr(latest, '/');
    int n = slash ? snprintf(path, cap, "%.*s/%s", (int)(slash - latest), latest, name)
                  : snprintf(path, cap, "%s", name);
    DL_REQUIRE(n > 0 && (size_t)n < cap, DL_ERR_INVALID, "%scheckpoint path under %s is too long", label, latest);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s%s names %s, which is missing", label, latest, path);
        dl_error_hint("name an existing step file (dealer ckpt ls lists them)");
        return s;
    }
    return DL_OK;
}

dl_status dl_ckpt_resolve(const char *arg, const char *what, char *path, size_t cap) {
    DL_REQUIRE(arg && path && cap > 0, DL_ERR_INVALID, "dl_ckpt_resolve: NULL argument");
    char label[128] = "";
    if (what && *what)
        snprintf(label, sizeof label, "%s ", what);
    path[0] = '\0';
    if (!arg[0])
        return DL_FAIL(DL_ERR_INVALID, "%sis empty: name a checkpoint file or a run directory", label);
    struct stat st;
    if (stat(arg, &st) != 0) {
        int e = errno;
        dl_status s = DL_FAIL(e == ENOENT || e == ENOTDIR ? DL_ERR_INVALID : DL_ERR_IO,
                              "%s%s: no such checkpoint file or run directory (%s)", label, arg, strerror(e));
        dl_error_hint("name run_dir/ckpt/step_NNNNNNNN.h5, run_dir/ckpt/latest or the run directory");
        return s;
    }
    if (S_ISDIR(st.st_mode)) {
        char latest[4200];
        struct stat ls;
        snprintf(latest, sizeof latest, "%s/ckpt/latest", arg);
        if (stat(latest, &ls) == 0)
            return follow_latest(latest, label, path, cap);
        snprintf(latest, sizeof latest, "%s/latest", arg);
        if (stat(latest, &ls) == 0 && S_ISREG(ls.st_mode))
            return follow_latest(latest, label, path, cap);
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s%s is a directory with no checkpoint (no ckpt/latest in it)", label,
                              arg);
        dl_error_hint("name a run directory that has finished a checkpoint, or a step file");
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        return DL_FAIL(DL_ERR_INVALID, "%s%s is not a regular file, a checkpoint or a run directory", label, arg);
    }
    int fd = open(arg, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dl_open_failure(arg, errno, "name a checkpoint file or a run directory");
    int hdf5 = has_hdf5_signature(fd, st.st_size);
    int records = !hdf5 && looks_like_records(fd);
    close(fd);
    if (hdf5) {
        int n = snprintf(path, cap, "%s", arg);
        DL_REQUIRE(n > 0 && (size_t)n < cap, DL_ERR_INVALID, "%scheckpoint path is too long: %s", label, arg);
        return DL_OK;
    }
    const char *base = strrchr(arg, '/');
    base = base ? base + 1 : arg;
    if (strcmp(base, "latest") == 0 || (st.st_size > 0 && st.st_size < 256 && !records)) {
        /* A `latest` file, possibly copied or renamed: small text naming a step file. */
        char head[8] = "";
        FILE *f = fopen(arg, "r");
        if (f) {
            size_t got = fread(head, 1, 5, f);
            head[got] = '\0';
            fclose(f);
        }
        if (strcmp(base, "latest") == 0 || strcmp(head, "step_") == 0)
            return follow_latest(arg, label, path, cap);
    }
    dl_status s;
    if (records) {
        s = DL_FAIL(DL_ERR_INVALID, "%s%s is a record file (TFRecord), not a checkpoint or a run directory", label,
                    arg);
        dl_error_hint("name the run directory the training wrote, or one of its ckpt/step_NNNNNNNN.h5 files");
    } else {
        size_t n = strlen(arg);
        int h5_name = n > 3 && strcmp(arg + n - 3, ".h5") == 0;
        s = DL_FAIL(DL_ERR_INVALID, "%s%s is %s, not a checkpoint or a run directory (no HDF5 signature)", label, arg,
                    h5_name ? "a damaged file" : st.st_size == 0 ? "an empty file" : "a plain file");
        dl_error_hint("name a run directory or a ckpt/step_NNNNNNNN.h5 file it holds");
    }
    return s;
}
