/* test_kernels_ref_dot.c - the scalar reference kernels' dot products:
 * vec_dot against a dequantized double dot and against an exact integer
 * dot times the scales, matmul against a vec_dot loop, the supported and
 * refused type pairs, and llama.cpp's own quantized files (../shared):
 * our quantizers reproduce llama-quantize's bytes, and dequantized files
 * match their F32 originals. Helpers: kernels_ref_util.h. */
#include <float.h>
#include <math.h>

#include "ref/quants.h"
#include "kernels_ref_util.h"

/* ======================= vec_dot and matmul ================================== */

static const uint32_t WEIGHT_TYPES[] = {
    INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q4_0, INFER_TYPE_Q4_1,
    INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0, INFER_TYPE_Q2_K, INFER_TYPE_Q3_K,
    INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q6_K,
};
#define N_WEIGHT_TYPES (sizeof WEIGHT_TYPES / sizeof *WEIGHT_TYPES)

/* A weight row of n values: float types from random floats, block types
 * random bytes with sane scales. */
static void random_weights(uint32_t type, uint8_t *w, int64_t n, uint64_t *rng) {
    if (infer_type_block_size(type) == 1) {
        float *f = malloc((size_t)n * sizeof *f);
        for (int64_t i = 0; i < n; i++) f[i] = test_uniform(rng, -1, 1);
        cr_assert_eq(infer_ref_quantize(type, f, w, n), 0);
        free(f);
    } else {
        random_blocks(type, w, n / infer_type_block_size(type), rng);
    }
}

enum { ACT_RANDOM, ACT_ZERO, ACT_HUGE, ACT_DENORMAL, ACT_MIXED, ACT_CASES };

/* Largest activation magnitude that keeps every scale of type finite
 * (Q8_1's f16 s = d * sum(q) reaches 32 * amax). */
static float huge_for(uint32_t act_type) {
    switch (act_type) {
    case INFER_TYPE_F16: return 6e4f;
    case INFER_TYPE_Q8_0: return 3e4f;
    case INFER_TYPE_Q8_1: return 2e3f;
    default: return 1e30f;
    }
}

static void activations(uint32_t act_type, int kind, float *a, int64_t n, uint64_t *rng) {
    for (int64_t i = 0; i < n; i++) {
        float r = test_uniform(rng, -1, 1);
        switch (kind) {
        case ACT_RANDOM: a[i] = r; break;
        case ACT_ZERO: a[i] = 0; break;
        case ACT_HUGE: a[i] = r * huge_for(act_type); break;
        case ACT_DENORMAL: a[i] = r * 1e-40f; break;
        default: a[i] = (i % 3 == 0) ? r * 1e-40f : (i % 3 == 1) ? r * 1e3f : r; break;
        }
    }
}

/* Check one weight row against one activation row; returns failures. */
static int check_vec_dot(uint32_t wt, const uint8_t *w, const float *af, int64_t n, const char *what) {
    const uint32_t at = infer_ref_vec_dot_type(wt);
    const uint32_t bs = infer_type_block_size(wt);
    uint8_t *a = malloc(row_size(at, n));
    float *dw = malloc((size_t)n * sizeof *dw), *da = malloc((size_t)n * sizeof *da);
    cr_assert_eq(infer_ref_quantize(at, af, a, n), 0);
    infer_ref_dequantize(wt, w, dw, n);
    infer_ref_dequantize(at, a, da, n);
    double want = 0, tol = 0;
    for (int64_t b = 0; b < n / (int64_t)bs; b++) {
        double wmax = 0, sa = 0;
        for (int64_t i = b * bs; i < (b + 1) * (int64_t)bs; i++) {
            want += (double)dw[i] * da[i];
            wmax = fmax(wmax, fabs(dw[i]));
            sa += da[i];
        }
        for (int64_t i = b * bs; i < (b + 1) * (int64_t)bs; i++) tol += 1e-5 * (bs == 1 ? fabs(dw[i]) : wmax) * fabs(da[i]);
        /* Q8_1's s is d * sum(q) rounded to f16: m_w * s_a differs by 2^-11 */
        if (at == INFER_TYPE_Q8_1) {
            const uint8_t *blk = w + b * infer_type_block_bytes(wt);
            tol += fabs(h2f(blk + 2) * sa) * 1e-3;
        }
    }
    float got = infer_ref_vec_dot(wt, n, w, a);
    int bad = !isfinite(got) || fabs(got - want) > tol + 1e-35;
    if (bad)
        cr_log_error("%s %s n=%lld: vec_dot %.9g, dequantized dot %.9g (tol %g)", infer_type_name(wt),
                     what, (long long)n, got, want, tol);
    free(a);
    free(dw);
    free(da);
    return bad;
}

Test(kernels_ref_dot, vec_dot_equals_dot_of_dequantized_rows) {
    static const char *const kinds[ACT_CASES] = {"random", "zero", "huge", "denormal", "mixed"};
    uint64_t rng = 99;
    int nfail = 0;
    for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
        const uint32_t wt = WEIGHT_TYPES[t], bs = infer_type_block_size(wt);
        const int64_t sizes[3] = {bs == 1 ? 1 : bs, bs == 1 ? 37 : 3 * bs, bs == 1 ? 301 : 7 * bs};
        for (int s = 0; s < 3; s++) {
            const int64_t n = sizes[s];
            uint8_t *w = malloc(row_size(wt, n));
            float *af = malloc((size_t)n * sizeof *af);
            for (int kind = 0; kind < ACT_CASES; kind++) {
                random_weights(wt, w, n, &rng);
                activations(infer_ref_vec_dot_type(wt), kind, af, n, &rng);
                nfail += check_vec_dot(wt, w, af, n, kinds[kind]);
            }
            memset(w, 0, row_size(wt, n)); /* all-zero weights */
            activations(infer_ref_vec_dot_type(wt), ACT_RANDOM, af, n, &rng);
            nfail += check_vec_dot(wt, w, af, n, "zero weights");
            free(w);
            free(af);
        }
    }
    cr_assert_eq(nfail, 0);
}

Test(kernels_ref_dot, vec_dot_is_an_integer_dot_times_scales) {
    /* One Q4_0 block against one Q8_0 block, by hand: weights q - 8 = 1,
     * activations all 2: 32 * 1 * 2 = 64, times d_w * d_a = 0.5 * 0.25. */
    uint8_t w[18], a[34];
    put_f16(w, 0.5f);
    memset(w + 2, 0x99, 16);
    put_f16(a, 0.25f);
    memset(a + 2, 2, 32);
    cr_expect_eq(infer_ref_vec_dot(INFER_TYPE_Q4_0, 32, w, a), 8.0f);
    /* Q4_1 with m = 1 against Q8_1 with s = 10: 0.5*0.25*(32*9*2) + 1*10 */
    uint8_t w1[20], a1[36];
    put_f16(w1, 0.5f);
    put_f16(w1 + 2, 1.0f);
    memset(w1 + 4, 0x99, 16);
    put_f16(a1, 0.25f);
    put_f16(a1 + 2, 10.0f);
    memset(a1 + 4, 2, 32);
    cr_expect_eq(infer_ref_vec_dot(INFER_TYPE_Q4_1, 32, w1, a1), 82.0f);
}

Test(kernels_ref_dot, matmul_equals_vec_dot_loop) {
    uint64_t rng = 5;
    enum { ROWS = 5, TOK = 3, OUT_STRIDE = ROWS + 3 };
    for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
        const uint32_t wt = WEIGHT_TYPES[t], at = infer_ref_vec_dot_type(wt);
        const int64_t n = infer_type_block_size(wt) == 1 ? 41 : 2 * infer_type_block_size(wt);
        const size_t row_bytes = row_size(wt, n) + 6, act_stride = row_size(at, n) + 10;
        uint8_t *W = calloc(ROWS, row_bytes), *A = calloc(TOK, act_stride);
        float *af = malloc((size_t)n * sizeof *af), out[TOK * OUT_STRIDE];
        for (int r = 0; r < ROWS; r++) random_weights(wt, W + r * row_bytes, n, &rng);
        for (int k = 0; k < TOK; k++) {
            activations(at, ACT_RANDOM, af, n, &rng);
            cr_assert_eq(infer_ref_quantize(at, af, A + k * act_stride, n), 0);
        }
        for (int i = 0; i < TOK * OUT_STRIDE; i++) out[i] = -12345.0f;
        infer_ref_matmul(wt, W, row_bytes, ROWS, n, A, act_stride, TOK, out, OUT_STRIDE);
        for (int k = 0; k < TOK; k++)
            for (int r = 0; r < OUT_STRIDE; r++) {
                float want = r < ROWS ? infer_ref_vec_dot(wt, n, W + r * row_bytes, A + k * act_stride)
                                      : -12345.0f; /* padding untouched */
                cr_assert(fbits(out[k * OUT_STRIDE + r]) == fbits(want), "%s tok %d row %d: %g vs %g",
                          infer_type_name(wt), k, r, out[k * OUT_STRIDE + r], want);
            }
        free(W);
        free(A);
        free(af);
    }
}

Test(kernels_ref_dot, supported_types_and_their_activation_types) {
    static const uint32_t act[N_WEIGHT_TYPES] = {
        INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q8_0, INFER_TYPE_Q8_1,
        INFER_TYPE_Q8_0, INFER_TYPE_Q8_1, INFER_TYPE_Q8_0, INFER_TYPE_Q8_K, INFER_TYPE_Q8_K,
        INFER_TYPE_Q8_K, INFER_TYPE_Q8_K, INFER_TYPE_Q8_K,
    };
    for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
        cr_expect(infer_ref_weight_type_supported(WEIGHT_TYPES[t]), "%s", infer_type_name(WEIGHT_TYPES[t]));
        cr_expect_eq(infer_ref_vec_dot_type(WEIGHT_TYPES[t]), act[t], "%s", infer_type_name(WEIGHT_TYPES[t]));
    }
    int n_supported = 0;
    for (uint32_t ty = 0; ty < INFER_TYPE_COUNT + 5; ty++) n_supported += infer_ref_weight_type_supported(ty);
    cr_expect_eq(n_supported, (int)N_WEIGHT_TYPES);
}

Test(kernels_ref_dot, unsupported_types_are_refused) {
    static const uint32_t no[] = {
        INFER_TYPE_Q8_1,   INFER_TYPE_Q8_K,   INFER_TYPE_IQ2_XXS, INFER_TYPE_IQ2_XS,
        INFER_TYPE_IQ3_XXS, INFER_TYPE_IQ1_S, INFER_TYPE_IQ4_NL, INFER_TYPE_IQ3_S,
        INFER_TYPE_IQ2_S,  INFER_TYPE_IQ4_XS, INFER_TYPE_I8,     INFER_TYPE_I16,
        INFER_TYPE_I32,    INFER_TYPE_I64,    INFER_TYPE_F64,    INFER_TYPE_IQ1_M,
        INFER_TYPE_TQ1_0,  INFER_TYPE_TQ2_0,  INFER_TYPE_MXFP4,  4, 5, 31, INFER_TYPE_COUNT,
        1000, 0xffffffffu,
    };
    float x[256] = {1}, y[4];
    uint8_t buf[1024] = {0};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        cr_expect(!infer_ref_weight_type_supported(no[i]), "type %u", no[i]);
        cr_expect_eq(infer_ref_vec_dot_type(no[i]), INFER_TYPE_COUNT, "type %u", no[i]);
        cr_expect(isnan(infer_ref_vec_dot(no[i], 256, buf, buf)), "type %u", no[i]);
    }
    /* (the K types have quantizers since quantize_k.c: tests/test_quantize.c) */
    static const uint32_t no_quant[] = {INFER_TYPE_IQ4_NL, INFER_TYPE_I8, INFER_TYPE_COUNT,
                                        0xffffffffu};
    for (size_t i = 0; i < sizeof no_quant / sizeof *no_quant; i++)
        cr_expect_eq(infer_ref_quantize(no_quant[i], x, buf, 256), -1, "type %u", no_quant[i]);
    infer_ref_dequantize(INFER_TYPE_IQ4_NL, buf, y, 4); /* not ours: NaN, not garbage */
    for (int i = 0; i < 4; i++) cr_expect(isnan(y[i]));
}

/* ======================= llama.cpp's own files (../shared) =================== */
/* rand-small-<type>.gguf were made by llama-quantize from rand-small-f32.gguf
 * (tensor order differs: look up by name). */

Test(kernels_ref_real, quantizers_reproduce_llama_quantize_bytes) {
    static const struct { const char *file; uint32_t type; } files[] = {
        {"f16", INFER_TYPE_F16},   {"bf16", INFER_TYPE_BF16}, {"q8_0", INFER_TYPE_Q8_0},
        {"q4_0", INFER_TYPE_Q4_0}, {"q4_1", INFER_TYPE_Q4_1}, {"q5_0", INFER_TYPE_Q5_0},
        {"q5_1", INFER_TYPE_Q5_1},
    };
    char path[512];
    SHARED_OR_SKIP(path, "models/rand-small-f32.gguf");
    infer_gguf *f32 = test_open_gguf(path);
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/rand-small-%s.gguf", files[k].file);
        SHARED_OR_SKIP(path, rel);
        infer_gguf *g = test_open_gguf(path);
        int n_tensors = 0;
        uint64_t n_bytes = 0;
        for (uint64_t i = 0; i < infer_gguf_tensor_count(f32); i++) {
            const infer_gguf_tensor *t = infer_gguf_tensor_at(f32, i);
            char name[INFER_GGUF_MAX_NAME + 1];
            if (t->n_dims != 2) continue;
            const infer_gguf_tensor *q = test_same_named(g, t, name, files[k].file);
            cr_assert_eq(q->type, files[k].type, "%s: %s is %s", files[k].file, name,
                         infer_type_name(q->type));
            cr_assert_eq(t->type, INFER_TYPE_F32);
            uint8_t *mine = malloc(q->n_bytes);
            cr_assert_eq(infer_ref_quantize(q->type, t->data, mine, (int64_t)t->n_elements), 0);
            const uint8_t *theirs = q->data;
            uint64_t diff = 0, first = 0;
            for (uint64_t b = 0; b < q->n_bytes; b++)
                if (mine[b] != theirs[b] && diff++ == 0) first = b;
            cr_expect_eq(diff, 0, "%s %s: %llu of %llu bytes differ, first at %llu (%02x vs %02x)",
                         files[k].file, name, (unsigned long long)diff,
                         (unsigned long long)q->n_bytes, (unsigned long long)first, mine[first],
                         theirs[first]);
            free(mine);
            n_tensors++;
            n_bytes += q->n_bytes;
        }
        cr_expect_eq(n_tensors, 16, "%s: 2-D tensors compared", files[k].file);
        cr_log_info("%s: %d tensors, %llu bytes identical to llama-quantize", files[k].file,
                    n_tensors, (unsigned long long)n_bytes);
        infer_gguf_close(g);
    }
    infer_gguf_close(f32);
}

/* Bound on the relative RMS error (||dequant - f32|| / ||f32||) per tensor
 * type, for N(0, 0.02^2) weights. Measured maxima over the 16 tensors of
 * each file: f16 0.00021, bf16 0.0017, q8_0 0.0054, q6_k 0.018, q5_1 0.038,
 * q5_k 0.036, q5_0 0.043, q4_k 0.072, q4_1 0.079, q4_0 0.087, q3_k 0.152,
 * q2_k 0.298. A wrong nibble order or scale layout gives ~1 or more. */
static double rms_bound_for(uint32_t type) {
    switch (type) {
    case INFER_TYPE_F16: return 3e-4;
    case INFER_TYPE_BF16: return 2.5e-3;
    case INFER_TYPE_Q8_0: return 0.007;
    case INFER_TYPE_Q6_K: return 0.023;
    case INFER_TYPE_Q5_1: return 0.048;
    case INFER_TYPE_Q5_K: return 0.046;
    case INFER_TYPE_Q5_0: return 0.054;
    case INFER_TYPE_Q4_K: return 0.09;
    case INFER_TYPE_Q4_1: return 0.10;
    case INFER_TYPE_Q4_0: return 0.11;
    case INFER_TYPE_Q3_K: return 0.19;
    case INFER_TYPE_Q2_K: return 0.36;
    }
    return 0;
}

Test(kernels_ref_real, dequantized_files_match_f32_originals) {
    static const char *const files[] = {"f16",    "bf16",   "q8_0",   "q4_0",   "q4_1",
                                        "q5_0",   "q5_1",   "q2_k",   "q3_k_s", "q4_k_s",
                                        "q5_k_s", "q6_k",   "q4_k_m", "q5_k_m"};
    char path[512];
    SHARED_OR_SKIP(path, "models/rand-small-f32.gguf");
    infer_gguf *f32 = test_open_gguf(path);
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/rand-small-%s.gguf", files[k]);
        SHARED_OR_SKIP(path, rel);
        infer_gguf *g = test_open_gguf(path);
        double worst = 0;
        char worst_name[INFER_GGUF_MAX_NAME + 1] = "";
        int n_tensors = 0;
        for (uint64_t i = 0; i < infer_gguf_tensor_count(f32); i++) {
            const infer_gguf_tensor *t = infer_gguf_tensor_at(f32, i);
            char name[INFER_GGUF_MAX_NAME + 1];
            if (t->n_dims != 2) continue;
            const infer_gguf_tensor *q = test_same_named(g, t, name, files[k]);
            cr_assert(infer_ref_weight_type_supported(q->type), "%s %s: %s", files[k], name,
                      infer_type_name(q->type));
            cr_assert_eq(q->n_elements, t->n_elements);
            float *y = malloc(t->n_elements * sizeof *y);
            infer_ref_dequantize(q->type, q->data, y, (int64_t)q->n_elements);
            const float *x = t->data;
            double se = 0, sx = 0;
            for (uint64_t j = 0; j < t->n_elements; j++) {
                se += ((double)y[j] - x[j]) * ((double)y[j] - x[j]);
                sx += (double)x[j] * x[j];
            }
            free(y);
            double err = sqrt(se / sx), bound = rms_bound_for(q->type);
            cr_expect(err <= bound, "%s %s (%s): relative RMS error %.5f > %.5f", files[k], name,
                      infer_type_name(q->type), err, bound);
            if (err > worst) {
                worst = err;
                snprintf(worst_name, sizeof worst_name, "%s", name);
            }
            n_tensors++;
        }
        cr_expect_eq(n_tensors, 16);
        fprintf(stderr, "kernels_ref_real: rand-small-%-7s worst relative RMS error %.5f (%s)\n",
                files[k], worst, worst_name);
        infer_gguf_close(g);
    }
    infer_gguf_close(f32);
}
