/* progress.c — the terminal progress bar (see progress.h).
 *
 * The line is formatted into a stack buffer and written with one fputs, preceded by a carriage return and followed
 * by "erase to end of line", so a shorter line never leaves the tail of a longer one. The rate is the average since
 * the start: smoother than an instantaneous rate and good enough for an ETA on a steady converter. */
#include "core/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/timer.h"

enum { DL_PROGRESS_BAR_WIDTH = 24 };

/* Appends printf output at *len, never past cap-1. */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
}

/* 1234567 -> "1,234,567". */
static void format_count(char *out, size_t cap, uint64_t v) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

/* An amount: bytes in kB/MB/GB (decimal), counts with separators. */
static void format_amount(char *out, size_t cap, double v, int bytes) {
    if (!bytes) {
        format_count(out, cap, (uint64_t)v);
        return;
    }
    if (v >= 1e9)
        snprintf(out, cap, "%.2f GB", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, cap, "%.1f MB", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, cap, "%.1f kB", v / 1e3);
    else
        snprintf(out, cap, "%.0f B", v);
}

/* A rate per second: bytes as MB/s etc., counts as 12.3K/s. */
static void format_rate(char *out, size_t cap, double per_s, int bytes) {
    if (bytes) {
        char amount[32];
        format_amount(amount, sizeof amount, per_s, 1);
        snprintf(out, cap, "%s/s", amount);
    } else if (per_s >= 1e6) {
        snprintf(out, cap, "%.1fM/s", per_s / 1e6);
    } else if (per_s >= 1e3) {
        snprintf(out, cap, "%.1fK/s", per_s / 1e3);
    } else {
        snprintf(out, cap, "%.0f/s", per_s);
    }
}

static void format_duration(char *out, size_t cap, double seconds) {
    if (seconds < 0 || seconds > 1e8) {
        snprintf(out, cap, "?");
        return;
    }
    unsigned long s = (unsigned long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, cap, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, cap, "%lu:%02lu", s / 60, s % 60);
}

size_t dl_progress_format(char *buf, size_t cap, const char *label, uint64_t done, uint64_t total, int bytes,
                          const char *items, uint64_t count, double elapsed, int width) {
    if (!buf || cap == 0)
        return 0;
    size_t len = 0;
    buf[0] = '\0';
    char a[48], b[48], r[48];
    append(buf, cap, &len, "%s", label ? label : "");
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    if (total > 0) {
        double frac = done >= total ? 1.0 : (double)done / (double)total;
        if (width > 0) {
            int filled = (int)(frac * width);
            append(buf, cap, &len, "  [");
            for (int i = 0; i < width; i++)
                append(buf, cap, &len, "%c", i < filled ? '#' : '.');
            append(buf, cap, &len, "]");
        }
        format_amount(a, sizeof a, (double)done, bytes);
        format_amount(b, sizeof b, (double)total, bytes);
        append(buf, cap, &len, " %3d%%  %s/%s", (int)(frac * 100.0), a, b);
    } else {
        format_amount(a, sizeof a, (double)done, bytes);
        append(buf, cap, &len, "  %s", a);
    }
    format_rate(r, sizeof r, rate, bytes);
    append(buf, cap, &len, "  %s", r);
    if (items) {
        format_count(a, sizeof a, count);
        append(buf, cap, &len, "  %s %s", a, items);
    }
    if (total > 0 && done < total && rate > 0) {
        format_duration(a, sizeof a, (double)(total - done) / rate);
        append(buf, cap, &len, "  ETA %s", a);
    } else if (total > 0 && done >= total) {
        format_duration(a, sizeof a, elapsed);
        append(buf, cap, &len, "  in %s", a);
    }
    return len;
}

static void draw(dl_progress *p, double now) {
    char line[256];
    dl_progress_format(line, sizeof line, p->label, p->done, p->total, p->bytes, p->items, p->count, now - p->start,
                       DL_PROGRESS_BAR_WIDTH);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->last_draw = now;
    p->drawn = 1;
}

void dl_progress_begin(dl_progress *p, const char *label, uint64_t total, int bytes, const char *items) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    const char *env = getenv("DEALER_PROGRESS");
    p->enabled = isatty(STDERR_FILENO) && !(env && strcmp(env, "0") == 0);
    p->label = label;
    p->items = items;
    p->total = total;
    p->bytes = bytes;
    p->start = dl_time_seconds();
    p->last_draw = p->start;
}

void dl_progress_update(dl_progress *p, uint64_t done, uint64_t count) {
    if (!p)
        return;
    p->done = done;
    p->count = count;
    if (!p->enabled)
        return;
    double now = dl_time_seconds();
    if (now - p->last_draw >= 0.1)
        draw(p, now);
}

void dl_progress_end(dl_progress *p) {
    if (!p || !p->enabled)
        return;
    /* Short jobs finish before the first draw: nothing to clean up and nothing worth showing. */
    if (p->drawn) {
        draw(p, dl_time_seconds());
        fputc('\n', stderr);
        fflush(stderr);
    }
    p->enabled = 0;
}
