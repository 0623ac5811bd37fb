/* test_quantize.c - the K-quant weight quantizers (kernels/ref/quantize_k.c)
 * and the tools built on them: infer-quantize and infer-synth.
 *
 *   quantize_k       round trip error bounds on random data, zero and
 *                    degenerate blocks, hostile values (UBSan watches the
 *                    float->int conversions), blocks independent of each other
 *   quantize_k_real  byte-identity with llama-quantize's files (../shared)
 *   quantize_tool    infer-quantize against llama-quantize's files: legacy
 *                    and K types with --pure byte for byte, the Q4_K_M /
 *                    Q5_K_M tensor types, metadata, fallbacks, refusals
 *   quantize_synth   infer-synth shapes and presets, a synthetic model
 *                    through infer-quantize into infer_model_load and decode,
 *                    the Q3_K_M / Q3_K_L types on a 16-layer one, the
 *                    output / token-embedding type options, and tied
 *                    embeddings
 *
 * The tools run as programs found next to $INFER_BIN (set by `make test`);
 * those tests skip without it. */
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "infer.h"
#include "ref/quants.h"
#include "testutil.h"

static const uint32_t K_TYPES[] = {INFER_TYPE_Q2_K, INFER_TYPE_Q3_K, INFER_TYPE_Q4_K,
                                   INFER_TYPE_Q5_K, INFER_TYPE_Q6_K};
#define N_K_TYPES (sizeof K_TYPES / sizeof *K_TYPES)

/* ||dequant(quant(x)) - x|| / ||x|| over n values. */
static double rel_rms_error(uint32_t type, const float *x, int64_t n) {
    uint64_t bytes = 0;
    cr_assert_eq(infer_type_row_bytes(type, (uint64_t)n, &bytes), INFER_OK);
    uint8_t *q = malloc(bytes);
    float *y = malloc((size_t)n * sizeof *y);
    cr_assert(q && y);
    cr_assert_eq(infer_ref_quantize(type, x, q, n), 0, "%s", infer_type_name(type));
    infer_ref_dequantize(type, q, y, n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    return sx > 0 ? sqrt(se / sx) : sqrt(se);
}

static float gaussian(uint64_t *rng) {
    double u1 = ((double)(test_rng(rng) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(test_rng(rng) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ======================= the quantizers ======================================= */

Test(quantize_k, round_trip_error_within_bounds) {
    /* Relative RMS error bounds, uniform [-1, 1) and N(0, 1) data: about
     * step / 2 / sqrt(3) of each type's levels, with margin. Measured:
     * uniform q2 0.26 q3 0.14 q4 0.069 q5 0.034 q6 0.017; gaussian about
     * 10% higher. A wrong layout or scale gives ~1. */
    static const double bound[N_K_TYPES] = {0.36, 0.20, 0.095, 0.047, 0.024};
    enum { N = 256 * 32 };
    static float xu[N], xg[N];
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) xu[i] = test_uniform(&rng, -1, 1);
    for (int i = 0; i < N; i++) xg[i] = gaussian(&rng);
    for (size_t t = 0; t < N_K_TYPES; t++) {
        const double eu = rel_rms_error(K_TYPES[t], xu, N), eg = rel_rms_error(K_TYPES[t], xg, N);
        cr_log_info("%s: relative RMS error uniform %.4f, gaussian %.4f", infer_type_name(K_TYPES[t]), eu, eg);
        cr_expect(eu <= bound[t], "%s uniform: %.4f > %.4f", infer_type_name(K_TYPES[t]), eu, bound[t]);
        cr_expect(eg <= bound[t] * 1.2, "%s gaussian: %.4f > %.4f", infer_type_name(K_TYPES[t]), eg, bound[t] * 1.2);
    }
}

Test(quantize_k, skewed_and_sparse_blocks_stay_accurate) {
    /* All-positive, all-negative, offset and one-spike blocks exercise the
     * minimum (Q2/Q4/Q5_K) and the sign of the scale (Q3/Q6_K). */
    enum { N = 256 * 4 };
    static float x[N];
    uint64_t rng = 11;
    for (int i = 0; i < 256; i++) x[i] = test_uniform(&rng, 0.5f, 1.0f);
    for (int i = 256; i < 512; i++) x[i] = -test_uniform(&rng, 0.0f, 3.0f);
    for (int i = 512; i < 768; i++) x[i] = 10.0f + test_uniform(&rng, -0.1f, 0.1f);
    for (int i = 768; i < 1024; i++) x[i] = (i == 900) ? -50.0f : test_uniform(&rng, -0.01f, 0.01f);
    static const double bound[N_K_TYPES] = {0.30, 0.20, 0.06, 0.03, 0.02};
    for (size_t t = 0; t < N_K_TYPES; t++) {
        const double e = rel_rms_error(K_TYPES[t], x, N);
        cr_expect(e <= bound[t], "%s: %.4f > %.4f", infer_type_name(K_TYPES[t]), e, bound[t]);
    }
}

Test(quantize_k, zero_blocks_give_zero) {
    float x[512] = {0}, y[512];
    uint8_t b[2 * 210];
    for (size_t t = 0; t < N_K_TYPES; t++) {
        memset(b, 0xaa, sizeof b);
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 512), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 512);
        for (int i = 0; i < 512; i++) cr_assert_eq(y[i], 0.0f, "%s value %d", infer_type_name(K_TYPES[t]), i);
    }
    /* Q6_K writes an all-zero block as all-zero bytes, as llama.cpp does */
    infer_ref_quantize(INFER_TYPE_Q6_K, x, b, 256);
    for (int i = 0; i < 210; i++) cr_assert_eq(b[i], 0, "q6_K byte %d", i);
}

Test(quantize_k, constant_block_is_exact_enough) {
    float x[256], y[256];
    uint8_t b[210];
    for (size_t t = 0; t < N_K_TYPES; t++) {
        for (int i = 0; i < 256; i++) x[i] = 0.75f;
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 256), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 256);
        for (int i = 0; i < 256; i++)
            cr_assert(fabsf(y[i] - 0.75f) <= 0.75f * 0.02f, "%s: %g", infer_type_name(K_TYPES[t]), y[i]);
    }
}

Test(quantize_k, survive_denormal_huge_and_nan_input) {
    /* Denormals make 1/scale overflow, NaN and inf poison the searches: the
     * result must stay defined (UBSan checks every float->int conversion),
     * denormal blocks come back as ~0 and finite blocks beside a poisoned
     * one are untouched. */
    float x[512], y[512], ref[256];
    uint8_t b[2 * 210], rb[210];
    uint64_t rng = 5;
    for (size_t t = 0; t < N_K_TYPES; t++) {
        for (int i = 0; i < 256; i++) x[i] = test_uniform(&rng, -1, 1) * 1e-40f;
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 256), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 256);
        for (int i = 0; i < 256; i++)
            cr_assert(fabsf(y[i]) <= 1e-30f, "%s: denormal %g -> %g", infer_type_name(K_TYPES[t]), x[i], y[i]);
        for (int i = 0; i < 256; i++) x[i] = (i % 3 == 0) ? FLT_MAX : (i % 3 == 1) ? -FLT_MAX : 1.0f;
        x[5] = INFINITY;
        x[77] = NAN;
        x[78] = -INFINITY;
        for (int i = 256; i < 512; i++) ref[i - 256] = x[i] = test_uniform(&rng, -1, 1);
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 512), 0);
        infer_ref_dequantize(K_TYPES[t], b, y, 512);
        infer_ref_quantize(K_TYPES[t], ref, rb, 256);
        const uint32_t bb = infer_type_block_bytes(K_TYPES[t]);
        cr_assert_eq(memcmp(b + bb, rb, bb), 0, "%s: a poisoned block leaked into the next", infer_type_name(K_TYPES[t]));
        for (int i = 0; i < 256; i++) x[i] = (i & 1) ? 3e38f : -3e38f;
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, b, 256), 0);
    }
}

Test(quantize_k, blocks_are_independent) {
    /* Quantizing a row equals quantizing each super-block alone. */
    enum { NB = 5 };
    static float x[256 * NB];
    static uint8_t whole[210 * NB], one[210];
    uint64_t rng = 13;
    for (int i = 0; i < 256 * NB; i++) x[i] = gaussian(&rng) * (1 + i / 256);
    for (size_t t = 0; t < N_K_TYPES; t++) {
        const uint32_t bb = infer_type_block_bytes(K_TYPES[t]);
        cr_assert_eq(infer_ref_quantize(K_TYPES[t], x, whole, 256 * NB), 0);
        for (int k = 0; k < NB; k++) {
            infer_ref_quantize(K_TYPES[t], x + 256 * k, one, 256);
            cr_assert_eq(memcmp(whole + (size_t)bb * k, one, bb), 0, "%s block %d", infer_type_name(K_TYPES[t]), k);
        }
    }
}

/* ======================= llama.cpp's files (../shared) ============================= */

static const struct {
    const char *file;
    const char *type;
} K_FILES[] = {{"q2_k", "Q2_K"}, {"q3_k_s", "Q3_K_S"}, {"q4_k_s", "Q4_K_S"}, {"q5_k_s", "Q5_K_S"}, {"q6_k", "Q6_K"}};

Test(quantize_k_real, k_quantizers_reproduce_llama_quantize_bytes) {
    /* rand-small-<k>.gguf: llama-quantize --pure of rand-small-f32. Every
     * super-block of every 2-D tensor must be identical (floor: 100%), and
     * the dequantized error equal to the file's. */
    char path[512];
    SHARED_OR_SKIP(path, "models/rand-small-f32.gguf");
    infer_gguf *f32 = test_open_gguf(path);
    for (size_t k = 0; k < sizeof K_FILES / sizeof *K_FILES; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/rand-small-%s.gguf", K_FILES[k].file);
        SHARED_OR_SKIP(path, rel);
        infer_gguf *g = test_open_gguf(path);
        uint64_t blocks = 0, same = 0;
        double se_mine = 0, se_theirs = 0, sx = 0;
        for (uint64_t i = 0; i < infer_gguf_tensor_count(f32); i++) {
            const infer_gguf_tensor *t = infer_gguf_tensor_at(f32, i);
            char name[INFER_GGUF_MAX_NAME + 1];
            if (t->n_dims != 2) continue;
            const infer_gguf_tensor *q = test_same_named(g, t, name, K_FILES[k].file);
            const uint32_t bb = infer_type_block_bytes(q->type);
            uint8_t *mine = malloc(q->n_bytes);
            float *ym = malloc(t->n_elements * sizeof(float)), *yt = malloc(t->n_elements * sizeof(float));
            cr_assert(mine && ym && yt);
            cr_assert_eq(infer_ref_quantize(q->type, t->data, mine, (int64_t)t->n_elements), 0);
            for (uint64_t b = 0; b < q->n_bytes / bb; b++, blocks++)
                same += memcmp(mine + b * bb, (const uint8_t *)q->data + b * bb, bb) == 0;
            infer_ref_dequantize(q->type, mine, ym, (int64_t)t->n_elements);
            infer_ref_dequantize(q->type, q->data, yt, (int64_t)t->n_elements);
            const float *x = t->data;
            for (uint64_t j = 0; j < t->n_elements; j++) {
                se_mine += ((double)ym[j] - x[j]) * ((double)ym[j] - x[j]);
                se_theirs += ((double)yt[j] - x[j]) * ((double)yt[j] - x[j]);
                sx += (double)x[j] * x[j];
            }
            free(mine);
            free(ym);
            free(yt);
        }
        const double em = sqrt(se_mine / sx), et = sqrt(se_theirs / sx);
        fprintf(stderr, "quantize_k_real: %-6s %llu/%llu super-blocks identical to llama-quantize, RMS error %.5f (file %.5f)\n",
                K_FILES[k].file, (unsigned long long)same, (unsigned long long)blocks, em, et);
        cr_expect_eq(same, blocks, "%s: %llu of %llu blocks differ", K_FILES[k].file,
                     (unsigned long long)(blocks - same), (unsigned long long)blocks);
        cr_expect(fabs(em - et) <= 0.01 * et, "%s: RMS error %.5f vs llama.cpp's %.5f", K_FILES[k].file, em, et);
        infer_gguf_close(g);
    }
    infer_gguf_close(f32);
}

/* ======================= running the tools ======================================== */

/* $INFER_BIN's directory + "/" + tool, or skip. */
static void tool_path(char *out, size_t cap, const char *tool) {
    test_tool_bin(out, cap, tool);
    if (access(out, X_OK) != 0) cr_skip_test("%s is not built", out);
}

/* A fresh directory for one test's files. */
static void temp_dir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/infer-test-quantize-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Run tool with args (NULL-terminated), stdout and stderr to dir/out.txt
 * and dir/err.txt; returns the exit status (128 + signal when killed). */
static int run_tool(const char *tool, const char *dir, const char *const *args) {
    char exe[600], out[600], err[600];
    const char *argv[32];
    size_t n = 0;
    tool_path(exe, sizeof exe, tool);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    argv[n++] = exe;
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt(n, 31, "too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* dir/err.txt (malloc'd, NUL-terminated). */
static char *tool_stderr(const char *dir) {
    char path[600];
    size_t n;
    snprintf(path, sizeof path, "%s/err.txt", dir);
    char *s = read_file(path, &n);
    cr_assert_not_null(s);
    return s;
}

static void quantize_shared(const char *dir, const char *type, int pure, char *out, size_t cap) {
    char in[512];
    SHARED_OR_SKIP(in, "models/rand-small-f32.gguf");
    snprintf(out, cap, "%s/%s%s.gguf", dir, type, pure ? "-pure" : "");
    const char *args[] = {in, out, type, pure ? "--pure" : NULL, NULL};
    int rc = run_tool("infer-quantize", dir, args);
    char *e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "infer-quantize %s: exit %d: %s", type, rc, e);
    free(e);
}

/* Every tensor of a is in b (by name) with the same type, shape and, when
 * bytes is set, the same bytes; b has no others. */
static void expect_same_tensors(const char *what, infer_gguf *a, infer_gguf *b, int bytes) {
    cr_assert_eq(infer_gguf_tensor_count(a), infer_gguf_tensor_count(b), "%s: tensor count", what);
    for (uint64_t i = 0; i < infer_gguf_tensor_count(a); i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(a, i);
        char name[INFER_GGUF_MAX_NAME + 1];
        const infer_gguf_tensor *u = test_same_named(b, t, name, what);
        cr_expect_eq(t->type, u->type, "%s %s: %s, llama.cpp: %s", what, name, infer_type_name(t->type),
                     infer_type_name(u->type));
        cr_expect_eq(t->n_dims, u->n_dims, "%s %s: dims", what, name);
        for (uint32_t d = 0; d < t->n_dims; d++) cr_expect_eq(t->ne[d], u->ne[d], "%s %s: ne[%u]", what, name, d);
        if (bytes && t->type == u->type && t->n_bytes == u->n_bytes)
            cr_expect_eq(memcmp(t->data, u->data, t->n_bytes), 0, "%s %s: bytes differ from llama-quantize's", what, name);
    }
}

/* Same keys in the same order, same values except the ones listed. */
static void expect_same_metadata(const char *what, infer_gguf *a, infer_gguf *b) {
    cr_assert_eq(infer_gguf_kv_count(a), infer_gguf_kv_count(b), "%s: kv count", what);
    for (uint64_t i = 0; i < infer_gguf_kv_count(a); i++) {
        infer_gguf_str ka = infer_gguf_kv_key(a, i), kb = infer_gguf_kv_key(b, i);
        cr_assert(ka.len == kb.len && !memcmp(ka.ptr, kb.ptr, ka.len), "%s: key %llu is %.*s, llama.cpp's %.*s",
                  what, (unsigned long long)i, (int)ka.len, ka.ptr, (int)kb.len, kb.ptr);
        cr_expect_eq(infer_gguf_kv_type(a, i), infer_gguf_kv_type(b, i), "%s: type of %.*s", what, (int)ka.len, ka.ptr);
    }
    uint32_t fa = 0, fb = 1, qa = 0;
    cr_expect_eq(infer_gguf_get_u32(a, "general.file_type", &fa, NULL), INFER_OK);
    cr_expect_eq(infer_gguf_get_u32(b, "general.file_type", &fb, NULL), INFER_OK);
    cr_expect_eq(fa, fb, "%s: general.file_type %u, llama.cpp's %u", what, fa, fb);
    cr_expect_eq(infer_gguf_get_u32(a, "general.quantization_version", &qa, NULL), INFER_OK);
    cr_expect_eq(qa, 2);
    infer_gguf_str sa, sb;
    cr_expect_eq(infer_gguf_get_str(a, "general.description", &sa, NULL), INFER_OK);
    cr_expect_eq(infer_gguf_get_str(b, "general.description", &sb, NULL), INFER_OK);
    cr_expect(sa.len == sb.len && !memcmp(sa.ptr, sb.ptr, sa.len), "%s: description not copied", what);
    const int64_t ta = infer_gguf_find_key(a, "tokenizer.ggml.tokens");
    const int64_t tb = infer_gguf_find_key(b, "tokenizer.ggml.tokens");
    cr_assert(ta >= 0 && tb >= 0);
    cr_expect_eq(infer_gguf_kv_arr_count(a, (uint64_t)ta), infer_gguf_kv_arr_count(b, (uint64_t)tb));
}

Test(quantize_tool, pure_types_byte_identical_to_llama_quantize, .timeout = 60) {
    /* Q8_0 and Q4_0 are the promise; the other types hold too (Q4_K, Q5_K
     * and Q6_K through the mixtures' test, to keep this one short). */
    static const struct {
        const char *file, *type;
    } files[] = {{"q8_0", "Q8_0"}, {"q4_0", "Q4_0"}, {"q4_1", "Q4_1"},     {"q5_0", "Q5_0"},
                 {"q5_1", "Q5_1"}, {"q2_k", "Q2_K"}, {"q3_k_s", "Q3_K_S"}, {"f16", "F16"},
                 {"bf16", "BF16"}};
    char dir[64], out[600], ref[512];
    temp_dir(dir, sizeof dir);
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/rand-small-%s.gguf", files[k].file);
        SHARED_OR_SKIP(ref, rel);
        quantize_shared(dir, files[k].type, 1, out, sizeof out);
        infer_gguf *a = test_open_gguf(out), *b = test_open_gguf(ref);
        expect_same_tensors(files[k].file, a, b, 1);
        expect_same_metadata(files[k].file, a, b);
        infer_gguf_close(a);
        infer_gguf_close(b);
    }
    remove_dir(dir);
}

Test(quantize_tool, mixtures_match_llama_quantize_types, .timeout = 60) {
    /* Q4_K_M / Q5_K_M as llama.cpp assigns them: output.weight, and attn_v
     * and ffn_down of layer 1 (use_more_bits of 2 layers) in Q6_K. */
    static const struct {
        const char *file, *type;
    } files[] = {{"q4_k_m", "Q4_K_M"}, {"q5_k_m", "Q5_K_M"}};
    char dir[64], out[600], ref[512];
    temp_dir(dir, sizeof dir);
    for (size_t k = 0; k < 2; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/rand-small-%s.gguf", files[k].file);
        SHARED_OR_SKIP(ref, rel);
        quantize_shared(dir, files[k].type, 0, out, sizeof out);
        infer_gguf *a = test_open_gguf(out), *b = test_open_gguf(ref);
        expect_same_tensors(files[k].file, a, b, 1);
        expect_same_metadata(files[k].file, a, b);
        static const char *const q6[] = {"output.weight", "blk.1.attn_v.weight", "blk.1.ffn_down.weight"};
        for (int i = 0; i < 3; i++)
            cr_expect_eq(infer_gguf_tensor_at(a, (uint64_t)infer_gguf_find_tensor(a, q6[i]))->type, INFER_TYPE_Q6_K, "%s", q6[i]);
        infer_gguf_close(a);
        infer_gguf_close(b);
    }
    remove_dir(dir);
}

Test(quantize_tool, tensor_order_kept_and_norms_copied) {
    char dir[64], out[600], in[512];
    temp_dir(dir, sizeof dir);
    SHARED_OR_SKIP(in, "models/rand-small-f32.gguf");
    quantize_shared(dir, "Q4_0", 0, out, sizeof out);
    infer_gguf *a = test_open_gguf(out), *f = test_open_gguf(in);
    cr_assert_eq(infer_gguf_tensor_count(a), infer_gguf_tensor_count(f));
    for (uint64_t i = 0; i < infer_gguf_tensor_count(f); i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(f, i), *u = infer_gguf_tensor_at(a, i);
        cr_assert(t->name.len == u->name.len && !memcmp(t->name.ptr, u->name.ptr, t->name.len), "tensor %llu",
                  (unsigned long long)i);
        if (t->n_dims == 1) {
            cr_expect_eq(u->type, INFER_TYPE_F32);
            cr_expect_eq(memcmp(t->data, u->data, t->n_bytes), 0);
        }
    }
    /* without --pure, output.weight is Q6_K even in a Q4_0 file */
    cr_expect_eq(infer_gguf_tensor_at(a, (uint64_t)infer_gguf_find_tensor(a, "output.weight"))->type, INFER_TYPE_Q6_K);
    cr_expect_eq(infer_gguf_tensor_at(a, (uint64_t)infer_gguf_find_tensor(a, "token_embd.weight"))->type, INFER_TYPE_Q4_0);
    infer_gguf_close(a);
    infer_gguf_close(f);
    remove_dir(dir);
}

Test(quantize_tool, rows_not_whole_blocks_fall_back_and_say_so) {
    /* stories260K: rows of 64 (not whole 256-value blocks) and ffn_down
     * rows of 172 (not even 32). Q4_K -> Q5_0, Q6_K -> Q8_0, and F16 where
     * no fallback fits. */
    char dir[64], in[512], out[600];
    SHARED_OR_SKIP(in, "models/stories260K.gguf");
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/s.gguf", dir);
    const char *args[] = {in, out, "Q4_K_M", NULL};
    cr_assert_eq(run_tool("infer-quantize", dir, args), 0);
    char *e = tool_stderr(dir);
    cr_expect(strstr(e, "blk.0.ffn_down.weight: rows of 172 values are not whole q4_K blocks (256): using f16") != NULL, "%s", e);
    cr_expect(strstr(e, "blk.0.attn_q.weight: rows of 64 values are not whole q4_K blocks (256): using q5_0") != NULL, "%s", e);
    free(e);
    infer_gguf *g = test_open_gguf(out);
    static const struct {
        const char *name;
        uint32_t type;
    } want[] = {
        {"token_embd.weight", INFER_TYPE_Q5_0},   {"blk.0.attn_q.weight", INFER_TYPE_Q5_0},
        {"blk.0.ffn_down.weight", INFER_TYPE_F16}, {"output.weight", INFER_TYPE_Q8_0},
        /* 5 layers: use_more_bits picks 2 ((2 - 5/8) % 3 == 2) and 4 (>= 7*5/8):
         * Q6_K, which falls back to Q8_0 */
        {"blk.2.attn_v.weight", INFER_TYPE_Q8_0},  {"blk.4.attn_v.weight", INFER_TYPE_Q8_0},
        {"blk.0.attn_v.weight", INFER_TYPE_Q5_0},  {"blk.1.attn_v.weight", INFER_TYPE_Q5_0},
        {"blk.0.attn_norm.weight", INFER_TYPE_F32},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int64_t j = infer_gguf_find_tensor(g, want[i].name);
        cr_assert_geq(j, 0, "%s", want[i].name);
        cr_expect_eq(infer_gguf_tensor_at(g, (uint64_t)j)->type, want[i].type, "%s: %s", want[i].name,
                     infer_type_name(infer_gguf_tensor_at(g, (uint64_t)j)->type));
    }
    infer_gguf_close(g);
    /* and the result runs */
    infer_model *m = NULL;
    infer_error err;
    cr_assert_eq(infer_model_load(out, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_model_release(m);
    remove_dir(dir);
}

Test(quantize_tool, bad_input_and_usage_are_refused) {
    char dir[64], in[600], out[600], trunc[600];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    const char *none[] = {NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, none), 1);
    const char *bad_type[] = {"a.gguf", out, "Q7_X", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, bad_type), 1);
    const char *missing[] = {"/nonexistent/x.gguf", out, "Q4_0", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, missing), 2);
    char *e = tool_stderr(dir);
    cr_expect(strstr(e, "/nonexistent/x.gguf") != NULL, "%s", e);
    free(e);
    SHARED_OR_SKIP(in, "models/rand-small-f32.gguf");
    /* a truncated file is refused by the reader; no output is left */
    size_t n;
    char *bytes = read_file(in, &n);
    cr_assert_not_null(bytes);
    snprintf(trunc, sizeof trunc, "%s/trunc.gguf", dir);
    FILE *f = fopen(trunc, "wb");
    cr_assert_not_null(f);
    fwrite(bytes, 1, n / 2, f);
    fclose(f);
    free(bytes);
    const char *tr[] = {trunc, out, "Q4_0", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, tr), 2);
    cr_expect_neq(access(out, F_OK), 0, "no output for a rejected input");
    /* the output may not be the input */
    const char *same[] = {trunc, trunc, "Q4_0", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, same), 1);
    /* GGUF v1 input is read and written as v3 */
    char v1[512];
    if (shared_path(v1, sizeof v1, "models/tinyllamas-stories-260k-f32.gguf")) {
        const char *a1[] = {v1, out, "Q8_0", NULL};
        cr_expect_eq(run_tool("infer-quantize", dir, a1), 0);
        infer_gguf *g = test_open_gguf(out);
        cr_expect_eq(infer_gguf_version(g), 3);
        infer_gguf_close(g);
    }
    remove_dir(dir);
}

Test(quantize_tool, alignment_kept_and_every_tensor_read_back) {
    /* A file with general.alignment 64, odd-sized 1-D tensors between the
     * matrices and a 3-D one: the streamed output keeps the alignment and
     * each tensor's bytes are the reference quantizer's. */
    char dir[64], in[600], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(in, sizeof in, "%s/in.gguf", dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    static float a[256 * 3], b[7], c[64 * 2 * 2], d[256 * 2];
    uint64_t rng = 21;
    for (size_t i = 0; i < sizeof a / sizeof *a; i++) a[i] = gaussian(&rng);
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) b[i] = gaussian(&rng);
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) c[i] = gaussian(&rng);
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) d[i] = gaussian(&rng);
    infer_gguf_writer *w = NULL;
    infer_error err;
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    infer_gguf_writer_set_str(w, "general.architecture", "llama", 5);
    infer_gguf_writer_set_alignment(w, 64);
    infer_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", INFER_TYPE_F32, 2, (uint64_t[]){256, 3}, a, sizeof a);
    infer_gguf_writer_add_tensor(w, "odd.bias", INFER_TYPE_F32, 1, (uint64_t[]){7}, b, sizeof b);
    infer_gguf_writer_add_tensor(w, "blk.0.ffn_up_exps.weight", INFER_TYPE_F32, 3, (uint64_t[]){64, 2, 2}, c, sizeof c);
    infer_gguf_writer_add_tensor(w, "blk.1.attn_q.weight", INFER_TYPE_F32, 2, (uint64_t[]){256, 2}, d, sizeof d);
    cr_assert_eq(infer_gguf_writer_write_file(w, in, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    const char *args[] = {in, out, "Q4_0", "--pure", NULL};
    int rc = run_tool("infer-quantize", dir, args);
    char *e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    infer_gguf *g = test_open_gguf(out);
    cr_expect_eq(infer_gguf_alignment(g), 64);
    cr_assert_eq(infer_gguf_tensor_count(g), 4);
    static const char *const names[] = {"blk.0.attn_q.weight", "odd.bias", "blk.0.ffn_up_exps.weight", "blk.1.attn_q.weight"};
    static const float *const src[] = {a, b, c, d};
    static const uint32_t type[] = {INFER_TYPE_Q4_0, INFER_TYPE_F32, INFER_TYPE_Q4_0, INFER_TYPE_Q4_0};
    for (int i = 0; i < 4; i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, (uint64_t)i);
        char name[INFER_GGUF_MAX_NAME + 1];
        test_tensor_name(t, name);
        cr_expect_str_eq(name, names[i]);
        cr_expect_eq(t->type, type[i], "%s: %s", names[i], infer_type_name(t->type));
        cr_expect_eq(t->offset % 64, 0);
        uint8_t want[4096];
        cr_assert_leq(t->n_bytes, sizeof want);
        cr_assert_eq(infer_ref_quantize(type[i], src[i], want, (int64_t)t->n_elements), 0);
        cr_expect_eq(memcmp(t->data, want, t->n_bytes), 0, "%s: bytes", names[i]);
    }
    infer_gguf_close(g);
    remove_dir(dir);
}

/* ======================= infer-synth ============================================ */

/* dir/out.txt (malloc'd, NUL-terminated). */
static char *tool_stdout(const char *dir) {
    char path[600];
    size_t n;
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *s = read_file(path, &n);
    cr_assert_not_null(s);
    return s;
}

Test(quantize_synth, presets_have_the_models_shapes) {
    char dir[64], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/t.gguf", dir);
    static const struct {
        const char *preset, *shapes;
    } presets[] = {
        {"tinyllama-1.1b", "n_embd 2048, 22 layers, 32/4 heads, n_ff 5632, vocab 32000, ctx 2048, q4_0"},
        {"llama-7b", "n_embd 4096, 32 layers, 32/32 heads, n_ff 11008, vocab 32000, ctx 4096, q4_0"},
    };
    for (size_t i = 0; i < 2; i++) {
        const char *args[] = {out, "--preset", presets[i].preset, "--type", "Q4_0", "--dry-run", NULL};
        cr_assert_eq(run_tool("infer-synth", dir, args), 0);
        char *o = tool_stdout(dir);
        cr_expect(strstr(o, presets[i].shapes) != NULL, "%s: %s", presets[i].preset, o);
        free(o);
        cr_expect_neq(access(out, F_OK), 0, "--dry-run wrote a file");
    }
    remove_dir(dir);
}

Test(quantize_synth, options_override_the_preset) {
    char dir[64], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/t.gguf", dir);
    /* TinyLlama's KV heads and context, the rest made small */
    const char *args[] = {out, "--n-embd", "512", "--preset", "tinyllama-1.1b", "--n-head", "8", "--n-layer", "1",
                          "--n-ff", "256", "--n-vocab", "300", "--type", "Q8_0", "--seed", "3", NULL};
    int rc = run_tool("infer-synth", dir, args);
    char *e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    infer_gguf *g = test_open_gguf(out);
    static const struct {
        const char *key;
        uint64_t v;
    } want[] = {{"llama.embedding_length", 512},     {"llama.block_count", 1},
                {"llama.attention.head_count", 8},   {"llama.attention.head_count_kv", 4},
                {"llama.feed_forward_length", 256},  {"llama.context_length", 2048}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        uint64_t v = 0;
        cr_expect_eq(infer_gguf_get_uint(g, want[i].key, &v, NULL), INFER_OK, "%s", want[i].key);
        cr_expect_eq(v, want[i].v, "%s = %llu", want[i].key, (unsigned long long)v);
    }
    const infer_gguf_tensor *t = infer_gguf_tensor_at(g, (uint64_t)infer_gguf_find_tensor(g, "blk.0.attn_k.weight"));
    cr_expect_eq(t->type, INFER_TYPE_Q8_0);
    cr_expect_eq(t->ne[1], 256); /* 4 KV heads of 64 */
    const int64_t tok = infer_gguf_find_key(g, "tokenizer.ggml.tokens");
    cr_assert_geq(tok, 0);
    cr_expect_eq(infer_gguf_kv_arr_count(g, (uint64_t)tok), 300);
    infer_gguf_close(g);
    remove_dir(dir);
}

Test(quantize_synth, bad_options_are_refused) {
    char dir[64], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/t.gguf", dir);
    const char *const bad[][6] = {
        {out, "--type", "Q4_K_M", NULL},        /* a mixture: infer-quantize's job */
        {out, "--type", "Q4_K", NULL},          /* n_embd 32: not whole 256-value blocks */
        {out, "--n-head", "3", NULL},           /* does not divide n_embd */
        {out, "--n-head", "32", "--n-head-kv", "32", NULL}, /* head size 1: the loader refuses odd rope dims */
        {out, "--n-vocab", "100", NULL},        /* below the 259 fixed tokens */
        {out, "--n-embd", "0", NULL},
        {out, "--n-layer", "99999999999", NULL},
        {out, "--preset", "gpt-5", NULL},
        {out, "--arch", "gpt2", NULL},
        {out, "--bogus", "1", NULL},
        {out, "--seed", NULL},
        {out, "--seed", " -1", NULL},           /* strtoull would wrap it */
        {out, "--std", "1e-60", NULL},          /* 0 as a float */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(run_tool("infer-synth", dir, bad[i]), 1, "case %zu (%s %s)", i, bad[i][1], bad[i][2] ? bad[i][2] : "");
        cr_expect_neq(access(out, F_OK), 0, "case %zu wrote a file", i);
    }
    remove_dir(dir);
}

/* Greedy next token after decoding ids. */
static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Decode the prompt ids, keep its logits (malloc'd, n_vocab floats), then
 * generate n_gen greedy tokens into out, checking every logit is finite. */
static float *decode_greedy(const char *path, const int32_t *ids, size_t n_ids, int n_gen, int32_t *out) {
    infer_model *m = NULL;
    infer_context *c = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_model_load(path, NULL, &m, &err), INFER_OK, "%s: %s", path, err.message);
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    const int32_t nv = infer_model_n_vocab(m);
    cr_assert_eq(infer_decode(c, ids, n_ids, 0, &err), INFER_OK, "%s", err.message);
    float *first = malloc((size_t)nv * sizeof(float));
    cr_assert_not_null(first);
    memcpy(first, infer_logits(c), (size_t)nv * sizeof(float));
    for (int i = 0; i < n_gen; i++) {
        const float *l = infer_logits(c);
        for (int32_t k = 0; k < nv; k++) cr_assert(isfinite(l[k]), "%s: logit %d of step %d", path, k, i);
        out[i] = argmax(l, nv);
        cr_assert_eq(infer_decode(c, &out[i], 1, 0, &err), INFER_OK, "%s", err.message);
    }
    infer_context_free(c);
    infer_model_release(m);
    return first;
}

static double cosine(const float *a, const float *b, int n) {
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return dot / sqrt(na * nb);
}

Test(quantize_synth, synthetic_model_through_quantize_loads_and_decodes, .timeout = 60) {
    /* infer-synth (F16) -> infer-quantize Q4_K_M -> infer_model_load ->
     * decode: the mixture's types, and logits close to the F16 model's. */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    snprintf(f16, sizeof f16, "%s/f16.gguf", dir);
    snprintf(q, sizeof q, "%s/q4km.gguf", dir);
    const char *sargs[] = {f16, "--n-embd", "256", "--n-layer", "4", "--n-head", "4", "--n-head-kv", "2",
                           "--n-ff", "512", "--n-vocab", "320", "--type", "F16", NULL};
    int rc = run_tool("infer-synth", dir, sargs);
    char *e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "infer-synth: %s", e);
    free(e);
    const char *qargs[] = {f16, q, "Q4_K_M", NULL};
    rc = run_tool("infer-quantize", dir, qargs);
    e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "infer-quantize: %s", e);
    free(e);

    infer_gguf *g = test_open_gguf(q);
    /* 4 layers: use_more_bits picks layer 3 (>= 7*4/8) and 2 ((2 - 4/8) % 3
     * == 2); the first eighth (4/8 = 0 layers) is empty */
    static const struct {
        const char *name;
        uint32_t type;
    } want[] = {
        {"output.weight", INFER_TYPE_Q6_K},         {"token_embd.weight", INFER_TYPE_Q4_K},
        {"blk.0.attn_v.weight", INFER_TYPE_Q4_K},   {"blk.1.attn_v.weight", INFER_TYPE_Q4_K},
        {"blk.2.attn_v.weight", INFER_TYPE_Q6_K},   {"blk.3.attn_v.weight", INFER_TYPE_Q6_K},
        {"blk.2.ffn_down.weight", INFER_TYPE_Q6_K}, {"blk.1.ffn_down.weight", INFER_TYPE_Q4_K},
        {"blk.3.ffn_up.weight", INFER_TYPE_Q4_K},   {"blk.3.ffn_norm.weight", INFER_TYPE_F32},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int64_t j = infer_gguf_find_tensor(g, want[i].name);
        cr_assert_geq(j, 0, "%s", want[i].name);
        cr_expect_eq(infer_gguf_tensor_at(g, (uint64_t)j)->type, want[i].type, "%s: %s", want[i].name,
                     infer_type_name(infer_gguf_tensor_at(g, (uint64_t)j)->type));
    }
    uint32_t ft = 0;
    cr_expect_eq(infer_gguf_get_u32(g, "general.file_type", &ft, NULL), INFER_OK);
    cr_expect_eq(ft, 15);
    infer_gguf_close(g);

    /* the quantized model's logits after a prompt follow the F16 model's
     * (quantization noise grows through a random network: measured cosine
     * 0.983 at the default std 0.02; a broken layout gives ~0) */
    const int32_t prompt[] = {1, 300, 17, 261, 290, 5};
    int32_t gen_f16[8], gen_q[8];
    float *lf = decode_greedy(f16, prompt, 6, 8, gen_f16);
    float *lq = decode_greedy(q, prompt, 6, 8, gen_q);
    const double cs = cosine(lf, lq, 320);
    cr_log_info("F16 vs Q4_K_M prompt logits: cosine %.5f; greedy %d %d %d %d vs %d %d %d %d", cs, gen_f16[0],
                gen_f16[1], gen_f16[2], gen_f16[3], gen_q[0], gen_q[1], gen_q[2], gen_q[3]);
    cr_expect_gt(cs, 0.95, "cosine %.5f", cs);
    free(lf);
    free(lq);
    remove_dir(dir);
}

/* Run tool with args and assert it exits 0 (its stderr in the message). */
static void tool_ok(const char *tool, const char *dir, const char *const *args) {
    const int rc = run_tool(tool, dir, args);
    char *e = tool_stderr(dir);
    const char *a1 = args[0] && args[1] ? args[1] : "", *a2 = args[0] && args[1] && args[2] ? args[2] : "";
    cr_assert_eq(rc, 0, "%s %s %s %s: exit %d: %s", tool, args[0] ? args[0] : "", a1, a2, rc, e);
    free(e);
}

/* Run infer-quantize with args (IN OUT TYPE ...), assert it exits 0 and
 * open its output. */
static infer_gguf *quantize_ok(const char *dir, const char *const *args) {
    tool_ok("infer-quantize", dir, args);
    return test_open_gguf(args[1]);
}

/* The type infer-quantize gave tensor name in g. */
static uint32_t type_of(infer_gguf *g, const char *name) {
    const int64_t j = infer_gguf_find_tensor(g, name);
    cr_assert_geq(j, 0, "%s", name);
    return infer_gguf_tensor_at(g, (uint64_t)j)->type;
}

Test(quantize_synth, q3_k_mixtures_follow_llama_quantize_rules, .timeout = 60) {
    /* Q3_K_M and Q3_K_L as llama.cpp assigns them (non-Falcon, no experts),
     * on 16 layers, where the two Q3_K_M bumps part: attn_v of the first
     * two layers (i_attention_wv < 2) but ffn_down of the first sixteenth
     * (layer 0) in Q5_K, the other attn_v and ffn_down in Q4_K, attn_output
     * in Q4_K. Q3_K_L: attn_v, ffn_down and attn_output all Q5_K. The rest
     * Q3_K, output.weight Q6_K. (Checked byte for byte against
     * llama-quantize, outside the repository, on 32- and 40-layer models.) */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    snprintf(f16, sizeof f16, "%s/f16.gguf", dir);
    const char *sargs[] = {f16, "--n-embd", "256", "--n-layer", "16", "--n-head", "4", "--n-head-kv", "2",
                           "--n-ff", "256", "--n-vocab", "300", "--type", "F16", NULL};
    tool_ok("infer-synth", dir, sargs);
    static const struct {
        const char *type;
        uint32_t ftype, v01, v_rest, down0, down1, down_rest, out;
    } mix[] = {
        {"Q3_K_M", 12, INFER_TYPE_Q5_K, INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q4_K, INFER_TYPE_Q4_K,
         INFER_TYPE_Q4_K},
        {"Q3_K_L", 13, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K,
         INFER_TYPE_Q5_K},
    };
    for (size_t k = 0; k < sizeof mix / sizeof *mix; k++) {
        snprintf(q, sizeof q, "%s/%s.gguf", dir, mix[k].type);
        const char *qargs[] = {f16, q, mix[k].type, NULL};
        infer_gguf *g = quantize_ok(dir, qargs);
        cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q6_K, "%s", mix[k].type);
        cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q3_K, "%s", mix[k].type);
        for (int l = 0; l < 16; l++) {
            char n[64];
            static const char *const plain[] = {"attn_q", "attn_k", "ffn_gate", "ffn_up"};
            for (int i = 0; i < 4; i++) {
                snprintf(n, sizeof n, "blk.%d.%s.weight", l, plain[i]);
                cr_expect_eq(type_of(g, n), INFER_TYPE_Q3_K, "%s %s", mix[k].type, n);
            }
            snprintf(n, sizeof n, "blk.%d.attn_v.weight", l);
            cr_expect_eq(type_of(g, n), l < 2 ? mix[k].v01 : mix[k].v_rest, "%s %s: %s", mix[k].type, n,
                         infer_type_name(type_of(g, n)));
            snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
            cr_expect_eq(type_of(g, n), l == 0 ? mix[k].down0 : l == 1 ? mix[k].down1 : mix[k].down_rest,
                         "%s %s: %s", mix[k].type, n, infer_type_name(type_of(g, n)));
            snprintf(n, sizeof n, "blk.%d.attn_output.weight", l);
            cr_expect_eq(type_of(g, n), mix[k].out, "%s %s", mix[k].type, n);
            snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
            cr_expect_eq(type_of(g, n), INFER_TYPE_F32, "%s %s", mix[k].type, n);
        }
        uint32_t ft = 0;
        cr_expect_eq(infer_gguf_get_u32(g, "general.file_type", &ft, NULL), INFER_OK);
        cr_expect_eq(ft, mix[k].ftype, "%s: general.file_type %u", mix[k].type, ft);
        infer_gguf_close(g);
        /* and the result loads and decodes (decode_greedy checks that every
         * step's logits are finite) */
        const int32_t prompt[] = {1, 290, 17};
        int32_t gen[4];
        free(decode_greedy(q, prompt, 3, 4, gen));
    }
    remove_dir(dir);
}

Test(quantize_synth, tensor_type_options_as_llama_quantize) {
    /* --output-tensor-type / --token-embedding-type name those tensors'
     * types before any rule, --pure or not; --leave-output-tensor copies
     * output.weight. (Checked byte for byte against llama-quantize, outside
     * the repository, on a 32-layer synthetic model, in six combinations.) */
    char dir[64], f16[600], q[600], small[600];
    temp_dir(dir, sizeof dir);
    snprintf(f16, sizeof f16, "%s/f16.gguf", dir);
    snprintf(q, sizeof q, "%s/q.gguf", dir);
    const char *sargs[] = {f16, "--n-embd", "256", "--n-layer", "2", "--n-head", "4", "--n-head-kv", "2",
                           "--n-ff", "256", "--n-vocab", "300", "--type", "F16", NULL};
    tool_ok("infer-synth", dir, sargs);

    /* a mixture: the two tensors as named, the rules elsewhere (2 layers:
     * use_more_bits picks layer 1's attn_v for Q6_K) */
    const char *a1[] = {f16, q, "Q4_K_M", "--output-tensor-type", "q8_0", "--token-embedding-type", "F16", NULL};
    infer_gguf *g = quantize_ok(dir, a1);
    cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_F16);
    cr_expect_eq(type_of(g, "blk.1.attn_v.weight"), INFER_TYPE_Q6_K);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_Q4_K);
    infer_gguf_close(g);

    /* --pure: every other weight in TYPE, output.weight still as named */
    const char *a2[] = {f16, q, "Q4_0", "--pure", "--output-tensor-type", "Q6_K", NULL};
    g = quantize_ok(dir, a2);
    cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q6_K);
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q4_0);
    cr_expect_eq(type_of(g, "blk.1.attn_v.weight"), INFER_TYPE_Q4_0);
    infer_gguf_close(g);

    /* --leave-output-tensor wins over --output-tensor-type: the input's
     * bytes */
    const char *a3[] = {f16, q, "Q8_0", "--output-tensor-type", "q4_0", "--leave-output-tensor", NULL};
    g = quantize_ok(dir, a3);
    infer_gguf *in = test_open_gguf(f16);
    const infer_gguf_tensor *o = infer_gguf_tensor_at(g, (uint64_t)infer_gguf_find_tensor(g, "output.weight"));
    const infer_gguf_tensor *oi = infer_gguf_tensor_at(in, (uint64_t)infer_gguf_find_tensor(in, "output.weight"));
    cr_expect_eq(o->type, INFER_TYPE_F16);
    cr_expect(o->n_bytes == oi->n_bytes && !memcmp(o->data, oi->data, o->n_bytes), "output.weight copied");
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q8_0);
    infer_gguf_close(in);
    infer_gguf_close(g);

    /* a named type that does not fit the rows is refused (no fallback, as
     * in llama.cpp, which stops there), and leaves no file; an unknown type
     * is a usage error */
    snprintf(small, sizeof small, "%s/small.gguf", dir);
    const char *s2[] = {small, NULL};
    tool_ok("infer-synth", dir, s2); /* n_embd 32 */
    remove(q);
    const char *a4[] = {small, q, "Q8_0", "--token-embedding-type", "q4_K", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, a4), 2);
    char *e = tool_stderr(dir);
    cr_expect(strstr(e, "token_embd.weight: rows of 32 values are not whole q4_K blocks (256)") != NULL, "%s", e);
    free(e);
    cr_expect_neq(access(q, F_OK), 0, "no output for a refused type");
    const char *a5[] = {small, q, "Q8_0", "--output-tensor-type", "q7_0", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, a5), 1);
    const char *a6[] = {small, q, "Q8_0", "--output-tensor-type", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, a6), 1);
    remove_dir(dir);
}

Test(quantize_synth, tied_embeddings_take_the_output_rules) {
    /* infer-synth --tied writes no output.weight; infer-quantize then gives
     * token_embd the output's rules (Q6_K in a mixture, or
     * --output-tensor-type), unless --token-embedding-type names it. The
     * quantized model loads and decodes. (Checked byte for byte against
     * llama-quantize, outside the repository, in seven combinations.) */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    snprintf(f16, sizeof f16, "%s/f16.gguf", dir);
    snprintf(q, sizeof q, "%s/q.gguf", dir);
    const char *sargs[] = {f16, "--n-embd", "256", "--n-layer", "2", "--n-ff", "256", "--type", "F16", "--tied", NULL};
    tool_ok("infer-synth", dir, sargs);
    infer_gguf *g = test_open_gguf(f16);
    cr_expect_lt(infer_gguf_find_tensor(g, "output.weight"), 0, "--tied: no output.weight");
    infer_gguf_close(g);
    static const struct {
        const char *args[6]; /* TYPE and options, NULL-terminated */
        uint32_t embd;
    } cases[] = {
        {{"Q4_K_M", NULL}, INFER_TYPE_Q6_K},
        {{"Q4_0", "--output-tensor-type", "q8_0", NULL}, INFER_TYPE_Q8_0},
        {{"Q4_K_M", "--output-tensor-type", "q8_0", "--token-embedding-type", "q5_0", NULL}, INFER_TYPE_Q5_0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *a[8] = {f16, q};
        for (int i = 0; i < 6 && cases[k].args[i]; i++) a[2 + i] = cases[k].args[i];
        g = quantize_ok(dir, a);
        cr_expect_eq(type_of(g, "token_embd.weight"), cases[k].embd, "case %zu: %s", k,
                     infer_type_name(type_of(g, "token_embd.weight")));
        infer_gguf_close(g);
        const int32_t prompt[] = {1, 290, 17};
        int32_t gen[4];
        free(decode_greedy(q, prompt, 3, 4, gen));
    }
    remove_dir(dir);
}

/* The output is written beside OUT and renamed over it once read back: a
 * failed run leaves an existing OUT as it was and no file of its own; OUT
 * may not be a FIFO or a directory (as root, writing through and then
 * removing a path once deleted /dev/null); a run leaves nothing but OUT,
 * with the mode writing into it would give (an existing OUT's, else 0666
 * less the umask), and a link to a file stays a link. */
Test(quantize_tool, output_written_beside_and_renamed) {
    char dir[64], in[600], out[600], fifo[600], sub[600], bad[600];
    temp_dir(dir, sizeof dir);
    snprintf(in, sizeof in, "%s/in.gguf", dir);
    const char *synth[] = {in, "--n-embd", "64", "--n-ff", "128", "--n-layer", "1", "--n-head", "2",
                           "--n-head-kv", "1", "--n-vocab", "300", "--type", "F32", NULL};
    cr_assert_eq(run_tool("infer-synth", dir, synth), 0);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    FILE *f = fopen(out, "wb");
    cr_assert_not_null(f);
    fputs("keep me", f);
    fclose(f);
    /* a refused input: OUT untouched */
    snprintf(bad, sizeof bad, "%s/bad.gguf", dir);
    f = fopen(bad, "wb");
    cr_assert_not_null(f);
    fputs("GGUF", f);
    fclose(f);
    const char *refused[] = {bad, out, "Q8_0", NULL};
    cr_assert_eq(run_tool("infer-quantize", dir, refused), 2);
    size_t n = 0;
    char *kept = read_file(out, &n);
    cr_assert(kept && n == 7 && !memcmp(kept, "keep me", 7), "OUT changed by a failed run");
    free(kept);
    /* a FIFO and a directory are refused, and stay */
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    for (int k = 0; k < 2; k++) {
        const char *args[] = {in, k ? sub : fifo, "Q8_0", NULL};
        cr_assert_eq(run_tool("infer-quantize", dir, args), 1);
        char *e = tool_stderr(dir);
        cr_assert(strstr(e, "not a regular file"), "%s", e);
        free(e);
        struct stat st;
        cr_assert_eq(stat(k ? sub : fifo, &st), 0);
        cr_assert(k ? S_ISDIR(st.st_mode) : S_ISFIFO(st.st_mode));
    }
    /* success: OUT replaced keeping its mode; a new OUT gets 0666 less the
     * umask; a link to OUT stays a link; no other file left */
    cr_assert_eq(chmod(out, 0640), 0);
    const char *ok[] = {in, out, "Q8_0", NULL};
    cr_assert_eq(run_tool("infer-quantize", dir, ok), 0);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640, "mode %o", (unsigned)(st.st_mode & 0777));
    infer_gguf *g = test_open_gguf(out);
    infer_gguf_close(g);
    char fresh[600], link[600];
    snprintf(fresh, sizeof fresh, "%s/fresh.gguf", dir);
    const mode_t um = umask(002);
    const char *ok2[] = {in, fresh, "Q8_0", NULL};
    cr_assert_eq(run_tool("infer-quantize", dir, ok2), 0);
    umask(um);
    cr_assert_eq(stat(fresh, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0664, "mode %o", (unsigned)(st.st_mode & 0777));
    snprintf(link, sizeof link, "%s/link.gguf", dir);
    cr_assert_eq(symlink("out.gguf", link), 0);
    const char *ok3[] = {in, link, "Q4_0", NULL};
    cr_assert_eq(run_tool("infer-quantize", dir, ok3), 0);
    cr_assert_eq(lstat(link, &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced by a file");
    g = test_open_gguf(out);
    int q4 = 0;
    for (uint64_t i = 0; i < infer_gguf_tensor_count(g); i++) q4 += infer_gguf_tensor_at(g, i)->type == INFER_TYPE_Q4_0;
    cr_assert_gt(q4, 0, "the linked file was not written");
    infer_gguf_close(g);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 9", dir); /* in bad out fifo sub out.txt err.txt fresh link */
    cr_assert_eq(system(cmd), 0, "a file was left beside OUT");
    remove_dir(dir);
}

/* Which tensors are converted follows ggml_n_dims, as llama-quantize's
 * does: a weight stored as [256, 1] is 1-D (copied as it is), [256, 2] is
 * converted. */
Test(quantize_tool, trailing_unit_dimensions_count_as_one_d) {
    char dir[64], in[600], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(in, sizeof in, "%s/in.gguf", dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    static float data[512];
    const uint64_t one[4] = {256, 1, 1, 1}, two[4] = {256, 2, 1, 1};
    cr_assert_eq(infer_gguf_writer_add_tensor(w, "a.weight", INFER_TYPE_F32, 2, one, data, 256 * 4), INFER_OK);
    cr_assert_eq(infer_gguf_writer_add_tensor(w, "b.weight", INFER_TYPE_F32, 2, two, data, 512 * 4), INFER_OK);
    cr_assert_eq(infer_gguf_writer_write_file(w, in, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    const char *args[] = {in, out, "Q8_0", "--pure", NULL};
    cr_assert_eq(run_tool("infer-quantize", dir, args), 0);
    infer_gguf *g = test_open_gguf(out);
    cr_assert_eq(infer_gguf_tensor_at(g, 0)->type, INFER_TYPE_F32, "[256, 1] converted");
    cr_assert_eq(infer_gguf_tensor_at(g, 1)->type, INFER_TYPE_Q8_0);
    infer_gguf_close(g);
    remove_dir(dir);
}
