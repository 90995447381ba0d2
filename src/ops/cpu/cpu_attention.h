/* cpu_attention.h — the CPU kernels of the attention family (attention.c), gathered into dl_cpu_attention_ops by
 * attention_table.c.
 *
 * They are reached only through the dl_op_attention_* wrappers of src/ops/attention.c, which have already checked
 * pointers, sizes, aliasing and cu_seqlens; the kernels trust their arguments. The first argument is the backend's
 * state (unused on CPU). */
#ifndef DL_OPS_CPU_CPU_ATTENTION_H
#define DL_OPS_CPU_CPU_ATTENTION_H

#include <stddef.h>

#include "ops/ops.h"

/* Query rows and key columns of one tile, and the largest head size the kernels handle. */
#define DL_CPU_ATTENTION_TILE 64
#define DL_CPU_ATTENTION_MAX_D 128

/* The flash forward: see dl_op_attention_forward. */
dl_status dl_cpu_attention_forward(void *state, float *out, float *lse, const float *qkv, const int32_t *cu_seqlens,
                                   int num_seqs, int N, int H, int D);
/* The flash backward: see dl_op_attention_backward. */
dl_status dl_cpu_attention_backward(void *state, float *dqkv, const float *dout, const float *qkv, const float *out,
                                    const float *lse, const int32_t *cu_seqlens, int num_seqs, int N, int H, int D);

/* Bytes of tile scratch one thread uses (on its stack) in the forward and in the backward: a constant, whatever
 * the number of tokens, since no T×T matrix is ever formed. */
size_t dl_cpu_attention_scratch_forward(void);
size_t dl_cpu_attention_scratch_backward(void);

#endif
