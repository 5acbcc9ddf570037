/*
 * app.h - the daemon's process-wide state, shared read-mostly by all worker
 * threads: the configuration, the database path and the start time.  Later
 * capabilities (the model pool, downloads) hang off this struct too.  Fields
 * are set before the workers start and read-only afterwards.
 */
#ifndef FCGI_APP_H
#define FCGI_APP_H

#include <time.h>

#include "config.h"

struct downloads;
struct pool;

struct app {
    struct config config;
    char db_path[4096];
    char config_path[4096]; /* absolute path of the config file, "" = none (service units) */
    time_t started_at;
    int stopping;                /* set once by the signal thread: use app_stopping() */
    struct pool *pool;           /* the model pool (pool.h), created before the workers start */
    struct downloads *downloads; /* the download manager (downloads.h), likewise */
};

/* Whether the daemon is shutting down; any thread may ask. */
static inline int app_stopping(const struct app *app)
{
    return __atomic_load_n(&app->stopping, __ATOMIC_ACQUIRE);
}

static inline void app_request_stop(struct app *app)
{
    __atomic_store_n(&app->stopping, 1, __ATOMIC_RELEASE);
}

#endif
