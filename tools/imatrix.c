/*
 * imatrix.c - the importance-matrix reader, legacy and GGUF (the formats:
 * imatrix.h).
 *
 * The file comes from anywhere, so it is read as the GGUF reader reads a
 * model: every field is bounds-checked before it is used, every count is
 * bounded by the bytes left before anything is allocated for it, sizes
 * use checked arithmetic, and every refusal names the field and its byte
 * offset. Where llama-quantize accepts what it cannot use or gives no
 * meaning to, this reader refuses (and README says so): a duplicate name
 * (llama-quantize keeps the last silently), an empty name or one with a
 * NUL byte (it cuts the name at the NUL), a negative ncall or chunk count,
 * bytes after the dataset.
 */
#include <math.h>

#include "imatrix.h"
#include "util.h"

/* The smallest entry: name length, a 1-byte name, ncall, nval, one value. */
#define MIN_ENTRY_BYTES 17

typedef struct {
    const uint8_t *p;
    size_t size, pos;
} cursor;

static int32_t rd_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

/* The next int32 into *v, or 1 when fewer than 4 bytes are left. */
static int cursor_i32(cursor *c, int32_t *v) {
    if (c->size - c->pos < 4) return 1;
    *v = rd_i32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

/* "entry I ('NAME')" for messages, the name escaped. */
static const char *entry_label(size_t i, const imatrix_entry *e, char *out, size_t cap) {
    char q[160];
    if (e && e->name) snprintf(out, cap, "entry %zu ('%s')", i, escape_bytes(e->name, e->name_len, q, sizeof q));
    else snprintf(out, cap, "entry %zu", i);
    return out;
}

/* ---- the name table ------------------------------------------------------------------ */

static size_t name_slot(const imatrix *m, const char *name, size_t len) {
    return infer_hash_slot(infer_hash_bytes(name, len, INFER_HASH_SEED), m->n_slots - 1);
}

/* Insert entry i; returns the index + 1 of an earlier entry of the same
 * name (not inserted then), 0 when inserted. */
static size_t names_insert(imatrix *m, size_t i) {
    const imatrix_entry *e = &m->entries[i];
    for (size_t s = name_slot(m, e->name, e->name_len);; s = (s + 1) & (m->n_slots - 1)) {
        if (m->slots[s] == 0) {
            m->slots[s] = i + 1;
            return 0;
        }
        const imatrix_entry *o = &m->entries[m->slots[s] - 1];
        if (o->name_len == e->name_len && memcmp(o->name, e->name, e->name_len) == 0) return m->slots[s];
    }
}

const imatrix_entry *imatrix_find(const imatrix *m, const char *name) {
    const size_t len = strlen(name);
    for (size_t s = name_slot(m, name, len);; s = (s + 1) & (m->n_slots - 1)) {
        if (m->slots[s] == 0) return NULL;
        const imatrix_entry *e = &m->entries[m->slots[s] - 1];
        if (e->name_len == len && memcmp(e->name, name, len) == 0) return e->dropped ? NULL : e;
    }
}

/* ---- parsing --------------------------------------------------------------------------- */

void imatrix_free(imatrix *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_entries; i++) {
        infer_free(m->entries[i].name);
        infer_free(m->entries[i].values);
    }
    infer_free(m->entries);
    infer_free(m->slots);
    infer_free(m->dataset);
    infer_free(m);
}

/* Bytes [pos, pos + len) as a new NUL-terminated string. */
/* Entry i at the cursor. */
static infer_status parse_entry(cursor *c, imatrix *m, size_t i, infer_error *err) {
    imatrix_entry *e = &m->entries[i];
    char what[200];
    int32_t len, ncall, nval;
    size_t at = c->pos;
    if (cursor_i32(c, &len))
        return set_error(err, INFER_EFORMAT, "%s: name length at byte %zu: truncated", entry_label(i, NULL, what, sizeof what), at);
    if (len < 1 || (size_t)len > c->size - c->pos)
        return set_error(err, INFER_EFORMAT, "%s: name length %d at byte %zu: %s", entry_label(i, NULL, what, sizeof what),
                         (int)len, at, len < 1 ? "must be at least 1" : "past the end of the file");
    if (memchr(c->p + c->pos, '\0', (size_t)len))
        return set_error(err, INFER_EFORMAT, "%s: name at byte %zu: holds a NUL byte",
                         entry_label(i, NULL, what, sizeof what), c->pos);
    if (!(e->name = infer_strndup((const char *)c->p + c->pos, (size_t)len))) return set_error(err, INFER_ENOMEM, "out of memory");
    e->name_len = (size_t)len;
    c->pos += (size_t)len;
    entry_label(i, e, what, sizeof what);
    const size_t dup = names_insert(m, i);
    if (dup) return set_error(err, INFER_EFORMAT, "%s at byte %zu: the same name as entry %zu", what, at, dup - 1);
    at = c->pos;
    if (cursor_i32(c, &ncall)) return set_error(err, INFER_EFORMAT, "%s: ncall at byte %zu: truncated", what, at);
    if (ncall < 0) return set_error(err, INFER_EFORMAT, "%s: ncall %d at byte %zu: negative", what, (int)ncall, at);
    at = c->pos;
    if (cursor_i32(c, &nval)) return set_error(err, INFER_EFORMAT, "%s: nval at byte %zu: truncated", what, at);
    size_t bytes;
    if (nval < 1 || ck_mul((size_t)nval, sizeof(float), &bytes) || bytes > c->size - c->pos)
        return set_error(err, INFER_EFORMAT, "%s: nval %d at byte %zu: %s", what, (int)nval, at,
                         nval < 1 ? "must be at least 1" : "more values than the bytes left hold");
    if (!(e->values = infer_malloc_array((size_t)nval, sizeof(float)))) return set_error(err, INFER_ENOMEM, "out of memory");
    e->n = (uint64_t)nval;
    for (size_t j = 0; j < (size_t)nval; j++, c->pos += 4) {
        const uint32_t u = (uint32_t)rd_i32(c->p + c->pos);
        float v;
        memcpy(&v, &u, sizeof v);
        if (ncall > 0) v /= ncall; /* as llama-quantize: float / int */
        if (!isfinite(v))
            return set_error(err, INFER_EFORMAT, "%s: value %zu at byte %zu: not finite (%g)", what, j, c->pos, (double)v);
        e->values[j] = v;
    }
    return INFER_OK;
}

/* The optional tail: chunk count, dataset length, dataset. */
static infer_status parse_tail(cursor *c, imatrix *m, infer_error *err) {
    int32_t chunks, len;
    size_t at = c->pos;
    if (c->pos == c->size) return INFER_OK;
    if (cursor_i32(c, &chunks)) return set_error(err, INFER_EFORMAT, "chunk count at byte %zu: truncated", at);
    if (chunks < 0) return set_error(err, INFER_EFORMAT, "chunk count %d at byte %zu: negative", (int)chunks, at);
    at = c->pos;
    if (cursor_i32(c, &len)) return set_error(err, INFER_EFORMAT, "dataset length at byte %zu: truncated", at);
    if (len < 0 || (size_t)len > c->size - c->pos)
        return set_error(err, INFER_EFORMAT, "dataset length %d at byte %zu: %s", (int)len, at,
                         len < 0 ? "negative" : "past the end of the file");
    if (!(m->dataset = infer_strndup((const char *)c->p + c->pos, (size_t)len))) return set_error(err, INFER_ENOMEM, "out of memory");
    m->dataset_len = (size_t)len;
    m->chunks = chunks;
    c->pos += (size_t)len;
    if (c->pos != c->size)
        return set_error(err, INFER_EFORMAT, "%zu bytes after the dataset at byte %zu", c->size - c->pos, c->pos);
    return INFER_OK;
}

infer_status imatrix_parse(const uint8_t *buf, size_t size, imatrix **out, infer_error *err) {
    cursor c = {.p = buf, .size = size};
    int32_t n;
    *out = NULL;
    if (cursor_i32(&c, &n)) return set_error(err, INFER_EFORMAT, "n_entries at byte 0: truncated (%zu bytes)", size);
    if (n < 1) return set_error(err, INFER_EFORMAT, "n_entries %d at byte 0: must be at least 1", (int)n);
    if ((size_t)n > (size - 4) / MIN_ENTRY_BYTES)
        return set_error(err, INFER_EFORMAT, "n_entries %d at byte 0: more than the %zu bytes left could hold", (int)n,
                         size - 4);
    imatrix *m = infer_calloc(1, sizeof *m);
    if (!m) return set_error(err, INFER_ENOMEM, "out of memory");
    infer_status st = INFER_OK;
    m->entries = infer_calloc((size_t)n, sizeof *m->entries);
    if (!m->entries || infer_hash_capacity((size_t)n, &m->n_slots) != 0 ||
        !(m->slots = infer_calloc(m->n_slots, sizeof *m->slots)))
        st = set_error(err, INFER_ENOMEM, "out of memory");
    if (m->entries) m->n_entries = (size_t)n; /* each one freed by imatrix_free, filled or not */
    for (size_t i = 0; i < (size_t)n && st == INFER_OK; i++) st = parse_entry(&c, m, i, err);
    if (st == INFER_OK) st = parse_tail(&c, m, err);
    if (st != INFER_OK) {
        imatrix_free(m);
        return st;
    }
    *out = m;
    return INFER_OK;
}

/* ---- the GGUF file (llama.cpp from mid-2025) ------------------------------------------------ */

#define SUMS_SUFFIX ".in_sum2"
#define COUNTS_SUFFIX ".counts"

/* name less suffix into base (INFER_GGUF_MAX_NAME + 1 bytes) when name
 * ends in suffix after at least one byte; 0 otherwise. */
static int base_of(infer_gguf_str name, const char *suffix, char *base) {
    const size_t k = strlen(suffix);
    if (name.len <= k || memcmp(name.ptr + name.len - k, suffix, k) != 0) return 0;
    memcpy(base, name.ptr, name.len - k); /* names are < 64 bytes, without NUL (the reader checked) */
    base[name.len - k] = '\0';
    return 1;
}

/* The tensor named base + suffix, or NULL. */
static const infer_gguf_tensor *tensor_named(const infer_gguf *g, const char *base, const char *suffix) {
    char name[INFER_GGUF_MAX_NAME + 1];
    const size_t nb = strlen(base), ns = strlen(suffix);
    if (nb + ns > INFER_GGUF_MAX_NAME) return NULL;
    memcpy(name, base, nb);
    memcpy(name + nb, suffix, ns + 1);
    const int64_t i = infer_gguf_find_tensor(g, name);
    return i < 0 ? NULL : infer_gguf_tensor_at(g, (uint64_t)i);
}

static float f32_at(const void *data, uint64_t i) {
    float v;
    memcpy(&v, (const uint8_t *)data + 4 * i, sizeof v);
    return v;
}

/* Entry i from the tensors NAME.in_sum2 (F32, ne0 values by n_mat
 * matrices: experts) and NAME.counts (F32, n_mat): sum / count per matrix,
 * 1 for a matrix whose count is not positive (it saw no input), as
 * llama-quantize reads them. */
static infer_status gguf_entry(const infer_gguf *g, const infer_gguf_tensor *sums, const char *base, imatrix *m,
                               size_t i, infer_error *err) {
    imatrix_entry *e = &m->entries[i];
    char q[160];
    escape_cstr(base, q, sizeof q);
    const infer_gguf_tensor *counts = tensor_named(g, base, COUNTS_SUFFIX);
    if (!counts) return set_error(err, INFER_EFORMAT, "%s" SUMS_SUFFIX " (tensor info at byte %llu): no %s" COUNTS_SUFFIX,
                                  q, (unsigned long long)sums->info_offset, q);
    const uint64_t ne0 = sums->ne[0], n_mat = sums->n_elements / ne0;
    if (sums->type != INFER_TYPE_F32 || counts->type != INFER_TYPE_F32 || sums->n_dims > 2 || counts->n_elements != n_mat)
        return set_error(err, INFER_EFORMAT, "%s" SUMS_SUFFIX " (tensor info at byte %llu): want F32 sums of ne0 x "
                         "matrices and F32 counts, one per matrix; have %s with %u dims, %s of %llu values", q,
                         (unsigned long long)sums->info_offset, infer_type_name(sums->type), sums->n_dims,
                         infer_type_name(counts->type), (unsigned long long)counts->n_elements);
    if (!(e->name = infer_strndup(base, strlen(base)))) return set_error(err, INFER_ENOMEM, "out of memory");
    e->name_len = strlen(base);
    names_insert(m, i); /* tensor names are unique: no duplicate */
    if (!(e->values = infer_malloc_array((size_t)sums->n_elements, sizeof(float))))
        return set_error(err, INFER_ENOMEM, "out of memory");
    e->n = sums->n_elements;
    const uint64_t data_at = (uint64_t)((const uint8_t *)sums->data - (const uint8_t *)infer_gguf_file_data(g));
    for (uint64_t j = 0; j < n_mat; j++) {
        const float c = f32_at(counts->data, j);
        for (uint64_t k = 0; k < ne0; k++) {
            const uint64_t at = j * ne0 + k;
            const float v = c > 0 ? f32_at(sums->data, at) / c : 1.0f;
            if (!isfinite(v))
                return set_error(err, INFER_EFORMAT, "%s: value %llu (byte %llu) over count %g: not finite (%g)", q,
                                 (unsigned long long)at, (unsigned long long)(data_at + 4 * at), (double)c, (double)v);
            e->values[at] = v;
        }
    }
    return INFER_OK;
}

/* llama-imatrix's keys: imatrix.datasets (strings; the first is the one
 * recorded), imatrix.chunk_count, imatrix.chunk_size (UINT32 each). */
static infer_status gguf_keys(const infer_gguf *g, imatrix *m, infer_error *err) {
    const int64_t ds = infer_gguf_find_key(g, "imatrix.datasets");
    uint32_t chunks, chunk_size;
    if (ds < 0 || infer_gguf_kv_type(g, (uint64_t)ds) != INFER_GGUF_ARRAY ||
        infer_gguf_kv_arr_type(g, (uint64_t)ds) != INFER_GGUF_STRING)
        return set_error(err, INFER_EFORMAT, "imatrix.datasets: missing or not an array of strings");
    if (infer_gguf_get_u32(g, "imatrix.chunk_count", &chunks, NULL) != INFER_OK ||
        infer_gguf_get_u32(g, "imatrix.chunk_size", &chunk_size, NULL) != INFER_OK)
        return set_error(err, INFER_EFORMAT, "imatrix.chunk_count / imatrix.chunk_size: missing or not UINT32");
    m->chunks = chunks > INT32_MAX ? 0 : (int32_t)chunks; /* llama-quantize's int goes negative: none recorded */
    if (infer_gguf_kv_arr_count(g, (uint64_t)ds) == 0) return INFER_OK;
    infer_gguf_str first;
    infer_status st = infer_gguf_arr_str(g, (uint64_t)ds, 0, &first, err);
    if (st != INFER_OK) return st;
    if (!(m->dataset = infer_strndup(first.ptr, first.len))) return set_error(err, INFER_ENOMEM, "out of memory");
    m->dataset_len = first.len;
    return INFER_OK;
}

/* The entries of an open GGUF imatrix: one per NAME.in_sum2 tensor. */
static infer_status gguf_read(const infer_gguf *g, imatrix **out, infer_error *err) {
    char base[INFER_GGUF_MAX_NAME + 1], q[160];
    const uint64_t nt = infer_gguf_tensor_count(g);
    size_t n = 0;
    for (uint64_t i = 0; i < nt; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        if (base_of(t->name, SUMS_SUFFIX, base)) n++;
        else if (base_of(t->name, COUNTS_SUFFIX, base) && !tensor_named(g, base, SUMS_SUFFIX)) /* llama-quantize refuses it too */
            return set_error(err, INFER_EFORMAT, "%s" COUNTS_SUFFIX " (tensor info at byte %llu): no %s" SUMS_SUFFIX,
                             escape_cstr(base, q, sizeof q), (unsigned long long)t->info_offset, q);
    }
    if (n == 0) return set_error(err, INFER_EFORMAT, "no NAME" SUMS_SUFFIX " tensors (%llu tensors)", (unsigned long long)nt);
    imatrix *m = infer_calloc(1, sizeof *m);
    if (!m) return set_error(err, INFER_ENOMEM, "out of memory");
    infer_status st = INFER_OK;
    m->entries = infer_calloc(n, sizeof *m->entries);
    if (!m->entries || infer_hash_capacity(n, &m->n_slots) != 0 || !(m->slots = infer_calloc(m->n_slots, sizeof *m->slots)))
        st = set_error(err, INFER_ENOMEM, "out of memory");
    if (m->entries) m->n_entries = n;
    for (uint64_t i = 0, k = 0; i < nt && st == INFER_OK; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        if (base_of(t->name, SUMS_SUFFIX, base)) st = gguf_entry(g, t, base, m, k++, err);
    }
    if (st == INFER_OK) st = gguf_keys(g, m, err);
    if (st != INFER_OK) {
        imatrix_free(m);
        return st;
    }
    *out = m;
    return INFER_OK;
}

infer_status imatrix_parse_gguf(const uint8_t *buf, size_t size, imatrix **out, infer_error *err) {
    infer_gguf *g = NULL;
    *out = NULL;
    infer_status st = infer_gguf_open_memory(buf, size, 0, &g, err);
    if (st == INFER_OK) st = gguf_read(g, out, err);
    infer_gguf_close(g);
    return st;
}

/* ---- the file ---------------------------------------------------------------------------- */

infer_status imatrix_load(const char *path, imatrix **out, infer_error *err) {
    *out = NULL;
    uint8_t *buf = NULL;
    size_t size = 0;
    infer_status st = infer_read_file(path, SIZE_MAX, &buf, &size, err);
    /* a GGUF file starts "GGUF"; as a legacy file that would be 1,179,993,927
     * entries, more than any file holds */
    if (st == INFER_OK)
        st = size >= 4 && !memcmp(buf, "GGUF", 4) ? imatrix_parse_gguf(buf, size, out, err)
                                                   : imatrix_parse(buf, size, out, err);
    infer_free(buf);
    return st;
}

size_t imatrix_filter(imatrix *m, const char *const *names, size_t n, int include) {
    size_t left = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        imatrix_entry *e = &m->entries[i];
        int hit = 0;
        for (size_t k = 0; k < n && !hit; k++) hit = strstr(e->name, names[k]) != NULL;
        if (hit != include) e->dropped = 1;
        left += !e->dropped;
    }
    return left;
}
