/*
 * vocab_spm.c - SentencePiece-style BPE over scores (tokenizer.ggml.model
 * "llama"), as llama.cpp's llm_tokenizer_spm does it:
 *
 *   1. the text (spaces already escaped as "▁") is cut into symbols of one
 *      UTF-8 character each (length from the lead byte alone);
 *   2. every adjacent pair whose concatenation is a token goes into a
 *      priority queue keyed by that token's score;
 *   3. the best pair (highest score, leftmost on ties) is merged, and the
 *      new symbol's pairs with its neighbours are queued; stale entries are
 *      recognised by their size and skipped;
 *   4. each final symbol is emitted as its token, or, when it is not one,
 *      byte by byte as <0xNN> tokens.
 *
 * Symbols are a doubly linked list over one array and the queue is a binary
 * heap, so a text of n bytes costs O(n log n), whatever its content.
 */
#include "vocab_internal.h"

#include <string.h>

/* ---- the heap (shared with vocab_bpe.c) ---------------------------------- */

/* a comes out before b */
static int bigram_before(const vocab_bigram *a, const vocab_bigram *b) {
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

int vocab_heap_push(vocab_heap *h, vocab_bigram b) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 256, bytes;
        if (ck_mul(nc, sizeof *h->a, &bytes)) return -1;
        vocab_bigram *na = infer_realloc(h->a, bytes);
        if (!na) return -1;
        h->a = na;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &h->a[parent])) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = b;
    return 0;
}

vocab_bigram vocab_heap_pop(vocab_heap *h) {
    vocab_bigram top = h->a[0], last = h->a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&h->a[c + 1], &h->a[c])) c++;
        if (!bigram_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (n > 0) h->a[i] = last;
    return top;
}

/* ---- the tokenizer ------------------------------------------------------- */

typedef struct {
    const infer_vocab *v;
    const char *text;
    vocab_sym *sym;
    vocab_heap heap;
} spm_state;

/* Queue the pair (left, right) when their text is a token. */
static int try_add_bigram(spm_state *st, uint32_t left, uint32_t right) {
    if (left == VOCAB_NONE || right == VOCAB_NONE) return 0;
    const vocab_sym *l = &st->sym[left], *r = &st->sym[right];
    size_t n = (size_t)l->n + r->n; /* symbols are adjacent in the text */
    if (n > st->v->max_token_len) return 0;
    int32_t id = vocab_find(st->v, st->text + l->start, n);
    if (id < 0) return 0;
    vocab_bigram b = {st->v->toks[id].score, left, right, (uint32_t)n};
    return vocab_heap_push(&st->heap, b);
}

/* A final symbol: its token, or its bytes as byte tokens. llama.cpp throws
 * when a byte has neither a <0xNN> nor a one-byte token; we use the unknown
 * token then, or drop the byte when there is none. */
static void resegment(const spm_state *st, const vocab_sym *s, vocab_sink *out) {
    const infer_vocab *v = st->v;
    int32_t id = vocab_find(v, st->text + s->start, s->n);
    if (id >= 0) {
        sink_push(out, id);
        return;
    }
    for (uint32_t j = 0; j < s->n; j++) {
        int32_t b = v->byte_tok[(unsigned char)st->text[s->start + j]];
        if (b < 0) b = v->unk;
        if (b >= 0) sink_push(out, b);
    }
}

infer_status vocab_spm_tokenize(const infer_vocab *v, const char *text, size_t len, vocab_sink *out,
                                infer_error *err) {
    spm_state st = {v, text, NULL, {0}};
    infer_status s = INFER_OK;
    size_t n = 0;

    if (len == 0) return INFER_OK;
    if (len >= UINT32_MAX) {
        return set_error(err, INFER_EINVAL, "text fragment of %zu bytes is too long to tokenize", len);
    }
    st.sym = infer_malloc_array(len, sizeof *st.sym);
    if (!st.sym) goto nomem;

    for (size_t off = 0; off < len;) {
        size_t cl = vocab_utf8_len((unsigned char)text[off]);
        if (cl > len - off) cl = len - off;
        st.sym[n].start = (uint32_t)off;
        st.sym[n].n = (uint32_t)cl;
        st.sym[n].prev = n == 0 ? VOCAB_NONE : (uint32_t)(n - 1);
        off += cl;
        st.sym[n].next = off == len ? VOCAB_NONE : (uint32_t)(n + 1);
        n++;
    }

    for (size_t i = 1; i < n; i++) {
        if (try_add_bigram(&st, (uint32_t)(i - 1), (uint32_t)i)) goto nomem;
    }

    while (st.heap.n > 0) {
        vocab_bigram b = vocab_heap_pop(&st.heap);
        vocab_sym *l = &st.sym[b.left], *r = &st.sym[b.right];
        /* one of them was merged since: skip */
        if (l->n == 0 || r->n == 0 || (size_t)l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next != VOCAB_NONE) st.sym[r->next].prev = b.left;
        if (try_add_bigram(&st, l->prev, b.left) || try_add_bigram(&st, b.left, l->next)) goto nomem;
    }

    for (uint32_t i = 0; i != VOCAB_NONE; i = st.sym[i].next) resegment(&st, &st.sym[i], out);
    goto done;
nomem:
    s = set_error(err, INFER_ENOMEM, "out of memory tokenizing %zu bytes", len);
done:
    infer_free(st.heap.a);
    infer_free(st.sym);
    return s;
}
