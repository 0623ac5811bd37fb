/*
 * quantize_imatrix.c - weight quantizers guided by an importance matrix:
 * Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (Q8_0 has none).
 *
 * An importance matrix (llama-imatrix's output) gives each column of a
 * weight a value: the mean square of the activations it met. llama.cpp's
 * quantize_row_*_impl, what llama-quantize runs when given one, fit each
 * block's scale (and minimum) to minimise the error weighted per value by
 *
 *   w[j] = imatrix[j] * sqrt(sigma2 + x[j]^2)
 *
 * where sigma2 is the mean square of the values (of the whole row for the
 * 32-value types, of the 256-value super-block times 1 for Q2_K and times 2
 * for Q3_K/Q4_K/Q5_K). Q6_K takes the matrix's values as they are. The
 * K types then quantize their sub-block scales with the same weights
 * summed per sub-block (search_pos_scale: llama.cpp's make_qp_quants) and
 * re-round the values against the stored scales, as the unweighted ones do
 * (quantize_k.c's ref_finish_qN_k).
 *
 * The output is byte-identical to llama.cpp's (c392e5094) on the same input:
 * same float operations in the same order (see quantize_k.c's note on
 * contraction), the same truncating conversions to uint8_t / int8_t. One
 * exception, on degenerate input only: where llama.cpp computes a scale of
 * 0/0 (NaN: every weight of a super-block zero), the scale here is 0 (see
 * search_pos_scale). The legacy types need the whole row for sigma2, so
 * the entry point takes one row at a time.
 */
#include "ref_internal.h"

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* ---- scales of scales: llama.cpp's make_qp_quants ------------------------------- */

/* Non-negative values x (sub-block scales or minima) as scale * L, L in
 * 0..nmax, minimising sum(qw (x - scale L)^2): the scale max/nmax and 8
 * trial scales max/(nmax + 0.1 is), is = -4..4, then up to 5 passes that
 * move single levels while sum(qw x l)^2 / sum(qw l^2) improves. Returns
 * the scale (0 when every x is 0). L is uint8_t as in llama.cpp: a
 * negative rounding (a negative x, possible only from degenerate input)
 * wraps, and the wrapped level is what later steps read. */
static float search_pos_scale(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i]; /* ggml's MAX: a NaN x wins */
    if (!max) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nearest_int_ref(iscale * x[i]);
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            const int l = min_int(nmax, nearest_int_ref(iscale_is * x[i]));
            const float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = min_int(nmax, nearest_int_ref(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * l;
        suml2 += qw[i] * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                const int nl = min_int(nmax, nearest_int_ref(x[i] * sl2 / slx));
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    /* llama.cpp returns sumlx / suml2 unguarded: 0/0, a NaN scale, when
     * every weight is 0 (a super-block of columns the matrix calls
     * unimportant, or values whose squares underflow). 0 here: the only
     * bytes that differ from llama.cpp's are those NaN scales. */
    return suml2 != 0 ? sumlx / suml2 : 0.0f;
}

/* ---- per-value weights -------------------------------------------------------------- */

static float sum_squares(const float *x, int64_t n) {
    float sum = 0;
    for (int64_t j = 0; j < n; j++) sum += x[j] * x[j];
    return sum;
}

/* w[l] = qw[l] * sqrt(sigma2 + x[l]^2) for n values; returns their sum. */
static float importance(const float *x, const float *qw, float sigma2, int n, float *w) {
    float sum = 0;
    for (int l = 0; l < n; l++) w[l] = qw[l] * sqrtf(sigma2 + x[l] * x[l]);
    for (int l = 0; l < n; l++) sum += w[l];
    return sum;
}

/* ---- K types ------------------------------------------------------------------------- */

/* One Q2_K super-block: 16 sub-blocks fitted as scale * L - min (L 0..3)
 * with the importance weights (sigma2: the block's mean square), then the
 * 16 scales and the 16 minima as 4-bit levels of two f16 scales, each
 * sub-block weighing by its weights' sum. */
static void quant_q2_k_block(const float *x, uint8_t *y, const float *qw) {
    uint8_t L[QK_K], aux[16], ls[16], lm[16];
    float w[16], sw[16], mins[16], scales[16];
    const float sigma2 = sum_squares(x, QK_K) / QK_K;
    for (int j = 0; j < 16; j++) {
        sw[j] = importance(x + 16 * j, qw + 16 * j, sigma2, 16, w);
        scales[j] = ref_search_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], aux, -0.9f, 0.05f, 36, 0);
    }
    const float dm = search_pos_scale(16, 15, scales, ls, sw);
    const float mm = search_pos_scale(16, 15, mins, lm, sw);
    wr_u16(y + 80, infer_f32_to_f16(dm));
    wr_u16(y + 82, infer_f32_to_f16(mm));
    for (int j = 0; j < 16; j++) y[j] = (uint8_t)(ls[j] | (lm[j] << 4));
    ref_finish_q2_k(x, y, L);
}

/* One Q3_K super-block: 16 symmetric sub-block fits (levels -4..3; sigma2
 * twice the block's mean square), their scales as signed 6-bit levels of
 * one f16 scale, fitted with the same weights summed per sub-block. */
static void quant_q3_k_block(const float *x, uint8_t *y, const float *qw) {
    int8_t L[QK_K], ls[16];
    float w[16], sw[16], scales[16];
    const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
    for (int j = 0; j < 16; j++) {
        sw[j] = importance(x + 16 * j, qw + 16 * j, sigma2, 16, w);
        scales[j] = ref_search_sym_sweep(16, 4, x + 16 * j, w, L + 16 * j);
    }
    uint8_t *sc = y + 96;
    memset(sc, 0, 12);
    const float d = ref_search_sym_sweep(16, 32, scales, sw, ls);
    for (int j = 0; j < 16; j++) ref_put_scale_q3_k(sc, j, ls[j]);
    wr_u16(y + 108, infer_f32_to_f16(d));
    ref_finish_q3_k(x, y, L);
}

/* Q4_K and Q5_K (nmax 15, 31): 8 sub-blocks of 32. Q5_K clamps the scale
 * levels to 63 before packing; Q4_K packs them as they are. */
static void quant_k4_block(const float *x, uint8_t *y, const float *qw, int nmax) {
    uint8_t L[QK_K], aux[32], ls[8], lm[8];
    float w[32], sw[8], mins[8], scales[8];
    const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
    for (int j = 0; j < 8; j++) {
        sw[j] = importance(x + 32 * j, qw + 32 * j, sigma2, 32, w);
        scales[j] = ref_search_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], aux, -0.9f, 0.05f, 36, 0);
    }
    const float d = search_pos_scale(8, 63, scales, ls, sw);
    const float m = search_pos_scale(8, 63, mins, lm, sw);
    if (nmax == 31)
        for (int j = 0; j < 8; j++) {
            ls[j] = ls[j] < 63 ? ls[j] : 63;
            lm[j] = lm[j] < 63 ? lm[j] : 63;
        }
    ref_pack_scales_k4(ls, lm, y + 4);
    wr_u16(y, infer_f32_to_f16(d));
    wr_u16(y + 2, infer_f32_to_f16(m));
    if (nmax == 15) ref_finish_q4_k(x, y, L);
    else ref_finish_q5_k(x, y, L);
}

/* ---- 32-value types ------------------------------------------------------------------- */

/* Q4_0 / Q5_0: symmetric, levels 0..2*nmax-1, weights from sigma2 of the
 * row. */
static void quant_sym_block(const float *x, uint8_t *y, const float *qw, float sigma2, int nmax) {
    float w[QK_LEGACY];
    int8_t L[QK_LEGACY];
    importance(x, qw, sigma2, QK_LEGACY, w);
    const float d = ref_search_sym_sweep(QK_LEGACY, nmax, x, w, L);
    wr_u16(y, infer_f32_to_f16(d));
    if (nmax == 8) {
        ref_pack_nibbles((const uint8_t *)L, y + 2);
    } else {
        wr_u32(y + 2, ref_pack_high_bits((const uint8_t *)L));
        ref_pack_nibbles((const uint8_t *)L, y + 6);
    }
}

/* Q4_1 / Q5_1: scale and minimum from the weighted asymmetric search. */
static void quant_min_block(const float *x, uint8_t *y, const float *qw, float sigma2, int nmax) {
    float w[QK_LEGACY], min;
    uint8_t L[QK_LEGACY], aux[QK_LEGACY];
    importance(x, qw, sigma2, QK_LEGACY, w);
    const float d = ref_search_scale_min(QK_LEGACY, nmax, x, w, L, &min, aux, -0.9f, 0.05f, 36, 0);
    wr_u16(y, infer_f32_to_f16(d));
    wr_u16(y + 2, infer_f32_to_f16(-min));
    if (nmax == 15) {
        ref_pack_nibbles(L, y + 4);
    } else {
        wr_u32(y + 4, ref_pack_high_bits(L));
        ref_pack_nibbles(L, y + 8);
    }
}

/* ---- entry point ------------------------------------------------------------------------ */

int infer_ref_quantize_imatrix(uint32_t type, const float *x, void *dst, int64_t n, const float *qw) {
    uint8_t *y = dst;
    if (!qw) return infer_ref_quantize(type, x, dst, n);
    switch (type) {
    case INFER_TYPE_Q4_0: case INFER_TYPE_Q5_0: case INFER_TYPE_Q4_1: case INFER_TYPE_Q5_1:
    case INFER_TYPE_Q2_K: case INFER_TYPE_Q3_K: case INFER_TYPE_Q4_K: case INFER_TYPE_Q5_K:
        break;
    case INFER_TYPE_Q6_K:
        ref_quant_q6_k_weighted(x, y, n, qw);
        return 0;
    default: /* Q8_0 and the float types take no weights */
        return infer_ref_quantize(type, x, dst, n);
    }
    const int64_t bs = infer_type_block_size(type);
    const size_t bb = infer_type_block_bytes(type);
    const float sigma2 = bs == QK_LEGACY ? sum_squares(x, n) / n : 0; /* the legacy types': the row's */
    for (int64_t b = 0; b < n / bs; b++, x += bs, qw += bs, y += bb) {
        switch (type) {
        case INFER_TYPE_Q4_0: quant_sym_block(x, y, qw, sigma2, 8); break;
        case INFER_TYPE_Q5_0: quant_sym_block(x, y, qw, sigma2, 16); break;
        case INFER_TYPE_Q4_1: quant_min_block(x, y, qw, sigma2, 15); break;
        case INFER_TYPE_Q5_1: quant_min_block(x, y, qw, sigma2, 31); break;
        case INFER_TYPE_Q2_K: quant_q2_k_block(x, y, qw); break;
        case INFER_TYPE_Q3_K: quant_q3_k_block(x, y, qw); break;
        case INFER_TYPE_Q4_K: quant_k4_block(x, y, qw, 15); break;
        default: quant_k4_block(x, y, qw, 31); break; /* Q5_K */
        }
    }
    return 0;
}
