/*
 * safetensors_write.c - streaming, sharding safetensors writer (see
 * safetensors_write.h).
 */
#include "safetensors_write.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAFETENSORS_WRITE_MAX_DIMS 8
/* Big stdio buffers: tensors arrive in chunks of any size. */
#define SAFETENSORS_WRITE_BUF (4u << 20)

struct stw_tensor {
    char *name;
    enum dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_WRITE_MAX_DIMS];
    uint64_t nbytes;
    uint64_t offset; /* inside its shard's data area, 8-aligned */
    size_t shard;
    void *user;
};

struct stw_shard {
    char *header; /* the JSON, space padded */
    size_t header_len;
};

struct safetensors_writer {
    char *dir;
    char *format;
    uint64_t shard_bytes;
    bool always_index;
    bool begun;

    struct stw_tensor *tensors; /* (n_tensors), sorted by name after begin */
    size_t n_tensors, cap_tensors;
    struct stw_shard *shards; /* (n_shards) */
    size_t n_shards;

    size_t cur;        /* tensor being written */
    uint64_t cur_done; /* bytes of it written so far */
    FILE *fp;          /* shard of tensors[cur], NULL before the first */
    size_t fp_shard;
    uint64_t fp_pos; /* bytes written into the open shard's data area */
    char *iobuf;
};

/* ---- declaration ---- */

enum status safetensors_writer_new(const char *dir, const char *format, uint64_t shard_bytes,
                                   bool always_index, struct safetensors_writer **out, char *err,
                                   size_t errlen)
{
    *out = NULL;
    if (!dir || !*dir || !format || !*format)
        return status_fail(err, errlen, ST_ERR_INVALID, "safetensors writer: empty dir or format");
    struct safetensors_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    w->dir = strdup(dir);
    w->format = strdup(format);
    if (!w->dir || !w->format) {
        safetensors_writer_free(w);
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    }
    w->shard_bytes = shard_bytes;
    w->always_index = always_index;
    *out = w;
    return ST_OK;
}

enum status safetensors_writer_add(struct safetensors_writer *w, const char *name, enum dtype dt,
                                   int ndim, const int64_t *shape, void *user, char *err,
                                   size_t errlen)
{
    if (w->begun)
        return status_fail(err, errlen, ST_ERR_INVALID, "tensor %s declared after begin",
                           name ? name : "(null)");
    if (!name || !*name || !strcmp(name, "__metadata__"))
        return status_fail(err, errlen, ST_ERR_INVALID, "invalid tensor name");
    size_t esize = dtype_size(dt);
    if (esize == 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "tensor %s: unknown dtype", name);
    if (ndim < 0 || ndim > SAFETENSORS_WRITE_MAX_DIMS)
        return status_fail(err, errlen, ST_ERR_INVALID, "tensor %s: %d dimensions", name, ndim);
    uint64_t nbytes = esize;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return status_fail(err, errlen, ST_ERR_INVALID, "tensor %s: negative dimension", name);
        if (shape[i] != 0 && nbytes > UINT64_MAX / 16 / (uint64_t)shape[i])
            return status_fail(err, errlen, ST_ERR_RANGE, "tensor %s is too large", name);
        nbytes *= (uint64_t)shape[i];
    }
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        struct stw_tensor *nt = realloc(w->tensors, cap * sizeof(*nt));
        if (!nt)
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    struct stw_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    t->dtype = dt;
    t->ndim = ndim;
    if (ndim > 0)
        memcpy(t->shape, shape, (size_t)ndim * sizeof(int64_t));
    t->nbytes = nbytes;
    t->user = user;
    w->n_tensors++;
    return ST_OK;
}

/* ---- layout ---- */

static int stw_cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct stw_tensor *)a)->name, ((const struct stw_tensor *)b)->name);
}

static uint64_t stw_align8(uint64_t v)
{
    return (v + 7) & ~(uint64_t)7;
}

/* Builds shard s's header; the 8-byte length prefix plus the JSON is a
 * multiple of 8, so the data area starts aligned. */
static enum status stw_build_header(struct safetensors_writer *w, size_t s, char *err,
                                    size_t errlen)
{
    struct strbuf b = {0};
    strbuf_puts(&b, "{\"__metadata__\":{\"format\":");
    strbuf_put_json_string(&b, w->format);
    strbuf_puts(&b, "}");
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct stw_tensor *t = &w->tensors[i];
        if (t->shard != s)
            continue;
        strbuf_puts(&b, ",");
        strbuf_put_json_string(&b, t->name);
        strbuf_puts(&b, ":{\"dtype\":\"");
        strbuf_puts(&b, dtype_name(t->dtype));
        strbuf_puts(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            strbuf_printf(&b, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
        strbuf_printf(&b, "],\"data_offsets\":[%llu", (unsigned long long)t->offset);
        strbuf_printf(&b, ",%llu]}", (unsigned long long)(t->offset + t->nbytes));
    }
    strbuf_puts(&b, "}");
    while (!b.oom && (b.len % 8) != 0)
        strbuf_put(&b, " ", 1);
    if (b.oom) {
        strbuf_free(&b);
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    }
    w->shards[s].header = b.data;
    w->shards[s].header_len = b.len;
    return ST_OK;
}

static void stw_shard_name(const struct safetensors_writer *w, size_t s, char *out, size_t outlen)
{
    if (w->n_shards == 1)
        snprintf(out, outlen, "model.safetensors");
    else
        snprintf(out, outlen, "model-%05zu-of-%05zu.safetensors", s + 1, w->n_shards);
}

static enum status stw_open_shard(struct safetensors_writer *w, size_t s, char *err, size_t errlen)
{
    char name[64], path[4096];
    stw_shard_name(w, s, name, sizeof(name));
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", w->dir, name) >= sizeof(path))
        return status_fail(err, errlen, ST_ERR_RANGE, "path too long: %s/%s", w->dir, name);
    w->fp = fopen(path, "wb");
    if (!w->fp)
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", path, strerror(errno));
    setvbuf(w->fp, w->iobuf, _IOFBF, SAFETENSORS_WRITE_BUF);
    w->fp_shard = s;
    w->fp_pos = 0;
    const struct stw_shard *sh = &w->shards[s];
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)sh->header_len >> (8 * i));
    if (fwrite(len, 1, 8, w->fp) != 8 ||
        fwrite(sh->header, 1, sh->header_len, w->fp) != sh->header_len)
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", path, strerror(errno));
    return ST_OK;
}

static enum status stw_close_shard(struct safetensors_writer *w, char *err, size_t errlen)
{
    if (!w->fp)
        return ST_OK;
    int bad = ferror(w->fp);
    bad |= fclose(w->fp) != 0;
    w->fp = NULL;
    if (bad)
        return status_fail(err, errlen, ST_ERR_IO, "writing shard %zu of %s failed: %s",
                           w->fp_shard + 1, w->dir, strerror(errno));
    return ST_OK;
}

/* Moves past complete (and empty) tensors, opening each following shard
 * file in turn until the one holding the next tensor, and pads up to that
 * tensor's aligned offset. */
static enum status stw_advance(struct safetensors_writer *w, char *err, size_t errlen)
{
    while (w->cur < w->n_tensors && w->cur_done == w->tensors[w->cur].nbytes) {
        w->cur++;
        w->cur_done = 0;
    }
    if (w->cur >= w->n_tensors)
        return ST_OK;
    const struct stw_tensor *t = &w->tensors[w->cur];
    while (w->fp_shard < t->shard) {
        enum status st = stw_close_shard(w, err, errlen);
        if (st == ST_OK)
            st = stw_open_shard(w, w->fp_shard + 1, err, errlen);
        if (st != ST_OK)
            return st;
    }
    static const unsigned char zeros[8];
    if (t->offset > w->fp_pos) {
        size_t pad = (size_t)(t->offset - w->fp_pos);
        if (fwrite(zeros, 1, pad, w->fp) != pad)
            return status_fail(err, errlen, ST_ERR_IO, "write failed: %s", strerror(errno));
        w->fp_pos = t->offset;
    }
    return ST_OK;
}

enum status safetensors_writer_begin(struct safetensors_writer *w, char *err, size_t errlen)
{
    if (w->begun)
        return status_fail(err, errlen, ST_ERR_INVALID, "safetensors writer already begun");
    qsort(w->tensors, w->n_tensors, sizeof(*w->tensors), stw_cmp_name);
    for (size_t i = 1; i < w->n_tensors; i++) {
        if (!strcmp(w->tensors[i - 1].name, w->tensors[i].name))
            return status_fail(err, errlen, ST_ERR_INVALID, "tensor %s declared twice",
                               w->tensors[i].name);
    }
    /* Greedy sharding in name order, like mlx-lm's make_shards. */
    size_t shard = 0;
    uint64_t used = 0;
    bool any = false;
    for (size_t i = 0; i < w->n_tensors; i++) {
        struct stw_tensor *t = &w->tensors[i];
        if (w->shard_bytes && any && used + t->nbytes > w->shard_bytes) {
            shard++;
            used = 0;
        }
        used = stw_align8(used);
        t->shard = shard;
        t->offset = used;
        used += t->nbytes;
        any = true;
    }
    w->n_shards = shard + 1;
    w->shards = calloc(w->n_shards, sizeof(*w->shards));
    w->iobuf = malloc(SAFETENSORS_WRITE_BUF);
    if (!w->shards || !w->iobuf)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    for (size_t s = 0; s < w->n_shards; s++) {
        enum status st = stw_build_header(w, s, err, errlen);
        if (st != ST_OK)
            return st;
    }
    w->begun = true;
    w->cur = 0;
    w->cur_done = 0;
    enum status st = stw_open_shard(w, 0, err, errlen);
    if (st != ST_OK)
        return st;
    return stw_advance(w, err, errlen);
}

/* ---- streaming ---- */

bool safetensors_writer_next(const struct safetensors_writer *w, const char **name, void **user,
                             uint64_t *remaining)
{
    if (!w->begun || w->cur >= w->n_tensors)
        return false;
    const struct stw_tensor *t = &w->tensors[w->cur];
    if (name)
        *name = t->name;
    if (user)
        *user = t->user;
    if (remaining)
        *remaining = t->nbytes - w->cur_done;
    return true;
}

enum status safetensors_writer_write(struct safetensors_writer *w, const void *data, size_t len,
                                     char *err, size_t errlen)
{
    if (!w->begun || w->cur >= w->n_tensors)
        return status_fail(err, errlen, ST_ERR_INVALID, "no tensor is waiting for data");
    struct stw_tensor *t = &w->tensors[w->cur];
    if ((uint64_t)len > t->nbytes - w->cur_done)
        return status_fail(err, errlen, ST_ERR_INVALID, "tensor %s: %zu bytes written past its end",
                           t->name, (size_t)((uint64_t)len - (t->nbytes - w->cur_done)));
    if (len && fwrite(data, 1, len, w->fp) != len)
        return status_fail(err, errlen, ST_ERR_IO, "writing %s: %s", t->name, strerror(errno));
    w->cur_done += len;
    w->fp_pos += len;
    return stw_advance(w, err, errlen);
}

/* ---- index ---- */

static enum status stw_write_index(struct safetensors_writer *w, char *err, size_t errlen)
{
    /* mlx-lm indents its JSON by 4, transformers by 2 */
    const char *ind = strcmp(w->format, "mlx") == 0 ? "    " : "  ";
    uint64_t total = 0;
    for (size_t i = 0; i < w->n_tensors; i++)
        total += w->tensors[i].nbytes;
    struct strbuf b = {0};
    strbuf_puts(&b, "{\n");
    strbuf_puts(&b, ind);
    strbuf_puts(&b, "\"metadata\": {\n");
    strbuf_puts(&b, ind);
    strbuf_puts(&b, ind);
    strbuf_printf(&b, "\"total_size\": %llu\n", (unsigned long long)total);
    strbuf_puts(&b, ind);
    strbuf_puts(&b, "},\n");
    strbuf_puts(&b, ind);
    strbuf_puts(&b, "\"weight_map\": {");
    for (size_t i = 0; i < w->n_tensors; i++) {
        char shard[64];
        stw_shard_name(w, w->tensors[i].shard, shard, sizeof(shard));
        strbuf_puts(&b, i ? ",\n" : "\n");
        strbuf_puts(&b, ind);
        strbuf_puts(&b, ind);
        strbuf_put_json_string(&b, w->tensors[i].name);
        strbuf_puts(&b, ": ");
        strbuf_put_json_string(&b, shard);
    }
    strbuf_puts(&b, "\n");
    strbuf_puts(&b, ind);
    strbuf_puts(&b, "}\n}");
    if (b.oom) {
        strbuf_free(&b);
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", w->dir);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        strbuf_free(&b);
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", path, strerror(errno));
    }
    bool bad = fwrite(b.data, 1, b.len, fp) != b.len;
    bad |= fclose(fp) != 0;
    strbuf_free(&b);
    if (bad)
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", path, strerror(errno));
    return ST_OK;
}

enum status safetensors_writer_finish(struct safetensors_writer *w, char *err, size_t errlen)
{
    if (!w->begun)
        return status_fail(err, errlen, ST_ERR_INVALID, "safetensors writer not begun");
    if (w->cur < w->n_tensors)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "tensor %s is incomplete (%llu of %llu bytes)", w->tensors[w->cur].name,
                           (unsigned long long)w->cur_done,
                           (unsigned long long)w->tensors[w->cur].nbytes);
    /* shards after the open one hold nothing but empty tensors */
    enum status st = stw_close_shard(w, err, errlen);
    while (st == ST_OK && w->fp_shard + 1 < w->n_shards) {
        st = stw_open_shard(w, w->fp_shard + 1, err, errlen);
        if (st == ST_OK)
            st = stw_close_shard(w, err, errlen);
    }
    if (st != ST_OK)
        return st;
    if (w->n_shards > 1 || w->always_index)
        return stw_write_index(w, err, errlen);
    return ST_OK;
}

size_t safetensors_writer_n_shards(const struct safetensors_writer *w)
{
    return w->n_shards;
}

void safetensors_writer_free(struct safetensors_writer *w)
{
    if (!w)
        return;
    if (w->fp)
        fclose(w->fp);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    for (size_t s = 0; s < w->n_shards; s++)
        free(w->shards[s].header);
    free(w->shards);
    free(w->iobuf);
    free(w->dir);
    free(w->format);
    free(w);
}
