/* pool.h - a persistent thread pool (see pool.c). */
#ifndef INFER_POOL_H
#define INFER_POOL_H

#include "util.h"

#define POOL_MAX_THREADS 256
#define POOL_STACK_BYTES ((size_t)2 << 20) /* each worker's stack (see INFER_MIN_CALLER_STACK) */

typedef struct pool pool;
/* Part ith of a job's nth, run by thread self (0 to pool_size - 1). A
 * part is run by exactly one thread, but not always the one with its
 * index: a thread that has done its own takes the parts no one has begun.
 * Split work by ith; key per-thread state (pool_read_ahead) by self. */
typedef void (*pool_fn)(void *arg, int ith, int nth, int self);

/* n_threads - 1 workers are started now; the caller is thread 0. */
infer_status pool_new(int n_threads, pool **out, infer_error *err);
void pool_free(pool *p); /* NULL is fine */
int pool_size(const pool *p);
/* fn(arg, ith, nth, self) for every part ith of nth = pool_size; returns
 * when all are done. A thread that has not begun the job by the time the
 * others have taken every part takes none, so the job does not wait for
 * it. A NULL pool runs fn(arg, 0, 1, 0). One pool_run at a time per pool. */
void pool_run(pool *p, pool_fn fn, void *arg);
/* For tests: while on, worker ith (1 to pool_size - 1) takes no part of
 * any job, as a worker that never gets a CPU would not. */
void pool_hold(pool *p, int ith, int on);
/* The ith of nth contiguous, nearly equal parts of [0, n). */
void pool_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end);

/* Work stealing over chunks [0, n): share i is pool_range's part i.
 * Part ith (pool_fn's ith) takes chunks from the front of its own share
 * (in order, one sequential stream), then from the back of the others'.
 * Every chunk is taken exactly once, by whichever thread gets there
 * first; use it only where a chunk's result does not depend on the
 * thread. The pool holds one set of shares (each on its own cache lines),
 * for its next job: the caller sets them with pool_shares_init before
 * pool_run, the job's threads take chunks with pool_shares_next. init
 * returns 0 (and the shares are unusable) for a NULL pool or n out of
 * [0, UINT32_MAX]. */
int pool_shares_init(pool *p, int64_t n);
/* The next chunk for part ith, or -1 once every chunk is taken. */
int64_t pool_shares_next(pool *p, int ith);
/* As pool_shares_next, but a run of consecutive chunks: up to max (>= 1),
 * and at most half (rounded up) of what the share it comes from still
 * holds, so runs shrink to one chunk where the threads meet and the last
 * thread to finish is left with little. Returns the run's first chunk and
 * sets *count, or -1 once every chunk is taken. */
int64_t pool_shares_take(pool *p, int ith, int64_t max, int64_t *count);

/* Thread ith (and only it: pool_fn's self inside a job, or the caller
 * for ith 0) leaves [ptr, ptr + len) to be read into its cache while it
 * waits: in the pool's spin between jobs or for the others to finish. A
 * hint for memory the next job will read; it replaces the thread's
 * previous one, and ptr NULL or len 0 clears it. Prefetches never fault,
 * but the caller clears a range before its memory may go away. No-op for
 * a pool of one. */
void pool_read_ahead(pool *p, int ith, const void *ptr, size_t len);
/* Bytes of thread ith's read-ahead not yet issued (0 for a pool of one). */
size_t pool_read_ahead_left(pool *p, int ith);
#endif
