/*
 * model_registry.c - model name resolution and the list of usable models.
 */
#include "model_registry.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "profile.h"
#include "settings.h"

/* Real config.json files are a few KB; anything this big is not one. */
#define REGISTRY_MAX_CONFIG (4u << 20)

static int registry_fail(struct registry_error *err, int status, const char *code, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));

static int registry_fail(struct registry_error *err, int status, const char *code, const char *fmt,
                         ...)
{
    err->http_status = status;
    snprintf(err->code, sizeof(err->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int registry_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- inspecting a directory ------------------------------------------- */

/* Reads `path` into a NUL-terminated malloc'd buffer; NULL with errno set. */
static char *registry_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 &&
        (unsigned long long)st.st_size <= REGISTRY_MAX_CONFIG) {
        buf = malloc((size_t)st.st_size + 1);
        if (buf && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
            buf[st.st_size] = '\0';
            *len = (size_t)st.st_size;
        } else {
            free(buf);
            buf = NULL;
            errno = EIO;
        }
    } else {
        errno = EFBIG;
    }
    fclose(f);
    return buf;
}

static int registry_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Sums the sizes of the *.safetensors files (symlinks into blobs followed). */
static size_t registry_weight_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t total = 0;
    struct dirent *de;
    char path[4096 + 256];
    while ((de = readdir(d))) {
        if (!registry_has_suffix(de->d_name, ".safetensors"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (size_t)st.st_size;
    }
    closedir(d);
    return total;
}

int registry_inspect(const char *dir, struct model_config *cfg, size_t *weight_bytes,
                     struct registry_error *err)
{
    char path[4096 + 32];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    size_t len = 0;
    char *json = registry_read_file(path, &len);
    if (!json)
        return registry_fail(err, 422, "unsupported_model",
                             "%s is not a supported model: cannot read config.json (%s)", dir,
                             strerror(errno));
    char msg[512];
    enum status st = model_config_parse(json, len, cfg, msg, sizeof(msg));
    free(json);
    if (st != ST_OK)
        return registry_fail(err, 422, "unsupported_model", "%s is not a supported model: %s", dir,
                             msg);
    *weight_bytes = registry_weight_bytes(dir);
    if (!*weight_bytes)
        return registry_fail(err, 422, "unsupported_model",
                             "%s is not a supported model: no *.safetensors weights", dir);
    return 0;
}

/* ---- Hugging Face cache ----------------------------------------------- */

/* Hub ids: letters, digits, '-', '_', '.', never a bare "." or "..". */
static int registry_hub_part_ok(const char *s, size_t n)
{
    if (n == 0 || n > 96 || (n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int registry_is_hub_id(const char *name)
{
    const char *slash = strchr(name, '/');
    return slash && !strchr(slash + 1, '/') && registry_hub_part_ok(name, (size_t)(slash - name)) &&
           registry_hub_part_ok(slash + 1, strlen(slash + 1));
}

/*
 * The snapshot directory of cache folder `repo` (models--org--name): the
 * revision named by refs/main, else the only snapshot (caches copied by
 * hand often lack refs).  Returns 0 or -1.
 */
static int registry_snapshot(const char *repo, char *out, size_t outlen)
{
    char path[4096 + 64];
    snprintf(path, sizeof(path), "%s/refs/main", repo);
    FILE *f = fopen(path, "r");
    if (f) {
        char rev[128] = "";
        int ok = fgets(rev, sizeof(rev), f) != NULL;
        fclose(f);
        rev[strcspn(rev, "\r\n")] = '\0';
        if (ok && registry_hub_part_ok(rev, strlen(rev)) &&
            snprintf(out, outlen, "%s/snapshots/%s", repo, rev) < (int)outlen &&
            registry_is_dir(out))
            return 0;
    }
    snprintf(path, sizeof(path), "%s/snapshots", repo);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (++found > 1)
            break;
        if (snprintf(out, outlen, "%s/%s", path, de->d_name) >= (int)outlen)
            found = 2;
    }
    closedir(d);
    return found == 1 && registry_is_dir(out) ? 0 : -1;
}

static int registry_hub_dir(const char *models_dir, const char *id, char *out, size_t outlen)
{
    const char *slash = strchr(id, '/');
    char repo[4096 + 256];
    if (snprintf(repo, sizeof(repo), "%s/models--%.*s--%s", models_dir, (int)(slash - id), id,
                 slash + 1) >= (int)sizeof(repo))
        return -1;
    return registry_snapshot(repo, out, outlen);
}

/* ---- resolution ------------------------------------------------------- */

static cJSON *registry_find_profile(struct db *db, const char *name)
{
    cJSON *list = profile_list(db);
    cJSON *found = NULL, *p;
    cJSON_ArrayForEach(p, list)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) {
            found = cJSON_DetachItemViaPointer(list, p);
            break;
        }
    }
    cJSON_Delete(list);
    return found;
}

/* A state-dir folder name: one path segment, no hidden or dot names. */
static int registry_is_local_name(const char *name)
{
    return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 256;
}

/* Canonical form of an existing directory, so that one model reached by
 * different spellings (trailing slash, "..", symlinks) is one pool entry. */
static void registry_canonical(char *dir, size_t len)
{
    char buf[PATH_MAX];
    if (realpath(dir, buf) && strlen(buf) < len)
        memcpy(dir, buf, strlen(buf) + 1);
}

static int registry_locate(struct db *db, const struct config *cfg, const char *name, char *dir,
                           size_t dirlen, enum registry_kind *kind)
{
    if (name[0] == '/') {
        *kind = REGISTRY_PATH;
        return snprintf(dir, dirlen, "%s", name) < (int)dirlen && registry_is_dir(dir) ? 0 : -1;
    }
    if (registry_is_hub_id(name)) {
        char models_dir[4096];
        settings_get_text(db, cfg, "models_dir", models_dir, sizeof(models_dir));
        *kind = REGISTRY_HF;
        return registry_hub_dir(models_dir, name, dir, dirlen);
    }
    if (registry_is_local_name(name)) {
        *kind = REGISTRY_STATE_DIR;
        return snprintf(dir, dirlen, "%s/models/%s", cfg->state_dir, name) < (int)dirlen &&
                       registry_is_dir(dir)
                   ? 0
                   : -1;
    }
    return -1;
}

/* Resolves a name that is not a profile; 0 with dir and kind, or -1 (404). */
static int registry_resolve_path(struct db *db, const struct config *cfg, const char *name,
                                 char *dir, size_t dirlen, enum registry_kind *kind)
{
    if (registry_locate(db, cfg, name, dir, dirlen, kind))
        return -1;
    registry_canonical(dir, dirlen);
    return 0;
}

int registry_resolve(struct db *db, const struct config *cfg, const char *name,
                     struct registry_model *out, struct registry_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!name[0] || strlen(name) >= sizeof(out->name))
        return registry_fail(err, 404, "model_not_found",
                             "The model '%.200s' does not exist; GET /v1/models lists the "
                             "available models",
                             name);
    snprintf(out->name, sizeof(out->name), "%s", name);
    const char *target = name;
    out->profile = registry_find_profile(db, name);
    if (out->profile) {
        out->kind = REGISTRY_PROFILE;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(out->profile, "id");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(out->profile, "model_path");
        out->profile_id = cJSON_IsNumber(id) ? (long long)id->valuedouble : 0;
        target = cJSON_IsString(path) ? path->valuestring : "";
    }
    enum registry_kind kind;
    if (registry_resolve_path(db, cfg, target, out->dir, sizeof(out->dir), &kind)) {
        if (out->profile) {
            registry_fail(err, 404, "model_not_found",
                          "The model '%.400s' of profile '%.200s' was not found (not a "
                          "downloaded Hugging Face id, a folder in %.400s/models or an "
                          "absolute directory)",
                          target, name, cfg->state_dir);
            registry_model_clear(out);
            return -1;
        }
        registry_model_clear(out);
        return registry_fail(err, 404, "model_not_found",
                             "The model '%.200s' does not exist; GET /v1/models lists the "
                             "available models",
                             name);
    }
    if (!out->profile)
        out->kind = kind;
    if (registry_inspect(out->dir, &out->cfg, &out->weight_bytes, err)) {
        registry_model_clear(out);
        return -1;
    }
    return 0;
}

void registry_model_clear(struct registry_model *m)
{
    cJSON_Delete(m->profile);
    m->profile = NULL;
}

/* ---- listing ---------------------------------------------------------- */

static cJSON *registry_entry(cJSON *arr, const char *id, const char *kind, const char *dir,
                             double created, const char *owned_by)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "kind", kind);
    if (dir)
        cJSON_AddStringToObject(o, "dir", dir);
    cJSON_AddNumberToObject(o, "created", created);
    cJSON_AddStringToObject(o, "owned_by", owned_by);
    return o;
}

static void registry_add_facts(cJSON *o, const struct model_config *cfg, size_t weight_bytes)
{
    if (!cJSON_GetObjectItemCaseSensitive(o, "context_length"))
        cJSON_AddNumberToObject(o, "context_length", cfg->max_position_embeddings);
    cJSON_AddNumberToObject(o, "size_bytes", (double)weight_bytes);
}

static double registry_mtime(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_mtime : 0;
}

/* "2025-01-02T03:04:05Z" to seconds since the epoch; 0 when malformed. */
static double registry_parse_time(const char *s)
{
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm);
}

static void registry_list_profiles(struct db *db, const struct config *cfg, cJSON *arr)
{
    cJSON *list = profile_list(db);
    cJSON *p;
    cJSON_ArrayForEach(p, list)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(p, "model_path");
        const cJSON *created = cJSON_GetObjectItemCaseSensitive(p, "created_at");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(p, "context_length");
        if (!cJSON_IsString(name) || !cJSON_IsString(path))
            continue;
        char dir[4096];
        enum registry_kind kind;
        struct model_config mc;
        size_t bytes;
        struct registry_error err;
        int usable = !registry_resolve_path(db, cfg, path->valuestring, dir, sizeof(dir), &kind) &&
                     !registry_inspect(dir, &mc, &bytes, &err);
        cJSON *o = registry_entry(
            arr, name->valuestring, "profile", usable ? dir : NULL,
            registry_parse_time(cJSON_IsString(created) ? created->valuestring : NULL), "profile");
        if (!o || !usable)
            continue;
        if (cJSON_IsNumber(ctx) && ctx->valuedouble < mc.max_position_embeddings)
            cJSON_AddNumberToObject(o, "context_length", ctx->valuedouble);
        registry_add_facts(o, &mc, bytes);
    }
    cJSON_Delete(list);
}

static void registry_list_hub(struct db *db, const struct config *cfg, cJSON *arr)
{
    char models_dir[4096];
    settings_get_text(db, cfg, "models_dir", models_dir, sizeof(models_dir));
    DIR *d = opendir(models_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        /* models--org--name; hub org names cannot contain "--", so the
         * first one separates org from name. */
        if (strncmp(de->d_name, "models--", 8))
            continue;
        const char *org = de->d_name + 8, *sep = strstr(org, "--");
        if (!sep)
            continue;
        char id[512];
        if (snprintf(id, sizeof(id), "%.*s/%s", (int)(sep - org), org, sep + 2) >=
                (int)sizeof(id) ||
            !registry_is_hub_id(id))
            continue;
        char repo[4096 + 256], dir[4096];
        snprintf(repo, sizeof(repo), "%s/%s", models_dir, de->d_name);
        struct model_config mc;
        size_t bytes;
        struct registry_error err;
        if (registry_snapshot(repo, dir, sizeof(dir)) || registry_inspect(dir, &mc, &bytes, &err))
            continue;
        registry_canonical(dir, sizeof(dir));
        char owner[128];
        snprintf(owner, sizeof(owner), "%.*s", (int)(sep - org), org);
        cJSON *o = registry_entry(arr, id, "hf", dir, registry_mtime(dir), owner);
        if (o)
            registry_add_facts(o, &mc, bytes);
    }
    closedir(d);
}

static void registry_list_local(const struct config *cfg, cJSON *arr)
{
    char root[4096 + 16];
    snprintf(root, sizeof(root), "%s/models", cfg->state_dir);
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!registry_is_local_name(de->d_name))
            continue;
        char dir[4096 + 272];
        snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
        struct model_config mc;
        size_t bytes;
        struct registry_error err;
        if (!registry_is_dir(dir) || registry_inspect(dir, &mc, &bytes, &err))
            continue;
        registry_canonical(dir, sizeof(dir));
        cJSON *o = registry_entry(arr, de->d_name, "local", dir, registry_mtime(dir), "local");
        if (o)
            registry_add_facts(o, &mc, bytes);
    }
    closedir(d);
}

cJSON *registry_list(struct db *db, const struct config *cfg)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    registry_list_profiles(db, cfg, arr);
    registry_list_hub(db, cfg, arr);
    registry_list_local(cfg, arr);
    return arr;
}
