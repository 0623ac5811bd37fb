/* test_gguf_alloc.c - allocation failure, injected at every allocation.
 *
 * For k = 1, 2, ... the k-th allocation from now fails; the reader (memory,
 * mmap, read()) and the writer (every call, then finish) must report
 * INFER_ENOMEM and release everything until k passes the last allocation,
 * when the call succeeds and its result is complete. Leaks on any of these
 * paths fail `make asan` (LSan). */
#include <string.h>
#include <unistd.h>

#include "infer_gguf.h"
#include "testutil.h"
#include "util.h"


#define MAX_K 10000

/* What every successful open must show for the synthetic file. */
static void check_synthetic(const infer_gguf *g) {
    infer_gguf_str s;
    uint32_t n = 0;
    cr_assert_eq(infer_gguf_kv_count(g), 40);
    cr_assert_eq(infer_gguf_tensor_count(g), 20);
    cr_assert_eq(infer_gguf_get_u32(g, "k.39", &n, NULL), INFER_OK);
    cr_assert_eq(n, 39);
    int64_t i = infer_gguf_find_key(g, "tokenizer.ggml.tokens");
    cr_assert(i >= 0);
    cr_assert_eq(infer_gguf_kv_arr_count(g, (uint64_t)i), 3);
    cr_assert_eq(infer_gguf_arr_str(g, (uint64_t)i, 2, &s, NULL), INFER_OK);
    cr_assert(s.len == 5 && memcmp(s.ptr, "hello", 5) == 0);
    cr_assert_eq(infer_gguf_find_tensor(g, "t19"), 19);
}

/* The writer calls of the synthetic file: more than 16 keys and tensors (the
 * writer's tables grow), string arrays, a kv buffer past its first 256 bytes.
 * Returns the first failure; every later call must return the same. */
static infer_status build(infer_gguf_writer **out, void **buf, size_t *size, infer_error *err) {
    infer_gguf_writer *w = NULL;
    infer_status first = INFER_OK, s;
    const char *tokens[] = {"<s>", "", "hello"};
    float data[16];
    char key[32];
    memset(data, 0, sizeof data);
    *out = NULL;
    s = infer_gguf_writer_new(&w, err);
    if (s != INFER_OK) {
        cr_assert_null(w);
        return s;
    }
    *out = w;
#define STEP(call)                                                                          \
    do {                                                                                    \
        s = (call);                                                                         \
        if (first == INFER_OK) first = s;                                                   \
        cr_assert_eq(s, first, "line %d: %s after %s (errors must stick)", __LINE__,        \
                     infer_status_name(s), infer_status_name(first));                       \
    } while (0)
    STEP(infer_gguf_writer_set_alignment(w, 64));
    STEP(infer_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, 3));
    STEP(infer_gguf_writer_set_str(w, "general.name", "synthetic", 9));
    STEP(infer_gguf_writer_set_arr(w, "scores", INFER_GGUF_FLOAT32, data, 16));
    for (int k = 4; k < 40; k++) {
        snprintf(key, sizeof key, "k.%d", k);
        STEP(infer_gguf_writer_set_u32(w, key, (uint32_t)k));
    }
    for (int t = 0; t < 20; t++) {
        snprintf(key, sizeof key, "t%d", t);
        STEP(infer_gguf_writer_add_tensor(w, key, INFER_TYPE_F32, 2, (uint64_t[]){8, 2}, data,
                                          sizeof data));
    }
#undef STEP
    s = infer_gguf_writer_finish(w, buf, size, err);
    if (first != INFER_OK) cr_assert_eq(s, first, "finish must report the sticky error");
    return s;
}

static void *synthetic(size_t *size) {
    infer_gguf_writer *w;
    void *buf = NULL;
    infer_error err = {0};
    cr_assert_eq(build(&w, &buf, size, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    return buf;
}

/* Open the same bytes as memory, path (mmap) or path (read()). */
static infer_status open_mode(int mode, const void *buf, size_t size, const char *path,
                              infer_gguf **g, infer_error *err) {
    if (mode == 0) return infer_gguf_open_memory(buf, size, 0, g, err);
    return infer_gguf_open(path, mode == 2 ? INFER_GGUF_NO_MMAP : 0, g, err);
}

/* Fail allocation k for k = 1.. until the open succeeds; returns that k. */
static uint64_t fail_each_allocation(int mode, const void *buf, size_t size, const char *path,
                                     void (*check)(const infer_gguf *)) {
    for (uint64_t k = 1; k < MAX_K; k++) {
        infer_gguf *g = (infer_gguf *)(uintptr_t)1;
        infer_error err = {0};
        infer_alloc_fail_at(k);
        infer_status s = open_mode(mode, buf, size, path, &g, &err);
        infer_alloc_fail_at(0);
        if (s == INFER_OK) {
            cr_assert_not_null(g);
            if (check) check(g);
            infer_gguf_close(g);
            return k;
        }
        cr_assert_eq(s, INFER_ENOMEM, "mode %d, k=%llu: %s: %s", mode, (unsigned long long)k,
                     infer_status_name(s), err.message);
        cr_assert_null(g, "mode %d, k=%llu: handle left after failure", mode, (unsigned long long)k);
        cr_assert(err.message[0], "mode %d, k=%llu: empty message", mode, (unsigned long long)k);
        cr_assert_eq(err.status, INFER_ENOMEM);
        LEAK_CHECK(); /* nothing of the failed open is left */
    }
    cr_assert_fail("mode %d: open never succeeded within %d allocations", mode, MAX_K);
    return 0;
}

static char *temp_copy(const void *buf, size_t size, char *path) {
    strcpy(path, "/tmp/infer-gguf-alloc-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, buf, size), (ssize_t)size);
    close(fd);
    return path;
}

Test(gguf_alloc, reader_fails_cleanly_at_every_allocation) {
    size_t size = 0;
    void *buf = synthetic(&size);
    char path[64];
    temp_copy(buf, size, path);
    /* memory: handle, kv table, string index, tensor table, sort table */
    uint64_t k_mem = fail_each_allocation(0, buf, size, path, check_synthetic);
    uint64_t k_mmap = fail_each_allocation(1, buf, size, path, check_synthetic);
    uint64_t k_read = fail_each_allocation(2, buf, size, path, check_synthetic);
    cr_assert_geq(k_mem, 5, "only %llu allocations: injection did not reach the parse",
                  (unsigned long long)k_mem);
    cr_assert_eq(k_mmap, k_mem);
    cr_assert_eq(k_read, k_mem + 1, "read() needs exactly one more allocation (the buffer)");
    unlink(path);
    free(buf);
    LEAK_CHECK();
}

Test(gguf_alloc, reader_fails_cleanly_on_stories260k) {
    char path[1024];
    size_t size = 0;
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    void *buf = read_file(path, &size);
    cr_assert_not_null(buf);
    for (int mode = 0; mode < 3; mode++) {
        uint64_t k = fail_each_allocation(mode, buf, size, path, NULL);
        cr_assert_geq(k, 5, "mode %d", mode);
    }
    free(buf);
    LEAK_CHECK();
}

/* A failure on one open leaves nothing behind that breaks the next. */
Test(gguf_alloc, injection_is_one_shot) {
    size_t size = 0;
    void *buf = synthetic(&size);
    infer_gguf *g = NULL;
    infer_error err = {0};
    infer_alloc_fail_at(1);
    cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, &err), INFER_ENOMEM);
    cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, &err), INFER_OK, "%s", err.message);
    check_synthetic(g);
    infer_gguf_close(g);
    infer_alloc_fail_at(0);
    free(buf);
    LEAK_CHECK();
}

Test(gguf_alloc, writer_fails_cleanly_at_every_allocation) {
    size_t ref_size = 0;
    void *ref = synthetic(&ref_size);
    uint64_t k;
    for (k = 1; k < MAX_K; k++) {
        infer_gguf_writer *w = NULL;
        void *buf = NULL;
        size_t size = 0;
        infer_error err = {0};
        infer_alloc_fail_at(k);
        infer_status s = build(&w, &buf, &size, &err);
        infer_alloc_fail_at(0);
        infer_gguf_writer_free(w);
        if (s == INFER_OK) {
            cr_assert(size == ref_size && memcmp(buf, ref, size) == 0,
                      "k=%llu: output differs from the reference", (unsigned long long)k);
            free(buf);
            break;
        }
        cr_assert_eq(s, INFER_ENOMEM, "k=%llu: %s: %s", (unsigned long long)k, infer_status_name(s),
                     err.message);
        cr_assert(err.message[0], "k=%llu: empty message", (unsigned long long)k);
        cr_assert_null(buf);
        LEAK_CHECK(); /* the freed writer left nothing behind */
    }
    /* new, key copies (40), tables grown, tensor data copies (20), finish */
    cr_assert_geq(k, 60, "only %llu allocations", (unsigned long long)k);
    cr_assert_lt(k, MAX_K);
    free(ref);
    LEAK_CHECK();
}

/* write_file reports the writer's failure too, and writes nothing. */
Test(gguf_alloc, writer_write_file_reports_enomem) {
    char path[] = "/tmp/infer-gguf-alloc-w-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    cr_assert_eq(infer_gguf_writer_set_u32(w, "a", 1), INFER_OK);
    infer_alloc_fail_at(1); /* finish's first buffer */
    infer_status s = infer_gguf_writer_write_file(w, path, &err);
    infer_alloc_fail_at(0);
    cr_assert_eq(s, INFER_ENOMEM, "%s", err.message);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, 0);
    /* The writer itself is not poisoned by a failed finish. */
    cr_assert_eq(infer_gguf_writer_write_file(w, path, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_gt(st.st_size, 0);
    infer_gguf_writer_free(w);
    unlink(path);
    LEAK_CHECK();
}
