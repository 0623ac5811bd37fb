/* quantize_rules.h - infer-quantize's choice of types: the file types it
 * writes and, per tensor, the type llama-quantize's rules give it
 * (quantize_rules.c). infer_quantize.c converts and writes. */
#ifndef INFER_QUANTIZE_RULES_H
#define INFER_QUANTIZE_RULES_H

#include <stdint.h>

#include "infer.h"

/* llama.cpp's llama_ftype numbers (general.file_type). */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_Q2_K_S = 21, FT_BF16 = 32,
};

typedef struct {
    const char *name;
    uint32_t ftype;
    uint32_t type; /* the default tensor type */
} file_type;

/* The file type named name (any case), or NULL. */
const file_type *file_type_by_name(const char *name);
/* TYPE as llama-quantize reads it: a file type's name (any case) or
 * llama.cpp's number for it (LLAMA_FTYPE_*, the whole argument: 15 is
 * Q4_K_M; llama-quantize also reads a number's prefix). The file
 * type, or NULL: then *known is 1 when llama-quantize knows the name or
 * number (a type not written here: IQ*, TQ*, COPY), else 0. *shown (when
 * known): the name llama-quantize puts in a default output name (the
 * first of its names for a number: Q4_K for 15). */
const file_type *file_type_parse(const char *arg, const char **shown, int *known);
/* s as a whole base-10 number in int's range (white space and a sign
 * before it, nothing after): 0 and *v, or -1. TYPE numbers and thread
 * counts are read with it. */
int parse_whole_int(const char *s, long *v);
/* Not F32, F16 or BF16. */
int is_quantized(uint32_t type);
/* A tensor type infer-quantize can write, by its name (q8_0, Q6_K, f16,
 * ...; any case), or -1. */
int64_t tensor_type_by_name(const char *name);

/* ---- the plan: one entry per tensor ---- */

typedef struct {
    char name[INFER_GGUF_MAX_NAME + 1];
    char shown[4 * INFER_GGUF_MAX_NAME + 8]; /* name escaped, for messages */
    long layer;            /* N of blk.N., or -1 */
    uint64_t index;        /* in the input */
    uint32_t type;         /* output type */
    int fell_back;         /* the chosen type did not fit the rows */
    uint32_t wanted;       /* the type before the fallback */
    uint64_t size;         /* output bytes */
    uint64_t end;          /* output offset after it, aligned */
    const float *qw;       /* importance weights (infer_quantize.c), or NULL */
} plan_entry;

/* One --tensor-type PATTERN=TYPE: tensors in whose name the pattern (a
 * PCRE2 regex, lowercased as llama-quantize lowercases it) finds a match
 * take TYPE. */
typedef struct {
    char shown[80]; /* the option's text, escaped (and cut), for messages */
    void *code;     /* pcre2_code */
    void *match;    /* pcre2_match_data */
    uint32_t type;
} type_override;

typedef struct override_regex override_regex; /* the overrides' PCRE2 contexts */

/* What the command line asks beyond TYPE (llama-quantize's options of
 * the same names); -1: not given. */
typedef struct {
    int pure;
    int has_imatrix;     /* --imatrix given (and entries left): llama.cpp's has_imatrix rules */
    int leave_output;    /* --leave-output-tensor: output.weight copied as it is */
    int64_t output_type; /* --output-tensor-type */
    int64_t embd_type;   /* --token-embedding-type */
    type_override *overrides; /* --tensor-type, in the command line's order */
    size_t n_overrides;
    override_regex *re;
} quant_options;

/* Add --tensor-type's argument arg (PATTERN=TYPE) to qo: 0; -1 with why
 * in msg (no '=', an empty pattern or type, an unknown type, a pattern
 * PCRE2 refuses); -2 out of memory. */
int quant_override_add(quant_options *qo, const char *arg, char *msg, size_t cap);
/* --tensor-type-file FILE: its PATTERN=TYPE words (separated by white
 * space, as llama-quantize reads them) added in order; 0, -1 (the file
 * cannot be read, is over 1 MiB or holds a NUL byte, or a word is refused:
 * why in msg) or -2 (out of memory). */
int quant_override_add_file(quant_options *qo, const char *path, char *msg, size_t cap);
/* Release what quant_override_add took. */
void quant_options_free(quant_options *qo);

/* Decide every tensor's output type into plan (one entry per tensor of g,
 * in g's order), and fill order (as many entries) with g's tensor indexes
 * in llama.cpp's order (weight_name_comparer: tensors outside "blk.N."
 * first, then by layer number, each group by name), the order the rules'
 * counters advance in and the output is written in. INFER_EUNSUPPORTED
 * naming the tensor when a type asked for cannot hold its rows,
 * INFER_EINVAL when a --tensor-type pattern cannot be run to an answer. */
infer_status make_plan(const infer_gguf *g, const file_type *ft, const quant_options *qo, plan_entry *plan,
                       uint64_t *order, infer_error *err);

#endif
