/*
 * backend_vulkan_pipe.c - descriptor set layouts, the one pipeline layout
 * every shader uses, and compute pipelines from the embedded SPIR-V.
 *
 * Pipelines are made once per device and set of specialization constants
 * (when a context is created, never per token) and kept until the device
 * goes; contexts on the same device share them.
 */
#include <stdio.h>
#include <string.h>

#include "backend_vulkan.h"
#include "backend_vulkan_spirv.h"

static infer_status set_layout(vk_dev *d, const VkDescriptorType *types, uint32_t n, VkDescriptorSetLayout *out,
                               infer_error *err) {
    VkDescriptorSetLayoutBinding b[8];
    for (uint32_t i = 0; i < n; i++) {
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = types[i], .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    }
    VkDescriptorSetLayoutCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = n, .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(d->dev, &ci, NULL, out);
    if (r != VK_SUCCESS) {
        *out = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreateDescriptorSetLayout");
    }
    return INFER_OK;
}

infer_status vk_layouts_create(vk_dev *d, infer_error *err) {
    static const VkDescriptorType ctx[] = {
        VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC,
        VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,         VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER};
    static const VkDescriptorType wgt[] = {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER};
    static const VkDescriptorType layer[] = {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                                             VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                                             VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC};
    infer_status s = set_layout(d, ctx, 6, &d->dsl[VKS_CTX], err);
    if (s == INFER_OK) s = set_layout(d, wgt, 1, &d->dsl[VKS_WEIGHT], err);
    if (s == INFER_OK) s = set_layout(d, layer, 3, &d->dsl[VKS_LAYER], err);
    if (s != INFER_OK) return s; /* vk_layouts_destroy frees what was made */
    VkPushConstantRange pc = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = VK_PUSH_BYTES};
    VkPipelineLayoutCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = VKS_COUNT,
                                     .pSetLayouts = d->dsl, .pushConstantRangeCount = 1, .pPushConstantRanges = &pc};
    VkResult r = vkCreatePipelineLayout(d->dev, &ci, NULL, &d->layout);
    if (r != VK_SUCCESS) {
        d->layout = VK_NULL_HANDLE;
        return vk_fail(err, r, "vkCreatePipelineLayout");
    }
    return INFER_OK;
}

void vk_layouts_destroy(vk_dev *d) {
    if (d->layout) vkDestroyPipelineLayout(d->dev, d->layout, NULL);
    for (int i = 0; i < VKS_COUNT; i++) {
        if (d->dsl[i]) vkDestroyDescriptorSetLayout(d->dev, d->dsl[i], NULL);
    }
    d->layout = VK_NULL_HANDLE;
    memset(d->dsl, 0, sizeof d->dsl);
}

int vk_shader_uses_lanes(const char *name) {
    return strncmp(name, "matmul_", 7) == 0 || strcmp(name, "rms_norm") == 0 || strcmp(name, "attention") == 0;
}

static const vk_spirv *spirv_find(const char *name) {
    for (size_t i = 0; i < vk_spirv_count; i++) {
        if (strcmp(vk_spirv_table[i].name, name) == 0) return &vk_spirv_table[i];
    }
    return NULL;
}

static infer_status pipeline_create(vk_dev *d, const vk_spirv *code, uint32_t wg, const uint32_t spec[3], VkPipeline *out,
                                    infer_error *err) {
    VkShaderModuleCreateInfo mci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = code->n_words * sizeof(uint32_t), .pCode = code->words};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(d->dev, &mci, NULL, &mod);
    if (r != VK_SUCCESS) return vk_fail(err, r, "vkCreateShaderModule");
    const uint32_t values[4] = {wg, spec[0], spec[1], spec[2]};
    VkSpecializationMapEntry map[4];
    for (uint32_t i = 0; i < 4; i++) map[i] = (VkSpecializationMapEntry){.constantID = i, .offset = 4 * i, .size = 4};
    VkSpecializationInfo si = {.mapEntryCount = 4, .pMapEntries = map, .dataSize = sizeof values, .pData = values};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod, .pName = "main", .pSpecializationInfo = &si},
        .layout = d->layout};
    r = vkCreateComputePipelines(d->dev, VK_NULL_HANDLE, 1, &ci, NULL, out);
    vkDestroyShaderModule(d->dev, mod, NULL);
    if (r != VK_SUCCESS) {
        *out = VK_NULL_HANDLE;
        char what[96];
        snprintf(what, sizeof what, "vkCreateComputePipelines (%s)", code->name);
        return vk_fail(err, r, what);
    }
    return INFER_OK;
}

static infer_status pipeline_get(vk_dev *d, const char *name, int nosg, uint32_t wg, const uint32_t spec[3], VkPipeline *out,
                                 infer_error *err) {
    char full[sizeof d->pipes[0].name];
    if (snprintf(full, sizeof full, "%s%s", name, nosg ? "_nosg" : "") >= (int)sizeof full) {
        return set_error(err, INFER_EBACKEND, "Vulkan: shader name '%s' too long", name);
    }
    infer_status s = INFER_OK;
    *out = VK_NULL_HANDLE;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n_pipes; i++) {
        vk_pipe_entry *e = &d->pipes[i];
        if (!strcmp(e->name, full) && !memcmp(e->spec, spec, sizeof e->spec)) {
            *out = e->pipe;
            break;
        }
    }
    if (!*out) {
        const vk_spirv *code = spirv_find(full);
        if (!code) {
            s = set_error(err, INFER_EBACKEND, "Vulkan: no shader '%s' in this build", full);
        } else if (d->n_pipes >= VK_MAX_PIPES) {
            s = set_error(err, INFER_EBACKEND, "Vulkan: more than %d pipelines", VK_MAX_PIPES);
        } else if ((s = pipeline_create(d, code, wg, spec, out, err)) == INFER_OK) {
            vk_pipe_entry *e = &d->pipes[d->n_pipes++];
            snprintf(e->name, sizeof e->name, "%s", full);
            memcpy(e->spec, spec, sizeof e->spec);
            e->pipe = *out;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return s;
}

infer_status vk_pipeline(vk_dev *d, const char *name, const uint32_t spec[3], VkPipeline *out, infer_error *err) {
    const int lanes = vk_shader_uses_lanes(name);
    return pipeline_get(d, name, lanes && !d->subgroups, lanes ? d->wg : 64, spec, out, err);
}

infer_status vk_pipeline_wide(vk_dev *d, const char *name, uint32_t wg, VkPipeline *out, infer_error *err) {
    const uint32_t spec[3] = {wg, 0, 0};
    return pipeline_get(d, name, 1, wg, spec, out, err);
}
