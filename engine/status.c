#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *status_str(enum status st)
{
    switch (st) {
    case ST_OK: return "ok";
    case ST_ERR_NOMEM: return "out of memory";
    case ST_ERR_IO: return "i/o error";
    case ST_ERR_FORMAT: return "malformed input";
    case ST_ERR_INVALID: return "invalid argument";
    case ST_ERR_UNSUPPORTED: return "unsupported";
    case ST_ERR_NOT_FOUND: return "not found";
    case ST_ERR_RANGE: return "out of range";
    case ST_ERR_BUSY: return "busy";
    case ST_ERR_CANCELLED: return "cancelled";
    case ST_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

enum status status_fail(char *err, size_t errlen, enum status st, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}
