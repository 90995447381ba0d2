/* test_fm.c — the fused FM kernels, the FM model and the AUC the click models report.
 *
 * FM scores are checked against the explicit sum over pairs i < j (not Rendle's identity the kernel uses); training
 * against a double-precision per-instance reference: score, κ = −y·σ(−y·t), then each entry's vector gets
 * g = κ·scale·x_i·(s − v_i·x_i) + λ·v_i with s the forward's Σ v x, its linear weight κ·x_i·√scale + λ·w_i, and the
 * bias κ, entries in order. Batches repeat table rows inside a row (a feature twice), have empty rows and odd k. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "train/run_config.h"
#include "ops/ops.h"
#include "models/click/click_model.h"
#include "models/model.h"

static int rand_int(dl_rng *rng, int n) { return (int)dl_rng_below(rng, (uint64_t)n); }

typedef struct fm_table {
    dl_click_table t;
    float *bias;
    double *ref, ref_bias[2];
    size_t numel;
} fm_table;

static fm_table make_table(dl_rng *rng, int64_t num_rows, int k, int linear, int bias) {
    fm_table f;
    memset(&f, 0, sizeof f);
    f.bias = dl_test_calloc(2 * sizeof(float));
    int kpad = (k + 3) / 4 * 4;
    int rf = (2 * kpad + (linear ? 2 : 0) + 3) / 4 * 4;
    f.t = (dl_click_table){NULL, num_rows, rf, 1, k, kpad, linear ? 2 * kpad : -1, bias ? f.bias : NULL};
    f.numel = (size_t)num_rows * (size_t)rf;
    f.t.data = dl_test_calloc(f.numel * sizeof(float));
    f.ref = dl_test_calloc(f.numel * sizeof(double));
    for (int64_t r = 0; r < num_rows; r++) {
        float *row = f.t.data + (size_t)r * (size_t)rf;
        for (int d = 0; d < kpad; d++) {
            row[d] = d < k ? dl_rng_uniform(rng) - 0.5f : 0.0f;
            row[kpad + d] = d < k ? 1.0f + dl_rng_uniform(rng) : 1.0f;
        }
        if (linear) {
            row[2 * kpad] = dl_rng_uniform(rng) - 0.5f;
            row[2 * kpad + 1] = 1.0f + dl_rng_uniform(rng);
        }
    }
    f.bias[0] = -0.2f;
    f.bias[1] = 1.25f;
    for (size_t i = 0; i < f.numel; i++)
        f.ref[i] = f.t.data[i];
    f.ref_bias[0] = f.bias[0];
    f.ref_bias[1] = f.bias[1];
    return f;
}

static void free_table(fm_table *f) {
    free(f->t.data);
    free(f->ref);
    free(f->bias);
}

typedef struct batch {
    dl_click_rows r;
    int32_t *row_ptr, *rows;
    float *values, *labels, *scale;
} batch;

static batch make_batch(dl_rng *rng, int B, int max_n, int num_rows) {
    batch b;
    memset(&b, 0, sizeof b);
    b.row_ptr = dl_test_calloc((size_t)(B + 1) * sizeof(int32_t));
    for (int i = 0; i < B; i++)
        b.row_ptr[i + 1] = b.row_ptr[i] + (i % 5 == 2 ? 0 : 1 + rand_int(rng, max_n));
    int n = b.row_ptr[B];
    b.rows = dl_test_calloc((size_t)n * sizeof(int32_t));
    b.values = dl_test_calloc((size_t)n * sizeof(float));
    b.labels = dl_test_calloc((size_t)B * sizeof(float));
    b.scale = dl_test_calloc((size_t)B * sizeof(float));
    for (int e = 0; e < n; e++) {
        b.rows[e] = rand_int(rng, num_rows);
        b.values[e] = 2.0f * dl_rng_uniform(rng) - 1.0f;
    }
    for (int i = 0; i < B; i++) {
        b.labels[i] = (float)rand_int(rng, 2);
        b.scale[i] = 0.2f + dl_rng_uniform(rng);
        if (b.row_ptr[i + 1] - b.row_ptr[i] >= 2)
            b.rows[b.row_ptr[i] + 1] = b.rows[b.row_ptr[i]];
    }
    b.r = (dl_click_rows){B, b.row_ptr, b.rows, NULL, b.values, b.labels, b.scale};
    return b;
}

static void free_batch(batch *b) {
    free(b->row_ptr);
    free(b->rows);
    free(b->values);
    free(b->labels);
    free(b->scale);
}

/* The textbook FM score: explicit pairs. */
static double ref_score(const fm_table *f, const dl_click_rows *b, int row) {
    const dl_click_table *t = &f->t;
    const size_t rf = (size_t)t->row_floats;
    double s = t->bias ? f->ref_bias[0] : 0.0, r = b->instance_scale ? b->instance_scale[row] : 1.0;
    for (int32_t i = b->row_ptr[row]; i < b->row_ptr[row + 1]; i++) {
        const double *vi = f->ref + (size_t)b->rows[i] * rf;
        if (t->linear_offset >= 0) /* linear terms see the row scaled to unit norm: x·√r */
            s += vi[t->linear_offset] * b->values[i] * sqrt(r);
        for (int32_t j = i + 1; j < b->row_ptr[row + 1]; j++) {
            const double *vj = f->ref + (size_t)b->rows[j] * rf;
            for (int d = 0; d < t->k; d++)
                s += r * vi[d] * vj[d] * b->values[i] * b->values[j];
        }
    }
    return s;
}

static void ref_adagrad(double *w, double *G, double g, double lr) {
    *G += g * g;
    *w -= lr * g / sqrt(*G);
}

static void ref_sgd(fm_table *f, const dl_click_rows *b, double lr, double lambda, double *logits) {
    const dl_click_table *t = &f->t;
    const size_t rf = (size_t)t->row_floats;
    double *s = dl_test_calloc((size_t)t->kpad * sizeof(double));
    for (int row = 0; row < b->B; row++) {
        const int32_t e0 = b->row_ptr[row], e1 = b->row_ptr[row + 1];
        double score = ref_score(f, b, row), y = b->labels[row] > 0 ? 1.0 : -1.0;
        double kappa = -y / (1.0 + exp(y * score)), r = b->instance_scale ? b->instance_scale[row] : 1.0;
        logits[row] = score;
        for (int d = 0; d < t->kpad; d++) {
            s[d] = 0;
            for (int32_t e = e0; e < e1; e++)
                s[d] += f->ref[(size_t)b->rows[e] * rf + (size_t)d] * b->values[e];
        }
        for (int32_t e = e0; e < e1; e++) {
            double *v = f->ref + (size_t)b->rows[e] * rf, x = b->values[e];
            for (int d = 0; d < t->kpad; d++)
                ref_adagrad(&v[d], &v[t->kpad + d], kappa * r * x * (s[d] - v[d] * x) + lambda * v[d], lr);
            if (t->linear_offset >= 0)
                ref_adagrad(&v[t->linear_offset], &v[t->linear_offset + 1],
                            kappa * x * sqrt(r) + lambda * v[t->linear_offset], lr);
        }
        if (t->bias)
            ref_adagrad(&f->ref_bias[0], &f->ref_bias[1], kappa, lr);
    }
    free(s);
}

static void fm_forward_matches_explicit_pairs(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 1);
    const int ks[] = {1, 4, 7, 8, 13, 32};
    for (int c = 0; c < 12; c++) {
        fm_table f = make_table(&rng, 37, ks[c % 6], c % 2, c % 3 != 1);
        batch b = make_batch(&rng, 15, 10, 37);
        float logits[15];
        double want[15];
        dl_test_poison(logits, 15);
        assert_int_equal(dl_op_fm_fused_forward(&be, logits, &f.t, &b.r), DL_OK);
        for (int i = 0; i < 15; i++)
            want[i] = ref_score(&f, &b.r, i);
        DL_ASSERT_REL(logits, want, 15, 1e-5);
        free_batch(&b);
        free_table(&f);
    }
    dl_backend_close(&be);
}

static void fm_sgd_is_per_instance_adagrad(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    dl_rng rng;
    dl_test_rng(&rng, 2);
    const int ks[] = {1, 4, 7, 8, 13, 32};
    for (int c = 0; c < 12; c++) {
        fm_table f = make_table(&rng, 19, ks[c % 6], c % 2, c % 3 != 1);
        batch b = make_batch(&rng, 12, 8, 19);
        float logits[12];
        double want[12];
        dl_test_poison(logits, 12);
        assert_int_equal(dl_op_fm_fused_sgd(&be, logits, &f.t, &b.r, 0.2f, 0.01f), DL_OK);
        ref_sgd(&f, &b.r, 0.2, 0.01, want);
        DL_ASSERT_REL(logits, want, 12, 1e-5);
        DL_ASSERT_REL(f.t.data, f.ref, f.numel, 1e-5);
        if (f.t.bias)
            DL_ASSERT_REL(f.bias, f.ref_bias, 2, 1e-5);
        for (int64_t r = 0; r < f.t.num_rows; r++)
            for (int d = f.t.k; d < f.t.kpad; d++)
                assert_true(f.t.data[(size_t)r * (size_t)f.t.row_floats + (size_t)d] == 0.0f);
        free_batch(&b);
        free_table(&f);
    }
    omp_set_num_threads(saved);
    dl_backend_close(&be);
}

static void fm_ops_reject_bad_arguments(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 3);
    fm_table f = make_table(&rng, 8, 4, 1, 1);
    batch b = make_batch(&rng, 3, 3, 8);
    float logits[3];
    dl_click_table bad = f.t;
    bad.num_fields = 2;
    assert_int_equal(dl_op_fm_fused_forward(&be, logits, &bad, &b.r), DL_ERR_INVALID);
    bad = f.t;
    bad.k = 5;
    assert_int_equal(dl_op_fm_fused_sgd(&be, logits, &bad, &b.r, 0.1f, 0.0f), DL_ERR_INVALID);
    b.rows[0] = -1;
    assert_int_equal(dl_op_fm_fused_sgd(&be, logits, &f.t, &b.r, 0.1f, 0.0f), DL_ERR_INVALID);
    b.rows[0] = 0;
    b.row_ptr[1] = b.row_ptr[2] + 1;
    assert_int_equal(dl_op_fm_fused_forward(&be, logits, &f.t, &b.r), DL_ERR_INVALID);
    free_batch(&b);
    free_table(&f);
    dl_backend_close(&be);
}

/* The model: linear terms and bias start at 0 with accumulators at optim.adagrad_init; a row is one 64-byte line
 * at k 4; training moves the loss down on a learnable toy problem. */
static void fm_model_layout_and_learning(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_config cfg;
    assert_int_equal(dl_config_defaults(&cfg), DL_OK);
    cfg.device = DL_CFG_DEVICE_CPU;
    cfg.model.kind = DL_MODEL_FM;
    cfg.model.k = 4;
    cfg.model.hash_buckets = 64;
    cfg.model.linear_terms = true;
    cfg.optim.name = DL_OPTIM_ADAGRAD;
    cfg.optim.lr = 0.1;
    cfg.optim.weight_decay = 0;
    cfg.optim.adagrad_init = 1.0;
    dl_model *m;
    assert_int_equal(dl_config_create_model(&m, &cfg, &be, 32, 1), DL_OK);
    assert_string_equal(m->kind, "fm");
    const dl_tensor *table = dl_tensor_table_find(m->params, "fm.table");
    const dl_tensor *bias = dl_tensor_table_find(m->params, "fm.bias");
    assert_non_null(table);
    assert_non_null(bias);
    assert_int_equal(table->shape[1], 16);
    assert_int_equal(m->init_params(m, 5), DL_OK);
    for (size_t r = 0; r < 64; r++) {
        const float *row = m->param_data + r * 16;
        assert_true(row[8] == 0.0f && row[9] == 1.0f);
        for (int d = 0; d < 4; d++)
            assert_true(row[d] >= 0.0f && row[d] < 0.5f && row[4 + d] == 1.0f);
    }
    assert_true(m->param_data[bias->offset] == 0.0f && m->param_data[bias->offset + 1] == 1.0f);
    /* toy data: a click exactly when features 1 and 2 appear together */
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, 32, 1), DL_OK);
    dl_click_batch *cb = &batch.clicks;
    assert_int_equal(dl_click_batch_reserve(cb, 64), DL_OK);
    dl_rng rng;
    dl_test_rng(&rng, 4);
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        int n = 0;
        for (int b = 0; b < 32; b++) {
            int a = 1 + rand_int(&rng, 3), c = 1 + rand_int(&rng, 3);
            cb->features[n] = a;
            cb->features[n + 1] = 10 + c;
            cb->fields[n] = cb->fields[n + 1] = 0;
            cb->values[n] = cb->values[n + 1] = 1.0f;
            n += 2;
            cb->row_ptr[b + 1] = n;
            cb->labels[b] = a == 1 && c == 2 ? 1.0f : 0.0f;
        }
        cb->num_rows = 32;
        cb->nnz = n;
        dl_step_context ctx = {NULL, step + 1, 0.1, NULL};
        dl_step_stats stats = {0};
        assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_OK);
        if (step == 0)
            first = stats.loss_sum / stats.targets;
        last = stats.loss_sum / stats.targets;
    }
    if (!(last < 0.5 * first && last < 0.2))
        DL_TEST_FAIL("FM did not learn an interaction: logloss %.4f -> %.4f", first, last);
    dl_batch_free(&batch);
    dl_model_destroy(m);
    dl_config_free(&cfg);
    dl_backend_close(&be);
}

static double auc_pairs(const float *s, const float *l, int n) {
    double good = 0, pairs = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (l[i] > 0 && !(l[j] > 0)) {
                pairs++;
                good += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            }
    return good / pairs;
}

static void auc_counts_ties_half(void **state) {
    (void)state;
    float s1[] = {0.1f, 0.4f, 0.35f, 0.8f}, l1[] = {0, 0, 1, 1};
    assert_true(fabs(dl_click_auc(s1, l1, 4) - 0.75) < 1e-12);
    float s2[] = {0.5f, 0.5f, 0.5f}, l2[] = {1, 0, 0};
    assert_true(fabs(dl_click_auc(s2, l2, 3) - 0.5) < 1e-12);
    float s3[] = {0.1f, 0.2f}, l3[] = {1, 1};
    assert_true(isnan(dl_click_auc(s3, l3, 2)));
    dl_rng rng;
    dl_test_rng(&rng, 5);
    enum { N = 300 };
    float s[N], l[N], sc[N], lc[N];
    for (int i = 0; i < N; i++) {
        s[i] = (float)rand_int(&rng, 40) / 40.0f; /* many ties */
        l[i] = (float)rand_int(&rng, 2);
    }
    memcpy(sc, s, sizeof s);
    memcpy(lc, l, sizeof l);
    double want = auc_pairs(s, l, N), got = dl_click_auc(sc, lc, N);
    if (fabs(got - want) > 1e-9)
        DL_TEST_FAIL("AUC %.12f, pairwise count %.12f", got, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fm_forward_matches_explicit_pairs),
        cmocka_unit_test(fm_sgd_is_per_instance_adagrad),
        cmocka_unit_test(fm_ops_reject_bad_arguments),
        cmocka_unit_test(fm_model_layout_and_learning),
        cmocka_unit_test(auc_counts_ties_half),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
