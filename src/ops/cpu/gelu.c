/* gelu.c — GELU, tanh approximation, on CPU: gelu(x) = 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³).
 *
 * The kernel uses the identity 1 + tanh(u) = 2·σ(2u) (σ the logistic function), so
 *     gelu(x)  = x·σ(2u) = x / (1 + e),  e = exp(−2u),
 *     gelu'(x) = σ(2u) + 2·x·σ(2u)·(1 − σ(2u))·u',  u' = √(2/π)·(1 + 3·0.044715·x²),
 * which is the derivative of the same tanh formula, exactly, in exact arithmetic. One exp replaces tanh, and
 * dl_cpu_expf vectorises where tanhf (a libm call) does not. 1 − σ is formed as e·σ rather than by subtraction.
 * Beyond |2u| > 88, σ(2u) is 0 or 1 to float precision, so gelu is ∓0 or x and gelu' is 0 or 1, and those values
 * are selected outright: there x³ may overflow and the formulas would give 0·inf.
 * Elementwise, so out may be inp and dinp may be dout. */
#include "ops/cpu/cpu_dense.h"
#include "ops/cpu/cpu_dense_math.h"

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_A 0.044715f

dl_status dl_cpu_gelu_forward(void *state, float *out, const float *inp, size_t n) {
    (void)state;
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + GELU_A * x * x * x);
        float z = -2.0f * u;
        float e = dl_cpu_expf(z > 88.0f ? 88.0f : z);
        out[i] = z > 88.0f ? 0.0f * x : x / (1.0f + e); /* σ(2u) < e^-88: gelu is ∓0 in float */
    }
    return DL_OK;
}

dl_status dl_cpu_gelu_backward(void *state, float *dinp, const float *inp, const float *dout, size_t n) {
    (void)state;
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float x2 = x * x;
        float u = GELU_K * (x + GELU_A * x2 * x);
        float du = GELU_K * (1.0f + 3.0f * GELU_A * x2);
        float z = -2.0f * u;
        float e = dl_cpu_expf(z > 88.0f ? 88.0f : z);
        float s = 1.0f / (1.0f + e); /* σ(2u) */
        float s1 = e * s;            /* 1 − σ(2u) */
        float grad = s + 2.0f * x * s * s1 * du;
        /* Past |2u| = 88 the derivative is 0 or 1 in float; x³ may have overflowed, so do not compute 0·inf. */
        grad = z > 88.0f ? 0.0f : grad;
        grad = z < -88.0f ? 1.0f : grad;
        dinp[i] += dout[i] * grad;
    }
    return DL_OK;
}
