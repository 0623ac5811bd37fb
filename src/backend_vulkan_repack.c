/*
 * backend_vulkan_repack.c - weights in their device layout, written once
 * at upload (shaders/quant.glsl reads them).
 *
 * GGUF's 32-value blocks are 18, 20, 22, 24 or 34 bytes: their fields sit
 * at 2-byte offsets, which texel reads cannot address. Eight blocks make
 * a group with the scales (and Q5 high bits) first and the quants after,
 * so every field is 4-byte aligned and each block's quants fill whole
 * 16-byte texels; no byte is added except the padding of a row's last
 * group. K-quant super-blocks keep their GGUF layout, padded to a whole
 * number of texels (Q2_K 84 -> 96, Q3_K 110 -> 112, Q6_K 210 -> 224 bytes;
 * Q4_K and Q5_K need none). F32, F16 and BF16 rows are padded with zeros
 * to whole units of 32 values.
 */
#include <string.h>

#include "backend_vulkan.h"

typedef struct {
    uint32_t block_vals;       /* values per GGUF block */
    uint32_t block_bytes;      /* bytes per GGUF block */
    uint32_t blocks_per_group; /* 8 for the 32-value types, 1 otherwise */
    uint32_t group_texels;
} vk_layout;

static int layout_of(uint32_t type, vk_layout *L) {
    switch (type) {
    case INFER_TYPE_F32: *L = (vk_layout){32, 128, 1, 8}; return 0;
    case INFER_TYPE_F16: *L = (vk_layout){32, 64, 1, 4}; return 0;
    case INFER_TYPE_BF16: *L = (vk_layout){32, 64, 1, 4}; return 0;
    case INFER_TYPE_Q4_0: *L = (vk_layout){32, 18, 8, 9}; return 0;
    case INFER_TYPE_Q4_1: *L = (vk_layout){32, 20, 8, 10}; return 0;
    case INFER_TYPE_Q5_0: *L = (vk_layout){32, 22, 8, 11}; return 0;
    case INFER_TYPE_Q5_1: *L = (vk_layout){32, 24, 8, 12}; return 0;
    case INFER_TYPE_Q8_0: *L = (vk_layout){32, 34, 8, 17}; return 0;
    case INFER_TYPE_Q2_K: *L = (vk_layout){256, 84, 1, 6}; return 0;
    case INFER_TYPE_Q3_K: *L = (vk_layout){256, 110, 1, 7}; return 0;
    case INFER_TYPE_Q4_K: *L = (vk_layout){256, 144, 1, 9}; return 0;
    case INFER_TYPE_Q5_K: *L = (vk_layout){256, 176, 1, 11}; return 0;
    case INFER_TYPE_Q6_K: *L = (vk_layout){256, 210, 1, 14}; return 0;
    default: return -1;
    }
}

static int is_float(uint32_t type) {
    return type == INFER_TYPE_F32 || type == INFER_TYPE_F16 || type == INFER_TYPE_BF16;
}

infer_status vk_row_layout(uint32_t type, uint64_t cols, uint32_t *units, uint32_t *row_texels) {
    vk_layout L;
    if (layout_of(type, &L) != 0) return INFER_EUNSUPPORTED;
    uint64_t groups, u, t;
    if (is_float(type)) {
        groups = cols / 32 + (cols % 32 != 0); /* one unit per group */
    } else {
        if (cols % L.block_vals != 0) return INFER_EUNSUPPORTED;
        uint64_t blocks = cols / L.block_vals;
        groups = blocks / L.blocks_per_group + (blocks % L.blocks_per_group != 0);
    }
    /* Every group holds 8 units except the float types' (1). */
    if (ck_mul(groups, (uint64_t)(is_float(type) ? 1 : 8), &u) || ck_mul(groups, (uint64_t)L.group_texels, &t) ||
        u == 0 || u > UINT32_MAX || t > UINT32_MAX) {
        return INFER_EUNSUPPORTED;
    }
    *units = (uint32_t)u;
    *row_texels = (uint32_t)t;
    return INFER_OK;
}

uint32_t vk_act_mode(uint32_t type) {
    switch (type) {
    case INFER_TYPE_F32: return 0;
    case INFER_TYPE_F16: return 1;
    case INFER_TYPE_BF16: return 2;
    case INFER_TYPE_Q4_0: case INFER_TYPE_Q5_0: case INFER_TYPE_Q8_0: return 3;
    case INFER_TYPE_Q4_1: case INFER_TYPE_Q5_1: return 4;
    default: return 5; /* K-quants: Q8_K */
    }
}

/* One group of up to 8 32-value blocks (n_blocks of them real). Field
 * offsets inside a GGUF block: d at 0; m at 2 (Q4_1, Q5_1); qh at 2 (Q5_0)
 * or 4 (Q5_1); quants after. */
static void group_legacy(uint32_t type, const uint8_t *src, uint32_t n_blocks, const vk_layout *L, uint8_t *dst) {
    memset(dst, 0, (size_t)L->group_texels * 16);
    for (uint32_t i = 0; i < n_blocks; i++) {
        const uint8_t *b = src + (size_t)i * L->block_bytes;
        switch (type) {
        case INFER_TYPE_Q4_0:
            memcpy(dst + 2 * i, b, 2);
            memcpy(dst + 16 + 16 * i, b + 2, 16);
            break;
        case INFER_TYPE_Q4_1:
            memcpy(dst + 4 * i, b, 4);
            memcpy(dst + 32 + 16 * i, b + 4, 16);
            break;
        case INFER_TYPE_Q5_0:
            memcpy(dst + 2 * i, b, 2);
            memcpy(dst + 16 + 4 * i, b + 2, 4);
            memcpy(dst + 48 + 16 * i, b + 6, 16);
            break;
        case INFER_TYPE_Q5_1:
            memcpy(dst + 4 * i, b, 4);
            memcpy(dst + 32 + 4 * i, b + 4, 4);
            memcpy(dst + 64 + 16 * i, b + 8, 16);
            break;
        default: /* Q8_0 */
            memcpy(dst + 2 * i, b, 2);
            memcpy(dst + 16 + 32 * i, b + 2, 32);
            break;
        }
    }
}

void vk_repack_row(uint32_t type, const uint8_t *src, uint64_t cols, uint8_t *dst) {
    vk_layout L;
    uint32_t units, texels;
    if (layout_of(type, &L) != 0 || vk_row_layout(type, cols, &units, &texels) != INFER_OK) return;
    const size_t row_bytes = (size_t)texels * 16;
    if (is_float(type)) {
        const size_t n = (size_t)cols * (type == INFER_TYPE_F32 ? 4 : 2);
        memcpy(dst, src, n);
        memset(dst + n, 0, row_bytes - n);
        return;
    }
    const uint64_t blocks = cols / L.block_vals;
    if (L.blocks_per_group == 1) { /* K-quants: copy, pad each block */
        const size_t gb = (size_t)L.group_texels * 16;
        for (uint64_t b = 0; b < blocks; b++) {
            memcpy(dst + b * gb, src + b * L.block_bytes, L.block_bytes);
            memset(dst + b * gb + L.block_bytes, 0, gb - L.block_bytes);
        }
        return;
    }
    for (uint64_t b = 0, g = 0; b < blocks; b += L.blocks_per_group, g++) {
        uint64_t left = blocks - b;
        uint32_t n = left < L.blocks_per_group ? (uint32_t)left : L.blocks_per_group;
        group_legacy(type, src + b * L.block_bytes, n, &L, dst + g * (size_t)L.group_texels * 16);
    }
}
