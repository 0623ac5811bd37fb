/*
 * test_model_features.c - model features beyond the reference files:
 * tied embeddings, Llama 3 rope-frequency scaling (keys and tensor),
 * linear rope scaling, the same seed giving the same tokens whatever
 * the thread count, and a mapped file's 1-D weights copied out of it.
 */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "gguf_internal.h"

#include "infer.h"
#include "model.h"
#include "synth.h"
#include "testutil.h"

static infer_model *load_params(const synth_params *p, void **buf) {
    size_t size;
    infer_error err = {0};
    cr_assert_eq(synth_model(p, buf, &size, &err), INFER_OK, "%s", err.message);
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(*buf, size, NULL, &m, &err), INFER_OK, "%s", err.message);
    return m;
}

static void generate_ids(infer_model *m, int n_threads, uint64_t seed, int32_t *out, int n) {
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = n_threads;
    infer_context *c = NULL;
    infer_sampler *s = NULL;
    infer_sampler_params sp = infer_sampler_default_params();
    sp.seed = seed;
    cr_assert_eq(infer_context_new(m, &cp, &c, NULL), INFER_OK);
    cr_assert_eq(infer_sampler_new(m, &sp, &s, NULL), INFER_OK);
    int32_t prompt[] = {1, 260, 261, 262, 263, 264}; /* in range for every vocab here */
    cr_assert_eq(infer_decode(c, prompt, 6, 0, NULL), INFER_OK);
    for (int i = 0; i < n; i++) {
        out[i] = infer_sampler_sample(s, infer_logits(c));
        infer_sampler_accept(s, out[i]);
        cr_assert_eq(infer_decode(c, &out[i], 1, 0, NULL), INFER_OK);
    }
    infer_sampler_free(s);
    infer_context_free(c);
}

Test(model_features, same_seed_same_tokens_at_any_thread_count) {
    synth_params p = synth_default_params();
    p.n_vocab = 400;
    p.n_embd = 64;
    p.n_ff = 128;
    p.std = 0.3f;
    void *buf;
    infer_model *m = load_params(&p, &buf);
    int32_t one[40], two[40], three[40];
    generate_ids(m, 1, 1234, one, 40);
    generate_ids(m, 2, 1234, two, 40);
    generate_ids(m, 3, 1234, three, 40);
    cr_assert_arr_eq(one, two, sizeof one, "1 vs 2 threads");
    cr_assert_arr_eq(one, three, sizeof one, "1 vs 3 threads");
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

Test(model_features, tied_embeddings_use_token_embd_as_output) {
    synth_params p = synth_default_params();
    p.tied = 1;
    void *buf;
    infer_model *m = load_params(&p, &buf);
    cr_assert_eq(m->output.data, m->tok_embd.data, "no output.weight: the output is token_embd");
    int32_t ids[4];
    generate_ids(m, 1, 5, ids, 4);
    for (int i = 0; i < 4; i++) cr_assert(ids[i] >= 0 && ids[i] < 300);
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

/* The bytes a generated token reads: all weights but the embedding
 * table, which it reads one row of, unless the table is the output. */
Test(model_features, streamed_bytes_leave_out_an_untied_embedding_table) {
    synth_params p = synth_default_params();
    void *buf;
    infer_model *m = load_params(&p, &buf);
    const uint64_t embd = (uint64_t)m->tok_embd.row_bytes * (uint64_t)m->tok_embd.rows;
    cr_assert_eq(embd, (uint64_t)300 * 32 * 4, "vocab 300 x n_embd 32, F32");
    cr_assert_eq(infer_model_streamed_bytes(m), infer_model_size(m) - embd);
    infer_model_release(m);
    free(buf);
    p.tied = 1;
    m = load_params(&p, &buf);
    cr_assert_eq(infer_model_streamed_bytes(m), infer_model_size(m), "tied: the table is the output matrix");
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

/* Llama 3 scaling from the rope.scaling.* keys: factor 1 for high
 * frequencies, `factor` for low ones, smooth in between (Meta's formula). */
Test(model_features, llama3_rope_scaling_keys) {
    synth_params p = synth_default_params();
    p.n_embd = 64;
    p.n_head = 2; /* head dim 32: 16 frequencies */
    p.n_head_kv = 1;
    p.set_key = "llama.rope.scaling.type";
    p.set_type = INFER_GGUF_STRING;
    p.set_value = "llama3";
    void *buf;
    infer_model *m = load_params(&p, &buf);
    cr_assert_not_null(m->rope_freq_factors);
    /* Defaults: factor 8, low 1, high 4, original context 8192. */
    const double base = 10000.0, n_rot = 32.0, orig = 8192.0;
    for (int i = 0; i < 16; i++) {
        double freq = pow(base, -2.0 * i / n_rot), wavelen = 2.0 * M_PI / freq, want;
        if (wavelen < orig / 4.0) want = 1.0;
        else if (wavelen > orig / 1.0) want = 8.0;
        else {
            double smooth = (orig / wavelen - 1.0) / (4.0 - 1.0);
            want = 1.0 / ((1.0 - smooth) / 8.0 + smooth);
        }
        cr_assert_float_eq(m->rope_freq_factors[i], want, 1e-5 * want, "factor %d", i);
    }
    cr_assert_float_eq(m->rope_freq_factors[0], 1.0, 1e-6);
    cr_assert_float_eq(m->rope_freq_factors[15], 8.0, 1e-5);
    int32_t ids[4];
    generate_ids(m, 1, 5, ids, 4);
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

/* A rope_freqs.weight tensor (what converters write) is used as is; a bad
 * value in it is rejected. */
Test(model_features, rope_freqs_tensor_read_and_checked) {
    synth_params p = synth_default_params();
    p.n_head = 2; /* head dim 16: 8 rotated pairs, 8 frequency factors */
    p.n_head_kv = 1;
    p.extra_tensor = "rope_freqs.weight"; /* synth writes 8 values */
    void *buf;
    infer_model *m = load_params(&p, &buf);
    cr_assert_not_null(m->rope_freq_factors);
    cr_assert(fabsf(m->rope_freq_factors[0] - 1.0f) < 0.2f, "synth writes 1 + noise");
    infer_model_release(m);
    free(buf);

    p.bad_values = 1; /* NaN in the first values of every tensor, rope_freqs too */
    size_t size;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK);
    m = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_EFORMAT);
    cr_assert(strstr(err.message, "rope_freqs.weight") != NULL, "%s", err.message);
    free(buf);
    LEAK_CHECK();
}

Test(model_features, linear_rope_scaling) {
    synth_params p = synth_default_params();
    float factor = 4.0f;
    p.set_key = "llama.rope.scale_linear";
    p.set_type = INFER_GGUF_FLOAT32;
    p.set_value = &factor;
    void *buf;
    infer_model *m = load_params(&p, &buf);
    cr_assert_float_eq(m->hp.rope_freq_scale, 0.25f, 1e-7);
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

/* An unknown scaling type is refused, its bytes escaped in the message;
 * a scale factor so small that its inverse is not finite is refused. */
Test(model_features, unknown_rope_scaling_rejected) {
    synth_params p = synth_default_params();
    p.set_key = "llama.rope.scaling.type";
    p.set_type = INFER_GGUF_STRING;
    p.set_value = "yarn\x1b[2J\n\xff";
    void *buf;
    size_t size;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK);
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_EUNSUPPORTED);
    cr_assert(strstr(err.message, "rope.scaling.type") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "'yarn\\x1b[2J\\x0a\\xff'") != NULL, "%s", err.message);
    free(buf);
    const float tiny = 1e-40f;
    p.set_key = "llama.rope.scale_linear";
    p.set_type = INFER_GGUF_FLOAT32;
    p.set_value = &tiny;
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK);
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_EFORMAT);
    cr_assert(strstr(err.message, "rope.scale_linear") != NULL, "%s", err.message);
    free(buf);
    LEAK_CHECK();
}

/* A mapped model reads its 1-D weights (norms, qwen2's biases) from copies
 * of its own, byte for byte the file's, not from the mapping (a read there
 * maps the page cache's folio around it: up to 2 MB of repacked and
 * dropped matrices); the matrices stay in the mapping. Loaded from memory,
 * the vectors are copied too (aligned for float reads whatever the
 * caller's buffer), the matrices read where they are. */
/* w's bytes equal tensor name's in the file image buf (g: the file mapped). */
static int file_bytes_equal(const infer_gguf *g, const void *buf, const char *name, const weight *w) {
    const int64_t i = infer_gguf_find_tensor(g, name);
    cr_assert_geq(i, 0, "no %s", name);
    const infer_gguf_tensor *t = infer_gguf_tensor_at(g, (uint64_t)i);
    cr_assert_eq(t->n_bytes, (uint64_t)w->row_bytes, "%s", name);
    return !memcmp(w->data, (const uint8_t *)buf + ((const uint8_t *)t->data - g->data), w->row_bytes);
}

static void check_vectors(const char *arch) {
    synth_params p = synth_default_params();
    p.arch = arch;
    void *buf;
    size_t size;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK, "%s", err.message);
    char path[] = "/tmp/infer-vectors-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, buf, size), (ssize_t)size);
    close(fd);
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(path, NULL, &m, &err), INFER_OK, "%s", err.message);
    unlink(path);
    cr_assert_eq(m->gguf->backing, GGUF_MMAP);
    const uintptr_t lo = (uintptr_t)m->gguf->data, hi = lo + m->gguf->size;
#define IN_MAP(w) ((uintptr_t)(w).data >= lo && (uintptr_t)(w).data < hi)
#define SAME(w, name) file_bytes_equal(m->gguf, buf, name, &(w))
    int n_vec = 0;
    cr_assert(!IN_MAP(m->output_norm) && SAME(m->output_norm, "output_norm.weight"));
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const layer_weights *L = &m->layers[il];
        const weight *const v[] = {&L->attn_norm, &L->bq, &L->bk, &L->bv, &L->q_norm, &L->k_norm, &L->ffn_norm};
        static const char *const names[] = {"attn_norm", "attn_q.bias", "attn_k.bias", "attn_v.bias",
                                            "attn_q_norm", "attn_k_norm", "ffn_norm"};
        for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) {
            if (!v[j]->data) continue;
            char name[64];
            snprintf(name, sizeof name, "blk.%u.%s%s", il, names[j], strstr(names[j], ".bias") ? "" : ".weight");
            cr_assert(!IN_MAP(*v[j]), "%s points into the mapping", name);
            cr_assert(SAME(*v[j], name), "%s differs from the file", name);
            n_vec++;
        }
        cr_assert(IN_MAP(L->wq) && IN_MAP(L->w_down), "matrices stay in the mapping");
    }
    cr_assert(IN_MAP(m->tok_embd));
    cr_assert_geq(n_vec, 2 * (int)m->hp.n_layer);
    infer_model_release(m);
    m = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_OK, "%s", err.message);
    cr_assert_not_null(m->vectors);
    const weight *an = &m->layers[0].attn_norm, *wq = &m->layers[0].wq;
    cr_assert((uintptr_t)an->data < (uintptr_t)buf || (uintptr_t)an->data >= (uintptr_t)buf + size);
    cr_assert_eq((uintptr_t)an->data % 16, 0); /* malloc's alignment, at offsets of 64 bytes */
    cr_assert((uintptr_t)wq->data >= (uintptr_t)buf && (uintptr_t)wq->data < (uintptr_t)buf + size);
    infer_model_release(m);
    free(buf);
#undef IN_MAP
#undef SAME
}

Test(model_features, mapped_vectors_copied_out_of_the_mapping) {
    check_vectors("llama");
    check_vectors("qwen2"); /* biases */
    check_vectors("qwen3"); /* per-head norms */
    LEAK_CHECK();
}
