/* record.c — TFRecord writing, scanning, the .idx sidecar, and random-access reading (see record.h).
 *
 * Writer: records are framed into a temporary of its own through an atomic file (core/fs.h) while their offsets
 * collect in memory; close commits the data, then writes the index the same way. Any old PATH.idx is removed before
 * the data is renamed into place, so a crash between the two commits leaves "no index" (rebuilt on open), never a
 * stale one.
 *
 * Reader: the data file is mapped read-only. If PATH.idx is present, no older than the data, and passes every
 * check (size, magic, version, CRC, the data size it records, increasing offsets that fit in the file), it is mapped
 * too and used as is; otherwise the data is scanned once, with both CRCs of every record checked, into an offset
 * array in memory, and a warning suggests `dealer data index`. Each read re-checks what it touches: the record's
 * length must match the gap to the next offset and both CRCs must hold, so even an index that passed the checks
 * but lies about the file yields a clear DL_ERR_FORMAT instead of garbage.
 *
 * mmap trade-off: no system call per record and a page cache shared by all ranks on a machine, at the price that a
 * file truncated by someone else while mapped would raise SIGBUS. dealer never truncates in place (writers
 * rename a new file over the old one, and an open mapping keeps the old inode), so that needs outside interference.
 *
 * Index layout (version 1, all integers little endian):
 *     0   8  magic "DLRECIDX"
 *     8   4  version = 1
 *    12   4  reserved = 0
 *    16   8  record count N
 *    24   8  size of the data file in bytes when indexed
 *    32  8N  byte offset of each record
 *  32+8N  4  masked CRC32C of the preceding 32+8N bytes */
#include "data/record.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"

#define DL_INDEX_MAGIC "DLRECIDX"
enum { DL_INDEX_VERSION = 1, DL_INDEX_HEADER = 32, DL_INDEX_TRAILER = 4 };

static uint64_t load_u64le(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static uint32_t load_u32le(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static void store_u64le(uint8_t *p, uint64_t v) {
    v = htole64(v);
    memcpy(p, &v, 8);
}

static void store_u32le(uint8_t *p, uint32_t v) {
    v = htole32(v);
    memcpy(p, &v, 4);
}

/* A growable array of offsets. */
typedef struct offset_vec {
    uint64_t *data;
    uint64_t len;
    uint64_t cap;
} offset_vec;

static dl_status offset_push(offset_vec *v, uint64_t offset) {
    if (v->len == v->cap) {
        uint64_t cap = v->cap ? v->cap * 2 : 1024;
        uint64_t *grown = realloc(v->data, cap * sizeof *grown);
        if (!grown)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory indexing %llu records", (unsigned long long)v->len);
        v->data = grown;
        v->cap = cap;
    }
    v->data[v->len++] = offset;
    return DL_OK;
}

/* Serializes an index for `count` offsets over a data file of `data_size` bytes into a fresh buffer. */
static dl_status index_serialize(const uint64_t *offsets, uint64_t count, uint64_t data_size, uint8_t **out,
                                 size_t *out_len) {
    if (count > (SIZE_MAX - DL_INDEX_HEADER - DL_INDEX_TRAILER) / 8)
        return DL_FAIL(DL_ERR_INVALID, "too many records to index: %llu", (unsigned long long)count);
    size_t len = DL_INDEX_HEADER + (size_t)count * 8 + DL_INDEX_TRAILER;
    uint8_t *buf = malloc(len);
    if (!buf)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory for an index of %llu records", (unsigned long long)count);
    memcpy(buf, DL_INDEX_MAGIC, 8);
    store_u32le(buf + 8, DL_INDEX_VERSION);
    store_u32le(buf + 12, 0);
    store_u64le(buf + 16, count);
    store_u64le(buf + 24, data_size);
    for (uint64_t i = 0; i < count; i++)
        store_u64le(buf + DL_INDEX_HEADER + i * 8, offsets[i]);
    size_t body = len - DL_INDEX_TRAILER;
    store_u32le(buf + body, dl_crc32c_mask(dl_crc32c(0, buf, body)));
    *out = buf;
    *out_len = len;
    return DL_OK;
}

/* ---- writer ------------------------------------------------------------------------------------------------- */

struct dl_record_writer {
    dl_atomic_file file;
    char *index_path;
    offset_vec offsets;
    uint64_t bytes;
};

static void writer_free(dl_record_writer *w) {
    free(w->index_path);
    free(w->offsets.data);
    free(w);
}

dl_status dl_record_writer_open(dl_record_writer **writer, const char *path) {
    DL_REQUIRE(writer && path && *path, DL_ERR_INVALID, "dl_record_writer_open: no path given");
    *writer = NULL;
    dl_record_writer *w = calloc(1, sizeof *w);
    if (!w)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory opening %s", path);
    w->index_path = dl_path_join_suffix(path, ".idx");
    if (!w->index_path) {
        writer_free(w);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory opening %s", path);
    }
    dl_status s = dl_atomic_open(&w->file, path);
    if (s != DL_OK) {
        writer_free(w);
        return s;
    }
    *writer = w;
    return DL_OK;
}

dl_status dl_record_writer_append(dl_record_writer *w, const void *payload, size_t len) {
    DL_REQUIRE(w && w->file.fp, DL_ERR_INVALID, "dl_record_writer_append: the writer is not open");
    DL_REQUIRE(payload || len == 0, DL_ERR_INVALID, "dl_record_writer_append: NULL payload");
    uint8_t header[12], footer[4];
    store_u64le(header, (uint64_t)len);
    store_u32le(header + 8, dl_crc32c_mask(dl_crc32c(0, header, 8)));
    store_u32le(footer, dl_crc32c_mask(dl_crc32c(0, payload, len)));
    DL_CHECK(offset_push(&w->offsets, w->bytes));
    DL_CHECK(dl_atomic_write(&w->file, header, sizeof header));
    DL_CHECK(dl_atomic_write(&w->file, payload, len));
    DL_CHECK(dl_atomic_write(&w->file, footer, sizeof footer));
    w->bytes += len + DL_RECORD_OVERHEAD;
    return DL_OK;
}

uint64_t dl_record_writer_count(const dl_record_writer *w) { return w ? w->offsets.len : 0; }

uint64_t dl_record_writer_bytes(const dl_record_writer *w) { return w ? w->bytes : 0; }

dl_status dl_record_writer_close(dl_record_writer *w) {
    DL_REQUIRE(w, DL_ERR_INVALID, "dl_record_writer_close: NULL writer");
    uint8_t *index = NULL;
    size_t index_len = 0;
    dl_status s = index_serialize(w->offsets.data, w->offsets.len, w->bytes, &index, &index_len);
    if (s == DL_OK)
        s = dl_remove_if_exists(w->index_path);
    if (s != DL_OK) {
        dl_atomic_abort(&w->file);
        free(index);
        writer_free(w);
        return s;
    }
    s = dl_atomic_commit(&w->file);
    if (s == DL_OK)
        s = dl_write_file_atomic(w->index_path, index, index_len);
    free(index);
    writer_free(w);
    return s;
}

void dl_record_writer_abort(dl_record_writer *w) {
    if (!w)
        return;
    dl_atomic_abort(&w->file);
    writer_free(w);
}

/* ---- scanning ----------------------------------------------------------------------------------------------- */

/* Checks the record at `offset` of a `size`-byte mapping: header present, length CRC, payload inside the file,
 * payload CRC. On success *len gets the payload length. `number` is the record number for messages. */
static dl_status check_record(const char *path, const uint8_t *data, uint64_t size, uint64_t number,
                              uint64_t offset, uint64_t *len) {
    unsigned long long n = (unsigned long long)number, at = (unsigned long long)offset;
    uint64_t remaining = size - offset;
    if (remaining < 12) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT,
                              "%s: record %llu at byte %llu: truncated record: the 12-byte header is cut off "
                              "after %llu bytes",
                              path, n, at, (unsigned long long)remaining);
        dl_error_hint("the file was cut short (an interrupted copy or write?); re-create or re-copy it");
        return s;
    }
    const uint8_t *h = data + offset;
    uint32_t stored = dl_crc32c_unmask(load_u32le(h + 8));
    uint32_t computed = dl_crc32c(0, h, 8);
    if (stored != computed) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT,
                              "%s: record %llu at byte %llu: length CRC mismatch (stored 0x%08x, computed 0x%08x)",
                              path, n, at, stored, computed);
        dl_error_hint("the file is damaged or is not a TFRecord file; re-create it (dealer data convert)");
        return s;
    }
    uint64_t length = load_u64le(h);
    if (length > remaining - 12 || remaining - 12 - length < 4) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT,
                              "%s: record %llu at byte %llu: truncated record: %llu payload bytes + 4 CRC bytes "
                              "announced, %llu bytes left in the file",
                              path, n, at, (unsigned long long)length, (unsigned long long)(remaining - 12));
        dl_error_hint("the file was cut short (an interrupted copy or write?); re-create or re-copy it");
        return s;
    }
    stored = dl_crc32c_unmask(load_u32le(h + 12 + length));
    computed = dl_crc32c(0, h + 12, (size_t)length);
    if (stored != computed) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT,
                              "%s: record %llu at byte %llu: payload CRC mismatch (stored 0x%08x, computed 0x%08x)",
                              path, n, at, stored, computed);
        dl_error_hint("the file is damaged; re-create it (dealer data convert)");
        return s;
    }
    *len = length;
    return DL_OK;
}

/* Walks every record of a mapping, checking it, collecting offsets. */
static dl_status scan_records(const char *path, const uint8_t *data, uint64_t size, offset_vec *offsets) {
    uint64_t offset = 0;
    while (offset < size) {
        uint64_t len = 0;
        DL_CHECK(check_record(path, data, size, offsets->len, offset, &len));
        DL_CHECK(offset_push(offsets, offset));
        offset += len + DL_RECORD_OVERHEAD;
    }
    return DL_OK;
}

/* Maps PATH read-only. An empty file gives *data = NULL, *size = 0. */
static dl_status map_file(const char *path, const uint8_t **data, uint64_t *size, struct stat *st_out) {
    *data = NULL;
    *size = 0;
    int fd = -1;
    struct stat st = {0};
    DL_CHECK(dl_open_regular(path, "record file",
                             "check the path; dealer data convert writes record files, and data.train takes a list "
                             "of the *.tfrecord files themselves", &fd, &st));
    if (st_out)
        *st_out = st;
    if (st.st_size > 0) {
        if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
            close(fd);
            return DL_FAIL(DL_ERR_UNSUPPORTED, "%s is too large to map", path);
        }
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            dl_status s = DL_FAIL(DL_ERR_IO, "cannot map %s (%lld bytes): %s", path, (long long)st.st_size,
                                  strerror(errno));
            close(fd);
            return s;
        }
        *data = m;
        *size = (uint64_t)st.st_size;
    }
    close(fd); /* the mapping keeps the file open */
    return DL_OK;
}

static void unmap(const uint8_t *data, uint64_t size) {
    if (data && size)
        munmap((void *)data, (size_t)size);
}

dl_status dl_record_index_build(const char *path, uint64_t *count) {
    DL_REQUIRE(path && *path, DL_ERR_INVALID, "dl_record_index_build: no path given");
    const uint8_t *data;
    uint64_t size;
    DL_CHECK(map_file(path, &data, &size, NULL));
    offset_vec offsets = {0};
    dl_status s = scan_records(path, data, size, &offsets);
    unmap(data, size);
    uint8_t *index = NULL;
    size_t index_len = 0;
    char *index_path = NULL;
    if (s == DL_OK)
        s = index_serialize(offsets.data, offsets.len, size, &index, &index_len);
    if (s == DL_OK && !(index_path = dl_path_join_suffix(path, ".idx")))
        s = DL_FAIL(DL_ERR_NOMEM, "out of memory");
    if (s == DL_OK)
        s = dl_write_file_atomic(index_path, index, index_len);
    if (s == DL_OK && count)
        *count = offsets.len;
    free(index_path);
    free(index);
    free(offsets.data);
    return s;
}

/* ---- reader ------------------------------------------------------------------------------------------------- */

struct dl_record_file {
    char *path;
    const uint8_t *data;   /* mapped record file */
    uint64_t size;
    const uint8_t *index;  /* mapped PATH.idx when valid, else NULL */
    uint64_t index_size;
    uint64_t *scanned;     /* offsets from a scan when there is no valid index */
    uint64_t count;
};

/* Checks a mapped index against the data; returns a reason it is unusable, or NULL when valid. */
static const char *index_problem(const uint8_t *idx, uint64_t idx_size, uint64_t data_size, uint64_t *count) {
    if (idx_size < DL_INDEX_HEADER + DL_INDEX_TRAILER)
        return "too short";
    if (memcmp(idx, DL_INDEX_MAGIC, 8) != 0)
        return "bad magic (not a dealer record index)";
    if (load_u32le(idx + 8) != DL_INDEX_VERSION)
        return "unknown version";
    uint64_t n = load_u64le(idx + 16);
    if (n > (idx_size - DL_INDEX_HEADER - DL_INDEX_TRAILER) / 8 ||
        idx_size != DL_INDEX_HEADER + n * 8 + DL_INDEX_TRAILER)
        return "its size does not match its record count";
    uint64_t body = idx_size - DL_INDEX_TRAILER;
    if (dl_crc32c_unmask(load_u32le(idx + body)) != dl_crc32c(0, idx, (size_t)body))
        return "CRC mismatch";
    if (load_u64le(idx + 24) != data_size)
        return "it was made for a data file of another size";
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = load_u64le(idx + DL_INDEX_HEADER + i * 8);
        if ((i == 0 && off != 0) || (i > 0 && off - prev < DL_RECORD_OVERHEAD) || (i > 0 && off <= prev) ||
            off > data_size || data_size - off < DL_RECORD_OVERHEAD)
            return "its offsets do not fit the data file";
        prev = off;
    }
    if (n == 0 && data_size != 0)
        return "it lists no records for a non-empty file";
    *count = n;
    return NULL;
}

void dl_record_file_close(dl_record_file *f) {
    if (!f)
        return;
    unmap(f->data, f->size);
    unmap(f->index, f->index_size);
    free(f->scanned);
    free(f->path);
    free(f);
}

/* Maps PATH.idx when it exists and is usable; otherwise leaves f->index NULL and says why in *why (NULL when the
 * index is simply missing). */
static dl_status try_index(dl_record_file *f, const struct stat *data_st, const char **why) {
    *why = NULL;
    char *idx_path = dl_path_join_suffix(f->path, ".idx");
    if (!idx_path)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory");
    struct stat st;
    if (stat(idx_path, &st) != 0) {
        free(idx_path);
        return DL_OK;
    }
    if (st.st_mtim.tv_sec < data_st->st_mtim.tv_sec ||
        (st.st_mtim.tv_sec == data_st->st_mtim.tv_sec && st.st_mtim.tv_nsec < data_st->st_mtim.tv_nsec)) {
        *why = "it is older than the data file";
        free(idx_path);
        return DL_OK;
    }
    const uint8_t *idx;
    uint64_t idx_size;
    dl_status s = map_file(idx_path, &idx, &idx_size, NULL);
    free(idx_path);
    if (s != DL_OK) {
        /* An unreadable index is as good as none: the data can still be scanned. */
        dl_error_clear();
        *why = "it cannot be read";
        return DL_OK;
    }
    uint64_t count = 0;
    *why = index_problem(idx, idx_size, f->size, &count);
    if (*why) {
        unmap(idx, idx_size);
        return DL_OK;
    }
    f->index = idx;
    f->index_size = idx_size;
    f->count = count;
    return DL_OK;
}

dl_status dl_record_file_open(dl_record_file **file, const char *path) {
    DL_REQUIRE(file && path && *path, DL_ERR_INVALID, "dl_record_file_open: no path given");
    *file = NULL;
    dl_record_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = dl_path_join_suffix(path, ""))) {
        free(f);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory opening %s", path);
    }
    struct stat st;
    dl_status s = map_file(path, &f->data, &f->size, &st);
    const char *why = NULL;
    if (s == DL_OK)
        s = try_index(f, &st, &why);
    if (s == DL_OK && !f->index) {
        if (why)
            DL_WARN("%s.idx is unusable (%s); scanning the data instead (rebuild it: dealer data index %s)", path,
                    why, path);
        else if (f->size > (64u << 20))
            DL_WARN("%s has no index; scanning it (run 'dealer data index %s' once to skip this)", path, path);
        offset_vec offsets = {0};
        s = scan_records(f->path, f->data, f->size, &offsets);
        f->scanned = offsets.data;
        f->count = offsets.len;
    }
    if (s != DL_OK) {
        dl_record_file_close(f);
        return s;
    }
    *file = f;
    return DL_OK;
}

uint64_t dl_record_file_count(const dl_record_file *f) { return f ? f->count : 0; }

const char *dl_record_file_path(const dl_record_file *f) { return f ? f->path : ""; }

int dl_record_file_indexed(const dl_record_file *f) { return f && f->index != NULL; }

uint64_t dl_record_file_offset(const dl_record_file *f, uint64_t index) {
    if (!f || index >= f->count)
        return f ? f->size : 0;
    return f->index ? load_u64le(f->index + DL_INDEX_HEADER + index * 8) : f->scanned[index];
}

dl_status dl_record_file_view(dl_record_file *f, uint64_t index, const uint8_t **payload, size_t *length) {
    DL_REQUIRE(f && payload && length, DL_ERR_INVALID, "dl_record_file_view: NULL argument");
    DL_REQUIRE(index < f->count, DL_ERR_INVALID, "%s: record %llu out of range (the file has %llu records)",
               f->path, (unsigned long long)index, (unsigned long long)f->count);
    uint64_t offset = dl_record_file_offset(f, index);
    uint64_t end = index + 1 < f->count ? dl_record_file_offset(f, index + 1) : f->size;
    uint64_t len = 0;
    DL_CHECK(check_record(f->path, f->data, f->size, index, offset, &len));
    if (len + DL_RECORD_OVERHEAD != end - offset) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT,
                              "%s: record %llu at byte %llu: its length (%llu bytes) does not match the index "
                              "(next record at byte %llu)",
                              f->path, (unsigned long long)index, (unsigned long long)offset,
                              (unsigned long long)len, (unsigned long long)end);
        dl_error_hint("the index is stale; rebuild it with 'dealer data index %s'", f->path);
        return s;
    }
    *payload = f->data + offset + 12;
    *length = (size_t)len;
    return DL_OK;
}

void dl_record_file_prefetch(const dl_record_file *f, uint64_t index, int stage) {
    if (!f || index >= f->count)
        return;
    if (stage == 0) {
        if (f->index)
            __builtin_prefetch(f->index + DL_INDEX_HEADER + index * 8, 0, 3);
        return;
    }
    uint64_t offset = dl_record_file_offset(f, index);
    uint64_t end = index + 1 < f->count ? dl_record_file_offset(f, index + 1) : f->size;
    for (uint64_t at = offset & ~(uint64_t)63; at < end && at < f->size; at += 64)
        __builtin_prefetch(f->data + at, 0, 3);
}

dl_status dl_record_file_read(dl_record_file *f, uint64_t index, uint8_t **buffer, size_t *capacity,
                              size_t *length) {
    DL_REQUIRE(f && buffer && capacity && length, DL_ERR_INVALID, "dl_record_file_read: NULL argument");
    const uint8_t *payload = NULL;
    size_t len = 0;
    DL_CHECK(dl_record_file_view(f, index, &payload, &len));
    if (*capacity < len || !*buffer) {
        size_t cap = len > 64 ? len : 64;
        uint8_t *grown = realloc(*buffer, cap);
        if (!grown)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory reading record %llu of %s (%zu bytes)",
                           (unsigned long long)index, f->path, len);
        *buffer = grown;
        *capacity = cap;
    }
    if (len)
        memcpy(*buffer, payload, len);
    *length = len;
    return DL_OK;
}
