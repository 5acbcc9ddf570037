/*
 * threadpool.c - a fork-join pool: a generation counter announces a job,
 * a pending counter reports its end.
 *
 * A job is n chunks handed out through one atomic counter, to the caller as
 * well as the workers, so a worker the OS has not scheduled yet (a busy
 * machine) holds nothing up: the others take its share, and the caller
 * waits only for chunks actually running.  The counter carries the job's
 * generation in its high half, so a worker waking late cannot claim a chunk
 * of a later job under the earlier one's function.
 *
 * Workers spin on the generation for SPIN_NS (a forward pass issues a job
 * every few microseconds, and waking a sleeping thread costs tens of them),
 * then sleep on the condition variable.  A job is published with a
 * sequentially consistent store of the generation followed by a read of the
 * sleeper count, and a worker goes to sleep by raising that count under the
 * mutex before re-reading the generation: one of the two always sees the
 * other, so no wake-up is lost.
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* how long an idle worker spins before it sleeps: longer than the gaps
 * between the jobs of one forward pass (microseconds), shorter than the
 * gap between two passes, in which sampling and the HTTP threads that
 * deliver tokens need the cores (on a 2-core machine a spinning worker
 * would take one from them) */
#define SPIN_NS 50000
/* pause iterations between two looks at the clock */
#define SPIN_CHECK 64
/* pause iterations the caller waits for running chunks before yielding */
#define SPIN_ROUNDS 20000

struct threadpool {
    int n;
    pthread_t *threads; /* (n - 1) */
    int started;
    atomic_uint gen;       /* bumped once per job */
    _Atomic uint64_t next; /* gen << 32 | next chunk to hand out */
    /* chunks of the job, by gen parity; atomic because a worker late by two
     * jobs reads the slot being rewritten (its claim then fails on gen) */
    atomic_uint n_chunks_of[2];
    atomic_uint done;    /* chunks of the current job finished */
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

/*
 * Claims the next chunk of job `gen`: fails once the job's chunks are all
 * handed out or a later job has replaced it.  A successful claim also means
 * the job is still running (its chunk is not done), so fn and ctx are that
 * job's.
 */
static bool claim(struct threadpool *p, unsigned gen, unsigned *chunk)
{
    uint64_t cur = atomic_load(&p->next);
    for (;;) {
        if ((unsigned)(cur >> 32) != gen ||
            (unsigned)cur >= atomic_load_explicit(&p->n_chunks_of[gen & 1], memory_order_relaxed))
            return false;
        if (atomic_compare_exchange_weak(&p->next, &cur, cur + 1)) {
            *chunk = (unsigned)cur;
            return true;
        }
    }
}

static void work(struct threadpool *p, unsigned gen)
{
    unsigned c;
    while (claim(p, gen, &c)) {
        p->fn(p->ctx, (int)c);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *worker_main(void *arg)
{
    struct threadpool *p = arg;
    unsigned seen = 0; /* the generation before the first job */
    for (;;) {
        unsigned g;
        uint64_t until = now_ns() + SPIN_NS;
        for (unsigned spins = 1; (g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop);
             spins++) {
            if (spins % SPIN_CHECK == 0 && now_ns() >= until)
                break;
            cpu_relax();
        }
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
        work(p, g);
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
        p->threads = calloc((size_t)n_threads - 1, sizeof(*p->threads));
        if (!p->threads) {
            threadpool_free(p);
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, p) != 0) {
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
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}

int threadpool_size(const struct threadpool *p)
{
    return p ? p->n : 1;
}

int threadpool_chunks(const struct threadpool *p, size_t units)
{
    size_t want = p && p->n > 1 ? 2 * (size_t)p->n : 1;
    want = want < units ? want : units;
    return want > 0 ? (int)want : 1;
}

void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx, int n_chunks)
{
    if (n_chunks <= 0)
        return;
    if (!p || p->n == 1 || n_chunks == 1) {
        for (int c = 0; c < n_chunks; c++)
            fn(ctx, c);
        return;
    }
    unsigned gen = atomic_load(&p->gen) + 1;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->n_chunks_of[gen & 1], (unsigned)n_chunks, memory_order_relaxed);
    atomic_store(&p->done, 0);
    atomic_store(&p->next, (uint64_t)gen << 32);
    atomic_store(&p->gen, gen);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, gen);
    /* only chunks a worker claimed and is still running are waited for */
    for (long spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < (unsigned)n_chunks;
         spins++) {
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
