/*
 * threadpool.c - a fork-join pool: a generation counter announces a job,
 * a pending counter reports its end.
 *
 * Workers spin on the generation for a short while (a decode step issues a
 * job every few microseconds, and waking a sleeping thread costs tens of
 * them), then sleep on the condition variable.  A job is published with a
 * sequentially consistent store of the generation followed by a read of the
 * sleeper count, and a worker goes to sleep by raising that count under the
 * mutex before re-reading the generation: one of the two always sees the
 * other, so no wake-up is lost.
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* pause iterations before a worker sleeps: some tens of microseconds */
#define SPIN_ROUNDS 20000

struct worker {
    struct threadpool *pool;
    int index;
    pthread_t thread;
};

struct threadpool {
    int n;
    struct worker *workers; /* (n - 1) */
    int started;
    atomic_uint gen;     /* bumped once per job */
    atomic_int pending;  /* workers still running the current job */
    atomic_int sleepers; /* workers waiting on cond */
    atomic_bool stop;
    threadpool_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cond;
};

int threadpool_physical_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (int)n : 1;
    }
    /* (package << 16 | core) of every CPU we may run on, counted once */
    int ids[CPU_SETSIZE], n_ids = 0, n_cpus = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        n_cpus++;
        int pkg = 0, core = cpu;
        char path[128];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &core) != 1)
                core = cpu;
            fclose(f);
        }
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                 cpu);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &pkg) != 1)
                pkg = 0;
            fclose(f);
        }
        int id = pkg << 16 | (core & 0xffff), seen = 0;
        for (int i = 0; i < n_ids && !seen; i++)
            seen = ids[i] == id;
        if (!seen)
            ids[n_ids++] = id;
    }
    if (n_ids < 1)
        n_ids = n_cpus > 0 ? n_cpus : 1;
    return n_ids;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct threadpool *p = w->pool;
    unsigned seen = 0; /* the generation before the first job */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop) &&
               spins++ < SPIN_ROUNDS)
            cpu_relax();
        if (g == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cond, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        p->fn(p->ctx, w->index, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

enum status threadpool_create(int n_threads, struct threadpool **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n_threads < 0 || n_threads > THREADPOOL_MAX_THREADS)
        return status_fail(err, errlen, ST_ERR_RANGE, "threads must be 0..%d, not %d",
                           THREADPOOL_MAX_THREADS, n_threads);
    if (n_threads == 0)
        n_threads = threadpool_physical_cores();
    if (n_threads > THREADPOOL_MAX_THREADS)
        n_threads = THREADPOOL_MAX_THREADS;
    struct threadpool *p = calloc(1, sizeof(*p));
    if (!p)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof(*p->workers));
        if (!p->workers) {
            threadpool_free(p);
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker *w = &p->workers[i - 1];
        w->pool = p;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            threadpool_free(p);
            return status_fail(err, errlen, ST_ERR_IO, "cannot start compute thread %d", i);
        }
        p->started++;
    }
    *out = p;
    return ST_OK;
}

void threadpool_free(struct threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    free(p->workers);
    free(p);
}

int threadpool_size(const struct threadpool *p)
{
    return p ? p->n : 1;
}

void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    /* a worker descheduled by a busy machine can take a while: yield then */
    for (long spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}

void threadpool_split(size_t n, size_t align, int ith, int nth, size_t *lo, size_t *hi)
{
    size_t units = (n + align - 1) / align;
    size_t per = units / (size_t)nth, extra = units % (size_t)nth;
    size_t u0 = (size_t)ith * per + ((size_t)ith < extra ? (size_t)ith : extra);
    size_t u1 = u0 + per + ((size_t)ith < extra ? 1 : 0);
    *lo = u0 * align < n ? u0 * align : n;
    *hi = u1 * align < n ? u1 * align : n;
}
