/* test_checkpoint_zero.c — checkpoints written collectively from 2 or 3 ranks, each holding only part of the
 * state, read back whole and re-sliced for other world sizes. Runs under mpirun -np 2 and -np 3.
 *
 * Every rank's buffers hold the reference values only where that rank is responsible and NaN garbage everywhere
 * else, so a file equal to the reference (and passing its CRC checks on load) proves that each element was written
 * by the rank that holds it: rank 0 for replicated parameters, the slice owner for optimizer states (even, uneven,
 * reversed, overlapping or empty slices, not aligned to tensor boundaries, plain and compressed). A split table
 * (shard_layout.h) is held only in part by each rank, its rows back to back in a buffer of its own share: each
 * rank writes exactly those rows, the file is the whole table, and a collective load under another row split
 * (what a resume on another world size does) reads each rank's new rows straight into its buffer. Layouts that do
 * not give every row to one rank, and a damaged split dataset, fail on every rank. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "comm/world.h"
#include "core/hash.h"
#include "comm/shard_layout.h"
#include "ckpt/checkpoint.h"
#include "core/fault.h"

static dl_world world;
static char dir[256];
static uint64_t seed;

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("rank %d: %s failed: %s", world.rank, #expr, dl_error_message());                      \
    } while (0)

static const char *const names[] = {"adam_m", "adam_v"};

typedef struct model {
    dl_tensor_table table;
    size_t numel;
    float *ref[3];  /* params, adam_m, adam_v: the values the file must hold */
    float *mine[3]; /* this rank's buffers: reference where it is responsible, NaN elsewhere */
} model;

static void model_init(model *m) {
    memset(m, 0, sizeof *m);
    ASSERT_OK(dl_tensor_table_init(&m->table, DL_F32, 16));
    ASSERT_OK(dl_tensor_table_add(&m->table, "emb", 2, DL_SHAPE(101, 7), NULL));
    ASSERT_OK(dl_tensor_table_add(&m->table, "w", 3, DL_SHAPE(5, 3, 9), NULL));
    ASSERT_OK(dl_tensor_table_add(&m->table, "b", 1, DL_SHAPE(13), NULL));
    ASSERT_OK(dl_tensor_table_add(&m->table, "big", 2, DL_SHAPE(600, 500), NULL)); /* two 1 MiB chunks */
    ASSERT_OK(dl_tensor_table_add(&m->table, "g", 0, NULL, NULL));
    m->numel = dl_tensor_table_numel(&m->table);
    for (int k = 0; k < 3; k++) {
        m->ref[k] = malloc(m->numel * sizeof(float));
        m->mine[k] = malloc(m->numel * sizeof(float));
        assert_non_null(m->ref[k]);
        assert_non_null(m->mine[k]);
        dl_rng rng;
        dl_rng_init(&rng, seed, 100 + (uint64_t)k); /* the same on every rank */
        dl_test_fill_uniform(&rng, m->ref[k], m->numel, -1.0f, 1.0f);
        dl_test_poison(m->mine[k], m->numel);
    }
}

static void model_free(model *m) {
    dl_tensor_table_free(&m->table);
    for (int k = 0; k < 3; k++) {
        free(m->ref[k]);
        free(m->mine[k]);
    }
}

static void give(model *m, int k, size_t begin, size_t end) {
    if (end > begin)
        memcpy(m->mine[k] + begin, m->ref[k] + begin, (end - begin) * sizeof(float));
}

/* This rank's cursor: rank-specific bytes of a rank-specific length (rank 1 has none). */
static size_t cursor_of(int rank, uint8_t *out) {
    size_t len = rank == 1 ? 0 : (size_t)(3 * rank + 5);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(rank * 31 + (int)i);
    return len;
}

static void fill_meta(dl_ckpt_meta *meta) {
    memset(meta, 0, sizeof *meta);
    meta->step = 7;
    meta->world_size = world.size;
    meta->zero_stage = 1;
    snprintf(meta->model_kind, sizeof meta->model_kind, "ffm");
    meta->config_yaml = (char *)"comm:\n  zero: 1\n";
}

/* Loads `path` whole on every rank and compares every tensor and state with the reference, bit for bit. */
static void check_whole(const model *m, const char *path, const char *name, uint8_t **got, size_t *got_len) {
    model back;
    model_init(&back);
    float *back_states[2] = {back.mine[1], back.mine[2]};
    dl_ckpt_tensors bt = {&back.table, back.mine[0], 2, names, back_states, 0, back.numel};
    ASSERT_OK(dl_ckpt_load(path, &bt, world.rank, world.size, got, got_len));
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < m->table.count; i++) {
            const dl_tensor *v = dl_tensor_table_at(&m->table, i);
            if (memcmp(back.mine[k] + v->offset, m->ref[k] + v->offset, v->numel * sizeof(float)) != 0)
                DL_TEST_FAIL("%s, rank %d of %d: %s of tensor %s differs from the reference", name, world.rank,
                             world.size, k ? names[k - 1] : "params", v->name);
        }
    model_free(&back);
}

/* Writes with this rank holding states [begin, end) (and the params when rank 0), then every rank loads the file
 * and checks all of it, and its slice under another slicing. */
static void write_and_check(size_t begin, size_t end, int compress, const char *name) {
    model m;
    model_init(&m);
    if (world.rank == 0)
        give(&m, 0, 0, m.numel);
    for (int k = 1; k < 3; k++)
        give(&m, k, begin, end);
    float *states[2] = {m.mine[1], m.mine[2]};
    dl_ckpt_tensors t = {&m.table, m.mine[0], 2, names, states, begin, end};
    dl_ckpt_meta meta;
    fill_meta(&meta);
    uint8_t cursor[64];
    size_t cursor_len = cursor_of(world.rank, cursor);
    dl_ckpt_options o = {.compress = compress};
    char path[512];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    ASSERT_OK(dl_ckpt_write(&world, path, &meta, &t, cursor, cursor_len, &o));

    /* Load whole (any world size reads the same file) and compare bit for bit. */
    model back;
    model_init(&back);
    float *back_states[2] = {back.mine[1], back.mine[2]};
    dl_ckpt_tensors bt = {&back.table, back.mine[0], 2, names, back_states, 0, back.numel};
    uint8_t *got = NULL;
    size_t got_len = 0;
    check_whole(&m, path, name, &got, &got_len);
    assert_int_equal(got_len, cursor_len);
    if (cursor_len)
        assert_memory_equal(got, cursor, cursor_len);
    free(got);
    /* The slice this rank would hold on world size + 1 (a resume on more ranks) is the reference's. */
    int w2 = world.size + 1;
    size_t b2 = m.numel * (size_t)world.rank / (size_t)w2, e2 = m.numel * (size_t)(world.rank + 1) / (size_t)w2;
    ASSERT_OK(dl_ckpt_load(path, &bt, world.rank, w2, &got, &got_len));
    assert_null(got);
    for (int k = 1; k < 3; k++)
        for (size_t i = 0; i < m.table.count; i++) {
            const dl_tensor *v = dl_tensor_table_at(&m.table, i);
            size_t lo = v->offset > b2 ? v->offset : b2, hi = v->offset + v->numel < e2 ? v->offset + v->numel : e2;
            if (lo < hi && memcmp(back.mine[k] + lo, m.ref[k] + lo, (hi - lo) * sizeof(float)) != 0)
                DL_TEST_FAIL("%s: re-sliced state of %s differs", name, v->name);
        }
    model_free(&back);
    model_free(&m);
    ASSERT_OK(dl_comm_barrier(&world, "after check"));
}

static size_t numel_of_model(void) {
    model m;
    model_init(&m);
    size_t n = m.numel;
    model_free(&m);
    return n;
}

static void even_zero_slices(void **state) {
    (void)state;
    size_t n = numel_of_model(), W = (size_t)world.size, r = (size_t)world.rank;
    write_and_check(n * r / W, n * (r + 1) / W, 0, "even");
}

/* Reversed order (rank 0 holds the last slice), cut mid-row, each non-empty slice reaching 100 elements into its
 * neighbour's, and on 3 ranks the middle slice empty. */
static void uneven_reversed_overlapping_slices(void **state) {
    (void)state;
    size_t n = numel_of_model(), W = (size_t)world.size, p = W - 1 - (size_t)world.rank;
    size_t cut[4];
    for (size_t i = 0; i <= W; i++)
        cut[i] = i == 0 ? 0 : i == W ? n : n * i / W - 37 * i;
    if (W == 3)
        cut[2] = cut[1];
    size_t begin = cut[p], end = cut[p + 1];
    if (end > begin)
        end = end + 100 < n ? end + 100 : n;
    write_and_check(begin, end, 0, "uneven");
}

static void uneven_slices_compressed(void **state) {
    (void)state;
    size_t n = numel_of_model(), W = (size_t)world.size, r = (size_t)world.rank;
    size_t cut = r == 0 ? 0 : n * r / W - 1234 * r;
    size_t next = r + 1 == W ? n : n * (r + 1) / W - 1234 * (r + 1);
    write_and_check(cut, next, 1, "compressed");
}

static void replicated_state(void **state) {
    (void)state;
    write_and_check(0, numel_of_model(), 0, "replicated");
}

/* ---- split tables ------------------------------------------------------------------------------------------------
 * "emb" (tensor 0, [101, 7]) split by rows, this rank's buffers laid out as shard_layout.h says: the rows it holds
 * back to back from 0, then the other tensors whole, shifted to an odd offset (nothing may assume alignment). */
enum { SPLIT_BLOCKS, SPLIT_HASH };

typedef struct split {
    int64_t *slot; /* [rows of emb] */
    int64_t held;
    size_t offset[5];
    unsigned char flags[5];
    dl_shard_layout layout;
    float *buf[3]; /* params, adam_m, adam_v; NaN where this rank is not responsible */
    float *whole;       /* with split_share: every parameter row, in memory all ranks share (a node's table) */
    MPI_Win win;
    size_t row_len;
    int64_t missing;    /* the row split_shared_row does not place (-1: none) */
} split;

static int64_t split_local_row(const void *ctx, size_t tensor, int64_t row) {
    const split *s = ctx;
    assert_int_equal(tensor, 0);
    return s->slot[row];
}

static float *split_shared_row(const void *ctx, size_t tensor, int64_t row) {
    const split *s = ctx;
    assert_int_equal(tensor, 0);
    return row == s->missing ? NULL : s->whole + (size_t)row * s->row_len;
}

/* Ranks' plain stores to the shared window seen by all (MPI's separate model: sync, collective, sync). */
static void shared_settle(split *s) {
    MPI_Win_sync(s->win);
    assert_int_equal(MPI_Barrier(world.comm), MPI_SUCCESS);
    MPI_Win_sync(s->win);
}

/* Puts every parameter row in one shared-memory window of the ranks, as a node's shared table keeps them
 * (shard_layout.h's shared_row places rows there): the reference rows when `fill`, poison otherwise. This rank's
 * own parameter rows are poisoned: a save must take the rows from the window, a load must put them there.
 * Collective. */
static void split_share(split *s, const model *m, int fill) {
    const dl_tensor *emb = dl_tensor_table_at(&m->table, 0);
    s->row_len = emb->shape[1];
    MPI_Aint bytes = world.rank == 0 ? (MPI_Aint)(emb->numel * sizeof(float)) : 0, size = 0;
    float *mine = NULL;
    int unit = 0;
    assert_int_equal(MPI_Win_allocate_shared(bytes, sizeof(float), MPI_INFO_NULL, world.comm, &mine, &s->win),
                     MPI_SUCCESS);
    assert_int_equal(MPI_Win_shared_query(s->win, 0, &size, &unit, &s->whole), MPI_SUCCESS);
    assert_int_equal(MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win), MPI_SUCCESS);
    if (world.rank == 0) {
        if (fill)
            memcpy(s->whole, m->ref[0] + emb->offset, emb->numel * sizeof(float));
        else
            dl_test_poison(s->whole, emb->numel);
    }
    shared_settle(s);
    s->missing = -1;
    s->layout.shared_row = split_shared_row;
    dl_test_poison(s->buf[0], (size_t)s->held * s->row_len);
}

/* Who holds row g: blocks of three rows dealt round-robin (runs of rows), or dl_hash_owner (another world size's
 * split, as a resume elsewhere sees it). The checkpoint must take whatever the layout says. */
static int holder(int kind, int64_t g) {
    return kind == SPLIT_BLOCKS ? (int)((g / 3) % world.size) : dl_hash_owner((uint64_t)g, world.size);
}

static void split_init(split *s, const model *m, int kind) {
    memset(s, 0, sizeof *s);
    const dl_tensor *emb = dl_tensor_table_at(&m->table, 0);
    s->slot = malloc(emb->shape[0] * sizeof(int64_t));
    assert_non_null(s->slot);
    for (size_t g = 0; g < emb->shape[0]; g++)
        s->slot[g] = holder(kind, (int64_t)g) == world.rank ? s->held++ : -1;
    size_t first = dl_tensor_table_at(&m->table, 1)->offset, base = (size_t)s->held * emb->shape[1] + 5;
    for (size_t i = 1; i < m->table.count; i++)
        s->offset[i] = base + dl_tensor_table_at(&m->table, i)->offset - first;
    s->flags[0] = 1;
    s->layout = (dl_shard_layout){.count = m->table.count,
                                  .local_numel = base + m->numel - first,
                                  .local_offset = s->offset,
                                  .split = s->flags,
                                  .local_row = split_local_row,
                                  .ctx = s};
    for (int k = 0; k < 3; k++) {
        s->buf[k] = malloc(s->layout.local_numel * sizeof(float));
        assert_non_null(s->buf[k]);
        dl_test_poison(s->buf[k], s->layout.local_numel);
    }
}

static void split_free(split *s) {
    if (s->whole) { /* collective */
        MPI_Win_unlock_all(s->win);
        MPI_Win_free(&s->win);
    }
    free(s->slot);
    for (int k = 0; k < 3; k++)
        free(s->buf[k]);
}

/* Puts the reference where this rank is responsible: the rows it holds (parameters and states), the unsplit
 * parameters when `params`, the unsplit states of elements [begin, end) of the whole table. */
static void split_give(split *s, const model *m, int params, size_t begin, size_t end) {
    const dl_tensor *emb = dl_tensor_table_at(&m->table, 0);
    size_t rf = emb->shape[1];
    for (size_t g = 0; g < emb->shape[0]; g++)
        for (int k = 0; s->slot[g] >= 0 && k < 3; k++)
            memcpy(s->buf[k] + (size_t)s->slot[g] * rf, m->ref[k] + emb->offset + g * rf, rf * sizeof(float));
    for (size_t i = 1; i < m->table.count; i++) {
        const dl_tensor *v = dl_tensor_table_at(&m->table, i);
        if (params)
            memcpy(s->buf[0] + s->offset[i], m->ref[0] + v->offset, v->numel * sizeof(float));
        size_t lo = v->offset > begin ? v->offset : begin, hi = v->offset + v->numel < end ? v->offset + v->numel : end;
        for (int k = 1; k < 3 && lo < hi; k++)
            memcpy(s->buf[k] + s->offset[i] + (lo - v->offset), m->ref[k] + lo, (hi - lo) * sizeof(float));
    }
}

/* After a collective load: the rows this rank holds and every unsplit tensor are the reference's. */
static void split_check(const split *s, const model *m, const char *name) {
    const dl_tensor *emb = dl_tensor_table_at(&m->table, 0);
    size_t rf = emb->shape[1];
    for (int k = 0; k < 3; k++) {
        for (size_t g = 0; g < emb->shape[0]; g++)
            if (s->slot[g] >= 0 &&
                memcmp(s->buf[k] + (size_t)s->slot[g] * rf, m->ref[k] + emb->offset + g * rf, rf * sizeof(float)))
                DL_TEST_FAIL("%s, rank %d of %d: row %zu of %s/emb differs after a collective load", name,
                             world.rank, world.size, g, k ? names[k - 1] : "params");
        for (size_t i = 1; i < m->table.count; i++) {
            const dl_tensor *v = dl_tensor_table_at(&m->table, i);
            if (memcmp(s->buf[k] + s->offset[i], m->ref[k] + v->offset, v->numel * sizeof(float)) != 0)
                DL_TEST_FAIL("%s, rank %d: %s/%s differs after a collective load", name, world.rank,
                             k ? names[k - 1] : "params", v->name);
        }
    }
}

/* Writes from split buffers (rows in runs of three per rank, states in ZeRO slices) through slabs of write_slab
 * bytes, then: the file is the whole reference (read whole, CRCs checked), and a collective load through slabs of
 * read_slab bytes under another split (hash-owned rows: a resume on another world size) and under the same one puts
 * exactly the reference into each rank's buffers. A slab of 0 is the default (one round for this table); a few
 * rows' worth makes many rounds, slabs that share HDF5 chunks, and empty slabs at the end. */
static void split_write_and_check(int compress, size_t write_slab, size_t read_slab, int shared, const char *name) {
    model m;
    model_init(&m);
    size_t W = (size_t)world.size, r = (size_t)world.rank;
    size_t begin = m.numel * r / W, end = m.numel * (r + 1) / W;
    split s;
    split_init(&s, &m, SPLIT_BLOCKS);
    split_give(&s, &m, world.rank == 0, begin, end);
    if (shared)
        split_share(&s, &m, 1);
    float *states[2] = {s.buf[1], s.buf[2]};
    dl_ckpt_tensors t = {&m.table, s.buf[0], 2, names, states, begin, end};
    dl_ckpt_meta meta;
    fill_meta(&meta);
    uint8_t cursor[64];
    size_t cursor_len = cursor_of(world.rank, cursor);
    dl_ckpt_options o = {.compress = compress, .layout = &s.layout, .slab_bytes = write_slab};
    char path[512];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    ASSERT_OK(dl_ckpt_write(&world, path, &meta, &t, cursor, cursor_len, &o));
    uint8_t *got = NULL;
    size_t got_len = 0;
    check_whole(&m, path, name, &got, &got_len);
    assert_int_equal(got_len, cursor_len);
    free(got);
    for (int kind = SPLIT_HASH; kind >= SPLIT_BLOCKS; kind--) {
        split back;
        split_init(&back, &m, kind);
        if (shared)
            split_share(&back, &m, 0);
        float *back_states[2] = {back.buf[1], back.buf[2]};
        dl_ckpt_tensors bt = {&m.table, back.buf[0], 2, names, back_states, 0, m.numel};
        dl_ckpt_options how = {.layout = &back.layout, .slab_bytes = read_slab};
        ASSERT_OK(dl_ckpt_load_collective(&world, path, &bt, &how, &got, &got_len));
        if (shared) { /* the parameter rows went into the window, every one (own rows stay poisoned there) */
            shared_settle(&back);
            const dl_tensor *emb = dl_tensor_table_at(&m.table, 0);
            if (memcmp(back.whole, m.ref[0] + emb->offset, emb->numel * sizeof(float)) != 0)
                DL_TEST_FAIL("%s, rank %d: the shared rows differ from the reference after a load", name, world.rank);
            for (size_t g = 0; g < emb->shape[0]; g++) /* split_check compares own rows: they are the window's */
                if (back.slot[g] >= 0)
                    memcpy(back.buf[0] + (size_t)back.slot[g] * back.row_len, back.whole + g * back.row_len,
                           back.row_len * sizeof(float));
        }
        split_check(&back, &m, name);
        assert_int_equal(got_len, cursor_len);
        if (cursor_len)
            assert_memory_equal(got, cursor, cursor_len);
        free(got);
        split_free(&back);
    }
    split_free(&s);
    model_free(&m);
    ASSERT_OK(dl_comm_barrier(&world, "after split check"));
}

enum { EMB_ROW_BYTES = 7 * sizeof(float) };

static void split_table_plain(void **state) {
    (void)state;
    split_write_and_check(0, 0, 0, 0, "split");
}

static void split_table_in_rounds(void **state) {
    (void)state;
    split_write_and_check(0, 4 * EMB_ROW_BYTES, 7 * EMB_ROW_BYTES, 0, "split_rounds");
}

/* Rows every rank maps (a node's shared table): each rank fills its slabs of the parameters from them and loads
 * its slabs back into them, the optimizer states still travel, and the file is the same. */
static void split_table_shared_in_rounds(void **state) {
    (void)state;
    split_write_and_check(0, 4 * EMB_ROW_BYTES, 7 * EMB_ROW_BYTES, 1, "split_shared_rounds");
    split_write_and_check(1, 17 * EMB_ROW_BYTES - 1, 0, 1, "split_shared_compressed");
}

static void split_table_compressed_in_rounds(void **state) {
    (void)state;
    split_write_and_check(1, 17 * EMB_ROW_BYTES - 1, 3 * EMB_ROW_BYTES, 0, "split_compressed_rounds");
}

/* A layout that gives a row to two ranks, to none, or places rows out of order, or a shared layout that cannot
 * place a row, stops the write on every rank, with the fault named where it is seen, and leaves no file. */
static void split_layouts_that_miss_or_repeat_rows_fail(void **state) {
    (void)state;
    model m;
    model_init(&m);
    for (int fault = 0; fault < 4; fault++) {
        split s;
        split_init(&s, &m, SPLIT_BLOCKS);
        if (fault == 0 && world.rank == 1) /* rank 1 also claims row 0 (rank 0's): it becomes its first slot */
            for (size_t g = 0; g < 101; g++)
                s.slot[g] = g == 0 ? 0 : s.slot[g] >= 0 ? s.slot[g] + 1 : -1;
        if (fault == 1 && world.rank == 0) /* nobody holds row 0 */
            for (size_t g = 0; g < 101; g++)
                s.slot[g] = g == 0 ? -1 : s.slot[g] >= 0 ? s.slot[g] - 1 : -1;
        if (fault == 2 && world.rank == world.size - 1) { /* the first two rows held swap slots */
            int64_t *a = NULL, *b = NULL;
            for (size_t g = 0; g < 101 && !b; g++)
                if (s.slot[g] >= 0) {
                    if (a)
                        b = &s.slot[g];
                    else
                        a = &s.slot[g];
                }
            int64_t tmp = *a;
            *a = *b;
            *b = tmp;
        }
        split_give(&s, &m, world.rank == 0, 0, m.numel);
        if (fault == 3) { /* the shared memory has no row 0 */
            split_share(&s, &m, 1);
            s.missing = 0;
        }
        float *states[2] = {s.buf[1], s.buf[2]};
        dl_ckpt_tensors t = {&m.table, s.buf[0], 2, names, states, 0, m.numel};
        dl_ckpt_meta meta;
        fill_meta(&meta);
        dl_ckpt_options o = {.layout = &s.layout};
        char path[512];
        snprintf(path, sizeof path, "%s/bad_split_%d.h5", dir, fault);
        /* The rank that sees the fault names it (rank 0 owns the slab of row 0); the others learn that one did. */
        int culprit = fault == 2 ? world.size - 1 : 0;
        const char *want = world.rank != culprit ? "another rank failed"
                           : fault == 0          ? "/model/emb: row 0 is held by two ranks"
                           : fault == 1 || fault == 3 ? "/model/emb: row 0 is held by no rank"
                                                 : "lie back to back in row order";
        assert_int_equal(dl_ckpt_write(&world, path, &meta, &t, NULL, 0, &o),
                         world.rank == culprit ? DL_ERR_INVALID : DL_ERR_IO);
        if (!strstr(dl_error_message(), want))
            DL_TEST_FAIL("fault %d, rank %d: message '%s' lacks '%s'", fault, world.rank, dl_error_message(), want);
        assert_int_equal(access(path, F_OK), -1);
        split_free(&s);
        ASSERT_OK(dl_comm_barrier(&world, "after a bad split"));
    }
    model_free(&m);
}

/* One changed float in a split dataset fails the collective load on every rank, whoever holds that row. */
static void split_damage_fails_every_rank(void **state) {
    (void)state;
    model m;
    model_init(&m);
    split s;
    split_init(&s, &m, SPLIT_BLOCKS);
    split_give(&s, &m, world.rank == 0, 0, m.numel);
    float *states[2] = {s.buf[1], s.buf[2]};
    dl_ckpt_tensors t = {&m.table, s.buf[0], 2, names, states, 0, m.numel};
    dl_ckpt_meta meta;
    fill_meta(&meta);
    dl_ckpt_options o = {.layout = &s.layout, .slab_bytes = 6 * EMB_ROW_BYTES};
    char path[512];
    snprintf(path, sizeof path, "%s/damaged.h5", dir);
    ASSERT_OK(dl_ckpt_write(&world, path, &meta, &t, NULL, 0, &o));
    if (world.rank == 0) { /* rewrite one float of /optimizer/adam_v/emb, row 40, in place: its CRC now differs */
        hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t dset = H5Dopen2(file, "/optimizer/adam_v/emb", H5P_DEFAULT);
        hid_t fspace = H5Dget_space(dset);
        hsize_t start[2] = {40, 3}, count[2] = {1, 1}, one = 1;
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t mspace = H5Screate_simple(1, &one, NULL);
        float value = 1234.5f;
        assert_true(H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, &value) >= 0);
        H5Sclose(mspace);
        H5Sclose(fspace);
        H5Dclose(dset);
        H5Fclose(file);
    }
    ASSERT_OK(dl_comm_barrier(&world, "damaged"));
    split back;
    split_init(&back, &m, SPLIT_HASH);
    float *back_states[2] = {back.buf[1], back.buf[2]};
    dl_ckpt_tensors bt = {&m.table, back.buf[0], 2, names, back_states, 0, m.numel};
    uint8_t *got = NULL;
    size_t got_len = 0;
    dl_ckpt_options how = {.layout = &back.layout, .slab_bytes = 5 * EMB_ROW_BYTES};
    assert_int_equal(dl_ckpt_load_collective(&world, path, &bt, &how, &got, &got_len), DL_ERR_FORMAT);
    if (!strstr(dl_error_message(), "/optimizer/adam_v/emb: CRC mismatch"))
        DL_TEST_FAIL("rank %d: %s", world.rank, dl_error_message());
    assert_null(got);
    split_free(&back);
    split_free(&s);
    model_free(&m);
    ASSERT_OK(dl_comm_barrier(&world, "after damage"));
}

static void slices_with_a_gap_fail_on_every_rank(void **state) {
    (void)state;
    model m;
    model_init(&m);
    size_t W = (size_t)world.size, r = (size_t)world.rank;
    size_t begin = m.numel * r / W + (r == 1 ? 10 : 0), end = m.numel * (r + 1) / W;
    float *states[2] = {m.ref[1], m.ref[2]};
    dl_ckpt_tensors t = {&m.table, m.ref[0], 2, names, states, begin, end};
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.model_kind, sizeof meta.model_kind, "gpt");
    char path[512];
    snprintf(path, sizeof path, "%s/gap.h5", dir);
    assert_int_equal(dl_ckpt_write(&world, path, &meta, &t, NULL, 0, NULL), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "to no rank"));
    assert_int_equal(access(path, F_OK), -1);
    model_free(&m);
    ASSERT_OK(dl_comm_barrier(&world, "after gap"));
}

/* A write or flush that fails on one rank (injected, core/fault.h) fails dl_ckpt_write on every rank, promptly (no
 * rank is left inside a collective call), and leaves the previous file at the path whole, no temporary, and no HDF5
 * object open (a file left open inside HDF5 crashes MPI_Finalize); a write after it succeeds. Plain and compressed
 * (whose writes are collective), on each rank in turn. */
static void a_failure_on_one_rank_fails_every_rank_and_keeps_the_old_file(void **state) {
    (void)state;
    model m;
    model_init(&m);
    size_t n = m.numel, W = (size_t)world.size, r = (size_t)world.rank;
    size_t begin = n * r / W, end = n * (r + 1) / W;
    if (world.rank == 0)
        give(&m, 0, 0, n);
    for (int k = 1; k < 3; k++)
        give(&m, k, begin, end);
    float *states[2] = {m.mine[1], m.mine[2]};
    dl_ckpt_tensors t = {&m.table, m.mine[0], 2, names, states, begin, end};
    dl_ckpt_meta meta;
    fill_meta(&meta);
    char path[512];
    snprintf(path, sizeof path, "%s/faulty.h5", dir);
    unsetenv("DEALER_FAULT");
    dl_fault_reset();
    ASSERT_OK(dl_ckpt_write(&world, path, &meta, &t, NULL, 0, NULL));
    const char *ops[] = {"write", "fsync"};
    for (int compress = 0; compress < 2; compress++)
        for (int failing = 0; failing < world.size; failing++)
            for (int op = 0; op < 2; op++) {
                char spec[64];
                snprintf(spec, sizeof spec, "%s:%d:1", ops[op], failing);
                setenv("DEALER_FAULT", spec, 1);
                dl_fault_reset();
                dl_ckpt_options o = {.compress = compress};
                meta.step = 8;
                dl_status s = dl_ckpt_write(&world, path, &meta, &t, NULL, 0, &o);
                unsetenv("DEALER_FAULT");
                dl_fault_reset();
                if (s != DL_ERR_IO)
                    DL_TEST_FAIL("rank %d, %s%s: got %s '%s', want an I/O failure", world.rank, spec,
                                 compress ? ", compressed" : "", dl_status_name(s), dl_error_message());
                const char *want = world.rank == failing ? (op == 0 ? "No space left on device" : "flushing")
                                                         : "another rank failed";
                if (!strstr(dl_error_message(), want))
                    DL_TEST_FAIL("rank %d, %s: '%s' does not say '%s'", world.rank, spec, dl_error_message(), want);
                if (world.rank == failing && !strstr(dl_error_message(), path))
                    DL_TEST_FAIL("rank %d, %s: '%s' does not name the file", world.rank, spec, dl_error_message());
                ssize_t open_objects = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
                if (open_objects != 0)
                    DL_TEST_FAIL("rank %d, %s: %zd HDF5 objects left open", world.rank, spec, open_objects);
                ASSERT_OK(dl_comm_barrier(&world, "after a failed write"));
                if (world.rank == 0 && dl_test_tmp_count(path) != 0)
                    DL_TEST_FAIL("%s: a temporary of %s was left behind", spec, path);
                dl_ckpt_meta back;
                ASSERT_OK(dl_ckpt_read_meta(path, &back));
                free(back.config_yaml);
                if (back.step != 7)
                    DL_TEST_FAIL("%s: the file at the path is step %lld, want the old step 7", spec,
                                 (long long)back.step);
                ASSERT_OK(dl_comm_barrier(&world, "after the check"));
            }
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    check_whole(&m, path, "after failed writes", &cursor, &cursor_len);
    free(cursor);
    /* ckpt.fsync false: no fsync at all (every one would fail here), and the file is complete and committed. */
    setenv("DEALER_FAULT", "fsync:*:1+", 1);
    dl_fault_reset();
    dl_ckpt_options unsynced = {.skip_fsync = 1};
    meta.step = 8;
    dl_status s = dl_ckpt_write(&world, path, &meta, &t, NULL, 0, &unsynced);
    unsetenv("DEALER_FAULT");
    dl_fault_reset();
    if (s != DL_OK)
        DL_TEST_FAIL("rank %d, skip_fsync: '%s' (an fsync was called)", world.rank, dl_error_message());
    check_whole(&m, path, "written without fsync", &cursor, &cursor_len);
    free(cursor);
    dl_ckpt_meta unsynced_meta;
    ASSERT_OK(dl_ckpt_read_meta(path, &unsynced_meta));
    free(unsynced_meta.config_yaml);
    assert_int_equal(unsynced_meta.step, 8);
    meta.step = 9;
    ASSERT_OK(dl_ckpt_write(&world, path, &meta, &t, NULL, 0, NULL));
    check_whole(&m, path, "written after failed writes", &cursor, &cursor_len);
    free(cursor);
    model_free(&m);
    ASSERT_OK(dl_comm_barrier(&world, "end of the fault test"));
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    seed = dl_test_seed();
    if (dl_comm_broadcast(&world, &seed, sizeof seed, 0, "seed") != DL_OK)
        return 1;
    if (world.rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/dealer_test_ckpt_zero_XXXXXX");
        if (!mkdtemp(dir))
            dir[0] = '\0';
    }
    if (dl_comm_broadcast(&world, dir, sizeof dir, 0, "dir") != DL_OK || !dir[0])
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(even_zero_slices),
        cmocka_unit_test(uneven_reversed_overlapping_slices),
        cmocka_unit_test(uneven_slices_compressed),
        cmocka_unit_test(replicated_state),
        cmocka_unit_test(split_table_plain),
        cmocka_unit_test(split_table_in_rounds),
        cmocka_unit_test(split_table_compressed_in_rounds),
        cmocka_unit_test(split_table_shared_in_rounds),
        cmocka_unit_test(split_layouts_that_miss_or_repeat_rows_fail),
        cmocka_unit_test(split_damage_fails_every_rank),
        cmocka_unit_test(slices_with_a_gap_fail_on_every_rank),
        cmocka_unit_test(a_failure_on_one_rank_fails_every_rank_and_keeps_the_old_file),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_comm_barrier(&world, "end");
    if (world.rank == 0) {
        char cmd[320];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    dl_world_finalize(&world);
    return failed;
}
