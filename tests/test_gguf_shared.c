/* test_gguf_shared.c - the real GGUF files in ../shared parse, with the
 * version, tensor and key/value counts their READMEs give; the one file
 * whose quantized rows are not whole blocks is rejected by default with a
 * message naming the tensor, and read when asked. Skips with a message when
 * ../shared is absent. */
#include <dirent.h>
#include <string.h>

#include "infer_gguf.h"
#include "testutil.h"


typedef struct {
    const char *file;
    uint32_t version;
    uint64_t n_tensors, n_kv;
} counts;

static const counts MODELS[] = {
    {"llama-2-tiny-random.gguf", 3, 12, 18},
    {"rand-small-bf16.gguf", 3, 21, 24},
    {"rand-small-f16.gguf", 3, 21, 24},
    {"rand-small-f32.gguf", 3, 21, 23},
    {"rand-small-q2_k.gguf", 3, 21, 24},
    {"rand-small-q3_k_s.gguf", 3, 21, 24},
    {"rand-small-q4_0.gguf", 3, 21, 24},
    {"rand-small-q4_1.gguf", 3, 21, 24},
    {"rand-small-q4_k_m.gguf", 3, 21, 24},
    {"rand-small-q4_k_s.gguf", 3, 21, 24},
    {"rand-small-q5_0.gguf", 3, 21, 24},
    {"rand-small-q5_1.gguf", 3, 21, 24},
    {"rand-small-q5_k_m.gguf", 3, 21, 24},
    {"rand-small-q5_k_s.gguf", 3, 21, 24},
    {"rand-small-q6_k.gguf", 3, 21, 24},
    {"rand-small-q8_0.gguf", 3, 21, 24},
    {"rand-small-qwen2-f32.gguf", 3, 27, 23},
    {"rand-small-qwen3-f32.gguf", 3, 25, 25},
    {"stories260K.gguf", 3, 48, 19},
    {"tinyllamas-stories-260k-f32.gguf", 1, 48, 18},
};

static const counts VOCABS[] = {
    {"ggml-vocab-llama-spm.gguf", 3, 0, 22},  {"ggml-vocab-phi-3.gguf", 3, 0, 26},
    {"ggml-vocab-gpt-2.gguf", 3, 0, 16},      {"ggml-vocab-starcoder.gguf", 3, 0, 19},
    {"ggml-vocab-deepseek-llm.gguf", 3, 0, 23}, {"ggml-vocab-bert-bge.gguf", 3, 0, 20},
    {"ggml-vocab-baichuan.gguf", 3, 0, 18},   {"ggml-vocab-gpt-neox.gguf", 3, 0, 17},
};

#define Q8_0_FILE "tinyllamas-stories-260k-q8_0.gguf"

static infer_gguf *open_or_fail(const char *path, unsigned flags) {
    infer_gguf *g = NULL;
    infer_error err = {0};
    infer_status s = infer_gguf_open(path, flags, &g, &err);
    cr_assert_eq(s, INFER_OK, "%s: %s: %s", path, infer_status_name(s), err.message);
    return g;
}

/* Counts through mmap, read() and a memory buffer; every tensor inside the
 * file and every string array readable. */
static void check_counts(const char *dir, const counts *c) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", shared_dir(), dir, c->file);
    for (int mode = 0; mode < 3; mode++) {
        infer_gguf *g;
        void *buf = NULL;
        size_t size = 0;
        if (mode < 2) {
            g = open_or_fail(path, mode ? INFER_GGUF_NO_MMAP : 0);
        } else {
            infer_error err = {0};
            buf = read_file(path, &size);
            cr_assert_not_null(buf, "cannot read %s", path);
            cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, &err), INFER_OK, "%s: %s", path,
                         err.message);
        }
        cr_assert_eq(infer_gguf_version(g), c->version, "%s: version", c->file);
        cr_assert_eq(infer_gguf_tensor_count(g), c->n_tensors, "%s: tensors", c->file);
        cr_assert_eq(infer_gguf_kv_count(g), c->n_kv, "%s: kv", c->file);
        const uint8_t *base = infer_gguf_file_data(g);
        uint64_t fsize = infer_gguf_file_size(g);
        for (uint64_t i = 0; i < c->n_tensors; i++) {
            const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
            const uint8_t *d = t->data;
            cr_assert(d >= base + infer_gguf_data_offset(g) && t->n_bytes <= fsize &&
                      (uint64_t)(d - base) <= fsize - t->n_bytes,
                      "%s: tensor %llu outside the file", c->file, (unsigned long long)i);
        }
        for (uint64_t i = 0; i < c->n_kv; i++) {
            if (infer_gguf_kv_arr_type(g, i) != INFER_GGUF_STRING) continue;
            uint64_t n = infer_gguf_kv_arr_count(g, i);
            infer_gguf_str s;
            if (n) cr_assert_eq(infer_gguf_arr_str(g, i, n - 1, &s, NULL), INFER_OK);
        }
        infer_gguf_close(g);
        free(buf);
    }
}

Test(gguf_shared, models_have_the_readme_counts) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) check_counts("models", &MODELS[i]);
    LEAK_CHECK();
}

Test(gguf_shared, vocabularies_have_the_readme_counts) {
    char path[1024];
    SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
    for (size_t i = 0; i < sizeof VOCABS / sizeof VOCABS[0]; i++) check_counts("vocab", &VOCABS[i]);
    LEAK_CHECK();
}

/* Every .gguf in the directories parses (new files included), and every one
 * the READMEs list is there. */
static void check_dir(const char *sub, const counts *table, size_t n, int *found) {
    char dirpath[1024], path[2048];
    snprintf(dirpath, sizeof dirpath, "%s/%s", shared_dir(), sub);
    DIR *d = opendir(dirpath);
    cr_assert_not_null(d, "cannot list %s", dirpath);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0) continue;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(table[i].file, e->d_name) == 0) found[i] = 1;
        }
        snprintf(path, sizeof path, "%s/%s", dirpath, e->d_name);
        unsigned flags = strcmp(e->d_name, Q8_0_FILE) == 0 ? INFER_GGUF_BLOCKS_ACROSS_ROWS : 0;
        infer_gguf_close(open_or_fail(path, flags));
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) cr_assert(found[i], "%s/%s is missing", sub, table[i].file);
}

Test(gguf_shared, every_gguf_file_parses) {
    char path[1024];
    int found[32] = {0};
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    check_dir("models", MODELS, sizeof MODELS / sizeof MODELS[0], found);
    memset(found, 0, sizeof found);
    SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
    check_dir("vocab", VOCABS, sizeof VOCABS / sizeof VOCABS[0], found);
    LEAK_CHECK();
}

/* Q8_0 with rows of 172 values: blocks run across rows. */
Test(gguf_shared, q8_0_blocks_across_rows_rejected_by_default) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/" Q8_0_FILE);
    for (int m = 0; m < 2; m++) {
        infer_gguf *g = (infer_gguf *)(uintptr_t)1;
        infer_error err = {0};
        infer_status s = infer_gguf_open(path, m ? INFER_GGUF_NO_MMAP : 0, &g, &err);
        cr_assert_eq(s, INFER_EFORMAT, "%s: %s", infer_status_name(s), err.message);
        cr_assert_null(g);
        cr_assert(strstr(err.message, "'blk.0.ffn_down.weight'"), "%s", err.message);
        cr_assert(strstr(err.message, "172"), "%s", err.message);
        cr_assert(strstr(err.message, "q8_0"), "%s", err.message);
    }
    LEAK_CHECK();
}

Test(gguf_shared, q8_0_blocks_across_rows_accepted_with_the_flag) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/" Q8_0_FILE);
    infer_gguf *g = open_or_fail(path, INFER_GGUF_BLOCKS_ACROSS_ROWS);
    cr_assert_eq(infer_gguf_version(g), 2);
    cr_assert_eq(infer_gguf_tensor_count(g), 48);
    cr_assert_eq(infer_gguf_kv_count(g), 20);
    for (int l = 0; l < 5; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        int64_t i = infer_gguf_find_tensor(g, name);
        cr_assert(i >= 0, "%s missing", name);
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, (uint64_t)i);
        cr_assert_eq(t->type, INFER_TYPE_Q8_0);
        cr_assert(t->n_dims == 2 && t->ne[0] == 172 && t->ne[1] == 64);
        cr_assert_eq(t->n_bytes, 172 * 64 / 32 * 34); /* 344 blocks of 34 bytes */
    }
    infer_gguf_close(g);
    LEAK_CHECK();
}

Test(gguf_shared, stories260k_typed_getters) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    infer_gguf *g = open_or_fail(path, 0);
    infer_error err = {0};
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    float eps = 0;
    infer_gguf_str s = {0};

    cr_assert_eq(infer_gguf_get_u32(g, "llama.block_count", &u32, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(u32, 5);
    cr_assert_eq(infer_gguf_get_uint(g, "llama.block_count", &u64, &err), INFER_OK);
    cr_assert_eq(u64, 5);
    cr_assert_eq(infer_gguf_get_u32(g, "llama.embedding_length", &u32, &err), INFER_OK);
    cr_assert_eq(u32, 64);
    cr_assert_eq(infer_gguf_get_u32(g, "llama.attention.head_count_kv", &u32, &err), INFER_OK);
    cr_assert_eq(u32, 4);
    cr_assert_eq(infer_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err), INFER_OK);
    cr_assert_float_eq(eps, 1e-5f, 1e-9f);
    cr_assert_eq(infer_gguf_get_str(g, "general.architecture", &s, &err), INFER_OK, "%s", err.message);
    cr_assert(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    cr_assert_eq(infer_gguf_alignment(g), 32);
    cr_assert_eq(infer_gguf_data_offset(g), 0x3760);

    int64_t k = infer_gguf_find_key(g, "tokenizer.ggml.tokens");
    cr_assert(k >= 0);
    cr_assert_eq(infer_gguf_kv_type(g, (uint64_t)k), INFER_GGUF_ARRAY);
    cr_assert_eq(infer_gguf_kv_arr_type(g, (uint64_t)k), INFER_GGUF_STRING);
    cr_assert_eq(infer_gguf_kv_arr_count(g, (uint64_t)k), 512);
    static const char *const first[] = {"<unk>", "<s>", "</s>", "<0x00>"};
    for (uint64_t i = 0; i < 4; i++) {
        cr_assert_eq(infer_gguf_arr_str(g, (uint64_t)k, i, &s, &err), INFER_OK);
        cr_assert(s.len == strlen(first[i]) && memcmp(s.ptr, first[i], s.len) == 0,
                  "token %llu", (unsigned long long)i);
    }
    cr_assert_eq(infer_gguf_arr_str(g, (uint64_t)k, 511, &s, &err), INFER_OK);
    cr_assert(s.len > 0);
    cr_assert_eq(infer_gguf_arr_str(g, (uint64_t)k, 512, &s, &err), INFER_EINVAL);

    int64_t sc = infer_gguf_find_key(g, "tokenizer.ggml.scores");
    cr_assert(sc >= 0);
    cr_assert_eq(infer_gguf_kv_arr_type(g, (uint64_t)sc), INFER_GGUF_FLOAT32);
    cr_assert_eq(infer_gguf_kv_arr_count(g, (uint64_t)sc), 512);
    float scores[512];
    cr_assert_eq(infer_gguf_arr_read(g, (uint64_t)sc, INFER_GGUF_FLOAT32, 0, 512, scores, &err), INFER_OK);
    int64_t tt = infer_gguf_find_key(g, "tokenizer.ggml.token_type");
    int32_t types[4];
    cr_assert_eq(infer_gguf_arr_read(g, (uint64_t)tt, INFER_GGUF_INT32, 0, 4, types, &err), INFER_OK);
    cr_assert(types[0] == 2 && types[1] == 3 && types[2] == 3 && types[3] == 6);

    int64_t t = infer_gguf_find_tensor(g, "blk.4.ffn_down.weight");
    cr_assert(t >= 0);
    const infer_gguf_tensor *ti = infer_gguf_tensor_at(g, (uint64_t)t);
    cr_assert_eq(ti->type, INFER_TYPE_F32);
    cr_assert_eq(ti->n_dims, 2);
    cr_assert(ti->ne[0] == 172 && ti->ne[1] == 64 && ti->ne[2] == 1 && ti->ne[3] == 1);
    cr_assert_eq(ti->n_elements, 172 * 64);
    cr_assert_eq(ti->n_bytes, 172 * 64 * 4);
    cr_assert_eq(infer_gguf_find_tensor(g, "blk.5.ffn_down.weight"), -1);
    infer_gguf_close(g);
    LEAK_CHECK();
}

/* The v1 file holds the same weights, bit for bit. */
Test(gguf_shared, v1_file_has_the_same_weights_as_v3) {
    char p3[1024], p1[1024];
    SHARED_OR_SKIP(p3, "models/stories260K.gguf");
    SHARED_OR_SKIP(p1, "models/tinyllamas-stories-260k-f32.gguf");
    infer_gguf *g3 = open_or_fail(p3, 0), *g1 = open_or_fail(p1, INFER_GGUF_NO_MMAP);
    for (uint64_t i = 0; i < infer_gguf_tensor_count(g3); i++) {
        const infer_gguf_tensor *a = infer_gguf_tensor_at(g3, i);
        char name[INFER_GGUF_MAX_NAME + 1];
        memcpy(name, a->name.ptr, a->name.len);
        name[a->name.len] = '\0';
        int64_t j = infer_gguf_find_tensor(g1, name);
        cr_assert(j >= 0, "v1 file lacks %s", name);
        const infer_gguf_tensor *b = infer_gguf_tensor_at(g1, (uint64_t)j);
        cr_assert(a->type == b->type && a->n_dims == b->n_dims && a->n_bytes == b->n_bytes, "%s", name);
        cr_assert(memcmp(a->ne, b->ne, sizeof a->ne) == 0, "%s shape", name);
        cr_assert(memcmp(a->data, b->data, a->n_bytes) == 0, "%s data", name);
    }
    infer_gguf_close(g3);
    infer_gguf_close(g1);
    LEAK_CHECK();
}
