/* types.c - the ggml tensor type table: names, block sizes, bytes per block.
 * Ids and layouts are ggml's (the GGUF format's); removed ids are absent. */
#include "util.h"

typedef struct {
    const char *name;
    uint32_t block_size;  /* values per block */
    uint32_t block_bytes; /* bytes per block */
} type_info;

static const type_info TYPES[INFER_TYPE_COUNT] = {
    [INFER_TYPE_F32] = {"f32", 1, 4},
    [INFER_TYPE_F16] = {"f16", 1, 2},
    [INFER_TYPE_Q4_0] = {"q4_0", 32, 18},      /* f16 d, 16 B nibbles */
    [INFER_TYPE_Q4_1] = {"q4_1", 32, 20},      /* f16 d, f16 m, 16 B */
    [INFER_TYPE_Q5_0] = {"q5_0", 32, 22},      /* f16 d, 4 B high bits, 16 B */
    [INFER_TYPE_Q5_1] = {"q5_1", 32, 24},      /* f16 d, f16 m, 4 B, 16 B */
    [INFER_TYPE_Q8_0] = {"q8_0", 32, 34},      /* f16 d, 32 int8 */
    [INFER_TYPE_Q8_1] = {"q8_1", 32, 36},      /* f16 d, f16 s, 32 int8 */
    [INFER_TYPE_Q2_K] = {"q2_K", 256, 84},     /* 16 scales, 64 qs, d, dmin */
    [INFER_TYPE_Q3_K] = {"q3_K", 256, 110},    /* 32 hmask, 64 qs, 12 scales, d */
    [INFER_TYPE_Q4_K] = {"q4_K", 256, 144},    /* d, dmin, 12 scales, 128 qs */
    [INFER_TYPE_Q5_K] = {"q5_K", 256, 176},    /* d, dmin, 12 scales, 32 qh, 128 qs */
    [INFER_TYPE_Q6_K] = {"q6_K", 256, 210},    /* 128 ql, 64 qh, 16 scales, d */
    [INFER_TYPE_Q8_K] = {"q8_K", 256, 292},    /* f32 d, 256 int8, 16 int16 sums */
    [INFER_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [INFER_TYPE_IQ2_XS] = {"iq2_xs", 256, 74},
    [INFER_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [INFER_TYPE_IQ1_S] = {"iq1_s", 256, 50},
    [INFER_TYPE_IQ4_NL] = {"iq4_nl", 32, 18},
    [INFER_TYPE_IQ3_S] = {"iq3_s", 256, 110},
    [INFER_TYPE_IQ2_S] = {"iq2_s", 256, 82},
    [INFER_TYPE_IQ4_XS] = {"iq4_xs", 256, 136},
    [INFER_TYPE_I8] = {"i8", 1, 1},
    [INFER_TYPE_I16] = {"i16", 1, 2},
    [INFER_TYPE_I32] = {"i32", 1, 4},
    [INFER_TYPE_I64] = {"i64", 1, 8},
    [INFER_TYPE_F64] = {"f64", 1, 8},
    [INFER_TYPE_IQ1_M] = {"iq1_m", 256, 56},
    [INFER_TYPE_BF16] = {"bf16", 1, 2},
    [INFER_TYPE_TQ1_0] = {"tq1_0", 256, 54},
    [INFER_TYPE_TQ2_0] = {"tq2_0", 256, 66},
    [INFER_TYPE_MXFP4] = {"mxfp4", 32, 17},    /* e8m0 scale, 16 B fp4 */
};

int infer_type_valid(uint32_t type) {
    return type < INFER_TYPE_COUNT && TYPES[type].name != NULL;
}

const char *infer_type_name(uint32_t type) {
    return infer_type_valid(type) ? TYPES[type].name : "?";
}

uint32_t infer_type_block_size(uint32_t type) {
    return infer_type_valid(type) ? TYPES[type].block_size : 0;
}

uint32_t infer_type_block_bytes(uint32_t type) {
    return infer_type_valid(type) ? TYPES[type].block_bytes : 0;
}

infer_status infer_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out) {
    if (!infer_type_valid(type)) return INFER_EINVAL;
    const type_info *t = &TYPES[type];
    if (n % t->block_size != 0) return INFER_EFORMAT;
    if (ck_mul(n / t->block_size, (uint64_t)t->block_bytes, out)) return INFER_EFORMAT;
    return INFER_OK;
}

static const char *const VALUE_TYPE_NAMES[INFER_GGUF_VALUE_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

static const uint8_t VALUE_TYPE_SIZES[INFER_GGUF_VALUE_TYPE_COUNT] = {
    1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8,
};

const char *infer_gguf_type_name(uint32_t t) {
    return t < INFER_GGUF_VALUE_TYPE_COUNT ? VALUE_TYPE_NAMES[t] : "?";
}

size_t infer_gguf_type_size(uint32_t t) {
    return t < INFER_GGUF_VALUE_TYPE_COUNT ? VALUE_TYPE_SIZES[t] : 0;
}
