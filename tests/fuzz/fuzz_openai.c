/*
 * fuzz_openai.c - OpenAI request bodies and generated text are untrusted:
 * the three body parsers must answer valid/invalid (400 with a param, or
 * 500 for memory) without crashing; a parsed chat must render its template
 * context and ChatML fallback; the tool-call scanner (each format) and the
 * <think> splitter must give the same result whole and in pieces; the JSON
 * constraint must accept exactly what it accepted byte by byte.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_constraint.h"
#include "openai_request.h"
#include "reasoning.h"
#include "toolcall.h"

struct fz_buf {
    char *data;
    size_t len;
};

static void fz_put(struct fz_buf *b, const char *s, size_t n)
{
    char *p = realloc(b->data, b->len + n + 1);
    assert(p);
    memcpy(p + b->len, s, n);
    p[b->len + n] = 0;
    b->data = p;
    b->len += n;
}

/* Content in one buffer; calls as "\1name\2args\3" in the other. */
struct fz_tools {
    struct fz_buf text, calls;
};

static void fz_tool_event(void *user, const struct toolcall_event *ev)
{
    struct fz_tools *t = user;
    switch (ev->kind) {
    case TOOLCALL_EVENT_TEXT: fz_put(&t->text, ev->data, ev->len); break;
    case TOOLCALL_EVENT_BEGIN:
        fz_put(&t->calls, "\1", 1);
        fz_put(&t->calls, ev->data, ev->len);
        fz_put(&t->calls, "\2", 1);
        break;
    case TOOLCALL_EVENT_ARGS: fz_put(&t->calls, ev->data, ev->len); break;
    case TOOLCALL_EVENT_END: fz_put(&t->calls, "\3", 1); break;
    }
}

static bool fz_same(const struct fz_buf *a, const struct fz_buf *b)
{
    return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

static void fz_toolcall(const char *data, size_t size, enum toolcall_format fmt)
{
    struct fz_tools whole = {{0}}, pieces = {{0}};
    struct toolcall_parser *a = toolcall_parser_new(fmt, fz_tool_event, &whole);
    struct toolcall_parser *b = toolcall_parser_new(fmt, fz_tool_event, &pieces);
    assert(a && b);
    toolcall_feed(a, data, size);
    toolcall_finish(a);
    for (size_t i = 0; i < size;) {
        size_t n = 1 + ((unsigned char)data[i] % 5);
        if (n > size - i)
            n = size - i;
        toolcall_feed(b, data + i, n);
        i += n;
    }
    toolcall_finish(b);
    assert(toolcall_count(a) == toolcall_count(b));
    assert(fz_same(&whole.text, &pieces.text) && fz_same(&whole.calls, &pieces.calls));
    toolcall_parser_free(a);
    toolcall_parser_free(b);
    free(whole.text.data);
    free(whole.calls.data);
    free(pieces.text.data);
    free(pieces.calls.data);
}

static void fz_reasoning(const char *data, size_t size, bool inside)
{
    struct fz_buf r[2] = {{0}}, c[2] = {{0}};
    for (int k = 0; k < 2; k++) {
        struct reasoning_splitter *s = reasoning_splitter_new(inside);
        assert(s);
        struct reasoning_delta d;
        for (size_t i = 0; i < size;) {
            size_t n = k ? 1 + ((unsigned char)data[i] % 3) : size;
            if (n > size - i)
                n = size - i;
            reasoning_feed(s, data + i, n, &d);
            fz_put(&r[k], d.reasoning, d.reasoning_len);
            fz_put(&c[k], d.content, d.content_len);
            i += n;
        }
        reasoning_finish(s, &d);
        fz_put(&r[k], d.reasoning, d.reasoning_len);
        fz_put(&c[k], d.content, d.content_len);
        reasoning_splitter_free(s);
    }
    assert(r[0].len == r[1].len && (!r[0].len || !memcmp(r[0].data, r[1].data, r[0].len)));
    assert(c[0].len == c[1].len && (!c[0].len || !memcmp(c[0].data, c[1].data, c[0].len)));
    for (int k = 0; k < 2; k++) {
        free(r[k].data);
        free(c[k].data);
    }
}

/* The JSON constraint (names: tool-call mode) byte by byte vs whole, its
 * close cost falling by at most one per accepted byte and 0 exactly when
 * done, and a complete output valid to cJSON (in tool-call mode: calls of
 * the listed names with an object for arguments). */
static void fz_json_check(const char *data, size_t size, const struct json_names *names)
{
    struct json_check whole, step;
    json_check_init_tools(&whole, names);
    json_check_init_tools(&step, names);
    bool ok_whole = json_check_feed(&whole, data, size), ok_step = true;
    size_t cost = json_check_close_cost(&step);
    for (size_t i = 0; i < size && ok_step; i++) {
        ok_step = json_check_feed(&step, data + i, 1);
        if (ok_step) {
            size_t next = json_check_close_cost(&step);
            assert(next + 1 >= cost && (next == 0) == json_check_done(&step));
            cost = next;
        }
    }
    assert(ok_whole == ok_step);
    if (ok_whole)
        assert(json_check_done(&whole) == json_check_done(&step));
    if (ok_whole && json_check_done(&whole)) {
        cJSON *j = cJSON_ParseWithLength(data, size);
        assert(names ? cJSON_IsObject(j) || (cJSON_IsArray(j) && cJSON_GetArraySize(j) > 0)
                     : cJSON_IsObject(j));
        for (const cJSON *call = !names             ? NULL
                                 : cJSON_IsArray(j) ? j->child
                                                    : j;
             call; call = cJSON_IsArray(j) ? call->next : NULL) {
            assert(cJSON_IsString(cJSON_GetObjectItem(call, "name")));
            assert(cJSON_IsObject(cJSON_GetObjectItem(call, "arguments")));
        }
        cJSON_Delete(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    const char *data = (const char *)bytes;
    cJSON *body = cJSON_ParseWithLength(data, size);
    if (body) {
        struct arena a;
        arena_init(&a, 0, 1 << 24);
        struct engine_model_info info;
        memset(&info, 0, sizeof(info));
        info.vocab = 1000;
        for (int kind = 0; kind < 3; kind++) {
            struct openai_request r;
            struct openai_error e;
            int rc = kind == 0   ? openai_parse_chat(&a, body, &r, &e)
                     : kind == 1 ? openai_parse_completion(&a, body, &r, &e)
                                 : openai_parse_embeddings(&a, body, &r, &e);
            if (rc == 0) {
                assert(r.model && r.model[0]);
                struct engine_gen_params p;
                openai_gen_params(&r, body, &info, 1, &p, &e);
                if (kind == 0) {
                    cJSON *ctx = openai_chat_context(&r, body);
                    assert(ctx);
                    char *ml = openai_chatml_prompt(cJSON_GetObjectItem(ctx, "messages"));
                    assert(ml);
                    free(ml);
                    cJSON_Delete(ctx);
                }
            } else {
                assert((e.status == 400 || e.status == 500) && e.message[0]);
            }
            openai_request_free(&r);
        }
        arena_free(&a);
        cJSON_Delete(body);
    }
    fz_toolcall(data, size, (enum toolcall_format)(size ? bytes[0] % 4 : 0));
    fz_reasoning(data, size, size && (bytes[0] & 4));
    static struct json_names *names;
    static const char *const tool_names[] = {"f", "get", "get_time"};
    if (!names) {
        char err[128];
        json_names_copy(tool_names, 3, &names, err, sizeof(err));
        assert(names);
    }
    fz_json_check(data, size, NULL);
    fz_json_check(data, size, names);
    return 0;
}
