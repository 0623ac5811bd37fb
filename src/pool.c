/*
 * pool.c - a persistent thread pool: n-1 workers plus the calling thread.
 * pool_run(fn) runs fn(arg, ith, nth, self) for every part ith of nth
 * (nth = pool_parts: the pool's size, or fewer after pool_set_active, the
 * threads from nth up then asleep) and returns when all parts are done. Workers
 * spin briefly on a generation counter (an op lasts tens of microseconds
 * during generation), then sleep on a condition variable. No thread is
 * created after pool_new.
 *
 * A part is not tied to a thread. Each thread claims its own part first
 * (ith = self: one stream each, as a static split), then any part no one
 * has claimed yet; the caller too, once its own is done. So a job never
 * waits for a thread that has not started it: when threads outnumber the
 * CPUs they may run on, or another program is busy on one, the thread
 * that lost its CPU is passed over, and the job waits only for parts
 * already under way. Claims are per job: part i's claim word holds the
 * generation of the last job that took it, and a thread takes part i of
 * job g by moving it from g - 1 to g. Every part of job g is taken before
 * job g ends, so a late thread still holding g (or older) can take
 * nothing once job g is over, and never reads fn or arg of a job it has
 * no part of: it reads them only after a claim has succeeded, and the
 * caller rewrites them only after every claimed part has been counted
 * done.
 *
 * Work is split by the callers into fixed ranges per part, or handed out
 * in chunks by pool_shares (work stealing), and every output element is
 * computed by exactly one thread in the same order whatever nth is and
 * whichever thread runs a part, so results depend neither on the thread
 * count nor on the scheduling.
 *
 * A spinning thread yields its CPU every YIELD_EVERY spins: when threads
 * outnumber the CPUs they may run on, the thread it waits for may be
 * runnable on this very CPU, and without the yield it would run only when
 * the spin ran out. README ("Threads") has the figures.
 *
 * With a CPU mask (pool_opts, llama.cpp's -C / --cpu-strict), each
 * worker starts on its CPUs (pthread attributes, so that its scratch is
 * first touched there), and the caller takes thread 0's only between
 * pool_pin_caller and pool_unpin_caller: the caller's thread is not the
 * pool's, so it gets its own affinity back. --poll scales the workers'
 * spin before they sleep.
 *
 * A waiting thread is not always idle: a job may leave it a range of
 * memory the next job will read (pool_read_ahead), which it prefetches a
 * few lines at a time between checks of what it waits for.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "dispatch.h"

#define SPIN_ITERATIONS 20000 /* a worker waiting for a job at poll 50: ~0.5 ms at ~25 ns a spin (Zen 4) */
/* The caller waiting for the parts others have begun spins less (~50 us),
 * then sleeps. A part that runs longer than that has usually lost its CPU
 * (another program is busy on it), and a caller asleep leaves its own CPU
 * idle, so the scheduler can move the stalled thread there; a spinning one
 * (yields included) keeps it busy. Measured (TinyLlama Q4_0, 2 threads,
 * `yes` busy on one of the 2 CPUs, tg32): 31.2-31.5 t/s with 20000, 33.6-34.7
 * with 2000, and -t 1 beside them 31.3-34.8; 200 spins gave 27.4-30.7 (it
 * sleeps on ordinary waits too). Without the other program, the caller
 * slept on 30 of 21423 jobs in generation and on 75 of 1059 in prompts. */
#define DONE_SPINS 2000
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

/* One thread's state (and its part's claim), each alone on its lines (two
 * threads' writes to one line would bounce it between cores):
 *  - share: its share of pool_shares, back << 32 | front;
 *  - claim: the generation of the last job whose part ith was taken;
 *    hold: pool_hold's flag (a worker only);
 *  - next, end: its read-ahead (pool_read_ahead), set and consumed by that
 *    thread only; atomic (relaxed: plain moves) so that
 *    pool_read_ahead_left may look from another. */
#define SLOT_ALIGN 128
typedef struct {
    _Alignas(SLOT_ALIGN) _Atomic uint64_t share;
    _Alignas(SLOT_ALIGN) _Atomic uint64_t claim;
    _Atomic int hold;
    _Alignas(SLOT_ALIGN) _Atomic uintptr_t next;
    _Atomic uintptr_t end;
} thread_slot;

struct pool {
    int n;                     /* threads including the caller */
    _Atomic int active;        /* parts per job (pool_set_active): threads 0 .. active - 1 take them */
    void *slots_mem;           /* thread_slot[n], aligned inside */
    thread_slot *slots;
    pthread_t *threads;        /* [n - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    pthread_cond_t active_cv;  /* the part count grew (pool_set_active): threads it left out may be in */
    _Atomic uint64_t gen;      /* bumped per job */
    _Atomic int pending;       /* parts of the current job not yet done */
    _Atomic int stop;
    int ready, unready;        /* workers started with / without their kernel scratch (under mu) */
    pool_fn fn;                /* the current job (published by gen) */
    void *arg;
    int spin_limit;            /* a worker's spins before it sleeps (--poll) */
    int has_mask;              /* a CPU mask was given: caller_cpus is thread 0's */
    int caller_moved;          /* pool_pin_caller moved the caller; caller_saved is its own */
    cpu_set_t caller_cpus, caller_saved;
};

_Static_assert(INFER_CPU_MASK_WORDS * 64 == CPU_SETSIZE, "the mask is a cpu_set_t's CPUs");

int pool_mask_count(const uint64_t *cpu_mask) {
    int n = 0;
    for (int w = 0; cpu_mask && w < INFER_CPU_MASK_WORDS; w++) n += __builtin_popcountll(cpu_mask[w]);
    return n;
}

int pool_thread_cpus(const pool_opts *opts, int k, cpu_set_t *set) {
    CPU_ZERO(set);
    const int n = opts ? pool_mask_count(opts->cpu_mask) : 0;
    if (n == 0) return 0;
    const int want = opts->strict ? k % n : -1; /* strict: the (k mod n)-th CPU of the mask */
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!((opts->cpu_mask[cpu / 64] >> (cpu % 64)) & 1)) continue;
        if (want < 0) CPU_SET(cpu, set);
        else if (seen++ == want) {
            CPU_SET(cpu, set);
            break;
        }
    }
    return 1;
}

void pool_pin_caller(pool *p) {
    if (!p || !p->has_mask || p->caller_moved) return;
    pthread_t self = pthread_self();
    p->caller_moved = pthread_getaffinity_np(self, sizeof p->caller_saved, &p->caller_saved) == 0 &&
                      pthread_setaffinity_np(self, sizeof p->caller_cpus, &p->caller_cpus) == 0;
}

void pool_unpin_caller(pool *p) {
    if (!p || !p->caller_moved) return;
    (void)pthread_setaffinity_np(pthread_self(), sizeof p->caller_saved, &p->caller_saved);
    p->caller_moved = 0;
}

/* Why the system refuses a thread's CPUs, for a message. */
#define REFUSED_CPUS "offline, absent or outside this process's cpuset"

/* "CPU 3" or "CPUs 0-3,8" of a set, for a message. */
static void describe_cpus(const cpu_set_t *set, char *buf, size_t cap) {
    size_t at = (size_t)snprintf(buf, cap, "CPU%s ", CPU_COUNT(set) == 1 ? "" : "s");
    int first = 1;
    for (int c = 0; c < CPU_SETSIZE && at < cap; c++) {
        if (!CPU_ISSET(c, set) || (c > 0 && CPU_ISSET(c - 1, set))) continue;
        int e = c;
        while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set)) e++;
        at += (size_t)(e == c ? snprintf(buf + at, cap - at, "%s%d", first ? "" : ",", c)
                              : snprintf(buf + at, cap - at, "%s%d-%d", first ? "" : ",", c, e));
        first = 0;
    }
}

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

/* Part ith of job g, if no one has taken it: the claim moves it from the
 * job before to g. A load first, so that a thread looking at parts
 * already taken does not pull their lines away from their owners. */
static int claim_part(pool *p, int ith, uint64_t g) {
    _Atomic uint64_t *cl = &p->slots[ith].claim;
    uint64_t want = g - 1;
    if (atomic_load_explicit(cl, memory_order_relaxed) != want) return 0;
    return atomic_compare_exchange_strong_explicit(cl, &want, g, memory_order_relaxed, memory_order_relaxed);
}

/* Thread self runs what it can take of job g: its own part, then the
 * others not yet taken, in order after its own. fn and arg are read only
 * after a claim (see the top of the file): gen's acquire, read by the
 * caller of this function, published them. Returns with its parts done
 * and counted; the thread that counts the last wakes a sleeping caller. */
static void run_parts(pool *p, uint64_t g, int self) {
    /* Relaxed: a late thread may read the next job's count, but a claim of
     * an old job then fails anyway. */
    const int n = atomic_load_explicit(&p->active, memory_order_relaxed);
    if (self >= n) return; /* outside this job's threads: take nothing */
    for (int k = 0; k < n; k++) {
        const int ith = self + k < n ? self + k : self + k - n;
        if (!claim_part(p, ith, g)) continue;
        p->fn(p->arg, ith, n, self);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1 && self != 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker_main(void *v) {
    worker_arg wa = *(worker_arg *)v;
    pool *p = wa.p;
    thread_slot *me = &p->slots[wa.ith];
    uint64_t seen = 0;
    infer_free(v);
    /* Its kernel scratch first (dispatch.h): pool_new waits for every
     * worker's, so that running out of memory fails pool_new, not a kernel. */
    const int scratch_ok = kernels_scratch_reserve() == 0;
    pthread_mutex_lock(&p->mu);
    if (scratch_ok) p->ready++;
    else p->unready++;
    pthread_cond_signal(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
    if (!scratch_ok) return NULL; /* pool_new stops the others and joins */
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->stop)) {
            if (++spins < p->spin_limit) {
                spin_step(p, wa.ith, spins);
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        if (atomic_load_explicit(&me->hold, memory_order_relaxed)) { /* as if off its CPU: take nothing */
            sched_yield();
            continue;
        }
        seen = g;
        if (wa.ith >= atomic_load_explicit(&p->active, memory_order_relaxed)) {
            /* Left out of the jobs (-t below -tb): sleep until the count
             * takes this thread in again, not spin beside those working.
             * Under mu, as pool_set_active changes it: no wake-up lost. */
            pthread_mutex_lock(&p->mu);
            while (wa.ith >= atomic_load(&p->active) && !atomic_load(&p->stop))
                pthread_cond_wait(&p->active_cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        run_parts(p, g, wa.ith);
    }
}

infer_status pool_new(int n_threads, const pool_opts *opts, pool **out, infer_error *err) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > POOL_MAX_THREADS) n_threads = POOL_MAX_THREADS;
    pool *p = infer_calloc(1, sizeof *p);
    if (!p) return set_error(err, INFER_ENOMEM, "out of memory for the thread pool");
    p->n = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    pthread_cond_init(&p->active_cv, NULL);
    const int poll = opts ? (opts->poll < 0 ? 0 : opts->poll > 100 ? 100 : opts->poll) : POOL_POLL_DEFAULT;
    p->spin_limit = SPIN_ITERATIONS / POOL_POLL_DEFAULT * poll;
    p->threads = infer_calloc((size_t)n_threads, sizeof *p->threads);
    p->slots_mem = infer_calloc((size_t)n_threads + 1, sizeof(thread_slot));
    if (!p->threads || !p->slots_mem) {
        pool_free(p);
        return set_error(err, INFER_ENOMEM, "out of memory for the thread pool");
    }
    p->slots = (thread_slot *)(((uintptr_t)p->slots_mem + SLOT_ALIGN - 1) & ~(uintptr_t)(SLOT_ALIGN - 1));
    char where[128];
    p->has_mask = pool_thread_cpus(opts, 0, &p->caller_cpus);
    if (p->has_mask) { /* the caller's CPUs, tried once here so that a bad mask fails now */
        pool_pin_caller(p);
        const int moved = p->caller_moved;
        pool_unpin_caller(p);
        if (!moved) {
            describe_cpus(&p->caller_cpus, where, sizeof where);
            pool_free(p);
            return set_error(err, INFER_EINVAL, "thread 1 of %d cannot run on %s (%s)", n_threads, where, REFUSED_CPUS);
        }
    }
    /* Workers' stacks of a size of our own, not the default (the stack
     * ulimit under glibc, 128 KB under musl), which may be smaller than a
     * forward pass needs (the batch kernels' panels are in their scratch). */
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        pool_free(p);
        return set_error(err, INFER_ENOMEM, "out of memory for the thread pool");
    }
    (void)pthread_attr_setstacksize(&attr, POOL_STACK_BYTES);
    for (int i = 1; i < n_threads; i++) {
        cpu_set_t cpus;
        if (pool_thread_cpus(opts, i, &cpus) && pthread_attr_setaffinity_np(&attr, sizeof cpus, &cpus) != 0) {
            pthread_attr_destroy(&attr);
            pool_free(p);
            return set_error(err, INFER_ENOMEM, "out of memory for thread %d's CPU set", i + 1);
        }
        worker_arg *wa = infer_malloc(sizeof *wa);
        if (!wa) {
            pthread_attr_destroy(&attr);
            pool_free(p);
            return set_error(err, INFER_ENOMEM, "out of memory for the thread pool");
        }
        *wa = (worker_arg){p, i};
        /* Workers read p->n only inside jobs, after this loop has finished. */
        const int rc = pthread_create(&p->threads[i - 1], &attr, worker_main, wa);
        if (rc != 0) {
            const int has_mask = p->has_mask;
            infer_free(wa);
            pthread_attr_destroy(&attr);
            pool_free(p);
            if (rc == EINVAL && has_mask) { /* only the affinity can be refused: the rest is ours */
                describe_cpus(&cpus, where, sizeof where);
                return set_error(err, INFER_EINVAL, "thread %d of %d cannot run on %s (%s)", i + 1, n_threads, where,
                                 REFUSED_CPUS);
            }
            return set_error(err, INFER_ENOMEM, "cannot start thread %d of %d", i + 1, n_threads);
        }
        p->n = i + 1;
    }
    pthread_attr_destroy(&attr);
    atomic_store(&p->active, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->ready + p->unready < p->n - 1) pthread_cond_wait(&p->done_cv, &p->mu);
    const int unready = p->unready;
    pthread_mutex_unlock(&p->mu);
    if (unready) {
        pool_free(p);
        return set_error(err, INFER_ENOMEM, "out of memory for the kernels' scratch of %d threads", unready);
    }
    *out = p;
    return INFER_OK;
}

int pool_size(const pool *p) { return p ? p->n : 1; }
int pool_parts(const pool *p) { return p ? atomic_load_explicit(&p->active, memory_order_relaxed) : 1; }

void pool_set_active(pool *p, int nth) {
    if (!p) return;
    nth = nth < 1 ? 1 : nth > p->n ? p->n : nth;
    if (nth == atomic_load_explicit(&p->active, memory_order_relaxed)) return;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->active, nth, memory_order_relaxed);
    pthread_cond_broadcast(&p->active_cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_run(pool *p, pool_fn fn, void *arg) {
    const int nth = pool_parts(p);
    if (nth == 1) {
        fn(arg, 0, 1, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, nth, memory_order_relaxed);
    /* The parts no thread takes in this job count as taken by it, so that
     * a later job with more parts finds them at its generation - 1 (only
     * this thread moves gen). */
    const uint64_t next = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    for (int i = nth; i < p->n; i++) atomic_store_explicit(&p->slots[i].claim, next, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    const uint64_t g = atomic_fetch_add_explicit(&p->gen, 1, memory_order_release) + 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_parts(p, g, 0);

    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (++spins < DONE_SPINS) {
            spin_step(p, 0, spins);
            continue;
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void pool_hold(pool *p, int ith, int on) {
    if (p && ith >= 1 && ith < p->n) atomic_store(&p->slots[ith].hold, on != 0);
}

void pool_free(pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_cond_broadcast(&p->active_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i + 1 < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->active_cv);
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
    const int nth = pool_parts(p);
    for (int i = 0; i < nth; i++) {
        int64_t b, e;
        pool_range(n, i, nth, &b, &e);
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
    const int nth = pool_parts(p);
    for (int i = 0; i < nth; i++) {
        const int64_t c = take(&p->slots[(ith + i) % nth].share, i != 0, m, count);
        if (c >= 0) return c;
    }
    *count = 0;
    return -1;
}

int64_t pool_shares_next(pool *p, int ith) {
    int64_t n;
    return pool_shares_take(p, ith, 1, &n);
}
