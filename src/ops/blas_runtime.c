/* blas_runtime.c — see blas_runtime.h. */
#include "ops/blas_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>

#include "core/philox.h"
#include "core/timer.h"

/* From OpenBLAS's cblas.h; declared here so the header set does not matter. */
char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

const char *dl_blas_corename(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

static int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Kernels at least as good as SkylakeX for sgemm, and at least as good as Haswell. */
static int name_in(const char *name, const char *const *list) {
    for (; *list; list++)
        if (strcasecmp(name, *list) == 0)
            return 1;
    return 0;
}

const char *dl_blas_wanted_coretype(void) {
    static const char *const avx512_kernels[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const avx2_kernels[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    const char *current = dl_blas_corename();
    if (cpu_has_avx512())
        return name_in(current, avx512_kernels) ? NULL : "SkylakeX";
    if (cpu_has_avx2())
        return name_in(current, avx2_kernels) ? NULL : "Haswell";
    return NULL;
}

void dl_blas_select_kernel(char **argv) {
    int kernel = 0, wait_policy = 0;
    const char *off = getenv("DEALER_BLAS_AUTOSELECT");
    /* Not when the user chose, nor after our own re-execution (DEALER_BLAS_REEXEC marks it). */
    if (!(off && strcmp(off, "0") == 0) && !getenv("OPENBLAS_CORETYPE") && !getenv("DEALER_BLAS_REEXEC")) {
        const char *wanted = dl_blas_wanted_coretype();
        if (wanted) {
            setenv("OPENBLAS_CORETYPE", wanted, 1);
            setenv("DEALER_BLAS_REEXEC", wanted, 1);
            kernel = 1;
        }
    }
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        wait_policy = 1;
    }
    if (!kernel && !wait_policy)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with what the libraries chose at load; dl_blas_describe tells of a slow kernel. */
    if (kernel) {
        unsetenv("OPENBLAS_CORETYPE");
        unsetenv("DEALER_BLAS_REEXEC");
    }
    if (wait_policy)
        unsetenv("OMP_WAIT_POLICY");
}

const char *dl_blas_describe(void) {
    static char text[160];
    const char *reexec = getenv("DEALER_BLAS_REEXEC");
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *name = dl_blas_corename();
    if (reexec)
        snprintf(text, sizeof text, "%s kernel (selected by dealer: OpenBLAS did not recognise this CPU)", name);
    else if (user)
        snprintf(text, sizeof text, "%s kernel (OPENBLAS_CORETYPE=%s set by the user)", name, user);
    else if (dl_blas_wanted_coretype())
        snprintf(text, sizeof text, "%s kernel (slow: a %s kernel fits this CPU; DEALER_BLAS_AUTOSELECT=0?)", name,
                 dl_blas_wanted_coretype());
    else
        snprintf(text, sizeof text, "%s kernel (chosen by OpenBLAS)", name);
    return text;
}

static double process_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double dl_blas_gemm_gflops(int n, int repeats, int threads) {
    if (n <= 0 || repeats <= 0)
        return -1.0;
    size_t count = (size_t)n * (size_t)n;
    float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float)), *c = malloc(count * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return -1.0;
    }
    dl_rng rng;
    dl_rng_init(&rng, 1234, DL_STREAM_DATA);
    for (size_t i = 0; i < count; i++) {
        a[i] = dl_rng_uniform(&rng) - 0.5f;
        b[i] = dl_rng_uniform(&rng) - 0.5f;
    }
    int saved = openblas_get_num_threads();
    int used = threads > 0 ? threads : omp_get_max_threads();
    openblas_set_num_threads(used);
    double best = 1e30;
    for (int r = 0; r <= repeats; r++) { /* r = 0 is the warm-up: thread pool, page faults */
        double t0 = dl_time_seconds(), c0 = process_cpu_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = dl_time_seconds() - t0;
        /* On a shared machine the wall clock also counts the time other jobs held these cores, which would make
         * the reference too low and MFU read above 100% once they leave. The CPU time per thread is what the
         * cores took while they ran this product; the smaller of the two is the rate the cores can reach. */
        double per_thread = (process_cpu_seconds() - c0) / used;
        if (per_thread > 0 && per_thread < dt)
            dt = per_thread;
        if (r > 0 && dt < best)
            best = dt;
    }
    openblas_set_num_threads(saved);
    free(a), free(b), free(c);
    return 2.0 * (double)n * (double)n * (double)n / best / 1e9;
}
