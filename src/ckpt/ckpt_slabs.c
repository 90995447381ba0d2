/* ckpt_slabs.c — split tensors (row-sharded tables, comm/shard_layout.h) written and read through contiguous slabs.
 *
 * A split tensor's rows lie scattered over the ranks (by hash, so neighbours mostly live on different ranks), and
 * this rank's rows are back to back in its own buffer. Writing them where they are would hand HDF5 and MPI-IO one
 * selection piece per row, and both keep hundreds of bytes of bookkeeping per piece: measured, 33 MiB more heap on
 * each of 2 ranks to write a 34 MiB table (85 MiB on 3), as much as gathering the table (and HDF5 1.10 builds such
 * selections in quadratic time). So split tensors move in rounds over windows of rows: in each window rank r owns
 * the contiguous slab of rows [a + r·per, a + (r+1)·per); to write, the ranks holding that slab's rows send them to
 * it (their ids, then the rows straight from their buffers, where a window's rows are back to back) and it writes
 * one contiguous block; to load, each rank reads its slab and sends every row to the rank asking for it, which
 * receives them straight into its buffer. Per round and rank that is one slab (options->slab_bytes, 4 MiB unless
 * set, rounded up to whole chunks when it holds one, so that a compressed chunk is written whole by one rank) plus
 * the rows in transit, whatever the table size. Rows every rank maps (a node's shared table, shard_layout.h's
 * shared_row) need no routing: each slab owner copies its rows into its slab to write it, and out of it to load.
 *
 * The slab owners also check the layout: every row of their slab must arrive (be asked for) exactly once. A failed
 * check, like a failed read, does not stop the rounds (the other ranks are waiting in them): it is reported when
 * they are done, and the checkpoint is not committed (or the load fails) on every rank. */
#include "ckpt/ckpt_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/fault.h"

enum { DEFAULT_SLAB_BYTES = 4 << 20 };

typedef struct slab_plan {
    uint64_t rows, row_len; /* the tensor's rows, floats per row */
    uint64_t per;           /* rows per slab */
    uint64_t window;        /* rows per round: per · world size */
} slab_plan;

/* The rounds of split tensor d on `world` ranks with slabs of about slab_bytes (0: the default). */
static slab_plan slab_plan_of(const dl_ckpt_planned *d, int world, size_t slab_bytes) {
    slab_plan g;
    g.rows = d->dims[0];
    g.row_len = g.rows ? d->numel / g.rows : 1;
    hsize_t chunk[DL_TENSOR_MAX_DIMS];
    dl_ckpt_chunk_dims(d, chunk);
    uint64_t chunk_rows = chunk[0] ? chunk[0] : 1;
    uint64_t per = (slab_bytes ? slab_bytes : DEFAULT_SLAB_BYTES) / (g.row_len * sizeof(float));
    per = per < 1 ? 1 : per;
    g.per = per >= chunk_rows ? (per + chunk_rows - 1) / chunk_rows * chunk_rows : per;
    g.window = g.per * (uint64_t)world;
    return g;
}

void dl_ckpt_slab_route_free(dl_ckpt_slab_route *r) {
    free(r->to);
    free(r->from);
    for (int k = 0; k < 4; k++)
        free(r->bytes[k]);
    free(r->ids_out);
    free(r->ids_in);
    free(r->slab);
    free(r->transit);
    free(r->seen);
    memset(r, 0, sizeof *r);
}

dl_status dl_ckpt_slab_route_init(dl_ckpt_slab_route *r, int world) {
    memset(r, 0, sizeof *r);
    int ok = (r->to = calloc((size_t)world, sizeof(int))) && (r->from = calloc((size_t)world, sizeof(int)));
    for (int k = 0; k < 4 && ok; k++)
        ok = (r->bytes[k] = calloc((size_t)world, sizeof(int))) != NULL;
    if (!ok) {
        dl_ckpt_slab_route_free(r);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the checkpoint's row routes for %d ranks", world);
    }
    return DL_OK;
}

/* Makes *p hold at least `need` elements (growing by half again at least, so a buffer filled element by element
 * is reallocated a logarithmic number of times). */
static dl_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return DL_OK;
    size_t n = need > *cap + *cap / 2 ? need : *cap + *cap / 2;
    void *q = realloc(*p, (n ? n : 1) * elem);
    DL_REQUIRE(q != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes to move checkpoint rows", n * elem);
    *p = q;
    *cap = n;
    return DL_OK;
}

/* Sizes the buffers for the rounds of a tensor with slabs of g->per rows up front: a balanced round then never
 * reallocates (a reallocation briefly holds both copies). */
static dl_status slab_route_reserve(dl_ckpt_slab_route *r, const slab_plan *g) {
    size_t per = (size_t)g->per, floats = per * (size_t)g->row_len;
    DL_CHECK(grow((void **)&r->ids_out, &r->cap_out, per + per / 4, sizeof(int64_t)));
    DL_CHECK(grow((void **)&r->ids_in, &r->cap_in, per, sizeof(int64_t)));
    DL_CHECK(grow((void **)&r->slab, &r->cap_slab, floats, sizeof(float)));
    DL_CHECK(grow((void **)&r->transit, &r->cap_transit, floats, sizeof(float)));
    return grow((void **)&r->seen, &r->cap_seen, per, 1);
}

/* Byte counts and displacements of per-rank item counts (MPI's int counts; a round stays far below 2 GiB). */
static dl_status layout_bytes(const int *items, int world, size_t item_bytes, int *counts, int *displs) {
    uint64_t at = 0;
    for (int q = 0; q < world; q++) {
        uint64_t bytes = (uint64_t)items[q] * item_bytes;
        DL_REQUIRE(bytes <= INT32_MAX && at <= INT32_MAX, DL_ERR_INVALID,
                   "a round of checkpoint rows exceeds MPI's 2 GiB message limit");
        counts[q] = (int)bytes;
        displs[q] = (int)at;
        at += bytes;
    }
    DL_REQUIRE(at <= INT32_MAX, DL_ERR_INVALID, "a round of checkpoint rows exceeds MPI's 2 GiB message limit");
    return DL_OK;
}

/* Checks a split tensor's layout on this rank before any row moves: the rows it holds are in slots 0, 1, 2, ...
 * in row order and inside its buffer (shard_layout.h). */
dl_status dl_ckpt_check_split_rows(const dl_ckpt_planned *d) {
    const dl_shard_layout *l = d->split;
    uint64_t rows = d->dims[0], row_len = rows ? d->numel / rows : 1;
    int64_t next = 0;
    for (uint64_t row = 0; row < rows; row++) {
        int64_t slot = l->local_row(l->ctx, d->tensor, (int64_t)row);
        if (slot < 0)
            continue;
        if (slot != next) {
            dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: row %llu is in slot %lld of this rank's buffer, but the rows "
                                  "it holds must lie back to back in row order (slot %lld)", d->name,
                                  (unsigned long long)row, (long long)slot, (long long)next);
            dl_error_hint("a model's shard layout numbers its rows in increasing order (comm/shard_layout.h)");
            return s;
        }
        next++;
    }
    if (l->local_offset[d->tensor] + (uint64_t)next * row_len > l->local_numel)
        return DL_FAIL(DL_ERR_INVALID, "%s: this rank's %lld rows end past its %zu-float buffer", d->name,
                       (long long)next, l->local_numel);
    return DL_OK;
}

/* The rows of window [a, b) this rank holds (a checked layout) into r->ids_out, increasing, with, in r->to, how many
 * fall in each rank's slab; *first is the slot of the first, *next the slot after this window's. */
static dl_status held_rows(dl_ckpt_slab_route *r, const dl_ckpt_planned *d, const slab_plan *g, int world, uint64_t a,
                           uint64_t b, int64_t *next, int64_t *first, int64_t *held) {
    const dl_shard_layout *l = d->split;
    memset(r->to, 0, (size_t)world * sizeof(int));
    *first = *next;
    *held = 0;
    for (uint64_t row = a; row < b; row++) {
        if (l->local_row(l->ctx, d->tensor, (int64_t)row) < 0)
            continue;
        DL_CHECK(grow((void **)&r->ids_out, &r->cap_out, (size_t)*held + 1, sizeof(int64_t)));
        r->ids_out[(*held)++] = (int64_t)row;
        r->to[(row - a) / g->per]++;
        (*next)++;
    }
    return DL_OK;
}

/* The end of the window of rows that starts at a. */
static uint64_t window_end(const slab_plan *g, uint64_t a) {
    return a + g->window < g->rows ? a + g->window : g->rows;
}

/* The slab this rank owns in window [a, b): rows [*lo, *hi). */
static void slab_of(const slab_plan *g, int rank, uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi) {
    uint64_t start = a + (uint64_t)rank * g->per;
    *lo = start < b ? start : b;
    *hi = start + g->per < b ? start + g->per : b;
    if (*hi < *lo)
        *hi = *lo;
}

/* Collective: every rank tells every slab owner which of its rows it holds (ids into r->ids_in, r->from[q] from
 * rank q), and sizes r->transit for the rows of the round. */
static dl_status exchange_ids(dl_world *w, dl_ckpt_slab_route *r, const slab_plan *g, uint64_t *arriving) {
    DL_CHECK(dl_comm_alltoall_int(w, r->to, r->from, "checkpoint rows: counts"));
    DL_CHECK(layout_bytes(r->to, w->size, sizeof(int64_t), r->bytes[0], r->bytes[1]));
    DL_CHECK(layout_bytes(r->from, w->size, sizeof(int64_t), r->bytes[2], r->bytes[3]));
    uint64_t n = 0;
    for (int q = 0; q < w->size; q++)
        n += (uint64_t)r->from[q];
    DL_CHECK(grow((void **)&r->ids_in, &r->cap_in, (size_t)n, sizeof(int64_t)));
    DL_CHECK(grow((void **)&r->transit, &r->cap_transit, (size_t)(n * g->row_len), sizeof(float)));
    *arriving = n;
    return dl_comm_alltoallv(w, r->ids_out, r->bytes[0], r->bytes[1], r->ids_in, r->bytes[2], r->bytes[3],
                             "checkpoint rows: ids");
}

/* Checks that the ids that arrived are each row of slab [lo, hi) once (marking r->seen); the first fault names
 * the row. */
static dl_status check_slab_ids(dl_ckpt_slab_route *r, const dl_ckpt_planned *d, uint64_t n, uint64_t lo, uint64_t hi) {
    memset(r->seen, 0, (size_t)(hi - lo));
    dl_status s = DL_OK;
    for (uint64_t j = 0; j < n && s == DL_OK; j++) {
        int64_t id = r->ids_in[j];
        if (id < (int64_t)lo || id >= (int64_t)hi)
            s = DL_FAIL(DL_ERR_INVALID, "%s: row %lld was routed to the slab of rows [%llu, %llu)", d->name,
                        (long long)id, (unsigned long long)lo, (unsigned long long)hi);
        else if (r->seen[id - (int64_t)lo]++)
            s = DL_FAIL(DL_ERR_INVALID, "%s: row %lld is held by two ranks", d->name, (long long)id);
    }
    for (uint64_t i = 0; i < hi - lo && s == DL_OK; i++)
        if (!r->seen[i])
            s = DL_FAIL(DL_ERR_INVALID, "%s: row %llu is held by no rank", d->name, (unsigned long long)(lo + i));
    if (s != DL_OK)
        dl_error_hint("the model's shard layout must give every row to exactly one rank (comm/shard_layout.h)");
    return s;
}

/* The start of a round over the window of rows from a: this rank's rows in it (none once *local failed: it still
 * takes part in the rounds), the first at slot *first of its buffer, and its own slab [*lo, *hi); then the slab
 * owners learn which rows each rank holds (exchange_ids), *n of them arriving here. */
static dl_status round_begin(dl_world *w, dl_ckpt_slab_route *r, const dl_ckpt_planned *d, const slab_plan *g,
                             uint64_t a, int64_t *next, dl_status *local, int64_t *first, uint64_t *lo, uint64_t *hi,
                             uint64_t *n) {
    uint64_t b = window_end(g, a);
    int64_t held = 0;
    *first = 0;
    if (*local == DL_OK)
        *local = held_rows(r, d, g, w->size, a, b, next, first, &held);
    if (*local != DL_OK) {
        memset(r->to, 0, (size_t)w->size * sizeof(int));
        *first = 0;
    }
    slab_of(g, w->rank, a, b, lo, hi);
    return exchange_ids(w, r, g, n);
}

/* Copies this rank's slab [lo, hi) of a split tensor whose every row it reaches in place (d->shared_rows) from
 * those rows into r->slab (to_slab) or back: no exchange. A row the layout cannot place fails as a row no rank
 * holds. */
static dl_status copy_shared_slab(dl_ckpt_slab_route *r, const dl_ckpt_planned *d, const slab_plan *g, uint64_t lo,
                                  uint64_t hi, int to_slab) {
    const dl_shard_layout *l = d->split;
    const size_t row_bytes = (size_t)g->row_len * sizeof(float);
    for (uint64_t row = lo; row < hi; row++) {
        float *shared = l->shared_row(l->ctx, d->tensor, (int64_t)row);
        if (!shared) {
            dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: row %llu is held by no rank", d->name, (unsigned long long)row);
            dl_error_hint("the model's shard layout must place every row in the shared memory (comm/shard_layout.h)");
            return s;
        }
        float *in_slab = r->slab + (size_t)(row - lo) * g->row_len;
        memcpy(to_slab ? in_slab : shared, to_slab ? shared : in_slab, row_bytes);
    }
    return DL_OK;
}

/* Collective: writes split dataset d (created, open in dset) in rounds; *raw gets this rank's share of its CRC
 * register. Coverage and write failures go to *local (the first one; later rounds then check nothing) and the
 * rounds go on; a failed exchange is returned. */
dl_status dl_ckpt_write_split(dl_world *w, hid_t dset, hid_t dxpl, int collective, const dl_ckpt_planned *d,
                              size_t slab_bytes, dl_ckpt_slab_route *r, uint32_t *raw, dl_status *local,
                              const char *path) {
    const slab_plan g = slab_plan_of(d, w->size, slab_bytes);
    const size_t row_bytes = (size_t)g.row_len * sizeof(float);
    int64_t next = 0;
    *raw = 0;
    DL_CHECK(slab_route_reserve(r, &g));
    for (uint64_t a = 0; a < g.rows; a += g.window) {
        uint64_t lo, hi, n;
        int64_t first;
        if (d->shared_rows) {
            slab_of(&g, w->rank, a, window_end(&g, a), &lo, &hi);
            if (*local == DL_OK)
                *local = copy_shared_slab(r, d, &g, lo, hi, 1);
        } else {
            DL_CHECK(round_begin(w, r, d, &g, a, &next, local, &first, &lo, &hi, &n));
            DL_CHECK(layout_bytes(r->to, w->size, row_bytes, r->bytes[0], r->bytes[1]));
            DL_CHECK(layout_bytes(r->from, w->size, row_bytes, r->bytes[2], r->bytes[3]));
            DL_CHECK(dl_comm_alltoallv(w, d->base + (size_t)first * row_bytes, r->bytes[0], r->bytes[1], r->transit,
                                       r->bytes[2], r->bytes[3], "checkpoint rows: data"));
            if (*local == DL_OK)
                *local = check_slab_ids(r, d, n, lo, hi);
            for (uint64_t j = 0; *local == DL_OK && j < n; j++)
                memcpy(r->slab + (size_t)((uint64_t)r->ids_in[j] - lo) * g.row_len,
                       r->transit + (size_t)j * g.row_len, row_bytes);
        }
        /* One contiguous block of rows per rank (possibly none), written collectively. */
        hsize_t start[DL_TENSOR_MAX_DIMS] = {lo}, count[DL_TENSOR_MAX_DIMS];
        for (int k = 0; k < d->ndim; k++)
            count[k] = k == 0 ? (hi > lo ? hi - lo : 1) : d->dims[k];
        hid_t fspace = H5Screate_simple(d->ndim, d->dims, NULL);
        hid_t mspace = H5Screate_simple(d->ndim, count, NULL); /* the block's shape: HDF5's fast path */
        herr_t ok = hi > lo ? H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL)
                            : H5Sselect_none(fspace);
        if (ok >= 0 && hi == lo)
            ok = H5Sselect_none(mspace);
        int injected = hi > lo ? dl_fault_hit(DL_FAULT_WRITE) : 0;
        if (ok >= 0 && (!injected || collective))
            ok = H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, r->slab);
        H5Sclose(mspace);
        H5Sclose(fspace);
        if ((ok < 0 || injected) && *local == DL_OK)
            *local = dl_ckpt_write_failure(path, injected, "cannot write rows [%llu, %llu) of %s",
                                           (unsigned long long)lo, (unsigned long long)hi, d->name);
        if (hi > lo)
            *raw ^= dl_ckpt_raw_piece(r->slab, (size_t)(hi - lo) * row_bytes, lo * row_bytes, d->numel * sizeof(float));
    }
    return DL_OK;
}

/* Collective: reads split dataset `d` (open in dset, or -1 when this rank could not open it) in rounds, each rank
 * its slab, into the rows this rank holds at `out` (rows a layout shares: straight into the shared memory); *raw
 * gets this rank's share of its CRC register (the slabs cover every row once). Read and coverage failures go to
 * *local (the first one) and the rounds go on; a failed exchange is returned. */
dl_status dl_ckpt_read_split(dl_world *w, hid_t dset, const dl_ckpt_planned *d, size_t slab_bytes, float *out,
                             dl_ckpt_slab_route *r, uint32_t *raw, dl_status *local, const char *path) {
    const slab_plan g = slab_plan_of(d, w->size, slab_bytes);
    const size_t row_bytes = (size_t)g.row_len * sizeof(float);
    int64_t next = 0;
    if (dset < 0 && *local == DL_OK)
        *local = DL_FAIL(DL_ERR_FORMAT, "%s: cannot open %s", path, d->name);
    *raw = 0;
    DL_CHECK(slab_route_reserve(r, &g));
    for (uint64_t a = 0; a < g.rows; a += g.window) {
        uint64_t lo, hi, n = 0;
        int64_t first = 0;
        if (d->shared_rows)
            slab_of(&g, w->rank, a, window_end(&g, a), &lo, &hi);
        else
            DL_CHECK(round_begin(w, r, d, &g, a, &next, local, &first, &lo, &hi, &n));
        if (hi > lo) { /* this rank's slab, one contiguous block */
            herr_t ok = -1;
            if (dset >= 0) {
                hsize_t start[DL_TENSOR_MAX_DIMS] = {lo}, count[DL_TENSOR_MAX_DIMS];
                for (int k = 0; k < d->ndim; k++)
                    count[k] = k == 0 ? hi - lo : d->dims[k];
                hid_t fspace = H5Dget_space(dset);
                hid_t mspace = H5Screate_simple(d->ndim, count, NULL); /* the block's shape: HDF5's fast path */
                ok = fspace >= 0 ? H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) : -1;
                if (ok >= 0)
                    ok = H5Dread(dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, r->slab);
                H5Sclose(mspace);
                if (fspace >= 0)
                    H5Sclose(fspace);
            }
            if (ok < 0) {
                memset(r->slab, 0, (size_t)(hi - lo) * row_bytes);
                if (*local == DL_OK) {
                    *local = DL_FAIL(DL_ERR_FORMAT, "%s: rows [%llu, %llu) of tensor %s cannot be read (truncated "
                                     "or damaged file?)", path, (unsigned long long)lo, (unsigned long long)hi, d->name);
                    dl_error_hint("resume from an earlier step file in the same directory");
                }
            }
            *raw ^= dl_ckpt_raw_piece(r->slab, (size_t)(hi - lo) * row_bytes, lo * row_bytes, d->numel * sizeof(float));
        }
        if (d->shared_rows) { /* the slab's rows go straight to their places in the shared memory */
            if (*local == DL_OK)
                *local = copy_shared_slab(r, d, &g, lo, hi, 0);
            continue;
        }
        if (*local == DL_OK)
            *local = check_slab_ids(r, d, n, lo, hi);
        for (uint64_t j = 0; j < n; j++) { /* the answers, in the order asked (a row outside the slab: zeros) */
            int64_t id = r->ids_in[j];
            float *dst = r->transit + (size_t)j * g.row_len;
            if (id >= (int64_t)lo && id < (int64_t)hi)
                memcpy(dst, r->slab + (size_t)((uint64_t)id - lo) * g.row_len, row_bytes);
            else
                memset(dst, 0, row_bytes);
        }
        DL_CHECK(layout_bytes(r->from, w->size, row_bytes, r->bytes[0], r->bytes[1]));
        DL_CHECK(layout_bytes(r->to, w->size, row_bytes, r->bytes[2], r->bytes[3]));
        DL_CHECK(dl_comm_alltoallv(w, r->transit, r->bytes[0], r->bytes[1], out + (size_t)first * g.row_len,
                                   r->bytes[2], r->bytes[3], "checkpoint rows: data"));
    }
    return DL_OK;
}
