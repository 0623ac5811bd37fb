/*
 * test_cpus.c - the default thread count follows the CPUs this process may
 * run on: cgroup v2 cpu.max lines parsed (and refused) exactly, the
 * affinity mask counted (infer-bench's default under a one-CPU mask is in
 * test_bench_cli.c), and the pool's results when its threads outnumber
 * their CPUs; llama.cpp's CPU options (-C / -Cr parsed, --cpu-strict's
 * placement, --poll 0) in the pool.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "infer.h"
#include "pool.h"
#include "pool_testutil.h"
#include "testutil.h"
#include "util.h"

Test(cpus, quota_lines) {
    static const struct {
        const char *line;
        int cpus;
    } CASES[] = {
        {"max 100000\n", 0},       /* no limit */
        {"200000 100000\n", 2},    /* docker --cpus 2 */
        {"150000 100000\n", 2},    /* 1.5: rounded up */
        {"50000 100000", 1},       /* half a CPU still runs one thread */
        {"100000 100000\n", 1},
        {"1 100000\n", 1},
        {"1600000 100000 \n", 16},
        {"0 100000\n", 0},         /* nonsense: no limit taken */
        {"100000 0\n", 0},         /* zero period */
        {"100000\n", 0},           /* no period */
        {"100000 100000 7\n", 0},  /* trailing junk */
        {"-100000 100000\n", 0},   /* sign */
        {"", 0},
        {"max\n", 0},
        {"99999999999999999999999 1\n", 0}, /* out of range */
        {"9223372036854775807 1\n", 2147483647}, /* saturates at INT_MAX */
        {"100000  100000\n", 0},  /* one space, as the kernel writes it */
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        cr_expect_eq(cpus_from_quota(CASES[i].line), CASES[i].cpus, "'%s'", CASES[i].line);
    cr_expect_eq(cpus_from_quota(NULL), 0);
}

Test(cpus, default_follows_affinity) {
    const int all = infer_default_threads();
    cr_assert_geq(all, 1);
    cpu_set_t saved;
    cr_assert(test_pin_to_first(1, &saved));
    cr_expect_eq(infer_default_threads(), 1);
    cr_assert_eq(sched_setaffinity(0, sizeof saved, &saved), 0);
    if (test_pin_to_first(2, &saved)) {
        cr_expect_eq(infer_default_threads(), 2 < all ? 2 : all); /* a quota may allow fewer */
        cr_assert_eq(sched_setaffinity(0, sizeof saved, &saved), 0);
    }
    cr_expect_eq(infer_default_threads(), all);
}

typedef struct {
    _Atomic long sum;
    long n;
} sum_arg;

static void sum_range(void *arg, int ith, int nth, int self) {
    sum_arg *a = arg;
    atomic_fetch_add(&a->sum, test_part_sum(a->n, ith, nth));
}

/* Four threads on one CPU (the waits' yields run): every job complete. */
Test(cpus, pool_oversubscribed_jobs_complete) {
    cpu_set_t saved;
    cr_assert(test_pin_to_first(1, &saved));
    pool *p = NULL;
    infer_error e = {0};
    cr_assert_eq(pool_new(4, NULL, &p, &e), INFER_OK); /* the workers inherit the mask */
    for (long r = 0; r < 2000; r++) {
        sum_arg a = {.n = 100 + r % 37};
        pool_run(p, sum_range, &a);
        cr_assert_eq(atomic_load(&a.sum), a.n * (a.n - 1) / 2, "job %ld", r);
    }
    pool_free(p);
    cr_assert_eq(sched_setaffinity(0, sizeof saved, &saved), 0);
}

static int bit(const uint64_t *m, int cpu) { return (int)((m[cpu / 64] >> (cpu % 64)) & 1); }

/* -C as llama.cpp's parse_cpu_mask reads it: hex, an optional 0x, the last
 * digit CPUs 0-3; OR'd into what the mask holds. */
Test(cpus, cpu_mask_parsed_as_llama_cpp) {
    uint64_t m[INFER_CPU_MASK_WORDS] = {0};
    cr_assert_eq(cpu_mask_parse("0x5", m), 0);
    cr_expect(bit(m, 0) && !bit(m, 1) && bit(m, 2) && !bit(m, 3));
    cr_assert_eq(cpu_mask_parse("F0", m), 0); /* OR'd: 0, 2, 4-7 */
    cr_expect_eq(m[0], 0xF5u);
    memset(m, 0, sizeof m);
    cr_assert_eq(cpu_mask_parse("0X1000000000000000a", m), 0); /* CPUs 1 and 3, and 64 (17th digit) */
    cr_expect_eq(m[0], 0xAu);
    cr_expect_eq(m[1], 1u);
    char big[400];
    memset(m, 0, sizeof m);
    big[0] = '8'; /* the 256th digit from the right: CPU 1023, the last */
    memset(big + 1, '0', 255);
    big[256] = '\0';
    cr_assert_eq(cpu_mask_parse(big, m), 0);
    cr_expect_eq(m[15], UINT64_C(1) << 63);
    memset(big, '0', 300); /* leading zeros name no CPU */
    big[299] = '1';
    big[300] = '\0';
    cr_assert_eq(cpu_mask_parse(big, m), 0);
    cr_expect_eq(m[0], 1u);
    uint64_t before[INFER_CPU_MASK_WORDS];
    memcpy(before, m, sizeof m);
    big[0] = '1'; /* a 300-digit mask with CPU 1196: past the last */
    static const char *const BAD[] = {"", "0x", "12g", "0x-1", " 1", "1 ", "x1"};
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) cr_expect_eq(cpu_mask_parse(BAD[i], m), -1, "'%s'", BAD[i]);
    cr_expect_eq(cpu_mask_parse(big, m), -1);
    cr_expect(memcmp(before, m, sizeof m) == 0, "a refused mask left the mask as it was");
}

/* -Cr as llama.cpp's parse_cpu_range: LO-HI, either end left out. */
Test(cpus, cpu_range_parsed_as_llama_cpp) {
    uint64_t m[INFER_CPU_MASK_WORDS] = {0};
    cr_assert_eq(cpu_range_parse("2-5", m), 0);
    cr_expect_eq(m[0], 0x3Cu);
    memset(m, 0, sizeof m);
    cr_assert_eq(cpu_range_parse("-1", m), 0);
    cr_expect_eq(m[0], 0x3u);
    memset(m, 0, sizeof m);
    cr_assert_eq(cpu_range_parse("1020-", m), 0);
    cr_expect_eq(m[15], UINT64_C(0xF) << 60);
    cr_expect_eq(pool_mask_count(m), 4);
    cr_assert_eq(cpu_range_parse("7-7", m), 0);
    cr_expect_eq(pool_mask_count(m), 5);
    static const char *const BAD[] = {"", "3", "5-2", "0-1024", "1024-", "a-b", "1-2-3", "+1-2", "1 -2", "1-2 "};
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) cr_expect_eq(cpu_range_parse(BAD[i], m), -1, "'%s'", BAD[i]);
    cr_expect_eq(pool_mask_count(m), 5);
}

/* --cpu-strict: thread k on the (k mod n)-th CPU of the mask; without it
 * every thread on all of them; no mask, no affinity. */
Test(cpus, strict_placement_round_robin) {
    uint64_t m[INFER_CPU_MASK_WORDS] = {0};
    m[0] = (1u << 1) | (1u << 3);
    m[2] = 1u; /* CPU 128 */
    pool_opts o = {.cpu_mask = m, .strict = 1};
    cpu_set_t s;
    static const int WANT[] = {1, 3, 128, 1, 3};
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(pool_thread_cpus(&o, k, &s), 1);
        cr_expect_eq(CPU_COUNT(&s), 1, "thread %d", k);
        cr_expect(CPU_ISSET(WANT[k], &s), "thread %d on CPU %d", k, WANT[k]);
    }
    o.strict = 0;
    cr_assert_eq(pool_thread_cpus(&o, 4, &s), 1);
    cr_expect(CPU_COUNT(&s) == 3 && CPU_ISSET(1, &s) && CPU_ISSET(3, &s) && CPU_ISSET(128, &s));
    memset(m, 0, sizeof m);
    cr_expect_eq(pool_thread_cpus(&o, 0, &s), 0);
    cr_expect_eq(pool_thread_cpus(NULL, 0, &s), 0);
}

typedef struct {
    cpu_set_t seen[4]; /* each thread's affinity, by self */
    _Atomic int ran[4];
    cpu_set_t caller; /* the caller's, from its own part */
    _Atomic long sum;
    long n;
} where_arg;

static void where_part(void *arg, int ith, int nth, int self) {
    where_arg *a = arg;
    cpu_set_t s;
    cr_assert_eq(pthread_getaffinity_np(pthread_self(), sizeof s, &s), 0);
    if (!atomic_exchange(&a->ran[self], 1)) a->seen[self] = s;
    atomic_fetch_add(&a->sum, test_part_sum(a->n, ith, nth));
    const double t0 = test_now_s();
    while (test_now_s() - t0 < 2e-4) {} /* long enough for every thread to take its own part */
}

/* A pool with a mask runs its workers on their CPUs from the start, and
 * the caller on thread 0's only between pin and unpin. With the first two
 * CPUs this process may use (or the first, twice, on a one-CPU machine). */
Test(cpus, pool_threads_run_on_their_cpus) {
    cpu_set_t own;
    cr_assert_eq(sched_getaffinity(0, sizeof own, &own), 0);
    int cpus[2] = {-1, -1};
    for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &own)) cpus[k++] = c;
    if (cpus[1] < 0) cpus[1] = cpus[0];
    uint64_t m[INFER_CPU_MASK_WORDS] = {0};
    for (int k = 0; k < 2; k++) m[cpus[k] / 64] |= UINT64_C(1) << (cpus[k] % 64);
    const pool_opts o = {.cpu_mask = m, .strict = 1, .poll = 50};
    pool *p = NULL;
    infer_error e = {0};
    cr_assert_eq(pool_new(3, &o, &p, &e), INFER_OK, "%s", e.message);
    where_arg a = {.n = 1000};
    for (int r = 0; r < 5000 && !(a.ran[0] && a.ran[1] && a.ran[2]); r++) {
        a.sum = 0;
        pool_run(p, where_part, &a);
        cr_assert_eq(atomic_load(&a.sum), a.n * (a.n - 1) / 2);
    }
    cr_assert(a.ran[1] && a.ran[2], "every worker took a part");
    const int n_mask = pool_mask_count(m);
    for (int k = 1; k < 3; k++) { /* strict: worker k on the (k mod n)-th CPU */
        const int want = n_mask == 1 ? cpus[0] : cpus[k % 2];
        cr_expect(CPU_COUNT(&a.seen[k]) == 1 && CPU_ISSET(want, &a.seen[k]), "worker %d on CPU %d alone", k, want);
    }
    cr_expect(CPU_EQUAL(&a.seen[0], &own), "the caller unpinned keeps its own CPUs");
    pool_pin_caller(p);
    cpu_set_t now;
    cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
    cr_expect(CPU_COUNT(&now) == 1 && CPU_ISSET(cpus[0], &now), "pinned: thread 0's CPU");
    pool_unpin_caller(p);
    cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
    cr_expect(CPU_EQUAL(&now, &own), "unpinned: its own CPUs again");
    pool_free(p);
    /* Not strict: every worker on both. */
    cr_assert_eq(pool_new(3, &(pool_opts){.cpu_mask = m, .poll = 50}, &p, &e), INFER_OK, "%s", e.message);
    memset(&a, 0, sizeof a);
    a.n = 1000;
    for (int r = 0; r < 5000 && !(a.ran[1] && a.ran[2]); r++) pool_run(p, where_part, &a);
    for (int k = 1; k < 3; k++) {
        cr_expect(a.ran[k]);
        cr_expect(CPU_COUNT(&a.seen[k]) == n_mask && CPU_ISSET(cpus[0], &a.seen[k]) && CPU_ISSET(cpus[1], &a.seen[k]),
                  "worker %d on the whole mask", k);
    }
    pool_free(p);
}

/* A CPU the machine does not have: refused when the pool is made, naming
 * the thread and the CPU; with a CPU it has beside it, strict placement
 * refuses the thread put on the absent one, the whole mask is fine. The
 * default thread count of a mask counts the CPUs the machine has. */
Test(cpus, pool_mask_of_absent_cpus_refused) {
    int first, outside;
    test_own_cpus(&first, &outside);
    if (outside < 0) cr_skip_test("a mask can name no CPU this machine lacks");
    cpu_set_t own;
    cr_assert_eq(sched_getaffinity(0, sizeof own, &own), 0);
    uint64_t m[INFER_CPU_MASK_WORDS] = {0};
    m[outside / 64] |= UINT64_C(1) << (outside % 64);
    cr_expect_eq(cpus_in_mask(m), 1, "none it has: the mask's own count");
    pool *p = NULL;
    infer_error e = {0};
    cr_assert_eq(pool_new(2, &(pool_opts){.cpu_mask = m, .strict = 1}, &p, &e), INFER_EINVAL);
    cr_assert_null(p);
    char want[32];
    snprintf(want, sizeof want, "CPU %d", outside);
    cr_expect(strstr(e.message, "thread 1 of 2") && strstr(e.message, want), "%s", e.message);
    m[first / 64] |= UINT64_C(1) << (first % 64); /* first < outside: thread 0 on first, thread 1 on outside */
    cr_expect_eq(cpus_in_mask(m), 1, "the one it has");
    cr_assert_eq(pool_new(2, &(pool_opts){.cpu_mask = m, .strict = 1}, &p, &e), INFER_EINVAL);
    cr_expect(strstr(e.message, "thread 2 of 2") && strstr(e.message, want), "%s", e.message);
    cr_assert_eq(pool_new(2, &(pool_opts){.cpu_mask = m}, &p, &e), INFER_OK, "%s", e.message);
    pool_free(p); /* not strict: both may run on the one it has */
    cpu_set_t now;
    cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
    cr_expect(CPU_EQUAL(&now, &own), "the caller's CPUs as they were");
}

/* --poll 0: workers sleep after every job; each job still completes. */
Test(cpus, poll_zero_jobs_complete) {
    pool *p = NULL;
    infer_error e = {0};
    cr_assert_eq(pool_new(3, &(pool_opts){.poll = 0}, &p, &e), INFER_OK);
    for (long r = 0; r < 2000; r++) {
        sum_arg a = {.n = 50 + r % 29};
        pool_run(p, sum_range, &a);
        cr_assert_eq(atomic_load(&a.sum), a.n * (a.n - 1) / 2, "job %ld", r);
    }
    pool_free(p);
}
