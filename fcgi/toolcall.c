/*
 * toolcall.c - the incremental tool-call scanner: a byte-at-a-time state
 * machine over text, markers and one level of JSON object keys.  Every
 * decision is taken on one byte with the state so far, which is what makes
 * the result independent of how the input was split.
 */
#include "toolcall.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "json_constraint.h"

/* ==== growable bytes ==================================================== */

struct tc_buf {
    char *data;
    size_t len, cap;
};

static int tc_buf_push(struct tc_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int tc_buf_putc(struct tc_buf *b, char c)
{
    return tc_buf_push(b, &c, 1);
}

/* ==== parser state ====================================================== */

enum tc_state {
    TC_TEXT,  /* content; pending = held whitespace + a possible marker start */
    TC_OPEN,  /* after a marker or separator: a call object (or '[') must follow */
    TC_OBJ,   /* inside a call object */
    TC_AFTER, /* a call object ended: separator, closing tag or end of calls */
    TC_CLOSE, /* matching "</tool_call>" */
};

enum tc_container {
    TC_C_HERMES,       /* <tool_call>{...}</tool_call> */
    TC_C_SEMI,         /* <|python_tag|> or a bare object: calls separated by ';' */
    TC_C_ARRAY,        /* [{...}, {...}] */
    TC_C_MISTRAL_OPEN, /* after [TOOL_CALLS]: '[' or one object */
};

enum tc_obj_state {
    TC_O_KEY_OR_END,
    TC_O_KEY,
    TC_O_COLON,
    TC_O_VALUE_START,
    TC_O_VALUE,
    TC_O_AFTER_VALUE
};

enum tc_target { TC_V_SKIP, TC_V_NAME, TC_V_ARGS };

static const char TC_CLOSE_TAG[] = "</tool_call>";

struct toolcall_parser {
    enum toolcall_format fmt;
    toolcall_emit_fn emit;
    void *user;
    bool oom;

    enum tc_state state;
    enum tc_container container;
    struct tc_buf pending; /* bytes whose fate is undecided (become TEXT on failure) */
    size_t ws_len;         /* TC_TEXT: leading whitespace of pending */
    bool at_start;         /* no content emitted yet: a bare call may begin */
    bool after_call;       /* whitespace before the next marker is dropped */
    bool bare;             /* the current object began without a marker */
    int container_calls;   /* calls committed in the current container */
    size_t close_pos;      /* TC_CLOSE: bytes of the closing tag matched */

    /* the current object */
    enum tc_obj_state ostate;
    enum tc_target target;
    struct tc_buf key;
    int n_members;
    char vkind; /* first byte of the value being scanned */
    int depth;
    bool in_str, esc;
    struct tc_buf name;  /* the name's JSON literal */
    struct tc_buf args;  /* arguments held until the name is known */
    bool args_seen;      /* an arguments/parameters member started */
    bool args_complete;  /* ... and ended */
    bool args_streaming; /* its bytes go straight out as ARGS */
    bool args_emitted;   /* some ARGS were reported for this call */
    bool committed;      /* BEGIN was reported for the current object */
    int n_calls;

    /* a parser made by toolcall_parser_new_named: the whole output is the
     * arguments of one call to named */
    char *named;
    struct json_check named_json; /* the arguments so far, to know when they end */
    bool named_done;              /* END was reported */

    /* coalesced output of TEXT / ARGS bytes within one feed */
    struct tc_buf out;
    enum toolcall_event_kind out_kind;
    int out_index;
};

static bool tc_is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

enum toolcall_format toolcall_format_from_name(const char *name)
{
    if (!name)
        return TOOLCALL_FORMAT_AUTO;
    if (!strcmp(name, "qwen") || !strcmp(name, "qwen3") || !strcmp(name, "hermes"))
        return TOOLCALL_FORMAT_HERMES;
    if (!strcmp(name, "llama3"))
        return TOOLCALL_FORMAT_LLAMA3;
    if (!strcmp(name, "mistral"))
        return TOOLCALL_FORMAT_MISTRAL;
    return TOOLCALL_FORMAT_AUTO;
}

/* The markers a format recognises, NULL-terminated. */
static const char *const *tc_markers(enum toolcall_format fmt)
{
    static const char *const all[] = {"<tool_call>", "<|python_tag|>", "[TOOL_CALLS]", NULL};
    static const char *const hermes[] = {"<tool_call>", NULL};
    static const char *const llama3[] = {"<|python_tag|>", NULL};
    static const char *const mistral[] = {"[TOOL_CALLS]", NULL};
    switch (fmt) {
    case TOOLCALL_FORMAT_HERMES: return hermes;
    case TOOLCALL_FORMAT_LLAMA3: return llama3;
    case TOOLCALL_FORMAT_MISTRAL: return mistral;
    case TOOLCALL_FORMAT_AUTO: break;
    }
    return all;
}

/* Whether output that starts with `c` may be a call without a marker. */
static bool tc_bare_opener(const struct toolcall_parser *p, char c)
{
    switch (p->fmt) {
    case TOOLCALL_FORMAT_AUTO: return c == '{' || c == '[';
    case TOOLCALL_FORMAT_LLAMA3: return c == '{';
    case TOOLCALL_FORMAT_MISTRAL: return c == '[';
    case TOOLCALL_FORMAT_HERMES: break;
    }
    return false;
}

/* 2: s is a whole marker (*which set), 1: a proper prefix of one, 0: neither. */
static int tc_marker_match(const struct toolcall_parser *p, const char *s, size_t n,
                           const char **which)
{
    int best = 0;
    for (const char *const *m = tc_markers(p->fmt); *m; m++) {
        size_t ml = strlen(*m);
        if (n <= ml && memcmp(*m, s, n) == 0) {
            if (n == ml) {
                *which = *m;
                return 2;
            }
            best = 1;
        }
    }
    return best;
}

/* ==== output ============================================================ */

static void tc_flush(struct toolcall_parser *p)
{
    if (!p->out.len)
        return;
    struct toolcall_event ev = {p->out_kind, p->out_index, p->out.data, p->out.len};
    p->emit(p->user, &ev);
    p->out.len = 0;
}

static void tc_emit_bytes(struct toolcall_parser *p, enum toolcall_event_kind kind, int index,
                          const char *s, size_t n)
{
    if (!n)
        return;
    if (p->out.len && (p->out_kind != kind || p->out_index != index))
        tc_flush(p);
    p->out_kind = kind;
    p->out_index = index;
    if (tc_buf_push(&p->out, s, n))
        p->oom = true;
    if (kind == TOOLCALL_EVENT_TEXT)
        p->at_start = false;
}

static void tc_emit_event(struct toolcall_parser *p, enum toolcall_event_kind kind, const char *s,
                          size_t n)
{
    tc_flush(p);
    struct toolcall_event ev = {kind, p->n_calls - 1, s, n};
    p->emit(p->user, &ev);
}

/* Reports held arguments: a JSON string is decoded, anything else verbatim. */
static void tc_emit_held_args(struct toolcall_parser *p)
{
    if (p->args.len && p->args.data[0] == '"') {
        cJSON *s = cJSON_ParseWithLength(p->args.data, p->args.len);
        if (cJSON_IsString(s))
            tc_emit_bytes(p, TOOLCALL_EVENT_ARGS, p->n_calls - 1, s->valuestring,
                          strlen(s->valuestring));
        cJSON_Delete(s);
    } else {
        tc_emit_bytes(p, TOOLCALL_EVENT_ARGS, p->n_calls - 1, p->args.data, p->args.len);
    }
    p->args_emitted = true;
}

/* Ends the committed call: arguments default to "{}". */
static void tc_end_call(struct toolcall_parser *p)
{
    if (!p->args_emitted && p->args_complete)
        tc_emit_held_args(p);
    if (!p->args_emitted) {
        tc_emit_bytes(p, TOOLCALL_EVENT_ARGS, p->n_calls - 1, "{}", 2);
        p->args_emitted = true;
    }
    tc_emit_event(p, TOOLCALL_EVENT_END, "", 0);
    p->committed = false;
    p->container_calls++;
}

/* ==== state changes ===================================================== */

static void tc_obj_begin(struct toolcall_parser *p, bool bare)
{
    p->state = TC_OBJ;
    p->ostate = TC_O_KEY_OR_END;
    p->bare = bare;
    p->n_members = 0;
    p->name.len = 0;
    p->args.len = 0;
    p->args_seen = p->args_complete = p->args_streaming = p->args_emitted = false;
    p->committed = false;
}

static void tc_to_text(struct toolcall_parser *p, bool after_call)
{
    p->state = TC_TEXT;
    p->after_call = after_call;
    p->ws_len = 0;
}

/* The bytes seen since the last decision were not a call.  Before the first
 * committed call of a container they are content; after one they are
 * debris between calls and dropped. */
static void tc_fail(struct toolcall_parser *p)
{
    bool had_calls = p->container_calls > 0;
    if (p->committed) {
        tc_end_call(p);
        had_calls = true;
    }
    if (!had_calls)
        tc_emit_bytes(p, TOOLCALL_EVENT_TEXT, 0, p->pending.data, p->pending.len);
    p->pending.len = 0;
    tc_to_text(p, had_calls);
}

static void tc_commit(struct toolcall_parser *p, const char *name)
{
    p->n_calls++;
    p->committed = true;
    p->pending.len = 0;
    tc_emit_event(p, TOOLCALL_EVENT_BEGIN, name, strlen(name));
    if (p->args_complete)
        tc_emit_held_args(p);
}

static int tc_step(struct toolcall_parser *p, char c);

/* ==== TC_TEXT =========================================================== */

static int tc_text(struct toolcall_parser *p, char c)
{
    if ((p->at_start || p->after_call) && p->pending.len == p->ws_len && tc_is_ws(c)) {
        p->ws_len++;
        return tc_buf_putc(&p->pending, c);
    }
    if (tc_buf_putc(&p->pending, c))
        return -1;
    const char *cand = p->pending.data + p->ws_len, *which = NULL;
    size_t n = p->pending.len - p->ws_len;
    int m = tc_marker_match(p, cand, n, &which);
    if (m == 2) {
        p->container = !strcmp(which, "<tool_call>")      ? TC_C_HERMES
                       : !strcmp(which, "<|python_tag|>") ? TC_C_SEMI
                                                          : TC_C_MISTRAL_OPEN;
        p->container_calls = 0;
        p->bare = false;
        p->state = TC_OPEN;
        return 0;
    }
    if (m == 1)
        return 0;
    if (p->at_start && tc_bare_opener(p, cand[0])) {
        /* A call without a marker: keep the opener, replay what followed. */
        char rest[32];
        size_t nrest = n - 1 < sizeof(rest) ? n - 1 : sizeof(rest);
        memcpy(rest, cand + 1, nrest);
        p->pending.len = p->ws_len + 1;
        p->container_calls = 0;
        if (cand[0] == '{') {
            p->container = TC_C_SEMI;
            tc_obj_begin(p, true);
        } else {
            p->container = TC_C_ARRAY;
            p->state = TC_OPEN;
            p->bare = true;
        }
        for (size_t i = 0; i < nrest; i++)
            if (tc_step(p, rest[i]))
                return -1;
        return 0;
    }
    /* Content: whitespace after a call is dropped, before any call kept. */
    if (!p->after_call)
        tc_emit_bytes(p, TOOLCALL_EVENT_TEXT, 0, p->pending.data, p->ws_len);
    p->after_call = false;
    size_t k = 1;
    while (k < n && tc_marker_match(p, cand + k, n - k, &which) == 0)
        k++;
    tc_emit_bytes(p, TOOLCALL_EVENT_TEXT, 0, cand, k);
    memmove(p->pending.data, cand + k, n - k);
    p->pending.len = n - k;
    p->ws_len = 0;
    return 0;
}

/* ==== TC_OBJ ============================================================ */

/* Scans one byte of a value: 0 = part of it, 1 = part of it and the last,
 * 2 = not part of it (it ended just before). */
static int tc_value_scan(struct toolcall_parser *p, char c)
{
    if (p->vkind == '"' || p->in_str) {
        if (p->esc)
            p->esc = false;
        else if (c == '\\')
            p->esc = true;
        else if (c == '"') {
            p->in_str = false;
            if (p->vkind == '"')
                return 1;
        }
        return 0;
    }
    if (p->vkind == '{' || p->vkind == '[') {
        if (c == '"')
            p->in_str = true;
        else if (c == '{' || c == '[')
            p->depth++;
        else if ((c == '}' || c == ']') && --p->depth == 0)
            return 1;
        return 0;
    }
    return c == ',' || c == '}' || c == ']' || tc_is_ws(c) ? 2 : 0;
}

/* Routes one byte of the current value to its destination. */
static int tc_value_byte(struct toolcall_parser *p, char c)
{
    switch (p->target) {
    case TC_V_NAME: return tc_buf_putc(&p->name, c);
    case TC_V_ARGS:
        if (p->args_streaming) {
            tc_emit_bytes(p, TOOLCALL_EVENT_ARGS, p->n_calls - 1, &c, 1);
            p->args_emitted = true;
            return 0;
        }
        return tc_buf_putc(&p->args, c);
    case TC_V_SKIP: break;
    }
    return 0;
}

/* A value ended.  Returns -1 on memory, 1 when the object is not a call. */
static int tc_value_end(struct toolcall_parser *p)
{
    p->n_members++;
    p->ostate = TC_O_AFTER_VALUE;
    if (p->target == TC_V_ARGS) {
        p->args_complete = true;
        if (p->committed && !p->args_emitted)
            tc_emit_held_args(p);
    } else if (p->target == TC_V_NAME) {
        cJSON *s = cJSON_ParseWithLength(p->name.data, p->name.len);
        int bad = !cJSON_IsString(s) || !s->valuestring[0];
        if (!bad)
            tc_commit(p, s->valuestring);
        cJSON_Delete(s);
        return bad;
    }
    return 0;
}

static int tc_obj(struct toolcall_parser *p, char c)
{
    switch (p->ostate) {
    case TC_O_KEY_OR_END:
        if (tc_is_ws(c))
            return 0;
        if (c == '"') {
            p->key.len = 0;
            p->esc = false;
            p->ostate = TC_O_KEY;
            return 0;
        }
        if (c == '}')
            break; /* end of object, below */
        return 1;
    case TC_O_KEY:
        if (p->esc) {
            p->esc = false;
        } else if (c == '\\') {
            p->esc = true;
        } else if (c == '"') {
            if (tc_buf_putc(&p->key, 0))
                return -1;
            /* Only an object that opens with "name" is a call without a marker. */
            if (p->bare && p->n_members == 0 && strcmp(p->key.data, "name"))
                return 1;
            p->ostate = TC_O_COLON;
            return 0;
        }
        return p->key.len < 64 ? tc_buf_putc(&p->key, c) : 0;
    case TC_O_COLON:
        if (tc_is_ws(c))
            return 0;
        if (c != ':')
            return 1;
        p->ostate = TC_O_VALUE_START;
        return 0;
    case TC_O_VALUE_START: {
        if (tc_is_ws(c))
            return 0;
        const char *k = p->key.data;
        p->target = TC_V_SKIP;
        if (!strcmp(k, "name") && !p->committed && !p->name.len)
            p->target = TC_V_NAME;
        else if ((!strcmp(k, "arguments") || !strcmp(k, "parameters")) && !p->args_seen)
            p->target = TC_V_ARGS;
        if (p->target == TC_V_NAME && c != '"')
            return 1;
        p->vkind = c;
        p->depth = (c == '{' || c == '[') ? 1 : 0;
        p->in_str = false;
        p->esc = false;
        if (p->target == TC_V_ARGS) {
            p->args_seen = true;
            p->args_streaming = p->committed && c != '"';
        }
        if (tc_value_byte(p, c))
            return -1;
        p->ostate = TC_O_VALUE;
        return 0;
    }
    case TC_O_VALUE: {
        int r = tc_value_scan(p, c);
        if (r == 2) {
            int e = tc_value_end(p);
            return e ? e : tc_obj(p, c);
        }
        if (tc_value_byte(p, c))
            return -1;
        return r == 1 ? tc_value_end(p) : 0;
    }
    case TC_O_AFTER_VALUE:
        if (tc_is_ws(c))
            return 0;
        if (c == ',') {
            p->ostate = TC_O_KEY_OR_END;
            return 0;
        }
        if (c == '}')
            break;
        return 1;
    }
    /* '}' closed the object. */
    if (!p->committed)
        return 1;
    tc_end_call(p);
    p->pending.len = 0;
    p->state = TC_AFTER;
    return 0;
}

/* ==== the byte loop ===================================================== */

static int tc_step(struct toolcall_parser *p, char c)
{
    switch (p->state) {
    case TC_TEXT: return tc_text(p, c);
    case TC_OPEN:
        if (tc_buf_putc(&p->pending, c))
            return -1;
        if (tc_is_ws(c))
            return 0;
        if (c == '{') {
            tc_obj_begin(p, p->bare && p->container_calls == 0 && p->container == TC_C_ARRAY);
            return 0;
        }
        if (c == '[' && p->container == TC_C_MISTRAL_OPEN) {
            p->container = TC_C_ARRAY;
            return 0;
        }
        p->pending.len--; /* c is replayed as text */
        tc_fail(p);
        return tc_step(p, c);
    case TC_OBJ: {
        bool was = p->committed;
        if (!was && tc_buf_putc(&p->pending, c))
            return -1;
        int r = tc_obj(p, c);
        if (r < 0)
            return -1;
        if (r > 0) {
            /* Not a call.  A byte that broke an uncommitted object is part of
             * its text; after a commit it starts whatever follows. */
            tc_fail(p);
            return was ? tc_step(p, c) : 0;
        }
        return 0;
    }
    case TC_AFTER:
        if (tc_is_ws(c))
            return 0;
        if (p->container == TC_C_HERMES && c == '<') {
            p->state = TC_CLOSE;
            p->close_pos = 1;
            return 0;
        }
        if ((p->container == TC_C_SEMI && c == ';') || (p->container == TC_C_ARRAY && c == ',')) {
            p->state = TC_OPEN;
            p->bare = false;
            return 0;
        }
        tc_to_text(p, true);
        return c == ']' && p->container == TC_C_ARRAY ? 0 : tc_step(p, c);
    case TC_CLOSE:
        if (c == TC_CLOSE_TAG[p->close_pos]) {
            if (++p->close_pos == sizeof(TC_CLOSE_TAG) - 1)
                tc_to_text(p, true);
            return 0;
        }
        /* Not the closing tag: what matched so far is text (maybe a new marker). */
        tc_to_text(p, true);
        for (size_t i = 0; i < p->close_pos; i++)
            if (tc_step(p, TC_CLOSE_TAG[i]))
                return -1;
        return tc_step(p, c);
    }
    return 0;
}

/* ==== public API ======================================================== */

struct toolcall_parser *toolcall_parser_new(enum toolcall_format fmt, toolcall_emit_fn emit,
                                            void *user)
{
    struct toolcall_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->fmt = fmt;
    p->emit = emit;
    p->user = user;
    p->at_start = true;
    p->state = TC_TEXT;
    return p;
}

struct toolcall_parser *toolcall_parser_new_named(const char *name, toolcall_emit_fn emit,
                                                  void *user)
{
    struct toolcall_parser *p = toolcall_parser_new(TOOLCALL_FORMAT_AUTO, emit, user);
    if (p)
        p->named = strdup(name);
    if (p && !p->named) {
        toolcall_parser_free(p);
        return NULL;
    }
    if (p)
        json_check_init(&p->named_json);
    return p;
}

/* A named parser's byte: whitespace before the object is dropped, the
 * object is the arguments, and nothing after it counts. */
static void tc_named_step(struct toolcall_parser *p, char c)
{
    if (!p->n_calls) {
        if (tc_is_ws(c))
            return;
        tc_commit(p, p->named);
    }
    if (!p->committed || !json_check_feed(&p->named_json, &c, 1))
        return;
    tc_emit_bytes(p, TOOLCALL_EVENT_ARGS, 0, &c, 1);
    p->args_emitted = true;
    if (json_check_done(&p->named_json))
        p->committed = false; /* closed by its JSON; END comes with toolcall_finish */
}

static int tc_named_finish(struct toolcall_parser *p)
{
    if (!p->n_calls)
        tc_commit(p, p->named);
    if (!p->named_done)
        tc_end_call(p);
    p->named_done = true;
    tc_flush(p);
    return p->oom ? -1 : 0;
}

int toolcall_feed(struct toolcall_parser *p, const char *text, size_t len)
{
    if (p->named && !p->oom) {
        for (size_t i = 0; i < len; i++)
            tc_named_step(p, text[i]);
        tc_flush(p);
        return p->oom ? -1 : 0;
    }
    for (size_t i = 0; i < len && !p->oom; i++)
        if (tc_step(p, text[i]))
            p->oom = true;
    if (!p->oom)
        tc_flush(p);
    return p->oom ? -1 : 0;
}

int toolcall_finish(struct toolcall_parser *p)
{
    if (p->oom)
        return -1;
    if (p->named)
        return tc_named_finish(p);
    switch (p->state) {
    case TC_TEXT:
        if (!p->after_call)
            tc_emit_bytes(p, TOOLCALL_EVENT_TEXT, 0, p->pending.data, p->pending.len);
        else if (p->pending.len)
            tc_emit_bytes(p, TOOLCALL_EVENT_TEXT, 0, p->pending.data + p->ws_len,
                          p->pending.len - p->ws_len);
        break;
    case TC_OPEN:
    case TC_OBJ: tc_fail(p); break;
    case TC_AFTER:
    case TC_CLOSE: break;
    }
    p->pending.len = 0;
    p->ws_len = 0;
    p->state = TC_TEXT;
    p->after_call = true;
    if (!p->oom)
        tc_flush(p);
    return p->oom ? -1 : 0;
}

int toolcall_count(const struct toolcall_parser *p)
{
    return p->n_calls;
}

bool toolcall_open(const struct toolcall_parser *p)
{
    return p->committed;
}

void toolcall_parser_free(struct toolcall_parser *p)
{
    if (!p)
        return;
    free(p->pending.data);
    free(p->key.data);
    free(p->name.data);
    free(p->args.data);
    free(p->out.data);
    free(p->named);
    free(p);
}

/* ==== whole-text parse ================================================== */

struct tc_collect {
    cJSON *calls;
    struct tc_buf content;
    struct tc_buf args;
    bool oom;
};

static void tc_collect_emit(void *user, const struct toolcall_event *ev)
{
    struct tc_collect *c = user;
    switch (ev->kind) {
    case TOOLCALL_EVENT_TEXT:
        if (tc_buf_push(&c->content, ev->data, ev->len))
            c->oom = true;
        break;
    case TOOLCALL_EVENT_BEGIN: {
        cJSON *call = cJSON_CreateObject();
        if (!call || !cJSON_AddStringToObject(call, "name", ev->data) ||
            !cJSON_AddItemToArray(c->calls, call)) {
            cJSON_Delete(call);
            c->oom = true;
        }
        c->args.len = 0;
        break;
    }
    case TOOLCALL_EVENT_ARGS:
        if (tc_buf_push(&c->args, ev->data, ev->len))
            c->oom = true;
        break;
    case TOOLCALL_EVENT_END: {
        cJSON *call = cJSON_GetArrayItem(c->calls, ev->index);
        if (!call || tc_buf_putc(&c->args, 0) ||
            !cJSON_AddStringToObject(call, "arguments", c->args.data))
            c->oom = true;
        break;
    }
    }
}

int toolcall_parse(enum toolcall_format fmt, const char *text, size_t len, cJSON **calls,
                   char **content)
{
    *calls = NULL;
    *content = NULL;
    struct tc_collect c = {.calls = cJSON_CreateArray()};
    struct toolcall_parser *p = c.calls ? toolcall_parser_new(fmt, tc_collect_emit, &c) : NULL;
    int rc = p && !toolcall_feed(p, text, len) && !toolcall_finish(p) && !c.oom &&
                     !tc_buf_push(&c.content, "", 0)
                 ? 0
                 : -1;
    toolcall_parser_free(p);
    free(c.args.data);
    if (rc) {
        cJSON_Delete(c.calls);
        free(c.content.data);
        return -1;
    }
    *calls = c.calls;
    *content = c.content.data;
    return 0;
}
