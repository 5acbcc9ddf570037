/*
 * metrics.h - process-wide counters and histograms for Prometheus, and the
 * per-request record of what a generation did.
 *
 * The server observes every request (method, route pattern, status,
 * duration); the inference layer (infer.c) notes each generation's usage on
 * the worker thread that drains it and each inter-token gap on the
 * scheduler thread.  metrics_render() writes the text exposition format
 * (version 0.0.4) with these plus gauges read at scrape time from the pool
 * and the download manager, and mlxm_daemon_info naming the daemon (its
 * listen address, hostname and pid) so that the expositions of several
 * daemons behind one nginx can be told apart.
 *
 * Label sets are bounded (METRICS_MAX_SERIES request series, METRICS_MAX_MODELS
 * models); what does not fit is counted under endpoint/model "other", so no
 * client can grow the daemon's memory through label values.
 *
 * Thread-safe: every function may be called from any thread.  The
 * generation record is per thread: a FastCGI worker handles one request at a
 * time, and the streams of a request are drained by the worker handling it.
 */
#ifndef FCGI_METRICS_H
#define FCGI_METRICS_H

#include <stddef.h>

struct app;
struct db;
struct engine_usage;

#define METRICS_MAX_SERIES 256
#define METRICS_MAX_MODELS 64

/* What the generations of the current request on this thread added up to. */
struct metrics_generation {
    int streams;       /* generations finished (n > 1 choices give several) */
    int prompt_tokens; /* summed over the streams */
    int completion_tokens;
    double ttft_ms;    /* the first stream's time to first token */
    double decode_tps; /* the best stream's decode rate */
};

/* Counts one finished request.  `endpoint` is the route pattern
 * ("/api/profiles/{id}") or NULL when no route matched. */
void metrics_observe_request(const char *method, const char *endpoint, int status,
                             double duration_ms);

/* Adds one finished generation of `model` to the totals and histograms. */
void metrics_observe_generation(const char *model, const struct metrics_generation *g);

/* One gap between two tokens of a stream (scheduler thread). */
void metrics_observe_token_gap(double ms);

/* Adds a finished stream's usage to this thread's record (worker thread). */
void metrics_note_usage(const struct engine_usage *u);

/* Copies this thread's record into *out and clears it.  Returns the number
 * of streams noted since the last call (0: the request generated nothing). */
int metrics_take_generation(struct metrics_generation *out);

/*
 * Writes every metric in the Prometheus text format into a new
 * NUL-terminated string (caller frees) and its length into *len; pool and
 * download gauges come from app (either may be NULL) through db.  NULL when
 * out of memory.
 */
char *metrics_render(struct app *app, struct db *db, size_t *len);

/*
 * The name this daemon goes by in mlxm_daemon_info (several daemons behind
 * one nginx answer /metrics in turn): its TCP listen address "host:port"
 * with a wildcard or empty host ("0.0.0.0", "::", "*") replaced by the
 * machine's hostname, or "hostname:/path" for a unix socket.  Writes at
 * most n bytes including the NUL (truncating); out is "" when n is 0.
 */
void metrics_daemon_name(const char *listen, char *out, size_t n);

/* Forgets every observation (tests). */
void metrics_reset(void);

#endif
