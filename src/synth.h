/*
 * synth.h - synthetic llama-family models: random weights of given shapes in
 * any type the reference quantizers produce, with a small SentencePiece-
 * style vocabulary, written with the project's GGUF writer. Tests build
 * valid and hostile models with it; tools/ builds benchmark-sized ones.
 */
#ifndef INFER_SYNTH_H
#define INFER_SYNTH_H

#include "util.h"

typedef struct {
    const char *arch;      /* "llama" (default), "qwen2", "qwen3" */
    uint32_t n_vocab;      /* >= 259: 3 specials + 256 byte tokens + words */
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    uint32_t head_dim;     /* 0: n_embd / n_head */
    uint32_t wtype;        /* type of the 2-D weights (infer_type) */
    uint64_t seed;
    int tied;              /* 1: no output.weight */
    float std;             /* weight standard deviation (synth_default_params: 0.02) */

    /* Test hooks, to build files the loader must reject: */
    const char *omit_key;      /* do not write this metadata key */
    const char *omit_tensor;   /* do not write this tensor */
    const char *extra_tensor;  /* also write this (unexpected) 1-D tensor */
    const char *set_key;       /* write this key with set_type/set_value instead */
    uint32_t set_type;         /* INFER_GGUF_UINT32, STRING, ... */
    const void *set_value;     /* the value (a char * for STRING) */
    size_t set_len;            /* STRING length (0: strlen) */
    const char *retype_tensor; /* write this tensor as type retype (zero bytes) */
    uint32_t retype;
    const char *reshape_tensor; /* write this tensor with ne[1] + 1 rows */
    uint32_t bad_values;       /* 1: NaN, 2: +Inf in every weight's first values */
} synth_params;

/* Defaults: llama, 259+... vocab 300, n_embd 32, 2 layers, 4 heads, 2 KV
 * heads, n_ff 64, ctx 128, F32, seed 1. */
synth_params synth_default_params(void);

/* The model's GGUF bytes (malloc'd; free()). */
infer_status synth_model(const synth_params *p, void **out, size_t *size, infer_error *err);
/* Same, written to path. */
infer_status synth_model_file(const synth_params *p, const char *path, infer_error *err);

#endif
