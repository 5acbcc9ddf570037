/*
 * downloads.h - model downloads from the Hugging Face Hub into the HF cache
 * layout: the synchronous fetch of one repo revision (used by `pull`), and
 * the daemon's download manager, a bounded pool of worker threads running
 * tasks whose state lives in the SQLite `downloads` table.
 *
 * A fetch lists the revision's files, skips blobs already complete, resumes
 * partial blobs (`blobs/<oid>.incomplete`) with HTTP Range, retries network
 * errors with exponential backoff, verifies every file's hash (sha256 of LFS
 * files, git blob sha1 of the others) before it becomes a blob, links
 * `snapshots/<commit>/<file>` and writes `refs/<revision>`.
 *
 * Task states: queued, starting, downloading, verifying, paused, completed,
 * failed, cancelled.  Tasks that were running when the daemon stopped (or
 * was killed) are queued again by downloads_create().
 *
 * Thread-safe: every downloads_* function may be called from any worker
 * thread; each takes the caller's own database connection where it needs
 * one.  Returned cJSON trees belong to the caller.
 */
#ifndef FCGI_DOWNLOADS_H
#define FCGI_DOWNLOADS_H

#include <cJSON.h>
#include <stddef.h>

struct app;
struct db;
struct hub_client;

/* ---- one synchronous fetch --------------------------------------------- */

/* Progress of a fetch; strings are valid during the callback only. */
struct download_status {
    const char *status; /* starting, downloading, verifying */
    long long bytes_done, bytes_total;
    const char *file; /* the file being fetched or verified, "" between files */
    const char *commit;
};

struct download_job {
    const struct hub_client *client;
    const char *models_dir;
    const char *model_id; /* validated by the caller (hf_cache_valid_id) */
    const char *revision;
    /* Called often (several times a second while bytes flow); a non-zero
     * return stops the fetch, leaving partial blobs for a later resume. */
    int (*on_progress)(void *ctx, const struct download_status *s);
    void *ctx;
};

/*
 * Fetches job->model_id at job->revision.  Returns 0 when every file is in
 * place, 1 when on_progress stopped it, -1 on failure with the reason in
 * err (hub errors name the hub's status; a corrupt file names the expected
 * and actual hash and its blob is deleted).
 */
int downloads_fetch(const struct download_job *job, char *err, size_t errlen);

/* ---- the daemon's download manager ---------------------------------- */

struct downloads;

/* What a failed manager call should answer. */
struct download_error {
    int http_status; /* 404, 409, 422, 502, 500 */
    char code[64];
    char message[1024];
};

/*
 * Starts `threads` download workers (1..8) and queues again every task the
 * database shows as unfinished and not paused.  0, or -1 (message logged).
 */
int downloads_create(struct app *app, int threads, struct downloads **out);

/* Stops the workers; running tasks stay resumable (their rows still say
 * they were running, so the next downloads_create() queues them). */
void downloads_free(struct downloads *d);

/*
 * Queues a download of model_id at revision (NULL = "main") after asking
 * the hub that it exists.  Returns 0 with the new task's id in task_id
 * (>= 33 bytes), or -1 with err: 422 invalid id/revision, 404 unknown on the
 * hub, 409 already being downloaded, 502 hub unreachable or refusing.
 */
int downloads_start(struct downloads *d, struct db *db, const char *model_id, const char *revision,
                    char *task_id, size_t task_id_len, struct download_error *err);

/* Pause a queued or running task (it keeps its partial files). 0 or -1 (404, 409). */
int downloads_pause(struct downloads *d, struct db *db, const char *task_id,
                    struct download_error *err);

/* Queue a paused, failed or cancelled task again (partial files are reused). */
int downloads_resume(struct downloads *d, struct db *db, const char *task_id,
                     struct download_error *err);

/* Cancel a task that has not finished; its partial files are deleted. */
int downloads_cancel(struct downloads *d, struct db *db, const char *task_id,
                     struct download_error *err);

/*
 * The task as JSON: id, model_id, revision, status, bytes_done, bytes_total,
 * percent, speed_bps, eta_seconds, current_file, error, created_at,
 * updated_at.  Live values for tasks of this process, the database row
 * otherwise.  NULL when there is no such task.
 */
cJSON *downloads_get(struct downloads *d, struct db *db, const char *task_id);

/* 1 when status (from downloads_get) is completed, failed or cancelled. */
int downloads_status_final(const char *status);

/* Every task (newest first) as a JSON array of downloads_get() objects. */
cJSON *downloads_list(struct downloads *d, struct db *db);

/* 1 while a task for model_id is queued or running. */
int downloads_busy(struct downloads *d, const char *model_id);

#endif
