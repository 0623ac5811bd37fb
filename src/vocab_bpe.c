/*
 * vocab_bpe.c - byte-level BPE (tokenizer.ggml.model "gpt2"), as llama.cpp's
 * llm_tokenizer_bpe does it:
 *
 *   1. the pre-tokenizer (vocab_regex.c) splits the text into words;
 *   2. each word's UTF-8 bytes are mapped to GPT-2's printable stand-ins
 *      (byte b -> one code point, see bpe_byte_cp) and cut into symbols of
 *      one stand-in each;
 *   3. adjacent pairs listed in tokenizer.ggml.merges are queued by rank;
 *      the lowest rank (leftmost on ties) is merged first, repeatedly;
 *   4. each final symbol is emitted as its token; one that is not a token
 *      falls back to the tokens of its single bytes, where they exist.
 *
 * Some pre-tokenizers (llama3, tekken, ...) set ignore_merges: a word that
 * is already a token is emitted whole without merging.
 */
#include "vocab_internal.h"

#include <string.h>

/* GPT-2's byte -> code point map: printable Latin-1 bytes stand for
 * themselves, the other 68 bytes for 256.. in byte order. */
static uint32_t bpe_byte_cp(unsigned char b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7f && b <= 0xa0) return 256u + 33 + (b - 0x7fu);
    if (b == 0xad) return 256u + 67;
    return b;
}

int vocab_bpe_cp_byte(uint32_t cp) {
    if (cp < 256) return (cp > 0x20 && cp < 0x7f) || (cp > 0xa0 && cp != 0xad) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 0x7f);
    if (cp == 256 + 67) return 0xad;
    return -1;
}

typedef struct {
    const infer_vocab *v;
    vocab_sink *out;
    infer_error *err;
    char *buf; /* the encoded word */
    size_t buf_cap;
    vocab_sym *sym;
    size_t sym_cap;
    vocab_heap heap;
} bpe_state;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64, bytes;
    while (nc < need) {
        if (ck_mul(nc, (size_t)2, &nc)) return -1;
    }
    if (ck_mul(nc, elem, &bytes)) return -1;
    void *np = infer_realloc(*p, bytes);
    if (!np) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

static int add_bigram(bpe_state *st, uint32_t left, uint32_t right) {
    if (left == VOCAB_NONE || right == VOCAB_NONE) return 0;
    const vocab_sym *l = &st->sym[left], *r = &st->sym[right];
    size_t n = (size_t)l->n + r->n;
    if (n > st->v->max_merge_len) return 0;
    int64_t rank = vocab_merge_rank(st->v, st->buf + l->start, l->n, st->buf + r->start, r->n);
    if (rank < 0) return 0;
    vocab_bigram b = {-(double)rank, left, right, (uint32_t)n};
    return vocab_heap_push(&st->heap, b);
}

static infer_status bpe_word(void *ud, const uint32_t *cpts, size_t n) {
    bpe_state *st = ud;
    const infer_vocab *v = st->v;
    size_t need, len = 0, ns = 0;

    if (n == 0) return INFER_OK;
    /* each code point: at most 4 UTF-8 bytes, each at most 2 encoded bytes */
    if (ck_mul(n, (size_t)8, &need) || need >= UINT32_MAX) {
        return set_error(st->err, INFER_EINVAL, "a pre-tokenized word of %zu characters is too long", n);
    }
    if (grow((void **)&st->buf, &st->buf_cap, need, 1)) goto nomem;
    for (size_t i = 0; i < n; i++) {
        char u[4];
        size_t ul = vocab_utf8_put(u, cpts[i]);
        for (size_t k = 0; k < ul; k++) len += vocab_utf8_put(st->buf + len, bpe_byte_cp((unsigned char)u[k]));
    }

    if (v->ignore_merges) {
        int32_t id = vocab_find(v, st->buf, len);
        if (id >= 0) {
            sink_push(st->out, id);
            return INFER_OK;
        }
    }

    if (grow((void **)&st->sym, &st->sym_cap, len, sizeof *st->sym)) goto nomem;
    for (size_t off = 0; off < len;) {
        size_t cl = vocab_utf8_len((unsigned char)st->buf[off]);
        if (cl > len - off) cl = len - off;
        st->sym[ns] = (vocab_sym){(uint32_t)off, (uint32_t)cl, ns ? (uint32_t)(ns - 1) : VOCAB_NONE,
                                  off + cl == len ? VOCAB_NONE : (uint32_t)(ns + 1)};
        off += cl;
        ns++;
    }

    st->heap.n = 0;
    for (size_t i = 1; i < ns; i++) {
        if (add_bigram(st, (uint32_t)(i - 1), (uint32_t)i)) goto nomem;
    }
    while (st->heap.n > 0) {
        vocab_bigram b = vocab_heap_pop(&st->heap);
        vocab_sym *l = &st->sym[b.left], *r = &st->sym[b.right];
        /* Outdated when either side changed since it was queued: a symbol
         * only grows by absorbing its right neighbour, so the sizes tell. */
        if (l->n == 0 || r->n == 0 || (size_t)l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next != VOCAB_NONE) st->sym[r->next].prev = b.left;
        if (add_bigram(st, l->prev, b.left) || add_bigram(st, b.left, l->next)) goto nomem;
    }

    for (size_t i = 0; i < ns; i++) {
        const vocab_sym *s = &st->sym[i];
        if (s->n == 0) continue;
        int32_t id = vocab_find(v, st->buf + s->start, s->n);
        if (id >= 0) {
            sink_push(st->out, id);
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) {
            int32_t bid = vocab_find(v, st->buf + s->start + j, 1);
            if (bid >= 0) sink_push(st->out, bid);
        }
    }
    return INFER_OK;
nomem:
    return set_error(st->err, INFER_ENOMEM, "out of memory tokenizing a word of %zu characters", n);
}

infer_status vocab_bpe_tokenize(const infer_vocab *v, const char *text, size_t len, vocab_sink *out,
                                infer_error *err) {
    bpe_state st = {.v = v, .out = out, .err = err};
    infer_status s = vocab_regex_split(&v->re, text, len, bpe_word, &st, err);
    infer_free(st.buf);
    infer_free(st.sym);
    infer_free(st.heap.a);
    return s;
}
