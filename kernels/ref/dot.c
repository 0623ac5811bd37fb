/*
 * dot.c - the entry points of the reference kernels: which weight types run
 * and with which activation type, dequantize/quantize by type, vec_dot and
 * matmul. The float types' dots are here; the quantized ones live in
 * quants_legacy.c and quants_k.c.
 *
 * The F32/F16/BF16 dots accumulate products of floats in double, as
 * ggml's scalar ggml_vec_dot_{f32,f16,bf16} do (its SIMD paths sum in f32
 * lanes; the difference is far below every tolerance that matters).
 */
#include "ref_internal.h"

/* quantize_k.c: the K-quant weight quantizers (llama.cpp's _ref rounding). */
void ref_quant_q2_k(const float *x, uint8_t *y, int64_t n);
void ref_quant_q3_k(const float *x, uint8_t *y, int64_t n);
void ref_quant_q4_k(const float *x, uint8_t *y, int64_t n);
void ref_quant_q5_k(const float *x, uint8_t *y, int64_t n);
void ref_quant_q6_k(const float *x, uint8_t *y, int64_t n);

typedef void (*dequant_fn)(const uint8_t *x, float *y, int64_t n);
typedef void (*quant_fn)(const float *x, uint8_t *y, int64_t n);
typedef float (*dot_fn)(int64_t n, const uint8_t *w, const uint8_t *a);

static void dequant_f32(const uint8_t *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void dequant_f16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = rd_f16(x + 2 * i);
}

static void dequant_bf16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = infer_bf16_to_f32(rd_u16(x + 2 * i));
}

static void quant_f32(const float *x, uint8_t *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void quant_f16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) wr_u16(y + 2 * i, infer_f32_to_f16(x[i]));
}

static void quant_bf16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) wr_u16(y + 2 * i, infer_f32_to_bf16(x[i]));
}

static float dot_f32(int64_t n, const uint8_t *w, const uint8_t *a) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(rd_f32(w + 4 * i) * rd_f32(a + 4 * i));
    return (float)sum;
}

static float dot_f16(int64_t n, const uint8_t *w, const uint8_t *a) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(rd_f16(w + 2 * i) * rd_f16(a + 2 * i));
    return (float)sum;
}

static float dot_bf16(int64_t n, const uint8_t *w, const uint8_t *a) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(infer_bf16_to_f32(rd_u16(w + 2 * i)) * infer_bf16_to_f32(rd_u16(a + 2 * i)));
    return (float)sum;
}

/* What the reference kernels know about one type. A type with a dot is a
 * supported weight type; dequant/quant may exist without one (Q8_1, Q8_K). */
typedef struct {
    dequant_fn dequant;
    quant_fn quant;
    dot_fn dot;
    uint32_t vec_dot_type;
} ref_type;

static const ref_type REF_TYPES[INFER_TYPE_COUNT] = {
    [INFER_TYPE_F32] = {dequant_f32, quant_f32, dot_f32, INFER_TYPE_F32},
    [INFER_TYPE_F16] = {dequant_f16, quant_f16, dot_f16, INFER_TYPE_F16},
    [INFER_TYPE_BF16] = {dequant_bf16, quant_bf16, dot_bf16, INFER_TYPE_BF16},
    [INFER_TYPE_Q4_0] = {ref_dequant_q4_0, ref_quant_q4_0, ref_dot_q4_0_q8_0, INFER_TYPE_Q8_0},
    [INFER_TYPE_Q4_1] = {ref_dequant_q4_1, ref_quant_q4_1, ref_dot_q4_1_q8_1, INFER_TYPE_Q8_1},
    [INFER_TYPE_Q5_0] = {ref_dequant_q5_0, ref_quant_q5_0, ref_dot_q5_0_q8_0, INFER_TYPE_Q8_0},
    [INFER_TYPE_Q5_1] = {ref_dequant_q5_1, ref_quant_q5_1, ref_dot_q5_1_q8_1, INFER_TYPE_Q8_1},
    [INFER_TYPE_Q8_0] = {ref_dequant_q8_0, ref_quant_q8_0, ref_dot_q8_0_q8_0, INFER_TYPE_Q8_0},
    [INFER_TYPE_Q8_1] = {ref_dequant_q8_1, ref_quant_q8_1, NULL, 0},
    [INFER_TYPE_Q2_K] = {ref_dequant_q2_k, ref_quant_q2_k, ref_dot_q2_k_q8_k, INFER_TYPE_Q8_K},
    [INFER_TYPE_Q3_K] = {ref_dequant_q3_k, ref_quant_q3_k, ref_dot_q3_k_q8_k, INFER_TYPE_Q8_K},
    [INFER_TYPE_Q4_K] = {ref_dequant_q4_k, ref_quant_q4_k, ref_dot_q4_k_q8_k, INFER_TYPE_Q8_K},
    [INFER_TYPE_Q5_K] = {ref_dequant_q5_k, ref_quant_q5_k, ref_dot_q5_k_q8_k, INFER_TYPE_Q8_K},
    [INFER_TYPE_Q6_K] = {ref_dequant_q6_k, ref_quant_q6_k, ref_dot_q6_k_q8_k, INFER_TYPE_Q8_K},
    [INFER_TYPE_Q8_K] = {ref_dequant_q8_k, ref_quant_q8_k, NULL, 0},
};

static const ref_type *ref_type_of(uint32_t type) {
    return type < INFER_TYPE_COUNT ? &REF_TYPES[type] : NULL;
}

int infer_ref_weight_type_supported(uint32_t type) {
    const ref_type *t = ref_type_of(type);
    return t && t->dot != NULL;
}

uint32_t infer_ref_vec_dot_type(uint32_t weight_type) {
    const ref_type *t = ref_type_of(weight_type);
    return t && t->dot ? t->vec_dot_type : INFER_TYPE_COUNT;
}

void infer_ref_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const ref_type *t = ref_type_of(type);
    if (!t || !t->dequant) { /* not ours: make the misuse visible */
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
        return;
    }
    t->dequant((const uint8_t *)src, dst, n);
}

int infer_ref_quantize(uint32_t type, const float *src, void *dst, int64_t n) {
    const ref_type *t = ref_type_of(type);
    if (!t || !t->quant) return -1;
    t->quant(src, (uint8_t *)dst, n);
    return 0;
}

float infer_ref_vec_dot(uint32_t weight_type, int64_t n, const void *w, const void *a) {
    const ref_type *t = ref_type_of(weight_type);
    if (!t || !t->dot) return NAN;
    return t->dot(n, (const uint8_t *)w, (const uint8_t *)a);
}

void infer_ref_matmul(uint32_t weight_type, const void *W, size_t row_bytes, int64_t n_rows,
                      int64_t n_cols, const void *act, size_t act_stride, int64_t n_tok,
                      float *out, size_t out_stride) {
    const ref_type *t = ref_type_of(weight_type);
    const uint8_t *w = (const uint8_t *)W, *a = (const uint8_t *)act;
    for (int64_t tok = 0; tok < n_tok; tok++) {
        float *o = out + (size_t)tok * out_stride;
        const uint8_t *arow = a + (size_t)tok * act_stride;
        for (int64_t r = 0; r < n_rows; r++)
            o[r] = t && t->dot ? t->dot(n_cols, w + (size_t)r * row_bytes, arow) : NAN;
    }
}

void infer_ref_matmul_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                         const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    const int ok = type == INFER_TYPE_F32 || type == INFER_TYPE_F16 || type == INFER_TYPE_BF16;
    const dequant_fn value = ok ? REF_TYPES[type].dequant : NULL; /* one value at a time, as the float dots read them */
    const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
    const uint8_t *w = (const uint8_t *)W, *a = (const uint8_t *)act;
    for (int64_t tok = 0; tok < n_tok; tok++) {
        const uint8_t *arow = a + (size_t)tok * act_stride;
        for (int64_t r = 0; r < n_rows; r++) {
            double sum = 0.0; /* as the float dots above: products of floats summed in double */
            for (int64_t k = 0; ok && k < n_cols; k++) {
                float wv, av;
                value(w + (size_t)k * k_bytes + (size_t)r * es, &wv, 1);
                value(arow + (size_t)k * es, &av, 1);
                sum += (double)(wv * av);
            }
            out[(size_t)tok * out_stride + (size_t)r] = ok ? (float)sum : NAN;
        }
    }
}
