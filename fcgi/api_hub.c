/*
 * api_hub.c - the /api/models routes: hub search, downloads (start, live progress as
 * Server-Sent Events, pause/resume/cancel, list), local models and
 * deletion.
 */
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "downloads.h"
#include "hf_cache.h"
#include "http.h"
#include "hub.h"
#include "pool.h"
#include "quant.h"
#include "routes.h"
#include "settings.h"
#include "sysinfo.h"

#define API_HUB_CACHE_SLOTS 16
#define API_HUB_CACHE_SECONDS 60
/* KV is estimated for this many tokens, or the model's context if shorter
 * (the pool sizes KV for sequences of this length). */
#define API_HUB_KV_TOKENS 8192
#define API_HUB_SSE_INTERVAL_MS 500

/* ---- search cache ----------------------------------------------------- */

struct api_hub_cached {
    char key[2048];
    time_t at;
    cJSON *results; /* the hub's array, as it came */
};

static pthread_mutex_t api_hub_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct api_hub_cached api_hub_cache[API_HUB_CACHE_SLOTS];

/* A copy of the cached results for key, or NULL. */
static cJSON *api_hub_cache_get(const char *key)
{
    cJSON *r = NULL;
    time_t now = time(NULL);
    pthread_mutex_lock(&api_hub_cache_mu);
    for (int i = 0; i < API_HUB_CACHE_SLOTS; i++)
        if (api_hub_cache[i].results && !strcmp(api_hub_cache[i].key, key) &&
            now - api_hub_cache[i].at < API_HUB_CACHE_SECONDS)
            r = cJSON_Duplicate(api_hub_cache[i].results, 1);
    pthread_mutex_unlock(&api_hub_cache_mu);
    return r;
}

static void api_hub_cache_put(const char *key, const cJSON *results)
{
    cJSON *copy = cJSON_Duplicate(results, 1);
    if (!copy)
        return;
    pthread_mutex_lock(&api_hub_cache_mu);
    int slot = 0;
    for (int i = 0; i < API_HUB_CACHE_SLOTS; i++) {
        if (!strcmp(api_hub_cache[i].key, key)) {
            slot = i;
            break;
        }
        if (api_hub_cache[i].at < api_hub_cache[slot].at)
            slot = i;
    }
    cJSON_Delete(api_hub_cache[slot].results);
    snprintf(api_hub_cache[slot].key, sizeof(api_hub_cache[slot].key), "%s", key);
    api_hub_cache[slot].at = time(NULL);
    api_hub_cache[slot].results = copy;
    pthread_mutex_unlock(&api_hub_cache_mu);
}

/* ---- helpers ---------------------------------------------------------- */

static void api_hub_client(struct http_request *req, struct hub_client *c)
{
    char endpoint[1024], token[1024];
    settings_get_text(req->db, &req->app->config, "hf_endpoint", endpoint, sizeof(endpoint));
    settings_get_text(req->db, &req->app->config, "hf_token", token, sizeof(token));
    hub_client_init(c, endpoint, token);
}

static void api_hub_models_dir(struct http_request *req, char *out, size_t len)
{
    settings_get_text(req->db, &req->app->config, "models_dir", out, len);
}

static int api_hub_hub_error(struct http_request *req, const struct hub_error *e)
{
    const char *code = e->status == 401 || e->status == 403 ? "hub_unauthorized"
                       : e->status == 404                   ? "hub_not_found"
                       : e->status                          ? "hub_error"
                                                            : "hub_unreachable";
    return http_send_error(req, 502, code, NULL, "%s", e->message);
}

static int api_hub_download_error(struct http_request *req, const struct download_error *e)
{
    return http_send_error(req, e->http_status, e->code, NULL, "%s", e->message);
}

static int api_hub_no_manager(struct http_request *req)
{
    return http_send_error(req, 503, "downloads_unavailable", NULL,
                           "the download manager is not running");
}

/* Bytes per element of a safetensors dtype name; 0 when unknown. */
static int api_hub_dtype_bytes(const char *dt)
{
    static const struct {
        const char *name;
        int bytes;
    } t[] = {{"F64", 8}, {"I64", 8}, {"U64", 8},  {"F32", 4},     {"I32", 4},
             {"U32", 4}, {"F16", 2}, {"BF16", 2}, {"I16", 2},     {"U16", 2},
             {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(dt, t[i].name))
            return t[i].bytes;
    return 0;
}

/* config.json's quantization object (mlx-lm's or transformers' name), or NULL */
static const cJSON *api_hub_quant_object(const cJSON *config)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(config, "quantization");
    if (!cJSON_IsObject(q))
        q = cJSON_GetObjectItemCaseSensitive(config, "quantization_config");
    return cJSON_IsObject(q) ? q : NULL;
}

/* The bits config.json's quantization object gives (1..32), 0 without. */
static int api_hub_config_bits(const cJSON *config)
{
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(api_hub_quant_object(config), "bits");
    return cJSON_IsNumber(bits) && bits->valuedouble >= 1 && bits->valuedouble <= 32
               ? (int)bits->valuedouble
               : 0;
}

/* Weight bytes from safetensors parameter counts, else from the sizes of
 * the weight files in siblings; -1 when the hub said neither.  With
 * parameter counts, MLX codes (U32) of `bits` (from config.json; 0 = not
 * quantized) count at the width the engine widens them to when it loads
 * them (quant_kernel_bits: 2/3 -> 4, 5/6 -> 8). */
static long long api_hub_weight_bytes(const cJSON *m, int bits)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "safetensors");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(st, "parameters");
    if (cJSON_IsObject(params)) {
        long long total = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, params)
        {
            if (!cJSON_IsNumber(p) || p->valuedouble <= 0)
                continue;
            long long bytes = (long long)p->valuedouble * api_hub_dtype_bytes(p->string);
            if (bits >= 2 && bits <= 8 && !strcmp(p->string, "U32"))
                bytes = bytes / bits * quant_kernel_bits(bits);
            total += bytes;
        }
        if (total > 0)
            return total;
    }
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(m, "siblings");
    long long total = -1;
    const cJSON *s;
    cJSON_ArrayForEach(s, sib)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "rfilename");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(s, "size");
        if (!cJSON_IsString(name) || !cJSON_IsNumber(size) || size->valuedouble < 0)
            continue;
        size_t n = strlen(name->valuestring);
        if ((n > 12 && !strcmp(name->valuestring + n - 12, ".safetensors")) ||
            (n > 4 && !strcmp(name->valuestring + n - 4, ".bin")))
            total = (total < 0 ? 0 : total) + (long long)size->valuedouble;
    }
    return total;
}

/* {bits, group_size} from the config, else bits from the name ("-4bit"). */
static cJSON *api_hub_quantization(const char *id, const cJSON *config)
{
    const cJSON *group =
        cJSON_GetObjectItemCaseSensitive(api_hub_quant_object(config), "group_size");
    int b = api_hub_config_bits(config);
    /* a hub's config is untrusted: range-check before the cast */
    int g = cJSON_IsNumber(group) && group->valuedouble >= 1 && group->valuedouble <= 1 << 20
                ? (int)group->valuedouble
                : 0;
    if (b <= 0) {
        const char *name = strrchr(id, '/') ? strrchr(id, '/') + 1 : id;
        for (const char *p = name; *p; p++) {
            if (!strncasecmp(p, "bit", 3) && p > name && isdigit((unsigned char)p[-1])) {
                const char *s = p - 1;
                while (s > name && isdigit((unsigned char)s[-1]))
                    s--;
                b = atoi(s);
                break;
            }
        }
    }
    if (b <= 0 || b > 32)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "bits", b);
    if (g > 0)
        cJSON_AddNumberToObject(o, "group_size", g);
    else
        cJSON_AddNullToObject(o, "group_size");
    return o;
}

static const char *api_hub_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double api_hub_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* ---- search ----------------------------------------------------------- */

int api_hub_search(struct http_request *req)
{
    const char *query = http_query(req, "query");
    const char *author = http_query(req, "author");
    const char *sort = http_query(req, "sort");
    const char *limit_s = http_query(req, "limit");
    const char *max_gb_s = http_query(req, "max_size_gb");
    const char *fits_s = http_query(req, "fits_memory");
    int limit = 20;
    if (limit_s) {
        char *end;
        long v = strtol(limit_s, &end, 10);
        if (!*limit_s || *end || v < 1 || v > 100)
            return http_send_error(req, 422, "invalid_value", "limit",
                                   "'limit' must be an integer from 1 to 100");
        limit = (int)v;
    }
    if (!sort || !*sort)
        sort = "downloads";
    if (strcmp(sort, "downloads") && strcmp(sort, "likes") && strcmp(sort, "lastModified"))
        return http_send_error(req, 422, "invalid_value", "sort",
                               "'sort' must be downloads, likes or lastModified");
    double max_gb = 0;
    if (max_gb_s) {
        char *end;
        max_gb = strtod(max_gb_s, &end);
        if (!*max_gb_s || *end || !(max_gb > 0) || max_gb > 1e6)
            return http_send_error(req, 422, "invalid_value", "max_size_gb",
                                   "'max_size_gb' must be a positive number");
    }
    int fits_only = 0;
    if (fits_s) {
        if (strcmp(fits_s, "true") && strcmp(fits_s, "false"))
            return http_send_error(req, 422, "invalid_value", "fits_memory",
                                   "'fits_memory' must be true or false");
        fits_only = !strcmp(fits_s, "true");
    }
    if ((query && strlen(query) > 200) || (author && strlen(author) > 100))
        return http_send_error(req, 422, "invalid_value",
                               query && strlen(query) > 200 ? "query" : "author",
                               "search terms are too long");

    struct hub_client client;
    api_hub_client(req, &client);
    char key[2048];
    snprintf(key, sizeof(key), "%s\n%s\n%s\n%s\n%d", client.endpoint, query ? query : "",
             author ? author : "", sort, limit);
    cJSON *results = api_hub_cache_get(key);
    int cached = results != NULL;
    if (!results) {
        struct hub_error herr;
        if (hub_search(&client, query, author, sort, limit, &results, &herr))
            return api_hub_hub_error(req, &herr);
        api_hub_cache_put(key, results);
    }
    http_own_json(req, results);

    unsigned long long budget = 0;
    if (req->app->pool) {
        struct pool_memory pm;
        pool_memory(req->app->pool, req->db, &pm);
        budget = pm.budget_bytes;
    } else {
        struct sysinfo_memory mem;
        if (sysinfo_memory_read(&mem) == 0)
            budget = mem.total_bytes / 100 *
                     (unsigned long long)settings_get_int(req->db, &req->app->config,
                                                          "memory_limit_percent");
    }
    char models_dir[4096];
    api_hub_models_dir(req, models_dir, sizeof(models_dir));

    cJSON *out = http_own_json(req, cJSON_CreateObject());
    if (!out)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddStringToObject(out, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    const cJSON *m;
    cJSON_ArrayForEach(m, results)
    {
        const char *id = api_hub_str(m, "id");
        if (!id)
            id = api_hub_str(m, "modelId");
        if (!id || !hf_cache_valid_id(id, NULL, 0))
            continue; /* nothing we could download anyway */
        const cJSON *config = cJSON_GetObjectItemCaseSensitive(m, "config");
        long long weights = api_hub_weight_bytes(m, api_hub_config_bits(config));
        int ctx = (int)api_hub_num(config, "max_position_embeddings");
        if (ctx <= 0 || ctx > API_HUB_KV_TOKENS)
            ctx = API_HUB_KV_TOKENS;
        long long kv = cJSON_IsObject(config)
                           ? hf_cache_kv_estimate(config, ctx, req->app->config.kv_cache_dtype)
                           : 0;
        long long est = weights >= 0 ? weights + kv : -1;
        int fits = est >= 0 && (unsigned long long)est <= budget;
        if (max_gb > 0 && est >= 0 && (double)est > max_gb * 1024.0 * 1024.0 * 1024.0)
            continue;
        if (fits_only && !fits)
            continue;
        cJSON *r = cJSON_CreateObject();
        if (!r)
            break;
        cJSON_AddItemToArray(data, r);
        cJSON_AddStringToObject(r, "model_id", id);
        const char *au = api_hub_str(m, "author");
        if (au)
            cJSON_AddStringToObject(r, "author", au);
        else {
            char org[128];
            snprintf(org, sizeof(org), "%.*s", (int)(strchr(id, '/') - id), id);
            cJSON_AddStringToObject(r, "author", org);
        }
        cJSON_AddNumberToObject(r, "downloads", api_hub_num(m, "downloads"));
        cJSON_AddNumberToObject(r, "likes", api_hub_num(m, "likes"));
        const cJSON *tags = cJSON_GetObjectItemCaseSensitive(m, "tags");
        cJSON_AddItemToObject(r, "tags",
                              cJSON_IsArray(tags) ? cJSON_Duplicate(tags, 1) : cJSON_CreateArray());
        const char *lm = api_hub_str(m, "lastModified");
        if (lm)
            cJSON_AddStringToObject(r, "last_modified", lm);
        else
            cJSON_AddNullToObject(r, "last_modified");
        if (weights >= 0) {
            cJSON_AddNumberToObject(r, "weights_bytes", (double)weights);
            cJSON_AddNumberToObject(r, "kv_bytes", (double)kv);
            cJSON_AddNumberToObject(r, "kv_context", kv > 0 ? ctx : 0);
            cJSON_AddNumberToObject(r, "estimated_size_bytes", (double)est);
            cJSON_AddNumberToObject(r, "estimated_size_gb",
                                    (double)(long long)((double)est / 1073741824.0 * 100 + 0.5) /
                                        100);
        } else {
            cJSON_AddNullToObject(r, "weights_bytes");
            cJSON_AddNullToObject(r, "kv_bytes");
            cJSON_AddNullToObject(r, "kv_context");
            cJSON_AddNullToObject(r, "estimated_size_bytes");
            cJSON_AddNullToObject(r, "estimated_size_gb");
        }
        cJSON_AddItemToObject(r, "quantization", api_hub_quantization(id, config));
        char snap[PATH_MAX];
        cJSON_AddBoolToObject(r, "is_downloaded",
                              hf_cache_snapshot(models_dir, id, snap, sizeof(snap)) == 0);
        if (est >= 0)
            cJSON_AddBoolToObject(r, "fits_in_memory", fits);
        else
            cJSON_AddNullToObject(r, "fits_in_memory");
    }
    cJSON_AddNumberToObject(out, "memory_budget_bytes", (double)budget);
    cJSON_AddBoolToObject(out, "cached", cached);
    return http_send_json(req, 200, out);
}

/* ---- downloads -------------------------------------------------------- */

int api_hub_download(struct http_request *req)
{
    if (!req->app->downloads)
        return api_hub_no_manager(req);
    cJSON *body = http_parse_json_body(req, 0);
    if (!body)
        return req->status;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "model_id");
    const cJSON *rev = cJSON_GetObjectItemCaseSensitive(body, "revision");
    const cJSON *item;
    cJSON_ArrayForEach(item, body)
    {
        if (strcmp(item->string, "model_id") && strcmp(item->string, "revision"))
            return http_send_error(req, 422, "unknown_field", item->string, "unknown field '%s'",
                                   item->string);
    }
    if (!cJSON_IsString(id))
        return http_send_error(req, 422, id ? "invalid_value" : "missing_field", "model_id",
                               "'model_id' must be a string ORG/NAME");
    char why[256];
    if (!hf_cache_valid_id(id->valuestring, why, sizeof(why)))
        return http_send_error(req, 422, "invalid_model_id", "model_id", "invalid model_id: %s",
                               why);
    if (rev && !cJSON_IsNull(rev) &&
        (!cJSON_IsString(rev) || !hf_cache_valid_name(rev->valuestring)))
        return http_send_error(req, 422, "invalid_revision", "revision",
                               "'revision' must be a branch, tag or commit of [A-Za-z0-9._-]");
    char task[64];
    struct download_error err;
    if (downloads_start(req->app->downloads, req->db, id->valuestring,
                        cJSON_IsString(rev) ? rev->valuestring : NULL, task, sizeof(task), &err))
        return api_hub_download_error(req, &err);
    cJSON *o = http_own_json(req, downloads_get(req->app->downloads, req->db, task));
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddStringToObject(o, "task_id", task);
    return http_send_json(req, 202, o);
}

int api_hub_downloads(struct http_request *req)
{
    if (!req->app->downloads)
        return api_hub_no_manager(req);
    cJSON *arr = http_own_json(req, downloads_list(req->app->downloads, req->db));
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!arr || !o)
        return http_send_error(req, 500, NULL, NULL, "cannot list downloads");
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemReferenceToObject(o, "data", arr);
    return http_send_json(req, 200, o);
}

int api_hub_task(struct http_request *req)
{
    if (!req->app->downloads)
        return api_hub_no_manager(req);
    const char *id = route_param(&req->params, "task_id");
    cJSON *t = http_own_json(req, downloads_get(req->app->downloads, req->db, id));
    if (!t)
        return http_send_error(req, 404, "task_not_found", NULL, "no download task '%s'", id);
    return http_send_json(req, 200, t);
}

int api_hub_progress(struct http_request *req)
{
    struct downloads *d = req->app->downloads;
    if (!d)
        return api_hub_no_manager(req);
    const char *id = route_param(&req->params, "task_id");
    cJSON *t = downloads_get(d, req->db, id);
    if (!t)
        return http_send_error(req, 404, "task_not_found", NULL, "no download task '%s'", id);
    http_sse_begin(req);
    for (;;) {
        char *text = cJSON_PrintUnformatted(t);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(t, "status");
        int final = !cJSON_IsString(st) || downloads_status_final(st->valuestring);
        int rc = text ? http_sse_send(req, "progress", text) : -1;
        free(text);
        cJSON_Delete(t);
        if (rc || final || app_stopping(req->app))
            break;
        struct timespec ts = {0, API_HUB_SSE_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
        if (!(t = downloads_get(d, req->db, id)))
            break;
    }
    return 200;
}

static int api_hub_control(struct http_request *req,
                           int (*fn)(struct downloads *, struct db *, const char *,
                                     struct download_error *))
{
    if (!req->app->downloads)
        return api_hub_no_manager(req);
    const char *id = route_param(&req->params, "task_id");
    struct download_error err;
    if (fn(req->app->downloads, req->db, id, &err))
        return api_hub_download_error(req, &err);
    cJSON *o = http_own_json(req, downloads_get(req->app->downloads, req->db, id));
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    return http_send_json(req, 200, o);
}

int api_hub_pause(struct http_request *req)
{
    return api_hub_control(req, downloads_pause);
}

int api_hub_resume(struct http_request *req)
{
    return api_hub_control(req, downloads_resume);
}

int api_hub_cancel(struct http_request *req)
{
    return api_hub_control(req, downloads_cancel);
}

/* ---- local models ----------------------------------------------------- */

int api_hub_local(struct http_request *req)
{
    char models_dir[4096];
    api_hub_models_dir(req, models_dir, sizeof(models_dir));
    cJSON *arr = http_own_json(req, hf_cache_list(models_dir));
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!arr || !o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON *m;
    cJSON_ArrayForEach(m, arr)
    {
        const char *id = api_hub_str(m, "id");
        cJSON_AddBoolToObject(m, "downloading",
                              req->app->downloads && id && downloads_busy(req->app->downloads, id));
    }
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddStringToObject(o, "models_dir", models_dir);
    cJSON_AddItemReferenceToObject(o, "data", arr);
    return http_send_json(req, 200, o);
}

/* 1 when the pool has a model loaded from inside repo_dir. */
static int api_hub_loaded(struct http_request *req, const char *repo_dir)
{
    if (!req->app->pool)
        return 0;
    cJSON *st = pool_status(req->app->pool, NULL);
    size_t n = strlen(repo_dir);
    int loaded = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, st)
    {
        const char *dir = api_hub_str(e, "dir");
        if (dir && !strncmp(dir, repo_dir, n) && (dir[n] == '/' || dir[n] == '\0'))
            loaded = 1;
    }
    cJSON_Delete(st);
    return loaded;
}

int api_hub_delete(struct http_request *req)
{
    char id[1100], why[256], models_dir[4096], repo[PATH_MAX];
    snprintf(id, sizeof(id), "%s/%s", route_param(&req->params, "org"),
             route_param(&req->params, "name"));
    if (!hf_cache_valid_id(id, why, sizeof(why)))
        return http_send_error(req, 422, "invalid_model_id", NULL, "invalid model id: %s", why);
    api_hub_models_dir(req, models_dir, sizeof(models_dir));
    if (hf_cache_repo_dir(models_dir, id, repo, sizeof(repo)))
        return http_send_error(req, 422, "invalid_model_id", NULL, "model id too long");
    if (req->app->downloads && downloads_busy(req->app->downloads, id))
        return http_send_error(req, 409, "download_in_progress", NULL,
                               "%s is being downloaded: cancel the download first", id);
    if (api_hub_loaded(req, repo))
        return http_send_error(req, 409, "model_loaded", NULL,
                               "%s is loaded: unload it first (POST /admin/models/unload)", id);
    char err[512];
    int rc = hf_cache_delete(models_dir, id, err, sizeof(err));
    if (rc == 1)
        return http_send_error(req, 404, "model_not_found", NULL, "%s is not in %s", id,
                               models_dir);
    if (rc < 0)
        return http_send_error(req, 500, NULL, NULL, "%s", err);
    cJSON *o = http_own_json(req, cJSON_CreateObject());
    if (!o)
        return http_send_error(req, 500, NULL, NULL, "out of memory");
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddBoolToObject(o, "deleted", 1);
    return http_send_json(req, 200, o);
}
