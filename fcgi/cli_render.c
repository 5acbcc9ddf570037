/*
 * cli_render.c - `mlx-manager render`: a model's chat template on
 * stdin/stdout, for scripts and for checking against transformers.
 *
 *   render --model DIR|ORG/NAME [--jsonl]
 *       stdin: {"messages": [...], "tools": [...]?, "add_generation_prompt": bool,
 *       ...any other template variables}; stdout: the rendered prompt exactly,
 *       no newline added.  bos_token / eos_token come from the model's
 *       tokenizer_config.json unless the request gives them.
 *       --jsonl: one request per line in, one {"rendered": ...} or
 *       {"error": ...} per line out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "chat_template.h"
#include "cli.h"
#include "fsutil.h"
#include "model_dir.h"

/* Renders one request; on failure writes the reason into err. */
static char *render_request(const struct chat_template *t, const char *text, size_t len,
                            size_t *out_len, char *err, size_t errlen)
{
    cJSON *req = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(req)) {
        snprintf(err, errlen, "request is not a JSON object");
        cJSON_Delete(req);
        return NULL;
    }
    char *out = NULL;
    chat_template_render(t, req, &out, out_len, err, errlen);
    cJSON_Delete(req);
    return out;
}

/* One JSON object per line: {"rendered": ...} or {"error": ...}. */
static int run_jsonl(const struct chat_template *t)
{
    char *line = NULL, err[1024];
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (!n)
            continue;
        size_t out_len;
        char *out = render_request(t, line, (size_t)n, &out_len, err, sizeof(err));
        cJSON *res = cJSON_CreateObject();
        if (!res || !(out ? cJSON_AddStringToObject(res, "rendered", out)
                          : cJSON_AddStringToObject(res, "error", err))) {
            free(out);
            cJSON_Delete(res);
            free(line);
            fprintf(stderr, "render: out of memory\n");
            return 1;
        }
        char *json = cJSON_PrintUnformatted(res);
        if (json)
            printf("%s\n", json);
        free(json);
        free(out);
        cJSON_Delete(res);
        if (!json) {
            free(line);
            fprintf(stderr, "render: out of memory\n");
            return 1;
        }
    }
    free(line);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cli_render(int argc, char **argv)
{
    const char *model = NULL;
    int jsonl = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--jsonl")) {
            jsonl = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mlx-manager render --model DIR|ORG/NAME [--jsonl] < request.json\n");
            return 0;
        } else {
            fprintf(stderr, "render: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "render: --model DIR is required\n");
        return 2;
    }
    char dir[4096], err[1024];
    if (model_dir_resolve(model, dir, sizeof(dir), err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "render: %s\n", err);
        return 1;
    }
    struct chat_template *t;
    if (chat_template_load(dir, &t, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "render: %s\n", err);
        return 1;
    }
    int rc;
    if (jsonl) {
        rc = run_jsonl(t);
    } else {
        size_t len, out_len;
        char *text = fs_read_stream(stdin, &len);
        char *out = text ? render_request(t, text, len, &out_len, err, sizeof(err)) : NULL;
        if (!text)
            snprintf(err, sizeof(err), "cannot read stdin");
        if (out) {
            rc = fwrite(out, 1, out_len, stdout) == out_len && fflush(stdout) == 0 ? 0 : 1;
        } else {
            fprintf(stderr, "render: %s\n", err);
            rc = 1;
        }
        free(out);
        free(text);
    }
    chat_template_free(t);
    return rc;
}
