#include "router.h"

#include <stdio.h>
#include <string.h>

static int router_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes seg[0..len) into out; -1 if malformed, too long or NUL. */
static int router_decode(const char *seg, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)seg[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int h = router_hex(seg[i + 1]), l = router_hex(seg[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            if (c == 0)
                return -1;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Matches path against pattern; fills params on success. */
static int router_match_path(const char *pattern, const char *path, struct route_params *params)
{
    params->count = 0;
    const char *p = pattern, *s = path;
    for (;;) {
        if (*p == '\0') {
            return *s == '\0' || (s[0] == '/' && s[1] == '\0');
        }
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close || params->count == ROUTER_MAX_PARAMS)
                return 0;
            size_t seg_len = strcspn(s, "/");
            if (seg_len == 0)
                return 0;
            size_t k = params->count;
            params->names[k] = p + 1;
            params->name_lens[k] = (size_t)(close - p - 1);
            if (router_decode(s, seg_len, params->values[k], ROUTER_MAX_VALUE))
                return 0;
            params->count++;
            p = close + 1;
            s += seg_len;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
}

enum router_result router_match(const struct route *routes, size_t n_routes, const char *method,
                                const char *path, const struct route **found,
                                struct route_params *params, char *allow, size_t allow_len)
{
    int path_matched = 0;
    size_t allow_used = 0;
    if (allow_len)
        allow[0] = '\0';
    for (size_t i = 0; i < n_routes; i++) {
        struct route_params tmp;
        if (!router_match_path(routes[i].pattern, path, &tmp))
            continue;
        if (!strcmp(routes[i].method, method)) {
            *found = &routes[i];
            *params = tmp;
            return ROUTER_FOUND;
        }
        path_matched = 1;
        if (allow_len > allow_used && !strstr(allow, routes[i].method)) {
            int n = snprintf(allow + allow_used, allow_len - allow_used, "%s%s",
                             allow_used ? ", " : "", routes[i].method);
            if (n > 0)
                allow_used += (size_t)n;
            if (allow_used >= allow_len)
                allow_used = allow_len - 1;
        }
    }
    return path_matched ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}

const char *route_param(const struct route_params *params, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < params->count; i++)
        if (params->name_lens[i] == len && !memcmp(params->names[i], name, len))
            return params->values[i];
    return NULL;
}
