/* test_sharded_table.c — row-sharded tables and their exchanges, and FFM training across ranks. Runs under
 * mpirun -np 2 and -np 3.
 *
 * Exchanges are checked against what every rank can compute alone: each rank's random requests come from its own
 * Philox stream, so any rank can regenerate every other rank's. The model tests train the same global batches with
 * replicated and with sharded tables and check (1) both give the same parameters (to float rounding of the order in
 * which the ranks' changes are added), (2) the replicated copies are bit-identical on every rank, (3) both equal a
 * serial computation of the documented semantics — every rank trains per instance on the same starting table and
 * the changes are summed — and (4) the collective evaluation gives the logloss and AUC of all validation rows.
 * A sharded model's checkpoint (each rank writing its own rows) holds exactly what the ranks hold, loads whole
 * into a one-process model, and loads back collectively into fresh sharded models that then train identically. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/sharded_table.h"
#include "comm/world.h"
#include "train/run_config.h"
#include "core/hash.h"
#include "data/loader.h"
#include "ops/ops.h"
#include "ckpt/checkpoint.h"
#include "models/click/click_model.h"
#include "models/click/ffm.h"
#include "models/model.h"

static dl_world world;
static uint64_t shared_seed; /* rank 0's test seed, so every rank can regenerate every rank's random choices */

static void shared_rng(dl_rng *rng, uint64_t stream) { dl_rng_init(rng, shared_seed, stream); }

static float cell(int64_t g, int f) { return (float)g + 0.25f * (float)f; }

/* Distinct rows rank r asks for in round `round`: each row with probability 1/3 (none at all for rank 1 in round 1). */
static int64_t requests(int r, int round, int64_t num_rows, int64_t *out) {
    dl_rng rng;
    shared_rng(&rng, 100 + (uint64_t)round * 16 + (uint64_t)r);
    int64_t n = 0;
    for (int64_t g = 0; g < num_rows; g++)
        if (dl_rng_below(&rng, 3) == 0 && !(r == 1 && round == 1))
            out[n++] = g;
    for (int64_t i = n - 1; i > 0; i--) { /* any order: the plan must not care */
        int64_t j = (int64_t)dl_rng_below(&rng, (uint64_t)i + 1), t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    return n;
}

static void fill(dl_sharded_table *t) {
    for (int64_t g = 0; g < t->num_rows; g++) {
        int64_t l = dl_sharded_table_local(t, g);
        for (int f = 0; l >= 0 && f < t->row_floats; f++)
            t->data[(size_t)l * (size_t)t->row_floats + (size_t)f] = cell(g, f);
    }
}

static void owners_partition_the_rows(void **state) {
    (void)state;
    dl_sharded_table t;
    assert_int_equal(dl_sharded_table_create(&t, world.rank, world.size, 1001, 3), DL_OK);
    int64_t total = t.local_rows;
    assert_int_equal(dl_comm_allreduce_sum_i64(&world, &total, 1, "rows"), DL_OK);
    assert_int_equal(total, 1001);
    assert_int_equal(t.local_rows, dl_sharded_owned_count(1001, world.rank, world.size));
    int64_t next = 0;
    for (int64_t g = 0; g < 1001; g++) {
        int64_t l = dl_sharded_table_local(&t, g);
        if (dl_hash_owner((uint64_t)g, world.size) == world.rank)
            assert_int_equal(l, next++);
        else
            assert_int_equal(l, -1);
    }
    assert_int_equal(dl_sharded_table_local(&t, -1), -1);
    assert_int_equal(dl_sharded_table_local(&t, 1001), -1);
    dl_sharded_table_destroy(&t);
}

static void fetch_and_push_reach_the_owners(void **state) {
    (void)state;
    const int64_t N = 517;
    const int rf = 5;
    dl_sharded_table t;
    assert_int_equal(dl_sharded_table_create(&t, world.rank, world.size, N, rf), DL_OK);
    t.data = dl_test_calloc(((size_t)t.local_rows + 1) * rf * sizeof(float));
    fill(&t);
    dl_sharded_plan plan;
    memset(&plan, 0, sizeof plan);
    int64_t *rows = dl_test_calloc((size_t)N * sizeof(int64_t));
    float *got = dl_test_calloc((size_t)N * rf * sizeof(float)), *deltas = dl_test_calloc((size_t)N * rf * sizeof(float));
    float *expect = dl_test_calloc((size_t)N * rf * sizeof(float));
    for (int64_t g = 0; g < N; g++)
        for (int f = 0; f < rf; f++)
            expect[g * rf + f] = cell(g, f);
    for (int round = 0; round < 3; round++) {
        int64_t n = requests(world.rank, round, N, rows);
        assert_int_equal(dl_sharded_plan_build(&t, &plan, rows, n, &world), DL_OK);
        dl_test_poison(got, (size_t)n * rf);
        assert_int_equal(dl_sharded_fetch(&t, &plan, got, &world), DL_OK);
        for (int64_t i = 0; i < n; i++)
            for (int f = 0; f < rf; f++)
                if (got[i * rf + f] != expect[rows[i] * rf + f])
                    DL_TEST_FAIL("round %d: row %lld value %d = %g, want %g", round, (long long)rows[i], f,
                                 (double)got[i * rf + f], (double)expect[rows[i] * rf + f]);
        for (int64_t i = 0; i < n * rf; i++)
            deltas[i] = (float)(world.rank + 1);
        assert_int_equal(dl_sharded_push_add(&t, &plan, deltas, &world), DL_OK);
        int64_t *other = dl_test_calloc((size_t)N * sizeof(int64_t));
        for (int r = 0; r < world.size; r++) {
            int64_t m = requests(r, round, N, other);
            for (int64_t i = 0; i < m; i++)
                for (int f = 0; f < rf; f++)
                    expect[other[i] * rf + f] += (float)(r + 1);
        }
        free(other);
    }
    for (int64_t g = 0; g < N; g++) { /* every owner holds the sum of every rank's changes to its rows */
        int64_t l = dl_sharded_table_local(&t, g);
        for (int f = 0; l >= 0 && f < rf; f++)
            if (t.data[l * rf + f] != expect[g * rf + f])
                DL_TEST_FAIL("row %lld value %d = %g after the pushes, want %g", (long long)g, f,
                             (double)t.data[l * rf + f], (double)expect[g * rf + f]);
    }
    free(rows);
    free(got);
    free(deltas);
    free(expect);
    free(t.data);
    dl_sharded_plan_free(&plan);
    dl_sharded_table_destroy(&t);
}

static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void sparse_sum_gives_union_and_sums(void **state) {
    (void)state;
    const int64_t N = 300;
    const int rf = 2;
    dl_sparse_sum sum;
    memset(&sum, 0, sizeof sum);
    int64_t *rows = dl_test_calloc((size_t)N * sizeof(int64_t));
    float *deltas = dl_test_calloc((size_t)N * rf * sizeof(float)), *want = dl_test_calloc((size_t)N * rf * sizeof(float));
    char *in_union = dl_test_calloc((size_t)N);
    for (int round = 0; round < 2; round++) {
        int64_t n = requests(world.rank, round, N, rows);
        qsort(rows, (size_t)n, sizeof(int64_t), compare_i64);
        for (int64_t i = 0; i < n; i++)
            for (int f = 0; f < rf; f++)
                deltas[i * rf + f] = (float)(world.rank + 1) * (float)(rows[i] + f);
        assert_int_equal(dl_sparse_sum_rows(&sum, rows, n, deltas, rf, &world), DL_OK);
        memset(want, 0, (size_t)N * rf * sizeof(float));
        memset(in_union, 0, (size_t)N);
        int64_t *other = dl_test_calloc((size_t)N * sizeof(int64_t));
        for (int r = 0; r < world.size; r++) {
            int64_t m = requests(r, round, N, other);
            for (int64_t i = 0; i < m; i++) {
                in_union[other[i]] = 1;
                for (int f = 0; f < rf; f++)
                    want[other[i] * rf + f] += (float)(r + 1) * (float)(other[i] + f);
            }
        }
        free(other);
        int64_t count = 0;
        for (int64_t g = 0; g < N; g++)
            count += in_union[g];
        assert_int_equal(sum.count, count);
        for (int64_t p = 0; p < sum.count; p++) {
            assert_true(in_union[sum.rows[p]]);
            assert_true(p == 0 || sum.rows[p] > sum.rows[p - 1]);
            for (int f = 0; f < rf; f++)
                assert_true(sum.sums[p * rf + f] == want[sum.rows[p] * rf + f]);
        }
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(sum.rows[sum.mine[i]], rows[i]);
    }
    int64_t bad[2] = {5, 3};
    assert_int_equal(dl_sparse_sum_rows(&sum, bad, 2, deltas, rf, &world), DL_ERR_INVALID);
    free(rows);
    free(deltas);
    free(want);
    free(in_union);
    dl_sparse_sum_free(&sum);
}

/* ---- FFM across ranks -------------------------------------------------------------------------------------------- */

enum { FIELDS = 3, BUCKETS = 57, B = 6, STEPS = 5, VALID = 29 };

/* Global row i of the training (or validation) data: 2-5 entries, ids partly beyond the table (hashed). */
static void data_row(uint64_t stream, int64_t i, dl_click_row *row) {
    dl_rng rng;
    dl_rng_init(&rng, 77, stream * 100003 + (uint64_t)i);
    int n = 2 + (int)dl_rng_below(&rng, 4);
    row->field.len = row->feature.len = row->value.len = 0;
    for (int e = 0; e < n; e++) {
        dl_i32_array_push(&row->field, (int32_t)dl_rng_below(&rng, FIELDS));
        dl_i32_array_push(&row->feature, (int32_t)dl_rng_below(&rng, 90));
        dl_f32_array_push(&row->value, 0.5f + dl_rng_uniform(&rng));
    }
    row->label = (float)dl_rng_below(&rng, 2);
}

/* Rank r's batch of step s: global rows [(s·W + r)·B, ... + B) (empty for rank 1 at step 2). */
static void fill_batch(dl_batch *batch, int rank, int step) {
    int rows = rank == 1 && step == 2 ? 0 : B;
    dl_test_click_batch_build(&batch->clicks, rows, ((int64_t)step * world.size + rank) * B, 1, data_row);
}

static dl_status mem_click(void *ctx, uint64_t record, dl_click_row *row) {
    (void)ctx;
    data_row(2, (int64_t)record, row);
    return DL_OK;
}

/* The semantics, computed serially with a one-process model m: each step every rank's batch trains a copy of the
 * same table, and the table becomes old + Σ of the copies' changes. `table` starts as the initial parameters. */
static void serial_reference(dl_model *m, float *table, size_t numel) {
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, B, 1), DL_OK);
    float *old = dl_test_calloc(numel * sizeof(float)), *sum = dl_test_calloc(numel * sizeof(float));
    for (int step = 0; step < STEPS; step++) {
        memcpy(old, table, numel * sizeof(float));
        memset(sum, 0, numel * sizeof(float));
        for (int r = 0; r < world.size; r++) {
            memcpy(m->param_data, old, numel * sizeof(float));
            fill_batch(&batch, r, step);
            dl_step_context ctx = {NULL, step + 1, 0.2, NULL};
            dl_step_stats stats = {0};
            assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_OK);
            for (size_t i = 0; i < numel; i++)
                sum[i] += m->param_data[i] - old[i];
        }
        for (size_t i = 0; i < numel; i++)
            table[i] = old[i] + sum[i];
    }
    free(old);
    free(sum);
    dl_batch_free(&batch);
}

static void ffm_sharded_equals_replicated_equals_serial(void **state) {
    (void)state;
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_config rc, sc;
    dl_test_click_config(&rc, DL_MODEL_FFM, 4, FIELDS, BUCKETS, true, 1e-3, DL_EMBEDDINGS_REPLICATED);
    dl_test_click_config(&sc, DL_MODEL_FFM, 4, FIELDS, BUCKETS, true, 1e-3, DL_EMBEDDINGS_SHARDED);
    dl_model *rep, *sh;
    assert_int_equal(dl_config_create_model(&rep, &rc, &be, B, 1), DL_OK);
    assert_int_equal(dl_config_create_model(&sh, &sc, &be, B, 1), DL_OK);
    assert_null(rep->shard_layout);
    if (world.size > 1) {
        assert_non_null(sh->shard_layout);
        assert_true(sh->local_numel < dl_tensor_table_numel(sh->params));
    }
    assert_int_equal(rep->init_params(rep, 9), DL_OK);
    assert_int_equal(sh->init_params(sh, 9), DL_OK);
    size_t numel = dl_tensor_table_numel(rep->params);
    float *initial = dl_test_calloc(numel * sizeof(float));
    memcpy(initial, rep->param_data, numel * sizeof(float));
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, B, 1), DL_OK);
    for (int step = 0; step < STEPS; step++) {
        fill_batch(&batch, world.rank, step);
        dl_step_context ctx = {&world, step + 1, 0.2, NULL};
        dl_step_stats s1 = {0}, s2 = {0};
        assert_int_equal(rep->train_batch(rep, &batch, &ctx, &s1), DL_OK);
        assert_int_equal(sh->train_batch(sh, &batch, &ctx, &s2), DL_OK);
        if (fabs(s1.loss_sum - s2.loss_sum) > 1e-5 * (1 + fabs(s1.loss_sum)))
            DL_TEST_FAIL("step %d: loss %.9g replicated, %.9g sharded", step, s1.loss_sum, s2.loss_sum);
    }
    /* replicated copies are bit-identical on every rank */
    int64_t h[2] = {(int64_t)(dl_hash_bytes(rep->param_data, numel * sizeof(float), 0) >> 1), 0};
    h[1] = -h[0];
    assert_int_equal(dl_comm_allreduce_max_i64(&world, h, 2, "hash"), DL_OK);
    assert_true(h[0] == -h[1]);
    /* the rows each rank holds of the sharded table equal the replicated ones (and its bias the replicated bias) */
    float *full = dl_test_calloc(numel * sizeof(float));
    memcpy(full, rep->param_data, numel * sizeof(float));
    const dl_shard_layout *l = sh->shard_layout;
    if (l) {
        const dl_tensor *table = dl_tensor_table_at(sh->params, 0), *bias = dl_tensor_table_at(sh->params, 1);
        size_t rf = table->shape[1];
        int64_t held = 0;
        for (int64_t g = 0; g < (int64_t)table->shape[0]; g++) {
            int64_t slot = l->local_row(l->ctx, 0, g);
            if (slot < 0)
                continue;
            assert_int_equal(slot, held++);
            memcpy(full + table->offset + (size_t)g * rf, sh->param_data + l->local_offset[0] + (size_t)slot * rf,
                   rf * sizeof(float));
        }
        assert_int_equal(held, dl_sharded_owned_count((int64_t)table->shape[0], world.rank, world.size));
        memcpy(full + bias->offset, sh->param_data + l->local_offset[1], bias->numel * sizeof(float));
    } else {
        memcpy(full, sh->param_data, numel * sizeof(float));
    }
    {
        double *want = dl_test_calloc(numel * sizeof(double));
        for (size_t i = 0; i < numel; i++)
            want[i] = rep->param_data[i];
        DL_ASSERT_REL(full, want, numel, 1e-6);
        free(want);
    }
    if (world.rank == 0) {
        double *want = dl_test_calloc(numel * sizeof(double));
        for (size_t i = 0; i < numel; i++)
            want[i] = rep->param_data[i];
        /* and both equal the serial semantics, computed here with a one-process model */
        dl_model serial;
        memset(&serial, 0, sizeof serial);
        dl_config one;
        dl_test_click_config(&one, DL_MODEL_FFM, 4, FIELDS, BUCKETS, true, 1e-3, DL_EMBEDDINGS_REPLICATED);
        assert_int_equal(dl_click_model_create(&serial, &dl_ffm_kind, (dl_model_setup[]){dl_config_model_setup(&one)}, &be, B, 1), DL_OK);
        assert_int_equal(dl_tensor_table_numel(serial.params), numel);
        serial_reference(&serial, initial, numel);
        DL_ASSERT_REL(initial, want, numel, 1e-6);
        free(want);
        serial.destroy(&serial);
        dl_config_free(&one);
    }
    /* evaluation: the same logloss and AUC in both modes, equal to all validation rows scored on rank 0 */
    dl_doc_source src = {.num_records = VALID, .name = "memory", .read_click = mem_click};
    dl_loader_config lc;
    dl_test_click_loader_config(&lc, 4, world.rank, world.size);
    uint64_t batches = 0;
    assert_int_equal(dl_loader_count_batches(&src, &lc, &batches), DL_OK);
    dl_eval_result e1, e2;
    assert_int_equal(rep->evaluate(rep, &world, &src, &lc, (int64_t)batches, &e1), DL_OK);
    assert_int_equal(sh->evaluate(sh, &world, &src, &lc, (int64_t)batches, &e2), DL_OK);
    assert_true(e1.targets == VALID && e2.targets == VALID);
    assert_string_equal(e1.names[0], "val_logloss");
    assert_string_equal(e1.names[1], "val_auc");
    if (fabs(e1.loss - e2.loss) > 1e-6 || fabs(e1.values[1] - e2.values[1]) > 1e-6)
        DL_TEST_FAIL("replicated logloss %.9g AUC %.9g, sharded %.9g %.9g", e1.loss, e1.values[1], e2.loss,
                     e2.values[1]);
    dl_batch vb;
    assert_int_equal(dl_batch_alloc(&vb, DL_DATA_CLICKS, VALID, 1), DL_OK);
    dl_click_row row;
    memset(&row, 0, sizeof row);
    for (int i = 0; i < VALID; i++) {
        data_row(2, i, &row);
        dl_click_batch *cb = &vb.clicks;
        assert_int_equal(dl_click_batch_reserve(cb, cb->nnz + (int64_t)row.feature.len), DL_OK);
        for (size_t e = 0; e < row.feature.len; e++) {
            cb->features[cb->nnz] = row.feature.data[e];
            cb->fields[cb->nnz] = row.field.data[e];
            cb->values[cb->nnz++] = row.value.data[e];
        }
        cb->labels[i] = row.label;
        cb->row_ptr[++cb->num_rows] = (int32_t)cb->nnz;
    }
    float prob[VALID];
    double loss = 0;
    assert_int_equal(dl_click_model_predict(rep, &vb.clicks, prob, &loss), DL_OK);
    double auc = dl_click_auc(prob, vb.clicks.labels, VALID);
    if (fabs(loss / VALID - e1.loss) > 1e-6 || fabs(auc - e1.values[1]) > 1e-6)
        DL_TEST_FAIL("evaluate gave %.9g / %.9g, all rows scored here %.9g / %.9g", e1.loss, e1.values[1],
                     loss / VALID, auc);
    dl_click_row_free(&row);
    dl_batch_free(&vb);
    free(full);
    free(initial);
    dl_batch_free(&batch);
    dl_model_destroy(rep);
    dl_model_destroy(sh);
    dl_config_free(&rc);
    dl_config_free(&sc);
    dl_backend_close(&be);
    omp_set_num_threads(saved_threads);
}

/* The checkpoint of a sharded model after a few steps: written by every rank from its own store, it holds the
 * whole table bit for bit as the ranks hold it (each rank reads the file whole and compares its rows and the bias),
 * a one-process model reads it whole (dealer predict's path) and scores like the ranks together, and a fresh
 * sharded model loaded collectively has every rank's store exactly and trains on identically. */
static void ffm_sharded_checkpoint_round_trip(void **state) {
    (void)state;
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_config sc;
    dl_test_click_config(&sc, DL_MODEL_FFM, 4, FIELDS, BUCKETS, true, 1e-3, DL_EMBEDDINGS_SHARDED);
    dl_model *sh, *back;
    assert_int_equal(dl_config_create_model(&sh, &sc, &be, B, 1), DL_OK);
    assert_int_equal(dl_config_create_model(&back, &sc, &be, B, 1), DL_OK);
    const dl_shard_layout *l = sh->shard_layout;
    assert_non_null(l);
    assert_int_equal(sh->init_params(sh, 5), DL_OK);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, B, 1), DL_OK);
    for (int step = 0; step < STEPS; step++) {
        fill_batch(&batch, world.rank, step);
        dl_step_context ctx = {&world, step + 1, 0.2, NULL};
        dl_step_stats st = {0};
        assert_int_equal(sh->train_batch(sh, &batch, &ctx, &st), DL_OK);
    }
    char dir[256] = "";
    if (world.rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/dealer_test_ffm_ckpt_XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    assert_int_equal(dl_comm_broadcast(&world, dir, sizeof dir, 0, "dir"), DL_OK);
    char path[300];
    snprintf(path, sizeof path, "%s/ffm.h5", dir);
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.step = STEPS;
    meta.world_size = world.size;
    snprintf(meta.model_kind, sizeof meta.model_kind, "ffm");
    meta.config_yaml = (char *)"model:\n  kind: ffm\n";
    dl_ckpt_tensors t = {sh->params, sh->param_data, 0, NULL, NULL, 0, 0};
    dl_ckpt_options o = {.layout = l};
    assert_int_equal(dl_ckpt_write(&world, path, &meta, &t, NULL, 0, &o), DL_OK);

    /* The file, read whole on every rank, holds this rank's rows and the bias exactly. */
    const dl_tensor *table = dl_tensor_table_find(sh->params, "ffm.table"), *bias = dl_tensor_table_find(sh->params,
                                                                                                         "ffm.bias");
    assert_non_null(table);
    assert_non_null(bias);
    size_t rf = table->shape[1];
    dl_model one;
    memset(&one, 0, sizeof one);
    assert_int_equal(dl_click_model_create(&one, &dl_ffm_kind, (dl_model_setup[]){dl_config_model_setup(&sc)}, &be, B, 1), DL_OK);
    assert_null(one.shard_layout);
    dl_ckpt_tensors whole = {one.params, one.param_data, 0, NULL, NULL, 0, 0};
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    assert_int_equal(dl_ckpt_load(path, &whole, world.rank, world.size, &cursor, &cursor_len), DL_OK);
    free(cursor);
    int64_t held = 0;
    for (int64_t g = 0; g < (int64_t)table->shape[0]; g++) {
        int64_t slot = l->local_row(l->ctx, 0, g);
        if (slot < 0)
            continue;
        held++;
        if (memcmp(one.param_data + table->offset + (size_t)g * rf,
                   sh->param_data + l->local_offset[0] + (size_t)slot * rf, rf * sizeof(float)) != 0)
            DL_TEST_FAIL("rank %d: row %lld in the file differs from the row the rank holds", world.rank,
                         (long long)g);
    }
    assert_memory_equal(one.param_data + bias->offset, sh->param_data + l->local_offset[1], 2 * sizeof(float));
    int64_t rows = held;
    assert_int_equal(dl_comm_allreduce_sum_i64(&world, &rows, 1, "rows"), DL_OK);
    assert_int_equal(rows, (int64_t)table->shape[0]); /* so every row of the file was compared by its holder */

    /* Predictions of the one-process model equal the sharded model's collective evaluation. */
    dl_doc_source src = {.num_records = VALID, .name = "memory", .read_click = mem_click};
    dl_loader_config lc;
    dl_test_click_loader_config(&lc, 4, world.rank, world.size);
    uint64_t batches = 0;
    assert_int_equal(dl_loader_count_batches(&src, &lc, &batches), DL_OK);
    int64_t most = (int64_t)batches;
    assert_int_equal(dl_comm_allreduce_max_i64(&world, &most, 1, "batches"), DL_OK);
    dl_eval_result e_sh, e_one;
    assert_int_equal(sh->evaluate(sh, &world, &src, &lc, most, &e_sh), DL_OK);
    assert_int_equal(one.evaluate(&one, &world, &src, &lc, most, &e_one), DL_OK);
    /* Bits hold: the sharded model gathers the very rows the whole model reads and runs the same kernel on them;
     * both sum per rank and all-reduce the same way. */
    if (e_sh.loss != e_one.loss || e_sh.values[1] != e_one.values[1])
        DL_TEST_FAIL("sharded model: logloss %.9g AUC %.9g; loaded whole: %.9g %.9g", e_sh.loss, e_sh.values[1],
                     e_one.loss, e_one.values[1]);

    /* A fresh sharded model, loaded collectively, holds exactly this rank's store and trains on identically. */
    dl_test_poison(back->param_data, back->local_numel);
    dl_ckpt_tensors bt = {back->params, back->param_data, 0, NULL, NULL, 0, 0};
    dl_ckpt_options how = {.layout = back->shard_layout};
    assert_int_equal(dl_ckpt_load_collective(&world, path, &bt, &how, &cursor, &cursor_len), DL_OK);
    free(cursor);
    assert_int_equal(back->local_numel, sh->local_numel);
    size_t table_floats = (size_t)held * rf;
    assert_memory_equal(back->param_data, sh->param_data, table_floats * sizeof(float));
    assert_memory_equal(back->param_data + l->local_offset[1], sh->param_data + l->local_offset[1], 2 * sizeof(float));
    for (int step = STEPS; step < STEPS + 2; step++) {
        fill_batch(&batch, world.rank, step);
        dl_step_context ctx = {&world, step + 1, 0.2, NULL};
        dl_step_stats s1 = {0}, s2 = {0};
        assert_int_equal(sh->train_batch(sh, &batch, &ctx, &s1), DL_OK);
        assert_int_equal(back->train_batch(back, &batch, &ctx, &s2), DL_OK);
        assert_true(s1.loss_sum == s2.loss_sum);
    }
    assert_memory_equal(back->param_data, sh->param_data, table_floats * sizeof(float));

    assert_int_equal(dl_comm_barrier(&world, "before cleanup"), DL_OK);
    if (world.rank == 0) {
        unlink(path);
        rmdir(dir);
    }
    one.destroy(&one);
    dl_batch_free(&batch);
    dl_model_destroy(sh);
    dl_model_destroy(back);
    dl_config_free(&sc);
    dl_backend_close(&be);
    omp_set_num_threads(saved_threads);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    shared_seed = dl_test_seed();
    if (dl_comm_broadcast(&world, &shared_seed, sizeof shared_seed, 0, "test seed") != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(owners_partition_the_rows),
        cmocka_unit_test(fetch_and_push_reach_the_owners),
        cmocka_unit_test(sparse_sum_gives_union_and_sums),
        cmocka_unit_test(ffm_sharded_equals_replicated_equals_serial),
        cmocka_unit_test(ffm_sharded_checkpoint_round_trip),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
