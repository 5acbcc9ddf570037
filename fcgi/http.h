/*
 * http.h - one HTTP request as the daemon sees it, and the ways to answer it.
 *
 * A worker thread fills a struct http_request from the FastCGI parameters
 * (every string copied into the request's arena, so nothing points into
 * libfcgi's buffers), routes it, and the handler answers with exactly one of
 * http_send_json / http_send_error / http_send_empty, or streams with
 * http_sse_begin + http_sse_send.  cJSON trees handed to http_own_json() are
 * deleted when the request ends, so handlers need no cleanup paths.  A
 * request belongs to one worker thread.
 */
#ifndef FCGI_HTTP_H
#define FCGI_HTTP_H

#include <cJSON.h>
#include <fcgiapp.h>
#include <stddef.h>

#include "arena.h"
#include "router.h"

struct app;
struct db;

struct http_owned_json {
    cJSON *json;
    struct http_owned_json *next;
};

struct http_request {
    struct arena *arena; /* freed after the response is finished */
    struct app *app;     /* process-wide state (config, engine pool) */
    struct db *db;       /* this worker's database connection */
    FCGX_Request *fcgx;  /* NULL in unit tests */
    const char *method;  /* "GET" */
    const char *path;    /* "/api/profiles/3", without the query string */
    const char *query;   /* "a=1&b=2" or "" */
    const char *content_type;
    const char *request_id; /* from nginx $request_id, or generated */
    const char *remote_addr;
    const char *body; /* NUL-terminated copy, body_len bytes */
    size_t body_len;
    struct route_params params;
    int status;           /* status sent, 0 before the response starts */
    int client_gone;      /* a write failed: stop producing output */
    long long api_key_id; /* the API key that authorized the request (auth.h), 0 = none */
    int tokens_recorded;  /* the handler called auth_record_tokens (the server need not) */
    char *headers;        /* extra "Name: value\r\n" lines, arena memory */
    struct http_owned_json *owned;
};

/* Returns the value of FastCGI parameter `name` (e.g. "HTTP_AUTHORIZATION"),
 * or NULL.  The string lives in libfcgi's buffers until the request ends. */
const char *http_param(const struct http_request *req, const char *name);

/* Returns the percent-decoded value of query parameter `key` in the arena,
 * or NULL when absent. */
const char *http_query(struct http_request *req, const char *key);

/* Deletes `json` when the request ends; returns json for chaining. */
cJSON *http_own_json(struct http_request *req, cJSON *json);

/* Frees everything http_own_json() collected (called by the worker). */
void http_release(struct http_request *req);

/* Sends a JSON response; `body` is not freed (own it if needed). */
int http_send_json(struct http_request *req, int status, const cJSON *body);

/*
 * Sends {"error":{"message","type","code","param"}} (OpenAI's shape) with
 * `status`.  `type` and `code` default from the status when NULL; `param`
 * names the offending field or is NULL.  Returns status.
 */
int http_send_error(struct http_request *req, int status, const char *code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* http_send_error's body as an object the caller owns (NULL when out of
 * memory), for an error sent some other way (an SSE event). */
cJSON *http_error_json(int status, const char *code, const char *param, const char *msg);

/*
 * Sends Anthropic's error shape {"type":"error","error":{"type","message"}}
 * with `status`.  `type` ("invalid_request_error", "not_found_error", ...)
 * defaults from the status when NULL.  Returns status.
 */
int http_send_anthropic_error(struct http_request *req, int status, const char *type,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* http_send_anthropic_error's body as an object the caller owns (NULL when
 * out of memory), for an error sent as an SSE event. */
cJSON *http_anthropic_error_json(int status, const char *type, const char *msg);

/* Anthropic's error "type" for an HTTP status. */
const char *http_anthropic_error_type(int status);

/* Sends `len` bytes of `body` as `content_type` (text formats: /metrics). */
int http_send_text(struct http_request *req, int status, const char *content_type, const char *body,
                   size_t len);

/* Sends a response without a body (204 and friends). */
int http_send_empty(struct http_request *req, int status);

/* Extra header line for the next response, e.g. "Allow: GET, PUT". */
void http_add_header(struct http_request *req, const char *header);

/*
 * Parses the body as a JSON object (or any JSON value when any_value).
 * On failure sends 400 with the byte offset of the problem and returns
 * NULL; the returned tree is owned by the request.
 */
cJSON *http_parse_json_body(struct http_request *req, int any_value);

/* Starts a Server-Sent Events stream (200, text/event-stream, no buffering). */
int http_sse_begin(struct http_request *req);

/* Writes "event: EVENT\ndata: DATA\n\n" (event may be NULL) and flushes.
 * Returns 0, or -1 when the client is gone (req->client_gone is set). */
int http_sse_send(struct http_request *req, const char *event, const char *data);

/* Writes the SSE comment ": TEXT\n\n" (a keep-alive clients ignore) and
 * flushes.  Returns 0, or -1 when the client is gone. */
int http_sse_comment(struct http_request *req, const char *text);

/*
 * Whether the client went away without a write to notice it: nginx closes
 * the FastCGI connection when its client disconnects.  Sets and returns
 * req->client_gone; never blocks.  For long waits with nothing to send.
 */
int http_client_check(struct http_request *req);

/* Reason phrase for a status code ("Not Found"). */
const char *http_reason(int status);

#endif
