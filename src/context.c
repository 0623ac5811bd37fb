/*
 * context.c - contexts: creation (all memory sized here, once), decode,
 * logits, cache reset and shift. Thread rule (DESIGN.md 7): one thread at a
 * time per context; a concurrent call gets INFER_EBUSY, never corrupt state.
 */
#include "context.h"

#include <string.h>

#include "dispatch.h"
#include "pool.h"
#include "ref/quants.h"

infer_context_params infer_context_default_params(void) {
    infer_context_params p = {.n_ctx = 0, .n_batch = 0, .n_threads = 0, .kv_type = INFER_TYPE_F16,
                              .backend = INFER_BACKEND_CPU, .device = -1, .poll = 50};
    return p;
}

/* The contexts this thread is inside, innermost first (each entry links
 * to the one before): a piece callback of infer_generate may read the
 * logits of the context it runs in. */
static _Thread_local infer_context *tl_inside;

infer_status context_enter(infer_context *c, infer_error *err) {
    if (!c) return set_error(err, INFER_EINVAL, "NULL context");
    if (atomic_flag_test_and_set_explicit(&c->busy, memory_order_acquire)) {
        return set_error(err, INFER_EBUSY, "context is in use by another thread");
    }
    c->outer = tl_inside;
    tl_inside = c;
    return INFER_OK;
}

void context_leave(infer_context *c) {
    tl_inside = c->outer;
    atomic_flag_clear_explicit(&c->busy, memory_order_release);
}

static int inside_on_this_thread(const infer_context *c) {
    for (const infer_context *x = tl_inside; x; x = x->outer)
        if (x == c) return 1;
    return 0;
}

infer_status infer_context_new(infer_model *m, const infer_context_params *params, infer_context **out,
                               infer_error *err) {
    infer_context_params p = params ? *params : infer_context_default_params();
    if (!m || !out) return set_error(err, INFER_EINVAL, "infer_context_new: NULL argument");
    *out = NULL;
    if (m->vocab_only) return set_error(err, INFER_EINVAL, "model was loaded vocab_only: no weights to run");
    if (p.kv_type != INFER_TYPE_F16 && p.kv_type != INFER_TYPE_F32) {
        return set_error(err, INFER_EINVAL, "kv_type must be F16 or F32");
    }
    if (p.poll < 0 || p.poll > 100) return set_error(err, INFER_EINVAL, "poll %d is outside 0..100", p.poll);
    if (p.cpu_strict != 0 && p.cpu_strict != 1)
        return set_error(err, INFER_EINVAL, "cpu_strict must be 0 or 1, not %d", p.cpu_strict);
    uint32_t n_ctx = p.n_ctx ? p.n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    if (n_ctx > MODEL_MAX_CTX) return set_error(err, INFER_EINVAL, "n_ctx %u is larger than %u", n_ctx, MODEL_MAX_CTX);
    uint32_t n_batch = p.n_batch ? p.n_batch : (n_ctx < 512 ? n_ctx : 512);
    if (n_batch > n_ctx) n_batch = n_ctx;
    if ((uint64_t)n_batch * m->hp.n_head > INT32_MAX) /* the ops count a batch's heads in an int */
        return set_error(err, INFER_EINVAL, "n_batch %u x %u heads is too large: lower n_batch", n_batch, m->hp.n_head);

    infer_context *c = infer_calloc(1, sizeof *c);
    if (!c) return set_error(err, INFER_ENOMEM, "out of memory");
    atomic_flag_clear(&c->busy);
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_type = p.kv_type;
    c->all_logits = p.all_logits != 0;
    if (fwd_layout_init(&m->hp, n_batch, c->all_logits ? n_batch : 1, &c->layout) != INFER_OK) {
        infer_free(c);
        return set_error(err, INFER_EINVAL, "activation arena size overflows: lower n_batch");
    }
    int n_threads = p.n_threads;
    if (n_threads <= 0) n_threads = pool_mask_count(p.cpu_mask) ? cpus_in_mask(p.cpu_mask) : infer_default_threads();
    backend_config cfg = {.model = m, .n_ctx = n_ctx, .n_batch = n_batch, .kv_type = p.kv_type,
                          .arena_floats = c->layout.total, .n_threads = n_threads,
                          .n_threads_batch = p.n_threads_batch, .cpu_mask = p.cpu_mask,
                          .cpu_strict = p.cpu_strict, .poll = p.poll};
    /* Vulkan when asked for and usable; otherwise the CPU, with the reason
     * kept for infer_context_backend_note (the library prints nothing). */
    infer_status s = INFER_EINVAL;
    c->backend = INFER_BACKEND_CPU;
    if (p.backend == INFER_BACKEND_VULKAN || p.backend == INFER_BACKEND_AUTO) {
        infer_error verr = {0};
        s = backend_vulkan_new(&cfg, p.device, p.backend == INFER_BACKEND_AUTO, &c->be, &verr);
        if (s == INFER_OK) c->backend = INFER_BACKEND_VULKAN;
        else memcpy(c->backend_note, verr.message, sizeof c->backend_note);
    } else if (p.backend != INFER_BACKEND_CPU) {
        infer_free(c);
        return set_error(err, INFER_EINVAL, "backend %d is not INFER_BACKEND_CPU, _VULKAN or _AUTO", p.backend);
    }
    if (c->backend == INFER_BACKEND_CPU) s = backend_cpu_new(&cfg, &c->be, err);
    if (s != INFER_OK) {
        infer_free(c);
        return s;
    }
    model_retain(m);
    c->model = m;
    *out = c;
    return INFER_OK;
}

void infer_context_free(infer_context *c) {
    if (!c) return;
    c->be->ops->free(c->be);
    infer_model_release(c->model);
    infer_free(c);
}

int infer_context_backend(const infer_context *c) { return c ? c->backend : INFER_BACKEND_CPU; }
const char *infer_context_backend_note(const infer_context *c) { return c ? c->backend_note : ""; }

uint32_t infer_context_n_ctx(const infer_context *c) { return c ? c->n_ctx : 0; }
/* Without the busy flag: another thread may read it during a decode (a
 * progress display) and sees the count before or after a chunk. n_ctx is
 * fixed when the context is made. */
uint32_t infer_context_n_past(const infer_context *c) {
    return c ? atomic_load_explicit(&c->n_past, memory_order_relaxed) : 0;
}

infer_status context_decode_locked(infer_context *c, const int32_t *ids, size_t n, unsigned flags,
                                   infer_error *err) {
    const int all = (flags & INFER_DECODE_ALL_LOGITS) != 0;
    if (!ids || n == 0) return set_error(err, INFER_EINVAL, "decode: no tokens");
    if (all && !c->all_logits) {
        return set_error(err, INFER_EINVAL, "decode: all-token logits need a context made with all_logits = 1");
    }
    if (all && n > c->n_batch) {
        return set_error(err, INFER_EINVAL, "decode: %zu tokens with all logits exceed n_batch %u", n, c->n_batch);
    }
    if (n > c->n_ctx - c->n_past) {
        return set_error(err, INFER_ECTX_FULL, "context full: %u of %u tokens used, %zu more do not fit",
                         c->n_past, c->n_ctx, n);
    }
    const int32_t nv = (int32_t)c->model->hp.n_vocab;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= nv) {
            return set_error(err, INFER_EINVAL, "decode: token %zu is id %d, outside the vocabulary (0..%d)", i,
                             ids[i], nv - 1);
        }
    }
    /* The calling thread runs a share of the CPU kernels: their scratch
     * (dispatch.h) is reserved here, where running out can be reported. */
    if (c->backend == INFER_BACKEND_CPU && kernels_scratch_reserve() != 0)
        return set_error(err, INFER_ENOMEM, "decode: out of memory for the kernels' scratch");
    c->n_logit_rows = 0;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < c->n_batch ? n - done : c->n_batch;
        if (c->be->ops->enter) c->be->ops->enter(c->be, chunk);
        infer_status s = forward(c->be, c->model, &c->layout, ids + done, (int)chunk, c->n_past, all, err);
        if (s != INFER_OK) {
            if (c->be->ops->leave) c->be->ops->leave(c->be);
            return s;
        }
        c->n_past += (uint32_t)chunk;
        done += chunk;
        c->n_logit_rows = all ? chunk : 1;
    }
    if (c->be->ops->leave) c->be->ops->leave(c->be);
    return INFER_OK;
}

infer_status infer_decode(infer_context *c, const int32_t *ids, size_t n, unsigned flags, infer_error *err) {
    infer_status s = context_enter(c, err);
    if (s != INFER_OK) return s;
    s = context_decode_locked(c, ids, n, flags, err);
    context_leave(c);
    return s;
}

/* Under the busy flag like every call: reading logits may submit work on
 * a GPU backend (a copy to host memory) and replace the buffer it reads
 * into. The context is never a const object (infer_context_new makes it),
 * so taking the flag through the const pointer is defined. */
static const float *logits_row(const infer_context *cc, int last, size_t i) {
    infer_context *c = (infer_context *)cc;
    if (!c) return NULL;
    const int held = inside_on_this_thread(c); /* a callback of this thread's own call: between its steps */
    if (!held && context_enter(c, NULL) != INFER_OK) return NULL;
    const float *r = NULL;
    if (last && c->n_logit_rows) i = c->n_logit_rows - 1;
    if (i < c->n_logit_rows) {
        const size_t nv = c->model->hp.n_vocab;
        r = c->be->ops->host(c->be, c->layout.logits + i * nv, nv);
    }
    if (!held) context_leave(c);
    return r;
}

const float *infer_logits_ith(const infer_context *c, size_t i) { return logits_row(c, 0, i); }

const float *infer_logits(const infer_context *c) { return logits_row(c, 1, 0); }

infer_status infer_context_reset(infer_context *c) {
    infer_status s = context_enter(c, NULL);
    if (s != INFER_OK) return s;
    c->n_past = 0;
    c->n_logit_rows = 0;
    context_leave(c);
    return INFER_OK;
}

infer_status context_shift_locked(infer_context *c, uint32_t n_keep, uint32_t n_discard, infer_error *err) {
    if (n_keep > c->n_past || n_discard > c->n_past - n_keep) return INFER_EINVAL;
    uint32_t src = n_keep + n_discard, moved = c->n_past - src;
    infer_status s = n_discard && moved ? c->be->ops->kv_move(c->be, n_keep, src, moved, err) : INFER_OK;
    /* A failed move leaves only the first n_keep positions as they were. */
    c->n_past = s == INFER_OK ? c->n_past - n_discard : n_keep;
    c->n_logit_rows = 0;
    return s;
}

infer_status infer_context_shift(infer_context *c, uint32_t n_keep, uint32_t n_discard) {
    infer_status s = context_enter(c, NULL);
    if (s != INFER_OK) return s;
    s = context_shift_locked(c, n_keep, n_discard, NULL);
    context_leave(c);
    return s;
}
