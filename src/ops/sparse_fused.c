/* sparse_fused.c — the checked entry points of the fused click-model ops (ops.h: "sparse, fused").
 *
 * Each dl_op_* checks the table layout (block and row sizes, where the linear pair sits), the hyper-parameters and
 * the CSR batch for every backend; on host memory (the CPU backend) it also checks every entry's table row and
 * field, so a bad id fails with DL_ERR_INVALID naming the entry and its batch row instead of writing outside the
 * table. The index check is one serial pass over the entries, small next to the pairwise work per row. */
#include <inttypes.h>
#include <math.h>

#include "ops/backend_internal.h"
#include "ops/ops.h"

#define REQUIRE_PTR(p, op) DL_REQUIRE((p) != NULL, DL_ERR_INVALID, "%s: %s is NULL", op, #p)

/* The layout rules of a fused table; ffm says whether num_fields may exceed 1. */
static dl_status check_table(const dl_backend *be, const char *op, const dl_click_table *t, int ffm) {
    DL_REQUIRE(be != NULL && be->ops != NULL, DL_ERR_INVALID, "%s: backend is not open", op);
    REQUIRE_PTR(t, op);
    DL_REQUIRE(t->num_rows >= 0, DL_ERR_INVALID, "%s: num_rows = %" PRId64 " is negative", op, t->num_rows);
    DL_REQUIRE(t->num_rows == 0 || t->data != NULL, DL_ERR_INVALID, "%s: table data is NULL", op);
    DL_REQUIRE(t->num_fields >= 1 && (ffm || t->num_fields == 1), DL_ERR_INVALID,
               "%s: num_fields = %d (FFM needs >= 1, FM exactly 1)", op, t->num_fields);
    DL_REQUIRE(t->k >= 1 && t->kpad >= t->k && t->kpad % 4 == 0, DL_ERR_INVALID,
               "%s: need 1 <= k <= kpad with kpad a multiple of 4, got k = %d, kpad = %d", op, t->k, t->kpad);
    DL_REQUIRE(ffm || t->kpad <= 4096, DL_ERR_INVALID, "%s: kpad = %d exceeds 4096", op, t->kpad);
    int64_t blocks = (int64_t)t->num_fields * 2 * t->kpad;
    int64_t need = blocks;
    if (t->linear_offset >= 0) {
        DL_REQUIRE(t->linear_offset >= blocks && t->linear_offset % 4 == 0, DL_ERR_INVALID,
                   "%s: linear_offset = %d must be a multiple of 4 at or past the %" PRId64 " block floats", op,
                   t->linear_offset, blocks);
        need = (int64_t)t->linear_offset + 2;
    } else {
        DL_REQUIRE(t->linear_offset == -1, DL_ERR_INVALID, "%s: linear_offset = %d (use -1 for none)", op,
                   t->linear_offset);
    }
    DL_REQUIRE(t->row_floats >= need && t->row_floats % 4 == 0, DL_ERR_INVALID,
               "%s: row_floats = %d must be a multiple of 4 holding %" PRId64 " floats", op, t->row_floats, need);
    DL_REQUIRE(t->num_rows <= INT64_MAX / 4 / t->row_floats, DL_ERR_INVALID,
               "%s: a table of %" PRId64 " rows × %d floats does not fit in memory", op, t->num_rows, t->row_floats);
    return DL_OK;
}

/* The CSR batch: pointers, offsets, and (host memory only) every entry's row and field. */
static dl_status check_batch(const dl_backend *be, const char *op, const dl_click_table *t, const dl_click_rows *b,
                             int ffm, int labels) {
    REQUIRE_PTR(b, op);
    DL_REQUIRE(b->B >= 0, DL_ERR_INVALID, "%s: batch size B = %d is negative", op, b->B);
    REQUIRE_PTR(b->row_ptr, op);
    if (b->B == 0)
        return DL_OK;
    REQUIRE_PTR(b->rows, op);
    REQUIRE_PTR(b->values, op);
    if (ffm)
        REQUIRE_PTR(b->fields, op);
    if (labels)
        REQUIRE_PTR(b->labels, op);
    if (be->kind != DL_DEVICE_CPU)
        return DL_OK;
    DL_REQUIRE(b->row_ptr[0] == 0, DL_ERR_INVALID, "%s: row_ptr[0] = %" PRId32 ", must be 0", op, b->row_ptr[0]);
    for (int r = 0; r < b->B; r++) /* all offsets first: the entry arrays hold row_ptr[B] elements */
        DL_REQUIRE(b->row_ptr[r + 1] >= b->row_ptr[r], DL_ERR_INVALID,
                   "%s: row_ptr[%d] = %" PRId32 " is less than row_ptr[%d] = %" PRId32, op, r + 1, b->row_ptr[r + 1],
                   r, b->row_ptr[r]);
    for (int r = 0; r < b->B; r++) {
        for (int32_t e = b->row_ptr[r]; e < b->row_ptr[r + 1]; e++) {
            if (b->rows[e] < 0 || b->rows[e] >= t->num_rows) {
                dl_status s = DL_FAIL(DL_ERR_INVALID,
                                      "%s: rows[%" PRId32 "] = %" PRId32 " (batch row %d) is outside the table [0, %"
                                      PRId64 ")", op, e, b->rows[e], r, t->num_rows);
                dl_error_hint("feature ids must be hashed into the table (model.hash_buckets)");
                return s;
            }
            if (ffm && (b->fields[e] < 0 || b->fields[e] >= t->num_fields))
                return DL_FAIL(DL_ERR_INVALID,
                               "%s: fields[%" PRId32 "] = %" PRId32 " (batch row %d) is outside [0, %d)", op, e,
                               b->fields[e], r, t->num_fields);
        }
    }
    return DL_OK;
}

static dl_status check_rates(const char *op, float lr, float weight_decay) {
    DL_REQUIRE(isfinite(lr) && lr > 0.0f, DL_ERR_INVALID, "%s: lr = %g must be finite and > 0", op, (double)lr);
    DL_REQUIRE(isfinite(weight_decay) && weight_decay >= 0.0f, DL_ERR_INVALID,
               "%s: weight_decay = %g must be finite and >= 0", op, (double)weight_decay);
    return DL_OK;
}

dl_status dl_op_ffm_fused_forward(const dl_backend *be, float *logits, const dl_click_table *table,
                                  const dl_click_rows *batch) {
    static const char op[] = "dl_op_ffm_fused_forward";
    DL_CHECK(check_table(be, op, table, 1));
    DL_CHECK(check_batch(be, op, table, batch, 1, 0));
    if (batch->B > 0)
        REQUIRE_PTR(logits, op);
    DL_DISPATCH(be, sparse, ffm_fused_forward, logits, table, batch);
}

dl_status dl_op_ffm_fused_sgd(const dl_backend *be, float *logits, dl_click_table *table, const dl_click_rows *batch,
                              float lr, float weight_decay) {
    static const char op[] = "dl_op_ffm_fused_sgd";
    DL_CHECK(check_table(be, op, table, 1));
    DL_CHECK(check_batch(be, op, table, batch, 1, 1));
    DL_CHECK(check_rates(op, lr, weight_decay));
    if (batch->B > 0)
        REQUIRE_PTR(logits, op);
    DL_DISPATCH(be, sparse, ffm_fused_sgd, logits, table, batch, lr, weight_decay);
}

dl_status dl_op_fm_fused_forward(const dl_backend *be, float *logits, const dl_click_table *table,
                                 const dl_click_rows *batch) {
    static const char op[] = "dl_op_fm_fused_forward";
    DL_CHECK(check_table(be, op, table, 0));
    DL_CHECK(check_batch(be, op, table, batch, 0, 0));
    if (batch->B > 0)
        REQUIRE_PTR(logits, op);
    DL_DISPATCH(be, sparse, fm_fused_forward, logits, table, batch);
}

dl_status dl_op_fm_fused_sgd(const dl_backend *be, float *logits, dl_click_table *table, const dl_click_rows *batch,
                             float lr, float weight_decay) {
    static const char op[] = "dl_op_fm_fused_sgd";
    DL_CHECK(check_table(be, op, table, 0));
    DL_CHECK(check_batch(be, op, table, batch, 0, 1));
    DL_CHECK(check_rates(op, lr, weight_decay));
    if (batch->B > 0)
        REQUIRE_PTR(logits, op);
    DL_DISPATCH(be, sparse, fm_fused_sgd, logits, table, batch, lr, weight_decay);
}
