/*
 * test_tokenizer.c - the tokenizer against the Hugging Face goldens (ids,
 * decode, decode with skip_special, streaming decode) for all five fixture
 * tokenizers, malformed tokenizer.json inputs, and the tokenize/detokenize
 * subcommands.
 */
#include <cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tokenizer.h"

/* Index of each fixture tokenizer in loaded[] (gemma3 is 33 MB: load each once). */
enum { QWEN3, LLAMA3_1, GEMMA3, MISTRAL, AIDREAMS, N_TOKS };
static struct tokenizer *loaded[N_TOKS];

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
static char *stream_decode(const struct tokenizer *tok, const int32_t *ids, size_t n,
                           int skip_special, int *ok)
{
    struct tok_stream *s;
    *ok = 0;
    if (tok_stream_new(tok, skip_special, &s) != ST_OK)
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

/* Checks every line of goldens/tokenizer/<name>.jsonl and keeps the tokenizer in loaded[]. */
static void check_goldens(int which, const char *name, const char *dir)
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
        char *streamed = stream_decode(tok, wids, wn, 0, &whole);
        int r_ok = whole && streamed && !strcmp(streamed, raw);
        free(streamed);
        /* The engine streams with skip_special: that must equal the raw skip decode. */
        char *skip_raw = NULL;
        streamed = stream_decode(tok, wids, wn, 1, &whole);
        r_ok = r_ok && whole && streamed && tok_decode_raw(tok, wids, wn, 1, &skip_raw) == ST_OK &&
               !strcmp(streamed, skip_raw);
        stream_ok += r_ok;
        CHECK_MSG(r_ok, "%s line %d: streamed \"%s\" != \"%s\"", name, lines,
                  streamed ? streamed : "(null)", skip_raw ? skip_raw : raw);
        free(streamed);
        free(skip_raw);
        free(wids);
        free(ids);
        cJSON_Delete(o);
    }
    free(data);
    CHECK_INT_EQ(lines, 302);
    printf("     %-14s load %.2fs  ids %d/%d  decoded %d/%d  skip_special %d/%d  stream %d/%d\n",
           name, load_s, ids_ok, lines, dec_ok, lines, skip_ok, lines, stream_ok, lines);
    loaded[which] = tok;
}

static void test_qwen3(void)
{
    check_goldens(QWEN3, "qwen3", "tokenizers/qwen3");
}

static void test_llama3_1(void)
{
    check_goldens(LLAMA3_1, "llama3_1", "tokenizers/llama3_1");
}

static void test_gemma3(void)
{
    check_goldens(GEMMA3, "gemma3", "tokenizers/gemma3");
}

static void test_mistral(void)
{
    check_goldens(MISTRAL, "mistral", "tokenizers/mistral");
}

static void test_aidreams(void)
{
    check_goldens(AIDREAMS, "aidreams-260k", "models/aidreams-260k");
}

static void test_accessors(void)
{
    struct {
        int which;
        int32_t bos, eos;
        int adds_bos;
        const char *bos_tok, *eos_tok;
    } want[] = {
        {QWEN3, -1, 151645, 0, "", "<|im_end|>"},
        {LLAMA3_1, 128000, 128009, 1, "<|begin_of_text|>", "<|eot_id|>"},
        {GEMMA3, 2, 106, 1, "<bos>", "<end_of_turn>"},
        {MISTRAL, 1, 2, 1, "<s>", "</s>"},
        {AIDREAMS, 1, 2, 1, "<s>", "</s>"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct tokenizer *tok = loaded[want[i].which];
        CHECK(tok != NULL);
        if (!tok)
            continue;
        CHECK_INT_EQ(tok_bos_id(tok), want[i].bos);
        CHECK_INT_EQ(tok_adds_bos(tok), want[i].adds_bos);
        CHECK_STR_EQ(tok_bos_token(tok), want[i].bos_tok);
        CHECK_STR_EQ(tok_eos_token(tok), want[i].eos_tok);
        const int32_t *eos;
        CHECK_INT_EQ(tok_eos_ids(tok, &eos), 1);
        CHECK_INT_EQ(eos[0], want[i].eos);
        CHECK(tok_is_eos(tok, want[i].eos));
        CHECK(tok_is_special(tok, want[i].eos));
        const char *s = tok_id_to_token(tok, want[i].eos);
        CHECK_STR_EQ(s, want[i].eos_tok);
        CHECK_INT_EQ(tok_token_to_id(tok, s, strlen(s)), want[i].eos);
        CHECK(tok_id_to_token(tok, tok_vocab_size(tok)) == NULL);
        CHECK(tok_id_to_token(tok, -1) == NULL);
    }
    CHECK_INT_EQ(tok_vocab_size(loaded[GEMMA3]), 262145); /* + <image_soft_token> */
    CHECK_INT_EQ(tok_vocab_size(loaded[QWEN3]), 151669);
    CHECK_INT_EQ(tok_vocab_size(loaded[AIDREAMS]), 512);
    /* "<think>" is an added token but not a special one. */
    CHECK(!tok_is_special(loaded[QWEN3], 151667));
    CHECK_INT_EQ(tok_token_to_id(loaded[QWEN3], "nope-not-a-token", 16), -1);

    /* generation_config.json EOS ids are added by the caller. */
    struct tokenizer *tok = loaded[AIDREAMS];
    CHECK_INT_EQ(tok_add_eos_id(tok, 7), ST_OK);
    CHECK_INT_EQ(tok_add_eos_id(tok, 7), ST_OK);
    CHECK_INT_EQ(tok_add_eos_id(tok, 512), ST_ERR_RANGE);
    const int32_t *eos;
    CHECK_INT_EQ(tok_eos_ids(tok, &eos), 2);
    CHECK(tok_is_eos(tok, 7) && tok_is_eos(tok, 2) && !tok_is_eos(tok, 3));
}

static int encode_eq(const struct tokenizer *tok, const char *text, unsigned flags,
                     const int32_t *want, size_t n_want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int ok = tok_encode(tok, text, strlen(text), flags, &ids, &n) == ST_OK && n == n_want &&
             (n == 0 || memcmp(ids, want, n * sizeof(*ids)) == 0);
    free(ids);
    return ok;
}

static void test_special_flag(void)
{
    /* Without TOK_ENCODE_PARSE_SPECIAL, special-token text is plain text... */
    const int32_t s_id[] = {1};
    CHECK(encode_eq(loaded[AIDREAMS], "<s>", TOK_ENCODE_PARSE_SPECIAL, s_id, 1));
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_INT_EQ(tok_encode(loaded[AIDREAMS], "<s>", 3, 0, &ids, &n), ST_OK);
    CHECK(n > 1);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] != 1);
    free(ids);
    const int32_t im_start[] = {151644};
    CHECK(encode_eq(loaded[QWEN3], "<|im_start|>", TOK_ENCODE_PARSE_SPECIAL, im_start, 1));
    CHECK(!encode_eq(loaded[QWEN3], "<|im_start|>", 0, im_start, 1));
    /* ...while non-special added tokens are always split out. */
    const int32_t think[] = {151667};
    CHECK(encode_eq(loaded[QWEN3], "<think>", 0, think, 1));
    /* Empty text: just the post-processor's tokens. */
    const int32_t bos[] = {128000};
    CHECK(encode_eq(loaded[LLAMA3_1], "", TOK_ENCODE_ADD_SPECIAL, bos, 1));
    CHECK(encode_eq(loaded[LLAMA3_1], "", 0, NULL, 0));
    /* Invalid UTF-8 is refused, not guessed at. */
    CHECK_INT_EQ(tok_encode(loaded[QWEN3], "a\xff", 2, 0, &ids, &n), ST_ERR_INVALID);
    CHECK_INT_EQ(tok_encode(loaded[GEMMA3], "\xed\xa0\x80", 3, 0, &ids, &n), ST_ERR_INVALID);
}

static void test_decode_errors(void)
{
    const struct tokenizer *tok = loaded[MISTRAL];
    char *text = NULL;
    const int32_t huge[] = {1, 2000000000};
    CHECK_INT_EQ(tok_decode(tok, huge, 2, 0, &text), ST_ERR_RANGE);
    CHECK(text == NULL);
    const int32_t neg[] = {-5};
    CHECK_INT_EQ(tok_decode(tok, neg, 1, 1, &text), ST_ERR_RANGE);
    const int32_t edge[] = {31999};
    CHECK_INT_EQ(tok_decode(tok, edge, 1, 0, &text), ST_OK);
    free(text);
    CHECK_INT_EQ(tok_decode(tok, NULL, 0, 0, &text), ST_OK);
    CHECK_STR_EQ(text, "");
    free(text);
    struct tok_stream *s;
    CHECK_INT_EQ(tok_stream_new(tok, 0, &s), ST_OK);
    const char *piece;
    size_t len;
    CHECK_INT_EQ(tok_stream_push(s, 32000, &piece, &len), ST_ERR_RANGE);
    /* A lone UTF-8 lead byte is held back, then flushed as U+FFFD. */
    int32_t e2 = tok_token_to_id(tok, "<0xE2>", 6);
    CHECK(e2 >= 0);
    CHECK_INT_EQ(tok_stream_push(s, e2, &piece, &len), ST_OK);
    CHECK_INT_EQ(len, 0);
    CHECK_INT_EQ(tok_stream_flush(s, &piece, &len), ST_OK);
    CHECK_STR_EQ(piece, "\xEF\xBF\xBD");
    tok_stream_free(s);
}

/* ---- malformed tokenizer.json ---------------------------------------------------- */

static enum status load_mem(const char *json, const char *config, char *err, size_t errlen)
{
    struct tokenizer *tok = NULL;
    enum status st = tok_load_from_memory(json, strlen(json), config, config ? strlen(config) : 0,
                                          &tok, err, errlen);
    CHECK((st == ST_OK) == (tok != NULL));
    tok_free(tok);
    return st;
}

#define MINI_VOCAB "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"<s>\":3}"
#define MINI(extra) "{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[\"a b\"]}" extra "}"

static void test_mini(void)
{
    const char *json = MINI(",\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":true}],"
                            "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
                            "{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
                            "\"special_tokens\":{\"<s>\":{\"ids\":[3]}}}");
    struct tokenizer *tok = NULL;
    char err[256] = "";
    CHECK_MSG(tok_load_from_memory(json, strlen(json), "{\"bos_token\":{\"content\":\"<s>\"}}", 31,
                                   &tok, err, sizeof(err)) == ST_OK,
              "%s", err);
    if (!tok)
        return;
    const int32_t plain[] = {2, 2, 3, 0};
    CHECK(encode_eq(tok, "abab<s>a", TOK_ENCODE_PARSE_SPECIAL, plain, 4));
    const int32_t with_bos[] = {3, 2, 2};
    CHECK(encode_eq(tok, "abab", TOK_ENCODE_PARSE_SPECIAL | TOK_ENCODE_ADD_SPECIAL, with_bos, 3));
    CHECK_INT_EQ(tok_bos_id(tok), 3);
    CHECK(tok_adds_bos(tok));
    char *text = NULL;
    CHECK_INT_EQ(tok_decode(tok, with_bos, 3, 1, &text), ST_OK);
    /* No decoder: HF joins the tokens with spaces. */
    CHECK_STR_EQ(text, "ab ab");
    free(text);
    tok_free(tok);
}

/* Split behaviours, seen through merges that would cross the split points. */
static void test_split_behaviors(void)
{
    static const char *const behaviors[] = {"Isolated",       "Removed",    "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous", "Removed"};
    static const int32_t want[][3] = {{0, 2, 1},  {0, 1, -1}, {3, 1, -1},
                                      {0, 4, -1}, {0, 2, 1},  {2, -1, -1}};
    for (size_t i = 0; i < sizeof(behaviors) / sizeof(behaviors[0]); i++) {
        char json[1024];
        snprintf(json, sizeof(json),
                 "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"-\":2,\"a-\":3,"
                 "\"-b\":4},\"merges\":[\"a -\",\"- b\"]},\"pre_tokenizer\":{\"type\":\"Split\","
                 "\"pattern\":{\"Regex\":\"-\"},\"behavior\":\"%s\",\"invert\":%s}}",
                 behaviors[i], i == 5 ? "true" : "false");
        struct tokenizer *tok = NULL;
        char err[256] = "";
        CHECK_MSG(tok_load_from_memory(json, strlen(json), NULL, 0, &tok, err, sizeof(err)) ==
                      ST_OK,
                  "%s", err);
        if (!tok)
            continue;
        size_t n = want[i][2] >= 0 ? 3 : want[i][1] >= 0 ? 2 : 1;
        CHECK_MSG(encode_eq(tok, "a-b", 0, want[i], n), "behavior %s", behaviors[i]);
        tok_free(tok);
    }
}

static void test_metaspace(void)
{
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\u2581a\":0,\"\\u2581b\":1,\"\\u2581\":2,"
        "\"a\":3,\"b\":4},\"merges\":[[\"\\u2581\",\"a\"],[\"\\u2581\",\"b\"]]},"
        "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
        "\"prepend_scheme\":\"always\",\"split\":true},"
        "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
        "\"prepend_scheme\":\"always\"}}";
    struct tokenizer *tok = NULL;
    char err[256] = "";
    CHECK_MSG(tok_load_from_memory(json, strlen(json), NULL, 0, &tok, err, sizeof(err)) == ST_OK,
              "%s", err);
    if (!tok)
        return;
    const int32_t ab[] = {0, 1};
    CHECK(encode_eq(tok, "a b", 0, ab, 2));
    char *text = NULL;
    CHECK_INT_EQ(tok_decode(tok, ab, 2, 0, &text), ST_OK);
    CHECK_STR_EQ(text, "a b");
    free(text);
    tok_free(tok);
}

/* Added-token flags: normalized (matched after the normalizer), lstrip/rstrip, single_word. */
static void test_added_flags(void)
{
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\" \":2,\"ab\":3,\"<m>\":4,"
        "\"w\":5,\"aw\":6},\"merges\":[\"a b\",\"a w\"]},"
        "\"added_tokens\":[{\"id\":3,\"content\":\"ab\",\"special\":false},"
        "{\"id\":4,\"content\":\"<m>\",\"special\":true,\"lstrip\":true,\"rstrip\":true},"
        "{\"id\":5,\"content\":\"w\",\"special\":false,\"normalized\":false,"
        "\"single_word\":true}],"
        "\"normalizer\":{\"type\":\"Lowercase\"}}";
    struct tokenizer *tok = NULL;
    char err[256] = "";
    CHECK_MSG(tok_load_from_memory(json, strlen(json), NULL, 0, &tok, err, sizeof(err)) == ST_OK,
              "%s", err);
    if (!tok)
        return;
    /* "AB" only becomes the added token "ab" after lowercasing. */
    const int32_t ab[] = {3};
    CHECK(encode_eq(tok, "AB", TOK_ENCODE_PARSE_SPECIAL, ab, 1));
    /* lstrip/rstrip swallow the spaces around <m>. */
    const int32_t m[] = {0, 4, 1};
    CHECK(encode_eq(tok, "a <m>  b", TOK_ENCODE_PARSE_SPECIAL, m, 3));
    /* single_word: "w" alone is the added token, inside "aw" it is not split out. */
    const int32_t w[] = {0, 2, 5};
    CHECK(encode_eq(tok, "a w", TOK_ENCODE_PARSE_SPECIAL, w, 3));
    const int32_t aw[] = {6};
    CHECK(encode_eq(tok, "aw", TOK_ENCODE_PARSE_SPECIAL, aw, 1));
    CHECK(tok_is_special(tok, 4) && !tok_is_special(tok, 3));
    tok_free(tok);
}

/* Whitespace, Digits and Punctuation pre-tokenizers, seen through merges across their splits. */
static void test_fixed_pretokenizers(void)
{
    static const char *const pretoks[] = {
        "{\"type\":\"Whitespace\"}",
        "{\"type\":\"Digits\",\"individual_digits\":true}",
        "{\"type\":\"Digits\",\"individual_digits\":false}",
        "{\"type\":\"Punctuation\",\"behavior\":\"Isolated\"}",
    };
    static const char *const texts[] = {"x1 ,", "x12", "x12", "1,"};
    static const int32_t want[][4] = {{4, 2, -1}, {0, 1, 8, -1}, {0, 6, -1}, {1, 2, -1}};
    for (size_t i = 0; i < sizeof(pretoks) / sizeof(pretoks[0]); i++) {
        char json[1024];
        snprintf(json, sizeof(json),
                 "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"x\":0,\"1\":1,\",\":2,\" \":3,"
                 "\"x1\":4,\" ,\":5,\"12\":6,\"1,\":7,\"2\":8},\"merges\":[[\"x\",\"1\"],"
                 "[\" \",\",\"],[\"1\",\"2\"],[\"1\",\",\"]]},\"pre_tokenizer\":%s}",
                 pretoks[i]);
        struct tokenizer *tok = NULL;
        char err[256] = "";
        CHECK_MSG(tok_load_from_memory(json, strlen(json), NULL, 0, &tok, err, sizeof(err)) ==
                      ST_OK,
                  "%s: %s", pretoks[i], err);
        if (!tok)
            continue;
        size_t n = 0;
        while (n < 4 && want[i][n] >= 0)
            n++;
        CHECK_MSG(encode_eq(tok, texts[i], 0, want[i], n), "%s", pretoks[i]);
        tok_free(tok);
    }
}

/* Llama/Gemma tokenizer classes take BOS/EOS addition from tokenizer_config.json, as transformers.
 */
static void test_config_template(void)
{
    const char *json = MINI(",\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":true}],"
                            "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
                            "{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
                            "\"special_tokens\":{\"<s>\":{\"ids\":[3]}}}");
    static const char *const configs[] = {
        "{\"tokenizer_class\":\"LlamaTokenizerFast\",\"bos_token\":\"<s>\",\"eos_token\":\"a\","
        "\"add_bos_token\":false,\"add_eos_token\":true}",
        "{\"tokenizer_class\":\"PreTrainedTokenizerFast\",\"bos_token\":\"<s>\","
        "\"eos_token\":\"a\",\"add_bos_token\":false,\"add_eos_token\":true}",
        "{\"tokenizer_class\":\"GemmaTokenizer\",\"eos_token\":\"a\"}",
    };
    static const int32_t want[][3] = {{2, 0, -1}, {3, 2, -1}, {-1, -1, -1}};
    static const enum status want_st[] = {ST_OK, ST_OK, ST_ERR_FORMAT};
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        struct tokenizer *tok = NULL;
        char err[256] = "";
        enum status st = tok_load_from_memory(json, strlen(json), configs[i], strlen(configs[i]),
                                              &tok, err, sizeof(err));
        CHECK_MSG(st == want_st[i], "config %zu: %s", i, err);
        if (!tok)
            continue;
        CHECK(encode_eq(tok, "ab", TOK_ENCODE_ADD_SPECIAL, want[i], 2));
        tok_free(tok);
    }
}

/*
 * Random id sequences (including partial UTF-8 byte tokens and specials):
 * a byte-level stream's output must equal the full decode.  Not checked for
 * ByteFallback tokenizers, whose decode of a byte run can change after the
 * fact (a valid run that a later invalid byte joins becomes U+FFFDs).
 */
static void test_stream_random(void)
{
    static const int which[] = {QWEN3, LLAMA3_1};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (size_t w = 0; w < 2; w++) {
        const struct tokenizer *tok = loaded[which[w]];
        CHECK(tok != NULL);
        if (!tok)
            continue;
        int bad = 0;
        for (int round = 0; round < 500; round++) {
            int32_t ids[24];
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t n = 1 + (rng >> 33) % 24;
            for (size_t i = 0; i < n; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                /* Mostly the first 256 ids (single bytes), sometimes anything. */
                uint32_t r = (uint32_t)(rng >> 32);
                ids[i] = (int32_t)(r % 4 ? r % 256 : r % (uint32_t)tok_vocab_size(tok));
            }
            for (int skip = 0; skip < 2; skip++) {
                int whole = 0;
                char *streamed = stream_decode(tok, ids, n, skip, &whole);
                char *full = NULL;
                if (!streamed || !whole || tok_decode_raw(tok, ids, n, skip, &full) != ST_OK ||
                    strcmp(streamed, full) != 0)
                    bad++;
                free(streamed);
                free(full);
            }
        }
        CHECK_INT_EQ(bad, 0);
    }
}

static void test_malformed(void)
{
    char err[256];
    struct {
        const char *json;
        enum status want;
    } cases[] = {
        {"", ST_ERR_FORMAT},
        {"[]", ST_ERR_FORMAT},
        {"{}", ST_ERR_FORMAT},
        {"{\"model\":[]}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", ST_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", ST_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e300},\"merges\":[]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0.5},\"merges\":[]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":{}}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[\"a b c\"]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[\"ab\"]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[\"a c\"]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[\"b a\"]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[[\"a\"]]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[[\"a\",1]]}}", ST_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\"," MINI_VOCAB ",\"merges\":[7]}}", ST_ERR_FORMAT},
        {MINI(",\"added_tokens\":{}"), ST_ERR_FORMAT},
        {MINI(",\"added_tokens\":[{\"id\":\"1\",\"content\":\"x\"}]"), ST_ERR_FORMAT},
        {MINI(",\"added_tokens\":[{\"id\":1}]"), ST_ERR_FORMAT},
        {MINI(",\"added_tokens\":[{\"id\":1,\"content\":\"x\",\"special\":3}]"), ST_ERR_FORMAT},
        {MINI(",\"normalizer\":{\"type\":\"Precompiled\"}"), ST_ERR_UNSUPPORTED},
        {MINI(",\"normalizer\":{\"kind\":\"NFC\"}"), ST_ERR_FORMAT},
        {MINI(",\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":7}"), ST_ERR_FORMAT},
        {MINI(",\"normalizer\":{\"type\":\"Replace\",\"pattern\":{},\"content\":\"x\"}"),
         ST_ERR_FORMAT},
        {MINI(",\"normalizer\":{\"type\":\"Prepend\",\"prepend\":5}"), ST_ERR_FORMAT},
        {MINI(",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},"
              "\"behavior\":\"Isolated\"}"),
         ST_ERR_FORMAT},
        {MINI(",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},"
              "\"behavior\":\"Sideways\"}"),
         ST_ERR_FORMAT},
        {MINI(",\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}"), ST_ERR_FORMAT},
        {MINI(",\"pre_tokenizer\":{\"type\":\"UnicodeScripts\"}"), ST_ERR_UNSUPPORTED},
        {MINI(",\"decoder\":{\"type\":\"Strip\",\"content\":1,\"start\":1,\"stop\":0}"),
         ST_ERR_FORMAT},
        {MINI(",\"decoder\":{\"type\":\"Strip\",\"content\":\" \",\"start\":-1}"), ST_ERR_FORMAT},
        {MINI(",\"decoder\":{\"type\":\"WordPiece\"}"), ST_ERR_UNSUPPORTED},
        {MINI(",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
              "{\"SpecialToken\":{\"id\":\"<x>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
              "\"special_tokens\":{}}"),
         ST_ERR_FORMAT},
        {MINI(",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
              "{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
              "\"special_tokens\":{\"<s>\":{\"ids\":[99999]}}}"),
         ST_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        enum status st = load_mem(cases[i].json, NULL, err, sizeof(err));
        CHECK_MSG(st == cases[i].want, "case %zu: got %s (%s), want %s", i, status_str(st), err,
                  status_str(cases[i].want));
        CHECK_MSG(st == ST_OK || err[0], "case %zu: no error message", i);
    }
    CHECK_INT_EQ(load_mem(MINI(""), NULL, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(load_mem(MINI(""), "{", err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_INT_EQ(load_mem(MINI(""), "{\"eos_token\":5}", err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_INT_EQ(load_mem(MINI(""), "{\"clean_up_tokenization_spaces\":\"yes\"}", err, sizeof(err)),
                 ST_ERR_FORMAT);

    struct tokenizer *tok = NULL;
    CHECK_INT_EQ(tok_load("/nonexistent-dir", &tok, err, sizeof(err)), ST_ERR_NOT_FOUND);
    CHECK(tok == NULL);
}

/* Every truncation of a real tokenizer.json is an error, never a crash. */
static void test_truncated(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/fixtures/models/aidreams-260k/tokenizer.json",
             harness_shared_dir());
    size_t len = 0;
    char *json = slurp(path, &len);
    CHECK(json != NULL);
    if (!json)
        return;
    char err[256];
    int failed = 0, tried = 0;
    for (size_t cut = 0; cut + 1 < len; cut += 37) {
        struct tokenizer *tok = NULL;
        tried++;
        failed += tok_load_from_memory(json, cut, NULL, 0, &tok, err, sizeof(err)) != ST_OK;
        tok_free(tok);
    }
    CHECK_INT_EQ(failed, tried);
    struct tokenizer *tok = NULL;
    CHECK_INT_EQ(tok_load_from_memory(json, len, NULL, 0, &tok, err, sizeof(err)), ST_OK);
    tok_free(tok);
    free(json);
}

/* ---- threads ------------------------------------------------------------------------ */

struct thread_arg {
    const struct tokenizer *tok;
    int mismatches;
};

static const char *const thread_texts[] = {
    "Hello, world! The quick brown fox.", "<|im_start|>user\nnǐ hǎo 你好<|im_end|>",
    "def f(x):\n    return x ** 2  # 42", "emoji 👨‍👩‍👧 flags 🇯🇵 done"};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int round = 0; round < 200; round++) {
        const char *t = thread_texts[round % 4];
        int32_t *ids = NULL, *again = NULL;
        size_t n = 0, m = 0;
        char *text = NULL;
        if (tok_encode(a->tok, t, strlen(t), TOK_ENCODE_PARSE_SPECIAL, &ids, &n) != ST_OK ||
            tok_decode(a->tok, ids, n, 0, &text) != ST_OK || strcmp(text, t) != 0 ||
            tok_encode(a->tok, text, strlen(text), TOK_ENCODE_PARSE_SPECIAL, &again, &m) != ST_OK ||
            m != n || memcmp(ids, again, n * sizeof(*ids)) != 0)
            a->mismatches++;
        free(ids);
        free(again);
        free(text);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){loaded[QWEN3], 0};
        CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT_EQ(args[i].mismatches, 0);
    }
}

/* ---- subcommands ------------------------------------------------------------------ */

static char *run_cmd(const char *cmd, int *rc)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    size_t got;
    while (out && (got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            char *g = realloc(out, cap);
            if (!g) {
                free(out);
                out = NULL;
            }
            out = g;
        }
    }
    int status = pclose(p);
    *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (out)
        out[len] = '\0';
    return out;
}

static void test_cli(void)
{
    const char *build = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    const char *shared = harness_shared_dir();
    char cmd[2048], tmp[64];
    int rc;
    snprintf(tmp, sizeof(tmp), "/tmp/mlxm_tok_cli_%d.txt", (int)getpid());
    FILE *f = fopen(tmp, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    /* Exact bytes of stdin, trailing newline included. */
    fputs("Hello world\n", f);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "%s/mlx-manager tokenize --model %s/fixtures/tokenizers/mistral < %s", build, shared,
             tmp);
    char *out = run_cmd(cmd, &rc);
    CHECK_INT_EQ(rc, 0);
    CHECK_STR_EQ(out, "[1,22557,1526,13]\n");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "%s/mlx-manager tokenize --no-special --model %s/fixtures/tokenizers/mistral < %s",
             build, shared, tmp);
    out = run_cmd(cmd, &rc);
    CHECK_INT_EQ(rc, 0);
    CHECK_STR_EQ(out, "[22557,1526,13]\n");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "printf '%%s\\n%%s\\n' '{\"text\":\"Hello world\",\"add_special_tokens\":false}' "
             "'{\"text\":\"<s>Hi\",\"add_special_tokens\":true}' | "
             "%s/mlx-manager tokenize --jsonl --model %s/fixtures/tokenizers/mistral",
             build, shared);
    out = run_cmd(cmd, &rc);
    CHECK_INT_EQ(rc, 0);
    CHECK_STR_EQ(out, "[22557,1526]\n[1,1,15359]\n");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "echo '[1, 22557, 1526]' | %s/mlx-manager detokenize --model "
             "%s/fixtures/tokenizers/mistral",
             build, shared);
    out = run_cmd(cmd, &rc);
    CHECK_INT_EQ(rc, 0);
    CHECK_STR_EQ(out, "<s> Hello world");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "echo '[1, 22557, 1526]' | %s/mlx-manager detokenize --skip-special --model "
             "%s/fixtures/tokenizers/mistral",
             build, shared);
    out = run_cmd(cmd, &rc);
    CHECK_INT_EQ(rc, 0);
    CHECK_STR_EQ(out, "Hello world");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "echo '[1, 99999999999]' | %s/mlx-manager detokenize --model "
             "%s/fixtures/tokenizers/mistral 2>/dev/null",
             build, shared);
    out = run_cmd(cmd, &rc);
    CHECK_INT_EQ(rc, 1);
    free(out);
    snprintf(cmd, sizeof(cmd), "%s/mlx-manager tokenize < /dev/null 2>/dev/null", build);
    out = run_cmd(cmd, &rc);
    CHECK_INT_EQ(rc, 2);
    free(out);
    remove(tmp);
}

int main(void)
{
    RUN(test_qwen3);
    RUN(test_llama3_1);
    RUN(test_gemma3);
    RUN(test_mistral);
    RUN(test_aidreams);
    RUN(test_accessors);
    RUN(test_special_flag);
    RUN(test_decode_errors);
    RUN(test_mini);
    RUN(test_split_behaviors);
    RUN(test_metaspace);
    RUN(test_added_flags);
    RUN(test_fixed_pretokenizers);
    RUN(test_config_template);
    RUN(test_stream_random);
    RUN(test_malformed);
    RUN(test_truncated);
    RUN(test_threads);
    RUN(test_cli);
    for (int i = 0; i < N_TOKS; i++)
        tok_free(loaded[i]);
    return harness_finish();
}
