/*
 * downloads.c - fetching a repo revision into the HF cache, and the
 * download manager: tasks in memory mirrored to the `downloads` table, a
 * fixed set of worker threads taking queued tasks in creation order.
 *
 * One mutex guards the task list; workers hold it only to read or update a
 * task's fields, never across network or disk I/O.  Pause and cancel are
 * requests (task->want) that the running fetch sees in its progress
 * callback.
 */
#include "downloads.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "db.h"
#include "fsutil.h"
#include "hf_cache.h"
#include "hub.h"
#include "log.h"
#include "settings.h"

#define DL_MAX_ATTEMPTS 6
#define DL_BACKOFF_FIRST_MS 500
#define DL_BACKOFF_MAX_MS 8000
#define DL_DB_INTERVAL 1.0 /* seconds between progress rows written */
#define DL_MAX_THREADS 8
#define DL_MAX_FILES 10000
#define DL_PATH (2 * PATH_MAX + 64) /* repo dir + blob or file path */

static double dl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void dl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- hashing ---------------------------------------------------------- */

static int dl_is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/*
 * Hex digest of `path` into out: sha256 of the contents, or (git_blob) the
 * git object id sha1("blob SIZE\0" + contents).  0 or -1.
 */
static int dl_hash_file(const char *path, int git_blob, char *out, size_t outlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct stat st;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 20);
    int rc = -1;
    if (!ctx || !buf || fstat(fileno(f), &st) ||
        !EVP_DigestInit_ex(ctx, git_blob ? EVP_sha1() : EVP_sha256(), NULL))
        goto out;
    if (git_blob) {
        char hdr[64];
        int n = snprintf(hdr, sizeof(hdr), "blob %lld", (long long)st.st_size);
        if (!EVP_DigestUpdate(ctx, hdr, (size_t)n + 1))
            goto out;
    }
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0)
        if (!EVP_DigestUpdate(ctx, buf, n))
            goto out;
    if (ferror(f))
        goto out;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || outlen < mdlen * 2 + 1)
        goto out;
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    rc = 0;
out:
    free(buf);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

/* ---- one fetch -------------------------------------------------------- */

struct dl_file {
    char *path;
    long long size;
    char blob[72]; /* lfs sha256 (64 hex) or git oid (40 hex) */
    int lfs;
};

struct dl_fetch {
    const struct download_job *job;
    char commit[160];
    char repo[PATH_MAX];
    struct dl_file *files;
    size_t n_files;
    long long total, done_before; /* bytes of the whole revision, of files finished */
    const char *file;
    const char *status;
};

static int dl_report(struct dl_fetch *f, long long done)
{
    if (!f->job->on_progress)
        return 0;
    struct download_status s = {f->status, done, f->total, f->file ? f->file : "", f->commit};
    return f->job->on_progress(f->job->ctx, &s);
}

static int dl_on_bytes(void *ctx, long long file_bytes)
{
    struct dl_fetch *f = ctx;
    return dl_report(f, f->done_before + file_bytes);
}

static long long dl_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Reads the tree into f->files, refusing unsafe paths and odd entries. */
static int dl_parse_tree(struct dl_fetch *f, const cJSON *tree, char *err, size_t errlen)
{
    size_t n = (size_t)cJSON_GetArraySize(tree);
    if (n > DL_MAX_FILES) {
        snprintf(err, errlen, "the repository lists %zu files (more than %d)", n, DL_MAX_FILES);
        return -1;
    }
    f->files = calloc(n ? n : 1, sizeof(*f->files));
    if (!f->files) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, tree)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "file") != 0)
            continue; /* directories: recursive listings name their files too */
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
        const cJSON *oid = cJSON_GetObjectItemCaseSensitive(e, "oid");
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
        const cJSON *lfs_oid = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
        const cJSON *lfs_size = cJSON_GetObjectItemCaseSensitive(lfs, "size");
        if (!cJSON_IsString(path) || !hf_cache_valid_file(path->valuestring)) {
            snprintf(err, errlen, "the repository lists an unsafe file path %s%.200s%s",
                     cJSON_IsString(path) ? "'" : "",
                     cJSON_IsString(path) ? path->valuestring : "(not a string)",
                     cJSON_IsString(path) ? "'" : "");
            return -1;
        }
        struct dl_file *df = &f->files[f->n_files];
        if (cJSON_IsObject(lfs)) {
            if (!cJSON_IsString(lfs_oid) || !dl_is_hex(lfs_oid->valuestring, 64) ||
                !cJSON_IsNumber(lfs_size) || lfs_size->valuedouble < 0) {
                snprintf(err, errlen, "the hub lists %.200s without a valid sha256 and size",
                         path->valuestring);
                return -1;
            }
            snprintf(df->blob, sizeof(df->blob), "%s", lfs_oid->valuestring);
            df->size = (long long)lfs_size->valuedouble;
            df->lfs = 1;
        } else {
            if (!cJSON_IsString(oid) || !dl_is_hex(oid->valuestring, 40) || !cJSON_IsNumber(size) ||
                size->valuedouble < 0) {
                snprintf(err, errlen, "the hub lists %.200s without a valid oid and size",
                         path->valuestring);
                return -1;
            }
            snprintf(df->blob, sizeof(df->blob), "%s", oid->valuestring);
            df->size = (long long)size->valuedouble;
        }
        df->path = strdup(path->valuestring);
        if (!df->path) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        f->n_files++;
        f->total += df->size;
    }
    return 0;
}

/*
 * The siblings of a blobs=true model info in the tree's shape ({path, size,
 * oid, lfs {oid, size}}), for dl_parse_tree to validate.  NULL when the
 * info has no siblings with sizes.
 */
static cJSON *dl_siblings_tree(const cJSON *info)
{
    const cJSON *sibs = cJSON_GetObjectItemCaseSensitive(info, "siblings");
    if (!cJSON_IsArray(sibs) || !cJSON_GetArraySize(sibs))
        return NULL;
    cJSON *tree = cJSON_CreateArray();
    const cJSON *s;
    cJSON_ArrayForEach(s, sibs)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "rfilename");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(s, "size");
        const cJSON *blob = cJSON_GetObjectItemCaseSensitive(s, "blobId");
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(s, "lfs");
        if (!cJSON_IsNumber(size)) {
            cJSON_Delete(tree);
            return NULL;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(tree, e);
        cJSON_AddStringToObject(e, "type", "file");
        cJSON_AddItemToObject(e, "path", cJSON_Duplicate(name, 1));
        cJSON_AddNumberToObject(e, "size", size->valuedouble);
        cJSON_AddItemToObject(e, "oid", cJSON_Duplicate(blob, 1));
        if (cJSON_IsObject(lfs)) {
            cJSON *l = cJSON_AddObjectToObject(e, "lfs");
            cJSON_AddItemToObject(
                l, "oid", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(lfs, "sha256"), 1));
            cJSON_AddItemToObject(
                l, "size", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(lfs, "size"), 1));
        }
    }
    return tree;
}

/*
 * The resolve answer's X-Repo-Commit, X-Linked-Etag and X-Linked-Size must
 * agree with the listing the file was chosen from; a hub that serves
 * another commit or blob mid-download is reported, not mixed in.  1 with
 * the message in err, else 0.  Absent headers (plain mirrors) are fine.
 */
static int dl_headers_disagree(const struct dl_fetch *f, const struct dl_file *df,
                               const struct hub_fetch_info *info, char *err, size_t errlen)
{
    if (info->commit[0] && strcmp(info->commit, f->commit) != 0) {
        snprintf(err, errlen, "%s: the hub served commit %.64s, expected %s", df->path,
                 info->commit, f->commit);
        return 1;
    }
    if (df->lfs && dl_is_hex(info->linked_etag, 64) && strcmp(info->linked_etag, df->blob)) {
        snprintf(err, errlen, "%s: the hub advertises sha256 %s, its listing said %s", df->path,
                 info->linked_etag, df->blob);
        return 1;
    }
    if (df->lfs && info->linked_size >= 0 && info->linked_size != df->size) {
        snprintf(err, errlen, "%s: the hub advertises %lld bytes, its listing said %lld", df->path,
                 info->linked_size, df->size);
        return 1;
    }
    return 0;
}

/* Downloads one file into blobs/<blob>.incomplete, verifies it and renames
 * it to the blob.  0, 1 (stopped) or -1. */
static int dl_fetch_one(struct dl_fetch *f, const struct dl_file *df, char *err, size_t errlen)
{
    char blob[DL_PATH], part[DL_PATH + 16];
    snprintf(blob, sizeof(blob), "%s/blobs/%s", f->repo, df->blob);
    snprintf(part, sizeof(part), "%s.incomplete", blob);
    int backoff = DL_BACKOFF_FIRST_MS;
    for (int attempt = 1;; attempt++) {
        long long have = dl_file_size(part);
        if (have > df->size) {
            unlink(part);
            have = 0;
        }
        if (have < df->size || df->size == 0) {
            f->status = "downloading";
            struct hub_fetch_info info;
            struct hub_error herr;
            int rc = dl_report(f, f->done_before + (have > 0 ? have : 0))
                         ? 1
                         : hub_fetch_file(f->job->client, f->job->model_id, f->commit, df->path,
                                          part, dl_on_bytes, f, &info, &herr);
            if (rc == 1)
                return 1;
            if (rc < 0 && herr.status == 416) {
                /* Our partial is not a prefix the hub can extend: start over. */
                unlink(part);
                herr.transient = 1;
            }
            if (rc == 0 && dl_headers_disagree(f, df, &info, err, errlen))
                return -1;
            if (rc == 0 && dl_file_size(part) < df->size) {
                rc = -1;
                herr.transient = 1;
                snprintf(herr.message, sizeof(herr.message),
                         "the hub sent %lld of %lld bytes of %s", dl_file_size(part), df->size,
                         df->path);
            }
            if (rc < 0) {
                if (!herr.transient || attempt >= DL_MAX_ATTEMPTS) {
                    snprintf(err, errlen, "%s: %s%s", df->path, herr.message,
                             herr.transient ? " (gave up after retries)" : "");
                    return -1;
                }
                log_msg(LOG_LEVEL_WARN, "download %s %s: %s; retrying in %d ms", f->job->model_id,
                        df->path, herr.message, backoff);
                for (int waited = 0; waited < backoff; waited += 100) {
                    if (dl_report(f, f->done_before +
                                         (dl_file_size(part) > 0 ? dl_file_size(part) : 0)))
                        return 1;
                    dl_sleep_ms(100);
                }
                backoff = backoff * 2 > DL_BACKOFF_MAX_MS ? DL_BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
        }
        if (dl_file_size(part) != df->size) {
            /* An empty file never gets a request body: create it. */
            FILE *z = df->size == 0 ? fopen(part, "wb") : NULL;
            if (z)
                fclose(z);
            if (dl_file_size(part) != df->size) {
                unlink(part);
                snprintf(err, errlen, "%s is longer than the %lld bytes the hub listed", df->path,
                         df->size);
                return -1;
            }
        }
        f->status = "verifying";
        if (dl_report(f, f->done_before + df->size))
            return 1;
        char got[EVP_MAX_MD_SIZE * 2 + 1];
        if (dl_hash_file(part, !df->lfs, got, sizeof(got))) {
            snprintf(err, errlen, "cannot read %s to verify it", part);
            return -1;
        }
        if (strcmp(got, df->blob) != 0) {
            unlink(part);
            snprintf(err, errlen,
                     "%s is corrupt: %s %s expected, %s received; the file was deleted", df->path,
                     df->lfs ? "sha256" : "git oid", df->blob, got);
            return -1;
        }
        if (rename(part, blob) != 0) {
            snprintf(err, errlen, "cannot rename %s: %s", part, strerror(errno));
            return -1;
        }
        return 0;
    }
}

int downloads_fetch(const struct download_job *job, char *err, size_t errlen)
{
    struct dl_fetch f = {.job = job, .status = "starting"};
    cJSON *info = NULL, *tree = NULL;
    struct hub_error herr;
    int rc = -1;
    if (dl_report(&f, 0))
        return 1;
    if (hub_model_info(job->client, job->model_id, job->revision, &info, &herr)) {
        rc = dl_report(&f, 0) ? 1 : -1;
        snprintf(err, errlen, "%s", herr.message);
        goto out;
    }
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(info, "sha");
    if (!cJSON_IsString(sha) || !hf_cache_valid_name(sha->valuestring)) {
        snprintf(err, errlen, "the hub did not give a valid commit for %s at %s", job->model_id,
                 job->revision);
        goto out;
    }
    snprintf(f.commit, sizeof(f.commit), "%s", sha->valuestring);
    if (hub_tree(job->client, job->model_id, f.commit, &tree, &herr)) {
        /* Mirrors without the tree API still list siblings with blobs=true. */
        if (herr.status < 400 || herr.status == 401 || herr.status == 403 ||
            !(tree = dl_siblings_tree(info))) {
            rc = dl_report(&f, 0) ? 1 : -1;
            snprintf(err, errlen, "%s", herr.message);
            goto out;
        }
    }
    if (dl_parse_tree(&f, tree, err, errlen))
        goto out;
    char blobs[PATH_MAX + 8];
    if (hf_cache_repo_dir(job->models_dir, job->model_id, f.repo, sizeof(f.repo)) ||
        snprintf(blobs, sizeof(blobs), "%s/blobs", f.repo) >= (int)sizeof(blobs) ||
        fs_mkdirs(blobs, 0755)) {
        snprintf(err, errlen, "cannot create %s/blobs: %s", f.repo, strerror(errno));
        goto out;
    }

    long long have = 0;
    for (size_t i = 0; i < f.n_files; i++) {
        char p[DL_PATH];
        snprintf(p, sizeof(p), "%s/%s", blobs, f.files[i].blob);
        long long s = dl_file_size(p);
        if (s != f.files[i].size) {
            snprintf(p, sizeof(p), "%s/%s.incomplete", blobs, f.files[i].blob);
            s = dl_file_size(p);
        }
        if (s > 0 && s <= f.files[i].size)
            have += s;
    }
    struct statvfs vfs;
    if (statvfs(blobs, &vfs) == 0) {
        unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
        unsigned long long need = (unsigned long long)(f.total - have);
        if (need > avail) {
            snprintf(err, errlen,
                     "not enough disk space in %s: %llu MB still to download, %llu MB free",
                     job->models_dir, need >> 20, avail >> 20);
            goto out;
        }
    }

    for (size_t i = 0; i < f.n_files; i++) {
        const struct dl_file *df = &f.files[i];
        char p[DL_PATH];
        snprintf(p, sizeof(p), "%s/%s", blobs, df->blob);
        f.file = df->path;
        if (dl_file_size(p) != df->size) {
            int r = dl_fetch_one(&f, df, err, errlen);
            if (r != 0) {
                rc = r;
                goto out;
            }
        }
        if (hf_cache_link(f.repo, f.commit, df->path, df->blob, err, errlen))
            goto out;
        f.done_before += df->size;
        f.status = "downloading";
        if (dl_report(&f, f.done_before)) {
            rc = 1;
            goto out;
        }
    }
    if (strcmp(job->revision, f.commit) != 0 &&
        hf_cache_write_ref(f.repo, job->revision, f.commit)) {
        snprintf(err, errlen, "cannot write %s/refs/%s", f.repo, job->revision);
        goto out;
    }
    f.file = "";
    rc = 0;
out:
    for (size_t i = 0; i < f.n_files; i++)
        free(f.files[i].path);
    free(f.files);
    cJSON_Delete(tree);
    cJSON_Delete(info);
    return rc;
}

/* ---- the manager ------------------------------------------------------ */

enum dl_want {
    DL_WANT_NONE,
    DL_WANT_PAUSE,
    DL_WANT_CANCEL,
};

struct dl_task {
    struct dl_task *next;
    char id[40];
    char model_id[256];
    char revision[160];
    char status[16];
    long long done, total;
    char file[1100];
    char error[1100];
    char created_at[32];
    char updated_at[32];
    enum dl_want want;
    int running;
    double speed;   /* bytes/s, smoothed */
    double speed_t; /* when speed_bytes was sampled */
    long long speed_bytes;
};

struct downloads {
    struct app *app;
    pthread_mutex_t mu;
    pthread_mutex_t start_mu; /* serializes downloads_start; taken before mu */
    pthread_cond_t cond;
    struct dl_task *tasks; /* creation order */
    int stopping;
    int n_threads;
    pthread_t threads[DL_MAX_THREADS];
};

int downloads_status_final(const char *s)
{
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static int dl_status_running(const char *s)
{
    return !strcmp(s, "starting") || !strcmp(s, "downloading") || !strcmp(s, "verifying");
}

static int dl_fail(struct download_error *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int dl_fail(struct download_error *err, int status, const char *code, const char *fmt, ...)
{
    err->http_status = status;
    snprintf(err->code, sizeof(err->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

static struct dl_task *dl_find(struct downloads *d, const char *id)
{
    for (struct dl_task *t = d->tasks; t; t = t->next)
        if (!strcmp(t->id, id))
            return t;
    return NULL;
}

static void dl_append(struct downloads *d, struct dl_task *t)
{
    struct dl_task **pp = &d->tasks;
    while (*pp)
        pp = &(*pp)->next;
    *pp = t;
}

/* Writes the task's row (called without the lock, from a snapshot). */
static void dl_db_save(struct db *db, const struct dl_task *t)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn,
                           "UPDATE downloads SET status=?, bytes_done=?, bytes_total=?, "
                           "current_file=?, error=?, updated_at=? WHERE id=?",
                           -1, &st, NULL) != SQLITE_OK) {
        log_msg(LOG_LEVEL_ERROR, "downloads: %s", sqlite3_errmsg(db->conn));
        return;
    }
    sqlite3_bind_text(st, 1, t->status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, t->done);
    sqlite3_bind_int64(st, 3, t->total);
    sqlite3_bind_text(st, 4, t->file, -1, SQLITE_TRANSIENT);
    if (t->error[0])
        sqlite3_bind_text(st, 5, t->error, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_text(st, 6, t->updated_at, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, t->id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        log_msg(LOG_LEVEL_ERROR, "downloads: %s", sqlite3_errmsg(db->conn));
    sqlite3_finalize(st);
}

/* Sets status (and error) under the lock, then saves a snapshot. */
static void dl_set(struct downloads *d, struct db *db, struct dl_task *t, const char *status,
                   const char *error)
{
    pthread_mutex_lock(&d->mu);
    snprintf(t->status, sizeof(t->status), "%s", status);
    if (error)
        snprintf(t->error, sizeof(t->error), "%s", error);
    db_now(t->updated_at, sizeof(t->updated_at));
    struct dl_task snap = *t;
    pthread_mutex_unlock(&d->mu);
    dl_db_save(db, &snap);
}

/* Removes the *.incomplete blobs of a cancelled task. */
static void dl_remove_partials(const char *models_dir, const char *model_id)
{
    char repo[PATH_MAX], blobs[PATH_MAX + 8];
    if (hf_cache_repo_dir(models_dir, model_id, repo, sizeof(repo)))
        return;
    snprintf(blobs, sizeof(blobs), "%s/blobs", repo);
    DIR *dir = opendir(blobs);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir))) {
        size_t n = strlen(de->d_name);
        if (n > 11 && !strcmp(de->d_name + n - 11, ".incomplete")) {
            char p[PATH_MAX * 2];
            snprintf(p, sizeof(p), "%s/%s", blobs, de->d_name);
            unlink(p);
        }
    }
    closedir(dir);
}

struct dl_run {
    struct downloads *d;
    struct db *db;
    struct dl_task *t;
    double last_save;
};

static int dl_task_progress(void *ctx, const struct download_status *s)
{
    struct dl_run *r = ctx;
    struct dl_task *t = r->t;
    double now = dl_now();
    pthread_mutex_lock(&r->d->mu);
    int stop = r->d->stopping || t->want != DL_WANT_NONE;
    snprintf(t->status, sizeof(t->status), "%s", s->status);
    snprintf(t->file, sizeof(t->file), "%s", s->file);
    t->total = s->bytes_total;
    if (now - t->speed_t >= 0.5) {
        double inst =
            t->speed_t > 0 ? (double)(s->bytes_done - t->speed_bytes) / (now - t->speed_t) : 0;
        if (inst < 0)
            inst = 0;
        t->speed = t->speed > 0 ? 0.5 * t->speed + 0.5 * inst : inst;
        t->speed_t = now;
        t->speed_bytes = s->bytes_done;
    }
    t->done = s->bytes_done;
    int save = now - r->last_save >= DL_DB_INTERVAL;
    struct dl_task snap;
    if (save) {
        db_now(t->updated_at, sizeof(t->updated_at));
        snap = *t;
        r->last_save = now;
    }
    pthread_mutex_unlock(&r->d->mu);
    if (save)
        dl_db_save(r->db, &snap);
    return stop;
}

static int dl_task_should_stop(void *ctx)
{
    struct dl_run *r = ctx;
    pthread_mutex_lock(&r->d->mu);
    int stop = r->d->stopping || r->t->want != DL_WANT_NONE;
    pthread_mutex_unlock(&r->d->mu);
    return stop;
}

static void dl_run_task(struct downloads *d, struct db *db, struct dl_task *t)
{
    char models_dir[4096], endpoint[1024], token[1024];
    const struct config *cfg = &d->app->config;
    settings_get_text(db, cfg, "models_dir", models_dir, sizeof(models_dir));
    settings_get_text(db, cfg, "hf_endpoint", endpoint, sizeof(endpoint));
    settings_get_text(db, cfg, "hf_token", token, sizeof(token));
    struct hub_client client;
    hub_client_init(&client, endpoint, token);
    struct dl_run run = {.d = d, .db = db, .t = t};
    client.should_stop = dl_task_should_stop;
    client.stop_ctx = &run;
    struct download_job job = {
        .client = &client,
        .models_dir = models_dir,
        .model_id = t->model_id,
        .revision = t->revision,
        .on_progress = dl_task_progress,
        .ctx = &run,
    };
    char err[1024] = "";
    log_msg(LOG_LEVEL_INFO, "download %s: %s@%s started", t->id, t->model_id, t->revision);
    int rc = downloads_fetch(&job, err, sizeof(err));

    pthread_mutex_lock(&d->mu);
    enum dl_want want = t->want;
    int stopping = d->stopping;
    t->want = DL_WANT_NONE;
    t->speed = 0;
    pthread_mutex_unlock(&d->mu);
    if (rc == 0) {
        pthread_mutex_lock(&d->mu);
        t->done = t->total;
        t->file[0] = '\0';
        pthread_mutex_unlock(&d->mu);
        dl_set(d, db, t, "completed", "");
        log_msg(LOG_LEVEL_INFO, "download %s: %s completed", t->id, t->model_id);
    } else if (rc < 0) {
        dl_set(d, db, t, "failed", err);
        log_msg(LOG_LEVEL_WARN, "download %s: %s failed: %s", t->id, t->model_id, err);
    } else if (want == DL_WANT_CANCEL) {
        dl_remove_partials(models_dir, t->model_id);
        dl_set(d, db, t, "cancelled", "");
    } else if (want == DL_WANT_PAUSE) {
        dl_set(d, db, t, "paused", "");
    } else if (stopping) {
        /* Keep the running status in the row so the next start resumes it. */
        pthread_mutex_lock(&d->mu);
        struct dl_task snap = *t;
        pthread_mutex_unlock(&d->mu);
        dl_db_save(db, &snap);
    }
}

static void *dl_worker(void *arg)
{
    struct downloads *d = arg;
    struct db db;
    char err[512];
    if (db_open(&db, d->app->db_path, err, sizeof(err))) {
        log_msg(LOG_LEVEL_ERROR, "downloads: %s", err);
        return NULL;
    }
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        struct dl_task *t = d->tasks;
        while (t && (t->running || strcmp(t->status, "queued") != 0))
            t = t->next;
        if (!t) {
            pthread_cond_wait(&d->cond, &d->mu);
            continue;
        }
        t->running = 1;
        t->want = DL_WANT_NONE;
        t->error[0] = '\0';
        t->speed = 0;
        t->speed_t = 0;
        pthread_mutex_unlock(&d->mu);
        dl_set(d, &db, t, "starting", "");
        dl_run_task(d, &db, t);
        pthread_mutex_lock(&d->mu);
        t->running = 0;
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&d->mu);
    db_close(&db);
    return NULL;
}

static void dl_copy_col(sqlite3_stmt *st, int col, char *out, size_t len)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(out, len, "%s", v ? (const char *)v : "");
}

static void dl_row_task(sqlite3_stmt *st, struct dl_task *t)
{
    dl_copy_col(st, 0, t->id, sizeof(t->id));
    dl_copy_col(st, 1, t->model_id, sizeof(t->model_id));
    dl_copy_col(st, 2, t->revision, sizeof(t->revision));
    dl_copy_col(st, 3, t->status, sizeof(t->status));
    t->done = sqlite3_column_int64(st, 4);
    t->total = sqlite3_column_int64(st, 5);
    dl_copy_col(st, 6, t->file, sizeof(t->file));
    dl_copy_col(st, 7, t->error, sizeof(t->error));
    dl_copy_col(st, 8, t->created_at, sizeof(t->created_at));
    dl_copy_col(st, 9, t->updated_at, sizeof(t->updated_at));
}

#define DL_COLUMNS                                                                                 \
    "id, model_id, revision, status, bytes_done, bytes_total, current_file, error, "               \
    "created_at, updated_at"

int downloads_create(struct app *app, int threads, struct downloads **out)
{
    hub_global_init();
    struct downloads *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->app = app;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->start_mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    struct db db;
    char err[512];
    if (db_open(&db, app->db_path, err, sizeof(err))) {
        log_msg(LOG_LEVEL_ERROR, "downloads: %s", err);
        free(d);
        return -1;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db.conn,
                           "SELECT " DL_COLUMNS " FROM downloads WHERE status NOT IN "
                           "('completed','failed','cancelled') ORDER BY created_at, rowid",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            struct dl_task *t = calloc(1, sizeof(*t));
            if (!t)
                break;
            dl_row_task(st, t);
            if (strcmp(t->status, "paused") != 0) {
                snprintf(t->status, sizeof(t->status), "queued");
                log_msg(LOG_LEVEL_INFO, "download %s: resuming %s", t->id, t->model_id);
            }
            dl_append(d, t);
        }
        sqlite3_finalize(st);
    }
    for (struct dl_task *t = d->tasks; t; t = t->next)
        dl_db_save(&db, t);
    db_close(&db);
    if (threads < 1)
        threads = 1;
    if (threads > DL_MAX_THREADS)
        threads = DL_MAX_THREADS;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&d->threads[i], NULL, dl_worker, d) != 0)
            break;
        d->n_threads++;
    }
    if (d->n_threads == 0) {
        downloads_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

void downloads_free(struct downloads *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->n_threads; i++)
        pthread_join(d->threads[i], NULL);
    while (d->tasks) {
        struct dl_task *t = d->tasks;
        d->tasks = t->next;
        free(t);
    }
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->start_mu);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* ---- requests --------------------------------------------------------- */

int downloads_start(struct downloads *d, struct db *db, const char *model_id, const char *revision,
                    char *task_id, size_t task_id_len, struct download_error *err)
{
    char why[256];
    if (!hf_cache_valid_id(model_id, why, sizeof(why)))
        return dl_fail(err, 422, "invalid_model_id", "invalid model_id: %s", why);
    if (!revision)
        revision = "main";
    if (!hf_cache_valid_name(revision))
        return dl_fail(err, 422, "invalid_revision",
                       "invalid revision: use a branch, tag or commit of [A-Za-z0-9._-]");
    char endpoint[1024], token[1024];
    settings_get_text(db, &d->app->config, "hf_endpoint", endpoint, sizeof(endpoint));
    settings_get_text(db, &d->app->config, "hf_token", token, sizeof(token));
    struct hub_client client;
    hub_client_init(&client, endpoint, token);
    cJSON *info = NULL;
    struct hub_error herr;
    if (hub_model_info(&client, model_id, revision, &info, &herr)) {
        if (herr.status == 404)
            return dl_fail(err, 404, "hub_model_not_found", "%s (model %s, revision %s)",
                           herr.message, model_id, revision);
        return dl_fail(err, 502,
                       herr.status == 401 || herr.status == 403 ? "hub_unauthorized"
                       : herr.status                            ? "hub_error"
                                                                : "hub_unreachable",
                       "%s", herr.message);
    }
    cJSON_Delete(info);

    /* One start at a time from here, so two requests for the same model
     * cannot both pass the duplicate check. */
    pthread_mutex_lock(&d->start_mu);
    pthread_mutex_lock(&d->mu);
    for (struct dl_task *t = d->tasks; t; t = t->next) {
        if (!strcmp(t->model_id, model_id) && !downloads_status_final(t->status) &&
            strcmp(t->status, "paused") != 0) {
            char id[40];
            snprintf(id, sizeof(id), "%s", t->id);
            pthread_mutex_unlock(&d->mu);
            pthread_mutex_unlock(&d->start_mu);
            return dl_fail(err, 409, "download_in_progress",
                           "%s is already being downloaded (task %s)", model_id, id);
        }
    }
    pthread_mutex_unlock(&d->mu);

    struct dl_task *t = calloc(1, sizeof(*t));
    unsigned char rnd[16];
    if (!t || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        free(t);
        pthread_mutex_unlock(&d->start_mu);
        return dl_fail(err, 500, "internal_error", "cannot create a task id");
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(t->id + 2 * i, 3, "%02x", rnd[i]);
    snprintf(t->model_id, sizeof(t->model_id), "%s", model_id);
    snprintf(t->revision, sizeof(t->revision), "%s", revision);
    snprintf(t->status, sizeof(t->status), "queued");
    db_now(t->created_at, sizeof(t->created_at));
    snprintf(t->updated_at, sizeof(t->updated_at), "%s", t->created_at);
    sqlite3_stmt *st;
    int ok = sqlite3_prepare_v2(db->conn,
                                "INSERT INTO downloads (id, model_id, revision, status, "
                                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->model_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, t->revision, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, t->status, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, t->created_at, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, t->updated_at, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (!ok) {
        free(t);
        pthread_mutex_unlock(&d->start_mu);
        return dl_fail(err, 500, "database_error", "%s", sqlite3_errmsg(db->conn));
    }
    snprintf(task_id, task_id_len, "%s", t->id);
    pthread_mutex_lock(&d->mu);
    dl_append(d, t);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_unlock(&d->start_mu);
    return 0;
}

/* Changes a task that is not running right now, or asks the running one to
 * stop.  Returns 0, or -1 with err. */
static int dl_control(struct downloads *d, struct db *db, const char *id, enum dl_want want,
                      struct download_error *err)
{
    pthread_mutex_lock(&d->mu);
    struct dl_task *t = dl_find(d, id);
    if (!t) {
        pthread_mutex_unlock(&d->mu);
        return dl_fail(err, 404, "task_not_found", "no active download task '%s'", id);
    }
    const char *action = want == DL_WANT_PAUSE ? "pause" : "cancel";
    if (downloads_status_final(t->status) ||
        (want == DL_WANT_PAUSE && !strcmp(t->status, "paused"))) {
        char st[16];
        snprintf(st, sizeof(st), "%s", t->status);
        pthread_mutex_unlock(&d->mu);
        return dl_fail(err, 409, "invalid_state", "cannot %s a download that is %s", action, st);
    }
    if (t->running) {
        t->want = want;
        /* Wait for the worker to stop so the caller sees the final state. */
        while (t->running)
            pthread_cond_wait(&d->cond, &d->mu);
        pthread_mutex_unlock(&d->mu);
        return 0;
    }
    /* Not running: the status changes under the lock so no worker can pick
     * the task up in between. */
    snprintf(t->status, sizeof(t->status), "%s", want == DL_WANT_PAUSE ? "paused" : "cancelled");
    db_now(t->updated_at, sizeof(t->updated_at));
    struct dl_task snap = *t;
    pthread_mutex_unlock(&d->mu);
    if (want == DL_WANT_CANCEL) {
        char models_dir[4096];
        settings_get_text(db, &d->app->config, "models_dir", models_dir, sizeof(models_dir));
        dl_remove_partials(models_dir, snap.model_id);
    }
    dl_db_save(db, &snap);
    return 0;
}

int downloads_pause(struct downloads *d, struct db *db, const char *task_id,
                    struct download_error *err)
{
    return dl_control(d, db, task_id, DL_WANT_PAUSE, err);
}

int downloads_cancel(struct downloads *d, struct db *db, const char *task_id,
                     struct download_error *err)
{
    return dl_control(d, db, task_id, DL_WANT_CANCEL, err);
}

int downloads_resume(struct downloads *d, struct db *db, const char *task_id,
                     struct download_error *err)
{
    pthread_mutex_lock(&d->mu);
    struct dl_task *t = dl_find(d, task_id);
    if (!t) {
        /* Finished tasks of an earlier run are only in the database. */
        pthread_mutex_unlock(&d->mu);
        sqlite3_stmt *st;
        struct dl_task *nt = calloc(1, sizeof(*nt));
        int found = 0;
        if (nt && sqlite3_prepare_v2(db->conn, "SELECT " DL_COLUMNS " FROM downloads WHERE id=?",
                                     -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) {
                dl_row_task(st, nt);
                found = 1;
            }
            sqlite3_finalize(st);
        }
        if (!found) {
            free(nt);
            return dl_fail(err, 404, "task_not_found", "no download task '%s'", task_id);
        }
        pthread_mutex_lock(&d->mu);
        t = dl_find(d, task_id);
        if (t)
            free(nt);
        else
            dl_append(d, t = nt);
    }
    if (t->running || (strcmp(t->status, "paused") && !downloads_status_final(t->status))) {
        char st[16];
        snprintf(st, sizeof(st), "%s", t->status);
        pthread_mutex_unlock(&d->mu);
        return dl_fail(err, 409, "invalid_state", "cannot resume a download that is %s", st);
    }
    if (!strcmp(t->status, "completed")) {
        pthread_mutex_unlock(&d->mu);
        return dl_fail(err, 409, "invalid_state", "the download is already completed");
    }
    for (struct dl_task *o = d->tasks; o; o = o->next) {
        if (o != t && !strcmp(o->model_id, t->model_id) && !downloads_status_final(o->status) &&
            strcmp(o->status, "paused") != 0) {
            pthread_mutex_unlock(&d->mu);
            return dl_fail(err, 409, "download_in_progress",
                           "another task is downloading the same model");
        }
    }
    snprintf(t->status, sizeof(t->status), "queued");
    t->error[0] = '\0';
    db_now(t->updated_at, sizeof(t->updated_at));
    struct dl_task snap = *t;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
    dl_db_save(db, &snap);
    return 0;
}

/* ---- views ------------------------------------------------------------ */

static cJSON *dl_task_json(const struct dl_task *t, int live)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "model_id", t->model_id);
    cJSON_AddStringToObject(o, "revision", t->revision);
    cJSON_AddStringToObject(o, "status", t->status);
    cJSON_AddNumberToObject(o, "bytes_done", (double)t->done);
    cJSON_AddNumberToObject(o, "bytes_total", (double)t->total);
    double pct = t->total > 0                      ? 100.0 * (double)t->done / (double)t->total
                 : !strcmp(t->status, "completed") ? 100.0
                                                   : 0.0;
    cJSON_AddNumberToObject(o, "percent", (double)((long long)(pct * 10)) / 10);
    double speed = live && dl_status_running(t->status) ? t->speed : 0;
    cJSON_AddNumberToObject(o, "speed_bps", (double)(long long)speed);
    if (speed > 0 && t->total > t->done)
        cJSON_AddNumberToObject(o, "eta_seconds",
                                (double)(long long)((double)(t->total - t->done) / speed + 0.5));
    else
        cJSON_AddNullToObject(o, "eta_seconds");
    cJSON_AddStringToObject(o, "current_file", t->file);
    if (t->error[0])
        cJSON_AddStringToObject(o, "error", t->error);
    else
        cJSON_AddNullToObject(o, "error");
    cJSON_AddStringToObject(o, "created_at", t->created_at);
    cJSON_AddStringToObject(o, "updated_at", t->updated_at);
    return o;
}

cJSON *downloads_get(struct downloads *d, struct db *db, const char *task_id)
{
    pthread_mutex_lock(&d->mu);
    struct dl_task *t = dl_find(d, task_id);
    cJSON *o = t ? dl_task_json(t, 1) : NULL;
    pthread_mutex_unlock(&d->mu);
    if (t)
        return o;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->conn, "SELECT " DL_COLUMNS " FROM downloads WHERE id=?", -1, &st,
                           NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        struct dl_task row = {0};
        dl_row_task(st, &row);
        o = dl_task_json(&row, 0);
    }
    sqlite3_finalize(st);
    return o;
}

cJSON *downloads_list(struct downloads *d, struct db *db)
{
    cJSON *arr = cJSON_CreateArray();
    sqlite3_stmt *st;
    if (!arr || sqlite3_prepare_v2(db->conn,
                                   "SELECT " DL_COLUMNS
                                   " FROM downloads ORDER BY created_at DESC, rowid DESC",
                                   -1, &st, NULL) != SQLITE_OK) {
        cJSON_Delete(arr);
        return NULL;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct dl_task row = {0};
        dl_row_task(st, &row);
        pthread_mutex_lock(&d->mu);
        struct dl_task *t = dl_find(d, row.id);
        cJSON *o = dl_task_json(t ? t : &row, t != NULL);
        pthread_mutex_unlock(&d->mu);
        if (o)
            cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
    return arr;
}

int downloads_busy(struct downloads *d, const char *model_id)
{
    int busy = 0;
    pthread_mutex_lock(&d->mu);
    for (struct dl_task *t = d->tasks; t && !busy; t = t->next)
        busy = !strcmp(t->model_id, model_id) && (t->running || !strcmp(t->status, "queued"));
    pthread_mutex_unlock(&d->mu);
    return busy;
}
