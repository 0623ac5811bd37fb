/*
 * test_cpus.c - the default thread count follows the CPUs this process may
 * run on: cgroup v2 cpu.max lines parsed (and refused) exactly, the
 * affinity mask counted (infer-bench's default under a one-CPU mask is in
 * test_bench_cli.c), and the pool's results when its threads outnumber
 * their CPUs.
 */
#include <sched.h>
#include <stdatomic.h>

#include "infer.h"
#include "pool.h"
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
    cr_assert_eq(pool_new(4, &p, &e), INFER_OK); /* the workers inherit the mask */
    for (long r = 0; r < 2000; r++) {
        sum_arg a = {.n = 100 + r % 37};
        pool_run(p, sum_range, &a);
        cr_assert_eq(atomic_load(&a.sum), a.n * (a.n - 1) / 2, "job %ld", r);
    }
    pool_free(p);
    cr_assert_eq(sched_setaffinity(0, sizeof saved, &saved), 0);
}
