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
 * Thread-safety: plain data, owned by its user.
 */
#ifndef ENGINE_JSON_CONSTRAINT_H
#define ENGINE_JSON_CONSTRAINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_CHECK_MAX_DEPTH 32
#define JSON_CHECK_MAX_WS 16

struct json_check {
    uint8_t state;  /* enum in json_constraint.c */
    uint8_t sub;    /* literal index or hex digits left */
    uint8_t is_key; /* the string being read is an object key */
    uint8_t ws;     /* whitespace bytes in the current run */
    uint8_t depth;
    char stack[JSON_CHECK_MAX_DEPTH]; /* '{' or '[' per open container */
};

/* Starts a checker expecting one JSON object. */
void json_check_init(struct json_check *c);

/* Feeds n bytes.  Returns false (and leaves *c unusable) when they cannot
 * continue a valid JSON object. */
bool json_check_feed(struct json_check *c, const char *s, size_t n);

/* True once the object is complete: only the end of output may follow. */
bool json_check_done(const struct json_check *c);

#endif
