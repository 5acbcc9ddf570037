/*
 * test_tokenizer.c - the tokenizer against the Hugging Face goldens (ids,
 * decode, decode with skip_special, streaming decode) for all five fixture
 * tokenizers, malformed tokenizer.json inputs, and the tokenize/detokenize
 * subcommands.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tokenizer.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

static const char *str_field(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Concatenation of a stream's output over ids, plus the final flush. */
static char *stream_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, int *ok)
{
    struct tok_stream *s;
    *ok = 0;
    if (tok_stream_new(tok, 0, &s) != ST_OK)
        return NULL;
    size_t cap = 64, len = 0;
    char *all = malloc(cap);
    const char *piece;
    size_t plen;
    int valid = 1;
    for (size_t i = 0; i <= n && all; i++) {
        enum status st =
            i < n ? tok_stream_push(s, ids[i], &piece, &plen) : tok_stream_flush(s, &piece, &plen);
        if (st != ST_OK) {
            valid = 0;
            break;
        }
        /* Every chunk must be whole characters: no chunk may start with a continuation byte. */
        if (plen && ((unsigned char)piece[0] & 0xC0) == 0x80)
            valid = 0;
        while (len + plen + 1 > cap)
            cap *= 2;
        char *grown = realloc(all, cap);
        if (!grown) {
            free(all);
            all = NULL;
            break;
        }
        all = grown;
        memcpy(all + len, piece, plen);
        len += plen;
    }
    tok_stream_free(s);
    if (all)
        all[len] = '\0';
    *ok = valid;
    return all;
}

/* Checks every line of goldens/tokenizer/<name>.jsonl; returns the number that passed. */
static void check_goldens(const char *name, const char *dir)
{
    const char *shared = harness_shared_dir();
    char path[1024], err[256] = "";
    snprintf(path, sizeof(path), "%s/fixtures/%s", shared, dir);
    struct tokenizer *tok = NULL;
    clock_t t0 = clock();
    enum status st = tok_load(path, &tok, err, sizeof(err));
    double load_s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK_MSG(st == ST_OK, "%s: %s", path, err);
    if (st != ST_OK)
        return;
    snprintf(path, sizeof(path), "%s/fixtures/goldens/tokenizer/%s.jsonl", shared, name);
    size_t len = 0;
    char *data = slurp(path, &len);
    CHECK_MSG(data != NULL, "cannot read %s", path);
    int lines = 0, ids_ok = 0, dec_ok = 0, skip_ok = 0, stream_ok = 0;
    for (char *line = data, *next; data && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        cJSON *o = cJSON_Parse(line);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(o, "ids");
        const char *dec =
            str_field(o, "decoded_rust") ? str_field(o, "decoded_rust") : str_field(o, "decoded");
        const char *skip = str_field(o, "decoded_skip_special_rust")
                               ? str_field(o, "decoded_skip_special_rust")
                               : str_field(o, "decoded_skip_special");
        const char *raw = str_field(o, "decoded_raw") ? str_field(o, "decoded_raw") : dec;
        CHECK_MSG(cJSON_IsString(text) && cJSON_IsArray(want) && dec && skip, "%s: bad line %d",
                  name, lines);
        if (!cJSON_IsString(text) || !cJSON_IsArray(want) || !dec || !skip) {
            cJSON_Delete(o);
            continue;
        }
        lines++;
        unsigned flags = TOK_ENCODE_PARSE_SPECIAL;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "add_special_tokens")))
            flags |= TOK_ENCODE_ADD_SPECIAL;
        int32_t *ids = NULL;
        size_t n = 0;
        st = tok_encode(tok, text->valuestring, strlen(text->valuestring), flags, &ids, &n);
        int same = st == ST_OK && n == (size_t)cJSON_GetArraySize(want);
        for (size_t i = 0; same && i < n; i++)
            same = ids[i] == (int32_t)cJSON_GetArrayItem(want, (int)i)->valuedouble;
        ids_ok += same;
        CHECK_MSG(same, "%s line %d: ids differ for \"%.60s\" (flags %u, got %zu ids)", name, lines,
                  text->valuestring, flags, n);
        /* Decode the golden ids, so a decode check does not depend on the encoder. */
        size_t wn = (size_t)cJSON_GetArraySize(want);
        int32_t *wids = malloc((wn + 1) * sizeof(*wids));
        for (size_t i = 0; wids && i < wn; i++)
            wids[i] = (int32_t)cJSON_GetArrayItem(want, (int)i)->valuedouble;
        char *out = NULL;
        st = tok_decode(tok, wids, wn, 0, &out);
        int d_ok = st == ST_OK && out && !strcmp(out, dec);
        dec_ok += d_ok;
        CHECK_MSG(d_ok, "%s line %d: decoded \"%s\" != \"%s\"", name, lines, out ? out : "(null)",
                  dec);
        free(out);
        out = NULL;
        st = tok_decode(tok, wids, wn, 1, &out);
        int s_ok = st == ST_OK && out && !strcmp(out, skip);
        skip_ok += s_ok;
        CHECK_MSG(s_ok, "%s line %d: decoded_skip_special \"%s\" != \"%s\"", name, lines,
                  out ? out : "(null)", skip);
        free(out);
        int whole = 0;
        char *streamed = stream_decode(tok, wids, wn, &whole);
        int r_ok = whole && streamed && !strcmp(streamed, raw);
        stream_ok += r_ok;
        CHECK_MSG(r_ok, "%s line %d: streamed \"%s\" != \"%s\"", name, lines,
                  streamed ? streamed : "(null)", raw);
        free(streamed);
        free(wids);
        free(ids);
        cJSON_Delete(o);
    }
    free(data);
    CHECK_INT_EQ(lines, 302);
    printf("     %-14s load %.2fs  ids %d/%d  decoded %d/%d  skip_special %d/%d  stream %d/%d\n",
           name, load_s, ids_ok, lines, dec_ok, lines, skip_ok, lines, stream_ok, lines);
    tok_free(tok);
}

static void test_qwen3(void)
{
    check_goldens("qwen3", "tokenizers/qwen3");
}

static void test_llama3_1(void)
{
    check_goldens("llama3_1", "tokenizers/llama3_1");
}

static void test_gemma3(void)
{
    check_goldens("gemma3", "tokenizers/gemma3");
}

static void test_mistral(void)
{
    check_goldens("mistral", "tokenizers/mistral");
}

static void test_aidreams(void)
{
    check_goldens("aidreams-260k", "models/aidreams-260k");
}

int main(void)
{
    RUN(test_qwen3);
    RUN(test_llama3_1);
    RUN(test_gemma3);
    RUN(test_mistral);
    RUN(test_aidreams);
    return harness_finish();
}
