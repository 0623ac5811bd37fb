/*
 * neon.c - kernels_neon, the aarch64 table (NEON + dotprod + fp16
 * conversions): the matmul driver that walks tiles, the per-type dispatch
 * to neon_float.c, neon_legacy.c and neon_kquants.c, and the elementwise
 * kernels (rms_norm, silu_mul, add).
 *
 * Anything this table does not implement (a type no file claims) falls
 * through to kernels/ref, which marks misuse with NaN as it always does.
 */
#include "neon_internal.h"

#include <math.h>

/* ---- matmul ---------------------------------------------------------------- */

/* Stores lane r of v to o[r] for r < nr. */
static void store_lanes(float *o, int nr, float32x4_t v) {
    if (nr == TILE_R) {
        vst1q_f32(o, v);
        return;
    }
    float tmp[TILE_R];
    vst1q_f32(tmp, v);
    for (int r = 0; r < nr; r++) o[r] = tmp[r];
}

void neon_matmul_tiles(const neon_tile_fn tiles[TILE_T], const void *W, size_t row_bytes, int64_t n_rows,
                       int64_t n_cols, const void *act, size_t act_stride, int64_t n_tok, float *out,
                       size_t out_stride) {
    const uint8_t *w = (const uint8_t *)W, *a = (const uint8_t *)act;
    for (int64_t r0 = 0; r0 < n_rows; r0 += TILE_R) {
        const int nr = n_rows - r0 < TILE_R ? (int)(n_rows - r0) : TILE_R;
        const uint8_t *wr[TILE_R];
        for (int r = 0; r < TILE_R; r++) wr[r] = w + (size_t)(r0 + (r < nr ? r : nr - 1)) * row_bytes;
        for (int64_t t0 = 0; t0 < n_tok; t0 += TILE_T) {
            const int nt = n_tok - t0 < TILE_T ? (int)(n_tok - t0) : TILE_T;
            const uint8_t *at[TILE_T];
            for (int t = 0; t < TILE_T; t++) at[t] = a + (size_t)(t0 + (t < nt ? t : nt - 1)) * act_stride;
            float32x4_t res[TILE_T];
            tiles[nt - 1](wr, at, n_cols, res);
            for (int t = 0; t < nt; t++) store_lanes(out + (size_t)(t0 + t) * out_stride + r0, nr, res[t]);
        }
    }
}

static void neon_matmul(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                        const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    if (neon_matmul_legacy(type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride)) return;
    if (neon_matmul_k(type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride)) return;
    if (neon_matmul_float(type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride)) return;
    infer_ref_matmul(type, W, row_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

static void neon_matmul_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                           const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    if (neon_matmul_float_kn(type, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride)) return;
    infer_ref_matmul_kn(type, W, k_bytes, n_rows, n_cols, act, act_stride, n_tok, out, out_stride);
}

static void neon_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *s = (const uint8_t *)src;
    if (neon_dequant_legacy(type, s, dst, n) || neon_dequant_k(type, s, dst, n) ||
        neon_dequant_float(type, s, dst, n))
        return;
    infer_ref_dequantize(type, src, dst, n);
}

static void neon_quantize_act(uint32_t act_type, const float *x, void *y, int64_t n) {
    if (!neon_quantize(act_type, x, (uint8_t *)y, n)) infer_ref_quantize(act_type, x, y, n);
}

/* ---- elementwise ------------------------------------------------------------- */

static void neon_add(float *x, const float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vst1q_f32(x + i, vaddq_f32(vld1q_f32(x + i), vld1q_f32(y + i)));
        vst1q_f32(x + i + 4, vaddq_f32(vld1q_f32(x + i + 4), vld1q_f32(y + i + 4)));
    }
    for (; i < n; i++) x[i] += y[i];
}

/* Sum of squares in double, as the reference: each square of a float is
 * exact in double, so only the order of the additions differs. */
static void neon_rms_norm(const float *x, const float *w, float *y, int64_t n, float eps) {
    float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
        const float64x2_t a0 = vcvt_f64_f32(vget_low_f32(a)), a1 = vcvt_high_f64_f32(a);
        const float64x2_t b0 = vcvt_f64_f32(vget_low_f32(b)), b1 = vcvt_high_f64_f32(b);
        s0 = vfmaq_f64(s0, a0, a0);
        s1 = vfmaq_f64(s1, a1, a1);
        s2 = vfmaq_f64(s2, b0, b0);
        s3 = vfmaq_f64(s3, b1, b1);
    }
    double sum = vaddvq_f64(vaddq_f64(vaddq_f64(s0, s1), vaddq_f64(s2, s3)));
    for (; i < n; i++) sum += (double)x[i] * (double)x[i];
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), scale), vld1q_f32(w + i)));
    for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

/* e^x in four lanes, within a few ulp of expf over the whole float range:
 * x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to degree 7
 * (truncation below 6e-9), times 2^n applied in two halves so that results
 * that overflow become inf and those that underflow go through the
 * subnormals to 0. NaN stays NaN. */
static inline float32x4_t exp_f32x4(float32x4_t x) {
    const float32x4_t xc = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-110.0f)), vdupq_n_f32(90.0f)); /* NaN stays */
    const float32x4_t nf = vrndnq_f32(vmulq_n_f32(xc, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(xc, nf, vdupq_n_f32(0.693359375f)); /* ln2 high part: n*hi is exact */
    r = vfmsq_f32(r, nf, vdupq_n_f32(-2.12194440e-4f));             /* ln2 - hi */
    float32x4_t p = vdupq_n_f32(1.0f / 5040);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t n = vcvtq_s32_f32(nf); /* NaN -> 0 */
    const int32x4_t n1 = vshrq_n_s32(n, 1), n2 = vsubq_s32(n, n1); /* each in [-80, 65] */
    const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, vdupq_n_s32(127)), 23));
    const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, vdupq_n_s32(127)), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* gate = gate / (1 + e^-gate) * up: the reference's formula, with a true
 * division; only e^x differs from expf (a few ulp). */
static void neon_silu_mul(float *gate, const float *up, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t e = exp_f32x4(vnegq_f32(g));
        vst1q_f32(gate + i, vmulq_f32(vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(up + i)));
    }
    if (i < n) { /* the last 1..3 values through the same vector code */
        float g[4] = {0}, u[4] = {0};
        memcpy(g, gate + i, (n - i) * sizeof(float));
        memcpy(u, up + i, (n - i) * sizeof(float));
        const float32x4_t gv = vld1q_f32(g);
        const float32x4_t e = exp_f32x4(vnegq_f32(gv));
        vst1q_f32(g, vmulq_f32(vdivq_f32(gv, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(u)));
        memcpy(gate + i, g, (n - i) * sizeof(float));
    }
}

const kernel_table kernels_neon = {
    .isa = INFER_ISA_NEON,
    .name = "neon",
    .vec_dot_type = infer_ref_vec_dot_type,
    .quantize_act = neon_quantize_act,
    .matmul = neon_matmul,
    .matmul_kn = neon_matmul_kn,
    .dequantize = neon_dequantize,
    .silu_mul = neon_silu_mul,
    .add = neon_add,
    .rms_norm = neon_rms_norm,
};
