/*
 * backend_vulkan_mem.c - buffers, one-shot submissions, and the weights:
 * each model's tensors are repacked (backend_vulkan_repack.c) through a
 * host-visible staging buffer into device-local buffers once per device,
 * and shared by every context of that model on that device.
 *
 * A matrix is split by rows into chunks, each one buffer, texel view and
 * descriptor set within maxTexelBufferElements and the allocation limit;
 * ops loop over a weight's chunks.
 */
#include <string.h>

#include "backend_vulkan.h"

static int mem_type(const vk_dev *d, uint32_t allowed, VkMemoryPropertyFlags want, VkMemoryPropertyFlags prefer) {
    int best = -1;
    for (uint32_t i = 0; i < d->mem.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = d->mem.memoryTypes[i].propertyFlags;
        if (!(allowed & (1u << i)) || (f & want) != want) continue;
        if (best < 0 || ((f & prefer) == prefer && (d->mem.memoryTypes[best].propertyFlags & prefer) != prefer)) best = (int)i;
    }
    return best;
}

infer_status vk_buffer_new(vk_dev *d, VkDeviceSize size, VkBufferUsageFlags usage, int where, vk_buffer *b,
                           infer_error *err) {
    memset(b, 0, sizeof *b);
    if (size == 0) size = 16;
    if (size > d->max_alloc) {
        return set_error(err, INFER_EBACKEND, "Vulkan: a buffer of %llu MiB exceeds %s's allocation limit (%llu MiB)",
                         (unsigned long long)(size >> 20), d->props.deviceName, (unsigned long long)(d->max_alloc >> 20));
    }
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = usage,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(d->dev, &bci, NULL, &b->buf);
    if (r != VK_SUCCESS) {
        b->buf = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreateBuffer");
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->dev, b->buf, &req);
    int t = where == VK_MEM_HOST
                ? mem_type(d, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                           VK_MEMORY_PROPERTY_HOST_CACHED_BIT)
                : mem_type(d, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (t < 0 && where != VK_MEM_HOST) t = mem_type(d, req.memoryTypeBits, 0, 0);
    if (t < 0) {
        vk_buffer_free(d, b);
        return set_error(err, INFER_EBACKEND, "Vulkan: no %s memory type for a buffer",
                         where == VK_MEM_HOST ? "host-visible" : "device");
    }
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = (uint32_t)t};
    r = vkAllocateMemory(d->dev, &mai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        b->mem = VK_NULL_HANDLE;
        vk_buffer_free(d, b);
        return vk_fail(err, r, "vkAllocateMemory");
    }
    r = vkBindBufferMemory(d->dev, b->buf, b->mem, 0);
    if (r == VK_SUCCESS && where == VK_MEM_HOST) r = vkMapMemory(d->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
    if (r != VK_SUCCESS) {
        b->map = NULL;
        vk_buffer_free(d, b);
        return vk_fail(err, r, where == VK_MEM_HOST ? "vkBindBufferMemory/vkMapMemory" : "vkBindBufferMemory");
    }
    b->size = size;
    return INFER_OK;
}

void vk_buffer_free(vk_dev *d, vk_buffer *b) {
    if (b->map) vkUnmapMemory(d->dev, b->mem);
    if (b->buf) vkDestroyBuffer(d->dev, b->buf, NULL);
    if (b->mem) vkFreeMemory(d->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

infer_status vk_view_new(vk_dev *d, VkBuffer buf, VkFormat fmt, VkDeviceSize off, VkDeviceSize range, VkBufferView *out,
                         infer_error *err) {
    VkBufferViewCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO, .buffer = buf, .format = fmt,
                                 .offset = off, .range = range};
    VkResult r = vkCreateBufferView(d->dev, &ci, NULL, out);
    if (r != VK_SUCCESS) {
        *out = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreateBufferView");
    }
    return INFER_OK;
}

infer_status vk_submit_wait(vk_dev *d, VkCommandBuffer cb, VkFence fence, int *pending, infer_error *err) {
    *pending = 0;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    pthread_mutex_lock(&d->lock); /* the queue is shared by the device's contexts */
    VkResult r = vkQueueSubmit(d->queue, 1, &si, fence);
    pthread_mutex_unlock(&d->lock);
    if (r != VK_SUCCESS) return vk_fail(err, r, "vkQueueSubmit");
    do r = vkWaitForFences(d->dev, 1, &fence, VK_TRUE, UINT64_MAX);
    while (r == VK_TIMEOUT);
    *pending = r != VK_SUCCESS; /* not known finished; or finished with its fence still signalled: */
    if (r != VK_SUCCESS) return vk_fail(err, r, "vkWaitForFences");
    r = vkResetFences(d->dev, 1, &fence);
    *pending = r != VK_SUCCESS; /* either way the buffer and fence must not be used again */
    return r == VK_SUCCESS ? INFER_OK : vk_fail(err, r, "vkResetFences");
}

/* ---- weights ------------------------------------------------------------------ */

const vk_tensor *vk_tensor_of(const vk_weights *w, const weight *wt) {
    if (!w || !wt || !wt->data || wt->index < 0 || (size_t)wt->index >= w->n_tensors) return NULL;
    const vk_tensor *t = &w->tensors[wt->index];
    return t->index == wt->index ? t : NULL;
}

static void weights_free(vk_dev *d, vk_weights *w) {
    if (!w) return;
    for (size_t i = 0; w->tensors && i < w->n_tensors; i++) {
        vk_tensor *t = &w->tensors[i];
        for (uint32_t c = 0; t->chunks && c < t->n_chunks; c++) {
            if (t->chunks[c].view) vkDestroyBufferView(d->dev, t->chunks[c].view, NULL);
            vk_buffer_free(d, &t->chunks[c].b);
        }
        infer_free(t->chunks);
    }
    if (w->pool) vkDestroyDescriptorPool(d->dev, w->pool, NULL);
    infer_free(w->tensors);
    infer_free(w);
}

/* Every weight the forward pass reads, once each; plain[] marks the 1-D
 * ones (norms, biases) kept as plain floats. */
typedef struct {
    const weight *w[16 * MODEL_MAX_LAYERS + 3];
    int plain[16 * MODEL_MAX_LAYERS + 3];
    size_t n;
} weight_list;

static void list_add(weight_list *L, const weight *w, int plain) {
    if (w->data && L->n < sizeof L->w / sizeof L->w[0]) {
        L->w[L->n] = w;
        L->plain[L->n++] = plain;
    }
}

static void list_model(const infer_model *m, weight_list *L) {
    L->n = 0;
    list_add(L, &m->tok_embd, 0);
    list_add(L, &m->output_norm, 1);
    list_add(L, &m->output, 0);
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const layer_weights *lw = &m->layers[il];
        const weight *mats[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down};
        const weight *vecs[] = {&lw->attn_norm, &lw->ffn_norm, &lw->bq, &lw->bk, &lw->bv, &lw->q_norm, &lw->k_norm};
        for (size_t i = 0; i < 7; i++) list_add(L, mats[i], 0);
        for (size_t i = 0; i < 7; i++) list_add(L, vecs[i], 1);
    }
}

/* Shape the tensor and its chunks (no device objects yet). */
static infer_status tensor_plan(const vk_dev *d, const weight *wt, int plain, vk_tensor *t, infer_error *err) {
    t->index = wt->index;
    t->type = wt->type;
    t->plain = plain;
    if (wt->cols <= 0 || wt->rows <= 0 || (uint64_t)wt->cols > UINT32_MAX || (uint64_t)wt->rows > UINT32_MAX) {
        return set_error(err, INFER_EUNSUPPORTED, "Vulkan: tensor %d has a shape the backend cannot address", wt->index);
    }
    t->cols = (uint32_t)wt->cols;
    t->rows = (uint32_t)wt->rows;
    if (plain) {
        if (wt->type != INFER_TYPE_F32 || t->rows != 1) {
            return set_error(err, INFER_EUNSUPPORTED, "Vulkan: 1-D tensor %d is not F32", wt->index);
        }
        t->units = 0;
        t->row_texels = t->cols / 4 + (t->cols % 4 != 0);
    } else if (vk_row_layout(wt->type, (uint64_t)wt->cols, &t->units, &t->row_texels) != INFER_OK) {
        return set_error(err, INFER_EUNSUPPORTED, "Vulkan: tensor %d of type %s (%lld columns) has no device layout",
                         wt->index, infer_type_name(wt->type), (long long)wt->cols);
    }
    uint64_t per = d->max_texels / t->row_texels, by_alloc = d->max_alloc / ((uint64_t)t->row_texels * 16);
    if (by_alloc < per) per = by_alloc;
    if (per == 0) {
        return set_error(err, INFER_EUNSUPPORTED, "Vulkan: one row of tensor %d (%u texels) exceeds the device's binding limit",
                         wt->index, t->row_texels);
    }
    if (per > t->rows) per = t->rows;
    t->n_chunks = (uint32_t)((t->rows + per - 1) / per);
    t->chunks = infer_calloc(t->n_chunks, sizeof *t->chunks);
    if (!t->chunks) return set_error(err, INFER_ENOMEM, "out of memory");
    for (uint32_t c = 0; c < t->n_chunks; c++) {
        t->chunks[c].row0 = (uint32_t)(c * per);
        t->chunks[c].rows = c + 1 < t->n_chunks ? (uint32_t)per : t->rows - (uint32_t)(c * per);
    }
    return INFER_OK;
}

/* The staging side of an upload: rows are repacked into `staging` and
 * copied by runs; flush submits what is recorded and waits. */
typedef struct {
    vk_dev *d;
    vk_buffer staging;
    VkCommandBuffer cb;
    VkFence fence;
    VkDeviceSize used;
    int recording;
    int broken; /* a submission not known finished (vk_submit_wait's pending) */
} uploader;

static infer_status up_begin(uploader *u, infer_error *err) {
    if (u->recording) return INFER_OK;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(u->cb, &bi);
    if (r != VK_SUCCESS) return vk_fail(err, r, "vkBeginCommandBuffer");
    u->recording = 1;
    return INFER_OK;
}

static infer_status up_flush(uploader *u, infer_error *err) {
    if (!u->recording) return INFER_OK;
    u->recording = 0;
    VkResult r = vkEndCommandBuffer(u->cb);
    if (r != VK_SUCCESS) return vk_fail(err, r, "vkEndCommandBuffer");
    int pending;
    infer_status s = vk_submit_wait(u->d, u->cb, u->fence, &pending, err);
    if (s != INFER_OK) {
        u->broken = pending;
        return s;
    }
    r = vkResetCommandBuffer(u->cb, 0);
    u->used = 0;
    return r == VK_SUCCESS ? INFER_OK : vk_fail(err, r, "vkResetCommandBuffer");
}

/* Repack and copy one chunk's rows. */
static infer_status upload_chunk(uploader *u, const weight *wt, const vk_tensor *t, const vk_chunk *c, infer_error *err) {
    const VkDeviceSize row_bytes = (VkDeviceSize)t->row_texels * 16;
    uint32_t r = 0;
    while (r < c->rows) {
        if (u->used + row_bytes > u->staging.size) {
            infer_status s = up_flush(u, err);
            if (s != INFER_OK) return s;
        }
        infer_status s = up_begin(u, err);
        if (s != INFER_OK) return s;
        VkDeviceSize src0 = u->used;
        uint32_t first = r;
        while (r < c->rows && u->used + row_bytes <= u->staging.size) {
            uint8_t *dst = (uint8_t *)u->staging.map + u->used;
            const uint8_t *src = (const uint8_t *)wt->data + (size_t)(c->row0 + r) * wt->row_bytes;
            if (t->plain) {
                memset(dst, 0, (size_t)row_bytes);
                memcpy(dst, src, (size_t)t->cols * sizeof(float));
            } else {
                vk_repack_row(t->type, src, t->cols, dst);
            }
            u->used += row_bytes;
            r++;
        }
        VkBufferCopy region = {.srcOffset = src0, .dstOffset = (VkDeviceSize)first * row_bytes,
                               .size = (VkDeviceSize)(r - first) * row_bytes};
        vkCmdCopyBuffer(u->cb, u->staging.buf, c->b.buf, 1, &region);
    }
    return INFER_OK;
}

static infer_status weights_upload(vk_dev *d, vk_weights *w, const weight_list *L, infer_error *err) {
    uploader u = {.d = d};
    size_t n_sets = 0;
    VkDeviceSize biggest = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const vk_tensor *t = &w->tensors[i];
        if (t->index < 0) continue;
        n_sets += t->n_chunks;
        if ((VkDeviceSize)t->row_texels * 16 > biggest) biggest = (VkDeviceSize)t->row_texels * 16;
    }
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, .descriptorCount = (uint32_t)n_sets};
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = (uint32_t)n_sets, .poolSizeCount = 1, .pPoolSizes = &ps};
    if (n_sets == 0 || n_sets > UINT32_MAX) return set_error(err, INFER_EBACKEND, "Vulkan: no weights to upload");
    VkResult r = vkCreateDescriptorPool(d->dev, &pci, NULL, &w->pool);
    if (r != VK_SUCCESS) {
        w->pool = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreateDescriptorPool");
    }
    VkDeviceSize stage = (VkDeviceSize)64 << 20;
    if (stage < biggest) stage = biggest;
    infer_status s = vk_buffer_new(d, stage, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, VK_MEM_HOST, &u.staging, err);
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->upload_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (s == INFER_OK && (r = vkAllocateCommandBuffers(d->dev, &ai, &u.cb)) != VK_SUCCESS) {
        u.cb = VK_NULL_HANDLE;
        s = vk_fail(err, r, "vkAllocateCommandBuffers");
    }
    if (s == INFER_OK && (r = vkCreateFence(d->dev, &fci, NULL, &u.fence)) != VK_SUCCESS) {
        u.fence = VK_NULL_HANDLE;
        s = vk_fail(err, r, "vkCreateFence");
    }
    for (size_t i = 0; s == INFER_OK && i < L->n; i++) {
        const weight *wt = L->w[i];
        vk_tensor *t = &w->tensors[wt->index];
        if (t->chunks && t->chunks[0].set) continue; /* shared (tied embeddings) */
        for (uint32_t c = 0; s == INFER_OK && c < t->n_chunks; c++) {
            vk_chunk *ch = &t->chunks[c];
            VkDeviceSize bytes = (VkDeviceSize)ch->rows * t->row_texels * 16;
            s = vk_buffer_new(d, bytes, VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              VK_MEM_DEVICE, &ch->b, err);
            if (s == INFER_OK) s = vk_view_new(d, ch->b.buf, VK_FORMAT_R32G32B32A32_UINT, 0, bytes, &ch->view, err);
            if (s == INFER_OK) {
                VkDescriptorSetAllocateInfo sai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                                   .descriptorPool = w->pool, .descriptorSetCount = 1,
                                                   .pSetLayouts = &d->dsl[VKS_WEIGHT]};
                if ((r = vkAllocateDescriptorSets(d->dev, &sai, &ch->set)) != VK_SUCCESS) {
                    ch->set = VK_NULL_HANDLE;
                    s = vk_fail(err, r, "vkAllocateDescriptorSets");
                }
            }
            if (s == INFER_OK) {
                VkWriteDescriptorSet wr = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = ch->set,
                                           .dstBinding = 0, .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                                           .pTexelBufferView = &ch->view};
                vkUpdateDescriptorSets(d->dev, 1, &wr, 0, NULL);
                s = upload_chunk(&u, wt, t, ch, err);
            }
        }
    }
    if (s == INFER_OK) s = up_flush(&u, err);
    if (u.recording) vkEndCommandBuffer(u.cb);
    if (u.broken) { /* the queue may still read the staging buffer: let it finish (or report the loss) */
        pthread_mutex_lock(&d->lock);
        (void)vkQueueWaitIdle(d->queue);
        pthread_mutex_unlock(&d->lock);
    }
    if (u.fence) vkDestroyFence(d->dev, u.fence, NULL);
    if (u.cb) vkFreeCommandBuffers(d->dev, d->upload_pool, 1, &u.cb);
    vk_buffer_free(d, &u.staging);
    return s;
}

static infer_status weights_new(vk_dev *d, const infer_model *m, vk_weights **out, infer_error *err) {
    weight_list *L = infer_malloc(sizeof *L);
    vk_weights *w = infer_calloc(1, sizeof *w);
    infer_status s = INFER_OK;
    if (!L || !w) {
        s = set_error(err, INFER_ENOMEM, "out of memory");
        goto done;
    }
    w->model = m;
    /* The upload reads the file's layout of every matrix: rows a CPU
     * context repacked and dropped from memory are read back first. */
    if ((s = model_file_layout(m, err)) != INFER_OK) goto done;
    list_model(m, L);
    int32_t max_index = -1;
    for (size_t i = 0; i < L->n; i++) max_index = L->w[i]->index > max_index ? L->w[i]->index : max_index;
    if (max_index < 0) {
        s = set_error(err, INFER_EBACKEND, "Vulkan: the model has no tensors to upload");
        goto done;
    }
    w->n_tensors = (size_t)max_index + 1;
    w->tensors = infer_calloc(w->n_tensors, sizeof *w->tensors);
    if (!w->tensors) {
        s = set_error(err, INFER_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < w->n_tensors; i++) w->tensors[i].index = -1;
    for (size_t i = 0; i < L->n && s == INFER_OK; i++) {
        vk_tensor *t = &w->tensors[L->w[i]->index];
        if (t->index >= 0) {
            if (t->plain != L->plain[i]) s = set_error(err, INFER_EBACKEND, "Vulkan: tensor %d used in two roles", t->index);
            continue;
        }
        s = tensor_plan(d, L->w[i], L->plain[i], t, err);
    }
    if (s == INFER_OK) s = weights_upload(d, w, L, err);
done:
    infer_free(L);
    if (s != INFER_OK) {
        weights_free(d, w);
        return s;
    }
    *out = w;
    return INFER_OK;
}

infer_status vk_weights_get(vk_dev *d, const infer_model *m, vk_weights **out, infer_error *err) {
    infer_status s = INFER_OK;
    *out = NULL;
    pthread_mutex_lock(&d->wlock);
    for (vk_weights *w = d->weights; w; w = w->next) {
        if (w->model == m) {
            w->refs++;
            *out = w;
            break;
        }
    }
    if (!*out && (s = weights_new(d, m, out, err)) == INFER_OK) {
        (*out)->refs = 1;
        (*out)->next = d->weights;
        d->weights = *out;
    }
    pthread_mutex_unlock(&d->wlock);
    return s;
}

void vk_weights_put(vk_dev *d, vk_weights *w) {
    if (!w) return;
    pthread_mutex_lock(&d->wlock);
    int last = --w->refs == 0;
    if (last) {
        for (vk_weights **pp = &d->weights; *pp; pp = &(*pp)->next) {
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->wlock);
    if (last) weights_free(d, w);
}
