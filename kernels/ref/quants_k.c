/*
 * quants_k.c - the K-quant super-block types (256 values): Q2_K .. Q6_K
 * (weights) and Q8_K (their activations).
 *
 * Block layouts (bytes, little-endian, packed); "sub-block" = 16 or 32
 * consecutive values sharing a scale:
 *
 *   Q2_K (84)   scales[16] | qs[64] | f16 d | f16 dmin
 *       16 sub-blocks of 16. scales[s]: low nibble = scale, high = min.
 *       x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), q = 0..3.
 *   Q3_K (110)  hmask[32] | qs[64] | scales[12] | f16 d
 *       16 sub-blocks of 16, 6-bit scales stored biased by 32.
 *       x = d * (scale6[s] - 32) * (q - (high bit ? 0 : 4)), q = 0..3.
 *   Q4_K (144)  f16 d | f16 dmin | scales[12] | qs[128]
 *       8 sub-blocks of 32, 6-bit scale and min packed in 12 bytes.
 *       x = d * sc[s] * q - dmin * mn[s], q = 0..15.
 *   Q5_K (176)  f16 d | f16 dmin | scales[12] | qh[32] | qs[128]
 *       as Q4_K with a fifth bit: q = 0..31.
 *   Q6_K (210)  ql[128] | qh[64] | int8 scales[16] | f16 d
 *       16 sub-blocks of 16. x = d * scales[s] * (q - 32), q = 0..63.
 *   Q8_K (292)  f32 d | int8 qs[256] | int16 bsums[16]
 *       x = d * q; bsums[g] = sum of qs[16g .. 16g+15].
 *
 * Bit positions (value index e = 0..255 within the super-block):
 *   Q2_K/Q3_K: e = 128*c + 32*j + 16*h + l (c, h in 0..1, j in 0..3,
 *     l in 0..15): 2 low bits at bits 2j..2j+1 of qs[32c + 16h + l];
 *     Q3_K's high bit is bit 4c+j of hmask[16h + l].
 *   Q4_K/Q5_K: e = 64*p + 32*k + l (p in 0..3, k in 0..1, l in 0..31):
 *     nibble k (0 low, 1 high) of qs[32p + l]; Q5_K's fifth bit is bit
 *     2p+k of qh[l].
 *   Q6_K: e = 128*c + 32*k + l (k in 0..3, l in 0..31): the low 4 bits
 *     are, for k = 0, 1, 2, 3, the low nibble of ql[64c + l], the low
 *     nibble of ql[64c + 32 + l], the high nibble of ql[64c + l], the high
 *     nibble of ql[64c + 32 + l]; the 2 high bits are bits 2k, 2k+1 of
 *     qh[32c + l].
 *
 * The dot products follow llama.cpp's vec_dot_*_q8_K: exact integer sums
 * per sub-block times the sub-block scale, times d_w * d_a per super-block;
 * the min terms use Q8_K's bsums.
 */
#include "ref_internal.h"

/* ---- scale decoding ------------------------------------------------------- */

/* Q3_K: the 6-bit scale of sub-block s (0..15), unbiased (-32..31). Low 4
 * bits: low nibbles of bytes 0..7 for s < 8, high nibbles for s >= 8; high 2
 * bits: bits 2*(s/4).. of byte 8 + s%4. */
static int q3k_scale(const uint8_t *sc, int s) {
    int lo = s < 8 ? (sc[s] & 0x0f) : (sc[s - 8] >> 4);
    int hi = (sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* Q4_K/Q5_K: the 6-bit scale and min of sub-block s (0..7). Sub-blocks 0..3
 * use the low 6 bits of bytes s and s+4; 4..7 take their low 4 bits from
 * byte s+4's nibbles and their top 2 bits from the spare top bits of bytes
 * s-4 (scale) and s (min). */
static void q4k_scale_min(const uint8_t *sc, int s, int *scale, int *min) {
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 0x0f) | ((sc[s - 4] >> 6) << 4);
        *min = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
    }
}

/* ---- unpacking the quants of one block to small signed integers ------------ */

/* Q2_K: q in 0..3. */
static void q2k_unpack(const uint8_t *x, int8_t *q) {
    const uint8_t *qs = x + 16;
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) q[128 * c + 32 * j + l] = (qs[32 * c + l] >> (2 * j)) & 3;
}

/* Q3_K: q - 4 unless the high bit is set: -4..3. */
static void q3k_unpack(const uint8_t *x, int8_t *q) {
    const uint8_t *hmask = x, *qs = x + 32;
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int low = (qs[32 * c + l] >> (2 * j)) & 3;
                int high = (hmask[l] >> (4 * c + j)) & 1;
                q[128 * c + 32 * j + l] = (int8_t)(low - (high ? 0 : 4));
            }
}

/* Q4_K (qh NULL): 0..15; Q5_K: 0..31. */
static void q45k_unpack(const uint8_t *qs, const uint8_t *qh, int8_t *q) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            int v0 = qs[32 * p + l] & 0x0f, v1 = qs[32 * p + l] >> 4;
            if (qh) {
                v0 |= ((qh[l] >> (2 * p)) & 1) << 4;
                v1 |= ((qh[l] >> (2 * p + 1)) & 1) << 4;
            }
            q[64 * p + l] = (int8_t)v0;
            q[64 * p + 32 + l] = (int8_t)v1;
        }
}

/* Q6_K: q - 32: -32..31. */
static void q6k_unpack(const uint8_t *x, int8_t *q) {
    const uint8_t *ql = x, *qh = x + 128;
    for (int c = 0; c < 2; c++)
        for (int l = 0; l < 32; l++) {
            const uint8_t a = ql[64 * c + l], b = ql[64 * c + 32 + l], h = qh[32 * c + l];
            q[128 * c + l] = (int8_t)(((a & 0x0f) | ((h & 3) << 4)) - 32);
            q[128 * c + 32 + l] = (int8_t)(((b & 0x0f) | (((h >> 2) & 3) << 4)) - 32);
            q[128 * c + 64 + l] = (int8_t)(((a >> 4) | (((h >> 4) & 3) << 4)) - 32);
            q[128 * c + 96 + l] = (int8_t)(((b >> 4) | (((h >> 6) & 3) << 4)) - 32);
        }
}

/* ---- dequantization -------------------------------------------------------- */

void ref_dequant_q2_k(const uint8_t *x, float *y, int64_t n) {
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += 84, y += QK_K) {
        const float d = rd_f16(x + 80), dmin = rd_f16(x + 82);
        q2k_unpack(x, q);
        for (int s = 0; s < 16; s++) {
            const float dl = d * (x[s] & 0x0f), ml = dmin * (x[s] >> 4);
            for (int l = 0; l < 16; l++) y[16 * s + l] = dl * q[16 * s + l] - ml;
        }
    }
}

void ref_dequant_q3_k(const uint8_t *x, float *y, int64_t n) {
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += 110, y += QK_K) {
        const float d = rd_f16(x + 108);
        q3k_unpack(x, q);
        for (int s = 0; s < 16; s++) {
            const float dl = d * q3k_scale(x + 96, s);
            for (int l = 0; l < 16; l++) y[16 * s + l] = dl * q[16 * s + l];
        }
    }
}

static void dequant_q45k(const uint8_t *x, const uint8_t *qh, const uint8_t *qs, float *y) {
    int8_t q[QK_K];
    const float d = rd_f16(x), dmin = rd_f16(x + 2);
    q45k_unpack(qs, qh, q);
    for (int s = 0; s < 8; s++) {
        int sc, mn;
        q4k_scale_min(x + 4, s, &sc, &mn);
        const float dl = d * sc, ml = dmin * mn;
        for (int l = 0; l < 32; l++) y[32 * s + l] = dl * q[32 * s + l] - ml;
    }
}

void ref_dequant_q4_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 144, y += QK_K) dequant_q45k(x, NULL, x + 16, y);
}

void ref_dequant_q5_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 176, y += QK_K) dequant_q45k(x, x + 16, x + 48, y);
}

void ref_dequant_q6_k(const uint8_t *x, float *y, int64_t n) {
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += 210, y += QK_K) {
        const float d = rd_f16(x + 208);
        const int8_t *sc = (const int8_t *)(x + 192);
        q6k_unpack(x, q);
        for (int s = 0; s < 16; s++) {
            const float dl = d * sc[s];
            for (int l = 0; l < 16; l++) y[16 * s + l] = dl * q[16 * s + l];
        }
    }
}

void ref_dequant_q8_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 292, y += QK_K) {
        const float d = rd_f32(x);
        for (int j = 0; j < QK_K; j++) y[j] = d * (int8_t)x[4 + j];
    }
}

/* ---- Q8_K activations -------------------------------------------------------- */

/* llama.cpp's quantize_row_q8_K_ref: the value of largest magnitude maps to
 * -127 exactly (scale -127/max, so d is negative when max is positive),
 * others round half to even; bsums are the 16-value group sums. */
void ref_quant_q8_k(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 292) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        int8_t *qs = (int8_t *)(y + 4);
        if (amax == 0.0f) {
            memset(y, 0, 292);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = nearest_int_ref(iscale * x[j]);
            qs[j] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += qs[16 * g + l];
            wr_u16(y + 260 + 2 * g, (uint16_t)(int16_t)sum);
        }
        wr_f32(y, 1.0f / iscale);
    }
}

/* ---- dot products with Q8_K ------------------------------------------------------ */

/* Integer dot of n values. */
static int idot(const int8_t *a, const int8_t *b, int n) {
    int sum = 0;
    for (int l = 0; l < n; l++) sum += a[l] * b[l];
    return sum;
}

float ref_dot_q2_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y) {
    int8_t q[QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, x += 84, y += 292) {
        const int8_t *q8 = (const int8_t *)(y + 4);
        q2k_unpack(x, q);
        int isum = 0, summs = 0;
        for (int s = 0; s < 16; s++) {
            isum += (x[s] & 0x0f) * idot(q + 16 * s, q8 + 16 * s, 16);
            summs += (x[s] >> 4) * rd_i16(y + 260 + 2 * s);
        }
        const float dall = rd_f32(y) * rd_f16(x + 80), dmin = rd_f32(y) * rd_f16(x + 82);
        sumf += dall * isum - dmin * summs;
    }
    return sumf;
}

float ref_dot_q3_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y) {
    int8_t q[QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, x += 110, y += 292) {
        const int8_t *q8 = (const int8_t *)(y + 4);
        q3k_unpack(x, q);
        int isum = 0;
        for (int s = 0; s < 16; s++) isum += q3k_scale(x + 96, s) * idot(q + 16 * s, q8 + 16 * s, 16);
        sumf += (rd_f16(x + 108) * rd_f32(y)) * isum;
    }
    return sumf;
}

static float dot_q45k(const uint8_t *x, const uint8_t *qh, const uint8_t *qs, const uint8_t *y) {
    int8_t q[QK_K];
    const int8_t *q8 = (const int8_t *)(y + 4);
    q45k_unpack(qs, qh, q);
    int isum = 0, summs = 0;
    for (int s = 0; s < 8; s++) {
        int sc, mn;
        q4k_scale_min(x + 4, s, &sc, &mn);
        isum += sc * idot(q + 32 * s, q8 + 32 * s, 32);
        summs += mn * (rd_i16(y + 260 + 4 * s) + rd_i16(y + 262 + 4 * s));
    }
    const float d = rd_f16(x) * rd_f32(y), dmin = rd_f16(x + 2) * rd_f32(y);
    return d * isum - dmin * summs;
}

float ref_dot_q4_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, x += 144, y += 292) sumf += dot_q45k(x, NULL, x + 16, y);
    return sumf;
}

float ref_dot_q5_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, x += 176, y += 292) sumf += dot_q45k(x, x + 16, x + 48, y);
    return sumf;
}

float ref_dot_q6_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y) {
    int8_t q[QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, x += 210, y += 292) {
        const int8_t *q8 = (const int8_t *)(y + 4), *sc = (const int8_t *)(x + 192);
        q6k_unpack(x, q);
        int isum = 0;
        for (int s = 0; s < 16; s++) isum += sc[s] * idot(q + 16 * s, q8 + 16 * s, 16);
        sumf += (rd_f16(x + 208) * rd_f32(y)) * isum;
    }
    return sumf;
}
