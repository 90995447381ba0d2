/* cmd_bench.c — `dealer bench gemm`: the sgemm rate this machine reaches through dealer's BLAS.
 *
 * Every MFU figure dealer prints is a fraction of this number, so it measures what training actually gets: a
 * square single-precision GEMM through CBLAS with the thread count training uses (OMP_NUM_THREADS / --threads),
 * best of several timed repeats after a warm-up, each timed by the wall clock or by CPU time per thread, whichever is
 * shorter (so a busy shared machine does not lower the reference). */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "ops/blas_runtime.h"

static void usage(FILE *out) {
    fprintf(out, "usage: dealer bench gemm [--size N] [--threads T] [--repeat R] [--json]\n\n"
                 "Times C = A·B for N×N fp32 matrices through OpenBLAS (default N=2048, R=5, T=OpenMP's thread\n"
                 "count) and prints the best rate in GFLOP/s (2·N³ flops per GEMM; each product timed by the wall clock or by\n"
                 "CPU time per thread, whichever is shorter). MFU figures are relative to it.\n");
}

enum { OPT_SIZE = DL_CLI_LONG_ONLY, OPT_THREADS, OPT_REPEAT, OPT_JSON };
static const dl_cli_option gemm_options[] = {{"size", OPT_SIZE, "a positive integer"},
                                             {"threads", OPT_THREADS, "a positive integer"},
                                             {"repeat", OPT_REPEAT, "a positive integer"},
                                             {"json", OPT_JSON, NULL},
                                             {NULL, 0, NULL}};

static int bench_gemm(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    uint64_t size = 2048, threads = (uint64_t)omp_get_max_threads(), repeat = 5;
    int json = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "bench gemm", gemm_options, argc, argv);
    for (int id, rc = 0; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_SIZE)
            rc = dl_cli_uint(&a, 1, INT32_MAX, &size);
        else if (id == OPT_THREADS)
            rc = dl_cli_uint(&a, 1, INT32_MAX, &threads);
        else if (id == OPT_REPEAT)
            rc = dl_cli_uint(&a, 1, INT32_MAX, &repeat);
        else if (id == OPT_JSON)
            json = 1;
        else if (id == DL_CLI_POSITIONAL)
            rc = dl_cli_usage_error("bench gemm", "unexpected argument '%s'", a.arg);
        else
            return 2;
        if (rc)
            return rc;
    }
    if (size > 16384) {
        fprintf(stderr, "dealer bench gemm: --size %llu is too large (at most 16384)\n", (unsigned long long)size);
        return 2;
    }
    double gflops = dl_blas_gemm_gflops((int)size, (int)repeat, (int)threads);
    if (gflops < 0) {
        fprintf(stderr, "dealer bench gemm: cannot allocate 3 matrices of %zu×%zu floats\n", (size_t)size, (size_t)size);
        return 1;
    }
    double best = 2.0 * (double)size * (double)size * (double)size / gflops / 1e9;
    size_t n = (size_t)size;
    if (json)
        printf("{\"size\": %zu, \"threads\": %d, \"seconds\": %.6f, \"gflops\": %.2f, \"kernel\": \"%s\"}\n", n,
               (int)threads, best, gflops, dl_blas_corename());
    else
        printf("sgemm %zux%zux%zu, %d thread%s, %s: %.1f GFLOP/s (best of %d: %.2f ms)\n", n, n, n, (int)threads,
               threads == 1 ? "" : "s", dl_blas_describe(), gflops, (int)repeat, best * 1e3);
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
