/*
 * jinja_eval.c - the tree-walking evaluator: expressions, statements,
 * scopes and macro calls.
 *
 * Scoping follows jinja2: a for-loop body gets a fresh scope per iteration
 * (so `set` inside a loop does not leak out; namespace() is the way out),
 * if-blocks share their enclosing scope, macros see their defining scope.
 * Missing variables, attributes and items are `undefined`, which renders as
 * "" and is false; doing arithmetic with it or calling it is an error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

#define JINJA_MAX_EVAL_DEPTH 400 /* nested expression/statement evaluation */

enum status jinja_fail(struct jrender *r, size_t pos, enum status st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line, col;
    jinja_line_col(r->prog->src, r->prog->len, pos, &line, &col);
    return status_fail(r->err, r->errlen, st, "line %d:%d: %s", line, col, msg);
}

enum status jinja_charge(struct jrender *r, size_t pos, uint64_t n)
{
    r->steps += n;
    if (r->steps > JINJA_MAX_STEPS)
        return jinja_fail(r, pos, ST_ERR_RANGE, "template exceeded its limit of %llu steps",
                          (unsigned long long)JINJA_MAX_STEPS);
    return ST_OK;
}

static enum status nomem(struct jrender *r, size_t pos)
{
    return jinja_fail(r, pos, ST_ERR_NOMEM, "out of memory (or over the render memory limit)");
}

static enum status output_limit(struct jrender *r, size_t pos)
{
    return jinja_fail(r, pos, ST_ERR_RANGE,
                      "output exceeds %u bytes (or a value nests too deeply to print)",
                      JINJA_MAX_OUTPUT);
}

/* ---- scopes -------------------------------------------------------------- */

static struct jscope *scope_new(struct arena *a, struct jscope *parent)
{
    struct jscope *sc = arena_calloc(a, 1, sizeof(*sc));
    if (sc)
        sc->parent = parent;
    return sc;
}

static struct jval *scope_find_local(struct jscope *sc, const char *name)
{
    for (size_t i = 0; i < sc->n; i++)
        if (!strcmp(sc->names[i], name))
            return &sc->vals[i];
    return NULL;
}

int jscope_set(struct arena *a, struct jscope *sc, const char *name, struct jval v)
{
    struct jval *slot = scope_find_local(sc, name);
    if (slot) {
        *slot = v;
        return 0;
    }
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 8;
        const char **nn = arena_alloc(a, cap * sizeof(*nn));
        struct jval *nv = arena_alloc(a, cap * sizeof(*nv));
        if (!nn || !nv)
            return -1;
        if (sc->n) {
            memcpy(nn, sc->names, sc->n * sizeof(*nn));
            memcpy(nv, sc->vals, sc->n * sizeof(*nv));
        }
        sc->names = nn;
        sc->vals = nv;
        sc->cap = cap;
    }
    sc->names[sc->n] = name;
    sc->vals[sc->n] = v;
    sc->n++;
    return 0;
}

static struct jval lookup(struct jscope *sc, const char *name)
{
    for (; sc; sc = sc->parent) {
        struct jval *v = scope_find_local(sc, name);
        if (v)
            return *v;
    }
    int fn = jinja_func_lookup(name);
    if (fn >= 0) {
        struct jval v = {.t = JV_FUNC};
        v.u.fn = fn;
        return v;
    }
    return jv_undef();
}

/* ---- output -------------------------------------------------------------- */

static enum status emit(struct jrender *r, size_t pos, const char *p, size_t n)
{
    enum status st = jinja_charge(r, pos, n / 64);
    if (st)
        return st;
    if (jbuf_put(r->out, p, n))
        return output_limit(r, pos);
    return ST_OK;
}

/* Runs `body` with output captured into a string value. */
static enum status capture(struct jrender *r, struct jscope *sc, const struct jnode *body,
                           struct jval *out)
{
    struct jbuf buf = {0}, *saved = r->out;
    r->out = &buf;
    enum status st = jinja_exec(r, sc, body);
    r->out = saved;
    if (!st) {
        char *s = arena_strndup(r->a, buf.p ? buf.p : "", buf.n);
        if (!s)
            st = nomem(r, body->pos);
        else
            *out = jv_str(s, buf.n);
    }
    jbuf_free(&buf);
    return st;
}

/* ---- iteration and indexing ---------------------------------------------- */

int jinja_iterate(struct jrender *r, struct jval v, struct jlist **out)
{
    struct jlist *l;
    switch (v.t) {
    case JV_UNDEF: l = jv_list_new(r->a, 0); break;
    case JV_LIST:
        /* a snapshot: appending inside the loop does not extend it */
        if (!(l = jv_list_new(r->a, 0)))
            return -1;
        l->v = v.u.l->v;
        l->n = l->cap = v.u.l->n;
        break;
    case JV_DICT:
    case JV_NS:
        if (!(l = jv_list_new(r->a, v.u.d->n)))
            return -1;
        for (size_t i = 0; i < v.u.d->n; i++)
            l->v[l->n++] = v.u.d->k[i];
        break;
    case JV_STR: {
        if (!(l = jv_list_new(r->a, v.u.s.n)))
            return -1;
        uint32_t cp;
        for (size_t i = 0; i < v.u.s.n;) {
            size_t k = jutf8_next(v.u.s.p + i, v.u.s.n - i, &cp);
            l->v[l->n++] = jv_str(v.u.s.p + i, k);
            i += k;
        }
        break;
    }
    default: return -2;
    }
    if (!l)
        return -1;
    *out = l;
    return 0;
}

/* Byte offsets of each code point of s, plus one for the end. */
static size_t *char_offsets(struct arena *a, const char *s, size_t n, size_t *count)
{
    size_t *off = arena_alloc(a, (n + 1) * sizeof(*off));
    if (!off)
        return NULL;
    size_t c = 0;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        off[c++] = i;
        i += jutf8_next(s + i, n - i, &cp);
    }
    off[c] = n;
    *count = c;
    return off;
}

/* Byte offset of code point k (k >= 0) of s; n when past the end. */
static size_t byte_offset(const char *s, size_t n, int64_t k)
{
    size_t i = 0;
    uint32_t cp;
    while (k-- > 0 && i < n)
        i += jutf8_next(s + i, n - i, &cp);
    return i;
}

static enum status get_index(struct jrender *r, size_t pos, struct jval obj, struct jval key,
                             struct jval *out)
{
    *out = jv_undef();
    if (obj.t == JV_DICT || obj.t == JV_NS) {
        struct jval *v = jv_dict_getv(obj.u.d, key);
        if (v)
            *out = *v;
        return ST_OK;
    }
    if ((obj.t == JV_LIST || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = key.t == JV_INT ? key.u.i : key.u.b;
        if (obj.t == JV_LIST) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0)
                i += n;
            if (i >= 0 && i < n)
                *out = obj.u.l->v[i];
            return ST_OK;
        }
        /* walk the code points instead of building an offset table, so
         * indexing a long string in a loop costs no memory */
        if (i < 0)
            i += (int64_t)jutf8_count(obj.u.s.p, obj.u.s.n);
        size_t at = byte_offset(obj.u.s.p, obj.u.s.n, i);
        if (i >= 0 && at < obj.u.s.n) {
            uint32_t cp;
            *out = jv_str(obj.u.s.p + at, jutf8_next(obj.u.s.p + at, obj.u.s.n - at, &cp));
        }
        return jinja_charge(r, pos, obj.u.s.n / 64);
    }
    /* jinja2 turns a failed subscript (wrong key type, not subscriptable)
     * into undefined rather than an error */
    return ST_OK;
}

static enum status get_attr(struct jrender *r, size_t pos, struct jval obj, const char *name,
                            struct jval *out)
{
    *out = jv_undef();
    if (obj.t == JV_LOOP) {
        struct jloop *lp = obj.u.loop;
        size_t n = lp->items->n, i = lp->index0;
        if (!strcmp(name, "index"))
            *out = jv_int((int64_t)i + 1);
        else if (!strcmp(name, "index0"))
            *out = jv_int((int64_t)i);
        else if (!strcmp(name, "revindex"))
            *out = jv_int((int64_t)(n - i));
        else if (!strcmp(name, "revindex0"))
            *out = jv_int((int64_t)(n - i - 1));
        else if (!strcmp(name, "first"))
            *out = jv_bool(i == 0);
        else if (!strcmp(name, "last"))
            *out = jv_bool(i + 1 == n);
        else if (!strcmp(name, "length"))
            *out = jv_int((int64_t)n);
        else if (!strcmp(name, "previtem")) {
            if (i > 0)
                *out = lp->items->v[i - 1];
        } else if (!strcmp(name, "nextitem")) {
            if (i + 1 < n)
                *out = lp->items->v[i + 1];
        } else if (!strcmp(name, "depth"))
            *out = jv_int(1);
        else if (!strcmp(name, "depth0"))
            *out = jv_int(0);
        return ST_OK;
    }
    if (obj.t == JV_DICT || obj.t == JV_NS) {
        struct jval *v = jv_dict_get(obj.u.d, name, strlen(name));
        if (v)
            *out = *v;
        return ST_OK;
    }
    (void)r;
    (void)pos;
    return ST_OK;
}

static int64_t clamp_index(int64_t v, int64_t len, int64_t lo, int64_t hi)
{
    if (v < 0)
        v += len;
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

/* Python slice semantics on lists and (code points of) strings. */
static enum status slice_values(struct jrender *r, size_t pos, struct jval obj, struct jval lo,
                                struct jval hi, struct jval step, struct jval *out)
{
    for (int k = 0; k < 3; k++) {
        struct jval v = k == 0 ? lo : k == 1 ? hi : step;
        if (v.t != JV_NONE && v.t != JV_UNDEF && v.t != JV_INT && v.t != JV_BOOL)
            return jinja_fail(r, pos, ST_ERR_INVALID, "slice indices must be integers, not %s",
                              jv_type_name(v));
    }
    int64_t s = step.t == JV_INT ? step.u.i : step.t == JV_BOOL ? step.u.b : 1;
    if (s == 0)
        return jinja_fail(r, pos, ST_ERR_INVALID, "slice step cannot be zero");
    if (s == INT64_MIN)
        s = -INT64_MAX;
    if (obj.t != JV_LIST && obj.t != JV_STR) {
        *out = jv_undef(); /* as get_index: jinja2 gives undefined */
        return ST_OK;
    }
    size_t count = obj.t == JV_STR ? jutf8_count(obj.u.s.p, obj.u.s.n) : obj.u.l->n, *off = NULL;
    int64_t len = (int64_t)count, a, b;
    int has_lo = lo.t == JV_INT || lo.t == JV_BOOL, has_hi = hi.t == JV_INT || hi.t == JV_BOOL;
    int64_t lov = lo.t == JV_INT ? lo.u.i : lo.t == JV_BOOL ? lo.u.b : 0;
    int64_t hiv = hi.t == JV_INT ? hi.u.i : hi.t == JV_BOOL ? hi.u.b : 0;
    if (s > 0) {
        a = has_lo ? clamp_index(lov, len, 0, len) : 0;
        b = has_hi ? clamp_index(hiv, len, 0, len) : len;
    } else {
        a = has_lo ? clamp_index(lov, len, -1, len - 1) : len - 1;
        b = has_hi ? clamp_index(hiv, len, -1, len - 1) : -1;
    }
    enum status st = jinja_charge(r, pos, (uint64_t)count);
    if (st)
        return st;
    if (obj.t == JV_LIST) {
        struct jlist *l = jv_list_new(r->a, 0);
        if (!l)
            return nomem(r, pos);
        l->is_tuple = obj.u.l->is_tuple;
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) {
            if (jv_list_push(r->a, l, obj.u.l->v[i]))
                return nomem(r, pos);
            if ((s > 0 && i > INT64_MAX - s) || (s < 0 && i < INT64_MIN - s))
                break;
        }
        *out = jv_list_val(l);
        return ST_OK;
    }
    if (s == 1) {
        /* a contiguous substring: point into the original */
        size_t from = a < b ? byte_offset(obj.u.s.p, obj.u.s.n, a) : 0;
        size_t to = a < b ? byte_offset(obj.u.s.p, obj.u.s.n, b) : 0;
        *out = jv_str(obj.u.s.p + from, to - from);
        return ST_OK;
    }
    if (!(off = char_offsets(r->a, obj.u.s.p, obj.u.s.n, &count)))
        return nomem(r, pos);
    char *buf = arena_alloc(r->a, obj.u.s.n + 1);
    if (!buf)
        return nomem(r, pos);
    size_t o = 0;
    for (int64_t i = a; s > 0 ? i < b : i > b; i += s) {
        size_t cl = off[i + 1] - off[i];
        memcpy(buf + o, obj.u.s.p + off[i], cl);
        o += cl;
        if ((s > 0 && i > INT64_MAX - s) || (s < 0 && i < INT64_MIN - s))
            break;
    }
    buf[o] = 0;
    *out = jv_str(buf, o);
    return ST_OK;
}

/* ---- operators ----------------------------------------------------------- */

static enum status type_error(struct jrender *r, size_t pos, const char *op, struct jval a,
                              struct jval b)
{
    if (a.t == JV_UNDEF || b.t == JV_UNDEF)
        return jinja_fail(r, pos, ST_ERR_INVALID, "undefined value used with '%s'", op);
    return jinja_fail(r, pos, ST_ERR_INVALID, "unsupported operand types for %s: '%s' and '%s'", op,
                      jv_type_name(a), jv_type_name(b));
}

static enum status concat_str(struct jrender *r, size_t pos, struct jval a, struct jval b,
                              struct jval *out)
{
    enum status st = jinja_charge(r, pos, (a.u.s.n + b.u.s.n) / 64);
    if (st)
        return st;
    char *s = arena_alloc(r->a, a.u.s.n + b.u.s.n + 1);
    if (!s)
        return nomem(r, pos);
    memcpy(s, a.u.s.p, a.u.s.n);
    memcpy(s + a.u.s.n, b.u.s.p, b.u.s.n);
    s[a.u.s.n + b.u.s.n] = 0;
    *out = jv_str(s, a.u.s.n + b.u.s.n);
    return ST_OK;
}

static enum status repeat(struct jrender *r, size_t pos, struct jval seq, int64_t times,
                          struct jval *out)
{
    size_t unit = seq.t == JV_STR ? seq.u.s.n : seq.u.l->n;
    /* an empty string or list repeated any number of times is empty: no
     * loop over the count (a template could give 10^15) */
    if (times < 0 || unit == 0)
        times = 0;
    if (unit && (uint64_t)times > JINJA_MAX_OUTPUT / unit)
        return jinja_fail(r, pos, ST_ERR_RANGE, "repetition result too large");
    enum status st = jinja_charge(r, pos, unit * (uint64_t)times);
    if (st)
        return st;
    if (seq.t == JV_STR) {
        size_t n = unit * (size_t)times;
        char *s = arena_alloc(r->a, n + 1);
        if (!s)
            return nomem(r, pos);
        for (int64_t i = 0; i < times; i++)
            memcpy(s + (size_t)i * unit, seq.u.s.p, unit);
        s[n] = 0;
        *out = jv_str(s, n);
        return ST_OK;
    }
    struct jlist *l = jv_list_new(r->a, unit * (size_t)times);
    if (!l)
        return nomem(r, pos);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < unit; k++)
            l->v[l->n++] = seq.u.l->v[k];
    *out = jv_list_val(l);
    return ST_OK;
}

static enum status arith(struct jrender *r, size_t pos, int op, struct jval a, struct jval b,
                         struct jval *out)
{
    static const char *const names[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    const char *opname = op >= JO_ADD && op <= JO_POW ? names[op] : "?";
    if (op == JO_ADD) {
        if (a.t == JV_STR && b.t == JV_STR)
            return concat_str(r, pos, a, b, out);
        if (a.t == JV_LIST && b.t == JV_LIST) {
            struct jlist *l = jv_list_new(r->a, a.u.l->n + b.u.l->n);
            if (!l)
                return nomem(r, pos);
            jv_list_extend(l, a.u.l);
            jv_list_extend(l, b.u.l);
            l->is_tuple = a.u.l->is_tuple;
            *out = jv_list_val(l);
            return jinja_charge(r, pos, l->n);
        }
    }
    if (op == JO_MOD && a.t == JV_STR) {
        /* printf-style formatting: a tuple gives the arguments, anything
         * else is the single argument */
        struct jargs fa = {&b, 1, NULL, NULL, 0};
        if (b.t == JV_LIST && b.u.l->is_tuple) {
            fa.pos = b.u.l->v;
            fa.npos = b.u.l->n;
        }
        return jinja_filter(r, pos, "format", a, &fa, out);
    }
    if (op == JO_MUL) {
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(r, pos, a, b.t == JV_INT ? b.u.i : b.u.b, out);
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(r, pos, b, a.t == JV_INT ? a.u.i : a.u.b, out);
    }
    if (!jv_is_number(a) || !jv_is_number(b))
        return type_error(r, pos, opname, a, b);
    int ints = a.t != JV_FLOAT && b.t != JV_FLOAT;
    if (ints && op != JO_DIV) {
        int64_t x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b, z = 0;
        int ovf = 0;
        switch (op) {
        case JO_ADD: ovf = __builtin_add_overflow(x, y, &z); break;
        case JO_SUB: ovf = __builtin_sub_overflow(x, y, &z); break;
        case JO_MUL: ovf = __builtin_mul_overflow(x, y, &z); break;
        case JO_FLOORDIV:
        case JO_MOD:
            if (y == 0)
                return jinja_fail(r, pos, ST_ERR_INVALID, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                ovf = op == JO_FLOORDIV;
                break;
            }
            z = op == JO_FLOORDIV ? x / y : x % y;
            if (op == JO_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0)))
                z--;
            if (op == JO_MOD && z != 0 && ((z < 0) != (y < 0)))
                z += y;
            break;
        case JO_POW:
            if (y < 0) {
                *out = jv_float(pow((double)x, (double)y));
                return ST_OK;
            }
            z = 1;
            for (int64_t i = 0; i < y && !ovf; i++) {
                ovf = __builtin_mul_overflow(z, x, &z);
                if (z == 0 || z == 1 || (z == -1 && x == -1 && i > 64))
                    break;
            }
            break;
        }
        if (ovf)
            return jinja_fail(r, pos, ST_ERR_RANGE, "integer overflow in '%s'", opname);
        *out = jv_int(z);
        return ST_OK;
    }
    double x = jv_num(a), y = jv_num(b), z = 0;
    switch (op) {
    case JO_ADD: z = x + y; break;
    case JO_SUB: z = x - y; break;
    case JO_MUL: z = x * y; break;
    case JO_DIV:
    case JO_FLOORDIV:
    case JO_MOD:
        if (y == 0)
            return jinja_fail(r, pos, ST_ERR_INVALID, "division by zero");
        if (op == JO_DIV)
            z = x / y;
        else if (op == JO_FLOORDIV)
            z = floor(x / y);
        else {
            z = fmod(x, y);
            if (z != 0 && ((z < 0) != (y < 0)))
                z += y;
        }
        break;
    case JO_POW: z = pow(x, y); break;
    }
    *out = jv_float(z);
    return ST_OK;
}

static enum status contains(struct jrender *r, size_t pos, struct jval hay, struct jval needle,
                            int *out)
{
    *out = 0;
    switch (hay.t) {
    case JV_UNDEF: return ST_OK;
    case JV_STR:
        if (needle.t != JV_STR)
            return jinja_fail(r, pos, ST_ERR_INVALID,
                              "'in <string>' requires string as left operand, not %s",
                              jv_type_name(needle));
        *out =
            needle.u.s.n == 0 || memmem(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
        return jinja_charge(r, pos, hay.u.s.n / 64);
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->n && !*out; i++)
            *out = jv_equal(hay.u.l->v[i], needle);
        return jinja_charge(r, pos, hay.u.l->n);
    case JV_DICT:
    case JV_NS: *out = jv_dict_getv(hay.u.d, needle) != NULL; return ST_OK;
    default:
        return jinja_fail(r, pos, ST_ERR_INVALID, "argument of type '%s' is not iterable",
                          jv_type_name(hay));
    }
}

static enum status compare_op(struct jrender *r, size_t pos, int op, struct jval a, struct jval b,
                              int *out)
{
    int ok = 1, c;
    switch (op) {
    case JO_EQ:
    case JO_NE:
        /* comparing big containers costs in proportion to their size */
        *out = jv_equal(a, b) == (op == JO_EQ);
        return jinja_charge(r, pos,
                            a.t == JV_LIST   ? a.u.l->n
                            : a.t == JV_DICT ? a.u.d->n
                            : a.t == JV_STR  ? a.u.s.n / 64
                                             : 0);
    case JO_IN: return contains(r, pos, b, a, out);
    case JO_NOTIN: {
        enum status st = contains(r, pos, b, a, out);
        *out = !*out;
        return st;
    }
    default: c = jv_compare(a, b, 0, &ok);
    }
    if (!ok) {
        static const char *const names[] = {"<", "<=", ">", ">="};
        return type_error(r, pos, names[op - JO_LT], a, b);
    }
    *out = op == JO_LT ? c < 0 : op == JO_LE ? c <= 0 : op == JO_GT ? c > 0 : c >= 0;
    return ST_OK;
}

/* ---- calls --------------------------------------------------------------- */

static enum status eval_args(struct jrender *r, struct jscope *sc, const struct jnode *n,
                             struct jargs *args)
{
    memset(args, 0, sizeof(*args));
    struct jval *pv = NULL, *kv = NULL;
    if (n->nkids && !(pv = arena_alloc(r->a, n->nkids * sizeof(*pv))))
        return nomem(r, n->pos);
    if (n->nkw && !(kv = arena_alloc(r->a, n->nkw * sizeof(*kv))))
        return nomem(r, n->pos);
    enum status st;
    for (size_t i = 0; i < n->nkids; i++)
        if ((st = jinja_eval(r, sc, n->kids[i], &pv[i])))
            return st;
    for (size_t i = 0; i < n->nkw; i++)
        if ((st = jinja_eval(r, sc, n->kvals[i], &kv[i])))
            return st;
    args->pos = pv;
    args->npos = n->nkids;
    args->knames = n->knames;
    args->kvals = kv;
    args->nkw = n->nkw;
    return ST_OK;
}

static enum status call_macro(struct jrender *r, struct jmacro *m, size_t pos,
                              const struct jargs *args, struct jmacro *caller, struct jval *out)
{
    const struct jnode *def = m->node;
    if (r->calls >= JINJA_MAX_CALL_DEPTH)
        return jinja_fail(r, pos, ST_ERR_RANGE, "macro calls nested deeper than %d",
                          JINJA_MAX_CALL_DEPTH);
    struct jscope *sc = scope_new(r->a, m->closure);
    struct jlist *varargs = jv_list_new(r->a, 0);
    struct jdict *kwargs = jv_dict_new(r->a, 0);
    if (!sc || !varargs || !kwargs)
        return nomem(r, pos);
    enum status st;
    for (size_t i = 0; i < def->nparams; i++) {
        struct jval v = jv_undef();
        int have = 0;
        if (i < args->npos) {
            v = args->pos[i];
            have = 1;
        }
        for (size_t k = 0; k < args->nkw; k++)
            if (!strcmp(args->knames[k], def->pnames[i])) {
                if (have)
                    return jinja_fail(r, pos, ST_ERR_INVALID,
                                      "macro got multiple values for argument '%s'",
                                      def->pnames[i]);
                v = args->kvals[k];
                have = 1;
            }
        if (!have && def->pdefs[i] && (st = jinja_eval(r, sc, def->pdefs[i], &v)))
            return st;
        if (jscope_set(r->a, sc, def->pnames[i], v))
            return nomem(r, pos);
    }
    varargs->is_tuple = 1;
    for (size_t i = def->nparams; i < args->npos; i++)
        if (jv_list_push(r->a, varargs, args->pos[i]))
            return nomem(r, pos);
    for (size_t k = 0; k < args->nkw; k++) {
        int is_param = 0;
        for (size_t i = 0; i < def->nparams; i++)
            is_param |= !strcmp(args->knames[k], def->pnames[i]);
        if (!is_param && jv_dict_set(r->a, kwargs, jv_cstr(args->knames[k]), args->kvals[k]))
            return nomem(r, pos);
    }
    struct jval cv = {.t = JV_MACRO};
    cv.u.m = caller;
    if (jscope_set(r->a, sc, "varargs", jv_list_val(varargs)) ||
        jscope_set(r->a, sc, "kwargs", jv_dict_val(kwargs)) ||
        (caller && jscope_set(r->a, sc, "caller", cv)))
        return nomem(r, pos);
    int saved_ctl = r->loop_ctl;
    r->calls++;
    st = capture(r, sc, def->d, out);
    r->calls--;
    r->loop_ctl = saved_ctl;
    return st;
}

static enum status eval_call(struct jrender *r, struct jscope *sc, const struct jnode *n,
                             struct jmacro *caller, struct jval *out)
{
    enum status st;
    struct jargs args;
    struct jval callee;
    const struct jnode *fn = n->a;
    if (fn->kind == JN_GETATTR) {
        struct jval obj;
        if ((st = jinja_eval(r, sc, fn->a, &obj)) || (st = eval_args(r, sc, n, &args)))
            return st;
        int found = 0;
        if ((st = jinja_method(r, n->pos, obj, fn->name, &args, out, &found)) || found)
            return st;
        if ((st = get_attr(r, fn->pos, obj, fn->name, &callee)))
            return st;
        if (callee.t == JV_UNDEF)
            return jinja_fail(r, n->pos, ST_ERR_INVALID, "'%s' object has no method '%s'",
                              jv_type_name(obj), fn->name);
    } else {
        if ((st = jinja_eval(r, sc, fn, &callee)) || (st = eval_args(r, sc, n, &args)))
            return st;
        if (callee.t == JV_UNDEF)
            return jinja_fail(r, n->pos, ST_ERR_INVALID, "'%s' is undefined",
                              fn->kind == JN_NAME ? fn->name : "callee");
    }
    if (callee.t == JV_MACRO)
        return call_macro(r, callee.u.m, n->pos, &args, caller, out);
    if (caller)
        return jinja_fail(r, n->pos, ST_ERR_INVALID, "a call block needs a macro");
    if (callee.t == JV_FUNC)
        return jinja_call_func(r, n->pos, callee.u.fn, &args, out);
    return jinja_fail(r, n->pos, ST_ERR_INVALID, "'%s' object is not callable",
                      jv_type_name(callee));
}

/* ---- expressions --------------------------------------------------------- */

static enum status eval_inner(struct jrender *r, struct jscope *sc, const struct jnode *n,
                              struct jval *out)
{
    enum status st;
    struct jval a, b;
    switch (n->kind) {
    case JN_LITERAL: *out = n->lit; return ST_OK;
    case JN_NAME: *out = lookup(sc, n->name); return ST_OK;
    case JN_LIST:
    case JN_TUPLE: {
        struct jlist *l = jv_list_new(r->a, n->nkids);
        if (!l)
            return nomem(r, n->pos);
        l->is_tuple = n->kind == JN_TUPLE;
        for (size_t i = 0; i < n->nkids; i++)
            if ((st = jinja_eval(r, sc, n->kids[i], &l->v[l->n++])))
                return st;
        *out = jv_list_val(l);
        return ST_OK;
    }
    case JN_DICT: {
        struct jdict *d = jv_dict_new(r->a, n->nkids / 2);
        if (!d)
            return nomem(r, n->pos);
        for (size_t i = 0; i + 1 < n->nkids; i += 2) {
            if ((st = jinja_eval(r, sc, n->kids[i], &a)) ||
                (st = jinja_eval(r, sc, n->kids[i + 1], &b)))
                return st;
            if (a.t == JV_LIST || a.t == JV_DICT || a.t == JV_NS || a.t == JV_UNDEF)
                return jinja_fail(r, n->kids[i]->pos, ST_ERR_INVALID, "unhashable key type '%s'",
                                  jv_type_name(a));
            if (jv_dict_set(r->a, d, a, b))
                return nomem(r, n->pos);
        }
        *out = jv_dict_val(d);
        return ST_OK;
    }
    case JN_GETATTR:
        if ((st = jinja_eval(r, sc, n->a, &a)))
            return st;
        return get_attr(r, n->pos, a, n->name, out);
    case JN_GETITEM:
        if ((st = jinja_eval(r, sc, n->a, &a)) || (st = jinja_eval(r, sc, n->b, &b)))
            return st;
        if ((a.t == JV_LOOP) && b.t == JV_STR) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)b.u.s.n, b.u.s.p);
            return get_attr(r, n->pos, a, name, out);
        }
        return get_index(r, n->pos, a, b, out);
    case JN_SLICE: {
        struct jval lo = jv_none(), hi = jv_none(), step = jv_none();
        if ((st = jinja_eval(r, sc, n->a, &a)) || (n->b && (st = jinja_eval(r, sc, n->b, &lo))) ||
            (n->c && (st = jinja_eval(r, sc, n->c, &hi))) ||
            (n->d && (st = jinja_eval(r, sc, n->d, &step))))
            return st;
        return slice_values(r, n->pos, a, lo, hi, step, out);
    }
    case JN_CALL: return eval_call(r, sc, n, NULL, out);
    case JN_FILTER: {
        struct jargs args;
        if ((st = jinja_eval(r, sc, n->a, &a)) || (st = eval_args(r, sc, n, &args)))
            return st;
        return jinja_filter(r, n->pos, n->name, a, &args, out);
    }
    case JN_TEST: {
        struct jargs args;
        int res;
        if ((st = jinja_eval(r, sc, n->a, &a)) || (st = eval_args(r, sc, n, &args)) ||
            (st = jinja_test(r, n->pos, n->name, a, &args, &res)))
            return st;
        *out = jv_bool(n->op ? !res : res);
        return ST_OK;
    }
    case JN_NOT:
        if ((st = jinja_eval(r, sc, n->a, &a)))
            return st;
        *out = jv_bool(!jv_truthy(a));
        return ST_OK;
    case JN_NEG:
    case JN_POS:
        if ((st = jinja_eval(r, sc, n->a, &a)))
            return st;
        if (!jv_is_number(a))
            return jinja_fail(r, n->pos, ST_ERR_INVALID, "bad operand type for unary %c: '%s'",
                              n->kind == JN_NEG ? '-' : '+', jv_type_name(a));
        if (n->kind == JN_POS)
            *out = a.t == JV_BOOL ? jv_int(a.u.b) : a;
        else if (a.t == JV_FLOAT)
            *out = jv_float(-a.u.f);
        else if (a.t == JV_INT && a.u.i == INT64_MIN)
            return jinja_fail(r, n->pos, ST_ERR_RANGE, "integer overflow in unary -");
        else
            *out = jv_int(a.t == JV_INT ? -a.u.i : -a.u.b);
        return ST_OK;
    case JN_BINARY:
        if ((st = jinja_eval(r, sc, n->a, &a)) || (st = jinja_eval(r, sc, n->b, &b)))
            return st;
        if (n->op == JO_CONCAT) {
            struct jval sa, sb;
            if (jv_to_string(r->a, a, &sa) || jv_to_string(r->a, b, &sb))
                return nomem(r, n->pos);
            return concat_str(r, n->pos, sa, sb, out);
        }
        return arith(r, n->pos, n->op, a, b, out);
    case JN_COMPARE: {
        if ((st = jinja_eval(r, sc, n->kids[0], &a)))
            return st;
        int res = 1;
        for (size_t i = 1; i < n->nkids && res; i++) {
            if ((st = jinja_eval(r, sc, n->kids[i], &b)) ||
                (st = compare_op(r, n->kids[i]->pos, n->ops[i - 1], a, b, &res)))
                return st;
            a = b;
        }
        *out = jv_bool(res);
        return ST_OK;
    }
    case JN_AND:
    case JN_OR:
        if ((st = jinja_eval(r, sc, n->a, &a)))
            return st;
        if (jv_truthy(a) == (n->kind == JN_OR)) {
            *out = a;
            return ST_OK;
        }
        return jinja_eval(r, sc, n->b, out);
    case JN_COND:
        if ((st = jinja_eval(r, sc, n->a, &a)))
            return st;
        if (jv_truthy(a))
            return jinja_eval(r, sc, n->b, out);
        if (n->c)
            return jinja_eval(r, sc, n->c, out);
        *out = jv_undef();
        return ST_OK;
    default:
        return jinja_fail(r, n->pos, ST_ERR_INTERNAL, "statement node evaluated as expression");
    }
}

enum status jinja_eval(struct jrender *r, struct jscope *sc, const struct jnode *n,
                       struct jval *out)
{
    enum status st = jinja_charge(r, n->pos, 1);
    if (st)
        return st;
    if (++r->depth > JINJA_MAX_EVAL_DEPTH)
        st = jinja_fail(r, n->pos, ST_ERR_RANGE, "expression nested too deeply");
    else
        st = eval_inner(r, sc, n, out);
    r->depth--;
    return st;
}

/* ---- statements ---------------------------------------------------------- */

static enum status assign(struct jrender *r, struct jscope *sc, const struct jnode *target,
                          struct jval v)
{
    if (target->kind == JN_NAME) {
        if (jscope_set(r->a, sc, target->name, v))
            return nomem(r, target->pos);
        return ST_OK;
    }
    if (target->kind == JN_GETATTR) {
        struct jval obj = lookup(sc, target->a->name);
        if (obj.t != JV_NS)
            return jinja_fail(r, target->pos, ST_ERR_INVALID,
                              "cannot assign attribute on non-namespace object '%s'",
                              target->a->name);
        if (jv_dict_set(r->a, obj.u.d, jv_cstr(target->name), v))
            return nomem(r, target->pos);
        return ST_OK;
    }
    /* tuple unpacking */
    struct jlist *items;
    int rc = v.t == JV_UNDEF ? -2 : jinja_iterate(r, v, &items);
    if (rc == -1)
        return nomem(r, target->pos);
    if (rc == -2)
        return jinja_fail(r, target->pos, ST_ERR_INVALID, "cannot unpack non-iterable '%s'",
                          jv_type_name(v));
    if (items->n != target->nkids)
        return jinja_fail(r, target->pos, ST_ERR_INVALID, "cannot unpack %zu values into %zu names",
                          items->n, target->nkids);
    for (size_t i = 0; i < target->nkids; i++) {
        enum status st = assign(r, sc, target->kids[i], items->v[i]);
        if (st)
            return st;
    }
    return ST_OK;
}

static enum status exec_for(struct jrender *r, struct jscope *sc, const struct jnode *n)
{
    enum status st;
    struct jval iter;
    struct jlist *items;
    if ((st = jinja_eval(r, sc, n->b, &iter)))
        return st;
    int rc = jinja_iterate(r, iter, &items);
    if (rc == -1)
        return nomem(r, n->pos);
    if (rc == -2)
        return jinja_fail(r, n->b->pos, ST_ERR_INVALID, "'%s' object is not iterable",
                          jv_type_name(iter));
    struct jscope *it = scope_new(r->a, sc);
    struct jloop *lp = arena_calloc(r->a, 1, sizeof(*lp));
    if (!it || !lp)
        return nomem(r, n->pos);
    if (n->c) {
        /* loop filtering happens before the loop, so loop.length and
         * loop.last count only the items that pass */
        struct jlist *kept = jv_list_new(r->a, items->n);
        if (!kept)
            return nomem(r, n->pos);
        for (size_t i = 0; i < items->n; i++) {
            struct jval cond;
            it->n = 0;
            if ((st = jinja_charge(r, n->pos, 1)) || (st = assign(r, it, n->a, items->v[i])) ||
                (st = jinja_eval(r, it, n->c, &cond)))
                return st;
            if (jv_truthy(cond))
                kept->v[kept->n++] = items->v[i];
        }
        items = kept;
    }
    lp->items = items;
    struct jval loopv = {.t = JV_LOOP};
    loopv.u.loop = lp;
    for (size_t i = 0; i < items->n; i++) {
        lp->index0 = i;
        it->n = 0;
        if ((st = jinja_charge(r, n->pos, 1)) || (st = assign(r, it, n->a, items->v[i])))
            return st;
        if (jscope_set(r->a, it, "loop", loopv))
            return nomem(r, n->pos);
        if ((st = jinja_exec(r, it, n->d)))
            return st;
        int ctl = r->loop_ctl;
        r->loop_ctl = 0;
        if (ctl == 1)
            break;
    }
    if (!items->n && n->e)
        return jinja_exec(r, sc, n->e);
    return ST_OK;
}

static enum status apply_filter_chain(struct jrender *r, struct jscope *sc, const struct jnode *f,
                                      struct jval v, struct jval *out)
{
    enum status st;
    if (f->a && (st = apply_filter_chain(r, sc, f->a, v, &v)))
        return st;
    struct jargs args;
    if ((st = eval_args(r, sc, f, &args)))
        return st;
    return jinja_filter(r, f->pos, f->name, v, &args, out);
}

static enum status exec_inner(struct jrender *r, struct jscope *sc, const struct jnode *n)
{
    enum status st;
    struct jval v;
    switch (n->kind) {
    case JN_BODY:
        for (size_t i = 0; i < n->nkids && !r->loop_ctl; i++)
            if ((st = jinja_exec(r, sc, n->kids[i])))
                return st;
        return ST_OK;
    case JN_TEXT: return emit(r, n->pos, n->lit.u.s.p, n->lit.u.s.n);
    case JN_OUTPUT:
        if ((st = jinja_eval(r, sc, n->a, &v)))
            return st;
        if (jv_write_str(r->out, v))
            return output_limit(r, n->pos);
        return ST_OK;
    case JN_IF:
        if ((st = jinja_eval(r, sc, n->a, &v)))
            return st;
        if (jv_truthy(v))
            return jinja_exec(r, sc, n->b);
        return n->c ? jinja_exec(r, sc, n->c) : ST_OK;
    case JN_FOR: return exec_for(r, sc, n);
    case JN_SET:
        if ((st = jinja_eval(r, sc, n->b, &v)))
            return st;
        return assign(r, sc, n->a, v);
    case JN_SET_BLOCK:
        if ((st = capture(r, sc, n->b, &v)))
            return st;
        return assign(r, sc, n->a, v);
    case JN_MACRO: {
        struct jmacro *m = arena_calloc(r->a, 1, sizeof(*m));
        if (!m)
            return nomem(r, n->pos);
        m->node = n;
        m->closure = sc;
        v.t = JV_MACRO;
        v.u.m = m;
        if (jscope_set(r->a, sc, n->name, v))
            return nomem(r, n->pos);
        return ST_OK;
    }
    case JN_CALL_BLOCK: {
        struct jmacro *caller = arena_calloc(r->a, 1, sizeof(*caller));
        if (!caller)
            return nomem(r, n->pos);
        caller->node = n;
        caller->closure = sc;
        if ((st = eval_call(r, sc, n->a, caller, &v)))
            return st;
        if (jv_write_str(r->out, v))
            return output_limit(r, n->pos);
        return ST_OK;
    }
    case JN_FILTER_BLOCK:
        if ((st = capture(r, sc, n->d, &v)) || (st = apply_filter_chain(r, sc, n->a, v, &v)))
            return st;
        if (jv_write_str(r->out, v))
            return output_limit(r, n->pos);
        return ST_OK;
    case JN_BREAK: r->loop_ctl = 1; return ST_OK;
    case JN_CONTINUE: r->loop_ctl = 2; return ST_OK;
    default: return jinja_fail(r, n->pos, ST_ERR_INTERNAL, "expression executed as statement");
    }
}

enum status jinja_exec(struct jrender *r, struct jscope *sc, const struct jnode *n)
{
    enum status st = jinja_charge(r, n->pos, 1);
    if (st)
        return st;
    if (++r->depth > JINJA_MAX_EVAL_DEPTH)
        st = jinja_fail(r, n->pos, ST_ERR_RANGE, "template nested too deeply");
    else
        st = exec_inner(r, sc, n);
    r->depth--;
    return st;
}
