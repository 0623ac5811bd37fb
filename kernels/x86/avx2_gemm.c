/*
 * avx2_gemm.c - quantized matmul for the AVX2 level (avx2_internal.h):
 * 8-row panels of int16 weight values (legacy: q - offset; K-quants:
 * value x sub-block scale) against activations widened to int16, with
 * vpmaddwd: exact int32 block (legacy) or super-block (K) sums, then the
 * reference's float operations in its order, so outputs are bit-identical
 * to kernels/ref as on the AVX-512 level.
 *
 * Packing decodes each weight block of a row with plain C loops (which the
 * compiler vectorizes with this file's AVX2 flags) into int16, then
 * transposes 8 rows x 8 dwords at a time into pair slices. A panel is
 * packed once per chunk of 64 tokens, so for prompt batches its cost is
 * shared; one token (generation) packs and runs the same micro-kernel.
 */
#include "avx2_internal.h"

#define UNROLL X2_UNROLL
#define INLINE X2_INLINE

#define TC 64     /* tokens per chunk */
#define KC_VALS 512 /* values per K chunk: 16 legacy blocks, 2 super-blocks */
#define PANEL_BYTES (16 * X2_LEG_BLOCK > 2 * X2_K_BLOCK ? 16 * X2_LEG_BLOCK : 2 * X2_K_BLOCK)

/* ---- decoding one block of one row ---------------------------------------------------- */

INLINE __m256i b8(int v) { return _mm256_set1_epi8((char)v); }
INLINE __m128i ld16(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }
INLINE __m256i ld32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }
INLINE void st16x16(int16_t *p, __m256i v) { _mm256_storeu_si256((__m256i *)(void *)p, v); }

/* 16 bits of h as 16 int16 lanes of 0 or `val`: lane j is bit j. */
INLINE __m256i bits16(uint32_t h, int val) {
    const __m256i sel = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, (short)0x8000);
    const __m256i hit = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16((short)h), sel), sel);
    return _mm256_and_si256(hit, _mm256_set1_epi16((short)val));
}

/* 32 bytes (values, any range that fits int8 after offset) widened. */
INLINE void widen32(int16_t *v, __m256i q, int is_signed) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    st16x16(v, is_signed ? _mm256_cvtepi8_epi16(lo) : _mm256_cvtepu8_epi16(lo));
    st16x16(v + 16, is_signed ? _mm256_cvtepi8_epi16(hi) : _mm256_cvtepu8_epi16(hi));
}

/* 32 unsigned bytes times two scales (values 0..15 use s0, 16..31 s1). */
INLINE void widen32_scaled(int16_t *v, __m256i q, int is_signed, int s0, int s1) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m256i a = is_signed ? _mm256_cvtepi8_epi16(lo) : _mm256_cvtepu8_epi16(lo);
    const __m256i b = is_signed ? _mm256_cvtepi8_epi16(hi) : _mm256_cvtepu8_epi16(hi);
    st16x16(v, _mm256_mullo_epi16(a, _mm256_set1_epi16((short)s0)));
    st16x16(v + 16, _mm256_mullo_epi16(b, _mm256_set1_epi16((short)s1)));
}

/* Bit `bit` of every byte moved to bit `to` (16-bit shifts, masked per byte). */
INLINE __m256i bit_to(__m256i h, int bit, int to) {
    const __m256i mask = b8(1 << to);
    if (bit >= to) return _mm256_and_si256(_mm256_srli_epi16(h, bit - to), mask);
    return _mm256_and_si256(_mm256_slli_epi16(h, to - bit), mask);
}

/* Legacy block: v = q - offset (Q4_1, Q5_1: q), the reference's values. */
static void decode_legacy(uint32_t type, const uint8_t *x, int16_t *v, float *d, float *m) {
    *d = x86_f16(x);
    *m = x86_legacy_has_min(type) ? x86_f16(x + 2) : 0.0f;
    if (type == INFER_TYPE_Q8_0) {
        widen32(v, ld32(x + 2), 1);
        return;
    }
    const int off = x86_legacy_offset(type);
    const uint8_t *qs = x + (type == INFER_TYPE_Q4_0 ? 2 : type == INFER_TYPE_Q4_1 ? 4 : type == INFER_TYPE_Q5_0 ? 6 : 8);
    const __m128i q = ld16(qs);
    __m256i lo = _mm256_cvtepu8_epi16(_mm_and_si128(q, _mm_set1_epi8(15)));
    __m256i hi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(15)));
    if (type == INFER_TYPE_Q5_0 || type == INFER_TYPE_Q5_1) {
        const uint32_t qh = x86_rd32(x + (type == INFER_TYPE_Q5_0 ? 2 : 4));
        lo = _mm256_or_si256(lo, bits16(qh & 0xffff, 16));
        hi = _mm256_or_si256(hi, bits16(qh >> 16, 16));
    }
    st16x16(v, _mm256_sub_epi16(lo, _mm256_set1_epi16((short)off)));
    st16x16(v + 16, _mm256_sub_epi16(hi, _mm256_set1_epi16((short)off)));
}

/* One K super-block of one row: w[e] = sub-block scale x value (centered
 * for Q3_K, Q6_K), mins[g] per 16-value group (Q2_K, Q4_K, Q5_K). */
static void decode_k(uint32_t type, const uint8_t *x, int16_t *w, int16_t *mins, float *d, float *dmin) {
    x86_kscales ks;
    x86_k_decode_scales(type, x, &ks);
    *d = ks.d;
    *dmin = ks.dmin;
    const int *sc = ks.sc;
    const __m256i m4 = b8(15), m3 = b8(3);
    switch (type) {
    case INFER_TYPE_Q2_K:
    case INFER_TYPE_Q3_K: { /* value 128c + 32j + l: bits 2j of qs[32c + l]; Q3_K: - 4 unless bit 4c+j of hmask[l] */
        const uint8_t *qs = x + (type == INFER_TYPE_Q2_K ? 16 : 32);
        const __m256i hm = ld32(x);
        for (int c = 0; c < 2; c++) {
            const __m256i q = ld32(qs + 32 * c);
            for (int j = 0; j < 4; j++) {
                __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                if (type == INFER_TYPE_Q3_K) v = _mm256_sub_epi8(_mm256_or_si256(v, bit_to(hm, 4 * c + j, 2)), b8(4));
                const int s = 8 * c + 2 * j;
                widen32_scaled(w + 128 * c + 32 * j, v, 1, sc[s], sc[s + 1]);
            }
        }
        break;
    }
    case INFER_TYPE_Q4_K:
    case INFER_TYPE_Q5_K: { /* value 64p + 32k + l: nibble k of qs[32p + l], fifth bit 2p + k of qh[l] */
        const int q5 = type == INFER_TYPE_Q5_K;
        const __m256i qh = ld32(x + 16);
        const uint8_t *qs = x + (q5 ? 48 : 16);
        for (int p = 0; p < 4; p++) {
            const __m256i q = ld32(qs + 32 * p);
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (q5) {
                lo = _mm256_or_si256(lo, bit_to(qh, 2 * p, 4));
                hi = _mm256_or_si256(hi, bit_to(qh, 2 * p + 1, 4));
            }
            widen32_scaled(w + 64 * p, lo, 0, sc[2 * p], sc[2 * p]);
            widen32_scaled(w + 64 * p + 32, hi, 0, sc[2 * p + 1], sc[2 * p + 1]);
        }
        break;
    }
    default: { /* Q6_K: value 128c + 32k + l, low 4 bits from ql, high 2 from bits 2k of qh[32c + l], - 32 */
        for (int c = 0; c < 2; c++) {
            const __m256i a = ld32(x + 64 * c), b = ld32(x + 64 * c + 32), h = ld32(x + 128 + 32 * c);
            const __m256i v[4] = {
                _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), b8(0x30))),
                _mm256_or_si256(_mm256_and_si256(b, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), b8(0x30))),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), _mm256_and_si256(h, b8(0x30))),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
                                _mm256_and_si256(_mm256_srli_epi16(h, 2), b8(0x30))),
            };
            for (int k = 0; k < 4; k++) {
                const int s = 8 * c + 2 * k;
                widen32_scaled(w + 128 * c + 32 * k, _mm256_sub_epi8(v[k], b8(32)), 1, sc[s], sc[s + 1]);
            }
        }
        break;
    }
    }
    for (int g = 0; g < 16; g++) mins[g] = x86_k_has_min(type) ? ks.m16[g] : 0;
}

/* ---- panels ------------------------------------------------------------------------------ */

/* dst[p * 8 + i] = src_i[p] (32-bit words) for p < np (a multiple of 8),
 * rows i = 0..7 of 32-bit words np apart. */
static void tr_rows(const int32_t *src, int np, int32_t *dst) {
    for (int p0 = 0; p0 < np; p0 += 8) {
        __m256 r[8], t[8], u[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps((const float *)(const void *)(src + i * np + p0));
        for (int i = 0; i < 4; i++) {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int i = 0; i < 2; i++) {
            u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
            u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
            u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
            u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_ps((float *)(void *)(dst + (p0 + j) * 8), _mm256_permute2f128_ps(u[j], u[4 + j], 0x20));
            _mm256_storeu_ps((float *)(void *)(dst + (p0 + 4 + j) * 8), _mm256_permute2f128_ps(u[j], u[4 + j], 0x31));
        }
    }
}

static void pack_panel(uint32_t type, const uint8_t *W, size_t rb, int nr, int64_t b0, int64_t nb, uint8_t *panel) {
    const size_t bb = x86_block_bytes(type);
    const int k = x86_family_of(type) == X86_FAM_K;
    for (int64_t b = 0; b < nb; b++) {
        _Alignas(32) int16_t vals[8][256];
        _Alignas(32) int16_t mins[8][16];
        float d[8], m[8];
        for (int i = 0; i < 8; i++) {
            const uint8_t *x = W + (size_t)(i < nr ? i : nr - 1) * rb + (size_t)(b0 + b) * bb;
            if (k) decode_k(type, x, vals[i], mins[i], &d[i], &m[i]);
            else decode_legacy(type, x, vals[i], &d[i], &m[i]);
        }
        uint8_t *P = panel + (size_t)b * (k ? X2_K_BLOCK : X2_LEG_BLOCK);
        if (k) {
            int32_t v32[8][128], m32[8][8];
            memcpy(v32, vals, sizeof v32); /* int16 pairs as 32-bit words */
            memcpy(m32, mins, sizeof m32);
            tr_rows(&v32[0][0], 128, (int32_t *)(void *)P);
            tr_rows(&m32[0][0], 8, (int32_t *)(void *)(P + X2_K_MIN));
            memcpy(P + X2_K_D, d, 32);
            memcpy(P + X2_K_DMIN, m, 32);
        } else {
            int32_t v32[8][16];
            for (int i = 0; i < 8; i++) memcpy(v32[i], vals[i], 64);
            tr_rows(&v32[0][0], 16, (int32_t *)(void *)P);
            memcpy(P + X2_LEG_Q, d, 32);
            memcpy(P + X2_LEG_Q + 32, m, 32);
        }
    }
}

INLINE __m256i bc32(const int16_t *p) { return _mm256_broadcastd_epi32(_mm_loadu_si32((const void *)p)); }

/* ---- micro-kernels ------------------------------------------------------------------------ */

/* Legacy: NT tokens x 8 rows x nb blocks. a16[t]: token t's int16 values
 * of the chunk; meta: [block][2][X2_T] d_a and s_a. */
INLINE void mk_legacy(const int NT, const int has_min, const uint8_t *P, int64_t nb, const int16_t *const *a16,
                      const float *meta, float *out, size_t os, int first, int nr) {
    __m256 f[X2_T];
    __m256i c[X2_T];
    const __m256i k = x2_mask(nr);
    UNROLL for (int t = 0; t < NT; t++) f[t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(out + t * os, k);
    for (int64_t b = 0; b < nb; b++, P += X2_LEG_BLOCK, meta += 2 * X2_T) {
        UNROLL for (int t = 0; t < NT; t++) c[t] = _mm256_setzero_si256();
        for (int p = 0; p < 16; p++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(P + 32 * p));
            UNROLL for (int t = 0; t < NT; t++)
                c[t] = _mm256_add_epi32(c[t], _mm256_madd_epi16(w, bc32(a16[t] + 32 * b + 2 * p)));
        }
        const __m256 dv = _mm256_loadu_ps((const float *)(const void *)(P + X2_LEG_Q));
        UNROLL for (int t = 0; t < NT; t++) {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(c[t]), _mm256_mul_ps(dv, _mm256_set1_ps(meta[t])));
            if (has_min) {
                const __m256 mv = _mm256_loadu_ps((const float *)(const void *)(P + X2_LEG_Q + 32));
                v = _mm256_add_ps(v, _mm256_mul_ps(mv, _mm256_set1_ps(meta[X2_T + t])));
            }
            f[t] = _mm256_add_ps(f[t], v);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) _mm256_maskstore_ps(out + t * os, k, f[t]);
}

/* K: NT tokens x 8 rows x nsb super-blocks. a16[t]: int16 values of the
 * chunk; q8[t]: the Q8_K blocks (d_a, bsums). */
INLINE void mk_k(const int NT, const int has_min, const uint8_t *P, int64_t nsb, const int16_t *const *a16,
                 const uint8_t *const *q8, float *out, size_t os, int first, int nr) {
    __m256 f[X2_T];
    __m256i c[X2_T], mn[X2_T];
    const __m256i k = x2_mask(nr);
    UNROLL for (int t = 0; t < NT; t++) f[t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(out + t * os, k);
    for (int64_t sb = 0; sb < nsb; sb++, P += X2_K_BLOCK) {
        UNROLL for (int t = 0; t < NT; t++) c[t] = mn[t] = _mm256_setzero_si256();
        for (int p = 0; p < 128; p++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(P + 32 * p));
            UNROLL for (int t = 0; t < NT; t++)
                c[t] = _mm256_add_epi32(c[t], _mm256_madd_epi16(w, bc32(a16[t] + 256 * sb + 2 * p)));
        }
        if (has_min) {
            for (int j = 0; j < 8; j++) {
                const __m256i m = _mm256_loadu_si256((const __m256i *)(const void *)(P + X2_K_MIN + 32 * j));
                UNROLL for (int t = 0; t < NT; t++) {
                    const int16_t *bs = (const int16_t *)(const void *)(q8[t] + 292 * sb + 260);
                    mn[t] = _mm256_add_epi32(mn[t], _mm256_madd_epi16(m, bc32(bs + 2 * j)));
                }
            }
        }
        const __m256 dv = _mm256_loadu_ps((const float *)(const void *)(P + X2_K_D));
        UNROLL for (int t = 0; t < NT; t++) {
            const __m256 da = _mm256_set1_ps(x86_rdf32(q8[t] + 292 * sb));
            const __m256 d = _mm256_mul_ps(dv, da);
            __m256 v;
            if (has_min) {
                const __m256 dm = _mm256_mul_ps(_mm256_loadu_ps((const float *)(const void *)(P + X2_K_DMIN)), da);
                v = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(c[t])), _mm256_mul_ps(dm, _mm256_cvtepi32_ps(mn[t])));
            } else {
                v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(c[t]));
            }
            f[t] = _mm256_add_ps(f[t], v);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) _mm256_maskstore_ps(out + t * os, k, f[t]);
}

typedef void (*mk_legacy_fn)(const uint8_t *, int64_t, const int16_t *const *, const float *, float *, size_t, int, int);
typedef void (*mk_k_fn)(const uint8_t *, int64_t, const int16_t *const *, const uint8_t *const *, float *, size_t, int,
                        int);
#define MK_L(N, M)                                                                                              \
    static void mk_legacy_##N##_##M(const uint8_t *P, int64_t nb, const int16_t *const *a, const float *meta,    \
                                    float *out, size_t os, int first, int nr) {                                  \
        mk_legacy(N, M, P, nb, a, meta, out, os, first, nr);                                                     \
    }
#define MK_KK(N, M)                                                                                              \
    static void mk_k_##N##_##M(const uint8_t *P, int64_t nsb, const int16_t *const *a, const uint8_t *const *q8, \
                               float *out, size_t os, int first, int nr) {                                       \
        mk_k(N, M, P, nsb, a, q8, out, os, first, nr);                                                           \
    }
MK_L(1, 0) MK_L(2, 0) MK_L(3, 0) MK_L(4, 0) MK_L(1, 1) MK_L(2, 1) MK_L(3, 1) MK_L(4, 1)
MK_KK(1, 0) MK_KK(2, 0) MK_KK(3, 0) MK_KK(4, 0) MK_KK(1, 1) MK_KK(2, 1) MK_KK(3, 1) MK_KK(4, 1)
static const mk_legacy_fn MK_LEGACY[2][X2_T] = {{mk_legacy_1_0, mk_legacy_2_0, mk_legacy_3_0, mk_legacy_4_0},
                                                {mk_legacy_1_1, mk_legacy_2_1, mk_legacy_3_1, mk_legacy_4_1}};
static const mk_k_fn MK_K[2][X2_T] = {{mk_k_1_0, mk_k_2_0, mk_k_3_0, mk_k_4_0}, {mk_k_1_1, mk_k_2_1, mk_k_3_1, mk_k_4_1}};

/* ---- the driver ----------------------------------------------------------------------------- */

/* Activation quants of tokens [0, ntc), values [v0, v0 + nv), widened to
 * int16 at a16[t * KC_VALS ...]; legacy metadata [block][2][X2_T] per token
 * block at meta. */
static void prep_act(uint32_t type, const uint8_t *act, size_t as, int64_t ntc, int64_t v0, int nv, int16_t *a16,
                     float *meta) {
    const int k = x86_family_of(type) == X86_FAM_K, has_min = x86_legacy_has_min(type);
    const size_t ab = k ? 292 : has_min ? 36 : 34, qoff = k ? 4 : has_min ? 4 : 2;
    const int bs = k ? X86_QKK : X86_QK;
    for (int64_t t = 0; t < ntc; t++) {
        const uint8_t *a = act + (size_t)t * as + (size_t)(v0 / bs) * ab;
        for (int b = 0; b < nv / bs; b++, a += ab) {
            for (int j = 0; j < bs; j += 16) {
                const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(a + qoff + j)));
                _mm256_storeu_si256((__m256i *)(void *)(a16 + t * KC_VALS + b * bs + j), w);
            }
            if (!k) {
                float *m = meta + ((t / X2_T) * (KC_VALS / X86_QK) + b) * 2 * X2_T + t % X2_T;
                m[0] = x86_f16(a);
                m[X2_T] = has_min ? x86_f16(a + 2) : 0.0f;
            }
        }
    }
}

/* W: the file's rows (packed 0, rb bytes each) or a repacked weight's
 * first group (packed 1, rb unused, n_rows a multiple of 16): its panels
 * come from group-blocks put back in row order, one group (two panels) of
 * one K chunk at a time. */
static void matmul_quant(const int packed, uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                         const uint8_t *act, size_t as, int64_t n_tok, float *out, size_t os) {
    _Alignas(32) int16_t a16[TC * KC_VALS];
    _Alignas(32) float meta[TC / X2_T * (KC_VALS / X86_QK) * 2 * X2_T];
    _Alignas(32) uint8_t panel[PANEL_BYTES];
    _Alignas(32) uint8_t rows16[16 * KC_VALS / X86_QK * 34]; /* packed: one group's K chunk (legacy is the larger) */
    const int k = x86_family_of(type) == X86_FAM_K, has_min = k ? x86_k_has_min(type) : x86_legacy_has_min(type);
    const int bs = k ? X86_QKK : X86_QK;
    const size_t ab = k ? 292 : has_min ? 36 : 34, bb = x86_block_bytes(type);
    const size_t gbytes = packed ? x86_sl_group_bytes(type, n_cols) : 0;
    for (int64_t tok0 = 0; tok0 < n_tok; tok0 += TC) {
        const int64_t ntc = n_tok - tok0 < TC ? n_tok - tok0 : TC;
        for (int64_t v0 = 0; v0 < n_cols; v0 += KC_VALS) {
            const int nv = n_cols - v0 < KC_VALS ? (int)(n_cols - v0) : KC_VALS;
            const int64_t b0 = v0 / bs, nb = nv / bs;
            prep_act(type, act + (size_t)tok0 * as, as, ntc, v0, nv, a16, meta);
            for (int64_t r0 = 0; r0 < n_rows; r0 += X2_R) {
                const int nr = n_rows - r0 < X2_R ? (int)(n_rows - r0) : X2_R;
                if (packed) {
                    const uint8_t *G = W + (size_t)(r0 / 16) * gbytes;
                    if (r0 % 16 == 0) {
                        x2_unslice(type, G, b0, nb, rows16);
                        if (r0 + 16 < n_rows) /* the next group's same blocks */
                            for (size_t l = 0; l < (size_t)nb * 16 * bb; l += 64)
                                _mm_prefetch((const char *)(G + gbytes + (size_t)b0 * 16 * bb + l), _MM_HINT_T0);
                    }
                    pack_panel(type, rows16 + (size_t)(r0 % 16) * (size_t)nb * bb, (size_t)nb * bb, nr, 0, nb, panel);
                } else {
                    pack_panel(type, W + (size_t)r0 * rb, rb, nr, b0, nb, panel);
                    x86_prefetch_rows(W, rb, r0 + X2_R, X2_R, n_rows, (size_t)b0 * bb, (size_t)nb * bb);
                }
                for (int64_t t0 = 0; t0 < ntc; t0 += X2_T) {
                    const int nt = ntc - t0 < X2_T ? (int)(ntc - t0) : X2_T;
                    const int16_t *a[X2_T];
                    const uint8_t *q8[X2_T];
                    for (int t = 0; t < X2_T; t++) {
                        const int64_t tt = t0 + (t < nt ? t : 0);
                        a[t] = a16 + tt * KC_VALS;
                        q8[t] = act + (size_t)(tok0 + tt) * as + (size_t)b0 * ab;
                    }
                    float *o = out + (size_t)(tok0 + t0) * os + r0;
                    if (k) MK_K[has_min][nt - 1](panel, nb, a, q8, o, os, v0 == 0, nr);
                    else MK_LEGACY[has_min][nt - 1](panel, nb, a, meta + (t0 / X2_T) * (KC_VALS / X86_QK) * 2 * X2_T,
                                                    o, os, v0 == 0, nr);
                }
            }
        }
    }
}

void x2_matmul_quant(uint32_t type, const void *W, size_t rb, int64_t n_rows, int64_t n_cols, const void *act,
                     size_t as, int64_t n_tok, float *out, size_t os) {
    if (n_rows <= 0 || n_tok <= 0) return;
    if (n_tok == 1 && x2_gemv_quant(type, W, rb, n_rows, n_cols, act, out)) return;
    matmul_quant(0, type, W, rb, n_rows, n_cols, act, as, n_tok, out, os);
}

void x2_matmul_packed(uint32_t type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols, const void *act,
                      size_t as, int64_t n_tok, float *out, size_t os) {
    if (n_rows <= 0 || n_tok <= 0) return;
    const uint8_t *G = (const uint8_t *)P + (size_t)(r0 / 16) * x86_sl_group_bytes(type, n_cols);
    if (n_tok == 1 && x2_gemv_packed(type, P, r0 / 16, n_rows / 16, n_cols, act, out)) return;
    matmul_quant(1, type, G, 0, n_rows, n_cols, act, as, n_tok, out, os);
}
