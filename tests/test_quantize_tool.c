/* test_quantize_tool.c - infer-quantize (suite quantize_tool) against
 * llama-quantize's files: legacy and K types with --pure and the Q4_K_M /
 * Q5_K_M mixtures, whole files byte for byte (tensor by tensor first, the
 * metadata, then every byte); fallbacks, refusals; the
 * alignment kept and every tensor read back; the output written beside
 * OUT and renamed over it; trailing unit dimensions counted as llama.cpp
 * counts them.
 *
 * The tools run as programs found next to $INFER_BIN (set by `make test`);
 * those tests skip without it. */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer.h"
#include "ref/quants.h"
#include "testutil.h"
#include "quantize_testutil.h"

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

Test(quantize_tool, pure_files_byte_identical_to_llama_quantize, .timeout = TEST_TIMEOUT) {
    /* Q8_0 and Q4_0 are the promise; the other types hold too (Q4_K, Q5_K
     * and Q6_K through the mixtures' test, to keep this one short). Tensor
     * by tensor first (a failure names the tensor), then the whole file:
     * header, metadata, tensor order and padding as llama-quantize writes
     * them. */
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
        expect_same_file(files[k].file, out, ref);
    }
    remove_dir(dir);
}

Test(quantize_tool, mixture_files_byte_identical_to_llama_quantize, .timeout = TEST_TIMEOUT) {
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
        expect_same_file(files[k].file, out, ref);
    }
    remove_dir(dir);
}

Test(quantize_tool, norms_copied_and_output_in_q6_k) {
    char dir[64], out[600], in[512];
    temp_dir(dir, sizeof dir);
    SHARED_OR_SKIP(in, "models/rand-small-f32.gguf");
    quantize_shared(dir, "Q4_0", 0, out, sizeof out);
    infer_gguf *a = test_open_gguf(out), *f = test_open_gguf(in);
    cr_assert_eq(infer_gguf_tensor_count(a), infer_gguf_tensor_count(f));
    for (uint64_t i = 0; i < infer_gguf_tensor_count(f); i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(f, i);
        char name[INFER_GGUF_MAX_NAME + 1];
        const infer_gguf_tensor *u = test_same_named(a, t, name, "Q4_0");
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
    /* in llama-quantize's order: outside the layers first */
    static const char *const names[] = {"odd.bias", "blk.0.attn_q.weight", "blk.0.ffn_up_exps.weight", "blk.1.attn_q.weight"};
    static const float *const src[] = {b, a, c, d};
    static const uint32_t type[] = {INFER_TYPE_F32, INFER_TYPE_Q4_0, INFER_TYPE_Q4_0, INFER_TYPE_Q4_0};
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
