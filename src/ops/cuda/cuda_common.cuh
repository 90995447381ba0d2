/* cuda_common.cuh — what every CUDA kernel file shares: the backend state and checked CUDA calls that turn a
 * failure into a dl_status with the call, file and line. */
#ifndef DL_OPS_CUDA_COMMON_CUH
#define DL_OPS_CUDA_COMMON_CUH

#include <cuda_runtime.h>

#include "core/status.h"

typedef struct dl_cuda_state {
    int device;
    cudaStream_t stream;
    void *cublas;        /* cublasHandle_t, created on first use */
    void *cublaslt;      /* cublasLtHandle_t */
    void *workspace;     /* cuBLASLt and kernel scratch */
    size_t workspace_bytes;
} dl_cuda_state;

#define DL_CUDA_CHECK(call)                                                                                  \
    do {                                                                                                     \
        cudaError_t dl_cuda_err_ = (call);                                                                   \
        if (dl_cuda_err_ != cudaSuccess)                                                                     \
            return DL_FAIL(DL_ERR_DEVICE, "%s failed: %s", #call, cudaGetErrorString(dl_cuda_err_));         \
    } while (0)

/* After a kernel launch: a launch error (bad configuration) becomes a status. */
#define DL_CUDA_CHECK_LAUNCH(what)                                                                           \
    do {                                                                                                     \
        cudaError_t dl_cuda_err_ = cudaGetLastError();                                                       \
        if (dl_cuda_err_ != cudaSuccess)                                                                     \
            return DL_FAIL(DL_ERR_DEVICE, "kernel %s failed to launch: %s", what,                            \
                           cudaGetErrorString(dl_cuda_err_));                                                \
    } while (0)

#endif
