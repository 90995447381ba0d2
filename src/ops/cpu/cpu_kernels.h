/* cpu_kernels.h — the prototypes of every CPU kernel, dl_cpu_<kernel> for each row of ops/op_list.h, and the name
 * each one has in the CPU variant being compiled.
 *
 * The family headers (cpu_dense.h, cpu_attention.h, cpu_optim.h, cpu_sparse.h, cpu_sparse_fused.h) include this
 * and add the helpers their kernels share; op_tables.c gathers the kernels into the family tables. The kernels
 * are reached only through the dl_op_* entry points of src/ops/, which have already checked pointers, sizes and
 * aliasing; a kernel checks only what lives in the data itself (token ids, positions, targets, cu_seqlens, row
 * ids), before it writes anything. The first argument is the backend's state (unused on CPU).
 *
 * Variants: every file of src/ops/cpu/ is compiled once per CPU variant (CMakeLists.txt, DEALER_CPU_VARIANTS).
 * DL_CPU_SYMBOL(name) after a declaration gives it its variant's symbol (cpu_variant_names.h, forced into every
 * further variant's compile: dl_cpu_gelu_forward becomes dl_cpu_gelu_forward_avx2); the first variant keeps the
 * plain names. Since the prototypes below carry it, a kernel added to op_list.h is renamed with no further line. */
#ifndef DL_OPS_CPU_CPU_KERNELS_H
#define DL_OPS_CPU_CPU_KERNELS_H

#include "ops/ops.h"

#ifndef DL_CPU_SYMBOL
#define DL_CPU_SYMBOL(name) /* the first variant: the plain name */
#endif

#define DL_CPU_KERNEL_PROTOTYPE(member, kernel, params) dl_status dl_cpu_##kernel params DL_CPU_SYMBOL(dl_cpu_##kernel);

DL_DENSE_OPS(DL_CPU_KERNEL_PROTOTYPE)
DL_ATTENTION_OPS(DL_CPU_KERNEL_PROTOTYPE)
DL_OPTIM_OPS(DL_CPU_KERNEL_PROTOTYPE)
DL_SPARSE_OPS(DL_CPU_KERNEL_PROTOTYPE)

#endif
