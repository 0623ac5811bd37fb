/*
 * avx2_float.c - F32, F16 and BF16 weights with FMA on 8-float lanes: the
 * AVX-512 level's avx512_float.c at half the width. Batches: panels of 16
 * rows transposed to [k][16] floats, 6 tokens per micro-kernel (12
 * accumulators); one token: 4 rows per pass, 8 lanes of partial sums per
 * row and a fixed-order horizontal sum.
 */
#include "avx2_internal.h"

#define UNROLL X2_UNROLL
#define INLINE X2_INLINE

#define F_R 16   /* rows per panel */
#define F_T 6    /* tokens per micro-kernel */
#define F_TC 48  /* tokens per chunk */
#define F_KC 256 /* values per K chunk: longer pieces of each row per pass (fewer TLB misses) */

/* n (<= 8) values of a float type at p as 8 floats, the rest 0. */
INLINE __m256 load_as_f32(uint32_t type, const uint8_t *p, int n) {
    if (type == INFER_TYPE_F32) {
        if (n == 8) return _mm256_loadu_ps((const float *)(const void *)p);
        return _mm256_maskload_ps((const float *)(const void *)p, x2_mask(n));
    }
    __m128i h;
    if (n == 8) {
        h = _mm_loadu_si128((const __m128i *)(const void *)p);
    } else {
        uint16_t t[8] = {0};
        memcpy(t, p, (size_t)n * 2);
        h = _mm_loadu_si128((const __m128i *)(const void *)t);
    }
    if (type == INFER_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* In-place transpose of 8 rows of 8 floats. */
static void tr8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) { /* u[4i + j] lane L: rows 4i..4i+3 of column 4L + j */
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

static void pack_float(uint32_t type, const uint8_t *W, size_t rb, int nr, int64_t k0, int nk, float *P) {
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    for (int g = 0; g < 2; g++) {
        for (int c0 = 0; c0 < nk; c0 += 8) {
            const int nc = nk - c0 < 8 ? nk - c0 : 8;
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                int row = 8 * g + i;
                row = row < nr ? row : nr - 1;
                r[i] = load_as_f32(type, W + (size_t)row * rb + (size_t)(k0 + c0) * es, nc);
            }
            tr8x8(r);
            for (int c = 0; c < nc; c++) _mm256_storeu_ps(P + (size_t)(c0 + c) * F_R + 8 * g, r[c]);
        }
    }
}

/* The same panel from W stored by column (value (r, k) at W + k * kb +
 * r * es): already in the panel's order, a copy (converted); missing rows 0. */
static void pack_float_kn(uint32_t type, const uint8_t *W, size_t kb, int nr, int64_t k0, int nk, float *P) {
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    const int n0 = nr < 8 ? nr : 8, n1 = nr - 8;
    for (int kk = 0; kk < nk; kk++) {
        const uint8_t *src = W + (size_t)(k0 + kk) * kb;
        _mm256_storeu_ps(P + (size_t)kk * F_R, load_as_f32(type, src, n0));
        _mm256_storeu_ps(P + (size_t)kk * F_R + 8, n1 > 0 ? load_as_f32(type, src + 8 * es, n1) : _mm256_setzero_ps());
    }
}

INLINE void mk_float(const int NT, const float *P, int nk, const float *const *a, float *out, size_t os, int first,
                     int n0, int n1) {
    __m256 f0[F_T], f1[F_T];
    UNROLL for (int t = 0; t < NT; t++) {
        f0[t] = first ? _mm256_setzero_ps() : x2_load_n(out + t * os, n0);
        f1[t] = first || n1 <= 0 ? _mm256_setzero_ps() : x2_load_n(out + t * os + 8, n1);
    }
    for (int kk = 0; kk < nk; kk++, P += F_R) {
        const __m256 w0 = _mm256_loadu_ps(P), w1 = _mm256_loadu_ps(P + 8);
        UNROLL for (int t = 0; t < NT; t++) {
            const __m256 x = _mm256_broadcast_ss(a[t] + kk);
            f0[t] = _mm256_fmadd_ps(w0, x, f0[t]);
            f1[t] = _mm256_fmadd_ps(w1, x, f1[t]);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) {
        x2_store_n(out + t * os, n0, f0[t]);
        x2_store_n(out + t * os + 8, n1, f1[t]);
    }
}

typedef void (*mk_float_fn)(const float *P, int nk, const float *const *a, float *out, size_t os, int first, int n0,
                            int n1);
#define MK_F(N)                                                                                                 \
    static void mk_float_##N(const float *P, int nk, const float *const *a, float *out, size_t os, int first, int n0, \
                             int n1) {                                                                           \
        mk_float(N, P, nk, a, out, os, first, n0, n1);                                                           \
    }
MK_F(1) MK_F(2) MK_F(3) MK_F(4) MK_F(5) MK_F(6)
static const mk_float_fn MK_FLOAT_FNS[F_T] = {mk_float_1, mk_float_2, mk_float_3, mk_float_4, mk_float_5, mk_float_6};

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
                    for (int c = 0; c < nk; c += 8) {
                        const __m256 v = load_as_f32(type, src + (size_t)c * es, nk - c < 8 ? nk - c : 8);
                        _mm256_storeu_ps(xa + t * F_KC + c, v);
                    }
                }
            }
            for (int64_t r0 = 0; r0 < n_rows; r0 += F_R) {
                const int nr = n_rows - r0 < F_R ? (int)(n_rows - r0) : F_R;
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
                        a[t] = type == INFER_TYPE_F32 ? (const float *)(const void *)(act + (size_t)(tok0 + tt) * as) + k0
                                                      : xa + tt * F_KC;
                    }
                    MK_FLOAT_FNS[nt - 1](panel, nk, a, out + (size_t)(tok0 + t0) * os + r0, os, k0 == 0,
                                         nr < 8 ? nr : 8, nr - 8);
                }
            }
        }
    }
}

INLINE __m256 load8(uint32_t type, const uint8_t *p) { return load_as_f32(type, p, 8); }

static void gemv_float(uint32_t type, const uint8_t *W, size_t rb, int64_t n_rows, int64_t n_cols, const uint8_t *x,
                       float *out) {
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    const int64_t nfull = n_cols / 8 * 8;
    const int tail = (int)(n_cols - nfull);
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const uint8_t *w0 = W + (size_t)r * rb, *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const int next = r + 8 <= n_rows;
        for (int64_t k = 0; k < nfull; k += 8) {
            const size_t o = (size_t)k * es;
            if ((o & 63) == 0) {
                const uint8_t *ahead = x86_float_ahead(w0, rb, (size_t)nfull * es, next, o);
                if (ahead) x86_prefetch_4rows(ahead, rb);
            }
            const __m256 xv = load8(type, x + o);
            s0 = _mm256_fmadd_ps(load8(type, w0 + o), xv, s0);
            s1 = _mm256_fmadd_ps(load8(type, w1 + o), xv, s1);
            s2 = _mm256_fmadd_ps(load8(type, w2 + o), xv, s2);
            s3 = _mm256_fmadd_ps(load8(type, w3 + o), xv, s3);
        }
        if (tail) {
            const size_t o = (size_t)nfull * es;
            const __m256 xv = load_as_f32(type, x + o, tail);
            s0 = _mm256_fmadd_ps(load_as_f32(type, w0 + o, tail), xv, s0);
            s1 = _mm256_fmadd_ps(load_as_f32(type, w1 + o, tail), xv, s1);
            s2 = _mm256_fmadd_ps(load_as_f32(type, w2 + o, tail), xv, s2);
            s3 = _mm256_fmadd_ps(load_as_f32(type, w3 + o, tail), xv, s3);
        }
        out[r] = x2_hsum(s0);
        out[r + 1] = x2_hsum(s1);
        out[r + 2] = x2_hsum(s2);
        out[r + 3] = x2_hsum(s3);
    }
    for (; r < n_rows; r++) {
        const uint8_t *w0 = W + (size_t)r * rb;
        __m256 s0 = _mm256_setzero_ps();
        for (int64_t k = 0; k < nfull; k += 8) s0 = _mm256_fmadd_ps(load8(type, w0 + (size_t)k * es), load8(type, x + (size_t)k * es), s0);
        if (tail) {
            const size_t o = (size_t)nfull * es;
            s0 = _mm256_fmadd_ps(load_as_f32(type, w0 + o, tail), load_as_f32(type, x + o, tail), s0);
        }
        out[r] = x2_hsum(s0);
    }
}

void x2_matmul_float(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    if (n_tok == 1) {
        gemv_float(type, W, row_bytes, n_rows, n_cols, act, out);
        return;
    }
    gemm_float(type, 0, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

/* A float type's W stored by column. Any token count goes through the
 * panels: the same sums as the batch path of x2_matmul_float. */
void x2_matmul_float_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                        const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    gemm_float(type, 1, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}
