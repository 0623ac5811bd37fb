/* fuzz_gguf.c - libFuzzer target for the GGUF reader.
 *
 * Parses the input with infer_gguf_open_memory (libFuzzer's buffer is
 * exactly `size` bytes, so ASan sees any read past it), with and without
 * INFER_GGUF_BLOCKS_ACROSS_ROWS. A failure must come with a non-empty,
 * printable message. On success every accessor is exercised and every
 * range the reader hands out is touched and checked against the file, so a
 * range the parse got wrong shows up as a sanitizer report or a trap here.
 * Every key and tensor is found by its name (binary searches of the name
 * order); names one byte longer or shorter are looked up too, checked
 * against a linear scan over the first entries. Every string goes through
 * json_put_str (--inspect --json's writer): its output must be valid
 * UTF-8 holding only escaped control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infer_gguf.h"
#include "util.h"

#define CHECK(cond)                        \
    do {                                   \
        if (!(cond)) __builtin_trap();     \
    } while (0)

#define LOOKUPS 256 /* entries checked against a linear scan */

static volatile uint8_t sink;

/* The range [p, p + n) lies inside the file; touch its ends. */
static void touch(const infer_gguf *g, const void *p, uint64_t n) {
    const uint8_t *base = infer_gguf_file_data(g), *q = p;
    uint64_t size = infer_gguf_file_size(g);
    if (n == 0) return;
    CHECK(q >= base && n <= size && (uint64_t)(q - base) <= size - n);
    sink ^= q[0];
    sink ^= q[n - 1];
}

static void touch_all(const infer_gguf *g, const infer_gguf_str s) {
    touch(g, s.ptr, s.len);
    for (size_t i = 0; i < s.len; i++) sink ^= (uint8_t)s.ptr[i];
}

/* A C-string copy of a key or name (the reader guarantees no NUL inside). */
static char *cstr(infer_gguf_str s) {
    char *z = malloc(s.len + 1);
    CHECK(z != NULL);
    memcpy(z, s.ptr, s.len);
    z[s.len] = '\0';
    CHECK(strlen(z) == s.len);
    return z;
}

/* The first of the first LOOKUPS keys (tensors: names) equal to z, by a
 * plain scan; -2 when it lies past them (unknown here). */
static int64_t scan(const infer_gguf *g, int tensors, const char *z) {
    const uint64_t n = tensors ? infer_gguf_tensor_count(g) : infer_gguf_kv_count(g), zl = strlen(z);
    for (uint64_t i = 0; i < n && i < LOOKUPS; i++) {
        infer_gguf_str s = tensors ? infer_gguf_tensor_at(g, i)->name : infer_gguf_kv_key(g, i);
        if (s.len == zl && memcmp(s.ptr, z, zl) == 0) return (int64_t)i;
    }
    return n > LOOKUPS ? -2 : -1;
}

/* z with its last byte dropped, and with one byte appended: looked up, the
 * answers agree with the scan's wherever the scan can tell. */
static void near_names(const infer_gguf *g, int tensors, const char *z) {
    const size_t zl = strlen(z);
    char *v = malloc(zl + 2);
    CHECK(v != NULL);
    for (int k = 0; k < 3; k++) {
        memcpy(v, z, zl + 1);
        if (k == 0 && zl > 0) v[zl - 1] = '\0';
        if (k > 0) v[zl] = k == 1 ? 'x' : (char)0xff, v[zl + 1] = '\0';
        const int64_t found = tensors ? infer_gguf_find_tensor(g, v) : infer_gguf_find_key(g, v), want = scan(g, tensors, v);
        if (want != -2) CHECK(found == want);
        if (found >= 0) { /* whatever it found has that name */
            infer_gguf_str s = tensors ? infer_gguf_tensor_at(g, (uint64_t)found)->name : infer_gguf_kv_key(g, (uint64_t)found);
            CHECK(s.len == strlen(v) && memcmp(s.ptr, v, s.len) == 0);
        }
    }
    free(v);
}

/* s through json_put_str: a quoted string of valid UTF-8 with no raw
 * control character. */
static void check_json(infer_gguf_str s) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    CHECK(f != NULL);
    json_put_str(f, s.ptr, s.len);
    CHECK(fclose(f) == 0);
    CHECK(n >= 2 && buf[0] == '"' && buf[n - 1] == '"');
    for (size_t i = 0; i < n;) {
        const size_t k = utf8_valid_len((const unsigned char *)buf, n, i);
        CHECK(k > 0 && (k > 1 || ((unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f)));
        i += k;
    }
    free(buf);
}

static void check_error(const infer_error *err, infer_status s) {
    size_t n = strlen(err->message);
    CHECK(s != INFER_OK && err->status == s && n > 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)err->message[i];
        CHECK(c >= 0x20 && c < 0x7f);
    }
}

/* The typed getter by key for a scalar of type t. */
static infer_status get_by_key(const infer_gguf *g, const char *key, uint32_t t, uint8_t *out) {
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64; float f32; double f64; int b;
    } v;
    infer_status s;
    switch (t) {
    case INFER_GGUF_UINT8: s = infer_gguf_get_u8(g, key, &v.u8, NULL); break;
    case INFER_GGUF_INT8: s = infer_gguf_get_i8(g, key, &v.i8, NULL); break;
    case INFER_GGUF_UINT16: s = infer_gguf_get_u16(g, key, &v.u16, NULL); break;
    case INFER_GGUF_INT16: s = infer_gguf_get_i16(g, key, &v.i16, NULL); break;
    case INFER_GGUF_UINT32: s = infer_gguf_get_u32(g, key, &v.u32, NULL); break;
    case INFER_GGUF_INT32: s = infer_gguf_get_i32(g, key, &v.i32, NULL); break;
    case INFER_GGUF_UINT64: s = infer_gguf_get_u64(g, key, &v.u64, NULL); break;
    case INFER_GGUF_INT64: s = infer_gguf_get_i64(g, key, &v.i64, NULL); break;
    case INFER_GGUF_FLOAT32: s = infer_gguf_get_f32(g, key, &v.f32, NULL); break;
    case INFER_GGUF_FLOAT64: s = infer_gguf_get_f64(g, key, &v.f64, NULL); break;
    case INFER_GGUF_BOOL:
        s = infer_gguf_get_bool(g, key, &v.b, NULL);
        if (s == INFER_OK) CHECK(v.b == (out[0] != 0));
        return s;
    default: return INFER_EINVAL;
    }
    if (s == INFER_OK) CHECK(memcmp(&v, out, infer_gguf_type_size(t)) == 0);
    return s;
}

static void exercise_kv(const infer_gguf *g, uint64_t i) {
    infer_gguf_str key = infer_gguf_kv_key(g, i), s;
    uint32_t t = infer_gguf_kv_type(g, i);
    uint8_t raw[8];
    CHECK(key.len > 0);
    touch_all(g, key);
    char *z = cstr(key);
    /* Keys are unique: the match is this one. */
    CHECK(infer_gguf_find_key(g, z) == (int64_t)i);
    if (i < LOOKUPS) near_names(g, 0, z);
    check_json(key);
    CHECK(t < INFER_GGUF_VALUE_TYPE_COUNT);

    if (t == INFER_GGUF_STRING) {
        CHECK(infer_gguf_kv_string(g, i, &s, NULL) == INFER_OK);
        touch_all(g, s);
        check_json(s);
        if (i < LOOKUPS) CHECK(infer_gguf_get_str(g, z, &s, NULL) == INFER_OK);
        CHECK(infer_gguf_kv_scalar(g, i, INFER_GGUF_UINT32, raw, NULL) == INFER_EFORMAT);
    } else if (t != INFER_GGUF_ARRAY) {
        CHECK(infer_gguf_kv_scalar(g, i, t, raw, NULL) == INFER_OK);
        if (i < LOOKUPS) {
            uint64_t u;
            CHECK(get_by_key(g, z, t, raw) == INFER_OK);
            infer_status su = infer_gguf_get_uint(g, z, &u, NULL);
            CHECK(su == INFER_OK || su == INFER_EFORMAT);
        }
        CHECK(infer_gguf_kv_string(g, i, &s, NULL) == INFER_EFORMAT);
    } else {
        uint32_t et = infer_gguf_kv_arr_type(g, i);
        uint64_t n = infer_gguf_kv_arr_count(g, i);
        CHECK(et < INFER_GGUF_VALUE_TYPE_COUNT && et != INFER_GGUF_ARRAY);
        if (et == INFER_GGUF_STRING) {
            for (uint64_t j = 0; j < n; j++) {
                CHECK(infer_gguf_arr_str(g, i, j, &s, NULL) == INFER_OK);
                touch(g, s.ptr, s.len);
                if (j < LOOKUPS) check_json(s);
            }
            CHECK(infer_gguf_arr_str(g, i, n, &s, NULL) == INFER_EINVAL);
        } else {
            size_t es = infer_gguf_type_size(et);
            CHECK(es > 0 && n <= infer_gguf_file_size(g) / es);
            uint8_t *all = malloc((size_t)n * es + 1);
            CHECK(all != NULL);
            CHECK(infer_gguf_arr_read(g, i, et, 0, n, all, NULL) == INFER_OK);
            for (uint64_t j = 0; j < n; j++) sink ^= all[j * es];
            if (n) {
                CHECK(infer_gguf_arr_read(g, i, et, n - 1, 1, raw, NULL) == INFER_OK);
                CHECK(memcmp(raw, all + (n - 1) * es, es) == 0);
            }
            CHECK(infer_gguf_arr_read(g, i, et, n, 1, raw, NULL) == INFER_EINVAL);
            CHECK(infer_gguf_arr_read(g, i, et, UINT64_MAX, 2, raw, NULL) == INFER_EINVAL);
            free(all);
        }
    }
    free(z);
}

static void exercise_tensor(const infer_gguf *g, uint64_t i) {
    const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
    CHECK(t != NULL);
    CHECK(t->name.len >= 1 && t->name.len <= INFER_GGUF_MAX_NAME);
    touch_all(g, t->name);
    char *z = cstr(t->name);
    CHECK(infer_gguf_find_tensor(g, z) == (int64_t)i);
    if (i < LOOKUPS) near_names(g, 1, z);
    check_json(t->name);
    free(z);
    CHECK(infer_type_valid(t->type));
    CHECK(t->n_dims >= 1 && t->n_dims <= INFER_GGUF_MAX_DIMS);
    uint64_t n = 1;
    for (uint32_t d = 0; d < INFER_GGUF_MAX_DIMS; d++) {
        CHECK(t->ne[d] >= 1 && (d < t->n_dims || t->ne[d] == 1));
        CHECK(!__builtin_mul_overflow(n, t->ne[d], &n));
    }
    CHECK(n == t->n_elements && n <= (uint64_t)INT64_MAX);
    uint64_t bytes;
    CHECK(infer_type_row_bytes(t->type, t->n_elements, &bytes) == INFER_OK && bytes == t->n_bytes);
    CHECK(t->offset % infer_gguf_alignment(g) == 0);
    CHECK((const uint8_t *)t->data ==
          (const uint8_t *)infer_gguf_file_data(g) + infer_gguf_data_offset(g) + t->offset);
    touch(g, t->data, t->n_bytes);
}

static void exercise(const infer_gguf *g) {
    uint32_t v = infer_gguf_version(g), a = infer_gguf_alignment(g);
    CHECK(v >= 1 && v <= 3);
    CHECK(a >= 1 && a <= INFER_GGUF_MAX_ALIGNMENT && (a & (a - 1)) == 0);
    CHECK(infer_gguf_data_offset(g) <= infer_gguf_file_size(g));
    uint64_t nkv = infer_gguf_kv_count(g), nt = infer_gguf_tensor_count(g);
    for (uint64_t i = 0; i < nkv; i++) exercise_kv(g, i);
    for (uint64_t i = 0; i < nt; i++) exercise_tensor(g, i);
    if (nt) CHECK(infer_gguf_data_offset(g) % a == 0);
    /* Tensor data ranges are disjoint (pairwise over the first entries). */
    for (uint64_t i = 0; i < nt && i < LOOKUPS; i++) {
        const infer_gguf_tensor *p = infer_gguf_tensor_at(g, i);
        for (uint64_t j = i + 1; j < nt && j < LOOKUPS; j++) {
            const infer_gguf_tensor *q = infer_gguf_tensor_at(g, j);
            CHECK(p->offset + p->n_bytes <= q->offset || q->offset + q->n_bytes <= p->offset);
        }
    }
    /* Out-of-range indexes answer, never crash. */
    infer_gguf_str s;
    uint8_t raw[8];
    CHECK(infer_gguf_kv_key(g, nkv).len == 0);
    CHECK(infer_gguf_kv_type(g, nkv) == INFER_GGUF_VALUE_TYPE_COUNT);
    CHECK(infer_gguf_kv_arr_count(g, nkv) == 0);
    CHECK(infer_gguf_kv_scalar(g, nkv, INFER_GGUF_UINT8, raw, NULL) == INFER_EINVAL);
    CHECK(infer_gguf_arr_str(g, nkv, 0, &s, NULL) == INFER_EINVAL);
    CHECK(infer_gguf_tensor_at(g, nt) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const unsigned flags[] = {0, INFER_GGUF_BLOCKS_ACROSS_ROWS};
    for (size_t f = 0; f < 2; f++) {
        infer_gguf *g = NULL;
        infer_error err = {0};
        infer_status s = infer_gguf_open_memory(size ? data : NULL, size, flags[f], &g, &err);
        if (s != INFER_OK) {
            CHECK(g == NULL);
            check_error(&err, s);
            continue;
        }
        CHECK(g != NULL && infer_gguf_file_data(g) == (const void *)data);
        CHECK(infer_gguf_file_size(g) == size);
        exercise(g);
        infer_gguf_close(g);
    }
    return 0;
}
