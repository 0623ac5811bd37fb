/*
 * avx2_ops.c - the AVX2 kernel table (AVX2 + FMA + F16C): activation
 * quantizers, elementwise ops, exp_sum, dequantization; the matmuls are in
 * avx2_gemm.c (quantized) and avx2_float.c (F32/F16/BF16).
 *
 * Numerics against kernels/ref, as the AVX-512 level (avx512_ops.c):
 * quantizers, quantized matmuls and add bit-identical; rms_norm sums in
 * double in another order; silu_mul and exp_sum use the same polynomial
 * exp as the AVX-512 level (2^n applied in two exact halves, which rounds
 * as scalef does), so the two levels agree bit for bit there; float
 * matmuls sum in float in another order. dequantize is SIMD for
 * F32/F16/BF16/Q8_0/Q4_0 and the reference for the other types (get_rows
 * converts one row per token: nothing to gain).
 */
#include "avx2_internal.h"

#include <math.h>

#include "dispatch.h"
#include "ref/quants.h"

/* ---- activation quantizers --------------------------------------------------------- */

/* NaN -> 0, clamped to +-200. */
static inline __m256 sanitize(__m256 v) {
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-200.0f)), _mm256_set1_ps(200.0f));
}

/* roundf: truncate, then one step away from zero if the remainder >= 1/2. */
static inline __m256 round_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 fr = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(fr, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

static inline __m256i to_i8_range(__m256 r) {
    return _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f)));
}

/* 32 int32 in [-128, 127] to 32 bytes, in order. */
static inline void store_i8x32(int8_t *q, __m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i v = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(void *)q, v);
}

static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* max |x| over n (a multiple of 8) floats, NaN ignored as fmaxf does. */
static inline float absmax(const float *x, int n) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_loadu_ps(x + i)), m);
    return hmax(m);
}

static int q8_block(const float *x, int8_t *q, float *d_out) {
    const float d = absmax(x, 32) / 127;
    const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    __m256i v[4];
    for (int k = 0; k < 4; k++) v[k] = to_i8_range(round_away(sanitize(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id))));
    store_i8x32(q, v[0], v[1], v[2], v[3]);
    *d_out = d;
    return hsum_i32(_mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3])));
}

static void quant_q8_0(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / X86_QK; i++, x += X86_QK, y += 34) {
        float d;
        q8_block(x, (int8_t *)(y + 2), &d);
        const uint16_t h = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        memcpy(y, &h, 2);
    }
}

static void quant_q8_1(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / X86_QK; i++, x += X86_QK, y += 36) {
        float d;
        const int sum = q8_block(x, (int8_t *)(y + 4), &d);
        const uint16_t h = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT), s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
        memcpy(y, &h, 2);
        memcpy(y + 2, &s, 2);
    }
}

static void quant_q8_k(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / X86_QKK; i++, x += X86_QKK, y += 292) {
        const float amax = absmax(x, X86_QKK);
        if (amax == 0.0f) {
            memset(y, 0, 292);
            continue;
        }
        int first = 0;
        while (fabsf(x[first]) != amax) first++; /* the first of largest magnitude */
        const __m256 vs = _mm256_set1_ps(-127.0f / x[first]);
        int16_t bsums[16];
        for (int g = 0; g < 8; g++) { /* 32 values per step */
            __m256i v[4];
            for (int k = 0; k < 4; k++) {
                const __m256 r = _mm256_round_ps(sanitize(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * g + 8 * k))),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v[k] = to_i8_range(r);
            }
            store_i8x32((int8_t *)(y + 4 + 32 * g), v[0], v[1], v[2], v[3]);
            bsums[2 * g] = (int16_t)hsum_i32(_mm256_add_epi32(v[0], v[1]));
            bsums[2 * g + 1] = (int16_t)hsum_i32(_mm256_add_epi32(v[2], v[3]));
        }
        memcpy(y + 260, bsums, 32);
        const float d = 1.0f / (-127.0f / x[first]);
        memcpy(y, &d, 4);
    }
}

/* The first c (1..8) of 8 16-bit values to y: one store for all 8. */
static inline void store16_n(uint8_t *y, int c, __m128i h) {
    if (c >= 8) {
        _mm_storeu_si128((__m128i *)(void *)y, h);
        return;
    }
    uint16_t t[8];
    _mm_storeu_si128((__m128i *)(void *)t, h);
    memcpy(y, t, (size_t)c * 2);
}

/* 8 floats to F16 bits, rounded to nearest even. */
static inline __m128i f16x8(__m256 f) { return _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

static void quant_f16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        const int c = n - i < 8 ? (int)(n - i) : 8;
        store16_n(y + 2 * i, c, f16x8(x2_load_n(x + i, c)));
    }
}

/* 8 floats to BF16 bits: rounded to nearest even, NaNs kept NaN (quieted). */
static inline __m128i bf16x8(__m256 f) {
    const __m256i u = _mm256_castps_si256(f);
    const __m256i au = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    /* unsigned au > 0x7f800000: both below 2^31, so a signed compare works */
    const __m256i nan = _mm256_cmpgt_epi32(au, _mm256_set1_epi32(0x7f800000));
    const __m256i rnd = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, rnd), 16);
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    const __m256i v = _mm256_blendv_epi8(r, q, nan);
    return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

static void quant_bf16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        const int c = n - i < 8 ? (int)(n - i) : 8;
        store16_n(y + 2 * i, c, bf16x8(x2_load_n(x + i, c)));
    }
}

static void x2_quantize_act(uint32_t act_type, const float *x, void *y, int64_t n) {
    switch (act_type) {
    case INFER_TYPE_F32: memcpy(y, x, (size_t)n * sizeof(float)); break;
    case INFER_TYPE_F16: quant_f16(x, y, n); break;
    case INFER_TYPE_BF16: quant_bf16(x, y, n); break;
    case INFER_TYPE_Q8_0: quant_q8_0(x, y, n); break;
    case INFER_TYPE_Q8_1: quant_q8_1(x, y, n); break;
    case INFER_TYPE_Q8_K: quant_q8_k(x, y, n); break;
    default: infer_ref_quantize(act_type, x, y, n); break;
    }
}

/* ---- dequantization -------------------------------------------------------------- */

static void x2_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *x = src;
    switch (type) {
    case INFER_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case INFER_TYPE_F16:
    case INFER_TYPE_BF16: {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(x + 2 * i));
            _mm256_storeu_ps(dst + i, type == INFER_TYPE_F16 ? _mm256_cvtph_ps(h)
                                                              : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
        }
        if (i < n) infer_ref_dequantize(type, x + 2 * i, dst + i, n - i);
        return;
    }
    case INFER_TYPE_Q8_0:
        for (int64_t b = 0; b < n / X86_QK; b++, x += 34, dst += X86_QK) {
            const __m256 d = _mm256_set1_ps(x86_f16(x));
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(x + 2 + 8 * k)));
                _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
            }
        }
        return;
    case INFER_TYPE_Q4_0:
        for (int64_t b = 0; b < n / X86_QK; b++, x += 18, dst += X86_QK) {
            const __m256 d = _mm256_set1_ps(x86_f16(x));
            for (int k = 0; k < 2; k++) {
                const __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(x + 2 + 8 * k)));
                const __m256i lo = _mm256_sub_epi32(_mm256_and_si256(q, _mm256_set1_epi32(15)), _mm256_set1_epi32(8));
                const __m256i hi = _mm256_sub_epi32(_mm256_srli_epi32(q, 4), _mm256_set1_epi32(8));
                _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), d));
                _mm256_storeu_ps(dst + 16 + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), d));
            }
        }
        return;
    default: infer_ref_dequantize(type, src, dst, n); return;
    }
}

/* ---- elementwise ------------------------------------------------------------------- */

/* e^x as avx512_ops.c's exp_ps (0 below X86_EXP_MIN): 2^n applied as
 * 2^(n>>1) * 2^(n - (n>>1)), each a normal float, so the one rounding is
 * the final multiply's. */
static inline __m256 exp_ps(__m256 x) {
    const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(X86_EXP_MIN), _CMP_NLT_UQ);
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(X86_EXP_MIN), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n); /* NaN x gives NaN p: the powers do not matter */
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return _mm256_and_ps(live, _mm256_mul_ps(_mm256_mul_ps(p, s1), s2));
}

static void x2_silu_mul(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        const int c = n - i < 8 ? (int)(n - i) : 8;
        const __m256 g = x2_load_n(gate + i, c), u = x2_load_n(up + i, c);
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g))));
        x2_store_n(gate + i, c, _mm256_mul_ps(s, u));
    }
}

static void x2_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        const int c = n - i < 8 ? (int)(n - i) : 8;
        x2_store_n(x + i, c, _mm256_add_ps(x2_load_n(x + i, c), x2_load_n(y + i, c)));
    }
}

static void x2_rms_norm(const float *x, const float *w, float *y, int64_t n, float eps) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s0 = _mm256_fmadd_pd(lo, lo, s0);
        s1 = _mm256_fmadd_pd(hi, hi, s1);
    }
    const __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) sum += (double)x[i] * (double)x[i];
    const float mean = (float)(sum / (double)n);
    const __m256 scale = _mm256_set1_ps(1.0f / sqrtf(mean + eps));
    for (i = 0; i < n; i += 8) {
        const int c = n - i < 8 ? (int)(n - i) : 8;
        x2_store_n(y + i, c, _mm256_mul_ps(_mm256_mul_ps(x2_load_n(x + i, c), scale), x2_load_n(w + i, c)));
    }
}

static double x2_exp_sum(float *y, const float *x, int64_t n, float max) {
    const __m256 vm = _mm256_set1_ps(max);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        const int c = n - i < 8 ? (int)(n - i) : 8;
        const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(x2_mask(c)), exp_ps(_mm256_sub_ps(x2_load_n(x + i, c), vm)));
        x2_store_n(y + i, c, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    const __m256d s = _mm256_add_pd(s0, s1);
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/* kernels_softmax_generic through this table's entries in three passes
 * instead of five, 8 lanes instead of 4: x scaled and its max (a max does
 * not depend on order; lanes past n_valid and NaNs keep the running max,
 * as the generic compare does: vmaxps returns its second operand when
 * either is NaN), x2_exp_sum itself, then each numerator times 1/sum
 * straight into the cache type (F16 and BF16 rounded as quantize_act
 * rounds them). The same products and roundings, so the same bits. */
extern const kernel_table kernels_avx2;
static double x2_softmax(float *x, int64_t n_valid, int64_t n, float scale, uint32_t act_type, void *p, float *max) {
    if (act_type != INFER_TYPE_F32 && act_type != INFER_TYPE_F16 && act_type != INFER_TYPE_BF16)
        return kernels_softmax_generic(&kernels_avx2, x, n_valid, n, scale, act_type, p, max);
    const __m256 vs = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    for (int64_t i = 0; i < n_valid; i += 8) {
        const int c = n_valid - i < 8 ? (int)(n_valid - i) : 8;
        const __m256 v = _mm256_mul_ps(x2_load_n(x + i, c), vs);
        x2_store_n(x + i, c, v);
        m = _mm256_max_ps(c == 8 ? v : _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(x2_mask(c))), m);
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float mx = _mm_cvtss_f32(h);
    const double sum = x2_exp_sum(x, x, n_valid, mx);
    const __m256 vi = _mm256_set1_ps(sum > 0.0 ? (float)(1.0 / sum) : 0.0f);
    uint8_t *y = p;
    for (int64_t i = 0; i < n; i += 8) {
        const int c = n - i < 8 ? (int)(n - i) : 8;
        const int cv = n_valid - i <= 0 ? 0 : n_valid - i < 8 ? (int)(n_valid - i) : 8;
        const __m256 w = _mm256_mul_ps(x2_load_n(x + i, cv), vi); /* lanes past n_valid: 0 */
        if (act_type == INFER_TYPE_F32) x2_store_n((float *)(void *)y + i, c, w);
        else store16_n(y + 2 * i, c, act_type == INFER_TYPE_F16 ? f16x8(w) : bf16x8(w));
    }
    *max = mx;
    return sum;
}

/* ---- matmul dispatch and the table --------------------------------------------------- */

static void x2_matmul_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                         const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (x86_family_of(type) == X86_FAM_FLOAT)
        x2_matmul_float_kn(type, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
    else
        infer_ref_matmul_kn(type, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

typedef void (*x2_matmul_fn)(uint32_t, const void *, size_t, int64_t, int64_t, const void *, size_t, int64_t, float *,
                             size_t);

/* The matmul entry with `quant` for the quantized types. */
static inline void matmul_with(x2_matmul_fn quant, uint32_t weight_type, const void *W, size_t row_bytes,
                               int64_t n_rows, int64_t n_cols, const void *act, size_t act_stride, int64_t n_tok,
                               float *out, size_t out_stride) {
    switch (x86_family_of(weight_type)) {
    case X86_FAM_FLOAT:
        x2_matmul_float(weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
        return;
    case X86_FAM_LEGACY:
    case X86_FAM_K:
        quant(weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
        return;
    default:
        infer_ref_matmul(weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
        return;
    }
}

static void x2_matmul(uint32_t weight_type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                      const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    matmul_with(x2_matmul_quant, weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

static void x2v_matmul(uint32_t weight_type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                       const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    matmul_with(x2v_matmul_quant, weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

/* The AVX2 table, with the given quantized matmuls. */
#define X2_TABLE(ISA, NAME, MATMUL, MATMUL_PACKED)                                                                     \
    {                                                                                                                   \
        .isa = ISA, .name = NAME, .vec_dot_type = infer_ref_vec_dot_type, .quantize_act = x2_quantize_act,             \
        .matmul = MATMUL, .matmul_kn = x2_matmul_kn, .packed_rows = X86_PACK_ROWS, .packed_size = x2_packed_size,      \
        .pack = x2_pack_weights, .matmul_packed = MATMUL_PACKED, .dequantize = x2_dequantize,                          \
        .silu_mul = x2_silu_mul, .add = x2_add, .rms_norm = x2_rms_norm, .exp_sum = x2_exp_sum,                        \
        .softmax = x2_softmax,                                                                                          \
    }

const kernel_table kernels_avx2 = X2_TABLE(INFER_ISA_AVX2, "avx2", x2_matmul, x2_matmul_packed);

/* AVX2 with AVX-VNNI: the same table but for the batch matmuls
 * (avxvnni_gemm.c), whose results are the same bits. */
const kernel_table kernels_avxvnni = X2_TABLE(INFER_ISA_AVXVNNI, "avxvnni", x2v_matmul, x2v_matmul_packed);
