/* test_checkpoint_zero.c — checkpoints written collectively from 2 or 3 ranks, each holding only part of the
 * state, read back whole and re-sliced for other world sizes. Runs under mpirun -np 2 and -np 3.
 *
 * Every rank's buffers hold the reference values only where that rank is responsible and NaN garbage everywhere
 * else, so a file equal to the reference (and passing its CRC checks on load) proves that each element was written
 * by the rank that holds it: rank 0 for replicated parameters, the slice owner for optimizer states (even, uneven,
 * reversed, overlapping or empty slices, not aligned to tensor boundaries, plain and compressed), the row owner
 * (dl_hash_owner) for a row-sharded table and its states. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/world.h"
#include "core/hash.h"
#include "train/checkpoint.h"

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

/* Writes with this rank holding states [begin, end) (and the params when rank 0, or the owned rows of "emb" when
 * row_sharded), then every rank loads the file and checks all of it, and its slice under another slicing. */
static void write_and_check(size_t begin, size_t end, int row_sharded, int compress, const char *name) {
    model m;
    model_init(&m);
    const dl_tensor *emb = dl_tensor_table_find(&m.table, "emb");
    if (world.rank == 0)
        give(&m, 0, 0, m.numel);
    unsigned char sharded[5] = {0};
    if (row_sharded) {
        sharded[0] = 1;
        /* Rank 0 holds only its own rows of the table too. */
        dl_test_poison(m.mine[0] + emb->offset, emb->numel);
        for (size_t r = 0; r < emb->shape[0]; r++)
            if (dl_hash_owner(r, world.size) == world.rank)
                for (int k = 0; k < 3; k++)
                    give(&m, k, emb->offset + r * emb->shape[1], emb->offset + (r + 1) * emb->shape[1]);
    }
    for (int k = 1; k < 3; k++)
        give(&m, k, begin, end);
    float *states[2] = {m.mine[1], m.mine[2]};
    dl_ckpt_tensors t = {&m.table, m.mine[0], 2, names, states, begin, end};
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.step = 7;
    meta.world_size = world.size;
    meta.zero_stage = 1;
    snprintf(meta.model_kind, sizeof meta.model_kind, "ffm");
    meta.config_yaml = (char *)"comm:\n  zero: 1\n";
    uint8_t cursor[64];
    size_t cursor_len = cursor_of(world.rank, cursor);
    dl_ckpt_options o = {.compress = compress, .row_sharded = row_sharded ? sharded : NULL};
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
    ASSERT_OK(dl_ckpt_load(path, &bt, world.rank, world.size, &got, &got_len));
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < m.table.count; i++) {
            const dl_tensor *v = dl_tensor_table_at(&m.table, i);
            if (memcmp(back.mine[k] + v->offset, m.ref[k] + v->offset, v->numel * sizeof(float)) != 0)
                DL_TEST_FAIL("%s, rank %d of %d: %s of tensor %s differs from the reference", name, world.rank,
                             world.size, k ? names[k - 1] : "params", v->name);
        }
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
    write_and_check(n * r / W, n * (r + 1) / W, 0, 0, "even");
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
    write_and_check(begin, end, 0, 0, "uneven");
}

static void uneven_slices_compressed(void **state) {
    (void)state;
    size_t n = numel_of_model(), W = (size_t)world.size, r = (size_t)world.rank;
    size_t cut = r == 0 ? 0 : n * r / W - 1234 * r;
    size_t next = r + 1 == W ? n : n * (r + 1) / W - 1234 * (r + 1);
    write_and_check(cut, next, 0, 1, "compressed");
}

static void replicated_state(void **state) {
    (void)state;
    write_and_check(0, numel_of_model(), 0, 0, "replicated");
}

static void row_sharded_table(void **state) {
    (void)state;
    size_t n = numel_of_model(), W = (size_t)world.size, r = (size_t)world.rank;
    write_and_check(n * r / W, n * (r + 1) / W, 1, 1, "sharded");
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
        cmocka_unit_test(row_sharded_table),
        cmocka_unit_test(slices_with_a_gap_fail_on_every_rank),
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
