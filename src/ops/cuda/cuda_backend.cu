/* cuda_backend.cu — the CUDA backend: device selection, device memory, and the table of CUDA kernel families.
 *
 * cudaGetDeviceCount returns an error (not zero) on a machine without a GPU or driver; that counts as no GPU so
 * `device: auto` falls back to the CPU. */
#include <cuda_runtime.h>
#include <stdlib.h>

#include "ops/backend_internal.h"
#include "ops/cuda/cuda_common.cuh"

extern "C" int dl_cuda_count_devices(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error */
        return 0;
    }
    return count;
}

static dl_status cuda_alloc(void *state, void **ptr, size_t bytes) {
    (void)state;
    cudaError_t err = cudaMalloc(ptr, bytes);
    if (err != cudaSuccess) {
        *ptr = NULL;
        return DL_FAIL(DL_ERR_NOMEM, "cudaMalloc of %zu bytes failed: %s", bytes, cudaGetErrorString(err));
    }
    return DL_OK;
}

static void cuda_free(void *state, void *ptr) {
    (void)state;
    cudaFree(ptr);
}

static dl_status cuda_zero(void *state, void *ptr, size_t bytes) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, st->stream));
    return DL_OK;
}

static dl_status cuda_to_device(void *state, void *dst, const void *src, size_t bytes) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st->stream));
    DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return DL_OK;
}

static dl_status cuda_to_host(void *state, void *dst, const void *src, size_t bytes) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st->stream));
    DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return DL_OK;
}

static dl_status cuda_copy(void *state, void *dst, const void *src, size_t bytes) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st->stream));
    return DL_OK;
}

static dl_status cuda_synchronize(void *state) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return DL_OK;
}

static const dl_memory_ops cuda_memory_ops = {
    cuda_alloc, cuda_free, cuda_zero, cuda_to_device, cuda_to_host, cuda_copy, cuda_synchronize,
};

static dl_backend_ops cuda_backend_ops = {&cuda_memory_ops, NULL, NULL, NULL, NULL};

extern "C" dl_status dl_cuda_backend_open(dl_backend *be, int local_rank) {
    int count = dl_cuda_count_devices();
    if (count <= 0) {
        dl_status s = DL_FAIL(DL_ERR_DEVICE, "device 'cuda' requested but no CUDA GPU answers on this machine");
        dl_error_hint("use device: auto or cpu, or check nvidia-smi and CUDA_VISIBLE_DEVICES");
        return s;
    }
    int index = local_rank % count;
    DL_CUDA_CHECK(cudaSetDevice(index));
    dl_cuda_state *st = (dl_cuda_state *)calloc(1, sizeof *st);
    if (!st)
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the CUDA backend state");
    st->device = index;
    cudaError_t err = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        free(st);
        return DL_FAIL(DL_ERR_DEVICE, "cudaStreamCreate failed on GPU %d: %s", index, cudaGetErrorString(err));
    }
    be->kind = DL_DEVICE_CUDA;
    be->name = "cuda";
    be->device_index = index;
    be->num_threads = 1;
    be->state = st;
    be->ops = &cuda_backend_ops;
    return DL_OK;
}

extern "C" void dl_cuda_backend_close(dl_backend *be) {
    dl_cuda_state *st = (dl_cuda_state *)be->state;
    if (!st)
        return;
    cudaStreamSynchronize(st->stream);
    cudaStreamDestroy(st->stream);
    free(st);
    be->state = NULL;
}
