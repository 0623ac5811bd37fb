/*
 * neon_kquants.c - the K-quant super-block types: Q2_K, Q3_K, Q4_K, Q5_K
 * and Q6_K weights against Q8_K activations (vdotq_s32), and the
 * dequantization of those and of Q8_K.
 *
 * Layouts and bit positions are kernels/ref/quants_k.c's. Every type is
 * handled the same way here:
 *   - a super-block of 256 values is four groups of 64; a group unpacks to
 *     four int8x16 (values 64g .. 64g+63 in order, offsets subtracted);
 *   - each run of 16 values has one scale (and, for Q2_K/Q4_K/Q5_K, one
 *     min): the 16 sub-block scales of Q2_K, Q3_K and Q6_K, or Q4_K/Q5_K's
 *     8 scales of 32 values each used twice. So
 *         isum = sum_i scale[i] * dot16(run i),  msum = sum_i min[i] * bsums[i]
 *     equal the reference's integer sums exactly (Q8_K's bsums are the
 *     16-value sums of the activations);
 *   - per super-block and output the float step is the reference's:
 *         Q2_K, Q4_K, Q5_K:  sum += (d_w d_a) * isum - (dmin_w d_a) * msum
 *         Q3_K, Q6_K:        sum += (d_w d_a) * isum
 *     (in scalar: it is a few operations per 256 multiply-adds).
 */
#include "neon_internal.h"

NEON_INLINE size_t kq_bytes(const uint32_t type) {
    switch (type) {
    case INFER_TYPE_Q2_K: return 84;
    case INFER_TYPE_Q3_K: return 110;
    case INFER_TYPE_Q4_K: return 144;
    case INFER_TYPE_Q5_K: return 176;
    default: return 210; /* Q6_K */
    }
}

NEON_INLINE int kq_has_min(const uint32_t type) {
    return type == INFER_TYPE_Q2_K || type == INFER_TYPE_Q4_K || type == INFER_TYPE_Q5_K;
}

/* Offsets of the f16 fields d and dmin in a block. */
NEON_INLINE size_t kq_d_off(const uint32_t type) {
    switch (type) {
    case INFER_TYPE_Q2_K: return 80;
    case INFER_TYPE_Q3_K: return 108;
    case INFER_TYPE_Q6_K: return 208;
    default: return 0; /* Q4_K, Q5_K */
    }
}

NEON_INLINE size_t kq_dmin_off(const uint32_t type) { return type == INFER_TYPE_Q2_K ? 82 : 2; }

/* ---- scales -------------------------------------------------------------------- */

/* Q3_K's 16 6-bit scales, unbiased: low 4 bits from the nibbles of bytes
 * 0..7 (low nibbles for 0..7, high for 8..15), top 2 bits from bits
 * 2*(s/4) of byte 8 + s%4. */
NEON_INLINE int8x16_t q3k_scales(const uint8_t *sc) {
    static const int8_t SHIFT[16] = {0, 0, 0, 0, -2, -2, -2, -2, -4, -4, -4, -4, -6, -6, -6, -6};
    const uint8x8_t b = vld1_u8(sc);
    const uint8x16_t lo = vcombine_u8(vand_u8(b, vdup_n_u8(0x0f)), vshr_n_u8(b, 4));
    const uint8x16_t top = vreinterpretq_u8_u32(vdupq_n_u32(ld_u32(sc + 8))); /* lane s: byte 8 + s%4 */
    const uint8x16_t hi = vandq_u8(vshlq_u8(top, vld1q_s8(SHIFT)), vdupq_n_u8(3));
    return vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, vshlq_n_u8(hi, 4))), vdupq_n_s8(32));
}

/* Q4_K/Q5_K's 8 6-bit scales and mins, each twice (one per 16 values).
 * Sub-blocks 0..3: low 6 bits of bytes s (scale) and s+4 (min); 4..7: the
 * nibbles of byte s+4 below the top 2 bits of bytes s-4 (scale), s (min). */
NEON_INLINE void q4k_scales(const uint8_t *sc, int8x16_t *scales, int8x16_t *mins) {
    const uint32_t u0 = ld_u32(sc), u1 = ld_u32(sc + 4), u2 = ld_u32(sc + 8);
    const uint32_t s_lo = u0 & 0x3f3f3f3fu, m_lo = u1 & 0x3f3f3f3fu;
    const uint32_t s_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
    const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
    const uint8x8_t s8 = vcreate_u8((uint64_t)s_lo | (uint64_t)s_hi << 32);
    const uint8x8_t m8 = vcreate_u8((uint64_t)m_lo | (uint64_t)m_hi << 32);
    *scales = vreinterpretq_s8_u8(vcombine_u8(vzip1_u8(s8, s8), vzip2_u8(s8, s8)));
    *mins = vreinterpretq_s8_u8(vcombine_u8(vzip1_u8(m8, m8), vzip2_u8(m8, m8)));
}

/* The scale of each run of 16 values, and the min (types with one). */
NEON_INLINE void kq_scales(const uint32_t type, const uint8_t *x, int8x16_t *scales, int8x16_t *mins) {
    switch (type) {
    case INFER_TYPE_Q2_K: {
        const uint8x16_t b = vld1q_u8(x);
        *scales = vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0f)));
        *mins = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
        break;
    }
    case INFER_TYPE_Q3_K: *scales = q3k_scales(x + 96); break;
    case INFER_TYPE_Q4_K:
    case INFER_TYPE_Q5_K: q4k_scales(x + 4, scales, mins); break;
    default: *scales = vreinterpretq_s8_u8(vld1q_u8(x + 192)); break; /* Q6_K: int8 */
    }
}

/* 16 signed bytes as four int32x4 (lanes 0-3, 4-7, 8-11, 12-15). */
NEON_INLINE void widen_s8(int8x16_t v, int32x4_t out[4]) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
    out[0] = vmovl_s16(vget_low_s16(lo));
    out[1] = vmovl_high_s16(lo);
    out[2] = vmovl_s16(vget_low_s16(hi));
    out[3] = vmovl_high_s16(hi);
}

/* ---- unpacking group g (values 64g .. 64g+63) ------------------------------------ */

/* Q2_K and Q3_K's low 2 bits: value 128c + 32j + 16h + l sits at bits 2j
 * of qs[32c + 16h + l]; group g is c = g/2, j = 2(g%2) and j + 1. */
NEON_INLINE void q23k_low(const uint8_t *qs, int g, uint8x16_t w[4]) {
    const uint8x16_t q0 = vld1q_u8(qs + 32 * (g >> 1)), q1 = vld1q_u8(qs + 32 * (g >> 1) + 16);
    const int8x16_t s0 = vdupq_n_s8((int8_t)(-4 * (g & 1))), s1 = vdupq_n_s8((int8_t)(-4 * (g & 1) - 2));
    const uint8x16_t three = vdupq_n_u8(3);
    w[0] = vandq_u8(vshlq_u8(q0, s0), three);
    w[1] = vandq_u8(vshlq_u8(q1, s0), three);
    w[2] = vandq_u8(vshlq_u8(q0, s1), three);
    w[3] = vandq_u8(vshlq_u8(q1, s1), three);
}

NEON_INLINE void q2k_unpack(const uint8_t *x, int g, int8x16_t w[4]) {
    uint8x16_t u[4];
    q23k_low(x + 16, g, u);
    for (int k = 0; k < 4; k++) w[k] = vreinterpretq_s8_u8(u[k]);
}

/* Q3_K: minus 4 where the high bit (bit 4c + j of hmask[16h + l]) is clear. */
NEON_INLINE void q3k_unpack(const uint8_t *x, int g, int8x16_t w[4]) {
    uint8x16_t u[4];
    q23k_low(x + 32, g, u);
    const int bit = 4 * (g >> 1) + 2 * (g & 1);
    const uint8x16_t hm0 = vld1q_u8(x), hm1 = vld1q_u8(x + 16), one = vdupq_n_u8(1);
    const int8x16_t s0 = vdupq_n_s8((int8_t)-bit), s1 = vdupq_n_s8((int8_t)(-bit - 1));
    const uint8x16_t h[4] = {vshlq_u8(hm0, s0), vshlq_u8(hm1, s0), vshlq_u8(hm0, s1), vshlq_u8(hm1, s1)};
    for (int k = 0; k < 4; k++)
        w[k] = vsubq_s8(vreinterpretq_s8_u8(u[k]), vreinterpretq_s8_u8(vshlq_n_u8(vbicq_u8(one, h[k]), 2)));
}

/* Q4_K/Q5_K: value 64p + 32k + l is nibble k of qs[32p + l] (group g = p);
 * Q5_K's fifth bit is bit 2p + k of qh[l]. */
NEON_INLINE void q45k_unpack(const uint8_t *qs, const uint8_t *qh, int g, int8x16_t w[4]) {
    const uint8x16_t q0 = vld1q_u8(qs + 32 * g), q1 = vld1q_u8(qs + 32 * g + 16), m4 = vdupq_n_u8(0x0f);
    uint8x16_t u[4] = {vandq_u8(q0, m4), vandq_u8(q1, m4), vshrq_n_u8(q0, 4), vshrq_n_u8(q1, 4)};
    if (qh) {
        const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16), five = vdupq_n_u8(0x10);
        /* bit b moved to bit 4: shift left by 4 - b (right when negative) */
        const int8x16_t s0 = vdupq_n_s8((int8_t)(4 - 2 * g)), s1 = vdupq_n_s8((int8_t)(3 - 2 * g));
        u[0] = vorrq_u8(u[0], vandq_u8(vshlq_u8(h0, s0), five));
        u[1] = vorrq_u8(u[1], vandq_u8(vshlq_u8(h1, s0), five));
        u[2] = vorrq_u8(u[2], vandq_u8(vshlq_u8(h0, s1), five));
        u[3] = vorrq_u8(u[3], vandq_u8(vshlq_u8(h1, s1), five));
    }
    for (int k = 0; k < 4; k++) w[k] = vreinterpretq_s8_u8(u[k]);
}

/* Q6_K: value 128c + 32k + l has low 4 bits in ql[64c + l] (k = 0: low
 * nibble, 2: high) or ql[64c + 32 + l] (k = 1: low, 3: high) and bits 2k,
 * 2k+1 of qh[32c + l] on top; minus 32. Group g is c = g/2, k = 2(g%2), +1. */
NEON_INLINE void q6k_unpack(const uint8_t *x, int g, int8x16_t w[4]) {
    const uint8_t *ql = x + 64 * (g >> 1), *qh = x + 128 + 32 * (g >> 1);
    const uint8x16_t a0 = vld1q_u8(ql), a1 = vld1q_u8(ql + 16), b0 = vld1q_u8(ql + 32), b1 = vld1q_u8(ql + 48);
    const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16), m4 = vdupq_n_u8(0x0f), m30 = vdupq_n_u8(0x30);
    uint8x16_t u[4];
    if ((g & 1) == 0) {
        u[0] = vorrq_u8(vandq_u8(a0, m4), vandq_u8(vshlq_n_u8(h0, 4), m30));
        u[1] = vorrq_u8(vandq_u8(a1, m4), vandq_u8(vshlq_n_u8(h1, 4), m30));
        u[2] = vorrq_u8(vandq_u8(b0, m4), vandq_u8(vshlq_n_u8(h0, 2), m30));
        u[3] = vorrq_u8(vandq_u8(b1, m4), vandq_u8(vshlq_n_u8(h1, 2), m30));
    } else {
        u[0] = vorrq_u8(vshrq_n_u8(a0, 4), vandq_u8(h0, m30));
        u[1] = vorrq_u8(vshrq_n_u8(a1, 4), vandq_u8(h1, m30));
        u[2] = vorrq_u8(vshrq_n_u8(b0, 4), vandq_u8(vshrq_n_u8(h0, 2), m30));
        u[3] = vorrq_u8(vshrq_n_u8(b1, 4), vandq_u8(vshrq_n_u8(h1, 2), m30));
    }
    const int8x16_t off = vdupq_n_s8(32);
    for (int k = 0; k < 4; k++) w[k] = vsubq_s8(vreinterpretq_s8_u8(u[k]), off);
}

NEON_INLINE void kq_unpack(const uint32_t type, const uint8_t *x, int g, int8x16_t w[4]) {
    switch (type) {
    case INFER_TYPE_Q2_K: q2k_unpack(x, g, w); break;
    case INFER_TYPE_Q3_K: q3k_unpack(x, g, w); break;
    case INFER_TYPE_Q4_K: q45k_unpack(x + 16, NULL, g, w); break;
    case INFER_TYPE_Q5_K: q45k_unpack(x + 48, x + 16, g, w); break;
    default: q6k_unpack(x, g, w); break;
    }
}

/* ---- matmul ----------------------------------------------------------------------- */

/* The integer sums of one weight super-block x with nt Q8_K blocks y[t]:
 * isum[t] and (types with mins) msum[t]. Each group of 64 values is
 * unpacked once for all tokens. */
NEON_INLINE void kq_block(const uint32_t type, const int nt, const uint8_t *x, const uint8_t *const y[TILE_T],
                          int32_t isum[TILE_T], int32_t msum[TILE_T]) {
    int8x16_t sc, mn = vdupq_n_s8(0);
    kq_scales(type, x, &sc, &mn);
    int32x4_t scv[4];
    widen_s8(sc, scv);
    int32x4_t acc[TILE_T];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) acc[t] = vdupq_n_s32(0);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        int8x16_t w[4];
        kq_unpack(type, x, g, w);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const uint8_t *q8 = y[t] + 4 + 64 * g;
            const int32x4_t zero = vdupq_n_s32(0);
            const int32x4_t p0 = vdotq_s32(zero, w[0], vreinterpretq_s8_u8(vld1q_u8(q8)));
            const int32x4_t p1 = vdotq_s32(zero, w[1], vreinterpretq_s8_u8(vld1q_u8(q8 + 16)));
            const int32x4_t p2 = vdotq_s32(zero, w[2], vreinterpretq_s8_u8(vld1q_u8(q8 + 32)));
            const int32x4_t p3 = vdotq_s32(zero, w[3], vreinterpretq_s8_u8(vld1q_u8(q8 + 48)));
            /* lane k: the dot of run 4g + k, times its scale */
            acc[t] = vmlaq_s32(acc[t], vpaddq_s32(vpaddq_s32(p0, p1), vpaddq_s32(p2, p3)), scv[g]);
        }
    }
    const int16x8_t mn0 = vmovl_s8(vget_low_s8(mn)), mn1 = vmovl_high_s8(mn);
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        isum[t] = vaddvq_s32(acc[t]);
        if (kq_has_min(type)) {
            const int16x8_t b0 = vreinterpretq_s16_u8(vld1q_u8(y[t] + 260));
            const int16x8_t b1 = vreinterpretq_s16_u8(vld1q_u8(y[t] + 276));
            int32x4_t m = vmull_s16(vget_low_s16(b0), vget_low_s16(mn0));
            m = vmlal_high_s16(m, b0, mn0);
            m = vmlal_s16(m, vget_low_s16(b1), vget_low_s16(mn1));
            m = vmlal_high_s16(m, b1, mn1);
            msum[t] = vaddvq_s32(m);
        }
    }
}

/* One tile, row by row (a super-block is 16 to 40 vector registers of
 * work, so the rows need not share a loop): each row's super-blocks are
 * unpacked once for the nt tokens, and the float step per super-block is
 * the reference's, in scalar. Padding rows (a repeated pointer) are copied,
 * not recomputed. */
NEON_INLINE void kq_tile(const uint32_t type, const int nt, const uint8_t *const w[TILE_R],
                         const uint8_t *const a[TILE_T], int64_t n, float32x4_t res[TILE_T]) {
    const size_t wb = kq_bytes(type);
    const int has_min = kq_has_min(type);
    float out[TILE_T][TILE_R];
    for (int r = 0; r < TILE_R; r++) {
        if (r > 0 && w[r] == w[r - 1]) {
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) out[t][r] = out[t][r - 1];
            continue;
        }
        float acc[TILE_T];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) acc[t] = 0.0f;
        for (int64_t b = 0; b < n / QK256; b++) {
            const uint8_t *x = w[r] + (size_t)b * wb, *y[TILE_T];
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) y[t] = a[t] + (size_t)b * Q8K_BYTES;
            int32_t isum[TILE_T], msum[TILE_T] = {0};
            kq_block(type, nt, x, y, isum, msum);
            const float d = ld_f16(x + kq_d_off(type)), dmin = has_min ? ld_f16(x + kq_dmin_off(type)) : 0.0f;
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const float d8 = ld_f32(y[t]);
                float term = (d * d8) * (float)isum[t];
                if (has_min) term = term - (dmin * d8) * (float)msum[t];
                acc[t] += term;
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) out[t][r] = acc[t];
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) res[t] = vld1q_f32(out[t]);
}

#define Q2_K_TILE(nt, w, a, n, res) kq_tile(INFER_TYPE_Q2_K, nt, w, a, n, res)
#define Q3_K_TILE(nt, w, a, n, res) kq_tile(INFER_TYPE_Q3_K, nt, w, a, n, res)
#define Q4_K_TILE(nt, w, a, n, res) kq_tile(INFER_TYPE_Q4_K, nt, w, a, n, res)
#define Q5_K_TILE(nt, w, a, n, res) kq_tile(INFER_TYPE_Q5_K, nt, w, a, n, res)
#define Q6_K_TILE(nt, w, a, n, res) kq_tile(INFER_TYPE_Q6_K, nt, w, a, n, res)
NEON_TILES(tile_q2_k, Q2_K_TILE);
NEON_TILES(tile_q3_k, Q3_K_TILE);
NEON_TILES(tile_q4_k, Q4_K_TILE);
NEON_TILES(tile_q5_k, Q5_K_TILE);
NEON_TILES(tile_q6_k, Q6_K_TILE);

int neon_matmul_k(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                  const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    const neon_tile_fn *tiles;
    switch (type) {
    case INFER_TYPE_Q2_K: tiles = tile_q2_k_tiles; break;
    case INFER_TYPE_Q3_K: tiles = tile_q3_k_tiles; break;
    case INFER_TYPE_Q4_K: tiles = tile_q4_k_tiles; break;
    case INFER_TYPE_Q5_K: tiles = tile_q5_k_tiles; break;
    case INFER_TYPE_Q6_K: tiles = tile_q6_k_tiles; break;
    default: return 0;
    }
    neon_matmul_tiles(tiles, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
    return 1;
}

/* ---- dequantize --------------------------------------------------------------------- */

/* 16 values: dl * q, minus ml when the type has mins (the reference's
 * `dl * q - ml` / `dl * q`). */
NEON_INLINE void store_run(int8x16_t q, float dl, float ml, const int has_min, float *y) {
    int32x4_t v[4];
    widen_s8(q, v);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        float32x4_t f = vmulq_n_f32(vcvtq_f32_s32(v[k]), dl);
        if (has_min) f = vsubq_f32(f, vdupq_n_f32(ml));
        vst1q_f32(y + 4 * k, f);
    }
}

NEON_INLINE void dequant_kq(const uint32_t type, const uint8_t *x, float *y, int64_t n) {
    const size_t bytes = kq_bytes(type);
    const int has_min = kq_has_min(type);
    for (int64_t i = 0; i < n / QK256; i++, x += bytes, y += QK256) {
        int8x16_t scv, mnv = vdupq_n_s8(0);
        kq_scales(type, x, &scv, &mnv);
        int8_t sc[16], mn[16];
        vst1q_s8(sc, scv);
        vst1q_s8(mn, mnv);
        const float d = ld_f16(x + kq_d_off(type)), dmin = has_min ? ld_f16(x + kq_dmin_off(type)) : 0.0f;
        for (int g = 0; g < 4; g++) {
            int8x16_t w[4];
            kq_unpack(type, x, g, w);
            for (int k = 0; k < 4; k++) {
                const int run = 4 * g + k;
                store_run(w[k], d * sc[run], dmin * mn[run], has_min, y + 16 * run);
            }
        }
    }
}

static void dequant_q8k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK256; i++, x += Q8K_BYTES, y += QK256) {
        const float d = ld_f32(x);
        for (int run = 0; run < 16; run++) store_run(vreinterpretq_s8_u8(vld1q_u8(x + 4 + 16 * run)), d, 0.0f, 0,
                                                     y + 16 * run);
    }
}

int neon_dequant_k(uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    switch (type) {
    case INFER_TYPE_Q2_K: dequant_kq(INFER_TYPE_Q2_K, src, dst, n); return 1;
    case INFER_TYPE_Q3_K: dequant_kq(INFER_TYPE_Q3_K, src, dst, n); return 1;
    case INFER_TYPE_Q4_K: dequant_kq(INFER_TYPE_Q4_K, src, dst, n); return 1;
    case INFER_TYPE_Q5_K: dequant_kq(INFER_TYPE_Q5_K, src, dst, n); return 1;
    case INFER_TYPE_Q6_K: dequant_kq(INFER_TYPE_Q6_K, src, dst, n); return 1;
    case INFER_TYPE_Q8_K: dequant_q8k(src, dst, n); return 1;
    default: return 0;
    }
}
