/* api_system.c - /api/system/memory and /api/system/info. */
#include "app.h"
#include "http.h"
#include "routes.h"
#include "settings.h"
#include "sysinfo.h"

static double api_system_gb(unsigned long long bytes)
{
    /* Two decimals are what a dashboard shows; more is noise. */
    return (double)(long long)((double)bytes / (1024.0 * 1024.0 * 1024.0) * 100.0 + 0.5) / 100.0;
}

int api_system_memory(struct http_request *req)
{
    struct sysinfo_memory mem;
    if (sysinfo_memory_read(&mem))
        return http_send_error(req, 500, NULL, NULL, "cannot read /proc/meminfo");
    long long pct = settings_get_int(req->db, &req->app->config, "memory_limit_percent");
    unsigned long long used = mem.total_bytes - mem.available_bytes;
    unsigned long long budget = mem.total_bytes / 100 * (unsigned long long)pct;
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddNumberToObject(o, "total_gb", api_system_gb(mem.total_bytes));
    cJSON_AddNumberToObject(o, "available_gb", api_system_gb(mem.available_bytes));
    cJSON_AddNumberToObject(o, "used_gb", api_system_gb(used));
    cJSON_AddNumberToObject(
        o, "percent", (double)(long long)(1000.0 * (double)used / (double)mem.total_bytes) / 10.0);
    cJSON_AddNumberToObject(o, "memory_limit_percent", (double)pct);
    cJSON_AddNumberToObject(o, "budget_gb", api_system_gb(budget));
    cJSON_AddNumberToObject(o, "total_bytes", (double)mem.total_bytes);
    cJSON_AddNumberToObject(o, "available_bytes", (double)mem.available_bytes);
    cJSON_AddNumberToObject(o, "budget_bytes", (double)budget);
    return http_send_json(req, 200, o);
}

int api_system_info(struct http_request *req)
{
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o || sysinfo_describe(o))
        return http_send_error(req, 500, NULL, NULL, "cannot describe the system");
    return http_send_json(req, 200, o);
}
