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
 * The same splits, kept as the runs of text still plain (two runs always
 * have a split token's byte between them) and the tokens split out so far,
 * merged at the end. Specials that occur nowhere are skipped. The others go
 * by groups of one length, longest first:
 * - a group of few (ROLL_MIN) does llama.cpp's loop, memmem over each run
 *   per special, without copying the tokens already split out;
 * - a larger group is found in one pass: each L-byte window of each run
 *   hashed and looked up among the group's hashes, then each special in
 *   order takes, in text order, the windows that are its text and have no
 *   byte an earlier take of this group has claimed (a byte map), with
 *   lstrip/rstrip claiming the whitespace beside; a special that overlaps
 *   itself too often to list its windows does the loop above in its turn.
 *   A hostile vocabulary of 9025 two-byte user-defined tokens, all
 *   occurring, made llama.cpp's loop take 43 s on a 1 MB prompt (a pass
 *   over every fragment per special); this 0.23 s.
 * Tested against the fragment-by-fragment algorithm (tests/
 * vocab_split_oracle.h) on random vocabularies and texts and by the
 * tokenizer fuzz target. */

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
 * runs[0, n_runs) (tok unused). Without hits: occurs[lk[i].k] set for each
 * that occurs (few specials over few runs: memmem for each; else their
 * hashes in tab, every L-byte window of each run rolled through it, a hit
 * confirmed by memcmp). With hits: every window whose hash is a special's,
 * appended unconfirmed as (position, index i in lk), in text order (a
 * special that overlaps itself, "aaaa" in a run of a's, matches at every
 * byte; confirming each would cost L a window, where the taker confirms
 * only those it could take). */
static int find_group(const infer_vocab *v, const char *text, const vocab_frag *runs, size_t n_runs, const len_k *lk,
                      size_t n, roll_slot *tab, uint8_t *occurs, hit_list *hits, size_t *cnt, size_t cap) {
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
        tab[j] = (roll_slot){h, i + 1};
    }
    uint64_t top = 1; /* roll_base^(L-1) */
    for (size_t i = 1; i < L; i++) top = roll_mul(top, roll_base);
    for (size_t r = 0; r < n_runs; r++) {
        if (runs[r].len < L) continue;
        const size_t end = runs[r].off + runs[r].len;
        uint64_t h = roll_hash(text + runs[r].off, L);
        for (size_t p = runs[r].off;; p++) { /* window [p, p + L) */
            for (size_t j = infer_hash_slot(h, mask); tab[j].k; j = (j + 1) & mask) {
                const size_t g = tab[j].k - 1, k = lk[g].k;
                if (tab[j].h != h) continue;
                if (hits) { /* unconfirmed: the taker compares only where it could take */
                    if (cnt[g] == SIZE_MAX) continue;
                    if (cnt[g] == cap) {
                        cnt[g] = SIZE_MAX;
                        continue;
                    }
                    cnt[g]++;
                    if (hit_add(hits, p, g)) return -1;
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
        r = find_group(v, text, &whole, 1, lk + g0, g1 - g0, tab, occurs, NULL, NULL, 0);
    }
    infer_free(lk);
    infer_free(tab);
    return r;
}

typedef struct {
    size_t pos;
    int32_t id;
} taken; /* a special split out at pos */
typedef struct {
    taken *a;
    size_t n, cap;
} taken_list;

static int taken_add(taken_list *l, size_t pos, int32_t id) {
    taken *a = room_for_one(l->a, &l->cap, l->n, sizeof *a);
    if (!a) return -1;
    l->a = a;
    l->a[l->n++] = (taken){pos, id};
    return 0;
}

/* llama.cpp's step over a plain piece [base, end): the leftmost occurrence
 * of special id, at *at, and [*start, *stop): it with the whitespace its
 * lstrip/rstrip takes inside the piece. 0 when it does not occur there. */
static int next_take(const infer_vocab *v, const char *text, int32_t id, size_t base, size_t end, size_t *at,
                     size_t *start, size_t *stop) {
    const size_t L = v->toks[id].len;
    const unsigned attr = v->toks[id].attr;
    const char *m = end - base >= L ? memmem(text + base, end - base, vocab_text(v, id), L) : NULL;
    if (!m) return 0;
    *at = *start = (size_t)(m - text);
    *stop = *at + L;
    if (attr & ATTR_LSTRIP)
        while (*start > base && c_isspace(text[*start - 1])) (*start)--;
    if (attr & ATTR_RSTRIP)
        while (*stop < end && c_isspace(text[*stop])) (*stop)++;
    return 1;
}

/* A group of few: special id split out of every run (llama.cpp's loop over
 * the plain fragments), the runs left into next. */
static int split_runs(const infer_vocab *v, const char *text, int32_t id, const vocab_frag_list *runs,
                      vocab_frag_list *next, taken_list *tk) {
    for (size_t r = 0; r < runs->n; r++) {
        size_t base = runs->a[r].off, at, start, stop;
        const size_t end = base + runs->a[r].len;
        for (; next_take(v, text, id, base, end, &at, &start, &stop); base = stop)
            if (frag_add(next, base, start - base, -1) || taken_add(tk, at, id)) return -1;
        if (frag_add(next, base, end - base, -1)) return -1;
    }
    return 0;
}

typedef struct {
    size_t off, end;
} span;

static int by_off(const void *a, const void *b) {
    const span *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

static int by_pos(const void *a, const void *b) {
    const taken *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

typedef struct {
    span *a;
    size_t n, cap;
} span_list;

/* A take by a large group: [start, end) claimed (the take at p with what its
 * strips took), recorded as a cut of the runs and a token. */
static int take(uint8_t *cl, span_list *cuts, taken_list *tk, size_t start, size_t end, size_t p, int32_t id) {
    span *a = room_for_one(cuts->a, &cuts->cap, cuts->n, sizeof *a);
    if (!a) return -1;
    cuts->a = a;
    cuts->a[cuts->n++] = (span){start, end};
    memset(cl + start, 1, end - start);
    return taken_add(tk, p, id);
}

/* The run holding position p (runs sorted, p inside one). */
static size_t run_of(const vocab_frag_list *runs, size_t p) {
    size_t lo = 0, hi = runs->n; /* the last run with off <= p */
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (runs->a[mid].off <= p) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* One special of a large group whose text overlaps itself too often to
 * list (see split_group): llama.cpp's loop over the pieces of the runs not
 * yet claimed, as for a small group. */
static int split_unlisted(const infer_vocab *v, const char *text, int32_t id, const vocab_frag_list *runs, uint8_t *cl,
                          span_list *cuts, taken_list *tk) {
    for (size_t r = 0; r < runs->n; r++) {
        const size_t r1 = runs->a[r].off + runs->a[r].len;
        for (size_t a = runs->a[r].off, b; a < r1; a = b) { /* the pieces [a, b) with nothing claimed */
            while (a < r1 && cl[a]) a++;
            for (b = a; b < r1 && !cl[b]; b++) {}
            size_t at, start, stop;
            for (size_t base = a; next_take(v, text, id, base, b, &at, &start, &stop); base = stop)
                if (take(cl, cuts, tk, start, stop, at, id)) return -1;
        }
    }
    return 0;
}

/* A large group: the specials lk[0, n) (one length L, in their order) split
 * out of the runs, the runs left into next. cl: one byte per text byte, 0
 * on entry and on return; 1 where this group has claimed. Every claimed
 * span holds a take of L bytes, so an L-byte window touches one exactly
 * when its first or last byte is claimed. A special with more windows
 * than 2 x (plain bytes) / L + 16 overlaps itself (a run of a's for "aaaa"):
 * its windows are not kept (that would be memory per text byte for each
 * such special) and it goes by split_unlisted in its turn. */
static int split_group(const infer_vocab *v, const char *text, const len_k *lk, size_t n, roll_slot *tab,
                       const vocab_frag_list *runs, vocab_frag_list *next, taken_list *tk, uint8_t *cl) {
    const size_t L = lk[0].len;
    hit_list hits = {0};
    size_t *cnt = NULL, *first = NULL, *order = NULL;
    uint8_t *over = NULL; /* over[g]: special g's windows were dropped */
    span_list cuts = {0};
    int r = -1;
    size_t live = 0;
    for (size_t i = 0; i < runs->n; i++) live += runs->a[i].len;
    cnt = infer_calloc(n, sizeof *cnt);
    first = infer_calloc(n + 1, sizeof *first);
    over = infer_calloc(n, 1);
    if (!cnt || !first || !over) goto out;
    /* the windows whose hash is one of the group's, in text order (hit.k:
     * the special's index in the group); cnt[k]: how many, SIZE_MAX for a
     * special over the cap (its windows dropped) */
    if (find_group(v, text, runs->a, runs->n, lk, n, tab, NULL, &hits, cnt, live / L * 2 + 16)) goto out;
    size_t kept = 0;
    for (size_t i = 0; i < hits.n; i++)
        if (cnt[hits.a[i].k] != SIZE_MAX) hits.a[kept++] = hits.a[i];
    hits.n = kept;
    for (size_t g = 0; g < n; g++) {
        over[g] = cnt[g] == SIZE_MAX;
        first[g + 1] = first[g] + (over[g] ? 0 : cnt[g]);
    }
    order = infer_malloc_array(hits.n ? hits.n : 1, sizeof *order);
    if (!order) goto out;
    memcpy(cnt, first, n * sizeof *cnt); /* now where special g's next hit goes */
    for (size_t i = 0; i < hits.n; i++) order[cnt[hits.a[i].k]++] = i; /* stable: by special, then text */
    for (size_t g = 0; g < n; g++) {
        const int32_t id = v->specials[lk[g].k];
        if (over[g]) {
            if (split_unlisted(v, text, id, runs, cl, &cuts, tk)) goto out;
            continue;
        }
        const char *tt = vocab_text(v, id);
        const unsigned attr = v->toks[id].attr;
        size_t cursor = 0, run = 0; /* the end of this special's last take; the run of the hit at hand */
        for (size_t j = first[g]; j < first[g + 1]; j++) {
            const size_t p = hits.a[order[j]].pos;
            if (p < cursor || cl[p] || cl[p + L - 1] || memcmp(text + p, tt, L)) continue;
            if (runs->a[run].off + runs->a[run].len < p + L) run = run_of(runs, p); /* p only grows */
            const size_t r0 = runs->a[run].off, r1 = r0 + runs->a[run].len;
            size_t start = p, end = p + L;
            if (attr & ATTR_LSTRIP)
                while (start > r0 && c_isspace(text[start - 1]) && !cl[start - 1]) start--;
            if (attr & ATTR_RSTRIP)
                while (end < r1 && c_isspace(text[end]) && !cl[end]) end++;
            if (take(cl, &cuts, tk, start, end, p, id)) goto out;
            cursor = end;
        }
    }
    /* the runs less what was claimed; the map cleared for the next group */
    if (cuts.n) qsort(cuts.a, cuts.n, sizeof *cuts.a, by_off); /* (none: cuts.a may be NULL) */
    for (size_t i = 0, c = 0; i < runs->n; i++) {
        size_t at = runs->a[i].off;
        const size_t end = at + runs->a[i].len;
        for (; c < cuts.n && cuts.a[c].off < end; c++) {
            if (frag_add(next, at, cuts.a[c].off - at, -1)) goto out;
            at = cuts.a[c].end;
        }
        if (frag_add(next, at, end - at, -1)) goto out;
    }
    r = 0;
out:
    for (size_t c = 0; c < cuts.n; c++) memset(cl + cuts.a[c].off, 0, cuts.a[c].end - cuts.a[c].off);
    infer_free(hits.a);
    infer_free(cnt);
    infer_free(first);
    infer_free(order);
    infer_free(over);
    infer_free(cuts.a);
    return r;
}

/* The runs left by a split (next) become the runs (their storage reused). */
static void frags_swap(vocab_frag_list *runs, vocab_frag_list *next) {
    const vocab_frag_list t = *runs;
    *runs = *next;
    *next = t;
}

infer_status vocab_partition(const infer_vocab *v, const char *text, size_t len, int parse_special,
                             vocab_frag_list *fl, infer_error *err) {
    uint8_t present[256] = {0};
    uint8_t *cand = NULL;
    uint8_t *cl = NULL; /* a large group's claimed bytes (split_group) */
    len_k *lk = NULL;
    roll_slot *tab = NULL;
    vocab_frag_list runs = {0}, next = {0}; /* the text still plain */
    taken_list tk = {0};
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

    lk = infer_malloc_array(any, sizeof *lk);
    if (!lk || infer_hash_capacity(any, &cap) || !(tab = infer_malloc_array(cap, sizeof *tab))) goto nomem;
    for (size_t k = 0; k < v->n_specials; k++) /* the specials' order: lengths descending */
        if (cand[v->n_specials + k]) lk[n_cand++] = (len_k){v->toks[v->specials[k]].len, k};
    if (frag_add(&runs, 0, len, -1)) goto nomem;
    for (size_t g0 = 0, g1; g0 < n_cand && runs.n; g0 = g1) {
        for (g1 = g0; g1 < n_cand && lk[g1].len == lk[g0].len; g1++) {}
        if (g1 - g0 < ROLL_MIN) {
            for (size_t i = g0; i < g1 && runs.n; i++) {
                next.n = 0;
                if (split_runs(v, text, v->specials[lk[i].k], &runs, &next, &tk)) goto nomem;
                frags_swap(&runs, &next);
            }
        } else {
            if (!cl && !(cl = infer_calloc(len, 1))) goto nomem;
            next.n = 0;
            if (split_group(v, text, lk + g0, g1 - g0, tab, &runs, &next, &tk, cl)) goto nomem;
            frags_swap(&runs, &next);
        }
    }
    /* the tokens and the plain runs, in text order */
    if (tk.n) qsort(tk.a, tk.n, sizeof *tk.a, by_pos); /* (none: tk.a may be NULL: hash hits all refused) */
    for (size_t i = 0, r = 0; i < tk.n || r < runs.n;) {
        const int tok_first = i < tk.n && (r == runs.n || tk.a[i].pos < runs.a[r].off);
        if (tok_first ? frag_add(fl, 0, 0, tk.a[i++].id) : frag_add(fl, runs.a[r].off, runs.a[r].len, -1)) goto nomem;
        if (!tok_first) r++;
    }
    goto out;
nomem:
    s = set_error(err, INFER_ENOMEM, "out of memory splitting special tokens");
out:
    infer_free(cand);
    infer_free(cl);
    infer_free(lk);
    infer_free(tab);
    infer_free(runs.a);
    infer_free(next.a);
    infer_free(tk.a);
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
