/*
 * jinja_builtins.c - filters, tests, methods of strings/dicts/lists and the
 * global functions (range, dict, namespace, raise_exception, strftime_now).
 *
 * Behaviour follows jinja2 3.1 and Python 3 str/dict/list methods, since the
 * templates were written against them; string case mapping uses utf8proc.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "jinja_internal.h"

/* ---- helpers ------------------------------------------------------------- */

static enum status nomem(struct jrender *r, size_t pos)
{
    return jinja_fail(r, pos, ST_ERR_NOMEM, "out of memory (or over the render memory limit)");
}

/* Positional argument i, else keyword `name`, else NULL. */
static const struct jval *arg(const struct jargs *a, size_t i, const char *name)
{
    if (i < a->npos)
        return &a->pos[i];
    for (size_t k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->knames[k], name))
            return &a->kvals[k];
    return NULL;
}

static struct jval arg_or(const struct jargs *a, size_t i, const char *name, struct jval def)
{
    const struct jval *v = arg(a, i, name);
    return v ? *v : def;
}

static enum status finish(struct jrender *r, size_t pos, struct jbuf *b, struct jval *out)
{
    char *s = arena_strndup(r->a, b->p ? b->p : "", b->n);
    size_t n = b->n;
    jbuf_free(b);
    if (!s)
        return nomem(r, pos);
    *out = jv_str(s, n);
    return ST_OK;
}

static enum status too_big(struct jrender *r, size_t pos, struct jbuf *b)
{
    jbuf_free(b);
    return jinja_fail(r, pos, ST_ERR_RANGE, "string result over %u bytes", JINJA_MAX_OUTPUT);
}

static enum status to_str(struct jrender *r, size_t pos, struct jval v, struct jval *out)
{
    if (jv_to_string(r->a, v, out))
        return nomem(r, pos);
    return ST_OK;
}

static enum status need_str(struct jrender *r, size_t pos, struct jval v, const char *what)
{
    if (v.t == JV_STR)
        return ST_OK;
    return jinja_fail(r, pos, ST_ERR_INVALID, "%s expects a string, got %s", what, jv_type_name(v));
}

static int as_int(struct jval v, int64_t *out)
{
    if (v.t == JV_INT)
        *out = v.u.i;
    else if (v.t == JV_BOOL)
        *out = v.u.b;
    else
        return 0;
    return 1;
}

static enum status need_int(struct jrender *r, size_t pos, struct jval v, const char *what,
                            int64_t *out)
{
    if (as_int(v, out))
        return ST_OK;
    return jinja_fail(r, pos, ST_ERR_INVALID, "%s expects an integer, got %s", what,
                      jv_type_name(v));
}

static enum status iterate(struct jrender *r, size_t pos, struct jval v, struct jlist **out)
{
    int rc = jinja_iterate(r, v, out);
    if (rc == -1)
        return nomem(r, pos);
    if (rc == -2)
        return jinja_fail(r, pos, ST_ERR_INVALID, "'%s' object is not iterable", jv_type_name(v));
    return jinja_charge(r, pos, (*out)->n);
}

/* Dotted attribute path ("a.b", "0") of a value, as jinja2's attribute=. */
static struct jval attr_path(struct jval v, const char *path)
{
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        char *end;
        long long idx = strtoll(path, &end, 10);
        if (n && end == path + n && v.t == JV_LIST) {
            if (idx < 0)
                idx += (long long)v.u.l->n;
            v = idx >= 0 && (size_t)idx < v.u.l->n ? v.u.l->v[idx] : jv_undef();
        } else if (v.t == JV_DICT || v.t == JV_NS) {
            struct jval *f = jv_dict_get(v.u.d, path, n);
            v = f ? *f : jv_undef();
        } else {
            return jv_undef();
        }
        path += n + (dot != NULL);
    }
    return v;
}

static enum status attr_arg(struct jrender *r, size_t pos, const struct jval *a, char *buf,
                            size_t n, const char **out)
{
    *out = NULL;
    if (!a || a->t == JV_NONE || a->t == JV_UNDEF)
        return ST_OK;
    if (a->t == JV_INT) {
        snprintf(buf, n, "%lld", (long long)a->u.i);
    } else if (a->t == JV_STR) {
        if (a->u.s.n >= n)
            return jinja_fail(r, pos, ST_ERR_INVALID, "attribute name too long");
        memcpy(buf, a->u.s.p, a->u.s.n);
        buf[a->u.s.n] = 0;
    } else {
        return jinja_fail(r, pos, ST_ERR_INVALID, "attribute must be a string");
    }
    *out = buf;
    return ST_OK;
}

/* ---- string primitives --------------------------------------------------- */

enum casemode { CASE_UPPER, CASE_LOWER, CASE_TITLE_PY, CASE_TITLE_JINJA, CASE_CAPITALIZE };

static int is_cased_letter(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static enum status change_case(struct jrender *r, size_t pos, struct jval s, enum casemode mode,
                               struct jval *out)
{
    struct jbuf b = {0};
    int prev_cased = 0, word_start = 1, first = 1;
    for (size_t i = 0; i < s.u.s.n;) {
        uint32_t cp;
        size_t k = jutf8_next(s.u.s.p + i, s.u.s.n - i, &cp);
        uint32_t o = cp;
        if (k > 1 || cp < 0x80) {
            int up;
            switch (mode) {
            case CASE_UPPER: up = 1; break;
            case CASE_LOWER: up = 0; break;
            case CASE_TITLE_PY: up = !prev_cased; break;
            case CASE_TITLE_JINJA: up = word_start; break;
            default: up = first;
            }
            /* title(), capitalize() use the titlecase mapping (Dž, not DŽ) */
            if (!up)
                o = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
            else if (mode == CASE_UPPER)
                o = (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp);
            else
                o = (uint32_t)utf8proc_totitle((utf8proc_int32_t)cp);
        }
        prev_cased = is_cased_letter(cp);
        word_start =
            cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || jutf8_is_space(cp);
        first = 0;
        if (o == cp || o > 0x10FFFF) {
            if (jbuf_put(&b, s.u.s.p + i, k))
                return too_big(r, pos, &b);
        } else {
            char enc[4];
            utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)o, (utf8proc_uint8_t *)enc);
            if (jbuf_put(&b, enc, (size_t)n))
                return too_big(r, pos, &b);
        }
        i += k;
    }
    return finish(r, pos, &b, out);
}

static int in_chars(uint32_t cp, const struct jval *chars)
{
    if (!chars)
        return jutf8_is_space(cp);
    uint32_t c;
    for (size_t i = 0; i < chars->u.s.n;) {
        i += jutf8_next(chars->u.s.p + i, chars->u.s.n - i, &c);
        if (c == cp)
            return 1;
    }
    return 0;
}

/* Python str.strip/lstrip/rstrip: which = 1 left, 2 right, 3 both. */
static enum status strip(struct jrender *r, size_t pos, struct jval s, const struct jval *chars,
                         int which, struct jval *out)
{
    if (chars && (chars->t == JV_NONE || chars->t == JV_UNDEF))
        chars = NULL;
    enum status st;
    if (chars && (st = need_str(r, pos, *chars, "strip")))
        return st;
    size_t a = 0, b = s.u.s.n;
    uint32_t cp;
    if (which & 1)
        while (a < b) {
            size_t k = jutf8_next(s.u.s.p + a, b - a, &cp);
            if (!in_chars(cp, chars))
                break;
            a += k;
        }
    if (which & 2)
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s.u.s.p[k] & 0xC0) == 0x80 && b - k < 4)
                k--;
            size_t len = jutf8_next(s.u.s.p + k, b - k, &cp);
            if (len != b - k) { /* not a whole character: treat the last byte alone */
                k = b - 1;
                cp = (unsigned char)s.u.s.p[k];
            }
            if (!in_chars(cp, chars))
                break;
            b = k;
        }
    *out = jv_str(s.u.s.p + a, b - a);
    return ST_OK;
}

static enum status replace(struct jrender *r, size_t pos, struct jval s, struct jval old,
                           struct jval new, int64_t count, struct jval *out)
{
    enum status st;
    if ((st = need_str(r, pos, old, "replace")) || (st = need_str(r, pos, new, "replace")))
        return st;
    struct jbuf b = {0};
    size_t i = 0;
    int64_t done = 0;
    if (old.u.s.n == 0) {
        /* Python inserts `new` between characters and at both ends */
        uint32_t cp;
        while (count < 0 || done < count) {
            if (jbuf_put(&b, new.u.s.p, new.u.s.n))
                return too_big(r, pos, &b);
            done++;
            if (i >= s.u.s.n)
                break;
            size_t k = jutf8_next(s.u.s.p + i, s.u.s.n - i, &cp);
            if (jbuf_put(&b, s.u.s.p + i, k))
                return too_big(r, pos, &b);
            i += k;
        }
    } else {
        while (count < 0 || done < count) {
            const char *hit = memmem(s.u.s.p + i, s.u.s.n - i, old.u.s.p, old.u.s.n);
            if (!hit)
                break;
            size_t at = (size_t)(hit - s.u.s.p);
            if (jbuf_put(&b, s.u.s.p + i, at - i) || jbuf_put(&b, new.u.s.p, new.u.s.n))
                return too_big(r, pos, &b);
            i = at + old.u.s.n;
            done++;
        }
    }
    if (jbuf_put(&b, s.u.s.p + i, s.u.s.n - i))
        return too_big(r, pos, &b);
    if ((st = jinja_charge(r, pos, b.n / 16))) {
        jbuf_free(&b);
        return st;
    }
    return finish(r, pos, &b, out);
}

/* Python str.split / rsplit. */
static enum status split(struct jrender *r, size_t pos, struct jval s, const struct jval *sep,
                         int64_t maxsplit, int from_right, struct jval *out)
{
    struct jlist *l = jv_list_new(r->a, 0);
    if (!l)
        return nomem(r, pos);
    enum status st = jinja_charge(r, pos, s.u.s.n / 64);
    if (st)
        return st;
    if (sep && sep->t != JV_NONE && sep->t != JV_UNDEF) {
        if ((st = need_str(r, pos, *sep, "split")))
            return st;
        if (!sep->u.s.n)
            return jinja_fail(r, pos, ST_ERR_INVALID, "empty separator");
        const char *p = s.u.s.p, *sp = sep->u.s.p;
        size_t n = s.u.s.n, sn = sep->u.s.n;
        if (!from_right) {
            size_t i = 0;
            for (int64_t done = 0; maxsplit < 0 || done < maxsplit; done++) {
                const char *hit = memmem(p + i, n - i, sp, sn);
                if (!hit)
                    break;
                size_t at = (size_t)(hit - p);
                if (jv_list_push(r->a, l, jv_str(p + i, at - i)))
                    return nomem(r, pos);
                i = at + sn;
            }
            if (jv_list_push(r->a, l, jv_str(p + i, n - i)))
                return nomem(r, pos);
        } else {
            size_t end = n;
            struct jlist *rev = jv_list_new(r->a, 0);
            if (!rev)
                return nomem(r, pos);
            for (int64_t done = 0; maxsplit < 0 || done < maxsplit; done++) {
                size_t at = (size_t)-1;
                for (size_t k = end >= sn ? end - sn + 1 : 0; k-- > 0;)
                    if (!memcmp(p + k, sp, sn)) {
                        at = k;
                        break;
                    }
                if (at == (size_t)-1)
                    break;
                if (jv_list_push(r->a, rev, jv_str(p + at + sn, end - at - sn)))
                    return nomem(r, pos);
                end = at;
            }
            if (jv_list_push(r->a, rev, jv_str(p, end)))
                return nomem(r, pos);
            for (size_t k = rev->n; k-- > 0;)
                if (jv_list_push(r->a, l, rev->v[k]))
                    return nomem(r, pos);
        }
    } else {
        /* runs of whitespace; leading/trailing whitespace gives no empty parts */
        size_t n = s.u.s.n, i = 0;
        const char *p = s.u.s.p;
        uint32_t cp;
        int64_t done = 0;
        if (from_right) {
            /* collect all words, then merge the leading ones past maxsplit */
            struct jlist *words = jv_list_new(r->a, 0);
            if (!words)
                return nomem(r, pos);
            while (i < n) {
                size_t k = jutf8_next(p + i, n - i, &cp);
                if (jutf8_is_space(cp)) {
                    i += k;
                    continue;
                }
                size_t start = i;
                while (i < n) {
                    k = jutf8_next(p + i, n - i, &cp);
                    if (jutf8_is_space(cp))
                        break;
                    i += k;
                }
                if (jv_list_push(r->a, words, jv_str(p + start, i - start)))
                    return nomem(r, pos);
            }
            size_t keep = maxsplit < 0 || (uint64_t)maxsplit + 1 >= words->n
                              ? 0
                              : words->n - (size_t)maxsplit - 1;
            if (keep) {
                /* ... and the leading whitespace of rsplit's first part */
                const char *first = p;
                const char *last_end = words->v[keep].u.s.p + words->v[keep].u.s.n;
                if (jv_list_push(r->a, l, jv_str(first, (size_t)(last_end - first))))
                    return nomem(r, pos);
                keep++;
            }
            for (size_t k = keep; k < words->n; k++)
                if (jv_list_push(r->a, l, words->v[k]))
                    return nomem(r, pos);
        } else {
            while (i < n) {
                size_t k = jutf8_next(p + i, n - i, &cp);
                if (jutf8_is_space(cp)) {
                    i += k;
                    continue;
                }
                if (maxsplit >= 0 && done >= maxsplit) {
                    /* Python keeps the remainder's trailing whitespace */
                    if (jv_list_push(r->a, l, jv_str(p + i, n - i)))
                        return nomem(r, pos);
                    break;
                }
                size_t start = i;
                while (i < n) {
                    k = jutf8_next(p + i, n - i, &cp);
                    if (jutf8_is_space(cp))
                        break;
                    i += k;
                }
                if (jv_list_push(r->a, l, jv_str(p + start, i - start)))
                    return nomem(r, pos);
                done++;
            }
        }
    }
    *out = jv_list_val(l);
    return jinja_charge(r, pos, l->n);
}

/* Python str.format with {}, {0}, {name} and {{ }}; no format specs. */
static enum status str_format(struct jrender *r, size_t pos, struct jval fmt, const struct jargs *a,
                              struct jval *out)
{
    struct jbuf b = {0};
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n, auto_idx = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '{' && i + 1 < n && p[i + 1] == '{') {
            if (jbuf_put(&b, "{", 1))
                return too_big(r, pos, &b);
            i++;
            continue;
        }
        if (p[i] == '}' && i + 1 < n && p[i + 1] == '}') {
            if (jbuf_put(&b, "}", 1))
                return too_big(r, pos, &b);
            i++;
            continue;
        }
        if (p[i] != '{') {
            if (jbuf_put(&b, p + i, 1))
                return too_big(r, pos, &b);
            continue;
        }
        const char *close = memchr(p + i, '}', n - i);
        if (!close) {
            jbuf_free(&b);
            return jinja_fail(r, pos, ST_ERR_INVALID, "single '{' in format string");
        }
        size_t fl = (size_t)(close - (p + i)) - 1;
        const char *field = p + i + 1;
        const struct jval *v = NULL;
        if (memchr(field, ':', fl) || memchr(field, '!', fl)) {
            jbuf_free(&b);
            return jinja_fail(r, pos, ST_ERR_UNSUPPORTED, "format specs are not supported");
        }
        if (fl == 0) {
            v = auto_idx < a->npos ? &a->pos[auto_idx] : NULL;
            auto_idx++;
        } else if (field[0] >= '0' && field[0] <= '9') {
            size_t idx = (size_t)strtoul(field, NULL, 10);
            v = idx < a->npos ? &a->pos[idx] : NULL;
        } else {
            for (size_t k = 0; k < a->nkw; k++)
                if (strlen(a->knames[k]) == fl && !memcmp(a->knames[k], field, fl))
                    v = &a->kvals[k];
        }
        if (!v) {
            jbuf_free(&b);
            return jinja_fail(r, pos, ST_ERR_INVALID, "format field '%.*s' has no argument",
                              (int)fl, field);
        }
        if (jv_write_str(&b, *v))
            return too_big(r, pos, &b);
        i = (size_t)(close - p);
    }
    return finish(r, pos, &b, out);
}

/* ---- sorting ------------------------------------------------------------- */

struct sort_ctx {
    struct jrender *r;
    size_t pos;
    int ci, reverse, failed;
    struct jval bad_a, bad_b;
};

static int sort_cmp(struct sort_ctx *c, struct jval a, struct jval b)
{
    int ok;
    int v = jv_compare(a, b, c->ci, &ok);
    if (!ok && !c->failed) {
        c->failed = 1;
        c->bad_a = a;
        c->bad_b = b;
    }
    return c->reverse ? -v : v;
}

/* Stable merge sort of items by keys (both length n). */
static enum status sort_by(struct jrender *r, size_t pos, struct jval *items, struct jval *keys,
                           size_t n, int ci, int reverse)
{
    struct sort_ctx c = {.r = r, .pos = pos, .ci = ci, .reverse = reverse};
    struct jval *ti = arena_alloc(r->a, n * sizeof(*ti) + 1);
    struct jval *tk = arena_alloc(r->a, n * sizeof(*tk) + 1);
    if (!ti || !tk)
        return nomem(r, pos);
    enum status st = jinja_charge(r, pos, n * 8);
    if (st)
        return st;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi) {
                if (sort_cmp(&c, keys[j], keys[i]) < 0) {
                    ti[o] = items[j];
                    tk[o++] = keys[j++];
                } else {
                    ti[o] = items[i];
                    tk[o++] = keys[i++];
                }
            }
            while (i < mid) {
                ti[o] = items[i];
                tk[o++] = keys[i++];
            }
            while (j < hi) {
                ti[o] = items[j];
                tk[o++] = keys[j++];
            }
        }
        memcpy(items, ti, n * sizeof(*items));
        memcpy(keys, tk, n * sizeof(*keys));
    }
    if (c.failed)
        return jinja_fail(r, pos, ST_ERR_INVALID, "cannot compare '%s' with '%s' when sorting",
                          jv_type_name(c.bad_a), jv_type_name(c.bad_b));
    return ST_OK;
}

/* ---- filters ------------------------------------------------------------- */

typedef enum status (*filter_fn)(struct jrender *r, size_t pos, struct jval v,
                                 const struct jargs *a, struct jval *out);

static enum status f_tojson(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    /* transformers' tojson(x, ensure_ascii=False, indent=None, separators=None,
     * sort_keys=False): the first positional argument is ensure_ascii, not
     * jinja2's indent */
    int ascii = jv_truthy(arg_or(a, 0, "ensure_ascii", jv_bool(0)));
    struct jval ind = arg_or(a, 1, "indent", jv_none());
    int64_t indent = -1;
    if (ind.t != JV_NONE && ind.t != JV_UNDEF) {
        enum status st = need_int(r, pos, ind, "tojson indent", &indent);
        if (st)
            return st;
        if (indent < 0)
            indent = 0;
        if (indent > 64)
            return jinja_fail(r, pos, ST_ERR_RANGE, "tojson indent too large");
    }
    struct json_opts o = {(int)indent, ascii, jv_truthy(arg_or(a, 3, "sort_keys", jv_bool(0))),
                          NULL, NULL};
    /* separators=(item, key), each a short string */
    char seps[2][16];
    struct jval sep = arg_or(a, 2, "separators", jv_none());
    if (sep.t == JV_LIST) {
        if (sep.u.l->n != 2 || sep.u.l->v[0].t != JV_STR || sep.u.l->v[1].t != JV_STR ||
            sep.u.l->v[0].u.s.n >= sizeof(seps[0]) || sep.u.l->v[1].u.s.n >= sizeof(seps[1]))
            return jinja_fail(r, pos, ST_ERR_INVALID,
                              "tojson separators must be two short strings");
        for (int k = 0; k < 2; k++)
            snprintf(seps[k], sizeof(seps[k]), "%.*s", (int)sep.u.l->v[k].u.s.n,
                     sep.u.l->v[k].u.s.p);
        o.item_sep = seps[0];
        o.key_sep = seps[1];
    }
    struct jbuf b = {0};
    int rc = jv_write_json(&b, v, &o, 0);
    if (rc == -1)
        return too_big(r, pos, &b);
    if (rc) {
        jbuf_free(&b);
        if (rc == -3)
            return jinja_fail(r, pos, ST_ERR_RANGE, "value nested too deeply for tojson");
        return jinja_fail(r, pos, ST_ERR_INVALID, "object of type %s is not JSON serializable",
                          jv_type_name(v));
    }
    enum status st = jinja_charge(r, pos, b.n / 16);
    if (st) {
        jbuf_free(&b);
        return st;
    }
    return finish(r, pos, &b, out);
}

static enum status f_trim(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          struct jval *out)
{
    enum status st = to_str(r, pos, v, &v);
    return st ? st : strip(r, pos, v, arg(a, 0, "chars"), 3, out);
}

static enum status f_length(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    (void)a;
    switch (v.t) {
    case JV_UNDEF: *out = jv_int(0); return ST_OK;
    case JV_STR:
        *out = jv_int((int64_t)jutf8_count(v.u.s.p, v.u.s.n));
        return jinja_charge(r, pos, v.u.s.n / 64);
    case JV_LIST: *out = jv_int((int64_t)v.u.l->n); return ST_OK;
    case JV_DICT: *out = jv_int((int64_t)v.u.d->n); return ST_OK;
    default:
        return jinja_fail(r, pos, ST_ERR_INVALID, "object of type '%s' has no len()",
                          jv_type_name(v));
    }
}

static enum status items_of(struct jrender *r, size_t pos, struct jdict *d, struct jval *out)
{
    struct jlist *l = jv_list_new(r->a, d->n);
    if (!l)
        return nomem(r, pos);
    for (size_t i = 0; i < d->n; i++) {
        struct jlist *pair = jv_list_new(r->a, 2);
        if (!pair)
            return nomem(r, pos);
        pair->is_tuple = 1;
        pair->v[0] = d->k[i];
        pair->v[1] = d->v[i];
        pair->n = 2;
        l->v[l->n++] = jv_list_val(pair);
    }
    *out = jv_list_val(l);
    return jinja_charge(r, pos, d->n);
}

static enum status f_items(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    (void)a;
    if (v.t == JV_UNDEF) {
        struct jlist *l = jv_list_new(r->a, 0);
        if (!l)
            return nomem(r, pos);
        *out = jv_list_val(l);
        return ST_OK;
    }
    if (v.t != JV_DICT)
        return jinja_fail(r, pos, ST_ERR_INVALID, "items expects a mapping, got %s",
                          jv_type_name(v));
    return items_of(r, pos, v.u.d, out);
}

static enum status f_default(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                             struct jval *out)
{
    (void)r;
    (void)pos;
    struct jval def = arg_or(a, 0, "default_value", jv_str("", 0));
    int boolean = jv_truthy(arg_or(a, 1, "boolean", jv_bool(0)));
    *out = (v.t == JV_UNDEF || (boolean && !jv_truthy(v))) ? def : v;
    return ST_OK;
}

static enum status f_join(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          struct jval *out)
{
    struct jval sep = arg_or(a, 0, "d", jv_str("", 0));
    char abuf[256];
    const char *attr;
    struct jlist *l;
    enum status st;
    if ((st = to_str(r, pos, sep, &sep)) ||
        (st = attr_arg(r, pos, arg(a, 1, "attribute"), abuf, sizeof(abuf), &attr)) ||
        (st = iterate(r, pos, v, &l)))
        return st;
    struct jbuf b = {0};
    for (size_t i = 0; i < l->n; i++) {
        struct jval item = attr ? attr_path(l->v[i], attr) : l->v[i];
        if ((i && jbuf_put(&b, sep.u.s.p, sep.u.s.n)) || jv_write_str(&b, item))
            return too_big(r, pos, &b);
    }
    return finish(r, pos, &b, out);
}

static enum status f_upper(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    (void)a;
    enum status st = to_str(r, pos, v, &v);
    return st ? st : change_case(r, pos, v, CASE_UPPER, out);
}

static enum status f_lower(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    (void)a;
    enum status st = to_str(r, pos, v, &v);
    return st ? st : change_case(r, pos, v, CASE_LOWER, out);
}

static enum status f_title(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    (void)a;
    enum status st = to_str(r, pos, v, &v);
    return st ? st : change_case(r, pos, v, CASE_TITLE_JINJA, out);
}

static enum status f_capitalize(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                                struct jval *out)
{
    (void)a;
    enum status st = to_str(r, pos, v, &v);
    return st ? st : change_case(r, pos, v, CASE_CAPITALIZE, out);
}

static enum status f_replace(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                             struct jval *out)
{
    const struct jval *old = arg(a, 0, "old"), *new = arg(a, 1, "new");
    struct jval cnt = arg_or(a, 2, "count", jv_none());
    int64_t count = -1;
    enum status st;
    if (!old || !new)
        return jinja_fail(r, pos, ST_ERR_INVALID, "replace needs two arguments");
    if (cnt.t != JV_NONE && (st = need_int(r, pos, cnt, "replace count", &count)))
        return st;
    if ((st = to_str(r, pos, v, &v)))
        return st;
    return replace(r, pos, v, *old, *new, count, out);
}

static enum status f_string(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    (void)a;
    return to_str(r, pos, v, out);
}

/* Python int() of a string: optional sign, digits with single underscores,
 * surrounding whitespace. */
static int parse_int(const char *p, size_t n, int64_t base, int64_t *out)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r')))
        i++;
    while (n > i && (p[n - 1] == ' ' || (p[n - 1] >= '\t' && p[n - 1] <= '\r')))
        n--;
    int neg = 0;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    if (i >= n)
        return 0;
    int64_t v = 0;
    int digits = 0;
    for (; i < n; i++) {
        char c = p[i];
        if (c == '_' && digits && i + 1 < n && p[i + 1] != '_')
            continue;
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'z' ? c - 'a' + 10
                : c >= 'A' && c <= 'Z' ? c - 'A' + 10
                                       : 99;
        if (d >= base)
            return 0;
        if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
            return 0;
        digits++;
    }
    *out = neg ? -v : v;
    return digits > 0;
}

static int parse_float(const char *p, size_t n, double *out)
{
    char buf[128];
    if (n >= sizeof(buf))
        return 0;
    memcpy(buf, p, n);
    buf[n] = 0;
    char *end;
    double d = strtod(buf, &end);
    while (*end == ' ' || (*end >= '\t' && *end <= '\r'))
        end++;
    if (end == buf || *end)
        return 0;
    const char *s = buf;
    while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        s++;
    if (*s == '0' && (s[1] == 'x' || s[1] == 'X'))
        return 0;
    *out = d;
    return 1;
}

static enum status f_int(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                         struct jval *out)
{
    struct jval def = arg_or(a, 0, "default", jv_int(0));
    int64_t base = 10;
    enum status st;
    if (arg(a, 1, "base") && (st = need_int(r, pos, *arg(a, 1, "base"), "int base", &base)))
        return st;
    if (base < 2 || base > 36)
        return jinja_fail(r, pos, ST_ERR_INVALID, "int base must be 2..36");
    *out = def;
    int64_t i;
    double d;
    if (v.t == JV_INT || v.t == JV_BOOL)
        *out = jv_int(v.t == JV_INT ? v.u.i : v.u.b);
    else if (v.t == JV_FLOAT && isfinite(v.u.f) && fabs(v.u.f) < 9.2e18)
        *out = jv_int((int64_t)v.u.f);
    else if (v.t == JV_STR && parse_int(v.u.s.p, v.u.s.n, base, &i))
        *out = jv_int(i);
    else if (v.t == JV_STR && parse_float(v.u.s.p, v.u.s.n, &d) && isfinite(d) && fabs(d) < 9.2e18)
        *out = jv_int((int64_t)d);
    return ST_OK;
}

static enum status f_float(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    (void)r;
    (void)pos;
    *out = arg_or(a, 0, "default", jv_float(0));
    double d;
    if (jv_is_number(v))
        *out = jv_float(jv_num(v));
    else if (v.t == JV_STR && parse_float(v.u.s.p, v.u.s.n, &d))
        *out = jv_float(d);
    return ST_OK;
}

static enum status f_list(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          struct jval *out)
{
    (void)a;
    struct jlist *l, *c;
    enum status st = iterate(r, pos, v, &l);
    if (st)
        return st;
    if (!(c = jv_list_new(r->a, l->n)))
        return nomem(r, pos);
    jv_list_extend(c, l);
    *out = jv_list_val(c);
    return ST_OK;
}

static enum status f_first(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    (void)a;
    struct jlist *l;
    enum status st = iterate(r, pos, v, &l);
    if (st)
        return st;
    *out = l->n ? l->v[0] : jv_undef();
    return ST_OK;
}

static enum status f_last(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          struct jval *out)
{
    (void)a;
    struct jlist *l;
    enum status st = iterate(r, pos, v, &l);
    if (st)
        return st;
    *out = l->n ? l->v[l->n - 1] : jv_undef();
    return ST_OK;
}

static enum status f_reverse(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                             struct jval *out)
{
    (void)a;
    struct jlist *l, *c;
    enum status st = iterate(r, pos, v, &l);
    if (st)
        return st;
    if (!(c = jv_list_new(r->a, l->n)))
        return nomem(r, pos);
    for (size_t i = l->n; i-- > 0;)
        c->v[c->n++] = l->v[i];
    if (v.t != JV_STR) {
        *out = jv_list_val(c);
        return ST_OK;
    }
    struct jbuf b = {0};
    for (size_t i = 0; i < c->n; i++)
        if (jbuf_put(&b, c->v[i].u.s.p, c->v[i].u.s.n))
            return too_big(r, pos, &b);
    return finish(r, pos, &b, out);
}

/* Copies the items and computes sort keys (attribute, case folding). */
static enum status sort_prepare(struct jrender *r, size_t pos, struct jval v,
                                const struct jval *attr_v, struct jlist **items, struct jval **keys)
{
    char abuf[256];
    const char *attr;
    struct jlist *l, *c;
    enum status st;
    if ((st = attr_arg(r, pos, attr_v, abuf, sizeof(abuf), &attr)) || (st = iterate(r, pos, v, &l)))
        return st;
    if (!(c = jv_list_new(r->a, l->n)) || !(*keys = arena_alloc(r->a, (l->n + 1) * sizeof(**keys))))
        return nomem(r, pos);
    for (size_t i = 0; i < l->n; i++) {
        c->v[c->n++] = l->v[i];
        (*keys)[i] = attr ? attr_path(l->v[i], attr) : l->v[i];
    }
    *items = c;
    return ST_OK;
}

static enum status f_sort(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          struct jval *out)
{
    int reverse = jv_truthy(arg_or(a, 0, "reverse", jv_bool(0)));
    int cs = jv_truthy(arg_or(a, 1, "case_sensitive", jv_bool(0)));
    struct jlist *c;
    struct jval *keys;
    enum status st = sort_prepare(r, pos, v, arg(a, 2, "attribute"), &c, &keys);
    if (st || (st = sort_by(r, pos, c->v, keys, c->n, !cs, reverse)))
        return st;
    *out = jv_list_val(c);
    return ST_OK;
}

static enum status f_dictsort(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                              struct jval *out)
{
    int cs = jv_truthy(arg_or(a, 0, "case_sensitive", jv_bool(0)));
    struct jval by = arg_or(a, 1, "by", jv_cstr("key"));
    int reverse = jv_truthy(arg_or(a, 2, "reverse", jv_bool(0)));
    if (v.t != JV_DICT)
        return jinja_fail(r, pos, ST_ERR_INVALID, "dictsort expects a mapping, got %s",
                          jv_type_name(v));
    int by_value = by.t == JV_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5);
    struct jval items;
    enum status st = items_of(r, pos, v.u.d, &items);
    if (st)
        return st;
    struct jlist *l = items.u.l;
    struct jval *keys = arena_alloc(r->a, (l->n + 1) * sizeof(*keys));
    if (!keys)
        return nomem(r, pos);
    for (size_t i = 0; i < l->n; i++)
        keys[i] = l->v[i].u.l->v[by_value];
    if ((st = sort_by(r, pos, l->v, keys, l->n, !cs, reverse)))
        return st;
    *out = items;
    return ST_OK;
}

static enum status f_unique(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    int cs = jv_truthy(arg_or(a, 0, "case_sensitive", jv_bool(0)));
    struct jlist *c, *res;
    struct jval *keys;
    enum status st = sort_prepare(r, pos, v, arg(a, 1, "attribute"), &c, &keys);
    if (st)
        return st;
    if (!(res = jv_list_new(r->a, c->n)))
        return nomem(r, pos);
    if ((st = jinja_charge(r, pos, (uint64_t)c->n * c->n / 4)))
        return st;
    for (size_t i = 0; i < c->n; i++) {
        int dup = 0;
        for (size_t k = 0; k < i && !dup; k++) {
            int ok;
            if (!cs && keys[i].t == JV_STR && keys[k].t == JV_STR)
                dup = jv_compare(keys[i], keys[k], 1, &ok) == 0;
            else
                dup = jv_equal(keys[i], keys[k]);
        }
        if (!dup)
            res->v[res->n++] = c->v[i];
    }
    *out = jv_list_val(res);
    return ST_OK;
}

static enum status f_map(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                         struct jval *out)
{
    struct jlist *l, *res;
    enum status st = iterate(r, pos, v, &l);
    if (st)
        return st;
    if (!(res = jv_list_new(r->a, l->n)))
        return nomem(r, pos);
    const struct jval *attr_v = NULL;
    for (size_t k = 0; k < a->nkw; k++)
        if (!strcmp(a->knames[k], "attribute"))
            attr_v = &a->kvals[k];
    if (attr_v) {
        char abuf[256];
        const char *attr;
        struct jval def = arg_or(a, (size_t)-1, "default", jv_undef());
        if ((st = attr_arg(r, pos, attr_v, abuf, sizeof(abuf), &attr)))
            return st;
        for (size_t i = 0; i < l->n; i++) {
            struct jval x = attr ? attr_path(l->v[i], attr) : l->v[i];
            res->v[res->n++] = x.t == JV_UNDEF ? def : x;
        }
    } else {
        if (!a->npos || a->pos[0].t != JV_STR)
            return jinja_fail(r, pos, ST_ERR_INVALID, "map needs a filter name or attribute=");
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)a->pos[0].u.s.n, a->pos[0].u.s.p);
        struct jargs rest = {a->pos + 1, a->npos - 1, a->knames, a->kvals, a->nkw};
        for (size_t i = 0; i < l->n; i++)
            if ((st = jinja_filter(r, pos, name, l->v[i], &rest, &res->v[res->n++])))
                return st;
    }
    *out = jv_list_val(res);
    return ST_OK;
}

/* select/reject (attr == NULL) and selectattr/rejectattr. */
static enum status select_items(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                                int by_attr, int keep_if, struct jval *out)
{
    struct jlist *l, *res;
    enum status st = iterate(r, pos, v, &l);
    if (st)
        return st;
    if (!(res = jv_list_new(r->a, l->n)))
        return nomem(r, pos);
    char abuf[256];
    const char *attr = NULL;
    size_t next = 0;
    if (by_attr) {
        if ((st = attr_arg(r, pos, arg(a, 0, NULL), abuf, sizeof(abuf), &attr)))
            return st;
        if (!attr)
            return jinja_fail(r, pos, ST_ERR_INVALID, "selectattr needs an attribute name");
        next = 1;
    }
    char test[64] = "";
    if (next < a->npos) {
        if (a->pos[next].t != JV_STR)
            return jinja_fail(r, pos, ST_ERR_INVALID, "test name must be a string");
        snprintf(test, sizeof(test), "%.*s", (int)a->pos[next].u.s.n, a->pos[next].u.s.p);
        next++;
    }
    struct jargs rest = {a->pos + next, a->npos > next ? a->npos - next : 0, NULL, NULL, 0};
    for (size_t i = 0; i < l->n; i++) {
        struct jval x = attr ? attr_path(l->v[i], attr) : l->v[i];
        int res_t;
        if (test[0]) {
            if ((st = jinja_test(r, pos, test, x, &rest, &res_t)))
                return st;
        } else {
            res_t = jv_truthy(x);
        }
        if (res_t == keep_if)
            res->v[res->n++] = l->v[i];
    }
    *out = jv_list_val(res);
    return ST_OK;
}

static enum status f_select(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    return select_items(r, pos, v, a, 0, 1, out);
}

static enum status f_reject(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    return select_items(r, pos, v, a, 0, 0, out);
}

static enum status f_selectattr(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                                struct jval *out)
{
    return select_items(r, pos, v, a, 1, 1, out);
}

static enum status f_rejectattr(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                                struct jval *out)
{
    return select_items(r, pos, v, a, 1, 0, out);
}

static enum status f_safe(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          struct jval *out)
{
    (void)r;
    (void)pos;
    (void)a;
    *out = v;
    return ST_OK;
}

static enum status f_escape(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    (void)a;
    enum status st = to_str(r, pos, v, &v);
    if (st)
        return st;
    struct jbuf b = {0};
    for (size_t i = 0; i < v.u.s.n; i++) {
        const char *rep = NULL;
        switch (v.u.s.p[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        }
        if (rep ? jbuf_put(&b, rep, strlen(rep)) : jbuf_put(&b, v.u.s.p + i, 1))
            return too_big(r, pos, &b);
    }
    return finish(r, pos, &b, out);
}

static enum status f_indent(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    struct jval w = arg_or(a, 0, "width", jv_int(4));
    int first = jv_truthy(arg_or(a, 1, "first", jv_bool(0)));
    int blank = jv_truthy(arg_or(a, 2, "blank", jv_bool(0)));
    enum status st = to_str(r, pos, v, &v);
    if (st)
        return st;
    char pad[256];
    size_t padn;
    if (w.t == JV_STR) {
        padn = w.u.s.n < sizeof(pad) ? w.u.s.n : sizeof(pad);
        memcpy(pad, w.u.s.p, padn);
    } else {
        int64_t n;
        if ((st = need_int(r, pos, w, "indent width", &n)))
            return st;
        padn = n < 0 ? 0 : n > (int64_t)sizeof(pad) ? sizeof(pad) : (size_t)n;
        memset(pad, ' ', padn);
    }
    struct jbuf b = {0};
    if (first && jbuf_put(&b, pad, padn))
        return too_big(r, pos, &b);
    const char *p = v.u.s.p;
    size_t n = v.u.s.n, line = 0;
    for (size_t i = 0;; line++) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        if (line > 0 && (blank || end > i) && jbuf_put(&b, pad, padn))
            return too_big(r, pos, &b);
        if (jbuf_put(&b, p + i, end - i) || (nl && jbuf_put(&b, "\n", 1)))
            return too_big(r, pos, &b);
        if (!nl)
            break;
        i = end + 1;
    }
    return finish(r, pos, &b, out);
}

static enum status f_abs(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                         struct jval *out)
{
    (void)a;
    if (v.t == JV_INT && v.u.i != INT64_MIN)
        *out = jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
    else if (v.t == JV_BOOL)
        *out = jv_int(v.u.b);
    else if (v.t == JV_FLOAT)
        *out = jv_float(fabs(v.u.f));
    else
        return jinja_fail(r, pos, ST_ERR_INVALID, "bad operand type for abs(): '%s'",
                          jv_type_name(v));
    return ST_OK;
}

static enum status f_round(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    int64_t prec = 0;
    struct jval method = arg_or(a, 1, "method", jv_cstr("common"));
    enum status st;
    if (arg(a, 0, "precision") && (st = need_int(r, pos, *arg(a, 0, "precision"), "round", &prec)))
        return st;
    if (!jv_is_number(v))
        return jinja_fail(r, pos, ST_ERR_INVALID, "round expects a number, got %s",
                          jv_type_name(v));
    if (prec > 300 || prec < -300)
        prec = prec > 0 ? 300 : -300;
    double x = jv_num(v), m = pow(10.0, (double)prec), y = x * m;
    if (method.t == JV_STR && method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4)) {
        y = ceil(y);
    } else if (method.t == JV_STR && method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5)) {
        y = floor(y);
    } else {
        /* Python's round() of an int with ndigits >= 0 is the int itself */
        if (v.t != JV_FLOAT && prec >= 0) {
            *out = jv_int(v.t == JV_INT ? v.u.i : v.u.b);
            return ST_OK;
        }
        y = nearbyint(y);
    }
    *out = jv_float(isfinite(y / m) ? y / m : x);
    return ST_OK;
}

static enum status f_wordcount(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                               struct jval *out)
{
    (void)a;
    enum status st = to_str(r, pos, v, &v);
    if (st)
        return st;
    int64_t count = 0;
    int in_word = 0;
    for (size_t i = 0; i < v.u.s.n;) {
        uint32_t cp;
        i += jutf8_next(v.u.s.p + i, v.u.s.n - i, &cp);
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        int w = cp == '_' || (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
                (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) ||
                (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME);
        count += w && !in_word;
        in_word = w;
    }
    *out = jv_int(count);
    return ST_OK;
}

static enum status f_batch(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                           struct jval *out)
{
    int64_t n;
    const struct jval *cnt = arg(a, 0, "linecount");
    const struct jval *fill = arg(a, 1, "fill_with");
    struct jlist *l, *res, *cur = NULL;
    enum status st;
    if (!cnt)
        return jinja_fail(r, pos, ST_ERR_INVALID, "batch needs a count");
    if ((st = need_int(r, pos, *cnt, "batch", &n)) || (st = iterate(r, pos, v, &l)))
        return st;
    if (n <= 0)
        return jinja_fail(r, pos, ST_ERR_INVALID, "batch count must be positive");
    if (!(res = jv_list_new(r->a, 0)))
        return nomem(r, pos);
    for (size_t i = 0; i < l->n; i++) {
        if (!cur || (int64_t)cur->n == n) {
            if (!(cur = jv_list_new(r->a, 0)) || jv_list_push(r->a, res, jv_list_val(cur)))
                return nomem(r, pos);
        }
        if (jv_list_push(r->a, cur, l->v[i]))
            return nomem(r, pos);
    }
    if (cur && fill && fill->t != JV_NONE)
        while ((int64_t)cur->n < n)
            if (jv_list_push(r->a, cur, *fill))
                return nomem(r, pos);
    *out = jv_list_val(res);
    return ST_OK;
}

static enum status minmax(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          int want_max, struct jval *out)
{
    int cs = jv_truthy(arg_or(a, 0, "case_sensitive", jv_bool(0)));
    struct jlist *c;
    struct jval *keys;
    enum status st = sort_prepare(r, pos, v, arg(a, 1, "attribute"), &c, &keys);
    if (st)
        return st;
    *out = jv_undef();
    size_t best = 0;
    for (size_t i = 1; i < c->n; i++) {
        int ok, cmp = jv_compare(keys[i], keys[best], !cs, &ok);
        if (!ok)
            return jinja_fail(r, pos, ST_ERR_INVALID, "cannot compare '%s' with '%s'",
                              jv_type_name(keys[i]), jv_type_name(keys[best]));
        if (want_max ? cmp > 0 : cmp < 0)
            best = i;
    }
    if (c->n)
        *out = c->v[best];
    return ST_OK;
}

static enum status f_max(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                         struct jval *out)
{
    return minmax(r, pos, v, a, 1, out);
}

static enum status f_min(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                         struct jval *out)
{
    return minmax(r, pos, v, a, 0, out);
}

static enum status f_sum(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                         struct jval *out)
{
    char abuf[256];
    const char *attr;
    struct jlist *l;
    struct jval acc = arg_or(a, 1, "start", jv_int(0));
    enum status st;
    if ((st = attr_arg(r, pos, arg(a, 0, "attribute"), abuf, sizeof(abuf), &attr)) ||
        (st = iterate(r, pos, v, &l)))
        return st;
    for (size_t i = 0; i < l->n; i++) {
        struct jval x = attr ? attr_path(l->v[i], attr) : l->v[i];
        if (!jv_is_number(x) || !jv_is_number(acc))
            return jinja_fail(r, pos, ST_ERR_INVALID, "sum expects numbers, got %s",
                              jv_type_name(x));
        if (acc.t != JV_FLOAT && x.t != JV_FLOAT) {
            int64_t s, x0 = acc.t == JV_INT ? acc.u.i : acc.u.b;
            if (__builtin_add_overflow(x0, x.t == JV_INT ? x.u.i : x.u.b, &s))
                return jinja_fail(r, pos, ST_ERR_RANGE, "integer overflow in sum");
            acc = jv_int(s);
        } else {
            acc = jv_float(jv_num(acc) + jv_num(x));
        }
    }
    *out = acc;
    return ST_OK;
}

static enum status f_pprint(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    (void)a;
    struct jbuf b = {0};
    if (jv_write_repr(&b, v))
        return too_big(r, pos, &b);
    return finish(r, pos, &b, out);
}

static enum status f_center(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    int64_t width = 80;
    enum status st;
    if (arg(a, 0, "width") && (st = need_int(r, pos, *arg(a, 0, "width"), "center", &width)))
        return st;
    if ((st = to_str(r, pos, v, &v)))
        return st;
    int64_t len = (int64_t)jutf8_count(v.u.s.p, v.u.s.n);
    if (width > JINJA_MAX_OUTPUT)
        return jinja_fail(r, pos, ST_ERR_RANGE, "center width too large");
    if (width <= len) {
        *out = v;
        return ST_OK;
    }
    /* Python puts the odd space on the left when the width is odd */
    int64_t total = width - len, left = total / 2 + (total & width & 1);
    struct jbuf b = {0};
    for (int64_t i = 0; i < left; i++)
        if (jbuf_put(&b, " ", 1))
            return too_big(r, pos, &b);
    if (jbuf_put(&b, v.u.s.p, v.u.s.n))
        return too_big(r, pos, &b);
    for (int64_t i = 0; i < total - left; i++)
        if (jbuf_put(&b, " ", 1))
            return too_big(r, pos, &b);
    return finish(r, pos, &b, out);
}

static enum status f_attr(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                          struct jval *out)
{
    const struct jval *name = arg(a, 0, "name");
    if (!name || name->t != JV_STR)
        return jinja_fail(r, pos, ST_ERR_INVALID, "attr needs a name");
    /* attr() is getattr() only: a dict's keys are items, not attributes */
    *out = jv_undef();
    if (v.t == JV_NS) {
        struct jval *f = jv_dict_get(v.u.d, name->u.s.p, name->u.s.n);
        if (f)
            *out = *f;
    }
    return ST_OK;
}

/* "%s items"|format(n): Python %-formatting with s, r, d, i, f, x and %%. */
static enum status f_format(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                            struct jval *out)
{
    enum status st = need_str(r, pos, v, "format");
    if (st)
        return st;
    struct jbuf b = {0};
    size_t next = 0;
    for (size_t i = 0; i < v.u.s.n; i++) {
        if (v.u.s.p[i] != '%') {
            if (jbuf_put(&b, v.u.s.p + i, 1))
                return too_big(r, pos, &b);
            continue;
        }
        char conv = i + 1 < v.u.s.n ? v.u.s.p[++i] : 0;
        if (conv == '%') {
            if (jbuf_put(&b, "%", 1))
                return too_big(r, pos, &b);
            continue;
        }
        if (next >= a->npos || !strchr("srdifx", conv) || !conv) {
            jbuf_free(&b);
            return jinja_fail(r, pos, ST_ERR_INVALID,
                              "format: bad conversion or not enough arguments");
        }
        struct jval x = a->pos[next++];
        char num[64];
        int rc;
        if (conv == 's') {
            rc = jv_write_str(&b, x);
        } else if (conv == 'r') {
            rc = jv_write_repr(&b, x);
        } else if (!jv_is_number(x)) {
            jbuf_free(&b);
            return jinja_fail(r, pos, ST_ERR_INVALID, "format: %%%c needs a number, got %s", conv,
                              jv_type_name(x));
        } else {
            if (conv == 'f')
                snprintf(num, sizeof(num), "%f", jv_num(x));
            else if (x.t == JV_FLOAT && !(fabs(x.u.f) < 9.2e18))
                snprintf(num, sizeof(num), "%.0f", x.u.f);
            else
                snprintf(num, sizeof(num), conv == 'x' ? "%llx" : "%lld",
                         (long long)(x.t == JV_FLOAT ? (int64_t)x.u.f
                                     : x.t == JV_INT ? x.u.i
                                                     : x.u.b));
            rc = jbuf_put(&b, num, strlen(num));
        }
        if (rc)
            return too_big(r, pos, &b);
    }
    return finish(r, pos, &b, out);
}

/* truncate(length=255, killwords=False, end='...', leeway=5), in code points */
static enum status f_truncate(struct jrender *r, size_t pos, struct jval v, const struct jargs *a,
                              struct jval *out)
{
    int64_t length = 255, leeway = 5;
    int killwords = jv_truthy(arg_or(a, 1, "killwords", jv_bool(0)));
    struct jval end = arg_or(a, 2, "end", jv_cstr("..."));
    enum status st;
    if ((arg(a, 0, "length") &&
         (st = need_int(r, pos, *arg(a, 0, "length"), "truncate", &length))) ||
        (arg(a, 3, "leeway") && arg(a, 3, "leeway")->t != JV_NONE &&
         (st = need_int(r, pos, *arg(a, 3, "leeway"), "truncate", &leeway))) ||
        (st = to_str(r, pos, v, &v)) || (st = need_str(r, pos, end, "truncate end")))
        return st;
    int64_t n = (int64_t)jutf8_count(v.u.s.p, v.u.s.n);
    int64_t endn = (int64_t)jutf8_count(end.u.s.p, end.u.s.n);
    if (length < endn)
        return jinja_fail(r, pos, ST_ERR_INVALID, "truncate length must be at least len(end)");
    if (leeway < 0)
        return jinja_fail(r, pos, ST_ERR_INVALID, "truncate leeway must be >= 0");
    if (n <= length + leeway) {
        *out = v;
        return ST_OK;
    }
    size_t cut = 0;
    uint32_t cp;
    for (int64_t k = 0; k < length - endn; k++)
        cut += jutf8_next(v.u.s.p + cut, v.u.s.n - cut, &cp);
    if (!killwords) {
        /* drop the last, partial word: rsplit(' ', 1)[0] */
        size_t sp = cut;
        while (sp > 0 && v.u.s.p[sp - 1] != ' ')
            sp--;
        if (sp > 0)
            cut = sp - 1;
    }
    struct jbuf b = {0};
    if (jbuf_put(&b, v.u.s.p, cut) || jbuf_put(&b, end.u.s.p, end.u.s.n))
        return too_big(r, pos, &b);
    return finish(r, pos, &b, out);
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"pprint", f_pprint},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"truncate", f_truncate},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

static filter_fn filter_find(const char *name)
{
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (!strcmp(filters[i].name, name))
            return filters[i].fn;
    return NULL;
}

int jinja_filter_exists(const char *name)
{
    return filter_find(name) != NULL;
}

enum status jinja_filter(struct jrender *r, size_t pos, const char *name, struct jval v,
                         const struct jargs *args, struct jval *out)
{
    filter_fn fn = filter_find(name);
    if (!fn)
        return jinja_fail(r, pos, ST_ERR_INVALID, "no filter named '%s'", name);
    return fn(r, pos, v, args, out);
}

/* ---- tests --------------------------------------------------------------- */

static int is_lower_or_upper(struct jval v, int want_upper)
{
    int cased = 0;
    for (size_t i = 0; i < v.u.s.n;) {
        uint32_t cp;
        i += jutf8_next(v.u.s.p + i, v.u.s.n - i, &cp);
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT) {
            if (!want_upper)
                return 0;
            cased = 1;
        } else if (c == UTF8PROC_CATEGORY_LL) {
            if (want_upper)
                return 0;
            cased = 1;
        }
    }
    return cased;
}

static const char *const test_names[] = {
    "defined", "undefined",   "none",        "boolean",  "false",    "true",     "integer", "float",
    "number",  "string",      "mapping",     "iterable", "sequence", "callable", "sameas",  "eq",
    "equalto", "==",          "ne",          "!=",       "lt",       "lessthan", "<",       "le",
    "<=",      "gt",          "greaterthan", ">",        "ge",       ">=",       "in",      "odd",
    "even",    "divisibleby", "lower",       "upper",    "escaped",  "filter",   "test",
};

int jinja_test_exists(const char *name)
{
    for (size_t i = 0; i < sizeof(test_names) / sizeof(test_names[0]); i++)
        if (!strcmp(test_names[i], name))
            return 1;
    return 0;
}

enum status jinja_test(struct jrender *r, size_t pos, const char *name, struct jval v,
                       const struct jargs *args, int *out)
{
    const struct jval *o = arg(args, 0, NULL);
    struct jval other = o ? *o : jv_undef();
    int64_t i;
    enum status st;
    *out = 0;
    if (!strcmp(name, "defined"))
        *out = v.t != JV_UNDEF;
    else if (!strcmp(name, "undefined"))
        *out = v.t == JV_UNDEF;
    else if (!strcmp(name, "none"))
        *out = v.t == JV_NONE;
    else if (!strcmp(name, "boolean"))
        *out = v.t == JV_BOOL;
    else if (!strcmp(name, "false"))
        *out = v.t == JV_BOOL && !v.u.b;
    else if (!strcmp(name, "true"))
        *out = v.t == JV_BOOL && v.u.b;
    else if (!strcmp(name, "integer"))
        *out = v.t == JV_INT;
    else if (!strcmp(name, "float"))
        *out = v.t == JV_FLOAT;
    else if (!strcmp(name, "number"))
        *out = jv_is_number(v);
    else if (!strcmp(name, "string"))
        *out = v.t == JV_STR;
    else if (!strcmp(name, "mapping"))
        *out = v.t == JV_DICT;
    else if (!strcmp(name, "iterable"))
        *out = v.t == JV_LIST || v.t == JV_DICT || v.t == JV_STR || v.t == JV_UNDEF;
    else if (!strcmp(name, "sequence"))
        *out = v.t == JV_LIST || v.t == JV_DICT || v.t == JV_STR;
    else if (!strcmp(name, "callable"))
        *out = v.t == JV_MACRO || v.t == JV_FUNC;
    else if (!strcmp(name, "sameas")) {
        /* identity: the same singleton, or the same container */
        *out = (v.t == other.t && (v.t == JV_NONE || v.t == JV_UNDEF)) ||
               (v.t == JV_BOOL && other.t == JV_BOOL && v.u.b == other.u.b) ||
               ((v.t == JV_LIST && other.t == JV_LIST && v.u.l == other.u.l) ||
                ((v.t == JV_DICT || v.t == JV_NS) && v.t == other.t && v.u.d == other.u.d));
    } else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "=="))
        *out = jv_equal(v, other);
    else if (!strcmp(name, "ne") || !strcmp(name, "!="))
        *out = !jv_equal(v, other);
    else if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<") ||
             !strcmp(name, "le") || !strcmp(name, "<=") || !strcmp(name, "gt") ||
             !strcmp(name, "greaterthan") || !strcmp(name, ">") || !strcmp(name, "ge") ||
             !strcmp(name, ">=")) {
        int ok, c = jv_compare(v, other, 0, &ok);
        if (!ok)
            return jinja_fail(r, pos, ST_ERR_INVALID, "cannot compare '%s' with '%s'",
                              jv_type_name(v), jv_type_name(other));
        if (name[0] == 'l' || name[0] == '<')
            *out = (name[1] == 'e' || name[1] == '=') ? c <= 0 : c < 0;
        else
            *out = (name[1] == 'e' || name[1] == '=') ? c >= 0 : c > 0;
    } else if (!strcmp(name, "in")) {
        if (other.t == JV_STR && v.t == JV_STR)
            *out = !v.u.s.n || memmem(other.u.s.p, other.u.s.n, v.u.s.p, v.u.s.n) != NULL;
        else if (other.t == JV_LIST)
            for (size_t k = 0; k < other.u.l->n && !*out; k++)
                *out = jv_equal(other.u.l->v[k], v);
        else if (other.t == JV_DICT)
            *out = jv_dict_getv(other.u.d, v) != NULL;
        else if (other.t != JV_UNDEF)
            return jinja_fail(r, pos, ST_ERR_INVALID, "'in' test needs a container");
    } else if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (v.t == JV_FLOAT) {
            /* Python: 2.5 % 2 == 0.5, neither odd (== 1) nor even (== 0) */
            double m = fmod(v.u.f, 2.0);
            if (m < 0)
                m += 2.0;
            *out = name[0] == 'o' ? m == 1.0 : m == 0.0;
            return ST_OK;
        }
        if ((st = need_int(r, pos, v, name, &i)))
            return st;
        *out = (i % 2 != 0) == (name[0] == 'o');
    } else if (!strcmp(name, "divisibleby")) {
        int64_t d;
        if ((st = need_int(r, pos, v, name, &i)) || (st = need_int(r, pos, other, name, &d)))
            return st;
        if (d == 0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "divisibleby 0");
        *out = d == -1 || i % d == 0;
    } else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        /* jinja2 tests str(value): ['a'] is lower, {'A': 1} is not */
        struct jval sv;
        if ((st = to_str(r, pos, v, &sv)))
            return st;
        *out = is_lower_or_upper(sv, name[0] == 'u');
    } else if (!strcmp(name, "escaped"))
        *out = 0;
    else if (!strcmp(name, "filter") || !strcmp(name, "test")) {
        char nm[64] = "";
        if (v.t == JV_STR)
            snprintf(nm, sizeof(nm), "%.*s", (int)v.u.s.n, v.u.s.p);
        *out = name[0] == 'f' ? jinja_filter_exists(nm) : jinja_test_exists(nm);
    } else
        return jinja_fail(r, pos, ST_ERR_INVALID, "no test named '%s'", name);
    return ST_OK;
}

/* ---- methods ------------------------------------------------------------- */

static int starts_or_ends(struct jval s, struct jval fix, int at_end)
{
    if (fix.t != JV_STR || fix.u.s.n > s.u.s.n)
        return 0;
    return !memcmp(s.u.s.p + (at_end ? s.u.s.n - fix.u.s.n : 0), fix.u.s.p, fix.u.s.n);
}

static enum status str_method(struct jrender *r, size_t pos, struct jval s, const char *name,
                              const struct jargs *a, struct jval *out, int *found)
{
    enum status st = ST_OK;
    const struct jval *a0 = arg(a, 0, NULL);
    *found = 1;
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        int at_end = name[0] == 'e';
        if (!a0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "%s needs an argument", name);
        int res = 0;
        if (a0->t == JV_LIST) {
            for (size_t i = 0; i < a0->u.l->n && !res; i++)
                res = starts_or_ends(s, a0->u.l->v[i], at_end);
        } else if ((st = need_str(r, pos, *a0, name))) {
            return st;
        } else {
            res = starts_or_ends(s, *a0, at_end);
        }
        *out = jv_bool(res);
    } else if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        int64_t maxsplit = -1;
        struct jval ms = arg_or(a, 1, "maxsplit", jv_int(-1));
        if ((st = need_int(r, pos, ms, "maxsplit", &maxsplit)))
            return st;
        st = split(r, pos, s, arg(a, 0, "sep"), maxsplit, name[0] == 'r', out);
    } else if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
        int at_end = name[6] == 's';
        if (!a0 || (st = need_str(r, pos, *a0, name)))
            return st ? st : jinja_fail(r, pos, ST_ERR_INVALID, "%s needs an argument", name);
        *out = s;
        if (starts_or_ends(s, *a0, at_end))
            *out = jv_str(s.u.s.p + (at_end ? 0 : a0->u.s.n), s.u.s.n - a0->u.s.n);
    } else if (!strcmp(name, "strip")) {
        st = strip(r, pos, s, a0, 3, out);
    } else if (!strcmp(name, "lstrip")) {
        st = strip(r, pos, s, a0, 1, out);
    } else if (!strcmp(name, "rstrip")) {
        st = strip(r, pos, s, a0, 2, out);
    } else if (!strcmp(name, "upper")) {
        st = change_case(r, pos, s, CASE_UPPER, out);
    } else if (!strcmp(name, "lower")) {
        st = change_case(r, pos, s, CASE_LOWER, out);
    } else if (!strcmp(name, "title")) {
        st = change_case(r, pos, s, CASE_TITLE_PY, out);
    } else if (!strcmp(name, "capitalize")) {
        st = change_case(r, pos, s, CASE_CAPITALIZE, out);
    } else if (!strcmp(name, "replace")) {
        const struct jval *old = arg(a, 0, NULL), *new = arg(a, 1, NULL);
        int64_t count = -1;
        if (!old || !new)
            return jinja_fail(r, pos, ST_ERR_INVALID, "replace needs two arguments");
        if (arg(a, 2, "count") && (st = need_int(r, pos, *arg(a, 2, "count"), "count", &count)))
            return st;
        st = replace(r, pos, s, *old, *new, count, out);
    } else if (!strcmp(name, "format")) {
        st = str_format(r, pos, s, a, out);
    } else if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "count") ||
               !strcmp(name, "index") || !strcmp(name, "rindex")) {
        if (!a0 || (st = need_str(r, pos, *a0, name)))
            return st ? st : jinja_fail(r, pos, ST_ERR_INVALID, "%s needs an argument", name);
        int64_t at = -1, count = 0;
        int from_right = name[0] == 'r';
        for (size_t i = 0; i + a0->u.s.n <= s.u.s.n;) {
            if (!memcmp(s.u.s.p + i, a0->u.s.p, a0->u.s.n)) {
                if (at < 0 || from_right)
                    at = (int64_t)jutf8_count(s.u.s.p, i);
                count++;
                if (name[0] == 'c')
                    i += a0->u.s.n ? a0->u.s.n : 1;
                else if (!from_right)
                    break;
                else
                    i++;
            } else {
                i++;
            }
        }
        if (name[0] == 'c')
            *out = jv_int(count);
        else if (at < 0 && (!strcmp(name, "index") || !strcmp(name, "rindex")))
            return jinja_fail(r, pos, ST_ERR_INVALID, "substring not found");
        else
            *out = jv_int(at);
        return jinja_charge(r, pos, s.u.s.n / 16);
    } else if (!strcmp(name, "join")) {
        struct jlist *l;
        if (!a0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "join needs an argument");
        if ((st = iterate(r, pos, *a0, &l)))
            return st;
        struct jbuf b = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != JV_STR) {
                jbuf_free(&b);
                return jinja_fail(r, pos, ST_ERR_INVALID, "join expects strings, got %s",
                                  jv_type_name(l->v[i]));
            }
            if ((i && jbuf_put(&b, s.u.s.p, s.u.s.n)) || jbuf_put(&b, l->v[i].u.s.p, l->v[i].u.s.n))
                return too_big(r, pos, &b);
        }
        st = finish(r, pos, &b, out);
    } else if (!strcmp(name, "isdigit") || !strcmp(name, "isalpha") || !strcmp(name, "isalnum") ||
               !strcmp(name, "isspace")) {
        int res = s.u.s.n > 0;
        for (size_t i = 0; i < s.u.s.n && res;) {
            uint32_t cp;
            i += jutf8_next(s.u.s.p + i, s.u.s.n - i, &cp);
            utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
            int alpha = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
            int digit = c == UTF8PROC_CATEGORY_ND;
            res = name[2] == 'd'   ? digit
                  : name[2] == 's' ? jutf8_is_space(cp)
                  : name[4] == 'p' ? alpha
                                   : alpha || digit;
        }
        *out = jv_bool(res);
    } else if (!strcmp(name, "islower") || !strcmp(name, "isupper")) {
        *out = jv_bool(is_lower_or_upper(s, name[2] == 'u'));
    } else if (!strcmp(name, "splitlines")) {
        struct jlist *l = jv_list_new(r->a, 0);
        if (!l)
            return nomem(r, pos);
        size_t i = 0, start = 0;
        while (i < s.u.s.n) {
            char c = s.u.s.p[i];
            if (c == '\n' || c == '\r') {
                if (jv_list_push(r->a, l, jv_str(s.u.s.p + start, i - start)))
                    return nomem(r, pos);
                i += (c == '\r' && i + 1 < s.u.s.n && s.u.s.p[i + 1] == '\n') ? 2 : 1;
                start = i;
            } else {
                i++;
            }
        }
        if (start < s.u.s.n && jv_list_push(r->a, l, jv_str(s.u.s.p + start, s.u.s.n - start)))
            return nomem(r, pos);
        *out = jv_list_val(l);
    } else {
        *found = 0;
    }
    return st;
}

static enum status dict_method(struct jrender *r, size_t pos, struct jval d, const char *name,
                               const struct jargs *a, struct jval *out, int *found)
{
    *found = 1;
    if (!strcmp(name, "items"))
        return items_of(r, pos, d.u.d, out);
    if (!strcmp(name, "keys") || !strcmp(name, "values")) {
        struct jlist *l = jv_list_new(r->a, d.u.d->n);
        if (!l)
            return nomem(r, pos);
        for (size_t i = 0; i < d.u.d->n; i++)
            l->v[l->n++] = name[0] == 'k' ? d.u.d->k[i] : d.u.d->v[i];
        *out = jv_list_val(l);
        return jinja_charge(r, pos, l->n);
    }
    if (!strcmp(name, "get")) {
        const struct jval *k = arg(a, 0, NULL);
        if (!k)
            return jinja_fail(r, pos, ST_ERR_INVALID, "get needs a key");
        struct jval *v = jv_dict_getv(d.u.d, *k);
        *out = v ? *v : arg_or(a, 1, "default", jv_none());
        return ST_OK;
    }
    *found = 0;
    return ST_OK;
}

static enum status list_method(struct jrender *r, size_t pos, struct jval l, const char *name,
                               const struct jargs *a, struct jval *out, int *found)
{
    const struct jval *a0 = arg(a, 0, NULL);
    *found = 1;
    if (!strcmp(name, "append") && !l.u.l->is_tuple) {
        if (!a0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "append needs an argument");
        if (jv_list_push(r->a, l.u.l, *a0))
            return nomem(r, pos);
        *out = jv_none();
        return jinja_charge(r, pos, 1);
    }
    if (!strcmp(name, "extend") && !l.u.l->is_tuple) {
        struct jlist *src;
        enum status st;
        if (!a0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "extend needs an argument");
        if ((st = iterate(r, pos, *a0, &src)))
            return st;
        for (size_t i = 0; i < src->n; i++)
            if (jv_list_push(r->a, l.u.l, src->v[i]))
                return nomem(r, pos);
        *out = jv_none();
        return ST_OK;
    }
    if (!strcmp(name, "index") || !strcmp(name, "count")) {
        if (!a0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "%s needs an argument", name);
        int64_t count = 0, at = -1;
        for (size_t i = 0; i < l.u.l->n; i++)
            if (jv_equal(l.u.l->v[i], *a0)) {
                if (at < 0)
                    at = (int64_t)i;
                count++;
            }
        if (name[0] == 'i' && at < 0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "value is not in list");
        *out = jv_int(name[0] == 'i' ? at : count);
        return jinja_charge(r, pos, l.u.l->n);
    }
    *found = 0;
    return ST_OK;
}

enum status jinja_method(struct jrender *r, size_t pos, struct jval obj, const char *name,
                         const struct jargs *args, struct jval *out, int *found)
{
    *found = 0;
    switch (obj.t) {
    case JV_STR: return str_method(r, pos, obj, name, args, out, found);
    case JV_DICT: return dict_method(r, pos, obj, name, args, out, found);
    case JV_LIST: return list_method(r, pos, obj, name, args, out, found);
    case JV_LOOP:
        if (!strcmp(name, "cycle")) {
            *found = 1;
            if (!args->npos)
                return jinja_fail(r, pos, ST_ERR_INVALID, "loop.cycle needs arguments");
            *out = args->pos[obj.u.loop->index0 % args->npos];
        }
        return ST_OK;
    default: return ST_OK;
    }
}

/* ---- global functions ---------------------------------------------------- */

enum jfunc { FN_RANGE, FN_DICT, FN_NAMESPACE, FN_RAISE, FN_STRFTIME };

static const char *const func_names[] = {"range", "dict", "namespace", "raise_exception",
                                         "strftime_now"};

int jinja_func_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(func_names) / sizeof(func_names[0]); i++)
        if (!strcmp(func_names[i], name))
            return (int)i;
    return -1;
}

static enum status make_dict(struct jrender *r, size_t pos, const struct jargs *a,
                             struct jdict **out)
{
    struct jdict *d = jv_dict_new(r->a, a->nkw);
    if (!d)
        return nomem(r, pos);
    if (a->npos) {
        struct jval src = a->pos[0];
        if (a->npos > 1 || (src.t != JV_DICT && src.t != JV_NS))
            return jinja_fail(r, pos, ST_ERR_INVALID, "expects a mapping and keyword arguments");
        for (size_t i = 0; i < src.u.d->n; i++)
            if (jv_dict_set(r->a, d, src.u.d->k[i], src.u.d->v[i]))
                return nomem(r, pos);
    }
    for (size_t i = 0; i < a->nkw; i++)
        if (jv_dict_set(r->a, d, jv_cstr(a->knames[i]), a->kvals[i]))
            return nomem(r, pos);
    *out = d;
    return ST_OK;
}

enum status jinja_call_func(struct jrender *r, size_t pos, int fn, const struct jargs *a,
                            struct jval *out)
{
    enum status st;
    switch (fn) {
    case FN_RANGE: {
        int64_t v[3] = {0, 0, 1};
        if (!a->npos || a->npos > 3 || a->nkw)
            return jinja_fail(r, pos, ST_ERR_INVALID, "range expects 1 to 3 integers");
        for (size_t i = 0; i < a->npos; i++)
            if ((st = need_int(r, pos, a->pos[i], "range", &v[a->npos == 1 ? 1 : i])))
                return st;
        if (v[2] == 0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "range step must not be zero");
        double count = ceil(((double)v[1] - (double)v[0]) / (double)v[2]);
        if (count < 0)
            count = 0;
        if (count > 1e7 || (st = jinja_charge(r, pos, (uint64_t)count)))
            return count > 1e7 ? jinja_fail(r, pos, ST_ERR_RANGE, "range too large") : st;
        struct jlist *l = jv_list_new(r->a, (size_t)count);
        if (!l)
            return nomem(r, pos);
        for (size_t i = 0; i < (size_t)count; i++)
            l->v[l->n++] = jv_int(v[0] + (int64_t)i * v[2]);
        *out = jv_list_val(l);
        return ST_OK;
    }
    case FN_DICT:
    case FN_NAMESPACE: {
        struct jdict *d = NULL;
        if ((st = make_dict(r, pos, a, &d)))
            return st;
        out->t = fn == FN_DICT ? JV_DICT : JV_NS;
        out->u.d = d;
        return ST_OK;
    }
    case FN_RAISE: {
        struct jval msg = arg_or(a, 0, "message", jv_cstr("raise_exception called"));
        struct jval s;
        if ((st = to_str(r, pos, msg, &s)))
            return st;
        return jinja_fail(r, pos, ST_ERR_INVALID, "%.*s", (int)(s.u.s.n > 400 ? 400 : s.u.s.n),
                          s.u.s.p);
    }
    case FN_STRFTIME: {
        const struct jval *f = arg(a, 0, "format");
        if (!f || f->t != JV_STR || f->u.s.n > 200)
            return jinja_fail(r, pos, ST_ERR_INVALID, "strftime_now needs a format string");
        char fmt[256], buf[512];
        memcpy(fmt, f->u.s.p, f->u.s.n);
        fmt[f->u.s.n] = 0;
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(buf, sizeof(buf), fmt, &tm);
        char *s = arena_strndup(r->a, buf, n);
        if (!s)
            return nomem(r, pos);
        *out = jv_str(s, n);
        return ST_OK;
    }
    }
    return jinja_fail(r, pos, ST_ERR_INTERNAL, "unknown function");
}
