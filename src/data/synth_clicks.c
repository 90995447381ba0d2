/* synth_clicks.c — replicate a libffm sample with re-hashed feature ids (see synth_clicks.h). The sample is parsed
 * once into memory (it is meant to be small: a few thousand rows), then copies are written one row at a time. */
#include "data/synth_clicks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "core/hash.h"
#include "core/progress.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/record.h"

typedef struct sample {
    size_t rows;
    float *labels;
    size_t *start;          /* [rows + 1] entry offsets */
    int32_t *fields, *features;
    float *values;
    size_t cap_rows, cap_entries;
} sample;

static void sample_free(sample *s) {
    free(s->labels);
    free(s->start);
    free(s->fields);
    free(s->features);
    free(s->values);
    memset(s, 0, sizeof *s);
}

static dl_status sample_add(sample *s, const dl_click_row *row) {
    size_t at = s->start ? s->start[s->rows] : 0, n = row->feature.len;
    if (s->rows + 2 > s->cap_rows) {
        size_t cap = s->cap_rows ? 2 * s->cap_rows : 1024;
        float *l = realloc(s->labels, cap * sizeof(float));
        if (l)
            s->labels = l;
        size_t *st = l ? realloc(s->start, (cap + 1) * sizeof(size_t)) : NULL;
        if (st)
            s->start = st;
        DL_REQUIRE(l && st, DL_ERR_NOMEM, "cannot hold the sample in memory");
        if (s->rows == 0)
            s->start[0] = 0;
        s->cap_rows = cap;
    }
    if (at + n > s->cap_entries) {
        size_t cap = s->cap_entries ? 2 * s->cap_entries : 4096;
        while (cap < at + n)
            cap *= 2;
        int32_t *f = realloc(s->fields, cap * sizeof(int32_t));
        if (f)
            s->fields = f;
        int32_t *j = f ? realloc(s->features, cap * sizeof(int32_t)) : NULL;
        if (j)
            s->features = j;
        float *v = j ? realloc(s->values, cap * sizeof(float)) : NULL;
        if (v)
            s->values = v;
        DL_REQUIRE(f && j && v, DL_ERR_NOMEM, "cannot hold the sample in memory");
        s->cap_entries = cap;
    }
    memcpy(s->fields + at, row->field.data, n * sizeof(int32_t));
    memcpy(s->features + at, row->feature.data, n * sizeof(int32_t));
    memcpy(s->values + at, row->value.data, n * sizeof(float));
    s->labels[s->rows] = row->label;
    s->start[++s->rows] = at + n;
    return DL_OK;
}

static dl_status add_sample_row(void *ctx, const dl_click_row *row, const char *where) {
    (void)where;
    return sample_add((sample *)ctx, row);
}

static dl_status read_sample(const char *path, sample *s) {
    dl_status st = dl_libffm_for_each_row(path, "name a libffm text file (label field:feature:value ...)",
                                          add_sample_row, s);
    if (st == DL_OK && s->rows == 0) {
        st = DL_FAIL(DL_ERR_INVALID, "the sample %s holds no rows", path);
        dl_error_hint("give a libffm text file with at least one line");
    }
    return st;
}

/* One copy's row as libffm text into buf (grown as needed); its length. */
static dl_status format_text(const dl_click_row *row, char **buf, size_t *cap, size_t *len) {
    size_t need = 16 + row->feature.len * 48;
    if (need > *cap) {
        char *b = realloc(*buf, need);
        DL_REQUIRE(b != NULL, DL_ERR_NOMEM, "cannot allocate a line buffer");
        *buf = b;
        *cap = need;
    }
    size_t at = (size_t)snprintf(*buf, *cap, "%d", row->label > 0.0f ? 1 : 0);
    for (size_t e = 0; e < row->feature.len; e++) {
        /* the shortest of %.6g and %.9g that reads back as the same float */
        char value[32];
        snprintf(value, sizeof value, "%.6g", (double)row->value.data[e]);
        if (strtof(value, NULL) != row->value.data[e])
            snprintf(value, sizeof value, "%.9g", (double)row->value.data[e]);
        at += (size_t)snprintf(*buf + at, *cap - at, " %d:%d:%s", (int)row->field.data[e], (int)row->feature.data[e],
                               value);
    }
    (*buf)[at++] = '\n';
    *len = at;
    return DL_OK;
}

dl_status dl_synth_clicks(const dl_synth_clicks_options *o, dl_synth_clicks_result *result) {
    DL_REQUIRE(o && o->sample && o->output, DL_ERR_INVALID, "dl_synth_clicks: NULL argument");
    DL_REQUIRE(o->rows > 0, DL_ERR_INVALID, "synth-clicks: --rows must be at least 1");
    DL_REQUIRE(o->id_space > 0 && o->id_space <= ((uint64_t)1 << 31), DL_ERR_INVALID,
               "synth-clicks: --id-space %" PRIu64 " must be in [1, 2^31]", o->id_space);
    dl_synth_clicks_result res;
    memset(&res, 0, sizeof res);
    sample s;
    memset(&s, 0, sizeof s);
    DL_CHECK(read_sample(o->sample, &s));
    res.sample_rows = s.rows;
    dl_click_row row;
    memset(&row, 0, sizeof row);
    dl_record_writer *writer = NULL;
    dl_atomic_file text;
    memset(&text, 0, sizeof text);
    dl_status st = o->text ? dl_atomic_open(&text, o->output) : dl_record_writer_open(&writer, o->output);
    dl_progress progress;
    if (o->progress)
        dl_progress_begin(&progress, "synth-clicks", o->rows, 0, "rows");
    uint8_t *payload = NULL;
    size_t payload_cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    for (uint64_t r = 0; r < o->rows && st == DL_OK; r++) {
        uint64_t copy = r / s.rows, i = r % s.rows;
        size_t a = s.start[i], n = s.start[i + 1] - a;
        row.label = s.labels[i];
        row.field.len = row.feature.len = row.value.len = 0;
        st = dl_i32_array_reserve(&row.field, n);
        if (st == DL_OK)
            st = dl_i32_array_reserve(&row.feature, n);
        if (st == DL_OK)
            st = dl_f32_array_reserve(&row.value, n);
        for (size_t e = 0; e < n && st == DL_OK; e++) {
            uint64_t id = dl_hash_pair(copy, (uint64_t)(uint32_t)s.features[a + e]) % o->id_space;
            row.field.data[e] = s.fields[a + e];
            row.feature.data[e] = (int32_t)id;
            row.value.data[e] = s.values[a + e];
        }
        row.field.len = row.feature.len = row.value.len = n;
        size_t len = 0;
        if (st == DL_OK && o->text) {
            st = format_text(&row, &line, &line_cap, &len);
            if (st == DL_OK)
                st = dl_atomic_write(&text, line, len);
            res.bytes += len;
        } else if (st == DL_OK) {
            st = dl_example_encode_click(&row, &payload, &payload_cap, &len);
            if (st == DL_OK)
                st = dl_record_writer_append(writer, payload, len);
        }
        res.rows++;
        res.entries += n;
        if (o->progress)
            dl_progress_update(&progress, r + 1, r + 1);
    }
    if (o->progress)
        dl_progress_end(&progress);
    if (!o->text && writer)
        res.bytes = dl_record_writer_bytes(writer);
    if (st == DL_OK) {
        st = o->text ? dl_atomic_commit(&text) : dl_record_writer_close(writer);
        writer = NULL;
    }
    if (st != DL_OK) {
        if (o->text)
            dl_atomic_abort(&text);
        else
            dl_record_writer_abort(writer);
    }
    free(payload);
    free(line);
    dl_click_row_free(&row);
    sample_free(&s);
    if (st == DL_OK && result)
        *result = res;
    return st;
}
