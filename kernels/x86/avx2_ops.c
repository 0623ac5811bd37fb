/* avx2.c - placeholder */
#include "dispatch.h"
#include "ref/quants.h"
#include <string.h>
#include <math.h>
static void q(uint32_t t, const float *x, void *y, int64_t n) { infer_ref_quantize(t, x, y, n); }
static void silu(float *g, const float *u, size_t n) { for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i]; }
static void add(float *x, const float *y, size_t n) { for (size_t i = 0; i < n; i++) x[i] += y[i]; }
static void rms(const float *x, const float *w, float *y, int64_t n, float eps) { double s = 0; for (int64_t i = 0; i < n; i++) s += (double)x[i]*x[i]; float m = (float)(s/(double)n); float sc = 1.0f/sqrtf(m+eps); for (int64_t i = 0; i < n; i++) y[i] = (x[i]*sc)*w[i]; }
static float dot(const uint16_t *a, const uint16_t *b, int64_t n) { float s = 0; for (int64_t i = 0; i < n; i++) s += infer_f16_to_f32(a[i]) * infer_f16_to_f32(b[i]); return s; }
static void axpy(float *y, float a, const uint16_t *x, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] += a * infer_f16_to_f32(x[i]); }
const kernel_table kernels_avx2 = { .isa = INFER_ISA_AVX2, .name = "avx2", .vec_dot_type = infer_ref_vec_dot_type, .quantize_act = q, .matmul = infer_ref_matmul, .dequantize = infer_ref_dequantize, .silu_mul = silu, .add = add, .rms_norm = rms, .dot_f16 = dot, .axpy_f16 = axpy };
