/*
 * reasoning.h - splits a thinking model's output into its reasoning (the
 * text inside <think>...</think>) and the answer, incrementally.
 *
 * <think> counts only at the start of the output (after whitespace), so an
 * answer that mentions the tag is left alone.  Templates that open <think>
 * in the prompt (DeepSeek-R1, Qwen3 thinking) make the output start inside
 * the reasoning: say so with starts_inside (reasoning_prompt_opens_think
 * tells from the rendered prompt).  Whitespace right after <think>, right
 * before </think> and right after </think> is dropped, so "<think>\nA\n</think>\n\nB"
 * gives reasoning "A" and content "B".  Output that never closes the tag
 * (cut off by max_tokens) is all reasoning.  As with stop strings, text that
 * may begin a tag is held back until it is known; the split never depends on
 * how the text was fragmented.
 *
 * Thread-safety: a splitter belongs to one thread.  The returned text points
 * into the splitter and is valid until its next call.
 */
#ifndef FCGI_REASONING_H
#define FCGI_REASONING_H

#include <stdbool.h>
#include <stddef.h>

struct reasoning_splitter;

/* What one feed produced: reasoning text, then answer text (either empty). */
struct reasoning_delta {
    const char *reasoning;
    size_t reasoning_len;
    const char *content;
    size_t content_len;
};

/* True when the rendered prompt ends (ignoring whitespace) inside an open
 * <think> block, i.e. the model continues a reasoning the template began. */
bool reasoning_prompt_opens_think(const char *prompt, size_t len);

/* NULL when out of memory. */
struct reasoning_splitter *reasoning_splitter_new(bool starts_inside);

/* Feeds `len` bytes; *out gets what is now safe to show.  0, or -1 (memory). */
int reasoning_feed(struct reasoning_splitter *r, const char *text, size_t len,
                   struct reasoning_delta *out);

/* End of output: the held-back text.  0 or -1. */
int reasoning_finish(struct reasoning_splitter *r, struct reasoning_delta *out);

/* Whether any reasoning text was produced so far. */
bool reasoning_seen(const struct reasoning_splitter *r);

/* NULL is a no-op. */
void reasoning_splitter_free(struct reasoning_splitter *r);

#endif
