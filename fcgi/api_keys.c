/* api_keys.c - /api/keys: create (the secret is shown once), list, revoke. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"
#include "routes.h"

int api_keys_list(struct http_request *req)
{
    cJSON *list = http_own_json(req, auth_key_list(req->db));
    if (!list)
        return http_send_error(req, 500, NULL, NULL, "cannot list API keys");
    return http_send_json(req, 200, list);
}

int api_keys_create(struct http_request *req)
{
    cJSON *in = http_parse_json_body(req, 0);
    if (!in)
        return req->status;
    const cJSON *f;
    cJSON_ArrayForEach(f, in)
    {
        if (strcmp(f->string, "name") && strcmp(f->string, "scopes") && strcmp(f->string, "models"))
            return http_send_error(req, 422, "unknown_field", f->string, "unknown field '%s'",
                                   f->string);
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) > 128)
        return http_send_error(req, 422, "invalid_field", "name",
                               "name must be a string of 1 to 128 bytes");
    int scopes = AUTH_SCOPE_INFERENCE;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(in, "scopes");
    if (sc) {
        scopes = 0;
        const cJSON *s;
        if (!cJSON_IsArray(sc) || cJSON_GetArraySize(sc) == 0)
            scopes = -1;
        cJSON_ArrayForEach(s, sc)
        {
            int bit = cJSON_IsString(s) && !strchr(s->valuestring, ',')
                          ? auth_scopes_parse(s->valuestring)
                          : -1;
            if (bit < 0 || scopes < 0) {
                scopes = -1;
                break;
            }
            scopes |= bit;
        }
        if (scopes <= 0)
            return http_send_error(req, 422, "invalid_field", "scopes",
                                   "scopes must be a non-empty array of \"inference\" and/or "
                                   "\"admin\"");
    }
    /* "models": an array of names the key is limited to; absent or null = all. */
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(in, "models");
    const char *models[AUTH_MAX_MODELS];
    int n_models = 0;
    if (md && !cJSON_IsNull(md)) {
        int ok = cJSON_IsArray(md) && cJSON_GetArraySize(md) > 0 &&
                 cJSON_GetArraySize(md) <= AUTH_MAX_MODELS;
        const cJSON *m;
        cJSON_ArrayForEach(m, md)
        {
            if (!ok || !cJSON_IsString(m) || !m->valuestring[0] ||
                strlen(m->valuestring) > AUTH_MODEL_NAME_MAX || strchr(m->valuestring, '\n')) {
                ok = 0;
                break;
            }
            models[n_models++] = m->valuestring;
        }
        if (!ok)
            return http_send_error(req, 422, "invalid_field", "models",
                                   "models must be null or an array of 1 to %d model names "
                                   "(1 to %d bytes each)",
                                   AUTH_MAX_MODELS, AUTH_MODEL_NAME_MAX);
    }
    char key[AUTH_KEY_LEN + 1], msg[512] = "";
    cJSON *row = NULL;
    if (auth_key_create(req->db, name->valuestring, scopes, key, &row, msg, sizeof(msg)))
        return http_send_error(req, 500, NULL, NULL, "%s", msg);
    http_own_json(req, row);
    if (n_models) {
        long long id = (long long)cJSON_GetObjectItemCaseSensitive(row, "id")->valuedouble;
        if (auth_key_set_models(req->db, id, models, n_models, msg, sizeof(msg))) {
            /* A key without its limit must not stay usable. */
            auth_key_revoke(req->db, id);
            return http_send_error(req, 500, NULL, NULL, "%s", msg);
        }
        cJSON *arr = cJSON_CreateArray();
        for (int i = 0; arr && i < n_models; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(models[i]));
        if (arr)
            cJSON_ReplaceItemInObjectCaseSensitive(row, "models", arr);
    }
    cJSON_AddStringToObject(row, "key", key);
    return http_send_json(req, 201, row);
}

int api_keys_revoke(struct http_request *req)
{
    const char *s = route_param(&req->params, "id");
    char *end;
    errno = 0;
    long long id = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || id <= 0)
        return http_send_error(req, 404, "key_not_found", NULL, "no API key with id '%s'",
                               s ? s : "");
    int rc = auth_key_revoke(req->db, id);
    if (rc < 0)
        return http_send_error(req, 500, NULL, NULL, "cannot revoke the API key");
    if (rc > 0)
        return http_send_error(req, 404, "key_not_found", NULL, "no unrevoked API key with id %lld",
                               id);
    return http_send_empty(req, 204);
}
