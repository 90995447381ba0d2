/* sparse.c — the checked entry points of the sparse family: embedding bags, FM, FFM and the AdaGrad row update.
 *
 * Each dl_op_* checks sizes, NULL pointers and hyper-parameters for every backend. The index arrays (CSR offsets,
 * table rows, fields) are checked too when the backend's buffers are host memory (the CPU backend): a row id
 * outside the table fails with DL_ERR_INVALID naming the entry, its value and the batch row, instead of reading or
 * writing outside the table. On a GPU the indices live in device memory and that backend's kernels must guard
 * their own reads. The checks are one serial pass over the indices, small next to the kpad-wide work per entry.
 *
 * Latent rows are kpad floats with k real ones (1 ≤ k ≤ kpad); the padding must be zero (see cpu_sparse.h). */
#include <inttypes.h>
#include <math.h>

#include "ops/backend_internal.h"
#include "ops/ops.h"

#define REQUIRE_OPEN(be, op) DL_REQUIRE((be) != NULL && (be)->ops != NULL, DL_ERR_INVALID, "%s: backend is not open", op)
#define REQUIRE_PTR(p, op) DL_REQUIRE((p) != NULL, DL_ERR_INVALID, "%s: %s is NULL", op, #p)

/* Whether the index arrays can be read here. */
static int host_indices(const dl_backend *be) { return be->kind == DL_DEVICE_CPU; }

/* Checks offsets[0..count] (offsets[0] = 0, non-decreasing); `what` names the array in messages. */
static dl_status check_offsets(const char *op, const char *what, const int32_t *offsets, int count) {
    DL_REQUIRE(offsets[0] == 0, DL_ERR_INVALID, "%s: %s[0] = %" PRId32 ", must be 0", op, what, offsets[0]);
    for (int b = 0; b < count; b++)
        DL_REQUIRE(offsets[b + 1] >= offsets[b], DL_ERR_INVALID,
                   "%s: %s[%d] = %" PRId32 " is less than %s[%d] = %" PRId32 " (offsets must not decrease)", op,
                   what, b + 1, offsets[b + 1], what, b, offsets[b]);
    return DL_OK;
}

/* Checks that every entry's row is in [0, num_rows) and, when fields is given, its field in [0, num_fields). */
static dl_status check_entries(const char *op, const int32_t *offsets, int count, const int32_t *rows,
                               const int32_t *fields, int num_fields, int64_t num_rows) {
    for (int b = 0; b < count; b++) {
        for (int32_t j = offsets[b]; j < offsets[b + 1]; j++) {
            if (rows[j] < 0 || rows[j] >= num_rows) {
                dl_status s = DL_FAIL(DL_ERR_INVALID,
                                      "%s: rows[%" PRId32 "] = %" PRId32 " (batch row %d) is outside the table [0, %"
                                      PRId64 ")",
                                      op, j, rows[j], b, num_rows);
                dl_error_hint("feature ids must be hashed into the table (model.hash_buckets), or mapped to local "
                              "rows in sharded mode");
                return s;
            }
            if (fields && (fields[j] < 0 || fields[j] >= num_fields))
                return DL_FAIL(DL_ERR_INVALID,
                               "%s: fields[%" PRId32 "] = %" PRId32 " (batch row %d) is outside [0, %d)", op, j,
                               fields[j], b, num_fields);
        }
    }
    return DL_OK;
}

/* The size checks FM and FFM share; num_fields is 1 for FM. */
static dl_status check_latent_shape(const char *op, int B, int num_fields, int k, int kpad, int64_t num_rows) {
    DL_REQUIRE(B >= 0, DL_ERR_INVALID, "%s: batch size B = %d is negative", op, B);
    DL_REQUIRE(num_fields >= 1, DL_ERR_INVALID, "%s: num_fields = %d must be >= 1", op, num_fields);
    DL_REQUIRE(k >= 1 && kpad >= k, DL_ERR_INVALID, "%s: need 1 <= k <= kpad, got k = %d, kpad = %d", op, k, kpad);
    DL_REQUIRE(num_rows >= 0, DL_ERR_INVALID, "%s: num_rows = %" PRId64 " is negative", op, num_rows);
    DL_REQUIRE(num_rows <= INT64_MAX / 4 / num_fields / kpad, DL_ERR_INVALID,
               "%s: a table of %" PRId64 " rows × %d fields × %d floats does not fit in memory", op, num_rows,
               num_fields, kpad);
    return DL_OK;
}

/* The CSR batch checks FM and FFM share (indices only on host memory). */
static dl_status check_batch(const dl_backend *be, const char *op, const int32_t *row_ptr, const int32_t *rows,
                             const int32_t *fields, const float *values, int B, int num_fields, int64_t num_rows) {
    REQUIRE_PTR(row_ptr, op);
    REQUIRE_PTR(rows, op);
    REQUIRE_PTR(values, op);
    if (!host_indices(be))
        return DL_OK;
    DL_CHECK(check_offsets(op, "row_ptr", row_ptr, B));
    return check_entries(op, row_ptr, B, rows, fields, num_fields, num_rows);
}

static dl_status check_bags(const dl_backend *be, const char *op, const int32_t *rows, const int32_t *offsets,
                            int num_bags, int dim, int64_t num_rows) {
    DL_REQUIRE(num_bags >= 0, DL_ERR_INVALID, "%s: num_bags = %d is negative", op, num_bags);
    DL_REQUIRE(dim >= 1, DL_ERR_INVALID, "%s: dim = %d must be >= 1", op, dim);
    DL_REQUIRE(num_rows >= 0, DL_ERR_INVALID, "%s: num_rows = %" PRId64 " is negative", op, num_rows);
    DL_REQUIRE(num_rows <= INT64_MAX / 4 / dim, DL_ERR_INVALID,
               "%s: a table of %" PRId64 " rows × %d floats does not fit in memory", op, num_rows, dim);
    REQUIRE_PTR(offsets, op);
    REQUIRE_PTR(rows, op);
    if (!host_indices(be))
        return DL_OK;
    DL_CHECK(check_offsets(op, "offsets", offsets, num_bags));
    return check_entries(op, offsets, num_bags, rows, NULL, 0, num_rows);
}

dl_status dl_op_embedding_bag_forward(const dl_backend *be, float *out, const float *table, const int32_t *rows,
                                      const float *weights, const int32_t *offsets, int num_bags, int dim,
                                      int64_t num_rows) {
    static const char op[] = "dl_op_embedding_bag_forward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_bags(be, op, rows, offsets, num_bags, dim, num_rows));
    REQUIRE_PTR(out, op);
    REQUIRE_PTR(table, op);
    DL_DISPATCH(be, sparse, embedding_bag_forward, out, table, rows, weights, offsets, num_bags, dim, num_rows);
}

dl_status dl_op_embedding_bag_backward(const dl_backend *be, float *dtable, const float *dout, const int32_t *rows,
                                       const float *weights, const int32_t *offsets, int num_bags, int dim,
                                       int64_t num_rows) {
    static const char op[] = "dl_op_embedding_bag_backward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_bags(be, op, rows, offsets, num_bags, dim, num_rows));
    REQUIRE_PTR(dtable, op);
    REQUIRE_PTR(dout, op);
    DL_DISPATCH(be, sparse, embedding_bag_backward, dtable, dout, rows, weights, offsets, num_bags, dim, num_rows);
}

dl_status dl_op_fm_forward(const dl_backend *be, float *logits, float *sum_vx, const float *linear,
                           const float *latent, const float *bias, const int32_t *row_ptr, const int32_t *rows,
                           const float *values, const float *instance_scale, int B, int k, int kpad,
                           int64_t num_rows) {
    static const char op[] = "dl_op_fm_forward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_latent_shape(op, B, 1, k, kpad, num_rows));
    REQUIRE_PTR(logits, op);
    REQUIRE_PTR(sum_vx, op);
    REQUIRE_PTR(latent, op);
    DL_CHECK(check_batch(be, op, row_ptr, rows, NULL, values, B, 1, num_rows));
    DL_DISPATCH(be, sparse, fm_forward, logits, sum_vx, linear, latent, bias, row_ptr, rows, values, instance_scale,
                B, k, kpad, num_rows);
}

dl_status dl_op_fm_backward(const dl_backend *be, float *dlinear, float *dlatent, float *dbias,
                            const float *dlogits, const float *sum_vx, const float *latent, const int32_t *row_ptr,
                            const int32_t *rows, const float *values, const float *instance_scale, int B, int k,
                            int kpad, int64_t num_rows) {
    static const char op[] = "dl_op_fm_backward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_latent_shape(op, B, 1, k, kpad, num_rows));
    REQUIRE_PTR(dlatent, op);
    REQUIRE_PTR(dlogits, op);
    REQUIRE_PTR(sum_vx, op);
    REQUIRE_PTR(latent, op);
    DL_CHECK(check_batch(be, op, row_ptr, rows, NULL, values, B, 1, num_rows));
    DL_DISPATCH(be, sparse, fm_backward, dlinear, dlatent, dbias, dlogits, sum_vx, latent, row_ptr, rows, values,
                instance_scale, B, k, kpad, num_rows);
}

dl_status dl_op_ffm_forward(const dl_backend *be, float *logits, const float *latent, const int32_t *row_ptr,
                            const int32_t *rows, const int32_t *fields, const float *values,
                            const float *instance_scale, int B, int num_fields, int k, int kpad, int64_t num_rows) {
    static const char op[] = "dl_op_ffm_forward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_latent_shape(op, B, num_fields, k, kpad, num_rows));
    REQUIRE_PTR(logits, op);
    REQUIRE_PTR(latent, op);
    REQUIRE_PTR(fields, op);
    DL_CHECK(check_batch(be, op, row_ptr, rows, fields, values, B, num_fields, num_rows));
    DL_DISPATCH(be, sparse, ffm_forward, logits, latent, row_ptr, rows, fields, values, instance_scale, B,
                num_fields, k, kpad, num_rows);
}

dl_status dl_op_ffm_backward(const dl_backend *be, float *dlatent, const float *dlogits, const float *latent,
                             const int32_t *row_ptr, const int32_t *rows, const int32_t *fields,
                             const float *values, const float *instance_scale, int B, int num_fields, int k,
                             int kpad, int64_t num_rows) {
    static const char op[] = "dl_op_ffm_backward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_latent_shape(op, B, num_fields, k, kpad, num_rows));
    REQUIRE_PTR(dlatent, op);
    REQUIRE_PTR(dlogits, op);
    REQUIRE_PTR(latent, op);
    REQUIRE_PTR(fields, op);
    DL_CHECK(check_batch(be, op, row_ptr, rows, fields, values, B, num_fields, num_rows));
    DL_DISPATCH(be, sparse, ffm_backward, dlatent, dlogits, latent, row_ptr, rows, fields, values, instance_scale,
                B, num_fields, k, kpad, num_rows);
}

dl_status dl_op_adagrad_rows_update(const dl_backend *be, float *table, float *accum, const float *grads,
                                    const int32_t *rows, int num_rows_touched, int row_floats, float lr,
                                    float weight_decay) {
    static const char op[] = "dl_op_adagrad_rows_update";
    REQUIRE_OPEN(be, op);
    DL_REQUIRE(num_rows_touched >= 0, DL_ERR_INVALID, "%s: num_rows_touched = %d is negative", op, num_rows_touched);
    DL_REQUIRE(row_floats >= 1, DL_ERR_INVALID, "%s: row_floats = %d must be >= 1", op, row_floats);
    DL_REQUIRE(isfinite(lr) && lr >= 0.0f, DL_ERR_INVALID, "%s: lr = %g must be finite and >= 0", op, (double)lr);
    DL_REQUIRE(isfinite(weight_decay) && weight_decay >= 0.0f, DL_ERR_INVALID,
               "%s: weight_decay = %g must be finite and >= 0", op, (double)weight_decay);
    if (num_rows_touched == 0)
        return DL_OK;
    REQUIRE_PTR(table, op);
    REQUIRE_PTR(accum, op);
    REQUIRE_PTR(grads, op);
    REQUIRE_PTR(rows, op);
    /* The table's size is not passed, so only the lower bound of a row id can be checked here. */
    if (host_indices(be))
        for (int i = 0; i < num_rows_touched; i++)
            DL_REQUIRE(rows[i] >= 0, DL_ERR_INVALID, "%s: rows[%d] = %" PRId32 " is negative", op, i, rows[i]);
    DL_DISPATCH(be, sparse, adagrad_rows_update, table, accum, grads, rows, num_rows_touched, row_floats, lr,
                weight_decay);
}
