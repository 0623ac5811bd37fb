/*
 * quantize_rules.c - which type each tensor gets, the way llama.cpp's
 * llama-quantize chooses it (src/llama-quant.cpp; with an importance matrix
 * the Q4_0 / Q5_0 files take Q4_1 / Q5_1 for the first eighth of ffn_down):
 * what can be quantized, the mixture rules of each file type, the
 * counters they use in llama.cpp's tensor order, and the fallback for rows
 * that are not whole blocks. See infer_quantize.c's header for the list.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "quantize_rules.h"
#include "util.h"

/* Bare Q3_K / Q4_K / Q5_K are the "mostly that type" _S mixtures here
 * (llama-quantize's own bare names mean _M). */
static const file_type FILE_TYPES[] = {
    {"Q4_0", FT_Q4_0, INFER_TYPE_Q4_0},     {"Q4_1", FT_Q4_1, INFER_TYPE_Q4_1},
    {"Q5_0", FT_Q5_0, INFER_TYPE_Q5_0},     {"Q5_1", FT_Q5_1, INFER_TYPE_Q5_1},
    {"Q8_0", FT_Q8_0, INFER_TYPE_Q8_0},     {"Q2_K", FT_Q2_K, INFER_TYPE_Q2_K},
    {"Q3_K", FT_Q3_K_S, INFER_TYPE_Q3_K},   {"Q3_K_S", FT_Q3_K_S, INFER_TYPE_Q3_K},
    {"Q3_K_M", FT_Q3_K_M, INFER_TYPE_Q3_K}, {"Q3_K_L", FT_Q3_K_L, INFER_TYPE_Q3_K},
    {"Q4_K", FT_Q4_K_S, INFER_TYPE_Q4_K},   {"Q4_K_S", FT_Q4_K_S, INFER_TYPE_Q4_K},
    {"Q4_K_M", FT_Q4_K_M, INFER_TYPE_Q4_K}, {"Q5_K", FT_Q5_K_S, INFER_TYPE_Q5_K},
    {"Q5_K_S", FT_Q5_K_S, INFER_TYPE_Q5_K}, {"Q5_K_M", FT_Q5_K_M, INFER_TYPE_Q5_K},
    {"Q6_K", FT_Q6_K, INFER_TYPE_Q6_K},     {"Q2_K_S", FT_Q2_K_S, INFER_TYPE_Q2_K},
    {"F16", FT_F16, INFER_TYPE_F16},
    {"BF16", FT_BF16, INFER_TYPE_BF16},     {"F32", FT_F32, INFER_TYPE_F32},
};

const file_type *file_type_by_name(const char *name) {
    for (size_t i = 0; i < sizeof FILE_TYPES / sizeof *FILE_TYPES; i++)
        if (!strcasecmp(FILE_TYPES[i].name, name)) return &FILE_TYPES[i];
    return NULL;
}

/* llama-quantize's TYPE names in its order (QUANT_OPTIONS), with their
 * numbers (LLAMA_FTYPE_*), those infer-quantize does not write included:
 * a number names the first entry that has it. */
static const struct {
    const char *name;
    int ftype;
} LLAMA_TYPE_NAMES[] = {
    {"Q4_0", 2},     {"Q4_1", 3},     {"Q5_0", 8},    {"Q5_1", 9},    {"IQ2_XXS", 19}, {"IQ2_XS", 20},
    {"IQ2_S", 28},   {"IQ2_M", 29},   {"IQ1_S", 24},  {"IQ1_M", 31},  {"TQ1_0", 36},   {"TQ2_0", 37},
    {"Q2_K", 10},    {"Q2_K_S", 21},  {"IQ3_XXS", 23}, {"IQ3_S", 26}, {"IQ3_M", 27},   {"Q3_K", 12},
    {"IQ3_XS", 22},  {"Q3_K_S", 11},  {"Q3_K_M", 12}, {"Q3_K_L", 13}, {"IQ4_NL", 25},  {"IQ4_XS", 30},
    {"Q4_K", 15},    {"Q4_K_S", 14},  {"Q4_K_M", 15}, {"Q5_K", 17},   {"Q5_K_S", 16},  {"Q5_K_M", 17},
    {"Q6_K", 18},    {"Q8_0", 7},     {"F16", 1},     {"BF16", 32},   {"F32", 0},      {"COPY", 0},
};

/* (llama-quantize's std::stoi also takes a number's prefix: "8bit.gguf" as
 * an OUT would be type 8, Q5_0, there; here it is a file name.) */
int parse_whole_int(const char *s, long *v) {
    char *end;
    errno = 0;
    const long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < INT_MIN || x > INT_MAX) return -1;
    *v = x;
    return 0;
}

const file_type *file_type_parse(const char *arg, const char **shown, int *known) {
    *known = 0;
    const file_type *ft = file_type_by_name(arg);
    if (ft) {
        *known = 1;
        *shown = ft->name;
        return ft;
    }
    const size_t n_names = sizeof LLAMA_TYPE_NAMES / sizeof *LLAMA_TYPE_NAMES;
    for (size_t i = 0; i < n_names; i++)
        if (!strcasecmp(LLAMA_TYPE_NAMES[i].name, arg)) {
            *known = 1; /* llama-quantize's, not written here */
            *shown = LLAMA_TYPE_NAMES[i].name;
            return NULL;
        }
    long v;
    if (parse_whole_int(arg, &v) != 0) return NULL;
    for (size_t i = 0; i < n_names; i++) {
        if (LLAMA_TYPE_NAMES[i].ftype != v) continue;
        *known = 1;
        *shown = LLAMA_TYPE_NAMES[i].name;
        /* the number's file type (the _S / _M entry, not a bare alias,
         * which here names the _S mixture) */
        for (size_t j = 0; j < sizeof FILE_TYPES / sizeof *FILE_TYPES; j++)
            if ((long)FILE_TYPES[j].ftype == v) ft = &FILE_TYPES[j];
        return ft;
    }
    return NULL;
}

int is_quantized(uint32_t type) {
    return type != INFER_TYPE_F32 && type != INFER_TYPE_F16 && type != INFER_TYPE_BF16;
}

/* ---- what the model is --------------------------------------------------------------- */

typedef struct {
    char arch[64];
    uint64_t n_layer, n_head, n_head_kv, n_expert;
    int falcon, is_70b, tied; /* tied: no output.weight */
} model_info;

/* An unsigned hyperparameter <arch>.<suffix>, or dflt when absent or not a
 * scalar integer (some models store per-layer arrays). */
static uint64_t arch_uint(const infer_gguf *g, const char *arch, const char *suffix, uint64_t dflt) {
    char key[160];
    uint64_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return infer_gguf_get_uint(g, key, &v, NULL) == INFER_OK ? v : dflt;
}

static void model_info_read(const infer_gguf *g, model_info *mi) {
    infer_gguf_str s;
    memset(mi, 0, sizeof *mi);
    if (infer_gguf_get_str(g, "general.architecture", &s, NULL) == INFER_OK && s.len < sizeof mi->arch &&
        !memchr(s.ptr, '\0', s.len))
        memcpy(mi->arch, s.ptr, s.len);
    mi->n_layer = arch_uint(g, mi->arch, "block_count", 0);
    mi->n_head = arch_uint(g, mi->arch, "attention.head_count", 0);
    mi->n_head_kv = arch_uint(g, mi->arch, "attention.head_count_kv", mi->n_head);
    mi->n_expert = arch_uint(g, mi->arch, "expert_count", 0);
    mi->falcon = !strcmp(mi->arch, "falcon");
    /* llama.cpp's LLM_TYPE_70B, whose attn_v gets more bits: 80-layer llama
     * with grouped KV heads, 80-layer qwen2. */
    mi->is_70b = mi->n_layer == 80 && ((!strcmp(mi->arch, "llama") && mi->n_head != mi->n_head_kv) ||
                                       !strcmp(mi->arch, "qwen2"));
    mi->tied = infer_gguf_find_tensor(g, "output.weight") < 0;
}

static uint64_t n_gqa(const model_info *mi) {
    return mi->n_head_kv ? mi->n_head / mi->n_head_kv : 0;
}

/* ---- which tensors are quantized, and to what ----------------------------------------- */

/* Name fragments of tensors llama-quantize never quantizes (small or
 * special: norms, MoE gates, position embeddings, conv kernels, ...). */
static const char *const KEEP_FRAGMENTS[] = {
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
    "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
    "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
    "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
    "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
    "mm.a.code_embd",
};

/* ggml_n_dims: the dimensions up to the last one above 1 (a [256, 1]
 * tensor is 1-D to llama-quantize, whatever n_dims the file says). */
static uint32_t effective_dims(const infer_gguf_tensor *t) {
    for (uint32_t d = t->n_dims; d > 1; d--)
        if (t->ne[d - 1] > 1) return d;
    return 1;
}

static int allows_quantization(const char *name, uint32_t n_dims) {
    const size_t len = strlen(name);
    if (n_dims < 2 || len < 6 || strcmp(name + len - 6, "weight") != 0) return 0;
    for (size_t i = 0; i < sizeof KEEP_FRAGMENTS / sizeof *KEEP_FRAGMENTS; i++)
        if (strstr(name, KEEP_FRAGMENTS[i])) return 0;
    return strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
}

typedef enum {
    CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B,
    CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER,
} category;

/* llama.cpp's tensor_get_category: first match wins. */
static category category_of(const char *name) {
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight")) return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (strstr(name, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (strstr(name, "attn_v.weight")) return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_up")) return CAT_FFN_UP;
    if (strstr(name, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static int is_attn_v_like(category c) {
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

/* The N of a name starting "blk.N." (what sscanf("blk.%d.") reads, with
 * the value saturated instead of overflowing), or -1. */
static long layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    while (isspace((unsigned char)*p)) p++;
    int neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    if (!isdigit((unsigned char)*p)) return -1;
    long v = 0;
    for (; isdigit((unsigned char)*p); p++) v = v < 100000000 ? v * 10 + (*p - '0') : v;
    return neg ? -v : v;
}

/* Counters of the rules, advanced in llama.cpp's tensor order. */
typedef struct {
    const model_info *mi;
    uint32_t ftype;
    int64_t output_type; /* --output-tensor-type, or -1 */
    int has_imatrix;
    int n_attention_wv, i_attention_wv;
    int n_ffn_down, i_ffn_down, i_ffn_gate, i_ffn_up;
} rule_state;

/* use_more_bits: the first and last eighth of the layers and every third in
 * between. */
static int use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* llama_tensor_get_type_impl for the file types infer-quantize writes.
 * Returns the type, or -1 with a message when llama.cpp would refuse. */
static int64_t choose_type(rule_state *rs, const char *name, uint64_t ncols, uint32_t type,
                           char *msg, size_t msg_cap) {
    const model_info *mi = rs->mi;
    const uint32_t ft = rs->ftype;
    const category cat = category_of(name);
    if (cat == CAT_OUTPUT || (mi->tied && cat == CAT_TOKEN_EMBD)) {
        if (rs->output_type >= 0) return rs->output_type; /* the tied token_embd: the fallback still applies */
        if (mi->falcon || ncols % infer_type_block_size(type) != 0) return INFER_TYPE_Q8_0;
        return type != INFER_TYPE_Q8_0 ? INFER_TYPE_Q6_K : type;
    }
    if (cat == CAT_TOKEN_EMBD) return type;
    if (is_attn_v_like(cat)) {
        if (ft == FT_Q2_K)
            type = n_gqa(mi) >= 4 ? INFER_TYPE_Q4_K : INFER_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S && n_gqa(mi) >= 4)
            type = INFER_TYPE_Q4_K;
        else if (ft == FT_Q3_K_M)
            type = rs->i_attention_wv < 2 ? INFER_TYPE_Q5_K : INFER_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L)
            type = INFER_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(rs->i_attention_wv, rs->n_attention_wv))
            type = INFER_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && rs->i_attention_wv < 4)
            type = INFER_TYPE_Q5_K;
        if (mi->is_70b && (type == INFER_TYPE_Q3_K || type == INFER_TYPE_Q4_K)) type = INFER_TYPE_Q5_K;
        if (mi->n_expert == 8) type = INFER_TYPE_Q8_0;
        rs->i_attention_wv++;
        return type;
    }
    if (cat == CAT_ATTN_K) return mi->n_expert == 8 ? INFER_TYPE_Q8_0 : type;
    if (cat == CAT_FFN_DOWN) {
        long i_layer = rs->i_ffn_down;
        const int n_layer = rs->n_ffn_down;
        if (mi->n_expert > 1) { /* experts are not consecutive: the name says */
            i_layer = layer_of(name);
            if (i_layer < 0 || i_layer >= n_layer) {
                char q[4 * INFER_GGUF_MAX_NAME + 8];
                snprintf(msg, msg_cap, "%s: cannot tell its layer (of %d)", escape_cstr(name, q, sizeof q),
                         n_layer);
                return -1;
            }
        }
        const int il = (int)i_layer;
        if (ft == FT_Q2_K)
            type = INFER_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S) {
            if (il < n_layer / 8) type = INFER_TYPE_Q4_K;
        } else if (ft == FT_Q3_K_M)
            type = il < n_layer / 16 ? INFER_TYPE_Q5_K
                   : !mi->falcon || use_more_bits(il, n_layer) ? INFER_TYPE_Q4_K : INFER_TYPE_Q3_K;
        else if (ft == FT_Q3_K_L)
            type = mi->falcon ? INFER_TYPE_Q4_K : INFER_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (mi->falcon)
                type = il < n_layer / 16 ? INFER_TYPE_Q6_K
                       : use_more_bits(il, n_layer) ? INFER_TYPE_Q5_K : INFER_TYPE_Q4_K;
            else if (use_more_bits(il, n_layer))
                type = INFER_TYPE_Q6_K;
        } else if (ft == FT_Q5_K_M && use_more_bits(il, n_layer))
            type = INFER_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && !mi->falcon && il < n_layer / 8)
            type = INFER_TYPE_Q5_K;
        else if ((ft == FT_Q4_0 || ft == FT_Q5_0) && rs->has_imatrix && il < n_layer / 8)
            /* llama.cpp guards the first ffn_down layers, with an imatrix
             * only (without one the output must stay what it was) */
            type = ft == FT_Q4_0 ? INFER_TYPE_Q4_1 : INFER_TYPE_Q5_1;
        rs->i_ffn_down++;
        return type;
    }
    if (cat == CAT_ATTN_OUTPUT) {
        if (mi->falcon) return ft == FT_Q3_K_L ? INFER_TYPE_Q4_K : type;
        if (mi->n_expert == 8) /* Q3_K_L is not among these in llama.cpp */
            return ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_Q4_K_S || ft == FT_Q4_K_M
                       ? INFER_TYPE_Q5_K : type;
        return ft == FT_Q2_K ? INFER_TYPE_Q3_K
               : ft == FT_Q3_K_M ? INFER_TYPE_Q4_K
               : ft == FT_Q3_K_L ? INFER_TYPE_Q5_K : type;
    }
    if (cat == CAT_FFN_GATE) rs->i_ffn_gate++;
    if (cat == CAT_FFN_UP) rs->i_ffn_up++;
    return type;
}

/* tensor_type_fallback: a type whose block does not divide the row length
 * is replaced. llama.cpp defines no fallback for the 32-value types (it
 * stops); here they become F16, like a fallback that does not fit either. */
static uint32_t fallback_type(uint32_t type, uint64_t ncols) {
    if (ncols % infer_type_block_size(type) == 0) return type;
    uint32_t fb = INFER_TYPE_F16;
    switch (type) {
    case INFER_TYPE_Q2_K: case INFER_TYPE_Q3_K: fb = INFER_TYPE_Q4_0; break;
    case INFER_TYPE_Q4_K: fb = INFER_TYPE_Q5_0; break;
    case INFER_TYPE_Q5_K: fb = INFER_TYPE_Q5_1; break;
    case INFER_TYPE_Q6_K: fb = INFER_TYPE_Q8_0; break;
    default: break;
    }
    return ncols % infer_type_block_size(fb) == 0 ? fb : INFER_TYPE_F16;
}

/* ---- --tensor-type ---------------------------------------------------------------------- */

/* PCRE2 as llama-quantize's std::regex (ECMAScript) reads these patterns:
 * `$` only at the very end (not before a final newline), `.` not across
 * \r or \n; its memory through the project's allocator; and one match
 * bounded, so a pathological pattern fails instead of running on. */
struct override_regex {
    pcre2_general_context *gctx;
    pcre2_compile_context *cctx;
    pcre2_match_context *mctx;
};


static int override_regex_init(quant_options *qo) {
    if (qo->re) return 0;
    override_regex *re = infer_calloc(1, sizeof *re);
    if (!re) return -1;
    qo->re = re;
    re->gctx = pcre2_general_context_create(infer_malloc_ud, infer_free_ud, NULL);
    if (!re->gctx) return -1;
    re->cctx = pcre2_compile_context_create(re->gctx);
    re->mctx = pcre2_match_context_create(re->gctx);
    if (!re->cctx || !re->mctx) return -1;
    pcre2_set_newline(re->cctx, PCRE2_NEWLINE_ANYCRLF);
    pcre2_set_match_limit(re->mctx, 10u * 1000 * 1000);
    pcre2_set_heap_limit(re->mctx, 64u * 1024); /* KiB */
    return 0;
}

int quant_override_add(quant_options *qo, const char *arg, char *msg, size_t cap) {
    char shown[sizeof qo->overrides->shown];
    escape_cstr(arg, shown, sizeof shown);
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        snprintf(msg, cap, "--tensor-type wants PATTERN=TYPE (e.g. attn_v=q8_0), not '%s'", shown);
        return -1;
    }
    const int64_t type = tensor_type_by_name(eq + 1);
    if (type < 0) {
        snprintf(msg, cap, "--tensor-type %s: unknown type (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K "
                           "q6_K)", shown);
        return -1;
    }
    size_t n_more, bytes;
    if (ck_add(qo->n_overrides, 1, &n_more) || ck_mul(n_more, sizeof *qo->overrides, &bytes)) {
        snprintf(msg, cap, "--tensor-type: too many");
        return -1;
    }
    type_override *grown = override_regex_init(qo) ? NULL : infer_realloc(qo->overrides, bytes);
    if (!grown) {
        snprintf(msg, cap, "out of memory");
        return -2;
    }
    qo->overrides = grown;
    type_override *o = &grown[qo->n_overrides];
    *o = (type_override){.type = (uint32_t)type};
    memcpy(o->shown, shown, sizeof shown);
    const size_t plen = (size_t)(eq - arg);
    char *pattern = infer_strndup(arg, plen);
    if (!pattern) {
        snprintf(msg, cap, "out of memory");
        return -2;
    }
    for (size_t i = 0; i < plen; i++) pattern[i] = (char)tolower((unsigned char)pattern[i]); /* as llama-quantize */
    int code;
    PCRE2_SIZE at;
    o->code = pcre2_compile((PCRE2_SPTR)pattern, plen, PCRE2_DOLLAR_ENDONLY, &code, &at, qo->re->cctx);
    infer_free(pattern);
    if (!o->code) {
        PCRE2_UCHAR why[120];
        if (pcre2_get_error_message(code, why, sizeof why) < 0) snprintf((char *)why, sizeof why, "error %d", code);
        snprintf(msg, cap, "--tensor-type: bad pattern (%s, at offset %zu): %s", (const char *)why, (size_t)at, shown);
        return code == PCRE2_ERROR_HEAP_FAILED ? -2 : -1;
    }
    o->match = pcre2_match_data_create_from_pattern(o->code, qo->re->gctx);
    if (!o->match) {
        pcre2_code_free(o->code);
        snprintf(msg, cap, "out of memory");
        return -2;
    }
    qo->n_overrides = n_more;
    return 0;
}

/* A --tensor-type-file holds more than anyone writes by hand: refused. */
#define TYPE_FILE_MAX (1u << 20)

int quant_override_add_file(quant_options *qo, const char *path, char *msg, size_t cap) {
    char shown[256];
    escape_cstr(path, shown, sizeof shown);
    uint8_t *buf;
    size_t n;
    infer_error err = {0};
    const infer_status st = infer_read_file(path, TYPE_FILE_MAX, &buf, &n, &err);
    if (st != INFER_OK) {
        snprintf(msg, cap, "--tensor-type-file %s: %s", shown, err.message);
        return st == INFER_ENOMEM ? -2 : -1;
    }
    char *text = (char *)buf;
    int r = 0;
    if (memchr(text, '\0', n)) {
        snprintf(msg, cap, "--tensor-type-file %s: holds a NUL byte", shown);
        r = -1;
    }
    /* PATTERN=TYPE words separated by white space, as llama-quantize reads
     * the file (std::ifstream >> std::string), added in order; each is
     * copied out NUL-terminated */
    for (size_t i = 0; r == 0 && i < n;) {
        while (i < n && isspace((unsigned char)text[i])) i++;
        const size_t start = i;
        while (i < n && !isspace((unsigned char)text[i])) i++;
        if (i == start) break;
        char *word = infer_strndup(text + start, i - start);
        if (!word) {
            snprintf(msg, cap, "out of memory");
            r = -2;
            break;
        }
        r = quant_override_add(qo, word, msg, cap);
        infer_free(word);
    }
    infer_free(buf);
    return r;
}

void quant_options_free(quant_options *qo) {
    for (size_t i = 0; i < qo->n_overrides; i++) {
        pcre2_match_data_free(qo->overrides[i].match);
        pcre2_code_free(qo->overrides[i].code);
    }
    infer_free(qo->overrides);
    qo->overrides = NULL;
    qo->n_overrides = 0;
    if (qo->re) {
        pcre2_match_context_free(qo->re->mctx);
        pcre2_compile_context_free(qo->re->cctx);
        pcre2_general_context_free(qo->re->gctx);
        infer_free(qo->re);
        qo->re = NULL;
    }
}

/* The first --tensor-type whose pattern matches name (llama-quantize stops
 * at the first), or NULL; INFER_EINVAL naming the pattern when PCRE2 could
 * not run it to an answer (its match or heap limit). */
static infer_status override_of(const quant_options *qo, const plan_entry *p, size_t len, const type_override **hit,
                                infer_error *err) {
    *hit = NULL;
    for (size_t i = 0; i < qo->n_overrides; i++) {
        const type_override *o = &qo->overrides[i];
        const int r = pcre2_match(o->code, (PCRE2_SPTR)p->name, len, 0, 0, o->match, qo->re->mctx);
        if (r >= 0) {
            *hit = o;
            return INFER_OK;
        }
        if (r != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR why[120];
            if (pcre2_get_error_message(r, why, sizeof why) < 0) snprintf((char *)why, sizeof why, "error %d", r);
            return set_error(err, INFER_EINVAL, "%s: --tensor-type %s: the pattern could not be matched: %s", p->shown,
                             o->shown, (const char *)why);
        }
    }
    return INFER_OK;
}

/* ---- the plan: one entry per tensor --------------------------------------------------- */

/* llama.cpp's weight_name_comparer: layer (-1 first), then name. */
static int plan_order(const void *a, const void *b) {
    const plan_entry *x = *(plan_entry *const *)a, *y = *(plan_entry *const *)b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* A type given by name for one tensor: it must fit the rows (llama.cpp
 * applies no fallback to these). */
static infer_status forced_type(plan_entry *p, uint64_t ncols, uint32_t type, const char *option,
                                infer_error *err) {
    if (ncols % infer_type_block_size(type) != 0)
        return set_error(err, INFER_EUNSUPPORTED, "%s: rows of %llu values are not whole %s blocks (%u): %s refused",
                         p->shown, (unsigned long long)ncols, infer_type_name(type), infer_type_block_size(type),
                         option);
    p->type = p->wanted = type;
    return INFER_OK;
}

/* Decide every tensor's output type. */
infer_status make_plan(const infer_gguf *g, const file_type *ft, const quant_options *qo, plan_entry *plan,
                       uint64_t *write_order, infer_error *err) {
    const uint64_t n = infer_gguf_tensor_count(g);
    const int pure = qo->pure;
    model_info mi;
    model_info_read(g, &mi);
    rule_state rs = {.mi = &mi, .ftype = ft->ftype, .output_type = qo->output_type, .has_imatrix = qo->has_imatrix};
    plan_entry **order = infer_calloc(n ? n : 1, sizeof *order);
    if (!order) return set_error(err, INFER_ENOMEM, "out of memory");
    int n_ffn_down = 0;
    for (uint64_t i = 0; i < n; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        plan_entry *p = &plan[i];
        memcpy(p->name, t->name.ptr, t->name.len); /* 1..63 bytes, no NUL: the reader checked */
        p->name[t->name.len] = '\0';
        escape_bytes(p->name, t->name.len, p->shown, sizeof p->shown);
        p->layer = layer_of(p->name);
        p->index = i;
        p->type = t->type;
        order[i] = p;
        if (allows_quantization(p->name, effective_dims(t))) {
            category c = category_of(p->name);
            rs.n_attention_wv += is_attn_v_like(c);
            n_ffn_down += c == CAT_FFN_DOWN;
        }
    }
    /* llama.cpp takes the layer count from the hyperparameters */
    rs.n_ffn_down = mi.n_layer && mi.n_layer < 100000 ? (int)mi.n_layer : n_ffn_down;
    qsort(order, (size_t)n, sizeof *order, plan_order);
    for (uint64_t k = 0; k < n; k++) write_order[k] = order[k]->index;
    infer_status st = INFER_OK;
    for (uint64_t k = 0; k < n && st == INFER_OK; k++) {
        plan_entry *p = order[k];
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, p->index);
        if (!allows_quantization(p->name, effective_dims(t))) continue;
        const category cat = category_of(p->name);
        if (qo->leave_output && cat == CAT_OUTPUT) continue;
        if (qo->embd_type >= 0 && cat == CAT_TOKEN_EMBD) { /* before the rules, --pure or not */
            st = forced_type(p, t->ne[0], (uint32_t)qo->embd_type, "--token-embedding-type", err);
            continue;
        }
        if (qo->output_type >= 0 && cat == CAT_OUTPUT) {
            st = forced_type(p, t->ne[0], (uint32_t)qo->output_type, "--output-tensor-type", err);
            continue;
        }
        uint32_t type = ft->type;
        if (is_quantized(type)) {
            /* as llama-quantize: a tensor a --tensor-type pattern matches takes
             * its type (--pure or not) and skips the rules (their counters
             * stay put); the fallback then applies to either */
            const type_override *o = NULL;
            if ((st = override_of(qo, p, t->name.len, &o, err)) != INFER_OK) break;
            if (o) {
                type = o->type;
            } else if (!pure) {
                char msg[160];
                int64_t c = choose_type(&rs, p->name, t->ne[0], type, msg, sizeof msg);
                if (c < 0) {
                    st = set_error(err, INFER_EUNSUPPORTED, "%s", msg);
                    break;
                }
                type = (uint32_t)c;
            }
            p->wanted = type;
            type = fallback_type(type, t->ne[0]);
            p->fell_back = type != p->wanted;
        }
        p->type = type;
    }
    infer_free(order);
    return st;
}

/* A tensor type infer-quantize can write, by its name (q8_0, Q6_K, f16, ...;
 * any case), or -1. */
int64_t tensor_type_by_name(const char *name) {
    static const uint32_t TYPES[] = {INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q4_0,
                                     INFER_TYPE_Q4_1, INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0,
                                     INFER_TYPE_Q2_K, INFER_TYPE_Q3_K, INFER_TYPE_Q4_K, INFER_TYPE_Q5_K,
                                     INFER_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++)
        if (!strcasecmp(infer_type_name(TYPES[i]), name)) return TYPES[i];
    return -1;
}

