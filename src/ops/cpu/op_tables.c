/* op_tables.c — the CPU backend's kernel-family tables (dl_cpu_dense_ops, ...), one member per row of
 * ops/op_list.h. Compiled once per CPU variant like every file here: each table takes its variant's name, and
 * src/ops/cpu_backend.c picks one set at start-up. */
#include "ops/cpu/cpu_kernels.h"

#define DL_CPU_TABLE_ENTRY(member, kernel, params) .member = dl_cpu_##kernel,

/* A table with its variant's symbol (the declaration carries the name, the definition follows it). */
#define DL_CPU_TABLE(type, name, list)                                                                          \
    extern const type name DL_CPU_SYMBOL(name);                                                                \
    const type name = {list(DL_CPU_TABLE_ENTRY)};

DL_CPU_TABLE(dl_dense_ops, dl_cpu_dense_ops, DL_DENSE_OPS)
DL_CPU_TABLE(dl_attention_ops, dl_cpu_attention_ops, DL_ATTENTION_OPS)
DL_CPU_TABLE(dl_optim_ops, dl_cpu_optim_ops, DL_OPTIM_OPS)
DL_CPU_TABLE(dl_sparse_ops, dl_cpu_sparse_ops, DL_SPARSE_OPS)
