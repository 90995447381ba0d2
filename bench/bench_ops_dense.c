/* bench_ops_dense.c — the CPU dense ops at GPT-2-small shapes, through the dl_op_* entry points.
 *
 * Shapes: N = 256 tokens, C = 768, H = 12 heads of D = 64, MLP 4C, vocabulary V = 50304. Each op runs once to warm
 * up, then `--repeat` times; the best time is reported (the machine is shared, and the best is the least
 * disturbed). Matmuls report GFLOP/s and the rate of plain cblas_sgemm calls of the same products on the same
 * buffers, run alternately with the op in one loop so both see the same load: the ratio (sgemm time / op time)
 * shows what the wrapper, the bias add and the bias gradient cost on top of BLAS. The other ops report GB/s of the minimum traffic they need (each input read once, each output written
 * once, an accumulated gradient read and written), so a figure near the machine's bandwidth means the op is as fast
 * as it can be.
 *
 *     bench_ops_dense [--threads T] [--repeat R]     (defaults: 2 threads, 20 repeats)
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "core/timer.h"
#include "ops/blas_runtime.h"
#include "ops/ops.h"

void openblas_set_num_threads(int num_threads);

enum { N = 256, C = 768, H = 12, D = 64, V = 50304 };

static int repeat = 20;
static dl_backend be;

static float *buffer(size_t n, dl_rng *rng, float lo, float hi) {
    float *p = NULL;
    if (dl_mem_alloc(&be, (void **)&p, n * sizeof(float)) != DL_OK) {
        fprintf(stderr, "bench_ops_dense: %s\n", dl_error_message());
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * dl_rng_uniform(rng);
    return p;
}

static void check(dl_status s, const char *what) {
    if (s != DL_OK) {
        fprintf(stderr, "bench_ops_dense: %s: %s\n", what, dl_error_message());
        exit(1);
    }
}

/* Best wall time of `repeat` runs of the statement, after one warm-up run. */
#define BEST_TIME(result, stmt)                                                                              \
    do {                                                                                                     \
        stmt;                                                                                                \
        double best_ = 1e30;                                                                                 \
        for (int r_ = 0; r_ < repeat; r_++) {                                                                \
            double t0_ = dl_time_seconds();                                                                  \
            stmt;                                                                                            \
            double dt_ = dl_time_seconds() - t0_;                                                            \
            if (dt_ < best_)                                                                                 \
                best_ = dt_;                                                                                 \
        }                                                                                                    \
        (result) = best_;                                                                                    \
    } while (0)

/* Best times of two statements run alternately, so both see the same share of a busy machine. */
#define BEST_TIME_PAIR(result_a, stmt_a, result_b, stmt_b)                                                   \
    do {                                                                                                     \
        stmt_a;                                                                                              \
        stmt_b;                                                                                              \
        double best_a_ = 1e30, best_b_ = 1e30;                                                               \
        for (int r_ = 0; r_ < repeat; r_++) {                                                                \
            double t0_ = dl_time_seconds();                                                                  \
            stmt_a;                                                                                          \
            double t1_ = dl_time_seconds();                                                                  \
            stmt_b;                                                                                          \
            double t2_ = dl_time_seconds();                                                                  \
            if (t1_ - t0_ < best_a_)                                                                         \
                best_a_ = t1_ - t0_;                                                                         \
            if (t2_ - t1_ < best_b_)                                                                         \
                best_b_ = t2_ - t1_;                                                                         \
        }                                                                                                    \
        (result_a) = best_a_;                                                                                \
        (result_b) = best_b_;                                                                                \
    } while (0)

static void row_flops(const char *op, const char *shape, double seconds, double flops, double ref_seconds) {
    printf("| %-24s | %-22s | %9.1f | %8.1f GFLOP/s | %8.1f GFLOP/s | %5.2f |\n", op, shape, seconds * 1e6,
           flops / seconds / 1e9, flops / ref_seconds / 1e9, ref_seconds / seconds);
}

static void row_bytes(const char *op, const char *shape, double seconds, double bytes) {
    printf("| %-24s | %-22s | %9.1f | %8.2f GB/s     |                 |       |\n", op, shape, seconds * 1e6,
           bytes / seconds / 1e9);
}

/* Forward out = inp·Wᵀ + b against one plain sgemm of the same product. */
static void bench_matmul_forward(const char *name, int OC_, int C_, dl_rng *rng) {
    float *inp = buffer((size_t)N * C_, rng, -1, 1), *w = buffer((size_t)OC_ * C_, rng, -0.05f, 0.05f);
    float *b = buffer(OC_, rng, -1, 1), *out = buffer((size_t)N * OC_, rng, 0, 0);
    double t, tref;
    BEST_TIME_PAIR(t, check(dl_op_matmul_forward(&be, out, inp, w, b, N, C_, OC_), name), tref,
                   cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC_, C_, 1.0f, inp, C_, w, C_, 0.0f, out,
                               OC_));
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d · %dx%dᵀ", N, C_, OC_, C_);
    row_flops(name, shape, t, 2.0 * N * C_ * OC_, tref);
    dl_mem_free(&be, inp), dl_mem_free(&be, w), dl_mem_free(&be, b), dl_mem_free(&be, out);
}

/* Backward (dinp, dweight, dbias) against the two plain sgemms it needs. */
static void bench_matmul_backward(const char *name, int OC_, int C_, dl_rng *rng) {
    float *inp = buffer((size_t)N * C_, rng, -1, 1), *w = buffer((size_t)OC_ * C_, rng, -0.05f, 0.05f);
    float *dout = buffer((size_t)N * OC_, rng, -1, 1), *dinp = buffer((size_t)N * C_, rng, 0, 0);
    float *dw = buffer((size_t)OC_ * C_, rng, 0, 0), *db = buffer(OC_, rng, 0, 0);
    double t, tref;
    BEST_TIME_PAIR(t, check(dl_op_matmul_backward(&be, dinp, dw, db, dout, inp, w, N, C_, OC_), name), tref, {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C_, OC_, 1.0f, dout, OC_, w, C_, 1.0f, dinp, C_);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC_, C_, N, 1.0f, dout, OC_, inp, C_, 1.0f, dw, C_);
    });
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d · %dx%dᵀ", N, C_, OC_, C_);
    row_flops(name, shape, t, 4.0 * N * C_ * OC_, tref);
    dl_mem_free(&be, inp), dl_mem_free(&be, w), dl_mem_free(&be, dout), dl_mem_free(&be, dinp);
    dl_mem_free(&be, dw), dl_mem_free(&be, db);
}

static void bench_matmul_bf16(dl_rng *rng) {
    const int OC_ = 4 * C;
    float *inp = buffer((size_t)N * C, rng, -1, 1), *w = buffer((size_t)OC_ * C, rng, -0.05f, 0.05f);
    float *b = buffer(OC_, rng, -1, 1), *out = buffer((size_t)N * OC_, rng, 0, 0);
    dl_bf16 *inp16, *w16;
    check(dl_mem_alloc(&be, (void **)&inp16, (size_t)N * C * sizeof(dl_bf16)), "alloc");
    check(dl_mem_alloc(&be, (void **)&w16, (size_t)OC_ * C * sizeof(dl_bf16)), "alloc");
    check(dl_op_f32_to_bf16(&be, inp16, inp, (size_t)N * C), "convert");
    check(dl_op_f32_to_bf16(&be, w16, w, (size_t)OC_ * C), "convert");
    double t, tref;
    BEST_TIME_PAIR(t, check(dl_op_matmul_forward_bf16(&be, out, inp16, w16, b, N, C, OC_), "bf16"), tref,
                   cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC_, C, 1.0f, inp, C, w, C, 0.0f, out,
                               OC_));
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d · %dx%dᵀ", N, C, OC_, C);
    row_flops("matmul_forward_bf16 fc", shape, t, 2.0 * N * C * OC_, tref);
    dl_mem_free(&be, inp), dl_mem_free(&be, w), dl_mem_free(&be, b), dl_mem_free(&be, out);
    dl_mem_free(&be, inp16), dl_mem_free(&be, w16);
}

static void bench_embedding(dl_rng *rng) {
    const int P = 1024;
    float *wte = buffer((size_t)V * C, rng, -1, 1), *wpe = buffer((size_t)P * C, rng, -1, 1);
    float *out = buffer((size_t)N * C, rng, 0, 0), *dwte = buffer((size_t)V * C, rng, 0, 0);
    float *dwpe = buffer((size_t)P * C, rng, 0, 0);
    int32_t tokens[N], positions[N];
    for (int n = 0; n < N; n++) {
        tokens[n] = (int32_t)dl_rng_below(rng, V);
        positions[n] = n;
    }
    double t;
    const double row = (double)N * C * 4;
    BEST_TIME(t, check(dl_op_embedding_forward(&be, out, tokens, positions, wte, wpe, N, C, V, P), "emb fwd"));
    row_bytes("embedding_forward", "N=256 C=768", t, 3 * row);
    BEST_TIME(t, check(dl_op_embedding_backward(&be, dwte, dwpe, out, tokens, positions, N, C, V, P), "emb bwd"));
    row_bytes("embedding_backward", "N=256 C=768", t, 5 * row);
    dl_mem_free(&be, wte), dl_mem_free(&be, wpe), dl_mem_free(&be, out), dl_mem_free(&be, dwte);
    dl_mem_free(&be, dwpe);
}

static void bench_rope(dl_rng *rng) {
    float *qkv = buffer((size_t)N * 3 * C, rng, -1, 1), *dqkv = buffer((size_t)N * 3 * C, rng, 0, 0);
    int32_t positions[N];
    for (int n = 0; n < N; n++)
        positions[n] = n % 128; /* packed documents of 128 tokens */
    double t;
    const double bytes = 2.0 * N * C * 4; /* q read and written */
    BEST_TIME(t, check(dl_op_rope_forward(&be, qkv, qkv, positions, N, H, D, 3 * C, 10000.0f), "rope fwd"));
    row_bytes("rope_forward (q in qkv)", "N=256 H=12 D=64", t, bytes);
    BEST_TIME(t, check(dl_op_rope_backward(&be, dqkv, qkv, positions, N, H, D, 3 * C, 10000.0f), "rope bwd"));
    row_bytes("rope_backward", "N=256 H=12 D=64", t, 1.5 * bytes);
    dl_mem_free(&be, qkv), dl_mem_free(&be, dqkv);
}

static void bench_layernorm(dl_rng *rng) {
    size_t na = (size_t)N * C;
    float *inp = buffer(na, rng, -2, 2), *out = buffer(na, rng, 0, 0), *w = buffer(C, rng, 0.5f, 1.5f);
    float *b = buffer(C, rng, -1, 1), *mean = buffer(N, rng, 0, 0), *rstd = buffer(N, rng, 0, 0);
    float *dout = buffer(na, rng, -1, 1), *dinp = buffer(na, rng, 0, 0), *dw = buffer(C, rng, 0, 0);
    float *db = buffer(C, rng, 0, 0);
    double t;
    BEST_TIME(t, check(dl_op_layernorm_forward(&be, out, mean, rstd, inp, w, b, N, C, 1e-5f), "ln fwd"));
    row_bytes("layernorm_forward", "N=256 C=768", t, 2.0 * na * 4);
    BEST_TIME(t, check(dl_op_layernorm_backward(&be, dinp, dw, db, dout, inp, w, mean, rstd, N, C), "ln bwd"));
    row_bytes("layernorm_backward", "N=256 C=768", t, 4.0 * na * 4);
    dl_mem_free(&be, inp), dl_mem_free(&be, out), dl_mem_free(&be, w), dl_mem_free(&be, b);
    dl_mem_free(&be, mean), dl_mem_free(&be, rstd), dl_mem_free(&be, dout), dl_mem_free(&be, dinp);
    dl_mem_free(&be, dw), dl_mem_free(&be, db);
}

static void bench_elementwise(dl_rng *rng) {
    size_t nh = (size_t)N * 4 * C, na = (size_t)N * C;
    float *x = buffer(nh, rng, -3, 3), *y = buffer(nh, rng, 0, 0), *g = buffer(nh, rng, -1, 1);
    float *d = buffer(nh, rng, 0, 0);
    double t;
    BEST_TIME(t, check(dl_op_gelu_forward(&be, y, x, nh), "gelu fwd"));
    row_bytes("gelu_forward", "N·4C = 786432", t, 2.0 * nh * 4);
    BEST_TIME(t, check(dl_op_gelu_backward(&be, d, x, g, nh), "gelu bwd"));
    row_bytes("gelu_backward", "N·4C = 786432", t, 4.0 * nh * 4);
    BEST_TIME(t, check(dl_op_residual_forward(&be, y, x, g, na), "residual fwd"));
    row_bytes("residual_forward", "N·C = 196608", t, 3.0 * na * 4);
    BEST_TIME(t, check(dl_op_residual_backward(&be, d, y, g, na), "residual bwd"));
    row_bytes("residual_backward", "N·C = 196608", t, 5.0 * na * 4);
    BEST_TIME(t, check(dl_op_dropout_forward(&be, y, x, na, 0.1f, 42, 7), "dropout fwd"));
    row_bytes("dropout_forward p=0.1", "N·C = 196608", t, 2.0 * na * 4);
    BEST_TIME(t, check(dl_op_dropout_backward(&be, d, g, na, 0.1f, 42, 7), "dropout bwd"));
    row_bytes("dropout_backward p=0.1", "N·C = 196608", t, 3.0 * na * 4);
    dl_bf16 *h;
    check(dl_mem_alloc(&be, (void **)&h, nh * sizeof(dl_bf16)), "alloc");
    BEST_TIME(t, check(dl_op_f32_to_bf16(&be, h, x, nh), "f32_to_bf16"));
    row_bytes("f32_to_bf16", "N·4C = 786432", t, 6.0 * nh);
    BEST_TIME(t, check(dl_op_bf16_to_f32(&be, y, h, nh), "bf16_to_f32"));
    row_bytes("bf16_to_f32", "N·4C = 786432", t, 6.0 * nh);
    dl_mem_free(&be, x), dl_mem_free(&be, y), dl_mem_free(&be, g), dl_mem_free(&be, d), dl_mem_free(&be, h);
}

static void bench_xent(dl_rng *rng) {
    size_t nl = (size_t)N * V;
    float *logits = buffer(nl, rng, -8, 8), *work = buffer(nl, rng, 0, 0), *losses = buffer(N, rng, 0, 0);
    float *lse = buffer(N, rng, 0, 0), *dl = buffer(N, rng, 1.0f / N, 1.0f / N);
    int32_t targets[N];
    for (int n = 0; n < N; n++)
        targets[n] = (int32_t)dl_rng_below(rng, V);
    double t;
    BEST_TIME(t, check(dl_op_xent_forward(&be, losses, lse, logits, targets, N, V), "xent fwd"));
    row_bytes("xent_forward", "N=256 V=50304", t, (double)nl * 4);
    /* In place (the fused classifier), refreshed from the logits before each run, outside the timing. */
    double best = 1e30;
    for (int r = 0; r <= repeat; r++) {
        memcpy(work, logits, nl * sizeof(float));
        double t0 = dl_time_seconds();
        check(dl_op_xent_backward(&be, work, work, lse, targets, dl, N, V), "xent bwd");
        double dt = dl_time_seconds() - t0;
        if (r > 0 && dt < best)
            best = dt;
    }
    row_bytes("xent_backward in place", "N=256 V=50304", best, 2.0 * nl * 4);
    int32_t cu[N / 64 + 1];
    for (int s = 0; s <= N / 64; s++)
        cu[s] = 64 * s;
    BEST_TIME(t, check(dl_op_sequence_sum_forward(&be, lse, losses, cu, N / 64), "sequence_sum"));
    row_bytes("sequence_sum_forward", "N=256, 4 docs", t, (double)N * 4);
    dl_mem_free(&be, logits), dl_mem_free(&be, work), dl_mem_free(&be, losses), dl_mem_free(&be, lse);
    dl_mem_free(&be, dl);
}

int main(int argc, char **argv) {
    dl_blas_select_kernel(argv);
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_ops_dense [--threads T] [--repeat R]\n");
            return 2;
        }
    }
    if (threads < 1 || repeat < 1) {
        fprintf(stderr, "bench_ops_dense: --threads and --repeat must be positive\n");
        return 2;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    check(dl_backend_open(&be, "cpu", 0), "opening the cpu backend");
    dl_rng rng;
    dl_rng_init(&rng, 1234, DL_STREAM_DATA);

    printf("dense ops, GPT-2 small shapes (N=%d C=%d H=%d D=%d V=%d), %d thread%s, best of %d, BLAS: %s\n", N, C,
           H, D, V, threads, threads == 1 ? "" : "s", repeat, dl_blas_describe());
    const char *wait = getenv("OMP_WAIT_POLICY"), *timeout = getenv("OPENBLAS_THREAD_TIMEOUT");
    printf("OMP_WAIT_POLICY=%s OPENBLAS_THREAD_TIMEOUT=%s (idle OpenMP and OpenBLAS workers spin by default and\n"
           "slow down the other pool's next call when both share cores)\n\n",
           wait ? wait : "(unset)", timeout ? timeout : "(unset)");
    printf("| %-24s | %-22s | %9s | %-16s | %-15s | %5s |\n", "op", "shape", "time (µs)", "rate",
           "plain sgemm", "ratio");
    printf("|--------------------------|------------------------|-----------|------------------|-----------------|-------|\n");
    bench_matmul_forward("matmul_forward qkv", 3 * C, C, &rng);
    bench_matmul_forward("matmul_forward attproj", C, C, &rng);
    bench_matmul_forward("matmul_forward fc", 4 * C, C, &rng);
    bench_matmul_forward("matmul_forward fcproj", C, 4 * C, &rng);
    bench_matmul_forward("matmul_forward lm head", V, C, &rng);
    bench_matmul_backward("matmul_backward qkv", 3 * C, C, &rng);
    bench_matmul_backward("matmul_backward fc", 4 * C, C, &rng);
    bench_matmul_backward("matmul_backward fcproj", C, 4 * C, &rng);
    bench_matmul_bf16(&rng);
    bench_embedding(&rng);
    bench_rope(&rng);
    bench_layernorm(&rng);
    bench_elementwise(&rng);
    bench_xent(&rng);
    dl_backend_close(&be);
    return 0;
}
