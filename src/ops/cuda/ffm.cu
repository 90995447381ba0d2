/* ffm.cu — field-aware factorization machine (Juan et al.) forward and backward over a CSR batch.
 *
 * logit = scale · Σ_{i<j} ⟨v[row_i, field_j], v[row_j, field_i]⟩ x_i x_j, latent laid out [num_rows, num_fields,
 * kpad]. One block per instance; its threads walk the n×n (i, j) grid of the instance's entries and take the pairs
 * with i < j (half the slots idle, but n is a few dozen and it keeps the mapping trivial). The forward reduces the
 * pair terms in a fixed tree order. The backward adds each pair's two gradient vectors with float atomicAdd (rows
 * and fields repeat across pairs and instances: correct to rounding, not bit-identical run to run). Row and field
 * ids come from device memory: bad entries are skipped and reported through the fault record. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define FFM_THREADS 128

/* Reports every bad entry of the instance (first one wins); the pair loops then skip them. */
__device__ __forceinline__ void ffm_check_entries(const int32_t *rows, const int32_t *fields, int start, int end,
                                                  int num_fields, long long num_rows, dl_cuda_fault *fault) {
    for (int j = start + (int)threadIdx.x; j < end; j += blockDim.x) {
        if (rows[j] < 0 || rows[j] >= num_rows)
            dl_cuda_report(fault, DL_FAULT_ROW, j, rows[j], num_rows);
        if (fields[j] < 0 || fields[j] >= num_fields)
            dl_cuda_report(fault, DL_FAULT_FIELD, j, fields[j], num_fields);
    }
}

__device__ __forceinline__ bool ffm_entry_ok(int r, int fld, int num_fields, long long num_rows) {
    return r >= 0 && r < num_rows && fld >= 0 && fld < num_fields;
}

__global__ void __launch_bounds__(FFM_THREADS)
    ffm_forward_kernel(float *logits, const float *latent, const int32_t *row_ptr, const int32_t *rows,
                       const int32_t *fields, const float *values, const float *instance_scale, int num_fields, int k,
                       int kpad, long long num_rows, dl_cuda_fault *fault) {
    __shared__ float partial[FFM_THREADS / 32];
    int b = blockIdx.x, start, end;
    if (!dl_csr_bounds(row_ptr, b, (int)threadIdx.x, start, end, fault))
        start = end = 0;
    ffm_check_entries(rows, fields, start, end, num_fields, num_rows, fault);
    int n = end - start;
    float acc = 0.0f;
    for (long long p = threadIdx.x; p < (long long)n * n; p += blockDim.x) {
        int i = (int)(p / n), j = (int)(p % n);
        if (j <= i)
            continue;
        int ri = rows[start + i], rj = rows[start + j];
        int fi = fields[start + i], fj = fields[start + j];
        if (!ffm_entry_ok(ri, fi, num_fields, num_rows) || !ffm_entry_ok(rj, fj, num_fields, num_rows))
            continue;
        const float *vi = latent + ((size_t)ri * num_fields + fj) * kpad; /* v[row_i, field_j] */
        const float *vj = latent + ((size_t)rj * num_fields + fi) * kpad; /* v[row_j, field_i] */
        float dot = 0.0f;
        for (int f = 0; f < k; f++)
            dot += vi[f] * vj[f];
        float xi = values ? values[start + i] : 1.0f, xj = values ? values[start + j] : 1.0f;
        acc += dot * xi * xj;
    }
    acc = dl_warp_sum(acc);
    if ((threadIdx.x & 31) == 0)
        partial[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < FFM_THREADS / 32; w++)
            total += partial[w];
        logits[b] = total * (instance_scale ? instance_scale[b] : 1.0f);
    }
}

__global__ void __launch_bounds__(FFM_THREADS)
    ffm_backward_kernel(float *dlatent, const float *dlogits, const float *latent, const int32_t *row_ptr,
                        const int32_t *rows, const int32_t *fields, const float *values,
                        const float *instance_scale, int num_fields, int k, int kpad, long long num_rows,
                        dl_cuda_fault *fault) {
    int b = blockIdx.x, start, end;
    if (!dl_csr_bounds(row_ptr, b, (int)threadIdx.x, start, end, fault))
        return;
    ffm_check_entries(rows, fields, start, end, num_fields, num_rows, fault);
    int n = end - start;
    float dl = dlogits[b] * (instance_scale ? instance_scale[b] : 1.0f);
    for (long long p = threadIdx.x; p < (long long)n * n; p += blockDim.x) {
        int i = (int)(p / n), j = (int)(p % n);
        if (j <= i)
            continue;
        int ri = rows[start + i], rj = rows[start + j];
        int fi = fields[start + i], fj = fields[start + j];
        if (!ffm_entry_ok(ri, fi, num_fields, num_rows) || !ffm_entry_ok(rj, fj, num_fields, num_rows))
            continue;
        size_t oi = ((size_t)ri * num_fields + fj) * kpad, oj = ((size_t)rj * num_fields + fi) * kpad;
        float xi = values ? values[start + i] : 1.0f, xj = values ? values[start + j] : 1.0f;
        float coef = dl * xi * xj;
        for (int f = 0; f < k; f++) {
            float a = latent[oi + f], c = latent[oj + f];
            atomicAdd(&dlatent[oi + f], coef * c);
            atomicAdd(&dlatent[oj + f], coef * a);
        }
    }
}

static dl_status ffm_check(const char *op, int num_fields, int k, int kpad) {
    if (num_fields <= 0)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): num_fields = %d must be positive", op, num_fields);
    if (k < 0 || kpad < k)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): latent size k = %d must be in [0, kpad = %d]", op, k, kpad);
    return DL_OK;
}

extern "C" dl_status dl_cuda_ffm_forward(void *state, float *logits, const float *latent, const int32_t *row_ptr,
                                         const int32_t *rows, const int32_t *fields, const float *values,
                                         const float *instance_scale, int B, int num_fields, int k, int kpad,
                                         int64_t num_rows) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(ffm_check("ffm_forward", num_fields, k, kpad));
    if (B <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    ffm_forward_kernel<<<(unsigned)B, FFM_THREADS, 0, st->stream>>>(logits, latent, row_ptr, rows, fields, values,
                                                                    instance_scale, num_fields, k, kpad,
                                                                    (long long)num_rows, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("ffm_forward");
    return dl_cuda_fault_check(st, "ffm_forward");
}

extern "C" dl_status dl_cuda_ffm_backward(void *state, float *dlatent, const float *dlogits, const float *latent,
                                          const int32_t *row_ptr, const int32_t *rows, const int32_t *fields,
                                          const float *values, const float *instance_scale, int B, int num_fields,
                                          int k, int kpad, int64_t num_rows) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(ffm_check("ffm_backward", num_fields, k, kpad));
    if (B <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    ffm_backward_kernel<<<(unsigned)B, FFM_THREADS, 0, st->stream>>>(dlatent, dlogits, latent, row_ptr, rows, fields,
                                                                     values, instance_scale, num_fields, k, kpad,
                                                                     (long long)num_rows, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("ffm_backward");
    return dl_cuda_fault_check(st, "ffm_backward");
}
