/* api_health.c - liveness for load balancers and scripts. */
#include <time.h>

#include "app.h"
#include "http.h"
#include "routes.h"
#include "version.h"

int api_health(struct http_request *req)
{
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "version", MLXM_VERSION);
    cJSON_AddNumberToObject(o, "uptime_seconds", (double)(time(NULL) - req->app->started_at));
    return http_send_json(req, 200, o);
}
