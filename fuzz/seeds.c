/* seeds.c - `make-seeds DIR`: writes small, varied, valid GGUF files made
 * with the project's writer into DIR, as a starting corpus for fuzz_gguf
 * (`make-seeds --models DIR`: small complete models for fuzz_model;
 * `make-seeds --imatrix DIR`: importance matrices, legacy and GGUF, for
 * fuzz_imatrix).
 * Each file exercises a different part of the format: every value type,
 * string arrays, empty arrays, every tensor type, alignments, 1-4 dims,
 * many entries, and version 2 (same layout as 3, patched in). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer_gguf.h"
#include "synth.h"

static const char *out_dir;
static int n_written;

static void die(const char *what, const infer_error *err) {
    fprintf(stderr, "make-seeds: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

static infer_gguf_writer *new_writer(void) {
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    if (infer_gguf_writer_new(&w, &err) != INFER_OK) die("writer", &err);
    return w;
}

static void save_bytes(const char *name, const void *buf, size_t size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%02d-%s.gguf", out_dir, n_written++, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, size, f) != size || fclose(f) != 0) die(path, NULL);
}

/* Finish w, check the file reads back, write it; `patch` may edit bytes. */
static void save(const char *name, infer_gguf_writer *w, void (*patch)(unsigned char *, size_t)) {
    void *buf = NULL;
    size_t size = 0;
    infer_error err = {0};
    infer_gguf *g = NULL;
    if (infer_gguf_writer_finish(w, &buf, &size, &err) != INFER_OK) die(name, &err);
    if (patch) patch(buf, size);
    if (infer_gguf_open_memory(buf, size, INFER_GGUF_BLOCKS_ACROSS_ROWS, &g, &err) != INFER_OK) {
        die(name, &err);
    }
    infer_gguf_close(g);
    save_bytes(name, buf, size);
    free(buf);
    infer_gguf_writer_free(w);
}

static void fill(void *p, size_t n, unsigned seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((i * 131u + seed * 17u) >> 1);
}

static void add_tensor(infer_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const uint64_t *ne) {
    uint64_t n = 1, bytes = 0;
    for (uint32_t d = 0; d < n_dims; d++) n *= ne[d];
    if (infer_type_row_bytes(type, n, &bytes) != INFER_OK) die(name, NULL);
    void *data = malloc(bytes ? bytes : 1);
    if (!data) die("out of memory", NULL);
    fill(data, bytes, type);
    if (infer_gguf_writer_add_tensor(w, name, type, n_dims, ne, data, bytes) != INFER_OK) die(name, NULL);
    free(data);
}

static void patch_v2(unsigned char *b, size_t n) {
    if (n >= 8) b[4] = 2;
}

/* `make-seeds --models DIR`: small complete models for fuzz_model, made by
 * the synthetic generator: each architecture, several weight types, tied
 * and untied output. */
static int write_models(const char *dir) {
    static const struct {
        const char *arch;
        uint32_t type;
        int tied;
    } models[] = {
        {"llama", INFER_TYPE_F32, 0}, {"llama", INFER_TYPE_F16, 1}, {"llama", INFER_TYPE_Q8_0, 0},
        {"llama", INFER_TYPE_Q4_0, 1}, {"qwen2", INFER_TYPE_BF16, 0}, {"qwen3", INFER_TYPE_Q5_1, 0},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        synth_params p = synth_default_params();
        p.arch = models[i].arch;
        p.wtype = models[i].type;
        p.tied = models[i].tied;
        p.n_vocab = 260;
        p.n_layer = 1;
        p.seed = i + 1;
        char path[4096];
        infer_error err = {0};
        snprintf(path, sizeof path, "%s/model-%s-%s%s.gguf", dir, p.arch, infer_type_name(p.wtype),
                 p.tied ? "-tied" : "");
        if (synth_model_file(&p, path, &err) != INFER_OK) die(path, &err);
    }
    printf("make-seeds: %zu models in %s\n", sizeof models / sizeof models[0], dir);
    return 0;
}

/* ---- importance matrices (tools/imatrix.h) ---- */

static void put_i32(unsigned char *b, size_t *n, int32_t v) {
    for (int k = 0; k < 4; k++) b[(*n)++] = (unsigned char)((uint32_t)v >> (8 * k));
}

/* A legacy file: entries of 1, 4 and 8 values (ncall 0, 1, 3), with or
 * without the chunks-and-dataset tail. */
static void save_legacy_imatrix(const char *name, int tail) {
    static const char *const names[] = {"blk.0.attn_q.weight", "output.weight", "blk.1.ffn_down.weight"};
    static const int32_t nvals[] = {1, 4, 8}, ncalls[] = {0, 1, 3};
    unsigned char b[512];
    size_t n = 0;
    put_i32(b, &n, 3);
    for (int e = 0; e < 3; e++) {
        put_i32(b, &n, (int32_t)strlen(names[e]));
        memcpy(b + n, names[e], strlen(names[e]));
        n += strlen(names[e]);
        put_i32(b, &n, ncalls[e]);
        put_i32(b, &n, nvals[e]);
        for (int j = 0; j < nvals[e]; j++) {
            const float v = 0.25f * (float)(j + 1) * (float)(e + 1);
            uint32_t u;
            memcpy(&u, &v, 4);
            put_i32(b, &n, (int32_t)u);
        }
    }
    if (tail) {
        put_i32(b, &n, 10);
        put_i32(b, &n, 9);
        memcpy(b + n, "wiki.test", 9);
        n += 9;
    }
    save_bytes(name, b, n);
}

/* A GGUF matrix: NAME.in_sum2 sums and NAME.counts, two matrices (experts)
 * for one of the tensors, and the keys the reader wants. */
static void save_gguf_imatrix(void) {
    infer_gguf_writer *w = new_writer();
    const char *datasets[] = {"wiki.test"};
    float sums[16], counts[2] = {10.0f, 0.0f};
    for (int i = 0; i < 16; i++) sums[i] = 0.5f * (float)(i + 1);
    const uint64_t ne_s1[2] = {8, 1}, ne_c1[2] = {1, 1}, ne_s2[2] = {8, 2}, ne_c2[2] = {1, 2};
    if (infer_gguf_writer_set_arr_str(w, "imatrix.datasets", datasets, NULL, 1) != INFER_OK ||
        infer_gguf_writer_set_u32(w, "imatrix.chunk_count", 10) != INFER_OK ||
        infer_gguf_writer_set_u32(w, "imatrix.chunk_size", 512) != INFER_OK ||
        infer_gguf_writer_add_tensor(w, "blk.0.attn_q.weight.in_sum2", INFER_TYPE_F32, 2, ne_s1, sums, 32) != INFER_OK ||
        infer_gguf_writer_add_tensor(w, "blk.0.attn_q.weight.counts", INFER_TYPE_F32, 2, ne_c1, counts, 4) != INFER_OK ||
        infer_gguf_writer_add_tensor(w, "blk.0.ffn_up_exps.weight.in_sum2", INFER_TYPE_F32, 2, ne_s2, sums, 64) != INFER_OK ||
        infer_gguf_writer_add_tensor(w, "blk.0.ffn_up_exps.weight.counts", INFER_TYPE_F32, 2, ne_c2, counts, 8) != INFER_OK)
        die("imatrix gguf", NULL);
    save("imatrix", w, NULL);
}

static int write_imatrices(const char *dir) {
    out_dir = dir;
    save_legacy_imatrix("imatrix-legacy", 0);
    save_legacy_imatrix("imatrix-legacy-tail", 1);
    save_gguf_imatrix();
    printf("make-seeds: %d importance matrices in %s\n", n_written, dir);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--models")) return write_models(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--imatrix")) return write_imatrices(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: make-seeds DIR | make-seeds --models DIR | make-seeds --imatrix DIR\n");
        return 1;
    }
    out_dir = argv[1];
    infer_gguf_writer *w;

    /* Empty: header only. */
    save("empty", new_writer(), NULL);

    /* One scalar of every fixed-size type. */
    w = new_writer();
    {
        uint8_t u8 = 200, b = 1;
        int8_t i8 = -100;
        uint16_t u16 = 60000;
        int16_t i16 = -30000;
        int32_t i32 = -2;
        uint64_t u64 = 1ull << 40;
        int64_t i64 = -(1ll << 40);
        double f64 = 3.25;
        infer_gguf_writer_set(w, "s.u8", INFER_GGUF_UINT8, &u8);
        infer_gguf_writer_set(w, "s.i8", INFER_GGUF_INT8, &i8);
        infer_gguf_writer_set(w, "s.u16", INFER_GGUF_UINT16, &u16);
        infer_gguf_writer_set(w, "s.i16", INFER_GGUF_INT16, &i16);
        infer_gguf_writer_set_u32(w, "s.u32", 7);
        infer_gguf_writer_set(w, "s.i32", INFER_GGUF_INT32, &i32);
        infer_gguf_writer_set_f32(w, "s.f32", 0.5f);
        infer_gguf_writer_set(w, "s.bool", INFER_GGUF_BOOL, &b);
        infer_gguf_writer_set(w, "s.u64", INFER_GGUF_UINT64, &u64);
        infer_gguf_writer_set(w, "s.i64", INFER_GGUF_INT64, &i64);
        infer_gguf_writer_set(w, "s.f64", INFER_GGUF_FLOAT64, &f64);
    }
    save("scalars", w, NULL);

    /* Strings: empty, with NUL, high bytes. */
    w = new_writer();
    infer_gguf_writer_set_str(w, "general.architecture", "llama", 5);
    infer_gguf_writer_set_str(w, "general.name", "", 0);
    infer_gguf_writer_set_str(w, "x.nul", "a\0b\xff\x01", 5);
    save("strings", w, NULL);

    /* Arrays of every fixed type, and empty ones. */
    w = new_writer();
    {
        static const uint32_t types[] = {0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12};
        unsigned char data[8 * 5];
        char key[32];
        fill(data, sizeof data, 3);
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            if (types[i] == INFER_GGUF_BOOL) memset(data, 1, 5);
            snprintf(key, sizeof key, "a.%s", infer_gguf_type_name(types[i]));
            infer_gguf_writer_set_arr(w, key, types[i], data, 5);
            snprintf(key, sizeof key, "e.%s", infer_gguf_type_name(types[i]));
            infer_gguf_writer_set_arr(w, key, types[i], NULL, 0);
        }
    }
    save("arrays", w, NULL);

    /* A small tokenizer: tokens, scores, token types. */
    w = new_writer();
    {
        const char *tokens[] = {"<unk>", "<s>", "</s>", "<0x00>", "\xe2\x96\x81the", "a", "", "b\0c"};
        size_t lens[] = {5, 3, 4, 6, 6, 1, 0, 3};
        float scores[8] = {0, 0, 0, 0, -1, -2, -3, -4};
        int32_t tt[8] = {2, 3, 3, 6, 1, 1, 1, 1};
        infer_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
        infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, lens, 8);
        infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, scores, 8);
        infer_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INFER_GGUF_INT32, tt, 8);
        infer_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, NULL, 0);
    }
    save("tokenizer", w, NULL);

    /* One tensor of every valid type (two files: small and large blocks). */
    for (int big = 0; big < 2; big++) {
        w = new_writer();
        for (uint32_t t = 0; t < INFER_TYPE_COUNT; t++) {
            if (!infer_type_valid(t) || (infer_type_block_size(t) == 256) != big) continue;
            char name[32];
            snprintf(name, sizeof name, "t.%s", infer_type_name(t));
            uint64_t ne[2] = {infer_type_block_size(t) == 1 ? 4 : infer_type_block_size(t), 1};
            add_tensor(w, name, t, 2, ne);
        }
        save(big ? "tensor-types-k" : "tensor-types", w, NULL);
    }

    /* Dimensions 1..4. */
    w = new_writer();
    add_tensor(w, "d1", INFER_TYPE_F32, 1, (uint64_t[]){8});
    add_tensor(w, "d2", INFER_TYPE_F16, 2, (uint64_t[]){4, 3});
    add_tensor(w, "d3", INFER_TYPE_I8, 3, (uint64_t[]){2, 3, 5});
    add_tensor(w, "d4", INFER_TYPE_F32, 4, (uint64_t[]){1, 2, 1, 3});
    save("dims", w, NULL);

    /* Alignments 1, 8, 64, 4096. */
    static const uint32_t aligns[] = {1, 8, 64, 4096};
    for (size_t i = 0; i < 4; i++) {
        char name[32];
        w = new_writer();
        infer_gguf_writer_set_alignment(w, aligns[i]);
        add_tensor(w, "a", INFER_TYPE_I8, 1, (uint64_t[]){3});
        add_tensor(w, "b", INFER_TYPE_F32, 1, (uint64_t[]){5});
        snprintf(name, sizeof name, "align-%u", aligns[i]);
        save(name, w, NULL);
    }

    /* A tiny llama: hyperparameters and the tensor names a loader binds. */
    w = new_writer();
    {
        infer_gguf_writer_set_str(w, "general.architecture", "llama", 5);
        infer_gguf_writer_set_u32(w, "llama.block_count", 1);
        infer_gguf_writer_set_u32(w, "llama.embedding_length", 8);
        infer_gguf_writer_set_u32(w, "llama.feed_forward_length", 16);
        infer_gguf_writer_set_u32(w, "llama.attention.head_count", 2);
        infer_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 1);
        infer_gguf_writer_set_u32(w, "llama.context_length", 32);
        infer_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
        add_tensor(w, "token_embd.weight", INFER_TYPE_F32, 2, (uint64_t[]){8, 4});
        add_tensor(w, "output_norm.weight", INFER_TYPE_F32, 1, (uint64_t[]){8});
        add_tensor(w, "blk.0.attn_norm.weight", INFER_TYPE_F32, 1, (uint64_t[]){8});
        add_tensor(w, "blk.0.attn_q.weight", INFER_TYPE_F16, 2, (uint64_t[]){8, 8});
        add_tensor(w, "blk.0.attn_k.weight", INFER_TYPE_F16, 2, (uint64_t[]){8, 4});
        add_tensor(w, "blk.0.attn_v.weight", INFER_TYPE_F16, 2, (uint64_t[]){8, 4});
        add_tensor(w, "blk.0.attn_output.weight", INFER_TYPE_F16, 2, (uint64_t[]){8, 8});
        add_tensor(w, "blk.0.ffn_norm.weight", INFER_TYPE_F32, 1, (uint64_t[]){8});
        add_tensor(w, "blk.0.ffn_gate.weight", INFER_TYPE_Q8_0, 2, (uint64_t[]){32, 2});
        add_tensor(w, "blk.0.ffn_up.weight", INFER_TYPE_Q4_0, 2, (uint64_t[]){32, 2});
        add_tensor(w, "blk.0.ffn_down.weight", INFER_TYPE_Q4_K, 2, (uint64_t[]){256, 1});
    }
    save("tiny-llama", w, NULL);

    /* Many small entries (the duplicate and overlap checks sort them). */
    w = new_writer();
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof key, "k.%03d", (i * 37) % 200);
        infer_gguf_writer_set_u32(w, key, (uint32_t)i);
    }
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "t.%02d", (i * 7) % 40);
        add_tensor(w, name, INFER_TYPE_I8, 1, (uint64_t[]){1 + (uint64_t)i % 5});
    }
    save("many", w, NULL);

    /* Longest names and keys. */
    w = new_writer();
    {
        char name[64], key[300];
        memset(name, 'n', 63);
        name[63] = '\0';
        memset(key, 'k', 299);
        key[299] = '\0';
        infer_gguf_writer_set_u32(w, key, 1);
        add_tensor(w, name, INFER_TYPE_F32, 1, (uint64_t[]){1});
    }
    save("long-names", w, NULL);

    /* Version 2 (v3's layout), with metadata and a tensor. */
    w = new_writer();
    infer_gguf_writer_set_str(w, "general.architecture", "llama", 5);
    add_tensor(w, "w", INFER_TYPE_Q8_0, 2, (uint64_t[]){32, 2});
    save("v2", w, patch_v2);

    /* Q8_0 whose rows are not whole blocks: only valid with
     * INFER_GGUF_BLOCKS_ACROSS_ROWS (written with a 64-wide row, then the
     * dims patched to 16 x 4: same 64 values, same bytes). */
    w = new_writer();
    add_tensor(w, "blk.0.ffn_down.weight", INFER_TYPE_Q8_0, 2, (uint64_t[]){64, 1});
    {
        void *buf = NULL;
        size_t size = 0;
        infer_error err = {0};
        if (infer_gguf_writer_finish(w, &buf, &size, &err) != INFER_OK) die("rows", &err);
        /* Tensor info after the 24-byte header: name (8 + 21), n_dims, ne[0], ne[1]. */
        unsigned char *ne = (unsigned char *)buf + 24 + 8 + 21 + 4;
        uint64_t a = 16, b = 4;
        memcpy(ne, &a, 8);
        memcpy(ne + 8, &b, 8);
        infer_gguf *g = NULL;
        if (infer_gguf_open_memory(buf, size, INFER_GGUF_BLOCKS_ACROSS_ROWS, &g, &err) != INFER_OK) {
            die("rows", &err);
        }
        infer_gguf_close(g);
        save_bytes("blocks-across-rows", buf, size);
        free(buf);
        infer_gguf_writer_free(w);
    }

    /* Everything at once, alignment 16. */
    w = new_writer();
    {
        const char *strs[] = {"x", "", "yz"};
        uint16_t u16s[3] = {1, 2, 3};
        infer_gguf_writer_set_alignment(w, 16);
        infer_gguf_writer_set_str(w, "general.architecture", "qwen2", 5);
        infer_gguf_writer_set_arr_str(w, "strs", strs, NULL, 3);
        infer_gguf_writer_set_arr(w, "u16s", INFER_GGUF_UINT16, u16s, 3);
        infer_gguf_writer_set_f32(w, "f", -0.0f);
        add_tensor(w, "bias", INFER_TYPE_F32, 1, (uint64_t[]){3});
        add_tensor(w, "q6", INFER_TYPE_Q6_K, 2, (uint64_t[]){256, 2});
        add_tensor(w, "bf", INFER_TYPE_BF16, 3, (uint64_t[]){2, 2, 2});
    }
    save("mixed", w, NULL);

    /* Keys and names with bytes outside ASCII. */
    w = new_writer();
    infer_gguf_writer_set_u32(w, "cl\xc3\xa9.\xe2\x82\xac", 1);
    infer_gguf_writer_set_str(w, "ctl.\x01\x1b\x7f", "\x80\xff", 2);
    add_tensor(w, "t\xc3\xa9\x01", INFER_TYPE_F16, 1, (uint64_t[]){2});
    save("bytes", w, NULL);

    printf("make-seeds: %d files in %s\n", n_written, out_dir);
    return 0;
}
