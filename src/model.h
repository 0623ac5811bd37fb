/*
 * model.h - a loaded model: validated hyperparameters and weights bound by
 * role, with their exact shapes and types. Immutable after load and
 * reference-counted: contexts hold a reference, so the last of
 * infer_model_release / infer_context_free frees it.
 */
#ifndef INFER_MODEL_H
#define INFER_MODEL_H

#include <stdatomic.h>

#include "dispatch.h"
#include "infer.h"
#include "pool.h"
#include "util.h"
#include "vocab.h"

#define MODEL_MAX_LAYERS 512
#define MODEL_MAX_CTX (1u << 24)

typedef enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3 } model_arch;

typedef enum {
    ROPE_NORM = 0, /* pairs (x[2i], x[2i+1]): llama */
    ROPE_NEOX = 2, /* pairs (x[i], x[i + n_rot/2]): qwen2, qwen3 */
} rope_mode;

/* A weight: a view of a tensor in the mapped file. A 2-D weight of shape
 * [cols, rows] (ggml order: ne[0] = cols = the input size) maps an input of
 * `cols` values to `rows` outputs. */
typedef struct model_pack model_pack;

typedef struct {
    const void *data;     /* NULL: absent (optional weights only) */
    uint32_t type;        /* infer_type */
    int64_t cols, rows;   /* ne[0], ne[1] (rows 1 for 1-D) */
    size_t row_bytes;     /* bytes of one row */
    int32_t index;        /* tensor index in the file (backends key uploads on it) */
} weight;

typedef struct {
    weight attn_norm;          /* [n_embd] */
    weight wq, wk, wv;         /* [n_embd] -> [n_head*hd_k], [n_head_kv*hd_k], [n_head_kv*hd_v] */
    weight bq, bk, bv;         /* qwen2 biases, 1-D */
    weight q_norm, k_norm;     /* qwen3 per-head RMSNorm weights [hd_k] */
    weight wo;                 /* [n_head*hd_v] -> [n_embd] */
    weight ffn_norm;           /* [n_embd] */
    weight w_gate, w_up;       /* [n_embd] -> [n_ff] */
    weight w_down;             /* [n_ff] -> [n_embd] */
} layer_weights;

typedef struct {
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head, n_head_kv;
    uint32_t n_embd_head_k, n_embd_head_v; /* head sizes */
    uint32_t n_rot;                        /* rotated dimensions per head */
    uint32_t n_ff;
    float rms_eps;
    float rope_freq_base, rope_freq_scale;
    rope_mode rope_type;
} model_hparams;

struct infer_model {
    _Atomic int refs; /* caller's reference + one per context */
    model_arch arch;
    char arch_name[16];
    char desc[96];
    model_hparams hp;
    infer_gguf *gguf; /* owns the mapped file the weights point into */
    infer_vocab *vocab;
    int vocab_only;

    weight tok_embd;    /* [n_embd] x n_vocab rows */
    weight output_norm; /* [n_embd] */
    weight output;      /* [n_embd] -> [n_vocab]; tok_embd when tied */
    float *rope_freq_factors; /* [n_rot/2] divisors of theta, or NULL */
    void *vectors;            /* the 1-D weights' copies (mapped files), or NULL: see model.c */
    layer_weights *layers;    /* [n_layer] */
    uint64_t n_params, n_bytes;
    model_pack *pack; /* the CPU kernels' repacked weights, made on first use (model_pack.c) */
};

void model_retain(infer_model *m);

/* The matmul weights, in forward order: each layer's wq, wk, wv, wo,
 * w_gate, w_up, w_down, then the output (model_n_matrices in all). */
#define LAYER_MATRICES 7
static inline size_t model_n_matrices(const infer_model *m) { return (size_t)m->hp.n_layer * LAYER_MATRICES + 1; }
static inline const weight *model_matrix(const infer_model *m, size_t i) {
    if (i >= (size_t)m->hp.n_layer * LAYER_MATRICES) return &m->output;
    const layer_weights *L = &m->layers[i / LAYER_MATRICES];
    switch (i % LAYER_MATRICES) {
    case 0: return &L->wq;
    case 1: return &L->wk;
    case 2: return &L->wv;
    case 3: return &L->wo;
    case 4: return &L->w_gate;
    case 5: return &L->w_up;
    default: return &L->w_down;
    }
}

/* model_pack.c: the repacked form of the model's matmul weights for the
 * kernel level kt, made by the first caller on pl's threads (NULL: the
 * calling thread alone; the same bytes either way; thread-safe): at[i] is
 * tensor i's repacked rows (kernels/dispatch.h), or, where plain[i] is 1,
 * a copy of its rows as in the file (a float matrix of a mapped model, in
 * huge pages), or NULL where the file's rows are read; at NULL when
 * nothing is repacked (level without repacking, kt NULL for a caller that
 * reads the file's layout, model in the caller's memory, INFER_REPACK=0:
 * then, as model_file_layout, rows an earlier caller dropped are read
 * back). Valid while m lives. The rows it replaces may be dropped from memory: whoever reads
 * the file's layout of a model's matrices otherwise (a Vulkan upload)
 * calls model_file_layout first, which reads them back where they would
 * read as zeros (a model read into memory), and keeps them from then on. */
typedef struct {
    const void *const *at; /* [n_tensors] */
    const uint8_t *plain;  /* [n_tensors] */
} model_pack_view;
infer_status model_packed(const infer_model *m, const kernel_table *kt, pool *pl, model_pack_view *out,
                          infer_error *err);
infer_status model_file_layout(const infer_model *m, infer_error *err);
infer_status model_pack_new(model_pack **out, infer_error *err);
void model_pack_free(model_pack *p);

/* The bytes one activation row of n values takes in vec_dot_type(t). */
infer_status model_act_row_bytes(uint32_t weight_type, int64_t n, size_t *out);

/* sampler.c: the vocabulary size s was made for (the logits it reads). */
int32_t sampler_n_vocab(const infer_sampler *s);

#endif
