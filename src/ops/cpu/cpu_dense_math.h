/* cpu_dense_math.h — an exp that the compiler can vectorise, for softmax (xent.c) and GELU (gelu.c).
 *
 * Without -ffast-math, glibc's expf/tanhf are scalar calls, and a softmax over a 50k vocabulary spends most of its
 * time in them. dl_cpu_expf is branch-free straight-line code (range reduction, polynomial, exponent bits), so a
 * `#pragma omp simd` loop turns it into vector instructions. Accuracy: within 2 ulp of the true exp over the whole
 * float range (tests/unit/test_ops_gelu.c sweeps it); overflow gives +inf, underflow goes through the subnormals to
 * 0, NaN stays NaN.
 *
 * Method: exp(x) = 2^n · exp(r) with n = round(x/ln2) and |r| ≤ ln2/2, r computed with ln2 split in two (the FMA
 * makes n·ln2_hi exact); exp(r) by its degree-7 Taylor polynomial (truncation < 0.05 ulp on that interval); 2^n
 * applied as two factors 2^(n/2)·2^(n−n/2) so that n from −150 to 128 needs no special case. */
#ifndef DL_OPS_CPU_CPU_DENSE_MATH_H
#define DL_OPS_CPU_CPU_DENSE_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float dl_cpu_bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t dl_cpu_float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float dl_cpu_expf(float x) {
    /* Clamping keeps n in range; outside [-104, 88.8] exp is 0 or +inf in float anyway, and NaN passes through
     * (every comparison with NaN is false). */
    float xc = x > 88.8f ? 88.8f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    /* n = round(x·log2 e) by the 1.5·2^23 trick: the sum lands in [2^23, 2^24) where the float spacing is 1. */
    const float magic = 12582912.0f;
    float t = fmaf(xc, 1.44269504088896341f, magic);
    int32_t n = (int32_t)(dl_cpu_float_to_bits(t) - dl_cpu_float_to_bits(magic));
    float fn = t - magic;
    float r = fmaf(fn, -0.693147182464599609375f, xc);      /* ln2 rounded to float */
    r = fmaf(fn, 1.904654323148236e-09f, r);                 /* minus the rest of ln2 */
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t n1 = n >> 1;
    int32_t n2 = n - n1;
    float s1 = dl_cpu_bits_to_float((uint32_t)(n1 + 127) << 23);
    float s2 = dl_cpu_bits_to_float((uint32_t)(n2 + 127) << 23);
    return p * s1 * s2;
}

#endif
