/* op_list.h — the one list of the kernels each backend implements, family by family.
 *
 * Every kernel exists once per backend (dl_cpu_<kernel> in src/ops/cpu/, dl_cuda_<kernel> in src/ops/cuda/) and
 * is reached through a member of its family's table (ops.h: dl_dense_ops, ...). Rather than spell each signature
 * four times (the table member, the CPU prototype, the CUDA prototype, the CPU variants' symbol names), each family
 * is one X-macro list here and everything else is generated from it:
 *
 *     X(member, kernel, (parameters))
 *
 * member is the table member (ops.h), kernel the stem of the backend functions (the same except for attention,
 * whose members are plain forward/backward), and the parameters are the kernel's, the backend's `state` first.
 * Rows stay in the order of the table's members (new ones go at the end of their family): the CUDA tables are
 * initialised by position.
 *
 * Adding an op: one row here, dl_cpu_<kernel> and dl_cuda_<kernel> (both backends implement every row), and its
 * checked dl_op_* entry point in ops.h and the family's dispatcher file. The table member, both prototypes, both
 * tables and the CPU variants' symbol names follow. */
#ifndef DL_OPS_OP_LIST_H
#define DL_OPS_OP_LIST_H

/* Defined in ops.h; the sparse family's fused ops take them by pointer. */
struct dl_click_table;
struct dl_click_rows;

/* ---- dense (src/ops/dense.c dispatches) ------------------------------------------------------------------------ */
#define DL_DENSE_OPS(X)                                                                                          \
    X(matmul_forward, matmul_forward,                                                                            \
      (void *state, float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)) \
    X(matmul_backward, matmul_backward,                                                                          \
      (void *state, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,              \
       const float *weight, int N, int C, int OC))                                                               \
    X(matmul_forward_bf16, matmul_forward_bf16,                                                                  \
      (void *state, float *out, const dl_bf16 *inp, const dl_bf16 *weight, const float *bias, int N, int C,      \
       int OC))                                                                                                  \
    X(embedding_forward, embedding_forward,                                                                      \
      (void *state, float *out, const int32_t *tokens, const int32_t *positions, const float *wte,               \
       const float *wpe, int N, int C, int V, int max_pos))                                                      \
    X(embedding_backward, embedding_backward,                                                                    \
      (void *state, float *dwte, float *dwpe, const float *dout, const int32_t *tokens, const int32_t *positions, \
       int N, int C, int V, int max_pos))                                                                        \
    X(rope_forward, rope_forward,                                                                                \
      (void *state, float *out, const float *inp, const int32_t *positions, int N, int H, int D, int stride,     \
       float theta))                                                                                             \
    X(rope_backward, rope_backward,                                                                              \
      (void *state, float *dinp, const float *dout, const int32_t *positions, int N, int H, int D, int stride,   \
       float theta))                                                                                             \
    X(layernorm_forward, layernorm_forward,                                                                      \
      (void *state, float *out, float *mean, float *rstd, const float *inp, const float *weight,                 \
       const float *bias, int N, int C, float eps))                                                              \
    X(layernorm_backward, layernorm_backward,                                                                    \
      (void *state, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,              \
       const float *weight, const float *mean, const float *rstd, int N, int C))                                 \
    X(gelu_forward, gelu_forward, (void *state, float *out, const float *inp, size_t n))                         \
    X(gelu_backward, gelu_backward, (void *state, float *dinp, const float *inp, const float *dout, size_t n))   \
    X(residual_forward, residual_forward, (void *state, float *out, const float *a, const float *b, size_t n))   \
    X(residual_backward, residual_backward, (void *state, float *da, float *db, const float *dout, size_t n))    \
    X(dropout_forward, dropout_forward,                                                                          \
      (void *state, float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t stream))            \
    X(dropout_backward, dropout_backward,                                                                        \
      (void *state, float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t stream))          \
    X(xent_forward, xent_forward,                                                                                \
      (void *state, float *losses, float *lse, const float *logits, const int32_t *targets, int N, int V))       \
    X(xent_backward, xent_backward,                                                                              \
      (void *state, float *dlogits, const float *logits, const float *lse, const int32_t *targets,               \
       const float *dlosses, int N, int V))                                                                      \
    X(sequence_sum_forward, sequence_sum_forward,                                                                \
      (void *state, float *out, const float *values, const int32_t *cu_seqlens, int num_seqs))                   \
    X(sequence_sum_backward, sequence_sum_backward,                                                              \
      (void *state, float *dvalues, const float *dout, const int32_t *cu_seqlens, int num_seqs))                 \
    X(f32_to_bf16, f32_to_bf16, (void *state, dl_bf16 *out, const float *inp, size_t n))                         \
    X(bf16_to_f32, bf16_to_f32, (void *state, float *out, const dl_bf16 *inp, size_t n))                         \
    X(matmul_backward_bf16, matmul_backward_bf16,                                                                \
      (void *state, float *dinp, float *dweight, float *dbias, const dl_bf16 *dout, const dl_bf16 *inp,          \
       const dl_bf16 *weight, int N, int C, int OC))

/* ---- attention (src/ops/attention.c dispatches) ---------------------------------------------------------------- */
#define DL_ATTENTION_OPS(X)                                                                                      \
    X(forward, attention_forward,                                                                                \
      (void *state, float *out, float *lse, const float *qkv, const int32_t *cu_seqlens, int num_seqs, int N,    \
       int H, int D))                                                                                            \
    X(backward, attention_backward,                                                                              \
      (void *state, float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,        \
       const int32_t *cu_seqlens, int num_seqs, int N, int H, int D))

/* ---- optimizers, norms, DPO loss (src/ops/optim.c dispatches) -------------------------------------------------- */
#define DL_OPTIM_OPS(X)                                                                                          \
    X(adamw_update, adamw_update,                                                                                \
      (void *state, float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1,      \
       float beta2, float eps, float weight_decay, float grad_scale, int64_t step))                              \
    X(adagrad_update, adagrad_update,                                                                            \
      (void *state, float *params, const float *grads, float *accum, size_t n, float lr, float weight_decay,     \
       float grad_scale))                                                                                        \
    X(sgd_update, sgd_update,                                                                                    \
      (void *state, float *params, const float *grads, float *momentum_buf, size_t n, float lr, float momentum,  \
       float weight_decay, float grad_scale))                                                                    \
    X(sumsq, sumsq, (void *state, double *host_result, const float *x, size_t n))                                \
    X(scale, scale, (void *state, float *x, size_t n, float factor))                                             \
    X(dpo_loss_forward, dpo_loss_forward,                                                                        \
      (void *state, float *losses, float *chosen_rewards, float *rejected_rewards, const float *policy_chosen,   \
       const float *policy_rejected, const float *ref_chosen, const float *ref_rejected, int num_pairs,          \
       int loss_kind, float beta, float label_smoothing))                                                        \
    X(dpo_loss_backward, dpo_loss_backward,                                                                      \
      (void *state, float *dpolicy_chosen, float *dpolicy_rejected, const float *dlosses,                        \
       const float *policy_chosen, const float *policy_rejected, const float *ref_chosen,                        \
       const float *ref_rejected, int num_pairs, int loss_kind, float beta, float label_smoothing))

/* ---- sparse: embedding bags, FM, FFM, sharded AdaGrad rows, fused click tables (src/ops/sparse.c and
 * src/ops/sparse_fused.c dispatch) ------------------------------------------------------------------------------ */
#define DL_SPARSE_OPS(X)                                                                                         \
    X(embedding_bag_forward, embedding_bag_forward,                                                              \
      (void *state, float *out, const float *table, const int32_t *rows, const float *weights,                   \
       const int32_t *offsets, int num_bags, int dim, int64_t num_rows))                                         \
    X(embedding_bag_backward, embedding_bag_backward,                                                            \
      (void *state, float *dtable, const float *dout, const int32_t *rows, const float *weights,                 \
       const int32_t *offsets, int num_bags, int dim, int64_t num_rows))                                         \
    X(fm_forward, fm_forward,                                                                                    \
      (void *state, float *logits, float *sum_vx, const float *linear, const float *latent, const float *bias,   \
       const int32_t *row_ptr, const int32_t *rows, const float *values, const float *instance_scale, int B,     \
       int k, int kpad, int64_t num_rows))                                                                       \
    X(fm_backward, fm_backward,                                                                                  \
      (void *state, float *dlinear, float *dlatent, float *dbias, const float *dlogits, const float *sum_vx,     \
       const float *latent, const int32_t *row_ptr, const int32_t *rows, const float *values,                    \
       const float *instance_scale, int B, int k, int kpad, int64_t num_rows))                                   \
    X(ffm_forward, ffm_forward,                                                                                  \
      (void *state, float *logits, const float *latent, const int32_t *row_ptr, const int32_t *rows,             \
       const int32_t *fields, const float *values, const float *instance_scale, int B, int num_fields, int k,    \
       int kpad, int64_t num_rows))                                                                              \
    X(ffm_backward, ffm_backward,                                                                                \
      (void *state, float *dlatent, const float *dlogits, const float *latent, const int32_t *row_ptr,           \
       const int32_t *rows, const int32_t *fields, const float *values, const float *instance_scale, int B,      \
       int num_fields, int k, int kpad, int64_t num_rows))                                                       \
    X(adagrad_rows_update, adagrad_rows_update,                                                                  \
      (void *state, float *table, float *accum, const float *grads, const int32_t *rows, int num_rows_touched,   \
       int row_floats, float lr, float weight_decay))                                                            \
    X(ffm_fused_forward, ffm_fused_forward,                                                                      \
      (void *state, float *logits, const struct dl_click_table *table, const struct dl_click_rows *batch))       \
    X(ffm_fused_sgd, ffm_fused_sgd,                                                                              \
      (void *state, float *logits, struct dl_click_table *table, const struct dl_click_rows *batch, float lr,    \
       float weight_decay))                                                                                      \
    X(fm_fused_forward, fm_fused_forward,                                                                        \
      (void *state, float *logits, const struct dl_click_table *table, const struct dl_click_rows *batch))       \
    X(fm_fused_sgd, fm_fused_sgd,                                                                                \
      (void *state, float *logits, struct dl_click_table *table, const struct dl_click_rows *batch, float lr,    \
       float weight_decay))

/* What ops.h makes of a row: the table member, a pointer to the kernel. */
#define DL_OP_TABLE_MEMBER(member, kernel, params) dl_status(*member) params;

#endif
