#include "anthropic_output.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reasoning.h"

enum ao_kind {
    AO_NONE,
    AO_THINKING,
    AO_TEXT,
    AO_TOOL,
};

struct anthropic_output {
    struct anthropic_output_opts opts;
    struct reasoning_splitter *rs;
    struct toolcall_parser *tp;
    cJSON *content;    /* finished blocks */
    enum ao_kind open; /* the block being written */
    int index;         /* its index (= blocks started - 1) */
    char *buf;         /* its text, thinking or input JSON so far */
    size_t len, cap;
    char tool_id[40];
    char *tool_name;
    int tool_uses;
    int oom;
};

/* "toolu_" + 24 hex digits; unique enough to pair tool_use with tool_result. */
static void ao_tool_id(char *out, size_t len)
{
    unsigned char raw[12];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof(raw)) {
        static unsigned counter;
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)__atomic_add_fetch(&counter, 1, 0) << 32);
        memset(raw, 0, sizeof(raw));
        memcpy(raw, &t, sizeof(t));
    }
    int n = snprintf(out, len, "toolu_");
    for (size_t i = 0; i < sizeof(raw) && (size_t)n + 2 < len; i++)
        n += snprintf(out + n, len - (size_t)n, "%02x", raw[i]);
}

static void ao_emit(struct anthropic_output *o, const char *event, cJSON *data)
{
    if (!data) {
        o->oom = 1;
        return;
    }
    o->opts.emit(o->opts.user, event, data);
    cJSON_Delete(data);
}

static cJSON *ao_event(const char *type, int index)
{
    cJSON *e = cJSON_CreateObject();
    if (e && (!cJSON_AddStringToObject(e, "type", type) ||
              !cJSON_AddNumberToObject(e, "index", index))) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

static int ao_append(struct anthropic_output *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *p = realloc(o->buf, cap);
        if (!p)
            return -1;
        o->buf = p;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
    return 0;
}

/* The block as the non-streaming reply shows it; text is the content so far. */
static cJSON *ao_block(const struct anthropic_output *o, enum ao_kind kind, const char *text)
{
    cJSON *b = cJSON_CreateObject();
    if (!b)
        return NULL;
    int ok = 1;
    if (kind == AO_THINKING) {
        ok = cJSON_AddStringToObject(b, "type", "thinking") &&
             cJSON_AddStringToObject(b, "thinking", text) &&
             cJSON_AddStringToObject(b, "signature", "");
    } else if (kind == AO_TEXT) {
        ok = cJSON_AddStringToObject(b, "type", "text") && cJSON_AddStringToObject(b, "text", text);
    } else {
        /* Arguments that are not a JSON object (a model's slip) give {}:
         * `input` must be an object for every client. */
        cJSON *input = text[0] ? cJSON_Parse(text) : NULL;
        if (!cJSON_IsObject(input)) {
            cJSON_Delete(input);
            input = cJSON_CreateObject();
        }
        ok = input && cJSON_AddStringToObject(b, "type", "tool_use") &&
             cJSON_AddStringToObject(b, "id", o->tool_id) &&
             cJSON_AddStringToObject(b, "name", o->tool_name ? o->tool_name : "");
        if (ok)
            cJSON_AddItemToObject(b, "input", input);
        else
            cJSON_Delete(input);
    }
    if (!ok) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

static void ao_close(struct anthropic_output *o)
{
    if (o->open == AO_NONE)
        return;
    cJSON *b = ao_block(o, o->open, o->buf ? o->buf : "");
    if (b)
        cJSON_AddItemToArray(o->content, b);
    else
        o->oom = 1;
    if (o->opts.emit)
        ao_emit(o, "content_block_stop", ao_event("content_block_stop", o->index));
    o->open = AO_NONE;
    o->len = 0;
    if (o->buf)
        o->buf[0] = '\0';
    free(o->tool_name);
    o->tool_name = NULL;
}

static void ao_start(struct anthropic_output *o, enum ao_kind kind, const char *tool_name,
                     size_t name_len)
{
    ao_close(o);
    o->open = kind;
    o->index++;
    if (kind == AO_TOOL) {
        o->tool_uses++;
        ao_tool_id(o->tool_id, sizeof(o->tool_id));
        o->tool_name = malloc(name_len + 1);
        if (!o->tool_name) {
            o->oom = 1;
        } else {
            memcpy(o->tool_name, tool_name, name_len);
            o->tool_name[name_len] = '\0';
        }
    }
    if (!o->opts.emit)
        return;
    cJSON *e = ao_event("content_block_start", o->index);
    cJSON *b = ao_block(o, kind, kind == AO_TOOL ? "{}" : "");
    if (e && b) {
        cJSON_AddItemToObject(e, "content_block", b);
    } else {
        cJSON_Delete(e);
        cJSON_Delete(b);
        e = NULL;
    }
    ao_emit(o, "content_block_start", e);
}

/* Adds text to a block of `kind`, starting one when another kind is open. */
static void ao_add(struct anthropic_output *o, enum ao_kind kind, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (o->open != kind)
        ao_start(o, kind, NULL, 0);
    if (ao_append(o, s, n)) {
        o->oom = 1;
        return;
    }
    if (!o->opts.emit)
        return;
    static const char *const delta_type[] = {
        [AO_THINKING] = "thinking_delta", [AO_TEXT] = "text_delta", [AO_TOOL] = "input_json_delta"};
    static const char *const field[] = {
        [AO_THINKING] = "thinking", [AO_TEXT] = "text", [AO_TOOL] = "partial_json"};
    cJSON *e = ao_event("content_block_delta", o->index);
    cJSON *d = e ? cJSON_AddObjectToObject(e, "delta") : NULL;
    char *piece = malloc(n + 1);
    if (piece) {
        memcpy(piece, s, n);
        piece[n] = '\0';
    }
    if (!d || !piece || !cJSON_AddStringToObject(d, "type", delta_type[kind]) ||
        !cJSON_AddStringToObject(d, field[kind], piece)) {
        cJSON_Delete(e);
        e = NULL;
    }
    free(piece);
    ao_emit(o, "content_block_delta", e);
}

static void ao_on_toolcall(void *user, const struct toolcall_event *ev)
{
    struct anthropic_output *o = user;
    switch (ev->kind) {
    case TOOLCALL_EVENT_TEXT: ao_add(o, AO_TEXT, ev->data, ev->len); break;
    case TOOLCALL_EVENT_BEGIN: ao_start(o, AO_TOOL, ev->data, ev->len); break;
    case TOOLCALL_EVENT_ARGS: ao_add(o, AO_TOOL, ev->data, ev->len); break;
    case TOOLCALL_EVENT_END: ao_close(o); break;
    }
}

struct anthropic_output *anthropic_output_new(const struct anthropic_output_opts *opts)
{
    struct anthropic_output *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->opts = *opts;
    o->index = -1;
    o->content = cJSON_CreateArray();
    o->rs = reasoning_splitter_new(opts->thinking_starts_inside);
    if (opts->forced_tool)
        o->tp = toolcall_parser_new_named(opts->forced_tool, ao_on_toolcall, o);
    else if (opts->parse_tools)
        o->tp = toolcall_parser_new(opts->tool_format, ao_on_toolcall, o);
    if (!o->content || !o->rs || ((opts->parse_tools || opts->forced_tool) && !o->tp)) {
        anthropic_output_free(o);
        return NULL;
    }
    return o;
}

static void ao_route(struct anthropic_output *o, const struct reasoning_delta *d)
{
    ao_add(o, AO_THINKING, d->reasoning, d->reasoning_len);
    if (!d->content_len)
        return;
    if (!o->tp)
        ao_add(o, AO_TEXT, d->content, d->content_len);
    else if (toolcall_feed(o->tp, d->content, d->content_len))
        o->oom = 1;
}

int anthropic_output_feed(struct anthropic_output *o, const char *text, size_t len)
{
    /* JSON strings here are C strings: a NUL byte (a model can emit one)
     * would silently cut a block short, so it shows as U+FFFD instead. */
    char *clean = NULL;
    if (memchr(text, '\0', len)) {
        clean = malloc(len * 3);
        if (!clean)
            return -1;
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            if (text[i]) {
                clean[n++] = text[i];
            } else {
                memcpy(clean + n, "\xef\xbf\xbd", 3);
                n += 3;
            }
        }
        text = clean;
        len = n;
    }
    struct reasoning_delta d;
    int rc = reasoning_feed(o->rs, text, len, &d);
    if (rc == 0)
        ao_route(o, &d);
    free(clean);
    return rc || o->oom ? -1 : 0;
}

int anthropic_output_finish(struct anthropic_output *o)
{
    struct reasoning_delta d;
    if (reasoning_finish(o->rs, &d))
        return -1;
    ao_route(o, &d);
    if (o->tp && toolcall_finish(o->tp))
        o->oom = 1;
    ao_close(o);
    return o->oom ? -1 : 0;
}

const cJSON *anthropic_output_content(const struct anthropic_output *o)
{
    return o->content;
}

int anthropic_output_tool_uses(const struct anthropic_output *o)
{
    return o->tool_uses;
}

void anthropic_output_free(struct anthropic_output *o)
{
    if (!o)
        return;
    reasoning_splitter_free(o->rs);
    toolcall_parser_free(o->tp);
    cJSON_Delete(o->content);
    free(o->buf);
    free(o->tool_name);
    free(o);
}
