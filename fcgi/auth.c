#include "auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "db.h"
#include "http.h"
#include "log.h"

static const struct {
    const char *name;
    int bit;
} auth_scope_names[] = {
    {"inference", AUTH_SCOPE_INFERENCE},
    {"admin", AUTH_SCOPE_ADMIN},
};

#define AUTH_N_SCOPES (sizeof(auth_scope_names) / sizeof(auth_scope_names[0]))

/* ---- keys and hashes ---------------------------------------------------- */

static void auth_hex(const unsigned char *raw, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * n] = '\0';
}

void auth_hash_key(const char *key, char out[AUTH_HASH_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(key, strlen(key), md, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        /* A hash that no stored key can have, so a failure never matches. */
        memset(out, 'x', AUTH_HASH_HEX_LEN);
        out[AUTH_HASH_HEX_LEN] = '\0';
        return;
    }
    auth_hex(md, 32, out);
}

int auth_equal_ct(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int auth_key_generate(char out[AUTH_KEY_LEN + 1])
{
    unsigned char raw[20];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, raw, sizeof(raw));
    close(fd);
    if (got != (ssize_t)sizeof(raw))
        return -1;
    memcpy(out, AUTH_KEY_PREFIX, 5);
    auth_hex(raw, sizeof(raw), out + 5);
    return 0;
}

int auth_scopes_parse(const char *text)
{
    int scopes = 0;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, ",");
        size_t i = 0;
        for (; i < AUTH_N_SCOPES; i++)
            if (strlen(auth_scope_names[i].name) == n && !strncmp(p, auth_scope_names[i].name, n))
                break;
        if (i == AUTH_N_SCOPES)
            return -1;
        scopes |= auth_scope_names[i].bit;
        p += n;
        if (*p == ',')
            p++;
    }
    return scopes ? scopes : -1;
}

void auth_scopes_format(int scopes, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < AUTH_N_SCOPES; i++) {
        if (!(scopes & auth_scope_names[i].bit))
            continue;
        int n = snprintf(out + o, len - o, "%s%s", o ? "," : "", auth_scope_names[i].name);
        if (n < 0 || (size_t)n >= len - o)
            return;
        o += (size_t)n;
    }
}

/* ---- database ----------------------------------------------------------- */

int auth_keys_active(struct db *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
}

int auth_key_find(struct db *db, const char *key, long long *id, int *scopes)
{
    char hash[AUTH_HASH_HEX_LEN + 1];
    auth_hash_key(key, hash);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT id, key_hash, scopes FROM api_keys WHERE revoked_at IS NULL", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    /* Every row is compared, with no early exit, so the time taken does not
     * say how close the presented key came to a stored one. */
    int found = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(st, 1);
        int hlen = sqlite3_column_bytes(st, 1);
        if (!h || hlen != AUTH_HASH_HEX_LEN)
            continue;
        if (auth_equal_ct(h, hash, AUTH_HASH_HEX_LEN) && !found) {
            found = 1;
            *id = sqlite3_column_int64(st, 0);
            const unsigned char *s = sqlite3_column_text(st, 2);
            int sc = s ? auth_scopes_parse((const char *)s) : -1;
            *scopes = sc < 0 ? 0 : sc;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? found : -1;
}

static cJSON *auth_row_json(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    cJSON_AddStringToObject(o, "name", (const char *)sqlite3_column_text(st, 1));
    cJSON_AddStringToObject(o, "prefix", (const char *)sqlite3_column_text(st, 2));
    cJSON *scopes = cJSON_AddArrayToObject(o, "scopes");
    const unsigned char *s = sqlite3_column_text(st, 3);
    int bits = s ? auth_scopes_parse((const char *)s) : 0;
    for (size_t i = 0; scopes && bits > 0 && i < AUTH_N_SCOPES; i++)
        if (bits & auth_scope_names[i].bit)
            cJSON_AddItemToArray(scopes, cJSON_CreateString(auth_scope_names[i].name));
    cJSON_AddNumberToObject(o, "requests", (double)sqlite3_column_int64(st, 4));
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)sqlite3_column_int64(st, 5));
    cJSON_AddNumberToObject(o, "completion_tokens", (double)sqlite3_column_int64(st, 6));
    static const char *const stamps[] = {"created_at", "last_used_at", "revoked_at"};
    for (int i = 0; i < 3; i++) {
        const unsigned char *v = sqlite3_column_text(st, 7 + i);
        if (v)
            cJSON_AddStringToObject(o, stamps[i], (const char *)v);
        else
            cJSON_AddNullToObject(o, stamps[i]);
    }
    /* NULL = every model; otherwise the newline-separated allow-list. */
    const char *models = (const char *)sqlite3_column_text(st, 10);
    if (!models) {
        cJSON_AddNullToObject(o, "models");
    } else {
        cJSON *arr = cJSON_AddArrayToObject(o, "models");
        for (const char *p = models; arr && *p;) {
            size_t n = strcspn(p, "\n");
            char name[AUTH_MODEL_NAME_MAX + 1];
            snprintf(name, sizeof(name), "%.*s", (int)n, p);
            cJSON_AddItemToArray(arr, cJSON_CreateString(name));
            p += n;
            if (*p)
                p++;
        }
    }
    return o;
}

#define AUTH_ROW_COLUMNS                                                                           \
    "id, name, prefix, scopes, requests, prompt_tokens, completion_tokens, created_at, "           \
    "last_used_at, revoked_at, models"

int auth_key_create(struct db *db, const char *name, int scopes, char key_out[AUTH_KEY_LEN + 1],
                    cJSON **row, char *msg, size_t msg_len)
{
    *row = NULL;
    if (auth_key_generate(key_out)) {
        snprintf(msg, msg_len, "cannot read /dev/urandom to make a key");
        return -1;
    }
    char hash[AUTH_HASH_HEX_LEN + 1], prefix[AUTH_KEY_DISPLAY_LEN + 1], scope_text[64], now[32];
    auth_hash_key(key_out, hash);
    memcpy(prefix, key_out, AUTH_KEY_DISPLAY_LEN);
    prefix[AUTH_KEY_DISPLAY_LEN] = '\0';
    auth_scopes_format(scopes, scope_text, sizeof(scope_text));
    db_now(now, sizeof(now));
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at) "
                           "VALUES (?, ?, ?, ?, ?) RETURNING " AUTH_ROW_COLUMNS,
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(msg, msg_len, "database error: %s", sqlite3_errmsg(db->conn));
        return -1;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, prefix, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, scope_text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        *row = auth_row_json(st);
    else
        snprintf(msg, msg_len, "database error: %s", sqlite3_errmsg(db->conn));
    sqlite3_finalize(st);
    if (!*row && !msg[0])
        snprintf(msg, msg_len, "out of memory");
    return *row ? 0 : -1;
}

cJSON *auth_key_list(struct db *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "SELECT " AUTH_ROW_COLUMNS " FROM api_keys ORDER BY id", -1,
                           &st, NULL) != SQLITE_OK)
        return NULL;
    cJSON *list = cJSON_CreateArray();
    int rc;
    while (list && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = auth_row_json(st);
        if (!o) {
            cJSON_Delete(list);
            list = NULL;
            break;
        }
        cJSON_AddItemToArray(list, o);
    }
    if (list && rc != SQLITE_DONE) {
        cJSON_Delete(list);
        list = NULL;
    }
    sqlite3_finalize(st);
    return list;
}

int auth_key_revoke(struct db *db, long long id)
{
    char now[32];
    db_now(now, sizeof(now));
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    return sqlite3_changes(db->conn) == 1 ? 0 : 1;
}

int auth_key_set_models(struct db *db, long long id, const char *const *models, int n, char *msg,
                        size_t msg_len)
{
    if (n > AUTH_MAX_MODELS) {
        snprintf(msg, msg_len, "at most %d models per key", AUTH_MAX_MODELS);
        return -1;
    }
    size_t total = 1;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(models[i]);
        if (!len || len > AUTH_MODEL_NAME_MAX || strchr(models[i], '\n')) {
            snprintf(msg, msg_len, "model names must be 1 to %d bytes without newlines",
                     AUTH_MODEL_NAME_MAX);
            return -1;
        }
        total += len + 1;
    }
    char *list = NULL;
    if (models) {
        list = malloc(total);
        if (!list) {
            snprintf(msg, msg_len, "out of memory");
            return -1;
        }
        size_t o = 0;
        for (int i = 0; i < n; i++)
            o += (size_t)sprintf(list + o, "%s%s", i ? "\n" : "", models[i]);
        list[o] = '\0';
    }
    sqlite3_stmt *st;
    int rc = -1;
    if (sqlite3_prepare_v2(db->conn, "UPDATE api_keys SET models = ? WHERE id = ?", -1, &st,
                           NULL) == SQLITE_OK) {
        if (list)
            sqlite3_bind_text(st, 1, list, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, id);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = sqlite3_changes(db->conn) == 1 ? 0 : 1;
        sqlite3_finalize(st);
    }
    if (rc < 0)
        snprintf(msg, msg_len, "database error: %s", sqlite3_errmsg(db->conn));
    else if (rc > 0)
        snprintf(msg, msg_len, "no API key with id %lld", id);
    free(list);
    return rc;
}

int auth_key_allows_model(struct db *db, long long id, const char *model)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "SELECT models FROM api_keys WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), allowed = -1;
    if (rc == SQLITE_ROW) {
        const char *list = (const char *)sqlite3_column_text(st, 0);
        allowed = list == NULL;
        size_t mlen = model ? strlen(model) : 0;
        for (const char *p = list; p && *p && !allowed && model;) {
            size_t n = strcspn(p, "\n");
            allowed = n == mlen && !memcmp(p, model, n);
            p += n;
            if (*p)
                p++;
        }
    } else if (rc == SQLITE_DONE) {
        allowed = 0;
    }
    sqlite3_finalize(st);
    return allowed;
}

/* Runs a counter UPDATE; usage accounting never fails the request it counts. */
static void auth_run_update(struct db *db, sqlite3_stmt *st)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        log_msg(LOG_LEVEL_WARN, "cannot record API key usage: %s", sqlite3_errmsg(db->conn));
    sqlite3_finalize(st);
}

void auth_record_request(struct db *db, long long id)
{
    char now[32];
    db_now(now, sizeof(now));
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "UPDATE api_keys SET requests = requests + 1, last_used_at = ? "
                           "WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    auth_run_update(db, st);
}

void auth_record_tokens(struct http_request *req, int prompt_tokens, int completion_tokens)
{
    req->tokens_recorded = 1;
    if (req->api_key_id <= 0 || !req->db)
        return;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(req->db->conn,
                           "UPDATE api_keys SET prompt_tokens = prompt_tokens + ?, "
                           "completion_tokens = completion_tokens + ? WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, prompt_tokens);
    sqlite3_bind_int64(st, 2, completion_tokens);
    sqlite3_bind_int64(st, 3, req->api_key_id);
    auth_run_update(req->db, st);
}

/* ---- the request check -------------------------------------------------- */

/* The scope a path needs, or 0 when it is open to everyone.  With
 * require_api_key the dashboard API and /metrics need the admin scope too;
 * the health check stays open for load balancers. */
static int auth_path_scope(const char *path, int protect)
{
    if (!strncmp(path, "/v1", 3) && (path[3] == '/' || path[3] == '\0'))
        return AUTH_SCOPE_INFERENCE;
    if (!strncmp(path, "/admin", 6) && (path[6] == '/' || path[6] == '\0'))
        return AUTH_SCOPE_ADMIN;
    if (protect && !strcmp(path, "/api/health"))
        return 0;
    if (protect && ((!strncmp(path, "/api", 4) && (path[4] == '/' || path[4] == '\0')) ||
                    !strcmp(path, "/metrics")))
        return AUTH_SCOPE_ADMIN;
    return 0;
}

static int auth_is_anthropic_path(const char *path)
{
    return !strncmp(path, "/v1/messages", 12) && (path[12] == '/' || path[12] == '\0');
}

static int auth_fail(struct http_request *req, int status, const char *msg)
{
    if (auth_is_anthropic_path(req->path))
        return http_send_anthropic_error(req, status, NULL, "%s", msg);
    if (status == 401)
        http_add_header(req, "WWW-Authenticate: Bearer");
    return http_send_error(req, status, status == 401 ? "invalid_api_key" : NULL, NULL, "%s", msg);
}

/* The key the client sent (x-api-key, else a Bearer token), or NULL. */
static const char *auth_presented_key(const struct http_request *req)
{
    const char *k = http_param(req, "HTTP_X_API_KEY");
    if (k && *k)
        return k;
    const char *h = http_param(req, "HTTP_AUTHORIZATION");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

int auth_check(struct http_request *req)
{
    req->api_key_id = 0;
    int protect = req->app && req->app->config.require_api_key;
    int need = auth_path_scope(req->path, protect);
    if (!need)
        return 0;
    int active = auth_keys_active(req->db);
    if (active < 0)
        return auth_fail(req, 500, "cannot read the API keys");
    if (active == 0 && !protect)
        return 0;
    const char *key = auth_presented_key(req);
    if (!key)
        return auth_fail(req, 401,
                         active ? "an API key is required: send 'Authorization: Bearer KEY' or "
                                  "'x-api-key: KEY'"
                                : "an API key is required and none exists yet: create one with "
                                  "'mlx-manager keys create NAME --scopes inference,admin'");
    long long id = 0;
    int scopes = 0;
    int found = auth_key_find(req->db, key, &id, &scopes);
    if (found < 0)
        return auth_fail(req, 500, "cannot read the API keys");
    if (!found)
        return auth_fail(req, 401, "invalid API key");
    if (!(scopes & need))
        return auth_fail(req, 403,
                         need == AUTH_SCOPE_ADMIN ? "this API key lacks the 'admin' scope"
                                                  : "this API key lacks the 'inference' scope");
    req->api_key_id = id;
    auth_record_request(req->db, id);
    return 0;
}

int auth_check_model(struct http_request *req, const char *model)
{
    if (req->api_key_id <= 0)
        return 0;
    int allowed = auth_key_allows_model(req->db, req->api_key_id, model);
    if (allowed < 0)
        return auth_fail(req, 500, "cannot read the API keys");
    if (allowed)
        return 0;
    if (!model)
        return auth_fail(req, 403,
                         "this API key is limited to some models and the request "
                         "names none");
    char msg[AUTH_MODEL_NAME_MAX + 64];
    snprintf(msg, sizeof(msg), "this API key may not use the model '%s'", model);
    return auth_fail(req, 403, msg);
}
