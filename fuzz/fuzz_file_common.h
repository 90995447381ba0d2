/* fuzz_file_common.h — for fuzzers of readers that take a path: the input's bytes are written to a file first. */
#ifndef DL_FUZZ_FILE_COMMON_H
#define DL_FUZZ_FILE_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Writes data to path (replacing it); a file that cannot be written is the harness's failure, not the reader's. */
static void fuzz_write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp)
        abort();
    if (size && fwrite(data, 1, size, fp) != size)
        abort();
    if (fclose(fp) != 0)
        abort();
}

#endif
