/* fuzz_record.c — the record reader on arbitrary bytes, in two roles:
 *   - as a record file with no index: open scans it (both CRCs of every record), then every record is read and
 *     decoded, and when the scan succeeds the index is built and the file reopened through it;
 *   - as the .idx of a small valid record file: whatever the index claims, opening and reading must either work
 *     or fail with a status, never read outside the file.
 * The first input byte picks the role. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/example.h"
#include "data/record.h"
#include "fuzz_file_common.h"

static char data_path[256], data_idx[270], fixed_path[256], fixed_idx[270];

static void read_everything(dl_record_file *f) {
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    dl_i32_array tokens = {0};
    uint64_t n = dl_record_file_count(f);
    for (uint64_t i = 0; i < n && i < 4096; i++) {
        if (dl_record_file_read(f, i, &buf, &cap, &len) == DL_OK)
            (void)dl_example_decode_tokens(buf, len, &tokens);
    }
    (void)dl_record_file_read(f, n, &buf, &cap, &len); /* out of range */
    free(buf);
    dl_i32_array_free(&tokens);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/dealer_fuzz_record_XXXXXX";
    if (!mkdtemp(dir))
        abort();
    snprintf(data_path, sizeof data_path, "%s/input.tfrecord", dir);
    snprintf(data_idx, sizeof data_idx, "%s.idx", data_path);
    snprintf(fixed_path, sizeof fixed_path, "%s/fixed.tfrecord", dir);
    snprintf(fixed_idx, sizeof fixed_idx, "%s.idx", fixed_path);
    /* Three small token records the index role points into. */
    dl_record_writer *w;
    if (dl_record_writer_open(&w, fixed_path) != DL_OK)
        abort();
    uint8_t *payload = NULL;
    size_t cap = 0, len;
    for (int32_t r = 0; r < 3; r++) {
        int32_t tokens[4] = {r, r + 1, 300, 70000};
        if (dl_example_encode_tokens(tokens, (size_t)(r + 2), &payload, &cap, &len) != DL_OK ||
            dl_record_writer_append(w, payload, len) != DL_OK)
            abort();
    }
    if (dl_record_writer_close(w) != DL_OK)
        abort();
    free(payload);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    dl_record_file *f;
    if (data[0] & 1) {
        fuzz_write_file(fixed_idx, data + 1, size - 1); /* newer than the data: taken at face value if it checks out */
        if (dl_record_file_open(&f, fixed_path) == DL_OK) {
            if (dl_record_file_count(f) > 3 && !dl_record_file_indexed(f))
                abort(); /* a scan of the fixed file finds exactly 3 */
            read_everything(f);
            dl_record_file_close(f);
        }
    } else {
        fuzz_write_file(data_path, data + 1, size - 1);
        unlink(data_idx);
        if (dl_record_file_open(&f, data_path) == DL_OK) {
            read_everything(f);
            uint64_t scanned = dl_record_file_count(f);
            dl_record_file_close(f);
            uint64_t built = 0;
            if (dl_record_index_build(data_path, &built) != DL_OK || built != scanned)
                abort(); /* a file that scans cleanly must index to the same count */
            if (dl_record_file_open(&f, data_path) != DL_OK || !dl_record_file_indexed(f) ||
                dl_record_file_count(f) != scanned)
                abort();
            read_everything(f);
            dl_record_file_close(f);
        }
    }
    dl_error_clear();
    return 0;
}
