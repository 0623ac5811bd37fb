/*
 * test_model_ref.c - the engine against llama.cpp's own results
 * (../shared/reference): logits of every reference model within the
 * tolerances of reference/README.md, and greedy stories260K continuations
 * identical token for token.
 */
#include <math.h>

#include "infer.h"
#include "testutil.h"

typedef struct {
    const char *model;
    double max_abs, mean_abs;
    int min_argmax; /* rows whose argmax must agree; -1: not asked */
} tolerance;

/* reference/README.md, "Tolerances for infer". */
static const tolerance TOL[] = {
    {"rand-small-f32", 1e-3, 2e-4, 62},      {"rand-small-qwen2-f32", 1e-3, 2e-4, 62},
    {"rand-small-qwen3-f32", 1e-3, 2e-4, 62}, {"rand-small-f16", 3e-3, 5e-4, 62},
    {"llama-2-tiny-random", 3e-3, 5e-4, 52},  {"rand-small-bf16", 1e-2, 2e-3, 60},
    {"rand-small-q8_0", 0.06, 0.01, -1},      {"rand-small-q6_k", 0.06, 0.01, -1},
    {"rand-small-q5_0", 0.06, 0.01, -1},      {"rand-small-q5_1", 0.06, 0.01, -1},
    {"rand-small-q5_k_s", 0.06, 0.01, -1},    {"rand-small-q5_k_m", 0.06, 0.01, -1},
    {"rand-small-q4_0", 0.06, 0.01, -1},      {"rand-small-q4_1", 0.06, 0.01, -1},
    {"rand-small-q4_k_s", 0.06, 0.01, -1},    {"rand-small-q4_k_m", 0.06, 0.01, -1},
    {"rand-small-q3_k_s", 0.10, 0.015, -1},   {"rand-small-q2_k", 0.10, 0.015, -1},
    {"stories260K", 0.03, 0.004, 64},
};

/* Whitespace-separated ids from a file; returns the count. */
static size_t read_ids(const char *path, int32_t *ids, size_t cap) {
    FILE *f = fopen(path, "r");
    size_t n = 0;
    cr_assert_not_null(f, "cannot open %s", path);
    while (n < cap && fscanf(f, "%d", &ids[n]) == 1) n++;
    fclose(f);
    return n;
}

static void check_logits(const char *name, uint32_t kv_type) {
    const tolerance *tol = NULL;
    for (size_t i = 0; i < sizeof TOL / sizeof TOL[0]; i++) if (!strcmp(TOL[i].model, name)) tol = &TOL[i];
    cr_assert_not_null(tol);
    char mpath[512], tpath[512], lpath[512], rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    SHARED_OR_SKIP(mpath, rel);
    snprintf(rel, sizeof rel, "reference/logits/%s.tokens.txt", name);
    SHARED_OR_SKIP(tpath, rel);
    snprintf(rel, sizeof rel, "reference/logits/%s.logits.f32", name);
    SHARED_OR_SKIP(lpath, rel);

    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s: %s", name, err.message);
    int32_t ids[128];
    size_t n = read_ids(tpath, ids, 128);
    cr_assert(n >= 50, "%s: %zu reference tokens", name, n);
    size_t nv = (size_t)infer_model_n_vocab(m), bytes = 0;
    float *ref = read_file(lpath, &bytes);
    cr_assert_not_null(ref);
    cr_assert_eq(bytes, n * nv * sizeof(float), "%s: reference logits are %zu bytes", name, bytes);

    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 512;
    cp.kv_type = kv_type;
    cp.all_logits = 1;
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(c, ids, n, INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);

    double max_abs = 0.0, sum = 0.0;
    int agree = 0;
    for (size_t t = 0; t < n; t++) {
        const float *l = infer_logits_ith(c, t), *r = ref + t * nv;
        cr_assert_not_null(l);
        size_t a = 0, b = 0;
        for (size_t i = 0; i < nv; i++) {
            double d = fabs((double)l[i] - (double)r[i]);
            cr_assert(isfinite(l[i]), "%s: logit [%zu][%zu] is not finite", name, t, i);
            if (d > max_abs) max_abs = d;
            sum += d;
            if (l[i] > l[a]) a = i;
            if (r[i] > r[b]) b = i;
        }
        agree += a == b;
    }
    double mean = sum / (double)(n * nv);
    cr_log_info("%s (kv %s): max %.5f mean %.6f argmax %d/%zu", name, infer_type_name(kv_type), max_abs, mean, agree, n);
    cr_expect(max_abs <= tol->max_abs, "%s: max |diff| %.5f > %.5f", name, max_abs, tol->max_abs);
    cr_expect(mean <= tol->mean_abs, "%s: mean |diff| %.6f > %.6f", name, mean, tol->mean_abs);
    if (tol->min_argmax >= 0) cr_expect(agree >= tol->min_argmax, "%s: argmax agrees %d/%zu", name, agree, n);
    free(ref);
    infer_context_free(c);
    infer_model_release(m);
    LEAK_CHECK();
}

#define LOGITS_TEST(id, name) \
    Test(model_ref, logits_##id) { check_logits(name, INFER_TYPE_F16); }
LOGITS_TEST(f32, "rand-small-f32")
LOGITS_TEST(qwen2_f32, "rand-small-qwen2-f32")
LOGITS_TEST(qwen3_f32, "rand-small-qwen3-f32")
LOGITS_TEST(f16, "rand-small-f16")
LOGITS_TEST(llama2_tiny_f16, "llama-2-tiny-random")
LOGITS_TEST(bf16, "rand-small-bf16")
LOGITS_TEST(q8_0, "rand-small-q8_0")
LOGITS_TEST(q6_k, "rand-small-q6_k")
LOGITS_TEST(q5_0, "rand-small-q5_0")
LOGITS_TEST(q5_1, "rand-small-q5_1")
LOGITS_TEST(q5_k_s, "rand-small-q5_k_s")
LOGITS_TEST(q5_k_m, "rand-small-q5_k_m")
LOGITS_TEST(q4_0, "rand-small-q4_0")
LOGITS_TEST(q4_1, "rand-small-q4_1")
LOGITS_TEST(q4_k_s, "rand-small-q4_k_s")
LOGITS_TEST(q4_k_m, "rand-small-q4_k_m")
LOGITS_TEST(q3_k_s, "rand-small-q3_k_s")
LOGITS_TEST(q2_k, "rand-small-q2_k")
LOGITS_TEST(stories260K, "stories260K")

/* The same model with an F32 cache stays within the same tolerance. */
Test(model_ref, logits_stories260K_f32_cache) { check_logits("stories260K", INFER_TYPE_F32);     LEAK_CHECK();
}

/* Greedy continuation of reference prompt n: the 128 ids must be llama.cpp's. */
static void check_greedy(int n) {
    char mpath[512], ppath[512], gpath[512], rel[256];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.prompt_ids.txt", n);
    SHARED_OR_SKIP(ppath, rel);
    snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.ids.txt", n);
    SHARED_OR_SKIP(gpath, rel);
    int32_t prompt[64], want[128];
    size_t np = read_ids(ppath, prompt, 64), nw = read_ids(gpath, want, 128);
    cr_assert_eq(nw, 128);

    infer_error err = {0};
    infer_model *m = NULL;
    infer_context *c = NULL;
    infer_sampler *s = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 2048;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    infer_sampler_params sp = infer_sampler_default_params();
    sp.temp = 0.0f;
    cr_assert_eq(infer_sampler_new(m, &sp, &s, &err), INFER_OK);
    cr_assert_eq(infer_decode(c, prompt, np, 0, &err), INFER_OK, "%s", err.message);
    for (size_t i = 0; i < 128; i++) {
        int32_t tok = infer_sampler_sample(s, infer_logits(c));
        cr_assert_eq(tok, want[i], "prompt %d: token %zu is %d, llama.cpp chose %d", n, i, tok, want[i]);
        cr_assert_eq(infer_decode(c, &tok, 1, 0, &err), INFER_OK, "%s", err.message);
    }
    infer_sampler_free(s);
    infer_context_free(c);
    infer_model_release(m);
}

Test(model_ref, greedy_stories260K_prompt1) { check_greedy(1);     LEAK_CHECK();
}
Test(model_ref, greedy_stories260K_prompt2) { check_greedy(2);     LEAK_CHECK();
}
Test(model_ref, greedy_stories260K_prompt3) { check_greedy(3);     LEAK_CHECK();
}
Test(model_ref, greedy_stories260K_prompt4_bos_only) { check_greedy(4);     LEAK_CHECK();
}
