/*
 * avx512_internal.h - what the AVX-512 kernel files (avx512*.c, compiled
 * with AVX-512 F/BW/VL/DQ/VNNI) share: panel sizes (x86_common.h explains
 * panels) and the entry points between the files.
 */
#ifndef INFER_KERNELS_AVX512_INTERNAL_H
#define INFER_KERNELS_AVX512_INTERNAL_H

#include "x86_common.h"

#define X5_R 16 /* weight rows per panel: one zmm of int32 / float lanes */
#define X5_T 8  /* tokens per micro-kernel call */

/* Bytes of one panel block. */
#define X5_LEG_Q (8 * 64)                          /* 8 slices of 16 rows x 4 bytes */
#define X5_LEG_BLOCK (X5_LEG_Q + 2 * 64)           /* + d[16], m[16] */
#define X5_K_Q (64 * 64)                           /* 64 slices */
#define X5_K_SC X5_K_Q                             /* int32 sc[16][16] */
#define X5_K_M16 (X5_K_SC + 16 * 64)               /* int32 m16[8][16] */
#define X5_K_D (X5_K_M16 + 8 * 64)                 /* float d[16] */
#define X5_K_DMIN (X5_K_D + 64)                    /* float dmin[16] */
#define X5_K_BLOCK (X5_K_DMIN + 64)

/* avx512_pack.c: rows [0, nr) (nr <= 16; missing rows repeat the last) of
 * W, blocks [b0, b0 + nb), into panel blocks. */
void x5_pack_legacy(uint32_t type, const uint8_t *W, size_t row_bytes, int nr, int64_t b0, int64_t nb,
                    uint8_t *panel);
void x5_pack_k(uint32_t type, const uint8_t *W, size_t row_bytes, int nr, int64_t b0, int64_t nb, uint8_t *panel);

/* avx512_gemm.c: quantized weights (legacy and K families). */
void x5_matmul_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

/* avx512_gemv.c: one activation row against quantized weights, straight
 * from the file's layout (generation). 0 when the type has no such kernel. */
int x5_gemv_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                  const void *act, float *out);

/* avx512_float.c: F32, F16, BF16 weights. */
void x5_matmul_float(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

/* Horizontal sum of 16 floats in a fixed order. */
static inline float x5_hsum(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

#endif
