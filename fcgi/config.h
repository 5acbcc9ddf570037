/*
 * config.h - the daemon's configuration: one YAML file (libyaml) where every
 * key is optional and has a documented default, then environment overrides
 * (HF_HOME, HF_ENDPOINT, HF_TOKEN, MLXM_LISTEN, MLXM_STATE_DIR,
 * MLXM_REQUIRE_API_KEY=1), then
 * command-line overrides applied by the caller.
 *
 * The defaults and the meaning of every key are listed in config_keys[] in
 * config.c and documented in docs/configuration.md.  A struct config owns
 * all of its strings; config_free() releases them.  Loading is not
 * thread-safe; a loaded config is read-only and may be shared by threads.
 */
#ifndef FCGI_CONFIG_H
#define FCGI_CONFIG_H

#include <stddef.h>

#include "engine.h"

enum config_log_format {
    CONFIG_LOG_FORMAT_JSON,
    CONFIG_LOG_FORMAT_TEXT,
};

struct config {
    char *listen;                        /* unix socket path or host:port for TCP */
    char *state_dir;                     /* SQLite database and other daemon state */
    char *models_dir;                    /* Hugging Face hub cache (models--org--name/...) */
    int workers;                         /* FastCGI worker threads */
    int threads;                         /* compute threads per model; 0 = physical cores */
    enum engine_kv_dtype kv_cache_dtype; /* what loaded models keep their K/V as */
    int memory_limit_percent;            /* share of RAM for weights + KV + scratch */
    int max_loaded_models;               /* models kept loaded at once */
    int idle_unload_seconds;             /* unload a model idle this long; 0 = never */
    long long max_body_bytes;            /* largest accepted request body */
    char *log_level;                     /* debug | info | warn | error */
    enum config_log_format log_format;
    char *log_file;             /* "" = stderr */
    char *hf_endpoint;          /* Hugging Face Hub base URL */
    char *hf_token;             /* "" = anonymous */
    int require_api_key;        /* keys needed even before one exists, /api too */
    char *cors_origins;         /* comma-separated allowed Origins; "" = no CORS */
    int shutdown_grace_seconds; /* SIGTERM: in-flight generations may finish this long */
};

/* Fills `cfg` with the built-in defaults (HOME-relative paths resolved). */
int config_defaults(struct config *cfg);

/*
 * Loads `path` over the defaults already in `cfg`.  On error returns -1 and
 * writes "PATH:LINE: problem" into err; cfg keeps the values set so far and
 * must still be freed.
 */
int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen);

/* Parses YAML text (for tests and fuzzing); `name` is used in messages. */
int config_load_string(struct config *cfg, const char *name, const char *text, size_t len,
                       char *err, size_t errlen);

/* Applies the documented environment overrides. */
int config_apply_env(struct config *cfg, char *err, size_t errlen);

/* Replaces one string field (used for command-line overrides); -1 on OOM. */
int config_set_string(char **field, const char *value);

/* Releases every string owned by cfg. */
void config_free(struct config *cfg);

#endif
