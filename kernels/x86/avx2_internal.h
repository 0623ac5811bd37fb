/*
 * avx2_internal.h - what the AVX2 kernel files (avx2*.c, compiled with
 * AVX2, FMA and F16C) share.
 *
 * AVX2 has no VNNI: the quantized matmuls multiply unsigned weight bytes
 * by signed activation bytes with vpmaddubsw (int16 pair sums, added in
 * int16 as far as the weight values' bound allows, x2_acc16) and widen or
 * scale them with vpmaddwd. Registers hold 8 rows (one ymm of int32
 * lanes), row i in 32-bit lane i. Batch panels: avx2_gemm.c; generation
 * over the file's layout: avx2_gemv.c, avx2_gemv_k.c; over repacked
 * weights (x86_common.h's sliced layout): avx2_gemv_p.c, avx2_repack.c.
 * The avxvnni level is this one with avx2_gemm.c built again for AVX-VNNI
 * (avxvnni_gemm.c), where vpdpbusd does the batch panels' dot products.
 */
#ifndef INFER_KERNELS_AVX2_INTERNAL_H
#define INFER_KERNELS_AVX2_INTERNAL_H

#include "x86_common.h"

#define X2_R 8 /* weight rows per panel */
#define X2_T 4 /* tokens per micro-kernel call */


#if defined(__GNUC__) && !defined(__clang__)
#define X2_UNROLL _Pragma("GCC unroll 16")
#else
#define X2_UNROLL _Pragma("unroll")
#endif
#define X2_INLINE static inline __attribute__((always_inline))

/* avx2_gemm.c; the same built for AVX-VNNI (avxvnni_gemm.c) as x2v_matmul_quant
 * and x2v_matmul_packed. */
void x2v_matmul_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                      const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
void x2v_matmul_packed(uint32_t type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols, const void *act,
                       size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
void x2_matmul_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
/* avx2_gemv.c (legacy) and avx2_gemv_k.c (K-quants): one token;
 * 0 when the type has no kernel. */
int x2_gemv_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const void *act,
                  float *out);
int x2_gemv_k(uint32_t type, const uint8_t *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const uint8_t *act,
              float *out);
/* avx2_gemv_p.c: repacked weights (the sliced layout of x86_common.h):
 * the bytes of their sliced form (0 for a type this level keeps in the
 * file's layout), and one activation row against groups [g0, g0 + ng)
 * (0 when the type has no such kernel). avx2_gemm.c: the matmul over
 * whole groups, for rows [r0, r0 + n_rows) (multiples of 16). */
size_t x2_packed_size(uint32_t type, int64_t n_rows, int64_t n_cols);
int x2_gemv_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const uint8_t *act,
                   float *out);
void x2_matmul_packed(uint32_t type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols, const void *act,
                      size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
/* avx2_float.c */
void x2_matmul_float(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
void x2_matmul_float_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                        const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

/* 4 bytes at p broadcast to the 8 lanes. */
X2_INLINE __m256i x2_bc32(const uint8_t *p) { return _mm256_broadcastd_epi32(_mm_loadu_si32((const void *)p)); }

/* The same 16 bytes (at off) of 8 rows as 4 slices: out[j] lane i holds
 * bytes off+4j .. off+4j+3 of rows[i] (rows i and 4+i share a register
 * first, then a 4x4 transpose of 32-bit words inside each 128-bit lane). */
X2_INLINE void x2_tr8(const uint8_t *const rows[8], size_t off, __m256i out[4]) {
    __m256i z[4];
    X2_UNROLL for (int i = 0; i < 4; i++)
        z[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(rows[i] + off))),
                                       _mm_loadu_si128((const __m128i *)(const void *)(rows[4 + i] + off)), 1);
    const __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm256_unpacklo_epi64(t0, t2);
    out[1] = _mm256_unpackhi_epi64(t0, t2);
    out[2] = _mm256_unpacklo_epi64(t1, t3);
    out[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* The low (hi = 0) or high f16 halves of 8 dwords as floats. */
X2_INLINE __m256 x2_f16_half(__m256i v, int hi) {
    v = hi ? _mm256_srli_epi32(v, 16) : _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    return _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* acc + the dot of unsigned bytes u (each <= 63) with signed bytes s, per
 * 32-bit lane: vpmaddubsw pair sums stay below 2 * 63 * 128, exact. */
X2_INLINE __m256i x2_dot_us(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

/* Horizontal sum of 8 floats in a fixed order. */
X2_INLINE float x2_hsum(__m256 v) {
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

/* Lanes [0, n) set, for maskload/maskstore of n < 8 floats. */
X2_INLINE __m256i x2_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The first n (0..8) floats at p: a plain load or store for all 8, masked
 * only for fewer. AMD microcodes the masked store (vmaskmovps to memory:
 * measured on Zen 4, an elementwise add of 2048 floats took 1007 ns with
 * it on every vector, slower than the scalar reference's 568). */
X2_INLINE __m256 x2_load_n(const float *p, int n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, x2_mask(n));
}
X2_INLINE void x2_store_n(float *p, int n, __m256 v) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else if (n > 0) _mm256_maskstore_ps(p, x2_mask(n), v);
}

/* Q6_K's 6-bit values 128c + 32k + 4j .. + 3 (k = 0..3) of 8 rows from the
 * file's slices (x86_common.h): low nibbles ql[64c + l] (k = 0 low, 2
 * high) and ql[64c + 32 + l] (k = 1, 3), 2-bit fields qh[32c + l] (bits
 * 2k). 16-bit shifts, masked per byte: nothing crosses bytes. */
X2_INLINE void x2_q6k_file_values(__m256i la, __m256i lb, __m256i hh, __m256i v[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    v[0] = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m30));
    v[1] = _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30));
    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(hh, m30));
    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
}

/* The same four values of 8 rows from Q6_K's recoded slices (x86_common.h),
 * S the first slice's half: its three slices are 64 bytes apart. */
X2_INLINE void x2_q6k_values(const uint8_t *S, __m256i v[4]) {
    const __m256i m6 = _mm256_set1_epi8(0x3f);
    const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)S);
    const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(S + 64));
    const __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(S + 128));
    v[0] = _mm256_and_si256(a, m6);
    v[1] = _mm256_and_si256(b, m6);
    v[2] = _mm256_and_si256(c, m6);
    const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(a, 6), _mm256_set1_epi8(0x03));
    const __m256i mid = _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(0x0c));
    v[3] = _mm256_or_si256(_mm256_or_si256(lo, mid), _mm256_and_si256(_mm256_srli_epi16(c, 2), _mm256_set1_epi8(0x30)));
}

/* acc + the int16 pair sums of unsigned bytes u by the signed activation
 * bytes b (vpmaddubsw), as a value opaque to the compiler: a chain of them
 * stays a chain. GCC otherwise reassociates the integer adds, computes
 * every product first and spills them all (the repacked Q4_K generation
 * kernel: 634 stack references, 43 with this). */
X2_INLINE __m256i x2_acc16(__m256i acc, __m256i u, __m256i b) {
    acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, b));
    __asm__("" : "+x"(acc));
    return acc;
}

/* f plus a Q4_K / Q5_K super-block's sum over 8 rows from its integer part
 * is: the 6-bit mins (bytes of mn_lo: 0..3, mn_hi: 4..7) against Q8_K's
 * 32-value group sums, then the two f16 scales of t0 (d | dmin), the
 * reference's float steps. */
X2_INLINE __m256 x2_q45k_finish(__m256i t0, __m256i mn_lo, __m256i mn_hi, __m256i is, const x86_kact *m, __m256 f) {
    const __m256i w16 = _mm256_set1_epi32(0x00ff00ff);
    __m256i corr = _mm256_madd_epi16(_mm256_and_si256(mn_lo, w16), _mm256_set1_epi32(m->pair[0]));
    corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(mn_lo, 8), w16), _mm256_set1_epi32(m->pair[1])));
    corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_and_si256(mn_hi, w16), _mm256_set1_epi32(m->pair[2])));
    corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(mn_hi, 8), w16), _mm256_set1_epi32(m->pair[3])));
    const __m256 da = _mm256_set1_ps(m->da);
    const __m256 dd = _mm256_mul_ps(x2_f16_half(t0, 0), da), dm = _mm256_mul_ps(x2_f16_half(t0, 1), da);
    return _mm256_add_ps(f, _mm256_sub_ps(_mm256_mul_ps(dd, _mm256_cvtepi32_ps(is)), _mm256_mul_ps(dm, _mm256_cvtepi32_ps(corr))));
}

/* Q3_K's 6-bit scales of 8 rows from its 12 scale bytes (s0: bytes 0..3,
 * s1: 4..7, s2: 8..11 of each lane), biased by 32: byte b of v[q] is
 * sub-block 4q + b's, low 4 bits from byte s (s < 8) or byte s - 8's high
 * nibble, top 2 bits 2(s/4) of byte 8 + s%4. */
X2_INLINE void x2_q3k_scales(__m256i s0, __m256i s1, __m256i s2, __m256i v[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m256i lo[4] = {s0, s1, _mm256_srli_epi16(s0, 4), _mm256_srli_epi16(s1, 4)};
    X2_UNROLL for (int q = 0; q < 4; q++) {
        const __m256i hi = q < 2 ? _mm256_slli_epi16(s2, 4 - 2 * q) : _mm256_srli_epi16(s2, 2 * q - 4); /* bits 2q, 2q+1 at 4, 5 */
        v[q] = _mm256_or_si256(_mm256_and_si256(lo[q], m4), _mm256_and_si256(hi, m30));
    }
}

/* f plus a Q3_K super-block's sum over 8 rows from its integer part is,
 * given its biased scales v (x2_q3k_scales) and d: the stored offset 4
 * times each sub-block's scale and Q8_K group sum taken off. */
X2_INLINE __m256 x2_q3k_finish(const __m256i v[4], __m256 dq, __m256i is, const x86_kact *m, __m256 f) {
    const __m256i w16 = _mm256_set1_epi32(0x00ff00ff), b32 = _mm256_set1_epi16(32);
    __m256i corr = _mm256_setzero_si256();
    X2_UNROLL for (int q = 0; q < 4; q++) {
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_sub_epi16(_mm256_and_si256(v[q], w16), b32), _mm256_set1_epi32(m->pair[2 * q])));
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_sub_epi16(_mm256_and_si256(_mm256_srli_epi16(v[q], 8), w16), b32),
                                                        _mm256_set1_epi32(m->pair[2 * q + 1])));
    }
    corr = _mm256_slli_epi32(corr, 2);
    const __m256 d = _mm256_mul_ps(dq, _mm256_set1_ps(m->da));
    return _mm256_add_ps(f, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(is, corr))));
}

/* f plus a Q2_K super-block's sum over 8 rows from its integer part is,
 * given its scale bytes v (4 per lane: low nibble scale, high nibble min)
 * and dd (d | dmin per lane): the mins against Q8_K's group sums. */
X2_INLINE __m256 x2_q2k_finish(const __m256i v[4], __m256i dd, __m256i is, const x86_kact *m, __m256 f) {
    const __m256i w16 = _mm256_set1_epi32(0x000f000f);
    __m256i corr = _mm256_setzero_si256();
    X2_UNROLL for (int q = 0; q < 4; q++) {
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v[q], 4), w16), _mm256_set1_epi32(m->pair[2 * q])));
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v[q], 12), w16),
                                                        _mm256_set1_epi32(m->pair[2 * q + 1])));
    }
    const __m256 da = _mm256_set1_ps(m->da);
    const __m256 d = _mm256_mul_ps(da, x2_f16_half(dd, 0)), dm = _mm256_mul_ps(da, x2_f16_half(dd, 1));
    return _mm256_add_ps(f, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(is)), _mm256_mul_ps(dm, _mm256_cvtepi32_ps(corr))));
}

#endif
