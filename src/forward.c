/*
 * forward.c - the decoder-only transformer of llama, qwen2 and qwen3:
 *
 *   x = embed(tokens)
 *   per layer:  h = rmsnorm(x) * attn_norm
 *               q, k, v = Wq h (+bq), Wk h (+bk), Wv h (+bv)
 *               (qwen3: q, k = per-head rmsnorm * q_norm, k_norm)
 *               q, k = rope(q), rope(k);  cache k, v
 *               x += Wo attention(q, cache)
 *               h = rmsnorm(x) * ffn_norm
 *               x += Wdown (silu(Wgate h) * Wup h)
 *   logits = Wout (rmsnorm(x) * output_norm)
 */
#include "forward.h"

infer_status fwd_layout_init(const model_hparams *hp, uint32_t n_batch, uint32_t logit_rows, fwd_layout *L) {
    const size_t nb = n_batch;
    const size_t sizes[] = {
        hp->n_embd, hp->n_embd,
        (size_t)hp->n_head * hp->n_embd_head_k, (size_t)hp->n_head_kv * hp->n_embd_head_k,
        (size_t)hp->n_head_kv * hp->n_embd_head_v, (size_t)hp->n_head * hp->n_embd_head_v,
        hp->n_ff, hp->n_ff, hp->n_vocab,
    };
    act *slots[] = {&L->x, &L->xb, &L->q, &L->k, &L->v, &L->attn, &L->gate, &L->up, &L->logits};
    size_t off = 0, bytes;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n;
        *slots[i] = off;
        if (ck_mul(sizes[i], slots[i] == &L->logits ? (size_t)logit_rows : nb, &n) || ck_add(off, n, &off) || ck_add(off, (size_t)15, &off)) {
            return INFER_EINVAL;
        }
        off &= ~(size_t)15; /* each slot 64-byte aligned */
    }
    if (ck_mul(off, sizeof(float), &bytes)) return INFER_EINVAL;
    L->total = off;
    return INFER_OK;
}

/* Matmuls of one input: together where the backend can. */
static void matmuls(backend *b, int nw, const weight *const *ws, const weight *const *bs, act x, const act *outs,
                    int n) {
    if (b->ops->matmul_n) {
        b->ops->matmul_n(b, nw, ws, bs, x, outs, n);
        return;
    }
    for (int k = 0; k < nw; k++) b->ops->matmul(b, ws[k], bs ? bs[k] : NULL, x, outs[k], n);
}

/* Tells the backend which weights the matmul after the coming one reads. */
static void ahead(backend *b, int nw, const weight *const *ws) {
    if (b->ops->next_matmul) b->ops->next_matmul(b, nw, ws);
}

infer_status forward(backend *b, const infer_model *m, const fwd_layout *L, const int32_t *ids,
                     int n, uint32_t pos0, int all_logits, infer_error *err) {
    const backend_ops *op = b->ops;
    const model_hparams *hp = &m->hp;
    const size_t E = hp->n_embd;

    op->get_rows(b, &m->tok_embd, ids, n, L->x);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *w = &m->layers[il];

        /* Attention sublayer. */
        op->rms_norm(b, L->x, L->xb, n, &w->attn_norm, hp->rms_eps);
        {
            const weight *ws[3] = {&w->wq, &w->wk, &w->wv}, *bs[3] = {&w->bq, &w->bk, &w->bv};
            const act outs[3] = {L->q, L->k, L->v};
            const weight *wo = &w->wo;
            ahead(b, 1, &wo);
            matmuls(b, 3, ws, bs, L->xb, outs, n);
        }
        if (w->q_norm.data) op->rms_norm(b, L->q, L->q, n * (int)hp->n_head, &w->q_norm, hp->rms_eps);
        if (w->k_norm.data) op->rms_norm(b, L->k, L->k, n * (int)hp->n_head_kv, &w->k_norm, hp->rms_eps);
        op->rope(b, L->q, n, (int)hp->n_head, (int)hp->n_embd_head_k, pos0);
        op->rope(b, L->k, n, (int)hp->n_head_kv, (int)hp->n_embd_head_k, pos0);
        op->kv_store(b, (int)il, L->k, L->v, n, pos0);
        op->attention(b, (int)il, L->q, L->attn, n, pos0);
        {
            const weight *ffn[2] = {&w->w_gate, &w->w_up};
            ahead(b, 2, ffn);
        }
        op->matmul(b, &w->wo, NULL, L->attn, L->xb, n);
        op->add(b, L->x, L->xb, (size_t)n * E);

        /* Feed-forward sublayer (SwiGLU). */
        op->rms_norm(b, L->x, L->xb, n, &w->ffn_norm, hp->rms_eps);
        {
            const weight *ws[2] = {&w->w_gate, &w->w_up};
            const act outs[2] = {L->gate, L->up};
            const weight *down = &w->w_down;
            ahead(b, 1, &down);
            matmuls(b, 2, ws, NULL, L->xb, outs, n);
        }
        op->silu_mul(b, L->gate, L->up, (size_t)n * hp->n_ff);
        if (il + 1 < hp->n_layer) {
            const layer_weights *nx = &m->layers[il + 1];
            const weight *qkv[3] = {&nx->wq, &nx->wk, &nx->wv};
            ahead(b, 3, qkv);
        } else {
            const weight *out = &m->output;
            ahead(b, 1, &out);
        }
        op->matmul(b, &w->w_down, NULL, L->gate, L->xb, n);
        op->add(b, L->x, L->xb, (size_t)n * E);
    }

    /* Output head: every row, or only the last token's. */
    const act last = all_logits ? L->x : L->x + (size_t)(n - 1) * E;
    const int rows = all_logits ? n : 1;
    op->rms_norm(b, last, L->xb, rows, &m->output_norm, hp->rms_eps);
    op->matmul(b, &m->output, NULL, L->xb, L->logits, rows);
    return op->sync(b, err);
}
