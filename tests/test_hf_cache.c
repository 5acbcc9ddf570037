/* test_hf_cache.c - model id / file path validation, snapshot links, refs,
 * listing and deletion of the Hugging Face cache layout. */
#include <cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "fsutil.h"
#include "hf_cache.h"

static char tmp_root[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_valid_id(void)
{
    static const char *const good[] = {"mlx-community/Qwen3-0.6B-4bit", "a/b", "Org_1/x.y-z",
                                       "test-org/aidreams-260k"};
    static const char *const bad[] = {"",       "noslash",    "../x",        "a/../../b",
                                      "org/..", "org/name/x", "/abs/path",   ".hidden/x",
                                      "org/.x", "%2e%2e/x",   "org/na me",   "org/a..b",
                                      "org/",   "/name",      "org\\x/name", "org/n\nx"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK_MSG(hf_cache_valid_id(good[i], NULL, 0), "%s", good[i]);
    char why[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        CHECK_MSG(!hf_cache_valid_id(bad[i], why, sizeof(why)), "%s", bad[i]);
        CHECK_MSG(why[0] != '\0', "no reason for %s", bad[i]);
    }
    char longid[300];
    memset(longid, 'a', sizeof(longid));
    longid[100] = '/';
    longid[299] = '\0';
    CHECK(!hf_cache_valid_id(longid, NULL, 0));
}

static void test_valid_file_and_name(void)
{
    CHECK(hf_cache_valid_file("model.safetensors"));
    CHECK(hf_cache_valid_file("sub/dir/tokenizer.json"));
    CHECK(hf_cache_valid_file(".gitattributes"));
    static const char *const bad[] = {"",     "/etc/passwd", "../x", "a/../b", "a/./b",
                                      "a//b", "a/",          "..",   "a\\b",   "x\ny"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(!hf_cache_valid_file(bad[i]), "%s", bad[i]);
    CHECK(hf_cache_valid_name("main"));
    CHECK(hf_cache_valid_name("0123456789abcdef0123456789abcdef01234567"));
    CHECK(!hf_cache_valid_name(""));
    CHECK(!hf_cache_valid_name("../main"));
    CHECK(!hf_cache_valid_name(".git"));
    CHECK(!hf_cache_valid_name("a/b"));
}

static void test_link_and_ref(void)
{
    char repo[PATH_MAX], blobs[PATH_MAX + 8], blob[PATH_MAX + 64], link[PATH_MAX + 64],
        target[PATH_MAX];
    char err[256];
    CHECK_INT_EQ(hf_cache_repo_dir(tmp_root, "org/name", repo, sizeof(repo)), 0);
    CHECK(strstr(repo, "/models--org--name") != NULL);
    snprintf(blobs, sizeof(blobs), "%s/blobs", repo);
    CHECK_INT_EQ(fs_mkdirs(blobs, 0755), 0);
    snprintf(blob, sizeof(blob), "%s/abcdef0", blobs);
    write_file(blob, "hello");
    CHECK_INT_EQ(hf_cache_link(repo, "c0ffee1", "config.json", "abcdef0", err, sizeof(err)), 0);
    CHECK_INT_EQ(hf_cache_link(repo, "c0ffee1", "sub/dir/t.json", "abcdef0", err, sizeof(err)), 0);
    snprintf(link, sizeof(link), "%s/snapshots/c0ffee1/config.json", repo);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    CHECK(n > 0);
    target[n > 0 ? n : 0] = '\0';
    CHECK_STR_EQ(target, "../../blobs/abcdef0");
    snprintf(link, sizeof(link), "%s/snapshots/c0ffee1/sub/dir/t.json", repo);
    n = readlink(link, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    CHECK_STR_EQ(target, "../../../../blobs/abcdef0");
    FILE *f = fopen(link, "r");
    char buf[16] = "";
    CHECK(f && fgets(buf, sizeof(buf), f));
    if (f)
        fclose(f);
    CHECK_STR_EQ(buf, "hello");
    /* Linking again replaces the link. */
    CHECK_INT_EQ(hf_cache_link(repo, "c0ffee1", "config.json", "abcdef0", err, sizeof(err)), 0);

    char snap[PATH_MAX];
    CHECK_INT_EQ(hf_cache_snapshot(tmp_root, "org/name", snap, sizeof(snap)), 0);
    CHECK(strstr(snap, "/snapshots/c0ffee1") != NULL);
    CHECK_INT_EQ(hf_cache_write_ref(repo, "main", "c0ffee1"), 0);
    char refp[PATH_MAX + 16];
    snprintf(refp, sizeof(refp), "%s/refs/main", repo);
    f = fopen(refp, "r");
    buf[0] = '\0';
    CHECK(f && fgets(buf, sizeof(buf), f));
    if (f)
        fclose(f);
    CHECK_STR_EQ(buf, "c0ffee1");
    /* A second snapshot: refs/main decides. */
    CHECK_INT_EQ(hf_cache_link(repo, "beef002", "config.json", "abcdef0", err, sizeof(err)), 0);
    CHECK_INT_EQ(hf_cache_snapshot(tmp_root, "org/name", snap, sizeof(snap)), 0);
    CHECK(strstr(snap, "/snapshots/c0ffee1") != NULL);
    CHECK(hf_cache_snapshot(tmp_root, "org/missing", snap, sizeof(snap)) != 0);
}

static void test_describe_list_delete(void)
{
    /* Absolute, so the links work from the temporary cache. */
    char shared[PATH_MAX];
    CHECK(realpath(harness_shared_dir(), shared) != NULL);
    char repo[PATH_MAX], snap[PATH_MAX + 64], src[PATH_MAX * 2], dst[PATH_MAX * 2];
    CHECK_INT_EQ(hf_cache_repo_dir(tmp_root, "fix/aidreams", repo, sizeof(repo)), 0);
    snprintf(snap, sizeof(snap), "%s/snapshots/rev1", repo);
    CHECK_INT_EQ(fs_mkdirs(snap, 0755), 0);
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json",
                                        "tokenizer_config.json"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(src, sizeof(src), "%s/fixtures/models/aidreams-260k/%s", shared, files[i]);
        snprintf(dst, sizeof(dst), "%s/%s", snap, files[i]);
        CHECK_INT_EQ(symlink(src, dst), 0);
    }
    cJSON *m = hf_cache_describe(tmp_root, "fix/aidreams");
    CHECK(m != NULL);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(m, "config");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "supported")));
    CHECK_STR_EQ(cJSON_GetObjectItemCaseSensitive(cfg, "architecture")->valuestring,
                 "LlamaForCausalLM");
    CHECK_INT_EQ(cJSON_GetObjectItemCaseSensitive(cfg, "context_length")->valueint, 128);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cfg, "quantization")));
    /* Tied embeddings 512*64, per layer q/k/v/o 4*64*64 + MLP 3*64*172 + two
     * norms, 4 layers, final norm: the tensor count of model.safetensors. */
    CHECK_INT_EQ(cJSON_GetObjectItemCaseSensitive(cfg, "params_estimate")->valuedouble,
                 512 * 64 + 4 * (4 * 64 * 64 + 3 * 64 * 172 + 2 * 64) + 64);
    CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "files")), 4);
    CHECK(cJSON_GetObjectItemCaseSensitive(m, "size_bytes")->valuedouble > 900000);
    cJSON_Delete(m);

    /* No weights: listed, unsupported, with the reason. */
    char bad[PATH_MAX + 64];
    CHECK_INT_EQ(hf_cache_repo_dir(tmp_root, "fix/noweights", repo, sizeof(repo)), 0);
    snprintf(bad, sizeof(bad), "%s/snapshots/r", repo);
    CHECK_INT_EQ(fs_mkdirs(bad, 0755), 0);
    snprintf(dst, sizeof(dst), "%s/config.json", bad);
    write_file(dst, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
                    "\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"intermediate_size\":128,\"vocab_size\":32}");
    cJSON *list = hf_cache_list(tmp_root);
    int found_good = 0, found_bad = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const char *id = cJSON_GetObjectItemCaseSensitive(e, "id")->valuestring;
        if (!strcmp(id, "fix/aidreams"))
            found_good = 1;
        if (!strcmp(id, "fix/noweights")) {
            found_bad = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "supported")) &&
                        cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "unsupported_reason"));
        }
    }
    CHECK(found_good && found_bad);
    cJSON_Delete(list);

    /* Deleting removes the links, never what they point at. */
    char err[256];
    CHECK_INT_EQ(hf_cache_delete(tmp_root, "fix/aidreams", err, sizeof(err)), 0);
    CHECK_INT_EQ(hf_cache_delete(tmp_root, "fix/aidreams", err, sizeof(err)), 1);
    CHECK(access(src, R_OK) == 0);
    CHECK(hf_cache_describe(tmp_root, "fix/aidreams") == NULL);
    CHECK_INT_EQ(hf_cache_delete(tmp_root, "../etc", err, sizeof(err)), -1);
}

static void test_estimates(void)
{
    cJSON *c = cJSON_Parse("{\"hidden_size\":1024,\"num_hidden_layers\":28,"
                           "\"num_attention_heads\":16,\"num_key_value_heads\":8,"
                           "\"head_dim\":128,\"intermediate_size\":3072,\"vocab_size\":151936,"
                           "\"tie_word_embeddings\":true}");
    /* Qwen3-0.6B: 0.6 billion parameters, KV 2*28*8*128*4 bytes per token. */
    long long p = hf_cache_params_estimate(c);
    CHECK_MSG(p > 550000000LL && p < 650000000LL, "%lld", p);
    CHECK_INT_EQ(hf_cache_kv_estimate(c, 1000, ENGINE_KV_AUTO), 2LL * 28 * 8 * 128 * 4 * 1000);
    CHECK_INT_EQ(hf_cache_kv_estimate(c, 1000, ENGINE_KV_F16), 2LL * 28 * 8 * 128 * 2 * 1000);
    /* MLX-quantized: auto keeps K/V in F16, f32 says otherwise */
    cJSON_AddItemToObject(c, "quantization", cJSON_Parse("{\"group_size\":64,\"bits\":4}"));
    CHECK_INT_EQ(hf_cache_kv_estimate(c, 1000, ENGINE_KV_AUTO), 2LL * 28 * 8 * 128 * 2 * 1000);
    CHECK_INT_EQ(hf_cache_kv_estimate(c, 1000, ENGINE_KV_F32), 2LL * 28 * 8 * 128 * 4 * 1000);
    cJSON_Delete(c);
    c = cJSON_Parse("{\"hidden_size\":\"x\"}");
    CHECK_INT_EQ(hf_cache_params_estimate(c), 0);
    CHECK_INT_EQ(hf_cache_kv_estimate(c, 10, ENGINE_KV_AUTO), 0);
    cJSON_Delete(c);
}

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/mlxm-hfcache-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_valid_id);
    RUN(test_valid_file_and_name);
    RUN(test_link_and_ref);
    RUN(test_describe_list_delete);
    RUN(test_estimates);
    char err[256];
    hf_cache_delete(tmp_root, "org/name", err, sizeof(err));
    hf_cache_delete(tmp_root, "fix/noweights", err, sizeof(err));
    rmdir(tmp_root);
    return harness_finish();
}
