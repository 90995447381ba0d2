/* backend_internal.h — what the backend implementations export to backend.c and the dispatchers; not for models.
 *
 * Each kernel family has one table per backend (dl_cpu_dense_ops, dl_cuda_dense_ops, ...), defined in that
 * backend's <family>_table file. DL_DISPATCH turns a missing family or op into DL_ERR_UNSUPPORTED. */
#ifndef DL_OPS_BACKEND_INTERNAL_H
#define DL_OPS_BACKEND_INTERNAL_H

#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

dl_status dl_cpu_backend_open(dl_backend *be);
void dl_cpu_backend_close(dl_backend *be);

extern const dl_dense_ops dl_cpu_dense_ops;
extern const dl_attention_ops dl_cpu_attention_ops;
extern const dl_optim_ops dl_cpu_optim_ops;
extern const dl_sparse_ops dl_cpu_sparse_ops;

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
