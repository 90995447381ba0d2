/* test_ops_embedding.c — dl_op_embedding_forward/backward on the CPU backend: lookups against a double reference,
 * gradients by central differences (with repeated token ids, the case a scatter-add gets wrong), accumulation,
 * bit-identical results for any thread count, and ids out of range rejected before anything is written. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;

static float *random_f(dl_rng *rng, size_t n) {
    float *p = dl_test_alloc_f(n);
    dl_test_fill_uniform(rng, p, n, -1.0f, 1.0f);
    return p;
}

static int32_t *random_ids(dl_rng *rng, int N, int limit) {
    int32_t *ids = malloc((size_t)N * sizeof(int32_t));
    assert_non_null(ids);
    for (int n = 0; n < N; n++)
        ids[n] = (int32_t)dl_rng_below(rng, (uint64_t)limit);
    return ids;
}

typedef struct emb_ctx {
    double *wte, *wpe, *dout, *out;
    const int32_t *tokens, *positions;
    int N, C;
} emb_ctx;

static void ref_forward(emb_ctx *e) {
    for (int n = 0; n < e->N; n++)
        for (int c = 0; c < e->C; c++)
            e->out[(size_t)n * e->C + c] = e->wte[(size_t)e->tokens[n] * e->C + c] +
                                           (e->positions ? e->wpe[(size_t)e->positions[n] * e->C + c] : 0.0);
}

static double emb_loss(void *p) {
    emb_ctx *e = p;
    ref_forward(e);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)e->N * e->C; i++)
        L += e->dout[i] * e->out[i];
    return L;
}

static void fd_grad(double (*loss)(void *), void *ctx, double *x, size_t n, double *grad) {
    for (size_t i = 0; i < n; i++) {
        double save = x[i], h = 1e-5 * fmax(1.0, fabs(save));
        x[i] = save + h;
        double lp = loss(ctx);
        x[i] = save - h;
        double lm = loss(ctx);
        x[i] = save;
        grad[i] = (lp - lm) / (2.0 * h);
    }
}

static void check_added(const float *g, const float *g0, const double *ref, size_t n, double k, double tol,
                        const char *what) {
    float *diff = dl_test_alloc_f(n);
    double *want = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++) {
        diff[i] = (float)((double)g[i] - (double)g0[i]);
        want[i] = k * ref[i];
    }
    if (dl_test_first_nonfinite(g, n) >= 0)
        DL_TEST_FAIL("%s is not finite everywhere", what);
    double err = dl_test_rel_error(diff, want, n);
    if (!(err <= tol))
        DL_TEST_FAIL("%s: accumulated gradient (x%g) relative error %.3g > %.3g", what, k, err, tol);
    free(diff);
    free(want);
}

static void forward_case(dl_rng *rng, int N, int C, int V, int max_pos, int learned) {
    float *wte = random_f(rng, (size_t)V * C), *wpe = random_f(rng, (size_t)max_pos * C);
    int32_t *tokens = random_ids(rng, N, V), *positions = random_ids(rng, N, max_pos);
    tokens[0] = V - 1; /* the edges of the valid range */
    tokens[N - 1] = 0;
    positions[0] = max_pos - 1;
    float *out = dl_test_alloc_f((size_t)N * C);
    dl_test_poison(out, (size_t)N * C);
    DL_EXPECT_OK(dl_op_embedding_forward(&be, out, tokens, learned ? positions : NULL, wte, learned ? wpe : NULL, N, C,
                                      V, max_pos));
    emb_ctx e = {dl_test_to_double(wte, (size_t)V * C),
                 dl_test_to_double(wpe, (size_t)max_pos * C),
                 NULL,
                 dl_test_alloc_d((size_t)N * C),
                 tokens,
                 learned ? positions : NULL,
                 N,
                 C};
    ref_forward(&e);
    DL_ASSERT_REL(out, e.out, (size_t)N * C, 1e-7);
    free(wte), free(wpe), free(tokens), free(positions), free(out), free(e.wte), free(e.wpe), free(e.out);
}

static void forward_matches_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    forward_case(&rng, 1, 1, 1, 1, 1);
    forward_case(&rng, 1, 7, 3, 2, 0);
    forward_case(&rng, 9, 19, 257, 16, 1);
    forward_case(&rng, 9, 19, 257, 16, 0);
    forward_case(&rng, 300, 130, 50, 300, 1); /* above the single-thread cut-off */
}

static void backward_case(dl_rng *rng, int N, int C, int V, int max_pos, int learned) {
    size_t nte = (size_t)V * C, npe = (size_t)max_pos * C, no = (size_t)N * C;
    float *wte = random_f(rng, nte), *wpe = random_f(rng, npe), *dout = random_f(rng, no);
    int32_t *tokens = random_ids(rng, N, V), *positions = random_ids(rng, N, max_pos);
    if (N >= 3)
        tokens[2] = tokens[0]; /* a repeated id: its gradient is the sum of both rows */
    float *dwte = dl_test_alloc_f(nte), *dwpe = dl_test_alloc_f(npe), *dwte0 = dl_test_alloc_f(nte), *dwpe0 = dl_test_alloc_f(npe);
    emb_ctx e = {dl_test_to_double(wte, nte),
                 dl_test_to_double(wpe, npe),
                 dl_test_to_double(dout, no),
                 dl_test_alloc_d(no),
                 tokens,
                 learned ? positions : NULL,
                 N,
                 C};
    double *gte = dl_test_alloc_d(nte), *gpe = dl_test_alloc_d(npe);
    fd_grad(emb_loss, &e, e.wte, nte, gte);
    if (learned)
        fd_grad(emb_loss, &e, e.wpe, npe, gpe);
    dl_test_prefill_like(rng, dwte, gte, nte);
    if (learned)
        dl_test_prefill_like(rng, dwpe, gpe, npe);
    else
        dl_test_fill_uniform(rng, dwpe, npe, -1.0f, 1.0f); /* must stay untouched */
    memcpy(dwte0, dwte, nte * sizeof(float));
    memcpy(dwpe0, dwpe, npe * sizeof(float));
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_embedding_backward(&be, dwte, learned ? dwpe : NULL, dout, tokens, learned ? positions : NULL,
                                           N, C, V, max_pos));
        check_added(dwte, dwte0, gte, nte, call, 1e-4, "dwte");
        if (learned)
            check_added(dwpe, dwpe0, gpe, npe, call, 1e-4, "dwpe");
        else
            assert_memory_equal(dwpe, dwpe0, npe * sizeof(float));
    }
    free(wte), free(wpe), free(dout), free(tokens), free(positions), free(dwte), free(dwpe), free(dwte0), free(dwpe0);
    free(e.wte), free(e.wpe), free(e.dout), free(e.out), free(gte), free(gpe);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    backward_case(&rng, 1, 1, 1, 1, 1);
    backward_case(&rng, 9, 19, 257, 12, 1);
    backward_case(&rng, 6, 33, 5, 4, 0); /* V = 5 for 6 tokens: ids repeat */
}

/* Each gradient element gets its contributions in token order whatever the thread count: the same bits. */
static void backward_is_identical_for_any_thread_count(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 3);
    const int N = 512, C = 200, V = 37, P = 64; /* many repeats, above the single-thread cut-off */
    float *dout = random_f(&rng, (size_t)N * C);
    int32_t *tokens = random_ids(&rng, N, V), *positions = random_ids(&rng, N, P);
    int saved = omp_get_max_threads();
    float *te[3], *pe[3];
    for (int t = 0; t < 3; t++) {
        te[t] = calloc((size_t)V * C, sizeof(float));
        pe[t] = calloc((size_t)P * C, sizeof(float));
        assert_true(te[t] && pe[t]);
        omp_set_num_threads(t + 1);
        DL_EXPECT_OK(dl_op_embedding_backward(&be, te[t], pe[t], dout, tokens, positions, N, C, V, P));
    }
    omp_set_num_threads(saved);
    double *ref = dl_test_alloc_d((size_t)V * C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            ref[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
    DL_ASSERT_REL(te[0], ref, (size_t)V * C, 1e-6);
    for (int t = 1; t < 3; t++) {
        /* Bits hold: each element adds its rows in token order whatever thread owns it (no BLAS). */
        assert_memory_equal(te[0], te[t], (size_t)V * C * sizeof(float));
        assert_memory_equal(pe[0], pe[t], (size_t)P * C * sizeof(float));
    }
    for (int t = 0; t < 3; t++)
        free(te[t]), free(pe[t]);
    free(dout), free(tokens), free(positions), free(ref);
}

static void ids_out_of_range_fail_naming_index_and_value(void **state) {
    (void)state;
    enum { N = 6, C = 5, V = 11, P = 8 };
    float wte[V * C] = {0}, wpe[P * C] = {0}, out[N * C], dout[N * C], dwte[V * C] = {0}, dwpe[P * C] = {0};
    int32_t tokens[N] = {1, 2, 3, 4, 5, 6}, positions[N] = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < N * C; i++)
        out[i] = dout[i] = 1.0f;

    tokens[3] = V;
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, N, C, V, P));
    assert_non_null(strstr(dl_error_message(), "tokens[3] = 11"));
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, dwte, dwpe, dout, tokens, positions, N, C, V, P));
    assert_non_null(strstr(dl_error_message(), "tokens[3] = 11"));
    tokens[3] = -2;
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, NULL, wte, NULL, N, C, V, P));
    assert_non_null(strstr(dl_error_message(), "tokens[3] = -2"));
    tokens[3] = 4;
    positions[5] = P;
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, N, C, V, P));
    assert_non_null(strstr(dl_error_message(), "positions[5] = 8"));
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, dwte, dwpe, dout, tokens, positions, N, C, V, P));
    assert_non_null(strstr(dl_error_message(), "positions[5] = 8"));
    positions[5] = -1;
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, dwte, dwpe, dout, tokens, positions, N, C, V, P));
    dl_error_clear();
    /* Rejected before anything was written. */
    for (int i = 0; i < N * C; i++)
        assert_true(out[i] == 1.0f);
    for (int i = 0; i < V * C; i++)
        assert_true(dwte[i] == 0.0f);
    for (int i = 0; i < P * C; i++)
        assert_true(dwpe[i] == 0.0f);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float wte[64] = {0}, wpe[64] = {0}, out[64] = {0};
    int32_t tokens[4] = {0, 1, 2, 3}, positions[4] = {0, 1, 2, 3};
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, NULL, tokens, positions, wte, wpe, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, NULL, positions, wte, wpe, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, NULL, wpe, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, NULL, 4, 4, 4, 4)); /* not together */
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, NULL, wte, wpe, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, 0, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, 4, -4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, 4, 4, 0, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, 4, 4, 4, 0));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, 4, INT_MAX, INT_MAX, 4));
    DL_EXPECT_INVALID(dl_op_embedding_forward(&be, wte, tokens, positions, wte, wpe, 4, 4, 4, 4)); /* out is wte */
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, NULL, wpe, out, tokens, positions, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, wte, wpe, NULL, tokens, positions, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, wte, NULL, out, tokens, positions, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, wte, wte + 4, out, tokens, positions, 4, 4, 4, 4));
    DL_EXPECT_INVALID(dl_op_embedding_backward(&be, wte, wpe, wte, tokens, positions, 4, 4, 4, 4));
    dl_error_clear();
    for (int i = 0; i < 64; i++)
        assert_true(wte[i] == 0.0f && wpe[i] == 0.0f && out[i] == 0.0f);
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
        cmocka_unit_test(forward_matches_reference),
        cmocka_unit_test(backward_matches_finite_differences_and_accumulates),
        cmocka_unit_test(backward_is_identical_for_any_thread_count),
        cmocka_unit_test(ids_out_of_range_fail_naming_index_and_value),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
