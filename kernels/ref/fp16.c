/*
 * fp16.c - IEEE binary16 and bfloat16 conversions, bit by bit.
 *
 * float -> half rounds to nearest, ties to even, in every range (normal,
 * subnormal, overflow to infinity), giving what F16C's vcvtps2ph with
 * rounding mode 0 gives, and what ggml's software fallback gives for every
 * non-NaN input. A NaN stays a NaN of the same sign, quieted, keeping the top
 * payload bits (F16C's behaviour; ggml's fallback returns 0x7e00 instead,
 * which no quantized file or logit depends on).
 *
 * float -> bfloat16 is ggml's: round to nearest even on the bit pattern,
 * NaN forced quiet (bit 6), subnormals kept.
 */
#include "ref_internal.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float infer_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* inf or NaN: payload moves to the top of the mantissa */
        return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp != 0) /* normal: rebias 15 -> 127 */
        return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0) return f32_from_bits(sign); /* +-0 */
    /* subnormal: man * 2^-24, normalised into a float */
    int shift = 0;
    while (!(man & 0x400)) {
        man <<= 1;
        shift++;
    }
    man &= 0x3ff;
    return f32_from_bits(sign | ((uint32_t)(113 - shift) << 23) | (man << 13));
}

/* Shift m right by s (1..31) rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t m, int s) {
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return q;
}

uint16_t infer_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) /* NaN: quiet, top payload bits kept */
        return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));
    if (x >= 0x477ff000u) /* >= 65520 (the tie above 65504 rounds up): inf */
        return (uint16_t)(sign | 0x7c00);
    if (x >= 0x38800000u) { /* normal half (>= 2^-14) */
        /* Rebias the exponent and round the 23-bit mantissa to 10 bits; a
         * carry out of the mantissa correctly bumps the exponent. */
        uint32_t e = (x >> 23) - 112;
        uint32_t h = (e << 10) + shift_round_even(x & 0x7fffff, 13);
        return (uint16_t)(sign | h);
    }
    uint32_t e = x >> 23; /* biased float exponent, < 113 */
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    /* Subnormal half: value / 2^-24 = m * 2^(e - 126) with the implicit bit.
     * A result of 0x400 is the smallest normal half, encoded correctly. */
    uint32_t m = (x & 0x7fffff) | 0x800000;
    return (uint16_t)(sign | shift_round_even(m, 126 - (int)e));
}

float infer_bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t infer_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    /* Adding 0x7fff plus the lowest kept bit rounds ties to even; finite
     * values past the largest bfloat16 carry into the infinity pattern. */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}
