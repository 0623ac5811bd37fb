/*
 * test_vocab_split.c - special-token splitting (vocab_partition) against
 * the algorithm it replaced, llama.cpp's tokenizer_st_partition written
 * out plainly: for each special in order (longest first), every plain
 * fragment is split at each leftmost, non-overlapping occurrence of its
 * text, lstrip/rstrip taking the whitespace beside it within the fragment.
 * Random vocabularies over a small alphabet (so that specials overlap,
 * nest, and share lengths in groups both smaller and larger
 * than the rolled-hash threshold) and random texts; then the hostile case
 * that made the old algorithm slow.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "vocab_build.h"
#include "vocab_internal.h"
#include "vocab_split_oracle.h"

/* ---- random cases -------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char ALPHA[] = "aab  b\nc";

/* A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then the
 * n texts given (malloc'd; freed here) with their types. */
static infer_vocab *vocab_with(char **texts, const int32_t *ttypes, size_t n) {
    const size_t total = 259 + n;
    const char **toks = calloc(total, sizeof *toks);
    size_t *lens = calloc(total, sizeof *lens);
    int32_t *types = calloc(total, sizeof *types);
    cr_assert(toks && lens && types);
    static char bytes[256][8];
    const char *fixed[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) toks[i] = fixed[i], types[i] = i == 0 ? 2 : 3;
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        toks[3 + i] = bytes[i], types[3 + i] = 6;
    }
    for (size_t i = 0; i < n; i++) toks[259 + i] = texts[i], types[259 + i] = ttypes[i];
    for (size_t i = 0; i < total; i++) lens[i] = strlen(toks[i]);
    infer_vocab *v = llama_vocab_of(toks, lens, types, total);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(toks), free(lens), free(types);
    return v;
}

/* A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then n
 * random specials of lengths 1-12 (user-defined or control), all
 * distinct; lstrip/rstrip set at random on the specials afterwards. */
static infer_vocab *random_vocab(size_t n) {
    char **texts = calloc(n, sizeof *texts);
    int32_t *types = calloc(n, sizeof *types);
    cr_assert(texts && types);
    const size_t spread = 1 + rnd(12); /* how many lengths the specials use */
    for (size_t i = 0; i < n; i++) {
        texts[i] = malloc(40);
        for (int again = 1, tries = 0; again; tries++) { /* a vocabulary repeats no text (vocab_load refuses) */
            const size_t L = 1 + rnd((uint32_t)spread) + (size_t)tries / 8;
            for (size_t j = 0; j < L; j++) texts[i][j] = ALPHA[rnd(sizeof ALPHA - 1)];
            texts[i][L] = 0;
            again = 0;
            for (size_t j = 0; j < i && !again; j++) again = strcmp(texts[i], texts[j]) == 0;
        }
        types[i] = rnd(3) ? 4 : 3;
    }
    infer_vocab *v = vocab_with(texts, types, n);
    free(texts), free(types);
    for (size_t k = 0; k < v->n_specials; k++) {
        vocab_tok *t = &v->toks[v->specials[k]];
        const uint32_t r = rnd(4);
        if (r & 1) t->attr |= ATTR_LSTRIP;
        if (r & 2) t->attr |= ATTR_RSTRIP;
    }
    return v;
}

static void expect_same(const infer_vocab *v, const char *text, size_t len, int parse_special, int round) {
    vocab_frag_list got = {0};
    infer_error err = {0};
    cr_assert_eq(vocab_partition(v, text, len, parse_special, &got, &err), INFER_OK, "%s", err.message);
    vocab_frag_list want = oracle_partition(v, text, len, parse_special);
    cr_assert_eq(got.n, want.n, "round %d: %zu fragments, the old algorithm %zu (text '%.*s')", round, got.n, want.n,
                 (int)len, text);
    for (size_t i = 0; i < got.n; i++) {
        const vocab_frag a = got.a[i], b = want.a[i];
        cr_assert(a.tok == b.tok && (a.tok >= 0 || (a.off == b.off && a.len == b.len)),
                  "round %d fragment %zu: tok %d [%zu, +%zu), the old algorithm tok %d [%zu, +%zu] (text '%.*s')",
                  round, i, a.tok, a.off, a.len, b.tok, b.off, b.len, (int)len, text);
    }
    free(got.a);
    free(want.a);
}

Test(vocab_split, same_splits_as_the_fragment_by_fragment_algorithm) {
    char text[400];
    long splits = 0;
    for (int round = 0; round < 300; round++) {
        const size_t n = 1 + rnd(round % 3 == 0 ? 60 : 12); /* length groups above and below ROLL_MIN */
        infer_vocab *v = random_vocab(n);
        for (int t = 0; t < 20; t++) {
            const size_t len = rnd(sizeof text);
            for (size_t i = 0; i < len; i++) text[i] = ALPHA[rnd(sizeof ALPHA - 1)];
            expect_same(v, text, len, (int)rnd(2), round);
            splits++;
        }
        vocab_free(v);
    }
    cr_assert_eq(splits, 6000);
}

/* Every 2-byte text over 95 printable characters as a user-defined token
 * (9025 specials, all of one length, nearly all occurring): the old
 * algorithm passed over every fragment once per special, seconds for
 * 100 KB (minutes for 1 MB); now one pass of the group. Checked against
 * the old algorithm on 20 KB (~0.6 s for it here). */
Test(vocab_split, thousands_of_occurring_specials) {
    enum { A = 95 };
    char **texts = calloc((size_t)A * A, sizeof *texts);
    int32_t *types = calloc((size_t)A * A, sizeof *types);
    cr_assert(texts && types);
    for (size_t i = 0; i < (size_t)A * A; i++) {
        texts[i] = malloc(3);
        texts[i][0] = (char)(32 + i / A), texts[i][1] = (char)(32 + i % A), texts[i][2] = 0;
        types[i] = 4;
    }
    infer_vocab *v = vocab_with(texts, types, (size_t)A * A);
    free(texts), free(types);

    const size_t big = (size_t)1 << 20;
    char *text = malloc(big);
    cr_assert_not_null(text);
    for (size_t i = 0; i < big; i++) text[i] = (char)(32 + rnd(A));
    expect_same(v, text, 20000, 0, 0);
    vocab_frag_list fl = {0};
    const double t0 = test_now_s();
    cr_assert_eq(vocab_partition(v, text, big, 0, &fl, NULL), INFER_OK);
    const double t = test_now_s() - t0;
    size_t toks_out = 0;
    for (size_t i = 0; i < fl.n; i++) toks_out += fl.a[i].tok >= 0;
    cr_assert_gt(toks_out, big / 8, "%zu specials split out of 1 MB", toks_out);
    cr_log_info("vocab_split: 1 MB, 9025 two-byte specials: %zu split out in %.3f s", toks_out, t);
    free(fl.a);
    free(text);
    vocab_free(v);
}

/* Specials that overlap themselves: "a", "aa", ... 300 a's, over a text of
 * a's. The longest takes nearly everything, so the shorter ones find
 * little still live: their search covers only the live runs, and each
 * window of a's is a hash hit confirmed only where it could be taken (a
 * first version confirmed every one: seconds for 100 KB, where the old
 * algorithm took a millisecond). */
Test(vocab_split, long_self_overlapping_specials) {
    enum { N = 300 };
    char **texts = calloc(N, sizeof *texts);
    int32_t *types = calloc(N, sizeof *types);
    cr_assert(texts && types);
    for (size_t i = 0; i < N; i++) {
        texts[i] = malloc(i + 2);
        memset(texts[i], 'a', i + 1);
        texts[i][i + 1] = 0;
        types[i] = 4;
    }
    infer_vocab *v = vocab_with(texts, types, N);
    free(texts), free(types);
    char *text = malloc(20000);
    cr_assert_not_null(text);
    memset(text, 'a', 20000);
    for (size_t len = 19000; len <= 20000; len += 71) expect_same(v, text, len, 0, (int)len);
    text[777] = 'b', text[12345] = ' ';
    expect_same(v, text, 20000, 0, 1);
    free(text);
    vocab_free(v);
}

/* One large group (all 16 four-byte texts over "a "), so that it is found
 * in one pass, over texts of long runs of a's and spaces: "aaaa" and "    "
 * then match at most bytes, more often than a group keeps windows for, and
 * go by the per-special loop inside the group's pass. Random lstrip/rstrip,
 * user-defined and control, both parse_special values. */
Test(vocab_split, large_group_with_self_overlapping_specials) {
    char text[3000];
    for (int round = 0; round < 200; round++) {
        char *texts[16];
        int32_t types[16];
        for (int i = 0; i < 16; i++) {
            texts[i] = malloc(5);
            for (int b = 0; b < 4; b++) texts[i][b] = (i >> b) & 1 ? ' ' : 'a';
            texts[i][4] = 0;
            types[i] = rnd(4) ? 4 : 3;
        }
        infer_vocab *v = vocab_with(texts, types, 16);
        for (size_t k = 0; k < v->n_specials; k++) {
            vocab_tok *t = &v->toks[v->specials[k]];
            const uint32_t r = rnd(4);
            if (r & 1) t->attr |= ATTR_LSTRIP;
            if (r & 2) t->attr |= ATTR_RSTRIP;
        }
        for (int t = 0; t < 5; t++) {
            size_t len = 0;
            const size_t want = 1 + rnd(sizeof text);
            while (len < want) { /* runs of a's (mostly) and of spaces */
                const char c = rnd(10) < 7 ? 'a' : ' ';
                for (size_t n = 1 + rnd(200); n > 0 && len < want; n--) text[len++] = c;
            }
            expect_same(v, text, len, (int)rnd(2), round);
        }
        vocab_free(v);
    }
}

/* A large group whose every occurrence a longer special took first: the
 * group finds nothing left and splits nothing (fuzz_tokenizer found it
 * passing a NULL array to qsort, under UBSan). */
Test(vocab_split, large_group_left_nothing) {
    /* "aabba  b a" holds nine distinct two-byte texts, all specials too */
    static const char *const two[] = {"aa", "ab", "bb", "ba", "a ", "  ", " b", "b ", " a"};
    char *texts[10];
    int32_t types[10];
    for (int i = 0; i < 9; i++) texts[i] = strdup(two[i]), types[i] = 4;
    texts[9] = strdup("aabba  b a"), types[9] = 4;
    infer_vocab *v = vocab_with(texts, types, 10);
    expect_same(v, "aabba  b acaabba  b a", 21, 0, 0); /* the group's specials occur, only inside the long one */
    expect_same(v, "aabba  b a", 10, 1, 1);
    vocab_free(v);
}
