/*
 * model.c - loading a model: architecture, hyperparameters, weights.
 *
 * Every hyperparameter is read with its type checked and validated before
 * anything uses it (HOSTILE.md section B); every tensor is bound by name to
 * a role with the exact shape the hyperparameters imply and a type allowed
 * for that role; a tensor the architecture does not use is an error, as in
 * llama.cpp. After load the model is immutable.
 */
#include "model.h"
#include "gguf_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ref/quants.h"

typedef struct {
    const char *name;
    model_arch arch;
    rope_mode rope;
} arch_info;

static const arch_info ARCHS[] = {
    {"llama", ARCH_LLAMA, ROPE_NORM},
    {"qwen2", ARCH_QWEN2, ROPE_NEOX},
    {"qwen3", ARCH_QWEN3, ROPE_NEOX},
};

/* ---- hyperparameters ------------------------------------------------------ */

typedef struct {
    const infer_gguf *g;
    const char *arch;
    infer_error *err;
} hp_reader;

/* arch.suffix as an unsigned integer in [lo, hi]; def when absent (def < 0:
 * required). */
static infer_status hp_uint(hp_reader *r, const char *suffix, int64_t def, uint64_t lo,
                            uint64_t hi, uint32_t *out) {
    char key[128];
    uint64_t v;
    snprintf(key, sizeof key, "%s.%s", r->arch, suffix);
    infer_status s = infer_gguf_get_uint(r->g, key, &v, r->err);
    if (s == INFER_ENOTFOUND) {
        if (def < 0) return set_error(r->err, INFER_EFORMAT, "required key '%s' is missing", key);
        *out = (uint32_t)def;
        return INFER_OK;
    }
    if (s != INFER_OK) return s;
    if (v < lo || v > hi) {
        return set_error(r->err, INFER_EFORMAT, "key '%s' is %llu, must be in %llu..%llu", key,
                         (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
    }
    *out = (uint32_t)v;
    return INFER_OK;
}

/* arch.suffix as a finite float32 in (lo, hi]; def when absent (required
 * when def is NaN). */
static infer_status hp_float(hp_reader *r, const char *suffix, float def, float lo, float hi,
                             float *out) {
    char key[128];
    float v;
    snprintf(key, sizeof key, "%s.%s", r->arch, suffix);
    infer_status s = infer_gguf_get_f32(r->g, key, &v, r->err);
    if (s == INFER_ENOTFOUND) {
        if (isnan(def)) return set_error(r->err, INFER_EFORMAT, "required key '%s' is missing", key);
        *out = def;
        return INFER_OK;
    }
    if (s != INFER_OK) return s;
    if (!isfinite(v) || !(v > lo) || v > hi) {
        return set_error(r->err, INFER_EFORMAT, "key '%s' is %g, must be finite in (%g, %g]", key,
                         (double)v, (double)lo, (double)hi);
    }
    *out = v;
    return INFER_OK;
}

/* The optional string arch.suffix into buf (empty when absent). */
static infer_status hp_string(hp_reader *r, const char *suffix, char *buf, size_t cap) {
    char key[128];
    infer_gguf_str v;
    snprintf(key, sizeof key, "%s.%s", r->arch, suffix);
    buf[0] = '\0';
    infer_status s = infer_gguf_get_str(r->g, key, &v, r->err);
    if (s == INFER_ENOTFOUND) return INFER_OK;
    if (s != INFER_OK) return s;
    if (v.len >= cap || memchr(v.ptr, '\0', v.len)) {
        return set_error(r->err, INFER_EFORMAT, "key '%s' is not a short string", key);
    }
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return INFER_OK;
}

static infer_status read_hparams(infer_model *m, infer_error *err) {
    hp_reader r = {m->gguf, m->arch_name, err};
    model_hparams *hp = &m->hp;
    infer_status s;
#define TRY(x) do { if ((s = (x)) != INFER_OK) return s; } while (0)
    TRY(hp_uint(&r, "context_length", -1, 1, MODEL_MAX_CTX, &hp->n_ctx_train));
    TRY(hp_uint(&r, "embedding_length", -1, 1, 1u << 20, &hp->n_embd));
    TRY(hp_uint(&r, "block_count", -1, 1, MODEL_MAX_LAYERS, &hp->n_layer));
    TRY(hp_uint(&r, "feed_forward_length", -1, 1, 1u << 22, &hp->n_ff));
    TRY(hp_uint(&r, "attention.head_count", -1, 1, 4096, &hp->n_head));
    TRY(hp_uint(&r, "attention.head_count_kv", hp->n_head, 1, 4096, &hp->n_head_kv));
    if (hp->n_head % hp->n_head_kv != 0) {
        return set_error(err, INFER_EFORMAT,
                         "key '%s.attention.head_count_kv' (%u) does not divide head_count (%u)",
                         m->arch_name, hp->n_head_kv, hp->n_head);
    }
    int64_t def_hd = hp->n_embd % hp->n_head == 0 ? (int64_t)(hp->n_embd / hp->n_head) : -1;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.key_length", m->arch_name);
    if (def_hd < 0 && infer_gguf_find_key(m->gguf, key) < 0) {
        return set_error(err, INFER_EFORMAT,
                         "key '%s.embedding_length' (%u) is not divisible by head_count (%u)",
                         m->arch_name, hp->n_embd, hp->n_head);
    }
    TRY(hp_uint(&r, "attention.key_length", def_hd, 1, 1u << 16, &hp->n_embd_head_k));
    TRY(hp_uint(&r, "attention.value_length", def_hd, 1, 1u << 16, &hp->n_embd_head_v));
    TRY(hp_uint(&r, "rope.dimension_count", hp->n_embd_head_k, 2, hp->n_embd_head_k, &hp->n_rot));
    if (hp->n_rot % 2 != 0) {
        return set_error(err, INFER_EFORMAT, "key '%s.rope.dimension_count' (%u) is odd",
                         m->arch_name, hp->n_rot);
    }
    TRY(hp_float(&r, "attention.layer_norm_rms_epsilon", NAN, 0.0f, 1.0f, &hp->rms_eps));
    TRY(hp_float(&r, "rope.freq_base", 10000.0f, 0.0f, 1e12f, &hp->rope_freq_base));

    /* Linear RoPE scaling: rope.scale_linear (old) or rope.scaling.factor. */
    char stype[32];
    float factor = 1.0f;
    TRY(hp_string(&r, "rope.scaling.type", stype, sizeof stype));
    TRY(hp_float(&r, "rope.scale_linear", 1.0f, 1e-6f, 1e6f, &factor)); /* 1 / factor stays finite */
    if (!strcmp(stype, "linear")) TRY(hp_float(&r, "rope.scaling.factor", factor, 1e-6f, 1e6f, &factor));
    else if (stype[0] && strcmp(stype, "none") && strcmp(stype, "llama3")) {
        char q[sizeof stype * 4];
        return set_error(err, INFER_EUNSUPPORTED, "key '%s.rope.scaling.type' is '%s' (supported: none, linear, llama3)",
                         m->arch_name, escape_cstr(stype, q, sizeof q));
    }
    hp->rope_freq_scale = 1.0f / factor;
#undef TRY
    return INFER_OK;
}

/* Llama 3 frequency factors from the rope.scaling.* keys, when the file
 * has no rope_freqs.weight tensor (converters usually write the tensor). */
static infer_status llama3_freq_factors(infer_model *m, infer_error *err) {
    hp_reader r = {m->gguf, m->arch_name, err};
    char stype[32];
    float factor, lo, hi;
    uint32_t orig;
    infer_status s = hp_string(&r, "rope.scaling.type", stype, sizeof stype);
    if (s != INFER_OK || strcmp(stype, "llama3") != 0) return s;
    if ((s = hp_float(&r, "rope.scaling.factor", 8.0f, 0.0f, 1e6f, &factor)) != INFER_OK ||
        (s = hp_float(&r, "rope.scaling.low_freq_factor", 1.0f, 0.0f, 1e6f, &lo)) != INFER_OK ||
        (s = hp_float(&r, "rope.scaling.high_freq_factor", 4.0f, 0.0f, 1e6f, &hi)) != INFER_OK ||
        (s = hp_uint(&r, "rope.scaling.original_context_length", 8192, 1, MODEL_MAX_CTX, &orig)) != INFER_OK) {
        return s;
    }
    if (!(hi > lo)) {
        return set_error(err, INFER_EFORMAT, "llama3 rope scaling: high_freq_factor must exceed low_freq_factor");
    }
    uint32_t n = m->hp.n_rot / 2;
    m->rope_freq_factors = infer_malloc_array(n, sizeof(float));
    if (!m->rope_freq_factors) return set_error(err, INFER_ENOMEM, "out of memory");
    double lo_wavelen = orig / lo, hi_wavelen = orig / hi;
    for (uint32_t i = 0; i < n; i++) {
        double freq = pow(m->hp.rope_freq_base, -2.0 * i / m->hp.n_rot);
        double wavelen = 2.0 * M_PI / freq, f;
        if (wavelen < hi_wavelen) f = 1.0;
        else if (wavelen > lo_wavelen) f = factor;
        else {
            double smooth = (orig / wavelen - lo) / (hi - lo);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        m->rope_freq_factors[i] = (float)f;
    }
    /* The factors replace linear scaling. */
    m->hp.rope_freq_scale = 1.0f;
    return INFER_OK;
}

/* ---- tensors ------------------------------------------------------------------ */

enum { W_REQUIRED = 0, W_OPTIONAL = 1 };
enum { K_NORM, K_MATRIX }; /* what the role allows: 1-D F32, or a matmul weight */

typedef struct {
    infer_model *m;
    uint8_t *used; /* [n_tensors] */
    infer_error *err;
} binder;

/* Bind tensor `name` to w: shape (cols[, rows]) exactly, type allowed for
 * the kind. Absent optional tensors leave w->data NULL. */
static infer_status bind(binder *b, weight *w, const char *name, int kind, int64_t cols,
                         int64_t rows, int optional) {
    const infer_gguf *g = b->m->gguf;
    int64_t i = infer_gguf_find_tensor(g, name);
    memset(w, 0, sizeof *w);
    w->index = -1;
    if (i < 0) {
        if (optional) return INFER_OK;
        return set_error(b->err, INFER_EFORMAT, "required tensor '%s' is missing", name);
    }
    const infer_gguf_tensor *t = infer_gguf_tensor_at(g, (uint64_t)i);
    int64_t want_rows = kind == K_NORM ? 1 : rows;
    if ((int64_t)t->ne[0] != cols || (int64_t)t->ne[1] != want_rows || t->ne[2] != 1 || t->ne[3] != 1) {
        return set_error(b->err, INFER_EFORMAT,
                         "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%lld, %lld]", name,
                         (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                         (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (long long)cols,
                         (long long)want_rows);
    }
    if (kind == K_NORM ? t->type != INFER_TYPE_F32 : !infer_ref_weight_type_supported(t->type)) {
        return set_error(b->err, INFER_EUNSUPPORTED, "tensor '%s' has type %s, which infer %s", name,
                         infer_type_name(t->type),
                         kind == K_NORM ? "does not allow for norm weights (f32 only)"
                                        : "cannot run yet");
    }
    w->data = t->data;
    w->type = t->type;
    w->cols = cols;
    w->rows = want_rows;
    w->row_bytes = (size_t)(t->n_bytes / (uint64_t)want_rows);
    w->index = (int32_t)i;
    b->used[i] = 1;
    return INFER_OK;
}

static infer_status bind_layer(binder *b, uint32_t il, layer_weights *L) {
    const model_hparams *hp = &b->m->hp;
    int64_t E = hp->n_embd, F = hp->n_ff;
    int64_t q = (int64_t)hp->n_head * hp->n_embd_head_k, k = (int64_t)hp->n_head_kv * hp->n_embd_head_k;
    int64_t v = (int64_t)hp->n_head_kv * hp->n_embd_head_v, o = (int64_t)hp->n_head * hp->n_embd_head_v;
    int qwen2 = b->m->arch == ARCH_QWEN2, qwen3 = b->m->arch == ARCH_QWEN3;
    char n[64];
    infer_status s;
#define BIND(field, suffix, kind, cols, rows, opt)                               \
    do {                                                                          \
        snprintf(n, sizeof n, "blk.%u.%s", il, suffix);                           \
        if ((s = bind(b, &L->field, n, kind, cols, rows, opt)) != INFER_OK) return s; \
    } while (0)
    BIND(attn_norm, "attn_norm.weight", K_NORM, E, 1, W_REQUIRED);
    BIND(wq, "attn_q.weight", K_MATRIX, E, q, W_REQUIRED);
    BIND(wk, "attn_k.weight", K_MATRIX, E, k, W_REQUIRED);
    BIND(wv, "attn_v.weight", K_MATRIX, E, v, W_REQUIRED);
    BIND(wo, "attn_output.weight", K_MATRIX, o, E, W_REQUIRED);
    BIND(bq, "attn_q.bias", K_NORM, q, 1, qwen2 ? W_REQUIRED : W_OPTIONAL);
    BIND(bk, "attn_k.bias", K_NORM, k, 1, qwen2 ? W_REQUIRED : W_OPTIONAL);
    BIND(bv, "attn_v.bias", K_NORM, v, 1, qwen2 ? W_REQUIRED : W_OPTIONAL);
    BIND(q_norm, "attn_q_norm.weight", K_NORM, hp->n_embd_head_k, 1, qwen3 ? W_REQUIRED : W_OPTIONAL);
    BIND(k_norm, "attn_k_norm.weight", K_NORM, hp->n_embd_head_k, 1, qwen3 ? W_REQUIRED : W_OPTIONAL);
    BIND(ffn_norm, "ffn_norm.weight", K_NORM, E, 1, W_REQUIRED);
    BIND(w_gate, "ffn_gate.weight", K_MATRIX, E, F, W_REQUIRED);
    BIND(w_up, "ffn_up.weight", K_MATRIX, E, F, W_REQUIRED);
    BIND(w_down, "ffn_down.weight", K_MATRIX, F, E, W_REQUIRED);
#undef BIND
    return INFER_OK;
}

static infer_status bind_tensors(infer_model *m, infer_error *err) {
    uint64_t nt = infer_gguf_tensor_count(m->gguf);
    binder b = {m, NULL, err};
    infer_status s = INFER_OK;
    const model_hparams *hp = &m->hp;

    b.used = infer_calloc(nt ? (size_t)nt : 1, 1);
    m->layers = infer_calloc(hp->n_layer, sizeof *m->layers);
    if (!b.used || !m->layers) {
        s = set_error(err, INFER_ENOMEM, "out of memory");
        goto done;
    }
    if ((s = bind(&b, &m->tok_embd, "token_embd.weight", K_MATRIX, hp->n_embd, hp->n_vocab, W_REQUIRED)) != INFER_OK) {
        /* Name the real problem when the row count is what differs. */
        int64_t i = infer_gguf_find_tensor(m->gguf, "token_embd.weight");
        const infer_gguf_tensor *t = i >= 0 ? infer_gguf_tensor_at(m->gguf, (uint64_t)i) : NULL;
        if (t && t->ne[0] == hp->n_embd && t->ne[1] != hp->n_vocab) {
            s = set_error(err, INFER_EFORMAT,
                          "tensor 'token_embd.weight' has %llu rows but the vocabulary has %u tokens",
                          (unsigned long long)t->ne[1], hp->n_vocab);
        }
        goto done;
    }
    if ((s = bind(&b, &m->output_norm, "output_norm.weight", K_NORM, hp->n_embd, 1, W_REQUIRED)) != INFER_OK) goto done;
    if ((s = bind(&b, &m->output, "output.weight", K_MATRIX, hp->n_embd, hp->n_vocab, W_OPTIONAL)) != INFER_OK) goto done;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */

    weight freqs;
    if ((s = bind(&b, &freqs, "rope_freqs.weight", K_NORM, hp->n_rot / 2, 1, W_OPTIONAL)) != INFER_OK) goto done;
    if (freqs.data) {
        m->rope_freq_factors = infer_malloc_array(hp->n_rot / 2, sizeof(float));
        if (!m->rope_freq_factors) {
            s = set_error(err, INFER_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(m->rope_freq_factors, freqs.data, (size_t)(hp->n_rot / 2) * sizeof(float));
        for (uint32_t i = 0; i < hp->n_rot / 2; i++) {
            if (!isfinite(m->rope_freq_factors[i]) || !(m->rope_freq_factors[i] > 0.0f)) {
                s = set_error(err, INFER_EFORMAT, "tensor 'rope_freqs.weight' has a value that is not finite and positive");
                goto done;
            }
        }
    } else if ((s = llama3_freq_factors(m, err)) != INFER_OK) {
        goto done;
    }

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if ((s = bind_layer(&b, il, &m->layers[il])) != INFER_OK) goto done;
    }
    for (uint64_t i = 0; i < nt; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(m->gguf, i);
        if (!b.used[i]) {
            char q[96];
            s = set_error(err, INFER_EFORMAT, "unexpected tensor '%s' (not used by %s with %u layers)",
                          escape_bytes(t->name.ptr, t->name.len, q, sizeof q), m->arch_name, hp->n_layer);
            goto done;
        }
        m->n_params += t->n_elements;
        m->n_bytes += t->n_bytes;
    }
done:
    infer_free(b.used);
    return s;
}

/* ---- load / release ---------------------------------------------------------------- */

static infer_status read_arch(infer_model *m, infer_error *err) {
    infer_gguf_str a;
    infer_status s = infer_gguf_get_str(m->gguf, "general.architecture", &a, err);
    if (s == INFER_ENOTFOUND) return set_error(err, INFER_EFORMAT, "key 'general.architecture' is missing");
    if (s != INFER_OK) return s;
    char q[64];
    escape_bytes(a.ptr, a.len, q, sizeof q);
    if (memchr(a.ptr, '\0', a.len)) {
        return set_error(err, INFER_EFORMAT, "key 'general.architecture' ('%s') contains a NUL byte", q);
    }
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
        if (a.len == strlen(ARCHS[i].name) && !memcmp(a.ptr, ARCHS[i].name, a.len)) {
            m->arch = ARCHS[i].arch;
            m->hp.rope_type = ARCHS[i].rope;
            snprintf(m->arch_name, sizeof m->arch_name, "%s", ARCHS[i].name);
            return INFER_OK;
        }
    }
    return set_error(err, INFER_EUNSUPPORTED,
                     "key 'general.architecture' is '%s': infer runs llama, qwen2 and qwen3", q);
}

/* The 1-D weights, as model_matrix walks the matrices: the output norm,
 * then each layer's attn_norm, bq, bk, bv, q_norm, k_norm, ffn_norm
 * (absent ones have no data). */
#define LAYER_VECTORS 7
static size_t n_vectors(const infer_model *m) { return (size_t)m->hp.n_layer * LAYER_VECTORS + 1; }
static weight *vector_at(infer_model *m, size_t i) {
    if (i >= (size_t)m->hp.n_layer * LAYER_VECTORS) return &m->output_norm;
    layer_weights *L = &m->layers[i / LAYER_VECTORS];
    switch (i % LAYER_VECTORS) {
    case 0: return &L->attn_norm;
    case 1: return &L->bq;
    case 2: return &L->bk;
    case 3: return &L->bv;
    case 4: return &L->q_norm;
    case 5: return &L->k_norm;
    default: return &L->ffn_norm;
    }
}

/* The 1-D weights (norms, biases), copied into one allocation of the
 * model's own, each at an offset that is a multiple of 64 bytes (so
 * aligned as malloc's result is: 16 bytes on x86-64 and aarch64). The
 * kernels read them as
 * floats, and in the file they are only as aligned as general.alignment
 * (which may be 1) and, for a model in the caller's memory, the caller's
 * buffer. For a mapped file there is a second reason: they are read on
 * every token, and a read of the file mapping maps whatever the page cache
 * holds around it: with large folios (ext4 on recent kernels) up to 2 MB
 * of the neighbouring matrices, which the CPU backend has repacked and
 * dropped from the process. On TinyLlama Q4_0 that kept ~80 MB of the file
 * resident beside its repacked copy. The matrices are read bytewise (the
 * reference kernels through memcpy, the SIMD ones with unaligned loads).
 * The first pass sizes (checked), the second copies at the same offsets. */
static infer_status copy_vectors(infer_model *m, infer_error *err) {
    uint8_t *mem = NULL;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t at = 0;
        for (size_t i = 0; i < n_vectors(m); i++) {
            weight *w = vector_at(m, i);
            if (!w->data) continue;
            if (mem) {
                memcpy(mem + at, w->data, w->row_bytes);
                w->data = mem + at;
            }
            if (ck_add(at, (uint64_t)w->row_bytes, &at) || ck_align_up(at, 64, &at) || at > SIZE_MAX)
                return set_error(err, INFER_ENOMEM, "1-D weights overflow the address space");
        }
        if (pass == 1 || at == 0) break;
        mem = infer_malloc((size_t)at);
        if (!mem) return set_error(err, INFER_ENOMEM, "out of memory");
        m->vectors = mem;
    }
    return INFER_OK;
}

static void free_model(infer_model *m) {
    model_pack_free(m->pack);
    vocab_free(m->vocab);
    infer_gguf_close(m->gguf);
    infer_free(m->layers);
    infer_free(m->rope_freq_factors);
    infer_free(m->vectors);
    infer_free(m);
}

/* llama.cpp's name for a general.file_type (its llama_ftype numbers), as
 * llama-bench prints it in the model column; NULL when unknown. */
static const char *ftype_name(uint64_t ft) {
    switch (ft) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K - Medium";
    case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium";
    case 13: return "Q3_K - Large";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 21: return "Q2_K - Small";
    case 32: return "BF16";
    default: return NULL;
    }
}

static void describe(infer_model *m) {
    /* "llama 1.10B Q4_K - Medium": the file type as llama.cpp names it
     * (general.file_type), else the most common matrix type ("llama
     * 292.80K F32"). */
    uint64_t by_type[INFER_TYPE_COUNT] = {0};
    uint32_t best = INFER_TYPE_F32;
    for (size_t i = 0; i + 1 < model_n_matrices(m); i++) { /* the layers' matrices, not the output */
        const weight *w = model_matrix(m, i);
        by_type[w->type] += (uint64_t)(w->cols * w->rows);
    }
    for (uint32_t t = 0; t < INFER_TYPE_COUNT; t++) if (by_type[t] > by_type[best]) best = t;
    double p = (double)m->n_params;
    const char *unit = p >= 1e9 ? "B" : p >= 1e6 ? "M" : "K";
    double div = p >= 1e9 ? 1e9 : p >= 1e6 ? 1e6 : 1e3;
    char tname[32];
    uint64_t ft;
    infer_error ignored;
    const char *fname = infer_gguf_get_uint(m->gguf, "general.file_type", &ft, &ignored) == INFER_OK ? ftype_name(ft) : NULL;
    if (fname) {
        snprintf(tname, sizeof tname, "%s", fname);
    } else {
        snprintf(tname, sizeof tname, "%s", infer_type_name(best));
        for (char *c = tname; *c; c++) if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    }
    snprintf(m->desc, sizeof m->desc, "%s %.2f%s %s", m->arch_name, p / div, unit, tname);
}

infer_model_params infer_model_default_params(void) {
    infer_model_params p = {.use_mmap = 1, .vocab_only = 0};
    return p;
}

/* Everything after the file is open: m->gguf is set, m owns it. */
static infer_status load_model(infer_model *m, const infer_model_params *params, infer_model **out,
                               infer_error *err) {
    infer_model_params p = params ? *params : infer_model_default_params();
    infer_status s;
    m->vocab_only = p.vocab_only;
    if ((s = vocab_load(m->gguf, &m->vocab, err)) != INFER_OK) goto fail;
    m->hp.n_vocab = (uint32_t)vocab_n_tokens(m->vocab);
    if (p.vocab_only) {
        snprintf(m->arch_name, sizeof m->arch_name, "vocab");
        snprintf(m->desc, sizeof m->desc, "vocabulary only, %u tokens", m->hp.n_vocab);
        *out = m;
        return INFER_OK;
    }
    if ((s = read_arch(m, err)) != INFER_OK) goto fail;
    if ((s = read_hparams(m, err)) != INFER_OK) goto fail;
    /* A vocab_size key, when present, must agree with the tokenizer. */
    {
        hp_reader r = {m->gguf, m->arch_name, err};
        uint32_t nv;
        if ((s = hp_uint(&r, "vocab_size", m->hp.n_vocab, 1, UINT32_MAX, &nv)) != INFER_OK) goto fail;
        if (nv != m->hp.n_vocab) {
            s = set_error(err, INFER_EFORMAT, "key '%s.vocab_size' is %u but the tokenizer has %u tokens",
                          m->arch_name, nv, m->hp.n_vocab);
            goto fail;
        }
    }
    if ((s = bind_tensors(m, err)) != INFER_OK) goto fail;
    if ((s = copy_vectors(m, err)) != INFER_OK) goto fail;
    describe(m);
    *out = m;
    return INFER_OK;
fail:
    free_model(m);
    return s;
}

static infer_status new_model(infer_model **m, infer_error *err) {
    *m = infer_calloc(1, sizeof **m);
    if (!*m) return set_error(err, INFER_ENOMEM, "out of memory");
    atomic_init(&(*m)->refs, 1);
    infer_status s = model_pack_new(&(*m)->pack, err);
    if (s != INFER_OK) {
        infer_free(*m);
        *m = NULL;
    }
    return s;
}

infer_status infer_model_load(const char *path, const infer_model_params *params, infer_model **out,
                              infer_error *err) {
    infer_model *m;
    infer_status s;
    if (!path || !out) return set_error(err, INFER_EINVAL, "infer_model_load: NULL argument");
    *out = NULL;
    if ((s = new_model(&m, err)) != INFER_OK) return s;
    unsigned flags = params && !params->use_mmap ? INFER_GGUF_NO_MMAP : 0;
    if ((s = infer_gguf_open(path, flags, &m->gguf, err)) != INFER_OK) {
        free_model(m);
        return s;
    }
    return load_model(m, params, out, err);
}

infer_status infer_model_load_memory(const void *data, size_t size, const infer_model_params *params,
                                     infer_model **out, infer_error *err) {
    infer_model *m;
    infer_status s;
    if (!data || !out) return set_error(err, INFER_EINVAL, "infer_model_load_memory: NULL argument");
    *out = NULL;
    if ((s = new_model(&m, err)) != INFER_OK) return s;
    if ((s = infer_gguf_open_memory(data, size, 0, &m->gguf, err)) != INFER_OK) {
        free_model(m);
        return s;
    }
    return load_model(m, params, out, err);
}

void model_retain(infer_model *m) { atomic_fetch_add(&m->refs, 1); }

infer_model *infer_model_retain(infer_model *m) {
    if (m) model_retain(m);
    return m;
}

void infer_model_release(infer_model *m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) free_model(m);
}

/* The getters: NULL, 0 or -1 for a NULL model. */
const char *infer_model_arch(const infer_model *m) { return m ? m->arch_name : NULL; }
const char *infer_model_desc(const infer_model *m) { return m ? m->desc : NULL; }
int32_t infer_model_n_vocab(const infer_model *m) { return m ? (int32_t)m->hp.n_vocab : 0; }
uint32_t infer_model_n_ctx_train(const infer_model *m) { return m ? m->hp.n_ctx_train : 0; }
uint32_t infer_model_n_embd(const infer_model *m) { return m ? m->hp.n_embd : 0; }
uint32_t infer_model_n_layer(const infer_model *m) { return m ? m->hp.n_layer : 0; }
uint64_t infer_model_n_params(const infer_model *m) { return m ? m->n_params : 0; }
uint64_t infer_model_size(const infer_model *m) { return m ? m->n_bytes : 0; }

uint64_t infer_model_streamed_bytes(const infer_model *m) {
    if (!m) return 0;
    if (m->vocab_only || !m->tok_embd.data || m->output.data == m->tok_embd.data) return m->n_bytes;
    const uint64_t embd = (uint64_t)m->tok_embd.row_bytes * (uint64_t)m->tok_embd.rows;
    return embd < m->n_bytes ? m->n_bytes - embd : 0;
}

int32_t infer_token_bos(const infer_model *m) { return m ? vocab_bos(m->vocab) : -1; }
int32_t infer_token_eos(const infer_model *m) { return m ? vocab_eos(m->vocab) : -1; }
int infer_token_is_eog(const infer_model *m, int32_t id) { return m ? vocab_is_eog(m->vocab, id) : 0; }

infer_status infer_tokenize(const infer_model *m, const char *text, size_t len, unsigned flags,
                            int32_t *ids, size_t cap, size_t *n, infer_error *err) {
    if (!m || (!text && len) || !n) return set_error(err, INFER_EINVAL, "infer_tokenize: NULL argument");
    return vocab_tokenize(m->vocab, text ? text : "", len, !!(flags & INFER_TOKENIZE_ADD_SPECIAL),
                          !!(flags & INFER_TOKENIZE_PARSE_SPECIAL), ids, cap, n, err);
}

infer_status infer_token_to_piece(const infer_model *m, int32_t id, int render_special, char *buf,
                                  size_t cap, size_t *len) {
    if (!m || !len) return INFER_EINVAL;
    return vocab_token_to_piece(m->vocab, id, render_special, buf, cap, len);
}

infer_status model_act_row_bytes(uint32_t weight_type, int64_t n, size_t *out) {
    uint64_t b;
    uint32_t vt = infer_ref_vec_dot_type(weight_type);
    if (vt == INFER_TYPE_COUNT || infer_type_row_bytes(vt, (uint64_t)n, &b) != INFER_OK || b > SIZE_MAX) {
        return INFER_EINVAL;
    }
    *out = (size_t)b;
    return INFER_OK;
}
