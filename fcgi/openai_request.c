/*
 * openai_request.c - validation of OpenAI request bodies and the layering
 * of defaults.  Every failure names the field as OpenAI does in `param`
 * ("messages[2].content", "stop[1]", "logit_bias").
 */
#include "openai_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_constraint.h"

static int oa_fail(struct openai_error *e, int status, const char *code, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int oa_fail(struct openai_error *e, int status, const char *code, const char *param,
                   const char *fmt, ...)
{
    e->status = status;
    snprintf(e->code, sizeof(e->code), "%s", code);
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int oa_oom(struct openai_error *e)
{
    return oa_fail(e, 500, "internal_error", NULL, "out of memory parsing the request");
}

/* ==== typed fields ====================================================== */

/* A field that is absent or null counts as not given. */
static const cJSON *oa_field(const cJSON *body, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static int oa_number(const cJSON *body, const char *key, double lo, double hi, bool integer,
                     struct openai_opt *out, struct openai_error *e)
{
    const cJSON *v = oa_field(body, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return oa_fail(e, 400, "invalid_type", key, "'%s' must be a number", key);
    double d = v->valuedouble;
    if (integer && d != floor(d))
        return oa_fail(e, 400, "invalid_type", key, "'%s' must be an integer, got %.15g", key, d);
    if (d < lo || d > hi)
        return oa_fail(e, 400, "invalid_value", key,
                       "'%s' must be between %.15g and %.15g, got %.15g", key, lo, hi, d);
    out->set = true;
    out->v = d;
    return 0;
}

/* response_format of type json_schema carries the schema as OpenAI defines
 * it: an object with a non-empty string 'name' and, when given, an object
 * 'schema' (which decoding does not enforce; README). */
static int oa_json_schema(const cJSON *rf, struct openai_error *e)
{
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    if (!cJSON_IsObject(js))
        return oa_fail(e, 400, "invalid_value", "response_format.json_schema",
                       "'response_format.json_schema' must be an object when the type is "
                       "json_schema");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
    if (!cJSON_IsString(name) || !name->valuestring[0])
        return oa_fail(e, 400, "invalid_value", "response_format.json_schema.name",
                       "'response_format.json_schema.name' must be a non-empty string");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (schema && !cJSON_IsNull(schema) && !cJSON_IsObject(schema))
        return oa_fail(e, 400, "invalid_type", "response_format.json_schema.schema",
                       "'response_format.json_schema.schema' must be an object");
    return 0;
}

static int oa_bool(const cJSON *body, const char *key, bool *out, struct openai_error *e)
{
    const cJSON *v = oa_field(body, key);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return oa_fail(e, 400, "invalid_type", key, "'%s' must be a boolean", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int oa_model(const cJSON *body, struct openai_request *r, struct openai_error *e)
{
    const cJSON *v = oa_field(body, "model");
    if (!v)
        return oa_fail(e, 400, "missing_required_parameter", "model",
                       "you must provide a model parameter");
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return oa_fail(e, 400, "invalid_type", "model", "'model' must be a non-empty string");
    r->model = v->valuestring;
    return 0;
}

/* ==== generation fields shared by chat and completions ================== */

static int oa_stop(struct arena *a, const cJSON *body, struct openai_request *r,
                   struct openai_error *e)
{
    const cJSON *v = oa_field(body, "stop");
    if (!v)
        return 0;
    int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0)
        return oa_fail(e, 400, "invalid_type", "stop",
                       "'stop' must be a string or an array of strings");
    if (n > OPENAI_MAX_STOP)
        return oa_fail(e, 400, "invalid_value", "stop", "'stop' allows at most %d strings, got %d",
                       OPENAI_MAX_STOP, n);
    r->stop = arena_calloc(a, (size_t)(n ? n : 1), sizeof(*r->stop));
    if (!r->stop)
        return oa_oom(e);
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_IsString(v) ? v : cJSON_GetArrayItem(v, i);
        char param[32];
        snprintf(param, sizeof(param), cJSON_IsString(v) ? "stop" : "stop[%d]", i);
        if (!cJSON_IsString(s))
            return oa_fail(e, 400, "invalid_type", param, "'%s' must be a string", param);
        if (!s->valuestring[0])
            return oa_fail(e, 400, "invalid_value", param, "'%s' must not be empty", param);
        if (strlen(s->valuestring) > ENGINE_MAX_STOP_LEN)
            return oa_fail(e, 400, "invalid_value", param, "'%s' is longer than %d bytes", param,
                           ENGINE_MAX_STOP_LEN);
        r->stop[i] = s->valuestring;
    }
    r->n_stop = n;
    return 0;
}

static int oa_logit_bias(struct arena *a, const cJSON *body, struct openai_request *r,
                         struct openai_error *e)
{
    const cJSON *v = oa_field(body, "logit_bias");
    if (!v)
        return 0;
    if (!cJSON_IsObject(v))
        return oa_fail(e, 400, "invalid_type", "logit_bias",
                       "'logit_bias' must be an object of token id -> bias");
    int n = cJSON_GetArraySize(v);
    if (n > 1024)
        return oa_fail(e, 400, "invalid_value", "logit_bias",
                       "'logit_bias' allows at most 1024 tokens, got %d", n);
    r->logit_bias = arena_calloc(a, (size_t)(n ? n : 1), sizeof(*r->logit_bias));
    if (!r->logit_bias)
        return oa_oom(e);
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        char *end;
        long id = strtol(it->string, &end, 10);
        if (!it->string[0] || *end || id < 0 || id > INT32_MAX)
            return oa_fail(e, 400, "invalid_value", "logit_bias",
                           "'logit_bias' keys must be token ids, got \"%s\"", it->string);
        if (!cJSON_IsNumber(it) || it->valuedouble < -100 || it->valuedouble > 100)
            return oa_fail(e, 400, "invalid_value", "logit_bias",
                           "'logit_bias' values must be numbers from -100 to 100 (token %ld)", id);
        r->logit_bias[r->n_logit_bias++] =
            (struct sampler_bias){(int32_t)id, (float)it->valuedouble};
    }
    return 0;
}

/* Fields of both chat and completions (max_completion_tokens, the newer
 * name, wins over max_tokens). */
static int oa_gen_fields(struct arena *a, const cJSON *body, struct openai_request *r,
                         struct openai_error *e)
{
    struct openai_opt n = {0}, mt = {0}, mct = {0}, min_tokens = {0};
    if (oa_number(body, "n", 1, 1e9, true, &n, e))
        return -1;
    if (n.set && n.v > OPENAI_MAX_N)
        return oa_fail(e, 400, "invalid_value", "n", "'n' must be at most %d, got %.15g",
                       OPENAI_MAX_N, n.v);
    r->n = n.set ? (int)n.v : 1;
    if (oa_number(body, "max_tokens", 1, 16777216, true, &mt, e) ||
        oa_number(body, "max_completion_tokens", 1, 16777216, true, &mct, e))
        return -1;
    r->max_tokens = mct.set ? mct : mt;
    if (oa_number(body, "temperature", 0, 2, false, &r->temperature, e) ||
        oa_number(body, "top_p", 0, 1, false, &r->top_p, e) ||
        oa_number(body, "top_k", -1, 1e9, true, &r->top_k, e) ||
        oa_number(body, "min_p", 0, 1, false, &r->min_p, e) ||
        oa_number(body, "presence_penalty", -2, 2, false, &r->presence_penalty, e) ||
        oa_number(body, "frequency_penalty", -2, 2, false, &r->frequency_penalty, e) ||
        oa_number(body, "repetition_penalty", 1e-3, 100, false, &r->repetition_penalty, e) ||
        oa_number(body, "seed", -9007199254740991.0, 9007199254740991.0, true, &r->seed, e) ||
        oa_number(body, "min_tokens", 0, 16777216, true, &min_tokens, e))
        return -1;
    r->min_tokens = min_tokens.set ? (int)min_tokens.v : 0;
    if (r->max_tokens.set && r->min_tokens > r->max_tokens.v)
        return oa_fail(e, 400, "invalid_value", "min_tokens",
                       "'min_tokens' (%d) is larger than max_tokens (%.15g)", r->min_tokens,
                       r->max_tokens.v);
    if (oa_bool(body, "ignore_eos", &r->ignore_eos, e) || oa_bool(body, "stream", &r->stream, e))
        return -1;
    const cJSON *so = oa_field(body, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return oa_fail(e, 400, "invalid_type", "stream_options",
                           "'stream_options' must be an object");
        if (!r->stream)
            return oa_fail(e, 400, "invalid_value", "stream_options",
                           "'stream_options' is only allowed when 'stream' is true");
        const cJSON *iu = oa_field(so, "include_usage");
        if (iu && !cJSON_IsBool(iu))
            return oa_fail(e, 400, "invalid_type", "stream_options.include_usage",
                           "'stream_options.include_usage' must be a boolean");
        r->include_usage = cJSON_IsTrue(iu);
    }
    const cJSON *user = oa_field(body, "user");
    if (user && !cJSON_IsString(user))
        return oa_fail(e, 400, "invalid_type", "user", "'user' must be a string");
    return oa_stop(a, body, r, e) || oa_logit_bias(a, body, r, e) ? -1 : 0;
}

/* ==== chat ============================================================== */

/* Joins the text parts of a content array; other part types are refused. */
static int oa_content_parts(const cJSON *parts, int mi, cJSON **out, struct openai_error *e)
{
    size_t len = 0;
    int i = 0;
    const cJSON *p;
    char param[96];
    cJSON_ArrayForEach(p, parts)
    {
        snprintf(param, sizeof(param), "messages[%d].content[%d]", mi, i);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
        if (!cJSON_IsObject(p) || !cJSON_IsString(type))
            return oa_fail(e, 400, "invalid_type", param,
                           "'%s' must be an object with a string 'type'", param);
        if (strcmp(type->valuestring, "text")) {
            if (!strcmp(type->valuestring, "image_url") ||
                !strcmp(type->valuestring, "input_audio") || !strcmp(type->valuestring, "file"))
                return oa_fail(e, 400, "unsupported_content", param,
                               "content parts of type '%s' are not supported: this model takes "
                               "text only",
                               type->valuestring);
            return oa_fail(e, 400, "invalid_value", param, "unknown content part type '%s'",
                           type->valuestring);
        }
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(text))
            return oa_fail(e, 400, "invalid_type", param, "'%s.text' must be a string", param);
        len += strlen(text->valuestring) + 1;
        i++;
    }
    char *buf = malloc(len + 1), *w = buf;
    if (!buf)
        return oa_oom(e);
    /* Parts are joined with newlines, as vLLM does for text-only content. */
    cJSON_ArrayForEach(p, parts)
    {
        const char *t = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
        if (w != buf)
            *w++ = '\n';
        size_t n = strlen(t);
        memcpy(w, t, n);
        w += n;
    }
    *w = 0;
    *out = cJSON_CreateString(buf);
    free(buf);
    return *out ? 0 : oa_oom(e);
}

/* assistant tool_calls as templates expect them: arguments as an object
 * when the JSON string holds one (Qwen, Llama and Mistral templates apply
 * tojson to it). */
static int oa_tool_calls(const cJSON *calls, int mi, cJSON *msg, struct openai_error *e)
{
    char param[96];
    snprintf(param, sizeof(param), "messages[%d].tool_calls", mi);
    if (!cJSON_IsArray(calls))
        return oa_fail(e, 400, "invalid_type", param, "'%s' must be an array", param);
    cJSON *out = cJSON_AddArrayToObject(msg, "tool_calls");
    if (!out)
        return oa_oom(e);
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, calls)
    {
        snprintf(param, sizeof(param), "messages[%d].tool_calls[%d].function", mi, i++);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        if (!cJSON_IsObject(fn) || !cJSON_IsString(name) || !cJSON_IsString(args))
            return oa_fail(e, 400, "invalid_type", param,
                           "'%s' must be an object with string 'name' and 'arguments'", param);
        cJSON *copy = cJSON_Duplicate(c, 1);
        if (!copy || !cJSON_AddItemToArray(out, copy)) {
            cJSON_Delete(copy);
            return oa_oom(e);
        }
        cJSON *parsed = cJSON_Parse(args->valuestring);
        cJSON *cfn = cJSON_GetObjectItemCaseSensitive(copy, "function");
        if (cJSON_IsObject(parsed))
            cJSON_ReplaceItemInObjectCaseSensitive(cfn, "arguments", parsed);
        else
            cJSON_Delete(parsed);
    }
    return 0;
}

static int oa_messages(const cJSON *body, struct openai_request *r, struct openai_error *e)
{
    const cJSON *msgs = oa_field(body, "messages");
    if (!msgs)
        return oa_fail(e, 400, "missing_required_parameter", "messages",
                       "you must provide a messages parameter");
    if (!cJSON_IsArray(msgs))
        return oa_fail(e, 400, "invalid_type", "messages", "'messages' must be an array");
    if (cJSON_GetArraySize(msgs) == 0)
        return oa_fail(e, 400, "invalid_value", "messages", "'messages' must not be empty");
    r->messages = cJSON_CreateArray();
    if (!r->messages)
        return oa_oom(e);
    int i = 0;
    const cJSON *m;
    char param[96];
    cJSON_ArrayForEach(m, msgs)
    {
        snprintf(param, sizeof(param), "messages[%d]", i);
        if (!cJSON_IsObject(m))
            return oa_fail(e, 400, "invalid_type", param, "'%s' must be an object", param);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof(param), "messages[%d].role", i);
        if (!cJSON_IsString(role))
            return oa_fail(e, 400, "invalid_type", param, "'%s' must be a string", param);
        const char *rs = role->valuestring;
        if (strcmp(rs, "system") && strcmp(rs, "developer") && strcmp(rs, "user") &&
            strcmp(rs, "assistant") && strcmp(rs, "tool"))
            return oa_fail(e, 400, "invalid_value", param,
                           "'%s' must be one of system, developer, user, assistant, tool; got "
                           "'%s'",
                           param, rs);
        cJSON *out = cJSON_CreateObject();
        if (!out || !cJSON_AddItemToArray(r->messages, out)) {
            cJSON_Delete(out);
            return oa_oom(e);
        }
        /* Templates know "system"; "developer" is OpenAI's new name for it. */
        if (!cJSON_AddStringToObject(out, "role", strcmp(rs, "developer") ? rs : "system"))
            return oa_oom(e);
        const cJSON *content = oa_field(m, "content");
        const cJSON *calls = oa_field(m, "tool_calls");
        snprintf(param, sizeof(param), "messages[%d].content", i);
        cJSON *c = NULL;
        if (cJSON_IsString(content)) {
            c = cJSON_CreateString(content->valuestring);
        } else if (cJSON_IsArray(content)) {
            if (oa_content_parts(content, i, &c, e))
                return -1;
        } else if (!content) {
            if (strcmp(rs, "assistant") || !calls)
                return oa_fail(e, 400, "missing_required_parameter", param,
                               "'%s' is required for %s messages", param, rs);
            c = cJSON_CreateString("");
        } else {
            return oa_fail(e, 400, "invalid_type", param,
                           "'%s' must be a string or an array of content parts", param);
        }
        if (!c || !cJSON_AddItemToObject(out, "content", c)) {
            cJSON_Delete(c);
            return oa_oom(e);
        }
        if (calls && strcmp(rs, "assistant") == 0 && oa_tool_calls(calls, i, out, e))
            return -1;
        static const char *const passthrough[] = {"name", "tool_call_id", NULL};
        for (int k = 0; passthrough[k]; k++) {
            const cJSON *v = oa_field(m, passthrough[k]);
            if (!v)
                continue;
            snprintf(param, sizeof(param), "messages[%d].%s", i, passthrough[k]);
            if (!cJSON_IsString(v))
                return oa_fail(e, 400, "invalid_type", param, "'%s' must be a string", param);
            if (!cJSON_AddStringToObject(out, passthrough[k], v->valuestring))
                return oa_oom(e);
        }
        if (!strcmp(rs, "tool") && !oa_field(m, "tool_call_id")) {
            snprintf(param, sizeof(param), "messages[%d].tool_call_id", i);
            return oa_fail(e, 400, "missing_required_parameter", param,
                           "'%s' is required for tool messages", param);
        }
        i++;
    }
    return 0;
}

/* tool_choice "required": the names the constrained output may call, which
 * the constraint matches byte for byte (so no quote, backslash or control
 * byte, which OpenAI's name pattern forbids too). */
static int oa_tool_names(struct arena *a, struct openai_request *r, struct openai_error *e)
{
    int n = cJSON_GetArraySize(r->tools), i = 0;
    r->tool_names = arena_calloc(a, (size_t)n, sizeof(*r->tool_names));
    if (!r->tool_names)
        return oa_oom(e);
    const cJSON *t;
    cJSON_ArrayForEach(t, r->tools)
    {
        const char *name = cJSON_GetObjectItemCaseSensitive(
                               cJSON_GetObjectItemCaseSensitive(t, "function"), "name")
                               ->valuestring;
        for (const char *p = name; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
                return oa_fail(e, 400, "invalid_value", "tools",
                               "'tools[%d].function.name' may not hold quotes, backslashes or "
                               "control characters",
                               i);
        if (strlen(name) > JSON_NAMES_MAX_LEN)
            return oa_fail(e, 400, "invalid_value", "tools",
                           "'tools[%d].function.name' is longer than %d bytes", i,
                           JSON_NAMES_MAX_LEN);
        r->tool_names[i++] = name;
    }
    r->n_tool_names = i;
    return 0;
}

static int oa_tools(struct arena *a, const cJSON *body, struct openai_request *r,
                    struct openai_error *e)
{
    const cJSON *tools = oa_field(body, "tools");
    if (tools) {
        if (!cJSON_IsArray(tools))
            return oa_fail(e, 400, "invalid_type", "tools", "'tools' must be an array");
        int i = 0;
        const cJSON *t;
        char param[64];
        cJSON_ArrayForEach(t, tools)
        {
            snprintf(param, sizeof(param), "tools[%d]", i++);
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            const cJSON *params = oa_field(fn, "parameters");
            if (!cJSON_IsObject(t) || !cJSON_IsString(type) ||
                strcmp(type->valuestring, "function"))
                return oa_fail(e, 400, "invalid_value", param,
                               "'%s' must be {\"type\": \"function\", \"function\": {...}}", param);
            if (!cJSON_IsObject(fn) || !cJSON_IsString(name) || !name->valuestring[0])
                return oa_fail(e, 400, "invalid_value", param,
                               "'%s.function' must be an object with a non-empty 'name'", param);
            if (params && !cJSON_IsObject(params))
                return oa_fail(e, 400, "invalid_type", param,
                               "'%s.function.parameters' must be a JSON Schema object", param);
        }
        if (i > JSON_NAMES_MAX)
            return oa_fail(e, 400, "invalid_value", "tools", "'tools' allows at most %d tools",
                           JSON_NAMES_MAX);
        if (i > 0) {
            r->tools = cJSON_Duplicate(tools, 1);
            if (!r->tools)
                return oa_oom(e);
        }
    }
    const cJSON *tc = oa_field(body, "tool_choice");
    r->tool_choice = OPENAI_TOOL_CHOICE_AUTO;
    if (!tc)
        return 0;
    if (cJSON_IsString(tc)) {
        const char *s = tc->valuestring;
        if (!strcmp(s, "none"))
            r->tool_choice = OPENAI_TOOL_CHOICE_NONE;
        else if (!strcmp(s, "required"))
            r->tool_choice = OPENAI_TOOL_CHOICE_REQUIRED;
        else if (strcmp(s, "auto"))
            return oa_fail(e, 400, "invalid_value", "tool_choice",
                           "'tool_choice' must be none, auto, required or a named function; got "
                           "'%s'",
                           s);
    } else if (cJSON_IsObject(tc)) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(name))
            return oa_fail(e, 400, "invalid_value", "tool_choice",
                           "'tool_choice' must be {\"type\": \"function\", \"function\": "
                           "{\"name\": ...}}");
        r->tool_choice = OPENAI_TOOL_CHOICE_NAMED;
        r->tool_name = name->valuestring;
    } else {
        return oa_fail(e, 400, "invalid_type", "tool_choice",
                       "'tool_choice' must be a string or an object");
    }
    if (r->tool_choice != OPENAI_TOOL_CHOICE_NONE && r->tool_choice != OPENAI_TOOL_CHOICE_AUTO &&
        !r->tools)
        return oa_fail(e, 400, "invalid_value", "tool_choice", "'tool_choice' %s needs 'tools'",
                       r->tool_choice == OPENAI_TOOL_CHOICE_NAMED ? "naming a function"
                                                                  : "'required'");
    if (r->tool_choice == OPENAI_TOOL_CHOICE_NAMED) {
        const cJSON *t;
        cJSON_ArrayForEach(t, r->tools)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
            if (!strcmp(n->valuestring, r->tool_name))
                return 0;
        }
        return oa_fail(e, 400, "invalid_value", "tool_choice",
                       "'tool_choice' names function '%s', which is not in 'tools'", r->tool_name);
    }
    if (r->tool_choice == OPENAI_TOOL_CHOICE_REQUIRED)
        return oa_tool_names(a, r, e);
    return 0;
}

int openai_parse_chat(struct arena *a, const cJSON *body, struct openai_request *r,
                      struct openai_error *e)
{
    memset(r, 0, sizeof(*r));
    if (oa_model(body, r, e) || oa_messages(body, r, e) || oa_tools(a, body, r, e) ||
        oa_gen_fields(a, body, r, e))
        return -1;
    const cJSON *lp = oa_field(body, "logprobs");
    if (lp && !cJSON_IsBool(lp))
        return oa_fail(e, 400, "invalid_type", "logprobs", "'logprobs' must be a boolean");
    r->logprobs = cJSON_IsTrue(lp);
    struct openai_opt top = {0};
    if (oa_number(body, "top_logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, true, &top, e))
        return -1;
    if (top.set && !r->logprobs)
        return oa_fail(e, 400, "invalid_value", "top_logprobs",
                       "'top_logprobs' needs 'logprobs' set to true");
    r->top_logprobs = top.set ? (int)top.v : 0;
    const cJSON *rf = oa_field(body, "response_format");
    if (rf) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsObject(rf) || !cJSON_IsString(type))
            return oa_fail(e, 400, "invalid_type", "response_format",
                           "'response_format' must be an object with a string 'type'");
        if (!strcmp(type->valuestring, "json_schema")) {
            if (oa_json_schema(rf, e))
                return -1;
            r->json_mode = true;
        } else if (!strcmp(type->valuestring, "json_object")) {
            r->json_mode = true;
        } else if (strcmp(type->valuestring, "text"))
            return oa_fail(e, 400, "invalid_value", "response_format.type",
                           "'response_format.type' must be text, json_object or json_schema; got "
                           "'%s'",
                           type->valuestring);
    }
    const cJSON *kw = oa_field(body, "chat_template_kwargs");
    if (kw && !cJSON_IsObject(kw))
        return oa_fail(e, 400, "invalid_type", "chat_template_kwargs",
                       "'chat_template_kwargs' must be an object");
    r->template_kwargs = kw;
    return 0;
}

/* ==== completions and embeddings ======================================== */

/* Token ids of an array, or -1 with the error. */
static int oa_ids(struct arena *a, const cJSON *arr, const char *param, struct openai_input *in,
                  struct openai_error *e)
{
    int n = cJSON_GetArraySize(arr);
    int32_t *ids = arena_alloc(a, (size_t)(n ? n : 1) * sizeof(*ids));
    if (!ids)
        return oa_oom(e);
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, arr)
    {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble > INT32_MAX)
            return oa_fail(e, 400, "invalid_value", param,
                           "'%s' must hold token ids (non-negative integers)", param);
        ids[i++] = (int32_t)t->valuedouble;
    }
    in->ids = ids;
    in->n_ids = n;
    return 0;
}

/* prompt / input: a string, strings, ids, or lists of ids. */
static int oa_inputs(struct arena *a, const cJSON *body, const char *key, struct openai_request *r,
                     struct openai_error *e)
{
    const cJSON *v = oa_field(body, key);
    if (!v)
        return oa_fail(e, 400, "missing_required_parameter", key, "you must provide a %s parameter",
                       key);
    if (cJSON_IsString(v)) {
        r->inputs = arena_calloc(a, 1, sizeof(*r->inputs));
        if (!r->inputs)
            return oa_oom(e);
        r->inputs[0].text = v->valuestring;
        r->n_inputs = 1;
        return 0;
    }
    if (!cJSON_IsArray(v))
        return oa_fail(e, 400, "invalid_type", key,
                       "'%s' must be a string, an array of strings, an array of token ids or an "
                       "array of token id arrays",
                       key);
    int n = cJSON_GetArraySize(v);
    if (n == 0)
        return oa_fail(e, 400, "invalid_value", key, "'%s' must not be empty", key);
    if (cJSON_IsNumber(cJSON_GetArrayItem(v, 0))) {
        r->inputs = arena_calloc(a, 1, sizeof(*r->inputs));
        if (!r->inputs)
            return oa_oom(e);
        r->n_inputs = 1;
        return oa_ids(a, v, key, &r->inputs[0], e);
    }
    if (n > OPENAI_MAX_INPUTS)
        return oa_fail(e, 400, "invalid_value", key, "'%s' allows at most %d items, got %d", key,
                       OPENAI_MAX_INPUTS, n);
    r->inputs = arena_calloc(a, (size_t)n, sizeof(*r->inputs));
    if (!r->inputs)
        return oa_oom(e);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        char param[64];
        snprintf(param, sizeof(param), "%s[%d]", key, i);
        if (cJSON_IsString(it)) {
            r->inputs[i].text = it->valuestring;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) > 0) {
            if (oa_ids(a, it, param, &r->inputs[i], e))
                return -1;
        } else {
            return oa_fail(e, 400, "invalid_type", param,
                           "'%s' must be a string or a non-empty array of token ids", param);
        }
        i++;
    }
    r->n_inputs = n;
    return 0;
}

int openai_parse_completion(struct arena *a, const cJSON *body, struct openai_request *r,
                            struct openai_error *e)
{
    memset(r, 0, sizeof(*r));
    if (oa_model(body, r, e) || oa_inputs(a, body, "prompt", r, e) || oa_gen_fields(a, body, r, e))
        return -1;
    const cJSON *suffix = oa_field(body, "suffix");
    if (suffix)
        return oa_fail(e, 400, "unsupported_parameter", "suffix",
                       "'suffix' (fill-in-the-middle) is not supported");
    struct openai_opt best_of = {0}, lp = {0};
    if (oa_number(body, "best_of", 1, OPENAI_MAX_N, true, &best_of, e))
        return -1;
    if (best_of.set && (int)best_of.v != r->n)
        return oa_fail(e, 400, "unsupported_parameter", "best_of",
                       "'best_of' other than n is not supported");
    if (oa_bool(body, "echo", &r->echo, e))
        return -1;
    if (oa_number(body, "logprobs", 0, 5, true, &lp, e))
        return -1;
    r->logprobs = lp.set;
    r->top_logprobs = lp.set ? (int)lp.v : 0;
    if (r->echo && r->logprobs)
        return oa_fail(e, 400, "unsupported_parameter", "echo",
                       "'echo' together with 'logprobs' (prompt logprobs) is not supported");
    if ((long)r->n * r->n_inputs > 64)
        return oa_fail(e, 400, "invalid_value", "n",
                       "n (%d) times the number of prompts (%d) must be at most 64", r->n,
                       r->n_inputs);
    return 0;
}

int openai_parse_embeddings(struct arena *a, const cJSON *body, struct openai_request *r,
                            struct openai_error *e)
{
    memset(r, 0, sizeof(*r));
    if (oa_model(body, r, e) || oa_inputs(a, body, "input", r, e))
        return -1;
    for (int i = 0; i < r->n_inputs; i++)
        if (r->inputs[i].text && !r->inputs[i].text[0]) {
            char param[32];
            snprintf(param, sizeof(param), r->n_inputs == 1 ? "input" : "input[%d]", i);
            return oa_fail(e, 400, "invalid_value", param, "'%s' must not be empty", param);
        }
    const cJSON *fmt = oa_field(body, "encoding_format");
    if (fmt) {
        if (!cJSON_IsString(fmt) ||
            (strcmp(fmt->valuestring, "float") && strcmp(fmt->valuestring, "base64")))
            return oa_fail(e, 400, "invalid_value", "encoding_format",
                           "'encoding_format' must be float or base64");
        r->base64 = !strcmp(fmt->valuestring, "base64");
    }
    struct openai_opt dims = {0};
    if (oa_number(body, "dimensions", 1, 1e6, true, &dims, e))
        return -1;
    r->dimensions = dims.set ? (int)dims.v : 0;
    const cJSON *user = oa_field(body, "user");
    if (user && !cJSON_IsString(user))
        return oa_fail(e, 400, "invalid_type", "user", "'user' must be a string");
    return 0;
}

/* ==== defaults and engine parameters ==================================== */

/* The request's value, else the profile's (a number in its row), else the
 * model's, else the fallback. */
static double oa_layer(struct openai_opt req, const cJSON *profile, const char *key, bool model_has,
                       double model_v, double fallback)
{
    if (req.set)
        return req.v;
    const cJSON *p = profile ? cJSON_GetObjectItemCaseSensitive(profile, key) : NULL;
    if (cJSON_IsNumber(p))
        return p->valuedouble;
    return model_has ? model_v : fallback;
}

int openai_gen_params(const struct openai_request *r, const cJSON *profile,
                      const struct engine_model_info *info, int choice,
                      struct engine_gen_params *out, struct openai_error *e)
{
    engine_gen_params_default(out);
    const struct engine_gen_defaults *d = &info->defaults;
    struct sampler_params *s = &out->sampling;
    s->temperature = (float)oa_layer(r->temperature, profile, "temperature", d->has_temperature,
                                     d->temperature, 1.0);
    s->top_p = (float)oa_layer(r->top_p, profile, "top_p", d->has_top_p, d->top_p, 1.0);
    /* top_p 0 means "only the most likely token", which the sampler spells
     * as the smallest nucleus. */
    if (s->top_p <= 0)
        s->top_p = 1e-9f;
    double top_k = oa_layer(r->top_k, profile, "top_k", d->has_top_k, d->top_k, 0);
    s->top_k = top_k < 0 ? 0 : (int)top_k;
    s->min_p = (float)oa_layer(r->min_p, profile, "min_p", false, 0, 0);
    s->repetition_penalty = (float)oa_layer(r->repetition_penalty, profile, "repetition_penalty",
                                            d->has_repetition_penalty, d->repetition_penalty, 1);
    s->presence_penalty =
        (float)oa_layer(r->presence_penalty, profile, "presence_penalty", false, 0, 0);
    s->frequency_penalty =
        (float)oa_layer(r->frequency_penalty, profile, "frequency_penalty", false, 0, 0);
    const cJSON *pseed = profile ? cJSON_GetObjectItemCaseSensitive(profile, "seed") : NULL;
    if (r->seed.set || cJSON_IsNumber(pseed)) {
        out->has_seed = true;
        long long seed = r->seed.set ? (long long)r->seed.v : (long long)pseed->valuedouble;
        s->seed = (uint64_t)seed + (uint64_t)choice;
    }
    out->max_tokens = (int)oa_layer(r->max_tokens, profile, "max_tokens", false, 0, 0);
    out->min_tokens = r->min_tokens;
    out->ignore_eos = r->ignore_eos;
    /* tool_choice forced by constrained decoding: a named function's
     * arguments object, or for "required" a call {"name", "arguments"} (or
     * an array of them) naming one of the tools; the JSON response_format
     * gives way to it. */
    out->json_object = r->json_mode || r->tool_choice == OPENAI_TOOL_CHOICE_NAMED ||
                       r->tool_choice == OPENAI_TOOL_CHOICE_REQUIRED;
    if (r->tool_choice == OPENAI_TOOL_CHOICE_REQUIRED) {
        out->json_tool_names = r->tool_names;
        out->n_json_tool_names = r->n_tool_names;
    }
    out->stop = r->stop;
    out->n_stop = r->n_stop;
    for (int i = 0; i < r->n_logit_bias; i++)
        if (r->logit_bias[i].id >= info->vocab)
            return oa_fail(e, 400, "invalid_value", "logit_bias",
                           "'logit_bias' token %d is outside the vocabulary (%d tokens)",
                           (int)r->logit_bias[i].id, info->vocab);
    s->logit_bias = r->logit_bias;
    s->n_logit_bias = r->n_logit_bias;
    s->logprobs = r->logprobs;
    s->top_logprobs = r->top_logprobs;
    return 0;
}

/* Adds `text` to the first system message, creating one when there is none. */
static int oa_system_add(cJSON *messages, const char *text, bool append)
{
    cJSON *first = cJSON_GetArrayItem(messages, 0);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(first, "role");
    if (cJSON_IsString(role) && !strcmp(role->valuestring, "system")) {
        if (!append)
            return 0;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(first, "content");
        const char *old = cJSON_IsString(c) ? c->valuestring : "";
        size_t n = strlen(old) + strlen(text) + 3;
        char *joined = malloc(n);
        if (!joined)
            return -1;
        snprintf(joined, n, "%s%s%s", old, old[0] ? "\n\n" : "", text);
        cJSON *s = cJSON_CreateString(joined);
        free(joined);
        return s && cJSON_ReplaceItemInObjectCaseSensitive(first, "content", s) ? 0 : -1;
    }
    cJSON *sys = cJSON_CreateObject();
    if (!sys || !cJSON_AddStringToObject(sys, "role", "system") ||
        !cJSON_AddStringToObject(sys, "content", text) ||
        !cJSON_InsertItemInArray(messages, 0, sys)) {
        cJSON_Delete(sys);
        return -1;
    }
    return 0;
}

cJSON *openai_chat_context(const struct openai_request *r, const cJSON *profile)
{
    cJSON *ctx = cJSON_CreateObject();
    cJSON *msgs = r->messages ? cJSON_Duplicate(r->messages, 1) : cJSON_CreateArray();
    if (!ctx || !msgs || !cJSON_AddItemToObject(ctx, "messages", msgs)) {
        cJSON_Delete(msgs);
        goto oom;
    }
    const cJSON *sp = profile ? cJSON_GetObjectItemCaseSensitive(profile, "system_prompt") : NULL;
    if (cJSON_IsString(sp) && sp->valuestring[0] && oa_system_add(msgs, sp->valuestring, false))
        goto oom;
    if (r->tools && r->tool_choice != OPENAI_TOOL_CHOICE_NONE) {
        cJSON *tools = cJSON_CreateArray();
        if (!tools || !cJSON_AddItemToObject(ctx, "tools", tools)) {
            cJSON_Delete(tools);
            goto oom;
        }
        const cJSON *t;
        cJSON_ArrayForEach(t, r->tools)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
            if (r->tool_choice == OPENAI_TOOL_CHOICE_NAMED && strcmp(n->valuestring, r->tool_name))
                continue;
            if (!cJSON_AddItemToArray(tools, cJSON_Duplicate(t, 1)))
                goto oom;
        }
        char note[512];
        if (r->tool_choice == OPENAI_TOOL_CHOICE_REQUIRED)
            snprintf(note, sizeof(note),
                     "You must answer by calling one or more of the provided tools, written "
                     "as JSON only: {\"name\": <tool name>, \"arguments\": {...}}, or a list "
                     "of such objects.");
        else if (r->tool_choice == OPENAI_TOOL_CHOICE_NAMED)
            snprintf(note, sizeof(note),
                     "You must answer by calling the function `%s`, writing only its arguments "
                     "as a JSON object.",
                     r->tool_name);
        if (r->tool_choice != OPENAI_TOOL_CHOICE_AUTO && oa_system_add(msgs, note, true))
            goto oom;
    }
    const cJSON *kv;
    if (r->template_kwargs)
        cJSON_ArrayForEach(kv, r->template_kwargs)
        {
            if (!strcmp(kv->string, "messages") || !strcmp(kv->string, "tools"))
                continue; /* the request's own fields win */
            cJSON_DeleteItemFromObjectCaseSensitive(ctx, kv->string);
            if (!cJSON_AddItemToObject(ctx, kv->string, cJSON_Duplicate(kv, 1)))
                goto oom;
        }
    if (!cJSON_HasObjectItem(ctx, "add_generation_prompt") &&
        !cJSON_AddTrueToObject(ctx, "add_generation_prompt"))
        goto oom;
    return ctx;
oom:
    cJSON_Delete(ctx);
    return NULL;
}

char *openai_chatml_prompt(const cJSON *messages)
{
    size_t len = 32;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        len += 32 + (cJSON_IsString(c) ? strlen(c->valuestring) : 0) +
               (cJSON_IsString(role) ? strlen(role->valuestring) : 0);
    }
    char *out = malloc(len), *w = out;
    if (!out)
        return NULL;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        w += sprintf(w, "<|im_start|>%s\n%s<|im_end|>\n",
                     cJSON_IsString(role) ? role->valuestring : "user",
                     cJSON_IsString(c) ? c->valuestring : "");
    }
    strcpy(w, "<|im_start|>assistant\n");
    return out;
}

void openai_error_from_status(enum status st, const char *msg, const char *param,
                              struct openai_error *e)
{
    switch (st) {
    case ST_ERR_RANGE: oa_fail(e, 400, "context_length_exceeded", param, "%s", msg); break;
    case ST_ERR_INVALID:
    case ST_ERR_FORMAT: oa_fail(e, 400, "invalid_request_error", param, "%s", msg); break;
    case ST_ERR_UNSUPPORTED: oa_fail(e, 400, "unsupported", param, "%s", msg); break;
    case ST_ERR_BUSY: oa_fail(e, 503, "model_unavailable", NULL, "%s", msg); break;
    case ST_ERR_NOMEM: oa_fail(e, 503, "out_of_memory", NULL, "%s", msg); break;
    default: oa_fail(e, 500, "internal_error", NULL, "%s (%s)", msg, status_str(st)); break;
    }
}

void openai_request_free(struct openai_request *r)
{
    cJSON_Delete(r->messages);
    cJSON_Delete(r->tools);
    r->messages = r->tools = NULL;
}
