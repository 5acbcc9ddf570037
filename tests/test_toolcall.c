/* test_toolcall.c - the tool-call scanner: each format whole, split at
 * every byte position and fed byte by byte must give the same content,
 * calls and arguments; malformed calls fall back to text. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "toolcall.h"

/* Serializes the event stream as "content|name(args)|name(args)", checking
 * that events come in a legal order. */
struct rec {
    char out[4096];
    size_t len;
    int open; /* index of the open call, -1 */
    int bad;
    int n_begin;
};

static void rec_put(struct rec *r, const char *s, size_t n)
{
    if (r->len + n >= sizeof(r->out)) {
        r->bad = 1;
        return;
    }
    memcpy(r->out + r->len, s, n);
    r->len += n;
    r->out[r->len] = 0;
}

/* Content goes to a separate buffer so fragments of it join up. */
struct both {
    struct rec calls;
    struct rec text;
};

static void on_event(void *user, const struct toolcall_event *ev)
{
    struct both *b = user;
    switch (ev->kind) {
    case TOOLCALL_EVENT_TEXT:
        if (b->calls.open >= 0)
            b->calls.bad = 1;
        rec_put(&b->text, ev->data, ev->len);
        break;
    case TOOLCALL_EVENT_BEGIN:
        if (b->calls.open >= 0 || ev->index != b->calls.n_begin)
            b->calls.bad = 1;
        b->calls.open = ev->index;
        b->calls.n_begin++;
        rec_put(&b->calls, "|", 1);
        rec_put(&b->calls, ev->data, ev->len);
        rec_put(&b->calls, "(", 1);
        break;
    case TOOLCALL_EVENT_ARGS:
        if (b->calls.open != ev->index)
            b->calls.bad = 1;
        rec_put(&b->calls, ev->data, ev->len);
        break;
    case TOOLCALL_EVENT_END:
        if (b->calls.open != ev->index)
            b->calls.bad = 1;
        b->calls.open = -1;
        rec_put(&b->calls, ")", 1);
        break;
    }
}

/* Feeds `text` cut at the positions in cuts[] (ascending, n_cuts of them)
 * to a parser for fmt, or for a forced call to `named` when not NULL. */
static void run_split(enum toolcall_format fmt, const char *named, const char *text,
                      const size_t *cuts, int n_cuts, char *result, size_t cap)
{
    struct both b;
    memset(&b, 0, sizeof(b));
    b.calls.open = -1;
    struct toolcall_parser *p = named ? toolcall_parser_new_named(named, on_event, &b)
                                      : toolcall_parser_new(fmt, on_event, &b);
    size_t prev = 0, len = strlen(text);
    for (int i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        CHECK(toolcall_feed(p, text + prev, end - prev) == 0);
        prev = end;
    }
    CHECK(toolcall_finish(p) == 0);
    CHECK(b.calls.open == -1);
    CHECK(!b.calls.bad && !b.text.bad);
    CHECK_INT_EQ(toolcall_count(p), b.calls.n_begin);
    snprintf(result, cap, "%s%s", b.text.out, b.calls.out);
    toolcall_parser_free(p);
}

/* Whole, every 2-way split and byte-by-byte must agree with `want`. */
static void expect_with(enum toolcall_format fmt, const char *named, const char *text,
                        const char *want)
{
    char got[8192];
    run_split(fmt, named, text, NULL, 0, got, sizeof(got));
    CHECK_STR_EQ(got, want);
    size_t len = strlen(text);
    for (size_t cut = 1; cut < len; cut++) {
        run_split(fmt, named, text, &cut, 1, got, sizeof(got));
        CHECK_MSG(strcmp(got, want) == 0, "split at %zu of \"%s\": \"%s\"", cut, text, got);
    }
    size_t *cuts = calloc(len + 1, sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    run_split(fmt, named, text, cuts, len ? (int)len - 1 : 0, got, sizeof(got));
    CHECK_STR_EQ(got, want);
    free(cuts);
}

static void expect(enum toolcall_format fmt, const char *text, const char *want)
{
    expect_with(fmt, NULL, text, want);
}

static void test_hermes(void)
{
    expect(TOOLCALL_FORMAT_HERMES,
           "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
           "\"days\": [1, 2]}}\n</tool_call>",
           "|get_weather({\"city\": \"Paris\", \"days\": [1, 2]})");
    expect(TOOLCALL_FORMAT_HERMES,
           "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
           "<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": \"}{\\\"\"}}\n</tool_call>",
           "Let me check.\n|a({})|b({\"x\": \"}{\\\"\"})");
    /* arguments before the name, a string-valued arguments, no arguments */
    expect(TOOLCALL_FORMAT_HERMES,
           "<tool_call>{\"arguments\": {\"q\": 1}, \"name\": \"s\"}</tool_call>", "|s({\"q\": 1})");
    expect(TOOLCALL_FORMAT_HERMES,
           "<tool_call>{\"name\": \"s\", \"arguments\": \"{\\\"q\\\": 2}\"}</tool_call>",
           "|s({\"q\": 2})");
    expect(TOOLCALL_FORMAT_HERMES, "<tool_call>{\"name\": \"now\"}</tool_call>", "|now({})");
    /* AUTO knows the Hermes tags too */
    expect(TOOLCALL_FORMAT_AUTO, "ok <tool_call>{\"name\":\"f\",\"arguments\":{\"n\":-1.5e3}}",
           "ok |f({\"n\":-1.5e3})");
}

static void test_llama3(void)
{
    expect(TOOLCALL_FORMAT_LLAMA3, "{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}",
           "|get_time({\"tz\": \"UTC\"})");
    expect(TOOLCALL_FORMAT_LLAMA3,
           "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"v\": true}}; {\"name\": \"b\", "
           "\"parameters\": {\"v\": null}}",
           "|a({\"v\": true})|b({\"v\": null})");
    /* JSON that is not a call stays content */
    expect(TOOLCALL_FORMAT_LLAMA3, "{\"answer\": 42}", "{\"answer\": 42}");
    expect(TOOLCALL_FORMAT_AUTO, "  {\"name\": \"x\", \"parameters\": {}}", "|x({})");
}

static void test_mistral(void)
{
    expect(TOOLCALL_FORMAT_MISTRAL,
           "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, {\"name\": "
           "\"neg\", \"arguments\": {\"a\": 3}}]",
           "|add({\"a\": 1, \"b\": 2})|neg({\"a\": 3})");
    /* the marker dropped as a special token */
    expect(TOOLCALL_FORMAT_MISTRAL, "[{\"name\": \"add\", \"arguments\": {\"a\": 1}}]",
           "|add({\"a\": 1})");
    expect(TOOLCALL_FORMAT_MISTRAL, "[1, 2, 3] is a list", "[1, 2, 3] is a list");
}

/* tool_choice "required": the constrained output is a bare call or an
 * array of them, which AUTO reads */
static void test_required_shapes(void)
{
    expect(TOOLCALL_FORMAT_AUTO, "{\"name\": \"f\", \"arguments\": {\"a\": [1]}}",
           "|f({\"a\": [1]})");
    expect(TOOLCALL_FORMAT_AUTO,
           "[{\"name\":\"f\",\"arguments\":{}}, {\"name\":\"g\",\"arguments\":{\"b\":\"}\"}}]",
           "|f({})|g({\"b\":\"}\"})");
}

/* tool_choice naming a function: the output is its arguments */
static void test_named(void)
{
    expect_with(TOOLCALL_FORMAT_AUTO, "get_weather", " {\"city\": \"Paris\", \"d\": {}}\n",
                "|get_weather({\"city\": \"Paris\", \"d\": {}})");
    expect_with(TOOLCALL_FORMAT_AUTO, "f", "", "|f({})");
    /* cut off by the length limit: what was written */
    expect_with(TOOLCALL_FORMAT_AUTO, "f", "{\"a\": [1,", "|f({\"a\": [1,)");

    struct both b;
    memset(&b, 0, sizeof(b));
    b.calls.open = -1;
    struct toolcall_parser *p = toolcall_parser_new_named("f", on_event, &b);
    CHECK(toolcall_feed(p, "{\"a\":", 5) == 0 && toolcall_open(p));
    CHECK(toolcall_feed(p, "1}", 2) == 0 && !toolcall_open(p));
    CHECK(toolcall_finish(p) == 0 && toolcall_count(p) == 1);
    toolcall_parser_free(p);
}

static void test_plain_and_malformed(void)
{
    expect(TOOLCALL_FORMAT_HERMES, "Just text, with < and <tool and </tool_call>.",
           "Just text, with < and <tool and </tool_call>.");
    expect(TOOLCALL_FORMAT_HERMES, "<tool_call>not json</tool_call> tail",
           "<tool_call>not json</tool_call> tail");
    expect(TOOLCALL_FORMAT_HERMES, "<tool_call>{\"name\": 5}", "<tool_call>{\"name\": 5}");
    expect(TOOLCALL_FORMAT_HERMES, "", "");
    expect(TOOLCALL_FORMAT_AUTO, "\n\nHello", "\n\nHello");
    /* cut off inside the arguments: the call ends with what was read */
    expect(TOOLCALL_FORMAT_HERMES, "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": [1,",
           "|f({\"a\": [1,)");
    /* cut off before the name: it was never a call */
    expect(TOOLCALL_FORMAT_HERMES, "<tool_call>{\"argu", "<tool_call>{\"argu");
}

static void test_parse_whole(void)
{
    cJSON *calls;
    char *content;
    const char *t = "Hi <tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}</tool_call>";
    CHECK(toolcall_parse(TOOLCALL_FORMAT_AUTO, t, strlen(t), &calls, &content) == 0);
    CHECK_STR_EQ(content, "Hi ");
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 1);
    cJSON *c = cJSON_GetArrayItem(calls, 0);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), "f");
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(c, "arguments")), "{\"x\": 1}");
    cJSON_Delete(calls);
    free(content);
    CHECK(toolcall_format_from_name("qwen3") == TOOLCALL_FORMAT_HERMES);
    CHECK(toolcall_format_from_name("mistral") == TOOLCALL_FORMAT_MISTRAL);
    CHECK(toolcall_format_from_name(NULL) == TOOLCALL_FORMAT_AUTO);
}

int main(void)
{
    RUN(test_hermes);
    RUN(test_llama3);
    RUN(test_mistral);
    RUN(test_required_shapes);
    RUN(test_named);
    RUN(test_plain_and_malformed);
    RUN(test_parse_whole);
    return harness_finish();
}
