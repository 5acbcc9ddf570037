/*
 * hub.c - libcurl client for the Hugging Face Hub API: JSON GETs for
 * search/info/tree and resumable file downloads.
 */
#include "hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "version.h"

/* JSON answers larger than this are refused (search with full=true of 100
 * repos is a few MB). */
#define HUB_MAX_JSON (32 << 20)
#define HUB_CONNECT_TIMEOUT 15L
#define HUB_JSON_TIMEOUT 60L
/* A download that moves less than 1 byte/s for this long is retried. */
#define HUB_STALL_SECONDS 30L

static pthread_once_t hub_once = PTHREAD_ONCE_INIT;

static void hub_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void hub_global_init(void)
{
    pthread_once(&hub_once, hub_init_once);
}

void hub_client_init(struct hub_client *c, const char *endpoint, const char *token)
{
    snprintf(c->endpoint, sizeof(c->endpoint), "%s",
             endpoint && *endpoint ? endpoint : "https://huggingface.co");
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/')
        c->endpoint[--n] = '\0';
    snprintf(c->token, sizeof(c->token), "%s", token ? token : "");
    c->should_stop = NULL;
    c->stop_ctx = NULL;
}

/* ---- shared request setup --------------------------------------------- */

struct hub_buf {
    char *data;
    size_t len, cap;
    int overflow;
};

static size_t hub_buf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct hub_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > HUB_MAX_JSON) {
        b->overflow = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static struct curl_slist *hub_headers(const struct hub_client *c)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (c->token[0]) {
        char auth[1100];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        struct curl_slist *h2 = curl_slist_append(h, auth);
        if (h2)
            h = h2;
    }
    return h;
}

static CURL *hub_easy(const char *url, struct curl_slist *headers)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mlx-manager/" MLXM_VERSION);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, HUB_CONNECT_TIMEOUT);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    return e;
}

/* The hub's error text: {"error": "..."} or the start of the body. */
static void hub_http_error(struct hub_error *err, long status, const char *body, size_t len)
{
    char msg[512] = "";
    cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e))
        snprintf(msg, sizeof(msg), "%s", e->valuestring);
    else if (body && len)
        snprintf(msg, sizeof(msg), "%.*s", (int)(len < 200 ? len : 200), body);
    cJSON_Delete(j);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    err->status = (int)status;
    err->transient = status >= 500 || status == 429;
    const char *hint = status == 401 || status == 403
                           ? " (the repository is gated or private: set hf_token or HF_TOKEN)"
                       : status == 404 ? " (no such repository, revision or file)"
                                       : "";
    snprintf(err->message, sizeof(err->message), "hub returned %ld%s%s%s", status,
             msg[0] ? ": " : "", msg, hint);
}

static void hub_curl_error(struct hub_error *err, CURLcode rc, const char *url)
{
    err->status = 0;
    err->transient = 1;
    snprintf(err->message, sizeof(err->message), "cannot reach the hub at %.300s: %s", url,
             curl_easy_strerror(rc));
}

/* Appends `s` percent-encoded, keeping '/' when keep_slash. */
static int hub_append_escaped(char *out, size_t outlen, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
                    (keep_slash && *p == '/');
        if (n + 4 >= outlen)
            return -1;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

static int hub_json_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const struct hub_client *c = ud;
    return c->should_stop(c->stop_ctx) ? 1 : 0;
}

static int hub_get_json(const struct hub_client *c, const char *url, cJSON **out,
                        struct hub_error *err)
{
    hub_global_init();
    *out = NULL;
    memset(err, 0, sizeof(*err));
    struct curl_slist *h = hub_headers(c);
    CURL *e = hub_easy(url, h);
    if (!e) {
        curl_slist_free_all(h);
        snprintf(err->message, sizeof(err->message), "out of memory");
        return -1;
    }
    struct hub_buf b = {0};
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hub_buf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, HUB_JSON_TIMEOUT);
    if (c->should_stop) {
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, hub_json_xfer);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)c);
    }
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int ret = -1;
    if (b.overflow) {
        snprintf(err->message, sizeof(err->message), "hub answer from %.300s is larger than %d MB",
                 url, HUB_MAX_JSON >> 20);
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(err->message, sizeof(err->message), "stopped");
    } else if (rc != CURLE_OK) {
        hub_curl_error(err, rc, url);
    } else if (status != 200) {
        hub_http_error(err, status, b.data, b.len);
    } else if (!(*out = b.data ? cJSON_ParseWithLength(b.data, b.len) : NULL)) {
        err->status = (int)status;
        snprintf(err->message, sizeof(err->message), "hub answer from %.300s is not valid JSON",
                 url);
    } else {
        ret = 0;
    }
    free(b.data);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return ret;
}

/* ---- API calls -------------------------------------------------------- */

int hub_search(const struct hub_client *c, const char *query, const char *author, const char *sort,
               int limit, cJSON **out, struct hub_error *err)
{
    char url[4096];
    snprintf(url, sizeof(url), "%s/api/models?limit=%d&direction=-1", c->endpoint, limit);
    int bad = 0;
    if (query && *query) {
        strcat(url, "&search=");
        bad |= hub_append_escaped(url, sizeof(url), query, 0);
    }
    if (author && *author) {
        strcat(url, "&author=");
        bad |= hub_append_escaped(url, sizeof(url), author, 0);
    }
    if (sort && *sort) {
        strcat(url, "&sort=");
        bad |= hub_append_escaped(url, sizeof(url), sort, 0);
    }
    static const char expand[] = "&expand[]=author&expand[]=downloads&expand[]=likes"
                                 "&expand[]=tags&expand[]=lastModified"
                                 "&expand[]=safetensors&expand[]=config";
    if (bad || strlen(url) + sizeof(expand) >= sizeof(url)) {
        memset(err, 0, sizeof(*err));
        snprintf(err->message, sizeof(err->message), "search terms are too long");
        return -1;
    }
    strcat(url, expand);
    if (hub_get_json(c, url, out, err))
        return -1;
    if (!cJSON_IsArray(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        snprintf(err->message, sizeof(err->message), "hub search answer is not a JSON array");
        return -1;
    }
    return 0;
}

int hub_model_info(const struct hub_client *c, const char *id, const char *revision, cJSON **out,
                   struct hub_error *err)
{
    char url[4096];
    snprintf(url, sizeof(url), "%s/api/models/", c->endpoint);
    if (hub_append_escaped(url, sizeof(url), id, 1) || strlen(url) + 16 >= sizeof(url)) {
        memset(err, 0, sizeof(*err));
        snprintf(err->message, sizeof(err->message), "model id too long");
        return -1;
    }
    strcat(url, "/revision/");
    if (hub_append_escaped(url, sizeof(url), revision, 0) || strlen(url) + 12 >= sizeof(url)) {
        memset(err, 0, sizeof(*err));
        snprintf(err->message, sizeof(err->message), "revision too long");
        return -1;
    }
    strcat(url, "?blobs=true");
    if (hub_get_json(c, url, out, err))
        return -1;
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        snprintf(err->message, sizeof(err->message), "hub model info is not a JSON object");
        return -1;
    }
    return 0;
}

int hub_tree(const struct hub_client *c, const char *id, const char *revision, cJSON **out,
             struct hub_error *err)
{
    char url[4096];
    snprintf(url, sizeof(url), "%s/api/models/", c->endpoint);
    int bad = hub_append_escaped(url, sizeof(url), id, 1);
    if (!bad && strlen(url) + 8 < sizeof(url))
        strcat(url, "/tree/");
    bad |= hub_append_escaped(url, sizeof(url), revision, 0);
    if (bad || strlen(url) + 20 >= sizeof(url)) {
        memset(err, 0, sizeof(*err));
        snprintf(err->message, sizeof(err->message), "model id too long");
        return -1;
    }
    strcat(url, "?recursive=true");
    if (hub_get_json(c, url, out, err))
        return -1;
    if (!cJSON_IsArray(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        snprintf(err->message, sizeof(err->message), "hub file tree is not a JSON array");
        return -1;
    }
    return 0;
}

/* ---- file download ---------------------------------------------------- */

struct hub_fetch {
    CURL *easy;
    FILE *f;
    long long offset; /* bytes already in the file when the request started */
    long long written;
    long status;
    int started;
    int failed_write;
    struct hub_buf errbody;
    hub_progress_fn progress;
    void *ctx;
    int aborted;
    struct hub_fetch_info *info;
};

static void hub_trim_header(const char *v, size_t n, char *out, size_t outlen)
{
    while (n && (*v == ' ' || *v == '"')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '"'))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t hub_fetch_header(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct hub_fetch *h = ud;
    size_t n = size * nmemb;
    static const struct {
        const char *name;
        size_t off, len;
    } fields[] = {
        {"x-repo-commit:", offsetof(struct hub_fetch_info, commit), 128},
        {"x-linked-etag:", offsetof(struct hub_fetch_info, linked_etag), 160},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        size_t k = strlen(fields[i].name);
        if (n > k && !strncasecmp(buf, fields[i].name, k))
            hub_trim_header(buf + k, n - k, (char *)h->info + fields[i].off, fields[i].len);
    }
    if (n > 14 && !strncasecmp(buf, "x-linked-size:", 14)) {
        char v[32];
        hub_trim_header(buf + 14, n - 14, v, sizeof(v));
        h->info->linked_size = strtoll(v, NULL, 10);
    }
    return n;
}

/* The first body bytes decide what the answer is: a resumed range, a full
 * file (start over), or an error body to report. */
static int hub_fetch_begin(struct hub_fetch *h)
{
    h->started = 1;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
    if (h->status == 200 && h->offset > 0) {
        if (fflush(h->f) != 0 || ftruncate(fileno(h->f), 0) != 0 || fseek(h->f, 0, SEEK_SET))
            return -1;
        h->offset = 0;
    }
    return 0;
}

static size_t hub_fetch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct hub_fetch *h = ud;
    size_t n = size * nmemb;
    if (!h->started && hub_fetch_begin(h)) {
        h->failed_write = 1;
        return 0;
    }
    if (h->status != 200 && h->status != 206) {
        if (h->errbody.len < 4096)
            hub_buf_write(ptr, 1, n, &h->errbody);
        return n;
    }
    if (fwrite(ptr, 1, n, h->f) != n) {
        h->failed_write = 1;
        return 0;
    }
    h->written += (long long)n;
    return n;
}

static int hub_fetch_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    struct hub_fetch *h = ud;
    if (h->progress && h->progress(h->ctx, h->offset + h->written)) {
        h->aborted = 1;
        return 1;
    }
    return 0;
}

int hub_fetch_file(const struct hub_client *c, const char *id, const char *revision,
                   const char *file, const char *dest, hub_progress_fn progress, void *ctx,
                   struct hub_fetch_info *info, struct hub_error *err)
{
    hub_global_init();
    memset(err, 0, sizeof(*err));
    memset(info, 0, sizeof(*info));
    info->linked_size = -1;
    char url[4096];
    snprintf(url, sizeof(url), "%s/", c->endpoint);
    int bad = hub_append_escaped(url, sizeof(url), id, 1);
    if (!bad && strlen(url) + 10 < sizeof(url))
        strcat(url, "/resolve/");
    bad |= hub_append_escaped(url, sizeof(url), revision, 0);
    if (!bad && strlen(url) + 2 < sizeof(url))
        strcat(url, "/");
    bad |= hub_append_escaped(url, sizeof(url), file, 1);
    if (bad) {
        snprintf(err->message, sizeof(err->message), "URL too long for %s", file);
        return -1;
    }
    FILE *f = fopen(dest, "ab");
    if (!f) {
        snprintf(err->message, sizeof(err->message), "cannot open %s: %s", dest, strerror(errno));
        return -1;
    }
    struct stat st;
    long long offset = fstat(fileno(f), &st) == 0 ? (long long)st.st_size : 0;
    struct curl_slist *h = hub_headers(c);
    CURL *e = hub_easy(url, h);
    if (!e) {
        fclose(f);
        curl_slist_free_all(h);
        snprintf(err->message, sizeof(err->message), "out of memory");
        return -1;
    }
    struct hub_fetch hf = {
        .easy = e, .f = f, .offset = offset, .progress = progress, .ctx = ctx, .info = info};
    char range[64];
    if (offset > 0) {
        snprintf(range, sizeof(range), "%lld-", offset);
        curl_easy_setopt(e, CURLOPT_RANGE, range);
    }
    /* Compressed transfer would make Range offsets meaningless. */
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hub_fetch_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &hf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, hub_fetch_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &hf);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, hub_fetch_xfer);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, &hf);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, HUB_STALL_SECONDS);
    CURLcode rc = curl_easy_perform(e);
    if (!hf.started)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &hf.status);
    int closed_bad = fclose(f) != 0;
    int ret = -1;
    if (hf.aborted) {
        ret = 1;
    } else if (hf.failed_write || closed_bad) {
        snprintf(err->message, sizeof(err->message), "cannot write %s: %s", dest, strerror(errno));
    } else if (hf.status != 0 && hf.status != 200 && hf.status != 206) {
        hub_http_error(err, hf.status, hf.errbody.data, hf.errbody.len);
    } else if (rc != CURLE_OK) {
        hub_curl_error(err, rc, url);
    } else {
        ret = 0;
    }
    free(hf.errbody.data);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return ret;
}
