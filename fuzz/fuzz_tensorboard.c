/* fuzz_tensorboard.c — dealer's TensorBoard event reader on arbitrary bytes: it must read the events or fail with a
 * status, never crash, leak or read outside the file. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_file_common.h"

#include "train/tensorboard.h"

static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/dealer_fuzz_tb_%d.tfevents", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_file(path, data, size);
    dl_tb_event *events = NULL;
    size_t count = 0;
    if (dl_tb_read(path, &events, &count) == DL_OK && count > 0 && !events)
        abort(); /* a successful read of events must hand them out */
    free(events);
    return 0;
}
