/* dense_table.c — the CPU dense kernel family: the table dense.c dispatches to. The kernels live one family per
 * file (see cpu_dense.h). */
#include "ops/backend_internal.h"
#include "ops/cpu/cpu_dense.h"

const dl_dense_ops dl_cpu_dense_ops = {
    .matmul_forward = dl_cpu_matmul_forward,
    .matmul_backward = dl_cpu_matmul_backward,
    .matmul_forward_bf16 = dl_cpu_matmul_forward_bf16,
    .embedding_forward = dl_cpu_embedding_forward,
    .embedding_backward = dl_cpu_embedding_backward,
    .rope_forward = dl_cpu_rope_forward,
    .rope_backward = dl_cpu_rope_backward,
    .layernorm_forward = dl_cpu_layernorm_forward,
    .layernorm_backward = dl_cpu_layernorm_backward,
    .gelu_forward = dl_cpu_gelu_forward,
    .gelu_backward = dl_cpu_gelu_backward,
    .residual_forward = dl_cpu_residual_forward,
    .residual_backward = dl_cpu_residual_backward,
    .dropout_forward = dl_cpu_dropout_forward,
    .dropout_backward = dl_cpu_dropout_backward,
    .xent_forward = dl_cpu_xent_forward,
    .xent_backward = dl_cpu_xent_backward,
    .sequence_sum_forward = dl_cpu_sequence_sum_forward,
    .sequence_sum_backward = dl_cpu_sequence_sum_backward,
    .f32_to_bf16 = dl_cpu_f32_to_bf16,
    .bf16_to_f32 = dl_cpu_bf16_to_f32,
    .matmul_backward_bf16 = dl_cpu_matmul_backward_bf16,
};
