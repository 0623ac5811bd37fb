/*
 * avx2_gemm.c - quantized matmul for the AVX2 level (avx2_internal.h):
 * 8-row panels of weight values against 4 tokens at a time, exact integer
 * block (legacy) or sub-block (K) sums, then the reference's float
 * operations in its order, so outputs are bit-identical to kernels/ref as
 * on the AVX-512 level.
 *
 * Every type is unpacked into byte panels. All but Q8_0 hold each value as
 * one unsigned byte (with its offset: Q4_0 stores q, value q - 8; Q6_K 0..63,
 * value - 32), slice s holding values 4s..4s+3 of the 8 rows. vpmaddubsw
 * multiplies a slice by 4 activation bytes broadcast (pairs summed into
 * int16, which saturate past 2^15), and since the values are small the
 * pair sums of several slices add up in int16 before one vpmaddwd widens
 * them or applies a K-quant's sub-block scale (the scale in both int16
 * halves of a lane): Q2_K/Q3_K/Q4_x 4-8 slices, Q5 (<= 31) 4, Q6_K (<= 63)
 * 2. The offsets come back in integers: -offset * sum(activation block)
 * for Q4_0/Q5_0, and for the K-quants the per-16 corrections (mins, or
 * the offset times the scale) against Q8_K's group sums.
 *
 * Q8_0's values span a whole signed byte, which vpmaddubsw cannot take
 * unsigned: its byte panels hold the signed values, and a slice multiplies
 * |w| by the activations with w's sign (vpsignb; a pair sum is at most
 * 2 * 128 * 127, which fits int16, but two do not, so each slice's pair
 * sums are widened by vpmaddwd at once).
 *
 * Built with X2_VNNI (avxvnni_gemm.c, AVX-VNNI), vpdpbusd adds each
 * slice's products to int32 sums at once (Q8_0 still through vpsignb),
 * with no int16 stage: a K-quant's sub-block sum is then multiplied by
 * its scale (vpmulld). The same integer sums either way.
 *
 * Packing decodes each weight block of a row with plain C loops (which the
 * compiler vectorizes with this file's AVX2 flags), then transposes 8 rows
 * x 8 dwords at a time into slices. A panel is packed once per chunk of TC
 * tokens, so for prompt batches its cost is shared.
 */
#include "avx2_internal.h"

#ifdef X2_VNNI /* built so by avxvnni_gemm.c */
#define x2_matmul_quant x2v_matmul_quant
#define x2_matmul_packed x2v_matmul_packed
#endif

#define UNROLL X2_UNROLL
#define INLINE X2_INLINE

/* Tokens per chunk: a panel is packed once per chunk, so a longer chunk
 * shares that cost among more tokens: 256 (TinyLlama shapes, pp512, 2
 * threads, INFER_CPU=avx2 on Zen 4: Q4_0 116-117 -> 153-155 t/s, Q4_K_M
 * 130-131 -> 153 against 64; 512 was slower than 256). */
#define TC 256
#define KC_VALS 512 /* values per K chunk: 16 legacy blocks, 2 super-blocks */
/* Byte panels: legacy q[8 slices][8 rows][4] | float d[8] | float m[8];
 * K q[64 slices][8 rows][4] | int32 scale pairs [16][8] | int32 pairs of
 * per-16 corrections [8][8] | float d[8] | float dmin[8]. */
#define XB_LEG_Q (8 * 32)
#define XB_LEG_BLOCK (XB_LEG_Q + 2 * 32)
#define XB_K_SC (64 * 32)
#define XB_K_MIN (XB_K_SC + 16 * 32)
#define XB_K_D (XB_K_MIN + 8 * 32)
#define XB_K_DMIN (XB_K_D + 32)
#define XB_K_BLOCK (XB_K_DMIN + 32)
#define PANEL_BYTES (16 * XB_LEG_BLOCK > 2 * XB_K_BLOCK ? 16 * XB_LEG_BLOCK : 2 * XB_K_BLOCK)

/* ---- decoding one block of one row ---------------------------------------------------- */

INLINE __m256i b8(int v) { return _mm256_set1_epi8((char)v); }
INLINE __m256i ld32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

/* Bit `bit` of every byte moved to bit `to` (16-bit shifts, masked per byte). */
INLINE __m256i bit_to(__m256i h, int bit, int to) {
    const __m256i mask = b8(1 << to);
    if (bit >= to) return _mm256_and_si256(_mm256_srli_epi16(h, bit - to), mask);
    return _mm256_and_si256(_mm256_slli_epi16(h, to - bit), mask);
}

/* Legacy block: its stored values (q, with Q5's fifth bit; Q8_0's signed
 * q as they are) as bytes. */
static void bytes_legacy(uint32_t type, const uint8_t *x, uint8_t *v, float *d, float *m) {
    const int q5 = type == INFER_TYPE_Q5_0 || type == INFER_TYPE_Q5_1;
    *d = x86_f16(x);
    *m = x86_legacy_has_min(type) ? x86_f16(x + 2) : 0.0f;
    if (type == INFER_TYPE_Q8_0) {
        memcpy(v, x + 2, 32);
        return;
    }
    const uint8_t *qs = x + (type == INFER_TYPE_Q4_0 ? 2 : type == INFER_TYPE_Q4_1 ? 4 : type == INFER_TYPE_Q5_0 ? 6 : 8);
    const uint32_t qh = q5 ? x86_rd32(x + (type == INFER_TYPE_Q5_0 ? 2 : 4)) : 0;
    for (int j = 0; j < 16; j++) {
        v[j] = (uint8_t)((qs[j] & 15) | (((qh >> j) & 1) << 4));
        v[16 + j] = (uint8_t)((qs[j] >> 4) | (((qh >> (16 + j)) & 1) << 4));
    }
}

INLINE void st32(uint8_t *p, __m256i v) { _mm256_storeu_si256((__m256i *)(void *)p, v); }

/* One K super-block of one row: its stored values as bytes (Q3_K: 0..7,
 * value - 4; Q6_K: 0..63, value - 32) and its scales (ks). */
static void bytes_k(uint32_t type, const uint8_t *x, uint8_t *v, x86_kscales *ks) {
    x86_k_decode_scales(type, x, ks);
    const __m256i m4 = b8(15), m3 = b8(3);
    switch (type) {
    case INFER_TYPE_Q2_K:
    case INFER_TYPE_Q3_K: { /* value 128c + 32j + l: bits 2j of qs[32c + l]; Q3_K: + 4 if bit 4c+j of hmask[l] */
        const uint8_t *qs = x + (type == INFER_TYPE_Q2_K ? 16 : 32);
        const __m256i hm = ld32(x);
        for (int c = 0; c < 2; c++) {
            const __m256i q = ld32(qs + 32 * c);
            for (int j = 0; j < 4; j++) {
                __m256i w = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                if (type == INFER_TYPE_Q3_K) w = _mm256_or_si256(w, bit_to(hm, 4 * c + j, 2));
                st32(v + 128 * c + 32 * j, w);
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
            st32(v + 64 * p, lo);
            st32(v + 64 * p + 32, hi);
        }
        break;
    }
    default: /* Q6_K: value 128c + 32k + l, low 4 bits from ql, high 2 from bits 2k of qh[32c + l] */
        for (int c = 0; c < 2; c++) {
            __m256i w[4];
            x2_q6k_file_values(ld32(x + 64 * c), ld32(x + 64 * c + 32), ld32(x + 128 + 32 * c), w);
            for (int k = 0; k < 4; k++) st32(v + 128 * c + 32 * k, w[k]);
        }
        break;
    }
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

/* Rows [0, nr) of W (nr <= 8; missing rows repeat the last), blocks
 * [b0, b0 + nb), into byte panel blocks. */
static void pack_panel(uint32_t type, const uint8_t *W, size_t rb, int nr, int64_t b0, int64_t nb, uint8_t *panel) {
    const size_t bb = x86_block_bytes(type);
    const int k = x86_family_of(type) == X86_FAM_K;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *x[8];
        for (int i = 0; i < 8; i++) x[i] = W + (size_t)(i < nr ? i : nr - 1) * rb + (size_t)(b0 + b) * bb;
        float d[8], m[8];
        if (k) {
            uint8_t *P = panel + (size_t)b * XB_K_BLOCK;
            _Alignas(32) uint8_t vals[8][256];
            _Alignas(32) int16_t mins[8][16];
            int32_t *scp = (int32_t *)(void *)(P + XB_K_SC);
            for (int i = 0; i < 8; i++) {
                x86_kscales ks;
                bytes_k(type, x[i], vals[i], &ks);
                for (int s = 0; s < 16; s++) scp[8 * s + i] = x86_pack16(ks.sc[s], ks.sc[s]);
                memcpy(mins[i], ks.m16, sizeof mins[i]);
                d[i] = ks.d;
                m[i] = ks.dmin;
            }
            tr_rows((const int32_t *)(const void *)vals, 64, (int32_t *)(void *)P);
            tr_rows((const int32_t *)(const void *)mins, 8, (int32_t *)(void *)(P + XB_K_MIN));
            memcpy(P + XB_K_D, d, 32);
            memcpy(P + XB_K_DMIN, m, 32);
        } else {
            uint8_t *P = panel + (size_t)b * XB_LEG_BLOCK;
            _Alignas(32) uint8_t vals[8][32];
            for (int i = 0; i < 8; i++) bytes_legacy(type, x[i], vals[i], &d[i], &m[i]);
            tr_rows((const int32_t *)(const void *)vals, 8, (int32_t *)(void *)P);
            memcpy(P + XB_LEG_Q, d, 32);
            memcpy(P + XB_LEG_Q + 32, m, 32);
        }
    }
}

/* Activation metadata per block and token: d_a, and -offset * sum(q_a)
 * (int) or s_a (Q8_1; float). */
typedef union {
    float f;
    int32_t i;
} meta_t;

/* ---- micro-kernels ------------------------------------------------------------------------ */

/* Byte panels, legacy types: NT tokens x 8 rows x nb blocks. a[t]:
 * token t's quants of the chunk's first block (ab bytes per block);
 * meta: [block][2][X2_T] d_a and either -offset * sum(q_a) or s_a. Q4
 * values (<= 15): 8 pair sums of <= 2 * 15 * 127 fit int16; Q5 (<= 31): 4.
 * Q8_0 (q8 1, signed): |w| times the activation with w's sign, each
 * slice's pair sums (<= 2 * 128 * 127) widened at once, no offset. */
INLINE void mkb_legacy(const int NT, const int q8, const int has_min, const int q5, const uint8_t *P, int64_t nb,
                       const uint8_t *const *a, size_t ab, const meta_t *meta, float *out, size_t os, int first, int nr) {
    __m256 f[X2_T];
#ifdef X2_VNNI
    __m256i lo[X2_T]; /* int32 sums */
#else
    __m256i lo[X2_T], hi[X2_T]; /* int16 pair sums (Q8_0: int32) */
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    UNROLL for (int t = 0; t < NT; t++) f[t] = first ? _mm256_setzero_ps() : x2_load_n(out + t * os, nr);
    for (int64_t b = 0; b < nb; b++, P += XB_LEG_BLOCK, meta += 2 * X2_T) {
#ifdef X2_VNNI
        UNROLL for (int t = 0; t < NT; t++) lo[t] = _mm256_setzero_si256();
#else
        UNROLL for (int t = 0; t < NT; t++) lo[t] = hi[t] = _mm256_setzero_si256();
#endif
        UNROLL for (int j = 0; j < 8; j++) {
            const __m256i w = ld32(P + 32 * j), aw = q8 ? _mm256_abs_epi8(w) : w;
            UNROLL for (int t = 0; t < NT; t++) {
                const __m256i av = x2_bc32(a[t] + (size_t)b * ab + 4 * (size_t)j);
#ifdef X2_VNNI
                if (q8) lo[t] = _mm256_dpbusd_avx_epi32(lo[t], aw, _mm256_sign_epi8(av, w));
                else lo[t] = _mm256_dpbusd_avx_epi32(lo[t], w, av);
#else
                if (q8)
                    lo[t] = _mm256_add_epi32(lo[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, w)), ones));
                else if (q5 && j >= 4) hi[t] = x2_acc16(hi[t], w, av);
                else lo[t] = x2_acc16(lo[t], w, av);
#endif
            }
        }
        const __m256 dv = _mm256_loadu_ps((const float *)(const void *)(P + XB_LEG_Q));
        UNROLL for (int t = 0; t < NT; t++) {
#ifdef X2_VNNI
            __m256i c = lo[t];
#else
            __m256i c = q8   ? lo[t]
                        : q5 ? _mm256_add_epi32(_mm256_madd_epi16(lo[t], ones), _mm256_madd_epi16(hi[t], ones))
                             : _mm256_madd_epi16(lo[t], ones);
#endif
            if (!has_min && !q8) c = _mm256_add_epi32(c, _mm256_set1_epi32(meta[X2_T + t].i));
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(c), _mm256_mul_ps(dv, _mm256_set1_ps(meta[t].f)));
            if (has_min) {
                const __m256 mv = _mm256_loadu_ps((const float *)(const void *)(P + XB_LEG_Q + 32));
                v = _mm256_add_ps(v, _mm256_mul_ps(mv, _mm256_set1_ps(meta[X2_T + t].f)));
            }
            f[t] = _mm256_add_ps(f[t], v);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) x2_store_n(out + t * os, nr, f[t]);
}

/* Byte panels, K-quants: NT tokens x 8 rows x nsb super-blocks. q8[t]:
 * token t's first Q8_K block of the chunk. SUB values per sub-block, CH
 * slices of pair sums added in int16 (CH * 2 * max value * 128 < 2^15),
 * then one vpmaddwd by the scale pair. */
INLINE void mkb_k(const int NT, const int SUB, const int CH, const int has_min, const uint8_t *P, int64_t nsb,
                  const uint8_t *const *q8, float *out, size_t os, int first, int nr) {
    __m256 f[X2_T];
    __m256i is[X2_T], c[X2_T];
    UNROLL for (int t = 0; t < NT; t++) f[t] = first ? _mm256_setzero_ps() : x2_load_n(out + t * os, nr);
    for (int64_t sb = 0; sb < nsb; sb++, P += XB_K_BLOCK) {
        const size_t ao = (size_t)sb * 292;
        UNROLL for (int t = 0; t < NT; t++) is[t] = _mm256_setzero_si256();
        for (int s = 0; s < 256 / SUB; s++) {
            const __m256i sc = ld32(P + XB_K_SC + 32 * s);
#ifdef X2_VNNI
            const __m256i sc32 = _mm256_srai_epi32(_mm256_slli_epi32(sc, 16), 16);
            UNROLL for (int t = 0; t < NT; t++) c[t] = _mm256_setzero_si256();
            UNROLL for (int j = 0; j < SUB / 4; j++) {
                const int sl = s * SUB / 4 + j;
                const __m256i w = ld32(P + 32 * sl);
                UNROLL for (int t = 0; t < NT; t++) c[t] = _mm256_dpbusd_avx_epi32(c[t], w, x2_bc32(q8[t] + ao + 4 + 4 * (size_t)sl));
            }
            UNROLL for (int t = 0; t < NT; t++) is[t] = _mm256_add_epi32(is[t], _mm256_mullo_epi32(c[t], sc32));
#else
            UNROLL for (int j0 = 0; j0 < SUB / 4; j0 += CH) {
                UNROLL for (int t = 0; t < NT; t++) c[t] = _mm256_setzero_si256();
                UNROLL for (int j = j0; j < j0 + CH; j++) {
                    const int sl = s * SUB / 4 + j;
                    const __m256i w = ld32(P + 32 * sl);
                    UNROLL for (int t = 0; t < NT; t++) c[t] = x2_acc16(c[t], w, x2_bc32(q8[t] + ao + 4 + 4 * (size_t)sl));
                }
                UNROLL for (int t = 0; t < NT; t++) is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(c[t], sc));
            }
#endif
        }
        UNROLL for (int t = 0; t < NT; t++) c[t] = _mm256_setzero_si256();
        UNROLL for (int j = 0; j < 8; j++) {
            const __m256i m = ld32(P + XB_K_MIN + 32 * j);
#ifdef X2_VNNI
            UNROLL for (int t = 0; t < NT; t++) c[t] = _mm256_dpwssd_avx_epi32(c[t], m, x2_bc32(q8[t] + ao + 260 + 4 * j));
#else
            UNROLL for (int t = 0; t < NT; t++) c[t] = _mm256_add_epi32(c[t], _mm256_madd_epi16(m, x2_bc32(q8[t] + ao + 260 + 4 * j)));
#endif
        }
        const __m256 dv = _mm256_loadu_ps((const float *)(const void *)(P + XB_K_D));
        UNROLL for (int t = 0; t < NT; t++) {
            const __m256 da = _mm256_set1_ps(x86_rdf32(q8[t] + ao));
            const __m256 d = _mm256_mul_ps(dv, da);
            __m256 v;
            if (has_min) {
                const __m256 dm = _mm256_mul_ps(_mm256_loadu_ps((const float *)(const void *)(P + XB_K_DMIN)), da);
                v = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(is[t])), _mm256_mul_ps(dm, _mm256_cvtepi32_ps(c[t])));
            } else {
                v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(is[t], c[t])));
            }
            f[t] = _mm256_add_ps(f[t], v);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) x2_store_n(out + t * os, nr, f[t]);
}

typedef void (*mkb_legacy_fn)(const uint8_t *, int64_t, const uint8_t *const *, size_t, const meta_t *, float *, size_t,
                              int, int);
typedef void (*mkb_k_fn)(const uint8_t *, int64_t, const uint8_t *const *, float *, size_t, int, int);
#define MKB_L(N, Q8, M, Q5)                                                                                          \
    static void mkb_l_##N##_##Q8##_##M##_##Q5(const uint8_t *P, int64_t nb, const uint8_t *const *a, size_t ab,     \
                                              const meta_t *meta, float *out, size_t os, int first, int nr) {       \
        mkb_legacy(N, Q8, M, Q5, P, nb, a, ab, meta, out, os, first, nr);                                           \
    }
#define MKB_K(N, NAME, SUB, CH, M)                                                                                    \
    static void mkb_##NAME##_##N(const uint8_t *P, int64_t nsb, const uint8_t *const *q8, float *out, size_t os,     \
                                 int first, int nr) {                                                               \
        mkb_k(N, SUB, CH, M, P, nsb, q8, out, os, first, nr);                                                        \
    }
#define BY_NT(M, ...) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__) M(4, __VA_ARGS__)
BY_NT(MKB_L, 1, 0, 0)
BY_NT(MKB_L, 0, 0, 0) BY_NT(MKB_L, 0, 1, 0) BY_NT(MKB_L, 0, 0, 1) BY_NT(MKB_L, 0, 1, 1)
/* per type: values per sub-block, slices per int16 sum (bounds by the largest value: 3, 7, 15, 31, 63), mins */
BY_NT(MKB_K, q2k, 16, 4, 1) BY_NT(MKB_K, q3k, 16, 4, 0) BY_NT(MKB_K, q4k, 32, 8, 1) BY_NT(MKB_K, q5k, 32, 4, 1)
BY_NT(MKB_K, q6k, 16, 2, 0)
#define ROW_L(Q8, M, Q5) \
    {mkb_l_1_##Q8##_##M##_##Q5, mkb_l_2_##Q8##_##M##_##Q5, mkb_l_3_##Q8##_##M##_##Q5, mkb_l_4_##Q8##_##M##_##Q5}
static const mkb_legacy_fn MKB_Q8[X2_T] = ROW_L(1, 0, 0);
static const mkb_legacy_fn MKB_LEGACY[2][2][X2_T] = {{ROW_L(0, 0, 0), ROW_L(0, 0, 1)}, {ROW_L(0, 1, 0), ROW_L(0, 1, 1)}};
#define ROW_K(NAME) {mkb_##NAME##_1, mkb_##NAME##_2, mkb_##NAME##_3, mkb_##NAME##_4}
static const mkb_k_fn MKB_K[5][X2_T] = {ROW_K(q2k), ROW_K(q3k), ROW_K(q4k), ROW_K(q5k), ROW_K(q6k)};

/* ---- the driver ----------------------------------------------------------------------------- */

/* What the micro-kernels need of the activations of tokens [0, ntc),
 * values [v0, v0 + nv) besides their quants: legacy types, meta
 * ([block][2][X2_T] per token block: d_a, and for all but Q8_0 -offset *
 * sum(q_a) or s_a); K-quants read their Q8_K blocks as they are. */
static void prep_act(uint32_t type, const uint8_t *act, size_t as, int64_t ntc, int64_t v0, int nv, meta_t *meta) {
    if (x86_family_of(type) == X86_FAM_K) return;
    const int has_min = x86_legacy_has_min(type), off = x86_legacy_offset(type);
    const size_t ab = has_min ? 36 : 34, qoff = has_min ? 4 : 2;
    for (int64_t t = 0; t < ntc; t++) {
        const uint8_t *a = act + (size_t)t * as + (size_t)(v0 / X86_QK) * ab;
        for (int b = 0; b < nv / X86_QK; b++, a += ab) {
            const size_t mi = ((size_t)(t / X2_T) * (KC_VALS / X86_QK) + (size_t)b) * 2 * X2_T + (size_t)(t % X2_T);
            meta[mi].f = x86_f16(a);
            if (type == INFER_TYPE_Q8_0) continue; /* signed values: no offset term */
            if (has_min) meta[mi + X2_T].f = x86_f16(a + 2);
            else meta[mi + X2_T].i = -off * x86_sum_q8x32(a + qoff);
        }
    }
}

/* W: the file's rows (packed 0, rb bytes each) or a repacked weight's
 * first group (packed 1, rb unused, n_rows a multiple of 16): its panels
 * come from group-blocks put back in row order, one group (two panels) of
 * one K chunk at a time. */
static void matmul_quant(const int packed, uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                         const uint8_t *act, size_t as, int64_t n_tok, float *out, size_t os) {
    enum { META = TC / X2_T * (KC_VALS / X86_QK) * 2 * X2_T, ROWS16 = 16 * KC_VALS / X86_QK * 34 };
    _Static_assert(X86_UP64(sizeof(meta_t) * META) + X86_UP64(PANEL_BYTES) + ROWS16 <= KERNELS_SCRATCH_BYTES, "scratch");
    meta_t *const meta = kernels_scratch(); /* [META] */
    uint8_t *const panel = (uint8_t *)meta + X86_UP64(sizeof(meta_t) * META);
    uint8_t *const rows16 = panel + X86_UP64(PANEL_BYTES); /* packed: one group's K chunk (legacy is the larger) */
    const int k = x86_family_of(type) == X86_FAM_K, has_min = k ? x86_k_has_min(type) : x86_legacy_has_min(type);
    const int bs = k ? X86_QKK : X86_QK;
    const size_t ab = k ? 292 : has_min ? 36 : 34, bb = x86_block_bytes(type);
    const size_t gbytes = packed ? x86_sl_group_bytes(type, n_cols) : 0;
    const int q5 = type == INFER_TYPE_Q5_0 || type == INFER_TYPE_Q5_1;
    const int kind = type == INFER_TYPE_Q2_K ? 0 : type == INFER_TYPE_Q3_K ? 1 : type == INFER_TYPE_Q4_K ? 2 : type == INFER_TYPE_Q5_K ? 3 : 4;
    const size_t qa = k ? 0 : has_min ? 4 : 2; /* legacy: the quants' offset in an activation block */
    for (int64_t tok0 = 0; tok0 < n_tok; tok0 += TC) {
        const int64_t ntc = n_tok - tok0 < TC ? n_tok - tok0 : TC;
        for (int64_t v0 = 0; v0 < n_cols; v0 += KC_VALS) {
            const int nv = n_cols - v0 < KC_VALS ? (int)(n_cols - v0) : KC_VALS;
            const int64_t b0 = v0 / bs, nb = nv / bs;
            prep_act(type, act + (size_t)tok0 * as, as, ntc, v0, nv, meta);
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
                    const uint8_t *q8[X2_T];
                    for (int t = 0; t < X2_T; t++) {
                        const int64_t tt = t0 + (t < nt ? t : 0);
                        q8[t] = act + (size_t)(tok0 + tt) * as + (size_t)b0 * ab + qa;
                    }
                    float *o = out + (size_t)(tok0 + t0) * os + r0;
                    const meta_t *mt = meta + (t0 / X2_T) * (KC_VALS / X86_QK) * 2 * X2_T;
                    if (k) MKB_K[kind][nt - 1](panel, nb, q8, o, os, v0 == 0, nr);
                    else if (type == INFER_TYPE_Q8_0) MKB_Q8[nt - 1](panel, nb, q8, ab, mt, o, os, v0 == 0, nr);
                    else MKB_LEGACY[has_min][q5][nt - 1](panel, nb, q8, ab, mt, o, os, v0 == 0, nr);
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
    if (n_tok == 1 && x2_gemv_packed(type, P, r0 / 16, n_rows / 16, n_cols, act, out)) return;
    const uint8_t *G = (const uint8_t *)P + (size_t)(r0 / 16) * x86_sl_group_bytes(type, n_cols);
    matmul_quant(1, type, G, 0, n_rows, n_cols, act, as, n_tok, out, os);
}
