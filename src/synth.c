/*
 * synth.c - synthetic models (see synth.h). Weights are N(0, std^2), norm
 * weights 1 + N(0, std^2), drawn from a seeded generator so that a given
 * params struct always gives the same bytes.
 */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/quants.h"

synth_params synth_default_params(void) {
    synth_params p = {
        .arch = "llama", .n_vocab = 300, .n_embd = 32, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
        .n_ff = 64, .n_ctx = 128, .wtype = INFER_TYPE_F32, .seed = 1, .std = 0.02f,
    };
    return p;
}

typedef struct {
    const synth_params *p;
    infer_gguf_writer *w;
    uint64_t rng;
    int set_done;   /* p->set_key was written */
    float *buf;     /* scratch floats for the largest tensor */
    uint8_t *qbuf;  /* scratch for its quantized bytes */
} synth;

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_normal(uint64_t *s) {
    double u1 = ((double)(rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* ---- metadata through the hooks -------------------------------------------------- */

static infer_status hooked(synth *s, const char *key, int *skip) {
    const synth_params *p = s->p;
    *skip = 0;
    if (p->omit_key && !strcmp(p->omit_key, key)) {
        *skip = 1;
        return INFER_OK;
    }
    if (p->set_key && !strcmp(p->set_key, key)) {
        *skip = 1;
        s->set_done = 1;
        if (p->set_type == INFER_GGUF_STRING) {
            const char *v = p->set_value;
            return infer_gguf_writer_set_str(s->w, key, v, p->set_len ? p->set_len : strlen(v));
        }
        return infer_gguf_writer_set(s->w, key, p->set_type, p->set_value);
    }
    return INFER_OK;
}

static infer_status put_u32(synth *s, const char *key, uint32_t v) {
    int skip;
    infer_status st = hooked(s, key, &skip);
    return skip ? st : infer_gguf_writer_set_u32(s->w, key, v);
}

static infer_status put_f32(synth *s, const char *key, float v) {
    int skip;
    infer_status st = hooked(s, key, &skip);
    return skip ? st : infer_gguf_writer_set_f32(s->w, key, v);
}

static infer_status put_str(synth *s, const char *key, const char *v) {
    int skip;
    infer_status st = hooked(s, key, &skip);
    return skip ? st : infer_gguf_writer_set_str(s->w, key, v, strlen(v));
}

static infer_status put_arch_u32(synth *s, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", s->p->arch, suffix);
    return put_u32(s, key, v);
}

/* ---- vocabulary --------------------------------------------------------------------- */

/* <unk> <s> </s>, the 256 byte tokens, then "▁a".."▁z", "a".."z" and
 * two-letter words until n_vocab. */
static infer_status write_vocab(synth *s) {
    const uint32_t n = s->p->n_vocab;
    infer_status st = INFER_ENOMEM;
    char (*text)[16] = calloc(n, sizeof *text);
    const char **strs = calloc(n, sizeof *strs);
    float *scores = calloc(n, sizeof *scores);
    int32_t *types = calloc(n, sizeof *types);
    if (!text || !strs || !scores || !types) goto out;
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0) snprintf(text[i], sizeof text[i], "<unk>"), types[i] = 2;
        else if (i == 1) snprintf(text[i], sizeof text[i], "<s>"), types[i] = 3;
        else if (i == 2) snprintf(text[i], sizeof text[i], "</s>"), types[i] = 3;
        else if (i < 259) snprintf(text[i], sizeof text[i], "<0x%02X>", i - 3), types[i] = 6;
        else {
            uint32_t k = i - 259;
            types[i] = 1;
            if (k < 26) snprintf(text[i], sizeof text[i], "\xe2\x96\x81%c", 'a' + k);
            else if (k < 52) snprintf(text[i], sizeof text[i], "%c", 'a' + (k - 26));
            else snprintf(text[i], sizeof text[i], "%c%c", 'a' + ((k - 52) / 26) % 26, 'a' + (k - 52) % 26);
            if (k >= 52 + 676) snprintf(text[i], sizeof text[i], "w%u", k); /* unique filler */
            scores[i] = -(float)k;
        }
        strs[i] = text[i];
    }
    int skip;
    if ((st = put_str(s, "tokenizer.ggml.model", "llama")) != INFER_OK) goto out;
    if ((st = hooked(s, "tokenizer.ggml.tokens", &skip)) != INFER_OK) goto out;
    if (!skip && (st = infer_gguf_writer_set_arr_str(s->w, "tokenizer.ggml.tokens", strs, NULL, n)) != INFER_OK) goto out;
    if ((st = hooked(s, "tokenizer.ggml.scores", &skip)) != INFER_OK) goto out;
    if (!skip && (st = infer_gguf_writer_set_arr(s->w, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, scores, n)) != INFER_OK) goto out;
    if ((st = hooked(s, "tokenizer.ggml.token_type", &skip)) != INFER_OK) goto out;
    if (!skip && (st = infer_gguf_writer_set_arr(s->w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, types, n)) != INFER_OK) goto out;
    if ((st = put_u32(s, "tokenizer.ggml.bos_token_id", 1)) != INFER_OK) goto out;
    if ((st = put_u32(s, "tokenizer.ggml.eos_token_id", 2)) != INFER_OK) goto out;
    st = put_u32(s, "tokenizer.ggml.unknown_token_id", 0);
out:
    free(text);
    free(strs);
    free(scores);
    free(types);
    return st;
}

/* ---- tensors -------------------------------------------------------------------------- */

/* A [cols, rows] tensor (rows 1: 1-D). Norm-like tensors are 1 + noise and
 * F32; matrices are noise in the weight type. */
static infer_status write_tensor(synth *s, const char *name, uint64_t cols, uint64_t rows, int is_norm) {
    const synth_params *p = s->p;
    if (p->omit_tensor && !strcmp(p->omit_tensor, name)) return INFER_OK;
    if (p->reshape_tensor && !strcmp(p->reshape_tensor, name)) rows += 1;
    const uint64_t n = cols * rows;
    const int retyped = p->retype_tensor && !strcmp(p->retype_tensor, name);
    const uint32_t type = retyped ? p->retype : is_norm ? INFER_TYPE_F32 : p->wtype;
    for (uint64_t i = 0; i < n; i++) s->buf[i] = (is_norm ? 1.0f : 0.0f) + p->std * rng_normal(&s->rng);
    if (p->bad_values && n >= 4) {
        float bad = p->bad_values == 1 ? NAN : INFINITY;
        for (int i = 0; i < 4; i++) s->buf[i] = bad;
    }
    uint64_t row_bytes;
    if (infer_type_row_bytes(type, cols, &row_bytes) != INFER_OK) return INFER_EINVAL;
    if (retyped) memset(s->qbuf, 0, (size_t)(row_bytes * rows)); /* fits: <= 8 bytes per value */
    for (uint64_t r = 0; r < rows && !retyped; r++) {
        if (infer_ref_quantize(type, s->buf + r * cols, s->qbuf + r * row_bytes, (int64_t)cols) != 0) {
            return INFER_EUNSUPPORTED;
        }
    }
    uint64_t ne[2] = {cols, rows};
    return infer_gguf_writer_add_tensor(s->w, name, type, rows > 1 ? 2 : 1, ne, s->qbuf,
                                        (size_t)(row_bytes * rows));
}

static infer_status write_tensors(synth *s) {
    const synth_params *p = s->p;
    const uint64_t E = p->n_embd, V = p->n_vocab, F = p->n_ff;
    const uint64_t hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    const uint64_t Q = p->n_head * hd, K = p->n_head_kv * hd;
    const int qwen2 = !strcmp(p->arch, "qwen2"), qwen3 = !strcmp(p->arch, "qwen3");
    char name[64];
    infer_status st;
#define T(nm, c, r, norm) do { if ((st = write_tensor(s, nm, c, r, norm)) != INFER_OK) return st; } while (0)
    T("token_embd.weight", E, V, 0);
    T("output_norm.weight", E, 1, 1);
    if (!p->tied) T("output.weight", E, V, 0);
    for (uint32_t l = 0; l < p->n_layer; l++) {
#define L(suffix, c, r, norm) do { snprintf(name, sizeof name, "blk.%u.%s", l, suffix); T(name, c, r, norm); } while (0)
        L("attn_norm.weight", E, 1, 1);
        L("attn_q.weight", E, Q, 0);
        L("attn_k.weight", E, K, 0);
        L("attn_v.weight", E, K, 0);
        L("attn_output.weight", Q, E, 0);
        if (qwen2) {
            L("attn_q.bias", Q, 1, 1);
            L("attn_k.bias", K, 1, 1);
            L("attn_v.bias", K, 1, 1);
        }
        if (qwen3) {
            L("attn_q_norm.weight", hd, 1, 1);
            L("attn_k_norm.weight", hd, 1, 1);
        }
        L("ffn_norm.weight", E, 1, 1);
        L("ffn_gate.weight", E, F, 0);
        L("ffn_up.weight", E, F, 0);
        L("ffn_down.weight", F, E, 0);
#undef L
    }
    if (p->extra_tensor) T(p->extra_tensor, 8, 1, 1);
#undef T
    return INFER_OK;
}

static infer_status write_metadata(synth *s) {
    const synth_params *p = s->p;
    const uint32_t hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    char key[128];
    infer_status st;
#define TRY(x) do { if ((st = (x)) != INFER_OK) return st; } while (0)
    TRY(put_str(s, "general.architecture", p->arch));
    TRY(put_str(s, "general.name", "synthetic"));
    TRY(put_arch_u32(s, "context_length", p->n_ctx));
    TRY(put_arch_u32(s, "embedding_length", p->n_embd));
    TRY(put_arch_u32(s, "block_count", p->n_layer));
    TRY(put_arch_u32(s, "feed_forward_length", p->n_ff));
    TRY(put_arch_u32(s, "attention.head_count", p->n_head));
    TRY(put_arch_u32(s, "attention.head_count_kv", p->n_head_kv));
    TRY(put_arch_u32(s, "rope.dimension_count", hd));
    if (p->head_dim || !strcmp(p->arch, "qwen3")) {
        TRY(put_arch_u32(s, "attention.key_length", hd));
        TRY(put_arch_u32(s, "attention.value_length", hd));
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", p->arch);
    TRY(put_f32(s, key, 1e-5f));
    snprintf(key, sizeof key, "%s.rope.freq_base", p->arch);
    TRY(put_f32(s, key, 10000.0f));
#undef TRY
    if ((st = write_vocab(s)) != INFER_OK) return st;
    /* A set_key the model does not otherwise have is added at the end. */
    if (p->set_key && !s->set_done) {
        int skip;
        return hooked(s, p->set_key, &skip);
    }
    return INFER_OK;
}

infer_status synth_model(const synth_params *p, void **out, size_t *size, infer_error *err) {
    synth s = {.p = p, .rng = p->seed};
    const uint64_t hd = p->head_dim ? p->head_dim : (p->n_head ? p->n_embd / p->n_head : 0);
    if (!p->arch || p->n_vocab < 259 || !p->n_embd || !p->n_layer || !p->n_head || !p->n_head_kv || !p->n_ff || !hd) {
        return set_error(err, INFER_EINVAL, "synth: shapes must be positive and n_vocab >= 259");
    }
    /* Scratch for the largest tensor: embeddings, FFN, or attention. */
    uint64_t big = (uint64_t)p->n_embd * (p->n_vocab + 1);
    uint64_t ffn = (uint64_t)(p->n_embd + 1) * (p->n_ff + 1), att = (uint64_t)(p->n_head * hd + 1) * (p->n_embd + 1);
    if (ffn > big) big = ffn;
    if (att > big) big = att;
    s.buf = infer_malloc_array((size_t)big + 8, sizeof(float));
    s.qbuf = infer_malloc_array((size_t)big + 8, sizeof(double)); /* any type: <= 8 B per value (the retype hook's F64) */
    infer_status st = infer_gguf_writer_new(&s.w, err);
    if (st == INFER_OK && (!s.buf || !s.qbuf)) st = set_error(err, INFER_ENOMEM, "synth: out of memory");
    if (st == INFER_OK) st = write_metadata(&s);
    if (st == INFER_OK) st = write_tensors(&s);
    if (st == INFER_OK) {
        st = infer_gguf_writer_finish(s.w, out, size, err);
    } else if (s.w) {
        /* A writer failure is sticky and finish reports it; otherwise the
         * weight type was one the reference quantizers cannot produce. */
        void *tmp;
        size_t tn;
        if (infer_gguf_writer_finish(s.w, &tmp, &tn, err) == INFER_OK) {
            free(tmp);
            if (st == INFER_ENOMEM) set_error(err, st, "synth: out of memory");
            else set_error(err, st, "synth: cannot produce %s weights of these shapes", infer_type_name(p->wtype));
        }
    }
    infer_gguf_writer_free(s.w);
    infer_free(s.buf);
    infer_free(s.qbuf);
    return st;
}

infer_status synth_model_file(const synth_params *p, const char *path, infer_error *err) {
    void *buf;
    size_t size;
    infer_status st = synth_model(p, &buf, &size, err);
    if (st != INFER_OK) return st;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, size, f) != size) st = set_error(err, INFER_EIO, "%s: cannot write", path);
    if (f && fclose(f) != 0 && st == INFER_OK) st = set_error(err, INFER_EIO, "%s: cannot write", path);
    free(buf);
    return st;
}
