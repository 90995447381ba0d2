/* ckpt_plan.c — the write plan: every dataset of a checkpoint file, in the order written, with its name
 * (/model/<param>, /optimizer/<state>/<param>, /data/cursors, /data/cursor_lengths), shape, HDF5 type and chunks, and
 * the runs of elements this rank writes of it: rank 0 the replicated data, each rank its ZeRO slice of an optimizer
 * state (the lowest-starting rank where slices overlap), so that an element is written by exactly one rank. Row-split
 * tables are marked split instead; their rows move through slabs (ckpt_slabs.c). The same plan entries describe the
 * split datasets a collective load reads. */
#include "ckpt/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dl_ckpt_plan_free(dl_ckpt_plan *p) {
    for (size_t i = 0; i < p->count; i++)
        if (p->items[i].runs != &p->items[i].single)
            free(p->items[i].runs);
    free(p->items);
    memset(p, 0, sizeof *p);
}

dl_status dl_ckpt_plan_add(dl_ckpt_plan *p, const char *name, int ndim, const size_t *shape, dl_ckpt_dtype dtype,
                           const void *base, int chunked, dl_ckpt_planned **out) {
    if (p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        dl_ckpt_planned *grown = realloc(p->items, cap * sizeof *grown);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "cannot allocate the checkpoint plan");
        /* Items pointing at their own `single` must follow the move. */
        for (size_t i = 0; i < p->count; i++)
            if (grown[i].runs == &p->items[i].single)
                grown[i].runs = &grown[i].single;
        p->items = grown;
        p->cap = cap;
    }
    dl_ckpt_planned *d = &p->items[p->count++];
    memset(d, 0, sizeof *d);
    int n = snprintf(d->name, sizeof d->name, "%s", name);
    DL_REQUIRE(n > 0 && (size_t)n < sizeof d->name, DL_ERR_INVALID, "dataset name '%s' is too long", name);
    d->ndim = ndim;
    d->numel = 1;
    for (int i = 0; i < ndim; i++) {
        d->dims[i] = shape[i];
        d->numel *= shape[i];
    }
    d->dtype = dtype;
    d->base = base;
    d->runs = &d->single;
    d->chunked = chunked && ndim > 0 && d->numel > 0;
    *out = d;
    return DL_OK;
}

static void planned_set_run(dl_ckpt_planned *d, uint64_t begin, uint64_t end) {
    d->single = (dl_ckpt_run){begin, end};
    d->runs = &d->single;
    d->nruns = begin < end ? 1 : 0;
}

/* The raw CRC register (from 0) of the dataset's bytes with this rank's runs in place and zeros elsewhere. */
uint32_t dl_ckpt_planned_raw_crc(const dl_ckpt_planned *d) {
    size_t es = dl_ckpt_dtype_size(d->dtype);
    uint32_t raw = 0;
    uint64_t pos = 0;
    for (size_t i = 0; i < d->nruns; i++) {
        raw = dl_ckpt_raw_zeros(raw, (d->runs[i].begin - pos) * es);
        raw = dl_ckpt_raw_feed(raw, d->base + d->runs[i].begin * es,
                               (size_t)((d->runs[i].end - d->runs[i].begin) * es));
        pos = d->runs[i].end;
    }
    return dl_ckpt_raw_zeros(raw, (d->numel - pos) * es);
}

hid_t dl_ckpt_file_type(dl_ckpt_dtype t) {
    return t == DL_CKPT_F32 ? H5T_IEEE_F32LE : t == DL_CKPT_I32 ? H5T_STD_I32LE : H5T_STD_U8LE;
}

hid_t dl_ckpt_mem_type(dl_ckpt_dtype t) {
    return t == DL_CKPT_F32 ? H5T_NATIVE_FLOAT : t == DL_CKPT_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT8;
}

/* Chunks of about 1 MiB: whole trailing dims while they fit, then a slice of the next one. */
void dl_ckpt_chunk_dims(const dl_ckpt_planned *d, hsize_t *chunk) {
    const uint64_t target = (1u << 20) / dl_ckpt_dtype_size(d->dtype);
    uint64_t product = 1;
    int d0 = d->ndim - 1;
    for (; d0 >= 0; d0--) {
        if (product * d->dims[d0] > target)
            break;
        chunk[d0] = d->dims[d0];
        product *= d->dims[d0];
    }
    if (d0 >= 0) {
        uint64_t c = target / product;
        chunk[d0] = c < 1 ? 1 : c > d->dims[d0] ? d->dims[d0] : c;
        for (int i = 0; i < d0; i++)
            chunk[i] = 1;
    }
}

/* A split tensor of the plan: its rows move in slabs (dl_ckpt_write_split), from this rank's rows at d->base. */
void dl_ckpt_planned_set_split(dl_ckpt_planned *d, const dl_shard_layout *l, size_t tensor, int params) {
    d->split = l;
    d->tensor = tensor;
    d->shared_rows = params && l->shared_row != NULL;
    d->nruns = 0;
}

/* Fails when the elements d takes from a layout's buffer reach past its local_numel floats (split tensors are
 * checked row by row as they move). */
static dl_status check_fits(const dl_ckpt_planned *d, const dl_shard_layout *l, size_t i) {
    if (!l || d->nruns == 0)
        return DL_OK;
    uint64_t end = d->runs[d->nruns - 1].end;
    if (l->local_offset[i] + end > l->local_numel)
        return DL_FAIL(DL_ERR_INVALID, "%s: this rank's part ends at float %llu of its buffer, which holds %zu",
                       d->name, (unsigned long long)(l->local_offset[i] + end), l->local_numel);
    return DL_OK;
}

/* Adds tensor i of the table as dataset `name` from `buffer` (the parameters or one state, laid out as l says or as
 * the whole table): a split tensor through slabs, any other as the elements [begin, end) of it (clipped to the
 * tensor) this rank writes. `what` names the buffer in the message when this rank holds part of it but passed none. */
static dl_status plan_tensor(dl_ckpt_plan *p, const dl_world *w, const dl_ckpt_tensors *t, const dl_shard_layout *l,
                             size_t i, const char *name, const float *buffer, uint64_t begin, uint64_t end,
                             const char *what) {
    const dl_tensor *v = dl_tensor_table_at(t->params, i);
    const float *base = buffer ? buffer + (l ? l->local_offset[i] : v->offset) : NULL;
    dl_ckpt_planned *d = NULL;
    DL_CHECK(dl_ckpt_plan_add(p, name, v->ndim, v->shape, DL_CKPT_F32, base, 1, &d));
    if (l && l->split[i]) {
        dl_ckpt_planned_set_split(d, l, i, buffer && buffer == t->params_data);
        DL_CHECK(dl_ckpt_check_split_rows(d));
    } else {
        planned_set_run(d, begin < d->numel ? begin : d->numel, end < d->numel ? end : d->numel);
    }
    DL_REQUIRE((d->nruns == 0 && !d->split) || base != NULL, DL_ERR_INVALID,
               "dl_ckpt_write: rank %d holds part of %s but passed no %s", w->rank, name, what);
    return check_fits(d, l, i);
}

/* Builds the plan of every dataset and which elements this rank writes: rank 0 the parameters (unless split),
 * each rank its slice [state_begin, state_end) of every optimizer state, rank 0 the cursors. */
dl_status dl_ckpt_build_plan(dl_ckpt_plan *p, const dl_world *w, const dl_ckpt_tensors *t, const dl_shard_layout *l,
                             uint64_t state_begin, uint64_t state_end, const uint8_t *cursors, const int *lengths,
                             size_t cursor_total) {
    char name[384];
    for (size_t i = 0; i < t->params->count; i++) {
        snprintf(name, sizeof name, "/model/%s", dl_tensor_table_at(t->params, i)->name);
        DL_CHECK(plan_tensor(p, w, t, l, i, name, t->params_data, 0, w->rank == 0 ? UINT64_MAX : 0, "parameters"));
    }
    for (int k = 0; k < t->num_states; k++) {
        for (size_t i = 0; i < t->params->count; i++) {
            const dl_tensor *v = dl_tensor_table_at(t->params, i);
            snprintf(name, sizeof name, "/optimizer/%s/%s", t->state_names[k], v->name);
            uint64_t b = state_begin > v->offset ? state_begin - v->offset : 0;
            uint64_t e = state_end > v->offset ? state_end - v->offset : 0;
            DL_CHECK(plan_tensor(p, w, t, l, i, name, t->states_data ? t->states_data[k] : NULL, b, e,
                                 "state buffer"));
        }
    }
    dl_ckpt_planned *d = NULL;
    size_t shape[1] = {cursor_total};
    DL_CHECK(dl_ckpt_plan_add(p, "/data/cursors", 1, shape, DL_CKPT_U8, cursors, 0, &d));
    planned_set_run(d, 0, w->rank == 0 ? cursor_total : 0);
    shape[0] = (size_t)w->size;
    DL_CHECK(dl_ckpt_plan_add(p, "/data/cursor_lengths", 1, shape, DL_CKPT_I32, lengths, 0, &d));
    planned_set_run(d, 0, w->rank == 0 ? (uint64_t)w->size : 0);
    return DL_OK;
}
