/* pool.h - a persistent thread pool (see pool.c). */
#ifndef INFER_POOL_H
#define INFER_POOL_H

#include <sched.h>

#include "util.h"

#define POOL_MAX_THREADS 256
#define POOL_STACK_BYTES ((size_t)2 << 20) /* each worker's stack (see INFER_MIN_CALLER_STACK) */

typedef struct pool pool;

/* Where a pool's threads run and how long its workers wait busily, as
 * llama.cpp's -C / --cpu-strict / --poll (infer_context_params has the
 * same three). cpu_mask: INFER_CPU_MASK_WORDS words, bit i of word w = CPU
 * 64 * w + i; NULL or all zero: no change to the threads' affinity. */
typedef struct {
    const uint64_t *cpu_mask;
    int strict; /* 1: thread k on the k-th CPU of the mask alone (round robin); 0: each on any of them */
    int poll;   /* 0..100: an idle worker's spin before it sleeps, 50 ~0.5 ms; 0: sleeps at once */
} pool_opts;
#define POOL_POLL_DEFAULT 50

/* The CPUs thread k of a pool with opts may run on, into *set; 0 when
 * opts names none (no affinity set). */
int pool_thread_cpus(const pool_opts *opts, int k, cpu_set_t *set);
/* CPUs named by the mask (INFER_CPU_MASK_WORDS words). */
int pool_mask_count(const uint64_t *cpu_mask);
/* Part ith of a job's nth, run by thread self (0 to pool_size - 1). A
 * part is run by exactly one thread, but not always the one with its
 * index: a thread that has done its own takes the parts no one has begun.
 * Split work by ith; key per-thread state (pool_read_ahead) by self. */
typedef void (*pool_fn)(void *arg, int ith, int nth, int self);

/* n_threads - 1 workers are started now; the caller is thread 0. opts
 * NULL: no affinity, poll 50. With a mask, each worker is started on its
 * CPUs, and INFER_EINVAL tells which thread the system will not run there
 * (CPUs offline, absent or outside the cpuset); the caller takes
 * thread 0's CPUs only between pool_pin_caller and pool_unpin_caller. */
infer_status pool_new(int n_threads, const pool_opts *opts, pool **out, infer_error *err);
/* The calling thread moves to thread 0's CPUs until pool_unpin_caller,
 * which gives it back the affinity it had; a no-op for a pool without a
 * mask. The saved affinity is the pool's: one caller at a time (a
 * context's rule). A failure leaves the thread where it was. */
void pool_pin_caller(pool *p);
void pool_unpin_caller(pool *p);
void pool_free(pool *p); /* NULL is fine */
int pool_size(const pool *p);
/* Jobs from now on run in nth parts (clamped to 1 .. pool_size), taken by
 * threads 0 .. nth - 1 only; the others stay idle. The caller's thread,
 * between jobs (llama.cpp's -t for one token and -tb for batches on one
 * pool). pool_parts: the current count (1 for a NULL pool). */
void pool_set_active(pool *p, int nth);
int pool_parts(const pool *p);
/* fn(arg, ith, nth, self) for every part ith of nth = pool_parts; returns
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
