/*
 * backend.h - the op interface the forward pass is written against.
 *
 * A backend owns the context's activation arena and KV cache. Activations
 * are addressed by offset (in floats) into the arena, so the same forward
 * pass drives the CPU (offsets are pointers into host memory) and a GPU
 * (offsets into one device buffer, ops recorded into a command buffer).
 * Weights are the model's `weight` views.
 *
 * Shapes: a "row" is one token's vector; n is the number of tokens in the
 * batch, which occupy positions pos0 .. pos0+n-1.
 */
#ifndef INFER_BACKEND_H
#define INFER_BACKEND_H

#include "model.h"

typedef size_t act; /* offset in floats into the arena */

typedef struct backend backend;

typedef struct {
    /* out[t] = row ids[t] of w, as floats. ids are in range (checked by decode). */
    void (*get_rows)(backend *b, const weight *w, const int32_t *ids, int n, act out);
    /* out[r] = x[r] / rms(x[r]) * w, for n_rows rows of w->cols values. */
    void (*rms_norm)(backend *b, act x, act out, int n_rows, const weight *w, float eps);
    /* out[t] = W x[t] (+ bias when bias->data), for t < n. */
    void (*matmul)(backend *b, const weight *w, const weight *bias, act x, act out, int n);
    /* Optional (NULL: forward calls matmul nw times): nw (1..3) matmuls of
     * the same input x, outs[k] = ws[k] x (+ biases[k] when it has data;
     * biases may be NULL), as the backend sees fit to run them together. */
    void (*matmul_n)(backend *b, int nw, const weight *const *ws, const weight *const *biases, act x, const act *outs,
                     int n);
    /* Optional hint (NULL: none): the next matmul or matmul_n call is
     * followed, after ops between them, by one of the nw (1..3) weights ws;
     * the backend may read the latter ahead while it waits. */
    void (*next_matmul)(backend *b, int nw, const weight *const *ws);
    /* Rotate the first n_rot dims of each of n_heads heads of size head_dim
     * in each of n rows, token t at position pos0 + t. */
    void (*rope)(backend *b, act x, int n, int n_heads, int head_dim, uint32_t pos0);
    /* Write n rows of k and v into the layer's cache at pos0... */
    void (*kv_store)(backend *b, int layer, act k, act v, int n, uint32_t pos0);
    /* Causal attention of n query rows (positions pos0...) over cache
     * positions 0 .. pos0+t; out[t] = [n_head][hd_v]. */
    void (*attention)(backend *b, int layer, act q, act out, int n, uint32_t pos0);
    /* gate[i] = silu(gate[i]) * up[i], i < count. */
    void (*silu_mul)(backend *b, act gate, act up, size_t count);
    /* x[i] += y[i], i < count. */
    void (*add)(backend *b, act x, act y, size_t count);
    /* Finish the pass (GPU: submit and wait); INFER_EBACKEND on failure. */
    infer_status (*sync)(backend *b, infer_error *err);
    /* Host pointer to count floats at off after sync (CPU: the arena). */
    const float *(*host)(backend *b, act off, size_t count);
    /* Cache maintenance: move cached positions [src, src+n) to dst and
     * re-rotate their keys by (dst - src) positions; done when it returns
     * (GPU: submitted and waited for). On failure positions below dst are
     * as they were, the rest undefined. The arena's contents are undefined
     * after it (a GPU stages rows there). */
    infer_status (*kv_move)(backend *b, uint32_t dst, uint32_t src, uint32_t n, infer_error *err);
    void (*free)(backend *b);
    /* Optional (NULL: none), on the calling thread: enter before each
     * forward pass of a decode call (n_tokens in it), leave once after the
     * last. The CPU backend moves the caller to its thread 0's CPUs for the
     * call and picks the pass's thread count. */
    void (*enter)(backend *b, size_t n_tokens);
    void (*leave)(backend *b);
} backend_ops;

struct backend {
    const backend_ops *ops;
};

/* What a backend needs to size itself. */
typedef struct {
    const infer_model *model;
    uint32_t n_ctx, n_batch;
    uint32_t kv_type;     /* F16 or F32 */
    size_t arena_floats;  /* activations the forward pass lays out */
    int n_threads, n_threads_batch; /* threads for one-token passes, for larger ones (<= 0: n_threads);
                                       the CPU backend clamps both to its pool */
    const uint64_t *cpu_mask; /* the CPU backend's threads (infer_context_params) */
    int cpu_strict, poll;
} backend_config;

infer_status backend_cpu_new(const backend_config *cfg, backend **out, infer_error *err);
/* Vulkan (backend_vulkan*.c): device index, or -1 for the best one;
 * gpu_only refuses CPU-type devices (automatic offload). */
infer_status backend_vulkan_new(const backend_config *cfg, int device, int gpu_only, backend **out, infer_error *err);

#endif
