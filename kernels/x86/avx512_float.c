/*
 * avx512_float.c - F32, F16 and BF16 weights (activations F32, F16, BF16:
 * the reference pairing) with FMA in float lanes.
 *
 * Batches: panels of 32 weight rows transposed to [k][32] floats (F16 and
 * BF16 converted on the way), 12 tokens per micro-kernel: per k, two weight
 * vectors times each token's value broadcast, 24 accumulators. Each output
 * is a float sum over k in increasing order, carried across K chunks
 * through the output, identical for any split of the rows.
 *
 * One token (generation): 4 rows at a time stream their weights once, 16
 * lanes of partial sums per row, then a fixed-order horizontal sum; the
 * rows are prefetched ahead (x86_float_ahead).
 *
 * The reference sums in double; float sums in another order differ by a
 * few units in the last place of the sum of |products| (the tests' bound).
 */
#include "avx512_internal.h"

#define UNROLL X5_UNROLL
#define INLINE X5_INLINE

#define F_R 32  /* rows per panel */
#define F_T 12  /* tokens per micro-kernel */
#define F_TC 96  /* tokens per chunk */
#define F_KC 256 /* values per K chunk: longer pieces of each row per pass (fewer TLB misses) */

/* n (<= 16) values of a float type at p as 16 floats (the rest 0). */
INLINE __m512 load_as_f32(uint32_t type, const uint8_t *p, int n) {
    const __mmask16 k = (__mmask16)((1u << n) - 1u);
    switch (type) {
    case INFER_TYPE_F32: return _mm512_maskz_loadu_ps(k, (const float *)(const void *)p);
    case INFER_TYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, (const void *)p));
    default: /* BF16: the top half of a float */
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, (const void *)p)), 16));
    }
}

INLINE __m512 load16_as_f32(uint32_t type, const uint8_t *p) {
    switch (type) {
    case INFER_TYPE_F32: return _mm512_loadu_ps((const float *)(const void *)p);
    case INFER_TYPE_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
    default:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p)), 16));
    }
}

/* In-place transpose of 16 rows of 16 floats. */
static void tr16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i + j] lane L: rows 4i..4i+3 of column 4L + j */
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; j++) {
        const __m512 x0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44), x1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xee);
        const __m512 y0 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
        const __m512 y1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xee);
        t[j] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        t[8 + j] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* Rows [0, nr) of W (missing rows repeat the last), values [k0, k0 + nk),
 * to P[kk][32] floats. */
static void pack_float(uint32_t type, const uint8_t *W, size_t rb, int nr, int64_t k0, int nk, float *P) {
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    for (int half = 0; half < 2; half++) {
        for (int c0 = 0; c0 < nk; c0 += 16) {
            const int nc = nk - c0 < 16 ? nk - c0 : 16;
            __m512 r[16];
            for (int i = 0; i < 16; i++) {
                int row = 16 * half + i;
                row = row < nr ? row : nr - 1;
                r[i] = load_as_f32(type, W + (size_t)row * rb + (size_t)(k0 + c0) * es, nc);
            }
            tr16x16(r);
            for (int c = 0; c < nc; c++) _mm512_storeu_ps(P + (size_t)(c0 + c) * F_R + 16 * half, r[c]);
        }
    }
}

/* The same panel from W stored by column (value (r, k) at W + k * kb +
 * r * es): rows [0, nr) of values [k0, k0 + nk) are already in the panel's
 * order, so a copy (converted), no transpose; missing rows are 0. */
static void pack_float_kn(uint32_t type, const uint8_t *W, size_t kb, int nr, int64_t k0, int nk, float *P) {
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    const int n0 = nr < 16 ? nr : 16, n1 = nr - 16;
    for (int kk = 0; kk < nk; kk++) {
        const uint8_t *src = W + (size_t)(k0 + kk) * kb;
        _mm512_storeu_ps(P + (size_t)kk * F_R, load_as_f32(type, src, n0));
        _mm512_storeu_ps(P + (size_t)kk * F_R + 16, n1 > 0 ? load_as_f32(type, src + 16 * es, n1) : _mm512_setzero_ps());
    }
}

INLINE void mk_float(const int NT, const float *P, int nk, const float *const *a, float *out, size_t os, int first,
                     __mmask16 k0, __mmask16 k1) {
    __m512 f0[F_T], f1[F_T];
    UNROLL for (int t = 0; t < NT; t++) {
        f0[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(k0, out + t * os);
        f1[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(k1, out + t * os + 16);
    }
    for (int kk = 0; kk < nk; kk++, P += F_R) {
        const __m512 w0 = _mm512_loadu_ps(P), w1 = _mm512_loadu_ps(P + 16);
        UNROLL for (int t = 0; t < NT; t++) {
            const __m512 x = _mm512_set1_ps(a[t][kk]);
            f0[t] = _mm512_fmadd_ps(w0, x, f0[t]);
            f1[t] = _mm512_fmadd_ps(w1, x, f1[t]);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) {
        _mm512_mask_storeu_ps(out + t * os, k0, f0[t]);
        _mm512_mask_storeu_ps(out + t * os + 16, k1, f1[t]);
    }
}

typedef void (*mk_float_fn)(const float *P, int nk, const float *const *a, float *out, size_t os, int first,
                            __mmask16 k0, __mmask16 k1);
#define MK_F(N)                                                                                            \
    static void mk_float_##N(const float *P, int nk, const float *const *a, float *out, size_t os, int first, \
                             __mmask16 k0, __mmask16 k1) {                                                   \
        mk_float(N, P, nk, a, out, os, first, k0, k1);                                                       \
    }
MK_F(1) MK_F(2) MK_F(3) MK_F(4) MK_F(5) MK_F(6) MK_F(7) MK_F(8) MK_F(9) MK_F(10) MK_F(11) MK_F(12)
static const mk_float_fn MK_FLOAT_FNS[F_T] = {mk_float_1, mk_float_2, mk_float_3,  mk_float_4,
                                              mk_float_5, mk_float_6, mk_float_7,  mk_float_8,
                                              mk_float_9, mk_float_10, mk_float_11, mk_float_12};

/* kn: W stored by column, rb bytes between its columns' starts (pack_float_kn). */
static void gemm_float(uint32_t type, int kn, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                       const uint8_t *act, size_t as, int64_t n_tok, float *out, size_t os) {
    _Static_assert(sizeof(float) * (F_KC * F_R + F_TC * F_KC) <= KERNELS_SCRATCH_BYTES, "scratch too small");
    float *const panel = kernels_scratch();      /* [F_KC * F_R] */
    float *const xa = panel + F_KC * F_R;        /* [F_TC * F_KC]: F16/BF16 activations as floats */
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    for (int64_t tok0 = 0; tok0 < n_tok; tok0 += F_TC) {
        const int64_t ntc = n_tok - tok0 < F_TC ? n_tok - tok0 : F_TC;
        for (int64_t k0 = 0; k0 < n_cols; k0 += F_KC) {
            const int nk = n_cols - k0 < F_KC ? (int)(n_cols - k0) : F_KC;
            if (type != INFER_TYPE_F32) {
                for (int64_t t = 0; t < ntc; t++) {
                    const uint8_t *src = act + (size_t)(tok0 + t) * as + (size_t)k0 * es;
                    for (int c = 0; c < nk; c += 16) {
                        const int nc = nk - c < 16 ? nk - c : 16;
                        _mm512_storeu_ps(xa + t * F_KC + c, load_as_f32(type, src + (size_t)c * es, nc));
                    }
                }
            }
            for (int64_t r0 = 0; r0 < n_rows; r0 += F_R) {
                const int nr = n_rows - r0 < F_R ? (int)(n_rows - r0) : F_R;
                const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
                const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffffu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
                if (kn) {
                    pack_float_kn(type, W + (size_t)r0 * es, rb, nr, k0, nk, panel);
                    const int64_t nxt = n_rows - r0 - F_R < F_R ? n_rows - r0 - F_R : F_R; /* the next panel's rows */
                    if (nxt > 0) x86_prefetch_rows(W, rb, k0, nk, n_cols, (size_t)(r0 + F_R) * es, (size_t)nxt * es);
                } else {
                    pack_float(type, W + (size_t)r0 * rb, rb, nr, k0, nk, panel);
                    x86_prefetch_rows(W, rb, r0 + F_R, F_R, n_rows, (size_t)k0 * es, (size_t)nk * es);
                }
                for (int64_t t0 = 0; t0 < ntc; t0 += F_T) {
                    const int nt = ntc - t0 < F_T ? (int)(ntc - t0) : F_T;
                    const float *a[F_T];
                    for (int t = 0; t < F_T; t++) {
                        const int64_t tt = t0 + (t < nt ? t : 0);
                        a[t] = type == INFER_TYPE_F32
                                   ? (const float *)(const void *)(act + (size_t)(tok0 + tt) * as) + k0
                                   : xa + tt * F_KC;
                    }
                    MK_FLOAT_FNS[nt - 1](panel, nk, a, out + (size_t)(tok0 + t0) * os + r0, os, k0 == 0, m0, m1);
                }
            }
        }
    }
}

/* One token: out[r] = sum_k W[r][k] x[k], 4 rows per pass. */
static void gemv_float(uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols,
                       const uint8_t *x, float *out) {
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    const int64_t nfull = n_cols / 16 * 16;
    const int tail = (int)(n_cols - nfull);
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const uint8_t *w0 = W + (size_t)r * rb, *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const int next = r + 8 <= n_rows;
        for (int64_t k = 0; k < nfull; k += 16) {
            const size_t o = (size_t)k * es;
            if ((o & 63) == 0) {
                const uint8_t *ahead = x86_float_ahead(w0, rb, (size_t)nfull * es, next, o);
                if (ahead) x86_prefetch_4rows(ahead, rb);
            }
            const __m512 xv = load16_as_f32(type, x + o);
            s0 = _mm512_fmadd_ps(load16_as_f32(type, w0 + o), xv, s0);
            s1 = _mm512_fmadd_ps(load16_as_f32(type, w1 + o), xv, s1);
            s2 = _mm512_fmadd_ps(load16_as_f32(type, w2 + o), xv, s2);
            s3 = _mm512_fmadd_ps(load16_as_f32(type, w3 + o), xv, s3);
        }
        if (tail) {
            const size_t o = (size_t)nfull * es;
            const __m512 xv = load_as_f32(type, x + o, tail);
            s0 = _mm512_fmadd_ps(load_as_f32(type, w0 + o, tail), xv, s0);
            s1 = _mm512_fmadd_ps(load_as_f32(type, w1 + o, tail), xv, s1);
            s2 = _mm512_fmadd_ps(load_as_f32(type, w2 + o, tail), xv, s2);
            s3 = _mm512_fmadd_ps(load_as_f32(type, w3 + o, tail), xv, s3);
        }
        out[r] = x5_hsum(s0);
        out[r + 1] = x5_hsum(s1);
        out[r + 2] = x5_hsum(s2);
        out[r + 3] = x5_hsum(s3);
    }
    for (; r < n_rows; r++) { /* the same per-row arithmetic as above */
        const uint8_t *w0 = W + (size_t)r * rb;
        __m512 s0 = _mm512_setzero_ps();
        for (int64_t k = 0; k < nfull; k += 16) {
            const size_t o = (size_t)k * es;
            s0 = _mm512_fmadd_ps(load16_as_f32(type, w0 + o), load16_as_f32(type, x + o), s0);
        }
        if (tail) {
            const size_t o = (size_t)nfull * es;
            s0 = _mm512_fmadd_ps(load_as_f32(type, w0 + o, tail), load_as_f32(type, x + o, tail), s0);
        }
        out[r] = x5_hsum(s0);
    }
}

void x5_matmul_float(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    if (n_tok == 1) {
        gemv_float(type, W, row_bytes, n_rows, n_cols, act, out);
        return;
    }
    gemm_float(type, 0, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

/* A float type's W stored by column. Any token count goes through the
 * panels: the same sums as the batch path of x5_matmul_float. */
void x5_matmul_float_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                        const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    gemm_float(type, 1, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}
