/* bench_tokenizer.c — dealer's BPE encoder speed on one core, for the side-by-side with Hugging Face `tokenizers`
 * that bench/bench_tokenizer.py runs (it alternates this program with the Python wheel).
 *
 *     bench_tokenizer TOKENIZER TEXT [--copies N] [--reps R]
 *
 * The text is repeated N times (default 8) and cut into documents, each ending after a blank line ("\n\n": the
 * Shakespeare speeches, ~150 bytes on average; bench_tokenizer.py cuts the same way), and every document is encoded,
 * R times (default 5) with a fresh tokenizer handle each time, so the per-word cache starts cold every repetition
 * as `tokenizers`' does on a new Tokenizer. One line per repetition: seconds, MB/s, tokens (all documents), CPU
 * seconds and MB per CPU second (the figure a loaded machine does not distort). One
 * thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fs.h"
#include "core/timer.h"
#include "data/tokenizer.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER TEXT [--copies N] [--reps R]\n");
        return 2;
    }
    int copies = 8, reps = 5;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--copies") == 0)
            copies = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_tokenizer: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (copies < 1 || reps < 1) {
        fprintf(stderr, "bench_tokenizer: --copies and --reps must be >= 1\n");
        return 2;
    }
    uint8_t *one;
    size_t one_len;
    if (dl_read_file(argv[2], &one, &one_len) != DL_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", dl_error_message());
        return 1;
    }
    size_t len = one_len * (size_t)copies;
    uint8_t *text = malloc(len + 1);
    if (!text)
        return 1;
    for (int c = 0; c < copies; c++)
        memcpy(text + (size_t)c * one_len, one, one_len);
    free(one);
    dl_tokenizer *base;
    if (dl_tokenizer_load(argv[1], &base) != DL_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", dl_error_message());
        return 1;
    }
    dl_i32_array ids = {0};
    for (int r = 0; r < reps; r++) {
        dl_tokenizer *tok;
        if (dl_tokenizer_clone(base, &tok) != DL_OK)
            return 1;
        size_t tokens = 0;
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        double t0 = dl_time_seconds();
        for (size_t start = 0; start < len;) {
            const uint8_t *end = memmem(text + start, len - start, "\n\n", 2);
            size_t stop = end ? (size_t)(end - text) + 2 : len;
            if (dl_tokenizer_encode(tok, text + start, stop - start, &ids) != DL_OK) {
                fprintf(stderr, "bench_tokenizer: %s\n", dl_error_message());
                return 1;
            }
            tokens += ids.len;
            start = stop;
        }
        double dt = dl_time_seconds() - t0;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
        printf("dealer %.4f s %.2f MB/s %zu tokens %.4f cpu_s %.2f MB/cpu_s\n", dt, (double)len / dt / 1e6, tokens,
               cpu, (double)len / cpu / 1e6);
        fflush(stdout);
        dl_tokenizer_free(tok);
    }
    dl_i32_array_free(&ids);
    dl_tokenizer_free(base);
    free(text);
    return 0;
}
