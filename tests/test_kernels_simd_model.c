/* test_kernels_simd_model.c - whole models at every kernel level (suite
 * kernels_simd_model; the kernels alone are test_kernels_simd.c's).
 *
 * End to end: greedy stories260K is llama.cpp's, token for token, at every
 * level and with 1, 2 and 3 threads; reference logits stay within
 * reference/README.md's tolerances at every level; a batch gives the same
 * logits bit for bit at 1, 2 and 3 threads (OpenBLAS included). The level
 * is forced with INFER_CPU before anything picks the table (Criterion runs
 * each test in its own process).
 */
#include "dispatch.h"
#include "infer.h"
#include "synth.h"
#include "reference_testutil.h"
#include "testutil.h"
#include "kernels_simd_testutil.h"

/* ======================= whole models at every level ============================== */

/* Force a level for this test's process; 0 when the machine lacks it. */
static int force_level(const char *name, infer_isa isa) {
    if (isa != INFER_ISA_REF && !kernels_for(isa)) return 0;
    setenv("INFER_CPU", name, 1);
    cr_assert_eq(kernels_get()->isa, isa, "INFER_CPU=%s did not take (the table was chosen earlier)", name);
    return 1;
}

static void greedy_at_level(const char *level, infer_isa isa) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    if (!force_level(level, isa)) cr_skip_test("%s: not available on this machine", level);
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    for (int p = 1; p <= 4; p++) {
        /* prompt 1 at 1, 2 and 3 threads; the others at one count each */
        for (int nt = p == 1 ? 1 : (p + 1) % 3 + 1; nt <= (p == 1 ? 3 : (p + 1) % 3 + 1); nt++) {
            infer_context_params cp = infer_context_default_params();
            cp.n_ctx = 256;
            cp.n_threads = nt;
            infer_context *c = NULL;
            cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
            char what[64];
            snprintf(what, sizeof what, "%s, %d threads", level, nt);
            ref_expect_greedy(c, m, p, what);
            infer_context_free(c);
        }
    }
    infer_model_release(m);
    LEAK_CHECK();
}

Test(kernels_simd_model, greedy_stories260K_ref_1_2_3_threads) { greedy_at_level("ref", INFER_ISA_REF); }
Test(kernels_simd_model, greedy_stories260K_avx2_1_2_3_threads) { greedy_at_level("avx2", INFER_ISA_AVX2); }
Test(kernels_simd_model, greedy_stories260K_avxvnni_1_2_3_threads) { greedy_at_level("avxvnni", INFER_ISA_AVXVNNI); }
Test(kernels_simd_model, greedy_stories260K_avx512_1_2_3_threads) { greedy_at_level("avx512", INFER_ISA_AVX512); }

/* Reference logits at each level, for one model of each kind of kernel. */
static const char *const LOGITS_MODELS[] = {"rand-small-q4_0", "rand-small-q4_k_m", "rand-small-q8_0", "rand-small-q6_k",
                                            "rand-small-f16",  "rand-small-q2_k",   "rand-small-bf16", "rand-small-f32"};

static void logits_at_level(const char *level, infer_isa isa) {
    char probe[512];
    SHARED_OR_SKIP(probe, "reference/logits/prompt.txt");
    if (!force_level(level, isa)) cr_skip_test("%s: not available on this machine", level);
    for (size_t mi = 0; mi < sizeof LOGITS_MODELS / sizeof LOGITS_MODELS[0]; mi++) {
        const char *model = LOGITS_MODELS[mi];
        ref_logits r;
        ref_logits_load(&r, model);
        infer_error err = {0};
        infer_context_params cp = infer_context_default_params();
        cp.n_ctx = 512;
        cp.n_threads = 2;
        cp.all_logits = 1;
        infer_context *c = NULL;
        cr_assert_eq(infer_context_new(r.m, &cp, &c, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(infer_decode(c, r.ids, r.n, INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);
        char what[96];
        snprintf(what, sizeof what, "%s %s", level, model);
        ref_expect_within(what, ref_tolerance_of(model), ref_diff_context(c, &r), r.n);
        infer_context_free(c);
        ref_logits_free(&r);
    }
    LEAK_CHECK();
}

Test(kernels_simd_model, reference_logits_ref) { logits_at_level("ref", INFER_ISA_REF); }
Test(kernels_simd_model, reference_logits_avx2) { logits_at_level("avx2", INFER_ISA_AVX2); }
Test(kernels_simd_model, reference_logits_avxvnni) { logits_at_level("avxvnni", INFER_ISA_AVXVNNI); }
Test(kernels_simd_model, reference_logits_avx512) { logits_at_level("avx512", INFER_ISA_AVX512); }

/* A batch through every op (OpenBLAS for F32) gives the same logits, bit
 * for bit, with 1, 2 and 3 threads. */
static void batch_threads(const char *model) {
    char mpath[512], rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", model);
    SHARED_OR_SKIP(mpath, rel);
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    const int nv = infer_model_n_vocab(m);
    int32_t ids[70];
    for (int i = 0; i < 70; i++) ids[i] = (int32_t)(test_rng(&rng) % (uint64_t)nv);
    float *first = NULL;
    const size_t bytes = sizeof(float) * (size_t)nv;
    for (int nt = 1; nt <= 3; nt++) {
        infer_context_params cp = infer_context_default_params();
        cp.n_ctx = 128;
        cp.n_threads = nt;
        cp.all_logits = 1;
        infer_context *c = NULL;
        float *all = malloc(bytes * 70);
        cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(infer_decode(c, ids, 69, INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);
        for (int t = 0; t < 69; t++) memcpy(all + (size_t)t * (size_t)nv, infer_logits_ith(c, (size_t)t), bytes);
        cr_assert_eq(infer_decode(c, ids + 69, 1, 0, &err), INFER_OK, "%s", err.message); /* and one token alone */
        memcpy(all + (size_t)69 * (size_t)nv, infer_logits(c), bytes);
        infer_context_free(c);
        if (!first) {
            first = all;
            continue;
        }
        cr_assert(memcmp(first, all, bytes * 70) == 0, "%s: logits with %d threads differ from 1 thread", model, nt);
        free(all);
    }
    free(first);
    infer_model_release(m);
    LEAK_CHECK();
}

Test(kernels_simd_model, batch_logits_same_at_1_2_3_threads_f32_openblas) { batch_threads("rand-small-f32"); }
Test(kernels_simd_model, batch_logits_same_at_1_2_3_threads_q4_k_m) { batch_threads("rand-small-q4_k_m"); }

/* Repacked weights at model level: every quantized rand-small model at
 * each level that repacks, a 7-token prompt (batched matmuls) then 3 single tokens
 * (generation kernels), with the weights repacked (default), repacked
 * from a model read into memory (use_mmap = 0) and with the file's layout
 * (INFER_REPACK=0 when the last copy's first context is made): every
 * logit identical bit for bit. */
static void logits_run(const char *path, int use_mmap, float *out, size_t n_vocab) {
    static const int32_t prompt[7] = {1, 15, 200, 7, 99, 300, 42};
    infer_error err = {0};
    infer_model *m = NULL;
    infer_context *c = NULL;
    infer_model_params mp = infer_model_default_params();
    mp.use_mmap = use_mmap;
    cr_assert_eq(infer_model_load(path, &mp, &m, &err), INFER_OK, "%s", err.message);
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(c, prompt, 7, 0, &err), INFER_OK, "%s", err.message);
    memcpy(out, infer_logits(c), n_vocab * sizeof(float));
    for (int i = 0; i < 3; i++) {
        const int32_t tok = 5 + 11 * i;
        cr_assert_eq(infer_decode(c, &tok, 1, 0, &err), INFER_OK, "%s", err.message);
        memcpy(out + (size_t)(i + 1) * n_vocab, infer_logits(c), n_vocab * sizeof(float));
    }
    infer_context_free(c);
    infer_model_release(m);
}

static void repacked_at_level(const char *level, infer_isa isa) {
    static const char *const models[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k_s",
                                         "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"};
    if (!force_level(level, isa)) cr_skip_test("%s: not available on this machine", level);
    const kernel_table *kt = kernels_get();
    if (!kt->packed_size) cr_skip_test("%s: this level keeps the file's layout", kt->name);
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[512], rel[128];
        snprintf(rel, sizeof rel, "models/rand-small-%s.gguf", models[i]);
        SHARED_OR_SKIP(path, rel);
        const size_t nv = 512; /* rand-small vocabulary */
        float *a = malloc(4 * nv * sizeof(float)), *b = malloc(4 * nv * sizeof(float));
        float *r = malloc(4 * nv * sizeof(float));
        unsetenv("INFER_REPACK");
        logits_run(path, 1, a, nv);
        logits_run(path, 0, r, nv);
        setenv("INFER_REPACK", "0", 1);
        logits_run(path, 1, b, nv);
        unsetenv("INFER_REPACK");
        int nfail = 0;
        for (size_t k = 0; k < 4 * nv; k++) {
            CHECK(nfail, same(a[k], b[k]), "%s: logit %zu (step %zu) repacked %a, file layout %a", models[i], k % nv,
                  k / nv, a[k], b[k]);
            CHECK(nfail, same(r[k], b[k]), "%s: logit %zu (step %zu) read into memory %a, file layout %a", models[i],
                  k % nv, k / nv, r[k], b[k]);
        }
        cr_assert_eq(nfail, 0, "%s", models[i]);
        free(a), free(b), free(r);
    }
    LEAK_CHECK();
}

Test(kernels_simd_model, repacked_weights_logits_identical_to_file_layout_avx2) { repacked_at_level("avx2", INFER_ISA_AVX2); }
Test(kernels_simd_model, repacked_weights_logits_identical_to_file_layout_avxvnni) {
    repacked_at_level("avxvnni", INFER_ISA_AVXVNNI);
}
Test(kernels_simd_model, repacked_weights_logits_identical_to_file_layout_avx512) {
    repacked_at_level("avx512", INFER_ISA_AVX512);
}

/* F32 batches go to OpenBLAS, whose sgemm rounds a row differently with
 * the rows in the call for small batches: at realistic widths (2048) a
 * thread's share changed the bits of 2- and 3-token batches (950 of 1000
 * logits). Small batches are called on fixed chunks: the same bits at 1,
 * 2 and 3 threads for 2, 3, 8 and 32 tokens. */
Test(kernels_simd_model, f32_small_batches_same_at_1_2_3_threads, .timeout = TEST_TIMEOUT) {
    synth_params p = synth_default_params();
    p.n_embd = 2048;
    p.n_ff = 2048;
    p.n_layer = 1;
    p.n_head = 32;
    p.n_head_kv = 4;
    p.n_vocab = 1000;
    void *buf = NULL;
    size_t size = 0;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK, "%s", err.message);
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_OK, "%s", err.message);
    static const int NT[] = {2, 3, 8, 32};
    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = (int32_t)(3 + test_rng(&rng) % 990);
    const size_t row = sizeof(float) * 1000;
    float *first = malloc(row * 32), *all = malloc(row * 32);
    cr_assert(first && all);
    for (size_t b = 0; b < sizeof NT / sizeof *NT; b++) {
        for (int nt = 1; nt <= 3; nt++) {
            infer_context_params cp = infer_context_default_params();
            cp.n_ctx = 64;
            cp.n_threads = nt;
            cp.all_logits = 1;
            infer_context *c = NULL;
            cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
            cr_assert_eq(infer_decode(c, ids, (size_t)NT[b], INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);
            float *dst = nt == 1 ? first : all;
            for (int t = 0; t < NT[b]; t++) memcpy(dst + (size_t)t * 1000, infer_logits_ith(c, (size_t)t), row);
            infer_context_free(c);
            if (nt > 1)
                cr_assert(!memcmp(first, all, row * (size_t)NT[b]), "%d tokens: logits with %d threads differ from 1",
                          NT[b], nt);
        }
    }
    free(first);
    free(all);
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}
