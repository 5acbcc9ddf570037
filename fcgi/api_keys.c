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
        if (strcmp(f->string, "name") && strcmp(f->string, "scopes"))
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
    char key[AUTH_KEY_LEN + 1], msg[512] = "";
    cJSON *row = NULL;
    if (auth_key_create(req->db, name->valuestring, scopes, key, &row, msg, sizeof(msg)))
        return http_send_error(req, 500, NULL, NULL, "%s", msg);
    http_own_json(req, row);
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
