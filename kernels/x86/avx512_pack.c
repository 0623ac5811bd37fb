/*
 * avx512_pack.c - unpacking 16 weight rows of any quantized type into
 * panel blocks (x86_common.h): every value as one unsigned byte, slice s
 * holding values 4s..4s+3 of the 16 rows, plus the per-row scales as
 * floats. The matmul packs a panel once and runs it against many tokens,
 * so this cost is shared by the whole batch.
 *
 * The core step is a transpose: 16 bytes at the same offset of 16 rows
 * become 4 registers whose 32-bit lane i is 4 of row i's bytes. Bit
 * manipulation on those registers then yields the values: nibbles with
 * and/shift, Q5's fifth bit through a 16-entry table, Q3_K/Q2_K's 2-bit
 * fields by shifts of 2j, Q6_K's high pairs positioned at bits 4-5.
 * All shifts are 16-bit shifts whose results are masked per byte, so no bit
 * crosses into a neighbouring byte.
 */
#include "avx512_internal.h"

#define UNROLL X5_UNROLL

/* Row pointers of a panel: missing rows repeat the last real one (their
 * results are never stored). */
static void panel_rows(const uint8_t *W, size_t rb, int nr, const uint8_t *rows[16]) {
    UNROLL for (int i = 0; i < 16; i++) rows[i] = W + (size_t)(i < nr ? i : nr - 1) * rb;
}

/* 32 bytes at off: 8 slices. */
X5_INLINE void tr32(const uint8_t *const rows[16], size_t off, __m512i out[8]) {
    x5_tr16(rows, off, out);
    x5_tr16(rows, off + 16, out + 4);
}

static inline void st(uint8_t *p, __m512i v) { _mm512_storeu_si512((void *)p, v); }

static inline __m512i b8(int v) { return _mm512_set1_epi8((char)v); }

/* ---- legacy types (32-value blocks) ----------------------------------------- */

static void pack_legacy_block(uint32_t type, const uint8_t *const rows[16], size_t off, uint8_t *P) {
    const __m512i m4 = b8(0x0f);
    __m512i t[8];
    float d[16], m[16];
    uint32_t qh[16];
    size_t qs_off = 2, qh_off = 0;
    switch (type) {
    case INFER_TYPE_Q4_1: qs_off = 4; break;
    case INFER_TYPE_Q5_0: qs_off = 6; qh_off = 2; break;
    case INFER_TYPE_Q5_1: qs_off = 8; qh_off = 4; break;
    default: break;
    }
    UNROLL for (int i = 0; i < 16; i++) {
        d[i] = x86_f16(rows[i] + off);
        m[i] = x86_legacy_has_min(type) ? x86_f16(rows[i] + off + 2) : 0.0f;
        qh[i] = qh_off ? x86_rd32(rows[i] + off + qh_off) : 0;
    }
    if (type == INFER_TYPE_Q8_0) {
        tr32(rows, off + 2, t);
        UNROLL for (int j = 0; j < 8; j++) st(P + 64 * j, _mm512_xor_si512(t[j], b8(0x80)));
    } else {
        x5_tr16(rows, off + qs_off, t);
        UNROLL for (int j = 0; j < 4; j++) {
            t[4 + j] = _mm512_and_si512(_mm512_srli_epi16(t[j], 4), m4);
            t[j] = _mm512_and_si512(t[j], m4);
        }
        if (qh_off) { /* fifth bit of value v is bit v of qh */
            const __m512i h = _mm512_loadu_si512((const void *)qh);
            UNROLL for (int s = 0; s < 8; s++) {
                const __m512i nib = _mm512_and_si512(_mm512_srli_epi32(h, (unsigned)(4 * s)), _mm512_set1_epi32(15));
                t[s] = _mm512_or_si512(t[s], x5_spread4(nib));
            }
        }
        UNROLL for (int j = 0; j < 8; j++) st(P + 64 * j, t[j]);
    }
    memcpy(P + X5_LEG_Q, d, 64);
    memcpy(P + X5_LEG_Q + 64, m, 64);
}

void x5_pack_legacy(uint32_t type, const uint8_t *W, size_t row_bytes, int nr, int64_t b0, int64_t nb,
                    uint8_t *panel) {
    const uint8_t *rows[16];
    const size_t bb = x86_block_bytes(type);
    panel_rows(W, row_bytes, nr, rows);
    for (int64_t b = 0; b < nb; b++) pack_legacy_block(type, rows, (size_t)(b0 + b) * bb, panel + b * X5_LEG_BLOCK);
}

/* ---- K-quants (256-value super-blocks) ----------------------------------------- */

/* Q4_K (qh NULL) and Q5_K: value 64p + 32k + l is nibble k of qs[32p + l],
 * fifth bit 2p + k of qh[l]. */
static void pack_q45k(const uint8_t *const rows[16], size_t qs_off, const __m512i *qh, uint8_t *P) {
    const __m512i m4 = b8(0x0f);
    __m512i t[8];
    for (int p = 0; p < 4; p++) {
        tr32(rows, qs_off + 32 * (size_t)p, t);
        UNROLL for (int j = 0; j < 8; j++) {
            __m512i lo = _mm512_and_si512(t[j], m4), hi = _mm512_and_si512(_mm512_srli_epi16(t[j], 4), m4);
            if (qh) {
                lo = _mm512_or_si512(lo, x5_bit_to(qh[j], 2 * p, 4));
                hi = _mm512_or_si512(hi, x5_bit_to(qh[j], 2 * p + 1, 4));
            }
            st(P + 64 * (16 * p + j), lo);
            st(P + 64 * (16 * p + 8 + j), hi);
        }
    }
}

/* Q6_K: value 128c + 32k + l: low 4 bits from ql[64c + l] (k = 0, 2: low,
 * high nibble) or ql[64c + 32 + l] (k = 1, 3), high 2 bits = bits 2k of
 * qh[32c + l]. Stored 0..63 (value + 32). */
static void pack_q6k(const uint8_t *const rows[16], size_t off, uint8_t *P) {
    const __m512i m4 = b8(0x0f), m30 = b8(0x30);
    __m512i ql[16], qh[8];
    for (int c = 0; c < 2; c++) {
        tr32(rows, off + 64 * (size_t)c, ql);
        tr32(rows, off + 64 * (size_t)c + 32, ql + 8);
        tr32(rows, off + 128 + 32 * (size_t)c, qh);
        UNROLL for (int j = 0; j < 8; j++) {
            const __m512i a = ql[j], b = ql[8 + j], h = qh[j];
            st(P + 64 * (32 * c + j), _mm512_or_si512(_mm512_and_si512(a, m4),
                                                      _mm512_and_si512(_mm512_slli_epi16(h, 4), m30)));
            st(P + 64 * (32 * c + 8 + j), _mm512_or_si512(_mm512_and_si512(b, m4),
                                                          _mm512_and_si512(_mm512_slli_epi16(h, 2), m30)));
            st(P + 64 * (32 * c + 16 + j), _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), m4),
                                                           _mm512_and_si512(h, m30)));
            st(P + 64 * (32 * c + 24 + j), _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(b, 4), m4),
                                                           _mm512_and_si512(_mm512_srli_epi16(h, 2), m30)));
        }
    }
}

/* Q2_K and Q3_K (hm non-NULL): value 128c + 32j + 16h + l has its 2 low
 * bits at bits 2j of qs[32c + 16h + l]; Q3_K's third bit is bit 4c + j of
 * hmask[16h + l] (stored value = q + 4 * bit, 0..7). With m = 4h + l/4,
 * that is slice 32c + 8j + m. */
static void pack_q23k(const uint8_t *const rows[16], size_t qs_off, const __m512i *hm, uint8_t *P) {
    const __m512i m3 = b8(3);
    __m512i qs[8];
    for (int c = 0; c < 2; c++) {
        tr32(rows, qs_off + 32 * (size_t)c, qs);
        UNROLL for (int j = 0; j < 4; j++) {
            for (int m = 0; m < 8; m++) {
                __m512i v = _mm512_and_si512(_mm512_srli_epi16(qs[m], (unsigned)(2 * j)), m3);
                if (hm) v = _mm512_or_si512(v, x5_bit_to(hm[m], 4 * c + j, 2));
                st(P + 64 * (32 * c + 8 * j + m), v);
            }
        }
    }
}

static void pack_k_scales(uint32_t type, const uint8_t *const rows[16], size_t off, uint8_t *P) {
    int32_t sc[16][16];
    float d[16], dmin[16];
    uint32_t m16[8][16];
    UNROLL for (int i = 0; i < 16; i++) {
        x86_kscales ks;
        x86_k_decode_scales(type, rows[i] + off, &ks);
        UNROLL for (int s = 0; s < 16; s++) sc[s][i] = ks.sc[s];
        UNROLL for (int j = 0; j < 8; j++)
            m16[j][i] = (uint32_t)(uint16_t)ks.m16[2 * j] | ((uint32_t)(uint16_t)ks.m16[2 * j + 1] << 16);
        d[i] = ks.d;
        dmin[i] = ks.dmin;
    }
    memcpy(P + X5_K_SC, sc, sizeof sc);
    memcpy(P + X5_K_M16, m16, sizeof m16);
    memcpy(P + X5_K_D, d, sizeof d);
    memcpy(P + X5_K_DMIN, dmin, sizeof dmin);
}

void x5_pack_k(uint32_t type, const uint8_t *W, size_t row_bytes, int nr, int64_t b0, int64_t nb, uint8_t *panel) {
    const uint8_t *rows[16];
    const size_t bb = x86_block_bytes(type);
    panel_rows(W, row_bytes, nr, rows);
    for (int64_t b = 0; b < nb; b++) {
        const size_t off = (size_t)(b0 + b) * bb;
        uint8_t *P = panel + b * X5_K_BLOCK;
        __m512i h[8];
        switch (type) {
        case INFER_TYPE_Q2_K: pack_q23k(rows, off + 16, NULL, P); break;
        case INFER_TYPE_Q3_K:
            tr32(rows, off, h);
            pack_q23k(rows, off + 32, h, P);
            break;
        case INFER_TYPE_Q4_K: pack_q45k(rows, off + 16, NULL, P); break;
        case INFER_TYPE_Q5_K:
            tr32(rows, off + 16, h);
            pack_q45k(rows, off + 48, h, P);
            break;
        default: pack_q6k(rows, off, P); break;
        }
        pack_k_scales(type, rows, off, P);
    }
}
