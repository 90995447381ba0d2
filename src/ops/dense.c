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
 * it themselves, before writing anything.
 *
 * The checks are shared; each dispatcher states only what is its own: CHECK_OP(the pointers it requires),
 * CHECK_POSITIVE(its sizes), its byte sizes, OUTPUTS_DISJOINT(its outputs, its inputs) and its in-place pairs. Every
 * message names the op (the dispatcher's __func__) and the argument at fault, with its value where it has one. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops/backend_internal.h"

/* ---- argument checks -------------------------------------------------------------------------------------------- */

/* The item at `index` of a list spelled by the preprocessor ("out, inp, weight"), for naming it in a message. */
static void list_item(const char *list, size_t index, const char **item, int *len) {
    for (; index > 0 && *list; list++)
        if (*list == ',')
            index--;
    while (*list == ' ')
        list++;
    size_t n = strcspn(list, ", ");
    *item = list;
    *len = (int)n;
}

static dl_status check_open_and_set(const dl_backend *be, const char *op, const char *names, const void *const *ptrs,
                                    size_t count) {
    DL_REQUIRE(be != NULL && be->ops != NULL, DL_ERR_INVALID, "%s: backend is not open", op);
    for (size_t i = 0; i < count; i++)
        if (ptrs[i] == NULL) {
            const char *name;
            int len;
            list_item(names, i, &name, &len);
            return DL_FAIL(DL_ERR_INVALID, "%s: argument %.*s is NULL", op, len, name);
        }
    return DL_OK;
}

static dl_status check_positive(const char *op, const char *names, const int64_t *sizes, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (sizes[i] <= 0) {
            const char *name;
            int len;
            list_item(names, i, &name, &len);
            return DL_FAIL(DL_ERR_INVALID, "%s: %.*s = %lld, must be positive", op, len, name, (long long)sizes[i]);
        }
    return DL_OK;
}

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* How every dispatcher starts: declares `op`, its own name ("dl_op_matmul_forward") for the messages, then fails
 * unless the backend is open and none of the listed pointers is NULL (ops.h's nullable ones are not listed). */
#define CHECK_OP(...)                                                                                            \
    const char *const op = __func__;                                                                             \
    DL_CHECK(check_open_and_set(be, op, #__VA_ARGS__, (const void *const[]){__VA_ARGS__},                       \
                                COUNT_OF(((const void *const[]){__VA_ARGS__}))))

/* Every listed size (an int) must be positive; the message names the first that is not, with its value. */
#define CHECK_POSITIVE(...)                                                                                      \
    DL_CHECK(check_positive(op, #__VA_ARGS__, (const int64_t[]){__VA_ARGS__},                                   \
                            COUNT_OF(((const int64_t[]){__VA_ARGS__}))))

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

/* Bytes of the n elements of `elem` bytes of an elementwise op's tensor; n must be positive. */
static dl_status elements_bytes(const char *op, const char *tensor, size_t n, size_t elem, size_t *bytes) {
    size_t total;
    *bytes = 0;
    DL_REQUIRE(n > 0, DL_ERR_INVALID, "%s: n = 0 elements, must be positive", op);
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

#define DISJOINT(a, na, b, nb) DL_CHECK(disjoint(op, #a, a, na, #b, b, nb))
#define SAME_OR_DISJOINT(a, na, b, nb) DL_CHECK(same_or_disjoint(op, #a, a, na, #b, b, nb))

/* A tensor argument of the overlap checks: its name, where it starts and how many bytes it spans. */
typedef struct tensor_arg {
    const char *name;
    const void *ptr;
    size_t bytes;
} tensor_arg;
#define TENSOR(p, bytes) {#p, (p), (bytes)}

/* No output overlaps an input or another output. */
static dl_status outputs_disjoint(const char *op, const tensor_arg *outs, size_t num_outs, const tensor_arg *ins,
                                  size_t num_ins) {
    for (size_t o = 0; o < num_outs; o++) {
        for (size_t i = 0; i < num_ins; i++)
            DL_CHECK(disjoint(op, outs[o].name, outs[o].ptr, outs[o].bytes, ins[i].name, ins[i].ptr, ins[i].bytes));
        for (size_t later = o + 1; later < num_outs; later++)
            DL_CHECK(disjoint(op, outs[o].name, outs[o].ptr, outs[o].bytes, outs[later].name, outs[later].ptr,
                              outs[later].bytes));
    }
    return DL_OK;
}

#define OUTPUTS_DISJOINT(outs, ins) DL_CHECK(outputs_disjoint(op, outs, COUNT_OF(outs), ins, COUNT_OF(ins)))

/* ---- matmul ------------------------------------------------------------------------------------------------------ */

/* The byte sizes of inp [N,C], weight [OC,C] (elements of `elem` bytes), out [N,OC] and bias [OC] after checking N,
 * C, OC. */
typedef struct matmul_sizes {
    size_t inp, weight, out, bias;
} matmul_sizes;

static dl_status matmul_check_sizes(const char *op, int N, int C, int OC, size_t elem, matmul_sizes *sz) {
    *sz = (matmul_sizes){0};
    CHECK_POSITIVE(N, C, OC);
    DL_CHECK(tensor_bytes(op, "inp", "N*C", N, C, 1, elem, &sz->inp));
    DL_CHECK(tensor_bytes(op, "weight", "OC*C", OC, C, 1, elem, &sz->weight));
    DL_CHECK(tensor_bytes(op, "out", "N*OC", N, OC, 1, sizeof(float), &sz->out));
    sz->bias = (size_t)OC * sizeof(float);
    return DL_OK;
}

/* What the fp32 and bf16 forwards check after their pointers: sizes, and out apart from every input. */
static dl_status matmul_forward_check(const char *op, const float *out, const void *inp, const void *weight,
                                      const float *bias, int N, int C, int OC, size_t elem) {
    matmul_sizes sz;
    DL_CHECK(matmul_check_sizes(op, N, C, OC, elem, &sz));
    const tensor_arg outs[] = {TENSOR(out, sz.out)};
    const tensor_arg ins[] = {TENSOR(inp, sz.inp), TENSOR(weight, sz.weight), TENSOR(bias, sz.bias)};
    OUTPUTS_DISJOINT(outs, ins);
    return DL_OK;
}

dl_status dl_op_matmul_forward(const dl_backend *be, float *out, const float *inp, const float *weight,
                               const float *bias, int N, int C, int OC) {
    CHECK_OP(out, inp, weight);
    DL_CHECK(matmul_forward_check(op, out, inp, weight, bias, N, C, OC, sizeof(float)));
    DL_DISPATCH(be, dense, matmul_forward, out, inp, weight, bias, N, C, OC);
}

dl_status dl_op_matmul_forward_bf16(const dl_backend *be, float *out, const dl_bf16 *inp, const dl_bf16 *weight,
                                    const float *bias, int N, int C, int OC) {
    CHECK_OP(out, inp, weight);
    DL_CHECK(matmul_forward_check(op, out, inp, weight, bias, N, C, OC, sizeof(dl_bf16)));
    DL_DISPATCH(be, dense, matmul_forward_bf16, out, inp, weight, bias, N, C, OC);
}

/* What the fp32 and bf16 backwards check after their pointers: sizes, and the outputs (dinp, dweight, dbias; fp32)
 * apart from each other and from the inputs (dout, inp, weight; elements of `elem` bytes). */
static dl_status matmul_backward_check(const char *op, const float *dinp, const float *dweight, const float *dbias,
                                       const void *dout, const void *inp, const void *weight, int N, int C, int OC,
                                       size_t elem) {
    matmul_sizes sz;
    DL_CHECK(matmul_check_sizes(op, N, C, OC, elem, &sz));
    size_t dinp_bytes = sz.inp, dweight_bytes = sz.weight, dout_bytes = sz.out;
    if (elem != sizeof(float)) { /* the fp32 gradients of bf16 operands */
        DL_CHECK(tensor_bytes(op, "dinp", "N*C", N, C, 1, sizeof(float), &dinp_bytes));
        DL_CHECK(tensor_bytes(op, "dweight", "OC*C", OC, C, 1, sizeof(float), &dweight_bytes));
        dout_bytes = sz.out / sizeof(float) * elem;
    }
    const tensor_arg outs[] = {TENSOR(dinp, dinp_bytes), TENSOR(dweight, dweight_bytes), TENSOR(dbias, sz.bias)};
    const tensor_arg ins[] = {TENSOR(dout, dout_bytes), TENSOR(inp, sz.inp), TENSOR(weight, sz.weight)};
    OUTPUTS_DISJOINT(outs, ins);
    return DL_OK;
}

dl_status dl_op_matmul_backward(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                const float *dout, const float *inp, const float *weight, int N, int C, int OC) {
    CHECK_OP(dweight, dout, inp, weight);
    DL_CHECK(matmul_backward_check(op, dinp, dweight, dbias, dout, inp, weight, N, C, OC, sizeof(float)));
    DL_DISPATCH(be, dense, matmul_backward, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

dl_status dl_op_matmul_backward_bf16(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                     const dl_bf16 *dout, const dl_bf16 *inp, const dl_bf16 *weight, int N, int C,
                                     int OC) {
    CHECK_OP(dweight, dout, inp, weight);
    DL_CHECK(matmul_backward_check(op, dinp, dweight, dbias, dout, inp, weight, N, C, OC, sizeof(dl_bf16)));
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
    CHECK_POSITIVE(N, C, V);
    DL_CHECK(tensor_bytes(op, "out/dout", "N*C", N, C, 1, sizeof(float), &sz->act));
    DL_CHECK(tensor_bytes(op, "wte", "V*C", V, C, 1, sizeof(float), &sz->wte));
    sz->ids = (size_t)N * sizeof(int32_t);
    sz->wpe = 0;
    if (positions) {
        CHECK_POSITIVE(max_pos);
        DL_CHECK(tensor_bytes(op, "wpe", "max_pos*C", max_pos, C, 1, sizeof(float), &sz->wpe));
    }
    return DL_OK;
}

dl_status dl_op_embedding_forward(const dl_backend *be, float *out, const int32_t *tokens, const int32_t *positions,
                                  const float *wte, const float *wpe, int N, int C, int V, int max_pos) {
    CHECK_OP(out, tokens, wte);
    embedding_sizes sz;
    DL_CHECK(embedding_check_sizes(op, positions, wpe, "wpe", N, C, V, max_pos, &sz));
    const tensor_arg outs[] = {TENSOR(out, sz.act)};
    const tensor_arg ins[] = {TENSOR(wte, sz.wte), TENSOR(wpe, sz.wpe), TENSOR(tokens, sz.ids),
                              TENSOR(positions, sz.ids)};
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, embedding_forward, out, tokens, positions, wte, wpe, N, C, V, max_pos);
}

dl_status dl_op_embedding_backward(const dl_backend *be, float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tokens, const int32_t *positions, int N, int C, int V,
                                   int max_pos) {
    CHECK_OP(dwte, dout, tokens);
    embedding_sizes sz;
    DL_CHECK(embedding_check_sizes(op, positions, dwpe, "dwpe", N, C, V, max_pos, &sz));
    const tensor_arg outs[] = {TENSOR(dwte, sz.wte), TENSOR(dwpe, sz.wpe)};
    const tensor_arg ins[] = {TENSOR(dout, sz.act), TENSOR(tokens, sz.ids), TENSOR(positions, sz.ids)};
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, embedding_backward, dwte, dwpe, dout, tokens, positions, N, C, V, max_pos);
}

/* ---- rope -------------------------------------------------------------------------------------------------------- */

/* Bytes spanned by the strided [N, H, D] view: (N−1)·stride + H·D floats. */
static dl_status rope_check(const char *op, int N, int H, int D, int stride, float theta, size_t *span) {
    CHECK_POSITIVE(N, H, D);
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
    CHECK_OP(out, inp, positions);
    size_t span;
    DL_CHECK(rope_check(op, N, H, D, stride, theta, &span));
    SAME_OR_DISJOINT(out, span, inp, span);
    DISJOINT(out, span, positions, (size_t)N * sizeof(int32_t));
    DL_DISPATCH(be, dense, rope_forward, out, inp, positions, N, H, D, stride, theta);
}

dl_status dl_op_rope_backward(const dl_backend *be, float *dinp, const float *dout, const int32_t *positions, int N,
                              int H, int D, int stride, float theta) {
    CHECK_OP(dinp, dout, positions);
    size_t span;
    DL_CHECK(rope_check(op, N, H, D, stride, theta, &span));
    SAME_OR_DISJOINT(dinp, span, dout, span);
    DISJOINT(dinp, span, positions, (size_t)N * sizeof(int32_t));
    DL_DISPATCH(be, dense, rope_backward, dinp, dout, positions, N, H, D, stride, theta);
}

/* ---- layernorm --------------------------------------------------------------------------------------------------- */

dl_status dl_op_layernorm_forward(const dl_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int N, int C, float eps) {
    CHECK_OP(out, mean, rstd, inp, weight, bias);
    size_t act, row = (size_t)N * sizeof(float), col = (size_t)C * sizeof(float);
    CHECK_POSITIVE(N, C);
    DL_REQUIRE(isfinite(eps) && eps > 0.0f, DL_ERR_INVALID, "%s: eps = %g must be a finite number > 0", op,
               (double)eps);
    DL_CHECK(tensor_bytes(op, "inp/out", "N*C", N, C, 1, sizeof(float), &act));
    const tensor_arg outs[] = {TENSOR(out, act), TENSOR(mean, row), TENSOR(rstd, row)};
    const tensor_arg ins[] = {TENSOR(inp, act), TENSOR(weight, col), TENSOR(bias, col)};
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, layernorm_forward, out, mean, rstd, inp, weight, bias, N, C, eps);
}

dl_status dl_op_layernorm_backward(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                   const float *dout, const float *inp, const float *weight, const float *mean,
                                   const float *rstd, int N, int C) {
    CHECK_OP(dinp, dweight, dbias, dout, inp, weight, mean, rstd);
    size_t act, row = (size_t)N * sizeof(float), col = (size_t)C * sizeof(float);
    CHECK_POSITIVE(N, C);
    DL_CHECK(tensor_bytes(op, "inp/dout", "N*C", N, C, 1, sizeof(float), &act));
    const tensor_arg outs[] = {TENSOR(dinp, act), TENSOR(dweight, col), TENSOR(dbias, col)};
    const tensor_arg ins[] = {TENSOR(dout, act), TENSOR(inp, act), TENSOR(weight, col), TENSOR(mean, row),
                              TENSOR(rstd, row)};
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, layernorm_backward, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

/* ---- elementwise: gelu, residual, dropout ------------------------------------------------------------------------ */

dl_status dl_op_gelu_forward(const dl_backend *be, float *out, const float *inp, size_t n) {
    CHECK_OP(out, inp);
    size_t bytes;
    DL_CHECK(elements_bytes(op, "inp/out", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(out, bytes, inp, bytes);
    DL_DISPATCH(be, dense, gelu_forward, out, inp, n);
}

dl_status dl_op_gelu_backward(const dl_backend *be, float *dinp, const float *inp, const float *dout, size_t n) {
    CHECK_OP(dinp, inp, dout);
    size_t bytes;
    DL_CHECK(elements_bytes(op, "inp/dout", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(dinp, bytes, inp, bytes);
    SAME_OR_DISJOINT(dinp, bytes, dout, bytes);
    DL_DISPATCH(be, dense, gelu_backward, dinp, inp, dout, n);
}

dl_status dl_op_residual_forward(const dl_backend *be, float *out, const float *a, const float *b, size_t n) {
    CHECK_OP(out, a, b);
    size_t bytes;
    DL_CHECK(elements_bytes(op, "out", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(out, bytes, a, bytes);
    SAME_OR_DISJOINT(out, bytes, b, bytes);
    DL_DISPATCH(be, dense, residual_forward, out, a, b, n);
}

dl_status dl_op_residual_backward(const dl_backend *be, float *da, float *db, const float *dout, size_t n) {
    CHECK_OP(da, db, dout);
    size_t bytes;
    DL_CHECK(elements_bytes(op, "dout", n, sizeof(float), &bytes));
    SAME_OR_DISJOINT(da, bytes, dout, bytes);
    SAME_OR_DISJOINT(db, bytes, dout, bytes);
    SAME_OR_DISJOINT(da, bytes, db, bytes);
    DL_DISPATCH(be, dense, residual_backward, da, db, dout, n);
}

static dl_status dropout_check(const char *op, float p) {
    DL_REQUIRE(p >= 0.0f && p < 1.0f, DL_ERR_INVALID, "%s: p = %g, must be in [0, 1)", op, (double)p);
    return DL_OK;
}

dl_status dl_op_dropout_forward(const dl_backend *be, float *out, const float *inp, size_t n, float p, uint64_t seed,
                                uint64_t stream) {
    CHECK_OP(out, inp);
    size_t bytes;
    DL_CHECK(elements_bytes(op, "inp/out", n, sizeof(float), &bytes));
    DL_CHECK(dropout_check(op, p));
    SAME_OR_DISJOINT(out, bytes, inp, bytes);
    DL_DISPATCH(be, dense, dropout_forward, out, inp, n, p, seed, stream);
}

dl_status dl_op_dropout_backward(const dl_backend *be, float *dinp, const float *dout, size_t n, float p,
                                 uint64_t seed, uint64_t stream) {
    CHECK_OP(dinp, dout);
    size_t bytes;
    DL_CHECK(elements_bytes(op, "dinp/dout", n, sizeof(float), &bytes));
    DL_CHECK(dropout_check(op, p));
    SAME_OR_DISJOINT(dinp, bytes, dout, bytes);
    DL_DISPATCH(be, dense, dropout_backward, dinp, dout, n, p, seed, stream);
}

/* ---- cross-entropy and sequence sums ----------------------------------------------------------------------------- */

dl_status dl_op_xent_forward(const dl_backend *be, float *losses, float *lse, const float *logits,
                             const int32_t *targets, int N, int V) {
    CHECK_OP(losses, lse, logits, targets);
    CHECK_POSITIVE(N, V);
    size_t logit_bytes, row = (size_t)N * sizeof(float);
    DL_CHECK(tensor_bytes(op, "logits", "N*V", N, V, 1, sizeof(float), &logit_bytes));
    const tensor_arg outs[] = {TENSOR(losses, row), TENSOR(lse, row)};
    const tensor_arg ins[] = {TENSOR(logits, logit_bytes), TENSOR(targets, row)};
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, xent_forward, losses, lse, logits, targets, N, V);
}

dl_status dl_op_xent_backward(const dl_backend *be, float *dlogits, const float *logits, const float *lse,
                              const int32_t *targets, const float *dlosses, int N, int V) {
    CHECK_OP(dlogits, logits, lse, targets, dlosses);
    CHECK_POSITIVE(N, V);
    size_t logit_bytes, row = (size_t)N * sizeof(float);
    DL_CHECK(tensor_bytes(op, "logits", "N*V", N, V, 1, sizeof(float), &logit_bytes));
    SAME_OR_DISJOINT(dlogits, logit_bytes, logits, logit_bytes); /* the fused classifier works in place */
    const tensor_arg outs[] = {TENSOR(dlogits, logit_bytes)};
    const tensor_arg ins[] = {TENSOR(lse, row), TENSOR(targets, row), TENSOR(dlosses, row)};
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, xent_backward, dlogits, logits, lse, targets, dlosses, N, V);
}

/* num_seqs documents: positive, and num_seqs + 1 boundaries still countable in an int. */
static dl_status sequence_sum_check(const char *op, int num_seqs) {
    CHECK_POSITIVE(num_seqs);
    DL_REQUIRE(num_seqs < INT_MAX, DL_ERR_INVALID, "%s: num_seqs = %d is too large", op, num_seqs);
    return DL_OK;
}

dl_status dl_op_sequence_sum_forward(const dl_backend *be, float *out, const float *values,
                                     const int32_t *cu_seqlens, int num_seqs) {
    CHECK_OP(out, values, cu_seqlens);
    DL_CHECK(sequence_sum_check(op, num_seqs));
    const tensor_arg outs[] = {TENSOR(out, (size_t)num_seqs * sizeof(float))};
    const tensor_arg ins[] = {TENSOR(cu_seqlens, (size_t)(num_seqs + 1) * sizeof(int32_t)),
                              TENSOR(values, sizeof(float))}; /* values' length lives in cu_seqlens: its start */
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, sequence_sum_forward, out, values, cu_seqlens, num_seqs);
}

dl_status dl_op_sequence_sum_backward(const dl_backend *be, float *dvalues, const float *dout,
                                      const int32_t *cu_seqlens, int num_seqs) {
    CHECK_OP(dvalues, dout, cu_seqlens);
    DL_CHECK(sequence_sum_check(op, num_seqs));
    const tensor_arg outs[] = {TENSOR(dvalues, sizeof(float))}; /* its length lives in cu_seqlens: its start */
    const tensor_arg ins[] = {TENSOR(dout, (size_t)num_seqs * sizeof(float)),
                              TENSOR(cu_seqlens, (size_t)(num_seqs + 1) * sizeof(int32_t))};
    OUTPUTS_DISJOINT(outs, ins);
    DL_DISPATCH(be, dense, sequence_sum_backward, dvalues, dout, cu_seqlens, num_seqs);
}

/* ---- bf16 conversion ----------------------------------------------------------------------------------------------- */

dl_status dl_op_f32_to_bf16(const dl_backend *be, dl_bf16 *out, const float *inp, size_t n) {
    CHECK_OP(out, inp);
    size_t in_bytes;
    DL_CHECK(elements_bytes(op, "inp", n, sizeof(float), &in_bytes));
    DISJOINT(out, n * sizeof(dl_bf16), inp, in_bytes);
    DL_DISPATCH(be, dense, f32_to_bf16, out, inp, n);
}

dl_status dl_op_bf16_to_f32(const dl_backend *be, float *out, const dl_bf16 *inp, size_t n) {
    CHECK_OP(out, inp);
    size_t out_bytes;
    DL_CHECK(elements_bytes(op, "out", n, sizeof(float), &out_bytes));
    DISJOINT(out, out_bytes, inp, n * sizeof(dl_bf16));
    DL_DISPATCH(be, dense, bf16_to_f32, out, inp, n);
}
