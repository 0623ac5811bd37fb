/*
 * backend_cpu_kv.c - the CPU backend's KV cache and attention (the rest
 * of the backend: backend_cpu.c).
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
 * tile's few KB. The cache is in huge pages where the system gives them (infer_map): it is read right after the
 * weights' stream has evicted it and its page tables from the caches
 * (measured: attention 10-15% faster in generation).
 */
#include <math.h>
#include <string.h>

#include "backend_cpu_internal.h"

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

void cpu_kv_store(backend *b, int layer, act k, act v, int n, uint32_t pos0) {
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
void cpu_attention(backend *b, int layer, act q, act out, int n, uint32_t pos0) {
    cpu_backend *c = CPU(b);
    attn_job j = {.c = c, .layer = layer, .n = n, .q = A(b, q), .out = A(b, out), .pos0 = pos0};
    const int64_t units = (int64_t)c->hp->n_head_kv * ((n + c->att_qb - 1) / c->att_qb);
    j.steal = pool_parts(c->pool) > 1 && pool_shares_init(c->pool, units);
    pool_run(c->pool, attention_part, &j);
}

infer_status cpu_kv_move(backend *b, uint32_t dst, uint32_t src, uint32_t n, infer_error *err) {
    cpu_backend *c = CPU(b);
    const model_hparams *hp = c->hp;
    const float delta = (float)dst - (float)src;
    float *tmp = c->ts[0].tmp, *cs = c->ts[0].rope;
    uint8_t *kq = c->ts[0].qbuf; /* one position's K in the cache type */
    cpu_rope_table(c->m, delta, cs);
    c->ts[0].rope_valid = 0; /* it holds delta's angles now */
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        for (uint32_t h = 0; h < hp->n_head_kv; h++) {
            /* dst < src: moving in increasing order never overwrites a source. */
            for (uint32_t i = 0; i < n; i++) {
                k_get(c, (int)l, h, src + i, kq);
                c->kt->dequantize(c->kv_type, kq, tmp, hp->n_embd_head_k);
                cpu_rope_apply(hp, tmp, cs);
                c->kt->quantize_act(c->kv_type, tmp, kq, hp->n_embd_head_k);
                k_put(c, (int)l, h, dst + i, kq);
            }
            memmove(v_at(c, (int)l, h, dst), v_at(c, (int)l, h, src), (size_t)n * c->v_head);
        }
    }
    return INFER_OK;
}
