/*
 * neon_float.c - the float weight types: F32, F16 and BF16 rows against
 * activations of the same type (their vec_dot_type), and their dequantize.
 *
 * F16 and BF16 widen to f32 exactly (vcvt; a 16-bit shift), so every
 * product of two of them is exact in f32; F32 products round once, as in
 * the reference. The reference sums in double, these kernels in one f32x4
 * accumulator per output (fused multiply-add) and a fixed final reduction:
 * the difference is bounded by n * 2^-24 * sum |w_i a_i|.
 */
#include "neon_internal.h"

/* Four values of a float type from p (unaligned) as f32. */
NEON_INLINE float32x4_t float_load4(const uint32_t type, const uint8_t *p) {
    if (type == INFER_TYPE_F32) return vreinterpretq_f32_u8(vld1q_u8(p));
    const uint16x4_t h = vreinterpret_u16_u8(vld1_u8(p));
    if (type == INFER_TYPE_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); /* BF16 */
}

NEON_INLINE float float_load1(const uint32_t type, const uint8_t *p) {
    if (type == INFER_TYPE_F32) return ld_f32(p);
    if (type == INFER_TYPE_F16) return ld_f16(p);
    const uint32_t u = (uint32_t)ld_u16(p) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

NEON_INLINE size_t float_size(const uint32_t type) { return type == INFER_TYPE_F32 ? 4 : 2; }

/* One tile: 4 rows x nt tokens, 4 columns a step, one accumulator per
 * output; the n % 4 columns left are added in scalar after the reduction. */
NEON_INLINE void float_tile(const uint32_t type, const int nt, const uint8_t *const w[TILE_R],
                            const uint8_t *const a[TILE_T], int64_t n, float32x4_t res[TILE_T]) {
    const size_t es = float_size(type);
    float32x4_t acc[TILE_T][TILE_R];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
        for (int r = 0; r < TILE_R; r++) acc[t][r] = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t wv[TILE_R];
#pragma GCC unroll 4
        for (int r = 0; r < TILE_R; r++) wv[r] = float_load4(type, w[r] + (size_t)i * es);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const float32x4_t av = float_load4(type, a[t] + (size_t)i * es);
#pragma GCC unroll 4
            for (int r = 0; r < TILE_R; r++) acc[t][r] = vfmaq_f32(acc[t][r], wv[r], av);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        float s[TILE_R];
#pragma GCC unroll 4
        for (int r = 0; r < TILE_R; r++) {
            s[r] = vaddvq_f32(acc[t][r]);
            for (int64_t j = i; j < n; j++)
                s[r] += float_load1(type, w[r] + (size_t)j * es) * float_load1(type, a[t] + (size_t)j * es);
        }
        res[t] = vld1q_f32(s);
    }
}

#define F32_TILE(nt, w, a, n, res) float_tile(INFER_TYPE_F32, nt, w, a, n, res)
#define F16_TILE(nt, w, a, n, res) float_tile(INFER_TYPE_F16, nt, w, a, n, res)
#define BF16_TILE(nt, w, a, n, res) float_tile(INFER_TYPE_BF16, nt, w, a, n, res)
NEON_TILES(tile_f32, F32_TILE);
NEON_TILES(tile_f16, F16_TILE);
NEON_TILES(tile_bf16, BF16_TILE);

int neon_matmul_float(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                      const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    const neon_tile_fn *tiles;
    switch (type) {
    case INFER_TYPE_F32: tiles = tile_f32_tiles; break;
    case INFER_TYPE_F16: tiles = tile_f16_tiles; break;
    case INFER_TYPE_BF16: tiles = tile_bf16_tiles; break;
    default: return 0;
    }
    neon_matmul_tiles(tiles, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
    return 1;
}

/* W stored by column (value (r, k) at W + k * k_bytes + r * es): four
 * rows' values of one column side by side are one vector, times each
 * token's value of that column, one f32x4 lane per output summed over k in
 * order by fused multiply-add. 0 when the type is not a float type. */
int neon_matmul_float_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                         const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (type != INFER_TYPE_F32 && type != INFER_TYPE_F16 && type != INFER_TYPE_BF16) return 0;
    const size_t es = float_size(type);
    const uint8_t *w = (const uint8_t *)W, *a = (const uint8_t *)act;
    for (int64_t r0 = 0; r0 < n_rows; r0 += TILE_R) {
        const int nr = n_rows - r0 < TILE_R ? (int)(n_rows - r0) : TILE_R;
        for (int64_t t0 = 0; t0 < n_tok; t0 += TILE_T) {
            const int nt = n_tok - t0 < TILE_T ? (int)(n_tok - t0) : TILE_T;
            float32x4_t acc[TILE_T];
            for (int t = 0; t < TILE_T; t++) acc[t] = vdupq_n_f32(0.0f);
            uint8_t part[4 * TILE_R] = {0}; /* fewer than four rows left: no read past them (the rest stays 0) */
            for (int64_t k = 0; k < n_cols; k++) {
                const uint8_t *src = w + (size_t)k * k_bytes + (size_t)r0 * es;
                if (nr < TILE_R) {
                    memcpy(part, src, (size_t)nr * es);
                    src = part;
                }
                const float32x4_t wv = float_load4(type, src);
                for (int t = 0; t < nt; t++)
                    acc[t] = vfmaq_n_f32(acc[t], wv, float_load1(type, a + (size_t)(t0 + t) * act_stride + (size_t)k * es));
            }
            for (int t = 0; t < nt; t++) {
                float lanes[TILE_R];
                vst1q_f32(lanes, acc[t]);
                memcpy(out + (size_t)(t0 + t) * out_stride + r0, lanes, (size_t)nr * sizeof(float));
            }
        }
    }
    return 1;
}

/* ---- dequantize ---------------------------------------------------------------- */

NEON_INLINE void dequant_float(const uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    const size_t es = float_size(type);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vst1q_f32(dst + i, float_load4(type, src + (size_t)i * es));
        vst1q_f32(dst + i + 4, float_load4(type, src + (size_t)(i + 4) * es));
    }
    for (; i < n; i++) dst[i] = float_load1(type, src + (size_t)i * es);
}

int neon_dequant_float(uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    switch (type) {
    case INFER_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 1;
    case INFER_TYPE_F16: dequant_float(INFER_TYPE_F16, src, dst, n); return 1;
    case INFER_TYPE_BF16: dequant_float(INFER_TYPE_BF16, src, dst, n); return 1;
    default: return 0;
    }
}
