/* fm.cu — factorization machine (Rendle) forward and backward over a CSR batch of sparse rows.
 *
 * Forward, one warp per instance: lanes over the latent dimension f accumulate s_f = Σ v_f·x and q_f = Σ (v_f·x)²
 * over the instance's entries (in entry order), the pairwise term is ½ Σ_f (s_f² − q_f) (the O(kn) identity), and the
 * linear term is a warp sum over entries. s_f is saved to sum_vx (zeros in the padding k..kpad) for the backward.
 * Backward scatters into the entries' rows with float atomicAdd (rows repeat across instances: correct to rounding,
 * not bit-identical run to run); dbias, a sum over the batch, is reduced in a fixed order by one block.
 * Row ids come from device memory: bad ones are skipped and reported through the fault record. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define FM_WARPS 4

__global__ void __launch_bounds__(FM_WARPS * 32)
    fm_forward_kernel(float *logits, float *sum_vx, const float *linear, const float *latent, const float *bias,
                      const int32_t *row_ptr, const int32_t *rows, const float *values, const float *instance_scale,
                      int B, int k, int kpad, long long num_rows, dl_cuda_fault *fault) {
    int lane = threadIdx.x & 31;
    int b = blockIdx.x * FM_WARPS + (threadIdx.x >> 5);
    if (b >= B)
        return;
    int start, end;
    if (!dl_csr_bounds(row_ptr, b, lane, start, end, fault))
        start = end = 0;
    float lin = 0.0f;
    for (int j = start + lane; j < end; j += 32) {
        int r = rows[j];
        if (r < 0 || r >= num_rows) {
            dl_cuda_report(fault, DL_FAULT_ROW, j, r, num_rows);
            continue;
        }
        if (linear)
            lin += linear[r] * (values ? values[j] : 1.0f);
    }
    lin = dl_warp_sum(lin);
    float pair = 0.0f;
    for (int f = lane; f < kpad; f += 32) {
        float s = 0.0f, q = 0.0f;
        if (f < k) {
            for (int j = start; j < end; j++) {
                int r = rows[j];
                if (r < 0 || r >= num_rows)
                    continue;
                float vx = latent[(size_t)r * kpad + f] * (values ? values[j] : 1.0f);
                s += vx;
                q += vx * vx;
            }
            pair += s * s - q;
        }
        sum_vx[(size_t)b * kpad + f] = s;
    }
    pair = 0.5f * dl_warp_sum(pair);
    if (lane == 0) {
        float scale = instance_scale ? instance_scale[b] : 1.0f;
        logits[b] = (bias ? bias[0] : 0.0f) + lin + scale * pair;
    }
}

__global__ void __launch_bounds__(FM_WARPS * 32)
    fm_backward_kernel(float *dlinear, float *dlatent, const float *dlogits, const float *sum_vx, const float *latent,
                       const int32_t *row_ptr, const int32_t *rows, const float *values,
                       const float *instance_scale, int B, int k, int kpad, long long num_rows, dl_cuda_fault *fault) {
    int lane = threadIdx.x & 31;
    int b = blockIdx.x * FM_WARPS + (threadIdx.x >> 5);
    if (b >= B)
        return;
    int start, end;
    if (!dl_csr_bounds(row_ptr, b, lane, start, end, fault))
        return;
    float dl = dlogits[b];
    float ds = dl * (instance_scale ? instance_scale[b] : 1.0f);
    const float *s = sum_vx + (size_t)b * kpad;
    for (int j = start; j < end; j++) {
        int r = rows[j];
        if (r < 0 || r >= num_rows) {
            if (lane == 0)
                dl_cuda_report(fault, DL_FAULT_ROW, j, r, num_rows);
            continue;
        }
        float x = values ? values[j] : 1.0f;
        if (dlinear && lane == 0)
            atomicAdd(&dlinear[r], dl * x);
        if (dlatent) {
            const float *v = latent + (size_t)r * kpad;
            float *dv = dlatent + (size_t)r * kpad;
            for (int f = lane; f < k; f += 32)
                atomicAdd(&dv[f], ds * x * (s[f] - v[f] * x));
        }
    }
}

/* dbias += Σ_b dlogits[b], one block, fixed order. */
__global__ void __launch_bounds__(256) fm_dbias_kernel(float *dbias, const float *dlogits, int B) {
    __shared__ float partial[8];
    float acc = 0.0f;
    for (int b = threadIdx.x; b < B; b += blockDim.x)
        acc += dlogits[b];
    acc = dl_warp_sum(acc);
    if ((threadIdx.x & 31) == 0)
        partial[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < 8; w++)
            total += partial[w];
        dbias[0] += total;
    }
}

static dl_status fm_check(const char *op, int k, int kpad) {
    if (k < 0 || kpad < k)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): latent size k = %d must be in [0, kpad = %d]", op, k, kpad);
    return DL_OK;
}

extern "C" dl_status dl_cuda_fm_forward(void *state, float *logits, float *sum_vx, const float *linear,
                                        const float *latent, const float *bias, const int32_t *row_ptr,
                                        const int32_t *rows, const float *values, const float *instance_scale, int B,
                                        int k, int kpad, int64_t num_rows) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(fm_check("fm_forward", k, kpad));
    if (B <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    unsigned grid = (unsigned)((B + FM_WARPS - 1) / FM_WARPS);
    fm_forward_kernel<<<grid, FM_WARPS * 32, 0, st->stream>>>(logits, sum_vx, linear, latent, bias, row_ptr, rows,
                                                              values, instance_scale, B, k, kpad, (long long)num_rows,
                                                              st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("fm_forward");
    return dl_cuda_fault_check(st, "fm_forward");
}

extern "C" dl_status dl_cuda_fm_backward(void *state, float *dlinear, float *dlatent, float *dbias,
                                         const float *dlogits, const float *sum_vx, const float *latent,
                                         const int32_t *row_ptr, const int32_t *rows, const float *values,
                                         const float *instance_scale, int B, int k, int kpad, int64_t num_rows) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(fm_check("fm_backward", k, kpad));
    if (B <= 0)
        return DL_OK;
    if (dbias) {
        fm_dbias_kernel<<<1, 256, 0, st->stream>>>(dbias, dlogits, B);
        DL_CUDA_CHECK_LAUNCH("fm_backward dbias");
    }
    if (!dlinear && !dlatent)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    unsigned grid = (unsigned)((B + FM_WARPS - 1) / FM_WARPS);
    fm_backward_kernel<<<grid, FM_WARPS * 32, 0, st->stream>>>(dlinear, dlatent, dlogits, sum_vx, latent, row_ptr,
                                                               rows, values, instance_scale, B, k, kpad,
                                                               (long long)num_rows, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("fm_backward");
    return dl_cuda_fault_check(st, "fm_backward");
}
