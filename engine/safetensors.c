/*
 * safetensors.c - header validation, tensor reads and sharded sets.
 *
 * Nothing from a header is trusted until the whole header has been checked;
 * the parsed form keeps only validated values.  Data is read with pread (or
 * served from a mapping / caller buffer), so reads of distinct tensors do not
 * share a file position.
 */
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct safetensors {
    char *path;
    int fd; /* -1 for a parsed buffer */
    uint64_t file_size;
    uint64_t data_off;                  /* 8 + header length */
    struct safetensors_tensor *tensors; /* (n) in header order */
    size_t n;
    size_t *by_name; /* (n) indices sorted by name */
    char **meta_kv;  /* (2 * n_meta) key, value pairs */
    size_t n_meta;
    const uint8_t *base; /* whole file: mapping or caller buffer; NULL if neither */
    void *map;           /* our mapping, if any */
};

/* ---------------------------------------------------------------------- */
/* header parsing                                                          */

static bool json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double d = j->valuedouble;
    /* 2^53: beyond it doubles no longer hold every integer */
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != (double)(uint64_t)d)
        return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_by_name(const void *a, const void *b, void *ctx)
{
    const struct safetensors *sort_ctx = ctx;
    return strcmp(sort_ctx->tensors[*(const size_t *)a].name,
                  sort_ctx->tensors[*(const size_t *)b].name);
}

static int cmp_by_begin(const void *a, const void *b, void *ctx)
{
    const struct safetensors *sort_ctx = ctx;
    const struct safetensors_tensor *ta = &sort_ctx->tensors[*(const size_t *)a];
    const struct safetensors_tensor *tb = &sort_ctx->tensors[*(const size_t *)b];
    if (ta->begin != tb->begin)
        return ta->begin < tb->begin ? -1 : 1;
    return ta->end < tb->end ? -1 : ta->end > tb->end;
}

static enum status parse_tensor(struct safetensors *st, const cJSON *item,
                                struct safetensors_tensor *t, uint64_t data_size, char *err,
                                size_t errlen)
{
    const char *p = st->path;
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: tensor '%s': entry is not an object", p,
                           name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: tensor '%s': needs string dtype, array shape and array "
                           "data_offsets",
                           p, name);
    if (dtype_from_name(jd->valuestring, strlen(jd->valuestring), &t->dtype) != 0)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'",
                           p, name, jd->valuestring);
    int nd = cJSON_GetArraySize(js);
    if (nd > SAFETENSORS_MAX_DIMS)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "%s: tensor '%s': %d dimensions (at most %d)", p, name, nd,
                           SAFETENSORS_MAX_DIMS);
    t->ndim = nd;
    uint64_t nelem = 1;
    bool overflow = false;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, js)
    {
        uint64_t v;
        if (!json_uint(d, &v))
            return status_fail(err, errlen, ST_ERR_FORMAT,
                               "%s: tensor '%s': shape[%d] is not a non-negative integer", p, name,
                               i);
        t->shape[i++] = (int64_t)v;
        if (v != 0 && nelem > UINT64_MAX / v)
            overflow = true;
        else
            nelem *= v;
    }
    if (cJSON_GetArraySize(jo) != 2)
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets must have 2 entries", p, name);
    if (!json_uint(cJSON_GetArrayItem(jo, 0), &t->begin) ||
        !json_uint(cJSON_GetArrayItem(jo, 1), &t->end))
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets are not non-negative integers", p, name);
    if (t->begin > t->end)
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets begin %llu > end %llu", p, name,
                           (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_size)
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets end %llu is past the data area (%llu "
                           "bytes)",
                           p, name, (unsigned long long)t->end, (unsigned long long)data_size);
    size_t es = dtype_size(t->dtype);
    if (overflow || nelem > UINT64_MAX / es || nelem * es != t->end - t->begin)
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: tensor '%s': shape x %s size does not match its %llu data bytes", p,
                           name, dtype_name(t->dtype), (unsigned long long)(t->end - t->begin));
    t->nelem = nelem;
    return ST_OK;
}

static enum status parse_metadata(struct safetensors *st, const cJSON *meta, char *err,
                                  size_t errlen)
{
    if (!cJSON_IsObject(meta))
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: __metadata__ is not an object",
                           st->path);
    size_t n = (size_t)cJSON_GetArraySize(meta);
    st->meta_kv = calloc(2 * n + 1, sizeof(char *));
    if (!st->meta_kv)
        return status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory", st->path);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta)
    {
        if (!cJSON_IsString(kv))
            return status_fail(err, errlen, ST_ERR_FORMAT,
                               "%s: __metadata__ value '%s' is not a string", st->path, kv->string);
        st->meta_kv[2 * st->n_meta] = strdup(kv->string);
        st->meta_kv[2 * st->n_meta + 1] = strdup(kv->valuestring);
        st->n_meta++;
        if (!st->meta_kv[2 * st->n_meta - 2] || !st->meta_kv[2 * st->n_meta - 1])
            return status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory", st->path);
    }
    return ST_OK;
}

/* Validates the JSON header `hdr` (hlen bytes) for a file of file_size bytes. */
static enum status parse_header(struct safetensors *st, const char *hdr, size_t hlen, char *err,
                                size_t errlen)
{
    uint64_t data_size = st->file_size - st->data_off;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root)
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: header is not valid JSON", st->path);
    enum status rc = ST_OK;
    for (const char *q = end; q && q < hdr + hlen; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != '\0') {
            rc = status_fail(err, errlen, ST_ERR_FORMAT,
                             "%s: header has trailing bytes after the JSON object", st->path);
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = status_fail(err, errlen, ST_ERR_FORMAT, "%s: header is not a JSON object", st->path);
        goto out;
    }
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (strcmp(item->string, "__metadata__") != 0)
            n++;
    }
    st->tensors = calloc(n ? n : 1, sizeof(*st->tensors));
    st->by_name = calloc(n ? n : 1, sizeof(size_t));
    size_t *by_begin = calloc(n ? n : 1, sizeof(size_t));
    if (!st->tensors || !st->by_name || !by_begin) {
        free(by_begin);
        rc = status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory", st->path);
        goto out;
    }
    bool seen_meta = false;
    cJSON_ArrayForEach(item, root)
    {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (seen_meta) {
                rc =
                    status_fail(err, errlen, ST_ERR_FORMAT, "%s: duplicate __metadata__", st->path);
                break;
            }
            seen_meta = true;
            rc = parse_metadata(st, item, err, errlen);
            if (rc != ST_OK)
                break;
            continue;
        }
        struct safetensors_tensor *t = &st->tensors[st->n];
        rc = parse_tensor(st, item, t, data_size, err, errlen);
        if (rc != ST_OK)
            break;
        t->name = strdup(item->string);
        if (!t->name) {
            rc = status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory", st->path);
            break;
        }
        st->by_name[st->n] = st->n;
        by_begin[st->n] = st->n;
        st->n++;
    }
    if (rc == ST_OK) {
        qsort_r(st->by_name, st->n, sizeof(size_t), cmp_by_name, st);
        qsort_r(by_begin, st->n, sizeof(size_t), cmp_by_begin, st);
        for (size_t i = 1; i < st->n && rc == ST_OK; i++) {
            const struct safetensors_tensor *a = &st->tensors[st->by_name[i - 1]];
            const struct safetensors_tensor *b = &st->tensors[st->by_name[i]];
            if (strcmp(a->name, b->name) == 0)
                rc = status_fail(err, errlen, ST_ERR_FORMAT, "%s: tensor '%s' appears twice",
                                 st->path, a->name);
        }
        for (size_t i = 1; i < st->n && rc == ST_OK; i++) {
            const struct safetensors_tensor *a = &st->tensors[by_begin[i - 1]];
            const struct safetensors_tensor *b = &st->tensors[by_begin[i]];
            /* empty tensors occupy no bytes, so they overlap nothing */
            if (a->end > b->begin && a->begin != a->end && b->begin != b->end)
                rc = status_fail(err, errlen, ST_ERR_FORMAT,
                                 "%s: tensors '%s' and '%s' overlap in the data area", st->path,
                                 a->name, b->name);
        }
    }
    free(by_begin);
out:
    cJSON_Delete(root);
    return rc;
}

/* Checks the 8-byte length prefix of a file of `size` bytes. */
static enum status check_prefix(const char *path, const uint8_t pre[8], uint64_t size,
                                uint64_t *hlen, char *err, size_t errlen)
{
    if (size < 8)
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: file is %llu bytes, too short for a safetensors header", path,
                           (unsigned long long)size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | pre[i];
    if (n < 2)
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: header length %llu is too small", path,
                           (unsigned long long)n);
    if (n > SAFETENSORS_MAX_HEADER)
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: header length %llu exceeds the %u-byte limit", path,
                           (unsigned long long)n, SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "%s: header length %llu runs past the end of the %llu-byte file", path,
                           (unsigned long long)n, (unsigned long long)size);
    *hlen = n;
    return ST_OK;
}

static struct safetensors *st_new(const char *path)
{
    struct safetensors *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->fd = -1;
    st->path = strdup(path ? path : "(buffer)");
    if (!st->path) {
        free(st);
        return NULL;
    }
    return st;
}

static bool read_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return true;
}

enum status safetensors_open(const char *path, struct safetensors **out, char *err, size_t errlen)
{
    *out = NULL;
    struct safetensors *st = st_new(path);
    if (!st)
        return status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory", path);
    enum status rc;
    char *hdr = NULL;
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (st->fd < 0 || fstat(st->fd, &sb) != 0) {
        rc = status_fail(err, errlen, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = status_fail(err, errlen, ST_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    st->file_size = (uint64_t)sb.st_size;
    uint8_t pre[8] = {0};
    if (st->file_size >= 8 && !read_full(st->fd, pre, 8, 0)) {
        rc = status_fail(err, errlen, ST_ERR_IO, "%s: cannot read header length", path);
        goto fail;
    }
    uint64_t hlen;
    rc = check_prefix(path, pre, st->file_size, &hlen, err, errlen);
    if (rc != ST_OK)
        goto fail;
    st->data_off = 8 + hlen;
    hdr = malloc((size_t)hlen);
    if (!hdr) {
        rc = status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory for header", path);
        goto fail;
    }
    if (!read_full(st->fd, hdr, (size_t)hlen, 8)) {
        rc = status_fail(err, errlen, ST_ERR_IO, "%s: cannot read the %llu-byte header", path,
                         (unsigned long long)hlen);
        goto fail;
    }
    rc = parse_header(st, hdr, (size_t)hlen, err, errlen);
    if (rc != ST_OK)
        goto fail;
    free(hdr);
    *out = st;
    return ST_OK;
fail:
    free(hdr);
    safetensors_close(st);
    return rc;
}

enum status safetensors_parse(const void *buf, size_t len, const char *label,
                              struct safetensors **out, char *err, size_t errlen)
{
    *out = NULL;
    struct safetensors *st = st_new(label);
    if (!st)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    st->file_size = len;
    uint64_t hlen;
    enum status rc = check_prefix(st->path, buf, len, &hlen, err, errlen);
    if (rc == ST_OK) {
        st->data_off = 8 + hlen;
        rc = parse_header(st, (const char *)buf + 8, (size_t)hlen, err, errlen);
    }
    if (rc != ST_OK) {
        safetensors_close(st);
        return rc;
    }
    st->base = buf;
    *out = st;
    return ST_OK;
}

void safetensors_close(struct safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, (size_t)st->file_size);
    if (st->fd >= 0)
        close(st->fd);
    for (size_t i = 0; i < st->n; i++)
        free((char *)st->tensors[i].name);
    for (size_t i = 0; i < 2 * st->n_meta; i++)
        free(st->meta_kv[i]);
    free(st->meta_kv);
    free(st->tensors);
    free(st->by_name);
    free(st->path);
    free(st);
}

const char *safetensors_path(const struct safetensors *st)
{
    return st->path;
}

size_t safetensors_count(const struct safetensors *st)
{
    return st->n;
}

const struct safetensors_tensor *safetensors_at(const struct safetensors *st, size_t i)
{
    return i < st->n ? &st->tensors[i] : NULL;
}

const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct safetensors_tensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *safetensors_metadata(const struct safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_kv[2 * i], key) == 0)
            return st->meta_kv[2 * i + 1];
    return NULL;
}

enum status safetensors_read(struct safetensors *st, const struct safetensors_tensor *t, void *dst,
                             char *err, size_t errlen)
{
    size_t len = (size_t)(t->end - t->begin);
    if (len == 0)
        return ST_OK;
    if (st->base) {
        memcpy(dst, st->base + st->data_off + t->begin, len);
        return ST_OK;
    }
    if (!read_full(st->fd, dst, len, st->data_off + t->begin))
        return status_fail(err, errlen, ST_ERR_IO, "%s: tensor '%s': short read (file changed?)",
                           st->path, t->name);
    return ST_OK;
}

enum status safetensors_map(struct safetensors *st, char *err, size_t errlen)
{
    if (st->base)
        return ST_OK;
    void *p = mmap(NULL, (size_t)st->file_size, PROT_READ, MAP_PRIVATE, st->fd, 0);
    if (p == MAP_FAILED)
        return status_fail(err, errlen, ST_ERR_IO, "%s: mmap failed: %s", st->path,
                           strerror(errno));
    st->map = p;
    st->base = p;
    return ST_OK;
}

const void *safetensors_data(const struct safetensors *st, const struct safetensors_tensor *t)
{
    if (!st->base)
        return NULL;
    return st->base + st->data_off + t->begin;
}

/* ---------------------------------------------------------------------- */
/* sets of files                                                           */

struct set_entry {
    const struct safetensors_tensor *t;
    size_t file;
};

struct safetensors_set {
    struct safetensors **files; /* (n_files) */
    size_t n_files;
    struct set_entry *entries; /* (n_entries) sorted by name */
    size_t n_entries;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct set_entry *)a)->t->name, ((const struct set_entry *)b)->t->name);
}

static char *read_text(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && (size_t)n <= max && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)n + 1);
            if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            }
            if (buf) {
                buf[n] = '\0';
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

static enum status set_add_file(struct safetensors_set *set, const char *dir, const char *fname,
                                char *err, size_t errlen)
{
    for (size_t i = 0; i < set->n_files; i++) {
        const char *p = safetensors_path(set->files[i]);
        size_t pl = strlen(p), fl = strlen(fname);
        if (pl > fl && p[pl - fl - 1] == '/' && strcmp(p + pl - fl, fname) == 0)
            return ST_OK;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, fname) >= sizeof(path))
        return status_fail(err, errlen, ST_ERR_RANGE, "%s/%s: path too long", dir, fname);
    struct safetensors **nf = realloc(set->files, (set->n_files + 1) * sizeof(*nf));
    if (!nf)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    set->files = nf;
    enum status rc = safetensors_open(path, &set->files[set->n_files], err, errlen);
    if (rc == ST_OK)
        set->n_files++;
    return rc;
}

static enum status set_open_index(struct safetensors_set *set, const char *dir, const char *ipath,
                                  cJSON **map_out, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = read_text(ipath, 64u << 20, &len);
    if (!text)
        return status_fail(err, errlen, ST_ERR_IO, "%s: cannot read", ipath);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root)
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: not valid JSON", ipath);
    *map_out = root;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm))
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: no weight_map object", ipath);
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        if (!cJSON_IsString(e))
            return status_fail(err, errlen, ST_ERR_FORMAT,
                               "%s: weight_map entry '%s' is not a file name", ipath, e->string);
        const char *f = e->valuestring;
        /* the index is untrusted: keep every shard inside the model directory */
        if (!*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0)
            return status_fail(err, errlen, ST_ERR_FORMAT,
                               "%s: weight_map names an invalid shard file '%s'", ipath, f);
        enum status rc = set_add_file(set, dir, f, err, errlen);
        if (rc != ST_OK)
            return rc;
    }
    return ST_OK;
}

enum status safetensors_set_open(const char *dir, struct safetensors_set **out, char *err,
                                 size_t errlen)
{
    *out = NULL;
    struct safetensors_set *set = calloc(1, sizeof(*set));
    if (!set)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    cJSON *index = NULL;
    enum status rc;
    char ipath[4096];
    snprintf(ipath, sizeof(ipath), "%s/model.safetensors.index.json", dir);
    struct stat sb;
    if (stat(ipath, &sb) == 0) {
        rc = set_open_index(set, dir, ipath, &index, err, errlen);
    } else {
        char spath[4096];
        snprintf(spath, sizeof(spath), "%s/model.safetensors", dir);
        if (stat(spath, &sb) != 0)
            rc = status_fail(err, errlen, ST_ERR_NOT_FOUND,
                             "%s: no model.safetensors or model.safetensors.index.json", dir);
        else
            rc = set_add_file(set, dir, "model.safetensors", err, errlen);
    }
    if (rc != ST_OK)
        goto fail;
    if (set->n_files == 0) {
        rc = status_fail(err, errlen, ST_ERR_NOT_FOUND, "%s: the weight index lists no files",
                         ipath);
        goto fail;
    }
    size_t total = 0;
    for (size_t i = 0; i < set->n_files; i++)
        total += safetensors_count(set->files[i]);
    set->entries = calloc(total ? total : 1, sizeof(*set->entries));
    if (!set->entries) {
        rc = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < set->n_files; i++)
        for (size_t j = 0; j < safetensors_count(set->files[i]); j++)
            set->entries[set->n_entries++] =
                (struct set_entry){safetensors_at(set->files[i], j), i};
    qsort(set->entries, set->n_entries, sizeof(*set->entries), cmp_entry);
    for (size_t i = 1; i < set->n_entries; i++) {
        if (strcmp(set->entries[i - 1].t->name, set->entries[i].t->name) == 0) {
            rc = status_fail(err, errlen, ST_ERR_FORMAT, "tensor '%s' is in both %s and %s",
                             set->entries[i].t->name,
                             safetensors_path(set->files[set->entries[i - 1].file]),
                             safetensors_path(set->files[set->entries[i].file]));
            goto fail;
        }
    }
    if (index) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(index, "weight_map"))
        {
            struct safetensors *f = NULL;
            const struct safetensors_tensor *t = safetensors_set_find(set, e->string, &f);
            const char *fp = f ? safetensors_path(f) : "";
            size_t fl = strlen(fp), nl = strlen(e->valuestring);
            if (!t || fl <= nl || fp[fl - nl - 1] != '/' ||
                strcmp(fp + fl - nl, e->valuestring) != 0) {
                rc = status_fail(err, errlen, ST_ERR_FORMAT,
                                 "%s: tensor '%s' is mapped to %s but is not in that file", ipath,
                                 e->string, e->valuestring);
                goto fail;
            }
        }
    }
    cJSON_Delete(index);
    *out = set;
    return ST_OK;
fail:
    cJSON_Delete(index);
    safetensors_set_close(set);
    return rc;
}

void safetensors_set_close(struct safetensors_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n_files; i++)
        safetensors_close(set->files[i]);
    free(set->files);
    free(set->entries);
    free(set);
}

const struct safetensors_tensor *safetensors_set_find(const struct safetensors_set *set,
                                                      const char *name, struct safetensors **file)
{
    size_t lo = 0, hi = set->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, set->entries[mid].t->name);
        if (c == 0) {
            if (file)
                *file = set->files[set->entries[mid].file];
            return set->entries[mid].t;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t safetensors_set_n_files(const struct safetensors_set *set)
{
    return set->n_files;
}

struct safetensors *safetensors_set_file(const struct safetensors_set *set, size_t i)
{
    return i < set->n_files ? set->files[i] : NULL;
}
