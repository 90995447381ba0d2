/* hf_export.h — writing a dealer gpt checkpoint as a Hugging Face GPT-2 model directory. */
#ifndef DL_CKPT_HF_EXPORT_H
#define DL_CKPT_HF_EXPORT_H

#include <stddef.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes a Hugging Face model directory `out_dir` (created when missing) from a dealer gpt or dpo checkpoint:
 * config.json and model.safetensors (GPT-2 names, Conv1D weights transposed, no lm_head: GPT2LMHeadModel ties
 * it), and a copy of `tokenizer_json` as tokenizer.json when it is not NULL (its <|endoftext|> id, when it has one,
 * becomes bos_token_id and eos_token_id). Each file is written atomically. A rotary-position model is refused. */
dl_status dl_hf_gpt2_export(const char *ckpt_path, const char *out_dir, const char *tokenizer_json, size_t *tensors);

#ifdef __cplusplus
}
#endif

#endif
