/* kernels_ref_util.h - helpers shared by the reference-kernel suites
 * (test_kernels_ref.c, test_kernels_ref_dot.c; kernels_simd_testutil.h
 * takes CHECK, row_size and fbits from here too): bit casts, f16 bytes,
 * row sizes, a relative comparison, random blocks with sane scales, and
 * CHECK, which counts failures in tight loops and logs the first few. */
#ifndef INFER_KERNELS_REF_UTIL_H
#define INFER_KERNELS_REF_UTIL_H

#include <math.h>

#include "infer_gguf.h"
#include "ref/quants.h" /* infer_f16_to_f32, infer_f32_to_f16 */
#include "testutil.h"

#define CHECK(nfail, cond, ...)                                  \
    do {                                                         \
        if (!(cond) && (nfail)++ < 5) cr_log_error(__VA_ARGS__); \
    } while (0)

static inline uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float h2f(const uint8_t *p) { return infer_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static inline void put_f16(uint8_t *p, float f) {
    uint16_t h = infer_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static inline size_t row_size(uint32_t type, int64_t n) {
    uint64_t b = 0;
    cr_assert_eq(infer_type_row_bytes(type, (uint64_t)n, &b), INFER_OK);
    return (size_t)b;
}

static inline int close_to(float a, float b, float rel) {
    return fabsf(a - b) <= rel * (fabsf(a) + fabsf(b)) || a == b;
}

/* Random bytes with every f16 scale field set to a sane value (random bytes
 * there could be NaN or inf). */
static inline void random_blocks(uint32_t type, uint8_t *x, int64_t nb, uint64_t *rng) {
    const uint32_t bb = infer_type_block_bytes(type);
    for (int64_t i = 0; i < nb * (int64_t)bb; i++) x[i] = (uint8_t)test_rng(rng);
    for (int64_t i = 0; i < nb; i++, x += bb) {
        float d = test_uniform(rng, -0.02f, 0.02f), m = test_uniform(rng, -0.02f, 0.02f);
        switch (type) {
        case INFER_TYPE_Q4_0: case INFER_TYPE_Q5_0: case INFER_TYPE_Q8_0: put_f16(x, d); break;
        case INFER_TYPE_Q4_1: case INFER_TYPE_Q5_1: case INFER_TYPE_Q4_K: case INFER_TYPE_Q5_K:
            put_f16(x, d);
            put_f16(x + 2, m);
            break;
        case INFER_TYPE_Q2_K: put_f16(x + 80, d); put_f16(x + 82, m); break;
        case INFER_TYPE_Q3_K: put_f16(x + 108, d); break;
        case INFER_TYPE_Q6_K: put_f16(x + 208, d); break;
        }
    }
}

#endif
