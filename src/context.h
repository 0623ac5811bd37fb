/* context.h - a context: one model reference, a backend (KV cache + arena),
 * and the bookkeeping of what the cache holds. Used by one thread at a
 * time: every public call takes the busy flag with a try-lock. */
#ifndef INFER_CONTEXT_H
#define INFER_CONTEXT_H

#include <stdatomic.h>

#include "forward.h"

struct infer_context {
    infer_model *model;   /* holds a reference */
    backend *be;
    fwd_layout layout;
    atomic_flag busy;
    uint32_t n_ctx, n_batch, kv_type;
    int all_logits;       /* logits reserved for every token of a batch */
    int backend;          /* INFER_BACKEND_CPU or _VULKAN: what runs */
    char backend_note[INFER_ERROR_MSG_MAX]; /* why Vulkan was not used, or "" */
    _Atomic uint32_t n_past; /* tokens in the cache: written under busy, read by
                                infer_context_n_past from any thread */
    size_t n_logit_rows;  /* rows of logits from the last decode (0: none) */
    infer_context *outer; /* while busy: the context this thread was inside before (context_enter) */
};

/* Try-lock for the public entry points; INFER_EBUSY when held. */
infer_status context_enter(infer_context *c, infer_error *err);
void context_leave(infer_context *c);

/* decode without taking the lock (for callers that hold it). */
infer_status context_decode_locked(infer_context *c, const int32_t *ids, size_t n, unsigned flags,
                                   infer_error *err);
infer_status context_shift_locked(infer_context *c, uint32_t n_keep, uint32_t n_discard, infer_error *err);

#endif
