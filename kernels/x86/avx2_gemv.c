/*
 * avx2_gemv.c - one activation row against the legacy types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0) for token generation, decoded in registers from the
 * file's layout: 8 rows in the 8 lanes of a ymm, their same-offset bytes
 * transposed into 4-byte slices (as the AVX-512 kernels do with 16), then
 * vpmaddubsw + vpmaddwd per slice. The weight bytes are unsigned (offset
 * added back through -offset * sum(activations)), the pair sums stay far
 * from int16 saturation (at most 2 * 31 * 128), and Q8_0's signed bytes
 * are split into even and odd int16 halves for vpmaddwd. Integer block dots
 * are therefore exact for any bytes, and the float steps are the batched
 * kernel's: bit-identical to kernels/ref.
 *
 * K-quants: avx2_gemv_k.c.
 */
#include "avx2_internal.h"

#define UNROLL X2_UNROLL
#define INLINE X2_INLINE
#define NB_CHUNK 512 /* activation blocks prepared at a time */

/* Lane value x (0..15) -> bit k of x at bit 4 of byte k. */
INLINE __m256i spread4(__m256i x) {
    return _mm256_slli_epi32(_mm256_and_si256(_mm256_mullo_epi32(x, _mm256_set1_epi32(0x00204081)),
                                              _mm256_set1_epi32(0x01010101)),
                             4);
}

INLINE void gemv_legacy(const uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                        const uint8_t *act, float *out) {
    x86_leg_act meta[NB_CHUNK];
    const int has_min = x86_legacy_has_min(type);
    const size_t bb = x86_block_bytes(type), ab = has_min ? 36 : 34, qa = has_min ? 4 : 2;
    const size_t qs = type == INFER_TYPE_Q4_0 ? 2 : type == INFER_TYPE_Q4_1 ? 4 : type == INFER_TYPE_Q5_0 ? 6 : 8;
    const int64_t nb = n_cols / X86_QK;
    const __m256i m4 = _mm256_set1_epi8(15);
    if (nb <= NB_CHUNK) x86_prep_leg_act(type, act, nb, 0, meta);
    for (int64_t r0 = 0; r0 < n_rows; r0 += X2_R) {
        const int nr = n_rows - r0 < X2_R ? (int)(n_rows - r0) : X2_R;
        const uint8_t *rows[8];
        int32_t idx[8];
        UNROLL for (int i = 0; i < 8; i++) {
            const int ri = i < nr ? i : nr - 1;
            rows[i] = W + (size_t)(r0 + ri) * rb;
            idx[i] = (int32_t)((size_t)ri * rb);
        }
        const __m256i vidx = _mm256_loadu_si256((const __m256i *)(const void *)idx);
        __m256 f = _mm256_setzero_ps();
        for (int64_t c0 = 0; c0 < nb; c0 += NB_CHUNK) {
            const int64_t n = nb - c0 < NB_CHUNK ? nb - c0 : NB_CHUNK;
            if (nb > NB_CHUNK) x86_prep_leg_act(type, act + (size_t)c0 * ab, n, 0, meta);
            for (int64_t b = 0; b < n; b++) {
                const size_t off = (size_t)(c0 + b) * bb;
                const uint8_t *aq = act + (size_t)(c0 + b) * ab + qa;
                { /* the next 8-row group (contiguous): this block's share, in address order */
                    const uint8_t *nx = rows[0] + 8 * rb + (size_t)(c0 + b) * 8 * bb;
                    for (size_t l = 0; l < 8 * bb; l += 64) _mm_prefetch((const char *)(nx + l), _MM_HINT_T0);
                }
                const __m256i hd = _mm256_i32gather_epi32((const int *)(const void *)(rows[0] + off), vidx, 1);
                __m256i t[8], c = _mm256_set1_epi32(has_min ? 0 : meta[b].x.corr);
                if (type == INFER_TYPE_Q8_0) {
                    x2_tr8(rows, off + 2, t);
                    x2_tr8(rows, off + 18, t + 4);
                    UNROLL for (int s = 0; s < 8; s++) { /* even and odd bytes as int16: exact for any bytes */
                        const __m256i a4 = x2_bc32(aq + 4 * s);
                        const __m256i we = _mm256_srai_epi16(_mm256_slli_epi16(t[s], 8), 8), wo = _mm256_srai_epi16(t[s], 8);
                        const __m256i ae = _mm256_srai_epi16(_mm256_slli_epi16(a4, 8), 8), ao = _mm256_srai_epi16(a4, 8);
                        c = _mm256_add_epi32(c, _mm256_add_epi32(_mm256_madd_epi16(we, ae), _mm256_madd_epi16(wo, ao)));
                    }
                } else {
                    x2_tr8(rows, off + qs, t);
                    UNROLL for (int j = 0; j < 4; j++) {
                        t[4 + j] = _mm256_and_si256(_mm256_srli_epi16(t[j], 4), m4);
                        t[j] = _mm256_and_si256(t[j], m4);
                    }
                    if (type == INFER_TYPE_Q5_0 || type == INFER_TYPE_Q5_1) {
                        const __m256i h = _mm256_i32gather_epi32(
                            (const int *)(const void *)(rows[0] + off + (type == INFER_TYPE_Q5_0 ? 2 : 4)), vidx, 1);
                        UNROLL for (int s = 0; s < 8; s++)
                            t[s] = _mm256_or_si256(t[s], spread4(_mm256_and_si256(_mm256_srli_epi32(h, 4 * s), _mm256_set1_epi32(15))));
                    }
                    UNROLL for (int s = 0; s < 8; s++)
                        c = x2_dot_us(c, t[s], x2_bc32(aq + 4 * s));
                }
                __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(c), _mm256_mul_ps(x2_f16_half(hd, 0), _mm256_set1_ps(meta[b].da)));
                if (has_min) v = _mm256_add_ps(v, _mm256_mul_ps(x2_f16_half(hd, 1), _mm256_set1_ps(meta[b].x.sa)));
                f = _mm256_add_ps(f, v);
            }
        }
        x2_store_n(out + r0, nr, f);
    }
}

static void gemv_q4_0(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_legacy(INFER_TYPE_Q4_0, W, rb, r, k, a, o);
}
static void gemv_q4_1(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_legacy(INFER_TYPE_Q4_1, W, rb, r, k, a, o);
}
static void gemv_q5_0(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_legacy(INFER_TYPE_Q5_0, W, rb, r, k, a, o);
}
static void gemv_q5_1(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_legacy(INFER_TYPE_Q5_1, W, rb, r, k, a, o);
}
static void gemv_q8_0(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_legacy(INFER_TYPE_Q8_0, W, rb, r, k, a, o);
}

int x2_gemv_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const void *act,
                  float *out) {
    if (row_bytes > (size_t)INT32_MAX / 8) return 0; /* gathers use 32-bit row offsets */
    switch (type) {
    case INFER_TYPE_Q4_0: gemv_q4_0(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q4_1: gemv_q4_1(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_0: gemv_q5_0(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_1: gemv_q5_1(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q8_0: gemv_q8_0(W, row_bytes, n_rows, n_cols, act, out); return 1;
    default: return x2_gemv_k(type, W, row_bytes, n_rows, n_cols, act, out);
    }
}
