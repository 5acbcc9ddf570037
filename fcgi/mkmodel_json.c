/*
 * mkmodel_json.c - Python-json-style pretty printing for mkmodel's files
 * (see mkmodel.h).  mlx-lm and transformers write their JSON with
 * json.dump(indent=..., sort_keys=...); matching that keeps generated
 * model folders indistinguishable from converted ones.
 */
#include "mkmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_str(struct jbuf *b, const char *s)
{
    jb_put(b, s, strlen(s));
}

static void jb_indent(struct jbuf *b, int indent, int depth)
{
    jb_put(b, "\n", 1);
    for (int i = 0; i < indent * depth; i++)
        jb_put(b, " ", 1);
}

static void jb_quoted(struct jbuf *b, const char *s)
{
    jb_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof(tmp), "\\u%04x", c);
                esc = tmp;
            }
        }
        if (esc) {
            jb_put(b, run, (size_t)(s - run));
            jb_str(b, esc);
            run = s + 1;
        }
    }
    jb_put(b, run, (size_t)(s - run));
    jb_put(b, "\"", 1);
}

static int cmp_keys(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

static void jb_value(struct jbuf *b, const cJSON *item, int indent, int depth, bool sort,
                     bool sort_nested)
{
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        bool obj = cJSON_IsObject(item);
        size_t n = (size_t)cJSON_GetArraySize(item);
        if (n == 0) {
            jb_str(b, obj ? "{}" : "[]");
            return;
        }
        const cJSON **kids = malloc(n * sizeof(*kids));
        if (!kids) {
            b->oom = true;
            return;
        }
        size_t i = 0;
        for (const cJSON *c = item->child; c && i < n; c = c->next)
            kids[i++] = c;
        if (obj && sort)
            qsort(kids, n, sizeof(*kids), cmp_keys);
        jb_put(b, obj ? "{" : "[", 1);
        for (i = 0; i < n; i++) {
            if (i)
                jb_put(b, ",", 1);
            jb_indent(b, indent, depth + 1);
            if (obj) {
                jb_quoted(b, kids[i]->string);
                jb_put(b, ": ", 2);
            }
            jb_value(b, kids[i], indent, depth + 1, sort_nested, sort_nested);
        }
        free(kids);
        jb_indent(b, indent, depth);
        jb_put(b, obj ? "}" : "]", 1);
    } else if (cJSON_IsString(item)) {
        jb_quoted(b, item->valuestring);
    } else if (cJSON_IsRaw(item)) {
        jb_str(b, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        char tmp[64];
        double v = item->valuedouble;
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
            snprintf(tmp, sizeof(tmp), "%.0f", v);
        else
            snprintf(tmp, sizeof(tmp), "%.17g", v);
        jb_str(b, tmp);
    } else if (cJSON_IsTrue(item)) {
        jb_str(b, "true");
    } else if (cJSON_IsFalse(item)) {
        jb_str(b, "false");
    } else {
        jb_str(b, "null");
    }
}

char *mkmodel_json_print(const cJSON *item, int indent, bool sort_keys, bool sort_nested)
{
    struct jbuf b = {0};
    jb_value(&b, item, indent, 0, sort_keys, sort_nested);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

enum status mkmodel_json_write(const char *dir, const char *name, const cJSON *item, int indent,
                               bool sort_keys, bool sort_nested, bool newline, char *err,
                               size_t errlen)
{
    char *text = mkmodel_json_print(item, indent, sort_keys, sort_nested);
    if (!text)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory printing %s", name);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(text);
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", path, strerror(errno));
    }
    size_t len = strlen(text);
    bool bad = fwrite(text, 1, len, fp) != len;
    if (newline)
        bad |= fputc('\n', fp) == EOF;
    bad |= fclose(fp) != 0;
    free(text);
    if (bad)
        return status_fail(err, errlen, ST_ERR_IO, "%s: write failed", path);
    return ST_OK;
}
