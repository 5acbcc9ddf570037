/* test_db.c - opening the database, WAL mode and schema migrations. */
#include "db.h"
#include "harness.h"

#include <unistd.h>

static void tmp_db_path(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/mlxm-test-db-%d.db", (int)getpid());
    unlink(buf);
}

static void remove_db(const char *path)
{
    char p[600];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static int query_int(struct db *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static void test_db_fresh_migrates_to_latest(void)
{
    char path[256], err[512] = "";
    tmp_db_path(path, sizeof(path));
    struct db db;
    CHECK_MSG(db_open(&db, path, err, sizeof(err)) == 0, "%s", err);
    CHECK_INT_EQ(query_int(&db, "PRAGMA user_version"), db_schema_version());
    CHECK_INT_EQ(query_int(&db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                                "name IN ('profiles','settings','downloads','api_keys',"
                                "'request_log')"),
                 5);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(db.conn, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK_STR_EQ((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    db_close(&db);
    remove_db(path);
}

static void test_db_reopen_keeps_data(void)
{
    char path[256], err[512] = "";
    tmp_db_path(path, sizeof(path));
    struct db db;
    CHECK(db_open(&db, path, err, sizeof(err)) == 0);
    CHECK(sqlite3_exec(db.conn,
                       "INSERT INTO settings(key, value, updated_at) VALUES ('k', 'v', 'now')",
                       NULL, NULL, NULL) == SQLITE_OK);
    db_close(&db);
    CHECK(db_open(&db, path, err, sizeof(err)) == 0);
    CHECK_INT_EQ(query_int(&db, "SELECT count(*) FROM settings WHERE key='k'"), 1);
    CHECK_INT_EQ(query_int(&db, "PRAGMA user_version"), db_schema_version());
    db_close(&db);
    remove_db(path);
}

static void test_db_newer_schema_refused(void)
{
    char path[256], err[512] = "";
    tmp_db_path(path, sizeof(path));
    sqlite3 *raw;
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", db_schema_version() + 5);
    CHECK(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    struct db db;
    CHECK(db_open(&db, path, err, sizeof(err)) == -1);
    CHECK_MSG(strstr(err, "newer") != NULL, "%s", err);
    remove_db(path);
}

static void test_db_not_a_database(void)
{
    char path[256], err[512] = "";
    tmp_db_path(path, sizeof(path));
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fputs("this is not an sqlite database, just some text that is long enough......", f);
    fclose(f);
    struct db db;
    CHECK(db_open(&db, path, err, sizeof(err)) == -1);
    CHECK(strstr(err, path) != NULL);
    remove_db(path);
    CHECK(db_open(&db, "/nonexistent-dir/x.db", err, sizeof(err)) == -1);
}

int main(void)
{
    RUN(test_db_fresh_migrates_to_latest);
    RUN(test_db_reopen_keeps_data);
    RUN(test_db_newer_schema_refused);
    RUN(test_db_not_a_database);
    return harness_finish();
}
