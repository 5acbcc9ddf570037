/*
 * fuzz_template.c - libFuzzer target for the chat-template interpreter.
 * The input is a template source, then a NUL byte, then a JSON context;
 * without a NUL the whole input is the template and a small chat context is
 * used.  Parsing and rendering must never crash, hang or exhaust memory:
 * every failure has to come back as an error status.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char default_context[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Hi {{ x }}\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>a</think>b\",\"tool_calls\":[{\"function\":"
    "{\"name\":\"f\",\"arguments\":{\"a\":[1,2.5,null,true]}}}]},"
    "{\"role\":\"tool\",\"content\":\"42\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
    "\"add_generation_prompt\":true,\"enable_thinking\":false}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t src_len = nul ? (size_t)(nul - data) : size;
    cJSON *ctx = nul ? cJSON_ParseWithLength((const char *)nul + 1, size - src_len - 1)
                     : cJSON_Parse(default_context);
    struct chat_template *t = NULL;
    char err[512];
    if (chat_template_parse(src, src_len, &t, err, sizeof(err)) == ST_OK) {
        char *out = NULL;
        size_t out_len = 0;
        if (chat_template_render(t, ctx, &out, &out_len, err, sizeof(err)) == ST_OK &&
            strlen(out) > out_len)
            __builtin_trap();
        free(out);
        chat_template_free(t);
    }
    cJSON_Delete(ctx);
    return 0;
}
