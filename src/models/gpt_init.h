/* gpt_init.h — starting a gpt from existing weights (model.init_from): a dealer checkpoint or run directory, a
 * .safetensors file, or a Hugging Face GPT-2 model directory (ckpt/weights.h resolves and reads them).
 *
 * The check comes before anything runs: the source's shape (its stored config, config.json, or its tensors) must be
 * the configured one, key by key, or the run stops with DL_ERR_CONFIG naming the model.* key, both values and the
 * file (exit 2). Loading then fills every parameter by name, each in its shape. gpt and dpo both start this way
 * (dpo's policy and frozen reference); a resumed run starts from its own checkpoint instead. */
#ifndef DL_MODELS_GPT_INIT_H
#define DL_MODELS_GPT_INIT_H

#include <stdint.h>

#include "ckpt/weights.h"
#include "models/gpt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Resolves `spec` (model.init_from) and checks its shape against `want`. */
dl_status dl_gpt_init_resolve(const char *spec, const dl_gpt_config *want, dl_weights_source *source);

/* Checks the source's shape against `want` (the message names the model.* key, both values and the file). */
dl_status dl_gpt_init_check(const dl_weights_source *source, const dl_gpt_config *want);

/* Loads the source into gpt's parameters (on its backend). *params_crc (may be NULL): crc32c of the parameters. */
dl_status dl_gpt_init_load(const dl_weights_source *source, const dl_backend *backend, dl_gpt *gpt,
                           uint32_t *params_crc);

#ifdef __cplusplus
}
#endif

#endif
