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
 * Attention and the KV cache: backend_cpu_kv.c.
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

#include "backend_cpu_internal.h"

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
    if (!j.blas && pool_parts(c->pool) > 1 && pool_shares_init(c->pool, j.unit0[nw]))
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
void cpu_rope_table(const infer_model *m, float p, float *cs) {
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

/* Rotate one head in place by the angles of cpu_rope_table: pairs (i, i + 1)
 * or, NeoX, (i, i + n_rot / 2). One loop per layout, without a branch
 * inside, so that the compiler may vectorize it (the same arithmetic per
 * pair either way). */
void cpu_rope_apply(const model_hparams *hp, float *x, const float *cs) {
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
            cpu_rope_table(c->m, (float)pos, cs);
            ts->rope_pos = pos;
            ts->rope_valid = 1;
        }
        for (int h = 0; h < j->n_heads; h++) cpu_rope_apply(c->hp, row + (size_t)h * (size_t)j->head_dim, cs);
    }
}

static void cpu_rope(backend *b, act x, int n, int n_heads, int head_dim, uint32_t pos0) {
    cpu_backend *c = CPU(b);
    rope_job j = {c, A(b, x), n, n_heads, head_dim, pos0};
    if (n >= 4) pool_run(c->pool, rope_part, &j);
    else rope_part(&j, 0, 1, 0);
}

static void cpu_silu_mul(backend *b, act gate, act up, size_t count) {
    run_elem(CPU(b), A(b, gate), A(b, up), count, 1);
}

static void cpu_add(backend *b, act x, act y, size_t count) { run_elem(CPU(b), A(b, x), A(b, y), count, 0); }

static infer_status cpu_sync(backend *b, infer_error *err) { return INFER_OK; }

static const float *cpu_host(backend *b, act off, size_t count) { return A(b, off); }

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

/* llama.cpp's rule, per forward pass: n_threads for one token,
 * n_threads_batch for more. */
static void cpu_enter(backend *b, size_t n_tokens) {
    cpu_backend *c = CPU(b);
    pool_set_active(c->pool, n_tokens == 1 ? c->n_threads : c->n_threads_batch);
    pool_pin_caller(c->pool);
}
static void cpu_leave(backend *b) { pool_unpin_caller(CPU(b)->pool); }

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
    .enter = cpu_enter,
    .leave = cpu_leave,
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
    const pool_opts popts = {.cpu_mask = cfg->cpu_mask, .strict = cfg->cpu_strict, .poll = cfg->poll};
    infer_status ps = bad_ts ? INFER_ENOMEM : pool_new(cfg->n_threads > cfg->n_threads_batch ? cfg->n_threads : cfg->n_threads_batch, &popts,
                                                       &c->pool, err);
    if (ps != INFER_OK && !bad_ts) {
        cpu_free(&c->base);
        return ps;
    }
    if (!bad_ts) {
        c->n_ts = pool_size(c->pool);
        c->n_threads = cfg->n_threads < c->n_ts ? cfg->n_threads : c->n_ts;
        const int tb = cfg->n_threads_batch > 0 ? cfg->n_threads_batch : c->n_threads;
        c->n_threads_batch = tb < c->n_ts ? tb : c->n_ts;
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
