/*
 * test_vulkan_model.c - the Vulkan backend end to end: logits of every
 * rand-small-* model and stories260K within reference/README.md's
 * tolerances of llama.cpp's logits and of the CPU backend's; greedy
 * stories260K continuations identical to llama.cpp's (and so to the
 * CPU's); context shift; two contexts sharing one upload; the fallback to
 * the CPU when no device can be used. Skips without a Vulkan device.
 */
#include <math.h>
#include <pthread.h>

#include "context.h"
#include "synth.h"
#include "reference_testutil.h"
#include "vulkan_testutil.h"

TestSuite(vulkan_model, .init = vk_test_init);

/* A context on the Vulkan backend (skips the test without a device). */
static uint32_t g_vk_batch; /* n_batch of the next Vulkan contexts; 0: the default */

static infer_context *vk_context(infer_model *m, uint32_t n_ctx, uint32_t kv_type, int all_logits) {
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = g_vk_batch;
    cp.kv_type = kv_type;
    cp.all_logits = all_logits;
    cp.backend = INFER_BACKEND_VULKAN;
    infer_context *c = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    if (infer_context_backend(c) != INFER_BACKEND_VULKAN) {
        char note[INFER_ERROR_MSG_MAX];
        snprintf(note, sizeof note, "%s", infer_context_backend_note(c));
        infer_context_free(c);
        vk_skip_unless_device();
        cr_assert_fail("a Vulkan device is present, but the context fell back to the CPU: %s", note);
    }
    return c;
}

static infer_context *cpu_context(infer_model *m, uint32_t n_ctx, uint32_t kv_type, int all_logits) {
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = n_ctx;
    cp.kv_type = kv_type;
    cp.all_logits = all_logits;
    infer_context *c = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    return c;
}

static void check_logits(const char *name) {
    const ref_tolerance *tol = ref_tolerance_of(name);
    ref_logits r;
    ref_logits_load(&r, name);
    infer_error err = {0};
    const size_t n = r.n, nv = r.nv;
    infer_context *v = vk_context(r.m, 512, INFER_TYPE_F16, 1), *c = cpu_context(r.m, 512, INFER_TYPE_F16, 1);
    cr_assert_eq(infer_decode(v, r.ids, n, INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(c, r.ids, n, INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);
    const float *rows[128];
    float *cpu = malloc(n * nv * sizeof *cpu);
    cr_assert_not_null(cpu);
    for (size_t t = 0; t < n; t++) {
        rows[t] = infer_logits_ith(v, t);
        cr_assert_not_null(rows[t]);
        memcpy(cpu + t * nv, infer_logits_ith(c, t), nv * sizeof *cpu);
    }
    char what[128];
    snprintf(what, sizeof what, "%s: Vulkan vs llama.cpp", name);
    ref_expect_within(what, tol, ref_diff_rows(rows, r.logits, n, nv), n);
    snprintf(what, sizeof what, "%s: Vulkan vs CPU", name);
    ref_expect_within(what, tol, ref_diff_rows(rows, cpu, n, nv), n);

    /* One token at a time after the batch reproduces the last row. */
    cr_assert_eq(infer_context_reset(v), INFER_OK);
    for (size_t t = 0; t < n; t++) cr_assert_eq(infer_decode(v, &r.ids[t], 1, 0, &err), INFER_OK, "%s", err.message);
    const float *last = infer_logits(v);
    ref_tolerance one = *tol;
    one.min_argmax = tol->min_argmax >= 0 ? 1 : -1;
    snprintf(what, sizeof what, "%s: Vulkan token by token vs CPU (last row)", name);
    ref_expect_within(what, &one, ref_diff_rows(&last, cpu + (n - 1) * nv, 1, nv), 1);

    free(cpu);
    infer_context_free(v);
    infer_context_free(c);
    ref_logits_free(&r);
    vk_expect_clean();
}

#define LOGITS_TEST(id, name) \
    Test(vulkan_model, logits_##id) { check_logits(name); }
LOGITS_TEST(f32, "rand-small-f32")
LOGITS_TEST(qwen2_f32, "rand-small-qwen2-f32")
LOGITS_TEST(qwen3_f32, "rand-small-qwen3-f32")
LOGITS_TEST(f16, "rand-small-f16")
LOGITS_TEST(llama2_tiny_f16, "llama-2-tiny-random")
LOGITS_TEST(bf16, "rand-small-bf16")
LOGITS_TEST(q8_0, "rand-small-q8_0")
LOGITS_TEST(q6_k, "rand-small-q6_k")
LOGITS_TEST(q5_0, "rand-small-q5_0")
LOGITS_TEST(q5_1, "rand-small-q5_1")
LOGITS_TEST(q5_k_s, "rand-small-q5_k_s")
LOGITS_TEST(q5_k_m, "rand-small-q5_k_m")
LOGITS_TEST(q4_0, "rand-small-q4_0")
LOGITS_TEST(q4_1, "rand-small-q4_1")
LOGITS_TEST(q4_k_s, "rand-small-q4_k_s")
LOGITS_TEST(q4_k_m, "rand-small-q4_k_m")
LOGITS_TEST(q3_k_s, "rand-small-q3_k_s")
LOGITS_TEST(q2_k, "rand-small-q2_k")
LOGITS_TEST(stories260K, "stories260K")

/* The same models with a GPU's work shapes (INFER_VK_GPU_SHAPES), here on
 * whatever device there is. */
Test(vulkan_model, logits_q4_0_gpu_shapes) {
    setenv("INFER_VK_GPU_SHAPES", "1", 1);
    check_logits("rand-small-q4_0");
}
Test(vulkan_model, logits_q4_k_m_gpu_shapes) {
    setenv("INFER_VK_GPU_SHAPES", "1", 1);
    check_logits("rand-small-q4_k_m");
}

/* Greedy continuation of reference prompt n: llama.cpp's 128 ids. */
static void check_greedy(int n) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_context *c = vk_context(m, 2048, INFER_TYPE_F16, 0);
    ref_expect_greedy(c, m, n, "Vulkan");
    infer_context_free(c);
    infer_model_release(m);
    vk_expect_clean();
}

Test(vulkan_model, greedy_stories260K_prompt1) { check_greedy(1); }
Test(vulkan_model, greedy_stories260K_prompt2) { check_greedy(2); }
Test(vulkan_model, greedy_stories260K_prompt3) { check_greedy(3); }
Test(vulkan_model, greedy_stories260K_prompt4_bos_only) { check_greedy(4); }
Test(vulkan_model, greedy_stories260K_gpu_shapes) {
    setenv("INFER_VK_GPU_SHAPES", "1", 1);
    check_greedy(2);
}

/* Fill a small context (n_ctx, fill tokens), shift it (keys re-rotated on
 * the device), go on: the logits follow the CPU's through the shift, with
 * an F16 and an F32 cache. */
static void check_shift_shaped(uint32_t kv_type, uint32_t n_ctx, int fill, uint32_t keep, uint32_t discard) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_context *v = vk_context(m, n_ctx, kv_type, 0), *c = cpu_context(m, n_ctx, kv_type, 0);
    const ref_tolerance tol = {"stories260K", 0.03, 0.004, 1};
    int32_t ids[128];
    cr_assert_leq(fill, 128);
    for (int i = 0; i < fill; i++) ids[i] = i == 0 ? 1 : 40 + (i * 37) % 400;
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(infer_decode(v, ids, (size_t)fill - infer_context_n_past(v), 0, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(infer_decode(c, ids, (size_t)fill - infer_context_n_past(c), 0, &err), INFER_OK, "%s", err.message);
        const float *l = infer_logits(v);
        char what[64];
        snprintf(what, sizeof what, "shift round %d (kv %s)", round, infer_type_name(kv_type));
        ref_expect_within(what, &tol, ref_diff_rows(&l, infer_logits(c), 1, (size_t)infer_model_n_vocab(m)), 1);
        cr_assert_eq(infer_context_shift(v, keep, discard), INFER_OK);
        cr_assert_eq(infer_context_shift(c, keep, discard), INFER_OK);
    }
    infer_context_free(v);
    infer_context_free(c);
    infer_model_release(m);
    vk_expect_clean();
}
static void check_shift(uint32_t kv_type) { check_shift_shaped(kv_type, 64, 60, 5, 23); }

Test(vulkan_model, context_shift_follows_cpu_f16_cache) { check_shift(INFER_TYPE_F16); }
Test(vulkan_model, context_shift_follows_cpu_f32_cache) { check_shift(INFER_TYPE_F32); }
/* A shift by one token: staged through the arena (it took one dispatch per
 * position, layer and part). */
Test(vulkan_model, context_shift_by_one_follows_cpu) { check_shift_shaped(INFER_TYPE_F16, 64, 60, 5, 1); }
/* Bindings of 4 KB (a device's storage-buffer range, scaled down: 32
 * positions of this model's F32 K): a shift that moves 58 positions 40
 * down no longer fits one KV window, so the move is split by the window
 * as well (it failed, reported only at the next decode, after the shift
 * had said OK). */
Test(vulkan_model, context_shift_split_by_a_small_kv_window) {
    setenv("INFER_VK_MAX_BINDING", "4096", 1);
    setenv("INFER_VK_MAX_TEXELS", "1048576", 1); /* the layer's texel views stay whole */
    g_vk_batch = 16;                                /* its upload area within 4 KB */
    check_shift_shaped(INFER_TYPE_F32, 128, 100, 2, 40);
}

/* Two contexts of one model share the device and the uploaded weights;
 * freeing the model first is fine (the contexts hold it). */
Test(vulkan_model, contexts_share_one_upload) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_context *a = vk_context(m, 128, INFER_TYPE_F16, 0), *b = vk_context(m, 256, INFER_TYPE_F32, 0);
    const vk_backend *va = (const vk_backend *)a->be, *vb = (const vk_backend *)b->be;
    cr_expect_eq(va->d, vb->d, "one device per process");
    cr_expect_eq(va->w, vb->w, "one weight upload per model and device");
    cr_expect_eq(va->w->refs, 2);
    infer_model_release(m);
    int32_t ids[3] = {1, 403, 407};
    cr_assert_eq(infer_decode(a, ids, 3, 0, &err), INFER_OK, "%s", err.message);
    infer_context_free(a);
    cr_assert_eq(infer_decode(b, ids, 3, 0, &err), INFER_OK, "%s", err.message);
    infer_context_free(b);
    vk_expect_clean();
}

/* Asked for a device that does not exist: the context runs on the CPU and
 * says why; AUTO never takes a CPU-type device. */
Test(vulkan_model, missing_device_falls_back_to_cpu_with_a_note) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_context_params cp = infer_context_default_params();
    cp.backend = INFER_BACKEND_VULKAN;
    cp.device = 999;
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    cr_expect_eq(infer_context_backend(c), INFER_BACKEND_CPU);
    cr_expect(strstr(infer_context_backend_note(c), "Vulkan") != NULL, "note: '%s'", infer_context_backend_note(c));
    int32_t ids[2] = {1, 403};
    cr_assert_eq(infer_decode(c, ids, 2, 0, &err), INFER_OK, "%s", err.message);
    infer_context_free(c);

    size_t n = 0;
    infer_device_info dev[8];
    if (infer_vulkan_devices(dev, 8, &n, &err) == INFER_OK) {
        int gpu = 0;
        for (size_t i = 0; i < n && i < 8; i++) gpu |= dev[i].type != INFER_DEVICE_CPU && dev[i].type != INFER_DEVICE_OTHER;
        cp.backend = INFER_BACKEND_AUTO;
        cp.device = -1;
        cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
        cr_expect_eq(infer_context_backend(c), gpu ? INFER_BACKEND_VULKAN : INFER_BACKEND_CPU);
        infer_context_free(c);
    }
    cp.backend = 7;
    c = NULL;
    cr_expect_eq(infer_context_new(m, &cp, &c, &err), INFER_EINVAL, "an unknown backend is refused");
    cr_expect_null(c);
    infer_model_release(m);
    vk_expect_clean();
}

/* Two threads, each with its own Vulkan context on one model: the device,
 * its queue and the weight upload are shared (DESIGN.md rule 7); both get
 * the logits a single context gets. */
typedef struct {
    infer_model *m;
    int rounds;
    float logits[512];
    infer_status status;
} worker_job;

static void *decode_worker(void *arg) {
    worker_job *j = arg;
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cp.backend = INFER_BACKEND_VULKAN;
    infer_context *c = NULL;
    infer_error err = {0};
    j->status = infer_context_new(j->m, &cp, &c, &err);
    if (j->status != INFER_OK) return NULL;
    int32_t ids[8] = {1, 403, 407, 312, 261, 300, 411, 280};
    for (int r = 0; r < j->rounds && j->status == INFER_OK; r++) {
        infer_context_reset(c);
        j->status = infer_decode(c, ids, 8, 0, &err);
    }
    if (j->status == INFER_OK) memcpy(j->logits, infer_logits(c), sizeof j->logits);
    if (infer_context_backend(c) != INFER_BACKEND_VULKAN) j->status = INFER_EBACKEND;
    infer_context_free(c);
    return NULL;
}

Test(vulkan_model, two_threads_two_contexts_one_model) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_model_n_vocab(m), 512);
    infer_context_free(vk_context(m, 64, INFER_TYPE_F16, 0)); /* skips without a device */
    worker_job one = {.m = m, .rounds = 1}, jobs[2] = {{.m = m, .rounds = 6}, {.m = m, .rounds = 6}};
    decode_worker(&one);
    cr_assert_eq(one.status, INFER_OK);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, decode_worker, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(jobs[i].status, INFER_OK, "thread %d", i);
        cr_expect_eq(memcmp(jobs[i].logits, one.logits, sizeof one.logits), 0, "thread %d's logits differ", i);
    }
    infer_model_release(m);
    vk_expect_clean();
}

/* A model read into memory (use_mmap = 0) whose CPU context has repacked
 * its matrices and dropped the file's rows: a Vulkan context made after it
 * uploads the rows read back from the file, so its logits are those of a
 * Vulkan context on the mapped model, bit for bit. */
static void vk_logits(infer_context *c, float *out, size_t nv) {
    int32_t ids[6] = {1, 260, 270, 280, 290, 299};
    infer_error err = {0};
    cr_assert_eq(infer_decode(c, ids, 6, 0, &err), INFER_OK, "%s", err.message);
    memcpy(out, infer_logits(c), nv * sizeof(float));
}

Test(vulkan_model, upload_after_a_cpu_context_of_a_model_read_into_memory) {
    synth_params p = synth_default_params();
    p.n_embd = 256; /* matrices of whole pages */
    p.n_ff = 512;
    p.wtype = INFER_TYPE_Q8_0;
    char path[] = "/tmp/infer-vkpack-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    infer_error err = {0};
    cr_assert_eq(synth_model_file(&p, path, &err), INFER_OK, "%s", err.message);
    infer_model_params mp = infer_model_default_params();
    infer_model *mapped = NULL, *read = NULL;
    cr_assert_eq(infer_model_load(path, &mp, &mapped, &err), INFER_OK, "%s", err.message);
    mp.use_mmap = 0;
    cr_assert_eq(infer_model_load(path, &mp, &read, &err), INFER_OK, "%s", err.message);
    const size_t nv = (size_t)infer_model_n_vocab(mapped);
    float *want = malloc(nv * sizeof(float)), *got = malloc(nv * sizeof(float));
    infer_context *c = vk_context(mapped, 32, INFER_TYPE_F16, 0); /* skips without a device */
    vk_logits(c, want, nv);
    infer_context_free(c);
    infer_model_release(mapped);

    infer_context *cpu = cpu_context(read, 32, INFER_TYPE_F16, 0); /* repacks (where the level does) */
    c = vk_context(read, 32, INFER_TYPE_F16, 0);
    vk_logits(c, got, nv);
    cr_assert(!memcmp(want, got, nv * sizeof(float)),
              "Vulkan after a CPU context, model read into memory: logits differ");
    vk_logits(cpu, got, nv); /* the CPU context is unharmed */
    infer_context_free(c);
    infer_context_free(cpu);
    infer_model_release(read);
    free(want);
    free(got);
    unlink(path);
    vk_expect_clean();
}

/* Staged shifts over several arena chunks (a 4 KB window: 32 F32 or 64
 * F16 positions a chunk): steps of 5, 1 and 31 (one under a chunk), F32
 * and F16 caches, 2-4 chunks a layer. A copy into the wrong place for any
 * chunk after the first fails them (the tests above stage one chunk). */
static void check_staged(uint32_t kv_type, int fill, uint32_t keep, uint32_t discard) {
    setenv("INFER_VK_MAX_BINDING", "4096", 1);
    setenv("INFER_VK_MAX_TEXELS", "1048576", 1);
    g_vk_batch = 16;
    check_shift_shaped(kv_type, 128, fill, keep, discard);
}
Test(vulkan_model, context_shift_staged_in_chunks_f32) { check_staged(INFER_TYPE_F32, 100, 2, 5); }
Test(vulkan_model, context_shift_staged_in_chunks_f16_by_one) { check_staged(INFER_TYPE_F16, 120, 0, 1); }
Test(vulkan_model, context_shift_staged_step_one_under_a_chunk) { check_staged(INFER_TYPE_F32, 110, 3, 31); }

/* Texel views of 256 texels (4 KB bindings, no texel override): the token
 * embedding (512 rows of 16 texels) is cut into 32 chunks, more chunks
 * than stories260K's rope dimension (8). A batch of 16 tokens then reads
 * its ids across every chunk; the ids went into the upload area once per
 * chunk (512 words of 400), and the decode failed with "upload area
 * full". The logits follow the CPU's. */
Test(vulkan_model, embedding_in_more_chunks_than_rope_dims) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    setenv("INFER_VK_MAX_BINDING", "4096", 1);
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    g_vk_batch = 16;
    infer_context *v = vk_context(m, 32, INFER_TYPE_F16, 0), *c = cpu_context(m, 32, INFER_TYPE_F16, 0);
    const vk_tensor *t = vk_tensor_of(((const vk_backend *)v->be)->w, &m->tok_embd);
    cr_assert_not_null(t);
    cr_assert_gt(t->n_chunks, m->hp.n_rot, "the embedding should be cut finer (%u chunks)", t->n_chunks);
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = i == 0 ? 1 : (i * 37) % 512; /* rows in every other chunk at least */
    cr_assert_eq(infer_decode(v, ids, 16, 0, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(c, ids, 16, 0, &err), INFER_OK, "%s", err.message);
    const ref_tolerance tol = {"stories260K", 0.03, 0.004, 1};
    const float *l = infer_logits(v);
    ref_expect_within("embedding in 32 chunks", &tol, ref_diff_rows(&l, infer_logits(c), 1, (size_t)infer_model_n_vocab(m)), 1);
    infer_context_free(v);
    infer_context_free(c);
    infer_model_release(m);
    vk_expect_clean();
}

/* The upload area (token ids, RoPE tables) is bound whole as one storage
 * buffer: a context whose n_batch x rope dims would take it past the
 * device's storage-buffer range (4 KB here) is refused with a note naming
 * n_batch, rather than bound past the limit (undefined behaviour). */
Test(vulkan_model, upload_area_past_the_binding_range_refused) {
    char mpath[512];
    SHARED_OR_SKIP(mpath, "models/stories260K.gguf");
    setenv("INFER_VK_MAX_BINDING", "4096", 1);
    setenv("INFER_VK_MAX_TEXELS", "1048576", 1);
    infer_error err = {0};
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load(mpath, NULL, &m, &err), INFER_OK, "%s", err.message);
    g_vk_batch = 16;
    infer_context *ok = vk_context(m, 128, INFER_TYPE_F32, 0); /* skips without a device */
    infer_context_free(ok);
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 128;
    cp.n_batch = 128;
    cp.backend = INFER_BACKEND_VULKAN;
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_context_backend(c), INFER_BACKEND_CPU);
    cr_assert(strstr(infer_context_backend_note(c), "lower n_batch"), "%s", infer_context_backend_note(c));
    infer_context_free(c);
    infer_model_release(m);
}
