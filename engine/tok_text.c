/*
 * tok_text.c - byte buffers, UTF-8 helpers, the byte-level alphabet and the
 * literal/regex patterns used by Split pre-tokenizers and Replace steps.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- buffers --------------------------------------------------------------- */

enum status tok_buf_reserve(struct tok_buf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return ST_OK;
    if (extra > SIZE_MAX / 2 - b->len)
        return ST_ERR_NOMEM;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= extra)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d)
        return ST_ERR_NOMEM;
    b->data = d;
    b->cap = cap;
    return ST_OK;
}

/* Keeps the buffer NUL-terminated so callers can hand out C strings. */
enum status tok_buf_append(struct tok_buf *b, const char *s, size_t n)
{
    if (tok_buf_reserve(b, n) != ST_OK)
        return ST_ERR_NOMEM;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ST_OK;
}

void tok_buf_free(struct tok_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

enum status tok_pieces_add(struct tok_pieces *p, const char *s, size_t n)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        size_t *off = realloc(p->off, cap * sizeof(*off));
        if (!off)
            return ST_ERR_NOMEM;
        p->off = off;
        size_t *len = realloc(p->len, cap * sizeof(*len));
        if (!len)
            return ST_ERR_NOMEM;
        p->len = len;
        p->cap = cap;
    }
    p->off[p->n] = p->buf.len;
    p->len[p->n] = n;
    if (tok_buf_append(&p->buf, s, n) != ST_OK)
        return ST_ERR_NOMEM;
    p->n++;
    return ST_OK;
}

void tok_pieces_clear(struct tok_pieces *p)
{
    p->n = 0;
    p->buf.len = 0;
}

void tok_pieces_free(struct tok_pieces *p)
{
    tok_buf_free(&p->buf);
    free(p->off);
    free(p->len);
    memset(p, 0, sizeof(*p));
}

/* Copies a C string into a malloc()ed one; *len gets its length. */
enum status tok_strdup(const char *s, char **out, size_t *len)
{
    *len = strlen(s);
    *out = malloc(*len + 1);
    if (!*out)
        return ST_ERR_NOMEM;
    memcpy(*out, s, *len + 1);
    return ST_OK;
}

/* ---- UTF-8 ----------------------------------------------------------------- */

int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    /* Maximal subpart: the lead byte plus every continuation byte that still fits. */
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n)
            return -i;
        unsigned char d = s[i];
        if (d < lo || d > hi)
            return -i;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = v;
    return need + 1;
}

int tok_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = tok_utf8_next(u + i, n - i, &cp);
        if (k < 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

int tok_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

enum status tok_utf8_append_lossy(struct tok_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    if (tok_buf_reserve(b, n) != ST_OK)
        return ST_ERR_NOMEM;
    while (i < n) {
        uint32_t cp;
        int k = u[i] < 0x80 ? 1 : tok_utf8_next(u + i, n - i, &cp);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (tok_buf_append(b, s + run, i - run) != ST_OK ||
            tok_buf_append(b, "\xEF\xBF\xBD", 3) != ST_OK)
            return ST_ERR_NOMEM;
        i += (size_t)-k;
        run = i;
    }
    return tok_buf_append(b, s + run, n - run);
}

/* ---- byte-level alphabet ----------------------------------------------------- */

/*
 * GPT-2 maps the 188 printable bytes to themselves and the other 68 to
 * U+0100.. in byte order, so every byte becomes a visible character.  The 68
 * are 0x00-0x20 (33), 0x7F-0xA0 (34) and 0xAD (1), hence the closed forms.
 */
static int byte_is_printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

uint32_t tok_byte_to_cp(unsigned char b)
{
    if (byte_is_printable(b))
        return b;
    if (b <= 32)
        return 256u + b;
    if (b <= 160)
        return 256u + 33 + (b - 127u);
    return 256u + 67; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_printable(cp) ? (int)cp : -1;
    uint32_t n = cp - 256;
    if (n <= 32)
        return (int)n;
    if (n <= 66)
        return (int)(127 + n - 33);
    return n == 67 ? 0xAD : -1;
}

/* ---- patterns -------------------------------------------------------------- */

enum status tok_pattern_init(struct tok_pattern *p, const char *src, size_t len, int is_regex,
                             char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (!is_regex) {
        if (len == 0)
            return status_fail(err, errlen, ST_ERR_FORMAT, "empty string pattern");
        p->str = malloc(len + 1);
        if (!p->str)
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        memcpy(p->str, src, len);
        p->str[len] = '\0';
        p->len = len;
        return ST_OK;
    }
    int code;
    PCRE2_SIZE at;
    p->re = pcre2_compile((PCRE2_SPTR)src, len, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return status_fail(err, errlen, ST_ERR_FORMAT, "bad regex at offset %zu: %s", (size_t)at,
                           (const char *)msg);
    }
    /* JIT is an optimisation only: the interpreter is used when it is unavailable. */
    (void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE);
    return ST_OK;
}

void tok_pattern_free(struct tok_pattern *p)
{
    free(p->str);
    pcre2_code_free(p->re);
    memset(p, 0, sizeof(*p));
}

static enum status span_push(struct tok_span **spans, size_t *n, size_t *cap, size_t start,
                             size_t end, int is_match)
{
    if (start == end)
        return ST_OK;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct tok_span *s = realloc(*spans, c * sizeof(*s));
        if (!s)
            return ST_ERR_NOMEM;
        *spans = s;
        *cap = c;
    }
    (*spans)[(*n)++] = (struct tok_span){start, end, is_match};
    return ST_OK;
}

enum status tok_pattern_spans(const struct tok_pattern *p, const char *s, size_t n,
                              struct tok_span **spans, size_t *n_spans, size_t *cap)
{
    *n_spans = 0;
    size_t prev = 0, pos = 0;
    enum status st = ST_OK;
    if (!p->re) {
        while (pos + p->len <= n) {
            const char *hit = memmem(s + pos, n - pos, p->str, p->len);
            if (!hit)
                break;
            size_t at = (size_t)(hit - s);
            if ((st = span_push(spans, n_spans, cap, prev, at, 0)) != ST_OK ||
                (st = span_push(spans, n_spans, cap, at, at + p->len, 1)) != ST_OK)
                return st;
            prev = pos = at + p->len;
        }
        return span_push(spans, n_spans, cap, prev, n, 0);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
    if (!md)
        return ST_ERR_NOMEM;
    while (pos <= n) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            st = ST_ERR_INVALID;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* Empty matches split nothing; step over one character. */
            if (ms >= n)
                break;
            pos = ms + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80)
                pos++;
            continue;
        }
        if ((st = span_push(spans, n_spans, cap, prev, ms, 0)) != ST_OK ||
            (st = span_push(spans, n_spans, cap, ms, me, 1)) != ST_OK)
            break;
        prev = pos = me;
    }
    pcre2_match_data_free(md);
    if (st != ST_OK)
        return st;
    return span_push(spans, n_spans, cap, prev, n, 0);
}
