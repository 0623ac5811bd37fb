/*
 * test_threads.c - the threaded scenarios of DESIGN.md rules 6 and 7, as a
 * plain program so that ThreadSanitizer can run it (Criterion's process
 * arena cannot start under TSan). `make tsan` builds it with
 * -fsanitize=thread and runs it; any race report fails the run.
 *
 *  - several contexts on several threads sharing one model give the same
 *    tokens as one thread alone (each context with a 2-thread pool), also
 *    when their creation races to repack a model's weights, mapped or read
 *    into memory (there with a fifth thread asking for the file's layout
 *    back, as a Vulkan upload does);
 *  - a second thread calling into a busy context gets INFER_EBUSY;
 *  - the last reference to a model dropped on another thread while a
 *    context still decodes;
 *  - tokenizing concurrently with one shared vocabulary;
 *  - the thread pool with workers held off and let go between and during
 *    jobs whose arguments live on the caller's stack: a late worker must
 *    neither run a part of a job that is over nor read its arguments;
 *    then with the job's part count changing (pool_set_active, -t / -tb).
 *
 * Last line: "N passed, M failed".
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer.h"
#include "model.h"
#include "../pool_testutil.h"
#include "synth.h"

static int passed, failed;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (cond) {                                                   \
            passed++;                                                 \
        } else {                                                      \
            failed++;                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
        }                                                             \
    } while (0)

static void *g_buf;
static size_t g_size;

static infer_model *load(void) {
    infer_model *m = NULL;
    infer_error err;
    if (infer_model_load_memory(g_buf, g_size, NULL, &m, &err) != INFER_OK) {
        fprintf(stderr, "load: %s\n", err.message);
        exit(2);
    }
    return m;
}

/* ---- shared model, many contexts ------------------------------------------------ */

typedef struct {
    infer_model *m;
    int32_t out[32];
    int ok;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    infer_context *c = NULL;
    infer_sampler *s = NULL;
    infer_sampler_params sp = infer_sampler_default_params();
    sp.seed = 11;
    if (infer_context_new(w->m, &cp, &c, NULL) == INFER_OK && infer_sampler_new(w->m, &sp, &s, NULL) == INFER_OK) {
        int32_t tok = 1;
        w->ok = 1;
        for (int i = 0; i < 32 && w->ok; i++) {
            w->ok = infer_decode(c, &tok, 1, 0, NULL) == INFER_OK;
            tok = w->out[i] = infer_sampler_sample(s, infer_logits(c));
            infer_sampler_accept(s, tok);
        }
    }
    infer_sampler_free(s);
    infer_context_free(c);
    return NULL;
}

static void shared_model_many_contexts(void) {
    infer_model *m = load();
    worker alone = {.m = m};
    run_worker(&alone);
    CHECK(alone.ok, "single-thread run failed");
    worker ws[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ws[i] = (worker){.m = m};
        pthread_create(&th[i], NULL, run_worker, &ws[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK(ws[i].ok && !memcmp(ws[i].out, alone.out, sizeof alone.out), "thread %d differs from one thread alone", i);
    }
    infer_model_release(m);
}

/* ---- repacked weights made by whichever context comes first ------------------------ */

/* A Q4_0 model from a file (the CPU kernels repack it, mapped or read into
 * memory): four threads create their contexts at once, racing to trigger
 * the one-time repacking, and must all sample what the same model in the
 * caller's memory (infer_model_load_memory: the file's layout, never
 * repacked) samples on one thread. Read into memory, a fifth thread asks
 * for the file's layout back meanwhile (model_file_layout, as a Vulkan
 * upload does): before the repacking or after it. */
static void *file_layout(void *arg) {
    infer_error err;
    if (model_file_layout(arg, &err) != INFER_OK) fprintf(stderr, "model_file_layout: %s\n", err.message);
    return NULL;
}

static void packed_model_many_contexts(int use_mmap) {
    synth_params p = synth_default_params();
    p.std = 0.2f;
    p.wtype = INFER_TYPE_Q4_0;
    p.n_embd = 256; /* matrices of whole pages: some are dropped */
    p.n_ff = 512;
    void *buf = NULL;
    size_t size = 0;
    infer_error err;
    char path[] = "/tmp/infer-tsan-XXXXXX";
    const int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    CHECK(f && synth_model(&p, &buf, &size, &err) == INFER_OK && fwrite(buf, 1, size, f) == size,
          "cannot write a Q4_0 model to %s", path);
    if (f) fclose(f);
    infer_model *mem = NULL, *file = NULL;
    infer_model_params mp = infer_model_default_params();
    mp.use_mmap = use_mmap;
    if (buf && infer_model_load_memory(buf, size, NULL, &mem, &err) == INFER_OK &&
        infer_model_load(path, &mp, &file, &err) == INFER_OK) {
        worker alone = {.m = mem};
        run_worker(&alone);
        CHECK(alone.ok, "single-thread run failed");
        worker ws[4];
        pthread_t th[5];
        for (int i = 0; i < 4; i++) {
            ws[i] = (worker){.m = file};
            pthread_create(&th[i], NULL, run_worker, &ws[i]);
        }
        if (!use_mmap) pthread_create(&th[4], NULL, file_layout, file);
        for (int i = 0; i < 4 + !use_mmap; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 4; i++)
            CHECK(ws[i].ok && !memcmp(ws[i].out, alone.out, sizeof alone.out),
                  "thread %d on the repacked model (%s) differs from the file layout", i,
                  use_mmap ? "mapped" : "read into memory");
    } else {
        CHECK(0, "load: %s", err.message);
    }
    infer_model_release(file);
    infer_model_release(mem);
    unlink(path);
    free(buf);
}

/* ---- EBUSY ------------------------------------------------------------------------------ */

typedef struct {
    infer_context *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside, tried;
    infer_status other;
} busy_state;

static int hold_inside(void *user, int32_t tok, const char *text, size_t len) {
    busy_state *b = user;
    pthread_mutex_lock(&b->mu);
    b->inside = 1;
    pthread_cond_broadcast(&b->cv);
    while (!b->tried) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return 1;
}

static void *call_while_busy(void *arg) {
    busy_state *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->inside) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    int32_t tok = 5;
    infer_status s = infer_decode(b->c, &tok, 1, 0, NULL);
    infer_status r = infer_context_reset(b->c);
    pthread_mutex_lock(&b->mu);
    b->other = s == INFER_EBUSY && r == INFER_EBUSY ? INFER_EBUSY : INFER_OK;
    b->tried = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void busy_context(void) {
    infer_model *m = load();
    busy_state b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    infer_sampler *s = NULL;
    infer_sampler_params sp = infer_sampler_default_params();
    sp.temp = 0.0f;
    if (infer_context_new(m, &cp, &b.c, NULL) != INFER_OK || infer_sampler_new(m, &sp, &s, NULL) != INFER_OK) exit(2);
    pthread_t th;
    pthread_create(&th, NULL, call_while_busy, &b);
    int32_t prompt[] = {1, 259, 260, 261};
    infer_generate_params gp = {.n_predict = 50};
    infer_status st = infer_generate(b.c, s, prompt, 4, &gp, hold_inside, &b, NULL, NULL);
    if (!b.inside) { /* no text came out: release the other thread */
        pthread_mutex_lock(&b.mu);
        b.inside = 1;
        pthread_cond_broadcast(&b.cv);
        pthread_mutex_unlock(&b.mu);
    }
    pthread_join(th, NULL);
    CHECK(st == INFER_OK, "generate failed");
    CHECK(b.other == INFER_EBUSY, "second thread did not get EBUSY");
    int32_t tok = 5;
    CHECK(infer_decode(b.c, &tok, 1, 0, NULL) == INFER_OK, "context not usable after the busy call");
    infer_sampler_free(s);
    infer_context_free(b.c);
    infer_model_release(m);
}

/* ---- counters read during a decode ------------------------------------------------------- */

/* infer_context_n_past and _n_ctx may be read from another thread while a
 * decode runs (a progress display): no data race, and what they say only
 * grows, up to what was decoded. */
typedef struct {
    infer_context *c;
    atomic_int done;
    uint32_t last, max_seen, n_ctx_seen;
    int backwards;
} poll_state;

static void *poll_counters(void *arg) {
    poll_state *ps = arg;
    while (!atomic_load(&ps->done)) {
        const uint32_t n = infer_context_n_past(ps->c);
        if (n < ps->last) ps->backwards = 1;
        ps->last = n;
        if (n > ps->max_seen) ps->max_seen = n;
        ps->n_ctx_seen = infer_context_n_ctx(ps->c);
    }
    return NULL;
}

static void counters_during_decode(void) {
    infer_model *m = load();
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    poll_state ps = {0};
    if (infer_context_new(m, &cp, &ps.c, NULL) != INFER_OK) exit(2);
    pthread_t th;
    pthread_create(&th, NULL, poll_counters, &ps);
    int ok = 1;
    for (int32_t i = 0; i < 40 && ok; i++) {
        const int32_t tok = 3 + i;
        ok = infer_decode(ps.c, &tok, 1, 0, NULL) == INFER_OK;
    }
    atomic_store(&ps.done, 1);
    pthread_join(th, NULL);
    CHECK(ok, "decode failed");
    CHECK(!ps.backwards && ps.max_seen <= 40, "n_past read as %u, went backwards: %d", ps.max_seen, ps.backwards);
    CHECK(ps.n_ctx_seen == 0 || ps.n_ctx_seen == 64, "n_ctx read as %u", ps.n_ctx_seen);
    infer_context_free(ps.c);
    infer_model_release(m);
}

/* ---- release on another thread ---------------------------------------------------------- */

static void *release_model(void *arg) {
    infer_model_release(arg);
    return NULL;
}

static void release_under_live_context(void) {
    infer_model *m = load();
    infer_context *c = NULL;
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 32;
    if (infer_context_new(m, &cp, &c, NULL) != INFER_OK) exit(2);
    pthread_t th;
    pthread_create(&th, NULL, release_model, m);
    int32_t ids[8] = {1, 40, 41, 42, 43, 44, 45, 46};
    infer_status s = infer_decode(c, ids, 8, 0, NULL);
    pthread_join(th, NULL);
    CHECK(s == INFER_OK, "decode while the model was released");
    CHECK(infer_decode(c, ids, 1, 0, NULL) == INFER_OK, "decode after the release");
    infer_context_free(c);
}

/* ---- concurrent tokenization ---------------------------------------------------------------- */

static void *tokenize_many(void *arg) {
    infer_model *m = arg;
    int32_t ids[256];
    size_t n;
    for (int i = 0; i < 200; i++) {
        if (infer_tokenize(m, "abc def ghi jkl", 15, INFER_TOKENIZE_ADD_SPECIAL, ids, 256, &n, NULL) != INFER_OK) return m;
    }
    return NULL;
}

static void concurrent_tokenize(void) {
    infer_model *m = load();
    pthread_t th[4];
    void *ret[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, tokenize_many, m);
    for (int i = 0; i < 4; i++) pthread_join(th[i], &ret[i]);
    for (int i = 0; i < 4; i++) CHECK(ret[i] == NULL, "tokenizer thread %d failed", i);
    infer_model_release(m);
}

typedef struct {
    int runs[4]; /* plain ints: each part is run by one thread, which TSan checks */
    long n;
    long sums[4];
} part_arg;

static void sum_part(void *arg, int ith, int nth, int self) {
    part_arg *a = arg;
    a->sums[ith] = test_part_sum(a->n, ith, nth);
    a->runs[ith]++;
}

static void pool_late_workers(void) {
    pool *p = NULL;
    infer_error err;
    if (pool_new(4, NULL, &p, &err) != INFER_OK) {
        CHECK(0, "pool_new: %s", err.message);
        return;
    }
    int bad = 0;
    for (int r = 0; r < 2000; r++) {
        if (r % 7 == 0) pool_hold(p, 1 + r % 3, 1);
        if (r % 5 == 0) pool_hold(p, 1 + (r / 5) % 3, 0);
        const int nth = r < 1000 ? 4 : 1 + (r * 7) % 4; /* then -t / -tb's part counts, changing */
        pool_set_active(p, nth);
        part_arg a = {.n = 500 + r % 53};
        pool_run(p, sum_part, &a);
        long s = 0;
        for (int i = 0; i < 4; i++) {
            s += a.sums[i];
            if (a.runs[i] != (i < nth)) bad++;
        }
        if (s != a.n * (a.n - 1) / 2) bad++;
    }
    CHECK(bad == 0, "pool: %d parts run other than once, or sums wrong", bad);
    pool_free(p);
}

int main(void) {
    synth_params p = synth_default_params();
    p.std = 0.2f;
    infer_error err;
    if (synth_model(&p, &g_buf, &g_size, &err) != INFER_OK) {
        fprintf(stderr, "synth: %s\n", err.message);
        return 2;
    }
    shared_model_many_contexts();
    packed_model_many_contexts(1);
    packed_model_many_contexts(0);
    busy_context();
    counters_during_decode();
    release_under_live_context();
    concurrent_tokenize();
    pool_late_workers();
    free(g_buf);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
