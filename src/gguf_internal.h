/* gguf_internal.h - the reader's data structures, shared by gguf.c (parse)
 * and gguf_get.c (accessors). Nothing outside those two files uses them. */
#ifndef INFER_GGUF_INTERNAL_H
#define INFER_GGUF_INTERNAL_H

#include <stdio.h>

#include "util.h"

typedef struct {
    infer_gguf_str key;    /* non-empty, no NUL, unique */
    uint32_t type;         /* infer_gguf_type */
    uint32_t arr_type;     /* element type when type == ARRAY */
    uint64_t count;        /* array elements; 1 for scalars */
    const uint8_t *val;    /* fixed-size payload: scalar or packed array elements */
    infer_gguf_str str;    /* STRING scalar */
    infer_gguf_str *strs;  /* STRING array: one entry per element (owned) */
    uint64_t offset;       /* file offset where this entry begins */
} gguf_kv;

enum gguf_backing { GGUF_BORROWED, GGUF_MMAP, GGUF_HEAP };

struct infer_gguf {
    const uint8_t *data;       /* the whole file */
    size_t size;
    enum gguf_backing backing; /* who releases data */
    unsigned flags;
    uint32_t version;
    uint32_t alignment;        /* general.alignment, or 32 */
    uint64_t data_offset;      /* file offset of the tensor data section */
    uint64_t n_kv;
    gguf_kv *kv;               /* [n_kv] */
    uint64_t n_tensors;
    infer_gguf_tensor *tensors; /* [n_tensors], data pointers inside the file */
};

#endif
