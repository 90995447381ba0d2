/* bench_ops_sparse.c — throughput of the CPU FFM kernels and of the AdamW step, as ratios inside one run.
 *
 *     bench_ops_sparse [--threads T] [--rows R] [--batch B] [--repeat N] [--adamw-mb M]
 *
 * FFM: synthetic Criteo-like rows, 18 categorical features per row in 18 fields (one per field, value 1, libffm's
 * instance scale 1/18), so 153 pairs per row; feature ids hashed uniformly into a table of R rows (default 2^17,
 * i.e. a latent table of 75 MB at kpad 8: much larger than the caches, as real hashed tables are). One step is
 * forward + backward over a batch of B rows; the figure is rows per second, best of N repeats. The same work is
 * timed on one thread and on T threads, and with a plain scalar loop over k (what one writes first) as a yardstick
 * for the vectorised kernels; the three take turns within each repeat. Gradients accumulate across repeats (nothing zeroes a 75 MB table between
 * steps here; a trainer zeroes only the touched rows).
 *
 * AdamW: GB/s of memory traffic (read p, g, m, v; write p, m, v: 28 bytes per parameter) next to a T-thread memcpy
 * moving the same 28 bytes per parameter (14 read + 14 written), in the same run. The ratio is what matters: the
 * step is memory-bound, so it should run close to memcpy speed. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "core/timer.h"
#include "ops/ops.h"

#define NUM_FIELDS 18

static int parse_positive(const char *text, const char *flag, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text ? text : "", &end, 10);
    if (!text || errno || *end || v <= 0) {
        fprintf(stderr, "bench_ops_sparse: %s needs a positive integer, got '%s'\n", flag, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "bench_ops_sparse: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

static void check(dl_status s, const char *what) {
    if (s != DL_OK) {
        fprintf(stderr, "bench_ops_sparse: %s: %s\n", what, dl_error_message());
        exit(1);
    }
}

/* The yardstick: the textbook FFM loops over the k real lanes, one thread, scatter in batch order. */
static void ffm_plain_step(float *logits, float *dlatent, const float *latent, const int32_t *row_ptr,
                           const int32_t *rows, const int32_t *fields, const float *values, const float *scale, int B,
                           int k, int kpad) {
    const size_t stride = (size_t)NUM_FIELDS * (size_t)kpad;
    for (int b = 0; b < B; b++) {
        float t = 0.0f;
        for (int32_t i = row_ptr[b]; i < row_ptr[b + 1]; i++)
            for (int32_t j = i + 1; j < row_ptr[b + 1]; j++) {
                const float *a = latent + (size_t)rows[i] * stride + (size_t)fields[j] * (size_t)kpad;
                const float *c = latent + (size_t)rows[j] * stride + (size_t)fields[i] * (size_t)kpad;
                float dot = 0.0f;
                for (int f = 0; f < k; f++)
                    dot += a[f] * c[f];
                t += dot * values[i] * values[j];
            }
        logits[b] = t * scale[b];
    }
    for (int b = 0; b < B; b++) {
        const float g = 1e-3f * scale[b];
        for (int32_t i = row_ptr[b]; i < row_ptr[b + 1]; i++)
            for (int32_t j = i + 1; j < row_ptr[b + 1]; j++) {
                float *da = dlatent + (size_t)rows[i] * stride + (size_t)fields[j] * (size_t)kpad;
                float *dc = dlatent + (size_t)rows[j] * stride + (size_t)fields[i] * (size_t)kpad;
                const float *a = latent + (size_t)rows[i] * stride + (size_t)fields[j] * (size_t)kpad;
                const float *c = latent + (size_t)rows[j] * stride + (size_t)fields[i] * (size_t)kpad;
                const float gg = g * values[i] * values[j];
                for (int f = 0; f < k; f++) {
                    da[f] += gg * c[f];
                    dc[f] += gg * a[f];
                }
            }
    }
}

typedef struct ffm_setup {
    int B, k, kpad;
    int64_t num_rows;
    int32_t *row_ptr, *rows, *fields;
    float *values, *scale, *latent, *dlatent, *logits, *dlogits;
} ffm_setup;

/* One forward+backward step of variant `which` (0: kernels on 1 thread, 1: kernels on T threads, 2: plain loop). */
static double ffm_step(const dl_backend *be, ffm_setup *s, int which, int threads) {
    omp_set_num_threads(which == 1 ? threads : 1);
    double t0 = dl_time_seconds();
    if (which == 2) {
        ffm_plain_step(s->logits, s->dlatent, s->latent, s->row_ptr, s->rows, s->fields, s->values, s->scale, s->B,
                       s->k, s->kpad);
    } else {
        check(dl_op_ffm_forward(be, s->logits, s->latent, s->row_ptr, s->rows, s->fields, s->values, s->scale, s->B,
                                NUM_FIELDS, s->k, s->kpad, s->num_rows),
              "ffm forward");
        check(dl_op_ffm_backward(be, s->dlatent, s->dlogits, s->latent, s->row_ptr, s->rows, s->fields, s->values,
                                 s->scale, s->B, NUM_FIELDS, s->k, s->kpad, s->num_rows),
              "ffm backward");
    }
    return dl_time_seconds() - t0;
}

static void bench_ffm(const dl_backend *be, int k, int kpad, int64_t num_rows, int B, int threads, long repeat) {
    ffm_setup s = {.B = B, .k = k, .kpad = kpad, .num_rows = num_rows};
    const size_t n = (size_t)B * NUM_FIELDS, nl = (size_t)num_rows * NUM_FIELDS * (size_t)kpad;
    s.row_ptr = xalloc((size_t)(B + 1) * sizeof(int32_t));
    s.rows = xalloc(n * sizeof(int32_t));
    s.fields = xalloc(n * sizeof(int32_t));
    s.values = xalloc(n * sizeof(float));
    s.scale = xalloc((size_t)B * sizeof(float));
    s.logits = xalloc((size_t)B * sizeof(float));
    s.dlogits = xalloc((size_t)B * sizeof(float));
    s.latent = xalloc(nl * sizeof(float));
    s.dlatent = xalloc(nl * sizeof(float));
    dl_rng rng;
    dl_rng_init(&rng, 42, DL_STREAM_DATA);
    for (int b = 0; b <= B; b++)
        s.row_ptr[b] = b * NUM_FIELDS;
    for (size_t e = 0; e < n; e++) {
        s.rows[e] = (int32_t)dl_rng_below(&rng, (uint64_t)num_rows);
        s.fields[e] = (int32_t)(e % NUM_FIELDS);
        s.values[e] = 1.0f;
    }
    for (int b = 0; b < B; b++) {
        s.scale[b] = 1.0f / NUM_FIELDS;
        s.dlogits[b] = 1e-3f;
    }
    /* libffm's initialisation: uniform in [0, 1/√k) on the real lanes, zero padding. */
    for (size_t i = 0; i < nl; i++) {
        s.latent[i] = (int)(i % (size_t)kpad) < k ? dl_rng_uniform(&rng) / sqrtf((float)k) : 0.0f;
        s.dlatent[i] = 0.0f;
    }
    /* The variants take turns within each repeat, so a burst of load from other processes hits all of them. */
    double best[3] = {1e30, 1e30, 1e30};
    for (long r = 0; r <= repeat; r++) /* r = 0 is the warm-up */
        for (int which = 0; which < 3; which++) {
            double dt = ffm_step(be, &s, which, threads);
            if (r > 0 && dt < best[which])
                best[which] = dt;
        }
    double one = B / best[0], many = B / best[1], plain = B / best[2];
    /* Useful flops per row: 153 pairs × (forward k mul-adds + backward 2k mul-adds) × 2 flops. */
    double flops_per_row = 153.0 * 3.0 * 2.0 * k;
    printf("| %d | %d | %.0f | %.0f | %.2f× | %.0f | %.2f× | %.2f |\n", k, kpad, one, many, many / one, plain,
           one / plain, many * flops_per_row / 1e9);
    free(s.row_ptr);
    free(s.rows);
    free(s.fields);
    free(s.values);
    free(s.scale);
    free(s.logits);
    free(s.dlogits);
    free(s.latent);
    free(s.dlatent);
}

static void bench_adamw(const dl_backend *be, size_t n, int threads, long repeat) {
    float *p = xalloc(n * sizeof(float)), *g = xalloc(n * sizeof(float));
    float *m = xalloc(n * sizeof(float)), *v = xalloc(n * sizeof(float));
    const size_t copy_bytes = 14 * n;
    char *src = xalloc(copy_bytes), *dst = xalloc(copy_bytes);
    dl_rng rng;
    dl_rng_init(&rng, 7, DL_STREAM_DATA);
    for (size_t i = 0; i < n; i++) {
        p[i] = dl_rng_uniform(&rng) - 0.5f;
        g[i] = dl_rng_uniform(&rng) - 0.5f;
        m[i] = 0.0f;
        v[i] = 0.0f;
    }
    memset(src, 1, copy_bytes);
    memset(dst, 0, copy_bytes);
    omp_set_num_threads(threads);
    double best_adamw = 1e30, best_copy = 1e30;
    for (long r = 0; r <= repeat; r++) {
        double t0 = dl_time_seconds();
        check(dl_op_adamw_update(be, p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, r + 1), "adamw");
        double t1 = dl_time_seconds();
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t lo = copy_bytes * (size_t)t / (size_t)nt, hi = copy_bytes * (size_t)(t + 1) / (size_t)nt;
            memcpy(dst + lo, src + lo, hi - lo);
        }
        double t2 = dl_time_seconds();
        if (r > 0) {
            best_adamw = fmin(best_adamw, t1 - t0);
            best_copy = fmin(best_copy, t2 - t1);
        }
    }
    double traffic = 28.0 * (double)n;
    printf("| %zu | %.1f | %.1f | %.2f |\n", n, traffic / best_adamw / 1e9, traffic / best_copy / 1e9,
           best_copy / best_adamw);
    free(p);
    free(g);
    free(m);
    free(v);
    free(src);
    free(dst);
}

int main(int argc, char **argv) {
    long threads = 2, rows = 1L << 17, batch = 4096, repeat = 5, adamw_mb = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        long *target = strcmp(a, "--threads") == 0   ? &threads
                       : strcmp(a, "--rows") == 0     ? &rows
                       : strcmp(a, "--batch") == 0    ? &batch
                       : strcmp(a, "--repeat") == 0   ? &repeat
                       : strcmp(a, "--adamw-mb") == 0 ? &adamw_mb
                                                      : NULL;
        if (!target) {
            fprintf(stderr, "usage: bench_ops_sparse [--threads T] [--rows R] [--batch B] [--repeat N] "
                            "[--adamw-mb M]\n");
            return 2;
        }
        if (parse_positive(next, a, target))
            return 2;
        i++;
    }
    if (rows > INT32_MAX || batch > INT32_MAX / NUM_FIELDS || threads > 1024) {
        fprintf(stderr, "bench_ops_sparse: --rows, --batch or --threads too large\n");
        return 2;
    }
    dl_backend be;
    check(dl_backend_open(&be, "cpu", 0), "opening the CPU backend");

    printf("FFM forward+backward, %d features in %d fields (153 pairs/row), table %ld rows, batch %ld, "
           "best of %ld\n\n",
           NUM_FIELDS, NUM_FIELDS, rows, batch, repeat);
    printf("| k | kpad | rows/s 1 thread | rows/s %ld threads | scaling | rows/s plain loop 1 thread | kernel/plain "
           "| GFLOP/s (useful, %ld thr) |\n",
           threads, threads);
    printf("|---|---|---|---|---|---|---|---|\n");
    const int shapes[][2] = {{4, 8}, {4, 16}, {8, 8}, {8, 16}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        bench_ffm(&be, shapes[i][0], shapes[i][1], rows, (int)batch, (int)threads, repeat);

    printf("\nAdamW vs memcpy of the same traffic (28 B/parameter), %ld threads, best of %ld\n\n", threads, repeat);
    printf("| parameters | AdamW GB/s | memcpy GB/s | AdamW/memcpy |\n|---|---|---|---|\n");
    bench_adamw(&be, (size_t)adamw_mb * (1u << 20) / 4, (int)threads, repeat);
    dl_backend_close(&be);
    return 0;
}
