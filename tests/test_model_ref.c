/*
 * test_model_ref.c - the engine against llama.cpp's own results
 * (../shared/reference): logits of every reference model within the
 * tolerances of reference/README.md, and greedy stories260K continuations
 * identical token for token.
 */
#include "reference_testutil.h"

static void check_logits(const char *name, uint32_t kv_type) {
    const ref_tolerance *tol = ref_tolerance_of(name);
    ref_logits r;
    ref_logits_load(&r, name);
    infer_error err = {0};
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 512;
    cp.kv_type = kv_type;
    cp.all_logits = 1;
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(r.m, &cp, &c, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(c, r.ids, r.n, INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);
    char what[128];
    snprintf(what, sizeof what, "%s (kv %s)", name, infer_type_name(kv_type));
    ref_expect_within(what, tol, ref_diff_context(c, &r), r.n);
    infer_context_free(c);
    ref_logits_free(&r);
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
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    infer_error err = {0};
    infer_model *m = NULL;
    infer_context *c = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 2048;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    ref_expect_greedy(c, m, n, "CPU");
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
