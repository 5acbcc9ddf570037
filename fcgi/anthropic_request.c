#include "anthropic_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_constraint.h"

/* ---- errors and small readers ------------------------------------------ */

__attribute__((format(printf, 2, 3))) static int ar_fail(struct anthropic_error *err,
                                                         const char *fmt, ...)
{
    err->status = 400;
    err->type = "invalid_request_error";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int ar_oom(struct anthropic_error *err)
{
    err->status = 500;
    err->type = "api_error";
    snprintf(err->message, sizeof(err->message), "out of memory");
    return -1;
}

/* An integral JSON number within [lo, hi]. */
static bool ar_is_int(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && floor(v->valuedouble) == v->valuedouble && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

static const cJSON *ar_get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* Growing text for joining blocks. */
struct ar_text {
    char *s;
    size_t len, cap;
};

static int ar_text_add(struct ar_text *t, const char *sep, const char *s)
{
    size_t seplen = t->len && sep ? strlen(sep) : 0, n = strlen(s);
    if (t->len + seplen + n + 1 > t->cap) {
        size_t cap = (t->len + seplen + n + 1) * 2;
        char *p = realloc(t->s, cap);
        if (!p)
            return -1;
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, sep, seplen);
    memcpy(t->s + t->len + seplen, s, n);
    t->len += seplen + n;
    t->s[t->len] = '\0';
    return 0;
}

static const char *ar_text_str(const struct ar_text *t)
{
    return t->s ? t->s : "";
}

/* The "type" of a content block at `where`, or NULL after ar_fail. */
static const char *ar_block_type(const cJSON *b, const char *where, struct anthropic_error *err)
{
    if (!cJSON_IsObject(b)) {
        ar_fail(err, "%s: a content block must be an object", where);
        return NULL;
    }
    const cJSON *t = ar_get(b, "type");
    if (!cJSON_IsString(t)) {
        ar_fail(err, "%s.type: Field required (a string)", where);
        return NULL;
    }
    if (!strcmp(t->valuestring, "image") || !strcmp(t->valuestring, "document")) {
        ar_fail(err, "%s: %s content is not supported: this server runs text-only models", where,
                t->valuestring);
        return NULL;
    }
    return t->valuestring;
}

/*
 * Text of a string or an array of text blocks (system prompts, tool
 * results), joined with `sep`, appended to *out.
 */
static int ar_text_of(const cJSON *v, const char *where, const char *sep, struct ar_text *out,
                      struct anthropic_error *err)
{
    if (cJSON_IsString(v))
        return ar_text_add(out, sep, v->valuestring) ? ar_oom(err) : 0;
    if (!cJSON_IsArray(v))
        return ar_fail(err, "%s: must be a string or an array of text blocks", where);
    int i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, v)
    {
        char at[128];
        snprintf(at, sizeof(at), "%s.%d", where, i++);
        const char *type = ar_block_type(b, at, err);
        if (!type)
            return -1;
        if (strcmp(type, "text"))
            return ar_fail(err, "%s.type: expected 'text', got '%s'", at, type);
        const cJSON *t = ar_get(b, "text");
        if (!cJSON_IsString(t))
            return ar_fail(err, "%s.text: Field required (a string)", at);
        if (ar_text_add(out, sep, t->valuestring))
            return ar_oom(err);
    }
    return 0;
}

/* ---- messages ----------------------------------------------------------- */

/*
 * Blocks of tools that Anthropic's servers run (web search, code execution,
 * MCP connectors).  Clients such as Claude Code keep them in the history; a
 * local model can do nothing with them, so they are left out.
 */
static bool ar_is_server_block(const char *type)
{
    static const char suffix[] = "_tool_result";
    size_t n = strlen(type), sn = sizeof(suffix) - 1;
    return !strcmp(type, "server_tool_use") || !strcmp(type, "mcp_tool_use") ||
           !strcmp(type, "container_upload") || (n > sn && !strcmp(type + n - sn, suffix));
}

static cJSON *ar_add_message(cJSON *messages, const char *role, const char *content)
{
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddStringToObject(m, "role", role) ||
        !cJSON_AddStringToObject(m, "content", content)) {
        cJSON_Delete(m);
        return NULL;
    }
    cJSON_AddItemToArray(messages, m);
    return m;
}

/* A user message: tool results become "tool" messages, text one user message. */
static int ar_user_message(const cJSON *content, const char *where, cJSON *messages,
                           struct anthropic_error *err)
{
    struct ar_text text = {0};
    int rc = 0, n_text = 0, i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        char at[96];
        snprintf(at, sizeof(at), "%s.%d", where, i++);
        const char *type = ar_block_type(b, at, err);
        if (!type) {
            rc = -1;
            break;
        }
        if (!strcmp(type, "text")) {
            const cJSON *t = ar_get(b, "text");
            if (!cJSON_IsString(t)) {
                rc = ar_fail(err, "%s.text: Field required (a string)", at);
                break;
            }
            if (ar_text_add(&text, "\n", t->valuestring)) {
                rc = ar_oom(err);
                break;
            }
            n_text++;
        } else if (!strcmp(type, "tool_result")) {
            const cJSON *id = ar_get(b, "tool_use_id");
            const cJSON *c = ar_get(b, "content");
            const cJSON *is_error = ar_get(b, "is_error");
            if (!cJSON_IsString(id) || !id->valuestring[0]) {
                rc = ar_fail(err, "%s.tool_use_id: Field required (a string)", at);
                break;
            }
            if (is_error && !cJSON_IsBool(is_error)) {
                rc = ar_fail(err, "%s.is_error: must be a boolean", at);
                break;
            }
            char cat[128];
            snprintf(cat, sizeof(cat), "%s.content", at);
            struct ar_text result = {0};
            if (c && !cJSON_IsNull(c) && ar_text_of(c, cat, "\n", &result, err)) {
                free(result.s);
                rc = -1;
                break;
            }
            cJSON *m = ar_add_message(messages, "tool", ar_text_str(&result));
            free(result.s);
            if (!m || !cJSON_AddStringToObject(m, "tool_call_id", id->valuestring)) {
                rc = ar_oom(err);
                break;
            }
        } else if (!strcmp(type, "tool_use") || !strcmp(type, "thinking") ||
                   !strcmp(type, "redacted_thinking")) {
            rc = ar_fail(err, "%s: %s blocks belong in assistant messages", at, type);
            break;
        } else if (!ar_is_server_block(type)) {
            rc = ar_fail(err, "%s.type: unknown content block type '%s'", at, type);
            break;
        }
    }
    if (rc == 0 && (n_text > 0 || cJSON_GetArraySize(content) == 0) &&
        !ar_add_message(messages, "user", ar_text_str(&text)))
        rc = ar_oom(err);
    free(text.s);
    return rc;
}

/* An assistant message: text, tool_use -> tool_calls, thinking -> reasoning_content. */
static int ar_assistant_message(const cJSON *content, const char *where, cJSON *messages,
                                bool *only_text, struct anthropic_error *err)
{
    struct ar_text text = {0}, thinking = {0};
    cJSON *calls = cJSON_CreateArray();
    int rc = calls ? 0 : ar_oom(err), i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        if (rc)
            break;
        char at[96];
        snprintf(at, sizeof(at), "%s.%d", where, i++);
        const char *type = ar_block_type(b, at, err);
        if (!type) {
            rc = -1;
        } else if (!strcmp(type, "text")) {
            const cJSON *t = ar_get(b, "text");
            if (!cJSON_IsString(t))
                rc = ar_fail(err, "%s.text: Field required (a string)", at);
            else if (ar_text_add(&text, "\n", t->valuestring))
                rc = ar_oom(err);
        } else if (!strcmp(type, "thinking")) {
            const cJSON *t = ar_get(b, "thinking");
            if (!cJSON_IsString(t))
                rc = ar_fail(err, "%s.thinking: Field required (a string)", at);
            else if (ar_text_add(&thinking, "\n", t->valuestring))
                rc = ar_oom(err);
        } else if (!strcmp(type, "redacted_thinking")) {
            /* Opaque to us: nothing to show the model. */
        } else if (!strcmp(type, "tool_use")) {
            const cJSON *id = ar_get(b, "id"), *name = ar_get(b, "name");
            const cJSON *input = ar_get(b, "input");
            if (!cJSON_IsString(id) || !id->valuestring[0]) {
                rc = ar_fail(err, "%s.id: Field required (a string)", at);
            } else if (!cJSON_IsString(name) || !name->valuestring[0]) {
                rc = ar_fail(err, "%s.name: Field required (a string)", at);
            } else if (!cJSON_IsObject(input)) {
                rc = ar_fail(err, "%s.input: Field required (an object)", at);
            } else {
                cJSON *call = cJSON_CreateObject();
                cJSON *fn = call ? cJSON_AddObjectToObject(call, "function") : NULL;
                cJSON *args = cJSON_Duplicate(input, 1);
                if (!fn || !args || !cJSON_AddStringToObject(call, "id", id->valuestring) ||
                    !cJSON_AddStringToObject(call, "type", "function") ||
                    !cJSON_AddStringToObject(fn, "name", name->valuestring)) {
                    cJSON_Delete(call);
                    cJSON_Delete(args);
                    rc = ar_oom(err);
                } else {
                    cJSON_AddItemToObject(fn, "arguments", args);
                    cJSON_AddItemToArray(calls, call);
                }
            }
        } else if (!strcmp(type, "tool_result")) {
            rc = ar_fail(err, "%s: tool_result blocks belong in user messages", at);
        } else if (!ar_is_server_block(type)) {
            rc = ar_fail(err, "%s.type: unknown content block type '%s'", at, type);
        }
    }
    cJSON *m = rc ? NULL : ar_add_message(messages, "assistant", ar_text_str(&text));
    if (!rc && !m)
        rc = ar_oom(err);
    if (m && cJSON_GetArraySize(calls) > 0) {
        cJSON_AddItemToObject(m, "tool_calls", calls);
        calls = NULL;
    }
    if (m && thinking.len && !cJSON_AddStringToObject(m, "reasoning_content", thinking.s))
        rc = ar_oom(err);
    *only_text = calls != NULL && thinking.len == 0;
    cJSON_Delete(calls);
    free(text.s);
    free(thinking.s);
    return rc;
}

static int ar_messages(const cJSON *body, struct anthropic_request *r, cJSON *messages,
                       struct ar_text *system, struct anthropic_error *err)
{
    const cJSON *list = ar_get(body, "messages");
    if (!list)
        return ar_fail(err, "messages: Field required");
    if (!cJSON_IsArray(list))
        return ar_fail(err, "messages: must be an array");
    int n = cJSON_GetArraySize(list), i = 0;
    const cJSON *msg;
    const char *last_role = NULL;
    bool last_only_text = false;
    cJSON_ArrayForEach(msg, list)
    {
        char at[64];
        snprintf(at, sizeof(at), "messages.%d", i++);
        if (!cJSON_IsObject(msg))
            return ar_fail(err, "%s: a message must be an object", at);
        const cJSON *role = ar_get(msg, "role"), *content = ar_get(msg, "content");
        if (!cJSON_IsString(role))
            return ar_fail(err, "%s.role: Field required (\"user\" or \"assistant\")", at);
        if (!content)
            return ar_fail(err, "%s.content: Field required", at);
        if (!cJSON_IsString(content) && !cJSON_IsArray(content))
            return ar_fail(err, "%s.content: must be a string or an array of content blocks", at);
        char cat[80];
        snprintf(cat, sizeof(cat), "%s.content", at);
        const char *rs = role->valuestring;
        if (!strcmp(rs, "system")) {
            /* Claude Code and some proxies put system prompts inline. */
            if (ar_text_of(content, cat, "\n\n", system, err))
                return -1;
            r->has_system = true;
            continue;
        }
        if (strcmp(rs, "user") && strcmp(rs, "assistant"))
            return ar_fail(err, "%s.role: Input should be 'user' or 'assistant', got '%s'", at, rs);
        last_role = rs;
        last_only_text = true;
        if (cJSON_IsString(content)) {
            if (!ar_add_message(messages, rs, content->valuestring))
                return ar_oom(err);
        } else if (!strcmp(rs, "user")) {
            if (ar_user_message(content, cat, messages, err))
                return -1;
        } else if (ar_assistant_message(content, cat, messages, &last_only_text, err)) {
            return -1;
        }
    }
    if (n == 0 || !last_role)
        return ar_fail(err, "messages: at least one user or assistant message is required");
    if (!strcmp(last_role, "assistant")) {
        if (!last_only_text)
            return ar_fail(err,
                           "messages.%d: a final assistant message (prefill) may only hold "
                           "text",
                           n - 1);
        int at = cJSON_GetArraySize(messages) - 1;
        r->prefill = cJSON_GetStringValue(ar_get(cJSON_GetArrayItem(messages, at), "content"));
        /* An empty final assistant message asks for nothing to continue. */
        if (r->prefill && !r->prefill[0]) {
            cJSON_DeleteItemFromArray(messages, at);
            r->prefill = NULL;
        }
    }
    return 0;
}

/* ---- tools -------------------------------------------------------------- */

static int ar_tool_choice(const cJSON *body, struct anthropic_request *r, const char **name,
                          struct anthropic_error *err)
{
    const cJSON *tc = ar_get(body, "tool_choice");
    *name = NULL;
    r->tool_choice = ANTHROPIC_TOOL_CHOICE_AUTO;
    if (!tc || cJSON_IsNull(tc))
        return 0;
    const cJSON *type = cJSON_IsObject(tc) ? ar_get(tc, "type") : NULL;
    if (!cJSON_IsString(type))
        return ar_fail(err, "tool_choice: must be an object with a type (auto, any, tool, none)");
    const cJSON *dp = ar_get(tc, "disable_parallel_tool_use");
    if (dp && !cJSON_IsBool(dp))
        return ar_fail(err, "tool_choice.disable_parallel_tool_use: must be a boolean");
    const char *t = type->valuestring;
    if (!strcmp(t, "auto")) {
        r->tool_choice = ANTHROPIC_TOOL_CHOICE_AUTO;
    } else if (!strcmp(t, "any")) {
        r->tool_choice = ANTHROPIC_TOOL_CHOICE_ANY;
    } else if (!strcmp(t, "none")) {
        r->tool_choice = ANTHROPIC_TOOL_CHOICE_NONE;
    } else if (!strcmp(t, "tool")) {
        const cJSON *n = ar_get(tc, "name");
        if (!cJSON_IsString(n) || !n->valuestring[0])
            return ar_fail(err, "tool_choice.name: Field required when type is 'tool'");
        r->tool_choice = ANTHROPIC_TOOL_CHOICE_TOOL;
        *name = n->valuestring;
    } else {
        return ar_fail(err, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
    }
    return 0;
}

/* tool_choice any / tool: the names the constrained output may write, byte
 * for byte (json_constraint.h), from the tools shown. */
static int ar_forced_names(struct anthropic_request *r, const cJSON *shown,
                           struct anthropic_error *err)
{
    if (r->tool_choice != ANTHROPIC_TOOL_CHOICE_ANY && r->tool_choice != ANTHROPIC_TOOL_CHOICE_TOOL)
        return 0;
    int n = cJSON_GetArraySize(shown), i = 0;
    if (n > JSON_NAMES_MAX)
        return ar_fail(err, "tools: at most %d tools with tool_choice %s", JSON_NAMES_MAX,
                       r->tool_choice == ANTHROPIC_TOOL_CHOICE_ANY ? "any" : "tool");
    r->tool_names = calloc((size_t)n, sizeof(*r->tool_names));
    if (!r->tool_names)
        return ar_oom(err);
    const cJSON *t;
    cJSON_ArrayForEach(t, shown)
    {
        const char *name = cJSON_GetStringValue(ar_get(ar_get(t, "function"), "name"));
        for (const char *c = name; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\')
                return ar_fail(err,
                               "tools.%d.name: quotes, backslashes and control characters "
                               "cannot be forced by tool_choice",
                               i);
        r->tool_names[i++] = name;
    }
    r->n_tool_names = i;
    if (r->tool_choice == ANTHROPIC_TOOL_CHOICE_TOOL)
        r->forced_tool = r->tool_names[0];
    return 0;
}

static int ar_tools(const cJSON *body, struct anthropic_request *r, cJSON *ctx,
                    struct anthropic_error *err)
{
    const char *only = NULL;
    if (ar_tool_choice(body, r, &only, err))
        return -1;
    const cJSON *tools = ar_get(body, "tools");
    if ((!tools || cJSON_IsNull(tools)) && r->tool_choice != ANTHROPIC_TOOL_CHOICE_AUTO &&
        r->tool_choice != ANTHROPIC_TOOL_CHOICE_NONE)
        return ar_fail(err, "tool_choice: requires tools");
    if (!tools || cJSON_IsNull(tools))
        return 0;
    if (!cJSON_IsArray(tools))
        return ar_fail(err, "tools: must be an array");
    cJSON *out = cJSON_CreateArray();
    if (!out)
        return ar_oom(err);
    int i = 0, rc = 0;
    bool found = only == NULL;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        char at[48];
        snprintf(at, sizeof(at), "tools.%d", i++);
        if (!cJSON_IsObject(t)) {
            rc = ar_fail(err, "%s: a tool must be an object", at);
            break;
        }
        const cJSON *type = ar_get(t, "type"), *name = ar_get(t, "name");
        const cJSON *desc = ar_get(t, "description"), *schema = ar_get(t, "input_schema");
        if (type && !cJSON_IsNull(type) && !cJSON_IsString(type)) {
            rc = ar_fail(err, "%s.type: must be a string", at);
            break;
        }
        /* Server tools (web_search_..., code_execution_...) and Anthropic-defined
         * client tools have no input_schema a local model could follow. */
        if (cJSON_IsString(type) && strcmp(type->valuestring, "custom"))
            continue;
        if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) > 128) {
            rc = ar_fail(err, "%s.name: Field required (a string of 1 to 128 bytes)", at);
            break;
        }
        if (desc && !cJSON_IsString(desc)) {
            rc = ar_fail(err, "%s.description: must be a string", at);
            break;
        }
        if (!cJSON_IsObject(schema)) {
            rc = ar_fail(err, "%s.input_schema: Field required (a JSON schema object)", at);
            break;
        }
        for (const cJSON *o = out->child; o; o = o->next)
            if (!strcmp(cJSON_GetStringValue(ar_get(ar_get(o, "function"), "name")),
                        name->valuestring))
                rc = ar_fail(err, "%s.name: tool names must be unique ('%s' repeats)", at,
                             name->valuestring);
        if (rc)
            break;
        if (only && strcmp(only, name->valuestring))
            continue;
        found = true;
        cJSON *tool = cJSON_CreateObject();
        cJSON *fn = tool ? cJSON_AddObjectToObject(tool, "function") : NULL;
        cJSON *params = cJSON_Duplicate(schema, 1);
        if (!fn || !params || !cJSON_AddStringToObject(tool, "type", "function") ||
            !cJSON_AddStringToObject(fn, "name", name->valuestring) ||
            (desc && !cJSON_AddStringToObject(fn, "description", desc->valuestring))) {
            cJSON_Delete(tool);
            cJSON_Delete(params);
            rc = ar_oom(err);
            break;
        }
        cJSON_AddItemToObject(fn, "parameters", params);
        cJSON_AddItemToArray(out, tool);
    }
    if (!rc && !found)
        rc = ar_fail(err, "tool_choice.name: no tool named '%s' in tools", only);
    if (!rc && cJSON_GetArraySize(out) == 0 && r->tool_choice == ANTHROPIC_TOOL_CHOICE_ANY)
        rc = ar_fail(err, "tool_choice: 'any' requires at least one tool");
    if (rc || r->tool_choice == ANTHROPIC_TOOL_CHOICE_NONE || cJSON_GetArraySize(out) == 0) {
        cJSON_Delete(out);
        return rc;
    }
    cJSON_AddItemToObject(ctx, "tools", out);
    r->tools_shown = true;
    return ar_forced_names(r, out, err);
}

/* ---- scalar fields ------------------------------------------------------- */

static int ar_sampling(const cJSON *body, struct anthropic_request *r, bool count_only,
                       struct anthropic_error *err)
{
    const cJSON *v = ar_get(body, "max_tokens");
    if (!v && !count_only)
        return ar_fail(err, "max_tokens: Field required");
    if (v && !ar_is_int(v, 1, 16777216))
        return ar_fail(err, "max_tokens: must be an integer from 1 to 16777216");
    r->max_tokens = v ? (int)v->valuedouble : 0;

    if ((v = ar_get(body, "stream")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v))
            return ar_fail(err, "stream: must be a boolean");
        r->stream = cJSON_IsTrue(v);
    }
    if ((v = ar_get(body, "temperature")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1)
            return ar_fail(err, "temperature: must be a number from 0 to 1");
        r->has_temperature = true;
        r->temperature = (float)v->valuedouble;
    }
    if ((v = ar_get(body, "top_p")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 1)
            return ar_fail(err, "top_p: must be a number in (0, 1]");
        r->has_top_p = true;
        r->top_p = (float)v->valuedouble;
    }
    if ((v = ar_get(body, "top_k")) && !cJSON_IsNull(v)) {
        if (!ar_is_int(v, 0, 1e9))
            return ar_fail(err, "top_k: must be a non-negative integer");
        r->has_top_k = true;
        r->top_k = (int)v->valuedouble;
    }
    if ((v = ar_get(body, "stop_sequences")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v))
            return ar_fail(err, "stop_sequences: must be an array of strings");
        if (cJSON_GetArraySize(v) > ANTHROPIC_MAX_STOP)
            return ar_fail(err, "stop_sequences: at most %d are allowed", ANTHROPIC_MAX_STOP);
        const cJSON *s;
        cJSON_ArrayForEach(s, v)
        {
            if (!cJSON_IsString(s) || !s->valuestring[0] ||
                strlen(s->valuestring) > ENGINE_MAX_STOP_LEN)
                return ar_fail(err,
                               "stop_sequences.%d: must be a non-empty string of at most %d "
                               "bytes",
                               r->n_stop, ENGINE_MAX_STOP_LEN);
            r->stop[r->n_stop++] = s->valuestring;
        }
    }
    if ((v = ar_get(body, "metadata")) && !cJSON_IsNull(v) && !cJSON_IsObject(v))
        return ar_fail(err, "metadata: must be an object");
    if ((v = ar_get(body, "thinking")) && !cJSON_IsNull(v)) {
        const cJSON *type = cJSON_IsObject(v) ? ar_get(v, "type") : NULL;
        if (!cJSON_IsString(type))
            return ar_fail(err, "thinking: must be an object with a type (enabled or disabled)");
        if (!strcmp(type->valuestring, "enabled")) {
            const cJSON *b = ar_get(v, "budget_tokens");
            if (!ar_is_int(b, 1, 16777216))
                return ar_fail(err, "thinking.budget_tokens: Field required (a positive "
                                    "integer)");
            if (r->max_tokens && b->valuedouble >= r->max_tokens)
                return ar_fail(err, "thinking.budget_tokens: must be less than max_tokens");
            r->thinking = true;
            r->thinking_budget = (int)b->valuedouble;
        } else if (strcmp(type->valuestring, "disabled")) {
            return ar_fail(err, "thinking.type: Input should be 'enabled' or 'disabled'");
        }
    }
    return 0;
}

/* ---- public ------------------------------------------------------------- */

int anthropic_request_parse(const cJSON *body, bool count_only, struct anthropic_request *out,
                            struct anthropic_error *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (!cJSON_IsObject(body))
        return ar_fail(err, "the request body must be a JSON object");
    const cJSON *model = ar_get(body, "model");
    if (!cJSON_IsString(model) || !model->valuestring[0])
        return ar_fail(err, "model: Field required (a non-empty string)");
    out->model = model->valuestring;
    if (ar_sampling(body, out, count_only, err))
        return -1;

    struct ar_text system = {0};
    const cJSON *sys = ar_get(body, "system");
    cJSON *ctx = cJSON_CreateObject();
    cJSON *messages = ctx ? cJSON_AddArrayToObject(ctx, "messages") : NULL;
    int rc = messages ? 0 : ar_oom(err);
    if (!rc && sys && !cJSON_IsNull(sys)) {
        rc = ar_text_of(sys, "system", "\n\n", &system, err);
        out->has_system = true;
    }
    if (!rc)
        rc = ar_messages(body, out, messages, &system, err);
    if (!rc)
        rc = ar_tools(body, out, ctx, err);
    if (!rc && out->has_system) {
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddStringToObject(m, "role", "system") ||
            !cJSON_AddStringToObject(m, "content", ar_text_str(&system))) {
            cJSON_Delete(m);
            rc = ar_oom(err);
        } else {
            cJSON_InsertItemInArray(messages, 0, m);
        }
    }
    free(system.s);
    if (!rc && (!cJSON_AddBoolToObject(ctx, "add_generation_prompt", out->prefill == NULL) ||
                !cJSON_AddBoolToObject(ctx, "enable_thinking", out->thinking)))
        rc = ar_oom(err);
    if (rc) {
        cJSON_Delete(ctx);
        free(out->tool_names);
        memset(out, 0, sizeof(*out));
        return -1;
    }
    out->chat = ctx;
    return 0;
}

int anthropic_request_apply_system(struct anthropic_request *r, const cJSON *profile)
{
    const char *sp = cJSON_GetStringValue(ar_get(profile, "system_prompt"));
    if (r->has_system || !sp || !sp[0])
        return 0;
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddStringToObject(m, "role", "system") ||
        !cJSON_AddStringToObject(m, "content", sp)) {
        cJSON_Delete(m);
        return -1;
    }
    cJSON_InsertItemInArray(cJSON_GetObjectItemCaseSensitive(r->chat, "messages"), 0, m);
    r->has_system = true;
    return 0;
}

/* A profile's numeric default, when it sets one. */
static bool ar_profile_num(const cJSON *profile, const char *key, double *out)
{
    const cJSON *v = ar_get(profile, key);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

void anthropic_request_gen_params(const struct anthropic_request *r, const cJSON *profile,
                                  const struct engine_gen_defaults *model,
                                  struct engine_gen_params *out)
{
    engine_gen_params_default(out);
    struct sampler_params *s = &out->sampling;
    double v;
    if (r->has_temperature)
        s->temperature = r->temperature;
    else if (ar_profile_num(profile, "temperature", &v))
        s->temperature = (float)v;
    else if (model && model->has_temperature)
        s->temperature = model->temperature;
    else
        s->temperature = 1.0f;
    if (r->has_top_p)
        s->top_p = r->top_p;
    else if (ar_profile_num(profile, "top_p", &v) && v > 0)
        s->top_p = (float)v;
    else if (model && model->has_top_p)
        s->top_p = model->top_p;
    if (r->has_top_k)
        s->top_k = r->top_k;
    else if (ar_profile_num(profile, "top_k", &v))
        s->top_k = (int)v;
    else if (model && model->has_top_k)
        s->top_k = model->top_k;
    /* Anthropic has no fields for these: only the defaults apply. */
    if (ar_profile_num(profile, "repetition_penalty", &v))
        s->repetition_penalty = (float)v;
    else if (model && model->has_repetition_penalty)
        s->repetition_penalty = model->repetition_penalty;
    if (ar_profile_num(profile, "min_p", &v))
        s->min_p = (float)v;
    if (ar_profile_num(profile, "presence_penalty", &v))
        s->presence_penalty = (float)v;
    if (ar_profile_num(profile, "frequency_penalty", &v))
        s->frequency_penalty = (float)v;
    if (ar_profile_num(profile, "seed", &v)) {
        out->has_seed = true;
        s->seed = (uint64_t)(int64_t)v;
    }
    out->max_tokens = r->max_tokens;
    out->stop = r->stop;
    out->n_stop = r->n_stop;
    /* any: a call {"name": <shown tool>, "arguments": {...}} or an array of
     * them; tool: the one tool's input object. */
    out->json_object = r->forced_tool || r->n_tool_names;
    if (r->tool_choice == ANTHROPIC_TOOL_CHOICE_ANY) {
        out->json_tool_names = r->tool_names;
        out->n_json_tool_names = r->n_tool_names;
    }
}

void anthropic_request_free(struct anthropic_request *r)
{
    cJSON_Delete(r->chat);
    r->chat = NULL;
    free(r->tool_names);
    r->tool_names = NULL;
    r->n_tool_names = 0;
    r->forced_tool = NULL;
}
