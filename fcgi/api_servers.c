/*
 * api_servers.c - /api/servers: the dashboard's view of the pool (every
 * loaded model, and every profile whether loaded or not) and starting or
 * stopping a profile's model.
 */
#include <string.h>

#include "api_pool.h"
#include "api_profiles.h"
#include "app.h"
#include "http.h"
#include "pool.h"
#include "profile.h"
#include "routes.h"

static const char *api_servers_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double api_servers_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void api_servers_copy(cJSON *to, const cJSON *from, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
    cJSON_AddItemToObject(to, key, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
}

/* One server object from a pool status entry (NULL = not loaded) and the
 * profile row (NULL = loaded by model name). */
static cJSON *api_servers_item(const cJSON *st, const cJSON *profile, double budget)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (profile) {
        api_servers_copy(o, profile, "id");
        api_servers_copy(o, profile, "name");
        cJSON_AddStringToObject(o, "profile", api_servers_str(profile, "name"));
        api_servers_copy(o, profile, "model_path");
    } else {
        cJSON_AddNullToObject(o, "id");
        api_servers_copy(o, st, "name");
        cJSON_AddNullToObject(o, "profile");
        cJSON_AddNullToObject(o, "model_path");
    }
    if (!st) {
        cJSON_AddStringToObject(o, "state", "stopped");
        cJSON_AddBoolToObject(o, "loaded", 0);
        return o;
    }
    const char *state = api_servers_str(st, "state");
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddBoolToObject(o, "loaded", !strcmp(state, "ready"));
    api_servers_copy(o, st, "dir");
    double bytes = api_servers_num(cJSON_GetObjectItemCaseSensitive(st, "memory"), "total_bytes");
    cJSON_AddNumberToObject(o, "memory_bytes", bytes);
    cJSON_AddNumberToObject(o, "memory_percent", budget > 0 ? bytes / budget * 100.0 : 0);
    static const char *const copied[] = {
        "cpu_percent",
        "uptime_seconds",
        "requests_served",
        "tokens_per_second",
        "completion_tokens",
        "leases",
        "queue_depth",
        "max_concurrency",
        "pinned",
        "kv_blocks_free",
        "kv_blocks_total",
        "context_length",
        "memory",
        "scheduler",
    };
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
        api_servers_copy(o, st, copied[i]);
    return o;
}

int api_servers_list(struct http_request *req)
{
    struct pool_memory mem;
    pool_memory(req->app->pool, req->db, &mem);
    cJSON *status = http_own_json(req, pool_status(req->app->pool, NULL));
    cJSON *profiles = http_own_json(req, profile_list(req->db));
    cJSON *out = http_own_json(req, cJSON_CreateObject());
    if (!status || !profiles || !out)
        return http_send_error(req, 500, NULL, NULL, "cannot list the servers");
    cJSON *servers = cJSON_AddArrayToObject(out, "servers");
    const cJSON *p, *s;
    cJSON_ArrayForEach(p, profiles)
    {
        const char *name = api_servers_str(p, "name");
        const cJSON *match = NULL;
        cJSON_ArrayForEach(s, status)
        {
            const char *prof = api_servers_str(s, "profile");
            if (prof && name && !strcmp(prof, name))
                match = s;
        }
        cJSON_AddItemToArray(servers, api_servers_item(match, p, (double)mem.budget_bytes));
    }
    cJSON_ArrayForEach(s, status)
    {
        if (!api_servers_str(s, "profile"))
            cJSON_AddItemToArray(servers, api_servers_item(s, NULL, (double)mem.budget_bytes));
    }
    cJSON *m = cJSON_AddObjectToObject(out, "memory");
    if (m)
        api_pool_add_memory(m, &mem);
    cJSON_AddNumberToObject(out, "cpu_percent", (double)(long long)(mem.cpu_percent * 10) / 10.0);
    return http_send_json(req, 200, out);
}

/* The profile named by the {profile_id} capture; NULL after a 404/500. */
static cJSON *api_servers_profile(struct http_request *req)
{
    long long n = api_profile_id(req, "profile_id");
    if (n < 0)
        return NULL;
    cJSON *row = NULL;
    enum profile_result r = profile_get(req->db, n, &row);
    if (r == PROFILE_NOT_FOUND) {
        api_profile_not_found(req, "profile_id");
        return NULL;
    }
    if (r != PROFILE_OK) {
        http_send_error(req, 500, NULL, NULL, "cannot read profile %lld", n);
        return NULL;
    }
    return http_own_json(req, row);
}

int api_servers_start(struct http_request *req)
{
    cJSON *profile = api_servers_profile(req);
    if (!profile)
        return req->status;
    struct pool_error err;
    cJSON *st = NULL;
    if (pool_load(req->app->pool, req->db, api_servers_str(profile, "name"), NULL, &st, &err))
        return api_send_pool_error(req, &err);
    http_own_json(req, st);
    struct pool_memory mem;
    pool_memory(req->app->pool, req->db, &mem);
    cJSON *o = http_own_json(req, api_servers_item(st, profile, (double)mem.budget_bytes));
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    return http_send_json(req, 200, o);
}

int api_servers_stop(struct http_request *req)
{
    cJSON *profile = api_servers_profile(req);
    if (!profile)
        return req->status;
    int force = 0;
    if (req->body_len > 0) {
        cJSON *body = http_parse_json_body(req, 0);
        if (!body)
            return req->status;
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, "force");
        if (f && !cJSON_IsBool(f))
            return http_send_error(req, 422, "invalid_value", "force",
                                   "'force' must be true or false");
        force = cJSON_IsTrue(f);
    }
    struct pool_error err;
    /* Stopping a stopped server is not an error: the dashboard may race. */
    if (pool_unload(req->app->pool, req->db, api_servers_str(profile, "name"), force, &err) &&
        err.http_status != 404)
        return api_send_pool_error(req, &err);
    cJSON *o = http_own_json(req, api_servers_item(NULL, profile, 0));
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    return http_send_json(req, 200, o);
}
