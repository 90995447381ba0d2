/* cpu_backend.c — the CPU backend: host memory (64-byte aligned for AVX-512 loads) and the table of CPU kernel
 * families. Kernels use OpenMP; the thread count is OpenMP's (OMP_NUM_THREADS), recorded in be->num_threads. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/backend_internal.h"

static dl_status cpu_alloc(void *state, void **ptr, size_t bytes) {
    (void)state;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    *ptr = aligned_alloc(64, rounded);
    if (!*ptr)
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes of host memory", bytes);
    return DL_OK;
}

static void cpu_free(void *state, void *ptr) {
    (void)state;
    free(ptr);
}

static dl_status cpu_zero(void *state, void *ptr, size_t bytes) {
    (void)state;
    memset(ptr, 0, bytes);
    return DL_OK;
}

static dl_status cpu_copy(void *state, void *dst, const void *src, size_t bytes) {
    (void)state;
    memmove(dst, src, bytes);
    return DL_OK;
}

static dl_status cpu_synchronize(void *state) {
    (void)state;
    return DL_OK;
}

static const dl_memory_ops cpu_memory_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .copy = cpu_copy,
    .synchronize = cpu_synchronize,
};

static const dl_backend_ops cpu_backend_ops = {
    .memory = &cpu_memory_ops,
    .dense = &dl_cpu_dense_ops,
    .attention = &dl_cpu_attention_ops,
    .optim = &dl_cpu_optim_ops,
    .sparse = &dl_cpu_sparse_ops,
};

dl_status dl_cpu_backend_open(dl_backend *be) {
    be->kind = DL_DEVICE_CPU;
    be->name = "cpu";
    be->device_index = 0;
    be->num_threads = omp_get_max_threads();
    be->state = NULL;
    be->ops = &cpu_backend_ops;
    return DL_OK;
}

void dl_cpu_backend_close(dl_backend *be) { (void)be; }
