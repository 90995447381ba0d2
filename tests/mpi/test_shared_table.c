/* test_shared_table.c — FM/FFM with comm.embeddings: shared (comm/node_table.h): the ranks of a node train one
 * table in shared memory, in place. Runs under mpirun -np 2 and -np 3.
 *
 * Concurrent training is lock-free and not repeatable, so exactness is checked where it exists: when the ranks take
 * turns (one trains its batch while the others wait at a barrier), the shared table must end bit for bit where one
 * process ends that trains the same batches in the same order on a table of its own, every rank's share of it
 * (the rows its checkpoints hold). Concurrent steps with linear terms keep the replicated bias equal on every rank
 * and the collective evaluation agrees. A backing directory without room is refused by name (staged tables:
 * test_click_ranks.c). */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/sharded_table.h"
#include "comm/world.h"
#include "train/run_config.h"
#include "data/loader.h"
#include "models/click/click_model.h"
#include "models/click/ffm.h"
#include "models/click/fm.h"
#include "models/model.h"

static dl_world world;

enum { FIELDS = 3, BUCKETS = 61, B = 6, STEPS = 4, VALID = 29 };

/* Global row i of stream 1 (training) or 2 (validation). */
static void data_row(uint64_t stream, int64_t i, dl_click_row *row) {
    dl_test_click_random_row(41, FIELDS, 90, stream, i, row);
}

static void fill_batch(dl_batch *batch, int rank, int step) {
    dl_test_click_batch_build(&batch->clicks, B, ((int64_t)step * world.size + rank) * B, 1, data_row);
}

static dl_status mem_click(void *ctx, uint64_t record, dl_click_row *row) {
    (void)ctx;
    data_row(2, (int64_t)record, row);
    return DL_OK;
}

static void in_turns_equals_one_table(const dl_click_kind *kind, dl_model_kind mk) {
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_config cfg;
    /* no linear terms: the bias exchange is a collective, which would forbid taking turns inside a step */
    dl_test_click_config(&cfg, mk, 4, FIELDS, BUCKETS, false, 1e-3, DL_EMBEDDINGS_SHARED);
    dl_model_setup setup = dl_config_model_setup(&cfg);
    dl_model shared, alone;
    memset(&shared, 0, sizeof shared);
    memset(&alone, 0, sizeof alone);
    DL_EXPECT_OK(dl_click_model_create(&shared, kind, &setup, &be, B, 0));
    DL_EXPECT_OK(dl_click_model_create(&alone, kind, &setup, &be, B, 1));
    assert_non_null(shared.shard_layout); /* checkpoints see a sharded model: each rank its own rows */
    DL_EXPECT_OK(shared.init_params(&shared, 5));
    DL_EXPECT_OK(alone.init_params(&alone, 5));
    DL_EXPECT_OK(dl_comm_barrier(&world, "initialised"));
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, B, 1), DL_OK);
    for (int step = 0; step < STEPS; step++)
        for (int r = 0; r < world.size; r++) {
            fill_batch(&batch, r, step);
            dl_step_context ctx = {&world, step + 1, 0.2, NULL}, solo = {NULL, step + 1, 0.2, NULL};
            dl_step_stats s1 = {0}, s2 = {0};
            DL_EXPECT_OK(alone.train_batch(&alone, &batch, &solo, &s2));
            if (r == world.rank) {
                DL_EXPECT_OK(shared.train_batch(&shared, &batch, &ctx, &s1));
                if (s1.loss_sum != s2.loss_sum)
                    DL_TEST_FAIL("rank %d step %d: loss %.9g shared, %.9g alone", r, step, s1.loss_sum, s2.loss_sum);
            }
            DL_EXPECT_OK(dl_comm_barrier(&world, "turn"));
        }
    DL_EXPECT_OK(dl_model_params_ready(&shared));
    /* Bits hold: the same kernel on the same rows in the same order, one thread, whoever ran it. */
    dl_sharded_table index;
    const int rf = (int)dl_tensor_table_find(alone.params, kind == &dl_ffm_kind ? "ffm.table" : "fm.table")->shape[1];
    DL_EXPECT_OK(dl_sharded_table_create(&index, world.rank, world.size, BUCKETS, rf));
    for (int64_t g = 0; g < BUCKETS; g++) {
        int64_t local = dl_sharded_table_local(&index, g);
        if (local < 0)
            continue;
        if (memcmp(shared.param_data + (size_t)local * (size_t)rf, alone.param_data + (size_t)g * (size_t)rf,
                   (size_t)rf * sizeof(float)) != 0)
            DL_TEST_FAIL("rank %d: global row %lld of the shared table differs from the lone process's",
                         world.rank, (long long)g);
    }
    dl_sharded_table_destroy(&index);
    dl_batch_free(&batch);
    shared.destroy(&shared);
    alone.destroy(&alone);
    dl_config_free(&cfg);
    dl_backend_close(&be);
    omp_set_num_threads(saved_threads);
}

static void ffm_in_turns_equals_one_table(void **state) {
    (void)state;
    in_turns_equals_one_table(&dl_ffm_kind, DL_MODEL_FFM);
}

static void fm_in_turns_equals_one_table(void **state) {
    (void)state;
    in_turns_equals_one_table(&dl_fm_kind, DL_MODEL_FM);
}

/* Fails unless v has the same bits on every rank. */
static void same_on_every_rank(double v, const char *what) {
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int64_t hi = bits, lo = bits;
    DL_EXPECT_OK(dl_comm_allreduce_max_i64(&world, &hi, 1, what));
    DL_EXPECT_OK(dl_comm_allreduce_min_i64(&world, &lo, 1, what));
    if (hi != lo)
        DL_TEST_FAIL("rank %d: %s %.9g is not the same on every rank", world.rank, what, v);
}

/* All ranks at once, linear terms on: the bias stays one value, the evaluation one answer. */
static void concurrent_steps_keep_the_bias_and_evaluation_agreed(void **state) {
    (void)state;
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_config cfg;
    dl_test_click_config(&cfg, DL_MODEL_FFM, 4, FIELDS, BUCKETS, true, 1e-3, DL_EMBEDDINGS_SHARED);
    dl_model_setup setup = dl_config_model_setup(&cfg);
    dl_model m;
    memset(&m, 0, sizeof m);
    DL_EXPECT_OK(dl_click_model_create(&m, &dl_ffm_kind, &setup, &be, B, 0));
    DL_EXPECT_OK(m.init_params(&m, 9));
    DL_EXPECT_OK(dl_comm_barrier(&world, "initialised"));
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, B, 1), DL_OK);
    for (int step = 0; step < STEPS; step++) {
        fill_batch(&batch, world.rank, step);
        dl_step_context ctx = {&world, step + 1, 0.2, NULL};
        dl_step_stats st = {0};
        DL_EXPECT_OK(m.train_batch(&m, &batch, &ctx, &st));
        assert_true(isfinite(st.loss_sum) && st.loss_sum > 0);
    }
    const dl_tensor *bias = dl_tensor_table_find(m.params, "ffm.bias");
    assert_non_null(bias);
    size_t at = m.shard_layout->local_offset[1];
    /* the bias is old + the ranks' summed changes, the same floats on every rank */
    same_on_every_rank(m.param_data[at], "bias");
    same_on_every_rank(m.param_data[at + 1], "bias accumulator");
    dl_doc_source src = {.num_records = VALID, .name = "memory", .read_click = mem_click};
    dl_loader_config lc;
    dl_test_click_loader_config(&lc, 4, world.rank, world.size);
    uint64_t batches = 0;
    assert_int_equal(dl_loader_count_batches(&src, &lc, &batches), DL_OK);
    dl_eval_result e;
    DL_EXPECT_OK(m.evaluate(&m, &world, &src, &lc, (int64_t)batches, &e));
    assert_true(e.targets == VALID && isfinite(e.loss));
    same_on_every_rank(e.loss, "validation logloss");
    same_on_every_rank(e.values[1], "validation AUC");
    dl_batch_free(&batch);
    m.destroy(&m);
    dl_config_free(&cfg);
    dl_backend_close(&be);
}

/* A shared table on a device backend is refused in test_click_ranks.c, with the sharded one. */
static void roomless_backing_directory_is_refused(void **state) {
    (void)state;
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_config cfg;
    dl_test_click_config(&cfg, DL_MODEL_FFM, 4, FIELDS, BUCKETS, true, 1e-3, DL_EMBEDDINGS_SHARED);
    dl_model_setup setup = dl_config_model_setup(&cfg);
    dl_model m;
    memset(&m, 0, sizeof m);
    /* Open MPI read its settings at start-up, so this changes only where dealer looks for room: a directory
     * with no free space at all, as a full /dev/shm would be. */
    setenv("OMPI_MCA_osc_sm_backing_directory", "/proc", 1);
    assert_int_equal(dl_click_model_create(&m, &dl_ffm_kind, &setup, &be, B, 0), DL_ERR_CONFIG);
    unsetenv("OMPI_MCA_osc_sm_backing_directory");
    const char *msg = dl_error_message();
    if (world.rank == 0 && (!strstr(msg, "/proc") || !strstr(msg, "shared memory")))
        DL_TEST_FAIL("rank 0's message does not name the directory and the need: %s", msg);
    if (world.rank != 0 && !strstr(msg, "another rank"))
        DL_TEST_FAIL("rank %d's message does not point at the rank that failed: %s", world.rank, msg);
    dl_error_clear();
    assert_null(m.impl);
    dl_config_free(&cfg);
    dl_backend_close(&be);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ffm_in_turns_equals_one_table),
        cmocka_unit_test(fm_in_turns_equals_one_table),
        cmocka_unit_test(concurrent_steps_keep_the_bias_and_evaluation_agreed),
        cmocka_unit_test(roomless_backing_directory_is_refused),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
