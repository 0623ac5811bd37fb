/*
 * vocab_text.c - text in, ids out and back: vocab_tokenize (special-token
 * splitting, then the SPM or BPE tokenizer on each piece of plain text),
 * vocab_token_to_piece, and the UTF-8 stream that never emits half a
 * character.
 */
#include "vocab_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- special-token splitting ---------------------------------------------
 * As llama.cpp's tokenizer_st_partition: for each special token, longest
 * first, every plain-text fragment is split at each (leftmost,
 * non-overlapping) occurrence of its text. User-defined tokens are split out
 * even when parse_special is off; control and unknown ones only when on.
 *
 * That algorithm passes over every fragment once per special it tries: a
 * hostile vocabulary of thousands of short user-defined tokens that all
 * occur made a 100 KB prompt take seconds and a 1 MB one minutes. Here
 * each special visits only the places its text occurs. Fragments are the
 * maximal runs of bytes still live (a split token and the whitespace its
 * lstrip/rstrip removes are dead, and two fragments always have a dead
 * byte between them), so "the leftmost occurrence inside the fragment,
 * then on after it" is: in text order, an occurrence is taken when all its
 * bytes are live (a Fenwick tree of dead bytes answers that), which also
 * excludes overlapping this special's last one. The same splits: tested against
 * the fragment-by-fragment algorithm on random vocabularies and texts
 * (test_vocab_split.c). A length group searches only the runs still live,
 * so text a longer special took is not read again. */

/* The array a of *cap elements of size elem (n in use) with room for one
 * more: a itself, or doubled when full (the size arithmetic checked); NULL
 * when out of memory, a then unchanged. */
static void *room_for_one(void *a, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return a;
    size_t nc = *cap ? *cap : 16, bytes;
    if ((*cap && ck_mul(nc, (size_t)2, &nc)) || ck_mul(nc, elem, &bytes)) return NULL;
    void *na = infer_realloc(a, bytes);
    if (na) *cap = nc;
    return na;
}

static int frag_add(vocab_frag_list *l, size_t off, size_t len, int32_t tok) {
    if (tok < 0 && len == 0) return 0;
    vocab_frag *a = room_for_one(l->a, &l->cap, l->n, sizeof *a);
    if (!a) return -1;
    l->a = a;
    l->a[l->n++] = (vocab_frag){off, len, tok};
    return 0;
}

static int c_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Which of the candidate specials (cand[k]: may be split out here) occur
 * in text at all, into occurs[k], and (positions not NULL) where: every
 * start of an occurrence of a candidate of length L, overlapping ones too,
 * as pairs in text order. Per distinct length L among them: when many
 * share it, a table of their polynomial hashes with every L-byte window of
 * the text rolled through it (each hit confirmed by memcmp); when few do,
 * memmem for each (glibc's skips ahead: many lengths of one token each, a
 * case where rolling once per length was 180x slower, stay fast). */
#define ROLL_MIN 8
/* Polynomial hashes modulo the prime 2^61 - 1 with a base drawn once per
 * process: modulo 2^64 any odd base has colliding texts (Thue-Morse), and
 * with a fixed base colliding texts can be computed; a collision costs a
 * comparison of L bytes, so a text built to collide everywhere would cost
 * L per byte. */
#define ROLL_M ((1ull << 61) - 1)
typedef struct {
    uint64_t h;
    size_t k;
} roll_slot;
typedef struct {
    size_t len, k;
} len_k;
typedef struct {
    size_t pos, k;
} hit;
typedef struct {
    hit *a;
    size_t n, cap;
} hit_list;

static int by_len(const void *a, const void *b) {
    const len_k *x = a, *y = b;
    return (x->len > y->len) - (x->len < y->len);
}

static uint64_t roll_mul(uint64_t a, uint64_t b) { /* a * b mod ROLL_M, for a, b < ROLL_M */
    const unsigned __int128 r = (unsigned __int128)a * b;
    uint64_t x = ((uint64_t)r & ROLL_M) + (uint64_t)(r >> 61);
    return x >= ROLL_M ? x - ROLL_M : x;
}

static uint64_t roll_base;
static pthread_once_t roll_once = PTHREAD_ONCE_INIT;

static void roll_init(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)&ts; /* splitmix64 */
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    roll_base = 256 + z % (ROLL_M - 512);
}

static uint64_t roll_hash(const char *s, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) {
        h = roll_mul(h, roll_base) + (unsigned char)s[i];
        if (h >= ROLL_M) h -= ROLL_M;
    }
    return h;
}

static int hit_add(hit_list *l, size_t pos, size_t k) {
    hit *a = room_for_one(l->a, &l->cap, l->n, sizeof *a);
    if (!a) return -1;
    l->a = a;
    l->a[l->n++] = (hit){pos, k};
    return 0;
}

/* The specials lk[0, n) (all of one length L) inside the runs of text
 * runs[0, n_runs) (tok unused). Without hits: occurs[] set for each that
 * occurs (few specials over few runs: memmem for each; else their hashes
 * in tab, every L-byte window of each run rolled through it, a hit
 * confirmed by memcmp). With hits: every window whose hash is a special's,
 * appended unconfirmed (a special that overlaps itself, "aaaa" in a run of
 * a's, matches at every byte; confirming each would cost L a window, where
 * the taker confirms only those it could take). */
static int find_group(const infer_vocab *v, const char *text, const vocab_frag *runs, size_t n_runs, const len_k *lk,
                      size_t n, roll_slot *tab, uint8_t *occurs, hit_list *hits) {
    const size_t L = lk[0].len;
    if (!hits && n < ROLL_MIN && n_runs <= 64) {
        for (size_t i = 0; i < n; i++) {
            const char *t = vocab_text(v, v->specials[lk[i].k]);
            for (size_t r = 0; r < n_runs && !occurs[lk[i].k]; r++)
                occurs[lk[i].k] = runs[r].len >= L && memmem(text + runs[r].off, runs[r].len, t, L) != NULL;
        }
        return 0;
    }
    pthread_once(&roll_once, roll_init);
    size_t mask = 0;
    if (infer_hash_capacity(n, &mask)) return -1; /* not reached: the caller's table held more */
    memset(tab, 0, mask * sizeof *tab);
    mask--;
    for (size_t i = 0; i < n; i++) {
        const uint64_t h = roll_hash(vocab_text(v, v->specials[lk[i].k]), L);
        size_t j = infer_hash_slot(h, mask);
        while (tab[j].k) j = (j + 1) & mask;
        tab[j] = (roll_slot){h, lk[i].k + 1};
    }
    uint64_t top = 1; /* roll_base^(L-1) */
    for (size_t i = 1; i < L; i++) top = roll_mul(top, roll_base);
    for (size_t r = 0; r < n_runs; r++) {
        if (runs[r].len < L) continue;
        const size_t end = runs[r].off + runs[r].len;
        uint64_t h = roll_hash(text + runs[r].off, L);
        for (size_t p = runs[r].off;; p++) { /* window [p, p + L) */
            for (size_t j = infer_hash_slot(h, mask); tab[j].k; j = (j + 1) & mask) {
                const size_t k = tab[j].k - 1;
                if (tab[j].h != h) continue;
                if (hits) { /* unconfirmed: the taker compares only where the bytes are still live */
                    if (hit_add(hits, p, k)) return -1;
                } else if (!occurs[k] && !memcmp(text + p, vocab_text(v, v->specials[k]), L)) {
                    occurs[k] = 1;
                }
            }
            if (p + L >= end) break;
            const uint64_t out = roll_mul((unsigned char)text[p], top);
            h = roll_mul(h >= out ? h - out : h + ROLL_M - out, roll_base) + (unsigned char)text[p + L];
            if (h >= ROLL_M) h -= ROLL_M;
        }
    }
    return 0;
}

/* occurs[k] for the candidates, by groups of equal length. */
static int find_occurring(const infer_vocab *v, const char *text, size_t len, const uint8_t *cand, uint8_t *occurs) {
    size_t n = 0, cap = 0;
    for (size_t k = 0; k < v->n_specials; k++) n += cand[k];
    len_k *lk = infer_malloc_array(n ? n : 1, sizeof *lk);
    roll_slot *tab = infer_hash_capacity(n, &cap) ? NULL : infer_malloc_array(cap, sizeof *tab);
    int r = lk && tab ? 0 : -1;
    n = 0;
    for (size_t k = 0; !r && k < v->n_specials; k++)
        if (cand[k]) lk[n++] = (len_k){v->toks[v->specials[k]].len, k};
    if (!r) qsort(lk, n, sizeof *lk, by_len);
    for (size_t g0 = 0, g1; !r && g0 < n; g0 = g1) {
        for (g1 = g0; g1 < n && lk[g1].len == lk[g0].len; g1++) {}
        const vocab_frag whole = {0, len, -1};
        r = find_group(v, text, &whole, 1, lk + g0, g1 - g0, tab, occurs, NULL);
    }
    infer_free(lk);
    infer_free(tab);
    return r;
}

/* Dead bytes, counted in a Fenwick tree over [0, n): a window is inside one
 * fragment when none of its bytes is dead. */
static void dead_add(size_t *fw, size_t n, size_t i) {
    for (i++; i <= n; i += i & (~i + 1)) fw[i]++;
}

static size_t dead_before(const size_t *fw, size_t i) { /* dead bytes in [0, i) */
    size_t s = 0;
    for (; i > 0; i -= i & (~i + 1)) s += fw[i];
    return s;
}

enum { LIVE = -1, DEAD = -2 };

static void mark_dead(int32_t *st, size_t *fw, size_t n, size_t i, int32_t as) {
    st[i] = as;
    dead_add(fw, n, i);
}

/* Special k (id, text length L) at its occurrences pos[0, np), ascending. */
static void split_special(const infer_vocab *v, const char *text, size_t len, int32_t id, const size_t *pos,
                          size_t np, int32_t *st, size_t *fw) {
    const size_t L = v->toks[id].len;
    const unsigned attr = v->toks[id].attr;
    for (size_t i = 0; i < np; i++) {
        const size_t p = pos[i];
        /* All live: inside a fragment, and past this special's last match
         * (whose bytes, and what its rstrip took, are dead). */
        if (dead_before(fw, p + L) != dead_before(fw, p) || memcmp(text + p, vocab_text(v, id), L)) continue;
        if (attr & ATTR_LSTRIP)
            for (size_t q = p; q > 0 && st[q - 1] == LIVE && c_isspace(text[q - 1]); q--) mark_dead(st, fw, len, q - 1, DEAD);
        mark_dead(st, fw, len, p, id);
        for (size_t q = p + 1; q < p + L; q++) mark_dead(st, fw, len, q, DEAD);
        if (attr & ATTR_RSTRIP)
            for (size_t q = p + L; q < len && st[q] == LIVE && c_isspace(text[q]); q++) mark_dead(st, fw, len, q, DEAD);
    }
}

static int by_hit(const void *a, const void *b) {
    const hit *x = a, *y = b;
    if (x->k != y->k) return (x->k > y->k) - (x->k < y->k);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

infer_status vocab_partition(const infer_vocab *v, const char *text, size_t len, int parse_special,
                             vocab_frag_list *fl, infer_error *err) {
    uint8_t present[256] = {0};
    uint8_t *cand = NULL;
    int32_t *st = NULL;
    size_t *fw = NULL, *pos = NULL;
    len_k *lk = NULL;
    roll_slot *tab = NULL;
    hit_list hits = {0};
    vocab_frag_list runs = {0}, next = {0}; /* the runs of live bytes */
    infer_status s = INFER_OK;
    size_t any = 0, n_cand = 0, cap = 0;

    if (len == 0) return INFER_OK;
    for (size_t i = 0; i < len; i++) present[(unsigned char)text[i]] = 1;
    /* cand[k]: special k may be split out here; then cand[k + n]: it occurs */
    if (v->n_specials && !(cand = infer_calloc(v->n_specials, 2))) goto nomem;
    for (size_t k = 0; k < v->n_specials; k++) {
        const vocab_tok *t = &v->toks[v->specials[k]];
        cand[k] = (parse_special || !(t->attr & (ATTR_CONTROL | ATTR_UNKNOWN))) && t->len > 0 && t->len <= len &&
                  present[(unsigned char)v->text[t->off]];
    }
    if (v->n_specials && find_occurring(v, text, len, cand, cand + v->n_specials)) goto nomem;
    for (size_t k = 0; k < v->n_specials; k++) any += cand[v->n_specials + k];
    if (!any) {
        if (frag_add(fl, 0, len, -1)) goto nomem;
        goto out;
    }

    /* Specials are ordered longest first (ties by id): each group of one
     * length gets its occurrences in one pass, then each special of it in
     * order takes what is still live. */
    st = infer_malloc_array(len, sizeof *st);
    size_t n1 = 0;
    fw = ck_add(len, 1, &n1) ? NULL : infer_calloc(n1, sizeof *fw);
    lk = infer_malloc_array(any, sizeof *lk);
    if (!st || !fw || !lk || infer_hash_capacity(any, &cap) || !(tab = infer_malloc_array(cap, sizeof *tab))) goto nomem;
    for (size_t i = 0; i < len; i++) st[i] = LIVE;
    for (size_t k = 0; k < v->n_specials; k++)
        if (cand[v->n_specials + k]) lk[n_cand++] = (len_k){v->toks[v->specials[k]].len, k};
    if (frag_add(&runs, 0, len, -1)) goto nomem;
    for (size_t g0 = 0, g1; g0 < n_cand && runs.n; g0 = g1) { /* lk is in the specials' order: lengths descending */
        for (g1 = g0; g1 < n_cand && lk[g1].len == lk[g0].len; g1++) {}
        hits.n = 0;
        if (find_group(v, text, runs.a, runs.n, lk + g0, g1 - g0, tab, cand + v->n_specials, &hits)) goto nomem;
        qsort(hits.a, hits.n, sizeof *hits.a, by_hit); /* by special (their order), then position */
        infer_free(pos);
        if (!(pos = infer_malloc_array(hits.n ? hits.n : 1, sizeof *pos))) goto nomem;
        for (size_t i = 0; i < hits.n; i++) pos[i] = hits.a[i].pos;
        for (size_t i = 0, j; i < hits.n; i = j) {
            for (j = i; j < hits.n && hits.a[j].k == hits.a[i].k; j++) {}
            split_special(v, text, len, v->specials[hits.a[i].k], pos + i, j - i, st, fw);
        }
        /* The live runs left, for the next (shorter) group: only they are
         * searched, so text a longer special took is not read again. */
        next.n = 0;
        for (size_t r = 0; r < runs.n; r++) {
            const size_t end = runs.a[r].off + runs.a[r].len;
            for (size_t i = runs.a[r].off; i < end;) {
                if (st[i] != LIVE) {
                    i++;
                    continue;
                }
                size_t j = i;
                while (j < end && st[j] == LIVE) j++;
                if (frag_add(&next, i, j - i, -1)) goto nomem;
                i = j;
            }
        }
        const vocab_frag_list t = runs;
        runs = next;
        next = t;
    }
    for (size_t i = 0; i < len;) {
        if (st[i] >= 0) {
            if (frag_add(fl, 0, 0, st[i])) goto nomem;
            i++;
        } else if (st[i] == DEAD) {
            i++;
        } else {
            size_t j = i;
            while (j < len && st[j] == LIVE) j++;
            if (frag_add(fl, i, j - i, -1)) goto nomem;
            i = j;
        }
    }
    goto out;
nomem:
    s = set_error(err, INFER_ENOMEM, "out of memory splitting special tokens");
out:
    infer_free(cand);
    infer_free(st);
    infer_free(fw);
    infer_free(pos);
    infer_free(lk);
    infer_free(tab);
    infer_free(hits.a);
    infer_free(runs.a);
    infer_free(next.a);
    return s;
}

/* ---- tokenize ------------------------------------------------------------ */

/* SentencePiece input: optional leading "▁", every space as "▁". */
static infer_status spm_fragment(const infer_vocab *v, const char *text, size_t len, int prefix,
                                 vocab_sink *out, char **buf, size_t *cap, infer_error *err) {
    size_t spaces = 0, need;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    if (ck_mul(spaces + (size_t)(prefix != 0), (size_t)2, &need) || ck_add(need, len + (prefix != 0), &need)) {
        return set_error(err, INFER_EINVAL, "text too long to tokenize");
    }
    if (need > *cap) {
        char *nb = infer_realloc(*buf, need);
        if (!nb) return set_error(err, INFER_ENOMEM, "out of memory for %zu bytes of text", need);
        *buf = nb;
        *cap = need;
    }
    size_t o = 0;
    if (prefix) memcpy(*buf, "\xe2\x96\x81", 3), o = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(*buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            (*buf)[o++] = text[i];
        }
    }
    return vocab_spm_tokenize(v, *buf, o, out, err);
}

infer_status vocab_tokenize(const infer_vocab *v, const char *text, size_t len, int add_special,
                            int parse_special, int32_t *ids, size_t cap, size_t *n_out,
                            infer_error *err) {
    vocab_sink out = {ids, cap, 0};
    vocab_frag_list fl = {0};
    char *buf = NULL;
    size_t buf_cap = 0;
    infer_status s = INFER_OK;

    if (n_out) *n_out = 0;
    if (!v || !n_out || (!text && len) || (!ids && cap)) {
        return set_error(err, INFER_EINVAL, "vocab_tokenize: NULL argument");
    }
    if ((s = vocab_partition(v, text, len, parse_special, &fl, err)) != INFER_OK) goto done;

    if (add_special && v->add_bos) sink_push(&out, v->bos);
    int prev_special = 1; /* SPM: a space prefix goes before text that starts the prompt or follows a special */
    for (size_t i = 0; i < fl.n && s == INFER_OK; i++) {
        const vocab_frag *f = &fl.a[i];
        if (f->tok >= 0) {
            sink_push(&out, f->tok);
            prev_special = 1;
        } else if (v->type == VOCAB_SPM) {
            s = spm_fragment(v, text + f->off, f->len, v->add_space_prefix && prev_special, &out, &buf,
                             &buf_cap, err);
            prev_special = 0;
        } else {
            s = vocab_bpe_tokenize(v, text + f->off, f->len, &out, err);
        }
    }
    if (s != INFER_OK) goto done;
    if (add_special && v->add_eos) sink_push(&out, v->eos);

    *n_out = out.n;
    if (out.n > cap) {
        s = set_error(err, INFER_EINVAL, "the text needs %zu tokens; the buffer holds %zu", out.n, cap);
    }
done:
    infer_free(buf);
    infer_free(fl.a);
    return s;
}

/* ---- detokenize ------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t cap, n;
} piece_out;

static void put(piece_out *o, const char *s, size_t n) {
    if (o->n < o->cap) {
        size_t room = o->cap - o->n;
        memcpy(o->buf + o->n, s, n < room ? n : room);
    }
    o->n = o->n + n < o->n ? SIZE_MAX : o->n + n;
}

/* llama.cpp's llama_decode_text: GPT-2 stand-ins back to bytes; a code
 * point outside the map is written as [UNK_BYTE_0x<its utf8 hex><text>].
 * llama.cpp appends the whole token's text for every such code point, so a
 * hostile token of L bytes of them renders as ~L^2/3 bytes (1.4 GB from a
 * 64 KB token); here the text follows the first one only, the later ones
 * are [UNK_BYTE_0x<hex>], and a piece stays within 20 x L bytes (a byte
 * that is not UTF-8 becomes U+FFFD: 19 bytes of marker, plus the text once). Real
 * byte-level vocabularies have no such code points in normal tokens. */
static void bpe_decode(const char *t, size_t len, piece_out *o) {
    static const char hex[] = "0123456789abcdef";
    int text_shown = 0;
    for (size_t i = 0; i < len;) {
        size_t adv;
        int64_t c = vocab_utf8_decode((const unsigned char *)t, len, i, &adv);
        uint32_t cp = c < 0 || c > 0x10ffff ? 0xfffd : (uint32_t)c;
        int b = vocab_bpe_cp_byte(cp);
        if (b >= 0) {
            char ch = (char)b;
            put(o, &ch, 1);
        } else {
            char u[4], h[2];
            size_t ul = vocab_utf8_put(u, cp);
            put(o, "[UNK_BYTE_0x", 12);
            for (size_t k = 0; k < ul; k++) {
                h[0] = hex[(unsigned char)u[k] >> 4];
                h[1] = hex[(unsigned char)u[k] & 15];
                put(o, h, 2);
            }
            if (!text_shown) put(o, t, len);
            text_shown = 1;
            put(o, "]", 1);
        }
        i += adv;
    }
}

infer_status vocab_token_to_piece(const infer_vocab *v, int32_t id, int render_special, char *buf,
                                  size_t cap, size_t *len) {
    piece_out o = {buf, cap, 0};
    if (len) *len = 0;
    if (!v || !len || (!buf && cap) || id < 0 || id >= v->n_tokens) return INFER_EINVAL;
    const vocab_tok *t = &v->toks[id];
    const char *s = vocab_text(v, id);
    unsigned attr = t->attr;

    if (!render_special && (attr & (ATTR_UNKNOWN | ATTR_CONTROL))) return INFER_OK;
    if (attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) {
        put(&o, s, t->len);
    } else if (attr & ATTR_NORMAL) {
        if (v->type == VOCAB_BPE) {
            bpe_decode(s, t->len, &o);
        } else {
            for (size_t i = 0; i < t->len;) { /* "▁" -> " " */
                if (t->len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    put(&o, " ", 1);
                    i += 3;
                } else {
                    put(&o, s + i, 1);
                    i++;
                }
            }
        }
    } else if (attr & ATTR_BYTE) {
        char b = (char)t->byte;
        put(&o, &b, 1);
    }
    /* unused / undefined tokens render nothing */
    *len = o.n;
    return o.n > cap ? INFER_EINVAL : INFER_OK;
}

/* ---- UTF-8 stream ---------------------------------------------------------- */

/* Bytes of the sequence lead byte c starts, or 1 for a byte that cannot
 * start one (ASCII, continuation, 0xF8..0xFF): those pass through at once. */
static size_t seq_len(unsigned char c) {
    if (c >= 0xc0 && c < 0xe0) return 2;
    if (c >= 0xe0 && c < 0xf0) return 3;
    if (c >= 0xf0 && c < 0xf8) return 4;
    return 1;
}

static void emit(char *out, size_t cap, size_t *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (*o < cap) out[*o] = s[i];
        (*o)++;
    }
}

size_t vocab_utf8_stream_push(vocab_utf8_stream *s, const char *piece, size_t len, char *out,
                              size_t cap) {
    size_t o = 0;
    if (!s || (!piece && len) || (!out && cap)) return 0;
    if (s->n_pending > 4) s->n_pending = 0; /* a corrupted stream: start over */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)piece[i];
        if (s->n_pending > 0) {
            if ((c & 0xc0) == 0x80) {
                s->pending[s->n_pending++] = (char)c;
                if (s->n_pending == seq_len((unsigned char)s->pending[0])) {
                    emit(out, cap, &o, s->pending, s->n_pending);
                    s->n_pending = 0;
                }
                continue;
            }
            /* the sequence broke off: what there is goes out as it is */
            emit(out, cap, &o, s->pending, s->n_pending);
            s->n_pending = 0;
        }
        if (seq_len(c) == 1) {
            emit(out, cap, &o, (const char *)&piece[i], 1);
        } else {
            s->pending[0] = (char)c;
            s->n_pending = 1;
        }
    }
    return o < cap ? o : cap;
}

size_t vocab_utf8_stream_flush(vocab_utf8_stream *s, char *out, size_t cap) {
    size_t o = 0;
    if (!s || (!out && cap)) return 0;
    if (s->n_pending > 4) s->n_pending = 0;
    emit(out, cap, &o, s->pending, s->n_pending);
    s->n_pending = 0;
    return o < cap ? o : cap;
}
