/* test_click_ranks.c — FM/FFM models with staged (device-memory) tables across ranks, on the CPU backend. Runs
 * under mpirun -np 2 and -np 3.
 *
 * On a GPU, replicated click tables train a compact device copy of each step's rows and then add the ranks' summed
 * changes to the table through the backend (click_model.c, click_device.h). dl_click_model_create_staged runs that
 * code on the CPU backend, where it must give exactly the direct model's bits: the same global batches (one rank's
 * batch empty at one step, rows repeated within and across batch rows, hashed ids, linear terms and bias) leave the
 * same tables and losses on every rank, the copies stay identical across ranks, and the collective evaluation agrees.
 * Row-sharded tables cannot be staged (their exchange reads host rows): that combination must fail clearly. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/world.h"
#include "train/run_config.h"
#include "core/hash.h"
#include "data/loader.h"
#include "ops/ops.h"
#include "models/click/click_model.h"
#include "models/click/ffm.h"
#include "models/click/fm.h"
#include "models/model.h"

static dl_world world;

enum { FIELDS = 3, BUCKETS = 53, B = 5, STEPS = 5, VALID = 23 };

/* Global row i of the training (stream 1) or validation (stream 2) data: 1-5 entries over ids partly beyond the
 * table (hashed), a feature sometimes repeated. Every rank can make any row. */
static void data_row(uint64_t stream, int64_t i, dl_click_row *row) {
    dl_test_click_random_row(31, FIELDS, 80, stream, i, row);
}

/* Rank r's batch of step s: global rows [(s·W + r)·B, ... + B); rank 1's batch of step 2 is empty. */
static void fill_batch(dl_batch *batch, int rank, int step) {
    int rows = rank == 1 && step == 2 ? 0 : B;
    dl_test_click_batch_build(&batch->clicks, rows, ((int64_t)step * world.size + rank) * B, 1, data_row);
}

static dl_status mem_click(void *ctx, uint64_t record, dl_click_row *row) {
    (void)ctx;
    data_row(2, (int64_t)record, row);
    return DL_OK;
}

static void replicated_staged_equals_direct(const dl_click_kind *kind, dl_model_kind mk) {
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_config cfg;
    dl_test_click_config(&cfg, mk, 4, FIELDS, BUCKETS, true, 1e-3, DL_EMBEDDINGS_REPLICATED);
    dl_model direct, staged;
    memset(&direct, 0, sizeof direct);
    memset(&staged, 0, sizeof staged);
    assert_int_equal(dl_click_model_create(&direct, kind, (dl_model_setup[]){dl_config_model_setup(&cfg)}, &be, B, 0), DL_OK);
    DL_EXPECT_OK(dl_click_model_create_staged(&staged, kind, (dl_model_setup[]){dl_config_model_setup(&cfg)}, &be, B, 0));
    DL_EXPECT_OK(direct.init_params(&direct, 5));
    DL_EXPECT_OK(staged.init_params(&staged, 5));
    size_t numel = dl_tensor_table_numel(direct.params);
    /* Bits hold: staged and direct run the same kernels in the same order on one thread; staging copies bytes. */
    assert_memory_equal(direct.param_data, staged.param_data, numel * sizeof(float));
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, B, 1), DL_OK);
    for (int step = 0; step < STEPS; step++) {
        fill_batch(&batch, world.rank, step);
        dl_step_context ctx = {&world, step + 1, 0.2, NULL};
        dl_step_stats s1 = {0}, s2 = {0};
        DL_EXPECT_OK(direct.train_batch(&direct, &batch, &ctx, &s1));
        DL_EXPECT_OK(staged.train_batch(&staged, &batch, &ctx, &s2));
        if (s1.loss_sum != s2.loss_sum)
            DL_TEST_FAIL("rank %d step %d: loss %.9g direct, %.9g staged", world.rank, step, s1.loss_sum,
                         s2.loss_sum);
        if (memcmp(direct.param_data, staged.param_data, numel * sizeof(float)) != 0) {
            size_t i = 0;
            while (direct.param_data[i] == staged.param_data[i])
                i++;
            DL_TEST_FAIL("rank %d step %d: parameter %zu is %.9g staged, %.9g direct", world.rank, step, i,
                         (double)staged.param_data[i], (double)direct.param_data[i]);
        }
    }
    /* the staged copies are identical on every rank */
    int64_t h[2] = {(int64_t)(dl_hash_bytes(staged.param_data, numel * sizeof(float), 0) >> 1), 0};
    h[1] = -h[0];
    assert_int_equal(dl_comm_allreduce_max_i64(&world, h, 2, "hash"), DL_OK);
    assert_true(h[0] == -h[1]);
    /* and evaluate the same */
    dl_doc_source src = {.num_records = VALID, .name = "memory", .read_click = mem_click};
    dl_loader_config lc;
    dl_test_click_loader_config(&lc, 4, world.rank, world.size);
    uint64_t batches = 0;
    assert_int_equal(dl_loader_count_batches(&src, &lc, &batches), DL_OK);
    dl_eval_result e1, e2;
    DL_EXPECT_OK(direct.evaluate(&direct, &world, &src, &lc, (int64_t)batches, &e1));
    DL_EXPECT_OK(staged.evaluate(&staged, &world, &src, &lc, (int64_t)batches, &e2));
    assert_true(e1.targets == VALID && e2.targets == VALID);
    if (e1.loss != e2.loss || e1.values[1] != e2.values[1])
        DL_TEST_FAIL("direct logloss %.9g AUC %.9g, staged %.9g %.9g", e1.loss, e1.values[1], e2.loss, e2.values[1]);
    dl_batch_free(&batch);
    direct.destroy(&direct);
    staged.destroy(&staged);
    dl_config_free(&cfg);
    dl_backend_close(&be);
    omp_set_num_threads(saved_threads);
}

static void ffm_replicated_staged_equals_direct(void **state) {
    (void)state;
    replicated_staged_equals_direct(&dl_ffm_kind, DL_MODEL_FFM);
}

static void fm_replicated_staged_equals_direct(void **state) {
    (void)state;
    replicated_staged_equals_direct(&dl_fm_kind, DL_MODEL_FM);
}

/* Row-sharded and shared tables over several ranks keep their rows in host memory where MPI or the node's window
 * holds them: staged, they are refused by name. */
static void sharded_staged_is_refused(void **state) {
    (void)state;
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    const dl_embeddings modes[] = {DL_EMBEDDINGS_SHARDED, DL_EMBEDDINGS_SHARED};
    const char *const names[] = {"comm.embeddings: sharded", "comm.embeddings: shared"};
    for (int i = 0; i < 2; i++) {
        dl_config cfg;
        dl_test_click_config(&cfg, DL_MODEL_FFM, 4, FIELDS, BUCKETS, true, 1e-3, modes[i]);
        dl_model_setup setup = dl_config_model_setup(&cfg);
        dl_model m;
        memset(&m, 0, sizeof m);
        assert_int_equal(dl_click_model_create_staged(&m, &dl_ffm_kind, &setup, &be, B, 0), DL_ERR_UNSUPPORTED);
        assert_non_null(strstr(dl_error_message(), names[i]));
        assert_non_null(strstr(dl_error_message(), "replicated"));
        dl_error_clear();
        assert_null(m.impl);
        /* one process (dealer predict) is never sharded */
        DL_EXPECT_OK(dl_click_model_create_staged(&m, &dl_ffm_kind, &setup, &be, B, 1));
        m.destroy(&m);
        dl_config_free(&cfg);
    }
    dl_backend_close(&be);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ffm_replicated_staged_equals_direct),
        cmocka_unit_test(fm_replicated_staged_equals_direct),
        cmocka_unit_test(sharded_staged_is_refused),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
