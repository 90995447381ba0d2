/* cuda_state.cu — the CUDA backend's lazily created resources: device and pinned scratch, and the fault record that
 * kernels use to report a bad index read from device memory (see cuda_common.cuh).
 *
 * Scratch only grows. Growing frees the old buffer, so it first waits for the stream: a kernel of an earlier op may
 * still be reading it. In a training loop the sizes repeat, so after the first step nothing is allocated. */
#include <cuda_runtime.h>

#include "ops/cuda/cuda_common.cuh"

/* Rounds up to a whole MiB so small variations in size do not reallocate. */
static size_t round_mib(size_t bytes) { return (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1); }

extern "C" dl_status dl_cuda_scratch(dl_cuda_state *st, size_t bytes, void **out) {
    if (bytes == 0)
        bytes = 1;
    if (st->scratch_bytes < bytes) {
        size_t want = round_mib(bytes);
        DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
        if (st->scratch) {
            cudaFree(st->scratch);
            st->scratch = NULL;
            st->scratch_bytes = 0;
        }
        cudaError_t err = cudaMalloc(&st->scratch, want);
        if (err != cudaSuccess) {
            st->scratch = NULL;
            return DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes of CUDA scratch on GPU %d: %s", want, st->device,
                           cudaGetErrorString(err));
        }
        st->scratch_bytes = want;
    }
    *out = st->scratch;
    return DL_OK;
}

extern "C" dl_status dl_cuda_host_scratch(dl_cuda_state *st, size_t bytes, void **out) {
    if (bytes == 0)
        bytes = 1;
    if (st->host_scratch_bytes < bytes) {
        size_t want = round_mib(bytes);
        /* A pending copy may still read the old pinned buffer. */
        DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
        if (st->host_scratch) {
            cudaFreeHost(st->host_scratch);
            st->host_scratch = NULL;
            st->host_scratch_bytes = 0;
        }
        cudaError_t err = cudaHostAlloc(&st->host_scratch, want, cudaHostAllocDefault);
        if (err != cudaSuccess) {
            st->host_scratch = NULL;
            return DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes of pinned host memory: %s", want,
                           cudaGetErrorString(err));
        }
        st->host_scratch_bytes = want;
    }
    *out = st->host_scratch;
    return DL_OK;
}

extern "C" dl_status dl_cuda_pinned_ready(dl_cuda_state *st) {
    if (!st->fault_dev) {
        cudaError_t err = cudaMalloc((void **)&st->fault_dev, sizeof(dl_cuda_fault));
        if (err != cudaSuccess) {
            st->fault_dev = NULL;
            return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the CUDA fault record: %s", cudaGetErrorString(err));
        }
    }
    if (!st->pinned) {
        cudaError_t err = cudaHostAlloc((void **)&st->pinned, sizeof(dl_cuda_pinned), cudaHostAllocDefault);
        if (err != cudaSuccess) {
            st->pinned = NULL;
            return DL_FAIL(DL_ERR_NOMEM, "cannot allocate pinned host memory: %s", cudaGetErrorString(err));
        }
    }
    return DL_OK;
}

extern "C" dl_status dl_cuda_fault_reset(dl_cuda_state *st) {
    DL_CHECK(dl_cuda_pinned_ready(st));
    DL_CUDA_CHECK(cudaMemsetAsync(st->fault_dev, 0, sizeof(dl_cuda_fault), st->stream));
    return DL_OK;
}

static const char *fault_what(int kind) {
    switch (kind) {
    case DL_FAULT_TOKEN: return "token id";
    case DL_FAULT_POSITION: return "position";
    case DL_FAULT_TARGET: return "target";
    case DL_FAULT_ROW: return "table row";
    case DL_FAULT_FIELD: return "field";
    case DL_FAULT_OFFSETS: return "offset";
    default: return "index";
    }
}

extern "C" dl_status dl_cuda_fault_check(dl_cuda_state *st, const char *op) {
    DL_CHECK(dl_cuda_pinned_ready(st));
    DL_CUDA_CHECK(cudaMemcpyAsync(&st->pinned->fault, st->fault_dev, sizeof(dl_cuda_fault), cudaMemcpyDeviceToHost,
                                  st->stream));
    DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    const dl_cuda_fault *f = &st->pinned->fault;
    if (!f->flag)
        return DL_OK;
    if (f->kind == DL_FAULT_OFFSETS) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s (cuda): offset at entry %lld is %lld, below %lld (offsets must be "
                              "non-decreasing from 0)", op, f->index, f->value, f->limit);
        dl_error_hint("the batch's offsets (row_ptr, cu_seqlens) are corrupt: check the code that packs the batch");
        return s;
    }
    /* A negative limit: the op knows no upper bound (adagrad_rows_update gets no table size), only ids >= 0. */
    dl_status s = f->limit < 0 ? DL_FAIL(DL_ERR_INVALID, "%s (cuda): %s %lld at entry %lld is negative", op,
                                         fault_what(f->kind), f->value, f->index)
                               : DL_FAIL(DL_ERR_INVALID, "%s (cuda): %s %lld at entry %lld is outside [0, %lld)", op,
                                         fault_what(f->kind), f->value, f->index, f->limit);
    dl_error_hint("the batch holds an id the model's tables do not have: check the data and the model sizes");
    return s;
}

/* Frees the scratch buffers and the fault record (backend close; the stream is idle by then). */
extern "C" void dl_cuda_scratch_release(dl_cuda_state *st) {
    if (st->scratch)
        cudaFree(st->scratch);
    if (st->host_scratch)
        cudaFreeHost(st->host_scratch);
    if (st->fault_dev)
        cudaFree(st->fault_dev);
    if (st->pinned)
        cudaFreeHost(st->pinned);
    st->scratch = NULL;
    st->host_scratch = NULL;
    st->fault_dev = NULL;
    st->pinned = NULL;
    st->scratch_bytes = st->host_scratch_bytes = 0;
}
