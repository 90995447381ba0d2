/* cuda_backend.cu — the CUDA backend: device selection, device memory, and the tables of CUDA kernel families.
 *
 * cudaGetDeviceCount returns an error (not zero) on a machine without a GPU or driver; that counts as no GPU so
 * `device: auto` falls back to the CPU. The same error where an NVIDIA driver is installed is a broken or too old
 * driver, and every caller (`device: auto` included) reports it instead of silently running on the CPU. Opening records what kernels need to size themselves (multiprocessor count,
 * the shared-memory opt-in limit); cuBLAS and scratch come later, on first use. Every op runs on the backend's one
 * non-blocking stream. */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/backend_internal.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

/* Whether an NVIDIA kernel driver is installed on this machine: without one, cudaGetDeviceCount's
 * "insufficient driver" only means "no GPU here"; with one, it means the driver is too old or broken. */
static int nvidia_driver_present(void) {
    return access("/proc/driver/nvidia/version", F_OK) == 0 || access("/dev/nvidiactl", F_OK) == 0;
}

extern "C" dl_status dl_cuda_count_devices(int *count) {
    *count = 0;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    cudaGetLastError(); /* clear the sticky error */
    if (err == cudaSuccess) {
        *count = n;
        return DL_OK;
    }
    if (err == cudaErrorNoDevice || (err == cudaErrorInsufficientDriver && !nvidia_driver_present()))
        return DL_OK; /* a machine without a GPU or a driver: none */
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    dl_status s = DL_FAIL(DL_ERR_DEVICE,
                          "the NVIDIA driver is installed but CUDA cannot use it: %s (%s; driver supports CUDA %d.%d, "
                          "dealer was built with CUDA %d.%d)",
                          cudaGetErrorString(err), cudaGetErrorName(err), driver / 1000, (driver % 1000) / 10,
                          runtime / 1000, (runtime % 1000) / 10);
    dl_error_hint("check nvidia-smi; update the driver or rebuild with a matching CUDA, or run with device: cpu");
    return s;
}

extern "C" dl_status dl_cuda_backend_handles(const dl_backend *be, int *device, void **stream) {
    const dl_cuda_state *st = (const dl_cuda_state *)be->state;
    *device = st->device;
    *stream = (void *)st->stream;
    return DL_OK;
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

/* Positional (C++17 has no designated initialisers): the tables' members and these entries are the rows of
 * ops/op_list.h in the same order. */
#define DL_CUDA_TABLE_ENTRY(member, kernel, params) dl_cuda_##kernel,

extern "C" const dl_dense_ops dl_cuda_dense_ops = {DL_DENSE_OPS(DL_CUDA_TABLE_ENTRY)};
extern "C" const dl_attention_ops dl_cuda_attention_ops = {DL_ATTENTION_OPS(DL_CUDA_TABLE_ENTRY)};
extern "C" const dl_optim_ops dl_cuda_optim_ops = {DL_OPTIM_OPS(DL_CUDA_TABLE_ENTRY)};
extern "C" const dl_sparse_ops dl_cuda_sparse_ops = {DL_SPARSE_OPS(DL_CUDA_TABLE_ENTRY)};

static const dl_backend_ops cuda_backend_ops = {
    &cuda_memory_ops, &dl_cuda_dense_ops, &dl_cuda_attention_ops, &dl_cuda_optim_ops, &dl_cuda_sparse_ops,
};

extern "C" dl_status dl_cuda_backend_open(dl_backend *be, int local_rank) {
    int count = 0;
    DL_CHECK(dl_cuda_count_devices(&count));
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
    int sm_count = 0, smem_optin = 0;
    cudaError_t err = cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, index);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, index);
    if (err != cudaSuccess) {
        free(st);
        return DL_FAIL(DL_ERR_DEVICE, "cudaDeviceGetAttribute failed on GPU %d: %s", index, cudaGetErrorString(err));
    }
    st->sm_count = sm_count;
    st->smem_optin = (size_t)smem_optin;
    const char *tf32 = getenv("DEALER_CUDA_TF32");
    st->allow_tf32 = tf32 != NULL && strcmp(tf32, "1") == 0;
    err = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
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
    cudaSetDevice(st->device);
    cudaStreamSynchronize(st->stream);
    dl_cuda_blas_release(st);
    dl_cuda_scratch_release(st);
    cudaStreamDestroy(st->stream);
    free(st);
    be->state = NULL;
}
