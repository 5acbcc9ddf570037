#include "http.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    }
    return "Unknown";
}

/* OpenAI's error "type" for a status. */
static const char *http_error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    }
    return status >= 500 ? "server_error" : "invalid_request_error";
}

static const char *http_default_code(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "invalid_api_key";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "body_too_large";
    case 422: return "invalid_field";
    case 429: return "rate_limited";
    }
    return status >= 500 ? "internal_error" : "bad_request";
}

const char *http_param(const struct http_request *req, const char *name)
{
    return req->fcgx ? FCGX_GetParam(name, req->fcgx->envp) : NULL;
}

static int http_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *http_url_decode(struct arena *a, const char *s, size_t len)
{
    char *out = arena_alloc(a, len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && len - i >= 3 && http_hex(s[i + 1]) >= 0 &&
                   http_hex(s[i + 2]) >= 0) {
            out[o++] = (char)(http_hex(s[i + 1]) * 16 + http_hex(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

const char *http_query(struct http_request *req, const char *key)
{
    size_t klen = strlen(key);
    const char *q = req->query ? req->query : "";
    while (*q) {
        size_t plen = strcspn(q, "&");
        const char *eq = memchr(q, '=', plen);
        size_t name_len = eq ? (size_t)(eq - q) : plen;
        if (name_len == klen && !memcmp(q, key, klen)) {
            if (!eq)
                return "";
            return http_url_decode(req->arena, eq + 1, plen - name_len - 1);
        }
        q += plen;
        if (*q == '&')
            q++;
    }
    return NULL;
}

cJSON *http_own_json(struct http_request *req, cJSON *json)
{
    if (!json)
        return NULL;
    struct http_owned_json *o = arena_alloc(req->arena, sizeof(*o));
    if (!o) { /* cannot track it: free now rather than leak */
        cJSON_Delete(json);
        return NULL;
    }
    o->json = json;
    o->next = req->owned;
    req->owned = o;
    return json;
}

void http_release(struct http_request *req)
{
    for (struct http_owned_json *o = req->owned; o; o = o->next)
        cJSON_Delete(o->json);
    req->owned = NULL;
}

void http_add_header(struct http_request *req, const char *header)
{
    char *h = arena_printf(req->arena, "%s%s\r\n", req->headers ? req->headers : "", header);
    if (h)
        req->headers = h;
}

static int http_write(struct http_request *req, const char *data, size_t len)
{
    if (req->client_gone || !req->fcgx)
        return -1;
    while (len > 0) {
        int chunk = len > (1 << 30) ? (1 << 30) : (int)len;
        if (FCGX_PutStr(data, chunk, req->fcgx->out) != chunk) {
            req->client_gone = 1;
            return -1;
        }
        data += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}

static int http_send_head(struct http_request *req, int status, const char *content_type,
                          long long content_length)
{
    char head[512];
    int n = snprintf(head, sizeof(head), "Status: %d %s\r\n", status, http_reason(status));
    if (content_type)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n", content_type);
    if (content_length >= 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %lld\r\n",
                      content_length);
    if (req->request_id)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "X-Request-Id: %s\r\n", req->request_id);
    req->status = status;
    if (http_write(req, head, (size_t)n))
        return -1;
    if (req->headers && http_write(req, req->headers, strlen(req->headers)))
        return -1;
    return http_write(req, "\r\n", 2);
}

int http_send_json(struct http_request *req, int status, const cJSON *body)
{
    char *text = cJSON_PrintUnformatted(body);
    if (!text) {
        static const char oom[] =
            "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
            "\"code\":\"internal_error\",\"param\":null}}";
        http_send_head(req, 500, "application/json", (long long)strlen(oom));
        http_write(req, oom, strlen(oom));
        return 500;
    }
    size_t len = strlen(text);
    if (http_send_head(req, status, "application/json", (long long)len) == 0)
        http_write(req, text, len);
    free(text);
    return status;
}

int http_send_text(struct http_request *req, int status, const char *content_type, const char *body,
                   size_t len)
{
    if (http_send_head(req, status, content_type, (long long)len) == 0)
        http_write(req, body, len);
    return status;
}

cJSON *http_error_json(int status, const char *code, const char *param, const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = root ? cJSON_AddObjectToObject(root, "error") : NULL;
    if (err) {
        cJSON_AddStringToObject(err, "message", msg);
        cJSON_AddStringToObject(err, "type", http_error_type(status));
        cJSON_AddStringToObject(err, "code", code ? code : http_default_code(status));
        if (param)
            cJSON_AddStringToObject(err, "param", param);
        else
            cJSON_AddNullToObject(err, "param");
    }
    return root;
}

int http_send_error(struct http_request *req, int status, const char *code, const char *param,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return http_send_json(req, status,
                          http_own_json(req, http_error_json(status, code, param, msg)));
}

const char *http_anthropic_error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    }
    return status >= 500 ? "api_error" : "invalid_request_error";
}

cJSON *http_anthropic_error_json(int status, const char *type, const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    if (root) {
        cJSON_AddStringToObject(root, "type", "error");
        cJSON *err = cJSON_AddObjectToObject(root, "error");
        if (err) {
            cJSON_AddStringToObject(err, "type", type ? type : http_anthropic_error_type(status));
            cJSON_AddStringToObject(err, "message", msg);
        }
    }
    return root;
}

int http_send_anthropic_error(struct http_request *req, int status, const char *type,
                              const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return http_send_json(req, status,
                          http_own_json(req, http_anthropic_error_json(status, type, msg)));
}

int http_client_check(struct http_request *req)
{
    if (req->client_gone || !req->fcgx || req->fcgx->ipcFd < 0)
        return req->client_gone;
    struct pollfd p = {.fd = req->fcgx->ipcFd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        req->client_gone = 1;
    return req->client_gone;
}

int http_send_empty(struct http_request *req, int status)
{
    http_send_head(req, status, NULL, status == 204 ? -1 : 0);
    return status;
}

cJSON *http_parse_json_body(struct http_request *req, int any_value)
{
    if (req->body_len == 0) {
        http_send_error(req, 400, "invalid_json", NULL, "request body is empty; expected JSON");
        return NULL;
    }
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 0);
    if (!json) {
        size_t off = end && end >= req->body ? (size_t)(end - req->body) : 0;
        http_send_error(req, 400, "invalid_json", NULL,
                        "request body is not valid JSON (problem at byte %zu)", off);
        return NULL;
    }
    /* Trailing bytes after the value (other than whitespace) are an error too. */
    while (end && (size_t)(end - req->body) < req->body_len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && (size_t)(end - req->body) < req->body_len) {
        cJSON_Delete(json);
        http_send_error(req, 400, "invalid_json", NULL,
                        "unexpected data after the JSON value at byte %zu",
                        (size_t)(end - req->body));
        return NULL;
    }
    http_own_json(req, json);
    if (!any_value && !cJSON_IsObject(json)) {
        http_send_error(req, 400, "invalid_json", NULL, "request body must be a JSON object");
        return NULL;
    }
    return json;
}

int http_sse_begin(struct http_request *req)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "Status: 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    req->status = 200;
    if (http_write(req, head, (size_t)n))
        return -1;
    if (req->request_id) {
        char id[128];
        int m = snprintf(id, sizeof(id), "X-Request-Id: %s\r\n", req->request_id);
        if (http_write(req, id, (size_t)m))
            return -1;
    }
    if (req->headers && http_write(req, req->headers, strlen(req->headers)))
        return -1;
    if (http_write(req, "\r\n", 2))
        return -1;
    if (FCGX_FFlush(req->fcgx->out) != 0) {
        req->client_gone = 1;
        return -1;
    }
    return 0;
}

int http_sse_send(struct http_request *req, const char *event, const char *data)
{
    if (event && (http_write(req, "event: ", 7) || http_write(req, event, strlen(event)) ||
                  http_write(req, "\n", 1)))
        return -1;
    if (http_write(req, "data: ", 6) || http_write(req, data, strlen(data)) ||
        http_write(req, "\n\n", 2))
        return -1;
    if (FCGX_FFlush(req->fcgx->out) != 0 || FCGX_GetError(req->fcgx->out) != 0) {
        req->client_gone = 1;
        return -1;
    }
    return 0;
}

int http_sse_comment(struct http_request *req, const char *text)
{
    if (http_write(req, ": ", 2) || http_write(req, text, strlen(text)) ||
        http_write(req, "\n\n", 2))
        return -1;
    if (FCGX_FFlush(req->fcgx->out) != 0 || FCGX_GetError(req->fcgx->out) != 0) {
        req->client_gone = 1;
        return -1;
    }
    return 0;
}
