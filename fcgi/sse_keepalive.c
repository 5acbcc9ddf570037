/* sse_keepalive.c - the keep-alive interval of /v1 streams, with its
 * environment override. */
#include "sse_keepalive.h"

#include <stdlib.h>

int sse_keepalive_ms(int default_ms)
{
    const char *v = getenv(SSE_KEEPALIVE_ENV);
    if (!v || !*v)
        return default_ms;
    char *end;
    long ms = strtol(v, &end, 10);
    return *end || ms <= 0 || ms > 3600L * 1000 ? default_ms : (int)ms;
}
