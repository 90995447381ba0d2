/* test_ffm.c — the fused FFM kernels and the FFM model.
 *
 * The kernels are compared with a double-precision reference that follows libffm's wTx literally: score the row
 * over pairs i < j, κ = −y·σ(−y·t), then walk the same pairs in the same order and update both blocks of each pair
 * from their values at that moment (so blocks that several pairs of one row share see the earlier updates), then the
 * linear weights in entry order (they see x·√r, the row at unit norm) and the bias. Batches are random with
 * repeated table rows and repeated fields inside a row (where the order matters), empty rows, odd k, linear terms
 * on and off. The model tests check the
 * initialisation (libffm's uniform [0, 1)/√k, accumulators at optim.adagrad_init), that train_batch is exactly the
 * kernel on hashed rows with instance scales 1/Σx², and the errors a user can cause. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "train/run_config.h"
#include "data/example.h"
#include "ops/ops.h"
#include "models/click/click_model.h"
#include "models/model.h"

static int rand_int(dl_rng *rng, int n) { return (int)dl_rng_below(rng, (uint64_t)n); }

/* A fused table with its layout, in float (for the kernel) and double (for the reference). */
typedef struct fused {
    dl_click_table t;
    float *bias; /* [2] */
    double *ref, ref_bias[2];
    size_t numel;
} fused;

static fused make_table(dl_rng *rng, int64_t num_rows, int num_fields, int k, int linear, int bias) {
    fused f;
    memset(&f, 0, sizeof f);
    f.bias = dl_test_calloc(2 * sizeof(float));
    int kpad = (k + 3) / 4 * 4;
    int blocks = num_fields * 2 * kpad;
    int rf = (blocks + (linear ? 2 : 0) + 3) / 4 * 4;
    f.t = (dl_click_table){NULL, num_rows, rf, num_fields, k, kpad, linear ? blocks : -1, bias ? f.bias : NULL};
    f.numel = (size_t)num_rows * (size_t)rf;
    f.t.data = dl_test_calloc(f.numel * sizeof(float));
    f.ref = dl_test_calloc(f.numel * sizeof(double));
    for (int64_t r = 0; r < num_rows; r++) {
        float *row = f.t.data + (size_t)r * (size_t)rf;
        for (int b = 0; b < num_fields; b++)
            for (int d = 0; d < kpad; d++) {
                row[b * 2 * kpad + d] = d < k ? dl_rng_uniform(rng) / sqrtf((float)k) : 0.0f;
                row[b * 2 * kpad + kpad + d] = d < k ? 1.0f + dl_rng_uniform(rng) : 1.0f;
            }
        if (linear) {
            row[blocks] = dl_rng_uniform(rng) - 0.5f;
            row[blocks + 1] = 1.0f + dl_rng_uniform(rng);
        }
    }
    f.bias[0] = 0.1f;
    f.bias[1] = 1.5f;
    for (size_t i = 0; i < f.numel; i++)
        f.ref[i] = f.t.data[i];
    f.ref_bias[0] = f.bias[0];
    f.ref_bias[1] = f.bias[1];
    return f;
}

static void free_table(fused *f) {
    free(f->t.data);
    free(f->ref);
    free(f->bias);
}

typedef struct batch {
    dl_click_rows r;
    int32_t *row_ptr, *rows, *fields;
    float *values, *labels, *scale;
} batch;

/* B rows of up to max_n entries (every seventh empty), rows in [row_lo, row_lo + span), random fields (repeats
 * included), some rows repeating a table row, values in [-1, 1), scales in [0.2, 1.2). */
static batch make_batch(dl_rng *rng, int B, int max_n, int row_lo, int span, int num_fields) {
    batch b;
    memset(&b, 0, sizeof b);
    b.row_ptr = dl_test_calloc((size_t)(B + 1) * sizeof(int32_t));
    for (int i = 0; i < B; i++)
        b.row_ptr[i + 1] = b.row_ptr[i] + (i % 7 == 3 ? 0 : 1 + rand_int(rng, max_n));
    int n = b.row_ptr[B];
    b.rows = dl_test_calloc((size_t)n * sizeof(int32_t));
    b.fields = dl_test_calloc((size_t)n * sizeof(int32_t));
    b.values = dl_test_calloc((size_t)n * sizeof(float));
    b.labels = dl_test_calloc((size_t)B * sizeof(float));
    b.scale = dl_test_calloc((size_t)B * sizeof(float));
    for (int e = 0; e < n; e++) {
        b.rows[e] = row_lo + rand_int(rng, span);
        b.fields[e] = rand_int(rng, num_fields);
        b.values[e] = 2.0f * dl_rng_uniform(rng) - 1.0f;
    }
    for (int i = 0; i < B; i++) {
        b.labels[i] = (float)rand_int(rng, 2);
        b.scale[i] = 0.2f + dl_rng_uniform(rng);
        if (b.row_ptr[i + 1] - b.row_ptr[i] >= 3) /* the same table row twice in one batch row */
            b.rows[b.row_ptr[i] + 2] = b.rows[b.row_ptr[i]];
    }
    b.r = (dl_click_rows){B, b.row_ptr, b.rows, b.fields, b.values, b.labels, b.scale};
    return b;
}

static void free_batch(batch *b) {
    free(b->row_ptr);
    free(b->rows);
    free(b->fields);
    free(b->values);
    free(b->labels);
    free(b->scale);
}

/* ---- the reference ------------------------------------------------------------------------------------------ */

static double ref_score(const fused *f, const dl_click_rows *b, int row) {
    const dl_click_table *t = &f->t;
    const size_t rf = (size_t)t->row_floats, bs = 2 * (size_t)t->kpad;
    double s = t->bias ? f->ref_bias[0] : 0.0;
    double r = b->instance_scale ? b->instance_scale[row] : 1.0;
    for (int32_t i = b->row_ptr[row]; i < b->row_ptr[row + 1]; i++) {
        if (t->linear_offset >= 0) /* linear terms see the row scaled to unit norm: x·√r */
            s += f->ref[(size_t)b->rows[i] * rf + (size_t)t->linear_offset] * b->values[i] * sqrt(r);
        for (int32_t j = i + 1; j < b->row_ptr[row + 1]; j++) {
            const double *a = f->ref + (size_t)b->rows[i] * rf + (size_t)b->fields[j] * bs;
            const double *c = f->ref + (size_t)b->rows[j] * rf + (size_t)b->fields[i] * bs;
            for (int d = 0; d < t->k; d++)
                s += a[d] * c[d] * b->values[i] * b->values[j] * r;
        }
    }
    return s;
}

static double ref_kappa(double t, float label) {
    double y = label > 0 ? 1.0 : -1.0;
    return -y / (1.0 + exp(y * t));
}

static void ref_adagrad(double *w, double *G, double g, double lr) {
    *G += g * g;
    *w -= lr * g / sqrt(*G);
}

static void ref_sgd(fused *f, const dl_click_rows *b, double lr, double lambda, double *logits) {
    const dl_click_table *t = &f->t;
    const size_t rf = (size_t)t->row_floats, bs = 2 * (size_t)t->kpad;
    for (int row = 0; row < b->B; row++) {
        double s = ref_score(f, b, row), kappa = ref_kappa(s, b->labels[row]);
        double r = b->instance_scale ? b->instance_scale[row] : 1.0;
        logits[row] = s;
        const int32_t e0 = b->row_ptr[row], e1 = b->row_ptr[row + 1];
        for (int32_t i = e0; i < e1; i++)
            for (int32_t j = i + 1; j < e1; j++) {
                double *b1 = f->ref + (size_t)b->rows[i] * rf + (size_t)b->fields[j] * bs;
                double *b2 = f->ref + (size_t)b->rows[j] * rf + (size_t)b->fields[i] * bs;
                double kv = kappa * (b->values[i] * b->values[j] * r);
                for (int d = 0; d < t->kpad; d++) {
                    double w1 = b1[d], w2 = b2[d], G1 = b1[t->kpad + d], G2 = b2[t->kpad + d];
                    double g1 = lambda * w1 + kv * w2, g2 = lambda * w2 + kv * w1;
                    ref_adagrad(&w1, &G1, g1, lr);
                    ref_adagrad(&w2, &G2, g2, lr);
                    b1[d] = w1;
                    b1[t->kpad + d] = G1;
                    b2[d] = w2;
                    b2[t->kpad + d] = G2;
                }
            }
        if (t->linear_offset >= 0)
            for (int32_t i = e0; i < e1; i++) {
                double *w = f->ref + (size_t)b->rows[i] * rf + (size_t)t->linear_offset;
                ref_adagrad(&w[0], &w[1], kappa * b->values[i] * sqrt(r) + lambda * w[0], lr);
            }
        if (t->bias)
            ref_adagrad(&f->ref_bias[0], &f->ref_bias[1], kappa, lr);
    }
}

static void assert_padding_untouched(const fused *f) {
    const dl_click_table *t = &f->t;
    for (int64_t r = 0; r < t->num_rows; r++)
        for (int b = 0; b < t->num_fields; b++)
            for (int d = t->k; d < t->kpad; d++) {
                const float *blk = t->data + (size_t)r * (size_t)t->row_floats + (size_t)b * 2 * (size_t)t->kpad;
                if (blk[d] != 0.0f || blk[t->kpad + d] != 1.0f)
                    DL_TEST_FAIL("row %lld field %d lane %d: padding became %g / %g", (long long)r, b, d,
                                 (double)blk[d], (double)blk[t->kpad + d]);
            }
}

/* ---- kernel tests ------------------------------------------------------------------------------------------- */

static void fused_forward_matches_reference(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 1);
    const int ks[] = {1, 3, 4, 5, 8, 12, 16};
    for (int c = 0; c < 14; c++) {
        int k = ks[c % 7], F = 2 + rand_int(&rng, 5), linear = c % 2, bias = c % 3 != 0;
        fused f = make_table(&rng, 41, F, k, linear, bias);
        batch b = make_batch(&rng, 13, 9, 0, 41, F);
        float *logits = dl_test_calloc(13 * sizeof(float));
        double *want = dl_test_calloc(13 * sizeof(double));
        dl_test_poison(logits, 13);
        assert_int_equal(dl_op_ffm_fused_forward(&be, logits, &f.t, &b.r), DL_OK);
        for (int i = 0; i < 13; i++)
            want[i] = ref_score(&f, &b.r, i);
        DL_ASSERT_REL(logits, want, 13, 2e-6);
        free(logits);
        free(want);
        free_batch(&b);
        free_table(&f);
    }
    dl_backend_close(&be);
}

static void fused_sgd_is_libffm_per_instance_adagrad(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    dl_rng rng;
    dl_test_rng(&rng, 2);
    const int ks[] = {1, 3, 4, 5, 8, 12, 16};
    for (int c = 0; c < 14; c++) {
        int k = ks[c % 7], F = 2 + rand_int(&rng, 5), linear = c % 2, bias = c % 3 != 0;
        fused f = make_table(&rng, 23, F, k, linear, bias); /* small: rows repeat across and inside batch rows */
        batch b = make_batch(&rng, 11, 8, 0, 23, F);
        float *logits = dl_test_calloc(11 * sizeof(float));
        double *want = dl_test_calloc(11 * sizeof(double));
        dl_test_poison(logits, 11);
        assert_int_equal(dl_op_ffm_fused_sgd(&be, logits, &f.t, &b.r, 0.2f, 0.01f), DL_OK);
        ref_sgd(&f, &b.r, 0.2, 0.01, want);
        DL_ASSERT_REL(logits, want, 11, 1e-5);
        DL_ASSERT_REL(f.t.data, f.ref, f.numel, 1e-5);
        if (bias)
            DL_ASSERT_REL(f.bias, f.ref_bias, 2, 1e-5);
        assert_padding_untouched(&f);
        free(logits);
        free(want);
        free_batch(&b);
        free_table(&f);
    }
    omp_set_num_threads(saved);
    dl_backend_close(&be);
}

/* Two threads on halves of a batch that share no table row give the one-thread bits: the split covers every row
 * once, in order within each half. */
static void fused_sgd_threads_split_the_batch(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    int saved = omp_get_max_threads();
    dl_rng rng;
    dl_test_rng(&rng, 3);
    fused one = make_table(&rng, 40, 4, 4, 1, 0), two = one;
    two.t.data = dl_test_calloc(one.numel * sizeof(float));
    memcpy(two.t.data, one.t.data, one.numel * sizeof(float));
    batch lo = make_batch(&rng, 16, 6, 0, 20, 4), hi = make_batch(&rng, 16, 6, 20, 20, 4);
    batch b = make_batch(&rng, 32, 1, 0, 1, 4); /* sized, then filled with lo then hi */
    free_batch(&b);
    int n = lo.row_ptr[16] + hi.row_ptr[16];
    b.row_ptr = dl_test_calloc(33 * sizeof(int32_t));
    b.rows = dl_test_calloc((size_t)n * sizeof(int32_t));
    b.fields = dl_test_calloc((size_t)n * sizeof(int32_t));
    b.values = dl_test_calloc((size_t)n * sizeof(float));
    b.labels = dl_test_calloc(32 * sizeof(float));
    b.scale = dl_test_calloc(32 * sizeof(float));
    int at = 0;
    for (int part = 0; part < 2; part++) {
        const batch *p = part ? &hi : &lo;
        for (int i = 0; i < 16; i++) {
            b.labels[part * 16 + i] = p->labels[i];
            b.scale[part * 16 + i] = p->scale[i];
            for (int32_t e = p->row_ptr[i]; e < p->row_ptr[i + 1]; e++, at++) {
                b.rows[at] = p->rows[e];
                b.fields[at] = p->fields[e];
                b.values[at] = p->values[e];
            }
            b.row_ptr[part * 16 + i + 1] = at;
        }
    }
    b.r = (dl_click_rows){32, b.row_ptr, b.rows, b.fields, b.values, b.labels, b.scale};
    float l1[32], l2[32];
    omp_set_num_threads(1);
    assert_int_equal(dl_op_ffm_fused_sgd(&be, l1, &one.t, &b.r, 0.2f, 2e-5f), DL_OK);
    omp_set_num_threads(2);
    assert_int_equal(dl_op_ffm_fused_sgd(&be, l2, &two.t, &b.r, 0.2f, 2e-5f), DL_OK);
    /* Bits hold: the rows of the two halves touch disjoint table rows, so each row's update is the same sequence of
     * operations whichever thread runs it. */
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(one.t.data, two.t.data, one.numel * sizeof(float));
    omp_set_num_threads(saved);
    free(two.t.data);
    free_table(&one);
    free_batch(&b);
    free_batch(&lo);
    free_batch(&hi);
    dl_backend_close(&be);
}

static void fused_ops_reject_bad_arguments(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 4);
    fused f = make_table(&rng, 10, 3, 4, 1, 1);
    batch b = make_batch(&rng, 4, 4, 0, 10, 3);
    float logits[4];
    assert_int_equal(dl_op_ffm_fused_sgd(&be, logits, &f.t, &b.r, 0.0f, 0.0f), DL_ERR_INVALID);
    assert_int_equal(dl_op_ffm_fused_sgd(&be, logits, &f.t, &b.r, NAN, 0.0f), DL_ERR_INVALID);
    assert_int_equal(dl_op_ffm_fused_sgd(&be, logits, &f.t, &b.r, 0.1f, -1.0f), DL_ERR_INVALID);
    int32_t saved_row = b.rows[0], saved_field = b.fields[0];
    b.rows[0] = 10;
    assert_int_equal(dl_op_ffm_fused_forward(&be, logits, &f.t, &b.r), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "outside the table"));
    b.rows[0] = saved_row;
    b.fields[0] = 3;
    assert_int_equal(dl_op_ffm_fused_sgd(&be, logits, &f.t, &b.r, 0.1f, 0.0f), DL_ERR_INVALID);
    b.fields[0] = saved_field;
    dl_click_table bad = f.t;
    bad.kpad = 6;
    assert_int_equal(dl_op_ffm_fused_forward(&be, logits, &bad, &b.r), DL_ERR_INVALID);
    bad = f.t;
    bad.linear_offset = 4;
    assert_int_equal(dl_op_ffm_fused_forward(&be, logits, &bad, &b.r), DL_ERR_INVALID);
    bad = f.t;
    bad.row_floats = 3 * 2 * 4;
    assert_int_equal(dl_op_ffm_fused_forward(&be, logits, &bad, &b.r), DL_ERR_INVALID);
    dl_click_rows nolabels = b.r;
    nolabels.labels = NULL;
    assert_int_equal(dl_op_ffm_fused_sgd(&be, logits, &f.t, &nolabels, 0.1f, 0.0f), DL_ERR_INVALID);
    assert_int_equal(dl_op_ffm_fused_forward(&be, logits, &f.t, &b.r), DL_OK);
    free_batch(&b);
    free_table(&f);
    dl_backend_close(&be);
}

/* ---- the model ----------------------------------------------------------------------------------------------- */

static void feature_rows_are_identity_then_hashed(void **state) {
    (void)state;
    assert_int_equal(dl_click_feature_row(0, 100), 0);
    assert_int_equal(dl_click_feature_row(99, 100), 99);
    for (int64_t id = 100; id < 5000; id += 37) {
        int64_t r = dl_click_feature_row(id, 100);
        assert_true(r >= 0 && r < 100);
        assert_int_equal(r, dl_click_feature_row(id, 100));
    }
    assert_true(dl_click_feature_row(100, 100) != dl_click_feature_row(101, 100) ||
                dl_click_feature_row(102, 100) != dl_click_feature_row(103, 100));
    /* Wide ids (>= 2^31) arrive hashed (negative) and get hashed rows of their own: not the row of the real id
     * with the same 31 bits, which is where folding them used to put every one. With 10^6 rows a chance meeting
     * has probability 200/10^6 for these fixed ids, and they do not meet. */
    int same = 0;
    for (int64_t i = 0; i < 200; i++) {
        int32_t hashed = dl_feature_id_fold((1ll << 31) + i * 7919);
        assert_true(hashed < 0);
        int64_t r = dl_click_feature_row(hashed, 1000000);
        assert_true(r >= 0 && r < 1000000);
        same += r == dl_click_feature_row(-1 - (int64_t)hashed, 1000000);
    }
    assert_int_equal(same, 0);
}

static void ffm_init_is_libffm_uniform(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_config cfg;
    dl_test_click_config(&cfg, DL_MODEL_FFM, 3, 5, 97, false, 2e-5, DL_EMBEDDINGS_REPLICATED);
    cfg.optim.adagrad_init = 0.5;
    dl_model *a, *b;
    assert_int_equal(dl_config_create_model(&a, &cfg, &be, 8, 1), DL_OK);
    assert_int_equal(dl_config_create_model(&b, &cfg, &be, 8, 1), DL_OK);
    assert_string_equal(a->kind, "ffm");
    assert_true(a->self_updating);
    assert_null(a->shard_layout);
    assert_int_equal(a->init_params(a, 7), DL_OK);
    assert_int_equal(b->init_params(b, 7), DL_OK);
    size_t numel = dl_tensor_table_numel(a->params);
    /* Bits hold: the same initialisation code on the same seed. */
    assert_memory_equal(a->param_data, b->param_data, numel * sizeof(float));
    const dl_tensor *t = dl_tensor_table_find(a->params, "ffm.table");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 97);
    assert_int_equal(t->shape[1], 5 * 2 * 4); /* k 3 pads to 4; no linear terms */
    double sum = 0;
    size_t count = 0;
    for (size_t r = 0; r < 97; r++)
        for (int f = 0; f < 5; f++)
            for (int d = 0; d < 4; d++) {
                const float *blk = a->param_data + r * 40 + (size_t)f * 8;
                float w = blk[d], G = blk[4 + d];
                assert_true(G == 0.5f);
                if (d == 3) {
                    assert_true(w == 0.0f);
                    continue;
                }
                assert_true(w >= 0.0f && w < 1.0f / sqrtf(3.0f));
                sum += w;
                count++;
            }
    double mean = sum / (double)count, want = 0.5 / sqrt(3.0);
    if (fabs(mean - want) > 0.02)
        DL_TEST_FAIL("mean initial weight %g, want about %g", mean, want);
    assert_int_equal(b->init_params(b, 8), DL_OK);
    assert_true(memcmp(a->param_data, b->param_data, numel * sizeof(float)) != 0);
    dl_model_destroy(a);
    dl_model_destroy(b);
    dl_config_free(&cfg);
    dl_backend_close(&be);
}

/* train_batch = hash the ids, scale by 1/Σx², run the kernel: checked against the reference on the same table. */
static void ffm_train_batch_is_kernel_on_hashed_rows(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    dl_rng rng;
    dl_test_rng(&rng, 5);
    dl_config cfg;
    dl_test_click_config(&cfg, DL_MODEL_FFM, 4, 4, 50, false, 2e-5, DL_EMBEDDINGS_REPLICATED);
    cfg.model.linear_terms = true;
    dl_model *m;
    assert_int_equal(dl_config_create_model(&m, &cfg, &be, 6, 1), DL_OK);
    assert_int_equal(m->init_params(m, 3), DL_OK);
    size_t numel = dl_tensor_table_numel(m->params);
    const dl_tensor *bias = dl_tensor_table_find(m->params, "ffm.bias");
    assert_non_null(bias);
    fused f;
    memset(&f, 0, sizeof f);
    float fbias[2];
    f.bias = fbias;
    int rf = (int)dl_tensor_table_find(m->params, "ffm.table")->shape[1];
    f.t = (dl_click_table){NULL, 50, rf, 4, 4, 4, 4 * 2 * 4, f.bias};
    f.numel = (size_t)50 * (size_t)rf;
    f.ref = dl_test_calloc(f.numel * sizeof(double));
    for (size_t i = 0; i < f.numel; i++)
        f.ref[i] = m->param_data[i];
    f.ref_bias[0] = m->param_data[bias->offset];
    f.ref_bias[1] = m->param_data[bias->offset + 1];
    /* a batch of raw ids: some below 50 (identity), some far above (hashed) */
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, 6, 1), DL_OK);
    dl_click_batch *cb = &batch.clicks;
    assert_int_equal(dl_click_batch_reserve(cb, 64), DL_OK);
    int32_t rows[64];
    int n = 0;
    for (int b = 0; b < 6; b++) {
        int len = 2 + rand_int(&rng, 5);
        for (int e = 0; e < len; e++, n++) {
            cb->features[n] = rand_int(&rng, 2) ? rand_int(&rng, 50) : 1000000 + rand_int(&rng, 1000000);
            cb->fields[n] = rand_int(&rng, 4);
            cb->values[n] = 0.5f + dl_rng_uniform(&rng);
            rows[n] = (int32_t)dl_click_feature_row(cb->features[n], 50);
        }
        cb->row_ptr[b + 1] = n;
        cb->labels[b] = (float)rand_int(&rng, 2);
    }
    cb->num_rows = 6;
    cb->nnz = n;
    float scale[6];
    for (int b = 0; b < 6; b++) {
        float s = 0;
        for (int32_t e = cb->row_ptr[b]; e < cb->row_ptr[b + 1]; e++)
            s += cb->values[e] * cb->values[e];
        scale[b] = 1.0f / s;
    }
    dl_click_rows r = {6, cb->row_ptr, rows, cb->fields, cb->values, cb->labels, scale};
    double logits[6];
    ref_sgd(&f, &r, 0.2, 2e-5, logits);
    dl_step_context ctx = {NULL, 1, 0.2, NULL};
    dl_step_stats stats = {0};
    assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_OK);
    DL_ASSERT_REL(m->param_data, f.ref, f.numel, 1e-5);
    float got_bias[2] = {m->param_data[bias->offset], m->param_data[bias->offset + 1]};
    DL_ASSERT_REL(got_bias, f.ref_bias, 2, 1e-5);
    double want_loss = 0;
    for (int b = 0; b < 6; b++)
        want_loss += log1p(exp(cb->labels[b] > 0 ? -logits[b] : logits[b]));
    assert_true(stats.targets == 6 && stats.tokens == 6);
    if (fabs(stats.loss_sum - want_loss) > 1e-4 * want_loss)
        DL_TEST_FAIL("loss sum %.8g, reference %.8g", stats.loss_sum, want_loss);
    (void)numel;
    free(f.ref);
    dl_batch_free(&batch);
    dl_model_destroy(m);
    dl_config_free(&cfg);
    omp_set_num_threads(saved);
    dl_backend_close(&be);
}

static void ffm_reports_bad_data_and_settings(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_config cfg;
    dl_test_click_config(&cfg, DL_MODEL_FFM, 4, 3, 100, false, 2e-5, DL_EMBEDDINGS_REPLICATED);
    dl_model *m;
    assert_int_equal(dl_config_create_model(&m, &cfg, &be, 2, 1), DL_OK);
    assert_int_equal(m->init_params(m, 1), DL_OK);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, 2, 1), DL_OK);
    dl_click_batch *cb = &batch.clicks;
    assert_int_equal(dl_click_batch_reserve(cb, 4), DL_OK);
    int32_t fields[2] = {0, 3}, feats[2] = {5, 6};
    memcpy(cb->fields, fields, sizeof fields);
    memcpy(cb->features, feats, sizeof feats);
    cb->values[0] = cb->values[1] = 1.0f;
    cb->row_ptr[1] = 2;
    cb->labels[0] = 1;
    cb->num_rows = 1;
    cb->nnz = 2;
    dl_step_context ctx = {NULL, 1, 0.2, NULL};
    dl_step_stats stats = {0};
    assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "field 3"));
    assert_non_null(strstr(dl_error_message(), "model.num_fields"));
    cb->fields[1] = 1;
    cb->features[1] = -4; /* a hashed wide id (dl_feature_id_fold): trains its own hashed row */
    assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_OK);
    cb->features[1] = 6;
    cb->values[1] = INFINITY;
    assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_ERR_INVALID);
    cb->values[1] = 1.0f;
    assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_OK);
    dl_batch_free(&batch);
    dl_model_destroy(m);

    cfg.optim.name = DL_OPTIM_ADAMW;
    assert_int_equal(dl_config_create_model(&m, &cfg, &be, 2, 1), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "optim.name"));
    cfg.optim.name = DL_OPTIM_ADAGRAD;
    cfg.optim.adagrad_init = 0.0;
    assert_int_equal(dl_config_create_model(&m, &cfg, &be, 2, 1), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "adagrad_init"));
    cfg.optim.adagrad_init = 1.0;
    cfg.model.hash_buckets = (int64_t)1 << 32;
    assert_int_equal(dl_config_create_model(&m, &cfg, &be, 2, 1), DL_ERR_CONFIG);
    dl_config_free(&cfg);

    static const char text[] = "model:\n  kind: ffm\n  k: 0\n";
    dl_config bad;
    assert_int_equal(dl_config_load_string(&bad, text, sizeof text - 1, "k0.yaml"), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "model.k"));
    dl_config_free(&bad);
    dl_backend_close(&be);
}

/* dl_model_init_params(..., background = 1) fills the table on a thread of its own while training starts: every
 * row a batch uses is made before the kernel reads it, by whichever thread gets there first, from the same Philox
 * counters. So a run that trains at once on a table still being filled ends bit for bit where a run on a table
 * filled up front ends (one training thread, the same batches: the same arithmetic in the same order), and the
 * filled table equals init_params'. The batches use rows of the table's last quarter, which the filler (in row
 * order, about 25 MB) reaches last, so the training thread makes many rows on the spot (hundreds in a debug count
 * on a 2-core machine) and meets rows the filler is making. */
static void background_init_trains_like_upfront_init(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const int64_t buckets = 200000;
    dl_config cfg;
    dl_test_click_config(&cfg, DL_MODEL_FFM, 4, 4, buckets, true, 2e-5, DL_EMBEDDINGS_REPLICATED);
    dl_model *lazy, *upfront, *filled;
    assert_int_equal(dl_config_create_model(&lazy, &cfg, &be, 64, 1), DL_OK);
    assert_int_equal(dl_config_create_model(&upfront, &cfg, &be, 64, 1), DL_OK);
    assert_int_equal(dl_config_create_model(&filled, &cfg, &be, 64, 1), DL_OK);
    size_t numel = dl_tensor_table_numel(lazy->params);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_CLICKS, 64, 1), DL_OK);
    dl_click_batch *cb = &batch.clicks;
    assert_int_equal(dl_click_batch_reserve(cb, 64 * 4), DL_OK);
    assert_int_equal(dl_model_init_params(lazy, 11, 1), DL_OK);
    assert_int_equal(dl_model_init_params(upfront, 11, 0), DL_OK);
    for (int pass = 0; pass < 2; pass++) {
        dl_rng rng;
        dl_test_rng(&rng, 23);
        for (int step = 0; step < 20; step++) {
            int n = 0;
            for (int b = 0; b < 64; b++) {
                for (int f = 0; f < 4; f++, n++) {
                    /* from the table's last quarter, which the filler (in row order) reaches last */
                    cb->features[n] = (int32_t)(buckets - 1 - rand_int(&rng, (int)buckets / 4));
                    cb->fields[n] = f;
                    cb->values[n] = 1.0f;
                }
                cb->row_ptr[b + 1] = n;
                cb->labels[b] = (float)rand_int(&rng, 2);
            }
            cb->num_rows = 64;
            cb->nnz = n;
            dl_model *m = pass == 0 ? lazy : upfront;
            dl_step_context ctx = {NULL, step + 1, 0.2, NULL};
            dl_step_stats stats = {0};
            assert_int_equal(m->train_batch(m, &batch, &ctx, &stats), DL_OK);
        }
    }
    assert_int_equal(dl_model_params_ready(lazy), DL_OK);
    /* Bits hold: the same rows, made from the same counters before first use, trained in the same order. */
    assert_memory_equal(lazy->param_data, upfront->param_data, numel * sizeof(float));
    assert_int_equal(dl_model_init_params(filled, 11, 1), DL_OK);
    assert_int_equal(dl_model_params_ready(filled), DL_OK);
    assert_int_equal(dl_model_params_ready(filled), DL_OK); /* twice is harmless */
    assert_int_equal(upfront->init_params(upfront, 11), DL_OK);
    assert_memory_equal(filled->param_data, upfront->param_data, numel * sizeof(float));
    /* a second initialisation while the first still runs, then destroying mid-fill, must be clean (ASan/TSan) */
    assert_int_equal(dl_model_init_params(filled, 12, 1), DL_OK);
    assert_int_equal(dl_model_init_params(filled, 13, 1), DL_OK);
    dl_batch_free(&batch);
    dl_model_destroy(lazy);
    dl_model_destroy(upfront);
    dl_model_destroy(filled);
    dl_config_free(&cfg);
    omp_set_num_threads(saved);
    dl_backend_close(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fused_forward_matches_reference),
        cmocka_unit_test(fused_sgd_is_libffm_per_instance_adagrad),
        cmocka_unit_test(fused_sgd_threads_split_the_batch),
        cmocka_unit_test(fused_ops_reject_bad_arguments),
        cmocka_unit_test(feature_rows_are_identity_then_hashed),
        cmocka_unit_test(ffm_init_is_libffm_uniform),
        cmocka_unit_test(ffm_train_batch_is_kernel_on_hashed_rows),
        cmocka_unit_test(ffm_reports_bad_data_and_settings),
        cmocka_unit_test(background_init_trains_like_upfront_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
