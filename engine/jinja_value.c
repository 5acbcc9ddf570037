/*
 * jinja_value.c - run-time values of the template interpreter: constructors,
 * containers, truth, equality and ordering, and their text forms (Python
 * str(), repr() and json.dumps(ensure_ascii=False)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

/* ---- constructors -------------------------------------------------------- */

struct jval jv_undef(void)
{
    struct jval v = {.t = JV_UNDEF};
    return v;
}

struct jval jv_none(void)
{
    struct jval v = {.t = JV_NONE};
    return v;
}

struct jval jv_bool(int b)
{
    struct jval v = {.t = JV_BOOL};
    v.u.b = !!b;
    return v;
}

struct jval jv_int(int64_t i)
{
    struct jval v = {.t = JV_INT};
    v.u.i = i;
    return v;
}

struct jval jv_float(double f)
{
    struct jval v = {.t = JV_FLOAT};
    v.u.f = f;
    return v;
}

struct jval jv_str(const char *p, size_t n)
{
    struct jval v = {.t = JV_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

struct jval jv_cstr(const char *p)
{
    return jv_str(p, strlen(p));
}

struct jval jv_list_val(struct jlist *l)
{
    struct jval v = {.t = JV_LIST};
    v.u.l = l;
    return v;
}

struct jval jv_dict_val(struct jdict *d)
{
    struct jval v = {.t = JV_DICT};
    v.u.d = d;
    return v;
}

struct jlist *jv_list_new(struct arena *a, size_t cap)
{
    struct jlist *l = arena_calloc(a, 1, sizeof(*l));
    if (!l)
        return NULL;
    if (cap) {
        l->v = arena_alloc(a, cap * sizeof(*l->v));
        if (!l->v)
            return NULL;
        l->cap = cap;
    }
    return l;
}

void jv_list_extend(struct jlist *dst, const struct jlist *src)
{
    if (!src->n)
        return;
    memcpy(dst->v + dst->n, src->v, src->n * sizeof(*dst->v));
    dst->n += src->n;
}

int jv_list_push(struct arena *a, struct jlist *l, struct jval v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct jval *nv = arena_alloc(a, cap * sizeof(*nv));
        if (!nv)
            return -1;
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(*nv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

struct jdict *jv_dict_new(struct arena *a, size_t cap)
{
    struct jdict *d = arena_calloc(a, 1, sizeof(*d));
    if (!d)
        return NULL;
    if (cap) {
        d->k = arena_alloc(a, cap * sizeof(*d->k));
        d->v = arena_alloc(a, cap * sizeof(*d->v));
        if (!d->k || !d->v)
            return NULL;
        d->cap = cap;
    }
    return d;
}

/* Lookups search from the end: a JSON object with a repeated key is copied
 * without de-duplication (which would be quadratic), and the last one wins
 * as in json.loads. */
struct jval *jv_dict_getv(const struct jdict *d, struct jval k)
{
    for (size_t i = d->n; i-- > 0;)
        if (jv_equal(d->k[i], k))
            return &d->v[i];
    return NULL;
}

struct jval *jv_dict_get(const struct jdict *d, const char *key, size_t klen)
{
    for (size_t i = d->n; i-- > 0;)
        if (d->k[i].t == JV_STR && d->k[i].u.s.n == klen && !memcmp(d->k[i].u.s.p, key, klen))
            return &d->v[i];
    return NULL;
}

static int dict_append(struct arena *a, struct jdict *d, struct jval k, struct jval v)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct jval *nk = arena_alloc(a, cap * sizeof(*nk));
        struct jval *nv = arena_alloc(a, cap * sizeof(*nv));
        if (!nk || !nv)
            return -1;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(*nk));
            memcpy(nv, d->v, d->n * sizeof(*nv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

int jv_dict_set(struct arena *a, struct jdict *d, struct jval k, struct jval v)
{
    struct jval *slot = jv_dict_getv(d, k);
    if (slot) {
        *slot = v;
        return 0;
    }
    return dict_append(a, d, k, v);
}

/* ---- UTF-8 --------------------------------------------------------------- */

size_t jutf8_next(const char *p, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)p;
    if (!n)
        return 0;
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) {
        *cp = c;
        return 1;
    }
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = c;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

size_t jutf8_count(const char *p, size_t n)
{
    size_t count = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; count++)
        i += jutf8_next(p + i, n - i, &cp);
    return count;
}

/* Python's str.isspace() set, which str.strip() and str.split() use. */
int jutf8_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ---- truth, equality, ordering ------------------------------------------ */

int jv_is_number(struct jval v)
{
    return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
}

double jv_num(struct jval v)
{
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.t == JV_BOOL ? v.u.b : 0;
}

int jv_truthy(struct jval v)
{
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return 0;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s.n != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return 1;
    }
}

/* Containers can nest without bound (a list may even contain itself after
 * append), so every recursive walk over values stops at a depth limit. */
static int equal_at(struct jval a, struct jval b, int depth)
{
    if (depth > JINJA_MAX_DATA_DEPTH)
        return 0;
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t)
        return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n)
            return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!equal_at(a.u.l->v[i], b.u.l->v[i], depth + 1))
                return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n)
            return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            struct jval *o = jv_dict_getv(b.u.d, a.u.d->k[i]);
            if (!o || !equal_at(a.u.d->v[i], *o, depth + 1))
                return 0;
        }
        return 1;
    case JV_NS: return a.u.d == b.u.d;
    case JV_MACRO: return a.u.m == b.u.m;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_LOOP: return a.u.loop == b.u.loop;
    default: return 0;
    }
}

int jv_equal(struct jval a, struct jval b)
{
    return equal_at(a, b, 0);
}

static int fold(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int compare_at(struct jval a, struct jval b, int ci, int *ok, int depth)
{
    *ok = depth <= JINJA_MAX_DATA_DEPTH;
    if (!*ok)
        return 0;
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.t == JV_INT && b.t == JV_INT)
            return (a.u.i > b.u.i) - (a.u.i < b.u.i);
        double x = jv_num(a), y = jv_num(b);
        return (x > y) - (x < y);
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        for (size_t i = 0; i < n; i++) {
            int x = (unsigned char)a.u.s.p[i], y = (unsigned char)b.u.s.p[i];
            if (ci) {
                x = fold(x);
                y = fold(y);
            }
            if (x != y)
                return x < y ? -1 : 1;
        }
        return (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
    }
    if (a.t == JV_LIST && b.t == JV_LIST) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i]))
                continue;
            return compare_at(a.u.l->v[i], b.u.l->v[i], ci, ok, depth + 1);
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    *ok = 0;
    return 0;
}

int jv_compare(struct jval a, struct jval b, int ci, int *ok)
{
    return compare_at(a, b, ci, ok, 0);
}

const char *jv_type_name(struct jval v)
{
    switch (v.t) {
    case JV_UNDEF: return "undefined";
    case JV_NONE: return "none";
    case JV_BOOL: return "boolean";
    case JV_INT: return "integer";
    case JV_FLOAT: return "float";
    case JV_STR: return "string";
    case JV_LIST: return v.u.l->is_tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "namespace";
    case JV_MACRO: return "macro";
    case JV_FUNC: return "function";
    case JV_LOOP: return "loop";
    }
    return "value";
}

/* ---- text forms ---------------------------------------------------------- */

int jbuf_put(struct jbuf *b, const char *p, size_t n)
{
    if (!n)
        return 0;
    if (n > JINJA_MAX_OUTPUT || b->n + n > JINJA_MAX_OUTPUT)
        return -1;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

void jbuf_free(struct jbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static int put_s(struct jbuf *b, const char *s)
{
    return jbuf_put(b, s, strlen(s));
}

/* Python's repr(float): the shortest digits that round-trip, scientific
 * below 1e-4 and from 1e16 on. */
static void jv_format_float(double d, char *buf, size_t n)
{
    if (isnan(d)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, n, d < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* tmp is [-]D[.DDD]e[+-]XX */
    char digits[32];
    size_t nd = 0;
    const char *s = tmp;
    int neg = *s == '-';
    if (neg)
        s++;
    while (*s && *s != 'e') {
        if (*s != '.' && nd < sizeof(digits) - 1)
            digits[nd++] = *s;
        s++;
    }
    digits[nd] = 0;
    int exp = *s == 'e' ? atoi(s + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    char out[96];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (exp < -4 || exp >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (size_t i = 1; i < nd; i++)
                out[o++] = digits[i];
        }
        o += (size_t)snprintf(out + o, sizeof(out) - o, "e%c%02d", exp < 0 ? '-' : '+',
                              exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp - 1; i++)
            out[o++] = '0';
        for (size_t i = 0; i < nd; i++)
            out[o++] = digits[i];
        out[o] = 0;
    } else {
        for (int i = 0; i <= exp; i++)
            out[o++] = (size_t)i < nd ? digits[i] : '0';
        out[o++] = '.';
        if ((size_t)exp + 1 < nd)
            for (size_t i = (size_t)exp + 1; i < nd; i++)
                out[o++] = digits[i];
        else
            out[o++] = '0';
        out[o] = 0;
    }
    snprintf(buf, n, "%s", out);
}

static int put_num(struct jbuf *b, struct jval v)
{
    char tmp[96];
    if (v.t == JV_INT)
        snprintf(tmp, sizeof(tmp), "%lld", (long long)v.u.i);
    else
        jv_format_float(v.u.f, tmp, sizeof(tmp));
    return put_s(b, tmp);
}

static int put_str_repr(struct jbuf *b, const char *p, size_t n)
{
    int has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (jbuf_put(b, &q, 1))
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[8] = {0};
        if (c == '\\')
            strcpy(esc, "\\\\");
        else if (c == (unsigned char)q)
            snprintf(esc, sizeof(esc), "\\%c", q);
        else if (c == '\n')
            strcpy(esc, "\\n");
        else if (c == '\r')
            strcpy(esc, "\\r");
        else if (c == '\t')
            strcpy(esc, "\\t");
        else if (c < 0x20 || c == 0x7F)
            snprintf(esc, sizeof(esc), "\\x%02x", c);
        if (!esc[0])
            continue;
        if (jbuf_put(b, p + run, i - run) || put_s(b, esc))
            return -1;
        run = i + 1;
    }
    if (jbuf_put(b, p + run, n - run))
        return -1;
    return jbuf_put(b, &q, 1);
}

static int write_repr_at(struct jbuf *b, struct jval v, int depth);

int jv_write_repr(struct jbuf *b, struct jval v)
{
    return write_repr_at(b, v, 0);
}

static int write_repr_at(struct jbuf *b, struct jval v, int depth)
{
    if (depth > JINJA_MAX_DATA_DEPTH)
        return -1;
    if (v.t == JV_STR)
        return put_str_repr(b, v.u.s.p, v.u.s.n);
    if (v.t == JV_LIST) {
        struct jlist *l = v.u.l;
        if (put_s(b, l->is_tuple ? "(" : "["))
            return -1;
        for (size_t i = 0; i < l->n; i++)
            if ((i && put_s(b, ", ")) || write_repr_at(b, l->v[i], depth + 1))
                return -1;
        if (l->is_tuple && l->n == 1 && put_s(b, ","))
            return -1;
        return put_s(b, l->is_tuple ? ")" : "]");
    }
    if (v.t == JV_DICT) {
        struct jdict *d = v.u.d;
        if (put_s(b, "{"))
            return -1;
        for (size_t i = 0; i < d->n; i++)
            if ((i && put_s(b, ", ")) || write_repr_at(b, d->k[i], depth + 1) || put_s(b, ": ") ||
                write_repr_at(b, d->v[i], depth + 1))
                return -1;
        return put_s(b, "}");
    }
    return jv_write_str(b, v);
}

int jv_write_str(struct jbuf *b, struct jval v)
{
    switch (v.t) {
    case JV_UNDEF: return 0;
    case JV_NONE: return put_s(b, "None");
    case JV_BOOL: return put_s(b, v.u.b ? "True" : "False");
    case JV_INT:
    case JV_FLOAT: return put_num(b, v);
    case JV_STR: return jbuf_put(b, v.u.s.p, v.u.s.n);
    case JV_LIST:
    case JV_DICT: return jv_write_repr(b, v);
    case JV_NS: return put_s(b, "<Namespace>");
    case JV_MACRO: return put_s(b, "<Macro>");
    case JV_FUNC: return put_s(b, "<function>");
    case JV_LOOP: return put_s(b, "<LoopContext>");
    }
    return 0;
}

int jv_to_string(struct arena *a, struct jval v, struct jval *out)
{
    if (v.t == JV_STR) {
        *out = v;
        return 0;
    }
    struct jbuf b = {0};
    if (jv_write_str(&b, v)) {
        jbuf_free(&b);
        return -1;
    }
    size_t n = b.n;
    char *s = arena_strndup(a, b.p ? b.p : "", n);
    jbuf_free(&b);
    if (!s)
        return -1;
    *out = jv_str(s, n);
    return 0;
}

static int put_json_str(struct jbuf *b, const char *p, size_t n, int ascii)
{
    if (put_s(b, "\""))
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[8] = {0};
        if (c == '"')
            strcpy(esc, "\\\"");
        else if (c == '\\')
            strcpy(esc, "\\\\");
        else if (c == '\n')
            strcpy(esc, "\\n");
        else if (c == '\r')
            strcpy(esc, "\\r");
        else if (c == '\t')
            strcpy(esc, "\\t");
        else if (c == '\b')
            strcpy(esc, "\\b");
        else if (c == '\f')
            strcpy(esc, "\\f");
        else if (c < 0x20)
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        if (ascii && c >= 0x80) {
            uint32_t cp;
            size_t k = jutf8_next(p + i, n - i, &cp);
            char u[16];
            if (cp >= 0x10000)
                snprintf(u, sizeof(u), "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10),
                         0xDC00 + ((cp - 0x10000) & 0x3FF));
            else
                snprintf(u, sizeof(u), "\\u%04x", cp);
            if (jbuf_put(b, p + run, i - run) || put_s(b, u))
                return -1;
            i += k - 1;
            run = i + 1;
            continue;
        }
        if (!esc[0])
            continue;
        if (jbuf_put(b, p + run, i - run) || put_s(b, esc))
            return -1;
        run = i + 1;
    }
    if (jbuf_put(b, p + run, n - run))
        return -1;
    return put_s(b, "\"");
}

static int put_indent(struct jbuf *b, int indent, int level)
{
    if (put_s(b, "\n"))
        return -1;
    for (long i = 0; i < (long)indent * level; i++)
        if (jbuf_put(b, " ", 1))
            return -1;
    return 0;
}

static int cmp_str_keys(const void *x, const void *y)
{
    const struct jval *a = *(const struct jval *const *)x, *b = *(const struct jval *const *)y;
    int ok;
    return jv_compare(*a, *b, 0, &ok);
}

int jv_write_json(struct jbuf *b, struct jval v, const struct json_opts *o, int depth)
{
    if (depth > JINJA_MAX_DATA_DEPTH)
        return -3;
    const char *item_sep = o->item_sep ? o->item_sep : o->indent >= 0 ? "," : ", ";
    const char *key_sep = o->key_sep ? o->key_sep : ": ";
    int indent = o->indent;
    switch (v.t) {
    case JV_NONE: return put_s(b, "null");
    case JV_BOOL: return put_s(b, v.u.b ? "true" : "false");
    case JV_INT: return put_num(b, v);
    case JV_FLOAT:
        if (isnan(v.u.f))
            return put_s(b, "NaN");
        if (isinf(v.u.f))
            return put_s(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        return put_num(b, v);
    case JV_STR: return put_json_str(b, v.u.s.p, v.u.s.n, o->ascii);
    case JV_LIST: {
        struct jlist *l = v.u.l;
        if (!l->n)
            return put_s(b, "[]");
        if (put_s(b, "["))
            return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (i && put_s(b, item_sep))
                return -1;
            if (indent >= 0 && put_indent(b, indent, depth + 1))
                return -1;
            int rc = jv_write_json(b, l->v[i], o, depth + 1);
            if (rc)
                return rc;
        }
        if (indent >= 0 && put_indent(b, indent, depth))
            return -1;
        return put_s(b, "]");
    }
    case JV_DICT:
    case JV_NS: {
        struct jdict *d = v.u.d;
        if (!d->n)
            return put_s(b, "{}");
        /* sort_keys: the key order, as pointers into d->k */
        const struct jval **order = NULL;
        if (o->sort_keys) {
            if (!(order = malloc(d->n * sizeof(*order))))
                return -1;
            for (size_t i = 0; i < d->n; i++) {
                if (d->k[i].t != JV_STR) {
                    free(order);
                    return -2;
                }
                order[i] = &d->k[i];
            }
            qsort(order, d->n, sizeof(*order), cmp_str_keys);
        }
        int rc = put_s(b, "{");
        for (size_t n = 0; n < d->n && !rc; n++) {
            size_t i = order ? (size_t)(order[n] - d->k) : n;
            struct jval k = d->k[i];
            if ((n && put_s(b, item_sep)) || (indent >= 0 && put_indent(b, indent, depth + 1))) {
                rc = -1;
                break;
            }
            if (k.t == JV_STR)
                rc = put_json_str(b, k.u.s.p, k.u.s.n, o->ascii);
            else if (k.t == JV_INT || k.t == JV_FLOAT)
                rc = put_s(b, "\"") || put_num(b, k) || put_s(b, "\"") ? -1 : 0;
            else if (k.t == JV_BOOL)
                rc = put_s(b, k.u.b ? "\"true\"" : "\"false\"");
            else if (k.t == JV_NONE)
                rc = put_s(b, "\"null\"");
            else
                rc = -2;
            if (!rc && put_s(b, key_sep))
                rc = -1;
            if (!rc)
                rc = jv_write_json(b, d->v[i], o, depth + 1);
        }
        free(order);
        if (rc)
            return rc;
        if (indent >= 0 && put_indent(b, indent, depth))
            return -1;
        return put_s(b, "}");
    }
    default: return -2;
    }
}

int jv_from_json(struct arena *a, const cJSON *j, struct jval *out, int depth)
{
    if (depth > JINJA_MAX_DATA_DEPTH)
        return -3;
    if (cJSON_IsNull(j)) {
        *out = jv_none();
    } else if (cJSON_IsBool(j)) {
        *out = jv_bool(cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        /* JSON does not say int or float; integral values in range are
         * taken as ints, which is what json.loads gives for "2" */
        double d = j->valuedouble;
        if (d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0)
            *out = jv_int((int64_t)d);
        else
            *out = jv_float(d);
    } else if (cJSON_IsString(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        *out = jv_str(s, strlen(s));
    } else if (cJSON_IsArray(j)) {
        struct jlist *l = jv_list_new(a, (size_t)cJSON_GetArraySize(j));
        if (!l)
            return -1;
        for (const cJSON *c = j->child; c; c = c->next) {
            struct jval v;
            int rc = jv_from_json(a, c, &v, depth + 1);
            if (rc)
                return rc;
            if (jv_list_push(a, l, v))
                return -1;
        }
        *out = jv_list_val(l);
    } else if (cJSON_IsObject(j)) {
        struct jdict *d = jv_dict_new(a, (size_t)cJSON_GetArraySize(j));
        if (!d)
            return -1;
        for (const cJSON *c = j->child; c; c = c->next) {
            struct jval v;
            int rc = jv_from_json(a, c, &v, depth + 1);
            if (rc)
                return rc;
            const char *k = c->string ? c->string : "";
            if (dict_append(a, d, jv_str(k, strlen(k)), v))
                return -1;
        }
        *out = jv_dict_val(d);
    } else {
        *out = jv_none();
    }
    return 0;
}
