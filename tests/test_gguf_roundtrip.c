/* test_gguf_roundtrip.c - the writer and the reader agree, bit for bit.
 *
 * Each seed builds a random file description (metadata of every value type,
 * strings and string arrays with arbitrary bytes, tensors of every valid
 * ggml type with random shapes and data, sometimes a random alignment),
 * writes it with infer_gguf_writer, reads it back and compares everything:
 * keys, types, values, array contents, tensor names/types/dims/data, the
 * alignment, and the exact layout (data offset, tensor offsets, file size)
 * computed independently from the GGUF v3 format rules. */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer_gguf.h"
#include "testutil.h"


#define RT_FILES 220
#define RT_MAX_KV 24
#define RT_MAX_TENSORS 6
#define RT_MAX_ARR 20
#define RT_MAX_STR 40

/* What a seed wrote, kept to compare the read-back against. */
typedef struct {
    char key[72];       /* NUL-terminated: the writer takes C strings */
    uint32_t type;      /* infer_gguf_type */
    uint32_t arr_type;  /* element type of an array */
    uint64_t count;     /* array elements */
    uint8_t raw[RT_MAX_ARR * 8]; /* scalar, or packed array elements */
    char str[RT_MAX_STR];        /* STRING value (any bytes) */
    size_t str_len;
    char strs[RT_MAX_ARR][RT_MAX_STR]; /* STRING array elements */
    size_t lens[RT_MAX_ARR];
    int lens_null;                     /* written with lens == NULL (strlen) */
} rt_kv;

typedef struct {
    char name[INFER_GGUF_MAX_NAME + 1];
    uint32_t type, n_dims;
    uint64_t ne[INFER_GGUF_MAX_DIMS];
    uint8_t *data;
    size_t n_bytes;
} rt_tensor;

typedef struct {
    uint32_t alignment; /* 32 unless set */
    int set_alignment;
    size_t n_kv;
    rt_kv kv[RT_MAX_KV + 1];
    size_t n_tensors;
    rt_tensor tensors[RT_MAX_TENSORS];
} rt_file;

static const uint32_t FIXED_TYPES[] = {
    INFER_GGUF_UINT8,   INFER_GGUF_INT8,   INFER_GGUF_UINT16, INFER_GGUF_INT16,
    INFER_GGUF_UINT32,  INFER_GGUF_INT32,  INFER_GGUF_FLOAT32, INFER_GGUF_BOOL,
    INFER_GGUF_UINT64,  INFER_GGUF_INT64,  INFER_GGUF_FLOAT64,
};
#define N_FIXED (sizeof FIXED_TYPES / sizeof FIXED_TYPES[0])

/* Every valid tensor type id, found from the type table. */
static size_t valid_tensor_types(uint32_t *out) {
    size_t n = 0;
    for (uint32_t t = 0; t < INFER_TYPE_COUNT; t++) {
        if (infer_type_valid(t)) out[n++] = t;
    }
    return n;
}

static uint64_t rnd(uint64_t *s, uint64_t n) { return n ? test_rng(s) % n : 0; }

static void rnd_bytes(uint64_t *s, void *dst, size_t n) {
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = (uint8_t)test_rng(s);
}

/* Random bytes 1..255 (keys and tensor names cannot hold NUL: C strings). */
static void rnd_nonzero(uint64_t *s, char *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (char)(1 + rnd(s, 255));
}

/* Any bytes, often with NUL and high bytes; sometimes empty. */
static size_t rnd_string(uint64_t *s, char *dst) {
    size_t len = rnd(s, 4) == 0 ? 0 : (size_t)rnd(s, RT_MAX_STR);
    for (size_t i = 0; i < len; i++) {
        uint64_t r = rnd(s, 8);
        dst[i] = r == 0 ? '\0' : r < 4 ? (char)('a' + rnd(s, 26)) : (char)rnd(s, 256);
    }
    return len;
}

static void make_key(uint64_t *s, rt_kv *kv, size_t index) {
    /* A unique prefix, then random non-NUL bytes (high bytes, controls). */
    int n = snprintf(kv->key, sizeof kv->key, "k%zu.", index);
    size_t extra = (size_t)rnd(s, 24);
    rnd_nonzero(s, kv->key + n, extra);
    kv->key[n + extra] = '\0';
}

static void make_value(uint64_t *s, rt_kv *kv, uint32_t kind) {
    /* kind: 0..10 a fixed scalar type, 11 string, 12 fixed array, 13 string array */
    if (kind < N_FIXED) {
        kv->type = FIXED_TYPES[kind];
        rnd_bytes(s, kv->raw, infer_gguf_type_size(kv->type));
        if (kv->type == INFER_GGUF_BOOL) kv->raw[0] = (uint8_t)rnd(s, 2);
    } else if (kind == N_FIXED) {
        kv->type = INFER_GGUF_STRING;
        kv->str_len = rnd_string(s, kv->str);
    } else if (kind == N_FIXED + 1) {
        kv->type = INFER_GGUF_ARRAY;
        kv->arr_type = FIXED_TYPES[rnd(s, N_FIXED)];
        kv->count = rnd(s, 5) == 0 ? 0 : rnd(s, RT_MAX_ARR + 1);
        rnd_bytes(s, kv->raw, (size_t)kv->count * infer_gguf_type_size(kv->arr_type));
        if (kv->arr_type == INFER_GGUF_BOOL) {
            for (uint64_t i = 0; i < kv->count; i++) kv->raw[i] &= 1;
        }
    } else {
        kv->type = INFER_GGUF_ARRAY;
        kv->arr_type = INFER_GGUF_STRING;
        kv->count = rnd(s, 5) == 0 ? 0 : rnd(s, RT_MAX_ARR + 1);
        kv->lens_null = rnd(s, 4) == 0;
        for (uint64_t i = 0; i < kv->count; i++) {
            if (kv->lens_null) { /* strlen-terminated: no NUL inside */
                kv->lens[i] = (size_t)rnd(s, RT_MAX_STR - 1);
                rnd_nonzero(s, kv->strs[i], kv->lens[i]);
                kv->strs[i][kv->lens[i]] = '\0';
            } else {
                kv->lens[i] = rnd_string(s, kv->strs[i]);
            }
        }
    }
}

static void make_tensor(uint64_t *s, rt_tensor *t, size_t index, uint32_t type) {
    int n = snprintf(t->name, sizeof t->name, "t%zu", index);
    size_t max_extra = INFER_GGUF_MAX_NAME - (size_t)n;
    size_t extra = rnd(s, 6) == 0 ? max_extra : (size_t)rnd(s, 20);
    rnd_nonzero(s, t->name + n, extra);
    t->name[n + extra] = '\0';
    t->type = type;
    t->n_dims = 1 + (uint32_t)rnd(s, INFER_GGUF_MAX_DIMS);
    uint32_t bs = infer_type_block_size(type);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < INFER_GGUF_MAX_DIMS; d++) {
        t->ne[d] = d >= t->n_dims ? 1 : d == 0 ? bs * (1 + rnd(s, bs == 1 ? 9 : 2)) : 1 + rnd(s, 3);
        n_el *= t->ne[d];
    }
    t->n_bytes = (size_t)(n_el / bs * infer_type_block_bytes(type));
    t->data = malloc(t->n_bytes);
    cr_assert(t->data);
    rnd_bytes(s, t->data, t->n_bytes);
}

/* A random description for seed; the type list forces every tensor type to
 * appear across the seeds, the kind cycle every value kind. */
static void make_file(uint64_t seed, rt_file *f) {
    uint64_t s = seed * 0x5851f42d4c957f2dull + 1;
    uint32_t types[INFER_TYPE_COUNT];
    size_t n_types = valid_tensor_types(types);
    memset(f, 0, sizeof *f);
    f->alignment = INFER_GGUF_DEFAULT_ALIGNMENT;
    if (seed % 5 == 3) {
        f->set_alignment = 1;
        f->alignment = 1u << (seed == 3 ? 16 : rnd(&s, 13)); /* 1 .. 4096, once 65536 */
    }
    f->n_kv = (size_t)rnd(&s, RT_MAX_KV + 1);
    for (size_t i = 0; i < f->n_kv; i++) {
        make_key(&s, &f->kv[i], i);
        make_value(&s, &f->kv[i], (uint32_t)((seed + i) % (N_FIXED + 3)));
    }
    f->n_tensors = seed % 11 == 0 ? 0 : 1 + (size_t)rnd(&s, RT_MAX_TENSORS);
    for (size_t i = 0; i < f->n_tensors; i++) {
        uint32_t type = i == 0 ? types[seed % n_types] : types[rnd(&s, n_types)];
        make_tensor(&s, &f->tensors[i], i, type);
    }
}

static void free_file(rt_file *f) {
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].data);
}

/* Write f; every writer call must succeed. */
static void write_file(const rt_file *f, infer_gguf_writer **out) {
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK, "%s", err.message);
    if (f->set_alignment) cr_assert_eq(infer_gguf_writer_set_alignment(w, f->alignment), INFER_OK);
    for (size_t i = 0; i < f->n_kv; i++) {
        const rt_kv *kv = &f->kv[i];
        infer_status s;
        if (kv->type == INFER_GGUF_STRING) {
            s = infer_gguf_writer_set_str(w, kv->key, kv->str, kv->str_len);
        } else if (kv->type == INFER_GGUF_ARRAY && kv->arr_type == INFER_GGUF_STRING) {
            const char *ptrs[RT_MAX_ARR];
            for (uint64_t j = 0; j < kv->count; j++) ptrs[j] = kv->strs[j];
            s = infer_gguf_writer_set_arr_str(w, kv->key, ptrs, kv->lens_null ? NULL : kv->lens,
                                              kv->count);
        } else if (kv->type == INFER_GGUF_ARRAY) {
            s = infer_gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->raw, kv->count);
        } else if (kv->type == INFER_GGUF_UINT32 && i % 2) {
            uint32_t v;
            memcpy(&v, kv->raw, 4);
            s = infer_gguf_writer_set_u32(w, kv->key, v);
        } else if (kv->type == INFER_GGUF_FLOAT32 && i % 2) {
            float v;
            memcpy(&v, kv->raw, 4);
            s = infer_gguf_writer_set_f32(w, kv->key, v);
        } else {
            s = infer_gguf_writer_set(w, kv->key, kv->type, kv->raw);
        }
        cr_assert_eq(s, INFER_OK, "writer rejected key %zu (type %u)", i, kv->type);
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const rt_tensor *t = &f->tensors[i];
        cr_assert_eq(infer_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data,
                                                  t->n_bytes),
                     INFER_OK, "writer rejected tensor %zu (%s)", i, infer_type_name(t->type));
    }
    *out = w;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* The exact v3 layout, computed from the format rules, not from the writer. */
static uint64_t expected_header_bytes(const rt_file *f) {
    uint64_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < f->n_kv; i++) {
        const rt_kv *kv = &f->kv[i];
        n += 8 + strlen(kv->key) + 4;
        if (kv->type == INFER_GGUF_STRING) {
            n += 8 + kv->str_len;
        } else if (kv->type == INFER_GGUF_ARRAY) {
            n += 4 + 8;
            if (kv->arr_type == INFER_GGUF_STRING) {
                for (uint64_t j = 0; j < kv->count; j++) n += 8 + kv->lens[j];
            } else {
                n += kv->count * infer_gguf_type_size(kv->arr_type);
            }
        } else {
            n += infer_gguf_type_size(kv->type);
        }
    }
    if (f->set_alignment) n += 8 + strlen("general.alignment") + 4 + 4;
    for (size_t i = 0; i < f->n_tensors; i++) {
        n += 8 + strlen(f->tensors[i].name) + 4 + 8 * f->tensors[i].n_dims + 4 + 8;
    }
    return n;
}

static void check_kv(const infer_gguf *g, uint64_t idx, const rt_kv *kv, uint64_t seed) {
    infer_error err = {0};
    infer_gguf_str k = infer_gguf_kv_key(g, idx);
    size_t klen = strlen(kv->key);
    cr_assert_eq(k.len, klen, "seed %llu kv %llu: key length", (unsigned long long)seed,
                 (unsigned long long)idx);
    cr_assert(memcmp(k.ptr, kv->key, klen) == 0, "seed %llu kv %llu: key bytes",
              (unsigned long long)seed, (unsigned long long)idx);
    cr_assert_eq(infer_gguf_find_key(g, kv->key), (int64_t)idx);
    cr_assert_eq(infer_gguf_kv_type(g, idx), kv->type, "seed %llu kv %llu: type",
                 (unsigned long long)seed, (unsigned long long)idx);

    if (kv->type == INFER_GGUF_STRING) {
        infer_gguf_str v = {0}, v2 = {0};
        cr_assert_eq(infer_gguf_kv_string(g, idx, &v, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(v.len, kv->str_len);
        cr_assert(kv->str_len == 0 || memcmp(v.ptr, kv->str, kv->str_len) == 0,
                  "seed %llu: string bytes differ", (unsigned long long)seed);
        cr_assert_eq(infer_gguf_get_str(g, kv->key, &v2, &err), INFER_OK, "%s", err.message);
        cr_assert(v2.ptr == v.ptr && v2.len == v.len);
        cr_assert_eq(infer_gguf_kv_arr_count(g, idx), 0);
        return;
    }
    if (kv->type != INFER_GGUF_ARRAY) {
        uint8_t out[8], out2[8];
        size_t size = infer_gguf_type_size(kv->type);
        memset(out, 0xa5, sizeof out);
        cr_assert_eq(infer_gguf_kv_scalar(g, idx, kv->type, out, &err), INFER_OK, "%s", err.message);
        cr_assert(memcmp(out, kv->raw, size) == 0, "seed %llu: %s value differs",
                  (unsigned long long)seed, infer_gguf_type_name(kv->type));
        cr_assert_eq(out[size < 8 ? size : 7], size < 8 ? 0xa5 : out[7], "wrote past the value");
        /* The typed getter by key returns the same bits. */
        union {
            uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            uint64_t u64; int64_t i64; float f32; double f64;
        } v;
        infer_status s;
        int b = -1;
        memset(&v, 0, sizeof v);
        switch (kv->type) {
        case INFER_GGUF_UINT8: s = infer_gguf_get_u8(g, kv->key, &v.u8, &err); break;
        case INFER_GGUF_INT8: s = infer_gguf_get_i8(g, kv->key, &v.i8, &err); break;
        case INFER_GGUF_UINT16: s = infer_gguf_get_u16(g, kv->key, &v.u16, &err); break;
        case INFER_GGUF_INT16: s = infer_gguf_get_i16(g, kv->key, &v.i16, &err); break;
        case INFER_GGUF_UINT32: s = infer_gguf_get_u32(g, kv->key, &v.u32, &err); break;
        case INFER_GGUF_INT32: s = infer_gguf_get_i32(g, kv->key, &v.i32, &err); break;
        case INFER_GGUF_UINT64: s = infer_gguf_get_u64(g, kv->key, &v.u64, &err); break;
        case INFER_GGUF_INT64: s = infer_gguf_get_i64(g, kv->key, &v.i64, &err); break;
        case INFER_GGUF_FLOAT32: s = infer_gguf_get_f32(g, kv->key, &v.f32, &err); break;
        case INFER_GGUF_FLOAT64: s = infer_gguf_get_f64(g, kv->key, &v.f64, &err); break;
        case INFER_GGUF_BOOL:
            s = infer_gguf_get_bool(g, kv->key, &b, &err);
            cr_assert_eq(b, kv->raw[0]);
            v.u8 = (uint8_t)b;
            break;
        default: s = INFER_EINVAL; break;
        }
        memcpy(out2, &v, size);
        cr_assert_eq(s, INFER_OK, "getter for %s: %s", infer_gguf_type_name(kv->type), err.message);
        cr_assert(memcmp(out2, kv->raw, size) == 0, "typed getter for %s differs",
                  infer_gguf_type_name(kv->type));
        /* get_uint widens every integer type; negative ones are refused. */
        uint64_t u = 0;
        s = infer_gguf_get_uint(g, kv->key, &u, &err);
        int64_t sv = 0;
        uint64_t uv = 0;
        int is_int = 1, neg = 0;
        switch (kv->type) {
        case INFER_GGUF_UINT8: uv = kv->raw[0]; break;
        case INFER_GGUF_UINT16: { uint16_t x; memcpy(&x, kv->raw, 2); uv = x; break; }
        case INFER_GGUF_UINT32: { uint32_t x; memcpy(&x, kv->raw, 4); uv = x; break; }
        case INFER_GGUF_UINT64: memcpy(&uv, kv->raw, 8); break;
        case INFER_GGUF_INT8: { int8_t x; memcpy(&x, kv->raw, 1); sv = x; neg = x < 0; uv = (uint64_t)sv; break; }
        case INFER_GGUF_INT16: { int16_t x; memcpy(&x, kv->raw, 2); sv = x; neg = x < 0; uv = (uint64_t)sv; break; }
        case INFER_GGUF_INT32: { int32_t x; memcpy(&x, kv->raw, 4); sv = x; neg = x < 0; uv = (uint64_t)sv; break; }
        case INFER_GGUF_INT64: memcpy(&sv, kv->raw, 8); neg = sv < 0; uv = (uint64_t)sv; break;
        default: is_int = 0; break;
        }
        if (!is_int || neg) {
            cr_assert_eq(s, INFER_EFORMAT, "get_uint on %s", infer_gguf_type_name(kv->type));
        } else {
            cr_assert_eq(s, INFER_OK, "get_uint: %s", err.message);
            cr_assert_eq(u, uv);
        }
        return;
    }

    cr_assert_eq(infer_gguf_kv_arr_type(g, idx), kv->arr_type, "seed %llu: array element type",
                 (unsigned long long)seed);
    cr_assert_eq(infer_gguf_kv_arr_count(g, idx), kv->count, "seed %llu: array count",
                 (unsigned long long)seed);
    if (kv->arr_type == INFER_GGUF_STRING) {
        for (uint64_t j = 0; j < kv->count; j++) {
            infer_gguf_str v = {0};
            cr_assert_eq(infer_gguf_arr_str(g, idx, j, &v, &err), INFER_OK, "%s", err.message);
            cr_assert_eq(v.len, kv->lens[j], "seed %llu: string %llu length", (unsigned long long)seed,
                         (unsigned long long)j);
            cr_assert(v.len == 0 || memcmp(v.ptr, kv->strs[j], v.len) == 0,
                      "seed %llu: string %llu bytes", (unsigned long long)seed, (unsigned long long)j);
        }
        infer_gguf_str v;
        cr_assert_eq(infer_gguf_arr_str(g, idx, kv->count, &v, &err), INFER_EINVAL);
        return;
    }
    size_t es = infer_gguf_type_size(kv->arr_type);
    uint8_t all[RT_MAX_ARR * 8 + 8];
    memset(all, 0x5a, sizeof all);
    cr_assert_eq(infer_gguf_arr_read(g, idx, kv->arr_type, 0, kv->count, all, &err), INFER_OK, "%s",
                 err.message);
    cr_assert(memcmp(all, kv->raw, (size_t)kv->count * es) == 0, "seed %llu: %s array differs",
              (unsigned long long)seed, infer_gguf_type_name(kv->arr_type));
    cr_assert_eq(all[kv->count * es], 0x5a, "arr_read wrote past n elements");
    /* Each element alone, at its index. */
    for (uint64_t j = 0; j < kv->count; j++) {
        uint8_t one[8];
        cr_assert_eq(infer_gguf_arr_read(g, idx, kv->arr_type, j, 1, one, &err), INFER_OK);
        cr_assert(memcmp(one, kv->raw + j * es, es) == 0);
    }
    cr_assert_eq(infer_gguf_arr_read(g, idx, kv->arr_type, kv->count, 1, all, &err), INFER_EINVAL);
}

/* Read buf back and compare with f. */
static void check_file(const rt_file *f, const void *buf, size_t size, unsigned flags,
                       const char *path, uint64_t seed) {
    infer_gguf *g = NULL;
    infer_error err = {0};
    infer_status s = path ? infer_gguf_open(path, flags, &g, &err)
                          : infer_gguf_open_memory(buf, size, flags, &g, &err);
    cr_assert_eq(s, INFER_OK, "seed %llu: %s: %s", (unsigned long long)seed, infer_status_name(s),
                 err.message);
    cr_assert_not_null(g);

    const uint8_t *base = infer_gguf_file_data(g);
    cr_assert_eq(infer_gguf_version(g), 3);
    cr_assert_eq(infer_gguf_alignment(g), f->alignment, "seed %llu: alignment", (unsigned long long)seed);
    cr_assert_eq(infer_gguf_file_size(g), size);
    if (!path) cr_assert(base == buf, "open_memory must not copy the buffer");
    cr_assert(memcmp(base, buf, size) == 0);

    uint64_t header = expected_header_bytes(f);
    uint64_t data_offset = align_up(header, f->alignment);
    if (f->n_tensors) {
        cr_assert_eq(infer_gguf_data_offset(g), data_offset, "seed %llu: data offset",
                     (unsigned long long)seed);
    } else {
        cr_assert_eq(size, header, "seed %llu: a file without tensors ends after its header",
                     (unsigned long long)seed);
    }

    /* Metadata: what was written, in order, plus general.alignment first
     * when it was set (it is written by set_alignment before any key). */
    uint64_t base_kv = f->set_alignment ? 1 : 0;
    cr_assert_eq(infer_gguf_kv_count(g), f->n_kv + base_kv, "seed %llu: kv count",
                 (unsigned long long)seed);
    if (f->set_alignment) {
        uint32_t a = 0;
        cr_assert_eq(infer_gguf_get_u32(g, "general.alignment", &a, &err), INFER_OK);
        cr_assert_eq(a, f->alignment);
        cr_assert_eq(infer_gguf_find_key(g, "general.alignment"), 0);
    } else {
        cr_assert_eq(infer_gguf_find_key(g, "general.alignment"), -1);
    }
    for (size_t i = 0; i < f->n_kv; i++) check_kv(g, base_kv + i, &f->kv[i], seed);

    /* Tensors in order, offsets assigned one after another, each aligned. */
    cr_assert_eq(infer_gguf_tensor_count(g), f->n_tensors);
    uint64_t off = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const rt_tensor *want = &f->tensors[i];
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        cr_assert_not_null(t);
        cr_assert_eq(t->name.len, strlen(want->name));
        cr_assert(memcmp(t->name.ptr, want->name, t->name.len) == 0, "seed %llu: tensor %zu name",
                  (unsigned long long)seed, i);
        cr_assert_eq(infer_gguf_find_tensor(g, want->name), (int64_t)i);
        cr_assert_eq(t->type, want->type, "seed %llu: tensor %zu type", (unsigned long long)seed, i);
        cr_assert_eq(t->n_dims, want->n_dims);
        uint64_t n_el = 1;
        for (uint32_t d = 0; d < INFER_GGUF_MAX_DIMS; d++) {
            cr_assert_eq(t->ne[d], want->ne[d], "seed %llu: tensor %zu dim %u",
                         (unsigned long long)seed, i, d);
            n_el *= want->ne[d];
        }
        cr_assert_eq(t->n_elements, n_el);
        cr_assert_eq(t->n_bytes, want->n_bytes, "seed %llu: tensor %zu (%s) bytes",
                     (unsigned long long)seed, i, infer_type_name(want->type));
        cr_assert_eq(t->offset, off, "seed %llu: tensor %zu offset", (unsigned long long)seed, i);
        cr_assert_eq(t->offset % f->alignment, 0);
        cr_assert((const uint8_t *)t->data == base + data_offset + t->offset);
        cr_assert(memcmp(t->data, want->data, want->n_bytes) == 0, "seed %llu: tensor %zu data",
                  (unsigned long long)seed, i);
        off = align_up(off + want->n_bytes, f->alignment);
    }
    if (f->n_tensors) {
        cr_assert_eq(size, data_offset + off, "seed %llu: file size", (unsigned long long)seed);
    }
    cr_assert_null(infer_gguf_tensor_at(g, f->n_tensors));
    cr_assert_eq(infer_gguf_find_tensor(g, "no such tensor"), -1);
    cr_assert_eq(infer_gguf_find_key(g, "no such key"), -1);
    infer_gguf_close(g);
}

Test(gguf_roundtrip, random_files_read_back_bit_exactly) {
    static rt_file f; /* large: keep it off the stack */
    uint32_t types[INFER_TYPE_COUNT];
    size_t n_types = valid_tensor_types(types);
    int seen_type[INFER_TYPE_COUNT] = {0}, seen_value[INFER_GGUF_VALUE_TYPE_COUNT] = {0};
    int seen_arr[INFER_GGUF_VALUE_TYPE_COUNT] = {0}, seen_empty_arr = 0, seen_nul = 0;
    int seen_empty_str = 0, seen_align = 0, seen_max_name = 0;

    for (uint64_t seed = 0; seed < RT_FILES; seed++) {
        infer_gguf_writer *w = NULL;
        infer_error err = {0};
        void *buf = NULL;
        size_t size = 0;
        make_file(seed, &f);
        write_file(&f, &w);
        cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, &err), INFER_OK, "%s", err.message);
        /* An exact-size copy, so a read one byte past the end is caught by
         * ASan in the sanitizer build. */
        void *exact = malloc(size ? size : 1);
        cr_assert(exact);
        memcpy(exact, buf, size);
        check_file(&f, exact, size, 0, NULL, seed);
        if (seed % 4 == 0) check_file(&f, exact, size, INFER_GGUF_BLOCKS_ACROSS_ROWS, NULL, seed);
        /* finish can be called again and gives the same bytes. */
        void *buf2 = NULL;
        size_t size2 = 0;
        cr_assert_eq(infer_gguf_writer_finish(w, &buf2, &size2, &err), INFER_OK);
        cr_assert(size2 == size && memcmp(buf2, buf, size) == 0);

        for (size_t i = 0; i < f.n_tensors; i++) {
            seen_type[f.tensors[i].type] = 1;
            if (strlen(f.tensors[i].name) == INFER_GGUF_MAX_NAME) seen_max_name = 1;
        }
        for (size_t i = 0; i < f.n_kv; i++) {
            const rt_kv *kv = &f.kv[i];
            seen_value[kv->type] = 1;
            if (kv->type == INFER_GGUF_ARRAY) {
                seen_arr[kv->arr_type] = 1;
                seen_empty_arr |= kv->count == 0;
            }
            if (kv->type == INFER_GGUF_STRING) {
                seen_empty_str |= kv->str_len == 0;
                seen_nul |= kv->str_len && memchr(kv->str, '\0', kv->str_len) != NULL;
            }
        }
        seen_align |= f.set_alignment && f.alignment == INFER_GGUF_MAX_ALIGNMENT;
        free(buf);
        free(buf2);
        free(exact);
        infer_gguf_writer_free(w);
        free_file(&f);
    }
    /* The generator really covered what this test claims. */
    for (size_t i = 0; i < n_types; i++) {
        cr_assert(seen_type[types[i]], "tensor type %s never generated", infer_type_name(types[i]));
    }
    for (uint32_t t = 0; t < INFER_GGUF_VALUE_TYPE_COUNT; t++) {
        cr_assert(seen_value[t], "value type %s never generated", infer_gguf_type_name(t));
        if (t != INFER_GGUF_ARRAY) {
            cr_assert(seen_arr[t], "array of %s never generated", infer_gguf_type_name(t));
        }
    }
    cr_assert(seen_empty_arr && seen_empty_str && seen_nul && seen_align && seen_max_name);
    LEAK_CHECK();
}

/* Through a real file: mmap (on a read-only file, to prove PROT_READ is all
 * the reader asks for) and read(). */
Test(gguf_roundtrip, files_on_disk_with_and_without_mmap) {
    static rt_file f;
    for (uint64_t seed = 1000; seed < 1012; seed++) {
        char path[] = "/tmp/infer-gguf-rt-XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        close(fd);
        infer_gguf_writer *w = NULL;
        infer_error err = {0};
        make_file(seed, &f);
        write_file(&f, &w);
        cr_assert_eq(infer_gguf_writer_write_file(w, path, &err), INFER_OK, "%s", err.message);
        void *buf = NULL;
        size_t size = 0;
        cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, &err), INFER_OK);
        cr_assert_eq(chmod(path, 0444), 0);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0444);
        cr_assert_eq((size_t)st.st_size, size);

        check_file(&f, buf, size, 0, path, seed);
        check_file(&f, buf, size, INFER_GGUF_NO_MMAP, path, seed);
        check_file(&f, buf, size, INFER_GGUF_NO_MMAP | INFER_GGUF_BLOCKS_ACROSS_ROWS, path, seed);

        cr_assert_eq(unlink(path), 0);
        free(buf);
        infer_gguf_writer_free(w);
        free_file(&f);
    }
    LEAK_CHECK();
}

Test(gguf_roundtrip, open_path_errors) {
    infer_gguf *g = (infer_gguf *)1;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_open("/nonexistent/dir/x.gguf", 0, &g, &err), INFER_EIO);
    cr_assert_null(g);
    cr_assert(strlen(err.message) > 0);
    cr_assert_eq(infer_gguf_open("/tmp", 0, &g, &err), INFER_EIO);
    cr_assert(strstr(err.message, "regular file"), "%s", err.message);
    cr_assert_eq(infer_gguf_open(NULL, 0, &g, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_open("/tmp", 0, NULL, &err), INFER_EINVAL);
    infer_gguf_close(NULL);
    LEAK_CHECK();
}

/* The writer refuses what the reader would reject, and stays failed. */
Test(gguf_roundtrip, writer_rejects_bad_input_and_errors_stick) {
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    void *buf = NULL;
    size_t size = 0;
    uint64_t ne[4] = {32, 1, 1, 1};
    float data[32] = {0};

    cr_assert_eq(infer_gguf_writer_new(NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_writer_set_u32(NULL, "a", 1), INFER_EINVAL);

    /* Each bad call on a fresh writer: EINVAL, then sticky, then finish fails. */
    for (int c = 0; c < 9; c++) {
        cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
        infer_status s = INFER_OK;
        const char *needle = NULL;
        switch (c) {
        case 0: s = infer_gguf_writer_set_u32(w, "", 1); needle = "empty key"; break;
        case 1:
            infer_gguf_writer_set_u32(w, "dup", 1);
            s = infer_gguf_writer_set_u32(w, "dup", 2);
            needle = "duplicate key 'dup'";
            break;
        case 2: s = infer_gguf_writer_set_alignment(w, 3); needle = "alignment"; break;
        case 3: s = infer_gguf_writer_set_alignment(w, 1u << 17); needle = "alignment"; break;
        case 4:
            s = infer_gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123",
                                             INFER_TYPE_F32, 1, ne, data, sizeof data);
            needle = "bad tensor name";
            break;
        case 5:
            s = infer_gguf_writer_add_tensor(w, "t", 4, 1, ne, data, sizeof data);
            needle = "unknown type";
            break;
        case 6:
            s = infer_gguf_writer_add_tensor(w, "t", INFER_TYPE_F32, 1, ne, data, sizeof data - 1);
            needle = "data size";
            break;
        case 7:
            infer_gguf_writer_add_tensor(w, "t", INFER_TYPE_F32, 1, ne, data, sizeof data);
            s = infer_gguf_writer_add_tensor(w, "t", INFER_TYPE_F32, 1, ne, data, sizeof data);
            needle = "duplicate tensor 't'";
            break;
        case 8:
            s = infer_gguf_writer_set(w, "s", INFER_GGUF_STRING, "x");
            needle = "not a fixed-size";
            break;
        }
        cr_assert_eq(s, INFER_EINVAL, "case %d", c);
        cr_assert_eq(infer_gguf_writer_set_u32(w, "later", 1), INFER_EINVAL, "case %d: not sticky", c);
        memset(&err, 0, sizeof err);
        cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, &err), INFER_EINVAL, "case %d", c);
        cr_assert(strstr(err.message, needle), "case %d: '%s' lacks '%s'", c, err.message, needle);
        infer_gguf_writer_free(w);
    }
    infer_gguf_writer_free(NULL);
    LEAK_CHECK();
}

/* Lookups by name go through the reader's name order, and the writer's
 * duplicate checks through its hash sets: many names that are prefixes of
 * each other, differ only in a high byte or only in length are each found
 * at their own index; names never written are not; a duplicate among
 * thousands is caught, for keys and tensors alike. */
Test(gguf_roundtrip, many_names_found_and_duplicates_caught) {
    enum { NK = 3000, NT = 700 };
    infer_gguf_writer *w = NULL;
    infer_gguf *g = NULL;
    infer_error err = {0};
    void *buf = NULL;
    size_t size = 0;
    uint64_t ne[4] = {32, 1, 1, 1};
    float data[32] = {0};
    char name[80];
    /* Key i: i in decimal, then i % 3 copies of '.', then a high byte or not. */
#define KEY_NAME(i)                                                                              \
    snprintf(name, sizeof name, "%d%.*s%s", (i) / 2, (i) % 3, "..", (i) % 2 ? "\xe9" : "")
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    for (int i = 0; i < NK; i++) {
        KEY_NAME(i);
        cr_assert_eq(infer_gguf_writer_set_u32(w, name, (uint32_t)i), INFER_OK, "%s", name);
    }
    for (int i = 0; i < NT; i++) {
        snprintf(name, sizeof name, "t%d%s", i / 2, i % 2 ? "x" : "");
        cr_assert_eq(infer_gguf_writer_add_tensor(w, name, INFER_TYPE_F32, 1, ne, data, sizeof data), INFER_OK);
    }
    cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, &err), INFER_OK, "%s", err.message);
    for (int i = 0; i < NK; i++) {
        KEY_NAME(i);
        cr_assert_eq(infer_gguf_find_key(g, name), i, "key '%s'", name);
        uint32_t v = 0;
        cr_assert_eq(infer_gguf_get_u32(g, name, &v, &err), INFER_OK);
        cr_assert_eq(v, (uint32_t)i);
    }
    for (int i = 0; i < NT; i++) {
        snprintf(name, sizeof name, "t%d%s", i / 2, i % 2 ? "x" : "");
        cr_assert_eq(infer_gguf_find_tensor(g, name), i, "tensor '%s'", name);
    }
    static const char *const absent[] = {"", "-1", "1500", "0\xe8", "0\xea", "0...", "1..\xe9.", "t", "t350",
                                         "t0y", "t0xx", "\xff", " "};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++) {
        cr_assert_eq(infer_gguf_find_key(g, absent[i]), -1, "'%s'", absent[i]);
        cr_assert_eq(infer_gguf_find_tensor(g, absent[i]), -1, "'%s'", absent[i]);
    }
    infer_gguf_close(g);
    free(buf);

    /* A duplicate after thousands of names: the last key, the first tensor. */
    for (int c = 0; c < 2; c++) {
        cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
        for (int i = 0; i < NK; i++) {
            KEY_NAME(i);
            cr_assert_eq(infer_gguf_writer_set_u32(w, name, 1), INFER_OK);
        }
        for (int i = 0; i < NT; i++) {
            snprintf(name, sizeof name, "t%d", i);
            cr_assert_eq(infer_gguf_writer_add_tensor(w, name, INFER_TYPE_F32, 1, ne, data, sizeof data), INFER_OK);
        }
        infer_status s;
        if (c == 0) {
            KEY_NAME(NK - 1);
            s = infer_gguf_writer_set_u32(w, name, 2);
        } else {
            s = infer_gguf_writer_add_tensor(w, "t0", INFER_TYPE_F32, 1, ne, data, sizeof data);
        }
        cr_assert_eq(s, INFER_EINVAL, "case %d", c);
        memset(&err, 0, sizeof err);
        cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, &err), INFER_EINVAL);
        cr_assert(strstr(err.message, "duplicate"), "%s", err.message);
        infer_gguf_writer_free(w);
    }
#undef KEY_NAME
    LEAK_CHECK();
}
