/* attention.c — causal flash attention on the CPU over packed variable-length documents (FlashAttention-2 scheme).
 *
 * Layout: qkv is [N, 3, H, D] (q, k, v of a token side by side), out and dout are [N, H, D], lse is [N, H]. Each
 * document (cu_seqlens) is cut into tiles of TILE tokens counted from the document's first token, so query tiles and
 * key tiles share one grid and the only tile a causal mask cuts is the diagonal one; tiles above it are skipped, which
 * halves the work, and nothing crosses a document boundary because a document's tiles never leave it.
 *
 * Forward, one work item per (document, query tile, head): the query tile is transposed once into Qᵀ, then for each
 * key tile j up to the diagonal Sᵀ = K_j·Qᵀ is formed (keys as rows, queries as columns, so the running max m and
 * sum l of each query are vectors across the columns and need no horizontal reductions), the online softmax rescales
 * the output accumulator and O += P·V_j. Finally out = O/l and lse = m + log l. Only lse is kept for backward.
 *
 * Backward recomputes P = exp(S·scale − lse) tile by tile. The key-tile loop ("kv item", one per (document, key
 * tile, head)) owns dK_j and dV_j in its scratch: for each query tile i ≥ j it forms S = Q_i·K_jᵀ, P, dV_j += Pᵀ·dO_i,
 * dP = dO_i·V_jᵀ, dS = P∘(dP − Δ_i)·scale with Δ = rowsum(dO∘O), dK_j += dSᵀ·Q_i. dQ needs sums over key tiles,
 * which two schedules give without races or atomics:
 *   - single pass: one item per (document, head) runs every kv item of that pair in order and adds dS·K_j straight
 *     into dq as it goes (the pair is owned by one thread). Five tile products per tile pair.
 *   - two passes: kv items run in parallel, and separate "q items" per (document, query tile, head) recompute S and dP
 *     (in the transposed layout, so only Q_i and dO_i need transposing) and add dS·K_j into dq. Seven products per
 *     pair, but the work splits into tiles, which balances one long document over many threads.
 * Both add the same per-tile-pair products into dq in the same key-tile order, computed bit for bit the same way (the
 * products are FMA chains over D in the same order whichever operand is the transposed one, masked entries are exact
 * zeros in both), so the choice — made from the thread count — never changes a bit: outputs are identical for any
 * thread count. The price is that dq takes one addition per key tile, so a second backward call onto the same dqkv
 * doubles it only to rounding (dk and dv take one addition per call).
 *
 * On a diagonal tile only one triangle is needed; the kernels skip the 16-column groups and summation ranges a 6-row
 * block does not need, and partial tiles skip their padding columns (10–20% on batches of short documents).
 *
 * Work items go to threads through one atomic counter (dynamic scheduling, heaviest tiles first); each item writes
 * only its own rows, and its arithmetic does not depend on which thread runs it. Scratch is a few tiles per thread on
 * the thread's stack (161 KiB at most, sized for D = 128), whatever T is: no T×T matrix exists, nothing is allocated.
 *
 * The inner products are register-blocked micro-kernels (6 rows × up to 4 vectors of 16 floats) over a thin vector
 * layer: AVX-512 intrinsics when the compiler targets AVX-512 (the avx512 CPU variant), otherwise plain C loops over
 * 16 lanes that the compiler vectorises (the avx2 and baseline variants; define DL_ATTN_PORTABLE to force them).
 * The AVX-512 exp is a Cody–Waite reduction with a degree-7 polynomial (about 1 ulp), the loops' exp is
 * dl_cpu_expf (2 ulp) with FMA and glibc's expf without; results are deterministic for each variant but not
 * bit-identical between them (tests/unit/test_cpu_variants.c bounds the difference).
 * cblas_sgemm on 64×64×64 tiles was measured: the sgemm calls alone take about as long as this whole forward and
 * backward (per-call overhead on small tiles), so the tile products stay in these kernels (bench/results/attention.md).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "ops/cpu/cpu_attention.h"
#include "ops/cpu/cpu_dense_math.h"

#define TILE DL_CPU_ATTENTION_TILE
#define DMAX DL_CPU_ATTENTION_MAX_D
#define ATTN_INLINE static inline __attribute__((always_inline))

/* ---- the vector layer: 16 float lanes ------------------------------------------------------------------------- */

#if defined(__AVX512F__) && !defined(DL_ATTN_PORTABLE)
#include <immintrin.h>

typedef __m512 vf;
typedef __mmask16 vmask;

ATTN_INLINE vf v_zero(void) { return _mm512_setzero_ps(); }
ATTN_INLINE vf v_set1(float x) { return _mm512_set1_ps(x); }
ATTN_INLINE vf v_load(const float *p) { return _mm512_loadu_ps(p); }
ATTN_INLINE void v_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
ATTN_INLINE vmask v_mask_first(int n) { return (vmask)(n >= 16 ? 0xFFFFu : ((1u << n) - 1u)); }
ATTN_INLINE vf v_load_mask(const float *p, vmask m) { return _mm512_maskz_loadu_ps(m, p); }
ATTN_INLINE void v_store_mask(float *p, vmask m, vf x) { _mm512_mask_storeu_ps(p, m, x); }
ATTN_INLINE vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
ATTN_INLINE vf v_fms(vf a, vf b, vf c) { return _mm512_fmsub_ps(a, b, c); }
ATTN_INLINE vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
ATTN_INLINE vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
ATTN_INLINE vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
ATTN_INLINE vf v_max(vf a, vf b) { return _mm512_max_ps(a, b); }
ATTN_INLINE float v_sum(vf x) { return _mm512_reduce_add_ps(x); }

ATTN_INLINE __m512i lane_index(int base) {
    return _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                            _mm512_set1_epi32(base));
}
/* Lanes whose index base+lane is below t take `fill`. */
ATTN_INLINE vf v_fill_below(vf x, int base, int t, float fill) {
    vmask m = _mm512_cmplt_epi32_mask(lane_index(base), _mm512_set1_epi32(t));
    return _mm512_mask_mov_ps(x, m, _mm512_set1_ps(fill));
}
/* Lanes whose index base+lane is above t take `fill`. */
ATTN_INLINE vf v_fill_above(vf x, int base, int t, float fill) {
    vmask m = _mm512_cmpgt_epi32_mask(lane_index(base), _mm512_set1_epi32(t));
    return _mm512_mask_mov_ps(x, m, _mm512_set1_ps(fill));
}

/* e^x: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact reduction), e^r by a degree-7 Taylor polynomial
 * (truncation 5e-9), 2^n applied by scalef. Below −87.3 the result is 0 (no denormals; −inf gives 0), above 89 it
 * is +inf, and NaN stays NaN (max/min return their second operand when one is NaN). */
ATTN_INLINE vf v_exp(vf x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f);
    __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(lo, x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_scalef_ps(p, n));
}

#else /* portable: 16 lanes in a struct; compilers vectorise the fixed-length loops where they can */

typedef struct vf {
    float f[16];
} vf;
typedef int vmask; /* number of leading lanes in use */

#define LANES(i) for (int i = 0; i < 16; i++)
ATTN_INLINE vf v_zero(void) {
    vf r;
    LANES(i) r.f[i] = 0.0f;
    return r;
}
ATTN_INLINE vf v_set1(float x) {
    vf r;
    LANES(i) r.f[i] = x;
    return r;
}
ATTN_INLINE vf v_load(const float *p) {
    vf r;
    LANES(i) r.f[i] = p[i];
    return r;
}
ATTN_INLINE void v_store(float *p, vf x) { LANES(i) p[i] = x.f[i]; }
ATTN_INLINE vmask v_mask_first(int n) { return n >= 16 ? 16 : n; }
ATTN_INLINE vf v_load_mask(const float *p, vmask m) {
    vf r;
    LANES(i) r.f[i] = i < m ? p[i] : 0.0f;
    return r;
}
ATTN_INLINE void v_store_mask(float *p, vmask m, vf x) {
    for (int i = 0; i < m; i++)
        p[i] = x.f[i];
}
/* With FMA (the avx2 variant) the products round once, as in the AVX-512 layer, and fmaf compiles to vfmadd; without
 * it (baseline) fmaf would be a libm call per lane, so the product is rounded before the sum instead. */
#if defined(__FMA__)
ATTN_INLINE vf v_fma(vf a, vf b, vf c) {
    vf r;
    LANES(i) r.f[i] = fmaf(a.f[i], b.f[i], c.f[i]);
    return r;
}
ATTN_INLINE vf v_fms(vf a, vf b, vf c) {
    vf r;
    LANES(i) r.f[i] = fmaf(a.f[i], b.f[i], -c.f[i]);
    return r;
}
#else
ATTN_INLINE vf v_fma(vf a, vf b, vf c) {
    vf r;
    LANES(i) r.f[i] = a.f[i] * b.f[i] + c.f[i];
    return r;
}
ATTN_INLINE vf v_fms(vf a, vf b, vf c) {
    vf r;
    LANES(i) r.f[i] = a.f[i] * b.f[i] - c.f[i];
    return r;
}
#endif
ATTN_INLINE vf v_add(vf a, vf b) {
    vf r;
    LANES(i) r.f[i] = a.f[i] + b.f[i];
    return r;
}
ATTN_INLINE vf v_sub(vf a, vf b) {
    vf r;
    LANES(i) r.f[i] = a.f[i] - b.f[i];
    return r;
}
ATTN_INLINE vf v_mul(vf a, vf b) {
    vf r;
    LANES(i) r.f[i] = a.f[i] * b.f[i];
    return r;
}
/* Like x86 max: the second operand when either is NaN. */
ATTN_INLINE vf v_max(vf a, vf b) {
    vf r;
    LANES(i) r.f[i] = a.f[i] > b.f[i] ? a.f[i] : b.f[i];
    return r;
}
ATTN_INLINE float v_sum(vf x) {
    float s = 0.0f;
    LANES(i) s += x.f[i];
    return s;
}
ATTN_INLINE vf v_fill_below(vf x, int base, int t, float fill) {
    LANES(i) if (base + i < t) x.f[i] = fill;
    return x;
}
ATTN_INLINE vf v_fill_above(vf x, int base, int t, float fill) {
    LANES(i) if (base + i > t) x.f[i] = fill;
    return x;
}
/* With FMA, the branch-free exp of cpu_dense_math.h (2 ulp), which vectorises; without, glibc's expf (scalar calls,
 * but cheaper than dl_cpu_expf's fmaf calls would be there). */
ATTN_INLINE vf v_exp(vf x) {
    vf r;
#if defined(__FMA__)
    LANES(i) r.f[i] = dl_cpu_expf(x.f[i]);
#else
    LANES(i) r.f[i] = expf(x.f[i]);
#endif
    return r;
}
#undef LANES

#endif

/* ---- micro-kernels -------------------------------------------------------------------------------------------- */

/* On a diagonal tile only one triangle matters; a kernel told which skips the rest of each 6-row block:
 * LOWER, row m needs columns (or summed indices) ≤ m; UPPER, row m needs those ≥ m. */
enum { FULL = 0, LOWER = 1, UPPER = 2 };

/* C[m][0..16·NV) = Σ_{k<K} A[m·lda + k] · Bt[k·TILE + 0..16·NV) for the R rows of one block. */
ATTN_INLINE void a_block(float *restrict C, const float *restrict A, size_t lda, const float *restrict Bt, int K,
                         const int R, const int NV) {
    vf acc[6][4];
    for (int i = 0; i < R; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = v_zero();
    for (int k = 0; k < K; k++) {
        const float *b = Bt + (size_t)k * TILE;
        vf bv[4];
        for (int v = 0; v < NV; v++)
            bv[v] = v_load(b + 16 * v);
        for (int i = 0; i < R; i++) {
            vf a = v_set1(A[(size_t)i * lda + k]);
            for (int v = 0; v < NV; v++)
                acc[i][v] = v_fma(a, bv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < R; i++)
        for (int v = 0; v < NV; v++)
            v_store(C + (size_t)i * TILE + 16 * v, acc[i][v]);
}

/* R and NV as constants, so each block keeps its accumulators in registers. */
#define NV_SWITCH(CALL, R)                                                                                         \
    switch (nv) {                                                                                                  \
    case 1: CALL(R, 1); break;                                                                                     \
    case 2: CALL(R, 2); break;                                                                                     \
    case 3: CALL(R, 3); break;                                                                                     \
    default: CALL(R, 4); break;                                                                                    \
    }
#define R_SWITCH(CALL)                                                                                             \
    switch (R) {                                                                                                   \
    case 6: NV_SWITCH(CALL, 6) break;                                                                              \
    case 5: NV_SWITCH(CALL, 5) break;                                                                              \
    case 4: NV_SWITCH(CALL, 4) break;                                                                              \
    case 3: NV_SWITCH(CALL, 3) break;                                                                              \
    case 2: NV_SWITCH(CALL, 2) break;                                                                              \
    default: NV_SWITCH(CALL, 1) break;                                                                             \
    }

/* C[M × TILE] = A[M × K] · Bt[K × TILE] over the first ncols columns: A's rows are lda floats apart (rows of qkv or
 * dout used in place), Bt is a transposed tile, C a scratch tile. Each element is an FMA chain over k = 0..K-1 from
 * zero. With `diag`, 16-column groups a block does not need are zeroed instead of computed. */
static void a_kernel(float *restrict C, const float *restrict A, size_t lda, const float *restrict Bt, int M, int K,
                     int ncols, int diag) {
    const int nvec = (ncols + 15) / 16;
    for (int m = 0; m < M; m += 6) {
        const int R = M - m < 6 ? M - m : 6;
        int v0 = 0, v1 = nvec;
        if (diag == LOWER && (m + R - 1) / 16 + 1 < v1)
            v1 = (m + R - 1) / 16 + 1;
        if (diag == UPPER)
            v0 = m / 16;
        float *c = C + (size_t)m * TILE;
        for (int i = 0; i < R; i++)
            for (int v = 0; v < 4; v++)
                if (v < v0 || v >= v1)
                    v_store(c + (size_t)i * TILE + 16 * v, v_zero());
        if (v1 <= v0)
            continue;
        const int nv = v1 - v0;
        const float *a = A + (size_t)m * lda, *bt = Bt + 16 * v0;
        float *cc = c + 16 * v0;
#define A_CALL(R_, NV_) a_block(cc, a, lda, bt, K, R_, NV_)
        R_SWITCH(A_CALL)
#undef A_CALL
    }
}

/* C[m][0..16·NV) += Σ_{k<K} A[m·sm + k·sk] · B[k·ldb + 0..16·NV) for the R rows of one block; mk masks the loads
 * and stores at the end of a row of D. */
ATTN_INLINE void b_block(float *restrict C, size_t ldc, const float *restrict A, size_t sm, size_t sk,
                         const float *restrict B, size_t ldb, int K, const vmask *mk, const int R, const int NV) {
    vf acc[6][4];
    for (int i = 0; i < R; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = v_load_mask(C + (size_t)i * ldc + 16 * v, mk[v]);
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        const float *a = A + (size_t)k * sk;
        vf bv[4];
        for (int v = 0; v < NV; v++)
            bv[v] = v_load_mask(b + 16 * v, mk[v]);
        for (int i = 0; i < R; i++) {
            vf av = v_set1(a[(size_t)i * sm]);
            for (int v = 0; v < NV; v++)
                acc[i][v] = v_fma(av, bv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < R; i++)
        for (int v = 0; v < NV; v++)
            v_store_mask(C + (size_t)i * ldc + 16 * v, mk[v], acc[i][v]);
}

/* C[M × D] += A · B[K × D] with A(m, k) = A[m·sm + k·sk] (any layout of a scratch tile), B's rows ldb floats apart
 * (rows of qkv or dout used in place), C's rows ldc floats apart (a scratch tile, or rows of dqkv: nothing past D is
 * touched). Each element continues an FMA chain over k in increasing order from its value in C; with
 * `diag`, a block sums only over the k its rows need (the others multiply masked zeros). */
static void b_kernel(float *restrict C, size_t ldc, const float *restrict A, size_t sm, size_t sk,
                     const float *restrict B, size_t ldb, int M, int K, int D, int diag) {
    for (int d0 = 0; d0 < D; d0 += 64) {
        const int width = D - d0 < 64 ? D - d0 : 64;
        const int nv = (width + 15) / 16;
        vmask mk[4];
        for (int v = 0; v < 4; v++)
            mk[v] = v_mask_first(v < nv ? width - 16 * v : 0);
        for (int m = 0; m < M; m += 6) {
            const int R = M - m < 6 ? M - m : 6;
            int k0 = 0, k1 = K;
            if (diag == LOWER && m + R < k1)
                k1 = m + R;
            if (diag == UPPER)
                k0 = m;
            if (k1 <= k0)
                continue;
            float *c = C + (size_t)m * ldc + d0;
            const float *a = A + (size_t)m * sm + (size_t)k0 * sk, *b = B + (size_t)k0 * ldb + d0;
            const int kk = k1 - k0;
#define B_CALL(R_, NV_) b_block(c, ldc, a, sm, sk, b, ldb, kk, mk, R_, NV_)
            R_SWITCH(B_CALL)
#undef B_CALL
        }
    }
}
#undef R_SWITCH
#undef NV_SWITCH

/* ---- tile helpers --------------------------------------------------------------------------------------------- */

static inline int round16(int D) { return (D + 15) & ~15; }

#if defined(__AVX512F__) && !defined(DL_ATTN_PORTABLE)
/* 16 rows of 16 floats transposed in registers (row j becomes column j): pairs, then quads, then 128-bit lanes. */
ATTN_INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
}

/* dst[d·TILE + r] = src[r·ld + d] for r < n, d < D; columns r ≥ n are zeroed so they stay finite. */
static void transpose_in(float *restrict dst, const float *restrict src, size_t ld, int n, int D) {
    for (int r0 = 0; r0 < TILE; r0 += 16)
        for (int d0 = 0; d0 < D; d0 += 16) {
            const int w = D - d0 < 16 ? D - d0 : 16;
            const vmask m = v_mask_first(w);
            __m512 x[16];
            for (int i = 0; i < 16; i++)
                x[i] = r0 + i < n ? v_load_mask(src + (size_t)(r0 + i) * ld + d0, m) : v_zero();
            transpose16(x);
            for (int j = 0; j < w; j++)
                v_store(dst + (size_t)(d0 + j) * TILE + r0, x[j]);
        }
}
#else
/* dst[d·TILE + r] = src[r·ld + d] for r < n, d < D; columns r ≥ n are zeroed so they stay finite. */
static void transpose_in(float *restrict dst, const float *restrict src, size_t ld, int n, int D) {
    for (int r = 0; r < n; r++) {
        const float *s = src + (size_t)r * ld;
        for (int d = 0; d < D; d++)
            dst[(size_t)d * TILE + r] = s[d];
    }
    if (n < TILE)
        for (int d = 0; d < D; d++)
            memset(dst + (size_t)d * TILE + n, 0, (size_t)(TILE - n) * sizeof(float));
}
#endif

/* Asks for the D floats of n rows ld floats apart to be brought into L2: the next tile's rows, fetched while the
 * current tile is computed. Rows of qkv are 3·H·D floats apart, which the hardware prefetchers do not follow, and a
 * long document's rows do not stay in L2 between sweeps (about 10% at T = 4096). */
static void prefetch_rows(const float *p, size_t ld, int n, int D) {
    for (int r = 0; r < n; r++)
        for (int d = 0; d < D; d += 16)
            __builtin_prefetch(p + (size_t)r * ld + d, 0, 2);
}

/* Σ_d a[d]·b[d] in a fixed order (Δ = rowsum(dO∘O) of one query row). */
static float row_dot(const float *a, const float *b, int D) {
    vf acc = v_zero();
    for (int d0 = 0; d0 < D; d0 += 16) {
        vmask m = v_mask_first(D - d0);
        acc = v_fma(v_load_mask(a + d0, m), v_load_mask(b + d0, m), acc);
    }
    return v_sum(acc);
}

/* dst[d] += src[d]·scale for d < D. */
static void add_scaled(float *restrict dst, const float *restrict src, float scale, int D) {
    vf s = v_set1(scale);
    for (int d0 = 0; d0 < D; d0 += 16) {
        vmask m = v_mask_first(D - d0);
        v_store_mask(dst + d0, m, v_fma(v_load_mask(src + d0, m), s, v_load_mask(dst + d0, m)));
    }
}

/* Per-query log-sum-exp and Δ of a query tile, zero for the padding rows r ≥ nq. */
static void load_row_stats(float *restrict lse_t, float *restrict delta, const float *lse, const float *dout,
                           const float *out, size_t ld, int H, int nq, int D) {
    for (int r = 0; r < TILE; r++) {
        lse_t[r] = r < nq ? lse[(size_t)r * H] : 0.0f;
        delta[r] = r < nq ? row_dot(dout + (size_t)r * ld, out + (size_t)r * ld, D) : 0.0f;
    }
}

/* Forward online softmax on an Sᵀ tile (keys c < nk as rows, queries as columns; the first nvec 16-column groups),
 * in place: scores are scaled (and on the diagonal tile masked where key c > query r), the running max m and sum l
 * of each query are updated, the tile becomes P = exp(s − m_new), and alpha = exp(m_old − m_new) rescales the
 * output rows. */
static void softmax_cols_update(float *restrict st, int nk, int nvec, int diagonal, float scale, float *restrict m,
                                float *restrict l, float *restrict alpha) {
    vf sc = v_set1(scale);
    for (int v = 0; v < nvec; v++) {
        const int last = 16 * v + 15; /* rows c > last are masked in every lane of this group */
        vf m_old = v_load(m + 16 * v), mx = m_old;
        for (int c = 0; c < nk; c++) {
            if (diagonal && c > last)
                break;
            float *p = st + (size_t)c * TILE + 16 * v;
            vf s = v_mul(v_load(p), sc);
            if (diagonal)
                s = v_fill_below(s, 16 * v, c, -INFINITY);
            v_store(p, s);
            mx = v_max(mx, s);
        }
        vf sum = v_zero();
        for (int c = 0; c < nk; c++) {
            float *p = st + (size_t)c * TILE + 16 * v;
            if (diagonal && c > last) {
                v_store(p, v_zero());
                continue;
            }
            vf e = v_exp(v_sub(v_load(p), mx));
            v_store(p, e);
            sum = v_add(sum, e);
        }
        vf a = v_exp(v_sub(m_old, mx));
        v_store(alpha + 16 * v, a);
        v_store(l + 16 * v, v_fma(v_load(l + 16 * v), a, sum));
        v_store(m + 16 * v, mx);
    }
}

/* Backward probabilities on an S tile (queries r < nq as rows, keys as columns; the first nvec 16-column groups):
 * P = exp(s·scale − lse_r), exactly zero where key c > query r on the diagonal tile. probs_cols does the same
 * per-element operations, so both layouts give the same bits. */
static void probs_rows(float *restrict s, int nq, int nvec, const float *restrict lse_t, float scale, int diagonal) {
    vf sc = v_set1(scale);
    for (int r = 0; r < nq; r++) {
        vf l = v_set1(lse_t[r]);
        for (int v = 0; v < nvec; v++) {
            float *p = s + (size_t)r * TILE + 16 * v;
            if (diagonal && 16 * v > r) {
                v_store(p, v_zero());
                continue;
            }
            vf e = v_exp(v_fms(v_load(p), sc, l));
            if (diagonal)
                e = v_fill_above(e, 16 * v, r, 0.0f);
            v_store(p, e);
        }
    }
}

/* The same on an Sᵀ tile (keys c < nk as rows, queries as columns). */
static void probs_cols(float *restrict st, int nk, int nvec, const float *restrict lse_t, float scale,
                       int diagonal) {
    vf sc = v_set1(scale);
    for (int c = 0; c < nk; c++) {
        for (int v = 0; v < nvec; v++) {
            float *p = st + (size_t)c * TILE + 16 * v;
            if (diagonal && 16 * v + 15 < c) {
                v_store(p, v_zero());
                continue;
            }
            vf e = v_exp(v_fms(v_load(p), sc, v_load(lse_t + 16 * v)));
            if (diagonal)
                e = v_fill_below(e, 16 * v, c, 0.0f);
            v_store(p, e);
        }
    }
}

/* dS = P∘(dP − Δ_r)·scale in place over dP, on an S tile (rows are queries); exactly zero where masked. The softmax
 * scale is applied here once, so dK and dQ need no scaling afterwards. */
static void dscores_rows(float *restrict dp, const float *restrict p, int nq, int nvec, const float *restrict delta,
                         float scale, int diagonal) {
    vf sc = v_set1(scale);
    for (int r = 0; r < nq; r++) {
        vf dl = v_set1(delta[r]);
        for (int v = 0; v < nvec; v++) {
            size_t o = (size_t)r * TILE + 16 * v;
            if (diagonal && 16 * v > r) {
                v_store(dp + o, v_zero());
                continue;
            }
            vf ds = v_mul(v_mul(v_load(p + o), v_sub(v_load(dp + o), dl)), sc);
            if (diagonal)
                ds = v_fill_above(ds, 16 * v, r, 0.0f);
            v_store(dp + o, ds);
        }
    }
}

/* The same on an Sᵀ tile (rows are keys, Δ runs along the columns). */
static void dscores_cols(float *restrict dpt, const float *restrict pt, int nk, int nvec, const float *restrict delta,
                         float scale, int diagonal) {
    vf sc = v_set1(scale);
    for (int c = 0; c < nk; c++) {
        for (int v = 0; v < nvec; v++) {
            size_t o = (size_t)c * TILE + 16 * v;
            if (diagonal && 16 * v + 15 < c) {
                v_store(dpt + o, v_zero());
                continue;
            }
            vf ds = v_mul(v_mul(v_load(pt + o), v_sub(v_load(dpt + o), v_load(delta + 16 * v))), sc);
            if (diagonal)
                ds = v_fill_below(ds, 16 * v, c, 0.0f);
            v_store(dpt + o, ds);
        }
    }
}

/* ---- geometry and work items ---------------------------------------------------------------------------------- */

typedef struct attn_geom {
    const int32_t *cu;
    int num_seqs, H, D, Dp;
    size_t ld3; /* floats between consecutive tokens of qkv (3·H·D) */
    size_t ld;  /* floats between consecutive tokens of out, dout (H·D) */
    float scale;
} attn_geom;

static attn_geom make_geom(const int32_t *cu, int num_seqs, int H, int D) {
    attn_geom g;
    g.cu = cu;
    g.num_seqs = num_seqs;
    g.H = H;
    g.D = D;
    g.Dp = round16(D);
    g.ld = (size_t)H * (size_t)D;
    g.ld3 = 3 * g.ld;
    g.scale = 1.0f / sqrtf((float)D);
    return g;
}

static inline int doc_tiles(const attn_geom *g, int s) { return (g->cu[s + 1] - g->cu[s] + TILE - 1) / TILE; }

/* How a parallel region numbers its items: per_tile items per tile of a document, or whole_doc items per non-empty
 * document. */
typedef struct item_plan {
    int per_tile;
    int whole_doc;
} item_plan;

static inline long doc_items(const attn_geom *g, const item_plan *plan, int s) {
    if (plan->whole_doc)
        return g->cu[s + 1] > g->cu[s] ? plan->whole_doc : 0;
    return (long)doc_tiles(g, s) * plan->per_tile;
}

static long total_items(const attn_geom *g, const item_plan *plan) {
    long total = 0;
    for (int s = 0; s < g->num_seqs; s++)
        total += doc_items(g, plan, s);
    return total;
}

/* A thread's position in the flat item numbering. Items a thread takes from the shared counter only increase, so
 * the cursor only moves forward: O(documents) per thread in all. */
typedef struct doc_cursor {
    int doc;
    long base;
} doc_cursor;

static void cursor_seek(doc_cursor *cur, const attn_geom *g, const item_plan *plan, long idx) {
    for (;;) {
        long n = doc_items(g, plan, cur->doc);
        if (idx < cur->base + n)
            return;
        cur->base += n;
        cur->doc++;
    }
}

/* Takes the next item number from the shared counter. */
static inline long take_item(long *next) {
    long idx;
#pragma omp atomic capture
    idx = (*next)++;
    return idx;
}

/* ---- forward -------------------------------------------------------------------------------------------------- */

typedef struct fwd_scratch {
    _Alignas(64) float qt[DMAX * TILE]; /* Qᵀ of the query tile */
    _Alignas(64) float st[TILE * TILE]; /* Sᵀ, then Pᵀ */
    _Alignas(64) float o[TILE * DMAX];  /* output accumulator, rows Dp apart */
    _Alignas(64) float m[TILE], l[TILE], alpha[TILE];
} fwd_scratch;

static void forward_item(const attn_geom *g, float *out, float *lse, const float *qkv, int s, int it, int h,
                         fwd_scratch *w) {
    const int D = g->D, Dp = g->Dp;
    const size_t n0 = (size_t)g->cu[s];
    const int len = g->cu[s + 1] - g->cu[s];
    const int i0 = it * TILE, nq = len - i0 < TILE ? len - i0 : TILE;
    const float *qkv_h = qkv + (size_t)h * D;

    transpose_in(w->qt, qkv_h + (n0 + i0) * g->ld3, g->ld3, nq, D);
    for (int r = 0; r < TILE; r++) {
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }
    memset(w->o, 0, (size_t)nq * Dp * sizeof(float));
    for (int jt = 0; jt <= it; jt++) {
        const int j0 = jt * TILE, nk = len - j0 < TILE ? len - j0 : TILE;
        const float *k = qkv_h + (n0 + j0) * g->ld3 + g->ld;
        const float *v = k + g->ld;
        const int diag = jt == it;
        if (jt < it) {
            prefetch_rows(k + (size_t)TILE * g->ld3, g->ld3, TILE, D);
            prefetch_rows(v + (size_t)TILE * g->ld3, g->ld3, TILE, D);
        }
        a_kernel(w->st, k, g->ld3, w->qt, nk, D, nq, diag ? UPPER : FULL);
        softmax_cols_update(w->st, nk, (nq + 15) / 16, diag, g->scale, w->m, w->l, w->alpha);
        if (jt > 0)
            for (int r = 0; r < nq; r++) {
                vf a = v_set1(w->alpha[r]);
                for (int d0 = 0; d0 < Dp; d0 += 16)
                    v_store(w->o + (size_t)r * Dp + d0, v_mul(v_load(w->o + (size_t)r * Dp + d0), a));
            }
        /* O[r] += Σ_c Pᵀ[c][r]·V[c] */
        b_kernel(w->o, (size_t)Dp, w->st, 1, TILE, v, g->ld3, nq, nk, D, diag ? LOWER : FULL);
    }
    for (int r = 0; r < nq; r++) {
        float *dst = out + (n0 + i0 + r) * g->ld + (size_t)h * D;
        vf inv = v_set1(1.0f / w->l[r]);
        for (int d0 = 0; d0 < D; d0 += 16)
            v_store_mask(dst + d0, v_mask_first(D - d0), v_mul(v_load(w->o + (size_t)r * Dp + d0), inv));
        lse[(n0 + i0 + r) * g->H + h] = w->m[r] + logf(w->l[r]);
    }
}

dl_status dl_cpu_attention_forward(void *state, float *out, float *lse, const float *qkv, const int32_t *cu_seqlens,
                                   int num_seqs, int N, int H, int D) {
    (void)state;
    (void)N;
    const attn_geom g = make_geom(cu_seqlens, num_seqs, H, D);
    /* item = (document, rank, head), rank 0 the last (heaviest) query tile */
    const item_plan plan = {.per_tile = H, .whole_doc = 0};
    const long total = total_items(&g, &plan);
    long next = 0;
#pragma omp parallel if (total > 1)
    {
        fwd_scratch w;
        doc_cursor cur = {0, 0};
        for (;;) {
            long idx = take_item(&next);
            if (idx >= total)
                break;
            cursor_seek(&cur, &g, &plan, idx);
            long local = idx - cur.base;
            int rank = (int)(local / H), h = (int)(local % H);
            forward_item(&g, out, lse, qkv, cur.doc, doc_tiles(&g, cur.doc) - 1 - rank, h, &w);
        }
    }
    return DL_OK;
}

/* ---- backward ------------------------------------------------------------------------------------------------- */

typedef struct kv_scratch {
    _Alignas(64) float kt[DMAX * TILE]; /* K_jᵀ */
    _Alignas(64) float vt[DMAX * TILE]; /* V_jᵀ */
    _Alignas(64) float s[TILE * TILE];  /* S, then P (queries as rows) */
    _Alignas(64) float dp[TILE * TILE]; /* dP, then dS */
    _Alignas(64) float dk[TILE * DMAX]; /* dK_j accumulator, rows Dp apart */
    _Alignas(64) float dv[TILE * DMAX]; /* dV_j accumulator */
    _Alignas(64) float lse[TILE], delta[TILE];
} kv_scratch;

typedef struct q_scratch {
    _Alignas(64) float qt[DMAX * TILE];  /* Q_iᵀ */
    _Alignas(64) float dot[DMAX * TILE]; /* dO_iᵀ */
    _Alignas(64) float st[TILE * TILE];  /* Sᵀ, then Pᵀ */
    _Alignas(64) float dpt[TILE * TILE]; /* dPᵀ, then dSᵀ */
    _Alignas(64) float lse[TILE], delta[TILE];
} q_scratch;

typedef union bwd_scratch {
    kv_scratch kv;
    q_scratch q;
} bwd_scratch;

typedef struct bwd_args {
    float *dqkv;
    const float *dout, *qkv, *out, *lse;
} bwd_args;

/* Key tile jt of document s, head h: dK_j and dV_j over every query tile at or below the diagonal; with_dq also adds
 * each pair's dS·K_j into dq (the single-pass scheme, which needs the whole (document, head) on this thread). */
static void kv_item(const attn_geom *g, const bwd_args *a, int s, int jt, int h, int with_dq, kv_scratch *w) {
    const int D = g->D, Dp = g->Dp, H = g->H;
    const size_t n0 = (size_t)g->cu[s];
    const int len = g->cu[s + 1] - g->cu[s];
    const int ntiles = (len + TILE - 1) / TILE;
    const int j0 = jt * TILE, nk = len - j0 < TILE ? len - j0 : TILE;
    const size_t hd = (size_t)h * D;
    const float *k = a->qkv + (n0 + j0) * g->ld3 + g->ld + hd;
    const float *v = k + g->ld;

    transpose_in(w->kt, k, g->ld3, nk, D);
    transpose_in(w->vt, v, g->ld3, nk, D);
    memset(w->dk, 0, (size_t)nk * Dp * sizeof(float));
    memset(w->dv, 0, (size_t)nk * Dp * sizeof(float));
    for (int it = jt; it < ntiles; it++) {
        const int i0 = it * TILE, nq = len - i0 < TILE ? len - i0 : TILE;
        const size_t row = n0 + i0;
        const float *q = a->qkv + row * g->ld3 + hd;
        const float *dout = a->dout + row * g->ld + hd;
        if (it + 1 < ntiles) {
            const size_t next = row + TILE;
            const int nn = len - i0 - TILE < TILE ? len - i0 - TILE : TILE;
            prefetch_rows(a->qkv + next * g->ld3 + hd, g->ld3, nn, D);
            prefetch_rows(a->dout + next * g->ld + hd, g->ld, nn, D);
            prefetch_rows(a->out + next * g->ld + hd, g->ld, nn, D);
            if (with_dq)
                prefetch_rows(a->dqkv + next * g->ld3 + hd, g->ld3, nn, D);
        }
        load_row_stats(w->lse, w->delta, a->lse + row * H + h, dout, a->out + row * g->ld + hd, g->ld, H, nq, D);
        const int diag = it == jt, nvec = (nk + 15) / 16;
        a_kernel(w->s, q, g->ld3, w->kt, nq, D, nk, diag ? LOWER : FULL);
        probs_rows(w->s, nq, nvec, w->lse, g->scale, diag);
        /* dV[c] += Σ_r P[r][c]·dO[r] */
        b_kernel(w->dv, (size_t)Dp, w->s, 1, TILE, dout, g->ld, nk, nq, D, diag ? UPPER : FULL);
        a_kernel(w->dp, dout, g->ld, w->vt, nq, D, nk, diag ? LOWER : FULL);
        dscores_rows(w->dp, w->s, nq, nvec, w->delta, g->scale, diag);
        /* dK[c] += Σ_r dS[r][c]·Q[r] */
        b_kernel(w->dk, (size_t)Dp, w->dp, 1, TILE, q, g->ld3, nk, nq, D, diag ? UPPER : FULL);
        if (with_dq) {
            /* dq[r] += Σ_c dS[r][c]·K[c], straight into dqkv */
            b_kernel(a->dqkv + row * g->ld3 + hd, g->ld3, w->dp, TILE, 1, k, g->ld3, nq, nk, D, diag ? LOWER : FULL);
        }
    }
    float *dk_out = a->dqkv + (n0 + j0) * g->ld3 + g->ld + hd;
    float *dv_out = dk_out + g->ld;
    for (int c = 0; c < nk; c++) {
        add_scaled(dk_out + (size_t)c * g->ld3, w->dk + (size_t)c * Dp, 1.0f, D);
        add_scaled(dv_out + (size_t)c * g->ld3, w->dv + (size_t)c * Dp, 1.0f, D);
    }
}

/* Query tile it of document s, head h (two-pass scheme): recomputes Sᵀ, Pᵀ, dPᵀ, dSᵀ against every key tile up to
 * the diagonal, in the same order and with the same arithmetic as kv_item, and adds each pair's dS·K_j into dq. */
static void q_item(const attn_geom *g, const bwd_args *a, int s, int it, int h, q_scratch *w) {
    const int D = g->D, H = g->H;
    const size_t n0 = (size_t)g->cu[s];
    const int len = g->cu[s + 1] - g->cu[s];
    const int i0 = it * TILE, nq = len - i0 < TILE ? len - i0 : TILE;
    const size_t hd = (size_t)h * D, row = n0 + i0;
    const float *dout = a->dout + row * g->ld + hd;

    transpose_in(w->qt, a->qkv + row * g->ld3 + hd, g->ld3, nq, D);
    transpose_in(w->dot, dout, g->ld, nq, D);
    load_row_stats(w->lse, w->delta, a->lse + row * H + h, dout, a->out + row * g->ld + hd, g->ld, H, nq, D);
    float *dq_rows = a->dqkv + row * g->ld3 + hd;
    for (int jt = 0; jt <= it; jt++) {
        const int j0 = jt * TILE, nk = len - j0 < TILE ? len - j0 : TILE;
        const float *k = a->qkv + (n0 + j0) * g->ld3 + g->ld + hd;
        const float *v = k + g->ld;
        const int diag = jt == it, nvec = (nq + 15) / 16;
        if (jt < it) {
            prefetch_rows(k + (size_t)TILE * g->ld3, g->ld3, TILE, D);
            prefetch_rows(v + (size_t)TILE * g->ld3, g->ld3, TILE, D);
        }
        a_kernel(w->st, k, g->ld3, w->qt, nk, D, nq, diag ? UPPER : FULL);
        probs_cols(w->st, nk, nvec, w->lse, g->scale, diag);
        a_kernel(w->dpt, v, g->ld3, w->dot, nk, D, nq, diag ? UPPER : FULL);
        dscores_cols(w->dpt, w->st, nk, nvec, w->delta, g->scale, diag);
        /* dQ[r] += Σ_c dSᵀ[c][r]·K[c] */
        b_kernel(dq_rows, g->ld3, w->dpt, 1, TILE, k, g->ld3, nq, nk, D, diag ? LOWER : FULL);
    }
}

/* Whether the single pass (one item per (document, head)) keeps `threads` threads busy: its biggest item, in tile
 * pairs, must not exceed the even share of the total by much. It does 5/7 of the two-pass work. */
static int single_pass_balances(const attn_geom *g, int threads) {
    if (threads <= 1)
        return 1;
    double total = 0, biggest = 0;
    for (int s = 0; s < g->num_seqs; s++) {
        double n = doc_tiles(g, s), pairs = n * (n + 1) / 2;
        total += pairs * g->H;
        if (pairs > biggest)
            biggest = pairs;
    }
    return biggest * threads <= 1.25 * total;
}

dl_status dl_cpu_attention_backward(void *state, float *dqkv, const float *dout, const float *qkv, const float *out,
                                    const float *lse, const int32_t *cu_seqlens, int num_seqs, int N, int H, int D) {
    (void)state;
    (void)N;
    const attn_geom g = make_geom(cu_seqlens, num_seqs, H, D);
    const bwd_args a = {dqkv, dout, qkv, out, lse};
    const int single = single_pass_balances(&g, omp_get_max_threads());
    /* single pass: item = (document, head). Two passes: item = (document, rank, pass, head); rank k pairs the kv item
     * of key tile k with the q item of query tile ntiles-1-k, both k..ntiles-1 tile pairs, heaviest first. dq rows
     * (q items) and dk/dv rows (kv items) are disjoint, so both kinds share one queue without a barrier. */
    const item_plan plan = single ? (item_plan){.per_tile = 0, .whole_doc = H} : (item_plan){.per_tile = 2 * H};
    const long total = total_items(&g, &plan);
    long next = 0;
#pragma omp parallel if (total > 1)
    {
        bwd_scratch w;
        doc_cursor cur = {0, 0};
        for (;;) {
            long idx = take_item(&next);
            if (idx >= total)
                break;
            cursor_seek(&cur, &g, &plan, idx);
            const int s = cur.doc, ntiles = doc_tiles(&g, s);
            const long local = idx - cur.base;
            if (single) {
                for (int jt = 0; jt < ntiles; jt++)
                    kv_item(&g, &a, s, jt, (int)local, 1, &w.kv);
            } else {
                const int rank = (int)(local / (2 * H)), pass = (int)(local / H % 2), h = (int)(local % H);
                if (pass == 0)
                    kv_item(&g, &a, s, rank, h, 0, &w.kv);
                else
                    q_item(&g, &a, s, ntiles - 1 - rank, h, &w.q);
            }
        }
    }
    return DL_OK;
}

size_t dl_cpu_attention_scratch_forward(void) { return sizeof(fwd_scratch); }
size_t dl_cpu_attention_scratch_backward(void) { return sizeof(bwd_scratch); }
