/* fuzz_tokenizer.c - libFuzzer target for the tokenizer.
 *
 * Two small vocabularies are built once with the project's GGUF writer: a
 * SentencePiece one (byte tokens, a few merges, a user-defined and control
 * tokens) and a byte-level BPE one (all 256 byte stand-ins, merges, a
 * control token; llama3 pre-tokenizer). The input is tokenized with each,
 * with and without BOS / special-token parsing, first to learn the size and
 * then for real; every id must be in range; the ids are detokenized through
 * the UTF-8 stream. Byte-level BPE must give the text back exactly (invalid
 * UTF-8 as U+FFFD, as llama.cpp); SentencePiece likewise, up to the space
 * prefix and "▁", when no user-defined token is in the text. A third
 * vocabulary of 30 overlapping specials (user-defined and control, with
 * lstrip and rstrip) has the input split both ways and compared with the
 * fragment-by-fragment algorithm (tests/vocab_split_oracle.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer_gguf.h"
#include "vocab.h"
#include "../tests/vocab_split_oracle.h"

#define CHECK(cond)                    \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

static infer_vocab *spm, *bpe, *spl;

static infer_vocab *load(infer_gguf_writer *w) {
    void *buf = NULL;
    size_t size = 0;
    infer_gguf *g = NULL;
    infer_vocab *v = NULL;
    CHECK(infer_gguf_writer_finish(w, &buf, &size, NULL) == INFER_OK);
    infer_gguf_writer_free(w);
    CHECK(infer_gguf_open_memory(buf, size, 0, &g, NULL) == INFER_OK);
    CHECK(vocab_load(g, &v, NULL) == INFER_OK);
    infer_gguf_close(g);
    free(buf);
    return v;
}

static void build_spm(void) {
    static char bytes[256][8];
    const char *extra[] = {"\xe2\x96\x81", "a", "b", "ab", ("\xe2\x96\x81" "a"), "abc", "<|u|>", "\xe4\xb8\xad", "x"};
    const int32_t extra_type[] = {1, 1, 1, 1, 1, 1, 4, 1, 1};
    const float extra_score[] = {-1, -2, -2, -0.5f, -1, -0.25f, 0, -3, -2};
    enum { N = 3 + 256 + 9 };
    const char *strs[N];
    int32_t types[N];
    float scores[N];
    const char *head[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) strs[i] = head[i], types[i] = i ? 3 : 2, scores[i] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        strs[3 + b] = bytes[b], types[3 + b] = 6, scores[3 + b] = 0;
    }
    for (int i = 0; i < 9; i++) strs[259 + i] = extra[i], types[259 + i] = extra_type[i], scores[259 + i] = extra_score[i];
    infer_gguf_writer *w = NULL;
    CHECK(infer_gguf_writer_new(&w, NULL) == INFER_OK);
    infer_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, N);
    infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, scores, N);
    infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, types, N);
    spm = load(w);
}

static uint32_t gpt2_cp(int b) {
    if (b <= 0x20) return 256u + (uint32_t)b;
    if (b >= 0x7f && b <= 0xa0) return 256u + 33 + (uint32_t)(b - 0x7f);
    if (b == 0xad) return 256u + 67;
    return (uint32_t)b;
}

static void build_bpe(void) {
    static char bytes[256][4];
    enum { N = 256 + 8 }; /* every merge's result is a token: no bytes get lost */
    const char *strs[N];
    int32_t types[N];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = gpt2_cp(b);
        if (cp < 0x80) {
            bytes[b][0] = (char)cp, bytes[b][1] = 0;
        } else {
            bytes[b][0] = (char)(0xc0 | (cp >> 6)), bytes[b][1] = (char)(0x80 | (cp & 0x3f)), bytes[b][2] = 0;
        }
        strs[b] = bytes[b], types[b] = 1;
    }
    strs[256] = "ab", strs[257] = "\xc4\xa0" "a", strs[258] = "abc", strs[259] = "\xc4\xa0" "abc";
    strs[260] = "<|endoftext|>", strs[261] = "\xc4\xa0" "ab", strs[262] = "ee", strs[263] = "\xc4\xa0\xc4\xa0";
    for (int i = 256; i < N; i++) types[i] = i == 260 ? 3 : 1;
    const char *merges[] = {"a b", "\xc4\xa0 a", "ab c", ("\xc4\xa0" "a b"), "e e", "\xc4\xa0 \xc4\xa0"};
    uint32_t eot = 260;
    infer_gguf_writer *w = NULL;
    CHECK(infer_gguf_writer_new(&w, NULL) == INFER_OK);
    infer_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4);
    infer_gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe", 9);
    infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, N);
    infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, types, N);
    infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 6);
    infer_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", eot);
    infer_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", eot);
    bpe = load(w);
}

/* Specials over "ab \n": every text of 1-2 characters, then longer ones
 * that overlap them and each other, a third control; lstrip and rstrip
 * on a pattern. */
static void build_split(void) {
    static char bytes[256][8], texts[64][8];
    static const char *const longer[] = {"aaa", "aab", "ab a", "a\nb", " a ", "bbbb", "abab", "aaaaa", "b  b", "\n a"};
    const char *strs[3 + 256 + 64];
    int32_t types[3 + 256 + 64];
    const char *head[] = {"<unk>", "<s>", "</s>"};
    size_t n = 0;
    for (int i = 0; i < 3; i++) strs[n] = head[i], types[n++] = i ? 3 : 2;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        strs[n] = bytes[b], types[n++] = 6;
    }
    const char alpha[] = "ab \n";
    size_t t = 0;
    for (int i = 0; i < 4; i++) {
        texts[t][0] = alpha[i], texts[t][1] = 0, t++;
        for (int j = 0; j < 4; j++) texts[t][0] = alpha[i], texts[t][1] = alpha[j], texts[t][2] = 0, t++;
    }
    for (size_t i = 0; i < sizeof longer / sizeof longer[0]; i++) strcpy(texts[t++], longer[i]);
    for (size_t i = 0; i < t; i++) strs[n] = texts[i], types[n++] = i % 3 == 2 ? 3 : 4;
    infer_gguf_writer *w = NULL;
    CHECK(infer_gguf_writer_new(&w, NULL) == INFER_OK);
    infer_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, n);
    infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, types, n);
    spl = load(w);
    for (size_t k = 0; k < spl->n_specials; k++) {
        vocab_tok *tk = &spl->toks[spl->specials[k]];
        if (k % 4 == 1 || k % 4 == 3) tk->attr |= ATTR_LSTRIP;
        if (k % 4 >= 2) tk->attr |= ATTR_RSTRIP;
    }
}

/* The text as llama.cpp's BPE sees it: each byte that does not start a
 * well-formed sequence (no overlong or surrogate checks) becomes U+FFFD. */
static size_t normalize(const uint8_t *s, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t need = c < 0x80 ? 1 : !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
        int ok = need > 0 && n - i >= need;
        uint32_t cp = need == 2 ? (c & 0x1fu) : need == 3 ? (c & 0x0fu) : (c & 0x07u);
        for (size_t k = 1; ok && k < need; k++) {
            ok = (s[i + k] & 0xc0) == 0x80;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (need == 1) {
            out[o++] = c, i++;
            continue;
        }
        if (!ok || cp > 0x10ffff) {
            memcpy(out + o, "\xef\xbf\xbd", 3), o += 3;
            i += ok ? need : 1;
            continue;
        }
        /* re-encoded canonically (an overlong form shrinks) */
        if (cp < 0x80) out[o++] = (uint8_t)cp;
        else if (cp < 0x800) out[o++] = (uint8_t)(0xc0 | (cp >> 6)), out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
        else if (cp < 0x10000) {
            out[o++] = (uint8_t)(0xe0 | (cp >> 12));
            out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else {
            out[o++] = (uint8_t)(0xf0 | (cp >> 18));
            out[o++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
        }
        i += need;
    }
    return o;
}

/* Tokenize, check, detokenize; returns the text (malloc'd, *len). */
static uint8_t *round_trip(const infer_vocab *v, const uint8_t *data, size_t size, int add, int parse,
                           size_t *len) {
    size_t n = 0, n2 = 0;
    infer_status s = vocab_tokenize(v, (const char *)data, size, add, parse, NULL, 0, &n, NULL);
    CHECK(s == INFER_OK ? n == 0 : s == INFER_EINVAL);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    CHECK(ids != NULL);
    CHECK(vocab_tokenize(v, (const char *)data, size, add, parse, ids, n, &n2, NULL) == INFER_OK);
    CHECK(n2 == n);
    size_t cap = 16 * size + 64, o = 0;
    uint8_t *text = malloc(cap), piece[64];
    char streamed[96];
    vocab_utf8_stream us = {0};
    size_t so = 0;
    CHECK(text != NULL);
    for (size_t i = 0; i < n; i++) {
        size_t pl = 0;
        CHECK(ids[i] >= 0 && ids[i] < vocab_n_tokens(v));
        CHECK(vocab_token_to_piece(v, ids[i], 0, (char *)piece, sizeof piece, &pl) == INFER_OK);
        CHECK(o + pl <= cap);
        memcpy(text + o, piece, pl);
        /* the stream gives the same bytes back, whole characters at a time */
        size_t got = vocab_utf8_stream_push(&us, (const char *)piece, pl, streamed, pl + 8);
        CHECK(got <= pl + 8);
        CHECK(so + got <= o + pl && memcmp(streamed, text + so, got) == 0);
        so += got;
        o += pl;
        CHECK(vocab_token_to_piece(v, ids[i], 1, (char *)piece, sizeof piece, &pl) == INFER_OK);
    }
    so += vocab_utf8_stream_flush(&us, streamed, sizeof streamed);
    CHECK(so == o);
    free(ids);
    *len = o;
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!spm) build_spm();
    if (!bpe) build_bpe();
    if (!spl) build_split();
    for (int parse = 0; parse < 2; parse++) {
        vocab_frag_list got = {0};
        CHECK(vocab_partition(spl, (const char *)data, size, parse, &got, NULL) == INFER_OK);
        vocab_frag_list want = oracle_partition(spl, (const char *)data, size, parse);
        CHECK(oracle_same(&got, &want));
        free(got.a);
        free(want.a);
    }
    for (int mode = 0; mode < 2; mode++) {
        size_t len;
        uint8_t *t = round_trip(bpe, data, size, mode, mode, &len);
        if (mode == 0) {
            uint8_t *want = malloc(3 * size + 1);
            CHECK(want != NULL);
            size_t wl = normalize(data, size, want);
            CHECK(len == wl && memcmp(t, want, wl) == 0);
            free(want);
        }
        free(t);

        t = round_trip(spm, data, size, mode, mode, &len);
        if (mode == 0 && size > 0 && !memmem(data, size, "<|u|>", 5)) {
            /* SentencePiece sees "▁" + the text with spaces as "▁", cut
             * into characters by their lead bytes; a "▁" character renders
             * as a space, everything else (byte fallback included) as is */
            uint8_t *esc = malloc(3 * size + 3);
            CHECK(esc != NULL);
            size_t el = 3, k = 0;
            memcpy(esc, "\xe2\x96\x81", 3);
            for (size_t i = 0; i < size; i++) {
                if (data[i] == ' ') memcpy(esc + el, "\xe2\x96\x81", 3), el += 3;
                else esc[el++] = data[i];
            }
            for (size_t i = 0; i < el;) {
                static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
                size_t cl = lens[esc[i] >> 4];
                if (cl > el - i) cl = el - i;
                if (cl == 3 && memcmp(esc + i, "\xe2\x96\x81", 3) == 0) {
                    CHECK(k < len && t[k++] == ' ');
                } else {
                    CHECK(k + cl <= len && memcmp(t + k, esc + i, cl) == 0);
                    k += cl;
                }
                i += cl;
            }
            CHECK(k == len);
            free(esc);
        }
        free(t);
    }
    return 0;
}
