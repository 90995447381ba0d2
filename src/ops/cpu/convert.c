/* convert.c — fp32 ↔ bf16 on CPU.
 *
 * bf16 is the high half of an fp32, so widening is a 16-bit shift. Narrowing rounds to nearest, ties to even: add
 * 0x7FFF plus the lowest kept bit, then drop the low half; a carry into the exponent is the correct rounding up,
 * including to ±inf past the largest bf16. NaN must stay NaN, which plain rounding would not guarantee (a payload
 * only in the low bits would truncate to inf, and the carry could reach the sign), so NaN keeps its sign and high
 * payload bits and gets the quiet bit set. Both loops are branch-free and vectorise. */
#include "ops/cpu/cpu_dense.h"
#include "ops/cpu/cpu_dense_math.h"

static inline dl_bf16 to_bf16(float f) {
    uint32_t u = dl_cpu_float_to_bits(f);
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    uint32_t nan = (u >> 16) | 0x0040u;
    int is_nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    return (dl_bf16)(is_nan ? nan : rounded);
}

dl_status dl_cpu_f32_to_bf16(void *state, dl_bf16 *out, const float *inp, size_t n) {
    (void)state;
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = to_bf16(inp[i]);
    return DL_OK;
}

dl_status dl_cpu_bf16_to_f32(void *state, float *out, const dl_bf16 *inp, size_t n) {
    (void)state;
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = dl_cpu_bits_to_float((uint32_t)inp[i] << 16);
    return DL_OK;
}
