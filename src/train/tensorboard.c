/* tensorboard.c — writing and reading TensorBoard event files (see tensorboard.h).
 *
 * Events are packed with protobuf-c into one buffer together with their TFRecord frame, so each event is a single
 * write(2): a process killed between events leaves only whole records, and one killed inside a write leaves at most
 * one short record at the end, which TensorBoard skips. A write that fails (a full disk) is cut off again, so the
 * file still ends with whole records, and reported. The record writer of data/record.h is not used
 * because it commits a .tmp file at close, while an event file must be readable as it grows; only its CRC helpers
 * are shared. */
#include "train/tensorboard.h"

#include <endian.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/fs.h"
#include "data/record.h"
#include "event.pb-c.h"
#include "summary.pb-c.h"

struct dl_tb_writer {
    int fd;          /* -1 when closed */
    uint64_t size;   /* bytes of whole records written so far */
    char path[4352];
    uint8_t *buffer;
    size_t capacity;
};

static double now_seconds(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* Frames the packed event and writes it with one fwrite. */
static dl_status write_event(dl_tb_writer *w, const Tensorflow__Event *event) {
    size_t len = tensorflow__event__get_packed_size(event);
    size_t need = len + DL_RECORD_OVERHEAD;
    if (need > w->capacity) {
        uint8_t *grown = realloc(w->buffer, need);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "%s: cannot allocate %zu bytes for an event", w->path, need);
        w->buffer = grown;
        w->capacity = need;
    }
    uint8_t *b = w->buffer;
    uint64_t len_le = htole64((uint64_t)len);
    memcpy(b, &len_le, 8);
    uint32_t len_crc = htole32(dl_crc32c_mask(dl_crc32c(0, b, 8)));
    memcpy(b + 8, &len_crc, 4);
    tensorflow__event__pack(event, b + 12);
    uint32_t data_crc = htole32(dl_crc32c_mask(dl_crc32c(0, b + 12, len)));
    memcpy(b + 12 + len, &data_crc, 4);
    int err = dl_write_whole_or_cut(w->fd, b, need, (off_t)w->size); /* a partial event is cut off again */
    if (err) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot write to %s: %s", w->path, strerror(err));
        if (err == ENOSPC || err == EDQUOT)
            dl_error_hint("the disk is full: free space (or set log.tensorboard: false)");
        return s;
    }
    w->size += need;
    return DL_OK;
}

dl_status dl_tb_open(dl_tb_writer **out, const char *dir) {
    DL_REQUIRE(out && dir && *dir, DL_ERR_INVALID, "dl_tb_open: NULL or empty argument");
    *out = NULL;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    /* A host name may in principle hold a '/', which would turn the name into a path. */
    for (char *c = host; *c; c++)
        if (*c == '/')
            *c = '_';
    dl_tb_writer *w = calloc(1, sizeof *w);
    DL_REQUIRE(w != NULL, DL_ERR_NOMEM, "cannot allocate the event writer");
    w->fd = -1;
    /* The counter keeps two writers of one process apart even within the same second. */
    static atomic_int opened = 0;
    double t = now_seconds();
    int n = snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%010lld.%s.%d.%d", dir, (long long)t, host,
                     (int)getpid(), atomic_fetch_add(&opened, 1));
    if (n < 0 || (size_t)n >= sizeof w->path) {
        free(w);
        return DL_FAIL(DL_ERR_INVALID, "event file path in '%s' is too long", dir);
    }
    /* "x": never append to or clobber a file another process made. */
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot create %s: %s", w->path, strerror(errno));
        free(w);
        return s;
    }
    Tensorflow__Event event = TENSORFLOW__EVENT__INIT;
    event.has_wall_time = 1;
    event.wall_time = t;
    event.has_step = 1;
    event.step = 0;
    event.what_case = TENSORFLOW__EVENT__WHAT_FILE_VERSION;
    event.file_version = (char *)"brain.Event:2";
    dl_status s = write_event(w, &event);
    if (s != DL_OK) {
        dl_tb_close(w);
        return s;
    }
    *out = w;
    return DL_OK;
}

const char *dl_tb_path(const dl_tb_writer *w) { return w ? w->path : ""; }

dl_status dl_tb_scalars(dl_tb_writer *w, int64_t step, int count, const char *const *tags, const double *values) {
    DL_REQUIRE(w && count >= 0 && (count == 0 || (tags && values)), DL_ERR_INVALID, "dl_tb_scalars: bad argument");
    enum { MAX_VALUES = 64 };
    DL_REQUIRE(count <= MAX_VALUES, DL_ERR_INVALID, "%s: %d values in one event (at most %d)", w->path, count,
               MAX_VALUES);
    Tensorflow__Summary__Value storage[MAX_VALUES];
    Tensorflow__Summary__Value *pointers[MAX_VALUES];
    for (int i = 0; i < count; i++) {
        DL_REQUIRE(tags[i] && tags[i][0], DL_ERR_INVALID, "%s: value %d at step %lld has an empty tag", w->path, i,
                   (long long)step);
        Tensorflow__Summary__Value v = TENSORFLOW__SUMMARY__VALUE__INIT;
        v.tag = (char *)tags[i];
        v.value_case = TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
        v.simple_value = (float)values[i];
        storage[i] = v;
        pointers[i] = &storage[i];
    }
    Tensorflow__Summary summary = TENSORFLOW__SUMMARY__INIT;
    summary.n_value = (size_t)count;
    summary.value = pointers;
    Tensorflow__Event event = TENSORFLOW__EVENT__INIT;
    event.has_wall_time = 1;
    event.wall_time = now_seconds();
    event.has_step = 1;
    event.step = step;
    event.what_case = TENSORFLOW__EVENT__WHAT_SUMMARY;
    event.summary = &summary;
    return write_event(w, &event);
}

dl_status dl_tb_session_start(dl_tb_writer *w, int64_t step) {
    DL_REQUIRE(w != NULL, DL_ERR_INVALID, "dl_tb_session_start: NULL writer");
    Tensorflow__SessionLog log = TENSORFLOW__SESSION_LOG__INIT;
    log.has_status = 1;
    log.status = TENSORFLOW__SESSION_LOG__SESSION_STATUS__START;
    Tensorflow__Event event = TENSORFLOW__EVENT__INIT;
    event.has_wall_time = 1;
    event.wall_time = now_seconds();
    event.has_step = 1;
    event.step = step;
    event.what_case = TENSORFLOW__EVENT__WHAT_SESSION_LOG;
    event.session_log = &log;
    return write_event(w, &event);
}

void dl_tb_close(dl_tb_writer *w) {
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->buffer);
    free(w);
}

/* ---- reading --------------------------------------------------------------------------------------------------- */

typedef struct event_vec {
    dl_tb_event *data;
    size_t len, cap;
} event_vec;

static dl_status push(event_vec *v, const dl_tb_event *e) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        dl_tb_event *grown = realloc(v->data, cap * sizeof *grown);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "cannot allocate %zu events", cap);
        v->data = grown;
        v->cap = cap;
    }
    v->data[v->len++] = *e;
    return DL_OK;
}

static dl_status decode_event(const uint8_t *payload, size_t len, event_vec *out, const char *path, size_t record,
                              size_t offset) {
    Tensorflow__Event *event = tensorflow__event__unpack(NULL, len, payload);
    if (!event)
        return DL_FAIL(DL_ERR_FORMAT, "%s: record %zu at byte %zu is not a tensorflow.Event", path, record, offset);
    dl_tb_event e;
    memset(&e, 0, sizeof e);
    e.wall_time = event->wall_time;
    e.step = event->step;
    dl_status s = DL_OK;
    switch (event->what_case) {
    case TENSORFLOW__EVENT__WHAT_FILE_VERSION:
        e.kind = DL_TB_FILE_VERSION;
        snprintf(e.tag, sizeof e.tag, "%s", event->file_version ? event->file_version : "");
        s = push(out, &e);
        break;
    case TENSORFLOW__EVENT__WHAT_SESSION_LOG:
        e.kind = event->session_log && event->session_log->status == TENSORFLOW__SESSION_LOG__SESSION_STATUS__START
                     ? DL_TB_SESSION_START
                     : DL_TB_OTHER;
        s = push(out, &e);
        break;
    case TENSORFLOW__EVENT__WHAT_SUMMARY:
        for (size_t i = 0; s == DL_OK && event->summary && i < event->summary->n_value; i++) {
            const Tensorflow__Summary__Value *v = event->summary->value[i];
            e.kind = v->value_case == TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE ? DL_TB_SCALAR : DL_TB_OTHER;
            snprintf(e.tag, sizeof e.tag, "%s", v->tag ? v->tag : "");
            e.value = e.kind == DL_TB_SCALAR ? (double)v->simple_value : 0.0;
            s = push(out, &e);
        }
        break;
    default:
        e.kind = DL_TB_OTHER;
        s = push(out, &e);
        break;
    }
    tensorflow__event__free_unpacked(event, NULL);
    return s;
}

dl_status dl_tb_read(const char *path, dl_tb_event **events, size_t *count) {
    DL_REQUIRE(path && events && count, DL_ERR_INVALID, "dl_tb_read: NULL argument");
    *events = NULL;
    *count = 0;
    uint8_t *data = NULL;
    size_t size = 0;
    DL_CHECK(dl_read_file(path, &data, &size));
    event_vec v = {0};
    dl_status s = DL_OK;
    size_t pos = 0;
    for (size_t record = 0; s == DL_OK && pos < size; record++) {
        if (size - pos < 12) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: record %zu at byte %zu: truncated header (%zu bytes left)", path, record,
                        pos, size - pos);
            break;
        }
        uint64_t len;
        uint32_t len_crc, data_crc;
        memcpy(&len, data + pos, 8);
        memcpy(&len_crc, data + pos + 8, 4);
        len = le64toh(len);
        len_crc = le32toh(len_crc);
        if (dl_crc32c_mask(dl_crc32c(0, data + pos, 8)) != len_crc) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: record %zu at byte %zu: length CRC mismatch", path, record, pos);
            break;
        }
        if (len > size - pos - 12 || size - pos - 12 - len < 4) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: record %zu at byte %zu: truncated (%llu payload bytes, %zu left)", path,
                        record, pos, (unsigned long long)len, size - pos - 12);
            break;
        }
        memcpy(&data_crc, data + pos + 12 + len, 4);
        if (dl_crc32c_mask(dl_crc32c(0, data + pos + 12, (size_t)len)) != le32toh(data_crc)) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: record %zu at byte %zu: payload CRC mismatch", path, record, pos);
            break;
        }
        s = decode_event(data + pos + 12, (size_t)len, &v, path, record, pos);
        pos += 16 + (size_t)len;
    }
    free(data);
    if (s != DL_OK) {
        free(v.data);
        return s;
    }
    *events = v.data;
    *count = v.len;
    return DL_OK;
}
