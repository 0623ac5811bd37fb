/*
 * test_model_hostile.c - HOSTILE.md section B: model files that parse as
 * GGUF but that the loader must reject with a status and a message naming
 * the key or tensor; and weights full of NaN/Inf that load but must not
 * crash or hang generation. Files are built with the synthetic generator.
 */
#include <math.h>

#include <unistd.h>

#include "infer.h"
#include "synth.h"
#include "testutil.h"

/* Build p, load it from memory, expect status want and `needle` in the
 * message. Returns nothing; frees everything. */
static void expect_reject(const synth_params *p, infer_status want, const char *needle) {
    void *buf = NULL;
    size_t size = 0;
    infer_error err = {0};
    cr_assert_eq(synth_model(p, &buf, &size, &err), INFER_OK, "synth: %s", err.message);
    infer_model *m = NULL;
    memset(&err, 0, sizeof err);
    infer_status s = infer_model_load_memory(buf, size, NULL, &m, &err);
    cr_expect_eq(s, want, "status %s, expected %s (%s)", infer_status_name(s), infer_status_name(want), err.message);
    cr_expect_null(m);
    cr_expect(strstr(err.message, needle) != NULL, "message '%s' does not name '%s'", err.message, needle);
    infer_model_release(m);
    free(buf);
}

static void expect_key_u32(const char *key, uint32_t v, infer_status want, const char *needle) {
    synth_params p = synth_default_params();
    p.set_key = key;
    p.set_type = INFER_GGUF_UINT32;
    p.set_value = &v;
    expect_reject(&p, want, needle);
}

Test(model_hostile, synthetic_model_is_valid) {
    synth_params p = synth_default_params();
    void *buf;
    size_t size;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK, "%s", err.message);
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_OK, "%s", err.message);
    cr_expect_str_eq(infer_model_arch(m), "llama");
    cr_expect_eq(infer_model_n_vocab(m), 300);
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

/* 15. general.architecture missing, unknown, embedded NUL. */
Test(model_hostile, arch_missing) {
    synth_params p = synth_default_params();
    p.omit_key = "general.architecture";
    expect_reject(&p, INFER_EFORMAT, "general.architecture");
    LEAK_CHECK();
}
Test(model_hostile, arch_unknown) {
    synth_params p = synth_default_params();
    p.set_key = "general.architecture";
    p.set_type = INFER_GGUF_STRING;
    p.set_value = "gpt9";
    expect_reject(&p, INFER_EUNSUPPORTED, "gpt9");
    LEAK_CHECK();
}
Test(model_hostile, arch_with_nul) {
    synth_params p = synth_default_params();
    p.set_key = "general.architecture";
    p.set_type = INFER_GGUF_STRING;
    p.set_value = "llama\0evil";
    p.set_len = 10;
    expect_reject(&p, INFER_EFORMAT, "NUL");
    LEAK_CHECK();
}

/* 16. A hyperparameter of the wrong type. */
Test(model_hostile, hparam_string_for_uint32) {
    synth_params p = synth_default_params();
    p.set_key = "llama.block_count";
    p.set_type = INFER_GGUF_STRING;
    p.set_value = "two";
    expect_reject(&p, INFER_EFORMAT, "llama.block_count");
    LEAK_CHECK();
}
Test(model_hostile, hparam_uint32_for_float) {
    expect_key_u32("llama.attention.layer_norm_rms_epsilon", 1, INFER_EFORMAT, "layer_norm_rms_epsilon");
    LEAK_CHECK();
}
Test(model_hostile, hparam_negative_int32) {
    synth_params p = synth_default_params();
    int32_t v = -4;
    p.set_key = "llama.attention.head_count";
    p.set_type = INFER_GGUF_INT32;
    p.set_value = &v;
    expect_reject(&p, INFER_EFORMAT, "head_count");
    LEAK_CHECK();
}
Test(model_hostile, hparam_missing) {
    synth_params p = synth_default_params();
    p.omit_key = "llama.embedding_length";
    expect_reject(&p, INFER_EFORMAT, "llama.embedding_length");
    LEAK_CHECK();
}

/* 17. block_count 0, huge, more than the layers present. */
Test(model_hostile, block_count_zero) { expect_key_u32("llama.block_count", 0, INFER_EFORMAT, "block_count");     LEAK_CHECK();
}
Test(model_hostile, block_count_huge) { expect_key_u32("llama.block_count", 1u << 30, INFER_EFORMAT, "block_count");     LEAK_CHECK();
}
Test(model_hostile, block_count_more_than_present) {
    expect_key_u32("llama.block_count", 3, INFER_EFORMAT, "blk.2.");
    LEAK_CHECK();
}
Test(model_hostile, block_count_fewer_than_present) {
    expect_key_u32("llama.block_count", 1, INFER_EFORMAT, "unexpected tensor 'blk.1.");
    LEAK_CHECK();
}

/* 18. Head counts, divisibility, rope dimension, context length. */
Test(model_hostile, head_count_zero) { expect_key_u32("llama.attention.head_count", 0, INFER_EFORMAT, "head_count");     LEAK_CHECK();
}
Test(model_hostile, head_count_kv_zero) {
    expect_key_u32("llama.attention.head_count_kv", 0, INFER_EFORMAT, "head_count_kv");
    LEAK_CHECK();
}
Test(model_hostile, head_count_kv_not_dividing) {
    expect_key_u32("llama.attention.head_count_kv", 3, INFER_EFORMAT, "does not divide");
    LEAK_CHECK();
}
Test(model_hostile, embedding_not_divisible_by_heads) {
    expect_key_u32("llama.attention.head_count", 6, INFER_EFORMAT, "not divisible");
    LEAK_CHECK();
}
Test(model_hostile, rope_dim_larger_than_head) {
    expect_key_u32("llama.rope.dimension_count", 16, INFER_EFORMAT, "rope.dimension_count");
    LEAK_CHECK();
}
Test(model_hostile, rope_dim_odd) { expect_key_u32("llama.rope.dimension_count", 7, INFER_EFORMAT, "odd");     LEAK_CHECK();
}
Test(model_hostile, context_length_zero) { expect_key_u32("llama.context_length", 0, INFER_EFORMAT, "context_length");     LEAK_CHECK();
}
Test(model_hostile, context_length_absurd) {
    expect_key_u32("llama.context_length", 0x80000000u, INFER_EFORMAT, "context_length");
    LEAK_CHECK();
}
Test(model_hostile, rms_eps_nan) {
    synth_params p = synth_default_params();
    float v = NAN;
    p.set_key = "llama.attention.layer_norm_rms_epsilon";
    p.set_type = INFER_GGUF_FLOAT32;
    p.set_value = &v;
    expect_reject(&p, INFER_EFORMAT, "layer_norm_rms_epsilon");
    LEAK_CHECK();
}
Test(model_hostile, rope_base_zero) {
    synth_params p = synth_default_params();
    float v = 0.0f;
    p.set_key = "llama.rope.freq_base";
    p.set_type = INFER_GGUF_FLOAT32;
    p.set_value = &v;
    expect_reject(&p, INFER_EFORMAT, "rope.freq_base");
    LEAK_CHECK();
}

/* 19. Missing, extra, misshapen, mistyped tensors. */
Test(model_hostile, tensor_missing) {
    synth_params p = synth_default_params();
    p.omit_tensor = "blk.1.ffn_up.weight";
    expect_reject(&p, INFER_EFORMAT, "blk.1.ffn_up.weight");
    LEAK_CHECK();
}
Test(model_hostile, tensor_unexpected) {
    synth_params p = synth_default_params();
    p.extra_tensor = "blk.0.mystery.weight";
    expect_reject(&p, INFER_EFORMAT, "blk.0.mystery.weight");
    LEAK_CHECK();
}
Test(model_hostile, tensor_shape_disagrees) {
    synth_params p = synth_default_params();
    p.reshape_tensor = "blk.0.attn_k.weight";
    expect_reject(&p, INFER_EFORMAT, "blk.0.attn_k.weight");
    LEAK_CHECK();
}
Test(model_hostile, tensor_type_not_allowed_for_matrix) {
    synth_params p = synth_default_params();
    p.retype_tensor = "blk.0.attn_q.weight";
    p.retype = INFER_TYPE_I32;
    expect_reject(&p, INFER_EUNSUPPORTED, "blk.0.attn_q.weight");
    LEAK_CHECK();
}
Test(model_hostile, tensor_type_iq_unsupported_named) {
    synth_params p = synth_default_params();
    p.n_embd = 256; /* IQ4_XS needs rows of 256 */
    p.n_ff = 256;
    p.retype_tensor = "blk.1.ffn_down.weight";
    p.retype = INFER_TYPE_IQ4_XS;
    expect_reject(&p, INFER_EUNSUPPORTED, "iq4_xs");
    LEAK_CHECK();
}
Test(model_hostile, norm_type_not_f32) {
    synth_params p = synth_default_params();
    p.retype_tensor = "blk.0.attn_norm.weight";
    p.retype = INFER_TYPE_F16;
    expect_reject(&p, INFER_EUNSUPPORTED, "blk.0.attn_norm.weight");
    LEAK_CHECK();
}

/* 20. token_embd rows != vocabulary size; vocab_size key disagreeing. */
Test(model_hostile, token_embd_rows_not_vocab) {
    synth_params p = synth_default_params();
    p.reshape_tensor = "token_embd.weight";
    expect_reject(&p, INFER_EFORMAT, "vocabulary has 300 tokens");
    LEAK_CHECK();
}
Test(model_hostile, vocab_size_key_disagrees) {
    expect_key_u32("llama.vocab_size", 301, INFER_EFORMAT, "vocab_size");
    LEAK_CHECK();
}

/* Architecture-specific required tensors. */
Test(model_hostile, qwen2_without_biases) {
    synth_params p = synth_default_params();
    p.arch = "qwen2";
    p.omit_tensor = "blk.0.attn_k.bias";
    expect_reject(&p, INFER_EFORMAT, "blk.0.attn_k.bias");
    LEAK_CHECK();
}
Test(model_hostile, qwen3_without_qk_norm) {
    synth_params p = synth_default_params();
    p.arch = "qwen3";
    p.omit_tensor = "blk.1.attn_q_norm.weight";
    expect_reject(&p, INFER_EFORMAT, "blk.1.attn_q_norm.weight");
    LEAK_CHECK();
}

/* 21. NaN / Inf weights: loading may accept; generation must not crash or
 * loop, and every token produced is in range. */
static void generate_from_bad_weights(uint32_t bad, float temp) {
    synth_params p = synth_default_params();
    p.bad_values = bad;
    void *buf;
    size_t size;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK);
    infer_model *m = NULL;
    infer_context *c = NULL;
    infer_sampler *s = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_context_new(m, NULL, &c, &err), INFER_OK, "%s", err.message);
    infer_sampler_params sp = infer_sampler_default_params();
    sp.temp = temp;
    sp.seed = 7;
    cr_assert_eq(infer_sampler_new(m, &sp, &s, &err), INFER_OK);
    int32_t tok = 1;
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(infer_decode(c, &tok, 1, 0, &err), INFER_OK, "%s", err.message);
        tok = infer_sampler_sample(s, infer_logits(c));
        cr_assert(tok >= 0 && tok < infer_model_n_vocab(m), "token %d out of range", tok);
    }
    infer_sampler_free(s);
    infer_context_free(c);
    infer_model_release(m);
    free(buf);
}
Test(model_hostile, nan_weights_greedy) { generate_from_bad_weights(1, 0.0f);     LEAK_CHECK();
}
Test(model_hostile, nan_weights_sampled) { generate_from_bad_weights(1, 0.8f);     LEAK_CHECK();
}
Test(model_hostile, inf_weights_greedy) { generate_from_bad_weights(2, 0.0f);     LEAK_CHECK();
}
Test(model_hostile, inf_weights_sampled) { generate_from_bad_weights(2, 1.5f);     LEAK_CHECK();
}

/* Allocation failure at every point of a whole model load (and a context
 * on it): each fails with ENOMEM and frees everything (ASan/LSan checks).
 * From memory (mode 0), from a mapped file (1: 1-D weight copies, the
 * repacked weights of the first context) and from a file read into memory
 * (2: its buffer, the repacked weights and the record of rows dropped). */
static void alloc_failure_at_every_allocation(int mode) {
    synth_params p = synth_default_params();
    if (mode) p.wtype = INFER_TYPE_Q4_0; /* repacked where the level repacks */
    void *buf;
    size_t size;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK);
    char path[] = "/tmp/infer-allocfail-XXXXXX";
    if (mode) {
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, buf, size), (ssize_t)size);
        close(fd);
    }
    infer_model_params mp = infer_model_default_params();
    mp.use_mmap = mode == 1;
    int succeeded = 0;
    for (uint64_t k = 1; k < 100000 && !succeeded; k++) {
        infer_model *m = NULL;
        infer_context *c = NULL;
        infer_alloc_fail_at(k);
        infer_status s =
            mode ? infer_model_load(path, &mp, &m, &err) : infer_model_load_memory(buf, size, NULL, &m, &err);
        if (s == INFER_OK) s = infer_context_new(m, NULL, &c, &err);
        infer_alloc_fail_at(0);
        if (s == INFER_OK) succeeded = 1;
        else cr_assert_eq(s, INFER_ENOMEM, "k=%llu: %s (%s)", (unsigned long long)k, infer_status_name(s), err.message);
        infer_context_free(c);
        infer_model_release(m);
    }
    cr_assert(succeeded);
    if (mode) unlink(path);
    free(buf);
}

Test(model_hostile, alloc_failure_at_every_allocation_of_a_load) {
    alloc_failure_at_every_allocation(0);
    LEAK_CHECK();
}

Test(model_hostile, alloc_failure_at_every_allocation_of_a_load_read_into_memory) {
    alloc_failure_at_every_allocation(2);
    LEAK_CHECK();
}

Test(model_hostile, alloc_failure_at_every_allocation_of_a_mapped_load) {
    alloc_failure_at_every_allocation(1);
    LEAK_CHECK();
}
