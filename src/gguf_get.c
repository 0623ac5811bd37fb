/* gguf_get.c - typed access to a parsed GGUF file. The parse guaranteed
 * every range; these functions check only the caller's arguments: NULL
 * pointers, indexes and types. */
#include "gguf_internal.h"

#include <string.h>

uint32_t infer_gguf_version(const infer_gguf *g) { return g ? g->version : 0; }
uint32_t infer_gguf_alignment(const infer_gguf *g) { return g ? g->alignment : 0; }
uint64_t infer_gguf_data_offset(const infer_gguf *g) { return g ? g->data_offset : 0; }
uint64_t infer_gguf_file_size(const infer_gguf *g) { return g ? g->size : 0; }
const void *infer_gguf_file_data(const infer_gguf *g) { return g ? g->data : NULL; }
uint64_t infer_gguf_kv_count(const infer_gguf *g) { return g ? g->n_kv : 0; }
uint64_t infer_gguf_tensor_count(const infer_gguf *g) { return g ? g->n_tensors : 0; }

static const gguf_kv *kv_at(const infer_gguf *g, uint64_t i) {
    return g && i < g->n_kv ? &g->kv[i] : NULL;
}

infer_gguf_str infer_gguf_kv_key(const infer_gguf *g, uint64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : (infer_gguf_str){"", 0};
}

uint32_t infer_gguf_kv_type(const infer_gguf *g, uint64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : INFER_GGUF_VALUE_TYPE_COUNT;
}

uint32_t infer_gguf_kv_arr_type(const infer_gguf *g, uint64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == INFER_GGUF_ARRAY ? kv->arr_type : INFER_GGUF_VALUE_TYPE_COUNT;
}

uint64_t infer_gguf_kv_arr_count(const infer_gguf *g, uint64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == INFER_GGUF_ARRAY ? kv->count : 0;
}

/* name against s[0..n): memcmp over the shorter, then the shorter first
 * (the order gguf.c sorts names in). */
static int name_cmp(infer_gguf_str name, const char *s, size_t n) {
    int r = memcmp(name.ptr, s, name.len < n ? name.len : n);
    return r != 0 ? r : (name.len > n) - (name.len < n);
}

/* Entry i's name, stride bytes apart from base (keys and tensors keep
 * their names in different structs). */
static infer_gguf_str name_at(const void *base, size_t stride, uint64_t i) {
    return *(const infer_gguf_str *)((const char *)base + (size_t)i * stride);
}

/* The entry named s among count, through the name order by (NULL when
 * count < 2: a plain scan), or -1. */
static int64_t find_name(const void *base, size_t stride, uint64_t count, const uint64_t *by, const char *s) {
    size_t n = strlen(s);
    if (!by) {
        for (uint64_t i = 0; i < count; i++) {
            if (name_cmp(name_at(base, stride, i), s, n) == 0) return (int64_t)i;
        }
        return -1;
    }
    uint64_t lo = 0, hi = count; /* the name, if present, is at by[lo .. hi) */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int r = name_cmp(name_at(base, stride, by[mid]), s, n);
        if (r == 0) return (int64_t)by[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

int64_t infer_gguf_find_key(const infer_gguf *g, const char *key) {
    return g && key && g->n_kv ? find_name(&g->kv[0].key, sizeof g->kv[0], g->n_kv, g->kv_by_name, key) : -1;
}

static infer_status type_mismatch(const infer_gguf *g, const gguf_kv *kv, uint32_t want, infer_error *err) {
    char q[96];
    return set_error(err, INFER_EFORMAT, "key '%s' (offset 0x%llx) has type %s, expected %s",
                     escape_bytes(kv->key.ptr, kv->key.len, q, sizeof q),
                     (unsigned long long)gguf_kv_offset(g, kv),
                     kv->type == INFER_GGUF_ARRAY ? "array" : infer_gguf_type_name(kv->type),
                     infer_gguf_type_name(want));
}

static infer_status bad_index(uint64_t i, infer_error *err) {
    return set_error(err, INFER_EINVAL, "metadata index %llu is out of range", (unsigned long long)i);
}

static infer_status null_arg(infer_error *err) { return set_error(err, INFER_EINVAL, "gguf: NULL argument"); }

infer_status infer_gguf_kv_scalar(const infer_gguf *g, uint64_t i, uint32_t type, void *out,
                                  infer_error *err) {
    const gguf_kv *kv = kv_at(g, i);
    if (!g || !out) return null_arg(err);
    if (!kv) return bad_index(i, err);
    if (kv->type != type || infer_gguf_type_size(type) == 0) return type_mismatch(g, kv, type, err);
    memcpy(out, kv->val, infer_gguf_type_size(type));
    return INFER_OK;
}

infer_status infer_gguf_kv_string(const infer_gguf *g, uint64_t i, infer_gguf_str *out,
                                  infer_error *err) {
    const gguf_kv *kv = kv_at(g, i);
    if (!g || !out) return null_arg(err);
    if (!kv) return bad_index(i, err);
    if (kv->type != INFER_GGUF_STRING) return type_mismatch(g, kv, INFER_GGUF_STRING, err);
    *out = (infer_gguf_str){kv->chars, (size_t)kv->count};
    return INFER_OK;
}

/* The caller's key may hold any byte: quoted escaped, as names from files are. */
static infer_status not_found(const char *key, infer_error *err) {
    char q[96];
    return set_error(err, INFER_ENOTFOUND, "key '%s' not found", escape_cstr(key, q, sizeof q));
}

static infer_status get_by_key(const infer_gguf *g, const char *key, uint32_t type, void *out,
                               infer_error *err) {
    if (!g || !key || !out) return null_arg(err);
    int64_t i = infer_gguf_find_key(g, key);
    if (i < 0) return not_found(key, err);
    if (type == INFER_GGUF_STRING) return infer_gguf_kv_string(g, (uint64_t)i, out, err);
    return infer_gguf_kv_scalar(g, (uint64_t)i, type, out, err);
}

#define GETTER(fn, ctype, TYPE)                                                              \
    infer_status fn(const infer_gguf *g, const char *key, ctype *out, infer_error *err) {    \
        return get_by_key(g, key, TYPE, out, err);                                           \
    }
GETTER(infer_gguf_get_u8, uint8_t, INFER_GGUF_UINT8)
GETTER(infer_gguf_get_i8, int8_t, INFER_GGUF_INT8)
GETTER(infer_gguf_get_u16, uint16_t, INFER_GGUF_UINT16)
GETTER(infer_gguf_get_i16, int16_t, INFER_GGUF_INT16)
GETTER(infer_gguf_get_u32, uint32_t, INFER_GGUF_UINT32)
GETTER(infer_gguf_get_i32, int32_t, INFER_GGUF_INT32)
GETTER(infer_gguf_get_u64, uint64_t, INFER_GGUF_UINT64)
GETTER(infer_gguf_get_i64, int64_t, INFER_GGUF_INT64)
GETTER(infer_gguf_get_f32, float, INFER_GGUF_FLOAT32)
GETTER(infer_gguf_get_f64, double, INFER_GGUF_FLOAT64)
GETTER(infer_gguf_get_str, infer_gguf_str, INFER_GGUF_STRING)

infer_status infer_gguf_get_bool(const infer_gguf *g, const char *key, int *out, infer_error *err) {
    uint8_t b;
    if (!out) return null_arg(err);
    infer_status s = get_by_key(g, key, INFER_GGUF_BOOL, &b, err);
    if (s == INFER_OK) *out = b != 0;
    return s;
}

infer_status infer_gguf_get_uint(const infer_gguf *g, const char *key, uint64_t *out,
                                 infer_error *err) {
    if (!g || !key || !out) return null_arg(err);
    int64_t i = infer_gguf_find_key(g, key);
    if (i < 0) return not_found(key, err);
    const gguf_kv *kv = &g->kv[i];
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            uint64_t u64; int64_t i64; } v;
    int64_t sv = 0;
    uint64_t uv = 0;
    int is_signed = 0;
    switch (kv->type) {
    case INFER_GGUF_UINT8: memcpy(&v.u8, kv->val, 1); uv = v.u8; break;
    case INFER_GGUF_UINT16: memcpy(&v.u16, kv->val, 2); uv = v.u16; break;
    case INFER_GGUF_UINT32: memcpy(&v.u32, kv->val, 4); uv = v.u32; break;
    case INFER_GGUF_UINT64: memcpy(&v.u64, kv->val, 8); uv = v.u64; break;
    case INFER_GGUF_INT8: memcpy(&v.i8, kv->val, 1); sv = v.i8; is_signed = 1; break;
    case INFER_GGUF_INT16: memcpy(&v.i16, kv->val, 2); sv = v.i16; is_signed = 1; break;
    case INFER_GGUF_INT32: memcpy(&v.i32, kv->val, 4); sv = v.i32; is_signed = 1; break;
    case INFER_GGUF_INT64: memcpy(&v.i64, kv->val, 8); sv = v.i64; is_signed = 1; break;
    default: return type_mismatch(g, kv, INFER_GGUF_UINT32, err);
    }
    if (is_signed) {
        if (sv < 0) {
            char q[96];
            return set_error(err, INFER_EFORMAT, "key '%s' is negative (%lld)",
                             escape_bytes(kv->key.ptr, kv->key.len, q, sizeof q), (long long)sv);
        }
        uv = (uint64_t)sv;
    }
    *out = uv;
    return INFER_OK;
}

infer_status infer_gguf_arr_read(const infer_gguf *g, uint64_t i, uint32_t elem_type,
                                 uint64_t first, uint64_t n, void *dst, infer_error *err) {
    const gguf_kv *kv = kv_at(g, i);
    uint64_t end;
    size_t es = infer_gguf_type_size(elem_type);
    if (!g || (!dst && n)) return null_arg(err);
    if (!kv) return bad_index(i, err);
    if (kv->type != INFER_GGUF_ARRAY || kv->arr_type != elem_type || es == 0) {
        char q[96];
        return set_error(err, INFER_EFORMAT, "key '%s' is not an array of %s",
                         escape_bytes(kv->key.ptr, kv->key.len, q, sizeof q),
                         infer_gguf_type_name(elem_type));
    }
    if (ck_add(first, n, &end) || end > kv->count) {
        return set_error(err, INFER_EINVAL, "array range [%llu, +%llu) is outside its %llu elements",
                         (unsigned long long)first, (unsigned long long)n,
                         (unsigned long long)kv->count);
    }
    /* first*es and n*es cannot overflow: count*es was checked at parse. */
    if (n) memcpy(dst, kv->val + first * es, (size_t)(n * es));
    return INFER_OK;
}

infer_status infer_gguf_arr_str(const infer_gguf *g, uint64_t i, uint64_t j, infer_gguf_str *out,
                                infer_error *err) {
    const gguf_kv *kv = kv_at(g, i);
    if (!g || !out) return null_arg(err);
    if (!kv) return bad_index(i, err);
    if (kv->type != INFER_GGUF_ARRAY || kv->arr_type != INFER_GGUF_STRING) {
        char q[96];
        return set_error(err, INFER_EFORMAT, "key '%s' is not an array of strings",
                         escape_bytes(kv->key.ptr, kv->key.len, q, sizeof q));
    }
    if (j >= kv->count) {
        return set_error(err, INFER_EINVAL, "string index %llu is outside the array's %llu",
                         (unsigned long long)j, (unsigned long long)kv->count);
    }
    *out = kv->strs[j];
    return INFER_OK;
}

const infer_gguf_tensor *infer_gguf_tensor_at(const infer_gguf *g, uint64_t i) {
    return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t infer_gguf_find_tensor(const infer_gguf *g, const char *name) {
    return g && name && g->n_tensors ? find_name(&g->tensors[0].name, sizeof g->tensors[0], g->n_tensors, g->tensor_by_name, name)
                        : -1;
}
