/*
 * openai_response.h - what the OpenAI handlers share: sending errors in
 * OpenAI's shape (pool errors with Retry-After), response ids, usage and
 * logprob objects, taking a model from the pool, and waiting on several
 * generation streams at once with SSE keep-alives.
 *
 * Everything runs on the request's worker thread.  Returned cJSON trees
 * belong to the caller.
 */
#ifndef FCGI_OPENAI_RESPONSE_H
#define FCGI_OPENAI_RESPONSE_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "infer.h"
#include "openai_request.h"
#include "pool.h"

/* Milliseconds of silence on a stream before a ": keep-alive" comment
 * (MLXM_SSE_KEEPALIVE_MS overrides, see sse_keepalive.h). */
#define OPENAI_KEEPALIVE_MS 5000

/* Sends *e (status, code, param, message); returns the status. */
int openai_send_error(struct http_request *req, const struct openai_error *e);

/*
 * Takes `model` from the pool.  On failure sends the pool's error (with
 * Retry-After for 429/503) and returns -1; the caller returns req->status.
 */
int openai_acquire(struct http_request *req, const char *model, struct pool_lease **out);

/*
 * What every OpenAI endpoint does around its own work: parse the body with
 * `parse`, take the request's model from the pool, run `serve` with the
 * lease, and give the lease back with the usage `serve` filled in.  Returns
 * the HTTP status sent.
 */
int openai_handle(struct http_request *req,
                  int (*parse)(struct arena *a, const cJSON *body, struct openai_request *r,
                               struct openai_error *e),
                  int (*serve)(struct http_request *req, struct openai_request *r,
                               struct pool_lease *lease, struct pool_usage *usage));

/* "PREFIX" followed by 24 random hex digits, e.g. "chatcmpl-1f0c...". */
void openai_make_id(const char *prefix, char *out, size_t len);

/* {"prompt_tokens", "completion_tokens", "total_tokens",
 *  "prompt_tokens_details": {"cached_tokens"}} (cached_tokens: prompt tokens
 *  served by the engine's prefix cache); NULL when out of memory. */
cJSON *openai_usage_json(int prompt_tokens, int completion_tokens, int cached_tokens);

/* A chat logprobs entry {token, logprob, bytes, top_logprobs[]} for one
 * sampled token; NULL when out of memory. */
cJSON *openai_logprob_json(const struct tokenizer *tok, const struct sampler_result *lp);

/* The token's text as logprobs show it (special tokens included; bytes of
 * a partial UTF-8 character as U+FFFD), into buf. */
void openai_token_text(const struct tokenizer *tok, int32_t id, char *buf, size_t len);

/*
 * Waits for the next event of any unfinished stream (done[i] false).  In
 * SSE mode, sends a keep-alive comment after sse_keepalive_ms(OPENAI_KEEPALIVE_MS)
 * without events.  Returns the stream's index with *ev, or -1 when the client is
 * gone (a failed write or a closed connection: every unfinished stream is
 * then cancelled; infer_free() waits for their end) or nothing is left to
 * wait for.  *turn (start at 0) is where the next poll starts: streams with
 * events waiting take turns, so batched choices stream interleaved.
 */
int openai_next_event(struct http_request *req, struct infer_stream *const *streams,
                      const bool *done, int n, bool sse, int *turn, struct infer_event **ev);

/* "length" when max_tokens or the context ended it, else "stop". */
const char *openai_finish_reason(enum engine_finish f);

/* Sends an SSE data line holding `obj`; -1 when the client is gone. */
int openai_sse_json(struct http_request *req, const cJSON *obj);

/*
 * A generation that ended without STOP or LENGTH (done: its DONE event, or
 * NULL when none came; oom: its output could not be kept).  On a stream,
 * sends an error event (the error response's body, as OpenAI streams do)
 * and returns what openai_sse_json does (-1 also when out of memory);
 * otherwise sends the error response: 503
 * generation_cancelled for a cancelled one (a forced unload, the server
 * stopping), else 500 generation_failed, and returns the status.
 */
int openai_send_failure(struct http_request *req, bool stream, const struct infer_event *done,
                        bool oom);

#endif
