/* cmd_bench.c — `dealer bench gemm`: the sgemm rate this machine reaches through dealer's BLAS.
 *
 * Every MFU figure dealer prints is a fraction of this number, so it measures what training actually gets: a
 * square single-precision GEMM through CBLAS with the thread count training uses (OMP_NUM_THREADS / --threads),
 * best of several timed repeats after a warm-up, each timed by the wall clock or by CPU time per thread, whichever is
 * shorter (so a busy shared machine does not lower the reference). */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "ops/blas_runtime.h"

static void usage(FILE *out) {
    fprintf(out, "usage: dealer bench gemm [--size N] [--threads T] [--repeat R] [--json]\n\n"
                 "Times C = A·B for N×N fp32 matrices through OpenBLAS (default N=2048, R=5, T=OpenMP's thread\n"
                 "count) and prints the best rate in GFLOP/s (2·N³ flops per GEMM; each product timed by the wall clock or by\n"
                 "CPU time per thread, whichever is shorter). MFU figures are relative to it.\n");
}

static int parse_positive(const char *text, const char *flag, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text ? text : "", &end, 10);
    if (!text || errno || *end || v <= 0) {
        fprintf(stderr, "dealer bench gemm: %s needs a positive integer, got '%s'\n", flag, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

static int bench_gemm(int argc, char **argv) {
    long size = 2048, threads = omp_get_max_threads(), repeat = 5;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--size") == 0) {
            if (parse_positive(next, a, &size)) return 2;
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_positive(next, a, &threads)) return 2;
            i++;
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_positive(next, a, &repeat)) return 2;
            i++;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "dealer bench gemm: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (size > 16384) {
        fprintf(stderr, "dealer bench gemm: --size %ld is too large (at most 16384)\n", size);
        return 2;
    }
    double gflops = dl_blas_gemm_gflops((int)size, (int)repeat, (int)threads);
    if (gflops < 0) {
        fprintf(stderr, "dealer bench gemm: cannot allocate 3 matrices of %ld×%ld floats\n", size, size);
        return 1;
    }
    double best = 2.0 * (double)size * (double)size * (double)size / gflops / 1e9;
    size_t n = (size_t)size;
    if (json)
        printf("{\"size\": %zu, \"threads\": %ld, \"seconds\": %.6f, \"gflops\": %.2f, \"kernel\": \"%s\"}\n", n,
               threads, best, gflops, dl_blas_corename());
    else
        printf("sgemm %zux%zux%zu, %ld thread%s, %s: %.1f GFLOP/s (best of %ld: %.2f ms)\n", n, n, n, threads,
               threads == 1 ? "" : "s", dl_blas_describe(), gflops, repeat, best * 1e3);
    return 0;
}

int dl_cmd_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: dealer bench <what>\n  gemm    fp32 GEMM rate through BLAS (the MFU reference)\n");
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "gemm") == 0)
        return bench_gemm(argc - 1, argv + 1);
    fprintf(stderr, "dealer bench: unknown benchmark '%s' (known: gemm)\n", argv[1]);
    return 2;
}
