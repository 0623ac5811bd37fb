/*
 * avx512_ops.c - the AVX-512 kernel table: activation quantizers, elementwise
 * ops, exp_sum and softmax, and dequantization here; the matmuls in
 * avx512_gemm.c (quantized, batches), avx512_gemv.c (quantized, one token)
 * and avx512_float.c (F32/F16/BF16).
 *
 * Numerics against kernels/ref:
 *   quantize_act  bit-identical (same scale formulas, roundf / round-to-even
 *                 reproduced exactly, NaN -> 0, the same clamps);
 *   matmul        quantized: bit-identical (exact integer block dots, the
 *                 same float operations in the same order); float types:
 *                 float FMA sums instead of double sums;
 *   rms_norm      the sum of squares in double in another order, the rest
 *                 element for element the same;
 *   add           bit-identical;
 *   silu_mul      a polynomial exp (within 2 ulp of expf);
 *   exp_sum       the same polynomial exp, sums in double in another order;
 *   dequantize    F32/F16/BF16/Q4_0/Q8_0 in SIMD, bit-identical; the other
 *                 types call the reference (get_rows dequantizes one row per
 *                 token, far below the cost of any matmul: SIMD gains
 *                 nothing there).
 */
#include "avx512_internal.h"

#include <math.h>

#include "dispatch.h"
#include "ref/quants.h"

/* ---- activation quantizers --------------------------------------------------------- */

/* roundf (half away from zero) of v, |v| <= 200, no NaN: truncate, then
 * step away from zero when the (exact) remainder is at least one half. */
static inline __m512 round_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return _mm512_mask_add_ps(t, up, t, one);
}

/* NaN -> 0, then clamped to +-200 (enough: results clamp to int8 later). */
static inline __m512 sanitize(__m512 v) {
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-200.0f)), _mm512_set1_ps(200.0f));
}

static inline __m512i to_i8_range(__m512 r) {
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
    return _mm512_cvttps_epi32(r);
}

/* max |x| over n (multiple of 16) floats, NaN ignored (as fmaxf). */
static inline float absmax(const float *x, int n) {
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), m);
    return _mm512_reduce_max_ps(m);
}

/* A Q8_0/Q8_1 block's quants q = roundf(x * id) (id = 1/d, or 0); returns
 * them summed in pairs of lanes (16 partial sums). */
static inline __m512i q8_quants(const float *x, float id, int8_t *q) {
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i i0 = to_i8_range(round_away(sanitize(_mm512_mul_ps(_mm512_loadu_ps(x), vid))));
    const __m512i i1 = to_i8_range(round_away(sanitize(_mm512_mul_ps(_mm512_loadu_ps(x + 16), vid))));
    _mm_storeu_si128((__m128i *)(void *)q, _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128((__m128i *)(void *)(q + 16), _mm512_cvtepi32_epi8(i1));
    return _mm512_add_epi32(i0, i1);
}

/* 16 floats to F16, or to bfloat16 (round to nearest even on the bits,
 * NaN forced quiet). */
static inline __m256i f16x16(__m512 v) { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

static inline __m256i bf16x16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __mmask16 nan =
        _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                             _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)))),
        16);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

/* One Q8_0/Q8_1 block: d = amax / 127, q = roundf(x / d); returns sum(q). */
static int q8_block(const float *x, int8_t *q, float *d_out) {
    const float d = absmax(x, 32) / 127;
    *d_out = d;
    return _mm512_reduce_add_epi32(q8_quants(x, d != 0.0f ? 1.0f / d : 0.0f, q));
}

/* Largest of each of 16 vectors' lanes, as lane i of the result: a tree
 * of lane swaps and maxima (max is exact, so any order gives the same).
 * The tree leaves vector b's maximum in lane L[b] (L = 0 2 1 3, 8 10 9 11,
 * 4 6 5 7, 12 14 13 15: its own inverse), so one permute puts it in b. */
static inline __m512 hmax16(__m512 v[16]) {
    for (int w = 8; w >= 1; w /= 2) /* pair vector i with i + w: low halves / high halves interleaved */
        for (int i = 0; i < w; i++) {
            __m512 a, b;
            if (w == 8) {
                a = _mm512_shuffle_f32x4(v[i], v[i + w], _MM_SHUFFLE(1, 0, 1, 0));
                b = _mm512_shuffle_f32x4(v[i], v[i + w], _MM_SHUFFLE(3, 2, 3, 2));
            } else if (w == 4) {
                a = _mm512_shuffle_f32x4(v[i], v[i + w], _MM_SHUFFLE(2, 0, 2, 0));
                b = _mm512_shuffle_f32x4(v[i], v[i + w], _MM_SHUFFLE(3, 1, 3, 1));
            } else if (w == 2) {
                a = _mm512_shuffle_ps(v[i], v[i + w], _MM_SHUFFLE(1, 0, 1, 0));
                b = _mm512_shuffle_ps(v[i], v[i + w], _MM_SHUFFLE(3, 2, 3, 2));
            } else {
                a = _mm512_shuffle_ps(v[i], v[i + w], _MM_SHUFFLE(2, 0, 2, 0));
                b = _mm512_shuffle_ps(v[i], v[i + w], _MM_SHUFFLE(3, 1, 3, 1));
            }
            v[i] = _mm512_max_ps(a, b);
        }
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15), v[0]);
}

static void quant_q8_0(const float *x, uint8_t *y, int64_t n) {
    int64_t i = 0;
    /* 16 blocks at a time: their scales as one vector (the same divisions
     * as q8_block, lane by lane), then each block's quants */
    for (; i + 16 <= n / X86_QK; i += 16, x += 16 * X86_QK, y += 16 * 34) {
        __m512 m[16];
        for (int b = 0; b < 16; b++)
            m[b] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 32 * b + 16)), /* NaN ignored, as absmax */
                                 _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 32 * b)), _mm512_setzero_ps()));
        const __m512 d = _mm512_div_ps(hmax16(m), _mm512_set1_ps(127.0f));
        const __m512 id = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ), _mm512_set1_ps(1.0f), d);
        _Alignas(64) float ids[16];
        _Alignas(32) uint16_t dh[16];
        _mm512_store_ps(ids, id);
        _mm256_store_si256((__m256i *)(void *)dh, f16x16(d));
        for (int b = 0; b < 16; b++) {
            memcpy(y + 34 * b, &dh[b], 2);
            (void)q8_quants(x + 32 * b, ids[b], (int8_t *)(y + 34 * b + 2));
        }
    }
    for (; i < n / X86_QK; i++, x += X86_QK, y += 34) {
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
        const uint16_t h = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const uint16_t s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
        memcpy(y, &h, 2);
        memcpy(y + 2, &s, 2);
    }
}

/* Q8_K: the first value of largest magnitude maps to -127 (scale -127/max),
 * the rest round half to even; 16-value group sums. */
static void quant_q8_k(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n / X86_QKK; i++, x += X86_QKK, y += 292) {
        const float amax = absmax(x, X86_QKK);
        if (amax == 0.0f) {
            memset(y, 0, 292);
            continue;
        }
        int first = 0;
        for (int v = 0; v < 16; v++) {
            const __mmask16 eq =
                _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (eq) {
                first = 16 * v + __builtin_ctz(eq);
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        const __m512 vs = _mm512_set1_ps(iscale);
        for (int v = 0; v < 16; v++) {
            const __m512 r = _mm512_roundscale_ps(sanitize(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * v))),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm_storeu_si128((__m128i *)(void *)(y + 4 + 16 * v), _mm512_cvtepi32_epi8(to_i8_range(r)));
        }
        /* group sums from the stored bytes: biased to unsigned (q + 128),
         * summed 8 at a time (vpsadbw: 64-bit lane L of a 64-byte chunk
         * holds bytes 8L..8L+7, i.e. 32-bit lane 2L), lanes 2i and 2i + 1
         * added for group i of the chunk, the bias taken off */
        const __m512i ia = _mm512_set_epi32(12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0);
        const __m512i ib = _mm512_add_epi32(ia, _mm512_set1_epi32(2));
        __m512i s = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            const __m512i b = _mm512_xor_si512(_mm512_loadu_si512((const void *)(y + 4 + 64 * c)), _mm512_set1_epi8((char)0x80));
            const __m512i sad = _mm512_sad_epu8(b, _mm512_setzero_si512());
            s = _mm512_mask_add_epi32(s, (__mmask16)(0xfu << (4 * c)), _mm512_permutexvar_epi32(ia, sad),
                                      _mm512_permutexvar_epi32(ib, sad));
        }
        s = _mm512_sub_epi32(s, _mm512_set1_epi32(16 * 128));
        _mm256_storeu_si256((__m256i *)(void *)(y + 260), _mm512_cvtepi32_epi16(s));
        const float d = 1.0f / iscale;
        memcpy(y, &d, 4);
    }
}

static void quant_f16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const int c = n - i < 16 ? (int)(n - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u);
        _mm256_mask_storeu_epi16((void *)(y + 2 * i), k, f16x16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

static void quant_bf16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const int c = n - i < 16 ? (int)(n - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u);
        _mm256_mask_storeu_epi16((void *)(y + 2 * i), k, bf16x16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

static void x5_quantize_act(uint32_t act_type, const float *x, void *y, int64_t n) {
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

static void x5_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *x = src;
    switch (type) {
    case INFER_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case INFER_TYPE_F16:
    case INFER_TYPE_BF16:
        for (int64_t i = 0; i < n; i += 16) {
            const int c = n - i < 16 ? (int)(n - i) : 16;
            const __mmask16 k = (__mmask16)((1u << c) - 1u);
            const __m256i h = _mm256_maskz_loadu_epi16(k, (const void *)(x + 2 * i));
            const __m512 f = type == INFER_TYPE_F16
                                 ? _mm512_cvtph_ps(h)
                                 : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            _mm512_mask_storeu_ps(dst + i, k, f);
        }
        return;
    case INFER_TYPE_Q8_0:
        for (int64_t b = 0; b < n / X86_QK; b++, x += 34, dst += X86_QK) {
            const __m512 d = _mm512_set1_ps(x86_f16(x));
            for (int h = 0; h < 2; h++) {
                const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(x + 2 + 16 * h)));
                _mm512_storeu_ps(dst + 16 * h, _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
            }
        }
        return;
    case INFER_TYPE_Q4_0:
        for (int64_t b = 0; b < n / X86_QK; b++, x += 18, dst += X86_QK) {
            const __m512 d = _mm512_set1_ps(x86_f16(x));
            const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(x + 2)));
            const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(q, _mm512_set1_epi32(15)), _mm512_set1_epi32(8));
            const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(q, 4), _mm512_set1_epi32(8));
            _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
            _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
        }
        return;
    default: infer_ref_dequantize(type, src, dst, n); return;
    }
}

/* ---- elementwise ------------------------------------------------------------------- */

/* e^x: x = n ln2 + r, |r| <= ln2/2, e^r by Cephes' expf polynomial, times
 * 2^n by scalef (which overflows to inf as expf does). Below X86_EXP_MIN,
 * 0 (x86_common.h): no result is ever a denormal. NaN stays NaN (max/min
 * return their second operand on NaN, and NaN is not below). */
static inline __m512 exp_ps(__m512 x) {
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(X86_EXP_MIN), _CMP_NLT_UQ);
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(X86_EXP_MIN), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, p, n);
}

static void x5_silu_mul(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const int c = n - i < 16 ? (int)(n - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u);
        const __m512 g = _mm512_maskz_loadu_ps(k, gate + i), u = _mm512_maskz_loadu_ps(k, up + i);
        const __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_mask_storeu_ps(gate + i, k, _mm512_mul_ps(s, u));
    }
}

static void x5_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const int c = n - i < 16 ? (int)(n - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u);
        _mm512_mask_storeu_ps(x + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i)));
    }
}

static void x5_rms_norm(const float *x, const float *w, float *y, int64_t n, float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        s0 = _mm512_fmadd_pd(lo, lo, s0); /* exact products: fma = mul + add */
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; i++) sum += (double)x[i] * (double)x[i];
    const float mean = (float)(sum / (double)n);
    const __m512 scale = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
    for (i = 0; i < n; i += 16) {
        const int c = n - i < 16 ? (int)(n - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u);
        const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), scale), _mm512_maskz_loadu_ps(k, w + i));
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}

/* y = e^(x - max), summed in double (lane sums, then a fixed-order total). */
static double x5_exp_sum(float *y, const float *x, int64_t n, float max) {
    const __m512 vm = _mm512_set1_ps(max);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const int c = n - i < 16 ? (int)(n - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u);
        const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm)));
        _mm512_mask_storeu_ps(y + i, k, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

/* kernels_softmax_generic through this table's entries, in three passes
 * instead of five and 16 lanes instead of 4: x scaled and its max (a max
 * does not depend on order; masked lanes and NaNs keep the running max,
 * as the generic compare does), x5_exp_sum itself, then each numerator
 * times 1/sum straight into the cache type. The same products and
 * roundings, so the same bits. */
extern const kernel_table kernels_avx512;
static double x5_softmax(float *x, int64_t n_valid, int64_t n, float scale, uint32_t act_type, void *p, float *max) {
    if (act_type != INFER_TYPE_F32 && act_type != INFER_TYPE_F16 && act_type != INFER_TYPE_BF16)
        return kernels_softmax_generic(&kernels_avx512, x, n_valid, n, scale, act_type, p, max);
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n_valid; i += 16) {
        const int c = n_valid - i < 16 ? (int)(n_valid - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs);
        _mm512_mask_storeu_ps(x + i, k, v);
        m = _mm512_mask_max_ps(m, k & ~_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v, m);
    }
    const float mx = _mm512_reduce_max_ps(m);
    const double sum = x5_exp_sum(x, x, n_valid, mx);
    const __m512 vi = _mm512_set1_ps(sum > 0.0 ? (float)(1.0 / sum) : 0.0f);
    uint8_t *y = p;
    for (int64_t i = 0; i < n; i += 16) {
        const int c = n - i < 16 ? (int)(n - i) : 16;
        const int cv = n_valid - i <= 0 ? 0 : n_valid - i < 16 ? (int)(n_valid - i) : 16;
        const __mmask16 k = (__mmask16)((1u << c) - 1u), kv = (__mmask16)((1u << cv) - 1u);
        const __m512 w = _mm512_maskz_mul_ps(kv, _mm512_maskz_loadu_ps(kv, x + i), vi);
        if (act_type == INFER_TYPE_F32) _mm512_mask_storeu_ps((float *)(void *)y + i, k, w);
        else _mm256_mask_storeu_epi16((void *)(y + 2 * i), k, act_type == INFER_TYPE_F16 ? f16x16(w) : bf16x16(w));
    }
    *max = mx;
    return sum;
}

/* ---- matmul dispatch and the table --------------------------------------------------- */

static void x5_matmul_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                         const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (x86_family_of(type) == X86_FAM_FLOAT)
        x5_matmul_float_kn(type, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
    else
        infer_ref_matmul_kn(type, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

static void x5_matmul(uint32_t weight_type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                      const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    switch (x86_family_of(weight_type)) {
    case X86_FAM_FLOAT:
        x5_matmul_float(weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
        return;
    case X86_FAM_LEGACY:
    case X86_FAM_K:
        x5_matmul_quant(weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
        return;
    default: /* not a weight type: the reference's NaN rows */
        infer_ref_matmul(weight_type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
        return;
    }
}

const kernel_table kernels_avx512 = {
    .isa = INFER_ISA_AVX512,
    .name = "avx512",
    .vec_dot_type = infer_ref_vec_dot_type,
    .quantize_act = x5_quantize_act,
    .matmul = x5_matmul,
    .matmul_kn = x5_matmul_kn,
    .packed_rows = X86_PACK_ROWS,
    .packed_size = x86_sl_size,
    .pack = x2_pack_weights,
    .matmul_packed = x5_matmul_packed,
    .dequantize = x5_dequantize,
    .silu_mul = x5_silu_mul,
    .add = x5_add,
    .rms_norm = x5_rms_norm,
    .exp_sum = x5_exp_sum,
    .softmax = x5_softmax,
};
