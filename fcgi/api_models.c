/*
 * api_models.c - GET /v1/models: every usable model in OpenAI's list shape,
 * with whether it is loaded.  Reads config.json files only, never weights.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "http.h"
#include "model_registry.h"
#include "pool.h"
#include "routes.h"

static const char *api_models_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The pool entry that serves listing item `item`, or NULL.  Profiles are
 * loaded under their own name; other names share an entry per directory. */
static cJSON *api_models_match(cJSON *status, const cJSON *item, int is_profile)
{
    const char *id = api_models_str(item, "id"), *dir = api_models_str(item, "dir");
    cJSON *s;
    cJSON_ArrayForEach(s, status)
    {
        const char *profile = api_models_str(s, "profile");
        if (is_profile ? (profile && !strcmp(profile, id))
                       : (!profile && dir && !strcmp(api_models_str(s, "dir"), dir)))
            return s;
    }
    return NULL;
}

static void api_models_copy(cJSON *to, const cJSON *from, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
    if (v)
        cJSON_AddItemToObject(to, key, cJSON_Duplicate(v, 1));
}

/* A request made with an API key limited to some models sees only those. */
static int api_models_allowed(struct http_request *req, const char *id)
{
    return !req->api_key_id || auth_key_allows_model(req->db, req->api_key_id, id) == 1;
}

/* The "data" array of GET /v1/models (owned by the request); NULL on OOM. */
static cJSON *api_models_data(struct http_request *req)
{
    cJSON *list = http_own_json(req, registry_list(req->db, &req->app->config));
    cJSON *status = http_own_json(req, pool_status(req->app->pool, NULL));
    cJSON *data = http_own_json(req, cJSON_CreateArray());
    if (!list || !status || !data)
        return NULL;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        int is_profile = !strcmp(api_models_str(item, "kind"), "profile");
        cJSON *s = api_models_match(status, item, is_profile);
        /* Mark the pool entry as listed; the rest are loaded by path. */
        if (s)
            cJSON_AddBoolToObject(s, "listed", 1);
        if (!api_models_allowed(req, api_models_str(item, "id")))
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(data, o)) {
            cJSON_Delete(o);
            return NULL;
        }
        api_models_copy(o, item, "id");
        cJSON_AddStringToObject(o, "object", "model");
        api_models_copy(o, item, "created");
        api_models_copy(o, item, "owned_by");
        const char *state = s ? api_models_str(s, "state") : NULL;
        cJSON_AddBoolToObject(o, "loaded", state && !strcmp(state, "ready"));
        api_models_copy(o, item, "context_length");
        api_models_copy(o, item, "size_bytes");
        cJSON_AddBoolToObject(o, "profile", is_profile);
    }
    cJSON *s;
    cJSON_ArrayForEach(s, status)
    {
        if (cJSON_GetObjectItemCaseSensitive(s, "listed") ||
            !api_models_allowed(req, api_models_str(s, "name")))
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(data, o)) {
            cJSON_Delete(o);
            return NULL;
        }
        const cJSON *loaded_at = cJSON_GetObjectItemCaseSensitive(s, "loaded_at");
        cJSON_AddStringToObject(o, "id", api_models_str(s, "name"));
        cJSON_AddStringToObject(o, "object", "model");
        cJSON_AddNumberToObject(o, "created",
                                cJSON_IsNumber(loaded_at) ? loaded_at->valuedouble : 0);
        cJSON_AddStringToObject(o, "owned_by", "local");
        const char *state = api_models_str(s, "state");
        cJSON_AddBoolToObject(o, "loaded", state && !strcmp(state, "ready"));
        api_models_copy(o, s, "context_length");
        cJSON_AddBoolToObject(o, "profile", 0);
    }
    return data;
}

int api_models_list(struct http_request *req)
{
    cJSON *data = api_models_data(req);
    cJSON *out = http_own_json(req, cJSON_CreateObject());
    if (!data || !out)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddStringToObject(out, "object", "list");
    cJSON_AddItemReferenceToObject(out, "data", data);
    return http_send_json(req, 200, out);
}

/* GET /v1/models/{model} and /v1/models/{org}/{name} (hub ids have a slash). */
int api_models_get(struct http_request *req)
{
    const char *org = route_param(&req->params, "org");
    const char *name = route_param(&req->params, "name");
    const char *model = route_param(&req->params, "model");
    char id[2 * ROUTER_MAX_VALUE + 2];
    snprintf(id, sizeof(id), "%s%s%s", org ? org : "", org ? "/" : "", org ? name : model);
    cJSON *data = api_models_data(req);
    if (!data)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON *o;
    cJSON_ArrayForEach(o, data)
    {
        if (!strcmp(api_models_str(o, "id"), id))
            return http_send_json(req, 200, o);
    }
    return http_send_error(req, 404, "model_not_found", "model",
                           "The model '%.300s' does not exist; GET /v1/models lists the "
                           "available models",
                           id);
}
