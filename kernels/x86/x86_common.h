/*
 * x86_common.h - what the AVX2 and AVX-512 kernel files share: packed
 * little-endian field reads, scalar f16 conversion (F16C, which both levels
 * have), the K-quant scale decoders, and the layout of the "panels" the
 * blocked matmuls run on.
 *
 * A panel is a tile of R weight rows (R = 16 for AVX-512, 8 for AVX2)
 * unpacked so that one SIMD register holds the same 4 consecutive values of
 * every row: "slice" s of a block is R rows x 4 bytes, row i in 32-bit lane
 * i. A VNNI dot (vpdpbusd) of a slice with 4 activation bytes broadcast to
 * every lane then advances all R output rows at once, and a loaded slice is
 * reused for every token of the batch. Weights are stored as unsigned bytes
 * with their offset (Q4_0: q, value q - 8); the offset times the activation
 * block sum is subtracted in integer arithmetic, so every integer block dot
 * is exactly the reference's.
 *
 * Legacy panel block (32 values): q[8 slices][R][4] | float d[R] | float m[R]
 * K-quant panel block (256 values): q[64 slices][R][4] | int32 sc[16][R]
 *   (sub-block scales) | int32 m16[8][R] (pairs of int16 per-16-value
 *   corrections, dotted with Q8_K's bsums) | float d[R] | float dmin[R]
 */
#ifndef INFER_KERNELS_X86_COMMON_H
#define INFER_KERNELS_X86_COMMON_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "infer_gguf.h"
#include "dispatch.h"

/* n rounded up to 64 bytes: the batch kernels carve their panels out of
 * kernels_scratch() (64-byte aligned) at such offsets. */
#define X86_UP64(n) (((size_t)(n) + 63) & ~(size_t)63)

#define X86_QK 32   /* values per legacy block */
#define X86_QKK 256 /* values per K-quant super-block */

/* The exp kernels (softmax numerators, SiLU) give 0 below this x, where
 * e^x < 2.5e-38 (expf: a value at most that, denormal below -87.34). From
 * here up each result is a normal float (2^n >= 2^-125, e^r >= 2^-1/2).
 * Intel cores make a denormal result by a microcode assist: on a Xeon
 * (2026-11-23) a softmax row of 4096 scores all more than 87 below their
 * max took 21 us against 1.8 us, and a SiLU of 4096 gates above 87 the
 * same. */
#define X86_EXP_MIN (-86.6f)

static inline uint16_t x86_rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t x86_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float x86_rdf32(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* An f16 field as float (F16C: exact, as the reference conversion). */
static inline float x86_f16(const uint8_t *p) { return _cvtsh_ss(x86_rd16(p)); }

/* Q4_K/Q5_K: 6-bit scale and min of sub-block s (0..7) from the 12 packed
 * bytes (the same bit positions as kernels/ref). */
static inline void x86_q4k_scale_min(const uint8_t *sc, int s, int *scale, int *min) {
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 0x0f) | ((sc[s - 4] >> 6) << 4);
        *min = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
    }
}

/* Q3_K: signed scale (-32..31) of sub-block s (0..15). */
static inline int x86_q3k_scale(const uint8_t *sc, int s) {
    int lo = s < 8 ? (sc[s] & 0x0f) : (sc[s - 8] >> 4);
    int hi = (sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* Prefetch bytes [off, off + len) of rows [r, r + n) (rows rb apart, at
 * most `limit` rows exist from W): the next panel's share of the weights,
 * fetched while the current panel is multiplied. A panel reads a short
 * piece of many rows, which the hardware prefetcher does not follow. */
static inline void x86_prefetch_rows(const uint8_t *W, size_t rb, int64_t r, int64_t n, int64_t limit, size_t off,
                                     size_t len) {
    for (int64_t i = r; i < r + n && i < limit; i++)
        for (size_t l = 0; l < len; l += 64) _mm_prefetch((const char *)(W + (size_t)i * rb + off + l), _MM_HINT_T0);
}

/* One token over float rows (F32/F16/BF16, the file's layout), 4 rows at
 * a time: at byte o of the rows (o a multiple of 64), the place
 * X86_FLOAT_AHEAD bytes further in the first of the 4 rows from w0 (rows
 * rb apart, rowb bytes read per row), or, past their end, as far into the
 * next 4 rows where the call has them (next); NULL when there is none.
 * Every such place and the same offset in the 3 rows after it lie inside
 * the weight, so plain pointer arithmetic is fine (GCC 12 at -O2 dropped
 * the prefetches altogether when this was written with addresses as
 * integers and a loop over the 4 rows, and again when the 64-byte test and
 * the prefetches were folded into one inline helper: the callers keep
 * both, as written; count prefetcht0 in the objects after a change).
 * Four rows are four streams of one
 * page each (a 2048-value F16 row is 4 KB), too short for the hardware
 * prefetcher to run ahead of. */
#define X86_FLOAT_AHEAD 1024
static inline const uint8_t *x86_float_ahead(const uint8_t *w0, size_t rb, size_t rowb, int next, size_t o) {
    const size_t a = o + X86_FLOAT_AHEAD;
    return a < rowb ? w0 + a : next && a - rowb < rowb ? w0 + 4 * rb + (a - rowb) : NULL;
}

static inline void x86_prefetch_4rows(const uint8_t *p, size_t rb) {
    _mm_prefetch((const char *)p, _MM_HINT_T0);
    _mm_prefetch((const char *)(p + rb), _MM_HINT_T0);
    _mm_prefetch((const char *)(p + 2 * rb), _MM_HINT_T0);
    _mm_prefetch((const char *)(p + 3 * rb), _MM_HINT_T0);
}

/* The sum of the 32 int8 quants at q (an activation block): the sum of
 * (q ^ 0x80), which counts q + 128, by vpsadbw. */
static inline int x86_sum_q8x32(const uint8_t *q) {
    const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)q), _mm256_set1_epi8((char)0x80));
    const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
    const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (int)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128;
}

/* Generation kernels (one activation row), Q8_K side of a super-block:
 * d_a and the int16 pairs of group sums in the order of the weight-side
 * pairs (Q2_K, Q3_K, Q6_K: per-16 sums, even/odd; Q4_K, Q5_K: 32-value
 * sums B_s as (B0, B2), (B1, B3), (B4, B6), (B5, B7)). */
typedef struct {
    float da;
    int32_t pair[8];
} x86_kact;

static inline int32_t x86_pack16(int a, int b) {
    return (int32_t)((uint32_t)(uint16_t)a | ((uint32_t)(uint16_t)b << 16));
}

static inline void x86_prep_kact(uint32_t type, const uint8_t *a, int64_t nsb, x86_kact *m) {
    for (int64_t sb = 0; sb < nsb; sb++, a += 292) {
        int16_t bs[16];
        memcpy(bs, a + 260, 32);
        m[sb].da = x86_rdf32(a);
        if (type != INFER_TYPE_Q4_K && type != INFER_TYPE_Q5_K) {
            for (int q = 0; q < 4; q++) {
                m[sb].pair[2 * q] = x86_pack16(bs[4 * q], bs[4 * q + 2]);
                m[sb].pair[2 * q + 1] = x86_pack16(bs[4 * q + 1], bs[4 * q + 3]);
            }
        } else {
            int B[8];
            for (int s = 0; s < 8; s++) B[s] = bs[2 * s] + bs[2 * s + 1];
            m[sb].pair[0] = x86_pack16(B[0], B[2]);
            m[sb].pair[1] = x86_pack16(B[1], B[3]);
            m[sb].pair[2] = x86_pack16(B[4], B[6]);
            m[sb].pair[3] = x86_pack16(B[5], B[7]);
        }
    }
}

/* The block geometry of a weight type for the quantized matmuls. */
typedef enum { X86_FAM_NONE, X86_FAM_LEGACY, X86_FAM_K, X86_FAM_FLOAT } x86_family;

static inline x86_family x86_family_of(uint32_t type) {
    switch (type) {
    case INFER_TYPE_Q4_0: case INFER_TYPE_Q4_1: case INFER_TYPE_Q5_0:
    case INFER_TYPE_Q5_1: case INFER_TYPE_Q8_0:
        return X86_FAM_LEGACY;
    case INFER_TYPE_Q2_K: case INFER_TYPE_Q3_K: case INFER_TYPE_Q4_K:
    case INFER_TYPE_Q5_K: case INFER_TYPE_Q6_K:
        return X86_FAM_K;
    case INFER_TYPE_F32: case INFER_TYPE_F16: case INFER_TYPE_BF16:
        return X86_FAM_FLOAT;
    default:
        return X86_FAM_NONE;
    }
}

/* Bytes of one weight block. */
static inline size_t x86_block_bytes(uint32_t type) {
    switch (type) {
    case INFER_TYPE_Q4_0: return 18;
    case INFER_TYPE_Q4_1: return 20;
    case INFER_TYPE_Q5_0: return 22;
    case INFER_TYPE_Q5_1: return 24;
    case INFER_TYPE_Q8_0: return 34;
    case INFER_TYPE_Q2_K: return 84;
    case INFER_TYPE_Q3_K: return 110;
    case INFER_TYPE_Q4_K: return 144;
    case INFER_TYPE_Q5_K: return 176;
    case INFER_TYPE_Q6_K: return 210;
    default: return 0;
    }
}

/* Legacy types: the offset subtracted from the stored unsigned value (Q8_0
 * is stored as q + 128), and whether the type has a per-block minimum
 * (activations Q8_1, whose s field carries d * sum). */
static inline int x86_legacy_offset(uint32_t type) {
    switch (type) {
    case INFER_TYPE_Q4_0: return 8;
    case INFER_TYPE_Q5_0: return 16;
    case INFER_TYPE_Q8_0: return 128;
    default: return 0;
    }
}

static inline int x86_legacy_has_min(uint32_t type) {
    return type == INFER_TYPE_Q4_1 || type == INFER_TYPE_Q5_1;
}

/* Generation kernels, activation side of a legacy block: d_a, and either
 * -offset * sum(q_a) or s_a (Q8_1). q8_offset 0: the kernel reads Q8_0's
 * weights as signed bytes, so Q8_0 needs no offset term. */
typedef struct {
    float da;
    union {
        int32_t corr;
        float sa;
    } x;
} x86_leg_act;

static inline void x86_prep_leg_act(uint32_t type, const uint8_t *a, int64_t nb, int q8_offset, x86_leg_act *m) {
    const int has_min = x86_legacy_has_min(type);
    const int off = type == INFER_TYPE_Q8_0 && !q8_offset ? 0 : x86_legacy_offset(type);
    const size_t ab = has_min ? 36 : 34;
    for (int64_t b = 0; b < nb; b++, a += ab) {
        m[b].da = x86_f16(a);
        if (has_min) m[b].x.sa = x86_f16(a + 2);
        else m[b].x.corr = off ? -off * x86_sum_q8x32(a + 2) : 0;
    }
}

/* K types: values per sub-block with its own scale (16 or 32), and whether
 * the per-16 corrections are a separate min term (Q2_K, Q4_K, Q5_K: result
 * d*isum - dmin*corr) or the stored offset (Q3_K, Q6_K: d*(isum - corr)). */
static inline int x86_k_sub(uint32_t type) {
    return type == INFER_TYPE_Q4_K || type == INFER_TYPE_Q5_K ? 32 : 16;
}

static inline int x86_k_has_min(uint32_t type) {
    return type == INFER_TYPE_Q2_K || type == INFER_TYPE_Q4_K || type == INFER_TYPE_Q5_K;
}

/* Per-row scale data of one K super-block, decoded (both levels' packers). */
typedef struct {
    int32_t sc[16];   /* sub-block scale (16 sub-blocks of 16, or 8 of 32) */
    int16_t m16[16];  /* correction per 16-value group */
    float d, dmin;
} x86_kscales;

static inline void x86_k_decode_scales(uint32_t type, const uint8_t *x, x86_kscales *o) {
    int sc, mn;
    switch (type) {
    case INFER_TYPE_Q2_K:
        for (int s = 0; s < 16; s++) {
            o->sc[s] = x[s] & 0x0f;
            o->m16[s] = (int16_t)(x[s] >> 4);
        }
        o->d = x86_f16(x + 80);
        o->dmin = x86_f16(x + 82);
        break;
    case INFER_TYPE_Q3_K:
        for (int s = 0; s < 16; s++) {
            sc = x86_q3k_scale(x + 96, s);
            o->sc[s] = sc;
            o->m16[s] = (int16_t)(4 * sc);
        }
        o->d = x86_f16(x + 108);
        o->dmin = 0.0f;
        break;
    case INFER_TYPE_Q4_K:
    case INFER_TYPE_Q5_K:
        for (int s = 0; s < 8; s++) {
            x86_q4k_scale_min(x + 4, s, &sc, &mn);
            o->sc[s] = sc;
            o->sc[s + 8] = 0;
            o->m16[2 * s] = o->m16[2 * s + 1] = (int16_t)mn;
        }
        o->d = x86_f16(x);
        o->dmin = x86_f16(x + 2);
        break;
    default: /* Q6_K */
        for (int s = 0; s < 16; s++) {
            sc = (int8_t)x[192 + s];
            o->sc[s] = sc;
            o->m16[s] = (int16_t)(32 * sc);
        }
        o->d = x86_f16(x + 208);
        o->dmin = 0.0f;
        break;
    }
}

/* ---- repacked ("sliced") quantized weights -------------------------------------------
 * Made once per model so that generation streams each weight byte once with
 * no transposes or gathers; both x86 levels use this layout (the AVX2
 * kernels read a slice as two halves of 8 rows). Rows go in groups of 16;
 * group g's block b (bb bytes per row) is the group-block at
 * P + (g * nb + b) * 16 * bb, the same bytes as the 16 rows' blocks,
 * reordered: slice j (64 bytes) holds bytes 4j..4j+3 of the block's body
 * for rows 0..15 (row i in 32-bit lane i). A block of 2 mod 4 bytes keeps
 * its f16 d (the first 2 bytes of Q4_0/Q5_0/Q8_0, the last 2 of Q3_K and
 * Q6_K) out of the body: the 16 rows' d follow the slices, 32 bytes.
 * Rows past the last whole group stay in the file's layout.
 *
 * Three types are recoded (x86_sl_recoded), the same size, so that the
 * kernels decode them with fewer operations; x2_unslice restores the
 * file's bytes. Q8_0's quants are stored as q ^ 0x80 (the unsigned operand
 * vpdpbusd takes). Q3_K's hmask bytes (slices 0..7; bit 4c + j is the
 * third bit of field j of qs[32c + ..]) have their bits reordered so that
 * each of fields 0..2 finds its third bit just above it, at bit 2j + 2:
 * bits 2, 4, 6 hold fields 0..2 of c = 0, bits 3, 5, 7 those of c = 1
 * (one shift away), bits 0, 1 field 3 of c = 0, 1. Q6_K's file layout
 * spreads a value over a low nibble and a 2-bit field in another byte, 17
 * logic operations per four slices of values; recoded, slice 24c + 3j + w
 * (c < 2, j < 8, w < 3) holds in byte b of lane i the 6-bit value 128c +
 * 32w + 4j + b of row i in bits 0..5 and bits 2w, 2w + 1 of value 128c +
 * 96 + 4j + b in bits 6..7: 9 operations decode the same four slices of
 * values. */
#define X86_PACK_ROWS 16
static inline int x86_sl_recoded(uint32_t type) {
    return type == INFER_TYPE_Q8_0 || type == INFER_TYPE_Q3_K || type == INFER_TYPE_Q6_K;
}

/* Offset of the body inside a file block (2 when d leads), the slice count
 * and the offset of the d array inside a group-block. */
static inline size_t x86_sl_lead(uint32_t type) {
    return x86_block_bytes(type) % 4 == 2 && x86_family_of(type) == X86_FAM_LEGACY ? 2 : 0;
}
static inline size_t x86_sl_n_slices(uint32_t type) { return x86_block_bytes(type) / 4; }
static inline size_t x86_sl_d_at(uint32_t type) { return 64 * x86_sl_n_slices(type); }

/* Bytes of one group's blocks (16 rows of n_cols values). */
static inline size_t x86_sl_group_bytes(uint32_t type, int64_t n_cols) {
    const int64_t per = x86_family_of(type) == X86_FAM_LEGACY ? X86_QK : X86_QKK;
    return (size_t)(n_cols / per) * 16 * x86_block_bytes(type);
}

/* Bytes of the sliced form of rows [0, n_rows / 16 * 16), 0 for a type or
 * shape that has none. Callers hold the whole tensor in memory, so this
 * cannot overflow. */
static inline size_t x86_sl_size(uint32_t type, int64_t n_rows, int64_t n_cols) {
    const x86_family fam = x86_family_of(type);
    if (fam != X86_FAM_LEGACY && fam != X86_FAM_K) return 0;
    const int64_t per = fam == X86_FAM_LEGACY ? X86_QK : X86_QKK;
    if (n_rows < 16 || n_cols <= 0 || n_cols % per != 0) return 0;
    return (size_t)(n_rows / 16) * x86_sl_group_bytes(type, n_cols);
}

/* avx2_repack.c (AVX2 code, which every AVX-512 machine runs): the sliced
 * form of whole groups of W written to P, and group-blocks [b0, b0 + nb)
 * of one group G back to 16 rows of the file's layout, row stride nb * bb
 * (for the batched matmuls' panel packing). */
void x2_pack_weights(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, void *P);
void x2_unslice(uint32_t type, const uint8_t *G, int64_t b0, int64_t nb, uint8_t *rows);

#endif
