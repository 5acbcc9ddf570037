/*
 * jinja_parser.c - recursive-descent parser from tokens to the syntax tree.
 *
 * Operator precedence and the grammar of tests, filters and tuples follow
 * jinja2's parser.py, so templates written for transformers parse the same.
 * Unlike jinja2, an unknown filter or test is an error only when it runs, so
 * a template with one in a branch that is never taken still loads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

struct parser {
    struct jinja_program *prog;
    struct arena *a;
    struct jtoken *t;
    size_t n, i;
    int depth;
    int loop_depth; /* for-loops around the current point, for break/continue */
    char *err;
    size_t errlen;
};

struct nvec {
    struct jnode **v;
    size_t n, cap;
};

/* ---- helpers ------------------------------------------------------------- */

static enum status pfail(struct parser *p, size_t pos, const char *fmt, const char *arg)
{
    int line, col;
    jinja_line_col(p->prog->src, p->prog->len, pos, &line, &col);
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
    return status_fail(p->err, p->errlen, ST_ERR_FORMAT, "line %d:%d: %s", line, col, msg);
}

static enum status nomem(struct parser *p)
{
    return status_fail(p->err, p->errlen, ST_ERR_NOMEM, "out of memory while parsing template");
}

static struct jtoken *cur(struct parser *p)
{
    return &p->t[p->i];
}

static struct jtoken *peek_at(struct parser *p, size_t k)
{
    return p->i + k < p->n ? &p->t[p->i + k] : &p->t[p->n - 1];
}

static void advance(struct parser *p)
{
    if (p->i + 1 < p->n)
        p->i++;
}

static int tok_op(const struct jtoken *t, const char *op)
{
    return t->kind == JT_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}

static int tok_name(const struct jtoken *t, const char *name)
{
    return t->kind == JT_NAME && !strcmp(t->s, name);
}

static const char *tok_desc(const struct jtoken *t)
{
    switch (t->kind) {
    case JT_EOF: return "end of template";
    case JT_TEXT: return "template data";
    case JT_VAR_BEGIN: return "'{{'";
    case JT_VAR_END: return "'}}'";
    case JT_BLOCK_BEGIN: return "'{%'";
    case JT_BLOCK_END: return "'%}'";
    case JT_NAME: return t->s;
    case JT_STRING: return "string";
    case JT_INT:
    case JT_FLOAT: return "number";
    case JT_OP: return "operator";
    }
    return "token";
}

static enum status expect_op(struct parser *p, const char *op)
{
    if (!tok_op(cur(p), op)) {
        char what[64];
        snprintf(what, sizeof(what), "'%s'", op);
        return pfail(p, cur(p)->pos, "expected %s", what);
    }
    advance(p);
    return ST_OK;
}

static enum status expect_kind(struct parser *p, enum jtok kind, const char *what)
{
    if (cur(p)->kind != kind)
        return pfail(p, cur(p)->pos, "expected %s", what);
    advance(p);
    return ST_OK;
}

static struct jnode *node_new(struct parser *p, enum jnode_kind kind, size_t pos)
{
    struct jnode *n = arena_calloc(p->a, 1, sizeof(*n));
    if (n) {
        n->kind = kind;
        n->pos = pos;
    }
    return n;
}

static int nvec_push(struct parser *p, struct nvec *v, struct jnode *n)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        struct jnode **nv = arena_alloc(p->a, cap * sizeof(*nv));
        if (!nv)
            return -1;
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof(*nv));
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return 0;
}

static enum status enter(struct parser *p)
{
    if (++p->depth <= JINJA_MAX_PARSE_DEPTH)
        return ST_OK;
    int line, col;
    jinja_line_col(p->prog->src, p->prog->len, cur(p)->pos, &line, &col);
    return status_fail(p->err, p->errlen, ST_ERR_RANGE,
                       "line %d:%d: template nested deeper than %d levels", line, col,
                       JINJA_MAX_PARSE_DEPTH);
}

/* ---- expressions --------------------------------------------------------- */

static enum status parse_expression(struct parser *p, int with_cond, struct jnode **out);
static enum status parse_unary(struct parser *p, int with_filter, struct jnode **out);

static int starts_expression(const struct jtoken *t)
{
    if (t->kind == JT_NAME || t->kind == JT_STRING || t->kind == JT_INT || t->kind == JT_FLOAT)
        return 1;
    return tok_op(t, "(") || tok_op(t, "[") || tok_op(t, "{") || tok_op(t, "-") || tok_op(t, "+");
}

/* Call arguments after '(' up to and including ')'. */
static enum status parse_args(struct parser *p, struct jnode *n)
{
    struct nvec pos = {0}, kv = {0};
    const char **names = NULL;
    size_t nnames = 0, cap = 0;
    enum status st;
    while (!tok_op(cur(p), ")")) {
        if (pos.n + kv.n && (st = expect_op(p, ",")))
            return st;
        if (tok_op(cur(p), ")"))
            break;
        if (cur(p)->kind == JT_NAME && tok_op(peek_at(p, 1), "=")) {
            if (nnames == cap) {
                cap = cap ? cap * 2 : 4;
                const char **nn = arena_alloc(p->a, cap * sizeof(*nn));
                if (!nn)
                    return nomem(p);
                if (nnames)
                    memcpy(nn, names, nnames * sizeof(*nn));
                names = nn;
            }
            names[nnames++] = cur(p)->s;
            advance(p);
            advance(p);
            struct jnode *v;
            if ((st = parse_expression(p, 1, &v)))
                return st;
            if (nvec_push(p, &kv, v))
                return nomem(p);
        } else {
            if (kv.n)
                return pfail(p, cur(p)->pos, "positional argument after keyword argument%s", NULL);
            struct jnode *v;
            if ((st = parse_expression(p, 1, &v)))
                return st;
            if (nvec_push(p, &pos, v))
                return nomem(p);
        }
    }
    advance(p);
    n->kids = pos.v;
    n->nkids = pos.n;
    n->knames = names;
    n->kvals = kv.v;
    n->nkw = kv.n;
    return ST_OK;
}

static enum status parse_primary(struct parser *p, struct jnode **out)
{
    struct jtoken *t = cur(p);
    struct jnode *n;
    enum status st;
    if (t->kind == JT_NAME) {
        n = node_new(p, JN_LITERAL, t->pos);
        if (!n)
            return nomem(p);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
            n->lit = jv_bool(1);
        else if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
            n->lit = jv_bool(0);
        else if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
            n->lit = jv_none();
        else {
            n->kind = JN_NAME;
            n->name = t->s;
        }
        advance(p);
    } else if (t->kind == JT_STRING) {
        n = node_new(p, JN_LITERAL, t->pos);
        if (!n)
            return nomem(p);
        n->lit = jv_str(t->s, t->n);
        advance(p);
        /* adjacent string literals concatenate */
        while (cur(p)->kind == JT_STRING) {
            size_t len = n->lit.u.s.n + cur(p)->n;
            char *s = arena_alloc(p->a, len + 1);
            if (!s)
                return nomem(p);
            memcpy(s, n->lit.u.s.p, n->lit.u.s.n);
            memcpy(s + n->lit.u.s.n, cur(p)->s, cur(p)->n);
            s[len] = 0;
            n->lit = jv_str(s, len);
            advance(p);
        }
    } else if (t->kind == JT_INT || t->kind == JT_FLOAT) {
        n = node_new(p, JN_LITERAL, t->pos);
        if (!n)
            return nomem(p);
        n->lit = t->kind == JT_INT ? jv_int(t->i) : jv_float(t->f);
        advance(p);
    } else if (tok_op(t, "(")) {
        advance(p);
        if (tok_op(cur(p), ")")) {
            advance(p);
            if (!(n = node_new(p, JN_TUPLE, t->pos)))
                return nomem(p);
        } else {
            struct jnode *e;
            if ((st = parse_expression(p, 1, &e)))
                return st;
            if (tok_op(cur(p), ",")) {
                struct nvec v = {0};
                if (nvec_push(p, &v, e))
                    return nomem(p);
                while (tok_op(cur(p), ",")) {
                    advance(p);
                    if (tok_op(cur(p), ")"))
                        break;
                    if ((st = parse_expression(p, 1, &e)))
                        return st;
                    if (nvec_push(p, &v, e))
                        return nomem(p);
                }
                if (!(n = node_new(p, JN_TUPLE, t->pos)))
                    return nomem(p);
                n->kids = v.v;
                n->nkids = v.n;
            } else {
                n = e;
            }
            if ((st = expect_op(p, ")")))
                return st;
        }
    } else if (tok_op(t, "[") || tok_op(t, "{")) {
        int is_dict = tok_op(t, "{");
        const char *close = is_dict ? "}" : "]";
        advance(p);
        struct nvec v = {0};
        while (!tok_op(cur(p), close)) {
            if (v.n && (st = expect_op(p, ",")))
                return st;
            if (tok_op(cur(p), close))
                break;
            struct jnode *e;
            if ((st = parse_expression(p, 1, &e)))
                return st;
            if (nvec_push(p, &v, e))
                return nomem(p);
            if (is_dict) {
                if ((st = expect_op(p, ":")))
                    return st;
                if ((st = parse_expression(p, 1, &e)))
                    return st;
                if (nvec_push(p, &v, e))
                    return nomem(p);
            }
        }
        advance(p);
        if (!(n = node_new(p, is_dict ? JN_DICT : JN_LIST, t->pos)))
            return nomem(p);
        n->kids = v.v;
        n->nkids = v.n;
    } else {
        return pfail(p, t->pos, "unexpected %s in expression", tok_desc(t));
    }
    *out = n;
    return ST_OK;
}

static enum status parse_postfix(struct parser *p, struct jnode **io)
{
    enum status st;
    for (;;) {
        struct jtoken *t = cur(p);
        struct jnode *n;
        if (tok_op(t, ".")) {
            advance(p);
            struct jtoken *nt = cur(p);
            if (nt->kind == JT_NAME) {
                if (!(n = node_new(p, JN_GETATTR, t->pos)))
                    return nomem(p);
                n->name = nt->s;
            } else if (nt->kind == JT_INT) {
                if (!(n = node_new(p, JN_GETITEM, t->pos)))
                    return nomem(p);
                if (!(n->b = node_new(p, JN_LITERAL, nt->pos)))
                    return nomem(p);
                n->b->lit = jv_int(nt->i);
            } else {
                return pfail(p, nt->pos, "expected attribute name after '.'%s", NULL);
            }
            advance(p);
            n->a = *io;
        } else if (tok_op(t, "[")) {
            advance(p);
            struct jnode *lo = NULL, *hi = NULL, *step = NULL;
            if (!tok_op(cur(p), ":") && (st = parse_expression(p, 1, &lo)))
                return st;
            if (tok_op(cur(p), ":")) {
                advance(p);
                if (!tok_op(cur(p), "]") && !tok_op(cur(p), ":") &&
                    (st = parse_expression(p, 1, &hi)))
                    return st;
                if (tok_op(cur(p), ":")) {
                    advance(p);
                    if (!tok_op(cur(p), "]") && (st = parse_expression(p, 1, &step)))
                        return st;
                }
                if (!(n = node_new(p, JN_SLICE, t->pos)))
                    return nomem(p);
                n->b = lo;
                n->c = hi;
                n->d = step;
            } else {
                if (!(n = node_new(p, JN_GETITEM, t->pos)))
                    return nomem(p);
                n->b = lo;
            }
            if ((st = expect_op(p, "]")))
                return st;
            n->a = *io;
        } else if (tok_op(t, "(")) {
            advance(p);
            if (!(n = node_new(p, JN_CALL, (*io)->pos)))
                return nomem(p);
            n->a = *io;
            if ((st = parse_args(p, n)))
                return st;
        } else {
            return ST_OK;
        }
        *io = n;
    }
}

static enum status parse_filter_expr(struct parser *p, struct jnode **io)
{
    enum status st;
    for (;;) {
        struct jtoken *t = cur(p);
        if (tok_op(t, "|")) {
            advance(p);
            if (cur(p)->kind != JT_NAME)
                return pfail(p, cur(p)->pos, "expected filter name after '|'%s", NULL);
            struct jnode *n = node_new(p, JN_FILTER, cur(p)->pos);
            if (!n)
                return nomem(p);
            n->name = cur(p)->s;
            n->a = *io;
            advance(p);
            if (tok_op(cur(p), "(")) {
                advance(p);
                if ((st = parse_args(p, n)))
                    return st;
            }
            *io = n;
        } else if (tok_name(t, "is")) {
            advance(p);
            struct jnode *n = node_new(p, JN_TEST, t->pos);
            if (!n)
                return nomem(p);
            if (tok_name(cur(p), "not")) {
                n->op = 1;
                advance(p);
            }
            if (cur(p)->kind != JT_NAME)
                return pfail(p, cur(p)->pos, "expected test name after 'is'%s", NULL);
            n->name = cur(p)->s;
            n->a = *io;
            advance(p);
            struct jtoken *at = cur(p);
            if (tok_op(at, "(")) {
                advance(p);
                if ((st = parse_args(p, n)))
                    return st;
            } else if ((at->kind == JT_NAME || at->kind == JT_STRING || at->kind == JT_INT ||
                        at->kind == JT_FLOAT || tok_op(at, "[") || tok_op(at, "{")) &&
                       !tok_name(at, "else") && !tok_name(at, "or") && !tok_name(at, "and") &&
                       !tok_name(at, "if") && !tok_name(at, "in") && !tok_name(at, "not") &&
                       !tok_name(at, "is")) {
                struct jnode *arg;
                if ((st = parse_primary(p, &arg)) || (st = parse_postfix(p, &arg)))
                    return st;
                if (!(n->kids = arena_alloc(p->a, sizeof(*n->kids))))
                    return nomem(p);
                n->kids[0] = arg;
                n->nkids = 1;
            }
            *io = n;
        } else {
            return ST_OK;
        }
    }
}

static enum status parse_unary(struct parser *p, int with_filter, struct jnode **out)
{
    enum status st;
    if ((st = enter(p)))
        return st;
    struct jtoken *t = cur(p);
    struct jnode *n;
    if (tok_op(t, "-") || tok_op(t, "+")) {
        advance(p);
        if (!(n = node_new(p, tok_op(t, "-") ? JN_NEG : JN_POS, t->pos)))
            return nomem(p);
        if ((st = parse_unary(p, 0, &n->a)))
            return st;
    } else {
        if ((st = parse_primary(p, &n)) || (st = parse_postfix(p, &n)))
            return st;
    }
    if (with_filter && (st = parse_filter_expr(p, &n)))
        return st;
    p->depth--;
    *out = n;
    return ST_OK;
}

static enum status binary(struct parser *p, size_t pos, int op, struct jnode *l, struct jnode *r,
                          struct jnode **out)
{
    struct jnode *n = node_new(p, JN_BINARY, pos);
    if (!n)
        return nomem(p);
    n->op = op;
    n->a = l;
    n->b = r;
    *out = n;
    return ST_OK;
}

static enum status parse_pow(struct parser *p, struct jnode **out)
{
    enum status st = parse_unary(p, 1, out);
    while (!st && tok_op(cur(p), "**")) {
        size_t pos = cur(p)->pos;
        advance(p);
        struct jnode *r;
        if ((st = parse_unary(p, 1, &r)))
            return st;
        st = binary(p, pos, JO_POW, *out, r, out);
    }
    return st;
}

static enum status parse_math2(struct parser *p, struct jnode **out)
{
    enum status st = parse_pow(p, out);
    for (;;) {
        if (st)
            return st;
        struct jtoken *t = cur(p);
        int op = tok_op(t, "*")    ? JO_MUL
                 : tok_op(t, "/")  ? JO_DIV
                 : tok_op(t, "//") ? JO_FLOORDIV
                 : tok_op(t, "%")  ? JO_MOD
                                   : 0;
        if (!op)
            return ST_OK;
        advance(p);
        struct jnode *r;
        if ((st = parse_pow(p, &r)))
            return st;
        st = binary(p, t->pos, op, *out, r, out);
    }
}

static enum status parse_concat(struct parser *p, struct jnode **out)
{
    enum status st = parse_math2(p, out);
    while (!st && tok_op(cur(p), "~")) {
        size_t pos = cur(p)->pos;
        advance(p);
        struct jnode *r;
        if ((st = parse_math2(p, &r)))
            return st;
        st = binary(p, pos, JO_CONCAT, *out, r, out);
    }
    return st;
}

static enum status parse_math1(struct parser *p, struct jnode **out)
{
    enum status st = parse_concat(p, out);
    for (;;) {
        if (st)
            return st;
        struct jtoken *t = cur(p);
        int op = tok_op(t, "+") ? JO_ADD : tok_op(t, "-") ? JO_SUB : 0;
        if (!op)
            return ST_OK;
        advance(p);
        struct jnode *r;
        if ((st = parse_concat(p, &r)))
            return st;
        st = binary(p, t->pos, op, *out, r, out);
    }
}

static enum status parse_compare(struct parser *p, struct jnode **out)
{
    enum status st;
    struct jnode *first;
    if ((st = parse_math1(p, &first)))
        return st;
    struct nvec kids = {0};
    int *ops = NULL;
    size_t nops = 0, cap = 0;
    size_t pos = cur(p)->pos;
    for (;;) {
        struct jtoken *t = cur(p);
        int op = tok_op(t, "==")     ? JO_EQ
                 : tok_op(t, "!=")   ? JO_NE
                 : tok_op(t, "<")    ? JO_LT
                 : tok_op(t, "<=")   ? JO_LE
                 : tok_op(t, ">")    ? JO_GT
                 : tok_op(t, ">=")   ? JO_GE
                 : tok_name(t, "in") ? JO_IN
                                     : 0;
        if (!op && tok_name(t, "not") && tok_name(peek_at(p, 1), "in")) {
            op = JO_NOTIN;
            advance(p);
        }
        if (!op)
            break;
        advance(p);
        if (!kids.n && nvec_push(p, &kids, first))
            return nomem(p);
        struct jnode *r;
        if ((st = parse_math1(p, &r)))
            return st;
        if (nvec_push(p, &kids, r))
            return nomem(p);
        if (nops == cap) {
            cap = cap ? cap * 2 : 4;
            int *no = arena_alloc(p->a, cap * sizeof(*no));
            if (!no)
                return nomem(p);
            if (nops)
                memcpy(no, ops, nops * sizeof(*no));
            ops = no;
        }
        ops[nops++] = op;
    }
    if (!nops) {
        *out = first;
        return ST_OK;
    }
    struct jnode *n = node_new(p, JN_COMPARE, pos);
    if (!n)
        return nomem(p);
    n->kids = kids.v;
    n->nkids = kids.n;
    n->ops = ops;
    *out = n;
    return ST_OK;
}

static enum status parse_not(struct parser *p, struct jnode **out)
{
    enum status st;
    if (tok_name(cur(p), "not")) {
        struct jnode *n = node_new(p, JN_NOT, cur(p)->pos);
        if (!n)
            return nomem(p);
        advance(p);
        if ((st = enter(p)) || (st = parse_not(p, &n->a)))
            return st;
        p->depth--;
        *out = n;
        return ST_OK;
    }
    return parse_compare(p, out);
}

static enum status parse_logic(struct parser *p, int is_or, struct jnode **out)
{
    enum status st = is_or ? parse_logic(p, 0, out) : parse_not(p, out);
    const char *kw = is_or ? "or" : "and";
    while (!st && tok_name(cur(p), kw)) {
        struct jnode *n = node_new(p, is_or ? JN_OR : JN_AND, cur(p)->pos);
        if (!n)
            return nomem(p);
        advance(p);
        n->a = *out;
        st = is_or ? parse_logic(p, 0, &n->b) : parse_not(p, &n->b);
        *out = n;
    }
    return st;
}

static enum status parse_expression(struct parser *p, int with_cond, struct jnode **out)
{
    enum status st;
    if ((st = enter(p)) || (st = parse_logic(p, 1, out)))
        return st;
    while (with_cond && tok_name(cur(p), "if")) {
        struct jnode *n = node_new(p, JN_COND, cur(p)->pos);
        if (!n)
            return nomem(p);
        advance(p);
        n->b = *out;
        if ((st = parse_logic(p, 1, &n->a)))
            return st;
        if (tok_name(cur(p), "else")) {
            advance(p);
            if ((st = parse_expression(p, 1, &n->c)))
                return st;
        }
        *out = n;
    }
    p->depth--;
    return ST_OK;
}

/* An expression, or several separated by commas (a tuple). */
static enum status parse_tuple(struct parser *p, int with_cond, struct jnode **out)
{
    enum status st;
    size_t pos = cur(p)->pos;
    if ((st = parse_expression(p, with_cond, out)))
        return st;
    if (!tok_op(cur(p), ","))
        return ST_OK;
    struct nvec v = {0};
    if (nvec_push(p, &v, *out))
        return nomem(p);
    while (tok_op(cur(p), ",")) {
        advance(p);
        if (!starts_expression(cur(p)))
            break;
        struct jnode *e;
        if ((st = parse_expression(p, with_cond, &e)))
            return st;
        if (nvec_push(p, &v, e))
            return nomem(p);
    }
    struct jnode *n = node_new(p, JN_TUPLE, pos);
    if (!n)
        return nomem(p);
    n->kids = v.v;
    n->nkids = v.n;
    *out = n;
    return ST_OK;
}

/* for/set targets: a name, name.attr (set only), or names separated by commas. */
static enum status parse_target(struct parser *p, int allow_attr, struct jnode **out)
{
    struct nvec v = {0};
    size_t pos = cur(p)->pos;
    int paren = tok_op(cur(p), "(");
    if (paren)
        advance(p);
    for (;;) {
        struct jtoken *t = cur(p);
        if (t->kind != JT_NAME)
            return pfail(p, t->pos, "expected a variable name, got %s", tok_desc(t));
        struct jnode *n = node_new(p, JN_NAME, t->pos);
        if (!n)
            return nomem(p);
        n->name = t->s;
        advance(p);
        if (allow_attr && !v.n && tok_op(cur(p), ".")) {
            advance(p);
            if (cur(p)->kind != JT_NAME)
                return pfail(p, cur(p)->pos, "expected attribute name%s", NULL);
            struct jnode *g = node_new(p, JN_GETATTR, t->pos);
            if (!g)
                return nomem(p);
            g->a = n;
            g->name = cur(p)->s;
            advance(p);
            *out = g;
            return ST_OK;
        }
        if (nvec_push(p, &v, n))
            return nomem(p);
        if (!tok_op(cur(p), ","))
            break;
        advance(p);
    }
    if (paren) {
        enum status st = expect_op(p, ")");
        if (st)
            return st;
    }
    if (v.n == 1 && !paren) {
        *out = v.v[0];
        return ST_OK;
    }
    struct jnode *n = node_new(p, JN_TUPLE, pos);
    if (!n)
        return nomem(p);
    n->kids = v.v;
    n->nkids = v.n;
    *out = n;
    return ST_OK;
}

/* ---- statements ---------------------------------------------------------- */

static enum status parse_body(struct parser *p, const char *const *ends, struct jnode **out);

static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_ENDIF[] = {"endif", NULL};
static const char *const END_FOR[] = {"else", "endfor", NULL};
static const char *const END_ENDFOR[] = {"endfor", NULL};
static const char *const END_SET[] = {"endset", NULL};
static const char *const END_MACRO[] = {"endmacro", NULL};
static const char *const END_CALL[] = {"endcall", NULL};
static const char *const END_FILTER[] = {"endfilter", NULL};
static const char *const END_GENERATION[] = {"endgeneration", NULL};

/* Consumes "{% name" of an end tag found by parse_body; returns its name. */
static const char *take_end(struct parser *p)
{
    advance(p); /* {% */
    const char *name = cur(p)->s;
    advance(p);
    return name;
}

static enum status parse_params(struct parser *p, struct jnode *n)
{
    enum status st;
    size_t cap = 0;
    if ((st = expect_op(p, "(")))
        return st;
    while (!tok_op(cur(p), ")")) {
        if (n->nparams && (st = expect_op(p, ",")))
            return st;
        if (cur(p)->kind != JT_NAME)
            return pfail(p, cur(p)->pos, "expected parameter name%s", NULL);
        if (n->nparams == cap) {
            cap = cap ? cap * 2 : 4;
            const char **nn = arena_alloc(p->a, cap * sizeof(*nn));
            struct jnode **nd = arena_alloc(p->a, cap * sizeof(*nd));
            if (!nn || !nd)
                return nomem(p);
            if (n->nparams) {
                memcpy(nn, n->pnames, n->nparams * sizeof(*nn));
                memcpy(nd, n->pdefs, n->nparams * sizeof(*nd));
            }
            n->pnames = nn;
            n->pdefs = nd;
        }
        n->pnames[n->nparams] = cur(p)->s;
        n->pdefs[n->nparams] = NULL;
        advance(p);
        if (tok_op(cur(p), "=")) {
            advance(p);
            if ((st = parse_expression(p, 1, &n->pdefs[n->nparams])))
                return st;
        }
        n->nparams++;
    }
    advance(p);
    return ST_OK;
}

static enum status parse_if(struct parser *p, size_t pos, struct jnode **out)
{
    enum status st;
    struct jnode *n = node_new(p, JN_IF, pos);
    if (!n)
        return nomem(p);
    if ((st = parse_expression(p, 1, &n->a)) ||
        (st = expect_kind(p, JT_BLOCK_END, "'%}' after if condition")) ||
        (st = parse_body(p, END_IF, &n->b)))
        return st;
    size_t epos = cur(p)->pos;
    const char *end = take_end(p);
    if (!strcmp(end, "elif")) {
        if ((st = enter(p)) || (st = parse_if(p, epos, &n->c)))
            return st;
        p->depth--;
        *out = n;
        return ST_OK; /* the nested if consumed endif */
    }
    if (!strcmp(end, "else")) {
        if ((st = expect_kind(p, JT_BLOCK_END, "'%}'")) || (st = parse_body(p, END_ENDIF, &n->c)))
            return st;
        take_end(p);
    }
    *out = n;
    return expect_kind(p, JT_BLOCK_END, "'%}' after endif");
}

static enum status parse_for(struct parser *p, size_t pos, struct jnode **out)
{
    enum status st;
    struct jnode *n = node_new(p, JN_FOR, pos);
    if (!n)
        return nomem(p);
    if ((st = parse_target(p, 0, &n->a)))
        return st;
    if (!tok_name(cur(p), "in"))
        return pfail(p, cur(p)->pos, "expected 'in' in for loop%s", NULL);
    advance(p);
    if ((st = parse_tuple(p, 0, &n->b)))
        return st;
    if (tok_name(cur(p), "if")) {
        advance(p);
        if ((st = parse_expression(p, 1, &n->c)))
            return st;
    }
    if (tok_name(cur(p), "recursive"))
        return pfail(p, cur(p)->pos, "recursive for loops are not supported%s", NULL);
    if ((st = expect_kind(p, JT_BLOCK_END, "'%}' after for")))
        return st;
    p->loop_depth++;
    st = parse_body(p, END_FOR, &n->d);
    p->loop_depth--;
    if (st)
        return st;
    if (!strcmp(take_end(p), "else")) {
        if ((st = expect_kind(p, JT_BLOCK_END, "'%}'")) || (st = parse_body(p, END_ENDFOR, &n->e)))
            return st;
        take_end(p);
    }
    *out = n;
    return expect_kind(p, JT_BLOCK_END, "'%}' after endfor");
}

static enum status parse_statement(struct parser *p, struct jnode **out)
{
    enum status st;
    size_t pos = cur(p)->pos;
    advance(p); /* {% */
    struct jtoken *t = cur(p);
    if (t->kind != JT_NAME)
        return pfail(p, t->pos, "expected a tag name, got %s", tok_desc(t));
    const char *kw = t->s;
    advance(p);
    struct jnode *n;
    if (!strcmp(kw, "if"))
        return parse_if(p, pos, out);
    if (!strcmp(kw, "for"))
        return parse_for(p, pos, out);
    if (!strcmp(kw, "set")) {
        struct jnode *target;
        if ((st = parse_target(p, 1, &target)))
            return st;
        if (tok_op(cur(p), "=")) {
            advance(p);
            if (!(n = node_new(p, JN_SET, pos)))
                return nomem(p);
            n->a = target;
            if ((st = parse_tuple(p, 1, &n->b)))
                return st;
        } else {
            if (!(n = node_new(p, JN_SET_BLOCK, pos)))
                return nomem(p);
            n->a = target;
            if ((st = expect_kind(p, JT_BLOCK_END, "'=' or '%}' in set")) ||
                (st = parse_body(p, END_SET, &n->b)))
                return st;
            take_end(p);
        }
    } else if (!strcmp(kw, "macro")) {
        if (cur(p)->kind != JT_NAME)
            return pfail(p, cur(p)->pos, "expected macro name%s", NULL);
        if (!(n = node_new(p, JN_MACRO, pos)))
            return nomem(p);
        n->name = cur(p)->s;
        advance(p);
        int saved = p->loop_depth;
        p->loop_depth = 0;
        if ((st = parse_params(p, n)) ||
            (st = expect_kind(p, JT_BLOCK_END, "'%}' after macro signature")) ||
            (st = parse_body(p, END_MACRO, &n->d)))
            return st;
        p->loop_depth = saved;
        take_end(p);
        if (cur(p)->kind == JT_NAME)
            advance(p);
    } else if (!strcmp(kw, "call")) {
        if (!(n = node_new(p, JN_CALL_BLOCK, pos)))
            return nomem(p);
        if (tok_op(cur(p), "(") && (st = parse_params(p, n)))
            return st;
        if ((st = parse_expression(p, 1, &n->a)))
            return st;
        if (n->a->kind != JN_CALL)
            return pfail(p, n->a->pos, "expected a macro call in call block%s", NULL);
        int saved = p->loop_depth;
        p->loop_depth = 0;
        if ((st = expect_kind(p, JT_BLOCK_END, "'%}'")) || (st = parse_body(p, END_CALL, &n->d)))
            return st;
        p->loop_depth = saved;
        take_end(p);
    } else if (!strcmp(kw, "filter")) {
        if (!(n = node_new(p, JN_FILTER_BLOCK, pos)))
            return nomem(p);
        struct jnode *chain = NULL;
        do {
            if (chain)
                advance(p); /* | */
            if (cur(p)->kind != JT_NAME)
                return pfail(p, cur(p)->pos, "expected filter name%s", NULL);
            struct jnode *f = node_new(p, JN_FILTER, cur(p)->pos);
            if (!f)
                return nomem(p);
            f->name = cur(p)->s;
            f->a = chain;
            advance(p);
            if (tok_op(cur(p), "(")) {
                advance(p);
                if ((st = parse_args(p, f)))
                    return st;
            }
            chain = f;
        } while (tok_op(cur(p), "|"));
        n->a = chain;
        if ((st = expect_kind(p, JT_BLOCK_END, "'%}'")) || (st = parse_body(p, END_FILTER, &n->d)))
            return st;
        take_end(p);
    } else if (!strcmp(kw, "generation")) {
        /* transformers' assistant-mask marker: renders its body unchanged */
        if ((st = expect_kind(p, JT_BLOCK_END, "'%}'")) || (st = parse_body(p, END_GENERATION, &n)))
            return st;
        take_end(p);
    } else if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        if (!p->loop_depth)
            return pfail(p, t->pos, "'%s' outside of a for loop", kw);
        if (!(n = node_new(p, kw[0] == 'b' ? JN_BREAK : JN_CONTINUE, pos)))
            return nomem(p);
    } else {
        return pfail(p, t->pos, "unknown or unexpected tag '%s'", kw);
    }
    *out = n;
    return expect_kind(p, JT_BLOCK_END, "'%}'");
}

static int is_end(const struct jtoken *t, const char *const *ends)
{
    if (t->kind != JT_NAME)
        return 0;
    for (size_t i = 0; ends && ends[i]; i++)
        if (!strcmp(t->s, ends[i]))
            return 1;
    return 0;
}

/* Statements up to an end tag named in `ends` (left unconsumed) or EOF. */
static enum status parse_body(struct parser *p, const char *const *ends, struct jnode **out)
{
    enum status st;
    if ((st = enter(p)))
        return st;
    struct jnode *body = node_new(p, JN_BODY, cur(p)->pos);
    if (!body)
        return nomem(p);
    struct nvec v = {0};
    for (;;) {
        struct jtoken *t = cur(p);
        struct jnode *n = NULL;
        if (t->kind == JT_EOF) {
            if (ends) {
                size_t last = 0;
                while (ends[last + 1])
                    last++;
                return pfail(p, t->pos, "unexpected end of template, expected '%s'", ends[last]);
            }
            break;
        }
        if (t->kind == JT_TEXT) {
            if (!(n = node_new(p, JN_TEXT, t->pos)))
                return nomem(p);
            n->lit = jv_str(t->s, t->n);
            advance(p);
        } else if (t->kind == JT_VAR_BEGIN) {
            advance(p);
            if (!(n = node_new(p, JN_OUTPUT, t->pos)))
                return nomem(p);
            if ((st = parse_tuple(p, 1, &n->a)) ||
                (st = expect_kind(p, JT_VAR_END, "'}}' to close the expression")))
                return st;
        } else if (t->kind == JT_BLOCK_BEGIN) {
            if (is_end(peek_at(p, 1), ends))
                break;
            if ((st = parse_statement(p, &n)))
                return st;
        } else {
            return pfail(p, t->pos, "unexpected %s", tok_desc(t));
        }
        if (nvec_push(p, &v, n))
            return nomem(p);
    }
    body->kids = v.v;
    body->nkids = v.n;
    p->depth--;
    *out = body;
    return ST_OK;
}

enum status jinja_parse(struct jinja_program *prog, char *err, size_t errlen)
{
    struct parser p = {.prog = prog, .a = &prog->arena, .err = err, .errlen = errlen};
    enum status st = jinja_lex(prog->src, prog->len, &prog->arena, &p.t, &p.n, err, errlen);
    if (st)
        return st;
    st = parse_body(&p, NULL, &prog->root);
    free(p.t);
    return st;
}
