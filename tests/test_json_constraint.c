/* test_json_constraint.c - the incremental JSON object checker: valid
 * objects are accepted at every prefix and complete only at the end;
 * invalid ones are refused at the first bad byte. */
#include <string.h>

#include "harness.h"
#include "json_constraint.h"

/* Returns the number of bytes of s accepted (len when all) by a checker
 * for tool calls among names (NULL: any object). */
static size_t accepted_tools(const char *s, const struct json_names *names, bool *done)
{
    struct json_check c;
    json_check_init_tools(&c, names);
    size_t i = 0;
    for (; s[i]; i++) {
        struct json_check copy = c;
        if (!json_check_feed(&copy, s + i, 1))
            break;
        c = copy;
    }
    *done = json_check_done(&c);
    return i;
}

static size_t accepted(const char *s, bool *done)
{
    return accepted_tools(s, NULL, done);
}

static const char *const tool_names[] = {"get_weather", "get_time", "g"};

static struct json_names *make_names(void)
{
    struct json_names *l = NULL;
    char err[128];
    CHECK(json_names_copy(tool_names, 3, &l, err, sizeof(err)) == ST_OK && l);
    return l;
}

static void test_valid(void)
{
    static const char *ok[] = {
        "{}",
        "{ \"a\" : 1 }",
        "{\"a\":[1,-2.5e+3,0,0.5,1E9,true,false,null,\"x\\\"\\u00e9\\n\"],\"b\":{\"c\":{}}}",
        "{\"k\":[[],[{}]], \"\xc3\xa9\":\"\xe2\x82\xac\"}",
        "\n {\"a\":-0}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        bool done;
        size_t n = accepted(ok[i], &done);
        CHECK_MSG(n == strlen(ok[i]) && done, "%s: %zu bytes, done %d", ok[i], n, done);
    }
    bool done;
    CHECK(accepted("{\"a\": [1, 2", &done) == 11 && !done);
}

static void test_invalid(void)
{
    static const struct {
        const char *s;
        size_t good;
    } bad[] = {
        {"[1]", 0},          {"\"s\"", 0},
        {"{a:1}", 1},        {"{\"a\" 1}", 5},
        {"{\"a\":01}", 6},   {"{\"a\":1.}", 7},
        {"{\"a\":tru}", 8},  {"{\"a\":1,}", 7},
        {"{\"a\":[1,]}", 8}, {"{\"a\":\"\\x\"}", 7},
        {"{}}", 2},          {"{\"a\":1]", 6},
        {"{\"a\":-}", 6},    {"{\"a\":\"\x01\"}", 6},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool done;
        size_t n = accepted(bad[i].s, &done);
        CHECK_MSG(n == bad[i].good, "%s: accepted %zu, want %zu", bad[i].s, n, bad[i].good);
    }
}

static void test_limits(void)
{
    char deep[JSON_CHECK_MAX_DEPTH + 8];
    deep[0] = '{';
    memcpy(deep + 1, "\"a\":", 4);
    memset(deep + 5, '[', sizeof(deep) - 6);
    deep[sizeof(deep) - 1] = 0;
    bool done;
    CHECK_INT_EQ(accepted(deep, &done), 5 + JSON_CHECK_MAX_DEPTH - 1);
    char ws[64] = "{";
    memset(ws + 1, ' ', 40);
    ws[41] = 0;
    CHECK_INT_EQ(accepted(ws, &done), 1 + JSON_CHECK_MAX_WS);
}

static void test_tool_calls(void)
{
    struct json_names *names = make_names();
    static const char *ok[] = {
        "{\"name\":\"get_time\",\"arguments\":{}}",
        "{ \"name\" : \"g\" , \"arguments\" : {\"city\": [1, {\"x\": null}]} }",
        "[{\"name\":\"get_weather\",\"arguments\":{\"a\":1}},{\"name\":\"g\",\"arguments\":{}}]",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        bool done;
        size_t n = accepted_tools(ok[i], names, &done);
        CHECK_MSG(n == strlen(ok[i]) && done, "%s: %zu bytes, done %d", ok[i], n, done);
    }
    static const struct {
        const char *s;
        size_t good;
    } bad[] = {
        {"{}", 1},                                         /* no name */
        {"[]", 1},                                         /* no call */
        {"{\"arguments\":{}}", 2},                         /* keys in order */
        {"{\"name\":\"get_date\"", 13},                    /* not a tool */
        {"{\"name\":\"get\"", 12},                         /* a prefix only */
        {"{\"name\":\"g\"}", 11},                          /* no arguments */
        {"{\"name\":\"g\",\"arguments\":[]", 24},          /* arguments not an object */
        {"{\"name\":\"g\",\"arguments\":{},\"x\":1}", 26}, /* nothing after them */
        {"{\"name\":\"g\\u0067\"", 10},                    /* no escapes in names */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool done;
        size_t n = accepted_tools(bad[i].s, names, &done);
        CHECK_MSG(n == bad[i].good, "%s: accepted %zu, want %zu", bad[i].s, n, bad[i].good);
    }
    json_names_free(names);

    struct json_names *l = NULL;
    char err[128];
    const char *quote[] = {"a\"b"};
    CHECK(json_names_copy(quote, 1, &l, err, sizeof(err)) == ST_ERR_INVALID && !l);
    const char *empty[] = {""};
    CHECK(json_names_copy(empty, 1, &l, err, sizeof(err)) == ST_ERR_INVALID && !l);
    CHECK(json_names_copy(NULL, 0, &l, err, sizeof(err)) == ST_OK && !l);
}

/* The close cost is exact: feeding the text byte by byte, the cost at each
 * prefix is at most the bytes that are left (the text is one valid
 * ending), falls by at most one per byte, and is 0 exactly when done;
 * and at a few prefixes it equals the shortest ending written out. */
static void check_cost_along(const char *s, const struct json_names *names)
{
    struct json_check c;
    json_check_init_tools(&c, names);
    size_t len = strlen(s), prev = json_check_close_cost(&c);
    for (size_t i = 0; i < len; i++) {
        CHECK_MSG(json_check_feed(&c, s + i, 1), "%s: byte %zu refused", s, i);
        size_t cost = json_check_close_cost(&c);
        CHECK_MSG(cost <= len - i - 1 && cost + 1 >= prev, "%s: cost %zu at %zu (before %zu)", s,
                  cost, i, prev);
        CHECK_MSG((cost == 0) == json_check_done(&c), "%s: cost %zu at %zu", s, cost, i);
        prev = cost;
    }
}

static void check_cost_exact(const char *prefix, const char *ending, const struct json_names *names)
{
    struct json_check c;
    json_check_init_tools(&c, names);
    CHECK(json_check_feed(&c, prefix, strlen(prefix)));
    CHECK_MSG(json_check_close_cost(&c) == strlen(ending), "%s: cost %zu, want %zu (%s)", prefix,
              json_check_close_cost(&c), strlen(ending), ending);
    CHECK(json_check_feed(&c, ending, strlen(ending)) && json_check_done(&c));
}

static void test_close_cost(void)
{
    struct json_names *names = make_names();
    check_cost_along("{\"a\":[1,-2.5e+3,true,\"x\\u00e9\"],\"b\":{}}", NULL);
    check_cost_along("{\"name\":\"g\",\"arguments\":{}}", names);
    check_cost_along("[{\"name\":\"g\",\"arguments\":{}}]", names);
    check_cost_exact("", "{}", NULL);
    check_cost_exact("{\"ab", "\":0}", NULL);
    check_cost_exact("{\"a\":[tr", "ue]}", NULL);
    check_cost_exact("{\"a\":\"\\u0", "000\"}", NULL);
    check_cost_exact("", "{\"name\":\"g\",\"arguments\":{}}", names);
    check_cost_exact("[", "{\"name\":\"g\",\"arguments\":{}}]", names);
    check_cost_exact("{\"na", "me\":\"g\",\"arguments\":{}}", names);
    check_cost_exact("{\"name\":\"get_t", "ime\",\"arguments\":{}}", names);
    check_cost_exact("{\"name\":\"g\",\"argu", "ments\":{}}", names);
    check_cost_exact("{\"name\":\"g\",\"arguments\":{\"x\":[", "]}}", names);
    json_names_free(names);
}

int main(void)
{
    RUN(test_valid);
    RUN(test_invalid);
    RUN(test_limits);
    RUN(test_tool_calls);
    RUN(test_close_cost);
    return harness_finish();
}
