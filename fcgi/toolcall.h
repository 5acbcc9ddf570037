/*
 * toolcall.h - finds tool calls in a model's generated text, incrementally,
 * so a stream can forward them as they are written.
 *
 * Formats (the profile's `tool_call_parser` picks one; AUTO knows them all):
 *   HERMES   <tool_call>{"name": "f", "arguments": {...}}</tool_call>  (Qwen 2.5/3, Hermes)
 *   LLAMA3   {"name": "f", "parameters": {...}} as the whole output, or
 *            <|python_tag|>{...}; several calls separated by ';'
 *   MISTRAL  [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]; the marker is a
 *            special token that detokenization may drop, so a bare leading
 *            [{"name": ...}] counts too
 * "arguments" or "parameters" may hold an object (its JSON text is the
 * arguments string, byte for byte) or a string (decoded).
 *
 * Text is fed in arbitrary fragments and reported through a callback as
 * TEXT (content outside calls), BEGIN (a call's name is known), ARGS (a
 * fragment of its arguments JSON) and END.  A call is committed (BEGIN) once
 * its name has been read; until then its bytes are held back, and if they
 * turn out not to be a call they are reported as TEXT.  Text that might
 * start a marker is held back the same way.  Decisions depend only on the
 * bytes, never on how they were split, so any fragmentation gives the same
 * concatenated TEXT, the same calls and the same concatenated ARGS.
 * Whitespace around calls is dropped.
 *
 * Thread-safety: a parser belongs to one thread.  Event data points into the
 * parser and is valid only during the callback.
 */
#ifndef FCGI_TOOLCALL_H
#define FCGI_TOOLCALL_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

enum toolcall_format {
    TOOLCALL_FORMAT_AUTO,
    TOOLCALL_FORMAT_HERMES,
    TOOLCALL_FORMAT_LLAMA3,
    TOOLCALL_FORMAT_MISTRAL,
};

enum toolcall_event_kind {
    TOOLCALL_EVENT_TEXT,  /* content text */
    TOOLCALL_EVENT_BEGIN, /* data = the function name */
    TOOLCALL_EVENT_ARGS,  /* data = the next bytes of the arguments JSON */
    TOOLCALL_EVENT_END,
};

struct toolcall_event {
    enum toolcall_event_kind kind;
    int index; /* the call's position, from 0 (BEGIN, ARGS, END) */
    const char *data;
    size_t len;
};

typedef void (*toolcall_emit_fn)(void *user, const struct toolcall_event *ev);

struct toolcall_parser;

/* Maps a profile's tool_call_parser ("qwen", "qwen3", "hermes", "llama3",
 * "mistral"); NULL or anything else gives AUTO. */
enum toolcall_format toolcall_format_from_name(const char *name);

/* Returns a parser reporting to emit(user, ...), or NULL when out of memory. */
struct toolcall_parser *toolcall_parser_new(enum toolcall_format fmt, toolcall_emit_fn emit,
                                            void *user);

/* Returns a parser for output forced to be the arguments of one call to
 * `name` (tool_choice naming a function): BEGIN comes with the first
 * non-blank byte (or at toolcall_finish, with arguments "{}", when there is
 * none), every byte of the JSON object is ARGS, END comes at toolcall_finish.
 * name is copied.  NULL when out of memory. */
struct toolcall_parser *toolcall_parser_new_named(const char *name, toolcall_emit_fn emit,
                                                  void *user);

/* Feeds `len` bytes.  Returns 0, or -1 when out of memory (the parser is then
 * unusable). */
int toolcall_feed(struct toolcall_parser *p, const char *text, size_t len);

/* Ends the input: held text is reported, an unfinished committed call is
 * ended (arguments "{}" when none were read).  Returns 0 or -1 (memory). */
int toolcall_finish(struct toolcall_parser *p);

/* Number of calls begun so far. */
int toolcall_count(const struct toolcall_parser *p);

/* True while a committed call has not been closed by its JSON (before
 * toolcall_finish: the output was cut inside a call). */
bool toolcall_open(const struct toolcall_parser *p);

/* NULL is a no-op. */
void toolcall_parser_free(struct toolcall_parser *p);

/*
 * The whole-text convenience: parses `text` and returns, in *calls, a new
 * array of {"name": string, "arguments": string} (empty when none) and, in
 * *content, the malloc'd text outside the calls.  Returns 0 or -1 (memory;
 * nothing is returned then).  The caller frees both.
 */
int toolcall_parse(enum toolcall_format fmt, const char *text, size_t len, cJSON **calls,
                   char **content);

#endif
