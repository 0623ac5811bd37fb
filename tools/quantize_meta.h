/*
 * quantize_meta.h - infer-quantize's metadata: the input's keys copied,
 * then the keys llama-quantize sets (general.quantization_version,
 * general.file_type, --override-kv's, the importance matrix's record).
 */
#ifndef INFER_QUANTIZE_META_H
#define INFER_QUANTIZE_META_H

#include <stddef.h>
#include <stdint.h>

#include "imatrix.h"
#include "infer.h"

/* llama-quantize's record of the importance matrix used (its
 * quantize.imatrix.* keys). */
typedef struct {
    const char *file;        /* the path as given */
    const imatrix *im;
    size_t n_entries;        /* after --include-weights / --exclude-weights */
} imatrix_record;

/* One --override-kv KEY=TYPE:VALUE, as llama-quantize reads it: TYPE int
 * (stored as INT32), float (FLOAT32), bool (true or false) or str (at most
 * 127 bytes); KEY 1..127 bytes. */
typedef struct {
    char key[128];
    uint32_t type; /* INFER_GGUF_INT32, _FLOAT32, _BOOL or _STRING */
    int32_t i;
    float f;
    uint8_t b;
    const char *str; /* STRING: the value, inside the option's argument */
} kv_override;

/* Parse arg (KEY=TYPE:VALUE) into o: 0, or -1 with why in msg. Stricter
 * than llama-quantize where it would store something else than asked: an
 * int must be a whole base-10 number in int32's range (it stores atol's
 * value cut to 32 bits) and a float a whole number strtod reads (it takes
 * atof's prefix); an empty KEY and general.alignment (which llama.cpp
 * aborts on) are refused. */
int kv_override_parse(const char *arg, kv_override *o, char *msg, size_t cap);

/* What the output's metadata holds beyond the input's keys. */
typedef struct {
    uint32_t ftype;
    const imatrix_record *imx;   /* NULL: no importance matrix */
    const kv_override *ovr;      /* --override-kv, in the command line's order */
    size_t n_ovr;
} quant_meta;

/* Write g's metadata into w as llama-quantize does: every key of g in
 * order, then general.quantization_version = 2, general.file_type, the
 * overrides and the importance matrix's keys, where each of these later
 * keys replaces one of its name set before it (llama.cpp's gguf_set_val_*
 * removes the key and appends it): a copied key they set moves to the end. */
infer_status quant_meta_write(const infer_gguf *g, const quant_meta *m, infer_gguf_writer *w, infer_error *err);

#endif
