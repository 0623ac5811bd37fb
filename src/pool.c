/*
 * pool.c - a persistent thread pool: n-1 workers plus the calling thread.
 * pool_run(fn) has every thread call fn(arg, ith, nth) once and returns
 * when all have finished. Workers spin briefly on a generation counter (an
 * op lasts tens of microseconds during generation), then sleep on a
 * condition variable. No thread is created after pool_new.
 *
 * Work is split by the callers into fixed ranges per ith, or handed out
 * in chunks by pool_shares (work stealing), and every output element is
 * computed by exactly one thread in the same order whatever nth is, so
 * results do not depend on the thread count.
 *
 * A spinning thread yields its CPU every YIELD_EVERY spins: when threads
 * outnumber the CPUs they may run on (a pinned process given -t above
 * its CPUs, another program busy on one), the thread it waits for may be
 * runnable on this very CPU, and without the yield it would run only when
 * the spin ran out. README ("Threads") has the figures.
 *
 * A waiting thread is not always idle: a job may leave it a range of
 * memory the next job will read (pool_read_ahead), which it prefetches a
 * few lines at a time between checks of what it waits for.
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define SPIN_ITERATIONS 20000
#define YIELD_EVERY 256 /* spins; a power of two */

/* A spinning thread shares its core with a working sibling (SMT): pause
 * hands the core's issue slots to it while waiting. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* One thread's state, each part alone on its lines (two threads' writes
 * to one line would bounce it between cores):
 *  - share: its share of pool_shares, back << 32 | front;
 *  - next, end: its read-ahead (pool_read_ahead), set and consumed by that
 *    thread only; atomic (relaxed: plain moves) so that
 *    pool_read_ahead_left may look from another. */
#define SLOT_ALIGN 128
typedef struct {
    _Alignas(SLOT_ALIGN) _Atomic uint64_t share;
    _Alignas(SLOT_ALIGN) _Atomic uintptr_t next;
    _Atomic uintptr_t end;
} thread_slot;

struct pool {
    int n;                     /* threads including the caller */
    void *slots_mem;           /* thread_slot[n], aligned inside */
    thread_slot *slots;
    pthread_t *threads;        /* [n - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    _Atomic uint64_t gen;      /* bumped per job */
    _Atomic int pending;       /* workers still running the current job */
    _Atomic int stop;
    pool_fn fn;                /* the current job (published by gen) */
    void *arg;
};

typedef struct {
    pool *p;
    int ith;
} worker_arg;

/* Waiting: read ahead a few lines if this thread has any left, else
 * pause. Prefetches never fault, and each wait checks its condition
 * between them, so this delays no job. */
#define AHEAD_STEP 256
static inline void wait_step(pool *p, int ith) {
    thread_slot *a = &p->slots[ith];
    const uintptr_t next = atomic_load_explicit(&a->next, memory_order_relaxed);
    const uintptr_t end = atomic_load_explicit(&a->end, memory_order_relaxed);
    if (next < end) {
        const uintptr_t step = end - next < AHEAD_STEP ? end - next : AHEAD_STEP;
        for (uintptr_t i = 0; i < step; i += 64) __builtin_prefetch((const void *)(next + i), 0, 2);
        atomic_store_explicit(&a->next, next + step, memory_order_relaxed);
        return;
    }
    cpu_relax();
}

/* One spin of a wait: every YIELD_EVERY, hand the CPU to whatever else is
 * runnable on it (a return at once when nothing is). */
static inline void spin_step(pool *p, int ith, int spins) {
    if ((spins & (YIELD_EVERY - 1)) == 0) sched_yield();
    wait_step(p, ith);
}

static void *worker_main(void *v) {
    worker_arg wa = *(worker_arg *)v;
    pool *p = wa.p;
    uint64_t seen = 0;
    infer_free(v);
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->stop)) {
            if (++spins < SPIN_ITERATIONS) {
                spin_step(p, wa.ith, spins);
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        p->fn(p->arg, wa.ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

infer_status pool_new(int n_threads, pool **out, infer_error *err) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > POOL_MAX_THREADS) n_threads = POOL_MAX_THREADS;
    pool *p = infer_calloc(1, sizeof *p);
    if (!p) return set_error(err, INFER_ENOMEM, "out of memory for the thread pool");
    p->n = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->threads = infer_calloc((size_t)n_threads, sizeof *p->threads);
    p->slots_mem = infer_calloc((size_t)n_threads + 1, sizeof(thread_slot));
    if (!p->threads || !p->slots_mem) {
        pool_free(p);
        return set_error(err, INFER_ENOMEM, "out of memory for the thread pool");
    }
    p->slots = (thread_slot *)(((uintptr_t)p->slots_mem + SLOT_ALIGN - 1) & ~(uintptr_t)(SLOT_ALIGN - 1));
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = infer_malloc(sizeof *wa);
        if (!wa) {
            pool_free(p);
            return set_error(err, INFER_ENOMEM, "out of memory for the thread pool");
        }
        *wa = (worker_arg){p, i};
        /* Workers read p->n only inside jobs, after this loop has finished. */
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            infer_free(wa);
            pool_free(p);
            return set_error(err, INFER_ENOMEM, "cannot start thread %d of %d", i + 1, n_threads);
        }
        p->n = i + 1;
    }
    *out = p;
    return INFER_OK;
}

int pool_size(const pool *p) { return p ? p->n : 1; }

void pool_run(pool *p, pool_fn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    fn(arg, 0, p->n);

    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (++spins < SPIN_ITERATIONS) {
            spin_step(p, 0, spins);
            continue;
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void pool_free(pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i + 1 < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    infer_free(p->threads);
    infer_free(p->slots_mem);
    infer_free(p);
}

void pool_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    int64_t per = n / nth, rem = n % nth;
    *begin = (int64_t)ith * per + (ith < rem ? ith : rem);
    *end = *begin + per + (ith < rem ? 1 : 0);
}

/* Thread ith's slot where it may read ahead: none in a pool of one. */
static thread_slot *ahead_slot_of(pool *p, int ith) {
    return p && p->n > 1 && ith >= 0 && ith < p->n ? &p->slots[ith] : NULL;
}

void pool_read_ahead(pool *p, int ith, const void *ptr, size_t len) {
    thread_slot *a = ahead_slot_of(p, ith);
    if (!a) return;
    const uintptr_t b = (uintptr_t)ptr;
    const int none = !ptr || !len || len > UINTPTR_MAX - b;
    atomic_store_explicit(&a->end, none ? 0 : b + len, memory_order_relaxed);
    atomic_store_explicit(&a->next, none ? 0 : b, memory_order_relaxed);
}

size_t pool_read_ahead_left(pool *p, int ith) {
    thread_slot *a = ahead_slot_of(p, ith);
    if (!a) return 0;
    const uintptr_t next = atomic_load_explicit(&a->next, memory_order_relaxed);
    const uintptr_t end = atomic_load_explicit(&a->end, memory_order_relaxed);
    return next < end ? (size_t)(end - next) : 0;
}

int pool_shares_init(pool *p, int64_t n) {
    if (!p || n < 0 || n > (int64_t)UINT32_MAX) return 0;
    for (int i = 0; i < p->n; i++) {
        int64_t b, e;
        pool_range(n, i, p->n, &b, &e);
        atomic_store_explicit(&p->slots[i].share, (uint64_t)e << 32 | (uint64_t)b, memory_order_relaxed);
    }
    return 1; /* pool_run's release publishes them to the workers */
}

/* A run of up to max (>= 1) chunks of a share, at most half of what it
 * holds rounded up, from its front or back; -1 when it is empty. */
static int64_t take(_Atomic uint64_t *share, int back, uint64_t max, int64_t *count) {
    uint64_t v = atomic_load_explicit(share, memory_order_relaxed);
    for (;;) {
        const uint64_t b = v & 0xffffffffu, e = v >> 32;
        if (b >= e) return -1;
        const uint64_t half = (e - b + 1) / 2, k = half < max ? half : max;
        const uint64_t nv = back ? ((e - k) << 32) | b : v + k;
        /* Relaxed: a chunk's data is published by pool_run's end, not here. */
        if (atomic_compare_exchange_weak_explicit(share, &v, nv, memory_order_relaxed, memory_order_relaxed)) {
            *count = (int64_t)k;
            return (int64_t)(back ? e - k : b);
        }
    }
}

int64_t pool_shares_take(pool *p, int ith, int64_t max, int64_t *count) {
    const uint64_t m = max > 1 ? (uint64_t)max : 1;
    for (int i = 0; i < p->n; i++) {
        const int64_t c = take(&p->slots[(ith + i) % p->n].share, i != 0, m, count);
        if (c >= 0) return c;
    }
    *count = 0;
    return -1;
}

int64_t pool_shares_next(pool *p, int ith) {
    int64_t n;
    return pool_shares_take(p, ith, 1, &n);
}
