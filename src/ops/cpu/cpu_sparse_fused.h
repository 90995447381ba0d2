/* cpu_sparse_fused.h — the small four-lane vector layer the CPU kernels of the fused click-model ops (ops.h,
 * "sparse, fused") share. Their prototypes are cpu_kernels.h's (the fused rows of DL_SPARSE_OPS in ops/op_list.h).
 *
 * The kernels trust their arguments: src/ops/sparse_fused.c checks the layout and the batch first.
 *
 * Vectors. Latent vectors are kpad = 4·c floats, so every loop runs over whole four-float chunks (dl_v4, GCC/clang
 * vector extensions: lane-by-lane IEEE arithmetic, loads through memcpy so no alignment is assumed). The hot cases
 * (kpad 4 and 8) have wider paths in the kernel files (AVX2: both blocks of an FFM pair in one register; AVX-512: the
 * same for kpad 8); a build picks one path per kpad at compile time, so every mode of a model (replicated tables,
 * gathered compact tables) runs the same arithmetic. */
#ifndef DL_OPS_CPU_CPU_SPARSE_FUSED_H
#define DL_OPS_CPU_CPU_SPARSE_FUSED_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#if defined(__SSE__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef float dl_v4 __attribute__((vector_size(16)));

static inline dl_v4 dl_v4_load(const float *p) {
    dl_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void dl_v4_store(float *p, dl_v4 v) { memcpy(p, &v, sizeof v); }

static inline dl_v4 dl_v4_set1(float x) { return (dl_v4){x, x, x, x}; }

/* AdaGrad's 1/√G in every click kernel (w −= η·g·rsqrt(G)): a first guess made from G's bits, refined by two
 * Newton steps y ← y·(1.5 − (G/2)·y²).
 *  - Not the exact 1/√G: a square root and a division per lane cost as much as the rest of an FFM pair update
 *    (measured, kpad 4, one shuffled epoch of 1M rows on one core: 2.85 s → 2.40 s).
 *  - Not the CPU's reciprocal-square-root instruction, as libffm uses: its 12-bit answer comes from a table that
 *    differs between Intel and AMD, so a run would not repeat on another machine. These are IEEE multiplies and
 *    subtractions in a fixed order (no contraction: this header turns it off for clang, GCC's ISO mode never
 *    contracts), so the scalar, four-lane, AVX and AVX-512 forms and the CUDA kernel give the same bits.
 *  - Relative error below 5e-6 (libffm's: 3.7e-4) for every positive normal G, checked exhaustively over two
 *    binades (the error repeats with period 4 in G) by test_ffm.c. G starts at optim.adagrad_init, which the model
 *    requires to be a normal float, and only grows. */
#define DL_CLICK_RSQRT_MAGIC 0x5f375a86u

static inline float dl_click_rsqrt(float G) {
    uint32_t bits;
    memcpy(&bits, &G, sizeof bits);
    bits = DL_CLICK_RSQRT_MAGIC - (bits >> 1);
    float y;
    memcpy(&y, &bits, sizeof y);
    const float half = G * 0.5f;
    y = y * (1.5f - half * (y * y));
    return y * (1.5f - half * (y * y));
}

static inline dl_v4 dl_v4_click_rsqrt(dl_v4 G) {
    typedef uint32_t dl_u4 __attribute__((vector_size(16)));
    dl_u4 bits;
    memcpy(&bits, &G, sizeof bits);
    bits = (dl_u4){DL_CLICK_RSQRT_MAGIC, DL_CLICK_RSQRT_MAGIC, DL_CLICK_RSQRT_MAGIC, DL_CLICK_RSQRT_MAGIC} - (bits >> 1);
    dl_v4 y;
    memcpy(&y, &bits, sizeof y);
    const dl_v4 half = G * dl_v4_set1(0.5f), three_halves = dl_v4_set1(1.5f);
    y = y * (three_halves - half * (y * y));
    return y * (three_halves - half * (y * y));
}

#if defined(__AVX2__)
static inline __m256 dl_m256_click_rsqrt(__m256 G) {
    __m256 y = _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_set1_epi32((int)DL_CLICK_RSQRT_MAGIC),
                                                    _mm256_srli_epi32(_mm256_castps_si256(G), 1)));
    const __m256 half = _mm256_mul_ps(G, _mm256_set1_ps(0.5f)), three_halves = _mm256_set1_ps(1.5f);
    y = _mm256_mul_ps(y, _mm256_sub_ps(three_halves, _mm256_mul_ps(half, _mm256_mul_ps(y, y))));
    return _mm256_mul_ps(y, _mm256_sub_ps(three_halves, _mm256_mul_ps(half, _mm256_mul_ps(y, y))));
}
#endif

#if defined(__AVX512F__)
static inline __m512 dl_m512_click_rsqrt(__m512 G) {
    __m512 y = _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_set1_epi32((int)DL_CLICK_RSQRT_MAGIC),
                                                    _mm512_srli_epi32(_mm512_castps_si512(G), 1)));
    const __m512 half = _mm512_mul_ps(G, _mm512_set1_ps(0.5f)), three_halves = _mm512_set1_ps(1.5f);
    y = _mm512_mul_ps(y, _mm512_sub_ps(three_halves, _mm512_mul_ps(half, _mm512_mul_ps(y, y))));
    return _mm512_mul_ps(y, _mm512_sub_ps(three_halves, _mm512_mul_ps(half, _mm512_mul_ps(y, y))));
}
#endif

/* (l0 + l1) + (l2 + l3). */
static inline float dl_v4_fold(dl_v4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

/* -y·σ(-y·t) with y = ±1: the logloss gradient with respect to the logit, without overflow for any t. */
static inline float dl_click_kappa(float t, float label) {
    float y = label > 0.0f ? 1.0f : -1.0f;
    float z = -y * t;
    float s = z >= 0.0f ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
    return -y * s;
}

/* Below this many table bytes (about one core's L2) the rows a batch touches sit in cache already and prefetching
 * is pure overhead; above it, even an L3-resident table gains from asking early (measured: ~5 % at 6 MB, more on
 * tables that live in DRAM). */
#define DL_CLICK_PREFETCH_MIN_BYTES ((size_t)1 << 20)

/* Rows of a batch per thread below which the sgd kernels stay on the calling thread. */
#define DL_CLICK_ROWS_PER_THREAD 8

#endif
