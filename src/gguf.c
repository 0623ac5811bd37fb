/*
 * gguf.c - the GGUF reader.
 *
 * Layout of a file (all little-endian; v1 uses 32-bit counts and lengths
 * where v2/v3 use 64-bit ones):
 *
 *   "GGUF" u32 version, count n_tensors, count n_kv
 *   n_kv      × { string key, u32 value_type, value }
 *   n_tensors × { string name, u32 n_dims, dim × n_dims, u32 type, u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data; each tensor at data_start + offset, offset aligned
 *
 * where string = count len, len bytes; array = u32 elem_type, count n, n values.
 *
 * Everything is validated here, once: afterwards no caller re-checks a range.
 * The rules (see HOSTILE.md section A):
 *  - every read is bounds-checked against the bytes left;
 *  - every count is bounded by the bytes left before it is used to allocate;
 *  - every size is computed with overflow-checked arithmetic;
 *  - every failure is a status plus a message naming the field and offset.
 */
#include "gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Smallest possible encodings, used to bound counts by the bytes left. */
#define MIN_KV_BYTES(v) ((v) == 1 ? 4u + 1u + 4u + 1u : 8u + 1u + 4u + 1u)
#define MIN_TENSOR_BYTES(v) ((v) == 1 ? 4u + 1u + 4u + 4u + 4u + 8u : 8u + 1u + 4u + 8u + 4u + 8u)
#define LEN_BYTES(v) ((v) == 1 ? 4u : 8u)

/* ---- the cursor: a bounded reader over the file's bytes ----------------- */

typedef struct {
    const uint8_t *p;
    size_t size;
    size_t pos;
    uint32_t version;
    infer_error *err;
} cursor;

static size_t cur_left(const cursor *c) { return c->size - c->pos; }

/* Take n bytes, or fail naming `what`. */
static infer_status cur_take(cursor *c, uint64_t n, const uint8_t **out, const char *what) {
    if (n > cur_left(c)) {
        return set_error(c->err, INFER_EFORMAT,
                         "%s at offset 0x%zx: needs %llu bytes, only %zu left before end of file",
                         what, c->pos, (unsigned long long)n, cur_left(c));
    }
    *out = c->p + c->pos;
    c->pos += (size_t)n;
    return INFER_OK;
}

static infer_status cur_u32(cursor *c, uint32_t *v, const char *what) {
    const uint8_t *b = NULL;
    infer_status s = cur_take(c, 4, &b, what);
    if (s == INFER_OK) memcpy(v, b, 4);
    return s;
}

static infer_status cur_u64(cursor *c, uint64_t *v, const char *what) {
    const uint8_t *b = NULL;
    infer_status s = cur_take(c, 8, &b, what);
    if (s == INFER_OK) memcpy(v, b, 8);
    return s;
}

/* A count or length: 32-bit in v1, 64-bit after. */
static infer_status cur_count(cursor *c, uint64_t *v, const char *what) {
    if (c->version == 1) {
        uint32_t v32;
        infer_status s = cur_u32(c, &v32, what);
        *v = v32;
        return s;
    }
    return cur_u64(c, v, what);
}

static infer_status cur_str(cursor *c, infer_gguf_str *out, const char *what) {
    uint64_t len;
    const uint8_t *b = NULL;
    size_t at = c->pos;
    infer_status s = cur_count(c, &len, what);
    if (s != INFER_OK) return s;
    if (len > cur_left(c)) {
        return set_error(c->err, INFER_EFORMAT,
                         "%s at offset 0x%zx: string length %llu exceeds the %zu bytes left",
                         what, at, (unsigned long long)len, cur_left(c));
    }
    s = cur_take(c, len, &b, what);
    out->ptr = (const char *)b;
    out->len = (size_t)len;
    return s;
}

/* ---- small helpers ------------------------------------------------------ */

static int str_eq(infer_gguf_str s, const char *z) {
    size_t n = strlen(z);
    return s.len == n && memcmp(s.ptr, z, n) == 0;
}

static int str_cmp(infer_gguf_str a, infer_gguf_str b) {
    size_t n = a.len < b.len ? a.len : b.len;
    int r = memcmp(a.ptr, b.ptr, n);
    if (r != 0) return r;
    return (a.len > b.len) - (a.len < b.len);
}

#define QUOTE(buf, s) escape_bytes((s).ptr, (s).len, (buf), sizeof(buf))

/* ---- metadata ------------------------------------------------------------ */

static infer_status parse_value(cursor *c, gguf_kv *kv, const char *qkey) {
    infer_error *err = c->err;
    infer_status s;
    char what[160];

    if (kv->type == INFER_GGUF_STRING) {
        infer_gguf_str v;
        snprintf(what, sizeof what, "key '%s': string value", qkey);
        if ((s = cur_str(c, &v, what)) != INFER_OK) return s;
        kv->chars = v.ptr;
        kv->count = v.len;
        return INFER_OK;
    }
    if (kv->type != INFER_GGUF_ARRAY) {
        snprintf(what, sizeof what, "key '%s': %s value", qkey, infer_gguf_type_name(kv->type));
        kv->count = 1;
        return cur_take(c, infer_gguf_type_size(kv->type), &kv->val, what);
    }

    /* An array: element type, count, elements. */
    size_t at = c->pos;
    uint32_t et;
    snprintf(what, sizeof what, "key '%s': array element type", qkey);
    if ((s = cur_u32(c, &et, what)) != INFER_OK) return s;
    if (et == INFER_GGUF_ARRAY) {
        return set_error(err, INFER_EUNSUPPORTED,
                         "key '%s' at offset 0x%zx: arrays of arrays are not supported", qkey, at);
    }
    if (et >= INFER_GGUF_VALUE_TYPE_COUNT) {
        return set_error(err, INFER_EFORMAT,
                         "key '%s' at offset 0x%zx: array element type %u is out of range (0..12)",
                         qkey, at, et);
    }
    kv->arr_type = (uint8_t)et;
    at = c->pos;
    snprintf(what, sizeof what, "key '%s': array count", qkey);
    if ((s = cur_count(c, &kv->count, what)) != INFER_OK) return s;

    if (kv->arr_type != INFER_GGUF_STRING) {
        uint64_t bytes;
        size_t esize = infer_gguf_type_size(kv->arr_type);
        if (ck_mul(kv->count, (uint64_t)esize, &bytes) || bytes > cur_left(c)) {
            return set_error(err, INFER_EFORMAT,
                             "key '%s' at offset 0x%zx: array of %llu %s needs more than the %zu "
                             "bytes left",
                             qkey, at, (unsigned long long)kv->count,
                             infer_gguf_type_name(kv->arr_type), cur_left(c));
        }
        snprintf(what, sizeof what, "key '%s': array data", qkey);
        return cur_take(c, bytes, &kv->val, what);
    }

    /* String array: each element needs at least its length field, so the
     * count is bounded by the bytes left before the index is allocated. */
    if (kv->count > cur_left(c) / LEN_BYTES(c->version)) {
        return set_error(err, INFER_EFORMAT,
                         "key '%s' at offset 0x%zx: array of %llu strings cannot fit in the %zu "
                         "bytes left",
                         qkey, at, (unsigned long long)kv->count, cur_left(c));
    }
    kv->strs = infer_malloc_array((size_t)kv->count, sizeof *kv->strs);
    if (!kv->strs) {
        return set_error(err, INFER_ENOMEM, "key '%s': out of memory for %llu strings", qkey,
                         (unsigned long long)kv->count);
    }
    for (uint64_t i = 0; i < kv->count; i++) {
        size_t start = c->pos;
        if (cur_str(c, &kv->strs[i], "string") == INFER_OK) continue;
        /* Label the error only once there is one: formatting a label for each
         * of a vocabulary's 100k+ strings costs more than parsing them. The
         * second read fails the same way and names the key and element. */
        c->pos = start;
        snprintf(what, sizeof what, "key '%s': string %llu of %llu", qkey,
                 (unsigned long long)i, (unsigned long long)kv->count);
        return cur_str(c, &kv->strs[i], what);
    }
    return INFER_OK;
}

static infer_status check_alignment_key(infer_gguf *g, const gguf_kv *kv, infer_error *err) {
    uint32_t a;
    if (kv->type != INFER_GGUF_UINT32) {
        return set_error(err, INFER_EFORMAT,
                         "key 'general.alignment' at offset 0x%llx: type %s, expected uint32",
                         (unsigned long long)gguf_kv_offset(g, kv), infer_gguf_type_name(kv->type));
    }
    memcpy(&a, kv->val, 4);
    if (!is_pow2_u64(a) || a > INFER_GGUF_MAX_ALIGNMENT) {
        return set_error(err, INFER_EFORMAT,
                         "key 'general.alignment' at offset 0x%llx: %u is not a power of two in "
                         "1..%u",
                         (unsigned long long)gguf_kv_offset(g, kv), a, INFER_GGUF_MAX_ALIGNMENT);
    }
    g->alignment = a;
    return INFER_OK;
}

static infer_status parse_kv(cursor *c, infer_gguf *g, gguf_kv *kv) {
    infer_error *err = c->err;
    infer_status s;
    char qkey[96];
    const size_t start = c->pos;
    uint32_t type;

    if ((s = cur_str(c, &kv->key, "metadata key")) != INFER_OK) return s;
    if (kv->key.len == 0) {
        return set_error(err, INFER_EFORMAT, "metadata key at offset 0x%zx is empty", start);
    }
    QUOTE(qkey, kv->key);
    if (memchr(kv->key.ptr, '\0', kv->key.len)) {
        return set_error(err, INFER_EFORMAT, "metadata key '%s' at offset 0x%zx contains a NUL byte",
                         qkey, start);
    }
    size_t at = c->pos;
    char what[128];
    snprintf(what, sizeof what, "key '%s': value type", qkey);
    if ((s = cur_u32(c, &type, what)) != INFER_OK) return s;
    if (type >= INFER_GGUF_VALUE_TYPE_COUNT) {
        return set_error(err, INFER_EFORMAT,
                         "key '%s' at offset 0x%zx: value type %u is out of range (0..12)", qkey, at,
                         type);
    }
    kv->type = (uint8_t)type;
    if ((s = parse_value(c, kv, qkey)) != INFER_OK) return s;
    if (str_eq(kv->key, "general.alignment")) return check_alignment_key(g, kv, err);
    return INFER_OK;
}

/* ---- tensor infos ---------------------------------------------------------- */

static infer_status parse_tensor_info(cursor *c, unsigned flags, infer_gguf_tensor *t) {
    infer_error *err = c->err;
    infer_status s;
    char qname[96], what[128];

    t->info_offset = c->pos;
    if ((s = cur_str(c, &t->name, "tensor name")) != INFER_OK) return s;
    QUOTE(qname, t->name);
    if (t->name.len == 0 || t->name.len > INFER_GGUF_MAX_NAME) {
        return set_error(err, INFER_EFORMAT,
                         "tensor '%s' at offset 0x%llx: name is %zu bytes, must be 1..%d", qname,
                         (unsigned long long)t->info_offset, t->name.len, INFER_GGUF_MAX_NAME);
    }
    if (memchr(t->name.ptr, '\0', t->name.len)) {
        return set_error(err, INFER_EFORMAT, "tensor '%s' at offset 0x%llx: name contains a NUL byte",
                         qname, (unsigned long long)t->info_offset);
    }
    size_t at = c->pos;
    snprintf(what, sizeof what, "tensor '%s': n_dims", qname);
    if ((s = cur_u32(c, &t->n_dims, what)) != INFER_OK) return s;
    if (t->n_dims < 1 || t->n_dims > INFER_GGUF_MAX_DIMS) {
        return set_error(err, INFER_EFORMAT,
                         "tensor '%s' at offset 0x%zx: n_dims %u, must be 1..%d", qname, at,
                         t->n_dims, INFER_GGUF_MAX_DIMS);
    }
    t->n_elements = 1;
    for (uint32_t d = 0; d < INFER_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = c->pos;
        snprintf(what, sizeof what, "tensor '%s': dimension %u", qname, d);
        if ((s = cur_count(c, &t->ne[d], what)) != INFER_OK) return s;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX) {
            return set_error(err, INFER_EFORMAT,
                             "tensor '%s' at offset 0x%zx: dimension %u is %llu, must be 1..2^63-1",
                             qname, at, d, (unsigned long long)t->ne[d]);
        }
        if (ck_mul(t->n_elements, t->ne[d], &t->n_elements) || t->n_elements > (uint64_t)INT64_MAX) {
            return set_error(err, INFER_EFORMAT,
                             "tensor '%s' at offset 0x%zx: element count overflows int64", qname, at);
        }
    }
    at = c->pos;
    snprintf(what, sizeof what, "tensor '%s': type", qname);
    if ((s = cur_u32(c, &t->type, what)) != INFER_OK) return s;
    if (!infer_type_valid(t->type)) {
        return set_error(err, INFER_EFORMAT,
                         "tensor '%s' at offset 0x%zx: type id %u is unknown or was removed from "
                         "ggml",
                         qname, at, t->type);
    }
    uint32_t bs = infer_type_block_size(t->type);
    if (t->ne[0] % bs != 0 && !((flags & INFER_GGUF_BLOCKS_ACROSS_ROWS) && t->n_elements % bs == 0)) {
        return set_error(err, INFER_EFORMAT,
                         "tensor '%s' at offset 0x%llx: row length %llu is not a multiple of the "
                         "%s block size %u",
                         qname, (unsigned long long)t->info_offset, (unsigned long long)t->ne[0],
                         infer_type_name(t->type), bs);
    }
    if (infer_type_row_bytes(t->type, t->n_elements, &t->n_bytes) != INFER_OK) {
        return set_error(err, INFER_EFORMAT,
                         "tensor '%s' at offset 0x%llx: byte size of %llu %s values overflows",
                         qname, (unsigned long long)t->info_offset,
                         (unsigned long long)t->n_elements, infer_type_name(t->type));
    }
    snprintf(what, sizeof what, "tensor '%s': offset", qname);
    return cur_u64(c, &t->offset, what);
}

/* ---- whole-file checks ------------------------------------------------------ */

/* Orders of entries as arrays of their indices, merge-sorted with a
 * scratch array of the same length: 8 bytes an entry beside the kept
 * order, where items carrying their own keys took 40 (and qsort more).
 * Each comparison says whether entry i goes strictly after entry j. */
typedef int (*entry_after)(const infer_gguf *g, uint64_t i, uint64_t j);

static int key_after(const infer_gguf *g, uint64_t i, uint64_t j) {
    return str_cmp(g->kv[i].key, g->kv[j].key) > 0;
}

static int name_after(const infer_gguf *g, uint64_t i, uint64_t j) {
    return str_cmp(g->tensors[i].name, g->tensors[j].name) > 0;
}

static int start_after(const infer_gguf *g, uint64_t i, uint64_t j) {
    return g->tensors[i].offset > g->tensors[j].offset;
}

static infer_gguf_str key_of(const infer_gguf *g, uint64_t i) { return g->kv[i].key; }
static infer_gguf_str name_of(const infer_gguf *g, uint64_t i) { return g->tensors[i].name; }

/* In by[0, n), sorted by name: the position of the first entry named as the
 * one before it (a duplicate's second occurrence), or 0 when none is. */
static uint64_t first_duplicate(const infer_gguf *g, const uint64_t *by, uint64_t n,
                                infer_gguf_str (*name)(const infer_gguf *, uint64_t)) {
    for (uint64_t i = 1; i < n; i++)
        if (str_cmp(name(g, by[i - 1]), name(g, by[i])) == 0) return i;
    return 0;
}

/* idx = 0 .. n-1 in the order after gives, ties in index order (the file's:
 * a duplicate's second occurrence comes second). tmp: n scratch slots. */
static void sort_entries(const infer_gguf *g, uint64_t *idx, uint64_t *tmp, uint64_t n, entry_after after) {
    uint64_t *src = idx, *dst = tmp;
    for (uint64_t i = 0; i < n; i++) idx[i] = i;
    for (uint64_t w = 1; w < n; w *= 2) { /* n < 2^61 (entries are bytes of the file): no wrap */
        for (uint64_t lo = 0; lo < n; lo += 2 * w) {
            uint64_t mid = n - lo < w ? n : lo + w, hi = n - lo < 2 * w ? n : lo + 2 * w;
            uint64_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) dst[o++] = after(g, src[a], src[b]) ? src[b++] : src[a++];
            while (a < mid) dst[o++] = src[a++];
            while (b < hi) dst[o++] = src[b++];
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx) memcpy(idx, src, (size_t)n * sizeof *idx);
}

/* Duplicate keys and names, overlapping data: O(n log n) with one sort each,
 * so a file with millions of entries cannot make this quadratic. The name
 * orders are kept (kv_by_name, tensor_by_name) for the lookups. */
static infer_status check_unique_and_disjoint(infer_gguf *g, infer_error *err) {
    uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    infer_status s = INFER_OK;
    char qa[96], qb[96];
    if (n < 2) return INFER_OK;
    /* scratch for the sorts, and the tensors' order by data range after it */
    uint64_t n_tmp = g->n_tensors > 1 && 2 * g->n_tensors > n ? 2 * g->n_tensors : n;
    uint64_t *tmp = infer_malloc_array((size_t)n_tmp, sizeof *tmp);
    if (!tmp) return set_error(err, INFER_ENOMEM, "out of memory checking %llu entries", (unsigned long long)n);

    g->kv_by_name = g->n_kv > 1 ? infer_malloc_array((size_t)g->n_kv, sizeof *g->kv_by_name) : NULL;
    g->tensor_by_name = g->n_tensors > 1 ? infer_malloc_array((size_t)g->n_tensors, sizeof *g->tensor_by_name) : NULL;
    if ((g->n_kv > 1 && !g->kv_by_name) || (g->n_tensors > 1 && !g->tensor_by_name)) {
        infer_free(tmp);
        return set_error(err, INFER_ENOMEM, "out of memory indexing %llu entries", (unsigned long long)n);
    }

    if (g->kv_by_name) {
        sort_entries(g, g->kv_by_name, tmp, g->n_kv, key_after);
        const uint64_t d = first_duplicate(g, g->kv_by_name, g->n_kv, key_of);
        if (d) {
            const gguf_kv *q = &g->kv[g->kv_by_name[d]];
            s = set_error(err, INFER_EFORMAT, "metadata key '%s' at offset 0x%llx is a duplicate", QUOTE(qa, q->key),
                          (unsigned long long)gguf_kv_offset(g, q));
        }
    }
    if (g->tensor_by_name && s == INFER_OK) {
        sort_entries(g, g->tensor_by_name, tmp, g->n_tensors, name_after);
        const uint64_t d = first_duplicate(g, g->tensor_by_name, g->n_tensors, name_of);
        if (d) {
            const infer_gguf_tensor *q = &g->tensors[g->tensor_by_name[d]];
            s = set_error(err, INFER_EFORMAT, "tensor '%s' at offset 0x%llx: duplicate name", QUOTE(qa, q->name),
                          (unsigned long long)q->info_offset);
        }
    }
    /* Ranges are file offsets, already checked to lie inside the file. */
    if (g->n_tensors > 1 && s == INFER_OK) {
        uint64_t *by = tmp + g->n_tensors;
        sort_entries(g, by, tmp, g->n_tensors, start_after);
        for (uint64_t i = 1; i < g->n_tensors && s == INFER_OK; i++) {
            const infer_gguf_tensor *p = &g->tensors[by[i - 1]], *q = &g->tensors[by[i]];
            const uint64_t pa = g->data_offset + p->offset, qa0 = g->data_offset + q->offset;
            if (pa + p->n_bytes > qa0) {
                s = set_error(err, INFER_EFORMAT,
                              "tensor '%s': data [0x%llx, 0x%llx) overlaps tensor '%s' [0x%llx, 0x%llx)",
                              QUOTE(qa, q->name), (unsigned long long)qa0, (unsigned long long)(qa0 + q->n_bytes),
                              QUOTE(qb, p->name), (unsigned long long)pa, (unsigned long long)(pa + p->n_bytes));
            }
        }
    }
    infer_free(tmp);
    return s;
}

static infer_status place_tensor_data(infer_gguf *g, infer_error *err) {
    char q[96];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        infer_gguf_tensor *t = &g->tensors[i];
        uint64_t start, end;
        if (t->offset % g->alignment != 0) {
            return set_error(err, INFER_EFORMAT,
                             "tensor '%s': data offset 0x%llx is not a multiple of the alignment %u",
                             QUOTE(q, t->name), (unsigned long long)t->offset, g->alignment);
        }
        if (ck_add(g->data_offset, t->offset, &start) || ck_add(start, t->n_bytes, &end) ||
            end > g->size) {
            /* Saturate the numbers shown; the check above is what matters. */
            if (ck_add(g->data_offset, t->offset, &start)) start = UINT64_MAX;
            if (ck_add(start, t->n_bytes, &end)) end = UINT64_MAX;
            return set_error(err, INFER_EFORMAT,
                             "tensor '%s': data [0x%llx, 0x%llx) runs past end of file (0x%zx)",
                             QUOTE(q, t->name), (unsigned long long)start, (unsigned long long)end,
                             g->size);
        }
        t->data = g->data + start;
    }
    return INFER_OK;
}

/* ---- the parse ---------------------------------------------------------------- */

static infer_status parse_header(cursor *c, infer_gguf *g) {
    infer_error *err = c->err;
    const uint8_t *magic = NULL;
    infer_status s;

    if (c->size == 0) return set_error(err, INFER_EFORMAT, "file is empty (not a GGUF file)");
    if (c->size < 4) {
        return set_error(err, INFER_EFORMAT, "file is %zu bytes, too short for the GGUF magic",
                         c->size);
    }
    if ((s = cur_take(c, 4, &magic, "magic")) != INFER_OK) return s;
    if (memcmp(magic, "GGUF", 4) != 0) {
        char q[32];
        return set_error(err, INFER_EFORMAT, "bad magic '%s' at offset 0x0 (not a GGUF file)",
                         escape_bytes((const char *)magic, 4, q, sizeof q));
    }
    if ((s = cur_u32(c, &g->version, "version")) != INFER_OK) return s;
    if (g->version >= 0x01000000u && (g->version & 0xffffu) == 0) {
        return set_error(err, INFER_EUNSUPPORTED,
                         "version field 0x%08x at offset 0x4 looks byte-swapped: big-endian GGUF "
                         "files are not supported",
                         g->version);
    }
    if (g->version < 1 || g->version > 3) {
        return set_error(err, INFER_EUNSUPPORTED,
                         "GGUF version %u at offset 0x4 is not supported (1, 2 and 3 are)",
                         g->version);
    }
    c->version = g->version;

    size_t at = c->pos;
    if ((s = cur_count(c, &g->n_tensors, "tensor count")) != INFER_OK) return s;
    size_t at_kv = c->pos;
    if ((s = cur_count(c, &g->n_kv, "metadata count")) != INFER_OK) return s;

    /* Bound both counts by the bytes left before allocating anything. */
    uint64_t need_kv, need_t, need;
    int over_kv = ck_mul(g->n_kv, (uint64_t)MIN_KV_BYTES(g->version), &need_kv);
    int over_t = ck_mul(g->n_tensors, (uint64_t)MIN_TENSOR_BYTES(g->version), &need_t);
    if (over_kv || need_kv > cur_left(c)) {
        return set_error(err, INFER_EFORMAT,
                         "metadata count %llu at offset 0x%zx: more entries than the %zu bytes left "
                         "could hold",
                         (unsigned long long)g->n_kv, at_kv, cur_left(c));
    }
    if (over_t || ck_add(need_kv, need_t, &need) || need > cur_left(c)) {
        return set_error(err, INFER_EFORMAT,
                         "tensor count %llu at offset 0x%zx: more tensors than the %zu bytes left "
                         "could hold",
                         (unsigned long long)g->n_tensors, at, cur_left(c));
    }

    if (g->n_kv) {
        g->kv = infer_calloc((size_t)g->n_kv, sizeof *g->kv);
        if (!g->kv) return set_error(err, INFER_ENOMEM, "out of memory for %llu metadata entries",
                                     (unsigned long long)g->n_kv);
    }
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if ((s = parse_kv(c, g, &g->kv[i])) != INFER_OK) return s;
    }

    if (g->n_tensors) {
        g->tensors = infer_calloc((size_t)g->n_tensors, sizeof *g->tensors);
        if (!g->tensors) return set_error(err, INFER_ENOMEM, "out of memory for %llu tensor infos",
                                          (unsigned long long)g->n_tensors);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if ((s = parse_tensor_info(c, g->flags, &g->tensors[i])) != INFER_OK) return s;
    }

    /* Tensor data starts at the next multiple of the alignment. */
    if (ck_align_up(c->pos, g->alignment, &g->data_offset)) {
        return set_error(err, INFER_EFORMAT, "data section offset overflows");
    }
    if (g->n_tensors == 0 && g->data_offset > c->size) g->data_offset = c->size;

    if ((s = place_tensor_data(g, err)) != INFER_OK) return s;
    return check_unique_and_disjoint(g, err);
}

static void gguf_free_parsed(infer_gguf *g) {
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) { /* calloc'd: strs NULL until allocated */
            if (g->kv[i].type == INFER_GGUF_ARRAY && g->kv[i].arr_type == INFER_GGUF_STRING) infer_free(g->kv[i].strs);
        }
        infer_free(g->kv);
    }
    infer_free(g->tensors);
    infer_free(g->kv_by_name);
    infer_free(g->tensor_by_name);
}

static infer_status gguf_parse(infer_gguf *g, infer_error *err) {
    cursor c = {.p = g->data, .size = g->size, .pos = 0, .version = 0, .err = err};
    g->alignment = INFER_GGUF_DEFAULT_ALIGNMENT;
    return parse_header(&c, g);
}

infer_status infer_gguf_open_memory(const void *data, size_t size, unsigned flags, infer_gguf **out,
                                    infer_error *err) {
    if (!out || (!data && size)) return set_error(err, INFER_EINVAL, "infer_gguf_open_memory: NULL argument");
    *out = NULL;
    infer_gguf *g = infer_calloc(1, sizeof *g);
    if (!g) return set_error(err, INFER_ENOMEM, "out of memory");
    g->data = data;
    g->size = size;
    g->flags = flags;
    g->backing = GGUF_BORROWED;
    g->fd = -1;
    infer_status s = gguf_parse(g, err);
    if (s != INFER_OK) {
        infer_gguf_close(g);
        return s;
    }
    *out = g;
    return INFER_OK;
}

/* A file's modification time in ns (what gguf_read_back compares). */
static int64_t mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Bytes [off, off + size) of the file into buf + off. */
infer_status infer_gguf_open(const char *path, unsigned flags, infer_gguf **out, infer_error *err) {
    struct stat st;
    infer_status s;
    if (!path || !out) return set_error(err, INFER_EINVAL, "infer_gguf_open: NULL argument");
    *out = NULL;

    int fd;
    if ((s = infer_open_regular(path, SIZE_MAX, &fd, &st, err)) != INFER_OK) return s;

    infer_gguf *g = infer_calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        return set_error(err, INFER_ENOMEM, "out of memory");
    }
    g->size = (size_t)st.st_size;
    g->flags = flags;
    g->backing = GGUF_BORROWED; /* nothing to release yet */
    g->fd = -1;

    if (g->size > 0 && !(flags & INFER_GGUF_NO_MMAP)) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            g->data = m;
            g->backing = GGUF_MMAP;
        }
    }
    if (g->size > 0 && g->backing != GGUF_MMAP) {
        /* Anonymous memory of its own (not malloc's), so that pages of it
         * can be dropped and read back (gguf_read_back). */
        uint8_t *buf = infer_map(g->size);
        if (!buf) {
            s = set_error(err, INFER_ENOMEM, "out of memory reading %zu bytes", g->size);
            goto fail;
        }
        g->data = buf;
        g->backing = GGUF_HEAP;
        if ((s = infer_pread_all(fd, buf, 0, g->size, "file", err)) != INFER_OK) goto fail;
        g->fd = fd;
        g->mtime_ns = mtime_ns(&st);
    } else {
        close(fd);
    }
    fd = -1;

    if ((s = gguf_parse(g, err)) != INFER_OK) goto fail;
    *out = g;
    return INFER_OK;

fail:
    if (fd >= 0) close(fd);
    infer_gguf_close(g);
    return s;
}

void infer_gguf_close(infer_gguf *g) {
    if (!g) return;
    gguf_free_parsed(g);
    if (g->backing == GGUF_MMAP) munmap((void *)g->data, g->size);
    else if (g->backing == GGUF_HEAP) infer_unmap((void *)g->data, g->size);
    if (g->fd >= 0) close(g->fd);
    infer_free(g);
}

infer_status gguf_read_back(const infer_gguf *g, size_t off, size_t len, infer_error *err) {
    struct stat st;
    size_t end;
    if (!g || g->backing != GGUF_HEAP || g->fd < 0 || ck_add(off, len, &end) || end > g->size)
        return set_error(err, INFER_EINVAL, "gguf_read_back: no such range of a file read into memory");
    if (fstat(g->fd, &st) != 0) return set_error(err, INFER_EIO, "cannot stat the model file: %s", strerror(errno));
    if ((uint64_t)st.st_size != (uint64_t)g->size || mtime_ns(&st) != g->mtime_ns)
        return set_error(err, INFER_EIO, "the model file changed after it was read into memory");
    return infer_pread_all(g->fd, (uint8_t *)g->data /* HEAP: memory of our own */, off, len, "the model file", err);
}
