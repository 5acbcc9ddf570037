/*
 * router.h - matching (method, path) against one static route table.
 *
 * Patterns are literal segments and `{name}` captures, e.g.
 * "/api/profiles/{id}/duplicate".  A capture matches one non-empty segment;
 * its value is percent-decoded.  Routes are tried in table order, so put
 * literal routes ("/api/profiles/next-port") before captures.  A trailing
 * slash on the path is ignored.  Pure functions: thread-safe.
 */
#ifndef FCGI_ROUTER_H
#define FCGI_ROUTER_H

#include <stddef.h>

struct http_request;

#define ROUTER_MAX_PARAMS 4
#define ROUTER_MAX_VALUE 512

struct route {
    const char *method;                       /* "GET", "POST", ... */
    const char *pattern;                      /* "/api/profiles/{id}" */
    int (*handler)(struct http_request *req); /* returns the HTTP status sent */
};

struct route_params {
    size_t count;
    const char *names[ROUTER_MAX_PARAMS]; /* point into the pattern (not NUL-ended) */
    size_t name_lens[ROUTER_MAX_PARAMS];
    char values[ROUTER_MAX_PARAMS][ROUTER_MAX_VALUE];
};

enum router_result {
    ROUTER_FOUND,
    ROUTER_NOT_FOUND,
    ROUTER_METHOD_NOT_ALLOWED,
};

/*
 * Finds the route for method + path.  On ROUTER_FOUND sets *found and fills
 * params.  On ROUTER_METHOD_NOT_ALLOWED writes the allowed methods
 * ("GET, PUT") into allow for the Allow header.
 */
enum router_result router_match(const struct route *routes, size_t n_routes, const char *method,
                                const char *path, const struct route **found,
                                struct route_params *params, char *allow, size_t allow_len);

/* Returns the value captured for `name`, or NULL. */
const char *route_param(const struct route_params *params, const char *name);

#endif
