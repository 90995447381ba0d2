/* cpu_backend.c — the CPU backend: host memory (64-byte aligned for AVX-512 loads), the tables of CPU kernel
 * families, and the choice of which CPU variant of those kernels runs.
 *
 * Kernels use OpenMP; the thread count is OpenMP's (OMP_NUM_THREADS), recorded in be->num_threads.
 *
 * Variants. The portable build targets x86-64-v2 (any x86-64 CPU since about 2009), so one binary runs on every
 * node of a cluster, and compiles the kernels of src/ops/cpu/ two more times, with AVX2 + FMA and with AVX-512
 * (CMakeLists.txt, DEALER_CPU_VARIANTS). Each compile has its own tables (cpu_variant_names.h gives the later ones
 * suffixed names); the best variant this CPU runs is chosen once per process, and every CPU backend opened
 * afterwards points at its tables. Choosing at start-up rather than per call costs nothing in the kernels (no
 * ifunc or per-call branch) and makes the choice visible: `dealer --version` prints it, checkpoints record it.
 * DEALER_CPU_VARIANT=baseline|avx2|avx512 forces one (tests compare them; users rule out a suspect one); naming
 * a variant the CPU lacks is an error, never a silent fallback. A -DDEALER_NATIVE=ON build has a single "native"
 * variant, compiled with -march=native; it refuses, with a message instead of SIGILL, to run the kernels on a CPU
 * that lacks a vector extension it was built with. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/backend_internal.h"

static dl_status cpu_alloc(void *state, void **ptr, size_t bytes) {
    (void)state;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    *ptr = aligned_alloc(64, rounded);
    if (!*ptr)
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes of host memory", bytes);
    return DL_OK;
}

static void cpu_free(void *state, void *ptr) {
    (void)state;
    free(ptr);
}

static dl_status cpu_zero(void *state, void *ptr, size_t bytes) {
    (void)state;
    memset(ptr, 0, bytes);
    return DL_OK;
}

static dl_status cpu_copy(void *state, void *dst, const void *src, size_t bytes) {
    (void)state;
    memmove(dst, src, bytes);
    return DL_OK;
}

static dl_status cpu_synchronize(void *state) {
    (void)state;
    return DL_OK;
}

static const dl_memory_ops cpu_memory_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .copy = cpu_copy,
    .synchronize = cpu_synchronize,
};

/* ---- the variants built in ------------------------------------------------------------------------------------ */

typedef struct cpu_variant {
    const char *name;
    const char *needs;          /* the instructions it needs beyond the previous variant, for messages */
    int (*supported)(void);     /* whether this CPU (and its OS) runs them */
    dl_backend_ops ops;
} cpu_variant;

#define VARIANT_OPS(suffix)                                                                                    \
    {                                                                                                          \
        .memory = &cpu_memory_ops, .dense = &dl_cpu_dense_ops##suffix,                                         \
        .attention = &dl_cpu_attention_ops##suffix, .optim = &dl_cpu_optim_ops##suffix,                        \
        .sparse = &dl_cpu_sparse_ops##suffix,                                                                  \
    }

#if defined(DL_CPU_VARIANTS_baseline_avx2_avx512)
DL_CPU_VARIANT_TABLES(_avx2)
DL_CPU_VARIANT_TABLES(_avx512)

/* __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0), so a hypervisor that hides
 * AVX-512 state reads as "no AVX-512". */
static int has_baseline(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
}
static int has_avx2(void) { return has_baseline() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
static int has_avx512(void) {
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
}

static const cpu_variant variants[] = {
    {"baseline", "SSE4.2 and POPCNT (x86-64-v2)", has_baseline, VARIANT_OPS()},
    {"avx2", "AVX2 and FMA", has_avx2, VARIANT_OPS(_avx2)},
    {"avx512", "AVX-512 F, CD, BW, DQ and VL", has_avx512, VARIANT_OPS(_avx512)},
};

#elif defined(DL_CPU_VARIANTS_native)
/* The vector extensions -march=native turned on for the build machine, each checked on this one. */
static int has_native(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
#if defined(__SSE4_2__)
    if (!__builtin_cpu_supports("sse4.2"))
        return 0;
#endif
#if defined(__AVX2__)
    if (!__builtin_cpu_supports("avx2"))
        return 0;
#endif
#if defined(__FMA__)
    if (!__builtin_cpu_supports("fma"))
        return 0;
#endif
#if defined(__AVX512F__)
    if (!__builtin_cpu_supports("avx512f"))
        return 0;
#endif
#if defined(__AVX512BW__)
    if (!__builtin_cpu_supports("avx512bw"))
        return 0;
#endif
#endif
    return 1;
}

static const cpu_variant variants[] = {
    {"native", "the vector extensions of the machine it was built on (-DDEALER_NATIVE=ON)", has_native,
     VARIANT_OPS()},
};

#elif defined(DL_CPU_VARIANTS_generic)
static int has_generic(void) { return 1; }

static const cpu_variant variants[] = {
    {"generic", "nothing beyond the compiler's default target", has_generic, VARIANT_OPS()},
};

#else
#error "CMakeLists.txt defines DL_CPU_VARIANTS_<list> for cpu_backend.c; add the set it names here"
#endif

enum { NUM_VARIANTS = (int)(sizeof variants / sizeof variants[0]) };

/* Whether variant i runs here. For tests, DEALER_TEST_CPU_HIDE=avx512 (a comma-separated list of variant names)
 * makes those read as missing, so the fallback and the error for a missing one are tested on any machine. */
static int variant_runs(int i) {
    const char *hide = getenv("DEALER_TEST_CPU_HIDE");
    if (hide) {
        size_t len = strlen(variants[i].name);
        for (const char *p = hide; (p = strstr(p, variants[i].name)) != NULL; p += len)
            if ((p == hide || p[-1] == ',') && (p[len] == '\0' || p[len] == ','))
                return 0;
    }
    return variants[i].supported();
}

int dl_cpu_variant_count(void) { return NUM_VARIANTS; }

const char *dl_cpu_variant_at(int index) { return index >= 0 && index < NUM_VARIANTS ? variants[index].name : NULL; }

int dl_cpu_variant_supported(int index) { return index >= 0 && index < NUM_VARIANTS && variant_runs(index); }

static int find_variant(const char *name) {
    for (int i = 0; i < NUM_VARIANTS; i++)
        if (strcmp(variants[i].name, name) == 0)
            return i;
    return -1;
}

static int best_supported(void) {
    for (int i = NUM_VARIANTS - 1; i >= 0; i--)
        if (variant_runs(i))
            return i;
    return -1;
}

/* "baseline, avx2, avx512" */
static void variant_list(char *out, size_t cap, int only_supported) {
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < NUM_VARIANTS && len < cap; i++) {
        if (only_supported && !variant_runs(i))
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", variants[i].name);
    }
}

/* Fails naming the variant, what it needs and what this CPU can run instead. */
static dl_status unsupported_variant(int index, const char *source) {
    char runs[128];
    variant_list(runs, sizeof runs, 1);
    dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: CPU variant '%s' needs %s, which this CPU lacks", source,
                          variants[index].name, variants[index].needs);
    if (runs[0])
        dl_error_hint("this CPU runs: %s (unset DEALER_CPU_VARIANT to take the best)", runs);
    else
        dl_error_hint(NUM_VARIANTS == 1 ? "this dealer was built for another CPU: rebuild it without -DDEALER_NATIVE=ON"
                                        : "dealer needs an x86-64-v2 CPU (SSE4.2, 2009 or later)");
    return s;
}

static int chosen = -1;
static char chosen_reason[256];

dl_status dl_cpu_variant_select(void) {
    if (chosen >= 0)
        return DL_OK;
    const char *forced = getenv("DEALER_CPU_VARIANT");
    const int best = best_supported();
    if (forced && forced[0] && strcmp(forced, "auto") != 0) {
        int i = find_variant(forced);
        if (i < 0) {
            char built[128];
            variant_list(built, sizeof built, 0);
            dl_status s = DL_FAIL(DL_ERR_INVALID, "DEALER_CPU_VARIANT=%s: no such CPU variant in this build", forced);
            dl_error_hint("use auto or one of: %s", built);
            return s;
        }
        if (!variant_runs(i)) {
            char source[96];
            snprintf(source, sizeof source, "DEALER_CPU_VARIANT=%s", forced);
            return unsupported_variant(i, source);
        }
        snprintf(chosen_reason, sizeof chosen_reason, "forced by DEALER_CPU_VARIANT; the best this CPU runs is %s",
                 variants[best].name);
        chosen = i;
        return DL_OK;
    }
    if (best < 0)
        return unsupported_variant(0, "cpu");
    if (NUM_VARIANTS == 1)
        snprintf(chosen_reason, sizeof chosen_reason, "the only variant built in: %s", variants[best].needs);
    else if (best == NUM_VARIANTS - 1)
        snprintf(chosen_reason, sizeof chosen_reason, "the best this CPU runs: it has %s", variants[best].needs);
    else
        snprintf(chosen_reason, sizeof chosen_reason, "the best this CPU runs: it lacks %s for %s",
                 variants[best + 1].needs, variants[best + 1].name);
    chosen = best;
    return DL_OK;
}

const char *dl_cpu_variant_name(void) { return chosen >= 0 ? variants[chosen].name : NULL; }

const char *dl_cpu_variant_reason(void) { return chosen >= 0 ? chosen_reason : NULL; }

dl_status dl_cpu_backend_open(dl_backend *be, const char *variant) {
    int index;
    if (variant == NULL) {
        DL_CHECK(dl_cpu_variant_select());
        index = chosen;
    } else {
        index = find_variant(variant);
        if (index < 0) {
            char built[128];
            variant_list(built, sizeof built, 0);
            dl_status s = DL_FAIL(DL_ERR_INVALID, "no CPU variant '%s' in this build", variant);
            dl_error_hint("built in: %s", built);
            return s;
        }
        if (!variant_runs(index))
            return unsupported_variant(index, "cpu backend");
    }
    be->kind = DL_DEVICE_CPU;
    be->name = "cpu";
    be->device_index = 0;
    be->num_threads = omp_get_max_threads();
    be->cpu_variant = variants[index].name;
    be->state = NULL;
    be->ops = &variants[index].ops;
    return DL_OK;
}

void dl_cpu_backend_close(dl_backend *be) { (void)be; }

dl_status dl_backend_open_cpu_variant(dl_backend *be, const char *variant) {
    DL_REQUIRE(be != NULL && variant != NULL, DL_ERR_INVALID, "dl_backend_open_cpu_variant: NULL argument");
    memset(be, 0, sizeof *be);
    return dl_cpu_backend_open(be, variant);
}
