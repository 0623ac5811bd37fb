/* test_vocab_hostile.c - the tokenizer on vocabularies built to break it
 * (HOSTILE.md section C): malformed or missing arrays, bad special ids,
 * huge tokens, pathological text, allocation failure and many threads.
 * Its behaviour on hand-worked vocabularies is in test_vocab_behavior.c.
 * Everything here is built in memory with the project's GGUF writer
 * (vocab_build.h): no shared data needed. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "vocab_build.h"

/* ---- C.22 tokens ------------------------------------------------------------ */

static void expect_load_error(infer_gguf_writer *w, infer_status want, const char *needle) {
    infer_vocab *v;
    infer_error err = {0};
    infer_status s = open_vocab(w, &v, &err);
    cr_assert_eq(s, want, "got %s (%s), expected %s", infer_status_name(s), err.message, infer_status_name(want));
    if (s == INFER_OK) vocab_free(v);
    if (needle) cr_assert(strstr(err.message, needle), "message '%s' lacks '%s'", err.message, needle);
    LEAK_CHECK();
}

Test(vocab_hostile, tokens_missing) {
    expect_load_error(spm_writer(OMIT_TOKENS), INFER_EFORMAT, "tokenizer.ggml.tokens");
}

Test(vocab_hostile, tokens_not_an_array) {
    infer_gguf_writer *w = spm_writer(OMIT_TOKENS);
    wstr(w, "tokenizer.ggml.tokens", "hello");
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.tokens");
}

Test(vocab_hostile, tokens_not_strings) {
    infer_gguf_writer *w = spm_writer(OMIT_TOKENS);
    int32_t x[SPM_N] = {0};
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", INFER_GGUF_INT32, x, SPM_N), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.tokens");
}

Test(vocab_hostile, tokens_empty) {
    infer_gguf_writer *w = wnew();
    wstr(w, "tokenizer.ggml.model", "llama");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", NULL, NULL, 0), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "empty");
}

Test(vocab_hostile, duplicate_token_is_rejected) {
    infer_gguf_writer *w = wnew();
    const char *t[] = {"<unk>", "<s>", "</s>", "a", "b", "a"};
    wstr(w, "tokenizer.ggml.model", "llama");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, 6), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "duplicate");
}

Test(vocab_hostile, empty_token_string_gets_a_placeholder) {
    infer_gguf_writer *w = wnew();
    const char *t[] = {"<unk>", "<s>", "</s>", "", "b"};
    wstr(w, "tokenizer.ggml.model", "llama");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, 5), INFER_OK);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    char piece[32];
    size_t len;
    cr_assert_eq(vocab_token_to_piece(v, 3, 0, piece, sizeof piece, &len), INFER_OK);
    cr_assert(len == 9 && memcmp(piece, "[EMPTY_3]", 9) == 0, "'%.*s'", (int)len, piece);
    vocab_free(v);
}

/* ---- C.23 scores / token_type -------------------------------------------------- */

Test(vocab_hostile, scores_of_the_wrong_type) {
    infer_gguf_writer *w = spm_writer(OMIT_SCORES);
    uint8_t x[SPM_N] = {0};
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_UINT8, x, SPM_N), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.scores");
    w = spm_writer(OMIT_SCORES);
    cr_assert_eq(infer_gguf_writer_set_f32(w, "tokenizer.ggml.scores", 1.0f), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.scores");
}

Test(vocab_hostile, scores_shorter_than_the_vocabulary) {
    infer_gguf_writer *w = spm_writer(OMIT_SCORES);
    float x[SPM_N] = {0};
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, x, SPM_N - 1), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.scores");
}

Test(vocab_hostile, int32_scores_are_accepted_like_llama_cpp) {
    infer_gguf_writer *w = spm_writer(OMIT_SCORES);
    int32_t x[SPM_N] = {0};
    x[SPM_AB] = 5; /* "ab" beats "▁a" now */
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_INT32, x, SPM_N), INFER_OK);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    expect_ids(v, "ab", 2, 0, 0, IDS(SPM_SP, SPM_AB));
    vocab_free(v);
}

Test(vocab_hostile, nan_scores_do_not_break_the_queue) {
    infer_gguf_writer *w = spm_writer(OMIT_SCORES);
    float x[SPM_N];
    for (int i = 0; i < SPM_N; i++) x[i] = NAN;
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, x, SPM_N), INFER_OK);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    int32_t ids[64];
    size_t n;
    cr_assert_eq(vocab_tokenize(v, "abc abc", 7, 1, 0, ids, 64, &n, NULL), INFER_OK);
    cr_assert_gt(n, 1);
    vocab_free(v);
}

Test(vocab_hostile, token_type_of_the_wrong_type_or_count) {
    infer_gguf_writer *w = spm_writer(OMIT_TYPES);
    float x[SPM_N] = {0};
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_FLOAT32, x, SPM_N), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.token_type");
    w = spm_writer(OMIT_TYPES);
    int32_t t[SPM_N] = {0};
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, t, 3), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.token_type");
}

Test(vocab_hostile, unknown_token_type_values_render_nothing) {
    infer_gguf_writer *w = spm_writer(OMIT_TYPES);
    int32_t t[SPM_N];
    for (int i = 0; i < SPM_N; i++) t[i] = i % 2 ? 77 : -5;
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, t, SPM_N), INFER_OK);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    char piece[16];
    size_t len = 1;
    cr_assert_eq(vocab_token_to_piece(v, SPM_A, 1, piece, sizeof piece, &len), INFER_OK);
    cr_assert_eq(len, 0);
    vocab_free(v);
}

/* ---- C.27 tokenizer model / pre ----------------------------------------------- */

Test(vocab_hostile, model_missing_or_not_a_string) {
    expect_load_error(spm_writer(OMIT_MODEL), INFER_EFORMAT, "tokenizer.ggml.model");
    infer_gguf_writer *w = spm_writer(OMIT_MODEL);
    wu32(w, "tokenizer.ggml.model", 7);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.model");
}

Test(vocab_hostile, unknown_model_is_unsupported_and_named) {
    static const char *const models[] = {"bert", "t5", "rwkv", "no_vocab", ""};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        infer_gguf_writer *w = spm_writer(OMIT_MODEL);
        wstr(w, "tokenizer.ggml.model", models[i]);
        expect_load_error(w, INFER_EUNSUPPORTED, "tokenizer.ggml.model");
    }
    infer_gguf_writer *w = spm_writer(OMIT_MODEL);
    cr_assert_eq(infer_gguf_writer_set_str(w, "tokenizer.ggml.model", "ll\x01" "ama\0x", 8), INFER_OK);
    expect_load_error(w, INFER_EUNSUPPORTED, "ll\\x01ama\\x00x");
}

Test(vocab_hostile, unknown_pre_is_unsupported_and_named) {
    expect_load_error(bpe_writer("no-such-pre", 0), INFER_EUNSUPPORTED, "no-such-pre");
    expect_load_error(bpe_writer("gpt-2|qwen2", 0), INFER_EUNSUPPORTED, "tokenizer.ggml.pre");
    expect_load_error(bpe_writer("", 0), INFER_OK, NULL); /* empty = absent = default, as llama.cpp */
    infer_gguf_writer *w = bpe_writer(NULL, 0);
    wu32(w, "tokenizer.ggml.pre", 3);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.pre");
}

Test(vocab_hostile, merges_missing_or_not_strings) {
    infer_gguf_writer *w = wnew();
    const char *t[] = {"a", "b", "ab"};
    wstr(w, "tokenizer.ggml.model", "gpt2");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, 3), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.merges");
    w = wnew();
    wstr(w, "tokenizer.ggml.model", "gpt2");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, 3), INFER_OK);
    uint32_t m[2] = {1, 2};
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.merges", INFER_GGUF_UINT32, m, 2), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.merges");
}

/* Every pre-tokenizer name infer claims compiles, and splits a text with
 * letters, digits, punctuation, CJK, whitespace of all kinds and invalid
 * bytes without error. */
Test(vocab_hostile, every_supported_pre_tokenizer_works) {
    static const char *const pres[] = {
        "default", "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
        "jina-v5-nano", "dbrx", "smaug-bpe", "glm4", "chatglm-bpe", "jais-2", "deepseek-llm", "deepseek-coder",
        "deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4", "falcon", "starcoder", "refact", "command-r",
        "smollm", "codeshell", "exaone", "minerva-7b", "mellum2", "gpt-2", "phi-2", "jina-es", "jina-de",
        "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "exaone4", "jina-v1-en",
        "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "trillion", "granite-docling", "qwen2",
        "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open", "grok-2",
        "qwen35", "poro-chat", "bloom", "gpt3-finnish", "viking", "tekken", "gpt-4o", "llama4", "kanana2",
        "talkie", "minimax-m2", "granite-embed-multi-97m", "seed-coder", "bailingmoe", "bailingmoe2",
        "llada-moe", "ufakzeka", "laguna", "exaone-moe", "minicpm5", "chameleon"};
    const char text[] = "Hello, y'all! 3333 \xe4\xb8\xad\xe6\x96\x87  \t\n\n \xe3\x80\x80x\xc2\x85"
                        "caf\xc3\xa9 ~~ <sentinel:12> IMGIMGABZ \xed\xa0\x80 \xff\xfe end  ";
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++) {
        infer_vocab *v;
        infer_error err = {0};
        cr_assert_eq(open_vocab(bpe_writer(pres[i], 0), &v, &err), INFER_OK, "%s: %s", pres[i], err.message);
        int32_t ids[512];
        size_t n = 0;
        cr_assert_eq(vocab_tokenize(v, text, sizeof text - 1, 1, 1, ids, 512, &n, &err), INFER_OK, "%s: %s",
                     pres[i], err.message);
        cr_assert_gt(n, 10, "%s", pres[i]);
        /* byte-level BPE loses nothing: the pieces give the text back, with
         * each invalid byte as U+FFFD (as llama.cpp) */
        char out[1024], want[1024];
        size_t o = 0, wl = 0;
        for (size_t k = 0; k < n; k++) {
            size_t pl;
            cr_assert_eq(vocab_token_to_piece(v, ids[k], 0, out + o, sizeof out - o, &pl), INFER_OK);
            o += pl;
        }
        for (size_t k = 0; k < sizeof text - 1; k++) {
            if ((unsigned char)text[k] >= 0xfe) memcpy(want + wl, "\xef\xbf\xbd", 3), wl += 3;
            else want[wl++] = text[k];
        }
        cr_assert_eq(o, wl, "%s: %zu bytes back, expected %zu", pres[i], o, wl);
        cr_assert_arr_eq(out, want, wl, "%s: the text does not come back", pres[i]);
        vocab_free(v);
    }
}

/* ---- C.24 special ids ---------------------------------------------------------- */

Test(vocab_hostile, out_of_range_special_ids_keep_the_default) {
    infer_gguf_writer *w = spm_writer(0);
    wu32(w, "tokenizer.ggml.bos_token_id", SPM_N);          /* == n_vocab */
    wu32(w, "tokenizer.ggml.eos_token_id", UINT32_MAX);     /* -1 as uint32 */
    int32_t neg = -1;
    cr_assert_eq(infer_gguf_writer_set(w, "tokenizer.ggml.unknown_token_id", INFER_GGUF_INT32, &neg), INFER_OK);
    uint64_t huge = 1ull << 40;
    cr_assert_eq(infer_gguf_writer_set(w, "tokenizer.ggml.padding_token_id", INFER_GGUF_UINT64, &huge), INFER_OK);
    wu32(w, "tokenizer.ggml.eot_token_id", 123456789);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    cr_assert_eq(vocab_bos(v), 1);
    cr_assert_eq(vocab_eos(v), 2);
    cr_assert(vocab_is_eog(v, 2));
    cr_assert(!vocab_is_eog(v, SPM_N));
    cr_assert(!vocab_is_eog(v, -1));
    expect_ids(v, "x", 1, 1, 0, IDS(1, SPM_SP, SPM_X));
    vocab_free(v);
}

Test(vocab_hostile, in_range_special_ids_are_used) {
    infer_gguf_writer *w = spm_writer(0);
    wu32(w, "tokenizer.ggml.bos_token_id", SPM_C);
    wu32(w, "tokenizer.ggml.eos_token_id", SPM_B);
    wbool(w, "tokenizer.ggml.add_eos_token", 1);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    cr_assert_eq(vocab_bos(v), SPM_C);
    cr_assert(vocab_is_eog(v, SPM_B));
    cr_assert(vocab_add_eos(v));
    expect_ids(v, "x", 1, 1, 0, IDS(SPM_C, SPM_SP, SPM_X, SPM_B));
    expect_ids(v, "x", 1, 0, 0, IDS(SPM_SP, SPM_X));
    vocab_free(v);
}

Test(vocab_hostile, special_id_of_a_non_integer_type) {
    infer_gguf_writer *w = spm_writer(0);
    cr_assert_eq(infer_gguf_writer_set_f32(w, "tokenizer.ggml.bos_token_id", 1.0f), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.bos_token_id");
    w = spm_writer(0);
    wstr(w, "tokenizer.ggml.eos_token_id", "2");
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.eos_token_id");
    w = spm_writer(0);
    wu32(w, "tokenizer.ggml.add_bos_token", 1);
    expect_load_error(w, INFER_EFORMAT, "tokenizer.ggml.add_bos_token");
}

Test(vocab_hostile, defaults_outside_a_tiny_vocabulary_are_none) {
    infer_gguf_writer *w = wnew();
    const char *t[] = {"<unk>", "<s>"};
    wstr(w, "tokenizer.ggml.model", "llama");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, 2), INFER_OK);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    cr_assert_eq(vocab_bos(v), 1);
    cr_assert_eq(vocab_eos(v), -1); /* the default 2 does not exist */
    cr_assert(!vocab_is_eog(v, 2));
    vocab_free(v);
    /* a BPE vocabulary's default BOS is 11, which a 3-token one lacks */
    w = wnew();
    const char *b[] = {"a", "b", "ab"}, *m[] = {"a b"};
    wstr(w, "tokenizer.ggml.model", "gpt2");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", b, NULL, 3), INFER_OK);
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m, NULL, 1), INFER_OK);
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    cr_assert_eq(vocab_bos(v), -1);
    expect_ids(v, "ab", 2, 1, 0, IDS(2));
    vocab_free(v);
}

Test(vocab_hostile, add_bos_without_a_bos_token_is_an_error) {
    infer_gguf_writer *w = wnew();
    const char *t[] = {"<unk>"};
    wstr(w, "tokenizer.ggml.model", "llama");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, 1), INFER_OK);
    expect_load_error(w, INFER_EFORMAT, "add_bos_token"); /* llama: add_bos defaults to true */
    w = wnew();
    wstr(w, "tokenizer.ggml.model", "llama");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, 1), INFER_OK);
    wbool(w, "tokenizer.ggml.add_bos_token", 0);
    wbool(w, "tokenizer.ggml.add_eos_token", 1);
    expect_load_error(w, INFER_EFORMAT, "add_eos_token");
}

/* ---- C.25 huge token strings ------------------------------------------------------ */

Test(vocab_hostile, megabyte_token_string) {
    const size_t big = 4u << 20;
    char *huge = malloc(big);
    cr_assert_not_null(huge);
    for (size_t i = 0; i < big; i++) huge[i] = (char)('a' + i % 23);
    const char *strs[] = {"<unk>", "<s>", "</s>", huge, "a"};
    size_t lens[] = {5, 3, 4, big, 1};
    int32_t types[] = {2, 3, 3, 4, 1}; /* user-defined: split out of any text */
    infer_vocab *v = llama_vocab_of(strs, lens, types, 5);
    size_t len = 0;
    char small[16];
    cr_assert_eq(vocab_token_to_piece(v, 3, 0, small, sizeof small, &len), INFER_EINVAL);
    cr_assert_eq(len, big);
    char *back = malloc(big);
    cr_assert_eq(vocab_token_to_piece(v, 3, 0, back, big, &len), INFER_OK);
    cr_assert_eq(len, big);
    cr_assert_arr_eq(back, huge, big);
    expect_ids(v, huge, big, 0, 0, IDS(3));
    /* the same text with a tail: the token, then the tail as text */
    memcpy(back, huge, big);
    back[big - 1] = 'A';
    int32_t ids[64];
    size_t n;
    cr_assert_eq(vocab_tokenize(v, back, big, 0, 0, ids, 0, &n, NULL), INFER_EINVAL); /* cap 0 */
    cr_assert_gt(n, 1000);
    free(back);
    free(huge);
    vocab_free(v);
}

/* ---- C.26 malformed byte tokens ---------------------------------------------------- */

Test(vocab_hostile, malformed_byte_tokens_are_not_bytes) {
    const char *t[] = {"<unk>", "<s>", "</s>", "<0x-1>", "<0xZZ>", "<0x1FF>", "<0x4>", "<0x41>", "\xe2\x96\x81",
                       "<0x>", "<0X42>"};
    int32_t types[] = {2, 3, 3, 6, 6, 6, 6, 6, 1, 6, 6};
    infer_vocab *v = llama_vocab_of(t, NULL, types, 11);
    int32_t malformed[] = {3, 4, 5, 6, 9, 10};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char piece[16];
        size_t len = 7;
        cr_assert_eq(vocab_token_to_piece(v, malformed[i], 1, piece, sizeof piece, &len), INFER_OK);
        cr_assert_eq(len, 0, "token %d rendered %zu bytes", malformed[i], len);
    }
    char piece[4];
    size_t len;
    cr_assert_eq(vocab_token_to_piece(v, 7, 0, piece, sizeof piece, &len), INFER_OK);
    cr_assert(len == 1 && piece[0] == 'A');
    /* byte fallback: 'A' has <0x41>; 'B' has nothing, so the unknown token */
    expect_ids(v, "AB", 2, 0, 0, IDS(8, 7, 0));
    vocab_free(v);
}

/* ---- C.28 caller buffers ------------------------------------------------------------ */

Test(vocab_hostile, prompt_longer_than_the_buffer_reports_the_size_needed) {
    infer_vocab *v = spm_vocab();
    const char *t = "x x x x x x x x x x";
    size_t n = 0;
    cr_assert_eq(vocab_tokenize(v, t, strlen(t), 1, 0, NULL, 0, &n, NULL), INFER_EINVAL);
    cr_assert_eq(n, 21); /* BOS + 10 x "▁" "x" */
    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = -7;
    infer_error err = {0};
    cr_assert_eq(vocab_tokenize(v, t, strlen(t), 1, 0, ids, 20, &n, &err), INFER_EINVAL);
    cr_assert_eq(n, 21);
    cr_assert(strstr(err.message, "21"), "%s", err.message);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[19], SPM_SP);
    for (int i = 20; i < 32; i++) cr_assert_eq(ids[i], -7, "wrote past the buffer at %d", i);
    cr_assert_eq(vocab_tokenize(v, t, strlen(t), 1, 0, ids, 21, &n, NULL), INFER_OK);
    cr_assert_eq(ids[20], SPM_X);
    cr_assert_eq(ids[21], -7);
    vocab_free(v);
}

Test(vocab_hostile, null_arguments) {
    infer_vocab *v = spm_vocab();
    size_t n = 5;
    int32_t ids[4];
    cr_assert_eq(vocab_tokenize(NULL, "a", 1, 0, 0, ids, 4, &n, NULL), INFER_EINVAL);
    cr_assert_eq(vocab_tokenize(v, NULL, 1, 0, 0, ids, 4, &n, NULL), INFER_EINVAL);
    cr_assert_eq(vocab_tokenize(v, "a", 1, 0, 0, NULL, 4, &n, NULL), INFER_EINVAL);
    cr_assert_eq(vocab_tokenize(v, "a", 1, 0, 0, ids, 4, NULL, NULL), INFER_EINVAL);
    cr_assert_eq(vocab_tokenize(v, NULL, 0, 1, 0, ids, 4, &n, NULL), INFER_OK);
    cr_assert_eq(n, 1); /* BOS only: empty text gets no space prefix */
    cr_assert_eq(vocab_load(NULL, &v, NULL), INFER_EINVAL);
    size_t len;
    cr_assert_eq(vocab_token_to_piece(NULL, 0, 0, NULL, 0, &len), INFER_EINVAL);
    cr_assert_eq(vocab_token_to_piece(v, SPM_A, 0, NULL, 4, &len), INFER_EINVAL);
    cr_assert_eq(vocab_token_to_piece(v, SPM_A, 0, NULL, 0, &len), INFER_EINVAL); /* needs 1 */
    cr_assert_eq(len, 1);
    cr_assert_eq(vocab_n_tokens(NULL), 0);
    cr_assert_eq(vocab_bos(NULL), -1);
    cr_assert(!vocab_is_eog(NULL, 0));
    vocab_free(NULL);
    vocab_free(v);
}

/* ---- C.29 ids out of range --------------------------------------------------------------- */

Test(vocab_hostile, token_to_piece_rejects_ids_out_of_range) {
    infer_vocab *v = spm_vocab();
    const int32_t bad[] = {-1, SPM_N, SPM_N + 1, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char piece[16];
        size_t len = 3;
        cr_assert_eq(vocab_token_to_piece(v, bad[i], 1, piece, sizeof piece, &len), INFER_EINVAL);
        cr_assert_eq(len, 0);
        cr_assert(!vocab_is_eog(v, bad[i]));
    }
    vocab_free(v);
}


/* A synthetic vocabulary of 150000 tokens: the hash map keeps loading fast. */
Test(vocab_hostile, large_vocabulary_loads_fast) {
    const int n = 150000;
    char **strs = malloc((size_t)n * sizeof *strs);
    char *store = malloc((size_t)n * 12);
    cr_assert(strs && store);
    for (int i = 0; i < n; i++) {
        strs[i] = store + (size_t)i * 12;
        snprintf(strs[i], 12, "t%u", (unsigned)i % 1000000u);
    }
    infer_gguf_writer *w = wnew();
    wstr(w, "tokenizer.ggml.model", "llama");
    wbool(w, "tokenizer.ggml.add_space_prefix", 0);
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs, NULL,
                                               (uint64_t)n), INFER_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(dt, 3.0, "%.2f s", dt);
    expect_ids(v, "t149999", 7, 0, 0, IDS(149999));
    vocab_free(v);
    free(strs);
    free(store);
}

/* 128 KiB of one character, and of two alternating ones. */
Test(vocab_hostile, pathological_text_is_not_quadratic) {
    const size_t N = 128 * 1024;
    char *buf = malloc(N);
    int32_t *ids = malloc((N * 4 + 16) * sizeof *ids);
    infer_vocab *vs[] = {spm_vocab(),          bpe_vocab("gpt-2"),   bpe_vocab("llama-bpe"),
                         bpe_vocab("deepseek-llm"), bpe_vocab("gpt-4o"), bpe_vocab("granite-embed-multi-97m")};
    static const char *const pats[] = {"a", "A", " ", "ab", "\xff", "\xe3\x80\x80", " \n", "'s", "1"};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
            size_t pl = strlen(pats[p]), len = 0, n = 0;
            while (len + pl <= N) memcpy(buf + len, pats[p], pl), len += pl;
            infer_error err = {0};
            cr_assert_eq(vocab_tokenize(vs[k], buf, len, 1, 1, ids, N * 4 + 16, &n, &err), INFER_OK, "%s",
                         err.message);
            cr_assert_gt(n, 0);
        }
        vocab_free(vs[k]);
    }
    free(buf);
    free(ids);
}

/* ---- allocation failure ----------------------------------------------------------------------- */

/* Fail the k-th allocation of vocab_load for every k it makes: each run
 * ends in INFER_ENOMEM with nothing leaked, or (when the failed allocation
 * was optional, like PCRE2's JIT) in a vocabulary that works. */
static void alloc_fail_sweep(infer_gguf_writer *w, const char *text, const int32_t *want) {
    void *buf = NULL;
    size_t size = 0;
    infer_gguf *g = NULL;
    infer_vocab *v = NULL;
    cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, NULL), INFER_OK);
    infer_gguf_writer_free(w);
    cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, NULL), INFER_OK);
    uint64_t c0 = infer_alloc_count();
    cr_assert_eq(vocab_load(g, &v, NULL), INFER_OK);
    uint64_t total = infer_alloc_count() - c0;
    expect_ids(v, text, strlen(text), 1, 1, want);
    uint64_t c1 = infer_alloc_count();
    int32_t ids[64];
    size_t n;
    cr_assert_eq(vocab_tokenize(v, text, strlen(text), 1, 1, ids, 64, &n, NULL), INFER_OK);
    uint64_t tok_allocs = infer_alloc_count() - c1;
    cr_assert_gt(tok_allocs, 0);
    /* tokenizing under injection */
    for (uint64_t k = 1; k <= tok_allocs; k++) {
        infer_error err = {0};
        infer_alloc_fail_at(k);
        infer_status s = vocab_tokenize(v, text, strlen(text), 1, 1, ids, 64, &n, &err);
        infer_alloc_fail_at(0);
        cr_assert(s == INFER_ENOMEM || s == INFER_OK, "k=%llu: %s", (unsigned long long)k, infer_status_name(s));
        if (s == INFER_OK) expect_ids(v, text, strlen(text), 1, 1, want);
    }
    vocab_free(v);
    cr_assert_gt(total, 5);
    int failures = 0;
    for (uint64_t k = 1; k <= total; k++) {
        infer_error err = {0};
        v = (infer_vocab *)(uintptr_t)1;
        infer_alloc_fail_at(k);
        infer_status s = vocab_load(g, &v, &err);
        infer_alloc_fail_at(0);
        if (s == INFER_OK) {
            expect_ids(v, text, strlen(text), 1, 1, want);
            vocab_free(v);
        } else {
            cr_assert_eq(s, INFER_ENOMEM, "k=%llu: %s (%s)", (unsigned long long)k, infer_status_name(s),
                         err.message);
            cr_assert_null(v);
            failures++;
        }
    }
    cr_assert_gt(failures, 5);
    infer_gguf_close(g);
    free(buf);
    LEAK_CHECK();
}

Test(vocab_hostile, allocation_failure_spm) {
    alloc_fail_sweep(spm_writer(0), "abc x</s>", IDS(1, SPM_SP, SPM_ABC, SPM_SP, SPM_X, 2));
}

Test(vocab_hostile, allocation_failure_bpe) {
    alloc_fail_sweep(bpe_writer("deepseek-llm", 0), " abc<|endoftext|>", IDS(' ', BPE_ABC, BPE_EOT));
}

/* ---- threads ------------------------------------------------------------------------------------- */

typedef struct {
    const infer_vocab *v;
    int ok;
} thread_arg;

static void *tokenize_many(void *p) {
    thread_arg *a = p;
    const int32_t want[] = {' ', BPE_ABC, ' ', BPE_AB, 'z'};
    a->ok = 1;
    for (int i = 0; i < 2000 && a->ok; i++) {
        int32_t ids[16];
        size_t n = 0;
        if (vocab_tokenize(a->v, " abc abz", 8, 0, 0, ids, 16, &n, NULL) != INFER_OK || n != 5 ||
            memcmp(ids, want, sizeof want) != 0) {
            a->ok = 0;
        }
    }
    return NULL;
}

Test(vocab_hostile, one_vocabulary_many_threads) {
    infer_vocab *v = bpe_vocab("gpt-2");
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){v, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, tokenize_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert(args[i].ok, "thread %d saw a wrong tokenization", i);
    }
    vocab_free(v);
}
