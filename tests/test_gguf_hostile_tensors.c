/* test_gguf_hostile_tensors.c - HOSTILE.md section A, sections 9-14:
 * the tensor infos (names, dimensions, types, byte sizes near the top of
 * the range, data offsets) and a file cut at every byte. Each test builds
 * a malformed file with gguf_bytes.h and checks, with
 * gguf_hostile_testutil.h, that memory, mmap and read() all reject it with
 * the specific status and a message naming the tensor. Suite gguf_hostile,
 * with test_gguf_hostile.c. */
#include <stdint.h>
#include <string.h>

#include "infer_gguf.h"
#include "testutil.h"
#include "gguf_bytes.h"
#include "gguf_hostile_testutil.h"

/* A valid v3 file with one f32 tensor of 8 values: the base many cases bend. */
static void one_tensor(bb *b, const char *name, uint32_t type, uint64_t offset, uint64_t ne0,
                       size_t data_bytes) {
    header(b, 3, 1, 0);
    TINFO(b, name, type, offset, ne0);
    pad_to(b, 32);
    put_zeros(b, data_bytes);
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

