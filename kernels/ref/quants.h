/*
 * quants.h - scalar reference kernels for every weight type infer runs:
 * conversions, dequantization, activation quantization, dot products.
 * These are the truth: every SIMD and GPU kernel is tested against them.
 *
 * Block layouts are ggml's (GGUF's), bit for bit. Numerics follow
 * llama.cpp's CPU reference so that logits agree within the tolerances of
 * ../shared/reference/README.md:
 *   weight type          activations quantized to (vec_dot_type)
 *   F32                  F32
 *   F16                  F16
 *   BF16                 BF16
 *   Q4_0, Q5_0, Q8_0     Q8_0
 *   Q4_1, Q5_1           Q8_1
 *   Q2_K..Q6_K           Q8_K
 *
 * n is always a multiple of the type's block size (callers guarantee it).
 */
#ifndef INFER_KERNELS_REF_QUANTS_H
#define INFER_KERNELS_REF_QUANTS_H

#include <stddef.h>
#include <stdint.h>

/* IEEE half <-> float, round to nearest even (as F16C does). */
float infer_f16_to_f32(uint16_t h);
uint16_t infer_f32_to_f16(float f);
/* bfloat16 <-> float; f32->bf16 rounds to nearest even, NaN stays NaN. */
float infer_bf16_to_f32(uint16_t h);
uint16_t infer_f32_to_bf16(float f);

/* 1 when infer can run weights of this type (F32, F16, BF16, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K). */
int infer_ref_weight_type_supported(uint32_t type);

/* The type activations are converted to before a dot with this weight type
 * (table above); INFER_TYPE_COUNT for an unsupported type. */
uint32_t infer_ref_vec_dot_type(uint32_t weight_type);

/* n values of a supported weight type (or Q8_0/Q8_1/Q8_K) to float. */
void infer_ref_dequantize(uint32_t type, const void *src, float *dst, int64_t n);

/* Quantize n floats to type: F32, F16, BF16, Q8_0, Q8_1, Q8_K (activations;
 * llama.cpp's reference rounding), Q4_0, Q4_1, Q5_0, Q5_1 (weights;
 * byte-identical to llama.cpp's reference quantizer) and Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K (weights; llama.cpp's quantize_row_qN_K_ref searches, what
 * llama-quantize runs without an importance matrix: quantize_k.c). Returns
 * 0, or -1 for a type it cannot produce. */
int infer_ref_quantize(uint32_t type, const float *src, void *dst, int64_t n);

/* Quantize one row of n weights with importance weights qw (n values: the
 * importance matrix's entry for the row's tensor), as llama-quantize does
 * when given an importance matrix: byte-identical to llama.cpp's
 * quantize_row_*_impl for Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K
 * (quantize_imatrix.c). Q8_0 ignores qw, as llama.cpp does, and so does
 * every call with qw NULL (infer_ref_quantize). The 32-value types' weights
 * depend on the whole row: call it a row at a time. Returns 0, or -1 for a
 * type it cannot produce. */
int infer_ref_quantize_imatrix(uint32_t type, const float *src, void *dst, int64_t n, const float *qw);

/* Dot product of one weight row w (weight_type) with one activation row a
 * already quantized to infer_ref_vec_dot_type(weight_type), n values. */
float infer_ref_vec_dot(uint32_t weight_type, int64_t n, const void *w, const void *a);

/* Reference matmul: out[t][r] = dot(row r of W, activation row t), for
 * t < n_tok, r < n_rows. W rows are row_bytes apart; activations (already in
 * vec_dot_type) are act_stride bytes apart; out rows are out_stride floats
 * apart. */
void infer_ref_matmul(uint32_t weight_type, const void *W, size_t row_bytes, int64_t n_rows,
                      int64_t n_cols, const void *act, size_t act_stride, int64_t n_tok,
                      float *out, size_t out_stride);

/* The same for a float type (F32/F16/BF16) with W stored by column: value
 * (r, k) at W + k * k_bytes + r * (its size). Other types give NaN. */
void infer_ref_matmul_kn(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols,
                         const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

#endif
