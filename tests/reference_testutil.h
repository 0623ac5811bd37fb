/* reference_testutil.h - llama.cpp's own results in ../shared/reference
 * (reference/README.md gives the formats and tolerances), for the suites
 * that hold the engine to them: on the CPU (test_model_ref.c), at every
 * kernel level (test_kernels_simd_model.c) and on Vulkan
 * (test_vulkan_model.c). Everything here skips the test when ../shared
 * lacks the file. */
#ifndef INFER_TEST_REFERENCE_TESTUTIL_H
#define INFER_TEST_REFERENCE_TESTUTIL_H

#include <math.h>

#include "infer.h"
#include "testutil.h"

typedef struct {
    const char *model;
    double max_abs, mean_abs;
    int min_argmax; /* rows whose argmax must agree; -1: not asked */
} ref_tolerance;

/* reference/README.md, "Tolerances for infer". */
static const ref_tolerance REF_TOL[] = {
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

static inline const ref_tolerance *ref_tolerance_of(const char *model) {
    for (size_t i = 0; i < sizeof REF_TOL / sizeof REF_TOL[0]; i++) {
        if (!strcmp(REF_TOL[i].model, model)) return &REF_TOL[i];
    }
    cr_assert_fail("no tolerance for %s", model);
    return NULL;
}

/* Whitespace-separated ids from a file; returns the count. */
static inline size_t ref_read_ids(const char *path, int32_t *ids, size_t cap) {
    FILE *f = fopen(path, "r");
    size_t n = 0;
    cr_assert_not_null(f, "cannot open %s", path);
    while (n < cap && fscanf(f, "%d", &ids[n]) == 1) n++;
    fclose(f);
    return n;
}

/* A reference model loaded, with the ids of its reference prompt and
 * llama.cpp's logits for every position. */
typedef struct {
    infer_model *m;
    int32_t ids[128];
    size_t n, nv;  /* tokens, vocabulary */
    float *logits; /* [n][nv] */
} ref_logits;

static inline void ref_logits_load(ref_logits *r, const char *model) {
    char mpath[512], tpath[512], lpath[512], rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", model);
    SHARED_OR_SKIP(mpath, rel);
    snprintf(rel, sizeof rel, "reference/logits/%s.tokens.txt", model);
    SHARED_OR_SKIP(tpath, rel);
    snprintf(rel, sizeof rel, "reference/logits/%s.logits.f32", model);
    SHARED_OR_SKIP(lpath, rel);
    infer_error err = {0};
    size_t bytes = 0;
    r->m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &r->m, &err), INFER_OK, "%s: %s", model, err.message);
    r->n = ref_read_ids(tpath, r->ids, 128);
    cr_assert(r->n >= 50, "%s: %zu reference tokens", model, r->n);
    r->nv = (size_t)infer_model_n_vocab(r->m);
    r->logits = read_file(lpath, &bytes);
    cr_assert_not_null(r->logits);
    cr_assert_eq(bytes, r->n * r->nv * sizeof(float), "%s: reference logits are %zu bytes", model, bytes);
}

static inline void ref_logits_free(ref_logits *r) {
    free(r->logits);
    infer_model_release(r->m);
}

typedef struct {
    double max_abs, mean;
    int agree; /* rows whose argmax is the same */
} ref_diff;

/* rows[t] against b's row t, for n rows of nv; every logit must be finite. */
static inline ref_diff ref_diff_rows(const float *const *rows, const float *b, size_t n, size_t nv) {
    ref_diff d = {0};
    double sum = 0.0;
    for (size_t t = 0; t < n; t++) {
        const float *l = rows[t], *r = b + t * nv;
        cr_assert_not_null(l);
        size_t ia = 0, ib = 0;
        for (size_t i = 0; i < nv; i++) {
            cr_assert(isfinite(l[i]), "logit [%zu][%zu] is not finite", t, i);
            double x = fabs((double)l[i] - (double)r[i]);
            if (x > d.max_abs) d.max_abs = x;
            sum += x;
            if (l[i] > l[ia]) ia = i;
            if (r[i] > r[ib]) ib = i;
        }
        d.agree += ia == ib;
    }
    d.mean = sum / (double)(n * nv);
    return d;
}

/* A context's logits for every position of r's prompt against r's. */
static inline ref_diff ref_diff_context(const infer_context *c, const ref_logits *r) {
    const float *rows[128];
    for (size_t t = 0; t < r->n; t++) rows[t] = infer_logits_ith(c, t);
    return ref_diff_rows(rows, r->logits, r->n, r->nv);
}

static inline void ref_expect_within(const char *what, const ref_tolerance *tol, ref_diff d, size_t n) {
    cr_log_info("%s: max %.5f mean %.6f argmax %d/%zu", what, d.max_abs, d.mean, d.agree, n);
    cr_expect(d.max_abs <= tol->max_abs, "%s: max |diff| %.5f > %.5f", what, d.max_abs, tol->max_abs);
    cr_expect(d.mean <= tol->mean_abs, "%s: mean |diff| %.6f > %.6f", what, d.mean, tol->mean_abs);
    if (tol->min_argmax >= 0) cr_expect(d.agree >= tol->min_argmax, "%s: argmax agrees %d/%zu", what, d.agree, n);
}

/* Greedy reference prompt p (1..4) of stories260K: its ids into prompt
 * (returns how many) and llama.cpp's 128-token continuation into want. */
static inline size_t ref_greedy_ids(int p, int32_t prompt[64], int32_t want[128]) {
    char ppath[512], gpath[512], rel[256];
    snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.prompt_ids.txt", p);
    SHARED_OR_SKIP(ppath, rel);
    snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.ids.txt", p);
    SHARED_OR_SKIP(gpath, rel);
    const size_t np = ref_read_ids(ppath, prompt, 64);
    cr_assert_eq(ref_read_ids(gpath, want, 128), 128);
    return np;
}

/* Decode prompt p in c (empty) and sample greedily: every one of the 128
 * tokens must be llama.cpp's. what names the run in messages. */
static inline void ref_expect_greedy(infer_context *c, const infer_model *m, int p, const char *what) {
    int32_t prompt[64], want[128];
    const size_t np = ref_greedy_ids(p, prompt, want);
    infer_error err = {0};
    infer_sampler *s = NULL;
    infer_sampler_params sp = infer_sampler_default_params();
    sp.temp = 0.0f;
    cr_assert_eq(infer_sampler_new(m, &sp, &s, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(c, prompt, np, 0, &err), INFER_OK, "%s", err.message);
    for (size_t i = 0; i < 128; i++) {
        int32_t tok = infer_sampler_sample(s, infer_logits(c));
        cr_assert_eq(tok, want[i], "%s, prompt %d: token %zu is %d, llama.cpp chose %d", what, p, i, tok, want[i]);
        cr_assert_eq(infer_decode(c, &tok, 1, 0, &err), INFER_OK, "%s", err.message);
    }
    infer_sampler_free(s);
}

#endif
