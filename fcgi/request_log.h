/*
 * request_log.h - the request_log table: one row per inference request
 * (model, tokens, time to first token, tokens/s, API key), written by the
 * server after the response, and read back for the dashboard.
 *
 * The table keeps the newest REQUEST_LOG_KEEP rows; older ones are pruned
 * now and then by the insert.  Functions take the calling thread's
 * connection.  Thread-safe.
 */
#ifndef FCGI_REQUEST_LOG_H
#define FCGI_REQUEST_LOG_H

#include <cJSON.h>

struct db;

#define REQUEST_LOG_KEEP 100000

struct request_log_row {
    const char *request_id, *method, *path;
    int status;
    const char *model; /* NULL when the request named none */
    int has_usage;     /* 0: the token and timing columns stay NULL */
    int prompt_tokens, completion_tokens;
    double ttft_ms, tokens_per_second;
    double duration_ms;
    long long api_key_id; /* 0 = none (stored as NULL) */
};

/* Inserts one row; 0 or -1 (a failed insert costs the row, not the request). */
int request_log_insert(struct db *db, const struct request_log_row *row);

/* The newest `limit` rows, newest first, as a JSON array; NULL on error. */
cJSON *request_log_recent(struct db *db, int limit);

#endif
