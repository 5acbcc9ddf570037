/*
 * cli_generate.c - `mlx-manager generate`: one generation through the engine
 * API, streamed to stdout, for trying a model and for scripted checks.
 *
 * --threads N sets the model's compute threads (0 or absent: the physical
 * cores).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "engine.h"

#define DEFAULT_MAX_TOKENS 256

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mlx-manager generate --model DIR (--prompt TEXT | --prompt-ids JSON | "
            "--chat TEXT)\n"
            "                            [--max-tokens N] [--temp T] [--top-p P] [--top-k K]\n"
            "                            [--seed S] [--ignore-eos] [--json] [--threads N]\n"
            "\n"
            "  --model DIR        a model directory or a Hugging Face cache id (org/name)\n"
            "  --prompt TEXT      tokenized with special tokens (e.g. BOS) added\n"
            "  --prompt-ids JSON  token ids, e.g. [1, 388, 355]\n"
            "  --chat TEXT        one user message, rendered with the chat template\n"
            "  --max-tokens N     tokens to generate at most (default %d; 0 = the context)\n"
            "  --temp T           temperature (default 0: greedy)\n"
            "  --top-p P, --top-k K, --seed S   sampling controls\n"
            "  --ignore-eos       keep generating past EOS\n"
            "  --threads N        compute threads (default 0: the physical cores)\n"
            "  --json             print one JSON object {prompt_ids, ids, text, prompt_tps,\n"
            "                     decode_tps} instead of streaming the text\n"
            "\n"
            "Prompt and decode speed go to stderr.\n",
            DEFAULT_MAX_TOKENS);
}

/* What the event callback collects; guarded by mu. */
struct gen_out {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, json;
    int32_t *ids;
    int n_ids, cap_ids;
    char *text;
    size_t text_len, text_cap;
    bool oom;
    struct engine_usage usage;
    enum engine_finish finish;
    char error[256];
};

static void out_text(struct gen_out *o, const char *s, size_t len)
{
    if (!len)
        return;
    if (!o->json) {
        fwrite(s, 1, len, stdout);
        fflush(stdout);
        return;
    }
    if (o->text_len + len + 1 > o->text_cap) {
        size_t cap = (o->text_len + len + 1) * 2;
        char *nt = realloc(o->text, cap);
        if (!nt) {
            o->oom = true;
            return;
        }
        o->text = nt;
        o->text_cap = cap;
    }
    memcpy(o->text + o->text_len, s, len);
    o->text_len += len;
    o->text[o->text_len] = 0;
}

static void on_event(const struct engine_event *ev, void *user)
{
    struct gen_out *o = user;
    pthread_mutex_lock(&o->mu);
    if (ev->kind == ENGINE_EVENT_TOKEN) {
        if (o->n_ids == o->cap_ids) {
            int cap = o->cap_ids ? o->cap_ids * 2 : 256;
            int32_t *ni = realloc(o->ids, (size_t)cap * sizeof(*ni));
            if (ni) {
                o->ids = ni;
                o->cap_ids = cap;
            } else {
                o->oom = true;
            }
        }
        if (o->n_ids < o->cap_ids)
            o->ids[o->n_ids++] = ev->token;
        out_text(o, ev->text, ev->text_len);
    } else {
        out_text(o, ev->text, ev->text_len);
        o->usage = ev->usage;
        o->finish = ev->finish;
        if (ev->finish == ENGINE_FINISH_ERROR)
            snprintf(o->error, sizeof(o->error), "%s (%s)", ev->error, status_str(ev->status));
        o->done = true;
        pthread_cond_signal(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Parses "[1, 2, 3]" into a malloc'd array; -1 with a message on error. */
static int parse_ids(const char *json, int32_t **ids, int *n)
{
    cJSON *arr = cJSON_Parse(json);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        fprintf(stderr, "generate: --prompt-ids must be a JSON array of token ids\n");
        return -1;
    }
    int count = cJSON_GetArraySize(arr);
    *ids = malloc((size_t)(count ? count : 1) * sizeof(**ids));
    if (!*ids) {
        cJSON_Delete(arr);
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > INT32_MAX) {
            fprintf(stderr, "generate: --prompt-ids element %d is not a token id\n", i);
            free(*ids);
            cJSON_Delete(arr);
            return -1;
        }
        (*ids)[i++] = (int32_t)e->valuedouble;
    }
    *n = count;
    cJSON_Delete(arr);
    return 0;
}

static int print_json(const struct engine_request *req, const struct gen_out *o)
{
    int n_prompt;
    const int32_t *prompt = engine_request_prompt(req, &n_prompt);
    cJSON *root = cJSON_CreateObject();
    cJSON *p = cJSON_AddArrayToObject(root, "prompt_ids");
    cJSON *g = cJSON_AddArrayToObject(root, "ids");
    if (!root || !p || !g) {
        cJSON_Delete(root);
        return -1;
    }
    for (int i = 0; i < n_prompt; i++)
        cJSON_AddItemToArray(p, cJSON_CreateNumber(prompt[i]));
    for (int i = 0; i < o->n_ids; i++)
        cJSON_AddItemToArray(g, cJSON_CreateNumber(o->ids[i]));
    cJSON_AddStringToObject(root, "text", o->text ? o->text : "");
    cJSON_AddNumberToObject(root, "prompt_tps", o->usage.prompt_tps);
    cJSON_AddNumberToObject(root, "decode_tps", o->usage.decode_tps);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return -1;
    printf("%s\n", s);
    free(s);
    return 0;
}

int cli_generate(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *prompt_ids = NULL, *chat = NULL;
    bool json = false;
    long max_tokens = DEFAULT_MAX_TOKENS;
    int threads = 0;
    struct engine_gen_params gp;
    engine_gen_params_default(&gp);
    gp.sampling.temperature = 0.0f;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long lv;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            gp.ignore_eos = true;
        } else if (!v) {
            fprintf(stderr, "generate: %s needs a value (or is unknown)\n\n", a);
            usage(stderr);
            return 2;
        } else {
            i++;
            int bad = 0;
            if (!strcmp(a, "--model")) {
                model = v;
            } else if (!strcmp(a, "--prompt")) {
                prompt = v;
            } else if (!strcmp(a, "--prompt-ids")) {
                prompt_ids = v;
            } else if (!strcmp(a, "--chat")) {
                chat = v;
            } else if (!strcmp(a, "--max-tokens")) {
                bad = parse_int(v, 0, INT_MAX, &max_tokens);
            } else if (!strcmp(a, "--temp")) {
                bad = parse_float(v, &gp.sampling.temperature) || gp.sampling.temperature < 0;
            } else if (!strcmp(a, "--top-p")) {
                bad = parse_float(v, &gp.sampling.top_p);
            } else if (!strcmp(a, "--top-k")) {
                bad = parse_int(v, 0, INT_MAX, &lv);
                gp.sampling.top_k = (int)lv;
            } else if (!strcmp(a, "--seed")) {
                char *end;
                errno = 0;
                unsigned long long s = strtoull(v, &end, 10);
                bad = errno || end == v || *end || *v == '-';
                gp.sampling.seed = s;
                gp.has_seed = true;
            } else if (!strcmp(a, "--threads")) {
                bad = parse_int(v, 0, 256, &lv);
                threads = (int)lv;
            } else {
                fprintf(stderr, "generate: unknown option %s\n\n", a);
                usage(stderr);
                return 2;
            }
            if (bad) {
                fprintf(stderr, "generate: bad value for %s: '%s'\n", a, v);
                return 2;
            }
        }
    }
    if (!model || (!!prompt + !!prompt_ids + !!chat) != 1) {
        fprintf(stderr, "generate: need --model and exactly one of --prompt, --prompt-ids, "
                        "--chat\n\n");
        usage(stderr);
        return 2;
    }
    gp.max_tokens = (int)max_tokens;

    struct engine_request_desc d = {.params = gp, .on_event = on_event};
    int32_t *ids = NULL;
    cJSON *ctx = NULL;
    if (prompt) {
        d.kind = ENGINE_PROMPT_TEXT;
        d.prompt_text = prompt;
        d.add_special_tokens = true;
    } else if (prompt_ids) {
        d.kind = ENGINE_PROMPT_IDS;
        if (parse_ids(prompt_ids, &ids, &d.n_prompt_ids))
            return 2;
        d.prompt_ids = ids;
    } else {
        d.kind = ENGINE_PROMPT_CHAT;
        ctx = cJSON_CreateObject();
        cJSON *msgs = cJSON_AddArrayToObject(ctx, "messages");
        cJSON *msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "role", "user");
        cJSON_AddStringToObject(msg, "content", chat);
        cJSON_AddItemToArray(msgs, msg);
        cJSON_AddTrueToObject(ctx, "add_generation_prompt");
        d.chat = ctx;
    }

    char err[512] = "";
    int rc = 1;
    struct engine_model *m = NULL;
    struct engine_request *req = NULL;
    struct gen_out o = {.json = json};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    d.user = &o;
    /* One sequence: the KV pool is one full context. */
    struct engine_load_opts lo = {.max_seqs = 1, .threads = threads};
    enum status st = engine_model_load(model, &lo, &m, err, sizeof(err));
    if (st != ST_OK) {
        fprintf(stderr, "generate: cannot load %s: %s\n", model, err);
        goto out;
    }
    st = engine_submit(m, &d, &req, err, sizeof(err));
    if (st != ST_OK) {
        fprintf(stderr, "generate: %s\n", err);
        goto out;
    }
    pthread_mutex_lock(&o.mu);
    while (!o.done)
        pthread_cond_wait(&o.cv, &o.mu);
    pthread_mutex_unlock(&o.mu);
    if (o.finish == ENGINE_FINISH_ERROR) {
        fprintf(stderr, "\ngenerate: %s\n", o.error);
        goto out;
    }
    if (o.oom) {
        fprintf(stderr, "generate: out of memory collecting the output\n");
        goto out;
    }
    if (json) {
        if (print_json(req, &o)) {
            fprintf(stderr, "generate: out of memory printing JSON\n");
            goto out;
        }
    } else {
        printf("\n");
    }
    fflush(stdout);
    fprintf(stderr,
            "prompt: %d tokens, %.2f tokens/s | decode: %d tokens, %.2f tokens/s | "
            "ttft %.1f ms\n",
            o.usage.prompt_tokens, o.usage.prompt_tps, o.usage.completion_tokens,
            o.usage.decode_tps, o.usage.ttft_s * 1e3);
    rc = 0;
out:
    engine_request_release(req);
    engine_model_free(m);
    pthread_mutex_destroy(&o.mu);
    pthread_cond_destroy(&o.cv);
    free(o.ids);
    free(o.text);
    free(ids);
    cJSON_Delete(ctx);
    return rc;
}
