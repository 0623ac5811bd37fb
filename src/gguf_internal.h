/* gguf_internal.h - the reader's data structures, shared by gguf.c (parse)
 * and gguf_get.c (accessors); the model loader and model_pack.c also look
 * at how the data is held (backing) and read back rows they dropped. */
#ifndef INFER_GGUF_INTERNAL_H
#define INFER_GGUF_INTERNAL_H

#include <stdio.h>

#include "util.h"

/* One metadata entry: 40 bytes, so that a file of the smallest entries
 * (14 bytes each in v3, 10 in v1) costs at most 56 bytes an entry of the
 * reader's memory, sorting included (gguf.c): 3.4-4.7x the file. */
typedef struct {
    infer_gguf_str key; /* non-empty, no NUL, unique; its length field starts the entry */
    union {
        const uint8_t *val;   /* fixed-size payload: scalar or packed array elements */
        const char *chars;    /* STRING scalar: count bytes */
        infer_gguf_str *strs; /* STRING array: one entry per element (owned) */
    };
    uint64_t count;   /* array elements; a STRING scalar's length; 1 for other scalars */
    uint8_t type;     /* infer_gguf_type */
    uint8_t arr_type; /* element type when type == ARRAY */
} gguf_kv;
_Static_assert(sizeof(void *) != 8 || sizeof(gguf_kv) == 40, "gguf_kv: 40 bytes (test_gguf_scale.c's bound)");

/* BORROWED: the caller's memory; MMAP: the file mapped (read-only,
 * private); HEAP: the file read into an anonymous mapping of our own, the
 * file kept open (fd) so that pages dropped from it can be read back. */
enum gguf_backing { GGUF_BORROWED, GGUF_MMAP, GGUF_HEAP };

struct infer_gguf {
    const uint8_t *data;       /* the whole file */
    size_t size;
    enum gguf_backing backing; /* who releases data */
    int fd;                    /* HEAP: the file (closed with g); else -1 */
    int64_t mtime_ns;          /* HEAP: the file's modification time when read */
    unsigned flags;
    uint32_t version;
    uint32_t alignment;        /* general.alignment, or 32 */
    uint64_t data_offset;      /* file offset of the tensor data section */
    uint64_t n_kv;
    gguf_kv *kv;               /* [n_kv] */
    uint64_t n_tensors;
    infer_gguf_tensor *tensors; /* [n_tensors], data pointers inside the file */
    /* Indices into kv and tensors in name order (memcmp, then length), for
     * lookups in O(log n): a loader's thousands of lookups in a file of
     * millions of entries stay cheap. NULL when there are fewer than two. */
    uint64_t *kv_by_name, *tensor_by_name;
};

/* File offset where entry kv begins: its key's length field. */
static inline uint64_t gguf_kv_offset(const infer_gguf *g, const gguf_kv *kv) {
    return (uint64_t)((const uint8_t *)kv->key.ptr - g->data) - (g->version == 1 ? 4u : 8u);
}

/* Read bytes [off, off + len) of a HEAP gguf's file back into its data
 * (pages of it dropped with MADV_DONTNEED read as zeros until then).
 * Fails (INFER_EIO) when the file's size or modification time changed
 * since it was read, or on a short read; INFER_EINVAL for any other
 * backing or a range outside the file. */
infer_status gguf_read_back(const infer_gguf *g, size_t off, size_t len, infer_error *err);

#endif
