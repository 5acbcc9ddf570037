/* test_metrics.c - metrics (counters, histograms, label escaping, bounded
 * series, the per-thread generation record) and the log ring. */
#include <pthread.h>
#include <unistd.h>

#include "app.h"

#include "engine.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"

static char *render(void)
{
    size_t len = 0;
    char *text = metrics_render(NULL, NULL, &len);
    CHECK(text != NULL);
    CHECK_INT_EQ(strlen(text), len);
    return text;
}

static void test_metrics_requests_and_histogram(void)
{
    metrics_reset();
    metrics_observe_request("GET", "/api/health", 200, 3);
    metrics_observe_request("GET", "/api/health", 200, 40);
    metrics_observe_request("POST", NULL, 404, 1);
    char *t = render();
    CHECK(strstr(t, "mlxm_http_requests_total{method=\"GET\",endpoint=\"/api/health\","
                    "status=\"200\"} 2\n"));
    CHECK(strstr(t, "mlxm_http_requests_total{method=\"POST\",endpoint=\"other\","
                    "status=\"404\"} 1\n"));
    /* Cumulative buckets: 3 ms and 1 ms under 5 ms, 40 ms under 50 ms. */
    CHECK(strstr(t, "mlxm_http_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
    CHECK(strstr(t, "mlxm_http_request_duration_seconds_bucket{le=\"0.05\"} 3\n"));
    CHECK(strstr(t, "mlxm_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    CHECK(strstr(t, "mlxm_http_request_duration_seconds_count 3\n"));
    CHECK(strstr(t, "# TYPE mlxm_http_request_duration_seconds histogram\n"));
    free(t);
}

static void test_metrics_series_bounded(void)
{
    metrics_reset();
    char ep[32];
    for (int i = 0; i < METRICS_MAX_SERIES * 2; i++) {
        snprintf(ep, sizeof(ep), "/e/%d", i);
        metrics_observe_request("GET", ep, 200, 1);
    }
    char *t = render();
    int lines = 0;
    for (const char *p = t; (p = strstr(p, "mlxm_http_requests_total{")); p++)
        lines++;
    CHECK_INT_EQ(lines, METRICS_MAX_SERIES);
    /* Everything past the table is summed under "other". */
    char want[128];
    snprintf(want, sizeof(want),
             "mlxm_http_requests_total{method=\"other\",endpoint=\"other\",status=\"0\"} %d\n",
             METRICS_MAX_SERIES + 1);
    CHECK_MSG(strstr(t, want) != NULL, "%s", want);
    free(t);
}

static void test_metrics_label_escaping(void)
{
    metrics_reset();
    struct metrics_generation g = {.streams = 1, .prompt_tokens = 3, .completion_tokens = 2};
    metrics_observe_generation("we\"ird\\name\nx", &g);
    char *t = render();
    CHECK(strstr(t, "mlxm_completion_tokens_total{model=\"we\\\"ird\\\\name\\nx\"} 2\n"));
    free(t);
}

static void test_metrics_generation_record(void)
{
    metrics_reset();
    struct metrics_generation g;
    CHECK_INT_EQ(metrics_take_generation(&g), 0);
    struct engine_usage a = {
        .prompt_tokens = 10, .completion_tokens = 4, .ttft_s = 0.25, .decode_tps = 30};
    struct engine_usage b = {
        .prompt_tokens = 10, .completion_tokens = 6, .ttft_s = 0.5, .decode_tps = 40};
    metrics_note_usage(&a);
    metrics_note_usage(&b);
    CHECK_INT_EQ(metrics_take_generation(&g), 2);
    CHECK_INT_EQ(g.prompt_tokens, 20);
    CHECK_INT_EQ(g.completion_tokens, 10);
    CHECK(g.ttft_ms == 250);
    CHECK(g.decode_tps == 40);
    CHECK_INT_EQ(metrics_take_generation(&g), 0); /* taken means cleared */
    metrics_observe_generation(
        "m", &(struct metrics_generation){.streams = 2, .completion_tokens = 10, .ttft_ms = 250});
    metrics_observe_token_gap(2);
    char *t = render();
    CHECK(strstr(t, "mlxm_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.25\"} 1\n"));
    CHECK(strstr(t, "mlxm_time_to_first_token_seconds_count{model=\"m\"} 1\n"));
    CHECK(strstr(t, "mlxm_generations_total{model=\"m\"} 2\n"));
    CHECK(strstr(t, "mlxm_inter_token_latency_seconds_bucket{le=\"0.001\"} 0\n"));
    CHECK(strstr(t, "mlxm_inter_token_latency_seconds_bucket{le=\"0.0025\"} 1\n"));
    free(t);
}

static void *note_other_thread(void *arg)
{
    struct engine_usage u = {.completion_tokens = 5};
    metrics_note_usage(&u);
    struct metrics_generation *g = arg;
    metrics_take_generation(g);
    return NULL;
}

static void test_metrics_record_per_thread(void)
{
    struct metrics_generation mine, theirs;
    metrics_take_generation(&mine);
    pthread_t th;
    pthread_create(&th, NULL, note_other_thread, &theirs);
    pthread_join(th, NULL);
    CHECK_INT_EQ(theirs.completion_tokens, 5);
    CHECK_INT_EQ(metrics_take_generation(&mine), 0);
}

static void test_metrics_daemon_name(void)
{
    char host[256], want[512], got[512];
    CHECK_INT_EQ(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';

    metrics_daemon_name("10.0.0.11:9000", got, sizeof(got));
    CHECK_STR_EQ(got, "10.0.0.11:9000");
    metrics_daemon_name("127.0.0.1:9001", got, sizeof(got));
    CHECK_STR_EQ(got, "127.0.0.1:9001");
    /* Wildcard hosts say nothing about which machine: the hostname instead. */
    const char *wild[] = {"0.0.0.0:9000", ":9000", "[::]:9000", "*:9000"};
    snprintf(want, sizeof(want), "%s:9000", host);
    for (size_t i = 0; i < sizeof(wild) / sizeof(wild[0]); i++) {
        metrics_daemon_name(wild[i], got, sizeof(got));
        CHECK_MSG(!strcmp(got, want), "%s -> %s, want %s", wild[i], got, want);
    }
    snprintf(want, sizeof(want), "%s:/run/mlxm.sock", host);
    metrics_daemon_name("/run/mlxm.sock", got, sizeof(got));
    CHECK_STR_EQ(got, want);
    snprintf(want, sizeof(want), "%s:./run/fcgi.sock", host);
    metrics_daemon_name("./run/fcgi.sock", got, sizeof(got));
    CHECK_STR_EQ(got, want);
    /* Truncated, still terminated. */
    metrics_daemon_name("10.0.0.11:9000", got, 5);
    CHECK_STR_EQ(got, "10.0");
}

static void test_metrics_daemon_info(void)
{
    metrics_reset();
    struct app *app = calloc(1, sizeof(*app));
    CHECK(app != NULL);
    if (!app)
        return;
    app->started_at = 1700000000;
    app->config.listen = strdup("127.0.0.1:9123");
    size_t len = 0;
    char *t = metrics_render(app, NULL, &len);
    CHECK(t != NULL);
    if (t) {
        char host[256], want[600];
        gethostname(host, sizeof(host));
        host[sizeof(host) - 1] = '\0';
        snprintf(want, sizeof(want),
                 "mlxm_daemon_info{daemon=\"127.0.0.1:9123\",hostname=\"%s\","
                 "listen=\"127.0.0.1:9123\",pid=\"%ld\"} 1\n",
                 host, (long)getpid());
        CHECK_MSG(strstr(t, want) != NULL, "missing %s", want);
        CHECK(strstr(t, "# TYPE mlxm_daemon_info gauge\n"));
        CHECK(strstr(t, "mlxm_start_time_seconds 1700000000\n"));
        CHECK_INT_EQ(strlen(t), len);
    }
    free(t);
    /* Without an app (no daemon) there is nothing to name. */
    t = render();
    CHECK(strstr(t, "mlxm_daemon_info") == NULL);
    free(t);
    free(app->config.listen);
    free(app);
}

static void test_log_ring(void)
{
    log_open("/dev/null", 1, "info");
    unsigned long long start = log_ring_wait(0, 0);
    log_msg(LOG_LEVEL_DEBUG, "filtered out");
    log_msg(LOG_LEVEL_INFO, "one");
    log_msg(LOG_LEVEL_WARN, "two");
    CHECK_INT_EQ(log_ring_wait(start, 0), start + 2);
    char *lines[8];
    unsigned long long seqs[8];
    int n = log_ring_read(start, lines, seqs, 8);
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK(strstr(lines[0], "\"msg\":\"one\""));
        CHECK(strstr(lines[1], "\"level\":\"warn\""));
        CHECK_INT_EQ(seqs[1], start + 2);
    }
    for (int i = 0; i < n; i++)
        free(lines[i]);
    /* Overflowing the ring keeps the newest LOG_RING_LINES lines. */
    for (int i = 0; i < LOG_RING_LINES + 10; i++)
        log_msg(LOG_LEVEL_INFO, "line %d", i);
    n = log_ring_read(0, lines, seqs, 1);
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(seqs[0], start + 2 + 10 + 1);
    CHECK(n == 1 && strstr(lines[0], "\"msg\":\"line 10\""));
    if (n == 1)
        free(lines[0]);
    /* A wait with nothing new times out and reports the newest number. */
    unsigned long long newest = log_ring_wait(0, 0);
    CHECK_INT_EQ(log_ring_wait(newest, 20), newest);
    log_close();
}

int main(void)
{
    RUN(test_metrics_requests_and_histogram);
    RUN(test_metrics_series_bounded);
    RUN(test_metrics_label_escaping);
    RUN(test_metrics_generation_record);
    RUN(test_metrics_record_per_thread);
    RUN(test_metrics_daemon_name);
    RUN(test_metrics_daemon_info);
    RUN(test_log_ring);
    return harness_finish();
}
