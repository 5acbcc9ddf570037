/*
 * anthropic_output.h - a model's generated text turned into Anthropic
 * Messages content blocks, incrementally: thinking blocks (reasoning.h
 * splits <think>...</think>), text blocks, and tool_use blocks (toolcall.h
 * finds the calls).
 *
 * As text arrives the builder opens, extends and closes blocks in index
 * order and, when given an event callback, reports each step as the
 * streaming API does: content_block_start, content_block_delta (text_delta,
 * thinking_delta, input_json_delta) and content_block_stop.  The same
 * builder also collects the finished blocks for the non-streaming reply, so
 * a stream's deltas always add up to the non-streaming content.
 *
 * Thread-safety: a builder belongs to one thread.  Event data is owned by
 * the builder and valid only during the callback.
 */
#ifndef FCGI_ANTHROPIC_OUTPUT_H
#define FCGI_ANTHROPIC_OUTPUT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "toolcall.h"

struct anthropic_output;

/* Called with an event name ("content_block_delta") and its data object. */
typedef void (*anthropic_event_fn)(void *user, const char *event, const cJSON *data);

struct anthropic_output_opts {
    bool thinking_starts_inside; /* the prompt opened <think> (reasoning.h) */
    bool parse_tools;            /* tools were shown to the model */
    enum toolcall_format tool_format;
    const char *forced_tool; /* the output is this tool's input (tool_choice tool) */
    anthropic_event_fn emit; /* NULL: collect blocks only */
    void *user;
};

/* NULL when out of memory. */
struct anthropic_output *anthropic_output_new(const struct anthropic_output_opts *opts);

/* Feeds generated text.  0, or -1 when out of memory. */
int anthropic_output_feed(struct anthropic_output *o, const char *text, size_t len);

/* End of generation: flushes held-back text and closes the open block.  0 or -1. */
int anthropic_output_finish(struct anthropic_output *o);

/* The finished content blocks so far (owned by the builder). */
const cJSON *anthropic_output_content(const struct anthropic_output *o);

/* Number of tool_use blocks begun. */
int anthropic_output_tool_uses(const struct anthropic_output *o);

/* NULL is a no-op. */
void anthropic_output_free(struct anthropic_output *o);

#endif
