/* cpu_attention.h — what the CPU kernels of the attention family (attention.c) share and tell others. Their
 * prototypes are cpu_kernels.h's (the DL_ATTENTION_OPS rows of ops/op_list.h); op_tables.c gathers them into
 * dl_cpu_attention_ops.
 *
 * They are reached only through the dl_op_attention_* wrappers of src/ops/attention.c, which have already checked
 * pointers, sizes, aliasing and cu_seqlens; the kernels trust their arguments. The first argument is the backend's
 * state (unused on CPU). */
#ifndef DL_OPS_CPU_CPU_ATTENTION_H
#define DL_OPS_CPU_CPU_ATTENTION_H

#include <stddef.h>

#include "ops/cpu/cpu_kernels.h"

/* Query rows and key columns of one tile, and the largest head size the kernels handle. */
#define DL_CPU_ATTENTION_TILE 64
#define DL_CPU_ATTENTION_MAX_D 128

/* Bytes of tile scratch one thread uses (on its stack) in the forward and in the backward: a constant, whatever
 * the number of tokens, since no T×T matrix is ever formed. */
size_t dl_cpu_attention_scratch_forward(void) DL_CPU_SYMBOL(dl_cpu_attention_scratch_forward);
size_t dl_cpu_attention_scratch_backward(void) DL_CPU_SYMBOL(dl_cpu_attention_scratch_backward);

#endif
