/* adagrad.cu — AdaGrad with libffm semantics (g = grad_scale·grad + wd·p; accum += g²; p −= lr·g/√accum), over a
 * whole buffer and over the listed rows of an embedding table (the sparse FM/FFM update).
 *
 * sqrtf and the division are the IEEE ones (no fast-math, no rsqrtf), so the CPU and GPU agree to rounding. The row
 * update gives each row's floats to consecutive threads; rows are distinct by contract, so no two threads write the
 * same float. A negative row id is reported through the fault record. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__device__ __forceinline__ void adagrad_one(float *p, float *acc, float grad, float lr, float weight_decay) {
    float g = grad + weight_decay * *p;
    float a = *acc + g * g;
    *acc = a;
    *p -= lr * g / sqrtf(a);
}

__global__ void adagrad_kernel(float *params, const float *grads, float *accum, size_t n, float lr,
                               float weight_decay, float grad_scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        adagrad_one(&params[i], &accum[i], grad_scale * grads[i], lr, weight_decay);
}

__global__ void adagrad_rows_kernel(float *table, float *accum, const float *grads, const int32_t *rows,
                                    int num_rows_touched, int row_floats, float lr, float weight_decay,
                                    dl_cuda_fault *fault) {
    size_t total = (size_t)num_rows_touched * (size_t)row_floats;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t i = t / (size_t)row_floats;
        int f = (int)(t % (size_t)row_floats);
        int r = rows[i];
        if (r < 0) {
            if (f == 0)
                dl_cuda_report(fault, DL_FAULT_ROW, (long long)i, r, -1); /* no table size here */
            continue;
        }
        size_t at = (size_t)r * (size_t)row_floats + f;
        adagrad_one(&table[at], &accum[at], grads[t], lr, weight_decay);
    }
}

extern "C" dl_status dl_cuda_adagrad_update(void *state, float *params, const float *grads, float *accum, size_t n,
                                            float lr, float weight_decay, float grad_scale) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (n == 0)
        return DL_OK;
    adagrad_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(params, grads, accum, n, lr,
                                                                                         weight_decay, grad_scale);
    DL_CUDA_CHECK_LAUNCH("adagrad_update");
    return DL_OK;
}

extern "C" dl_status dl_cuda_adagrad_rows_update(void *state, float *table, float *accum, const float *grads,
                                                 const int32_t *rows, int num_rows_touched, int row_floats, float lr,
                                                 float weight_decay) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (num_rows_touched <= 0 || row_floats <= 0)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    size_t total = (size_t)num_rows_touched * (size_t)row_floats;
    adagrad_rows_kernel<<<dl_cuda_grid(total, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(
        table, accum, grads, rows, num_rows_touched, row_floats, lr, weight_decay, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("adagrad_rows_update");
    return dl_cuda_fault_check(st, "adagrad_rows_update");
}
