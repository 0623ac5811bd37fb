/* test_gguf_hostile.c - HOSTILE.md section A, one test per case.
 *
 * Each test builds a malformed file byte by byte (gguf_bytes.h, so a test
 * can write what the project's writer would refuse to), hands an
 * exact-size copy to the reader (memory, and the same bytes through a file
 * with mmap and with read()), and asserts the specific status and that the
 * message names the field. Messages must be printable ASCII: bytes from the
 * file are escaped. The guards the reader relies on (checked arithmetic,
 * row byte sizes) and the typed getters' errors are tested here too. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "infer_gguf.h"
#include "testutil.h"
#include "util.h"
#include "gguf_bytes.h"

/* ---- checks ------------------------------------------------------------------ */

static void check_message(const infer_error *err) {
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
static infer_status open_bytes(const void *p, size_t size, unsigned flags, infer_error *err) {
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
static infer_status open_as_file(const void *p, size_t size, unsigned flags, infer_error *err) {
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
static void expect_reject_(const void *p, size_t size, unsigned flags, infer_status want,
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

static void expect_ok_(const bb *b, unsigned flags, int line) {
    infer_error err;
    infer_status s = open_bytes(b->p, b->len, flags, &err);
    cr_assert_eq(s, INFER_OK, "line %d: %s: %s", line, infer_status_name(s), err.message);
}
#define EXPECT_OK(b, flags) expect_ok_((b), (flags), __LINE__)

static infer_gguf *open_ok(const bb *b, unsigned flags) {
    infer_gguf *g = NULL;
    infer_error err = {0};
    infer_status s = infer_gguf_open_memory(b->p, b->len, flags, &g, &err);
    cr_assert_eq(s, INFER_OK, "%s: %s", infer_status_name(s), err.message);
    return g;
}

/* A valid v3 file with one f32 tensor of 8 values: the base many cases bend. */
static void one_tensor(bb *b, const char *name, uint32_t type, uint64_t offset, uint64_t ne0,
                       size_t data_bytes) {
    header(b, 3, 1, 0);
    TINFO(b, name, type, offset, ne0);
    pad_to(b, 32);
    put_zeros(b, data_bytes);
}

/* ---- 1. empty, short, bad magic ------------------------------------------------ */

Test(gguf_hostile, empty_file) {
    bb b = {0};
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "empty");
    infer_gguf *g = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_open_memory(NULL, 0, 0, &g, &err), INFER_EFORMAT);
    cr_assert_eq(infer_gguf_open_memory(NULL, 4, 0, &g, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_open_memory("GGUF", 4, 0, NULL, &err), INFER_EINVAL);
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, one_to_three_bytes) {
    for (size_t n = 1; n <= 3; n++) {
        expect_reject_("GGUF", n, 0, INFER_EFORMAT,
                       (const char *const[]){"too short", "magic", NULL}, __LINE__);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, bad_magic) {
    bb b = {0};
    put(&b, "GGML", 4);
    put_u32(&b, 3);
    put_zeros(&b, 16);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "bad magic 'GGML'", "offset 0x0");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, bad_magic_unprintable_bytes_are_escaped) {
    static const uint8_t magic[][4] = {
        {0x00, 0x1b, 0xff, 0x0a}, {0x7f, 0x80, 0x0d, 0x07}, {'G', '\\', 'U', 'F'},
    };
    static const char *const shown[] = {"\\x00\\x1b\\xff\\x0a", "\\x7f\\x80\\x0d\\x07", "G\\\\UF"};
    for (size_t i = 0; i < 3; i++) {
        bb b = {0};
        put(&b, magic[i], 4);
        put_u32(&b, 3);
        put_zeros(&b, 16);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, "bad magic", shown[i]); /* check_message: no raw bytes */
        bb_free(&b);
    }
    LEAK_CHECK();
}

/* ---- 2. versions ------------------------------------------------------------------ */

Test(gguf_hostile, version_0_and_4_and_up) {
    static const uint32_t versions[] = {0, 4, 5, 0xffff, 0x7fffffff, 0xffffffff, 0x00010000};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        bb b = {0};
        char v[32];
        header(&b, 3, 0, 0);
        memcpy(b.p + 4, &versions[i], 4);
        snprintf(v, sizeof v, "version %u", versions[i]);
        EXPECT_REJECT(&b, 0, INFER_EUNSUPPORTED, v, "offset 0x4");
        bb_free(&b);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, version_byte_swapped) {
    static const uint32_t versions[] = {0x03000000, 0x02000000, 0x01000000};
    for (size_t i = 0; i < 3; i++) {
        bb b = {0};
        header(&b, 3, 0, 0);
        memcpy(b.p + 4, &versions[i], 4);
        EXPECT_REJECT(&b, 0, INFER_EUNSUPPORTED, "byte-swapped", "big-endian");
        bb_free(&b);
    }
    LEAK_CHECK();
}

/* GGUF v1: 32-bit counts, lengths and dimensions. Supported. */
Test(gguf_hostile, version_1_is_read_with_32_bit_counts) {
    bb b = {0};
    header(&b, 1, 2, 3);
    cr_assert_eq(b.len, 4 + 4 + 4 + 4);
    kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.block_count", 5);
    put_cstr(&b, "list");
    put_u32(&b, INFER_GGUF_ARRAY);
    put_u32(&b, INFER_GGUF_STRING);
    put_count(&b, 2);
    put_cstr(&b, "ab");
    put_cstr(&b, "");
    TINFO(&b, "w", INFER_TYPE_F32, 0, 4, 2);
    TINFO(&b, "v", INFER_TYPE_F16, 32, 16);
    pad_to(&b, 32);
    for (uint32_t i = 0; i < 8; i++) put_u32(&b, i);
    put_zeros(&b, 32);

    infer_gguf *g = open_ok(&b, 0);
    infer_error err = {0};
    infer_gguf_str s = {0};
    uint32_t n = 0;
    cr_assert_eq(infer_gguf_version(g), 1);
    cr_assert_eq(infer_gguf_kv_count(g), 3);
    cr_assert_eq(infer_gguf_get_str(g, "general.architecture", &s, &err), INFER_OK);
    cr_assert(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    cr_assert_eq(infer_gguf_get_u32(g, "llama.block_count", &n, &err), INFER_OK);
    cr_assert_eq(n, 5);
    cr_assert_eq(infer_gguf_kv_arr_count(g, 2), 2);
    cr_assert_eq(infer_gguf_arr_str(g, 2, 1, &s, &err), INFER_OK);
    cr_assert_eq(s.len, 0);
    cr_assert_eq(infer_gguf_tensor_count(g), 2);
    const infer_gguf_tensor *t = infer_gguf_tensor_at(g, 0);
    cr_assert(t->n_dims == 2 && t->ne[0] == 4 && t->ne[1] == 2 && t->n_bytes == 32);
    cr_assert_eq(((const uint32_t *)t->data)[7], 7);
    t = infer_gguf_tensor_at(g, 1);
    cr_assert(t->type == INFER_TYPE_F16 && t->ne[0] == 16 && t->offset == 32 && t->n_bytes == 32);
    infer_gguf_close(g);

    /* v2 has v3's layout. */
    header(&b, 2, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F32, 0, 8);
    pad_to(&b, 32);
    put_zeros(&b, 32);
    g = open_ok(&b, 0);
    cr_assert_eq(infer_gguf_version(g), 2);
    infer_gguf_close(g);
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 3. counts --------------------------------------------------------------------- */

Test(gguf_hostile, tensor_count_huge) {
    static const uint64_t counts[] = {UINT64_MAX, 1ull << 60, 1ull << 32};
    for (size_t i = 0; i < 3; i++) {
        bb b = {0};
        char want[64];
        header(&b, 3, counts[i], 0);
        put_zeros(&b, 64);
        snprintf(want, sizeof want, "tensor count %llu", (unsigned long long)counts[i]);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, want, "offset 0x8");
        bb_free(&b);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, kv_count_huge) {
    static const uint64_t counts[] = {UINT64_MAX, 1ull << 60, 1ull << 32};
    for (size_t i = 0; i < 3; i++) {
        bb b = {0};
        char want[64];
        header(&b, 3, 0, counts[i]);
        put_zeros(&b, 64);
        snprintf(want, sizeof want, "metadata count %llu", (unsigned long long)counts[i]);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, want, "offset 0x10");
        bb_free(&b);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, counts_larger_than_the_bytes_left) {
    bb b = {0};
    /* 3 key/values need at least 3*21 bytes; 40 are left. */
    header(&b, 3, 0, 3);
    kv_u32(&b, "a", 1);
    put_zeros(&b, 40 - 17);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata count 3", "bytes left");
    /* 2 tensor infos need at least 66 bytes; 60 are left. */
    header(&b, 3, 2, 0);
    put_zeros(&b, 60);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor count 2", "bytes left");
    /* v1: 32-bit counts at their maximum. */
    header(&b, 1, 0, 0xffffffffu);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata count 4294967295");
    header(&b, 1, 0xffffffffu, 0);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor count 4294967295");
    /* Counts within the bound, entries missing: the first one cut short. */
    header(&b, 3, 0, 2);
    kv_u32(&b, "a", 1);
    put_u64(&b, 30); /* key length 30, 20 bytes left */
    put_zeros(&b, 20);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata key", "string length 30");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 4. string lengths ------------------------------------------------------------- */

Test(gguf_hostile, string_length_max_wraps_n_plus_1) {
    bb b = {0};
    header(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX); /* key length */
    put_zeros(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata key at offset 0x18", "18446744073709551615");

    header(&b, 3, 0, 1);
    put_cstr(&b, "general.name");
    put_u32(&b, INFER_GGUF_STRING);
    put_u64(&b, UINT64_MAX);
    put_zeros(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'general.name': string value", "18446744073709551615");

    header(&b, 3, 1, 0);
    put_u64(&b, UINT64_MAX); /* tensor name length */
    put_zeros(&b, 40);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor name", "18446744073709551615");

    header(&b, 1, 0, 1);
    put_u32(&b, UINT32_MAX);
    put_zeros(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata key", "4294967295");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, string_longer_than_the_bytes_left) {
    bb b = {0};
    header(&b, 3, 0, 1);
    put_cstr(&b, "general.name");
    put_u32(&b, INFER_GGUF_STRING);
    put_u64(&b, 100);
    put(&b, "short", 5);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'general.name'", "string length 100 exceeds the 5 bytes left");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 5. arrays ----------------------------------------------------------------------- */

static void array_head(bb *b, const char *key, uint32_t elem_type, uint64_t count) {
    put_cstr(b, key);
    put_u32(b, INFER_GGUF_ARRAY);
    put_u32(b, elem_type);
    put_count(b, count);
}

Test(gguf_hostile, array_count_times_size_overflows) {
    static const struct { uint32_t type; uint64_t count; const char *shown; } cases[] = {
        {INFER_GGUF_UINT64, 1ull << 61, "array of 2305843009213693952 uint64"},
        {INFER_GGUF_FLOAT64, UINT64_MAX / 4, "array of 4611686018427387903 float64"},
        {INFER_GGUF_UINT16, 1ull << 63, "array of 9223372036854775808 uint16"},
        {INFER_GGUF_INT32, UINT64_MAX, "array of 18446744073709551615 int32"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bb b = {0};
        header(&b, 3, 0, 1);
        array_head(&b, "tokenizer.ggml.scores", cases[i].type, cases[i].count);
        put_zeros(&b, 64);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'tokenizer.ggml.scores'", cases[i].shown);
        bb_free(&b);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, array_count_larger_than_the_bytes_left) {
    bb b = {0};
    header(&b, 3, 0, 1);
    array_head(&b, "arr", INFER_GGUF_UINT32, 100);
    put_zeros(&b, 8);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'arr'", "array of 100 uint32", "8 bytes left");
    header(&b, 3, 0, 1);
    array_head(&b, "arr", INFER_GGUF_UINT8, UINT64_MAX);
    put_zeros(&b, 8);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'arr'", "18446744073709551615 uint8");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, string_array_count_larger_than_the_bytes_left) {
    bb b = {0};
    /* Every string needs its 8-byte length: 10 of them cannot fit in 16. */
    header(&b, 3, 0, 1);
    array_head(&b, "tokenizer.ggml.tokens", INFER_GGUF_STRING, 10);
    put_zeros(&b, 16);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'tokenizer.ggml.tokens'", "array of 10 strings");
    header(&b, 3, 0, 1);
    array_head(&b, "tokenizer.ggml.tokens", INFER_GGUF_STRING, UINT64_MAX);
    put_zeros(&b, 16);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "array of 18446744073709551615 strings");
    header(&b, 3, 0, 1);
    array_head(&b, "tokenizer.ggml.tokens", INFER_GGUF_STRING, 1ull << 61);
    put_zeros(&b, 16);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "array of 2305843009213693952 strings");
    /* The count fits; the second string's length does not. */
    header(&b, 3, 0, 1);
    array_head(&b, "tokenizer.ggml.tokens", INFER_GGUF_STRING, 3);
    put_cstr(&b, "a");
    put_u64(&b, 1000);
    put_zeros(&b, 16);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'tokenizer.ggml.tokens': string 1 of 3", "1000");
    /* v1 string arrays: 4-byte lengths. */
    header(&b, 1, 0, 1);
    array_head(&b, "t", INFER_GGUF_STRING, 5);
    put_zeros(&b, 16);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 't'", "array of 5 strings");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 6. value types ---------------------------------------------------------------------- */

Test(gguf_hostile, value_type_out_of_range) {
    static const uint32_t types[] = {13, 14, 255, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < 5; i++) {
        bb b = {0};
        char want[64];
        header(&b, 3, 0, 1);
        put_cstr(&b, "general.x");
        put_u32(&b, types[i]);
        put_zeros(&b, 16);
        snprintf(want, sizeof want, "value type %u is out of range", types[i]);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'general.x'", want);
        header(&b, 3, 0, 1);
        array_head(&b, "general.y", types[i], 1);
        put_zeros(&b, 16);
        snprintf(want, sizeof want, "array element type %u is out of range", types[i]);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key 'general.y'", want);
        bb_free(&b);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, nested_arrays) {
    bb b = {0};
    header(&b, 3, 0, 1);
    array_head(&b, "nest", INFER_GGUF_ARRAY, 1);
    put_u32(&b, INFER_GGUF_UINT8);
    put_u64(&b, 1);
    put_u8(&b, 7);
    EXPECT_REJECT(&b, 0, INFER_EUNSUPPORTED, "key 'nest'", "arrays of arrays");
    /* Nesting without bound: thousands of array headers; no recursion. */
    header(&b, 3, 0, 1);
    array_head(&b, "deep", INFER_GGUF_ARRAY, 1);
    for (int i = 0; i < 10000; i++) {
        put_u32(&b, INFER_GGUF_ARRAY);
        put_u64(&b, 1);
    }
    EXPECT_REJECT(&b, 0, INFER_EUNSUPPORTED, "key 'deep'", "arrays of arrays");
    header(&b, 3, 0, 1);
    array_head(&b, "wide", INFER_GGUF_ARRAY, UINT64_MAX);
    EXPECT_REJECT(&b, 0, INFER_EUNSUPPORTED, "key 'wide'");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 7. keys --------------------------------------------------------------------------------- */

Test(gguf_hostile, empty_key) {
    bb b = {0};
    header(&b, 3, 0, 2);
    kv_u32(&b, "ok", 1);
    kv_u32(&b, "", 1);
    put_zeros(&b, 8); /* 2 entries need at least 42 bytes */
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata key at offset 0x2a is empty");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, duplicate_key) {
    bb b = {0};
    header(&b, 3, 0, 3);
    kv_u32(&b, "llama.block_count", 1);
    kv_str(&b, "general.name", "x");
    kv_u32(&b, "llama.block_count", 2);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata key 'llama.block_count'", "duplicate");
    /* Keys that differ only after a shared prefix or in length are distinct. */
    header(&b, 3, 0, 3);
    kv_u32(&b, "a.b", 1);
    kv_u32(&b, "a.bc", 1);
    kv_u32(&b, "a", 1);
    put_zeros(&b, 8); /* 3 entries need at least 63 bytes */
    EXPECT_OK(&b, 0);
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, key_with_nul_byte) {
    bb b = {0};
    header(&b, 3, 0, 1);
    put_str(&b, "gen\0eral", 8);
    put_u32(&b, INFER_GGUF_UINT8);
    put_u8(&b, 1);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "metadata key 'gen\\x00eral'", "NUL", "offset 0x18");
    /* A key of unprintable bytes is shown escaped in other messages too. */
    header(&b, 3, 0, 1);
    put_str(&b, "\x1b[2J\xff", 5);
    put_u32(&b, 99);
    put_zeros(&b, 4);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "key '\\x1b[2J\\xff'", "value type 99");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 8. general.alignment --------------------------------------------------------------------- */

Test(gguf_hostile, alignment_bad_values) {
    static const uint32_t values[] = {0, 3, 24, 1u << 31, 1u << 17, 0xffffffffu};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        bb b = {0};
        char want[64];
        header(&b, 3, 0, 1);
        kv_u32(&b, "general.alignment", values[i]);
        snprintf(want, sizeof want, "%u is not a power of two", values[i]);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, "general.alignment", want, "offset 0x18");
        bb_free(&b);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, alignment_not_uint32) {
    bb b = {0};
    header(&b, 3, 0, 1);
    put_cstr(&b, "general.alignment");
    put_u32(&b, INFER_GGUF_UINT64);
    put_u64(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "general.alignment", "type uint64, expected uint32");
    header(&b, 3, 0, 1);
    put_cstr(&b, "general.alignment");
    put_u32(&b, INFER_GGUF_INT32);
    put_u32(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "general.alignment", "type int32");
    header(&b, 3, 0, 1);
    kv_str(&b, "general.alignment", "32");
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "general.alignment", "type string");
    header(&b, 3, 0, 1);
    array_head(&b, "general.alignment", INFER_GGUF_UINT32, 1);
    put_u32(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "general.alignment", "type array");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, alignment_extremes_that_are_valid) {
    static const uint32_t values[] = {1, 2, 64, INFER_GGUF_MAX_ALIGNMENT};
    for (size_t i = 0; i < 4; i++) {
        bb b = {0};
        uint32_t a = values[i];
        header(&b, 3, 2, 1);
        kv_u32(&b, "general.alignment", a);
        uint64_t second = a >= 16 ? a : 16;
        TINFO(&b, "a", INFER_TYPE_I8, 0, 3);
        TINFO(&b, "b", INFER_TYPE_I8, second, 5);
        pad_to(&b, a);
        size_t data_at = b.len;
        put(&b, "abc", 3);
        put_zeros(&b, second - 3);
        put(&b, "hello", 5);
        infer_gguf *g = open_ok(&b, 0);
        cr_assert_eq(infer_gguf_alignment(g), a);
        cr_assert_eq(infer_gguf_data_offset(g), data_at);
        cr_assert(memcmp(infer_gguf_tensor_at(g, 1)->data, "hello", 5) == 0);
        infer_gguf_close(g);
        /* Shift the second tensor by one byte: misaligned unless a == 1. */
        header(&b, 3, 2, 1);
        kv_u32(&b, "general.alignment", a);
        TINFO(&b, "a", INFER_TYPE_I8, 0, 3);
        TINFO(&b, "b", INFER_TYPE_I8, second + 1, 5);
        pad_to(&b, a);
        put_zeros(&b, second + 8);
        if (a == 1) EXPECT_OK(&b, 0);
        else EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'b'", "not a multiple of the alignment");
        bb_free(&b);
    }
    LEAK_CHECK();
}

/* ---- 9. tensor names ------------------------------------------------------------------------------ */

Test(gguf_hostile, tensor_name_empty) {
    bb b = {0};
    header(&b, 3, 1, 0);
    tinfo_n(&b, "", 0, 1, (uint64_t[]){8}, INFER_TYPE_F32, 0);
    pad_to(&b, 32);
    put_zeros(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "name is 0 bytes", "offset 0x18");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, tensor_name_64_bytes) {
    char name[65];
    memset(name, 'n', 64);
    name[64] = '\0';
    bb b = {0};
    one_tensor(&b, name, INFER_TYPE_F32, 0, 8, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "name is 64 bytes, must be 1..63");
    name[63] = '\0'; /* 63 is the limit, and fine */
    one_tensor(&b, name, INFER_TYPE_F32, 0, 8, 32);
    EXPECT_OK(&b, 0);
    /* A NUL inside a name. */
    header(&b, 3, 1, 0);
    tinfo_n(&b, "a\0b", 3, 1, (uint64_t[]){8}, INFER_TYPE_F32, 0);
    pad_to(&b, 32);
    put_zeros(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'a\\x00b'", "NUL");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, tensor_name_duplicate) {
    bb b = {0};
    header(&b, 3, 3, 0);
    TINFO(&b, "blk.0.attn_q.weight", INFER_TYPE_F32, 0, 8);
    TINFO(&b, "output.weight", INFER_TYPE_F32, 32, 8);
    TINFO(&b, "blk.0.attn_q.weight", INFER_TYPE_F32, 64, 8);
    pad_to(&b, 32);
    put_zeros(&b, 96);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'blk.0.attn_q.weight'", "duplicate name");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, tensor_name_cut_off_by_end_of_file) {
    bb b = {0};
    header(&b, 3, 1, 0);
    put_u64(&b, 40);
    put(&b, "token_embd.weight", 17);
    put_zeros(&b, 16); /* 33 bytes after the header: passes the count bound */
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor name at offset 0x18", "string length 40");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 10. dimensions ---------------------------------------------------------------------------------- */

Test(gguf_hostile, n_dims_0_and_5) {
    static const uint32_t nd[] = {0, 5, 64, 0xffffffffu};
    for (size_t i = 0; i < 4; i++) {
        bb b = {0};
        char want[64];
        header(&b, 3, 1, 0);
        put_cstr(&b, "w");
        put_u32(&b, nd[i]);
        put_zeros(&b, 64);
        snprintf(want, sizeof want, "n_dims %u, must be 1..4", nd[i]);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", want, "offset 0x21");
        bb_free(&b);
    }
    LEAK_CHECK();
}

Test(gguf_hostile, dimension_0) {
    bb b = {0};
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F32, 0, 8, 2, 0, 3);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "dimension 2 is 0");
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F32, 0, 1ull << 63);
    pad_to(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "dimension 0 is 9223372036854775808");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, dimension_product_overflows) {
    bb b = {0};
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F32, 0, 1ull << 32, 1ull << 32);
    pad_to(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "element count overflows");
    /* The product is 2^63: no uint64 wrap, but past int64. */
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_I8, 0, 1ull << 31, 1ull << 31, 2);
    pad_to(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "element count overflows");
    /* Wraps to exactly 0 in uint64. */
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_I8, 0, 1ull << 16, 1ull << 16, 1ull << 16, 1ull << 16);
    pad_to(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "element count overflows");
    /* v1: 32-bit dims whose product overflows. */
    header(&b, 1, 1, 0);
    TINFO(&b, "w", INFER_TYPE_I8, 0, 0xffffffffu, 0xffffffffu, 0xffffffffu);
    pad_to(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "element count overflows");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, byte_size_overflows) {
    bb b = {0};
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F32, 0, 1ull << 62); /* 2^64 bytes */
    pad_to(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "byte size of 4611686018427387904 f32 values overflows");
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F64, 0, 1ull << 30, 1ull << 31); /* 2^61 × 8 */
    pad_to(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "f64 values overflows");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 11. tensor types ------------------------------------------------------------------------------------ */

Test(gguf_hostile, tensor_type_out_of_range_or_removed) {
    static const uint32_t types[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 41, 1000, 0xffffffffu};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        bb b = {0};
        char want[64];
        one_tensor(&b, "w", types[i], 0, 256, 4096);
        snprintf(want, sizeof want, "type id %u is unknown or was removed", types[i]);
        EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", want);
        bb_free(&b);
    }
    cr_assert(!infer_type_valid(4) && !infer_type_valid(5) && !infer_type_valid(31));
    cr_assert(infer_type_valid(INFER_TYPE_MXFP4) && !infer_type_valid(INFER_TYPE_COUNT));
    LEAK_CHECK();
}

Test(gguf_hostile, row_length_not_a_multiple_of_the_block_size) {
    bb b = {0};
    header(&b, 3, 1, 0);
    TINFO(&b, "blk.0.ffn_down.weight", INFER_TYPE_Q4_0, 0, 48, 2);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'blk.0.ffn_down.weight'",
                  "row length 48 is not a multiple of the q4_0 block size 32");
    /* Blocks across rows: 96 values = 3 blocks = 54 bytes, accepted on request. */
    infer_gguf *g = open_ok(&b, INFER_GGUF_BLOCKS_ACROSS_ROWS);
    cr_assert_eq(infer_gguf_tensor_at(g, 0)->n_bytes, 54);
    infer_gguf_close(g);
    /* ... but not when the whole tensor is not whole blocks. */
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_Q4_0, 0, 48, 3);
    pad_to(&b, 32);
    put_zeros(&b, 128);
    EXPECT_REJECT(&b, INFER_GGUF_BLOCKS_ACROSS_ROWS, INFER_EFORMAT, "tensor 'w'", "row length 48");
    /* K-quants: 256. */
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_Q4_K, 0, 128, 4);
    pad_to(&b, 32);
    put_zeros(&b, 512);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "row length 128", "q4_K block size 256");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 12. sizes near the top of the range --------------------------------------------------------------------- */

Test(gguf_hostile, tensor_byte_size_near_size_max) {
    bb b = {0};
    /* (2^62 - 1) f32 = 2^64 - 4 bytes: rounding that up to 32 would wrap to 0. */
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F32, 0, (1ull << 62) - 1);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "runs past end of file", "0xffffffffffffffff");
    /* 2^63 - 1 bytes at an offset of 2^63: the end wraps. */
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_I8, 1ull << 63, (1ull << 63) - 1);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "runs past end of file");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, sum_of_tensor_sizes_wraps) {
    bb b = {0};
    /* Two tensors of 2^63 bytes each: the total wraps to 0. Each alone is past
     * the end; a reader that summed sizes would see 0 bytes needed. */
    header(&b, 3, 2, 0);
    TINFO(&b, "a", INFER_TYPE_F32, 0, 1ull << 61);
    TINFO(&b, "b", INFER_TYPE_F32, 1ull << 63, 1ull << 61);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'a'", "runs past end of file");
    /* Four of 2^62: same with the first tensor small and valid. */
    header(&b, 3, 3, 0);
    TINFO(&b, "ok", INFER_TYPE_F32, 0, 8);
    TINFO(&b, "c", INFER_TYPE_F32, 32, 1ull << 60);
    TINFO(&b, "d", INFER_TYPE_F32, (1ull << 62) + 32, 3ull << 60);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'c'", "runs past end of file");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 13. offsets ------------------------------------------------------------------------------------------- */

Test(gguf_hostile, offset_misaligned) {
    bb b = {0};
    one_tensor(&b, "w", INFER_TYPE_F32, 4, 8, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "data offset 0x4 is not a multiple of the alignment 32");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, offset_max) {
    bb b = {0};
    one_tensor(&b, "w", INFER_TYPE_F32, UINT64_MAX, 8, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "offset 0xffffffffffffffff");
    /* Aligned, so the range check is what stops it. */
    one_tensor(&b, "w", INFER_TYPE_F32, UINT64_MAX - 31, 8, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "runs past end of file");
    /* With alignment 1, 2^64-1 itself reaches the range check. */
    header(&b, 3, 1, 1);
    kv_u32(&b, "general.alignment", 1);
    TINFO(&b, "w", INFER_TYPE_I8, UINT64_MAX, 1);
    put_zeros(&b, 8);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "runs past end of file");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, offset_past_end_of_file) {
    bb b = {0};
    one_tensor(&b, "w", INFER_TYPE_F32, 1024, 8, 64);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "runs past end of file");
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, offset_overlapping_another_tensor) {
    bb b = {0};
    header(&b, 3, 3, 0);
    TINFO(&b, "a", INFER_TYPE_F32, 0, 16);   /* [0, 64) */
    TINFO(&b, "c", INFER_TYPE_F32, 128, 8);  /* [128, 160) */
    TINFO(&b, "b", INFER_TYPE_F32, 32, 16);  /* [32, 96): overlaps a */
    pad_to(&b, 32);
    put_zeros(&b, 160);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'b'", "overlaps tensor 'a'");
    /* Two tensors at the same offset. */
    header(&b, 3, 2, 0);
    TINFO(&b, "x", INFER_TYPE_F32, 0, 8);
    TINFO(&b, "y", INFER_TYPE_F32, 0, 8);
    pad_to(&b, 32);
    put_zeros(&b, 32);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "overlaps tensor");
    /* Touching is fine: [0, 32) then [32, 64). */
    header(&b, 3, 2, 0);
    TINFO(&b, "x", INFER_TYPE_F32, 32, 8);
    TINFO(&b, "y", INFER_TYPE_F32, 0, 8);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    EXPECT_OK(&b, 0);
    bb_free(&b);
    LEAK_CHECK();
}

Test(gguf_hostile, data_one_byte_short) {
    bb b = {0};
    one_tensor(&b, "w", INFER_TYPE_F32, 0, 8, 31);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "runs past end of file");
    one_tensor(&b, "w", INFER_TYPE_F32, 0, 8, 32);
    EXPECT_OK(&b, 0);
    /* Quantized: q8_0, 2 blocks = 68 bytes. */
    one_tensor(&b, "q", INFER_TYPE_Q8_0, 0, 64, 67);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'q'", "runs past end of file");
    one_tensor(&b, "q", INFER_TYPE_Q8_0, 0, 64, 68);
    EXPECT_OK(&b, 0);
    /* Header ending right before the padding a tensor needs. */
    header(&b, 3, 1, 0);
    TINFO(&b, "w", INFER_TYPE_F32, 0, 8);
    EXPECT_REJECT(&b, 0, INFER_EFORMAT, "tensor 'w'", "runs past end of file");
    bb_free(&b);
    LEAK_CHECK();
}

/* ---- 14. truncation ------------------------------------------------------------------------------------------------ */

/* A v1 file and a v3 file with every kind of entry, cut at every byte. */
static void build_rich(bb *b, uint32_t version) {
    header(b, version, 2, 5);
    kv_str(b, "general.architecture", "llama");
    kv_u32(b, "general.alignment", 64);
    array_head(b, "tokenizer.ggml.tokens", INFER_GGUF_STRING, 3);
    put_cstr(b, "<s>");
    put_cstr(b, "");
    put_cstr(b, "hello");
    array_head(b, "tokenizer.ggml.scores", INFER_GGUF_FLOAT32, 3);
    put_zeros(b, 12);
    put_cstr(b, "x.f64");
    put_u32(b, INFER_GGUF_FLOAT64);
    put_zeros(b, 8);
    TINFO(b, "a", INFER_TYPE_Q8_0, 0, 32, 2);
    TINFO(b, "bb", INFER_TYPE_F32, 128, 4);
    pad_to(b, 64);
    put_zeros(b, 128 + 16);
}

Test(gguf_hostile, truncation_at_every_byte) {
    for (uint32_t v = 1; v <= 3; v += 2) {
        bb b = {0};
        build_rich(&b, v);
        EXPECT_OK(&b, 0);
        for (size_t n = 0; n < b.len; n++) {
            infer_error err;
            infer_status s = open_bytes(b.p, n, 0, &err);
            cr_assert(s == INFER_EFORMAT, "v%u cut at %zu of %zu: %s (%s)", v, n, b.len,
                      infer_status_name(s), err.message);
            check_message(&err);
        }
        bb_free(&b);
    }
    LEAK_CHECK();
}

/* ---- the guards themselves ----------------------------------------------------------------------------------------- */

Test(gguf_hostile, guard_ck_align_up) {
    uint64_t r = 12345;
    cr_assert_eq(ck_align_up(0, 32, &r), 0);
    cr_assert_eq(r, 0);
    cr_assert_eq(ck_align_up(1, 32, &r), 0);
    cr_assert_eq(r, 32);
    cr_assert_eq(ck_align_up(32, 32, &r), 0);
    cr_assert_eq(r, 32);
    cr_assert_eq(ck_align_up(33, 1, &r), 0);
    cr_assert_eq(r, 33);
    cr_assert_eq(ck_align_up(UINT64_MAX - 31, 32, &r), 0); /* already aligned */
    cr_assert_eq(r, UINT64_MAX - 31);
    cr_assert_eq(ck_align_up(UINT64_MAX - 30, 32, &r), 1); /* would wrap to 0 */
    cr_assert_eq(ck_align_up(UINT64_MAX, 32, &r), 1);
    cr_assert_eq(ck_align_up(UINT64_MAX, 1, &r), 0);
    cr_assert_eq(r, UINT64_MAX);
    cr_assert_eq(ck_align_up(UINT64_MAX - 65534, 65536, &r), 1);
    cr_assert_eq(ck_align_up(1ull << 63, 1ull << 63, &r), 0);
    cr_assert_eq(r, 1ull << 63);
    cr_assert_eq(ck_align_up((1ull << 63) + 1, 1ull << 63, &r), 1);
    cr_assert(is_pow2_u64(1) && is_pow2_u64(1ull << 63) && !is_pow2_u64(0) && !is_pow2_u64(3) &&
              !is_pow2_u64(UINT64_MAX));
    LEAK_CHECK();
}

Test(gguf_hostile, guard_ck_mul_and_ck_add) {
    uint64_t r;
    size_t z;
    uint32_t r32;
    cr_assert_eq(ck_mul(UINT64_MAX, (uint64_t)2, &r), 1);
    cr_assert_eq(ck_mul(1ull << 32, 1ull << 32, &r), 1);
    cr_assert_eq(ck_mul(1ull << 32, 1ull << 31, &r), 0);
    cr_assert_eq(r, 1ull << 63);
    cr_assert_eq(ck_mul(UINT64_MAX, (uint64_t)1, &r), 0);
    cr_assert_eq(ck_mul((uint64_t)0, UINT64_MAX, &r), 0);
    cr_assert_eq(r, 0);
    cr_assert_eq(ck_mul((size_t)SIZE_MAX / 3 + 1, (size_t)3, &z), 1);
    cr_assert_eq(ck_mul((uint32_t)65536, (uint32_t)65536, &r32), 1);
    cr_assert_eq(ck_add(UINT64_MAX, (uint64_t)1, &r), 1);
    cr_assert_eq(ck_add(UINT64_MAX - 1, (uint64_t)1, &r), 0);
    cr_assert_eq(r, UINT64_MAX);
    cr_assert_eq(ck_add(1ull << 63, 1ull << 63, &r), 1);
    cr_assert_eq(ck_add((size_t)SIZE_MAX, (size_t)1, &z), 1);
    /* Results wider than the operands are not truncated silently. */
    cr_assert_eq(ck_mul((uint64_t)UINT32_MAX, (uint64_t)UINT32_MAX, &r32), 1);
    /* The allocator's own checks. */
    cr_assert_null(infer_calloc(SIZE_MAX, 2));
    cr_assert_null(infer_malloc_array(SIZE_MAX / 8 + 1, 8));
    LEAK_CHECK();
}

Test(gguf_hostile, guard_infer_type_row_bytes) {
    uint64_t r = 0;
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_F32, (1ull << 62) - 1, &r), INFER_OK);
    cr_assert_eq(r, UINT64_MAX - 3);
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_F32, 1ull << 62, &r), INFER_EFORMAT);
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_F64, UINT64_MAX, &r), INFER_EFORMAT);
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_I8, UINT64_MAX, &r), INFER_OK);
    cr_assert_eq(r, UINT64_MAX);
    /* q8_0: 34 bytes per 32 values, so whole-range counts overflow. */
    uint64_t n = UINT64_MAX - UINT64_MAX % 32;
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_Q8_0, n, &r), INFER_EFORMAT);
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_Q4_0, n, &r), INFER_OK);
    cr_assert_eq(r, n / 32 * 18);
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_Q4_0, 33, &r), INFER_EFORMAT);
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_Q6_K, 256 * 3, &r), INFER_OK);
    cr_assert_eq(r, 3 * 210);
    cr_assert_eq(infer_type_row_bytes(4, 32, &r), INFER_EINVAL);
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_COUNT, 32, &r), INFER_EINVAL);
    cr_assert_eq(infer_type_row_bytes(UINT32_MAX, 32, &r), INFER_EINVAL);
    cr_assert_eq(infer_type_block_size(5), 0);
    cr_assert_str_eq(infer_type_name(31), "?");
    cr_assert_str_eq(infer_gguf_type_name(13), "?");
    cr_assert_eq(infer_gguf_type_size(INFER_GGUF_STRING), 0);
    cr_assert_eq(infer_gguf_type_size(INFER_GGUF_ARRAY), 0);
    cr_assert_eq(infer_gguf_type_size(99), 0);
    LEAK_CHECK();
}

/* ---- the typed getters' errors ------------------------------------------------------------------------------------- */

static infer_gguf *getter_file(void **buf) {
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    size_t size;
    uint8_t u8s[4] = {1, 2, 3, 4};
    const char *strs[] = {"x", "yz"};
    int32_t neg = -5, pos = 7;
    int8_t m1 = -1;
    uint64_t big = 1ull << 40;
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    infer_gguf_writer_set_u32(w, "n.u32", 42);
    infer_gguf_writer_set(w, "n.neg", INFER_GGUF_INT32, &neg);
    infer_gguf_writer_set(w, "n.pos", INFER_GGUF_INT32, &pos);
    infer_gguf_writer_set(w, "n.m1", INFER_GGUF_INT8, &m1);
    infer_gguf_writer_set(w, "n.big", INFER_GGUF_UINT64, &big);
    infer_gguf_writer_set_f32(w, "n.f32", 1.5f);
    infer_gguf_writer_set_str(w, "s", "text", 4);
    infer_gguf_writer_set_arr(w, "a.u8", INFER_GGUF_UINT8, u8s, 4);
    infer_gguf_writer_set_arr_str(w, "a.str", strs, NULL, 2);
    cr_assert_eq(infer_gguf_writer_finish(w, buf, &size, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    infer_gguf *g = NULL;
    cr_assert_eq(infer_gguf_open_memory(*buf, size, 0, &g, &err), INFER_OK, "%s", err.message);
    return g;
}

#define EXPECT_ERR(call, want, ...)                                                         \
    do {                                                                                    \
        infer_error e_ = {0};                                                               \
        infer_error *err = &e_;                                                             \
        infer_status s_ = (call);                                                           \
        cr_assert_eq(s_, (want), "%s: got %s: %s", #call, infer_status_name(s_), e_.message); \
        cr_assert_eq(e_.status, (want));                                                    \
        check_message(&e_);                                                                 \
        const char *const n_[] = {__VA_ARGS__, NULL};                                       \
        for (const char *const *p_ = n_; *p_; p_++)                                         \
            cr_assert(strstr(e_.message, *p_), "%s: message lacks \"%s\": %s", #call, *p_,  \
                      e_.message);                                                          \
    } while (0)

Test(gguf_hostile, getter_missing_key_is_enotfound) {
    void *buf;
    infer_gguf *g = getter_file(&buf);
    uint32_t u32;
    uint64_t u64;
    infer_gguf_str s;
    EXPECT_ERR(infer_gguf_get_u32(g, "llama.block_count", &u32, err), INFER_ENOTFOUND, "llama.block_count");
    EXPECT_ERR(infer_gguf_get_uint(g, "missing", &u64, err), INFER_ENOTFOUND, "missing");
    EXPECT_ERR(infer_gguf_get_str(g, "n.u3", &s, err), INFER_ENOTFOUND, "n.u3"); /* a prefix */
    EXPECT_ERR(infer_gguf_get_str(g, "n.u32x", &s, err), INFER_ENOTFOUND, "n.u32x");
    cr_assert_eq(infer_gguf_find_key(g, ""), -1);
    infer_gguf_close(g);
    free(buf);
    LEAK_CHECK();
}

Test(gguf_hostile, getter_wrong_type_is_eformat_naming_the_key) {
    void *buf;
    infer_gguf *g = getter_file(&buf);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f;
    double d;
    int b;
    infer_gguf_str s;
    EXPECT_ERR(infer_gguf_get_u32(g, "s", &u32, err), INFER_EFORMAT, "key 's'", "string", "uint32");
    EXPECT_ERR(infer_gguf_get_i32(g, "n.u32", &i32, err), INFER_EFORMAT, "key 'n.u32'", "int32");
    EXPECT_ERR(infer_gguf_get_u64(g, "n.u32", &u64, err), INFER_EFORMAT, "key 'n.u32'");
    EXPECT_ERR(infer_gguf_get_f64(g, "n.f32", &d, err), INFER_EFORMAT, "key 'n.f32'", "float64");
    EXPECT_ERR(infer_gguf_get_f32(g, "a.u8", &f, err), INFER_EFORMAT, "key 'a.u8'", "array");
    EXPECT_ERR(infer_gguf_get_bool(g, "n.m1", &b, err), INFER_EFORMAT, "key 'n.m1'", "bool");
    EXPECT_ERR(infer_gguf_get_str(g, "n.u32", &s, err), INFER_EFORMAT, "key 'n.u32'", "string");
    EXPECT_ERR(infer_gguf_get_str(g, "a.str", &s, err), INFER_EFORMAT, "key 'a.str'");
    EXPECT_ERR(infer_gguf_get_uint(g, "s", &u64, err), INFER_EFORMAT, "key 's'");
    EXPECT_ERR(infer_gguf_get_uint(g, "n.f32", &u64, err), INFER_EFORMAT, "key 'n.f32'");
    /* By index, too; STRING and ARRAY are not scalar types. */
    int64_t i = infer_gguf_find_key(g, "s");
    cr_assert(i >= 0);
    uint8_t raw[8];
    EXPECT_ERR(infer_gguf_kv_scalar(g, (uint64_t)i, INFER_GGUF_STRING, raw, err), INFER_EFORMAT, "key 's'");
    EXPECT_ERR(infer_gguf_kv_scalar(g, (uint64_t)i, INFER_GGUF_ARRAY, raw, err), INFER_EFORMAT, "key 's'");
    EXPECT_ERR(infer_gguf_kv_scalar(g, 0, 77, raw, err), INFER_EFORMAT, "key 'n.u32'");
    EXPECT_ERR(infer_gguf_kv_string(g, 0, &s, err), INFER_EFORMAT, "key 'n.u32'");
    /* The right types still work. */
    cr_assert_eq(infer_gguf_get_uint(g, "n.u32", &u64, NULL), INFER_OK);
    cr_assert_eq(u64, 42);
    cr_assert_eq(infer_gguf_get_uint(g, "n.pos", &u64, NULL), INFER_OK);
    cr_assert_eq(u64, 7);
    cr_assert_eq(infer_gguf_get_uint(g, "n.big", &u64, NULL), INFER_OK);
    cr_assert_eq(u64, 1ull << 40);
    infer_gguf_close(g);
    free(buf);
    LEAK_CHECK();
}

Test(gguf_hostile, getter_uint_refuses_negative) {
    void *buf;
    infer_gguf *g = getter_file(&buf);
    uint64_t u64 = 99;
    EXPECT_ERR(infer_gguf_get_uint(g, "n.neg", &u64, err), INFER_EFORMAT, "n.neg", "negative", "-5");
    EXPECT_ERR(infer_gguf_get_uint(g, "n.m1", &u64, err), INFER_EFORMAT, "n.m1", "-1");
    cr_assert_eq(u64, 99, "output written on failure");
    infer_gguf_close(g);
    free(buf);
    LEAK_CHECK();
}

Test(gguf_hostile, getter_array_errors) {
    void *buf;
    infer_gguf *g = getter_file(&buf);
    int64_t iu8 = infer_gguf_find_key(g, "a.u8"), istr = infer_gguf_find_key(g, "a.str");
    int64_t is = infer_gguf_find_key(g, "s");
    uint64_t nkv = infer_gguf_kv_count(g);
    uint8_t dst[8] = {0};
    infer_gguf_str s;
    cr_assert(iu8 >= 0 && istr >= 0 && is >= 0);
    /* Out of range: EINVAL, including first + n wrapping. */
    EXPECT_ERR(infer_gguf_arr_read(g, (uint64_t)iu8, INFER_GGUF_UINT8, 3, 2, dst, err), INFER_EINVAL, "[3, +2)", "4 elements");
    EXPECT_ERR(infer_gguf_arr_read(g, (uint64_t)iu8, INFER_GGUF_UINT8, 5, 0, dst, err), INFER_EINVAL, "4");
    EXPECT_ERR(infer_gguf_arr_read(g, (uint64_t)iu8, INFER_GGUF_UINT8, UINT64_MAX, 2, dst, err), INFER_EINVAL, "outside");
    EXPECT_ERR(infer_gguf_arr_read(g, (uint64_t)iu8, INFER_GGUF_UINT8, 1, UINT64_MAX, dst, err), INFER_EINVAL, "outside");
    EXPECT_ERR(infer_gguf_arr_read(g, nkv, INFER_GGUF_UINT8, 0, 1, dst, err), INFER_EINVAL, "index");
    /* Wrong element type or not an array: EFORMAT naming the key. */
    EXPECT_ERR(infer_gguf_arr_read(g, (uint64_t)iu8, INFER_GGUF_INT8, 0, 1, dst, err), INFER_EFORMAT, "key 'a.u8'", "int8");
    EXPECT_ERR(infer_gguf_arr_read(g, (uint64_t)istr, INFER_GGUF_STRING, 0, 1, dst, err), INFER_EFORMAT, "key 'a.str'");
    EXPECT_ERR(infer_gguf_arr_read(g, (uint64_t)is, INFER_GGUF_UINT8, 0, 1, dst, err), INFER_EFORMAT, "key 's'");
    EXPECT_ERR(infer_gguf_arr_str(g, (uint64_t)iu8, 0, &s, err), INFER_EFORMAT, "key 'a.u8'", "not an array of strings");
    EXPECT_ERR(infer_gguf_arr_str(g, (uint64_t)is, 0, &s, err), INFER_EFORMAT, "key 's'");
    EXPECT_ERR(infer_gguf_arr_str(g, (uint64_t)istr, 2, &s, err), INFER_EINVAL, "2");
    EXPECT_ERR(infer_gguf_arr_str(g, (uint64_t)istr, UINT64_MAX, &s, err), INFER_EINVAL, "18446744073709551615");
    EXPECT_ERR(infer_gguf_arr_str(g, nkv, 0, &s, err), INFER_EINVAL, "index");
    EXPECT_ERR(infer_gguf_kv_scalar(g, nkv, INFER_GGUF_UINT8, dst, err), INFER_EINVAL, "index");
    EXPECT_ERR(infer_gguf_kv_string(g, UINT64_MAX, &s, err), INFER_EINVAL, "index");
    /* Out-of-range indexes in the plain accessors: empty answers. */
    cr_assert_eq(infer_gguf_kv_key(g, nkv).len, 0);
    cr_assert_eq(infer_gguf_kv_type(g, nkv), INFER_GGUF_VALUE_TYPE_COUNT);
    cr_assert_eq(infer_gguf_kv_arr_type(g, (uint64_t)is), INFER_GGUF_VALUE_TYPE_COUNT);
    cr_assert_eq(infer_gguf_kv_arr_count(g, UINT64_MAX), 0);
    cr_assert_null(infer_gguf_tensor_at(g, 0));
    cr_assert_eq(infer_gguf_find_tensor(g, "x"), -1);
    /* In range: fine, and n = 0 at the end is allowed. */
    cr_assert_eq(infer_gguf_arr_read(g, (uint64_t)iu8, INFER_GGUF_UINT8, 1, 3, dst, NULL), INFER_OK);
    cr_assert(dst[0] == 2 && dst[2] == 4);
    cr_assert_eq(infer_gguf_arr_read(g, (uint64_t)iu8, INFER_GGUF_UINT8, 4, 0, dst, NULL), INFER_OK);
    cr_assert_eq(infer_gguf_arr_str(g, (uint64_t)istr, 1, &s, NULL), INFER_OK);
    cr_assert(s.len == 2 && memcmp(s.ptr, "yz", 2) == 0);
    infer_gguf_close(g);
    free(buf);
    LEAK_CHECK();
}

/* escape_bytes stays inside any capacity, even one too small for its
 * ellipsis; utf8_valid_len takes only shortest-form, non-surrogate code
 * points up to U+10FFFF. */
Test(gguf_hostile, escape_and_utf8_helpers) {
    static const char in[] = "\x01" "abc\\def\xff";
    for (size_t cap = 1; cap <= 40; cap++) {
        char buf[48];
        memset(buf, 0x5a, sizeof buf);
        escape_bytes(in, sizeof in - 1, buf, cap);
        cr_assert_lt(strlen(buf), cap, "cap %zu: '%s'", cap, buf);
        for (size_t i = cap; i < sizeof buf; i++) cr_assert_eq(buf[i], 0x5a, "cap %zu: byte %zu written", cap, i);
    }
    char full[64];
    cr_assert_str_eq(escape_bytes(in, sizeof in - 1, full, sizeof full), "\\x01abc\\\\def\\xff");
    static const struct { const char *s; size_t len; } ok[] = {
        {"a", 1}, {"\xc2\x80", 2}, {"\xdf\xbf", 2}, {"\xe0\xa0\x80", 3}, {"\xed\x9f\xbf", 3}, {"\xee\x80\x80", 3},
        {"\xef\xbf\xbf", 3}, {"\xf0\x90\x80\x80", 4}, {"\xf4\x8f\xbf\xbf", 4}};
    static const char *const bad[] = {"\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
                                       "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
                                       "\xc2", "\xe2\x82", "\xc2\x41", "\xe2\x28\xa1"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert_eq(utf8_valid_len((const unsigned char *)ok[i].s, strlen(ok[i].s), 0), ok[i].len, "ok %zu", i);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(utf8_valid_len((const unsigned char *)bad[i], strlen(bad[i]), 0), 0, "bad %zu", i);

    /* A caller's key in a getter's message is escaped like a file's. */
    infer_gguf_writer *w = NULL;
    infer_gguf *g = NULL;
    infer_error err = {0};
    void *buf = NULL;
    size_t size = 0;
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    cr_assert_eq(infer_gguf_writer_set_u32(w, "a", 1), INFER_OK);
    cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, &err), INFER_OK);
    infer_gguf_writer_free(w);
    cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, &err), INFER_OK);
    uint32_t v;
    uint64_t u;
    cr_assert_eq(infer_gguf_get_u32(g, "\x1b[2J\n", &v, &err), INFER_ENOTFOUND);
    cr_assert(strstr(err.message, "'\\x1b[2J\\x0a'"), "%s", err.message);
    cr_assert_eq(infer_gguf_get_uint(g, "\x1b", &u, &err), INFER_ENOTFOUND);
    cr_assert(strstr(err.message, "'\\x1b'"), "%s", err.message);
    infer_gguf_close(g);
    free(buf);
    LEAK_CHECK();
}
