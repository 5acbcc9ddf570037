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
    int http_status;       /* 404 unknown model, 429 queue full, 503 queue timeout or
                              shutting down, 507 cannot fit, 422 unsupported model,
                              500 load failure */
    int retry_after;       /* seconds, for 429/503; 0 = no header */
    char code[64];         /* machine-readable: model_not_found, queue_full, ... */
    char message[1024];    /* for the client; names the model */
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

#endif
