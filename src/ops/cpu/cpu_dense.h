/* cpu_dense.h — the CPU kernels of the dense family, one family per file (matmul.c, embedding.c, rope.c,
 * layernorm.c, gelu.c, residual.c, dropout.c, xent.c, convert.c), gathered into dl_cpu_dense_ops by dense_table.c.
 *
 * These are reached only through the dl_op_* wrappers of src/ops/dense.c, which have already checked pointers,
 * sizes and aliasing; a kernel checks only what lives in the data itself (token ids, positions, targets,
 * cu_seqlens), before it writes anything. The first argument is the backend's state (unused on CPU). */
#ifndef DL_OPS_CPU_CPU_DENSE_H
#define DL_OPS_CPU_CPU_DENSE_H

#include "ops/ops.h"

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

dl_status dl_cpu_matmul_forward(void *state, float *out, const float *inp, const float *weight, const float *bias,
                                int N, int C, int OC);
dl_status dl_cpu_matmul_backward(void *state, float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int N, int C, int OC);
dl_status dl_cpu_matmul_forward_bf16(void *state, float *out, const dl_bf16 *inp, const dl_bf16 *weight,
                                     const float *bias, int N, int C, int OC);
dl_status dl_cpu_matmul_backward_bf16(void *state, float *dinp, float *dweight, float *dbias, const dl_bf16 *dout,
                                      const dl_bf16 *inp, const dl_bf16 *weight, int N, int C, int OC);

dl_status dl_cpu_embedding_forward(void *state, float *out, const int32_t *tokens, const int32_t *positions,
                                   const float *wte, const float *wpe, int N, int C, int V, int max_pos);
dl_status dl_cpu_embedding_backward(void *state, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                                    const int32_t *positions, int N, int C, int V, int max_pos);

dl_status dl_cpu_rope_forward(void *state, float *out, const float *inp, const int32_t *positions, int N, int H,
                              int D, int stride, float theta);
dl_status dl_cpu_rope_backward(void *state, float *dinp, const float *dout, const int32_t *positions, int N, int H,
                               int D, int stride, float theta);

dl_status dl_cpu_layernorm_forward(void *state, float *out, float *mean, float *rstd, const float *inp,
                                   const float *weight, const float *bias, int N, int C, float eps);
dl_status dl_cpu_layernorm_backward(void *state, float *dinp, float *dweight, float *dbias, const float *dout,
                                    const float *inp, const float *weight, const float *mean, const float *rstd,
                                    int N, int C);

dl_status dl_cpu_gelu_forward(void *state, float *out, const float *inp, size_t n);
dl_status dl_cpu_gelu_backward(void *state, float *dinp, const float *inp, const float *dout, size_t n);

dl_status dl_cpu_residual_forward(void *state, float *out, const float *a, const float *b, size_t n);
dl_status dl_cpu_residual_backward(void *state, float *da, float *db, const float *dout, size_t n);

dl_status dl_cpu_dropout_forward(void *state, float *out, const float *inp, size_t n, float p, uint64_t seed,
                                 uint64_t stream);
dl_status dl_cpu_dropout_backward(void *state, float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                                  uint64_t stream);

dl_status dl_cpu_xent_forward(void *state, float *losses, float *lse, const float *logits, const int32_t *targets,
                              int N, int V);
dl_status dl_cpu_xent_backward(void *state, float *dlogits, const float *logits, const float *lse,
                               const int32_t *targets, const float *dlosses, int N, int V);
dl_status dl_cpu_sequence_sum_forward(void *state, float *out, const float *values, const int32_t *cu_seqlens,
                                      int num_seqs);
dl_status dl_cpu_sequence_sum_backward(void *state, float *dvalues, const float *dout, const int32_t *cu_seqlens,
                                       int num_seqs);

dl_status dl_cpu_f32_to_bf16(void *state, dl_bf16 *out, const float *inp, size_t n);
dl_status dl_cpu_bf16_to_f32(void *state, float *out, const dl_bf16 *inp, size_t n);

#endif
