/*
 * server.c - accept loop, request dispatch and lifecycle.
 *
 * Signals are blocked in every thread and taken synchronously by one signal
 * thread (sigwait), so no handler runs in the middle of libfcgi or SQLite.
 * Stopping shuts the listening socket down, which makes the accept() of
 * every idle worker fail; busy workers finish their request first, for up
 * to shutdown_grace_seconds, after which every generation still running is
 * cancelled so its handler sends the client a final event and returns.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "arena.h"
#include "auth.h"
#include "cors.h"
#include "db.h"
#include "http.h"
#include "infer.h"
#include "log.h"
#include "metrics.h"
#include "request_log.h"
#include "routes.h"

struct worker {
    struct app *app;
    int listen_fd;
    pthread_t thread;
    struct db db;
    struct arena arena;
};

static pthread_mutex_t server_accept_lock = PTHREAD_MUTEX_INITIALIZER;
static int server_busy; /* workers inside a request (atomic) */

static double server_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const char *server_request_id(struct http_request *req)
{
    const char *id = http_param(req, "REQUEST_ID");
    if (id && *id && strlen(id) <= 64)
        return arena_strdup(req->arena, id);
    unsigned char raw[8];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw)) {
        unsigned long long t = (unsigned long long)server_now_ms();
        memcpy(raw, &t, sizeof(raw));
    }
    if (fd >= 0)
        close(fd);
    return arena_printf(req->arena, "%02x%02x%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2],
                        raw[3], raw[4], raw[5], raw[6], raw[7]);
}

/* Copies a FastCGI parameter into the arena ("" when absent). */
static const char *server_param_copy(struct http_request *req, const char *name)
{
    const char *v = http_param(req, name);
    return arena_strdup(req->arena, v ? v : "");
}

/* Reads the body; returns 0, or the HTTP status already sent on failure. */
static int server_read_body(struct http_request *req)
{
    const char *cl = http_param(req, "CONTENT_LENGTH");
    req->body = "";
    req->body_len = 0;
    if (!cl || !*cl)
        return 0;
    char *end;
    errno = 0;
    long long len = strtoll(cl, &end, 10);
    if (*end || errno || len < 0)
        return http_send_error(req, 400, "bad_request", NULL, "invalid Content-Length");
    if (len > req->app->config.max_body_bytes)
        return http_send_error(req, 413, "body_too_large", NULL,
                               "request body of %lld bytes exceeds the limit of %lld bytes", len,
                               req->app->config.max_body_bytes);
    char *buf = arena_alloc(req->arena, (size_t)len + 1);
    if (!buf)
        return http_send_error(req, 500, NULL, NULL, "out of memory reading the request body");
    size_t got = 0;
    while (got < (size_t)len) {
        size_t want = (size_t)len - got;
        int n = FCGX_GetStr(buf + got, want > (1 << 30) ? (1 << 30) : (int)want, req->fcgx->in);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)len)
        return http_send_error(req, 400, "bad_request", NULL,
                               "request body ended after %zu of %lld bytes", got, len);
    buf[got] = '\0';
    req->body = buf;
    req->body_len = got;
    return 0;
}

/* An inference request: a POST under /v1/ (its body names the model). */
static int server_is_inference(const struct http_request *req)
{
    return !strcmp(req->method, "POST") && !strncmp(req->path, "/v1/", 4);
}

/* The "model" of an inference request's JSON body (arena copy), or NULL. */
static const char *server_body_model(struct http_request *req)
{
    if (!req->body_len)
        return NULL;
    cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "model");
    const char *model = cJSON_IsString(m) && strlen(m->valuestring) <= 256
                            ? arena_strdup(req->arena, m->valuestring)
                            : NULL;
    cJSON_Delete(body);
    return model;
}

static void server_log_request(struct http_request *req, const char *model,
                               const struct metrics_generation *g, double ms)
{
    cJSON *f = cJSON_CreateObject();
    if (!f)
        return;
    cJSON_AddStringToObject(f, "request_id", req->request_id ? req->request_id : "");
    cJSON_AddStringToObject(f, "method", req->method ? req->method : "");
    cJSON_AddStringToObject(f, "path", req->path ? req->path : "");
    cJSON_AddNumberToObject(f, "status", req->status);
    cJSON_AddNumberToObject(f, "duration_ms", (double)((long long)(ms * 1000)) / 1000.0);
    if (model)
        cJSON_AddStringToObject(f, "model", model);
    if (g) {
        cJSON_AddNumberToObject(f, "prompt_tokens", g->prompt_tokens);
        cJSON_AddNumberToObject(f, "completion_tokens", g->completion_tokens);
        cJSON_AddNumberToObject(f, "ttft_ms", (double)((long long)(g->ttft_ms * 1000)) / 1000.0);
        cJSON_AddNumberToObject(f, "tokens_per_second",
                                (double)((long long)(g->decode_tps * 100)) / 100.0);
    }
    if (req->api_key_id > 0)
        cJSON_AddNumberToObject(f, "api_key_id", (double)req->api_key_id);
    if (req->client_gone)
        cJSON_AddTrueToObject(f, "client_gone");
    log_event(req->status >= 500 ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO, "request", f);
    cJSON_Delete(f);
}

/* Metrics, the log line and (for inference) a request_log row. */
static void server_record_request(struct http_request *req, const struct route *route,
                                  const char *model, double ms)
{
    struct metrics_generation g;
    int generated = metrics_take_generation(&g) > 0;
    metrics_observe_request(req->method, route ? route->pattern : NULL, req->status, ms);
    if (generated) {
        metrics_observe_generation(model, &g);
        if (!req->tokens_recorded)
            auth_record_tokens(req, g.prompt_tokens, g.completion_tokens);
    }
    server_log_request(req, model, generated ? &g : NULL, ms);
    if (!server_is_inference(req))
        return;
    struct request_log_row row = {
        .request_id = req->request_id,
        .method = req->method,
        .path = req->path,
        .status = req->status,
        .model = model,
        .has_usage = generated,
        .prompt_tokens = g.prompt_tokens,
        .completion_tokens = g.completion_tokens,
        .ttft_ms = g.ttft_ms,
        .tokens_per_second = g.decode_tps,
        .duration_ms = ms,
        .api_key_id = req->api_key_id,
    };
    if (request_log_insert(req->db, &row))
        log_msg(LOG_LEVEL_WARN, "request_log: cannot record request %s", req->request_id);
}

static void server_handle(struct worker *w, FCGX_Request *fr)
{
    double t0 = server_now_ms();
    struct http_request req;
    memset(&req, 0, sizeof(req));
    req.arena = &w->arena;
    req.app = w->app;
    req.db = &w->db;
    req.fcgx = fr;
    req.method = server_param_copy(&req, "REQUEST_METHOD");
    req.query = server_param_copy(&req, "QUERY_STRING");
    req.content_type = server_param_copy(&req, "CONTENT_TYPE");
    req.remote_addr = server_param_copy(&req, "REMOTE_ADDR");
    req.request_id = server_request_id(&req);
    /* DOCUMENT_URI is the decoded, normalised path nginx matched. */
    const char *uri = http_param(&req, "DOCUMENT_URI");
    if (!uri || !*uri)
        uri = http_param(&req, "SCRIPT_NAME");
    req.path = arena_strdup(req.arena, uri ? uri : "/");

    const struct route *route = NULL;
    const char *model = NULL;
    /* A record left by a request that ended oddly must not count twice. */
    struct metrics_generation stale;
    metrics_take_generation(&stale);
    if (!req.method || !req.path || !req.query || !req.request_id) {
        http_send_error(&req, 500, NULL, NULL, "out of memory");
    } else if (cors_apply(&req)) {
        /* A CORS preflight: answered without authentication. */
    } else if (auth_check(&req) != 0) {
        /* API key missing, wrong or lacking the scope: auth_check answered. */
    } else if (server_read_body(&req) == 0 &&
               !(server_is_inference(&req) &&
                 auth_check_model(&req, model = server_body_model(&req)))) {
        char allow[128];
        switch (router_match(routes, routes_count, req.method, req.path, &route, &req.params, allow,
                             sizeof(allow))) {
        case ROUTER_FOUND: route->handler(&req); break;
        case ROUTER_METHOD_NOT_ALLOWED: {
            route = NULL;
            char header[160];
            snprintf(header, sizeof(header), "Allow: %s", allow);
            http_add_header(&req, header);
            http_send_error(&req, 405, "method_not_allowed", NULL,
                            "method %s is not allowed on %s (allowed: %s)", req.method, req.path,
                            allow);
            break;
        }
        case ROUTER_NOT_FOUND:
            route = NULL;
            http_send_error(&req, 404, "not_found", NULL, "no route for %s %s", req.method,
                            req.path);
            break;
        }
    }
    if (req.status == 0)
        http_send_error(&req, 500, NULL, NULL, "the handler sent no response");
    server_record_request(&req, route, model, server_now_ms() - t0);
    http_release(&req);
}

static void *server_worker_main(void *arg)
{
    struct worker *w = arg;
    FCGX_Request fr;
    if (FCGX_InitRequest(&fr, w->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        log_msg(LOG_LEVEL_ERROR, "worker: FCGX_InitRequest failed");
        return NULL;
    }
    while (!app_stopping(w->app)) {
        pthread_mutex_lock(&server_accept_lock);
        int rc = app_stopping(w->app) ? -1 : FCGX_Accept_r(&fr);
        pthread_mutex_unlock(&server_accept_lock);
        if (rc < 0)
            break;
        __atomic_add_fetch(&server_busy, 1, __ATOMIC_SEQ_CST);
        server_handle(w, &fr);
        __atomic_sub_fetch(&server_busy, 1, __ATOMIC_SEQ_CST);
        FCGX_Finish_r(&fr);
        arena_reset(&w->arena);
    }
    FCGX_Free(&fr, 1);
    return NULL;
}

struct server_signals {
    struct app *app;
    int listen_fd;
    sigset_t set;
};

/* Waits for busy workers; after grace_s, cancels the generations left (again
 * every 100 ms, for any a handler starts late) until every worker is idle. */
static void server_drain(int grace_s)
{
    const struct timespec tick = {0, 100 * 1000 * 1000};
    double deadline = server_now_ms() + grace_s * 1000.0;
    int announced = 0;
    while (__atomic_load_n(&server_busy, __ATOMIC_SEQ_CST) > 0) {
        if (server_now_ms() >= deadline) {
            int n = infer_cancel_all();
            if (n && !announced) {
                log_msg(LOG_LEVEL_WARN, "shutdown grace of %d s is over: cancelled %d generation%s",
                        grace_s, n, n == 1 ? "" : "s");
                announced = 1;
            }
        }
        nanosleep(&tick, NULL);
    }
}

static void *server_signal_main(void *arg)
{
    struct server_signals *s = arg;
    for (;;) {
        int sig;
        if (sigwait(&s->set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (log_reopen() == 0)
                log_msg(LOG_LEVEL_INFO, "log reopened (SIGHUP)");
            continue;
        }
        int grace = s->app->config.shutdown_grace_seconds;
        log_msg(LOG_LEVEL_INFO, "received %s: finishing in-flight requests (up to %d s)",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", grace);
        app_request_stop(s->app);
        shutdown(s->listen_fd, SHUT_RDWR);
        server_drain(grace);
        return NULL;
    }
}

/* "host:port" and ":port" mean TCP; anything else is a unix socket path. */
static int server_listen_is_tcp(const char *listen)
{
    return strchr(listen, ':') != NULL && listen[0] != '/' && listen[0] != '.';
}

static int server_open_socket(const char *listen)
{
    int is_tcp = server_listen_is_tcp(listen);
    if (!is_tcp)
        unlink(listen); /* a stale socket from a killed daemon */
    /* A full backlog makes connect() on a unix socket fail at once (nginx
     * then answers 502), so leave room for bursts of clients. */
    int fd = FCGX_OpenSocket(listen, 1024);
    if (fd >= 0 && !is_tcp)
        chmod(listen, 0660);
    return fd;
}

int server_run(struct app *app)
{
    if (FCGX_Init() != 0) {
        log_msg(LOG_LEVEL_ERROR, "FCGX_Init failed");
        return -1;
    }
    int listen_fd = server_open_socket(app->config.listen);
    if (listen_fd < 0) {
        log_msg(LOG_LEVEL_ERROR, "cannot listen on %s: %s", app->config.listen, strerror(errno));
        return -1;
    }

    struct server_signals sigs = {.app = app, .listen_fd = listen_fd};
    sigemptyset(&sigs.set);
    sigaddset(&sigs.set, SIGINT);
    sigaddset(&sigs.set, SIGTERM);
    sigaddset(&sigs.set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int n = app->config.workers;
    struct worker *workers = calloc((size_t)n, sizeof(*workers));
    if (!workers) {
        log_msg(LOG_LEVEL_ERROR, "out of memory starting workers");
        close(listen_fd);
        return -1;
    }
    int started = 0, rc = 0;
    for (; started < n; started++) {
        struct worker *w = &workers[started];
        w->app = app;
        w->listen_fd = listen_fd;
        arena_init(&w->arena, 64 * 1024, 0);
        char err[512];
        if (db_open(&w->db, app->db_path, err, sizeof(err))) {
            log_msg(LOG_LEVEL_ERROR, "worker %d: %s", started, err);
            rc = -1;
            break;
        }
        if (pthread_create(&w->thread, NULL, server_worker_main, w) != 0) {
            log_msg(LOG_LEVEL_ERROR, "cannot start worker thread %d", started);
            db_close(&w->db);
            rc = -1;
            break;
        }
    }
    pthread_t sig_thread;
    if (rc == 0 && pthread_create(&sig_thread, NULL, server_signal_main, &sigs) != 0)
        rc = -1;
    if (rc == 0) {
        log_msg(LOG_LEVEL_INFO, "listening on %s with %d workers", app->config.listen, n);
        pthread_join(sig_thread, NULL);
    } else {
        app_request_stop(app);
        shutdown(listen_fd, SHUT_RDWR);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        db_close(&workers[i].db);
        arena_free(&workers[i].arena);
    }
    free(workers);
    close(listen_fd);
    if (!server_listen_is_tcp(app->config.listen))
        unlink(app->config.listen);
    log_msg(LOG_LEVEL_INFO, "stopped");
    return rc;
}
