/*
 * test_sampler.c - sampling: greedy ties, temperature edge cases, top-k /
 * top-p / min-p limits, seeds, repeat penalty, and logits that are NaN or
 * infinite (HOSTILE.md D.34): never a crash, a hang or a token out of range.
 */
#include <math.h>

#include "infer.h"
#include "synth.h"
#include "testutil.h"

static void *g_buf;
static size_t g_size;

static infer_model *vocab300(void) {
    infer_error err = {0};
    if (!g_buf) {
        synth_params p = synth_default_params();
        cr_assert_eq(synth_model(&p, &g_buf, &g_size, &err), INFER_OK);
    }
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(g_buf, g_size, NULL, &m, &err), INFER_OK, "%s", err.message);
    return m;
}

static infer_sampler *sampler(infer_model *m, float temp, int32_t top_k, float top_p, float min_p, uint64_t seed) {
    infer_sampler_params p = infer_sampler_default_params();
    p.temp = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    infer_sampler *s = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_sampler_new(m, &p, &s, &err), INFER_OK, "%s", err.message);
    return s;
}

#define NV 300

Test(sampler, greedy_takes_first_maximum) {
    infer_model *m = vocab300();
    float l[NV] = {0};
    l[17] = 3.0f;
    l[200] = 3.0f;
    l[5] = 2.9f;
    infer_sampler *s = sampler(m, 0.0f, 40, 0.95f, 0.05f, 1);
    cr_assert_eq(infer_sampler_sample(s, l), 17);
    infer_sampler_free(s);
    s = sampler(m, -1.0f, 0, 1.0f, 0.0f, 1); /* negative temperature: greedy too */
    cr_assert_eq(infer_sampler_sample(s, l), 17);
    infer_sampler_free(s);
    infer_model_release(m);
    LEAK_CHECK();
}

Test(sampler, nan_and_infinite_logits) {
    infer_model *m = vocab300();
    float l[NV];
    for (int mode = 0; mode < 2; mode++) {
        infer_sampler *s = mode ? sampler(m, 0.8f, 40, 0.95f, 0.05f, 9) : sampler(m, 0.0f, 0, 1.0f, 0.0f, 9);
        for (int i = 0; i < NV; i++) l[i] = NAN;
        cr_assert_eq(infer_sampler_sample(s, l), 0, "all NaN gives token 0");
        for (int i = 0; i < NV; i++) l[i] = -INFINITY;
        cr_assert_eq(infer_sampler_sample(s, l), 0, "all -inf gives token 0");
        l[123] = INFINITY;
        cr_assert_eq(infer_sampler_sample(s, l), 123, "+inf wins");
        for (int i = 0; i < NV; i++) l[i] = (i % 3 == 0) ? NAN : (float)(i % 7);
        for (int k = 0; k < 50; k++) {
            int32_t t = infer_sampler_sample(s, l);
            cr_assert(t >= 0 && t < NV && t % 3 != 0, "token %d", t);
        }
        l[7] = INFINITY;
        l[14] = INFINITY;
        for (int k = 0; k < 20; k++) {
            int32_t t = infer_sampler_sample(s, l);
            cr_assert(t == 7 || t == 14, "an infinite logit must win, got %d", t);
        }
        infer_sampler_free(s);
    }
    infer_model_release(m);
    LEAK_CHECK();
}

Test(sampler, top_p_zero_and_top_k_one_are_greedy) {
    infer_model *m = vocab300();
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = sinf((float)i);
    int best = 0;
    for (int i = 1; i < NV; i++) if (l[i] > l[best]) best = i;
    infer_sampler *a = sampler(m, 1.0f, 0, 0.0f, 0.0f, 3), *b = sampler(m, 1.0f, 1, 1.0f, 0.0f, 3);
    for (int k = 0; k < 30; k++) {
        cr_assert_eq(infer_sampler_sample(a, l), best);
        cr_assert_eq(infer_sampler_sample(b, l), best);
    }
    infer_sampler_free(a);
    infer_sampler_free(b);
    infer_model_release(m);
    LEAK_CHECK();
}

Test(sampler, top_k_larger_than_vocab_and_limits_respected) {
    infer_model *m = vocab300();
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = (float)i / 50.0f; /* larger ids likelier */
    infer_sampler *s = sampler(m, 1.0f, 100000, 1.0f, 0.0f, 4);
    int seen_low = 0;
    for (int k = 0; k < 2000; k++) seen_low |= infer_sampler_sample(s, l) < 250;
    cr_assert(seen_low, "with top-k > vocab every token stays possible");
    infer_sampler_free(s);
    s = sampler(m, 1.0f, 5, 1.0f, 0.0f, 4);
    for (int k = 0; k < 500; k++) cr_assert_geq(infer_sampler_sample(s, l), NV - 5, "top-k 5");
    infer_sampler_free(s);
    /* min-p 0.5: only tokens with p >= half the best: logits within ln 2. */
    s = sampler(m, 1.0f, 0, 1.0f, 0.5f, 4);
    for (int k = 0; k < 500; k++) cr_assert_geq(infer_sampler_sample(s, l), 299 - 34, "min-p");
    infer_sampler_free(s);
    infer_model_release(m);
    LEAK_CHECK();
}

Test(sampler, same_seed_same_tokens_other_seed_other_tokens) {
    infer_model *m = vocab300();
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = cosf((float)i * 0.37f);
    int32_t a[64], b[64], c[64];
    infer_sampler *x = sampler(m, 1.0f, 0, 1.0f, 0.0f, 42), *y = sampler(m, 1.0f, 0, 1.0f, 0.0f, 42),
                  *z = sampler(m, 1.0f, 0, 1.0f, 0.0f, 43);
    for (int k = 0; k < 64; k++) {
        a[k] = infer_sampler_sample(x, l);
        b[k] = infer_sampler_sample(y, l);
        c[k] = infer_sampler_sample(z, l);
    }
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert(memcmp(a, c, sizeof a) != 0, "seeds 42 and 43 gave the same 64 tokens");
    cr_assert_eq(infer_sampler_seed(x), 42);
    infer_sampler_free(x);
    infer_sampler_free(y);
    infer_sampler_free(z);
    /* A random seed is chosen and reported. */
    x = sampler(m, 1.0f, 0, 1.0f, 0.0f, INFER_SEED_RANDOM);
    cr_assert_neq(infer_sampler_seed(x), INFER_SEED_RANDOM);
    infer_sampler_free(x);
    infer_model_release(m);
    LEAK_CHECK();
}

Test(sampler, repeat_penalty_moves_greedy_choice) {
    infer_model *m = vocab300();
    infer_sampler_params p = infer_sampler_default_params();
    p.temp = 0.0f;
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 4;
    infer_sampler *s = NULL;
    cr_assert_eq(infer_sampler_new(m, &p, &s, NULL), INFER_OK);
    float l[NV] = {0};
    l[10] = 2.0f;
    l[11] = 1.5f;
    cr_assert_eq(infer_sampler_sample(s, l), 10);
    infer_sampler_accept(s, 10); /* 2.0 / 2 = 1.0 < 1.5 */
    cr_assert_eq(infer_sampler_sample(s, l), 11);
    for (int i = 0; i < 4; i++) infer_sampler_accept(s, 50); /* 10 falls out of the window */
    cr_assert_eq(infer_sampler_sample(s, l), 10);
    infer_sampler_free(s);
    p.repeat_penalty = 0.0f;
    cr_assert_eq(infer_sampler_new(m, &p, &s, NULL), INFER_EINVAL);
    infer_model_release(m);
    LEAK_CHECK();
}
