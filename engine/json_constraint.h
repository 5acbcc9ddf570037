/*
 * json_constraint.h - an incremental JSON checker for constrained decoding
 * (response_format json_object): it reads generated text byte by byte and
 * says whether it is still a prefix of a valid JSON object, and whether the
 * object is complete.
 *
 * The state is a small fixed-size struct, copied by value: to test whether a
 * token may come next, copy the state and feed the token's text; nothing is
 * allocated.  The top-level value must be an object; nesting is limited to
 * JSON_CHECK_MAX_DEPTH; a run of whitespace is limited to
 * JSON_CHECK_MAX_WS bytes so that a model cannot stall in blank space
 * forever.  Bytes >= 0x80 are accepted inside strings only (UTF-8 is not
 * validated here; the detokenizer emits whole characters).
 *
 * Tool-call mode (json_check_init_tools): the object must be a call
 * {"name": N, "arguments": {...}} with the keys in that order and N one of a
 * list of names, or the output a non-empty array of such calls; this is how
 * tool_choice "required" is forced.  The names are matched byte for byte
 * (they may not contain '"', '\\' or control bytes; json_names_copy checks).
 *
 * json_check_close_cost says how many more bytes the shortest valid ending
 * needs, so that a decoder can keep the object closable within a token
 * budget (every JSON punctuation byte and digit being a token of its own).
 *
 * Thread-safety: plain data, owned by its user.  A checker in tool-call mode
 * points to its json_names, which must outlive it; a json_names is
 * read-only once made and may be shared between threads.
 */
#ifndef ENGINE_JSON_CONSTRAINT_H
#define ENGINE_JSON_CONSTRAINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define JSON_CHECK_MAX_DEPTH 32
#define JSON_CHECK_MAX_WS 16
#define JSON_NAMES_MAX 1024    /* names in one list */
#define JSON_NAMES_MAX_LEN 256 /* bytes in one name */

/* An owned copy of a list of allowed tool names. */
struct json_names;

struct json_check {
    uint8_t state;  /* enum in json_constraint.c */
    uint8_t sub;    /* literal index or hex digits left */
    uint8_t is_key; /* the string being read is an object key */
    uint8_t ws;     /* whitespace bytes in the current run */
    uint8_t depth;
    uint8_t call;                     /* tool-call mode: where in the call object (enum) */
    uint8_t call_depth;               /* tool-call mode: depth of the call object (1 or 2) */
    uint8_t match;                    /* the string is matched against a key or the names */
    uint16_t pos;                     /* bytes of the matched string so far */
    uint16_t rep;                     /* index of the first name that has those bytes */
    const struct json_names *names;   /* tool-call mode; NULL otherwise (borrowed) */
    char stack[JSON_CHECK_MAX_DEPTH]; /* '{' or '[' per open container */
};

/* Starts a checker expecting one JSON object. */
void json_check_init(struct json_check *c);

/* Starts a checker expecting one tool call or a non-empty array of them
 * (see above); names NULL is json_check_init.  names stays the caller's and
 * must outlive the checker and its copies. */
void json_check_init_tools(struct json_check *c, const struct json_names *names);

/* Copies n names into *out (NULL when n is 0; free with json_names_free).
 * Returns ST_ERR_INVALID (with a message) for a NULL, empty or overlong name,
 * one holding '"', '\\' or a control byte, or more than JSON_NAMES_MAX names;
 * ST_ERR_NOMEM. */
enum status json_names_copy(const char *const *names, int n, struct json_names **out, char *err,
                            size_t errlen);

void json_names_free(struct json_names *names);

/* The fewest bytes that complete the output from here (0 once done). */
size_t json_check_close_cost(const struct json_check *c);

/* Feeds n bytes.  Returns false (and leaves *c unusable) when they cannot
 * continue a valid JSON object. */
bool json_check_feed(struct json_check *c, const char *s, size_t n);

/* True once the object is complete: only the end of output may follow. */
bool json_check_done(const struct json_check *c);

#endif
