#include "cors.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "http.h"

int cors_origin_allowed(const char *allowed, const char *origin)
{
    if (!allowed || !origin || !*origin)
        return 0;
    size_t olen = strlen(origin);
    for (const char *p = allowed; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if ((m == 1 && *p == '*') || (m == olen && m > 0 && !strncasecmp(p, origin, m)))
            return 1;
        p += n;
    }
    return 0;
}

int cors_apply(struct http_request *req)
{
    const char *origin = http_param(req, "HTTP_ORIGIN");
    if (!origin || !req->app || !cors_origin_allowed(req->app->config.cors_origins, origin))
        return 0;
    /* With "*" any origin matches, and it is echoed into a header line. */
    if (strlen(origin) > 256 || strpbrk(origin, "\r\n"))
        return 0;
    char h[320];
    snprintf(h, sizeof(h), "Access-Control-Allow-Origin: %s", origin);
    http_add_header(req, h);
    http_add_header(req, "Vary: Origin");
    if (strcmp(req->method, "OPTIONS") || !http_param(req, "HTTP_ACCESS_CONTROL_REQUEST_METHOD"))
        return 0;
    http_add_header(req, "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS");
    http_add_header(req, "Access-Control-Allow-Headers: authorization, content-type, x-api-key, "
                         "anthropic-version, anthropic-beta, openai-organization");
    http_add_header(req, "Access-Control-Max-Age: 600");
    http_send_empty(req, 204);
    return 1;
}
