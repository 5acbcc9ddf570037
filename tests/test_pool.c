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

static void mk_argv(int argc, char **argv)
{
    /* Keep mkmodel's "wrote ..." line out of the test output. */
    fflush(stdout);
    int saved = dup(1);
    if (!freopen("/dev/null", "w", stdout))
        exit(1);
    int rc = cli_mkmodel(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    if (rc != 0) {
        fprintf(stderr, "mkmodel %s failed\n", argv[argc - 1]);
        exit(1);
    }
}

static void mk(const char *dir)
{
    char *argv[] = {"mkmodel", "--arch", "qwen3", "--preset",  "tiny",
                    "--dtype", "f32",    "--out", (char *)dir, NULL};
    mk_argv(9, argv);
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
    /* A model no small budget holds (about 11 MB of weights). */
    snprintf(path, sizeof(path), "%s/models/big", tmp_root);
    char *big[] = {"mkmodel", "--arch",   "qwen3", "--preset", "tiny", "--hidden", "256", "--ffn",
                   "512",     "--layers", "4",     "--dtype",  "f32",  "--out",    path,  NULL};
    mk_argv(15, big);
    /* Valid config, unreadable weights: the engine's load fails. */
    char cmd0[1024];
    snprintf(cmd0, sizeof(cmd0),
             "cp -r %s/models/m1 %s/models/corrupt && "
             "echo garbage-not-safetensors > %s/models/corrupt/model.safetensors",
             tmp_root, tmp_root, tmp_root);
    if (system(cmd0) != 0)
        exit(1);
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

/* ---- single flight ----------------------------------------------------- */

struct racer {
    struct pool *p;
    const char *name;
    pthread_barrier_t *barrier;
    struct pool_lease *lease;
    struct pool_error err;
    int rc;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    struct db mydb;
    char err[256];
    if (db_open(&mydb, app.db_path, err, sizeof(err))) {
        r->rc = -2;
        return NULL;
    }
    pthread_barrier_wait(r->barrier);
    r->rc = pool_acquire(r->p, &mydb, r->name, &r->lease, &r->err);
    db_close(&mydb);
    return NULL;
}

/* Starts n threads acquiring `name` at once and joins them. */
static void race(struct pool *p, const char *name, struct racer *rs, int n)
{
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)n);
    pthread_t th[16];
    for (int i = 0; i < n; i++) {
        rs[i] = (struct racer){.p = p, .name = name, .barrier = &barrier};
        pthread_create(&th[i], NULL, racer_main, &rs[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
}

static void test_single_flight(void)
{
    struct pool *p = new_pool();
    struct racer rs[6];
    race(p, "m2", rs, 6);
    struct engine_model *first = rs[0].lease ? pool_lease_model(rs[0].lease) : NULL;
    for (int i = 0; i < 6; i++) {
        CHECK_INT_EQ(rs[i].rc, 0);
        CHECK(rs[i].lease && pool_lease_model(rs[i].lease) == first);
    }
    cJSON *st = pool_status(p, NULL);
    CHECK_INT_EQ(cJSON_GetArraySize(st), 1);
    cJSON_Delete(st);
    CHECK_INT_EQ((int)status_number(p, "m2", "leases"), 6);
    for (int i = 0; i < 6; i++)
        pool_release(rs[i].lease, NULL);
    CHECK_INT_EQ((int)status_number(p, "m2", "requests_served"), 6);

    /* A failing load fails every waiter, and is tried afresh next time. */
    race(p, "corrupt", rs, 4);
    for (int i = 0; i < 4; i++) {
        CHECK_INT_EQ(rs[i].rc, -1);
        CHECK_INT_EQ(rs[i].err.http_status, 422);
        CHECK(strstr(rs[i].err.message, "corrupt") != NULL);
    }
    CHECK_INT_EQ(is_loaded(p, "corrupt"), 0);
    pool_free(p);
}

/* ---- memory budget ----------------------------------------------------- */

static void touch(struct pool *p, const char *name)
{
    struct pool_lease *l;
    struct pool_error err;
    if (pool_acquire(p, &db, name, &l, &err) == 0)
        pool_release(l, NULL);
    else
        fprintf(stderr, "  touch %s: %s\n", name, err.message);
}

/* Sets the budget to `bytes` through the memory total it is a share of. */
static void set_budget(struct pool *p, double bytes)
{
    pool_set_memory_total(p, (unsigned long long)(bytes * 100.0 / app.config.memory_limit_percent));
}

/* Bytes one of the p1..p3 profiles takes once loaded. */
static double profile_model_bytes(void)
{
    struct pool *p = new_pool();
    struct pool_error err;
    double x = -1;
    if (pool_load(p, &db, "p1", NULL, NULL, &err) == 0)
        x = status_number(p, "p1", "total_bytes");
    pool_free(p);
    return x;
}

static void test_budget_lru_and_pin(void)
{
    double x = profile_model_bytes();
    CHECK(x > 0);
    struct pool *p = new_pool();
    set_budget(p, 2.5 * x);
    struct pool_memory mem;
    pool_memory(p, &db, &mem);
    CHECK(mem.budget_bytes > 2.4 * x && mem.budget_bytes < 2.6 * x);
    struct pool_error err;
    CHECK_INT_EQ(pool_load(p, &db, "p1", NULL, NULL, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, "p2", NULL, NULL, &err), 0);
    touch(p, "p1"); /* p2 is now the least recently used */
    CHECK_INT_EQ(pool_load(p, &db, "p3", NULL, NULL, &err), 0);
    CHECK_INT_EQ(is_loaded(p, "p1"), 1);
    CHECK_INT_EQ(is_loaded(p, "p2"), 0);
    CHECK_INT_EQ(is_loaded(p, "p3"), 1);

    /* Pinned p1 is older than p3, yet p3 goes. */
    struct pool_load_opts pin = {.pin = 1, .keep_alive = -2};
    CHECK_INT_EQ(pool_load(p, &db, "p1", &pin, NULL, &err), 0);
    cJSON *st = pool_status(p, "p1");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(st, 0), "pinned")));
    cJSON_Delete(st);
    touch(p, "p3");
    CHECK_INT_EQ(pool_load(p, &db, "p2", NULL, NULL, &err), 0);
    CHECK_INT_EQ(is_loaded(p, "p1"), 1);
    CHECK_INT_EQ(is_loaded(p, "p2"), 1);
    CHECK_INT_EQ(is_loaded(p, "p3"), 0);
    pool_memory(p, &db, &mem);
    CHECK(mem.used_bytes <= mem.budget_bytes);
    CHECK_INT_EQ(mem.loaded_models, 2);
    pool_free(p);
}

static void test_refused_before_eviction(void)
{
    double x = profile_model_bytes();
    struct pool *p = new_pool();
    set_budget(p, 2.5 * x);
    struct pool_error err;
    CHECK_INT_EQ(pool_load(p, &db, "p1", NULL, NULL, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, "p2", NULL, NULL, &err), 0);
    /* "big" can never fit: refused, and the idle models stay. */
    CHECK_INT_EQ(pool_load(p, &db, "big", NULL, NULL, &err), -1);
    CHECK_INT_EQ(err.http_status, 507);
    CHECK_STR_EQ(err.code, "insufficient_memory");
    CHECK(strstr(err.message, "big") && strstr(err.message, "budget"));
    CHECK_INT_EQ(is_loaded(p, "p1"), 1);
    CHECK_INT_EQ(is_loaded(p, "p2"), 1);
    pool_free(p);
}

static void test_lease_prevents_eviction(void)
{
    double x = profile_model_bytes();
    struct pool *p = new_pool();
    set_budget(p, 1.5 * x);
    struct pool_error err;
    struct pool_lease *l;
    CHECK_INT_EQ(pool_acquire(p, &db, "p1", &l, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, "p2", NULL, NULL, &err), -1);
    CHECK_INT_EQ(err.http_status, 507);
    CHECK(strstr(err.message, "p1 (busy)") != NULL);
    CHECK_INT_EQ(is_loaded(p, "p1"), 1);
    pool_release(l, NULL);
    CHECK_INT_EQ(pool_load(p, &db, "p2", NULL, NULL, &err), 0);
    CHECK_INT_EQ(is_loaded(p, "p1"), 0);
    CHECK_INT_EQ(is_loaded(p, "p2"), 1);
    pool_free(p);
}

/* ---- queues ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *acquire_main(void *arg)
{
    struct racer *r = arg;
    struct db mydb;
    char err[256];
    if (db_open(&mydb, app.db_path, err, sizeof(err))) {
        r->rc = -2;
        return NULL;
    }
    r->rc = pool_acquire(r->p, &mydb, r->name, &r->lease, &r->err);
    db_close(&mydb);
    return NULL;
}

static int wait_queue_depth(struct pool *p, const char *name, int depth)
{
    for (int i = 0; i < 200; i++) {
        if ((int)status_number(p, name, "queue_depth") == depth)
            return 1;
        usleep(10000);
    }
    return 0;
}

static void test_queue_full_and_timeout(void)
{
    struct pool *p = new_pool();
    struct pool_error err;
    struct pool_lease *l1, *l2;
    CHECK_INT_EQ(pool_acquire(p, &db, "q", &l1, &err), 0);
    CHECK_INT_EQ((int)status_number(p, "q", "max_concurrency"), 1);
    /* One request waits in the queue (queue_size 1)... */
    struct racer waiter = {.p = p, .name = "q"};
    pthread_t th;
    pthread_create(&th, NULL, acquire_main, &waiter);
    CHECK(wait_queue_depth(p, "q", 1));
    /* ...so the next one finds it full. */
    CHECK_INT_EQ(pool_acquire(p, &db, "q", &l2, &err), -1);
    CHECK_INT_EQ(err.http_status, 429);
    CHECK_STR_EQ(err.code, "queue_full");
    CHECK(err.retry_after > 0);
    /* A freed slot goes to the waiter. */
    pool_release(l1, NULL);
    pthread_join(th, NULL);
    CHECK_INT_EQ(waiter.rc, 0);
    /* While it holds the slot, a queued request times out (queue_timeout 1). */
    double t0 = now_s();
    CHECK_INT_EQ(pool_acquire(p, &db, "q", &l2, &err), -1);
    double waited = now_s() - t0;
    CHECK_INT_EQ(err.http_status, 503);
    CHECK_STR_EQ(err.code, "queue_timeout");
    CHECK_MSG(waited > 0.9 && waited < 3, "waited %.2f s", waited);
    CHECK((int)status_number(p, "q", "queue_depth") == 0);
    pool_release(waiter.lease, NULL);
    pool_free(p);
}

/* A waiter that notes when it got its slot and gives it back at once. */
struct fifo_waiter {
    struct racer r;
    int *counter; /* under the pool's single slot: no other writer meanwhile */
    int order;    /* 1 = first to get the slot */
};

static void *fifo_main(void *arg)
{
    struct fifo_waiter *w = arg;
    acquire_main(&w->r);
    if (w->r.rc == 0) {
        w->order = ++*w->counter;
        pool_release(w->r.lease, NULL);
    }
    return NULL;
}

static void test_queue_is_fifo(void)
{
    enum { N = 6 };
    struct pool *p = new_pool();
    struct pool_error err;
    struct pool_lease *l;
    CHECK_INT_EQ(pool_acquire(p, &db, "fifo", &l, &err), 0);
    struct fifo_waiter w[N];
    pthread_t th[N];
    int counter = 0;
    /* They queue one after another while the only slot is held... */
    for (int i = 0; i < N; i++) {
        w[i] = (struct fifo_waiter){.r = {.p = p, .name = "fifo"}, .counter = &counter};
        pthread_create(&th[i], NULL, fifo_main, &w[i]);
        CHECK(wait_queue_depth(p, "fifo", i + 1));
    }
    /* ...and get it in the order they came, not in the order they wake. */
    pool_release(l, NULL);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        CHECK_INT_EQ(w[i].r.rc, 0);
        CHECK_MSG(w[i].order == i + 1, "waiter %d got the slot as number %d", i + 1, w[i].order);
    }
    CHECK((int)status_number(p, "fifo", "queue_depth") == 0);
    pool_free(p);
}

/* ---- unloading -------------------------------------------------------- */

struct unloader {
    struct pool *p;
    int rc;
    struct pool_error err;
};

static void *unload_main(void *arg)
{
    struct unloader *u = arg;
    struct db mydb;
    char err[256];
    if (db_open(&mydb, app.db_path, err, sizeof(err))) {
        u->rc = -2;
        return NULL;
    }
    u->rc = pool_unload(u->p, &mydb, "m1", 1, &u->err);
    db_close(&mydb);
    return NULL;
}

static int status_state_is(struct pool *p, const char *name, const char *state)
{
    cJSON *st = pool_status(p, name);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(st, 0), "state");
    int ok = cJSON_IsString(s) && !strcmp(s->valuestring, state);
    cJSON_Delete(st);
    return ok;
}

static void test_unload_busy_and_force(void)
{
    struct pool *p = new_pool();
    struct pool_error err;
    struct pool_lease *l;
    CHECK_INT_EQ(pool_unload(p, &db, "m1", 0, &err), -1);
    CHECK_INT_EQ(err.http_status, 404);
    CHECK_STR_EQ(err.code, "model_not_loaded");
    CHECK_INT_EQ(pool_acquire(p, &db, "m1", &l, &err), 0);
    CHECK_INT_EQ(pool_unload(p, &db, "m1", 0, &err), -1);
    CHECK_INT_EQ(err.http_status, 409);
    CHECK_STR_EQ(err.code, "model_busy");
    /* force: no new request starts, the running one finishes first. */
    struct unloader u = {.p = p};
    pthread_t th;
    pthread_create(&th, NULL, unload_main, &u);
    int seen = 0;
    for (int i = 0; i < 200 && !seen; i++, usleep(10000))
        seen = status_state_is(p, "m1", "unloading");
    CHECK(seen);
    CHECK(pool_lease_model(l) != NULL);
    pool_release(l, NULL);
    pthread_join(th, NULL);
    CHECK_INT_EQ(u.rc, 0);
    CHECK_INT_EQ(is_loaded(p, "m1"), 0);
    /* The absolute path names the same model as its state-dir name. */
    char abs_dir[512];
    snprintf(abs_dir, sizeof(abs_dir), "%s/models/m1", tmp_root);
    CHECK_INT_EQ(pool_load(p, &db, "m1", NULL, NULL, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, abs_dir, NULL, NULL, &err), 0);
    char other_spelling[600];
    snprintf(other_spelling, sizeof(other_spelling), "%s/models/../models/m1/", tmp_root);
    CHECK_INT_EQ(pool_load(p, &db, other_spelling, NULL, NULL, &err), 0);
    cJSON *st = pool_status(p, NULL);
    CHECK_INT_EQ(cJSON_GetArraySize(st), 1);
    cJSON_Delete(st);
    CHECK_INT_EQ(pool_unload(p, &db, abs_dir, 0, &err), 0);
    CHECK_INT_EQ(is_loaded(p, "m1"), 0);
    pool_free(p);
}

static void test_idle_unload(void)
{
    set_setting("idle_unload_seconds", 1);
    struct pool *p = new_pool();
    struct pool_error err;
    struct pool_load_opts forever = {.pin = -1, .keep_alive = POOL_KEEP_ALIVE_FOREVER};
    CHECK_INT_EQ(pool_load(p, &db, "m1", NULL, NULL, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, "m2", &forever, NULL, &err), 0);
    CHECK_INT_EQ((int)status_number(p, "m1", "keep_alive"), 1);
    int gone = 0;
    for (int i = 0; i < 60 && !gone; i++, usleep(100000))
        gone = !is_loaded(p, "m1");
    CHECK(gone);
    CHECK_INT_EQ(is_loaded(p, "m2"), 1);
    /* A per-model keep_alive overrides the setting. */
    struct pool_load_opts short_ka = {.pin = -1, .keep_alive = 1};
    CHECK_INT_EQ(pool_load(p, &db, "m2", &short_ka, NULL, &err), 0);
    gone = 0;
    for (int i = 0; i < 60 && !gone; i++, usleep(100000))
        gone = !is_loaded(p, "m2");
    CHECK(gone);
    pool_free(p);
    set_setting("idle_unload_seconds", 0);
}

/* A profile's keep_alive beats the setting: -1 never unloads, N seconds does. */
static void test_profile_keep_alive(void)
{
    add_profile("{\"name\":\"brief\",\"model_path\":\"m1\",\"context_length\":64,"
                "\"keep_alive\":1}");
    add_profile("{\"name\":\"lasting\",\"model_path\":\"m2\",\"context_length\":64,"
                "\"keep_alive\":-1}");
    set_setting("idle_unload_seconds", 1);
    struct pool *p = new_pool();
    struct pool_error err;
    CHECK_INT_EQ(pool_load(p, &db, "brief", NULL, NULL, &err), 0);
    CHECK_INT_EQ(pool_load(p, &db, "lasting", NULL, NULL, &err), 0);
    CHECK_INT_EQ((int)status_number(p, "brief", "keep_alive"), 1);
    CHECK_INT_EQ((int)status_number(p, "lasting", "keep_alive"), POOL_KEEP_ALIVE_FOREVER);
    int gone = 0;
    for (int i = 0; i < 60 && !gone; i++, usleep(100000))
        gone = !is_loaded(p, "brief");
    CHECK(gone);
    usleep(1500000);
    CHECK_INT_EQ(is_loaded(p, "lasting"), 1);
    pool_free(p);
    set_setting("idle_unload_seconds", 0);
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

static void test_profile_model_change(void)
{
    add_profile("{\"name\":\"moving\",\"model_path\":\"m1\",\"context_length\":64,"
                "\"max_concurrency\":2}");
    struct pool *p = new_pool();
    struct pool_error err;
    struct pool_lease *l;
    CHECK_INT_EQ(pool_load(p, &db, "moving", NULL, NULL, &err), 0);
    /* Point the profile at m2: a busy model keeps serving, an idle one switches. */
    cJSON *list = profile_list(&db), *row, *out = NULL;
    long long id = 0;
    cJSON_ArrayForEach(row, list)
    {
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(row, "name")->valuestring, "moving"))
            id = (long long)cJSON_GetObjectItemCaseSensitive(row, "id")->valuedouble;
    }
    cJSON_Delete(list);
    CHECK_INT_EQ(pool_acquire(p, &db, "moving", &l, &err), 0);
    cJSON *patch = cJSON_Parse("{\"model_path\":\"m2\"}");
    struct profile_error perr;
    CHECK_INT_EQ(profile_update(&db, id, patch, &out, &perr), PROFILE_OK);
    cJSON_Delete(patch);
    cJSON_Delete(out);
    struct pool_lease *l2;
    CHECK_INT_EQ(pool_acquire(p, &db, "moving", &l2, &err), 0);
    CHECK(l2 && pool_lease_model(l2) == pool_lease_model(l));
    pool_release(l2, NULL);
    pool_release(l, NULL);
    CHECK_INT_EQ(pool_acquire(p, &db, "moving", &l, &err), 0);
    if (l) {
        CHECK(strstr(engine_model_info(pool_lease_model(l))->dir, "/models/m2") != NULL);
        pool_release(l, NULL);
    }
    pool_free(p);
}

static void test_shutdown_wakes_queue(void)
{
    add_profile("{\"name\":\"slow-queue\",\"model_path\":\"m1\",\"context_length\":64,"
                "\"max_concurrency\":1,\"queue_timeout\":60}");
    struct pool *p = new_pool();
    struct pool_error err;
    struct pool_lease *l;
    CHECK_INT_EQ(pool_acquire(p, &db, "slow-queue", &l, &err), 0);
    struct racer waiter = {.p = p, .name = "slow-queue"};
    pthread_t th;
    pthread_create(&th, NULL, acquire_main, &waiter);
    CHECK(wait_queue_depth(p, "slow-queue", 1));
    double t0 = now_s();
    __atomic_store_n(&app.stopping, 1, __ATOMIC_RELAXED); /* what SIGTERM does */
    pthread_join(th, NULL);
    CHECK_INT_EQ(waiter.rc, -1);
    CHECK_INT_EQ(waiter.err.http_status, 503);
    CHECK_STR_EQ(waiter.err.code, "shutting_down");
    CHECK_MSG(now_s() - t0 < 3, "woke after %.2f s", now_s() - t0);
    struct pool_lease *l2 = NULL;
    CHECK_INT_EQ(pool_acquire(p, &db, "m2", &l2, &err), -1);
    CHECK_INT_EQ(err.http_status, 503);
    CHECK(l2 == NULL);
    pool_release(l, NULL);
    pool_free(p);
    __atomic_store_n(&app.stopping, 0, __ATOMIC_RELAXED);
}

static void test_auto_start(void)
{
    add_profile("{\"name\":\"auto\",\"model_path\":\"m2\",\"context_length\":64,"
                "\"auto_start\":true}");
    struct pool *p = new_pool();
    int loaded = 0;
    for (int i = 0; i < 100 && !loaded; i++, usleep(20000))
        loaded = status_state_is(p, "auto", "ready");
    CHECK(loaded);
    CHECK_INT_EQ(is_loaded(p, "p2"), 0); /* only auto_start profiles */
    pool_free(p);
}

int main(void)
{
    harness_shared_dir();
    setup();
    add_profile("{\"name\":\"profile-one\",\"model_path\":\"m3\",\"context_length\":64}");
    add_profile("{\"name\":\"broken-profile\",\"model_path\":\"/nonexistent/dir\"}");
    add_profile("{\"name\":\"p1\",\"model_path\":\"m1\",\"context_length\":64}");
    add_profile("{\"name\":\"p2\",\"model_path\":\"m2\",\"context_length\":64}");
    add_profile("{\"name\":\"p3\",\"model_path\":\"m3\",\"context_length\":64}");
    add_profile("{\"name\":\"q\",\"model_path\":\"m1\",\"max_concurrency\":1,"
                "\"queue_size\":1,\"queue_timeout\":1}");
    add_profile("{\"name\":\"fifo\",\"model_path\":\"m1\",\"max_concurrency\":1,"
                "\"queue_size\":8,\"queue_timeout\":30}");
    RUN(test_resolve_names);
    RUN(test_list);
    RUN(test_acquire_generates);
    RUN(test_max_loaded_models);
    RUN(test_single_flight);
    RUN(test_budget_lru_and_pin);
    RUN(test_refused_before_eviction);
    RUN(test_lease_prevents_eviction);
    RUN(test_queue_full_and_timeout);
    RUN(test_queue_is_fifo);
    RUN(test_unload_busy_and_force);
    RUN(test_idle_unload);
    RUN(test_profile_keep_alive);
    RUN(test_profile_model_change);
    RUN(test_shutdown_wakes_queue);
    RUN(test_auto_start);
    teardown();
    return harness_finish();
}
