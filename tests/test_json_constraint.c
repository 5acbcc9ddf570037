/* test_json_constraint.c - the incremental JSON object checker: valid
 * objects are accepted at every prefix and complete only at the end;
 * invalid ones are refused at the first bad byte. */
#include <string.h>

#include "harness.h"
#include "json_constraint.h"

/* Returns the number of bytes accepted (len when all). */
static size_t accepted(const char *s, bool *done)
{
    struct json_check c;
    json_check_init(&c);
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

int main(void)
{
    RUN(test_valid);
    RUN(test_invalid);
    RUN(test_limits);
    return harness_finish();
}
