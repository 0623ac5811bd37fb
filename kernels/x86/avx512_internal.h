/*
 * avx512_internal.h - what the AVX-512 kernel files (avx512*.c, compiled
 * with AVX-512 F/BW/VL/DQ/VNNI) share: panel sizes (x86_common.h explains
 * panels) and the entry points between the files.
 */
#ifndef INFER_KERNELS_AVX512_INTERNAL_H
#define INFER_KERNELS_AVX512_INTERNAL_H

#include "dispatch.h"
#include "x86_common.h"

#define X5_R 16 /* weight rows per panel: one zmm of int32 / float lanes */
#define X5_T 8  /* tokens per micro-kernel call */

/* Bytes of one panel block. */
#define X5_LEG_Q (8 * 64)                          /* 8 slices of 16 rows x 4 bytes */
#define X5_LEG_BLOCK (X5_LEG_Q + 2 * 64)           /* + d[16], m[16] */
#define X5_K_Q (64 * 64)                           /* 64 slices */
#define X5_K_SC X5_K_Q                             /* int32 sc[16][16] */
#define X5_K_M16 (X5_K_SC + 16 * 64)               /* int32 m16[8][16] */
#define X5_K_D (X5_K_M16 + 8 * 64)                 /* float d[16] */
#define X5_K_DMIN (X5_K_D + 64)                    /* float dmin[16] */
#define X5_K_BLOCK (X5_K_DMIN + 64)

/* avx512_pack.c: rows [0, nr) (nr <= 16; missing rows repeat the last) of
 * W, blocks [b0, b0 + nb), into panel blocks. */
void x5_pack_legacy(uint32_t type, const uint8_t *W, size_t row_bytes, int nr, int64_t b0, int64_t nb,
                    uint8_t *panel);
void x5_pack_k(uint32_t type, const uint8_t *W, size_t row_bytes, int nr, int64_t b0, int64_t nb, uint8_t *panel);

/* avx512_gemm.c: quantized weights (legacy and K families). */
void x5_matmul_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

/* avx512_gemv.c (legacy types) and avx512_gemv_k.c (K-quants): one
 * activation row against quantized weights, straight from the file's layout
 * (generation). 0 when the type has no such kernel. */
/* The generation kernels are built three times, one per prefetch style
 * (kernels_sw_prefetch()): near, into L1 (T0), ~3.4 KB ahead for the
 * legacy types and one super-block for the K-quants (Intel's; this file's
 * names); far, into L2 (T1), 6.75 KB and three super-blocks ahead
 * (avx512_gemv_l2.c / avx512_gemv_k_l2.c: X5_PREFETCH_L2, the _l2 names;
 * AMD's); and none (avx512_gemv_nopf.c / avx512_gemv_k_nopf.c:
 * X5_NO_PREFETCH, the _nopf names). X5_BY_PREFETCH calls the one the
 * process uses. X5_PF_DIST: how far
 * ahead the legacy types prefetch in a stream; X5_KPF_SB: how many
 * super-blocks ahead the K-quants do. */
#if defined(X5_NO_PREFETCH)
#define X5_PF(p) ((void)(p))
#define x5_gemv_quant x5_gemv_quant_nopf
#define x5_gemv_k x5_gemv_k_nopf
#define x5_gemv_packed x5_gemv_packed_nopf
#define x5_gemv_k_packed x5_gemv_k_packed_nopf
#elif defined(X5_PREFETCH_L2)
#define X5_PF(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)
#define X5_PF_DIST 6912
#define X5_KPF_SB 3
#define x5_gemv_quant x5_gemv_quant_l2
#define x5_gemv_k x5_gemv_k_l2
#define x5_gemv_packed x5_gemv_packed_l2
#define x5_gemv_k_packed x5_gemv_k_packed_l2
#else
#define X5_PF(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define X5_GEMV_VARIANT_DECL(sfx)                                                                                       \
    int x5_gemv_packed##sfx(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols,                 \
                            const uint8_t *act, float *out);                                                          \
    int x5_gemv_quant##sfx(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,            \
                           const void *act, float *out);
X5_GEMV_VARIANT_DECL(_nopf)
X5_GEMV_VARIANT_DECL(_l2)
#undef X5_GEMV_VARIANT_DECL
#endif
#ifndef X5_PF_DIST /* near (and none, where X5_PF does nothing) */
#define X5_PF_DIST 3456
#define X5_KPF_SB 1
#endif
int x5_gemv_quant(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                  const void *act, float *out);
int x5_gemv_k(uint32_t type, const uint8_t *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const uint8_t *act,
              float *out);

/* Repacked weights: the sliced layout of x86_common.h, made and undone by
 * avx2_repack.c (x2_pack_weights, x2_unslice). */
/* avx512_repack.c */
void x5_matmul_packed(uint32_t type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols, const void *act,
                      size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
/* avx512_gemv.c / avx512_gemv_k.c: one activation row against the groups
 * [g0, g0 + ng) of a repacked weight; 0 when the type has no such kernel. */
int x5_gemv_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const uint8_t *act,
                   float *out);
int x5_gemv_k_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const uint8_t *act,
                     float *out);
/* fn (x5_gemv_quant or x5_gemv_packed) in the build of prefetch style pf
 * (the process's: kernels_sw_prefetch()). */
#define X5_BY_PREFETCH(pf, fn, ...)                                                                                    \
    ((pf) == KERNELS_PF_NONE ? fn##_nopf(__VA_ARGS__) : (pf) == KERNELS_PF_L2 ? fn##_l2(__VA_ARGS__) : fn(__VA_ARGS__))
/* avx512_gemm.c: the batched matmul over whole groups of a repacked weight. */
void x5_gemm_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const void *act,
                    size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

/* avx512_float.c: F32, F16, BF16 weights. */
void x5_matmul_float(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                     const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);
void x5_matmul_float_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                        const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

#if defined(__GNUC__) && !defined(__clang__)
#define X5_UNROLL _Pragma("GCC unroll 16")
#else
#define X5_UNROLL _Pragma("unroll")
#endif
#define X5_INLINE static inline __attribute__((always_inline))
#define X5_NOINLINE __attribute__((noinline))

/* 4 bytes at p broadcast to the 16 lanes. */
X5_INLINE __m512i x5_bc32(const uint8_t *p) { return _mm512_broadcastd_epi32(_mm_loadu_si32((const void *)p)); }

/* acc + dpbusd(w, the 4 bytes at p in every lane), the broadcast folded
 * into the instruction's memory operand ({1to16}: one fused load-and-dot).
 * In assembly because GCC does not fold it, and keeps a broadcast that
 * several groups use in a register, spilled to the stack and reloaded as
 * 64 bytes. Callers launder their activation pointer once per group
 * (an empty asm) so that the groups' operands stay separate. The K-quant
 * generation kernels use it (Q4_K_M tg +3-4%, 7 alternating runs); the
 * legacy ones measured ~3% slower with it and keep the intrinsics. */
typedef int32_t x5_i32u __attribute__((may_alias, aligned(1)));
X5_INLINE __m512i x5_dpb(__m512i acc, __m512i w, const uint8_t *p) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const x5_i32u *)p));
    return acc;
}

/* The same 16 bytes (at off) of 16 rows as 4 slices: out[j] lane i holds
 * bytes off+4j .. off+4j+3 of rows[i]. Lane L of z[i] first gathers row
 * 4L + i; a 4x4 transpose of 32-bit words inside each 128-bit lane then
 * leaves row r's word j in lane r of out[j]. */
X5_INLINE void x5_tr16(const uint8_t *const rows[16], size_t off, __m512i out[4]) {
    __m512i z[4];
    X5_UNROLL for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)(rows[i] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[4 + i] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[8 + i] + off)), 2);
        z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[12 + i] + off)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* 4 slices of body bytes x..x+15 of a block, from the file's rows (packed
 * 0: x5_tr16 at off + x) or from a group-block G (packed 1; lead: the
 * body's offset in the file block). Identical registers either way. */
X5_INLINE void x5_ld16(const int packed, const uint8_t *const rows[16], size_t off, const uint8_t *G, size_t lead,
                       size_t x, __m512i out[4]) {
    if (packed) {
        X5_UNROLL for (int j = 0; j < 4; j++) out[j] = _mm512_loadu_si512((const void *)(G + 16 * (x - lead) + 64 * j));
    } else {
        x5_tr16(rows, off + x, out);
    }
}

/* Generation over repacked legacy-type weights (short blocks, little work
 * each) fetches X5_PF_DIST bytes ahead in each stream: near, ~3.4 KB into
 * L1 (measured on a noisy Intel machine: no worse than the hardware
 * prefetcher alone, up to ~1.4x better), or far, 6.75 KB into L2 (AMD). */
/* Prefetch the n bytes dist ahead of byte pos of a stream that starts at
 * S and has rem bytes left. Past its end a stream goes on jump bytes
 * further, in the same stream of the next set of groups (what this thread
 * reads next), instead of into the neighbouring stream, which is being
 * read already: the first ~3.4 KB of three streams in four then arrive
 * prefetched too (Q4_0 from memory, 2 threads: 0.93 -> 1.0 of a
 * four-stream read loop run beside it; the K-quants ~+2%, within noise). */
X5_INLINE void x5_prefetch_lines(const uint8_t *S, size_t pos, size_t n, size_t dist, size_t rem, size_t jump) {
    for (size_t l = 0; l < n; l += 64) {
        const size_t at = pos + dist + l;
        /* in integers: the address may lie past the weight (a prefetch never faults) */
        X5_PF((uintptr_t)S + at + (at >= rem ? jump : 0));
    }
}

/* The same lines for a whole block (n a block's bytes): the end test once,
 * unless the n bytes straddle the end (once per stream). The test per line
 * slowed the legacy kernels from cache by a fifth or more (one thread,
 * alternating runs: Q4_0 35 -> 43 GB/s, Q8_0 54 -> 66); from memory it is
 * within noise (Q4_0 tokens +0.4-0.8%). */
X5_INLINE void x5_prefetch_stream(const uint8_t *S, size_t pos, size_t n, size_t dist, size_t rem, size_t jump) {
    const size_t at = pos + dist;
    if (at + n > rem && at < rem) {
        x5_prefetch_lines(S, pos, n, dist, rem, jump);
        return;
    }
    const uintptr_t p = (uintptr_t)S + at + (at >= rem ? jump : 0);
    for (size_t l = 0; l < n; l += 64) X5_PF(p + l);
}

/* Generation over a repacked weight with nb blocks per row, pg groups at
 * a time from group g (groups before g_end exist): their group-blocks at
 * block b0 (the missing ones repeat group g; their sums are never stored)
 * and their running sums, 0 at b0 = 0, else what og (group g's outputs)
 * holds. Returns how many groups are real. */
X5_INLINE int x5_groups_begin(const uint8_t *P, int64_t g, int64_t g_end, int pg, int64_t nb, int64_t b0, size_t gb,
                              const float *og, const uint8_t **G, __m512 *f) {
    const int n = g_end - g < pg ? (int)(g_end - g) : pg;
    X5_UNROLL for (int k = 0; k < pg; k++) {
        const int gk = k < n ? k : 0;
        G[k] = P + ((size_t)(g + gk) * (size_t)nb + (size_t)b0) * gb;
        f[k] = b0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(og + 16 * gk);
    }
    return n;
}

/* Step i of four quarter streams over a run from group g0 whose quarters
 * are q groups each (nb blocks per row): group g0 + kq + i's group-block
 * for stream k, and its running sum 0. */
X5_INLINE void x5_quarters_begin(const uint8_t *P, int64_t g0, int64_t q, int64_t i, int64_t nb, size_t gb,
                                 const uint8_t **G, __m512 *f) {
    X5_UNROLL for (int k = 0; k < 4; k++) {
        G[k] = P + (size_t)(g0 + k * q + i) * (size_t)nb * gb;
        f[k] = _mm512_setzero_ps();
    }
}

/* Step i's four sums of quarter streams (x5_quarters_begin) into out,
 * which holds the run's outputs from group g0 on: stream k's group is
 * g0 + kq + i. */
X5_INLINE void x5_quarters_end(float *out, int64_t q, int64_t i, const __m512 *f) {
    X5_UNROLL for (int k = 0; k < 4; k++) _mm512_storeu_ps(out + 16 * (k * q + i), f[k]);
}

/* How many streams the four-stream kernels run for n (1..4) real
 * groups: 1 and 2 as they are, 3 as 4 (the first repeated). A run of one
 * group through the four-stream kernel computes it four times over, and
 * where the threads meet the runs are short: measured per token
 * (TinyLlama shapes, 2 threads, alternating in one process), Q4_K_M
 * +1.1-2.1%, Q4_0 +1.2-2.2%, Q8_0 +0.6-1.4%; three through a
 * three-stream instance: no change. */
X5_INLINE int x5_streams_for(int n) { return n >= 3 ? 4 : n; }

/* CALL(4), CALL(2) or CALL(1) for sn, a count x5_streams_for returned:
 * the one place that maps those counts to instances. CALL is a
 * macro, so each instance is called directly (through a function pointer
 * GCC cannot specialize them for their constant arguments: the four-stream
 * Q4_K kernel grew from ~2300 to ~5300 instructions and streamed 10-18%
 * slower). */
#define X5_BY_STREAMS(sn, CALL) \
    do {                        \
        if ((sn) == 4)          \
            CALL(4);            \
        else if ((sn) == 2)     \
            CALL(2);            \
        else                    \
            CALL(1);            \
    } while (0)

/* Q6_K's 6-bit values 128c + 32k + 4j .. + 3 (k = 0..3, one slice each)
 * from the file's slices: low nibbles ql[64c + l] (k = 0 low, 2 high) and
 * ql[64c + 32 + l] (k = 1, 3), 2-bit fields qh[32c + l] (bits 2k). */
X5_INLINE void x5_q6k_file_values(__m512i la, __m512i lb, __m512i hh, __m512i v[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    v[0] = _mm512_or_si512(_mm512_and_si512(la, m4), _mm512_and_si512(_mm512_slli_epi16(hh, 4), m30));
    v[1] = _mm512_or_si512(_mm512_and_si512(lb, m4), _mm512_and_si512(_mm512_slli_epi16(hh, 2), m30));
    v[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(la, 4), m4), _mm512_and_si512(hh, m30));
    v[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lb, 4), m4), _mm512_and_si512(_mm512_srli_epi16(hh, 2), m30));
}

/* The same four slices from Q6_K's recoded slices at S = G + 64 (24c + 3j). */
X5_INLINE void x5_q6k_values(const uint8_t *S, __m512i v[4]) {
    const __m512i m6 = _mm512_set1_epi8(0x3f), m3 = _mm512_set1_epi8(0x03), m4 = _mm512_set1_epi8(0x0f);
    const __m512i a = _mm512_loadu_si512((const void *)S), b = _mm512_loadu_si512((const void *)(S + 64));
    const __m512i c = _mm512_loadu_si512((const void *)(S + 128));
    v[0] = _mm512_and_si512(a, m6);
    v[1] = _mm512_and_si512(b, m6);
    v[2] = _mm512_and_si512(c, m6);
    /* bits 0-1 from a >> 6, 2-3 from b >> 4, 4-5 from c >> 2: bit selects
     * (ternary logic 0xe4: third operand ? first : second), then the mask */
    const __m512i t = _mm512_ternarylogic_epi32(_mm512_srli_epi16(a, 6), _mm512_srli_epi16(b, 4), m3, 0xe4);
    v[3] = _mm512_and_si512(_mm512_ternarylogic_epi32(t, _mm512_srli_epi16(c, 2), m4, 0xe4), m6);
}

/* The 16 rows' f16 d of a group-block whose d is out of the body. */
X5_INLINE __m512 x5_packed_d(const uint8_t *G, size_t d_at) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(G + d_at)));
}

/* The low / high f16 halves of 16 words as floats. */
X5_INLINE __m512 x5_f16_lo(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
X5_INLINE __m512 x5_f16_hi(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))); }

/* Lane value v (0..15) -> bit k of v moved to bit 4 of byte k (Q5's fifth
 * bits of 4 consecutive values). */
X5_INLINE __m512i x5_spread4(__m512i v) {
    const __m512i lut = _mm512_setr_epi32(0x00000000, 0x00000010, 0x00001000, 0x00001010, 0x00100000, 0x00100010,
                                          0x00101000, 0x00101010, 0x10000000, 0x10000010, 0x10001000, 0x10001010,
                                          0x10100000, 0x10100010, 0x10101000, 0x10101010);
    return _mm512_permutexvar_epi32(v, lut);
}

/* Bit `bit` (0..7) of every byte of h, moved to bit `to` (0..7): 16-bit
 * shifts whose result is masked per byte, so nothing crosses bytes. */
X5_INLINE __m512i x5_bit_to(__m512i h, int bit, int to) {
    const __m512i mask = _mm512_set1_epi8((char)(1 << to));
    if (bit >= to) return _mm512_and_si512(_mm512_srli_epi16(h, (unsigned)(bit - to)), mask);
    return _mm512_and_si512(_mm512_slli_epi16(h, (unsigned)(to - bit)), mask);
}

/* Horizontal sum of 16 floats in a fixed order. */
static inline float x5_hsum(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

#endif
