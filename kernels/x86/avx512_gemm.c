/*
 * avx512_gemm.c - blocked matmul of quantized weights with VNNI: panels of
 * 16 unpacked weight rows (avx512_pack.c) against 8 tokens at a time.
 *
 * Micro-kernel: for each weight block, each of the 8 tokens keeps an int32
 * accumulator per row (one zmm); every slice (16 rows x 4 values) is loaded
 * once and dotted with 4 activation bytes of each token broadcast
 * (vpdpbusd: unsigned weight byte x signed activation byte). The integer
 * block dot is exact, so the float work per block is the reference's,
 * operation for operation and in the same order:
 *   legacy  sumf += (float)isum * (d_w * d_a)              [+ m_w * s_a]
 *   K       sumf += (d_w * d_a) * (float)(isum - corr)     (Q3_K, Q6_K)
 *           sumf += (d_w * d_a) * isum - (dmin_w * d_a) * corr  (Q2_K, Q4_K, Q5_K)
 * which makes every output bit-identical to kernels/ref. The stored offset
 * (Q4_0 stores q, value q - 8) comes back as offset * sum(activation
 * block): for legacy types the accumulator starts at -offset * sum; for
 * K types corr = sum over 16-value groups of m16 * bsum (Q8_K carries the
 * group sums), two int16 pairs per vpdpwssd.
 *
 * Loop nest: chunks of 512 tokens > K chunks of 512 values (the chunk's
 * activations stay in L2, the output is carried across chunks in place) >
 * panels of 16 weight rows (packed once per token chunk, in L1) > token
 * blocks of 8. Every output element
 * is produced by one row lane of one micro-kernel in the same order whatever
 * range of rows the caller passes, so thread splits never change results.
 */
#include "avx512_internal.h"

#define UNROLL X5_UNROLL
#define INLINE X5_INLINE
#define bc32 x5_bc32

INLINE __mmask16 row_mask(int nr) { return (__mmask16)((1u << nr) - 1u); }

/* A panel of a repacked weight W (nb blocks per row): group r0 / 16's
 * blocks [kb0, kb0 + nkb) put back in row order (rows16) and packed as
 * from the file; the next group's same blocks are prefetched. */
static void panel_from_packed(uint32_t type, const uint8_t *W, int64_t nb, int64_t r0, int64_t n_rows, int64_t kb0,
                              int64_t nkb, uint8_t *rows16, uint8_t *panel) {
    const size_t bb = x86_block_bytes(type), gb = 16 * bb;
    const uint8_t *G = W + (size_t)(r0 / 16) * (size_t)nb * gb;
    x2_unslice(type, G, kb0, nkb, rows16);
    if (x86_family_of(type) == X86_FAM_LEGACY) x5_pack_legacy(type, rows16, (size_t)nkb * bb, 16, 0, nkb, panel);
    else x5_pack_k(type, rows16, (size_t)nkb * bb, 16, 0, nkb, panel);
    if (r0 + X5_R < n_rows)
        for (size_t l = 0; l < (size_t)nkb * gb; l += 64)
            _mm_prefetch((const char *)(G + (size_t)nb * gb + (size_t)kb0 * gb + l), _MM_HINT_T0);
}

/* The panel of rows [r0, r0 + 16) (nr of them real), blocks [kb0, kb0 +
 * nkb): rebuilt from a repacked W (packed; nb blocks per row), else packed
 * from the file's rows (rb bytes each) with the next panel's rows
 * prefetched. */
static void panel_at(uint32_t type, int packed, const uint8_t *W, size_t rb, int64_t nb, int64_t r0, int nr,
                     int64_t n_rows, int64_t kb0, int64_t nkb, uint8_t *rows16, uint8_t *panel) {
    if (packed) {
        panel_from_packed(type, W, nb, r0, n_rows, kb0, nkb, rows16, panel);
        return;
    }
    if (x86_family_of(type) == X86_FAM_LEGACY) x5_pack_legacy(type, W + (size_t)r0 * rb, rb, nr, kb0, nkb, panel);
    else x5_pack_k(type, W + (size_t)r0 * rb, rb, nr, kb0, nkb, panel);
    x86_prefetch_rows(W, rb, r0 + X5_R, X5_R, n_rows, (size_t)kb0 * x86_block_bytes(type),
                      (size_t)nkb * x86_block_bytes(type));
}

/* ---- legacy types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 ---------------------------------- */

#define LEG_TC 512 /* tokens per chunk: a panel is packed once per chunk */
#define LEG_KC 16  /* blocks per K chunk: 512 values (the chunk's activations stay in L2) */

/* Per (token block, block, token): d_a and either -offset * sum(q_a)
 * (int32) or s_a (float, Q8_1). Laid out [block][2][X5_T]. */
typedef union {
    float f;
    int32_t i;
} meta_t;

static void legacy_meta(uint32_t type, const uint8_t *act, size_t act_stride, int64_t ntok, int64_t kb0,
                        int64_t nkb, meta_t *meta) {
    const int has_min = x86_legacy_has_min(type), off = x86_legacy_offset(type);
    const size_t ab = has_min ? 36 : 34;
    for (int64_t t = 0; t < ntok; t++) {
        meta_t *m = meta + (t / X5_T) * LEG_KC * 2 * X5_T + t % X5_T;
        const uint8_t *a = act + (size_t)t * act_stride + (size_t)kb0 * ab;
        for (int64_t b = 0; b < nkb; b++, a += ab, m += 2 * X5_T) {
            m[0].f = x86_f16(a);
            if (has_min) {
                m[X5_T].f = x86_f16(a + 2);
            } else {
                m[X5_T].i = -off * x86_sum_q8x32(a + 2);
            }
        }
    }
}

/* NT tokens (compile-time after inlining) x 16 rows x nb blocks. a[t]: the
 * quants of token t's first block; ab: bytes per activation block. */
INLINE void mk_legacy(const int NT, const int has_min, const uint8_t *P, int64_t nb, const uint8_t *const *a,
                      size_t ab, const meta_t *meta, float *out, size_t os, int first, __mmask16 k) {
    __m512 f[X5_T];
    __m512i c[X5_T];
    UNROLL for (int t = 0; t < NT; t++) f[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(k, out + t * os);
    for (int64_t b = 0; b < nb; b++, P += X5_LEG_BLOCK, meta += 2 * X5_T) {
        const size_t ao = (size_t)b * ab;
        UNROLL for (int t = 0; t < NT; t++) c[t] = has_min ? _mm512_setzero_si512() : _mm512_set1_epi32(meta[X5_T + t].i);
        UNROLL for (int j = 0; j < 8; j++) {
            const __m512i w = _mm512_loadu_si512((const void *)(P + 64 * j));
            UNROLL for (int t = 0; t < NT; t++) c[t] = _mm512_dpbusd_epi32(c[t], w, bc32(a[t] + ao + 4 * j));
        }
        const __m512 dv = _mm512_loadu_ps((const float *)(const void *)(P + X5_LEG_Q));
        UNROLL for (int t = 0; t < NT; t++) {
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(c[t]), _mm512_mul_ps(dv, _mm512_set1_ps(meta[t].f)));
            if (has_min) {
                const __m512 mv = _mm512_loadu_ps((const float *)(const void *)(P + X5_LEG_Q + 64));
                v = _mm512_add_ps(v, _mm512_mul_ps(mv, _mm512_set1_ps(meta[X5_T + t].f)));
            }
            f[t] = _mm512_add_ps(f[t], v);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(out + t * os, k, f[t]);
}

typedef void (*mk_legacy_fn)(const uint8_t *P, int64_t nb, const uint8_t *const *a, size_t ab, const meta_t *meta,
                             float *out, size_t os, int first, __mmask16 k);

#define MK_LEGACY(N, M)                                                                                    \
    static void mk_legacy_##N##_##M(const uint8_t *P, int64_t nb, const uint8_t *const *a, size_t ab,       \
                                    const meta_t *meta, float *out, size_t os, int first, __mmask16 k) {    \
        mk_legacy(N, M, P, nb, a, ab, meta, out, os, first, k);                                             \
    }
MK_LEGACY(1, 0) MK_LEGACY(2, 0) MK_LEGACY(3, 0) MK_LEGACY(4, 0)
MK_LEGACY(5, 0) MK_LEGACY(6, 0) MK_LEGACY(7, 0) MK_LEGACY(8, 0)
MK_LEGACY(1, 1) MK_LEGACY(2, 1) MK_LEGACY(3, 1) MK_LEGACY(4, 1)
MK_LEGACY(5, 1) MK_LEGACY(6, 1) MK_LEGACY(7, 1) MK_LEGACY(8, 1)

static const mk_legacy_fn MK_LEGACY_FNS[2][X5_T] = {
    {mk_legacy_1_0, mk_legacy_2_0, mk_legacy_3_0, mk_legacy_4_0, mk_legacy_5_0, mk_legacy_6_0, mk_legacy_7_0,
     mk_legacy_8_0},
    {mk_legacy_1_1, mk_legacy_2_1, mk_legacy_3_1, mk_legacy_4_1, mk_legacy_5_1, mk_legacy_6_1, mk_legacy_7_1,
     mk_legacy_8_1},
};

/* W: the file's rows (packed 0) or a repacked weight's first group
 * (packed 1, rb unused, n_rows a multiple of 16): its panels come from
 * group-blocks put back in row order. */
static void gemm_legacy(const int packed, uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                        const uint8_t *act, size_t as, int64_t n_tok, float *out, size_t os) {
    enum { PANEL = LEG_KC * X5_LEG_BLOCK, ROWS16 = 16 * LEG_KC * 34, META = LEG_TC / X5_T * LEG_KC * 2 * X5_T };
    _Static_assert(X86_UP64(PANEL) + X86_UP64(ROWS16) + sizeof(meta_t) * META <= KERNELS_SCRATCH_BYTES, "scratch");
    uint8_t *const panel = kernels_scratch();
    uint8_t *const rows16 = panel + X86_UP64(PANEL);                    /* packed: one panel's rows */
    meta_t *const meta = (meta_t *)(void *)(rows16 + X86_UP64(ROWS16)); /* [META] */
    const int has_min = x86_legacy_has_min(type);
    const size_t ab = has_min ? 36 : 34, qoff = has_min ? 4 : 2;
    const int64_t nb = n_cols / X86_QK;
    for (int64_t tok0 = 0; tok0 < n_tok; tok0 += LEG_TC) {
        const int64_t ntc = n_tok - tok0 < LEG_TC ? n_tok - tok0 : LEG_TC;
        const uint8_t *achunk = act + (size_t)tok0 * as;
        for (int64_t kb0 = 0; kb0 < nb; kb0 += LEG_KC) {
            const int64_t nkb = nb - kb0 < LEG_KC ? nb - kb0 : LEG_KC;
            legacy_meta(type, achunk, as, ntc, kb0, nkb, meta);
            for (int64_t r0 = 0; r0 < n_rows; r0 += X5_R) {
                const int nr = n_rows - r0 < X5_R ? (int)(n_rows - r0) : X5_R;
                panel_at(type, packed, W, rb, nb, r0, nr, n_rows, kb0, nkb, rows16, panel);
                for (int64_t t0 = 0; t0 < ntc; t0 += X5_T) {
                    const int nt = ntc - t0 < X5_T ? (int)(ntc - t0) : X5_T;
                    const uint8_t *a[X5_T];
                    for (int t = 0; t < X5_T; t++)
                        a[t] = achunk + (size_t)(t0 + (t < nt ? t : 0)) * as + (size_t)kb0 * ab + qoff;
                    MK_LEGACY_FNS[has_min][nt - 1](panel, nkb, a, ab, meta + (t0 / X5_T) * LEG_KC * 2 * X5_T,
                                                   out + (size_t)(tok0 + t0) * os + r0, os, kb0 == 0, row_mask(nr));
                }
            }
        }
    }
}

/* ---- K-quants: Q2_K .. Q6_K ----------------------------------------------------- */

#define K_TC 512 /* tokens per chunk */
#define K_KC 2   /* super-blocks per K chunk */

/* NT tokens x 16 rows x nsb super-blocks. a[t]: token t's first Q8_K block
 * (f32 d | int8 q[256] | int16 bsums[16]). SUB: values per sub-block. */
INLINE void mk_k(const int NT, const int SUB, const int has_min, const uint8_t *P, int64_t nsb,
                 const uint8_t *const *a, float *out, size_t os, int first, __mmask16 k) {
    __m512 f[X5_T];
    __m512i is[X5_T], c[X5_T];
    UNROLL for (int t = 0; t < NT; t++) f[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(k, out + t * os);
    for (int64_t sb = 0; sb < nsb; sb++, P += X5_K_BLOCK) {
        const size_t ao = (size_t)sb * 292;
        UNROLL for (int t = 0; t < NT; t++) is[t] = _mm512_setzero_si512();
        for (int s = 0; s < 256 / SUB; s++) {
            const uint8_t *Ps = P + 64 * (size_t)(s * SUB / 4);
            const size_t qo = ao + 4 + (size_t)(s * SUB);
            UNROLL for (int t = 0; t < NT; t++) c[t] = _mm512_setzero_si512();
            UNROLL for (int j = 0; j < SUB / 4; j++) {
                const __m512i w = _mm512_loadu_si512((const void *)(Ps + 64 * j));
                UNROLL for (int t = 0; t < NT; t++) c[t] = _mm512_dpbusd_epi32(c[t], w, bc32(a[t] + qo + 4 * j));
            }
            const __m512i sc = _mm512_loadu_si512((const void *)(P + X5_K_SC + 64 * s));
            UNROLL for (int t = 0; t < NT; t++) is[t] = _mm512_add_epi32(is[t], _mm512_mullo_epi32(c[t], sc));
        }
        UNROLL for (int t = 0; t < NT; t++) c[t] = _mm512_setzero_si512();
        UNROLL for (int j = 0; j < 8; j++) {
            const __m512i m = _mm512_loadu_si512((const void *)(P + X5_K_M16 + 64 * j));
            UNROLL for (int t = 0; t < NT; t++) c[t] = _mm512_dpwssd_epi32(c[t], m, bc32(a[t] + ao + 260 + 4 * j));
        }
        const __m512 dv = _mm512_loadu_ps((const float *)(const void *)(P + X5_K_D));
        UNROLL for (int t = 0; t < NT; t++) {
            const __m512 da = _mm512_set1_ps(x86_rdf32(a[t] + ao));
            const __m512 d = _mm512_mul_ps(dv, da);
            __m512 v;
            if (has_min) {
                const __m512 dm = _mm512_mul_ps(_mm512_loadu_ps((const float *)(const void *)(P + X5_K_DMIN)), da);
                v = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(is[t])),
                                  _mm512_mul_ps(dm, _mm512_cvtepi32_ps(c[t])));
            } else {
                v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(is[t], c[t])));
            }
            f[t] = _mm512_add_ps(f[t], v);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(out + t * os, k, f[t]);
}

typedef void (*mk_k_fn)(const uint8_t *P, int64_t nsb, const uint8_t *const *a, float *out, size_t os, int first,
                        __mmask16 k);

#define MK_K(N, S, M)                                                                                        \
    static void mk_k_##N##_##S##_##M(const uint8_t *P, int64_t nsb, const uint8_t *const *a, float *out,      \
                                     size_t os, int first, __mmask16 k) {                                     \
        mk_k(N, S, M, P, nsb, a, out, os, first, k);                                                          \
    }
#define MK_K_ALL(S, M)                                                                                       \
    MK_K(1, S, M) MK_K(2, S, M) MK_K(3, S, M) MK_K(4, S, M) MK_K(5, S, M) MK_K(6, S, M) MK_K(7, S, M) MK_K(8, S, M)
MK_K_ALL(16, 0) MK_K_ALL(16, 1) MK_K_ALL(32, 1)

#define MK_K_ROW(S, M)                                                                                         \
    {mk_k_1_##S##_##M, mk_k_2_##S##_##M, mk_k_3_##S##_##M, mk_k_4_##S##_##M, mk_k_5_##S##_##M, mk_k_6_##S##_##M, \
     mk_k_7_##S##_##M, mk_k_8_##S##_##M}
/* [0]: Q3_K, Q6_K; [1]: Q2_K; [2]: Q4_K, Q5_K */
static const mk_k_fn MK_K_FNS[3][X5_T] = {MK_K_ROW(16, 0), MK_K_ROW(16, 1), MK_K_ROW(32, 1)};

static void gemm_k(const int packed, uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                   const uint8_t *act, size_t as, int64_t n_tok, float *out, size_t os) {
    _Static_assert(X86_UP64(K_KC * X5_K_BLOCK) + 16 * K_KC * 210 <= KERNELS_SCRATCH_BYTES, "scratch too small");
    uint8_t *const panel = kernels_scratch();                            /* [K_KC * X5_K_BLOCK] */
    uint8_t *const rows16 = panel + X86_UP64(K_KC * X5_K_BLOCK);        /* packed: one panel's rows */
    const int64_t nsb = n_cols / X86_QKK;
    const int kind = x86_k_sub(type) == 32 ? 2 : x86_k_has_min(type) ? 1 : 0;
    for (int64_t tok0 = 0; tok0 < n_tok; tok0 += K_TC) {
        const int64_t ntc = n_tok - tok0 < K_TC ? n_tok - tok0 : K_TC;
        for (int64_t kb0 = 0; kb0 < nsb; kb0 += K_KC) {
            const int64_t nkb = nsb - kb0 < K_KC ? nsb - kb0 : K_KC;
            for (int64_t r0 = 0; r0 < n_rows; r0 += X5_R) {
                const int nr = n_rows - r0 < X5_R ? (int)(n_rows - r0) : X5_R;
                panel_at(type, packed, W, rb, nsb, r0, nr, n_rows, kb0, nkb, rows16, panel);
                for (int64_t t0 = 0; t0 < ntc; t0 += X5_T) {
                    const int nt = ntc - t0 < X5_T ? (int)(ntc - t0) : X5_T;
                    const uint8_t *a[X5_T];
                    for (int t = 0; t < X5_T; t++)
                        a[t] = act + (size_t)(tok0 + t0 + (t < nt ? t : 0)) * as + (size_t)kb0 * 292;
                    MK_K_FNS[kind][nt - 1](panel, nkb, a, out + (size_t)(tok0 + t0) * os + r0, os, kb0 == 0,
                                           row_mask(nr));
                }
            }
        }
    }
}

void x5_matmul_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    if (n_tok == 1) {
        const kernels_prefetch pf = kernels_sw_prefetch();
        if (X5_BY_PREFETCH(pf, x5_gemv_quant, type, W, row_bytes, n_rows, n_cols, act, out)) return;
    }
    if (x86_family_of(type) == X86_FAM_LEGACY) {
        gemm_legacy(0, type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
    } else {
        gemm_k(0, type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
    }
}

void x5_gemm_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const void *act,
                    size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (ng <= 0 || n_tok <= 0) return;
    const size_t gbytes = x86_sl_group_bytes(type, n_cols);
    if (x86_family_of(type) == X86_FAM_LEGACY) {
        gemm_legacy(1, type, P + (size_t)g0 * gbytes, 0, 16 * ng, n_cols, act, act_stride, n_tok, out, out_stride);
    } else {
        gemm_k(1, type, P + (size_t)g0 * gbytes, 0, 16 * ng, n_cols, act, act_stride, n_tok, out, out_stride);
    }
}
