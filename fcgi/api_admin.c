/*
 * api_admin.c - /admin/models/load, /admin/models/unload,
 * /admin/models/status and /admin/memory: the model pool for scripts.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_pool.h"
#include "app.h"
#include "http.h"
#include "pool.h"
#include "routes.h"

/* The "model" member every admin body carries; NULL after a 4xx was sent. */
static const char *api_admin_model(struct http_request *req, const cJSON *body)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (!m) {
        http_send_error(req, 422, "missing_field", "model", "'model' is required");
        return NULL;
    }
    if (!cJSON_IsString(m) || !m->valuestring[0]) {
        http_send_error(req, 422, "invalid_value", "model", "'model' must be a non-empty string");
        return NULL;
    }
    return m->valuestring;
}

/* -1 = absent; 0/1; -2 after a 422 was sent. */
static int api_admin_bool(struct http_request *req, const cJSON *body, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (!v)
        return -1;
    if (!cJSON_IsBool(v)) {
        http_send_error(req, 422, "invalid_value", key, "'%s' must be true or false", key);
        return -2;
    }
    return cJSON_IsTrue(v);
}

/*
 * keep_alive: seconds as a number, or a duration string ("30s", "5m",
 * "2h", "-1"); -1 keeps the model loaded until unloaded, 0 returns to the
 * idle_unload_seconds setting.  Returns 0 and *out, or -1 after a 422.
 */
static int api_admin_keep_alive(struct http_request *req, const cJSON *v, int *out)
{
    double secs = 0;
    int ok = 0;
    if (cJSON_IsNumber(v)) {
        secs = v->valuedouble;
        ok = 1;
    } else if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        secs = strtod(v->valuestring, &end);
        double unit = 1;
        if (end != v->valuestring && !isspace((unsigned char)v->valuestring[0])) {
            if (*end == 's')
                end++;
            else if (*end == 'm')
                unit = 60, end++;
            else if (*end == 'h')
                unit = 3600, end++;
            ok = *end == '\0';
        }
        secs *= unit;
    }
    if (!ok || (secs < 0 && secs != -1) || secs > 365.0 * 24 * 3600 || secs != (int)secs) {
        http_send_error(req, 422, "invalid_value", "keep_alive",
                        "'keep_alive' must be whole seconds (a number, or a string such as "
                        "\"30s\", \"5m\", \"2h\"), -1 to keep the model loaded, or 0 for the "
                        "idle_unload_seconds setting");
        return -1;
    }
    *out = secs < 0 ? POOL_KEEP_ALIVE_FOREVER : (int)secs;
    return 0;
}

/* Rejects members other than `allowed` (NULL-terminated); 0 or -1 after 422. */
static int api_admin_only(struct http_request *req, const cJSON *body, const char *const *allowed)
{
    for (const cJSON *v = body->child; v; v = v->next) {
        int known = 0;
        for (const char *const *a = allowed; *a; a++)
            known |= !strcmp(*a, v->string);
        if (!known) {
            http_send_error(req, 422, "unknown_field", v->string, "unknown field '%.200s'",
                            v->string);
            return -1;
        }
    }
    return 0;
}

int api_admin_load(struct http_request *req)
{
    static const char *const allowed[] = {"model", "pin", "keep_alive", NULL};
    cJSON *body = http_parse_json_body(req, 0);
    if (!body || api_admin_only(req, body, allowed))
        return req->status;
    const char *model = api_admin_model(req, body);
    if (!model)
        return req->status;
    struct pool_load_opts opts = {.pin = api_admin_bool(req, body, "pin"), .keep_alive = -2};
    if (opts.pin == -2)
        return req->status;
    const cJSON *ka = cJSON_GetObjectItemCaseSensitive(body, "keep_alive");
    if (ka && api_admin_keep_alive(req, ka, &opts.keep_alive))
        return req->status;
    struct pool_error err;
    cJSON *status = NULL;
    if (pool_load(req->app->pool, req->db, model, &opts, &status, &err))
        return api_send_pool_error(req, &err);
    if (!http_own_json(req, status))
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    return http_send_json(req, 200, status);
}

int api_admin_unload(struct http_request *req)
{
    static const char *const allowed[] = {"model", "force", NULL};
    cJSON *body = http_parse_json_body(req, 0);
    if (!body || api_admin_only(req, body, allowed))
        return req->status;
    const char *model = api_admin_model(req, body);
    if (!model)
        return req->status;
    int force = api_admin_bool(req, body, "force");
    if (force == -2)
        return req->status;
    struct pool_error err;
    if (pool_unload(req->app->pool, req->db, model, force == 1, &err))
        return api_send_pool_error(req, &err);
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "state", "unloaded");
    return http_send_json(req, 200, o);
}

int api_admin_status(struct http_request *req)
{
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    cJSON *models = pool_status(req->app->pool, NULL);
    if (!o || !models || !cJSON_AddItemToObject(o, "models", models)) {
        cJSON_Delete(models);
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    }
    struct pool_memory mem;
    pool_memory(req->app->pool, req->db, &mem);
    cJSON *m = cJSON_AddObjectToObject(o, "memory");
    if (m)
        api_pool_add_memory(m, &mem);
    return http_send_json(req, 200, o);
}

int api_admin_memory(struct http_request *req)
{
    struct pool_memory mem;
    pool_memory(req->app->pool, req->db, &mem);
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    api_pool_add_memory(o, &mem);
    cJSON *models = pool_status(req->app->pool, NULL);
    cJSON *list = cJSON_AddArrayToObject(o, "models");
    const cJSON *s;
    cJSON_ArrayForEach(s, models)
    {
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(list, item)) {
            cJSON_Delete(item);
            break;
        }
        cJSON_AddItemToObject(item, "name",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s, "name"), 1));
        cJSON_AddItemToObject(item, "memory",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s, "memory"), 1));
    }
    cJSON_Delete(models);
    return http_send_json(req, 200, o);
}
