/*
 * jinja_lexer.c - splits a Jinja template into data and tag tokens.
 *
 * Whitespace handling follows jinja2's lexer configured the way transformers
 * does (trim_blocks, lstrip_blocks, keep_trailing_newline=False): the data
 * tokens that come out are final, the parser never trims anything.
 */
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

struct lexer {
    const char *src;
    size_t len;
    struct arena *a;
    struct jtoken *toks;
    size_t n, cap;
    char *err;
    size_t errlen;
};

void jinja_line_col(const char *src, size_t len, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static enum status lex_fail(struct lexer *lx, size_t pos, const char *msg)
{
    int line, col;
    jinja_line_col(lx->src, lx->len, pos, &line, &col);
    return status_fail(lx->err, lx->errlen, ST_ERR_FORMAT, "line %d:%d: %s", line, col, msg);
}

static struct jtoken *lex_push(struct lexer *lx, enum jtok kind, size_t pos)
{
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        struct jtoken *t = realloc(lx->toks, cap * sizeof(*t));
        if (!t)
            return NULL;
        lx->toks = t;
        lx->cap = cap;
    }
    struct jtoken *t = &lx->toks[lx->n++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->pos = pos;
    return t;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Data text with "\r\n" and "\r" normalized to "\n", as jinja2 does. */
static enum status lex_text(struct lexer *lx, size_t start, size_t end)
{
    if (end <= start)
        return ST_OK;
    char *p = arena_alloc(lx->a, end - start + 1);
    if (!p)
        return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = start; i < end; i++) {
        if (lx->src[i] == '\r') {
            p[n++] = '\n';
            if (i + 1 < end && lx->src[i + 1] == '\n')
                i++;
        } else {
            p[n++] = lx->src[i];
        }
    }
    p[n] = 0;
    struct jtoken *t = lex_push(lx, JT_TEXT, start);
    if (!t)
        return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
    t->s = p;
    t->n = n;
    return ST_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A quoted string literal at *pos with Python escapes; unknown escapes are
 * kept as written, like Python does. */
static enum status lex_string(struct lexer *lx, size_t *pos)
{
    size_t start = *pos, i = start + 1;
    char q = lx->src[start];
    while (i < lx->len && lx->src[i] != q) {
        if (lx->src[i] == '\\')
            i++;
        i++;
    }
    if (i >= lx->len)
        return lex_fail(lx, start, "unterminated string literal");
    size_t end = i; /* closing quote */
    char *o = arena_alloc(lx->a, (end - start) + 1);
    if (!o)
        return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (i = start + 1; i < end; i++) {
        char c = lx->src[i];
        if (c != '\\' || i + 1 >= end) {
            o[n++] = c;
            continue;
        }
        char e = lx->src[++i];
        int digits = 0;
        switch (e) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'v': o[n++] = '\v'; break;
        case 'a': o[n++] = '\a'; break;
        case '0': o[n++] = '\0'; break;
        case '\\': o[n++] = '\\'; break;
        case '\'': o[n++] = '\''; break;
        case '"': o[n++] = '"'; break;
        case '\n': break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default: o[n++] = '\\'; o[n++] = e;
        }
        if (digits) {
            uint32_t cp = 0;
            if (i + (size_t)digits >= end)
                return lex_fail(lx, i - 1, "truncated escape in string literal");
            for (int k = 1; k <= digits; k++) {
                int h = hexval(lx->src[i + (size_t)k]);
                if (h < 0)
                    return lex_fail(lx, i - 1, "bad escape in string literal");
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF)
                return lex_fail(lx, i - 1, "escape out of Unicode range");
            /* \xhh is at most 2 output bytes; \u at most 3 and \U 4, never
             * longer than the escape itself. */
            n += put_utf8(o + n, cp);
            i += (size_t)digits;
        }
    }
    o[n] = 0;
    struct jtoken *t = lex_push(lx, JT_STRING, start);
    if (!t)
        return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
    t->s = o;
    t->n = n;
    *pos = end + 1;
    return ST_OK;
}

static enum status lex_number(struct lexer *lx, size_t *pos)
{
    size_t start = *pos, i = start;
    int is_float = 0;
    char buf[128];
    size_t bn = 0;
    while (i < lx->len && (is_digit(lx->src[i]) || lx->src[i] == '_')) {
        if (lx->src[i] != '_' && bn < sizeof(buf) - 1)
            buf[bn++] = lx->src[i];
        i++;
    }
    if (i + 1 < lx->len && lx->src[i] == '.' && is_digit(lx->src[i + 1])) {
        is_float = 1;
        if (bn < sizeof(buf) - 1)
            buf[bn++] = '.';
        i++;
        while (i < lx->len && (is_digit(lx->src[i]) || lx->src[i] == '_')) {
            if (lx->src[i] != '_' && bn < sizeof(buf) - 1)
                buf[bn++] = lx->src[i];
            i++;
        }
    }
    if (i < lx->len && (lx->src[i] == 'e' || lx->src[i] == 'E')) {
        size_t j = i + 1;
        if (j < lx->len && (lx->src[j] == '+' || lx->src[j] == '-'))
            j++;
        if (j < lx->len && is_digit(lx->src[j])) {
            is_float = 1;
            if (bn < sizeof(buf) - 1)
                buf[bn++] = 'e';
            for (size_t k = i + 1; k < j; k++)
                if (bn < sizeof(buf) - 1)
                    buf[bn++] = lx->src[k];
            i = j;
            while (i < lx->len && is_digit(lx->src[i])) {
                if (bn < sizeof(buf) - 1)
                    buf[bn++] = lx->src[i];
                i++;
            }
        }
    }
    buf[bn] = 0;
    if (bn >= sizeof(buf) - 1)
        return lex_fail(lx, start, "number literal too long");
    struct jtoken *t = lex_push(lx, is_float ? JT_FLOAT : JT_INT, start);
    if (!t)
        return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        unsigned long long v = strtoull(buf, NULL, 10);
        if (bn > 19 || v > (unsigned long long)INT64_MAX)
            return lex_fail(lx, start, "integer literal too large");
        t->i = (int64_t)v;
    }
    *pos = i;
    return ST_OK;
}

static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">="};
static const char ops1[] = "+-*/%~<>=()[]{}.,:|";

/*
 * Tokens of one tag, from *pos up to its end marker ("}}" for expressions,
 * "%}" for blocks; only outside brackets, as in jinja2).  Sets *strip when
 * the tag ends with '-' and *keep_nl when it ends with '+'.
 */
static enum status lex_tag(struct lexer *lx, size_t *pos, char close, int *strip, int *keep_nl,
                           size_t *end_pos)
{
    size_t i = *pos;
    int balance = 0;
    size_t open_pos = i;
    for (;;) {
        while (i < lx->len && is_ws(lx->src[i]))
            i++;
        if (i >= lx->len)
            return lex_fail(lx, open_pos - 2, "unclosed tag");
        const char *s = lx->src + i;
        size_t rest = lx->len - i;
        if (balance == 0) {
            if (rest >= 2 && s[0] == close && s[1] == '}') {
                *end_pos = i;
                *pos = i + 2;
                return ST_OK;
            }
            if (rest >= 3 && (s[0] == '-' || s[0] == '+') && s[1] == close && s[2] == '}') {
                *strip = s[0] == '-';
                *keep_nl = s[0] == '+';
                *end_pos = i;
                *pos = i + 3;
                return ST_OK;
            }
        }
        if (s[0] == '\'' || s[0] == '"') {
            enum status st = lex_string(lx, &i);
            if (st)
                return st;
            continue;
        }
        if (is_digit(s[0])) {
            enum status st = lex_number(lx, &i);
            if (st)
                return st;
            continue;
        }
        if (is_name_start(s[0])) {
            size_t j = i;
            while (j < lx->len && (is_name_start(lx->src[j]) || is_digit(lx->src[j])))
                j++;
            struct jtoken *t = lex_push(lx, JT_NAME, i);
            if (!t)
                return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
            t->s = arena_strndup(lx->a, s, j - i);
            if (!t->s)
                return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
            t->n = j - i;
            i = j;
            continue;
        }
        size_t oplen = 0;
        if (rest >= 2)
            for (size_t k = 0; k < sizeof(ops2) / sizeof(ops2[0]); k++)
                if (s[0] == ops2[k][0] && s[1] == ops2[k][1])
                    oplen = 2;
        if (!oplen && strchr(ops1, s[0]) && s[0])
            oplen = 1;
        if (!oplen)
            return lex_fail(lx, i, "unexpected character in tag");
        if (oplen == 1) {
            if (s[0] == '(' || s[0] == '[' || s[0] == '{')
                balance++;
            else if (s[0] == ')' || s[0] == ']' || s[0] == '}') {
                if (balance == 0)
                    return lex_fail(lx, i, "unbalanced closing bracket");
                balance--;
            }
        }
        struct jtoken *t = lex_push(lx, JT_OP, i);
        if (!t)
            return status_fail(lx->err, lx->errlen, ST_ERR_NOMEM, "out of memory");
        t->s = s;
        t->n = oplen;
        i += oplen;
    }
}

/* The name right after a block opener, e.g. "raw" in "{%- raw %}". */
static int block_name_is(const struct lexer *lx, size_t i, const char *name)
{
    while (i < lx->len && is_ws(lx->src[i]))
        i++;
    size_t n = strlen(name);
    return i + n <= lx->len && !memcmp(lx->src + i, name, n) &&
           (i + n == lx->len || !(is_name_start(lx->src[i + n]) || is_digit(lx->src[i + n])));
}

/* Finds "{% endraw %}" (with optional -/+ markers) from i; returns the
 * offset of its '{' and sets *after / *strip_before / *strip_after. */
static int find_endraw(const struct lexer *lx, size_t i, size_t *tag, size_t *after,
                       int *strip_before, int *strip_after)
{
    for (; i + 1 < lx->len; i++) {
        if (lx->src[i] != '{' || lx->src[i + 1] != '%')
            continue;
        size_t j = i + 2;
        int sb = 0;
        if (j < lx->len && (lx->src[j] == '-' || lx->src[j] == '+')) {
            sb = lx->src[j] == '-';
            j++;
        }
        if (!block_name_is(lx, j, "endraw"))
            continue;
        while (is_ws(lx->src[j]))
            j++;
        j += 6;
        while (j < lx->len && is_ws(lx->src[j]))
            j++;
        int sa = 0;
        if (j < lx->len && (lx->src[j] == '-' || lx->src[j] == '+')) {
            sa = lx->src[j] == '-';
            j++;
        }
        if (j + 1 < lx->len && lx->src[j] == '%' && lx->src[j + 1] == '}') {
            *tag = i;
            *after = j + 2;
            *strip_before = sb;
            *strip_after = sa;
            return 1;
        }
    }
    return 0;
}

enum status jinja_lex(const char *src, size_t len, struct arena *a, struct jtoken **out,
                      size_t *ntok, char *err, size_t errlen)
{
    struct lexer lx = {.src = src, .len = len, .a = a, .err = err, .errlen = errlen};
    enum status st = ST_OK;
    /* keep_trailing_newline=False drops one trailing newline */
    if (lx.len && lx.src[lx.len - 1] == '\n') {
        lx.len--;
        if (lx.len && lx.src[lx.len - 1] == '\r')
            lx.len--;
    } else if (lx.len && lx.src[lx.len - 1] == '\r') {
        lx.len--;
    }
    size_t pos = 0;
    int line_starting = 1;
    for (;;) {
        size_t tag = pos;
        while (tag + 1 < lx.len &&
               !(src[tag] == '{' &&
                 (src[tag + 1] == '{' || src[tag + 1] == '%' || src[tag + 1] == '#')))
            tag++;
        if (tag + 1 >= lx.len) {
            st = lex_text(&lx, pos, lx.len);
            break;
        }
        char kind = src[tag + 1];
        char mod = tag + 2 < lx.len ? src[tag + 2] : 0;
        size_t text_end = tag;
        if (mod == '-') {
            while (text_end > pos && is_ws(src[text_end - 1]))
                text_end--;
        } else if ((kind == '%' || kind == '#') && mod != '+') {
            size_t l = text_end;
            while (l > pos && src[l - 1] != '\n')
                l--;
            int at_line_start = l > pos || line_starting;
            size_t k = l;
            while (k < text_end && (src[k] == ' ' || src[k] == '\t'))
                k++;
            if (at_line_start && k == text_end)
                text_end = l;
        }
        if ((st = lex_text(&lx, pos, text_end)))
            break;
        size_t i = tag + 2 + (mod == '-' || mod == '+');
        int strip = 0, keep_nl = 0;
        if (kind == '#') {
            size_t j = i;
            while (j + 1 < lx.len && !(src[j] == '#' && src[j + 1] == '}'))
                j++;
            if (j + 1 >= lx.len) {
                st = lex_fail(&lx, tag, "unclosed comment");
                break;
            }
            strip = j > i && src[j - 1] == '-';
            keep_nl = j > i && src[j - 1] == '+';
            pos = j + 2;
        } else if (kind == '%' && block_name_is(&lx, i, "raw")) {
            /* {% raw %}: everything up to {% endraw %} is data */
            size_t j = i;
            while (j < lx.len && is_ws(src[j]))
                j++;
            j += 3;
            while (j < lx.len && is_ws(src[j]))
                j++;
            if (j < lx.len && (src[j] == '-' || src[j] == '+')) {
                strip = src[j] == '-';
                j++;
            }
            if (j + 1 >= lx.len || src[j] != '%' || src[j + 1] != '}') {
                st = lex_fail(&lx, tag, "malformed raw tag");
                break;
            }
            j += 2;
            /* jinja2 applies no trim_blocks to the raw tag itself */
            if (strip)
                while (j < lx.len && is_ws(src[j]))
                    j++;
            size_t etag, after;
            int sb, sa;
            if (!find_endraw(&lx, j, &etag, &after, &sb, &sa)) {
                st = lex_fail(&lx, tag, "missing endraw");
                break;
            }
            size_t e = etag;
            if (sb)
                while (e > j && is_ws(src[e - 1]))
                    e--;
            if ((st = lex_text(&lx, j, e)))
                break;
            strip = sa;
            keep_nl = 0;
            pos = after;
        } else {
            struct jtoken *t = lex_push(&lx, kind == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN, tag);
            if (!t) {
                st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
                break;
            }
            size_t end_pos = i;
            if ((st = lex_tag(&lx, &i, kind == '{' ? '}' : '%', &strip, &keep_nl, &end_pos)))
                break;
            t = lex_push(&lx, kind == '{' ? JT_VAR_END : JT_BLOCK_END, end_pos);
            if (!t) {
                st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
                break;
            }
            pos = i;
        }
        if (strip) {
            while (pos < lx.len && is_ws(src[pos]))
                pos++;
        } else if (kind != '{' && !keep_nl && pos < lx.len) {
            /* trim_blocks: the first newline after a block or comment */
            if (src[pos] == '\n')
                pos++;
            else if (src[pos] == '\r')
                pos += (pos + 1 < lx.len && src[pos + 1] == '\n') ? 2 : 1;
        }
        line_starting = pos > 0 && (src[pos - 1] == '\n' || src[pos - 1] == '\r');
    }
    if (!st && !lex_push(&lx, JT_EOF, lx.len))
        st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    if (st) {
        free(lx.toks);
        return st;
    }
    *out = lx.toks;
    *ntok = lx.n;
    return ST_OK;
}
