/* dense.c — the dl_op_* entry points of the dense family: check the arguments, then dispatch to the backend.
 *
 * Every check that needs only the arguments happens here, once for both backends, so a kernel can trust its
 * pointers and sizes: the backend is open; required pointers are not NULL (ops.h says which may be); sizes are
 * positive; every tensor's byte size, computed in 64 bits, fits in a ptrdiff_t (so N·C·4 cannot wrap, and no
 * size_t product inside a kernel can either); scalars are in range (eps > 0, p in [0,1), theta > 0, D even,
 * stride ≥ H·D). Aliasing: an output may be the very same buffer as an input only where the op is documented or
 * built to work in place (rope, xent backward's fused classifier, and the elementwise ops); any other overlap of an
 * output with an input or with another output is an error, because BLAS and the row kernels would read what they
 * have already overwritten.
 *
 * What lives in the data (token ids, positions, targets, cu_seqlens) is device memory on CUDA, so the kernels check
 * it themselves, before writing anything. */
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "ops/backend_internal.h"

/* ---- argument checks -------------------------------------------------------------------------------------------- */

#define NEED_BACKEND(op)                                                                                    \
    DL_REQUIRE(be != NULL && be->ops != NULL, DL_ERR_INVALID, "%s: backend is not open", op)
#define NEED_PTR(op, p) DL_REQUIRE((p) != NULL, DL_ERR_INVALID, "%s: argument %s is NULL", op, #p)
#define NEED_POSITIVE(op, v) DL_REQUIRE((v) > 0, DL_ERR_INVALID, "%s: %s = %d, must be positive", op, #v, (int)(v))
#define NEED_COUNT(op, n) DL_REQUIRE((n) > 0, DL_ERR_INVALID, "%s: %s = 0 elements, must be positive", op, #n)

/* Bytes of a tensor of a·b·c elements of `elem` bytes (all sizes already positive); fails when the product does not
 * fit in a ptrdiff_t, the largest object C can address. `dims` spells the product for the message ("N*C"). */
static dl_status tensor_bytes(const char *op, const char *tensor, const char *dims, int64_t a, int64_t b, int64_t c,
                              size_t elem, size_t *bytes) {
    int64_t count, total;
    *bytes = 0;
    if (__builtin_mul_overflow(a, b, &count) || __builtin_mul_overflow(count, c, &count) ||
        __builtin_mul_overflow(count, (int64_t)elem, &total) || (uint64_t)total > (uint64_t)PTRDIFF_MAX) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: tensor %s of %s = %lld x %lld x %lld elements is too large to address",
                              op, tensor, dims, (long long)a, (long long)b, (long long)c);
        dl_error_hint("the sizes are probably garbage (an uninitialised or overflowed size upstream)");
        return s;
    }
    *bytes = (size_t)total;
    return DL_OK;
}

/* Bytes of n elements of `elem` bytes, for the size_t-sized elementwise ops. */
static dl_status count_bytes(const char *op, const char *tensor, size_t n, size_t elem, size_t *bytes) {
    size_t total;
    *bytes = 0;
    if (__builtin_mul_overflow(n, elem, &total) || total > (size_t)PTRDIFF_MAX)
        return DL_FAIL(DL_ERR_INVALID, "%s: tensor %s of n = %zu elements is too large to address", op, tensor, n);
    *bytes = total;
    return DL_OK;
}

/* Whether [a, a+na) and [b, b+nb) share a byte (NULL never overlaps). */
static int overlaps(const void *a, size_t na, const void *b, size_t nb) {
    if (!a || !b)
        return 0;
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return pa < pb + nb && pb < pa + na;
}

/* Output `out` must not overlap input or output `other`. */
static dl_status disjoint(const char *op, const char *out_name, const void *out, size_t out_bytes,
                          const char *other_name, const void *other, size_t other_bytes) {
    if (overlaps(out, out_bytes, other, other_bytes))
        return DL_FAIL(DL_ERR_INVALID, "%s: %s overlaps %s; this op cannot work in place", op, out_name, other_name);
    return DL_OK;
}

/* Output `out` must be exactly `other` (in place) or not overlap it at all. */
static dl_status same_or_disjoint(const char *op, const char *out_name, const void *out, size_t out_bytes,
                                  const char *other_name, const void *other, size_t other_bytes) {
    if (out != other && overlaps(out, out_bytes, other, other_bytes))
        return DL_FAIL(DL_ERR_INVALID, "%s: %s partly overlaps %s; in place means the same pointer", op, out_name,
                       other_name);
    return DL_OK;
}

#define DISJOINT(op, a, na, b, nb) DL_CHECK(disjoint(op, #a, a, na, #b, b, nb))
#define SAME_OR_DISJOINT(op, a, na, b, nb) DL_CHECK(same_or_disjoint(op, #a, a, na, #b, b, nb))

/* ---- matmul ------------------------------------------------------------------------------------------------------ */

/* The byte sizes of inp [N,C], weight [OC,C], out [N,OC] and bias [OC] after checking N, C, OC. */
typedef struct matmul_sizes {
    size_t inp, weight, out, bias;
} matmul_sizes;

static dl_status matmul_check_sizes(const char *op, int N, int C, int OC, size_t elem, matmul_sizes *sz) {
    *sz = (matmul_sizes){0};
    NEED_POSITIVE(op, N);
    NEED_POSITIVE(op, C);
    NEED_POSITIVE(op, OC);
    DL_CHECK(tensor_bytes(op, "inp", "N*C", N, C, 1, elem, &sz->inp));
    DL_CHECK(tensor_bytes(op, "weight", "OC*C", OC, C, 1, elem, &sz->weight));
    DL_CHECK(tensor_bytes(op, "out", "N*OC", N, OC, 1, sizeof(float), &sz->out));
    sz->bias = (size_t)OC * sizeof(float);
    return DL_OK;
}

dl_status dl_op_matmul_forward(const dl_backend *be, float *out, const float *inp, const float *weight,
                               const float *bias, int N, int C, int OC) {
    const char *op = "dl_op_matmul_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, inp);
    NEED_PTR(op, weight);
    matmul_sizes sz;
    DL_CHECK(matmul_check_sizes(op, N, C, OC, sizeof(float), &sz));
    DISJOINT(op, out, sz.out, inp, sz.inp);
    DISJOINT(op, out, sz.out, weight, sz.weight);
    DISJOINT(op, out, sz.out, bias, sz.bias);
    DL_DISPATCH(be, dense, matmul_forward, out, inp, weight, bias, N, C, OC);
}

/* A matmul backward's outputs (dinp, dweight, dbias; byte sizes given) overlap neither each other nor its inputs
 * (dout, inp, weight): the fp32 and bf16 backwards share this, with their own element sizes. */
static dl_status matmul_backward_disjoint(const char *op, const void *dinp, size_t sd_inp, const void *dweight,
                                          size_t sd_w, const void *dbias, size_t sd_b, const void *dout, size_t s_dout,
                                          const void *inp, size_t s_inp, const void *weight, size_t s_w) {
    DISJOINT(op, dinp, sd_inp, dout, s_dout);
    DISJOINT(op, dinp, sd_inp, inp, s_inp);
    DISJOINT(op, dinp, sd_inp, weight, s_w);
    DISJOINT(op, dinp, sd_inp, dweight, sd_w);
    DISJOINT(op, dinp, sd_inp, dbias, sd_b);
    DISJOINT(op, dweight, sd_w, dout, s_dout);
    DISJOINT(op, dweight, sd_w, inp, s_inp);
    DISJOINT(op, dweight, sd_w, weight, s_w);
    DISJOINT(op, dweight, sd_w, dbias, sd_b);
    DISJOINT(op, dbias, sd_b, dout, s_dout);
    DISJOINT(op, dbias, sd_b, inp, s_inp);
    DISJOINT(op, dbias, sd_b, weight, s_w);
    return DL_OK;
}

dl_status dl_op_matmul_backward(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                const float *dout, const float *inp, const float *weight, int N, int C, int OC) {
    const char *op = "dl_op_matmul_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dweight);
    NEED_PTR(op, dout);
    NEED_PTR(op, inp);
    NEED_PTR(op, weight);
    matmul_sizes sz;
    DL_CHECK(matmul_check_sizes(op, N, C, OC, sizeof(float), &sz));
    DL_CHECK(matmul_backward_disjoint(op, dinp, sz.inp, dweight, sz.weight, dbias, sz.bias, dout, sz.out, inp, sz.inp,
                                      weight, sz.weight));
    DL_DISPATCH(be, dense, matmul_backward, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

dl_status dl_op_matmul_forward_bf16(const dl_backend *be, float *out, const dl_bf16 *inp, const dl_bf16 *weight,
                                    const float *bias, int N, int C, int OC) {
    const char *op = "dl_op_matmul_forward_bf16";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, inp);
    NEED_PTR(op, weight);
    matmul_sizes sz;
    DL_CHECK(matmul_check_sizes(op, N, C, OC, sizeof(dl_bf16), &sz));
    DISJOINT(op, out, sz.out, inp, sz.inp);
    DISJOINT(op, out, sz.out, weight, sz.weight);
    DISJOINT(op, out, sz.out, bias, sz.bias);
    DL_DISPATCH(be, dense, matmul_forward_bf16, out, inp, weight, bias, N, C, OC);
}

dl_status dl_op_matmul_backward_bf16(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                     const dl_bf16 *dout, const dl_bf16 *inp, const dl_bf16 *weight, int N, int C,
                                     int OC) {
    const char *op = "dl_op_matmul_backward_bf16";
    NEED_BACKEND(op);
    NEED_PTR(op, dweight);
    NEED_PTR(op, dout);
    NEED_PTR(op, inp);
    NEED_PTR(op, weight);
    matmul_sizes sz; /* sz.inp, sz.weight: the bf16 operands; the fp32 gradients have 2x their bytes */
    DL_CHECK(matmul_check_sizes(op, N, C, OC, sizeof(dl_bf16), &sz));
    size_t sd_inp, sd_w, sd_b = sz.bias, s_dout = sz.out / 2;
    DL_CHECK(tensor_bytes(op, "dinp", "N*C", N, C, 1, sizeof(float), &sd_inp));
    DL_CHECK(tensor_bytes(op, "dweight", "OC*C", OC, C, 1, sizeof(float), &sd_w));
    DL_CHECK(matmul_backward_disjoint(op, dinp, sd_inp, dweight, sd_w, dbias, sd_b, dout, s_dout, inp, sz.inp, weight,
                                      sz.weight));
    DL_DISPATCH(be, dense, matmul_backward_bf16, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

/* ---- embedding --------------------------------------------------------------------------------------------------- */

typedef struct embedding_sizes {
    size_t act, wte, wpe, ids;
} embedding_sizes;

static dl_status embedding_check_sizes(const char *op, const int32_t *positions, const void *pos_table,
                                       const char *table_name, int N, int C, int V, int max_pos,
                                       embedding_sizes *sz) {
    *sz = (embedding_sizes){0};
    DL_REQUIRE((positions == NULL) == (pos_table == NULL), DL_ERR_INVALID,
               "%s: positions is %s but %s is %s; pass both (learned positions) or neither (rotary)", op,
               positions ? "set" : "NULL", table_name, pos_table ? "set" : "NULL");
    NEED_POSITIVE(op, N);
    NEED_POSITIVE(op, C);
    NEED_POSITIVE(op, V);
    DL_CHECK(tensor_bytes(op, "out/dout", "N*C", N, C, 1, sizeof(float), &sz->act));
    DL_CHECK(tensor_bytes(op, "wte", "V*C", V, C, 1, sizeof(float), &sz->wte));
    sz->ids = (size_t)N * sizeof(int32_t);
    sz->wpe = 0;
    if (positions) {
        NEED_POSITIVE(op, max_pos);
        DL_CHECK(tensor_bytes(op, "wpe", "max_pos*C", max_pos, C, 1, sizeof(float), &sz->wpe));
    }
    return DL_OK;
}

dl_status dl_op_embedding_forward(const dl_backend *be, float *out, const int32_t *tokens, const int32_t *positions,
                                  const float *wte, const float *wpe, int N, int C, int V, int max_pos) {
    const char *op = "dl_op_embedding_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, tokens);
    NEED_PTR(op, wte);
    embedding_sizes sz;
    DL_CHECK(embedding_check_sizes(op, positions, wpe, "wpe", N, C, V, max_pos, &sz));
    DISJOINT(op, out, sz.act, wte, sz.wte);
    DISJOINT(op, out, sz.act, wpe, sz.wpe);
    DISJOINT(op, out, sz.act, tokens, sz.ids);
    DISJOINT(op, out, sz.act, positions, sz.ids);
    DL_DISPATCH(be, dense, embedding_forward, out, tokens, positions, wte, wpe, N, C, V, max_pos);
}

dl_status dl_op_embedding_backward(const dl_backend *be, float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tokens, const int32_t *positions, int N, int C, int V,
                                   int max_pos) {
    const char *op = "dl_op_embedding_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dwte);
    NEED_PTR(op, dout);
    NEED_PTR(op, tokens);
    embedding_sizes sz;
    DL_CHECK(embedding_check_sizes(op, positions, dwpe, "dwpe", N, C, V, max_pos, &sz));
    DISJOINT(op, dwte, sz.wte, dout, sz.act);
    DISJOINT(op, dwte, sz.wte, dwpe, sz.wpe);
    DISJOINT(op, dwte, sz.wte, tokens, sz.ids);
    DISJOINT(op, dwte, sz.wte, positions, sz.ids);
    DISJOINT(op, dwpe, sz.wpe, dout, sz.act);
    DISJOINT(op, dwpe, sz.wpe, tokens, sz.ids);
    DISJOINT(op, dwpe, sz.wpe, positions, sz.ids);
    DL_DISPATCH(be, dense, embedding_backward, dwte, dwpe, dout, tokens, positions, N, C, V, max_pos);
}

/* ---- rope -------------------------------------------------------------------------------------------------------- */

/* Bytes spanned by the strided [N, H, D] view: (N−1)·stride + H·D floats. */
static dl_status rope_check(const char *op, int N, int H, int D, int stride, float theta, size_t *span) {
    NEED_POSITIVE(op, N);
    NEED_POSITIVE(op, H);
    NEED_POSITIVE(op, D);
    DL_REQUIRE(D % 2 == 0, DL_ERR_INVALID, "%s: head size D = %d must be even (pairs i and i + D/2)", op, D);
    *span = 0;
    int64_t row = (int64_t)H * D;
    DL_REQUIRE(stride >= row, DL_ERR_INVALID, "%s: stride = %d is smaller than H*D = %lld (tokens would overlap)", op,
               stride, (long long)row);
    DL_REQUIRE(isfinite(theta) && theta > 0.0f, DL_ERR_INVALID, "%s: theta = %g must be a finite number > 0", op,
               (double)theta);
    size_t bytes;
    DL_CHECK(tensor_bytes(op, "inp/out", "N*stride", N, stride, 1, sizeof(float), &bytes));
    *span = bytes - ((size_t)stride - (size_t)row) * sizeof(float);
    return DL_OK;
}

dl_status dl_op_rope_forward(const dl_backend *be, float *out, const float *inp, const int32_t *positions, int N,
                             int H, int D, int stride, float theta) {
    const char *op = "dl_op_rope_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, inp);
    NEED_PTR(op, positions);
    size_t span;
    DL_CHECK(rope_check(op, N, H, D, stride, theta, &span));
    SAME_OR_DISJOINT(op, out, span, inp, span);
    DISJOINT(op, out, span, positions, (size_t)N * sizeof(int32_t));
    DL_DISPATCH(be, dense, rope_forward, out, inp, positions, N, H, D, stride, theta);
}

dl_status dl_op_rope_backward(const dl_backend *be, float *dinp, const float *dout, const int32_t *positions, int N,
                              int H, int D, int stride, float theta) {
    const char *op = "dl_op_rope_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dinp);
    NEED_PTR(op, dout);
    NEED_PTR(op, positions);
    size_t span;
    DL_CHECK(rope_check(op, N, H, D, stride, theta, &span));
    SAME_OR_DISJOINT(op, dinp, span, dout, span);
    DISJOINT(op, dinp, span, positions, (size_t)N * sizeof(int32_t));
    DL_DISPATCH(be, dense, rope_backward, dinp, dout, positions, N, H, D, stride, theta);
}

/* ---- layernorm --------------------------------------------------------------------------------------------------- */

dl_status dl_op_layernorm_forward(const dl_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int N, int C, float eps) {
    const char *op = "dl_op_layernorm_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, mean);
    NEED_PTR(op, rstd);
    NEED_PTR(op, inp);
    NEED_PTR(op, weight);
    NEED_PTR(op, bias);
    NEED_POSITIVE(op, N);
    NEED_POSITIVE(op, C);
    DL_REQUIRE(isfinite(eps) && eps > 0.0f, DL_ERR_INVALID, "%s: eps = %g must be a finite number > 0", op,
               (double)eps);
    size_t act, row = (size_t)N * sizeof(float), col = (size_t)C * sizeof(float);
    DL_CHECK(tensor_bytes(op, "inp/out", "N*C", N, C, 1, sizeof(float), &act));
    DISJOINT(op, out, act, inp, act);
    DISJOINT(op, out, act, weight, col);
    DISJOINT(op, out, act, bias, col);
    DISJOINT(op, out, act, mean, row);
    DISJOINT(op, out, act, rstd, row);
    DISJOINT(op, mean, row, inp, act);
    DISJOINT(op, mean, row, weight, col);
    DISJOINT(op, mean, row, bias, col);
    DISJOINT(op, mean, row, rstd, row);
    DISJOINT(op, rstd, row, inp, act);
    DISJOINT(op, rstd, row, weight, col);
    DISJOINT(op, rstd, row, bias, col);
    DL_DISPATCH(be, dense, layernorm_forward, out, mean, rstd, inp, weight, bias, N, C, eps);
}

dl_status dl_op_layernorm_backward(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                   const float *dout, const float *inp, const float *weight, const float *mean,
                                   const float *rstd, int N, int C) {
    const char *op = "dl_op_layernorm_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dinp);
    NEED_PTR(op, dweight);
    NEED_PTR(op, dbias);
    NEED_PTR(op, dout);
    NEED_PTR(op, inp);
    NEED_PTR(op, weight);
    NEED_PTR(op, mean);
    NEED_PTR(op, rstd);
    NEED_POSITIVE(op, N);
    NEED_POSITIVE(op, C);
    size_t act, row = (size_t)N * sizeof(float), col = (size_t)C * sizeof(float);
    DL_CHECK(tensor_bytes(op, "inp/dout", "N*C", N, C, 1, sizeof(float), &act));
    const void *inputs[] = {dout, inp, weight, mean, rstd};
    const char *input_names[] = {"dout", "inp", "weight", "mean", "rstd"};
    const size_t input_bytes[] = {act, act, col, row, row};
    for (int i = 0; i < 5; i++) {
        DL_CHECK(disjoint(op, "dinp", dinp, act, input_names[i], inputs[i], input_bytes[i]));
        DL_CHECK(disjoint(op, "dweight", dweight, col, input_names[i], inputs[i], input_bytes[i]));
        DL_CHECK(disjoint(op, "dbias", dbias, col, input_names[i], inputs[i], input_bytes[i]));
    }
    DISJOINT(op, dinp, act, dweight, col);
    DISJOINT(op, dinp, act, dbias, col);
    DISJOINT(op, dweight, col, dbias, col);
    DL_DISPATCH(be, dense, layernorm_backward, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

/* ---- elementwise: gelu, residual, dropout ------------------------------------------------------------------------ */

dl_status dl_op_gelu_forward(const dl_backend *be, float *out, const float *inp, size_t n) {
    const char *op = "dl_op_gelu_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, inp);
    NEED_COUNT(op, n);
    size_t bytes;
    DL_CHECK(count_bytes(op, "inp/out", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(op, out, bytes, inp, bytes);
    DL_DISPATCH(be, dense, gelu_forward, out, inp, n);
}

dl_status dl_op_gelu_backward(const dl_backend *be, float *dinp, const float *inp, const float *dout, size_t n) {
    const char *op = "dl_op_gelu_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dinp);
    NEED_PTR(op, inp);
    NEED_PTR(op, dout);
    NEED_COUNT(op, n);
    size_t bytes;
    DL_CHECK(count_bytes(op, "inp/dout", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(op, dinp, bytes, inp, bytes);
    SAME_OR_DISJOINT(op, dinp, bytes, dout, bytes);
    DL_DISPATCH(be, dense, gelu_backward, dinp, inp, dout, n);
}

dl_status dl_op_residual_forward(const dl_backend *be, float *out, const float *a, const float *b, size_t n) {
    const char *op = "dl_op_residual_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, a);
    NEED_PTR(op, b);
    NEED_COUNT(op, n);
    size_t bytes;
    DL_CHECK(count_bytes(op, "out", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(op, out, bytes, a, bytes);
    SAME_OR_DISJOINT(op, out, bytes, b, bytes);
    DL_DISPATCH(be, dense, residual_forward, out, a, b, n);
}

dl_status dl_op_residual_backward(const dl_backend *be, float *da, float *db, const float *dout, size_t n) {
    const char *op = "dl_op_residual_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, da);
    NEED_PTR(op, db);
    NEED_PTR(op, dout);
    NEED_COUNT(op, n);
    size_t bytes;
    DL_CHECK(count_bytes(op, "dout", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(op, da, bytes, dout, bytes);
    SAME_OR_DISJOINT(op, db, bytes, dout, bytes);
    SAME_OR_DISJOINT(op, da, bytes, db, bytes);
    DL_DISPATCH(be, dense, residual_backward, da, db, dout, n);
}

static dl_status dropout_check(const char *op, float p) {
    DL_REQUIRE(p >= 0.0f && p < 1.0f, DL_ERR_INVALID, "%s: p = %g, must be in [0, 1)", op, (double)p);
    return DL_OK;
}

dl_status dl_op_dropout_forward(const dl_backend *be, float *out, const float *inp, size_t n, float p, uint64_t seed,
                                uint64_t stream) {
    const char *op = "dl_op_dropout_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, inp);
    NEED_COUNT(op, n);
    DL_CHECK(dropout_check(op, p));
    size_t bytes;
    DL_CHECK(count_bytes(op, "inp/out", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(op, out, bytes, inp, bytes);
    DL_DISPATCH(be, dense, dropout_forward, out, inp, n, p, seed, stream);
}

dl_status dl_op_dropout_backward(const dl_backend *be, float *dinp, const float *dout, size_t n, float p,
                                 uint64_t seed, uint64_t stream) {
    const char *op = "dl_op_dropout_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dinp);
    NEED_PTR(op, dout);
    NEED_COUNT(op, n);
    DL_CHECK(dropout_check(op, p));
    size_t bytes;
    DL_CHECK(count_bytes(op, "dinp/dout", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(op, dinp, bytes, dout, bytes);
    DL_DISPATCH(be, dense, dropout_backward, dinp, dout, n, p, seed, stream);
}

/* ---- cross-entropy and sequence sums ----------------------------------------------------------------------------- */

dl_status dl_op_xent_forward(const dl_backend *be, float *losses, float *lse, const float *logits,
                             const int32_t *targets, int N, int V) {
    const char *op = "dl_op_xent_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, losses);
    NEED_PTR(op, lse);
    NEED_PTR(op, logits);
    NEED_PTR(op, targets);
    NEED_POSITIVE(op, N);
    NEED_POSITIVE(op, V);
    size_t logit_bytes, row = (size_t)N * sizeof(float);
    DL_CHECK(tensor_bytes(op, "logits", "N*V", N, V, 1, sizeof(float), &logit_bytes));
    DISJOINT(op, losses, row, logits, logit_bytes);
    DISJOINT(op, losses, row, targets, row);
    DISJOINT(op, losses, row, lse, row);
    DISJOINT(op, lse, row, logits, logit_bytes);
    DISJOINT(op, lse, row, targets, row);
    DL_DISPATCH(be, dense, xent_forward, losses, lse, logits, targets, N, V);
}

dl_status dl_op_xent_backward(const dl_backend *be, float *dlogits, const float *logits, const float *lse,
                              const int32_t *targets, const float *dlosses, int N, int V) {
    const char *op = "dl_op_xent_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dlogits);
    NEED_PTR(op, logits);
    NEED_PTR(op, lse);
    NEED_PTR(op, targets);
    NEED_PTR(op, dlosses);
    NEED_POSITIVE(op, N);
    NEED_POSITIVE(op, V);
    size_t logit_bytes, row = (size_t)N * sizeof(float);
    DL_CHECK(tensor_bytes(op, "logits", "N*V", N, V, 1, sizeof(float), &logit_bytes));
    SAME_OR_DISJOINT(op, dlogits, logit_bytes, logits, logit_bytes);
    DISJOINT(op, dlogits, logit_bytes, lse, row);
    DISJOINT(op, dlogits, logit_bytes, targets, row);
    DISJOINT(op, dlogits, logit_bytes, dlosses, row);
    DL_DISPATCH(be, dense, xent_backward, dlogits, logits, lse, targets, dlosses, N, V);
}

dl_status dl_op_sequence_sum_forward(const dl_backend *be, float *out, const float *values,
                                     const int32_t *cu_seqlens, int num_seqs) {
    const char *op = "dl_op_sequence_sum_forward";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, values);
    NEED_PTR(op, cu_seqlens);
    NEED_POSITIVE(op, num_seqs);
    DL_REQUIRE(num_seqs < INT_MAX, DL_ERR_INVALID, "%s: num_seqs = %d is too large", op, num_seqs);
    size_t out_bytes = (size_t)num_seqs * sizeof(float);
    DISJOINT(op, out, out_bytes, cu_seqlens, (size_t)(num_seqs + 1) * sizeof(int32_t));
    DISJOINT(op, out, out_bytes, values, sizeof(float)); /* values' length lives in cu_seqlens: check its start */
    DL_DISPATCH(be, dense, sequence_sum_forward, out, values, cu_seqlens, num_seqs);
}

dl_status dl_op_sequence_sum_backward(const dl_backend *be, float *dvalues, const float *dout,
                                      const int32_t *cu_seqlens, int num_seqs) {
    const char *op = "dl_op_sequence_sum_backward";
    NEED_BACKEND(op);
    NEED_PTR(op, dvalues);
    NEED_PTR(op, dout);
    NEED_PTR(op, cu_seqlens);
    NEED_POSITIVE(op, num_seqs);
    DL_REQUIRE(num_seqs < INT_MAX, DL_ERR_INVALID, "%s: num_seqs = %d is too large", op, num_seqs);
    size_t dout_bytes = (size_t)num_seqs * sizeof(float);
    DISJOINT(op, dvalues, sizeof(float), dout, dout_bytes);
    DISJOINT(op, dvalues, sizeof(float), cu_seqlens, (size_t)(num_seqs + 1) * sizeof(int32_t));
    DL_DISPATCH(be, dense, sequence_sum_backward, dvalues, dout, cu_seqlens, num_seqs);
}

/* ---- bf16 conversion ----------------------------------------------------------------------------------------------- */

dl_status dl_op_f32_to_bf16(const dl_backend *be, dl_bf16 *out, const float *inp, size_t n) {
    const char *op = "dl_op_f32_to_bf16";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, inp);
    NEED_COUNT(op, n);
    size_t in_bytes;
    DL_CHECK(count_bytes(op, "inp", n, sizeof(float), &in_bytes));
    DISJOINT(op, out, n * sizeof(dl_bf16), inp, in_bytes);
    DL_DISPATCH(be, dense, f32_to_bf16, out, inp, n);
}

dl_status dl_op_bf16_to_f32(const dl_backend *be, float *out, const dl_bf16 *inp, size_t n) {
    const char *op = "dl_op_bf16_to_f32";
    NEED_BACKEND(op);
    NEED_PTR(op, out);
    NEED_PTR(op, inp);
    NEED_COUNT(op, n);
    size_t out_bytes;
    DL_CHECK(count_bytes(op, "out", n, sizeof(float), &out_bytes));
    DISJOINT(op, out, out_bytes, inp, n * sizeof(dl_bf16));
    DL_DISPATCH(be, dense, bf16_to_f32, out, inp, n);
}
