#include "openai_response.h"

#include "api_pool.h"
#include "app.h"
#include "model_access.h"
#include "sse_keepalive.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int openai_send_error(struct http_request *req, const struct openai_error *e)
{
    return http_send_error(req, e->status, e->code[0] ? e->code : NULL,
                           e->param[0] ? e->param : NULL, "%s", e->message);
}

int openai_acquire(struct http_request *req, const char *model, struct pool_lease **out)
{
    struct pool_error pe;
    memset(&pe, 0, sizeof(pe));
    if (!req->app->pool) {
        http_send_error(req, 503, "no_model_pool", NULL, "the model pool is not running");
        return -1;
    }
    if (model_access_allowed(req, model, &pe) &&
        pool_acquire(req->app->pool, req->db, model, out, &pe) == 0)
        return 0;
    api_send_pool_error(req, &pe);
    return -1;
}

int openai_handle(struct http_request *req,
                  int (*parse)(struct arena *a, const cJSON *body, struct openai_request *r,
                               struct openai_error *e),
                  int (*serve)(struct http_request *req, struct openai_request *r,
                               struct pool_lease *lease, struct pool_usage *usage))
{
    cJSON *body = http_parse_json_body(req, 0);
    if (!body)
        return req->status;
    struct openai_request r;
    struct openai_error e;
    if (parse(req->arena, body, &r, &e)) {
        openai_request_free(&r);
        return openai_send_error(req, &e);
    }
    struct pool_lease *lease;
    if (openai_acquire(req, r.model, &lease)) {
        openai_request_free(&r);
        return req->status;
    }
    struct pool_usage usage = {0};
    int status = serve(req, &r, lease, &usage);
    pool_release(lease, &usage);
    openai_request_free(&r);
    return status;
}

void openai_make_id(const char *prefix, char *out, size_t len)
{
    unsigned char raw[12];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw)) {
        /* Unique enough for an id when /dev/urandom is unavailable. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long v =
            (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20);
        for (size_t i = 0; i < sizeof(raw); i++)
            raw[i] = (unsigned char)(v >> (i % 8 * 8)) ^ (unsigned char)(uintptr_t)&raw[i];
    }
    if (fd >= 0)
        close(fd);
    int n = snprintf(out, len, "%s", prefix);
    for (size_t i = 0; i < sizeof(raw) && n >= 0 && (size_t)n + 2 < len; i++)
        n += snprintf(out + n, len - (size_t)n, "%02x", raw[i]);
}

cJSON *openai_usage_json(int prompt_tokens, int completion_tokens, int cached_tokens)
{
    cJSON *u = cJSON_CreateObject();
    cJSON *d = u ? cJSON_AddObjectToObject(u, "prompt_tokens_details") : NULL;
    if (!d || !cJSON_AddNumberToObject(d, "cached_tokens", cached_tokens) ||
        !cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens) ||
        !cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens) ||
        !cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens + completion_tokens)) {
        cJSON_Delete(u);
        return NULL;
    }
    return u;
}

/* A token's raw bytes (a byte-level token may be part of a character). */
static void openai_token_raw(const struct tokenizer *tok, int32_t id, char *buf, size_t len)
{
    char *text = NULL;
    buf[0] = 0;
    if (tok_decode_raw(tok, &id, 1, 0, &text) == ST_OK && text) {
        size_t n = strlen(text);
        if (n >= len)
            n = len - 1;
        memcpy(buf, text, n);
        buf[n] = 0;
    }
    free(text);
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t openai_utf8_len(const unsigned char *s)
{
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (s[0] >= 0x80 && s[0] < 0xc2)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

void openai_token_text(const struct tokenizer *tok, int32_t id, char *buf, size_t len)
{
    char raw[256];
    openai_token_raw(tok, id, raw, sizeof(raw));
    /* JSON strings must be UTF-8: a partial character shows as U+FFFD,
     * its bytes stay exact in "bytes". */
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p && o + 4 < len;) {
        size_t n = openai_utf8_len(p);
        if (n) {
            memcpy(buf + o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        }
    }
    buf[o] = 0;
}

/* {token, logprob, bytes} */
static cJSON *openai_token_json(const struct tokenizer *tok, int32_t id, float logprob)
{
    char text[1024], raw[256];
    openai_token_text(tok, id, text, sizeof(text));
    openai_token_raw(tok, id, raw, sizeof(raw));
    cJSON *o = cJSON_CreateObject();
    cJSON *bytes = cJSON_CreateArray();
    if (!o || !bytes || !cJSON_AddStringToObject(o, "token", text) ||
        !cJSON_AddNumberToObject(o, "logprob", logprob) ||
        !cJSON_AddItemToObject(o, "bytes", bytes)) {
        cJSON_Delete(o);
        cJSON_Delete(bytes);
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber(*p));
    return o;
}

cJSON *openai_logprob_json(const struct tokenizer *tok, const struct sampler_result *lp)
{
    cJSON *o = openai_token_json(tok, lp->id, lp->logprob);
    cJSON *top = o ? cJSON_AddArrayToObject(o, "top_logprobs") : NULL;
    if (!top) {
        cJSON_Delete(o);
        return NULL;
    }
    for (int i = 0; i < lp->n_top; i++) {
        cJSON *t = openai_token_json(tok, lp->top[i].id, lp->top[i].logprob);
        if (!t || !cJSON_AddItemToArray(top, t)) {
            cJSON_Delete(t);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

static double openai_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int openai_next_event(struct http_request *req, struct infer_stream *const *streams,
                      const bool *done, int n, bool sse, int *turn, struct infer_event **ev)
{
    double quiet_since = openai_now_ms();
    int keepalive_ms = sse_keepalive_ms(OPENAI_KEEPALIVE_MS);
    for (;;) {
        /* A write notices a departed client only when there is something to
         * write; the connection itself tells sooner (nginx closes it). */
        if (http_client_check(req)) {
            for (int i = 0; i < n; i++)
                if (!done[i])
                    infer_cancel(streams[i]);
            return -1;
        }
        /* Round robin from *turn: choices that all have tokens waiting go
         * out interleaved, as the engine batched them, not one after
         * another. */
        int first = -1;
        for (int k = 0; k < n; k++) {
            int i = (*turn + k) % n;
            if (done[i])
                continue;
            if (first < 0)
                first = i;
            if (n > 1 && infer_next(streams[i], 0, ev)) {
                *turn = (i + 1) % n;
                return i;
            }
        }
        if (first < 0)
            return -1;
        /* One stream: block on it.  Several: poll them in short waits. */
        int wait = n > 1 ? 20 : 1000;
        if (wait > keepalive_ms)
            wait = keepalive_ms;
        if (infer_next(streams[first], wait, ev)) {
            *turn = (first + 1) % n;
            return first;
        }
        if (sse && openai_now_ms() - quiet_since >= keepalive_ms) {
            http_sse_comment(req, "keep-alive"); /* a failure shows in client_gone */
            quiet_since = openai_now_ms();
        }
    }
}

const char *openai_finish_reason(enum engine_finish f)
{
    return f == ENGINE_FINISH_LENGTH ? "length" : "stop";
}

int openai_sse_json(struct http_request *req, const cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    if (!text)
        return -1;
    int rc = http_sse_send(req, NULL, text);
    free(text);
    return rc;
}

int openai_send_failure(struct http_request *req, bool stream, const struct infer_event *done,
                        bool oom)
{
    bool cancelled = !oom && (!done || done->finish == ENGINE_FINISH_CANCELLED);
    const char *code = cancelled ? "generation_cancelled" : "generation_failed";
    char msg[600];
    if (cancelled)
        snprintf(msg, sizeof(msg), "%s", INFER_CANCELLED_MESSAGE);
    else
        snprintf(msg, sizeof(msg), "generation failed: %s",
                 oom                      ? "out of memory"
                 : done && done->error[0] ? done->error
                                          : "unknown error");
    int status = cancelled ? 503 : 500;
    if (!stream)
        return http_send_error(req, status, code, NULL, "%s", msg);
    cJSON *err = http_error_json(status, code, NULL, msg);
    if (!err)
        return -1;
    int rc = openai_sse_json(req, err);
    cJSON_Delete(err);
    return rc;
}
