/* api_profiles.c - the /api/profiles handlers: HTTP in and out of profile.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_profiles.h"
#include "http.h"
#include "profile.h"
#include "routes.h"

int api_profile_not_found(struct http_request *req, const char *name)
{
    const char *s = route_param(&req->params, name);
    return http_send_error(req, 404, "profile_not_found", NULL, "no profile with id '%.100s'",
                           s ? s : "");
}

long long api_profile_id(struct http_request *req, const char *name)
{
    const char *s = route_param(&req->params, name);
    char *end;
    errno = 0;
    long long id = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || id <= 0) {
        api_profile_not_found(req, name);
        return -1;
    }
    return id;
}

/* Sends the response for a profile operation's result. */
static int api_profiles_reply(struct http_request *req, enum profile_result r, cJSON *profile,
                              const struct profile_error *err, int ok_status)
{
    switch (r) {
    case PROFILE_OK: http_own_json(req, profile); return http_send_json(req, ok_status, profile);
    case PROFILE_INVALID:
        return http_send_error(req, 422, "invalid_field", err->field[0] ? err->field : NULL, "%s",
                               err->message);
    case PROFILE_CONFLICT:
        return http_send_error(req, 409, "conflict", err->field[0] ? err->field : NULL, "%s",
                               err->message);
    case PROFILE_NOT_FOUND: return api_profile_not_found(req, "id");
    case PROFILE_DB_ERROR: break;
    }
    return http_send_error(req, 500, NULL, NULL, "%s",
                           err && err->message[0] ? err->message : "database error");
}

int api_profiles_list(struct http_request *req)
{
    cJSON *list = http_own_json(req, profile_list(req->db));
    if (!list)
        return http_send_error(req, 500, NULL, NULL, "cannot list profiles");
    return http_send_json(req, 200, list);
}

int api_profiles_create(struct http_request *req)
{
    cJSON *in = http_parse_json_body(req, 0);
    if (!in)
        return req->status;
    cJSON *out = NULL;
    struct profile_error err = {0};
    enum profile_result r = profile_create(req->db, in, &out, &err);
    return api_profiles_reply(req, r, out, &err, 201);
}

int api_profiles_next_port(struct http_request *req)
{
    int port = profile_next_port(req->db);
    if (port < 0)
        return http_send_error(req, 409, "conflict", "port", "no free port is left");
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddNumberToObject(o, "port", port);
    return http_send_json(req, 200, o);
}

int api_profiles_get(struct http_request *req)
{
    long long id = api_profile_id(req, "id");
    if (id < 0)
        return req->status;
    cJSON *out = NULL;
    enum profile_result r = profile_get(req->db, id, &out);
    return api_profiles_reply(req, r, out, NULL, 200);
}

int api_profiles_update(struct http_request *req)
{
    long long id = api_profile_id(req, "id");
    if (id < 0)
        return req->status;
    cJSON *in = http_parse_json_body(req, 0);
    if (!in)
        return req->status;
    cJSON *out = NULL;
    struct profile_error err = {0};
    enum profile_result r = profile_update(req->db, id, in, &out, &err);
    return api_profiles_reply(req, r, out, &err, 200);
}

int api_profiles_delete(struct http_request *req)
{
    long long id = api_profile_id(req, "id");
    if (id < 0)
        return req->status;
    enum profile_result r = profile_delete(req->db, id);
    if (r == PROFILE_OK)
        return http_send_empty(req, 204);
    return api_profiles_reply(req, r, NULL, NULL, 200);
}

int api_profiles_duplicate(struct http_request *req)
{
    long long id = api_profile_id(req, "id");
    if (id < 0)
        return req->status;
    cJSON *in = http_parse_json_body(req, 0);
    if (!in)
        return req->status;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "new_name");
    if (!name)
        return http_send_error(req, 422, "invalid_field", "new_name", "new_name is required");
    if (!cJSON_IsString(name))
        return http_send_error(req, 422, "invalid_field", "new_name", "new_name must be a string");
    for (const cJSON *v = in->child; v; v = v->next)
        if (strcmp(v->string, "new_name"))
            return http_send_error(req, 422, "invalid_field", v->string, "unknown field '%.200s'",
                                   v->string);
    cJSON *out = NULL;
    struct profile_error err = {0};
    enum profile_result r = profile_duplicate(req->db, id, name->valuestring, &out, &err);
    return api_profiles_reply(req, r, out, &err, 201);
}
