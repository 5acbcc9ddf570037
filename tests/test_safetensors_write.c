/*
 * test_safetensors_write.c - the streaming safetensors writer: byte layout
 * (length prefix, space-padded header, 8-byte aligned data, name order),
 * chunked writes, sharding and the index, and its error paths.  Files are
 * checked both by parsing the raw bytes here and by reading them back with
 * the engine's own reader (safetensors.h).
 */
#include <cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "safetensors.h"
#include "safetensors_write.h"

static void make_tmp(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/mlxm-stw-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void remove_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = 0;
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Writes everything the writer asks for: tensor i's byte k is (i*31 + k) & 0xff,
 * where i is the user pointer's value, fed in chunks of `chunk` bytes. */
static enum status feed(struct safetensors_writer *w, size_t chunk)
{
    void *user;
    uint64_t left, pos = 0;
    uintptr_t cur = 0;
    unsigned char buf[64];
    enum status st = ST_OK;
    while (st == ST_OK && safetensors_writer_next(w, NULL, &user, &left)) {
        if ((uintptr_t)user != cur) {
            cur = (uintptr_t)user;
            pos = 0;
        }
        size_t n = left < chunk ? (size_t)left : chunk;
        for (size_t k = 0; k < n; k++)
            buf[k] = (unsigned char)(cur * 31 + pos + k);
        st = safetensors_writer_write(w, buf, n, NULL, 0);
        pos += n;
    }
    return st;
}

static bool data_matches(const unsigned char *p, size_t n, uintptr_t id)
{
    for (size_t k = 0; k < n; k++) {
        if (p[k] != (unsigned char)(id * 31 + k))
            return false;
    }
    return true;
}

static void test_single_file_layout(void)
{
    char dir[64], err[256] = "";
    make_tmp(dir, sizeof(dir));
    struct safetensors_writer *w = NULL;
    CHECK_INT_EQ(safetensors_writer_new(dir, "pt", 0, false, &w, err, sizeof(err)), ST_OK);
    int64_t s3[] = {3}, s5[] = {5}, s22[] = {2, 2};
    /* declared out of order; sizes 12, 10, 16, 0 bytes need padding */
    CHECK_INT_EQ(safetensors_writer_add(w, "zeta", DTYPE_F32, 1, s3, (void *)1, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "alpha", DTYPE_F16, 1, s5, (void *)2, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(
        safetensors_writer_add(w, "mid\"q", DTYPE_U32, 2, s22, (void *)3, err, sizeof(err)), ST_OK);
    int64_t s0[] = {0, 4};
    CHECK_INT_EQ(safetensors_writer_add(w, "empty", DTYPE_BF16, 2, s0, (void *)4, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(safetensors_writer_begin(w, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(feed(w, 3), ST_OK);
    CHECK_INT_EQ(safetensors_writer_finish(w, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_n_shards(w), 1);
    safetensors_writer_free(w);

    char path[128];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    CHECK(access(path, F_OK) != 0); /* one shard, no index asked for */
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    size_t len = 0;
    unsigned char *buf = slurp(path, &len);
    CHECK(buf != NULL);
    if (!buf)
        return;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    CHECK((8 + hlen) % 8 == 0);
    CHECK(buf[8 + hlen - 1] == ' ' || buf[8 + hlen - 1] == '}');
    cJSON *h = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    CHECK(h != NULL);
    CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "__metadata__"), "format")->valuestring,
                 "pt");
    /* name order in the header and in the data area */
    static const char *const order[] = {"alpha", "empty", "mid\"q", "zeta"};
    static const uintptr_t ids[] = {2, 4, 3, 1};
    static const size_t sizes[] = {10, 0, 16, 12};
    const cJSON *item = cJSON_GetObjectItem(h, "__metadata__")->next;
    uint64_t prev_end = 0;
    for (int i = 0; i < 4; i++, item = item ? item->next : NULL) {
        CHECK(item != NULL);
        if (!item)
            break;
        CHECK_STR_EQ(item->string, order[i]);
        const cJSON *off = cJSON_GetObjectItem(item, "data_offsets");
        uint64_t a = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        uint64_t b = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        CHECK_INT_EQ(a % 8, 0);
        CHECK(a >= prev_end && a - prev_end < 8);
        CHECK_INT_EQ(b - a, sizes[i]);
        CHECK(data_matches(buf + 8 + hlen + a, (size_t)(b - a), ids[i]));
        prev_end = b;
    }
    CHECK_INT_EQ(len, 8 + hlen + prev_end);
    cJSON_Delete(h);
    free(buf);

    /* and the engine's reader agrees */
    struct safetensors *st = NULL;
    CHECK_INT_EQ(safetensors_open(path, &st, err, sizeof(err)), ST_OK);
    if (st) {
        CHECK_INT_EQ(safetensors_count(st), 4);
        const struct safetensors_tensor *t = safetensors_find(st, "mid\"q");
        CHECK(t && t->dtype == DTYPE_U32 && t->ndim == 2 && t->shape[0] == 2);
        unsigned char got[16];
        if (t) {
            CHECK_INT_EQ(safetensors_read(st, t, got, err, sizeof(err)), ST_OK);
            CHECK(data_matches(got, 16, 3));
        }
        t = safetensors_find(st, "empty");
        CHECK(t && t->nelem == 0);
        safetensors_close(st);
    }
    remove_tmp(dir);
}

static void test_sharded_with_index(void)
{
    char dir[64], err[256] = "";
    make_tmp(dir, sizeof(dir));
    struct safetensors_writer *w = NULL;
    CHECK_INT_EQ(safetensors_writer_new(dir, "mlx", 40, false, &w, err, sizeof(err)), ST_OK);
    /* 24 + 12 fit in 40; then 24 starts shard 2; 64 > 40 alone makes shard 3 */
    int64_t s6[] = {6}, s3[] = {3}, s16[] = {16};
    CHECK_INT_EQ(safetensors_writer_add(w, "a", DTYPE_F32, 1, s6, (void *)1, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "b", DTYPE_F32, 1, s3, (void *)2, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "c", DTYPE_F32, 1, s6, (void *)3, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "d", DTYPE_F32, 1, s16, (void *)4, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(safetensors_writer_begin(w, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_n_shards(w), 3);
    CHECK_INT_EQ(feed(w, 64), ST_OK);
    CHECK_INT_EQ(safetensors_writer_finish(w, err, sizeof(err)), ST_OK);
    safetensors_writer_free(w);

    char path[128];
    size_t len;
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    unsigned char *idx = slurp(path, &len);
    CHECK(idx != NULL);
    cJSON *j = idx ? cJSON_Parse((const char *)idx) : NULL;
    CHECK(j != NULL);
    CHECK(idx && strstr((const char *)idx, "\n    \"metadata\": {") != NULL); /* mlx-lm indent */
    CHECK_INT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "total_size")->valuedouble,
                 24 + 12 + 24 + 64);
    const cJSON *map = cJSON_GetObjectItem(j, "weight_map");
    CHECK_STR_EQ(cJSON_GetObjectItem(map, "a")->valuestring, "model-00001-of-00003.safetensors");
    CHECK_STR_EQ(cJSON_GetObjectItem(map, "b")->valuestring, "model-00001-of-00003.safetensors");
    CHECK_STR_EQ(cJSON_GetObjectItem(map, "c")->valuestring, "model-00002-of-00003.safetensors");
    CHECK_STR_EQ(cJSON_GetObjectItem(map, "d")->valuestring, "model-00003-of-00003.safetensors");
    cJSON_Delete(j);
    free(idx);

    struct safetensors_set *set = NULL;
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_OK);
    if (set) {
        CHECK_INT_EQ(safetensors_set_n_files(set), 3);
        static const char *const names[] = {"a", "b", "c", "d"};
        for (int i = 0; i < 4; i++) {
            struct safetensors *f = NULL;
            const struct safetensors_tensor *t = safetensors_set_find(set, names[i], &f);
            CHECK(t != NULL && f != NULL);
            unsigned char got[64];
            if (t && f) {
                CHECK_INT_EQ(safetensors_read(f, t, got, err, sizeof(err)), ST_OK);
                CHECK(data_matches(got, (size_t)(t->end - t->begin), (uintptr_t)(i + 1)));
                CHECK_STR_EQ(safetensors_metadata(f, "format"), "mlx");
            }
        }
        safetensors_set_close(set);
    }
    remove_tmp(dir);
}

static void test_single_shard_index_when_asked(void)
{
    char dir[64], err[256] = "";
    make_tmp(dir, sizeof(dir));
    struct safetensors_writer *w = NULL;
    CHECK_INT_EQ(safetensors_writer_new(dir, "mlx", 1 << 20, true, &w, err, sizeof(err)), ST_OK);
    int64_t s2[] = {2};
    CHECK_INT_EQ(safetensors_writer_add(w, "x", DTYPE_F16, 1, s2, (void *)7, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(safetensors_writer_begin(w, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(feed(w, 1), ST_OK);
    CHECK_INT_EQ(safetensors_writer_finish(w, err, sizeof(err)), ST_OK);
    safetensors_writer_free(w);
    char path[128];
    size_t len;
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    unsigned char *idx = slurp(path, &len);
    CHECK(idx && strstr((const char *)idx, "\"x\": \"model.safetensors\"") != NULL);
    free(idx);
    remove_tmp(dir);
}

static void test_errors(void)
{
    char dir[64], err[256] = "";
    make_tmp(dir, sizeof(dir));
    struct safetensors_writer *w = NULL;
    int64_t s2[] = {2}, neg[] = {-1};
    CHECK_INT_EQ(safetensors_writer_new(dir, "pt", 0, false, &w, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "", DTYPE_F32, 1, s2, NULL, err, sizeof(err)),
                 ST_ERR_INVALID);
    CHECK_INT_EQ(safetensors_writer_add(w, "n", DTYPE_F32, 1, neg, NULL, err, sizeof(err)),
                 ST_ERR_INVALID);
    CHECK_INT_EQ(safetensors_writer_add(w, "t", DTYPE_COUNT, 1, s2, NULL, err, sizeof(err)),
                 ST_ERR_INVALID);
    CHECK_INT_EQ(safetensors_writer_add(w, "t", DTYPE_F32, 1, s2, NULL, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_begin(w, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "late", DTYPE_F32, 1, s2, NULL, err, sizeof(err)),
                 ST_ERR_INVALID);
    float v[3] = {1, 2, 3};
    CHECK_INT_EQ(safetensors_writer_write(w, v, 12, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(strstr(err, "past its end") != NULL);
    CHECK_INT_EQ(safetensors_writer_write(w, v, 4, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_finish(w, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(strstr(err, "incomplete") != NULL);
    CHECK_INT_EQ(safetensors_writer_write(w, v, 4, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_write(w, v, 1, err, sizeof(err)), ST_ERR_INVALID);
    CHECK_INT_EQ(safetensors_writer_finish(w, err, sizeof(err)), ST_OK);
    safetensors_writer_free(w);

    CHECK_INT_EQ(safetensors_writer_new(dir, "pt", 0, false, &w, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "dup", DTYPE_F32, 1, s2, NULL, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "dup", DTYPE_F32, 1, s2, NULL, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_begin(w, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(strstr(err, "twice") != NULL);
    safetensors_writer_free(w);

    CHECK_INT_EQ(
        safetensors_writer_new("/nonexistent/mlxm-dir", "pt", 0, false, &w, err, sizeof(err)),
        ST_OK);
    CHECK_INT_EQ(safetensors_writer_add(w, "t", DTYPE_F32, 1, s2, NULL, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(safetensors_writer_begin(w, err, sizeof(err)), ST_ERR_IO);
    safetensors_writer_free(w);
    safetensors_writer_free(NULL);
    remove_tmp(dir);
}

int main(void)
{
    RUN(test_single_file_layout);
    RUN(test_sharded_with_index);
    RUN(test_single_shard_index_when_asked);
    RUN(test_errors);
    return harness_finish();
}
