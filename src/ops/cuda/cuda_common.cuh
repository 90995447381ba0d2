/* cuda_common.cuh — what every CUDA kernel file shares: the backend state, checked CUDA and cuBLAS calls that turn a
 * failure into a dl_status naming the call, the scratch buffers, the device-side fault report for bad indices, and
 * small device helpers (warp reductions, bf16 rounding, launch sizes).
 *
 * Resources are created on first use and then kept: cuBLAS handles and their workspace on the first matmul, the
 * scratch buffers at the first op that needs them (they only grow, so a training loop allocates nothing after its
 * first step). Every op runs on the backend's one stream, so ops that reuse the same scratch never overlap.
 *
 * Indices that come from device memory (token ids, targets, table rows, fields, offsets) cannot be checked by the
 * C dispatcher. The kernels that read them skip a bad one (never touching memory out of bounds) and record the first
 * in a small fault record; the op then copies the record to pinned host memory, waits, and fails with
 * DL_ERR_INVALID naming the op, the index and its bound. That costs one stream synchronisation per such op. */
#ifndef DL_OPS_CUDA_COMMON_CUH
#define DL_OPS_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The first bad index a kernel saw (device memory, mirrored into pinned host memory to report it). */
typedef struct dl_cuda_fault {
    int flag;         /* 0: none; set once, by the first reporter */
    int kind;         /* enum dl_cuda_fault_kind */
    long long index;  /* position in the index array */
    long long value;  /* the bad value */
    long long limit;  /* the exclusive upper bound it broke (or the value it should not be below) */
} dl_cuda_fault;

enum dl_cuda_fault_kind {
    DL_FAULT_TOKEN = 1,     /* token id outside [0, V) */
    DL_FAULT_POSITION,      /* position outside [0, max_pos) */
    DL_FAULT_TARGET,        /* target outside [0, V) (negative means ignored, not a fault) */
    DL_FAULT_ROW,           /* table row outside [0, num_rows) */
    DL_FAULT_FIELD,         /* field outside [0, num_fields) */
    DL_FAULT_OFFSETS,       /* offsets / row_ptr / cu_seqlens decreasing or negative */
};

struct dl_cuda_lt_cache; /* matmul.cu: cached cuBLASLt descriptors and algorithms */

/* Host memory pinned once per backend: where fault records and scalar results land. */
typedef struct dl_cuda_pinned {
    dl_cuda_fault fault;
    double sumsq;
} dl_cuda_pinned;

typedef struct dl_cuda_state {
    int device;
    cudaStream_t stream;
    int sm_count;
    size_t smem_optin;   /* largest dynamic shared memory a block may opt in to */
    int allow_tf32;      /* DEALER_CUDA_TF32=1: fp32 matmuls may use TF32 tensor cores (faster, ~1e-3 relative) */
    void *cublas;        /* cublasHandle_t, created on first use */
    void *cublaslt;      /* cublasLtHandle_t */
    void *workspace;     /* cuBLAS and cuBLASLt workspace (one stream, so they share it) */
    size_t workspace_bytes;
    struct dl_cuda_lt_cache *lt_cache;
    void *scratch;       /* device scratch for kernels: partial sums, attention work lists */
    size_t scratch_bytes;
    void *host_scratch;  /* pinned host scratch: attention copies cu_seqlens here */
    size_t host_scratch_bytes;
    dl_cuda_fault *fault_dev;
    dl_cuda_pinned *pinned;
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

/* A cuBLAS / cuBLASLt call: a failure becomes DL_ERR_DEVICE naming the call and cuBLAS's status string. */
#define DL_CUBLAS_CHECK(call)                                                                                \
    do {                                                                                                     \
        cublasStatus_t dl_cublas_s_ = (call);                                                                \
        if (dl_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return DL_FAIL(DL_ERR_DEVICE, "%s failed: %s", #call, cublasGetStatusString(dl_cublas_s_));       \
    } while (0)

#ifdef __cplusplus
extern "C" {
#endif

/* Device scratch of at least `bytes` (grown, never shrunk; growing waits for the stream first). */
dl_status dl_cuda_scratch(dl_cuda_state *st, size_t bytes, void **out);
/* Pinned host scratch of at least `bytes` (same policy). */
dl_status dl_cuda_host_scratch(dl_cuda_state *st, size_t bytes, void **out);
/* The device fault record and the pinned host block (st->fault_dev, st->pinned), created on first use. */
dl_status dl_cuda_pinned_ready(dl_cuda_state *st);
/* Clears the device fault record before a kernel that checks indices. */
dl_status dl_cuda_fault_reset(dl_cuda_state *st);
/* Waits for the stream and fails with DL_ERR_INVALID naming `op` when a kernel recorded a bad index. */
dl_status dl_cuda_fault_check(dl_cuda_state *st, const char *op);
/* Frees the scratch buffers and the fault record (backend close). */
void dl_cuda_scratch_release(dl_cuda_state *st);
/* The cuBLAS handles and workspace, created on first use. */
dl_status dl_cuda_blas_ready(dl_cuda_state *st);
/* Releases what dl_cuda_blas_ready and the matmul cache created (backend close). */
void dl_cuda_blas_release(dl_cuda_state *st);

#ifdef __cplusplus
}
#endif

/* ---- launch sizes ----------------------------------------------------------------------------------------------
 * Elementwise kernels use grid-stride loops; the grid is capped so huge arrays still launch. */
#define DL_CUDA_THREADS 256
static inline unsigned dl_cuda_grid(size_t work_items, unsigned threads) {
    size_t blocks = (work_items + threads - 1) / threads;
    if (blocks < 1)
        blocks = 1;
    if (blocks > 65536)
        blocks = 65536;
    return (unsigned)blocks;
}

/* ---- device helpers --------------------------------------------------------------------------------------------- */
#ifdef __CUDACC__

__device__ __forceinline__ float dl_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double dl_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float dl_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Records the first bad index; later ones are dropped (one message is enough to find the bug). */
__device__ __forceinline__ void dl_cuda_report(dl_cuda_fault *f, int kind, long long index, long long value,
                                               long long limit) {
    if (atomicCAS(&f->flag, 0, 1) == 0) {
        f->kind = kind;
        f->index = index;
        f->value = value;
        f->limit = limit;
    }
}

/* Entry range [start, end) of CSR item b (row_ptr, offsets), or false, reported once by lane 0 of the caller's warp,
 * when the offsets are negative or decreasing. */
__device__ __forceinline__ bool dl_csr_bounds(const int32_t *ptr, int b, int lane, int &start, int &end,
                                              dl_cuda_fault *fault) {
    start = ptr[b];
    end = ptr[b + 1];
    if (start >= 0 && end >= start)
        return true;
    if (lane == 0) {
        if (start < 0)
            dl_cuda_report(fault, DL_FAULT_OFFSETS, b, start, 0);
        else
            dl_cuda_report(fault, DL_FAULT_OFFSETS, b + 1, end, start);
    }
    return false;
}

/* fp32 -> bf16, round to nearest even on the bit pattern (the same rule as the CPU); NaN stays a quiet NaN. */
__device__ __forceinline__ uint16_t dl_f32_to_bf16_rne(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__device__ __forceinline__ float dl_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

#endif /* __CUDACC__ */

#endif
