/* sgd.cu — SGD with optional momentum and L2 weight decay (PyTorch's form: g = grad_scale·grad + wd·p;
 * buf = momentum·buf + g; p −= lr·buf; without momentum p −= lr·g). One thread per parameter. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__global__ void sgd_kernel(float *params, const float *grads, float *momentum_buf, size_t n, float lr, float momentum,
                           float weight_decay, float grad_scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float p = params[i];
        float g = grad_scale * grads[i] + weight_decay * p;
        if (momentum_buf) {
            float b = momentum * momentum_buf[i] + g;
            momentum_buf[i] = b;
            g = b;
        }
        params[i] = p - lr * g;
    }
}

extern "C" dl_status dl_cuda_sgd_update(void *state, float *params, const float *grads, float *momentum_buf, size_t n,
                                        float lr, float momentum, float weight_decay, float grad_scale) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (momentum != 0.0f && !momentum_buf)
        return DL_FAIL(DL_ERR_INVALID, "sgd_update (cuda): momentum %g needs a momentum buffer", (double)momentum);
    if (n == 0)
        return DL_OK;
    if (momentum == 0.0f)
        momentum_buf = NULL; /* plain SGD: the buffer, if any, is not used */
    sgd_kernel<<<dl_cuda_grid(n, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(
        params, grads, momentum_buf, n, lr, momentum, weight_decay, grad_scale);
    DL_CUDA_CHECK_LAUNCH("sgd_update");
    return DL_OK;
}
