/*
 * tok_json.c - a fast path through tokenizer.json's two big arrays.
 *
 * model.vocab and model.merges are most of a tokenizer.json (Gemma 3: 262k
 * entries and 515k merges, 33 MB); building a cJSON tree for them costs
 * millions of small allocations.  This scanner reads those two values
 * directly (strings straight into the tokenizer's pool) and hands every other
 * value to cJSON, so the rest of the loader still works on a cJSON tree.
 * Everything is bounds-checked against the input length: the input is
 * untrusted and need not be NUL-terminated.  Also: small typed accessors for
 * the cJSON side.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int expect(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return 0;
        *v = *v * 16 + (uint32_t)d;
    }
    return 1;
}

/* Decodes the JSON string at s->p (which must be at its opening quote) into out. */
static enum status scan_string(struct scan *s, struct tok_buf *out)
{
    out->len = 0;
    if (s->p >= s->end || *s->p != '"')
        return ST_ERR_FORMAT;
    s->p++;
    for (;;) {
        const char *run = s->p;
        while (s->p < s->end && *s->p != '"' && *s->p != '\\')
            s->p++;
        if (s->p >= s->end)
            return ST_ERR_FORMAT;
        if (tok_buf_append(out, run, (size_t)(s->p - run)) != ST_OK)
            return ST_ERR_NOMEM;
        if (*s->p++ == '"')
            return ST_OK;
        if (s->p >= s->end)
            return ST_ERR_FORMAT;
        char c = *s->p++, lit;
        switch (c) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (s->end - s->p < 4 || !hex4(s->p, &cp))
                return ST_ERR_FORMAT;
            s->p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return ST_ERR_FORMAT;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                    !hex4(s->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return ST_ERR_FORMAT;
                s->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            char enc[4];
            if (tok_buf_append(out, enc, (size_t)tok_utf8_encode(cp, enc)) != ST_OK)
                return ST_ERR_NOMEM;
            continue;
        }
        default: return ST_ERR_FORMAT;
        }
        if (tok_buf_append(out, &lit, 1) != ST_OK)
            return ST_ERR_NOMEM;
    }
}

/*
 * Steps over one value without checking its inner structure: the span is
 * given to cJSON afterwards, which validates it.
 */
static enum status skip_value(struct scan *s)
{
    skip_ws(s);
    if (s->p >= s->end)
        return ST_ERR_FORMAT;
    size_t depth = 0;
    do {
        if (s->p >= s->end)
            return ST_ERR_FORMAT;
        char c = *s->p;
        if (c == '"') {
            s->p++;
            while (s->p < s->end && *s->p != '"') {
                if (*s->p == '\\' && s->end - s->p < 2)
                    return ST_ERR_FORMAT;
                s->p += *s->p == '\\' ? 2 : 1;
            }
            if (s->p >= s->end)
                return ST_ERR_FORMAT;
            s->p++;
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return ST_ERR_FORMAT;
            depth--;
            s->p++;
        } else if (depth == 0) {
            /* A scalar: up to the next delimiter. */
            while (s->p < s->end && !strchr(",}] \n\r\t", *s->p))
                s->p++;
        } else {
            s->p++;
        }
    } while (depth > 0);
    return ST_OK;
}

/* A non-negative integer id, as vocab values are. */
static int scan_id(struct scan *s, int32_t *id)
{
    skip_ws(s);
    long v = 0;
    const char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        v = v * 10 + (*s->p++ - '0');
        if (v > INT32_MAX)
            return 0;
    }
    if (s->p == start || (s->p < s->end && strchr(".eE", *s->p)))
        return 0;
    *id = (int32_t)v;
    return 1;
}

static enum status scan_vocab(struct scan *s, struct tokenizer *tok, struct tok_json_doc *doc,
                              struct tok_buf *key)
{
    enum status st;
    size_t cap = 0;
    s->p++; /* '{' */
    if (expect(s, '}'))
        return ST_OK;
    do {
        skip_ws(s);
        if ((st = scan_string(s, key)) != ST_OK)
            return st;
        int32_t id;
        if (!expect(s, ':') || !scan_id(s, &id))
            return ST_ERR_FORMAT;
        if (doc->n_vocab == cap) {
            cap = cap ? cap * 2 : 1024;
            struct tok_json_vocab *v = realloc(doc->vocab, cap * sizeof(*v));
            if (!v)
                return ST_ERR_NOMEM;
            doc->vocab = v;
        }
        struct tok_json_vocab *e = &doc->vocab[doc->n_vocab++];
        e->id = id;
        e->len = (uint32_t)key->len;
        if ((st = tok_pool_add(tok, key->data, key->len, &e->off)) != ST_OK)
            return st;
    } while (expect(s, ','));
    return expect(s, '}') ? ST_OK : ST_ERR_FORMAT;
}

/* Parses the span [start, end) with cJSON and adds it to obj under key. */
static enum status add_span(cJSON *obj, const char *key, const char *start, const char *end)
{
    cJSON *v = cJSON_ParseWithLength(start, (size_t)(end - start));
    if (!v)
        return ST_ERR_FORMAT;
    if (!cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return ST_ERR_NOMEM;
    }
    return ST_OK;
}

static enum status scan_object(struct scan *s, struct tokenizer *tok, struct tok_json_doc *doc,
                               cJSON *obj, int is_model, struct tok_buf *key, struct tok_buf *tmp)
{
    enum status st;
    if (!expect(s, '{'))
        return ST_ERR_FORMAT;
    if (expect(s, '}'))
        return ST_OK;
    do {
        skip_ws(s);
        if ((st = scan_string(s, key)) != ST_OK)
            return st;
        if (!expect(s, ':'))
            return ST_ERR_FORMAT;
        skip_ws(s);
        if (s->p >= s->end || memchr(key->data, '\0', key->len))
            return ST_ERR_FORMAT;
        if (cJSON_GetObjectItemCaseSensitive(obj, key->data) ||
            (is_model && ((doc->has_vocab && !strcmp(key->data, "vocab")) ||
                          (doc->merges && !strcmp(key->data, "merges")))))
            return ST_ERR_FORMAT; /* duplicate keys: which one wins is ambiguous */
        if (!is_model && !strcmp(key->data, "model") && *s->p == '{') {
            cJSON *model = cJSON_CreateObject();
            if (!model || !cJSON_AddItemToObject(obj, "model", model)) {
                cJSON_Delete(model);
                return ST_ERR_NOMEM;
            }
            st = scan_object(s, tok, doc, model, 1, key, tmp);
        } else if (is_model && !strcmp(key->data, "vocab") && *s->p == '{') {
            doc->has_vocab = 1;
            st = scan_vocab(s, tok, doc, tmp);
        } else if (is_model && !strcmp(key->data, "merges") && *s->p == '[') {
            doc->merges = s->p;
            st = skip_value(s);
            doc->merges_len = (size_t)(s->p - doc->merges);
        } else {
            const char *start = s->p;
            st = skip_value(s);
            if (st == ST_OK)
                st = add_span(obj, key->data, start, s->p);
        }
        if (st != ST_OK)
            return st;
    } while (expect(s, ','));
    return expect(s, '}') ? ST_OK : ST_ERR_FORMAT;
}

enum status tok_json_scan(struct tokenizer *tok, const char *json, size_t len,
                          struct tok_json_doc *doc)
{
    memset(doc, 0, sizeof(*doc));
    struct scan s = {json, json + len};
    struct tok_buf key = {0}, tmp = {0};
    doc->root = cJSON_CreateObject();
    enum status st = doc->root ? scan_object(&s, tok, doc, doc->root, 0, &key, &tmp) : ST_ERR_NOMEM;
    skip_ws(&s);
    if (st == ST_OK && s.p != s.end)
        st = ST_ERR_FORMAT;
    tok_buf_free(&key);
    tok_buf_free(&tmp);
    if (st != ST_OK)
        tok_json_doc_free(doc);
    return st;
}

void tok_json_doc_free(struct tok_json_doc *doc)
{
    cJSON_Delete(doc->root);
    free(doc->vocab);
    memset(doc, 0, sizeof(*doc));
}

/* ---- merges ------------------------------------------------------------------ */

enum status tok_json_merges_next(struct tok_json_merges *it, struct tok_buf *a, struct tok_buf *b,
                                 int *done)
{
    struct scan s = {it->p, it->end};
    enum status st;
    *done = 0;
    if (!it->started) {
        it->started = 1;
        if (!expect(&s, '['))
            return ST_ERR_FORMAT;
        if (expect(&s, ']')) {
            *done = 1;
            it->p = s.p;
            return ST_OK;
        }
    } else if (!expect(&s, ',')) {
        if (!expect(&s, ']'))
            return ST_ERR_FORMAT;
        *done = 1;
        it->p = s.p;
        return ST_OK;
    }
    skip_ws(&s);
    if (s.p < s.end && *s.p == '"') {
        /* "a b": exactly one space separates the two tokens. */
        if ((st = scan_string(&s, a)) != ST_OK)
            return st;
        const char *sp = a->len ? memchr(a->data, ' ', a->len) : NULL;
        if (!sp || memchr(sp + 1, ' ', a->len - (size_t)(sp + 1 - a->data)))
            return ST_ERR_FORMAT;
        b->len = 0;
        size_t la = (size_t)(sp - a->data);
        if (tok_buf_append(b, sp + 1, a->len - la - 1) != ST_OK)
            return ST_ERR_NOMEM;
        a->len = la;
        a->data[la] = '\0';
    } else {
        if (!expect(&s, '['))
            return ST_ERR_FORMAT;
        skip_ws(&s);
        if ((st = scan_string(&s, a)) != ST_OK || !expect(&s, ','))
            return ST_ERR_FORMAT;
        skip_ws(&s);
        if ((st = scan_string(&s, b)) != ST_OK || !expect(&s, ']'))
            return ST_ERR_FORMAT;
    }
    it->p = s.p;
    return ST_OK;
}

/* ---- typed access to cJSON values --------------------------------------------- */

/* A string member or NULL; *bad set when present with another type. */
const char *tok_json_str(const cJSON *obj, const char *key, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (!cJSON_IsString(v) || !v->valuestring) {
        *bad = 1;
        return NULL;
    }
    return v->valuestring;
}

int tok_json_bool(const cJSON *obj, const char *key, int dflt, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return dflt;
    if (!cJSON_IsBool(v)) {
        *bad = 1;
        return dflt;
    }
    return cJSON_IsTrue(v);
}

int tok_json_int(const cJSON *v, long lo, long hi, long *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
        v->valuedouble != (double)(long)v->valuedouble)
        return 0;
    *out = (long)v->valuedouble;
    return 1;
}

const char *tok_json_type(const cJSON *obj)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) && t->valuestring ? t->valuestring : NULL;
}
