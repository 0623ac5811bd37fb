/* kernels_simd_testutil.h - helpers shared by the kernels_simd suites
 * (test_kernels_simd.c, test_kernels_simd_matmul.c,
 * test_kernels_simd_model.c), beside the reference suites' ones
 * (kernels_ref_util.h: CHECK, row sizes, bit casts): FOR_EACH_LEVEL over
 * the SIMD kernel tables this machine runs (logging the absent ones);
 * bit-identical comparison (any NaN matching any NaN); activation-like
 * inputs of every kind from a fixed seed. Header-only; each suite file
 * gets its own static copy (and its own rng, which starts from the seed in
 * every test's process). */
#ifndef INFER_TEST_KERNELS_SIMD_TESTUTIL_H
#define INFER_TEST_KERNELS_SIMD_TESTUTIL_H

#include <float.h>
#include <math.h>

#include "dispatch.h"
#include "kernels_ref_util.h" /* CHECK, row_size, fbits */

/* The SIMD levels this build and machine have (logging the others). */
static inline int simd_levels(const kernel_table **out) {
    static const infer_isa want[] = {INFER_ISA_AVX2, INFER_ISA_AVXVNNI, INFER_ISA_AVX512};
    static const char *const names[] = {"avx2", "avxvnni", "avx512"};
    int n = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const kernel_table *kt = kernels_for(want[i]);
        if (kt) out[n++] = kt;
        else cr_log_info("%s: not available on this machine or build, skipped", names[i]);
    }
    return n;
}

#define FOR_EACH_LEVEL(kt)                                                          \
    const kernel_table *levels_[4];                                                 \
    const int n_levels_ = simd_levels(levels_);                                     \
    if (n_levels_ == 0) cr_skip_test("no SIMD kernel level on this machine");       \
    for (int li_ = 0; li_ < n_levels_; li_++)                                       \
        for (const kernel_table *kt = levels_[li_]; kt; kt = NULL)

/* Bit-identical, any NaN matching any NaN. */
static inline int same(float a, float b) { return (isnan(a) && isnan(b)) || fbits(a) == fbits(b); }

static uint64_t rng = 0x5eed;

/* Activation-like floats of a kind: 0 random, 1 zero, 2 huge, 3 denormal,
 * 4 mixed (specials, ties, wide magnitudes). */
#define N_KINDS 5
static inline void fill(float *x, int64_t n, int kind) {
    static const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, -2.5f, 127.5f, 1e30f, -1e30f, FLT_MAX,
                                     1e-40f, -1e-42f, FLT_MIN, INFINITY, -INFINITY, NAN, 3.0f, -3.0f};
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = test_uniform(&rng, -3.0f, 3.0f); break;
        case 1: x[i] = 0.0f; break;
        case 2: x[i] = test_uniform(&rng, -1.0f, 1.0f) * 1e37f; break;
        case 3: x[i] = test_uniform(&rng, -1.0f, 1.0f) * 1e-39f; break;
        default:
            x[i] = (test_rng(&rng) & 3) ? test_uniform(&rng, -1.0f, 1.0f) * powf(10.0f, test_uniform(&rng, -20, 20))
                                        : specials[test_rng(&rng) % (sizeof specials / sizeof specials[0])];
        }
    }
}

static inline int is_k(uint32_t t) { return t >= INFER_TYPE_Q2_K && t <= INFER_TYPE_Q6_K; }

#endif
