/*
 * neon_legacy.c - the 32-value block types: Q4_0, Q4_1, Q5_0, Q5_1 and
 * Q8_0 weights against Q8_0 / Q8_1 activations (vdotq_s32), and the
 * dequantization of those and of Q8_1.
 *
 * Layouts are kernels/ref/quants_legacy.c's: byte qs[j] holds value j in
 * its low nibble and value j + 16 in its high nibble; bit j of Q5's qh is
 * the fifth bit of value j. A block unpacks to two int8x16 (values 0..15
 * and 16..31) with the type's offset already subtracted, so one pair of
 * vdotq_s32 gives the reference's exact integer dot.
 *
 * Per block and output the float steps are the reference's, in its order:
 *   Q4_0, Q5_0, Q8_0:  sum += isum * (d_w * d_a)
 *   Q4_1, Q5_1:        sum += (d_w * d_a) * isum + m_w * s_a
 * with the four lanes of a float32x4 holding four weight rows.
 */
#include "neon_internal.h"

/* bit (j % 8) for lane j: selects bit j of a byte broadcast to 8 lanes */
static const uint8_t BIT_OF_LANE[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};

NEON_INLINE size_t legacy_bytes(const uint32_t type) {
    switch (type) {
    case INFER_TYPE_Q4_0: return 18;
    case INFER_TYPE_Q4_1: return 20;
    case INFER_TYPE_Q5_0: return 22;
    case INFER_TYPE_Q5_1: return 24;
    case INFER_TYPE_Q8_1: return 36;
    default: return 34; /* Q8_0 */
    }
}

/* Types with a minimum m (and Q8_1 activations, whose s pairs with it). */
NEON_INLINE int legacy_has_min(const uint32_t type) {
    return type == INFER_TYPE_Q4_1 || type == INFER_TYPE_Q5_1;
}

/* The fifth bits of values 0..15 (lo) and 16..31 (hi) as 0x10 or 0. */
NEON_INLINE void q5_high_bits(uint32_t qh, uint8x16_t *lo, uint8x16_t *hi) {
    const uint8x16_t sel = vld1q_u8(BIT_OF_LANE), five = vdupq_n_u8(0x10);
    const uint8x16_t b0 = vcombine_u8(vdup_n_u8((uint8_t)qh), vdup_n_u8((uint8_t)(qh >> 8)));
    const uint8x16_t b1 = vcombine_u8(vdup_n_u8((uint8_t)(qh >> 16)), vdup_n_u8((uint8_t)(qh >> 24)));
    *lo = vandq_u8(vtstq_u8(b0, sel), five);
    *hi = vandq_u8(vtstq_u8(b1, sel), five);
}

/* The 32 quants of a block as signed bytes with the type's offset
 * subtracted: values 0..15 in lo, 16..31 in hi. */
NEON_INLINE void legacy_unpack(const uint32_t type, const uint8_t *b, int8x16_t *lo, int8x16_t *hi) {
    if (type == INFER_TYPE_Q8_0) {
        *lo = vreinterpretq_s8_u8(vld1q_u8(b + 2));
        *hi = vreinterpretq_s8_u8(vld1q_u8(b + 18));
        return;
    }
    const size_t qs_off = type == INFER_TYPE_Q4_0 ? 2 : type == INFER_TYPE_Q4_1 ? 4 : type == INFER_TYPE_Q5_0 ? 6 : 8;
    const uint8x16_t qs = vld1q_u8(b + qs_off);
    uint8x16_t l = vandq_u8(qs, vdupq_n_u8(0x0f)), h = vshrq_n_u8(qs, 4);
    if (type == INFER_TYPE_Q5_0 || type == INFER_TYPE_Q5_1) {
        uint8x16_t hl, hh;
        q5_high_bits(ld_u32(b + (type == INFER_TYPE_Q5_0 ? 2 : 4)), &hl, &hh);
        l = vorrq_u8(l, hl);
        h = vorrq_u8(h, hh);
    }
    int8x16_t sl = vreinterpretq_s8_u8(l), sh = vreinterpretq_s8_u8(h);
    if (type == INFER_TYPE_Q4_0 || type == INFER_TYPE_Q5_0) {
        const int8x16_t off = vdupq_n_s8(type == INFER_TYPE_Q4_0 ? 8 : 16);
        sl = vsubq_s8(sl, off);
        sh = vsubq_s8(sh, off);
    }
    *lo = sl;
    *hi = sh;
}

/* One tile: 4 weight rows x nt tokens over n values. Per block the four
 * rows are unpacked once and dotted with every token's block. */
NEON_INLINE void legacy_tile(const uint32_t type, const int nt, const uint8_t *const w[TILE_R],
                             const uint8_t *const a[TILE_T], int64_t n, float32x4_t res[TILE_T]) {
    const size_t wb = legacy_bytes(type);
    const int has_min = legacy_has_min(type);
    const size_t ab = has_min ? 36 : 34, aq = has_min ? 4 : 2; /* Q8_1 or Q8_0 block, its qs */
    float32x4_t acc[TILE_T];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) acc[t] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < n / QK32; b++) {
        const uint8_t *wb_[TILE_R];
        int8x16_t lo[TILE_R], hi[TILE_R];
#pragma GCC unroll 4
        for (int r = 0; r < TILE_R; r++) {
            wb_[r] = w[r] + (size_t)b * wb;
            legacy_unpack(type, wb_[r], &lo[r], &hi[r]);
        }
        const float32x4_t dw = ld_f16x4(wb_, 0);
        const float32x4_t mw = has_min ? ld_f16x4(wb_, 2) : vdupq_n_f32(0.0f);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const uint8_t *y = a[t] + (size_t)b * ab;
            const int8x16_t y0 = vreinterpretq_s8_u8(vld1q_u8(y + aq));
            const int8x16_t y1 = vreinterpretq_s8_u8(vld1q_u8(y + aq + 16));
            int32x4_t p[TILE_R];
#pragma GCC unroll 4
            for (int r = 0; r < TILE_R; r++) p[r] = vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo[r], y0), hi[r], y1);
            /* lane r: the integer dot of row r */
            const float32x4_t isum = vcvtq_f32_s32(vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3])));
            float32x4_t term = vmulq_f32(isum, vmulq_n_f32(dw, ld_f16(y)));
            if (has_min) term = vaddq_f32(term, vmulq_n_f32(mw, ld_f16(y + 2)));
            acc[t] = vaddq_f32(acc[t], term);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) res[t] = acc[t];
}

#define Q4_0_TILE(nt, w, a, n, res) legacy_tile(INFER_TYPE_Q4_0, nt, w, a, n, res)
#define Q4_1_TILE(nt, w, a, n, res) legacy_tile(INFER_TYPE_Q4_1, nt, w, a, n, res)
#define Q5_0_TILE(nt, w, a, n, res) legacy_tile(INFER_TYPE_Q5_0, nt, w, a, n, res)
#define Q5_1_TILE(nt, w, a, n, res) legacy_tile(INFER_TYPE_Q5_1, nt, w, a, n, res)
#define Q8_0_TILE(nt, w, a, n, res) legacy_tile(INFER_TYPE_Q8_0, nt, w, a, n, res)
NEON_TILES(tile_q4_0, Q4_0_TILE);
NEON_TILES(tile_q4_1, Q4_1_TILE);
NEON_TILES(tile_q5_0, Q5_0_TILE);
NEON_TILES(tile_q5_1, Q5_1_TILE);
NEON_TILES(tile_q8_0, Q8_0_TILE);

int neon_matmul_legacy(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                       const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    const neon_tile_fn *tiles;
    switch (type) {
    case INFER_TYPE_Q4_0: tiles = tile_q4_0_tiles; break;
    case INFER_TYPE_Q4_1: tiles = tile_q4_1_tiles; break;
    case INFER_TYPE_Q5_0: tiles = tile_q5_0_tiles; break;
    case INFER_TYPE_Q5_1: tiles = tile_q5_1_tiles; break;
    case INFER_TYPE_Q8_0: tiles = tile_q8_0_tiles; break;
    default: return 0;
    }
    neon_matmul_tiles(tiles, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
    return 1;
}

/* ---- dequantize ---------------------------------------------------------------- */

/* 16 signed bytes to floats: (float)q * d, plus m for the types with a
 * minimum, the reference's expressions. */
NEON_INLINE void store_scaled16(int8x16_t q, float d, float m, const int add_m, float *y) {
    const int16x8_t q0 = vmovl_s8(vget_low_s8(q)), q1 = vmovl_high_s8(q);
    const int32x4_t v[4] = {vmovl_s16(vget_low_s16(q0)), vmovl_high_s16(q0), vmovl_s16(vget_low_s16(q1)),
                            vmovl_high_s16(q1)};
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        float32x4_t f = vmulq_n_f32(vcvtq_f32_s32(v[k]), d);
        if (add_m) f = vaddq_f32(f, vdupq_n_f32(m));
        vst1q_f32(y + 4 * k, f);
    }
}

NEON_INLINE void dequant_legacy(const uint32_t type, const uint8_t *x, float *y, int64_t n) {
    const size_t bytes = legacy_bytes(type);
    for (int64_t i = 0; i < n / QK32; i++, x += bytes, y += QK32) {
        int8x16_t lo, hi;
        if (type == INFER_TYPE_Q8_1) { /* d | s | 32 int8 */
            lo = vreinterpretq_s8_u8(vld1q_u8(x + 4));
            hi = vreinterpretq_s8_u8(vld1q_u8(x + 20));
        } else {
            legacy_unpack(type, x, &lo, &hi);
        }
        const float d = ld_f16(x);
        const int has_min = legacy_has_min(type);
        const float m = has_min ? ld_f16(x + 2) : 0.0f;
        store_scaled16(lo, d, m, has_min, y);
        store_scaled16(hi, d, m, has_min, y + 16);
    }
}

int neon_dequant_legacy(uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    switch (type) {
    case INFER_TYPE_Q4_0: dequant_legacy(INFER_TYPE_Q4_0, src, dst, n); return 1;
    case INFER_TYPE_Q4_1: dequant_legacy(INFER_TYPE_Q4_1, src, dst, n); return 1;
    case INFER_TYPE_Q5_0: dequant_legacy(INFER_TYPE_Q5_0, src, dst, n); return 1;
    case INFER_TYPE_Q5_1: dequant_legacy(INFER_TYPE_Q5_1, src, dst, n); return 1;
    case INFER_TYPE_Q8_0: dequant_legacy(INFER_TYPE_Q8_0, src, dst, n); return 1;
    case INFER_TYPE_Q8_1: dequant_legacy(INFER_TYPE_Q8_1, src, dst, n); return 1;
    default: return 0;
    }
}
