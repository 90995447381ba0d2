/* sharded_table.c — row-sharded tables and their sparse exchanges (see sharded_table.h).
 *
 * Routing is deterministic: ids go to owners grouped by owner in the order the caller listed them, owners answer in
 * the order they received, and changes are added in rank order. Nothing here depends on timing, so a sharded run
 * repeats exactly. Buffers live in the plan (or sum) and grow to the largest step, then stay. */
#include "comm/sharded_table.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/grow.h"

void dl_comm_world_shape(int *rank, int *size) {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    *rank = 0;
    *size = 1;
    if (up && !down) {
        MPI_Comm_rank(MPI_COMM_WORLD, rank);
        MPI_Comm_size(MPI_COMM_WORLD, size);
    }
}

dl_status dl_sharded_table_create(dl_sharded_table *t, int rank, int world_size, int64_t num_rows, int row_floats) {
    DL_REQUIRE(t != NULL, DL_ERR_INVALID, "dl_sharded_table_create: NULL table");
    memset(t, 0, sizeof *t);
    DL_REQUIRE(world_size >= 1 && rank >= 0 && rank < world_size, DL_ERR_INVALID,
               "dl_sharded_table_create: rank %d outside a world of %d", rank, world_size);
    DL_REQUIRE(num_rows >= 0 && row_floats >= 1, DL_ERR_INVALID,
               "dl_sharded_table_create: %lld rows of %d floats", (long long)num_rows, row_floats);
    int64_t blocks = (num_rows + 63) / 64;
    t->mask = calloc((size_t)blocks + 1, sizeof *t->mask);
    t->base = calloc((size_t)blocks + 1, sizeof *t->base);
    if (!t->mask || !t->base) {
        dl_sharded_table_destroy(t);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the row index of a %lld-row sharded table", (long long)num_rows);
    }
    int64_t owned = 0;
    for (int64_t b = 0; b < blocks; b++) {
        t->base[b] = owned;
        uint64_t m = 0;
        int64_t end = (b + 1) * 64 < num_rows ? (b + 1) * 64 : num_rows;
        for (int64_t g = b * 64; g < end; g++)
            if (dl_hash_owner((uint64_t)g, world_size) == rank)
                m |= 1ull << (g - b * 64);
        t->mask[b] = m;
        owned += __builtin_popcountll(m);
    }
    t->rank = rank;
    t->world_size = world_size;
    t->num_rows = num_rows;
    t->row_floats = row_floats;
    t->local_rows = owned;
    return DL_OK;
}

void dl_sharded_table_destroy(dl_sharded_table *t) {
    if (!t)
        return;
    free(t->mask);
    free(t->base);
    memset(t, 0, sizeof *t);
}

int64_t dl_sharded_table_local(const dl_sharded_table *t, int64_t g) {
    if (g < 0 || g >= t->num_rows)
        return -1;
    uint64_t m = t->mask[g >> 6];
    unsigned bit = (unsigned)(g & 63);
    if (!((m >> bit) & 1))
        return -1;
    return t->base[g >> 6] + __builtin_popcountll(m & ((1ull << bit) - 1));
}

int64_t dl_sharded_owned_count(int64_t num_rows, int rank, int world_size) {
    int64_t n = 0;
    for (int64_t g = 0; g < num_rows; g++)
        n += dl_hash_owner((uint64_t)g, world_size) == rank;
    return n;
}

/* Byte counts and displacements of `per_rank` items of `item_bytes` each, for alltoallv (int counts). */
static dl_status byte_layout(const int *per_rank, int world_size, size_t item_bytes, int *counts, int *displs,
                             const char *what) {
    long long at = 0;
    for (int r = 0; r < world_size; r++) {
        long long bytes = (long long)per_rank[r] * (long long)item_bytes;
        if (bytes > INT_MAX || at > INT_MAX) {
            dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: %lld bytes for one rank exceed MPI's 2 GiB message limit",
                                  what, bytes > INT_MAX ? bytes : at);
            dl_error_hint("lower train.batch_per_rank");
            return s;
        }
        counts[r] = (int)bytes;
        displs[r] = (int)at;
        at += bytes;
    }
    DL_REQUIRE(at <= INT_MAX, DL_ERR_INVALID, "%s: %lld bytes exceed MPI's 2 GiB message limit", what, at);
    return DL_OK;
}

static dl_status alloc_counts(int **arrays, int n, int world_size) {
    for (int i = 0; i < n; i++) {
        if (arrays[i])
            continue;
        arrays[i] = calloc((size_t)world_size, sizeof(int));
        DL_REQUIRE(arrays[i] != NULL, DL_ERR_NOMEM, "cannot allocate exchange counts for %d ranks", world_size);
    }
    return DL_OK;
}

/* ---- the per-step exchange -------------------------------------------------------------------------------------- */

void dl_sharded_plan_free(dl_sharded_plan *p) {
    if (!p)
        return;
    free(p->send_counts);
    free(p->send_displs);
    free(p->recv_counts);
    free(p->recv_displs);
    for (int i = 0; i < 4; i++)
        free(p->byte_counts[i]);
    free(p->slot);
    free(p->own_pos);
    free(p->own_local);
    free(p->served_local);
    free(p->ids_out);
    free(p->ids_in);
    free(p->rows_out);
    free(p->rows_in);
    memset(p, 0, sizeof *p);
}

static dl_status plan_prepare(dl_sharded_plan *p, int world_size) {
    if (p->world_size != world_size) {
        dl_sharded_plan_free(p);
        p->world_size = world_size;
    }
    int *arrays[8] = {p->send_counts, p->send_displs, p->recv_counts, p->recv_displs,
                      p->byte_counts[0], p->byte_counts[1], p->byte_counts[2], p->byte_counts[3]};
    DL_CHECK(alloc_counts(arrays, 8, world_size));
    p->send_counts = arrays[0];
    p->send_displs = arrays[1];
    p->recv_counts = arrays[2];
    p->recv_displs = arrays[3];
    for (int i = 0; i < 4; i++)
        p->byte_counts[i] = arrays[4 + i];
    return DL_OK;
}

dl_status dl_sharded_plan_build(dl_sharded_table *t, dl_sharded_plan *p, const int64_t *rows, int64_t n,
                                dl_world *world) {
    DL_REQUIRE(t && p && world && (rows || n == 0) && n >= 0, DL_ERR_INVALID, "dl_sharded_plan_build: bad arguments");
    DL_REQUIRE(world->size == t->world_size && world->rank == t->rank, DL_ERR_INVALID,
               "sharded table built for rank %d of %d, used on rank %d of %d", t->rank, t->world_size, world->rank,
               world->size);
    DL_REQUIRE(n <= INT_MAX, DL_ERR_INVALID, "a step asks for %lld rows (more than 2^31)", (long long)n);
    const int W = world->size;
    DL_CHECK(plan_prepare(p, W));
    const size_t rf = (size_t)t->row_floats;
    DL_CHECK(dl_grow((void **)&p->slot, &p->cap_slot, (size_t)n + 1, sizeof(int64_t), "the exchange plan"));
    DL_CHECK(dl_grow((void **)&p->ids_out, &p->cap_ids_out, (size_t)n + 1, sizeof(int64_t), "the exchange plan"));
    DL_CHECK(dl_grow((void **)&p->rows_out, &p->cap_rows_out, ((size_t)n + 1) * rf, sizeof(float),
                     "the exchange rows"));
    DL_CHECK(dl_grow((void **)&p->own_pos, &p->cap_own_pos, (size_t)n + 1, sizeof(int64_t), "the exchange plan"));
    DL_CHECK(dl_grow((void **)&p->own_local, &p->cap_own_local, (size_t)n + 1, sizeof(int64_t), "the exchange plan"));
    memset(p->send_counts, 0, (size_t)W * sizeof(int));
    for (int64_t i = 0; i < n; i++) {
        DL_REQUIRE(rows[i] >= 0 && rows[i] < t->num_rows, DL_ERR_INVALID,
                   "row %lld is outside the sharded table [0, %lld)", (long long)rows[i], (long long)t->num_rows);
        p->send_counts[dl_hash_owner((uint64_t)rows[i], W)]++;
    }
    /* Own rows are copied straight between the table and the caller's buffers: through MPI each would be copied
     * three times more each way (into the send buffer, through the all-to-all, out of the receive buffer). */
    p->send_counts[t->rank] = 0;
    int at = 0;
    for (int r = 0; r < W; r++) {
        p->send_displs[r] = at;
        at += p->send_counts[r];
    }
    int *fill = p->byte_counts[0];
    memcpy(fill, p->send_displs, (size_t)W * sizeof(int));
    p->own = 0;
    for (int64_t i = 0; i < n; i++) {
        int o = dl_hash_owner((uint64_t)rows[i], W);
        if (o == t->rank) {
            p->slot[i] = -1;
            p->own_pos[p->own] = i;
            p->own_local[p->own++] = dl_sharded_table_local(t, rows[i]);
            continue;
        }
        p->slot[i] = fill[o]++;
        p->ids_out[p->slot[i]] = rows[i];
    }
    p->requested = n;
    DL_CHECK(dl_comm_alltoall_int(world, p->send_counts, p->recv_counts, "sharded table: row counts"));
    int64_t served = 0;
    for (int r = 0; r < W; r++) {
        DL_REQUIRE(p->recv_counts[r] >= 0, DL_ERR_COMM, "rank %d announced %d rows", r, p->recv_counts[r]);
        p->recv_displs[r] = (int)served;
        served += p->recv_counts[r];
        DL_REQUIRE(served <= INT_MAX, DL_ERR_INVALID, "a step serves more than 2^31 rows");
    }
    DL_CHECK(dl_grow((void **)&p->ids_in, &p->cap_ids_in, (size_t)served + 1, sizeof(int64_t), "the exchange plan"));
    DL_CHECK(dl_grow((void **)&p->served_local, &p->cap_local, (size_t)served + 1, sizeof(int64_t),
                     "the exchange plan"));
    DL_CHECK(dl_grow((void **)&p->rows_in, &p->cap_rows_in, ((size_t)served + 1) * rf, sizeof(float),
                  "the exchange rows"));
    p->served = served;
    int *sc = p->byte_counts[0], *sd = p->byte_counts[1], *rc = p->byte_counts[2], *rd = p->byte_counts[3];
    DL_CHECK(byte_layout(p->send_counts, W, sizeof(int64_t), sc, sd, "sharded table: row ids"));
    DL_CHECK(byte_layout(p->recv_counts, W, sizeof(int64_t), rc, rd, "sharded table: row ids"));
    DL_CHECK(dl_comm_alltoallv(world, p->ids_out, sc, sd, p->ids_in, rc, rd, "sharded table: row ids"));
    for (int64_t i = 0; i < served; i++) {
        int64_t local = dl_sharded_table_local(t, p->ids_in[i]);
        DL_REQUIRE(local >= 0, DL_ERR_COMM, "rank %d was asked for row %lld, which it does not own", t->rank,
                   (long long)p->ids_in[i]);
        p->served_local[i] = local;
    }
    return DL_OK;
}

dl_status dl_sharded_fetch(dl_sharded_table *t, dl_sharded_plan *p, float *out, dl_world *world) {
    DL_REQUIRE(t && p && world && (out || p->requested == 0), DL_ERR_INVALID, "dl_sharded_fetch: bad arguments");
    const size_t rf = (size_t)t->row_floats;
    const int W = world->size;
    for (int64_t i = 0; i < p->served; i++)
        memcpy(p->rows_in + (size_t)i * rf, t->data + (size_t)p->served_local[i] * rf, rf * sizeof(float));
    int *sc = p->byte_counts[0], *sd = p->byte_counts[1], *rc = p->byte_counts[2], *rd = p->byte_counts[3];
    DL_CHECK(byte_layout(p->recv_counts, W, rf * sizeof(float), sc, sd, "sharded table: rows"));
    DL_CHECK(byte_layout(p->send_counts, W, rf * sizeof(float), rc, rd, "sharded table: rows"));
    DL_CHECK(dl_comm_alltoallv(world, p->rows_in, sc, sd, p->rows_out, rc, rd, "sharded table: rows"));
    for (int64_t i = 0; i < p->requested; i++)
        if (p->slot[i] >= 0)
            memcpy(out + (size_t)i * rf, p->rows_out + (size_t)p->slot[i] * rf, rf * sizeof(float));
    for (int64_t k = 0; k < p->own; k++)
        memcpy(out + (size_t)p->own_pos[k] * rf, t->data + (size_t)p->own_local[k] * rf, rf * sizeof(float));
    return DL_OK;
}

dl_status dl_sharded_push_add(dl_sharded_table *t, dl_sharded_plan *p, const float *deltas, dl_world *world) {
    DL_REQUIRE(t && p && world && (deltas || p->requested == 0), DL_ERR_INVALID,
               "dl_sharded_push_add: bad arguments");
    const size_t rf = (size_t)t->row_floats;
    const int W = world->size;
    for (int64_t i = 0; i < p->requested; i++)
        if (p->slot[i] >= 0)
            memcpy(p->rows_out + (size_t)p->slot[i] * rf, deltas + (size_t)i * rf, rf * sizeof(float));
    int *sc = p->byte_counts[0], *sd = p->byte_counts[1], *rc = p->byte_counts[2], *rd = p->byte_counts[3];
    DL_CHECK(byte_layout(p->send_counts, W, rf * sizeof(float), sc, sd, "sharded table: changes"));
    DL_CHECK(byte_layout(p->recv_counts, W, rf * sizeof(float), rc, rd, "sharded table: changes"));
    DL_CHECK(dl_comm_alltoallv(world, p->rows_out, sc, sd, p->rows_in, rc, rd, "sharded table: changes"));
    /* In rank order, this rank's own changes in its place, so the sums round the same whoever holds the row. */
    for (int r = 0; r < W; r++) {
        if (r == t->rank) {
            for (int64_t k = 0; k < p->own; k++) {
                float *dst = t->data + (size_t)p->own_local[k] * rf;
                const float *src = deltas + (size_t)p->own_pos[k] * rf;
                for (size_t f = 0; f < rf; f++)
                    dst[f] += src[f];
            }
            continue;
        }
        for (int64_t i = p->recv_displs[r]; i < (int64_t)p->recv_displs[r] + p->recv_counts[r]; i++) {
            float *dst = t->data + (size_t)p->served_local[i] * rf;
            const float *src = p->rows_in + (size_t)i * rf;
            for (size_t f = 0; f < rf; f++)
                dst[f] += src[f];
        }
    }
    return DL_OK;
}

/* ---- replicated tables: union and sum of changes ----------------------------------------------------------------- */

void dl_sparse_sum_free(dl_sparse_sum *s) {
    if (!s)
        return;
    free(s->rows);
    free(s->sums);
    free(s->mine);
    free(s->all_ids);
    free(s->counts);
    free(s->displs);
    for (int i = 0; i < 4; i++)
        free(s->byte_counts[i]);
    memset(s, 0, sizeof *s);
}

static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

dl_status dl_sparse_sum_rows(dl_sparse_sum *s, const int64_t *rows, int64_t n, const float *deltas, int row_floats,
                             dl_world *world) {
    DL_REQUIRE(s && world && (rows || n == 0) && (deltas || n == 0) && n >= 0 && row_floats >= 1, DL_ERR_INVALID,
               "dl_sparse_sum_rows: bad arguments");
    DL_REQUIRE(n <= INT_MAX, DL_ERR_INVALID, "a step changed %lld rows (more than 2^31)", (long long)n);
    for (int64_t i = 1; i < n; i++)
        DL_REQUIRE(rows[i] > rows[i - 1], DL_ERR_INVALID, "dl_sparse_sum_rows: rows are not distinct and increasing");
    const int W = world->size;
    int *arrays[6] = {s->counts, s->displs, s->byte_counts[0], s->byte_counts[1], s->byte_counts[2],
                      s->byte_counts[3]};
    DL_CHECK(alloc_counts(arrays, 6, W));
    s->counts = arrays[0];
    s->displs = arrays[1];
    for (int i = 0; i < 4; i++)
        s->byte_counts[i] = arrays[2 + i];
    int *mine_counts = s->byte_counts[0];
    for (int r = 0; r < W; r++)
        mine_counts[r] = (int)n;
    DL_CHECK(dl_comm_alltoall_int(world, mine_counts, s->counts, "replicated table: row counts"));
    int64_t total = 0;
    for (int r = 0; r < W; r++)
        total += s->counts[r];
    DL_CHECK(dl_grow((void **)&s->all_ids, &s->cap_all, (size_t)total + 1, sizeof(int64_t), "the union of rows"));
    int *sc = s->byte_counts[0], *sd = s->byte_counts[1], *rc = s->byte_counts[2], *rd = s->byte_counts[3];
    DL_CHECK(byte_layout(s->counts, W, sizeof(int64_t), rc, rd, "replicated table: row ids"));
    for (int r = 0; r < W; r++) {
        sc[r] = (int)((size_t)n * sizeof(int64_t));
        sd[r] = 0; /* the same list goes to every rank */
    }
    DL_CHECK(dl_comm_alltoallv(world, rows, sc, sd, s->all_ids, rc, rd, "replicated table: row ids"));
    qsort(s->all_ids, (size_t)total, sizeof(int64_t), compare_i64);
    int64_t count = 0;
    for (int64_t i = 0; i < total; i++)
        if (count == 0 || s->all_ids[i] != s->all_ids[count - 1])
            s->all_ids[count++] = s->all_ids[i];
    DL_CHECK(dl_grow((void **)&s->rows, &s->cap_rows, (size_t)count + 1, sizeof(int64_t), "the union of rows"));
    DL_CHECK(dl_grow((void **)&s->sums, &s->cap_sums, ((size_t)count + 1) * (size_t)row_floats, sizeof(float),
                  "the sums of row changes"));
    DL_CHECK(dl_grow((void **)&s->mine, &s->cap_mine, (size_t)n + 1, sizeof(int64_t), "the union of rows"));
    memcpy(s->rows, s->all_ids, (size_t)count * sizeof(int64_t));
    s->count = count;
    const size_t rf = (size_t)row_floats;
    memset(s->sums, 0, (size_t)count * rf * sizeof(float));
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        while (s->rows[at] < rows[i])
            at++;
        s->mine[i] = at;
        memcpy(s->sums + (size_t)at * rf, deltas + (size_t)i * rf, rf * sizeof(float));
    }
    size_t floats = (size_t)count * rf, done = 0;
    while (done < floats) {
        size_t part = floats - done < ((size_t)1 << 30) ? floats - done : ((size_t)1 << 30);
        DL_CHECK(dl_comm_allreduce_sum_f32(world, s->sums + done, part, "replicated table: row changes"));
        done += part;
    }
    return DL_OK;
}
