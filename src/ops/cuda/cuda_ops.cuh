/* cuda_ops.cuh — the CUDA kernel entry points, one per row of ops/op_list.h, and the four family tables
 * (cuda_backend.cu fills them from the same rows). Each entry has the signature of its member in ops.h's tables and
 * the semantics ops.h documents; `state` is the dl_cuda_state. Arguments were checked by the dispatcher; entries
 * check only what the GPU adds (sizes a kernel cannot handle, indices read from device memory). */
#ifndef DL_OPS_CUDA_OPS_CUH
#define DL_OPS_CUDA_OPS_CUH

#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const dl_dense_ops dl_cuda_dense_ops;
extern const dl_attention_ops dl_cuda_attention_ops;
extern const dl_optim_ops dl_cuda_optim_ops;
extern const dl_sparse_ops dl_cuda_sparse_ops;

/* dl_cuda_<kernel> for each row of ops/op_list.h, defined in the .cu file of its kernel family. */
#define DL_CUDA_KERNEL_PROTOTYPE(member, kernel, params) dl_status dl_cuda_##kernel params;

DL_DENSE_OPS(DL_CUDA_KERNEL_PROTOTYPE)
DL_ATTENTION_OPS(DL_CUDA_KERNEL_PROTOTYPE)
DL_OPTIM_OPS(DL_CUDA_KERNEL_PROTOTYPE)
DL_SPARSE_OPS(DL_CUDA_KERNEL_PROTOTYPE)

#ifdef __cplusplus
}
#endif

#endif
