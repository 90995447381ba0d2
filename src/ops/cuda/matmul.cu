/* matmul.cu — linear layers on the GPU: out = inp · weightᵀ + bias through cuBLASLt (fp32, and bf16 inputs with fp32
 * accumulation and output), backward through cuBLAS GEMMs that accumulate (beta = 1) and a deterministic column sum
 * for the bias gradient.
 *
 * Row-major [N, C] · [OC, C]ᵀ is, seen column-major, outᵀ[OC, N] = W[C, OC]ᵀ · inpᵀ[C, N]: weight is operand A
 * transposed, inp operand B as is, no copies. The forward uses cuBLASLt so the bias is added in the GEMM's epilogue
 * (one pass over the output). A cuBLASLt plan (descriptors, layouts, the heuristic's algorithm) costs host
 * allocations and a heuristic query, so plans are cached per shape and pointer alignment in a small table kept in the
 * backend state: a training loop repeats its shapes, so after the first step no call allocates. When cuBLASLt offers
 * no algorithm (an unusual alignment, say) or refuses the one it offered, the call falls back to
 * cublasSgemm / cublasGemmEx and a bias kernel.
 *
 * Precision: fp32 matmuls run in full fp32 (CUBLAS_COMPUTE_32F, CUBLAS_DEFAULT_MATH: no TF32), so they agree with the
 * CPU to float rounding. DEALER_CUDA_TF32=1 lets them use TF32 tensor cores (about 1e-3 relative error, much
 * faster). cuBLAS gives the same bits on every run on the same GPU model; the bias gradient is summed in a fixed
 * order (cuda_colsum.cuh), so the whole backward is deterministic. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_colsum.cuh"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define DL_CUBLAS_WORKSPACE ((size_t)32 << 20) /* what cuBLAS recommends for Hopper */
#define DL_LT_CACHE_SIZE 64

typedef enum { LT_F32 = 0, LT_BF16 = 1 } lt_kind;

typedef struct lt_plan {
    int used;
    /* the key */
    int kind, N, C, OC, bias_epilogue, tf32;
    unsigned align_a, align_b, align_d;
    /* the plan */
    int has_algo; /* 0: cuBLASLt has no algorithm for this key; use the cuBLAS fallback */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

struct dl_cuda_lt_cache {
    lt_plan plans[DL_LT_CACHE_SIZE];
    int next; /* round-robin victim when full */
};

extern "C" dl_status dl_cuda_blas_ready(dl_cuda_state *st) {
    if (st->cublas && st->cublaslt && st->workspace && st->lt_cache)
        return DL_OK;
    if (!st->cublas) {
        cublasHandle_t h;
        DL_CUBLAS_CHECK(cublasCreate(&h));
        st->cublas = h;
        DL_CUBLAS_CHECK(cublasSetStream(h, st->stream));
        DL_CUBLAS_CHECK(cublasSetMathMode(h, st->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    }
    if (!st->cublaslt) {
        cublasLtHandle_t h;
        DL_CUBLAS_CHECK(cublasLtCreate(&h));
        st->cublaslt = h;
    }
    if (!st->workspace) {
        cudaError_t err = cudaMalloc(&st->workspace, DL_CUBLAS_WORKSPACE);
        if (err != cudaSuccess) {
            st->workspace = NULL;
            return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the %zu-byte cuBLAS workspace on GPU %d: %s",
                           DL_CUBLAS_WORKSPACE, st->device, cudaGetErrorString(err));
        }
        st->workspace_bytes = DL_CUBLAS_WORKSPACE;
        /* cuBLAS would otherwise allocate its own workspace behind our back. */
        DL_CUBLAS_CHECK(cublasSetWorkspace((cublasHandle_t)st->cublas, st->workspace, st->workspace_bytes));
    }
    if (!st->lt_cache) {
        st->lt_cache = (struct dl_cuda_lt_cache *)calloc(1, sizeof *st->lt_cache);
        if (!st->lt_cache)
            return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the cuBLASLt plan cache");
    }
    return DL_OK;
}

static void plan_destroy(lt_plan *p) {
    if (!p->used)
        return;
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->ld)
        cublasLtMatrixLayoutDestroy(p->ld);
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

extern "C" void dl_cuda_blas_release(dl_cuda_state *st) {
    if (st->lt_cache) {
        for (int i = 0; i < DL_LT_CACHE_SIZE; i++)
            plan_destroy(&st->lt_cache->plans[i]);
        free(st->lt_cache);
        st->lt_cache = NULL;
    }
    if (st->cublaslt)
        cublasLtDestroy((cublasLtHandle_t)st->cublaslt);
    if (st->cublas)
        cublasDestroy((cublasHandle_t)st->cublas);
    if (st->workspace)
        cudaFree(st->workspace);
    st->cublaslt = NULL;
    st->cublas = NULL;
    st->workspace = NULL;
    st->workspace_bytes = 0;
}

/* The largest power of two (up to 256) that divides the address: what cuBLASLt's heuristic may assume. */
static unsigned alignment_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a % al) != 0)
        al >>= 1;
    return al;
}

/* Builds the plan for `p`'s key: descriptors, layouts and the heuristic's best algorithm (if any). */
static dl_status plan_build(dl_cuda_state *st, lt_plan *p) {
    cudaDataType_t in_type = p->kind == LT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t compute =
        (p->kind == LT_F32 && p->tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    DL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    DL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    DL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (p->bias_epilogue) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bias_type = CUDA_R_32F;
        DL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        DL_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
    }
    /* Column-major views: A = weight as [C, OC] (op T), B = inp as [C, N], D = out as [OC, N]. */
    DL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, in_type, (uint64_t)p->C, (uint64_t)p->OC, (int64_t)p->C));
    DL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, in_type, (uint64_t)p->C, (uint64_t)p->N, (int64_t)p->C));
    DL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_32F, (uint64_t)p->OC, (uint64_t)p->N, (int64_t)p->OC));

    cublasLtMatmulPreference_t pref;
    DL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = st->workspace_bytes;
    uint32_t aa = p->align_a, ab = p->align_b, ad = p->align_d;
    cublasStatus_t s =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ad, sizeof ad);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof ad);
    if (s != CUBLAS_STATUS_SUCCESS) {
        cublasLtMatmulPreferenceDestroy(pref);
        return DL_FAIL(DL_ERR_DEVICE, "cublasLtMatmulPreferenceSetAttribute failed: %s", cublasGetStatusString(s));
    }
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    s = cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)st->cublaslt, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1,
                                       &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    /* No algorithm for this key (not supported, or a combination this cuBLASLt rejects) is not an error: the plain
     * cuBLAS path handles every shape and alignment. */
    p->has_algo = s == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    if (p->has_algo)
        p->algo = result.algo;
    return DL_OK;
}

/* The cached plan for this call (built on a miss). */
static dl_status plan_get(dl_cuda_state *st, lt_kind kind, int N, int C, int OC, int bias_epilogue, const void *a,
                          const void *b, const void *d, lt_plan **out) {
    struct dl_cuda_lt_cache *cache = st->lt_cache;
    unsigned aa = alignment_of(a), ab = alignment_of(b), ad = alignment_of(d);
    int tf32 = st->allow_tf32;
    for (int i = 0; i < DL_LT_CACHE_SIZE; i++) {
        lt_plan *p = &cache->plans[i];
        if (p->used && p->kind == (int)kind && p->N == N && p->C == C && p->OC == OC &&
            p->bias_epilogue == bias_epilogue && p->tf32 == tf32 && p->align_a == aa && p->align_b == ab &&
            p->align_d == ad) {
            *out = p;
            return DL_OK;
        }
    }
    int slot = -1;
    for (int i = 0; i < DL_LT_CACHE_SIZE && slot < 0; i++)
        if (!cache->plans[i].used)
            slot = i;
    if (slot < 0) {
        slot = cache->next;
        cache->next = (cache->next + 1) % DL_LT_CACHE_SIZE;
    }
    lt_plan *p = &cache->plans[slot];
    plan_destroy(p);
    p->used = 1;
    p->kind = (int)kind;
    p->N = N;
    p->C = C;
    p->OC = OC;
    p->bias_epilogue = bias_epilogue;
    p->tf32 = tf32;
    p->align_a = aa;
    p->align_b = ab;
    p->align_d = ad;
    dl_status s = plan_build(st, p);
    if (s != DL_OK) {
        plan_destroy(p);
        return s;
    }
    *out = p;
    return DL_OK;
}

__global__ void add_bias_kernel(float *out, const float *bias, size_t rows, int OC) {
    size_t total = rows * (size_t)OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        out[i] += bias[i % (size_t)OC];
}

static dl_status add_bias(dl_cuda_state *st, float *out, const float *bias, int N, int OC) {
    size_t total = (size_t)N * (size_t)OC;
    add_bias_kernel<<<dl_cuda_grid(total, DL_CUDA_THREADS), DL_CUDA_THREADS, 0, st->stream>>>(out, bias, (size_t)N,
                                                                                             OC);
    DL_CUDA_CHECK_LAUNCH("matmul add_bias");
    return DL_OK;
}

/* The shared forward: kind says whether inp/weight are fp32 or bf16. */
static dl_status matmul_forward_any(dl_cuda_state *st, lt_kind kind, float *out, const void *inp, const void *weight,
                                    const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0)
        return DL_OK;
    if (C <= 0) { /* an empty sum: out is the bias (or zero) */
        DL_CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)N * OC * sizeof(float), st->stream));
        return bias ? add_bias(st, out, bias, N, OC) : DL_OK;
    }
    DL_CHECK(dl_cuda_blas_ready(st));
    /* The epilogue reads the bias with vector loads; an oddly aligned bias gets the separate kernel instead. */
    int bias_epilogue = bias != NULL && alignment_of(bias) >= 16;
    lt_plan *p;
    DL_CHECK(plan_get(st, kind, N, C, OC, bias_epilogue, weight, inp, out, &p));
    const float one = 1.0f, zero = 0.0f;
    if (p->has_algo) {
        if (bias_epilogue)
            DL_CUBLAS_CHECK(
                cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        cublasStatus_t s = cublasLtMatmul((cublasLtHandle_t)st->cublaslt, p->desc, &one, weight, p->la, inp, p->lb,
                                          &zero, out, p->ld, out, p->ld, &p->algo, st->workspace, st->workspace_bytes,
                                          st->stream);
        if (s == CUBLAS_STATUS_SUCCESS) {
            if (bias && !bias_epilogue)
                DL_CHECK(add_bias(st, out, bias, N, OC));
            return DL_OK;
        }
        /* The heuristic offered an algorithm the call then refuses: remember, and use the plain path from now on. */
        if (s != CUBLAS_STATUS_NOT_SUPPORTED && s != CUBLAS_STATUS_INVALID_VALUE)
            return DL_FAIL(DL_ERR_DEVICE, "cublasLtMatmul failed for [%d x %d] x [%d x %d]^T: %s", N, C, OC, C,
                           cublasGetStatusString(s));
        p->has_algo = 0;
    }
    cublasHandle_t h = (cublasHandle_t)st->cublas;
    if (kind == LT_F32)
        DL_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, (const float *)weight, C,
                                    (const float *)inp, C, &zero, out, OC));
    else
        DL_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, weight, CUDA_R_16BF, C, inp,
                                     CUDA_R_16BF, C, &zero, out, CUDA_R_32F, OC, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
    return bias ? add_bias(st, out, bias, N, OC) : DL_OK;
}

extern "C" dl_status dl_cuda_matmul_forward(void *state, float *out, const float *inp, const float *weight,
                                            const float *bias, int N, int C, int OC) {
    return matmul_forward_any((dl_cuda_state *)state, LT_F32, out, inp, weight, bias, N, C, OC);
}

extern "C" dl_status dl_cuda_matmul_forward_bf16(void *state, float *out, const dl_bf16 *inp, const dl_bf16 *weight,
                                                 const float *bias, int N, int C, int OC) {
    return matmul_forward_any((dl_cuda_state *)state, LT_BF16, out, inp, weight, bias, N, C, OC);
}

/* dout[n, c] as the value the bias gradient sums. */
struct dout_value {
    const float *dout;
    int OC;
    __device__ void operator()(size_t n, int c, float v[1]) const { v[0] = dout[n * (size_t)OC + c]; }
};

extern "C" dl_status dl_cuda_matmul_backward(void *state, float *dinp, float *dweight, float *dbias, const float *dout,
                                             const float *inp, const float *weight, int N, int C, int OC) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || OC <= 0)
        return DL_OK;
    if (C > 0 && (dinp || dweight)) {
        DL_CHECK(dl_cuda_blas_ready(st));
        cublasHandle_t h = (cublasHandle_t)st->cublas;
        const float one = 1.0f;
        /* dinpᵀ[C, N] += W[C, OC] · doutᵀ[OC, N] (column-major views of the row-major buffers). */
        if (dinp)
            DL_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, C, dout, OC, &one, dinp,
                                        C));
        /* dweightᵀ[C, OC] += inpᵀ[C, N] · dout[N, OC]. */
        if (dweight)
            DL_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &one, dweight,
                                        C));
    }
    if (dbias) {
        dl_colsum_dst<1> dst = {{dbias}};
        dout_value f = {dout, OC};
        DL_CHECK(dl_cuda_colsum<1>(st, dst, N, OC, f, "matmul dbias"));
    }
    return DL_OK;
}

/* The bf16 dout[n, c], widened, as the value the bias gradient sums. */
struct dout_value_bf16 {
    const dl_bf16 *dout;
    int OC;
    __device__ void operator()(size_t n, int c, float v[1]) const { v[0] = dl_bf16_to_f32(dout[n * (size_t)OC + c]); }
};

/* Mixed precision's backward: the same two GEMMs as dl_cuda_matmul_backward with bf16 A and B (the tensor cores'
 * input), fp32 accumulation (CUBLAS_COMPUTE_32F) and fp32 C with beta = 1, so the fp32 gradients accumulate as in
 * the fp32 path. cublasGemmEx picks the cuBLASLt kernel itself for these types; unlike the forward there is no
 * epilogue to fuse (the bias gradient is our deterministic column sum), so a plan cache would save only the
 * heuristic query, which cuBLAS caches per shape already. */
extern "C" dl_status dl_cuda_matmul_backward_bf16(void *state, float *dinp, float *dweight, float *dbias,
                                                  const dl_bf16 *dout, const dl_bf16 *inp, const dl_bf16 *weight,
                                                  int N, int C, int OC) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (N <= 0 || OC <= 0)
        return DL_OK;
    if (C > 0 && (dinp || dweight)) {
        DL_CHECK(dl_cuda_blas_ready(st));
        cublasHandle_t h = (cublasHandle_t)st->cublas;
        const float one = 1.0f;
        /* dinpᵀ[C, N] += W[C, OC] · doutᵀ[OC, N] (column-major views of the row-major buffers). */
        if (dinp)
            DL_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, CUDA_R_16BF, C, dout,
                                         CUDA_R_16BF, OC, &one, dinp, CUDA_R_32F, C, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT));
        /* dweightᵀ[C, OC] += inpᵀ[C, N] · dout[N, OC]. */
        if (dweight)
            DL_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, CUDA_R_16BF, C, dout,
                                         CUDA_R_16BF, OC, &one, dweight, CUDA_R_32F, C, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT));
    }
    if (dbias) {
        dl_colsum_dst<1> dst = {{dbias}};
        dout_value_bf16 f = {dout, OC};
        DL_CHECK(dl_cuda_colsum<1>(st, dst, N, OC, f, "matmul dbias (bf16)"));
    }
    return DL_OK;
}
