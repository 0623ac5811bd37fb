/*
 * neon_quant.c - activations to their vec_dot_type: F32, F16, BF16, Q8_0,
 * Q8_1 and Q8_K, byte-identical to kernels/ref (llama.cpp's reference
 * rounding), because every matmul result downstream depends on them.
 *
 * How each step matches the reference:
 *   amax       lane maxima that skip NaN (fmaxf's rule for quiet NaNs);
 *   Q8_0/Q8_1  d = amax / 127 (a true division), q = roundf(x * (1/d)):
 *              vcvtaq rounds half away from zero, NaN gives 0, and the
 *              saturating narrows clamp to [-128, 127] as round_i8 does;
 *   Q8_K       the first value of largest magnitude (sign kept) found by
 *              a scan, q = nearest-even(x * -127/max): vcvtnq, saturated;
 *   F16        vcvt (round to nearest even, as infer_f32_to_f16);
 *   BF16       the reference's integer rounding, NaN quieted.
 */
#include "neon_internal.h"

#include <math.h>

/* Largest |x| of n (a multiple of 16) floats, every NaN ignored: a lane
 * takes |x| only when |x| > its max (the comparison Q8_K's reference
 * makes; fmaxf gives the same for quiet NaNs, and vmaxnmq would let a
 * signalling NaN reset a lane's running max). */
NEON_INLINE float32x4_t max_if_greater(float32x4_t m, const float *x) {
    const float32x4_t a = vabsq_f32(vld1q_f32(x));
    return vbslq_f32(vcgtq_f32(a, m), a, m);
}

static float abs_max(const float *x, int n) {
    float32x4_t m0 = vdupq_n_f32(0.0f), m1 = m0, m2 = m0, m3 = m0;
    for (int j = 0; j < n; j += 16) {
        m0 = max_if_greater(m0, x + j);
        m1 = max_if_greater(m1, x + j + 4);
        m2 = max_if_greater(m2, x + j + 8);
        m3 = max_if_greater(m3, x + j + 12);
    }
    return vmaxvq_f32(vmaxq_f32(vmaxq_f32(m0, m1), vmaxq_f32(m2, m3))); /* no NaN left */
}

/* 16 int32 saturated to int8. */
NEON_INLINE int8x16_t narrow16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    return vcombine_s8(vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))),
                       vqmovn_s16(vcombine_s16(vqmovn_s32(c), vqmovn_s32(d))));
}

/* 16 values x * s rounded half away from zero (round_i8). */
NEON_INLINE int8x16_t round_away16(const float *x, float s) {
    return narrow16(vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x), s)), vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4), s)),
                    vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x + 8), s)),
                    vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x + 12), s)));
}

/* 16 values x * s rounded half to even (nearest_int), saturated. */
NEON_INLINE int8x16_t round_even16(const float *x, float s) {
    return narrow16(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x), s)), vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4), s)),
                    vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 8), s)),
                    vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 12), s)));
}

/* Q8_0 (with_sum 0: d | qs) or Q8_1 (d | s | qs) blocks of 32. */
static void quant_q8_legacy(const float *x, uint8_t *y, int64_t n, int with_sum) {
    const size_t bytes = with_sum ? 36 : 34, qoff = with_sum ? 4 : 2;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32, y += bytes) {
        const float d = abs_max(x, QK32) / 127;
        const float id = d ? 1.0f / d : 0.0f;
        const int8x16_t q0 = round_away16(x, id), q1 = round_away16(x + 16, id);
        vst1q_u8(y + qoff, vreinterpretq_u8_s8(q0));
        vst1q_u8(y + qoff + 16, vreinterpretq_u8_s8(q1));
        const uint16_t dh = f32_to_f16_bits(d);
        memcpy(y, &dh, 2);
        if (with_sum) {
            const int sum = vaddlvq_s8(q0) + vaddlvq_s8(q1);
            const uint16_t sh = f32_to_f16_bits((float)sum * d);
            memcpy(y + 2, &sh, 2);
        }
    }
}

/* The first value of x[0..255] whose magnitude is amax. */
static float first_with_abs(const float *x, float amax) {
    const float32x4_t m = vdupq_n_f32(amax);
    for (int j = 0; j < QK256; j += 16) {
        const uint32x4_t e = vorrq_u32(vorrq_u32(vceqq_f32(vabsq_f32(vld1q_f32(x + j)), m),
                                                 vceqq_f32(vabsq_f32(vld1q_f32(x + j + 4)), m)),
                                       vorrq_u32(vceqq_f32(vabsq_f32(vld1q_f32(x + j + 8)), m),
                                                 vceqq_f32(vabsq_f32(vld1q_f32(x + j + 12)), m)));
        if (vmaxvq_u32(e) == 0) continue;
        for (int k = j; k < j + 16; k++)
            if (fabsf(x[k]) == amax) return x[k];
    }
    return 0.0f; /* not reached: amax is one of the magnitudes */
}

static void quant_q8_k(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK256; i++, x += QK256, y += Q8K_BYTES) {
        const float amax = abs_max(x, QK256);
        if (amax == 0.0f) {
            memset(y, 0, Q8K_BYTES);
            continue;
        }
        const float max = first_with_abs(x, amax);
        const float iscale = -127.0f / max;
        for (int g = 0; g < 16; g++) {
            const int8x16_t q = round_even16(x + 16 * g, iscale);
            vst1q_u8(y + 4 + 16 * g, vreinterpretq_u8_s8(q));
            const int16_t bsum = vaddlvq_s8(q);
            memcpy(y + 260 + 2 * g, &bsum, 2);
        }
        const float d = 1.0f / iscale;
        memcpy(y, &d, 4);
    }
}

static void quant_f16(const float *x, uint8_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcombine_f16(vcvt_f16_f32(vld1q_f32(x + i)), vcvt_f16_f32(vld1q_f32(x + i + 4)));
        vst1q_u8(y + 2 * i, vreinterpretq_u8_f16(h));
    }
    for (; i < n; i++) {
        const uint16_t h = infer_f32_to_f16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

/* Four floats to bfloat16: round to nearest even on the bit pattern (a
 * carry into the exponent is right, up to inf), NaN kept and quieted. */
NEON_INLINE uint16x4_t bf16x4(float32x4_t f) {
    const uint32x4_t x = vreinterpretq_u32_f32(f);
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(vaddq_u32(x, vdupq_n_u32(0x7fff)), odd), 16);
    const uint32x4_t quiet = vorrq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(0x40));
    const uint32x4_t nan = vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    return vmovn_u32(vbslq_u32(nan, quiet, rounded));
}

static void quant_bf16(const float *x, uint8_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vcombine_u16(bf16x4(vld1q_f32(x + i)), bf16x4(vld1q_f32(x + i + 4)));
        vst1q_u8(y + 2 * i, vreinterpretq_u8_u16(h));
    }
    for (; i < n; i++) {
        const uint16_t h = infer_f32_to_bf16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

int neon_quantize(uint32_t type, const float *x, uint8_t *y, int64_t n) {
    switch (type) {
    case INFER_TYPE_F32: memcpy(y, x, (size_t)n * sizeof(float)); return 1;
    case INFER_TYPE_F16: quant_f16(x, y, n); return 1;
    case INFER_TYPE_BF16: quant_bf16(x, y, n); return 1;
    case INFER_TYPE_Q8_0: quant_q8_legacy(x, y, n, 0); return 1;
    case INFER_TYPE_Q8_1: quant_q8_legacy(x, y, n, 1); return 1;
    case INFER_TYPE_Q8_K: quant_q8_k(x, y, n); return 1;
    default: return 0;
    }
}
