/* backend_internal.h — what the backend implementations export to backend.c and the dispatchers; not for models.
 *
 * Each kernel family has one table per backend (dl_cpu_dense_ops, dl_cuda_dense_ops, ...), made from the rows of
 * ops/op_list.h (cpu/op_tables.c, cuda/cuda_backend.cu). DL_DISPATCH turns a missing family or op into
 * DL_ERR_UNSUPPORTED. */
#ifndef DL_OPS_BACKEND_INTERNAL_H
#define DL_OPS_BACKEND_INTERNAL_H

#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens the CPU backend with the chosen CPU variant (dl_cpu_variant_select), or with the one named (NULL: chosen). */
dl_status dl_cpu_backend_open(dl_backend *be, const char *variant);
void dl_cpu_backend_close(dl_backend *be);

/* The tables of one CPU variant: the first variant's under the plain names, every further one's with its suffix
 * (src/ops/cpu/cpu_variant_names.h): DL_CPU_VARIANT_TABLES(_avx2) declares dl_cpu_dense_ops_avx2 and so on. */
#define DL_CPU_VARIANT_TABLES(suffix)                                                                          \
    extern const dl_dense_ops dl_cpu_dense_ops##suffix;                                                        \
    extern const dl_attention_ops dl_cpu_attention_ops##suffix;                                                \
    extern const dl_optim_ops dl_cpu_optim_ops##suffix;                                                        \
    extern const dl_sparse_ops dl_cpu_sparse_ops##suffix;
DL_CPU_VARIANT_TABLES()

#ifdef DEALER_HAVE_CUDA
/* GPUs that answer; 0 without a GPU or driver; an error when a driver is installed but CUDA cannot use it. */
dl_status dl_cuda_count_devices(int *count);
/* The CUDA backend's device index and cudaStream_t (be is a CUDA backend). */
dl_status dl_cuda_backend_handles(const dl_backend *be, int *device, void **stream);
dl_status dl_cuda_backend_open(dl_backend *be, int local_rank);
void dl_cuda_backend_close(dl_backend *be);
#endif

#ifdef __cplusplus
}
#endif

/* Calls be->ops->family->op(be->state, ...) or fails naming the op and backend when it is missing. */
#define DL_DISPATCH(be, family, op, ...)                                                                       \
    do {                                                                                                       \
        DL_REQUIRE((be) != NULL && (be)->ops != NULL, DL_ERR_INVALID, "%s: backend is not open", #op);        \
        if ((be)->ops->family == NULL || (be)->ops->family->op == NULL) {                                     \
            dl_status dl_dispatch_s_ = DL_FAIL(DL_ERR_UNSUPPORTED, "op %s.%s is not available on backend %s",  \
                                               #family, #op, (be)->name);                                      \
            dl_error_hint("use device: cpu for this model");                                                  \
            return dl_dispatch_s_;                                                                            \
        }                                                                                                      \
        return (be)->ops->family->op((be)->state, __VA_ARGS__);                                               \
    } while (0)

#endif
