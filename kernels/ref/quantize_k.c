/*
 * quantize_k.c - weight quantizers for the K-quant super-block types:
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (block layouts: quants_k.c).
 *
 * They reproduce llama.cpp's quantize_row_qN_K_ref, which is what
 * llama-quantize runs for these types when no importance matrix is given
 * (its quantize_qN_K(..., imatrix NULL) calls the _ref function for every
 * K type). Each super-block is quantized in three steps:
 *
 *   1. every sub-block (16 or 32 values) gets its own float scale (and
 *      minimum) from a small search:
 *        Q2_K, Q4_K, Q5_K  ref_search_scale_min: an asymmetric fit q*scale - min,
 *                          least squares over a sweep of trial scales
 *                          (llama.cpp's make_qkx2_quants);
 *        Q3_K              search_sym_iterative: symmetric, then values moved
 *                          one at a time while the weighted fit improves
 *                          (make_q3_quants);
 *        Q6_K              ref_search_sym_sweep: symmetric, 18 trial scales
 *                          around the max-magnitude one (make_qx_quants);
 *   2. the sub-block scales are themselves quantized to 4, 6 or 8 bits
 *      against one f16 super-block scale (and one for the minima);
 *   3. the values are re-rounded with the scales as stored.
 *
 * The importance-weighted quantizers (quantize_imatrix.c) have their own
 * steps 1 and 2 and share the searches and step 3 (ref_finish_qN_k) here.
 *
 * Byte-identical output needs the same float operations in the same order:
 * the expressions below keep llama.cpp's association and int->float
 * conversions (w*l*l is (w*l)*l), and this file must not be compiled with
 * floating-point contraction (the build's -std=c11 turns it off). Rounding is
 * nearest_int_ref (ggml's nearest_int: half to even). Values that are NaN,
 * infinite or so small that 1/scale overflows give defined (clamped) results
 * where llama.cpp's would be undefined.
 */
#include "ref_internal.h"

#define GROUP_MAX_EPS 1e-15f /* a sub-block whose |max| is below this is zero */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- step 1: sub-block scale searches --------------------------------------- */

/* Asymmetric fit x ~ scale * L - min_out (L in 0..nmax, min_out >= 0) of n
 * values with weights w. Starts from the min..max grid, then tries nstep+1
 * scales (rmin + rdelta*is + nmax) / (max - min), each followed by a
 * weighted least-squares solve for scale and min; keeps the one of least
 * weighted error (|diff| when use_mad, else diff^2). Returns the scale; L
 * holds the levels, aux is scratch (n). */
float ref_search_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *min_out, uint8_t *aux, float rmin, float rdelta, int nstep,
                           int use_mad) {
    float lo = x[0], hi = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        const float wi = w[i];
        sum_w += wi;
        sum_x += wi * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *min_out = -lo;
        return 0.0f;
    }
    float iscale = nmax / (hi - lo);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int_ref(iscale * (x[i] - lo)), 0, nmax);
        float diff = scale * L[i] + lo - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_err += w[i] * diff;
    }
    if (nstep < 1) {
        *min_out = -lo;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int_ref(iscale * (x[i] - lo)), 0, nmax);
            aux[i] = (uint8_t)l;
            const float wi = w[i];
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) { /* the minimum may only shift values down */
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * aux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                err += w[i] * diff;
            }
            if (err < best_err) {
                memcpy(L, aux, (size_t)n);
                best_err = err;
                scale = this_scale;
                lo = this_min;
            }
        }
    }
    *min_out = -lo;
    return scale;
}

/* The value of largest magnitude (sign kept; the first on ties) and its
 * magnitude. */
static float signed_max(const float *x, int n, float *amax_out) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Symmetric fit x ~ scale * (L - nmax), L in 0..2*nmax-1, weights x^2:
 * round against -nmax/max, then up to 5 passes that move single values to
 * the level that best improves sum(w x l)^2 / sum(w l^2). Returns the scale
 * (0 for an all-zero block). */
static float search_sym_iterative(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = signed_max(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int_ref(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = clampi(nearest_int_ref(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Symmetric fit x ~ scale * (L - nmax) with weights qw, or x^2 when qw is
 * NULL (llama.cpp's make_qx_quants with rmse_type 1): the scale -max/nmax
 * and 18 trial scales -max/(nmax + 0.1*is), is = -9..9, each refined by
 * least squares; the one maximising sum(w x l)^2 / sum(w l^2) wins.
 * Returns the scale (0 for an all-zero block). */
float ref_search_sym_sweep(int n, int nmax, const float *x, const float *qw, int8_t *L) {
    float amax;
    const float max = signed_max(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int_ref(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int_ref(iscale * x[i]), -nmax, nmax - 1);
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(nearest_int_ref(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ---- bit packing ----------------------------------------------------------------- */

/* 256 levels 0..3 into Q2_K/Q3_K's 64 qs bytes: value e = 128c + 32j + l
 * at bits 2j of byte 32c + l. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int c = 0; c < 2; c++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *v = L + 128 * c + l;
            qs[32 * c + l] = (uint8_t)(v[0] | (v[32] << 2) | (v[64] << 4) | (v[96] << 6));
        }
}

/* Q4_K/Q5_K's 12 scale bytes: sub-blocks 0..3 in the low 6 bits of bytes s
 * (scale) and s+4 (min); 4..7 split into byte s+4's nibbles and the top 2
 * bits of bytes s-4 and s. */
void ref_pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *sc) {
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Inverse of ref_pack_scales_k4 for one sub-block. */
static void unpack_scale_k4(const uint8_t *sc, int j, int *scale, int *min) {
    if (j < 4) {
        *scale = sc[j] & 63;
        *min = sc[j + 4] & 63;
    } else {
        *scale = (sc[j + 4] & 0x0f) | ((sc[j - 4] >> 6) << 4);
        *min = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
    }
}

/* ---- Q2_K: 16 sub-blocks of 16, levels 0..3, 4-bit scales and mins ---------------- */

/* Step 3 for one Q2_K block whose scales, d and dmin are stored: levels
 * re-rounded against them (a sub-block of scale 0 keeps the search's) and
 * packed. Shared with the importance-weighted quantizer. */
void ref_finish_q2_k(const float *x, uint8_t *y, uint8_t *L) {
    const uint8_t *sc = y;
    const float d_all = rd_f16(y + 80), m_all = rd_f16(y + 82);
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (sc[j] & 0x0f);
        if (!d) continue; /* keep the search's levels */
        const float dm = m_all * (sc[j] >> 4);
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)clampi(nearest_int_ref((x[16 * j + l] + dm) / d), 0, 3);
    }
    pack_2bit(L, y + 16);
}

void ref_quant_q2_k(const float *x, uint8_t *y, int64_t n) {
    uint8_t L[QK_K], aux[16];
    float w[16], mins[16], scales[16];
    const float q4scale = 15.0f;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 84) {
        uint8_t *sc = y;
        float max_scale = 0, max_min = 0; /* mins are subtracted: both >= 0 */
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = ref_search_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], aux, -0.5f,
                                             0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) sc[j] = (uint8_t)nearest_int_ref(iscale * scales[j]);
            wr_u16(y + 80, infer_f32_to_f16(max_scale / q4scale));
        } else {
            memset(sc, 0, 16);
            wr_u16(y + 80, infer_f32_to_f16(0.0f));
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                sc[j] |= (uint8_t)((unsigned)nearest_int_ref(iscale * mins[j]) << 4);
            wr_u16(y + 82, infer_f32_to_f16(max_min / q4scale));
        } else {
            wr_u16(y + 82, infer_f32_to_f16(0.0f));
        }
        ref_finish_q2_k(x, y, L);
    }
}

/* ---- Q3_K: 16 sub-blocks of 16, levels -4..3, 6-bit signed scales ------------------- */

/* Step 3 for one Q3_K block whose 12 scale bytes and d are stored (L:
 * the search's levels 0..7). Shared with the importance-weighted one. */
void ref_finish_q3_k(const float *x, uint8_t *y, int8_t *L) {
    uint8_t *hmask = y, *qs = y + 32;
    const uint8_t *sc = y + 96;
    const float d_all = rd_f16(y + 108);
    for (int j = 0; j < 16; j++) {
        int s = j < 8 ? (sc[j] & 0x0f) : (sc[j - 8] >> 4);
        s = (s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        const float d = d_all * s;
        if (!d) continue;
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (int8_t)(clampi(nearest_int_ref(x[16 * j + l] / d), -4, 3) + 4);
    }
    /* high bit of value e (0..255) at bit e/32 of hmask[e%32]; 2 low bits
     * packed like Q2_K's */
    memset(hmask, 0, 32);
    uint8_t low[QK_K];
    for (int e = 0; e < QK_K; e++) {
        int v = L[e];
        if (v > 3) {
            hmask[e % 32] |= (uint8_t)(1u << (e / 32));
            v -= 4;
        }
        low[e] = (uint8_t)v;
    }
    pack_2bit(low, qs);
}

/* Sub-block j's 6-bit level l (0..63) into Q3_K's 12 scale bytes (zeroed
 * before the first): low nibbles in bytes 0..7, the top 2 bits in 8..11. */
void ref_put_scale_q3_k(uint8_t *sc, int j, int l) {
    if (j < 8)
        sc[j] = (uint8_t)(l & 0x0f);
    else
        sc[j - 8] |= (uint8_t)((l & 0x0f) << 4);
    sc[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

void ref_quant_q3_k(const float *x, uint8_t *y, int64_t n) {
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 110) {
        uint8_t *sc = y + 96;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = search_sym_iterative(16, 4, x + 16 * j, L + 16 * j);
            const float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        memset(sc, 0, 12);
        if (max_scale) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                /* llama.cpp stores the rounded value in an int8_t first */
                const int8_t r = (int8_t)nearest_int_ref(iscale * scales[j]);
                ref_put_scale_q3_k(sc, j, clampi(r, -32, 31) + 32);
            }
            wr_u16(y + 108, infer_f32_to_f16(1 / iscale));
        } else {
            wr_u16(y + 108, infer_f32_to_f16(0.0f));
        }
        ref_finish_q3_k(x, y, L);
    }
}

/* ---- Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and mins ----------------------- */

/* Steps 1 and 2 shared by Q4_K and Q5_K (nmax 15 or 31); fills y's d, dmin
 * and 12 scale bytes (at y, y+2, y+4) and the search's levels L. */
static void quant_k4_scales(const float *x, uint8_t *y, uint8_t *L, int nmax, float rmin, int nstep) {
    uint8_t aux[32], ls[8], lm[8];
    float w[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xb = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xb[l] * xb[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xb[l]);
        scales[j] = ref_search_scale_min(32, nmax, xb, w, L + 32 * j, &mins[j], aux, rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
        /* llama.cpp converts to uint8_t before clamping to 63 */
        const uint8_t s = (uint8_t)nearest_int_ref(inv_scale * scales[j]);
        const uint8_t m = (uint8_t)nearest_int_ref(inv_min * mins[j]);
        ls[j] = s < 63 ? s : 63;
        lm[j] = m < 63 ? m : 63;
    }
    ref_pack_scales_k4(ls, lm, y + 4);
    wr_u16(y, infer_f32_to_f16(max_scale / 63.0f));
    wr_u16(y + 2, infer_f32_to_f16(max_min / 63.0f));
}

/* Step 3 of Q4_K and Q5_K: the levels re-rounded against the stored
 * scales and minima (a sub-block of scale 0 keeps the search's). */
static void quant_k4_levels(const float *x, const uint8_t *y, uint8_t *L, int nmax) {
    const float d_all = rd_f16(y), m_all = rd_f16(y + 2);
    for (int j = 0; j < 8; j++) {
        int s, m;
        unpack_scale_k4(y + 4, j, &s, &m);
        const float d = d_all * s;
        if (!d) continue;
        const float dm = m_all * m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi(nearest_int_ref((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

/* Q4_K's step 3 and packing for one block whose scales are stored: value
 * 64p + 32k + l in nibble k of qs[32p + l]. */
void ref_finish_q4_k(const float *x, uint8_t *y, uint8_t *L) {
    quant_k4_levels(x, y, L, 15);
    uint8_t *qs = y + 16;
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) qs[32 * p + l] = (uint8_t)(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
}

/* Q5_K's: as Q4_K, the fifth bit of value 64p + 32k + l at bit 2p+k of
 * qh[l]. */
void ref_finish_q5_k(const float *x, uint8_t *y, uint8_t *L) {
    quant_k4_levels(x, y, L, 31);
    uint8_t *qh = y + 16, *qs = y + 48;
    memset(qh, 0, 32);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            const int a = L[64 * p + l], b = L[64 * p + 32 + l];
            qh[l] |= (uint8_t)(((a >> 4) << (2 * p)) | ((b >> 4) << (2 * p + 1)));
            qs[32 * p + l] = (uint8_t)((a & 0x0f) | ((b & 0x0f) << 4));
        }
}

void ref_quant_q4_k(const float *x, uint8_t *y, int64_t n) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 144) {
        quant_k4_scales(x, y, L, 15, -1.0f, 20);
        ref_finish_q4_k(x, y, L);
    }
}

void ref_quant_q5_k(const float *x, uint8_t *y, int64_t n) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 176) {
        quant_k4_scales(x, y, L, 31, -0.5f, 15);
        ref_finish_q5_k(x, y, L);
    }
}

/* ---- Q6_K: 16 sub-blocks of 16, levels -32..31, int8 scales --------------------------- */

/* n values (whole blocks); qw: importance weights for them, or NULL.
 * llama.cpp's Q6_K with an importance matrix differs only in the weights
 * of the sub-block search (the matrix's values as they are, where the
 * other K types scale them by the values' magnitude). */
void ref_quant_q6_k_weighted(const float *x, uint8_t *y, int64_t n, const float *qw) {
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 210, qw = qw ? qw + QK_K : NULL) {
        uint8_t *ql = y, *qh = y + 128;
        int8_t *sc = (int8_t *)(y + 192);
        float max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = ref_search_sym_sweep(16, 32, x + 16 * j, qw ? qw + 16 * j : NULL, L + 16 * j);
            const float a = fabsf(scales[j]);
            if (a > max_abs) {
                max_abs = a;
                max_scale = scales[j];
            }
        }
        if (max_abs < GROUP_MAX_EPS) {
            memset(y, 0, 210);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        wr_u16(y + 208, infer_f32_to_f16(1 / iscale));
        for (int j = 0; j < 16; j++) {
            const int v = nearest_int_ref(iscale * scales[j]);
            sc[j] = (int8_t)(uint8_t)(v < 127 ? v : 127);
        }
        const float d_all = rd_f16(y + 208);
        for (int j = 0; j < 16; j++) {
            const float d = d_all * sc[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(nearest_int_ref(x[16 * j + l] / d), -32, 31) + 32);
        }
        /* value 128c + 32k + l: low 4 bits in ql (see quants_k.c), high 2
         * bits at bits 2k of qh[32c + l] */
        for (int c = 0; c < 2; c++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *v = (const uint8_t *)L + 128 * c + l;
                ql[64 * c + l] = (uint8_t)((v[0] & 0x0f) | ((v[64] & 0x0f) << 4));
                ql[64 * c + 32 + l] = (uint8_t)((v[32] & 0x0f) | ((v[96] & 0x0f) << 4));
                qh[32 * c + l] = (uint8_t)((v[0] >> 4) | ((v[32] >> 4) << 2) | ((v[64] >> 4) << 4) |
                                           ((v[96] >> 4) << 6));
            }
    }
}

void ref_quant_q6_k(const float *x, uint8_t *y, int64_t n) {
    ref_quant_q6_k_weighted(x, y, n, NULL);
}
