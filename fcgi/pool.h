/*
 * pool.h - the model pool: which models are loaded, loading on first use,
 * the one memory budget, eviction, pinning, idle unloading and the
 * per-model concurrency limits.
 *
 * Model names resolve (in this order) to a profile name (the profile's
 * model_path and defaults apply), a Hugging Face cache id (`org/name` under
 * models_dir), a directory under the state dir's `models/` (the demo model
 * lives there), or an absolute path to a model directory.
 *
 * A request holds a lease for as long as it uses a model: a leased model is
 * never evicted or unloaded under it.  Concurrent requests for a model that
 * is loading wait for the one load.  Loading a model that does not fit
 * evicts least-recently-used, idle, unpinned models first; one that can
 * never fit is refused before anything is evicted.
 *
 * Thread-safe: every function may be called from any worker thread.
 */
#ifndef FCGI_POOL_H
#define FCGI_POOL_H

#include <cJSON.h>
#include <stddef.h>

struct app;
struct db;
struct engine_model;
struct pool;
struct pool_lease;

/* Why an acquire failed, with the HTTP status an API layer should use. */
struct pool_error {
    int http_status;    /* 404 unknown model, 429 queue full, 503 queue timeout or
                           shutting down, 507 cannot fit, 422 unsupported model,
                           500 load failure */
    int retry_after;    /* seconds, for 429/503; 0 = no header */
    char code[64];      /* machine-readable: model_not_found, queue_full, ... */
    char message[1024]; /* for the client; names the model */
};

/* Counters a finished request reports back for /api/servers. */
struct pool_usage {
    int prompt_tokens;
    int completion_tokens;
    double decode_tps;
};

/* Creates the pool (and its idle-unload thread); 0 or -1. */
int pool_create(struct app *app, struct pool **out);

/* Unloads everything (in-flight requests are cancelled) and frees the pool. */
void pool_free(struct pool *p);

/*
 * Resolves `name`, loads the model if needed and takes one of its request
 * slots (waiting in its queue when max_concurrency slots are busy).  `db`
 * is the calling worker's connection (profiles, settings).  On success
 * returns 0 and *out; otherwise -1 with err filled.
 */
int pool_acquire(struct pool *p, struct db *db, const char *name, struct pool_lease **out,
                 struct pool_error *err);

/* The loaded engine model behind a lease. */
struct engine_model *pool_lease_model(const struct pool_lease *l);

/* The name the model is known by in responses (the requested name). */
const char *pool_lease_name(const struct pool_lease *l);

/* The profile the name resolved to (its row as JSON: defaults such as
 * temperature, system_prompt, max_tokens, context_length), or NULL when the
 * name was not a profile.  Owned by the lease. */
const cJSON *pool_lease_profile(const struct pool_lease *l);

/* Returns the slot and the lease; usage may be NULL. */
void pool_release(struct pool_lease *l, const struct pool_usage *usage);

/* ---- management (admin API, dashboard) ---------------------------------- */

/* keep_alive values: seconds idle before unloading, or these. */
#define POOL_KEEP_ALIVE_DEFAULT 0 /* the idle_unload_seconds setting */
#define POOL_KEEP_ALIVE_FOREVER (-1)

struct pool_load_opts {
    int pin;        /* 1 pin (never evicted or idle-unloaded), 0 unpin, -1 leave as is */
    int keep_alive; /* seconds, POOL_KEEP_ALIVE_DEFAULT or _FOREVER; -2 leave as is */
};

/*
 * Loads `name` (if not loaded yet) without taking a request slot and
 * applies opts (NULL = leave pin and keep_alive as they are).  Returns 0
 * and, when status is not NULL, the model's pool_status() object (caller
 * owns it); or -1 with err (404, 422, 503, 507, 500 as for pool_acquire).
 */
int pool_load(struct pool *p, struct db *db, const char *name, const struct pool_load_opts *opts,
              cJSON **status, struct pool_error *err);

/*
 * Unloads the model `name` resolves to (or the loaded model listed under
 * that name).  While it has running or queued requests: without force,
 * -1 with 409 model_busy; with force, queued requests fail with 503, no
 * new one starts, running ones are cancelled (their clients get an error:
 * 503, or an error event on a stream) and the call waits for their
 * handlers to give back the slots.
 * 404 model_not_loaded when it is not loaded, 409 model_loading while it
 * loads.  Returns 0 or -1 with err.
 */
int pool_unload(struct pool *p, struct db *db, const char *name, int force, struct pool_error *err);

/*
 * Every loaded (or loading/unloading) model as a JSON array of objects:
 * name, profile (its name or null), dir, state, pinned, keep_alive,
 * memory {weights_bytes, kv_bytes, scratch_bytes, total_bytes}, leases,
 * queue_depth, max_concurrency, queue_size, queue_timeout, requests_served,
 * prompt_tokens, completion_tokens, tokens_per_second, kv_blocks_free,
 * kv_blocks_total, context_length, loaded_at, uptime_seconds, idle_seconds,
 * cpu_percent.  `name` non-NULL limits it to that model (it may be empty).
 * NULL on allocation failure; the caller owns the result.
 */
cJSON *pool_status(struct pool *p, const char *name);

struct pool_memory {
    unsigned long long system_total_bytes, system_available_bytes;
    unsigned long long budget_bytes; /* memory_limit_percent of the total */
    unsigned long long used_bytes;   /* loaded and loading models */
    int memory_limit_percent, loaded_models, max_loaded_models;
    double cpu_percent; /* the process's CPU time over the last second, 100 = one core */
};

/* Fills *out with the effective settings read through db. */
void pool_memory(struct pool *p, struct db *db, struct pool_memory *out);

/* Overrides the memory the budget is a share of (0 = MemTotal): for tests
 * and for machines whose limit is not MemTotal. */
void pool_set_memory_total(struct pool *p, unsigned long long bytes);

#endif
