/*
 * pool: a fixed set of worker threads for data-parallel loops. pool_for(p, n, fn, ctx) calls fn(ctx, i)
 * for every i in [0, n) across the workers and the calling thread, and returns when all are done.
 * Workers spin briefly between loops (decode issues hundreds of small loops per token) and then sleep.
 *
 * Not for: anything that blocks (I/O, locks held across calls). One caller at a time.
 */
#ifndef ORCD_POOL_H
#define ORCD_POOL_H

typedef struct Pool Pool;

/* n_threads >= 1 threads in all, the caller included. NULL on failure. */
Pool *pool_create(int n_threads);
void pool_free(Pool *p);
int pool_threads(const Pool *p);

/* fn(ctx, i, thread) for i in [0, n); thread is 0..n_threads-1, stable within one call (for per-thread
 * scratch). Items are handed out in order from a shared counter. */
void pool_for(Pool *p, int n, void (*fn)(void *ctx, int i, int thread), void *ctx);

#endif
