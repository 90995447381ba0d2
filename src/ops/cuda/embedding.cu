/* embedding.cu — token (+ learned position) embedding lookup and its scatter-add backward.
 *
 * Forward is a gather, one thread per output float. Backward adds each token's gradient row into dwte (and dwpe) with
 * float atomicAdd: repeated tokens hit the same row in an order that depends on thread timing, so dwte is correct to
 * float rounding but not bit-identical between runs (the CPU backend is). Ids come from device memory; a bad id is
 * skipped and reported through the fault record (cuda_common.cuh), failing the op with DL_ERR_INVALID. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__global__ void embedding_forward_kernel(float *out, const int32_t *tokens, const int32_t *positions, const float *wte,
                                         const float *wpe, int N, int C, int V, int max_pos, dl_cuda_fault *fault) {
    size_t total = (size_t)N * (size_t)C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / (size_t)C;
        int c = (int)(i % (size_t)C);
        int tok = tokens[n];
        float v = 0.0f;
        if (tok < 0 || tok >= V) {
            if (c == 0)
                dl_cuda_report(fault, DL_FAULT_TOKEN, (long long)n, tok, V);
        } else {
            v = wte[(size_t)tok * C + c];
        }
        if (wpe) {
            int pos = positions[n];
            if (pos < 0 || pos >= max_pos) {
                if (c == 0)
                    dl_cuda_report(fault, DL_FAULT_POSITION, (long long)n, pos, max_pos);
            } else {
                v += wpe[(size_t)pos * C + c];
            }
        }
        out[i] = v;
    }
}

__global__ void embedding_backward_kernel(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                                          const int32_t *positions, int N, int C, int V, int max_pos,
                                          dl_cuda_fault *fault) {
    size_t total = (size_t)N * (size_t)C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / (size_t)C;
        int c = (int)(i % (size_t)C);
        float g = dout[i];
        if (dwte) {
            int tok = tokens[n];
            if (tok < 0 || tok >= V) {
                if (c == 0)
                    dl_cuda_report(fault, DL_FAULT_TOKEN, (long long)n, tok, V);
            } else {
                atomicAdd(&dwte[(size_t)tok * C + c], g);
            }
        }
        if (dwpe) {
            int pos = positions[n];
            if (pos < 0 || pos >= max_pos) {
                if (c == 0)
                    dl_cuda_report(fault, DL_FAULT_POSITION, (long long)n, pos, max_pos);
            } else {
                atomicAdd(&dwpe[(size_t)pos * C + c], g);
            }
        }
    }
}

extern "C" dl_status dl_cuda_embedding_forward(void *state, float *out, const int32_t *tokens,
                                               const int32_t *positions, const float *wte, const float *wpe, int N,
                                               int C, int V, int max_pos) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || C <= 0)
        return DL_OK;
    if (!positions)
        wpe = NULL; /* wpe and positions are nullable together */
    DL_CHECK(dl_cuda_fault_reset(st));
    size_t total = (size_t)N * (size_t)C;
    embedding_forward_kernel<<<dl_cuda_grid(total, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(
        out, tokens, positions, wte, wpe, N, C, V, max_pos, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("embedding_forward");
    return dl_cuda_fault_check(st, "embedding_forward");
}

extern "C" dl_status dl_cuda_embedding_backward(void *state, float *dwte, float *dwpe, const float *dout,
                                                const int32_t *tokens, const int32_t *positions, int N, int C, int V,
                                                int max_pos) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || C <= 0)
        return DL_OK;
    if (!positions)
        dwpe = NULL;
    if (!dwte && !dwpe)
        return DL_OK;
    DL_CHECK(dl_cuda_fault_reset(st));
    size_t total = (size_t)N * (size_t)C;
    embedding_backward_kernel<<<dl_cuda_grid(total, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(
        dwte, dwpe, dout, tokens, positions, N, C, V, max_pos, st->fault_dev);
    DL_CUDA_CHECK_LAUNCH("embedding_backward");
    return dl_cuda_fault_check(st, "embedding_backward");
}
