/* test_auth.c - API key hashing, generation, scopes, storage and the request check. */
#include "auth.h"
#include "db.h"
#include "harness.h"
#include "http.h"

#include <ctype.h>
#include <unistd.h>

static void tmp_db(struct db *db, char *path, size_t len)
{
    snprintf(path, len, "/tmp/mlxm-test-auth-%d.db", (int)getpid());
    unlink(path);
    char err[512] = "";
    if (db_open(db, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "db_open: %s\n", err);
        exit(1);
    }
}

static void drop_db(struct db *db, const char *path)
{
    char p[600];
    db_close(db);
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static void test_hash_known_vectors(void)
{
    char h[AUTH_HASH_HEX_LEN + 1];
    auth_hash_key("abc", h);
    CHECK_STR_EQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    auth_hash_key("", h);
    CHECK_STR_EQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_equal_ct(void)
{
    CHECK(auth_equal_ct("abcdef", "abcdef", 6));
    CHECK(!auth_equal_ct("abcdef", "abcdeg", 6));
    CHECK(!auth_equal_ct("xbcdef", "abcdef", 6));
    CHECK(auth_equal_ct("abcdef", "abcxyz", 3));
}

static void test_generate_format_and_uniqueness(void)
{
    char a[AUTH_KEY_LEN + 1], b[AUTH_KEY_LEN + 1];
    CHECK_INT_EQ(auth_key_generate(a), 0);
    CHECK_INT_EQ(auth_key_generate(b), 0);
    CHECK_INT_EQ(strlen(a), AUTH_KEY_LEN);
    CHECK(!strncmp(a, "mlxm-", 5));
    for (int i = 5; i < AUTH_KEY_LEN; i++)
        CHECK(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
    CHECK(strcmp(a, b) != 0);
}

static void test_scopes(void)
{
    CHECK_INT_EQ(auth_scopes_parse("inference"), AUTH_SCOPE_INFERENCE);
    CHECK_INT_EQ(auth_scopes_parse("admin"), AUTH_SCOPE_ADMIN);
    CHECK_INT_EQ(auth_scopes_parse("inference,admin"), AUTH_SCOPE_INFERENCE | AUTH_SCOPE_ADMIN);
    CHECK_INT_EQ(auth_scopes_parse(""), -1);
    CHECK_INT_EQ(auth_scopes_parse("root"), -1);
    CHECK_INT_EQ(auth_scopes_parse("inference,"), AUTH_SCOPE_INFERENCE);
    CHECK_INT_EQ(auth_scopes_parse("inferenc"), -1);
    CHECK_INT_EQ(auth_scopes_parse("inference,adminx"), -1);
    char buf[64];
    auth_scopes_format(AUTH_SCOPE_INFERENCE | AUTH_SCOPE_ADMIN, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "inference,admin");
    auth_scopes_format(AUTH_SCOPE_ADMIN, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "admin");
}

static void test_store_find_revoke(void)
{
    struct db db;
    char path[256];
    tmp_db(&db, path, sizeof(path));
    CHECK_INT_EQ(auth_keys_active(&db), 0);

    char k1[AUTH_KEY_LEN + 1], k2[AUTH_KEY_LEN + 1], msg[256] = "";
    cJSON *row = NULL;
    CHECK_INT_EQ(auth_key_create(&db, "ci", AUTH_SCOPE_INFERENCE, k1, &row, msg, sizeof(msg)), 0);
    CHECK(row != NULL);
    long long id1 = (long long)cJSON_GetObjectItem(row, "id")->valuedouble;
    CHECK(!strncmp(cJSON_GetObjectItem(row, "prefix")->valuestring, k1, AUTH_KEY_DISPLAY_LEN));
    CHECK(cJSON_GetObjectItem(row, "key") == NULL);
    cJSON_Delete(row);
    CHECK_INT_EQ(auth_key_create(&db, "ops", AUTH_SCOPE_INFERENCE | AUTH_SCOPE_ADMIN, k2, &row, msg,
                                 sizeof(msg)),
                 0);
    long long id2 = (long long)cJSON_GetObjectItem(row, "id")->valuedouble;
    cJSON_Delete(row);
    CHECK_INT_EQ(auth_keys_active(&db), 2);

    long long id = 0;
    int scopes = 0;
    CHECK_INT_EQ(auth_key_find(&db, k1, &id, &scopes), 1);
    CHECK_INT_EQ(id, id1);
    CHECK_INT_EQ(scopes, AUTH_SCOPE_INFERENCE);
    CHECK_INT_EQ(auth_key_find(&db, k2, &id, &scopes), 1);
    CHECK_INT_EQ(id, id2);
    CHECK_INT_EQ(scopes, AUTH_SCOPE_INFERENCE | AUTH_SCOPE_ADMIN);
    char wrong[AUTH_KEY_LEN + 1];
    memcpy(wrong, k1, sizeof(wrong));
    wrong[AUTH_KEY_LEN - 1] = wrong[AUTH_KEY_LEN - 1] == 'a' ? 'b' : 'a';
    CHECK_INT_EQ(auth_key_find(&db, wrong, &id, &scopes), 0);
    CHECK_INT_EQ(auth_key_find(&db, "", &id, &scopes), 0);

    /* The database never holds the key itself, only its hash. */
    char hash[AUTH_HASH_HEX_LEN + 1];
    auth_hash_key(k1, hash);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db.conn, "SELECT key_hash FROM api_keys WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id1);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK_STR_EQ((const char *)sqlite3_column_text(st, 0), hash);
    sqlite3_finalize(st);

    cJSON *list = auth_key_list(&db);
    CHECK_INT_EQ(cJSON_GetArraySize(list), 2);
    char *text = cJSON_PrintUnformatted(list);
    CHECK(text && !strstr(text, k1) && !strstr(text, k2) && !strstr(text, hash));
    free(text);
    cJSON_Delete(list);

    auth_record_request(&db, id1);
    struct http_request req = {.db = &db, .api_key_id = id1};
    auth_record_tokens(&req, 12, 5);
    auth_record_tokens(&req, 3, 1);
    list = auth_key_list(&db);
    cJSON *first = cJSON_GetArrayItem(list, 0);
    CHECK_INT_EQ(cJSON_GetObjectItem(first, "requests")->valuedouble, 1);
    CHECK_INT_EQ(cJSON_GetObjectItem(first, "prompt_tokens")->valuedouble, 15);
    CHECK_INT_EQ(cJSON_GetObjectItem(first, "completion_tokens")->valuedouble, 6);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(first, "last_used_at")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "last_used_at")));
    cJSON_Delete(list);

    CHECK_INT_EQ(auth_key_revoke(&db, id1), 0);
    CHECK_INT_EQ(auth_key_revoke(&db, id1), 1); /* already revoked */
    CHECK_INT_EQ(auth_key_revoke(&db, 9999), 1);
    CHECK_INT_EQ(auth_key_find(&db, k1, &id, &scopes), 0);
    CHECK_INT_EQ(auth_keys_active(&db), 1);
    drop_db(&db, path);
}

/* A request as the worker builds it, without a FastCGI connection (so no
 * headers: the key is always missing). */
static int check_path(struct db *db, struct arena *a, const char *path, long long *key_id)
{
    struct http_request req = {
        .arena = a, .db = db, .method = "GET", .path = path, .api_key_id = -1};
    int rc = auth_check(&req);
    CHECK(rc == 0 || req.status == rc);
    if (key_id)
        *key_id = req.api_key_id;
    http_release(&req);
    arena_reset(a);
    return rc;
}

static void test_check_paths_and_scopes(void)
{
    struct db db;
    char path[256];
    tmp_db(&db, path, sizeof(path));
    struct arena a;
    arena_init(&a, 4096, 0);

    long long kid = -1;
    CHECK_INT_EQ(check_path(&db, &a, "/v1/models", &kid), 0); /* no keys: open */
    CHECK_INT_EQ(kid, 0);
    CHECK_INT_EQ(check_path(&db, &a, "/admin/health", NULL), 0);

    char k[AUTH_KEY_LEN + 1], msg[256] = "";
    cJSON *row = NULL;
    CHECK_INT_EQ(auth_key_create(&db, "t", AUTH_SCOPE_INFERENCE, k, &row, msg, sizeof(msg)), 0);
    cJSON_Delete(row);
    CHECK_INT_EQ(check_path(&db, &a, "/v1/models", NULL), 401);
    CHECK_INT_EQ(check_path(&db, &a, "/v1", NULL), 401);
    CHECK_INT_EQ(check_path(&db, &a, "/v1/messages", NULL), 401);
    CHECK_INT_EQ(check_path(&db, &a, "/admin/status", NULL), 401);
    CHECK_INT_EQ(check_path(&db, &a, "/api/health", NULL), 0);
    CHECK_INT_EQ(check_path(&db, &a, "/api/keys", NULL), 0);
    CHECK_INT_EQ(check_path(&db, &a, "/v1x", NULL), 0);        /* not under /v1/ */
    CHECK_INT_EQ(check_path(&db, &a, "/administer", NULL), 0); /* not under /admin/ */
    CHECK_INT_EQ(check_path(&db, &a, "/metrics", NULL), 0);

    arena_free(&a);
    drop_db(&db, path);
}

int main(void)
{
    RUN(test_hash_known_vectors);
    RUN(test_equal_ct);
    RUN(test_generate_format_and_uniqueness);
    RUN(test_scopes);
    RUN(test_store_find_revoke);
    RUN(test_check_paths_and_scopes);
    return harness_finish();
}
