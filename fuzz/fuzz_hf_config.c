/* fuzz_hf_config.c — the Hugging Face config.json reader on arbitrary bytes: a shape or a status, never a crash or
 * a leak. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_file_common.h"

#include "ckpt/hf_gpt2.h"

static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/dealer_fuzz_hfcfg_%d.json", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_file(path, data, size);
    dl_gpt2_shape shape;
    if (dl_hf_gpt2_read_config(path, &shape) == DL_OK &&
        (shape.n_embd < 1 || shape.n_head < 1 || shape.n_embd % shape.n_head != 0))
        abort(); /* an accepted config describes a model dealer can build */
    return 0;
}
