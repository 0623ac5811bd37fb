/*
 * infer.h - the public C API of infer, a GGUF inference engine.
 *
 * Link with libinfer.a (pkg-config: infer). Every call that can fail returns
 * an infer_status and, where it takes one, fills an infer_error with a
 * message that names the offending field.
 */
#ifndef INFER_H
#define INFER_H

#include "infer_gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define INFER_VERSION_MAJOR 0
#define INFER_VERSION_MINOR 1
#define INFER_VERSION_PATCH 0
#define INFER_VERSION_STRING "0.1.0"

/* "0.1.0" */
const char *infer_version(void);

/* The thread count used when none is given (infer_context_params.n_threads
 * = 0, the tools' -t): the online CPUs this process may run on, i.e. its
 * affinity mask (taskset, cpusets), capped by a cgroup v2 CPU quota
 * (cpu.max, e.g. `docker --cpus`) rounded up. At least 1. */
int infer_default_threads(void);

/* ---- models -------------------------------------------------------------- */

typedef struct infer_model infer_model;     /* immutable, reference-counted */
typedef struct infer_context infer_context; /* KV cache + arena, one thread at a time */

typedef struct {
    int use_mmap;   /* 1 (default): map the file; 0: read it into memory */
    int vocab_only; /* 1: load only the tokenizer (works on vocab-only files) */
} infer_model_params;

infer_model_params infer_model_default_params(void);

/* Load a GGUF model. Every hyperparameter and tensor is validated; a bad
 * file gives INFER_EFORMAT / INFER_EUNSUPPORTED with a message naming the
 * key or tensor. *out holds one reference. */
infer_status infer_model_load(const char *path, const infer_model_params *params,
                              infer_model **out, infer_error *err);
/* The same from a GGUF image in memory, which must outlive the model. */
infer_status infer_model_load_memory(const void *data, size_t size, const infer_model_params *params,
                                     infer_model **out, infer_error *err);
/* Another reference (e.g. for a second thread); release each one. */
infer_model *infer_model_retain(infer_model *m);
/* Drop a reference. The model is freed when the last reference and the
 * last context using it are gone: releasing it under a live context is
 * safe. NULL is fine. */
void infer_model_release(infer_model *m);

const char *infer_model_arch(const infer_model *m);  /* "llama", "qwen2", ... */
const char *infer_model_desc(const infer_model *m);  /* "llama 292.80K F32" style */
int32_t infer_model_n_vocab(const infer_model *m);
uint32_t infer_model_n_ctx_train(const infer_model *m);
uint32_t infer_model_n_embd(const infer_model *m);
uint32_t infer_model_n_layer(const infer_model *m);
uint64_t infer_model_n_params(const infer_model *m);
uint64_t infer_model_size(const infer_model *m);     /* bytes of weights */
/* Bytes of weights one generated token reads: all of them but the token
 * embedding table, of which it reads one row (unless the table is also the
 * output matrix). What infer-bench's GB/s column divides by time. */
uint64_t infer_model_streamed_bytes(const infer_model *m);

/* ---- tokens ---------------------------------------------------------------- */

int32_t infer_token_bos(const infer_model *m); /* -1 when the vocabulary has none */
int32_t infer_token_eos(const infer_model *m);
int infer_token_is_eog(const infer_model *m, int32_t id); /* end of generation */

enum {
    INFER_TOKENIZE_ADD_SPECIAL = 1u << 0,   /* BOS/EOS as the vocabulary asks */
    INFER_TOKENIZE_PARSE_SPECIAL = 1u << 1, /* "<s>" etc. in the text become tokens */
};

/* Tokenize len bytes. Writes up to cap ids; *n is the count the text needs
 * (INFER_EINVAL with *n set when cap is too small: call again larger). */
infer_status infer_tokenize(const infer_model *m, const char *text, size_t len, unsigned flags,
                            int32_t *ids, size_t cap, size_t *n, infer_error *err);
/* The text of one token (special tokens render as nothing unless
 * render_special). Sets *len to the bytes needed; INFER_EINVAL when the id
 * is out of range or cap too small. */
infer_status infer_token_to_piece(const infer_model *m, int32_t id, int render_special, char *buf,
                                  size_t cap, size_t *len);

/* ---- contexts ---------------------------------------------------------------- */

#define INFER_CPU_MASK_WORDS 16 /* infer_context_params.cpu_mask: 1024 CPUs */
typedef struct {
    uint32_t n_ctx;   /* tokens the KV cache holds; 0: min(4096, training context) */
    uint32_t n_batch; /* most tokens per forward pass; 0: min(512, n_ctx) */
    int n_threads;    /* 0: infer_default_threads() */
    uint32_t kv_type; /* INFER_TYPE_F16 (default) or INFER_TYPE_F32 */
    int all_logits;   /* 1: decode may return every token's logits (INFER_DECODE_ALL_LOGITS;
                         n_batch x n_vocab floats are reserved); 0 (default): the last token's */
    int backend;      /* INFER_BACKEND_CPU (default), _VULKAN or _AUTO (a GPU when present) */
    int device;       /* Vulkan device index (infer_vulkan_devices order); -1 (default): best */
    /* Where the CPU backend's threads run, as llama.cpp's -C / --cpu-strict:
     * bit i of cpu_mask[w] is CPU 64 * w + i; all zero (default): the threads
     * keep the process's affinity. With a mask, n_threads 0 means one thread
     * per CPU of the mask that the machine has. The calling thread runs
     * thread 0's share on thread 0's CPUs during infer_decode and gets its
     * own affinity back after. A thread whose CPUs the system refuses (none
     * of them online, or all outside the process's cpuset) is INFER_EINVAL
     * at infer_context_new, naming it. */
    uint64_t cpu_mask[INFER_CPU_MASK_WORDS];
    int cpu_strict;   /* 1: thread k on the k-th CPU of the mask alone (round robin); 0 (default): on any of them */
    int poll;         /* 0..100 as llama.cpp's --poll: how long an idle CPU thread waits busily for the next
                         piece of work before it sleeps; 50 (default) ~0.5 ms, 0: it sleeps at once */
    int n_threads_batch; /* CPU threads for passes of more than one token (llama.cpp's -tb);
                            0 (default): n_threads. The pool has the larger of the two */
} infer_context_params;

/* Where a context runs. VULKAN and AUTO fall back to the CPU when no usable
 * device is found (infer_context_backend / _note tell); AUTO never picks a
 * CPU-type Vulkan device (lavapipe), which the CPU backend outruns. */
enum { INFER_BACKEND_CPU = 0, INFER_BACKEND_VULKAN = 1, INFER_BACKEND_AUTO = 2 };

infer_context_params infer_context_default_params(void);

/* A context holds a reference on m until infer_context_free. All memory
 * (KV cache, activations, logits) is allocated here, none per token. */
infer_status infer_context_new(infer_model *m, const infer_context_params *params,
                               infer_context **out, infer_error *err);
void infer_context_free(infer_context *c); /* NULL is fine */

/* The backend the context runs on (INFER_BACKEND_CPU or _VULKAN), and why
 * Vulkan is not used when it was asked for ("" otherwise). */
int infer_context_backend(const infer_context *c);
const char *infer_context_backend_note(const infer_context *c);

/* Vulkan devices, in the order --device / infer_context_params.device use. */
enum {
    INFER_DEVICE_OTHER = 0, INFER_DEVICE_INTEGRATED_GPU = 1, INFER_DEVICE_DISCRETE_GPU = 2,
    INFER_DEVICE_VIRTUAL_GPU = 3, INFER_DEVICE_CPU = 4, /* VkPhysicalDeviceType's values */
};
typedef struct {
    char name[256];
    int type;               /* INFER_DEVICE_* */
    uint64_t memory;        /* bytes of its largest device-local heap */
    uint32_t subgroup_size;
    int subgroup_ops;       /* subgroup arithmetic in compute shaders (used when present) */
    int fp16, int8;         /* shaderFloat16, shaderInt8 */
    int int_dot;            /* shaderIntegerDotProduct */
    uint32_t api_version;   /* VK_MAKE_API_VERSION layout */
} infer_device_info;
/* Fill up to cap entries; *n = the number of devices. INFER_EBACKEND with
 * a message when there is no Vulkan driver or device. */
infer_status infer_vulkan_devices(infer_device_info *out, size_t cap, size_t *n, infer_error *err);

/* These two take no busy flag: any thread may read them, also while
 * another decodes (n_past then says the count before or after a chunk). */
uint32_t infer_context_n_ctx(const infer_context *c);
uint32_t infer_context_n_past(const infer_context *c); /* tokens in the KV cache */

enum {
    INFER_DECODE_ALL_LOGITS = 1u << 0, /* logits for every token of the batch (n <= n_batch;
                                          the context needs all_logits) */
};

/* Run the model on n tokens after those already in the cache. Long inputs
 * are processed n_batch at a time. Afterwards infer_logits() holds the last
 * token's logits (every token's with INFER_DECODE_ALL_LOGITS).
 * INFER_ECTX_FULL, cache untouched, when n_past + n > n_ctx.
 * INFER_EBUSY when another thread is inside a call on this context.
 * The calling thread does a share of the work: it needs INFER_MIN_CALLER_STACK
 * bytes of stack free, and on the CPU backend the kernels' scratch (136 KB,
 * from the heap, kept until the thread exits: INFER_ENOMEM without it);
 * the context's own threads get stacks of their own size. */
#define INFER_MIN_CALLER_STACK ((size_t)64 << 10)
infer_status infer_decode(infer_context *c, const int32_t *ids, size_t n, unsigned flags,
                          infer_error *err);
/* Logits ([n_vocab] floats) of the last decoded token, or of token i of the
 * last batch decoded with INFER_DECODE_ALL_LOGITS. NULL when there are none,
 * or while another thread is inside a call on this context (these take the
 * same busy flag: on a GPU they may copy the row to host memory); from
 * infer_generate's callback, on its own thread, they read.
 * Valid until the next call on the context. */
const float *infer_logits(const infer_context *c);
const float *infer_logits_ith(const infer_context *c, size_t i);

/* Forget everything in the KV cache. */
infer_status infer_context_reset(infer_context *c);
/* Drop n_discard cached tokens after the first n_keep and slide the rest
 * down (re-rotating their keys), as llama.cpp's context shift does.
 * INFER_EINVAL for a range past the cache; INFER_EBACKEND when the GPU
 * fails, after which the cache holds only the first n_keep tokens. */
infer_status infer_context_shift(infer_context *c, uint32_t n_keep, uint32_t n_discard);

/* ---- sampling ------------------------------------------------------------------ */

typedef struct infer_sampler infer_sampler;

typedef struct {
    float temp;             /* <= 0: greedy (highest logit, first on ties). Default 0.8 */
    int32_t top_k;          /* <= 0: off. Default 40 */
    float top_p;            /* >= 1: off. Default 0.95 */
    float min_p;            /* <= 0: off. Default 0.05 */
    float repeat_penalty;   /* 1: off (default) */
    int32_t repeat_last_n;  /* tokens the penalty looks back at. Default 64 */
    uint64_t seed;          /* INFER_SEED_RANDOM: pick one (infer_sampler_seed tells) */
    int ignore_eog;         /* nonzero: end-of-generation tokens (EOS, EOT, ...) are never
                               picked, as llama.cpp's --ignore-eos. Default 0 */
} infer_sampler_params;

#define INFER_SEED_RANDOM UINT64_MAX

infer_sampler_params infer_sampler_default_params(void);
infer_status infer_sampler_new(const infer_model *m, const infer_sampler_params *params,
                               infer_sampler **out, infer_error *err);
void infer_sampler_free(infer_sampler *s);
uint64_t infer_sampler_seed(const infer_sampler *s);
/* Pick a token from n_vocab logits (NaN / inf tolerated: never crashes or
 * loops; all-NaN logits give token 0). Does not record it. -1 for a NULL
 * sampler or logits. Every function here takes NULL (answering 0, -1,
 * NULL or INFER_EINVAL, or doing nothing); so do the model and context
 * getters. */
int32_t infer_sampler_sample(infer_sampler *s, const float *logits);
/* Record a token in the repeat-penalty history (prompt and generated). */
void infer_sampler_accept(infer_sampler *s, int32_t token);
void infer_sampler_reset(infer_sampler *s);

/* ---- generation ------------------------------------------------------------------ */

/* Called with each piece of generated text, UTF-8 sequences never split
 * across calls. Return nonzero to stop. */
typedef int (*infer_piece_cb)(void *user, int32_t token, const char *text, size_t len);

typedef struct {
    size_t n_prompt, n_generated;
    double prompt_ms, gen_ms; /* wall time decoding the prompt / generating */
    int stopped_by;           /* INFER_STOP_* */
} infer_generate_stats;

enum { INFER_STOP_LENGTH = 0, INFER_STOP_EOG = 1, INFER_STOP_CALLBACK = 2, INFER_STOP_CTX_FULL = 3 };

/* Decode the prompt (appended to what the cache holds), then sample up to
 * n_predict tokens, calling cb with each piece. Stops at an end-of-generation
 * token, at n_predict, when cb returns nonzero, or when the context is full
 * (INFER_OK with stopped_by = INFER_STOP_CTX_FULL; with context_shift the
 * cache is shifted instead, keeping n_keep tokens). */
typedef struct {
    size_t n_predict;
    int context_shift;
    uint32_t n_keep;
} infer_generate_params;

infer_status infer_generate(infer_context *c, infer_sampler *s, const int32_t *prompt,
                            size_t n_prompt, const infer_generate_params *params,
                            infer_piece_cb cb, void *user, infer_generate_stats *stats,
                            infer_error *err);

#ifdef __cplusplus
}
#endif

#endif /* INFER_H */
