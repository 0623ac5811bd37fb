/* test_gguf_hostile.c - HOSTILE.md section A, one test per case: the
 * file header and the metadata (sections 1-8; the tensor infos, 9-14, are
 * in test_gguf_hostile_tensors.c).
 *
 * Each test builds a malformed file byte by byte (gguf_bytes.h, so a test
 * can write what the project's writer would refuse to), hands an
 * exact-size copy to the reader (memory, and the same bytes through a file
 * with mmap and with read(); gguf_hostile_testutil.h), and asserts the
 * specific status and that the message names the field. Messages must be
 * printable ASCII: bytes from the file are escaped. The guards the reader
 * relies on (checked arithmetic, row byte sizes) and the typed getters'
 * errors are in test_gguf_hostile_guards.c. */
#include <stdint.h>
#include <string.h>

#include "infer_gguf.h"
#include "testutil.h"
#include "gguf_bytes.h"
#include "gguf_hostile_testutil.h"

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
