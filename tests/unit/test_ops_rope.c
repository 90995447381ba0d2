/* test_ops_rope.c — dl_op_rope_forward/backward on the CPU backend: the NeoX half-split rotation against a double
 * reference (strided views inside a qkv-like buffer, large positions, packed positions), in place equal to out of
 * place, elements outside the view untouched, backward by central differences and accumulation. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;
static const float THETA = 10000.0f;

typedef struct rope_shape {
    int N, H, D, stride;
} rope_shape;

static size_t buffer_len(rope_shape s) { return (size_t)s.N * s.stride; }
static size_t view_len(rope_shape s) { return (size_t)s.N * s.H * s.D; }
/* Offset in the strided buffer of element k of the dense [N, H, D] view. */
static size_t view_offset(rope_shape s, size_t k) {
    size_t row = (size_t)s.H * s.D;
    return (k / row) * (size_t)s.stride + k % row;
}

/* y = R x on the dense view, in double. */
static void ref_rope(double *y, const double *x, const int32_t *positions, rope_shape s, double theta) {
    int half = s.D / 2;
    for (int n = 0; n < s.N; n++)
        for (int h = 0; h < s.H; h++)
            for (int i = 0; i < half; i++) {
                double angle = positions[n] * pow(theta, -2.0 * i / s.D);
                double c = cos(angle), sn = sin(angle);
                size_t k = ((size_t)n * s.H + h) * s.D + i;
                double a = x[k], b = x[k + half];
                y[k] = a * c - b * sn;
                y[k + half] = a * sn + b * c;
            }
}

static int32_t *make_positions(dl_rng *rng, int N, int packed) {
    int32_t *p = malloc((size_t)N * sizeof(int32_t));
    assert_non_null(p);
    int pos = 0;
    for (int n = 0; n < N; n++) {
        if (packed) { /* documents of random length: positions restart at 0 */
            if (dl_rng_below(rng, 4) == 0)
                pos = 0;
            p[n] = pos++;
        } else {
            p[n] = (int32_t)dl_rng_below(rng, 8192);
        }
    }
    return p;
}

static void forward_case(dl_rng *rng, rope_shape s, int packed) {
    size_t nb = buffer_len(s), nv = view_len(s);
    float *inp = dl_test_alloc_f(nb), *out = dl_test_alloc_f(nb), *inplace = dl_test_alloc_f(nb);
    dl_test_fill_uniform(rng, inp, nb, -1.0f, 1.0f);
    int32_t *positions = make_positions(rng, s.N, packed);
    /* Elements outside the view keep a sentinel; those inside are poisoned. */
    for (size_t i = 0; i < nb; i++)
        out[i] = 7.0f;
    for (size_t k = 0; k < nv; k++)
        out[view_offset(s, k)] = NAN;
    DL_EXPECT_OK(dl_op_rope_forward(&be, out, inp, positions, s.N, s.H, s.D, s.stride, THETA));

    double *x = dl_test_alloc_d(nv), *y = dl_test_alloc_d(nv);
    float *got = dl_test_alloc_f(nv);
    for (size_t k = 0; k < nv; k++) {
        x[k] = inp[view_offset(s, k)];
        got[k] = out[view_offset(s, k)];
    }
    ref_rope(y, x, positions, s, THETA);
    DL_ASSERT_REL(got, y, nv, 1e-6);
    /* Element by element too: a norm would hide one badly rotated pair among many. */
    for (size_t k = 0; k < nv; k++)
        if (fabs(got[k] - y[k]) > 2e-6)
            DL_TEST_FAIL("rope element %zu: got %.9g, want %.9g", k, (double)got[k], y[k]);
    for (size_t i = 0; i < nb; i++) {
        size_t in_row = i % (size_t)s.stride;
        if (in_row >= (size_t)s.H * s.D && out[i] != 7.0f)
            DL_TEST_FAIL("element %zu outside the view was written", i);
    }
    /* In place gives the same bits. */
    memcpy(inplace, inp, nb * sizeof(float));
    DL_EXPECT_OK(dl_op_rope_forward(&be, inplace, inplace, positions, s.N, s.H, s.D, s.stride, THETA));
    for (size_t k = 0; k < nv; k++)
        if (inplace[view_offset(s, k)] != out[view_offset(s, k)])
            DL_TEST_FAIL("in-place rope differs at view element %zu", k);
    free(inp), free(out), free(inplace), free(positions), free(x), free(y), free(got);
}

static void forward_matches_double_reference(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    forward_case(&rng, (rope_shape){1, 1, 2, 2}, 0);
    forward_case(&rng, (rope_shape){5, 3, 8, 3 * 3 * 8}, 0);    /* q inside a [N, 3C] qkv buffer */
    forward_case(&rng, (rope_shape){7, 5, 6, 5 * 6 + 7}, 1);    /* odd half, ragged stride, packed positions */
    forward_case(&rng, (rope_shape){3, 2, 256, 2 * 256}, 0);    /* more frequencies than one chunk */
    forward_case(&rng, (rope_shape){300, 4, 32, 3 * 128}, 1);   /* above the single-thread cut-off */
}

static void forward_is_identical_for_any_thread_count(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 2);
    rope_shape s = {400, 4, 32, 128};
    size_t nb = buffer_len(s);
    float *inp = dl_test_alloc_f(nb), *o1 = dl_test_alloc_f(nb), *o3 = dl_test_alloc_f(nb);
    dl_test_fill_uniform(&rng, inp, nb, -1.0f, 1.0f);
    int32_t *positions = make_positions(&rng, s.N, 0);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    DL_EXPECT_OK(dl_op_rope_forward(&be, o1, inp, positions, s.N, s.H, s.D, s.stride, THETA));
    omp_set_num_threads(3);
    DL_EXPECT_OK(dl_op_rope_forward(&be, o3, inp, positions, s.N, s.H, s.D, s.stride, THETA));
    omp_set_num_threads(saved);
    /* Bits hold: each output element is computed from its own inputs alone; threads only split the rows. */
    assert_memory_equal(o1, o3, nb * sizeof(float));
    free(inp), free(o1), free(o3), free(positions);
}

typedef struct rope_ctx {
    double *x, *y, *dout;
    const int32_t *positions;
    rope_shape s;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *r = p;
    ref_rope(r->y, r->x, r->positions, r->s, THETA);
    double L = 0.0;
    for (size_t k = 0; k < view_len(r->s); k++)
        L += r->dout[k] * r->y[k];
    return L;
}

static void backward_case(dl_rng *rng, rope_shape s, int packed) {
    size_t nb = buffer_len(s), nv = view_len(s);
    float *dout = dl_test_alloc_f(nb), *dinp = dl_test_alloc_f(nb), *dinp0 = dl_test_alloc_f(nb);
    dl_test_fill_uniform(rng, dout, nb, -1.0f, 1.0f);
    int32_t *positions = make_positions(rng, s.N, packed);
    rope_ctx r = {dl_test_alloc_d(nv), dl_test_alloc_d(nv), dl_test_alloc_d(nv), positions, s};
    for (size_t k = 0; k < nv; k++) {
        r.x[k] = dl_rng_uniform(rng) * 2.0 - 1.0;
        r.dout[k] = dout[view_offset(s, k)];
    }
    double *grad = dl_test_alloc_d(nv);
    for (size_t k = 0; k < nv; k++) { /* central differences, one element at a time */
        double save = r.x[k], h = 1e-5;
        r.x[k] = save + h;
        double lp = rope_loss(&r);
        r.x[k] = save - h;
        double lm = rope_loss(&r);
        r.x[k] = save;
        grad[k] = (lp - lm) / (2.0 * h);
    }
    float *scaled = dl_test_alloc_f(nv);
    dl_test_prefill_like(rng, scaled, grad, nv);
    dl_test_fill_uniform(rng, dinp, nb, -1.0f, 1.0f); /* the gaps between tokens */
    for (size_t k = 0; k < nv; k++)
        dinp[view_offset(s, k)] = scaled[k];
    free(scaled);
    memcpy(dinp0, dinp, nb * sizeof(float));
    float *added = dl_test_alloc_f(nv);
    double *want = dl_test_alloc_d(nv);
    for (int call = 1; call <= 2; call++) {
        DL_EXPECT_OK(dl_op_rope_backward(&be, dinp, dout, positions, s.N, s.H, s.D, s.stride, THETA));
        for (size_t k = 0; k < nv; k++) {
            size_t o = view_offset(s, k);
            added[k] = (float)((double)dinp[o] - (double)dinp0[o]);
            want[k] = call * grad[k];
        }
        DL_ASSERT_REL(added, want, nv, 1e-4);
    }
    for (size_t i = 0; i < nb; i++)
        if (i % (size_t)s.stride >= (size_t)s.H * s.D && dinp[i] != dinp0[i])
            DL_TEST_FAIL("dinp element %zu outside the view was changed", i);
    /* In place (dinp == dout) the op overwrites: the result is Rᵀ dout (ops.h). */
    float *both = dl_test_alloc_f(nb);
    memcpy(both, dout, nb * sizeof(float));
    DL_EXPECT_OK(dl_op_rope_backward(&be, both, both, positions, s.N, s.H, s.D, s.stride, THETA));
    for (size_t k = 0; k < nv; k++) {
        size_t o = view_offset(s, k);
        added[k] = both[o];
        want[k] = grad[k];
    }
    DL_ASSERT_REL(added, want, nv, 1e-4);
    free(dout), free(dinp), free(dinp0), free(positions), free(r.x), free(r.y), free(r.dout), free(grad);
    free(added), free(want), free(both);
}

static void backward_matches_finite_differences_and_accumulates(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 3);
    backward_case(&rng, (rope_shape){1, 1, 2, 2}, 0);
    backward_case(&rng, (rope_shape){4, 3, 8, 3 * 3 * 8}, 1);
    backward_case(&rng, (rope_shape){3, 2, 10, 2 * 10 + 3}, 0);
}

static void bad_arguments_are_invalid(void **state) {
    (void)state;
    float x[64] = {0}, y[64] = {0};
    int32_t positions[4] = {0, 1, 2, 3};
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, NULL, x, positions, 2, 2, 4, 8, THETA));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, NULL, positions, 2, 2, 4, 8, THETA));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, NULL, 2, 2, 4, 8, THETA));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, 0, 2, 4, 8, THETA));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, 2, -2, 4, 8, THETA));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, 2, 2, 3, 8, THETA)); /* D odd */
    assert_non_null(strstr(dl_error_message(), "D = 3"));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, 2, 2, 4, 7, THETA)); /* stride < H·D */
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, 2, 2, 4, 8, 0.0f));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, 2, 2, 4, 8, NAN));
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, x + 1, x, positions, 2, 2, 4, 8, THETA)); /* partial overlap */
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, INT_MAX, 2, 4, INT_MAX, THETA)); /* N·stride too big */
    DL_EXPECT_INVALID(dl_op_rope_backward(&be, NULL, x, positions, 2, 2, 4, 8, THETA));
    DL_EXPECT_INVALID(dl_op_rope_backward(&be, y, x, positions, 2, 2, 0, 8, THETA));
    DL_EXPECT_INVALID(dl_op_rope_backward(&be, x + 3, x, positions, 2, 2, 4, 8, THETA));
    positions[2] = -3;
    DL_EXPECT_INVALID(dl_op_rope_forward(&be, y, x, positions, 4, 2, 4, 8, THETA));
    assert_non_null(strstr(dl_error_message(), "positions[2] = -3"));
    DL_EXPECT_INVALID(dl_op_rope_backward(&be, y, x, positions, 4, 2, 4, 8, THETA));
    assert_non_null(strstr(dl_error_message(), "positions[2] = -3"));
    dl_error_clear();
    for (int i = 0; i < 64; i++)
        assert_true(x[i] == 0.0f && y[i] == 0.0f);
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
        cmocka_unit_test(forward_matches_double_reference),
        cmocka_unit_test(forward_is_identical_for_any_thread_count),
        cmocka_unit_test(backward_matches_finite_differences_and_accumulates),
        cmocka_unit_test(bad_arguments_are_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
