/* cpu_sparse.h — the helpers the CPU kernels of the sparse family share (embedding_bag.c, fm.c, ffm.c; the
 * AdaGrad row update is adagrad.c's, the fused click tables have cpu_sparse_fused.h). Their prototypes are
 * cpu_kernels.h's (the DL_SPARSE_OPS rows of ops/op_list.h).
 *
 * The kernels trust their arguments: src/ops/sparse.c checks sizes, CSR offsets, row ids and fields first.
 *
 * Determinism of the scatter-adds. Backward passes add into table rows that several batch rows may share. Rather
 * than float atomics (whose order changes from run to run), each thread owns a contiguous range of table rows,
 * walks the whole batch in order and applies only the contributions to its own rows. Every table row therefore
 * receives its contributions in batch order, whatever the number of threads: results are bit-identical across
 * runs and across thread counts. The price is that each thread reads all the indices (4 bytes per entry), which
 * is small next to the kpad-wide updates. Hashed feature ids spread evenly over the table, so the row ranges carry
 * similar work.
 *
 * Latent vectors are kpad floats of which the first k are real; the padding is zero and stays zero (every update
 * adds a product with a zero padding lane). Inner loops run over all kpad lanes, so they vectorise without tails,
 * and dot products accumulate into eight fixed lanes folded in a fixed tree at the end: zero padding then adds
 * exact zeros and a model gives the same results for any kpad ≥ k. */
#ifndef DL_OPS_CPU_CPU_SPARSE_H
#define DL_OPS_CPU_CPU_SPARSE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"

/* GCC contracts a·b + c into an FMA only when asked (-std=c17 defaults to -ffp-contract=off); clang does so by
 * default, which would make vector and scalar paths round differently. Every file including this header is off. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* Below about this many flops a sparse kernel runs on the calling thread. */
#define DL_CPU_SPARSE_PARALLEL_MIN ((size_t)1 << 14)

/* The table rows [*lo, *hi) that thread t of nt owns in a backward pass. */
static inline void dl_cpu_owned_rows(int64_t num_rows, int t, int nt, int64_t *lo, int64_t *hi) {
    *lo = num_rows * t / nt;
    *hi = num_rows * (t + 1) / nt;
}

/* Eight float lanes, through the vector extension GCC and clang share: arithmetic is lane by lane with IEEE
 * rounding, exactly as the scalar code would do it (and no FMA contraction under -std=c17), but the compiler no
 * longer has to prove that a gradient row and a latent row do not overlap before it uses vector instructions, which
 * it failed to do for these loops. Loads and stores go through memcpy, so no alignment is assumed. */
typedef float dl_f8 __attribute__((vector_size(32)));
/* Without AVX (the baseline variant) GCC and clang warn that passing or returning a 32-byte vector would change the
 * calling convention; these helpers are static, so caller and callee are always compiled with the same flags and
 * never meet across an ABI boundary: the warning does not apply. */
#if defined(__GNUC__) && !defined(__AVX__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

static inline dl_f8 dl_f8_load(const float *p) {
    dl_f8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void dl_f8_store(float *p, dl_f8 v) { memcpy(p, &v, sizeof v); }

/* ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)): the one order in which the kernels fold their eight lanes. */
static inline float dl_f8_fold(dl_f8 v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

#endif
