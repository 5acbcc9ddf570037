/*
 * status.h - the engine's one status enum and its error-message helper.
 *
 * Every engine function that can fail returns an `enum status` (ST_OK = 0,
 * errors negative) and optionally fills a caller-supplied `char *err, size_t
 * errlen` buffer with a human-readable message.  Thread-safe: no state.
 */
#ifndef ENGINE_STATUS_H
#define ENGINE_STATUS_H

#include <stddef.h>

enum status {
    ST_OK = 0,
    ST_ERR_NOMEM = -1,       /* allocation failed or a limit was hit */
    ST_ERR_IO = -2,          /* a file could not be opened/read/written */
    ST_ERR_FORMAT = -3,      /* malformed input (file, JSON, template, ...) */
    ST_ERR_INVALID = -4,     /* a well-formed but invalid argument or value */
    ST_ERR_UNSUPPORTED = -5, /* valid but not supported by this engine */
    ST_ERR_NOT_FOUND = -6,   /* a named thing does not exist */
    ST_ERR_RANGE = -7,       /* a value or size is out of its allowed range */
    ST_ERR_BUSY = -8,        /* the resource is in use; try again later */
    ST_ERR_CANCELLED = -9,   /* the operation was cancelled by its caller */
    ST_ERR_INTERNAL = -10,   /* a bug: an invariant did not hold */
};

/* Returns a static, lowercase name for `st` ("ok", "out of memory", ...). */
const char *status_str(enum status st);

/*
 * Writes a printf-style message into err (if err != NULL and errlen > 0) and
 * returns `st`, so a failing path can read `return status_fail(err, errlen,
 * ST_ERR_FORMAT, "bad header at %zu", off);`.
 */
enum status status_fail(char *err, size_t errlen, enum status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
