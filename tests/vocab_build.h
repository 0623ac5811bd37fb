/* vocab_build.h - vocabularies built in memory with the project's GGUF
 * writer for the tokenizer suites (test_vocab_hostile.c,
 * test_vocab_behavior.c): a small SPM vocabulary, a byte-level BPE one
 * for a given pre-tokenizer (either with parts left out on request), and
 * expect_ids, which checks a tokenization against a list of ids. */
#ifndef INFER_VOCAB_BUILD_H
#define INFER_VOCAB_BUILD_H

#include <stdint.h>
#include <string.h>

#include "testutil.h"
#include "util.h"
#include "vocab.h"

/* ---- building vocabularies -------------------------------------------------- */

static inline infer_gguf_writer *wnew(void) {
    infer_gguf_writer *w = NULL;
    cr_assert_eq(infer_gguf_writer_new(&w, NULL), INFER_OK);
    return w;
}

static inline void wstr(infer_gguf_writer *w, const char *key, const char *val) {
    cr_assert_eq(infer_gguf_writer_set_str(w, key, val, strlen(val)), INFER_OK);
}

static inline void wu32(infer_gguf_writer *w, const char *key, uint32_t val) {
    cr_assert_eq(infer_gguf_writer_set_u32(w, key, val), INFER_OK);
}

static inline void wbool(infer_gguf_writer *w, const char *key, int val) {
    uint8_t b = (uint8_t)(val != 0);
    cr_assert_eq(infer_gguf_writer_set(w, key, INFER_GGUF_BOOL, &b), INFER_OK);
}

/* Finish w (freed), parse it, and load a vocabulary from it. */
static inline infer_status open_vocab(infer_gguf_writer *w, infer_vocab **v, infer_error *err) {
    void *buf = NULL;
    size_t size = 0;
    infer_gguf *g = NULL;
    cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, NULL), INFER_OK);
    infer_gguf_writer_free(w);
    cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, NULL), INFER_OK);
    *v = (infer_vocab *)(uintptr_t)1; /* must be reset on failure */
    infer_status s = vocab_load(g, v, err);
    if (s != INFER_OK) cr_assert_null(*v, "vocab_load failed but left a vocabulary");
    infer_gguf_close(g);
    free(buf);
    return s;
}

/* A "llama" (SentencePiece) vocabulary of exactly these n tokens (lens
 * NULL: C strings) and types, no scores. */
static inline infer_vocab *llama_vocab_of(const char *const *tokens, const size_t *lens, const int32_t *types, size_t n) {
    infer_gguf_writer *w = wnew();
    wstr(w, "tokenizer.ggml.model", "llama");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, lens, n), INFER_OK);
    cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, types, n), INFER_OK);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    return v;
}

/* The SentencePiece test vocabulary: specials, 256 byte tokens, a few pieces. */
enum { OMIT_MODEL = 1, OMIT_TOKENS = 2, OMIT_SCORES = 4, OMIT_TYPES = 8 };
enum { SPM_SP = 259, SPM_A, SPM_B, SPM_C, SPM_AB, SPM_SPA, SPM_ABC, SPM_U, SPM_ZH, SPM_X, SPM_N };
static const struct {
    const char *text;
    int32_t type;
    float score;
} spm_extra[] = {
    {"\xe2\x96\x81", 1, -1.0f},   {"a", 1, -2.0f},   {"b", 1, -2.0f},     {"c", 1, -2.0f},
    {"ab", 1, -0.5f},             {"\xe2\x96\x81" "a", 1, -1.0f},         {"abc", 1, -0.25f},
    {"<|u|>", 4, 0.0f},           {"\xe4\xb8\xad", 1, -3.0f},             {"x", 1, -2.0f},
};

static inline void spm_arrays(char (*texts)[8], const char **strs, int32_t *types, float *scores) {
    const char *head[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) strs[i] = head[i], types[i] = i == 0 ? 2 : 3, scores[i] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(texts[b], 8, "<0x%02X>", b);
        strs[3 + b] = texts[b], types[3 + b] = 6, scores[3 + b] = 0;
    }
    for (int i = 0; i < SPM_N - SPM_SP; i++) {
        strs[SPM_SP + i] = spm_extra[i].text;
        types[SPM_SP + i] = spm_extra[i].type;
        scores[SPM_SP + i] = spm_extra[i].score;
    }
}

static inline infer_gguf_writer *spm_writer(unsigned omit) {
    static char texts[256][8];
    const char *strs[SPM_N];
    int32_t types[SPM_N];
    float scores[SPM_N];
    spm_arrays(texts, strs, types, scores);
    infer_gguf_writer *w = wnew();
    if (!(omit & OMIT_MODEL)) wstr(w, "tokenizer.ggml.model", "llama");
    if (!(omit & OMIT_TOKENS)) {
        cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, SPM_N), INFER_OK);
    }
    if (!(omit & OMIT_SCORES)) {
        cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, scores, SPM_N),
                     INFER_OK);
    }
    if (!(omit & OMIT_TYPES)) {
        cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, types, SPM_N),
                     INFER_OK);
    }
    return w;
}

static inline infer_vocab *spm_vocab(void) {
    infer_vocab *v;
    infer_error err = {0};
    cr_assert_eq(open_vocab(spm_writer(0), &v, &err), INFER_OK, "%s", err.message);
    return v;
}

/* The byte-level BPE test vocabulary: token b (0..255) is byte b's GPT-2
 * stand-in, then merged pieces and a control token. */
static inline uint32_t gpt2_cp(int b) {
    if (b <= 0x20) return 256u + (uint32_t)b;
    if (b >= 0x7f && b <= 0xa0) return 256u + 33 + (uint32_t)(b - 0x7f);
    if (b == 0xad) return 256u + 67;
    return (uint32_t)b;
}

static inline size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    o[0] = (char)(0xc0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

enum { BPE_AB = 256, BPE_GA, BPE_ABC, BPE_GABC, BPE_EOT, BPE_N };
#define G "\xc4\xa0" /* Ġ, the stand-in for a space */

static inline infer_gguf_writer *bpe_writer(const char *pre, unsigned omit) {
    static char texts[256][4];
    const char *strs[BPE_N];
    int32_t types[BPE_N];
    for (int b = 0; b < 256; b++) {
        size_t n = put_utf8(texts[b], gpt2_cp(b));
        texts[b][n] = 0;
        strs[b] = texts[b];
        types[b] = 1;
    }
    strs[BPE_AB] = "ab", strs[BPE_GA] = G "a", strs[BPE_ABC] = "abc", strs[BPE_GABC] = G "abc";
    strs[BPE_EOT] = "<|endoftext|>";
    for (int i = BPE_AB; i < BPE_N; i++) types[i] = 1;
    types[BPE_EOT] = 3;
    const char *merges[] = {"a b", G " a", "ab c", "nospace", G "a b"};
    infer_gguf_writer *w = wnew();
    if (!(omit & OMIT_MODEL)) wstr(w, "tokenizer.ggml.model", "gpt2");
    if (pre) wstr(w, "tokenizer.ggml.pre", pre);
    if (!(omit & OMIT_TOKENS)) {
        cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, BPE_N), INFER_OK);
    }
    if (!(omit & OMIT_TYPES)) {
        cr_assert_eq(infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, types, BPE_N),
                     INFER_OK);
    }
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 5), INFER_OK);
    wu32(w, "tokenizer.ggml.bos_token_id", BPE_EOT);
    wu32(w, "tokenizer.ggml.eos_token_id", BPE_EOT);
    return w;
}

static inline infer_vocab *bpe_vocab(const char *pre) {
    infer_vocab *v;
    infer_error err = {0};
    cr_assert_eq(open_vocab(bpe_writer(pre, 0), &v, &err), INFER_OK, "%s", err.message);
    return v;
}

/* Tokenize and compare with the expected ids (terminated by -1). */
static inline void expect_ids(const infer_vocab *v, const char *text, size_t len, int add_special, int parse_special,
                       const int32_t *want) {
    int32_t ids[256];
    size_t n = 0, nw = 0;
    infer_error err = {0};
    while (want[nw] >= 0) nw++;
    cr_assert_eq(vocab_tokenize(v, text, len, add_special, parse_special, ids, 256, &n, &err), INFER_OK, "%s",
                 err.message);
    char got[512] = "";
    for (size_t i = 0, o = 0; i < n && o < sizeof got - 16; i++) o += (size_t)snprintf(got + o, 16, " %d", ids[i]);
    cr_assert_eq(n, nw, "'%.*s': %zu ids (%s), expected %zu", (int)len, text, n, got, nw);
    cr_assert_arr_eq(ids, want, n * sizeof *ids, "'%.*s': got%s", (int)len, text, got);
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__, -1})

#endif
