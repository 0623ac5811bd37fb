/*
 * backend_cpu.c - the CPU backend: the op interface of backend.h on the
 * reference kernels (kernels/ref), with llama.cpp's numerics:
 *   - matmul activations quantized to the weight's vec_dot_type;
 *   - RMSNorm summed in double, scale = 1/sqrtf(mean + eps);
 *   - RoPE angles from a running float product, as ggml's rope cache;
 *   - attention with an F16 cache rounds q and the softmax weights to F16
 *     before the dot products, as ggml's mul_mat with F16 K and V does.
 *
 * All memory is allocated in backend_cpu_new; the ops allocate nothing.
 */
#include <math.h>
#include <string.h>

#include "backend.h"
#include "pool.h"
#include "ref/quants.h"

/* Per-thread scratch for attention. */
typedef struct {
    float *scores;   /* [n_ctx] attention weights of one head */
    uint16_t *h16;   /* [max(n_ctx, hd)] F16 scratch */
    float *tmp;      /* [2][max(hd_k, hd_v)] */
} thread_scratch;

typedef struct {
    backend base;
    const infer_model *m;
    const model_hparams *hp;
    uint32_t n_ctx, n_batch, kv_type;
    float *arena;          /* activations */
    uint8_t *kv;           /* n_layer x {K [n_ctx][k_row], V [n_ctx][v_row]} */
    size_t k_row, v_row;   /* bytes of one cached position */
    size_t layer_bytes;
    uint8_t *qact;         /* quantized activation rows [n_batch][qact_row] */
    size_t qact_row;
    pool *pool;            /* n_threads - 1 workers */
    thread_scratch *ts;    /* [n_ts] = pool_size */
    int n_ts;
} cpu_backend;

#define CPU(b) ((cpu_backend *)(b))

static float *A(backend *b, act off) { return CPU(b)->arena + off; }

/* ---- ops ------------------------------------------------------------------ */

static void cpu_get_rows(backend *b, const weight *w, const int32_t *ids, int n, act out) {
    float *o = A(b, out);
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)ids[t] * w->row_bytes;
        infer_ref_dequantize(w->type, row, o + (size_t)t * (size_t)w->cols, w->cols);
    }
}

static void cpu_rms_norm(backend *b, act x, act out, int n_rows, const weight *w, float eps) {
    const int64_t n = w->cols;
    const float *g = w->data;
    for (int r = 0; r < n_rows; r++) {
        const float *xr = A(b, x) + (size_t)r * (size_t)n;
        float *yr = A(b, out) + (size_t)r * (size_t)n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += (double)xr[i] * (double)xr[i];
        const float mean = (float)(sum / (double)n);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] * scale) * g[i];
    }
}

/* One matmul, split over threads: first the activation rows are quantized
 * (split by token), then the output rows (split by weight row). */
typedef struct {
    cpu_backend *c;
    const weight *w;
    const float *x;
    float *out;
    int n;
    uint32_t vt;
    size_t stride; /* bytes between quantized activation rows */
} matmul_job;

static void matmul_quantize_part(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t b, e;
    pool_range(j->n, ith, nth, &b, &e);
    for (int64_t t = b; t < e; t++) {
        infer_ref_quantize(j->vt, j->x + (size_t)t * (size_t)j->w->cols, j->c->qact + (size_t)t * j->stride, j->w->cols);
    }
}

static void matmul_rows_part(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    const weight *w = j->w;
    const void *acts = j->vt == INFER_TYPE_F32 ? (const void *)j->x : (const void *)j->c->qact;
    int64_t b, e;
    pool_range(w->rows, ith, nth, &b, &e);
    if (e > b) {
        infer_ref_matmul(w->type, (const uint8_t *)w->data + (size_t)b * w->row_bytes, w->row_bytes, e - b, w->cols,
                         acts, j->stride, j->n, j->out + b, (size_t)w->rows);
    }
}

static void cpu_matmul(backend *b, const weight *w, const weight *bias, act x, act out, int n) {
    cpu_backend *c = CPU(b);
    matmul_job j = {.c = c, .w = w, .x = A(b, x), .out = A(b, out), .n = n,
                    .vt = infer_ref_vec_dot_type(w->type), .stride = (size_t)w->cols * sizeof(float)};
    if (j.vt != INFER_TYPE_F32) {
        /* The row size was checked against qact_row when the context was made. */
        uint64_t rb = 0;
        infer_type_row_bytes(j.vt, (uint64_t)w->cols, &rb);
        j.stride = (size_t)rb;
        pool_run(c->pool, matmul_quantize_part, &j);
    }
    pool_run(c->pool, matmul_rows_part, &j);
    if (bias && bias->data) {
        const float *bv = bias->data;
        for (int t = 0; t < n; t++) {
            float *orow = j.out + (size_t)t * (size_t)w->rows;
            for (int64_t i = 0; i < w->rows; i++) orow[i] += bv[i];
        }
    }
}

/* Rotate one head in place by position p (may be negative: cache shifts). */
static void rope_head(const infer_model *m, float *x, float p) {
    const model_hparams *hp = &m->hp;
    const int n_rot = (int)hp->n_rot;
    const float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)n_rot);
    float theta = p;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float ff = m->rope_freq_factors ? m->rope_freq_factors[i0 / 2] : 1.0f;
        const float th = hp->rope_freq_scale * (theta / ff);
        const float cs = cosf(th), sn = sinf(th);
        int a = i0, bb = i0 + 1;
        if (hp->rope_type == ROPE_NEOX) {
            a = i0 / 2;
            bb = i0 / 2 + n_rot / 2;
        }
        const float x0 = x[a], x1 = x[bb];
        x[a] = x0 * cs - x1 * sn;
        x[bb] = x0 * sn + x1 * cs;
        theta *= theta_scale;
    }
}

static void cpu_rope(backend *b, act x, int n, int n_heads, int head_dim, uint32_t pos0) {
    const infer_model *m = CPU(b)->m;
    for (int t = 0; t < n; t++) {
        float *row = A(b, x) + (size_t)t * (size_t)n_heads * (size_t)head_dim;
        for (int h = 0; h < n_heads; h++) rope_head(m, row + (size_t)h * (size_t)head_dim, (float)(pos0 + (uint32_t)t));
    }
}

static uint8_t *k_at(cpu_backend *c, int layer, uint32_t pos) {
    return c->kv + (size_t)layer * c->layer_bytes + (size_t)pos * c->k_row;
}

static uint8_t *v_at(cpu_backend *c, int layer, uint32_t pos) {
    return c->kv + (size_t)layer * c->layer_bytes + (size_t)c->n_ctx * c->k_row + (size_t)pos * c->v_row;
}

/* Store n floats into a cache row of the cache's type. */
static void cache_put(uint32_t type, uint8_t *dst, const float *src, size_t n) {
    if (type == INFER_TYPE_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = infer_f32_to_f16(src[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
    }
}

static void cache_get(uint32_t type, const uint8_t *src, float *dst, size_t n) {
    infer_ref_dequantize(type, src, dst, (int64_t)n);
}

static void cpu_kv_store(backend *b, int layer, act k, act v, int n, uint32_t pos0) {
    cpu_backend *c = CPU(b);
    const size_t nk = (size_t)c->hp->n_head_kv * c->hp->n_embd_head_k;
    const size_t nv = (size_t)c->hp->n_head_kv * c->hp->n_embd_head_v;
    for (int t = 0; t < n; t++) {
        cache_put(c->kv_type, k_at(c, layer, pos0 + (uint32_t)t), A(b, k) + (size_t)t * nk, nk);
        cache_put(c->kv_type, v_at(c, layer, pos0 + (uint32_t)t), A(b, v) + (size_t)t * nv, nv);
    }
}

/* Dot of a float query (rounded to F16 first for an F16 cache) with a
 * cached key row of hd values. */
static float key_dot(const cpu_backend *c, const float *q, const uint16_t *q16, const uint8_t *krow, int hd) {
    float s = 0.0f;
    if (c->kv_type == INFER_TYPE_F32) {
        for (int d = 0; d < hd; d++) {
            float kv;
            memcpy(&kv, krow + 4 * (size_t)d, 4);
            s += q[d] * kv;
        }
    } else {
        for (int d = 0; d < hd; d++) {
            uint16_t kh;
            memcpy(&kh, krow + 2 * (size_t)d, 2);
            s += infer_f16_to_f32(q16[d]) * infer_f16_to_f32(kh);
        }
    }
    return s;
}

typedef struct {
    cpu_backend *c;
    int layer, n;
    act q, out;
    uint32_t pos0;
} attn_job;

/* One head of one query row: softmax(q.K / sqrt(hd)) V over positions 0..pos. */
static void attend_one(cpu_backend *c, thread_scratch *ts, int layer, const float *qh, float *oh, uint32_t n_kv, int kvh) {
    const model_hparams *hp = c->hp;
    const int hdk = (int)hp->n_embd_head_k, hdv = (int)hp->n_embd_head_v;
    const float scale = 1.0f / sqrtf((float)hdk);
    const size_t esz = c->kv_type == INFER_TYPE_F32 ? 4 : 2;
    if (c->kv_type != INFER_TYPE_F32) {
        for (int d = 0; d < hdk; d++) ts->h16[d] = infer_f32_to_f16(qh[d]);
    }
    float mx = -INFINITY;
    for (uint32_t j = 0; j < n_kv; j++) {
        const uint8_t *kr = k_at(c, layer, j) + (size_t)kvh * (size_t)hdk * esz;
        float s = key_dot(c, qh, ts->h16, kr, hdk) * scale;
        ts->scores[j] = s;
        if (s > mx) mx = s;
    }
    double sum = 0.0;
    for (uint32_t j = 0; j < n_kv; j++) {
        float e = expf(ts->scores[j] - mx);
        ts->scores[j] = e;
        sum += (double)e;
    }
    const float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    for (uint32_t j = 0; j < n_kv; j++) {
        float p = ts->scores[j] * inv;
        /* An F16 V cache multiplies F16 weights, as ggml does. */
        ts->scores[j] = esz == 2 ? infer_f16_to_f32(infer_f32_to_f16(p)) : p;
    }
    float *acc = ts->tmp, *vrow = ts->tmp + hdv;
    for (int d = 0; d < hdv; d++) acc[d] = 0.0f;
    for (uint32_t j = 0; j < n_kv; j++) {
        const uint8_t *vr = v_at(c, layer, j) + (size_t)kvh * (size_t)hdv * esz;
        cache_get(c->kv_type, vr, vrow, (size_t)hdv);
        for (int d = 0; d < hdv; d++) acc[d] += ts->scores[j] * vrow[d];
    }
    memcpy(oh, acc, (size_t)hdv * sizeof(float));
}

static void attention_part(void *arg, int ith, int nth) {
    attn_job *j = arg;
    cpu_backend *c = j->c;
    const model_hparams *hp = c->hp;
    const int64_t nh = hp->n_head;
    const int group = (int)(hp->n_head / hp->n_head_kv);
    int64_t b, e;
    pool_range((int64_t)j->n * nh, ith, nth, &b, &e);
    for (int64_t i = b; i < e; i++) {
        const int t = (int)(i / nh), h = (int)(i % nh);
        const float *qh = A(&c->base, j->q) + (size_t)i * hp->n_embd_head_k;
        float *oh = A(&c->base, j->out) + (size_t)i * hp->n_embd_head_v;
        attend_one(c, &c->ts[ith], j->layer, qh, oh, j->pos0 + (uint32_t)t + 1, h / group);
    }
}

static void cpu_attention(backend *b, int layer, act q, act out, int n, uint32_t pos0) {
    attn_job j = {CPU(b), layer, n, q, out, pos0};
    pool_run(CPU(b)->pool, attention_part, &j);
}

static void cpu_silu_mul(backend *b, act gate, act up, size_t count) {
    float *g = A(b, gate);
    const float *u = A(b, up);
    for (size_t i = 0; i < count; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void cpu_add(backend *b, act x, act y, size_t count) {
    float *xs = A(b, x);
    const float *ys = A(b, y);
    for (size_t i = 0; i < count; i++) xs[i] += ys[i];
}

static infer_status cpu_sync(backend *b, infer_error *err) { return INFER_OK; }

static const float *cpu_host(backend *b, act off, size_t count) { return A(b, off); }

static void cpu_kv_move(backend *b, uint32_t dst, uint32_t src, uint32_t n) {
    cpu_backend *c = CPU(b);
    const model_hparams *hp = c->hp;
    const float delta = (float)dst - (float)src;
    const size_t head_bytes = (size_t)hp->n_embd_head_k * (c->kv_type == INFER_TYPE_F32 ? 4 : 2);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        for (uint32_t i = 0; i < n; i++) {
            /* dst < src: moving in increasing order never overwrites a source. */
            for (uint32_t h = 0; h < hp->n_head_kv; h++) {
                float *tmp = c->ts[0].tmp;
                cache_get(c->kv_type, k_at(c, (int)l, src + i) + h * head_bytes, tmp, hp->n_embd_head_k);
                rope_head(c->m, tmp, delta);
                cache_put(c->kv_type, k_at(c, (int)l, dst + i) + h * head_bytes, tmp, hp->n_embd_head_k);
            }
            memmove(v_at(c, (int)l, dst + i), v_at(c, (int)l, src + i), c->v_row);
        }
    }
}

static void cpu_free(backend *b) {
    cpu_backend *c = CPU(b);
    if (!c) return;
    infer_free(c->arena);
    infer_free(c->kv);
    infer_free(c->qact);
    pool_free(c->pool);
    for (int i = 0; c->ts && i < c->n_ts; i++) {
        infer_free(c->ts[i].scores);
        infer_free(c->ts[i].h16);
        infer_free(c->ts[i].tmp);
    }
    infer_free(c->ts);
    infer_free(c);
}

static const backend_ops CPU_OPS = {
    .get_rows = cpu_get_rows,
    .rms_norm = cpu_rms_norm,
    .matmul = cpu_matmul,
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
    const weight *ws[8];
    for (uint32_t il = 0; il <= m->hp.n_layer; il++) {
        size_t nw = 0;
        if (il < m->hp.n_layer) {
            const layer_weights *L = &m->layers[il];
            const weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (size_t k = 0; k < 7; k++) ws[nw++] = lw[k];
        } else {
            ws[nw++] = &m->output;
        }
        for (size_t k = 0; k < nw; k++) {
            if (model_act_row_bytes(ws[k]->type, ws[k]->cols, &r) != INFER_OK) return INFER_EINVAL;
            if (r > best) best = r;
        }
    }
    *out = best;
    return INFER_OK;
}

infer_status backend_cpu_new(const backend_config *cfg, backend **out, infer_error *err) {
    const infer_model *m = cfg->model;
    const model_hparams *hp = &m->hp;
    size_t esz = cfg->kv_type == INFER_TYPE_F32 ? 4 : 2, kv_bytes, qbytes;
    cpu_backend *c = infer_calloc(1, sizeof *c);
    if (!c) return set_error(err, INFER_ENOMEM, "out of memory for the CPU backend");
    c->base.ops = &CPU_OPS;
    c->m = m;
    c->hp = hp;
    c->n_ctx = cfg->n_ctx;
    c->n_batch = cfg->n_batch;
    c->kv_type = cfg->kv_type;

    /* Sizes from validated hyperparameters, still multiplied with checks. */
    int bad = ck_mul((size_t)hp->n_head_kv * hp->n_embd_head_k, esz, &c->k_row) ||
              ck_mul((size_t)hp->n_head_kv * hp->n_embd_head_v, esz, &c->v_row);
    size_t per_pos = 0;
    bad = bad || ck_add(c->k_row, c->v_row, &per_pos) || ck_mul(per_pos, (size_t)cfg->n_ctx, &c->layer_bytes) ||
          ck_mul(c->layer_bytes, (size_t)hp->n_layer, &kv_bytes);
    bad = bad || max_act_row(m, &c->qact_row) != INFER_OK || ck_mul(c->qact_row, (size_t)cfg->n_batch, &qbytes);
    if (bad) {
        cpu_free(&c->base);
        return set_error(err, INFER_EINVAL, "context size overflows: lower n_ctx or n_batch");
    }
    size_t hd = hp->n_embd_head_k > hp->n_embd_head_v ? hp->n_embd_head_k : hp->n_embd_head_v;
    size_t n16 = cfg->n_ctx > hd ? cfg->n_ctx : hd;
    c->arena = infer_malloc_array(cfg->arena_floats, sizeof(float));
    c->kv = infer_calloc(kv_bytes, 1);
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
            c->ts[i].scores = infer_malloc_array(cfg->n_ctx, sizeof(float));
            c->ts[i].h16 = infer_malloc_array(n16, sizeof(uint16_t));
            c->ts[i].tmp = infer_malloc_array(2 * hd, sizeof(float));
            bad_ts = !c->ts[i].scores || !c->ts[i].h16 || !c->ts[i].tmp;
        }
    }
    if (bad_ts) {
        cpu_free(&c->base);
        return set_error(err, INFER_ENOMEM, "out of memory for the context (%zu MiB KV cache, %zu MiB activations)",
                         kv_bytes >> 20, (cfg->arena_floats * sizeof(float)) >> 20);
    }
    *out = &c->base;
    return INFER_OK;
}
