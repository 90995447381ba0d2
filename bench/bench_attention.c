/* bench_attention.c — the CPU flash attention: time and memory against sequence length, and speed against two
 * attentions that materialise the T×T matrices.
 *
 *   bench_attention [--threads T] [--repeat R] [--heads H] [--head-size D] [--compare-tokens T] [--naive-loops]
 *                   [--jacobian-loop]
 *
 * (a) forward+backward of one document of T = 256, 1024, 4096 tokens (and a packed batch of 16 documents of 256),
 *     with the bytes the algorithm touches: inputs and outputs grow linearly with T, the per-thread tile scratch is
 *     constant.
 * (b) at T = 1024 (--compare-tokens), at the chosen thread count and on one thread, flash against two baselines in
 *     this file, on the same packed qkv:
 *     - naive loops: llm.c's CPU reference attention (train_gpt2.c), plain C loops per (query, head) over the causal
 *       keys, with T×T preatt, att, datt and dpreatt matrices per head (what "naive attention" usually means). It
 *       costs seconds at T = 4096, so it runs only up to T = 1024 unless --naive-loops is given; --jacobian-loop
 *       applies the softmax Jacobian with llm.c's O(T³) double loop instead of its O(T²) closed form;
 *     - standard attention: per head, S = Q·Kᵀ and O = P·V and all four backward products through cblas_sgemm on
 *       the full T×T matrices (the causal mask applied to S), P kept from forward for backward.
 *     All run in the same process with the same thread count, repeats interleaved; the figures that matter are the
 *     ratios. The outputs are compared with flash's so each baseline is known to compute the same thing.
 * (c) the tile products of (b) done as 64×64×64 cblas_sgemm calls instead, single-threaded: the time of the sgemm
 *     calls alone, without any softmax work, against the flash kernels' whole time on one thread.
 * Each figure is the best of R timed repeats after a warm-up; the machine may be shared, so ratios inside one run are
 * what to compare. One-thread figures (all of them with --threads 1, and those of (b) and (c) always) are CPU time
 * of the calling thread, which other processes on a shared machine do not inflate; the rest is wall-clock time. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/philox.h"
#include "core/timer.h"
#include "ops/blas_runtime.h"
#include "ops/cpu/cpu_attention.h"
#include "ops/ops.h"

void openblas_set_num_threads(int num_threads);

static void die(const char *what) {
    fprintf(stderr, "bench_attention: %s: %s\n", what, dl_error_message());
    exit(1);
}

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "bench_attention: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

static void fill(float *x, size_t n, uint64_t stream, float amplitude) {
    dl_rng rng;
    dl_rng_init(&rng, 1234, stream);
    for (size_t i = 0; i < n; i++)
        x[i] = amplitude * (2.0f * dl_rng_uniform(&rng) - 1.0f);
}

typedef struct problem {
    int N, H, D, num_seqs;
    int32_t *cu;
    float *qkv, *out, *lse, *dout, *dqkv;
} problem;

static problem make_problem(int N, int H, int D, int num_seqs) {
    problem p = {N, H, D, num_seqs, NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t C = (size_t)H * D;
    p.cu = xalloc(((size_t)num_seqs + 1) * sizeof(int32_t));
    for (int s = 0; s <= num_seqs; s++)
        p.cu[s] = (int32_t)((long)N * s / num_seqs);
    p.qkv = xalloc((size_t)N * 3 * C * sizeof(float));
    p.out = xalloc((size_t)N * C * sizeof(float));
    p.lse = xalloc((size_t)N * H * sizeof(float));
    p.dout = xalloc((size_t)N * C * sizeof(float));
    p.dqkv = xalloc((size_t)N * 3 * C * sizeof(float));
    fill(p.qkv, (size_t)N * 3 * C, 1, 2.0f);
    fill(p.dout, (size_t)N * C, 2, 1.0f);
    return p;
}

static void free_problem(problem *p) {
    free(p->cu);
    free(p->qkv);
    free(p->out);
    free(p->lse);
    free(p->dout);
    free(p->dqkv);
}

/* bytes of the op's inputs and outputs: qkv, out, lse, dout, dqkv */
static double io_bytes(const problem *p) {
    const double C = (double)p->H * p->D;
    return 4.0 * p->N * (3 * C + C + p->H + C + 3 * C);
}

/* Causal attention FLOPs, forward then backward, counting only the pairs a query may attend to (2 FLOPs per
 * multiply-add; 2 products forward, 5 backward: the usual convention). */
static double causal_pairs(const problem *p) {
    double pairs = 0;
    for (int s = 0; s < p->num_seqs; s++) {
        double n = p->cu[s + 1] - p->cu[s];
        pairs += n * (n + 1) / 2;
    }
    return pairs * p->H;
}

/* Wall-clock time, or with `cpu_clock` the CPU time of the calling thread: for one-thread runs, where all the work is
 * on this thread, CPU time is what the code costs, and other processes on a shared machine do not inflate it. */
static int cpu_clock;
static double now(void) {
    if (!cpu_clock)
        return dl_time_seconds();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct timing {
    double fwd, bwd;
} timing;

static timing time_flash(const dl_backend *be, problem *p, int repeat) {
    timing best = {INFINITY, INFINITY};
    for (int r = 0; r <= repeat; r++) { /* r = 0 warms up */
        double t0 = now();
        if (dl_op_attention_forward(be, p->out, p->lse, p->qkv, p->cu, p->num_seqs, p->N, p->H, p->D) != DL_OK)
            die("forward");
        double t1 = now();
        memset(p->dqkv, 0, (size_t)p->N * 3 * p->H * p->D * sizeof(float));
        double t2 = now();
        if (dl_op_attention_backward(be, p->dqkv, p->dout, p->qkv, p->out, p->lse, p->cu, p->num_seqs, p->N, p->H,
                                     p->D) != DL_OK)
            die("backward");
        double t3 = now();
        if (r > 0) {
            best.fwd = fmin(best.fwd, t1 - t0);
            best.bwd = fmin(best.bwd, t3 - t2);
        }
    }
    return best;
}

/* ---- the standard-attention baseline: full T×T matrices through cblas_sgemm (one document) ------------------- */

typedef struct naive {
    float *P;  /* [H, T, T] probabilities, kept from forward */
    float *dP; /* [T, T] scratch for one head in backward */
} naive;

static void naive_forward(naive *nv, problem *p) {
    const int T = p->N, D = p->D;
    const size_t C = (size_t)p->H * D, ld3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < p->H; h++) {
        const float *q = p->qkv + (size_t)h * D, *k = q + C, *v = k + C;
        float *P = nv->P + (size_t)h * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, q, (int)ld3, k, (int)ld3, 0.0f, P, T);
#pragma omp parallel for schedule(static)
        for (int n = 0; n < T; n++) {
            float *row = P + (size_t)n * T, mx = -INFINITY, sum = 0.0f;
            for (int m = 0; m <= n; m++)
                mx = row[m] > mx ? row[m] : mx;
            for (int m = 0; m <= n; m++) {
                row[m] = expf(row[m] - mx);
                sum += row[m];
            }
            for (int m = 0; m <= n; m++)
                row[m] /= sum;
            for (int m = n + 1; m < T; m++)
                row[m] = 0.0f;
            p->lse[(size_t)n * p->H + h] = mx + logf(sum);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, P, T, v, (int)ld3, 0.0f,
                    p->out + (size_t)h * D, (int)C);
    }
}

static void naive_backward(naive *nv, problem *p) {
    const int T = p->N, D = p->D;
    const size_t C = (size_t)p->H * D, ld3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < p->H; h++) {
        const float *q = p->qkv + (size_t)h * D, *k = q + C, *v = k + C, *dout = p->dout + (size_t)h * D;
        float *dq = p->dqkv + (size_t)h * D, *dk = dq + C, *dv = dk + C;
        const float *P = nv->P + (size_t)h * T * T;
        float *dP = nv->dP;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, P, T, dout, (int)C, 1.0f, dv, (int)ld3);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dout, (int)C, v, (int)ld3, 0.0f, dP, T);
#pragma omp parallel for schedule(static)
        for (int n = 0; n < T; n++) {
            const float *prow = P + (size_t)n * T;
            float *row = dP + (size_t)n * T, delta = 0.0f;
            for (int m = 0; m < T; m++)
                delta += prow[m] * row[m];
            for (int m = 0; m < T; m++)
                row[m] = prow[m] * (row[m] - delta);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, scale, dP, T, k, (int)ld3, 1.0f, dq,
                    (int)ld3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, scale, dP, T, q, (int)ld3, 1.0f, dk, (int)ld3);
    }
}

/* ---- the naive-loop baseline: llm.c's CPU reference algorithm, plain C loops on T×T matrices ------------------
 *
 * The attention of llm.c's train_gpt2.c, written from its algorithm: per (query t, head h) a row of T×T scores
 * preatt[t2] = q·k/√D for t2 ≤ t, a max-subtracted softmax into att, out = Σ att·v. Both matrices are kept for every
 * head (as llm.c keeps them); the backward fills datt = dout·v and dv += att·dout, dpreatt through the softmax
 * Jacobian, then dq += dpreatt·k/√D and dk += dpreatt·q/√D, all over t2 ≤ t only, into T×T datt and dpreatt.
 * Two choices keep it no weaker than llm.c's own build:
 * - llm.c compiles with -Ofast, which vectorises the q·k and v·dout reductions; this project bans fast-math, so
 *   those two loops (and the Jacobian's row sum) carry `omp simd reduction`, which lets the compiler vectorise them
 *   the same way without changing any other arithmetic. expf stays scalar (-Ofast would use libmvec's vector expf).
 * - llm.c applies the Jacobian as written, a t2 × t3 double loop: O(T³) per head. Here dpreatt = att ∘ (datt −
 *   Σ att·datt), the same Jacobian-vector product in O(T²). --jacobian-loop runs llm.c's double loop instead.
 * Threads: llm.c parallelises the forward over (batch, t, head) with `omp parallel for collapse(3)` and runs the
 * backward serially (its dk and dv sums would race); the same here, with a packed document in place of a batch row.
 * The matrices of document s (length L) start at H·Σ_{s'<s} L_{s'}²: per head an L×L block, row t at offset t·L. */

typedef struct loops {
    float *preatt, *att;   /* [H, L, L] per document: scores and probabilities, kept from forward */
    float *datt, *dpreatt; /* [H, L, L] per document: their gradients in backward */
    int jacobian_loop;     /* llm.c's O(T³) double loop for the softmax backward */
} loops;

static size_t loops_floats(const problem *p) {
    size_t n = 0;
    for (int s = 0; s < p->num_seqs; s++) {
        const size_t L = (size_t)(p->cu[s + 1] - p->cu[s]);
        n += (size_t)p->H * L * L;
    }
    return n;
}

static void loops_forward(loops *lp, problem *p) {
    const int H = p->H, D = p->D;
    const size_t C = (size_t)H * D, ld3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)D);
    size_t base = 0;
    for (int s = 0; s < p->num_seqs; s++) {
        const int L = p->cu[s + 1] - p->cu[s];
        const float *x = p->qkv + (size_t)p->cu[s] * ld3;
        float *out = p->out + (size_t)p->cu[s] * C, *preatt = lp->preatt + base, *att = lp->att + base;
#pragma omp parallel for collapse(2)
        for (int t = 0; t < L; t++)
            for (int h = 0; h < H; h++) {
                const float *q = x + (size_t)t * ld3 + (size_t)h * D;
                float *pre = preatt + ((size_t)h * L + t) * L, *a = att + ((size_t)h * L + t) * L;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = x + (size_t)t2 * ld3 + C + (size_t)h * D;
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int i = 0; i < D; i++)
                        dot += q[i] * k[i];
                    dot *= scale;
                    mx = dot > mx ? dot : mx;
                    pre[t2] = dot;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(pre[t2] - mx);
                    sum += a[t2];
                }
                const float inv = 1.0f / sum;
                for (int t2 = 0; t2 < L; t2++) /* llm.c also zeroes the masked part of the row */
                    a[t2] = t2 <= t ? a[t2] * inv : 0.0f;
                float *o = out + (size_t)t * C + (size_t)h * D;
                for (int i = 0; i < D; i++)
                    o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = x + (size_t)t2 * ld3 + 2 * C + (size_t)h * D, w = a[t2];
                    for (int i = 0; i < D; i++)
                        o[i] += w * v[i];
                }
            }
        base += (size_t)H * L * L;
    }
}

/* Adds into p->dqkv, like the op. */
static void loops_backward(loops *lp, problem *p) {
    const int H = p->H, D = p->D;
    const size_t C = (size_t)H * D, ld3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)D);
    size_t base = 0;
    for (int s = 0; s < p->num_seqs; s++) {
        const int L = p->cu[s + 1] - p->cu[s];
        const float *x = p->qkv + (size_t)p->cu[s] * ld3, *dout = p->dout + (size_t)p->cu[s] * C;
        float *dx = p->dqkv + (size_t)p->cu[s] * ld3;
        for (int t = 0; t < L; t++)
            for (int h = 0; h < H; h++) {
                const size_t row = base + ((size_t)h * L + t) * L;
                const float *a = lp->att + row, *q = x + (size_t)t * ld3 + (size_t)h * D;
                const float *dout_t = dout + (size_t)t * C + (size_t)h * D;
                float *da = lp->datt + row, *dpre = lp->dpreatt + row, *dq = dx + (size_t)t * ld3 + (size_t)h * D;
                for (int t2 = 0; t2 <= t; t2++) { /* through out = Σ att·v */
                    const float *v = x + (size_t)t2 * ld3 + 2 * C + (size_t)h * D;
                    float *dv = dx + (size_t)t2 * ld3 + 2 * C + (size_t)h * D, dot = 0.0f;
                    const float w = a[t2];
#pragma omp simd reduction(+ : dot)
                    for (int i = 0; i < D; i++) {
                        dot += v[i] * dout_t[i];
                        dv[i] += w * dout_t[i];
                    }
                    da[t2] = dot;
                }
                if (lp->jacobian_loop) { /* llm.c's form: dpre[t3] = Σ_t2 att[t2] (δ(t2,t3) − att[t3]) datt[t2] */
                    for (int t3 = 0; t3 <= t; t3++)
                        dpre[t3] = 0.0f;
                    for (int t2 = 0; t2 <= t; t2++)
                        for (int t3 = 0; t3 <= t; t3++)
                            dpre[t3] += a[t2] * ((t2 == t3 ? 1.0f : 0.0f) - a[t3]) * da[t2];
                } else { /* the same product in closed form */
                    float delta = 0.0f;
#pragma omp simd reduction(+ : delta)
                    for (int t2 = 0; t2 <= t; t2++)
                        delta += a[t2] * da[t2];
                    for (int t2 = 0; t2 <= t; t2++)
                        dpre[t2] = a[t2] * (da[t2] - delta);
                }
                for (int t2 = 0; t2 <= t; t2++) { /* through preatt = q·k/√D */
                    const float *k = x + (size_t)t2 * ld3 + C + (size_t)h * D, g = dpre[t2] * scale;
                    float *dk = dx + (size_t)t2 * ld3 + C + (size_t)h * D;
                    for (int i = 0; i < D; i++) {
                        dq[i] += k[i] * g;
                        dk[i] += q[i] * g;
                    }
                }
            }
        base += (size_t)H * L * L;
    }
}

static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / fmax(r, 1e-300));
}

/* ---- (c) tile products through cblas_sgemm ---------------------------------------------------------------------- */

/* Seconds for `calls` 64×64×64 sgemm calls on one thread, operands strided like rows of qkv. */
static double time_sgemm_tiles(const problem *p, long calls, int repeat) {
    const int T = DL_CPU_ATTENTION_TILE, D = p->D;
    const size_t ld3 = 3 * (size_t)p->H * D;
    float *c = xalloc((size_t)T * T * sizeof(float)), *o = xalloc((size_t)T * D * sizeof(float));
    memset(o, 0, (size_t)T * D * sizeof(float));
    double best = INFINITY;
    for (int r = 0; r <= repeat; r++) {
        double t0 = now();
        for (long i = 0; i < calls; i += 2) {
            const float *q = p->qkv + (size_t)(i % (p->N / T)) * T * ld3;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, q, (int)ld3, q + D, (int)ld3, 0.0f,
                        c, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, c, T, q + 2 * D, (int)ld3, 1.0f,
                        o, D);
        }
        double t = now() - t0;
        if (r > 0)
            best = fmin(best, t);
    }
    free(c);
    free(o);
    return best;
}

static int parse_int(const char *text, const char *flag, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text ? text : "", &end, 10);
    if (!text || errno || *end || v <= 0 || v > 1 << 20) {
        fprintf(stderr, "bench_attention: %s needs a positive integer, got '%s'\n", flag, text ? text : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    dl_blas_select_kernel(argv);
    int threads = omp_get_max_threads(), repeat = 3, H = 12, D = 64, T = 1024, naive_loops = 0, jacobian_loop = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--naive-loops") == 0 || strcmp(argv[i], "--jacobian-loop") == 0) {
            *(argv[i][2] == 'n' ? &naive_loops : &jacobian_loop) = 1;
            continue;
        }
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        int *target = strcmp(argv[i], "--threads") == 0          ? &threads
                      : strcmp(argv[i], "--repeat") == 0         ? &repeat
                      : strcmp(argv[i], "--heads") == 0          ? &H
                      : strcmp(argv[i], "--head-size") == 0      ? &D
                      : strcmp(argv[i], "--compare-tokens") == 0 ? &T
                                                                 : NULL;
        if (!target) {
            fprintf(stderr, "usage: bench_attention [--threads T] [--repeat R] [--heads H] [--head-size D] "
                            "[--compare-tokens T] [--naive-loops] [--jacobian-loop]\n");
            return 2;
        }
        if (parse_int(next, argv[i], target))
            return 2;
        i++;
    }
    if (D > DL_CPU_ATTENTION_MAX_D) {
        fprintf(stderr, "bench_attention: --head-size must be at most %d\n", DL_CPU_ATTENTION_MAX_D);
        return 2;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    dl_backend be;
    if (dl_backend_open(&be, "cpu", 0) != DL_OK)
        die("opening the cpu backend");
    const double scratch = (double)(dl_cpu_attention_scratch_forward() > dl_cpu_attention_scratch_backward()
                                        ? dl_cpu_attention_scratch_forward()
                                        : dl_cpu_attention_scratch_backward());
    printf("# bench_attention: %d threads, H=%d, D=%d, best of %d, %s; BLAS %s\n", threads, H, D, repeat,
           threads == 1 ? "thread CPU time" : "wall-clock time", dl_blas_describe());
    printf("# tile %d, scratch per thread %.1f KiB (forward %.1f, backward %.1f)\n\n", DL_CPU_ATTENTION_TILE,
           scratch / 1024, dl_cpu_attention_scratch_forward() / 1024.0, dl_cpu_attention_scratch_backward() / 1024.0);

    /* (a); one-thread runs are timed in CPU time throughout */
    cpu_clock = threads == 1;
    printf("## (a) flash forward+backward against T\n\n");
    printf("| layout | fwd ms | bwd ms | total ms | GFLOP/s | in+out MiB | scratch KiB (all threads) | one T×T fp32 "
           "matrix per head, MiB |\n|---|---|---|---|---|---|---|---|\n");
    const int Ts[] = {256, 1024, 4096, 4096};
    for (int c = 0; c < 4; c++) {
        const int docs = c == 3 ? 16 : 1;
        problem p = make_problem(Ts[c], H, D, docs);
        timing t = time_flash(&be, &p, repeat);
        const double flops = causal_pairs(&p) * D * 2 * (2 + 5);
        char name[64];
        if (docs == 1)
            snprintf(name, sizeof name, "T=%d, 1 doc", Ts[c]);
        else
            snprintf(name, sizeof name, "N=%d, %d docs of %d", Ts[c], docs, Ts[c] / docs);
        printf("| %s | %.2f | %.2f | %.2f | %.1f | %.2f | %.0f | %.1f |\n", name, t.fwd * 1e3, t.bwd * 1e3,
               (t.fwd + t.bwd) * 1e3, flops / (t.fwd + t.bwd) / 1e9, io_bytes(&p) / 1048576.0,
               scratch * threads / 1024, (double)Ts[c] * Ts[c] * 4 * H / 1048576.0);
        free_problem(&p);
    }

    /* (b): at the chosen thread count, then on one thread (where OpenBLAS's threading plays no part) */
    const int with_loops = T <= 1024 || naive_loops;
    printf("\n## (b) flash against %sstandard attention (T×T through cblas_sgemm), T=%d, 1 doc\n\n",
           with_loops ? "naive loops (llm.c-style) and " : "", T);
    printf("One-thread rows are in CPU time of the calling thread (all the work runs there; load from other\n"
           "processes does not inflate it); the others in wall-clock time. The last column is flash's speed-up over\n"
           "the row's implementation.%s\n\n",
           with_loops ? " The naive loops' backward is serial at any thread count, as llm.c's is." : "");
    printf("| threads | impl | fwd ms | bwd ms | fwd+bwd ms | extra memory MiB | flash speed-up fwd / bwd / fwd+bwd |\n"
           "|---|---|---|---|---|---|---|\n");
    problem p = make_problem(T, H, D, 1);
    const size_t n_out = (size_t)T * H * D, n_dqkv = 3 * n_out;
    float *out_flash = xalloc(n_out * sizeof(float)), *dqkv_flash = xalloc(n_dqkv * sizeof(float));
    naive nv = {xalloc((size_t)H * T * T * sizeof(float)), xalloc((size_t)T * T * sizeof(float))};
    loops lp = {NULL, NULL, NULL, NULL, jacobian_loop};
    if (with_loops) {
        const size_t n = loops_floats(&p) * sizeof(float);
        lp.preatt = xalloc(n);
        lp.att = xalloc(n);
        lp.datt = xalloc(n);
        lp.dpreatt = xalloc(n);
    }
    double diff[2][2] = {{0, 0}, {0, 0}}; /* [standard, loops][out, dqkv] against flash */
    const int counts[2] = {threads, 1};
    for (int c = 0; c < (threads > 1 ? 2 : 1); c++) {
        omp_set_num_threads(counts[c]);
        openblas_set_num_threads(counts[c]);
        cpu_clock = counts[c] == 1;
        timing flash = {INFINITY, INFINITY}, slow[2] = {{INFINITY, INFINITY}, {INFINITY, INFINITY}};
        /* interleaved, so that a burst of load on a shared machine hits all of them */
        for (int r = 0; r <= repeat; r++) {
            timing f = time_flash(&be, &p, 1);
            flash.fwd = fmin(flash.fwd, f.fwd);
            flash.bwd = fmin(flash.bwd, f.bwd);
            memcpy(out_flash, p.out, n_out * sizeof(float));
            memcpy(dqkv_flash, p.dqkv, n_dqkv * sizeof(float));
            for (int b = 0; b < 1 + with_loops; b++) {
                memset(p.out, 0xff, n_out * sizeof(float)); /* NaN: a baseline must write all of out */
                double t0 = now();
                if (b == 0)
                    naive_forward(&nv, &p);
                else
                    loops_forward(&lp, &p);
                double t1 = now();
                memset(p.dqkv, 0, n_dqkv * sizeof(float));
                double t2 = now();
                if (b == 0)
                    naive_backward(&nv, &p);
                else
                    loops_backward(&lp, &p);
                double t3 = now();
                if (r > 0) {
                    slow[b].fwd = fmin(slow[b].fwd, t1 - t0);
                    slow[b].bwd = fmin(slow[b].bwd, t3 - t2);
                }
                diff[b][0] = fmax(diff[b][0], rel_diff(out_flash, p.out, n_out));
                diff[b][1] = fmax(diff[b][1], rel_diff(dqkv_flash, p.dqkv, n_dqkv));
            }
        }
        const double mib[2] = {((double)H + 1) * T * T * 4 / 1048576.0, 4.0 * loops_floats(&p) * 4 / 1048576.0};
        for (int b = with_loops; b >= 0; b--)
            printf("| %d | %s | %.2f | %.2f | %.2f | %.1f | %.2fx / %.2fx / **%.2fx** |\n", counts[c],
                   b == 0 ? "standard attention (sgemm, T×T)"
                   : jacobian_loop ? "naive loops (llm.c-style, T×T, O(T³) Jacobian loop)"
                                   : "naive loops (llm.c-style, T×T)",
                   slow[b].fwd * 1e3, slow[b].bwd * 1e3, (slow[b].fwd + slow[b].bwd) * 1e3, mib[b],
                   slow[b].fwd / flash.fwd, slow[b].bwd / flash.bwd,
                   (slow[b].fwd + slow[b].bwd) / (flash.fwd + flash.bwd));
        printf("| %d | flash | %.2f | %.2f | %.2f | %.2f | |\n", counts[c], flash.fwd * 1e3, flash.bwd * 1e3,
               (flash.fwd + flash.bwd) * 1e3, scratch * counts[c] / 1048576.0);
    }
    printf("\nagainst flash (largest over all repeats): standard attention out rel. diff %.2g, dqkv rel. diff %.2g",
           diff[0][0], diff[0][1]);
    if (with_loops)
        printf("; naive loops out rel. diff %.2g, dqkv rel. diff %.2g", diff[1][0], diff[1][1]);
    else
        printf("; naive loops skipped above T=1024 (--naive-loops runs them)");
    printf("\n");
    free(nv.P);
    free(nv.dP);
    free(lp.preatt);
    free(lp.att);
    free(lp.datt);
    free(lp.dpreatt);
    free(out_flash);
    free(dqkv_flash);

    /* (c) */
    const long tiles = (T + DL_CPU_ATTENTION_TILE - 1) / DL_CPU_ATTENTION_TILE, pairs = tiles * (tiles + 1) / 2 * H;
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    cpu_clock = 1;
    timing one = time_flash(&be, &p, repeat);
    const long calls = pairs * (2 + 5);
    double sgemm = time_sgemm_tiles(&p, calls, repeat);
    printf("\n## (c) tile products through cblas_sgemm, 1 thread (CPU time), T=%d\n\n", T);
    printf("flash forward+backward, whole: %.2f ms; the %ld 64x64x%d sgemm calls it would need, alone: %.2f ms\n",
           (one.fwd + one.bwd) * 1e3, calls, D, sgemm * 1e3);
    free_problem(&p);
    dl_backend_close(&be);
    return 0;
}
