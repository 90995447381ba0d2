/* click_device.c — staging click batches and table rows on a device backend (see click_device.h).
 *
 * The batch is packed into 4-byte words (int32 offsets and rows, float values: all four bytes, so one buffer with
 * no padding holds them) and goes over in one dl_mem_to_device: one synchronous copy per step instead of six. Rows
 * move with the embedding ops because they are a gather (out[n] = wte[ids[n]], a copy) and a scatter-add
 * (wte[ids[n]] += dout[n]) over whole rows; with distinct ids every float of the table receives exactly one
 * addition, on either backend. */
#include "models/click/click_device.h"
#include "core/grow.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void dl_click_device_init(dl_click_device *d, const dl_backend *be) {
    memset(d, 0, sizeof *d);
    d->be = be;
}

void dl_click_device_free(dl_click_device *d) {
    if (!d)
        return;
    free(d->stage);
    free(d->ids);
    if (d->be) {
        if (d->batch)
            dl_mem_free(d->be, d->batch);
        if (d->dev_ids)
            dl_mem_free(d->be, d->dev_ids);
        if (d->rows)
            dl_mem_free(d->be, d->rows);
    }
    const dl_backend *be = d->be;
    memset(d, 0, sizeof *d);
    d->be = be;
}

dl_status dl_click_device_batch(dl_click_device *d, dl_click_rows *rows, float **logits) {
    DL_REQUIRE(d && d->be && rows && logits && rows->B >= 0 && rows->row_ptr, DL_ERR_INVALID,
               "dl_click_device_batch: bad arguments");
    const size_t B = (size_t)rows->B;
    const size_t nnz = B > 0 ? (size_t)rows->row_ptr[B] : 0;
    DL_REQUIRE(B == 0 || rows->row_ptr[B] >= 0, DL_ERR_INVALID, "dl_click_device_batch: row_ptr[%zu] = %d", B,
               (int)rows->row_ptr[B]);
    /* words: row_ptr, rows, fields, values, labels, scales (what is set), then the logits (device only) */
    size_t at = B + 1;
    const size_t o_rows = at;
    at += nnz;
    const size_t o_fields = at;
    at += rows->fields ? nnz : 0;
    const size_t o_values = at;
    at += nnz;
    const size_t o_labels = at;
    at += rows->labels ? B : 0;
    const size_t o_scale = at;
    at += rows->instance_scale ? B : 0;
    const size_t inputs = at, total = at + B;
    DL_CHECK(dl_grow((void **)&d->stage, &d->stage_cap, inputs, sizeof(uint32_t), "a staged click batch"));
    DL_CHECK(dl_mem_grow(d->be, &d->batch, &d->batch_cap, total, sizeof(uint32_t), "a click batch"));
    uint32_t *w = d->stage;
    memcpy(w, rows->row_ptr, (B + 1) * sizeof(int32_t));
    if (nnz) {
        memcpy(w + o_rows, rows->rows, nnz * sizeof(int32_t));
        if (rows->fields)
            memcpy(w + o_fields, rows->fields, nnz * sizeof(int32_t));
        memcpy(w + o_values, rows->values, nnz * sizeof(float));
    }
    if (rows->labels && B)
        memcpy(w + o_labels, rows->labels, B * sizeof(float));
    if (rows->instance_scale && B)
        memcpy(w + o_scale, rows->instance_scale, B * sizeof(float));
    DL_CHECK_CTX(dl_mem_to_device(d->be, d->batch, w, inputs * sizeof(uint32_t)), "copying a click batch to %s",
                 d->be->name);
    uint32_t *dev = (uint32_t *)d->batch;
    rows->row_ptr = (const int32_t *)dev;
    rows->rows = (const int32_t *)(dev + o_rows);
    if (rows->fields)
        rows->fields = (const int32_t *)(dev + o_fields);
    rows->values = (const float *)(dev + o_values);
    if (rows->labels)
        rows->labels = (const float *)(dev + o_labels);
    if (rows->instance_scale)
        rows->instance_scale = (const float *)(dev + o_scale);
    *logits = (float *)(dev + inputs);
    return DL_OK;
}

/* The ids as int32 on the device (table rows are 32-bit: model.hash_buckets < 2^31). */
static dl_status stage_ids(dl_click_device *d, const int64_t *ids, int64_t n, int64_t table_rows, int row_floats,
                           const char *op) {
    DL_REQUIRE(n >= 0 && n <= INT_MAX && table_rows <= INT_MAX && row_floats > 0, DL_ERR_INVALID,
               "%s: %lld rows of a %lld-row table with %d floats a row is more than one step can move", op,
               (long long)n, (long long)table_rows, row_floats);
    DL_CHECK(dl_grow((void **)&d->ids, &d->ids_cap, (size_t)n, sizeof(int32_t), "row ids"));
    DL_CHECK(dl_mem_grow(d->be, (void **)&d->dev_ids, &d->dev_ids_cap, (size_t)n, sizeof(int32_t), "row ids"));
    for (int64_t i = 0; i < n; i++) {
        DL_REQUIRE(ids[i] >= 0 && ids[i] < table_rows, DL_ERR_INVALID, "%s: row %lld is outside the table [0, %lld)",
                   op, (long long)ids[i], (long long)table_rows);
        d->ids[i] = (int32_t)ids[i];
    }
    DL_CHECK(dl_mem_to_device(d->be, d->dev_ids, d->ids, (size_t)n * sizeof(int32_t)));
    return dl_mem_grow(d->be, (void **)&d->rows, &d->rows_cap, (size_t)n * (size_t)row_floats, sizeof(float),
                       "table rows");
}

dl_status dl_click_device_gather(dl_click_device *d, const float *table, int64_t table_rows, int row_floats,
                                 const int64_t *ids, int64_t n, float **compact, float *host) {
    DL_REQUIRE(d && d->be && table && compact && (ids || n == 0), DL_ERR_INVALID,
               "dl_click_device_gather: bad arguments");
    *compact = NULL;
    if (n == 0)
        return DL_OK;
    DL_CHECK(stage_ids(d, ids, n, table_rows, row_floats, "dl_click_device_gather"));
    DL_CHECK(dl_op_embedding_forward(d->be, d->rows, d->dev_ids, NULL, table, NULL, (int)n, row_floats,
                                     (int)table_rows, 0));
    if (host)
        DL_CHECK(dl_mem_to_host(d->be, host, d->rows, (size_t)n * (size_t)row_floats * sizeof(float)));
    *compact = d->rows;
    return DL_OK;
}

dl_status dl_click_device_add(dl_click_device *d, float *table, int64_t table_rows, int row_floats,
                              const int64_t *ids, int64_t n, const float *sums) {
    DL_REQUIRE(d && d->be && table && ((ids && sums) || n == 0), DL_ERR_INVALID,
               "dl_click_device_add: bad arguments");
    if (n == 0)
        return DL_OK;
    DL_CHECK(stage_ids(d, ids, n, table_rows, row_floats, "dl_click_device_add"));
    DL_CHECK(dl_mem_to_device(d->be, d->rows, sums, (size_t)n * (size_t)row_floats * sizeof(float)));
    return dl_op_embedding_backward(d->be, table, NULL, d->rows, d->dev_ids, NULL, (int)n, row_floats,
                                    (int)table_rows, 0);
}
