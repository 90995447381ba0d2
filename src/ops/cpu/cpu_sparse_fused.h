/* cpu_sparse_fused.h — the small four-lane vector layer the CPU kernels of the fused click-model ops (ops.h,
 * "sparse, fused") share. Their prototypes are cpu_kernels.h's (the fused rows of DL_SPARSE_OPS in ops/op_list.h).
 *
 * The kernels trust their arguments: src/ops/sparse_fused.c checks the layout and the batch first.
 *
 * Vectors. Latent vectors are kpad = 4·c floats, so every loop runs over whole four-float chunks (dl_v4, GCC/clang
 * vector extensions: lane-by-lane IEEE arithmetic, loads through memcpy so no alignment is assumed). The hot cases
 * (kpad 4 and 8) have wider paths in the kernel files (AVX: both blocks of an FFM pair in one register; AVX-512: the
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

/* Lane-wise IEEE square root (correctly rounded either way). */
static inline dl_v4 dl_v4_sqrt(dl_v4 a) {
#if defined(__SSE__)
    return (dl_v4)_mm_sqrt_ps((__m128)a);
#else
    return (dl_v4){sqrtf(a[0]), sqrtf(a[1]), sqrtf(a[2]), sqrtf(a[3])};
#endif
}

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
