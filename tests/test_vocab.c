/* test_vocab.c - the tokenizer against llama.cpp's own results.
 *
 * ../shared/vocab holds llama.cpp's tokenizer test vocabularies with their
 * inputs (.inp, split on "\n__ggml_vocab_test__\n") and the ids llama.cpp
 * produced (.out, one line per input; no BOS, special tokens not parsed).
 * Every vector must match exactly. ../shared/reference adds stories260K's
 * tokenizations (with and without BOS). Detokenizing the expected ids must
 * give the input back wherever llama.cpp's round trip does. All of these
 * skip with a message when ../shared is absent; the UTF-8 stream tests at
 * the end need nothing. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "vocab.h"

#define MAX_IDS 8192

static infer_vocab *load_vocab_file(const char *path) {
    infer_error err = {0};
    infer_gguf *g = NULL;
    infer_vocab *v = NULL;
    cr_assert_eq(infer_gguf_open(path, 0, &g, &err), INFER_OK, "%s: %s", path, err.message);
    infer_status s = vocab_load(g, &v, &err);
    infer_gguf_close(g);
    cr_assert_eq(s, INFER_OK, "%s: %s", path, err.message);
    return v;
}

/* Parse "1 2 3" into ids; returns the count. */
static size_t parse_ids(const char *s, size_t len, int32_t *ids, size_t cap) {
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
        if (i >= len) break;
        long val = 0;
        int any = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') val = val * 10 + (s[i++] - '0'), any = 1;
        cr_assert(any, "bad id list near '%.20s'", s + i);
        cr_assert(n < cap);
        ids[n++] = (int32_t)val;
    }
    return n;
}

/* Concatenated pieces of ids (special tokens not rendered), as
 * llama_detokenize does it: for SPM the first piece loses one leading space. */
static size_t detokenize(const infer_vocab *v, const int32_t *ids, size_t n, int strip_first_space,
                         char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char piece[1024];
        size_t len;
        cr_assert_eq(vocab_token_to_piece(v, ids[i], 0, piece, sizeof piece, &len), INFER_OK);
        const char *p = piece;
        if (i == 0 && strip_first_space && len > 0 && piece[0] == ' ') p++, len--;
        cr_assert(o + len <= cap);
        memcpy(out + o, p, len);
        o += len;
    }
    return o;
}

typedef struct {
    int pass, total, rt_pass, rt_total;
} vec_result;

/* Run every vector of ggml-vocab-<name>.gguf; round trip when asked. */
static vec_result run_vectors(const char *name, int round_trip, int strip_space) {
    char rel[256], path[512], inp_path[600], out_path[600];
    vec_result r = {0};
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    SHARED_OR_SKIP(path, rel);
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    infer_vocab *v = load_vocab_file(path);
    size_t ni = 0, no = 0;
    char *inp = read_file(inp_path, &ni), *out = read_file(out_path, &no);
    cr_assert(inp && out, "cannot read the vectors of %s", name);

    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sl = sizeof sep - 1;
    static int32_t ids[MAX_IDS], want[MAX_IDS];
    static char text[65536];
    char *p = inp, *q = out, *inp_end = inp + ni, *out_end = out + no;
    while (p < inp_end && q < out_end) {
        char *e = memmem(p, (size_t)(inp_end - p), sep, sl);
        size_t len = e ? (size_t)(e - p) : (size_t)(inp_end - p);
        char *nl = memchr(q, '\n', (size_t)(out_end - q));
        size_t ql = nl ? (size_t)(nl - q) : (size_t)(out_end - q);
        size_t nw = parse_ids(q, ql, want, MAX_IDS), n = 0;
        infer_error err = {0};
        infer_status s = vocab_tokenize(v, p, len, 0, 0, ids, MAX_IDS, &n, &err);
        int ok = s == INFER_OK && n == nw && memcmp(ids, want, n * sizeof *ids) == 0;
        r.total++;
        r.pass += ok;
        if (!ok) {
            cr_log_error("%s vector %d ('%.*s'): %zu ids, expected %zu (%s)", name, r.total - 1,
                         (int)(len < 60 ? len : 60), p, n, nw, s ? err.message : "ids differ");
        }
        if (round_trip) {
            size_t tl = detokenize(v, want, nw, strip_space, text, sizeof text);
            int rt = tl == len && memcmp(text, p, len) == 0;
            r.rt_total++;
            r.rt_pass += rt;
            if (!rt) cr_log_error("%s vector %d does not round-trip", name, r.total - 1);
        }
        q = nl ? nl + 1 : out_end;
        if (!e) break;
        p = e + sl;
    }
    cr_log_info("%s: %d/%d vectors match llama.cpp", name, r.pass, r.total);
    free(inp);
    free(out);
    vocab_free(v);
    return r;
}

Test(vocab, llama_spm_vectors_match_llama_cpp) {
    vec_result r = run_vectors("llama-spm", 1, 1);
    cr_assert_eq(r.total, 46);
    cr_assert_eq(r.pass, r.total, "llama-spm: %d/%d vectors", r.pass, r.total);
    cr_assert_eq(r.rt_pass, r.rt_total, "llama-spm: %d/%d round trips", r.rt_pass, r.rt_total);
}

Test(vocab, phi3_vectors_match_llama_cpp) {
    vec_result r = run_vectors("phi-3", 1, 1);
    cr_assert_eq(r.total, 46);
    cr_assert_eq(r.pass, r.total, "phi-3: %d/%d vectors", r.pass, r.total);
    cr_assert_eq(r.rt_pass, r.rt_total, "phi-3: %d/%d round trips", r.rt_pass, r.rt_total);
}

Test(vocab, gpt2_vectors_match_llama_cpp) {
    vec_result r = run_vectors("gpt-2", 1, 0);
    cr_assert_eq(r.total, 46);
    cr_assert_eq(r.pass, r.total, "gpt-2: %d/%d vectors", r.pass, r.total);
    cr_assert_eq(r.rt_pass, r.rt_total, "gpt-2: %d/%d round trips", r.rt_pass, r.rt_total);
}

Test(vocab, starcoder_vectors_match_llama_cpp) {
    vec_result r = run_vectors("starcoder", 1, 0);
    cr_assert_eq(r.total, 46);
    cr_assert_eq(r.pass, r.total, "starcoder: %d/%d vectors", r.pass, r.total);
    cr_assert_eq(r.rt_pass, r.rt_total, "starcoder: %d/%d round trips", r.rt_pass, r.rt_total);
}

Test(vocab, deepseek_llm_vectors_match_llama_cpp) {
    vec_result r = run_vectors("deepseek-llm", 1, 0);
    cr_assert_eq(r.total, 46);
    cr_assert_eq(r.pass, r.total, "deepseek-llm: %d/%d vectors", r.pass, r.total);
    cr_assert_eq(r.rt_pass, r.rt_total, "deepseek-llm: %d/%d round trips", r.rt_pass, r.rt_total);
}

Test(vocab, parse_only_vocabularies_load) {
    static const char *const names[] = {"baichuan", "gpt-neox"};
    for (size_t i = 0; i < 2; i++) {
        char rel[128], path[512];
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[i]);
        SHARED_OR_SKIP(path, rel);
        infer_vocab *v = load_vocab_file(path);
        cr_assert_gt(vocab_n_tokens(v), 50000);
        /* and they tokenize something without trouble */
        int32_t ids[64];
        size_t n = 0;
        cr_assert_eq(vocab_tokenize(v, "Hello world", 11, 1, 1, ids, 64, &n, NULL), INFER_OK);
        cr_assert_gt(n, 0);
        vocab_free(v);
    }
}

Test(vocab, wordpiece_bert_is_rejected_cleanly) {
    char path[512];
    infer_error err = {0};
    infer_gguf *g = NULL;
    infer_vocab *v = (infer_vocab *)1;
    SHARED_OR_SKIP(path, "vocab/ggml-vocab-bert-bge.gguf");
    cr_assert_eq(infer_gguf_open(path, 0, &g, &err), INFER_OK);
    cr_assert_eq(vocab_load(g, &v, &err), INFER_EUNSUPPORTED);
    cr_assert_null(v);
    cr_assert(strstr(err.message, "tokenizer.ggml.model") && strstr(err.message, "bert"), "%s", err.message);
    infer_gguf_close(g);
}

Test(vocab, deepseek_vocabulary_loads_in_well_under_a_second) {
    char path[512];
    SHARED_OR_SKIP(path, "vocab/ggml-vocab-deepseek-llm.gguf");
    double t0 = test_now_s();
    infer_vocab *v = load_vocab_file(path);
    double dt = test_now_s() - t0;
    cr_assert_eq(vocab_n_tokens(v), 102400);
    vocab_free(v);
    /* measured ~0.1 s at -O2; ASan builds are several times slower */
    cr_assert_lt(dt, 2.0, "loading 102400 tokens took %.2f s", dt);
}

/* ---- stories260K (the model the greedy and perplexity references use) ---- */

Test(vocab, stories260k_tokenize_reference) {
    char path[512], tsv_path[512];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    SHARED_OR_SKIP(tsv_path, "reference/tokenize/stories260K.tokenize.tsv");
    infer_vocab *v = load_vocab_file(path);
    size_t tl = 0;
    char *tsv = read_file(tsv_path, &tl);
    cr_assert_not_null(tsv);
    int rows = 0;
    char *line = strchr(tsv, '\n'); /* skip the header */
    while (line && *++line) {
        char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        /* columns: n, input, bytes, n_tokens, ids */
        char *cols[5] = {line};
        int nc = 1;
        for (size_t i = 0; i < ll && nc < 5; i++) {
            if (line[i] == '\t') cols[nc++] = line + i + 1;
        }
        cr_assert_eq(nc, 5, "bad tsv row %d", rows + 1);
        int num = atoi(cols[0]);
        size_t want_bytes = (size_t)strtoul(cols[2], NULL, 10), want_n = (size_t)strtoul(cols[3], NULL, 10);
        char rel[128], ipath[512];
        snprintf(rel, sizeof rel, "reference/tokenize/inputs/%02d.txt", num);
        SHARED_OR_SKIP(ipath, rel);
        size_t il = 0;
        char *in = read_file(ipath, &il);
        cr_assert_not_null(in);
        cr_assert_eq(il, want_bytes, "input %d: %zu bytes, tsv says %zu", num, il, want_bytes);
        int32_t want[512], ids[512];
        size_t nw = parse_ids(cols[4], (size_t)(line + ll - cols[4]), want, 512), n = 0;
        cr_assert_eq(nw, want_n);
        cr_assert_eq(vocab_tokenize(v, in, il, 0, 0, ids, 512, &n, NULL), INFER_OK);
        cr_assert_eq(n, nw, "input %d: %zu tokens, expected %zu", num, n, nw);
        cr_assert_arr_eq(ids, want, n * sizeof *ids, "input %d: ids differ", num);
        free(in);
        rows++;
        line = end;
    }
    cr_assert_eq(rows, 20);
    free(tsv);
    vocab_free(v);
}

Test(vocab, stories260k_prompts_with_bos) {
    char path[512];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    infer_vocab *v = load_vocab_file(path);
    cr_assert(vocab_add_bos(v));
    cr_assert_eq(vocab_bos(v), 1);
    cr_assert_eq(vocab_eos(v), 2);
    cr_assert(vocab_is_eog(v, 2));
    cr_assert(!vocab_is_eog(v, 1));
    for (int k = 1; k <= 4; k++) {
        char rel[128], ppath[512], ipath[512];
        snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.prompt.txt", k);
        SHARED_OR_SKIP(ppath, rel);
        snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.prompt_ids.txt", k);
        SHARED_OR_SKIP(ipath, rel);
        size_t pl = 0, il = 0;
        char *prompt = read_file(ppath, &pl), *idtext = read_file(ipath, &il);
        cr_assert(prompt && idtext);
        int32_t want[256], ids[256];
        size_t nw = parse_ids(idtext, strcspn(idtext, "\n"), want, 256), n = 0;
        cr_assert_eq(vocab_tokenize(v, prompt, pl, 1, 0, ids, 256, &n, NULL), INFER_OK);
        cr_assert_eq(n, nw, "prompt %d: %zu tokens, expected %zu", k, n, nw);
        cr_assert_arr_eq(ids, want, n * sizeof *ids, "prompt %d: ids differ", k);
        free(prompt);
        free(idtext);
    }
    vocab_free(v);
}

/* The greedy reference's text is the concatenation of the generated pieces
 * (its first piece keeps its SentencePiece leading space). */
Test(vocab, stories260k_generated_ids_detokenize_to_reference_text) {
    char path[512];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    infer_vocab *v = load_vocab_file(path);
    for (int k = 1; k <= 4; k++) {
        char rel[128], ipath[512], tpath[512];
        snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.ids.txt", k);
        SHARED_OR_SKIP(ipath, rel);
        snprintf(rel, sizeof rel, "reference/greedy/stories260K.%d.txt", k);
        SHARED_OR_SKIP(tpath, rel);
        size_t il = 0, tl = 0;
        char *idtext = read_file(ipath, &il), *want = read_file(tpath, &tl);
        cr_assert(idtext && want);
        int32_t ids[512];
        size_t n = parse_ids(idtext, il, ids, 512);
        cr_assert_eq(n, 128);
        static char text[65536];
        size_t len = 0;
        vocab_utf8_stream us = {0};
        for (size_t i = 0; i < n; i++) {
            char piece[256];
            size_t pl;
            cr_assert_eq(vocab_token_to_piece(v, ids[i], 0, piece, sizeof piece, &pl), INFER_OK);
            len += vocab_utf8_stream_push(&us, piece, pl, text + len, sizeof text - len);
        }
        len += vocab_utf8_stream_flush(&us, text + len, sizeof text - len);
        cr_assert_eq(len, tl, "prompt %d: %zu bytes of text, reference has %zu", k, len, tl);
        cr_assert_arr_eq(text, want, len);
        free(idtext);
        free(want);
    }
    vocab_free(v);
}

/* ---- special tokens with real vocabularies --------------------------------- */

Test(vocab, parse_special_recognises_control_tokens_only_when_asked) {
    char path[512];
    SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
    infer_vocab *v = load_vocab_file(path);
    int32_t ids[64];
    size_t n = 0;
    const char *t = "<s>Hello</s>";
    cr_assert_eq(vocab_tokenize(v, t, strlen(t), 0, 1, ids, 64, &n, NULL), INFER_OK);
    cr_assert_geq(n, 3);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[n - 1], 2);
    /* a control token never renders unless asked */
    char piece[16];
    size_t pl = 99;
    cr_assert_eq(vocab_token_to_piece(v, 2, 0, piece, sizeof piece, &pl), INFER_OK);
    cr_assert_eq(pl, 0);
    cr_assert_eq(vocab_token_to_piece(v, 2, 1, piece, sizeof piece, &pl), INFER_OK);
    cr_assert(pl == 4 && memcmp(piece, "</s>", 4) == 0);
    /* without parse_special the same text is plain text */
    cr_assert_eq(vocab_tokenize(v, t, strlen(t), 0, 0, ids, 64, &n, NULL), INFER_OK);
    for (size_t i = 0; i < n; i++) cr_assert(ids[i] != 1 && ids[i] != 2);
    vocab_free(v);
}

Test(vocab, eog_set_follows_llama_cpp) {
    char path[512];
    SHARED_OR_SKIP(path, "vocab/ggml-vocab-phi-3.gguf");
    infer_vocab *v = load_vocab_file(path);
    cr_assert(vocab_is_eog(v, 32000)); /* <|endoftext|>, EOS */
    cr_assert(vocab_is_eog(v, 32007)); /* <|end|> */
    cr_assert(vocab_is_eog(v, 2));     /* </s> */
    cr_assert(!vocab_is_eog(v, 32001));
    cr_assert(!vocab_is_eog(v, 1));
    vocab_free(v);
    SHARED_OR_SKIP(path, "vocab/ggml-vocab-starcoder.gguf");
    v = load_vocab_file(path);
    cr_assert(vocab_is_eog(v, 0)); /* <|endoftext|> */
    cr_assert(vocab_is_eog(v, 4)); /* <fim_pad> */
    cr_assert(!vocab_is_eog(v, 1));
    cr_assert(!vocab_add_bos(v));
    vocab_free(v);
}

/* Pathological input stays linear: 128 KiB of one character. */
Test(vocab, repeated_characters_tokenize_in_linear_time) {
    static const char *const names[] = {"llama-spm", "gpt-2", "deepseek-llm"};
    static const char *const pats[] = {"a", " ", "\n", "!", "\xe4\xb8\xad", "\xff"};
    const size_t N = 128 * 1024;
    char *buf = malloc(N);
    int32_t *ids = malloc(N * 3 * sizeof *ids);
    cr_assert(buf && ids);
    for (size_t k = 0; k < 3; k++) {
        char rel[128], path[512];
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[k]);
        SHARED_OR_SKIP(path, rel);
        infer_vocab *v = load_vocab_file(path);
        for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
            size_t pl = strlen(pats[p]), len = 0, n = 0;
            while (len + pl <= N) memcpy(buf + len, pats[p], pl), len += pl;
            double t0 = test_now_s();
            infer_error err = {0};
            cr_assert_eq(vocab_tokenize(v, buf, len, 0, 0, ids, N * 3, &n, &err), INFER_OK, "%s", err.message);
            double dt = test_now_s() - t0;
            cr_assert_gt(n, 0);
            /* ~0.1 s at -O2; a quadratic pass would take minutes */
            cr_assert_lt(dt, 20.0, "%s pattern %zu: %.1f s", names[k], p, dt);
        }
        vocab_free(v);
    }
    free(buf);
    free(ids);
}

/* ---- UTF-8 stream --------------------------------------------------------------------------------- */

Test(vocab_utf8, stream_emits_whole_characters) {
    vocab_utf8_stream s = {0};
    char out[64];
    cr_assert_eq(vocab_utf8_stream_push(&s, "a\xc3", 2, out, sizeof out), 1);
    cr_assert_eq(out[0], 'a');
    cr_assert_eq(vocab_utf8_stream_push(&s, "\xa9", 1, out, sizeof out), 2);
    cr_assert(memcmp(out, "\xc3\xa9", 2) == 0);
    /* a four-byte emoji, one byte per piece */
    const char emoji[] = "\xf0\x9f\x99\x82";
    for (int i = 0; i < 3; i++) cr_assert_eq(vocab_utf8_stream_push(&s, emoji + i, 1, out, sizeof out), 0);
    cr_assert_eq(vocab_utf8_stream_push(&s, emoji + 3, 1, out, sizeof out), 4);
    cr_assert(memcmp(out, emoji, 4) == 0);
    /* a sequence that breaks off goes out as it is, then the new byte */
    cr_assert_eq(vocab_utf8_stream_push(&s, "\xe4\xb8", 2, out, sizeof out), 0);
    cr_assert_eq(vocab_utf8_stream_push(&s, "x", 1, out, sizeof out), 3);
    cr_assert(memcmp(out, "\xe4\xb8x", 3) == 0);
    /* stray continuation bytes and 0xFF pass straight through */
    cr_assert_eq(vocab_utf8_stream_push(&s, "\x80\xff", 2, out, sizeof out), 2);
    /* flush gives back an unfinished tail */
    cr_assert_eq(vocab_utf8_stream_push(&s, "\xe4", 1, out, sizeof out), 0);
    cr_assert_eq(vocab_utf8_stream_flush(&s, out, sizeof out), 1);
    cr_assert_eq((unsigned char)out[0], 0xe4);
    cr_assert_eq(vocab_utf8_stream_flush(&s, out, sizeof out), 0);
    /* a short buffer is never overrun */
    cr_assert_eq(vocab_utf8_stream_push(&s, "abcdef", 6, out, 3), 3);
}

/* Valid UTF-8 cut at random places: every chunk out is whole characters and
 * the chunks put together are the text. */
Test(vocab_utf8, stream_random_splits) {
    uint64_t rng = 42;
    for (int round = 0; round < 200; round++) {
        char text[512], got[600];
        size_t tl = 0, gl = 0;
        while (tl < 480) {
            uint32_t cp;
            switch (test_rng(&rng) % 4) {
            case 0: cp = 0x20 + test_rng(&rng) % 0x5f; break;
            case 1: cp = 0x80 + test_rng(&rng) % 0x780; break;
            case 2: cp = 0x800 + test_rng(&rng) % 0xd000; break;
            default: cp = 0x10000 + test_rng(&rng) % 0x100000; break;
            }
            if (cp < 0x80) text[tl++] = (char)cp;
            else if (cp < 0x800) text[tl++] = (char)(0xc0 | (cp >> 6)), text[tl++] = (char)(0x80 | (cp & 0x3f));
            else if (cp < 0x10000) {
                text[tl++] = (char)(0xe0 | (cp >> 12));
                text[tl++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                text[tl++] = (char)(0x80 | (cp & 0x3f));
            } else {
                text[tl++] = (char)(0xf0 | (cp >> 18));
                text[tl++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                text[tl++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                text[tl++] = (char)(0x80 | (cp & 0x3f));
            }
        }
        vocab_utf8_stream s = {0};
        for (size_t i = 0; i < tl;) {
            size_t pl = 1 + test_rng(&rng) % 5;
            if (pl > tl - i) pl = tl - i;
            char chunk[16];
            size_t n = vocab_utf8_stream_push(&s, text + i, pl, chunk, pl + 8);
            /* the chunk starts and ends on character boundaries */
            if (n > 0) {
                cr_assert_neq((unsigned char)chunk[0] & 0xc0, 0x80);
                size_t k = 0;
                while (k < n) {
                    unsigned char c = (unsigned char)chunk[k];
                    size_t cl = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
                    cr_assert_leq(k + cl, n, "a chunk ends inside a character");
                    k += cl;
                }
            }
            memcpy(got + gl, chunk, n);
            gl += n;
            i += pl;
        }
        gl += vocab_utf8_stream_flush(&s, got + gl, sizeof got - gl);
        cr_assert_eq(gl, tl);
        cr_assert_arr_eq(got, text, tl);
    }
}
