/* cuda_ops.cuh — the CUDA kernel entry points, one group per kernel file, and the four family tables
 * (cuda_backend.cu fills them). Each entry has the signature of its member in ops.h's tables and the semantics ops.h
 * documents; `state` is the dl_cuda_state. Arguments were checked by the dispatcher; entries check only what the
 * GPU adds (sizes a kernel cannot handle, indices read from device memory). */
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

/* matmul.cu */
dl_status dl_cuda_matmul_forward(void *state, float *out, const float *inp, const float *weight, const float *bias,
                                 int N, int C, int OC);
dl_status dl_cuda_matmul_backward(void *state, float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, int N, int C, int OC);
dl_status dl_cuda_matmul_forward_bf16(void *state, float *out, const dl_bf16 *inp, const dl_bf16 *weight,
                                      const float *bias, int N, int C, int OC);
dl_status dl_cuda_matmul_backward_bf16(void *state, float *dinp, float *dweight, float *dbias, const dl_bf16 *dout,
                                       const dl_bf16 *inp, const dl_bf16 *weight, int N, int C, int OC);
/* embedding.cu */
dl_status dl_cuda_embedding_forward(void *state, float *out, const int32_t *tokens, const int32_t *positions,
                                    const float *wte, const float *wpe, int N, int C, int V, int max_pos);
dl_status dl_cuda_embedding_backward(void *state, float *dwte, float *dwpe, const float *dout,
                                     const int32_t *tokens, const int32_t *positions, int N, int C, int V,
                                     int max_pos);
/* rope.cu */
dl_status dl_cuda_rope_forward(void *state, float *out, const float *inp, const int32_t *positions, int N, int H,
                               int D, int stride, float theta);
dl_status dl_cuda_rope_backward(void *state, float *dinp, const float *dout, const int32_t *positions, int N, int H,
                                int D, int stride, float theta);
/* layernorm.cu */
dl_status dl_cuda_layernorm_forward(void *state, float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int N, int C, float eps);
dl_status dl_cuda_layernorm_backward(void *state, float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean, const float *rstd,
                                     int N, int C);
/* gelu.cu */
dl_status dl_cuda_gelu_forward(void *state, float *out, const float *inp, size_t n);
dl_status dl_cuda_gelu_backward(void *state, float *dinp, const float *inp, const float *dout, size_t n);
/* residual.cu */
dl_status dl_cuda_residual_forward(void *state, float *out, const float *a, const float *b, size_t n);
dl_status dl_cuda_residual_backward(void *state, float *da, float *db, const float *dout, size_t n);
/* dropout.cu */
dl_status dl_cuda_dropout_forward(void *state, float *out, const float *inp, size_t n, float p, uint64_t seed,
                                  uint64_t stream);
dl_status dl_cuda_dropout_backward(void *state, float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                                   uint64_t stream);
/* xent.cu */
dl_status dl_cuda_xent_forward(void *state, float *losses, float *lse, const float *logits, const int32_t *targets,
                               int N, int V);
dl_status dl_cuda_xent_backward(void *state, float *dlogits, const float *logits, const float *lse,
                                const int32_t *targets, const float *dlosses, int N, int V);
/* sequence_sum.cu */
dl_status dl_cuda_sequence_sum_forward(void *state, float *out, const float *values, const int32_t *cu_seqlens,
                                       int num_seqs);
dl_status dl_cuda_sequence_sum_backward(void *state, float *dvalues, const float *dout, const int32_t *cu_seqlens,
                                        int num_seqs);
/* convert.cu */
dl_status dl_cuda_f32_to_bf16(void *state, dl_bf16 *out, const float *inp, size_t n);
dl_status dl_cuda_bf16_to_f32(void *state, float *out, const dl_bf16 *inp, size_t n);
/* attention.cu */
dl_status dl_cuda_attention_forward(void *state, float *out, float *lse, const float *qkv, const int32_t *cu_seqlens,
                                    int num_seqs, int N, int H, int D);
dl_status dl_cuda_attention_backward(void *state, float *dqkv, const float *dout, const float *qkv, const float *out,
                                     const float *lse, const int32_t *cu_seqlens, int num_seqs, int N, int H, int D);
/* adamw.cu */
dl_status dl_cuda_adamw_update(void *state, float *params, const float *grads, float *m, float *v, size_t n,
                               float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                               int64_t step);
/* adagrad.cu */
dl_status dl_cuda_adagrad_update(void *state, float *params, const float *grads, float *accum, size_t n, float lr,
                                 float weight_decay, float grad_scale);
dl_status dl_cuda_adagrad_rows_update(void *state, float *table, float *accum, const float *grads,
                                      const int32_t *rows, int num_rows_touched, int row_floats, float lr,
                                      float weight_decay);
/* sgd.cu */
dl_status dl_cuda_sgd_update(void *state, float *params, const float *grads, float *momentum_buf, size_t n, float lr,
                             float momentum, float weight_decay, float grad_scale);
/* norm.cu */
dl_status dl_cuda_sumsq(void *state, double *host_result, const float *x, size_t n);
dl_status dl_cuda_scale(void *state, float *x, size_t n, float factor);
/* dpo_loss.cu */
dl_status dl_cuda_dpo_loss_forward(void *state, float *losses, float *chosen_rewards, float *rejected_rewards,
                                   const float *policy_chosen, const float *policy_rejected, const float *ref_chosen,
                                   const float *ref_rejected, int num_pairs, int loss_kind, float beta,
                                   float label_smoothing);
dl_status dl_cuda_dpo_loss_backward(void *state, float *dpolicy_chosen, float *dpolicy_rejected,
                                    const float *dlosses, const float *policy_chosen, const float *policy_rejected,
                                    const float *ref_chosen, const float *ref_rejected, int num_pairs, int loss_kind,
                                    float beta, float label_smoothing);
/* embedding_bag.cu */
dl_status dl_cuda_embedding_bag_forward(void *state, float *out, const float *table, const int32_t *rows,
                                        const float *weights, const int32_t *offsets, int num_bags, int dim,
                                        int64_t num_rows);
dl_status dl_cuda_embedding_bag_backward(void *state, float *dtable, const float *dout, const int32_t *rows,
                                         const float *weights, const int32_t *offsets, int num_bags, int dim,
                                         int64_t num_rows);
/* fm.cu */
dl_status dl_cuda_fm_forward(void *state, float *logits, float *sum_vx, const float *linear, const float *latent,
                             const float *bias, const int32_t *row_ptr, const int32_t *rows, const float *values,
                             const float *instance_scale, int B, int k, int kpad, int64_t num_rows);
dl_status dl_cuda_fm_backward(void *state, float *dlinear, float *dlatent, float *dbias, const float *dlogits,
                              const float *sum_vx, const float *latent, const int32_t *row_ptr, const int32_t *rows,
                              const float *values, const float *instance_scale, int B, int k, int kpad,
                              int64_t num_rows);
/* ffm.cu */
dl_status dl_cuda_ffm_forward(void *state, float *logits, const float *latent, const int32_t *row_ptr,
                              const int32_t *rows, const int32_t *fields, const float *values,
                              const float *instance_scale, int B, int num_fields, int k, int kpad, int64_t num_rows);
dl_status dl_cuda_ffm_backward(void *state, float *dlatent, const float *dlogits, const float *latent,
                               const int32_t *row_ptr, const int32_t *rows, const int32_t *fields,
                               const float *values, const float *instance_scale, int B, int num_fields, int k,
                               int kpad, int64_t num_rows);

/* click_fused.cu */
dl_status dl_cuda_ffm_fused_forward(void *state, float *logits, const dl_click_table *table,
                                    const dl_click_rows *batch);
dl_status dl_cuda_ffm_fused_sgd(void *state, float *logits, dl_click_table *table, const dl_click_rows *batch,
                                float lr, float weight_decay);
dl_status dl_cuda_fm_fused_forward(void *state, float *logits, const dl_click_table *table,
                                   const dl_click_rows *batch);
dl_status dl_cuda_fm_fused_sgd(void *state, float *logits, dl_click_table *table, const dl_click_rows *batch,
                               float lr, float weight_decay);

#ifdef __cplusplus
}
#endif

#endif
