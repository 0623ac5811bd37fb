/*
 * test_context.c - contexts: a full context refuses more tokens and keeps
 * its cache; ids out of range are refused; no allocation in the token
 * loop; lifetimes (a model released under a live context); threads (EBUSY
 * on a busy context, shared models giving identical results); context
 * shift equivalent to re-decoding the kept tokens.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "backend_cpu_internal.h"
#include "context.h"
#include "infer.h"
#include "pool.h"
#include "synth.h"
#include "testutil.h"

static void *g_buf;
static size_t g_size;

/* A small synthetic model, shared by the tests of one process. */
static infer_model *load_synth(void) {
    infer_error err = {0};
    if (!g_buf) {
        synth_params p = synth_default_params();
        p.std = 0.2f; /* sharper logits than the default */
        cr_assert_eq(synth_model(&p, &g_buf, &g_size, &err), INFER_OK, "%s", err.message);
    }
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(g_buf, g_size, NULL, &m, &err), INFER_OK, "%s", err.message);
    return m;
}

static infer_context *new_ctx(infer_model *m, uint32_t n_ctx, uint32_t kv_type) {
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = n_ctx;
    cp.kv_type = kv_type;
    cp.all_logits = 1;
    infer_context *c = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    return c;
}

static void ids_for(int32_t *ids, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(3 + (i * 7919u + seed * 104729u) % 290u);
}

Test(context, full_context_refused_and_cache_kept) {
    infer_model *m = load_synth();
    infer_context *a = new_ctx(m, 16, INFER_TYPE_F16), *b = new_ctx(m, 16, INFER_TYPE_F16);
    int32_t ids[17];
    infer_error err = {0};
    ids_for(ids, 17, 1);
    cr_assert_eq(infer_decode(a, ids, 10, 0, &err), INFER_OK);
    cr_assert_eq(infer_decode(a, ids + 10, 7, 0, &err), INFER_ECTX_FULL);
    cr_expect(strstr(err.message, "context full") != NULL, "%s", err.message);
    cr_assert_eq(infer_context_n_past(a), 10);
    /* The refused call changed nothing: going on matches a fresh run. */
    cr_assert_eq(infer_decode(a, ids + 10, 6, 0, &err), INFER_OK);
    cr_assert_eq(infer_decode(b, ids, 16, 0, &err), INFER_OK);
    cr_assert_eq(memcmp(infer_logits(a), infer_logits(b), (size_t)infer_model_n_vocab(m) * sizeof(float)), 0);
    cr_assert_eq(infer_context_n_past(a), 16);
    cr_assert_eq(infer_decode(a, ids, 1, 0, &err), INFER_ECTX_FULL);
    infer_context_free(a);
    infer_context_free(b);
    infer_model_release(m);
    LEAK_CHECK();
}

Test(context, token_ids_out_of_range_refused) {
    infer_model *m = load_synth();
    infer_context *c = new_ctx(m, 32, INFER_TYPE_F16);
    infer_error err = {0};
    int32_t bad[] = {5, 300}, neg[] = {-1};
    cr_assert_eq(infer_decode(c, bad, 2, 0, &err), INFER_EINVAL);
    cr_assert_eq(infer_decode(c, neg, 1, 0, &err), INFER_EINVAL);
    cr_assert_eq(infer_context_n_past(c), 0);
    cr_assert_null(infer_logits(c));
    char piece[64];
    size_t len;
    cr_assert_eq(infer_token_to_piece(m, 300, 0, piece, sizeof piece, &len), INFER_EINVAL);
    cr_assert_eq(infer_token_to_piece(m, -5, 0, piece, sizeof piece, &len), INFER_EINVAL);
    infer_context_free(c);
    infer_model_release(m);
    LEAK_CHECK();
}

Test(context, all_logits_batch_larger_than_n_batch_refused) {
    infer_model *m = load_synth();
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 8;
    infer_context *c = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK);
    int32_t one[2] = {5, 6};
    cr_assert_eq(infer_decode(c, one, 2, INFER_DECODE_ALL_LOGITS, &err), INFER_EINVAL, "needs all_logits");
    cr_assert(strstr(err.message, "all_logits") != NULL, "%s", err.message);
    infer_context_free(c);
    cp.all_logits = 1;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK);
    int32_t ids[20];
    ids_for(ids, 20, 2);
    cr_assert_eq(infer_decode(c, ids, 20, INFER_DECODE_ALL_LOGITS, &err), INFER_EINVAL);
    /* Without all logits, long inputs go through in batches. */
    cr_assert_eq(infer_decode(c, ids, 20, 0, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_context_n_past(c), 20);
    infer_context_free(c);
    infer_model_release(m);
    LEAK_CHECK();
}

/* Batched prompt processing gives the same logits as token-by-token. */
Test(context, batch_equals_one_at_a_time) {
    infer_model *m = load_synth();
    infer_context *a = new_ctx(m, 64, INFER_TYPE_F32), *b = new_ctx(m, 64, INFER_TYPE_F32);
    int32_t ids[24];
    infer_error err = {0};
    ids_for(ids, 24, 3);
    cr_assert_eq(infer_decode(a, ids, 24, INFER_DECODE_ALL_LOGITS, &err), INFER_OK);
    size_t nv = (size_t)infer_model_n_vocab(m);
    for (int i = 0; i < 24; i++) {
        cr_assert_eq(infer_decode(b, ids + i, 1, 0, &err), INFER_OK);
        const float *x = infer_logits_ith(a, (size_t)i), *y = infer_logits(b);
        for (size_t v = 0; v < nv; v++) cr_assert_float_eq(x[v], y[v], 1e-5, "token %d logit %zu", i, v);
    }
    infer_context_free(a);
    infer_context_free(b);
    infer_model_release(m);
    LEAK_CHECK();
}

/* Watches a thread's affinity until told to stop: saw_one is set when it
 * was ever the one CPU cpu. */
typedef struct {
    pid_t tid;
    int cpu;
    _Atomic int stop, saw_one;
} affinity_watch;

static void *watch_affinity(void *v) {
    affinity_watch *w = v;
    while (!atomic_load(&w->stop)) {
        cpu_set_t s;
        if (sched_getaffinity(w->tid, sizeof s, &s) == 0 && CPU_COUNT(&s) == 1 && CPU_ISSET(w->cpu, &s))
            atomic_store(&w->saw_one, 1);
    }
    return NULL;
}

/* llama.cpp's -C / --cpu-strict / --poll as context parameters: the
 * logits are those of a context without them (placement changes no
 * result), the calling thread has its own CPUs back after each decode, and
 * out-of-range values are refused. */
Test(context, cpu_mask_strict_and_poll) {
    infer_model *m = load_synth();
    cpu_set_t own;
    cr_assert_eq(sched_getaffinity(0, sizeof own, &own), 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &own)) first = c;
    infer_context_params cp = infer_context_default_params();
    cr_expect_eq(cp.poll, 50, "llama.cpp's default poll");
    cr_expect_eq(cp.cpu_strict, 0);
    cp.n_ctx = 64;
    cp.n_threads = 3;
    infer_context *plain = NULL, *placed = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_context_new(m, &cp, &plain, &err), INFER_OK, "%s", err.message);
    cp.cpu_mask[first / 64] = UINT64_C(1) << (first % 64);
    cp.cpu_strict = 1;
    cp.poll = 0;
    cr_assert_eq(infer_context_new(m, &cp, &placed, &err), INFER_OK, "%s", err.message);
    int32_t ids[12];
    ids_for(ids, 12, 5);
    const size_t nv = (size_t)infer_model_n_vocab(m);
    for (int round = 0; round < 3; round++) { /* a prompt, then single tokens */
        const size_t n = round == 0 ? 10 : 1, at = round == 0 ? 0 : 9 + (size_t)round;
        cr_assert_eq(infer_decode(plain, ids + at, n, 0, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(infer_decode(placed, ids + at, n, 0, &err), INFER_OK, "%s", err.message);
        cr_assert(memcmp(infer_logits(plain), infer_logits(placed), nv * sizeof(float)) == 0, "round %d", round);
        cpu_set_t now;
        cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
        cr_assert(CPU_EQUAL(&now, &own), "the caller's own CPUs after decode (round %d)", round);
    }
    if (CPU_COUNT(&own) > 1) { /* during a decode the caller runs on thread 0's CPU alone */
        affinity_watch w = {.tid = gettid(), .cpu = first};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, watch_affinity, &w), 0);
        for (int k = 0; k < 400 && !atomic_load(&w.saw_one); k++) {
            cr_assert_eq(infer_context_reset(placed), INFER_OK);
            cr_assert_eq(infer_decode(placed, ids, 12, 0, &err), INFER_OK, "%s", err.message);
        }
        atomic_store(&w.stop, 1);
        pthread_join(th, NULL);
        cr_expect(atomic_load(&w.saw_one), "the caller was seen on CPU %d alone during decode", first);
    }
    infer_context_free(placed);
    infer_context_free(plain);
    infer_context *bad = NULL;
    infer_context_params bp = infer_context_default_params();
    bp.poll = 101;
    cr_expect_eq(infer_context_new(m, &bp, &bad, &err), INFER_EINVAL);
    cr_expect(strstr(err.message, "poll"), "%s", err.message);
    bp.poll = -1;
    cr_expect_eq(infer_context_new(m, &bp, &bad, &err), INFER_EINVAL);
    bp = infer_context_default_params();
    bp.cpu_strict = 2;
    cr_expect_eq(infer_context_new(m, &bp, &bad, &err), INFER_EINVAL);
    cr_expect(strstr(err.message, "cpu_strict"), "%s", err.message);
    cr_expect_null(bad);
    infer_model_release(m);
    LEAK_CHECK();
}

/* n_threads_batch (llama.cpp's -tb): one pool of the larger count, whose
 * jobs run in n_threads parts for a one-token decode and n_threads_batch
 * for more; the logits those of any other thread count. */
Test(context, threads_batch_for_larger_passes) {
    infer_model *m = load_synth();
    infer_context_params cp = infer_context_default_params();
    cr_expect_eq(cp.n_threads_batch, 0, "default: n_threads");
    cp.n_ctx = 64;
    cp.n_threads = 2;
    infer_context *plain = NULL, *split = NULL, *same = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_context_new(m, &cp, &plain, &err), INFER_OK, "%s", err.message);
    cr_expect_eq(pool_size(CPU(plain->be)->pool), 2);
    cp.n_threads = 1;
    cp.n_threads_batch = 3;
    cr_assert_eq(infer_context_new(m, &cp, &split, &err), INFER_OK, "%s", err.message);
    pool *sp = CPU(split->be)->pool;
    cr_expect_eq(pool_size(sp), 3, "the larger of the two");
    cp.n_threads = 3;
    cp.n_threads_batch = 0;
    cr_assert_eq(infer_context_new(m, &cp, &same, &err), INFER_OK, "%s", err.message);
    int32_t ids[12];
    ids_for(ids, 12, 9);
    const size_t nv = (size_t)infer_model_n_vocab(m);
    for (int round = 0; round < 3; round++) { /* a prompt, then single tokens */
        const size_t n = round == 0 ? 10 : 1, at = round == 0 ? 0 : 9 + (size_t)round;
        cr_assert_eq(infer_decode(plain, ids + at, n, 0, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(infer_decode(split, ids + at, n, 0, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(infer_decode(same, ids + at, n, 0, &err), INFER_OK, "%s", err.message);
        cr_expect_eq(pool_parts(sp), n == 1 ? 1 : 3, "round %d: -t for one token, -tb for more", round);
        cr_expect_eq(pool_parts(CPU(same->be)->pool), 3, "round %d: -tb 0 is -t", round);
        cr_assert(memcmp(infer_logits(plain), infer_logits(split), nv * sizeof(float)) == 0, "round %d", round);
        cr_assert(memcmp(infer_logits(plain), infer_logits(same), nv * sizeof(float)) == 0, "round %d", round);
    }
    /* Per forward pass, as llama.cpp per ubatch: 9 tokens in passes of 4
     * end with a one-token pass on -t's count, 8 end on -tb's. */
    infer_context *passes = NULL;
    cp.n_threads = 1;
    cp.n_threads_batch = 3;
    cp.n_batch = 4;
    cr_assert_eq(infer_context_new(m, &cp, &passes, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(passes, ids, 9, 0, &err), INFER_OK, "%s", err.message);
    cr_expect_eq(pool_parts(CPU(passes->be)->pool), 1, "the last pass had one token");
    cr_assert_eq(infer_context_reset(passes), INFER_OK);
    cr_assert_eq(infer_decode(passes, ids, 8, 0, &err), INFER_OK, "%s", err.message);
    cr_expect_eq(pool_parts(CPU(passes->be)->pool), 3, "passes of four");
    infer_context_free(passes);
    infer_context_free(same);
    infer_context_free(split);
    infer_context_free(plain);
    infer_model_release(m);
    LEAK_CHECK();
}

/* The same with qwen2's q/k/v biases: single tokens run the three
 * matmuls of one input together (the CPU backend's matmul_n) and add the
 * biases there; F32 batches go one by one through OpenBLAS. */
Test(context, batch_equals_one_at_a_time_qwen2_biases) {
    synth_params p = synth_default_params();
    p.arch = "qwen2";
    p.std = 0.2f;
    void *buf = NULL;
    size_t size = 0;
    infer_error err = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK, "%s", err.message);
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &err), INFER_OK, "%s", err.message);
    infer_context *a = new_ctx(m, 64, INFER_TYPE_F32), *b = new_ctx(m, 64, INFER_TYPE_F32);
    int32_t ids[12];
    ids_for(ids, 12, 5);
    cr_assert_eq(infer_decode(a, ids, 12, INFER_DECODE_ALL_LOGITS, &err), INFER_OK, "%s", err.message);
    const size_t nv = (size_t)infer_model_n_vocab(m);
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(infer_decode(b, ids + i, 1, 0, &err), INFER_OK, "%s", err.message);
        const float *x = infer_logits_ith(a, (size_t)i), *y = infer_logits(b);
        for (size_t v = 0; v < nv; v++) cr_assert_float_eq(x[v], y[v], 1e-5, "token %d logit %zu", i, v);
    }
    infer_context_free(a);
    infer_context_free(b);
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

static int count_piece(void *user, int32_t tok, const char *text, size_t len) {
    (*(size_t *)user) += len;
    return 0;
}

/* No allocation in the token loop: generating 4 or 40 tokens costs the
 * same number of allocations (the loop's buffers are made before it). */
Test(context, no_allocation_in_the_token_loop) {
    infer_model *m = load_synth();
    infer_error err = {0};
    uint64_t used[2];
    const size_t lens[2] = {4, 40};
    { /* a thread's first decode makes its kernel scratch, once per thread */
        infer_context *c = new_ctx(m, 16, INFER_TYPE_F16);
        const int32_t one = 1;
        cr_assert_eq(infer_decode(c, &one, 1, 0, &err), INFER_OK, "%s", err.message);
        infer_context_free(c);
    }
    for (int r = 0; r < 2; r++) {
        infer_context *c = new_ctx(m, 128, INFER_TYPE_F16);
        infer_sampler *s = NULL;
        infer_sampler_params sp = infer_sampler_default_params();
        sp.seed = 3;
        sp.repeat_penalty = 1.1f;
        cr_assert_eq(infer_sampler_new(m, &sp, &s, &err), INFER_OK);
        int32_t prompt[] = {1, 40, 41, 42};
        infer_generate_params gp = {.n_predict = lens[r]};
        infer_generate_stats st;
        size_t bytes = 0;
        uint64_t before = infer_alloc_count();
        cr_assert_eq(infer_generate(c, s, prompt, 4, &gp, count_piece, &bytes, &st, &err), INFER_OK, "%s", err.message);
        used[r] = infer_alloc_count() - before;
        cr_assert(st.n_generated >= 1);
        /* Plain decode steps allocate nothing at all. */
        before = infer_alloc_count();
        for (int i = 0; i < 10; i++) {
            int32_t t = infer_sampler_sample(s, infer_logits(c));
            if (infer_decode(c, &t, 1, 0, &err) != INFER_OK) break;
        }
        cr_assert_eq(infer_alloc_count(), before, "decode/sample allocated");
        infer_sampler_free(s);
        infer_context_free(c);
    }
    cr_assert_eq(used[0], used[1], "4 tokens: %llu allocations, 40 tokens: %llu", (unsigned long long)used[0],
                 (unsigned long long)used[1]);
    infer_model_release(m);
    LEAK_CHECK();
}

/* Rule 6: releasing the model under a live context defers the free. */
Test(context, model_released_while_context_lives) {
    infer_model *m = load_synth();
    infer_context *c = new_ctx(m, 32, INFER_TYPE_F16);
    infer_model_release(m); /* the context's reference keeps it alive */
    int32_t ids[4] = {1, 50, 60, 70};
    infer_error err = {0};
    cr_assert_eq(infer_decode(c, ids, 4, 0, &err), INFER_OK, "%s", err.message);
    cr_assert_not_null(infer_logits(c));
    infer_context_free(c); /* frees the model too: ASan reports any leak or use after free */
    LEAK_CHECK();
}

/* Rule 7: a second thread calling into a busy context gets EBUSY. */
typedef struct {
    infer_context *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside, tried;
    infer_status other;
    int logits_while_busy; /* infer_logits gave a row while the other thread was inside */
    int logits_in_callback; /* ... and in generate's own callback, on its thread */
} busy_state;

static int hold_inside(void *user, int32_t tok, const char *text, size_t len) {
    busy_state *b = user;
    b->logits_in_callback = infer_logits(b->c) != NULL;
    pthread_mutex_lock(&b->mu);
    b->inside = 1;
    pthread_cond_broadcast(&b->cv);
    while (!b->tried) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return 1; /* stop generating */
}

static void *call_while_busy(void *arg) {
    busy_state *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->inside) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    int32_t tok = 5;
    infer_error err = {0};
    b->other = infer_decode(b->c, &tok, 1, 0, &err);
    b->logits_while_busy = infer_logits(b->c) != NULL || infer_logits_ith(b->c, 0) != NULL;
    pthread_mutex_lock(&b->mu);
    b->tried = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

Test(context, second_thread_gets_ebusy) {
    infer_model *m = load_synth();
    busy_state b = {.c = new_ctx(m, 64, INFER_TYPE_F16), .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    infer_sampler *s = NULL;
    infer_error err = {0};
    infer_sampler_params sp = infer_sampler_default_params();
    sp.temp = 0.0f;
    cr_assert_eq(infer_sampler_new(m, &sp, &s, &err), INFER_OK);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, call_while_busy, &b), 0);
    int32_t prompt[] = {1, 259, 260, 261}; /* words with text, so the callback runs */
    infer_generate_params gp = {.n_predict = 50};
    infer_status st = infer_generate(b.c, s, prompt, 4, &gp, hold_inside, &b, NULL, &err);
    pthread_join(th, NULL);
    cr_assert_eq(st, INFER_OK, "%s", err.message);
    cr_assert_eq(b.inside, 1, "the callback never ran");
    cr_assert_eq(b.other, INFER_EBUSY, "second thread got %s", infer_status_name(b.other));
    cr_assert_not(b.logits_while_busy, "logits read while another thread was inside (a GPU copy may run there)");
    cr_assert(b.logits_in_callback, "the callback, on generate's own thread, could not read the logits");
    /* Free again afterwards. */
    int32_t tok = 5;
    cr_assert_eq(infer_decode(b.c, &tok, 1, 0, &err), INFER_OK);
    infer_sampler_free(s);
    infer_context_free(b.c);
    infer_model_release(m);
    LEAK_CHECK();
}

/* Several contexts on several threads sharing one model produce exactly
 * what one thread alone produces. */
typedef struct {
    infer_model *m;
    int32_t out[48];
    uint64_t seed;
    int done; /* tokens decoded: all 48 */
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    infer_context *c = NULL;
    infer_sampler *s = NULL;
    infer_sampler_params sp = infer_sampler_default_params();
    sp.seed = w->seed;
    if (infer_context_new(w->m, &cp, &c, NULL) != INFER_OK || infer_sampler_new(w->m, &sp, &s, NULL) != INFER_OK) {
        infer_context_free(c);
        return NULL;
    }
    int32_t tok = 1;
    for (int i = 0; i < 48; i++) {
        if (infer_decode(c, &tok, 1, 0, NULL) != INFER_OK) break;
        tok = w->out[i] = infer_sampler_sample(s, infer_logits(c));
        infer_sampler_accept(s, tok);
        w->done++;
    }
    infer_sampler_free(s);
    infer_context_free(c);
    return NULL;
}

Test(context, threads_sharing_a_model_match_one_thread) {
    infer_model *m = load_synth();
    worker alone = {.m = m, .seed = 11};
    run_worker(&alone);
    worker ws[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ws[i] = (worker){.m = m, .seed = 11};
        cr_assert_eq(pthread_create(&th[i], NULL, run_worker, &ws[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    infer_model_release(m);
    cr_assert_eq(alone.done, 48, "one thread alone decoded %d of 48", alone.done);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ws[i].done, 48, "thread %d decoded %d of 48", i, ws[i].done);
        cr_assert_arr_eq(ws[i].out, alone.out, sizeof alone.out, "thread %d differs", i);
    }
    LEAK_CHECK();
}

/* A context shift keeps the first n_keep tokens and slides the rest; by
 * RoPE's relative positions the next logits then match a fresh decode of
 * the kept tokens (up to float rounding, with an F32 cache). Exactly so only
 * for one layer: deeper layers' cached K/V of the kept tokens were computed
 * attending to the dropped ones. Twice: within one tile of the CPU's K
 * cache (32 positions), and across tiles (positions 44..69 move to 4..29). */
Test(context, shift_matches_fresh_decode_of_kept_tokens) {
    synth_params p = synth_default_params();
    p.n_layer = 1;
    p.std = 0.2f;
    void *buf;
    size_t size;
    infer_error e0 = {0};
    cr_assert_eq(synth_model(&p, &buf, &size, &e0), INFER_OK);
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(buf, size, NULL, &m, &e0), INFER_OK, "%s", e0.message);
    /* and a shift past what is cached (keep + drop > n_past): refused */
    static const struct { uint32_t n_ctx; int n, drop, bad_keep, bad_drop; } cases[] = {{32, 20, 8, 10, 10},
                                                                                     {96, 70, 40, 28, 30}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int n = cases[k].n, drop = cases[k].drop, n_kept = n - drop;
        infer_context *a = new_ctx(m, cases[k].n_ctx, INFER_TYPE_F32), *b = new_ctx(m, cases[k].n_ctx, INFER_TYPE_F32);
        int32_t ids[70], kept[70];
        infer_error err = {0};
        ids_for(ids, n, 4);
        cr_assert_eq(infer_decode(a, ids, n, 0, &err), INFER_OK);
        cr_assert_eq(infer_context_shift(a, 4, drop), INFER_OK); /* drop ids[4..4 + drop) */
        cr_assert_eq(infer_context_n_past(a), n_kept);
        memcpy(kept, ids, 4 * sizeof *ids);
        memcpy(kept + 4, ids + 4 + drop, (size_t)(n_kept - 4) * sizeof *ids);
        int32_t next = 77;
        cr_assert_eq(infer_decode(a, &next, 1, 0, &err), INFER_OK);
        cr_assert_eq(infer_decode(b, kept, n_kept, 0, &err), INFER_OK);
        cr_assert_eq(infer_decode(b, &next, 1, 0, &err), INFER_OK);
        const float *x = infer_logits(a), *y = infer_logits(b);
        for (int v = 0; v < infer_model_n_vocab(m); v++)
            cr_assert_float_eq(x[v], y[v], 2e-4, "n_ctx %u: logit %d: %g vs %g", cases[k].n_ctx, v, x[v], y[v]);
        cr_assert_eq(infer_context_shift(a, cases[k].bad_keep, cases[k].bad_drop), INFER_EINVAL);
        infer_context_free(a);
        infer_context_free(b);
    }
    infer_model_release(m);
    free(buf);
    LEAK_CHECK();
}

/* generate with context_shift keeps going past n_ctx; without it, stops. */
Test(context, generate_stops_or_shifts_when_full) {
    infer_model *m = load_synth();
    infer_error err = {0};
    for (int shift = 0; shift < 2; shift++) {
        infer_context *c = new_ctx(m, 24, INFER_TYPE_F16);
        infer_sampler *s = NULL;
        infer_sampler_params sp = infer_sampler_default_params();
        sp.seed = 5;
        cr_assert_eq(infer_sampler_new(m, &sp, &s, &err), INFER_OK);
        int32_t prompt[] = {1, 270, 271};
        infer_generate_params gp = {.n_predict = 60, .context_shift = shift, .n_keep = 1};
        infer_generate_stats st;
        size_t bytes = 0;
        cr_assert_eq(infer_generate(c, s, prompt, 3, &gp, count_piece, &bytes, &st, &err), INFER_OK, "%s", err.message);
        if (st.stopped_by != INFER_STOP_EOG) {
            if (shift) cr_expect_eq(st.n_generated, 60);
            else cr_expect_eq(st.stopped_by, INFER_STOP_CTX_FULL);
        }
        cr_assert_leq(infer_context_n_past(c), 24);
        infer_sampler_free(s);
        infer_context_free(c);
    }
    infer_model_release(m);
    LEAK_CHECK();
}

/* Decoding (a batch and single tokens, 2 threads) from a thread with
 * INFER_MIN_CALLER_STACK of stack free, with the default thread stack
 * shrunk to 128 KB (musl's size): the pool's workers have stacks of their
 * own size, and the batch kernels' panels (up to ~131 KB) live in
 * per-thread scratch, not on the stack. Float, legacy and K-quant weights
 * (each family's batch kernel). glibc carves the process's static TLS
 * (OpenBLAS's alone is 60 KB) out of a thread's stack, so the size asked
 * for is the minimum plus what a probe thread finds taken. */
typedef struct {
    infer_model *m;
    infer_status s;
    size_t free_at_entry;
} small_stack_arg;

/* Bytes of stack below this frame, above the guard. */
static size_t stack_free_here(void) {
    pthread_attr_t at;
    void *addr = NULL;
    size_t size = 0, guard = 0;
    if (pthread_getattr_np(pthread_self(), &at) != 0) return 0;
    pthread_attr_getstack(&at, &addr, &size);
    pthread_attr_getguardsize(&at, &guard);
    pthread_attr_destroy(&at);
    const uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    return sp > (uintptr_t)addr + guard ? sp - (uintptr_t)addr - guard : 0;
}

static void *probe_stack(void *arg) {
    *(size_t *)arg = stack_free_here();
    return NULL;
}

static void *decode_on_small_stack(void *arg) {
    small_stack_arg *a = arg;
    a->free_at_entry = stack_free_here();
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    infer_context *c = NULL;
    a->s = infer_context_new(a->m, &cp, &c, NULL);
    int32_t ids[24];
    ids_for(ids, 24, 3);
    if (a->s == INFER_OK) a->s = infer_decode(c, ids, 24, 0, NULL);
    for (int i = 0; i < 4 && a->s == INFER_OK; i++) a->s = infer_decode(c, &ids[i], 1, 0, NULL);
    infer_context_free(c);
    return NULL;
}

Test(context, decode_from_a_thread_with_the_minimum_stack) {
    cr_assert_leq(INFER_MIN_CALLER_STACK, (size_t)64 << 10);
    pthread_attr_t dflt;
    cr_assert_eq(pthread_getattr_default_np(&dflt), 0);
    pthread_attr_t small;
    cr_assert_eq(pthread_attr_init(&small), 0);
    cr_assert_eq(pthread_attr_setstacksize(&small, 128 << 10), 0);
    pthread_attr_t caller;
    cr_assert_eq(pthread_attr_init(&caller), 0);
    const size_t probe_size = (size_t)1 << 20;
    cr_assert_eq(pthread_attr_setstacksize(&caller, probe_size), 0);
    size_t probe_free = 0;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, &caller, probe_stack, &probe_free), 0);
    pthread_join(th, NULL);
    cr_assert(probe_free > 0 && probe_free < probe_size);
    const size_t taken = (probe_size - probe_free + 4095) & ~(size_t)4095;
    cr_assert_eq(pthread_attr_setstacksize(&caller, INFER_MIN_CALLER_STACK + taken), 0);
    const uint32_t types[] = {INFER_TYPE_F32, INFER_TYPE_F16, INFER_TYPE_Q4_0, INFER_TYPE_Q8_0, INFER_TYPE_Q4_K,
                              INFER_TYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        synth_params p = synth_default_params();
        p.wtype = types[t];
        p.n_embd = 256, p.n_ff = 512, p.n_head = 4, p.n_head_kv = 2, p.n_layer = 2; /* K-quant rows: 256 wide */
        void *buf = NULL;
        size_t size = 0;
        infer_error err = {0};
        cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK, "%s", err.message);
        small_stack_arg a = {.s = INFER_EINVAL, .free_at_entry = 0};
        cr_assert_eq(infer_model_load_memory(buf, size, NULL, &a.m, &err), INFER_OK, "%s", err.message);
        cr_assert_eq(pthread_setattr_default_np(&small), 0); /* what the pool's workers would get by default */
        cr_assert_eq(pthread_create(&th, &caller, decode_on_small_stack, &a), 0);
        pthread_join(th, NULL);
        cr_assert_eq(pthread_setattr_default_np(&dflt), 0);
        /* What it had: the minimum, give or take a page. */
        cr_assert(a.free_at_entry + 4096 >= INFER_MIN_CALLER_STACK && a.free_at_entry <= INFER_MIN_CALLER_STACK + 8192,
                  "%zu bytes free", a.free_at_entry);
        cr_assert_eq(a.s, INFER_OK, "type %s: %s", infer_type_name(types[t]), infer_status_name(a.s));
        infer_model_release(a.m);
        free(buf);
    }
    pthread_attr_destroy(&caller);
    pthread_attr_destroy(&small);
    pthread_attr_destroy(&dflt);
}

/* Running out of memory for the kernels' scratch is an error where a
 * thread enters them: a pool whose worker cannot have its scratch is not
 * made, and a decode whose calling thread cannot have its scratch says so
 * (the next decode, with memory, works). */
static void *decode_with_scratch_failing(void *arg) {
    small_stack_arg *a = arg;
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    infer_context *c = NULL;
    a->s = infer_context_new(a->m, &cp, &c, NULL);
    if (a->s != INFER_OK) return NULL;
    int32_t ids[4];
    ids_for(ids, 4, 5);
    infer_error err = {0};
    infer_alloc_fail_at(1); /* this fresh thread's scratch is the decode's first allocation */
    a->s = infer_decode(c, ids, 4, 0, &err);
    infer_alloc_fail_at(0);
    if (a->s == INFER_ENOMEM && infer_decode(c, ids, 4, 0, NULL) != INFER_OK) a->s = INFER_EBACKEND;
    infer_context_free(c);
    return NULL;
}

Test(context, kernel_scratch_out_of_memory_is_an_error) {
    small_stack_arg a = {.m = load_synth(), .s = INFER_OK};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, decode_with_scratch_failing, &a), 0);
    pthread_join(th, NULL);
    cr_assert_eq(a.s, INFER_ENOMEM, "%s", infer_status_name(a.s));
    infer_model_release(a.m);
}
