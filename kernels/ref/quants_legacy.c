/*
 * quants_legacy.c - the 32-value block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
 * (weights) and Q8_0, Q8_1 (activations).
 *
 * Block layouts (bytes, little-endian, packed):
 *   Q4_0 (18)  f16 d | 16 B qs                    x = d * (q - 8)
 *   Q4_1 (20)  f16 d | f16 m | 16 B qs            x = d * q + m
 *   Q5_0 (22)  f16 d | u32 qh | 16 B qs           x = d * (q - 16)
 *   Q5_1 (24)  f16 d | f16 m | u32 qh | 16 B qs   x = d * q + m
 *   Q8_0 (34)  f16 d | 32 int8 qs                 x = d * q
 *   Q8_1 (36)  f16 d | f16 s | 32 int8 qs         x = d * q, s = d * sum(q)
 * In the 4- and 5-bit types, byte qs[j] holds value j in its low nibble and
 * value j + 16 in its high nibble; bit j of qh is the fifth bit of value j
 * (j = 0..31).
 *
 * The quantizers reproduce llama.cpp's quantize_row_*_ref bit for bit (its
 * scale formulas, its f16 rounding of d and m, its truncating casts and
 * roundf), which is what llama-quantize runs when no importance matrix is
 * given. The dot products are its vec_dot_*: an exact integer dot per block
 * scaled by d_w * d_a, plus m_w * s_a for the types with a minimum.
 */
#include "ref_internal.h"

#include <float.h>

#define QH 16 /* values per nibble half of a block */

/* ---- dequantization ------------------------------------------------------ */

void ref_dequant_q4_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 18, y += QK_LEGACY) {
        const float d = rd_f16(x);
        const uint8_t *qs = x + 2;
        for (int j = 0; j < QH; j++) {
            y[j] = ((qs[j] & 0x0f) - 8) * d;
            y[j + QH] = ((qs[j] >> 4) - 8) * d;
        }
    }
}

void ref_dequant_q4_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 20, y += QK_LEGACY) {
        const float d = rd_f16(x), m = rd_f16(x + 2);
        const uint8_t *qs = x + 4;
        for (int j = 0; j < QH; j++) {
            y[j] = (qs[j] & 0x0f) * d + m;
            y[j + QH] = (qs[j] >> 4) * d + m;
        }
    }
}

/* The 5-bit value j (0..31) of a Q5 block. */
static inline int q5_value(const uint8_t *qs, uint32_t qh, int j) {
    int lo = j < QH ? (qs[j] & 0x0f) : (qs[j - QH] >> 4);
    return lo | (int)(((qh >> j) & 1) << 4);
}

void ref_dequant_q5_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 22, y += QK_LEGACY) {
        const float d = rd_f16(x);
        const uint32_t qh = rd_u32(x + 2);
        for (int j = 0; j < QK_LEGACY; j++) y[j] = (q5_value(x + 6, qh, j) - 16) * d;
    }
}

void ref_dequant_q5_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 24, y += QK_LEGACY) {
        const float d = rd_f16(x), m = rd_f16(x + 2);
        const uint32_t qh = rd_u32(x + 4);
        for (int j = 0; j < QK_LEGACY; j++) y[j] = q5_value(x + 8, qh, j) * d + m;
    }
}

void ref_dequant_q8_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 34, y += QK_LEGACY) {
        const float d = rd_f16(x);
        for (int j = 0; j < QK_LEGACY; j++) y[j] = (int8_t)x[2 + j] * d;
    }
}

void ref_dequant_q8_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 36, y += QK_LEGACY) {
        const float d = rd_f16(x);
        for (int j = 0; j < QK_LEGACY; j++) y[j] = (int8_t)x[4 + j] * d;
    }
}

/* ---- quantization (llama.cpp's reference rounding) ----------------------- */

/* The value of largest magnitude, sign kept; the first one on ties. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *min = lo;
    *max = hi;
}

/* Pack 32 values of 0..15 (or the low nibbles of 0..31) into 16 bytes. */
void ref_pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < QH; j++) qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + QH] & 0x0f) << 4));
}

/* The fifth bits of 32 values 0..31. */
uint32_t ref_pack_high_bits(const uint8_t *q) {
    uint32_t qh = 0;
    for (int j = 0; j < QK_LEGACY; j++) qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    return qh;
}

void ref_quant_q4_0(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += QK_LEGACY, y += 18) {
        /* The largest-magnitude value maps to -8 exactly; its opposite would
         * be +8 and is clamped to 7. */
        const float d = signed_absmax(x, QK_LEGACY) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK_LEGACY];
        for (int j = 0; j < QK_LEGACY; j++) q[j] = (uint8_t)trunc_clamp(x[j] * id + 8.5f, -128, 15);
        wr_u16(y, infer_f32_to_f16(d));
        ref_pack_nibbles(q, y + 2);
    }
}

void ref_quant_q4_1(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += QK_LEGACY, y += 20) {
        float min, max;
        min_max(x, QK_LEGACY, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK_LEGACY];
        for (int j = 0; j < QK_LEGACY; j++)
            q[j] = (uint8_t)trunc_clamp((x[j] - min) * id + 0.5f, -128, 15);
        wr_u16(y, infer_f32_to_f16(d));
        wr_u16(y + 2, infer_f32_to_f16(min));
        ref_pack_nibbles(q, y + 4);
    }
}

void ref_quant_q5_0(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += QK_LEGACY, y += 22) {
        const float d = signed_absmax(x, QK_LEGACY) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK_LEGACY];
        for (int j = 0; j < QK_LEGACY; j++)
            q[j] = (uint8_t)trunc_clamp(x[j] * id + 16.5f, -128, 31);
        wr_u16(y, infer_f32_to_f16(d));
        wr_u32(y + 2, ref_pack_high_bits(q));
        ref_pack_nibbles(q, y + 6);
    }
}

void ref_quant_q5_1(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += QK_LEGACY, y += 24) {
        float min, max;
        min_max(x, QK_LEGACY, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK_LEGACY];
        /* llama.cpp casts to uint8_t without a clamp here; the value stays
         * within 0..31 for finite input, and only 5 bits are stored. */
        for (int j = 0; j < QK_LEGACY; j++)
            q[j] = (uint8_t)trunc_clamp((x[j] - min) * id + 0.5f, 0, 255);
        wr_u16(y, infer_f32_to_f16(d));
        wr_u16(y + 2, infer_f32_to_f16(min));
        wr_u32(y + 4, ref_pack_high_bits(q));
        ref_pack_nibbles(q, y + 8);
    }
}

/* Q8_0 and Q8_1 share the scale: d = amax / 127, values roundf(x / d). */
static float q8_scale_round(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int j = 0; j < QK_LEGACY; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK_LEGACY; j++) q[j] = round_i8(x[j] * id);
    return d;
}

void ref_quant_q8_0(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += QK_LEGACY, y += 34) {
        int8_t q[QK_LEGACY];
        const float d = q8_scale_round(x, q);
        wr_u16(y, infer_f32_to_f16(d));
        memcpy(y + 2, q, QK_LEGACY);
    }
}

void ref_quant_q8_1(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += QK_LEGACY, y += 36) {
        int8_t q[QK_LEGACY];
        const float d = q8_scale_round(x, q);
        int sum = 0;
        for (int j = 0; j < QK_LEGACY; j++) sum += q[j];
        wr_u16(y, infer_f32_to_f16(d));
        wr_u16(y + 2, infer_f32_to_f16((float)sum * d));
        memcpy(y + 4, q, QK_LEGACY);
    }
}

/* ---- dot products with quantized activations ----------------------------- */

/* Integer dot of the 32 4-bit values of qs, minus offset, with q8. */
static int dot_nibbles(const uint8_t *qs, int offset, const int8_t *q8) {
    int sum = 0;
    for (int j = 0; j < QH; j++) {
        sum += ((qs[j] & 0x0f) - offset) * q8[j];
        sum += ((qs[j] >> 4) - offset) * q8[j + QH];
    }
    return sum;
}

static int dot_q5(const uint8_t *qs, uint32_t qh, int offset, const int8_t *q8) {
    int sum = 0;
    for (int j = 0; j < QK_LEGACY; j++) sum += (q5_value(qs, qh, j) - offset) * q8[j];
    return sum;
}

float ref_dot_q4_0_q8_0(int64_t n, const uint8_t *x, const uint8_t *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 18, y += 34) {
        const int sumi = dot_nibbles(x + 2, 8, (const int8_t *)(y + 2));
        sumf += sumi * (rd_f16(x) * rd_f16(y));
    }
    return sumf;
}

float ref_dot_q4_1_q8_1(int64_t n, const uint8_t *x, const uint8_t *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 20, y += 36) {
        const int sumi = dot_nibbles(x + 4, 0, (const int8_t *)(y + 4));
        /* sum(d_w q_w + m_w)(d_a q_a) = d_w d_a sum(q_w q_a) + m_w s_a */
        sumf += (rd_f16(x) * rd_f16(y)) * sumi + rd_f16(x + 2) * rd_f16(y + 2);
    }
    return sumf;
}

float ref_dot_q5_0_q8_0(int64_t n, const uint8_t *x, const uint8_t *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 22, y += 34) {
        const int sumi = dot_q5(x + 6, rd_u32(x + 2), 16, (const int8_t *)(y + 2));
        sumf += sumi * (rd_f16(x) * rd_f16(y));
    }
    return sumf;
}

float ref_dot_q5_1_q8_1(int64_t n, const uint8_t *x, const uint8_t *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 24, y += 36) {
        const int sumi = dot_q5(x + 8, rd_u32(x + 4), 0, (const int8_t *)(y + 4));
        sumf += (rd_f16(x) * rd_f16(y)) * sumi + rd_f16(x + 2) * rd_f16(y + 2);
    }
    return sumf;
}

float ref_dot_q8_0_q8_0(int64_t n, const uint8_t *x, const uint8_t *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_LEGACY; i++, x += 34, y += 34) {
        const int8_t *a = (const int8_t *)(x + 2), *b = (const int8_t *)(y + 2);
        int sumi = 0;
        for (int j = 0; j < QK_LEGACY; j++) sumi += a[j] * b[j];
        sumf += sumi * (rd_f16(x) * rd_f16(y));
    }
    return sumf;
}
