/*
 * avx512_gemv_k.c - one activation row (Q8_K) against K-quant weights
 * (token generation), decoded in registers from the file's layout, 16 rows
 * per zmm as everywhere in this level.
 *
 * The per-row scales are decoded with the same byte shuffles as the
 * reference's bit positions, vectorized over the 16 rows: one transpose of
 * a block's scale bytes gives, in each 32-bit lane, 4 bytes of that row's
 * scales, and shifts and masks per byte extract the 6-bit fields. Sub-block
 * integer dots are scaled with vpmulld and summed exactly; the corrections
 * (mins, Q6_K's offset 32) are int16 pair dots against Q8_K's group sums.
 * The float work per super-block is the batched micro-kernel's, so results
 * are bit-identical to it and to kernels/ref.
 *
 */
#include "avx512_internal.h"

#define UNROLL X5_UNROLL
#define INLINE X5_INLINE
#define KV_NSB 128 /* super-blocks of activation metadata prepared per chunk */

/* The activation side of a super-block: x86_kact (x86_common.h). */
INLINE __m512i b8(int v) { return _mm512_set1_epi8((char)v); }
INLINE __m512i and8(__m512i v, int m) { return _mm512_and_si512(v, b8(m)); }
INLINE __m512i srl(__m512i v, int n) { return _mm512_srli_epi16(v, (unsigned)n); }
INLINE __m512i sll(__m512i v, int n) { return _mm512_slli_epi16(v, (unsigned)n); }

/* Byte k (0..3) of every lane, zero-extended to 32 bits. */
INLINE __m512i ubyte(__m512i v, int k) { return _mm512_and_si512(_mm512_srli_epi32(v, (unsigned)(8 * k)), _mm512_set1_epi32(0xff)); }
/* Byte k of every lane, sign-extended. */
INLINE __m512i sbyte(__m512i v, int k) { return _mm512_srai_epi32(_mm512_slli_epi32(v, (unsigned)(24 - 8 * k)), 24); }

/* Q4_K / Q5_K scales and mins 4..7, per byte: the low nibble of lo4 with
 * bits 6, 7 of hi2 above it. (Entries 0..3 are the low 6 bits of their
 * own bytes.) */
INLINE __m512i k45_upper6(__m512i lo4, __m512i hi2) { return _mm512_or_si512(and8(lo4, 0x0f), and8(srl(hi2, 2), 0x30)); }

/* The 6-bit scale of sub-block b (0..7) of a repacked Q4_K / Q5_K
 * group-block, zero-extended per lane: 0..3 in slice 1's low 6 bits; 4..7
 * in slice 3's low nibbles and slice 1's top 2 bits. */
INLINE __m512i q45k_scale(const uint8_t *G, int b) {
    const __m512i t1 = _mm512_loadu_si512((const void *)(G + 64));
    const __m512i scs = b < 4 ? and8(t1, 0x3f) : k45_upper6(_mm512_loadu_si512((const void *)(G + 192)), t1);
    return ubyte(scs, b & 3);
}

/* f plus a Q4_K / Q5_K super-block's sum from its integer part is, given
 * its first slices t0 (d, dmin), t2, t3 (mins with scales 8..11): the
 * mins against Q8_K's group sums, and the two f16 scales. */
INLINE __m512 q45k_finish(__m512i t0, __m512i t2, __m512i t3, __m512i is, const x86_kact *m, __m512 f) {
    const __m512i mn_lo = and8(t2, 0x3f), mn_hi = k45_upper6(srl(t3, 4), t2);
    const __m512i w16 = _mm512_set1_epi32(0x00ff00ff);
    __m512i corr = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_and_si512(mn_lo, w16), _mm512_set1_epi32(m->pair[0]));
    corr = _mm512_dpwssd_epi32(corr, _mm512_and_si512(srl(mn_lo, 8), w16), _mm512_set1_epi32(m->pair[1]));
    corr = _mm512_dpwssd_epi32(corr, _mm512_and_si512(mn_hi, w16), _mm512_set1_epi32(m->pair[2]));
    corr = _mm512_dpwssd_epi32(corr, _mm512_and_si512(srl(mn_hi, 8), w16), _mm512_set1_epi32(m->pair[3]));
    const __m512 da = _mm512_set1_ps(m->da);
    const __m512 dd = _mm512_mul_ps(x5_f16_lo(t0), da), dm = _mm512_mul_ps(x5_f16_hi(t0), da);
    return _mm512_add_ps(f, _mm512_sub_ps(_mm512_mul_ps(dd, _mm512_cvtepi32_ps(is)), _mm512_mul_ps(dm, _mm512_cvtepi32_ps(corr))));
}

/* f plus a Q6_K super-block's sum from its integer part is, given its
 * int8 scales sc[q] (4q .. 4q + 3 per lane) and its d: the offset 32
 * against Q8_K's group sums taken off. */
INLINE __m512 q6k_finish(const __m512i sc[4], __m512 d, __m512i is, const x86_kact *m, __m512 f) {
    __m512i corr = _mm512_setzero_si512();
    UNROLL for (int q = 0; q < 4; q++) {
        corr = _mm512_dpwssd_epi32(corr, _mm512_srai_epi16(_mm512_slli_epi16(sc[q], 8), 8), _mm512_set1_epi32(m->pair[2 * q]));
        corr = _mm512_dpwssd_epi32(corr, _mm512_srai_epi16(sc[q], 8), _mm512_set1_epi32(m->pair[2 * q + 1]));
    }
    corr = _mm512_slli_epi32(corr, 5); /* the offset 32 */
    const __m512 dd = _mm512_mul_ps(d, _mm512_set1_ps(m->da));
    return _mm512_add_ps(f, _mm512_mul_ps(dd, _mm512_cvtepi32_ps(_mm512_sub_epi32(is, corr))));
}

/* Q4_K (qh_off 0) and Q5_K: one super-block of 16 rows into f. */
INLINE __m512 sb_q45k(const int q5, const uint8_t *const rows[16], size_t off, const uint8_t *aq, const x86_kact *m,
                      __m512 f) {
    const __m512i m4 = b8(0x0f);
    __m512i t[4], h[8], d[8];
    x5_tr16(rows, off, t); /* d|dmin, scales 0..3, 4..7, 8..11 */
    const __m512i sc_lo = and8(t[1], 0x3f), sc_hi = k45_upper6(t[3], t[1]);
    if (q5) {
        x5_tr16(rows, off + 16, h);
        x5_tr16(rows, off + 32, h + 4);
    }
    const size_t qs = q5 ? 48 : 16;
    __m512i is = _mm512_setzero_si512();
    UNROLL for (int p = 0; p < 4; p++) {
        x5_tr16(rows, off + qs + 32 * (size_t)p, d);
        x5_tr16(rows, off + qs + 32 * (size_t)p + 16, d + 4);
        /* four dependency chains (integer sums: exact in any order) */
        __m512i cl[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        __m512i ch[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        UNROLL for (int j = 0; j < 8; j++) {
            __m512i lo = _mm512_and_si512(d[j], m4), hi = and8(d[j], 0xf0); /* Q4_K: 16 x the high nibble */
            if (q5) {
                lo = _mm512_or_si512(lo, x5_bit_to(h[j], 2 * p, 4));
                hi = _mm512_or_si512(_mm512_and_si512(srl(d[j], 4), m4), x5_bit_to(h[j], 2 * p + 1, 4));
            }
            cl[j & 1] = _mm512_dpbusd_epi32(cl[j & 1], lo, x5_bc32(aq + 64 * p + 4 * j));
            ch[j & 1] = _mm512_dpbusd_epi32(ch[j & 1], hi, x5_bc32(aq + 64 * p + 32 + 4 * j));
        }
        const __m512i clo = _mm512_add_epi32(cl[0], cl[1]), ch16 = _mm512_add_epi32(ch[0], ch[1]);
        const __m512i chi = q5 ? ch16 : _mm512_srai_epi32(ch16, 4); /* exact */
        const __m512i scs = p < 2 ? sc_lo : sc_hi;
        is = _mm512_add_epi32(is, _mm512_mullo_epi32(clo, ubyte(scs, (2 * p) & 3)));
        is = _mm512_add_epi32(is, _mm512_mullo_epi32(chi, ubyte(scs, (2 * p + 1) & 3)));
    }
    return q45k_finish(t[0], t[2], t[3], is, m, f);
}

/* Q6_K: value 128c + 32k + l (l = 4j + i), sub-block (16 values) 8c + 2k
 * + j / 4; four slices of values (one per k) from the file's slices
 * (x5_q6k_file_values; a group-block's recoded ones take 9 operations,
 * not 17: q6k_steps). Scales: body bytes 192..207. */
INLINE __m512 sb_q6k(const uint8_t *const rows[16], __m512i vidx, size_t off, const uint8_t *aq, const x86_kact *m,
                     __m512 f) {
    __m512i sc[4];
    x5_tr16(rows, off + 192, sc); /* int8 scales 4q .. 4q + 3 */
    const __m512 dq = x5_f16_hi(_mm512_i32gather_epi32(vidx, (const void *)(rows[0] + off + 206), 1));
    __m512i is = _mm512_setzero_si512();
    UNROLL for (int c = 0; c < 2; c++) {
        UNROLL for (int q = 0; q < 2; q++) { /* j = 4q .. 4q + 3 */
            __m512i la[4], lb[4], hh[4];
            x5_tr16(rows, off + 64 * (size_t)c + 16 * (size_t)q, la);
            x5_tr16(rows, off + 64 * (size_t)c + 32 + 16 * (size_t)q, lb);
            x5_tr16(rows, off + 128 + 32 * (size_t)c + 16 * (size_t)q, hh);
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            UNROLL for (int i = 0; i < 4; i++) {
                __m512i v[4];
                x5_q6k_file_values(la[i], lb[i], hh[i], v);
                const uint8_t *a = aq + 128 * c + 4 * (4 * q + i);
                a0 = x5_dpb(a0, v[0], a);
                a1 = x5_dpb(a1, v[1], a + 32);
                a2 = x5_dpb(a2, v[2], a + 64);
                a3 = x5_dpb(a3, v[3], a + 96);
            }
            const int s0 = 8 * c + q, s1 = s0 + 2, s2 = s0 + 4, s3 = s0 + 6;
            is = _mm512_add_epi32(is, _mm512_mullo_epi32(a0, sbyte(sc[s0 / 4], s0 % 4)));
            is = _mm512_add_epi32(is, _mm512_mullo_epi32(a1, sbyte(sc[s1 / 4], s1 % 4)));
            is = _mm512_add_epi32(is, _mm512_mullo_epi32(a2, sbyte(sc[s2 / 4], s2 % 4)));
            is = _mm512_add_epi32(is, _mm512_mullo_epi32(a3, sbyte(sc[s3 / 4], s3 % 4)));
        }
    }
    return q6k_finish(sc, dq, is, m, f);
}

/* The integer part of a Q2_K / Q3_K super-block (quants from byte qoff):
 * each 16-value sub-block's dot of the 2-bit fields (Q3_K: plus 4 for a
 * set bit 4c + j of hm) with the activations, times its scale: Q3_K's
 * signed byte of v (q3k_scales), Q2_K's low nibble. Exact integers. */
INLINE __m512i q23_isum(const int q3, const uint8_t *const rows[16], size_t off, size_t qoff, const __m512i *hm,
                        const __m512i v[4], const uint8_t *aq) {
    __m512i qs[8], is = _mm512_setzero_si512();
    X5_UNROLL for (int c = 0; c < 2; c++) {
        x5_tr16(rows, off + qoff + 32 * (size_t)c, qs);
        x5_tr16(rows, off + qoff + 16 + 32 * (size_t)c, qs + 4);
        X5_UNROLL for (int j = 0; j < 4; j++) {
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            X5_UNROLL for (int mm = 0; mm < 8; mm++) {
                __m512i val = and8(srl(qs[mm], 2 * j), 3);
                if (q3) val = _mm512_or_si512(val, x5_bit_to(hm[mm], 4 * c + j, 2));
                const __m512i a = x5_bc32(aq + 128 * c + 32 * j + 4 * mm);
                if (mm < 4) a0 = _mm512_dpbusd_epi32(a0, val, a);
                else a1 = _mm512_dpbusd_epi32(a1, val, a);
            }
            const int s0 = 8 * c + 2 * j;
            const __m512i sc0 = q3 ? sbyte(v[s0 / 4], s0 % 4) : _mm512_and_si512(ubyte(v[s0 / 4], s0 % 4), _mm512_set1_epi32(15));
            const __m512i sc1 = q3 ? sbyte(v[(s0 + 1) / 4], (s0 + 1) % 4)
                                   : _mm512_and_si512(ubyte(v[(s0 + 1) / 4], (s0 + 1) % 4), _mm512_set1_epi32(15));
            is = _mm512_add_epi32(is, _mm512_mullo_epi32(a0, sc0));
            is = _mm512_add_epi32(is, _mm512_mullo_epi32(a1, sc1));
        }
    }
    return is;
}

/* Q3_K's 16 scales of 16 rows from its 12 scale bytes (v0: bytes 0..3,
 * v1: 4..7, s2: 8..11 of each lane): V[q] byte b is the signed scale
 * (-32..31) of sub-block 4q + b, its stored 6-bit field (biased by 32)
 * less 32. The field's low 4 bits are byte s's low nibble (s < 8) or
 * byte s - 8's high one, its top 2 bits 2(s/4) of byte 8 + s%4. */
INLINE void q3k_scales(__m512i v0, __m512i v1, __m512i s2, __m512i V[4]) {
    const __m512i lo[4] = {v0, v1, srl(v0, 4), srl(v1, 4)};
    X5_UNROLL for (int q = 0; q < 4; q++) {
        const __m512i hi = q < 2 ? sll(s2, 4 - 2 * q) : srl(s2, 2 * q - 4); /* bits 2q, 2q + 1 at 4, 5 */
        V[q] = _mm512_sub_epi8(_mm512_or_si512(and8(lo[q], 0x0f), and8(hi, 0x30)), b8(32));
    }
}

/* f plus a Q3_K super-block's sum from its integer part is, given its
 * signed scales V (q3k_scales) and d: the stored offset 4 (values are
 * stored + 4) times each sub-block's scale and Q8_K group sum taken off,
 * the group sums in even/odd int16 pairs against the scales' bytes
 * sign-extended to words. */
INLINE __m512 q3k_finish(const __m512i V[4], __m512 dq, __m512i is, const x86_kact *m, __m512 f) {
    __m512i corr = _mm512_setzero_si512();
    X5_UNROLL for (int q = 0; q < 4; q++) {
        corr = _mm512_dpwssd_epi32(corr, _mm512_srai_epi16(sll(V[q], 8), 8), _mm512_set1_epi32(m->pair[2 * q]));
        corr = _mm512_dpwssd_epi32(corr, _mm512_srai_epi16(V[q], 8), _mm512_set1_epi32(m->pair[2 * q + 1]));
    }
    corr = _mm512_slli_epi32(corr, 2);
    const __m512 d = _mm512_mul_ps(dq, _mm512_set1_ps(m->da));
    return _mm512_add_ps(f, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(is, corr))));
}

/* f plus a Q2_K super-block's sum from its integer part is, given its
 * scale bytes v (4 per lane: low nibble scale, high nibble min) and d,
 * dmin (low, high half of dd): the mins against Q8_K's group sums in
 * even/odd int16 pairs. */
INLINE __m512 q2k_finish(const __m512i v[4], __m512i dd, __m512i is, const x86_kact *m, __m512 f) {
    __m512i corr = _mm512_setzero_si512();
    const __m512i w16 = _mm512_set1_epi32(0x000f000f);
    X5_UNROLL for (int q = 0; q < 4; q++) {
        corr = _mm512_dpwssd_epi32(corr, _mm512_and_si512(srl(v[q], 4), w16), _mm512_set1_epi32(m->pair[2 * q]));
        corr = _mm512_dpwssd_epi32(corr, _mm512_and_si512(srl(v[q], 12), w16), _mm512_set1_epi32(m->pair[2 * q + 1]));
    }
    const __m512 da = _mm512_set1_ps(m->da);
    const __m512 d = _mm512_mul_ps(da, x5_f16_lo(dd)), dm = _mm512_mul_ps(da, x5_f16_hi(dd));
    return _mm512_add_ps(f, _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(is)), _mm512_mul_ps(dm, _mm512_cvtepi32_ps(corr))));
}

/* Q2_K and Q3_K from the file's layout: value 128c + 32j + 16h + l has
 * its 2 low bits at bits 2j of qs[32c + 16h + l]; Q3_K adds 4 when bit
 * 4c + j of hmask[16h + l] is set (stored value q + 4, real value - 4).
 * With m = 4h + l/4 that is slice m of the 8 from qs[32c ..], sub-block
 * (16 values) 8c + 2j + m / 4. */
INLINE __m512 sb_q23k(const int q3, const uint8_t *const rows[16], __m512i vidx, size_t off, const uint8_t *aq,
                      const x86_kact *m, __m512 f) {
    __m512i v[4], hm[8];
    if (q3) { /* bytes 94..109: qs[62..63], 12 scale bytes, d; realigned by 2 bytes */
        __m512i t[4];
        x5_tr16(rows, off + 94, t);
        q3k_scales(_mm512_or_si512(_mm512_srli_epi32(t[0], 16), _mm512_slli_epi32(t[1], 16)),  /* bytes 0..3 */
                   _mm512_or_si512(_mm512_srli_epi32(t[1], 16), _mm512_slli_epi32(t[2], 16)),  /* 4..7 */
                   _mm512_or_si512(_mm512_srli_epi32(t[2], 16), _mm512_slli_epi32(t[3], 16)), /* 8..11 */
                   v);
        x5_tr16(rows, off, hm);
        x5_tr16(rows, off + 16, hm + 4);
        const __m512i is = q23_isum(1, rows, off, 32, hm, v, aq);
        return q3k_finish(v, x5_f16_hi(t[3]) /* d on top */, is, m, f);
    }
    /* Q2_K: scales[16] (low nibble scale, high nibble min), qs at 16, d, dmin at 80 */
    x5_tr16(rows, off, v);
    const __m512i is = q23_isum(0, rows, off, 16, NULL, v, aq);
    return q2k_finish(v, _mm512_i32gather_epi32(vidx, (const void *)(rows[0] + off + 80), 1), is, m, f);
}

INLINE void gemv_k(const uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                   const uint8_t *act, float *out) {
    x86_kact meta[KV_NSB];
    const int64_t nsb = n_cols / X86_QKK;
    const size_t bb = x86_block_bytes(type);
    if (nsb <= KV_NSB) x86_prep_kact(type, act, nsb, meta);
    for (int64_t r0 = 0; r0 < n_rows; r0 += X5_R) {
        const int nr = n_rows - r0 < X5_R ? (int)(n_rows - r0) : X5_R;
        const uint8_t *rows[16];
        int32_t idx[16];
        UNROLL for (int i = 0; i < 16; i++) {
            const int ri = i < nr ? i : nr - 1;
            rows[i] = W + (size_t)(r0 + ri) * rb;
            idx[i] = (int32_t)((size_t)ri * rb);
        }
        const __m512i vidx = _mm512_loadu_si512((const void *)idx);
        __m512 f = _mm512_setzero_ps();
        for (int64_t c0 = 0; c0 < nsb; c0 += KV_NSB) {
            const int64_t n = nsb - c0 < KV_NSB ? nsb - c0 : KV_NSB;
            if (nsb > KV_NSB) x86_prep_kact(type, act + (size_t)c0 * 292, n, meta);
            for (int64_t sb = 0; sb < n; sb++) {
                const size_t off = (size_t)(c0 + sb) * bb;
                const uint8_t *aq = act + (size_t)(c0 + sb) * 292 + 4;
                { /* the next 16-row group (contiguous): this super-block's share, in address order */
                    const uint8_t *nx = rows[0] + 16 * rb + off * 16;
                    for (size_t l = 0; l < 16 * bb; l += 64) X5_PF(nx + l);
                }
                if (type == INFER_TYPE_Q6_K) f = sb_q6k(rows, vidx, off, aq, &meta[sb], f);
                else if (type == INFER_TYPE_Q2_K || type == INFER_TYPE_Q3_K)
                    f = sb_q23k(type == INFER_TYPE_Q3_K, rows, vidx, off, aq, &meta[sb], f);
                else f = sb_q45k(type == INFER_TYPE_Q5_K, rows, off, aq, &meta[sb], f);
            }
        }
        _mm512_mask_storeu_ps(out + r0, (__mmask16)((1u << nr) - 1u), f);
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

int x5_gemv_k(uint32_t type, const uint8_t *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const uint8_t *act,
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

/* Repacked: four groups at a time (PG_MAX), each its own sequential
 * stream, every step taking a little from each stream in turn and
 * prefetching that stream's share one super-block ahead. How little matters: a
 * quarter of a super-block per stream and step (9 cache lines of Q4_K)
 * streamed at 0.93-0.98 of a four-stream read loop run beside it (2
 * threads from memory), whole super-blocks from two streams at ~0.82.
 * Q4_K steps by one slice per stream (~1 line) and Q6_K by one slice
 * triple (~3 lines): measured alternating with the quarter steps on 200 MB
 * per thread, +2.5-11% (Q4_K) and +2-5.5% (Q6_K) of memory throughput, and
 * +2.4-2.8% tokens/s for a TinyLlama-shaped Q4_K_M; Q5_K by one slice as
 * Q4_K, +1-7% (median of rounds ~+4.5%). Per-thread speed on data in cache
 * is ~5-15% lower (more live state, more prefetch steps), which memory
 * hides. Q2_K and Q3_K step by a quarter (4 slices per stream); they had
 * kept two streams of whole super-blocks, at about half the memory's
 * speed (docs/cpu-speed-history.md, 2026-11-23). A run's last one or
 * two groups take a one- or two-stream instance of the step kernels, three
 * the four-stream one with the first repeated (x5_groups_begin,
 * x5_streams_for: the repeat's sums are never stored). Each group's sum
 * runs in super-block order as above (bit for bit the same: the integer
 * parts are exact in any order); partial sums cross activation chunks
 * through out. */
#define PG_MAX 4
/* Slice s of a group-block. */
INLINE __m512i sl(const uint8_t *G, int s) { return _mm512_loadu_si512((const void *)(G + 64 * (size_t)s)); }

/* The kernels over one super-block of PG_MAX groups take their streams as
 * X5_STREAMS: group k's group-block at G[k] + at; the lines the block
 * prefetches at G[k] + po (kpf_offset). Plain arguments, not a struct:
 * through a pointer GCC reloads them and spills (measured ~15% slower from
 * memory). */
#define X5_STREAMS const uint8_t *const *G, size_t at, size_t po

/* Where the super-block at byte at of each stream prefetches: X5_KPF_SB
 * super-blocks ahead (one near, into L1; three far, into L2), or, past
 * the stream's end (rem bytes), jump bytes further, in the same stream of
 * the next set of groups (as x5_prefetch_stream). at, rem and the distance are whole group-blocks, so
 * a block's lines never straddle the end: one test per super-block for all
 * its lines and streams, and each line's prefetch one instruction. A test
 * per line, in a loop over a run-time line count, ~3.4 KB ahead, took
 * about a third of Q6_K's time from cache (one thread 15 -> 22-25 GB/s,
 * two 26 -> 47; Q4_K 21-24 -> 26-28, 42 -> 50); from memory, alternating
 * per token: Q4_K_M +2-4%, Q5_K_M +4-12%, Q6_K +5-18%. Two super-blocks
 * ahead into L1 gave Q4_K_M only ~+0.6% (Intel). */
INLINE size_t kpf_offset(size_t at, size_t gb, size_t rem, size_t jump) {
    const size_t a = at + X5_KPF_SB * gb;
    return a + (a >= rem ? jump : 0);
}

/* Step e of n over a super-block of type: prefetch stream S's e-th share
 * of its lines (a constant count per type, so the loop unrolls). */
INLINE void step_prefetch(uint32_t type, const uint8_t *S, size_t po, int e, int n) {
    const size_t nl = (16 * x86_block_bytes(type) + 63) / 64;
    const size_t l0 = (size_t)e * nl / (size_t)n, l1 = (size_t)(e + 1) * nl / (size_t)n;
    for (size_t l = l0; l < l1; l++) X5_PF(S + po + 64 * l);
}

/* A super-block's start in the step kernels: integer sums 0, and one copy
 * of the activation pointer per group (see x5_dpb). */
INLINE void steps_begin(const uint8_t *aq, __m512i *is, const uint8_t **ak) {
    UNROLL for (int k = 0; k < PG_MAX; k++) {
        is[k] = _mm512_setzero_si512();
        ak[k] = aq;
        __asm__("" : "+r"(ak[k]));
    }
}

/* f plus a repacked Q4_K / Q5_K group-block's sum from its integer part is. */
INLINE __m512 sbp_q45k_finish(const uint8_t *G, __m512i is, const x86_kact *m, __m512 f) {
    return q45k_finish(sl(G, 0), sl(G, 2), sl(G, 3), is, m, f);
}

/* One Q4_K super-block of four groups in 32 steps: step e = 8p + j is
 * slice j of quarter p (values 64p + 4j .., low nibbles, and 64p + 32 +
 * 4j .., high) from each group in turn. A group's dots run in two chains
 * per half-quarter (low, high nibbles: 16 values each, |sum| <= 16 * 15 *
 * 128 < 2^15, the high chain once shifted back exactly), so each is a
 * 16-bit number in its 32-bit lane and one vpdpwssd against the scale
 * (0..63, high word 0) adds sum * scale: the integers of sb_q45k. */
INLINE void q4k_steps(const int ng, X5_STREAMS, const uint8_t *aq, const x86_kact *m, __m512 *f) {
    const __m512i m4 = b8(0x0f);
    __m512i is[PG_MAX], cl[PG_MAX], ch[PG_MAX];
    const uint8_t *ak[PG_MAX];
    steps_begin(aq, is, ak);
    UNROLL for (int p = 0; p < 4; p++) {
        UNROLL for (int h = 0; h < 2; h++) {
            UNROLL for (int k = 0; k < ng; k++) cl[k] = ch[k] = _mm512_setzero_si512();
            UNROLL for (int j = 4 * h; j < 4 * h + 4; j++) {
                UNROLL for (int k = 0; k < ng; k++) {
                    step_prefetch(INFER_TYPE_Q4_K, G[k], po, 8 * p + j, 32);
                    const __m512i w = sl(G[k] + at, 4 + 8 * p + j);
                    cl[k] = x5_dpb(cl[k], _mm512_and_si512(w, m4), ak[k] + 64 * p + 4 * j);
                    ch[k] = x5_dpb(ch[k], and8(w, 0xf0), ak[k] + 64 * p + 32 + 4 * j); /* 16 x the high nibble */
                }
            }
            UNROLL for (int k = 0; k < ng; k++) {
                const uint8_t *B = G[k] + at;
                is[k] = _mm512_dpwssd_epi32(is[k], cl[k], q45k_scale(B, 2 * p));
                is[k] = _mm512_dpwssd_epi32(is[k], _mm512_srai_epi32(ch[k], 4), q45k_scale(B, 2 * p + 1));
            }
        }
    }
    UNROLL for (int k = 0; k < ng; k++) f[k] = sbp_q45k_finish(G[k] + at, is[k], m, f[k]);
}

/* One Q6_K super-block of four groups in 16 steps: step 4p + i is slice
 * triple i of quarter p = 2c + q (sb_q6k's arithmetic for that (c, q): the
 * recoded slices 12p + 3i .. + 2) from each group in turn; the four
 * chains of a quarter are scaled by sub-blocks 8c + q + {0, 2, 4, 6}
 * (slices 48 + 2c, 49 + 2c). */
INLINE void q6k_steps(const int ng, X5_STREAMS, const uint8_t *aq, const x86_kact *m, __m512 *f) {
    __m512i is[PG_MAX], a[PG_MAX][4];
    const uint8_t *ak[PG_MAX];
    steps_begin(aq, is, ak);
    UNROLL for (int p = 0; p < 4; p++) {
        const int c = p >> 1, q = p & 1;
        UNROLL for (int k = 0; k < ng; k++) UNROLL for (int i = 0; i < 4; i++) a[k][i] = _mm512_setzero_si512();
        UNROLL for (int i = 0; i < 4; i++) {
            UNROLL for (int k = 0; k < ng; k++) {
                step_prefetch(INFER_TYPE_Q6_K, G[k], po, 4 * p + i, 16);
                __m512i v[4];
                x5_q6k_values(G[k] + at + 64 * (24 * c + 3 * (4 * q + i)), v);
                const uint8_t *aa = ak[k] + 128 * c + 4 * (4 * q + i);
                UNROLL for (int t = 0; t < 4; t++) a[k][t] = x5_dpb(a[k][t], v[t], aa + 32 * t);
            }
        }
        UNROLL for (int k = 0; k < ng; k++) {
            const uint8_t *B = G[k] + at;
            const __m512i s_lo = sl(B, 48 + 2 * c), s_hi = sl(B, 49 + 2 * c);
            is[k] = _mm512_add_epi32(is[k], _mm512_mullo_epi32(a[k][0], sbyte(s_lo, q)));
            is[k] = _mm512_add_epi32(is[k], _mm512_mullo_epi32(a[k][1], sbyte(s_lo, q + 2)));
            is[k] = _mm512_add_epi32(is[k], _mm512_mullo_epi32(a[k][2], sbyte(s_hi, q)));
            is[k] = _mm512_add_epi32(is[k], _mm512_mullo_epi32(a[k][3], sbyte(s_hi, q + 2)));
        }
    }
    UNROLL for (int k = 0; k < ng; k++) {
        const uint8_t *B = G[k] + at;
        const __m512i sc[4] = {sl(B, 48), sl(B, 49), sl(B, 50), sl(B, 51)};
        f[k] = q6k_finish(sc, x5_packed_d(B, x86_sl_d_at(INFER_TYPE_Q6_K)), is[k], m, f[k]);
    }
}

/* One Q5_K super-block of four groups in 32 steps, as q4k_steps: step e =
 * 8p + j is slice j of quarter p from each group in turn, the values' fifth
 * bits from slice 4 + j (bits 2p, 2p + 1). Values reach 31, so a chain of
 * a quarter's 32 values is scaled by vpmulld (sb_q45k's integers). */
INLINE void q5k_steps(const int ng, X5_STREAMS, const uint8_t *aq, const x86_kact *m, __m512 *f) {
    const __m512i m4 = b8(0x0f);
    __m512i is[PG_MAX], cl[PG_MAX], ch[PG_MAX];
    const uint8_t *ak[PG_MAX];
    steps_begin(aq, is, ak);
    UNROLL for (int p = 0; p < 4; p++) {
        const uint8_t *B[PG_MAX];
        UNROLL for (int k = 0; k < ng; k++) {
            cl[k] = ch[k] = _mm512_setzero_si512();
            B[k] = G[k] + at;
            __asm__("" : "+r"(B[k])); /* each quarter loads the high-bit slices again (L1) rather than keep them */
        }
        UNROLL for (int j = 0; j < 8; j++) {
            UNROLL for (int k = 0; k < ng; k++) {
                step_prefetch(INFER_TYPE_Q5_K, G[k], po, 8 * p + j, 32);
                const __m512i w = sl(B[k], 12 + 8 * p + j), h = sl(B[k], 4 + j); /* high bits in slices 4..11 */
                const __m512i lo = _mm512_or_si512(_mm512_and_si512(w, m4), x5_bit_to(h, 2 * p, 4));
                const __m512i hi = _mm512_or_si512(_mm512_and_si512(srl(w, 4), m4), x5_bit_to(h, 2 * p + 1, 4));
                cl[k] = x5_dpb(cl[k], lo, ak[k] + 64 * p + 4 * j);
                ch[k] = x5_dpb(ch[k], hi, ak[k] + 64 * p + 32 + 4 * j);
            }
        }
        UNROLL for (int k = 0; k < ng; k++) {
            is[k] = _mm512_add_epi32(is[k], _mm512_mullo_epi32(cl[k], q45k_scale(B[k], 2 * p)));
            is[k] = _mm512_add_epi32(is[k], _mm512_mullo_epi32(ch[k], q45k_scale(B[k], 2 * p + 1)));
        }
    }
    UNROLL for (int k = 0; k < ng; k++) f[k] = sbp_q45k_finish(G[k] + at, is[k], m, f[k]);
}

/* vpshufb controls: byte b of each 32-bit lane into that lane's low byte
 * (lo 1), or into the high byte of its low word (lo 0), the rest zeroed. */
INLINE __m512i lane_byte_ctrl(int b, int lo) {
    const int z = (int)0x80808080, sh = lo ? 0 : 8, keep = ~(0xff << sh);
    return _mm512_broadcast_i32x4(_mm_setr_epi32((z & keep) | b << sh, (z & keep) | (4 + b) << sh,
                                                 (z & keep) | (8 + b) << sh, (z & keep) | (12 + b) << sh));
}

/* One Q2_K (q3 0) or Q3_K (q3 1) super-block of four groups in 4 steps:
 * step e = 2c + h takes from each group in turn the 4 slices of qs[32c +
 * 16h ..] (Q2_K's slices 4 + 8c + 4h + q, Q3_K's 8 + ...): field j of
 * slice q is values 128c + 32j + 16h + 4q .. + 3, of sub-block 8c + 2j +
 * h, so a step completes 4 sub-blocks. Q2_K masks each field in place
 * (4^j times the value). Q3_K takes the third bits from the recoded hmask
 * slices 4h + q (x86_sl_recoded: bits 2, 4, 6 hold fields 0..2 of c = 0,
 * bits 3, 5, 7 those of c = 1, bits 0, 1 field 3 of c = 0, 1): a field's
 * two bits and its third bit just above them come together in one bit
 * select (vpternlogd) and one mask, fields 0..2 in place and field 3
 * shifted down to bits 2, 3 (1, 4, 16 and 4 times the stored value, 0..7).
 * A chain is shifted back once (exact) and then fits a word (|sum| <= 16 *
 * 3 * 128, Q3_K 16 * 7 * 128), so one vpdpwssd adds it times its scale,
 * which vpshufb moves into the lane's low word: Q2_K's nibble as it is;
 * Q3_K's signed scale into the word's high byte, adding 256 x chain x
 * scale, exactly (the sum stays below 16 * 14336 * 32 * 256 < 2^31), and
 * the sum is shifted back once. The integers of sb_q23k. */
INLINE void q23k_steps(const int q3, const int ng, X5_STREAMS, const uint8_t *aq, const x86_kact *m, __m512 *f) {
    const uint32_t type = q3 ? INFER_TYPE_Q3_K : INFER_TYPE_Q2_K;
    __m512i is[PG_MAX];
    const uint8_t *ak[PG_MAX];
    _Alignas(64) uint8_t sv[PG_MAX][4][64]; /* Q3_K: each group's q3k_scales */
    steps_begin(aq, is, ak);
    if (q3) {
        UNROLL for (int k = 0; k < ng; k++) {
            const uint8_t *B = G[k] + at;
            __m512i V[4];
            q3k_scales(sl(B, 24), sl(B, 25), sl(B, 26), V);
            UNROLL for (int q = 0; q < 4; q++) _mm512_store_si512((void *)sv[k][q], V[q]);
        }
    }
    UNROLL for (int e = 0; e < 4; e++) {
        const int c = e >> 1, h = e & 1;
        UNROLL for (int k = 0; k < ng; k++) {
            step_prefetch(type, G[k], po, e, 4);
            const uint8_t *B = G[k] + at;
            __m512i ch[4];
            UNROLL for (int j = 0; j < 4; j++) ch[j] = _mm512_setzero_si512();
            UNROLL for (int q = 0; q < 4; q++) {
                const __m512i w = sl(B, (q3 ? 8 : 4) + 8 * c + 4 * h + q);
                __m512i u[4];
                if (q3) {
                    const __m512i hm = sl(B, 4 * h + q), H = c ? srl(hm, 1) : hm, H3 = sll(hm, c ? 3 : 4);
                    /* ternary logic 0xe4: third operand ? first : second */
                    u[0] = and8(_mm512_ternarylogic_epi32(H, w, b8(0x04), 0xe4), 0x07);
                    u[1] = and8(_mm512_ternarylogic_epi32(H, w, b8(0x10), 0xe4), 0x1c);
                    u[2] = and8(_mm512_ternarylogic_epi32(H, w, b8(0x40), 0xe4), 0x70);
                    u[3] = and8(_mm512_ternarylogic_epi32(H3, srl(w, 4), b8(0x10), 0xe4), 0x1c);
                } else {
                    UNROLL for (int j = 0; j < 4; j++) u[j] = and8(w, 3 << 2 * j);
                }
                const uint8_t *a = ak[k] + 128 * c + 16 * h + 4 * q;
                UNROLL for (int j = 0; j < 4; j++) ch[j] = x5_dpb(ch[j], u[j], a + 32 * j);
            }
            /* sub-block 8c + 2j + h: byte 2(j & 1) + h of the scales of sub-blocks 8c + 4(j / 2) .. */
            const __m512i s01 = q3 ? _mm512_load_si512((const void *)sv[k][2 * c]) : and8(sl(B, 2 * c), 0x0f);
            const __m512i s23 = q3 ? _mm512_load_si512((const void *)sv[k][2 * c + 1]) : and8(sl(B, 2 * c + 1), 0x0f);
            UNROLL for (int j = 0; j < 4; j++) {
                const __m512i sc = _mm512_shuffle_epi8(j < 2 ? s01 : s23, lane_byte_ctrl(2 * (j & 1) + h, !q3));
                const int back = q3 ? (j == 0 ? 0 : j == 2 ? 4 : 2) : 2 * j;
                is[k] = _mm512_dpwssd_epi32(is[k], back ? _mm512_srai_epi32(ch[j], back) : ch[j], sc);
            }
        }
    }
    UNROLL for (int k = 0; k < ng; k++) {
        const uint8_t *B = G[k] + at;
        __m512i V[4];
        if (q3) {
            UNROLL for (int q = 0; q < 4; q++) V[q] = _mm512_load_si512((const void *)sv[k][q]);
            f[k] = q3k_finish(V, x5_packed_d(B, x86_sl_d_at(INFER_TYPE_Q3_K)), _mm512_srai_epi32(is[k], 8), m, f[k]);
        } else {
            UNROLL for (int q = 0; q < 4; q++) V[q] = sl(B, q);
            f[k] = q2k_finish(V, sl(B, 20), is[k], m, f[k]);
        }
    }
}
INLINE void q2k_steps(const int ng, X5_STREAMS, const uint8_t *aq, const x86_kact *m, __m512 *f) {
    q23k_steps(0, ng, G, at, po, aq, m, f);
}
INLINE void q3k_steps(const int ng, X5_STREAMS, const uint8_t *aq, const x86_kact *m, __m512 *f) {
    q23k_steps(1, ng, G, at, po, aq, m, f);
}

/* Each step kernel for 4, 2 and 1 streams (STEPS_NG): a run's last set
 * of groups takes as many streams as it has groups (three take four, the
 * first repeated). */
#define STEPS_NG(name, ng)                                                                            \
    X5_NOINLINE static void name##_##ng(X5_STREAMS, const uint8_t *aq, const x86_kact *m, __m512 *f) { \
        name(ng, G, at, po, aq, m, f);                                                                \
    }
STEPS_NG(q2k_steps, 4) STEPS_NG(q2k_steps, 2) STEPS_NG(q2k_steps, 1)
STEPS_NG(q3k_steps, 4) STEPS_NG(q3k_steps, 2) STEPS_NG(q3k_steps, 1)
STEPS_NG(q4k_steps, 4) STEPS_NG(q4k_steps, 2) STEPS_NG(q4k_steps, 1)
STEPS_NG(q5k_steps, 4) STEPS_NG(q5k_steps, 2) STEPS_NG(q5k_steps, 1)
STEPS_NG(q6k_steps, 4) STEPS_NG(q6k_steps, 2) STEPS_NG(q6k_steps, 1)

/* Near prefetch (Intel's), Q4_K: a run of eight or more groups is read as
 * four streams that are each a quarter of the run (q consecutive groups,
 * one stretch of memory: the prefetches run on past a group into the
 * next), instead of as sets of four neighbouring groups, where the
 * quarters do not start a multiple of 4 KB apart. Measured on the Intel
 * Xeon (family 6 model 167), two threads each taking 16-group runs of one
 * 2 GB matrix, alternating: quarters +8.7% (5632 columns: quarters 198 KB
 * apart, 40.1 against 36.9 GB/s; the library built before and after,
 * +6.6-9.5%), +3% (2816 and 11008 columns); where the quarters start a
 * multiple of 4 KB apart, -6% (2048 columns: 72 KB) and -3-7% (3072), the
 * same at 4096. Q6_K streamed no faster as quarters (34-35 GB/s either
 * way at 2048 and 5632 columns). A TinyLlama-shaped model has such rows
 * only in ffn_down (a quarter of a Q4_K file's bytes, an eighth of
 * Q4_K_M's): its tg64, alternating builds, moved within the noise. Each
 * group's sum still runs over its super-blocks in order: the same bits.
 * The far and no-prefetch builds (AMD's) keep the sets: not measured. */
#if !defined(X5_NO_PREFETCH) && !defined(X5_PREFETCH_L2)
#define K_QUARTERS 1
#else
#define K_QUARTERS 0
#endif

/* Groups [g0, g0 + 4q) of a run of ng as four quarter streams into out
 * (group g0's outputs first), meta prepared from act, where that pays (q =
 * ng / 4; above); else none. Returns the groups done. */
INLINE int64_t k_quarters(const uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t nsb, size_t gb,
                          const uint8_t *act, x86_kact *meta, float *out) {
    const int64_t q = ng / 4;
    if (type != INFER_TYPE_Q4_K || nsb > KV_NSB || q < 2 || (size_t)q * (size_t)nsb * gb % 4096 == 0) return 0;
    x86_prep_kact(type, act, nsb, meta);
    for (int64_t i = 0; i < q; i++) {
        const uint8_t *G[PG_MAX];
        __m512 f[PG_MAX];
        x5_quarters_begin(P, g0, q, i, nsb, gb, G, f);
        for (int64_t sb = 0; sb < nsb; sb++) {
            const size_t at = (size_t)sb * gb;
            q4k_steps_4(G, at, at + X5_KPF_SB * gb, act + (size_t)sb * 292 + 4, &meta[sb], f);
        }
        x5_quarters_end(out, q, i, f);
    }
    return 4 * q;
}

INLINE void gemv_k_packed(const uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols,
                          const uint8_t *act, float *out) {
    x86_kact meta[KV_NSB];
    const int64_t nsb = n_cols / X86_QKK;
    const size_t gb = 16 * x86_block_bytes(type);
    const size_t jump = (size_t)(PG_MAX - 1) * (size_t)nsb * gb;
    /* the groups the quarters leave to the sets; where the quarters ran, the
     * rows are one activation chunk and meta holds it already */
    const int64_t done = K_QUARTERS ? k_quarters(type, P, g0, ng, nsb, gb, act, meta, out) : 0;
    out += 16 * done;
    g0 += done;
    ng -= done;
    for (int64_t c0 = 0; c0 < nsb && ng > 0; c0 += KV_NSB) {
        const int64_t n = nsb - c0 < KV_NSB ? nsb - c0 : KV_NSB;
        const size_t rem = (size_t)(nsb - c0) * gb;
        if (!done) x86_prep_kact(type, act + (size_t)c0 * 292, n, meta);
        for (int64_t g = g0; g < g0 + ng; g += PG_MAX) {
            const uint8_t *G[PG_MAX];
            __m512 f[PG_MAX];
            const int npg = x5_groups_begin(P, g, g0 + ng, PG_MAX, nsb, c0, gb, out + 16 * (g - g0), G, f);
            const int sn = x5_streams_for(npg);
            for (int64_t sb = 0; sb < n; sb++) {
                const uint8_t *aq = act + (size_t)(c0 + sb) * 292 + 4;
                const size_t at = (size_t)sb * gb, po = kpf_offset(at, gb, rem, jump);
#define Q2K_RUN(ns) q2k_steps_##ns(G, at, po, aq, &meta[sb], f)
#define Q3K_RUN(ns) q3k_steps_##ns(G, at, po, aq, &meta[sb], f)
#define Q4K_RUN(ns) q4k_steps_##ns(G, at, po, aq, &meta[sb], f)
#define Q5K_RUN(ns) q5k_steps_##ns(G, at, po, aq, &meta[sb], f)
#define Q6K_RUN(ns) q6k_steps_##ns(G, at, po, aq, &meta[sb], f)
                switch (type) {
                case INFER_TYPE_Q2_K: X5_BY_STREAMS(sn, Q2K_RUN); break;
                case INFER_TYPE_Q4_K: X5_BY_STREAMS(sn, Q4K_RUN); break;
                case INFER_TYPE_Q5_K: X5_BY_STREAMS(sn, Q5K_RUN); break;
                case INFER_TYPE_Q6_K: X5_BY_STREAMS(sn, Q6K_RUN); break;
                default: X5_BY_STREAMS(sn, Q3K_RUN); break; /* Q3_K */
                }
            }
            for (int k = 0; k < npg; k++) _mm512_storeu_ps(out + 16 * (g + k - g0), f[k]);
        }
    }
}

#undef Q2K_RUN
#undef Q3K_RUN
#undef Q4K_RUN
#undef Q5K_RUN
#undef Q6K_RUN

#define GEMVP(name, T)                                                                                      \
    static void name(const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const uint8_t *act, float *out) { \
        gemv_k_packed(T, P, g0, ng, n_cols, act, out);                                                       \
    }
GEMVP(gemvp_q2_k, INFER_TYPE_Q2_K)
GEMVP(gemvp_q3_k, INFER_TYPE_Q3_K)
GEMVP(gemvp_q4_k, INFER_TYPE_Q4_K)
GEMVP(gemvp_q5_k, INFER_TYPE_Q5_K)
GEMVP(gemvp_q6_k, INFER_TYPE_Q6_K)

int x5_gemv_k_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const uint8_t *act,
                     float *out) {
    switch (type) {
    case INFER_TYPE_Q2_K: gemvp_q2_k(P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q3_K: gemvp_q3_k(P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q4_K: gemvp_q4_k(P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_K: gemvp_q5_k(P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q6_K: gemvp_q6_k(P, g0, ng, n_cols, act, out); return 1;
    default: return 0;
    }
}
