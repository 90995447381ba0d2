/* test_ops_xent.c — dl_op_xent_forward/backward and dl_op_sequence_sum_* on the CPU backend: losses and lse against
 * a double log-sum-exp (up to a GPT-2 vocabulary of 50304), gradients by central differences of the double loss,
 * accumulation, the in-place fused classifier (dlogits == logits overwrites), ignored targets, bad targets and bad
 * cu_seqlens rejected before anything is written. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;

static int32_t *random_targets(dl_rng *rng, int N, int V) {
    int32_t *t = malloc((size_t)N * sizeof(int32_t));
    assert_non_null(t);
    for (int n = 0; n < N; n++)
        t[n] = (int32_t)dl_rng_below(rng, (uint64_t)V);
    return t;
}

static double ref_lse(const double *x, int V) {
    double mx = -INFINITY, s = 0.0;
    for (int v = 0; v < V; v++)
        mx = fmax(mx, x[v]);
    for (int v = 0; v < V; v++)
        s += exp(x[v] - mx);
    return mx + log(s);
}

/* Σ_n dlosses[n]·loss[n] in double. */
typedef struct xent_ctx {
    double *logits, *dlosses;
    const int32_t *targets;
    int N, V;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *x = p;
    double L = 0.0;
    for (int n = 0; n < x->N; n++) {
        int t = x->targets[n];
        if (t >= 0)
            L += x->dlosses[n] * (ref_lse(x->logits + (size_t)n * x->V, x->V) - x->logits[(size_t)n * x->V + t]);
    }
    return L;
}

static void forward_case(dl_rng *rng, int N, int V, float lo, float hi, int ignore_row) {
    size_t nl = (size_t)N * V;
    float *logits = dl_test_alloc_f(nl), *losses = dl_test_alloc_f(N), *lse = dl_test_alloc_f(N);
    dl_test_fill_uniform(rng, logits, nl, lo, hi);
    int32_t *targets = random_targets(rng, N, V);
    if (ignore_row >= 0)
        targets[ignore_row] = -1;
    targets[0] = ignore_row == 0 ? -1 : V - 1; /* the last class is a valid target */
    dl_test_poison(losses, N);
    dl_test_poison(lse, N);
    DL_EXPECT_OK(dl_op_xent_forward(&be, losses, lse, logits, targets, N, V));
    double *rl = dl_test_alloc_d(N), *rlse = dl_test_alloc_d(N), *row = dl_test_alloc_d(V);
    for (int n = 0; n < N; n++) {
        for (int v = 0; v < V; v++)
            row[v] = logits[(size_t)n * V + v];
        rlse[n] = ref_lse(row, V);
        rl[n] = targets[n] < 0 ? 0.0 : rlse[n] - row[targets[n]];
        if (fabs(lse[n] - rlse[n]) > 2e-6 * fmax(1.0, fabs(rlse[n])))
            DL_TEST_FAIL("N=%d V=%d row %d: lse %.9g, want %.9g", N, V, n, (double)lse[n], rlse[n]);
        double scale = fmax(1.0, fabs(rlse[n]) + (targets[n] < 0 ? 0.0 : fabs(row[targets[n]]))); /* lse − x_t */
        if (fabs(losses[n] - rl[n]) > 2e-6 * scale)
            DL_TEST_FAIL("N=%d V=%d row %d: loss %.9g, want %.9g", N, V, n, (double)losses[n], rl[n]);
        if (targets[n] < 0 && losses[n] != 0.0f)
            DL_TEST_FAIL("ignored row %d has loss %.9g", n, (double)losses[n]);
    }
    DL_ASSERT_REL(losses, rl, N, 1e-6);
    DL_ASSERT_REL(lse, rlse, N, 1e-6);
    free(logits), free(losses), free(lse), free(targets), free(rl), free(rlse), free(row);
}

static void forward_matches_double_log_sum_exp(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    forward_case(&rng, 1, 1, -1.0f, 1.0f, -1); /* one class: loss 0 */
    forward_case(&rng, 3, 257, -3.0f, 3.0f, 1);
    forward_case(&rng, 2, 50304, -10.0f, 10.0f, -1);
    forward_case(&rng, 5, 50304, -60.0f, 90.0f, 3); /* large logits: exp would overflow without the max */
    forward_case(&rng, 300, 257, -5.0f, 5.0f, 0);   /* above the single-thread cut-off */
}

static void backward_case(dl_rng *rng, int N, int V) {
    size_t nl = (size_t)N * V;
    float *logits = dl_test_alloc_f(nl), *losses = dl_test_alloc_f(N), *lse = dl_test_alloc_f(N), *dlosses = dl_test_alloc_f(N);
    dl_test_fill_uniform(rng, logits, nl, -4.0f, 4.0f);
    dl_test_fill_uniform(rng, dlosses, N, 0.5f, 2.0f);
    int32_t *targets = random_targets(rng, N, V);
    if (N > 1)
        targets[N / 2] = -1;
    DL_EXPECT_OK(dl_op_xent_forward(&be, losses, lse, logits, targets, N, V));

    xent_ctx x = {dl_test_alloc_d(nl), dl_test_alloc_d(N), targets, N, V};
    for (size_t i = 0; i < nl; i++)
        x.logits[i] = logits[i];
    for (int n = 0; n < N; n++)
        x.dlosses[n] = dlosses[n];
    double *grad = dl_test_alloc_d(nl);
    for (size_t i = 0; i < nl; i++) {
        double save = x.logits[i], h = 1e-5;
        x.logits[i] = save + h;
        double lp = xent_loss(&x);
        x.logits[i] = save - h;
        double lm = xent_loss(&x);
        x.logits[i] = save;
        grad[i] = (lp - lm) / (2.0 * h);
    }
    float *dlogits = dl_test_alloc_f(nl), *dlogits0 = dl_test_alloc_f(nl), *diff = dl_test_alloc_f(nl);
    double *want = dl_test_alloc_d(nl);
    dl_test_prefill_like(rng, dlogits, grad, nl);
    memcpy(dlogits0, dlogits, nl * sizeof(float));
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_xent_backward(&be, dlogits, logits, lse, targets, dlosses, N, V));
        for (size_t i = 0; i < nl; i++) {
            diff[i] = (float)((double)dlogits[i] - dlogits0[i]);
            want[i] = call * grad[i];
        }
        DL_ASSERT_REL(diff, want, nl, 1e-4);
    }
    if (N > 1) /* the ignored row received nothing */
        assert_memory_equal(dlogits + (size_t)(N / 2) * V, dlogits0 + (size_t)(N / 2) * V, V * sizeof(float));

    /* The fused classifier: logits become their own gradient, overwritten (ignored rows zeroed). */
    float *buf = dl_test_alloc_f(nl);
    memcpy(buf, logits, nl * sizeof(float));
    DL_EXPECT_OK(dl_op_xent_backward(&be, buf, buf, lse, targets, dlosses, N, V));
    DL_ASSERT_REL(buf, grad, nl, 1e-4);
    if (N > 1)
        for (int v = 0; v < V; v++)
            assert_true(buf[(size_t)(N / 2) * V + v] == 0.0f);
    free(logits), free(losses), free(lse), free(dlosses), free(targets), free(x.logits), free(x.dlosses);
    free(grad), free(dlogits), free(dlogits0), free(diff), free(want), free(buf);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    backward_case(&rng, 1, 1);
    backward_case(&rng, 1, 7);
    backward_case(&rng, 3, 257);
}

/* At the GPT-2 vocabulary, against the analytic gradient in double (central differences over 50k logits per row
 * would be slow and say nothing the small cases do not). */
static void backward_at_full_vocabulary(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 3);
    const int N = 3, V = 50304;
    size_t nl = (size_t)N * V;
    float *logits = dl_test_alloc_f(nl), *losses = dl_test_alloc_f(N), *lse = dl_test_alloc_f(N), *dl = dl_test_alloc_f(N), *d = dl_test_alloc_f(nl);
    dl_test_fill_uniform(&rng, logits, nl, -8.0f, 8.0f);
    dl_test_fill_uniform(&rng, dl, N, 0.5f, 2.0f);
    int32_t *targets = random_targets(&rng, N, V);
    DL_EXPECT_OK(dl_op_xent_forward(&be, losses, lse, logits, targets, N, V));
    double *ref = dl_test_alloc_d(nl), *row = dl_test_alloc_d(V);
    for (int n = 0; n < N; n++) {
        for (int v = 0; v < V; v++)
            row[v] = logits[(size_t)n * V + v];
        double l = ref_lse(row, V);
        for (int v = 0; v < V; v++)
            ref[(size_t)n * V + v] = dl[n] * (exp(row[v] - l) - (v == targets[n]));
    }
    memcpy(d, logits, nl * sizeof(float));
    DL_EXPECT_OK(dl_op_xent_backward(&be, d, d, lse, targets, dl, N, V));
    DL_ASSERT_REL(d, ref, nl, 1e-5);
    free(logits), free(losses), free(lse), free(dl), free(d), free(targets), free(ref), free(row);
}

static void results_are_identical_for_any_thread_count(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 4);
    const int N = 200, V = 1000;
    size_t nl = (size_t)N * V;
    float *logits = dl_test_alloc_f(nl), *dlosses = dl_test_alloc_f(N), *l1 = dl_test_alloc_f(N), *l3 = dl_test_alloc_f(N), *s1 = dl_test_alloc_f(N),
          *s3 = dl_test_alloc_f(N), *d1 = dl_test_alloc_f(nl), *d3 = dl_test_alloc_f(nl);
    dl_test_fill_uniform(&rng, logits, nl, -5.0f, 5.0f);
    dl_test_fill_uniform(&rng, dlosses, N, 0.5f, 1.5f);
    int32_t *targets = random_targets(&rng, N, V);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    DL_EXPECT_OK(dl_op_xent_forward(&be, l1, s1, logits, targets, N, V));
    memcpy(d1, logits, nl * sizeof(float));
    DL_EXPECT_OK(dl_op_xent_backward(&be, d1, d1, s1, targets, dlosses, N, V));
    omp_set_num_threads(3);
    DL_EXPECT_OK(dl_op_xent_forward(&be, l3, s3, logits, targets, N, V));
    memcpy(d3, logits, nl * sizeof(float));
    DL_EXPECT_OK(dl_op_xent_backward(&be, d3, d3, s3, targets, dlosses, N, V));
    omp_set_num_threads(saved);
    /* Bits hold: each row's max, sum and gradient are computed in one fixed order by one thread (no BLAS). */
    assert_memory_equal(l1, l3, N * sizeof(float));
    assert_memory_equal(s1, s3, N * sizeof(float));
    assert_memory_equal(d1, d3, nl * sizeof(float));
    free(logits), free(dlosses), free(l1), free(l3), free(s1), free(s3), free(d1), free(d3), free(targets);
}

static void bad_targets_fail_naming_row_and_value(void **state) {
    (void)state;
    enum { N = 4, V = 9 };
    float logits[N * V] = {0}, losses[N], lse[N], dl[N] = {1, 1, 1, 1}, d[N * V];
    int32_t targets[N] = {0, 3, 9, -1};
    for (int i = 0; i < N; i++)
        losses[i] = lse[i] = 5.0f;
    for (int i = 0; i < N * V; i++)
        d[i] = 5.0f;
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, losses, lse, logits, targets, N, V));
    assert_non_null(strstr(dl_error_message(), "targets[2] = 9"));
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, d, logits, lse, targets, dl, N, V));
    assert_non_null(strstr(dl_error_message(), "targets[2] = 9"));
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, logits, logits, lse, targets, dl, N, V)); /* in place, too */
    dl_error_clear();
    for (int i = 0; i < N; i++)
        assert_true(losses[i] == 5.0f && lse[i] == 5.0f);
    for (int i = 0; i < N * V; i++)
        assert_true(d[i] == 5.0f && logits[i] == 0.0f);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float x[64] = {0}, a[8] = {0}, b[8] = {0}, g[64] = {0};
    int32_t t[8] = {0};
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, NULL, b, x, t, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, a, NULL, x, t, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, a, b, NULL, t, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, a, b, x, NULL, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, a, b, x, t, 0, 8));
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, a, b, x, t, 2, -8));
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, a, b, x, t, INT_MAX, INT_MAX));
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, a, a, x, t, 2, 8)); /* lse is losses */
    DL_EXPECT_INVALID(dl_op_xent_forward(&be, x, b, x, t, 2, 8)); /* losses inside logits */
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, NULL, x, a, t, b, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, g, x, NULL, t, b, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, g, x, a, NULL, b, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, g, x, a, t, NULL, 2, 8));
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, x + 1, x, a, t, b, 2, 8)); /* partial overlap with logits */
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, g, x, g, t, b, 2, 8));     /* lse inside dlogits */
    DL_EXPECT_INVALID(dl_op_xent_backward(&be, g, x, a, t, b, 2, 0));
    dl_error_clear();
    for (int i = 0; i < 64; i++)
        assert_true(x[i] == 0.0f && g[i] == 0.0f);
    for (int i = 0; i < 8; i++)
        assert_true(a[i] == 0.0f && b[i] == 0.0f);
}

/* ---- sequence sums -------------------------------------------------------------------------------------------- */

static void sequence_sum_case(dl_rng *rng, const int32_t *cu, int num_seqs) {
    int total = cu[num_seqs];
    float *values = dl_test_alloc_f(total > 0 ? total : 1), *out = dl_test_alloc_f(num_seqs), *dout = dl_test_alloc_f(num_seqs);
    dl_test_fill_uniform(rng, values, total, -1.0f, 1.0f);
    dl_test_fill_uniform(rng, dout, num_seqs, -1.0f, 1.0f);
    dl_test_poison(out, num_seqs);
    DL_EXPECT_OK(dl_op_sequence_sum_forward(&be, out, values, cu, num_seqs));
    double *ref = dl_test_alloc_d(num_seqs);
    for (int s = 0; s < num_seqs; s++)
        for (int n = cu[s]; n < cu[s + 1]; n++)
            ref[s] += values[n];
    for (int s = 0; s < num_seqs; s++)
        if (fabs(out[s] - ref[s]) > 1e-6 * fmax(1.0, fabs(ref[s])))
            DL_TEST_FAIL("document %d: sum %.9g, want %.9g", s, (double)out[s], ref[s]);
    /* Backward: L = Σ_s dout[s]·Σ_{n∈s} values[n]; value n moves only its document's term. */
    double *grad = dl_test_alloc_d(total), *want = dl_test_alloc_d(total);
    for (int s = 0; s < num_seqs; s++)
        for (int n = cu[s]; n < cu[s + 1]; n++) {
            double h = 1e-5, v = values[n], rest = ref[s] - v;
            grad[n] = (dout[s] * (rest + v + h) - dout[s] * (rest + v - h)) / (2.0 * h);
        }
    float *dv = dl_test_alloc_f(total), *dv0 = dl_test_alloc_f(total), *diff = dl_test_alloc_f(total);
    dl_test_prefill_like(rng, dv, grad, total);
    memcpy(dv0, dv, total * sizeof(float));
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_sequence_sum_backward(&be, dv, dout, cu, num_seqs));
        for (int n = 0; n < total; n++) {
            diff[n] = (float)((double)dv[n] - dv0[n]);
            want[n] = call * grad[n];
        }
        DL_ASSERT_REL(diff, want, total, 1e-5);
    }
    free(values), free(out), free(dout), free(ref), free(grad), free(want), free(dv), free(dv0), free(diff);
}

static void sequence_sums_per_document(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 5);
    const int32_t one[] = {0, 1};
    const int32_t several[] = {0, 3, 3, 10, 11}; /* an empty document in the middle */
    sequence_sum_case(&rng, one, 1);
    sequence_sum_case(&rng, several, 4);
    int32_t many[301];
    many[0] = 0;
    for (int s = 0; s < 300; s++)
        many[s + 1] = many[s] + (int32_t)dl_rng_below(&rng, 200);
    sequence_sum_case(&rng, many, 300);
}

static void bad_cu_seqlens_are_invalid(void **state) {
    (void)state;
    float values[8] = {0}, out[3] = {7, 7, 7}, dout[3] = {1, 1, 1}, dv[8] = {0};
    const int32_t not_from_zero[] = {1, 3, 5, 8};
    const int32_t decreasing[] = {0, 5, 4, 8};
    DL_EXPECT_INVALID(dl_op_sequence_sum_forward(&be, out, values, not_from_zero, 3));
    assert_non_null(strstr(dl_error_message(), "cu_seqlens[0] = 1"));
    DL_EXPECT_INVALID(dl_op_sequence_sum_forward(&be, out, values, decreasing, 3));
    assert_non_null(strstr(dl_error_message(), "[2]"));
    DL_EXPECT_INVALID(dl_op_sequence_sum_backward(&be, dv, dout, decreasing, 3));
    DL_EXPECT_INVALID(dl_op_sequence_sum_forward(&be, NULL, values, decreasing, 3));
    DL_EXPECT_INVALID(dl_op_sequence_sum_forward(&be, out, NULL, decreasing, 3));
    DL_EXPECT_INVALID(dl_op_sequence_sum_forward(&be, out, values, NULL, 3));
    DL_EXPECT_INVALID(dl_op_sequence_sum_forward(&be, out, values, decreasing, 0));
    DL_EXPECT_INVALID(dl_op_sequence_sum_backward(&be, NULL, dout, decreasing, 3));
    DL_EXPECT_INVALID(dl_op_sequence_sum_backward(&be, dv, NULL, decreasing, 3));
    DL_EXPECT_INVALID(dl_op_sequence_sum_backward(&be, dv, dout, NULL, 3));
    DL_EXPECT_INVALID(dl_op_sequence_sum_backward(&be, dv, dout, decreasing, -1));
    dl_error_clear();
    for (int i = 0; i < 3; i++)
        assert_true(out[i] == 7.0f);
    for (int i = 0; i < 8; i++)
        assert_true(dv[i] == 0.0f);
}

static int setup(void **state) {
    (void)state;
    return dl_backend_open(&be, "cpu", 0) == DL_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    dl_backend_close(&be);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forward_matches_double_log_sum_exp),
        cmocka_unit_test(backward_matches_finite_differences_and_accumulates),
        cmocka_unit_test(backward_at_full_vocabulary),
        cmocka_unit_test(results_are_identical_for_any_thread_count),
        cmocka_unit_test(bad_targets_fail_naming_row_and_value),
        cmocka_unit_test(bad_arguments_are_invalid),
        cmocka_unit_test(sequence_sums_per_document),
        cmocka_unit_test(bad_cu_seqlens_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
