/*
 * auth.h - API keys: generation, hashing, lookup, usage counters, and the
 * check every request passes before it is routed.
 *
 * Keys look like "mlxm-" + 40 lowercase hex digits from /dev/urandom.  Only
 * their SHA-256 (hex) is stored, in the api_keys table, with a short prefix
 * for display; a full key exists only in the response that created it.
 * Lookups hash the presented key and compare it with every unrevoked hash in
 * constant time, so neither timing nor logs reveal anything about keys.
 *
 * While no unrevoked key exists the server is open (a fresh install).  Once
 * one exists, /v1/... needs a key with the `inference` scope and /admin/...
 * one with the `admin` scope, sent as `Authorization: Bearer KEY` or
 * `x-api-key: KEY`.  With the require_api_key setting (a daemon reachable
 * beyond loopback) keys are needed even before one exists, and /api/...
 * (but /api/health) and /metrics need the `admin` scope as well.
 *
 * A key may be limited to a list of model names (the `models` column,
 * newline-separated; NULL = every model): inference requests naming another
 * model get 403.
 *
 * Functions take the calling thread's database connection; results are
 * plain values or new cJSON trees owned by the caller.  Thread-safe.
 */
#ifndef FCGI_AUTH_H
#define FCGI_AUTH_H

#include <cJSON.h>
#include <stddef.h>

struct db;
struct http_request;

#define AUTH_KEY_PREFIX "mlxm-"
#define AUTH_KEY_LEN (5 + 40)   /* "mlxm-" + 40 hex digits */
#define AUTH_KEY_DISPLAY_LEN 13 /* "mlxm-" + the first 8 hex digits */
#define AUTH_HASH_HEX_LEN 64    /* SHA-256 as hex */

/* Scope bits; stored as a comma-separated list ("inference,admin"). */
enum auth_scope {
    AUTH_SCOPE_INFERENCE = 1 << 0, /* /v1/... */
    AUTH_SCOPE_ADMIN = 1 << 1,     /* /admin/... */
};

/* Writes the SHA-256 of `key` as 64 lowercase hex digits + NUL into out. */
void auth_hash_key(const char *key, char out[AUTH_HASH_HEX_LEN + 1]);

/* 1 when the n bytes at a and b are equal; the time taken depends on n only. */
int auth_equal_ct(const void *a, const void *b, size_t n);

/* Parses "inference,admin" into scope bits; -1 for an unknown name or an
 * empty list. */
int auth_scopes_parse(const char *text);

/* Writes the scope names of `scopes` as "inference,admin" into out. */
void auth_scopes_format(int scopes, char *out, size_t len);

/* Draws a new key from /dev/urandom into out (AUTH_KEY_LEN + 1 bytes); 0 or -1. */
int auth_key_generate(char out[AUTH_KEY_LEN + 1]);

/* Number of unrevoked keys, or -1 on a database error. */
int auth_keys_active(struct db *db);

/*
 * Looks the presented key up.  Returns 1 with *id and *scopes of the
 * matching unrevoked key, 0 when no unrevoked key matches, -1 on a database
 * error.
 */
int auth_key_find(struct db *db, const char *key, long long *id, int *scopes);

/*
 * Creates a key called `name` with `scopes`.  On success returns 0, writes
 * the full key into key_out and sets *row to the stored row (as
 * auth_key_list shows it, without the secret).  -1 on error (msg filled).
 */
int auth_key_create(struct db *db, const char *name, int scopes, char key_out[AUTH_KEY_LEN + 1],
                    cJSON **row, char *msg, size_t msg_len);

/* Every key, newest last, without secrets: id, name, prefix, scopes (array),
 * counters, created_at, last_used_at, revoked_at, models (array, or null
 * for every model).  NULL on error. */
cJSON *auth_key_list(struct db *db);

/* Revokes key `id`: 0, 1 when there is no such unrevoked key, -1 on error. */
int auth_key_revoke(struct db *db, long long id);

#define AUTH_MAX_MODELS 64
#define AUTH_MODEL_NAME_MAX 256

/*
 * Limits key `id` to the n model names in `models` (NULL: every model
 * again).  Returns 0, 1 when there is no such key, -1 on an invalid name
 * or a database error (msg filled in every non-zero case).
 */
int auth_key_set_models(struct db *db, long long id, const char *const *models, int n, char *msg,
                        size_t msg_len);

/* 1 when key `id` may use `model` (NULL names none), 0 when not (or there
 * is no such key), -1 on a database error. */
int auth_key_allows_model(struct db *db, long long id, const char *model);

/*
 * The model check of an inference request, after auth_check(): returns 0
 * when the request's key (if any) may use `model`, or the status of the
 * 403/500 error already sent in the caller's protocol format.
 */
int auth_check_model(struct http_request *req, const char *model);

/* Counts one request against key `id` and stamps last_used_at. */
void auth_record_request(struct db *db, long long id);

/* Adds a finished generation's token counts to the request's key (no-op
 * when the request was not authenticated by a key) and marks the request:
 * the server records the totals of every generating request whose handler
 * did not call this itself. */
void auth_record_tokens(struct http_request *req, int prompt_tokens, int completion_tokens);

/*
 * The check the server applies before routing: returns 0 when the request
 * may proceed (req->api_key_id set to the key used, 0 for none), or the
 * HTTP status of the error already sent (401 missing/unknown key, 403
 * missing scope, 500 database error), in Anthropic's error format for
 * /v1/messages... and OpenAI's elsewhere.
 */
int auth_check(struct http_request *req);

#endif
