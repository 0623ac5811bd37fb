/*
 * backend_vulkan_ops.c - the ops of backend.h on Vulkan. Each op records
 * dispatches into the context's command buffer (begun by the first op of
 * a pass) followed by a pipeline barrier; sync submits and waits once.
 *
 * Operands are addressed through windows (see backend_vulkan.h): an op
 * places each window at the aligned offset just below its operand and
 * passes the operand's offset inside the window. An op whose operands do
 * not fit one window is split by tokens (or rows, or elements). All
 * offsets, spans and dispatch sizes are computed with checked arithmetic;
 * a failure is latched and reported by sync.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend_vulkan.h"

#define VKB(b) ((vk_backend *)(b))

void vkb_fail(vk_backend *v, infer_status s, const char *fmt, ...) {
    if (v->status != INFER_OK) return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    v->status = s;
}

static void profile_begin(vk_backend *v);

int vkb_begin(vk_backend *v) {
    if (v->status != INFER_OK) return 0;
    if (v->broken) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: the device failed earlier in this context; make a new context");
        return 0;
    }
    if (v->recording) return 1;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(v->cmd, &bi);
    if (r != VK_SUCCESS) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: vkBeginCommandBuffer failed: %s", vk_result_name(r));
        return 0;
    }
    v->recording = 1;
    profile_begin(v);
    return 1;
}

/* ---- windows, descriptor binding, dispatch --------------------------------------- */

/* One dispatch's bindings: windows A, B, C onto the arena (dynamic
 * offsets), a weight chunk's set, a layer's set and its KV window. */
typedef struct {
    uint32_t dyn[VK_N_DYNAMIC_CTX];
    VkDescriptorSet wset;
    const vk_layer_kv *layer;
    uint32_t kv_dyn;
} vk_binds;

/* Place a window of `win` bytes in a buffer of `size` bytes so that it
 * covers [lo, lo + bytes): *dyn is its offset, *local the operand's offset
 * inside it in 4-byte words. 0 when the span does not fit a window. */
static int place(VkDeviceSize size, VkDeviceSize win, VkDeviceSize align, uint64_t lo, uint64_t bytes, uint32_t *dyn,
                 uint32_t *local) {
    uint64_t hi;
    if (ck_add(lo, bytes, &hi) || hi > size || bytes > win) return 0;
    uint64_t at = lo & ~(uint64_t)(align - 1);
    if (at + win > size) at = size - win; /* both aligned */
    if (hi - at > win || at > UINT32_MAX || (lo - at) % 4 != 0 || (lo - at) / 4 > UINT32_MAX) return 0;
    *dyn = (uint32_t)at;
    *local = (uint32_t)((lo - at) / 4);
    return 1;
}

/* Window `slot` over arena floats [off, off + count); *local in floats. */
static int arena_window(vk_backend *v, vk_binds *bd, int slot, size_t off, size_t count, uint32_t *local) {
    uint64_t lo, bytes;
    if (ck_mul((uint64_t)off, (uint64_t)4, &lo) || ck_mul((uint64_t)count, (uint64_t)4, &bytes) ||
        !place(v->arena.size, v->win, v->d->ssbo_align, lo, bytes, &bd->dyn[slot], local)) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: arena range [%zu, +%zu) floats does not fit a %llu-byte window", off, count,
                 (unsigned long long)v->win);
        return 0;
    }
    return 1;
}

/* Arena floats a window holds. */
static size_t win_floats(const vk_backend *v) { return (size_t)(v->win / 4); }

static void barrier(vk_backend *v) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkCmdPipelineBarrier(v->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
}

/* Bind, push 16 words, dispatch enough workgroups for `items` (capped:
 * the shaders stride over any remainder), then a barrier. per_wg is the
 * number of items one workgroup takes per pass. */
static void dispatch(vk_backend *v, const char *label, VkPipeline pipe, const vk_binds *bd, const uint32_t push[16],
                     uint64_t items, uint64_t per_wg) {
    if (v->status != INFER_OK || items == 0) return;
    if (!pipe) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: internal: no pipeline for an op");
        return;
    }
    VkCommandBuffer cb = v->cmd;
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, v->d->layout, VKS_CTX, 1, &v->set0, VK_N_DYNAMIC_CTX,
                            bd->dyn);
    const VkDescriptorSet wset = bd->wset ? bd->wset : v->dummy_set;
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, v->d->layout, VKS_WEIGHT, 1, &wset, 0, NULL);
    if (bd->layer) {
        vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, v->d->layout, VKS_LAYER, 1, &bd->layer->set, 1,
                                &bd->kv_dyn);
    }
    vkCmdPushConstants(cb, v->d->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_BYTES, push);
    uint64_t groups = items / per_wg + (items % per_wg != 0);
    if (groups > v->d->max_groups) groups = v->d->max_groups;
    vkCmdDispatch(cb, (uint32_t)groups, 1, 1);
    barrier(v);
    if (v->prof.pool && v->prof.used < VK_PROF_QUERIES) {
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, v->prof.pool, v->prof.used);
        v->prof.label[v->prof.used++] = label;
    }
}

/* INFER_VK_PROFILE=1: time of each dispatch (timestamps after each one),
 * summed by op; printed to stderr when the context is freed. */
static void profile_begin(vk_backend *v) {
    if (!v->prof.pool) return;
    vkCmdResetQueryPool(v->cmd, v->prof.pool, 0, VK_PROF_QUERIES);
    vkCmdWriteTimestamp(v->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, v->prof.pool, 0);
    v->prof.label[0] = NULL;
    v->prof.used = 1;
}

static void profile_collect(vk_backend *v) {
    if (!v->prof.pool || v->prof.used < 2) return;
    uint64_t ts[VK_PROF_QUERIES];
    if (vkGetQueryPoolResults(v->d->dev, v->prof.pool, 0, v->prof.used, sizeof ts, ts, sizeof ts[0],
                              VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS) {
        return;
    }
    const double period = v->d->props.limits.timestampPeriod;
    for (uint32_t i = 1; i < v->prof.used; i++) {
        int k = 0;
        while (k < v->prof.n && strcmp(v->prof.names[k], v->prof.label[i])) k++;
        if (k == v->prof.n) {
            if (k == VK_PROF_OPS) continue;
            v->prof.names[v->prof.n++] = v->prof.label[i];
        }
        v->prof.ns[k] += (double)(ts[i] - ts[i - 1]) * period;
        v->prof.count[k]++;
    }
    v->prof.passes++;
}

void vk_profile_report(vk_backend *v) {
    if (!v->prof.pool || !v->prof.passes) return;
    double total = 0.0;
    for (int k = 0; k < v->prof.n; k++) total += v->prof.ns[k];
    fprintf(stderr, "infer: Vulkan profile, %llu passes, %.3f ms per pass:\n", (unsigned long long)v->prof.passes,
            total / 1e6 / (double)v->prof.passes);
    for (int k = 0; k < v->prof.n; k++) {
        fprintf(stderr, "  %-22s %10.3f ms per pass %6.1f%% %8.1f calls per pass\n", v->prof.names[k],
                v->prof.ns[k] / 1e6 / (double)v->prof.passes, total > 0 ? 100.0 * v->prof.ns[k] / total : 0.0,
                (double)v->prof.count[k] / (double)v->prof.passes);
    }
}

/* Items per workgroup: lane shaders take one item per group of lanes
 * (several subgroups per workgroup), plain shaders one per invocation. */
static uint64_t lane_groups_per_wg(const vk_backend *v) {
    uint64_t n = v->d->subgroups ? v->d->wg / v->d->sg_size : 1;
    return n ? n : 1;
}

/* Words in the upload area for this pass; NULL (failure latched) when full. */
static uint32_t *upload_alloc(vk_backend *v, size_t words, uint32_t *off) {
    size_t end;
    if (ck_add(v->upload_used, words, &end) || end > v->upload_words || v->upload_used > UINT32_MAX) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: upload area full (%zu words)", v->upload_words);
        return NULL;
    }
    *off = (uint32_t)v->upload_used;
    uint32_t *p = (uint32_t *)v->upload.map + v->upload_used;
    v->upload_used = end;
    return p;
}

/* cos/sin of the RoPE angles of positions p0, p0 + 1, ... (n of them),
 * computed exactly as the CPU backend's rope_head: a running float product
 * for theta, then freq_scale * (theta / factor). */
static int rope_table(vk_backend *v, float p0, uint32_t n, int consecutive, uint32_t *off) {
    const model_hparams *hp = v->hp;
    const uint32_t half = hp->n_rot / 2;
    size_t words;
    if (ck_mul((size_t)n, (size_t)half * 2, &words)) return 0;
    uint32_t *t = upload_alloc(v, words, off);
    if (!t) return 0;
    const float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
    for (uint32_t k = 0; k < n; k++) {
        float theta = consecutive ? (float)((uint32_t)p0 + k) : p0;
        for (uint32_t i = 0; i < half; i++) {
            const float ff = v->m->rope_freq_factors ? v->m->rope_freq_factors[i] : 1.0f;
            const float th = hp->rope_freq_scale * (theta / ff);
            float c = cosf(th), s = sinf(th);
            memcpy(&t[2 * ((size_t)k * half + i)], &c, 4);
            memcpy(&t[2 * ((size_t)k * half + i) + 1], &s, 4);
            theta *= theta_scale;
        }
    }
    return 1;
}

static void note_output(vk_backend *v, act off, size_t count) {
    v->out_off = off;
    v->out_count = count;
}

/* ---- ops ------------------------------------------------------------------------------- */

static void vk_get_rows(backend *b, const weight *w, const int32_t *ids, int n, act out) {
    vk_backend *v = VKB(b);
    const vk_tensor *t = vk_tensor_of(v->w, w);
    if (!vkb_begin(v)) return;
    if (!t || t->plain || !v->p.get_rows[t->type]) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: get_rows: tensor %d is not on the device", w->index);
        return;
    }
    const size_t per = win_floats(v) / t->cols; /* tokens per window */
    if (per == 0) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: get_rows: a row of %u values exceeds the window", t->cols);
        return;
    }
    for (int t0 = 0; t0 < n; t0 += (int)per) {
        const int nt = n - t0 < (int)per ? n - t0 : (int)per;
        /* The window's ids once, for every chunk: n words a pass whatever
         * the chunk count (the upload area holds n_batch of them). */
        uint32_t ids_off;
        uint32_t *u = upload_alloc(v, (size_t)nt, &ids_off);
        if (!u) return;
        for (int k = 0; k < nt; k++) u[k] = (uint32_t)ids[t0 + k];
        for (uint32_t c = 0; c < t->n_chunks; c++) {
            const vk_chunk *ch = &t->chunks[c];
            int any = 0;
            for (int k = 0; k < nt && !any; k++) {
                const uint32_t id = (uint32_t)ids[t0 + k];
                any = id >= ch->row0 && id - ch->row0 < ch->rows;
            }
            if (!any) continue;
            vk_binds bd = {.wset = ch->set};
            uint32_t o;
            if (!arena_window(v, &bd, 1, out + (size_t)t0 * t->cols, (size_t)nt * t->cols, &o)) return;
            const uint32_t push[16] = {(uint32_t)nt, t->cols, t->units, t->row_texels, ids_off, o, ch->row0, ch->rows};
            dispatch(v, "get_rows", v->p.get_rows[t->type], &bd, push, (uint64_t)nt * t->units, 64);
        }
    }
    note_output(v, out, (size_t)n * t->cols);
}

static void vk_rms_norm(backend *b, act x, act out, int n_rows, const weight *w, float eps) {
    vk_backend *v = VKB(b);
    const vk_tensor *t = vk_tensor_of(v->w, w);
    if (!vkb_begin(v)) return;
    if (!t || !t->plain) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: rms_norm: weight %d is not on the device", w->index);
        return;
    }
    const size_t n = t->cols, per = win_floats(v) / n;
    if (per == 0) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: rms_norm: a row of %zu values exceeds the window", n);
        return;
    }
    for (size_t r0 = 0; r0 < (size_t)n_rows; r0 += per) {
        const size_t nr = (size_t)n_rows - r0 < per ? (size_t)n_rows - r0 : per;
        vk_binds bd = {.wset = t->chunks[0].set};
        uint32_t xo, oo;
        if (!arena_window(v, &bd, 0, x + r0 * n, nr * n, &xo) || !arena_window(v, &bd, 1, out + r0 * n, nr * n, &oo)) return;
        uint32_t push[16] = {(uint32_t)n, (uint32_t)nr, xo, oo};
        memcpy(&push[4], &eps, 4);
        dispatch(v, "rms_norm", v->p.rms_norm, &bd, push, nr, v->d->norm_wg ? 1 : lane_groups_per_wg(v));
    }
    note_output(v, out, (size_t)n_rows * n);
}

/* out[t] (+)= W x[t]: activations converted into XQ (quantize_act), then
 * one dispatch per weight chunk; tokens in batches XQ and windows hold. */
static void vk_matmul(backend *b, const weight *w, const weight *bias, act x, act out, int n) {
    vk_backend *v = VKB(b);
    const vk_tensor *t = vk_tensor_of(v->w, w);
    if (!vkb_begin(v)) return;
    const int mv = n == 1;
    if (!t || t->plain || !(mv ? v->p.mv[t->type] : v->p.mm[t->type])) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: matmul: weight %d is not on the device", w->index);
        return;
    }
    const vk_tensor *bt = bias && bias->data ? vk_tensor_of(v->w, bias) : NULL;
    if (bias && bias->data && (!bt || !bt->plain || bt->cols != t->rows)) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: matmul: bias %d is not on the device", bias->index);
        return;
    }
    size_t per = v->xq_units / t->units;
    if (win_floats(v) / t->cols < per) per = win_floats(v) / t->cols;
    if (win_floats(v) / t->rows < per) per = win_floats(v) / t->rows;
    if (per == 0) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: matmul: one token of weight %d exceeds the buffers", w->index);
        return;
    }
    const uint32_t mode = vk_act_mode(t->type);
    const uint32_t R = mv ? vk_mv_rows(v->d, t->type) : 4, TN = mv ? 1 : 4;
    for (size_t t0 = 0; t0 < (size_t)n; t0 += per) {
        const size_t nt = (size_t)n - t0 < per ? (size_t)n - t0 : per;
        vk_binds bq = {0};
        uint32_t xo;
        if (!arena_window(v, &bq, 0, x + t0 * t->cols, nt * t->cols, &xo)) return;
        const uint32_t qpush[16] = {(uint32_t)nt, t->cols, t->units, mode, xo, t->cols};
        dispatch(v, "quantize_act", v->p.quantize, &bq, qpush, (uint64_t)nt * t->units, 64);
        for (uint32_t c = 0; c < t->n_chunks; c++) {
            const vk_chunk *ch = &t->chunks[c];
            vk_binds bd = {.wset = ch->set};
            uint32_t oo;
            const size_t span = (nt - 1) * t->rows + ch->rows;
            if (!arena_window(v, &bd, 1, out + t0 * t->rows + ch->row0, span, &oo)) return;
            const uint32_t push[16] = {ch->rows, (uint32_t)nt, t->units, t->row_texels, oo, t->rows};
            const uint64_t groups = (uint64_t)((ch->rows + R - 1) / R) * ((nt + TN - 1) / TN);
            dispatch(v, mv ? "matmul (mat x vec)" : "matmul (mat x mat)", mv ? v->p.mv[t->type] : v->p.mm[t->type], &bd, push, groups, lane_groups_per_wg(v));
        }
        if (bt) {
            vk_binds bd = {.wset = bt->chunks[0].set};
            uint32_t oo;
            if (!arena_window(v, &bd, 0, out + t0 * t->rows, nt * t->rows, &oo)) return;
            const uint32_t push[16] = {2, (uint32_t)(nt * t->rows), oo, 0, t->rows};
            dispatch(v, "bias", v->p.elementwise, &bd, push, nt * t->rows, 64);
        }
    }
    note_output(v, out, (size_t)n * t->rows);
}

static void vk_rope(backend *b, act x, int n, int n_heads, int head_dim, uint32_t pos0) {
    vk_backend *v = VKB(b);
    if (!vkb_begin(v)) return;
    const model_hparams *hp = v->hp;
    /* Every rope of a pass uses the same positions: one table per pass. */
    if (!(v->table_valid && v->table_pos0 == pos0 && v->table_n == (uint32_t)n)) {
        uint32_t off;
        if (!rope_table(v, (float)pos0, (uint32_t)n, 1, &off)) {
            vkb_fail(v, INFER_EBACKEND, "Vulkan: rope: no room for the angle table");
            return;
        }
        v->table_valid = 1;
        v->table_pos0 = pos0;
        v->table_n = (uint32_t)n;
        v->table_off = off;
    }
    const size_t row = (size_t)n_heads * (size_t)head_dim, per = win_floats(v) / row;
    if (per == 0) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: rope: a row exceeds the window");
        return;
    }
    const uint32_t half = hp->n_rot / 2;
    for (size_t t0 = 0; t0 < (size_t)n; t0 += per) {
        const size_t nt = (size_t)n - t0 < per ? (size_t)n - t0 : per;
        vk_binds bd = {0};
        uint32_t xo;
        if (!arena_window(v, &bd, 0, x + t0 * row, nt * row, &xo)) return;
        const uint32_t push[16] = {(uint32_t)nt, (uint32_t)n_heads, (uint32_t)head_dim, hp->n_rot,
                                   hp->rope_type == ROPE_NEOX, xo, (uint32_t)(v->table_off + t0 * half * 2)};
        dispatch(v, "rope", v->p.rope, &bd, push, (uint64_t)nt * (uint64_t)n_heads * half, 64);
    }
}

/* Bytes of one cached position of K (part 0) or V (part 1). */
static size_t kv_row_bytes(const vk_backend *v, int part) {
    const size_t esz = v->kv_type == INFER_TYPE_F32 ? 4 : 2;
    return (size_t)v->hp->n_head_kv * (part ? v->hdv_pad : v->hdk_pad) * esz;
}

/* Place the layer's KV window over positions [pos, pos + n) of a part. */
static int kv_window(vk_backend *v, vk_binds *bd, const vk_layer_kv *L, int part, uint32_t pos, uint32_t n,
                     uint32_t *local) {
    const uint64_t rb = kv_row_bytes(v, part);
    uint64_t lo = (part ? L->v_off : 0) + (uint64_t)pos * rb, bytes = (uint64_t)n * rb;
    bd->layer = L;
    if (!place(L->b.size, v->kv_win, v->d->ssbo_align, lo, bytes, &bd->kv_dyn, local)) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: KV positions [%u, +%u) do not fit the window", pos, n);
        return 0;
    }
    return 1;
}

static void vk_kv_store(backend *b, int layer, act k, act vv, int n, uint32_t pos0) {
    vk_backend *v = VKB(b);
    if (!vkb_begin(v)) return;
    const model_hparams *hp = v->hp;
    const vk_layer_kv *L = &v->kv[layer];
    for (int part = 0; part < 2; part++) {
        const uint32_t hd = part ? hp->n_embd_head_v : hp->n_embd_head_k, pad = part ? v->hdv_pad : v->hdk_pad;
        const size_t row = (size_t)hp->n_head_kv * hd;
        size_t per = win_floats(v) / row;
        if (v->kv_win / kv_row_bytes(v, part) < per) per = (size_t)(v->kv_win / kv_row_bytes(v, part));
        if (per == 0) {
            vkb_fail(v, INFER_EBACKEND, "Vulkan: kv_store: a row exceeds the window");
            return;
        }
        for (size_t t0 = 0; t0 < (size_t)n; t0 += per) {
            const size_t nt = (size_t)n - t0 < per ? (size_t)n - t0 : per;
            vk_binds bd = {0};
            uint32_t so, dof;
            if (!arena_window(v, &bd, 0, (part ? vv : k) + t0 * row, nt * row, &so) ||
                !kv_window(v, &bd, L, part, pos0 + (uint32_t)t0, (uint32_t)nt, &dof)) {
                return;
            }
            const uint32_t f16 = v->kv_type != INFER_TYPE_F32;
            const uint32_t push[16] = {(uint32_t)nt, hp->n_head_kv, hd, pad, f16, so, dof};
            const uint64_t words = (uint64_t)nt * hp->n_head_kv * (f16 ? pad / 2 : pad);
            dispatch(v, "kv_store", v->p.kv_store, &bd, push, words, 64);
        }
    }
}

static void vk_attention(backend *b, int layer, act q, act out, int n, uint32_t pos0) {
    vk_backend *v = VKB(b);
    if (!vkb_begin(v)) return;
    const model_hparams *hp = v->hp;
    const size_t qrow = (size_t)hp->n_head * hp->n_embd_head_k, orow = (size_t)hp->n_head * hp->n_embd_head_v;
    size_t per = win_floats(v) / (qrow > orow ? qrow : orow);
    if (per == 0) {
        vkb_fail(v, INFER_EBACKEND, "Vulkan: attention: a row exceeds the window");
        return;
    }
    const float scale = 1.0f / sqrtf((float)hp->n_embd_head_k);
    for (size_t t0 = 0; t0 < (size_t)n; t0 += per) {
        const size_t nt = (size_t)n - t0 < per ? (size_t)n - t0 : per;
        vk_binds bd = {.layer = &v->kv[layer]};
        uint32_t qo, oo;
        if (!arena_window(v, &bd, 0, q + t0 * qrow, nt * qrow, &qo) || !arena_window(v, &bd, 1, out + t0 * orow, nt * orow, &oo))
            return;
        uint32_t push[16] = {(uint32_t)nt, pos0 + (uint32_t)t0, hp->n_head, hp->n_head_kv, hp->n_embd_head_k,
                             hp->n_embd_head_v, v->hdk_pad / 4, v->hdv_pad / 4, qo, oo, 0,
                             v->kv_type != INFER_TYPE_F32};
        memcpy(&push[10], &scale, 4);
        dispatch(v, "attention", v->p.attention, &bd, push, (uint64_t)nt * hp->n_head, lane_groups_per_wg(v));
    }
    note_output(v, out, (size_t)n * orow);
}

/* Element-wise op (elementwise.comp modes 0, 1) in window-sized pieces. */
static void elementwise(vk_backend *v, uint32_t mode, act a, act b2, size_t count) {
    if (!vkb_begin(v)) return;
    const size_t per = win_floats(v) < UINT32_MAX ? win_floats(v) : UINT32_MAX;
    for (size_t i0 = 0; i0 < count; i0 += per) {
        const size_t ni = count - i0 < per ? count - i0 : per;
        vk_binds bd = {0};
        uint32_t ao, bo;
        if (!arena_window(v, &bd, 0, a + i0, ni, &ao) || !arena_window(v, &bd, 1, b2 + i0, ni, &bo)) return;
        const uint32_t push[16] = {mode, (uint32_t)ni, ao, bo, 1};
        dispatch(v, mode ? "add" : "silu_mul", v->p.elementwise, &bd, push, ni, 64);
    }
    note_output(v, a, count);
}

static void vk_silu_mul(backend *b, act gate, act up, size_t count) { elementwise(VKB(b), 0, gate, up, count); }
static void vk_add(backend *b, act x, act y, size_t count) { elementwise(VKB(b), 1, x, y, count); }

/* Submit what is recorded and wait; the step's output is copied to the
 * readback buffer first. */
static infer_status vk_sync(backend *b, infer_error *err) {
    vk_backend *v = VKB(b);
    if (v->status != INFER_OK) {
        if (v->recording) {
            vkEndCommandBuffer(v->cmd);
            vkResetCommandBuffer(v->cmd, 0);
            v->recording = 0;
        }
        infer_status s = set_error(err, v->status, "%s", v->msg);
        v->status = INFER_OK;
        v->upload_used = 0;
        v->table_valid = 0;
        v->rb_count = 0;
        return s;
    }
    if (!v->recording) return INFER_OK;
    size_t count = v->out_count;
    uint64_t bytes, src;
    if (ck_mul((uint64_t)count, (uint64_t)4, &bytes) || bytes > v->readback.size ||
        ck_mul((uint64_t)v->out_off, (uint64_t)4, &src) || src + bytes > v->arena.size) {
        count = 0;
    }
    if (count) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT};
        vkCmdPipelineBarrier(v->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0,
                             NULL, 0, NULL);
        VkBufferCopy region = {.srcOffset = src, .dstOffset = 0, .size = bytes};
        vkCmdCopyBuffer(v->cmd, v->arena.buf, v->readback.buf, 1, &region);
        VkMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
        vkCmdPipelineBarrier(v->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &hb, 0, NULL, 0,
                             NULL);
    }
    v->recording = 0;
    v->upload_used = 0;
    v->table_valid = 0;
    v->rb_count = 0;
    VkResult r = vkEndCommandBuffer(v->cmd);
    int pending = 0;
    infer_status s = r == VK_SUCCESS ? vk_submit_wait(v->d, v->cmd, v->fence, &pending, err)
                                     : vk_fail(err, r, "vkEndCommandBuffer");
    if (pending) {
        v->broken = 1; /* never reset or reuse the buffer and fence it may still hold */
        return s;
    }
    r = vkResetCommandBuffer(v->cmd, 0);
    if (s == INFER_OK && r != VK_SUCCESS) s = vk_fail(err, r, "vkResetCommandBuffer");
    if (s == INFER_OK) profile_collect(v);
    if (s == INFER_OK && count) {
        v->rb_off = v->out_off;
        v->rb_count = count;
    }
    return s;
}

/* Arena floats after sync: the step's output from the readback buffer,
 * or any other range copied on demand into a buffer kept for that (tests
 * and tools; not the token loop); NULL on failure. */
static const float *vk_host(backend *b, act off, size_t count) {
    vk_backend *v = VKB(b);
    if (v->rb_count && off >= v->rb_off && count <= v->rb_count && off - v->rb_off <= v->rb_count - count) {
        return (const float *)v->readback.map + (off - v->rb_off);
    }
    if (v->recording || v->status != INFER_OK) return NULL;
    uint64_t src, bytes;
    if (ck_mul((uint64_t)off, (uint64_t)4, &src) || ck_mul((uint64_t)count, (uint64_t)4, &bytes) || count == 0 ||
        src > v->arena.size || bytes > v->arena.size - src) {
        return NULL;
    }
    infer_error e;
    if (bytes > v->demand.size) {
        vk_buffer_free(v->d, &v->demand);
        if (vk_buffer_new(v->d, bytes, VK_BUFFER_USAGE_TRANSFER_DST_BIT, VK_MEM_HOST, &v->demand, &e) != INFER_OK) return NULL;
    }
    if (!vkb_begin(v)) return NULL;
    VkBufferCopy region = {.srcOffset = src, .dstOffset = 0, .size = bytes};
    vkCmdCopyBuffer(v->cmd, v->arena.buf, v->demand.buf, 1, &region);
    VkMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(v->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &hb, 0, NULL, 0, NULL);
    v->out_count = 0;
    if (vk_sync(b, &e) != INFER_OK) return NULL;
    return (const float *)v->demand.map;
}

/* Compute writes and transfers in either order (the staged context shift). */
static void barrier_all(vk_backend *v) {
    const VkAccessFlags acc = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                              VK_ACCESS_TRANSFER_WRITE_BIT;
    const VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = acc, .dstAccessMask = acc};
    vkCmdPipelineBarrier(v->cmd, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Context shift: K re-rotated by (dst - src) positions, V copied.
 * Directly, in chunks of at most (src - dst) positions so that no dispatch
 * reads what it writes, and at most what the KV window holds (the
 * sources are read through the layer's texel views). Or, when that step
 * is short (a shift by one token moved one position per dispatch, per
 * layer and part: 14 s and 1.7 GB of commands for 64 k positions and 8
 * layers on lavapipe), staged: a chunk of as many positions as an arena
 * window holds is moved into the arena in the cache's layout, then copied
 * into place (vkCmdCopyBuffer); writing [dst + k0, +c) overwrites only
 * sources of this chunk, already staged. The same words either way.
 * Submitted and waited for; the arena's contents are dead between decodes
 * (the logits are dropped with the shift). */
static infer_status vk_kv_move(backend *b, uint32_t dst, uint32_t src, uint32_t n, infer_error *err) {
    vk_backend *v = VKB(b);
    const model_hparams *hp = v->hp;
    if (n == 0) return INFER_OK;
    if (dst >= src || src > v->n_ctx || n > v->n_ctx - src)
        vkb_fail(v, INFER_EBACKEND, "Vulkan: kv_move: bad range");
    const uint64_t rb0 = kv_row_bytes(v, 0), rb1 = kv_row_bytes(v, 1), rbmax = rb0 > rb1 ? rb0 : rb1;
    uint64_t per = v->kv_win / rbmax, staged = (v->win < v->arena.size ? v->win : v->arena.size) / rbmax;
    if (per == 0) vkb_fail(v, INFER_EBACKEND, "Vulkan: kv_move: a position exceeds the window");
    uint32_t table;
    if (!vkb_begin(v) || !rope_table(v, (float)dst - (float)src, 1, 0, &table)) return vk_sync(b, err);
    const int stage = (uint64_t)(src - dst) < staged && (uint64_t)(src - dst) < per;
    const uint32_t f16 = v->kv_type != INFER_TYPE_F32;
    const uint32_t step = stage ? (uint32_t)(staged < n ? staged : n)
                                : (uint64_t)(src - dst) < per ? src - dst : (uint32_t)per;
    for (uint32_t k0 = 0; k0 < n; k0 += step) {
        const uint32_t nk = n - k0 < step ? n - k0 : step;
        for (uint32_t l = 0; l < hp->n_layer; l++) {
            const vk_layer_kv *L = &v->kv[l];
            for (int part = 0; part < 2; part++) {
                const uint32_t hd = part ? hp->n_embd_head_v : hp->n_embd_head_k, pad = part ? v->hdv_pad : v->hdk_pad;
                const uint64_t rb = part ? rb1 : rb0;
                vk_binds bd = {.layer = L};
                uint32_t off;
                if (stage ? !arena_window(v, &bd, 0, 0, (size_t)(nk * rb / 4), &off)
                          : !kv_window(v, &bd, L, part, dst + k0, nk, &off))
                    return vk_sync(b, err);
                const uint32_t push[16] = {nk, src + k0, dst + k0, hp->n_head_kv, hd, pad, hp->n_rot,
                                           hp->rope_type == ROPE_NEOX, f16, (uint32_t)part, table, off, (uint32_t)stage};
                dispatch(v, "kv_move", v->p.kv_move, &bd, push, (uint64_t)nk * hp->n_head_kv * (f16 ? pad / 2 : pad), 64);
                if (stage) {
                    barrier_all(v);
                    const VkBufferCopy region = {.srcOffset = (VkDeviceSize)bd.dyn[0] + (VkDeviceSize)off * 4,
                                                 .dstOffset = (part ? L->v_off : 0) + (uint64_t)(dst + k0) * rb,
                                                 .size = (uint64_t)nk * rb};
                    vkCmdCopyBuffer(v->cmd, v->arena.buf, L->b.buf, 1, &region);
                    barrier_all(v);
                }
            }
        }
    }
    v->out_count = 0;
    return vk_sync(b, err);
}

extern void vk_backend_free(backend *b);

const backend_ops VK_OPS_TABLE = {
    .get_rows = vk_get_rows,
    .rms_norm = vk_rms_norm,
    .matmul = vk_matmul,
    .rope = vk_rope,
    .kv_store = vk_kv_store,
    .attention = vk_attention,
    .silu_mul = vk_silu_mul,
    .add = vk_add,
    .sync = vk_sync,
    .host = vk_host,
    .kv_move = vk_kv_move,
    .free = vk_backend_free,
};
