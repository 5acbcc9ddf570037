/*
 * chat_template.h - chat templates: a Jinja2-subset interpreter for the
 * `chat_template` of Hugging Face models (Qwen, Llama 3.x, Mistral, Gemma,
 * Phi, DeepSeek style templates).
 *
 * Semantics follow Python jinja2 as transformers configures it: trim_blocks
 * and lstrip_blocks on, autoescape off, loopcontrols, `raise_exception`,
 * `strftime_now`, and `tojson` equal to json.dumps(ensure_ascii=False).
 * Templates and contexts are untrusted: every problem (syntax, type error,
 * raise_exception, unknown filter, a limit on steps, depth or output size)
 * comes back as an error status and a message "line L:C: ...", never a crash.
 *
 * Thread-safety: a parsed template is immutable; any number of threads may
 * render the same template at once.  Each render allocates its own memory
 * (at most 256 MiB, 16 MiB of output) and recurses at most a few hundred
 * frames deep, so a thread with a 1 MiB stack is enough.
 * Ownership: the template owns a copy of its source; the caller owns the
 * context, which render only reads, and frees the rendered string.
 */
#ifndef ENGINE_CHAT_TEMPLATE_H
#define ENGINE_CHAT_TEMPLATE_H

#include <stddef.h>

#include <cJSON.h>

#include "status.h"

struct chat_template;

/*
 * Parses `len` bytes of Jinja source.  Returns ST_OK and a template in *out,
 * or ST_ERR_FORMAT with "line L:C: message" for a syntax error, ST_ERR_RANGE
 * for a template over the size/nesting limits, ST_ERR_NOMEM.
 */
enum status chat_template_parse(const char *source, size_t len, struct chat_template **out,
                                char *err, size_t errlen);

/*
 * Loads the chat template of the model in `model_dir`: `chat_template.jinja`
 * when present, else `chat_template` of tokenizer_config.json (a string, or
 * a list of {name, template} of which "default" is taken, else the first;
 * a "tool_use" one is kept too and used when the context has "tools"),
 * else chat_template.json.  Also keeps tokenizer_config.json's bos_token and
 * eos_token (a string, null, or {"content": ...}).  Returns ST_ERR_NOT_FOUND
 * when the model has no chat template, ST_ERR_IO / ST_ERR_FORMAT for
 * unreadable or malformed files, or a parse error.
 */
enum status chat_template_load(const char *model_dir, struct chat_template **out, char *err,
                               size_t errlen);

/*
 * Renders with the variables of the JSON object `context` (messages, tools,
 * add_generation_prompt, ...).  bos_token / eos_token are taken from the
 * model's tokenizer_config.json when the context lacks them.  On ST_OK *out
 * is a malloc'd NUL-terminated string (the caller frees it) and *out_len, if
 * out_len is not NULL, its length.  Errors: ST_ERR_INVALID for a runtime
 * error or raise_exception (message "line L:C: ..."), ST_ERR_RANGE for a
 * limit, ST_ERR_NOMEM.
 */
enum status chat_template_render(const struct chat_template *t, const cJSON *context, char **out,
                                 size_t *out_len, char *err, size_t errlen);

/* The bos/eos strings kept by chat_template_load ("" when none). */
const char *chat_template_bos_token(const struct chat_template *t);
const char *chat_template_eos_token(const struct chat_template *t);

/* Frees the template; NULL is a no-op. */
void chat_template_free(struct chat_template *t);

#endif
