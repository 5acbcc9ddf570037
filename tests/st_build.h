/*
 * st_build.h - builds safetensors files byte by byte for the loader tests
 * (test_safetensors, test_model), independent of the engine's own writer so
 * the reader is checked against a second implementation of the format.
 *
 * Usage: stb_init, stb_add per tensor (data is 8-byte aligned as writers do),
 * then stb_bytes for the whole file in memory or stb_write to a path;
 * stb_free releases it.  Also a deterministic random generator and a temp
 * directory helper.  Single-threaded test helper.
 */
#ifndef TESTS_ST_BUILD_H
#define TESTS_ST_BUILD_H

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct stb {
    char *hdr; /* JSON entries so far, without braces */
    size_t hlen;
    uint8_t *data;
    size_t dlen;
    size_t misalign; /* extra header bytes after the 8-byte padding: misaligns the data */
};

static inline void stb_init(struct stb *b)
{
    memset(b, 0, sizeof(*b));
}

static inline void stb_appendf(struct stb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void stb_appendf(struct stb *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    b->hdr = realloc(b->hdr, b->hlen + (size_t)n + 1);
    memcpy(b->hdr + b->hlen, tmp, (size_t)n + 1);
    b->hlen += (size_t)n;
}

/* Adds a tensor; shape has ndim entries; nbytes of data are copied. */
static inline void stb_add(struct stb *b, const char *name, const char *dtype, int ndim,
                           const int64_t *shape, const void *bytes, size_t nbytes)
{
    size_t begin = (b->dlen + 7) / 8 * 8;
    b->data = realloc(b->data, begin + nbytes + 1);
    memset(b->data + b->dlen, 0, begin - b->dlen);
    if (nbytes)
        memcpy(b->data + begin, bytes, nbytes);
    b->dlen = begin + nbytes;
    stb_appendf(b, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", b->hlen ? "," : "", name, dtype);
    for (int i = 0; i < ndim; i++)
        stb_appendf(b, "%s%lld", i ? "," : "", (long long)shape[i]);
    stb_appendf(b, "],\"data_offsets\":[%zu,%zu]}", begin, begin + nbytes);
}

/* The whole file (caller frees); *len gets its size. */
static inline uint8_t *stb_bytes(const struct stb *b, size_t *len)
{
    const char *meta = "\"__metadata__\":{\"format\":\"pt\"}";
    size_t jl = 2 + strlen(meta) + (b->hlen ? 1 + b->hlen : 0);
    size_t padded = (jl + 7) / 8 * 8 + b->misalign;
    uint8_t *out = malloc(8 + padded + b->dlen + 1);
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    char *h = (char *)out + 8;
    int n = sprintf(h, "{%s%s%.*s}", meta, b->hlen ? "," : "", (int)b->hlen, b->hlen ? b->hdr : "");
    memset(h + n, ' ', padded - (size_t)n);
    if (b->dlen)
        memcpy(out + 8 + padded, b->data, b->dlen);
    *len = 8 + padded + b->dlen;
    return out;
}

static inline int stb_write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(buf, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

static inline int stb_write(const struct stb *b, const char *path)
{
    size_t len;
    uint8_t *buf = stb_bytes(b, &len);
    int rc = stb_write_bytes(path, buf, len);
    free(buf);
    return rc;
}

static inline void stb_free(struct stb *b)
{
    free(b->hdr);
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* xorshift64*: deterministic uniform floats in [-1, 1). */
static inline float stb_randf(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint64_t r = *s * 0x2545F4914F6CDD1DULL;
    return (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Creates a fresh temp directory; path goes into buf (>= 64 bytes). */
static inline int stb_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/mlxm_test_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(buf) ? 0 : -1;
}

/* Removes a directory made by stb_tmpdir and the plain files in it. */
static inline void stb_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static inline int stb_write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stb_write_bytes(path, text, strlen(text));
}

#endif
