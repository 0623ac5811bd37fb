/* test_imatrix_hostile.c - infer-quantize's importance-matrix reader
 * (tools/imatrix.c) on well-formed and hostile files.
 *
 *   imatrix_reader  what a good file holds (values divided by ncall, the
 *                   dataset, lookups, --include/--exclude-weights); every
 *                   malformed field refused with its name and byte offset;
 *                   truncation at every byte; allocation failure at every
 *                   allocation, with no leak; the same for the GGUF form
 *                   (sums over counts, its keys and tensor pairs)
 */
#include <float.h>
#include <math.h>

#include "imatrix_bytes.h"
#include "testutil.h"
#include "util.h"
#include "../tools/imatrix.h"

/* Two entries and a tail: "blk.0.attn_q.weight" (ncall 4, 4 values),
 * "output.weight" (ncall 0, 2 values), 10 chunks of "wiki.txt". */
static imx_buf good_file(void) {
    imx_buf b = {0};
    const float q[4] = {4, 8, 2, 0}, o[2] = {1.5f, 3};
    imx_i32(&b, 2);
    imx_entry(&b, "blk.0.attn_q.weight", 4, q, 4);
    imx_entry(&b, "output.weight", 0, o, 2);
    imx_tail(&b, 10, "wiki.txt");
    return b;
}

/* buf must be refused with INFER_EFORMAT, a message holding each of the
 * (NULL-terminated) fragments, nothing returned. */
static void expect_refused(const uint8_t *buf, size_t n, const char *what, const char *const *says) {
    imatrix *m = (imatrix *)(uintptr_t)1;
    infer_error err = {0};
    cr_assert_eq(imatrix_parse(buf, n, &m, &err), INFER_EFORMAT, "%s: accepted", what);
    cr_assert_null(m, "%s: a result left after refusal", what);
    for (size_t i = 0; says[i]; i++)
        cr_expect(strstr(err.message, says[i]) != NULL, "%s: '%s' does not say '%s'", what, err.message, says[i]);
}

#define REFUSED(b, what, ...)                                    \
    do {                                                         \
        const char *says_[] = {__VA_ARGS__, NULL};               \
        expect_refused((b).p, (b).n, (what), says_);             \
        free((b).p);                                             \
    } while (0)

Test(imatrix_reader, good_file_values_divided_by_ncall) {
    imx_buf b = good_file();
    imatrix *m = NULL;
    infer_error err = {0};
    cr_assert_eq(imatrix_parse(b.p, b.n, &m, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(m->n_entries, 2);
    const imatrix_entry *e = imatrix_find(m, "blk.0.attn_q.weight");
    cr_assert_not_null(e);
    cr_assert_eq(e->n, 4);
    cr_expect(e->values[0] == 1 && e->values[1] == 2 && e->values[2] == 0.5f && e->values[3] == 0);
    e = imatrix_find(m, "output.weight"); /* ncall 0: as stored */
    cr_assert_not_null(e);
    cr_expect(e->n == 2 && e->values[0] == 1.5f && e->values[1] == 3);
    cr_expect_null(imatrix_find(m, "output.weigh"));
    cr_expect_null(imatrix_find(m, "blk.0.attn_k.weight"));
    cr_expect_eq(m->chunks, 10);
    cr_expect(m->dataset_len == 8 && !strcmp(m->dataset, "wiki.txt"));
    /* --exclude-weights attn: one left; --include-weights attn on a fresh copy */
    const char *attn[] = {"attn"};
    cr_expect_eq(imatrix_filter(m, attn, 1, 0), 1);
    cr_expect_null(imatrix_find(m, "blk.0.attn_q.weight"));
    cr_expect_not_null(imatrix_find(m, "output.weight"));
    imatrix_free(m);
    cr_assert_eq(imatrix_parse(b.p, b.n, &m, &err), INFER_OK);
    cr_expect_eq(imatrix_filter(m, attn, 1, 1), 1);
    cr_expect_not_null(imatrix_find(m, "blk.0.attn_q.weight"));
    cr_expect_null(imatrix_find(m, "output.weight"));
    imatrix_free(m);
    /* without the tail: no dataset, no chunks */
    imx_buf c = {0};
    const float v = 1;
    imx_i32(&c, 1);
    imx_entry(&c, "a", 1, &v, 1);
    cr_assert_eq(imatrix_parse(c.p, c.n, &m, &err), INFER_OK, "%s", err.message);
    cr_expect(m->dataset == NULL && m->chunks == 0);
    imatrix_free(m);
    free(c.p);
    free(b.p);
    LEAK_CHECK();
}

Test(imatrix_reader, counts_and_lengths_refused_with_their_offsets) {
    const float v[2] = {1, 2};
    static const int32_t bad_counts[] = {0, -1, INT32_MIN, INT32_MAX, 2};
    for (size_t i = 0; i < sizeof bad_counts / sizeof *bad_counts; i++) {
        imx_buf b = {0};
        imx_i32(&b, bad_counts[i]);
        imx_entry(&b, "x", 1, v, 1); /* one entry: 2 promise more than the bytes hold */
        REFUSED(b, "n_entries", "n_entries", "at byte 0");
    }
    static const int32_t bad_len[] = {0, -5, INT32_MIN, 1000};
    for (size_t i = 0; i < sizeof bad_len / sizeof *bad_len; i++) {
        imx_buf b = {0};
        imx_i32(&b, 1);
        imx_i32(&b, bad_len[i]);
        imx_put(&b, "abcd", 4);
        imx_i32(&b, 1);
        imx_i32(&b, 1);
        imx_f32(&b, 1);
        REFUSED(b, "name length", "entry 0", "name length", "at byte 4");
    }
    static const int32_t bad_nval[] = {0, -3, INT32_MIN, INT32_MAX, 3};
    for (size_t i = 0; i < sizeof bad_nval / sizeof *bad_nval; i++) {
        imx_buf b = {0};
        imx_i32(&b, 1);
        imx_i32(&b, 4);
        imx_put(&b, "name", 4);
        imx_i32(&b, 1);
        imx_i32(&b, bad_nval[i]);
        imx_f32(&b, 1);
        imx_f32(&b, 2);
        REFUSED(b, "nval", "entry 0 ('name')", "nval", "at byte 16");
    }
    imx_buf b = {0};
    imx_i32(&b, 1);
    imx_entry(&b, "name", -1, v, 2);
    REFUSED(b, "ncall", "entry 0 ('name')", "ncall -1", "at byte 12", "negative");
}

Test(imatrix_reader, names_nul_bytes_and_duplicates_refused) {
    const float v[1] = {1};
    imx_buf b = {0};
    imx_i32(&b, 1);
    imx_i32(&b, 3);
    imx_put(&b, "a\0b", 3);
    imx_i32(&b, 1);
    imx_i32(&b, 1);
    imx_f32(&b, 1);
    REFUSED(b, "NUL", "entry 0", "name at byte 8", "NUL");
    b = (imx_buf){0};
    imx_i32(&b, 3);
    imx_entry(&b, "blk.0.ffn_up.weight", 1, v, 1);
    imx_entry(&b, "blk.0.ffn_down.weight", 1, v, 1);
    imx_entry(&b, "blk.0.ffn_up.weight", 1, v, 1);
    REFUSED(b, "duplicate", "entry 2 ('blk.0.ffn_up.weight')", "the same name as entry 0");
}

Test(imatrix_reader, non_finite_values_refused) {
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const float v[3] = {1, bad[i], 2};
        imx_buf b = {0};
        imx_i32(&b, 1);
        imx_entry(&b, "w", 2, v, 3);
        REFUSED(b, "value", "entry 0 ('w')", "value 1 at byte 21", "not finite");
    }
}

Test(imatrix_reader, bad_tail_refused) {
    const float v[1] = {1};
    imx_buf head = {0};
    imx_i32(&head, 1);
    imx_entry(&head, "w", 1, v, 1); /* 21 bytes: the tail starts at byte 21 */
    const struct {
        int32_t chunks, len;
        size_t dataset_bytes, extra;
        const char *says0, *says1;
    } cases[] = {
        {-1, 2, 2, 0, "chunk count -1", "at byte 21"},
        {5, -2, 0, 0, "dataset length -2", "at byte 25"},
        {5, 9, 2, 0, "dataset length 9", "past the end"},
        {5, 2, 2, 3, "3 bytes after the dataset", "at byte 31"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        imx_buf b = {0};
        imx_put(&b, head.p, head.n);
        imx_i32(&b, cases[i].chunks);
        imx_i32(&b, cases[i].len);
        imx_put(&b, "ab", cases[i].dataset_bytes);
        imx_put(&b, "xyz", cases[i].extra);
        REFUSED(b, cases[i].says0, cases[i].says0, cases[i].says1);
    }
    free(head.p);
}

Test(imatrix_reader, truncation_at_every_byte_refused) {
    /* Every prefix is refused, except the one that ends where the entries
     * end (a file without the optional tail is complete). */
    imx_buf b = good_file();
    const size_t entries_end = b.n - 16;
    for (size_t n = 0; n < b.n; n++) {
        if (n == entries_end) continue;
        imatrix *m = NULL;
        infer_error err = {0};
        const infer_status st = imatrix_parse(b.p, n, &m, &err);
        cr_assert_eq(st, INFER_EFORMAT, "prefix of %zu bytes: %s", n, err.message);
        cr_assert_null(m);
        cr_assert(strstr(err.message, "truncated") || strstr(err.message, "past the end") ||
                      strstr(err.message, "more values than") || strstr(err.message, "more than the"),
                  "prefix of %zu bytes: %s", n, err.message);
    }
    free(b.p);
    LEAK_CHECK();
}

/* parse buf with the k-th allocation failing, k = 1, 2, ...: INFER_ENOMEM,
 * nothing returned, nothing leaked, until it succeeds with an entry
 * named has; returns that k (1000: never). */
static uint64_t fail_every_allocation(infer_status (*parse)(const uint8_t *, size_t, imatrix **, infer_error *),
                                      const uint8_t *buf, size_t n, const char *has) {
    uint64_t k;
    for (k = 1; k < 1000; k++) {
        imatrix *m = (imatrix *)(uintptr_t)1;
        infer_error err = {0};
        infer_alloc_fail_at(k);
        const infer_status st = parse(buf, n, &m, &err);
        infer_alloc_fail_at(0);
        if (st == INFER_OK) {
            cr_assert_not_null(imatrix_find(m, has));
            imatrix_free(m);
            break;
        }
        cr_assert_eq(st, INFER_ENOMEM, "k=%llu: %s", (unsigned long long)k, err.message);
        cr_assert_null(m, "k=%llu", (unsigned long long)k);
        LEAK_CHECK();
    }
    return k;
}

Test(imatrix_reader, allocation_failure_at_every_allocation) {
    imx_buf b = good_file();
    const uint64_t k = fail_every_allocation(imatrix_parse, b.p, b.n, "output.weight");
    /* the struct, entries, slots, 2 names, 2 value arrays, the dataset */
    cr_expect_eq(k, 9, "succeeded at allocation %llu", (unsigned long long)k);
    free(b.p);
    LEAK_CHECK();
}

Test(imatrix_reader, load_reads_files_and_refuses_others) {
    char dir[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/infer-test-imatrix-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/imatrix.dat", dir);
    imx_buf b = good_file();
    imx_write(&b, path);
    imatrix *m = NULL;
    infer_error err = {0};
    cr_assert_eq(imatrix_load(path, &m, &err), INFER_OK, "%s", err.message);
    cr_expect_eq(m->n_entries, 2);
    imatrix_free(m);
    cr_expect_eq(imatrix_load(dir, &m, &err), INFER_EIO, "a directory");
    cr_expect_null(m);
    snprintf(path, sizeof path, "%s/none.dat", dir);
    cr_expect_eq(imatrix_load(path, &m, &err), INFER_EIO, "a missing file");
    cr_expect_eq(imatrix_load("/dev/null", &m, &err), INFER_EIO, "a device");
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    cr_expect_eq(system(path), 0);
    free(b.p);
    LEAK_CHECK();
}

/* ======================= the GGUF imatrix ========================================= */

/* What a GGUF imatrix holds, each part removable or breakable. */
typedef struct {
    int no_datasets, chunk_count_i32, no_counts, no_sums, f16_sums, short_counts, inf_sum, only_other;
} gguf_imx_spec;

/* A GGUF imatrix: "a.weight" sums 4 x 2 matrices with counts {2, 0} (the
 * second matrix saw no input), "b.weight" 3 x 1 with count 4; datasets
 * {"first.txt", "second.txt"}, 12 chunks of 512. malloc'd bytes. */
static uint8_t *gguf_imatrix(const gguf_imx_spec *sp, size_t *size) {
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    const char *ds[] = {"first.txt", "second.txt"};
    const int32_t twelve = 12;
    if (!sp->no_datasets) infer_gguf_writer_set_arr_str(w, "imatrix.datasets", ds, NULL, 2);
    if (sp->chunk_count_i32) infer_gguf_writer_set(w, "imatrix.chunk_count", INFER_GGUF_INT32, &twelve);
    else infer_gguf_writer_set_u32(w, "imatrix.chunk_count", 12);
    infer_gguf_writer_set_u32(w, "imatrix.chunk_size", 512);
    float a[8] = {2, 4, 6, 8, 5, 6, 7, 8}, ac[2] = {2, 0}, b[3] = {4, 8, 12}, bc[1] = {4};
    const uint16_t a16[8] = {0};
    if (sp->inf_sum) a[2] = INFINITY;
    const uint64_t ane[2] = {4, 2}, acne[2] = {1, sp->short_counts ? 1 : 2}, bne[2] = {3, 1}, bcne[2] = {1, 1};
    if (!sp->only_other) {
        if (sp->f16_sums) infer_gguf_writer_add_tensor(w, "a.weight.in_sum2", INFER_TYPE_F16, 2, ane, a16, sizeof a16);
        else infer_gguf_writer_add_tensor(w, "a.weight.in_sum2", INFER_TYPE_F32, 2, ane, a, sizeof a);
        if (!sp->no_counts)
            infer_gguf_writer_add_tensor(w, "a.weight.counts", INFER_TYPE_F32, 2, acne, ac, sp->short_counts ? 4 : 8);
        if (!sp->no_sums) infer_gguf_writer_add_tensor(w, "b.weight.in_sum2", INFER_TYPE_F32, 2, bne, b, sizeof b);
        infer_gguf_writer_add_tensor(w, "b.weight.counts", INFER_TYPE_F32, 2, bcne, bc, sizeof bc);
    }
    infer_gguf_writer_add_tensor(w, "other", INFER_TYPE_F32, 2, bcne, bc, sizeof bc);
    void *buf = NULL;
    cr_assert_eq(infer_gguf_writer_finish(w, &buf, size, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    return buf;
}

Test(imatrix_reader, gguf_values_are_sums_over_counts) {
    const gguf_imx_spec good = {0};
    size_t n = 0;
    uint8_t *buf = gguf_imatrix(&good, &n);
    imatrix *m = NULL;
    infer_error err = {0};
    cr_assert_eq(imatrix_parse_gguf(buf, n, &m, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(m->n_entries, 2, "one entry per .in_sum2; 'other' ignored");
    const imatrix_entry *a = imatrix_find(m, "a.weight"), *b = imatrix_find(m, "b.weight");
    cr_assert(a && b);
    static const float want_a[8] = {1, 2, 3, 4, 1, 1, 1, 1}; /* matrix 1 saw nothing: 1s, as llama-quantize */
    cr_assert_eq(a->n, 8);
    for (int i = 0; i < 8; i++) cr_expect_eq(a->values[i], want_a[i], "a value %d: %g", i, a->values[i]);
    cr_expect(b->n == 3 && b->values[0] == 1 && b->values[1] == 2 && b->values[2] == 3);
    cr_expect(m->dataset && !strcmp(m->dataset, "first.txt"), "the first dataset is the one recorded");
    cr_expect_eq(m->chunks, 12);
    imatrix_free(m);
    free(buf);
    LEAK_CHECK();
}

Test(imatrix_reader, gguf_malformed_refused) {
    const struct {
        gguf_imx_spec sp;
        const char *says;
    } cases[] = {
        {{.no_datasets = 1}, "imatrix.datasets: missing"},
        {{.chunk_count_i32 = 1}, "imatrix.chunk_count / imatrix.chunk_size: missing or not UINT32"},
        {{.no_counts = 1}, "a.weight.in_sum2 (tensor info at byte "},
        {{.no_sums = 1}, "b.weight.counts (tensor info at byte "},
        {{.f16_sums = 1}, "want F32 sums"},
        {{.short_counts = 1}, "f32 of 1 values"},
        {{.inf_sum = 1}, "a.weight: value 2 (byte "},
        {{.only_other = 1}, "no NAME.in_sum2 tensors (1 tensors)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = 0;
        uint8_t *buf = gguf_imatrix(&cases[i].sp, &n);
        imatrix *m = (imatrix *)(uintptr_t)1;
        infer_error err = {0};
        cr_expect_eq(imatrix_parse_gguf(buf, n, &m, &err), INFER_EFORMAT, "case %zu accepted", i);
        cr_expect_null(m, "case %zu", i);
        cr_expect(strstr(err.message, cases[i].says) != NULL, "case %zu: '%s' does not say '%s'", i, err.message,
                  cases[i].says);
        /* every truncation of the file: the GGUF reader refuses it */
        for (size_t k = 0; k < n && i == 0; k += 7) {
            cr_assert_neq(imatrix_parse_gguf(buf, k, &m, &err), INFER_OK, "cut at %zu", k);
            cr_assert_null(m);
        }
        free(buf);
    }
    LEAK_CHECK();
}

Test(imatrix_reader, gguf_allocation_failure_at_every_allocation) {
    const gguf_imx_spec good = {0};
    size_t n = 0;
    uint8_t *buf = gguf_imatrix(&good, &n);
    const uint64_t k = fail_every_allocation(imatrix_parse_gguf, buf, n, "b.weight");
    cr_expect_gt(k, 8, "succeeded at allocation %llu", (unsigned long long)k); /* the GGUF reader's and ours */
    cr_expect_lt(k, 1000);
    free(buf);
    LEAK_CHECK();
}
