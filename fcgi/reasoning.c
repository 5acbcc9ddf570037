/* reasoning.c - the <think> splitter: a byte-at-a-time state machine. */
#include "reasoning.h"

#include <stdlib.h>
#include <string.h>

static const char RS_OPEN[] = "<think>";
static const char RS_CLOSE[] = "</think>";

enum rs_state { RS_START, RS_THINK, RS_ANSWER };

struct rs_buf {
    char *data;
    size_t len, cap;
};

struct reasoning_splitter {
    enum rs_state state;
    bool drop_ws; /* at the start of the reasoning or of the answer */
    bool seen;
    bool oom;
    struct rs_buf hold; /* ws_len bytes of whitespace, then a possible tag start */
    size_t ws_len;
    struct rs_buf reasoning, content; /* this feed's output */
};

static int rs_push(struct rs_buf *b, const char *s, size_t n)
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

static bool rs_is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static bool rs_is_prefix(const char *s, size_t n, const char *tag)
{
    return n <= strlen(tag) && memcmp(s, tag, n) == 0;
}

bool reasoning_prompt_opens_think(const char *prompt, size_t len)
{
    while (len && rs_is_ws(prompt[len - 1]))
        len--;
    size_t n = sizeof(RS_OPEN) - 1;
    return len >= n && memcmp(prompt + len - n, RS_OPEN, n) == 0;
}

struct reasoning_splitter *reasoning_splitter_new(bool starts_inside)
{
    struct reasoning_splitter *r = calloc(1, sizeof(*r));
    if (r) {
        r->state = starts_inside ? RS_THINK : RS_START;
        r->drop_ws = starts_inside;
    }
    return r;
}

static void rs_out(struct reasoning_splitter *r, struct rs_buf *b, const char *s, size_t n)
{
    if (n && rs_push(b, s, n))
        r->oom = true;
    if (n && b == &r->reasoning)
        r->seen = true;
}

/* Emits the held text up to where a possible `tag` begins; keeps the rest. */
static void rs_release(struct reasoning_splitter *r, struct rs_buf *to, const char *tag)
{
    const char *cand = r->hold.data + r->ws_len;
    size_t n = r->hold.len - r->ws_len, k = 0;
    while (k < n && !rs_is_prefix(cand + k, n - k, tag))
        k++;
    rs_out(r, to, r->hold.data, r->ws_len + k);
    memmove(r->hold.data, cand + k, n - k);
    r->hold.len = n - k;
    r->ws_len = 0;
}

static void rs_step(struct reasoning_splitter *r, char c)
{
    if (r->state == RS_ANSWER) {
        if (r->drop_ws && rs_is_ws(c))
            return;
        r->drop_ws = false;
        rs_out(r, &r->content, &c, 1);
        return;
    }
    if (r->state == RS_THINK && r->drop_ws && rs_is_ws(c))
        return;
    r->drop_ws = false;
    if (r->hold.len == r->ws_len && rs_is_ws(c)) {
        r->ws_len++;
        if (rs_push(&r->hold, &c, 1))
            r->oom = true;
        return;
    }
    if (rs_push(&r->hold, &c, 1)) {
        r->oom = true;
        return;
    }
    const char *tag = r->state == RS_START ? RS_OPEN : RS_CLOSE;
    const char *cand = r->hold.data + r->ws_len;
    size_t n = r->hold.len - r->ws_len;
    if (n == strlen(tag) && memcmp(cand, tag, n) == 0) {
        r->state = r->state == RS_START ? RS_THINK : RS_ANSWER;
        r->drop_ws = true;
        r->hold.len = r->ws_len = 0;
        return;
    }
    if (rs_is_prefix(cand, n, tag))
        return;
    if (r->state == RS_START) {
        /* No reasoning: everything from here on is the answer. */
        r->state = RS_ANSWER;
        rs_out(r, &r->content, r->hold.data, r->hold.len);
        r->hold.len = r->ws_len = 0;
        return;
    }
    rs_release(r, &r->reasoning, tag);
}

static void rs_result(struct reasoning_splitter *r, struct reasoning_delta *out)
{
    out->reasoning = r->reasoning.len ? r->reasoning.data : "";
    out->reasoning_len = r->reasoning.len;
    out->content = r->content.len ? r->content.data : "";
    out->content_len = r->content.len;
}

int reasoning_feed(struct reasoning_splitter *r, const char *text, size_t len,
                   struct reasoning_delta *out)
{
    r->reasoning.len = r->content.len = 0;
    for (size_t i = 0; i < len && !r->oom; i++)
        rs_step(r, text[i]);
    rs_result(r, out);
    return r->oom ? -1 : 0;
}

int reasoning_finish(struct reasoning_splitter *r, struct reasoning_delta *out)
{
    r->reasoning.len = r->content.len = 0;
    if (r->state == RS_START && r->hold.len)
        rs_out(r, &r->content, r->hold.data, r->hold.len);
    else if (r->state == RS_THINK && r->hold.len > r->ws_len) /* trailing whitespace is dropped */
        rs_out(r, &r->reasoning, r->hold.data, r->hold.len);
    r->hold.len = r->ws_len = 0;
    r->state = RS_ANSWER;
    rs_result(r, out);
    return r->oom ? -1 : 0;
}

bool reasoning_seen(const struct reasoning_splitter *r)
{
    return r->seen;
}

void reasoning_splitter_free(struct reasoning_splitter *r)
{
    if (!r)
        return;
    free(r->hold.data);
    free(r->reasoning.data);
    free(r->content.data);
    free(r);
}
