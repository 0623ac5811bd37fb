/*
 * avx2_gemv_p.c - one activation row against repacked weights (token
 * generation) at the AVX2 level: the sliced layout of x86_common.h, which
 * the AVX-512 level streams too. A slice is 16 rows x 4 bytes; here it is
 * two ymm halves, rows 0..7 and 8..15, each with its own float sums, and a
 * group-block's second half is read right after its first (from L1).
 *
 * AVX2 has no vpdpbusd: vpmaddubsw multiplies unsigned weight bytes by
 * signed activation bytes into int16 pair sums, which saturate past 2^15.
 * The weight values here are small (at most 63), so the pair sums of
 * several slices are added in int16 before one vpmaddwd widens them (or
 * applies a K-quant's sub-block scale, both int16 halves of a lane holding
 * it): Q4 values (<= 15) 8 slices, Q5 (<= 31) 4, Q6_K (<= 63) 2, each
 * bound written where it is used. Q8_0 is signed: |w| times the activation
 * with w's sign (vpsignb), exact because Q8_0 activations lie in
 * [-127, 127] (d = amax / 127), then widened per slice. Every integer is
 * the reference's, and the float work per block or super-block is its
 * own, in its order: bit-identical to kernels/ref.
 *
 * How many groups (streams) a thread reads at a time goes with the
 * process's prefetch style (kernels_sw_prefetch), which goes with the CPU's
 * vendor: one with the far style (L2, 6.75 KB or three super-blocks
 * ahead; AMD) or none, two with the near one (L1, 2.25 KB, or one
 * super-block split over the streams: leg_dist, k_lead; Intel). On the
 * Zen 4 development VM (2 threads from memory, alternating) one stream
 * beat two in every pair, +5-20% tokens/s
 * for TinyLlama-shaped Q4_0, Q8_0 and Q4_K_M; on an Intel Xeon (family 6
 * model 167, near prefetch) two beat one, INFER_CPU=avx2 tg64, two rounds
 * alternating builds (2026-11-24, with the leads below): Q4_0 43.6-46.7 ->
 * 52.8-53.7 t/s, Q8_0 23.7-24.2 -> 29.2-29.4, Q6_K 28.7 -> 30.2-30.6,
 * Q4_K_M 40.8-41.8 -> 43.6-43.7; four no better than two (measured a
 * session earlier); but Q2_K and Q3_K, bound by their arithmetic,
 * 2-6% slower, so they read one (k_instance). (The AVX-512 kernels, with
 * half the instructions per byte, read four.)
 */
#include "avx2_internal.h"
#include "dispatch.h"

#define UNROLL X2_UNROLL
#define INLINE X2_INLINE
#define NOINLINE __attribute__((noinline))
#define NG_MAX 2      /* most groups (streams) a thread reads at a time (leg_streams, k_instance) */
#define LEG_NB 512    /* legacy activation blocks prepared per chunk */
#define K_NSB 128     /* K-quant activation super-blocks prepared per chunk */

INLINE __m256i b8(int v) { return _mm256_set1_epi8((char)v); }
INLINE __m256i and8(__m256i v, int m) { return _mm256_and_si256(v, b8(m)); }
INLINE __m256i srl(__m256i v, int n) { return _mm256_srli_epi16(v, n); }
/* Half h (rows 8h .. 8h + 7) of slice s of the group-block at G. */
INLINE __m256i hs(const uint8_t *G, int s, int h) {
    return _mm256_loadu_si256((const __m256i *)(const void *)(G + 64 * s + 32 * h));
}
/* acc (int16 pair sums) + unsigned bytes u times the 4 activation bytes
 * at a, kept a chain (x2_acc16). */
INLINE __m256i dot16(__m256i acc, __m256i u, const uint8_t *a) { return x2_acc16(acc, u, x2_bc32(a)); }
/* acc + x in int32 lanes, kept in order in the same way. */
INLINE __m256i add32(__m256i acc, __m256i x) {
    acc = _mm256_add_epi32(acc, x);
    __asm__("" : "+x"(acc));
    return acc;
}
/* p as an opaque copy: GCC then loads the broadcasts made from it where
 * they are used, instead of keeping each in a register across the kernel
 * (16 ymm registers: spilled to the stack and reloaded). */
INLINE const uint8_t *launder(const uint8_t *p) {
    __asm__ volatile("" : "+r"(p)); /* volatile: two launders of one pointer are not merged */
    return p;
}
INLINE __m256i widen(__m256i acc) { return _mm256_madd_epi16(acc, _mm256_set1_epi16(1)); }
/* The 8 rows' f16 d of a group-block whose d is out of the body. */
INLINE __m256 packed_d(const uint8_t *G, size_t d_at, int h) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(G + d_at + 16 * (size_t)h)));
}

/* Prefetch styles: 0 none, 1 near (T0), 2 far (T1); addresses as integers
 * (they may lie past the weight: a prefetch never faults). */
INLINE void pf_line(const int pf, uintptr_t p) {
    if (pf == 1) _mm_prefetch((const char *)p, _MM_HINT_T0);
    else if (pf == 2) _mm_prefetch((const char *)p, _MM_HINT_T1);
}
/* How far ahead a legacy-type stream prefetches: 6.75 KB far; near
 * (two streams) 2.25 KB, which beat 3.4 KB (the AVX-512 kernels' distance,
 * where it makes no difference) in every alternating pair on the Intel
 * Xeon (INFER_CPU=avx2 tg64, three runs): Q4_0 +1-3%, Q4_1 +1-2%, Q5_0
 * +1-4%, Q8_0 +2-13%; 2 and 2.65 KB were about as good for Q4_0, less for
 * Q8_0. */
INLINE size_t leg_dist(const int pf) { return pf == 2 ? 6912 : 2304; }
/* Legacy-type groups read at a time with prefetch style pf (see the top;
 * the K-quants' counts are their instances', k_instance). */
INLINE int leg_streams(const int pf) { return pf == 1 ? 2 : 1; }
/* How far ahead of a K-quant super-block of group-block bytes gb its ns
 * streams prefetch: three super-blocks far; near, one super-block split
 * over the thread's streams, so the thread keeps about one
 * group-super-block in flight whatever their count. Intel Xeon (family 6
 * model 167), INFER_CPU=avx2 tg64, two rounds alternating builds: two
 * streams half a super-block ahead against one whole: Q4_K_M 43.5-44.8 ->
 * 45.5-46.0 t/s, Q5_K_M 36.0-37.0 -> 37.6-39.0, Q6_K 30.8-32.0 ->
 * 33.2-34.0; three quarters about the same, 2 or 3 super-blocks slower
 * (one thread from memory 16 -> 12-13 GB/s). The AVX-512 kernels' four
 * streams do best at one whole super-block (half: 2-9% slower). */
INLINE size_t k_lead(const int pf, int ns, size_t gb) { return pf == 2 ? 3 * gb : gb / (size_t)ns; }

/* Byte k (0..3) of every 32-bit lane in both int16 halves (K-quant scales,
 * 0..63): vpshufb within each 128-bit lane. */
INLINE __m256i pair_u8(__m256i v, int k) {
    const __m256i base = _mm256_setr_epi8(0, -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12, -128, 0, -128,
                                          0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12, -128);
    return _mm256_shuffle_epi8(v, _mm256_add_epi8(base, _mm256_set1_epi16((short)k)));
}
/* The same for signed bytes (Q6_K scales), sign-extended. */
INLINE __m256i pair_s8(__m256i v, int k) {
    const __m256i base = _mm256_setr_epi8(-128, 0, -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12, -128, 0,
                                          -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12);
    return _mm256_srai_epi16(_mm256_shuffle_epi8(v, _mm256_add_epi8(base, _mm256_set1_epi16((short)(k << 8)))), 8);
}

/* Q5's fifth bits of values 4i .. 4i + 3 (bits 4i.. of each lane of q)
 * at bit 4 of bytes 0..3. */
INLINE __m256i bits5(__m256i q, int i) {
    const __m256i at = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8,
                                        8, 12, 12, 12, 12);
    const __m256i mask = _mm256_set1_epi32((int)(0x08040201u << (4 * (i & 1))));
    const __m256i sel = _mm256_and_si256(_mm256_shuffle_epi8(q, _mm256_add_epi8(at, b8(i >> 1))), mask);
    return and8(_mm256_cmpeq_epi8(sel, mask), 0x10);
}

/* ---- legacy types ------------------------------------------------------------------------ */

/* One legacy group-block G into f[0] (rows 0..7) and f[1] (rows 8..15).
 * a: the activation block's quants; m: its metadata. */
INLINE void leg_block(const uint32_t type, const uint8_t *G, const uint8_t *a, const x86_leg_act *m, __m256 f[2]) {
    const int has_min = x86_legacy_has_min(type), q5 = type == INFER_TYPE_Q5_0 || type == INFER_TYPE_Q5_1;
    const int s0 = type == INFER_TYPE_Q4_1 || type == INFER_TYPE_Q5_0 ? 1 : type == INFER_TYPE_Q5_1 ? 2 : 0;
    const __m256i m4 = b8(0x0f);
    UNROLL for (int h = 0; h < 2; h++) {
        __m256 dv, mv = _mm256_setzero_ps();
        if (has_min) { /* d | m in slice 0 */
            const __m256i t0 = hs(G, 0, h);
            dv = x2_f16_half(t0, 0);
            mv = x2_f16_half(t0, 1);
        } else {
            dv = packed_d(G, x86_sl_d_at(type), h);
        }
        __m256i c;
        if (type == INFER_TYPE_Q8_0) { /* |w| x (a with w's sign): pair sums <= 2 * 128 * 127 */
            __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
            UNROLL for (int j = 0; j < 8; j++) {
                const __m256i w = _mm256_xor_si256(hs(G, j, h), b8(0x80));
                const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x2_bc32(a + 4 * j), w));
                if (j & 1) c1 = add32(c1, widen(p));
                else c0 = add32(c0, widen(p));
            }
            c = _mm256_add_epi32(c0, c1);
        } else {
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            const __m256i qh = q5 ? hs(G, s0 - 1, h) : _mm256_setzero_si256();
            UNROLL for (int j = 0; j < 4; j++) {
                const __m256i w = hs(G, s0 + j, h);
                __m256i wl = _mm256_and_si256(w, m4), wh = _mm256_and_si256(srl(w, 4), m4);
                if (q5) {
                    wl = _mm256_or_si256(wl, bits5(qh, j));
                    wh = _mm256_or_si256(wh, bits5(qh, 4 + j));
                }
                lo = dot16(lo, wl, a + 4 * j);
                hi = dot16(hi, wh, a + 16 + 4 * j);
            }
            /* Q4: 8 pair sums of <= 2 * 15 * 128 fit int16; Q5 (<= 31): 4 */
            c = q5 ? _mm256_add_epi32(widen(lo), widen(hi)) : widen(_mm256_add_epi16(lo, hi));
        }
        if (!has_min) c = _mm256_add_epi32(c, _mm256_set1_epi32(m->x.corr));
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(c), _mm256_mul_ps(dv, _mm256_set1_ps(m->da)));
        if (has_min) v = _mm256_add_ps(v, _mm256_mul_ps(mv, _mm256_set1_ps(m->x.sa)));
        f[h] = _mm256_add_ps(f[h], v);
    }
}

/* Blocks [0, n) of ng groups' streams G[k] (group-blocks gb bytes) into f. */
INLINE void leg_run(const int ng, const int pf, const uint32_t type, const uint8_t *const *G, int64_t n, size_t gb,
                    const uint8_t *a0, size_t ab, size_t qa, const x86_leg_act *meta, __m256 (*f)[2]) {
    for (int64_t b = 0; b < n; b++) {
        const size_t at = (size_t)b * gb;
        if (pf) {
            UNROLL for (int k = 0; k < ng; k++) {
                const uintptr_t p = (uintptr_t)G[k] + at + leg_dist(pf);
                for (size_t l = 0; l < gb; l += 64) pf_line(pf, p + l);
            }
        }
        UNROLL for (int k = 0; k < ng; k++) leg_block(type, G[k] + at, a0 + (size_t)b * ab + qa, &meta[b], f[k]);
    }
}

/* Where a run of up to ng groups from g starts (blocks at b0 of nb per
 * row) and its sums so far: 0 at b0 = 0, else what og (group g's outputs)
 * holds. Missing groups, and slots ng .. NG_MAX - 1 (a loop of constant
 * length: ng is not always known at compile time), repeat g; their sums
 * are never stored. Returns how many are real. */
INLINE int groups_begin(const int ng, const uint8_t *P, int64_t g, int64_t g_end, int64_t nb, int64_t b0, size_t gb,
                        const float *og, const uint8_t **G, __m256 (*f)[2]) {
    const int n = g_end - g < ng ? (int)(g_end - g) : ng;
    UNROLL for (int k = 0; k < NG_MAX; k++) {
        const int gk = k < n ? k : 0;
        G[k] = P + ((size_t)(g + gk) * (size_t)nb + (size_t)b0) * gb;
        UNROLL for (int h = 0; h < 2; h++) f[k][h] = b0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(og + 16 * gk + 8 * h);
    }
    return n;
}

INLINE void store_groups(float *o, int n, __m256 (*f)[2]) {
    for (int k = 0; k < n; k++) {
        _mm256_storeu_ps(o + 16 * k, f[k][0]);
        _mm256_storeu_ps(o + 16 * k + 8, f[k][1]);
    }
}

INLINE void gemv_legacy_packed(const int pf, const uint32_t type, const uint8_t *P, int64_t g0, int64_t ng,
                               int64_t n_cols, const uint8_t *act, float *out) {
    x86_leg_act meta[LEG_NB];
    const int64_t nb = n_cols / X86_QK;
    const int has_min = x86_legacy_has_min(type);
    const size_t gb = 16 * x86_block_bytes(type), ab = has_min ? 36 : 34, qa = has_min ? 4 : 2;
    const int ns = leg_streams(pf);
    for (int64_t b0 = 0; b0 < nb; b0 += LEG_NB) {
        const int64_t n = nb - b0 < LEG_NB ? nb - b0 : LEG_NB;
        const uint8_t *a0 = act + (size_t)b0 * ab;
        x86_prep_leg_act(type, a0, n, 0, meta); /* Q8_0 read signed: no offset */
        for (int64_t g = g0; g < g0 + ng; g += ns) {
            const uint8_t *G[NG_MAX];
            __m256 f[NG_MAX][2];
            const int npg = groups_begin(ns, P, g, g0 + ng, nb, b0, gb, out + 16 * (g - g0), G, f);
            leg_run(ns, pf, type, G, n, gb, a0, ab, qa, meta, f);
            store_groups(out + 16 * (g - g0), npg, f);
        }
    }
}

/* ---- K-quants: Q2_K .. Q6_K --------------------------------------------------------------------- */

/* Prefetch quarter p's share of the super-block lines of each stream
 * (po: k_lead's offset on). */
INLINE void k_prefetch(const int ng, const int pf, const uint32_t type, const uint8_t *const *G, size_t po, int p) {
    if (!pf) return;
    const size_t nl = (16 * x86_block_bytes(type) + 63) / 64;
    UNROLL for (int k = 0; k < ng; k++)
        for (size_t l = (size_t)p * nl / 4; l < (size_t)(p + 1) * nl / 4; l++) pf_line(pf, (uintptr_t)G[k] + po + 64 * l);
}

/* f plus a Q4_K / Q5_K super-block's sum (half h of group-block B) from
 * its integer part is (x2_q45k_finish). */
INLINE __m256 q45k_finish(const uint8_t *B, int h, __m256i is, const x86_kact *m, __m256 f) {
    const __m256i t0 = hs(B, 0, h), t2 = hs(B, 2, h), t3 = hs(B, 3, h);
    const __m256i mn_lo = and8(t2, 0x3f), mn_hi = _mm256_or_si256(and8(srl(t3, 4), 0x0f), and8(srl(t2, 2), 0x30));
    return x2_q45k_finish(t0, mn_lo, mn_hi, is, m, f);
}

/* The 6-bit scales of Q4_K / Q5_K sub-blocks 4q .. 4q + 3 (q = 0, 1) in
 * bytes 0..3 of each lane: 0..3 the low 6 bits of slice 1; 4..7 the low
 * nibbles of slice 3 with slice 1's top 2 bits. */
INLINE __m256i q45k_scales(const uint8_t *B, int h, int q) {
    const __m256i t1 = hs(B, 1, h);
    return q == 0 ? and8(t1, 0x3f) : _mm256_or_si256(and8(hs(B, 3, h), 0x0f), and8(srl(t1, 2), 0x30));
}

/* One Q4_K super-block of ng groups, quarter by quarter: slice j of
 * quarter p (values 64p + 4j .., low nibbles, and 64p + 32 + 4j .., high)
 * from each group in turn, both halves. A sub-block's 8 pair sums (<= 2 *
 * 15 * 128 each) add up in int16 and one vpmaddwd applies its scale. */
INLINE void q4k_sb(const int ng, const int pf, const uint8_t *const *G, size_t at, size_t po, const uint8_t *aq,
                   const x86_kact *m, __m256 (*f)[2]) {
    const __m256i m4 = b8(0x0f);
    __m256i is[NG_MAX][2];
    UNROLL for (int k = 0; k < ng; k++) is[k][0] = is[k][1] = _mm256_setzero_si256();
    UNROLL for (int p = 0; p < 4; p++) {
        k_prefetch(ng, pf, INFER_TYPE_Q4_K, G, po, p);
        UNROLL for (int h = 0; h < 2; h++) {
            __m256i lo[NG_MAX], hi[NG_MAX];
            const uint8_t *a = launder(aq);
            UNROLL for (int k = 0; k < ng; k++) lo[k] = hi[k] = _mm256_setzero_si256();
            UNROLL for (int j = 0; j < 8; j++) {
                const __m256i al = x2_bc32(a + 64 * p + 4 * j), ah = x2_bc32(a + 64 * p + 32 + 4 * j);
                UNROLL for (int k = 0; k < ng; k++) {
                    const __m256i w = hs(G[k] + at, 4 + 8 * p + j, h);
                    lo[k] = x2_acc16(lo[k], _mm256_and_si256(w, m4), al);
                    hi[k] = x2_acc16(hi[k], _mm256_and_si256(srl(w, 4), m4), ah);
                }
            }
            UNROLL for (int k = 0; k < ng; k++) {
                const __m256i sc = q45k_scales(G[k] + at, h, p >> 1);
                is[k][h] = add32(is[k][h], _mm256_madd_epi16(lo[k], pair_u8(sc, (2 * p) & 3)));
                is[k][h] = add32(is[k][h], _mm256_madd_epi16(hi[k], pair_u8(sc, (2 * p + 1) & 3)));
            }
        }
    }
    UNROLL for (int k = 0; k < ng; k++)
        UNROLL for (int h = 0; h < 2; h++) f[k][h] = q45k_finish(G[k] + at, h, is[k][h], m, f[k][h]);
}

/* Bit `bit` of every byte moved to bit 4 (16-bit shifts, masked per byte). */
INLINE __m256i bit4(__m256i v, int bit) {
    return and8(bit >= 4 ? srl(v, bit - 4) : _mm256_slli_epi16(v, 4 - bit), 0x10);
}

/* Q5_K as Q4_K, the values' fifth bits from slice 4 + j (bits 2p, 2p + 1):
 * values reach 31, so 4 pair sums (<= 2 * 31 * 128) at a time in int16. */
INLINE void q5k_sb(const int ng, const int pf, const uint8_t *const *G, size_t at, size_t po, const uint8_t *aq,
                   const x86_kact *m, __m256 (*f)[2]) {
    const __m256i m4 = b8(0x0f);
    __m256i is[NG_MAX][2];
    UNROLL for (int k = 0; k < ng; k++) is[k][0] = is[k][1] = _mm256_setzero_si256();
    UNROLL for (int p = 0; p < 4; p++) {
        k_prefetch(ng, pf, INFER_TYPE_Q5_K, G, po, p);
        UNROLL for (int h = 0; h < 2; h++) {
            UNROLL for (int k = 0; k < ng; k++) {
                const uint8_t *B = G[k] + at, *a = launder(aq), *Bq = launder(B); /* high-bit slices reloaded per quarter */
                const __m256i sc = q45k_scales(B, h, p >> 1);
                const __m256i sl = pair_u8(sc, (2 * p) & 3), sh = pair_u8(sc, (2 * p + 1) & 3);
                UNROLL for (int j0 = 0; j0 < 8; j0 += 4) {
                    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
                    UNROLL for (int j = j0; j < j0 + 4; j++) {
                        const __m256i w = hs(B, 12 + 8 * p + j, h), q = hs(Bq, 4 + j, h);
                        const __m256i wl = _mm256_or_si256(_mm256_and_si256(w, m4), bit4(q, 2 * p));
                        const __m256i wh = _mm256_or_si256(_mm256_and_si256(srl(w, 4), m4), bit4(q, 2 * p + 1));
                        lo = dot16(lo, wl, a + 64 * p + 4 * j);
                        hi = dot16(hi, wh, a + 64 * p + 32 + 4 * j);
                    }
                    is[k][h] = add32(is[k][h], _mm256_madd_epi16(lo, sl));
                    is[k][h] = add32(is[k][h], _mm256_madd_epi16(hi, sh));
                }
            }
        }
    }
    UNROLL for (int k = 0; k < ng; k++)
        UNROLL for (int h = 0; h < 2; h++) f[k][h] = q45k_finish(G[k] + at, h, is[k][h], m, f[k][h]);
}

/* One Q6_K super-block of ng groups: quarter p = 2c + q takes slice
 * triples i = 0..3 (recoded slices 24c + 3(4q + i) ..), values 128c + 32t
 * + 16q + 4i .. of sub-block 8c + 2t + q for t = 0..3 (scales in slices 48
 * + 2c, 49 + 2c). Two pair sums (<= 2 * 63 * 128) at a time in int16, then
 * one vpmaddwd with the signed scale. The offset 32 comes back through 32
 * * sum(scale x group sum). */
INLINE void q6k_sb(const int ng, const int pf, const uint8_t *const *G, size_t at, size_t po, const uint8_t *aq,
                   const x86_kact *m, __m256 (*f)[2]) {
    __m256i is[NG_MAX][2];
    UNROLL for (int k = 0; k < ng; k++) is[k][0] = is[k][1] = _mm256_setzero_si256();
    UNROLL for (int p = 0; p < 4; p++) {
        const int c = p >> 1, q = p & 1;
        k_prefetch(ng, pf, INFER_TYPE_Q6_K, G, po, p);
        UNROLL for (int h = 0; h < 2; h++) {
            UNROLL for (int k = 0; k < ng; k++) {
                const uint8_t *B = G[k] + at, *a = launder(aq);
                const __m256i m6 = b8(0x3f);
                UNROLL for (int i0 = 0; i0 < 4; i0 += 2) {
                    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                                      _mm256_setzero_si256()};
                    UNROLL for (int i = i0; i < i0 + 2; i++) { /* x2_q6k_values, each value used as it comes */
                        const uint8_t *S = B + 64 * (24 * c + 3 * (4 * q + i)) + 32 * h, *aa = a + 128 * c + 4 * (4 * q + i);
                        const __m256i x0 = hs(S, 0, 0), x1 = hs(S, 1, 0), x2 = hs(S, 2, 0);
                        acc[0] = dot16(acc[0], _mm256_and_si256(x0, m6), aa);
                        acc[1] = dot16(acc[1], _mm256_and_si256(x1, m6), aa + 32);
                        acc[2] = dot16(acc[2], _mm256_and_si256(x2, m6), aa + 64);
                        const __m256i v3 = _mm256_or_si256(_mm256_or_si256(and8(srl(x0, 6), 0x03), and8(srl(x1, 4), 0x0c)),
                                                           and8(srl(x2, 2), 0x30));
                        acc[3] = dot16(acc[3], v3, aa + 96);
                    }
                    /* sub-blocks 8c + 2t + q: bytes q, q + 2 of slices 48 + 2c (t = 0, 1) and 49 + 2c (t = 2, 3),
                     * loaded again for each i0 (from L1) rather than kept in registers */
                    const uint8_t *Bs = launder(B);
                    UNROLL for (int t = 0; t < 4; t++)
                        is[k][h] = add32(is[k][h], _mm256_madd_epi16(acc[t], pair_s8(hs(Bs, 48 + 2 * c + (t >> 1), h), q + 2 * (t & 1))));
                }
            }
        }
    }
    UNROLL for (int k = 0; k < ng; k++) {
        const uint8_t *B = G[k] + at;
        UNROLL for (int h = 0; h < 2; h++) {
            __m256i corr = _mm256_setzero_si256();
            UNROLL for (int s = 0; s < 4; s++) {
                const __m256i sc = hs(B, 48 + s, h);
                corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_srai_epi16(_mm256_slli_epi16(sc, 8), 8),
                                                                _mm256_set1_epi32(m->pair[2 * s])));
                corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_srai_epi16(sc, 8), _mm256_set1_epi32(m->pair[2 * s + 1])));
            }
            corr = _mm256_slli_epi32(corr, 5);
            const __m256 dd = _mm256_mul_ps(packed_d(B, x86_sl_d_at(INFER_TYPE_Q6_K), h), _mm256_set1_ps(m->da));
            f[k][h] = _mm256_add_ps(f[k][h], _mm256_mul_ps(dd, _mm256_cvtepi32_ps(_mm256_sub_epi32(is[k][h], corr))));
        }
    }
}

/* One Q2_K (q3 0) or Q3_K (q3 1) super-block of ng groups: quarter p =
 * 2c + v takes the 4 slices of qs[32c + 16v ..] (Q2_K's slices 4 + 8c +
 * 4v + q, Q3_K's 8 + ...): field j of slice q is values 128c + 32j + 16v +
 * 4q .., of sub-block 8c + 2j + v. Fields 0, 1 come from the byte, 2, 3
 * from it shifted down 4; fields 1 and 3 are masked in place (4x). Q3_K
 * joins each field's third bit from the recoded hmask slices 4v + q
 * (x86_common.h: bits 2, 4, 6 fields 0..2 of c = 0, bits 3, 5, 7 those of
 * c = 1, bits 0, 1 field 3), moved to just above it and masked. Values <=
 * 3 (Q3_K 7), 4x <= 12 (28): a sub-block's 4 pair sums (<= 4 * 2 * 28 *
 * 128 < 2^15) add up in int16, one vpmaddwd applies its scale, and the 4x
 * sums are shifted back once, exactly, at the end. Q3_K's biased scales of
 * both halves are decoded once per super-block (x2_q3k_scales) onto the
 * stack. */
INLINE void q23k_sb(const int q3, const int ng, const int pf, const uint8_t *const *G, size_t at, size_t po,
                    const uint8_t *aq, const x86_kact *m, __m256 (*f)[2]) {
    __m256i is[NG_MAX][2], is4[NG_MAX][2];
    _Alignas(32) uint8_t sv[NG_MAX][2][4][32];
    UNROLL for (int k = 0; k < ng; k++) {
        is[k][0] = is[k][1] = is4[k][0] = is4[k][1] = _mm256_setzero_si256();
        UNROLL for (int h = 0; h < 2 && q3; h++) {
            __m256i V[4];
            x2_q3k_scales(hs(G[k] + at, 24, h), hs(G[k] + at, 25, h), hs(G[k] + at, 26, h), V);
            UNROLL for (int q = 0; q < 4; q++) _mm256_store_si256((__m256i *)(void *)sv[k][h][q], V[q]);
        }
    }
    UNROLL for (int p = 0; p < 4; p++) {
        const int c = p >> 1, v = p & 1;
        k_prefetch(ng, pf, q3 ? INFER_TYPE_Q3_K : INFER_TYPE_Q2_K, G, po, p);
        UNROLL for (int h = 0; h < 2; h++) {
            UNROLL for (int k = 0; k < ng; k++) {
                const uint8_t *B = G[k] + at, *a = launder(aq) + 128 * c + 16 * v;
                __m256i ch[4];
                UNROLL for (int j = 0; j < 4; j++) ch[j] = _mm256_setzero_si256();
                UNROLL for (int q = 0; q < 4; q++) {
                    const __m256i w = hs(B, (q3 ? 8 : 4) + 8 * c + 4 * v + q, h), w4 = srl(w, 4);
                    __m256i u[4] = {and8(w, 0x03), and8(w, 0x0c), and8(w4, 0x03), and8(w4, 0x0c)};
                    if (q3) { /* third bits to 2 (fields 0, 2) or 4 (fields 1, 3) */
                        const __m256i hm = hs(B, 4 * v + q, h), h01 = c ? srl(hm, 1) : hm;
                        u[0] = _mm256_or_si256(u[0], and8(h01, 0x04));
                        u[1] = _mm256_or_si256(u[1], and8(h01, 0x10));
                        u[2] = _mm256_or_si256(u[2], and8(srl(hm, c ? 5 : 4), 0x04));
                        u[3] = _mm256_or_si256(u[3], and8(_mm256_slli_epi16(hm, c ? 3 : 4), 0x10));
                    }
                    UNROLL for (int j = 0; j < 4; j++) ch[j] = dot16(ch[j], u[j], a + 32 * j + 4 * q);
                }
                /* sub-block 8c + 2j + v: byte 2(j & 1) + v of the scales of sub-blocks 8c + 4(j / 2) .. */
                const __m256i s01 = q3 ? _mm256_load_si256((const __m256i *)(const void *)sv[k][h][2 * c]) : and8(hs(B, 2 * c, h), 0x0f);
                const __m256i s23 = q3 ? _mm256_load_si256((const __m256i *)(const void *)sv[k][h][2 * c + 1])
                                       : and8(hs(B, 2 * c + 1, h), 0x0f);
                UNROLL for (int j = 0; j < 4; j++) {
                    __m256i sc = pair_u8(j < 2 ? s01 : s23, 2 * (j & 1) + v);
                    if (q3) sc = _mm256_sub_epi16(sc, _mm256_set1_epi16(32)); /* the bias */
                    if (j & 1) is4[k][h] = add32(is4[k][h], _mm256_madd_epi16(ch[j], sc));
                    else is[k][h] = add32(is[k][h], _mm256_madd_epi16(ch[j], sc));
                }
            }
        }
    }
    UNROLL for (int k = 0; k < ng; k++) {
        const uint8_t *B = G[k] + at;
        UNROLL for (int h = 0; h < 2; h++) {
            const __m256i isum = _mm256_add_epi32(is[k][h], _mm256_srai_epi32(is4[k][h], 2));
            __m256i V[4];
            if (q3) {
                UNROLL for (int q = 0; q < 4; q++) V[q] = _mm256_load_si256((const __m256i *)(const void *)sv[k][h][q]);
                f[k][h] = x2_q3k_finish(V, packed_d(B, x86_sl_d_at(INFER_TYPE_Q3_K), h), isum, m, f[k][h]);
            } else {
                UNROLL for (int q = 0; q < 4; q++) V[q] = hs(B, q, h);
                f[k][h] = x2_q2k_finish(V, hs(B, 20, h), isum, m, f[k][h]);
            }
        }
    }
}
INLINE void q2k_sb(const int ng, const int pf, const uint8_t *const *G, size_t at, size_t po, const uint8_t *aq,
                   const x86_kact *m, __m256 (*f)[2]) {
    q23k_sb(0, ng, pf, G, at, po, aq, m, f);
}
INLINE void q3k_sb(const int ng, const int pf, const uint8_t *const *G, size_t at, size_t po, const uint8_t *aq,
                   const x86_kact *m, __m256 (*f)[2]) {
    q23k_sb(1, ng, pf, G, at, po, aq, m, f);
}

/* Instances per stream count and prefetch style, called directly (a
 * function pointer would keep GCC from specializing them). */
typedef void sb_fn(const uint8_t *const *G, size_t at, size_t po, const uint8_t *aq, const x86_kact *m, __m256 (*f)[2]);
#define SB_INST(name, ng, pf)                                                                                   \
    NOINLINE static void name##_##ng##_##pf(const uint8_t *const *G, size_t at, size_t po, const uint8_t *aq,     \
                                            const x86_kact *m, __m256 (*f)[2]) {                                  \
        name(ng, pf, G, at, po, aq, m, f);                                                                        \
    }
/* One stream with no prefetch or the far style, n1 with the near one
 * (see the top): Q2_K and Q3_K, bound by their arithmetic here, one (two:
 * 2-6% slower), the others two. */
#define SB_ALL(name, n1) SB_INST(name, 1, 0) SB_INST(name, n1, 1) SB_INST(name, 1, 2)
SB_ALL(q2k_sb, 1) SB_ALL(q3k_sb, 1) SB_ALL(q4k_sb, 2) SB_ALL(q5k_sb, 2) SB_ALL(q6k_sb, 2)

/* The instance of a type for prefetch style pf, and how many streams
 * (groups at a time) it reads. */
typedef struct {
    sb_fn *fn;
    int ng;
} k_inst;
static k_inst k_instance(uint32_t type, int pf) {
#define SB_ROW(name, n1) {{name##_1_0, 1}, {name##_##n1##_1, n1}, {name##_1_2, 1}}
    static const k_inst fns[5][3] = {SB_ROW(q2k_sb, 1), SB_ROW(q3k_sb, 1), SB_ROW(q4k_sb, 2), SB_ROW(q5k_sb, 2),
                                     SB_ROW(q6k_sb, 2)};
#undef SB_ROW
    const int t = type == INFER_TYPE_Q2_K   ? 0
                  : type == INFER_TYPE_Q3_K ? 1
                  : type == INFER_TYPE_Q4_K ? 2
                  : type == INFER_TYPE_Q5_K ? 3
                                            : 4;
    return fns[t][pf];
}

static void gemv_k_packed(const int pf, const uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols,
                          const uint8_t *act, float *out) {
    x86_kact meta[K_NSB];
    const int64_t nsb = n_cols / X86_QKK;
    const k_inst in = k_instance(type, pf);
    sb_fn *const fn = in.fn;
    const int ns = in.ng;
    const size_t gb = 16 * x86_block_bytes(type), lead = k_lead(pf, ns, gb);
    for (int64_t c0 = 0; c0 < nsb; c0 += K_NSB) {
        const int64_t n = nsb - c0 < K_NSB ? nsb - c0 : K_NSB;
        x86_prep_kact(type, act + (size_t)c0 * 292, n, meta);
        for (int64_t g = g0; g < g0 + ng; g += ns) {
            const uint8_t *G[NG_MAX];
            __m256 f[NG_MAX][2];
            const int npg = groups_begin(ns, P, g, g0 + ng, nsb, c0, gb, out + 16 * (g - g0), G, f);
            for (int64_t sb = 0; sb < n; sb++) {
                const size_t at = (size_t)sb * gb;
                fn(G, at, at + lead, act + (size_t)(c0 + sb) * 292 + 4, &meta[sb], f);
            }
            store_groups(out + 16 * (g - g0), npg, f);
        }
    }
}

/* ---- entry ------------------------------------------------------------------------------------ */

size_t x2_packed_size(uint32_t type, int64_t n_rows, int64_t n_cols) { return x86_sl_size(type, n_rows, n_cols); }

int x2_gemv_packed(uint32_t type, const uint8_t *P, int64_t g0, int64_t ng, int64_t n_cols, const uint8_t *act,
                   float *out) {
    const int pf = (int)kernels_sw_prefetch();
    switch (type) {
    case INFER_TYPE_Q2_K:
    case INFER_TYPE_Q3_K:
    case INFER_TYPE_Q4_K:
    case INFER_TYPE_Q5_K:
    case INFER_TYPE_Q6_K: gemv_k_packed(pf, type, P, g0, ng, n_cols, act, out); return 1;
    default: break;
    }
#define LEG(T)                                                                                                   \
    case T:                                                                                                      \
        if (pf == 2) gemv_legacy_packed(2, T, P, g0, ng, n_cols, act, out);                                     \
        else if (pf == 1) gemv_legacy_packed(1, T, P, g0, ng, n_cols, act, out);                                \
        else gemv_legacy_packed(0, T, P, g0, ng, n_cols, act, out);                                             \
        return 1;
    switch (type) {
        LEG(INFER_TYPE_Q4_0)
        LEG(INFER_TYPE_Q4_1)
        LEG(INFER_TYPE_Q5_0)
        LEG(INFER_TYPE_Q5_1)
        LEG(INFER_TYPE_Q8_0)
    default: return 0;
    }
#undef LEG
}
