/*
 * gguf_write.c - builds GGUF v3 files (tests, the quantizer, the synthetic
 * model generator). Metadata is serialised as it is added; tensors are kept
 * until finish, when their offsets are assigned in the order added.
 */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytebuf;

typedef struct {
    char name[INFER_GGUF_MAX_NAME + 1];
    uint32_t type, n_dims;
    uint64_t ne[INFER_GGUF_MAX_DIMS];
    uint8_t *data; /* owned copy */
    size_t n_bytes;
} wtensor;

/* Names seen, for duplicate checks in O(1) each (a file copied from a
 * hostile one may have millions): open addressing, slots hold index + 1
 * into the writer's keys or tensors, 0 = empty; at most half full. */
typedef struct {
    size_t *slots;
    size_t mask; /* capacity - 1 */
} nameset;

struct infer_gguf_writer {
    infer_error err; /* sticky: err.status != OK after the first failure */
    bytebuf kv;      /* serialised key/value pairs */
    uint64_t n_kv;
    char **keys;     /* copies, for duplicate checks */
    size_t n_keys, cap_keys;
    nameset key_set;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
    nameset tensor_set;
    uint32_t alignment;
};

/* ---- growable buffer ----------------------------------------------------- */

static int buf_reserve(bytebuf *b, size_t extra) {
    size_t need, cap;
    if (ck_add(b->len, extra, &need)) return -1;
    if (need <= b->cap) return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (ck_mul(cap, (size_t)2, &cap)) return -1;
    }
    uint8_t *p = infer_realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(bytebuf *b, const void *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int buf_u32(bytebuf *b, uint32_t v) { return buf_put(b, &v, 4); }
static int buf_u64(bytebuf *b, uint64_t v) { return buf_put(b, &v, 8); }
static int buf_str(bytebuf *b, const char *s, size_t n) {
    return buf_u64(b, n) || buf_put(b, s, n);
}

/* ---- name sets ------------------------------------------------------------ */

static const char *name_of(const infer_gguf_writer *w, const nameset *set, size_t i) {
    return set == &w->key_set ? w->keys[i] : w->tensors[i].name;
}

/* Where a table of mask + 1 slots starts looking for name. */
static size_t name_home(const char *name, size_t mask) {
    return infer_hash_slot(infer_hash_bytes(name, strlen(name), INFER_HASH_SEED), mask);
}

/* The slot holding name, or the empty slot where it would go. */
static size_t set_slot(const infer_gguf_writer *w, const nameset *set, const char *name) {
    size_t i = name_home(name, set->mask);
    while (set->slots[i] && strcmp(name_of(w, set, set->slots[i] - 1), name) != 0) i = (i + 1) & set->mask;
    return i;
}

static int set_has(const infer_gguf_writer *w, const nameset *set, const char *name) {
    return set->slots && set->slots[set_slot(w, set, name)] != 0;
}

/* Record entry index (its name already stored at index) among n - 1 names
 * recorded before: -1 when out of memory. */
static int set_add(infer_gguf_writer *w, nameset *set, size_t index, size_t n) {
    size_t cap;
    if (infer_hash_capacity(n, &cap)) return -1;
    if (!set->slots || cap > set->mask + 1) {
        nameset grown = {infer_calloc(cap, sizeof *grown.slots), cap - 1};
        if (!grown.slots) return -1;
        for (size_t i = 0; set->slots && i <= set->mask; i++) {
            if (!set->slots[i]) continue;
            size_t j = name_home(name_of(w, set, set->slots[i] - 1), grown.mask);
            while (grown.slots[j]) j = (j + 1) & grown.mask;
            grown.slots[j] = set->slots[i];
        }
        infer_free(set->slots);
        *set = grown;
    }
    set->slots[set_slot(w, set, name_of(w, set, index))] = index + 1;
    return 0;
}

/* ---- errors -------------------------------------------------------------- */

#define W_CHECK(w)                                    \
    do {                                              \
        if (!(w)) return INFER_EINVAL;                \
        if ((w)->err.status != INFER_OK) return (w)->err.status; \
    } while (0)

static infer_status w_fail(infer_gguf_writer *w, infer_status s, const char *msg, const char *name) {
    char q[96];
    return set_error(&w->err, s, "gguf writer: %s '%s'", msg, escape_cstr(name, q, sizeof q));
}

static infer_status w_nomem(infer_gguf_writer *w, const char *name) {
    return w_fail(w, INFER_ENOMEM, "out of memory at", name);
}

/* ---- lifecycle ------------------------------------------------------------ */

infer_status infer_gguf_writer_new(infer_gguf_writer **out, infer_error *err) {
    if (!out) return set_error(err, INFER_EINVAL, "infer_gguf_writer_new: NULL argument");
    infer_gguf_writer *w = infer_calloc(1, sizeof *w);
    if (!w) return set_error(err, INFER_ENOMEM, "gguf writer: out of memory");
    w->alignment = INFER_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return INFER_OK;
}

void infer_gguf_writer_free(infer_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_keys; i++) infer_free(w->keys[i]);
    infer_free(w->keys);
    infer_free(w->key_set.slots);
    infer_free(w->tensor_set.slots);
    for (size_t i = 0; i < w->n_tensors; i++) infer_free(w->tensors[i].data);
    infer_free(w->tensors);
    infer_free(w->kv.p);
    infer_free(w);
}

/* ---- metadata --------------------------------------------------------------- */

/* Check the key and start its entry: key string and value type. */
static infer_status begin_kv(infer_gguf_writer *w, const char *key, uint32_t type) {
    size_t n = key ? strlen(key) : 0;
    if (n == 0) return w_fail(w, INFER_EINVAL, "empty key", key);
    if (set_has(w, &w->key_set, key)) return w_fail(w, INFER_EINVAL, "duplicate key", key);
    if (w->n_keys == w->cap_keys) {
        size_t cap, bytes;
        if (ck_mul(w->cap_keys ? w->cap_keys : 8, (size_t)2, &cap) || ck_mul(cap, sizeof *w->keys, &bytes))
            return w_nomem(w, key);
        char **k = infer_realloc(w->keys, bytes);
        if (!k) return w_nomem(w, key);
        w->keys = k;
        w->cap_keys = cap;
    }
    char *copy = infer_strndup(key, n);
    if (!copy) return w_nomem(w, key);
    w->keys[w->n_keys] = copy;
    if (set_add(w, &w->key_set, w->n_keys, w->n_keys + 1)) {
        infer_free(copy);
        return w_nomem(w, key);
    }
    w->n_keys++;
    if (buf_str(&w->kv, key, n) || buf_u32(&w->kv, type)) return w_nomem(w, key);
    w->n_kv++;
    return INFER_OK;
}

infer_status infer_gguf_writer_set(infer_gguf_writer *w, const char *key, uint32_t type,
                                   const void *value) {
    W_CHECK(w);
    size_t size = infer_gguf_type_size(type);
    if (size == 0) return w_fail(w, INFER_EINVAL, "not a fixed-size value type for", key);
    if (!value) return w_fail(w, INFER_EINVAL, "NULL value for", key);
    if (key && strcmp(key, "general.alignment") == 0) {
        uint32_t a;
        if (type != INFER_GGUF_UINT32) return w_fail(w, INFER_EINVAL, "must be uint32:", key);
        memcpy(&a, value, 4);
        if (!is_pow2_u64(a) || a > INFER_GGUF_MAX_ALIGNMENT) {
            return w_fail(w, INFER_EINVAL, "bad alignment value for", key);
        }
        if (w->n_tensors) return w_fail(w, INFER_EINVAL, "alignment set after tensors:", key);
        w->alignment = a;
    }
    infer_status s = begin_kv(w, key, type);
    if (s != INFER_OK) return s;
    if (buf_put(&w->kv, value, size)) return w_nomem(w, key);
    return INFER_OK;
}

infer_status infer_gguf_writer_set_u32(infer_gguf_writer *w, const char *key, uint32_t v) {
    return infer_gguf_writer_set(w, key, INFER_GGUF_UINT32, &v);
}

infer_status infer_gguf_writer_set_f32(infer_gguf_writer *w, const char *key, float v) {
    return infer_gguf_writer_set(w, key, INFER_GGUF_FLOAT32, &v);
}

infer_status infer_gguf_writer_set_alignment(infer_gguf_writer *w, uint32_t alignment) {
    return infer_gguf_writer_set_u32(w, "general.alignment", alignment);
}

infer_status infer_gguf_writer_set_str(infer_gguf_writer *w, const char *key, const char *s,
                                       size_t len) {
    W_CHECK(w);
    if (!s && len) return w_fail(w, INFER_EINVAL, "NULL string for", key);
    infer_status st = begin_kv(w, key, INFER_GGUF_STRING);
    if (st != INFER_OK) return st;
    if (buf_str(&w->kv, s, len)) return w_nomem(w, key);
    return INFER_OK;
}

infer_status infer_gguf_writer_set_arr(infer_gguf_writer *w, const char *key, uint32_t elem_type,
                                       const void *elems, uint64_t n) {
    W_CHECK(w);
    size_t size = infer_gguf_type_size(elem_type), bytes;
    if (size == 0) return w_fail(w, INFER_EINVAL, "not a fixed-size element type for", key);
    if (!elems && n) return w_fail(w, INFER_EINVAL, "NULL elements for", key);
    if (n > SIZE_MAX || ck_mul((size_t)n, size, &bytes)) {
        return w_fail(w, INFER_EINVAL, "array too large:", key);
    }
    infer_status s = begin_kv(w, key, INFER_GGUF_ARRAY);
    if (s != INFER_OK) return s;
    if (buf_u32(&w->kv, elem_type) || buf_u64(&w->kv, n) || buf_put(&w->kv, elems, bytes)) {
        return w_nomem(w, key);
    }
    return INFER_OK;
}

infer_status infer_gguf_writer_set_arr_str(infer_gguf_writer *w, const char *key,
                                           const char *const *strs, const size_t *lens,
                                           uint64_t n) {
    W_CHECK(w);
    if (!strs && n) return w_fail(w, INFER_EINVAL, "NULL strings for", key);
    for (uint64_t i = 0; i < n; i++)
        if (!strs[i] && (lens ? lens[i] : 1)) return w_fail(w, INFER_EINVAL, "a NULL string in", key);
    infer_status s = begin_kv(w, key, INFER_GGUF_ARRAY);
    if (s != INFER_OK) return s;
    if (buf_u32(&w->kv, INFER_GGUF_STRING) || buf_u64(&w->kv, n)) return w_nomem(w, key);
    for (uint64_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(strs[i]);
        if (buf_str(&w->kv, strs[i], len)) return w_nomem(w, key);
    }
    return INFER_OK;
}

/* ---- tensors ------------------------------------------------------------------ */

infer_status infer_gguf_writer_add_tensor(infer_gguf_writer *w, const char *name, uint32_t type,
                                          uint32_t n_dims, const uint64_t *ne, const void *data,
                                          size_t n_bytes) {
    W_CHECK(w);
    size_t len = name ? strlen(name) : 0;
    if (!ne || (!data && n_bytes)) return w_fail(w, INFER_EINVAL, "NULL shape or data for tensor", name);
    uint64_t n_el = 1, bytes;
    if (len == 0 || len > INFER_GGUF_MAX_NAME) return w_fail(w, INFER_EINVAL, "bad tensor name", name);
    if (set_has(w, &w->tensor_set, name)) return w_fail(w, INFER_EINVAL, "duplicate tensor", name);
    if (!infer_type_valid(type)) return w_fail(w, INFER_EINVAL, "unknown type for tensor", name);
    if (n_dims < 1 || n_dims > INFER_GGUF_MAX_DIMS) return w_fail(w, INFER_EINVAL, "bad n_dims for", name);
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ck_mul(n_el, ne[d], &n_el) || n_el > (uint64_t)INT64_MAX) {
            return w_fail(w, INFER_EINVAL, "bad dimensions for", name);
        }
    }
    if (ne[0] % infer_type_block_size(type) != 0 ||
        infer_type_row_bytes(type, n_el, &bytes) != INFER_OK || bytes != n_bytes) {
        return w_fail(w, INFER_EINVAL, "data size does not match type and shape of", name);
    }
    if (w->n_tensors == w->cap_tensors) {
        size_t cap, cap_bytes;
        if (ck_mul(w->cap_tensors ? w->cap_tensors : 8, (size_t)2, &cap) ||
            ck_mul(cap, sizeof *w->tensors, &cap_bytes))
            return w_nomem(w, name);
        wtensor *t = infer_realloc(w->tensors, cap_bytes);
        if (!t) return w_nomem(w, name);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < INFER_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = infer_malloc(n_bytes);
    if (!t->data) return w_nomem(w, name);
    if (n_bytes) memcpy(t->data, data, n_bytes);
    t->n_bytes = n_bytes;
    if (set_add(w, &w->tensor_set, w->n_tensors, w->n_tensors + 1)) {
        infer_free(t->data);
        t->data = NULL;
        return w_nomem(w, name);
    }
    w->n_tensors++;
    return INFER_OK;
}

/* ---- output --------------------------------------------------------------------- */

infer_status infer_gguf_writer_finish(infer_gguf_writer *w, void **out, size_t *size,
                                      infer_error *err) {
    static const uint8_t zeros[INFER_GGUF_MAX_ALIGNMENT];
    bytebuf b = {0};
    uint64_t off = 0;
    if (!w || !out || !size) return set_error(err, INFER_EINVAL, "gguf writer: NULL argument");
    if (w->err.status != INFER_OK) {
        if (err) *err = w->err;
        return w->err.status;
    }
    int bad = buf_put(&b, "GGUF", 4) || buf_u32(&b, 3) || buf_u64(&b, w->n_tensors) ||
              buf_u64(&b, w->n_kv) || buf_put(&b, w->kv.p, w->kv.len);
    for (size_t i = 0; i < w->n_tensors && !bad; i++) {
        const wtensor *t = &w->tensors[i];
        bad = buf_str(&b, t->name, strlen(t->name)) || buf_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && !bad; d++) bad = buf_u64(&b, t->ne[d]);
        bad = bad || buf_u32(&b, t->type) || buf_u64(&b, off);
        bad = bad || ck_align_up(off + t->n_bytes, w->alignment, &off);
    }
    for (size_t i = 0; i <= w->n_tensors && !bad; i++) {
        /* Pad to the alignment before each tensor (and after the last, so
         * the file length is a multiple of the alignment as ggml writes). */
        size_t pad = (w->alignment - b.len % w->alignment) % w->alignment;
        if (i == w->n_tensors && w->n_tensors == 0) break;
        bad = buf_put(&b, zeros, pad);
        if (i < w->n_tensors) bad = bad || buf_put(&b, w->tensors[i].data, w->tensors[i].n_bytes);
    }
    if (bad) {
        infer_free(b.p);
        return set_error(err, INFER_ENOMEM, "gguf writer: out of memory building the file");
    }
    *out = b.p;
    *size = b.len;
    return INFER_OK;
}

infer_status infer_gguf_writer_write_file(infer_gguf_writer *w, const char *path,
                                          infer_error *err) {
    void *buf;
    size_t size;
    if (!path) return set_error(err, INFER_EINVAL, "gguf writer: NULL path");
    infer_status s = infer_gguf_writer_finish(w, &buf, &size, err);
    if (s != INFER_OK) return s;
    FILE *f = fopen(path, "wb");
    if (!f) {
        s = set_error(err, INFER_EIO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        if (fwrite(buf, 1, size, f) != size) s = set_error(err, INFER_EIO, "%s: write failed", path);
        if (fclose(f) != 0 && s == INFER_OK) s = set_error(err, INFER_EIO, "%s: close failed", path);
    }
    infer_free(buf);
    return s;
}
