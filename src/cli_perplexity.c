/*
 * cli_perplexity.c - `infer MODEL --perplexity FILE [-c N]`, llama.cpp's
 * method: tokenize the whole text (BOS first), cut it into chunks of n_ctx
 * tokens, give each chunk's first position BOS, decode it from an empty
 * cache, and score only the second half of each chunk (every token there
 * has at least n_ctx/2 tokens of context). Prints the running estimate per
 * chunk and the final PPL with its standard error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* -log softmax(logits)[tok], in double as llama.cpp does. */
static double nll_of(const float *logits, int32_t n_vocab, int32_t tok) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - (double)mx);
    return log(sum) - (double)(logits[tok] - mx);
}

int cli_perplexity(const cli_options *o, infer_model *m, const char *text, size_t len) {
    infer_error err = {0};
    infer_context *c = NULL;
    int32_t *ids = NULL, *chunk = NULL;
    size_t n = 0;
    int rc = CLI_EXIT_RUNTIME;
    /* As llama.cpp's -f: one trailing newline is not part of the text. */
    if (len > 0 && text[len - 1] == '\n') len--;

    infer_status s = infer_tokenize(m, text, len, INFER_TOKENIZE_ADD_SPECIAL, NULL, 0, &n, &err);
    if ((s != INFER_OK && s != INFER_EINVAL) || !(ids = malloc((n ? n : 1) * sizeof *ids)) ||
        infer_tokenize(m, text, len, INFER_TOKENIZE_ADD_SPECIAL, ids, n, &n, &err) != INFER_OK) {
        fprintf(stderr, "infer: tokenize: %s\n", ids ? err.message : "out of memory");
        goto out;
    }
    infer_context_params cp = o->cp;
    cp.all_logits = 1;
    if (cp.n_ctx == 0) cp.n_ctx = infer_model_n_ctx_train(m) < 512 ? infer_model_n_ctx_train(m) : 512;
    const size_t n_ctx = cp.n_ctx;
    if (n_ctx < 3) { /* it scores positions n_ctx / 2 + 1 .. n_ctx - 1 of each chunk: none below 3 */
        fprintf(stderr, "infer: perplexity: a context of %zu scores no token; it needs at least 3\n", n_ctx);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (n < 2 * n_ctx) {
        fprintf(stderr, "infer: perplexity: the text has %zu tokens; a context of %zu needs at least %zu\n", n, n_ctx,
                2 * n_ctx);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (infer_context_new(m, &cp, &c, &err) != INFER_OK) {
        fprintf(stderr, "infer: context: %s\n", err.message);
        goto out;
    }
    cli_note_backend(o, c);
    chunk = malloc(n_ctx * sizeof *chunk);
    if (!chunk) goto out;

    const size_t n_chunks = n / n_ctx, first = n_ctx / 2, n_batch = cp.n_batch ? cp.n_batch : 512;
    const int32_t n_vocab = infer_model_n_vocab(m), bos = infer_token_bos(m);
    double nll = 0.0, nll2 = 0.0, t0 = cli_now_ms();
    size_t count = 0;
    fprintf(stderr, "infer: perplexity: %zu tokens, %zu chunks of %zu, scoring positions %zu..%zu of each\n", n,
            n_chunks, n_ctx, first + 1, n_ctx - 1);
    for (size_t ci = 0; ci < n_chunks; ci++) {
        memcpy(chunk, ids + ci * n_ctx, n_ctx * sizeof *chunk);
        if (bos >= 0) chunk[0] = bos;
        if (infer_context_reset(c) != INFER_OK) goto out;
        /* Decode in batches with every row's logits; score the rows past first. */
        for (size_t b0 = 0; b0 < n_ctx; b0 += n_batch) {
            size_t nb = n_ctx - b0 < n_batch ? n_ctx - b0 : n_batch;
            if (infer_decode(c, chunk + b0, nb, INFER_DECODE_ALL_LOGITS, &err) != INFER_OK) {
                fprintf(stderr, "infer: decode: %s\n", err.message);
                goto out;
            }
            for (size_t j = b0; j < b0 + nb; j++) {
                if (j < first || j + 1 >= n_ctx) continue;
                double v = nll_of(infer_logits_ith(c, j - b0), n_vocab, ids[ci * n_ctx + j + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
        }
        printf("[%zu]%.4f,", ci + 1, exp(nll / (double)count));
        fflush(stdout);
    }
    printf("\n");
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    double ppl = exp(mean), se = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * ppl : 0.0;
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, se);
    fprintf(stderr, "infer: perplexity: %zu predictions in %.2f s\n", count, (cli_now_ms() - t0) / 1e3);
    rc = CLI_EXIT_OK;
out:
    free(ids);
    free(chunk);
    infer_context_free(c);
    return rc;
}
