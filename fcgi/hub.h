/*
 * hub.h - a libcurl client for the Hugging Face Hub HTTP API (or a mirror):
 * model search, model info, the file tree of a revision, and file downloads
 * with HTTP Range resume.
 *
 * Every call is a blocking transfer on its own curl handle, so functions are
 * thread-safe once hub_global_init() has run (it is idempotent and cheap).
 * The token is sent as "Authorization: Bearer" to the endpoint only; curl
 * drops it on redirects to another host.  Every hub answer is untrusted:
 * callers validate what they take from the returned JSON.  Returned cJSON
 * trees are owned by the caller.
 */
#ifndef FCGI_HUB_H
#define FCGI_HUB_H

#include <cJSON.h>
#include <stddef.h>

struct hub_client {
    char endpoint[1024]; /* "https://huggingface.co", no trailing slash needed */
    char token[1024];    /* "" = anonymous */
    /* Optional: polled during API requests; non-zero abandons the request
     * (the call fails with "stopped"), so shutdown and pause never wait for
     * a slow hub. */
    int (*should_stop)(void *ctx);
    void *stop_ctx;
};

struct hub_error {
    int status;         /* the hub's HTTP status; 0 when there was no answer */
    int transient;      /* worth retrying: network error, 5xx, 429, interrupted body */
    char message[1024]; /* for people: "hub returned 404: Repository not found" */
};

/* Initializes libcurl once per process. */
void hub_global_init(void);

/* Fills `c` from an endpoint and token (either may be NULL or ""), no should_stop. */
void hub_client_init(struct hub_client *c, const char *endpoint, const char *token);

/*
 * GET /api/models with search, author, sort (descending) and limit, asking
 * for the fields a result list shows (downloads, likes, tags, lastModified,
 * safetensors parameter counts, config).  query/author/sort may be NULL.
 * Returns 0 and the hub's JSON array in *out, or -1 with err filled.
 */
int hub_search(const struct hub_client *c, const char *query, const char *author, const char *sort,
               int limit, cJSON **out, struct hub_error *err);

/* GET /api/models/{id}/revision/{revision}?blobs=true (sha, and siblings
 * with size, blobId and lfs {sha256, size}): 0 and the object, or -1. */
int hub_model_info(const struct hub_client *c, const char *id, const char *revision, cJSON **out,
                   struct hub_error *err);

/* GET /api/models/{id}/tree/{revision}?recursive=true: 0 and the array, or -1. */
int hub_tree(const struct hub_client *c, const char *id, const char *revision, cJSON **out,
             struct hub_error *err);

/* Called as bytes arrive; `file_bytes` counts the whole file (offset included).
 * A non-zero return aborts the transfer (hub_fetch_file then returns 1). */
typedef int (*hub_progress_fn)(void *ctx, long long file_bytes);

/* What a download saw in the response headers. */
struct hub_fetch_info {
    char commit[128];      /* X-Repo-Commit, "" when absent */
    char linked_etag[160]; /* X-Linked-Etag (the LFS sha256), quotes removed */
    long long linked_size; /* X-Linked-Size, -1 when absent */
};

/*
 * Downloads /{id}/resolve/{revision}/{file} (following redirects) into
 * `dest`, resuming from dest's current size with "Range: bytes=N-"; an
 * answer of 200 to a Range request restarts the file from zero.  Returns 0
 * when complete, 1 when `progress` aborted it, -1 on error (err filled; 416
 * means the partial file is not a prefix of the hub's file).  dest keeps
 * whatever arrived, so a later call resumes.
 */
int hub_fetch_file(const struct hub_client *c, const char *id, const char *revision,
                   const char *file, const char *dest, hub_progress_fn progress, void *ctx,
                   struct hub_fetch_info *info, struct hub_error *err);

#endif
