/*
 * fuzz_tokenizer.c - libFuzzer target: the input is a tokenizer.json.  If it
 * loads, a few strings are encoded, decoded and streamed with it, so the
 * pipeline built from untrusted JSON is exercised too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static const char *const texts[] = {
    "Hello, world! <s> it's 42 <|im_start|>",
    "  tabs\tand\nnewlines \xe2\x96\x81 caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80",
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokenizer *tok = NULL;
    char err[256];
    if (tok_load_from_memory((const char *)data, size, NULL, 0, &tok, err, sizeof(err)) != ST_OK)
        return 0;
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        int32_t *ids = NULL;
        size_t n = 0;
        unsigned flags = TOK_ENCODE_PARSE_SPECIAL | (t ? 0u : TOK_ENCODE_ADD_SPECIAL);
        if (tok_encode(tok, texts[t], strlen(texts[t]), flags, &ids, &n) != ST_OK)
            continue;
        char *text = NULL;
        if (tok_decode(tok, ids, n, (int)(t & 1), &text) == ST_OK)
            free(text);
        struct tok_stream *s;
        if (tok_stream_new(tok, 0, &s) == ST_OK) {
            const char *piece;
            size_t len;
            for (size_t i = 0; i < n; i++)
                tok_stream_push(s, ids[i], &piece, &len);
            tok_stream_flush(s, &piece, &len);
            tok_stream_free(s);
        }
        free(ids);
    }
    /* Every id of a small vocabulary, and one past the end. */
    int32_t v = tok_vocab_size(tok);
    if (v <= 4096) {
        int32_t *all = malloc(((size_t)v + 1) * sizeof(*all));
        for (int32_t i = 0; all && i <= v; i++)
            all[i] = i;
        char *text = NULL;
        if (all && tok_decode(tok, all, (size_t)v, 0, &text) == ST_OK)
            free(text);
        if (all && tok_decode(tok, all, (size_t)v + 1, 0, &text) == ST_OK)
            abort(); /* an id past the vocabulary must be refused */
        free(all);
    }
    tok_free(tok);
    return 0;
}
