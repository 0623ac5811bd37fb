/* pool_testutil.h - for the thread pool's tests, Criterion's suites and
 * the plain ThreadSanitizer program alike (no Criterion here). */
#ifndef INFER_POOL_TESTUTIL_H
#define INFER_POOL_TESTUTIL_H

#include "pool.h"

/* The sum of i over part ith of nth of [0, n) (pool_range): a pool job's
 * parts add up to n (n - 1) / 2 only if each ran exactly once. */
static inline long test_part_sum(int64_t n, int ith, int nth) {
    int64_t b, e;
    pool_range(n, ith, nth, &b, &e);
    long s = 0;
    for (int64_t i = b; i < e; i++) s += (long)i;
    return s;
}

#endif
