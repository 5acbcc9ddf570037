/*
 * api_ops.c - operations endpoints: GET /metrics (Prometheus), and the log
 * ring for the dashboard: GET /api/logs (recent lines) and
 * GET /api/logs/stream (SSE, live).
 *
 * Log filters (query parameters, all optional): level (minimum: debug,
 * info, warn, error), msg (exact, e.g. "request"), path (prefix), model
 * (exact), status (minimum), after (sequence number: only newer lines),
 * limit (/api/logs only, 1..1024, default 200).  GET /api/logs/requests
 * returns the newest rows of the request_log table (limit 1..1000).
 *
 * GET /api/system/service reports the systemd user units (service.h) and
 * shows them as this daemon would install them; POST with {"action":
 * "install"|"uninstall", "start": true} installs or removes them.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "request_log.h"
#include "routes.h"
#include "service.h"

int api_metrics(struct http_request *req)
{
    size_t len = 0;
    char *text = metrics_render(req->app, req->db, &len);
    if (!text)
        return http_send_error(req, 500, NULL, NULL, "out of memory rendering the metrics");
    int st = http_send_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return st;
}

/* ---- log filters -------------------------------------------------------- */

struct logs_filter {
    int min_level; /* index into the level names */
    const char *msg, *path, *model;
    int min_status;
    unsigned long long after;
};

static const char *const logs_levels[] = {"debug", "info", "warn", "error"};

static int logs_level_index(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, logs_levels[i]))
            return i;
    return -1;
}

/* Reads an unsigned decimal query parameter; -1 when malformed. */
static int logs_query_ull(struct http_request *req, const char *key, unsigned long long max,
                          unsigned long long *out)
{
    const char *v = http_query(req, key);
    if (!v)
        return 0;
    char *end;
    if (!*v || *v == '-')
        return -1;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || n > max)
        return -1;
    *out = n;
    return 0;
}

/* Fills f from the query; answers 400 and returns the status on a bad value. */
static int logs_filter_parse(struct http_request *req, struct logs_filter *f)
{
    memset(f, 0, sizeof(*f));
    const char *level = http_query(req, "level");
    if (level) {
        f->min_level = logs_level_index(level);
        if (f->min_level < 0)
            return http_send_error(req, 422, "invalid_field", "level",
                                   "level must be one of debug, info, warn, error");
    }
    f->msg = http_query(req, "msg");
    f->path = http_query(req, "path");
    f->model = http_query(req, "model");
    unsigned long long status = 0;
    if (logs_query_ull(req, "status", 999, &status))
        return http_send_error(req, 422, "invalid_field", "status",
                               "status must be a number from 0 to 999");
    f->min_status = (int)status;
    if (logs_query_ull(req, "after", ~0ULL, &f->after))
        return http_send_error(req, 422, "invalid_field", "after",
                               "after must be a sequence number");
    return 0;
}

static const char *logs_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parses `line` and returns it with "seq" added when it passes f, else NULL. */
static cJSON *logs_filter_line(const struct logs_filter *f, const char *line,
                               unsigned long long seq)
{
    cJSON *o = cJSON_Parse(line);
    if (!o)
        return NULL;
    const char *level = logs_str(o, "level");
    const char *msg = logs_str(o, "msg");
    const char *path = logs_str(o, "path");
    const char *model = logs_str(o, "model");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
    int keep = (!level || logs_level_index(level) >= f->min_level) &&
               (!f->msg || (msg && !strcmp(msg, f->msg))) &&
               (!f->path || (path && !strncmp(path, f->path, strlen(f->path)))) &&
               (!f->model || (model && !strcmp(model, f->model))) &&
               (!f->min_status || (cJSON_IsNumber(status) && status->valueint >= f->min_status));
    if (!keep) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddNumberToObject(o, "seq", (double)seq);
    return o;
}

/* ---- endpoints ---------------------------------------------------------- */

int api_logs_recent(struct http_request *req)
{
    struct logs_filter f;
    int st = logs_filter_parse(req, &f);
    if (st)
        return st;
    unsigned long long limit = 200;
    if (logs_query_ull(req, "limit", LOG_RING_LINES, &limit) || limit == 0)
        return http_send_error(req, 422, "invalid_field", "limit",
                               "limit must be a number from 1 to %d", LOG_RING_LINES);
    char **lines = malloc(sizeof(*lines) * LOG_RING_LINES);
    unsigned long long *seqs = malloc(sizeof(*seqs) * LOG_RING_LINES);
    cJSON *root = http_own_json(req, cJSON_CreateObject());
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "data") : NULL;
    if (!lines || !seqs || !arr) {
        free(lines);
        free(seqs);
        return http_send_error(req, 500, NULL, NULL, "out of memory reading the log");
    }
    int n = log_ring_read(f.after, lines, seqs, LOG_RING_LINES);
    /* The newest `limit` lines that pass, oldest first. */
    int kept = 0;
    for (int i = n - 1; i >= 0; i--) {
        cJSON *o =
            (unsigned long long)kept < limit ? logs_filter_line(&f, lines[i], seqs[i]) : NULL;
        if (o) {
            cJSON_InsertItemInArray(arr, 0, o);
            kept++;
        }
        free(lines[i]);
    }
    cJSON_AddNumberToObject(root, "last_seq", n ? (double)seqs[n - 1] : (double)f.after);
    free(lines);
    free(seqs);
    return http_send_json(req, 200, root);
}

int api_logs_stream(struct http_request *req)
{
    struct logs_filter f;
    int st = logs_filter_parse(req, &f);
    if (st)
        return st;
    enum { BATCH = 64 };
    char *lines[BATCH];
    unsigned long long seqs[BATCH];
    /* Without `after`, the stream starts with what comes next. */
    unsigned long long after = http_query(req, "after") ? f.after : log_ring_wait(0, 0);
    if (http_sse_begin(req))
        return 200;
    int quiet_ms = 0;
    while (!app_stopping(req->app) && !req->client_gone) {
        unsigned long long newest = log_ring_wait(after, 1000);
        if (newest <= after) {
            quiet_ms += 1000;
            /* Comments every 10 s keep proxies from closing an idle stream
             * and reveal a client that left; the poll catches it sooner. */
            if (quiet_ms >= 10000) {
                quiet_ms = 0;
                http_sse_comment(req, "keep-alive");
            } else {
                http_client_check(req);
            }
            continue;
        }
        quiet_ms = 0;
        int n = log_ring_read(after, lines, seqs, BATCH);
        for (int i = 0; i < n; i++) {
            after = seqs[i];
            cJSON *o = req->client_gone ? NULL : logs_filter_line(&f, lines[i], seqs[i]);
            char *text = o ? cJSON_PrintUnformatted(o) : NULL;
            if (text)
                http_sse_send(req, "log", text);
            free(text);
            cJSON_Delete(o);
            free(lines[i]);
        }
        if (n == 0) /* lines too old for the ring: skip to the newest */
            after = newest;
    }
    if (!req->client_gone)
        http_sse_send(req, "end", "{\"reason\":\"server stopping\"}");
    return 200;
}

/* GET /api/logs/requests?limit=N: the newest request_log rows. */
int api_logs_requests(struct http_request *req)
{
    unsigned long long limit = 100;
    if (logs_query_ull(req, "limit", 1000, &limit) || limit == 0)
        return http_send_error(req, 422, "invalid_field", "limit",
                               "limit must be a number from 1 to 1000");
    cJSON *rows = http_own_json(req, request_log_recent(req->db, (int)limit));
    cJSON *root = http_own_json(req, cJSON_CreateObject());
    if (!rows || !root)
        return http_send_error(req, 500, NULL, NULL, "cannot read the request log");
    cJSON_AddItemReferenceToObject(root, "data", rows);
    return http_send_json(req, 200, root);
}

/* ---- systemd units ------------------------------------------------------ */

struct ops_service_paths {
    char binary[PATH_MAX], listen[2 * PATH_MAX + 2], run_dir[2 * PATH_MAX + 2];
};

/* The units as this daemon runs: its executable, config, socket and state
 * dir; the run directory is the socket's (tools/run.sh puts nginx.conf
 * there).  Returns 0, or -1 when listening on TCP (no run directory). */
static int ops_service_opts(struct http_request *req, struct ops_service_paths *p,
                            struct service_opts *o)
{
    const struct config *c = &req->app->config;
    ssize_t n = readlink("/proc/self/exe", p->binary, sizeof(p->binary) - 1);
    p->binary[n > 0 ? n : 0] = '\0';
    char cwd[PATH_MAX] = "";
    if (c->listen[0] != '/' && !getcwd(cwd, sizeof(cwd)))
        cwd[0] = '\0';
    snprintf(p->listen, sizeof(p->listen), "%s%s%s", cwd, cwd[0] ? "/" : "", c->listen);
    memset(o, 0, sizeof(*o));
    o->binary = p->binary;
    o->config_path = req->app->config_path[0] ? req->app->config_path : NULL;
    o->listen = p->listen;
    o->state_dir = c->state_dir;
    int tcp = strchr(c->listen, ':') && c->listen[0] != '/' && c->listen[0] != '.';
    if (tcp)
        return -1;
    snprintf(p->run_dir, sizeof(p->run_dir), "%s", p->listen);
    char *slash = strrchr(p->run_dir, '/');
    if (slash && slash != p->run_dir)
        *slash = '\0';
    o->run_dir = p->run_dir;
    return 0;
}

int api_system_service_get(struct http_request *req)
{
    cJSON *st = http_own_json(req, service_status());
    if (!st)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    struct ops_service_paths paths;
    struct service_opts o;
    cJSON *texts = cJSON_AddObjectToObject(st, "unit_files");
    if (ops_service_opts(req, &paths, &o) == 0 && texts) {
        char msg[512];
        for (int i = 0; i < 2; i++) {
            char *text =
                service_render(&o, i ? SERVICE_UNIT_NGINX : SERVICE_UNIT_DAEMON, msg, sizeof(msg));
            cJSON_AddStringToObject(texts, i ? SERVICE_NGINX_UNIT : SERVICE_DAEMON_UNIT,
                                    text ? text : msg);
            free(text);
        }
    }
    return http_send_json(req, 200, st);
}

int api_system_service_post(struct http_request *req)
{
    cJSON *in = http_parse_json_body(req, 0);
    if (!in)
        return req->status;
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(in, "action");
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(in, "start");
    int install = cJSON_IsString(action) && !strcmp(action->valuestring, "install");
    if (!install && !(cJSON_IsString(action) && !strcmp(action->valuestring, "uninstall")))
        return http_send_error(req, 422, "invalid_field", "action",
                               "action must be \"install\" or \"uninstall\"");
    if (start && !cJSON_IsBool(start))
        return http_send_error(req, 422, "invalid_field", "start", "start must be a boolean");
    char msg[1024];
    if (!service_systemd_available(msg, sizeof(msg)))
        return http_send_error(req, 503, "systemd_unavailable", NULL, "%s", msg);
    struct ops_service_paths paths;
    struct service_opts o;
    if (install && ops_service_opts(req, &paths, &o))
        return http_send_error(req, 409, "no_run_dir", NULL,
                               "this daemon listens on TCP, so its nginx run directory is "
                               "unknown; use `mlx-manager service install --run-dir DIR`");
    int rc = install ? service_install(&o, !start || cJSON_IsTrue(start), msg, sizeof(msg))
                     : service_uninstall(msg, sizeof(msg));
    if (rc)
        return http_send_error(req, 500, "service_failed", NULL, "%s", msg);
    return api_system_service_get(req);
}
