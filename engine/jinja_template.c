/*
 * jinja_template.c - the public chat_template API: loading a model's
 * template, parsing, and rendering with a JSON context.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "jinja_internal.h"

#define MAX_CONFIG_BYTES (64u << 20)

struct chat_template {
    struct jinja_program prog;
    struct chat_template *tool_use; /* the "tool_use" variant of a named list, or NULL */
    char *bos;                      /* "" when the model has none */
    char *eos;
};

enum status chat_template_parse(const char *source, size_t len, struct chat_template **out,
                                char *err, size_t errlen)
{
    *out = NULL;
    if (!source)
        return status_fail(err, errlen, ST_ERR_INVALID, "no template source");
    if (len > JINJA_MAX_SOURCE)
        return status_fail(err, errlen, ST_ERR_RANGE, "template of %zu bytes is over the %u limit",
                           len, JINJA_MAX_SOURCE);
    struct chat_template *t = calloc(1, sizeof(*t));
    if (!t)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    arena_init(&t->prog.arena, 0, (size_t)JINJA_MAX_SOURCE * 32);
    t->prog.src = malloc(len + 1);
    t->bos = strdup("");
    t->eos = strdup("");
    if (!t->prog.src || !t->bos || !t->eos) {
        chat_template_free(t);
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    }
    memcpy(t->prog.src, source, len);
    t->prog.src[len] = 0;
    t->prog.len = len;
    enum status st = jinja_parse(&t->prog, err, errlen);
    if (st) {
        chat_template_free(t);
        return st;
    }
    *out = t;
    return ST_OK;
}

void chat_template_free(struct chat_template *t)
{
    if (!t)
        return;
    chat_template_free(t->tool_use);
    arena_free(&t->prog.arena);
    free(t->prog.src);
    free(t->bos);
    free(t->eos);
    free(t);
}

const char *chat_template_bos_token(const struct chat_template *t)
{
    return t->bos;
}

const char *chat_template_eos_token(const struct chat_template *t)
{
    return t->eos;
}

/* ---- loading ------------------------------------------------------------- */

/* Reads a whole file; ST_ERR_NOT_FOUND when it does not exist. */
static enum status read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return status_fail(err, errlen, ST_ERR_NOT_FOUND, "%s: not found", path);
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1 || cap > MAX_CONFIG_BYTES)
            break;
        cap *= 2;
        char *grown = realloc(buf, cap);
        if (!grown)
            free(buf);
        buf = grown;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory", path);
    if (bad || n > MAX_CONFIG_BYTES) {
        free(buf);
        return status_fail(err, errlen, bad ? ST_ERR_IO : ST_ERR_RANGE, "%s: %s", path,
                           bad ? "read error" : "too large");
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return ST_OK;
}

/* A special token in tokenizer_config.json: a string, null, or an
 * AddedToken object {"content": ...}. */
static const char *token_string(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c))
            return c->valuestring;
    }
    return "";
}

/* The template named `want` in a list of {name, template}; with want NULL
 * the "default" one, else the first.  NULL when there is none. */
static const char *named_template(const cJSON *list, const char *want)
{
    const char *first = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (!cJSON_IsString(tmpl))
            continue;
        if (cJSON_IsString(name) && !strcmp(name->valuestring, want ? want : "default"))
            return tmpl->valuestring;
        if (!first)
            first = tmpl->valuestring;
    }
    return want ? NULL : first;
}

/* The template source inside a parsed tokenizer_config / chat_template.json. */
static const char *config_template(const cJSON *cfg)
{
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct))
        return ct->valuestring;
    return cJSON_IsArray(ct) ? named_template(ct, NULL) : NULL;
}

static enum status load_json(const char *path, cJSON **out, char *err, size_t errlen)
{
    char *text;
    size_t len;
    *out = NULL;
    enum status st = read_file(path, &text, &len, err, errlen);
    if (st)
        return st;
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!*out)
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: invalid JSON", path);
    return ST_OK;
}

enum status chat_template_load(const char *model_dir, struct chat_template **out, char *err,
                               size_t errlen)
{
    *out = NULL;
    char path[4096];
    cJSON *cfg = NULL;
    enum status st;
    if (snprintf(path, sizeof(path), "%s/tokenizer_config.json", model_dir) >= (int)sizeof(path))
        return status_fail(err, errlen, ST_ERR_RANGE, "model path too long");
    st = load_json(path, &cfg, err, errlen);
    if (st && st != ST_ERR_NOT_FOUND)
        return st;
    if (cfg && !cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: not a JSON object", path);
    }

    char *source = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/chat_template.jinja", model_dir);
    st = read_file(path, &source, &len, err, errlen);
    if (st == ST_ERR_NOT_FOUND) {
        const char *s = cfg ? config_template(cfg) : NULL;
        cJSON *extra = NULL;
        if (!s) {
            snprintf(path, sizeof(path), "%s/chat_template.json", model_dir);
            st = load_json(path, &extra, err, errlen);
            if (st && st != ST_ERR_NOT_FOUND) {
                cJSON_Delete(cfg);
                return st;
            }
            s = extra ? config_template(extra) : NULL;
        }
        st = ST_OK;
        if (s && !(source = strdup(s)))
            st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        len = source ? strlen(source) : 0;
        cJSON_Delete(extra);
        if (!st && !source)
            st = status_fail(err, errlen, ST_ERR_NOT_FOUND, "%s has no chat template", model_dir);
    }
    if (st) {
        cJSON_Delete(cfg);
        return st;
    }
    struct chat_template *t;
    st = chat_template_parse(source, len, &t, err, errlen);
    free(source);
    if (st) {
        cJSON_Delete(cfg);
        return st;
    }
    /* transformers renders with the "tool_use" template when tools are given */
    const cJSON *ct = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
    const char *tool_src = cJSON_IsArray(ct) ? named_template(ct, "tool_use") : NULL;
    if (tool_src &&
        (st = chat_template_parse(tool_src, strlen(tool_src), &t->tool_use, err, errlen))) {
        cJSON_Delete(cfg);
        chat_template_free(t);
        return st;
    }
    if (cfg) {
        char *bos = strdup(token_string(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token")));
        char *eos = strdup(token_string(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token")));
        cJSON_Delete(cfg);
        if (!bos || !eos) {
            free(bos);
            free(eos);
            chat_template_free(t);
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        }
        free(t->bos);
        free(t->eos);
        t->bos = bos;
        t->eos = eos;
    }
    *out = t;
    return ST_OK;
}

/* ---- rendering ----------------------------------------------------------- */

enum status chat_template_render(const struct chat_template *t, const cJSON *context, char **out,
                                 size_t *out_len, char *err, size_t errlen)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (context && !cJSON_IsObject(context))
        return status_fail(err, errlen, ST_ERR_INVALID, "template context must be a JSON object");
    struct arena a;
    arena_init(&a, 64 << 10, JINJA_MAX_RENDER_MEM);
    struct jbuf buf = {0};
    const cJSON *tools = context ? cJSON_GetObjectItemCaseSensitive(context, "tools") : NULL;
    const struct jinja_program *prog =
        t->tool_use && tools && !cJSON_IsNull(tools) ? &t->tool_use->prog : &t->prog;
    struct jrender r = {.prog = prog, .a = &a, .err = err, .errlen = errlen, .out = &buf};
    enum status st = ST_OK;
    r.globals = arena_calloc(&a, 1, sizeof(*r.globals));
    if (!r.globals)
        st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    int have_bos = 0, have_eos = 0;
    for (const cJSON *c = context ? context->child : NULL; c && !st; c = c->next) {
        struct jval v;
        int rc = jv_from_json(&a, c, &v, 0);
        if (rc == -3)
            st = status_fail(err, errlen, ST_ERR_RANGE, "context nested deeper than %d levels",
                             JINJA_MAX_DATA_DEPTH);
        else if (rc || jscope_set(&a, r.globals, c->string ? c->string : "", v))
            st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory copying the context");
        have_bos |= c->string && !strcmp(c->string, "bos_token");
        have_eos |= c->string && !strcmp(c->string, "eos_token");
    }
    if (!st && ((!have_bos && jscope_set(&a, r.globals, "bos_token", jv_cstr(t->bos))) ||
                (!have_eos && jscope_set(&a, r.globals, "eos_token", jv_cstr(t->eos)))))
        st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = jinja_exec(&r, r.globals, prog->root);
    arena_free(&a);
    if (st) {
        jbuf_free(&buf);
        return st;
    }
    if (!buf.p) {
        buf.p = malloc(1);
        if (!buf.p)
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        buf.p[0] = 0;
    }
    *out = buf.p;
    if (out_len)
        *out_len = buf.n;
    return ST_OK;
}
