/* api_pool.c - what the pool's HTTP handlers share. */
#include "api_pool.h"

#include <stdio.h>

#include "http.h"

int api_send_pool_error(struct http_request *req, const struct pool_error *err)
{
    if (err->retry_after > 0) {
        char h[64];
        snprintf(h, sizeof(h), "Retry-After: %d", err->retry_after);
        http_add_header(req, h);
    }
    int status = err->http_status ? err->http_status : 500;
    return http_send_error(req, status, err->code[0] ? err->code : NULL,
                           status == 404 ? "model" : NULL, "%s", err->message);
}

void api_pool_add_memory(cJSON *o, const struct pool_memory *m)
{
    unsigned long long free_bytes =
        m->budget_bytes > m->used_bytes ? m->budget_bytes - m->used_bytes : 0;
    cJSON_AddNumberToObject(o, "budget_bytes", (double)m->budget_bytes);
    cJSON_AddNumberToObject(o, "used_bytes", (double)m->used_bytes);
    cJSON_AddNumberToObject(o, "free_bytes", (double)free_bytes);
    cJSON_AddNumberToObject(o, "memory_limit_percent", m->memory_limit_percent);
    cJSON_AddNumberToObject(o, "loaded_models", m->loaded_models);
    cJSON_AddNumberToObject(o, "max_loaded_models", m->max_loaded_models);
    cJSON_AddNumberToObject(o, "system_total_bytes", (double)m->system_total_bytes);
    cJSON_AddNumberToObject(o, "system_available_bytes", (double)m->system_available_bytes);
}
