/* click_device.h — moving an FM/FFM model's batches and table rows to and from a device backend.
 *
 * On a GPU a click model's table lives in device memory, while its batches arrive and its rank-to-rank row sums are
 * computed in host memory. This is the bridge click_model.c uses there ("staged" tables):
 *   - a prepared CSR batch (row offsets, the entries' table rows, fields, values, labels, instance scales) goes over
 *     in one copy, packed into one buffer that also holds room for the batch's logits;
 *   - a set of table rows is gathered into a compact device table (and, when asked, a host copy of it);
 *   - host row sums are added into the table, each float getting one IEEE addition (table row + sum), exactly what
 *     the host path computes.
 * Everything goes through the backend's copies and ops (dl_mem_*, and dl_op_embedding_forward / _backward as an exact
 * gather and scatter-add of whole rows), so the same code runs on the CPU backend, where tests check it against the
 * direct host path bit for bit. Buffers grow to the largest batch and then stay: a training loop allocates nothing
 * once they have. */
#ifndef DL_MODELS_CLICK_CLICK_DEVICE_H
#define DL_MODELS_CLICK_CLICK_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_click_device {
    const dl_backend *be;
    uint32_t *stage;   /* host: the packed batch */
    size_t stage_cap;  /* in 4-byte words */
    void *batch;       /* device: the packed batch, then room for its logits */
    size_t batch_cap;  /* in 4-byte words */
    int32_t *ids;      /* host: the row ids of a gather or an add */
    size_t ids_cap;
    int32_t *dev_ids;  /* device copy */
    size_t dev_ids_cap;
    float *rows;       /* device: compact rows (a gather's result, an add's sums) */
    size_t rows_cap;   /* floats */
} dl_click_device;

/* Starts empty buffers on backend be (nothing is allocated until first use). */
void dl_click_device_init(dl_click_device *d, const dl_backend *be);
/* Frees what the functions below allocated; safe on an initialised or zeroed struct. */
void dl_click_device_free(dl_click_device *d);

/* Copies the batch *rows describes in host memory (B rows, row_ptr[0..B], entries 0..row_ptr[B]-1; fields, labels
 * and instance_scale may be NULL) to the device and points *rows at the copies; *logits gets
 * device room for B floats. Both stay valid until the next call. */
dl_status dl_click_device_batch(dl_click_device *d, dl_click_rows *rows, float **logits);

/* Copies rows ids[0..n) (distinct, each < table_rows) of the device table [table_rows, row_floats] into a compact
 * device table [n, row_floats] (*compact, valid until the next gather or add; NULL when n is 0) and, when host is
 * set, into host [n, row_floats]. */
dl_status dl_click_device_gather(dl_click_device *d, const float *table, int64_t table_rows, int row_floats,
                                 const int64_t *ids, int64_t n, float **compact, float *host);

/* table[ids[i], :] += sums[i, :] for n distinct rows ids (each < table_rows) of the device table, sums [n,
 * row_floats] in host memory. */
dl_status dl_click_device_add(dl_click_device *d, float *table, int64_t table_rows, int row_floats,
                              const int64_t *ids, int64_t n, const float *sums);

#ifdef __cplusplus
}
#endif

#endif
