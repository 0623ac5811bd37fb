/* test_gguf_scale.c - the reader on files of many entries: what its
 * memory costs against the file's size (HOSTILE.md: no allocation larger
 * than the file justifies), and the sorted name and range orders it
 * builds (duplicate keys and names, overlapping data, lookups) at every
 * position and at sizes that are not powers of two. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gguf_bytes.h"
#include "infer_gguf.h"
#include "testutil.h"
#include "util.h"

/* Key i as 1-3 bytes, none of them NUL: base-255 digits, so distinct i
 * give distinct keys. Returns the length. */
static size_t small_key(uint64_t i, char k[4]) {
    size_t n = 0;
    do {
        k[n++] = (char)(1 + i % 255);
        i /= 255;
    } while (i && n < 3);
    return n;
}

/* The most the reader holds while it opens b (the caller's memory, so
 * the file itself is not counted), and the handle closed. */
static uint64_t open_peak(const bb *b) {
    infer_gguf *g = NULL;
    infer_error err = {0};
    infer_alloc_track(1);
    infer_status s = infer_gguf_open_memory(b->p, b->len, 0, &g, &err);
    uint64_t peak = infer_alloc_peak();
    infer_alloc_track(0);
    cr_assert_eq(s, INFER_OK, "%s", err.message);
    infer_gguf_close(g);
    return peak;
}

/* 2^20 metadata entries of the smallest kind (a 1-3 byte key and a uint8
 * value: 14-16 bytes in v3, 10-12 in v1): the reader keeps 40 bytes an
 * entry and an 8-byte name order, and sorts with 8 bytes of scratch, so at
 * most ~56 an entry (3.4x a v3 file of them, 4.7x a v1 file), where
 * 72-byte entries sorted as 40-byte items took 120 (7.2x). And 2^20 empty
 * strings in an array: the 16-byte index entry each, 2x their 8 bytes. */
Test(gguf_scale, smallest_entries_cost_at_most_56_bytes_each) {
    const uint64_t n = (uint64_t)1 << 20;
    for (uint32_t version = 1; version <= 3; version += 2) {
        bb b = {0};
        header(&b, version, 0, n);
        for (uint64_t i = 0; i < n; i++) {
            char k[4];
            put_str(&b, k, small_key(i, k));
            put_u32(&b, INFER_GGUF_UINT8);
            put_u8(&b, (uint8_t)i);
        }
        uint64_t peak = open_peak(&b);
        cr_assert_leq(peak, 56 * n + 65536, "v%u: %.4f bytes an entry, %.2fx the file", version, (double)peak / n,
                      (double)peak / b.len);
        bb_free(&b);
    }
    bb b = {0};
    header(&b, 3, 0, 1);
    put_cstr(&b, "a");
    put_u32(&b, INFER_GGUF_ARRAY);
    put_u32(&b, INFER_GGUF_STRING);
    put_count(&b, n);
    for (uint64_t i = 0; i < n; i++) put_count(&b, 0);
    uint64_t peak = open_peak(&b);
    cr_assert_leq(peak, 16 * n + 65536, "%.1f bytes a string", (double)peak / n);
    bb_free(&b);
    LEAK_CHECK();
}

/* n keys "k<i>" (uint32 values), entry dup (if < n) a second copy of
 * entry of. */
static void keys_file(bb *b, uint64_t n, uint64_t of, uint64_t dup, size_t *dup_at) {
    header(b, 3, 0, n);
    for (uint64_t i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%llu", (unsigned long long)(i == dup ? of : i));
        if (i == dup) *dup_at = b->len;
        put_cstr(b, k);
        put_u32(b, INFER_GGUF_UINT32);
        put_u32(b, (uint32_t)i);
    }
}

/* Every key found at its index, for sizes around the merge passes'
 * widths; a duplicate at any pair of positions rejected, naming the key
 * and the second occurrence's offset. */
Test(gguf_scale, keys_sorted_and_duplicates_found_at_any_position) {
    const uint64_t sizes[] = {2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 257, 1000};
    bb b = {0};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        const uint64_t n = sizes[si];
        size_t at = 0;
        keys_file(&b, n, 0, n, &at);
        infer_gguf *g = NULL;
        infer_error err = {0};
        cr_assert_eq(infer_gguf_open_memory(b.p, b.len, 0, &g, &err), INFER_OK, "n %llu: %s",
                     (unsigned long long)n, err.message);
        for (uint64_t i = 0; i < n; i++) {
            char k[32];
            uint32_t v = 0;
            snprintf(k, sizeof k, "k%llu", (unsigned long long)i);
            cr_assert_eq(infer_gguf_find_key(g, k), (int64_t)i, "n %llu, key %s", (unsigned long long)n, k);
            cr_assert_eq(infer_gguf_get_u32(g, k, &v, NULL), INFER_OK);
            cr_assert_eq(v, i);
        }
        cr_assert_eq(infer_gguf_find_key(g, "k"), -1);
        cr_assert_eq(infer_gguf_find_key(g, "zz"), -1);
        infer_gguf_close(g);
        /* Duplicates: every pair in the small files, a spread in the large. */
        const uint64_t step = n <= 33 ? 1 : n / 7;
        for (uint64_t of = 0; of < n; of += step) {
            for (uint64_t dup = of + 1; dup < n; dup += step) {
                char want[64];
                keys_file(&b, n, of, dup, &at);
                cr_assert_eq(infer_gguf_open_memory(b.p, b.len, 0, &g, &err), INFER_EFORMAT, "n %llu, %llu = %llu",
                             (unsigned long long)n, (unsigned long long)dup, (unsigned long long)of);
                snprintf(want, sizeof want, "'k%llu' at offset 0x%zx is a duplicate", (unsigned long long)of, at);
                cr_assert(strstr(err.message, want), "%s (wanted %s)", err.message, want);
            }
        }
    }
    bb_free(&b);
    LEAK_CHECK();
}

/* n F32 tensors of 16 values (64 bytes), in 64-byte data slots in a
 * shuffled order; tensor clash (if < n) starts halfway into tensor onto's
 * data instead (aligned: 32 bytes). */
static void tensors_file(bb *b, uint64_t n, uint64_t clash, uint64_t onto, uint64_t *seed) {
    uint64_t slot[1000];
    cr_assert(n <= 1000);
    for (uint64_t i = 0; i < n; i++) slot[i] = i;
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = test_rng(seed) % i, t = slot[i - 1];
        slot[i - 1] = slot[j];
        slot[j] = t;
    }
    header(b, 3, n, 0);
    for (uint64_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%llu", (unsigned long long)i);
        TINFO(b, name, 0 /* F32 */, i == clash ? 64 * slot[onto] + 32 : 64 * slot[i], 16);
    }
    pad_to(b, 32);
    put_zeros(b, 64 * n + 32);
}

/* Tensors found by name for sizes around the merge widths; one tensor's
 * data overlapping another's rejected, wherever the two lie. */
Test(gguf_scale, tensor_names_sorted_and_overlaps_found_at_any_position) {
    const uint64_t sizes[] = {2, 3, 5, 8, 9, 17, 33, 257, 1000};
    uint64_t seed = 42;
    bb b = {0};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        const uint64_t n = sizes[si];
        infer_gguf *g = NULL;
        infer_error err = {0};
        tensors_file(&b, n, n, 0, &seed);
        cr_assert_eq(infer_gguf_open_memory(b.p, b.len, 0, &g, &err), INFER_OK, "n %llu: %s",
                     (unsigned long long)n, err.message);
        for (uint64_t i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "t%llu", (unsigned long long)i);
            cr_assert_eq(infer_gguf_find_tensor(g, name), (int64_t)i, "n %llu, %s", (unsigned long long)n, name);
        }
        cr_assert_eq(infer_gguf_find_tensor(g, "t"), -1);
        infer_gguf_close(g);
        const uint64_t step = n <= 9 ? 1 : n / 5;
        for (uint64_t clash = 0; clash < n; clash += step) {
            for (uint64_t onto = 0; onto < n; onto += step) {
                if (onto == clash) continue;
                tensors_file(&b, n, clash, onto, &seed);
                cr_assert_eq(infer_gguf_open_memory(b.p, b.len, 0, &g, &err), INFER_EFORMAT, "n %llu, %llu on %llu",
                             (unsigned long long)n, (unsigned long long)clash, (unsigned long long)onto);
                cr_assert(strstr(err.message, "overlaps"), "%s", err.message);
            }
        }
    }
    bb_free(&b);
    LEAK_CHECK();
}
