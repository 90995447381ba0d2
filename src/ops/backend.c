/* backend.c — choosing a backend at start-up and the memory calls every backend answers.
 *
 * `auto` asks the CUDA backend (when built) how many GPUs answer; a machine without a GPU or an NVIDIA driver counts
 * as none, so the same binary runs on CPU-only machines, but an installed driver that CUDA cannot use is an error:
 * silently training on the CPU of a GPU node would be a far worse surprise. */
#include <stdint.h>
#include <string.h>

#include "ops/backend_internal.h"
#include "ops/ops.h"

int dl_cuda_built(void) {
#ifdef DEALER_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

dl_status dl_cuda_device_count(int *count) {
    DL_REQUIRE(count != NULL, DL_ERR_INVALID, "dl_cuda_device_count: NULL argument");
    *count = 0;
#ifdef DEALER_HAVE_CUDA
    return dl_cuda_count_devices(count);
#else
    return DL_OK;
#endif
}

dl_status dl_backend_cuda_handles(const dl_backend *be, int *device, void **stream) {
    DL_REQUIRE(be != NULL && device != NULL && stream != NULL, DL_ERR_INVALID,
               "dl_backend_cuda_handles: NULL argument");
    DL_REQUIRE(be->kind == DL_DEVICE_CUDA && be->state != NULL, DL_ERR_INVALID,
               "dl_backend_cuda_handles: the backend is '%s', not an open CUDA backend", be->name ? be->name : "?");
#ifdef DEALER_HAVE_CUDA
    return dl_cuda_backend_handles(be, device, stream);
#else
    return DL_FAIL(DL_ERR_UNSUPPORTED, "dl_backend_cuda_handles: this dealer was built without CUDA");
#endif
}

dl_status dl_backend_open(dl_backend *be, const char *device, int local_rank) {
    DL_REQUIRE(be != NULL && device != NULL, DL_ERR_INVALID, "dl_backend_open: NULL argument");
    DL_REQUIRE(local_rank >= 0, DL_ERR_INVALID, "dl_backend_open: negative local rank %d", local_rank);
    memset(be, 0, sizeof *be);
    int want_cuda;
    if (strcmp(device, "cpu") == 0) {
        want_cuda = 0;
    } else if (strcmp(device, "cuda") == 0) {
        want_cuda = 1;
    } else if (strcmp(device, "auto") == 0) {
        int gpus = 0;
        DL_CHECK(dl_cuda_device_count(&gpus)); /* a broken driver is an error, not "no GPU" */
        want_cuda = gpus > 0;
    } else {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "unknown device '%s'", device);
        dl_error_hint("use device: auto, cpu or cuda");
        return s;
    }
    if (!want_cuda)
        return dl_cpu_backend_open(be, NULL);
#ifdef DEALER_HAVE_CUDA
    return dl_cuda_backend_open(be, local_rank);
#else
    dl_status s = DL_FAIL(DL_ERR_UNSUPPORTED, "device 'cuda' requested but this dealer was built without CUDA");
    dl_error_hint("rebuild where nvcc is installed, or use device: cpu");
    return s;
#endif
}

void dl_backend_close(dl_backend *be) {
    if (!be || !be->ops)
        return;
    if (be->kind == DL_DEVICE_CPU)
        dl_cpu_backend_close(be);
#ifdef DEALER_HAVE_CUDA
    else
        dl_cuda_backend_close(be);
#endif
    memset(be, 0, sizeof *be);
}

#define REQUIRE_MEMORY(be, op)                                                                          \
    do {                                                                                                \
        DL_REQUIRE((be) != NULL && (be)->ops != NULL && (be)->ops->memory != NULL, DL_ERR_INVALID,      \
                   "%s: backend is not open", op);                                                     \
    } while (0)

dl_status dl_mem_alloc(const dl_backend *be, void **ptr, size_t bytes) {
    REQUIRE_MEMORY(be, "dl_mem_alloc");
    DL_REQUIRE(ptr != NULL, DL_ERR_INVALID, "dl_mem_alloc: NULL output pointer");
    *ptr = NULL;
    DL_REQUIRE(bytes > 0, DL_ERR_INVALID, "dl_mem_alloc: zero bytes requested");
    return be->ops->memory->alloc(be->state, ptr, bytes);
}

dl_status dl_mem_grow(const dl_backend *be, void **p, size_t *cap, size_t need, size_t elem, const char *what) {
    DL_REQUIRE(p && cap && elem > 0, DL_ERR_INVALID, "dl_mem_grow: NULL buffer or zero element size");
    if (need <= *cap && *p)
        return DL_OK;
    size_t n = *cap > 16 ? *cap : 16;
    while (n < need && n <= SIZE_MAX / 2)
        n *= 2;
    DL_REQUIRE(n >= need && n <= SIZE_MAX / elem, DL_ERR_NOMEM, "%s: %zu elements of %zu bytes are too many",
               what ? what : "device buffer", need, elem);
    dl_mem_free(be, *p);
    *p = NULL;
    *cap = 0;
    DL_CHECK_CTX(dl_mem_alloc(be, p, n * elem), "allocating device memory for %s", what ? what : "a buffer");
    *cap = n;
    return DL_OK;
}

void dl_mem_free(const dl_backend *be, void *ptr) {
    if (be && be->ops && be->ops->memory && ptr)
        be->ops->memory->free(be->state, ptr);
}

dl_status dl_mem_zero(const dl_backend *be, void *ptr, size_t bytes) {
    REQUIRE_MEMORY(be, "dl_mem_zero");
    if (bytes == 0)
        return DL_OK;
    DL_REQUIRE(ptr != NULL, DL_ERR_INVALID, "dl_mem_zero: NULL pointer");
    return be->ops->memory->zero(be->state, ptr, bytes);
}

dl_status dl_mem_to_device(const dl_backend *be, void *dst, const void *host_src, size_t bytes) {
    REQUIRE_MEMORY(be, "dl_mem_to_device");
    if (bytes == 0)
        return DL_OK;
    DL_REQUIRE(dst != NULL && host_src != NULL, DL_ERR_INVALID, "dl_mem_to_device: NULL pointer");
    return be->ops->memory->to_device(be->state, dst, host_src, bytes);
}

dl_status dl_mem_to_host(const dl_backend *be, void *host_dst, const void *src, size_t bytes) {
    REQUIRE_MEMORY(be, "dl_mem_to_host");
    if (bytes == 0)
        return DL_OK;
    DL_REQUIRE(host_dst != NULL && src != NULL, DL_ERR_INVALID, "dl_mem_to_host: NULL pointer");
    return be->ops->memory->to_host(be->state, host_dst, src, bytes);
}

dl_status dl_mem_copy(const dl_backend *be, void *dst, const void *src, size_t bytes) {
    REQUIRE_MEMORY(be, "dl_mem_copy");
    if (bytes == 0)
        return DL_OK;
    DL_REQUIRE(dst != NULL && src != NULL, DL_ERR_INVALID, "dl_mem_copy: NULL pointer");
    return be->ops->memory->copy(be->state, dst, src, bytes);
}

dl_status dl_synchronize(const dl_backend *be) {
    REQUIRE_MEMORY(be, "dl_synchronize");
    return be->ops->memory->synchronize(be->state);
}
