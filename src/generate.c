/*
 * generate.c - the token loop: decode the prompt as one batch, then sample,
 * stream the piece, decode the new token, until a stop condition.
 * Allocates its buffers before the loop, nothing inside it.
 */
#include <string.h>
#include <time.h>

#include "context.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct {
    char *piece, *text;
    size_t cap; /* piece holds cap bytes, text cap + 8 */
} piece_bufs;

/* The token's bytes into b->piece; grows the buffers only for a token
 * longer than any seen so far (vocabularies' pieces are short). */
static infer_status token_piece(const infer_model *m, int32_t id, piece_bufs *b, size_t *len, infer_error *err) {
    infer_status s = vocab_token_to_piece(m->vocab, id, 0, b->piece, b->cap, len);
    if (s == INFER_OK) return s;
    if (*len <= b->cap) return set_error(err, s, "token %d has no text", id);
    size_t cap = *len, tcap;
    if (ck_add(cap, (size_t)8, &tcap)) return set_error(err, INFER_ENOMEM, "token too long");
    char *p = infer_realloc(b->piece, cap), *t;
    if (!p) return set_error(err, INFER_ENOMEM, "out of memory");
    b->piece = p;
    t = infer_realloc(b->text, tcap);
    if (!t) return set_error(err, INFER_ENOMEM, "out of memory");
    b->text = t;
    b->cap = cap;
    return vocab_token_to_piece(m->vocab, id, 0, b->piece, b->cap, len);
}

infer_status infer_generate(infer_context *c, infer_sampler *smp, const int32_t *prompt, size_t n_prompt,
                            const infer_generate_params *params, infer_piece_cb cb, void *user,
                            infer_generate_stats *stats, infer_error *err) {
    infer_generate_params gp = params ? *params : (infer_generate_params){.n_predict = 128};
    infer_generate_stats st = {0};
    piece_bufs pb = {0};
    vocab_utf8_stream us = {0};
    infer_status s;
    size_t len, out;
    int stop = 0;

    if (!smp || (!prompt && n_prompt)) return set_error(err, INFER_EINVAL, "infer_generate: NULL argument");
    if ((s = context_enter(c, err)) != INFER_OK) return s;
    const infer_model *m = c->model;
    if (sampler_n_vocab(smp) != (int32_t)m->hp.n_vocab) {
        /* It would read its own vocabulary's count of logits from this row. */
        context_leave(c);
        return set_error(err, INFER_EINVAL, "infer_generate: the sampler was made for a model of %d tokens, the context's has %u",
                         (int)sampler_n_vocab(smp), m->hp.n_vocab);
    }
    pb.cap = 1024;
    pb.piece = infer_malloc(pb.cap);
    pb.text = infer_malloc(pb.cap + 8);
    if (!pb.piece || !pb.text) {
        s = set_error(err, INFER_ENOMEM, "out of memory");
        goto done;
    }

    double t0 = now_ms();
    if (n_prompt) {
        if (n_prompt > c->n_ctx - c->n_past) {
            s = set_error(err, INFER_ECTX_FULL, "the prompt (%zu tokens) does not fit in the context (%u of %u free)",
                          n_prompt, c->n_ctx - c->n_past, c->n_ctx);
            goto done;
        }
        if ((s = context_decode_locked(c, prompt, n_prompt, 0, err)) != INFER_OK) goto done;
        /* Into the sampler's history only once decoded: a refused prompt
         * leaves the sampler as it leaves the cache. */
        for (size_t i = 0; i < n_prompt; i++) infer_sampler_accept(smp, prompt[i]);
    } else if (c->n_logit_rows == 0) {
        s = set_error(err, INFER_EINVAL, "nothing to continue from: empty prompt and no previous decode");
        goto done;
    }
    st.n_prompt = n_prompt;
    st.prompt_ms = now_ms() - t0;
    st.stopped_by = INFER_STOP_LENGTH;

    double t1 = now_ms();
    while (st.n_generated < gp.n_predict && !stop) {
        const float *logits = c->be->ops->host(c->be, c->layout.logits + (c->n_logit_rows - 1) * m->hp.n_vocab,
                                               m->hp.n_vocab);
        int32_t tok = infer_sampler_sample(smp, logits);
        infer_sampler_accept(smp, tok);
        st.n_generated++;
        if (vocab_is_eog(m->vocab, tok)) {
            st.stopped_by = INFER_STOP_EOG;
            break;
        }
        if ((s = token_piece(m, tok, &pb, &len, err)) != INFER_OK) goto done;
        out = vocab_utf8_stream_push(&us, pb.piece, len, pb.text, pb.cap + 8);
        if (cb && out && cb(user, tok, pb.text, out)) {
            st.stopped_by = INFER_STOP_CALLBACK;
            stop = 1;
        }
        if (stop || st.n_generated >= gp.n_predict) break;
        if (c->n_past >= c->n_ctx) {
            if (!gp.context_shift || gp.n_keep >= c->n_past) {
                st.stopped_by = INFER_STOP_CTX_FULL;
                break;
            }
            uint32_t n_discard = (c->n_past - gp.n_keep) / 2;
            if (n_discard == 0) {
                st.stopped_by = INFER_STOP_CTX_FULL;
                break;
            }
            if ((s = context_shift_locked(c, gp.n_keep, n_discard, err)) != INFER_OK)
                goto done; /* err says why; the cache keeps its first n_keep tokens */
        }
        if ((s = context_decode_locked(c, &tok, 1, 0, err)) != INFER_OK) goto done;
    }
    out = vocab_utf8_stream_flush(&us, pb.text, pb.cap + 8);
    if (cb && out) cb(user, -1, pb.text, out);
    st.gen_ms = now_ms() - t1;
    s = INFER_OK;
done:
    infer_free(pb.piece);
    infer_free(pb.text);
    context_leave(c);
    if (stats) *stats = st;
    return s;
}
