/* matmul.c — the linear layer on CPU: out[N,OC] = inp[N,C]·weight[OC,C]ᵀ + bias, and its backward.
 *
 * The three products go to OpenBLAS sgemm, which is where the flops are; the backward products pass beta = 1 so
 * they accumulate into the gradients for free, as ops.h asks. The bias add and the bias gradient are the only
 * loops of our own.
 *
 * Threads: the process has one thread pool, OpenMP's. Each product is cut into one slab of output rows or columns
 * per OpenMP thread and every thread runs a single-threaded sgemm on its slab; OpenBLAS's own pthread pool is kept
 * at one thread. Debian's OpenBLAS (pthread build) and libgomp both busy-wait after their work, so when both pools
 * exist their idle threads spin on the cores the other pool's threads need: a training step (matmuls between
 * small OpenMP kernels) measured 10-15% more CPU time that way, and much worse wall time on a loaded machine. The
 * slab is the larger output dimension, so the large operand (the weight, for the usual few hundred tokens) is
 * packed once in total rather than once per thread. The bias gradient is a column sum over N rows: the team splits the OC columns, each thread adds
 * its columns' rows in order (in double), so the result is the same for any thread count and needs no atomics.
 *
 * The bf16 variant (the GPU's storage format) has no BLAS routine: it converts a tile of the weight to fp32 on the
 * stack, transposed so the innermost loop runs over output columns, and accumulates in fp32. It is a correctness
 * path for CPU runs of bf16 weights, a few times slower than sgemm. Its backward (model.precision bf16) widens tiles
 * of all three bf16 operands the same way. */
#include <cblas.h>
#include <omp.h>

#include "ops/cpu/cpu_dense.h"
#include "ops/cpu/cpu_dense_math.h"

int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

/* Products below this many multiply-adds (M·N·K) run as one sgemm on the calling thread. */
#define TEAM_SGEMM_MIN ((double)(1 << 21))

/* C[M,N] = op(A)·op(B) + beta·C, row-major, alpha 1, with the output split among the OpenMP threads (see the top
 * of the file). A slab of rows of C takes the same rows of op(A); a slab of columns the same columns of op(B). */
static void team_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
    if (openblas_get_num_threads() != 1) /* also undoes a caller's openblas_set_num_threads(T) */
        openblas_set_num_threads(1);
    int threads = omp_get_max_threads();
    int by_rows = M >= N;
    int extent = by_rows ? M : N;
    int width = (extent + threads - 1) / threads;
    width = (width + 63) & ~63; /* whole kernel tiles, 64-byte aligned columns */
    int parts = (extent + width - 1) / width;
    if (parts < 2 || (double)M * (double)N * (double)K < TEAM_SGEMM_MIN) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(parts)
    for (int p = 0; p < parts; p++) {
        int lo = p * width, len = extent - lo < width ? extent - lo : width;
        if (by_rows) {
            const float *a = ta == CblasNoTrans ? A + (size_t)lo * (size_t)lda : A + lo;
            cblas_sgemm(CblasRowMajor, ta, tb, len, N, K, 1.0f, a, lda, B, ldb, beta, C + (size_t)lo * (size_t)ldc,
                        ldc);
        } else {
            const float *b = tb == CblasNoTrans ? B + lo : B + (size_t)lo * (size_t)ldb;
            cblas_sgemm(CblasRowMajor, ta, tb, M, len, K, 1.0f, A, lda, b, ldb, beta, C + lo, ldc);
        }
    }
}

/* out[n, :] += bias for every row. */
static void add_bias_rows(float *restrict out, const float *restrict bias, int N, int OC) {
    size_t work = (size_t)N * (size_t)OC;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        float *restrict row = out + (size_t)n * OC;
#pragma omp simd
        for (int o = 0; o < OC; o++)
            row[o] += bias[o];
    }
}

dl_status dl_cpu_matmul_forward(void *state, float *out, const float *inp, const float *weight, const float *bias,
                                int N, int C, int OC) {
    (void)state;
    team_sgemm(CblasNoTrans, CblasTrans, N, OC, C, inp, C, weight, C, 0.0f, out, OC);
    if (bias)
        add_bias_rows(out, bias, N, OC);
    return DL_OK;
}

/* dbias[o] += Σ_n dout[n, o], columns split among threads. */
static void bias_gradient(float *restrict dbias, const float *restrict dout, int N, int OC) {
    size_t work = (size_t)N * (size_t)OC;
    int threads = work >= DL_CPU_PARALLEL_MIN ? omp_get_max_threads() : 1;
    int width = dl_cpu_column_block(OC, threads);
    int blocks = (OC + width - 1) / width;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int blk = 0; blk < blocks; blk++) {
        int o0 = blk * width;
        int len = OC - o0 < width ? OC - o0 : width;
        double acc[64];
        for (int c0 = 0; c0 < len; c0 += 64) {
            int w = len - c0 < 64 ? len - c0 : 64;
            for (int j = 0; j < w; j++)
                acc[j] = 0.0;
            for (int n = 0; n < N; n++) {
                const float *restrict row = dout + (size_t)n * OC + o0 + c0;
#pragma omp simd
                for (int j = 0; j < w; j++)
                    acc[j] += (double)row[j];
            }
            for (int j = 0; j < w; j++)
                dbias[o0 + c0 + j] += (float)acc[j];
        }
    }
}

dl_status dl_cpu_matmul_backward(void *state, float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int N, int C, int OC) {
    (void)state;
    if (dinp) /* dinp[N,C] += dout[N,OC]·weight[OC,C] */
        team_sgemm(CblasNoTrans, CblasNoTrans, N, C, OC, dout, OC, weight, C, 1.0f, dinp, C);
    /* dweight[OC,C] += dout[N,OC]ᵀ·inp[N,C] */
    team_sgemm(CblasTrans, CblasNoTrans, OC, C, N, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias)
        bias_gradient(dbias, dout, N, OC);
    return DL_OK;
}

/* ---- bf16 ---------------------------------------------------------------------------------------------------- */

enum { BF_ROWS = 16, BF_COLS = 64, BF_DEPTH = 128 }; /* tile: 16 tokens × 64 outputs, 128 inputs at a time */

static inline float bf16_to_float(dl_bf16 h) { return dl_cpu_bits_to_float((uint32_t)h << 16); }

dl_status dl_cpu_matmul_forward_bf16(void *state, float *out, const dl_bf16 *inp, const dl_bf16 *weight,
                                     const float *bias, int N, int C, int OC) {
    (void)state;
    int row_tiles = (N + BF_ROWS - 1) / BF_ROWS;
    int col_tiles = (OC + BF_COLS - 1) / BF_COLS;
    long tiles = (long)row_tiles * col_tiles;
    double work = (double)N * (double)C * (double)OC;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (long t = 0; t < tiles; t++) {
        int n0 = (int)(t / col_tiles) * BF_ROWS;
        int o0 = (int)(t % col_tiles) * BF_COLS;
        int rows = N - n0 < BF_ROWS ? N - n0 : BF_ROWS;
        int cols = OC - o0 < BF_COLS ? OC - o0 : BF_COLS;
        float acc[BF_ROWS][BF_COLS];
        float wt[BF_DEPTH][BF_COLS]; /* weight tile, transposed: wt[k][j] = weight[o0 + j][k0 + k] */
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < BF_COLS; j++)
                acc[i][j] = 0.0f;
        for (int k0 = 0; k0 < C; k0 += BF_DEPTH) {
            int depth = C - k0 < BF_DEPTH ? C - k0 : BF_DEPTH;
            for (int j = 0; j < cols; j++) {
                const dl_bf16 *w = weight + (size_t)(o0 + j) * C + k0;
                for (int k = 0; k < depth; k++)
                    wt[k][j] = bf16_to_float(w[k]);
            }
            for (int i = 0; i < rows; i++) {
                const dl_bf16 *a = inp + (size_t)(n0 + i) * C + k0;
                float *restrict acc_row = acc[i];
                for (int k = 0; k < depth; k++) {
                    float av = bf16_to_float(a[k]);
                    const float *restrict wk = wt[k];
#pragma omp simd
                    for (int j = 0; j < cols; j++)
                        acc_row[j] = fmaf(av, wk[j], acc_row[j]);
                }
            }
        }
        for (int i = 0; i < rows; i++) {
            float *restrict o = out + (size_t)(n0 + i) * OC + o0;
            if (bias) {
#pragma omp simd
                for (int j = 0; j < cols; j++)
                    o[j] = acc[i][j] + bias[o0 + j];
            } else {
#pragma omp simd
                for (int j = 0; j < cols; j++)
                    o[j] = acc[i][j];
            }
        }
    }
    return DL_OK;
}

/* C[M, J] += A·B for bf16 A and B read through strides (A(m, k) = a[m·a_m + k·a_k], B(k, j) = b[k·b_k + j·b_j]),
 * fp32 C with rows ldc apart: the two products of the bf16 backward. As in the forward, each output tile is one
 * thread's: the tiles of A and B are widened to fp32 on the stack (A's transposed to rows of k, B's to rows of j)
 * and every element is an FMA chain over k in order, so the result depends on neither the thread count nor the
 * schedule. The product of two bf16 values (8-bit significands) is exact in fp32, so what differs from a
 * double-precision sum of the same bf16 values is the fp32 accumulation alone, as on the GPU's tensor cores. */
static void bf16_gemm_accumulate(float *c, int ldc, const dl_bf16 *a, size_t a_m, size_t a_k, const dl_bf16 *b,
                                 size_t b_k, size_t b_j, int M, int J, int K) {
    int row_tiles = (M + BF_ROWS - 1) / BF_ROWS;
    int col_tiles = (J + BF_COLS - 1) / BF_COLS;
    long tiles = (long)row_tiles * col_tiles;
    double work = (double)M * (double)J * (double)K;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (long t = 0; t < tiles; t++) {
        int m0 = (int)(t / col_tiles) * BF_ROWS;
        int j0 = (int)(t % col_tiles) * BF_COLS;
        int rows = M - m0 < BF_ROWS ? M - m0 : BF_ROWS;
        int cols = J - j0 < BF_COLS ? J - j0 : BF_COLS;
        float acc[BF_ROWS][BF_COLS];
        float at[BF_ROWS][BF_DEPTH]; /* at[i][k] = A(m0 + i, k0 + k) */
        float bt[BF_DEPTH][BF_COLS]; /* bt[k][j] = B(k0 + k, j0 + j) */
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < BF_COLS; j++)
                acc[i][j] = 0.0f;
        for (int k0 = 0; k0 < K; k0 += BF_DEPTH) {
            int depth = K - k0 < BF_DEPTH ? K - k0 : BF_DEPTH;
            for (int k = 0; k < depth; k++) {
                const dl_bf16 *brow = b + (size_t)(k0 + k) * b_k + (size_t)j0 * b_j;
                for (int j = 0; j < cols; j++)
                    bt[k][j] = bf16_to_float(brow[(size_t)j * b_j]);
            }
            for (int i = 0; i < rows; i++) {
                const dl_bf16 *arow = a + (size_t)(m0 + i) * a_m + (size_t)k0 * a_k;
                for (int k = 0; k < depth; k++)
                    at[i][k] = bf16_to_float(arow[(size_t)k * a_k]);
            }
            for (int i = 0; i < rows; i++) {
                float *restrict acc_row = acc[i];
                for (int k = 0; k < depth; k++) {
                    float av = at[i][k];
                    const float *restrict bk = bt[k];
#pragma omp simd
                    for (int j = 0; j < cols; j++)
                        acc_row[j] = fmaf(av, bk[j], acc_row[j]);
                }
            }
        }
        for (int i = 0; i < rows; i++) {
            float *restrict o = c + (size_t)(m0 + i) * (size_t)ldc + j0;
#pragma omp simd
            for (int j = 0; j < cols; j++)
                o[j] += acc[i][j];
        }
    }
}

/* dbias[o] += Σ_n dout[n, o] over bf16 dout: bias_gradient's column blocks and double sums. */
static void bias_gradient_bf16(float *restrict dbias, const dl_bf16 *restrict dout, int N, int OC) {
    size_t work = (size_t)N * (size_t)OC;
    int threads = work >= DL_CPU_PARALLEL_MIN ? omp_get_max_threads() : 1;
    int width = dl_cpu_column_block(OC, threads);
    int blocks = (OC + width - 1) / width;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int blk = 0; blk < blocks; blk++) {
        int o0 = blk * width;
        int len = OC - o0 < width ? OC - o0 : width;
        double acc[64];
        for (int c0 = 0; c0 < len; c0 += 64) {
            int w = len - c0 < 64 ? len - c0 : 64;
            for (int j = 0; j < w; j++)
                acc[j] = 0.0;
            for (int n = 0; n < N; n++) {
                const dl_bf16 *restrict row = dout + (size_t)n * OC + o0 + c0;
#pragma omp simd
                for (int j = 0; j < w; j++)
                    acc[j] += (double)bf16_to_float(row[j]);
            }
            for (int j = 0; j < w; j++)
                dbias[o0 + c0 + j] += (float)acc[j];
        }
    }
}

dl_status dl_cpu_matmul_backward_bf16(void *state, float *dinp, float *dweight, float *dbias, const dl_bf16 *dout,
                                      const dl_bf16 *inp, const dl_bf16 *weight, int N, int C, int OC) {
    (void)state;
    size_t c = (size_t)C, oc = (size_t)OC;
    if (dinp) /* dinp[n, c] += Σ_o dout[n, o]·weight[o, c] */
        bf16_gemm_accumulate(dinp, C, dout, oc, 1, weight, c, 1, N, C, OC);
    /* dweight[o, c] += Σ_n dout[n, o]·inp[n, c] */
    bf16_gemm_accumulate(dweight, C, dout, 1, oc, inp, c, 1, OC, C, N);
    if (dbias)
        bias_gradient_bf16(dbias, dout, N, OC);
    return DL_OK;
}
