/*
 * test_strbuf.c - the growable text buffer: appends across many
 * reallocations, printf, JSON string quoting, reset and free.
 */
#include "harness.h"
#include "strbuf.h"

static void test_appends_grow_and_stay_terminated(void)
{
    struct strbuf b = {0};
    char expect[5001];
    for (int i = 0; i < 5000; i++) {
        char c = (char)('a' + i % 26);
        CHECK_INT_EQ(strbuf_putc(&b, c), 0);
        expect[i] = c;
    }
    expect[5000] = '\0';
    CHECK_INT_EQ(b.len, 5000);
    CHECK_STR_EQ(b.data, expect);
    CHECK_INT_EQ(strbuf_put(&b, "xyz", 0), 0);
    CHECK_INT_EQ(b.len, 5000);
    CHECK(!b.oom);
    strbuf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void test_printf_and_puts(void)
{
    struct strbuf b = {0};
    strbuf_puts(&b, "size=");
    CHECK_INT_EQ(strbuf_printf(&b, "%llu,%s,%d", 18446744073709551615ull, "ok", -7), 0);
    CHECK_STR_EQ(b.data, "size=18446744073709551615,ok,-7");
    strbuf_reset(&b);
    CHECK_INT_EQ(b.len, 0);
    CHECK_STR_EQ(b.data, "");
    strbuf_printf(&b, "%0300d", 5); /* longer than the first allocation */
    CHECK_INT_EQ(b.len, 300);
    CHECK(b.data[299] == '5' && b.data[0] == '0');
    strbuf_free(&b);
}

static void test_json_string(void)
{
    struct strbuf b = {0};
    strbuf_put_json_string(&b, "a\"b\\c\n\r\t\b\f\x01\x1f é");
    CHECK_STR_EQ(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f é\"");
    strbuf_reset(&b);
    strbuf_put_json_string(&b, "");
    CHECK_STR_EQ(b.data, "\"\"");
    strbuf_free(&b);
}

int main(void)
{
    RUN(test_appends_grow_and_stay_terminated);
    RUN(test_printf_and_puts);
    RUN(test_json_string);
    return harness_finish();
}
