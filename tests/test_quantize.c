/* test_quantize.c - the K-quant weight quantizers (kernels/ref/quantize_k.c);
 * the tools built on them, infer-quantize and infer-synth, are tested in
 * test_quantize_tool.c and test_quantize_synth.c.
 *
 *   quantize_k       round trip error bounds on random data, zero and
 *                    degenerate blocks, hostile values (UBSan watches the
 *                    float->int conversions), blocks independent of each other
 *   quantize_k_real  byte-identity with llama-quantize's files (../shared)
 */
#include <float.h>
#include <math.h>

#include "infer.h"
#include "ref/quants.h"
#include "testutil.h"
#include "quantize_testutil.h"

static const uint32_t K_TYPES[] = {INFER_TYPE_Q2_K, INFER_TYPE_Q3_K, INFER_TYPE_Q4_K,
                                   INFER_TYPE_Q5_K, INFER_TYPE_Q6_K};
#define N_K_TYPES (sizeof K_TYPES / sizeof *K_TYPES)

/* ||dequant(quant(x)) - x|| / ||x|| over n values. */
static double rel_rms_error(uint32_t type, const float *x, int64_t n) {
    uint64_t bytes = 0;
    cr_assert_eq(infer_type_row_bytes(type, (uint64_t)n, &bytes), INFER_OK);
    uint8_t *q = malloc(bytes);
    float *y = malloc((size_t)n * sizeof *y);
    cr_assert(q && y);
    cr_assert_eq(infer_ref_quantize(type, x, q, n), 0, "%s", infer_type_name(type));
    infer_ref_dequantize(type, q, y, n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    return sx > 0 ? sqrt(se / sx) : sqrt(se);
}


/* ======================= the quantizers ======================================= */

Test(quantize_k, round_trip_error_within_bounds) {
    /* Relative RMS error bounds, uniform [-1, 1) and N(0, 1) data: about
     * step / 2 / sqrt(3) of each type's levels, with margin. Measured:
     * uniform q2 0.26 q3 0.14 q4 0.069 q5 0.034 q6 0.017; gaussian about
     * 10% higher. A wrong layout or scale gives ~1. */
    static const double bound[N_K_TYPES] = {0.36, 0.20, 0.095, 0.047, 0.024};
    enum { N = 256 * 32 };
    static float xu[N], xg[N];
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) xu[i] = test_uniform(&rng, -1, 1);
    for (int i = 0; i < N; i++) xg[i] = gaussian(&rng);
    for (size_t t = 0; t < N_K_TYPES; t++) {
        const double eu = rel_rms_error(K_TYPES[t], xu, N), eg = rel_rms_error(K_TYPES[t], xg, N);
        cr_log_info("%s: relative RMS error uniform %.4f, gaussian %.4f", infer_type_name(K_TYPES[t]), eu, eg);
        cr_expect(eu <= bound[t], "%s uniform: %.4f > %.4f", infer_type_name(K_TYPES[t]), eu, bound[t]);
        cr_expect(eg <= bound[t] * 1.2, "%s gaussian: %.4f > %.4f", infer_type_name(K_TYPES[t]), eg, bound[t] * 1.2);
    }
}

Test(quantize_k, skewed_and_sparse_blocks_stay_accurate) {
    /* All-positive, all-negative, offset and one-spike blocks exercise the
     * minimum (Q2/Q4/Q5_K) and the sign of the scale (Q3/Q6_K). */
    enum { N = 256 * 4 };
    static float x[N];
    uint64_t rng = 11;
    for (int i = 0; i < 256; i++) x[i] = test_uniform(&rng, 0.5f, 1.0f);
    for (int i = 256; i < 512; i++) x[i] = -test_uniform(&rng, 0.0f, 3.0f);
    for (int i = 512; i < 768; i++) x[i] = 10.0f + test_uniform(&rng, -0.1f, 0.1f);
    for (int i = 768; i < 1024; i++) x[i] = (i == 900) ? -50.0f : test_uniform(&rng, -0.01f, 0.01f);
    static const double bound[N_K_TYPES] = {0.30, 0.20, 0.06, 0.03, 0.02};
    for (size_t t = 0; t < N_K_TYPES; t++) {
        const double e = rel_rms_error(K_TYPES[t], x, N);
        cr_expect(e <= bound[t], "%s: %.4f > %.4f", infer_type_name(K_TYPES[t]), e, bound[t]);
    }
}

Test(quantize_k, zero_blocks_give_zero) {
    float x[512] = {0}, y[512];
    uint8_t b[2 * 210];
    for (size_t t = 0; t < N_K_TYPES; t++) {
        memset(b, 0xaa, sizeof b);
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 512), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 512);
        for (int i = 0; i < 512; i++) cr_assert_eq(y[i], 0.0f, "%s value %d", infer_type_name(K_TYPES[t]), i);
    }
    /* Q6_K writes an all-zero block as all-zero bytes, as llama.cpp does */
    infer_ref_quantize(INFER_TYPE_Q6_K, x, b, 256);
    for (int i = 0; i < 210; i++) cr_assert_eq(b[i], 0, "q6_K byte %d", i);
}

Test(quantize_k, constant_block_is_exact_enough) {
    float x[256], y[256];
    uint8_t b[210];
    for (size_t t = 0; t < N_K_TYPES; t++) {
        for (int i = 0; i < 256; i++) x[i] = 0.75f;
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 256), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 256);
        for (int i = 0; i < 256; i++)
            cr_assert(fabsf(y[i] - 0.75f) <= 0.75f * 0.02f, "%s: %g", infer_type_name(K_TYPES[t]), y[i]);
    }
}

Test(quantize_k, survive_denormal_huge_and_nan_input) {
    /* Denormals make 1/scale overflow, NaN and inf poison the searches: the
     * result must stay defined (UBSan checks every float->int conversion),
     * denormal blocks come back as ~0 and finite blocks beside a poisoned
     * one are untouched. */
    float x[512], y[512], ref[256];
    uint8_t b[2 * 210], rb[210];
    uint64_t rng = 5;
    for (size_t t = 0; t < N_K_TYPES; t++) {
        for (int i = 0; i < 256; i++) x[i] = test_uniform(&rng, -1, 1) * 1e-40f;
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 256), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 256);
        for (int i = 0; i < 256; i++)
            cr_assert(fabsf(y[i]) <= 1e-30f, "%s: denormal %g -> %g", infer_type_name(K_TYPES[t]), x[i], y[i]);
        for (int i = 0; i < 256; i++) x[i] = (i % 3 == 0) ? FLT_MAX : (i % 3 == 1) ? -FLT_MAX : 1.0f;
        x[5] = INFINITY;
        x[77] = NAN;
        x[78] = -INFINITY;
        for (int i = 256; i < 512; i++) ref[i - 256] = x[i] = test_uniform(&rng, -1, 1);
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 512), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 512);
        infer_ref_quantize(K_TYPES[t], ref, rb, 256);
        const uint32_t bb = infer_type_block_bytes(K_TYPES[t]);
        cr_assert_eq(memcmp(b + bb, rb, bb), 0, "%s: a poisoned block leaked into the next", infer_type_name(K_TYPES[t]));
        for (int i = 0; i < 256; i++) x[i] = (i & 1) ? 3e38f : -3e38f;
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 256), 0);
    }
}

Test(quantize_k, blocks_are_independent) {
    /* Quantizing a row equals quantizing each super-block alone. */
    enum { NB = 5 };
    static float x[256 * NB];
    static uint8_t whole[210 * NB], one[210];
    uint64_t rng = 13;
    for (int i = 0; i < 256 * NB; i++) x[i] = gaussian(&rng) * (1 + i / 256);
    for (size_t t = 0; t < N_K_TYPES; t++) {
        const uint32_t bb = infer_type_block_bytes(K_TYPES[t]);
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, whole, 256 * NB), 0);
        for (int k = 0; k < NB; k++) {
            infer_ref_quantize(K_TYPES[t], x + 256 * k, one, 256);
            cr_assert_eq(memcmp(whole + (size_t)bb * k, one, bb), 0, "%s block %d", infer_type_name(K_TYPES[t]), k);
        }
    }
}

/* ======================= llama.cpp's files (../shared) ============================= */

static const struct {
    const char *file;
    const char *type;
} K_FILES[] = {{"q2_k", "Q2_K"}, {"q3_k_s", "Q3_K_S"}, {"q4_k_s", "Q4_K_S"}, {"q5_k_s", "Q5_K_S"}, {"q6_k", "Q6_K"}};

Test(quantize_k_real, k_quantizers_reproduce_llama_quantize_bytes) {
    /* rand-small-<k>.gguf: llama-quantize --pure of rand-small-f32. Every
     * super-block of every 2-D tensor must be identical (floor: 100%), and
     * the dequantized error equal to the file's. */
    char path[512];
    SHARED_OR_SKIP(path, "models/rand-small-f32.gguf");
    infer_gguf *f32 = test_open_gguf(path);
    for (size_t k = 0; k < sizeof K_FILES / sizeof *K_FILES; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/rand-small-%s.gguf", K_FILES[k].file);
        SHARED_OR_SKIP(path, rel);
        infer_gguf *g = test_open_gguf(path);
        uint64_t blocks = 0, same = 0;
        double se_mine = 0, se_theirs = 0, sx = 0;
        for (uint64_t i = 0; i < infer_gguf_tensor_count(f32); i++) {
            const infer_gguf_tensor *t = infer_gguf_tensor_at(f32, i);
            char name[INFER_GGUF_MAX_NAME + 1];
            if (t->n_dims != 2) continue;
            const infer_gguf_tensor *q = test_same_named(g, t, name, K_FILES[k].file);
            const uint32_t bb = infer_type_block_bytes(q->type);
            uint8_t *mine = malloc(q->n_bytes);
            float *ym = malloc(t->n_elements * sizeof(float)), *yt = malloc(t->n_elements * sizeof(float));
            cr_assert(mine && ym && yt);
            cr_assert_eq(infer_ref_quantize(q->type, t->data, mine, (int64_t)t->n_elements), 0);
            for (uint64_t b = 0; b < q->n_bytes / bb; b++, blocks++)
                same += memcmp(mine + b * bb, (const uint8_t *)q->data + b * bb, bb) == 0;
            infer_ref_dequantize(q->type, mine, ym, (int64_t)t->n_elements);
            infer_ref_dequantize(q->type, q->data, yt, (int64_t)t->n_elements);
            const float *x = t->data;
            for (uint64_t j = 0; j < t->n_elements; j++) {
                se_mine += ((double)ym[j] - x[j]) * ((double)ym[j] - x[j]);
                se_theirs += ((double)yt[j] - x[j]) * ((double)yt[j] - x[j]);
                sx += (double)x[j] * x[j];
            }
            free(mine);
            free(ym);
            free(yt);
        }
        const double em = sqrt(se_mine / sx), et = sqrt(se_theirs / sx);
        fprintf(stderr, "quantize_k_real: %-6s %llu/%llu super-blocks identical to llama-quantize, RMS error %.5f (file %.5f)\n",
                K_FILES[k].file, (unsigned long long)same, (unsigned long long)blocks, em, et);
        cr_expect_eq(same, blocks, "%s: %llu of %llu blocks differ", K_FILES[k].file,
                     (unsigned long long)(blocks - same), (unsigned long long)blocks);
        cr_expect(fabs(em - et) <= 0.01 * et, "%s: RMS error %.5f vs llama.cpp's %.5f", K_FILES[k].file, em, et);
        infer_gguf_close(g);
    }
    infer_gguf_close(f32);
}
