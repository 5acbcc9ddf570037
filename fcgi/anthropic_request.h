/*
 * anthropic_request.h - an Anthropic Messages API body (POST /v1/messages and
 * /v1/messages/count_tokens) validated and mapped onto what the engine
 * takes: a chat-template context with OpenAI-style messages and function
 * tools, and generation parameters.
 *
 * Mapping: `system` (a string or text blocks) and system-role messages
 * (Claude Code sends them) become one leading system message; user text
 * blocks join into the user's content; tool_result blocks become role
 * "tool" messages (tool_call_id, text content); assistant tool_use blocks
 * become tool_calls (arguments as an object, as HF templates expect) and
 * thinking blocks reasoning_content; `tools` become {"type":"function",
 * "function":{name, description, parameters}}; `thinking` sets
 * enable_thinking.  A final assistant message is a prefill the reply
 * continues.  Unknown fields, cache_control and metadata are accepted and
 * ignored, and server tools (web search, code execution, MCP) and their
 * blocks left out; image and document blocks are refused (text models only).
 *
 * Precedence of sampling values: the request, then the profile's defaults,
 * then the model's generation_config.json, then Anthropic's (temperature 1).
 *
 * Thread-safety: plain data, one request per thread.  The parsed request
 * points into the body it was parsed from (which must outlive it) and owns
 * its `chat` context; anthropic_request_free() releases it.
 */
#ifndef FCGI_ANTHROPIC_REQUEST_H
#define FCGI_ANTHROPIC_REQUEST_H

#include <cJSON.h>
#include <stdbool.h>

#include "engine.h"

#define ANTHROPIC_MAX_STOP 64 /* stop_sequences per request */

enum anthropic_tool_choice {
    ANTHROPIC_TOOL_CHOICE_AUTO,
    ANTHROPIC_TOOL_CHOICE_ANY,  /* decoding forced to {"name", "arguments"} call(s) */
    ANTHROPIC_TOOL_CHOICE_TOOL, /* only the named tool is shown; decoding forced to its input */
    ANTHROPIC_TOOL_CHOICE_NONE, /* no tools are shown to the model */
};

struct anthropic_request {
    const char *model;
    bool stream;
    int max_tokens; /* 0 when absent (count_tokens) */
    bool has_temperature, has_top_p, has_top_k;
    float temperature, top_p;
    int top_k;
    const char *stop[ANTHROPIC_MAX_STOP];
    int n_stop;
    bool thinking; /* thinking.type == "enabled" */
    int thinking_budget;
    enum anthropic_tool_choice tool_choice;
    bool tools_shown;        /* the template got tools: parse tool calls */
    const char *forced_tool; /* TOOL: its name (into chat) */
    const char **tool_names; /* ANY: the names shown (into chat; the array is owned) */
    int n_tool_names;
    bool has_system;
    const char *prefill; /* text of a final assistant message, or NULL */
    cJSON *chat;         /* the template context (owned) */
};

/* An invalid body: the HTTP status and Anthropic error type to answer with. */
struct anthropic_error {
    int status;
    const char *type; /* "invalid_request_error", ... */
    char message[512];
};

/*
 * Validates `body` and fills *out.  count_only: the body of count_tokens
 * (max_tokens, stream and sampling fields are not required).  Returns 0, or
 * -1 with *err (the request is then empty; no need to free it).
 */
int anthropic_request_parse(const cJSON *body, bool count_only, struct anthropic_request *out,
                            struct anthropic_error *err);

/*
 * Puts the profile's system_prompt in front when the request has no system
 * prompt.  profile (a profile row, see profile.h) may be NULL.  Returns 0 or
 * -1 (out of memory).
 */
int anthropic_request_apply_system(struct anthropic_request *r, const cJSON *profile);

/*
 * Fills *out (engine_gen_params_default first) from the request, with the
 * profile's defaults (may be NULL) and the model's generation defaults
 * (may be NULL) under it; tool_choice any / tool as a JSON constraint (see
 * json_constraint.h).  The stop and name pointers refer to the request.
 */
void anthropic_request_gen_params(const struct anthropic_request *r, const cJSON *profile,
                                  const struct engine_gen_defaults *model,
                                  struct engine_gen_params *out);

/* Releases what the request owns; the struct may be reused. */
void anthropic_request_free(struct anthropic_request *r);

#endif
