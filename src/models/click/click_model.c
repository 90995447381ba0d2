/* click_model.c — FM and FFM behind the model interface (see click_model.h for the design).
 *
 * Every step: map the batch's feature ids to table rows and compute the instance scales (checking fields, ids and
 * values on the way), then train. One rank trains straight on its table. Several ranks exchange, and every rank
 * takes part in every exchange of a step even when its own batch was bad (it then asks for nothing and reports the
 * error afterwards), so a bad batch on one rank ends the step with that rank's message instead of a hang.
 *
 * Nothing is allocated per step once the scratch buffers have grown to the largest batch.
 *
 * Staged tables (the CUDA backend): the table lives in device memory and is touched only through the backend. Each
 * prepared batch is copied over (click_device.h) and its logits come back; with replicated tables on several ranks
 * a step trains a compact device copy of the batch's rows, so the table keeps every row's value from before the
 * step, and then the ranks' summed changes are added to it: the host path's old + Σ changes, same roundings.
 * Row-sharded tables exchange rows with MPI from host memory and stay on the CPU backend. */
#include "models/click/click_model.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "comm/node_table.h"
#include "comm/sharded_table.h"
#include "core/hash.h"
#include "core/philox.h"
#include "data/loader.h"
#include "models/click/click_device.h"
#include "core/grow.h"

/* Philox stream of the initial weights: "ClickIni". */
#define INIT_STREAM 0x436c69636b496e69ull

typedef struct click {
    const dl_click_kind *kind;
    const dl_backend *be;
    int k, kpad, blocks, row_floats, linear_offset, linear, normalize;
    int64_t buckets;
    float lambda;
    float adagrad_init;
    int rank, world_size, sharded; /* sharded: the table is split over world_size > 1 ranks */
    int shared;                    /* sharded rows kept in one node-wide window and trained in place */
    dl_node_table node;
    int staged;                    /* the table is in device memory: batches and rows move through `dev` */
    dl_click_device dev;
    dl_tensor_table params;        /* the whole model, as checkpoints hold it */
    size_t full_bias;              /* offset of the bias in that layout */
    float *store;                  /* this rank's table rows, then the bias */
    size_t store_numel, store_bias;
    int64_t store_rows;
    dl_sharded_table shard;
    dl_shard_layout layout;        /* sharded: this rank's store as the trainer and checkpoints see it */
    size_t layout_offset[2];       /* table, bias */
    unsigned char layout_split[2];
    dl_sharded_plan plan;
    dl_sparse_sum sum;
    /* scratch, grown to the largest batch */
    int32_t *grows, *erows; /* per entry: global row, row given to the kernel */
    size_t cap_entries;
    float *scale, *logits;
    int cap_batch;
    int64_t *set_keys;
    int32_t *set_vals;
    size_t set_cap;
    int64_t *uniq;
    size_t cap_uniq;
    float *compact, *old;
    size_t cap_compact;
    float *ev_pairs;
    size_t cap_ev;
    /* background initialisation (init_params_background): per table row NOT_MADE, BEING_MADE or MADE */
    _Atomic unsigned char *row_state;
    atomic_int rows_all_made; /* the filler thread has made or seen made every row: no more checks */
    pthread_t filler;
    int filler_running;
    uint64_t init_seed;
} click;

/* background initialisation of the table (below, with the parameters) */
static void make_rows_before_use(click *m, const int32_t *rows, int64_t n);
static dl_status finish_filler(click *m);

/* Hashed wide ids (negative, see dl_feature_id_fold) hash with the top bit set: a key no real id has. */
#define HASHED_ID_KEY 0x8000000000000000ull

int64_t dl_click_feature_row(int64_t id, int64_t hash_buckets) {
    if (id >= 0 && id < hash_buckets)
        return id;
    if (id < 0)
        return (int64_t)dl_hash_bucket(HASHED_ID_KEY | (uint64_t)(-1 - id), (uint64_t)hash_buckets);
    return (int64_t)dl_hash_bucket((uint64_t)id, (uint64_t)hash_buckets);
}

/* softplus(-y·t): the logloss of logit t for label y (> 0: click). */
static double logloss(float t, float label) {
    double z = label > 0.0f ? -(double)t : (double)t;
    return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

/* ---- batches ------------------------------------------------------------------------------------------------ */

/* Maps feature ids to rows, computes instance scales, and checks what a data file can get wrong. */
static dl_status prepare(click *m, const dl_click_batch *cb) {
    const int B = cb->num_rows;
    const int64_t nnz = B > 0 ? cb->row_ptr[B] : 0;
    size_t cap = m->cap_entries, cap2 = m->cap_entries;
    DL_CHECK(dl_grow((void **)&m->grows, &cap, (size_t)nnz + 1, sizeof(int32_t), "batch rows"));
    DL_CHECK(dl_grow((void **)&m->erows, &cap2, (size_t)nnz + 1, sizeof(int32_t), "batch rows"));
    m->cap_entries = cap < cap2 ? cap : cap2;
    if (B > m->cap_batch) {
        float *s = realloc(m->scale, (size_t)B * sizeof(float));
        if (s)
            m->scale = s;
        float *l = s ? realloc(m->logits, (size_t)B * sizeof(float)) : NULL;
        if (l)
            m->logits = l;
        DL_REQUIRE(s && l, DL_ERR_NOMEM, "cannot allocate scratch for a batch of %d rows", B);
        m->cap_batch = B;
    }
    for (int b = 0; b < B; b++) {
        double norm = 0.0;
        float normf = 0.0f;
        for (int32_t e = cb->row_ptr[b]; e < cb->row_ptr[b + 1]; e++) {
            const int32_t f = cb->fields[e], id = cb->features[e];
            const float x = cb->values[e];
            if (m->kind->field_aware && (f < 0 || f >= m->blocks)) {
                dl_status s = DL_FAIL(DL_ERR_INVALID, "a data row has field %d, outside [0, model.num_fields = %d)",
                                      (int)f, m->blocks);
                dl_error_hint("set model.num_fields to one more than the largest field id of the data "
                              "(dealer data stat shows it)");
                return s;
            }
            DL_REQUIRE(isfinite(x), DL_ERR_INVALID, "a data row has the non-finite value %g (feature %d)", (double)x,
                       (int)id);
            m->grows[e] = (int32_t)dl_click_feature_row(id, m->buckets);
            normf += x * x;
            norm += (double)x * x;
        }
        m->scale[b] = m->normalize && norm > 0.0 ? 1.0f / normf : 1.0f;
    }
    return DL_OK;
}

/* The distinct global rows of the batch into m->uniq (*n of them, in first-seen order), and m->erows[e] = the
 * position of entry e's row there (its index in a compact table of those rows). */
static dl_status distinct_rows(click *m, int64_t nnz, int64_t *n) {
    size_t need = 64;
    while (need < (size_t)nnz * 2)
        need *= 2;
    if (need > m->set_cap) {
        int64_t *k = realloc(m->set_keys, need * sizeof(int64_t));
        if (k)
            m->set_keys = k;
        int32_t *v = k ? realloc(m->set_vals, need * sizeof(int32_t)) : NULL;
        if (v)
            m->set_vals = v;
        DL_REQUIRE(k && v, DL_ERR_NOMEM, "cannot allocate the row set of a batch");
        m->set_cap = need;
    }
    DL_CHECK(dl_grow((void **)&m->uniq, &m->cap_uniq, (size_t)nnz + 1, sizeof(int64_t), "batch rows"));
    const size_t mask = need - 1;
    memset(m->set_keys, 0xff, need * sizeof(int64_t));
    int64_t count = 0;
    for (int64_t e = 0; e < nnz; e++) {
        const int64_t g = m->grows[e];
        size_t h = (size_t)dl_hash_u64((uint64_t)g) & mask;
        while (m->set_keys[h] != -1 && m->set_keys[h] != g)
            h = (h + 1) & mask;
        if (m->set_keys[h] == -1) {
            m->set_keys[h] = g;
            m->set_vals[h] = (int32_t)count;
            m->uniq[count++] = g;
        }
        m->erows[e] = m->set_vals[h];
    }
    *n = count;
    return DL_OK;
}

static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static dl_status reserve_compact(click *m, int64_t n) {
    size_t need = ((size_t)n + 1) * (size_t)m->row_floats;
    size_t c1 = m->cap_compact, c2 = m->cap_compact;
    DL_CHECK(dl_grow((void **)&m->compact, &c1, need, sizeof(float), "the rows of a step"));
    DL_CHECK(dl_grow((void **)&m->old, &c2, need, sizeof(float), "the rows of a step"));
    m->cap_compact = c1 < c2 ? c1 : c2;
    return DL_OK;
}

static dl_click_table table_view(click *m, float *data, int64_t rows) {
    return (dl_click_table){data,    rows,        m->row_floats,       m->blocks,
                            m->k,    m->kpad,     m->linear_offset,    m->linear ? m->store + m->store_bias : NULL};
}

static dl_click_rows rows_view(const click *m, const dl_click_batch *cb, const int32_t *rows) {
    return (dl_click_rows){cb->num_rows, cb->row_ptr,   rows, m->kind->field_aware ? cb->fields : NULL,
                           cb->values,   cb->labels,    m->scale};
}

/* Scores (train 0) or trains (train 1, at rate lr) batch cb on table t, its entries on table rows `rows`; the logits
 * land in m->logits. A staged model copies the batch to the device first and the logits back after. */
static dl_status run_kernel(click *m, dl_click_table *t, const dl_click_batch *cb, const int32_t *rows, int train,
                            float lr) {
    dl_click_rows r = rows_view(m, cb, rows);
    float *logits = m->logits;
    if (m->staged)
        DL_CHECK(dl_click_device_batch(&m->dev, &r, &logits));
    DL_CHECK(train ? m->kind->sgd(m->be, logits, t, &r, lr, m->lambda) : m->kind->forward(m->be, logits, t, &r));
    if (m->staged)
        DL_CHECK(dl_mem_to_host(m->be, m->logits, logits, (size_t)cb->num_rows * sizeof(float)));
    return DL_OK;
}

static double batch_loss(const click *m, const dl_click_batch *cb) {
    double sum = 0.0;
    for (int b = 0; b < cb->num_rows; b++)
        sum += logloss(m->logits[b], cb->labels[b]);
    return sum;
}

/* Keeps the replicated bias equal on every rank: bias = old + Σ over ranks of each rank's change. */
static dl_status sync_bias(click *m, const float old[2], dl_world *world) {
    if (!m->linear)
        return DL_OK;
    float *bias = m->store + m->store_bias, staged[2] = {old[0], old[1]};
    dl_status copied = DL_OK;
    if (m->staged) { /* a failed copy still takes part in the sum (with no change) so no rank waits */
        copied = dl_mem_to_host(m->be, staged, bias, sizeof staged);
        if (copied != DL_OK)
            memcpy(staged, old, sizeof staged);
        bias = staged;
    }
    float d[2] = {bias[0] - old[0], bias[1] - old[1]};
    DL_CHECK(dl_comm_allreduce_sum_f32(world, d, 2, "click model: bias changes"));
    bias[0] = old[0] + d[0];
    bias[1] = old[1] + d[1];
    if (m->staged && copied == DL_OK)
        copied = dl_mem_to_device(m->be, m->store + m->store_bias, staged, sizeof staged);
    return copied;
}

/* The position of key in the n increasing values v (key is there). */
static int64_t sorted_position(const int64_t *v, int64_t n, int64_t key) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* train_replicated for a staged table: train a compact device copy of the batch's rows (the table keeps their
 * values from before the step, which are `old`), bring it back to compute the changes, and add the ranks' summed
 * changes to the table. Device failures go to `local` so every rank still joins every collective. */
static dl_status train_replicated_staged(click *m, const dl_click_batch *cb, float lr, dl_world *world,
                                         dl_status local, dl_step_stats *stats) {
    const size_t rf = (size_t)m->row_floats;
    const int64_t nnz = cb->num_rows ? cb->row_ptr[cb->num_rows] : 0;
    int64_t n = 0;
    if (local == DL_OK)
        local = distinct_rows(m, nnz, &n);
    if (local == DL_OK) {
        qsort(m->uniq, (size_t)n, sizeof(int64_t), compare_i64);
        for (int64_t e = 0; e < nnz; e++) /* the entries' rows in the compact copy, which follows the sorted order */
            m->erows[e] = (int32_t)sorted_position(m->uniq, n, m->grows[e]);
        local = reserve_compact(m, n);
    }
    float *compact = NULL;
    if (local == DL_OK)
        local = dl_click_device_gather(&m->dev, m->store, m->store_rows, m->row_floats, m->uniq, n, &compact, m->old);
    float bias_old[2] = {0, 0};
    if (local == DL_OK && m->linear)
        local = dl_mem_to_host(m->be, bias_old, m->store + m->store_bias, sizeof bias_old);
    if (local == DL_OK && cb->num_rows > 0) {
        dl_click_table t = table_view(m, compact, n);
        local = run_kernel(m, &t, cb, m->erows, 1, lr);
        if (local == DL_OK)
            stats->loss_sum += batch_loss(m, cb);
        if (local == DL_OK && n > 0)
            local = dl_mem_to_host(m->be, m->compact, compact, (size_t)n * rf * sizeof(float));
    }
    if (local != DL_OK)
        n = 0; /* the table itself is untouched: nothing of this rank's step is shared */
    for (size_t i = 0; i < (size_t)n * rf; i++)
        m->compact[i] = m->compact[i] - m->old[i];
    DL_CHECK(dl_sparse_sum_rows(&m->sum, m->uniq, n, m->compact, m->row_floats, world));
    dl_status added = dl_click_device_add(&m->dev, m->store, m->store_rows, m->row_floats, m->sum.rows, m->sum.count,
                                          m->sum.sums);
    if (local == DL_OK)
        local = added;
    DL_CHECK(sync_bias(m, bias_old, world));
    return local;
}

/* Replicated tables on several ranks: train on the local copy, then every copy becomes old + Σ changes. */
static dl_status train_replicated(click *m, const dl_click_batch *cb, float lr, dl_world *world, dl_status local,
                                  dl_step_stats *stats) {
    if (m->staged)
        return train_replicated_staged(m, cb, lr, world, local, stats);
    const size_t rf = (size_t)m->row_floats;
    int64_t n = 0;
    if (local == DL_OK)
        local = distinct_rows(m, cb->num_rows ? cb->row_ptr[cb->num_rows] : 0, &n);
    if (local == DL_OK) {
        qsort(m->uniq, (size_t)n, sizeof(int64_t), compare_i64);
        local = reserve_compact(m, n);
    }
    if (local != DL_OK)
        n = 0;
    for (int64_t i = 0; i < n; i++)
        memcpy(m->old + (size_t)i * rf, m->store + (size_t)m->uniq[i] * rf, rf * sizeof(float));
    float bias_old[2] = {0, 0};
    if (m->linear)
        memcpy(bias_old, m->store + m->store_bias, sizeof bias_old);
    if (local == DL_OK && cb->num_rows > 0) {
        dl_click_table t = table_view(m, m->store, m->store_rows);
        dl_click_rows r = rows_view(m, cb, m->grows);
        local = m->kind->sgd(m->be, m->logits, &t, &r, lr, m->lambda);
        if (local == DL_OK)
            stats->loss_sum += batch_loss(m, cb);
        else
            n = 0; /* the table may be half-updated: nothing of it is shared */
    }
    for (int64_t i = 0; i < n; i++) {
        float *d = m->compact + (size_t)i * rf;
        const float *now = m->store + (size_t)m->uniq[i] * rf, *was = m->old + (size_t)i * rf;
        for (size_t f = 0; f < rf; f++)
            d[f] = now[f] - was[f];
    }
    DL_CHECK(dl_sparse_sum_rows(&m->sum, m->uniq, n, m->compact, m->row_floats, world));
    int64_t mine = 0;
    for (int64_t p = 0; p < m->sum.count; p++) {
        float *row = m->store + (size_t)m->sum.rows[p] * rf;
        const float *base = row;
        if (mine < n && m->sum.mine[mine] == p)
            base = m->old + (size_t)(mine++) * rf;
        const float *s = m->sum.sums + (size_t)p * rf;
        for (size_t f = 0; f < rf; f++)
            row[f] = base[f] + s[f];
    }
    DL_CHECK(sync_bias(m, bias_old, world));
    return local;
}

/* Shared tables (comm.embeddings: shared): every rank trains its batch straight on the node's table, as libffm's
 * threads do on theirs; the bias, replicated per rank, is kept equal as in the other modes. */
static dl_status train_shared(click *m, const dl_click_batch *cb, float lr, dl_world *world, dl_status local,
                              dl_step_stats *stats) {
    float bias_old[2] = {0, 0};
    if (m->linear)
        memcpy(bias_old, m->store + m->store_bias, sizeof bias_old);
    dl_node_table_sync(&m->node); /* the other ranks' changes up to the last collective */
    if (local == DL_OK && cb->num_rows > 0) {
        const int64_t nnz = cb->row_ptr[cb->num_rows];
        for (int64_t e = 0; e < nnz; e++)
            m->erows[e] = m->node.place[m->grows[e]];
        dl_click_table t = table_view(m, m->node.base, m->node.total_rows);
        local = run_kernel(m, &t, cb, m->erows, 1, lr);
        if (local == DL_OK)
            stats->loss_sum += batch_loss(m, cb);
    }
    dl_node_table_sync(&m->node);
    if (local != DL_OK && m->linear)
        memcpy(m->store + m->store_bias, bias_old, sizeof bias_old);
    DL_CHECK(sync_bias(m, bias_old, world));
    return local;
}

/* Sharded tables: fetch the batch's rows from their owners, train on the compact copy, send the changes back. */
static dl_status train_sharded(click *m, const dl_click_batch *cb, float lr, dl_world *world, dl_status local,
                               dl_step_stats *stats) {
    const size_t rf = (size_t)m->row_floats;
    int64_t n = 0;
    if (local == DL_OK)
        local = distinct_rows(m, cb->num_rows ? cb->row_ptr[cb->num_rows] : 0, &n);
    if (local == DL_OK)
        local = reserve_compact(m, n);
    if (local != DL_OK)
        n = 0;
    DL_CHECK(dl_sharded_plan_build(&m->shard, &m->plan, m->uniq, n, world));
    DL_CHECK(dl_sharded_fetch(&m->shard, &m->plan, m->compact, world));
    memcpy(m->old, m->compact, (size_t)n * rf * sizeof(float));
    float bias_old[2] = {0, 0};
    if (m->linear)
        memcpy(bias_old, m->store + m->store_bias, sizeof bias_old);
    if (local == DL_OK && n > 0) {
        dl_click_table t = table_view(m, m->compact, n);
        dl_click_rows r = rows_view(m, cb, m->erows);
        local = m->kind->sgd(m->be, m->logits, &t, &r, lr, m->lambda);
        if (local == DL_OK)
            stats->loss_sum += batch_loss(m, cb);
    }
    for (size_t i = 0; i < (size_t)n * rf; i++)
        m->compact[i] = local == DL_OK ? m->compact[i] - m->old[i] : 0.0f;
    DL_CHECK(dl_sharded_push_add(&m->shard, &m->plan, m->compact, world));
    if (local != DL_OK && m->linear)
        memcpy(m->store + m->store_bias, bias_old, sizeof bias_old);
    DL_CHECK(sync_bias(m, bias_old, world));
    return local;
}

static dl_status click_train_batch(dl_model *model, const dl_batch *batch, const dl_step_context *ctx,
                                   dl_step_stats *stats) {
    click *m = model->impl;
    DL_REQUIRE(batch && ctx && stats, DL_ERR_INVALID, "%s train_batch: NULL argument", m->kind->name);
    DL_REQUIRE(batch->kind == DL_DATA_CLICKS, DL_ERR_INVALID, "%s trains on click batches, got %s", m->kind->name,
               dl_data_kind_name(batch->kind));
    const dl_click_batch *cb = &batch->clicks;
    stats->tokens += cb->num_rows;
    stats->targets += cb->num_rows;
    const float lr = (float)ctx->lr;
    dl_status local = prepare(m, cb);
    dl_world *world = ctx->world;
    if (world && world->size > 1) {
        DL_CHECK(finish_filler(m));
        if (world->size != m->world_size || world->rank != m->rank)
            return DL_FAIL(DL_ERR_INVALID, "the %s model was built for rank %d of %d, it runs on rank %d of %d",
                           m->kind->name, m->rank, m->world_size, world->rank, world->size);
        if (m->shared)
            return train_shared(m, cb, lr, world, local, stats);
        return m->sharded ? train_sharded(m, cb, lr, world, local, stats)
                          : train_replicated(m, cb, lr, world, local, stats);
    }
    DL_CHECK(local);
    DL_REQUIRE(!m->sharded, DL_ERR_INVALID, "the %s model's table is sharded over %d ranks but runs alone",
               m->kind->name, m->world_size);
    if (cb->num_rows == 0)
        return DL_OK;
    make_rows_before_use(m, m->grows, cb->row_ptr[cb->num_rows]);
    dl_click_table t = table_view(m, m->store, m->store_rows);
    DL_CHECK(run_kernel(m, &t, cb, m->grows, 1, lr));
    stats->loss_sum += batch_loss(m, cb);
    return DL_OK;
}

/* Scores a prepared batch into m->logits: on the local table, or (sharded, collective) on rows fetched from their
 * owners. A data failure goes to *local (the exchange still runs, with nothing asked); the return value is an
 * exchange failure, after which the ranks are out of step. */
static dl_status score_batch(click *m, const dl_click_batch *cb, dl_world *world, dl_status *local) {
    if (m->sharded) {
        int64_t n = 0;
        if (*local == DL_OK)
            *local = distinct_rows(m, cb->num_rows ? cb->row_ptr[cb->num_rows] : 0, &n);
        if (*local == DL_OK)
            *local = reserve_compact(m, n);
        if (*local != DL_OK)
            n = 0;
        DL_CHECK(dl_sharded_plan_build(&m->shard, &m->plan, m->uniq, n, world));
        DL_CHECK(dl_sharded_fetch(&m->shard, &m->plan, m->compact, world));
        if (*local != DL_OK || cb->num_rows == 0)
            return DL_OK;
        dl_click_table t = table_view(m, m->compact, n);
        dl_click_rows r = rows_view(m, cb, m->erows);
        *local = m->kind->forward(m->be, m->logits, &t, &r);
        return DL_OK;
    }
    if (*local != DL_OK || cb->num_rows == 0)
        return DL_OK;
    dl_click_table t = table_view(m, m->store, m->store_rows);
    *local = run_kernel(m, &t, cb, m->grows, 0, 0.0f);
    return DL_OK;
}

static dl_status click_eval_batch(dl_model *model, const dl_batch *batch, dl_step_stats *stats) {
    click *m = model->impl;
    DL_CHECK(finish_filler(m));
    DL_REQUIRE(!m->sharded, DL_ERR_INVALID, "a sharded %s model evaluates through model->evaluate (collective)",
               m->kind->name);
    const dl_click_batch *cb = &batch->clicks;
    dl_status local = prepare(m, cb);
    DL_CHECK(score_batch(m, cb, NULL, &local));
    DL_CHECK(local);
    stats->tokens += cb->num_rows;
    stats->targets += cb->num_rows;
    stats->loss_sum += batch_loss(m, cb);
    return DL_OK;
}

/* ---- evaluation ------------------------------------------------------------------------------------------------ */

typedef struct scored {
    float score, label;
} scored;

static int compare_scored(const void *a, const void *b) {
    float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x > y) - (x < y);
}

static double auc_of(scored *v, int64_t n) {
    qsort(v, (size_t)n, sizeof *v, compare_scored);
    double pos = 0, neg = 0, rank_sum = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        double p = 0;
        while (j < n && v[j].score == v[i].score) {
            p += v[j].label > 0.0f;
            j++;
        }
        double mean_rank = 0.5 * (double)(i + 1 + j); /* ranks i+1 .. j, averaged over the tie */
        rank_sum += p * mean_rank;
        pos += p;
        neg += (double)(j - i) - p;
        i = j;
    }
    if (pos == 0 || neg == 0)
        return NAN;
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

double dl_click_auc(float *scores, float *labels, int64_t n) {
    scored *v = malloc(((size_t)n + 1) * sizeof *v);
    if (!v)
        return NAN;
    for (int64_t i = 0; i < n; i++)
        v[i] = (scored){scores[i], labels[i]};
    double auc = auc_of(v, n);
    for (int64_t i = 0; i < n; i++) {
        scores[i] = v[i].score;
        labels[i] = v[i].label;
    }
    free(v);
    return auc;
}

static dl_status click_evaluate(dl_model *model, struct dl_world *world, const dl_doc_source *valid,
                                const dl_loader_config *config, int64_t max_batches, dl_eval_result *result) {
    click *m = model->impl;
    DL_REQUIRE(world && valid && config && result, DL_ERR_INVALID, "%s evaluate: NULL argument", m->kind->name);
    DL_CHECK(finish_filler(m));
    memset(result, 0, sizeof *result);
    dl_loader *loader = NULL;
    dl_status local = dl_loader_open(&loader, valid, config, NULL, 0);
    double loss = 0.0;
    int64_t count = 0;
    dl_status s = DL_OK;
    for (int64_t i = 0; i < max_batches; i++) {
        const dl_batch *batch = NULL;
        if (local == DL_OK)
            local = dl_loader_next(loader, &batch);
        static const dl_click_batch empty = {0};
        const dl_click_batch *cb = local == DL_OK ? &batch->clicks : &empty;
        if (local == DL_OK)
            local = prepare(m, cb);
        s = score_batch(m, local == DL_OK ? cb : &empty, world, &local);
        if (s != DL_OK)
            break; /* a failed exchange: the ranks are no longer in step */
        if (local == DL_OK && cb->num_rows > 0) {
            local = dl_grow((void **)&m->ev_pairs, &m->cap_ev, 2 * (size_t)(count + cb->num_rows), sizeof(float),
                                "validation scores");
            for (int b = 0; local == DL_OK && b < cb->num_rows; b++) {
                m->ev_pairs[2 * (count + b)] = m->logits[b];
                m->ev_pairs[2 * (count + b) + 1] = cb->labels[b];
                loss += logloss(m->logits[b], cb->labels[b]);
            }
            count += cb->num_rows;
        }
    }
    dl_loader_close(loader);
    DL_CHECK(s);
    double sums[3] = {loss, (double)count, local != DL_OK};
    dl_status c = dl_comm_allreduce_sum_f64(world, sums, 3, "validation sums");
    DL_CHECK_CTX(local, "evaluating on data.valid");
    DL_CHECK(c);
    if (sums[2] > 0)
        return DL_FAIL(DL_ERR_RUNTIME, "another rank failed during evaluation (see its message above)");
    DL_REQUIRE(count <= INT32_MAX / 8, DL_ERR_INVALID, "AUC over %lld rows per rank is more than this build gathers",
               (long long)count);
    void *all = NULL;
    int *lengths = calloc((size_t)world->size, sizeof(int));
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "cannot allocate %d lengths", world->size);
    s = dl_comm_gather_bytes(world, m->ev_pairs, (int)(count * 2 * (int64_t)sizeof(float)), 0, &all, lengths,
                             "validation scores");
    double auc = NAN;
    if (s == DL_OK && world->rank == 0) {
        int64_t total = 0;
        for (int r = 0; r < world->size; r++)
            total += lengths[r] / (int64_t)sizeof(scored);
        auc = auc_of(all, total);
    }
    free(all);
    free(lengths);
    DL_CHECK(s);
    DL_CHECK(dl_comm_broadcast(world, &auc, sizeof auc, 0, "validation AUC"));
    DL_REQUIRE(sums[1] > 0, DL_ERR_INVALID, "data.valid gave no rows to evaluate on");
    result->targets = sums[1];
    result->loss = sums[0] / sums[1];
    result->count = 2;
    result->names[0] = "val_logloss";
    result->values[0] = result->loss;
    result->names[1] = "val_auc";
    result->values[1] = auc;
    return DL_OK;
}

dl_status dl_click_model_predict(dl_model *model, const dl_click_batch *batch, float *prob, double *loss_sum) {
    DL_REQUIRE(model && model->impl && batch && (prob || batch->num_rows == 0), DL_ERR_INVALID,
               "dl_click_model_predict: NULL argument");
    click *m = model->impl;
    DL_REQUIRE(!m->sharded, DL_ERR_INVALID, "dl_click_model_predict needs a replicated model");
    DL_CHECK(finish_filler(m));
    dl_status local = prepare(m, batch);
    DL_CHECK(score_batch(m, batch, NULL, &local));
    DL_CHECK(local);
    for (int b = 0; b < batch->num_rows; b++) {
        float t = m->logits[b];
        prob[b] = t >= 0 ? 1.0f / (1.0f + expf(-t)) : expf(t) / (1.0f + expf(t));
        if (loss_sum)
            *loss_sum += logloss(t, batch->labels[b]);
    }
    return DL_OK;
}

/* ---- parameters ------------------------------------------------------------------------------------------------ */

/* Row g's initial values: weights uniform in [0, 1)/√k from Philox(seed, g, block, lane) (libffm's
 * initialisation, keyed by the global row so every layout and rank count starts from the same model), padding 0,
 * accumulators adagrad_init, linear weight 0. */
static void init_row(const click *m, uint64_t seed, int64_t g, float *dst) {
    const float coef = 1.0f / sqrtf((float)m->k);
    memset(dst, 0, (size_t)m->row_floats * sizeof(float));
    uint32_t words[4];
    uint64_t have = UINT64_MAX;
    for (int f = 0; f < m->blocks; f++) {
        float *blk = dst + (size_t)f * 2 * (size_t)m->kpad;
        for (int d = 0; d < m->kpad; d++) {
            blk[m->kpad + d] = m->adagrad_init;
            if (d >= m->k)
                continue;
            uint64_t i = ((uint64_t)g * (uint64_t)m->blocks + (uint64_t)f) * (uint64_t)m->k + (uint64_t)d;
            if (i >> 2 != have) {
                have = i >> 2;
                dl_philox_block(seed, INIT_STREAM, have, words);
            }
            blk[d] = coef * dl_philox_uniform(words[i & 3]);
        }
    }
    if (m->linear)
        dst[m->linear_offset + 1] = m->adagrad_init;
}

/* click_init_params for a staged table (never sharded): rows made in host chunks of about 4 MiB and copied over. */
static dl_status init_staged(click *m, uint64_t seed) {
    const size_t rf = (size_t)m->row_floats;
    int64_t chunk = (int64_t)(((size_t)4 << 20) / (rf * sizeof(float)));
    if (chunk < 1)
        chunk = 1;
    if (chunk > m->buckets)
        chunk = m->buckets;
    float *host = malloc((size_t)chunk * rf * sizeof(float));
    DL_REQUIRE(host != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes to initialise the %s table",
               (size_t)chunk * rf * sizeof(float), m->kind->name);
    dl_status s = DL_OK;
    for (int64_t g0 = 0; s == DL_OK && g0 < m->buckets; g0 += chunk) {
        int64_t n = m->buckets - g0 < chunk ? m->buckets - g0 : chunk;
        for (int64_t i = 0; i < n; i++)
            init_row(m, seed, g0 + i, host + (size_t)i * rf);
        s = dl_mem_to_device(m->be, m->store + (size_t)g0 * rf, host, (size_t)n * rf * sizeof(float));
    }
    free(host);
    if (s == DL_OK && m->linear) {
        const float bias[2] = {0.0f, m->adagrad_init};
        s = dl_mem_to_device(m->be, m->store + m->store_bias, bias, sizeof bias);
    }
    return s;
}

/* The bias (with linear terms) starts at 0 with its accumulator at adagrad_init, on host tables. */
static void init_host_bias(click *m) {
    if (m->linear) {
        m->store[m->store_bias] = 0.0f;
        m->store[m->store_bias + 1] = m->adagrad_init;
    }
}

static dl_status click_init_params(dl_model *model, uint64_t seed) {
    click *m = model->impl;
    DL_CHECK(finish_filler(m));
    if (m->staged)
        return init_staged(m, seed);
    const size_t rf = (size_t)m->row_floats;
    /* Each row's values come from its own Philox counters, so splitting the rows over the run's threads (and
     * first-touching each part's pages from the thread that fills it) gives the same table as one thread. */
    const int64_t buckets = m->buckets;
    if (m->sharded) {
#pragma omp parallel for schedule(static)
        for (int64_t g = 0; g < buckets; g++) {
            int64_t local = dl_sharded_table_local(&m->shard, g);
            if (local >= 0)
                init_row(m, seed, g, m->store + (size_t)local * rf);
        }
    } else {
#pragma omp parallel for schedule(static)
        for (int64_t g = 0; g < buckets; g++)
            init_row(m, seed, g, m->store + (size_t)g * rf);
    }
    init_host_bias(m);
    dl_node_table_sync(&m->node); /* a shared table: the rows made here, for the others after a collective */
    return DL_OK;
}

/* ---- background initialisation --------------------------------------------------------------------------------
 * A click table is hundreds of MiB to GiBs, and filling it (Philox per weight, every page touched for the first
 * time) was the largest part of a one-epoch run's start-up. Rows are independent (each one's values come from its
 * own Philox counters), so a single-rank host table is filled by a thread of its own while training starts: before
 * a batch is trained, each of its rows that the filler has not reached is made on the spot. Every row is made
 * exactly once, by whichever thread claims it first, with the same values, before anything reads it: the table,
 * the training and the checkpoints are bit for bit those of an up-front fill. Anything else that reads or writes
 * the table (evaluation, prediction, exchanges, the trainer's checkpoints through params_ready) first waits for
 * the filler to finish. Sharded, staged (device) and several-rank tables are filled up front, as before. */
enum { ROW_NOT_MADE = 0, ROW_BEING_MADE = 1, ROW_MADE = 2 };

/* Makes row g unless another thread claimed it; waits for that thread when `wait` (the row is about to be used). */
static void make_row(click *m, int64_t g, int wait) {
    _Atomic unsigned char *st = &m->row_state[g];
    unsigned char expect = ROW_NOT_MADE;
    if (atomic_load_explicit(st, memory_order_acquire) == ROW_NOT_MADE &&
        atomic_compare_exchange_strong_explicit(st, &expect, ROW_BEING_MADE, memory_order_acq_rel,
                                                memory_order_acquire)) {
        init_row(m, m->init_seed, g, m->store + (size_t)g * (size_t)m->row_floats);
        atomic_store_explicit(st, ROW_MADE, memory_order_release);
        return;
    }
    if (wait) /* the other thread is inside init_row of this one row: a few hundred nanoseconds */
        while (atomic_load_explicit(st, memory_order_acquire) != ROW_MADE)
            sched_yield();
}

static void *filler_main(void *arg) {
    click *m = arg;
    for (int64_t g = 0; g < m->buckets; g++)
        make_row(m, g, 0);
    /* Rows another thread was making when passed over are finished before this says "all made". */
    for (int64_t g = 0; g < m->buckets; g++)
        make_row(m, g, 1);
    atomic_store_explicit(&m->rows_all_made, 1, memory_order_release);
    return NULL;
}

static void make_rows_before_use(click *m, const int32_t *rows, int64_t n) {
    if (!m->row_state || atomic_load_explicit(&m->rows_all_made, memory_order_acquire))
        return;
    for (int64_t e = 0; e < n; e++)
        if (atomic_load_explicit(&m->row_state[rows[e]], memory_order_acquire) != ROW_MADE)
            make_row(m, rows[e], 1);
}

/* Waits until the whole table is made (a no-op once it is, or when it was filled up front). */
static dl_status finish_filler(click *m) {
    if (m->filler_running) {
        int err = pthread_join(m->filler, NULL);
        m->filler_running = 0;
        DL_REQUIRE(err == 0, DL_ERR_RUNTIME, "%s: waiting for the table initialisation thread failed (error %d)",
                   m->kind->name, err);
    }
    free((void *)m->row_state);
    m->row_state = NULL;
    return DL_OK;
}

static dl_status click_params_ready(dl_model *model) {
    DL_REQUIRE(model && model->impl, DL_ERR_INVALID, "params_ready: NULL model");
    click *m = model->impl;
    dl_node_table_sync(&m->node); /* a shared table: this rank's rows as the other ranks left them */
    return finish_filler(m);
}

static dl_status click_init_params_background(dl_model *model, uint64_t seed) {
    click *m = model->impl;
    DL_CHECK(finish_filler(m)); /* a second initialisation starts from a settled table */
    if (m->staged || m->world_size > 1 || m->be->kind != DL_DEVICE_CPU) /* sharded tables are several ranks */
        return click_init_params(model, seed);
    m->row_state = calloc((size_t)m->buckets, sizeof *m->row_state);
    if (!m->row_state) /* no room for the row map: fill up front, the same table */
        return click_init_params(model, seed);
    m->init_seed = seed;
    atomic_store(&m->rows_all_made, 0);
    init_host_bias(m);
    if (pthread_create(&m->filler, NULL, filler_main, m) != 0) {
        free((void *)m->row_state);
        m->row_state = NULL;
        return click_init_params(model, seed);
    }
    m->filler_running = 1;
    return DL_OK;
}

/* The shard layout's row map: the sharded table's own index, so checkpoints place rows exactly where training
 * keeps them (its local rows are back to back in increasing global row, as shard_layout.h requires). */
static int64_t click_local_row(const void *ctx, size_t tensor, int64_t row) {
    (void)tensor; /* only the table (tensor 0) is split */
    return dl_sharded_table_local(&((const click *)ctx)->shard, row);
}

/* A shared table's rows, every one in the node's window: checkpoints copy them from and to there, no exchange. */
static float *click_shared_row(const void *ctx, size_t tensor, int64_t row) {
    const click *m = ctx;
    (void)tensor;
    if (row < 0 || row >= m->shard.num_rows)
        return NULL;
    return m->node.base + (size_t)m->node.place[row] * (size_t)m->shard.row_floats;
}

/* Describes the sharded store: the table's rows this rank holds from 0, then the replicated bias at store_bias. */
static void describe_layout(click *m) {
    m->layout_offset[0] = 0;
    m->layout_offset[1] = m->store_bias;
    m->layout_split[0] = 1;
    m->layout_split[1] = 0;
    m->layout = (dl_shard_layout){.count = m->params.count,
                                  .local_numel = m->store_numel,
                                  .local_offset = m->layout_offset,
                                  .split = m->layout_split,
                                  .local_row = click_local_row,
                                  .shared_row = m->shared ? click_shared_row : NULL,
                                  .ctx = m};
}

static void click_destroy(dl_model *model) {
    click *m = model->impl;
    if (!m)
        return;
    (void)finish_filler(m); /* the filler writes into the store freed below */
    if (m->shared)
        dl_node_table_destroy(&m->node); /* the store is this rank's part of the node's window */
    else if (m->store)
        dl_mem_free(m->be, m->store);
    dl_tensor_table_free(&m->params);
    dl_sharded_table_destroy(&m->shard);
    dl_sharded_plan_free(&m->plan);
    dl_sparse_sum_free(&m->sum);
    dl_click_device_free(&m->dev);
    free(m->grows);
    free(m->erows);
    free(m->scale);
    free(m->logits);
    free(m->set_keys);
    free(m->set_vals);
    free(m->uniq);
    free(m->compact);
    free(m->old);
    free(m->ev_pairs);
    free(m);
    model->impl = NULL;
}

/* ---- construction ---------------------------------------------------------------------------------------------- */

static dl_status check_settings(const dl_click_kind *kind, const dl_model_setup *setup) {
    const dl_model_config *cfg = setup->model;
    if (!setup->optimizer || strcmp(setup->optimizer, "adagrad") != 0) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "model.kind %s trains with per-instance AdaGrad, not optim.name %s",
                              kind->name, setup->optimizer ? setup->optimizer : "?");
        dl_error_hint("set optim.name: adagrad (libffm's defaults: optim.lr 0.2, optim.weight_decay 2e-5)");
        return s;
    }
    if (!(setup->adagrad_init > 0)) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "model.kind %s needs optim.adagrad_init > 0, got %g", kind->name,
                              setup->adagrad_init);
        dl_error_hint("libffm starts the accumulators at 1");
        return s;
    }
    if (cfg->precision != DL_PRECISION_FP32) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "model.kind %s trains in fp32; model.precision bf16 is for gpt and dpo",
                              kind->name);
        dl_error_hint("remove model.precision (or set it to fp32)");
        return s;
    }
    if (cfg->k < 1)
        return DL_FAIL(DL_ERR_CONFIG, "model.k = %d: the latent dimension must be at least 1", cfg->k);
    if (cfg->hash_buckets < 1 || cfg->hash_buckets > INT32_MAX) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "model.hash_buckets = %lld must be in [1, 2^31)",
                              (long long)cfg->hash_buckets);
        dl_error_hint("table rows are 32-bit indices");
        return s;
    }
    if (kind->field_aware && cfg->num_fields < 1)
        return DL_FAIL(DL_ERR_CONFIG, "model.num_fields = %d must be at least 1", cfg->num_fields);
    return DL_OK;
}

static dl_status click_create(dl_model *model, const dl_click_kind *kind, const dl_model_setup *setup,
                              const dl_backend *be, int rows, int single_process, int staged) {
    DL_REQUIRE(model && kind && setup && setup->model && setup->comm && be && rows >= 1, DL_ERR_INVALID,
               "dl_click_model_create: bad arguments");
    DL_CHECK(check_settings(kind, setup));
    const dl_model_config *cfg = setup->model;
    click *m = calloc(1, sizeof *m);
    DL_REQUIRE(m != NULL, DL_ERR_NOMEM, "cannot allocate a %s model", kind->name);
    m->kind = kind;
    m->be = be;
    m->staged = staged;
    dl_click_device_init(&m->dev, be);
    m->k = cfg->k;
    m->kpad = (m->k + 3) / 4 * 4;
    m->blocks = kind->field_aware ? cfg->num_fields : 1;
    m->linear = cfg->linear_terms;
    m->normalize = cfg->normalize;
    m->buckets = cfg->hash_buckets;
    m->lambda = (float)setup->weight_decay;
    m->adagrad_init = (float)setup->adagrad_init;
    int64_t block_floats = (int64_t)m->blocks * 2 * m->kpad;
    int64_t need = block_floats + (m->linear ? 2 : 0);
    int64_t rf = (need + 3) / 4 * 4;
    if (rf == 12)
        rf = 16; /* a 48-byte FM row would straddle cache lines: pad it to one 64-byte line */
    dl_status s = DL_OK;
    if (rf > INT32_MAX / 4)
        s = DL_FAIL(DL_ERR_CONFIG, "a table row of %lld floats (model.num_fields × model.k) is too large",
                    (long long)rf);
    m->row_floats = (int)rf;
    m->linear_offset = m->linear ? (int)block_floats : -1;
    if (single_process) {
        m->rank = 0;
        m->world_size = 1;
    } else {
        dl_comm_world_shape(&m->rank, &m->world_size);
    }
    m->sharded = !single_process && setup->comm->embeddings != DL_EMBEDDINGS_REPLICATED && m->world_size > 1;
    m->shared = m->sharded && setup->comm->embeddings == DL_EMBEDDINGS_SHARED;
    if (s == DL_OK && m->sharded && m->staged) {
        s = DL_FAIL(DL_ERR_UNSUPPORTED, "model.kind %s with comm.embeddings: %s over %d ranks keeps the table in host "
                    "memory, but on the %s backend the table lives in device memory", kind->name,
                    m->shared ? "shared" : "sharded", m->world_size, be->name);
        dl_error_hint("use comm.embeddings: replicated (each GPU holds the whole table; the ranks add up their "
                      "changes every step), or device: cpu to shard the table over the ranks' host memory");
    }
    char name[64];
    if (s == DL_OK)
        s = dl_tensor_table_init(&m->params, DL_F32, 16);
    snprintf(name, sizeof name, "%s.table", kind->name);
    if (s == DL_OK)
        s = dl_tensor_table_add(&m->params, name, 2, DL_SHAPE((size_t)m->buckets, (size_t)m->row_floats), NULL);
    snprintf(name, sizeof name, "%s.bias", kind->name);
    size_t bias_index = 0;
    if (s == DL_OK && m->linear)
        s = dl_tensor_table_add(&m->params, name, 1, DL_SHAPE(2), &bias_index);
    if (s == DL_OK && m->linear)
        m->full_bias = dl_tensor_table_at(&m->params, bias_index)->offset;
    if (s == DL_OK && m->sharded) {
        s = dl_sharded_table_create(&m->shard, m->rank, m->world_size, m->buckets, m->row_floats);
        m->store_rows = m->shard.local_rows;
    } else {
        m->store_rows = m->buckets;
    }
    if (s == DL_OK) {
        size_t table = (size_t)m->store_rows * (size_t)m->row_floats;
        m->store_bias = (table + 15) / 16 * 16;
        m->store_numel = m->linear ? m->store_bias + 2 : table;
        if (!m->sharded) {
            m->store_numel = dl_tensor_table_numel(&m->params);
            if (m->linear && m->store_bias != m->full_bias)
                s = DL_FAIL(DL_ERR_RUNTIME, "%s: bias offset %zu differs from the table layout's %zu", kind->name,
                            m->store_bias, m->full_bias);
        }
        if (s == DL_OK && m->shared) { /* collective: every rank's check above depends on the config alone */
            s = dl_node_table_create(&m->node, &m->shard, m->store_numel - table);
            m->store = s == DL_OK ? m->node.mine : NULL;
        } else if (s == DL_OK) {
            s = dl_mem_alloc(be, (void **)&m->store, (m->store_numel ? m->store_numel : 1) * sizeof(float));
        }
        /* Host tables are not zeroed here: every row is written once, by init_params or by a checkpoint load, and
         * a second pass over hundreds of MiB (page faults included) cost as much as filling them. Only what lies
         * past the rows (padding, the bias) starts at zero. Device tables are zeroed as before. */
        size_t rows_numel = (size_t)m->store_rows * (size_t)m->row_floats;
        if (s == DL_OK && (staged || be->kind != DL_DEVICE_CPU))
            s = dl_mem_zero(be, m->store, m->store_numel * sizeof(float));
        else if (s == DL_OK && m->store_numel > rows_numel)
            s = dl_mem_zero(be, m->store + rows_numel, (m->store_numel - rows_numel) * sizeof(float));
    }
    model->impl = m;
    model->destroy = click_destroy;
    if (s != DL_OK) {
        click_destroy(model);
        return s;
    }
    if (m->sharded)
        m->shard.data = m->store;
    model->kind = kind->name;
    model->params = &m->params;
    model->param_data = m->store;
    model->grad_data = NULL;
    model->train_batch = click_train_batch;
    model->eval_batch = click_eval_batch;
    model->init_params = click_init_params;
    model->init_params_background = click_init_params_background;
    model->params_ready = click_params_ready;
    model->step_flops = NULL;
    model->self_updating = 1;
    model->evaluate = click_evaluate;
    if (m->sharded) {
        describe_layout(m);
        model->shard_layout = &m->layout;
        model->local_numel = m->store_numel;
    }
    return DL_OK;
}

dl_status dl_click_model_create(dl_model *model, const dl_click_kind *kind, const dl_model_setup *setup,
                                const dl_backend *be, int rows, int single_process) {
    return click_create(model, kind, setup, be, rows, single_process, be != NULL && be->kind != DL_DEVICE_CPU);
}

dl_status dl_click_model_create_staged(dl_model *model, const dl_click_kind *kind, const dl_model_setup *setup,
                                       const dl_backend *be, int rows, int single_process) {
    return click_create(model, kind, setup, be, rows, single_process, 1);
}
