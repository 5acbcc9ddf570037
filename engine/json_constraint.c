/* json_constraint.c - a byte-level pushdown recognizer for JSON objects,
 * optionally shaped as tool calls. */
#include "json_constraint.h"

#include <stdlib.h>
#include <string.h>

enum {
    JC_VALUE,     /* a value must start */
    JC_TOP,       /* before the top-level object */
    JC_OBJ_FIRST, /* after '{': a key or '}' */
    JC_OBJ_KEY,   /* after ',' in an object: a key */
    JC_COLON,     /* after a key */
    JC_AFTER,     /* after a value: ',' or the closing bracket */
    JC_ARR_FIRST, /* after '[': a value or ']' */
    JC_STRING,    /* inside a string */
    JC_ESCAPE,    /* after a backslash */
    JC_HEX,       /* \u: sub hex digits left */
    JC_LITERAL,   /* inside true/false/null: sub = index into jc_literal */
    JC_NUM_MINUS, /* after '-' */
    JC_NUM_ZERO,  /* a leading 0 */
    JC_NUM_INT,   /* integer digits */
    JC_NUM_DOT,   /* after '.' */
    JC_NUM_FRAC,  /* fraction digits */
    JC_NUM_E,     /* after 'e' */
    JC_NUM_ESIGN, /* after the exponent's sign */
    JC_NUM_EXP,   /* exponent digits */
    JC_DONE,      /* the object is complete */
};

/* Where a tool-call mode checker is in the call object. */
enum {
    CALL_NONE,       /* outside any call: before it, or between calls in the array */
    CALL_KEY_NAME,   /* the key "name" comes next */
    CALL_NAME_VALUE, /* its value, one of the names */
    CALL_COMMA,      /* the ',' after the name */
    CALL_KEY_ARGS,   /* the key "arguments" */
    CALL_ARGS_VALUE, /* its value, which must be an object */
    CALL_IN_ARGS,    /* inside the arguments: any JSON */
    CALL_END,        /* the '}' that ends the call */
};

/* What the string being read is matched against. */
enum { MATCH_NONE, MATCH_KEY, MATCH_NAME };

struct json_names {
    int n;
    size_t min_len;
    char *name[]; /* (n) each in the same allocation */
};

/* The bytes a call needs from its '{' to its '}', besides the name:
 * {"name":"","arguments":{}} */
#define CALL_FIXED_BYTES 26
/* From after the name's closing quote: ,"arguments":{}} */
#define CALL_TAIL_BYTES 16

/* The literals side by side; sub indexes the next expected byte and a NUL
 * ends each one. */
static const char jc_literal[] = "true\0false\0null";

void json_check_init(struct json_check *c)
{
    memset(c, 0, sizeof(*c));
    c->state = JC_TOP;
}

void json_check_init_tools(struct json_check *c, const struct json_names *names)
{
    json_check_init(c);
    c->names = names;
}

enum status json_names_copy(const char *const *names, int n, struct json_names **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    if (n <= 0)
        return ST_OK;
    if (!names || n > JSON_NAMES_MAX)
        return status_fail(err, errlen, ST_ERR_INVALID, "between 1 and %d tool names",
                           JSON_NAMES_MAX);
    size_t bytes = sizeof(struct json_names) + (size_t)n * sizeof(char *);
    for (int i = 0; i < n; i++) {
        size_t len = names[i] ? strlen(names[i]) : 0;
        if (!len || len > JSON_NAMES_MAX_LEN)
            return status_fail(err, errlen, ST_ERR_INVALID, "tool name %d must have 1 to %d bytes",
                               i, JSON_NAMES_MAX_LEN);
        for (size_t k = 0; k < len; k++) {
            unsigned char ch = (unsigned char)names[i][k];
            if (ch < 0x20 || ch == '"' || ch == '\\')
                return status_fail(err, errlen, ST_ERR_INVALID,
                                   "tool name %d holds a quote, backslash or control byte", i);
        }
        bytes += len + 1;
    }
    struct json_names *l = malloc(bytes);
    if (!l)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    l->n = n;
    l->min_len = JSON_NAMES_MAX_LEN;
    char *text = (char *)&l->name[n];
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        memcpy(text, names[i], len + 1);
        l->name[i] = text;
        text += len + 1;
        if (len < l->min_len)
            l->min_len = len;
    }
    *out = l;
    return ST_OK;
}

void json_names_free(struct json_names *names)
{
    free(names);
}

bool json_check_done(const struct json_check *c)
{
    return c->state == JC_DONE;
}

static bool jc_ws(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
}

static bool jc_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* A value ended: back to the container. */
static void jc_value_end(struct json_check *c)
{
    c->state = c->depth ? JC_AFTER : JC_DONE;
}

static bool jc_open(struct json_check *c, char ch)
{
    if (c->depth >= JSON_CHECK_MAX_DEPTH)
        return false;
    c->stack[c->depth++] = ch;
    c->state = ch == '{' ? JC_OBJ_FIRST : JC_ARR_FIRST;
    return true;
}

static bool jc_close(struct json_check *c, char ch)
{
    if (!c->depth || c->stack[c->depth - 1] != (ch == '}' ? '{' : '['))
        return false;
    c->depth--;
    jc_value_end(c);
    return true;
}

/* The first byte of a value. */
static bool jc_value_start(struct json_check *c, char ch)
{
    switch (ch) {
    case '{':
    case '[': return jc_open(c, ch);
    case '"':
        c->state = JC_STRING;
        c->is_key = 0;
        return true;
    case 't': c->sub = 1; break;
    case 'f': c->sub = 6; break;
    case 'n': c->sub = 12; break;
    case '-': c->state = JC_NUM_MINUS; return true;
    case '0': c->state = JC_NUM_ZERO; return true;
    default:
        if (ch >= '1' && ch <= '9') {
            c->state = JC_NUM_INT;
            return true;
        }
        return false;
    }
    c->state = JC_LITERAL;
    return true;
}

/* One byte where a number may end: digits continue it, anything else ends
 * it and is read in JC_AFTER. */
static bool jc_step(struct json_check *c, char ch);

static bool jc_number_end(struct json_check *c, char ch)
{
    jc_value_end(c);
    return c->state != JC_DONE && jc_step(c, ch);
}

static bool jc_step_json(struct json_check *c, char ch)
{
    bool ws = jc_ws(ch);
    switch (c->state) {
    case JC_STRING:
    case JC_ESCAPE:
    case JC_HEX:
    case JC_LITERAL:
    case JC_NUM_MINUS:
    case JC_NUM_ZERO:
    case JC_NUM_INT:
    case JC_NUM_DOT:
    case JC_NUM_FRAC:
    case JC_NUM_E:
    case JC_NUM_ESIGN:
    case JC_NUM_EXP: break;
    default:
        if (ws)
            return ++c->ws <= JSON_CHECK_MAX_WS;
        c->ws = 0;
    }
    switch (c->state) {
    case JC_TOP: return ch == '{' && jc_open(c, ch);
    case JC_VALUE: return jc_value_start(c, ch);
    case JC_ARR_FIRST: return ch == ']' ? jc_close(c, ch) : jc_value_start(c, ch);
    case JC_OBJ_FIRST:
        if (ch == '}')
            return jc_close(c, ch);
        /* fall through */
    case JC_OBJ_KEY:
        if (ch != '"')
            return false;
        c->state = JC_STRING;
        c->is_key = 1;
        return true;
    case JC_COLON:
        if (ch != ':')
            return false;
        c->state = JC_VALUE;
        return true;
    case JC_AFTER:
        if (ch == ',') {
            c->state = c->stack[c->depth - 1] == '{' ? JC_OBJ_KEY : JC_VALUE;
            return true;
        }
        return (ch == '}' || ch == ']') && jc_close(c, ch);
    case JC_STRING:
        if (ch == '"') {
            if (c->is_key)
                c->state = JC_COLON;
            else
                jc_value_end(c);
            return true;
        }
        if (ch == '\\') {
            c->state = JC_ESCAPE;
            return true;
        }
        return (unsigned char)ch >= 0x20;
    case JC_ESCAPE:
        if (ch == 'u') {
            c->state = JC_HEX;
            c->sub = 4;
            return true;
        }
        c->state = JC_STRING;
        return ch && strchr("\"\\/bfnrt", ch);
    case JC_HEX:
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
        if (--c->sub == 0)
            c->state = JC_STRING;
        return true;
    case JC_LITERAL:
        if (ch != jc_literal[c->sub])
            return false;
        if (jc_literal[++c->sub] == 0)
            jc_value_end(c);
        return true;
    case JC_NUM_MINUS:
        if (ch == '0')
            c->state = JC_NUM_ZERO;
        else if (ch >= '1' && ch <= '9')
            c->state = JC_NUM_INT;
        else
            return false;
        return true;
    case JC_NUM_ZERO:
    case JC_NUM_INT:
        if (jc_digit(ch) && c->state == JC_NUM_INT)
            return true;
        if (ch == '.') {
            c->state = JC_NUM_DOT;
            return true;
        }
        if (ch == 'e' || ch == 'E') {
            c->state = JC_NUM_E;
            return true;
        }
        return jc_number_end(c, ch);
    case JC_NUM_DOT:
        if (!jc_digit(ch))
            return false;
        c->state = JC_NUM_FRAC;
        return true;
    case JC_NUM_FRAC:
        if (jc_digit(ch))
            return true;
        if (ch == 'e' || ch == 'E') {
            c->state = JC_NUM_E;
            return true;
        }
        return jc_number_end(c, ch);
    case JC_NUM_E:
        if (ch == '+' || ch == '-') {
            c->state = JC_NUM_ESIGN;
            return true;
        }
        /* fall through */
    case JC_NUM_ESIGN:
        if (!jc_digit(ch))
            return false;
        c->state = JC_NUM_EXP;
        return true;
    case JC_NUM_EXP: return jc_digit(ch) ? true : jc_number_end(c, ch);
    case JC_DONE: return false;
    }
    return false;
}

/* ---- tool-call mode ------------------------------------------------------ */

/* Candidate i of the string being matched: the one key the phase expects,
 * or a tool name. */
static const char *jc_candidate(const struct json_check *c, int i)
{
    if (c->match == MATCH_KEY)
        return c->call == CALL_KEY_NAME ? "name" : "arguments";
    return c->names->name[i];
}

static int jc_candidates(const struct json_check *c)
{
    return c->match == MATCH_KEY ? 1 : c->names->n;
}

/* Whether candidate i starts with the bytes matched so far (those of
 * candidate rep, the first one that does). */
static bool jc_has_prefix(const struct json_check *c, int i)
{
    return i == c->rep || !strncmp(jc_candidate(c, i), jc_candidate(c, c->rep), c->pos);
}

/* One byte of a matched string; the closing quote ends it. */
static bool jc_match(struct json_check *c, char ch)
{
    for (int i = c->rep; i < jc_candidates(c); i++) {
        const char *s = jc_candidate(c, i);
        if (!jc_has_prefix(c, i))
            continue;
        if (ch != '"') {
            if (ch && s[c->pos] == ch) {
                c->rep = (uint16_t)i;
                c->pos++;
                return true;
            }
            continue;
        }
        if (s[c->pos])
            continue;
        if (c->match == MATCH_KEY) {
            c->state = JC_COLON;
            c->call = c->call == CALL_KEY_NAME ? CALL_NAME_VALUE : CALL_ARGS_VALUE;
        } else {
            c->state = JC_AFTER;
            c->call = CALL_COMMA;
        }
        c->match = MATCH_NONE;
        return true;
    }
    return false;
}

static bool jc_start_match(struct json_check *c, uint8_t match)
{
    c->state = JC_STRING;
    c->is_key = match == MATCH_KEY;
    c->match = match;
    c->pos = 0;
    c->rep = 0;
    return true;
}

static bool jc_start_call(struct json_check *c)
{
    if (!jc_open(c, '{'))
        return false;
    c->call_depth = c->depth;
    c->call = CALL_KEY_NAME;
    return true;
}

enum { JC_PASS = 2 }; /* jc_tool_step: the plain JSON rules decide */

/* The bytes the call shape decides: 0 refuse, 1 accept, JC_PASS. */
static int jc_tool_step(struct json_check *c, char ch)
{
    if (c->state == JC_STRING && c->match)
        return jc_match(c, ch);
    if (jc_ws(ch))
        return JC_PASS;
    switch (c->call) {
    case CALL_NONE:
        if (c->state == JC_TOP)
            return ch == '[' ? jc_open(c, ch) : ch == '{' && jc_start_call(c);
        if (c->state == JC_ARR_FIRST || c->state == JC_VALUE)
            return ch == '{' && jc_start_call(c);
        return JC_PASS;
    case CALL_KEY_NAME:
    case CALL_KEY_ARGS: return ch == '"' && jc_start_match(c, MATCH_KEY);
    case CALL_NAME_VALUE:
        if (c->state == JC_COLON)
            return JC_PASS;
        return ch == '"' && jc_start_match(c, MATCH_NAME);
    case CALL_COMMA:
        if (ch != ',')
            return false;
        c->state = JC_OBJ_KEY;
        c->call = CALL_KEY_ARGS;
        return true;
    case CALL_ARGS_VALUE:
        if (c->state == JC_COLON)
            return JC_PASS;
        if (ch != '{' || !jc_open(c, ch))
            return false;
        c->call = CALL_IN_ARGS;
        return true;
    case CALL_END:
        if (ch != '}' || !jc_close(c, ch))
            return false;
        c->call = CALL_NONE;
        return true;
    }
    return JC_PASS;
}

static bool jc_step(struct json_check *c, char ch)
{
    if (!c->names)
        return jc_step_json(c, ch);
    int verdict = jc_tool_step(c, ch);
    if (verdict != JC_PASS)
        return verdict;
    if (!jc_step_json(c, ch))
        return false;
    if (c->call == CALL_IN_ARGS && c->depth == c->call_depth)
        c->call = CALL_END;
    return true;
}

/* ---- closing cost ---------------------------------------------------------- */

/* The shortest way to finish the current value (or key and its value),
 * without closing the containers. */
static size_t jc_local_cost(const struct json_check *c)
{
    size_t after_string = c->is_key ? 3 : 1; /* '"' (+ ':' and a digit) */
    switch (c->state) {
    case JC_TOP: return 2;
    case JC_VALUE: return 1;
    case JC_OBJ_KEY: return 4;
    case JC_COLON: return 2;
    case JC_STRING: return after_string;
    case JC_ESCAPE: return 1 + after_string;
    case JC_HEX: return c->sub + after_string;
    case JC_LITERAL: return strlen(jc_literal + c->sub);
    case JC_NUM_MINUS:
    case JC_NUM_DOT:
    case JC_NUM_E:
    case JC_NUM_ESIGN: return 1;
    default: return 0;
    }
}

/* Shortest remaining length of a name starting with the bytes matched. */
static size_t jc_name_rest(const struct json_check *c)
{
    size_t best = JSON_NAMES_MAX_LEN;
    for (int i = c->rep; i < jc_candidates(c); i++) {
        size_t len = strlen(jc_candidate(c, i));
        if (jc_has_prefix(c, i) && len - c->pos < best)
            best = len - c->pos;
    }
    return best;
}

/* Bytes to finish the current call object, its '}' included. */
static size_t jc_call_cost(const struct json_check *c)
{
    size_t name_value = 1 + c->names->min_len + 1 + CALL_TAIL_BYTES; /* "N",...} */
    bool in_string = c->state == JC_STRING;
    switch (c->call) {
    case CALL_KEY_NAME: /* "name": then the value */
        return (in_string ? 4 - c->pos + 1 : 6) + 1 + name_value;
    case CALL_NAME_VALUE:
        if (in_string)
            return jc_name_rest(c) + 1 + CALL_TAIL_BYTES;
        return (c->state == JC_COLON) + name_value;
    case CALL_COMMA: return CALL_TAIL_BYTES;
    case CALL_KEY_ARGS: /* "arguments":{}} */ return in_string ? 9 - c->pos + 1 + 4 : 15;
    case CALL_ARGS_VALUE: return (c->state == JC_COLON) + 3;
    }
    return 0;
}

size_t json_check_close_cost(const struct json_check *c)
{
    if (c->names && c->call != CALL_IN_ARGS && c->call != CALL_END && c->state != JC_DONE) {
        size_t whole_call = CALL_FIXED_BYTES + c->names->min_len;
        if (c->call != CALL_NONE)
            return jc_call_cost(c) + (c->call_depth - 1u);
        if (c->state == JC_TOP)
            return whole_call;
        if (c->state == JC_ARR_FIRST || c->state == JC_VALUE)
            return whole_call + 1; /* and the ']' */
    }
    return jc_local_cost(c) + c->depth;
}

bool json_check_feed(struct json_check *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!jc_step(c, s[i]))
            return false;
    return true;
}
