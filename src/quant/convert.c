/*
 * convert: fp16 <-> fp32 and bf16 -> fp32, exactly, in portable C (bit manipulation, no F16C, no lookup
 * table, independent of the floating-point environment).
 *
 * fp16 is IEEE binary16 (1 sign, 5 exponent bits biased by 15, 10 mantissa bits); fp32 is binary32 (8
 * exponent bits biased by 127, 23 mantissa bits); bf16 is the top half of a binary32. Every fp16 and
 * bf16 value is exactly representable in fp32, so those conversions are exact; fp32 -> fp16 rounds to
 * nearest, ties to even, overflows to infinity, keeps NaN a NaN (quiet, top payload bits kept).
 *
 * Not here: vector conversions (the AVX2 kernels use F16C in dot_avx2.c).
 */
#include "quant_impl.h"

#include <string.h>

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float quant_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0x1F) return bits_to_f32(sign | 0x7F800000 | (mant << 13)); /* inf, NaN (payload kept) */
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in fp32 (mant < 2^10, the result is an fp32 normal) */
        const float mag = (float)mant * 0x1p-24f;
        return sign ? -mag : mag;
    }
    return bits_to_f32(sign | ((exp + (127 - 15)) << 23) | (mant << 13));
}

/* Round `m >> shift` to nearest, ties to even (shift 1..31). */
static uint32_t shift_round_even(uint32_t m, uint32_t shift) {
    const uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1)));
}

uint16_t quant_f32_to_f16(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    const uint32_t a = u & 0x7FFFFFFF;
    if (a > 0x7F800000) return sign | 0x7E00 | (uint16_t)((a >> 13) & 0x1FF); /* NaN: quiet, payload top */
    if (a >= 0x477FF000) return sign | 0x7C00; /* >= 65520 rounds past the largest fp16 (65504): inf */
    const uint32_t e = a >> 23;                /* biased fp32 exponent */
    if (e < 113) {
        /* below 2^-14, the smallest fp16 normal: an fp16 subnormal, mant = round(|f| * 2^24). With the
         * implicit bit, |f| = m * 2^(e - 150), so mant = m >> (126 - e); 2^-25 and below round to 0. */
        if (e < 102) return sign;
        const uint32_t m = (a & 0x7FFFFF) | 0x800000;
        return sign | (uint16_t)shift_round_even(m, 126 - e); /* may carry into the smallest normal: right */
    }
    /* normal: rebias the exponent, round the mantissa from 23 to 10 bits (a carry bumps the exponent) */
    return sign | (uint16_t)shift_round_even(((e - 112) << 23) | (a & 0x7FFFFF), 13);
}

float quant_bf16_to_f32(uint16_t h) {
    return bits_to_f32((uint32_t)h << 16);
}
