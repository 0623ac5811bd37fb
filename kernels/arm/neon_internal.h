/*
 * neon_internal.h - what the NEON kernel files (kernels/arm/neon*.c) share:
 * unaligned field loads, the matmul tile shape and its driver, and the
 * per-family entry points neon.c puts in kernels_neon.
 *
 * Matmul tiles: TILE_R weight rows x up to TILE_T activation rows (tokens).
 * A tile function gets TILE_R row pointers (past n_rows the last real row
 * is repeated, so nothing is read out of bounds and the extra lanes are
 * simply not stored) and nt token pointers, and returns one float32x4 per
 * token whose lane r is dot(row r, token t). Weights are unpacked once per
 * block and reused for every token of the tile.
 *
 * Numerics: for the quantized types each output repeats, in the same
 * order, the float operations of the reference vec_dot (exact integer dot
 * per block or sub-block, then `sum += scale * isum ...` block after
 * block), so results equal kernels/ref's. Float types (F32/F16/BF16) sum in float
 * lanes instead of ref's double: a reordered sum, within n*2^-24*sum|w*a|.
 * Either way every output is computed the same way whatever its position
 * in a tile, so results do not depend on how callers split rows.
 *
 * Blocks are packed (an 18-byte Q4_0 block follows another), so multi-byte
 * fields are read with memcpy and vectors with vld1 on uint8_t pointers.
 */
#ifndef INFER_KERNELS_ARM_NEON_INTERNAL_H
#define INFER_KERNELS_ARM_NEON_INTERNAL_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dispatch.h"
#include "infer_gguf.h"
#include "ref/quants.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "kernels/arm needs -march=armv8.2-a+dotprod (see the Makefile's ISA_NEON)"
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kernels/arm reads GGUF's little-endian fields natively"
#endif

#define NEON_INLINE static inline __attribute__((always_inline))

#define TILE_R 4 /* weight rows per tile: the four lanes of a float32x4 */
#define TILE_T 4 /* activation rows (tokens) per tile, at most */

#define QK32 32  /* values per Q4_0 .. Q8_1 block */
#define QK256 256 /* values per K-quant super-block */
#define Q8K_BYTES 292

/* ---- packed little-endian fields --------------------------------------- */

NEON_INLINE uint16_t ld_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

NEON_INLINE uint32_t ld_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

NEON_INLINE float ld_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* An f16 field as float (exact, subnormals included: FPCR.FZ16 is off). */
NEON_INLINE float ld_f16(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

/* The f16 field at offset off of four blocks, one per lane. */
NEON_INLINE float32x4_t ld_f16x4(const uint8_t *const p[TILE_R], size_t off) {
    uint16x4_t h = vdup_n_u16(ld_u16(p[0] + off));
    h = vset_lane_u16(ld_u16(p[1] + off), h, 1);
    h = vset_lane_u16(ld_u16(p[2] + off), h, 2);
    h = vset_lane_u16(ld_u16(p[3] + off), h, 3);
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

/* float -> f16 bits, round to nearest even (what infer_f32_to_f16 gives). */
NEON_INLINE uint16_t f32_to_f16_bits(float f) {
    return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0);
}

/* ---- the matmul driver (neon.c) ------------------------------------------ */

/* One tile: res[t] lane r = dot(w[r], a[t]) over n_cols values, t < nt. */
typedef void (*neon_tile_fn)(const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_T], int64_t n_cols,
                             float32x4_t res[TILE_T]);

/* The whole matmul (infer_ref_matmul's contract) from one type's tile
 * functions: tiles[k] handles k+1 tokens. Row tiles outer, so a tile's
 * weights stay in L1 while the tokens stream past. */
void neon_matmul_tiles(const neon_tile_fn tiles[TILE_T], const void *W, size_t row_bytes, int64_t n_rows,
                       int64_t n_cols, const void *act, size_t act_stride, int64_t n_tok, float *out,
                       size_t out_stride);

/* Instantiates name_1 .. name_4 and the table name_tiles from an
 * always-inline body(nt, w, a, n_cols, res) with a constant nt. */
#define NEON_TILES(name, body)                                                                              \
    static void name##_1(const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_T], int64_t n,       \
                         float32x4_t res[TILE_T]) { body(1, w, a, n, res); }                               \
    static void name##_2(const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_T], int64_t n,       \
                         float32x4_t res[TILE_T]) { body(2, w, a, n, res); }                               \
    static void name##_3(const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_T], int64_t n,       \
                         float32x4_t res[TILE_T]) { body(3, w, a, n, res); }                               \
    static void name##_4(const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_T], int64_t n,       \
                         float32x4_t res[TILE_T]) { body(4, w, a, n, res); }                               \
    static const neon_tile_fn name##_tiles[TILE_T] = {name##_1, name##_2, name##_3, name##_4}

/* ---- per-family entry points ----------------------------------------------- */
/* Each returns 1 when it handled the type, 0 otherwise. */

/* neon_float.c: F32, F16, BF16 */
int neon_matmul_float(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                      const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
int neon_matmul_float_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                         const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
int neon_dequant_float(uint32_t type, const uint8_t *src, float *dst, int64_t n);

/* neon_legacy.c: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (and Q8_1 for dequantize) */
int neon_matmul_legacy(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                       const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
int neon_dequant_legacy(uint32_t type, const uint8_t *src, float *dst, int64_t n);

/* neon_kquants.c: Q2_K .. Q6_K (and Q8_K for dequantize) */
int neon_matmul_k(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                  const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
int neon_dequant_k(uint32_t type, const uint8_t *src, float *dst, int64_t n);

/* neon_quant.c: activations to F32, F16, BF16, Q8_0, Q8_1, Q8_K */
int neon_quantize(uint32_t type, const float *x, uint8_t *y, int64_t n);

#endif
