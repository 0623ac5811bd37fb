/* test_vocab_behavior.c - the tokenizer on small synthetic vocabularies
 * whose right answers can be worked out by hand: SPM merges by score and
 * byte fallback, the space prefix, special tokens split out of the text
 * (longest first), phi-3's spaces, BPE merges by rank, llama-3's whole
 * words, and pieces outside the byte map. Built in memory (vocab_build.h). */
#include "vocab_build.h"

/* ---- behaviour on the synthetic vocabularies ------------------------------------------------ */

Test(vocab_behavior, spm_merges_by_score_and_falls_back_to_bytes) {
    infer_vocab *v = spm_vocab();
    /* "▁ab": ▁a (-1) and ab (-0.5) compete: ab wins, then nothing pairs */
    expect_ids(v, "ab", 2, 0, 0, IDS(SPM_SP, SPM_AB));
    /* "abc" (-0.25) is built from ab + c */
    expect_ids(v, "abc", 3, 0, 0, IDS(SPM_SP, SPM_ABC));
    expect_ids(v, "a", 1, 0, 0, IDS(SPM_SPA));
    /* no token for 'q': its byte; "é" is two byte tokens */
    expect_ids(v, "q", 1, 0, 0, IDS(SPM_SP, 3 + 'q'));
    expect_ids(v, "\xc3\xa9", 2, 0, 0, IDS(SPM_SP, 3 + 0xc3, 3 + 0xa9));
    expect_ids(v, "\xe4\xb8\xad", 3, 0, 0, IDS(SPM_SP, SPM_ZH));
    /* invalid UTF-8 goes through bytes, never crashes: a lead byte swallows
     * what follows it, as llama.cpp's character split does */
    expect_ids(v, "\xe4x", 2, 0, 0, IDS(SPM_SP, 3 + 0xe4, 3 + 'x'));
    expect_ids(v, "\xff", 1, 0, 0, IDS(SPM_SP, 3 + 0xff));
    /* spaces are ▁ */
    expect_ids(v, "a a", 3, 0, 0, IDS(SPM_SPA, SPM_SPA));
    expect_ids(v, "", 0, 0, 0, IDS(-1));
    vocab_free(v);
}

Test(vocab_behavior, spm_space_prefix_can_be_turned_off) {
    infer_gguf_writer *w = spm_writer(0);
    wbool(w, "tokenizer.ggml.add_space_prefix", 0);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    expect_ids(v, "ab", 2, 0, 0, IDS(SPM_AB));
    expect_ids(v, " a", 2, 0, 0, IDS(SPM_SPA));
    vocab_free(v);
}

Test(vocab_behavior, special_tokens_split_out_of_the_text) {
    infer_vocab *v = spm_vocab();
    /* user-defined: split out even without parse_special */
    expect_ids(v, "x<|u|>x", 7, 0, 0, IDS(SPM_SP, SPM_X, SPM_U, SPM_SP, SPM_X));
    /* control: only with parse_special */
    expect_ids(v, "x</s>", 5, 0, 1, IDS(SPM_SP, SPM_X, 2));
    expect_ids(v, "</s></s>", 8, 0, 1, IDS(2, 2));
    int32_t ids[64];
    size_t n;
    cr_assert_eq(vocab_tokenize(v, "x</s>", 5, 0, 0, ids, 64, &n, NULL), INFER_OK);
    for (size_t i = 0; i < n; i++) cr_assert_neq(ids[i], 2);
    /* unknown-type tokens too */
    expect_ids(v, "<unk>", 5, 0, 1, IDS(0));
    vocab_free(v);
}

Test(vocab_behavior, longer_special_tokens_are_split_first) {
    const char *t[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "x", "ab", "abc", "bca"};
    int32_t types[] = {2, 3, 3, 1, 1, 4, 4, 4};
    infer_vocab *v = llama_vocab_of(t, NULL, types, 8);
    /* llama.cpp takes the longest texts first over the whole string, so
     * "abca" splits as abc + "a"... and ties go by id: abc before bca */
    expect_ids(v, "abcab", 5, 0, 0, IDS(6, 5));
    /* 'b' after a special gets the space prefix; it has no token and no
     * byte token, so <unk> */
    expect_ids(v, "xbcab", 5, 0, 0, IDS(3, 4, 7, 3, 0));
    vocab_free(v);
}

Test(vocab_behavior, phi3_strips_spaces_after_special_tokens) {
    infer_gguf_writer *w = spm_writer(0);
    wstr(w, "general.name", "Phi3 mini");
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    /* RSTRIP on user-defined tokens: the spaces after <|u|> go */
    expect_ids(v, "<|u|>   x", 9, 0, 0, IDS(SPM_U, SPM_SP, SPM_X));
    vocab_free(v);
    v = spm_vocab();
    expect_ids(v, "<|u|> x", 7, 0, 0, IDS(SPM_U, SPM_SP, SPM_SP, SPM_X));
    vocab_free(v);
}

Test(vocab_behavior, bpe_merges_by_rank) {
    infer_vocab *v = bpe_vocab("gpt-2");
    /* " abc": a+b (rank 0) first, then ab+c (rank 2); Ġ+a (rank 1) is stale */
    expect_ids(v, " abc", 4, 0, 0, IDS(' ', BPE_ABC));
    expect_ids(v, "abc", 3, 0, 0, IDS(BPE_ABC));
    expect_ids(v, " a", 2, 0, 0, IDS(BPE_GA));
    expect_ids(v, "a b", 3, 0, 0, IDS('a', ' ', 'b'));
    /* every byte has a token */
    expect_ids(v, "\x01\x7f", 2, 0, 0, IDS(1, 0x7f));
    /* an invalid byte is U+FFFD (EF BF BD), as llama.cpp */
    expect_ids(v, "\xff", 1, 0, 0, IDS(0xef, 0xbf, 0xbd));
    /* gpt2 vocabularies add no BOS by default */
    cr_assert(!vocab_add_bos(v));
    expect_ids(v, "a", 1, 1, 0, IDS('a'));
    expect_ids(v, "a<|endoftext|>", 14, 0, 1, IDS('a', BPE_EOT));
    char piece[8];
    size_t len;
    cr_assert_eq(vocab_token_to_piece(v, ' ', 0, piece, sizeof piece, &len), INFER_OK);
    cr_assert(len == 1 && piece[0] == ' ');
    cr_assert_eq(vocab_token_to_piece(v, BPE_GABC, 0, piece, sizeof piece, &len), INFER_OK);
    cr_assert(len == 4 && memcmp(piece, " abc", 4) == 0);
    cr_assert(vocab_is_eog(v, BPE_EOT));
    vocab_free(v);
}

Test(vocab_behavior, llama3_pre_tokenizer_ignores_merges_for_whole_words) {
    infer_vocab *v = bpe_vocab("llama-bpe");
    expect_ids(v, " abc", 4, 0, 0, IDS(BPE_GABC)); /* the word is a token */
    cr_assert(vocab_add_bos(v));
    expect_ids(v, "abc", 3, 1, 0, IDS(BPE_EOT, BPE_ABC));
    vocab_free(v);
}

/* A gpt2 vocabulary of these n tokens and the one merge "a a". */
static infer_vocab *gpt2_vocab_of(const char *const *tokens, size_t n) {
    const char *m[] = {"a a"};
    infer_gguf_writer *w = wnew();
    wstr(w, "tokenizer.ggml.model", "gpt2");
    wstr(w, "tokenizer.ggml.pre", "gpt-2");
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, n), INFER_OK);
    cr_assert_eq(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m, NULL, 1), INFER_OK);
    infer_vocab *v;
    cr_assert_eq(open_vocab(w, &v, NULL), INFER_OK);
    return v;
}

/* One code point outside the map renders as llama.cpp's does; after it,
 * the token's text is not repeated for each further one (llama.cpp's
 * rendering grows with the square of the token: a bounded piece here). */
Test(vocab_behavior, bpe_pieces_outside_the_byte_map_render_as_llama_cpp_does) {
    const char *t[] = {"a", "\xe4\xb8\xad", "\xff", "\xe4\xb8\xad\xe4\xb8\xad"};
    infer_vocab *v = gpt2_vocab_of(t, 4);
    char piece[64];
    size_t len;
    cr_assert_eq(vocab_token_to_piece(v, 1, 0, piece, sizeof piece, &len), INFER_OK);
    const char want[] = "[UNK_BYTE_0xe4b8ad\xe4\xb8\xad]";
    cr_assert(len == sizeof want - 1 && memcmp(piece, want, len) == 0, "'%.*s'", (int)len, piece);
    cr_assert_eq(vocab_token_to_piece(v, 2, 0, piece, sizeof piece, &len), INFER_OK);
    const char want2[] = "[UNK_BYTE_0xefbfbd\xff]";
    cr_assert(len == sizeof want2 - 1 && memcmp(piece, want2, len) == 0, "'%.*s'", (int)len, piece);
    cr_assert_eq(vocab_token_to_piece(v, 3, 0, piece, sizeof piece, &len), INFER_OK);
    const char want3[] = "[UNK_BYTE_0xe4b8ad\xe4\xb8\xad\xe4\xb8\xad][UNK_BYTE_0xe4b8ad]";
    cr_assert(len == sizeof want3 - 1 && memcmp(piece, want3, len) == 0, "'%.*s'", (int)len, piece);
    /* text with no tokens at all yields nothing, not garbage */
    expect_ids(v, "zz", 2, 0, 0, IDS(-1));
    vocab_free(v);

    /* A 64 KB token of such code points, and one of bytes that are not
     * UTF-8 at all: pieces within 20 x their length. */
    enum { REP = 21845 };
    char *big = malloc(3 * REP + 1);
    cr_assert_not_null(big);
    for (int i = 0; i < REP; i++) memcpy(big + 3 * i, "\xe4\xb8\xad", 3);
    big[3 * REP] = '\0';
    const char *t2[] = {"a", big};
    v = gpt2_vocab_of(t2, 2);
    cr_assert_eq(vocab_token_to_piece(v, 1, 0, NULL, 0, &len), INFER_EINVAL); /* too small: the size it needs */
    cr_assert_lt(len, (size_t)8 * 3 * REP + 16, "a piece of %zu bytes from a %d-byte token", len, 3 * REP);
    vocab_free(v);
    memset(big, 0xff, 3 * REP);
    v = gpt2_vocab_of(t2, 2);
    cr_assert_eq(vocab_token_to_piece(v, 1, 0, NULL, 0, &len), INFER_EINVAL);
    cr_assert_leq(len, (size_t)20 * 3 * REP, "a piece of %zu bytes from a %d-byte token", len, 3 * REP);
    free(big);
    vocab_free(v);
}

/* Thousands of user-defined tokens of one length (a table of their
 * hashes rolled over the text finds the few that occur; the others are
 * never tried): the ones in the text are split out wherever they stand,
 * first window and last included, the rest of the text as before. */
Test(vocab_behavior, many_special_tokens_only_those_in_the_text_split) {
    enum { NU = 3000 };
    static char texts[NU][16];
    const char *t[NU + 5];
    int32_t types[NU + 5];
    const char *head[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "x"};
    const int32_t htypes[] = {2, 3, 3, 1, 1};
    for (int i = 0; i < 5; i++) t[i] = head[i], types[i] = htypes[i];
    for (int i = 0; i < NU; i++) {
        snprintf(texts[i], sizeof texts[i], "t%04d", i);
        t[5 + i] = texts[i];
        types[5 + i] = 4;
    }
    infer_vocab *v = llama_vocab_of(t, NULL, types, NU + 5);
    expect_ids(v, "t0007", 5, 0, 0, IDS(5 + 7));
    expect_ids(v, "t2999xt0000", 11, 0, 0, IDS(5 + 2999, 3, 4, 5 + 0));
    expect_ids(v, "xt1234t12345", 12, 0, 0, IDS(3, 4, 5 + 1234, 5 + 1234, 3, 0));
    expect_ids(v, "t123", 4, 0, 0, IDS(3, 0, 0, 0, 0)); /* a prefix of many, equal to none */
    vocab_free(v);
}
