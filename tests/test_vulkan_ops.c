/*
 * test_vulkan_ops.c - every Vulkan shader against the scalar reference:
 * matmul (matrix x vector and matrix x matrix) and get_rows for every
 * weight type against kernels/ref, the other ops against the CPU backend
 * (the path the Vulkan backend must match), on random inputs with odd
 * sizes and rows longer than 4096. Also: weights split into many
 * bindings and ops split across windows (INFER_VK_MAX_BINDING), and the
 * shared-memory variants for devices without subgroups.
 *
 * Each test builds a small model by hand (the weights under test bound to
 * layer roles) and runs single ops on both backends. Skips when no Vulkan
 * device is available; fails if the validation layer reports anything.
 */
#include <math.h>

#include "hparams_testutil.h"
#include "ref/quants.h"
#include "vulkan_testutil.h"

TestSuite(vulkan_ops, .init = vk_test_init);

/* ---- a hand-built model and both backends ------------------------------------- */

typedef struct {
    infer_model m;
    layer_weights layer;
    void *data[16];
    int n_data;
    int32_t next_index;
    backend *cpu, *vk;
    uint64_t rng;
} rig;

static void rig_hparams(rig *r, uint32_t n_head, uint32_t n_head_kv, uint32_t hd, uint32_t n_rot, int neox) {
    memset(r, 0, sizeof *r);
    r->rng = 0x1234 + n_head * 7 + hd;
    test_rig_hparams(&r->m.hp, n_head, n_head_kv, hd, n_rot, neox);
    r->m.layers = &r->layer;
}

/* Random GGUF bytes of a weight: random quants, sane f16 scales. */
static void fill_weight(rig *r, weight *w, uint32_t type, int64_t rows, int64_t cols) {
    uint64_t rb = 0;
    cr_assert_eq(infer_type_row_bytes(type, (uint64_t)cols, &rb), INFER_OK);
    uint8_t *d = malloc((size_t)(rb * (uint64_t)rows));
    cr_assert_not_null(d);
    r->data[r->n_data++] = d;
    const size_t n = (size_t)(rb * (uint64_t)rows);
    if (type == INFER_TYPE_F32 || type == INFER_TYPE_F16 || type == INFER_TYPE_BF16) {
        for (size_t i = 0; i < n / (type == INFER_TYPE_F32 ? 4 : 2); i++) {
            float f = test_uniform(&r->rng, -1.0f, 1.0f);
            if (type == INFER_TYPE_F32) memcpy(d + 4 * i, &f, 4);
            else {
                uint16_t h = type == INFER_TYPE_F16 ? infer_f32_to_f16(f) : infer_f32_to_bf16(f);
                memcpy(d + 2 * i, &h, 2);
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) d[i] = (uint8_t)test_rng(&r->rng);
        /* (block bytes, offsets of its f16 scales) */
        struct { uint32_t type, bytes, f16[2], nf; } L[] = {
            {INFER_TYPE_Q4_0, 18, {0}, 1},     {INFER_TYPE_Q4_1, 20, {0, 2}, 2}, {INFER_TYPE_Q5_0, 22, {0}, 1},
            {INFER_TYPE_Q5_1, 24, {0, 2}, 2},  {INFER_TYPE_Q8_0, 34, {0}, 1},    {INFER_TYPE_Q2_K, 84, {80, 82}, 2},
            {INFER_TYPE_Q3_K, 110, {108}, 1},  {INFER_TYPE_Q4_K, 144, {0, 2}, 2}, {INFER_TYPE_Q5_K, 176, {0, 2}, 2},
            {INFER_TYPE_Q6_K, 210, {208}, 1},
        };
        int found = 0;
        for (size_t k = 0; k < sizeof L / sizeof L[0]; k++) {
            if (L[k].type != type) continue;
            found = 1;
            for (size_t b = 0; b < n / L[k].bytes; b++) {
                for (uint32_t f = 0; f < L[k].nf; f++) {
                    uint16_t h = infer_f32_to_f16(test_uniform(&r->rng, 0.001f, 0.05f));
                    memcpy(d + b * L[k].bytes + L[k].f16[f], &h, 2);
                }
            }
        }
        cr_assert(found, "type %u", type);
    }
    w->data = d;
    w->type = type;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = (size_t)rb;
    w->index = r->next_index++;
}

static void fill_norm(rig *r, weight *w, int64_t n) {
    float *d = malloc((size_t)n * sizeof *d);
    cr_assert_not_null(d);
    r->data[r->n_data++] = d;
    for (int64_t i = 0; i < n; i++) d[i] = test_uniform(&r->rng, 0.5f, 1.5f);
    w->data = d;
    w->type = INFER_TYPE_F32;
    w->rows = 1;
    w->cols = n;
    w->row_bytes = (size_t)n * 4;
    w->index = r->next_index++;
}

/* Both backends over the model; skips without a Vulkan device. */
static void rig_start(rig *r, size_t arena_floats, uint32_t n_ctx, uint32_t kv_type) {
    backend_config cfg = {.model = &r->m, .n_ctx = n_ctx, .n_batch = 16, .kv_type = kv_type,
                          .arena_floats = arena_floats, .n_threads = 1};
    infer_error err = {0};
    infer_status s = backend_vulkan_new(&cfg, -1, 0, &r->vk, &err);
    VK_SKIP_UNLESS(s, err);
    cr_assert_eq(s, INFER_OK, "%s", err.message);
    cr_assert_eq(backend_cpu_new(&cfg, &r->cpu, &err), INFER_OK, "%s", err.message);
}

static void rig_end(rig *r) {
    if (r->vk) r->vk->ops->free(r->vk);
    if (r->cpu) r->cpu->ops->free(r->cpu);
    for (int i = 0; i < r->n_data; i++) free(r->data[i]);
    vk_expect_clean();
}

/* The same floats into both arenas at off. */
static void put(rig *r, act off, const float *src, size_t n) {
    memcpy((float *)r->cpu->ops->host(r->cpu, off, n), src, n * sizeof *src);
    infer_error err = {0};
    cr_assert_eq(backend_vulkan_write(r->vk, off, src, n, &err), INFER_OK, "%s", err.message);
}

static void put_random(rig *r, act off, size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    for (size_t i = 0; i < n; i++) x[i] = test_uniform(&r->rng, lo, hi);
    put(r, off, x, n);
    free(x);
}

static void sync_both(rig *r) {
    infer_error err = {0};
    cr_assert_eq(r->cpu->ops->sync(r->cpu, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(r->vk->ops->sync(r->vk, &err), INFER_OK, "%s", err.message);
}

/* max |vk - want| <= tol * (max |want| + 1); returns the max diff. */
static double compare(const char *what, const float *vk, const float *want, size_t n, double tol) {
    cr_assert_not_null(vk, "%s: no Vulkan output", what);
    double md = 0.0, mx = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)vk[i] - (double)want[i]);
        cr_assert(isfinite(vk[i]), "%s: [%zu] = %f is not finite", what, i, vk[i]);
        if (d > md) {
            md = d;
            at = i;
        }
        if (fabs(want[i]) > mx) mx = fabs(want[i]);
    }
    cr_log_info("%s: max |diff| %g (scale %g)", what, md, mx);
    cr_expect(md <= tol * (mx + 1.0), "%s: max |diff| %g at %zu (vk %.9g, want %.9g; scale %g)", what, md, at,
              (double)vk[at], (double)want[at], mx);
    return md;
}

/* ---- matmul and get_rows against kernels/ref ----------------------------------- */

/* out = W x (n tokens) by the reference: activations to vec_dot_type. */
static void ref_matmul(const weight *w, const float *x, int n, float *out) {
    uint32_t vt = infer_ref_vec_dot_type(w->type);
    uint64_t arb = 0;
    cr_assert_eq(infer_type_row_bytes(vt, (uint64_t)w->cols, &arb), INFER_OK);
    uint8_t *qa = malloc((size_t)arb * (size_t)n);
    cr_assert_not_null(qa);
    for (int t = 0; t < n; t++) cr_assert_eq(infer_ref_quantize(vt, x + (size_t)t * (size_t)w->cols, qa + (size_t)t * arb, w->cols), 0);
    infer_ref_matmul(w->type, w->data, w->row_bytes, w->rows, w->cols, qa, (size_t)arb, n, out, (size_t)w->rows);
    free(qa);
}

static void check_matmul(rig *r, const weight *w, int n, const char *name) {
    const act x = 0, out = 64 * 1024;
    const size_t nx = (size_t)n * (size_t)w->cols, no = (size_t)n * (size_t)w->rows;
    float *xs = malloc(nx * sizeof *xs), *want = malloc(no * sizeof *want);
    cr_assert(xs && want);
    for (size_t i = 0; i < nx; i++) xs[i] = test_uniform(&r->rng, -1.0f, 1.0f);
    infer_error err = {0};
    cr_assert_eq(backend_vulkan_write(r->vk, x, xs, nx, &err), INFER_OK, "%s", err.message);
    r->vk->ops->matmul(r->vk, w, NULL, x, out, n);
    cr_assert_eq(r->vk->ops->sync(r->vk, &err), INFER_OK, "%s", err.message);
    ref_matmul(w, xs, n, want);
    char what[128];
    snprintf(what, sizeof what, "matmul %s %lldx%lld n=%d", name, (long long)w->rows, (long long)w->cols, n);
    compare(what, r->vk->ops->host(r->vk, out, no), want, no, 2e-5);
    free(xs);
    free(want);
}

static void check_get_rows(rig *r, const weight *w, const char *name) {
    const int32_t ids[] = {0, (int32_t)w->rows - 1, 17, 17, (int32_t)w->rows / 2, 3, 1};
    const int n = (int)(sizeof ids / sizeof ids[0]);
    const size_t cols = (size_t)w->cols;
    float *want = malloc((size_t)n * cols * sizeof *want);
    cr_assert_not_null(want);
    for (int t = 0; t < n; t++) infer_ref_dequantize(w->type, (const uint8_t *)w->data + (size_t)ids[t] * w->row_bytes, want + (size_t)t * cols, w->cols);
    r->vk->ops->get_rows(r->vk, w, ids, n, 128);
    infer_error err = {0};
    cr_assert_eq(r->vk->ops->sync(r->vk, &err), INFER_OK, "%s", err.message);
    const float *got = r->vk->ops->host(r->vk, 128, (size_t)n * cols);
    cr_assert_not_null(got);
    char what[96];
    snprintf(what, sizeof what, "get_rows %s", name);
    /* Same formulas on both sides: bit for bit. */
    compare(what, got, want, (size_t)n * cols, 0.0);
    free(want);
}

/* A weight type: small odd matrices (one ending in a partial group), one
 * with rows longer than 4096, both kernels, and get_rows. */
static void check_type(uint32_t type) {
    const int kq = type >= INFER_TYPE_Q2_K && type <= INFER_TYPE_Q6_K;
    const int fl = type == INFER_TYPE_F32 || type == INFER_TYPE_F16 || type == INFER_TYPE_BF16;
    const int64_t small = kq ? 768 : fl ? 37 : 96, big = fl ? 4099 : 4352;
    rig r;
    rig_hparams(&r, 4, 2, 8, 8, 0);
    fill_weight(&r, &r.m.tok_embd, type, 300, small);
    fill_weight(&r, &r.layer.wq, type, 37, small);
    fill_weight(&r, &r.layer.wk, type, 5, big);
    rig_start(&r, 256 * 1024, 16, INFER_TYPE_F16);
    const char *name = infer_type_name(type);
    check_matmul(&r, &r.layer.wq, 1, name);
    check_matmul(&r, &r.layer.wq, 6, name);
    check_matmul(&r, &r.layer.wk, 1, name);
    check_matmul(&r, &r.layer.wk, 3, name);
    check_get_rows(&r, &r.m.tok_embd, name);
    rig_end(&r);
}

Test(vulkan_ops, f32) { check_type(INFER_TYPE_F32); }
Test(vulkan_ops, f16) { check_type(INFER_TYPE_F16); }
Test(vulkan_ops, bf16) { check_type(INFER_TYPE_BF16); }
Test(vulkan_ops, q4_0) { check_type(INFER_TYPE_Q4_0); }
Test(vulkan_ops, q4_1) { check_type(INFER_TYPE_Q4_1); }
Test(vulkan_ops, q5_0) { check_type(INFER_TYPE_Q5_0); }
Test(vulkan_ops, q5_1) { check_type(INFER_TYPE_Q5_1); }
Test(vulkan_ops, q8_0) { check_type(INFER_TYPE_Q8_0); }
Test(vulkan_ops, q2_k) { check_type(INFER_TYPE_Q2_K); }
Test(vulkan_ops, q3_k) { check_type(INFER_TYPE_Q3_K); }
Test(vulkan_ops, q4_k) { check_type(INFER_TYPE_Q4_K); }
Test(vulkan_ops, q5_k) { check_type(INFER_TYPE_Q5_K); }
Test(vulkan_ops, q6_k) { check_type(INFER_TYPE_Q6_K); }

/* ---- the other ops against the CPU backend ---------------------------------------- */

static void compare_arena(rig *r, const char *what, act off, size_t n, double tol) {
    compare(what, r->vk->ops->host(r->vk, off, n), r->cpu->ops->host(r->cpu, off, n), n, tol);
}

Test(vulkan_ops, rms_norm_long_odd_rows_and_in_place) {
    rig r;
    rig_hparams(&r, 4, 2, 8, 8, 0);
    fill_norm(&r, &r.layer.attn_norm, 5003);
    fill_norm(&r, &r.layer.q_norm, 37);
    rig_start(&r, 64 * 1024, 16, INFER_TYPE_F16);
    put_random(&r, 0, 3 * 5003, -3.0f, 3.0f);
    put_random(&r, 20000, 7 * 37, -1.0f, 1.0f);
    for (int i = 0; i < 2; i++) {
        backend *b = i ? r.vk : r.cpu;
        b->ops->rms_norm(b, 0, 16000 - 1, 3, &r.layer.attn_norm, 1e-5f); /* odd (unaligned) output offset */
        b->ops->rms_norm(b, 20000, 20000, 7, &r.layer.q_norm, 1e-6f);    /* in place */
    }
    sync_both(&r);
    compare_arena(&r, "rms_norm 3 x 5003", 16000 - 1, 3 * 5003, 2e-6);
    compare_arena(&r, "rms_norm in place 7 x 37", 20000, 7 * 37, 2e-6);
    rig_end(&r);
}

static void check_rope(int neox, int factors) {
    rig r;
    /* head 40, rotating 24 of its dims (partial rotary) */
    rig_hparams(&r, 3, 1, 40, 24, neox);
    float ff[12];
    for (int i = 0; i < 12; i++) ff[i] = 1.0f + 0.37f * (float)i;
    if (factors) r.m.rope_freq_factors = ff;
    r.m.hp.rope_freq_scale = 0.5f;
    fill_norm(&r, &r.layer.attn_norm, 120);
    rig_start(&r, 4096, 16, INFER_TYPE_F16);
    put_random(&r, 1, 5 * 120, -2.0f, 2.0f);
    put_random(&r, 1001, 5 * 40, -2.0f, 2.0f);
    for (int i = 0; i < 2; i++) {
        backend *b = i ? r.vk : r.cpu;
        b->ops->rope(b, 1, 5, 3, 40, 1000);    /* q: 3 heads */
        b->ops->rope(b, 1001, 5, 1, 40, 1000); /* k: 1 head, same positions */
    }
    sync_both(&r);
    /* cos/sin come from the host with the CPU's formulas: exact. */
    compare_arena(&r, "rope q", 1, 5 * 120, 0.0);
    compare_arena(&r, "rope k", 1001, 5 * 40, 0.0);
    rig_end(&r);
}

Test(vulkan_ops, rope_normal) { check_rope(0, 0); }
Test(vulkan_ops, rope_neox_freq_factors) { check_rope(1, 1); }

Test(vulkan_ops, silu_mul_and_add) {
    rig r;
    rig_hparams(&r, 4, 2, 8, 8, 0);
    fill_norm(&r, &r.layer.attn_norm, 32);
    rig_start(&r, 40000, 16, INFER_TYPE_F16);
    put_random(&r, 3, 10007, -6.0f, 6.0f);
    put_random(&r, 10011, 10007, -2.0f, 2.0f);
    put_random(&r, 20019, 10007, -2.0f, 2.0f);
    for (int i = 0; i < 2; i++) {
        backend *b = i ? r.vk : r.cpu;
        b->ops->silu_mul(b, 3, 10011, 10007);
        b->ops->add(b, 20019, 3, 10007);
    }
    sync_both(&r);
    compare_arena(&r, "silu_mul", 3, 10007, 1e-6);
    compare_arena(&r, "add", 20019, 10007, 1e-6);
    rig_end(&r);
}

/* Rows [0, n) of K and V into the cache, n_batch (16) at a time. */
static void store_rows(backend *b, act k, act v, size_t kvrow, uint32_t n) {
    for (uint32_t p = 0; p < n; p += 16) {
        int m = n - p < 16 ? (int)(n - p) : 16;
        b->ops->kv_store(b, 0, k + p * kvrow, v + p * kvrow, m, p);
    }
}

/* Store n_past rows of K and V, then attend with n query rows; heads of
 * hd values (GQA: 4 query heads share 2 KV heads). */
static void check_attention(uint32_t hd, uint32_t kv_type, uint32_t n_past, int n) {
    rig r;
    rig_hparams(&r, 4, 2, hd, hd, 0);
    fill_norm(&r, &r.layer.attn_norm, 32);
    const size_t q = 0, k = 40000, v = 80000, out = 120000, kvrow = 2 * (size_t)hd, qrow = 4 * (size_t)hd;
    rig_start(&r, 200000, 64, kv_type);
    put_random(&r, k, (n_past + (size_t)n) * kvrow, -1.0f, 1.0f);
    put_random(&r, v, (n_past + (size_t)n) * kvrow, -1.0f, 1.0f);
    put_random(&r, q, (size_t)n * qrow, -1.0f, 1.0f);
    for (int i = 0; i < 2; i++) {
        backend *b = i ? r.vk : r.cpu;
        store_rows(b, k, v, kvrow, n_past + (uint32_t)n);
        b->ops->attention(b, 0, q, out, n, n_past);
    }
    sync_both(&r);
    char what[96];
    snprintf(what, sizeof what, "attention hd %u kv %s past %u n %d", hd, infer_type_name(kv_type), n_past, n);
    /* Online softmax vs the CPU's two passes (which rounds the weights to
     * F16 for an F16 cache): close, not equal. */
    compare_arena(&r, what, out, (size_t)n * qrow, kv_type == INFER_TYPE_F32 ? 1e-5 : 2e-3);
    rig_end(&r);
}

Test(vulkan_ops, attention_f16_hd64) { check_attention(64, INFER_TYPE_F16, 37, 3); }
Test(vulkan_ops, attention_f32_odd_head_36) { check_attention(36, INFER_TYPE_F32, 20, 5); }
Test(vulkan_ops, attention_f16_head_300_beyond_registers) { check_attention(300, INFER_TYPE_F16, 11, 2); }

/* Context shift: move positions [src, src + n) to dst (keys re-rotated),
 * then attention over the moved cache agrees with the CPU's. */
static void check_kv_move(int neox) {
    rig r;
    rig_hparams(&r, 4, 2, 32, 32, neox);
    fill_norm(&r, &r.layer.attn_norm, 32);
    const size_t q = 0, k = 4000, v = 12000, out = 20000, kvrow = 64;
    rig_start(&r, 30000, 64, INFER_TYPE_F16);
    put_random(&r, k, 50 * kvrow, -1.0f, 1.0f);
    put_random(&r, v, 50 * kvrow, -1.0f, 1.0f);
    for (int i = 0; i < 2; i++) {
        backend *b = i ? r.vk : r.cpu;
        store_rows(b, k, v, kvrow, 50);
        infer_error err = {0};
        cr_assert_eq(b->ops->sync(b, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(b->ops->kv_move(b, 4, 17, 33, &err), INFER_OK, "%s", err.message); /* 13 dropped */
    }
    put_random(&r, q, 2 * 128, -1.0f, 1.0f); /* after: a move may use the arena as scratch */
    for (int i = 0; i < 2; i++) {
        backend *b = i ? r.vk : r.cpu;
        b->ops->attention(b, 0, q, out, 2, 35);
    }
    sync_both(&r);
    compare_arena(&r, neox ? "attention after kv_move (neox)" : "attention after kv_move", out, 2 * 128, 2e-3);
    rig_end(&r);
}

Test(vulkan_ops, kv_move_normal) { check_kv_move(0); }
Test(vulkan_ops, kv_move_neox) { check_kv_move(1); }

/* ---- splitting and fallbacks ------------------------------------------------------- */

/* 64 KiB bindings: the weight is cut into 4 chunks (26 rows each), the
 * activations of 4 tokens (4 x 4352 floats) exceed a window and the op
 * is split by tokens, get_rows reads rows across chunks. */
Test(vulkan_ops, weights_and_windows_split_beyond_binding_limits) {
    setenv("INFER_VK_MAX_BINDING", "65536", 1);
    rig r;
    rig_hparams(&r, 4, 2, 8, 8, 0);
    fill_weight(&r, &r.m.tok_embd, INFER_TYPE_Q8_0, 100, 4352);
    fill_weight(&r, &r.layer.wq, INFER_TYPE_Q4_K, 100, 4352);
    rig_start(&r, 128 * 1024, 16, INFER_TYPE_F16);
    const vk_tensor *t = vk_tensor_of(((vk_backend *)r.vk)->w, &r.layer.wq);
    cr_assert_not_null(t);
    cr_expect_geq(t->n_chunks, 3, "the weight should be split (%u chunks)", t->n_chunks);
    check_matmul(&r, &r.layer.wq, 4, "q4_k split");
    check_matmul(&r, &r.layer.wq, 1, "q4_k split");
    check_get_rows(&r, &r.m.tok_embd, "q8_0 split");
    rig_end(&r);
}

/* RMSNorm of n_rows random rows (arena 100000 on) on both backends, out at
 * arena offset out: the same within 2e-6. */
static void check_rms_norm(rig *r, int n_rows, act out, const char *what) {
    put_random(r, 100000, (size_t)n_rows * 5003, -3.0f, 3.0f);
    for (int i = 0; i < 2; i++) {
        backend *b = i ? r->vk : r->cpu;
        b->ops->rms_norm(b, 100000, out, n_rows, &r->layer.attn_norm, 1e-5f);
    }
    sync_both(r);
    compare_arena(r, what, out, (size_t)n_rows * 5003, 2e-6);
}

/* The shared-memory variants (devices without subgroup arithmetic). */
Test(vulkan_ops, without_subgroups) {
    setenv("INFER_VK_NO_SUBGROUP", "1", 1);
    rig r;
    rig_hparams(&r, 4, 2, 64, 64, 0);
    fill_weight(&r, &r.layer.wq, INFER_TYPE_Q5_1, 37, 96);
    fill_norm(&r, &r.layer.attn_norm, 5003);
    rig_start(&r, 200000, 64, INFER_TYPE_F16);
    cr_assert_eq(((vk_backend *)r.vk)->d->subgroups, 0);
    check_matmul(&r, &r.layer.wq, 1, "q5_1 nosg");
    check_matmul(&r, &r.layer.wq, 5, "q5_1 nosg");
    check_rms_norm(&r, 2, 110007, "rms_norm nosg");
    rig_end(&r);
    check_attention(64, INFER_TYPE_F16, 30, 2);
}

/* A GPU's work shapes (on any device here): matrix x vector with 2 rows per
 * lane group for the legacy and float types and 1 for the K-quants (row
 * counts that leave a partial group), RMSNorm a whole workgroup per row. */
Test(vulkan_ops, gpu_work_shapes) {
    setenv("INFER_VK_GPU_SHAPES", "1", 1);
    rig r;
    rig_hparams(&r, 4, 2, 64, 64, 0);
    fill_weight(&r, &r.layer.wq, INFER_TYPE_Q4_0, 37, 4352);
    fill_weight(&r, &r.layer.wk, INFER_TYPE_Q4_K, 37, 768);
    fill_weight(&r, &r.layer.wv, INFER_TYPE_F16, 37, 37);
    fill_norm(&r, &r.layer.attn_norm, 5003);
    rig_start(&r, 200000, 64, INFER_TYPE_F16);
    const vk_dev *d = ((vk_backend *)r.vk)->d;
    cr_assert_eq(d->gpu_shapes, 1);
    cr_assert_geq(d->norm_wg, 64);
    cr_assert_eq(d->norm_wg & (d->norm_wg - 1), 0, "norm_wg %u is not a power of two", d->norm_wg);
    cr_assert_eq(vk_mv_rows(d, INFER_TYPE_Q4_0), 2);
    cr_assert_eq(vk_mv_rows(d, INFER_TYPE_Q4_K), 1);
    check_matmul(&r, &r.layer.wq, 1, "q4_0 gpu shapes");
    check_matmul(&r, &r.layer.wk, 1, "q4_k gpu shapes");
    check_matmul(&r, &r.layer.wv, 1, "f16 gpu shapes");
    check_matmul(&r, &r.layer.wk, 3, "q4_k gpu shapes");
    check_rms_norm(&r, 3, 120000, "rms_norm gpu shapes");
    rig_end(&r);
}

/* Every host allocation made while creating the backend (device, weight
 * upload, context objects), failed in turn: a clean error, nothing leaked,
 * and the next creation works (DESIGN.md rule 5). */
Test(vulkan_ops, allocation_failure_at_every_host_allocation) {
    rig r;
    rig_hparams(&r, 4, 2, 8, 8, 0);
    fill_weight(&r, &r.m.tok_embd, INFER_TYPE_Q4_0, 300, 96);
    fill_weight(&r, &r.layer.wq, INFER_TYPE_Q4_K, 37, 768);
    fill_norm(&r, &r.layer.attn_norm, 32);
    backend_config cfg = {.model = &r.m, .n_ctx = 16, .n_batch = 4, .kv_type = INFER_TYPE_F16,
                          .arena_floats = 4096, .n_threads = 1};
    infer_error err = {0};
    backend *b = NULL;
    const uint64_t a0 = infer_alloc_count();
    infer_status s = backend_vulkan_new(&cfg, -1, 0, &b, &err);
    VK_SKIP_UNLESS(s, err);
    cr_assert_eq(s, INFER_OK, "%s", err.message);
    const uint64_t n = infer_alloc_count() - a0;
    b->ops->free(b);
    cr_assert_gt(n, 5, "only %llu allocations counted", (unsigned long long)n);
    cr_log_info("failing each of %llu host allocations in turn", (unsigned long long)n);
    for (uint64_t k = 1; k <= n; k++) {
        b = NULL;
        infer_alloc_fail_at(k);
        s = backend_vulkan_new(&cfg, -1, 0, &b, &err);
        infer_alloc_fail_at(0);
        if (s == INFER_OK) {
            b->ops->free(b); /* that allocation had a fallback */
        } else {
            cr_expect(s == INFER_ENOMEM || s == INFER_EBACKEND, "allocation %llu: status %d (%s)",
                      (unsigned long long)k, (int)s, err.message);
            cr_expect_null(b);
        }
        LEAK_CHECK();
    }
    cr_assert_eq(backend_vulkan_new(&cfg, -1, 0, &b, &err), INFER_OK, "%s", err.message);
    b->ops->free(b);
    for (int i = 0; i < r.n_data; i++) free(r.data[i]);
    vk_expect_clean();
}
