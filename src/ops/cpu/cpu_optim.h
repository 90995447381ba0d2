/* cpu_optim.h — the small vector layer the CPU optimizer steps share (dl_cpu_optim_ops, and the AdaGrad row update
 * of the sparse family). Their prototypes are cpu_kernels.h's (the DL_OPTIM_OPS rows of ops/op_list.h).
 *
 * The kernels trust their arguments: src/ops/optim.c and src/ops/sparse.c check them before dispatching.
 *
 * Why a vector layer: GCC vectorises sqrtf only under -fno-math-errno, which the build does not set (and a
 * per-function optimize attribute does not reach it), so the AdamW and AdaGrad loops would run one element at a
 * time. Their bodies are therefore written once with the macros below (AVX-512, AVX, or nothing) and once in scalar
 * C with the same operations in the same order. IEEE add, multiply, divide and sqrt round identically in both, and
 * -std=c17 turns off FMA contraction, so the vector and scalar paths agree bit for bit and a result never depends
 * on where a thread's slice begins. */
#ifndef DL_OPS_CPU_CPU_OPTIM_H
#define DL_OPS_CPU_CPU_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "ops/cpu/cpu_kernels.h"

/* GCC contracts a·b + c into an FMA only when asked (-std=c17 defaults to -ffp-contract=off); clang does so by
 * default, which would make vector and scalar paths round differently. Every file including this header is off. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define DL_VW 16
typedef __m512 dl_vf;
#define dl_v_load(p) _mm512_loadu_ps(p)
#define dl_v_store(p, a) _mm512_storeu_ps((p), (a))
#define dl_v_set1(x) _mm512_set1_ps(x)
#define dl_v_add(a, b) _mm512_add_ps((a), (b))
#define dl_v_sub(a, b) _mm512_sub_ps((a), (b))
#define dl_v_mul(a, b) _mm512_mul_ps((a), (b))
#define dl_v_div(a, b) _mm512_div_ps((a), (b))
#define dl_v_sqrt(a) _mm512_sqrt_ps(a)
#elif defined(__AVX__)
#define DL_VW 8
typedef __m256 dl_vf;
#define dl_v_load(p) _mm256_loadu_ps(p)
#define dl_v_store(p, a) _mm256_storeu_ps((p), (a))
#define dl_v_set1(x) _mm256_set1_ps(x)
#define dl_v_add(a, b) _mm256_add_ps((a), (b))
#define dl_v_sub(a, b) _mm256_sub_ps((a), (b))
#define dl_v_mul(a, b) _mm256_mul_ps((a), (b))
#define dl_v_div(a, b) _mm256_div_ps((a), (b))
#define dl_v_sqrt(a) _mm256_sqrt_ps(a)
#else
#define DL_VW 0 /* scalar only */
#endif

/* Below this many elements an elementwise step runs on the calling thread: waking the team costs more. */
#define DL_CPU_PARALLEL_MIN ((size_t)1 << 15)

/* Thread t's slice [*lo, *hi) of n elements split into nt contiguous parts whose starts are multiples of `align`. */
static inline void dl_cpu_slice(size_t n, int t, int nt, size_t align, size_t *lo, size_t *hi) {
    size_t blocks = (n + align - 1) / align;
    size_t b0 = blocks * (size_t)t / (size_t)nt, b1 = blocks * (size_t)(t + 1) / (size_t)nt;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

#endif
