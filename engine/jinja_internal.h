/*
 * jinja_internal.h - what the jinja_*.c files share to implement
 * chat_template.h: tokens, the syntax tree, run-time values and the render
 * state.  Not a public API; nothing outside engine/jinja_*.c includes it.
 *
 * Memory: the syntax tree lives in the template's arena (immutable after
 * parsing); every value made while rendering lives in the render's arena and
 * is dropped at once when the render ends.  Not thread-safe per render state.
 */
#ifndef ENGINE_JINJA_INTERNAL_H
#define ENGINE_JINJA_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "arena.h"
#include "status.h"

/* ---- limits against hostile templates and contexts ---------------------- */
#define JINJA_MAX_SOURCE (4u << 20)       /* template bytes */
#define JINJA_MAX_PARSE_DEPTH 200         /* nesting of expressions and blocks */
#define JINJA_MAX_CALL_DEPTH 64           /* macro calls within macro calls */
#define JINJA_MAX_DATA_DEPTH 128          /* value nesting: context JSON, tojson, ==, print */
#define JINJA_MAX_STEPS 20000000ull       /* nodes + loop iterations + bytes/64 processed */
#define JINJA_MAX_OUTPUT (16u << 20)      /* rendered bytes, per capture too */
#define JINJA_MAX_RENDER_MEM (256u << 20) /* render arena */

/* ---- values ------------------------------------------------------------- */
enum jtype {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,  /* list or tuple */
    JV_DICT,  /* ordered mapping */
    JV_NS,    /* namespace(): a dict whose attributes can be assigned */
    JV_MACRO, /* a macro or a call block's caller() */
    JV_FUNC,  /* a global function such as range() */
    JV_LOOP,  /* the `loop` variable of a for loop */
};

struct jlist;
struct jdict;
struct jmacro;
struct jloop;

struct jval {
    enum jtype t;
    union {
        int b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct jlist *l;
        struct jdict *d;
        struct jmacro *m;
        struct jloop *loop;
        int fn;
    } u;
};

struct jlist {
    struct jval *v;
    size_t n, cap;
    int is_tuple;
};

struct jdict {
    struct jval *k, *v;
    size_t n, cap;
};

/* ---- tokens ------------------------------------------------------------- */
enum jtok {
    JT_EOF,
    JT_TEXT,        /* template data, already whitespace-controlled */
    JT_VAR_BEGIN,   /* {{ */
    JT_VAR_END,     /* }} */
    JT_BLOCK_BEGIN, /* {% */
    JT_BLOCK_END,   /* %} */
    JT_NAME,
    JT_STRING, /* decoded contents in s/n */
    JT_INT,
    JT_FLOAT,
    JT_OP, /* operator or punctuation, spelled in s/n */
};

struct jtoken {
    enum jtok kind;
    const char *s;
    size_t n;
    int64_t i;
    double f;
    size_t pos; /* byte offset in the source, for line:col */
};

/* Tokenizes `src` into a malloc'd array (caller frees) ending with JT_EOF;
 * strings are decoded into `a`.  Applies trim_blocks/lstrip_blocks, `-`
 * whitespace control, drops comments and the single trailing newline. */
enum status jinja_lex(const char *src, size_t len, struct arena *a, struct jtoken **out,
                      size_t *ntok, char *err, size_t errlen);

/* The 1-based line and column (in code points) of byte offset pos of src. */
void jinja_line_col(const char *src, size_t len, size_t pos, int *line, int *col);

/* ---- syntax tree -------------------------------------------------------- */
enum jnode_kind {
    /* statements */
    JN_BODY, /* kids: statements */
    JN_TEXT, /* lit: string */
    JN_OUTPUT,
    JN_IF,           /* a cond, b then, c else (body or if) */
    JN_FOR,          /* a target, b iter, c filter, d body, e else */
    JN_SET,          /* a target, b value */
    JN_SET_BLOCK,    /* a target, b body */
    JN_MACRO,        /* name, params in pnames/pdefs, d body */
    JN_CALL_BLOCK,   /* a call expr, pnames/pdefs caller params, d body */
    JN_FILTER_BLOCK, /* a filter chain whose innermost operand is NULL, d body */
    JN_BREAK,
    JN_CONTINUE,
    /* expressions */
    JN_LITERAL,
    JN_NAME,
    JN_LIST,    /* kids */
    JN_TUPLE,   /* kids */
    JN_DICT,    /* kids: key, value, key, value ... */
    JN_GETATTR, /* a . name */
    JN_GETITEM, /* a [b] */
    JN_SLICE,   /* a [b : c : d], any of b c d may be NULL */
    JN_CALL,    /* a (kids, kwargs) */
    JN_FILTER,  /* a | name(kids, kwargs) */
    JN_TEST,    /* a is [not] name(kids); op = negated */
    JN_NOT,
    JN_NEG,
    JN_POS,
    JN_BINARY,  /* a op b: + - * / // % ** ~ */
    JN_COMPARE, /* kids[0] ops[0] kids[1] ops[1] kids[2] ... */
    JN_AND,
    JN_OR,
    JN_COND, /* b if a else c (c may be NULL) */
};

enum jop {
    JO_ADD = 1,
    JO_SUB,
    JO_MUL,
    JO_DIV,
    JO_FLOORDIV,
    JO_MOD,
    JO_POW,
    JO_CONCAT,
    JO_EQ,
    JO_NE,
    JO_LT,
    JO_LE,
    JO_GT,
    JO_GE,
    JO_IN,
    JO_NOTIN,
};

struct jnode {
    enum jnode_kind kind;
    int op;
    size_t pos;
    struct jnode *a, *b, *c, *d, *e;
    struct jnode **kids;
    size_t nkids;
    int *ops;            /* JN_COMPARE */
    const char **knames; /* keyword-argument names of a call/filter */
    struct jnode **kvals;
    size_t nkw;
    const char **pnames;  /* macro / caller parameters */
    struct jnode **pdefs; /* their defaults, NULL when none */
    size_t nparams;
    const char *name;
    struct jval lit;
};

struct jinja_program {
    struct arena arena; /* holds the tree, names and literals */
    struct jnode *root;
    char *src;
    size_t len;
};

enum status jinja_parse(struct jinja_program *prog, char *err, size_t errlen);

/* ---- render state ------------------------------------------------------- */
struct jbuf {
    char *p;
    size_t n, cap;
};

struct jscope {
    struct jscope *parent;
    const char **names;
    struct jval *vals;
    size_t n, cap;
};

struct jmacro {
    const struct jnode *node; /* JN_MACRO or JN_CALL_BLOCK */
    struct jscope *closure;
    struct jmacro *caller; /* the caller() passed to this macro, if any */
};

struct jloop {
    struct jlist *items;
    size_t index0;
};

struct jrender {
    const struct jinja_program *prog;
    struct arena *a;
    char *err;
    size_t errlen;
    struct jbuf *out;
    uint64_t steps;
    int depth;    /* nested eval/exec calls */
    int calls;    /* nested macro calls */
    int loop_ctl; /* 1 break, 2 continue, pending */
    struct jscope *globals;
};

/* Records an error at source position pos ("line L:C: ..."); returns st. */
enum status jinja_fail(struct jrender *r, size_t pos, enum status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Counts n units of work; fails with ST_ERR_RANGE past JINJA_MAX_STEPS. */
enum status jinja_charge(struct jrender *r, size_t pos, uint64_t n);

/* values: jinja_value.c */
struct jval jv_undef(void);
struct jval jv_none(void);
struct jval jv_bool(int b);
struct jval jv_int(int64_t i);
struct jval jv_float(double f);
struct jval jv_str(const char *p, size_t n);
struct jval jv_cstr(const char *p);
struct jlist *jv_list_new(struct arena *a, size_t cap);
int jv_list_push(struct arena *a, struct jlist *l, struct jval v); /* 0 ok, -1 nomem */
/* Appends src's items to dst, which has room for them (an empty list has
 * no item array: nothing is copied from or to NULL). */
void jv_list_extend(struct jlist *dst, const struct jlist *src);
struct jdict *jv_dict_new(struct arena *a, size_t cap);
int jv_dict_set(struct arena *a, struct jdict *d, struct jval k, struct jval v);
struct jval *jv_dict_get(const struct jdict *d, const char *key, size_t klen);
struct jval *jv_dict_getv(const struct jdict *d, struct jval k);
struct jval jv_list_val(struct jlist *l);
struct jval jv_dict_val(struct jdict *d);
int jv_truthy(struct jval v);
int jv_equal(struct jval a, struct jval b);
/* <0, 0, >0; sets *ok=0 when the types cannot be ordered. ci: fold ASCII case. */
int jv_compare(struct jval a, struct jval b, int ci, int *ok);
const char *jv_type_name(struct jval v);
int jv_is_number(struct jval v);
double jv_num(struct jval v);

/* Appends text to a buffer bounded by JINJA_MAX_OUTPUT; 0 ok, -1 nomem/limit. */
int jbuf_put(struct jbuf *b, const char *p, size_t n);
void jbuf_free(struct jbuf *b);

/* Python str() / repr() of v appended to b; 0 ok, -1 over the output limit
 * or nested deeper than JINJA_MAX_DATA_DEPTH. */
int jv_write_str(struct jbuf *b, struct jval v);
int jv_write_repr(struct jbuf *b, struct jval v);
/* The arguments of json.dumps that transformers' tojson passes through. */
struct json_opts {
    int indent; /* < 0: None (one line) */
    int ascii;  /* ensure_ascii */
    int sort_keys;
    const char *item_sep, *key_sep; /* NULL: Python's defaults for the indent */
};
/* json.dumps(v, **opts).  0 ok, -1 limit, -2 not serializable (or keys that
 * cannot be sorted), -3 too deep. */
int jv_write_json(struct jbuf *b, struct jval v, const struct json_opts *o, int depth);
/* str(v) as a value: strings as they are, others formatted into the arena. */
int jv_to_string(struct arena *a, struct jval v, struct jval *out);
/* Deep copy of a cJSON value; -1 nomem, -3 too deep. */
int jv_from_json(struct arena *a, const cJSON *j, struct jval *out, int depth);

/* UTF-8 helpers: decode one code point (invalid bytes decode as themselves,
 * one byte each); number of code points. */
size_t jutf8_next(const char *p, size_t n, uint32_t *cp);
size_t jutf8_count(const char *p, size_t n);
int jutf8_is_space(uint32_t cp);

/* evaluation: jinja_eval.c */
enum status jinja_eval(struct jrender *r, struct jscope *sc, const struct jnode *n,
                       struct jval *out);
enum status jinja_exec(struct jrender *r, struct jscope *sc, const struct jnode *n);
int jscope_set(struct arena *a, struct jscope *sc, const char *name, struct jval v);
int jinja_iterate(struct jrender *r, struct jval v, struct jlist **out); /* 0 ok, -1 nomem,
                                                                           -2 not iterable */

/* builtins: jinja_builtins.c.  Arguments are evaluated; names of keyword
 * arguments in knames. */
struct jargs {
    const struct jval *pos;
    size_t npos;
    const char **knames;
    const struct jval *kvals;
    size_t nkw;
};
enum status jinja_filter(struct jrender *r, size_t pos, const char *name, struct jval v,
                         const struct jargs *args, struct jval *out);
enum status jinja_test(struct jrender *r, size_t pos, const char *name, struct jval v,
                       const struct jargs *args, int *out);
enum status jinja_method(struct jrender *r, size_t pos, struct jval obj, const char *name,
                         const struct jargs *args, struct jval *out, int *found);
enum status jinja_call_func(struct jrender *r, size_t pos, int fn, const struct jargs *args,
                            struct jval *out);
/* A global function's id by name, or -1. */
int jinja_func_lookup(const char *name);
int jinja_filter_exists(const char *name);
int jinja_test_exists(const char *name);

#endif
