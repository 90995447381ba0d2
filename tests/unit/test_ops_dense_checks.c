/* test_ops_dense_checks.c — the argument checks every dense dispatcher shares (src/ops/dense.c): each bad call
 * fails with DL_ERR_INVALID and one message naming the op, the bad argument and, for sizes, its value, whichever
 * place of its dispatcher's list the argument has; each allowed NULL or in-place call passes. The per-op tests
 * (test_ops_matmul.c, ...) check the maths; this file checks the words. */
#include "testutil.h"

#include <stdint.h>
#include <string.h>

#include "ops/ops.h"

static dl_backend be;

/* Buffers far enough apart that only the calls that mean to overlap do. */
static float buf_a[256], buf_b[256], buf_c[256], buf_d[256], buf_e[256], buf_f[256], buf_g[256], buf_h[256];
static int32_t ids_a[16], ids_b[16];

#define EXPECT_MESSAGE(call, message)                                                                           \
    do {                                                                                                       \
        dl_error_clear();                                                                                      \
        dl_status s_ = (call);                                                                                 \
        if (s_ != DL_ERR_INVALID || strcmp(dl_error_message(), (message)) != 0)                                \
            DL_TEST_FAIL("%s: got status %d and message '%s', want DL_ERR_INVALID and '%s'", #call, (int)s_,   \
                         dl_error_message(), (message));                                                       \
    } while (0)

/* The checks name the failing pointer by its place in the dispatcher's list: first, middle and last. */
static void null_pointers_are_named(void **state) {
    (void)state;
    EXPECT_MESSAGE(dl_op_layernorm_backward(&be, NULL, buf_b, buf_c, buf_d, buf_e, buf_f, buf_g, buf_h, 2, 4),
                   "dl_op_layernorm_backward: argument dinp is NULL");
    EXPECT_MESSAGE(dl_op_layernorm_backward(&be, buf_a, buf_b, buf_c, buf_d, NULL, buf_f, buf_g, buf_h, 2, 4),
                   "dl_op_layernorm_backward: argument inp is NULL");
    EXPECT_MESSAGE(dl_op_layernorm_backward(&be, buf_a, buf_b, buf_c, buf_d, buf_e, buf_f, buf_g, NULL, 2, 4),
                   "dl_op_layernorm_backward: argument rstd is NULL");
    EXPECT_MESSAGE(dl_op_xent_backward(&be, buf_a, buf_b, buf_c, ids_a, NULL, 2, 5),
                   "dl_op_xent_backward: argument dlosses is NULL");
    EXPECT_MESSAGE(dl_op_embedding_forward(&be, buf_a, NULL, NULL, buf_b, NULL, 2, 4, 5, 0),
                   "dl_op_embedding_forward: argument tokens is NULL");
    /* The backend comes first, closed or missing. */
    dl_backend closed = {0};
    EXPECT_MESSAGE(dl_op_gelu_forward(&closed, buf_a, NULL, 8), "dl_op_gelu_forward: backend is not open");
    EXPECT_MESSAGE(dl_op_matmul_forward(NULL, buf_a, buf_b, buf_c, NULL, 2, 4, 3),
                   "dl_op_matmul_forward: backend is not open");
}

/* ops.h's nullable pointers are not required. */
static void nullable_pointers_pass(void **state) {
    (void)state;
    memset(buf_a, 0, sizeof buf_a);
    memset(ids_a, 0, sizeof ids_a);
    DL_EXPECT_OK(dl_op_matmul_forward(&be, buf_a, buf_b, buf_c, NULL, 2, 4, 3));
    DL_EXPECT_OK(dl_op_matmul_backward(&be, NULL, buf_b, NULL, buf_d, buf_e, buf_f, 2, 4, 3));
    DL_EXPECT_OK(dl_op_embedding_forward(&be, buf_d, ids_a, NULL, buf_b, NULL, 2, 4, 5, 0));
}

/* A size is named with its value, whichever place of the list it has. */
static void non_positive_sizes_are_named(void **state) {
    (void)state;
    EXPECT_MESSAGE(dl_op_matmul_forward(&be, buf_a, buf_b, buf_c, NULL, 0, 4, 3),
                   "dl_op_matmul_forward: N = 0, must be positive");
    EXPECT_MESSAGE(dl_op_matmul_backward_bf16(&be, buf_a, buf_b, NULL, (dl_bf16 *)buf_d, (dl_bf16 *)buf_e,
                                              (dl_bf16 *)buf_f, 2, -7, 3),
                   "dl_op_matmul_backward_bf16: C = -7, must be positive");
    EXPECT_MESSAGE(dl_op_matmul_forward(&be, buf_a, buf_b, buf_c, NULL, 2, 4, -1),
                   "dl_op_matmul_forward: OC = -1, must be positive");
    EXPECT_MESSAGE(dl_op_embedding_forward(&be, buf_a, ids_a, ids_b, buf_b, buf_c, 2, 4, 5, 0),
                   "dl_op_embedding_forward: max_pos = 0, must be positive");
    EXPECT_MESSAGE(dl_op_sequence_sum_forward(&be, buf_a, buf_b, ids_a, -2),
                   "dl_op_sequence_sum_forward: num_seqs = -2, must be positive");
    EXPECT_MESSAGE(dl_op_residual_forward(&be, buf_a, buf_b, buf_c, 0),
                   "dl_op_residual_forward: n = 0 elements, must be positive");
}

/* Outputs may not overlap inputs or each other, and the message names both; in place means the same pointer. */
static void overlaps_are_named(void **state) {
    (void)state;
    EXPECT_MESSAGE(dl_op_layernorm_forward(&be, buf_a, buf_b, buf_c, buf_d, buf_e, buf_a + 1, 2, 4, 1e-5f),
                   "dl_op_layernorm_forward: out overlaps bias; this op cannot work in place");
    EXPECT_MESSAGE(dl_op_layernorm_forward(&be, buf_a, buf_b, buf_b + 1, buf_d, buf_e, buf_f, 2, 4, 1e-5f),
                   "dl_op_layernorm_forward: mean overlaps rstd; this op cannot work in place");
    EXPECT_MESSAGE(dl_op_matmul_backward(&be, buf_a, buf_b, buf_c, buf_d, buf_e, buf_c + 1, 2, 4, 3),
                   "dl_op_matmul_backward: dbias overlaps weight; this op cannot work in place");
    EXPECT_MESSAGE(dl_op_embedding_backward(&be, buf_a, buf_b, buf_c, ids_a, (int32_t *)buf_b, 2, 4, 5, 4),
                   "dl_op_embedding_backward: dwpe overlaps positions; this op cannot work in place");
    EXPECT_MESSAGE(dl_op_xent_backward(&be, buf_a, buf_a + 1, buf_c, ids_a, buf_d, 2, 5),
                   "dl_op_xent_backward: dlogits partly overlaps logits; in place means the same pointer");
    EXPECT_MESSAGE(dl_op_xent_backward(&be, buf_a, buf_b, buf_c, ids_a, buf_a + 3, 2, 5),
                   "dl_op_xent_backward: dlogits overlaps dlosses; this op cannot work in place");
    EXPECT_MESSAGE(dl_op_residual_backward(&be, buf_a, buf_a + 2, buf_c, 8),
                   "dl_op_residual_backward: da partly overlaps db; in place means the same pointer");
}

/* Where the op is built for it, the very same buffer is fine. */
static void in_place_passes(void **state) {
    (void)state;
    for (int i = 0; i < 16; i++)
        buf_a[i] = 0.1f * (float)i;
    memset(ids_a, 0, sizeof ids_a);
    DL_EXPECT_OK(dl_op_gelu_forward(&be, buf_a, buf_a, 16));
    DL_EXPECT_OK(dl_op_residual_forward(&be, buf_a, buf_a, buf_a, 16));
    DL_EXPECT_OK(dl_op_rope_forward(&be, buf_a, buf_a, ids_a, 2, 2, 2, 4, 10000.0f));
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
        cmocka_unit_test(null_pointers_are_named),
        cmocka_unit_test(nullable_pointers_pass),
        cmocka_unit_test(non_positive_sizes_are_named),
        cmocka_unit_test(overlaps_are_named),
        cmocka_unit_test(in_place_passes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
