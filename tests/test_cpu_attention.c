/*
 * test_cpu_attention.c - the CPU backend's attention (online softmax over
 * blocks of cached positions) against attention computed directly in
 * double: one softmax over every cached position, from the same q, K and V
 * rounded to the cache type. Depths of one block, exactly one block, one
 * position past it and several blocks; a generated token and prompt
 * batches whose query tokens straddle a block edge (their later tokens
 * have no position in the last block); GQA groups of 1, 4 and 8; F16 and
 * F32 caches; head sizes 64 and 36; a context shorter than one block.
 * Also: the same bits at 1, 2 and 3 threads, and a depth of one block the
 * same bits as before the blocks (a context whose block is the whole
 * cache gives what a longer one gives while the depth fits its first
 * block).
 *
 * Keys and values carry a slow function of the position, so blocks
 * differ in their largest score and in their mean value: a merge that
 * weighs a block wrongly is off by far more than the tolerance.
 */
#include <math.h>

#include "backend.h"
#include "hparams_testutil.h"
#include "ref/quants.h"
#include "testutil.h"

typedef struct {
    uint32_t n_head, n_head_kv, hd, kv_type, n_ctx;
    int n_threads;
} att_shape;

typedef struct {
    infer_model m;
    layer_weights layer;
    float norm[4096];
    backend *b;
} att_rig;

static void rig_new(att_rig *r, const att_shape *s) {
    memset(r, 0, sizeof *r);
    model_hparams *hp = &r->m.hp;
    test_rig_hparams(hp, s->n_head, s->n_head_kv, s->hd, s->hd, 0);
    r->m.layers = &r->layer;
    cr_assert_leq(hp->n_embd, 4096);
    for (uint32_t i = 0; i < hp->n_embd; i++) r->norm[i] = 1.0f;
    weight *w = &r->layer.attn_norm;
    w->data = r->norm;
    w->type = INFER_TYPE_F32;
    w->rows = 1;
    w->cols = hp->n_embd;
    w->row_bytes = (size_t)hp->n_embd * 4;
    backend_config cfg = {.model = &r->m, .n_ctx = s->n_ctx, .n_batch = 64, .kv_type = s->kv_type,
                          .arena_floats = 1u << 22, .n_threads = s->n_threads, .poll = POOL_POLL_DEFAULT};
    infer_error err = {0};
    cr_assert_eq(backend_cpu_new(&cfg, &r->b, &err), INFER_OK, "%s", err.message);
}

/* A value as the cache holds it. */
static double cached(uint32_t kv_type, float x) {
    return kv_type == INFER_TYPE_F16 ? (double)infer_f16_to_f32(infer_f32_to_f16(x)) : (double)x;
}

/* Arena layout (floats): q at 0, out at 1M, K at 2M, V at 3M. */
enum { Q_AT = 0, OUT_AT = 1 << 20, K_AT = 2 << 20, V_AT = 3 << 20 };

/* Store n_past + n positions, attend with the last n as queries; out
 * gets the backend's result ([n][n_head][hd]). Deterministic inputs. */
static void run_case(const att_shape *s, uint32_t n_past, int n, float *out, float **kv_q) {
    att_rig r;
    rig_new(&r, s);
    backend *b = r.b;
    const uint32_t total = n_past + (uint32_t)n, hd = s->hd;
    const size_t kvrow = (size_t)s->n_head_kv * hd, qrow = (size_t)s->n_head * hd;
    cr_assert_leq(total * kvrow, (size_t)1 << 20);
    float *K = (float *)b->ops->host(b, K_AT, total * kvrow), *V = (float *)b->ops->host(b, V_AT, total * kvrow);
    float *Q = (float *)b->ops->host(b, Q_AT, (size_t)n * qrow);
    uint64_t rng = 77 + hd;
    for (uint32_t p = 0; p < total; p++) {
        for (size_t i = 0; i < kvrow; i++) {
            const float slow = sinf(0.011f * (float)p * (float)(1 + i % 5));
            K[p * kvrow + i] = 0.6f * slow + test_uniform(&rng, -0.7f, 0.7f);
            V[p * kvrow + i] = cosf(0.007f * (float)p + (float)i) + test_uniform(&rng, -0.5f, 0.5f);
        }
    }
    for (size_t i = 0; i < (size_t)n * qrow; i++) Q[i] = test_uniform(&rng, -2.5f, 2.5f);
    for (uint32_t p = 0; p < total; p += 64) {
        const int m = total - p < 64 ? (int)(total - p) : 64;
        b->ops->kv_store(b, 0, K_AT + p * kvrow, V_AT + p * kvrow, m, p);
    }
    b->ops->attention(b, 0, Q_AT, OUT_AT, n, n_past);
    infer_error err = {0};
    cr_assert_eq(b->ops->sync(b, &err), INFER_OK);
    memcpy(out, b->ops->host(b, OUT_AT, (size_t)n * qrow), (size_t)n * qrow * sizeof *out);
    if (kv_q) { /* the inputs, for the reference: K, V, Q one after the other */
        *kv_q = malloc((2 * total * kvrow + (size_t)n * qrow) * sizeof(float));
        cr_assert_not_null(*kv_q);
        memcpy(*kv_q, K, total * kvrow * sizeof(float));
        memcpy(*kv_q + total * kvrow, V, total * kvrow * sizeof(float));
        memcpy(*kv_q + 2 * total * kvrow, Q, (size_t)n * qrow * sizeof(float));
    }
    b->ops->free(b);
}

/* The direct computation; returns the largest |diff| against got. */
static double check_against_direct(const att_shape *s, uint32_t n_past, int n, const float *got, const float *in) {
    const uint32_t total = n_past + (uint32_t)n, hd = s->hd, group = s->n_head / s->n_head_kv;
    const size_t kvrow = (size_t)s->n_head_kv * hd, qrow = (size_t)s->n_head * hd;
    const float *K = in, *V = in + total * kvrow, *Q = in + 2 * total * kvrow;
    double *sc = malloc(total * sizeof *sc), md = 0.0;
    cr_assert_not_null(sc);
    for (int t = 0; t < n; t++) {
        const uint32_t pos = n_past + (uint32_t)t;
        for (uint32_t h = 0; h < s->n_head; h++) {
            const uint32_t g = h / group;
            double mx = -INFINITY, sum = 0.0;
            for (uint32_t p = 0; p <= pos; p++) {
                double d = 0.0;
                for (uint32_t i = 0; i < hd; i++)
                    d += cached(s->kv_type, Q[t * qrow + h * hd + i]) * cached(s->kv_type, K[p * kvrow + g * hd + i]);
                sc[p] = d / sqrt((double)hd);
                if (sc[p] > mx) mx = sc[p];
            }
            for (uint32_t p = 0; p <= pos; p++) sum += (sc[p] = exp(sc[p] - mx));
            for (uint32_t i = 0; i < hd; i++) {
                double o = 0.0;
                for (uint32_t p = 0; p <= pos; p++) o += sc[p] / sum * cached(s->kv_type, V[p * kvrow + g * hd + i]);
                const double d = fabs(o - (double)got[t * qrow + h * hd + i]);
                cr_assert(isfinite(got[t * qrow + h * hd + i]));
                if (d > md) md = d;
            }
        }
    }
    free(sc);
    return md;
}

static void check_case(att_shape s, uint32_t n_past, int n) {
    const size_t nq = (size_t)n * s.n_head * s.hd;
    float *out = malloc(nq * sizeof *out), *in = NULL;
    cr_assert_not_null(out);
    run_case(&s, n_past, n, out, &in);
    const double md = check_against_direct(&s, n_past, n, out, in);
    /* F16: each weight rounded to F16 (2^-11 relative) before V, whose
     * values are at most 1.5: the sum moves by under 1e-3. F32: float
     * products and sums. */
    const double tol = s.kv_type == INFER_TYPE_F16 ? 1e-3 : 2e-5;
    cr_log_info("attention heads %u/%u hd %u %s past %u n %d: max |diff| %g", s.n_head, s.n_head_kv, s.hd,
                infer_type_name(s.kv_type), n_past, n, md);
    cr_expect(md <= tol, "attention heads %u/%u hd %u %s n_ctx %u past %u n %d: max |diff| %g > %g", s.n_head,
              s.n_head_kv, s.hd, infer_type_name(s.kv_type), s.n_ctx, n_past, n, md, tol);
    /* the same bits at other thread counts */
    float *again = malloc(nq * sizeof *again);
    cr_assert_not_null(again);
    for (int th = 2; th <= 3; th++) {
        att_shape s2 = s;
        s2.n_threads = th;
        run_case(&s2, n_past, n, again, NULL);
        cr_expect(memcmp(out, again, nq * sizeof *out) == 0, "attention past %u n %d: %d threads differ from 1",
                  n_past, n, th);
    }
    free(again);
    free(out);
    free(in);
}

/* One generated token at depths around the block edges and past them. */
Test(cpu_attention, generated_token_at_depths_around_blocks_f16_gqa4) {
    const att_shape s = {8, 2, 64, INFER_TYPE_F16, 1400, 1};
    static const uint32_t past[] = {0, 100, 511, 512, 600, 1023, 1300};
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) check_case(s, past[i], 1);
    LEAK_CHECK();
}

/* Prompt batches: query tokens straddling a block edge (at 512 and at
 * 1024), and one within the first block. */
Test(cpu_attention, prompt_batches_straddling_blocks_f16_gqa8) {
    const att_shape s = {8, 1, 64, INFER_TYPE_F16, 1100, 1};
    check_case(s, 500, 20);
    check_case(s, 0, 64);
    check_case(s, 980, 64);
    LEAK_CHECK();
}

Test(cpu_attention, f32_cache_odd_head_size_no_gqa) {
    const att_shape s = {4, 4, 36, INFER_TYPE_F32, 1200, 1};
    check_case(s, 1100, 5);
    check_case(s, 511, 1);
    LEAK_CHECK();
}

/* A context shorter than one block: the block is the whole cache. */
Test(cpu_attention, context_shorter_than_a_block) {
    const att_shape s = {8, 2, 64, INFER_TYPE_F16, 70, 1};
    check_case(s, 40, 8);
    check_case(s, 69, 1);
    LEAK_CHECK();
}

/* While the depth fits the first block, a long context gives what a
 * context of one block gives, bit for bit: the blocks change nothing
 * until there are two of them. */
Test(cpu_attention, one_block_same_bits_in_any_context) {
    const att_shape small = {8, 2, 64, INFER_TYPE_F16, 96, 1}, large = {8, 2, 64, INFER_TYPE_F16, 2048, 1};
    const size_t nq = 8 * 8 * 64;
    float *a = malloc(nq * sizeof *a), *b = malloc(nq * sizeof *b);
    cr_assert(a && b);
    run_case(&small, 80, 8, a, NULL);
    run_case(&large, 80, 8, b, NULL);
    cr_expect(memcmp(a, b, nq * sizeof *a) == 0, "a 96-position context and a 2048-position one differ at depth 88");
    free(a);
    free(b);
    LEAK_CHECK();
}

/* RoPE on the CPU with linear scaling (rope_freq_scale 0.25) and Llama 3
 * frequency factors, normal and NeoX pairs: each rotated pair against the
 * angle computed in double, pos * scale * base^(-2i / n_rot) / factor[i]
 * (the scaling reached the CPU only through the Vulkan suite's
 * comparison before). Dims past n_rot stay as they were. */
static void check_rope_scaled(int neox) {
    att_shape s = {.n_head = 2, .n_head_kv = 2, .hd = 16, .kv_type = INFER_TYPE_F32, .n_ctx = 64, .n_threads = 1};
    att_rig r;
    memset(&r, 0, sizeof r);
    test_rig_hparams(&r.m.hp, s.n_head, s.n_head_kv, s.hd, 12, neox);
    r.m.hp.rope_freq_scale = 0.25f;
    float factors[6] = {1.0f, 1.0f, 2.0f, 4.0f, 8.0f, 8.0f};
    r.m.rope_freq_factors = factors;
    r.m.layers = &r.layer;
    backend_config cfg = {.model = &r.m, .n_ctx = s.n_ctx, .n_batch = 8, .kv_type = s.kv_type, .arena_floats = 1u << 16,
                          .n_threads = 1};
    infer_error err = {0};
    cr_assert_eq(backend_cpu_new(&cfg, &r.b, &err), INFER_OK, "%s", err.message);
    backend *b = r.b;
    const int n = 3, row = 2 * 16;
    const uint32_t pos0 = 37;
    float *x = (float *)b->ops->host(b, 0, (size_t)n * row), before[3 * 32];
    for (int i = 0; i < n * row; i++) x[i] = before[i] = 0.25f + 0.01f * (float)(i % 17) - 0.003f * (float)i;
    b->ops->rope(b, 0, n, 2, 16, pos0);
    cr_assert_eq(b->ops->sync(b, &err), INFER_OK);
    const float *y = b->ops->host(b, 0, (size_t)n * row);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < 2; h++) {
            const float *in = before + t * row + h * 16, *out = y + t * row + h * 16;
            for (int i = 0; i < 6; i++) {
                const int a = neox ? i : 2 * i, c = neox ? i + 6 : 2 * i + 1;
                const double th = (double)(pos0 + (uint32_t)t) * 0.25 * pow(10000.0, -2.0 * i / 12.0) / factors[i];
                const double ya = in[a] * cos(th) - in[c] * sin(th), yc = in[a] * sin(th) + in[c] * cos(th);
                cr_assert(fabs(out[a] - ya) < 1e-4 && fabs(out[c] - yc) < 1e-4,
                          "%s token %d head %d pair %d: (%g, %g), want (%g, %g)", neox ? "neox" : "normal", t, h, i,
                          out[a], out[c], ya, yc);
            }
            for (int d = 12; d < 16; d++) cr_assert_eq(out[d], in[d], "dim %d past n_rot changed", d);
        }
    b->ops->free(b);
}

Test(cpu_attention, rope_linear_scale_and_freq_factors) {
    check_rope_scaled(0);
    check_rope_scaled(1);
}
