/*
 * quantize_meta.c - infer-quantize's metadata, as llama-quantize writes it:
 * the input's keys copied in order, then general.quantization_version,
 * general.file_type, the --override-kv keys and the importance matrix's
 * record (in examples/quantize/quantize.cpp these last are overrides
 * too, added after the user's). llama.cpp's gguf_set_val_* removes a key
 * and appends it, so each of these later keys replaces one of its name
 * set before it, and an input key they set moves to the end.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize_meta.h"
#include "util.h"

/* Copy key i of g into w, unchanged. */
static infer_status copy_kv(const infer_gguf *g, uint64_t i, const char *key, infer_gguf_writer *w,
                            infer_error *err) {
    const uint32_t type = infer_gguf_kv_type(g, i);
    infer_status st;
    if (type == INFER_GGUF_STRING) {
        infer_gguf_str s;
        if ((st = infer_gguf_kv_string(g, i, &s, err)) != INFER_OK) return st;
        return infer_gguf_writer_set_str(w, key, s.ptr, s.len);
    }
    if (type != INFER_GGUF_ARRAY) {
        uint8_t v[8];
        if ((st = infer_gguf_kv_scalar(g, i, type, v, err)) != INFER_OK) return st;
        return infer_gguf_writer_set(w, key, type, v);
    }
    const uint32_t et = infer_gguf_kv_arr_type(g, i);
    const uint64_t n = infer_gguf_kv_arr_count(g, i); /* bounded by the file's size */
    if (et == INFER_GGUF_STRING) {
        const char **strs = infer_calloc(n ? n : 1, sizeof *strs);
        size_t *lens = infer_calloc(n ? n : 1, sizeof *lens);
        st = strs && lens ? INFER_OK : set_error(err, INFER_ENOMEM, "%s: out of memory", key);
        for (uint64_t j = 0; j < n && st == INFER_OK; j++) {
            infer_gguf_str s;
            if ((st = infer_gguf_arr_str(g, i, j, &s, err)) != INFER_OK) break;
            strs[j] = s.ptr;
            lens[j] = s.len;
        }
        if (st == INFER_OK) st = infer_gguf_writer_set_arr_str(w, key, strs, lens, n);
        infer_free(strs);
        infer_free(lens);
        return st;
    }
    const size_t esize = infer_gguf_type_size(et);
    char q[96];
    if (esize == 0)
        return set_error(err, INFER_EUNSUPPORTED, "%s: arrays of %s are not copied",
                         escape_cstr(key, q, sizeof q), infer_gguf_type_name(et));
    void *buf = infer_malloc_array(n ? (size_t)n : 1, esize);
    if (!buf) return set_error(err, INFER_ENOMEM, "%s: out of memory", escape_cstr(key, q, sizeof q));
    st = infer_gguf_arr_read(g, i, et, 0, n, buf, err);
    if (st == INFER_OK) st = infer_gguf_writer_set_arr(w, key, et, buf, n);
    infer_free(buf);
    return st;
}

#define META_STR_MAX 127 /* llama-quantize copies its strings into 128-byte fields */

int kv_override_parse(const char *arg, kv_override *o, char *msg, size_t cap) {
    char q[96];
    const char *eq = strchr(arg, '=');
    memset(o, 0, sizeof *o);
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof o->key) {
        snprintf(msg, cap, "--override-kv %s: wants KEY=TYPE:VALUE, KEY 1..127 bytes", escape_cstr(arg, q, sizeof q));
        return -1;
    }
    memcpy(o->key, arg, (size_t)(eq - arg));
    if (!strcmp(o->key, "general.alignment")) {
        snprintf(msg, cap, "--override-kv: general.alignment cannot be overridden (it must stay UINT32)");
        return -1;
    }
    const char *v = eq + 1;
    char *end = NULL;
    if (!strncmp(v, "int:", 4)) {
        errno = 0;
        const long long x = strtoll(v + 4, &end, 10);
        if (end == v + 4 || *end || errno || x < INT32_MIN || x > INT32_MAX) {
            snprintf(msg, cap, "--override-kv %s: int wants a whole number in -2147483648..2147483647 (stored as INT32)",
                     escape_cstr(arg, q, sizeof q));
            return -1;
        }
        o->type = INFER_GGUF_INT32;
        o->i = (int32_t)x;
    } else if (!strncmp(v, "float:", 6)) {
        const double x = strtod(v + 6, &end);
        if (end == v + 6 || *end) {
            snprintf(msg, cap, "--override-kv %s: float wants a number", escape_cstr(arg, q, sizeof q));
            return -1;
        }
        o->type = INFER_GGUF_FLOAT32;
        o->f = (float)x; /* stored as FLOAT32, as llama-quantize does */
    } else if (!strncmp(v, "bool:", 5)) {
        if (strcmp(v + 5, "true") && strcmp(v + 5, "false")) {
            snprintf(msg, cap, "--override-kv %s: bool wants true or false", escape_cstr(arg, q, sizeof q));
            return -1;
        }
        o->type = INFER_GGUF_BOOL;
        o->b = v[5] == 't';
    } else if (!strncmp(v, "str:", 4)) {
        if (strlen(v + 4) > META_STR_MAX) {
            snprintf(msg, cap, "--override-kv %s: a str value is at most %d bytes", escape_cstr(arg, q, sizeof q),
                     META_STR_MAX);
            return -1;
        }
        o->type = INFER_GGUF_STRING;
        o->str = v + 4;
    } else {
        snprintf(msg, cap, "--override-kv %s: TYPE is int, float, bool or str", escape_cstr(arg, q, sizeof q));
        return -1;
    }
    return 0;
}

/* A key set after the copied ones: a fixed-size value, or a string. */
typedef struct {
    const char *key;
    uint32_t type;
    const void *val; /* type's C value */
    const char *s;   /* STRING */
    size_t len;
} later_kv;

/* The later keys in the order llama-quantize sets them; returns the count
 * (at most 6 + m->n_ovr). qv, ft, ie, ic: storage for the values. */
static size_t later_keys(const quant_meta *m, later_kv *out, const uint32_t *qv, const uint32_t *ft,
                         const int32_t *ie, const int32_t *ic) {
    size_t n = 0;
    out[n++] = (later_kv){"general.quantization_version", INFER_GGUF_UINT32, qv, NULL, 0};
    out[n++] = (later_kv){"general.file_type", INFER_GGUF_UINT32, ft, NULL, 0};
    for (size_t i = 0; i < m->n_ovr; i++) {
        const kv_override *o = &m->ovr[i];
        const void *v = o->type == INFER_GGUF_INT32 ? (const void *)&o->i
                        : o->type == INFER_GGUF_FLOAT32 ? (const void *)&o->f : (const void *)&o->b;
        out[n++] = (later_kv){o->key, o->type, v, o->str, o->str ? strlen(o->str) : 0};
    }
    const imatrix_record *r = m->imx;
    if (r) { /* the path, the dataset (when the file names one), the entries, the chunks (when positive) */
        out[n++] = (later_kv){"quantize.imatrix.file", INFER_GGUF_STRING, NULL, r->file, strnlen(r->file, META_STR_MAX)};
        if (r->im->dataset_len > 0)
            out[n++] = (later_kv){"quantize.imatrix.dataset", INFER_GGUF_STRING, NULL, r->im->dataset,
                                  strnlen(r->im->dataset, META_STR_MAX)};
        out[n++] = (later_kv){"quantize.imatrix.entries_count", INFER_GGUF_INT32, ie, NULL, 0};
        if (r->im->chunks > 0) out[n++] = (later_kv){"quantize.imatrix.chunks_count", INFER_GGUF_INT32, ic, NULL, 0};
    }
    return n;
}

/* Whether key is set by one of later[from .. n). */
static int set_from(const later_kv *later, size_t from, size_t n, const char *key) {
    for (size_t j = from; j < n; j++)
        if (!strcmp(later[j].key, key)) return 1;
    return 0;
}

infer_status quant_meta_write(const infer_gguf *g, const quant_meta *m, infer_gguf_writer *w, infer_error *err) {
    const uint32_t qv = 2, ft = m->ftype;
    const int32_t ie = m->imx ? (int32_t)m->imx->n_entries : 0, ic = m->imx ? m->imx->im->chunks : 0;
    size_t cap;
    if (ck_add(m->n_ovr, (size_t)6, &cap)) return set_error(err, INFER_ENOMEM, "out of memory");
    later_kv *later = infer_malloc_array(cap, sizeof *later);
    if (!later) return set_error(err, INFER_ENOMEM, "out of memory");
    const size_t n_later = later_keys(m, later, &qv, &ft, &ie, &ic);
    infer_status st = INFER_OK;
    for (uint64_t i = 0; i < infer_gguf_kv_count(g) && st == INFER_OK; i++) {
        infer_gguf_str k = infer_gguf_kv_key(g, i);
        char key[1024];
        if (k.len == 0 || k.len >= sizeof key || memchr(k.ptr, '\0', k.len)) {
            st = set_error(err, INFER_EUNSUPPORTED, "metadata key %llu: empty, too long or with a NUL byte",
                           (unsigned long long)i);
            break;
        }
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        if (!set_from(later, 0, n_later, key)) st = copy_kv(g, i, key, w, err);
    }
    for (size_t j = 0; j < n_later && st == INFER_OK; j++) {
        const later_kv *l = &later[j];
        if (set_from(later, j + 1, n_later, l->key)) continue; /* replaced by a later set */
        st = l->type == INFER_GGUF_STRING ? infer_gguf_writer_set_str(w, l->key, l->s, l->len)
                                          : infer_gguf_writer_set(w, l->key, l->type, l->val);
    }
    infer_free(later);
    return st;
}
