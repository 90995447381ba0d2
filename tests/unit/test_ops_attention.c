/* test_ops_attention.c — the flash attention op against a plain masked attention in double.
 *
 * The reference forms every score of a query row (its own document, causal), a full softmax and the exact gradients;
 * the op must match it on layouts that stress the tiling (documents of one token, exactly one tile, several tiles with
 * a partial last one, empty documents, many short ones), for several head counts and head sizes including odd ones
 * and D = 128. The reference backward is itself checked by finite differences. Beyond accuracy: no token sees
 * another document (NaN in one document leaves the others bit-identical), every output is written, the backward
 * accumulates, results are bit-identical between runs and between thread counts (which switch the backward between
 * its single-pass and two-pass schedules), and bad arguments fail with a message naming the problem. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

typedef struct layout {
    int num_seqs, N, H, D;
    int32_t *cu;
} layout;

static layout make_layout(const int *lengths, int num_seqs, int H, int D) {
    layout L = {num_seqs, 0, H, D, calloc((size_t)num_seqs + 1, sizeof(int32_t))};
    for (int s = 0; s < num_seqs; s++)
        L.cu[s + 1] = L.cu[s] + lengths[s];
    L.N = L.cu[num_seqs];
    return L;
}

static size_t qkv_len(const layout *L) { return (size_t)L->N * 3 * L->H * L->D; }
static size_t out_len(const layout *L) { return (size_t)L->N * L->H * L->D; }
static size_t lse_len(const layout *L) { return (size_t)L->N * L->H; }

/* ---- the double-precision reference ---------------------------------------------------------------------------- */

/* Softmax probabilities p[0..n-a] of query n over keys a..n of its document, head h; returns the log-sum-exp. */
static double ref_probs(double *p, const double *qkv, const layout *L, int a, int n, int h) {
    const size_t C = (size_t)L->H * L->D, ld3 = 3 * C;
    const double scale = 1.0 / sqrt((double)L->D);
    const double *q = qkv + (size_t)n * ld3 + (size_t)h * L->D;
    double mx = -INFINITY;
    for (int m = a; m <= n; m++) {
        const double *k = qkv + (size_t)m * ld3 + C + (size_t)h * L->D;
        double s = 0;
        for (int d = 0; d < L->D; d++)
            s += q[d] * k[d];
        p[m - a] = s * scale;
        mx = fmax(mx, p[m - a]);
    }
    double sum = 0;
    for (int m = a; m <= n; m++) {
        p[m - a] = exp(p[m - a] - mx);
        sum += p[m - a];
    }
    for (int m = a; m <= n; m++)
        p[m - a] /= sum;
    return mx + log(sum);
}

static void ref_forward(double *out, double *lse, const double *qkv, const layout *L) {
    const size_t C = (size_t)L->H * L->D, ld3 = 3 * C;
    double *p = dl_test_alloc_d((size_t)L->N);
    for (int s = 0; s < L->num_seqs; s++)
        for (int n = L->cu[s]; n < L->cu[s + 1]; n++)
            for (int h = 0; h < L->H; h++) {
                const int a = L->cu[s];
                lse[(size_t)n * L->H + h] = ref_probs(p, qkv, L, a, n, h);
                double *o = out + (size_t)n * C + (size_t)h * L->D;
                for (int d = 0; d < L->D; d++)
                    o[d] = 0;
                for (int m = a; m <= n; m++) {
                    const double *v = qkv + (size_t)m * ld3 + 2 * C + (size_t)h * L->D;
                    for (int d = 0; d < L->D; d++)
                        o[d] += p[m - a] * v[d];
                }
            }
    free(p);
}

/* dqkv += the exact gradient of Σ out·dout. */
static void ref_backward(double *dqkv, const double *dout, const double *qkv, const layout *L) {
    const size_t C = (size_t)L->H * L->D, ld3 = 3 * C;
    const double scale = 1.0 / sqrt((double)L->D);
    double *p = dl_test_alloc_d((size_t)L->N), *dp = dl_test_alloc_d((size_t)L->N);
    for (int s = 0; s < L->num_seqs; s++)
        for (int n = L->cu[s]; n < L->cu[s + 1]; n++)
            for (int h = 0; h < L->H; h++) {
                const int a = L->cu[s];
                const size_t hd = (size_t)h * L->D;
                ref_probs(p, qkv, L, a, n, h);
                const double *go = dout + (size_t)n * C + hd;
                double delta = 0;
                for (int m = a; m <= n; m++) {
                    const double *v = qkv + (size_t)m * ld3 + 2 * C + hd;
                    double t = 0;
                    for (int d = 0; d < L->D; d++)
                        t += go[d] * v[d];
                    dp[m - a] = t;
                    delta += p[m - a] * t;
                }
                const double *q = qkv + (size_t)n * ld3 + hd;
                double *dq = dqkv + (size_t)n * ld3 + hd;
                for (int m = a; m <= n; m++) {
                    const double ds = p[m - a] * (dp[m - a] - delta);
                    const double *k = qkv + (size_t)m * ld3 + C + hd;
                    double *dk = dqkv + (size_t)m * ld3 + C + hd, *dv = dk + C;
                    for (int d = 0; d < L->D; d++) {
                        dq[d] += scale * ds * k[d];
                        dk[d] += scale * ds * q[d];
                        dv[d] += p[m - a] * go[d];
                    }
                }
            }
    free(p);
    free(dp);
}

/* ---- running the op -------------------------------------------------------------------------------------------- */

static dl_backend cpu(void) {
    dl_backend be;
    dl_status s = dl_backend_open(&be, "cpu", 0);
    if (s != DL_OK)
        DL_TEST_FAIL("dl_backend_open(cpu): %s", dl_error_message());
    return be;
}

static void forward(const dl_backend *be, float *out, float *lse, const float *qkv, const layout *L) {
    dl_status s = dl_op_attention_forward(be, out, lse, qkv, L->cu, L->num_seqs, L->N, L->H, L->D);
    if (s != DL_OK)
        DL_TEST_FAIL("forward N=%d H=%d D=%d: %s", L->N, L->H, L->D, dl_error_message());
}

static void backward(const dl_backend *be, float *dqkv, const float *dout, const float *qkv, const float *out,
                     const float *lse, const layout *L) {
    dl_status s = dl_op_attention_backward(be, dqkv, dout, qkv, out, lse, L->cu, L->num_seqs, L->N, L->H, L->D);
    if (s != DL_OK)
        DL_TEST_FAIL("backward N=%d H=%d D=%d: %s", L->N, L->H, L->D, dl_error_message());
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what) {
    if (memcmp(a, b, n * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < n && memcmp(a + i, b + i, sizeof(float)) == 0)
            i++;
        DL_TEST_FAIL("%s differs at [%zu]: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
    }
}

/* Checks forward and backward of one layout against the reference, with 1 and 8 threads (the single-pass and, unless
 * the layout has many documents or heads, the two-pass backward), which must agree bit for bit. amplitude scales
 * the inputs: larger values give peaked softmax rows that exercise the online rescaling. */
static void check_layout(const int *lengths, int num_seqs, int H, int D, float amplitude, uint64_t stream) {
    layout L = make_layout(lengths, num_seqs, H, D);
    dl_backend be = cpu();
    dl_rng rng;
    dl_test_rng(&rng, stream);
    const size_t nqkv = qkv_len(&L), nout = out_len(&L), nlse = lse_len(&L);
    float *qkv = dl_test_alloc_f(nqkv), *dout = dl_test_alloc_f(nout);
    dl_test_fill_uniform(&rng, qkv, nqkv, -amplitude, amplitude);
    dl_test_fill_uniform(&rng, dout, nout, -1.0f, 1.0f);

    double *qkv_d = dl_test_to_double(qkv, nqkv), *dout_d = dl_test_to_double(dout, nout);
    double *out_ref = dl_test_alloc_d(nout), *lse_ref = dl_test_alloc_d(nlse), *dqkv_ref = dl_test_alloc_d(nqkv);
    ref_forward(out_ref, lse_ref, qkv_d, &L);
    ref_backward(dqkv_ref, dout_d, qkv_d, &L);

    float *out[2], *lse[2], *dqkv[2];
    const int threads[2] = {1, 8};
    const int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(threads[t]);
        out[t] = dl_test_alloc_f(nout);
        lse[t] = dl_test_alloc_f(nlse);
        dqkv[t] = dl_test_alloc_f(nqkv);
        dl_test_poison(out[t], nout);
        dl_test_poison(lse[t], nlse);
        forward(&be, out[t], lse[t], qkv, &L);
        DL_ASSERT_REL(out[t], out_ref, nout, 1e-5);
        DL_ASSERT_REL(lse[t], lse_ref, nlse, 1e-5);
        memset(dqkv[t], 0, nqkv * sizeof(float));
        backward(&be, dqkv[t], dout, qkv, out[t], lse[t], &L);
        DL_ASSERT_REL(dqkv[t], dqkv_ref, nqkv, 1e-4);
    }
    omp_set_num_threads(saved);
    /* Bits hold by design (attention.c, our code, no BLAS): both backward schemes add the same per-tile products
     * in the same key-tile order with the same FMA chains; threads only choose which item runs where. */
    assert_same_bits(out[0], out[1], nout, "out, 1 vs 8 threads");
    assert_same_bits(lse[0], lse[1], nlse, "lse, 1 vs 8 threads");
    assert_same_bits(dqkv[0], dqkv[1], nqkv, "dqkv, 1 vs 8 threads");

    for (int t = 0; t < 2; t++) {
        free(out[t]);
        free(lse[t]);
        free(dqkv[t]);
    }
    free(qkv);
    free(dout);
    free(qkv_d);
    free(dout_d);
    free(out_ref);
    free(lse_ref);
    free(dqkv_ref);
    free(L.cu);
    dl_backend_close(&be);
}

/* ---- accuracy on chosen layouts -------------------------------------------------------------------------------- */

static void single_token_document(void **state) {
    (void)state;
    const int len[] = {1};
    check_layout(len, 1, 2, 24, 2.0f, 1);
}

static void document_of_exactly_one_tile(void **state) {
    (void)state;
    const int len[] = {64};
    check_layout(len, 1, 3, 64, 2.0f, 2);
}

static void document_of_several_tiles_d128(void **state) {
    (void)state;
    const int len[] = {200};
    check_layout(len, 1, 2, 128, 2.0f, 3);
}

static void single_document_fills_batch_with_peaked_scores(void **state) {
    (void)state;
    const int len[] = {257};
    check_layout(len, 1, 1, 32, 4.0f, 4);
}

static void mixed_lengths_with_empty_documents(void **state) {
    (void)state;
    const int len[] = {1, 64, 0, 130, 7, 0, 65, 63};
    check_layout(len, 8, 2, 24, 2.0f, 5);
}

static void many_short_documents_odd_d(void **state) {
    (void)state;
    int len[80];
    dl_rng rng;
    dl_test_rng(&rng, 6);
    for (int s = 0; s < 80; s++)
        len[s] = 1 + (int)(dl_rng_u32(&rng) % 12);
    check_layout(len, 80, 4, 17, 2.0f, 7);
}

static void head_size_one_and_boundary_tiles(void **state) {
    (void)state;
    const int len[] = {70, 3, 128};
    check_layout(len, 3, 3, 1, 2.0f, 8);
}

static void random_layouts(void **state) {
    (void)state;
    const int Ds[] = {8, 24, 33, 64, 80, 128};
    dl_rng rng;
    dl_test_rng(&rng, 9);
    for (int trial = 0; trial < 10; trial++) {
        int len[6];
        int num_seqs = 1 + (int)(dl_rng_u32(&rng) % 6);
        for (int s = 0; s < num_seqs; s++)
            len[s] = (int)(dl_rng_u32(&rng) % 200);
        len[0] += 1; /* N > 0 */
        int H = 1 + (int)(dl_rng_u32(&rng) % 4);
        int D = Ds[dl_rng_u32(&rng) % 6];
        check_layout(len, num_seqs, H, D, 1.0f + 2.0f * dl_rng_uniform(&rng), 100 + (uint64_t)trial);
    }
}

/* ---- the reference backward by finite differences -------------------------------------------------------------- */

/* L(qkv) = Σ out·G; its gradient by central differences in double must match the reference backward, and the op's
 * backward (fp32) must match both. */
static void backward_matches_finite_differences(void **state) {
    (void)state;
    const int len[] = {3, 2};
    layout L = make_layout(len, 2, 2, 3);
    dl_backend be = cpu();
    dl_rng rng;
    dl_test_rng(&rng, 10);
    const size_t nqkv = qkv_len(&L), nout = out_len(&L), nlse = lse_len(&L);
    float *qkv = dl_test_alloc_f(nqkv), *g = dl_test_alloc_f(nout);
    dl_test_fill_uniform(&rng, qkv, nqkv, -1.5f, 1.5f);
    dl_test_fill_uniform(&rng, g, nout, -1.0f, 1.0f);
    double *x = dl_test_to_double(qkv, nqkv), *gd = dl_test_to_double(g, nout);
    double *o = dl_test_alloc_d(nout), *l = dl_test_alloc_d(nlse), *fd = dl_test_alloc_d(nqkv), *analytic = dl_test_alloc_d(nqkv);
    const double h = 1e-4;
    for (size_t i = 0; i < nqkv; i++) {
        double keep = x[i], f[2];
        for (int side = 0; side < 2; side++) {
            x[i] = keep + (side ? -h : h);
            ref_forward(o, l, x, &L);
            f[side] = 0;
            for (size_t j = 0; j < nout; j++)
                f[side] += o[j] * gd[j];
        }
        x[i] = keep;
        fd[i] = (f[0] - f[1]) / (2 * h);
    }
    ref_backward(analytic, gd, x, &L);
    double err = 0, ref = 0;
    for (size_t i = 0; i < nqkv; i++) {
        err += (analytic[i] - fd[i]) * (analytic[i] - fd[i]);
        ref += fd[i] * fd[i];
    }
    if (!(sqrt(err) <= 1e-7 * sqrt(ref)))
        DL_TEST_FAIL("reference backward vs finite differences: relative error %.3g", sqrt(err / ref));

    float *out = dl_test_alloc_f(nout), *lse = dl_test_alloc_f(nlse), *dqkv = dl_test_alloc_f(nqkv);
    forward(&be, out, lse, qkv, &L);
    memset(dqkv, 0, nqkv * sizeof(float));
    backward(&be, dqkv, g, qkv, out, lse, &L);
    DL_ASSERT_REL(dqkv, fd, nqkv, 1e-4);

    free(qkv);
    free(g);
    free(x);
    free(gd);
    free(o);
    free(l);
    free(fd);
    free(analytic);
    free(out);
    free(lse);
    free(dqkv);
    free(L.cu);
    dl_backend_close(&be);
}

/* ---- isolation, writes, accumulation, determinism --------------------------------------------------------------- */

/* Rows [a, b) of a [N, width] array. */
static void assert_rows_same(const float *x, const float *y, int a, int b, size_t width, const char *what) {
    assert_same_bits(x + (size_t)a * width, y + (size_t)a * width, (size_t)(b - a) * width, what);
}

static void no_token_attends_across_documents(void **state) {
    (void)state;
    const int len[] = {70, 90, 40};
    layout L = make_layout(len, 3, 2, 16);
    dl_backend be = cpu();
    dl_rng rng;
    dl_test_rng(&rng, 11);
    const size_t nqkv = qkv_len(&L), nout = out_len(&L), nlse = lse_len(&L);
    const size_t w3 = 3 * (size_t)L.H * L.D, w = (size_t)L.H * L.D;
    float *qkv = dl_test_alloc_f(nqkv), *dout = dl_test_alloc_f(nout);
    dl_test_fill_uniform(&rng, qkv, nqkv, -2.0f, 2.0f);
    dl_test_fill_uniform(&rng, dout, nout, -1.0f, 1.0f);
    float *out0 = dl_test_alloc_f(nout), *lse0 = dl_test_alloc_f(nlse), *dq0 = dl_test_alloc_f(nqkv);
    float *out1 = dl_test_alloc_f(nout), *lse1 = dl_test_alloc_f(nlse), *dq1 = dl_test_alloc_f(nqkv);
    forward(&be, out0, lse0, qkv, &L);
    memset(dq0, 0, nqkv * sizeof(float));
    backward(&be, dq0, dout, qkv, out0, lse0, &L);

    /* Document 1 perturbed, then poisoned with NaN: documents 0 and 2 must not change by a bit. */
    for (int variant = 0; variant < 2; variant++) {
        float *q2 = dl_test_alloc_f(nqkv), *d2 = dl_test_alloc_f(nout);
        memcpy(q2, qkv, nqkv * sizeof(float));
        memcpy(d2, dout, nout * sizeof(float));
        for (size_t i = (size_t)L.cu[1] * w3; i < (size_t)L.cu[2] * w3; i++)
            q2[i] = variant ? NAN : q2[i] + 0.5f * dl_rng_uniform(&rng);
        for (size_t i = (size_t)L.cu[1] * w; i < (size_t)L.cu[2] * w; i++)
            d2[i] = variant ? NAN : d2[i] - 0.5f;
        forward(&be, out1, lse1, q2, &L);
        memset(dq1, 0, nqkv * sizeof(float));
        backward(&be, dq1, d2, q2, out1, lse1, &L);
        for (int s = 0; s < 3; s += 2) {
            /* Bits hold: a document's rows are computed from that document alone, by the same code on the same
             * lengths, so another document's values cannot reach them. */
            assert_rows_same(out1, out0, L.cu[s], L.cu[s + 1], w, "out outside the perturbed document");
            assert_rows_same(lse1, lse0, L.cu[s], L.cu[s + 1], (size_t)L.H, "lse outside the perturbed document");
            assert_rows_same(dq1, dq0, L.cu[s], L.cu[s + 1], w3, "dqkv outside the perturbed document");
        }
        /* and the perturbed document did change */
        if (memcmp(out1 + (size_t)L.cu[1] * w, out0 + (size_t)L.cu[1] * w, (size_t)len[1] * w * sizeof(float)) == 0)
            DL_TEST_FAIL("perturbing document 1 left its own output unchanged");
        free(q2);
        free(d2);
    }
    free(qkv);
    free(dout);
    free(out0);
    free(lse0);
    free(dq0);
    free(out1);
    free(lse1);
    free(dq1);
    free(L.cu);
    dl_backend_close(&be);
}

static void backward_accumulates(void **state) {
    (void)state;
    const int len[] = {100, 37};
    layout L = make_layout(len, 2, 2, 48);
    dl_backend be = cpu();
    dl_rng rng;
    dl_test_rng(&rng, 12);
    const size_t nqkv = qkv_len(&L), nout = out_len(&L), nlse = lse_len(&L);
    float *qkv = dl_test_alloc_f(nqkv), *dout = dl_test_alloc_f(nout), *out = dl_test_alloc_f(nout), *lse = dl_test_alloc_f(nlse);
    float *once = dl_test_alloc_f(nqkv), *twice = dl_test_alloc_f(nqkv), *init = dl_test_alloc_f(nqkv), *acc = dl_test_alloc_f(nqkv);
    dl_test_fill_uniform(&rng, qkv, nqkv, -2.0f, 2.0f);
    dl_test_fill_uniform(&rng, dout, nout, -1.0f, 1.0f);
    forward(&be, out, lse, qkv, &L);

    memset(once, 0, nqkv * sizeof(float));
    backward(&be, once, dout, qkv, out, lse, &L);
    memset(twice, 0, nqkv * sizeof(float));
    backward(&be, twice, dout, qkv, out, lse, &L);
    backward(&be, twice, dout, qkv, out, lse, &L);
    /* dq receives one addition per key tile, so a second call rounds differently: twice, not bit-exactly */
    double *doubled = dl_test_alloc_d(nqkv);
    for (size_t i = 0; i < nqkv; i++)
        doubled[i] = 2.0 * (double)once[i];
    DL_ASSERT_REL(twice, doubled, nqkv, 1e-6);
    free(doubled);

    /* onto existing gradients: acc = init + gradient */
    dl_test_fill_uniform(&rng, init, nqkv, -0.1f, 0.1f);
    memcpy(acc, init, nqkv * sizeof(float));
    backward(&be, acc, dout, qkv, out, lse, &L);
    double *want = dl_test_alloc_d(nqkv);
    for (size_t i = 0; i < nqkv; i++)
        want[i] = (double)init[i] + (double)once[i];
    DL_ASSERT_REL(acc, want, nqkv, 1e-6);

    free(want);
    free(qkv);
    free(dout);
    free(out);
    free(lse);
    free(once);
    free(twice);
    free(init);
    free(acc);
    free(L.cu);
    dl_backend_close(&be);
}

static void runs_are_bit_identical(void **state) {
    (void)state;
    const int len[] = {150, 1, 64, 200};
    layout L = make_layout(len, 4, 3, 64);
    dl_backend be = cpu();
    dl_rng rng;
    dl_test_rng(&rng, 13);
    const size_t nqkv = qkv_len(&L), nout = out_len(&L), nlse = lse_len(&L);
    float *qkv = dl_test_alloc_f(nqkv), *dout = dl_test_alloc_f(nout);
    dl_test_fill_uniform(&rng, qkv, nqkv, -2.0f, 2.0f);
    dl_test_fill_uniform(&rng, dout, nout, -1.0f, 1.0f);
    /* two runs at the default thread count, then 1, 2 and 8 threads (8 takes the two-pass backward): all the same
     * bits */
    const int threads[] = {0, 0, 1, 2, 8};
    const int saved = omp_get_max_threads();
    float *out[5], *lse[5], *dqkv[5];
    for (int r = 0; r < 5; r++) {
        omp_set_num_threads(threads[r] ? threads[r] : saved);
        out[r] = dl_test_alloc_f(nout);
        lse[r] = dl_test_alloc_f(nlse);
        dqkv[r] = dl_test_alloc_f(nqkv);
        forward(&be, out[r], lse[r], qkv, &L);
        memset(dqkv[r], 0, nqkv * sizeof(float));
        backward(&be, dqkv[r], dout, qkv, out[r], lse[r], &L);
        if (r > 0) {
            /* Bits hold: see check_layout (same arithmetic for any thread count and either backward scheme). */
            assert_same_bits(out[r], out[0], nout, "out");
            assert_same_bits(lse[r], lse[0], nlse, "lse");
            assert_same_bits(dqkv[r], dqkv[0], nqkv, "dqkv");
        }
    }
    omp_set_num_threads(saved);
    for (int r = 0; r < 5; r++) {
        free(out[r]);
        free(lse[r]);
        free(dqkv[r]);
    }
    free(qkv);
    free(dout);
    free(L.cu);
    dl_backend_close(&be);
}

/* ---- argument validation --------------------------------------------------------------------------------------- */

static void expect_invalid(dl_status s, const char *needle) {
    if (s != DL_ERR_INVALID)
        DL_TEST_FAIL("expected DL_ERR_INVALID mentioning '%s', got status %d (%s)", needle, (int)s,
                     dl_error_message());
    if (strstr(dl_error_message(), needle) == NULL)
        DL_TEST_FAIL("error message '%s' does not mention '%s'", dl_error_message(), needle);
    dl_error_clear();
}

static void bad_arguments_are_rejected(void **state) {
    (void)state;
    dl_backend be = cpu();
    enum { N = 10, H = 2, D = 8 };
    float qkv[N * 3 * H * D], out[N * H * D], lse[N * H], dout[N * H * D], dqkv[N * 3 * H * D];
    memset(qkv, 0, sizeof qkv);
    memset(out, 0, sizeof out);
    memset(lse, 0, sizeof lse);
    memset(dout, 0, sizeof dout);
    memset(dqkv, 0, sizeof dqkv);
    const int32_t cu[] = {0, 4, 10};
    const int32_t starts_late[] = {1, 4, 10}, decreasing[] = {0, 6, 3, 10}, short_end[] = {0, 4, 9};

    expect_invalid(dl_op_attention_forward(&be, NULL, lse, qkv, cu, 2, N, H, D), "out is NULL");
    expect_invalid(dl_op_attention_forward(&be, out, NULL, qkv, cu, 2, N, H, D), "lse is NULL");
    expect_invalid(dl_op_attention_forward(&be, out, lse, NULL, cu, 2, N, H, D), "qkv is NULL");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, NULL, 2, N, H, D), "cu_seqlens is NULL");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, cu, 2, 0, H, D), "N = 0");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, cu, 2, N, 0, D), "H = 0");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, cu, 2, N, H, -3), "D = -3");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, cu, 2, N, H, 129), "D = 129 exceeds the maximum 128");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, cu, 0, N, H, D), "num_seqs = 0");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, starts_late, 2, N, H, D), "cu_seqlens[0] = 1");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, decreasing, 3, N, H, D),
                   "cu_seqlens[2] = 3 is below cu_seqlens[1] = 6");
    expect_invalid(dl_op_attention_forward(&be, out, lse, qkv, short_end, 2, N, H, D),
                   "cu_seqlens[2] = 9 (num_seqs = 2) must equal N = 10");
    expect_invalid(dl_op_attention_forward(&be, qkv + 8, lse, qkv, cu, 2, N, H, D), "out overlaps qkv");
    expect_invalid(dl_op_attention_forward(&be, out, out + 4, qkv, cu, 2, N, H, D), "out overlaps lse");

    expect_invalid(dl_op_attention_backward(&be, NULL, dout, qkv, out, lse, cu, 2, N, H, D), "dqkv is NULL");
    expect_invalid(dl_op_attention_backward(&be, dqkv, NULL, qkv, out, lse, cu, 2, N, H, D), "dout is NULL");
    expect_invalid(dl_op_attention_backward(&be, dqkv, dout, qkv, out, NULL, cu, 2, N, H, D), "lse is NULL");
    expect_invalid(dl_op_attention_backward(&be, dqkv, dout, qkv, out, lse, decreasing, 3, N, H, D),
                   "cu_seqlens[2] = 3 is below");
    expect_invalid(dl_op_attention_backward(&be, dqkv, dout, qkv, out, lse, cu, 2, N, H, 200), "D = 200");
    expect_invalid(dl_op_attention_backward(&be, qkv, dout, qkv, out, lse, cu, 2, N, H, D), "overlaps qkv");

    /* a closed backend, and a backend without the attention family */
    dl_backend closed;
    memset(&closed, 0, sizeof closed);
    expect_invalid(dl_op_attention_forward(&closed, out, lse, qkv, cu, 2, N, H, D), "not open");
    static const dl_backend_ops no_attention = {0};
    dl_backend bare = be;
    bare.ops = &no_attention;
    dl_status s = dl_op_attention_backward(&bare, dqkv, dout, qkv, out, lse, cu, 2, N, H, D);
    if (s != DL_ERR_UNSUPPORTED || strstr(dl_error_message(), "attention.backward") == NULL)
        DL_TEST_FAIL("missing attention family: status %d, message '%s'", (int)s, dl_error_message());
    dl_error_clear();

    /* nothing was written by the rejected calls */
    for (size_t i = 0; i < sizeof dqkv / sizeof dqkv[0]; i++)
        if (dqkv[i] != 0.0f)
            DL_TEST_FAIL("a rejected backward wrote dqkv[%zu]", i);
    dl_backend_close(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_token_document),
        cmocka_unit_test(document_of_exactly_one_tile),
        cmocka_unit_test(document_of_several_tiles_d128),
        cmocka_unit_test(single_document_fills_batch_with_peaked_scores),
        cmocka_unit_test(mixed_lengths_with_empty_documents),
        cmocka_unit_test(many_short_documents_odd_d),
        cmocka_unit_test(head_size_one_and_boundary_tiles),
        cmocka_unit_test(random_layouts),
        cmocka_unit_test(backward_matches_finite_differences),
        cmocka_unit_test(no_token_attends_across_documents),
        cmocka_unit_test(backward_accumulates),
        cmocka_unit_test(runs_are_bit_identical),
        cmocka_unit_test(bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
