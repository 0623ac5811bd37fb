/* test_gguf_hostile_guards.c - the guards the GGUF reader relies on
 * (checked arithmetic, alignment, row byte sizes, the allocator's own
 * checks), the typed getters' errors (a missing key is ENOTFOUND, a wrong
 * type EFORMAT naming the key, out-of-range indexes EINVAL; nothing written
 * on failure), and the escaping and UTF-8 helpers that keep messages
 * printable. Suite gguf_hostile, with test_gguf_hostile.c. */
#include <stdint.h>
#include <string.h>

#include "infer_gguf.h"
#include "testutil.h"
#include "util.h"
#include "gguf_hostile_testutil.h"

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
