/*
 * pool.c - the model pool: entries per loaded model, single-flight loading,
 * the memory budget and eviction, request slots and queues, and the
 * housekeeping thread (idle unloading, CPU sampling, shutdown wake-ups).
 *
 * One mutex guards every entry; each entry has a condition variable for its
 * state changes and freed slots.  Requests waiting for a slot form a FIFO
 * queue (nodes on the waiters' stacks): only the oldest waiter may take a
 * freed slot, so slots go out strictly in arrival order.  Loading and unloading run with the mutex
 * released, by the thread that asked for them, with the entry marked
 * LOADING or UNLOADING so nobody else touches the engine model meanwhile.
 * An entry is freed when it is out of the list and no thread holds a
 * reference to it (waiters, leases, loaders).
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "db.h"
#include "engine.h"
#include "infer.h"
#include "kv_cache.h"
#include "log.h"
#include "model_registry.h"
#include "profile.h"
#include "settings.h"
#include "sysinfo.h"

/* Requests by plain model name (not a profile) get these limits. */
#define POOL_DEFAULT_QUEUE_SIZE 100
#define POOL_DEFAULT_QUEUE_TIMEOUT 300
#define POOL_DEFAULT_MAX_SEQS 16
/* Most sequences one engine model runs at once; more requests wait. */
#define POOL_MAX_SEQS 64
#define POOL_BATCH_TOKENS 512
/* The KV pool of a model never takes more than this share of the budget
 * (unless its minimum needs it), so several models can share memory. */
#define POOL_KV_BUDGET_SHARE 4
#define POOL_KV_CAP_BYTES ((size_t)2 << 30)
/* KV is sized for every sequence holding this many tokens (or the whole
 * context when shorter); longer requests still run while others are short. */
#define POOL_KV_SEQ_TOKENS 8192
/* The smallest KV pool worth loading: one request of this many tokens. */
#define POOL_KV_MIN_TOKENS 2048
#define POOL_TOO_MANY_RETRY 5

enum pool_state {
    POOL_LOADING,
    POOL_READY,
    POOL_UNLOADING,
    POOL_GONE, /* out of the list; freed with its last reference */
};

static const char *const pool_state_names[] = {"loading", "ready", "unloading", "unloaded"};

struct pool_entry {
    struct pool_entry *next;
    char key[4200];    /* "profile:NAME" or the model directory */
    char name[512];    /* the profile name, or the name it was first asked by */
    char profile[512]; /* profile name, "" when none */
    char dir[4096];
    enum pool_state state;
    struct engine_model *model; /* READY and UNLOADING */
    size_t bytes;               /* reserved while loading, the engine's total once loaded */
    int refs;                   /* threads holding this pointer */
    int active, waiting;        /* leases holding slots, requests queued */
    int max_concurrency, queue_size, queue_timeout, context_length;
    int pinned;
    int keep_alive;
    double last_used, loaded_at; /* monotonic seconds */
    time_t loaded_wall;
    unsigned long long served, prompt_tokens, completion_tokens;
    double tps;             /* moving average of decode tokens/s */
    struct pool_error fail; /* why the load failed (POOL_GONE after LOADING) */
    int failed;
    struct pool_waiter *queue_head, *queue_tail; /* waiting requests, oldest first */
    pthread_cond_t cond;
};

/* A request waiting for a slot; lives on the waiting thread's stack. */
struct pool_waiter {
    struct pool_waiter *next;
};

struct pool_lease {
    struct pool *pool;
    struct pool_entry *entry;
    char *name;
    cJSON *profile;
};

struct pool {
    struct app *app;
    pthread_mutex_t mu;
    struct pool_entry *entries;
    unsigned long long memory_total;            /* 0 = MemTotal */
    int limit_percent, max_loaded, idle_unload; /* effective settings, last read */
    int stopping;
    double cpu_percent, cpu_last_wall, cpu_last_cpu;
    pthread_t thread;
    pthread_cond_t tick;
    int thread_started;
};

/* ---- helpers ---------------------------------------------------------- */

static double pool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double pool_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int pool_fail(struct pool_error *err, int status, const char *code, int retry_after,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int pool_fail(struct pool_error *err, int status, const char *code, int retry_after,
                     const char *fmt, ...)
{
    err->http_status = status;
    err->retry_after = retry_after;
    snprintf(err->code, sizeof(err->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

static double pool_mib(size_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

/* Absolute deadline `seconds` from now on the clock the conds use. */
static struct timespec pool_deadline(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + seconds;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    return ts;
}

static void pool_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

static int pool_shutting_down(const struct pool *p)
{
    /* app->stopping is set by the signal thread without the pool's lock. */
    return p->stopping || app_stopping(p->app);
}

static unsigned long long pool_budget_locked(const struct pool *p)
{
    unsigned long long total = p->memory_total;
    if (!total) {
        struct sysinfo_memory mem;
        total = sysinfo_memory_read(&mem) == 0 ? mem.total_bytes : 0;
    }
    return total / 100 * (unsigned long long)p->limit_percent;
}

/* Reads the effective settings the pool obeys (caller holds no lock). */
static void pool_read_settings(struct pool *p, struct db *db)
{
    const struct config *cfg = &p->app->config;
    int pct = (int)settings_get_int(db, cfg, "memory_limit_percent");
    int max_loaded = (int)settings_get_int(db, cfg, "max_loaded_models");
    int idle = (int)settings_get_int(db, cfg, "idle_unload_seconds");
    pthread_mutex_lock(&p->mu);
    p->limit_percent = pct > 0 ? pct : cfg->memory_limit_percent;
    p->max_loaded = max_loaded > 0 ? max_loaded : cfg->max_loaded_models;
    p->idle_unload = idle >= 0 ? idle : cfg->idle_unload_seconds;
    pthread_mutex_unlock(&p->mu);
}

/* ---- entries ---------------------------------------------------------- */

static void pool_entry_free(struct pool_entry *e)
{
    pthread_cond_destroy(&e->cond);
    free(e);
}

static void pool_unlink(struct pool *p, struct pool_entry *e)
{
    for (struct pool_entry **pp = &p->entries; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    e->next = NULL;
    e->state = POOL_GONE;
    pthread_cond_broadcast(&e->cond);
}

/* Drops one reference; frees an entry that is out of the list. */
static void pool_unref(struct pool_entry *e)
{
    if (--e->refs == 0 && e->state == POOL_GONE)
        pool_entry_free(e);
}

static struct pool_entry *pool_find_key(struct pool *p, const char *key)
{
    for (struct pool_entry *e = p->entries; e; e = e->next)
        if (!strcmp(e->key, key))
            return e;
    return NULL;
}

/*
 * Unloads a READY entry: frees the engine model with the lock released and
 * takes the entry out of the list.  Called with the lock held and no slot
 * in use; returns with it held.  `e` may be freed on return.
 */
static void pool_unload_locked(struct pool *p, struct pool_entry *e, const char *why)
{
    e->state = POOL_UNLOADING;
    pthread_cond_broadcast(&e->cond);
    e->refs++;
    struct engine_model *m = e->model;
    pthread_mutex_unlock(&p->mu);
    log_msg(LOG_LEVEL_INFO, "unloading model %s (%s)", e->name, why);
    engine_model_free(m);
    pthread_mutex_lock(&p->mu);
    e->model = NULL;
    e->bytes = 0;
    pool_unlink(p, e);
    pool_unref(e);
}

static int pool_evictable(const struct pool_entry *e)
{
    return e->state == POOL_READY && !e->pinned && e->refs == 0 && e->active == 0 &&
           e->waiting == 0;
}

static struct pool_entry *pool_lru_victim(struct pool *p)
{
    struct pool_entry *best = NULL;
    for (struct pool_entry *e = p->entries; e; e = e->next)
        if (pool_evictable(e) && (!best || e->last_used < best->last_used))
            best = e;
    return best;
}

/* Names of the models that hold memory and cannot be evicted now. */
static void pool_blockers(struct pool *p, const struct pool_entry *self, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (struct pool_entry *e = p->entries; e && n + 1 < len; e = e->next) {
        if (e == self || pool_evictable(e))
            continue;
        int w = snprintf(out + n, len - n, "%s%s (%s)", n ? ", " : "", e->name,
                         e->pinned                ? "pinned"
                         : e->state == POOL_READY ? "busy"
                                                  : pool_state_names[e->state]);
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
}

/* ---- memory estimates ------------------------------------------------- */

/* Forward-pass scratch and scheduler buffers before loading, following
 * what the engine allocates for max_batch_tokens tokens per step. */
static size_t pool_scratch_estimate(const struct model_config *c, int max_seqs, int T)
{
    size_t t = (size_t)T, h = (size_t)c->hidden, f = (size_t)c->ffn;
    size_t qd = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t kd = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t wide = f > h ? f : h;
    wide = wide > qd ? wide : qd;
    size_t floats =
        t * (3 * h + (h > qd ? h : qd) + 2 * qd + 2 * kd + 2 * f + (size_t)c->head_dim + wide) +
        (size_t)c->max_position_embeddings + (size_t)max_seqs * (size_t)c->vocab;
    return floats * sizeof(float) + t * 2 * sizeof(int);
}

/* What loading a model takes: fixed bytes (weights + scratch), the KV pool
 * wanted, and the smallest KV pool that still serves one request. */
struct pool_plan {
    int max_seqs, context_length;
    size_t fixed, kv_want, kv_min, kv;
};

static void pool_plan_make(const struct registry_model *rm, int max_seqs, int context_length,
                           enum engine_kv_dtype kv_choice, unsigned long long budget,
                           struct pool_plan *pl)
{
    const struct model_config *c = &rm->cfg;
    pl->max_seqs = max_seqs;
    pl->context_length = context_length;
    pl->fixed = rm->weight_bytes + pool_scratch_estimate(c, max_seqs, POOL_BATCH_TOKENS);
    size_t tok = kv_cache_block_bytes(c, 1, engine_kv_dtype_of(c->quantized, kv_choice));
    size_t min_tokens =
        (size_t)(context_length < POOL_KV_MIN_TOKENS ? context_length : POOL_KV_MIN_TOKENS);
    min_tokens = (min_tokens + KV_BLOCK_TOKENS_DEFAULT - 1) / KV_BLOCK_TOKENS_DEFAULT *
                 KV_BLOCK_TOKENS_DEFAULT;
    pl->kv_min = min_tokens * tok;
    size_t per_seq =
        (size_t)(context_length < POOL_KV_SEQ_TOKENS ? context_length : POOL_KV_SEQ_TOKENS);
    size_t want = (size_t)max_seqs * per_seq * tok;
    size_t share = (size_t)(budget / POOL_KV_BUDGET_SHARE);
    if (want > POOL_KV_CAP_BYTES)
        want = POOL_KV_CAP_BYTES;
    if (want > share)
        want = share;
    pl->kv_want = want > pl->kv_min ? want : pl->kv_min;
}

/*
 * Makes room for `self` (LOADING, not yet counted): enforces
 * max_loaded_models and the budget, evicting LRU idle unpinned models, and
 * picks the KV size.  Lock held.  Returns 0 (pl->kv set, self->bytes
 * reserved) or -1 with err.
 */
static int pool_admit_locked(struct pool *p, struct pool_entry *self, struct pool_plan *pl,
                             struct pool_error *err)
{
    for (;;) {
        if (pool_shutting_down(p))
            return pool_fail(err, 503, "shutting_down", 0, "The server is shutting down");
        unsigned long long budget = pool_budget_locked(p);
        size_t used = 0, pinned_or_busy = 0;
        int count = 0;
        struct pool_entry *unloading = NULL;
        for (struct pool_entry *e = p->entries; e; e = e->next) {
            if (e == self)
                continue;
            count++;
            used += e->bytes;
            if (e->state == POOL_UNLOADING)
                unloading = e;
            else if (!pool_evictable(e))
                pinned_or_busy += e->bytes;
        }
        /* Refuse what cannot fit even after every possible eviction, before
         * evicting anything. */
        if (pl->fixed + pl->kv_min + pinned_or_busy > budget) {
            char who[1024];
            pool_blockers(p, self, who, sizeof(who));
            if (pl->fixed + pl->kv_min > budget)
                return pool_fail(err, 507, "insufficient_memory", 0,
                                 "The model '%s' needs at least %.1f MiB (weights, scratch and "
                                 "KV for %d tokens) but the memory budget is %.1f MiB "
                                 "(memory_limit_percent %d%%)",
                                 self->name, pool_mib(pl->fixed + pl->kv_min),
                                 pl->context_length < POOL_KV_MIN_TOKENS ? pl->context_length
                                                                         : POOL_KV_MIN_TOKENS,
                                 pool_mib((size_t)budget), p->limit_percent);
            return pool_fail(err, 507, "insufficient_memory", 0,
                             "The model '%s' needs at least %.1f MiB but only %.1f MiB of the "
                             "%.1f MiB budget can be freed; in use: %s",
                             self->name, pool_mib(pl->fixed + pl->kv_min),
                             pool_mib((size_t)budget - pinned_or_busy), pool_mib((size_t)budget),
                             who);
        }
        int over_count = count >= p->max_loaded;
        int over_mem = used + pl->fixed + pl->kv_want > budget;
        if (!over_count && !over_mem) {
            pl->kv = pl->kv_want;
            break;
        }
        struct pool_entry *victim = pool_lru_victim(p);
        if (victim) {
            pool_unload_locked(p, victim,
                               over_count ? "max_loaded_models reached"
                                          : "memory needed for another model");
            continue;
        }
        if (unloading) {
            unloading->refs++;
            while (unloading->state != POOL_GONE)
                pthread_cond_wait(&unloading->cond, &p->mu);
            pool_unref(unloading);
            continue;
        }
        if (over_count) {
            char who[1024];
            pool_blockers(p, self, who, sizeof(who));
            return pool_fail(err, 503, "too_many_models", POOL_TOO_MANY_RETRY,
                             "max_loaded_models (%d) models are loaded and none can be "
                             "unloaded now to make room for '%s': %s",
                             p->max_loaded, self->name, who);
        }
        /* Nothing left to evict: a smaller KV pool still fits. */
        pl->kv = (size_t)budget - used - pl->fixed;
        break;
    }
    self->bytes = pl->fixed + pl->kv;
    return 0;
}

static int pool_load_error(enum status st, const char *name, const char *msg,
                           struct pool_error *err)
{
    switch (st) {
    case ST_ERR_NOMEM:
        return pool_fail(err, 507, "insufficient_memory", 0, "Cannot load '%s': %s", name, msg);
    case ST_ERR_IO:
        return pool_fail(err, 500, "model_load_failed", 0, "Cannot load '%s': %s", name, msg);
    default: return pool_fail(err, 422, "unsupported_model", 0, "Cannot load '%s': %s", name, msg);
    }
}

/* ---- getting a loaded entry ------------------------------------------- */

static void pool_apply_profile(struct pool_entry *e, const cJSON *profile)
{
    const cJSON *v;
    if (!profile)
        return;
    v = cJSON_GetObjectItemCaseSensitive(profile, "max_concurrency");
    if (cJSON_IsNumber(v) && v->valuedouble >= 1)
        e->max_concurrency = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(profile, "queue_size");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0)
        e->queue_size = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(profile, "queue_timeout");
    if (cJSON_IsNumber(v) && v->valuedouble >= 1)
        e->queue_timeout = (int)v->valuedouble;
    /* null keeps what admin load set (or the setting); -1 is "forever". */
    v = cJSON_GetObjectItemCaseSensitive(profile, "keep_alive");
    if (cJSON_IsNumber(v) && v->valuedouble >= POOL_KEEP_ALIVE_FOREVER)
        e->keep_alive = (int)v->valuedouble;
}

static int pool_profile_context(const struct registry_model *rm)
{
    int n_ctx = rm->cfg.max_position_embeddings;
    const cJSON *v =
        rm->profile ? cJSON_GetObjectItemCaseSensitive(rm->profile, "context_length") : NULL;
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < n_ctx)
        return (int)v->valuedouble;
    return n_ctx;
}

/* Loads a new entry (LOADING, one reference: ours).  Lock held on entry and
 * return.  Returns 0 with the entry READY, or -1 (entry gone) with err. */
static int pool_load_entry(struct pool *p, struct pool_entry *e, const struct registry_model *rm,
                           struct pool_error *err)
{
    int max_seqs = POOL_DEFAULT_MAX_SEQS;
    if (rm->profile)
        max_seqs = e->max_concurrency < POOL_MAX_SEQS ? e->max_concurrency : POOL_MAX_SEQS;
    struct pool_plan pl = {0};
    enum engine_kv_dtype kv_choice = p->app->config.kv_cache_dtype;
    pool_plan_make(rm, max_seqs, pool_profile_context(rm), kv_choice, pool_budget_locked(p), &pl);
    int rc = pool_admit_locked(p, e, &pl, err);
    if (rc == 0) {
        struct engine_load_opts o = {
            .kv_bytes = pl.kv,
            .max_seqs = max_seqs,
            .max_batch_tokens = POOL_BATCH_TOKENS > max_seqs ? POOL_BATCH_TOKENS : max_seqs,
            .threads = p->app->config.threads,
            .kv_dtype = kv_choice,
        };
        pthread_mutex_unlock(&p->mu);
        log_msg(LOG_LEVEL_INFO, "loading model %s from %s (KV %.1f MiB, %d sequences)", e->name,
                e->dir, pool_mib(pl.kv), max_seqs);
        struct engine_model *m = NULL;
        char msg[1024];
        enum status st = engine_model_load(e->dir, &o, &m, msg, sizeof(msg));
        if (st != ST_OK)
            log_msg(LOG_LEVEL_WARN, "loading model %s failed: %s", e->name, msg);
        pthread_mutex_lock(&p->mu);
        if (st == ST_OK) {
            const struct engine_model_info *info = engine_model_info(m);
            e->model = m;
            e->bytes = info->total_bytes;
            e->context_length = pl.context_length;
            if (!rm->profile)
                e->max_concurrency = info->max_seqs;
            e->state = POOL_READY;
            e->loaded_at = e->last_used = pool_now();
            e->loaded_wall = time(NULL);
            pthread_cond_broadcast(&e->cond);
            return 0;
        }
        rc = pool_load_error(st, e->name, msg, err);
    }
    e->fail = *err;
    e->failed = 1;
    pool_unlink(p, e);
    return rc;
}

/*
 * Resolves `name` and returns its READY entry with one reference held (lock
 * held on return when 0).  *rm is filled (caller clears it).
 */
static int pool_get(struct pool *p, struct db *db, const char *name, struct registry_model *rm,
                    struct pool_entry **out, struct pool_error *err)
{
    memset(rm, 0, sizeof(*rm)); /* callers clear it on every path */
    if (pool_shutting_down(p))
        return pool_fail(err, 503, "shutting_down", 0, "The server is shutting down");
    pool_read_settings(p, db);
    struct registry_error re;
    if (registry_resolve(db, &p->app->config, name, rm, &re))
        return pool_fail(err, re.http_status, re.code, 0, "%s", re.message);
    char key[sizeof(((struct pool_entry *)0)->key)];
    if (rm->profile)
        snprintf(key, sizeof(key), "profile:%s", rm->name);
    else
        snprintf(key, sizeof(key), "%s", rm->dir);

    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (pool_shutting_down(p)) {
            pthread_mutex_unlock(&p->mu);
            return pool_fail(err, 503, "shutting_down", 0, "The server is shutting down");
        }
        struct pool_entry *e = pool_find_key(p, key);
        if (!e) {
            e = calloc(1, sizeof(*e));
            if (!e) {
                pthread_mutex_unlock(&p->mu);
                return pool_fail(err, 500, "internal_error", 0, "out of memory");
            }
            snprintf(e->key, sizeof(e->key), "%s", key);
            snprintf(e->name, sizeof(e->name), "%s", rm->name);
            snprintf(e->dir, sizeof(e->dir), "%s", rm->dir);
            if (rm->profile)
                snprintf(e->profile, sizeof(e->profile), "%s", rm->name);
            e->state = POOL_LOADING;
            e->refs = 1;
            e->max_concurrency = POOL_DEFAULT_MAX_SEQS;
            e->queue_size = POOL_DEFAULT_QUEUE_SIZE;
            e->queue_timeout = POOL_DEFAULT_QUEUE_TIMEOUT;
            pool_apply_profile(e, rm->profile);
            pool_cond_init(&e->cond);
            e->next = p->entries;
            p->entries = e;
            if (pool_load_entry(p, e, rm, err)) {
                pool_unref(e);
                pthread_mutex_unlock(&p->mu);
                return -1;
            }
            *out = e;
            return 0;
        }
        e->refs++;
        while (e->state == POOL_LOADING || e->state == POOL_UNLOADING) {
            if (pool_shutting_down(p))
                break;
            pthread_cond_wait(&e->cond, &p->mu);
        }
        if (e->state == POOL_READY && strcmp(e->dir, rm->dir) && e->refs == 1 && !e->active &&
            !e->waiting) {
            /* The profile now names another model: switch once it is idle. */
            e->refs--;
            pool_unload_locked(p, e, "the profile's model_path changed");
            continue;
        }
        if (e->state == POOL_READY) {
            pool_apply_profile(e, rm->profile);
            *out = e;
            return 0;
        }
        if (e->failed) {
            *err = e->fail;
            pool_unref(e);
            pthread_mutex_unlock(&p->mu);
            return -1;
        }
        /* Unloaded while we waited (or shutting down): look again. */
        pool_unref(e);
    }
}

/* ---- requests --------------------------------------------------------- */

/* Under p->mu: appends w to e's waiting queue. */
static void queue_push(struct pool_entry *e, struct pool_waiter *w)
{
    w->next = NULL;
    if (e->queue_tail)
        e->queue_tail->next = w;
    else
        e->queue_head = w;
    e->queue_tail = w;
}

/* Under p->mu: takes w out of e's waiting queue, wherever it is (it may
 * leave from the middle on a timeout or an unload). */
static void queue_remove(struct pool_entry *e, struct pool_waiter *w)
{
    struct pool_waiter *prev = NULL;
    for (struct pool_waiter *q = e->queue_head; q; prev = q, q = q->next) {
        if (q != w)
            continue;
        if (prev)
            prev->next = w->next;
        else
            e->queue_head = w->next;
        if (e->queue_tail == w)
            e->queue_tail = prev;
        return;
    }
}

int pool_acquire(struct pool *p, struct db *db, const char *name, struct pool_lease **out,
                 struct pool_error *err)
{
    *out = NULL;
    struct pool_lease *l = calloc(1, sizeof(*l));
    char *name_copy = strdup(name);
    if (!l || !name_copy) {
        free(l);
        free(name_copy);
        return pool_fail(err, 500, "internal_error", 0, "out of memory");
    }
    struct registry_model rm;
    struct pool_entry *e;
    if (pool_get(p, db, name, &rm, &e, err)) {
        registry_model_clear(&rm);
        free(l);
        free(name_copy);
        return -1;
    }
    int rc = 0;
    if (e->active >= e->max_concurrency || e->waiting > 0) {
        if (e->waiting >= e->queue_size) {
            rc = pool_fail(err, 429, "queue_full", 1,
                           "The model '%s' is busy: %d requests running and %d queued (queue_size "
                           "%d); retry later",
                           name, e->active, e->waiting, e->queue_size);
        } else {
            struct timespec deadline = pool_deadline(e->queue_timeout);
            struct pool_waiter me = {0};
            queue_push(e, &me);
            e->waiting++;
            for (;;) {
                if (e->state != POOL_READY) {
                    rc = pool_fail(err, 503, "model_unloaded", 1,
                                   "The model '%s' was unloaded while this request waited", name);
                    break;
                }
                if (pool_shutting_down(p)) {
                    rc = pool_fail(err, 503, "shutting_down", 0, "The server is shutting down");
                    break;
                }
                if (e->queue_head == &me && e->active < e->max_concurrency)
                    break;
                if (pthread_cond_timedwait(&e->cond, &p->mu, &deadline) == ETIMEDOUT &&
                    !(e->queue_head == &me && e->active < e->max_concurrency) &&
                    e->state == POOL_READY) {
                    rc = pool_fail(err, 503, "queue_timeout", 1,
                                   "The request waited %d s (queue_timeout) for the model '%s' "
                                   "and was not started; retry later or raise max_concurrency",
                                   e->queue_timeout, name);
                    break;
                }
            }
            queue_remove(e, &me);
            e->waiting--;
            /* The next waiter may now be first and fit, or the unloader may
             * be waiting. */
            pthread_cond_broadcast(&e->cond);
        }
    }
    if (rc) {
        pool_unref(e);
        pthread_mutex_unlock(&p->mu);
        registry_model_clear(&rm);
        free(l);
        free(name_copy);
        return -1;
    }
    e->active++;
    e->last_used = pool_now();
    pthread_mutex_unlock(&p->mu);
    l->pool = p;
    l->entry = e;
    l->name = name_copy;
    l->profile = rm.profile;
    rm.profile = NULL;
    *out = l;
    return 0;
}

struct engine_model *pool_lease_model(const struct pool_lease *l)
{
    return l->entry->model;
}

const char *pool_lease_name(const struct pool_lease *l)
{
    return l->name;
}

const cJSON *pool_lease_profile(const struct pool_lease *l)
{
    return l->profile;
}

void pool_release(struct pool_lease *l, const struct pool_usage *usage)
{
    if (!l)
        return;
    struct pool *p = l->pool;
    struct pool_entry *e = l->entry;
    pthread_mutex_lock(&p->mu);
    e->active--;
    e->served++;
    e->last_used = pool_now();
    if (usage) {
        e->prompt_tokens +=
            (unsigned long long)(usage->prompt_tokens > 0 ? usage->prompt_tokens : 0);
        e->completion_tokens +=
            (unsigned long long)(usage->completion_tokens > 0 ? usage->completion_tokens : 0);
        if (usage->decode_tps > 0)
            e->tps = e->tps > 0 ? 0.7 * e->tps + 0.3 * usage->decode_tps : usage->decode_tps;
    }
    pthread_cond_broadcast(&e->cond);
    pool_unref(e);
    pthread_mutex_unlock(&p->mu);
    cJSON_Delete(l->profile);
    free(l->name);
    free(l);
}

/* ---- management ------------------------------------------------------- */

static void pool_entry_json(struct pool *p, struct pool_entry *e, double now, int total_active,
                            cJSON *o);
static int pool_total_active(const struct pool *p);

int pool_load(struct pool *p, struct db *db, const char *name, const struct pool_load_opts *opts,
              cJSON **status, struct pool_error *err)
{
    struct registry_model rm;
    struct pool_entry *e;
    int rc = pool_get(p, db, name, &rm, &e, err);
    registry_model_clear(&rm);
    if (rc)
        return -1;
    if (opts && opts->pin >= 0)
        e->pinned = opts->pin;
    if (opts && opts->keep_alive >= POOL_KEEP_ALIVE_FOREVER)
        e->keep_alive = opts->keep_alive;
    e->last_used = pool_now();
    if (status) {
        *status = cJSON_CreateObject();
        if (*status)
            pool_entry_json(p, e, pool_now(), pool_total_active(p), *status);
    }
    pool_unref(e);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* The entry listed under `name`, or the one its resolution names. */
static struct pool_entry *pool_find_name(struct pool *p, struct db *db, const char *name)
{
    pthread_mutex_lock(&p->mu);
    for (struct pool_entry *e = p->entries; e; e = e->next)
        if (!strcmp(e->name, name))
            return e;
    pthread_mutex_unlock(&p->mu);
    struct registry_model rm;
    struct registry_error re;
    char key[sizeof(((struct pool_entry *)0)->key)] = "";
    if (registry_resolve(db, &p->app->config, name, &rm, &re) == 0) {
        if (rm.profile)
            snprintf(key, sizeof(key), "profile:%s", rm.name);
        else
            snprintf(key, sizeof(key), "%s", rm.dir);
        registry_model_clear(&rm);
    }
    pthread_mutex_lock(&p->mu);
    return key[0] ? pool_find_key(p, key) : NULL;
}

int pool_unload(struct pool *p, struct db *db, const char *name, int force, struct pool_error *err)
{
    struct pool_entry *e = pool_find_name(p, db, name);
    int rc = 0;
    if (!e || e->state == POOL_GONE) {
        rc = pool_fail(err, 404, "model_not_loaded", 0,
                       "The model '%s' is not loaded; GET /admin/models/status lists the "
                       "loaded models",
                       name);
    } else if (e->state == POOL_LOADING) {
        rc = pool_fail(err, 409, "model_loading", 1,
                       "The model '%s' is loading; unload it once it is ready", name);
    } else if (e->state == POOL_UNLOADING) {
        e->refs++;
        while (e->state != POOL_GONE)
            pthread_cond_wait(&e->cond, &p->mu);
        pool_unref(e);
    } else if ((e->active || e->waiting || e->refs) && !force) {
        rc = pool_fail(err, 409, "model_busy", 1,
                       "The model '%s' has %d running and %d queued requests; retry when they "
                       "finish or pass \"force\": true",
                       name, e->active, e->waiting);
    } else {
        /* Queued requests see UNLOADING and fail; running ones are
         * cancelled (their clients get an error) and their handlers return
         * the slots.  refs keeps e; UNLOADING keeps anyone else from
         * freeing e->model meanwhile. */
        e->state = POOL_UNLOADING;
        e->refs++;
        pthread_cond_broadcast(&e->cond);
        if (e->active) {
            pthread_mutex_unlock(&p->mu);
            int n = infer_cancel_model(e->model);
            log_msg(LOG_LEVEL_INFO, "unload of %s cancels %d running request%s", e->name, n,
                    n == 1 ? "" : "s");
            pthread_mutex_lock(&p->mu);
        }
        while (e->active || e->waiting)
            pthread_cond_wait(&e->cond, &p->mu);
        e->state = POOL_READY;
        e->refs--;
        pool_unload_locked(p, e, "unload requested");
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void pool_entry_json(struct pool *p, struct pool_entry *e, double now, int total_active,
                            cJSON *o)
{
    cJSON_AddStringToObject(o, "name", e->name);
    if (e->profile[0])
        cJSON_AddStringToObject(o, "profile", e->profile);
    else
        cJSON_AddNullToObject(o, "profile");
    cJSON_AddStringToObject(o, "dir", e->dir);
    cJSON_AddStringToObject(o, "state", pool_state_names[e->state]);
    cJSON_AddBoolToObject(o, "pinned", e->pinned);
    cJSON_AddNumberToObject(
        o, "keep_alive", e->keep_alive == POOL_KEEP_ALIVE_DEFAULT ? p->idle_unload : e->keep_alive);
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    if (e->state == POOL_READY) {
        const struct engine_model_info *info = engine_model_info(e->model);
        struct engine_stats st;
        engine_model_stats(e->model, &st);
        cJSON_AddNumberToObject(mem, "weights_bytes", (double)info->weight_bytes);
        cJSON_AddNumberToObject(mem, "kv_bytes", (double)info->kv_bytes);
        cJSON_AddNumberToObject(mem, "scratch_bytes", (double)info->scratch_bytes);
        cJSON_AddNumberToObject(o, "kv_blocks_free", (double)st.kv_free_blocks);
        cJSON_AddNumberToObject(o, "kv_blocks_total", (double)info->kv_blocks);
        cJSON_AddStringToObject(o, "kv_dtype", info->kv_dtype == DTYPE_F16 ? "f16" : "f32");
        /* The engine's own view: its queue sits behind the pool's leases. */
        cJSON *sch = cJSON_AddObjectToObject(o, "scheduler");
        cJSON_AddNumberToObject(sch, "running", st.n_running);
        cJSON_AddNumberToObject(sch, "waiting", st.n_waiting);
        cJSON_AddNumberToObject(sch, "prefilling", st.n_prefilling);
        cJSON_AddNumberToObject(sch, "kv_blocks_used", (double)st.kv_used_blocks);
        cJSON_AddNumberToObject(sch, "kv_blocks_cached", (double)st.kv_cached_blocks);
        cJSON_AddNumberToObject(sch, "kv_blocks_free", (double)st.kv_free_blocks);
        cJSON_AddNumberToObject(sch, "kv_blocks_shared", (double)st.kv_shared_blocks);
        cJSON_AddNumberToObject(sch, "kv_waste_percent",
                                (double)(long long)(st.kv_waste * 100) / 100.0);
        cJSON_AddNumberToObject(sch, "prefix_hit_ratio",
                                (double)(long long)(st.prefix_hit_ratio * 1000) / 1000.0);
        cJSON_AddNumberToObject(sch, "cached_prompt_tokens", (double)st.cached_tokens);
        cJSON_AddNumberToObject(sch, "preemptions", (double)st.preemptions);
        cJSON_AddNumberToObject(sch, "tokens_per_second",
                                (double)(long long)(st.tokens_per_s * 10) / 10.0);
        cJSON_AddNumberToObject(sch, "steps", (double)st.steps);
        cJSON_AddNumberToObject(o, "context_length", e->context_length);
        cJSON_AddNumberToObject(o, "loaded_at", (double)e->loaded_wall);
        cJSON_AddNumberToObject(o, "uptime_seconds", (double)(long long)(now - e->loaded_at));
        cJSON_AddNumberToObject(o, "idle_seconds",
                                e->active ? 0 : (double)(long long)(now - e->last_used));
    }
    cJSON_AddNumberToObject(mem, "total_bytes", (double)e->bytes);
    cJSON_AddNumberToObject(o, "leases", e->active);
    cJSON_AddNumberToObject(o, "queue_depth", e->waiting);
    cJSON_AddNumberToObject(o, "max_concurrency", e->max_concurrency);
    cJSON_AddNumberToObject(o, "queue_size", e->queue_size);
    cJSON_AddNumberToObject(o, "queue_timeout", e->queue_timeout);
    cJSON_AddNumberToObject(o, "requests_served", (double)e->served);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)e->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)e->completion_tokens);
    cJSON_AddNumberToObject(o, "tokens_per_second", (double)(long long)(e->tps * 10) / 10.0);
    /* The process's CPU shared out by running requests: the kernels run on
     * one thread pool, so that is as close as a per-model figure gets. */
    cJSON_AddNumberToObject(
        o, "cpu_percent",
        total_active ? (double)(long long)(p->cpu_percent * e->active / total_active * 10) / 10.0
                     : 0);
}

static int pool_total_active(const struct pool *p)
{
    int n = 0;
    for (const struct pool_entry *e = p->entries; e; e = e->next)
        n += e->active;
    return n;
}

cJSON *pool_status(struct pool *p, const char *name)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    double now = pool_now();
    pthread_mutex_lock(&p->mu);
    int total_active = pool_total_active(p);
    for (struct pool_entry *e = p->entries; e; e = e->next) {
        if (name && strcmp(e->name, name) && strcmp(e->profile, name))
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            break;
        }
        pool_entry_json(p, e, now, total_active, o);
    }
    pthread_mutex_unlock(&p->mu);
    return arr;
}

void pool_memory(struct pool *p, struct db *db, struct pool_memory *out)
{
    memset(out, 0, sizeof(*out));
    pool_read_settings(p, db);
    struct sysinfo_memory mem = {0};
    sysinfo_memory_read(&mem);
    pthread_mutex_lock(&p->mu);
    out->system_total_bytes = mem.total_bytes;
    out->system_available_bytes = mem.available_bytes;
    out->budget_bytes = pool_budget_locked(p);
    for (struct pool_entry *e = p->entries; e; e = e->next) {
        out->used_bytes += e->bytes;
        out->loaded_models++;
    }
    out->memory_limit_percent = p->limit_percent;
    out->max_loaded_models = p->max_loaded;
    out->cpu_percent = p->cpu_percent;
    pthread_mutex_unlock(&p->mu);
}

void pool_set_memory_total(struct pool *p, unsigned long long bytes)
{
    pthread_mutex_lock(&p->mu);
    p->memory_total = bytes;
    pthread_mutex_unlock(&p->mu);
}

/* ---- housekeeping thread ---------------------------------------------- */

static void pool_sample_cpu(struct pool *p)
{
    double wall = pool_now(), cpu = pool_cpu_now();
    if (p->cpu_last_wall > 0 && wall - p->cpu_last_wall > 0.1)
        p->cpu_percent = (cpu - p->cpu_last_cpu) / (wall - p->cpu_last_wall) * 100.0;
    p->cpu_last_wall = wall;
    p->cpu_last_cpu = cpu;
}

/* Unloads the first idle model past its keep-alive; 1 if it did (the list
 * changed), else 0.  Lock held. */
static int pool_unload_one_idle(struct pool *p, double now)
{
    for (struct pool_entry *e = p->entries; e; e = e->next) {
        if (!pool_evictable(e))
            continue;
        int ttl = e->keep_alive == POOL_KEEP_ALIVE_DEFAULT ? p->idle_unload : e->keep_alive;
        if (ttl > 0 && now - e->last_used >= ttl) {
            pool_unload_locked(p, e, "idle");
            return 1;
        }
    }
    return 0;
}

/* Loads the models of profiles marked auto_start, in the background so
 * the daemon answers at once. */
static void pool_auto_start(struct pool *p, struct db *db)
{
    cJSON *list = profile_list(db);
    const cJSON *row;
    cJSON_ArrayForEach(row, list)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(row, "name");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "auto_start")) ||
            !cJSON_IsString(name) || pool_shutting_down(p))
            continue;
        struct pool_error err;
        if (pool_load(p, db, name->valuestring, NULL, NULL, &err))
            log_msg(LOG_LEVEL_WARN, "auto_start of profile %s failed: %s", name->valuestring,
                    err.message);
    }
    cJSON_Delete(list);
}

static void *pool_thread_main(void *arg)
{
    struct pool *p = arg;
    struct db db;
    char err[512];
    int have_db = p->app->db_path[0] && db_open(&db, p->app->db_path, err, sizeof(err)) == 0;
    if (!have_db && p->app->db_path[0])
        log_msg(LOG_LEVEL_WARN, "model pool: %s; idle unloading uses the configuration", err);
    if (have_db)
        pool_auto_start(p, &db);
    unsigned ticks = 0;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        /* Settings change from the dashboard; read them every few seconds. */
        if (have_db && ticks++ % 5 == 0) {
            pthread_mutex_unlock(&p->mu);
            pool_read_settings(p, &db);
            pthread_mutex_lock(&p->mu);
        }
        pool_sample_cpu(p);
        while (pool_unload_one_idle(p, pool_now()))
            ;
        if (pool_shutting_down(p)) /* wake queued requests so they fail fast */
            for (struct pool_entry *e = p->entries; e; e = e->next)
                pthread_cond_broadcast(&e->cond);
        struct timespec t = pool_deadline(1.0);
        pthread_cond_timedwait(&p->tick, &p->mu, &t);
    }
    pthread_mutex_unlock(&p->mu);
    if (have_db)
        db_close(&db);
    return NULL;
}

/* ---- lifetime --------------------------------------------------------- */

int pool_create(struct app *app, struct pool **out)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    p->app = app;
    p->limit_percent = app->config.memory_limit_percent;
    p->max_loaded = app->config.max_loaded_models;
    p->idle_unload = app->config.idle_unload_seconds;
    pthread_mutex_init(&p->mu, NULL);
    pool_cond_init(&p->tick);
    if (pthread_create(&p->thread, NULL, pool_thread_main, p) != 0) {
        pthread_cond_destroy(&p->tick);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return -1;
    }
    p->thread_started = 1;
    *out = p;
    return 0;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_signal(&p->tick);
    for (struct pool_entry *e = p->entries; e; e = e->next)
        pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&p->mu);
    if (p->thread_started)
        pthread_join(p->thread, NULL);
    pthread_mutex_lock(&p->mu);
    /* Leases end before this is called (the workers are joined); any entry
     * still loading belongs to a thread that will see `stopping`. */
    for (;;) {
        struct pool_entry *e = p->entries;
        while (e && e->state != POOL_READY)
            e = e->next;
        if (!e)
            break;
        pool_unload_locked(p, e, "shutdown");
    }
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&p->tick);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
