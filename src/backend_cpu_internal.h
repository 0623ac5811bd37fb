/* backend_cpu_internal.h - the CPU backend's state, shared by its two
 * files: backend_cpu.c (the ops, matmuls, creation) and backend_cpu_kv.c
 * (the KV cache and attention). */
#ifndef INFER_BACKEND_CPU_INTERNAL_H
#define INFER_BACKEND_CPU_INTERNAL_H

#include "backend.h"
#include "dispatch.h"
#include "pool.h"

#define ROW_GROUP 32      /* batch matmul rows are split over threads in multiples of this */
#define ROW_GROUP_TOKEN 16 /* one token's: the generation kernels' row group (ROW_GROUP is a multiple) */
#define MM_RUN 4          /* most units a thread takes at once in a batch matmul (pool_shares_take) */
#define MM_RUN_TOKEN 16   /* ... in a one-token matmul: sixteen 16-row groups */
#define MM_MAX 3          /* most matmuls of one input run as one (cpu_matmul_n) */
#define ATT_ROWS 32       /* query rows (heads x tokens) per attention work unit */
#define KV_TILE 32        /* positions per tile of the K cache (one matmul_kn call each: 32 rows, one AVX-512 panel) */
#define ATT_BLOCK 512     /* cached positions per online-softmax block (a multiple of KV_TILE) */
#define PAR_MIN 65536     /* elementwise ops this large or larger run on the pool */
#define BLAS_MIN_TOK 2    /* F32 matmuls of 2+ tokens use OpenBLAS (faster than ours at every size measured) */
/* OpenBLAS's sgemm (0.3.21) rounds a row differently with the number of
 * rows in the call when the batch is small: a sweep of shapes (2,048-5,632
 * columns, 96-5,632 rows) and 2-4 thread splits changed bits at 2-36
 * tokens (75 of 486 cases at 2, 3, 8 and 32 tokens) and never at 40-512
 * (2,500 cases). Batches under BLAS_CHUNK_TOK tokens are therefore called
 * on fixed chunks of BLAS_ROWS rows, the threads' shares made of whole
 * chunks, so their bits do not depend on the thread count; larger ones
 * take one call per thread (fixed chunks cost 7-13% of F32 pp512 there:
 * OpenBLAS is faster on more rows). */
#define BLAS_CHUNK_TOK 64
#define BLAS_ROWS 256

/* Per-thread scratch. */
typedef struct {
    float *scores;  /* [att_rows][att_block] one block's attention scores, then weights */
    uint8_t *probs; /* [att_rows][att_block] those weights in the cache type */
    uint8_t *qbuf;  /* [att_rows][hd_k] queries in the cache type */
    float *obuf;    /* [att_rows][hd_v] the blocks so far, merged */
    float *bbuf;    /* [att_rows][hd_v] the block's own */
    float *bmax;    /* [2][att_rows] each row's max score: of the blocks so far, of the block */
    double *bsum;   /* [2][att_rows] and the sums of e^(score - that max) */
    float *rope;    /* [n_rot] cos/sin of one position: rope_pos, when rope_valid */
    uint32_t rope_pos;
    int rope_valid;
    float *tmp;     /* [max(hd_k, hd_v)] */
} thread_scratch;

typedef struct {
    backend base;
    const infer_model *m;
    const model_hparams *hp;
    const kernel_table *kt;
    model_pack_view packed;    /* by tensor index: the model's repacked (or copied) weights (model_pack.c) */
    uint32_t n_ctx, n_batch, kv_type;
    size_t esz;            /* bytes of one cached value */
    float *arena;          /* activations */
    uint8_t *kv;           /* n_layer x {K [n_head_kv][k_tiles][hd_k][KV_TILE], V [n_head_kv][n_ctx][hd_v]} (infer_map) */
    size_t kv_bytes;
    size_t k_head, v_head; /* bytes of one KV head's K or V at one position */
    uint32_t k_tiles;      /* tiles of KV_TILE positions per KV head: n_ctx rounded up */
    size_t k_tile;         /* bytes of one tile: KV_TILE * k_head */
    size_t k_layer;        /* bytes of one layer's K: n_head_kv * k_tiles * k_tile */
    size_t v_per_head;     /* bytes of one KV head's V: n_ctx * v_head */
    size_t layer_bytes;
    uint8_t *qact;         /* quantized activation rows [n_batch][qact_row] */
    size_t qact_row;
    int att_qb;            /* query tokens per attention work unit */
    int64_t att_block;     /* cached positions per online-softmax block: ATT_BLOCK, or n_ctx's tiles if fewer */
    pool *pool;            /* max(n_threads, n_threads_batch) - 1 workers */
    int n_threads, n_threads_batch; /* the pool's parts for one token, for more (pool_set_active) */
    int next_nw;           /* next_matmul's hint for the coming matmul, consumed by it */
    const weight *next_w[MM_MAX];
    thread_scratch *ts;    /* [n_ts] = pool_size */
    int n_ts;
} cpu_backend;

#define CPU(b) ((cpu_backend *)(b))

static inline float *A(backend *b, act off) { return CPU(b)->arena + off; }

/* backend_cpu.c: RoPE's cos/sin of position p into cs ([n_rot]), and one
 * head rotated in place by them. */
void cpu_rope_table(const infer_model *m, float p, float *cs);
void cpu_rope_apply(const model_hparams *hp, float *x, const float *cs);

/* backend_cpu_kv.c: the backend ops of the KV cache and attention. */
void cpu_kv_store(backend *b, int layer, act k, act v, int n, uint32_t pos0);
void cpu_attention(backend *b, int layer, act q, act out, int n, uint32_t pos0);
infer_status cpu_kv_move(backend *b, uint32_t dst, uint32_t src, uint32_t n, infer_error *err);

#endif
