/* test_kernels_simd.c - every entry of every SIMD kernel table this machine
 * runs (kernels_for(AVX2), (AVXVNNI), (AVX512); absent levels are skipped
 * with a message) against kernels/ref: the table, the activation
 * quantizers, the x86 levels and prefetch setting, dequantize and the
 * elementwise kernels here; the matmuls in test_kernels_simd_matmul.c;
 * whole models at every level in test_kernels_simd_model.c.
 *
 * Tolerances, and why:
 *   - quantize_act, quantized matmul, dequantize, add: bit for bit. The
 *     SIMD kernels compute the same integer block dots (exact in any order)
 *     and then the same float operations in the same order.
 *   - float matmul (F32/F16/BF16): |got - ref| <= n * 2^-24 * sum|w_i a_i|
 *     (+ the smallest normal): the reference sums in double, SIMD in float
 *     lanes; n * u * sum|products| bounds any float summation order of n
 *     products.
 *   - rms_norm: the sum of squares is in double in both, only the order
 *     differs, so at most the last bit of the scale: 4e-7 relative.
 *   - silu_mul, exp_sum: a polynomial exp within 2 ulp of expf, then a
 *     division: 1e-6 relative (the sum: 1e-6 relative).
 * Inputs include zeros, huge values, denormals, NaN/inf in activations, odd
 * block counts (1, 3, 7, 33), token counts 1, 2, 3, 5, 17, 64 and row counts
 * that are not multiples of the kernels' 8/16/32-row tiles; results must not
 * change when the rows are split between calls (as threads split them).
 */
#include <float.h>
#include <math.h>

#include "dispatch.h"
#include "infer_gguf.h"
#include "ref/quants.h"
#include "testutil.h"
#include "kernels_simd_testutil.h"

/* ======================= the table ========================================= */

Test(kernels_simd, every_entry_is_set) {
    FOR_EACH_LEVEL(kt) {
        cr_assert(kt->name && kt->vec_dot_type && kt->quantize_act && kt->matmul && kt->matmul_kn && kt->dequantize &&
                      kt->silu_mul &&
                      kt->add && kt->rms_norm && kt->exp_sum,
                  "%s: an entry is NULL", kt->name);
        for (uint32_t t = 0; t < INFER_TYPE_COUNT; t++)
            cr_assert_eq(kt->vec_dot_type(t), infer_ref_vec_dot_type(t), "%s: pairing of %u", kt->name, t);
    }
}

/* ======================= activation quantizers ================================ */

/* x quantized by the reference into a and by kt into b (bytes each, both
 * first filled with different junk): the same bytes? */
static int quantized_as_ref(const kernel_table *kt, uint32_t t, const float *x, int64_t n, uint8_t *a, uint8_t *b,
                            size_t bytes) {
    memset(a, 0xaa, bytes);
    memset(b, 0x55, bytes);
    infer_ref_quantize(t, x, a, n);
    kt->quantize_act(t, x, b, n);
    return memcmp(a, b, bytes) == 0;
}

Test(kernels_simd, quantize_act_bit_identical_to_ref) {
    static const uint32_t types[] = {INFER_TYPE_F32, INFER_TYPE_F16, INFER_TYPE_BF16,
                                     INFER_TYPE_Q8_0, INFER_TYPE_Q8_1, INFER_TYPE_Q8_K};
    static const int64_t blocks[] = {1, 3, 7, 33};
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const uint32_t t = types[ti];
            const int64_t bs = t == INFER_TYPE_Q8_K ? 256 : t == INFER_TYPE_Q8_0 || t == INFER_TYPE_Q8_1 ? 32 : 1;
            for (size_t bi = 0; bi < 4; bi++) {
                const int64_t n = bs == 1 ? blocks[bi] * 13 + 4 : blocks[bi] * bs;
                float *x = malloc(sizeof(float) * (size_t)n);
                const size_t bytes = row_size(t, n);
                uint8_t *a = malloc(bytes), *b = malloc(bytes);
                for (int kind = 0; kind < N_KINDS; kind++) {
                    fill(x, n, kind);
                    CHECK(nfail, quantized_as_ref(kt, t, x, n, a, b, bytes), "%s: %s n=%lld kind %d differs", kt->name,
                          infer_type_name(t), (long long)n, kind);
                }
                free(x), free(a), free(b);
            }
        }
        cr_assert_eq(nfail, 0);
    }
}

/* Long rows whose blocks each have their own scale (the kernels may
 * handle several blocks at once: each block's scale must stay its own),
 * with NaN, infinities and zero blocks among them. */
Test(kernels_simd, quantize_act_per_block_scales) {
    static const uint32_t types[] = {INFER_TYPE_Q8_0, INFER_TYPE_Q8_1, INFER_TYPE_Q8_K};
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const uint32_t t = types[ti];
            const int64_t bs = t == INFER_TYPE_Q8_K ? 256 : 32, nb = t == INFER_TYPE_Q8_K ? 9 : 71;
            const int64_t n = nb * bs;
            float *x = malloc(sizeof(float) * (size_t)n);
            const size_t bytes = row_size(t, n);
            uint8_t *a = malloc(bytes), *b = malloc(bytes);
            for (int round = 0; round < 4; round++) {
                for (int64_t i = 0; i < n; i++) {
                    const int64_t blk = i / bs;
                    const float scale = blk % 11 == 5 ? 0.0f : (float)(1 + (blk * 7 + round) % 13) * (blk % 3 ? 0.01f : 3.0f);
                    x[i] = scale * (float)((i * 37 + round * 11) % 101 - 50);
                }
                if (round >= 2) /* a few specials, in varying blocks and places */
                    for (int64_t k = 0; k < 6; k++) {
                        const int64_t at = (k * 997 + round * 131) % n;
                        x[at] = k % 3 == 0 ? NAN : k % 3 == 1 ? INFINITY : -INFINITY;
                    }
                CHECK(nfail, quantized_as_ref(kt, t, x, n, a, b, bytes), "%s: %s n=%lld round %d differs", kt->name,
                      infer_type_name(t), (long long)n, round);
            }
            free(x), free(a), free(b);
        }
        cr_assert_eq(nfail, 0);
    }
}

/* ======================= choosing the level ================================= */

/* The x86 levels from cpuid/xgetbv bits, as real CPUs report them. */
#define C1_BASE ((1u << 12) | (1u << 27) | (1u << 28) | (1u << 29)) /* FMA, OSXSAVE, AVX, F16C */
#define B7_AVX2 (1u << 5)
#define B7_512 ((1u << 16) | (1u << 17) | (1u << 30) | (1u << 31)) /* F, DQ, BW, VL */
#define C7_VNNI (1u << 11)
#define A7S1_AVXVNNI (1u << 4)

Test(kernels_simd, x86_levels_follow_the_cpu_features) {
    const kernels_x86_features haswell = {C1_BASE, B7_AVX2, 0, 0, 0x7};
    const kernels_x86_features skylake_x = {C1_BASE, B7_AVX2 | B7_512, 0, 0, 0xe7};
    const kernels_x86_features cascade_lake = {C1_BASE, B7_AVX2 | B7_512, C7_VNNI, 0, 0xe7};
    const kernels_x86_features knights_landing = {C1_BASE, B7_AVX2 | (1u << 16), 0, 0, 0xe7};
    const kernels_x86_features ivy_bridge = {(1u << 27) | (1u << 28) | (1u << 29), 0, 0, 0, 0x7};
    const kernels_x86_features alder_lake = {C1_BASE, B7_AVX2, 0, A7S1_AVXVNNI, 0x7};
    const kernels_x86_features sapphire_rapids = {C1_BASE, B7_AVX2 | B7_512, C7_VNNI, A7S1_AVXVNNI, 0xe7};
    cr_assert(kernels_x86_supports(INFER_ISA_AVX2, &haswell));
    cr_assert_not(kernels_x86_supports(INFER_ISA_AVXVNNI, &haswell));
    cr_assert_not(kernels_x86_supports(INFER_ISA_AVX512, &haswell));
    /* AVX-VNNI without AVX-512 (Intel client cores), and with it. */
    cr_assert(kernels_x86_supports(INFER_ISA_AVXVNNI, &alder_lake));
    cr_assert_not(kernels_x86_supports(INFER_ISA_AVX512, &alder_lake));
    cr_assert(kernels_x86_supports(INFER_ISA_AVXVNNI, &sapphire_rapids));
    cr_assert(kernels_x86_supports(INFER_ISA_AVX512, &sapphire_rapids));
    /* AVX-512 VNNI is not AVX-VNNI (its VEX form): Ice Lake, Zen 4. */
    cr_assert_not(kernels_x86_supports(INFER_ISA_AVXVNNI, &cascade_lake));
    /* AVX-512 without VNNI: the AVX-512 kernels would fault on vpdpbusd. */
    cr_assert(kernels_x86_supports(INFER_ISA_AVX2, &skylake_x));
    cr_assert_not(kernels_x86_supports(INFER_ISA_AVX512, &skylake_x));
    cr_assert(kernels_x86_supports(INFER_ISA_AVX512, &cascade_lake));
    cr_assert_not(kernels_x86_supports(INFER_ISA_AVX512, &knights_landing));
    cr_assert_not(kernels_x86_supports(INFER_ISA_AVX2, &ivy_bridge));
    cr_assert_not(kernels_x86_supports(INFER_ISA_NEON, &cascade_lake));
    cr_assert_not(kernels_x86_supports(INFER_ISA_REF, &cascade_lake));

    /* Each required bit, cleared alone, refuses the level. */
    for (int bit = 0; bit < 32; bit++) {
        const uint32_t m = 1u << bit;
        kernels_x86_features f = sapphire_rapids;
        f.leaf1_ecx &= ~m;
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVX2, &f), !(C1_BASE & m), "leaf 1 ECX bit %d", bit);
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVXVNNI, &f), !(C1_BASE & m), "leaf 1 ECX bit %d", bit);
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVX512, &f), !(C1_BASE & m), "leaf 1 ECX bit %d", bit);
        f = sapphire_rapids;
        f.leaf7_ebx &= ~m;
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVX2, &f), !(B7_AVX2 & m), "leaf 7 EBX bit %d", bit);
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVXVNNI, &f), !(B7_AVX2 & m), "leaf 7 EBX bit %d", bit);
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVX512, &f), !((B7_AVX2 | B7_512) & m), "leaf 7 EBX bit %d", bit);
        f = sapphire_rapids;
        f.leaf7_ecx &= ~m;
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVX512, &f), !(C7_VNNI & m), "leaf 7 ECX bit %d", bit);
        f = sapphire_rapids;
        f.leaf7s1_eax &= ~m;
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVXVNNI, &f), !(A7S1_AVXVNNI & m), "leaf 7.1 EAX bit %d", bit);
        cr_assert(kernels_x86_supports(INFER_ISA_AVX512, &f), "leaf 7.1 EAX bit %d", bit);
        f = sapphire_rapids;
        f.xcr0 &= ~(uint64_t)m;
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVX2, &f), !(0x6u & m), "XCR0 bit %d", bit);
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVXVNNI, &f), !(0x6u & m), "XCR0 bit %d", bit);
        cr_assert_eq(kernels_x86_supports(INFER_ISA_AVX512, &f), !(0xe6u & m), "XCR0 bit %d", bit);
    }
}

/* INFER_CPU_PREFETCH: exactly 0, 1 or 2 picks that style; anything else
 * keeps the CPU's own, whatever that is. */
Test(kernels_simd, prefetch_setting_parsed_exactly, .init = cr_redirect_stderr) {
    static const char *const UNKNOWN[] = {"3", "x", "01", "1 ", " 2", "-1", "2x", "near"};
    for (int c = KERNELS_PF_NONE; c <= KERNELS_PF_L2; c++) {
        const kernels_prefetch cpu = (kernels_prefetch)c;
        cr_assert_eq(kernels_prefetch_choose(NULL, cpu), cpu);
        cr_assert_eq(kernels_prefetch_choose("", cpu), cpu);
        cr_assert_eq(kernels_prefetch_choose("0", cpu), KERNELS_PF_NONE);
        cr_assert_eq(kernels_prefetch_choose("1", cpu), KERNELS_PF_L1);
        cr_assert_eq(kernels_prefetch_choose("2", cpu), KERNELS_PF_L2);
        for (size_t i = 0; i < sizeof UNKNOWN / sizeof UNKNOWN[0]; i++)
            cr_assert_eq(kernels_prefetch_choose(UNKNOWN[i], cpu), cpu, "INFER_CPU_PREFETCH='%s' with CPU style %d",
                         UNKNOWN[i], c);
    }
}

Test(kernels_simd, unknown_prefetch_setting_keeps_the_cpu_default, .init = cr_redirect_stderr) {
    setenv("INFER_CPU_PREFETCH", "fast", 1);
    cr_assert_eq(kernels_sw_prefetch(), kernels_prefetch_default());
    fflush(stderr);
    cr_assert_stderr_eq_str("infer: INFER_CPU_PREFETCH=fast: unknown (0 none, 1 near, 2 far), using the CPU's default\n");
}
/* ======================= dequantize, elementwise ================================== */

Test(kernels_simd, dequantize_bit_identical_to_ref) {
    static const uint32_t types[] = {INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q4_0,
                                     INFER_TYPE_Q4_1, INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0,
                                     INFER_TYPE_Q2_K, INFER_TYPE_Q3_K, INFER_TYPE_Q4_K, INFER_TYPE_Q5_K,
                                     INFER_TYPE_Q6_K};
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const uint32_t t = types[ti];
            const int64_t n = is_k(t) ? 3 * 256 : t == INFER_TYPE_F32 || t == INFER_TYPE_F16 || t == INFER_TYPE_BF16 ? 37 : 7 * 32;
            const size_t bytes = row_size(t, n);
            uint8_t *x = malloc(bytes);
            float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
            for (size_t i = 0; i < bytes; i++) x[i] = (uint8_t)test_rng(&rng);
            infer_ref_dequantize(t, x, a, n);
            kt->dequantize(t, x, b, n);
            for (int64_t i = 0; i < n; i++)
                CHECK(nfail, same(a[i], b[i]), "%s %s [%lld]: %a, ref %a", kt->name, infer_type_name(t), (long long)i, b[i], a[i]);
            free(x), free(a), free(b);
        }
        cr_assert_eq(nfail, 0);
    }
}

Test(kernels_simd, add_bit_identical) {
    static const int64_t ns[] = {1, 7, 16, 33, 1000};
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ni = 0; ni < 5; ni++) {
            const int64_t n = ns[ni];
            float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
            float *r1 = malloc(sizeof(float) * (size_t)n), *r2 = malloc(sizeof(float) * (size_t)n);
            fill(x, n, 4);
            fill(y, n, (int)ni % 4);
            memcpy(r1, x, sizeof(float) * (size_t)n);
            memcpy(r2, x, sizeof(float) * (size_t)n);
            kernels_ref.add(r1, y, (size_t)n);
            kt->add(r2, y, (size_t)n);
            for (int64_t i = 0; i < n; i++) CHECK(nfail, same(r1[i], r2[i]), "%s add [%lld]", kt->name, (long long)i);
            free(x), free(y), free(r1), free(r2);
        }
        cr_assert_eq(nfail, 0);
    }
}

static int close_rel(double got, double want, double rel) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= rel * fabs(want) + 1e-37;
}

Test(kernels_simd, rms_norm_silu_and_exp_within_an_ulp_or_two) {
    static const int64_t ns[] = {1, 7, 16, 33, 2048};
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ni = 0; ni < 5; ni++) {
            const int64_t n = ns[ni];
            float *x = malloc(sizeof(float) * (size_t)n), *w = malloc(sizeof(float) * (size_t)n);
            float *r1 = malloc(sizeof(float) * (size_t)n), *r2 = malloc(sizeof(float) * (size_t)n);
            for (int kind = 0; kind < 4; kind++) {
                fill(x, n, kind);
                fill(w, n, 0);
                kernels_ref.rms_norm(x, w, r1, n, 1e-5f);
                kt->rms_norm(x, w, r2, n, 1e-5f);
                for (int64_t i = 0; i < n; i++)
                    CHECK(nfail, close_rel(r2[i], r1[i], 4e-7), "%s rms_norm kind %d [%lld]: %g vs %g", kt->name, kind,
                          (long long)i, r2[i], r1[i]);
            }
            /* silu over a wide range, extremes and specials included; a
             * third of the gates above 87, where e^-gate would be a
             * denormal (the kernels' exp gives 0 there) */
            for (int64_t i = 0; i < n; i++)
                x[i] = i % 3 ? test_uniform(&rng, -30.0f, 30.0f) : test_uniform(&rng, 86.0f, 120.0f);
            if (n > 6) x[0] = 100.0f, x[1] = -100.0f, x[2] = INFINITY, x[3] = NAN, x[4] = 0.0f, x[5] = -1e-40f;
            fill(w, n, 0);
            memcpy(r1, x, sizeof(float) * (size_t)n);
            memcpy(r2, x, sizeof(float) * (size_t)n);
            kernels_ref.silu_mul(r1, w, (size_t)n);
            kt->silu_mul(r2, w, (size_t)n);
            for (int64_t i = 0; i < n; i++)
                CHECK(nfail, close_rel(r2[i], r1[i], 1e-6), "%s silu_mul(%g) [%lld]: %g vs %g", kt->name, x[i],
                      (long long)i, r2[i], r1[i]);
            /* exp_sum: softmax numerators of scores below their max, some
             * far below (expf gives denormals below -87.34 and 0 below
             * -103.97; the kernels give 0 below -86.6, never a denormal:
             * dispatch.h) */
            for (int64_t i = 0; i < n; i++) x[i] = test_uniform(&rng, i % 3 ? -90.0f : -130.0f, 0.0f);
            if (n > 3) x[1] = -INFINITY, x[2] = -86.0f, x[3] = -87.0f;
            double s_ref = 0.0;
            for (int64_t i = 0; i < n; i++) {
                r1[i] = expf(x[i] - 0.0f);
                s_ref += (double)r1[i];
            }
            const double s = kt->exp_sum(r2, x, n, 0.0f);
            CHECK(nfail, close_rel(s, s_ref, 1e-6), "%s exp_sum n=%lld: %g vs %g", kt->name, (long long)n, s, s_ref);
            for (int64_t i = 0; i < n; i++) {
                const int flushed = x[i] < -86.6f; /* X86_EXP_MIN */
                CHECK(nfail, flushed ? r2[i] == 0.0f : close_rel(r2[i], r1[i], 3e-7), "%s exp(%g): %g vs %g",
                      kt->name, x[i], r2[i], r1[i]);
                CHECK(nfail, r2[i] == 0.0f || r2[i] >= FLT_MIN, "%s exp(%g) = %g, a denormal", kt->name, x[i], r2[i]);
            }
            free(x), free(w), free(r1), free(r2);
        }
        cr_assert_eq(nfail, 0);
    }
}

/* A table's one-pass softmax (kernels_softmax) gives what the generic
 * composition of its own entries gives (kernels_softmax_generic: scale and
 * max, exp_sum, 1/sum, quantize_act), bit for bit: scores of every kind
 * (ordinary, huge and -inf, only signed zeros, denormals, a NaN), valid
 * counts around the 16-lane chunks, zero weights past them, each cache
 * type. A level without a softmax entry goes through the generic path. */
Test(kernels_simd, softmax_same_bits_as_its_steps) {
    static const int64_t nvs[] = {0, 1, 3, 15, 16, 17, 31, 100, 2000};
    static const int64_t pads[] = {0, 5, 16};
    static const uint32_t types[] = {INFER_TYPE_F32, INFER_TYPE_F16, INFER_TYPE_BF16};
    enum { N_MAX = 2000 + 16 + 1 }; /* the longest row and one byte past it */
    static float x[N_MAX], x1[N_MAX], x2[N_MAX], f1[N_MAX], f2[N_MAX];
    static uint8_t p1[4 * N_MAX], p2[4 * N_MAX];
    uint64_t sm_rng = 11;
    FOR_EACH_LEVEL(kt) {
        int nfail = 0, checked = 0;
        if (!kt->softmax) cr_log_info("%s: no softmax entry, the generic path", kt->name);
        for (size_t c = 0; c < sizeof nvs / sizeof nvs[0] * (sizeof pads / sizeof pads[0]) * 5; c++) { /* every (count, pad, kind) */
            const int kind = (int)(c % 5);
            const int64_t nv = nvs[c / 15], n = nv + pads[c / 5 % 3];
            for (int64_t i = 0; i < n; i++) {
                switch (kind) {
                case 0: x[i] = test_uniform(&sm_rng, -20.0f, 20.0f); break;
                case 1: x[i] = i % 3 == 0 ? -INFINITY : test_uniform(&sm_rng, -1e30f, 1e30f); break;
                case 2: x[i] = i % 2 ? -0.0f : 0.0f; break;
                case 3: x[i] = test_uniform(&sm_rng, -1.0f, 1.0f) * 1e-39f; break;
                default: x[i] = i == nv / 2 ? NAN : test_uniform(&sm_rng, -5.0f, 5.0f); break;
                }
            }
            for (size_t ti = 0; ti < 3; ti++) {
                const uint32_t t = types[ti];
                const float scale = ti == 1 ? 1.0f : 0.125f;
                const size_t es = t == INFER_TYPE_F32 ? 4 : 2;
                memcpy(x1, x, sizeof(float) * (size_t)n);
                memcpy(x2, x, sizeof(float) * (size_t)n);
                memset(p1, 0xaa, sizeof p1);
                memset(p2, 0x55, sizeof p2);
                float m1 = 1.0f, m2 = 2.0f;
                const double s1 = kernels_softmax_generic(kt, x1, nv, n, scale, t, p1, &m1);
                const double s2 = kernels_softmax(kt, x2, nv, n, scale, t, p2, &m2);
                CHECK(nfail, p1[(size_t)n * es] == 0xaa && p2[(size_t)n * es] == 0x55,
                      "%s softmax wrote past n = %lld", kt->name, (long long)n);
                /* the max as a value: which zero a row of zeros reports is not kept (either gives the same exps) */
                CHECK(nfail, m1 == m2 && (memcmp(&s1, &s2, sizeof s1) == 0 || (isnan(s1) && isnan(s2))),
                      "%s softmax %s kind %d n_valid %lld: max %a sum %a, steps %a %a", kt->name, infer_type_name(t),
                      kind, (long long)nv, m2, s2, m1, s1);
                if (kind == 0) { /* the max and sum a merge of blocks needs: the row's, recomputed */
                    float want_m = -INFINITY;
                    for (int64_t i = 0; i < nv; i++) want_m = x[i] * scale > want_m ? x[i] * scale : want_m;
                    double want_s = 0.0;
                    for (int64_t i = 0; i < nv; i++) want_s += exp((double)(x[i] * scale) - (double)want_m);
                    CHECK(nfail, m2 == want_m && fabs(s2 - want_s) <= 1e-5 * want_s,
                          "%s softmax n_valid %lld: max %a sum %.9g, want %a %.9g", kt->name, (long long)nv, m2, s2,
                          want_m, want_s);
                }
                kernels_ref.dequantize(t, p1, f1, n);
                kernels_ref.dequantize(t, p2, f2, n);
                for (int64_t i = 0; i < n; i++, checked++)
                    CHECK(nfail, same(f1[i], f2[i]) && (i < nv || fbits(f2[i]) == 0),
                          "%s softmax %s kind %d n_valid %lld n %lld [%lld]: %a, steps %a", kt->name,
                          infer_type_name(t), kind, (long long)nv, (long long)n, (long long)i, f2[i], f1[i]);
            }
        }
        cr_assert_eq(nfail, 0);
        cr_assert_gt(checked, 0);
    }
}
