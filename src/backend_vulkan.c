/*
 * backend_vulkan.c - a context's Vulkan objects, all made here once: the
 * activation arena, the KV cache (one buffer per layer), the upload,
 * conversion and readback buffers, descriptor sets, the command buffer and
 * the pipelines the model needs. The ops are in backend_vulkan_ops.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_vulkan.h"

static infer_status round_up(uint64_t x, uint64_t align, uint64_t *out, infer_error *err) {
    if (ck_align_up(x, align, out)) return set_error(err, INFER_EINVAL, "Vulkan: size overflows");
    return INFER_OK;
}

void vk_backend_free(backend *b) {
    vk_backend *v = (vk_backend *)b;
    if (!v) return;
    vk_dev *d = v->d;
    if (d) {
        if (v->recording) vkEndCommandBuffer(v->cmd);
        if (v->broken) { /* a submission may still hold these: let the queue finish (or report the loss) first */
            pthread_mutex_lock(&d->lock);
            (void)vkQueueWaitIdle(d->queue);
            pthread_mutex_unlock(&d->lock);
        }
        vk_profile_report(v);
        if (v->prof.pool) vkDestroyQueryPool(d->dev, v->prof.pool, NULL);
        if (v->fence) vkDestroyFence(d->dev, v->fence, NULL);
        if (v->cmd_pool) vkDestroyCommandPool(d->dev, v->cmd_pool, NULL);
        if (v->pool) vkDestroyDescriptorPool(d->dev, v->pool, NULL);
        for (uint32_t l = 0; v->kv && l < v->hp->n_layer; l++) {
            if (v->kv[l].kview) vkDestroyBufferView(d->dev, v->kv[l].kview, NULL);
            if (v->kv[l].vview) vkDestroyBufferView(d->dev, v->kv[l].vview, NULL);
            vk_buffer_free(d, &v->kv[l].b);
        }
        if (v->xq_view) vkDestroyBufferView(d->dev, v->xq_view, NULL);
        if (v->dummy_view) vkDestroyBufferView(d->dev, v->dummy_view, NULL);
        vk_buffer_free(d, &v->dummy);
        vk_buffer_free(d, &v->xq);
        vk_buffer_free(d, &v->arena);
        vk_buffer_free(d, &v->upload);
        vk_buffer_free(d, &v->readback);
        vk_buffer_free(d, &v->demand);
        vk_weights_put(d, v->w);
        vk_dev_put(d);
    }
    infer_free(v->kv);
    infer_free(v);
}

/* The pipelines for the model's weight types and the other ops. */
static infer_status make_pipelines(vk_backend *v, infer_error *err) {
    const infer_model *m = v->m;
    static const char *const names[INFER_TYPE_COUNT] = {
        [INFER_TYPE_F32] = "f32",   [INFER_TYPE_F16] = "f16",   [INFER_TYPE_BF16] = "bf16", [INFER_TYPE_Q4_0] = "q4_0",
        [INFER_TYPE_Q4_1] = "q4_1", [INFER_TYPE_Q5_0] = "q5_0", [INFER_TYPE_Q5_1] = "q5_1", [INFER_TYPE_Q8_0] = "q8_0",
        [INFER_TYPE_Q2_K] = "q2_k", [INFER_TYPE_Q3_K] = "q3_k", [INFER_TYPE_Q4_K] = "q4_k", [INFER_TYPE_Q5_K] = "q5_k",
        [INFER_TYPE_Q6_K] = "q6_k"};
    const uint32_t mm_spec[3] = {4, 4, 0}, none[3] = {0, 0, 0};
    char name[32];
    infer_status s = INFER_OK;
    for (size_t i = 0; i < v->w->n_tensors && s == INFER_OK; i++) {
        const vk_tensor *t = &v->w->tensors[i];
        if (t->index < 0 || t->plain) continue;
        if (t->type >= INFER_TYPE_COUNT || !names[t->type]) {
            return set_error(err, INFER_EUNSUPPORTED, "Vulkan: no kernels for type %s", infer_type_name(t->type));
        }
        if (!v->p.mv[t->type]) {
            snprintf(name, sizeof name, "matmul_%s", names[t->type]);
            const uint32_t mv_spec[3] = {vk_mv_rows(v->d, t->type), 1, 0};
            s = vk_pipeline(v->d, name, mv_spec, &v->p.mv[t->type], err);
            if (s == INFER_OK) s = vk_pipeline(v->d, name, mm_spec, &v->p.mm[t->type], err);
        }
        if (s == INFER_OK && t->index == m->tok_embd.index && !v->p.get_rows[t->type]) {
            snprintf(name, sizeof name, "get_rows_%s", names[t->type]);
            s = vk_pipeline(v->d, name, none, &v->p.get_rows[t->type], err);
        }
    }
    /* Attention holds q and a slice of the output in registers: sized to
     * the model's heads (at most 256 values each; larger heads loop). */
    uint32_t qmax = v->hdk_pad < 256 ? v->hdk_pad : 256, ch = v->hdv_pad < 256 ? v->hdv_pad : 256;
    const uint32_t att_spec[3] = {qmax, ch, 0};
    struct {
        const char *name;
        const uint32_t *spec;
        VkPipeline *out;
    } ops[] = {{"quantize_act", none, &v->p.quantize},
               {"rms_norm", none, v->d->norm_wg ? NULL : &v->p.rms_norm}, /* else the wide one, below */
               {"rope", none, &v->p.rope},
               {"kv_store", none, &v->p.kv_store},
               {"attention", att_spec, &v->p.attention},
               {"elementwise", none, &v->p.elementwise},
               {"kv_move", none, &v->p.kv_move}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0] && s == INFER_OK; i++) {
        if (ops[i].out) s = vk_pipeline(v->d, ops[i].name, ops[i].spec, ops[i].out, err);
    }
    if (s == INFER_OK && v->d->norm_wg) s = vk_pipeline_wide(v->d, "rms_norm", v->d->norm_wg, &v->p.rms_norm, err);
    return s;
}

/* Buffers and the per-layer KV cache. */
static infer_status make_buffers(vk_backend *v, const backend_config *cfg, infer_error *err) {
    vk_dev *d = v->d;
    const model_hparams *hp = v->hp;
    const VkBufferUsageFlags st = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
    uint64_t bytes = 0, k_bytes = 0, v_bytes = 0, v_off = 0, layer_bytes = 0;
    infer_status s;

    /* Arena: dynamic offsets are 32-bit, so it stays under 4 GiB. */
    if (ck_mul((uint64_t)cfg->arena_floats, (uint64_t)4, &bytes) || (s = round_up(bytes, d->ssbo_align, &bytes, err)) != INFER_OK ||
        bytes > UINT32_MAX) {
        return set_error(err, INFER_EINVAL, "Vulkan: the activation arena exceeds 4 GiB: lower n_batch");
    }
    if ((s = vk_buffer_new(d, bytes, st | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT, VK_MEM_DEVICE,
                           &v->arena, err)) != INFER_OK) {
        return s;
    }
    v->win = bytes < d->ssbo_range ? bytes : d->ssbo_range;

    /* KV cache: per layer K [n_ctx][n_head_kv][hdk_pad] then V. */
    const uint64_t esz = v->kv_type == INFER_TYPE_F32 ? 4 : 2;
    const uint64_t texel = 4 * esz, align = d->texel_align > d->ssbo_align ? d->texel_align : d->ssbo_align;
    if (ck_mul((uint64_t)v->n_ctx * hp->n_head_kv, (uint64_t)v->hdk_pad * esz, &k_bytes) ||
        ck_mul((uint64_t)v->n_ctx * hp->n_head_kv, (uint64_t)v->hdv_pad * esz, &v_bytes) ||
        round_up(k_bytes, align, &v_off, err) != INFER_OK || ck_add(v_off, v_bytes, &layer_bytes) ||
        round_up(layer_bytes, d->ssbo_align, &layer_bytes, err) != INFER_OK) {
        return set_error(err, INFER_EINVAL, "Vulkan: KV cache size overflows: lower n_ctx");
    }
    if (k_bytes / texel > d->max_texels || v_bytes / texel > d->max_texels || layer_bytes > UINT32_MAX) {
        return set_error(err, INFER_EUNSUPPORTED, "Vulkan: one layer's KV cache (%llu MiB) exceeds %s's limits: lower n_ctx",
                         (unsigned long long)(layer_bytes >> 20), d->props.deviceName);
    }
    v->kv_win = layer_bytes < d->ssbo_range ? layer_bytes : d->ssbo_range;
    v->kv = infer_calloc(hp->n_layer, sizeof *v->kv);
    if (!v->kv) return set_error(err, INFER_ENOMEM, "out of memory");
    const VkFormat kvf = v->kv_type == INFER_TYPE_F32 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R16G16B16A16_SFLOAT;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        vk_layer_kv *L = &v->kv[l];
        L->v_off = v_off;
        s = vk_buffer_new(d, layer_bytes, st | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                          VK_MEM_DEVICE, &L->b, err); /* transfers: the staged context shift */
        if (s == INFER_OK) s = vk_view_new(d, L->b.buf, kvf, 0, k_bytes, &L->kview, err);
        if (s == INFER_OK) s = vk_view_new(d, L->b.buf, kvf, v_off, v_bytes, &L->vview, err);
        if (s != INFER_OK) return s;
    }

    /* Upload area: a pass's token ids (n_batch words: get_rows uploads them
     * once, whatever the embedding's chunks) and its one RoPE table
     * (n_batch x n_rot); a context shift's table (n_rot) is a pass of its
     * own. Sized with room for a second table and a margin. */
    uint64_t table = (uint64_t)v->n_batch * hp->n_rot, words = v->n_batch + 2 * table + 8 * (uint64_t)hp->n_rot + 64;
    if (words * 4 > d->ssbo_range) /* bound whole as one storage buffer */
        return set_error(err, INFER_EUNSUPPORTED,
                         "Vulkan: n_batch %u x rope dims %u needs a %llu MiB upload buffer, past the device's %llu MiB "
                         "storage-buffer range: lower n_batch",
                         v->n_batch, hp->n_rot, (unsigned long long)(words * 4 >> 20),
                         (unsigned long long)(d->ssbo_range >> 20));
    if ((s = vk_buffer_new(d, words * 4, st, VK_MEM_HOST, &v->upload, err)) != INFER_OK) return s;
    v->upload_words = (size_t)words;

    /* Converted activations: n_batch tokens of the widest matmul input,
     * 36 words per unit, within one binding. */
    uint64_t units = 0, cap;
    for (size_t i = 0; i < v->w->n_tensors; i++) {
        const vk_tensor *t = &v->w->tensors[i];
        if (t->index >= 0 && !t->plain && t->units > units) units = t->units;
    }
    cap = d->ssbo_range < d->max_texels * 16 ? d->ssbo_range : d->max_texels * 16;
    if (cap > d->max_alloc) cap = d->max_alloc;
    cap /= 144; /* units */
    if (units == 0) units = 1; /* no matmul at all (tests) */
    if (cap < units) return set_error(err, INFER_EUNSUPPORTED, "Vulkan: a matmul input row exceeds the device limits");
    if (cap > units * v->n_batch) cap = units * v->n_batch;
    v->xq_units = (size_t)cap;
    if ((s = vk_buffer_new(d, cap * 144, st | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT, VK_MEM_DEVICE, &v->xq, err)) != INFER_OK ||
        (s = vk_view_new(d, v->xq.buf, VK_FORMAT_R32G32B32A32_UINT, 0, cap * 144, &v->xq_view, err)) != INFER_OK) {
        return s;
    }

    /* Readback: a pass's output, all logits of a batch at most. */
    uint64_t rb;
    if (ck_mul((uint64_t)v->n_batch * 4, (uint64_t)hp->n_vocab, &rb)) rb = UINT64_MAX;
    if (rb > ((uint64_t)256 << 20)) rb = (uint64_t)256 << 20;
    if (rb > d->max_alloc) rb = d->max_alloc;
    return vk_buffer_new(d, rb, VK_BUFFER_USAGE_TRANSFER_DST_BIT, VK_MEM_HOST, &v->readback, err);
}

static infer_status make_sets(vk_backend *v, infer_error *err) {
    vk_dev *d = v->d;
    const uint32_t nl = v->hp->n_layer;
    VkDescriptorPoolSize ps[] = {
        {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC, VK_N_DYNAMIC_CTX + nl},
        {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 2},
        {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, 2 + 2 * nl},
    };
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 2 + nl,
                                      .poolSizeCount = 3, .pPoolSizes = ps};
    VkResult r = vkCreateDescriptorPool(d->dev, &pci, NULL, &v->pool);
    if (r != VK_SUCCESS) {
        v->pool = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreateDescriptorPool");
    }
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = v->pool,
                                      .descriptorSetCount = 1, .pSetLayouts = &d->dsl[VKS_CTX]};
    if ((r = vkAllocateDescriptorSets(d->dev, &ai, &v->set0)) != VK_SUCCESS) return vk_fail(err, r, "vkAllocateDescriptorSets");
    VkDescriptorBufferInfo win = {v->arena.buf, 0, v->win}, up = {v->upload.buf, 0, VK_WHOLE_SIZE},
                           xq = {v->xq.buf, 0, VK_WHOLE_SIZE};
    VkWriteDescriptorSet w[6];
    for (uint32_t i = 0; i < 6; i++) {
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = v->set0, .dstBinding = i,
                                      .descriptorCount = 1};
    }
    for (uint32_t i = 0; i < VK_N_DYNAMIC_CTX; i++) {
        w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC;
        w[i].pBufferInfo = &win;
    }
    w[3].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    w[3].pBufferInfo = &up;
    w[4].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    w[4].pBufferInfo = &xq;
    w[5].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
    w[5].pTexelBufferView = &v->xq_view;
    vkUpdateDescriptorSets(d->dev, 6, w, 0, NULL);

    /* Set 1 for ops without a weight: shaders may use it statically. */
    infer_status s = vk_buffer_new(d, 16, VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT, VK_MEM_DEVICE, &v->dummy, err);
    if (s == INFER_OK) s = vk_view_new(d, v->dummy.buf, VK_FORMAT_R32G32B32A32_UINT, 0, 16, &v->dummy_view, err);
    if (s != INFER_OK) return s;
    ai.pSetLayouts = &d->dsl[VKS_WEIGHT];
    if ((r = vkAllocateDescriptorSets(d->dev, &ai, &v->dummy_set)) != VK_SUCCESS) return vk_fail(err, r, "vkAllocateDescriptorSets");
    VkWriteDescriptorSet dw = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = v->dummy_set, .dstBinding = 0,
                               .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                               .pTexelBufferView = &v->dummy_view};
    vkUpdateDescriptorSets(d->dev, 1, &dw, 0, NULL);

    ai.pSetLayouts = &d->dsl[VKS_LAYER];
    for (uint32_t l = 0; l < nl; l++) {
        vk_layer_kv *L = &v->kv[l];
        if ((r = vkAllocateDescriptorSets(d->dev, &ai, &L->set)) != VK_SUCCESS) return vk_fail(err, r, "vkAllocateDescriptorSets");
        VkDescriptorBufferInfo kvw = {L->b.buf, 0, v->kv_win};
        VkWriteDescriptorSet lw[3] = {
            {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = L->set, .dstBinding = 0, .descriptorCount = 1,
             .descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, .pTexelBufferView = &L->kview},
            {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = L->set, .dstBinding = 1, .descriptorCount = 1,
             .descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, .pTexelBufferView = &L->vview},
            {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = L->set, .dstBinding = 2, .descriptorCount = 1,
             .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC, .pBufferInfo = &kvw},
        };
        vkUpdateDescriptorSets(d->dev, 3, lw, 0, NULL);
    }
    return INFER_OK;
}

static infer_status make_commands(vk_backend *v, infer_error *err) {
    vk_dev *d = v->d;
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = d->qfam};
    VkResult r = vkCreateCommandPool(d->dev, &pci, NULL, &v->cmd_pool);
    if (r != VK_SUCCESS) {
        v->cmd_pool = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreateCommandPool");
    }
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = v->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    if ((r = vkAllocateCommandBuffers(d->dev, &ai, &v->cmd)) != VK_SUCCESS) return vk_fail(err, r, "vkAllocateCommandBuffers");
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vkCreateFence(d->dev, &fci, NULL, &v->fence)) != VK_SUCCESS) {
        v->fence = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreateFence");
    }
    const char *prof = getenv("INFER_VK_PROFILE");
    if (prof && *prof && strcmp(prof, "0") != 0 && d->props.limits.timestampComputeAndGraphics) {
        VkQueryPoolCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = VK_PROF_QUERIES};
        if ((r = vkCreateQueryPool(d->dev, &qci, NULL, &v->prof.pool)) != VK_SUCCESS) {
            v->prof.pool = VK_NULL_HANDLE;
            return vk_fail(err, r, "vkCreateQueryPool");
        }
    }
    return INFER_OK;
}

infer_status backend_vulkan_new(const backend_config *cfg, int device, int gpu_only, backend **out, infer_error *err) {
    const infer_model *m = cfg->model;
    vk_backend *v = infer_calloc(1, sizeof *v);
    if (!v) return set_error(err, INFER_ENOMEM, "out of memory for the Vulkan backend");
    v->base.ops = &VK_OPS_TABLE;
    v->m = m;
    v->hp = &m->hp;
    v->n_ctx = cfg->n_ctx;
    v->n_batch = cfg->n_batch;
    v->kv_type = cfg->kv_type;
    v->arena_floats = cfg->arena_floats;
    v->hdk_pad = (m->hp.n_embd_head_k + 3u) & ~3u;
    v->hdv_pad = (m->hp.n_embd_head_v + 3u) & ~3u;
    infer_status s = vk_dev_get(device, gpu_only, &v->d, err);
    if (s == INFER_OK) s = vk_weights_get(v->d, m, &v->w, err);
    if (s == INFER_OK) s = make_buffers(v, cfg, err);
    if (s == INFER_OK) s = make_sets(v, err);
    if (s == INFER_OK) s = make_commands(v, err);
    if (s == INFER_OK) s = make_pipelines(v, err);
    if (s != INFER_OK) {
        vk_backend_free(&v->base);
        return s;
    }
    *out = &v->base;
    return INFER_OK;
}

infer_status backend_vulkan_write(backend *b, act off, const float *src, size_t count, infer_error *err) {
    vk_backend *v = (vk_backend *)b;
    uint64_t dst, bytes;
    if (v->recording || v->status != INFER_OK) return set_error(err, INFER_EINVAL, "Vulkan: write while recording");
    if (ck_mul((uint64_t)off, (uint64_t)4, &dst) || ck_mul((uint64_t)count, (uint64_t)4, &bytes) || dst > v->arena.size ||
        bytes > v->arena.size - dst || count == 0) {
        return set_error(err, INFER_EINVAL, "Vulkan: write outside the arena");
    }
    vk_buffer tmp;
    infer_status s = vk_buffer_new(v->d, bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, VK_MEM_HOST, &tmp, err);
    if (s != INFER_OK) return s;
    memcpy(tmp.map, src, (size_t)bytes);
    if (vkb_begin(v)) {
        VkBufferCopy region = {.srcOffset = 0, .dstOffset = dst, .size = bytes};
        vkCmdCopyBuffer(v->cmd, tmp.buf, v->arena.buf, 1, &region);
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        vkCmdPipelineBarrier(v->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL,
                             0, NULL);
        v->out_count = 0;
    }
    s = v->base.ops->sync(b, err);
    vk_buffer_free(v->d, &tmp);
    return s;
}
