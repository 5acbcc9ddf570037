/*
 * openai_request.h - OpenAI request bodies (chat completions, completions,
 * embeddings) checked and turned into plain C: every field's type and range
 * validated with an error naming the field (`param`), then layered into
 * engine parameters as  request > profile > the model's
 * generation_config.json > OpenAI's defaults.
 *
 * Parsing needs no model, so a bad body is refused before a model is
 * loaded; openai_gen_params() and openai_chat_context() run once the pool
 * has resolved the model.  Memory: strings and arrays point into the body
 * or the caller's arena; the cJSON trees in `messages`/`tools` are new and
 * freed by openai_request_free().  Pure functions: thread-safe.
 */
#ifndef FCGI_OPENAI_REQUEST_H
#define FCGI_OPENAI_REQUEST_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "engine.h"

#define OPENAI_MAX_N 8         /* choices per request (each runs as its own sequence) */
#define OPENAI_MAX_STOP 16     /* stop strings */
#define OPENAI_MAX_INPUTS 2048 /* prompts per completion / inputs per embedding */

/* An error in OpenAI's shape, with its HTTP status. */
struct openai_error {
    int status;
    char code[64];
    char param[128]; /* "" = null */
    char message[1024];
};

enum openai_tool_choice {
    OPENAI_TOOL_CHOICE_AUTO,
    OPENAI_TOOL_CHOICE_NONE,
    OPENAI_TOOL_CHOICE_REQUIRED,
    OPENAI_TOOL_CHOICE_NAMED,
};

/* One prompt of a completion or one input of an embedding: text or ids. */
struct openai_input {
    const char *text; /* NULL when ids */
    const int32_t *ids;
    int n_ids;
};

/* A sampling value the request may leave unset. */
struct openai_opt {
    bool set;
    double v;
};

struct openai_request {
    const char *model;

    /* chat */
    cJSON *messages; /* normalized for the chat template */
    cJSON *tools;    /* the tools as given, NULL when none */
    enum openai_tool_choice tool_choice;
    const char *tool_name;   /* NAMED */
    const char **tool_names; /* REQUIRED: every tool's name, into tools (arena) */
    int n_tool_names;
    const cJSON *template_kwargs;
    bool json_mode; /* response_format json_object / json_schema */

    /* completions and embeddings */
    struct openai_input *inputs;
    int n_inputs;
    bool echo;

    /* embeddings */
    bool base64;
    int dimensions; /* 0 = all */

    /* generation */
    int n;
    bool stream, include_usage;
    bool logprobs;
    int top_logprobs;
    struct openai_opt max_tokens, temperature, top_p, top_k, min_p, repetition_penalty,
        presence_penalty, frequency_penalty, seed;
    const char **stop;
    int n_stop;
    struct sampler_bias *logit_bias;
    int n_logit_bias;
    int min_tokens;
    bool ignore_eos;
};

/*
 * Parses a /v1/chat/completions body.  Returns 0, or -1 with *e filled
 * (400, the offending field in param).  Call openai_request_free() either way.
 */
int openai_parse_chat(struct arena *a, const cJSON *body, struct openai_request *r,
                      struct openai_error *e);

/* Parses a /v1/completions body (prompt string / strings / ids / id lists). */
int openai_parse_completion(struct arena *a, const cJSON *body, struct openai_request *r,
                            struct openai_error *e);

/* Parses a /v1/embeddings body (input, encoding_format, dimensions). */
int openai_parse_embeddings(struct arena *a, const cJSON *body, struct openai_request *r,
                            struct openai_error *e);

/*
 * Engine parameters for choice `choice` (seed + choice when seeded), with
 * the profile's defaults (its row, may be NULL) and the model's under the
 * request's own values; tool_choice required / named as a JSON constraint
 * (tool names and all).  Checks what needs the model (logit_bias ids).
 * stop/logit_bias point into r.  Returns 0 or -1 with *e.
 */
int openai_gen_params(const struct openai_request *r, const cJSON *profile,
                      const struct engine_model_info *info, int choice,
                      struct engine_gen_params *out, struct openai_error *e);

/*
 * The chat template context: messages (the profile's system_prompt first
 * when the request has no system message; tool_choice required/named as an
 * instruction), tools (none for tool_choice "none"; only the named one for
 * a named choice), chat_template_kwargs merged in, add_generation_prompt.
 * NULL when out of memory; the caller deletes it.
 */
cJSON *openai_chat_context(const struct openai_request *r, const cJSON *profile);

/*
 * The fallback prompt for models without a chat template: ChatML
 * ("<|im_start|>role\ncontent<|im_end|>\n" per message, then
 * "<|im_start|>assistant\n").  malloc'd; NULL when out of memory.
 */
char *openai_chatml_prompt(const cJSON *messages);

/* Maps an engine status from submit to an OpenAI error (400
 * context_length_exceeded for ST_ERR_RANGE, ...). */
void openai_error_from_status(enum status st, const char *msg, const char *param,
                              struct openai_error *e);

void openai_request_free(struct openai_request *r);

#endif
