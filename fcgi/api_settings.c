/* api_settings.c - GET/PUT /api/settings. */
#include "app.h"
#include "http.h"
#include "routes.h"
#include "settings.h"

int api_settings_get(struct http_request *req)
{
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o || settings_describe(req->db, &req->app->config, o))
        return http_send_error(req, 500, NULL, NULL, "cannot read settings");
    return http_send_json(req, 200, o);
}

int api_settings_put(struct http_request *req)
{
    cJSON *patch = http_parse_json_body(req, 0);
    if (!patch)
        return req->status;
    char field[128] = "", msg[512] = "";
    int rc = settings_update(req->db, patch, field, sizeof(field), msg, sizeof(msg));
    if (rc == 422)
        return http_send_error(req, 422, "invalid_field", field, "%s", msg);
    if (rc)
        return http_send_error(req, 500, NULL, NULL, "%s", msg);
    return api_settings_get(req);
}
