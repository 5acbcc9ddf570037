/* json_constraint.c - a byte-level pushdown recognizer for JSON objects. */
#include "json_constraint.h"

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

/* The literals side by side; sub indexes the next expected byte and a NUL
 * ends each one. */
static const char jc_literal[] = "true\0false\0null";

void json_check_init(struct json_check *c)
{
    memset(c, 0, sizeof(*c));
    c->state = JC_TOP;
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

static bool jc_step(struct json_check *c, char ch)
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

bool json_check_feed(struct json_check *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!jc_step(c, s[i]))
            return false;
    return true;
}
