/* pool.h - a persistent thread pool (see pool.c). */
#ifndef INFER_POOL_H
#define INFER_POOL_H

#include "util.h"

#define POOL_MAX_THREADS 256

typedef struct pool pool;
typedef void (*pool_fn)(void *arg, int ith, int nth);

/* n_threads - 1 workers are started now; the caller is thread 0. */
infer_status pool_new(int n_threads, pool **out, infer_error *err);
void pool_free(pool *p); /* NULL is fine */
int pool_size(const pool *p);
/* fn(arg, ith, nth) on every thread; returns when all are done. A NULL
 * pool runs fn(arg, 0, 1). One pool_run at a time per pool. */
void pool_run(pool *p, pool_fn fn, void *arg);
/* The ith of nth contiguous, nearly equal parts of [0, n). */
void pool_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end);

#endif
