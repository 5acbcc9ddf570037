/*
 * config.c - YAML configuration with defaults, validation and overrides.
 *
 * The file is a flat mapping of known keys to scalars.  Anything else (an
 * unknown key, a nested value, a number out of range, a YAML syntax error)
 * stops the daemon with "file:line: problem", because running with a config
 * the user did not mean is worse than not starting.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum config_kind {
    CONFIG_KIND_STRING,
    CONFIG_KIND_INT,
    CONFIG_KIND_SIZE,
    CONFIG_KIND_LOG_LEVEL,
    CONFIG_KIND_LOG_FORMAT,
    CONFIG_KIND_BOOL,
    CONFIG_KIND_KV_DTYPE,
};

struct config_key {
    const char *name;
    enum config_kind kind;
    size_t offset;
    long long min, max; /* for integers */
};

#define CONFIG_FIELD(f) offsetof(struct config, f)

static const struct config_key config_keys[] = {
    {"listen", CONFIG_KIND_STRING, CONFIG_FIELD(listen), 0, 0},
    {"state_dir", CONFIG_KIND_STRING, CONFIG_FIELD(state_dir), 0, 0},
    {"models_dir", CONFIG_KIND_STRING, CONFIG_FIELD(models_dir), 0, 0},
    {"workers", CONFIG_KIND_INT, CONFIG_FIELD(workers), 1, 256},
    {"threads", CONFIG_KIND_INT, CONFIG_FIELD(threads), 0, 256},
    {"kv_cache_dtype", CONFIG_KIND_KV_DTYPE, CONFIG_FIELD(kv_cache_dtype), 0, 0},
    {"memory_limit_percent", CONFIG_KIND_INT, CONFIG_FIELD(memory_limit_percent), 10, 100},
    {"max_loaded_models", CONFIG_KIND_INT, CONFIG_FIELD(max_loaded_models), 1, 64},
    {"idle_unload_seconds", CONFIG_KIND_INT, CONFIG_FIELD(idle_unload_seconds), 0, 7 * 24 * 3600},
    {"max_body_bytes", CONFIG_KIND_SIZE, CONFIG_FIELD(max_body_bytes), 1024, 1024LL * 1024 * 1024},
    {"log_level", CONFIG_KIND_LOG_LEVEL, CONFIG_FIELD(log_level), 0, 0},
    {"log_format", CONFIG_KIND_LOG_FORMAT, CONFIG_FIELD(log_format), 0, 0},
    {"log_file", CONFIG_KIND_STRING, CONFIG_FIELD(log_file), 0, 0},
    {"hf_endpoint", CONFIG_KIND_STRING, CONFIG_FIELD(hf_endpoint), 0, 0},
    {"hf_token", CONFIG_KIND_STRING, CONFIG_FIELD(hf_token), 0, 0},
    {"require_api_key", CONFIG_KIND_BOOL, CONFIG_FIELD(require_api_key), 0, 0},
    {"cors_origins", CONFIG_KIND_STRING, CONFIG_FIELD(cors_origins), 0, 0},
    {"shutdown_grace_seconds", CONFIG_KIND_INT, CONFIG_FIELD(shutdown_grace_seconds), 0, 3600},
};

int config_set_string(char **field, const char *value)
{
    char *copy = strdup(value ? value : "");
    if (!copy)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

static const char *config_home(void)
{
    const char *home = getenv("HOME");
    return home && *home ? home : "/tmp";
}

int config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char buf[PATH_MAX];
    int rc = 0;
    rc |= config_set_string(&cfg->listen, "run/mlx-manager.sock");
    snprintf(buf, sizeof(buf), "%s/.local/share/mlx-manager", config_home());
    rc |= config_set_string(&cfg->state_dir, buf);
    snprintf(buf, sizeof(buf), "%s/.cache/huggingface/hub", config_home());
    rc |= config_set_string(&cfg->models_dir, buf);
    cfg->workers = 32;
    cfg->threads = 0;
    cfg->kv_cache_dtype = ENGINE_KV_AUTO;
    cfg->memory_limit_percent = 90;
    cfg->max_loaded_models = 4;
    cfg->idle_unload_seconds = 0;
    cfg->max_body_bytes = 32LL * 1024 * 1024;
    rc |= config_set_string(&cfg->log_level, "info");
    cfg->log_format = CONFIG_LOG_FORMAT_JSON;
    rc |= config_set_string(&cfg->log_file, "");
    rc |= config_set_string(&cfg->hf_endpoint, "https://huggingface.co");
    rc |= config_set_string(&cfg->hf_token, "");
    cfg->require_api_key = 0;
    cfg->shutdown_grace_seconds = 10;
    rc |= config_set_string(&cfg->cors_origins, "");
    return rc ? -1 : 0;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind == CONFIG_KIND_STRING || k->kind == CONFIG_KIND_LOG_LEVEL) {
            char **field = (char **)((char *)cfg + k->offset);
            free(*field);
            *field = NULL;
        }
    }
}

/* Parses a size such as 1048576, "512k", "32m", "1g" (powers of 1024). */
static int config_parse_size(const char *s, long long *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno)
        return -1;
    long long mult = 1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K': mult = 1024; break;
        case 'm':
        case 'M': mult = 1024 * 1024; break;
        case 'g':
        case 'G': mult = 1024 * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return -1;
    }
    if (v < 0 || v > LLONG_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int config_set_key(struct config *cfg, const struct config_key *k, const char *value,
                          char *problem, size_t plen)
{
    void *field = (char *)cfg + k->offset;
    switch (k->kind) {
    case CONFIG_KIND_STRING:
        if (config_set_string(field, value))
            return snprintf(problem, plen, "out of memory"), -1;
        return 0;
    case CONFIG_KIND_INT: {
        errno = 0;
        char *end;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno || v < k->min || v > k->max) {
            snprintf(problem, plen, "%s: expected an integer from %lld to %lld, got '%s'", k->name,
                     k->min, k->max, value);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case CONFIG_KIND_SIZE: {
        long long v;
        if (config_parse_size(value, &v) || v < k->min || v > k->max) {
            snprintf(problem, plen,
                     "%s: expected a size from %lld to %lld bytes (suffix k, m or g "
                     "allowed), got '%s'",
                     k->name, k->min, k->max, value);
            return -1;
        }
        *(long long *)field = v;
        return 0;
    }
    case CONFIG_KIND_LOG_LEVEL:
        if (strcmp(value, "debug") && strcmp(value, "info") && strcmp(value, "warn") &&
            strcmp(value, "error")) {
            snprintf(problem, plen, "%s: expected debug, info, warn or error, got '%s'", k->name,
                     value);
            return -1;
        }
        if (config_set_string(field, value))
            return snprintf(problem, plen, "out of memory"), -1;
        return 0;
    case CONFIG_KIND_LOG_FORMAT:
        if (!strcmp(value, "json")) {
            *(enum config_log_format *)field = CONFIG_LOG_FORMAT_JSON;
        } else if (!strcmp(value, "text")) {
            *(enum config_log_format *)field = CONFIG_LOG_FORMAT_TEXT;
        } else {
            snprintf(problem, plen, "%s: expected json or text, got '%s'", k->name, value);
            return -1;
        }
        return 0;
    case CONFIG_KIND_KV_DTYPE:
        if (!strcmp(value, "auto")) {
            *(enum engine_kv_dtype *)field = ENGINE_KV_AUTO;
        } else if (!strcmp(value, "f16")) {
            *(enum engine_kv_dtype *)field = ENGINE_KV_F16;
        } else if (!strcmp(value, "f32")) {
            *(enum engine_kv_dtype *)field = ENGINE_KV_F32;
        } else {
            snprintf(problem, plen, "%s: expected auto, f16 or f32, got '%s'", k->name, value);
            return -1;
        }
        return 0;
    case CONFIG_KIND_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1")) {
            *(int *)field = 1;
        } else if (!strcmp(value, "false") || !strcmp(value, "0")) {
            *(int *)field = 0;
        } else {
            snprintf(problem, plen, "%s: expected true or false, got '%s'", k->name, value);
            return -1;
        }
        return 0;
    }
    return -1;
}

static const struct config_key *config_find_key(const char *name)
{
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++)
        if (!strcmp(config_keys[i].name, name))
            return &config_keys[i];
    return NULL;
}

/* Walks the event stream of a document that must be one flat mapping. */
static int config_parse(struct config *cfg, const char *name, yaml_parser_t *parser, char *err,
                        size_t errlen)
{
    enum {
        EXPECT_STREAM,
        EXPECT_DOC,
        EXPECT_MAP,
        EXPECT_KEY,
        EXPECT_VALUE,
        DONE
    } state = EXPECT_STREAM;
    char key[128] = "";
    int rc = -1;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev)) {
            snprintf(err, errlen, "%s:%zu: YAML syntax error: %s", name,
                     parser->problem_mark.line + 1,
                     parser->problem ? parser->problem : "unknown problem");
            return -1;
        }
        size_t line = ev.start_mark.line + 1;
        int ok = 1;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT: state = EXPECT_DOC; break;
        case YAML_DOCUMENT_START_EVENT:
            if (state != EXPECT_DOC) {
                snprintf(err, errlen, "%s:%zu: only one YAML document is allowed", name, line);
                ok = 0;
            } else {
                state = EXPECT_MAP;
            }
            break;
        case YAML_MAPPING_START_EVENT:
            if (state != EXPECT_MAP) {
                snprintf(err, errlen, "%s:%zu: %s: nested mappings are not allowed", name, line,
                         key[0] ? key : "value");
                ok = 0;
            } else {
                state = EXPECT_KEY;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (state == EXPECT_MAP)
                snprintf(err, errlen, "%s:%zu: expected a mapping of keys to values", name, line);
            else
                snprintf(err, errlen, "%s:%zu: %s: lists are not allowed here", name, line,
                         key[0] ? key : "value");
            ok = 0;
            break;
        case YAML_ALIAS_EVENT:
            snprintf(err, errlen, "%s:%zu: YAML aliases are not supported", name, line);
            ok = 0;
            break;
        case YAML_SCALAR_EVENT: {
            const char *value = (const char *)ev.data.scalar.value;
            if (state == EXPECT_MAP) {
                if (ev.data.scalar.length == 0) { /* an empty file is a valid config */
                    state = DONE;
                    break;
                }
                snprintf(err, errlen, "%s:%zu: expected a mapping of keys to values", name, line);
                ok = 0;
            } else if (state == EXPECT_KEY) {
                if (!config_find_key(value)) {
                    snprintf(err, errlen, "%s:%zu: unknown key '%.100s'", name, line, value);
                    ok = 0;
                } else {
                    snprintf(key, sizeof(key), "%s", value);
                    state = EXPECT_VALUE;
                }
            } else if (state == EXPECT_VALUE) {
                char problem[256];
                if (config_set_key(cfg, config_find_key(key), value, problem, sizeof(problem))) {
                    snprintf(err, errlen, "%s:%zu: %s", name, line, problem);
                    ok = 0;
                }
                state = EXPECT_KEY;
                key[0] = '\0';
            }
            break;
        }
        case YAML_MAPPING_END_EVENT: state = DONE; break;
        case YAML_DOCUMENT_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
        case YAML_NO_EVENT: break;
        case YAML_STREAM_END_EVENT: rc = 0; break;
        }
        yaml_event_delete(&ev);
        if (!ok)
            return -1;
        if (rc == 0)
            return 0;
    }
}

int config_load_string(struct config *cfg, const char *name, const char *text, size_t len,
                       char *err, size_t errlen)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = config_parse(cfg, name, &parser, err, errlen);
    yaml_parser_delete(&parser);
    return rc;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    int rc = config_parse(cfg, path, &parser, err, errlen);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

int config_apply_env(struct config *cfg, char *err, size_t errlen)
{
    const char *v;
    char buf[PATH_MAX];
    if ((v = getenv("HF_HOME")) && *v) {
        snprintf(buf, sizeof(buf), "%s/hub", v);
        if (config_set_string(&cfg->models_dir, buf))
            goto oom;
    }
    if ((v = getenv("HF_ENDPOINT")) && *v && config_set_string(&cfg->hf_endpoint, v))
        goto oom;
    if ((v = getenv("HF_TOKEN")) && *v && config_set_string(&cfg->hf_token, v))
        goto oom;
    if ((v = getenv("MLXM_LISTEN")) && *v && config_set_string(&cfg->listen, v))
        goto oom;
    if ((v = getenv("MLXM_STATE_DIR")) && *v && config_set_string(&cfg->state_dir, v))
        goto oom;
    /* Set by tools/run.sh when nginx listens beyond loopback. */
    if ((v = getenv("MLXM_REQUIRE_API_KEY")) && !strcmp(v, "1"))
        cfg->require_api_key = 1;
    return 0;
oom:
    snprintf(err, errlen, "out of memory applying environment overrides");
    return -1;
}
