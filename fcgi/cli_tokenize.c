/*
 * cli_tokenize.c - `mlx-manager tokenize` and `mlx-manager detokenize`:
 * the engine's tokenizer on stdin/stdout, for scripts and for checking
 * against other tokenizer implementations.
 *
 *   tokenize --model DIR [--no-special] [--jsonl]
 *       stdin: UTF-8 text (all of it, byte for byte); stdout: a JSON array of ids.
 *       --jsonl: one {"text": ..., "add_special_tokens": bool} per line in, one
 *       array per line out.
 *   detokenize --model DIR [--skip-special]
 *       stdin: a JSON array of ids; stdout: the text, no newline added.
 *
 * Special-token text in the input ("<|im_start|>") is recognised, as Hugging
 * Face does by default; --no-special only turns off add_special_tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "fsutil.h"
#include "model_dir.h"
#include "tokenizer.h"

static void print_ids(const int32_t *ids, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(i ? ",%d" : "%d", (int)ids[i]);
    puts("]");
}

/* Parses --model DIR and the listed boolean flags; returns 0 or 2 (usage). */
static int parse_args(int argc, char **argv, const char *const *flag_names, int *flags, int n_flags,
                      const char **model)
{
    *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            *model = argv[++i];
            continue;
        }
        int known = 0;
        for (int f = 0; f < n_flags; f++) {
            if (!strcmp(argv[i], flag_names[f])) {
                flags[f] = 1;
                known = 1;
            }
        }
        if (!known) {
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", argv[0], argv[i]);
            return 2;
        }
    }
    if (!*model) {
        fprintf(stderr, "%s: --model DIR is required\n", argv[0]);
        return 2;
    }
    return 0;
}

static struct tokenizer *load(const char *cmd, const char *model)
{
    char dir[4096], err[512];
    struct tokenizer *tok = NULL;
    if (model_dir_resolve(model, dir, sizeof(dir), err, sizeof(err)) != ST_OK ||
        tok_load(dir, &tok, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return NULL;
    }
    return tok;
}

static int tokenize_jsonl(struct tokenizer *tok, const char *data, int add_default)
{
    const char *line = data;
    for (size_t lineno = 1; *line; lineno++) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n == 0 || (n == 1 && line[0] == '\r')) {
            line += n + (end != NULL);
            continue;
        }
        cJSON *o = cJSON_ParseWithLength(line, n);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(o, "add_special_tokens");
        if (!cJSON_IsString(text) || (add && !cJSON_IsBool(add))) {
            fprintf(stderr,
                    "tokenize: line %zu: expected {\"text\": string, \"add_special_tokens\": "
                    "bool}\n",
                    lineno);
            cJSON_Delete(o);
            return 1;
        }
        unsigned flags = TOK_ENCODE_PARSE_SPECIAL;
        if (add ? cJSON_IsTrue(add) : add_default)
            flags |= TOK_ENCODE_ADD_SPECIAL;
        int32_t *ids;
        size_t n_ids;
        enum status st =
            tok_encode(tok, text->valuestring, strlen(text->valuestring), flags, &ids, &n_ids);
        cJSON_Delete(o);
        if (st != ST_OK) {
            fprintf(stderr, "tokenize: line %zu: %s\n", lineno, status_str(st));
            return 1;
        }
        print_ids(ids, n_ids);
        free(ids);
        line += n + (end != NULL);
    }
    return 0;
}

int cli_tokenize(int argc, char **argv)
{
    static const char *const names[] = {"--no-special", "--jsonl", "--help"};
    int flags[3] = {0};
    const char *model;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mlx-manager tokenize --model DIR [--no-special] [--jsonl]\n"
                   "  reads UTF-8 text on stdin and prints a JSON array of token ids\n"
                   "  --no-special  do not add special tokens (BOS ...)\n"
                   "  --jsonl       one {\"text\":...,\"add_special_tokens\":bool} per line\n");
            return 0;
        }
    }
    int rc = parse_args(argc, argv, names, flags, 3, &model);
    if (rc)
        return rc;
    struct tokenizer *tok = load("tokenize", model);
    if (!tok)
        return 1;
    size_t len;
    char *data = fs_read_stream(stdin, &len);
    if (!data) {
        fprintf(stderr, "tokenize: cannot read stdin\n");
        tok_free(tok);
        return 1;
    }
    if (flags[1]) {
        rc = tokenize_jsonl(tok, data, !flags[0]);
    } else {
        int32_t *ids;
        size_t n;
        unsigned f = TOK_ENCODE_PARSE_SPECIAL | (flags[0] ? 0u : TOK_ENCODE_ADD_SPECIAL);
        enum status st = tok_encode(tok, data, len, f, &ids, &n);
        if (st != ST_OK) {
            fprintf(stderr, "tokenize: %s%s\n", status_str(st),
                    st == ST_ERR_INVALID ? " (stdin is not valid UTF-8)" : "");
            rc = 1;
        } else {
            print_ids(ids, n);
            free(ids);
        }
    }
    free(data);
    tok_free(tok);
    return rc || fflush(stdout) ? 1 : 0;
}

int cli_detokenize(int argc, char **argv)
{
    static const char *const names[] = {"--skip-special"};
    int flags[1] = {0};
    const char *model;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mlx-manager detokenize --model DIR [--skip-special]\n"
                   "  reads a JSON array of token ids on stdin and prints the text\n"
                   "  --skip-special  leave out special tokens\n");
            return 0;
        }
    }
    int rc = parse_args(argc, argv, names, flags, 1, &model);
    if (rc)
        return rc;
    size_t len;
    char *data = fs_read_stream(stdin, &len);
    cJSON *arr = data ? cJSON_ParseWithLength(data, len) : NULL;
    free(data);
    if (!cJSON_IsArray(arr)) {
        fprintf(stderr, "detokenize: stdin is not a JSON array of ids\n");
        cJSON_Delete(arr);
        return 1;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc((n + 1) * sizeof(*ids));
    size_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!ids || !cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > INT32_MAX ||
            it->valuedouble != (double)(int32_t)it->valuedouble) {
            fprintf(stderr, "detokenize: element %zu is not a token id\n", k);
            free(ids);
            cJSON_Delete(arr);
            return 1;
        }
        ids[k++] = (int32_t)it->valuedouble;
    }
    cJSON_Delete(arr);
    struct tokenizer *tok = load("detokenize", model);
    if (!tok) {
        free(ids);
        return 1;
    }
    char *text = NULL;
    enum status st = tok_decode(tok, ids, n, flags[0], &text);
    if (st != ST_OK) {
        fprintf(stderr, "detokenize: %s (vocabulary size %d)\n", status_str(st),
                (int)tok_vocab_size(tok));
        rc = 1;
    } else {
        fwrite(text, 1, strlen(text), stdout);
    }
    free(text);
    free(ids);
    tok_free(tok);
    return rc || fflush(stdout) ? 1 : 0;
}
