/*
 * cli_serve.c - `mlx-manager serve`: load the configuration, prepare the
 * state directory and database, then run the FastCGI server until stopped.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "app.h"
#include "cli.h"
#include "db.h"
#include "fsutil.h"
#include "downloads.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "version.h"

/* Downloads running at once; more wait in the queue. */
#define HUB_DOWNLOAD_THREADS 2

static void serve_usage(FILE *out)
{
    fprintf(out, "usage: mlx-manager serve [--config FILE] [--listen SOCKET|HOST:PORT]\n"
                 "                         [--state-dir DIR] [--check-config]\n"
                 "\n"
                 "  --config FILE     YAML configuration (see docs/configuration.md)\n"
                 "  --listen ADDR     FastCGI socket: a unix socket path or HOST:PORT\n"
                 "  --state-dir DIR   where the SQLite database lives\n"
                 "  --check-config    validate the configuration, print it and exit\n");
}

static void serve_print_config(const struct config *c)
{
    static const char *const kv_names[] = {
        [ENGINE_KV_AUTO] = "auto", [ENGINE_KV_F32] = "f32", [ENGINE_KV_F16] = "f16"};
    printf("listen: %s\nstate_dir: %s\nmodels_dir: %s\nworkers: %d\nthreads: %d\n"
           "kv_cache_dtype: %s\n"
           "memory_limit_percent: %d\nmax_loaded_models: %d\nidle_unload_seconds: %d\n"
           "max_body_bytes: %lld\nlog_level: %s\nlog_format: %s\n"
           "log_file: \"%s\"\nhf_endpoint: %s\nhf_token: %s\n",
           c->listen, c->state_dir, c->models_dir, c->workers, c->threads,
           kv_names[c->kv_cache_dtype], c->memory_limit_percent, c->max_loaded_models,
           c->idle_unload_seconds, c->max_body_bytes, c->log_level,
           c->log_format == CONFIG_LOG_FORMAT_JSON ? "json" : "text", c->log_file, c->hf_endpoint,
           *c->hf_token ? "(set)" : "\"\"");
}

int cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"state-dir", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *listen = NULL, *state_dir = NULL;
    int check_only = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:l:s:kh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'l': listen = optarg; break;
        case 's': state_dir = optarg; break;
        case 'k': check_only = 1; break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mlx-manager serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    static struct app app;
    char err[1024];
    if (config_defaults(&app.config)) {
        fprintf(stderr, "mlx-manager: out of memory\n");
        return 1;
    }
    int rc = 1;
    if (config_path && config_load_file(&app.config, config_path, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager: invalid configuration: %s\n", err);
        goto out;
    }
    if (config_apply_env(&app.config, err, sizeof(err)) ||
        (listen && config_set_string(&app.config.listen, listen)) ||
        (state_dir && config_set_string(&app.config.state_dir, state_dir))) {
        fprintf(stderr, "mlx-manager: %s\n", err);
        goto out;
    }
    if (check_only) {
        serve_print_config(&app.config);
        rc = 0;
        goto out;
    }
    if (log_open(app.config.log_file, app.config.log_format == CONFIG_LOG_FORMAT_JSON,
                 app.config.log_level)) {
        fprintf(stderr, "mlx-manager: cannot open log file %s: %s\n", app.config.log_file,
                strerror(errno));
        goto out;
    }
    if (fs_mkdirs(app.config.state_dir, 0700)) {
        fprintf(stderr, "mlx-manager: cannot create state_dir %s: %s\n", app.config.state_dir,
                strerror(errno));
        goto out;
    }
    snprintf(app.db_path, sizeof(app.db_path), "%s/mlx-manager.db", app.config.state_dir);
    struct db db;
    if (db_open(&db, app.db_path, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager: %s\n", err);
        goto out;
    }
    db_close(&db);
    app.started_at = time(NULL);
    if (config_path && !realpath(config_path, app.config_path))
        app.config_path[0] = '\0';
    log_msg(LOG_LEVEL_INFO, "mlx-manager %s starting (database %s, schema v%d)", MLXM_VERSION,
            app.db_path, db_schema_version());
    /* The pool's and the downloads' threads must inherit server_run's
     * blocked signals, or SIGTERM lands in one of them (libfcgi's handler)
     * instead of the signal thread's sigwait. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    if (pool_create(&app, &app.pool)) {
        fprintf(stderr, "mlx-manager: cannot create the model pool\n");
        goto out;
    }
    if (downloads_create(&app, HUB_DOWNLOAD_THREADS, &app.downloads)) {
        fprintf(stderr, "mlx-manager: cannot start the download manager\n");
        pool_free(app.pool);
        goto out;
    }
    rc = server_run(&app) == 0 ? 0 : 1;
    downloads_free(app.downloads);
    app.downloads = NULL;
    pool_free(app.pool);
    app.pool = NULL;
out:
    log_close();
    config_free(&app.config);
    return rc;
}
