/*
 * ref_internal.h - what the files of kernels/ref share: byte-order-free
 * field access for packed blocks, the rounding helpers llama.cpp's
 * reference quantizers use, and the per-type row functions dot.c
 * dispatches to.
 *
 * Blocks inside a tensor are packed (an 18-byte Q4_0 block follows another),
 * so multi-byte fields are never read through a cast pointer: they are
 * assembled from bytes, little-endian as GGUF stores them.
 */
#ifndef INFER_KERNELS_REF_INTERNAL_H
#define INFER_KERNELS_REF_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "infer_gguf.h"
#include "quants.h"

#define QK_LEGACY 32 /* values per Q4_0 .. Q8_1 block */
#define QK_K 256     /* values per K-quant super-block */

/* ---- packed little-endian fields ----------------------------------------- */

static inline uint16_t rd_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline void wr_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline void wr_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* An f16 field as float. */
static inline float rd_f16(const uint8_t *p) { return infer_f16_to_f32(rd_u16(p)); }

static inline float rd_f32(const uint8_t *p) {
    uint32_t u = rd_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void wr_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    wr_u32(p, u);
}

static inline int16_t rd_i16(const uint8_t *p) { return (int16_t)rd_u16(p); }

/* ---- rounding as llama.cpp's reference quantizers do it ------------------ */
/* Their float->int conversions are C casts, which are undefined for values
 * out of range (NaN, inf: reached only when a block holds NaN/inf or
 * denormals that make 1/d overflow). These helpers give the same result as
 * the cast whenever the cast is defined, and a clamped value otherwise. */

/* (int)(v) truncating, clamped to [lo, hi]; NaN gives 0. */
static inline int trunc_clamp(float v, int lo, int hi) {
    if (v != v) return 0;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* roundf (half away from zero), clamped to [-128, 127]; NaN gives 0. */
static inline int8_t round_i8(float v) {
    if (v != v) return 0;
    v = roundf(v);
    if (v >= 127.0f) return 127;
    if (v <= -128.0f) return -128;
    return (int8_t)v;
}

/* Round half to even via the float magic-number trick (what ggml's
 * nearest_int does, valid for |v| <= 4194303); out-of-range values clamp,
 * NaN gives 0. */
static inline int nearest_int_ref(float v) {
    if (v != v) return 0;
    if (v > 4194303.0f) return 4194303;
    if (v < -4194303.0f) return -4194303;
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- per-type rows (n a multiple of the block size) ----------------------- */

/* quants_legacy.c: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 */
void ref_dequant_q4_0(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q4_1(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q5_0(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q5_1(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q8_0(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q8_1(const uint8_t *x, float *y, int64_t n);
void ref_quant_q4_0(const float *x, uint8_t *y, int64_t n);
void ref_quant_q4_1(const float *x, uint8_t *y, int64_t n);
void ref_quant_q5_0(const float *x, uint8_t *y, int64_t n);
void ref_quant_q5_1(const float *x, uint8_t *y, int64_t n);
void ref_quant_q8_0(const float *x, uint8_t *y, int64_t n);
void ref_quant_q8_1(const float *x, uint8_t *y, int64_t n);
float ref_dot_q4_0_q8_0(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q4_1_q8_1(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q5_0_q8_0(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q5_1_q8_1(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q8_0_q8_0(int64_t n, const uint8_t *x, const uint8_t *y);

/* quants_k.c: Q2_K .. Q6_K, Q8_K */
void ref_dequant_q2_k(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q3_k(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q4_k(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q5_k(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q6_k(const uint8_t *x, float *y, int64_t n);
void ref_dequant_q8_k(const uint8_t *x, float *y, int64_t n);
void ref_quant_q8_k(const float *x, uint8_t *y, int64_t n);
float ref_dot_q2_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q3_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q4_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q5_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y);
float ref_dot_q6_k_q8_k(int64_t n, const uint8_t *x, const uint8_t *y);

/* quantize_k.c: the K-quant weight quantizers' searches and final steps,
 * shared with the importance-weighted ones (quantize_imatrix.c) */
float ref_search_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *min_out, uint8_t *aux, float rmin, float rdelta, int nstep,
                           int use_mad);
float ref_search_sym_sweep(int n, int nmax, const float *x, const float *qw, int8_t *L);
void ref_pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *sc);
void ref_put_scale_q3_k(uint8_t *sc, int j, int l);
void ref_finish_q2_k(const float *x, uint8_t *y, uint8_t *L);
void ref_finish_q3_k(const float *x, uint8_t *y, int8_t *L);
void ref_finish_q4_k(const float *x, uint8_t *y, uint8_t *L);
void ref_finish_q5_k(const float *x, uint8_t *y, uint8_t *L);
void ref_quant_q6_k_weighted(const float *x, uint8_t *y, int64_t n, const float *qw);

/* quants_legacy.c: the 32-value blocks' packing */
void ref_pack_nibbles(const uint8_t *q, uint8_t *qs);
uint32_t ref_pack_high_bits(const uint8_t *q);

#endif
