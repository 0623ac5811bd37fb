/* gguf_bytes.h - a raw GGUF byte builder for tests: it writes what the
 * project's writer would refuse to (duplicates, bad counts, cut-off
 * entries), so the reader's tests can hand it malformed files. Header-only;
 * each suite that includes it gets its own static copy. */
#ifndef INFER_TEST_GGUF_BYTES_H
#define INFER_TEST_GGUF_BYTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "infer_gguf.h"

typedef struct {
    uint8_t *p;
    size_t len, cap;
    uint32_t version; /* 1: counts and lengths are u32 */
} bb;

static inline void put(bb *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static inline void put_u8(bb *b, uint8_t v) { put(b, &v, 1); }
static inline void put_u32(bb *b, uint32_t v) { put(b, &v, 4); }
static inline void put_u64(bb *b, uint64_t v) { put(b, &v, 8); }
static inline void put_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) put_u8(b, 0);
}
/* A count or length in the file's version. */
static inline void put_count(bb *b, uint64_t v) {
    if (b->version == 1) put_u32(b, (uint32_t)v);
    else put_u64(b, v);
}
static inline void put_str(bb *b, const char *s, size_t n) {
    put_count(b, n);
    put(b, s, n);
}
static inline void put_cstr(bb *b, const char *s) { put_str(b, s, strlen(s)); }

/* Start a file in b (which must be zeroed or hold an earlier file: its
 * buffer is reused). */
static inline void header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->len = 0;
    b->version = version;
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_count(b, n_tensors);
    put_count(b, n_kv);
}

static inline void kv_u32(bb *b, const char *key, uint32_t v) {
    put_cstr(b, key);
    put_u32(b, INFER_GGUF_UINT32);
    put_u32(b, v);
}

static inline void kv_str(bb *b, const char *key, const char *v) {
    put_cstr(b, key);
    put_u32(b, INFER_GGUF_STRING);
    put_cstr(b, v);
}

/* One tensor info; ne holds n_dims values (n_dims may be anything). */
static inline void tinfo_n(bb *b, const char *name, size_t name_len, uint32_t n_dims, const uint64_t *ne,
                    uint32_t type, uint64_t offset) {
    put_str(b, name, name_len);
    put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put_count(b, ne[d]);
    put_u32(b, type);
    put_u64(b, offset);
}
#define TINFO(b, name, type, offset, ...)                                                    \
    tinfo_n((b), (name), strlen(name), (uint32_t)(sizeof((uint64_t[]){__VA_ARGS__}) / 8),   \
            (uint64_t[]){__VA_ARGS__}, (type), (offset))

static inline void pad_to(bb *b, size_t align) {
    while (b->len % align) put_u8(b, 0);
}

static inline void bb_free(bb *b) { free(b->p); }

#endif
