/*
 * test_pool.c - the model pool and model names against real tiny models
 * (random-weight Qwen3 models written by mkmodel into a temporary state
 * dir, and the aidreams fixture by absolute path).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "cli.h"
#include "db.h"
#include "engine.h"
#include "harness.h"
#include "model_registry.h"
#include "pool.h"
#include "profile.h"
#include "settings.h"

static char tmp_root[256];
static struct app app;
static struct db db;

/* ---- fixture ---------------------------------------------------------- */

static void mk(const char *dir)
{
    char *argv[] = {"mkmodel", "--arch", "qwen3", "--preset",  "tiny",
                    "--dtype", "f32",    "--out", (char *)dir, NULL};
    int saved = dup(1);
    freopen("/dev/null", "w", stdout); /* mkmodel's "wrote ..." line */
    int rc = cli_mkmodel(9, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    if (rc != 0) {
        fprintf(stderr, "mkmodel %s failed\n", dir);
        exit(1);
    }
}

static void setup(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/test_pool.XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        exit(1);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/models", tmp_root);
    mkdir(path, 0700);
    const char *names[] = {"m1", "m2", "m3"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/models/%s", tmp_root, names[i]);
        mk(path);
    }
    /* A folder that is not a model. */
    snprintf(path, sizeof(path), "%s/models/notamodel", tmp_root);
    mkdir(path, 0700);
    /* A Hugging Face cache with one model: models--org--name/snapshots/rev. */
    snprintf(path, sizeof(path), "%s/hub/models--acme--tiny-model/snapshots/abc123", tmp_root);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s/hub/models--acme--tiny-model/refs %s", tmp_root, path);
    if (system(cmd) != 0)
        exit(1);
    mk(path);
    snprintf(path, sizeof(path), "%s/hub/models--acme--tiny-model/refs/main", tmp_root);
    FILE *f = fopen(path, "w");
    fputs("abc123", f);
    fclose(f);

    if (config_defaults(&app.config))
        exit(1);
    snprintf(path, sizeof(path), "%s/hub", tmp_root);
    config_set_string(&app.config.models_dir, path);
    config_set_string(&app.config.state_dir, tmp_root);
    app.config.idle_unload_seconds = 0;
    snprintf(app.db_path, sizeof(app.db_path), "%s/test.db", tmp_root);
    char err[512];
    if (db_open(&db, app.db_path, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

static void teardown(void)
{
    db_close(&db);
    config_free(&app.config);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
}

static struct pool *new_pool(void)
{
    struct pool *p = NULL;
    if (pool_create(&app, &p)) {
        fprintf(stderr, "pool_create failed\n");
        exit(1);
    }
    return p;
}

static void add_profile(const char *json)
{
    cJSON *in = cJSON_Parse(json), *out = NULL;
    struct profile_error perr;
    if (profile_create(&db, in, &out, &perr) != PROFILE_OK) {
        fprintf(stderr, "profile_create: %s: %s\n", perr.field, perr.message);
        exit(1);
    }
    cJSON_Delete(in);
    cJSON_Delete(out);
}

static void set_setting(const char *key, int value)
{
    cJSON *patch = cJSON_CreateObject();
    cJSON_AddNumberToObject(patch, key, value);
    char field[64], msg[256];
    if (settings_update(&db, patch, field, sizeof(field), msg, sizeof(msg))) {
        fprintf(stderr, "settings_update: %s\n", msg);
        exit(1);
    }
    cJSON_Delete(patch);
}

/* 1 when `name` is in the pool, else 0. */
static int is_loaded(struct pool *p, const char *name)
{
    cJSON *st = pool_status(p, name);
    int n = cJSON_GetArraySize(st);
    cJSON_Delete(st);
    return n;
}

static double status_number(struct pool *p, const char *name, const char *key)
{
    cJSON *st = pool_status(p, name);
    const cJSON *o = cJSON_GetArrayItem(st, 0);
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v && o && !strcmp(key, "total_bytes"))
        v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "memory"), key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(st);
    return d;
}

/* ---- names ------------------------------------------------------------ */

static void test_resolve_names(void)
{
    struct registry_model rm;
    struct registry_error re;
    CHECK_INT_EQ(registry_resolve(&db, &app.config, "m1", &rm, &re), 0);
    CHECK_INT_EQ(rm.kind, REGISTRY_STATE_DIR);
    CHECK(strstr(rm.dir, "/models/m1") != NULL);
    CHECK(rm.weight_bytes > 0);
    registry_model_clear(&rm);

    CHECK_INT_EQ(registry_resolve(&db, &app.config, "acme/tiny-model", &rm, &re), 0);
    CHECK_INT_EQ(rm.kind, REGISTRY_HF);
    CHECK(strstr(rm.dir, "snapshots/abc123") != NULL);
    registry_model_clear(&rm);

    char abs_dir[512];
    snprintf(abs_dir, sizeof(abs_dir), "%s/models/m2", tmp_root);
    CHECK_INT_EQ(registry_resolve(&db, &app.config, abs_dir, &rm, &re), 0);
    CHECK_INT_EQ(rm.kind, REGISTRY_PATH);
    registry_model_clear(&rm);

    CHECK_INT_EQ(registry_resolve(&db, &app.config, "profile-one", &rm, &re), 0);
    CHECK_INT_EQ(rm.kind, REGISTRY_PROFILE);
    CHECK(rm.profile != NULL);
    CHECK(strstr(rm.dir, "/models/m3") != NULL);
    registry_model_clear(&rm);

    CHECK_INT_EQ(registry_resolve(&db, &app.config, "nope/missing", &rm, &re), -1);
    CHECK_INT_EQ(re.http_status, 404);
    CHECK_STR_EQ(re.code, "model_not_found");
    CHECK(strstr(re.message, "nope/missing") && strstr(re.message, "/v1/models"));
    CHECK_INT_EQ(registry_resolve(&db, &app.config, "../etc", &rm, &re), -1);
    CHECK_INT_EQ(re.http_status, 404);
    CHECK_INT_EQ(registry_resolve(&db, &app.config, "notamodel", &rm, &re), -1);
    CHECK_INT_EQ(re.http_status, 422);
    CHECK(strstr(re.message, "config.json") != NULL);
    CHECK_INT_EQ(registry_resolve(&db, &app.config, "broken-profile", &rm, &re), -1);
    CHECK_INT_EQ(re.http_status, 404);
    CHECK(strstr(re.message, "broken-profile") != NULL);
}

static void test_list(void)
{
    cJSON *list = registry_list(&db, &app.config);
    int seen_m1 = 0, seen_hub = 0, seen_profile = 0, seen_bad = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        const char *id = cJSON_GetObjectItemCaseSensitive(o, "id")->valuestring;
        const char *kind = cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring;
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(o, "context_length");
        if (!strcmp(id, "m1") && !strcmp(kind, "local") && cJSON_IsNumber(ctx))
            seen_m1 = 1;
        if (!strcmp(id, "acme/tiny-model") && !strcmp(kind, "hf"))
            seen_hub =
                !strcmp(cJSON_GetObjectItemCaseSensitive(o, "owned_by")->valuestring, "acme");
        if (!strcmp(id, "profile-one") && !strcmp(kind, "profile"))
            seen_profile = cJSON_IsNumber(ctx) && ctx->valuedouble == 64;
        if (!strcmp(id, "notamodel"))
            seen_bad = 1;
    }
    CHECK(seen_m1);
    CHECK(seen_hub);
    CHECK(seen_profile);
    CHECK(!seen_bad);
    cJSON_Delete(list);
}

/* ---- acquire / release ------------------------------------------------- */

static void test_acquire_generates(void)
{
    struct pool *p = new_pool();
    struct pool_lease *l;
    struct pool_error err;
    CHECK_INT_EQ(pool_acquire(p, &db, "m1", &l, &err), 0);
    if (!l) {
        pool_free(p);
        return;
    }
    CHECK_STR_EQ(pool_lease_name(l), "m1");
    CHECK(pool_lease_profile(l) == NULL);
    struct engine_model *m = pool_lease_model(l);
    CHECK(m != NULL);
    CHECK(engine_model_info(m)->has_chat_template);
    cJSON *st = pool_status(p, "m1");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(st, 0), "state");
    CHECK_STR_EQ(cJSON_IsString(state) ? state->valuestring : NULL, "ready");
    cJSON_Delete(st);
    struct pool_usage u = {.prompt_tokens = 3, .completion_tokens = 5, .decode_tps = 40};
    pool_release(l, &u);
    CHECK_INT_EQ((int)status_number(p, "m1", "requests_served"), 1);
    CHECK_INT_EQ((int)status_number(p, "m1", "completion_tokens"), 5);
    CHECK_INT_EQ((int)status_number(p, "m1", "leases"), 0);
    /* A profile lease carries the row. */
    CHECK_INT_EQ(pool_acquire(p, &db, "profile-one", &l, &err), 0);
    if (l) {
        const cJSON *row = pool_lease_profile(l);
        CHECK(row && cJSON_GetObjectItemCaseSensitive(row, "context_length")->valuedouble == 64);
        pool_release(l, NULL);
    }
    CHECK_INT_EQ(pool_acquire(p, &db, "no-such-model", &l, &err), -1);
    CHECK_INT_EQ(err.http_status, 404);
    CHECK_STR_EQ(err.code, "model_not_found");
    CHECK_INT_EQ(pool_acquire(p, &db, "notamodel", &l, &err), -1);
    CHECK_INT_EQ(err.http_status, 422);
    pool_free(p);
}

static void test_max_loaded_models(void)
{
    set_setting("max_loaded_models", 1);
    struct pool *p = new_pool();
    struct pool_error err;
    CHECK_INT_EQ(pool_load(p, &db, "m1", NULL, NULL, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, "m2", NULL, NULL, &err), 0);
    CHECK_INT_EQ(is_loaded(p, "m1"), 0);
    CHECK_INT_EQ(is_loaded(p, "m2"), 1);
    /* A leased model is not evicted: the next load is refused instead. */
    struct pool_lease *l;
    CHECK_INT_EQ(pool_acquire(p, &db, "m2", &l, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, "m1", NULL, NULL, &err), -1);
    CHECK_INT_EQ(err.http_status, 503);
    CHECK_STR_EQ(err.code, "too_many_models");
    CHECK(err.retry_after > 0);
    CHECK_INT_EQ(is_loaded(p, "m2"), 1);
    pool_release(l, NULL);
    CHECK_INT_EQ(pool_load(p, &db, "m1", NULL, NULL, &err), 0);
    CHECK_INT_EQ(is_loaded(p, "m2"), 0);
    pool_free(p);
    set_setting("max_loaded_models", 8);
}

int main(void)
{
    harness_shared_dir();
    setup();
    add_profile("{\"name\":\"profile-one\",\"model_path\":\"m3\",\"context_length\":64}");
    add_profile("{\"name\":\"broken-profile\",\"model_path\":\"/nonexistent/dir\"}");
    RUN(test_resolve_names);
    RUN(test_list);
    RUN(test_acquire_generates);
    RUN(test_max_loaded_models);
    teardown();
    return harness_finish();
}
