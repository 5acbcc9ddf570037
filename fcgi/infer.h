/*
 * infer.h - a generation request seen from a FastCGI worker: submits to the
 * engine and turns the engine's callbacks (on the model's scheduler thread)
 * into a queue the worker drains at its own pace.
 *
 * The worker calls infer_next() in a loop: it returns each event in order,
 * or times out so the worker can write an SSE keep-alive (and learn that the
 * client is gone, then infer_cancel()).  Events are copies owned by the
 * caller until infer_event_free().  One stream belongs to one worker; only
 * the engine's callback touches it from another thread, under its lock.
 */
#ifndef FCGI_INFER_H
#define FCGI_INFER_H

#include <stddef.h>

#include "engine.h"

struct infer_stream;

struct infer_event {
    enum engine_event_kind kind;
    int32_t token;
    char *text; /* NUL-terminated copy (may contain no bytes) */
    size_t text_len;
    int has_logprobs;
    struct sampler_result logprobs;
    /* DONE only: */
    enum engine_finish finish;
    enum status status;
    char error[512];
    char *stop_string; /* NULL unless a stop string ended it */
    struct engine_usage usage;
};

/*
 * Submits `desc` (its on_event and user are replaced) and returns the
 * stream.  Errors from engine_submit come back here unchanged.
 */
enum status infer_start(struct engine_model *m, struct engine_request_desc *desc,
                        struct infer_stream **out, char *err, size_t errlen);

/*
 * Waits up to timeout_ms (-1 = forever) for the next event.  Returns 1 and
 * *ev, or 0 on timeout.  After the DONE event it returns no more events.
 */
int infer_next(struct infer_stream *s, int timeout_ms, struct infer_event **ev);

void infer_event_free(struct infer_event *ev);

/* Asks the engine to stop the request (client gone, server stopping). */
void infer_cancel(struct infer_stream *s);

/* The prompt ids the request was submitted with. */
const int32_t *infer_prompt(const struct infer_stream *s, int *n);

/* Releases the engine request (cancelling it if unfinished) and the stream. */
void infer_free(struct infer_stream *s);

/* Cancels every live stream (shutdown after the drain grace period): each
 * gets its DONE event with ENGINE_FINISH_CANCELLED.  Returns how many were
 * live.  Any thread. */
int infer_cancel_all(void);

/* What a client whose generation was cancelled that way is told. */
#define INFER_CANCELLED_MESSAGE                                                                    \
    "the generation was cancelled (the model was unloaded or the server is stopping)"

/* Cancels the live streams running on model m (a forced unload), as
 * infer_cancel_all does.  Returns how many.  Any thread. */
int infer_cancel_model(const struct engine_model *m);

#endif
