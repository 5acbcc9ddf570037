/*
 * profile.c - validation and storage of profiles, driven by one field table.
 */
#include "profile.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

enum profile_type {
    PROFILE_TEXT,
    PROFILE_INT,
    PROFILE_REAL,
    PROFILE_BOOL,
};

struct profile_field {
    const char *name;
    enum profile_type type;
    int required;               /* must be given on create */
    int nullable;               /* JSON null allowed (stored as NULL) */
    double min, max;            /* numbers: inclusive range; text: length range in bytes */
    const char *const *choices; /* text: allowed values, NULL-terminated */
    const char *default_text;   /* default on create when absent (text) */
    double default_number;      /* default on create when absent (numbers/bools) */
    int has_default;
};

static const char *const profile_model_types[] = {"lm", "multimodal", "embeddings", "whisper",
                                                  NULL};
static const char *const profile_tool_parsers[] = {"qwen",   "qwen3",   "hermes",
                                                   "llama3", "mistral", NULL};
static const char *const profile_reasoning_parsers[] = {"qwen3", "deepseek_r1", NULL};
static const char *const profile_log_levels[] = {"debug", "info", "warn", "error", NULL};

#define TEXT(n, req, nul, lo, hi, ch, def)                                                         \
    {                                                                                              \
        n, PROFILE_TEXT, req, nul, lo, hi, ch, def, 0, (def) != NULL                               \
    }
#define NUM(n, t, nul, lo, hi)                                                                     \
    {                                                                                              \
        n, t, 0, nul, lo, hi, NULL, NULL, 0, 0                                                     \
    }
#define NUM_DEF(n, t, lo, hi, def)                                                                 \
    {                                                                                              \
        n, t, 0, 0, lo, hi, NULL, NULL, def, 1                                                     \
    }

/* Order = column order in SELECT; "port" is filled by next_port when absent. */
static const struct profile_field profile_fields[] = {
    TEXT("name", 1, 0, 1, 128, NULL, NULL),
    TEXT("description", 0, 0, 0, 4096, NULL, ""),
    TEXT("model_path", 1, 0, 1, 4096, NULL, NULL),
    TEXT("model_type", 0, 0, 1, 32, profile_model_types, "lm"),
    NUM("port", PROFILE_INT, 0, 1024, 65535),
    TEXT("host", 0, 0, 1, 255, NULL, "127.0.0.1"),
    NUM("context_length", PROFILE_INT, 1, 1, 16777216),
    NUM_DEF("max_concurrency", PROFILE_INT, 1, 1024, 1),
    NUM_DEF("queue_timeout", PROFILE_INT, 1, 86400, 300),
    NUM_DEF("queue_size", PROFILE_INT, 0, 100000, 100),
    TEXT("tool_call_parser", 0, 1, 1, 32, profile_tool_parsers, NULL),
    TEXT("reasoning_parser", 0, 1, 1, 32, profile_reasoning_parsers, NULL),
    NUM_DEF("enable_auto_tool_choice", PROFILE_BOOL, 0, 1, 0),
    NUM_DEF("trust_remote_code", PROFILE_BOOL, 0, 1, 0),
    TEXT("chat_template_file", 0, 1, 1, 4096, NULL, NULL),
    TEXT("system_prompt", 0, 1, 0, 100000, NULL, NULL),
    NUM("temperature", PROFILE_REAL, 1, 0, 2),
    NUM("top_p", PROFILE_REAL, 1, 0, 1),
    NUM("top_k", PROFILE_INT, 1, 0, 1000000),
    NUM("min_p", PROFILE_REAL, 1, 0, 1),
    NUM("max_tokens", PROFILE_INT, 1, 1, 16777216),
    NUM("repetition_penalty", PROFILE_REAL, 1, 0.01, 10),
    NUM("presence_penalty", PROFILE_REAL, 1, -2, 2),
    NUM("frequency_penalty", PROFILE_REAL, 1, -2, 2),
    NUM("seed", PROFILE_INT, 1, -9007199254740991.0, 9007199254740991.0),
    TEXT("log_level", 0, 0, 1, 16, profile_log_levels, "info"),
    NUM_DEF("auto_start", PROFILE_BOOL, 0, 1, 0),
    /* Idle seconds before the pool unloads the model; -1 never, 0 or null the
     * idle_unload_seconds setting. */
    NUM("keep_alive", PROFILE_INT, 1, -1, 30 * 24 * 3600),
};

#define PROFILE_N_FIELDS (sizeof(profile_fields) / sizeof(profile_fields[0]))
#define PROFILE_FIRST_PORT 8081

static const struct profile_field *profile_find_field(const char *name)
{
    for (size_t i = 0; i < PROFILE_N_FIELDS; i++)
        if (!strcmp(profile_fields[i].name, name))
            return &profile_fields[i];
    return NULL;
}

static int profile_is_readonly(const char *name)
{
    return !strcmp(name, "id") || !strcmp(name, "created_at") || !strcmp(name, "updated_at");
}

static enum profile_result profile_fail(struct profile_error *err, enum profile_result r,
                                        const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum profile_result profile_fail(struct profile_error *err, enum profile_result r,
                                        const char *field, const char *fmt, ...)
{
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return r;
}

/* Text must be valid UTF-8 without control characters (tabs/newlines are
 * allowed only in free-text fields). */
static int profile_text_ok(const char *s, int allow_newlines)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n;
        if (c < 0x80) {
            if ((c < 0x20 && !(allow_newlines && (c == '\n' || c == '\t' || c == '\r'))) ||
                c == 0x7f)
                return 0;
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3;
        else
            return 0;
        unsigned cp = c & (0x3f >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

static enum profile_result profile_check_value(const struct profile_field *f, const cJSON *v,
                                               struct profile_error *err)
{
    if (cJSON_IsNull(v)) {
        if (f->nullable)
            return PROFILE_OK;
        return profile_fail(err, PROFILE_INVALID, f->name, "%s must not be null", f->name);
    }
    switch (f->type) {
    case PROFILE_TEXT: {
        if (!cJSON_IsString(v))
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be a string", f->name);
        size_t len = strlen(v->valuestring);
        int free_text = !strcmp(f->name, "description") || !strcmp(f->name, "system_prompt");
        if (!profile_text_ok(v->valuestring, free_text))
            return profile_fail(err, PROFILE_INVALID, f->name,
                                "%s must be valid UTF-8 without control characters", f->name);
        if (len < (size_t)f->min || len > (size_t)f->max)
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be %.0f to %.0f bytes long",
                                f->name, f->min, f->max);
        if (!strcmp(f->name, "name")) {
            const char *s = v->valuestring;
            if (s[0] == ' ' || s[len - 1] == ' ')
                return profile_fail(err, PROFILE_INVALID, f->name,
                                    "%s must not start or end with a space", f->name);
        }
        if (!strcmp(f->name, "host") && strpbrk(v->valuestring, " /\\?#@"))
            return profile_fail(err, PROFILE_INVALID, f->name,
                                "%s must be a host name or IP address", f->name);
        if (f->choices) {
            for (const char *const *c = f->choices; *c; c++)
                if (!strcmp(*c, v->valuestring))
                    return PROFILE_OK;
            char list[256] = "";
            for (const char *const *c = f->choices; *c; c++) {
                strncat(list, *c, sizeof(list) - strlen(list) - 1);
                if (c[1])
                    strncat(list, ", ", sizeof(list) - strlen(list) - 1);
            }
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be one of: %s", f->name,
                                list);
        }
        return PROFILE_OK;
    }
    case PROFILE_BOOL:
        if (!cJSON_IsBool(v))
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be true or false", f->name);
        return PROFILE_OK;
    case PROFILE_INT:
    case PROFILE_REAL: {
        if (!cJSON_IsNumber(v))
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be a number", f->name);
        double d = v->valuedouble;
        if (!isfinite(d))
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be finite", f->name);
        if (f->type == PROFILE_INT && d != floor(d))
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be an integer", f->name);
        if (d < f->min || d > f->max)
            return profile_fail(err, PROFILE_INVALID, f->name, "%s must be between %.15g and %.15g",
                                f->name, f->min, f->max);
        return PROFILE_OK;
    }
    }
    return PROFILE_OK;
}

/* Rejects unknown fields and bad values in `in`. */
static enum profile_result profile_check_input(const cJSON *in, struct profile_error *err)
{
    for (const cJSON *v = in->child; v; v = v->next) {
        if (profile_is_readonly(v->string))
            continue;
        const struct profile_field *f = profile_find_field(v->string);
        if (!f)
            return profile_fail(err, PROFILE_INVALID, v->string, "unknown field '%.200s'",
                                v->string);
        enum profile_result r = profile_check_value(f, v, err);
        if (r != PROFILE_OK)
            return r;
    }
    return PROFILE_OK;
}

/* ---- rows <-> JSON ---------------------------------------------------- */

static const char profile_select[] =
    "SELECT id, name, description, model_path, model_type, port, host, context_length, "
    "max_concurrency, queue_timeout, queue_size, tool_call_parser, reasoning_parser, "
    "enable_auto_tool_choice, trust_remote_code, chat_template_file, system_prompt, "
    "temperature, top_p, top_k, min_p, max_tokens, repetition_penalty, presence_penalty, "
    "frequency_penalty, seed, log_level, auto_start, keep_alive, created_at, updated_at FROM "
    "profiles";

static cJSON *profile_row_to_json(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    for (size_t i = 0; i < PROFILE_N_FIELDS; i++) {
        const struct profile_field *f = &profile_fields[i];
        int col = (int)i + 1;
        cJSON *item;
        if (sqlite3_column_type(st, col) == SQLITE_NULL)
            item = cJSON_CreateNull();
        else if (f->type == PROFILE_TEXT)
            item = cJSON_CreateString((const char *)sqlite3_column_text(st, col));
        else if (f->type == PROFILE_BOOL)
            item = cJSON_CreateBool(sqlite3_column_int(st, col));
        else if (f->type == PROFILE_INT)
            item = cJSON_CreateNumber((double)sqlite3_column_int64(st, col));
        else
            item = cJSON_CreateNumber(sqlite3_column_double(st, col));
        if (!item || !cJSON_AddItemToObject(o, f->name, item)) {
            cJSON_Delete(item);
            cJSON_Delete(o);
            return NULL;
        }
    }
    int col = (int)PROFILE_N_FIELDS + 1;
    cJSON_AddStringToObject(o, "created_at", (const char *)sqlite3_column_text(st, col));
    cJSON_AddStringToObject(o, "updated_at", (const char *)sqlite3_column_text(st, col + 1));
    return o;
}

cJSON *profile_list(struct db *db)
{
    char sql[sizeof(profile_select) + 32];
    snprintf(sql, sizeof(sql), "%s ORDER BY id", profile_select);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    cJSON *arr = cJSON_CreateArray();
    int rc;
    while (arr && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = profile_row_to_json(st);
        if (!o) {
            cJSON_Delete(arr);
            arr = NULL;
            break;
        }
        cJSON_AddItemToArray(arr, o);
    }
    if (arr && rc != SQLITE_DONE) {
        cJSON_Delete(arr);
        arr = NULL;
    }
    sqlite3_finalize(st);
    return arr;
}

enum profile_result profile_get(struct db *db, long long id, cJSON **out)
{
    char sql[sizeof(profile_select) + 32];
    snprintf(sql, sizeof(sql), "%s WHERE id = ?", profile_select);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK)
        return PROFILE_DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    enum profile_result r = PROFILE_NOT_FOUND;
    *out = NULL;
    if (rc == SQLITE_ROW) {
        *out = profile_row_to_json(st);
        r = *out ? PROFILE_OK : PROFILE_DB_ERROR;
    } else if (rc != SQLITE_DONE) {
        r = PROFILE_DB_ERROR;
    }
    sqlite3_finalize(st);
    return r;
}

int profile_next_port(struct db *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "SELECT port FROM profiles WHERE port >= ? ORDER BY port", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int(st, 1, PROFILE_FIRST_PORT);
    int port = PROFILE_FIRST_PORT;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int used = sqlite3_column_int(st, 0);
        if (used == port)
            port++;
        else if (used > port)
            break;
    }
    sqlite3_finalize(st);
    return port <= 65535 ? port : -1;
}

/* Binds one JSON value to a statement parameter as its field's type. */
static void profile_bind(sqlite3_stmt *st, int idx, const struct profile_field *f, const cJSON *v)
{
    if (!v || cJSON_IsNull(v))
        sqlite3_bind_null(st, idx);
    else if (f->type == PROFILE_TEXT)
        sqlite3_bind_text(st, idx, v->valuestring, -1, SQLITE_TRANSIENT);
    else if (f->type == PROFILE_BOOL)
        sqlite3_bind_int(st, idx, cJSON_IsTrue(v));
    else if (f->type == PROFILE_INT)
        sqlite3_bind_int64(st, idx, (sqlite3_int64)v->valuedouble);
    else
        sqlite3_bind_double(st, idx, v->valuedouble);
}

/* Maps a failed write to CONFLICT (naming the column) or DB_ERROR. */
static enum profile_result profile_write_error(struct db *db, struct profile_error *err)
{
    const char *msg = sqlite3_errmsg(db->conn);
    if (sqlite3_extended_errcode(db->conn) == SQLITE_CONSTRAINT_UNIQUE) {
        const char *field = strstr(msg, "profiles.port") ? "port" : "name";
        return profile_fail(err, PROFILE_CONFLICT, field, "a profile with this %s already exists",
                            field);
    }
    return profile_fail(err, PROFILE_DB_ERROR, NULL, "database error: %s", msg);
}

/*
 * Writes the complete profile `full` (every field present) as a new row, or
 * over row `id` when id > 0.  Returns the stored row in *out.
 */
static enum profile_result profile_store(struct db *db, long long id, const cJSON *full,
                                         cJSON **out, struct profile_error *err)
{
    char sql[2048];
    size_t n = 0;
    if (id > 0) {
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "UPDATE profiles SET ");
        for (size_t i = 0; i < PROFILE_N_FIELDS; i++)
            n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s = ?, ", profile_fields[i].name);
        snprintf(sql + n, sizeof(sql) - n, "updated_at = ? WHERE id = ?");
    } else {
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "INSERT INTO profiles (");
        for (size_t i = 0; i < PROFILE_N_FIELDS; i++)
            n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s, ", profile_fields[i].name);
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "created_at, updated_at) VALUES (");
        for (size_t i = 0; i < PROFILE_N_FIELDS; i++)
            n += (size_t)snprintf(sql + n, sizeof(sql) - n, "?, ");
        snprintf(sql + n, sizeof(sql) - n, "?, ?)");
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK)
        return profile_write_error(db, err);
    int idx = 1;
    for (size_t i = 0; i < PROFILE_N_FIELDS; i++)
        profile_bind(st, idx++, &profile_fields[i],
                     cJSON_GetObjectItemCaseSensitive(full, profile_fields[i].name));
    char now[32];
    db_now(now, sizeof(now));
    sqlite3_bind_text(st, idx++, now, -1, SQLITE_TRANSIENT);
    if (id > 0)
        sqlite3_bind_int64(st, idx, id);
    else
        sqlite3_bind_text(st, idx, now, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return profile_write_error(db, err);
    if (id <= 0)
        id = sqlite3_last_insert_rowid(db->conn);
    else if (sqlite3_changes(db->conn) == 0)
        return profile_fail(err, PROFILE_NOT_FOUND, NULL, "%s", "profile not found");
    enum profile_result r = profile_get(db, id, out);
    if (r != PROFILE_OK)
        profile_fail(err, r, NULL, "%s", "cannot read back the stored profile");
    return r;
}

/* Fills defaults (and a free port) into `full` for fields it lacks. */
static enum profile_result profile_fill_defaults(struct db *db, cJSON *full,
                                                 struct profile_error *err)
{
    for (size_t i = 0; i < PROFILE_N_FIELDS; i++) {
        const struct profile_field *f = &profile_fields[i];
        if (cJSON_GetObjectItemCaseSensitive(full, f->name))
            continue;
        if (f->required)
            return profile_fail(err, PROFILE_INVALID, f->name, "%s is required", f->name);
        cJSON *item;
        if (!strcmp(f->name, "port")) {
            int port = profile_next_port(db);
            if (port < 0)
                return profile_fail(err, PROFILE_CONFLICT, "port", "%s",
                                    "no free port is left for the profile");
            item = cJSON_CreateNumber(port);
        } else if (!f->has_default) {
            item = cJSON_CreateNull();
        } else if (f->type == PROFILE_TEXT) {
            item = cJSON_CreateString(f->default_text);
        } else if (f->type == PROFILE_BOOL) {
            item = cJSON_CreateBool(f->default_number != 0);
        } else {
            item = cJSON_CreateNumber(f->default_number);
        }
        if (!item)
            return profile_fail(err, PROFILE_DB_ERROR, NULL, "%s", "out of memory");
        cJSON_AddItemToObject(full, f->name, item);
    }
    return PROFILE_OK;
}

/* Copies the known, writable fields of `in` into a new object. */
static cJSON *profile_copy_fields(const cJSON *in)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < PROFILE_N_FIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, profile_fields[i].name);
        if (v)
            cJSON_AddItemToObject(o, profile_fields[i].name, cJSON_Duplicate(v, 1));
    }
    return o;
}

enum profile_result profile_create(struct db *db, const cJSON *in, cJSON **out,
                                   struct profile_error *err)
{
    enum profile_result r = profile_check_input(in, err);
    if (r != PROFILE_OK)
        return r;
    cJSON *full = profile_copy_fields(in);
    if (!full)
        return profile_fail(err, PROFILE_DB_ERROR, NULL, "%s", "out of memory");
    r = profile_fill_defaults(db, full, err);
    if (r == PROFILE_OK)
        r = profile_store(db, 0, full, out, err);
    cJSON_Delete(full);
    return r;
}

enum profile_result profile_update(struct db *db, long long id, const cJSON *in, cJSON **out,
                                   struct profile_error *err)
{
    enum profile_result r = profile_check_input(in, err);
    if (r != PROFILE_OK)
        return r;
    cJSON *current;
    r = profile_get(db, id, &current);
    if (r != PROFILE_OK)
        return profile_fail(err, r, NULL, "%s",
                            r == PROFILE_NOT_FOUND ? "profile not found" : "database error");
    for (size_t i = 0; i < PROFILE_N_FIELDS; i++) {
        const char *name = profile_fields[i].name;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
        if (v)
            cJSON_ReplaceItemInObjectCaseSensitive(current, name, cJSON_Duplicate(v, 1));
    }
    r = profile_store(db, id, current, out, err);
    cJSON_Delete(current);
    return r;
}

enum profile_result profile_delete(struct db *db, long long id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "DELETE FROM profiles WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return PROFILE_DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return PROFILE_DB_ERROR;
    return sqlite3_changes(db->conn) ? PROFILE_OK : PROFILE_NOT_FOUND;
}

enum profile_result profile_duplicate(struct db *db, long long id, const char *new_name,
                                      cJSON **out, struct profile_error *err)
{
    cJSON *src;
    enum profile_result r = profile_get(db, id, &src);
    if (r != PROFILE_OK)
        return profile_fail(err, r, NULL, "%s",
                            r == PROFILE_NOT_FOUND ? "profile not found" : "database error");
    cJSON *copy = profile_copy_fields(src);
    cJSON_Delete(src);
    if (!copy)
        return profile_fail(err, PROFILE_DB_ERROR, NULL, "%s", "out of memory");
    cJSON_ReplaceItemInObjectCaseSensitive(copy, "name", cJSON_CreateString(new_name));
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "port");
    r = profile_check_value(profile_find_field("name"),
                            cJSON_GetObjectItemCaseSensitive(copy, "name"), err);
    if (r == PROFILE_OK) {
        snprintf(err->field, sizeof(err->field), "new_name");
        r = profile_fill_defaults(db, copy, err);
    }
    if (r == PROFILE_OK)
        r = profile_store(db, 0, copy, out, err);
    if (r == PROFILE_INVALID && !strcmp(err->field, "name"))
        snprintf(err->field, sizeof(err->field), "new_name");
    if (r == PROFILE_CONFLICT && !strcmp(err->field, "name"))
        snprintf(err->field, sizeof(err->field), "new_name");
    cJSON_Delete(copy);
    return r;
}
