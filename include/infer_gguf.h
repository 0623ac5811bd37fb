/*
 * infer_gguf.h - the GGUF reader and writer of infer.
 *
 * GGUF is llama.cpp's model file format: a header of typed key/value
 * metadata, a table of tensor descriptions, then aligned tensor data.
 * This reader treats every file as hostile: once infer_gguf_open*() returns
 * INFER_OK, every string, array and tensor range it hands out lies inside
 * the file, every size was computed with overflow checks, and every count
 * was bounded by the bytes that could hold it before anything was allocated.
 *
 * Strings in GGUF are not NUL-terminated; they are returned as
 * (pointer, length) pairs that point into the file's bytes and stay valid
 * until infer_gguf_close().
 *
 * Included by infer.h; usable on its own.
 */
#ifndef INFER_GGUF_H
#define INFER_GGUF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes and errors (shared with infer.h) ---------------------- */

typedef enum {
    INFER_OK = 0,
    INFER_EINVAL,       /* a caller passed something invalid */
    INFER_EIO,          /* the file could not be opened or read */
    INFER_EFORMAT,      /* the file is malformed */
    INFER_EUNSUPPORTED, /* well-formed, but not something infer handles */
    INFER_ENOMEM,       /* an allocation failed */
    INFER_ECTX_FULL,    /* the context has no room for more tokens */
    INFER_EBUSY,        /* another thread is using this context */
    INFER_EBACKEND,     /* the compute backend failed */
    INFER_ECANCELLED,   /* a callback asked to stop */
    INFER_ENOTFOUND,    /* a metadata key or tensor does not exist */
} infer_status;

#define INFER_ERROR_MSG_MAX 512

/* Filled on failure by every call that takes one; may be NULL. */
typedef struct {
    infer_status status;
    char message[INFER_ERROR_MSG_MAX]; /* NUL-terminated, printable ASCII */
} infer_error;

/* "EFORMAT" etc. Never NULL. */
const char *infer_status_name(infer_status s);

/* ---- ggml tensor types ------------------------------------------------- */

/* The ids GGUF files use (ggml's enum). Gaps are ids that were removed. */
typedef enum {
    INFER_TYPE_F32 = 0,
    INFER_TYPE_F16 = 1,
    INFER_TYPE_Q4_0 = 2,
    INFER_TYPE_Q4_1 = 3,
    INFER_TYPE_Q5_0 = 6,
    INFER_TYPE_Q5_1 = 7,
    INFER_TYPE_Q8_0 = 8,
    INFER_TYPE_Q8_1 = 9,
    INFER_TYPE_Q2_K = 10,
    INFER_TYPE_Q3_K = 11,
    INFER_TYPE_Q4_K = 12,
    INFER_TYPE_Q5_K = 13,
    INFER_TYPE_Q6_K = 14,
    INFER_TYPE_Q8_K = 15,
    INFER_TYPE_IQ2_XXS = 16,
    INFER_TYPE_IQ2_XS = 17,
    INFER_TYPE_IQ3_XXS = 18,
    INFER_TYPE_IQ1_S = 19,
    INFER_TYPE_IQ4_NL = 20,
    INFER_TYPE_IQ3_S = 21,
    INFER_TYPE_IQ2_S = 22,
    INFER_TYPE_IQ4_XS = 23,
    INFER_TYPE_I8 = 24,
    INFER_TYPE_I16 = 25,
    INFER_TYPE_I32 = 26,
    INFER_TYPE_I64 = 27,
    INFER_TYPE_F64 = 28,
    INFER_TYPE_IQ1_M = 29,
    INFER_TYPE_BF16 = 30,
    INFER_TYPE_TQ1_0 = 34,
    INFER_TYPE_TQ2_0 = 35,
    INFER_TYPE_MXFP4 = 39,
    INFER_TYPE_COUNT = 40, /* one past the largest id */
} infer_type;

/* 1 for a known (not removed) type id, else 0. */
int infer_type_valid(uint32_t type);
/* "q4_K" style name; "?" for an invalid id. */
const char *infer_type_name(uint32_t type);
/* Values per block and bytes per block; 0 for an invalid id. */
uint32_t infer_type_block_size(uint32_t type);
uint32_t infer_type_block_bytes(uint32_t type);
/* Bytes for n values (n a multiple of the block size); INFER_EFORMAT when
 * n is not a multiple, INFER_EINVAL for an invalid type, INFER_EFORMAT on
 * overflow. */
infer_status infer_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out);

/* ---- metadata value types ---------------------------------------------- */

typedef enum {
    INFER_GGUF_UINT8 = 0,
    INFER_GGUF_INT8 = 1,
    INFER_GGUF_UINT16 = 2,
    INFER_GGUF_INT16 = 3,
    INFER_GGUF_UINT32 = 4,
    INFER_GGUF_INT32 = 5,
    INFER_GGUF_FLOAT32 = 6,
    INFER_GGUF_BOOL = 7,
    INFER_GGUF_STRING = 8,
    INFER_GGUF_ARRAY = 9,
    INFER_GGUF_UINT64 = 10,
    INFER_GGUF_INT64 = 11,
    INFER_GGUF_FLOAT64 = 12,
    INFER_GGUF_VALUE_TYPE_COUNT = 13,
} infer_gguf_type;

/* "uint32", "string", ...; "?" for an out-of-range value. */
const char *infer_gguf_type_name(uint32_t t);
/* Bytes of one element of a fixed-size type; 0 for STRING, ARRAY, invalid. */
size_t infer_gguf_type_size(uint32_t t);

/* A string inside the file: not NUL-terminated, may contain NUL bytes. */
typedef struct {
    const char *ptr;
    size_t len;
} infer_gguf_str;

/* ---- reading ------------------------------------------------------------ */

typedef struct infer_gguf infer_gguf;

enum {
    INFER_GGUF_NO_MMAP = 1u << 0, /* read() the file into memory */
    /* Accept quantized tensors whose rows are not a whole number of blocks
     * when the tensor as a whole is (blocks then run across rows, as in some
     * old converters' output). Off by default: such a tensor is rejected. */
    INFER_GGUF_BLOCKS_ACROSS_ROWS = 1u << 1,
};

#define INFER_GGUF_MAX_DIMS 4
#define INFER_GGUF_MAX_NAME 63 /* tensor names are 1..63 bytes */
#define INFER_GGUF_DEFAULT_ALIGNMENT 32
#define INFER_GGUF_MAX_ALIGNMENT 65536

typedef struct {
    infer_gguf_str name;
    uint32_t type;                       /* infer_type */
    uint32_t n_dims;                     /* 1..4 */
    uint64_t ne[INFER_GGUF_MAX_DIMS];    /* dims, ne[0] = row length; unused = 1 */
    uint64_t n_elements;                 /* product of ne */
    uint64_t offset;                     /* relative to the data section */
    uint64_t n_bytes;                    /* exact byte size of the data */
    const void *data;                    /* inside the file, n_bytes long */
    uint64_t info_offset;                /* file offset of this tensor info */
} infer_gguf_tensor;

/* Open a file (mmap PROT_READ, or read() with INFER_GGUF_NO_MMAP or when
 * mmap is impossible) and validate all of it. */
infer_status infer_gguf_open(const char *path, unsigned flags, infer_gguf **out,
                             infer_error *err);
/* Parse a caller's buffer, which must outlive the returned handle. */
infer_status infer_gguf_open_memory(const void *data, size_t size, unsigned flags,
                                    infer_gguf **out, infer_error *err);
void infer_gguf_close(infer_gguf *g); /* NULL is fine */

uint32_t infer_gguf_version(const infer_gguf *g);
uint32_t infer_gguf_alignment(const infer_gguf *g);
uint64_t infer_gguf_data_offset(const infer_gguf *g); /* file offset of tensor data */
uint64_t infer_gguf_file_size(const infer_gguf *g);
const void *infer_gguf_file_data(const infer_gguf *g); /* all the file's bytes */

/* Metadata by index (0 .. n_kv-1). Out-of-range indexes give empty/invalid
 * answers, never a crash. */
uint64_t infer_gguf_kv_count(const infer_gguf *g);
infer_gguf_str infer_gguf_kv_key(const infer_gguf *g, uint64_t i);
uint32_t infer_gguf_kv_type(const infer_gguf *g, uint64_t i);     /* infer_gguf_type */
uint32_t infer_gguf_kv_arr_type(const infer_gguf *g, uint64_t i); /* element type */
uint64_t infer_gguf_kv_arr_count(const infer_gguf *g, uint64_t i);
/* Index of key, or -1. key is a NUL-terminated C string. */
int64_t infer_gguf_find_key(const infer_gguf *g, const char *key);

/* Scalar getters by index: INFER_EFORMAT with a message naming the key on a
 * type mismatch (no conversion), INFER_EINVAL on a bad index. */
infer_status infer_gguf_kv_scalar(const infer_gguf *g, uint64_t i, uint32_t type,
                                  void *out, infer_error *err);
infer_status infer_gguf_kv_string(const infer_gguf *g, uint64_t i, infer_gguf_str *out,
                                  infer_error *err);

/* Scalar getters by key: INFER_ENOTFOUND when missing, INFER_EFORMAT on a
 * wrong type. */
infer_status infer_gguf_get_u8(const infer_gguf *g, const char *key, uint8_t *out, infer_error *err);
infer_status infer_gguf_get_i8(const infer_gguf *g, const char *key, int8_t *out, infer_error *err);
infer_status infer_gguf_get_u16(const infer_gguf *g, const char *key, uint16_t *out, infer_error *err);
infer_status infer_gguf_get_i16(const infer_gguf *g, const char *key, int16_t *out, infer_error *err);
infer_status infer_gguf_get_u32(const infer_gguf *g, const char *key, uint32_t *out, infer_error *err);
infer_status infer_gguf_get_i32(const infer_gguf *g, const char *key, int32_t *out, infer_error *err);
infer_status infer_gguf_get_u64(const infer_gguf *g, const char *key, uint64_t *out, infer_error *err);
infer_status infer_gguf_get_i64(const infer_gguf *g, const char *key, int64_t *out, infer_error *err);
infer_status infer_gguf_get_f32(const infer_gguf *g, const char *key, float *out, infer_error *err);
infer_status infer_gguf_get_f64(const infer_gguf *g, const char *key, double *out, infer_error *err);
infer_status infer_gguf_get_bool(const infer_gguf *g, const char *key, int *out, infer_error *err);
infer_status infer_gguf_get_str(const infer_gguf *g, const char *key, infer_gguf_str *out,
                                infer_error *err);
/* Any integer type whose value is >= 0, widened: for hyperparameters that
 * converters write as UINT32 or INT32 or UINT64. */
infer_status infer_gguf_get_uint(const infer_gguf *g, const char *key, uint64_t *out,
                                 infer_error *err);

/* Arrays by index. arr_read copies elements [first, first+n) of an array
 * whose element type is exactly elem_type (not STRING) into dst.
 * arr_str returns element i of a string array. */
infer_status infer_gguf_arr_read(const infer_gguf *g, uint64_t kv, uint32_t elem_type,
                                 uint64_t first, uint64_t n, void *dst, infer_error *err);
infer_status infer_gguf_arr_str(const infer_gguf *g, uint64_t kv, uint64_t i,
                                infer_gguf_str *out, infer_error *err);

/* Tensors by index, and by NUL-terminated name (-1 when absent). */
uint64_t infer_gguf_tensor_count(const infer_gguf *g);
const infer_gguf_tensor *infer_gguf_tensor_at(const infer_gguf *g, uint64_t i);
int64_t infer_gguf_find_tensor(const infer_gguf *g, const char *name);

/* ---- writing ------------------------------------------------------------ */

/* Builds a GGUF v3 file in memory. Every call copies what it is given.
 * Errors are sticky: after the first failure every call returns it, and
 * finish/write report it. Keys are checked for emptiness and duplicates;
 * tensors for name length, duplicates, type, dims and size. */
typedef struct infer_gguf_writer infer_gguf_writer;

infer_status infer_gguf_writer_new(infer_gguf_writer **out, infer_error *err);
void infer_gguf_writer_free(infer_gguf_writer *w); /* NULL is fine */

/* One scalar of a fixed-size type; value points at that type's C value
 * (uint8_t for BOOL). */
infer_status infer_gguf_writer_set(infer_gguf_writer *w, const char *key, uint32_t type,
                                   const void *value);
infer_status infer_gguf_writer_set_u32(infer_gguf_writer *w, const char *key, uint32_t v);
infer_status infer_gguf_writer_set_f32(infer_gguf_writer *w, const char *key, float v);
infer_status infer_gguf_writer_set_str(infer_gguf_writer *w, const char *key, const char *s,
                                       size_t len);
/* An array of n fixed-size elements, little-endian, packed. */
infer_status infer_gguf_writer_set_arr(infer_gguf_writer *w, const char *key, uint32_t elem_type,
                                       const void *elems, uint64_t n);
/* An array of n strings; lens[i] bytes of strs[i] (lens may be NULL: strlen). */
infer_status infer_gguf_writer_set_arr_str(infer_gguf_writer *w, const char *key,
                                           const char *const *strs, const size_t *lens,
                                           uint64_t n);
/* Alignment (power of two, <= INFER_GGUF_MAX_ALIGNMENT); also written as
 * general.alignment when not the default 32. Call before adding tensors. */
infer_status infer_gguf_writer_set_alignment(infer_gguf_writer *w, uint32_t alignment);
/* A tensor; data must be exactly the type's byte size for the dims. */
infer_status infer_gguf_writer_add_tensor(infer_gguf_writer *w, const char *name, uint32_t type,
                                          uint32_t n_dims, const uint64_t *ne, const void *data,
                                          size_t n_bytes);
/* The file's bytes, malloc'd; the caller free()s *out. */
infer_status infer_gguf_writer_finish(infer_gguf_writer *w, void **out, size_t *size,
                                      infer_error *err);
infer_status infer_gguf_writer_write_file(infer_gguf_writer *w, const char *path,
                                          infer_error *err);

#ifdef __cplusplus
}
#endif

#endif /* INFER_GGUF_H */
