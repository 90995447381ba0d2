/* rope.c — rotary position embedding (GPT-NeoX layout) on CPU, forward and backward.
 *
 * Element i of a head (i < D/2) is paired with element i + D/2 and the pair is rotated by the angle
 * positions[n]·theta^(-2i/D). Positions are given per token, so a packed batch restarts them at every document and
 * nothing else needs to know about documents.
 *
 * The angle is formed and reduced modulo 2π in double, then sincosf runs on the reduced value: a float product
 * pos·freq would already be off by 5e-4 rad at position 8192. The cos/sin of a token are computed once for all its
 * heads, frequencies in chunks of 64 so the table stays on the stack for any D. The rotation loop reads both members
 * of a pair before writing either, so out may be inp (rotating q and k in place inside the qkv buffer). Backward
 * applies the transposed rotation (the inverse) and adds; called in place (dinp == dout) it overwrites instead, which
 * is how the model turns the gradient of the rotated q and k into that of the unrotated ones without a copy. */
#include <math.h>

#include "ops/cpu/cpu_dense.h"

enum { ROPE_CHUNK = 64 };

static dl_status check_positions(const char *op, const int32_t *positions, int N) {
    for (int n = 0; n < N; n++)
        if (positions[n] < 0)
            return DL_FAIL(DL_ERR_INVALID, "%s: positions[%d] = %d is negative", op, n, (int)positions[n]);
    return DL_OK;
}

/* Frequencies theta^(-2i/D) for i = i0 .. i0+m-1. */
static void chunk_frequencies(double *freq, int i0, int m, int D, float theta) {
    double log_theta = log((double)theta);
    for (int i = 0; i < m; i++)
        freq[i] = exp(-2.0 * (double)(i0 + i) / (double)D * log_theta);
}

/* cos and sin of pos·freq[i], reduced to [-π, π] in double before the float evaluation. */
static void chunk_angles(float *cs, float *sn, const double *freq, int m, int32_t pos) {
    const double two_pi = 6.283185307179586476925286766559;
    for (int i = 0; i < m; i++) {
        double a = (double)pos * freq[i];
        a -= two_pi * nearbyint(a / two_pi);
        sincosf((float)a, &sn[i], &cs[i]);
    }
}

/* Forward: out = R inp (overwrite). Backward: out += Rᵀ inp (accumulate), or out = Rᵀ out when out == inp. */
static void rope_apply(float *out, const float *inp, const int32_t *positions, int N, int H, int D, int stride,
                       float theta, int backward) {
    int half = D / 2;
    int in_place = out == inp;
    size_t work = (size_t)N * (size_t)H * (size_t)D;
    for (int i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
        int m = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
        double freq[ROPE_CHUNK];
        chunk_frequencies(freq, i0, m, D, theta);
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
        for (int n = 0; n < N; n++) {
            float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
            chunk_angles(cs, sn, freq, m, positions[n]);
            for (int h = 0; h < H; h++) {
                size_t base = (size_t)n * (size_t)stride + (size_t)h * (size_t)D + (size_t)i0;
                const float *x1 = inp + base, *x2 = inp + base + half;
                float *y1 = out + base, *y2 = out + base + half;
                if (!backward) {
#pragma omp simd
                    for (int i = 0; i < m; i++) {
                        float a = x1[i], b = x2[i];
                        y1[i] = a * cs[i] - b * sn[i];
                        y2[i] = a * sn[i] + b * cs[i];
                    }
                } else if (in_place) {
#pragma omp simd
                    for (int i = 0; i < m; i++) {
                        float a = x1[i], b = x2[i];
                        y1[i] = a * cs[i] + b * sn[i];
                        y2[i] = b * cs[i] - a * sn[i];
                    }
                } else {
#pragma omp simd
                    for (int i = 0; i < m; i++) {
                        float a = x1[i], b = x2[i];
                        float g1 = a * cs[i] + b * sn[i];
                        float g2 = b * cs[i] - a * sn[i];
                        y1[i] += g1;
                        y2[i] += g2;
                    }
                }
            }
        }
    }
}

dl_status dl_cpu_rope_forward(void *state, float *out, const float *inp, const int32_t *positions, int N, int H,
                              int D, int stride, float theta) {
    (void)state;
    DL_CHECK(check_positions("rope_forward", positions, N));
    rope_apply(out, inp, positions, N, H, D, stride, theta, 0);
    return DL_OK;
}

dl_status dl_cpu_rope_backward(void *state, float *dinp, const float *dout, const int32_t *positions, int N, int H,
                               int D, int stride, float theta) {
    (void)state;
    DL_CHECK(check_positions("rope_backward", positions, N));
    rope_apply(dinp, dout, positions, N, H, D, stride, theta, 1);
    return DL_OK;
}
