/*
 * bench_tokenizer.c - load time, encode / decode / streaming-decode speed of
 * each fixture tokenizer, on the golden strings repeated into a ~1 MB text.
 * Prints numbers only; nothing is asserted.
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The golden strings of one tokenizer, concatenated and repeated to about `target` bytes. */
static char *corpus(const char *jsonl_path, size_t target, size_t *len)
{
    FILE *f = fopen(jsonl_path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap), line[1 << 16];
    while (text && fgets(line, sizeof(line), f)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (cJSON_IsString(t)) {
            size_t l = strlen(t->valuestring);
            while (n + l + 1 > cap)
                cap *= 2;
            char *g = realloc(text, cap);
            if (!g) {
                free(text);
                text = NULL;
            } else {
                text = g;
                memcpy(text + n, t->valuestring, l);
                n += l;
            }
        }
        cJSON_Delete(o);
    }
    fclose(f);
    if (!text || n == 0) {
        free(text);
        return NULL;
    }
    size_t unit = n;
    char *big = malloc(target + unit + 1);
    size_t m = 0;
    while (big && m < target) {
        memcpy(big + m, text, unit);
        m += unit;
    }
    free(text);
    if (big)
        big[m] = '\0';
    *len = m;
    return big;
}

int main(void)
{
    const char *shared = getenv("MLXM_SHARED") ? getenv("MLXM_SHARED") : "../shared";
    static const char *const names[] = {"qwen3", "llama3_1", "gemma3", "mistral", "aidreams-260k"};
    static const char *const dirs[] = {"tokenizers/qwen3", "tokenizers/llama3_1",
                                       "tokenizers/gemma3", "tokenizers/mistral",
                                       "models/aidreams-260k"};
    printf("%-14s %8s %10s %12s %10s %10s\n", "tokenizer", "load_s", "encode_MBs", "tokens",
           "decode_MBs", "stream_MBs");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[1024], err[256];
        snprintf(path, sizeof(path), "%s/fixtures/%s", shared, dirs[i]);
        struct tokenizer *tok;
        double t0 = now();
        if (tok_load(path, &tok, err, sizeof(err)) != ST_OK) {
            fprintf(stderr, "%s: %s\n", names[i], err);
            return 1;
        }
        double load = now() - t0;
        snprintf(path, sizeof(path), "%s/fixtures/goldens/tokenizer/%s.jsonl", shared, names[i]);
        size_t len = 0;
        char *text = corpus(path, 1 << 20, &len);
        if (!text) {
            fprintf(stderr, "%s: cannot read %s\n", names[i], path);
            tok_free(tok);
            return 1;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        char *out = NULL;
        t0 = now();
        enum status st = tok_encode(tok, text, len, TOK_ENCODE_PARSE_SPECIAL, &ids, &n);
        double enc = now() - t0;
        t0 = now();
        if (st == ST_OK)
            st = tok_decode_raw(tok, ids, n, 0, &out);
        double dec = now() - t0;
        struct tok_stream *s = NULL;
        t0 = now();
        if (st == ST_OK)
            st = tok_stream_new(tok, 0, &s);
        for (size_t k = 0; st == ST_OK && k < n; k++) {
            const char *piece;
            size_t plen;
            st = tok_stream_push(s, ids[k], &piece, &plen);
        }
        double str = now() - t0;
        if (st != ST_OK) {
            fprintf(stderr, "%s: %s\n", names[i], status_str(st));
            return 1;
        }
        double mb = (double)len / 1e6;
        printf("%-14s %8.3f %10.2f %12zu %10.2f %10.2f\n", names[i], load, mb / enc, n, mb / dec,
               mb / str);
        tok_stream_free(s);
        free(out);
        free(ids);
        free(text);
        tok_free(tok);
    }
    return 0;
}
