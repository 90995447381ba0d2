/* hf_gpt2.h — Hugging Face GPT-2 checkpoints (config.json + model.safetensors) in and out of dealer's gpt.
 *
 * dealer's gpt is GPT-2's architecture exactly: learned positions, pre-LayerNorm blocks with epsilon 1e-5, fused
 * q|k|v projection, GELU in its tanh form (Hugging Face's "gelu_new"), attention scaled by 1/√head_size, a final
 * LayerNorm and an LM head tied to the token embedding, no vocabulary padding. So a GPT-2 checkpoint maps onto
 * dealer's parameters one to one, by name (docs/checkpoint-format.md has the table):
 *
 *     transformer.wte.weight            wte                     [V, C]
 *     transformer.wpe.weight            wpe                     [T, C]
 *     transformer.h.L.ln_1.{weight,bias}       h.L.ln1.*
 *     transformer.h.L.attn.c_attn.weight       h.L.attn.qkv.weight    transposed: Conv1D stores [in, out]
 *     transformer.h.L.attn.c_proj.weight       h.L.attn.proj.weight   transposed
 *     transformer.h.L.mlp.c_fc.weight          h.L.mlp.fc.weight      transposed
 *     transformer.h.L.mlp.c_proj.weight        h.L.mlp.proj.weight    transposed
 *     (biases and ln_2, ln_f by the same names; lm_head.weight tied to wte, or absent)
 *
 * The "transformer." prefix is optional on reading (GPT2Model saves without it). The attention-mask buffers older
 * transformers releases saved (attn.bias, attn.masked_bias) are not weights and are skipped. Anything else — an
 * lm_head that differs from wte, a tensor of a layer the config does not have, another architecture's names — is
 * refused by name rather than dropped. config.json settings dealer cannot represent (another activation, another
 * LayerNorm epsilon, an untied head, cross-attention, attention not scaled by 1/√d or scaled per layer) are refused
 * with the key and its value. */
#ifndef DL_CKPT_HF_GPT2_H
#define DL_CKPT_HF_GPT2_H

#include <stddef.h>

#include "ckpt/safetensors.h"
#include "core/status.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model shape a weights file describes (config.json, a dealer config, or the tensors themselves). */
typedef struct dl_gpt2_shape {
    int vocab_size, n_layer, n_head, n_embd, n_positions;
    int rope;           /* dealer only: rotary positions (no wpe; not representable in GPT-2) */
    double rope_theta;
    int n_head_known;   /* 0 when inferred from tensors alone (the head count leaves no trace in the shapes) */
} dl_gpt2_shape;

/* Reads a Hugging Face config.json into shape; settings dealer's gpt cannot represent are DL_ERR_UNSUPPORTED
 * naming the key, a malformed file DL_ERR_FORMAT. Keys that are absent take GPT2Config's defaults. */
dl_status dl_hf_gpt2_read_config(const char *path, dl_gpt2_shape *shape);

/* The Hugging Face name of dealer parameter `name` (without the "transformer." prefix when bare): 1 and *transposed
 * set when it maps, 0 for a name that is not a gpt parameter. */
int dl_hf_gpt2_name(const char *name, int bare, char *hf, size_t cap, int *transposed);

/* 1 when file uses GPT-2's names (with *prefix "transformer." or ""), 0 when it does not. */
int dl_hf_gpt2_detect(const dl_st_file *file, const char **prefix);

/* The shape the tensors of a GPT-2-named file imply (vocab, width, positions, layers; not the head count). */
dl_status dl_hf_gpt2_infer_shape(const dl_st_file *file, dl_gpt2_shape *shape);

/* Fills host (the layout of `params`, dealer names) from a GPT-2-named file: every parameter present with its
 * shape (a mismatch names the tensor and both shapes), Conv1D weights transposed, no tensor left over. */
dl_status dl_hf_gpt2_load(dl_st_file *file, const dl_tensor_table *params, float *host);

/* Fills host from a file with dealer's own names (`dealer ckpt export --format safetensors`), same checks. */
dl_status dl_st_load_dealer_names(dl_st_file *file, const dl_tensor_table *params, float *host);


#ifdef __cplusplus
}
#endif

#endif
