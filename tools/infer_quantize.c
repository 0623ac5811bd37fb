/*
 * infer_quantize.c - infer-quantize: convert a GGUF model's weights to a
 * quantized type, choosing per-tensor types the way llama.cpp's
 * llama-quantize does.
 *
 *   infer-quantize IN.gguf OUT.gguf TYPE [--pure] [--output-tensor-type T]
 *                  [--token-embedding-type T] [--leave-output-tensor] [-t N]
 *
 * What it reproduces of llama-quantize (src/llama-quant.cpp), with no
 * importance matrix:
 *   - which tensors are quantized: 2-D (or more) tensors whose name ends in
 *     "weight", except norms and a few small special tensors; everything
 *     else (1-D norms, biases) is copied unchanged;
 *   - the mixture rules for the file type: output.weight (or token_embd when
 *     the embeddings are tied) in Q6_K, attn_v / ffn_down bumped on the
 *     layers use_more_bits() picks for Q4_K_M and Q5_K_M, the Q2_K,
 *     Q3_K_M, Q3_K_L and Q4_K_S bumps, ... (choose_type below); --pure
 *     turns the rules off; --output-tensor-type / --token-embedding-type
 *     name those two tensors' types before any rule (no fallback: a type
 *     that does not fit the rows is refused), and --leave-output-tensor
 *     copies output.weight;
 *   - the counters those rules use (i-th attn_v, i-th ffn_down) advance in
 *     llama.cpp's tensor order: tensors outside "blk.N." first, then by
 *     layer number, each group sorted by name. Output keeps the input order;
 *   - the fallback for rows that are not a whole number of blocks
 *     (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16);
 *   - the quantizers themselves (kernels/ref: byte-identical to llama.cpp's
 *     reference quantizers) and the metadata: every key copied, then
 *     general.quantization_version = 2 and general.file_type = the ftype.
 *
 * The input is any GGUF file (validated by the reader before anything is
 * used); tensors to convert may be F32, F16, BF16 or a quantized type infer
 * can dequantize. The output is written one tensor at a time (memory: the
 * largest tensor, plus the input's pages the kernel maps in), then read back
 * and validated.
 *
 * Exit status: 0 ok, 1 usage, 2 input rejected, 3 conversion or write failed.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer.h"
#include "ref/quants.h"
#include "util.h"

/* ---- file types ------------------------------------------------------------------ */

/* llama.cpp's llama_ftype numbers (general.file_type). */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_BF16 = 32,
};

typedef struct {
    const char *name;
    uint32_t ftype;
    uint32_t type; /* the default tensor type */
} file_type;

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
    {"Q6_K", FT_Q6_K, INFER_TYPE_Q6_K},     {"F16", FT_F16, INFER_TYPE_F16},
    {"BF16", FT_BF16, INFER_TYPE_BF16},     {"F32", FT_F32, INFER_TYPE_F32},
};

static const file_type *file_type_by_name(const char *name) {
    for (size_t i = 0; i < sizeof FILE_TYPES / sizeof *FILE_TYPES; i++)
        if (!strcasecmp(FILE_TYPES[i].name, name)) return &FILE_TYPES[i];
    return NULL;
}

static int is_quantized(uint32_t type) {
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
        else if (ft == FT_Q3_K_M)
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

/* ---- the plan: one entry per tensor --------------------------------------------------- */

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
} plan_entry;

/* llama.cpp's weight_name_comparer: layer (-1 first), then name. */
static int plan_order(const void *a, const void *b) {
    const plan_entry *x = *(plan_entry *const *)a, *y = *(plan_entry *const *)b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* What the command line asks beyond TYPE (llama-quantize's options of
 * the same names); -1: not given. */
typedef struct {
    int pure;
    int leave_output;    /* --leave-output-tensor: output.weight copied as it is */
    int64_t output_type; /* --output-tensor-type */
    int64_t embd_type;   /* --token-embedding-type */
} quant_options;

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
static infer_status make_plan(const infer_gguf *g, const file_type *ft, const quant_options *qo, plan_entry *plan,
                              infer_error *err) {
    const uint64_t n = infer_gguf_tensor_count(g);
    const int pure = qo->pure;
    model_info mi;
    model_info_read(g, &mi);
    rule_state rs = {.mi = &mi, .ftype = ft->ftype, .output_type = qo->output_type};
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
            char msg[160];
            if (!pure) {
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

/* ---- metadata ------------------------------------------------------------------------------- */

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

static infer_status copy_metadata(const infer_gguf *g, uint32_t ftype, infer_gguf_writer *w,
                                  infer_error *err) {
    infer_status st = INFER_OK;
    for (uint64_t i = 0; i < infer_gguf_kv_count(g) && st == INFER_OK; i++) {
        infer_gguf_str k = infer_gguf_kv_key(g, i);
        char key[1024];
        if (k.len == 0 || k.len >= sizeof key || memchr(k.ptr, '\0', k.len))
            return set_error(err, INFER_EUNSUPPORTED, "metadata key %llu: empty, too long or with a NUL byte",
                             (unsigned long long)i);
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        /* llama.cpp sets these two last (re-adding an existing key moves it
         * to the end) */
        if (!strcmp(key, "general.quantization_version") || !strcmp(key, "general.file_type")) continue;
        st = copy_kv(g, i, key, w, err);
    }
    if (st == INFER_OK) st = infer_gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (st == INFER_OK) st = infer_gguf_writer_set_u32(w, "general.file_type", ftype);
    return st;
}

/* ---- tensors ------------------------------------------------------------------------------- */

/* Type t's bytes for n values, n a multiple of its block (checked). */
static int bytes_for(uint32_t t, uint64_t n, uint64_t *out) {
    return infer_type_row_bytes(t, n, out) != INFER_OK || *out > SIZE_MAX;
}

/* One thread's share of a tensor: rows [row0, row1), converted a chunk of
 * rows at a time through its own float scratch. */
typedef struct {
    const uint8_t *src;
    uint8_t *out;
    uint32_t from, to;
    uint64_t ncols, src_row, dst_row, chunk, row0, row1;
    infer_status st; /* INFER_OK, ENOMEM (scratch) or EUNSUPPORTED (type) */
} convert_job;

static void *convert_rows(void *arg) {
    convert_job *j = arg;
    float *f = infer_malloc_array((size_t)(j->chunk * j->ncols), sizeof *f);
    j->st = f ? INFER_OK : INFER_ENOMEM;
    for (uint64_t r = j->row0; r < j->row1 && j->st == INFER_OK; r += j->chunk) {
        const uint64_t k = j->row1 - r < j->chunk ? j->row1 - r : j->chunk;
        const int64_t nv = (int64_t)(k * j->ncols);
        infer_ref_dequantize(j->from, j->src + r * j->src_row, f, nv);
        if (infer_ref_quantize(j->to, f, j->out + r * j->dst_row, nv) != 0) j->st = INFER_EUNSUPPORTED;
    }
    infer_free(f);
    return NULL;
}

#define MAX_THREADS 256

/* Convert tensor t to type `to` into out (its exact size), rows split
 * among n_threads threads. Rows are independent, so the bytes do not
 * depend on the thread count. */
static infer_status convert_tensor(const infer_gguf_tensor *t, const char *name /* escaped */, uint32_t to,
                                   uint8_t *out, int n_threads, infer_error *err) {
    const uint32_t from = t->type;
    if (from != INFER_TYPE_F32 && from != INFER_TYPE_F16 && from != INFER_TYPE_BF16 &&
        !infer_ref_weight_type_supported(from))
        return set_error(err, INFER_EUNSUPPORTED, "%s: cannot convert a %s tensor", name, infer_type_name(from));
    const uint64_t ncols = t->ne[0], nrows = t->n_elements / ncols;
    uint64_t src_row, dst_row;
    if (bytes_for(from, ncols, &src_row) || bytes_for(to, ncols, &dst_row))
        return set_error(err, INFER_EFORMAT, "%s: rows of %llu values do not fit %s", name,
                         (unsigned long long)ncols, infer_type_name(to));
    /* rows per chunk: about 256K values, at least one row */
    uint64_t chunk = ncols >= (1u << 18) ? 1 : (1u << 18) / ncols, n_scratch;
    if (chunk > nrows) chunk = nrows;
    if (ck_mul(chunk, ncols, &n_scratch) || n_scratch > SIZE_MAX / sizeof(float))
        return set_error(err, INFER_EFORMAT, "%s: rows too long", name);
    /* no more threads than chunks */
    uint64_t n_chunks = (nrows + chunk - 1) / chunk;
    int nt = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    if ((uint64_t)nt > n_chunks) nt = (int)n_chunks;
    convert_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int i = 0; i < nt; i++) {
        /* thread i: chunks [n_chunks*i/nt, n_chunks*(i+1)/nt) */
        const uint64_t c0 = n_chunks * (uint64_t)i / (uint64_t)nt, c1 = n_chunks * (uint64_t)(i + 1) / (uint64_t)nt;
        jobs[i] = (convert_job){.src = t->data, .out = out, .from = from, .to = to, .ncols = ncols,
                                .src_row = src_row, .dst_row = dst_row, .chunk = chunk,
                                .row0 = c0 * chunk, .row1 = c1 * chunk < nrows ? c1 * chunk : nrows};
        if (i > 0) started[i] = pthread_create(&tid[i], NULL, convert_rows, &jobs[i]) == 0;
    }
    convert_rows(&jobs[0]);
    for (int i = 1; i < nt; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else convert_rows(&jobs[i]); /* no thread: do it here */
    }
    for (int i = 0; i < nt; i++) {
        if (jobs[i].st == INFER_ENOMEM)
            return set_error(err, INFER_ENOMEM, "%s: out of memory (%llu values of scratch)", name,
                             (unsigned long long)n_scratch);
        if (jobs[i].st != INFER_OK)
            return set_error(err, INFER_EUNSUPPORTED, "%s: cannot produce %s", name, infer_type_name(to));
    }
    return INFER_OK;
}

/* ---- the output file ---------------------------------------------------------------------- */

/* The output is streamed: the GGUF writer builds the header and metadata
 * (no tensors), then the tensor infos and each tensor's data follow, one
 * tensor in memory at a time, so that a 7B model needs no more memory than
 * its largest tensor. The result is re-read and validated at the end. */
typedef struct {
    FILE *f;
    const char *path;
    uint64_t pos; /* bytes written */
} out_file;

static infer_status out_put(out_file *o, const void *p, size_t n, infer_error *err) {
    if (n && fwrite(p, 1, n, o->f) != n) return set_error(err, INFER_EIO, "%s: write failed", o->path);
    o->pos += n;
    return INFER_OK;
}

static infer_status out_u32(out_file *o, uint32_t v, infer_error *err) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    return out_put(o, b, 4, err);
}

static infer_status out_u64(out_file *o, uint64_t v, infer_error *err) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return out_put(o, b, 8, err);
}

static infer_status out_pad(out_file *o, uint32_t alignment, infer_error *err) {
    static const uint8_t zeros[INFER_GGUF_MAX_ALIGNMENT];
    return out_put(o, zeros, (size_t)((alignment - o->pos % alignment) % alignment), err);
}

/* Header, metadata and tensor infos. Fills each plan entry's size. */
static infer_status write_header(out_file *o, const infer_gguf *g, plan_entry *plan, uint32_t ftype,
                                 infer_error *err) {
    const uint64_t n = infer_gguf_tensor_count(g);
    const uint32_t alignment = infer_gguf_alignment(g); /* general.alignment is copied */
    infer_gguf_writer *w = NULL;
    void *blob = NULL;
    size_t blob_size = 0;
    infer_status st = infer_gguf_writer_new(&w, err);
    if (st == INFER_OK) st = copy_metadata(g, ftype, w, err);
    if (st == INFER_OK || err->message[0] == '\0') {
        /* on a writer failure (sticky, no message yet) finish reports it */
        infer_status fs = infer_gguf_writer_finish(w, &blob, &blob_size, err);
        if (st == INFER_OK) st = fs;
    }
    infer_gguf_writer_free(w);
    if (st != INFER_OK) {
        infer_free(blob);
        return st;
    }
    /* "GGUF", version 3, u64 tensor count (0 here: patched), u64 kv count, kv */
    for (int i = 0; i < 8; i++) ((uint8_t *)blob)[8 + i] = (uint8_t)(n >> (8 * i));
    st = out_put(o, blob, blob_size, err);
    infer_free(blob);
    uint64_t off = 0;
    for (uint64_t i = 0; i < n && st == INFER_OK; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        plan_entry *p = &plan[i];
        if (bytes_for(p->type, t->n_elements, &p->size) || ck_align_up(off + p->size, alignment, &p->end))
            return set_error(err, INFER_EFORMAT, "%s: too large", p->shown);
        st = out_u64(o, t->name.len, err);
        if (st == INFER_OK) st = out_put(o, p->name, t->name.len, err);
        if (st == INFER_OK) st = out_u32(o, t->n_dims, err);
        for (uint32_t d = 0; d < t->n_dims && st == INFER_OK; d++) st = out_u64(o, t->ne[d], err);
        if (st == INFER_OK) st = out_u32(o, p->type, err);
        if (st == INFER_OK) st = out_u64(o, off, err);
        off = p->end;
    }
    if (st == INFER_OK) st = out_pad(o, alignment, err);
    return st;
}

/* Every tensor's data, in input order. */
static infer_status write_data(out_file *o, const infer_gguf *g, const plan_entry *plan, int n_threads,
                               uint64_t *bytes_in, uint64_t *bytes_out, infer_error *err) {
    const uint64_t n = infer_gguf_tensor_count(g);
    const uint32_t alignment = infer_gguf_alignment(g);
    for (uint64_t i = 0; i < n; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        const plan_entry *p = &plan[i];
        printf("[%4llu/%4llu] %-36s %-5s -> %-5s %10.3f MiB -> %10.3f MiB\n", (unsigned long long)i + 1,
               (unsigned long long)n, p->shown, infer_type_name(t->type), infer_type_name(p->type),
               t->n_bytes / 1048576.0, p->size / 1048576.0);
        if (p->fell_back) {
            fflush(stdout);
            fprintf(stderr, "infer-quantize: %s: rows of %llu values are not whole %s blocks (%u): using %s%s\n",
                    p->shown, (unsigned long long)t->ne[0], infer_type_name(p->wanted),
                    infer_type_block_size(p->wanted), infer_type_name(p->type),
                    infer_type_block_size(p->wanted) == 256 ? " (as llama-quantize does)"
                                                            : " (llama-quantize refuses such a tensor)");
        }
        infer_status st;
        if (p->type == t->type) {
            st = out_put(o, t->data, (size_t)t->n_bytes, err);
        } else {
            uint8_t *buf = infer_malloc(p->size ? (size_t)p->size : 1);
            if (!buf) return set_error(err, INFER_ENOMEM, "%s: out of memory (%llu bytes)", p->shown,
                                       (unsigned long long)p->size);
            st = convert_tensor(t, p->shown, p->type, buf, n_threads, err);
            if (st == INFER_OK) st = out_put(o, buf, (size_t)p->size, err);
            infer_free(buf);
        }
        /* pad after every tensor, the last included, as ggml does */
        if (st == INFER_OK) st = out_pad(o, alignment, err);
        if (st != INFER_OK) return st;
        *bytes_in += t->n_bytes;
        *bytes_out += p->size;
    }
    return INFER_OK;
}

/* The process's umask (umask has no read-only form; no other thread runs
 * yet when this is called). */
static mode_t current_umask(void) {
    const mode_t m = umask(0);
    umask(m);
    return m;
}

/* Write the whole output file: into a new file beside it (PATH.XXXXXX),
 * read back and checked, then renamed over PATH; on any failure the new
 * file is removed and PATH is left as it was (never removed: it may be a
 * device or a link, see main). qpath: the path the user gave, escaped,
 * for messages. */
static infer_status write_output(const char *path, const char *qpath, mode_t mode, const infer_gguf *g,
                                 plan_entry *plan, uint32_t ftype, int n_threads, uint64_t *bytes_in,
                                 uint64_t *bytes_out, infer_error *err) {
    const size_t len = strlen(path);
    size_t tmp_bytes;
    char *tmp = ck_add(len, (size_t)8, &tmp_bytes) ? NULL : infer_malloc(tmp_bytes);
    if (!tmp) return set_error(err, INFER_ENOMEM, "out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".XXXXXX", 8);
    const int fd = mkstemp(tmp);
    out_file o = {.f = fd >= 0 ? fdopen(fd, "wb") : NULL, .path = qpath};
    if (!o.f) {
        infer_status s = set_error(err, INFER_EIO, "%s: cannot create a file beside it: %s", qpath, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        infer_free(tmp);
        return s;
    }
    (void)fchmod(fd, mode); /* mkstemp's 0600 is not what the output should have */
    infer_status st = write_header(&o, g, plan, ftype, err);
    if (st == INFER_OK) st = write_data(&o, g, plan, n_threads, bytes_in, bytes_out, err);
    if (fclose(o.f) != 0 && st == INFER_OK) st = set_error(err, INFER_EIO, "%s: close failed", qpath);
    if (st == INFER_OK) { /* read back what was written: a complete, valid GGUF file */
        infer_gguf *check = NULL;
        infer_error e2 = {0};
        if (infer_gguf_open(tmp, 0, &check, &e2) != INFER_OK)
            st = set_error(err, INFER_EFORMAT, "%s: the written file does not read back: %s", qpath, e2.message);
        else if (infer_gguf_tensor_count(check) != infer_gguf_tensor_count(g))
            st = set_error(err, INFER_EFORMAT, "%s: the written file has the wrong tensor count", qpath);
        infer_gguf_close(check);
    }
    if (st == INFER_OK && rename(tmp, path) != 0)
        st = set_error(err, INFER_EIO, "%s: cannot rename the written file to it: %s", qpath, strerror(errno));
    if (st != INFER_OK) unlink(tmp);
    infer_free(tmp);
    return st;
}

/* ---- main ------------------------------------------------------------------------------------ */

/* A tensor type infer-quantize can write, by its name (q8_0, Q6_K, f16, ...;
 * any case), or -1. */
static int64_t tensor_type_by_name(const char *name) {
    static const uint32_t TYPES[] = {INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q4_0,
                                     INFER_TYPE_Q4_1, INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0,
                                     INFER_TYPE_Q2_K, INFER_TYPE_Q3_K, INFER_TYPE_Q4_K, INFER_TYPE_Q5_K,
                                     INFER_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++)
        if (!strcasecmp(infer_type_name(TYPES[i]), name)) return TYPES[i];
    return -1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer-quantize IN.gguf OUT.gguf TYPE [--pure] [--output-tensor-type T]\n"
            "                      [--token-embedding-type T] [--leave-output-tensor] [-t N]\n"
            "\n"
            "  TYPE    Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M\n"
            "          Q5_K_S Q5_K_M Q6_K\n"
            "          (Q3_K, Q4_K, Q5_K: the _S mixtures) or F16 BF16 F32\n"
            "  --pure  every quantizable weight in TYPE: no Q6_K output.weight, no\n"
            "          bumped attn_v / ffn_down layers (llama-quantize --pure)\n"
            "  --output-tensor-type T, --token-embedding-type T\n"
            "          output.weight / token_embd.weight in T (f32 f16 bf16 q4_0 q4_1\n"
            "          q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K), --pure or not\n"
            "  --leave-output-tensor\n"
            "          output.weight copied as it is\n"
            "  -t N    threads (default: the CPUs it may run on); the output does not depend on it\n"
            "\n"
            "Tensor types follow llama-quantize's rules for TYPE; the quantizers are\n"
            "byte-identical to llama.cpp's reference ones. 1-D tensors (norms) are copied.\n");
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *tname = NULL;
    quant_options qo = {.output_type = -1, .embd_type = -1};
    const int ncpu = infer_default_threads();
    int n_threads = ncpu > MAX_THREADS ? MAX_THREADS : ncpu;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pure")) qo.pure = 1;
        else if (!strcmp(argv[i], "--leave-output-tensor")) qo.leave_output = 1;
        else if (!strcmp(argv[i], "--output-tensor-type") || !strcmp(argv[i], "--token-embedding-type")) {
            const int64_t t = i + 1 < argc ? tensor_type_by_name(argv[i + 1]) : -1;
            if (t < 0) {
                fprintf(stderr, "infer-quantize: %s wants a tensor type: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K "
                                "q3_K q4_K q5_K q6_K\n", argv[i]);
                return 1;
            }
            if (!strcmp(argv[i], "--output-tensor-type")) qo.output_type = t;
            else qo.embd_type = t;
            i++;
        } else if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) {
            char *end;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || !argv[i + 1][0] || *end || v < 1 || v > MAX_THREADS) {
                fprintf(stderr, "infer-quantize: %s wants a thread count in 1..%d\n", argv[i], MAX_THREADS);
                return 1;
            }
            n_threads = (int)v;
            i++;
        }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "infer-quantize: unknown option %s\n", argv[i]);
            usage(stderr);
            return 1;
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else if (!tname) tname = argv[i];
        else {
            usage(stderr);
            return 1;
        }
    }
    if (!tname) {
        usage(stderr);
        return 1;
    }
    const file_type *ft = file_type_by_name(tname);
    if (!ft) {
        fprintf(stderr, "infer-quantize: unknown type '%s'\n", tname);
        usage(stderr);
        return 1;
    }
    char qin[512], qout[512]; /* the paths as messages show them */
    escape_cstr(in, qin, sizeof qin);
    escape_cstr(out, qout, sizeof qout);
    /* Writing over the (mapped) input would pull the bytes from under us. */
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
        fprintf(stderr, "infer-quantize: %s: output and input are the same file\n", qout);
        return 1;
    }
    /* The output is written beside and renamed over OUT: not over a device,
     * a FIFO or a directory (as root that would replace /dev/null). */
    const int exists = stat(out, &so) == 0;
    if (exists && !S_ISREG(so.st_mode)) {
        fprintf(stderr, "infer-quantize: %s: not a regular file\n", qout);
        return 1;
    }
    /* As writing into OUT would: an existing OUT keeps its mode, a new one
     * gets 0666 less the umask; a link to a file stays a link (the file it
     * names is the one replaced). */
    const mode_t mode = exists ? so.st_mode & 07777 : 0666 & ~current_umask();
    char *real = exists ? realpath(out, NULL) : NULL;
    const char *dest = real ? real : out;

    infer_error err = {0};
    infer_gguf *g = NULL;
    if (infer_gguf_open(in, 0, &g, &err) != INFER_OK) {
        fprintf(stderr, "infer-quantize: %s: %s\n", qin, err.message);
        free(real);
        return 2;
    }
    int rc = 0;
    const uint64_t n = infer_gguf_tensor_count(g);
    plan_entry *plan = infer_calloc(n ? n : 1, sizeof *plan);
    uint64_t bytes_in = 0, bytes_out = 0;
    if (!plan) {
        fprintf(stderr, "infer-quantize: out of memory\n");
        rc = 3;
    } else if (make_plan(g, ft, &qo, plan, &err) != INFER_OK) {
        fprintf(stderr, "infer-quantize: %s: %s\n", qin, err.message);
        rc = 2;
    } else {
        printf("infer-quantize: %s -> %s, %s%s (file type %u), %llu tensors\n", qin, qout, ft->name,
               qo.pure ? " --pure" : "", ft->ftype, (unsigned long long)n);
        infer_status st = write_output(dest, qout, mode, g, plan, ft->ftype, n_threads, &bytes_in, &bytes_out, &err);
        if (st != INFER_OK) {
            fprintf(stderr, "infer-quantize: %s\n", err.message);
            rc = st == INFER_EUNSUPPORTED || st == INFER_EFORMAT ? 2 : 3;
        } else {
            printf("infer-quantize: tensors %.2f MiB -> %.2f MiB, wrote %s\n", bytes_in / 1048576.0,
                   bytes_out / 1048576.0, qout);
        }
    }
    infer_free(plan);
    infer_gguf_close(g);
    free(real);
    return rc;
}
