/*
 * vocab_internal.h - what the tokenizer's files share: the vocabulary
 * structure, its hash lookups, the output sink and the entry points of the
 * SentencePiece (vocab_spm.c) and byte-level BPE (vocab_bpe.c,
 * vocab_regex.c) tokenizers. Not part of any public API.
 */
#ifndef INFER_VOCAB_INTERNAL_H
#define INFER_VOCAB_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "vocab.h"

enum { VOCAB_SPM = 1, VOCAB_BPE = 2 };

/* Token attributes, bit for bit as llama.cpp keeps them (a token may carry
 * several, e.g. NORMAL|CONTROL after an end-of-turn override), plus our own
 * EOG mark. 0 = undefined type: renders nothing. */
enum {
    ATTR_UNKNOWN = 1u << 0,
    ATTR_UNUSED = 1u << 1,
    ATTR_NORMAL = 1u << 2,
    ATTR_CONTROL = 1u << 3,
    ATTR_USER_DEFINED = 1u << 4,
    ATTR_BYTE = 1u << 5,
    ATTR_LSTRIP = 1u << 7,
    ATTR_RSTRIP = 1u << 8,
    ATTR_EOG = 1u << 12, /* ends generation (not a llama.cpp attribute) */
};

typedef struct {
    size_t off;     /* text offset in v->text */
    size_t len;     /* bytes (1 .. anything the file held) */
    float score;    /* SentencePiece score (NaN read as -inf) */
    uint16_t attr;  /* ATTR_* */
    uint8_t byte;   /* the byte of a well-formed <0xNN> BYTE token */
} vocab_tok;

typedef struct {
    size_t off;  /* "left right" text in v->merge_text */
    size_t llen; /* bytes of left; right starts at off + llen + 1 */
    size_t rlen;
} vocab_merge;

/* Open-addressing hash set of indexes (slot = index + 1, 0 = empty). */
typedef struct {
    uint32_t *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
} vocab_hash;

#define VOCAB_MAX_REGEX 8

/* Compiled pre-tokenizer: the regexes llama.cpp applies in sequence for
 * tokenizer.ggml.pre, compiled once at load (immutable, shared by threads). */
typedef struct {
    pcre2_general_context *gctx;
    pcre2_match_context *mctx;
    pcre2_code *code[VOCAB_MAX_REGEX];
    int n;
} vocab_regex;

struct infer_vocab {
    int type; /* VOCAB_SPM or VOCAB_BPE */
    int32_t n_tokens;
    vocab_tok *toks;
    char *text; /* every token's text, back to back */
    size_t max_token_len;
    vocab_hash tok_hash;

    /* BPE merges: rank = index; the first of duplicate pairs wins. */
    vocab_merge *merges;
    size_t n_merges;
    char *merge_text;
    vocab_hash merge_hash;
    size_t max_merge_len; /* longest left + right */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    int add_bos, add_eos, add_space_prefix, ignore_merges;

    int32_t byte_tok[256]; /* SPM byte fallback: <0xNN>, else the byte itself, else -1 */

    int32_t *specials; /* control/user-defined/unknown ids, longest text first */
    size_t n_specials;

    vocab_regex re;
};

static inline const char *vocab_text(const infer_vocab *v, int32_t id) {
    return v->text + v->toks[id].off;
}

/* Id of the token whose text is exactly s[0..n), or -1. */
int32_t vocab_find(const infer_vocab *v, const char *s, size_t n);
/* Rank of the merge (left, right), or -1. */
int64_t vocab_merge_rank(const infer_vocab *v, const char *l, size_t ln, const char *r, size_t rn);

/* Token ids go here: written while they fit, always counted, so the caller
 * learns the size it needs without anything overflowing. */
typedef struct {
    int32_t *ids;
    size_t cap;
    size_t n;
} vocab_sink;

static inline void sink_push(vocab_sink *s, int32_t id) {
    if (s->n < s->cap) s->ids[s->n] = id;
    s->n++;
}

/* Bytes of the UTF-8 sequence that lead byte c starts, as llama.cpp counts
 * them from the high nibble alone (continuation bytes count as 1). */
static inline size_t vocab_utf8_len(unsigned char c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/* Tokenizers for one fragment of raw text (special tokens already split
 * out). The SPM one takes the text already escaped ("▁" for spaces). */
infer_status vocab_spm_tokenize(const infer_vocab *v, const char *text, size_t len, vocab_sink *out,
                                infer_error *err);
infer_status vocab_bpe_tokenize(const infer_vocab *v, const char *text, size_t len, vocab_sink *out,
                                infer_error *err);
/* The byte GPT-2's byte-to-unicode map sends to cp, or -1. */
int vocab_bpe_cp_byte(uint32_t cp);

/* ---- priority queue of candidate merges (vocab_spm.c) -------------------
 * Highest key first; on equal keys the leftmost pair first (llama.cpp's
 * order). SPM keys are scores, BPE keys are -rank. */
typedef struct {
    double key;
    uint32_t left, right; /* symbol indexes */
    uint32_t size;        /* left + right bytes when queued */
} vocab_bigram;

typedef struct {
    vocab_bigram *a;
    size_t n, cap;
} vocab_heap;

int vocab_heap_push(vocab_heap *h, vocab_bigram b); /* 0, or -1 on ENOMEM */
vocab_bigram vocab_heap_pop(vocab_heap *h);         /* h->n > 0 */

/* A symbol of the merge loops: bytes [start, start+n) of the word. */
typedef struct {
    uint32_t start, n;
    uint32_t prev, next; /* VOCAB_NONE at the ends */
} vocab_sym;
#define VOCAB_NONE UINT32_MAX

/* ---- pre-tokenizer (vocab_regex.c) -------------------------------------- */

/* Choose and compile the regexes for pre ("" when the key is absent);
 * sets v->re, and ignore_merges / add_bos / bos defaults as llama.cpp does.
 * INFER_EUNSUPPORTED for an unknown name. */
infer_status vocab_regex_init(infer_vocab *v, const char *pre, size_t pre_len, int *add_bos,
                              int *bos_none, infer_error *err);
void vocab_regex_free(vocab_regex *re);

/* Split text as llama.cpp's unicode_regex_split does and call word() with
 * each word's code points, in order. A non-OK return from word() stops. */
typedef infer_status (*vocab_word_fn)(void *ud, const uint32_t *cpts, size_t n);
infer_status vocab_regex_split(const vocab_regex *re, const char *text, size_t len,
                               vocab_word_fn word, void *ud, infer_error *err);

/* One code point at s[i] (i < n), decoded as llama.cpp does (no overlong or
 * surrogate checks): its value and *adv bytes, or -1 (then *adv is 1) when
 * the bytes there are not a well-formed sequence. */
int64_t vocab_utf8_decode(const unsigned char *s, size_t n, size_t i, size_t *adv);
/* UTF-8 bytes of cp (<= 0x10FFFF) into o[0..4); returns how many. */
size_t vocab_utf8_put(char *o, uint32_t cp);

/* Special-token splitting (vocab_text.c): text as a list of fragments,
 * each a token (tok >= 0) or plain text [off, off + len) (tok < 0), as
 * llama.cpp's tokenizer_st_partition makes them. fl starts empty; its
 * array is the caller's to free, also after an error. */
typedef struct {
    size_t off, len;
    int32_t tok;
} vocab_frag;
typedef struct {
    vocab_frag *a;
    size_t n, cap;
} vocab_frag_list;
infer_status vocab_partition(const infer_vocab *v, const char *text, size_t len, int parse_special,
                             vocab_frag_list *fl, infer_error *err);

#endif
