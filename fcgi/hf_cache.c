/*
 * hf_cache.c - the Hugging Face cache layout: validation of names that
 * become file names, snapshot links, refs, listing and deletion.
 */
#include "fsutil.h"
#include "hf_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_registry.h"

#define HF_CACHE_MAX_PART 96

/* ---- validation ------------------------------------------------------- */

static int hf_cache_safe_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int hf_cache_fail(char *why, size_t whylen, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
    return 0;
}

static int hf_cache_valid_part(const char *s, size_t n, char *why, size_t whylen)
{
    if (n == 0 || n > HF_CACHE_MAX_PART)
        return hf_cache_fail(why, whylen, "each part of a model id must be 1 to 96 characters");
    if (s[0] == '.')
        return hf_cache_fail(why, whylen, "a model id part must not start with '.'");
    for (size_t i = 0; i < n; i++) {
        if (!hf_cache_safe_char(s[i]))
            return hf_cache_fail(why, whylen,
                                 "a model id may only contain letters, digits, '.', '_' and '-'");
        if (s[i] == '.' && i + 1 < n && s[i + 1] == '.')
            return hf_cache_fail(why, whylen, "a model id must not contain '..'");
    }
    return 1;
}

int hf_cache_valid_id(const char *id, char *why, size_t whylen)
{
    if (!id)
        return hf_cache_fail(why, whylen, "model id is missing");
    const char *slash = strchr(id, '/');
    if (!slash)
        return hf_cache_fail(why, whylen, "a model id must be ORG/NAME");
    if (strchr(slash + 1, '/'))
        return hf_cache_fail(why, whylen, "a model id must be ORG/NAME (one '/')");
    return hf_cache_valid_part(id, (size_t)(slash - id), why, whylen) &&
           hf_cache_valid_part(slash + 1, strlen(slash + 1), why, whylen);
}

int hf_cache_valid_file(const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || n > 1024 || path[0] == '/')
        return 0;
    const char *p = path;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x20 || c == 0x7f || c == '\\')
                return 0;
        }
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return 0;
    }
    return 1;
}

int hf_cache_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128 || s[0] == '.' || strstr(s, ".."))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!hf_cache_safe_char(s[i]))
            return 0;
    return 1;
}

/* ---- paths ------------------------------------------------------------ */

int hf_cache_repo_dir(const char *models_dir, const char *id, char *out, size_t outlen)
{
    const char *slash = strchr(id, '/');
    if (!slash)
        return -1;
    int n =
        snprintf(out, outlen, "%s/models--%.*s--%s", models_dir, (int)(slash - id), id, slash + 1);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int hf_cache_link(const char *repo_dir, const char *commit, const char *file, const char *blob,
                  char *err, size_t errlen)
{
    char link[PATH_MAX], target[PATH_MAX];
    if (snprintf(link, sizeof(link), "%s/snapshots/%s/%s", repo_dir, commit, file) >=
        (int)sizeof(link)) {
        snprintf(err, errlen, "path too long for %s", file);
        return -1;
    }
    char *last = strrchr(link, '/');
    *last = '\0';
    if (fs_mkdirs(link, 0755)) {
        snprintf(err, errlen, "cannot create %s: %s", link, strerror(errno));
        return -1;
    }
    *last = '/';
    /* snapshots/<commit>/ is two levels below the repo; each '/' in the
     * file's path adds one more. */
    size_t off = 0;
    int depth = 2;
    for (const char *p = file; *p; p++)
        depth += *p == '/';
    for (int i = 0; i < depth && off + 3 < sizeof(target); i++) {
        memcpy(target + off, "../", 3);
        off += 3;
    }
    if (snprintf(target + off, sizeof(target) - off, "blobs/%s", blob) >=
        (int)(sizeof(target) - off)) {
        snprintf(err, errlen, "path too long for %s", file);
        return -1;
    }
    if (unlink(link) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot replace %s: %s", link, strerror(errno));
        return -1;
    }
    if (symlink(target, link) != 0) {
        snprintf(err, errlen, "cannot link %s: %s", link, strerror(errno));
        return -1;
    }
    return 0;
}

int hf_cache_write_ref(const char *repo_dir, const char *ref, const char *commit)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/refs", repo_dir) >= (int)sizeof(dir) ||
        snprintf(path, sizeof(path), "%s/%s", dir, ref) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -1;
    if (fs_mkdirs(dir, 0755))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = fputs(commit, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int hf_cache_snapshot(const char *models_dir, const char *id, char *out, size_t outlen)
{
    char repo[PATH_MAX], ref[PATH_MAX], commit[256] = "";
    if (hf_cache_repo_dir(models_dir, id, repo, sizeof(repo)) ||
        snprintf(ref, sizeof(ref), "%s/refs/main", repo) >= (int)sizeof(ref))
        return -1;
    FILE *f = fopen(ref, "r");
    if (f) {
        if (!fgets(commit, sizeof(commit), f))
            commit[0] = '\0';
        fclose(f);
        commit[strcspn(commit, "\r\n ")] = '\0';
    }
    if (commit[0] && hf_cache_valid_name(commit)) {
        struct stat st;
        int n = snprintf(out, outlen, "%s/snapshots/%s", repo, commit);
        if (n > 0 && (size_t)n < outlen && stat(out, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
    }
    char snaps[PATH_MAX + 16];
    snprintf(snaps, sizeof(snaps), "%s/snapshots", repo);
    DIR *d = opendir(snaps);
    if (!d)
        return -1;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (found++)
            break;
        int n = snprintf(out, outlen, "%s/%s", snaps, de->d_name);
        if (n < 0 || (size_t)n >= outlen)
            found = 2;
    }
    closedir(d);
    return found == 1 ? 0 : -1;
}

/* ---- description ------------------------------------------------------ */

static int hf_cache_json_int(const cJSON *obj, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e9 ? (int)v->valuedouble
                                                                           : def;
}

long long hf_cache_params_estimate(const cJSON *c)
{
    long long h = hf_cache_json_int(c, "hidden_size", 0);
    long long l = hf_cache_json_int(c, "num_hidden_layers", 0);
    long long nh = hf_cache_json_int(c, "num_attention_heads", 0);
    long long ffn = hf_cache_json_int(c, "intermediate_size", 0);
    long long vocab = hf_cache_json_int(c, "vocab_size", 0);
    if (!h || !l || !nh || !ffn || !vocab)
        return 0;
    long long nkv = hf_cache_json_int(c, "num_key_value_heads", (int)nh);
    long long hd = hf_cache_json_int(c, "head_dim", (int)(h / nh));
    long long attn = h * nh * hd * 2 + h * nkv * hd * 2;
    long long per_layer = attn + 3 * h * ffn + 2 * h;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    long long head = cJSON_IsTrue(tie) ? 0 : vocab * h;
    return vocab * h + l * per_layer + h + head;
}

long long hf_cache_kv_estimate(const cJSON *c, int context, enum engine_kv_dtype kv)
{
    long long l = hf_cache_json_int(c, "num_hidden_layers", 0);
    long long h = hf_cache_json_int(c, "hidden_size", 0);
    long long nh = hf_cache_json_int(c, "num_attention_heads", 0);
    if (!l || !h || !nh)
        return 0;
    long long nkv = hf_cache_json_int(c, "num_key_value_heads", (int)nh);
    long long hd = hf_cache_json_int(c, "head_dim", (int)(h / nh));
    bool quantized = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c, "quantization")) ||
                     cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c, "quantization_config"));
    return 2 * l * nkv * hd * (long long)context *
           (long long)dtype_size(engine_kv_dtype_of(quantized, kv));
}

static cJSON *hf_cache_read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (16 << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n)
        buf[n] = '\0';
    else
        n = -1;
    fclose(f);
    cJSON *j = n >= 0 ? cJSON_ParseWithLength(buf, (size_t)n) : NULL;
    free(buf);
    return j;
}

static cJSON *hf_cache_config_summary(const char *snap)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/config.json", snap);
    cJSON *c = hf_cache_read_json(path);
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(c);
        return cJSON_CreateNull();
    }
    cJSON *s = cJSON_CreateObject();
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    if (cJSON_IsString(a0))
        cJSON_AddStringToObject(s, "architecture", a0->valuestring);
    else
        cJSON_AddNullToObject(s, "architecture");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c, "model_type");
    if (cJSON_IsString(mt))
        cJSON_AddStringToObject(s, "model_type", mt->valuestring);
    else
        cJSON_AddNullToObject(s, "model_type");
    cJSON_AddNumberToObject(s, "params_estimate", (double)hf_cache_params_estimate(c));
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "quantization");
    if (!cJSON_IsObject(q))
        q = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    if (cJSON_IsObject(q) && hf_cache_json_int(q, "bits", 0)) {
        cJSON *qo = cJSON_AddObjectToObject(s, "quantization");
        cJSON_AddNumberToObject(qo, "bits", hf_cache_json_int(q, "bits", 0));
        cJSON_AddNumberToObject(qo, "group_size", hf_cache_json_int(q, "group_size", 0));
    } else {
        cJSON_AddNullToObject(s, "quantization");
    }
    cJSON_AddNumberToObject(s, "context_length",
                            hf_cache_json_int(c, "max_position_embeddings", 0));
    cJSON_Delete(c);
    return s;
}

/* Adds the snapshot's files (following links to blobs) to `files`; returns bytes. */
static long long hf_cache_add_files(const char *dir, const char *prefix, cJSON *files, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long long total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char path[PATH_MAX], name[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
            snprintf(name, sizeof(name), "%s%s", prefix, de->d_name) >= (int)sizeof(name))
            continue;
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            char sub[PATH_MAX];
            if (depth < 8 && snprintf(sub, sizeof(sub), "%s/", name) < (int)sizeof(sub))
                total += hf_cache_add_files(path, sub, files, depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", name);
        cJSON_AddNumberToObject(f, "size", (double)st.st_size);
        cJSON_AddItemToArray(files, f);
        total += st.st_size;
    }
    closedir(d);
    return total;
}

cJSON *hf_cache_describe(const char *models_dir, const char *id)
{
    char snap[PATH_MAX];
    if (!hf_cache_valid_id(id, NULL, 0) || hf_cache_snapshot(models_dir, id, snap, sizeof(snap)))
        return NULL;
    cJSON *m = cJSON_CreateObject();
    if (!m)
        return NULL;
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "path", snap);
    const char *rev = strrchr(snap, '/');
    cJSON_AddStringToObject(m, "revision", rev ? rev + 1 : "");
    cJSON *files = cJSON_CreateArray();
    long long size = hf_cache_add_files(snap, "", files, 0);
    cJSON_AddNumberToObject(m, "size_bytes", (double)size);
    cJSON_AddItemToObject(m, "files", files);
    cJSON_AddItemToObject(m, "config", hf_cache_config_summary(snap));

    struct model_config cfg;
    size_t weights = 0;
    struct registry_error rerr;
    if (registry_inspect(snap, &cfg, &weights, &rerr) == 0) {
        cJSON_AddTrueToObject(m, "supported");
        cJSON_AddNullToObject(m, "unsupported_reason");
    } else {
        cJSON_AddFalseToObject(m, "supported");
        cJSON_AddStringToObject(m, "unsupported_reason", rerr.message);
    }
    return m;
}

cJSON *hf_cache_list(const char *models_dir)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    DIR *d = opendir(models_dir);
    if (!d)
        return arr;
    struct dirent *de;
    while ((de = readdir(d))) {
        /* models--ORG--NAME: org never contains "--" on the hub, so the
         * first separator after the prefix splits org from name. */
        if (strncmp(de->d_name, "models--", 8) != 0)
            continue;
        const char *org = de->d_name + 8;
        const char *sep = strstr(org, "--");
        if (!sep || sep == org || !sep[2])
            continue;
        char id[256];
        if (snprintf(id, sizeof(id), "%.*s/%s", (int)(sep - org), org, sep + 2) >= (int)sizeof(id))
            continue;
        cJSON *m = hf_cache_describe(models_dir, id);
        if (m)
            cJSON_AddItemToArray(arr, m);
    }
    closedir(d);
    return arr;
}

/* ---- deletion --------------------------------------------------------- */

static int hf_cache_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

int hf_cache_delete(const char *models_dir, const char *id, char *err, size_t errlen)
{
    char repo[PATH_MAX];
    if (!hf_cache_valid_id(id, err, errlen))
        return -1;
    if (hf_cache_repo_dir(models_dir, id, repo, sizeof(repo))) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    struct stat st;
    if (lstat(repo, &st) != 0)
        return 1;
    /* FTW_PHYS: symlinks are removed, never followed out of the cache. */
    if (nftw(repo, hf_cache_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        snprintf(err, errlen, "cannot remove %s: %s", repo, strerror(errno));
        return -1;
    }
    return 0;
}
