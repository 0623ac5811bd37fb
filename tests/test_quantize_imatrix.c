/* test_quantize_imatrix.c - quantizing with an importance matrix: the
 * weighted quantizers (kernels/ref/quantize_imatrix.c) and infer-quantize
 * --imatrix (the reader itself: test_imatrix_hostile.c).
 *
 *   quantize_imatrix       the weighted quantizers lower the importance-
 *                          weighted error, stay deterministic and defined
 *                          on hostile values, Q8_0 and no weights take the
 *                          reference path
 *   quantize_imatrix_tool  infer-quantize --imatrix end to end: the
 *                          has_imatrix rule, the quantize.imatrix.* keys, a
 *                          model that decodes, Q2_K_S, hostile matrices
 *                          refused with no file left
 */
#include <float.h>
#include <math.h>
#include <unistd.h>

#include "imatrix_bytes.h"
#include "infer.h"
#include "ref/quants.h"
#include "testutil.h"
#include "quantize_testutil.h"

static const uint32_t W_TYPES[] = {INFER_TYPE_Q4_0, INFER_TYPE_Q4_1, INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q2_K,
                                   INFER_TYPE_Q3_K, INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q6_K};
#define N_W_TYPES (sizeof W_TYPES / sizeof *W_TYPES)

enum { ROW = 1024 }; /* values per row: 4 super-blocks, 32 legacy blocks */

/* sum(qw (dequant(q) - x)^2) over one row quantized into q. */
static double weighted_error(uint32_t type, const uint8_t *q, const float *x, const float *qw) {
    float y[ROW];
    infer_ref_dequantize(type, q, y, ROW);
    double e = 0;
    for (int i = 0; i < ROW; i++) e += (double)qw[i] * ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    return e;
}

/* ======================= the quantizers ======================================= */

Test(quantize_imatrix, weighted_error_lower_than_unweighted) {
    /* Gaussian rows, importances log-normal (a few columns matter 100x
     * more): over 16 rows, the weighted quantizer's importance-weighted
     * error must be clearly below the reference quantizer's (measured
     * ratios 0.26 (Q2_K) to 0.54 (Q5_0)). A quantizer that ignored the
     * weights would give a ratio near 1. */
    enum { ROWS = 16 };
    static float x[ROWS][ROW], qw[ROW];
    static uint8_t q[ROW * 2];
    uint64_t rng = 21;
    for (int i = 0; i < ROW; i++) qw[i] = expf(2.0f * gaussian(&rng));
    for (int r = 0; r < ROWS; r++)
        for (int i = 0; i < ROW; i++) x[r][i] = gaussian(&rng);
    for (size_t t = 0; t < N_W_TYPES; t++) {
        double ew = 0, eu = 0;
        for (int r = 0; r < ROWS; r++) {
            cr_assert_eq(infer_ref_quantize_imatrix(W_TYPES[t], x[r], q, ROW, qw), 0);
            ew += weighted_error(W_TYPES[t], q, x[r], qw);
            cr_assert_eq(infer_ref_quantize(W_TYPES[t], x[r], q, ROW), 0);
            eu += weighted_error(W_TYPES[t], q, x[r], qw);
        }
        cr_log_info("%s: weighted error %.4g with the importances, %.4g without (ratio %.3f)",
                    infer_type_name(W_TYPES[t]), ew, eu, ew / eu);
        cr_expect(ew < 0.7 * eu, "%s: weighted error %.4g not below 0.7 x %.4g", infer_type_name(W_TYPES[t]), ew, eu);
    }
}

Test(quantize_imatrix, uniform_importance_is_no_worse) {
    /* With every importance 1 the weighted quantizers fit plain squared
     * error: not (much) worse than the reference quantizers, which fit
     * their own heuristic weights. */
    static float x[ROW], qw[ROW];
    static uint8_t q[ROW * 2];
    uint64_t rng = 22;
    for (int i = 0; i < ROW; i++) {
        x[i] = gaussian(&rng);
        qw[i] = 1;
    }
    for (size_t t = 0; t < N_W_TYPES; t++) {
        infer_ref_quantize_imatrix(W_TYPES[t], x, q, ROW, qw);
        const double ew = weighted_error(W_TYPES[t], q, x, qw);
        infer_ref_quantize(W_TYPES[t], x, q, ROW);
        const double eu = weighted_error(W_TYPES[t], q, x, qw);
        cr_expect(ew <= 1.05 * eu, "%s: %.4g vs %.4g", infer_type_name(W_TYPES[t]), ew, eu);
    }
}

Test(quantize_imatrix, q8_0_and_absent_weights_take_the_reference_path) {
    static float x[ROW], qw[ROW];
    static uint8_t a[ROW * 2], b[ROW * 2];
    uint64_t rng = 23;
    for (int i = 0; i < ROW; i++) {
        x[i] = gaussian(&rng);
        qw[i] = test_uniform(&rng, 0.1f, 10);
    }
    uint64_t bytes = 0;
    cr_assert_eq(infer_type_row_bytes(INFER_TYPE_Q8_0, ROW, &bytes), INFER_OK);
    infer_ref_quantize_imatrix(INFER_TYPE_Q8_0, x, a, ROW, qw);
    infer_ref_quantize(INFER_TYPE_Q8_0, x, b, ROW);
    cr_expect_eq(memcmp(a, b, bytes), 0, "Q8_0 ignores the importance matrix, as llama.cpp");
    for (size_t t = 0; t < N_W_TYPES; t++) {
        cr_assert_eq(infer_type_row_bytes(W_TYPES[t], ROW, &bytes), INFER_OK);
        infer_ref_quantize_imatrix(W_TYPES[t], x, a, ROW, NULL);
        infer_ref_quantize(W_TYPES[t], x, b, ROW);
        cr_expect_eq(memcmp(a, b, bytes), 0, "%s: no weights is the reference quantizer", infer_type_name(W_TYPES[t]));
        infer_ref_quantize_imatrix(W_TYPES[t], x, a, ROW, qw);
        cr_expect_neq(memcmp(a, b, bytes), 0, "%s: the weights change nothing", infer_type_name(W_TYPES[t]));
    }
    cr_expect_eq(infer_ref_quantize_imatrix(INFER_TYPE_Q8_K, x, a, ROW, qw), 0);
    cr_expect_eq(infer_ref_quantize_imatrix(INFER_TYPE_COUNT, x, a, ROW, qw), -1);
}

/* Quantize x twice with qw: the same bytes both times. */
static void quantize_twice(uint32_t type, const float *x, const float *qw, uint8_t *a, const char *what) {
    static uint8_t b[ROW * 2];
    uint64_t bytes = 0;
    cr_assert_eq(infer_type_row_bytes(type, ROW, &bytes), INFER_OK);
    memset(a, 0x55, bytes);
    memset(b, 0xaa, bytes);
    cr_assert_eq(infer_ref_quantize_imatrix(type, x, a, ROW, qw), 0);
    cr_assert_eq(infer_ref_quantize_imatrix(type, x, b, ROW, qw), 0);
    cr_assert_eq(memcmp(a, b, bytes), 0, "%s %s: not deterministic", infer_type_name(type), what);
}

Test(quantize_imatrix, deterministic_and_defined_on_hostile_values) {
    /* Zero rows give zeros; denormal rows ~0; large ones finite; NaN and
     * inf rows stay defined (UBSan checks every float->int conversion);
     * all deterministic. Importances zero and denormal in places (qw), or
     * also huge (qw_huge: weights then overflow to inf with large values,
     * in llama.cpp as here: defined and deterministic is all that is
     * asked). A K-quant super-block poisoned by NaN leaves the next one as
     * it would be alone (the 32-value types weigh by the whole row: there
     * one NaN reaches every block, as in llama.cpp). */
    static float x[ROW], y[ROW], qw[ROW], qw_huge[ROW];
    static uint8_t a[ROW * 2], alone[ROW * 2];
    uint64_t rng = 24;
    for (int i = 0; i < ROW; i++) {
        qw[i] = i % 7 == 0 ? 0.0f : i % 13 == 0 ? 1e-40f : test_uniform(&rng, 0.1f, 5);
        qw_huge[i] = i % 11 == 0 ? 1e30f : qw[i];
    }
    for (size_t t = 0; t < N_W_TYPES; t++) {
        const uint32_t ty = W_TYPES[t];
        const char *nm = infer_type_name(ty);
        memset(x, 0, sizeof x);
        quantize_twice(ty, x, qw, a, "zeros");
        infer_ref_dequantize(ty, a, y, ROW);
        for (int i = 0; i < ROW; i++) cr_assert_eq(y[i], 0.0f, "%s zeros: value %d is %g", nm, i, y[i]);
        for (int i = 0; i < ROW; i++) x[i] = test_uniform(&rng, -1, 1) * 1e-40f;
        quantize_twice(ty, x, qw, a, "denormals");
        infer_ref_dequantize(ty, a, y, ROW);
        for (int i = 0; i < ROW; i++) cr_assert(fabsf(y[i]) <= 1e-30f, "%s denormal %g -> %g", nm, x[i], y[i]);
        for (int i = 0; i < ROW; i++) x[i] = test_uniform(&rng, -1, 1) * 3e4f; /* f16 scales stay finite */
        quantize_twice(ty, x, qw, a, "large");
        infer_ref_dequantize(ty, a, y, ROW);
        for (int i = 0; i < ROW; i++) cr_assert(isfinite(y[i]), "%s large %g -> %g", nm, x[i], y[i]);
        quantize_twice(ty, x, qw_huge, a, "large, huge importances");
        for (int i = 0; i < ROW; i++) x[i] = (i % 3 == 0) ? FLT_MAX : (i % 3 == 1) ? -FLT_MAX : 1.0f;
        x[5] = INFINITY;
        x[77] = NAN;
        x[78] = -INFINITY;
        for (int i = 256; i < ROW; i++) x[i] = test_uniform(&rng, -1, 1);
        quantize_twice(ty, x, qw_huge, a, "NaN and inf, huge importances");
        quantize_twice(ty, x, qw, a, "NaN and inf");
        if (infer_type_block_size(ty) != 256) continue;
        const uint32_t bb = infer_type_block_bytes(ty);
        uint64_t rest = 0;
        cr_assert_eq(infer_type_row_bytes(ty, ROW - 256, &rest), INFER_OK);
        /* blocks 1..3 of the row against the same three quantized as a row of their own */
        cr_assert_eq(infer_ref_quantize_imatrix(ty, x + 256, alone, ROW - 256, qw + 256), 0);
        cr_assert_eq(memcmp(a + bb, alone, rest), 0, "%s: a poisoned super-block leaked into the next", nm);
    }
}

/* ======================= infer-quantize --imatrix ================================ */

static void write_imatrix_both(const char *model_path, const char *path, const char *skip, const char *gguf_path);

/* The legacy file alone. */
static void write_imatrix_for(const char *model_path, const char *path, const char *skip) {
    write_imatrix_both(model_path, path, skip, NULL);
}

/* An imatrix file for every 2-D weight of the model at model_path (ne[0]
 * values each, log-normal, ncall 3, 7 chunks of "synthetic.txt"), written
 * to path; skip names a tensor to leave out (NULL: none). The same matrix
 * in the GGUF form (NAME.in_sum2 the stored sums, NAME.counts 3) at
 * gguf_path unless NULL. */
static void write_imatrix_both(const char *model_path, const char *path, const char *skip, const char *gguf_path) {
    infer_gguf *g = test_open_gguf(model_path);
    infer_gguf_writer *w = NULL;
    cr_assert_eq(infer_gguf_writer_new(&w, NULL), INFER_OK);
    const char *ds = "synthetic.txt";
    const float three = 3;
    infer_gguf_writer_set_arr_str(w, "imatrix.datasets", &ds, NULL, 1);
    infer_gguf_writer_set_u32(w, "imatrix.chunk_count", 7);
    infer_gguf_writer_set_u32(w, "imatrix.chunk_size", 512);
    imx_buf b = {0};
    int32_t n = 0;
    uint64_t rng = 31;
    imx_i32(&b, 0); /* patched below */
    for (uint64_t i = 0; i < infer_gguf_tensor_count(g); i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        char name[INFER_GGUF_MAX_NAME + 1];
        test_tensor_name(t, name);
        if (t->n_dims < 2 || (skip && !strcmp(name, skip))) continue;
        float *v = malloc(t->ne[0] * sizeof *v);
        cr_assert_not_null(v);
        for (uint64_t j = 0; j < t->ne[0]; j++) v[j] = 3 * expf(gaussian(&rng));
        imx_entry(&b, name, 3, v, (int32_t)t->ne[0]);
        char tn[INFER_GGUF_MAX_NAME + 16]; /* name + suffix; the writer refuses over 63 bytes */
        const uint64_t ne[2] = {t->ne[0], 1}, one[2] = {1, 1};
        snprintf(tn, sizeof tn, "%s.in_sum2", name);
        infer_gguf_writer_add_tensor(w, tn, INFER_TYPE_F32, 2, ne, v, t->ne[0] * sizeof *v);
        snprintf(tn, sizeof tn, "%s.counts", name);
        infer_gguf_writer_add_tensor(w, tn, INFER_TYPE_F32, 2, one, &three, sizeof three);
        free(v);
        n++;
    }
    imx_tail(&b, 7, ds);
    memcpy(b.p, &n, 4); /* little-endian host, as the tests' machines are */
    imx_write(&b, path);
    free(b.p);
    infer_error err = {0};
    if (gguf_path) cr_assert_eq(infer_gguf_writer_write_file(w, gguf_path, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    infer_gguf_close(g);
}

/* A new temporary dir holding f16.gguf: 8 layers (the first eighth is
 * layer 0), 1 KV head for 4 (n_gqa 4), n_ff 512; imx and q name a matrix
 * and an output beside it (600 bytes each). */
static void tool_setup(char dir[64], char *f16, char *imx, char *q) {
    temp_dir(dir, 64);
    synth_f16(dir, "f16.gguf", f16, "8", "1", "512", "320");
    snprintf(imx, 600, "%s/imatrix.dat", dir);
    snprintf(q, 600, "%s/q.gguf", dir);
}

/* path: a matrix of one entry, name with n values v (ncall 1). */
static void write_one_entry(imx_buf *b, const char *path, const char *name, const float *v, int32_t n) {
    b->n = 0;
    imx_i32(b, 1);
    imx_entry(b, name, 1, v, n);
    imx_write(b, path);
}

typedef struct {
    const char *name;
    uint32_t type;
} tensor_type;

/* Each tensor of want[0..n) has its type in g. */
static void expect_types(infer_gguf *g, const tensor_type *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(type_of(g, want[i].name), want[i].type, "%s: %s is %s", what, want[i].name,
                     infer_type_name(type_of(g, want[i].name)));
}

/* Key key of g as int32 (it must be one). */
static int32_t key_i32(infer_gguf *g, const char *key) {
    const int64_t i = infer_gguf_find_key(g, key);
    cr_assert_geq(i, 0, "no %s", key);
    cr_assert_eq(infer_gguf_kv_type(g, (uint64_t)i), INFER_GGUF_INT32, "%s", key);
    int32_t v = 0;
    cr_assert_eq(infer_gguf_kv_scalar(g, (uint64_t)i, INFER_GGUF_INT32, &v, NULL), INFER_OK);
    return v;
}

static void expect_key_str(infer_gguf *g, const char *key, const char *want) {
    infer_gguf_str s;
    cr_assert_eq(infer_gguf_get_str(g, key, &s, NULL), INFER_OK, "no %s", key);
    cr_expect(s.len == strlen(want) && !memcmp(s.ptr, want, s.len), "%s: '%.*s', want '%s'", key, (int)s.len, s.ptr,
              want);
}

Test(quantize_imatrix_tool, q4_0_with_imatrix_loads_decodes_and_records_it, .timeout = TEST_TIMEOUT) {
    char dir[64], f16[600], imx[600], q[600], plain[600];
    tool_setup(dir, f16, imx, q);
    snprintf(plain, sizeof plain, "%s/plain.gguf", dir);
    write_imatrix_for(f16, imx, NULL);
    const char *args[] = {f16, q, "Q4_0", "--imatrix", imx, NULL};
    infer_gguf *g = quantize_ok(dir, args);
    const char *pargs[] = {f16, plain, "Q4_0", NULL};
    infer_gguf *p = quantize_ok(dir, pargs);
    /* has_imatrix: ffn_down of the first eighth (layer 0 of 8) in Q4_1,
     * only with the matrix */
    static const tensor_type with[] = {{"blk.0.ffn_down.weight", INFER_TYPE_Q4_1},
                                       {"blk.1.ffn_down.weight", INFER_TYPE_Q4_0},
                                       {"output.weight", INFER_TYPE_Q6_K}},
                             without[] = {{"blk.0.ffn_down.weight", INFER_TYPE_Q4_0}};
    expect_types(g, with, 3, "Q4_0 --imatrix");
    expect_types(p, without, 1, "Q4_0");
    /* the matrix changed the weights' bytes (the quantizer is its own
     * test above); token_embd has no entry in a real matrix but has here */
    const infer_gguf_tensor *a = infer_gguf_tensor_at(g, (uint64_t)infer_gguf_find_tensor(g, "blk.3.attn_q.weight"));
    const infer_gguf_tensor *b = infer_gguf_tensor_at(p, (uint64_t)infer_gguf_find_tensor(p, "blk.3.attn_q.weight"));
    cr_assert_eq(a->n_bytes, b->n_bytes);
    cr_expect_neq(memcmp(a->data, b->data, a->n_bytes), 0, "the importance matrix was not used");
    /* llama-quantize's keys, after general.file_type */
    expect_key_str(g, "quantize.imatrix.file", imx);
    expect_key_str(g, "quantize.imatrix.dataset", "synthetic.txt");
    cr_expect_eq(key_i32(g, "quantize.imatrix.chunks_count"), 7);
    const int32_t n_entries = key_i32(g, "quantize.imatrix.entries_count");
    cr_expect_eq(n_entries, 8 * 7 + 2, "7 weights a layer, token_embd and output");
    cr_expect_gt(infer_gguf_find_key(g, "quantize.imatrix.file"), infer_gguf_find_key(g, "general.file_type"));
    cr_expect_lt(infer_gguf_find_key(p, "quantize.imatrix.file"), 0, "no keys without --imatrix");
    infer_gguf_close(g);
    infer_gguf_close(p);
    /* it loads and decodes, every logit finite */
    const int32_t prompt[] = {1, 300, 17, 261, 290, 5};
    int32_t gen[4];
    free(decode_greedy(q, prompt, 6, 4, gen));
    remove_dir(dir);
}

Test(quantize_imatrix_tool, filters_and_q2_k_s_as_llama_quantize, .timeout = TEST_TIMEOUT) {
    char dir[64], f16[600], imx[600], q[600];
    tool_setup(dir, f16, imx, q);
    write_imatrix_for(f16, imx, NULL);
    /* --exclude-weights: fewer entries recorded */
    const char *ex[] = {f16, q, "Q4_K_M", "--imatrix", imx, "--exclude-weights", "ffn_", NULL};
    infer_gguf *g = quantize_ok(dir, ex);
    cr_expect_eq(key_i32(g, "quantize.imatrix.entries_count"), 8 * 4 + 2);
    infer_gguf_close(g);
    /* Q2_K_S: refused without a matrix (exit 1), made with one: n_gqa 4
     * gives attn_v Q4_K, the first eighth of ffn_down Q4_K */
    const char *no[] = {f16, q, "Q2_K_S", NULL};
    remove(q);
    cr_expect_eq(run_tool("infer-quantize", dir, no), 1);
    cr_expect_neq(access(q, F_OK), 0);
    const char *with[] = {f16, q, "Q2_K_S", "--imatrix", imx, NULL};
    g = quantize_ok(dir, with);
    static const tensor_type q2_k_s[] = {
        {"blk.3.attn_q.weight", INFER_TYPE_Q2_K},   {"blk.3.attn_v.weight", INFER_TYPE_Q4_K},
        {"blk.0.ffn_down.weight", INFER_TYPE_Q4_K}, {"blk.1.ffn_down.weight", INFER_TYPE_Q2_K},
        {"output.weight", INFER_TYPE_Q6_K},
    };
    expect_types(g, q2_k_s, sizeof q2_k_s / sizeof *q2_k_s, "Q2_K_S");
    uint32_t ft = 0;
    cr_expect_eq(infer_gguf_get_u32(g, "general.file_type", &ft, NULL), INFER_OK);
    cr_expect_eq(ft, 21);
    infer_gguf_close(g);
    /* a Q2_K tensor without an entry: refused, as llama-quantize does */
    write_imatrix_for(f16, imx, "blk.5.ffn_up.weight");
    expect_refused(dir, with, "blk.5.ffn_up.weight: no importance matrix entry");
    /* but token_embd may lack one */
    write_imatrix_for(f16, imx, "token_embd.weight");
    g = quantize_ok(dir, with);
    infer_gguf_close(g);
    remove_dir(dir);
}

Test(quantize_imatrix_tool, hostile_matrices_refused_with_no_file, .timeout = TEST_TIMEOUT) {
    char dir[64], f16[600], imx[600], q[600];
    tool_setup(dir, f16, imx, q);
    const char *args[] = {f16, q, "Q4_K_M", "--imatrix", imx, NULL};
    static float ones[512];
    const float nan1[2] = {1, NAN};
    for (int i = 0; i < 512; i++) ones[i] = 1;
    imx_buf b = {0};
    /* the wrong size for a weight (llama-quantize refuses it) */
    write_one_entry(&b, imx, "blk.2.attn_k.weight", ones, 255);
    expect_refused(dir, args, "blk.2.attn_k.weight: the importance matrix has 255 values for it, the tensor wants 256");
    /* but token_embd of the wrong size is quantized without (as there) */
    write_one_entry(&b, imx, "token_embd.weight", ones, 512);
    infer_gguf_close(quantize_ok(dir, args));
    /* what the reader refuses, through the tool */
    write_one_entry(&b, imx, "blk.0.attn_q.weight", nan1, 2);
    expect_refused(dir, args, "value 1 at byte");
    b.n = 0;
    imx_i32(&b, 2);
    imx_entry(&b, "w", 1, ones, 1);
    imx_entry(&b, "w", 1, ones, 1);
    imx_write(&b, imx);
    expect_refused(dir, args, "entry 1 ('w') at byte 21: the same name as entry 0");
    b.n = 3;
    imx_write(&b, imx);
    expect_refused(dir, args, "n_entries at byte 0: truncated");
    b.n = 0;
    imx_i32(&b, -4);
    imx_write(&b, imx);
    expect_refused(dir, args, "n_entries -4 at byte 0");
    snprintf(imx, sizeof imx, "%s/none.dat", dir);
    expect_refused(dir, args, "cannot open");
    free(b.p);
    remove_dir(dir);
}

Test(quantize_imatrix_tool, gguf_matrix_quantizes_as_the_legacy_one, .timeout = TEST_TIMEOUT) {
    /* The same matrix as a GGUF file (sums and counts) and as a legacy one
     * (sums and ncall): the same tensors, the same recorded keys but the
     * file's name. */
    char dir[64], f16[600], imx[600], q[600], gimx[600], gq[600];
    tool_setup(dir, f16, imx, q);
    snprintf(gimx, sizeof gimx, "%s/imatrix.gguf", dir);
    snprintf(gq, sizeof gq, "%s/gq.gguf", dir);
    write_imatrix_both(f16, imx, NULL, gimx);
    const char *a1[] = {f16, q, "Q3_K_M", "--imatrix", imx, NULL}, *a2[] = {f16, gq, "Q3_K_M", "--imatrix", gimx, NULL};
    infer_gguf *g1 = quantize_ok(dir, a1), *g2 = quantize_ok(dir, a2);
    cr_assert_eq(infer_gguf_tensor_count(g1), infer_gguf_tensor_count(g2));
    for (uint64_t i = 0; i < infer_gguf_tensor_count(g1); i++) {
        const infer_gguf_tensor *t1 = infer_gguf_tensor_at(g1, i), *t2 = infer_gguf_tensor_at(g2, i);
        cr_assert(t1->type == t2->type && t1->n_bytes == t2->n_bytes);
        cr_expect_eq(memcmp(t1->data, t2->data, t1->n_bytes), 0, "tensor %llu differs", (unsigned long long)i);
    }
    expect_key_str(g2, "quantize.imatrix.file", gimx);
    expect_key_str(g2, "quantize.imatrix.dataset", "synthetic.txt");
    cr_expect_eq(key_i32(g2, "quantize.imatrix.chunks_count"), 7);
    cr_expect_eq(key_i32(g2, "quantize.imatrix.entries_count"), key_i32(g1, "quantize.imatrix.entries_count"));
    infer_gguf_close(g1);
    infer_gguf_close(g2);
    remove_dir(dir);
}
