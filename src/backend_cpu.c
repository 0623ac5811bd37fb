/*
 * backend_cpu.c - the CPU backend: the op interface of backend.h on the
 * kernel table (kernels/dispatch.h: ref, avx2, avxvnni, avx512 or neon, chosen once),
 * with llama.cpp's numerics:
 *   - matmul activations quantized to the weight's vec_dot_type;
 *   - RMSNorm summed in double, scale = 1/sqrtf(mean + eps);
 *   - RoPE angles from a running float product, as ggml's rope cache;
 *   - attention with an F16 cache rounds q and the softmax weights to F16
 *     before the dot products, as ggml's mul_mat with F16 K and V does.
 *
 * Threads: every op that has enough work splits it over the pool in ranges
 * that do not depend on the thread count's effect on any one element:
 * matmul by groups of 32 weight rows (16 for one token: the kernels'
 * tiles and row groups), attention by (KV head, block of query tokens),
 * the rest by rows or fixed-size chunks.
 * Each output element is computed by one thread in the same order whatever
 * the thread count, so results are identical for 1, 2 or 64 threads.
 *
 * Attention is an online softmax over blocks of ATT_BLOCK cached positions
 * per (KV head, query block): per block two matmuls, scores = K q for all
 * query heads of the group at once, then V^T p of the block's softmax, and
 * that merged into the blocks' so far by their maxima and sums (one pass
 * over the cache; the scratch is one block's whatever the depth; a depth
 * within the first block gets exactly the plain softmax). K and V are cached
 * by KV head ([layer][kv head] ...): a work unit (one KV head) reads each
 * as one sequential stream. V is cached by position ([position][dim]) and
 * read by column (kernel_table.matmul_kn): a token's store is one
 * contiguous piece per head (a transposed cache took one scattered 2-byte
 * write into each of n_head_kv * hd_v rows, each a cache miss, ~1% of a
 * generated token), and the batch kernels' panels of V^T are V's rows as
 * they lie, no transpose. K is cached in tiles of KV_TILE positions, each
 * tile by dim ([tile][dim][KV_TILE positions]): the first product reads a
 * tile by column too (matmul_kn, KV_TILE rows), so its panels are K's
 * rows as they lie; cached by position, every panel was a transpose, and
 * at 2,000 cached positions the scores took 1.7x as long (TinyLlama shapes,
 * F16 cache). A token's K store is hd_k scattered values, all within one
 * tile's few KB. The cache is in huge pages
 * where the system gives them (infer_map): it is read right after the
 * weights' stream has evicted it and its page tables from the caches
 * (measured: attention 10-15% faster in generation).
 *
 * F32 weights in batches of 2+ tokens go to OpenBLAS's sgemm,
 * single-threaded inside each of our threads (on its slice of rows): it
 * measured 1.2-1.8x our own F32 kernel at every batch size from 2 to 512.
 * F16/BF16 weights stay on our kernels (OpenBLAS would need them converted
 * to F32 first).
 *
 * All memory is allocated in backend_cpu_new; the ops allocate nothing.
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

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
    pool *pool;            /* n_threads - 1 workers */
    int next_nw;           /* next_matmul's hint for the coming matmul, consumed by it */
    const weight *next_w[MM_MAX];
    thread_scratch *ts;    /* [n_ts] = pool_size */
    int n_ts;
} cpu_backend;

#define CPU(b) ((cpu_backend *)(b))

static float *A(backend *b, act off) { return CPU(b)->arena + off; }

/* ---- small parallel helpers ---------------------------------------------------- */

/* Elementwise op over count floats, split in 64-float aligned chunks. */
typedef struct {
    cpu_backend *c;
    float *x;
    const float *y;
    size_t count;
    int silu;
} elem_job;

static void elem_part(void *arg, int ith, int nth, int self) {
    elem_job *j = arg;
    int64_t b, e;
    pool_range((int64_t)((j->count + 63) / 64), ith, nth, &b, &e);
    size_t lo = (size_t)b * 64, hi = (size_t)e * 64 < j->count ? (size_t)e * 64 : j->count;
    if (hi <= lo) return;
    if (j->silu) j->c->kt->silu_mul(j->x + lo, j->y + lo, hi - lo);
    else j->c->kt->add(j->x + lo, j->y + lo, hi - lo);
}

static void run_elem(cpu_backend *c, float *x, const float *y, size_t count, int silu) {
    elem_job j = {c, x, y, count, silu};
    if (count >= PAR_MIN) pool_run(c->pool, elem_part, &j);
    else elem_part(&j, 0, 1, 0);
}

/* ---- ops ------------------------------------------------------------------ */

static void cpu_get_rows(backend *b, const weight *w, const int32_t *ids, int n, act out) {
    cpu_backend *c = CPU(b);
    float *o = A(b, out);
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)ids[t] * w->row_bytes;
        c->kt->dequantize(w->type, row, o + (size_t)t * (size_t)w->cols, w->cols);
    }
}

typedef struct {
    cpu_backend *c;
    const float *x, *g;
    float *y;
    int64_t n_rows, n;
    float eps;
} norm_job;

static void norm_part(void *arg, int ith, int nth, int self) {
    norm_job *j = arg;
    int64_t b, e;
    pool_range(j->n_rows, ith, nth, &b, &e);
    for (int64_t r = b; r < e; r++)
        j->c->kt->rms_norm(j->x + (size_t)r * (size_t)j->n, j->g, j->y + (size_t)r * (size_t)j->n, j->n, j->eps);
}

static void cpu_rms_norm(backend *b, act x, act out, int n_rows, const weight *w, float eps) {
    cpu_backend *c = CPU(b);
    norm_job j = {c, A(b, x), w->data, A(b, out), n_rows, w->cols, eps};
    if ((size_t)n_rows * (size_t)w->cols >= PAR_MIN && n_rows > 1) pool_run(c->pool, norm_part, &j);
    else norm_part(&j, 0, 1, 0);
}

/* One to MM_MAX matmuls of the same input (q, k, v; gate, up), split
 * over threads as one: first the activation rows are quantized (split by
 * token), then the concatenated output rows (split by groups of weight
 * rows, a group never spanning two weights). One pass over the pool for
 * all of them: fewer waits, and each thread's weight streams run on from
 * one matrix into the next. */
typedef struct {
    cpu_backend *c;
    int nw;
    const weight *w[MM_MAX];
    float *out[MM_MAX];
    int64_t row_unit;          /* rows per unit: ROW_GROUP, or ROW_GROUP_TOKEN for one token */
    int64_t unit0[MM_MAX + 1]; /* first unit of each weight; unit0[nw]: total */
    const float *x;
    int n;
    uint32_t vt;
    size_t stride; /* bytes between quantized activation rows */
    int blas;
    int next_nw;   /* the weights of the matmul after this one (one token), to read ahead */
    const weight *next_w[MM_MAX];
    int64_t next_u0[MM_MAX + 1]; /* their units, as unit0 */
} matmul_job;

static void matmul_quantize_part(void *arg, int ith, int nth, int self) {
    matmul_job *j = arg;
    int64_t b, e;
    pool_range(j->n, ith, nth, &b, &e);
    for (int64_t t = b; t < e; t++) {
        j->c->kt->quantize_act(j->vt, j->x + (size_t)t * (size_t)j->w[0]->cols, j->c->qact + (size_t)t * j->stride,
                               j->w[0]->cols);
    }
}

/* The first unit of each of nw weights laid end to end, units of ru rows
 * (a weight's last may be short): u0[k], and u0[nw] the total. */
static void unit_starts(const weight *const *ws, int nw, int64_t ru, int64_t *u0) {
    u0[0] = 0;
    for (int k = 0; k < nw; k++) u0[k + 1] = u0[k] + (ws[k]->rows + ru - 1) / ru;
}

/* w's rows in the model's pack (model_pack.c): repacked (plain 0) or
 * copied as in the file (plain 1); NULL where it has none. */
static const void *pack_of(const cpu_backend *c, const weight *w, int plain) {
    const int has = c->packed.at && w->index >= 0 && c->packed.at[w->index];
    return has && c->packed.plain[w->index] == plain ? c->packed.at[w->index] : NULL;
}

/* w's repacked copy (NULL when it has none) and how many of its rows are
 * in it: whole groups, rows [0, *full); the rest are read in the file's
 * layout (rows_of). */
static const void *packed_of(const cpu_backend *c, const weight *w, int64_t *full) {
    const void *P = pack_of(c, w, 0);
    *full = P ? w->rows / c->kt->packed_rows * c->kt->packed_rows : 0;
    return P;
}

/* w's rows in the file's layout: a copy of them in huge pages where the
 * model has one (float matrices of a mapped model), else the file's. */
static const uint8_t *rows_of(const cpu_backend *c, const weight *w) {
    const void *copy = pack_of(c, w, 1);
    return copy ? (const uint8_t *)copy : (const uint8_t *)w->data;
}

/* Rows [b, e) of weight k. */
static void matmul_rows(const matmul_job *j, int k, int64_t b, int64_t e) {
    const weight *w = j->w[k];
    const void *acts = j->vt == INFER_TYPE_F32 ? (const void *)j->x : (const void *)j->c->qact;
    float *out = j->out[k];
    const uint8_t *wrows = rows_of(j->c, w) + (size_t)b * w->row_bytes;
    if (j->blas) { /* b is a multiple of the unit: BLAS_ROWS for the small batches chunked */
        const int64_t chunk = j->n < BLAS_CHUNK_TOK ? BLAS_ROWS : e - b;
        for (int64_t r = b; r < e; r += chunk) {
            const int64_t nr = e - r < chunk ? e - r : chunk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, (int)nr, (int)w->cols, 1.0f, j->x,
                        (int)w->cols, (const float *)(const void *)(wrows + (size_t)(r - b) * w->row_bytes),
                        (int)(w->row_bytes / sizeof(float)), 0.0f, out + r, (int)w->rows);
        }
        return;
    }
    const kernel_table *kt = j->c->kt;
    int64_t full;
    const void *P = packed_of(j->c, w, &full);
    if (P) { /* whole groups repacked (b is a multiple of them), the rows after the last group as in the file */
        const int64_t pe = e < full ? e : full;
        if (pe > b) kt->matmul_packed(w->type, P, b, pe - b, w->cols, acts, j->stride, j->n, out + b, (size_t)w->rows);
        if (e <= full) return;
        if (b < full) b = full;
        wrows = rows_of(j->c, w) + (size_t)b * w->row_bytes;
    }
    kt->matmul(w->type, wrows, w->row_bytes, e - b, w->cols, acts, j->stride, j->n, out + b, (size_t)w->rows);
}

/* Units [ub, ue) of the concatenated weights. */
static void matmul_units(const matmul_job *j, int64_t ub, int64_t ue) {
    const int64_t ru = j->row_unit;
    for (int k = 0; k < j->nw; k++) {
        const int64_t lo = ub > j->unit0[k] ? ub : j->unit0[k], hi = ue < j->unit0[k + 1] ? ue : j->unit0[k + 1];
        if (hi <= lo) continue;
        const int64_t rows = j->w[k]->rows, b = (lo - j->unit0[k]) * ru;
        const int64_t e = (hi - j->unit0[k]) * ru < rows ? (hi - j->unit0[k]) * ru : rows;
        if (e > b) matmul_rows(j, k, b, e);
    }
}

static void matmul_rows_part(void *arg, int ith, int nth, int self) {
    matmul_job *j = arg;
    int64_t ub, ue;
    pool_range(j->unit0[j->nw], ith, nth, &ub, &ue);
    matmul_units(j, ub, ue);
}

/* One token: what a thread that has finished its part of a matmul reads
 * next. Generation streams every weight once per token, and between the
 * matmuls the bus sits idle: the last thread of a matmul reads alone, and
 * the ops before the next matmul (the activation's quantization, RoPE, the
 * KV store, SiLU) run on fewer threads than there are. So each thread
 * leaves the pool the start of its own first run of the next matmul (the
 * front of its share of the next weights' units: the repacked copy, as
 * large as the rows it replaces, or the file's rows), up to AHEAD_BYTES,
 * to read into its cache while it waits (pool_read_ahead). Measured
 * (TinyLlama shapes, 2 threads, alternating per token in one process):
 * 0.3-1.3% faster tokens for Q4_0, Q8_0 and Q4_K_M; 64 KB to 1 MB the same. */
#define AHEAD_BYTES ((size_t)128 << 10)
static void read_ahead_next(const matmul_job *j, int self, int nth) {
    const cpu_backend *c = j->c;
    const int64_t *u0 = j->next_u0;
    int64_t ub, ue;
    pool_range(u0[j->next_nw], self, nth, &ub, &ue);
    for (int k = 0; k < j->next_nw && ub < ue; k++) {
        if (ub >= u0[k + 1]) continue;
        const weight *w = j->next_w[k];
        const int64_t r = (ub - u0[k]) * j->row_unit;
        int64_t full;
        const void *P = packed_of(c, w, &full);
        /* to the end of the rows' copy: the repacked whole groups, or the file's */
        const uint8_t *base = r < full ? (const uint8_t *)P : rows_of(c, w);
        const size_t left = (size_t)((r < full ? full : w->rows) - r) * w->row_bytes;
        pool_read_ahead(c->pool, self, base + (size_t)r * w->row_bytes, left < AHEAD_BYTES ? left : AHEAD_BYTES);
        return;
    }
}

/* The threads take runs of units, each from the front of its own
 * contiguous share first (one sequential stream, as a static split would
 * give it), then from the back of the others'. The threads do not run at
 * the same speed: on the development machine a static split left one idle
 * for 11-14% of the matmul time, in generation and in prompts alike, and a
 * split by rows is not one by bytes or work when q, k and v differ in
 * type. A row's result does not depend on which thread computes it, so the
 * output is the same bit for bit. A run is at most half of what the share
 * holds, so runs shrink to one unit where the threads meet
 * (pool_shares_take): with whole four-group chunks the thread left last
 * still had on average ~9 µs of a chunk to read alone (TinyLlama Q4_K_M
 * generation; a chunk of ffn_down is 200-300 KB). Up to that, a run is 128
 * rows for a batch (four units; measured: pp512 +25-35% over the static
 * split, Q4_0 / Q8_0 / Q4_K_M) and sixteen 16-row groups for one token:
 * longer kernel calls and a quarter of the takes (each an atomic
 * compare-and-swap) against runs of four groups, 1.1-2.8% faster tokens
 * for Q4_0, Q8_0 and Q4_K_M (TinyLlama shapes, 2 threads, alternating per
 * token in one process; 8 groups gave half of that, 32 no more than 16). */
static void matmul_steal_part(void *arg, int ith, int nth, int self) {
    matmul_job *j = arg;
    int64_t ub, cnt;
    pool_read_ahead(j->c->pool, self, NULL, 0);
    const int64_t run = j->n == 1 ? MM_RUN_TOKEN : MM_RUN;
    while ((ub = pool_shares_take(j->c->pool, ith, run, &cnt)) >= 0) matmul_units(j, ub, ub + cnt);
    if (j->next_nw > 0) read_ahead_next(j, self, nth);
}

/* F32 weights in batches go to OpenBLAS. sgemm's int arguments: every
 * size here is far below INT_MAX for any model the loader accepts, but
 * check rather than trust. */
static int uses_blas(const weight *w, int n) {
    return w->type == INFER_TYPE_F32 && n >= BLAS_MIN_TOK && w->rows < INT32_MAX && w->cols < INT32_MAX &&
           w->row_bytes == (size_t)w->cols * sizeof(float);
}

static void cpu_next_matmul(backend *b, int nw, const weight *const *ws) {
    cpu_backend *c = CPU(b);
    c->next_nw = nw >= 1 && nw <= MM_MAX ? nw : 0;
    for (int k = 0; k < c->next_nw; k++) c->next_w[k] = ws[k];
}

static void cpu_matmul_n(backend *b, int nw, const weight *const *ws, const weight *const *biases, act x,
                         const act *outs, int n) {
    cpu_backend *c = CPU(b);
    matmul_job j = {.c = c, .nw = nw, .x = A(b, x), .n = n, .vt = c->kt->vec_dot_type(ws[0]->type),
                    .stride = (size_t)ws[0]->cols * sizeof(float), .blas = uses_blas(ws[0], n)};
    /* Together only when they share the activation's form and none goes
     * to OpenBLAS; else one by one. */
    int together = nw <= MM_MAX;
    for (int k = 0; k < nw && together; k++)
        together = ws[k]->cols == ws[0]->cols && c->kt->vec_dot_type(ws[k]->type) == j.vt && !uses_blas(ws[k], n);
    if (!together && nw > 1) { /* each reads ahead the next; the last, what this one would have */
        const weight *after[MM_MAX];
        const int n_after = c->next_nw;
        for (int k = 0; k < n_after; k++) after[k] = c->next_w[k];
        for (int k = 0; k < nw; k++) {
            if (k + 1 < nw) cpu_next_matmul(b, 1, &ws[k + 1]);
            else cpu_next_matmul(b, n_after, after);
            cpu_matmul_n(b, 1, &ws[k], biases ? &biases[k] : NULL, x, &outs[k], n);
        }
        return;
    }
    j.row_unit = n == 1 ? ROW_GROUP_TOKEN : j.blas && n < BLAS_CHUNK_TOK ? BLAS_ROWS : ROW_GROUP;
    if (n == 1) {
        j.next_nw = c->next_nw;
        for (int k = 0; k < c->next_nw; k++) j.next_w[k] = c->next_w[k];
        unit_starts(j.next_w, j.next_nw, j.row_unit, j.next_u0);
    }
    c->next_nw = 0;
    for (int k = 0; k < nw; k++) {
        j.w[k] = ws[k];
        j.out[k] = A(b, outs[k]);
    }
    unit_starts(j.w, nw, j.row_unit, j.unit0);
    if (j.vt != INFER_TYPE_F32) {
        /* The row size was checked against qact_row when the context was made. */
        uint64_t rb = 0;
        infer_type_row_bytes(j.vt, (uint64_t)ws[0]->cols, &rb);
        j.stride = (size_t)rb;
        if (n > 1) pool_run(c->pool, matmul_quantize_part, &j);
        else matmul_quantize_part(&j, 0, 1, 0);
    }
    /* OpenBLAS gets one contiguous share per thread (of whole chunks for a small batch). */
    if (!j.blas && pool_size(c->pool) > 1 && pool_shares_init(c->pool, j.unit0[nw]))
        pool_run(c->pool, matmul_steal_part, &j);
    else
        pool_run(c->pool, matmul_rows_part, &j);
    for (int k = 0; k < nw; k++) {
        const weight *bias = biases ? biases[k] : NULL;
        if (!bias || !bias->data) continue;
        const float *bv = bias->data;
        for (int t = 0; t < n; t++) {
            float *orow = j.out[k] + (size_t)t * (size_t)ws[k]->rows;
            for (int64_t i = 0; i < ws[k]->rows; i++) orow[i] += bv[i];
        }
    }
}

static void cpu_matmul(backend *b, const weight *w, const weight *bias, act x, act out, int n) {
    cpu_matmul_n(b, 1, &w, &bias, x, &out, n);
}

/* cos/sin of the n_rot/2 rotation angles of position p, as ggml's rope
 * cache computes them (a running float product of theta_scale). */
static void rope_table(const infer_model *m, float p, float *cs) {
    const model_hparams *hp = &m->hp;
    const int n_rot = (int)hp->n_rot;
    const float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)n_rot);
    float theta = p;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float ff = m->rope_freq_factors ? m->rope_freq_factors[i0 / 2] : 1.0f;
        const float th = hp->rope_freq_scale * (theta / ff);
        cs[i0] = cosf(th);
        cs[i0 + 1] = sinf(th);
        theta *= theta_scale;
    }
}

/* Rotate one head in place by the angles of rope_table: pairs (i, i + 1)
 * or, NeoX, (i, i + n_rot / 2). One loop per layout, without a branch
 * inside, so that the compiler may vectorize it (the same arithmetic per
 * pair either way). */
static void rope_apply(const model_hparams *hp, float *x, const float *cs) {
    const int n_rot = (int)hp->n_rot, half = n_rot / 2;
    if (hp->rope_type == ROPE_NEOX) {
        float *lo = x, *hi = x + half;
        for (int i = 0; i < half; i++) {
            const float x0 = lo[i], x1 = hi[i], c = cs[2 * i], sn = cs[2 * i + 1];
            lo[i] = x0 * c - x1 * sn;
            hi[i] = x0 * sn + x1 * c;
        }
        return;
    }
    for (int i = 0; i < half; i++) {
        const float x0 = x[2 * i], x1 = x[2 * i + 1], c = cs[2 * i], sn = cs[2 * i + 1];
        x[2 * i] = x0 * c - x1 * sn;
        x[2 * i + 1] = x0 * sn + x1 * c;
    }
}

typedef struct {
    cpu_backend *c;
    float *x;
    int n, n_heads, head_dim;
    uint32_t pos0;
} rope_job;

static void rope_part(void *arg, int ith, int nth, int self) {
    rope_job *j = arg;
    const cpu_backend *c = j->c;
    thread_scratch *ts = &c->ts[ith];
    float *cs = ts->rope;
    int64_t b, e;
    pool_range(j->n, ith, nth, &b, &e);
    for (int64_t t = b; t < e; t++) {
        float *row = j->x + (size_t)t * (size_t)j->n_heads * (size_t)j->head_dim;
        /* One table per position, not per call: q and k of every layer
         * rotate by the same angles (a generated token's: 2 x n_layer calls). */
        const uint32_t pos = j->pos0 + (uint32_t)t;
        if (!ts->rope_valid || ts->rope_pos != pos) {
            rope_table(c->m, (float)pos, cs);
            ts->rope_pos = pos;
            ts->rope_valid = 1;
        }
        for (int h = 0; h < j->n_heads; h++) rope_apply(c->hp, row + (size_t)h * (size_t)j->head_dim, cs);
    }
}

static void cpu_rope(backend *b, act x, int n, int n_heads, int head_dim, uint32_t pos0) {
    cpu_backend *c = CPU(b);
    rope_job j = {c, A(b, x), n, n_heads, head_dim, pos0};
    if (n >= 4) pool_run(c->pool, rope_part, &j);
    else rope_part(&j, 0, 1, 0);
}

/* The cache of KV head g: K's tile t (positions t * KV_TILE onwards),
 * V at position pos. Each head's tiles, and its positions, are one
 * contiguous run, so attention (one head per work unit) reads K and V as
 * two sequential streams. */
static uint8_t *k_tile_at(cpu_backend *c, int layer, uint32_t g, uint32_t t) {
    return c->kv + (size_t)layer * c->layer_bytes + ((size_t)g * c->k_tiles + t) * c->k_tile;
}

static uint8_t *v_at(cpu_backend *c, int layer, uint32_t g, uint32_t pos) {
    return c->kv + (size_t)layer * c->layer_bytes + c->k_layer + (size_t)g * c->v_per_head + (size_t)pos * c->v_head;
}

/* Position pos's lane of its K tile: its hd_k values lie KV_TILE values
 * apart. k_put copies one position's K (contiguous at src) in, k_get out. */
static uint8_t *k_lane_at(cpu_backend *c, int layer, uint32_t g, uint32_t pos) {
    return k_tile_at(c, layer, g, pos / KV_TILE) + (size_t)(pos % KV_TILE) * c->esz;
}

/* n values of es bytes from src (stride ss) to dst (stride ds); the common
 * sizes as fixed-size copies, which compile to one move each (a K store
 * of TinyLlama made ~5,600 library calls a token). */
static void copy_lanes(uint8_t *dst, size_t ds, const uint8_t *src, size_t ss, size_t n, size_t es) {
    if (es == 2)
        for (size_t d = 0; d < n; d++) memcpy(dst + d * ds, src + d * ss, 2);
    else if (es == 4)
        for (size_t d = 0; d < n; d++) memcpy(dst + d * ds, src + d * ss, 4);
    else
        for (size_t d = 0; d < n; d++) memcpy(dst + d * ds, src + d * ss, es);
}

static void k_put(cpu_backend *c, int layer, uint32_t g, uint32_t pos, const uint8_t *src) {
    const size_t es = c->esz;
    copy_lanes(k_lane_at(c, layer, g, pos), KV_TILE * es, src, es, c->hp->n_embd_head_k, es);
}

static void k_get(cpu_backend *c, int layer, uint32_t g, uint32_t pos, uint8_t *dst) {
    const size_t es = c->esz;
    copy_lanes(dst, es, k_lane_at(c, layer, g, pos), KV_TILE * es, c->hp->n_embd_head_k, es);
}

static void cpu_kv_store(backend *b, int layer, act k, act v, int n, uint32_t pos0) {
    cpu_backend *c = CPU(b);
    const model_hparams *hp = c->hp;
    const size_t nk = (size_t)hp->n_head_kv * hp->n_embd_head_k;
    const size_t nv = (size_t)hp->n_head_kv * hp->n_embd_head_v;
    uint8_t *kq = c->ts[0].qbuf; /* one position's K in the cache type; no attention runs meanwhile */
    for (int t = 0; t < n; t++) {
        const uint32_t pos = pos0 + (uint32_t)t;
        for (uint32_t g = 0; g < hp->n_head_kv; g++) {
            c->kt->quantize_act(c->kv_type, A(b, k) + (size_t)t * nk + (size_t)g * hp->n_embd_head_k, kq,
                                (int64_t)hp->n_embd_head_k);
            k_put(c, layer, g, pos, kq);
            c->kt->quantize_act(c->kv_type, A(b, v) + (size_t)t * nv + (size_t)g * hp->n_embd_head_v,
                                v_at(c, layer, g, pos), (int64_t)hp->n_embd_head_v);
        }
    }
}

typedef struct {
    cpu_backend *c;
    int layer, n;
    const float *q;
    float *out;
    uint32_t pos0;
    int steal; /* units handed out by the pool's shares (else a static split) */
} attn_job;

/* Query tokens [t0, t1) of every head of KV head g: softmax(q K^T / sqrt(hd)) V,
 * over the cache in blocks of att_block positions (online softmax): each
 * block's scores, its softmax and its weighted sum of V, merged into the
 * blocks' so far. The scratch is one block's, whatever the depth; a
 * context of one block gets the plain softmax's bits. */
static void attend_unit(cpu_backend *c, thread_scratch *ts, int layer, uint32_t g, int t0, int t1, const float *Q,
                        float *O, uint32_t pos0) {
    const model_hparams *hp = c->hp;
    const kernel_table *kt = c->kt;
    const int hdk = (int)hp->n_embd_head_k, hdv = (int)hp->n_embd_head_v;
    const int nh = (int)hp->n_head, group = (int)(hp->n_head / hp->n_head_kv);
    const int nq = (t1 - t0) * group;
    const int64_t n_kv = (int64_t)pos0 + t1;
    const size_t esz = c->esz;
    const float scale = 1.0f / sqrtf((float)hdk);
    for (int i = 0; i < nq; i++) { /* row i: token t0 + i / group, head g * group + i % group */
        const float *q = Q + ((size_t)(t0 + i / group) * (size_t)nh + g * (size_t)group + (size_t)(i % group)) * (size_t)hdk;
        kt->quantize_act(c->kv_type, q, ts->qbuf + (size_t)i * (size_t)hdk * esz, hdk);
    }
    for (int64_t b0 = 0; b0 < n_kv; b0 += c->att_block) {
        const int64_t nb = n_kv - b0 < c->att_block ? n_kv - b0 : c->att_block;
        for (int64_t p0 = b0; p0 < b0 + nb; p0 += KV_TILE) { /* a tile's positions are the rows, its dims the columns */
            const int64_t nr = b0 + nb - p0 < KV_TILE ? b0 + nb - p0 : KV_TILE;
            kt->matmul_kn(c->kv_type, k_tile_at(c, layer, g, (uint32_t)(p0 / KV_TILE)), KV_TILE * esz, nr, hdk, ts->qbuf,
                          (size_t)hdk * esz, nq, ts->scores + (p0 - b0), (size_t)nb);
        }
        float *ob = b0 ? ts->bbuf : ts->obuf; /* the first block's is the start of the merge */
        for (int i = 0; i < nq; i++) {
            /* the row's causal positions in the block; the query block's later tokens get weight 0 */
            const int64_t last = (int64_t)pos0 + t0 + i / group + 1 - b0;
            const int64_t nv = last < 0 ? 0 : last < nb ? last : nb;
            const size_t at = b0 ? (size_t)nq + (size_t)i : (size_t)i; /* the block's own, or the start of the merge */
            ts->bsum[at] = kernels_softmax(kt, ts->scores + (size_t)i * (size_t)nb, nv, nb, scale, c->kv_type,
                                           ts->probs + (size_t)i * (size_t)nb * esz, &ts->bmax[at]);
        }
        kt->matmul_kn(c->kv_type, v_at(c, layer, g, (uint32_t)b0), c->v_head, hdv, nb, ts->probs, (size_t)nb * esz,
                      nq, ob, (size_t)hdv);
        for (int i = 0; b0 && i < nq; i++)
            kernels_softmax_merge(ts->obuf + (size_t)i * (size_t)hdv, ob + (size_t)i * (size_t)hdv, hdv, &ts->bmax[i],
                                  &ts->bsum[i], ts->bmax[nq + i], ts->bsum[nq + i]);
    }
    for (int i = 0; i < nq; i++) {
        float *o = O + ((size_t)(t0 + i / group) * (size_t)nh + g * (size_t)group + (size_t)(i % group)) * (size_t)hdv;
        memcpy(o, ts->obuf + (size_t)i * (size_t)hdv, (size_t)hdv * sizeof(float));
    }
}

static void attention_part(void *arg, int ith, int nth, int self) {
    attn_job *j = arg;
    cpu_backend *c = j->c;
    const int qb = c->att_qb;
    const int64_t n_blocks = (j->n + qb - 1) / qb;
    int64_t b = 0, e = 0, u;
    if (!j->steal) pool_range((int64_t)c->hp->n_head_kv * n_blocks, ith, nth, &b, &e);
    while ((u = j->steal ? pool_shares_next(c->pool, ith) : b < e ? b++ : -1) >= 0) {
        const int t0 = (int)(u % n_blocks) * qb;
        const int t1 = t0 + qb < j->n ? t0 + qb : j->n;
        attend_unit(c, &c->ts[ith], j->layer, (uint32_t)(u / n_blocks), t0, t1, j->q, j->out, j->pos0);
    }
}

/* Units (KV head x query block) go out by work stealing, as matmul rows
 * do: each writes only its own outputs, with its thread's scratch. */
static void cpu_attention(backend *b, int layer, act q, act out, int n, uint32_t pos0) {
    cpu_backend *c = CPU(b);
    attn_job j = {.c = c, .layer = layer, .n = n, .q = A(b, q), .out = A(b, out), .pos0 = pos0};
    const int64_t units = (int64_t)c->hp->n_head_kv * ((n + c->att_qb - 1) / c->att_qb);
    j.steal = pool_size(c->pool) > 1 && pool_shares_init(c->pool, units);
    pool_run(c->pool, attention_part, &j);
}

static void cpu_silu_mul(backend *b, act gate, act up, size_t count) {
    run_elem(CPU(b), A(b, gate), A(b, up), count, 1);
}

static void cpu_add(backend *b, act x, act y, size_t count) { run_elem(CPU(b), A(b, x), A(b, y), count, 0); }

static infer_status cpu_sync(backend *b, infer_error *err) { return INFER_OK; }

static const float *cpu_host(backend *b, act off, size_t count) { return A(b, off); }

static infer_status cpu_kv_move(backend *b, uint32_t dst, uint32_t src, uint32_t n, infer_error *err) {
    cpu_backend *c = CPU(b);
    const model_hparams *hp = c->hp;
    const float delta = (float)dst - (float)src;
    float *tmp = c->ts[0].tmp, *cs = c->ts[0].rope;
    uint8_t *kq = c->ts[0].qbuf; /* one position's K in the cache type */
    rope_table(c->m, delta, cs);
    c->ts[0].rope_valid = 0; /* it holds delta's angles now */
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        for (uint32_t h = 0; h < hp->n_head_kv; h++) {
            /* dst < src: moving in increasing order never overwrites a source. */
            for (uint32_t i = 0; i < n; i++) {
                k_get(c, (int)l, h, src + i, kq);
                c->kt->dequantize(c->kv_type, kq, tmp, hp->n_embd_head_k);
                rope_apply(hp, tmp, cs);
                c->kt->quantize_act(c->kv_type, tmp, kq, hp->n_embd_head_k);
                k_put(c, (int)l, h, dst + i, kq);
            }
            memmove(v_at(c, (int)l, h, dst), v_at(c, (int)l, h, src), (size_t)n * c->v_head);
        }
    }
    return INFER_OK;
}

static void cpu_free(backend *b) {
    cpu_backend *c = CPU(b);
    if (!c) return;
    infer_free(c->arena);
    infer_unmap(c->kv, c->kv_bytes);
    infer_free(c->qact);
    pool_free(c->pool);
    for (int i = 0; c->ts && i < c->n_ts; i++) {
        infer_free(c->ts[i].scores);
        infer_free(c->ts[i].probs);
        infer_free(c->ts[i].qbuf);
        infer_free(c->ts[i].obuf);
        infer_free(c->ts[i].bbuf);
        infer_free(c->ts[i].bmax);
        infer_free(c->ts[i].bsum);
        infer_free(c->ts[i].rope);
        infer_free(c->ts[i].tmp);
    }
    infer_free(c->ts);
    infer_free(c);
}

static const backend_ops CPU_OPS = {
    .get_rows = cpu_get_rows,
    .rms_norm = cpu_rms_norm,
    .matmul = cpu_matmul,
    .matmul_n = cpu_matmul_n,
    .next_matmul = cpu_next_matmul,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .sync = cpu_sync,
    .host = cpu_host,
    .kv_move = cpu_kv_move,
    .free = cpu_free,
};

/* ---- creation ---------------------------------------------------------------- */

/* Largest quantized activation row any matmul of the model needs. */
static infer_status max_act_row(const infer_model *m, size_t *out) {
    size_t best = 0, r;
    for (size_t i = 0; i < model_n_matrices(m); i++) {
        const weight *w = model_matrix(m, i);
        if (model_act_row_bytes(w->type, w->cols, &r) != INFER_OK) return INFER_EINVAL;
        if (r > best) best = r;
    }
    *out = best;
    return INFER_OK;
}

/* OpenBLAS runs inside our threads, one thread each. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

/* The per-thread scratch sizes: 1 on overflow. */
typedef struct {
    size_t scores, probs, qbuf, obuf, rows, rope, tmp;
} scratch_sizes;

static int scratch_sizes_for(const model_hparams *hp, int64_t att_block, size_t esz, int att_rows, scratch_sizes *s) {
    const size_t hd = hp->n_embd_head_k > hp->n_embd_head_v ? hp->n_embd_head_k : hp->n_embd_head_v;
    size_t cells;
    s->rope = (size_t)hp->n_rot + 2;
    s->tmp = hd;
    s->rows = 2 * (size_t)att_rows;
    return ck_mul((size_t)att_rows, (size_t)att_block, &cells) || ck_mul(cells, sizeof(float), &s->scores) ||
           ck_mul(cells, esz, &s->probs) || ck_mul((size_t)att_rows * hp->n_embd_head_k, esz, &s->qbuf) ||
           ck_mul((size_t)att_rows * hp->n_embd_head_v, sizeof(float), &s->obuf);
}

infer_status backend_cpu_new(const backend_config *cfg, backend **out, infer_error *err) {
    const infer_model *m = cfg->model;
    const model_hparams *hp = &m->hp;
    size_t esz = cfg->kv_type == INFER_TYPE_F32 ? 4 : 2, kv_bytes, qbytes;
    cpu_backend *c = infer_calloc(1, sizeof *c);
    if (!c) return set_error(err, INFER_ENOMEM, "out of memory for the CPU backend");
    pthread_once(&blas_once, blas_single_thread);
    c->base.ops = &CPU_OPS;
    c->m = m;
    c->hp = hp;
    c->kt = kernels_get();
    c->n_ctx = cfg->n_ctx;
    c->n_batch = cfg->n_batch;
    c->kv_type = cfg->kv_type;
    c->esz = esz;
    const int group = (int)(hp->n_head / hp->n_head_kv);
    c->att_qb = group >= ATT_ROWS ? 1 : ATT_ROWS / group;
    const int att_rows = c->att_qb * group;

    /* Sizes from validated hyperparameters, still multiplied with checks. */
    c->k_tiles = (uint32_t)(((size_t)cfg->n_ctx + KV_TILE - 1) / KV_TILE);
    size_t k_per_head = 0, v_layer = 0;
    int bad = ck_mul((size_t)hp->n_embd_head_k, esz, &c->k_head) || ck_mul((size_t)hp->n_embd_head_v, esz, &c->v_head) ||
              ck_mul((size_t)KV_TILE, c->k_head, &c->k_tile) || ck_mul((size_t)c->k_tiles, c->k_tile, &k_per_head) ||
              ck_mul((size_t)hp->n_head_kv, k_per_head, &c->k_layer) ||
              ck_mul((size_t)cfg->n_ctx, c->v_head, &c->v_per_head) ||
              ck_mul((size_t)hp->n_head_kv, c->v_per_head, &v_layer);
    bad = bad || ck_add(c->k_layer, v_layer, &c->layer_bytes) || ck_mul(c->layer_bytes, (size_t)hp->n_layer, &kv_bytes);
    bad = bad || max_act_row(m, &c->qact_row) != INFER_OK || ck_mul(c->qact_row, (size_t)cfg->n_batch, &qbytes);
    scratch_sizes ss;
    c->att_block = (int64_t)c->k_tiles * KV_TILE < ATT_BLOCK ? (int64_t)c->k_tiles * KV_TILE : ATT_BLOCK;
    bad = bad || scratch_sizes_for(hp, c->att_block, esz, att_rows, &ss);
    if (bad) {
        cpu_free(&c->base);
        return set_error(err, INFER_EINVAL, "context size overflows: lower n_ctx or n_batch");
    }
    c->arena = infer_malloc_array(cfg->arena_floats, sizeof(float));
    c->kv = infer_map(kv_bytes); /* zeroed */
    c->kv_bytes = kv_bytes;
    c->qact = infer_malloc(qbytes);
    int bad_ts = !c->arena || !c->kv || !c->qact;
    infer_status ps = bad_ts ? INFER_ENOMEM : pool_new(cfg->n_threads, &c->pool, err);
    if (ps != INFER_OK && !bad_ts) {
        cpu_free(&c->base);
        return ps;
    }
    if (!bad_ts) {
        c->n_ts = pool_size(c->pool);
        c->ts = infer_calloc((size_t)c->n_ts, sizeof *c->ts);
        bad_ts = !c->ts;
        for (int i = 0; !bad_ts && i < c->n_ts; i++) {
            thread_scratch *t = &c->ts[i];
            t->scores = infer_malloc(ss.scores);
            t->probs = infer_malloc(ss.probs);
            t->qbuf = infer_malloc(ss.qbuf);
            t->obuf = infer_malloc(ss.obuf);
            t->bbuf = infer_malloc(ss.obuf);
            t->bmax = infer_malloc_array(ss.rows, sizeof(float));
            t->bsum = infer_malloc_array(ss.rows, sizeof(double));
            t->rope = infer_malloc_array(ss.rope, sizeof(float));
            t->tmp = infer_malloc_array(ss.tmp, sizeof(float));
            bad_ts = !t->scores || !t->probs || !t->qbuf || !t->obuf || !t->bbuf || !t->bmax || !t->bsum || !t->rope ||
                     !t->tmp;
        }
    }
    if (bad_ts) {
        cpu_free(&c->base);
        return set_error(err, INFER_ENOMEM, "out of memory for the context (%zu MiB KV cache, %zu MiB activations)",
                         kv_bytes >> 20, (cfg->arena_floats * sizeof(float)) >> 20);
    }
    /* The threads split matmul rows at multiples of ROW_GROUP_TOKEN (or
     * ROW_GROUP, a multiple of it): repacked groups must not straddle them. */
    const int packs = c->kt->packed_rows > 0 && ROW_GROUP_TOKEN % c->kt->packed_rows == 0;
    infer_status s = model_packed(m, packs ? c->kt : NULL, c->pool, &c->packed, err);
    if (s != INFER_OK) {
        cpu_free(&c->base);
        return s;
    }
    *out = &c->base;
    return INFER_OK;
}
