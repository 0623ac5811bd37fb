/*
 * cli_inspect.c - `infer --inspect MODEL [--json]`: what is inside a GGUF
 * file. Text for people, JSON for programs. Arrays are summarised (element
 * type, count, first few values); tensor table and totals follow.
 */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ARRAY_PREVIEW 8    /* array elements shown */
#define STRING_PREVIEW 120 /* bytes of a string shown in text mode */

/* ---- strings ---------------------------------------------------------------- */

static void text_str(FILE *f, const char *s, size_t len) {
    char buf[STRING_PREVIEW + 8];
    fprintf(f, "\"%s\"", escape_bytes(s, len, buf, sizeof buf));
}

static void put_str(FILE *f, int json, infer_gguf_str s) {
    if (json) json_put_str(f, s.ptr, s.len);
    else text_str(f, s.ptr, s.len);
}

/* ---- scalars ------------------------------------------------------------------ */

static void put_double(FILE *f, int json, double v, int digits) {
    if (json && !isfinite(v)) fputs("null", f);
    else fprintf(f, "%.*g", digits, v);
}

/* One fixed-size value of type t from raw little-endian bytes. */
static void put_scalar(FILE *f, int json, uint32_t t, const void *raw) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            uint64_t u64; int64_t i64; float f32; double f64; } v;
    memcpy(&v, raw, infer_gguf_type_size(t));
    switch (t) {
    case INFER_GGUF_UINT8: fprintf(f, "%u", v.u8); break;
    case INFER_GGUF_INT8: fprintf(f, "%d", v.i8); break;
    case INFER_GGUF_UINT16: fprintf(f, "%u", v.u16); break;
    case INFER_GGUF_INT16: fprintf(f, "%d", v.i16); break;
    case INFER_GGUF_UINT32: fprintf(f, "%" PRIu32, v.u32); break;
    case INFER_GGUF_INT32: fprintf(f, "%" PRId32, v.i32); break;
    case INFER_GGUF_UINT64: fprintf(f, "%" PRIu64, v.u64); break;
    case INFER_GGUF_INT64: fprintf(f, "%" PRId64, v.i64); break;
    case INFER_GGUF_FLOAT32: put_double(f, json, v.f32, 9); break;
    case INFER_GGUF_FLOAT64: put_double(f, json, v.f64, 17); break;
    case INFER_GGUF_BOOL: fputs(v.u8 ? "true" : "false", f); break;
    default: fputs(json ? "null" : "?", f); break;
    }
}

/* The value of metadata entry i: scalar, string, or array summary. */
static void put_value(FILE *f, int json, const infer_gguf *g, uint64_t i) {
    uint32_t t = infer_gguf_kv_type(g, i);
    uint8_t raw[8];
    infer_gguf_str s;
    if (t == INFER_GGUF_STRING) {
        if (infer_gguf_kv_string(g, i, &s, NULL) == INFER_OK) put_str(f, json, s);
        return;
    }
    if (t != INFER_GGUF_ARRAY) {
        if (infer_gguf_kv_scalar(g, i, t, raw, NULL) == INFER_OK) put_scalar(f, json, t, raw);
        return;
    }
    uint32_t et = infer_gguf_kv_arr_type(g, i);
    uint64_t n = infer_gguf_kv_arr_count(g, i);
    uint64_t shown = n < ARRAY_PREVIEW ? n : ARRAY_PREVIEW;
    if (json) fprintf(f, "{\"element_type\": \"%s\", \"count\": %" PRIu64 ", \"first\": [",
                      infer_gguf_type_name(et), n);
    else fprintf(f, "[%s x %" PRIu64 "]%s", infer_gguf_type_name(et), n, n ? " " : "");
    for (uint64_t k = 0; k < shown; k++) {
        if (k) fputs(", ", f);
        if (et == INFER_GGUF_STRING) {
            if (infer_gguf_arr_str(g, i, k, &s, NULL) == INFER_OK) put_str(f, json, s);
        } else if (infer_gguf_arr_read(g, i, et, k, 1, raw, NULL) == INFER_OK) {
            put_scalar(f, json, et, raw);
        }
    }
    if (json) fputs("]}", f);
    else if (n > shown) fputs(", ...", f);
}

/* ---- totals ---------------------------------------------------------------------- */

typedef struct {
    uint64_t params, bytes;
} totals;

static totals sum_tensors(const infer_gguf *g) {
    totals t = {0, 0};
    for (uint64_t i = 0; i < infer_gguf_tensor_count(g); i++) {
        const infer_gguf_tensor *ti = infer_gguf_tensor_at(g, i);
        /* Each is inside the file and ranges do not overlap: no overflow. */
        t.params += ti->n_elements;
        t.bytes += ti->n_bytes;
    }
    return t;
}

static void shape_str(const infer_gguf_tensor *t, char *buf, size_t cap, int json) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, json ? "[" : "");
    for (uint32_t d = 0; d < t->n_dims && o < cap; d++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu64, d ? (json ? ", " : " x ") : "", t->ne[d]);
    }
    if (json && o < cap) snprintf(buf + o, cap - o, "]");
}

/* ---- the two formats ---------------------------------------------------------------- */

static void inspect_text(FILE *f, const char *path, const infer_gguf *g) {
    uint64_t nkv = infer_gguf_kv_count(g), nt = infer_gguf_tensor_count(g);
    char name[128], shape[128];
    char qpath[512];
    fprintf(f, "file:        %s\n", escape_cstr(path, qpath, sizeof qpath));
    fprintf(f, "gguf:        version %u, alignment %u, %" PRIu64 " bytes, tensor data at 0x%" PRIx64 "\n",
            infer_gguf_version(g), infer_gguf_alignment(g), infer_gguf_file_size(g),
            infer_gguf_data_offset(g));
    fprintf(f, "\nmetadata: %" PRIu64 " entries\n", nkv);
    for (uint64_t i = 0; i < nkv; i++) {
        infer_gguf_str k = infer_gguf_kv_key(g, i);
        uint32_t t = infer_gguf_kv_type(g, i);
        fprintf(f, "  %-42s %-7s ", escape_bytes(k.ptr, k.len, name, sizeof name),
                infer_gguf_type_name(t));
        put_value(f, 0, g, i);
        fputc('\n', f);
    }
    fprintf(f, "\ntensors: %" PRIu64 "\n", nt);
    fprintf(f, "  %5s  %-36s %-8s %-24s %12s %12s\n", "#", "name", "type", "shape", "offset", "bytes");
    for (uint64_t i = 0; i < nt; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        shape_str(t, shape, sizeof shape, 0);
        fprintf(f, "  %5" PRIu64 "  %-36s %-8s %-24s %#12" PRIx64 " %12" PRIu64 "\n", i,
                escape_bytes(t->name.ptr, t->name.len, name, sizeof name),
                infer_type_name(t->type), shape, infer_gguf_data_offset(g) + t->offset, t->n_bytes);
    }
    totals tot = sum_tensors(g);
    fprintf(f, "\ntotals:      %" PRIu64 " parameters, %" PRIu64 " bytes (%.2f MiB), %.2f bits per weight\n",
            tot.params, tot.bytes, (double)tot.bytes / (1024.0 * 1024.0),
            tot.params ? 8.0 * (double)tot.bytes / (double)tot.params : 0.0);
}

static void inspect_json(FILE *f, const char *path, const infer_gguf *g) {
    uint64_t nkv = infer_gguf_kv_count(g), nt = infer_gguf_tensor_count(g);
    char shape[128];
    fputs("{\n  \"file\": ", f);
    json_put_str(f, path, strlen(path));
    fprintf(f, ",\n  \"version\": %u,\n  \"alignment\": %u,\n  \"file_size\": %" PRIu64
               ",\n  \"data_offset\": %" PRIu64 ",\n  \"metadata\": [",
            infer_gguf_version(g), infer_gguf_alignment(g), infer_gguf_file_size(g),
            infer_gguf_data_offset(g));
    for (uint64_t i = 0; i < nkv; i++) {
        infer_gguf_str k = infer_gguf_kv_key(g, i);
        fputs(i ? ",\n    {\"key\": " : "\n    {\"key\": ", f);
        json_put_str(f, k.ptr, k.len);
        fprintf(f, ", \"type\": \"%s\", \"value\": ", infer_gguf_type_name(infer_gguf_kv_type(g, i)));
        put_value(f, 1, g, i);
        fputc('}', f);
    }
    fputs(nkv ? "\n  ],\n  \"tensors\": [" : "],\n  \"tensors\": [", f);
    for (uint64_t i = 0; i < nt; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        shape_str(t, shape, sizeof shape, 1);
        fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
        json_put_str(f, t->name.ptr, t->name.len);
        fprintf(f, ", \"type\": \"%s\", \"shape\": %s, \"offset\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
                infer_type_name(t->type), shape, infer_gguf_data_offset(g) + t->offset, t->n_bytes);
    }
    totals tot = sum_tensors(g);
    fprintf(f, "%s],\n  \"totals\": {\"parameters\": %" PRIu64 ", \"bytes\": %" PRIu64
               ", \"bits_per_weight\": %.4f}\n}\n",
            nt ? "\n  " : "", tot.params, tot.bytes,
            tot.params ? 8.0 * (double)tot.bytes / (double)tot.params : 0.0);
}

int cli_inspect(const char *path, int json, unsigned gguf_flags) {
    infer_error err = {0};
    infer_gguf *g = NULL;
    if (infer_gguf_open(path, gguf_flags, &g, &err) != INFER_OK) {
        cli_reject(path, err.message);
        return CLI_EXIT_REJECTED;
    }
    if (json) inspect_json(stdout, path, g);
    else inspect_text(stdout, path, g);
    infer_gguf_close(g);
    if (fflush(stdout) != 0) return CLI_EXIT_RUNTIME;
    return CLI_EXIT_OK;
}
