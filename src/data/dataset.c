/* dataset.c — record files as one array of records, and the document source over them (see dataset.h).
 *
 * Reads go through dl_record_file_view (the record layer maps files read-only), so a record costs its CRC checks
 * and a protobuf decode, no copy. Decode failures get "FILE: record I (at byte B)" prepended, so a record holding
 * the wrong features is as easy to find as a damaged one. */
#include "data/dataset.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/record.h"

struct dl_dataset {
    size_t nfiles;
    dl_record_file **files;
    uint64_t *first; /* [nfiles + 1] running record counts */
    char name[512];
};

void dl_dataset_close(dl_dataset *ds) {
    if (!ds)
        return;
    for (size_t f = 0; f < ds->nfiles; f++)
        dl_record_file_close(ds->files[f]);
    free(ds->files);
    free(ds->first);
    free(ds);
}

/* "a, b, c and 4 more" into ds->name. */
static void describe(dl_dataset *ds, const char *const *paths, size_t count) {
    size_t used = 0;
    ds->name[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *sep = i ? ", " : "";
        if (i == 3 || used + strlen(sep) + strlen(paths[i]) + 24 >= sizeof ds->name) {
            snprintf(ds->name + used, sizeof ds->name - used, " and %zu more", count - i);
            return;
        }
        used += (size_t)snprintf(ds->name + used, sizeof ds->name - used, "%s%s", sep, paths[i]);
    }
}

dl_status dl_dataset_open(dl_dataset **dataset, const char *const *paths, size_t count) {
    return dl_dataset_open_as(dataset, paths, count, NULL);
}

dl_status dl_dataset_open_as(dl_dataset **dataset, const char *const *paths, size_t count, const char *source) {
    DL_REQUIRE(dataset != NULL, DL_ERR_INVALID, "dl_dataset_open: dataset is NULL");
    *dataset = NULL;
    if (count == 0 || !paths) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "the dataset names no record file");
        if (source)
            dl_error_hint("set %s to record files, e.g. data/train.tfrecord", source);
        else
            dl_error_hint("name record files, e.g. data/train.tfrecord");
        return s;
    }
    /* The same file twice would be read twice per epoch: compare device and inode, which also catches aliases. */
    struct stat *ids = calloc(count, sizeof *ids);
    if (!ids)
        return DL_FAIL(DL_ERR_NOMEM, "opening %zu record files", count);
    for (size_t i = 0; i < count; i++) {
        if (!paths[i] || !paths[i][0]) {
            free(ids);
            return DL_FAIL(DL_ERR_INVALID, "the dataset's file %zu has an empty name", i);
        }
        if (stat(paths[i], &ids[i]) != 0)
            continue; /* the record layer reports it with the OS error */
        for (size_t j = 0; j < i; j++)
            if (ids[j].st_dev == ids[i].st_dev && ids[j].st_ino == ids[i].st_ino && ids[j].st_ino != 0) {
                free(ids);
                return DL_FAIL(DL_ERR_INVALID, "the dataset lists %s twice (also as %s): its records would be read "
                                               "twice per epoch",
                               paths[i], paths[j]);
            }
    }
    free(ids);
    dl_dataset *ds = calloc(1, sizeof *ds);
    if (ds) {
        ds->files = calloc(count, sizeof *ds->files);
        ds->first = calloc(count + 1, sizeof *ds->first);
    }
    if (!ds || !ds->files || !ds->first) {
        dl_dataset_close(ds);
        return DL_FAIL(DL_ERR_NOMEM, "opening %zu record files", count);
    }
    describe(ds, paths, count);
    for (size_t f = 0; f < count; f++) {
        dl_status s = dl_record_file_open(&ds->files[f], paths[f]);
        if (s != DL_OK) {
            dl_error_context("opening dataset %s", ds->name);
            dl_dataset_close(ds);
            return s;
        }
        ds->nfiles = f + 1;
        ds->first[f + 1] = ds->first[f] + dl_record_file_count(ds->files[f]);
    }
    if (ds->first[count] == 0) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "dataset %s has no records", ds->name);
        if (source)
            dl_error_hint("convert some data into it first (dealer data convert), or point %s elsewhere", source);
        else
            dl_error_hint("convert some data into it first (dealer data convert), or use another record file");
        dl_dataset_close(ds);
        return s;
    }
    *dataset = ds;
    return DL_OK;
}

dl_status dl_dataset_open_spec(dl_dataset **dataset, const char *spec) {
    DL_REQUIRE(dataset != NULL, DL_ERR_INVALID, "dl_dataset_open_spec: dataset is NULL");
    *dataset = NULL;
    if (!spec || !spec[0]) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "the dataset is empty: no record file given");
        dl_error_hint("set data.train (and data.valid) to record files, e.g. data/train.tfrecord");
        return s;
    }
    char *copy = strdup(spec);
    if (!copy)
        return DL_FAIL(DL_ERR_NOMEM, "parsing the dataset list");
    glob_t found;
    memset(&found, 0, sizeof found);
    dl_status status = DL_OK;
    int flags = 0, globbed = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        size_t n = strlen(item);
        while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
            item[--n] = '\0';
        if (!n)
            continue;
        int rc = glob(item, flags, NULL, &found);
        globbed = 1;
        if (rc == GLOB_NOMATCH) {
            status = DL_FAIL(DL_ERR_INVALID, "dataset %s: no file matches %s", spec, item);
            dl_error_hint("check the path (it is relative to the working directory)");
            break;
        }
        if (rc != 0) {
            status = DL_FAIL(rc == GLOB_NOSPACE ? DL_ERR_NOMEM : DL_ERR_IO, "dataset %s: cannot expand %s", spec,
                             item);
            break;
        }
        flags = GLOB_APPEND;
    }
    if (status == DL_OK && found.gl_pathc == 0) {
        status = DL_FAIL(DL_ERR_INVALID, "the dataset list \"%s\" names no file", spec);
        dl_error_hint("set data.train (and data.valid) to record files, e.g. data/train.tfrecord");
    }
    if (status == DL_OK)
        status = dl_dataset_open(dataset, (const char *const *)found.gl_pathv, found.gl_pathc);
    if (globbed)
        globfree(&found);
    free(copy);
    return status;
}

uint64_t dl_dataset_count(const dl_dataset *ds) { return ds ? ds->first[ds->nfiles] : 0; }
size_t dl_dataset_num_files(const dl_dataset *ds) { return ds ? ds->nfiles : 0; }
const char *dl_dataset_file_path(const dl_dataset *ds, size_t f) {
    return ds && f < ds->nfiles ? dl_record_file_path(ds->files[f]) : NULL;
}
uint64_t dl_dataset_file_count(const dl_dataset *ds, size_t f) {
    return ds && f < ds->nfiles ? dl_record_file_count(ds->files[f]) : 0;
}
const char *dl_dataset_name(const dl_dataset *ds) { return ds ? ds->name : ""; }

dl_status dl_dataset_locate(const dl_dataset *ds, uint64_t record, size_t *file, uint64_t *local) {
    DL_REQUIRE(ds && file && local, DL_ERR_INVALID, "dl_dataset_locate: NULL argument");
    DL_REQUIRE(record < ds->first[ds->nfiles], DL_ERR_INVALID, "record %llu is past the end of dataset %s (%llu records)",
               (unsigned long long)record, ds->name, (unsigned long long)ds->first[ds->nfiles]);
    /* The last file whose first record is ≤ record (empty files share their start with the next one). */
    size_t lo = 0, hi = ds->nfiles;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds->first[mid] <= record)
            lo = mid;
        else
            hi = mid;
    }
    *file = lo;
    *local = record - ds->first[lo];
    return DL_OK;
}

dl_status dl_dataset_view(const dl_dataset *ds, uint64_t record, const uint8_t **payload, size_t *length) {
    size_t f = 0;
    uint64_t local = 0;
    DL_CHECK(dl_dataset_locate(ds, record, &f, &local));
    return dl_record_file_view(ds->files[f], local, payload, length);
}

/* Adds "FILE: record I at byte B" to a decode failure (the record layer's own errors already say so). */
static dl_status decode_context(const dl_dataset *ds, uint64_t record) {
    size_t f = 0;
    uint64_t local = 0;
    if (dl_dataset_locate(ds, record, &f, &local) == DL_OK)
        dl_error_context("%s: record %llu at byte %llu", dl_record_file_path(ds->files[f]),
                         (unsigned long long)local,
                         (unsigned long long)dl_record_file_offset(ds->files[f], local));
    return dl_error_status();
}

static dl_status source_tokens(void *ctx, uint64_t record, dl_i32_array *tokens) {
    const dl_dataset *ds = ctx;
    const uint8_t *payload;
    size_t len;
    DL_CHECK(dl_dataset_view(ds, record, &payload, &len));
    if (dl_example_decode_tokens(payload, len, tokens) != DL_OK)
        return decode_context(ds, record);
    return DL_OK;
}

static dl_status source_click(void *ctx, uint64_t record, dl_click_row *row) {
    const dl_dataset *ds = ctx;
    const uint8_t *payload;
    size_t len;
    DL_CHECK(dl_dataset_view(ds, record, &payload, &len));
    if (dl_example_decode_click(payload, len, row) != DL_OK)
        return decode_context(ds, record);
    return DL_OK;
}

static dl_status source_pair(void *ctx, uint64_t record, dl_pref_pair *pair) {
    const dl_dataset *ds = ctx;
    const uint8_t *payload;
    size_t len;
    DL_CHECK(dl_dataset_view(ds, record, &payload, &len));
    if (dl_example_decode_pair(payload, len, pair) != DL_OK)
        return decode_context(ds, record);
    return DL_OK;
}

static void source_prefetch(void *ctx, uint64_t record, int stage) {
    const dl_dataset *ds = ctx;
    size_t f = 0;
    uint64_t local = 0;
    if (dl_dataset_locate(ds, record, &f, &local) == DL_OK)
        dl_record_file_prefetch(ds->files[f], local, stage);
    else
        dl_error_clear(); /* a hint for a record out of range: the read that follows reports it */
}

void dl_dataset_source(dl_dataset *ds, dl_doc_source *source) {
    memset(source, 0, sizeof *source);
    source->ctx = ds;
    source->num_records = dl_dataset_count(ds);
    source->name = dl_dataset_name(ds);
    source->read_tokens = source_tokens;
    source->read_click = source_click;
    source->read_pair = source_pair;
    source->prefetch = source_prefetch;
}
