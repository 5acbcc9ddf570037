/*
 * fuzz_anthropic.c - Anthropic Messages bodies and generated text are
 * untrusted: request parsing must answer valid/invalid without crashing, and
 * the content-block builder must give the same content whether the text
 * comes whole or in pieces, with stream deltas that add up to it.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic_output.h"
#include "anthropic_request.h"

struct fz_deltas {
    char *text;
    size_t len;
};

static void fz_append(struct fz_deltas *d, const char *s)
{
    size_t n = strlen(s);
    char *p = realloc(d->text, d->len + n + 1);
    assert(p);
    memcpy(p + d->len, s, n + 1);
    d->text = p;
    d->len += n;
}

static void fz_on_event(void *user, const char *event, const cJSON *data)
{
    struct fz_deltas *d = user;
    if (strcmp(event, "content_block_delta"))
        return;
    const cJSON *delta = cJSON_GetObjectItem(data, "delta");
    const cJSON *t = cJSON_GetObjectItem(delta, "text");
    if (!t)
        t = cJSON_GetObjectItem(delta, "thinking");
    if (!t)
        t = cJSON_GetObjectItem(delta, "partial_json");
    assert(cJSON_IsString(t));
    fz_append(d, t->valuestring);
}

/* Text, thinking and tool input JSON of every block, concatenated. */
static void fz_content_text(const cJSON *content, struct fz_deltas *out)
{
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        const cJSON *t = cJSON_GetObjectItem(b, "text");
        if (!t)
            t = cJSON_GetObjectItem(b, "thinking");
        if (t)
            fz_append(out, t->valuestring);
    }
}

static void fz_output(const uint8_t *data, size_t size, bool tools)
{
    struct fz_deltas whole = {0}, streamed = {0}, pieces = {0};
    struct anthropic_output_opts o1 = {.parse_tools = tools, .tool_format = TOOLCALL_FORMAT_AUTO};
    struct anthropic_output_opts o2 = o1;
    o2.emit = fz_on_event;
    o2.user = &streamed;
    struct anthropic_output *a = anthropic_output_new(&o1), *b = anthropic_output_new(&o2);
    if (!a || !b)
        goto out;
    anthropic_output_feed(a, (const char *)data, size);
    anthropic_output_finish(a);
    /* Pieces of 1..7 bytes, sized by the data itself. */
    for (size_t i = 0; i < size;) {
        size_t n = 1 + (data[i] % 7);
        if (n > size - i)
            n = size - i;
        anthropic_output_feed(b, (const char *)data + i, n);
        i += n;
    }
    anthropic_output_finish(b);
    const cJSON *ca = anthropic_output_content(a), *cb = anthropic_output_content(b);
    assert(cJSON_GetArraySize(ca) == cJSON_GetArraySize(cb));
    assert(anthropic_output_tool_uses(a) == anthropic_output_tool_uses(b));
    fz_content_text(ca, &whole);
    fz_content_text(cb, &pieces);
    assert(whole.len == pieces.len && (!whole.len || !memcmp(whole.text, pieces.text, whole.len)));
    /* Deltas add up to the blocks' text (tool input is re-serialized, so
     * only text and thinking are compared when no tool was called). */
    if (!anthropic_output_tool_uses(b))
        assert(streamed.len == pieces.len &&
               (!streamed.len || !memcmp(streamed.text, pieces.text, streamed.len)));
out:
    anthropic_output_free(a);
    anthropic_output_free(b);
    free(whole.text);
    free(streamed.text);
    free(pieces.text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *body = cJSON_ParseWithLength((const char *)data, size);
    if (body) {
        for (int count_only = 0; count_only < 2; count_only++) {
            struct anthropic_request r;
            struct anthropic_error err;
            if (anthropic_request_parse(body, count_only, &r, &err) == 0) {
                assert(r.chat && r.model && r.model[0]);
                assert(count_only || r.max_tokens > 0);
                struct engine_gen_params p;
                anthropic_request_gen_params(&r, body, NULL, &p);
                anthropic_request_apply_system(&r, body);
                anthropic_request_free(&r);
            } else {
                assert(err.status == 400 || err.status == 500);
                assert(err.message[0]);
            }
        }
        cJSON_Delete(body);
    }
    fz_output(data, size, size > 0 && (data[0] & 1));
    return 0;
}
