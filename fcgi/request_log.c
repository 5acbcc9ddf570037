#include "request_log.h"

#include <sqlite3.h>
#include <stdatomic.h>

#include "db.h"

/* Prune once per this many inserts (per process): cheap, and keeps the
 * table near REQUEST_LOG_KEEP rows. */
#define REQUEST_LOG_PRUNE_EVERY 1000

static atomic_uint request_log_inserts;

static void request_log_prune(struct db *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "DELETE FROM request_log WHERE id <= "
                           "(SELECT MAX(id) FROM request_log) - ?",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int(st, 1, REQUEST_LOG_KEEP);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

int request_log_insert(struct db *db, const struct request_log_row *row)
{
    char now[32];
    db_now(now, sizeof(now));
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "INSERT INTO request_log (ts, request_id, method, path, status, model, "
                           "prompt_tokens, completion_tokens, ttft_ms, duration_ms, "
                           "tokens_per_second, api_key_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, row->request_id ? row->request_id : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, row->method ? row->method : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, row->path ? row->path : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, row->status);
    if (row->model)
        sqlite3_bind_text(st, 6, row->model, -1, SQLITE_TRANSIENT);
    if (row->has_usage) {
        sqlite3_bind_int(st, 7, row->prompt_tokens);
        sqlite3_bind_int(st, 8, row->completion_tokens);
        sqlite3_bind_double(st, 9, row->ttft_ms);
        sqlite3_bind_double(st, 11, row->tokens_per_second);
    }
    sqlite3_bind_double(st, 10, row->duration_ms);
    if (row->api_key_id > 0)
        sqlite3_bind_int64(st, 12, row->api_key_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    if (atomic_fetch_add(&request_log_inserts, 1) % REQUEST_LOG_PRUNE_EVERY ==
        REQUEST_LOG_PRUNE_EVERY - 1)
        request_log_prune(db);
    return 0;
}

cJSON *request_log_recent(struct db *db, int limit)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT id, ts, request_id, method, path, status, model, "
                           "prompt_tokens, completion_tokens, ttft_ms, duration_ms, "
                           "tokens_per_second, api_key_id FROM request_log "
                           "ORDER BY id DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int(st, 1, limit);
    cJSON *arr = cJSON_CreateArray();
    int rc;
    while (arr && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(arr, o);
        int n = sqlite3_column_count(st);
        for (int i = 0; i < n; i++) {
            const char *name = sqlite3_column_name(st, i);
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER:
                cJSON_AddNumberToObject(o, name, (double)sqlite3_column_int64(st, i));
                break;
            case SQLITE_FLOAT:
                cJSON_AddNumberToObject(o, name, sqlite3_column_double(st, i));
                break;
            case SQLITE_TEXT:
                cJSON_AddStringToObject(o, name, (const char *)sqlite3_column_text(st, i));
                break;
            default: cJSON_AddNullToObject(o, name);
            }
        }
    }
    sqlite3_finalize(st);
    return arr;
}
