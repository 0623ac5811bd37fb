/*
 * avx512_gemv.c - one activation row against quantized weights (token
 * generation), straight from the file's layout: the weights are streamed
 * once, so these kernels decode each block in registers instead of packing
 * a panel.
 *
 * Same tile as the batched kernels: 16 rows in the 16 lanes of a zmm. The
 * same-offset bytes of 16 rows are transposed into 4-byte slices (as
 * avx512_pack.c does), the per-row scales come in with one gather, and the
 * arithmetic per lane is the micro-kernel's, operation for operation, so a
 * token's logits are the same whether it is decoded alone or in a batch,
 * and bit-identical to kernels/ref.
 *
 * A row here is short (a TinyLlama row of Q4_0 is 18 cache lines), too
 * short for the hardware prefetcher to lock on to 16 interleaved streams,
 * so each block prefetches its share of the next group of 16 rows (which
 * are contiguous), in address order: a group's worth of lead time
 * (measured +30-40% tokens/s on one thread).
 */
#include "avx512_internal.h"

#define UNROLL X5_UNROLL

#define INLINE X5_INLINE
#define GEMV_NB 512 /* activation blocks prepared per chunk */

/* One block of 16 rows into f: from the file's rows (packed 0; rows[]
 * clamped, vidx their offsets from rows[0], off the block's offset in a
 * row) or from the group-block G (packed 1). a: the activation block's
 * quants, m its metadata. */
INLINE __m512 leg_block(const int packed, const uint32_t type, const uint8_t *const rows[16], __m512i vidx,
                        size_t off, const uint8_t *G, const uint8_t *a, const x86_leg_act *m, __m512 f) {
    const int has_min = x86_legacy_has_min(type), q4 = type == INFER_TYPE_Q4_0 || type == INFER_TYPE_Q4_1;
    const size_t lead = x86_sl_lead(type);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 dv, mv = _mm512_setzero_ps();
    if (!packed || has_min) { /* d (| m) at the block's start: a gather, or slice 0 */
        const __m512i hd = packed ? _mm512_loadu_si512((const void *)G)
                                  : _mm512_i32gather_epi32(vidx, (const void *)(rows[0] + off), 1);
        dv = x5_f16_lo(hd);
        if (has_min) mv = x5_f16_hi(hd);
    } else {
        dv = x5_packed_d(G, x86_sl_d_at(type));
    }
    __m512i c = has_min ? _mm512_setzero_si512() : _mm512_set1_epi32(m->x.corr);
    __m512i t[8];
    if (type == INFER_TYPE_Q8_0) {
        x5_ld16(packed, rows, off, G, lead, 2, t);
        x5_ld16(packed, rows, off, G, lead, 18, t + 4);
        if (!packed) /* repacked Q8_0 is stored as q ^ 0x80 */
            UNROLL for (int j = 0; j < 8; j++) t[j] = _mm512_xor_si512(t[j], _mm512_set1_epi8((char)0x80));
    } else {
        const size_t qs = type == INFER_TYPE_Q4_0 ? 2 : type == INFER_TYPE_Q4_1 ? 4 : type == INFER_TYPE_Q5_0 ? 6 : 8;
        x5_ld16(packed, rows, off, G, lead, qs, t);
        UNROLL for (int j = 0; j < 4; j++) {
            /* Q4_0/Q4_1: high nibbles in place, 16x their value (one operation, not two) */
            t[4 + j] = q4 ? _mm512_and_si512(t[j], _mm512_set1_epi8((char)0xf0)) : _mm512_and_si512(_mm512_srli_epi16(t[j], 4), m4);
            t[j] = _mm512_and_si512(t[j], m4);
        }
        if (type == INFER_TYPE_Q5_0 || type == INFER_TYPE_Q5_1) {
            const size_t qh = type == INFER_TYPE_Q5_0 ? 2 : 4;
            const __m512i h = packed ? _mm512_loadu_si512((const void *)(G + 16 * (qh - lead)))
                                     : _mm512_i32gather_epi32(vidx, (const void *)(rows[0] + off + qh), 1);
            UNROLL for (int s = 0; s < 8; s++) {
                const __m512i nib = _mm512_and_si512(_mm512_srli_epi32(h, (unsigned)(4 * s)), _mm512_set1_epi32(15));
                t[s] = _mm512_or_si512(t[s], x5_spread4(nib));
            }
        }
    }
    __m512i c1 = _mm512_setzero_si512(); /* two chains: half the dependent latency */
    if (q4) { /* low nibbles into c, 16 x high ones into c1 (exact: its sum divides by 16) */
        UNROLL for (int j = 0; j < 4; j++) {
            c = _mm512_dpbusd_epi32(c, t[j], x5_bc32(a + 4 * j));
            c1 = _mm512_dpbusd_epi32(c1, t[4 + j], x5_bc32(a + 16 + 4 * j));
        }
        c1 = _mm512_srai_epi32(c1, 4);
    } else {
        UNROLL for (int j = 0; j < 8; j += 2) {
            c = _mm512_dpbusd_epi32(c, t[j], x5_bc32(a + 4 * j));
            c1 = _mm512_dpbusd_epi32(c1, t[j + 1], x5_bc32(a + 4 * j + 4));
        }
    }
    c = _mm512_add_epi32(c, c1);
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(c), _mm512_mul_ps(dv, _mm512_set1_ps(m->da)));
    if (has_min) v = _mm512_add_ps(v, _mm512_mul_ps(mv, _mm512_set1_ps(m->x.sa)));
    return _mm512_add_ps(f, v);
}

/* One group of 16 rows (rows[] clamped), blocks [b0, b0 + nb), into f. */
INLINE __m512 gemv_legacy_rows(const uint32_t type, const uint8_t *const rows[16], __m512i vidx, int64_t b0,
                               int64_t nb, const uint8_t *a, const x86_leg_act *m, __m512 f, size_t rb) {
    const size_t bb = x86_block_bytes(type), ab = x86_legacy_has_min(type) ? 36 : 34;
    const size_t qa = x86_legacy_has_min(type) ? 4 : 2;
    for (int64_t b = 0; b < nb; b++) {
        const size_t off = (size_t)(b0 + b) * bb;
        { /* the next 16-row group (contiguous): its share for this block, in address order */
            const uint8_t *nx = rows[0] + 16 * rb + (size_t)(b0 + b) * 16 * bb;
            for (size_t l = 0; l < 16 * bb; l += 64) X5_PF(nx + l);
        }
        f = leg_block(0, type, rows, vidx, off, NULL, a + (size_t)b * ab + qa, &m[b], f);
    }
    return f;
}

INLINE void gemv_legacy(const uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                        const uint8_t *act, float *out) {
    x86_leg_act meta[GEMV_NB];
    const int64_t nb = n_cols / X86_QK;
    const size_t ab = x86_legacy_has_min(type) ? 36 : 34;
    if (nb <= GEMV_NB) x86_prep_leg_act(type, act, nb, 1, meta);
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
        for (int64_t b0 = 0; b0 < nb; b0 += GEMV_NB) {
            const int64_t n = nb - b0 < GEMV_NB ? nb - b0 : GEMV_NB;
            if (nb > GEMV_NB) x86_prep_leg_act(type, act + (size_t)b0 * ab, n, 1, meta);
            f = gemv_legacy_rows(type, rows, vidx, b0, n, act + (size_t)b0 * ab, meta, f, rb);
        }
        _mm512_mask_storeu_ps(out + r0, (__mmask16)((1u << nr) - 1u), f);
    }
}

/* Repacked: PG groups at a time, each its own sequential stream (a few
 * streams per thread read faster than one), blocks in the outer loop;
 * with the near prefetch style only the groups a run's quarter streams
 * leave (below).
 * A run's last one or two groups take a one- or two-stream instance
 * (leg_steps), three the four-stream one with the first repeated
 * (x5_groups_begin, x5_streams_for; the repeat's sums are never stored),
 * all with their prefetches. Every group's sum runs over the blocks in order, as
 * above: the same result bit for bit. Partial sums cross activation
 * chunks through out. */
#define PG 4
/* Blocks [0, n) of ng groups' streams into f[0 .. ng). */
INLINE void leg_steps(const int ng, const uint32_t type, const uint8_t *const *G, int64_t n, size_t gb, size_t rem,
                      size_t jump, const uint8_t *a0, size_t ab, size_t qa, const x86_leg_act *meta, __m512 *f) {
    for (int64_t b = 0; b < n; b++) {
        UNROLL for (int k = 0; k < ng; k++) x5_prefetch_stream(G[k], (size_t)b * gb, gb, X5_PF_DIST, rem, jump);
        UNROLL for (int k = 0; k < ng; k++)
            f[k] = leg_block(1, type, NULL, _mm512_setzero_si512(), 0, G[k] + (size_t)b * gb, a0 + (size_t)b * ab + qa,
                             &meta[b], f[k]);
    }
}

/* Near prefetch (Intel's): a run of four or more whole groups is read
 * as four streams that are each a quarter of the run (q consecutive
 * groups: one stretch of memory) instead of as sets of four neighbouring
 * groups, and stream k runs LEG_LAG blocks behind stream k - 1 (each
 * group's first steps leave the later streams out, its last steps the
 * earlier ones). Without the lag, four quarters of a TinyLlama-shaped run
 * (4 groups, 72 KB, a multiple of 4 KB) would read the same offset of
 * four pages at once. Each group's sum still runs over its blocks in
 * order: the same bits. Measured on the Intel Xeon (family 6 model 167),
 * TinyLlama Q4_0's matmuls from memory, 2 threads taking 16-group runs as
 * the pool does, alternating token by token in one process: quarters
 * alone +1-2% over the sets, with the lag +3-5%, and the steps where every
 * stream has a block run without the test +1.5% more; a lag of 2, 3 or 6
 * blocks no better than 1; 2 or 8 streams no better than 4. In the engine,
 * alternating builds: Q4_0 tokens +6.7-7.2%. Q8_0 goes to the AVX2 kernel
 * here (avx512_repack.c), still faster than this one with quarters. The
 * far and no-prefetch builds (AMD's) keep the sets: not measured there. */
#if !defined(X5_NO_PREFETCH) && !defined(X5_PREFETCH_L2)
#define LEG_QUARTERS 1
#else
#define LEG_QUARTERS 0
#endif
#define LEG_LAG 1

/* Step j of one group of each of four quarter streams G[0..3] (nb
 * blocks each): block j - k * LEG_LAG of stream k, where that is a block
 * (all: it is for every stream, no test). */
INLINE void leg_quarter_step(const int all, const uint32_t type, const uint8_t *const G[4], int64_t j, int64_t nb,
                             size_t gb, const uint8_t *act, size_t ab, size_t qa, const x86_leg_act *meta,
                             __m512 f[4]) {
    UNROLL for (int k = 0; k < 4; k++) {
        const int64_t b = j - k * LEG_LAG;
        if (!all && (b < 0 || b >= nb)) continue;
        /* a quarter is contiguous: past a group its stream goes on into the next */
        x5_prefetch_stream(G[k], (size_t)b * gb, gb, X5_PF_DIST, SIZE_MAX, 0);
        f[k] = leg_block(1, type, NULL, _mm512_setzero_si512(), 0, G[k] + (size_t)b * gb, act + (size_t)b * ab + qa,
                         &meta[b], f[k]);
    }
}

/* One group of each of four quarter streams: the steps where some stream
 * has no block (the first and last 3 * LEG_LAG) tested, the rest not. */
INLINE void leg_quarter_groups(const uint32_t type, const uint8_t *const G[4], int64_t nb, size_t gb,
                               const uint8_t *act, size_t ab, size_t qa, const x86_leg_act *meta, __m512 f[4]) {
    const int64_t edge = 3 * LEG_LAG, end = nb + edge;
    int64_t j = 0;
    for (; j < edge; j++) leg_quarter_step(0, type, G, j, nb, gb, act, ab, qa, meta, f);
    for (; j < nb; j++) leg_quarter_step(1, type, G, j, nb, gb, act, ab, qa, meta, f);
    for (; j < end; j++) leg_quarter_step(0, type, G, j, nb, gb, act, ab, qa, meta, f);
}

/* Groups [g0, g0 + 4q) of a run of ng (q = ng / 4, when ng >= 4 and the
 * rows fit one activation chunk, else none) as four quarter streams into
 * out (group g0's outputs first), meta prepared from act; gb, ab, qa as
 * gemv_legacy_packed's. Returns 4q. */
INLINE int64_t leg_quarters(const uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t nb, size_t gb,
                            const uint8_t *act, size_t ab, size_t qa, x86_leg_act *meta, float *out) {
    if (nb > GEMV_NB || ng < 4) return 0;
    const int64_t q = ng / 4;
    x86_prep_leg_act(type, act, nb, 1, meta);
    for (int64_t i = 0; i < q; i++) {
        const uint8_t *G[4];
        __m512 f[4];
        x5_quarters_begin(P, g0, q, i, nb, gb, G, f);
        leg_quarter_groups(type, G, nb, gb, act, ab, qa, meta, f);
        x5_quarters_end(out, q, i, f);
    }
    return 4 * q;
}

INLINE void gemv_legacy_packed(const uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols,
                               const uint8_t *act, float *out) {
    x86_leg_act meta[GEMV_NB];
    const int64_t nb = n_cols / X86_QK;
    const size_t bb = x86_block_bytes(type), gb = 16 * bb, ab = x86_legacy_has_min(type) ? 36 : 34;
    const size_t qa = x86_legacy_has_min(type) ? 4 : 2;
    /* the groups the quarters leave to the sets; where the quarters ran, the
     * rows are one activation chunk and meta holds it already */
    const int64_t gs = g0 + (LEG_QUARTERS ? leg_quarters(type, P, g0, ng, nb, gb, act, ab, qa, meta, out) : 0);
    for (int64_t b0 = 0; b0 < nb && gs < g0 + ng; b0 += GEMV_NB) {
        const int64_t n = nb - b0 < GEMV_NB ? nb - b0 : GEMV_NB;
        const uint8_t *a0 = act + (size_t)b0 * ab;
        if (gs == g0) x86_prep_leg_act(type, a0, n, 1, meta);
        for (int64_t g = gs; g < g0 + ng; g += PG) {
            const uint8_t *G[PG];
            __m512 f[PG];
            const int npg = x5_groups_begin(P, g, g0 + ng, PG, nb, b0, gb, out + 16 * (g - g0), G, f);
            const size_t rem = (size_t)(nb - b0) * gb, jump = (size_t)(PG - 1) * (size_t)nb * gb;
            const int sn = x5_streams_for(npg);
#define LEG_RUN(ns) leg_steps(ns, type, G, n, gb, rem, jump, a0, ab, qa, meta, f)
            X5_BY_STREAMS(sn, LEG_RUN);
#undef LEG_RUN
            for (int k = 0; k < npg; k++) _mm512_storeu_ps(out + 16 * (g + k - g0), f[k]);
        }
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

int x5_gemv_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                  const void *act, float *out) {
    /* The scale gathers address rows by 32-bit offsets. */
    if (row_bytes > (size_t)INT32_MAX / 16) return 0;
    switch (type) {
    case INFER_TYPE_Q4_0: gemv_q4_0(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q4_1: gemv_q4_1(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_0: gemv_q5_0(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_1: gemv_q5_1(W, row_bytes, n_rows, n_cols, act, out); return 1;
    case INFER_TYPE_Q8_0: gemv_q8_0(W, row_bytes, n_rows, n_cols, act, out); return 1;
    default: return x5_gemv_k(type, W, row_bytes, n_rows, n_cols, act, out);
    }
}

int x5_gemv_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const uint8_t *act,
                   float *out) {
    switch (type) {
    case INFER_TYPE_Q4_0: gemv_legacy_packed(INFER_TYPE_Q4_0, P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q4_1: gemv_legacy_packed(INFER_TYPE_Q4_1, P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_0: gemv_legacy_packed(INFER_TYPE_Q5_0, P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q5_1: gemv_legacy_packed(INFER_TYPE_Q5_1, P, g0, ng, n_cols, act, out); return 1;
    case INFER_TYPE_Q8_0: gemv_legacy_packed(INFER_TYPE_Q8_0, P, g0, ng, n_cols, act, out); return 1;
    default: return x5_gemv_k_packed(type, P, g0, ng, n_cols, act, out);
    }
}
