/* test_gguf_truncation.c - a valid file cut at any byte of its header, or
 * anywhere inside its tensor data, fails cleanly: an error status, a
 * message, no handle, nothing read past the cut (each prefix is an
 * exact-size copy, so ASan sees a one-byte over-read). Cuts after the last
 * tensor's data (inside the final padding) lose nothing and must succeed. */
#include <string.h>
#include <unistd.h>

#include "infer_gguf.h"
#include "testutil.h"


#define DATA_SAMPLES 48

/* Bytes past which nothing is needed: the end of the furthest tensor's data
 * (or of the header when there are no tensors). */
static size_t needed_bytes(const void *buf, size_t size, unsigned flags, uint64_t *data_offset) {
    infer_gguf *g = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_open_memory(buf, size, flags, &g, &err), INFER_OK, "%s", err.message);
    *data_offset = infer_gguf_data_offset(g);
    uint64_t end = 0;
    for (uint64_t i = 0; i < infer_gguf_tensor_count(g); i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        uint64_t e = *data_offset + t->offset + t->n_bytes;
        if (e > end) end = e;
    }
    infer_gguf_close(g);
    return (size_t)end;
}

static infer_status open_prefix(const uint8_t *buf, size_t n, unsigned flags, infer_error *err) {
    uint8_t *cut = malloc(n ? n : 1);
    cr_assert(cut);
    memcpy(cut, buf, n);
    infer_gguf *g = (infer_gguf *)(uintptr_t)1;
    memset(err, 0, sizeof *err);
    infer_status s = infer_gguf_open_memory(n ? cut : NULL, n, flags, &g, err);
    if (s == INFER_OK) infer_gguf_close(g);
    else cr_assert_null(g);
    free(cut);
    return s;
}

static void expect_cut_fails(const uint8_t *buf, size_t n, size_t size, unsigned flags,
                             const char *what) {
    infer_error err;
    infer_status s = open_prefix(buf, n, flags, &err);
    cr_assert_neq(s, INFER_OK, "%s cut at %zu of %zu bytes was accepted", what, n, size);
    cr_assert_eq(s, INFER_EFORMAT, "%s cut at %zu: %s: %s", what, n, infer_status_name(s),
                 err.message);
    cr_assert(err.message[0] != '\0', "%s cut at %zu: empty message", what, n);
}

/* Every header offset (or every stride-th), a
 * sample of data offsets, and the padding tail. */
static void truncate_everywhere(const uint8_t *buf, size_t size, unsigned flags, size_t stride,
                                const char *what) {
    uint64_t data_offset;
    size_t need = needed_bytes(buf, size, flags, &data_offset);
    cr_assert(need <= size && data_offset <= need);
    for (size_t n = 0; n <= data_offset && n < need; n += stride) {
        expect_cut_fails(buf, n, size, flags, what);
    }
    for (size_t n = data_offset >= 64 ? data_offset - 64 : 0; n <= data_offset && n < need; n++) {
        expect_cut_fails(buf, n, size, flags, what); /* the last bytes of the header, always */
    }
    uint64_t rng = size;
    for (int k = 0; k < DATA_SAMPLES && need > data_offset + 1; k++) {
        size_t n = data_offset + 1 + (size_t)(test_rng(&rng) % (need - data_offset - 1));
        expect_cut_fails(buf, n, size, flags, what);
    }
    if (need > 0) expect_cut_fails(buf, need - 1, size, flags, what); /* one byte short */
    for (size_t n = need; n <= size; n++) {
        infer_error err;
        infer_status s = open_prefix(buf, n, flags, &err);
        cr_assert_eq(s, INFER_OK, "%s cut at %zu (after all data): %s", what, n, err.message);
    }
}

/* A file with every kind of entry, from the project's writer. */
static void *synthetic(size_t *size) {
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    void *buf = NULL;
    const char *tokens[] = {"<unk>", "<s>", "", "\xe2\x96\x81the", "a\0b"};
    size_t lens[] = {5, 3, 0, 6, 3};
    float scores[5] = {0, -1.5f, 2, 3, 4};
    int32_t ids[3] = {1, -2, 3};
    uint8_t q[34 * 4], f[4 * 24], k[210];
    memset(q, 0x11, sizeof q);
    memset(f, 0x22, sizeof f);
    memset(k, 0x33, sizeof k);
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    infer_gguf_writer_set_alignment(w, 64);
    infer_gguf_writer_set_str(w, "general.architecture", "llama", 5);
    infer_gguf_writer_set_u32(w, "llama.block_count", 2);
    infer_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    double d = 0.25;
    uint8_t yes = 1;
    int64_t big = -1;
    infer_gguf_writer_set(w, "x.f64", INFER_GGUF_FLOAT64, &d);
    infer_gguf_writer_set(w, "x.bool", INFER_GGUF_BOOL, &yes);
    infer_gguf_writer_set(w, "x.i64", INFER_GGUF_INT64, &big);
    infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, lens, 5);
    infer_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, scores, 5);
    infer_gguf_writer_set_arr(w, "x.ids", INFER_GGUF_INT32, ids, 3);
    infer_gguf_writer_set_arr(w, "x.empty", INFER_GGUF_UINT8, NULL, 0);
    infer_gguf_writer_set_arr_str(w, "x.empty_strs", NULL, NULL, 0);
    infer_gguf_writer_add_tensor(w, "token_embd.weight", INFER_TYPE_Q8_0, 2, (uint64_t[]){64, 2}, q, sizeof q);
    infer_gguf_writer_add_tensor(w, "output_norm.weight", INFER_TYPE_F32, 3, (uint64_t[]){4, 3, 2}, f, sizeof f);
    infer_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight", INFER_TYPE_Q6_K, 1, (uint64_t[]){256}, k, sizeof k);
    cr_assert_eq(infer_gguf_writer_finish(w, &buf, size, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    return buf;
}

Test(gguf_truncation, synthetic_file_cut_anywhere) {
    size_t size = 0;
    uint8_t *buf = synthetic(&size);
    truncate_everywhere(buf, size, 0, 1, "synthetic");
    free(buf);
    LEAK_CHECK();
}

Test(gguf_truncation, stories260k_header_cut_at_every_byte) {
    char path[1024];
    size_t size = 0;
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    uint8_t *buf = read_file(path, &size);
    cr_assert_not_null(buf);
    truncate_everywhere(buf, size, 0, 1, "stories260K.gguf");
    free(buf);
    LEAK_CHECK();
}

Test(gguf_truncation, v1_file_header_cut_at_every_byte) {
    char path[1024];
    size_t size = 0;
    SHARED_OR_SKIP(path, "models/tinyllamas-stories-260k-f32.gguf");
    uint8_t *buf = read_file(path, &size);
    cr_assert_not_null(buf);
    truncate_everywhere(buf, size, 0, 1, "v1 f32");
    free(buf);
    LEAK_CHECK();
}

Test(gguf_truncation, q8_0_blocks_across_rows_cut_at_every_byte) {
    char path[1024];
    size_t size = 0;
    SHARED_OR_SKIP(path, "models/tinyllamas-stories-260k-q8_0.gguf");
    uint8_t *buf = read_file(path, &size);
    cr_assert_not_null(buf);
    truncate_everywhere(buf, size, INFER_GGUF_BLOCKS_ACROSS_ROWS, 1, "v2 q8_0");
    free(buf);
    LEAK_CHECK();
}

/* The same through a real file, mmap and read(): a file cut short on disk. */
Test(gguf_truncation, truncated_files_on_disk) {
    size_t size = 0;
    uint8_t *buf = synthetic(&size);
    uint64_t data_offset;
    size_t need = needed_bytes(buf, size, 0, &data_offset);
    size_t cuts[] = {0, 1, 4, 8, 23, 24, 100, (size_t)data_offset - 1, (size_t)data_offset,
                     (size_t)data_offset + 1, need - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char path[] = "/tmp/infer-gguf-trunc-XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, buf, cuts[i]), (ssize_t)cuts[i]);
        close(fd);
        for (int m = 0; m < 2; m++) {
            infer_gguf *g = (infer_gguf *)(uintptr_t)1;
            infer_error err = {0};
            infer_status s = infer_gguf_open(path, m ? INFER_GGUF_NO_MMAP : 0, &g, &err);
            cr_assert_eq(s, INFER_EFORMAT, "cut at %zu (%s): %s: %s", cuts[i], m ? "read" : "mmap",
                         infer_status_name(s), err.message);
            cr_assert_null(g);
            cr_assert(err.message[0]);
        }
        unlink(path);
    }
    free(buf);
    LEAK_CHECK();
}
