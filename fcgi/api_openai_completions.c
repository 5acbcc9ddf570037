/*
 * api_openai_completions.c - POST /v1/completions (the legacy text API).
 *
 * Every prompt (a string, or token ids) runs n times; choice index
 * prompt * n + j, seed + index.  Text prompts are tokenized with the
 * tokenizer's special tokens (BOS), as Hugging Face and vLLM do.  logprobs
 * come in the legacy shape {tokens, token_logprobs, top_logprobs,
 * text_offset}; echo puts the prompt text before the completion.
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
#include "routes.h"

struct cmpl_choice {
    char *text; /* collected (non-streaming) */
    size_t len, cap;
    size_t offset;   /* text_offset of the next token */
    cJSON *logprobs; /* legacy logprobs object, or NULL */
    struct infer_event *done;
    bool oom;
};

/* Generated text goes into cJSON strings, which are C strings: a NUL byte
 * the model wrote (random weights do) would end a streamed chunk early but
 * the collected text at once, so it is dropped in both (and in text_offset).
 * Copies the n bytes at s without NULs to dst; returns the bytes written. */
static size_t cmpl_copy_text(char *dst, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i])
            dst[k++] = s[i];
    return k;
}

static size_t cmpl_text_len(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] != 0;
    return k;
}

static int cmpl_push(struct cmpl_choice *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *d = realloc(c->text, cap);
        if (!d)
            return -1;
        c->text = d;
        c->cap = cap;
    }
    c->len += cmpl_copy_text(c->text + c->len, s, n);
    c->text[c->len] = 0;
    return 0;
}

/* {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []} */
static cJSON *cmpl_logprobs_new(void)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddArrayToObject(o, "tokens") ||
        !cJSON_AddArrayToObject(o, "token_logprobs") ||
        !cJSON_AddArrayToObject(o, "top_logprobs") || !cJSON_AddArrayToObject(o, "text_offset")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void cmpl_logprobs_add(cJSON *o, const struct tokenizer *tok,
                              const struct sampler_result *lp, size_t offset)
{
    char text[256];
    openai_token_text(tok, lp->id, text, sizeof(text));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, "tokens"), cJSON_CreateString(text));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, "token_logprobs"),
                         cJSON_CreateNumber(lp->logprob));
    cJSON *top = cJSON_CreateObject();
    for (int i = 0; i < lp->n_top && top; i++) {
        openai_token_text(tok, lp->top[i].id, text, sizeof(text));
        if (!cJSON_HasObjectItem(top, text)) /* two ids may print alike */
            cJSON_AddNumberToObject(top, text, lp->top[i].logprob);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, "top_logprobs"),
                         top ? top : cJSON_CreateNull());
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, "text_offset"),
                         cJSON_CreateNumber((double)offset));
}

/* The prompt as text, for echo. */
static char *cmpl_prompt_text(const struct tokenizer *tok, const struct openai_input *in)
{
    if (in->text)
        return strdup(in->text);
    char *text = NULL;
    if (tok_decode(tok, in->ids, (size_t)in->n_ids, 0, &text) != ST_OK)
        return NULL;
    return text;
}

static cJSON *cmpl_chunk(const char *id, double created, const char *model)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "text_completion");
    cJSON_AddNumberToObject(o, "created", created);
    cJSON_AddStringToObject(o, "model", model);
    return o;
}

static cJSON *cmpl_choice_json(int index, const char *text, size_t len, cJSON *logprobs,
                               const char *finish)
{
    cJSON *ch = cJSON_CreateObject();
    char *copy = malloc(len + 1);
    if (!ch || !copy) {
        free(copy);
        cJSON_Delete(ch);
        cJSON_Delete(logprobs);
        return NULL;
    }
    copy[cmpl_copy_text(copy, text, len)] = 0;
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON_AddStringToObject(ch, "text", copy);
    free(copy);
    if (logprobs)
        cJSON_AddItemToObject(ch, "logprobs", logprobs);
    else
        cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    return ch;
}

static int cmpl_send(struct http_request *req, const char *id, double created, const char *model,
                     cJSON *choice)
{
    cJSON *chunk = cmpl_chunk(id, created, model);
    cJSON *arr = chunk ? cJSON_AddArrayToObject(chunk, "choices") : NULL;
    if (!arr || !choice || !cJSON_AddItemToArray(arr, choice)) {
        cJSON_Delete(choice);
        cJSON_Delete(chunk);
        return -1;
    }
    int rc = openai_sse_json(req, chunk);
    cJSON_Delete(chunk);
    return rc;
}

static int cmpl_serve(struct http_request *req, struct openai_request *r, struct pool_lease *lease,
                      struct pool_usage *usage)
{
    struct engine_model *m = pool_lease_model(lease);
    const struct engine_model_info *info = engine_model_info(m);
    const struct tokenizer *tok = engine_model_tokenizer(m);
    const cJSON *profile = pool_lease_profile(lease);
    const char *model = pool_lease_name(lease);
    int total = r->n * r->n_inputs;
    struct openai_error e;
    struct cmpl_choice *ch = calloc((size_t)total, sizeof(*ch));
    struct infer_stream **streams = calloc((size_t)total, sizeof(*streams));
    bool *done = calloc((size_t)total, sizeof(*done));
    if (!ch || !streams || !done) {
        free(ch);
        free(streams);
        free(done);
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    }
    char id[64];
    openai_make_id("cmpl-", id, sizeof(id));
    double created = (double)time(NULL);
    int status = 0, n_started = 0;
    for (int i = 0; i < total && !status; i++) {
        const struct openai_input *in = &r->inputs[i / r->n];
        struct engine_gen_params gp;
        if (openai_gen_params(r, profile, info, i, &gp, &e)) {
            status = openai_send_error(req, &e);
            break;
        }
        if (r->logprobs && !(ch[i].logprobs = cmpl_logprobs_new())) {
            status = http_send_error(req, 500, NULL, NULL, "out of memory");
            break;
        }
        if (r->echo) {
            char *p = cmpl_prompt_text(tok, in);
            if (!p || cmpl_push(&ch[i], p, strlen(p))) {
                free(p);
                status = http_send_error(req, 500, NULL, NULL, "cannot decode the prompt");
                break;
            }
            free(p);
            ch[i].offset = ch[i].len;
        }
        struct engine_request_desc d = {
            .kind = in->text ? ENGINE_PROMPT_TEXT : ENGINE_PROMPT_IDS,
            .prompt_text = in->text,
            .add_special_tokens = true,
            .prompt_ids = in->ids,
            .n_prompt_ids = in->n_ids,
            .params = gp,
        };
        char err[512] = "";
        enum status st = infer_start(m, &d, &streams[i], err, sizeof(err));
        if (st != ST_OK) {
            char param[32];
            snprintf(param, sizeof(param), r->n_inputs > 1 ? "prompt[%d]" : "prompt", i / r->n);
            openai_error_from_status(st, err, param, &e);
            status = openai_send_error(req, &e);
            break;
        }
        n_started++;
    }
    for (int i = 0; i < total; i++)
        done[i] = i >= n_started || status;
    if (status)
        for (int i = 0; i < n_started; i++)
            infer_cancel(streams[i]);
    if (!status && r->stream) {
        status = 200;
        if (http_sse_begin(req) == 0 && r->echo)
            for (int i = 0; i < total; i++)
                cmpl_send(req, id, created, model,
                          cmpl_choice_json(i, ch[i].text, ch[i].len, NULL, NULL));
    }

    int prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
    double tps = 0;
    struct infer_event *ev;
    int k, turn = 0;
    while ((k = openai_next_event(req, streams, done, total, r->stream, &turn, &ev)) >= 0) {
        struct cmpl_choice *c = &ch[k];
        cJSON *lp = NULL;
        if (ev->kind == ENGINE_EVENT_TOKEN && ev->has_logprobs && c->logprobs) {
            lp = r->stream ? cmpl_logprobs_new() : c->logprobs;
            if (lp)
                cmpl_logprobs_add(lp, tok, &ev->logprobs, c->offset);
        }
        c->offset += cmpl_text_len(ev->text, ev->text_len);
        if (r->stream) {
            if (ev->text_len || lp)
                cmpl_send(req, id, created, model,
                          cmpl_choice_json(k, ev->text, ev->text_len, lp, NULL));
        } else if (cmpl_push(c, ev->text, ev->text_len)) {
            c->oom = true;
        }
        if (ev->kind != ENGINE_EVENT_DONE) {
            infer_event_free(ev);
            continue;
        }
        done[k] = true;
        c->done = ev;
        prompt_tokens += ev->usage.prompt_tokens;
        cached_tokens += ev->usage.cached_tokens;
        completion_tokens += ev->usage.completion_tokens;
        tps += ev->usage.decode_tps / total;
        if (r->stream && !req->client_gone) {
            if (ev->finish == ENGINE_FINISH_STOP || ev->finish == ENGINE_FINISH_LENGTH)
                cmpl_send(req, id, created, model,
                          cmpl_choice_json(k, "", 0, NULL, openai_finish_reason(ev->finish)));
            else
                openai_send_failure(req, true, ev, false);
        }
    }
    /* Each prompt counts once, however many choices ran it. */
    prompt_tokens /= r->n;
    cached_tokens /= r->n;
    usage->prompt_tokens = prompt_tokens;
    usage->completion_tokens = completion_tokens;
    usage->decode_tps = tps;

    if (req->client_gone) {
        /* Nobody to answer: logged as nginx logs a client that left. */
        req->status = status = 499;
    } else if (status == 200) {
        if (r->include_usage) {
            cJSON *chunk = cmpl_chunk(id, created, model);
            cJSON_AddArrayToObject(chunk, "choices");
            cJSON_AddItemToObject(
                chunk, "usage", openai_usage_json(prompt_tokens, completion_tokens, cached_tokens));
            openai_sse_json(req, chunk);
            cJSON_Delete(chunk);
        }
        http_sse_send(req, NULL, "[DONE]");
    } else if (!status) {
        int bad = -1;
        for (int i = 0; i < total && bad < 0; i++)
            if (ch[i].oom || !ch[i].done ||
                (ch[i].done->finish != ENGINE_FINISH_STOP &&
                 ch[i].done->finish != ENGINE_FINISH_LENGTH))
                bad = i;
        if (bad >= 0) {
            status = openai_send_failure(req, false, ch[bad].done, ch[bad].oom);
        } else {
            cJSON *resp = http_own_json(req, cmpl_chunk(id, created, model));
            cJSON *arr = cJSON_AddArrayToObject(resp, "choices");
            for (int i = 0; i < total; i++) {
                cJSON_AddItemToArray(arr,
                                     cmpl_choice_json(i, ch[i].text ? ch[i].text : "", ch[i].len,
                                                      ch[i].logprobs,
                                                      openai_finish_reason(ch[i].done->finish)));
                ch[i].logprobs = NULL;
            }
            cJSON_AddItemToObject(
                resp, "usage", openai_usage_json(prompt_tokens, completion_tokens, cached_tokens));
            status = http_send_json(req, 200, resp);
        }
    }
    for (int i = 0; i < total; i++) {
        infer_free(streams[i]);
        infer_event_free(ch[i].done);
        cJSON_Delete(ch[i].logprobs);
        free(ch[i].text);
    }
    free(ch);
    free(streams);
    free(done);
    return status;
}

int api_openai_completions(struct http_request *req)
{
    return openai_handle(req, openai_parse_completion, cmpl_serve);
}
