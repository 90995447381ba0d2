/* test_click_device.c — the staged (device-memory) path of the FM/FFM models, on the CPU backend.
 *
 * On a GPU a click model keeps its table in device memory and moves batches and rows through the backend
 * (click_device.h). Without a GPU that code still runs here: dl_click_model_create_staged builds the model that way on
 * the CPU backend, where the kernels are the same, so every result must equal the direct model's bit for bit:
 * initial parameters, parameters after training steps (rows repeated inside and across batch rows, empty rows,
 * hashed ids, linear terms and bias), training losses, eval_batch and predict. The staging module itself is checked
 * on its own: the packed batch holds the host arrays, gathers copy rows, adds add sums once, bad ids are refused. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "train/run_config.h"
#include "data/batch.h"
#include "ops/ops.h"
#include "models/click/click_device.h"
#include "models/click/click_model.h"
#include "models/click/ffm.h"
#include "models/click/fm.h"
#include "models/model.h"

enum { BUCKETS = 61, ROWS = 7, STEPS = 6 };

static int rand_int(dl_rng *rng, int n) { return (int)dl_rng_below(rng, (uint64_t)n); }

/* A batch of ROWS rows (row 3 empty) of 1-6 entries: ids below the table (identity) and far above (hashed), a
 * feature repeated inside a row now and then, fields in [0, fields). */
static void fill_batch(dl_batch *batch, dl_rng *rng, int fields) {
    dl_click_batch *cb = &batch->clicks;
    assert_int_equal(dl_click_batch_reserve(cb, ROWS * 6), DL_OK);
    int n = 0;
    cb->row_ptr[0] = 0;
    for (int b = 0; b < ROWS; b++) {
        int len = b == 3 ? 0 : 1 + rand_int(rng, 6);
        for (int e = 0; e < len; e++, n++) {
            if (e > 0 && rand_int(rng, 5) == 0) {
                cb->features[n] = cb->features[n - 1];
            } else {
                cb->features[n] = rand_int(rng, 2) ? rand_int(rng, BUCKETS) : 5000 + rand_int(rng, 100000);
            }
            cb->fields[n] = rand_int(rng, fields);
            cb->values[n] = 0.25f + dl_rng_uniform(rng);
        }
        cb->row_ptr[b + 1] = n;
        cb->labels[b] = (float)rand_int(rng, 2);
    }
    cb->num_rows = ROWS;
    cb->nnz = n;
}

static void assert_same_params(const dl_model *a, const dl_model *b, const char *when) {
    size_t numel = dl_tensor_table_numel(a->params);
    assert_int_equal(numel, dl_tensor_table_numel(b->params));
    /* Bits hold: staged and direct run the same kernels on the same rows in the same order on one thread; staging
     * only copies bytes. */
    if (memcmp(a->param_data, b->param_data, numel * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < numel && memcmp(a->param_data + i, b->param_data + i, sizeof(float)) == 0)
            i++;
        DL_TEST_FAIL("%s: staged parameter %zu = %.9g, direct %.9g", when, i, (double)b->param_data[i],
                     (double)a->param_data[i]);
    }
}

/* The staged model (table as device memory, batches and rows copied through the backend) against the direct one. */
static void staged_equals_direct(const dl_click_kind *kind, dl_model_kind mk, int k, int fields) {
    dl_backend be = dl_test_open_cpu();
    int saved = omp_get_max_threads();
    omp_set_num_threads(1); /* several threads train Hogwild: only one thread is deterministic */
    dl_config cfg;
    /* sharded on one process: the same single table as replicated */
    dl_test_click_config(&cfg, mk, k, fields, BUCKETS, true, 1e-3, DL_EMBEDDINGS_SHARDED);
    dl_model direct, staged;
    memset(&direct, 0, sizeof direct);
    memset(&staged, 0, sizeof staged);
    assert_int_equal(dl_click_model_create(&direct, kind, (dl_model_setup[]){dl_config_model_setup(&cfg)}, &be, ROWS, 0), DL_OK);
    DL_EXPECT_OK(dl_click_model_create_staged(&staged, kind, (dl_model_setup[]){dl_config_model_setup(&cfg)}, &be, ROWS, 0));
    assert_null(staged.shard_layout);
    assert_true(staged.self_updating);
    DL_EXPECT_OK(direct.init_params(&direct, 11));
    DL_EXPECT_OK(staged.init_params(&staged, 11));
    assert_same_params(&direct, &staged, "after init");
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, ROWS, 1), DL_OK);
    dl_rng rng;
    dl_test_rng(&rng, 3);
    for (int step = 0; step < STEPS; step++) {
        fill_batch(&batch, &rng, fields);
        dl_step_context ctx = {NULL, step + 1, 0.2 / (1 + step), NULL};
        dl_step_stats s1 = {0}, s2 = {0};
        DL_EXPECT_OK(direct.train_batch(&direct, &batch, &ctx, &s1));
        DL_EXPECT_OK(staged.train_batch(&staged, &batch, &ctx, &s2));
        /* Bits hold: see assert_same_params (same kernels, same rows, same order, one thread). */
        if (s1.loss_sum != s2.loss_sum || s1.targets != s2.targets)
            DL_TEST_FAIL("step %d: loss %.9g over %g rows direct, %.9g over %g staged", step, s1.loss_sum, s1.targets,
                         s2.loss_sum, s2.targets);
        assert_same_params(&direct, &staged, "after a step");
    }
    fill_batch(&batch, &rng, fields);
    dl_step_stats e1 = {0}, e2 = {0};
    DL_EXPECT_OK(direct.eval_batch(&direct, &batch, &e1));
    DL_EXPECT_OK(staged.eval_batch(&staged, &batch, &e2));
    assert_true(e1.loss_sum == e2.loss_sum && e1.targets == e2.targets && e1.targets == ROWS);
    float p1[ROWS], p2[ROWS];
    double l1 = 0, l2 = 0;
    DL_EXPECT_OK(dl_click_model_predict(&direct, &batch.clicks, p1, &l1));
    DL_EXPECT_OK(dl_click_model_predict(&staged, &batch.clicks, p2, &l2));
    assert_memory_equal(p1, p2, sizeof p1);
    assert_true(l1 == l2 && fabs(l1 - e1.loss_sum) <= 1e-9 * l1);
    /* an empty batch trains nothing on either */
    batch.clicks.num_rows = 0;
    batch.clicks.nnz = 0;
    dl_step_context ctx = {NULL, STEPS + 1, 0.1, NULL};
    dl_step_stats s1 = {0}, s2 = {0};
    DL_EXPECT_OK(direct.train_batch(&direct, &batch, &ctx, &s1));
    DL_EXPECT_OK(staged.train_batch(&staged, &batch, &ctx, &s2));
    assert_same_params(&direct, &staged, "after an empty batch");
    /* bad data fails the same way, before anything reaches the table */
    fill_batch(&batch, &rng, fields);
    batch.clicks.values[2] = NAN;
    assert_int_equal(staged.train_batch(&staged, &batch, &ctx, &s2), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "non-finite value"));
    dl_error_clear();
    assert_same_params(&direct, &staged, "after a refused batch");
    dl_batch_free(&batch);
    direct.destroy(&direct);
    staged.destroy(&staged);
    dl_config_free(&cfg);
    omp_set_num_threads(saved);
    dl_backend_close(&be);
}

static void staged_ffm_equals_direct(void **state) {
    (void)state;
    staged_equals_direct(&dl_ffm_kind, DL_MODEL_FFM, 4, 3); /* kpad 4 */
    staged_equals_direct(&dl_ffm_kind, DL_MODEL_FFM, 6, 4); /* kpad 8, padding lanes */
}

static void staged_fm_equals_direct(void **state) {
    (void)state;
    staged_equals_direct(&dl_fm_kind, DL_MODEL_FM, 4, 1);
    staged_equals_direct(&dl_fm_kind, DL_MODEL_FM, 9, 1); /* kpad 12 */
}

/* The staging module on its own: packing, gathers, adds, and refusals. */
static void staging_moves_batches_and_rows(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_click_device d;
    dl_click_device_init(&d, &be);
    int32_t ptr[4] = {0, 2, 2, 5}, rows[5] = {4, 1, 0, 4, 3}, fields[5] = {0, 1, 1, 0, 2};
    float values[5] = {1, 2, 3, 4, 5}, labels[3] = {1, 0, 1}, scale[3] = {0.5f, 1, 0.25f};
    dl_click_rows r = {3, ptr, rows, fields, values, labels, scale};
    float *logits = NULL;
    DL_EXPECT_OK(dl_click_device_batch(&d, &r, &logits));
    /* on the CPU the "device" copy is host memory: it can be read back directly */
    assert_true(r.row_ptr != ptr && r.rows != rows && r.fields != fields && r.values != values);
    assert_memory_equal(r.row_ptr, ptr, sizeof ptr);
    assert_memory_equal(r.rows, rows, sizeof rows);
    assert_memory_equal(r.fields, fields, sizeof fields);
    assert_memory_equal(r.values, values, sizeof values);
    assert_memory_equal(r.labels, labels, sizeof labels);
    assert_memory_equal(r.instance_scale, scale, sizeof scale);
    assert_non_null(logits);
    assert_true((const void *)logits >= (const void *)(r.instance_scale + 3)); /* room of its own, after the inputs */
    dl_click_rows fm = {3, ptr, rows, NULL, values, NULL, NULL};
    DL_EXPECT_OK(dl_click_device_batch(&d, &fm, &logits));
    assert_null(fm.fields);
    assert_null(fm.labels);
    assert_null(fm.instance_scale);
    assert_memory_equal(fm.values, values, sizeof values);
    /* a table of 6 rows of 8 floats; gather rows 5, 0, 3 (any order) */
    enum { RF = 8 };
    float *table;
    assert_int_equal(dl_mem_alloc(&be, (void **)&table, 6 * RF * sizeof(float)), DL_OK);
    for (int i = 0; i < 6 * RF; i++)
        table[i] = (float)i * 0.5f - 3.0f;
    table[3 * RF + 1] = -0.0f;
    int64_t ids[3] = {5, 0, 3};
    float host[3 * RF], *compact = NULL;
    DL_EXPECT_OK(dl_click_device_gather(&d, table, 6, RF, ids, 3, &compact, host));
    assert_non_null(compact);
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(host + i * RF, table + ids[i] * RF, RF * sizeof(float));
        assert_memory_equal(compact + i * RF, table + ids[i] * RF, RF * sizeof(float));
    }
    DL_EXPECT_OK(dl_click_device_gather(&d, table, 6, RF, ids, 0, &compact, host));
    assert_null(compact);
    /* add: each listed row gets table + sum (one rounding), the others stay */
    float before[6 * RF], sums[3 * RF];
    memcpy(before, table, sizeof before);
    for (int i = 0; i < 3 * RF; i++)
        sums[i] = 0.1f * (float)(i + 1);
    DL_EXPECT_OK(dl_click_device_add(&d, table, 6, RF, ids, 3, sums));
    for (int g = 0; g < 6; g++)
        for (int f = 0; f < RF; f++) {
            int i = g == 5 ? 0 : g == 0 ? 1 : g == 3 ? 2 : -1;
            float want = i < 0 ? before[g * RF + f] : before[g * RF + f] + sums[i * RF + f];
            /* Bits hold: the op does one float addition per element, as here. */
            if (memcmp(&want, &table[g * RF + f], sizeof want) != 0)
                DL_TEST_FAIL("row %d float %d: %.9g, want %.9g", g, f, (double)table[g * RF + f], (double)want);
        }
    /* ids outside the table are refused before anything moves */
    int64_t bad[2] = {1, 6};
    memcpy(before, table, sizeof before);
    DL_EXPECT_INVALID(dl_click_device_add(&d, table, 6, RF, bad, 2, sums));
    assert_memory_equal(before, table, sizeof before);
    bad[1] = -1;
    DL_EXPECT_INVALID(dl_click_device_gather(&d, table, 6, RF, bad, 2, &compact, NULL));
    dl_error_clear();
    dl_mem_free(&be, table);
    dl_click_device_free(&d);
    dl_click_device_free(&d); /* twice is harmless */
    dl_backend_close(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(staging_moves_batches_and_rows),
        cmocka_unit_test(staged_ffm_equals_direct),
        cmocka_unit_test(staged_fm_equals_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
