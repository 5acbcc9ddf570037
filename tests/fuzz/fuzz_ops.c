/*
 * fuzz_ops.c - the small parsers of untrusted text outside the big request
 * bodies: query-string decoding (http_query), CORS origin lists, API key
 * scope lists, and the path-safety checks of model ids and repo file paths
 * (hf_cache).  Besides not crashing, each checks its own promise: decoding
 * never grows, a listed origin is allowed, scopes round-trip, and no id or
 * file path that passes can climb out of its directory.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "auth.h"
#include "cors.h"
#include "hf_cache.h"
#include "http.h"

static void fuzz_query(const char *text, size_t len)
{
    struct arena a;
    arena_init(&a, 4096, 0);
    struct http_request req;
    memset(&req, 0, sizeof(req));
    req.arena = &a;
    req.query = text;
    static const char *const keys[] = {"a", "level", "after", "", "model"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = http_query(&req, keys[i]);
        if (v && strlen(v) > len)
            abort(); /* percent-decoding only shrinks */
    }
    arena_free(&a);
}

static void fuzz_cors(const char *text)
{
    /* "allowed\norigin": a listed origin is always allowed. */
    const char *nl = strchr(text, '\n');
    if (!nl)
        return;
    char allowed[512], origin[256];
    snprintf(allowed, sizeof(allowed), "%.*s", (int)(nl - text), text);
    snprintf(origin, sizeof(origin), "%s", nl + 1);
    cors_origin_allowed(allowed, origin);
    if (origin[0] && !strchr(origin, ',') && origin[0] != ' ' &&
        origin[strlen(origin) - 1] != ' ') {
        char both[1024];
        snprintf(both, sizeof(both), "%s,%s", allowed, origin);
        if (strlen(allowed) + strlen(origin) + 1 < sizeof(both) &&
            !cors_origin_allowed(both, origin))
            abort();
    }
}

static void fuzz_scopes(const char *text)
{
    int s = auth_scopes_parse(text);
    if (s <= 0)
        return;
    char out[64];
    auth_scopes_format(s, out, sizeof(out));
    if (auth_scopes_parse(out) != s)
        abort();
}

static void fuzz_paths(const char *text)
{
    if (hf_cache_valid_id(text, NULL, 0) &&
        (strstr(text, "..") || text[0] == '/' || strchr(text, '\\') || !strchr(text, '/')))
        abort();
    if (hf_cache_valid_file(text)) {
        if (text[0] == '/' || strstr(text, "//"))
            abort();
        /* No component may be "." or "..". */
        for (const char *p = text; *p;) {
            size_t n = strcspn(p, "/");
            if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                abort();
            p += n;
            if (*p)
                p++;
        }
    }
    hf_cache_valid_name(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 4) {
    case 0: fuzz_query(text, size - 1); break;
    case 1: fuzz_cors(text); break;
    case 2: fuzz_scopes(text); break;
    default: fuzz_paths(text); break;
    }
    free(text);
    return 0;
}
