/* tied_rows.c — local row sums, the all-gather of (id, row) pairs and the rank-order sum (see tied_rows.h). */
#include "comm/tied_rows.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"

static const char *const WHAT = "tied embedding rows";

struct dl_tied_rows {
    const dl_backend *be;
    int table_rows, width;
    int held;               /* rows are waiting for the exchange */
    int count;              /* distinct ids held */
    /* host */
    int32_t *ids;           /* [cap_ids]: the batch's ids, then the distinct ones sorted */
    int32_t *slots;         /* [cap_ids]: each token's row among the distinct ids */
    unsigned char *send;    /* count ids then count × width floats */
    unsigned char *recv;    /* every rank's send buffer, in rank order */
    int32_t *all_ids;       /* union of every rank's ids, sorted */
    float *sums;            /* [union × width] */
    int *ints;              /* the exchange's per-rank counts and displacements (6 × world) */
    size_t cap_ids, cap_slots, cap_send, cap_recv, cap_all, cap_sums, cap_ints; /* elements (send, recv: bytes) */
    /* device */
    int32_t *dev_ids;
    float *dev_rows;
    size_t cap_dev_ids, cap_dev_rows; /* elements */
};

dl_status dl_tied_rows_create(dl_tied_rows **out, const dl_backend *be, int table_rows, int width) {
    DL_REQUIRE(out && be && table_rows > 0 && width > 0, DL_ERR_INVALID,
               "dl_tied_rows_create: need a backend and a positive table shape (got %d × %d)", table_rows, width);
    *out = calloc(1, sizeof **out);
    DL_REQUIRE(*out != NULL, DL_ERR_NOMEM, "cannot allocate the tied embedding rows");
    (*out)->be = be;
    (*out)->table_rows = table_rows;
    (*out)->width = width;
    return DL_OK;
}

void dl_tied_rows_destroy(dl_tied_rows *t) {
    if (!t)
        return;
    free(t->ids);
    free(t->slots);
    free(t->send);
    free(t->recv);
    free(t->all_ids);
    free(t->sums);
    free(t->ints);
    dl_mem_free(t->be, t->dev_ids);
    dl_mem_free(t->be, t->dev_rows);
    free(t);
}

static int by_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Sorts ids[0..n) and drops repeats; returns the distinct count. */
static int sort_unique(int32_t *ids, int n) {
    qsort(ids, (size_t)n, sizeof *ids, by_id);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (u == 0 || ids[i] != ids[u - 1])
            ids[u++] = ids[i];
    return u;
}

/* Index of id in the sorted distinct ids[0..n) (present by construction). */
static int find_id(const int32_t *ids, int n, int32_t id) {
    const int32_t *p = bsearch(&id, ids, (size_t)n, sizeof *ids, by_id);
    return p ? (int)(p - ids) : -1;
}

dl_status dl_tied_rows_hold(dl_tied_rows *t, const int32_t *ids, const float *grad_rows, int n) {
    DL_REQUIRE(t && ids && grad_rows && n > 0, DL_ERR_INVALID, "dl_tied_rows_hold: NULL argument or n = %d", n);
    DL_REQUIRE(!t->held, DL_ERR_INVALID,
               "dl_tied_rows_hold: rows of an earlier backward pass are still waiting for their exchange");
    const dl_backend *be = t->be;
    size_t w = (size_t)t->width;
    DL_CHECK(dl_grow((void **)&t->ids, &t->cap_ids, (size_t)n, sizeof(int32_t), WHAT));
    DL_CHECK(dl_grow((void **)&t->slots, &t->cap_slots, (size_t)n, sizeof(int32_t), WHAT));
    DL_CHECK(dl_mem_to_host(be, t->slots, ids, (size_t)n * sizeof(int32_t)));
    for (int i = 0; i < n; i++)
        DL_REQUIRE(t->slots[i] >= 0 && t->slots[i] < t->table_rows, DL_ERR_INVALID,
                   "tied embedding rows: token %d has id %d, outside the table's %d rows", i, t->slots[i],
                   t->table_rows);
    memcpy(t->ids, t->slots, (size_t)n * sizeof(int32_t));
    int u = sort_unique(t->ids, n);
    for (int i = 0; i < n; i++)
        t->slots[i] = find_id(t->ids, u, t->slots[i]);
    /* Sum the rows per distinct id on the device: the embedding's own scatter-add onto a u-row table. */
    size_t row_bytes = (size_t)u * w * sizeof(float);
    DL_CHECK(dl_mem_grow(be, (void **)&t->dev_ids, &t->cap_dev_ids, (size_t)n, sizeof(int32_t), WHAT));
    DL_CHECK(dl_mem_grow(be, (void **)&t->dev_rows, &t->cap_dev_rows, (size_t)u * w, sizeof(float), WHAT));
    DL_CHECK(dl_mem_to_device(be, t->dev_ids, t->slots, (size_t)n * sizeof(int32_t)));
    DL_CHECK(dl_mem_zero(be, t->dev_rows, row_bytes));
    DL_CHECK(dl_op_embedding_backward(be, t->dev_rows, NULL, grad_rows, t->dev_ids, NULL, n, t->width, u, 0));
    size_t id_bytes = (size_t)u * sizeof(int32_t);
    DL_CHECK(dl_grow((void **)&t->send, &t->cap_send, id_bytes + row_bytes, 1, WHAT));
    memcpy(t->send, t->ids, id_bytes);
    DL_CHECK(dl_mem_to_host(be, t->send + id_bytes, t->dev_rows, row_bytes));
    t->count = u;
    t->held = 1;
    return DL_OK;
}

void dl_tied_rows_clear(dl_tied_rows *t) {
    if (t) {
        t->held = 0;
        t->count = 0;
    }
}

int dl_tied_rows_held(const dl_tied_rows *t) { return t ? t->held : 0; }

dl_status dl_tied_rows_exchange(dl_tied_rows *t, dl_world *world, float *table_grad, int local_failure) {
    DL_REQUIRE(t && world && table_grad, DL_ERR_INVALID, "dl_tied_rows_exchange: NULL argument");
    const char *what = WHAT;
    int W = world->size;
    size_t w = (size_t)t->width, pair = sizeof(int32_t) + w * sizeof(float);
    /* [W] each: what this rank announces, the announced row counts, then the all-gather's byte counts and
     * displacements (the send displacements stay 0: every rank gets the same buffer). */
    DL_CHECK(dl_grow((void **)&t->ints, &t->cap_ints, (size_t)W * 6, sizeof(int), WHAT));
    int *ints = t->ints;
    memset(ints, 0, (size_t)W * 6 * sizeof(int));
    int *announce = ints, *counts = ints + W, *send_bytes = ints + 2 * W, *send_displs = ints + 3 * W,
        *recv_bytes = ints + 4 * W, *recv_displs = ints + 5 * W;
    for (int r = 0; r < W; r++)
        announce[r] = local_failure ? -1 : t->held ? t->count : 0;
    dl_status s = dl_comm_alltoall_int(world, announce, counts, what);
    /* Counts first, so a rank that cannot take part makes every rank stop here, not hang in the all-gather. */
    size_t total = 0;
    for (int r = 0; s == DL_OK && r < W; r++) {
        if (counts[r] < 0) {
            s = local_failure ? DL_ERR_INVALID
                              : DL_FAIL(DL_ERR_RUNTIME, "%s: rank %d could not hand over its rows this step", what, r);
            break;
        }
        size_t b = (size_t)counts[r] * pair;
        if (b + total > (size_t)INT_MAX) {
            s = DL_FAIL(DL_ERR_RUNTIME, "%s: %zu bytes exceed one MPI exchange", what, b + total);
            break;
        }
        recv_displs[r] = (int)total;
        recv_bytes[r] = (int)b;
        total += b;
    }
    if (s == DL_OK)
        s = dl_grow((void **)&t->recv, &t->cap_recv, total + 1, 1, WHAT);
    if (s == DL_OK)
        s = dl_grow((void **)&t->all_ids, &t->cap_all, total / pair + 1, sizeof(int32_t), WHAT);
    if (s == DL_OK) {
        for (int r = 0; r < W; r++)
            send_bytes[r] = t->held ? (int)((size_t)t->count * pair) : 0;
        s = dl_comm_alltoallv(world, t->send, send_bytes, send_displs, t->recv, recv_bytes, recv_displs, what);
    }
    int U = 0;
    if (s == DL_OK && total > 0) {
        for (int r = 0; r < W; r++) {
            int n = counts[r];
            memcpy(t->all_ids + U, t->recv + recv_displs[r], (size_t)n * sizeof(int32_t));
            U += n;
        }
        U = sort_unique(t->all_ids, U);
        s = dl_grow((void **)&t->sums, &t->cap_sums, (size_t)U * w, sizeof(float), WHAT);
    }
    if (s == DL_OK && U > 0) {
        memset(t->sums, 0, (size_t)U * w * sizeof(float));
        for (int r = 0; r < W; r++) { /* rank order: every rank adds the same numbers in the same order */
            int n = counts[r];
            /* Every offset is a multiple of 4 bytes (pairs are 4 + 4·width), so the views are aligned. */
            const int32_t *ids = (const int32_t *)(t->recv + recv_displs[r]);
            const float *rows = (const float *)(t->recv + recv_displs[r] + (size_t)n * sizeof(int32_t));
            for (int i = 0; i < n; i++) {
                float *dst = t->sums + (size_t)find_id(t->all_ids, U, ids[i]) * w;
                const float *src = rows + (size_t)i * w;
                for (size_t c = 0; c < w; c++)
                    dst[c] += src[c];
            }
        }
        const dl_backend *be = t->be;
        s = dl_mem_grow(be, (void **)&t->dev_ids, &t->cap_dev_ids, (size_t)U, sizeof(int32_t), WHAT);
        if (s == DL_OK)
            s = dl_mem_grow(be, (void **)&t->dev_rows, &t->cap_dev_rows, (size_t)U * w, sizeof(float), WHAT);
        if (s == DL_OK)
            s = dl_mem_to_device(be, t->dev_ids, t->all_ids, (size_t)U * sizeof(int32_t));
        if (s == DL_OK)
            s = dl_mem_to_device(be, t->dev_rows, t->sums, (size_t)U * w * sizeof(float));
        if (s == DL_OK)
            s = dl_op_embedding_backward(be, table_grad, NULL, t->dev_rows, t->dev_ids, NULL, U, t->width,
                                         t->table_rows, 0);
    }
    dl_tied_rows_clear(t);
    return s;
}
