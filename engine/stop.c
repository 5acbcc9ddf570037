#include "stop.h"

#include <stdlib.h>
#include <string.h>

struct stop_matcher {
    char **stops; /* (n) NUL-terminated copies, empty ones left out */
    size_t *lens; /* (n) */
    int n;
    size_t max_len; /* longest stop string */
    char *buf;      /* held text lives in buf[start, end) */
    size_t cap, start, end;
    int which; /* index of the completed stop string, or -1 */
};

enum status stop_matcher_create(const char *const *stops, int n, struct stop_matcher **out,
                                char *err, size_t errlen)
{
    *out = NULL;
    struct stop_matcher *m = calloc(1, sizeof(*m));
    if (!m)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory for stop strings");
    m->which = -1;
    if (n > 0) {
        m->stops = calloc((size_t)n, sizeof(*m->stops));
        m->lens = calloc((size_t)n, sizeof(*m->lens));
        if (!m->stops || !m->lens)
            goto nomem;
    }
    for (int i = 0; i < n; i++) {
        size_t len = stops[i] ? strlen(stops[i]) : 0;
        if (!len)
            continue;
        m->stops[m->n] = strdup(stops[i]);
        if (!m->stops[m->n])
            goto nomem;
        m->lens[m->n++] = len;
        if (len > m->max_len)
            m->max_len = len;
    }
    m->cap = m->max_len + 256;
    m->buf = malloc(m->cap);
    if (!m->buf)
        goto nomem;
    *out = m;
    return ST_OK;
nomem:
    stop_matcher_free(m);
    return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory for stop strings");
}

void stop_matcher_free(struct stop_matcher *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->buf);
    free(m);
}

const char *stop_matcher_matched(const struct stop_matcher *m)
{
    return m->which >= 0 ? m->stops[m->which] : NULL;
}

/* Length of the longest tail of s[0, len) that is a proper prefix of some
 * stop string: that much must be held back. */
static size_t held_tail(const struct stop_matcher *m, const char *s, size_t len)
{
    size_t hold = 0;
    for (int i = 0; i < m->n; i++) {
        size_t k = m->lens[i] - 1;
        if (k > len)
            k = len;
        for (; k > hold; k--)
            if (!memcmp(s + len - k, m->stops[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

enum status stop_matcher_feed(struct stop_matcher *m, const char *text, size_t len,
                              const char **emit, size_t *emit_len, bool *stopped)
{
    *stopped = false;
    *emit = m->buf;
    *emit_len = 0;
    size_t held = m->end - m->start;
    if (held && m->start)
        memmove(m->buf, m->buf + m->start, held);
    m->start = 0;
    m->end = held;
    if (held + len > m->cap) {
        size_t cap = (held + len) * 2;
        char *nb = realloc(m->buf, cap);
        if (!nb)
            return ST_ERR_NOMEM;
        m->buf = nb;
        m->cap = cap;
        *emit = m->buf;
    }
    if (len)
        memcpy(m->buf + m->end, text, len);
    m->end += len;
    size_t total = m->end;

    /* Everything before the held text was checked already, so a match can
     * only start inside buf; the earliest one wins. */
    const char *first = NULL;
    for (int i = 0; i < m->n; i++) {
        const char *hit = memmem(m->buf, total, m->stops[i], m->lens[i]);
        if (hit && (!first || hit < first)) {
            first = hit;
            m->which = i;
        }
    }
    if (first) {
        *emit_len = (size_t)(first - m->buf);
        m->start = m->end = 0;
        *stopped = true;
        return ST_OK;
    }
    *emit_len = total - held_tail(m, m->buf, total);
    m->start = *emit_len;
    return ST_OK;
}

void stop_matcher_flush(struct stop_matcher *m, const char **emit, size_t *emit_len)
{
    *emit = m->buf + m->start;
    *emit_len = m->end - m->start;
    m->start = m->end = 0;
}
