/*
 * api_openai_chat.c - POST /v1/chat/completions.
 *
 * The request is validated (openai_request.h), the model taken from the
 * pool, the chat rendered once with the model's template (or the ChatML
 * fallback, announced in the X-Chat-Template header) and submitted n times
 * (seed + i).  Each choice's text goes through the <think> splitter and,
 * when tools were offered, the tool-call scanner (tool_choice required or
 * named is forced by constrained decoding, so any model calls a tool); the same path feeds the
 * streamed deltas and the collected message, so a stream always adds up to
 * the non-streaming answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "http.h"
#include "infer.h"
#include "openai_request.h"
#include "openai_response.h"
#include "pool.h"
#include "reasoning.h"
#include "routes.h"
#include "toolcall.h"

struct chat_buf {
    char *data;
    size_t len, cap;
};

static int chat_buf_push(struct chat_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

struct chat_run;

struct chat_choice {
    struct chat_run *run;
    int index;
    struct reasoning_splitter *rs;
    struct toolcall_parser *tp; /* NULL when no tools were offered */
    cJSON *pending_logprobs;    /* streaming: the entry for the next chunk */
    /* collected for the non-streaming answer */
    struct chat_buf content, reasoning, args;
    cJSON *tool_calls; /* array, created at the first call */
    cJSON *logprobs;   /* array of entries when logprobs were asked for */
    int n_calls;
    bool cut_in_call; /* the output ended inside a tool call */
    bool oom;
};

struct chat_run {
    struct http_request *req;
    bool stream;
    char id[64];
    const char *model;
    double created;
    const struct tokenizer *tok;
};

/* ==== output: one path for chunks and the collected message ============== */

/* Sends one chat.completion.chunk for a choice.  Takes `delta`. */
static void chat_send_chunk(struct chat_choice *c, cJSON *delta, const char *finish)
{
    struct chat_run *run = c->run;
    cJSON *chunk = cJSON_CreateObject();
    if (chunk) {
        cJSON_AddStringToObject(chunk, "id", run->id);
        cJSON_AddStringToObject(chunk, "object", "chat.completion.chunk");
        cJSON_AddNumberToObject(chunk, "created", run->created);
        cJSON_AddStringToObject(chunk, "model", run->model);
    }
    cJSON *choices = chunk ? cJSON_AddArrayToObject(chunk, "choices") : NULL;
    cJSON *ch = cJSON_CreateObject();
    if (!choices || !ch || !cJSON_AddItemToArray(choices, ch)) {
        cJSON_Delete(ch);
        cJSON_Delete(chunk);
        cJSON_Delete(delta);
        c->oom = true;
        return;
    }
    cJSON_AddNumberToObject(ch, "index", c->index);
    cJSON_AddItemToObject(ch, "delta", delta ? delta : cJSON_CreateObject());
    if (c->pending_logprobs) {
        cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
        cJSON *content = lp ? cJSON_AddArrayToObject(lp, "content") : NULL;
        if (content)
            cJSON_AddItemToArray(content, c->pending_logprobs);
        else
            cJSON_Delete(c->pending_logprobs);
        c->pending_logprobs = NULL;
    } else {
        cJSON_AddNullToObject(ch, "logprobs");
    }
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    openai_sse_json(run->req, chunk);
    cJSON_Delete(chunk);
}

static void chat_send_text(struct chat_choice *c, const char *key, const char *s, size_t n)
{
    cJSON *delta = cJSON_CreateObject();
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = 0;
        cJSON_AddStringToObject(delta, key, copy);
        free(copy);
    }
    chat_send_chunk(c, delta, NULL);
}

static void chat_content_out(struct chat_choice *c, const char *s, size_t n)
{
    if (c->run->stream)
        chat_send_text(c, "content", s, n);
    else if (chat_buf_push(&c->content, s, n))
        c->oom = true;
}

/* A tool_calls delta: {"tool_calls": [{"index", ...}]}; `call` is taken. */
static void chat_send_call_delta(struct chat_choice *c, cJSON *call)
{
    cJSON *delta = cJSON_CreateObject();
    cJSON *arr = delta ? cJSON_AddArrayToObject(delta, "tool_calls") : NULL;
    if (!arr || !cJSON_AddItemToArray(arr, call)) {
        cJSON_Delete(call);
        cJSON_Delete(delta);
        c->oom = true;
        return;
    }
    chat_send_chunk(c, delta, NULL);
}

static void chat_tool_event(void *user, const struct toolcall_event *ev)
{
    struct chat_choice *c = user;
    switch (ev->kind) {
    case TOOLCALL_EVENT_TEXT: chat_content_out(c, ev->data, ev->len); break;
    case TOOLCALL_EVENT_BEGIN: {
        char id[48];
        openai_make_id("call_", id, sizeof(id));
        c->n_calls++;
        cJSON *call = cJSON_CreateObject();
        cJSON *fn = cJSON_CreateObject();
        if (!call || !fn) {
            cJSON_Delete(call);
            cJSON_Delete(fn);
            c->oom = true;
            break;
        }
        if (c->run->stream)
            cJSON_AddNumberToObject(call, "index", ev->index);
        cJSON_AddStringToObject(call, "id", id);
        cJSON_AddStringToObject(call, "type", "function");
        cJSON_AddItemToObject(call, "function", fn);
        cJSON_AddStringToObject(fn, "name", ev->data);
        if (c->run->stream) {
            cJSON_AddStringToObject(fn, "arguments", "");
            chat_send_call_delta(c, call);
            break;
        }
        if (!c->tool_calls)
            c->tool_calls = cJSON_CreateArray();
        if (!c->tool_calls || !cJSON_AddItemToArray(c->tool_calls, call)) {
            cJSON_Delete(call);
            c->oom = true;
        }
        c->args.len = 0;
        break;
    }
    case TOOLCALL_EVENT_ARGS:
        if (c->run->stream) {
            cJSON *call = cJSON_CreateObject();
            cJSON *fn = call ? cJSON_AddObjectToObject(call, "function") : NULL;
            char *frag = malloc(ev->len + 1);
            if (!fn || !frag) {
                free(frag);
                cJSON_Delete(call);
                c->oom = true;
                break;
            }
            memcpy(frag, ev->data, ev->len);
            frag[ev->len] = 0;
            cJSON_AddNumberToObject(call, "index", ev->index);
            cJSON_AddStringToObject(fn, "arguments", frag);
            free(frag);
            chat_send_call_delta(c, call);
        } else if (chat_buf_push(&c->args, ev->data, ev->len)) {
            c->oom = true;
        }
        break;
    case TOOLCALL_EVENT_END:
        if (!c->run->stream) {
            cJSON *fn = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(c->tool_calls, ev->index), "function");
            if (!fn || !cJSON_AddStringToObject(fn, "arguments", c->args.len ? c->args.data : ""))
                c->oom = true;
        }
        break;
    }
}

static void chat_delta(struct chat_choice *c, const struct reasoning_delta *d)
{
    if (d->reasoning_len) {
        if (c->run->stream)
            chat_send_text(c, "reasoning_content", d->reasoning, d->reasoning_len);
        else if (chat_buf_push(&c->reasoning, d->reasoning, d->reasoning_len))
            c->oom = true;
    }
    if (!d->content_len)
        return;
    if (c->tp) {
        if (toolcall_feed(c->tp, d->content, d->content_len))
            c->oom = true;
    } else {
        chat_content_out(c, d->content, d->content_len);
    }
}

/* Text for the message strings, which cJSON keeps as C strings: a NUL byte
 * the model wrote (random weights do) would end a streamed chunk early but
 * the collected message at once, so it is dropped in both. */
static void chat_text(struct chat_choice *c, const char *text, size_t len)
{
    while (len) {
        const char *nul = memchr(text, 0, len);
        size_t n = nul ? (size_t)(nul - text) : len;
        struct reasoning_delta d;
        if (n && reasoning_feed(c->rs, text, n, &d)) {
            c->oom = true;
            return;
        }
        if (n)
            chat_delta(c, &d);
        if (!nul)
            return;
        text += n + 1;
        len -= n + 1;
    }
}

static void chat_finish_text(struct chat_choice *c)
{
    struct reasoning_delta d;
    if (reasoning_finish(c->rs, &d)) {
        c->oom = true;
        return;
    }
    chat_delta(c, &d);
    c->cut_in_call = c->tp && toolcall_open(c->tp);
    if (c->tp && toolcall_finish(c->tp))
        c->oom = true;
}

/* OpenAI says "tool_calls" when the model called tools, unless the length
 * limit cut a call short. */
static const char *chat_finish_reason(const struct chat_choice *c, enum engine_finish f)
{
    if (c->n_calls > 0 && !c->cut_in_call)
        return "tool_calls";
    return openai_finish_reason(f);
}

/* One event of a choice.  Returns true at its DONE. */
static bool chat_event(struct chat_choice *c, const struct infer_event *ev, bool want_logprobs)
{
    if (ev->kind == ENGINE_EVENT_TOKEN && want_logprobs && ev->has_logprobs) {
        cJSON *lp = openai_logprob_json(c->run->tok, &ev->logprobs);
        if (!lp) {
            c->oom = true;
        } else if (c->run->stream) {
            cJSON_Delete(c->pending_logprobs);
            c->pending_logprobs = lp;
        } else if (!cJSON_AddItemToArray(c->logprobs, lp)) {
            cJSON_Delete(lp);
            c->oom = true;
        }
    }
    if (ev->text_len)
        chat_text(c, ev->text, ev->text_len);
    /* The token's logprob goes out even when its text is still held back. */
    if (c->pending_logprobs)
        chat_send_chunk(c, NULL, NULL);
    if (ev->kind != ENGINE_EVENT_DONE)
        return false;
    if (ev->finish == ENGINE_FINISH_STOP || ev->finish == ENGINE_FINISH_LENGTH)
        chat_finish_text(c);
    return true;
}

static void chat_choice_free(struct chat_choice *c)
{
    reasoning_splitter_free(c->rs);
    toolcall_parser_free(c->tp);
    cJSON_Delete(c->pending_logprobs);
    cJSON_Delete(c->tool_calls);
    cJSON_Delete(c->logprobs);
    free(c->content.data);
    free(c->reasoning.data);
    free(c->args.data);
}

/* ==== the non-streaming answer ========================================== */

static cJSON *chat_message_json(struct chat_choice *c, const char *finish, bool logprobs)
{
    cJSON *choice = cJSON_CreateObject();
    if (choice)
        cJSON_AddNumberToObject(choice, "index", c->index);
    cJSON *msg = choice ? cJSON_AddObjectToObject(choice, "message") : NULL;
    if (!msg) {
        cJSON_Delete(choice);
        return NULL;
    }
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (c->tool_calls && !c->content.len)
        cJSON_AddNullToObject(msg, "content");
    else
        cJSON_AddStringToObject(msg, "content", c->content.len ? c->content.data : "");
    if (c->reasoning.len)
        cJSON_AddStringToObject(msg, "reasoning_content", c->reasoning.data);
    if (c->tool_calls) {
        cJSON_AddItemToObject(msg, "tool_calls", c->tool_calls);
        c->tool_calls = NULL;
    }
    if (logprobs && c->logprobs) {
        cJSON *lp = cJSON_AddObjectToObject(choice, "logprobs");
        if (lp) {
            cJSON_AddItemToObject(lp, "content", c->logprobs);
            c->logprobs = NULL;
        }
    } else {
        cJSON_AddNullToObject(choice, "logprobs");
    }
    cJSON_AddStringToObject(choice, "finish_reason", finish);
    return choice;
}

/* ==== the handler ======================================================= */

/* Renders the prompt; on failure sends the error and returns NULL. */
static char *chat_render(struct http_request *req, struct engine_model *m,
                         const struct openai_request *r, const cJSON *profile)
{
    cJSON *ctx = openai_chat_context(r, profile);
    if (!ctx) {
        http_send_error(req, 500, NULL, NULL, "out of memory building the chat");
        return NULL;
    }
    char *prompt = NULL, err[512] = "";
    enum status st;
    if (engine_model_info(m)->has_chat_template) {
        st = engine_render_chat(m, ctx, &prompt, err, sizeof(err));
    } else {
        /* Documented fallback: ChatML, announced in a header. */
        prompt = openai_chatml_prompt(cJSON_GetObjectItemCaseSensitive(ctx, "messages"));
        st = prompt ? ST_OK : ST_ERR_NOMEM;
        snprintf(err, sizeof(err), "out of memory rendering the chat");
        http_add_header(req, "X-Chat-Template: chatml-fallback");
    }
    cJSON_Delete(ctx);
    if (st != ST_OK) {
        struct openai_error e;
        openai_error_from_status(st, err, "messages", &e);
        if (st == ST_ERR_RANGE)
            snprintf(e.code, sizeof(e.code), "template_error");
        openai_send_error(req, &e);
        return NULL;
    }
    return prompt;
}

static int chat_serve(struct http_request *req, struct openai_request *r, struct pool_lease *lease,
                      struct pool_usage *usage)
{
    struct engine_model *m = pool_lease_model(lease);
    const struct engine_model_info *info = engine_model_info(m);
    const cJSON *profile = pool_lease_profile(lease);
    struct openai_error e;
    struct engine_gen_params gp[OPENAI_MAX_N];
    for (int i = 0; i < r->n; i++)
        if (openai_gen_params(r, profile, info, i, &gp[i], &e))
            return openai_send_error(req, &e);

    char *prompt = chat_render(req, m, r, profile);
    if (!prompt)
        return req->status;
    /* A forced tool choice is decoded as bare JSON (openai_gen_params):
     * no reasoning, and "required" gives a call or an array of calls, which
     * AUTO reads whatever the profile's parser. */
    bool forced =
        r->tool_choice == OPENAI_TOOL_CHOICE_REQUIRED || r->tool_choice == OPENAI_TOOL_CHOICE_NAMED;
    bool opens_think = !forced && reasoning_prompt_opens_think(prompt, strlen(prompt));
    const cJSON *parser =
        profile ? cJSON_GetObjectItemCaseSensitive(profile, "tool_call_parser") : NULL;
    enum toolcall_format fmt =
        forced ? TOOLCALL_FORMAT_AUTO : toolcall_format_from_name(cJSON_GetStringValue(parser));
    bool tools = r->tools && r->tool_choice != OPENAI_TOOL_CHOICE_NONE;

    struct chat_run run = {.req = req,
                           .stream = r->stream,
                           .model = pool_lease_name(lease),
                           .created = (double)time(NULL),
                           .tok = engine_model_tokenizer(m)};
    openai_make_id("chatcmpl-", run.id, sizeof(run.id));
    struct chat_choice choices[OPENAI_MAX_N];
    struct infer_stream *streams[OPENAI_MAX_N];
    bool done[OPENAI_MAX_N];
    struct infer_event *last[OPENAI_MAX_N]; /* each choice's DONE */
    memset(choices, 0, sizeof(choices));
    memset(streams, 0, sizeof(streams));
    memset(last, 0, sizeof(last));
    int n_started = 0, status = 0;
    /* Tokenized once, as the engine would for each choice: the n submits
     * then follow each other at once and the choices batch from their first
     * step instead of the first running ahead while the others tokenize. */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    enum status tst = tok_encode(engine_model_tokenizer(m), prompt, strlen(prompt),
                                 TOK_ENCODE_PARSE_SPECIAL |
                                     (info->has_chat_template ? 0u : TOK_ENCODE_ADD_SPECIAL),
                                 &ids, &n_ids);
    if (tst != ST_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot tokenize the prompt: %s", status_str(tst));
        openai_error_from_status(tst, msg, "messages", &e);
        status = openai_send_error(req, &e);
    }
    for (int i = 0; i < r->n && !status; i++) {
        struct chat_choice *c = &choices[i];
        c->run = &run;
        c->index = i;
        c->rs = reasoning_splitter_new(opens_think);
        if (r->tool_choice == OPENAI_TOOL_CHOICE_NAMED)
            c->tp = toolcall_parser_new_named(r->tool_name, chat_tool_event, c);
        else if (tools)
            c->tp = toolcall_parser_new(fmt, chat_tool_event, c);
        c->logprobs = r->logprobs && !r->stream ? cJSON_CreateArray() : NULL;
        if (!c->rs || (tools && !c->tp) || (r->logprobs && !r->stream && !c->logprobs)) {
            status = http_send_error(req, 500, NULL, NULL, "out of memory");
            break;
        }
        struct engine_request_desc d = {.kind = ENGINE_PROMPT_IDS,
                                        .prompt_ids = ids,
                                        .n_prompt_ids = (int)n_ids,
                                        .params = gp[i]};
        char err[512] = "";
        enum status st = infer_start(m, &d, &streams[i], err, sizeof(err));
        if (st != ST_OK) {
            openai_error_from_status(st, err, "messages", &e);
            status = openai_send_error(req, &e);
            break;
        }
        n_started++;
    }
    free(ids);
    free(prompt);

    if (!status && r->stream) {
        if (http_sse_begin(req) == 0)
            for (int i = 0; i < r->n; i++) {
                cJSON *delta = cJSON_CreateObject();
                cJSON_AddStringToObject(delta, "role", "assistant");
                cJSON_AddStringToObject(delta, "content", "");
                chat_send_chunk(&choices[i], delta, NULL);
            }
        status = 200;
    }
    for (int i = 0; i < r->n; i++)
        done[i] = i >= n_started || (status != 200 && status != 0);
    if (status && status != 200) /* a submit failed: stop the others */
        for (int i = 0; i < n_started; i++)
            infer_cancel(streams[i]);

    int prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
    double tps = 0;
    struct infer_event *ev;
    int k, turn = 0;
    while ((k = openai_next_event(req, streams, done, r->n, r->stream, &turn, &ev)) >= 0) {
        bool fin = chat_event(&choices[k], ev, r->logprobs);
        if (!fin) {
            infer_event_free(ev);
            continue;
        }
        done[k] = true;
        last[k] = ev;
        prompt_tokens = ev->usage.prompt_tokens;
        cached_tokens = ev->usage.cached_tokens;
        completion_tokens += ev->usage.completion_tokens;
        tps += ev->usage.decode_tps / r->n;
        if (r->stream && !req->client_gone) {
            if (ev->finish == ENGINE_FINISH_ERROR || ev->finish == ENGINE_FINISH_CANCELLED)
                openai_send_failure(req, true, ev, false);
            else
                chat_send_chunk(&choices[k], NULL, chat_finish_reason(&choices[k], ev->finish));
        }
    }
    usage->prompt_tokens = prompt_tokens;
    usage->completion_tokens = completion_tokens;
    usage->decode_tps = tps;

    bool oom = false;
    for (int i = 0; i < n_started; i++)
        oom = oom || choices[i].oom;
    if (req->client_gone) {
        /* Nobody to answer: logged as nginx logs a client that left. */
        req->status = status = 499;
    } else if (status == 200) {
        if (r->include_usage) {
            cJSON *chunk = cJSON_CreateObject();
            cJSON_AddStringToObject(chunk, "id", run.id);
            cJSON_AddStringToObject(chunk, "object", "chat.completion.chunk");
            cJSON_AddNumberToObject(chunk, "created", run.created);
            cJSON_AddStringToObject(chunk, "model", run.model);
            cJSON_AddArrayToObject(chunk, "choices");
            cJSON_AddItemToObject(
                chunk, "usage", openai_usage_json(prompt_tokens, completion_tokens, cached_tokens));
            openai_sse_json(req, chunk);
            cJSON_Delete(chunk);
        }
        http_sse_send(req, NULL, "[DONE]");
    } else if (!status) {
        const struct infer_event *failed = NULL;
        bool missing = false;
        for (int i = 0; i < r->n; i++) {
            missing = missing || !last[i];
            if (last[i] && last[i]->finish != ENGINE_FINISH_STOP &&
                last[i]->finish != ENGINE_FINISH_LENGTH)
                failed = last[i];
        }
        if (failed || oom || missing) {
            status = openai_send_failure(req, false, failed, oom);
        } else {
            cJSON *resp = http_own_json(req, cJSON_CreateObject());
            cJSON *arr = cJSON_CreateArray();
            cJSON_AddStringToObject(resp, "id", run.id);
            cJSON_AddStringToObject(resp, "object", "chat.completion");
            cJSON_AddNumberToObject(resp, "created", run.created);
            cJSON_AddStringToObject(resp, "model", run.model);
            cJSON_AddItemToObject(resp, "choices", arr);
            for (int i = 0; i < r->n; i++)
                cJSON_AddItemToArray(
                    arr,
                    chat_message_json(&choices[i], chat_finish_reason(&choices[i], last[i]->finish),
                                      r->logprobs));
            cJSON_AddItemToObject(
                resp, "usage", openai_usage_json(prompt_tokens, completion_tokens, cached_tokens));
            status = http_send_json(req, 200, resp);
        }
    }
    for (int i = 0; i < r->n; i++) {
        infer_event_free(last[i]);
        infer_free(streams[i]);
        chat_choice_free(&choices[i]);
    }
    return status;
}

int api_openai_chat(struct http_request *req)
{
    return openai_handle(req, openai_parse_chat, chat_serve);
}
