/*
 * threadpool.h - the compute thread pool the kernels split their work over.
 *
 * A pool of n threads runs one job at a time: threadpool_run(p, fn, ctx,
 * n_chunks) calls fn(ctx, c) once for every chunk c < n_chunks, on whichever
 * thread (the caller included) claims it first, and returns when all have
 * returned.  A job carries no allocation, and a chunk's work must not depend
 * on the thread that runs it, so results never depend on the pool.  Workers spin briefly after a
 * job (decode steps come back to back) and then sleep on a condition variable.
 *
 * Thread-safety: threadpool_run must not be called from two threads at once
 * on the same pool (the model's scheduler thread is its only caller).  The
 * pool owns its threads; threadpool_free() joins them.
 */
#ifndef ENGINE_THREADPOOL_H
#define ENGINE_THREADPOOL_H

#include <stddef.h>

#include "status.h"

#define THREADPOOL_MAX_THREADS 256

struct threadpool;

typedef void (*threadpool_fn)(void *ctx, int chunk);

/* Physical cores available to this process (at least 1): distinct
 * (package, core) pairs among the CPUs of its affinity mask. */
int threadpool_physical_cores(void);

/*
 * Creates a pool of n_threads threads counting the caller (0 =
 * threadpool_physical_cores(); at most THREADPOOL_MAX_THREADS).  Returns
 * ST_OK and *out, ST_ERR_RANGE for a negative or too large count,
 * ST_ERR_NOMEM / ST_ERR_IO when memory or threads cannot be had.
 */
enum status threadpool_create(int n_threads, struct threadpool **out, char *err, size_t errlen);

/* Joins the workers and frees the pool; NULL is a no-op. */
void threadpool_free(struct threadpool *p);

/* Threads of the pool, the caller included (1 for NULL). */
int threadpool_size(const struct threadpool *p);

/* Chunks to cut `units` units of work into for p: two per thread, so a
 * slow thread's share can be taken over, at most `units`, at least 1.  Not
 * more: every chunk starts a new memory stream, and with 4 or 8 per thread
 * a decode step of the 110M shape took 10-20 % longer (its matmuls are
 * tens of microseconds). */
int threadpool_chunks(const struct threadpool *p, size_t units);

/* Runs fn(ctx, c) for every c < n_chunks over the pool and waits for all.
 * p may be NULL: every chunk on the caller, in order. */
void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx, int n_chunks);

/* [*lo, *hi) = part ith of nth of [0, n) in whole multiples of `align`
 * (the last part takes the remainder): the range of chunk ith. */
void threadpool_split(size_t n, size_t align, int ith, int nth, size_t *lo, size_t *hi);

#endif
