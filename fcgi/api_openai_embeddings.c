/*
 * api_openai_embeddings.c - POST /v1/embeddings for decoder models.
 *
 * An embedding is the model's final hidden state (after the final norm)
 * pooled as the model's sentence-transformers config says
 * (1_Pooling/config.json: pooling_mode_mean_tokens -> mean; otherwise the
 * last token, which is what causal embedding models such as
 * Qwen3-Embedding use), then L2-normalized as sentence-transformers'
 * Normalize module does.  `dimensions` keeps the first d values and
 * normalizes again (Matryoshka truncation).  Text is tokenized with the
 * tokenizer's special tokens (BOS/EOS post-processing).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "http.h"
#include "openai_request.h"
#include "openai_response.h"
#include "pool.h"
#include "routes.h"

/* The pooling of the model's sentence-transformers config. */
static enum engine_pooling emb_pooling(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/1_Pooling/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ENGINE_POOLING_LAST;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *cfg = cJSON_Parse(buf);
    enum engine_pooling p =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "pooling_mode_mean_tokens"))
            ? ENGINE_POOLING_MEAN
            : ENGINE_POOLING_LAST;
    cJSON_Delete(cfg);
    return p;
}

static char *emb_base64(const float *v, int n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    /* little-endian float32, as numpy's tobytes() on the machines clients run */
    size_t len = (size_t)n * 4;
    const unsigned char *b = (const unsigned char *)v;
    char *out = malloc((len + 2) / 3 * 4 + 1), *w = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned x = (unsigned)b[i] << 16 | (i + 1 < len ? (unsigned)b[i + 1] << 8 : 0) |
                     (i + 2 < len ? b[i + 2] : 0);
        *w++ = tab[x >> 18 & 63];
        *w++ = tab[x >> 12 & 63];
        *w++ = i + 1 < len ? tab[x >> 6 & 63] : '=';
        *w++ = i + 2 < len ? tab[x & 63] : '=';
    }
    *w = 0;
    return out;
}

static void emb_normalize(float *v, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    /* sentence-transformers divides by max(norm, 1e-12) */
    double norm = sqrt(ss);
    if (norm < 1e-12)
        norm = 1e-12;
    for (int i = 0; i < n; i++)
        v[i] = (float)(v[i] / norm);
}

static int emb_serve(struct http_request *req, struct openai_request *r, struct pool_lease *lease,
                     struct pool_usage *usage)
{
    struct engine_model *m = pool_lease_model(lease);
    const struct engine_model_info *info = engine_model_info(m);
    const struct tokenizer *tok = engine_model_tokenizer(m);
    if (r->dimensions > info->hidden)
        return http_send_error(req, 400, "invalid_value", "dimensions",
                               "'dimensions' (%d) is larger than the model's embedding size (%d)",
                               r->dimensions, info->hidden);
    int dims = r->dimensions ? r->dimensions : info->hidden;
    enum engine_pooling pooling = emb_pooling(info->dir);
    float *vec = malloc((size_t)info->hidden * sizeof(*vec));
    cJSON *resp = http_own_json(req, cJSON_CreateObject());
    cJSON *data = resp ? cJSON_AddArrayToObject(resp, "data") : NULL;
    if (!vec || !data) {
        free(vec);
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    }
    int prompt_tokens = 0;
    for (int i = 0; i < r->n_inputs; i++) {
        const struct openai_input *in = &r->inputs[i];
        char param[32], err[512] = "";
        snprintf(param, sizeof(param), r->n_inputs > 1 ? "input[%d]" : "input", i);
        int32_t *ids = NULL;
        size_t n = (size_t)in->n_ids;
        enum status st = ST_OK;
        if (in->text)
            st = tok_encode(tok, in->text, strlen(in->text), TOK_ENCODE_ADD_SPECIAL, &ids, &n);
        if (st != ST_OK) {
            free(vec);
            return http_send_error(req, 400, "invalid_value", param, "cannot tokenize '%s': %s",
                                   param, status_str(st));
        }
        st = engine_embed(m, in->text ? ids : in->ids, (int)n, pooling, vec, err, sizeof(err));
        free(ids);
        if (st != ST_OK) {
            free(vec);
            struct openai_error e;
            openai_error_from_status(st, err, param, &e);
            return openai_send_error(req, &e);
        }
        prompt_tokens += (int)n;
        emb_normalize(vec, dims);
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(data, item)) {
            cJSON_Delete(item);
            free(vec);
            return http_send_error(req, 500, NULL, NULL, "out of memory");
        }
        cJSON_AddStringToObject(item, "object", "embedding");
        cJSON_AddNumberToObject(item, "index", i);
        if (r->base64) {
            char *b64 = emb_base64(vec, dims);
            cJSON_AddStringToObject(item, "embedding", b64 ? b64 : "");
            free(b64);
        } else {
            cJSON *arr = cJSON_AddArrayToObject(item, "embedding");
            for (int d = 0; arr && d < dims; d++)
                cJSON_AddItemToArray(arr, cJSON_CreateNumber(vec[d]));
        }
    }
    free(vec);
    cJSON_AddStringToObject(resp, "object", "list");
    cJSON_AddStringToObject(resp, "model", pool_lease_name(lease));
    cJSON *u = cJSON_AddObjectToObject(resp, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens);
    usage->prompt_tokens = prompt_tokens;
    return http_send_json(req, 200, resp);
}

int api_openai_embeddings(struct http_request *req)
{
    return openai_handle(req, openai_parse_embeddings, emb_serve);
}
