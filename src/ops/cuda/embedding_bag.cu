/* embedding_bag.cu — weighted sums of table rows per bag (CSR offsets), and the scatter-add backward.
 *
 * One warp per bag, lanes across the row's floats; the entries of a bag are summed in their order, as on the CPU.
 * Backward adds weight·dout into each entry's row with float atomicAdd: rows shared between bags meet in an order
 * that depends on timing, so dtable is correct to rounding but not bit-identical between runs. Offsets and row ids
 * come from device memory; bad ones are skipped and reported through the fault record (DL_ERR_INVALID). */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define BAG_WARPS 4

__global__ void __launch_bounds__(BAG_WARPS * 32)
    embedding_bag_forward_kernel(float *out, const float *table, const int32_t *rows, const float *weights,
                                 const int32_t *offsets, int num_bags, int dim, long long num_rows,
                                 dl_cuda_fault *fault) {
    int lane = threadIdx.x & 31;
    int b = blockIdx.x * BAG_WARPS + (threadIdx.x >> 5);
    if (b >= num_bags)
        return;
    int start, end;
    bool ok = dl_csr_bounds(offsets, b, lane, start, end, fault);
    float *o = out + (size_t)b * dim;
    for (int d = lane; d < dim; d += 32) {
        float acc = 0.0f;
        for (int j = start; ok && j < end; j++) {
            int r = rows[j];
            if (r < 0 || r >= num_rows) {
                if (d == lane && lane == 0)
                    dl_cuda_report(fault, DL_FAULT_ROW, j, r, num_rows);
                continue;
            }
            float w = weights ? weights[j] : 1.0f;
            acc += w * table[(size_t)r * dim + d];
        }
        o[d] = acc;
    }
}

__global__ void __launch_bounds__(BAG_WARPS * 32)
    embedding_bag_backward_kernel(float *dtable, const float *dout, const int32_t *rows, const float *weights,
                                  const int32_t *offsets, int num_bags, int dim, long long num_rows,
                                  dl_cuda_fault *fault) {
    int lane = threadIdx.x & 31;
    int b = blockIdx.x * BAG_WARPS + (threadIdx.x >> 5);
    if (b >= num_bags)
        return;
    int start, end;
    if (!dl_csr_bounds(offsets, b, lane, start, end, fault))
        return;
    const float *g = dout + (size_t)b * dim;
    for (int j = start; j < end; j++) {
        int r = rows[j];
        if (r < 0 || r >= num_rows) {
            if (lane == 0)
                dl_cuda_report(fault, DL_FAULT_ROW, j, r, num_rows);
            continue;
        }
        float w = weights ? weights[j] : 1.0f;
        float *t = dtable + (size_t)r * dim;
        for (int d = lane; d < dim; d += 32)
            atomicAdd(&t[d], w * g[d]);
    }
}

extern "C" dl_status dl_cuda_embedding_bag_forward(void *state, float *out, const float *table, const int32_t *rows,
                                                   const float *weights, const int32_t *offsets, int num_bags,
                                                   int dim, int64_t num_rows) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (num_bags <= 0 || dim <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    unsigned grid = (unsigned)((num_bags + BAG_WARPS - 1) / BAG_WARPS);
    embedding_bag_forward_kernel<<<grid, BAG_WARPS * 32, 0, st->stream>>>(out, table, rows, weights, offsets, num_bags,
                                                                          dim, (long long)num_rows, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("embedding_bag_forward");
    return dl_cuda_fault_check(st, "embedding_bag_forward");
}

extern "C" dl_status dl_cuda_embedding_bag_backward(void *state, float *dtable, const float *dout,
                                                    const int32_t *rows, const float *weights, const int32_t *offsets,
                                                    int num_bags, int dim, int64_t num_rows) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (num_bags <= 0 || dim <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    unsigned grid = (unsigned)((num_bags + BAG_WARPS - 1) / BAG_WARPS);
    embedding_bag_backward_kernel<<<grid, BAG_WARPS * 32, 0, st->stream>>>(dtable, dout, rows, weights, offsets,
                                                                           num_bags, dim, (long long)num_rows,
                                                                           st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("embedding_bag_backward");
    return dl_cuda_fault_check(st, "embedding_bag_backward");
}
