/* nccl_exchange.cu — the bucketed rank-order gradient exchange on GPU buffers through NCCL (see nccl_exchange.h).
 *
 * Per bucket, on the communication stream: wait for the compute stream's event, one NCCL group of sends (my copy of
 * each other rank's chunk) and receives (their copies of my chunk, into staging), the in-order sum kernel over a
 * table of W device pointers (mine in place, the rest in staging), and for an all-reduce a second group that sends
 * my reduced chunk to everyone and receives theirs into the buffer. Stream order makes the second group follow the
 * sum and the first group, so no buffer is read and written by two operations at once. */
#define OMPI_SKIP_MPICXX 1 /* C bindings only: mpi.h is included through world.h */

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "comm/nccl_exchange.h"
#include "core/log.h"
#include "core/status.h"
#include "ops/ops.h"

#define NCCL_TRY(call, what)                                                                                  \
    do {                                                                                                      \
        ncclResult_t nccl_try_ = (call);                                                                      \
        if (nccl_try_ != ncclSuccess)                                                                         \
            return DL_FAIL(DL_ERR_COMM, "%s: %s failed: %s", (what), #call, ncclGetErrorString(nccl_try_));   \
    } while (0)

#define CUDA_TRY(call, what)                                                                                  \
    do {                                                                                                      \
        cudaError_t cuda_try_ = (call);                                                                       \
        if (cuda_try_ != cudaSuccess)                                                                         \
            return DL_FAIL(DL_ERR_DEVICE, "%s: %s failed: %s", (what), #call, cudaGetErrorString(cuda_try_)); \
    } while (0)

typedef struct nccl_bucket {
    size_t *cuts;         /* host, [W + 1] */
    float *staging;       /* device: (W - 1) slots of my chunk's length */
    const float **sources; /* device, [W]: the W copies of my chunk in rank order */
    cudaEvent_t ready;    /* recorded on the compute stream when the bucket starts */
} nccl_bucket;

struct dl_nccl_exchange {
    dl_world *world;
    int device;
    cudaStream_t compute, stream;
    ncclComm_t comm;
    int comm_ready;
    float *buffer;
    int W, me, gather, num_buckets, started;
    nccl_bucket *buckets;
    size_t *cuts;
    float *staging;
    const float **source_table; /* device, num_buckets · W pointers */
    cudaEvent_t done;
    int events;                 /* events created (for destroy) */
};

__global__ void sum_in_order_kernel(float *out, const float *const *src, int n_src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float s = src[0][i];
        for (int k = 1; k < n_src; k++)
            s += src[k][i]; /* rank order: the same bits as the CPU path's dl_sum_in_order */
        out[i] = s;
    }
}

static size_t clamp_size(size_t v, size_t lo, size_t hi) { return v < lo ? lo : v > hi ? hi : v; }
static int slot_of(const dl_nccl_exchange *x, int r) { return r < x->me ? r : r - 1; }

void dl_nccl_exchange_destroy(dl_nccl_exchange *x) {
    if (!x)
        return;
    cudaSetDevice(x->device);
    if (x->comm_ready)
        ncclCommDestroy(x->comm);
    if (x->buckets)
        for (int b = 0; b < x->events && b < x->num_buckets; b++)
            cudaEventDestroy(x->buckets[b].ready);
    if (x->events > x->num_buckets)
        cudaEventDestroy(x->done);
    if (x->stream)
        cudaStreamDestroy(x->stream);
    cudaFree(x->staging);
    cudaFree(x->source_table);
    free(x->buckets);
    free(x->cuts);
    free(x);
}

static dl_status create_communicator(dl_nccl_exchange *x) {
    struct {
        int ok;
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    if (x->me == 0)
        msg.ok = ncclGetUniqueId(&msg.id) == ncclSuccess;
    /* Every rank takes part in the broadcast even when rank 0 failed, so none is left waiting. */
    DL_CHECK(dl_comm_broadcast(x->world, &msg, sizeof msg, 0, "NCCL unique id"));
    DL_REQUIRE(msg.ok, DL_ERR_COMM, "NCCL: rank 0 could not create a unique id (ncclGetUniqueId)");
    ncclResult_t r = ncclCommInitRank(&x->comm, x->W, msg.id, x->me);
    if (r != ncclSuccess) {
        dl_status s = DL_FAIL(DL_ERR_COMM, "NCCL: ncclCommInitRank (rank %d of %d, GPU %d) failed: %s", x->me, x->W,
                              x->device, ncclGetErrorString(r));
        dl_error_hint("give every rank its own GPU (one rank per GPU, CUDA_VISIBLE_DEVICES), or use device: cpu");
        return s;
    }
    x->comm_ready = 1;
    return DL_OK;
}

dl_status dl_nccl_exchange_create(dl_nccl_exchange **out, dl_world *world, const dl_backend *be, float *buffer,
                                  const dl_exchange_layout *layout) {
    DL_REQUIRE(out != NULL && world != NULL && be != NULL && layout != NULL, DL_ERR_INVALID,
               "dl_nccl_exchange_create: NULL argument");
    DL_REQUIRE(layout->num_buckets >= 1 && layout->bucket_bounds != NULL, DL_ERR_INVALID,
               "dl_nccl_exchange_create: no buckets");
    DL_REQUIRE(layout->bucket_bounds[0] == 0 && layout->bucket_bounds[layout->num_buckets] == layout->count,
               DL_ERR_INVALID, "dl_nccl_exchange_create: the buckets do not cover the buffer");
    *out = NULL;
    int device = 0;
    void *stream = NULL;
    DL_CHECK(dl_backend_cuda_handles(be, &device, &stream));
    dl_nccl_exchange *x = (dl_nccl_exchange *)calloc(1, sizeof *x);
    DL_REQUIRE(x != NULL, DL_ERR_NOMEM, "cannot allocate the NCCL exchange");
    x->world = world;
    x->device = device;
    x->compute = (cudaStream_t)stream;
    x->buffer = buffer;
    x->W = world->size;
    x->me = world->rank;
    x->gather = layout->gather;
    x->num_buckets = layout->num_buckets;
    int W = x->W, nb = x->num_buckets;
    dl_status s = DL_OK;
    x->buckets = (nccl_bucket *)calloc((size_t)nb, sizeof *x->buckets);
    x->cuts = (size_t *)calloc((size_t)nb * (size_t)(W + 1), sizeof *x->cuts);
    if (!x->buckets || !x->cuts) {
        dl_nccl_exchange_destroy(x);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the NCCL exchange's tables");
    }
    size_t staging = 0;
    for (int b = 0; b < nb; b++) {
        nccl_bucket *k = &x->buckets[b];
        size_t lo = layout->bucket_bounds[b], hi = layout->bucket_bounds[b + 1];
        k->cuts = x->cuts + (size_t)b * (size_t)(W + 1);
        for (int r = 0; r <= W; r++)
            k->cuts[r] = layout->slice_bounds ? clamp_size(layout->slice_bounds[r], lo, hi)
                                              : dl_exchange_even_cut(lo, hi, W, r);
        staging += (size_t)(W - 1) * (k->cuts[x->me + 1] - k->cuts[x->me]);
    }
#define STEP(call)                                                                                            \
    do {                                                                                                      \
        cudaError_t e_ = (call);                                                                              \
        if (e_ != cudaSuccess && s == DL_OK)                                                                  \
            s = DL_FAIL(DL_ERR_DEVICE, "creating the NCCL exchange: %s failed: %s", #call, cudaGetErrorString(e_)); \
    } while (0)
    STEP(cudaSetDevice(x->device));
    if (s == DL_OK && staging > 0)
        STEP(cudaMalloc((void **)&x->staging, staging * sizeof(float)));
    if (s == DL_OK)
        STEP(cudaMalloc((void **)&x->source_table, (size_t)nb * (size_t)W * sizeof(float *)));
    if (s == DL_OK)
        STEP(cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking));
    for (int b = 0; b < nb && s == DL_OK; b++) {
        STEP(cudaEventCreateWithFlags(&x->buckets[b].ready, cudaEventDisableTiming));
        if (s == DL_OK)
            x->events = b + 1;
    }
    if (s == DL_OK) {
        STEP(cudaEventCreateWithFlags(&x->done, cudaEventDisableTiming));
        if (s == DL_OK)
            x->events = nb + 1;
    }
    if (s == DL_OK) {
        /* The pointer table: for bucket b, slot r is rank r's copy of my chunk (mine in place). */
        const float **host = (const float **)malloc((size_t)nb * (size_t)W * sizeof(float *));
        if (!host)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the NCCL exchange's pointer table");
        size_t offset = 0;
        for (int b = 0; b < nb && s == DL_OK; b++) {
            nccl_bucket *k = &x->buckets[b];
            size_t mine = k->cuts[x->me + 1] - k->cuts[x->me];
            k->staging = x->staging ? x->staging + offset : NULL;
            offset += (size_t)(W - 1) * mine;
            k->sources = x->source_table + (size_t)b * (size_t)W;
            for (int r = 0; r < W; r++)
                host[(size_t)b * (size_t)W + (size_t)r] =
                    r == x->me ? buffer + k->cuts[x->me] : k->staging + (size_t)slot_of(x, r) * mine;
        }
        if (s == DL_OK)
            STEP(cudaMemcpy(x->source_table, host, (size_t)nb * (size_t)W * sizeof(float *), cudaMemcpyHostToDevice));
        free(host);
    }
#undef STEP
    if (s == DL_OK)
        s = create_communicator(x);
    if (s != DL_OK) {
        dl_nccl_exchange_destroy(x);
        return s;
    }
    *out = x;
    return DL_OK;
}

static dl_status enqueue_reduce(dl_nccl_exchange *x, int b) {
    nccl_bucket *k = &x->buckets[b];
    size_t lo = k->cuts[x->me], mine = k->cuts[x->me + 1] - lo;
    const char *what = "gradient reduce-scatter (NCCL)";
    NCCL_TRY(ncclGroupStart(), what);
    for (int p = 0; p < x->W; p++) {
        if (p == x->me)
            continue;
        size_t theirs = k->cuts[p + 1] - k->cuts[p];
        if (mine > 0)
            NCCL_TRY(ncclRecv(k->staging + (size_t)slot_of(x, p) * mine, mine, ncclFloat, p, x->comm, x->stream), what);
        if (theirs > 0)
            NCCL_TRY(ncclSend(x->buffer + k->cuts[p], theirs, ncclFloat, p, x->comm, x->stream), what);
    }
    NCCL_TRY(ncclGroupEnd(), what);
    if (mine > 0) {
        int threads = 256;
        size_t blocks = (mine + (size_t)threads - 1) / (size_t)threads;
        if (blocks > 4096)
            blocks = 4096;
        sum_in_order_kernel<<<(unsigned)blocks, threads, 0, x->stream>>>(x->buffer + lo, k->sources, x->W, mine);
        CUDA_TRY(cudaGetLastError(), "gradient sum kernel");
    }
    return DL_OK;
}

static dl_status enqueue_gather(dl_nccl_exchange *x, const size_t *cuts, float *buffer, const char *what) {
    size_t mine = cuts[x->me + 1] - cuts[x->me];
    NCCL_TRY(ncclGroupStart(), what);
    for (int p = 0; p < x->W; p++) {
        if (p == x->me)
            continue;
        size_t theirs = cuts[p + 1] - cuts[p];
        if (theirs > 0)
            NCCL_TRY(ncclRecv(buffer + cuts[p], theirs, ncclFloat, p, x->comm, x->stream), what);
        if (mine > 0)
            NCCL_TRY(ncclSend(buffer + cuts[x->me], mine, ncclFloat, p, x->comm, x->stream), what);
    }
    NCCL_TRY(ncclGroupEnd(), what);
    return DL_OK;
}

dl_status dl_nccl_exchange_start(dl_nccl_exchange *x, int b) {
    DL_REQUIRE(x != NULL, DL_ERR_INVALID, "dl_nccl_exchange_start: NULL exchange");
    DL_REQUIRE(b == x->started && b < x->num_buckets, DL_ERR_INVALID,
               "dl_nccl_exchange_start: bucket %d started out of order (next is %d of %d)", b, x->started,
               x->num_buckets);
    x->started++;
    nccl_bucket *k = &x->buckets[b];
    CUDA_TRY(cudaSetDevice(x->device), "gradient exchange");
    CUDA_TRY(cudaEventRecord(k->ready, x->compute), "gradient exchange");
    CUDA_TRY(cudaStreamWaitEvent(x->stream, k->ready, 0), "gradient exchange");
    DL_CHECK(enqueue_reduce(x, b));
    if (x->gather)
        DL_CHECK(enqueue_gather(x, k->cuts, x->buffer, "gradient all-gather (NCCL)"));
    return DL_OK;
}

/* Waits on the host for everything enqueued on the communication stream, under the watchdog. */
static dl_status wait_stream(dl_nccl_exchange *x, const char *what) {
    CUDA_TRY(cudaEventRecord(x->done, x->stream), what);
    dl_comm_watch watch;
    dl_comm_watch_start(x->world, &watch, what);
    for (;;) {
        cudaError_t e = cudaEventQuery(x->done);
        if (e == cudaSuccess)
            break;
        if (e != cudaErrorNotReady)
            return DL_FAIL(DL_ERR_DEVICE, "%s: waiting for the GPU failed: %s", what, cudaGetErrorString(e));
        ncclResult_t async = ncclSuccess;
        if (ncclCommGetAsyncError(x->comm, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
            ncclCommAbort(x->comm);
            x->comm_ready = 0;
            return DL_FAIL(DL_ERR_COMM, "%s: NCCL failed: %s", what, ncclGetErrorString(async));
        }
        dl_status s = dl_comm_watch_idle(x->world, &watch);
        if (s != DL_OK) {
            /* A peer is gone or stuck: NCCL would wait for ever, so tear the communicator down. */
            ncclCommAbort(x->comm);
            x->comm_ready = 0;
            return s;
        }
    }
    CUDA_TRY(cudaStreamWaitEvent(x->compute, x->done, 0), what);
    return DL_OK;
}

dl_status dl_nccl_exchange_finish(dl_nccl_exchange *x, const char *what) {
    DL_REQUIRE(x != NULL, DL_ERR_INVALID, "dl_nccl_exchange_finish: NULL exchange");
    DL_REQUIRE(x->comm_ready, DL_ERR_COMM, "the NCCL communicator was aborted after an earlier failure");
    while (x->started < x->num_buckets)
        DL_CHECK(dl_nccl_exchange_start(x, x->started));
    dl_status s = wait_stream(x, what ? what : "gradient exchange (NCCL)");
    x->started = 0;
    return s;
}

dl_status dl_nccl_allgather(dl_nccl_exchange *x, float *buffer, const size_t *slice_bounds, const char *what) {
    DL_REQUIRE(x != NULL && buffer != NULL && slice_bounds != NULL, DL_ERR_INVALID, "dl_nccl_allgather: NULL argument");
    DL_REQUIRE(x->comm_ready, DL_ERR_COMM, "the NCCL communicator was aborted after an earlier failure");
    what = what ? what : "parameter all-gather (NCCL)";
    CUDA_TRY(cudaSetDevice(x->device), what);
    CUDA_TRY(cudaEventRecord(x->done, x->compute), what);
    CUDA_TRY(cudaStreamWaitEvent(x->stream, x->done, 0), what);
    DL_CHECK(enqueue_gather(x, slice_bounds, buffer, what));
    return wait_stream(x, what);
}
