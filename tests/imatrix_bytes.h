/* imatrix_bytes.h - llama-imatrix's legacy file (tools/imatrix.h) built
 * byte by byte, for the importance-matrix tests (test_imatrix_hostile.c,
 * test_quantize_imatrix.c): well-formed files and every way to break one.
 * Header-only. */
#ifndef INFER_TEST_IMATRIX_BYTES_H
#define INFER_TEST_IMATRIX_BYTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct {
    uint8_t *p;
    size_t n, cap;
} imx_buf;

static inline void imx_put(imx_buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static inline void imx_i32(imx_buf *b, int32_t v) {
    const uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)((uint32_t)v >> 24)};
    imx_put(b, le, 4);
}

static inline void imx_f32(imx_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    imx_i32(b, (int32_t)u);
}

/* One entry: name, ncall and n values (as stored: sums over ncall). */
static inline void imx_entry(imx_buf *b, const char *name, int32_t ncall, const float *v, int32_t n) {
    imx_i32(b, (int32_t)strlen(name));
    imx_put(b, name, strlen(name));
    imx_i32(b, ncall);
    imx_i32(b, n);
    for (int32_t i = 0; i < n; i++) imx_f32(b, v[i]);
}

/* The optional tail: chunk count and dataset name. */
static inline void imx_tail(imx_buf *b, int32_t chunks, const char *dataset) {
    imx_i32(b, chunks);
    imx_i32(b, (int32_t)strlen(dataset));
    imx_put(b, dataset, strlen(dataset));
}

static inline void imx_write(const imx_buf *b, const char *path) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(b->p, 1, b->n, f), b->n);
    cr_assert_eq(fclose(f), 0);
}

#endif
