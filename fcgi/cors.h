/*
 * cors.h - Cross-Origin Resource Sharing for the configured origins only
 * (config key cors_origins: a comma-separated list, or "*").
 *
 * A request whose Origin is allowed gets Access-Control-Allow-Origin (the
 * origin itself, never "*" echoed for credentials) and Vary: Origin; a
 * preflight (OPTIONS with Access-Control-Request-Method) from an allowed
 * origin is answered here with 204 and the allowed methods and headers,
 * before authentication, since browsers send no credentials with it.
 * Requests from other origins get no CORS headers and the browser blocks
 * them.  Stateless; thread-safe.
 */
#ifndef FCGI_CORS_H
#define FCGI_CORS_H

struct http_request;

/* 1 when `origin` is in the comma-separated `allowed` list (or it is "*"). */
int cors_origin_allowed(const char *allowed, const char *origin);

/* Adds the CORS headers the request earns; returns 1 when it answered a
 * preflight (the request is done), 0 to go on. */
int cors_apply(struct http_request *req);

#endif
