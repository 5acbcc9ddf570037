#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "log.h"

enum setting_kind {
    SETTING_INT,
    SETTING_URL,
    SETTING_PATH,
    SETTING_LOG_LEVEL,
    SETTING_SECRET,
};

struct setting {
    const char *key;
    enum setting_kind kind;
    long long min, max;
    const char *help;
};

static const struct setting settings_table[] = {
    {"memory_limit_percent", SETTING_INT, 10, 100,
     "share of RAM for loaded models (weights + KV cache + scratch)"},
    {"max_loaded_models", SETTING_INT, 1, 64, "how many models may be loaded at once"},
    {"idle_unload_seconds", SETTING_INT, 0, 7 * 24 * 3600,
     "unload a model idle this long (0 = never)"},
    {"models_dir", SETTING_PATH, 0, 0, "Hugging Face cache folder where models are stored"},
    {"hf_endpoint", SETTING_URL, 0, 0, "Hugging Face Hub (or mirror) base URL"},
    {"hf_token", SETTING_SECRET, 0, 0, "Hugging Face access token (stored, never shown)"},
    {"log_level", SETTING_LOG_LEVEL, 0, 0, "debug, info, warn or error"},
};

#define SETTINGS_COUNT (sizeof(settings_table) / sizeof(settings_table[0]))

static const struct setting *settings_find(const char *key)
{
    for (size_t i = 0; i < SETTINGS_COUNT; i++)
        if (!strcmp(settings_table[i].key, key))
            return &settings_table[i];
    return NULL;
}

/* The configuration's value for a key, as text. */
static void settings_default(const struct config *cfg, const char *key, char *buf, size_t len)
{
    if (!strcmp(key, "memory_limit_percent"))
        snprintf(buf, len, "%d", cfg->memory_limit_percent);
    else if (!strcmp(key, "max_loaded_models"))
        snprintf(buf, len, "%d", cfg->max_loaded_models);
    else if (!strcmp(key, "idle_unload_seconds"))
        snprintf(buf, len, "%d", cfg->idle_unload_seconds);
    else if (!strcmp(key, "models_dir"))
        snprintf(buf, len, "%s", cfg->models_dir);
    else if (!strcmp(key, "hf_endpoint"))
        snprintf(buf, len, "%s", cfg->hf_endpoint);
    else if (!strcmp(key, "hf_token"))
        snprintf(buf, len, "%s", cfg->hf_token);
    else if (!strcmp(key, "log_level"))
        snprintf(buf, len, "%s", cfg->log_level);
    else
        buf[0] = '\0';
}

/* Stored value of key into buf; returns 1 if found, 0 if not, -1 on error. */
static int settings_stored(struct db *db, const char *key, char *buf, size_t len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "SELECT value FROM settings WHERE key = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int found = 0;
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(buf, len, "%s", v ? (const char *)v : "");
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = -1;
    }
    sqlite3_finalize(st);
    return found;
}

static void settings_effective(struct db *db, const struct config *cfg, const char *key, char *buf,
                               size_t len)
{
    if (settings_stored(db, key, buf, len) != 1)
        settings_default(cfg, key, buf, len);
}

void settings_get_text(struct db *db, const struct config *cfg, const char *key, char *buf,
                       size_t len)
{
    settings_effective(db, cfg, key, buf, len);
}

long long settings_get_int(struct db *db, const struct config *cfg, const char *key)
{
    char buf[64];
    settings_effective(db, cfg, key, buf, sizeof(buf));
    return strtoll(buf, NULL, 10);
}

int settings_describe(struct db *db, const struct config *cfg, cJSON *out)
{
    for (size_t i = 0; i < SETTINGS_COUNT; i++) {
        const struct setting *s = &settings_table[i];
        char buf[4096];
        settings_effective(db, cfg, s->key, buf, sizeof(buf));
        cJSON *item;
        if (s->kind == SETTING_INT) {
            item = cJSON_CreateNumber((double)strtoll(buf, NULL, 10));
        } else if (s->kind == SETTING_SECRET) {
            /* Show that a secret is set and its last 4 characters, never more. */
            size_t n = strlen(buf);
            char masked[32];
            if (n == 0)
                snprintf(masked, sizeof(masked), "%s", "");
            else
                snprintf(masked, sizeof(masked), "****%s", n > 8 ? buf + n - 4 : "");
            item = cJSON_CreateString(masked);
        } else {
            item = cJSON_CreateString(buf);
        }
        if (!item || !cJSON_AddItemToObject(out, s->key, item)) {
            cJSON_Delete(item);
            return -1;
        }
    }
    return 0;
}

/* Checks one value; writes the canonical text form into buf. 0 or -1 (msg set). */
static int settings_validate(const struct setting *s, const cJSON *v, char *buf, size_t len,
                             char *msg, size_t msg_len)
{
    switch (s->kind) {
    case SETTING_INT: {
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
        if (!cJSON_IsNumber(v) || d != (double)(long long)d || d < (double)s->min ||
            d > (double)s->max) {
            snprintf(msg, msg_len, "%s must be an integer from %lld to %lld", s->key, s->min,
                     s->max);
            return -1;
        }
        snprintf(buf, len, "%lld", (long long)d);
        return 0;
    }
    case SETTING_URL:
        if (!cJSON_IsString(v) ||
            (strncmp(v->valuestring, "http://", 7) && strncmp(v->valuestring, "https://", 8)) ||
            strlen(v->valuestring) > 2048 || strpbrk(v->valuestring, " \t\r\n")) {
            snprintf(msg, msg_len, "%s must be an http:// or https:// URL", s->key);
            return -1;
        }
        break;
    case SETTING_PATH:
        if (!cJSON_IsString(v) || v->valuestring[0] != '/' || strlen(v->valuestring) > 4000) {
            snprintf(msg, msg_len, "%s must be an absolute path", s->key);
            return -1;
        }
        break;
    case SETTING_LOG_LEVEL:
        if (!cJSON_IsString(v) ||
            (strcmp(v->valuestring, "debug") && strcmp(v->valuestring, "info") &&
             strcmp(v->valuestring, "warn") && strcmp(v->valuestring, "error"))) {
            snprintf(msg, msg_len, "%s must be one of debug, info, warn, error", s->key);
            return -1;
        }
        break;
    case SETTING_SECRET:
        if (!cJSON_IsString(v) || strlen(v->valuestring) > 1024 ||
            strpbrk(v->valuestring, " \t\r\n")) {
            snprintf(msg, msg_len, "%s must be a string without whitespace", s->key);
            return -1;
        }
        break;
    }
    snprintf(buf, len, "%s", v->valuestring);
    return 0;
}

int settings_update(struct db *db, const cJSON *patch, char *field, size_t field_len, char *msg,
                    size_t msg_len)
{
    char buf[4096];
    for (const cJSON *v = patch->child; v; v = v->next) {
        const struct setting *s = settings_find(v->string);
        if (!s) {
            snprintf(field, field_len, "%s", v->string);
            snprintf(msg, msg_len, "unknown setting '%.200s'", v->string);
            return 422;
        }
        if (settings_validate(s, v, buf, sizeof(buf), msg, msg_len)) {
            snprintf(field, field_len, "%s", s->key);
            return 422;
        }
    }
    char now[32];
    db_now(now, sizeof(now));
    if (sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto db_error;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->conn,
                           "INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                           "updated_at = excluded.updated_at",
                           -1, &st, NULL) != SQLITE_OK)
        goto rollback;
    for (const cJSON *v = patch->child; v; v = v->next) {
        const struct setting *s = settings_find(v->string);
        settings_validate(s, v, buf, sizeof(buf), msg, msg_len);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, s->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, buf, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto rollback;
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto db_error;
    const cJSON *level = cJSON_GetObjectItemCaseSensitive(patch, "log_level");
    if (cJSON_IsString(level))
        log_set_level(level->valuestring);
    return 0;
rollback:
    snprintf(msg, msg_len, "database error: %s", sqlite3_errmsg(db->conn));
    sqlite3_finalize(st);
    sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    return 500;
db_error:
    snprintf(msg, msg_len, "database error: %s", sqlite3_errmsg(db->conn));
    return 500;
}
