/*
 * mkmodel_json.c - Python-json-style pretty printing for mkmodel's files
 * (see mkmodel.h).  mlx-lm and transformers write their JSON with
 * json.dump(indent=..., sort_keys=...); matching that keeps generated
 * model folders indistinguishable from converted ones.
 */
#include "mkmodel.h"
#include "strbuf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pretty_indent(struct strbuf *b, int indent, int depth)
{
    strbuf_put(b, "\n", 1);
    for (int i = 0; i < indent * depth; i++)
        strbuf_put(b, " ", 1);
}

static int cmp_keys(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

static void pretty_value(struct strbuf *b, const cJSON *item, int indent, int depth, bool sort,
                         bool sort_nested)
{
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        bool obj = cJSON_IsObject(item);
        size_t n = (size_t)cJSON_GetArraySize(item);
        if (n == 0) {
            strbuf_puts(b, obj ? "{}" : "[]");
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
        strbuf_put(b, obj ? "{" : "[", 1);
        for (i = 0; i < n; i++) {
            if (i)
                strbuf_put(b, ",", 1);
            pretty_indent(b, indent, depth + 1);
            if (obj) {
                strbuf_put_json_string(b, kids[i]->string);
                strbuf_put(b, ": ", 2);
            }
            pretty_value(b, kids[i], indent, depth + 1, sort_nested, sort_nested);
        }
        free(kids);
        pretty_indent(b, indent, depth);
        strbuf_put(b, obj ? "}" : "]", 1);
    } else if (cJSON_IsString(item)) {
        strbuf_put_json_string(b, item->valuestring);
    } else if (cJSON_IsRaw(item)) {
        strbuf_puts(b, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        char tmp[64];
        double v = item->valuedouble;
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
            snprintf(tmp, sizeof(tmp), "%.0f", v);
        else
            snprintf(tmp, sizeof(tmp), "%.17g", v);
        strbuf_puts(b, tmp);
    } else if (cJSON_IsTrue(item)) {
        strbuf_puts(b, "true");
    } else if (cJSON_IsFalse(item)) {
        strbuf_puts(b, "false");
    } else {
        strbuf_puts(b, "null");
    }
}

char *mkmodel_json_print(const cJSON *item, int indent, bool sort_keys, bool sort_nested)
{
    struct strbuf b = {0};
    pretty_value(&b, item, indent, 0, sort_keys, sort_nested);
    if (b.oom) {
        strbuf_free(&b);
        return NULL;
    }
    return b.data;
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
