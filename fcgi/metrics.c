#include "metrics.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "downloads.h"
#include "engine.h"
#include "pool.h"

/* ---- storage ------------------------------------------------------------ */

/* Upper bounds in seconds; +Inf is implied. */
static const double metrics_latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                1,     2.5,  5,     10,   30,  60,   120};
static const double metrics_gap_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,   0.25,   0.5,   1,    2.5};
#define METRICS_LATENCY_N (sizeof(metrics_latency_bounds) / sizeof(metrics_latency_bounds[0]))
#define METRICS_GAP_N (sizeof(metrics_gap_bounds) / sizeof(metrics_gap_bounds[0]))
#define METRICS_MAX_BUCKETS 16

struct metrics_hist {
    unsigned long long buckets[METRICS_MAX_BUCKETS]; /* not cumulative; summed on output */
    unsigned long long count;
    double sum;
};

struct metrics_series {
    char method[8];
    char endpoint[96];
    int status;
    unsigned long long count;
};

struct metrics_model {
    char name[128];
    unsigned long long generations, prompt_tokens, completion_tokens;
    struct metrics_hist ttft;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_series metrics_series[METRICS_MAX_SERIES];
static int metrics_n_series;
static struct metrics_hist metrics_duration;
static struct metrics_model metrics_models[METRICS_MAX_MODELS];
static int metrics_n_models;
static struct metrics_hist metrics_gaps;

static _Thread_local struct metrics_generation metrics_current;

static void metrics_hist_add(struct metrics_hist *h, const double *bounds, size_t n, double seconds)
{
    size_t i = 0;
    while (i < n && seconds > bounds[i])
        i++;
    h->buckets[i]++; /* i == n is the +Inf bucket */
    h->count++;
    h->sum += seconds;
}

/* ---- observations ------------------------------------------------------- */

void metrics_observe_request(const char *method, const char *endpoint, int status,
                             double duration_ms)
{
    if (!endpoint)
        endpoint = "other";
    if (!method || strlen(method) >= sizeof(metrics_series[0].method))
        method = "other";
    pthread_mutex_lock(&metrics_lock);
    metrics_hist_add(&metrics_duration, metrics_latency_bounds, METRICS_LATENCY_N,
                     duration_ms / 1000.0);
    struct metrics_series *s = NULL;
    for (int i = 0; i < metrics_n_series && !s; i++) {
        struct metrics_series *c = &metrics_series[i];
        if (c->status == status && !strcmp(c->method, method) && !strcmp(c->endpoint, endpoint))
            s = c;
    }
    if (!s && metrics_n_series < METRICS_MAX_SERIES - 1) {
        s = &metrics_series[metrics_n_series++];
        snprintf(s->method, sizeof(s->method), "%s", method);
        snprintf(s->endpoint, sizeof(s->endpoint), "%s", endpoint);
        s->status = status;
    }
    if (!s) {
        /* The last slot collects every series that did not get its own. */
        s = &metrics_series[METRICS_MAX_SERIES - 1];
        if (!s->method[0]) {
            snprintf(s->method, sizeof(s->method), "other");
            snprintf(s->endpoint, sizeof(s->endpoint), "other");
        }
    }
    s->count++;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_observe_generation(const char *model, const struct metrics_generation *g)
{
    if (!model || !*model || strlen(model) >= sizeof(metrics_models[0].name))
        model = "other";
    pthread_mutex_lock(&metrics_lock);
    struct metrics_model *m = NULL;
    for (int i = 0; i < metrics_n_models && !m; i++)
        if (!strcmp(metrics_models[i].name, model))
            m = &metrics_models[i];
    if (!m && metrics_n_models < METRICS_MAX_MODELS - 1) {
        m = &metrics_models[metrics_n_models++];
        snprintf(m->name, sizeof(m->name), "%s", model);
    }
    if (!m) {
        m = &metrics_models[METRICS_MAX_MODELS - 1];
        snprintf(m->name, sizeof(m->name), "other");
    }
    m->generations += (unsigned long long)g->streams;
    m->prompt_tokens += (unsigned long long)(g->prompt_tokens > 0 ? g->prompt_tokens : 0);
    m->completion_tokens +=
        (unsigned long long)(g->completion_tokens > 0 ? g->completion_tokens : 0);
    if (g->completion_tokens > 0)
        metrics_hist_add(&m->ttft, metrics_latency_bounds, METRICS_LATENCY_N, g->ttft_ms / 1000.0);
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_observe_token_gap(double ms)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_hist_add(&metrics_gaps, metrics_gap_bounds, METRICS_GAP_N, ms / 1000.0);
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_note_usage(const struct engine_usage *u)
{
    struct metrics_generation *g = &metrics_current;
    if (g->streams == 0)
        g->ttft_ms = u->ttft_s * 1000.0;
    g->streams++;
    g->prompt_tokens += u->prompt_tokens;
    g->completion_tokens += u->completion_tokens;
    if (u->decode_tps > g->decode_tps)
        g->decode_tps = u->decode_tps;
}

int metrics_take_generation(struct metrics_generation *out)
{
    *out = metrics_current;
    memset(&metrics_current, 0, sizeof(metrics_current));
    return out->streams;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&metrics_lock);
    memset(metrics_series, 0, sizeof(metrics_series));
    metrics_n_series = 0;
    memset(&metrics_duration, 0, sizeof(metrics_duration));
    memset(metrics_models, 0, sizeof(metrics_models));
    metrics_n_models = 0;
    memset(&metrics_gaps, 0, sizeof(metrics_gaps));
    pthread_mutex_unlock(&metrics_lock);
}

/* ---- exposition --------------------------------------------------------- */

struct metrics_buf {
    char *data;
    size_t len, cap;
    int oom;
};

static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

/* A label value with \, " and newlines escaped as the format requires. */
static void metrics_label(struct metrics_buf *b, const char *v)
{
    char tmp[512];
    size_t o = 0;
    for (; *v && o + 3 < sizeof(tmp); v++) {
        if (*v == '\\' || *v == '"') {
            tmp[o++] = '\\';
            tmp[o++] = *v;
        } else if (*v == '\n') {
            tmp[o++] = '\\';
            tmp[o++] = 'n';
        } else {
            tmp[o++] = *v;
        }
    }
    tmp[o] = '\0';
    metrics_printf(b, "%s", tmp);
}

static void metrics_head(struct metrics_buf *b, const char *name, const char *type,
                         const char *help)
{
    metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; `labels` is "" or `key="value",` (trailing comma). */
static void metrics_hist_write(struct metrics_buf *b, const char *name, const char *labels,
                               const struct metrics_hist *h, const double *bounds, size_t n)
{
    unsigned long long cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += h->buckets[i];
        metrics_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[i], cum);
    }
    metrics_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, h->count);
    size_t ll = strlen(labels);
    /* Without the trailing comma for _sum and _count. */
    metrics_printf(b, "%s_sum%s%.*s%s %.6f\n", name, ll ? "{" : "", ll ? (int)ll - 1 : 0, labels,
                   ll ? "}" : "", h->sum);
    metrics_printf(b, "%s_count%s%.*s%s %llu\n", name, ll ? "{" : "", ll ? (int)ll - 1 : 0, labels,
                   ll ? "}" : "", h->count);
}

static void metrics_write_requests(struct metrics_buf *b)
{
    metrics_head(b, "mlxm_http_requests_total", "counter",
                 "HTTP requests answered, by method, route pattern and status.");
    for (int i = 0; i < METRICS_MAX_SERIES; i++) {
        const struct metrics_series *s = &metrics_series[i];
        if (!s->count)
            continue;
        metrics_printf(b, "mlxm_http_requests_total{method=\"");
        metrics_label(b, s->method);
        metrics_printf(b, "\",endpoint=\"");
        metrics_label(b, s->endpoint);
        metrics_printf(b, "\",status=\"%d\"} %llu\n", s->status, s->count);
    }
    metrics_head(b, "mlxm_http_request_duration_seconds", "histogram",
                 "Time from the request's arrival to its last byte.");
    metrics_hist_write(b, "mlxm_http_request_duration_seconds", "", &metrics_duration,
                       metrics_latency_bounds, METRICS_LATENCY_N);
}

static void metrics_write_generations(struct metrics_buf *b)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"mlxm_generations_total", "Finished generations (one per choice).",
         offsetof(struct metrics_model, generations)},
        {"mlxm_prompt_tokens_total", "Prompt tokens of finished generations.",
         offsetof(struct metrics_model, prompt_tokens)},
        {"mlxm_completion_tokens_total", "Generated tokens of finished generations.",
         offsetof(struct metrics_model, completion_tokens)},
    };
    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        metrics_head(b, counters[c].name, "counter", counters[c].help);
        for (int i = 0; i < metrics_n_models; i++) {
            const struct metrics_model *m = &metrics_models[i];
            unsigned long long v;
            memcpy(&v, (const char *)m + counters[c].off, sizeof(v));
            metrics_printf(b, "%s{model=\"", counters[c].name);
            metrics_label(b, m->name);
            metrics_printf(b, "\"} %llu\n", v);
        }
    }
    metrics_head(b, "mlxm_time_to_first_token_seconds", "histogram",
                 "Time from submission to the first generated token.");
    for (int i = 0; i < metrics_n_models; i++) {
        struct metrics_buf lb = {0};
        lb.cap = 256;
        lb.data = malloc(lb.cap);
        if (!lb.data) {
            b->oom = 1;
            return;
        }
        lb.data[0] = '\0';
        metrics_printf(&lb, "model=\"");
        metrics_label(&lb, metrics_models[i].name);
        metrics_printf(&lb, "\",");
        if (lb.oom)
            b->oom = 1;
        else
            metrics_hist_write(b, "mlxm_time_to_first_token_seconds", lb.data,
                               &metrics_models[i].ttft, metrics_latency_bounds, METRICS_LATENCY_N);
        free(lb.data);
    }
    metrics_head(b, "mlxm_inter_token_latency_seconds", "histogram",
                 "Time between two consecutive tokens of one stream.");
    metrics_hist_write(b, "mlxm_inter_token_latency_seconds", "", &metrics_gaps, metrics_gap_bounds,
                       METRICS_GAP_N);
}

static double metrics_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* One gauge line per loaded model, from pool_status(). */
static void metrics_write_pool_gauge(struct metrics_buf *b, const cJSON *models, const char *name,
                                     const char *help, const char *section, const char *key,
                                     const char *extra_label)
{
    metrics_head(b, name, "gauge", help);
    const cJSON *m;
    cJSON_ArrayForEach(m, models)
    {
        const cJSON *src = section ? cJSON_GetObjectItemCaseSensitive(m, section) : m;
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
        if (!cJSON_IsString(n) || !src)
            continue;
        metrics_printf(b, "%s{model=\"", name);
        metrics_label(b, n->valuestring);
        metrics_printf(b, "\"%s} %.0f\n", extra_label ? extra_label : "", metrics_num(src, key));
    }
}

static void metrics_write_pool(struct metrics_buf *b, struct app *app, struct db *db)
{
    cJSON *models = pool_status(app->pool, NULL);
    if (!models)
        return;
    metrics_write_pool_gauge(b, models, "mlxm_model_memory_bytes",
                             "Memory a loaded model holds (weights, KV pool, scratch).", "memory",
                             "total_bytes", NULL);
    metrics_write_pool_gauge(b, models, "mlxm_running_requests",
                             "Requests holding a slot of the model.", NULL, "leases", NULL);
    metrics_write_pool_gauge(b, models, "mlxm_queue_depth",
                             "Requests waiting for a slot of the model.", NULL, "queue_depth",
                             NULL);
    metrics_write_pool_gauge(b, models, "mlxm_running_sequences",
                             "Sequences the model's scheduler is running.", "scheduler", "running",
                             NULL);
    metrics_write_pool_gauge(b, models, "mlxm_waiting_sequences",
                             "Sequences waiting in the model's scheduler for KV blocks.",
                             "scheduler", "waiting", NULL);
    metrics_head(b, "mlxm_kv_blocks", "gauge",
                 "KV cache blocks of a loaded model: used by sequences, cached (kept for "
                 "prefix matches, reusable) and clean.");
    const cJSON *m;
    cJSON_ArrayForEach(m, models)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
        const cJSON *sch = cJSON_GetObjectItemCaseSensitive(m, "scheduler");
        if (!cJSON_IsString(n) || !sch)
            continue;
        double used = metrics_num(sch, "kv_blocks_used"),
               cached = metrics_num(sch, "kv_blocks_cached");
        double clean = metrics_num(sch, "kv_blocks_free") - cached;
        const struct {
            const char *state;
            double v;
        } rows[] = {{"used", used}, {"cached", cached}, {"clean", clean < 0 ? 0 : clean}};
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            metrics_printf(b, "mlxm_kv_blocks{model=\"");
            metrics_label(b, n->valuestring);
            metrics_printf(b, "\",state=\"%s\"} %.0f\n", rows[i].state, rows[i].v);
        }
    }
    metrics_head(b, "mlxm_prefix_cache_hit_ratio", "gauge",
                 "Share of the prompt tokens admitted since the model loaded whose KV came "
                 "from the prefix cache.");
    cJSON_ArrayForEach(m, models)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
        const cJSON *sch = cJSON_GetObjectItemCaseSensitive(m, "scheduler");
        if (!cJSON_IsString(n) || !sch)
            continue;
        metrics_printf(b, "mlxm_prefix_cache_hit_ratio{model=\"");
        metrics_label(b, n->valuestring);
        metrics_printf(b, "\"} %.3f\n", metrics_num(sch, "prefix_hit_ratio"));
    }
    metrics_write_pool_gauge(b, models, "mlxm_prefix_cached_tokens",
                             "Prompt tokens served by the prefix cache since the model loaded.",
                             "scheduler", "cached_prompt_tokens", NULL);
    metrics_write_pool_gauge(b, models, "mlxm_preemptions",
                             "Sequences sent back to recompute for KV blocks since the model "
                             "loaded.",
                             "scheduler", "preemptions", NULL);
    cJSON_Delete(models);

    struct pool_memory pm;
    pool_memory(app->pool, db, &pm);
    metrics_head(b, "mlxm_memory_budget_bytes", "gauge",
                 "The memory budget shared by every loaded model.");
    metrics_printf(b, "mlxm_memory_budget_bytes %llu\n", pm.budget_bytes);
    metrics_head(b, "mlxm_memory_used_bytes", "gauge", "Budget used by loaded and loading models.");
    metrics_printf(b, "mlxm_memory_used_bytes %llu\n", pm.used_bytes);
    metrics_head(b, "mlxm_loaded_models", "gauge", "Models loaded now.");
    metrics_printf(b, "mlxm_loaded_models %d\n", pm.loaded_models);
}

static void metrics_write_downloads(struct metrics_buf *b, struct app *app, struct db *db)
{
    cJSON *list = downloads_list(app->downloads, db);
    if (!list)
        return;
    static const char *const states[] = {"queued", "starting",  "downloading", "verifying",
                                         "paused", "completed", "failed",      "cancelled"};
    enum { N_STATES = sizeof(states) / sizeof(states[0]) };
    int counts[N_STATES] = {0};
    double bytes_done = 0, bytes_total = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "status");
        for (int i = 0; i < N_STATES; i++)
            if (cJSON_IsString(s) && !strcmp(s->valuestring, states[i]))
                counts[i]++;
        if (cJSON_IsString(s) && !downloads_status_final(s->valuestring)) {
            bytes_done += metrics_num(t, "bytes_done");
            bytes_total += metrics_num(t, "bytes_total");
        }
    }
    cJSON_Delete(list);
    metrics_head(b, "mlxm_downloads", "gauge", "Download tasks by state.");
    for (int i = 0; i < N_STATES; i++)
        metrics_printf(b, "mlxm_downloads{state=\"%s\"} %d\n", states[i], counts[i]);
    metrics_head(b, "mlxm_download_bytes", "gauge",
                 "Bytes of the unfinished downloads: done so far and expected in all.");
    metrics_printf(b, "mlxm_download_bytes{kind=\"done\"} %.0f\n", bytes_done);
    metrics_printf(b, "mlxm_download_bytes{kind=\"total\"} %.0f\n", bytes_total);
}

/* ---- daemon identity ---------------------------------------------------- */

static void metrics_hostname(char *out, size_t n)
{
    if (gethostname(out, n) != 0 || !out[0])
        snprintf(out, n, "localhost");
    out[n - 1] = '\0';
}

void metrics_daemon_name(const char *listen, char *out, size_t n)
{
    if (!n)
        return;
    out[0] = '\0';
    char host[256];
    metrics_hostname(host, sizeof(host));
    if (!listen || !listen[0]) {
        snprintf(out, n, "%s", host);
        return;
    }
    /* The same test as the server's: a path is a unix socket. */
    const char *colon = strrchr(listen, ':');
    if (!colon || listen[0] == '/' || listen[0] == '.') {
        snprintf(out, n, "%s:%s", host, listen);
        return;
    }
    size_t hl = (size_t)(colon - listen);
    static const char *const wildcards[] = {"", "0.0.0.0", "*", "::", "[::]"};
    for (size_t i = 0; i < sizeof(wildcards) / sizeof(wildcards[0]); i++) {
        if (strlen(wildcards[i]) == hl && !strncmp(listen, wildcards[i], hl)) {
            snprintf(out, n, "%s%s", host, colon);
            return;
        }
    }
    snprintf(out, n, "%s", listen);
}

static void metrics_write_daemon(struct metrics_buf *b, const struct app *app)
{
    char name[512], host[256];
    metrics_daemon_name(app->config.listen, name, sizeof(name));
    metrics_hostname(host, sizeof(host));
    metrics_head(b, "mlxm_daemon_info", "gauge",
                 "Always 1; its labels name the daemon that wrote this exposition.");
    metrics_printf(b, "mlxm_daemon_info{daemon=\"");
    metrics_label(b, name);
    metrics_printf(b, "\",hostname=\"");
    metrics_label(b, host);
    metrics_printf(b, "\",listen=\"");
    metrics_label(b, app->config.listen ? app->config.listen : "");
    metrics_printf(b, "\",pid=\"%ld\"} 1\n", (long)getpid());
}

char *metrics_render(struct app *app, struct db *db, size_t *len)
{
    struct metrics_buf b = {0};
    b.cap = 16384;
    b.data = malloc(b.cap);
    if (!b.data)
        return NULL;
    b.data[0] = '\0';
    pthread_mutex_lock(&metrics_lock);
    metrics_write_requests(&b);
    metrics_write_generations(&b);
    pthread_mutex_unlock(&metrics_lock);
    /* Pool and downloads take their own locks: not under ours. */
    if (app && app->pool)
        metrics_write_pool(&b, app, db);
    if (app && app->downloads)
        metrics_write_downloads(&b, app, db);
    if (app) {
        metrics_write_daemon(&b, app);
        metrics_head(&b, "mlxm_start_time_seconds", "gauge",
                     "When the daemon started (Unix time).");
        metrics_printf(&b, "mlxm_start_time_seconds %lld\n", (long long)app->started_at);
    }
    if (b.oom) {
        free(b.data);
        return NULL;
    }
    *len = b.len;
    return b.data;
}
