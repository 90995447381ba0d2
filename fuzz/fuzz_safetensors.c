/* fuzz_safetensors.c — the safetensors reader (and the GPT-2 name detection on what it lists) on arbitrary bytes:
 * it must list and read the tensors or fail with a status, never crash, leak or read outside the file. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_file_common.h"

#include "ckpt/hf_gpt2.h"
#include "ckpt/safetensors.h"

static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/dealer_fuzz_st_%d.safetensors", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_file(path, data, size);
    dl_st_file *f = NULL;
    if (dl_st_open(&f, path) != DL_OK) {
        if (f)
            abort(); /* a failed open hands out nothing */
        return 0;
    }
    for (size_t i = 0; i < dl_st_count(f); i++) {
        const dl_st_tensor *t = dl_st_at(f, i);
        if (t->end - t->begin > size)
            abort(); /* the reader promised every range lies inside the file */
        float *out = malloc(t->numel ? t->numel * sizeof *out : 1);
        if (!out)
            abort();
        (void)dl_st_read_f32(f, t, out);
        free(out);
    }
    dl_gpt2_shape shape;
    if (dl_hf_gpt2_detect(f, NULL))
        (void)dl_hf_gpt2_infer_shape(f, &shape);
    dl_st_close(f);
    return 0;
}
