/* model_access.c - paths as model names only for those who may load them. */
#include "model_access.h"

#include <stdio.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "http.h"

/* The request's key has the admin scope, or no key was needed. */
static bool ma_caller_is_admin(struct http_request *req)
{
    if (!req->api_key_id)
        return true;
    cJSON *keys = auth_key_list(req->db);
    bool admin = false;
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(k, "id");
        if (!cJSON_IsNumber(id) || (long long)id->valuedouble != req->api_key_id)
            continue;
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(k, "scopes")) admin =
            admin || (cJSON_IsString(s) && !strcmp(s->valuestring, "admin"));
    }
    cJSON_Delete(keys);
    return admin;
}

/* A model the pool holds under this name (an administrator loaded it). */
static bool ma_loaded(struct http_request *req, const char *model)
{
    cJSON *st = pool_status(req->app->pool, model);
    bool loaded = cJSON_GetArraySize(st) > 0;
    cJSON_Delete(st);
    return loaded;
}

bool model_access_allowed(struct http_request *req, const char *model, struct pool_error *err)
{
    if (model[0] != '/' || ma_caller_is_admin(req) || ma_loaded(req, model))
        return true;
    memset(err, 0, sizeof(*err));
    err->http_status = 404;
    snprintf(err->code, sizeof(err->code), "model_not_found");
    snprintf(err->message, sizeof(err->message),
             "The model '%.200s' does not exist; GET /v1/models lists the available models", model);
    return false;
}
