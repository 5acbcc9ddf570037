/* test_reasoning.c - the <think> splitter: whole, split at every byte
 * position and byte by byte give the same reasoning and answer. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "reasoning.h"

static void run_split(bool inside, const char *text, size_t cut, size_t step, char *reasoning,
                      char *content)
{
    struct reasoning_splitter *r = reasoning_splitter_new(inside);
    size_t rl = 0, cl = 0, len = strlen(text), pos = 0;
    struct reasoning_delta d;
    while (pos < len) {
        size_t n = step ? step : (pos < cut ? cut - pos : len - pos);
        if (pos + n > len)
            n = len - pos;
        CHECK(reasoning_feed(r, text + pos, n, &d) == 0);
        memcpy(reasoning + rl, d.reasoning, d.reasoning_len);
        rl += d.reasoning_len;
        memcpy(content + cl, d.content, d.content_len);
        cl += d.content_len;
        pos += n;
    }
    CHECK(reasoning_finish(r, &d) == 0);
    memcpy(reasoning + rl, d.reasoning, d.reasoning_len);
    rl += d.reasoning_len;
    memcpy(content + cl, d.content, d.content_len);
    cl += d.content_len;
    reasoning[rl] = content[cl] = 0;
    CHECK(reasoning_seen(r) == (rl > 0));
    reasoning_splitter_free(r);
}

static void expect(bool inside, const char *text, const char *want_r, const char *want_c)
{
    char r[1024], c[1024];
    size_t len = strlen(text);
    run_split(inside, text, len, 0, r, c);
    CHECK_STR_EQ(r, want_r);
    CHECK_STR_EQ(c, want_c);
    for (size_t cut = 1; cut < len; cut++) {
        run_split(inside, text, cut, 0, r, c);
        CHECK_MSG(!strcmp(r, want_r) && !strcmp(c, want_c), "cut %zu of \"%s\": [%s] [%s]", cut,
                  text, r, c);
    }
    run_split(inside, text, 0, 1, r, c);
    CHECK_STR_EQ(r, want_r);
    CHECK_STR_EQ(c, want_c);
}

static void test_split(void)
{
    expect(false, "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "Let me think.",
           "The answer is 4.");
    expect(false, "  <think>a < b and </thin k></think>B", "a < b and </thin k>", "B");
    expect(false, "No thinking here <think>x</think>", "", "No thinking here <think>x</think>");
    expect(false, "\nHello", "", "\nHello");
    expect(false, "", "", "");
    expect(false, "<thi", "", "<thi");
    /* cut off while thinking: all reasoning */
    expect(false, "<think>still going </thi", "still going </thi", "");
    expect(false, "<think>\n\n</think>\n\nDone", "", "Done");
}

static void test_prompt_opened(void)
{
    expect(true, "\nreasoning here\n</think>\n\nanswer", "reasoning here", "answer");
    expect(true, "no close", "no close", "");
    const char *open = "<|im_start|>assistant\n<think>\n";
    CHECK(reasoning_prompt_opens_think(open, strlen(open)));
    const char *closed = "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    CHECK(!reasoning_prompt_opens_think(closed, strlen(closed)));
    CHECK(!reasoning_prompt_opens_think("", 0));
}

int main(void)
{
    RUN(test_split);
    RUN(test_prompt_opened);
    return harness_finish();
}
