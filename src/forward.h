/* forward.h - the transformer forward pass, written once against the ops
 * of backend.h, and the activation layout it needs. */
#ifndef INFER_FORWARD_H
#define INFER_FORWARD_H

#include "backend.h"

/* Where each activation lives in the arena (offsets in floats), for a batch
 * of up to n_batch tokens. Shapes per token: */
typedef struct {
    act x;      /* [n_batch][n_embd]       the residual stream */
    act xb;     /* [n_batch][n_embd]       normed input / sublayer output */
    act q;      /* [n_batch][n_head][hd_k] */
    act k;      /* [n_batch][n_head_kv][hd_k] */
    act v;      /* [n_batch][n_head_kv][hd_v] */
    act attn;   /* [n_batch][n_head][hd_v] attention output */
    act gate;   /* [n_batch][n_ff] */
    act up;     /* [n_batch][n_ff] */
    act logits; /* [logit_rows][n_vocab] */
    size_t total;
} fwd_layout;

/* Lay out the arena for n_batch tokens and logit_rows rows of logits
 * (1, or n_batch for all-token logits); INFER_EINVAL if it overflows. */
infer_status fwd_layout_init(const model_hparams *hp, uint32_t n_batch, uint32_t logit_rows, fwd_layout *L);

/* Run n tokens (n <= n_batch, ids in range) at positions pos0.., storing
 * K/V in the cache. Logits go to L->logits: one row per token when
 * all_logits, else one row for the last token. */
infer_status forward(backend *b, const infer_model *m, const fwd_layout *L, const int32_t *ids,
                     int n, uint32_t pos0, int all_logits, infer_error *err);

#endif
