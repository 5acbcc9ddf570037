/*
 * api_anthropic.c - the Anthropic Messages API: POST /v1/messages (one reply
 * or a stream of events) and POST /v1/messages/count_tokens.
 *
 * Both render the chat and tokenize it here, the way engine_submit would
 * for a chat prompt, and submit the ids: count_tokens then reports exactly
 * the input_tokens a generation would, and a prefill (a final assistant
 * message) is cut out of the rendered text as transformers'
 * continue_final_message does.  Every error is Anthropic's error JSON, and
 * once a stream has begun an `error` event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic_output.h"
#include "anthropic_request.h"
#include "auth.h"
#include "engine.h"
#include "http.h"
#include "infer.h"
#include "model_access.h"
#include "pool.h"
#include "reasoning.h"
#include "routes.h"
#include "sse_keepalive.h"
#include "app.h"

/* How long a stream may be silent before a ping keeps proxies from closing it
 * (MLXM_SSE_KEEPALIVE_MS overrides, see sse_keepalive.h). */
#define AA_KEEPALIVE_MS 10000
/* How often a request with no tokens to write looks whether its client is still there. */
#define AA_CLIENT_CHECK_MS 250

/* ---- errors ------------------------------------------------------------- */

static int aa_pool_error(struct http_request *req, const struct pool_error *err)
{
    if (err->retry_after > 0) {
        char h[64];
        snprintf(h, sizeof(h), "Retry-After: %d", err->retry_after);
        http_add_header(req, h);
    }
    return http_send_anthropic_error(req, err->http_status, NULL, "%s", err->message);
}

/* The status an engine error maps to: the client's fault or ours. */
static int aa_status_http(enum status st)
{
    switch (st) {
    case ST_ERR_INVALID:
    case ST_ERR_RANGE:
    case ST_ERR_UNSUPPORTED:
    case ST_ERR_FORMAT: return 400;
    case ST_ERR_BUSY: return 503;
    default: return 500;
    }
}

/* Parses the body as a JSON object, answering in Anthropic's format. */
static cJSON *aa_body(struct http_request *req)
{
    if (req->body_len == 0) {
        http_send_anthropic_error(req, 400, NULL, "request body is empty; expected JSON");
        return NULL;
    }
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 0);
    if (!json) {
        size_t off = end && end >= req->body ? (size_t)(end - req->body) : 0;
        http_send_anthropic_error(req, 400, NULL,
                                  "request body is not valid JSON (problem at byte %zu)", off);
        return NULL;
    }
    http_own_json(req, json);
    return json;
}

/* ---- prompt ------------------------------------------------------------- */

struct aa_prompt {
    int32_t *ids;
    size_t n;
    bool opens_think; /* the template left a <think> open */
};

/* The last occurrence of needle in hay, or NULL. */
static const char *aa_rfind(const char *hay, size_t hay_len, const char *needle)
{
    size_t n = strlen(needle);
    if (n > hay_len)
        return NULL;
    for (size_t i = hay_len - n + 1; i-- > 0;)
        if (!memcmp(hay + i, needle, n))
            return hay + i;
    return NULL;
}

static enum status aa_render(struct engine_model *m, const struct anthropic_request *r,
                             struct aa_prompt *p, char *err, size_t errlen)
{
    char *text = NULL;
    enum status st = engine_render_chat(m, r->chat, &text, err, errlen);
    if (st != ST_OK) {
        if (st == ST_ERR_UNSUPPORTED)
            snprintf(err, errlen, "the model has no usable chat template");
        return st;
    }
    size_t len = strlen(text);
    if (r->prefill) {
        const char *at = aa_rfind(text, len, r->prefill);
        if (!at) {
            free(text);
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "the chat template does not write the final assistant message "
                               "verbatim, so it cannot be continued");
        }
        len = (size_t)(at - text) + strlen(r->prefill);
        text[len] = '\0';
    }
    p->opens_think = reasoning_prompt_opens_think(text, len);
    /* As engine_submit does for chat prompts: the template wrote the special
     * tokens itself, so no post-processor, and specials are parsed. */
    st = tok_encode(engine_model_tokenizer(m), text, len, TOK_ENCODE_PARSE_SPECIAL, &p->ids, &p->n);
    free(text);
    if (st != ST_OK)
        return status_fail(err, errlen, st, "cannot tokenize the rendered chat: %s",
                           status_str(st));
    return ST_OK;
}

/*
 * The steps both endpoints share: parse, acquire the model, apply the
 * profile's system prompt, render and tokenize.  Returns 0 with *lease and
 * *p (the caller releases both), or the status of the error already sent.
 */
static int aa_prepare(struct http_request *req, bool count_only, struct anthropic_request *r,
                      struct pool_lease **lease, struct aa_prompt *p)
{
    *lease = NULL;
    memset(p, 0, sizeof(*p));
    cJSON *body = aa_body(req);
    if (!body)
        return req->status;
    struct anthropic_error aerr;
    if (anthropic_request_parse(body, count_only, r, &aerr))
        return http_send_anthropic_error(req, aerr.status, aerr.type, "%s", aerr.message);
    struct pool_error perr;
    if (!model_access_allowed(req, r->model, &perr) ||
        pool_acquire(req->app->pool, req->db, r->model, lease, &perr)) {
        anthropic_request_free(r);
        return aa_pool_error(req, &perr);
    }
    char err[1024] = "";
    enum status st = ST_OK;
    if (anthropic_request_apply_system(r, pool_lease_profile(*lease)))
        st = status_fail(err, sizeof(err), ST_ERR_NOMEM, "out of memory");
    if (st == ST_OK)
        st = aa_render(pool_lease_model(*lease), r, p, err, sizeof(err));
    if (st != ST_OK) {
        pool_release(*lease, NULL);
        *lease = NULL;
        anthropic_request_free(r);
        return http_send_anthropic_error(req, aa_status_http(st), NULL, "%s", err);
    }
    return 0;
}

/* ---- count_tokens ------------------------------------------------------- */

int api_anthropic_count_tokens(struct http_request *req)
{
    struct anthropic_request r;
    struct pool_lease *lease;
    struct aa_prompt p;
    int rc = aa_prepare(req, true, &r, &lease, &p);
    if (rc)
        return rc;
    pool_release(lease, NULL);
    anthropic_request_free(&r);
    free(p.ids);
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o || !cJSON_AddNumberToObject(o, "input_tokens", (double)p.n))
        return http_send_anthropic_error(req, 500, NULL, "out of memory");
    return http_send_json(req, 200, o);
}

/* ---- messages ----------------------------------------------------------- */

struct aa_gen {
    struct http_request *req;
    const char *model_name;
    char id[96];
    int input_tokens;
    int cached_tokens; /* of input_tokens, read from the prefix cache (known at the end) */
};

static void aa_send(struct http_request *req, const char *event, const cJSON *data)
{
    if (req->client_gone)
        return;
    char *text = cJSON_PrintUnformatted(data);
    if (text)
        http_sse_send(req, event, text);
    else
        req->client_gone = 1; /* cannot serve this client any more */
    free(text);
}

static void aa_on_block_event(void *user, const char *event, const cJSON *data)
{
    aa_send(user, event, data);
}

static void aa_send_simple(struct http_request *req, const char *event)
{
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "type", event))
        aa_send(req, event, o);
    cJSON_Delete(o);
}

/* input_tokens stays the whole prompt (as count_tokens says) and
 * cache_read_input_tokens tells how much of it the engine's prefix cache
 * served; nothing is ever written to a cache on request, so
 * cache_creation_input_tokens is 0. */
static cJSON *aa_usage(int input_tokens, int output_tokens, int cached_tokens)
{
    cJSON *u = cJSON_CreateObject();
    if (!u)
        return NULL;
    cJSON_AddNumberToObject(u, "input_tokens", input_tokens);
    cJSON_AddNumberToObject(u, "output_tokens", output_tokens);
    cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(u, "cache_read_input_tokens", cached_tokens);
    return u;
}

/* The message object: empty content and no stop reason for message_start. */
static cJSON *aa_message(const struct aa_gen *g, cJSON *content, const char *stop_reason,
                         const char *stop_sequence, int output_tokens)
{
    cJSON *m = cJSON_CreateObject();
    if (!m)
        return NULL;
    cJSON_AddStringToObject(m, "id", g->id);
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "model", g->model_name);
    cJSON_AddItemToObject(m, "content", content ? content : cJSON_CreateArray());
    if (stop_reason)
        cJSON_AddStringToObject(m, "stop_reason", stop_reason);
    else
        cJSON_AddNullToObject(m, "stop_reason");
    if (stop_sequence)
        cJSON_AddStringToObject(m, "stop_sequence", stop_sequence);
    else
        cJSON_AddNullToObject(m, "stop_sequence");
    cJSON_AddItemToObject(m, "usage", aa_usage(g->input_tokens, output_tokens, g->cached_tokens));
    return m;
}

static const char *aa_stop_reason(const struct infer_event *done, int tool_uses)
{
    if (done->finish == ENGINE_FINISH_LENGTH)
        return "max_tokens";
    if (done->stop_string)
        return "stop_sequence";
    return tool_uses > 0 ? "tool_use" : "end_turn";
}

/* A stream's error event: the body of the error response with `status`
 * (which picks the error type) and msg. */
static void aa_stream_error(struct http_request *req, int status, const char *msg)
{
    cJSON *o = http_anthropic_error_json(status, NULL, msg);
    if (o)
        aa_send(req, "error", o);
    cJSON_Delete(o);
}

static void aa_stream_start(struct aa_gen *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *m = aa_message(g, NULL, NULL, NULL, 0);
    if (o && m && cJSON_AddStringToObject(o, "type", "message_start")) {
        cJSON_AddItemToObject(o, "message", m);
        m = NULL;
        aa_send(g->req, "message_start", o);
    }
    cJSON_Delete(m);
    cJSON_Delete(o);
    aa_send_simple(g->req, "ping");
}

static void aa_stream_end(struct aa_gen *g, const char *stop_reason, const char *stop_sequence,
                          int output_tokens)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *d = o ? cJSON_AddObjectToObject(o, "delta") : NULL;
    cJSON *u = o ? cJSON_AddObjectToObject(o, "usage") : NULL;
    if (d && u) {
        cJSON_AddStringToObject(o, "type", "message_delta");
        cJSON_AddStringToObject(d, "stop_reason", stop_reason);
        if (stop_sequence)
            cJSON_AddStringToObject(d, "stop_sequence", stop_sequence);
        else
            cJSON_AddNullToObject(d, "stop_sequence");
        cJSON_AddNumberToObject(u, "output_tokens", output_tokens);
        cJSON_AddNumberToObject(u, "cache_read_input_tokens", g->cached_tokens);
        aa_send(g->req, "message_delta", o);
    }
    cJSON_Delete(o);
    aa_send_simple(g->req, "message_stop");
}

/*
 * Drains the stream into the output builder (which writes the block events
 * when streaming) and returns the DONE event (the caller frees it).  A
 * client that went away, or a builder out of memory (*oom), cancels the
 * generation; the loop still waits for DONE so the KV is freed first.
 */
static struct infer_event *aa_drain(struct http_request *req, struct infer_stream *s,
                                    struct anthropic_output *out, bool stream, int *oom)
{
    int cancelled = 0, idle_ms = 0;
    int keepalive_ms = sse_keepalive_ms(AA_KEEPALIVE_MS);
    int wait_ms = keepalive_ms < AA_CLIENT_CHECK_MS ? keepalive_ms : AA_CLIENT_CHECK_MS;
    for (;;) {
        struct infer_event *ev;
        if (!infer_next(s, wait_ms, &ev)) {
            idle_ms += wait_ms;
            if (stream && idle_ms >= keepalive_ms) {
                aa_send_simple(req, "ping");
                idle_ms = 0;
            }
        } else {
            idle_ms = 0;
            if (!*oom && ev->text_len && anthropic_output_feed(out, ev->text, ev->text_len))
                *oom = 1;
            if (ev->kind == ENGINE_EVENT_DONE)
                return ev;
            infer_event_free(ev);
        }
        /* Writes notice a departed client only when there is something to
         * write (not during a long prefill, not for a reply sent at the end),
         * so look at the connection too: one poll per token. */
        http_client_check(req);
        if ((req->client_gone || *oom) && !cancelled) {
            infer_cancel(s);
            cancelled = 1;
        }
    }
}

/* Generates and answers; *usage gets the counts for pool_release. */
static int aa_generate(struct http_request *req, struct anthropic_request *r,
                       struct pool_lease *lease, struct aa_prompt *p, struct pool_usage *usage)
{
    struct engine_model *m = pool_lease_model(lease);
    const cJSON *profile = pool_lease_profile(lease);
    struct aa_gen g = {.req = req, .model_name = pool_lease_name(lease), .input_tokens = (int)p->n};
    snprintf(g.id, sizeof(g.id), "msg_%s", req->request_id ? req->request_id : "0");

    struct engine_request_desc desc = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = p->ids, .n_prompt_ids = (int)p->n};
    anthropic_request_gen_params(r, profile, &engine_model_info(m)->defaults, &desc.params);
    /* tool_choice any / tool decode bare JSON (anthropic_request_gen_params):
     * no thinking, and AUTO reads the calls whatever the profile's parser. */
    bool forced = desc.params.json_object && r->tools_shown;
    struct anthropic_output_opts oo = {
        .thinking_starts_inside = p->opens_think && !forced,
        .parse_tools = r->tools_shown,
        .tool_format = forced ? TOOLCALL_FORMAT_AUTO
                              : toolcall_format_from_name(cJSON_GetStringValue(
                                    cJSON_GetObjectItemCaseSensitive(profile, "tool_call_parser"))),
        .forced_tool = r->forced_tool,
        .emit = r->stream ? aa_on_block_event : NULL,
        .user = req,
    };
    struct anthropic_output *out = anthropic_output_new(&oo);
    if (!out)
        return http_send_anthropic_error(req, 500, NULL, "out of memory");

    char err[1024] = "";
    struct infer_stream *s = NULL;
    enum status st = infer_start(m, &desc, &s, err, sizeof(err));
    if (st != ST_OK) {
        anthropic_output_free(out);
        return http_send_anthropic_error(req, aa_status_http(st), NULL, "%s", err);
    }
    if (r->stream && http_sse_begin(req) == 0)
        aa_stream_start(&g);

    int oom = 0;
    struct infer_event *done = aa_drain(req, s, out, r->stream, &oom);
    if (!oom && anthropic_output_finish(out))
        oom = 1;
    usage->prompt_tokens = done->usage.prompt_tokens;
    usage->completion_tokens = done->usage.completion_tokens;
    usage->decode_tps = done->usage.decode_tps;
    g.cached_tokens = done->usage.cached_tokens;
    const char *stop_reason = aa_stop_reason(done, anthropic_output_tool_uses(out));
    /* a failure's status picks its error type: 500 api_error, 503 overloaded_error */
    const char *failure = NULL;
    int failure_status = 500;
    if (oom) {
        failure = "out of memory while generating";
    } else if (done->finish == ENGINE_FINISH_ERROR) {
        failure = done->error[0] ? done->error : "generation failed";
    } else if (done->finish == ENGINE_FINISH_CANCELLED) {
        failure = INFER_CANCELLED_MESSAGE;
        failure_status = 503;
    }

    int status;
    if (req->client_gone && !r->stream) {
        /* Nobody to answer; nginx's "client closed request" code makes the
         * request log say so. */
        req->status = 499;
        status = 499;
    } else if (r->stream) {
        if (failure)
            aa_stream_error(req, failure_status, failure);
        else
            aa_stream_end(&g, stop_reason, done->stop_string, usage->completion_tokens);
        status = req->status;
    } else if (failure) {
        status = http_send_anthropic_error(req, failure_status, NULL, "%s", failure);
    } else {
        cJSON *content = cJSON_Duplicate(anthropic_output_content(out), 1);
        cJSON *msg = http_own_json(
            req, aa_message(&g, content, stop_reason, done->stop_string, usage->completion_tokens));
        status = msg ? http_send_json(req, 200, msg)
                     : http_send_anthropic_error(req, 500, NULL, "out of memory");
    }
    auth_record_tokens(req, usage->prompt_tokens, usage->completion_tokens);
    infer_event_free(done);
    infer_free(s);
    anthropic_output_free(out);
    return status;
}

int api_anthropic_messages(struct http_request *req)
{
    struct anthropic_request r;
    struct pool_lease *lease;
    struct aa_prompt p;
    int rc = aa_prepare(req, false, &r, &lease, &p);
    if (rc)
        return rc;
    struct pool_usage usage = {0};
    rc = aa_generate(req, &r, lease, &p, &usage);
    pool_release(lease, &usage);
    free(p.ids);
    anthropic_request_free(&r);
    return rc;
}
