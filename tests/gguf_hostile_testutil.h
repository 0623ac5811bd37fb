/* gguf_hostile_testutil.h - the checks the gguf_hostile suite
 * (test_gguf_hostile.c, test_gguf_hostile_tensors.c,
 * test_gguf_hostile_guards.c) makes of every malformed file: the reader is
 * handed an exact-size copy from memory and the same bytes through a file
 * (mmap and read()), must return the expected status with a message that
 * names the field, and that message must be printable ASCII. Header-only,
 * on top of gguf_bytes.h; each suite file gets its own static copy. */
#ifndef INFER_TEST_GGUF_HOSTILE_TESTUTIL_H
#define INFER_TEST_GGUF_HOSTILE_TESTUTIL_H

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "infer_gguf.h"
#include "testutil.h"
#include "gguf_bytes.h"

/* ---- checks ------------------------------------------------------------------ */

static inline void check_message(const infer_error *err) {
    size_t n = strlen(err->message);
    cr_assert(n > 0, "empty error message");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)err->message[i];
        cr_assert(c >= 0x20 && c < 0x7f, "unescaped byte 0x%02x at %zu in message: %s", c, i,
                  err->message);
    }
}

/* Open size bytes of b (an exact-size copy) from memory; returns status,
 * fills err; the handle is closed. */
static inline infer_status open_bytes(const void *p, size_t size, unsigned flags, infer_error *err) {
    void *exact = malloc(size ? size : 1);
    cr_assert(exact);
    if (size) memcpy(exact, p, size);
    infer_gguf *g = (infer_gguf *)(uintptr_t)1;
    memset(err, 0, sizeof *err);
    infer_status s = infer_gguf_open_memory(size ? exact : NULL, size, flags, &g, err);
    if (s == INFER_OK) {
        cr_assert_not_null(g);
        infer_gguf_close(g);
    } else {
        cr_assert_null(g, "a failed open must leave *out NULL");
        cr_assert_eq(err->status, s);
    }
    free(exact);
    return s;
}

/* The same bytes through a temporary file. */
static inline infer_status open_as_file(const void *p, size_t size, unsigned flags, infer_error *err) {
    char path[] = "/tmp/infer-gguf-hostile-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, p, size), (ssize_t)size);
    close(fd);
    infer_gguf *g = (infer_gguf *)(uintptr_t)1;
    memset(err, 0, sizeof *err);
    infer_status s = infer_gguf_open(path, flags, &g, err);
    if (s == INFER_OK) infer_gguf_close(g);
    else cr_assert_null(g);
    unlink(path);
    return s;
}

/* size bytes must be rejected with `want`, and the message must contain
 * every needle, for memory, mmap and read() alike. */
static inline void expect_reject_(const void *p, size_t size, unsigned flags, infer_status want,
                                  const char *const *needles, int line) {
    infer_error err, ferr;
    infer_status s = open_bytes(p, size, flags, &err);
    cr_assert_eq(s, want, "line %d: status %s, expected %s: %s", line, infer_status_name(s),
                 infer_status_name(want), err.message);
    check_message(&err);
    for (const char *const *n = needles; *n; n++) {
        cr_assert(strstr(err.message, *n), "line %d: message lacks \"%s\": %s", line, *n,
                  err.message);
    }
    for (int m = 0; m < 2; m++) {
        s = open_as_file(p, size, flags | (m ? INFER_GGUF_NO_MMAP : 0), &ferr);
        cr_assert_eq(s, want, "line %d (file, %s): %s: %s", line, m ? "read" : "mmap",
                     infer_status_name(s), ferr.message);
        cr_assert_str_eq(ferr.message, err.message, "line %d: file and memory messages differ", line);
    }
    LEAK_CHECK();
}
#define EXPECT_REJECT(b, flags, want, ...) \
    expect_reject_((b)->p, (b)->len, (flags), (want), (const char *const[]){__VA_ARGS__, NULL}, __LINE__)

static inline void expect_ok_(const bb *b, unsigned flags, int line) {
    infer_error err;
    infer_status s = open_bytes(b->p, b->len, flags, &err);
    cr_assert_eq(s, INFER_OK, "line %d: %s: %s", line, infer_status_name(s), err.message);
}
#define EXPECT_OK(b, flags) expect_ok_((b), (flags), __LINE__)

static inline infer_gguf *open_ok(const bb *b, unsigned flags) {
    infer_gguf *g = NULL;
    infer_error err = {0};
    infer_status s = infer_gguf_open_memory(b->p, b->len, flags, &g, &err);
    cr_assert_eq(s, INFER_OK, "%s: %s", infer_status_name(s), err.message);
    return g;
}

/* An array entry up to its count; the elements are the caller's. */
static inline void array_head(bb *b, const char *key, uint32_t elem_type, uint64_t count) {
    put_cstr(b, key);
    put_u32(b, INFER_GGUF_ARRAY);
    put_u32(b, elem_type);
    put_count(b, count);
}

#endif
