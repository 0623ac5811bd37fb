/*
 * avx2_gemv_k.c - one activation row (Q8_K) against K-quant
 * weights (token generation) on AVX2: avx512_gemv_k.c with 8 rows per ymm
 * and vpmaddubsw + vpmaddwd in place of vpdpbusd. Values are unsigned
 * (Q6_K's offset 32 comes back through 32 * sum(scale * group sum)), so
 * the pair sums stay below 2 * 63 * 128 and every integer is exact; the
 * float work per super-block is the reference's: bit-identical results.
 */
#include "avx2_internal.h"

#define UNROLL X2_UNROLL
#define INLINE X2_INLINE
#define KV_NSB 128

INLINE __m256i b8(int v) { return _mm256_set1_epi8((char)v); }
INLINE __m256i and8(__m256i v, int m) { return _mm256_and_si256(v, b8(m)); }
INLINE __m256i srl(__m256i v, int n) { return _mm256_srli_epi16(v, n); }
INLINE __m256i sll(__m256i v, int n) { return _mm256_slli_epi16(v, n); }
INLINE __m256i ubyte(__m256i v, int k) { return _mm256_and_si256(_mm256_srli_epi32(v, 8 * k), _mm256_set1_epi32(0xff)); }
INLINE __m256i sbyte(__m256i v, int k) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 24 - 8 * k), 24); }

/* Bit `bit` of every byte moved to bit 4. */
INLINE __m256i bit4(__m256i h, int bit) {
    if (bit >= 4) return and8(srl(h, bit - 4), 0x10);
    return and8(sll(h, 4 - bit), 0x10);
}

INLINE __m256 sb_q45k(const int q5, const uint8_t *const rows[8], size_t off, const uint8_t *aq, const x86_kact *m,
                      __m256 f) {
    const __m256i m4 = b8(0x0f);
    __m256i t[4], h[8], d[8];
    x2_tr8(rows, off, t); /* d|dmin, scales 0..3, 4..7, 8..11 */
    const __m256i sc_lo = and8(t[1], 0x3f), mn_lo = and8(t[2], 0x3f);
    const __m256i sc_hi = _mm256_or_si256(and8(t[3], 0x0f), and8(srl(t[1], 2), 0x30));
    const __m256i mn_hi = _mm256_or_si256(and8(srl(t[3], 4), 0x0f), and8(srl(t[2], 2), 0x30));
    if (q5) {
        x2_tr8(rows, off + 16, h);
        x2_tr8(rows, off + 32, h + 4);
    }
    const size_t qs = off + (q5 ? 48 : 16);
    __m256i is = _mm256_setzero_si256();
    UNROLL for (int p = 0; p < 4; p++) {
        x2_tr8(rows, qs + 32 * (size_t)p, d);
        x2_tr8(rows, qs + 32 * (size_t)p + 16, d + 4);
        __m256i clo = _mm256_setzero_si256(), chi = _mm256_setzero_si256();
        UNROLL for (int j = 0; j < 8; j++) {
            __m256i lo = _mm256_and_si256(d[j], m4), hi = _mm256_and_si256(srl(d[j], 4), m4);
            if (q5) {
                lo = _mm256_or_si256(lo, bit4(h[j], 2 * p));
                hi = _mm256_or_si256(hi, bit4(h[j], 2 * p + 1));
            }
            clo = x2_dot_us(clo, lo, x2_bc32(aq + 64 * p + 4 * j));
            chi = x2_dot_us(chi, hi, x2_bc32(aq + 64 * p + 32 + 4 * j));
        }
        const __m256i scs = p < 2 ? sc_lo : sc_hi;
        is = _mm256_add_epi32(is, _mm256_mullo_epi32(clo, ubyte(scs, (2 * p) & 3)));
        is = _mm256_add_epi32(is, _mm256_mullo_epi32(chi, ubyte(scs, (2 * p + 1) & 3)));
    }
    return x2_q45k_finish(t[0], mn_lo, mn_hi, is, m, f);
}

INLINE __m256 sb_q6k(const uint8_t *const rows[8], __m256i vidx, size_t off, const uint8_t *aq, const x86_kact *m, __m256 f) {
    const __m256i m4 = b8(0x0f);
    __m256i sc[4];
    x2_tr8(rows, off + 192, sc);
    const __m256i dw = _mm256_i32gather_epi32((const int *)(const void *)(rows[0] + off + 206), vidx, 1);
    __m256i is = _mm256_setzero_si256();
    UNROLL for (int c = 0; c < 2; c++) {
        UNROLL for (int q = 0; q < 2; q++) {
            __m256i la[4], lb[4], hh[4];
            x2_tr8(rows, off + 64 * (size_t)c + 16 * (size_t)q, la);
            x2_tr8(rows, off + 64 * (size_t)c + 32 + 16 * (size_t)q, lb);
            x2_tr8(rows, off + 128 + 32 * (size_t)c + 16 * (size_t)q, hh);
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256()};
            UNROLL for (int i = 0; i < 4; i++) {
                const uint8_t *a = aq + 128 * c + 4 * (4 * q + i);
                acc[0] = x2_dot_us(acc[0], _mm256_or_si256(_mm256_and_si256(la[i], m4), and8(sll(hh[i], 4), 0x30)), x2_bc32(a));
                acc[1] = x2_dot_us(acc[1], _mm256_or_si256(_mm256_and_si256(lb[i], m4), and8(sll(hh[i], 2), 0x30)), x2_bc32(a + 32));
                acc[2] = x2_dot_us(acc[2], _mm256_or_si256(_mm256_and_si256(srl(la[i], 4), m4), and8(hh[i], 0x30)), x2_bc32(a + 64));
                acc[3] = x2_dot_us(acc[3], _mm256_or_si256(_mm256_and_si256(srl(lb[i], 4), m4), and8(srl(hh[i], 2), 0x30)),
                                   x2_bc32(a + 96));
            }
            UNROLL for (int k = 0; k < 4; k++) {
                const int s = 8 * c + 2 * k + q;
                is = _mm256_add_epi32(is, _mm256_mullo_epi32(acc[k], sbyte(sc[s / 4], s % 4)));
            }
        }
    }
    __m256i corr = _mm256_setzero_si256();
    UNROLL for (int q = 0; q < 4; q++) {
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_srai_epi16(_mm256_slli_epi16(sc[q], 8), 8), _mm256_set1_epi32(m->pair[2 * q])));
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_srai_epi16(sc[q], 8), _mm256_set1_epi32(m->pair[2 * q + 1])));
    }
    corr = _mm256_slli_epi32(corr, 5);
    const __m256 dd = _mm256_mul_ps(x2_f16_half(dw, 1), _mm256_set1_ps(m->da));
    return _mm256_add_ps(f, _mm256_mul_ps(dd, _mm256_cvtepi32_ps(_mm256_sub_epi32(is, corr))));
}

/* Q2_K and Q3_K, as avx512_gemv_k.c's sb_q23k. */
INLINE __m256 sb_q23k(const int q3, const uint8_t *const rows[8], __m256i vidx, size_t off, const uint8_t *aq,
                      const x86_kact *m, __m256 f) {
    __m256i v[4], hm[8], qs[8], dd;
    if (q3) {
        __m256i t[4];
        x2_tr8(rows, off + 94, t); /* qs[62..63], 12 scale bytes, d: realigned by 2 bytes */
        x2_q3k_scales(_mm256_or_si256(_mm256_srli_epi32(t[0], 16), _mm256_slli_epi32(t[1], 16)),
                      _mm256_or_si256(_mm256_srli_epi32(t[1], 16), _mm256_slli_epi32(t[2], 16)),
                      _mm256_or_si256(_mm256_srli_epi32(t[2], 16), _mm256_slli_epi32(t[3], 16)), v);
        dd = t[3];
        x2_tr8(rows, off, hm);
        x2_tr8(rows, off + 16, hm + 4);
    } else {
        x2_tr8(rows, off, v);
        dd = _mm256_i32gather_epi32((const int *)(const void *)(rows[0] + off + 80), vidx, 1);
    }
    const size_t qoff = off + (q3 ? 32 : 16);
    __m256i is = _mm256_setzero_si256();
    UNROLL for (int c = 0; c < 2; c++) {
        x2_tr8(rows, qoff + 32 * (size_t)c, qs);
        x2_tr8(rows, qoff + 16 + 32 * (size_t)c, qs + 4);
        UNROLL for (int j = 0; j < 4; j++) {
            __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
            UNROLL for (int mm = 0; mm < 8; mm++) {
                __m256i val = and8(srl(qs[mm], 2 * j), 3);
                if (q3) val = _mm256_or_si256(val, _mm256_and_si256(4 * c + j >= 2 ? srl(hm[mm], 4 * c + j - 2) : sll(hm[mm], 2 - (4 * c + j)), b8(4)));
                const __m256i a = x2_bc32(aq + 128 * c + 32 * j + 4 * mm);
                if (mm < 4) a0 = x2_dot_us(a0, val, a);
                else a1 = x2_dot_us(a1, val, a);
            }
            const int s0 = 8 * c + 2 * j;
            const __m256i sc0 = q3 ? _mm256_sub_epi32(ubyte(v[s0 / 4], s0 % 4), _mm256_set1_epi32(32))
                                   : _mm256_and_si256(ubyte(v[s0 / 4], s0 % 4), _mm256_set1_epi32(15));
            const __m256i sc1 = q3 ? _mm256_sub_epi32(ubyte(v[(s0 + 1) / 4], (s0 + 1) % 4), _mm256_set1_epi32(32))
                                   : _mm256_and_si256(ubyte(v[(s0 + 1) / 4], (s0 + 1) % 4), _mm256_set1_epi32(15));
            is = _mm256_add_epi32(is, _mm256_mullo_epi32(a0, sc0));
            is = _mm256_add_epi32(is, _mm256_mullo_epi32(a1, sc1));
        }
    }
    if (q3) return x2_q3k_finish(v, x2_f16_half(dd, 1) /* d on top */, is, m, f);
    return x2_q2k_finish(v, dd, is, m, f);
}

INLINE void gemv_k(const uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols, const uint8_t *act,
                   float *out) {
    x86_kact meta[KV_NSB];
    const int64_t nsb = n_cols / X86_QKK;
    const size_t bb = x86_block_bytes(type);
    if (nsb <= KV_NSB) x86_prep_kact(type, act, nsb, meta);
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
        for (int64_t c0 = 0; c0 < nsb; c0 += KV_NSB) {
            const int64_t n = nsb - c0 < KV_NSB ? nsb - c0 : KV_NSB;
            if (nsb > KV_NSB) x86_prep_kact(type, act + (size_t)c0 * 292, n, meta);
            for (int64_t sb = 0; sb < n; sb++) {
                const size_t off = (size_t)(c0 + sb) * bb;
                const uint8_t *aq = act + (size_t)(c0 + sb) * 292 + 4;
                { /* the next 8-row group (contiguous): this super-block's share, in address order */
                    const uint8_t *nx = rows[0] + 8 * rb + off * 8;
                    for (size_t l = 0; l < 8 * bb; l += 64) _mm_prefetch((const char *)(nx + l), _MM_HINT_T0);
                }
                if (type == INFER_TYPE_Q6_K) f = sb_q6k(rows, vidx, off, aq, &meta[sb], f);
                else if (type == INFER_TYPE_Q2_K || type == INFER_TYPE_Q3_K)
                    f = sb_q23k(type == INFER_TYPE_Q3_K, rows, vidx, off, aq, &meta[sb], f);
                else f = sb_q45k(type == INFER_TYPE_Q5_K, rows, off, aq, &meta[sb], f);
            }
        }
        x2_store_n(out + r0, nr, f);
    }
}

static void gemv_q2_k(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_k(INFER_TYPE_Q2_K, W, rb, r, k, a, o);
}
static void gemv_q3_k(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_k(INFER_TYPE_Q3_K, W, rb, r, k, a, o);
}
static void gemv_q4_k(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_k(INFER_TYPE_Q4_K, W, rb, r, k, a, o);
}
static void gemv_q5_k(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_k(INFER_TYPE_Q5_K, W, rb, r, k, a, o);
}
static void gemv_q6_k(const uint8_t *W, size_t rb, int64_t r, int64_t k, const uint8_t *a, float *o) {
    gemv_k(INFER_TYPE_Q6_K, W, rb, r, k, a, o);
}

int x2_gemv_k(uint32_t type, const uint8_t *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const uint8_t *act,
              float *out) {
    switch (type) {
    case INFER_TYPE_Q2_K: gemv_q2_k(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q3_K: gemv_q3_k(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q4_K: gemv_q4_k(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_K: gemv_q5_k(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q6_K: gemv_q6_k(W, row_bytes, n_rows, n_cols, act, out); return 1;
    default: return 0;
    }
}
