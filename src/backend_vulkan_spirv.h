/* backend_vulkan_spirv.h - the compute shaders, compiled from shaders/ by
 * glslc at build time and embedded by tools/spv2c (build dir, generated). */
#ifndef INFER_BACKEND_VULKAN_SPIRV_H
#define INFER_BACKEND_VULKAN_SPIRV_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;      /* "matmul_q4_0", "attention_nosg", ... */
    const uint32_t *words; /* SPIR-V */
    size_t n_words;
} vk_spirv;

extern const vk_spirv vk_spirv_table[];
extern const size_t vk_spirv_count;

#endif
