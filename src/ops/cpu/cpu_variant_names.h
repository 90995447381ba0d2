/* cpu_variant_names.h — gives every external symbol of src/ops/cpu/ a per-variant name.
 *
 * The kernels in src/ops/cpu/ are compiled once per CPU variant from the same source (CMakeLists.txt,
 * DEALER_CPU_VARIANTS): the first variant (baseline, or native with -DDEALER_NATIVE=ON) keeps the plain names,
 * every further one is compiled with this header forced in first (-include) and DL_CPU_VARIANT_SUFFIX set, so
 * dl_cpu_attention_forward becomes dl_cpu_attention_forward_avx2, the tables dl_cpu_dense_ops_avx2 and so on.
 * src/ops/cpu_backend.c then picks one set of tables at start-up.
 *
 * A new external function or table in src/ops/cpu/ needs a line here: without one, the link fails with a
 * "multiple definition" error naming it. Static functions need nothing. */
#ifndef DL_OPS_CPU_CPU_VARIANT_NAMES_H
#define DL_OPS_CPU_CPU_VARIANT_NAMES_H

#ifndef DL_CPU_VARIANT_SUFFIX
#error "cpu_variant_names.h is only for the suffixed CPU variant builds (CMakeLists.txt sets DL_CPU_VARIANT_SUFFIX)"
#endif

#define DL_CPU_VARIANT_CAT2(name, suffix) name##suffix
#define DL_CPU_VARIANT_CAT(name, suffix) DL_CPU_VARIANT_CAT2(name, suffix)
#define DL_CPU_VARIANT_NAME(name) DL_CPU_VARIANT_CAT(name, DL_CPU_VARIANT_SUFFIX)

/* the kernel-family tables */
#define dl_cpu_dense_ops DL_CPU_VARIANT_NAME(dl_cpu_dense_ops)
#define dl_cpu_attention_ops DL_CPU_VARIANT_NAME(dl_cpu_attention_ops)
#define dl_cpu_optim_ops DL_CPU_VARIANT_NAME(dl_cpu_optim_ops)
#define dl_cpu_sparse_ops DL_CPU_VARIANT_NAME(dl_cpu_sparse_ops)

/* the kernels */
#define dl_cpu_adagrad_rows_update DL_CPU_VARIANT_NAME(dl_cpu_adagrad_rows_update)
#define dl_cpu_adagrad_update DL_CPU_VARIANT_NAME(dl_cpu_adagrad_update)
#define dl_cpu_adamw_update DL_CPU_VARIANT_NAME(dl_cpu_adamw_update)
#define dl_cpu_attention_backward DL_CPU_VARIANT_NAME(dl_cpu_attention_backward)
#define dl_cpu_attention_forward DL_CPU_VARIANT_NAME(dl_cpu_attention_forward)
#define dl_cpu_attention_scratch_backward DL_CPU_VARIANT_NAME(dl_cpu_attention_scratch_backward)
#define dl_cpu_attention_scratch_forward DL_CPU_VARIANT_NAME(dl_cpu_attention_scratch_forward)
#define dl_cpu_bf16_to_f32 DL_CPU_VARIANT_NAME(dl_cpu_bf16_to_f32)
#define dl_cpu_dpo_loss_backward DL_CPU_VARIANT_NAME(dl_cpu_dpo_loss_backward)
#define dl_cpu_dpo_loss_forward DL_CPU_VARIANT_NAME(dl_cpu_dpo_loss_forward)
#define dl_cpu_dropout_backward DL_CPU_VARIANT_NAME(dl_cpu_dropout_backward)
#define dl_cpu_dropout_forward DL_CPU_VARIANT_NAME(dl_cpu_dropout_forward)
#define dl_cpu_embedding_backward DL_CPU_VARIANT_NAME(dl_cpu_embedding_backward)
#define dl_cpu_embedding_bag_backward DL_CPU_VARIANT_NAME(dl_cpu_embedding_bag_backward)
#define dl_cpu_embedding_bag_forward DL_CPU_VARIANT_NAME(dl_cpu_embedding_bag_forward)
#define dl_cpu_embedding_forward DL_CPU_VARIANT_NAME(dl_cpu_embedding_forward)
#define dl_cpu_f32_to_bf16 DL_CPU_VARIANT_NAME(dl_cpu_f32_to_bf16)
#define dl_cpu_ffm_backward DL_CPU_VARIANT_NAME(dl_cpu_ffm_backward)
#define dl_cpu_ffm_forward DL_CPU_VARIANT_NAME(dl_cpu_ffm_forward)
#define dl_cpu_ffm_fused_forward DL_CPU_VARIANT_NAME(dl_cpu_ffm_fused_forward)
#define dl_cpu_ffm_fused_sgd DL_CPU_VARIANT_NAME(dl_cpu_ffm_fused_sgd)
#define dl_cpu_fm_backward DL_CPU_VARIANT_NAME(dl_cpu_fm_backward)
#define dl_cpu_fm_forward DL_CPU_VARIANT_NAME(dl_cpu_fm_forward)
#define dl_cpu_fm_fused_forward DL_CPU_VARIANT_NAME(dl_cpu_fm_fused_forward)
#define dl_cpu_fm_fused_sgd DL_CPU_VARIANT_NAME(dl_cpu_fm_fused_sgd)
#define dl_cpu_gelu_backward DL_CPU_VARIANT_NAME(dl_cpu_gelu_backward)
#define dl_cpu_gelu_forward DL_CPU_VARIANT_NAME(dl_cpu_gelu_forward)
#define dl_cpu_layernorm_backward DL_CPU_VARIANT_NAME(dl_cpu_layernorm_backward)
#define dl_cpu_layernorm_forward DL_CPU_VARIANT_NAME(dl_cpu_layernorm_forward)
#define dl_cpu_matmul_backward DL_CPU_VARIANT_NAME(dl_cpu_matmul_backward)
#define dl_cpu_matmul_forward DL_CPU_VARIANT_NAME(dl_cpu_matmul_forward)
#define dl_cpu_matmul_forward_bf16 DL_CPU_VARIANT_NAME(dl_cpu_matmul_forward_bf16)
#define dl_cpu_matmul_backward_bf16 DL_CPU_VARIANT_NAME(dl_cpu_matmul_backward_bf16)
#define dl_cpu_residual_backward DL_CPU_VARIANT_NAME(dl_cpu_residual_backward)
#define dl_cpu_residual_forward DL_CPU_VARIANT_NAME(dl_cpu_residual_forward)
#define dl_cpu_rope_backward DL_CPU_VARIANT_NAME(dl_cpu_rope_backward)
#define dl_cpu_rope_forward DL_CPU_VARIANT_NAME(dl_cpu_rope_forward)
#define dl_cpu_scale DL_CPU_VARIANT_NAME(dl_cpu_scale)
#define dl_cpu_sequence_sum_backward DL_CPU_VARIANT_NAME(dl_cpu_sequence_sum_backward)
#define dl_cpu_sequence_sum_forward DL_CPU_VARIANT_NAME(dl_cpu_sequence_sum_forward)
#define dl_cpu_sgd_update DL_CPU_VARIANT_NAME(dl_cpu_sgd_update)
#define dl_cpu_sumsq DL_CPU_VARIANT_NAME(dl_cpu_sumsq)
#define dl_cpu_xent_backward DL_CPU_VARIANT_NAME(dl_cpu_xent_backward)
#define dl_cpu_xent_forward DL_CPU_VARIANT_NAME(dl_cpu_xent_forward)

#endif
