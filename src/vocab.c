/*
 * vocab.c - the vocabulary: built from a GGUF file's tokenizer.* metadata
 * the way llama.cpp's llama_vocab::load builds it, with every value checked.
 *
 * What is an error and what is tolerated (HOSTILE.md section C):
 *  - tokenizer.ggml.model missing, not a string -> INFER_EFORMAT; a model
 *    other than "llama" or "gpt2" -> INFER_EUNSUPPORTED (key and value named).
 *  - tokenizer.ggml.pre not a string -> INFER_EFORMAT; unknown (gpt2 models)
 *    -> INFER_EUNSUPPORTED. Absent -> "default", as llama.cpp.
 *  - tokenizer.ggml.tokens missing, not an array of strings, empty, or with
 *    a duplicate string -> INFER_EFORMAT. An empty string becomes
 *    "[EMPTY_<id>]" (llama.cpp does the same). Lengths are size_t all through.
 *  - scores not FLOAT32/INT32, token_type not INT32, either shorter than the
 *    vocabulary; merges (gpt2) missing or not strings -> INFER_EFORMAT.
 *  - A special-token id key (bos, eos, eot, eom, unk, sep, pad, mask, fim_*)
 *    of a non-integer type -> INFER_EFORMAT. An id that is negative or
 *    >= n_vocab is ignored, keeping the model's default, and a default that
 *    is not inside the vocabulary becomes "none" (-1): llama.cpp behaves the
 *    same way (it warns). add_bos/add_eos true with no valid BOS/EOS ->
 *    INFER_EFORMAT (llama.cpp throws too).
 *  - A BYTE-typed token whose text is not exactly <0xHH> (e.g. <0x-1>,
 *    <0xZZ>, <0x1FF>) is demoted to an undefined-type token: it renders
 *    nothing and is never used for byte fallback.
 *  - NaN scores are read as -inf (ordering stays total).
 */
#include "vocab_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hashing ------------------------------------------------------------- */

static int hash_init(vocab_hash *t, size_t n) {
    size_t cap;
    if (infer_hash_capacity(n, &cap)) return -1;
    t->slots = infer_calloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    return t->slots ? 0 : -1;
}

static uint64_t merge_hash(const char *l, size_t ln, const char *r, size_t rn) {
    return infer_hash_bytes(r, rn, infer_hash_bytes(l, ln, INFER_HASH_SEED) ^ 0x9e3779b97f4a7c15ull);
}

int32_t vocab_find(const infer_vocab *v, const char *s, size_t n) {
    size_t i = infer_hash_slot(infer_hash_bytes(s, n, INFER_HASH_SEED), v->tok_hash.mask);
    for (;; i = (i + 1) & v->tok_hash.mask) {
        uint32_t e = v->tok_hash.slots[i];
        if (e == 0) return -1;
        const vocab_tok *t = &v->toks[e - 1];
        if (t->len == n && memcmp(v->text + t->off, s, n) == 0) return (int32_t)(e - 1);
    }
}

int64_t vocab_merge_rank(const infer_vocab *v, const char *l, size_t ln, const char *r, size_t rn) {
    if (!v->merge_hash.slots) return -1;
    size_t i = infer_hash_slot(merge_hash(l, ln, r, rn), v->merge_hash.mask);
    for (;; i = (i + 1) & v->merge_hash.mask) {
        uint32_t e = v->merge_hash.slots[i];
        if (e == 0) return -1;
        const vocab_merge *m = &v->merges[e - 1];
        const char *mt = v->merge_text + m->off;
        if (m->llen == ln && m->rlen == rn && memcmp(mt, l, ln) == 0 &&
            memcmp(mt + ln + 1, r, rn) == 0) {
            return (int64_t)(e - 1);
        }
    }
}

/* ---- metadata helpers ---------------------------------------------------- */

/* Index of key, or -1; *elem = its element type (INFER_GGUF_VALUE_TYPE_COUNT
 * when it is not an array) and *count its length. */
static int64_t find_array(const infer_gguf *g, const char *key, uint32_t *elem, uint64_t *count) {
    int64_t k = infer_gguf_find_key(g, key);
    if (k >= 0) {
        *elem = infer_gguf_kv_type(g, (uint64_t)k) == INFER_GGUF_ARRAY
                    ? infer_gguf_kv_arr_type(g, (uint64_t)k)
                    : INFER_GGUF_VALUE_TYPE_COUNT;
        *count = infer_gguf_kv_arr_count(g, (uint64_t)k);
    }
    return k;
}

/* Optional string: *present 0 when absent; INFER_EFORMAT on a wrong type. */
static infer_status opt_str(const infer_gguf *g, const char *key, infer_gguf_str *out, int *present,
                            infer_error *err) {
    int64_t k = infer_gguf_find_key(g, key);
    *present = k >= 0;
    if (k < 0) {
        *out = (infer_gguf_str){"", 0};
        return INFER_OK;
    }
    return infer_gguf_kv_string(g, (uint64_t)k, out, err);
}

/* Optional bool: *val unchanged when absent. */
static infer_status opt_bool(const infer_gguf *g, const char *key, int *val, infer_error *err) {
    if (infer_gguf_find_key(g, key) < 0) return INFER_OK;
    return infer_gguf_get_bool(g, key, val, err);
}

/* Optional token id: any integer type; out of range -> *id unchanged. */
static infer_status opt_id(const infer_gguf *g, const char *key, int32_t n_tokens, int32_t *id,
                           infer_error *err) {
    int64_t k = infer_gguf_find_key(g, key);
    if (k < 0) return INFER_OK;
    uint32_t t = infer_gguf_kv_type(g, (uint64_t)k);
    int64_t val = -1;
    switch (t) {
    case INFER_GGUF_INT8: case INFER_GGUF_INT16: case INFER_GGUF_INT32: case INFER_GGUF_INT64: {
        union { int8_t i8; int16_t i16; int32_t i32; int64_t i64; } x;
        if (infer_gguf_kv_scalar(g, (uint64_t)k, t, &x, err)) return INFER_EFORMAT;
        val = t == INFER_GGUF_INT8 ? x.i8 : t == INFER_GGUF_INT16 ? x.i16 : t == INFER_GGUF_INT32 ? x.i32 : x.i64;
        break;
    }
    case INFER_GGUF_UINT8: case INFER_GGUF_UINT16: case INFER_GGUF_UINT32: case INFER_GGUF_UINT64: {
        uint64_t u;
        if (infer_gguf_get_uint(g, key, &u, err)) return INFER_EFORMAT;
        val = u > (uint64_t)INT32_MAX ? -1 : (int64_t)u;
        break;
    }
    default:
        return set_error(err, INFER_EFORMAT, "%s has type %s, expected an integer token id", key,
                         t == INFER_GGUF_ARRAY ? "array" : infer_gguf_type_name(t));
    }
    if (val >= 0 && val < n_tokens) *id = (int32_t)val; /* else: keep the default */
    return INFER_OK;
}

/* Copy up to n elements of a FLOAT32/INT32 array as floats, in chunks. */
static infer_status read_numbers(const infer_gguf *g, int64_t k, uint32_t elem, float *dst, size_t n,
                                 infer_error *err) {
    int32_t buf[1024];
    for (size_t i = 0; i < n;) {
        size_t c = n - i < 1024 ? n - i : 1024;
        infer_status s = infer_gguf_arr_read(g, (uint64_t)k, elem, i, c, buf, err);
        if (s != INFER_OK) return s;
        for (size_t j = 0; j < c; j++) {
            if (elem == INFER_GGUF_FLOAT32) memcpy(&dst[i + j], &buf[j], sizeof(float));
            else dst[i + j] = (float)buf[j];
        }
        i += c;
    }
    return INFER_OK;
}

/* ---- loading: tokens ------------------------------------------------------ */

static uint16_t attr_of_type(int32_t type) {
    switch (type) {
    case 1: return ATTR_NORMAL;
    case 2: return ATTR_UNKNOWN;
    case 3: return ATTR_CONTROL;
    case 4: return ATTR_USER_DEFINED;
    case 5: return ATTR_UNUSED;
    case 6: return ATTR_BYTE;
    default: return 0; /* undefined */
    }
}


static infer_status load_tokens(infer_vocab *v, const infer_gguf *g, infer_error *err) {
    uint32_t elem = 0;
    uint64_t count = 0;
    int64_t k = find_array(g, "tokenizer.ggml.tokens", &elem, &count);
    size_t total = 0, off = 0;
    infer_status s;

    if (k < 0) return set_error(err, INFER_EFORMAT, "tokenizer.ggml.tokens is missing");
    if (elem != INFER_GGUF_STRING) {
        return set_error(err, INFER_EFORMAT, "tokenizer.ggml.tokens is not an array of strings");
    }
    if (count == 0) return set_error(err, INFER_EFORMAT, "tokenizer.ggml.tokens is empty");
    if (count > (uint64_t)INT32_MAX - 1) {
        return set_error(err, INFER_EFORMAT, "tokenizer.ggml.tokens has %llu entries (at most %d)",
                         (unsigned long long)count, INT32_MAX - 1);
    }
    v->n_tokens = (int32_t)count;

    /* Text sizes first (all size_t): one allocation for every string. */
    for (int32_t i = 0; i < v->n_tokens; i++) {
        infer_gguf_str t;
        if ((s = infer_gguf_arr_str(g, (uint64_t)k, (uint64_t)i, &t, err)) != INFER_OK) return s;
        size_t len = t.len ? t.len : 20; /* "[EMPTY_%d]" */
        if (ck_add(total, len, &total)) return set_error(err, INFER_EFORMAT, "token text sizes overflow");
    }
    v->toks = infer_calloc((size_t)v->n_tokens, sizeof *v->toks);
    v->text = infer_malloc(total);
    if (!v->toks || !v->text) return set_error(err, INFER_ENOMEM, "out of memory for %d tokens", v->n_tokens);

    for (int32_t i = 0; i < v->n_tokens; i++) {
        infer_gguf_str t;
        vocab_tok *tk = &v->toks[i];
        if ((s = infer_gguf_arr_str(g, (uint64_t)k, (uint64_t)i, &t, err)) != INFER_OK) return s;
        tk->off = off;
        if (t.len) {
            memcpy(v->text + off, t.ptr, t.len);
            tk->len = t.len;
        } else {
            char e[24];
            int n = snprintf(e, sizeof e, "[EMPTY_%d]", (int)i);
            memcpy(v->text + off, e, (size_t)n);
            tk->len = (size_t)n;
        }
        off += tk->len;
        tk->attr = ATTR_NORMAL;
        if (tk->len > v->max_token_len) v->max_token_len = tk->len;
    }

    /* Scores: FLOAT32 or INT32, at least one per token. */
    k = find_array(g, "tokenizer.ggml.scores", &elem, &count);
    if (k >= 0) {
        if (elem != INFER_GGUF_FLOAT32 && elem != INFER_GGUF_INT32) {
            return set_error(err, INFER_EFORMAT, "tokenizer.ggml.scores is not an array of float32 or int32");
        }
        if (count < (uint64_t)v->n_tokens) {
            return set_error(err, INFER_EFORMAT, "tokenizer.ggml.scores has %llu entries for %d tokens",
                             (unsigned long long)count, v->n_tokens);
        }
        float *sc = infer_malloc_array((size_t)v->n_tokens, sizeof *sc);
        if (!sc) return set_error(err, INFER_ENOMEM, "out of memory for scores");
        s = read_numbers(g, k, elem, sc, (size_t)v->n_tokens, err);
        for (int32_t i = 0; s == INFER_OK && i < v->n_tokens; i++) {
            v->toks[i].score = isnan(sc[i]) ? -INFINITY : sc[i];
        }
        infer_free(sc);
        if (s != INFER_OK) return s;
    }

    /* Token types: INT32, at least one per token. */
    k = find_array(g, "tokenizer.ggml.token_type", &elem, &count);
    if (k >= 0) {
        if (elem != INFER_GGUF_INT32) {
            return set_error(err, INFER_EFORMAT, "tokenizer.ggml.token_type is not an array of int32");
        }
        if (count < (uint64_t)v->n_tokens) {
            return set_error(err, INFER_EFORMAT, "tokenizer.ggml.token_type has %llu entries for %d tokens",
                             (unsigned long long)count, v->n_tokens);
        }
        int32_t buf[1024];
        for (size_t i = 0; i < (size_t)v->n_tokens;) {
            size_t c = (size_t)v->n_tokens - i < 1024 ? (size_t)v->n_tokens - i : 1024;
            if ((s = infer_gguf_arr_read(g, (uint64_t)k, INFER_GGUF_INT32, i, c, buf, err)) != INFER_OK) return s;
            for (size_t j = 0; j < c; j++) v->toks[i + j].attr = attr_of_type(buf[j]);
            i += c;
        }
    }

    /* Byte tokens must read <0xHH>; anything else is no byte at all. */
    for (int32_t i = 0; i < v->n_tokens; i++) {
        vocab_tok *tk = &v->toks[i];
        if (!(tk->attr & ATTR_BYTE)) continue;
        const char *t = v->text + tk->off;
        int hi = tk->len == 6 ? infer_hex_digit(t[3]) : -1, lo = tk->len == 6 ? infer_hex_digit(t[4]) : -1;
        if (tk->len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>' || hi < 0 || lo < 0) {
            tk->attr = 0;
        } else {
            tk->byte = (uint8_t)(hi * 16 + lo);
        }
    }

    /* The text -> id map; a duplicate string is an error, as in llama.cpp. */
    if (hash_init(&v->tok_hash, (size_t)v->n_tokens)) return set_error(err, INFER_ENOMEM, "out of memory");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const vocab_tok *tk = &v->toks[i];
        size_t h = infer_hash_slot(infer_hash_bytes(v->text + tk->off, tk->len, INFER_HASH_SEED), v->tok_hash.mask);
        for (;; h = (h + 1) & v->tok_hash.mask) {
            uint32_t e = v->tok_hash.slots[h];
            if (e == 0) {
                v->tok_hash.slots[h] = (uint32_t)i + 1;
                break;
            }
            const vocab_tok *o = &v->toks[e - 1];
            if (o->len == tk->len && memcmp(v->text + o->off, v->text + tk->off, tk->len) == 0) {
                char q[64];
                return set_error(err, INFER_EFORMAT, "duplicate token in vocabulary: '%s' has ids %u and %d",
                                 escape_bytes(v->text + tk->off, tk->len, q, sizeof q), e - 1, (int)i);
            }
        }
    }
    return INFER_OK;
}

/* ---- loading: merges (gpt2) ---------------------------------------------- */

static infer_status load_merges(infer_vocab *v, const infer_gguf *g, infer_error *err) {
    uint32_t elem = 0;
    uint64_t count = 0;
    int64_t k = find_array(g, "tokenizer.ggml.merges", &elem, &count);
    size_t total = 0, off = 0;
    infer_status s;

    if (k < 0) return set_error(err, INFER_EFORMAT, "tokenizer.ggml.merges is missing (needed by gpt2 vocabularies)");
    if (elem != INFER_GGUF_STRING) {
        return set_error(err, INFER_EFORMAT, "tokenizer.ggml.merges is not an array of strings");
    }
    if (count > (uint64_t)INT32_MAX - 1) {
        return set_error(err, INFER_EFORMAT, "tokenizer.ggml.merges has %llu entries", (unsigned long long)count);
    }
    for (uint64_t i = 0; i < count; i++) {
        infer_gguf_str m;
        if ((s = infer_gguf_arr_str(g, (uint64_t)k, i, &m, err)) != INFER_OK) return s;
        if (ck_add(total, m.len, &total)) return set_error(err, INFER_EFORMAT, "merge sizes overflow");
    }
    v->merges = infer_calloc((size_t)count, sizeof *v->merges);
    v->merge_text = infer_malloc(total);
    if (!v->merges || !v->merge_text || hash_init(&v->merge_hash, (size_t)count)) {
        return set_error(err, INFER_ENOMEM, "out of memory for %llu merges", (unsigned long long)count);
    }
    for (uint64_t i = 0; i < count; i++) {
        infer_gguf_str m;
        vocab_merge *mg = &v->merges[v->n_merges];
        if ((s = infer_gguf_arr_str(g, (uint64_t)k, i, &m, err)) != INFER_OK) return s;
        /* "left right", split at the first space after the first byte;
         * without one the pair is ("", ""), which no symbol pair matches. */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp) {
            v->n_merges++; /* keeps the ranks of those after it */
            mg->llen = mg->rlen = 0;
            continue;
        }
        memcpy(v->merge_text + off, m.ptr, m.len);
        mg->off = off;
        mg->llen = (size_t)(sp - m.ptr);
        mg->rlen = m.len - mg->llen - 1;
        off += m.len;
        if (mg->llen + mg->rlen > v->max_merge_len) v->max_merge_len = mg->llen + mg->rlen;
        size_t h = infer_hash_slot(merge_hash(m.ptr, mg->llen, sp + 1, mg->rlen), v->merge_hash.mask);
        int dup = 0;
        for (;; h = (h + 1) & v->merge_hash.mask) {
            uint32_t e = v->merge_hash.slots[h];
            if (e == 0) break;
            const vocab_merge *o = &v->merges[e - 1];
            if (o->llen == mg->llen && o->rlen == mg->rlen &&
                memcmp(v->merge_text + o->off, m.ptr, m.len) == 0) {
                dup = 1; /* the first rank wins, as llama.cpp's emplace */
                break;
            }
        }
        if (!dup) v->merge_hash.slots[h] = (uint32_t)v->n_merges + 1;
        v->n_merges++;
    }
    return INFER_OK;
}

/* ---- loading: special tokens ---------------------------------------------- */

static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};
static const char *const fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};
static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                            "<reponame>", NULL};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[", NULL};

static int32_t find_cstr(const infer_vocab *v, const char *s) { return vocab_find(v, s, strlen(s)); }

/* When *id is none, the lowest id whose text is in the list (llama.cpp
 * takes whichever its hash map yields first); it becomes a control token. */
static void detect(infer_vocab *v, int32_t *id, const char *const *texts) {
    if (*id >= 0) return;
    for (int i = 0; texts[i]; i++) {
        int32_t t = find_cstr(v, texts[i]);
        if (t >= 0 && (*id < 0 || t < *id)) *id = t;
    }
    if (*id >= 0) v->toks[*id].attr |= ATTR_CONTROL;
}

static void mark_eog(infer_vocab *v, int32_t id) {
    if (id >= 0) v->toks[id].attr |= ATTR_EOG;
}

static int32_t eog_with_text(const infer_vocab *v, const char *s) {
    int32_t id = find_cstr(v, s);
    return id >= 0 && (v->toks[id].attr & ATTR_EOG) ? id : -1;
}

static void setup_eog(infer_vocab *v) {
    detect(v, &v->eot, eot_texts);
    detect(v, &v->eom, eom_texts);
    detect(v, &v->fim_pre, fim_pre_texts);
    detect(v, &v->fim_suf, fim_suf_texts);
    detect(v, &v->fim_mid, fim_mid_texts);
    detect(v, &v->fim_pad, fim_pad_texts);
    detect(v, &v->fim_rep, fim_rep_texts);
    detect(v, &v->fim_sep, fim_sep_texts);
    mark_eog(v, v->fim_pad);
    mark_eog(v, v->fim_rep);
    mark_eog(v, v->fim_sep);
    for (int i = 0; eog_texts[i]; i++) {
        int32_t t = find_cstr(v, eog_texts[i]);
        if (t >= 0) v->toks[t].attr |= ATTR_EOG | ATTR_CONTROL;
    }
    /* gpt-oss: these always render */
    static const char *const always[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++) {
        int32_t t = find_cstr(v, always[i]);
        if (t >= 0) v->toks[t].attr = ATTR_USER_DEFINED | (v->toks[t].attr & ATTR_EOG);
    }
    mark_eog(v, v->eos);
    mark_eog(v, v->eot);
    mark_eog(v, v->eom);
    /* o200k_harmony / solar-open: <|end|> does not end generation there */
    int32_t end = eog_with_text(v, "<|end|>");
    int ret = eog_with_text(v, "<|return|>") >= 0, call = eog_with_text(v, "<|call|>") >= 0 ||
                                                          eog_with_text(v, "<|calls|>") >= 0;
    int flush = eog_with_text(v, "<|flush|>") >= 0;
    if (end >= 0 && ((ret && call) || (call && flush))) v->toks[end].attr = ATTR_USER_DEFINED;
    /* gemma4 / paddleocr: </s> is plain text there */
    int32_t s = eog_with_text(v, "</s>");
    if (s >= 0 && eog_with_text(v, "<|tool_response>") >= 0) v->toks[s].attr = ATTR_NORMAL;
}

/* ids of control / user-defined / unknown tokens, longest text first (ties
 * by id), the order in which llama.cpp splits them out of the text. */
static infer_status build_specials(infer_vocab *v, infer_error *err) {
    size_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->toks[i].attr & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) n++;
    }
    if (n == 0) return INFER_OK;
    v->specials = infer_malloc_array(n, sizeof *v->specials);
    if (!v->specials) return set_error(err, INFER_ENOMEM, "out of memory for special tokens");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->toks[i].attr & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) v->specials[v->n_specials++] = i;
    }
    /* insertion into runs of equal length would be quadratic on a hostile
     * vocabulary; a merge sort keeps it n log n and stable by id */
    int32_t *tmp = infer_malloc_array(n, sizeof *tmp);
    if (!tmp) return set_error(err, INFER_ENOMEM, "out of memory for special tokens");
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) {
                tmp[o++] = v->toks[v->specials[b]].len > v->toks[v->specials[a]].len ? v->specials[b++]
                                                                                      : v->specials[a++];
            }
            while (a < mid) tmp[o++] = v->specials[a++];
            while (b < hi) tmp[o++] = v->specials[b++];
        }
        memcpy(v->specials, tmp, n * sizeof *tmp);
        if (w > n / 2) break;
    }
    infer_free(tmp);
    return INFER_OK;
}

/* Per-model attribute tweaks llama.cpp applies by name. */
static infer_status name_tweaks(infer_vocab *v, const infer_gguf *g, const char *pre, size_t pre_len,
                                infer_error *err) {
    infer_gguf_str name, arch;
    int has;
    infer_status s;
    char low[256];
    if ((s = opt_str(g, "general.name", &name, &has, err)) != INFER_OK) return s;
    if ((s = opt_str(g, "general.architecture", &arch, &has, err)) != INFER_OK) return s;
    size_t n = name.len < sizeof low - 1 ? name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) {
        char c = name.ptr[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (c == 0 ? ' ' : c);
    }
    low[n] = 0;
    char pbuf[64] = {0}, abuf[64] = {0};
    memcpy(pbuf, pre, pre_len < sizeof pbuf - 1 ? pre_len : sizeof pbuf - 1);
    memcpy(abuf, arch.ptr, arch.len < sizeof abuf - 1 ? arch.len : sizeof abuf - 1);

    if (strstr(pbuf, "jina-v2-de") || strstr(pbuf, "jina-v2-es") || strstr(pbuf, "jina-v2-code") ||
        strstr(abuf, "nomic-bert-moe") || strstr(abuf, "jina-bert-v3")) {
        int32_t t = find_cstr(v, "<mask>");
        if (t >= 0) v->toks[t].attr |= ATTR_LSTRIP;
    } else if (strstr(low, "phi-3") || strstr(low, "phi3")) {
        for (size_t i = 0; i < v->n_specials; i++) v->toks[v->specials[i]].attr |= ATTR_RSTRIP;
        int32_t t = find_cstr(v, "</s>");
        if (t >= 0) v->toks[t].attr |= ATTR_RSTRIP;
        static const char *const no[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int i = 0; i < 3; i++) {
            if ((t = find_cstr(v, no[i])) >= 0) v->toks[t].attr &= (uint16_t)~ATTR_RSTRIP;
        }
    } else if (strstr(low, "modern-bert")) {
        int32_t t = find_cstr(v, "[MASK]");
        if (t >= 0) v->toks[t].attr |= ATTR_LSTRIP;
    }
    return INFER_OK;
}

/* ---- vocab_load ----------------------------------------------------------- */

static infer_status load(infer_vocab *v, const infer_gguf *g, infer_error *err) {
    infer_gguf_str model, pre;
    int has_model, has_pre, bos_none = 0;
    infer_status s;
    char q[96];

    if ((s = opt_str(g, "tokenizer.ggml.model", &model, &has_model, err)) != INFER_OK) return s;
    if (!has_model) return set_error(err, INFER_EFORMAT, "tokenizer.ggml.model is missing");
    if ((s = opt_str(g, "tokenizer.ggml.pre", &pre, &has_pre, err)) != INFER_OK) return s;
    if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
        v->type = VOCAB_SPM;
    } else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
        v->type = VOCAB_BPE;
    } else {
        return set_error(err, INFER_EUNSUPPORTED, "tokenizer.ggml.model '%s' is not supported (llama and gpt2 are)",
                         escape_bytes(model.ptr, model.len, q, sizeof q));
    }

    if ((s = load_tokens(v, g, err)) != INFER_OK) return s;

    v->eot = v->eom = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (v->type == VOCAB_SPM) {
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = 1, v->add_eos = 0, v->add_space_prefix = 1;
    } else {
        if ((s = load_merges(v, g, err)) != INFER_OK) return s;
        v->bos = 11, v->eos = 11, v->unk = -1;
        v->add_bos = 0, v->add_eos = 0, v->add_space_prefix = 0;
        if ((s = vocab_regex_init(v, pre.ptr, pre.len, &v->add_bos, &bos_none, err)) != INFER_OK) return s;
        if (bos_none) v->bos = -1;
    }
    if ((s = opt_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err)) != INFER_OK) return s;

    /* defaults outside a small vocabulary are none */
    int32_t *ids[] = {&v->bos, &v->eos, &v->unk};
    for (int i = 0; i < 3; i++) {
        if (*ids[i] >= v->n_tokens) *ids[i] = -1;
    }
    static const struct {
        const char *key;
        size_t field;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(infer_vocab, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(infer_vocab, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(infer_vocab, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(infer_vocab, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(infer_vocab, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(infer_vocab, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(infer_vocab, pad)},
        {"tokenizer.ggml.mask_token_id", offsetof(infer_vocab, mask)},
        {"tokenizer.ggml.fim_pre_token_id", offsetof(infer_vocab, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id", offsetof(infer_vocab, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id", offsetof(infer_vocab, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(infer_vocab, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(infer_vocab, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(infer_vocab, fim_sep)},
        {"tokenizer.ggml.prefix_token_id", offsetof(infer_vocab, fim_pre)},
        {"tokenizer.ggml.suffix_token_id", offsetof(infer_vocab, fim_suf)},
        {"tokenizer.ggml.middle_token_id", offsetof(infer_vocab, fim_mid)},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int32_t *id = (int32_t *)((char *)v + keys[i].field);
        if ((s = opt_id(g, keys[i].key, v->n_tokens, id, err)) != INFER_OK) return s;
    }
    if ((s = opt_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) != INFER_OK) return s;
    if ((s = opt_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err)) != INFER_OK) return s;
    if (v->add_bos && v->bos < 0) {
        return set_error(err, INFER_EFORMAT, "tokenizer.ggml.add_bos_token is true, but there is no valid "
                                             "tokenizer.ggml.bos_token_id");
    }
    if (v->add_eos && v->eos < 0) {
        return set_error(err, INFER_EFORMAT, "tokenizer.ggml.add_eos_token is true, but there is no valid "
                                             "tokenizer.ggml.eos_token_id");
    }

    setup_eog(v);
    if ((s = build_specials(v, err)) != INFER_OK) return s;
    if ((s = name_tweaks(v, g, pre.ptr, pre.len, err)) != INFER_OK) return s;

    if (v->type == VOCAB_SPM) {
        for (int b = 0; b < 256; b++) {
            char hex[7];
            char one = (char)b;
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            int32_t id = vocab_find(v, hex, 6);
            /* else the byte as a one-character string (llama.cpp builds it
             * as a C string, so byte 0 looks up "" and finds nothing) */
            v->byte_tok[b] = id >= 0 ? id : b ? vocab_find(v, &one, 1) : -1;
        }
    }
    return INFER_OK;
}

infer_status vocab_load(const infer_gguf *g, infer_vocab **out, infer_error *err) {
    infer_vocab *v;
    infer_status s;
    if (!g || !out) return set_error(err, INFER_EINVAL, "vocab_load: NULL argument");
    *out = NULL;
    v = infer_calloc(1, sizeof *v);
    if (!v) return set_error(err, INFER_ENOMEM, "out of memory for the vocabulary");
    if ((s = load(v, g, err)) != INFER_OK) {
        vocab_free(v);
        return s;
    }
    *out = v;
    return INFER_OK;
}

void vocab_free(infer_vocab *v) {
    if (!v) return;
    vocab_regex_free(&v->re);
    infer_free(v->specials);
    infer_free(v->merge_hash.slots);
    infer_free(v->merge_text);
    infer_free(v->merges);
    infer_free(v->tok_hash.slots);
    infer_free(v->text);
    infer_free(v->toks);
    infer_free(v);
}

int32_t vocab_n_tokens(const infer_vocab *v) { return v ? v->n_tokens : 0; }
int32_t vocab_bos(const infer_vocab *v) { return v ? v->bos : -1; }
int32_t vocab_eos(const infer_vocab *v) { return v ? v->eos : -1; }
int vocab_add_bos(const infer_vocab *v) { return v ? v->add_bos : 0; }
int vocab_add_eos(const infer_vocab *v) { return v ? v->add_eos : 0; }

int vocab_is_eog(const infer_vocab *v, int32_t id) {
    return v && id >= 0 && id < v->n_tokens && (v->toks[id].attr & ATTR_EOG) != 0;
}
