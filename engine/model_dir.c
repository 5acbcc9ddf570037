#include "model_dir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

enum status model_dir_hub(char *out, size_t outlen, char *err, size_t errlen)
{
    const char *hf_home = getenv("HF_HOME");
    int n;
    if (hf_home && *hf_home) {
        n = snprintf(out, outlen, "%s/hub", hf_home);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return status_fail(err, errlen, ST_ERR_NOT_FOUND,
                               "neither HF_HOME nor HOME is set: no Hugging Face cache");
        n = snprintf(out, outlen, "%s/.cache/huggingface/hub", home);
    }
    if (n < 0 || (size_t)n >= outlen)
        return status_fail(err, errlen, ST_ERR_RANGE, "Hugging Face cache path too long");
    return ST_OK;
}

/* A hub id is "org/name" with exactly one slash and no path tricks. */
static int is_hub_id(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/'))
        return 0;
    if (strstr(s, ".."))
        return 0;
    for (const char *p = s; *p; p++) {
        if (!(*p == '/' || *p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    }
    return 1;
}

enum status model_dir_resolve(const char *name_or_path, char *out, size_t outlen, char *err,
                              size_t errlen)
{
    if (!name_or_path || !*name_or_path || !out || outlen == 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "empty model name");
    if (is_dir(name_or_path)) {
        size_t len = strlen(name_or_path);
        if (len >= outlen)
            return status_fail(err, errlen, ST_ERR_RANGE, "model path too long");
        memcpy(out, name_or_path, len + 1);
        return ST_OK;
    }
    if (!is_hub_id(name_or_path))
        return status_fail(err, errlen, ST_ERR_NOT_FOUND,
                           "model '%s' is neither a directory nor an org/name model id",
                           name_or_path);

    char hub[4096];
    enum status st = model_dir_hub(hub, sizeof(hub), err, errlen);
    if (st != ST_OK)
        return st;
    char repo[4096];
    int n = snprintf(repo, sizeof(repo), "%s/models--", hub);
    for (const char *p = name_or_path; *p && n > 0 && (size_t)n + 3 < sizeof(repo); p++) {
        if (*p == '/') {
            repo[n++] = '-';
            repo[n++] = '-';
        } else {
            repo[n++] = *p;
        }
        repo[n] = '\0';
    }
    if (n <= 0 || (size_t)n + 3 >= sizeof(repo))
        return status_fail(err, errlen, ST_ERR_RANGE, "model path too long");
    if (!is_dir(repo))
        return status_fail(err, errlen, ST_ERR_NOT_FOUND, "model '%s' not found in %s",
                           name_or_path, hub);

    char ref_path[4200];
    snprintf(ref_path, sizeof(ref_path), "%s/refs/main", repo);
    FILE *f = fopen(ref_path, "rb");
    if (!f)
        return status_fail(err, errlen, ST_ERR_IO, "cannot open %s: %s", ref_path, strerror(errno));
    char rev[256];
    size_t got = fread(rev, 1, sizeof(rev) - 1, f);
    fclose(f);
    while (got > 0 && (rev[got - 1] == '\n' || rev[got - 1] == '\r' || rev[got - 1] == ' '))
        got--;
    rev[got] = '\0';
    if (got == 0 || strchr(rev, '/') || strstr(rev, ".."))
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s does not hold a revision", ref_path);

    n = snprintf(out, outlen, "%s/snapshots/%s", repo, rev);
    if (n < 0 || (size_t)n >= outlen)
        return status_fail(err, errlen, ST_ERR_RANGE, "model path too long");
    if (!is_dir(out))
        return status_fail(err, errlen, ST_ERR_NOT_FOUND, "snapshot %s of model '%s' is missing",
                           rev, name_or_path);
    return ST_OK;
}
