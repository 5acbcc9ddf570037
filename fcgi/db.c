/*
 * db.c - connection setup and the migration list.
 *
 * Migrations are append-only: migration N brings user_version from N-1 to
 * N.  Never edit a released migration; add a new one.
 */
#include "db.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const db_migrations[] = {
    /* 1: the initial schema */
    "CREATE TABLE profiles ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  model_path TEXT NOT NULL,"
    "  model_type TEXT NOT NULL DEFAULT 'lm',"
    "  port INTEGER NOT NULL UNIQUE,"
    "  host TEXT NOT NULL DEFAULT '127.0.0.1',"
    "  context_length INTEGER,"
    "  max_concurrency INTEGER NOT NULL DEFAULT 1,"
    "  queue_timeout INTEGER NOT NULL DEFAULT 300,"
    "  queue_size INTEGER NOT NULL DEFAULT 100,"
    "  tool_call_parser TEXT,"
    "  reasoning_parser TEXT,"
    "  enable_auto_tool_choice INTEGER NOT NULL DEFAULT 0,"
    "  trust_remote_code INTEGER NOT NULL DEFAULT 0,"
    "  chat_template_file TEXT,"
    "  system_prompt TEXT,"
    "  temperature REAL,"
    "  top_p REAL,"
    "  top_k INTEGER,"
    "  min_p REAL,"
    "  max_tokens INTEGER,"
    "  repetition_penalty REAL,"
    "  presence_penalty REAL,"
    "  frequency_penalty REAL,"
    "  seed INTEGER,"
    "  log_level TEXT NOT NULL DEFAULT 'info',"
    "  auto_start INTEGER NOT NULL DEFAULT 0,"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE TABLE downloads ("
    "  id TEXT PRIMARY KEY,"
    "  model_id TEXT NOT NULL,"
    "  revision TEXT NOT NULL DEFAULT 'main',"
    "  status TEXT NOT NULL,"
    "  bytes_done INTEGER NOT NULL DEFAULT 0,"
    "  bytes_total INTEGER,"
    "  current_file TEXT,"
    "  error TEXT,"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  prefix TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  scopes TEXT NOT NULL DEFAULT 'inference',"
    "  models TEXT,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  created_at TEXT NOT NULL,"
    "  last_used_at TEXT,"
    "  revoked_at TEXT);"
    "CREATE TABLE request_log ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ts TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  model TEXT,"
    "  prompt_tokens INTEGER,"
    "  completion_tokens INTEGER,"
    "  cached_tokens INTEGER,"
    "  ttft_ms REAL,"
    "  duration_ms REAL NOT NULL,"
    "  tokens_per_second REAL,"
    "  api_key_id INTEGER);"
    "CREATE INDEX request_log_ts ON request_log(ts);",
    /* 2: how long a profile's model stays loaded when idle */
    "ALTER TABLE profiles ADD COLUMN keep_alive INTEGER;",
};

#define DB_N_MIGRATIONS ((int)(sizeof(db_migrations) / sizeof(db_migrations[0])))

int db_schema_version(void)
{
    return DB_N_MIGRATIONS;
}

void db_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int db_exec(struct db *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db->conn, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db->conn));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int db_user_version(struct db *db, int *version)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (!rc)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static int db_migrate(struct db *db, const char *path, char *err, size_t errlen)
{
    char msg[512];
    /* BEGIN IMMEDIATE serialises concurrent first starts of several workers. */
    if (db_exec(db, "BEGIN IMMEDIATE", msg, sizeof(msg))) {
        snprintf(err, errlen, "%s: cannot start migration: %s", path, msg);
        return -1;
    }
    int version;
    if (db_user_version(db, &version)) {
        db_exec(db, "ROLLBACK", msg, sizeof(msg));
        snprintf(err, errlen, "%s: cannot read schema version: %s", path, sqlite3_errmsg(db->conn));
        return -1;
    }
    if (version > DB_N_MIGRATIONS) {
        db_exec(db, "ROLLBACK", msg, sizeof(msg));
        snprintf(err, errlen,
                 "%s: schema version %d is newer than this build knows (%d); refusing to "
                 "touch it",
                 path, version, DB_N_MIGRATIONS);
        return -1;
    }
    for (int v = version; v < DB_N_MIGRATIONS; v++) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        if (db_exec(db, db_migrations[v], msg, sizeof(msg)) ||
            db_exec(db, pragma, msg, sizeof(msg))) {
            char ignored[64];
            db_exec(db, "ROLLBACK", ignored, sizeof(ignored));
            snprintf(err, errlen, "%s: migration %d failed: %s", path, v + 1, msg);
            return -1;
        }
    }
    if (db_exec(db, "COMMIT", msg, sizeof(msg))) {
        snprintf(err, errlen, "%s: cannot commit migration: %s", path, msg);
        return -1;
    }
    return 0;
}

int db_open(struct db *db, const char *path, char *err, size_t errlen)
{
    db->conn = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db->conn, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open database: %s", path,
                 db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
        db_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db->conn, 5000);
    char msg[256];
    if (db_exec(db, "PRAGMA journal_mode=WAL", msg, sizeof(msg)) ||
        db_exec(db, "PRAGMA foreign_keys=ON", msg, sizeof(msg)) ||
        db_exec(db, "PRAGMA synchronous=NORMAL", msg, sizeof(msg))) {
        snprintf(err, errlen, "%s: %s", path, msg);
        db_close(db);
        return -1;
    }
    if (db_migrate(db, path, err, errlen)) {
        db_close(db);
        return -1;
    }
    return 0;
}

void db_close(struct db *db)
{
    if (db->conn)
        sqlite3_close(db->conn);
    db->conn = NULL;
}
