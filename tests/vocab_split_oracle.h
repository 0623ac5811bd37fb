/* vocab_split_oracle.h - special-token splitting as llama.cpp's
 * tokenizer_st_partition does it, written out plainly (the algorithm
 * vocab_partition replaced): for each special in order (longest first),
 * every plain fragment is split at each leftmost, non-overlapping
 * occurrence of its text, lstrip/rstrip taking the whitespace beside it
 * within the fragment. For test_vocab_split.c and fuzz_tokenizer.c, which
 * compare vocab_partition with it. Out of memory aborts (test code). */
#ifndef INFER_VOCAB_SPLIT_ORACLE_H
#define INFER_VOCAB_SPLIT_ORACLE_H

#include <stdlib.h>
#include <string.h>

#include "vocab_internal.h"

static inline void oracle_add(vocab_frag_list *l, size_t off, size_t len, int32_t tok) {
    if (tok < 0 && len == 0) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->a = realloc(l->a, l->cap * sizeof *l->a);
        if (!l->a) abort(); /* test code */
    }
    l->a[l->n++] = (vocab_frag){off, len, tok};
}

static inline int oracle_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static inline void oracle_split(const infer_vocab *v, const char *text, vocab_frag f, int32_t id, vocab_frag_list *out) {
    const char *tt = vocab_text(v, id);
    const size_t tl = v->toks[id].len;
    const unsigned attr = v->toks[id].attr;
    size_t base = f.off, blen = f.len;
    for (;;) {
        const char *m = blen >= tl ? memmem(text + base, blen, tt, tl) : NULL;
        if (!m) {
            oracle_add(out, base, blen, -1);
            return;
        }
        size_t mo = (size_t)(m - text), left = mo - base;
        if (attr & ATTR_LSTRIP)
            while (left > 0 && oracle_space(text[base + left - 1])) left--;
        oracle_add(out, base, left, -1);
        oracle_add(out, 0, 0, id);
        size_t rs = mo + tl, rl = base + blen - rs;
        if (attr & ATTR_RSTRIP)
            while (rl > 0 && oracle_space(text[rs])) rs++, rl--;
        if (rl == 0) return;
        base = rs;
        blen = rl;
    }
}

static inline vocab_frag_list oracle_partition(const infer_vocab *v, const char *text, size_t len, int parse_special) {
    vocab_frag_list fl = {0}, other = {0};
    if (len == 0) return fl;
    oracle_add(&fl, 0, len, -1);
    for (size_t k = 0; k < v->n_specials; k++) {
        const int32_t id = v->specials[k];
        const vocab_tok *t = &v->toks[id];
        if (!parse_special && (t->attr & (ATTR_CONTROL | ATTR_UNKNOWN))) continue;
        if (t->len == 0) continue;
        other.n = 0;
        for (size_t i = 0; i < fl.n; i++) {
            if (fl.a[i].tok >= 0) oracle_add(&other, 0, 0, fl.a[i].tok);
            else oracle_split(v, text, fl.a[i], id, &other);
        }
        vocab_frag_list tmp = fl;
        fl = other;
        other = tmp;
    }
    free(other.a);
    return fl;
}

/* 1 when two fragment lists are the same splits (plain fragments by
 * place, tokens by id). */
static inline int oracle_same(const vocab_frag_list *x, const vocab_frag_list *y) {
    if (x->n != y->n) return 0;
    for (size_t i = 0; i < x->n; i++) {
        const vocab_frag a = x->a[i], b = y->a[i];
        if (a.tok != b.tok || (a.tok < 0 && (a.off != b.off || a.len != b.len))) return 0;
    }
    return 1;
}

#endif
