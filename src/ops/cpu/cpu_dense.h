/* cpu_dense.h — what the CPU kernels of the dense family share, one family per file (matmul.c, embedding.c,
 * rope.c, layernorm.c, gelu.c, residual.c, dropout.c, xent.c, convert.c). Their prototypes are cpu_kernels.h's,
 * made from the DL_DENSE_OPS rows of ops/op_list.h; op_tables.c gathers them into dl_cpu_dense_ops.
 *
 * These are reached only through the dl_op_* wrappers of src/ops/dense.c, which have already checked pointers,
 * sizes and aliasing; a kernel checks only what lives in the data itself (token ids, positions, targets,
 * cu_seqlens), before it writes anything. The first argument is the backend's state (unused on CPU). */
#ifndef DL_OPS_CPU_CPU_DENSE_H
#define DL_OPS_CPU_CPU_DENSE_H

#include "ops/cpu/cpu_kernels.h"

/* Work below this many elements runs on the calling thread: waking the OpenMP team costs more than it saves. */
#define DL_CPU_PARALLEL_MIN 32768

/* Width of the column blocks a team shares when it reduces over rows (dbias, dweight of LayerNorm, embedding
 * gradients): each thread owns whole columns and adds rows in order 0..N-1, so results do not depend on the
 * thread count. Rounded to 16 floats (one AVX-512 vector). */
static inline int dl_cpu_column_block(int C, int threads) {
    if (threads < 1)
        threads = 1;
    int w = (C + threads - 1) / threads;
    w = (w + 15) & ~15;
    return w < 16 ? 16 : w;
}

#endif
