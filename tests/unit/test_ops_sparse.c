/* test_ops_sparse.c — embedding bags, FM, FFM and the AdaGrad row update on the CPU.
 *
 * Forwards are compared with double-precision references written here the slow, obvious way (FM and FFM as explicit
 * sums over pairs i < j, not Rendle's identity). Backwards are compared with central finite differences of those
 * references in double, on J = Σ_b c_b·out_b with random c_b, after accumulating onto non-zero gradients. Batches
 * are fresh random CSR rows each run with repeated table rows (across and within batch rows) and empty rows, since
 * those are where scatter-adds go wrong. Outputs are NaN-poisoned first to prove every element is written. The
 * scatter-add backwards must also give identical bits with one and two threads, and latent padding must neither
 * change results nor receive gradient. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"


static int rand_int(dl_rng *rng, int n) { return (int)dl_rng_below(rng, (uint64_t)n); }

/* A CSR batch: B rows; entries row_ptr[b]..row_ptr[b+1]-1. */
typedef struct batch {
    int B;
    int32_t *row_ptr, *rows, *fields;
    float *values, *scale;
} batch;

/* Random batch with up to max_n entries per row (some rows empty), rows in [0, num_rows), fields in
 * [0, num_fields); every few rows repeat a table row inside the row. */
static batch make_batch(dl_rng *rng, int B, int max_n, int num_rows, int num_fields) {
    batch bt = {.B = B};
    bt.row_ptr = dl_test_calloc((size_t)(B + 1) * sizeof(int32_t));
    bt.row_ptr[0] = 0;
    for (int b = 0; b < B; b++)
        bt.row_ptr[b + 1] = bt.row_ptr[b] + (b % 7 == 3 ? 0 : 1 + rand_int(rng, max_n));
    int n = bt.row_ptr[B];
    bt.rows = dl_test_calloc((size_t)n * sizeof(int32_t));
    bt.fields = dl_test_calloc((size_t)n * sizeof(int32_t));
    bt.values = dl_test_alloc_f((size_t)n);
    bt.scale = dl_test_alloc_f((size_t)B);
    for (int b = 0; b < B; b++) {
        for (int32_t j = bt.row_ptr[b]; j < bt.row_ptr[b + 1]; j++) {
            bt.rows[j] = rand_int(rng, num_rows);
            if (b % 3 == 0 && j > bt.row_ptr[b])
                bt.rows[j] = bt.rows[j - 1]; /* the same table row twice in one batch row */
            bt.fields[j] = rand_int(rng, num_fields);
            bt.values[j] = (dl_rng_uniform(rng) < 0.3f ? -1.0f : 1.0f) * (0.25f + dl_rng_uniform(rng));
        }
        bt.scale[b] = 0.2f + dl_rng_uniform(rng);
    }
    return bt;
}

static void free_batch(batch *bt) {
    free(bt->row_ptr);
    free(bt->rows);
    free(bt->fields);
    free(bt->values);
    free(bt->scale);
}

/* Random latent table [num_rows × vecs, kpad] with k real values per vector and zero padding. */
static float *make_latent(dl_rng *rng, size_t vectors, int k, int kpad) {
    float *v = dl_test_alloc_f(vectors * (size_t)kpad);
    for (size_t r = 0; r < vectors; r++)
        for (int f = 0; f < kpad; f++)
            v[r * (size_t)kpad + (size_t)f] = f < k ? dl_rng_uniform(rng) - 0.5f : 0.0f;
    return v;
}

/* Requires the padding lanes of every vector to be exactly zero. */
static void assert_padding_zero(const float *x, size_t vectors, int k, int kpad, const char *what) {
    for (size_t r = 0; r < vectors; r++)
        for (int f = k; f < kpad; f++)
            if (x[r * (size_t)kpad + (size_t)f] != 0.0f)
                DL_TEST_FAIL("%s: padding [%zu, %d] = %g, must stay 0", what, r, f,
                             (double)x[r * (size_t)kpad + (size_t)f]);
}

/* Central difference step for the double references (smooth, at most quadratic in each parameter). */
#define FD_H 1e-4

/* ---- embedding bag ---------------------------------------------------------------------------------------------- */

static void bag_reference(double *out, const double *table, const batch *bt, const float *weights, int dim) {
    for (int b = 0; b < bt->B; b++) {
        for (int c = 0; c < dim; c++)
            out[(size_t)b * dim + c] = 0.0;
        for (int32_t j = bt->row_ptr[b]; j < bt->row_ptr[b + 1]; j++)
            for (int c = 0; c < dim; c++)
                out[(size_t)b * dim + c] += (weights ? weights[j] : 1.0) * table[(size_t)bt->rows[j] * dim + c];
    }
}

static void embedding_bag_forward_matches_reference(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 1);
    const int num_rows = 40, dim = 19, B = 30;
    batch bt = make_batch(&rng, B, 9, num_rows, 1);
    float *table = dl_test_alloc_f((size_t)num_rows * dim), *out = dl_test_alloc_f((size_t)B * dim);
    dl_test_fill_uniform(&rng, table, (size_t)num_rows * dim, -1.0f, 1.0f);
    double *dt = dl_test_to_double(table, (size_t)num_rows * dim), *ref = dl_test_alloc_d((size_t)B * dim);
    for (int weighted = 0; weighted < 2; weighted++) {
        const float *w = weighted ? bt.values : NULL;
        dl_test_poison(out, (size_t)B * dim);
        assert_int_equal(dl_op_embedding_bag_forward(&be, out, table, bt.rows, w, bt.row_ptr, B, dim, num_rows), DL_OK);
        bag_reference(ref, dt, &bt, w, dim);
        DL_ASSERT_REL(out, ref, (size_t)B * dim, 1e-6);
    }
    free(table);
    free(out);
    free(dt);
    free(ref);
    free_batch(&bt);
    dl_backend_close(&be);
}

static void embedding_bag_backward_matches_finite_differences(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 2);
    const int num_rows = 12, dim = 5, B = 10;
    const size_t nt = (size_t)num_rows * dim, no = (size_t)B * dim;
    batch bt = make_batch(&rng, B, 6, num_rows, 1);
    float *table = dl_test_alloc_f(nt), *dout = dl_test_alloc_f(no), *dtable = dl_test_alloc_f(nt), *init = dl_test_alloc_f(nt);
    dl_test_fill_uniform(&rng, table, nt, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, dout, no, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, init, nt, -0.1f, 0.1f);
    memcpy(dtable, init, nt * sizeof(float));
    assert_int_equal(dl_op_embedding_bag_backward(&be, dtable, dout, bt.rows, bt.values, bt.row_ptr, B, dim, num_rows),
                     DL_OK);
    double *dt = dl_test_to_double(table, nt), *out = dl_test_alloc_d(no), *fd = dl_test_alloc_d(nt);
    float *got = dl_test_alloc_f(nt);
    for (size_t p = 0; p < nt; p++) {
        double saved = dt[p], j[2];
        for (int s = 0; s < 2; s++) {
            dt[p] = saved + (s ? -FD_H : FD_H);
            bag_reference(out, dt, &bt, bt.values, dim);
            j[s] = 0.0;
            for (size_t o = 0; o < no; o++)
                j[s] += (double)dout[o] * out[o];
        }
        dt[p] = saved;
        fd[p] = (j[0] - j[1]) / (2 * FD_H);
        got[p] = dtable[p] - init[p];
    }
    DL_ASSERT_REL(got, fd, nt, 1e-5);
    free(table);
    free(dout);
    free(dtable);
    free(init);
    free(dt);
    free(out);
    free(fd);
    free(got);
    free_batch(&bt);
    dl_backend_close(&be);
}

/* ---- FM --------------------------------------------------------------------------------------------------------- */

/* logit_b = bias + Σ w_i x_i + scale_b·Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j over the k real lanes; the explicit O(n²k) sum. */
static void fm_reference(double *logits, double *sum_vx, const double *linear, const double *latent, double bias,
                         const batch *bt, const float *scale, int k, int kpad) {
    for (int b = 0; b < bt->B; b++) {
        double lin = 0.0, pairs = 0.0;
        for (int32_t i = bt->row_ptr[b]; i < bt->row_ptr[b + 1]; i++) {
            const double *vi = latent + (size_t)bt->rows[i] * kpad;
            if (linear)
                lin += linear[bt->rows[i]] * bt->values[i];
            for (int32_t j = i + 1; j < bt->row_ptr[b + 1]; j++) {
                const double *vj = latent + (size_t)bt->rows[j] * kpad;
                double dot = 0.0;
                for (int f = 0; f < k; f++)
                    dot += vi[f] * vj[f];
                pairs += dot * bt->values[i] * bt->values[j];
            }
        }
        logits[b] = bias + lin + (scale ? scale[b] : 1.0) * pairs;
        if (sum_vx)
            for (int f = 0; f < kpad; f++) {
                double s = 0.0;
                for (int32_t i = bt->row_ptr[b]; i < bt->row_ptr[b + 1] && f < k; i++)
                    s += latent[(size_t)bt->rows[i] * kpad + f] * bt->values[i];
                sum_vx[(size_t)b * kpad + f] = s;
            }
    }
}

static void fm_forward_matches_pair_sum(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 3);
    const int num_rows = 50, B = 40;
    const int shapes[][2] = {{5, 8}, {4, 16}, {8, 8}, {3, 3}, {16, 16}, {20, 24}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int k = shapes[s][0], kpad = shapes[s][1];
        batch bt = make_batch(&rng, B, 12, num_rows, 1);
        float *latent = make_latent(&rng, num_rows, k, kpad), *linear = dl_test_alloc_f(num_rows);
        dl_test_fill_uniform(&rng, linear, num_rows, -1.0f, 1.0f);
        float bias = 0.3f;
        double *dl = dl_test_to_double(latent, (size_t)num_rows * kpad), *dlin = dl_test_to_double(linear, num_rows);
        float *logits = dl_test_alloc_f(B), *sum_vx = dl_test_alloc_f((size_t)B * kpad);
        double *ref = dl_test_alloc_d(B), *ref_sv = dl_test_alloc_d((size_t)B * kpad);
        for (int full = 0; full < 2; full++) {
            dl_test_poison(logits, B);
            dl_test_poison(sum_vx, (size_t)B * kpad);
            assert_int_equal(dl_op_fm_forward(&be, logits, sum_vx, full ? linear : NULL, latent, full ? &bias : NULL,
                                              bt.row_ptr, bt.rows, bt.values, full ? bt.scale : NULL, B, k, kpad,
                                              num_rows),
                             DL_OK);
            fm_reference(ref, ref_sv, full ? dlin : NULL, dl, full ? bias : 0.0, &bt, full ? bt.scale : NULL, k, kpad);
            DL_ASSERT_REL(logits, ref, B, 1e-5);
            DL_ASSERT_REL(sum_vx, ref_sv, (size_t)B * kpad, 1e-6);
            assert_padding_zero(sum_vx, B, k, kpad, "sum_vx");
        }
        free(latent);
        free(linear);
        free(dl);
        free(dlin);
        free(logits);
        free(sum_vx);
        free(ref);
        free(ref_sv);
        free_batch(&bt);
    }
    dl_backend_close(&be);
}

/* J = Σ_b c_b·logit_b with the double reference. */
static double fm_objective(const double *c, const double *linear, const double *latent, double bias, const batch *bt,
                           int k, int kpad) {
    double *logits = dl_test_alloc_d((size_t)bt->B);
    fm_reference(logits, NULL, linear, latent, bias, bt, bt->scale, k, kpad);
    double j = 0.0;
    for (int b = 0; b < bt->B; b++)
        j += c[b] * logits[b];
    free(logits);
    return j;
}

static double central_difference(double *x, double (*eval)(void *), void *ctx) {
    double saved = *x;
    *x = saved + FD_H;
    double plus = eval(ctx);
    *x = saved - FD_H;
    double minus = eval(ctx);
    *x = saved;
    return (plus - minus) / (2 * FD_H);
}

typedef struct fm_ctx {
    const double *c;
    double *linear, *latent, bias;
    const batch *bt;
    int k, kpad;
} fm_ctx;

static double fm_eval(void *p) {
    fm_ctx *x = p;
    return fm_objective(x->c, x->linear, x->latent, x->bias, x->bt, x->k, x->kpad);
}

static void fm_backward_matches_finite_differences(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 4);
    const int num_rows = 24, B = 16, k = 5, kpad = 8;
    const size_t nl = (size_t)num_rows * kpad;
    batch bt = make_batch(&rng, B, 8, num_rows, 1);
    float *latent = make_latent(&rng, num_rows, k, kpad), *linear = dl_test_alloc_f(num_rows), bias = -0.2f;
    dl_test_fill_uniform(&rng, linear, num_rows, -1.0f, 1.0f);
    float *logits = dl_test_alloc_f(B), *sum_vx = dl_test_alloc_f((size_t)B * kpad), *dlogits = dl_test_alloc_f(B);
    dl_test_fill_uniform(&rng, dlogits, B, -1.0f, 1.0f);
    assert_int_equal(dl_op_fm_forward(&be, logits, sum_vx, linear, latent, &bias, bt.row_ptr, bt.rows, bt.values,
                                      bt.scale, B, k, kpad, num_rows),
                     DL_OK);
    /* Accumulate onto non-zero gradients (zero padding). */
    float *dlatent = make_latent(&rng, num_rows, k, kpad), *dlinear = dl_test_alloc_f(num_rows), dbias = 0.5f;
    for (size_t i = 0; i < nl; i++)
        dlatent[i] *= 0.1f;
    dl_test_fill_uniform(&rng, dlinear, num_rows, -0.1f, 0.1f);
    float *init_latent = dl_test_alloc_f(nl), *init_linear = dl_test_alloc_f(num_rows);
    memcpy(init_latent, dlatent, nl * sizeof(float));
    memcpy(init_linear, dlinear, num_rows * sizeof(float));
    assert_int_equal(dl_op_fm_backward(&be, dlinear, dlatent, &dbias, dlogits, sum_vx, latent, bt.row_ptr, bt.rows,
                                       bt.values, bt.scale, B, k, kpad, num_rows),
                     DL_OK);
    assert_padding_zero(dlatent, num_rows, k, kpad, "dlatent");

    double *c = dl_test_to_double(dlogits, B);
    fm_ctx ctx = {.c = c,
                  .linear = dl_test_to_double(linear, num_rows),
                  .latent = dl_test_to_double(latent, nl),
                  .bias = bias,
                  .bt = &bt,
                  .k = k,
                  .kpad = kpad};
    float *got = dl_test_alloc_f(nl);
    double *fd = dl_test_alloc_d(nl);
    for (size_t i = 0; i < nl; i++) {
        got[i] = dlatent[i] - init_latent[i];
        fd[i] = (int)(i % kpad) < k ? central_difference(&ctx.latent[i], fm_eval, &ctx) : 0.0;
    }
    DL_ASSERT_REL(got, fd, nl, 1e-4);
    for (int r = 0; r < num_rows; r++) {
        got[r] = dlinear[r] - init_linear[r];
        fd[r] = central_difference(&ctx.linear[r], fm_eval, &ctx);
    }
    DL_ASSERT_REL(got, fd, num_rows, 1e-5);
    got[0] = dbias - 0.5f;
    fd[0] = central_difference(&ctx.bias, fm_eval, &ctx);
    DL_ASSERT_REL(got, fd, 1, 1e-5);

    free(latent);
    free(linear);
    free(logits);
    free(sum_vx);
    free(dlogits);
    free(dlatent);
    free(dlinear);
    free(init_latent);
    free(init_linear);
    free(c);
    free(ctx.linear);
    free(ctx.latent);
    free(got);
    free(fd);
    free_batch(&bt);
    dl_backend_close(&be);
}

/* ---- FFM -------------------------------------------------------------------------------------------------------- */

/* logit_b = scale_b·Σ_{i<j} ⟨v[row_i, field_j], v[row_j, field_i]⟩ x_i x_j over the k real lanes. */
static void ffm_reference(double *logits, const double *latent, const batch *bt, const float *scale, int F, int k,
                          int kpad) {
    for (int b = 0; b < bt->B; b++) {
        double pairs = 0.0;
        for (int32_t i = bt->row_ptr[b]; i < bt->row_ptr[b + 1]; i++)
            for (int32_t j = i + 1; j < bt->row_ptr[b + 1]; j++) {
                const double *a = latent + ((size_t)bt->rows[i] * F + (size_t)bt->fields[j]) * kpad;
                const double *c = latent + ((size_t)bt->rows[j] * F + (size_t)bt->fields[i]) * kpad;
                double dot = 0.0;
                for (int f = 0; f < k; f++)
                    dot += a[f] * c[f];
                pairs += dot * bt->values[i] * bt->values[j];
            }
        logits[b] = (scale ? scale[b] : 1.0) * pairs;
    }
}

static void ffm_forward_matches_pair_sum(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 5);
    const int num_rows = 60, B = 40, F = 6;
    const int shapes[][2] = {{4, 8}, {4, 16}, {8, 8}, {5, 5}, {16, 32}, {3, 12}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int k = shapes[s][0], kpad = shapes[s][1];
        const size_t nl = (size_t)num_rows * F * kpad;
        batch bt = make_batch(&rng, B, 14, num_rows, F);
        float *latent = make_latent(&rng, (size_t)num_rows * F, k, kpad), *logits = dl_test_alloc_f(B);
        double *dl = dl_test_to_double(latent, nl), *ref = dl_test_alloc_d(B);
        for (int scaled = 0; scaled < 2; scaled++) {
            const float *sc = scaled ? bt.scale : NULL;
            dl_test_poison(logits, B);
            assert_int_equal(dl_op_ffm_forward(&be, logits, latent, bt.row_ptr, bt.rows, bt.fields, bt.values, sc, B, F,
                                               k, kpad, num_rows),
                             DL_OK);
            ffm_reference(ref, dl, &bt, sc, F, k, kpad);
            DL_ASSERT_REL(logits, ref, B, 1e-5);
        }
        free(latent);
        free(logits);
        free(dl);
        free(ref);
        free_batch(&bt);
    }
    dl_backend_close(&be);
}

typedef struct ffm_ctx {
    const double *c;
    double *latent;
    const batch *bt;
    int F, k, kpad;
} ffm_ctx;

static double ffm_eval(void *p) {
    ffm_ctx *x = p;
    double *logits = dl_test_alloc_d((size_t)x->bt->B);
    ffm_reference(logits, x->latent, x->bt, x->bt->scale, x->F, x->k, x->kpad);
    double j = 0.0;
    for (int b = 0; b < x->bt->B; b++)
        j += x->c[b] * logits[b];
    free(logits);
    return j;
}

static void ffm_backward_matches_finite_differences(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 6);
    const int num_rows = 16, B = 12, F = 4, k = 3, kpad = 8;
    const size_t nv = (size_t)num_rows * F, nl = nv * kpad;
    batch bt = make_batch(&rng, B, 8, num_rows, F);
    float *latent = make_latent(&rng, nv, k, kpad), *dlogits = dl_test_alloc_f(B);
    dl_test_fill_uniform(&rng, dlogits, B, -1.0f, 1.0f);
    float *dlatent = make_latent(&rng, nv, k, kpad), *init = dl_test_alloc_f(nl);
    for (size_t i = 0; i < nl; i++)
        dlatent[i] *= 0.1f;
    memcpy(init, dlatent, nl * sizeof(float));
    assert_int_equal(dl_op_ffm_backward(&be, dlatent, dlogits, latent, bt.row_ptr, bt.rows, bt.fields, bt.values,
                                        bt.scale, B, F, k, kpad, num_rows),
                     DL_OK);
    assert_padding_zero(dlatent, nv, k, kpad, "dlatent");
    double *c = dl_test_to_double(dlogits, B);
    ffm_ctx ctx = {.c = c, .latent = dl_test_to_double(latent, nl), .bt = &bt, .F = F, .k = k, .kpad = kpad};
    float *got = dl_test_alloc_f(nl);
    double *fd = dl_test_alloc_d(nl);
    for (size_t i = 0; i < nl; i++) {
        got[i] = dlatent[i] - init[i];
        fd[i] = (int)(i % kpad) < k ? central_difference(&ctx.latent[i], ffm_eval, &ctx) : 0.0;
    }
    DL_ASSERT_REL(got, fd, nl, 1e-4);
    free(latent);
    free(dlogits);
    free(dlatent);
    free(init);
    free(c);
    free(ctx.latent);
    free(got);
    free(fd);
    free_batch(&bt);
    dl_backend_close(&be);
}

/* ---- padding and thread counts ---------------------------------------------------------------------------------- */

/* Copies a [vectors, from] table into [vectors, to] with zero padding. */
static float *repad(const float *x, size_t vectors, int from, int to) {
    float *y = dl_test_alloc_f(vectors * (size_t)to);
    for (size_t r = 0; r < vectors; r++)
        for (int f = 0; f < to; f++)
            y[r * (size_t)to + (size_t)f] = f < from ? x[r * (size_t)from + (size_t)f] : 0.0f;
    return y;
}

/* The same model stored with kpad = k, 8, 16 and 32 gives bit-identical logits and gradients on the real lanes. */
static void results_do_not_depend_on_kpad(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 7);
    const int num_rows = 30, B = 20, F = 5, k = 5;
    const int kpads[] = {5, 8, 16, 32};
    batch bt = make_batch(&rng, B, 10, num_rows, F);
    float *fm_base = make_latent(&rng, num_rows, k, k), *ffm_base = make_latent(&rng, (size_t)num_rows * F, k, k);
    float *dlogits = dl_test_alloc_f(B);
    dl_test_fill_uniform(&rng, dlogits, B, -1.0f, 1.0f);
    float fm_logit0[20], ffm_logit0[20];
    float *fm_grad0 = dl_test_alloc_f((size_t)num_rows * k), *ffm_grad0 = dl_test_alloc_f((size_t)num_rows * F * k);
    for (size_t t = 0; t < sizeof kpads / sizeof kpads[0]; t++) {
        const int kpad = kpads[t];
        float *fm_latent = repad(fm_base, num_rows, k, kpad), *ffm_latent = repad(ffm_base, (size_t)num_rows * F, k, kpad);
        float fm_logits[20], ffm_logits[20], *sum_vx = dl_test_alloc_f((size_t)B * kpad);
        float *fm_grad = calloc((size_t)num_rows * kpad, sizeof(float));
        float *ffm_grad = calloc((size_t)num_rows * F * kpad, sizeof(float));
        assert_non_null(fm_grad);
        assert_non_null(ffm_grad);
        assert_int_equal(dl_op_fm_forward(&be, fm_logits, sum_vx, NULL, fm_latent, NULL, bt.row_ptr, bt.rows,
                                          bt.values, bt.scale, B, k, kpad, num_rows),
                         DL_OK);
        assert_int_equal(dl_op_fm_backward(&be, NULL, fm_grad, NULL, dlogits, sum_vx, fm_latent, bt.row_ptr, bt.rows,
                                           bt.values, bt.scale, B, k, kpad, num_rows),
                         DL_OK);
        assert_int_equal(dl_op_ffm_forward(&be, ffm_logits, ffm_latent, bt.row_ptr, bt.rows, bt.fields, bt.values,
                                           bt.scale, B, F, k, kpad, num_rows),
                         DL_OK);
        assert_int_equal(dl_op_ffm_backward(&be, ffm_grad, dlogits, ffm_latent, bt.row_ptr, bt.rows, bt.fields,
                                            bt.values, bt.scale, B, F, k, kpad, num_rows),
                         DL_OK);
        assert_padding_zero(fm_grad, num_rows, k, kpad, "fm dlatent");
        assert_padding_zero(ffm_grad, (size_t)num_rows * F, k, kpad, "ffm dlatent");
        float *fm_g = repad(fm_grad, num_rows, kpad, k), *ffm_g = repad(ffm_grad, (size_t)num_rows * F, kpad, k);
        if (t == 0) {
            memcpy(fm_logit0, fm_logits, sizeof fm_logit0);
            memcpy(ffm_logit0, ffm_logits, sizeof ffm_logit0);
            memcpy(fm_grad0, fm_g, (size_t)num_rows * k * sizeof(float));
            memcpy(ffm_grad0, ffm_g, (size_t)num_rows * F * k * sizeof(float));
        } else {
            /* Bits hold: every kpad runs the same 8-lane accumulation (lane l sums features l, l+8, ...); padding
             * lanes hold exact zeros, and x + 0 = x, so the real lanes see the same roundings in the same order. */
            assert_memory_equal(fm_logits, fm_logit0, sizeof fm_logit0);
            assert_memory_equal(ffm_logits, ffm_logit0, sizeof ffm_logit0);
            assert_memory_equal(fm_g, fm_grad0, (size_t)num_rows * k * sizeof(float));
            assert_memory_equal(ffm_g, ffm_grad0, (size_t)num_rows * F * k * sizeof(float));
        }
        free(fm_latent);
        free(ffm_latent);
        free(sum_vx);
        free(fm_grad);
        free(ffm_grad);
        free(fm_g);
        free(ffm_g);
    }
    free(fm_base);
    free(ffm_base);
    free(dlogits);
    free(fm_grad0);
    free(ffm_grad0);
    free_batch(&bt);
    dl_backend_close(&be);
}

/* Criteo-like rows (18 features in 18 fields) over a small table, so batch rows collide on table rows all the time:
 * every op must give the same bits with one and two threads. */
static void scatter_adds_are_bit_identical_across_thread_counts(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 8);
    const int num_rows = 300, B = 256, F = 18, k = 4, kpad = 8, dim = 24;
    batch bt = make_batch(&rng, B, 18, num_rows, F);
    const size_t nv = (size_t)num_rows * F, n = (size_t)bt.row_ptr[B];
    float *ffm_latent = make_latent(&rng, nv, k, kpad), *fm_latent = make_latent(&rng, num_rows, k, kpad);
    float *table = dl_test_alloc_f((size_t)num_rows * dim), *dout = dl_test_alloc_f((size_t)B * dim), *dlogits = dl_test_alloc_f(B);
    float *linear = dl_test_alloc_f(num_rows);
    dl_test_fill_uniform(&rng, table, (size_t)num_rows * dim, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, dout, (size_t)B * dim, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, dlogits, B, -1.0f, 1.0f);
    dl_test_fill_uniform(&rng, linear, num_rows, -1.0f, 1.0f);
    float *out[2], *logits[2], *fm_logits[2], *sum_vx[2], *dffm[2], *dfm[2], *dlin[2], *dtab[2], dbias[2] = {0, 0};
    int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        out[t] = dl_test_alloc_f((size_t)B * dim);
        logits[t] = dl_test_alloc_f(B);
        fm_logits[t] = dl_test_alloc_f(B);
        sum_vx[t] = dl_test_alloc_f((size_t)B * kpad);
        dffm[t] = calloc(nv * kpad, sizeof(float));
        dfm[t] = calloc((size_t)num_rows * kpad, sizeof(float));
        dlin[t] = calloc((size_t)num_rows, sizeof(float));
        dtab[t] = calloc((size_t)num_rows * dim, sizeof(float));
        assert_true(dffm[t] && dfm[t] && dlin[t] && dtab[t]);
        assert_int_equal(dl_op_embedding_bag_forward(&be, out[t], table, bt.rows, bt.values, bt.row_ptr, B, dim,
                                                     num_rows),
                         DL_OK);
        assert_int_equal(dl_op_embedding_bag_backward(&be, dtab[t], dout, bt.rows, bt.values, bt.row_ptr, B, dim,
                                                      num_rows),
                         DL_OK);
        assert_int_equal(dl_op_ffm_forward(&be, logits[t], ffm_latent, bt.row_ptr, bt.rows, bt.fields, bt.values,
                                           bt.scale, B, F, k, kpad, num_rows),
                         DL_OK);
        assert_int_equal(dl_op_ffm_backward(&be, dffm[t], dlogits, ffm_latent, bt.row_ptr, bt.rows, bt.fields,
                                            bt.values, bt.scale, B, F, k, kpad, num_rows),
                         DL_OK);
        assert_int_equal(dl_op_fm_forward(&be, fm_logits[t], sum_vx[t], linear, fm_latent, NULL, bt.row_ptr, bt.rows,
                                          bt.values, bt.scale, B, k, kpad, num_rows),
                         DL_OK);
        assert_int_equal(dl_op_fm_backward(&be, dlin[t], dfm[t], &dbias[t], dlogits, sum_vx[t], fm_latent,
                                           bt.row_ptr, bt.rows, bt.values, bt.scale, B, k, kpad, num_rows),
                         DL_OK);
    }
    omp_set_num_threads(saved);
    assert_true(n > 0);
    /* Bits hold: these ops (our code, no BLAS) fix every sum's order by the batch's entry order and give each table
     * row to one thread, so the thread count changes who computes an element, never how. */
    assert_memory_equal(out[0], out[1], (size_t)B * dim * sizeof(float));
    assert_memory_equal(dtab[0], dtab[1], (size_t)num_rows * dim * sizeof(float));
    assert_memory_equal(logits[0], logits[1], (size_t)B * sizeof(float));
    assert_memory_equal(dffm[0], dffm[1], nv * kpad * sizeof(float));
    assert_memory_equal(fm_logits[0], fm_logits[1], (size_t)B * sizeof(float));
    assert_memory_equal(dfm[0], dfm[1], (size_t)num_rows * kpad * sizeof(float));
    assert_memory_equal(dlin[0], dlin[1], (size_t)num_rows * sizeof(float));
    assert_memory_equal(&dbias[0], &dbias[1], sizeof(float));
    for (int t = 0; t < 2; t++) {
        free(out[t]);
        free(logits[t]);
        free(fm_logits[t]);
        free(sum_vx[t]);
        free(dffm[t]);
        free(dfm[t]);
        free(dlin[t]);
        free(dtab[t]);
    }
    free(ffm_latent);
    free(fm_latent);
    free(table);
    free(dout);
    free(dlogits);
    free(linear);
    free_batch(&bt);
    dl_backend_close(&be);
}

/* Tables past a few MB take the prefetching path of the FFM backward; spreading a small table's rows over a large one
 * must change no bit of the logits or of the gradients. */
static void ffm_large_table_matches_small_table(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 11);
    const int small = 64, spread = 256, large = small * spread, B = 64, F = 18, k = 4, kpad = 8;
    const size_t stride = (size_t)F * kpad;
    batch bt = make_batch(&rng, B, 18, small, F);
    const size_t n = (size_t)bt.row_ptr[B];
    float *lat_s = make_latent(&rng, (size_t)small * F, k, kpad), *dlogits = dl_test_alloc_f(B);
    dl_test_fill_uniform(&rng, dlogits, B, -1.0f, 1.0f);
    float *lat_l = calloc((size_t)large * stride, sizeof(float)), *grad_l = calloc((size_t)large * stride, sizeof(float));
    float *grad_s = calloc((size_t)small * stride, sizeof(float));
    int32_t *rows_l = dl_test_calloc(n * sizeof(int32_t));
    assert_true(lat_l && grad_l && grad_s);
    for (int r = 0; r < small; r++)
        memcpy(lat_l + (size_t)r * spread * stride, lat_s + (size_t)r * stride, stride * sizeof(float));
    for (size_t e = 0; e < n; e++)
        rows_l[e] = bt.rows[e] * spread;
    float logits_s[64], logits_l[64];
    assert_int_equal(dl_op_ffm_forward(&be, logits_s, lat_s, bt.row_ptr, bt.rows, bt.fields, bt.values, bt.scale, B, F,
                                       k, kpad, small),
                     DL_OK);
    assert_int_equal(dl_op_ffm_forward(&be, logits_l, lat_l, bt.row_ptr, rows_l, bt.fields, bt.values, bt.scale, B, F,
                                       k, kpad, large),
                     DL_OK);
    /* Bits hold: the large table differs only by prefetch hints, which change no arithmetic. */
    assert_memory_equal(logits_s, logits_l, sizeof logits_s);
    assert_int_equal(dl_op_ffm_backward(&be, grad_s, dlogits, lat_s, bt.row_ptr, bt.rows, bt.fields, bt.values,
                                        bt.scale, B, F, k, kpad, small),
                     DL_OK);
    assert_int_equal(dl_op_ffm_backward(&be, grad_l, dlogits, lat_l, bt.row_ptr, rows_l, bt.fields, bt.values,
                                        bt.scale, B, F, k, kpad, large),
                     DL_OK);
    for (int r = 0; r < large; r++) {
        const float *got = grad_l + (size_t)r * stride;
        if (r % spread == 0) {
            assert_memory_equal(got, grad_s + (size_t)(r / spread) * stride, stride * sizeof(float));
        } else {
            for (size_t f = 0; f < stride; f++)
                if (got[f] != 0.0f)
                    DL_TEST_FAIL("row %d was never used but has gradient %g at %zu", r, (double)got[f], f);
        }
    }
    free(lat_s);
    free(dlogits);
    free(lat_l);
    free(grad_l);
    free(grad_s);
    free(rows_l);
    free_batch(&bt);
    dl_backend_close(&be);
}

/* ---- AdaGrad on rows -------------------------------------------------------------------------------------------- */

static void adagrad_rows_update_matches_reference(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 9);
    const int num_rows = 50, row_floats = 37, touched = 20;
    const size_t nt = (size_t)num_rows * row_floats;
    float *table = dl_test_alloc_f(nt), *accum = dl_test_alloc_f(nt), *grads = dl_test_alloc_f((size_t)touched * row_floats);
    dl_test_fill_uniform(&rng, table, nt, -1.0f, 1.0f);
    for (size_t i = 0; i < nt; i++)
        accum[i] = 1.0f;
    double *rt = dl_test_to_double(table, nt), *ra = dl_test_to_double(accum, nt), *t0 = dl_test_to_double(table, nt);
    /* 20 distinct rows in shuffled order: a random permutation's first 20. */
    int32_t perm[50], rows[20];
    for (int i = 0; i < num_rows; i++)
        perm[i] = i;
    for (int i = num_rows - 1; i > 0; i--) {
        int j = rand_int(&rng, i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    memcpy(rows, perm, sizeof rows);
    const float lr = 0.1f, wd = 1e-2f;
    for (int step = 0; step < 4; step++) {
        dl_test_fill_uniform(&rng, grads, (size_t)touched * row_floats, -2.0f, 2.0f);
        assert_int_equal(dl_op_adagrad_rows_update(&be, table, accum, grads, rows, touched, row_floats, lr, wd), DL_OK);
        for (int i = 0; i < touched; i++)
            for (int f = 0; f < row_floats; f++) {
                size_t at = (size_t)rows[i] * row_floats + (size_t)f;
                double g = grads[(size_t)i * row_floats + (size_t)f] + wd * rt[at];
                ra[at] += g * g;
                rt[at] -= lr * g / sqrt(ra[at]);
            }
    }
    DL_ASSERT_REL(accum, ra, nt, 1e-6);
    float *delta = dl_test_alloc_f(nt);
    double *rdelta = dl_test_alloc_d(nt);
    for (size_t i = 0; i < nt; i++) {
        delta[i] = (float)((double)table[i] - t0[i]);
        rdelta[i] = rt[i] - t0[i];
    }
    DL_ASSERT_REL(delta, rdelta, nt, 1e-5);
    /* Untouched rows are untouched, bit for bit. */
    for (int i = touched; i < num_rows; i++)
        for (int f = 0; f < row_floats; f++) {
            size_t at = (size_t)perm[i] * row_floats + (size_t)f;
            if (table[at] != (float)t0[at] || accum[at] != 1.0f)
                DL_TEST_FAIL("row %d was not listed but changed at %d", perm[i], f);
        }
    free(table);
    free(accum);
    free(grads);
    free(rt);
    free(ra);
    free(t0);
    free(delta);
    free(rdelta);
    dl_backend_close(&be);
}

/* Every row of a table listed in shuffled order, big enough for the threads to split the table: one and two threads
 * must give the same bits (each row is updated once, by its owner). */
static void adagrad_rows_update_is_bit_identical_across_thread_counts(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, 10);
    const int num_rows = 4001, row_floats = 16;
    const size_t nt = (size_t)num_rows * row_floats;
    int32_t *rows = dl_test_calloc((size_t)num_rows * sizeof(int32_t));
    for (int i = 0; i < num_rows; i++)
        rows[i] = i;
    for (int i = num_rows - 1; i > 0; i--) {
        int j = rand_int(&rng, i + 1);
        int32_t tmp = rows[i];
        rows[i] = rows[j];
        rows[j] = tmp;
    }
    float *grads = dl_test_alloc_f(nt), *table[2], *accum[2];
    dl_test_fill_uniform(&rng, grads, nt, -1.0f, 1.0f);
    int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        table[t] = dl_test_alloc_f(nt);
        accum[t] = dl_test_alloc_f(nt);
        for (size_t i = 0; i < nt; i++) {
            table[t][i] = (float)(i % 17) * 0.125f - 1.0f;
            accum[t][i] = 1.0f;
        }
        omp_set_num_threads(t + 1);
        assert_int_equal(dl_op_adagrad_rows_update(&be, table[t], accum[t], grads, rows, num_rows, row_floats, 0.1f,
                                                   1e-3f),
                         DL_OK);
    }
    omp_set_num_threads(saved);
    /* Bits hold: every row is updated once, by one thread, with the same elementwise formula. */
    assert_memory_equal(table[0], table[1], nt * sizeof(float));
    assert_memory_equal(accum[0], accum[1], nt * sizeof(float));
    for (int t = 0; t < 2; t++) {
        free(table[t]);
        free(accum[t]);
    }
    free(grads);
    free(rows);
    dl_backend_close(&be);
}

/* ---- argument checks -------------------------------------------------------------------------------------------- */

#define EXPECT_FAIL(call, needle)                                                                              \
    do {                                                                                                       \
        dl_error_clear();                                                                                      \
        dl_status s_ = (call);                                                                                 \
        if (s_ != DL_ERR_INVALID || strstr(dl_error_message(), (needle)) == NULL)                              \
            DL_TEST_FAIL("%s: got status %d and message '%s', want DL_ERR_INVALID mentioning '%s'", #call,     \
                         (int)s_, dl_error_message(), (needle));                                              \
    } while (0)

static void arguments_are_checked(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    const int F = 3, k = 4, kpad = 8;
    int32_t row_ptr[3] = {0, 2, 4}, rows[4] = {1, 2, 3, 4}, fields[4] = {0, 1, 2, 0};
    float values[4] = {1, 1, 1, 1}, latent[20 * 3 * 8] = {0}, logits[2], sum_vx[16], dl[2] = {1, 1};
    float dlatent[20 * 3 * 8] = {0}, out[2 * 8];
    /* A good call first, so the failures below are the arguments'. */
    assert_int_equal(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, fields, values, NULL, 2, F, k, kpad, 20),
                     DL_OK);

    rows[3] = 99;
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, fields, values, NULL, 2, F, k, kpad, 20),
                "rows[3] = 99 (batch row 1) is outside the table [0, 20)");
    EXPECT_FAIL(dl_op_fm_backward(&be, NULL, dlatent, NULL, dl, sum_vx, latent, row_ptr, rows, values, NULL, 2, k, kpad,
                                  20),
                "rows[3] = 99");
    EXPECT_FAIL(dl_op_embedding_bag_forward(&be, out, latent, rows, NULL, row_ptr, 2, 8, 20), "rows[3] = 99");
    rows[3] = -1;
    EXPECT_FAIL(dl_op_fm_forward(&be, logits, sum_vx, NULL, latent, NULL, row_ptr, rows, values, NULL, 2, k, kpad, 20),
                "rows[3] = -1 (batch row 1)");
    rows[3] = 4;
    fields[2] = 3;
    EXPECT_FAIL(dl_op_ffm_backward(&be, dlatent, dl, latent, row_ptr, rows, fields, values, NULL, 2, F, k, kpad, 20),
                "fields[2] = 3 (batch row 1) is outside [0, 3)");
    fields[2] = 2;
    row_ptr[0] = 1;
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, fields, values, NULL, 2, F, k, kpad, 20),
                "row_ptr[0] = 1, must be 0");
    row_ptr[0] = 0;
    row_ptr[1] = 5;
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, fields, values, NULL, 2, F, k, kpad, 20),
                "row_ptr[2] = 4 is less than row_ptr[1] = 5");
    EXPECT_FAIL(dl_op_embedding_bag_backward(&be, dlatent, out, rows, NULL, row_ptr, 2, 8, 20),
                "offsets[2] = 4 is less than offsets[1] = 5");
    row_ptr[1] = 2;
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, fields, values, NULL, 2, F, 9, kpad, 20),
                "need 1 <= k <= kpad, got k = 9, kpad = 8");
    EXPECT_FAIL(dl_op_fm_forward(&be, logits, sum_vx, NULL, latent, NULL, row_ptr, rows, values, NULL, 2, 0, kpad, 20),
                "got k = 0");
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, fields, values, NULL, -2, F, k, kpad, 20),
                "B = -2 is negative");
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, fields, values, NULL, 2, 0, k, kpad, 20),
                "num_fields = 0");
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, NULL, row_ptr, rows, fields, values, NULL, 2, F, k, kpad, 20),
                "latent is NULL");
    EXPECT_FAIL(dl_op_ffm_forward(&be, logits, latent, row_ptr, rows, NULL, values, NULL, 2, F, k, kpad, 20),
                "fields is NULL");
    EXPECT_FAIL(dl_op_fm_forward(&be, logits, NULL, NULL, latent, NULL, row_ptr, rows, values, NULL, 2, k, kpad, 20),
                "sum_vx is NULL");
    EXPECT_FAIL(dl_op_fm_backward(&be, NULL, dlatent, NULL, NULL, sum_vx, latent, row_ptr, rows, values, NULL, 2, k,
                                  kpad, 20),
                "dlogits is NULL");
    EXPECT_FAIL(dl_op_embedding_bag_forward(&be, out, latent, rows, NULL, row_ptr, 2, 0, 20), "dim = 0");
    EXPECT_FAIL(dl_op_embedding_bag_forward(&be, out, latent, rows, NULL, NULL, 2, 8, 20), "offsets is NULL");
    float acc[8] = {1, 1, 1, 1, 1, 1, 1, 1}, g[8] = {0};
    int32_t bad_rows[2] = {0, -3};
    EXPECT_FAIL(dl_op_adagrad_rows_update(&be, latent, acc, g, bad_rows, 2, 4, 0.1f, 0.0f), "rows[1] = -3 is negative");
    EXPECT_FAIL(dl_op_adagrad_rows_update(&be, latent, acc, g, bad_rows, 1, 0, 0.1f, 0.0f), "row_floats = 0");
    EXPECT_FAIL(dl_op_adagrad_rows_update(&be, latent, acc, g, bad_rows, 1, 4, -0.1f, 0.0f), "lr = -0.1");
    dl_backend_close(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(embedding_bag_forward_matches_reference),
        cmocka_unit_test(embedding_bag_backward_matches_finite_differences),
        cmocka_unit_test(fm_forward_matches_pair_sum),
        cmocka_unit_test(fm_backward_matches_finite_differences),
        cmocka_unit_test(ffm_forward_matches_pair_sum),
        cmocka_unit_test(ffm_backward_matches_finite_differences),
        cmocka_unit_test(results_do_not_depend_on_kpad),
        cmocka_unit_test(scatter_adds_are_bit_identical_across_thread_counts),
        cmocka_unit_test(ffm_large_table_matches_small_table),
        cmocka_unit_test(adagrad_rows_update_matches_reference),
        cmocka_unit_test(adagrad_rows_update_is_bit_identical_across_thread_counts),
        cmocka_unit_test(arguments_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
