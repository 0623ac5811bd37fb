/*
 * test_pool.c - the thread pool: every part of a job runs once, by its
 * own thread when that one is there and by another when it is held off
 * (a worker that gets no CPU), and a held worker let go in the middle of
 * a run of jobs takes no part of a job that is over; ranges cover [0, n)
 * exactly, and work stealing hands out every chunk exactly once, in order
 * from a thread's own share, and the rest of a slow thread's share to the
 * others.
 */
#include <dirent.h>
#include <stdatomic.h>
#include <time.h>

#include "dispatch.h"
#include "pool.h"
#include "testutil.h"

Test(pool, range_covers_once) {
    for (int64_t n = 0; n < 40; n++) {
        for (int nth = 1; nth <= 7; nth++) {
            int64_t next = 0;
            for (int i = 0; i < nth; i++) {
                int64_t b, e;
                pool_range(n, i, nth, &b, &e);
                cr_assert_eq(b, next, "n %lld nth %d part %d", (long long)n, nth, i);
                cr_assert(e >= b && e - b <= n / nth + 1);
                next = e;
            }
            cr_assert_eq(next, n);
        }
    }
}

typedef struct {
    _Atomic int calls[8];
    _Atomic int nth_seen;
} run_arg;

static void count_run(void *arg, int ith, int nth, int self) {
    run_arg *a = arg;
    atomic_fetch_add(&a->calls[ith], 1);
    atomic_store(&a->nth_seen, nth);
}

Test(pool, run_calls_every_thread_once) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(3, NULL, &p, &err), INFER_OK);
    cr_assert_eq(pool_size(p), 3);
    run_arg a = {0};
    for (int r = 0; r < 100; r++) pool_run(p, count_run, &a);
    for (int i = 0; i < 3; i++) cr_assert_eq(atomic_load(&a.calls[i]), 100, "thread %d", i);
    cr_assert_eq(atomic_load(&a.nth_seen), 3);
    pool_free(p);
    run_arg b = {0};
    pool_run(NULL, count_run, &b); /* no pool: the caller alone */
    cr_assert_eq(atomic_load(&b.calls[0]), 1);
    cr_assert_eq(atomic_load(&b.nth_seen), 1);
    LEAK_CHECK();
}

Test(pool, shares_one_thread_takes_all_in_order) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(3, NULL, &p, &err), INFER_OK);
    /* Thread 1 of 3 over 10 chunks: shares [0,4) [4,7) [7,10). Its own
     * front to back, then share 2 and share 0 from their backs. */
    cr_assert(pool_shares_init(p, 10));
    const int64_t want[10] = {4, 5, 6, 9, 8, 7, 3, 2, 1, 0};
    for (int i = 0; i < 10; i++) cr_assert_eq(pool_shares_next(p, 1), want[i], "take %d", i);
    cr_assert_eq(pool_shares_next(p, 1), -1);
    cr_assert_eq(pool_shares_next(p, 0), -1);
    cr_assert(pool_shares_init(p, 0));
    cr_assert_eq(pool_shares_next(p, 0), -1);
    pool_free(p);
    LEAK_CHECK();
}

/* Runs: up to max, at most half (rounded up) of what the share holds, so
 * they shrink to one chunk at each share's end. Thread 1 of 3 over 30
 * chunks, max 4: shares [0,10) [10,20) [20,30). */
Test(pool, shares_take_runs_shrink_to_one) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(3, NULL, &p, &err), INFER_OK);
    cr_assert(pool_shares_init(p, 30));
    static const int64_t want[12][2] = {{10, 4}, {14, 3}, {17, 2}, {19, 1}, {26, 4}, {23, 3},
                                        {21, 2}, {20, 1}, {6, 4},  {3, 3},  {1, 2},  {0, 1}};
    int64_t n = -1;
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(pool_shares_take(p, 1, 4, &n), want[i][0], "run %d", i);
        cr_assert_eq(n, want[i][1], "run %d: %lld chunks", i, (long long)n);
    }
    cr_assert_eq(pool_shares_take(p, 1, 4, &n), -1);
    cr_assert_eq(n, 0);
    /* max below 1 is 1: pool_shares_next's order */
    cr_assert(pool_shares_init(p, 10));
    static const int64_t one[10] = {4, 5, 6, 9, 8, 7, 3, 2, 1, 0};
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(pool_shares_take(p, 1, 0, &n), one[i], "take %d", i);
        cr_assert_eq(n, 1);
    }
    pool_free(p);
    LEAK_CHECK();
}

Test(pool, shares_reject_out_of_range) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(2, NULL, &p, &err), INFER_OK);
    cr_assert_not(pool_shares_init(NULL, 10));
    cr_assert_not(pool_shares_init(p, -1));
    cr_assert_not(pool_shares_init(p, (int64_t)UINT32_MAX + 1));
    cr_assert(pool_shares_init(p, (int64_t)UINT32_MAX));
    cr_assert_eq(pool_shares_next(p, 1), (int64_t)UINT32_MAX / 2 + 1);
    pool_free(p);
    LEAK_CHECK();
}

#define N_CHUNKS 3000
typedef struct {
    pool *p;
    _Atomic int taken[N_CHUNKS];
    _Atomic int by[N_CHUNKS];
    int slow; /* this thread sleeps before it starts */
    int64_t max; /* runs of up to max chunks (pool_shares_take); 0: pool_shares_next */
    _Atomic int bad; /* a chunk out of range or out of order (checked by the test's thread) */
} steal_arg;

static void steal_run(void *arg, int ith, int nth, int self) {
    steal_arg *a = arg;
    if (ith == a->slow) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    int64_t c, last_own = -1;
    int64_t b, e;
    pool_range(N_CHUNKS, ith, nth, &b, &e);
    int64_t n = 1;
    while ((c = a->max ? pool_shares_take(a->p, ith, a->max, &n) : pool_shares_next(a->p, ith)) >= 0) {
        if (n < 1 || (a->max && n > a->max) || c + n > N_CHUNKS) {
            atomic_store(&a->bad, 1);
            return;
        }
        if (c >= b && c < e && ith != a->slow) { /* own chunks come in order */
            if (c <= last_own) atomic_store(&a->bad, 1);
            last_own = c + n - 1;
        }
        for (int64_t k = c; k < c + n; k++) {
            atomic_fetch_add(&a->taken[k], 1);
            atomic_store(&a->by[k], ith);
        }
        for (volatile int k = 0; k < 2000 * n; k++) { /* a little work per chunk */
        }
    }
}

Test(pool, shares_every_chunk_once_slow_thread_robbed) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(3, NULL, &p, &err), INFER_OK);
    static steal_arg a;
    for (int round = 0; round < 40; round++) { /* single chunks, then runs of up to 4 */
        memset(&a, 0, sizeof a);
        a.slow = round % 3;
        a.max = round < 20 ? 0 : 4;
        a.p = p;
        cr_assert(pool_shares_init(p, N_CHUNKS));
        pool_run(p, steal_run, &a);
        cr_assert_eq(atomic_load(&a.bad), 0, "round %d", round);
        int robbed = 0;
        int64_t b, e;
        pool_range(N_CHUNKS, a.slow, 3, &b, &e);
        for (int c = 0; c < N_CHUNKS; c++) {
            cr_assert_eq(atomic_load(&a.taken[c]), 1, "round %d chunk %d", round, c);
            if (c >= b && c < e && atomic_load(&a.by[c]) != a.slow) robbed++;
        }
        /* The others finish their own 1000 chunks long before the sleeper wakes. */
        cr_assert_gt(robbed, 0, "round %d: nothing taken from the slow thread", round);
    }
    pool_free(p);
    LEAK_CHECK();
}

/* pool_read_ahead: a thread's range is read (its bytes issued) while the
 * thread waits, by worker and caller alike; a new range replaces the old,
 * an empty or wrapping one clears it, and a pool of one keeps none. */
typedef struct {
    pool *p;
    const uint8_t *buf;
    size_t len;
    int sleeper;            /* this thread sleeps 50 ms before returning */
    _Atomic int started1;   /* part 1 has begun */
} ahead_arg;

/* Up to ms milliseconds for *flag to be set; 0 if it never was. */
static int wait_flag_ms(_Atomic int *flag, int ms) {
    for (int i = 0; i < ms && !atomic_load(flag); i++) nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
    return atomic_load(flag);
}
static int wait_flag(_Atomic int *flag) { return wait_flag_ms(flag, 2000); }

/* Part 0 (the caller's) waits for part 1 to begin, so that the worker
 * takes part 1 and each thread sets its own range. */
static void set_ahead(void *arg, int ith, int nth, int self) {
    ahead_arg *a = arg;
    (void)nth;
    pool_read_ahead(a->p, self, a->buf, a->len);
    if (ith == 1) atomic_store(&a->started1, 1);
    else (void)wait_flag(&a->started1);
    if (self == a->sleeper) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
}

static int drains(pool *p, int ith) {
    for (int i = 0; i < 5000 && pool_read_ahead_left(p, ith) != 0; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return pool_read_ahead_left(p, ith) == 0;
}

Test(pool, read_ahead_issued_while_waiting) {
    static uint8_t buf[1 << 20];
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(2, NULL, &p, &err), INFER_OK);

    /* The worker sleeps: the caller waits for it, reading its own range. */
    static ahead_arg a;
    a = (ahead_arg){p, buf, 64 << 10, 1, 0};
    pool_run(p, set_ahead, &a);
    cr_assert(atomic_load(&a.started1));
    cr_assert_eq(pool_read_ahead_left(p, 0), 0, "the caller's range was not read while it waited");
    /* The caller returns at once: the worker reads its range between jobs. */
    a = (ahead_arg){p, buf, sizeof buf, -1, 0};
    pool_run(p, set_ahead, &a);
    cr_assert(atomic_load(&a.started1));
    cr_assert(drains(p, 1), "the worker's range was not read while it waited");

    /* Replace, clear, reject. */
    pool_read_ahead(p, 0, buf, 1000);
    cr_assert_eq(pool_read_ahead_left(p, 0), 1000);
    pool_read_ahead(p, 0, buf + 5, 300);
    cr_assert_eq(pool_read_ahead_left(p, 0), 300);
    pool_read_ahead(p, 0, NULL, 300);
    cr_assert_eq(pool_read_ahead_left(p, 0), 0);
    pool_read_ahead(p, 0, buf, 300);
    pool_read_ahead(p, 0, buf, 0);
    cr_assert_eq(pool_read_ahead_left(p, 0), 0);
    pool_read_ahead(p, 0, (const void *)(UINTPTR_MAX - 100), 200); /* would wrap */
    cr_assert_eq(pool_read_ahead_left(p, 0), 0);
    pool_read_ahead(p, 2, buf, 300); /* no such thread */
    pool_read_ahead(p, -1, buf, 300);
    cr_assert_eq(pool_read_ahead_left(p, 2), 0);
    pool_free(p);

    cr_assert_eq(pool_new(1, NULL, &p, &err), INFER_OK);
    pool_read_ahead(p, 0, buf, 300);
    cr_assert_eq(pool_read_ahead_left(p, 0), 0);
    pool_free(p);
    pool_read_ahead(NULL, 0, buf, 300);
    cr_assert_eq(pool_read_ahead_left(NULL, 0), 0);
    LEAK_CHECK();
}

/* Who ran each part of one job. */
typedef struct {
    _Atomic int runs[4];
    _Atomic int by[4];
    _Atomic int bad; /* nth not the pool's size, self out of range, or part 2 never began */
    int wait_ms;     /* parts 0 and 1 wait up to this long for part 2 to begin */
    int must_begin;  /* ... and it must have */
    _Atomic int started2;
} who_arg;

static void who_run(void *arg, int ith, int nth, int self) {
    who_arg *a = arg;
    if (nth != 3 || ith < 0 || ith >= 3 || self < 0 || self >= 3) {
        atomic_store(&a->bad, 1);
        return;
    }
    if (ith == 2) atomic_store(&a->started2, 1);
    else if (!wait_flag_ms(&a->started2, a->wait_ms) && a->must_begin) atomic_store(&a->bad, 1);
    atomic_fetch_add(&a->runs[ith], 1);
    atomic_store(&a->by[ith], self);
}

/* A worker held off every CPU: the others do its part, and no part runs
 * twice. Parts 0 and 1 wait 10 ms for part 2 to begin (plenty for a
 * thread that is there: let go, thread 2 does begin it), then one of
 * them runs it. Let go, the worker takes its own part again: with parts 0
 * and 1 waiting for part 2 (up to 2 s), only thread 2 can run it. */
Test(pool, held_worker_passed_over_then_rejoins) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(3, NULL, &p, &err), INFER_OK);
    pool_hold(p, 2, 1);
    for (int r = 0; r < 30; r++) {
        who_arg a = {.wait_ms = 10};
        pool_run(p, who_run, &a);
        cr_assert_eq(atomic_load(&a.bad), 0, "job %d", r);
        for (int i = 0; i < 3; i++) cr_assert_eq(atomic_load(&a.runs[i]), 1, "job %d part %d", r, i);
        cr_assert_neq(atomic_load(&a.by[2]), 2, "job %d: the held worker ran its part", r);
    }
    pool_hold(p, 2, 0);
    for (int r = 0; r < 30; r++) {
        who_arg a = {.wait_ms = 2000, .must_begin = 1};
        pool_run(p, who_run, &a);
        cr_assert_eq(atomic_load(&a.bad), 0, "job %d: part 2 never began", r);
        for (int i = 0; i < 3; i++) cr_assert_eq(atomic_load(&a.runs[i]), 1, "job %d part %d", r, i);
        cr_assert_eq(atomic_load(&a.by[2]), 2, "job %d: part 2 ran on thread %d", r, atomic_load(&a.by[2]));
    }
    pool_hold(NULL, 1, 1); /* no pool, the caller, no such thread: no-ops */
    pool_hold(p, 0, 1);
    pool_hold(p, 3, 1);
    who_arg a = {.wait_ms = 2000, .must_begin = 1};
    pool_run(p, who_run, &a);
    cr_assert_eq(atomic_load(&a.bad), 0);
    cr_assert_eq(atomic_load(&a.by[2]), 2);
    pool_free(p);
    LEAK_CHECK();
}

/* Workers held and let go between and during jobs, whose arguments
 * live on the caller's stack: a worker that comes back with an old
 * generation must take no part of a job that is over (each job's parts
 * are counted right after it), and every job completes. */
typedef struct {
    _Atomic int runs[4];
    long sum;
    _Atomic long got;
} stale_arg;

static void stale_run(void *arg, int ith, int nth, int self) {
    stale_arg *a = arg;
    atomic_fetch_add(&a->runs[ith], 1);
    atomic_fetch_add(&a->got, test_part_sum(a->sum, ith, nth));
}

Test(pool, late_worker_takes_no_part_of_a_finished_job) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(4, NULL, &p, &err), INFER_OK);
    for (int r = 0; r < 3000; r++) {
        if (r % 7 == 0) pool_hold(p, 1 + r % 3, 1);
        if (r % 5 == 0) pool_hold(p, 1 + (r / 5) % 3, 0);
        stale_arg a = {.sum = 1000 + r % 91};
        pool_run(p, stale_run, &a);
        for (int i = 0; i < 4; i++) cr_assert_eq(atomic_load(&a.runs[i]), 1, "job %d part %d", r, i);
        cr_assert_eq(atomic_load(&a.got), a.sum * (a.sum - 1) / 2, "job %d", r);
    }
    for (int i = 1; i < 4; i++) pool_hold(p, i, 1);
    stale_arg a = {.sum = 77};
    pool_run(p, stale_run, &a); /* the caller alone */
    cr_assert_eq(atomic_load(&a.got), 77 * 76 / 2);
    pool_free(p); /* held workers still stop */
    LEAK_CHECK();
}

/* Each worker has its kernel scratch (dispatch.h) before pool_new returns:
 * whichever allocation fails, pool_new says ENOMEM and frees all it made
 * (LEAK_CHECK in the sanitizer build); with memory, a job asks every
 * thread for its scratch and nothing more is allocated. */
static void scratch_part(void *arg, int ith, int nth, int self) {
    (void)ith, (void)nth;
    ((void **)arg)[self] = kernels_scratch();
}

Test(pool, worker_scratch_out_of_memory_fails_pool_new) {
    cr_assert_eq(kernels_scratch_reserve(), 0); /* the caller's own */
    pool *p = NULL;
    infer_error err = {0};
    uint64_t k = 1;
    for (; k < 100; k++) {
        infer_alloc_fail_at(k);
        infer_status s = pool_new(3, NULL, &p, &err);
        infer_alloc_fail_at(0);
        if (s == INFER_OK) break;
        cr_assert_eq(s, INFER_ENOMEM, "allocation %llu: %s", (unsigned long long)k, err.message);
        cr_assert_null(p);
        LEAK_CHECK();
    }
    cr_assert_gt(k, 6, "pool_new of 3 threads made only %llu allocations", (unsigned long long)k - 1);
    cr_assert_lt(k, 100);
    void *seen[3] = {0};
    const uint64_t before = infer_alloc_count();
    for (int r = 0; r < 50; r++) pool_run(p, scratch_part, seen);
    cr_assert_eq(infer_alloc_count(), before, "a thread's scratch was not reserved by pool_new");
    for (int i = 0; i < 3; i++) {
        if (!seen[i]) continue; /* a worker may have taken no part */
        cr_assert_eq((uintptr_t)seen[i] % 64, 0);
        for (int j = 0; j < i; j++) cr_assert_neq(seen[i], seen[j]);
    }
    pool_free(p);
    LEAK_CHECK();
}

/* pool_set_active (llama.cpp's -t / -tb on one pool): a job of nth parts
 * runs each part once, on threads 0 .. nth - 1 only, with nth passed to
 * every part; counts changing from job to job in any order (the parts a
 * job leaves count as taken, so the next job's claims still find them),
 * work stealing over the active parts included. */
typedef struct {
    pool *p;
    _Atomic int calls[8];
    _Atomic int selfs; /* bit per thread that ran a part */
    _Atomic int bad;   /* a part saw the wrong nth */
    int want_nth;
    _Atomic int taken[64];
} active_arg;

static void active_run(void *arg, int ith, int nth, int self) {
    active_arg *a = arg;
    if (nth != a->want_nth || ith >= nth) atomic_store(&a->bad, 1);
    atomic_fetch_add(&a->calls[ith], 1);
    atomic_fetch_or(&a->selfs, 1 << self);
    int64_t c, n;
    while ((c = pool_shares_take(a->p, ith, 2, &n)) >= 0)
        for (int64_t k = c; k < c + n; k++) atomic_fetch_add(&a->taken[k], 1);
    for (volatile int k = 0; k < 20000; k++) { /* long enough for the others to begin */
    }
}

Test(pool, active_parts_change_between_jobs, .timeout = TEST_TIMEOUT) {
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(4, NULL, &p, &err), INFER_OK);
    cr_assert_eq(pool_parts(p), 4);
    static active_arg a;
    uint64_t rng = 7;
    for (int job = 0; job < 3000; job++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        const int nth = 1 + (int)((rng >> 33) % 4);
        pool_set_active(p, nth);
        cr_assert_eq(pool_parts(p), nth);
        memset(&a, 0, sizeof a);
        a.p = p;
        a.want_nth = nth;
        cr_assert(pool_shares_init(p, 64));
        pool_run(p, active_run, &a);
        cr_assert_eq(atomic_load(&a.bad), 0, "job %d: nth %d", job, nth);
        for (int i = 0; i < 8; i++) cr_assert_eq(atomic_load(&a.calls[i]), i < nth, "job %d part %d", job, i);
        for (int k = 0; k < 64; k++) cr_assert_eq(atomic_load(&a.taken[k]), 1, "job %d chunk %d", job, k);
        cr_assert_eq(atomic_load(&a.selfs) >> nth, 0, "job %d: only threads below %d", job, nth);
    }
    pool_set_active(p, 0); /* clamped */
    cr_expect_eq(pool_parts(p), 1);
    pool_set_active(p, 99);
    cr_expect_eq(pool_parts(p), 4);
    cr_expect_eq(pool_parts(NULL), 1);
    pool_free(p);
    LEAK_CHECK();
}

/* This process's thread ids (at most cap) into ids; the count. */
static int task_ids(long *ids, int cap) {
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < cap;)
        if (e->d_name[0] != '.') ids[n++] = atol(e->d_name);
    closedir(d);
    return n;
}

/* CPU time of threads ids[0, n), in ns (/proc/self/task/TID/schedstat's
 * first field). */
static double cpu_ns_of(const long *ids, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", ids[i]);
        FILE *f = fopen(path, "r");
        double ns = 0.0;
        if (f && fscanf(f, "%lf", &ns) == 1) sum += ns;
        if (f) fclose(f);
    }
    return sum;
}

static void tiny_part(void *arg, int ith, int nth, int self) { atomic_fetch_add((_Atomic int *)arg, 1); }

/* Each part waits (up to 100 ms) for all nth to have begun, so that every
 * thread that is awake gets to take its own. */
typedef struct {
    int nth;
    _Atomic int started, selfs;
} meet_arg;

static void meet_part(void *arg, int ith, int nth, int self) {
    meet_arg *m = arg;
    atomic_fetch_or(&m->selfs, 1 << self);
    atomic_fetch_add(&m->started, 1);
    const double t0 = test_now_s();
    while (atomic_load(&m->started) < m->nth && test_now_s() - t0 < 0.1) sched_yield();
}

/* Threads a job leaves out (-t below -tb) sleep, not spin beside the
 * working ones: over ~200 ms of back-to-back two-part jobs, the two
 * left-out workers of a 4-thread pool use next to no CPU (without the
 * sleep they spin through all of it, each job keeping them awake); then
 * taken in again, they run parts. */
Test(pool, left_out_threads_sleep, .timeout = TEST_TIMEOUT) {
    long old_ids[256], ids[256], workers[3];
    const int n_old = task_ids(old_ids, 256);
    pool *p = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(4, NULL, &p, &err), INFER_OK);
    int n_workers = 0; /* the threads pool_new started (others, e.g. OpenBLAS's, may spin on their own) */
    for (int i = 0, n = task_ids(ids, 256); i < n; i++) {
        int known = 0;
        for (int k = 0; k < n_old; k++) known |= ids[i] == old_ids[k];
        if (!known && n_workers < 3) workers[n_workers++] = ids[i];
    }
    cr_assert_eq(n_workers, 3);
    pool_set_active(p, 2); /* jobs of two parts: the caller and worker 1; workers 2 and 3 left out */
    _Atomic int calls = 0;
    pool_run(p, tiny_part, &calls);
    double before[3], used[3];
    for (int k = 0; k < 3; k++) before[k] = cpu_ns_of(&workers[k], 1);
    const double t0 = test_now_s();
    int jobs = 0;
    while (test_now_s() - t0 < 0.2) {
        pool_run(p, tiny_part, &calls);
        jobs++;
    }
    int idle = 0; /* which thread id is which worker is not known: two of the three stay idle */
    for (int k = 0; k < 3; k++) {
        used[k] = cpu_ns_of(&workers[k], 1) - before[k];
        idle += used[k] < 10e6;
    }
    cr_expect_geq(idle, 2, "left-out threads idle over %d jobs: %.1f / %.1f / %.1f ms of CPU", jobs, used[0] / 1e6,
                  used[1] / 1e6, used[2] / 1e6);
    pool_set_active(p, 4);
    int selfs = 0;
    for (int r = 0; r < 20 && selfs != 0xF; r++) {
        meet_arg m = {.nth = 4};
        pool_run(p, meet_part, &m);
        selfs |= atomic_load(&m.selfs);
    }
    cr_expect_eq(selfs, 0xF, "every thread took parts again");
    pool_free(p);
    LEAK_CHECK();
}
