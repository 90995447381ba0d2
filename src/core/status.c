/* status.c — the thread-local error record behind status.h.
 *
 * One fixed buffer per thread: failures are reported while memory may be exhausted, so nothing here allocates.
 * Contexts are prepended in place; a message that would overflow is cut with "..." rather than lost. */
#include "core/status.h"

#include "core/signals.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { DL_ERROR_CAPACITY = 2048, DL_HINT_CAPACITY = 512 };

typedef struct dl_error_record {
    dl_status status;
    char message[DL_ERROR_CAPACITY];
    char hint[DL_HINT_CAPACITY];
    char location[256];
    char composed[DL_ERROR_CAPACITY + DL_HINT_CAPACITY + 16];
} dl_error_record;

static _Thread_local dl_error_record error_record;

const char *dl_status_name(dl_status status) {
    switch (status) {
    case DL_OK: return "ok";
    case DL_ERR_INVALID: return "invalid";
    case DL_ERR_CONFIG: return "config";
    case DL_ERR_FORMAT: return "format";
    case DL_ERR_IO: return "io";
    case DL_ERR_NOMEM: return "out of memory";
    case DL_ERR_RUNTIME: return "runtime";
    case DL_ERR_COMM: return "communication";
    case DL_ERR_DEVICE: return "device";
    case DL_ERR_UNSUPPORTED: return "unsupported";
    case DL_ERR_NOT_IMPLEMENTED: return "not implemented";
    case DL_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

int dl_status_exit_code(dl_status status) {
    switch (status) {
    case DL_OK: return 0;
    case DL_ERR_INVALID:
    case DL_ERR_CONFIG:
    case DL_ERR_FORMAT:
    case DL_ERR_UNSUPPORTED:
    case DL_ERR_NOT_IMPLEMENTED: return 2;
    case DL_ERR_INTERRUPTED: return DL_EXIT_REQUEUE;
    default: return 1;
    }
}

/* Formats into dst (capacity cap >= 4); a result that does not fit is cut and ends in "..." so the reader knows. */
static void format_truncated(char *dst, size_t cap, const char *fmt, va_list ap) {
    int n = vsnprintf(dst, cap, fmt, ap);
    if (n < 0)
        dst[0] = '\0';
    else if ((size_t)n >= cap)
        memcpy(dst + cap - 4, "...", 4);
}

/* dst = a + sep + b (+ tail), cut to cap with "..." when too long. */
static void join(char *dst, size_t cap, const char *a, const char *sep, const char *b, const char *tail) {
    const char *parts[4] = {a, sep, b, tail};
    size_t used = 0;
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(parts[i]);
        if (used + n >= cap) {
            memcpy(dst + used, parts[i], cap - 1 - used);
            memcpy(dst + cap - 4, "...", 4);
            return;
        }
        memcpy(dst + used, parts[i], n);
        used += n;
    }
    dst[used] = '\0';
}

dl_status dl_error_set(dl_status status, const char *file, int line, const char *fmt, ...) {
    dl_error_record *rec = &error_record;
    /* Format before touching the record: an argument may point into it (a previous message). */
    char buffer[DL_ERROR_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    format_truncated(buffer, sizeof buffer, fmt, ap);
    va_end(ap);
    memcpy(rec->message, buffer, sizeof buffer);
    rec->hint[0] = '\0';
    rec->status = status;
    snprintf(rec->location, sizeof rec->location, "%s:%d", file ? file : "?", line);
    return status;
}

void dl_error_context(const char *fmt, ...) {
    dl_error_record *rec = &error_record;
    char context[DL_ERROR_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    format_truncated(context, sizeof context, fmt, ap);
    va_end(ap);
    char previous[DL_ERROR_CAPACITY];
    memcpy(previous, rec->message, sizeof previous);
    /* A callee that returned a status without DL_FAIL leaves no message: the context alone, no dangling ": ". */
    join(rec->message, sizeof rec->message, context, previous[0] ? ": " : "", previous, "");
}

void dl_error_hint(const char *fmt, ...) {
    dl_error_record *rec = &error_record;
    char hint[DL_HINT_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    format_truncated(hint, sizeof hint, fmt, ap);
    va_end(ap);
    memcpy(rec->hint, hint, sizeof hint);
}

const char *dl_error_message(void) {
    dl_error_record *rec = &error_record;
    if (rec->hint[0])
        join(rec->composed, sizeof rec->composed, rec->message, " (hint: ", rec->hint, ")");
    else
        join(rec->composed, sizeof rec->composed, rec->message, "", "", "");
    return rec->composed;
}

const char *dl_error_location(void) { return error_record.location; }

dl_status dl_error_status(void) { return error_record.status; }

void dl_error_clear(void) {
    dl_error_record *rec = &error_record;
    rec->status = DL_OK;
    rec->message[0] = '\0';
    rec->hint[0] = '\0';
    rec->location[0] = '\0';
}
