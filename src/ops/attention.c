/* attention.c — the dl_op_attention_* entry points: check every argument once, then dispatch to the backend.
 *
 * Kernels trust what reaches them, so everything a kernel would index with is checked here: sizes, the head size
 * limit of the tiles (D ≤ 128), the document boundaries (a bad cu_seqlens would otherwise read or write outside the
 * batch), and that no output overlaps an input (the kernels read inputs while writing outputs, so an overlap would
 * give a silently wrong answer). Each failure is one DL_ERR_INVALID naming the op, the argument and the index. */
#include <stdint.h>

#include "ops/backend_internal.h"
#include "ops/ops.h"

#define ATTN_MAX_D 128

/* Fails with DL_ERR_INVALID, the message and a hint. */
#define ATTN_FAIL(hint, ...)                                                                                   \
    do {                                                                                                       \
        dl_status attn_s_ = DL_FAIL(DL_ERR_INVALID, __VA_ARGS__);                                              \
        dl_error_hint("%s", hint);                                                                             \
        return attn_s_;                                                                                        \
    } while (0)

static int overlaps(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

static dl_status check_shape(const char *op, const int32_t *cu_seqlens, int num_seqs, int N, int H, int D) {
    if (N <= 0)
        ATTN_FAIL("pass the number of tokens in the packed batch", "%s: N = %d tokens; it must be positive", op, N);
    if (H <= 0)
        ATTN_FAIL("pass the number of attention heads", "%s: H = %d heads; it must be positive", op, H);
    if (D <= 0)
        ATTN_FAIL("pass the head size (C / H)", "%s: head size D = %d; it must be positive", op, D);
    if (D > ATTN_MAX_D)
        ATTN_FAIL("use more heads of a smaller size", "%s: head size D = %d exceeds the maximum %d", op, D,
                  ATTN_MAX_D);
    if ((size_t)H * (size_t)D > (size_t)INT32_MAX / 3)
        ATTN_FAIL("use fewer or smaller heads", "%s: H·D = %zu floats per token is too large", op,
                  (size_t)H * (size_t)D);
    if (num_seqs <= 0)
        ATTN_FAIL("a batch holds at least one document", "%s: num_seqs = %d; it must be positive", op, num_seqs);
    if (cu_seqlens == NULL)
        ATTN_FAIL("pass the document boundaries of the packed batch", "%s: cu_seqlens is NULL", op);
    if (cu_seqlens[0] != 0)
        ATTN_FAIL("the first document starts at token 0", "%s: cu_seqlens[0] = %d; it must be 0", op,
                  cu_seqlens[0]);
    for (int s = 1; s <= num_seqs; s++)
        if (cu_seqlens[s] < cu_seqlens[s - 1])
            ATTN_FAIL("document boundaries must be non-decreasing",
                      "%s: cu_seqlens[%d] = %d is below cu_seqlens[%d] = %d", op, s, cu_seqlens[s], s - 1,
                      cu_seqlens[s - 1]);
    if (cu_seqlens[num_seqs] != N)
        ATTN_FAIL("the last boundary must close the batch",
                  "%s: cu_seqlens[%d] = %d (num_seqs = %d) must equal N = %d", op, num_seqs, cu_seqlens[num_seqs],
                  num_seqs, N);
    return DL_OK;
}

dl_status dl_op_attention_forward(const dl_backend *be, float *out, float *lse, const float *qkv,
                                  const int32_t *cu_seqlens, int num_seqs, int N, int H, int D) {
    static const char op[] = "dl_op_attention_forward";
    if (out == NULL || lse == NULL || qkv == NULL)
        ATTN_FAIL("pass allocated buffers", "%s: %s is NULL", op, out == NULL ? "out" : lse == NULL ? "lse" : "qkv");
    DL_CHECK(check_shape(op, cu_seqlens, num_seqs, N, H, D));
    const size_t tokens = (size_t)N, C = (size_t)H * (size_t)D;
    const size_t qkv_bytes = tokens * 3 * C * sizeof(float), out_bytes = tokens * C * sizeof(float),
                 lse_bytes = tokens * (size_t)H * sizeof(float);
    const char *clash = overlaps(out, out_bytes, qkv, qkv_bytes)   ? "out overlaps qkv"
                        : overlaps(lse, lse_bytes, qkv, qkv_bytes) ? "lse overlaps qkv"
                        : overlaps(out, out_bytes, lse, lse_bytes) ? "out overlaps lse"
                                                                   : NULL;
    if (clash)
        ATTN_FAIL("give out [N, H, D], lse [N, H] and qkv [N, 3, H, D] separate buffers",
                  "%s: %s (N = %d, H = %d, D = %d)", op, clash, N, H, D);
    DL_DISPATCH(be, attention, forward, out, lse, qkv, cu_seqlens, num_seqs, N, H, D);
}

dl_status dl_op_attention_backward(const dl_backend *be, float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, const int32_t *cu_seqlens, int num_seqs,
                                   int N, int H, int D) {
    static const char op[] = "dl_op_attention_backward";
    const char *missing = dqkv == NULL ? "dqkv"
                          : dout == NULL ? "dout"
                          : qkv == NULL  ? "qkv"
                          : out == NULL  ? "out"
                          : lse == NULL  ? "lse"
                                         : NULL;
    if (missing)
        ATTN_FAIL("pass allocated buffers", "%s: %s is NULL", op, missing);
    DL_CHECK(check_shape(op, cu_seqlens, num_seqs, N, H, D));
    const size_t tokens = (size_t)N, C = (size_t)H * (size_t)D;
    const size_t qkv_bytes = tokens * 3 * C * sizeof(float), out_bytes = tokens * C * sizeof(float),
                 lse_bytes = tokens * (size_t)H * sizeof(float);
    const char *clash = overlaps(dqkv, qkv_bytes, qkv, qkv_bytes)    ? "qkv"
                        : overlaps(dqkv, qkv_bytes, dout, out_bytes) ? "dout"
                        : overlaps(dqkv, qkv_bytes, out, out_bytes)  ? "out"
                        : overlaps(dqkv, qkv_bytes, lse, lse_bytes)  ? "lse"
                                                                     : NULL;
    if (clash)
        ATTN_FAIL("give the gradient its own buffer", "%s: dqkv [%d, 3, %d, %d] overlaps %s", op, N, H, D, clash);
    DL_DISPATCH(be, attention, backward, dqkv, dout, qkv, out, lse, cu_seqlens, num_seqs, N, H, D);
}
