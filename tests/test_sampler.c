/*
 * test_sampler.c - sampling: greedy ties, temperature edge cases, top-k /
 * top-p / min-p limits, seeds, repeat penalty, and logits that are NaN or
 * infinite (HOSTILE.md D.34): never a crash, a hang or a token out of range;
 * ignore_eog.
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

/* The draw falls past the total when float probabilities sum to under 1
 * (41 equal candidates: 0.99999996...). It then takes the last candidate
 * that had a chance, never a NaN (-inf) one of probability 0. The seed
 * that draws above the total is found with the sampler's own generator
 * (splitmix64 from the seed, 53-bit uniform). */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

Test(sampler, a_draw_past_the_total_never_takes_a_zero_probability_token) {
    infer_model *m = vocab300();
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = i < 41 ? 0.0f : NAN;
    const float p = (float)(1.0 / 41);
    double total = 0.0;
    for (int i = 0; i < 41; i++) total += p;
    cr_assert_lt(total, 1.0);
    uint64_t seed = 0;
    for (;; seed++) {
        cr_assert_lt(seed, 1ull << 30, "no seed draws above %.17g", total);
        uint64_t st = seed;
        if ((double)(splitmix(&st) >> 11) * (1.0 / 9007199254740992.0) >= total) break;
    }
    infer_sampler *s = sampler(m, 1.0f, 0, 1.0f, 0.0f, seed);
    const int32_t t = infer_sampler_sample(s, l);
    cr_assert(t >= 0 && t < 41, "seed %llu: token %d has a NaN logit", (unsigned long long)seed, t);
    infer_sampler_free(s);
    infer_model_release(m);
    LEAK_CHECK();
}

/* infer_generate with a sampler made for another model (another vocabulary
 * size) is refused before anything runs: it would read its own count of
 * logits from this context's row. The cache and the sampler are left as
 * they were; a prompt that does not fit leaves the sampler's history too. */
Test(sampler, generate_refuses_a_sampler_of_another_vocabulary) {
    infer_model *m = vocab300(), *big = NULL;
    infer_error err = {0};
    synth_params sp = synth_default_params();
    sp.n_vocab = 4000;
    void *buf = NULL;
    size_t size = 0;
    cr_assert_eq(synth_model(&sp, &buf, &size, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &big, &err), INFER_OK, "%s", err.message);
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 16;
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    infer_sampler *other = sampler(big, 0.0f, 0, 1.0f, 0.0f, 1);
    const int32_t prompt[3] = {1, 5, 9};
    infer_generate_params gp = {.n_predict = 4};
    cr_assert_eq(infer_generate(c, other, prompt, 3, &gp, NULL, NULL, NULL, &err), INFER_EINVAL);
    cr_assert(strstr(err.message, "sampler"), "%s", err.message);
    cr_assert_eq(infer_context_n_past(c), 0);

    /* Same vocabulary, a penalty on: a prompt past the context is refused
     * and leaves the history empty (greedy still takes token 7). */
    infer_sampler_params pp = infer_sampler_default_params();
    pp.temp = 0.0f;
    pp.repeat_penalty = 100.0f;
    infer_sampler *own = NULL;
    cr_assert_eq(infer_sampler_new(m, &pp, &own, &err), INFER_OK, "%s", err.message);
    int32_t longp[17];
    for (int i = 0; i < 17; i++) longp[i] = 7;
    cr_assert_eq(infer_generate(c, own, longp, 17, &gp, NULL, NULL, NULL, &err), INFER_ECTX_FULL);
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = 0.5f;
    l[7] = 1.0f; /* 0.01 after the penalty */
    cr_assert_eq(infer_sampler_sample(own, l), 7, "the refused prompt went into the penalty's history");
    infer_sampler_free(own);
    infer_sampler_free(other);
    infer_context_free(c);
    infer_model_release(big);
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

/* Token 1's share of n draws from logits l (the rest -inf). */
static double share_of_1(infer_sampler *s, const float *l, int n) {
    int ones = 0;
    for (int i = 0; i < n; i++) ones += infer_sampler_sample(s, l) == 1;
    return (double)ones / n;
}

/* The temperature divides the logits: with logits {0, 1} token 1 is drawn
 * with probability 1 / (1 + e^(-1/T)): 0.881 at T 0.5, 0.622 at T 2
 * (5000 draws: a standard error under 0.007; the bounds are 5 of them). */
Test(sampler, temperature_shapes_the_draw) {
    infer_model *m = vocab300();
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = -INFINITY;
    l[0] = 0.0f;
    l[1] = 1.0f;
    static const float T[] = {0.5f, 2.0f};
    for (int k = 0; k < 2; k++) {
        infer_sampler *s = sampler(m, T[k], 0, 1.0f, 0.0f, 7 + (uint64_t)k);
        const double want = 1.0 / (1.0 + exp(-1.0 / T[k])), got = share_of_1(s, l, 5000);
        cr_assert(fabs(got - want) < 0.035, "T %.1f: token 1 drawn %.3f of the time, want %.3f", T[k], got, want);
        infer_sampler_free(s);
    }
    infer_model_release(m);
    LEAK_CHECK();
}

/* Top-p keeps the smallest set whose probability reaches p, the token that
 * crosses p included: probabilities {0.4, 0.3, 0.3} at top_p 0.5 keep
 * tokens 0 and 1 (0.4 + 0.3 >= 0.5), never 2. */
Test(sampler, top_p_keeps_the_token_that_crosses_p) {
    infer_model *m = vocab300();
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = -INFINITY;
    l[0] = logf(4.0f);
    l[1] = logf(3.0f);
    l[2] = logf(3.0f);
    infer_sampler *s = sampler(m, 1.0f, 0, 0.5f, 0.0f, 11);
    int seen[3] = {0};
    for (int i = 0; i < 500; i++) {
        const int32_t t = infer_sampler_sample(s, l);
        cr_assert(t >= 0 && t < 3, "token %d", t);
        seen[t]++;
    }
    cr_assert(seen[0] > 0 && seen[1] > 0, "kept {0, 1}: drawn %d and %d times", seen[0], seen[1]);
    cr_assert_eq(seen[2], 0, "token 2 lies past p: drawn %d times", seen[2]);
    infer_sampler_free(s);
    infer_model_release(m);
    LEAK_CHECK();
}

/* The penalty multiplies a negative logit (llama.cpp's rule): a repeated
 * token at -1.0 becomes -2.0 under a penalty of 2, below one at -1.5. */
Test(sampler, repeat_penalty_pushes_negative_logits_down) {
    infer_model *m = vocab300();
    infer_sampler_params p = infer_sampler_default_params();
    p.temp = 0.0f;
    p.repeat_penalty = 2.0f;
    infer_sampler *s = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_sampler_new(m, &p, &s, &err), INFER_OK, "%s", err.message);
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = -10.0f;
    l[20] = -1.0f;
    l[30] = -1.5f;
    cr_assert_eq(infer_sampler_sample(s, l), 20);
    infer_sampler_accept(s, 20);
    cr_assert_eq(infer_sampler_sample(s, l), 30, "a penalised negative logit must fall, not rise");
    infer_sampler_free(s);
    infer_model_release(m);
    LEAK_CHECK();
}

/* infer_generate records the prompt and each token it generates in the
 * sampler's history: under a heavy penalty, greedy then avoids them. */
Test(sampler, generate_records_prompt_and_generated_tokens) {
    infer_model *m = vocab300();
    infer_error err = {0};
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 16;
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    infer_sampler_params sp = infer_sampler_default_params();
    sp.temp = 0.0f;
    sp.repeat_penalty = 1000.0f;
    infer_sampler *s = NULL;
    cr_assert_eq(infer_sampler_new(m, &sp, &s, &err), INFER_OK, "%s", err.message);
    const int32_t prompt[1] = {7};
    infer_generate_params gp = {.n_predict = 1};
    infer_generate_stats st;
    cr_assert_eq(infer_generate(c, s, prompt, 1, &gp, NULL, NULL, &st, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(st.n_generated, 1);
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = 0.5f;
    l[7] = 1.0f; /* the prompt's token: 0.001 once penalised */
    cr_assert_neq(infer_sampler_sample(s, l), 7, "the prompt's token is not in the history");
    /* and the generated token: the one other token whose boost to the
     * only positive logit the sampler ignores */
    int n_in_history = 0;
    for (int t = 0; t < NV; t++) {
        if (t == 7) continue;
        for (int i = 0; i < NV; i++) l[i] = 0.5f;
        l[t] = 1.0f;
        n_in_history += infer_sampler_sample(s, l) != t;
    }
    cr_assert_eq(n_in_history, 1, "%d tokens besides the prompt's in the history, want the one generated", n_in_history);
    infer_sampler_free(s);
    infer_context_free(c);
    infer_model_release(m);
    LEAK_CHECK();
}

/* ignore_eog (llama.cpp's --ignore-eos): the model's end-of-generation
 * tokens are never picked, greedy or drawn, even when their logits lead by
 * far; without it they are. */
Test(sampler, ignore_eog_never_picks_an_end_of_generation_token) {
    infer_model *m = vocab300();
    int32_t eog[8];
    int n_eog = 0;
    for (int32_t i = 0; i < NV && n_eog < 8; i++)
        if (infer_token_is_eog(m, i)) eog[n_eog++] = i;
    cr_assert_gt(n_eog, 0, "the synthetic vocabulary has an end-of-generation token");
    float l[NV] = {0};
    for (int k = 0; k < n_eog; k++) l[eog[k]] = 30.0f;
    l[123] = 5.0f;
    for (int greedy = 0; greedy < 2; greedy++) {
        infer_sampler_params p = infer_sampler_default_params();
        p.temp = greedy ? 0.0f : 1.0f;
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
        p.seed = 9;
        infer_sampler *plain = NULL, *ign = NULL;
        infer_error err = {0};
        cr_assert_eq(infer_sampler_new(m, &p, &plain, &err), INFER_OK, "%s", err.message);
        p.ignore_eog = 1;
        cr_assert_eq(infer_sampler_new(m, &p, &ign, &err), INFER_OK, "%s", err.message);
        for (int d = 0; d < 200; d++) {
            const int32_t t = infer_sampler_sample(ign, l);
            cr_assert(t >= 0 && t < NV && !infer_token_is_eog(m, t), "draw %d picked %d", d, t);
            if (greedy) cr_assert_eq(t, 123);
        }
        cr_assert(infer_token_is_eog(m, infer_sampler_sample(plain, l)), "without it the leader is picked");
        infer_sampler_free(plain);
        infer_sampler_free(ign);
    }
    infer_model_release(m);
    LEAK_CHECK();
}

