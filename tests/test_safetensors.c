/*
 * test_safetensors.c - the safetensors reader and the model loader on bad
 * input: every malformed file must give a clear error, never a crash.  Bad
 * files are built in a temp dir with tests/st_build.h.
 */
#include <math.h>
#include <sys/stat.h>

#include "harness.h"
#include "model.h"
#include "safetensors.h"
#include "st_build.h"

static char tmp[256];

static uint8_t *good_file(size_t *len)
{
    struct stb b;
    stb_init(&b);
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3c00, 0x4000, 0xc000};
    int64_t s23[2] = {2, 3}, s3[1] = {3};
    stb_add(&b, "a", "F32", 2, s23, a, sizeof(a));
    stb_add(&b, "h", "F16", 1, s3, h, sizeof(h));
    stb_add(&b, "scalar", "I64", 0, NULL, "\x07\0\0\0\0\0\0\0", 8);
    uint8_t *buf = stb_bytes(&b, len);
    stb_free(&b);
    return buf;
}

/* A file whose JSON header is exactly `json` (padded), followed by ndata zero bytes. */
static uint8_t *raw_file(const char *json, size_t ndata, size_t *len)
{
    size_t jl = strlen(json);
    uint8_t *buf = calloc(8 + jl + ndata + 1, 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(buf + 8, json, jl);
    *len = 8 + jl + ndata;
    return buf;
}

static enum status parse_json(const char *json, size_t ndata, char *err, size_t errlen)
{
    size_t len;
    uint8_t *buf = raw_file(json, ndata, &len);
    struct safetensors *st = NULL;
    enum status rc = safetensors_parse(buf, len, "t.safetensors", &st, err, errlen);
    safetensors_close(st);
    free(buf);
    return rc;
}

static void test_good_file(void)
{
    size_t len;
    uint8_t *buf = good_file(&len);
    char path[512], err[256] = "";
    snprintf(path, sizeof(path), "%s/good.safetensors", tmp);
    CHECK(stb_write_bytes(path, buf, len) == 0);
    struct safetensors *st = NULL;
    CHECK_INT_EQ(safetensors_open(path, &st, err, sizeof(err)), ST_OK);
    if (!st)
        return;
    CHECK_INT_EQ(safetensors_count(st), 3);
    CHECK_STR_EQ(safetensors_metadata(st, "format"), "pt");
    const struct safetensors_tensor *t = safetensors_find(st, "a");
    CHECK(t && t->dtype == DTYPE_F32 && t->ndim == 2 && t->shape[1] == 3 && t->nelem == 6);
    const struct safetensors_tensor *s = safetensors_find(st, "scalar");
    CHECK(s && s->ndim == 0 && s->nelem == 1);
    CHECK(safetensors_find(st, "nope") == NULL);
    float a[6] = {0};
    CHECK_INT_EQ(safetensors_read(st, t, a, err, sizeof(err)), ST_OK);
    CHECK(a[0] == 1 && a[5] == 6);
    CHECK(safetensors_data(st, t) == NULL);
    CHECK_INT_EQ(safetensors_map(st, err, sizeof(err)), ST_OK);
    const float *mp = safetensors_data(st, t);
    CHECK(mp && mp[4] == 5 && (uintptr_t)mp % 8 == 0);
    const uint16_t *hp = safetensors_data(st, safetensors_find(st, "h"));
    CHECK(hp && hp[2] == 0xc000);
    safetensors_close(st);
    free(buf);
}

static void test_truncated_everywhere(void)
{
    size_t len;
    uint8_t *buf = good_file(&len);
    int ok = 0;
    for (size_t n = 0; n < len; n++) {
        struct safetensors *st = NULL;
        char err[256] = "";
        enum status rc = safetensors_parse(buf, n, "cut.safetensors", &st, err, sizeof(err));
        if (rc == ST_OK)
            ok++;
        else
            CHECK_MSG(strstr(err, "cut.safetensors") != NULL, "message does not name the file: %s",
                      err);
        safetensors_close(st);
    }
    CHECK_INT_EQ(ok, 0);
    /* and from a real file on disk */
    char path[512], err[256] = "";
    snprintf(path, sizeof(path), "%s/trunc.safetensors", tmp);
    CHECK(stb_write_bytes(path, buf, len - 3) == 0);
    struct safetensors *st = NULL;
    CHECK_INT_EQ(safetensors_open(path, &st, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK(strstr(err, "past the data area") != NULL);
    CHECK(strstr(err, "'scalar'") != NULL);
    free(buf);
}

static void test_header_length(void)
{
    char err[256] = "";
    uint8_t buf[64] = {0};
    struct safetensors *st = NULL;
    buf[0] = 200; /* 200-byte header in a 64-byte file */
    CHECK_INT_EQ(safetensors_parse(buf, sizeof(buf), "x", &st, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK(strstr(err, "past the end") != NULL);
    memset(buf, 0xff, 8); /* 2^64 - 1 */
    CHECK_INT_EQ(safetensors_parse(buf, sizeof(buf), "x", &st, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_INT_EQ(safetensors_parse(buf, 5, "x", &st, err, sizeof(err)), ST_ERR_FORMAT);
    char path[512];
    snprintf(path, sizeof(path), "%s/missing.safetensors", tmp);
    CHECK_INT_EQ(safetensors_open(path, &st, err, sizeof(err)), ST_ERR_IO);
    CHECK(strstr(err, "missing.safetensors") != NULL);
    CHECK_INT_EQ(safetensors_open(tmp, &st, err, sizeof(err)), ST_ERR_IO);
}

static void test_bad_headers(void)
{
    char err[256] = "";
    const char *f32 = "\"dtype\":\"F32\"";
    char j[512];
    CHECK_INT_EQ(parse_json("not json at all", 0, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK(strstr(err, "not valid JSON") != NULL);
    CHECK_INT_EQ(parse_json("[1,2,3]  ", 0, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_INT_EQ(parse_json("{}  x", 0, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_INT_EQ(parse_json("{}      ", 0, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(parse_json("{\"__metadata__\":{\"a\":1}}", 0, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_INT_EQ(parse_json("{\"t\":7}", 0, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_INT_EQ(parse_json("{\"t\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                            err, sizeof(err)),
                 ST_ERR_UNSUPPORTED);
    CHECK(strstr(err, "F33") != NULL && strstr(err, "'t'") != NULL);
    /* shape x dtype size != byte range */
    snprintf(j, sizeof(j), "{\"t\":{%s,\"shape\":[2,3],\"data_offsets\":[0,20]}}", f32);
    CHECK_INT_EQ(parse_json(j, 24, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK(strstr(err, "does not match") != NULL);
    /* shape product overflows */
    snprintf(j, sizeof(j),
             "{\"t\":{%s,\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}", f32);
    CHECK_INT_EQ(parse_json(j, 0, err, sizeof(err)), ST_ERR_FORMAT);
    snprintf(j, sizeof(j), "{\"t\":{%s,\"shape\":[-1],\"data_offsets\":[0,4]}}", f32);
    CHECK_INT_EQ(parse_json(j, 4, err, sizeof(err)), ST_ERR_FORMAT);
    snprintf(j, sizeof(j), "{\"t\":{%s,\"shape\":[1.5],\"data_offsets\":[0,4]}}", f32);
    CHECK_INT_EQ(parse_json(j, 4, err, sizeof(err)), ST_ERR_FORMAT);
    /* offsets out of range, reversed, wrong arity */
    snprintf(j, sizeof(j), "{\"t\":{%s,\"shape\":[1],\"data_offsets\":[4,8]}}", f32);
    CHECK_INT_EQ(parse_json(j, 4, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK(strstr(err, "past the data area") != NULL);
    snprintf(j, sizeof(j), "{\"t\":{%s,\"shape\":[1],\"data_offsets\":[8,4]}}", f32);
    CHECK_INT_EQ(parse_json(j, 8, err, sizeof(err)), ST_ERR_FORMAT);
    snprintf(j, sizeof(j), "{\"t\":{%s,\"shape\":[1],\"data_offsets\":[0]}}", f32);
    CHECK_INT_EQ(parse_json(j, 8, err, sizeof(err)), ST_ERR_FORMAT);
    /* overlapping tensors */
    snprintf(j, sizeof(j),
             "{\"a\":{%s,\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{%s,\"shape\":[2],\"data_offsets\":[4,12]}}",
             f32, f32);
    CHECK_INT_EQ(parse_json(j, 12, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK(strstr(err, "overlap") != NULL);
    /* duplicate names */
    snprintf(j, sizeof(j),
             "{\"a\":{%s,\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{%s,\"shape\":[1],\"data_offsets\":[4,8]}}",
             f32, f32);
    CHECK_INT_EQ(parse_json(j, 8, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK(strstr(err, "twice") != NULL);
    /* an empty tensor overlaps nothing */
    snprintf(j, sizeof(j),
             "{\"a\":{%s,\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"e\":{%s,\"shape\":[0,5],\"data_offsets\":[4,4]}}",
             f32, f32);
    CHECK_INT_EQ(parse_json(j, 8, err, sizeof(err)), ST_OK);
}

static void test_random_garbage(void)
{
    uint64_t seed = 12345;
    size_t glen;
    uint8_t *good = good_file(&glen);
    int accepted = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t len;
        uint8_t *buf;
        if (iter % 2 == 0) {
            /* pure noise behind a plausible length prefix */
            len = (size_t)((stb_randf(&seed) + 1.0f) * 200.0f);
            buf = malloc(len + 8);
            for (size_t i = 0; i < len + 8; i++)
                buf[i] = (uint8_t)((stb_randf(&seed) + 1.0f) * 128.0f);
            if (len >= 8 && iter % 4 == 0) {
                memset(buf, 0, 8);
                buf[0] = (uint8_t)(len - 8);
            }
        } else {
            /* a valid file with a few bytes changed */
            len = glen;
            buf = malloc(len);
            memcpy(buf, good, len);
            for (int k = 0; k < 3; k++) {
                size_t at = (size_t)((stb_randf(&seed) + 1.0f) * 0.5f * (float)(len - 1));
                buf[at] = (uint8_t)((stb_randf(&seed) + 1.0f) * 128.0f);
            }
        }
        struct safetensors *st = NULL;
        char err[256] = "";
        enum status rc = safetensors_parse(buf, len, "g", &st, err, sizeof(err));
        if (rc == ST_OK) {
            accepted++;
            /* whatever was accepted must be readable inside the buffer */
            for (size_t i = 0; i < safetensors_count(st); i++) {
                const struct safetensors_tensor *t = safetensors_at(st, i);
                CHECK(t->end <= len && t->begin <= t->end);
                CHECK(t->nelem * dtype_size(t->dtype) == t->end - t->begin);
            }
        } else {
            CHECK(err[0] != '\0');
        }
        safetensors_close(st);
        free(buf);
    }
    printf("     %d of 3000 mutated/garbage files accepted (valid after mutation)\n", accepted);
    free(good);
}

/* --- model-level errors -------------------------------------------------- */

static const char *fixture(const char *variant)
{
    static char dir[4096];
    snprintf(dir, sizeof(dir), "%s/fixtures/models/%s", harness_shared_dir(), variant);
    return dir;
}

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    FILE *o = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (f && o && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, o);
    if (f)
        fclose(f);
    if (o)
        fclose(o);
}

/*
 * Makes dir/<name> a model dir with aidreams' config.json and its fp32 weights,
 * except tensor `drop` (omitted) and `replace` (given shape [n] F32 instead).
 */
static size_t make_misalign;

static void make_model(char *dir, size_t dlen, const char *drop, const char *replace, int n)
{
    CHECK(stb_tmpdir(dir, dlen) == 0);
    char p[4096];
    snprintf(p, sizeof(p), "%s/config.json", fixture("aidreams-260k"));
    char q[4200];
    snprintf(q, sizeof(q), "%s/config.json", dir);
    copy_file(p, q);
    snprintf(p, sizeof(p), "%s/model.safetensors", fixture("aidreams-260k"));
    struct safetensors *st = NULL;
    CHECK_INT_EQ(safetensors_open(p, &st, NULL, 0), ST_OK);
    if (!st)
        return;
    struct stb b;
    stb_init(&b);
    b.misalign = make_misalign;
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const struct safetensors_tensor *t = safetensors_at(st, i);
        if (drop && strcmp(t->name, drop) == 0)
            continue;
        if (replace && strcmp(t->name, replace) == 0) {
            float *z = calloc((size_t)n, sizeof(float));
            int64_t shape[1] = {n};
            stb_add(&b, t->name, "F32", 1, shape, z, (size_t)n * 4);
            free(z);
            continue;
        }
        void *data = malloc(t->end - t->begin + 1);
        CHECK_INT_EQ(safetensors_read(st, t, data, NULL, 0), ST_OK);
        stb_add(&b, t->name, dtype_name(t->dtype), t->ndim, t->shape, data, t->end - t->begin);
        free(data);
    }
    snprintf(q, sizeof(q), "%s/model.safetensors", dir);
    CHECK(stb_write(&b, q) == 0);
    stb_free(&b);
    safetensors_close(st);
}

static void test_model_missing_tensor(void)
{
    char dir[256], err[512] = "";
    make_model(dir, sizeof(dir), "model.layers.2.mlp.up_proj.weight", NULL, 0);
    struct model *m = NULL;
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_NOT_FOUND);
    CHECK_MSG(strstr(err, "model.layers.2.mlp.up_proj.weight") != NULL, "%s", err);
    CHECK(m == NULL);
    stb_rmdir(dir);
}

static void test_model_wrong_shape(void)
{
    char dir[256], err[512] = "";
    make_model(dir, sizeof(dir), NULL, "model.norm.weight", 32);
    struct model *m = NULL;
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_INVALID);
    CHECK_MSG(strstr(err, "model.norm.weight") != NULL && strstr(err, "[32]") != NULL &&
                  strstr(err, "[64]") != NULL,
              "%s", err);
    stb_rmdir(dir);
    /* a matrix given as a vector */
    make_model(dir, sizeof(dir), NULL, "model.layers.0.self_attn.k_proj.weight", 4096);
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_INVALID);
    CHECK_MSG(strstr(err, "k_proj") != NULL, "%s", err);
    stb_rmdir(dir);
}

static void test_model_config_errors(void)
{
    char dir[256], err[512] = "";
    make_model(dir, sizeof(dir), NULL, NULL, 0);
    struct model *m = NULL;
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_OK);
    model_free(m);
    m = NULL;
    stb_write_text(dir, "config.json",
                   "{\"architectures\":[\"GPTNeoXForCausalLM\"],\"model_type\":\"gpt_neox\"}");
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err, "GPTNeoXForCausalLM") != NULL, "%s", err);
    stb_write_text(dir, "config.json", "{\"architectures\":[\"LlamaForCausalLM\"],");
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_FORMAT);
    stb_write_text(dir, "config.json",
                   "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                   "\"num_hidden_layers\":4,\"num_attention_heads\":4,\"vocab_size\":512}");
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_MSG(strstr(err, "intermediate_size") != NULL, "%s", err);
    /* a config whose sizes disagree with the weights */
    stb_write_text(dir, "config.json",
                   "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                   "\"num_hidden_layers\":4,\"num_attention_heads\":4,\"vocab_size\":512,"
                   "\"intermediate_size\":170,\"tie_word_embeddings\":true}");
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_INVALID);
    CHECK_MSG(strstr(err, "gate_proj") != NULL && strstr(err, "170") != NULL, "%s", err);
    /* untied without lm_head.weight */
    stb_write_text(dir, "config.json",
                   "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                   "\"num_hidden_layers\":4,\"num_attention_heads\":4,\"vocab_size\":512,"
                   "\"intermediate_size\":172,\"tie_word_embeddings\":false}");
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_NOT_FOUND);
    CHECK_MSG(strstr(err, "lm_head.weight") != NULL, "%s", err);
    char p[512];
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    unlink(p);
    CHECK_INT_EQ(model_load(dir, NULL, &m, err, sizeof(err)), ST_ERR_NOT_FOUND);
    stb_rmdir(dir);
}

/* Logits of the last of 5 tokens, loading `dir` with or without mmap. */
static void last_logits(const char *dir, bool use_mmap, float *out)
{
    char err[512] = "";
    struct model_load_opts o = {.use_mmap = use_mmap};
    struct model *m = NULL;
    CHECK_INT_EQ(model_load(dir, &o, &m, err, sizeof(err)), ST_OK);
    if (!m)
        return;
    struct kv_cache *kv = NULL;
    int s = -1;
    CHECK_INT_EQ(kv_cache_create(model_get_config(m), 2, 16, DTYPE_F32, 1, &kv, err, sizeof(err)),
                 ST_OK);
    CHECK_INT_EQ(kv_seq_create(kv, &s, err, sizeof(err)), ST_OK);
    static const int32_t toks[] = {1, 388, 355, 260, 275};
    struct model_batch_seq e = {.seq = s, .n_tokens = 5, .tokens = toks, .n_logits = 1};
    struct model_batch b = {&e, 1};
    CHECK_INT_EQ(model_forward(m, kv, &b, out, err, sizeof(err)), ST_OK);
    kv_cache_free(kv);
    model_free(m);
}

/* A header of odd length leaves the F32 data unaligned: mmap loads fall back to copies. */
static void test_model_unaligned_mmap(void)
{
    char dir[256];
    make_misalign = 3;
    make_model(dir, sizeof(dir), NULL, NULL, 0);
    make_misalign = 0;
    static float copied[512], mapped[512];
    last_logits(dir, false, copied);
    last_logits(dir, true, mapped);
    CHECK(memcmp(copied, mapped, sizeof(copied)) == 0);
    bool finite = true;
    for (int i = 0; i < 512; i++)
        finite = finite && isfinite(copied[i]);
    CHECK(finite && copied[0] != 0.0f);
    stb_rmdir(dir);
}

static void test_config_parse(void)
{
    struct model_config c;
    char err[256] = "";
    const char *j = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4096,"
                    "\"num_hidden_layers\":32,\"num_attention_heads\":32,"
                    "\"num_key_value_heads\":8,\"intermediate_size\":14336,\"vocab_size\":128256,"
                    "\"max_position_embeddings\":131072,\"rope_theta\":500000.0,"
                    "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
                    "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,"
                    "\"rope_type\":\"llama3\"},\"bos_token_id\":128000,"
                    "\"eos_token_id\":[128001,128008,128009],\"tie_word_embeddings\":false}";
    CHECK_INT_EQ(model_config_parse(j, strlen(j), &c, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(c.arch, MODEL_ARCH_LLAMA);
    CHECK_INT_EQ(c.head_dim, 128);
    CHECK_INT_EQ(c.n_kv_heads, 8);
    CHECK_INT_EQ(c.rope_scaling, MODEL_ROPE_SCALING_LLAMA3);
    CHECK(c.rope_factor == 8.0f && c.rope_high_freq_factor == 4.0f);
    CHECK_INT_EQ(c.rope_original_max_pos, 8192);
    CHECK_INT_EQ(c.n_eos, 3);
    CHECK_INT_EQ(c.eos_token_ids[2], 128009);
    CHECK_INT_EQ(c.bos_token_id, 128000);
    const char *mis = "{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\","
                      "\"hidden_size\":4096,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
                      "\"num_key_value_heads\":8,\"intermediate_size\":14336,"
                      "\"vocab_size\":32768,\"sliding_window\":null,\"eos_token_id\":2}";
    CHECK_INT_EQ(model_config_parse(mis, strlen(mis), &c, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(c.arch, MODEL_ARCH_LLAMA);
    CHECK_INT_EQ(c.sliding_window, 0);
    CHECK_INT_EQ(c.n_eos, 1);
    const char *q3 = "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":1024,"
                     "\"num_hidden_layers\":28,\"num_attention_heads\":16,"
                     "\"num_key_value_heads\":8,\"head_dim\":128,\"intermediate_size\":3072,"
                     "\"vocab_size\":151936,\"tie_word_embeddings\":true,"
                     "\"quantization\":{\"group_size\":64,\"bits\":4,"
                     "\"model.layers.0.mlp.down_proj\":{\"group_size\":64,\"bits\":8}}}";
    CHECK_INT_EQ(model_config_parse(q3, strlen(q3), &c, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(c.arch, MODEL_ARCH_QWEN3);
    CHECK(c.qk_norm && !c.attention_bias && c.tie_word_embeddings);
    CHECK_INT_EQ(c.head_dim, 128);
    CHECK(c.quantized && c.quant_bits == 4 && c.quant_group_size == 64);
    const char *q2 = "{\"model_type\":\"qwen2\",\"hidden_size\":896,\"num_hidden_layers\":24,"
                     "\"num_attention_heads\":14,\"num_key_value_heads\":2,"
                     "\"intermediate_size\":4864,\"vocab_size\":151936,"
                     "\"sliding_window\":32768,\"use_sliding_window\":false}";
    CHECK_INT_EQ(model_config_parse(q2, strlen(q2), &c, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(c.arch, MODEL_ARCH_QWEN2);
    CHECK(c.attention_bias && !c.qk_norm);
    CHECK_INT_EQ(c.head_dim, 64);
    CHECK_INT_EQ(c.sliding_window, 0);
    const char *yarn = "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":1,"
                       "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":8,"
                       "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0}}";
    CHECK_INT_EQ(model_config_parse(yarn, strlen(yarn), &c, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    CHECK(strstr(err, "yarn") != NULL);
    const char *rp = "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,"
                     "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":8,"
                     "\"rope_parameters\":{\"rope_type\":\"linear\",\"factor\":2.0,"
                     "\"rope_theta\":1000.0}}";
    CHECK_INT_EQ(model_config_parse(rp, strlen(rp), &c, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(c.rope_scaling, MODEL_ROPE_SCALING_LINEAR);
    CHECK(c.rope_theta == 1000.0f && c.rope_factor == 2.0f);
    const char *gqa = "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,"
                      "\"num_attention_heads\":4,\"num_key_value_heads\":3,"
                      "\"intermediate_size\":8,\"vocab_size\":8}";
    CHECK_INT_EQ(model_config_parse(gqa, strlen(gqa), &c, err, sizeof(err)), ST_ERR_INVALID);
    const char *huge = "{\"model_type\":\"llama\",\"hidden_size\":1e12,\"num_hidden_layers\":1,"
                       "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":8}";
    CHECK_INT_EQ(model_config_parse(huge, strlen(huge), &c, err, sizeof(err)), ST_ERR_RANGE);
    const char *qbad = "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,"
                       "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":8,"
                       "\"quantization\":{\"group_size\":48,\"bits\":4}}";
    CHECK_INT_EQ(model_config_parse(qbad, strlen(qbad), &c, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    const char *gptq = "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,"
                       "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":8,"
                       "\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4}}";
    CHECK_INT_EQ(model_config_parse(gptq, strlen(gptq), &c, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    CHECK(strstr(err, "gptq") != NULL);
}

/* --- sharded sets -------------------------------------------------------- */

static void test_sharded_index_errors(void)
{
    char dir[256], err[512] = "";
    CHECK(stb_tmpdir(dir, sizeof(dir)) == 0);
    struct stb b;
    float v[2] = {1, 2};
    int64_t s2[1] = {2};
    stb_init(&b);
    stb_add(&b, "x", "F32", 1, s2, v, 8);
    char p[512];
    snprintf(p, sizeof(p), "%s/a.safetensors", dir);
    stb_write(&b, p);
    snprintf(p, sizeof(p), "%s/b.safetensors", dir);
    stb_write(&b, p); /* the same tensor name again */
    stb_free(&b);
    struct safetensors_set *set = NULL;
    stb_write_text(dir, "model.safetensors.index.json",
                   "{\"weight_map\":{\"x\":\"a.safetensors\"}}");
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_OK);
    struct safetensors *f = NULL;
    CHECK(set && safetensors_set_find(set, "x", &f) != NULL && f != NULL);
    safetensors_set_close(set);
    set = NULL;
    stb_write_text(dir, "model.safetensors.index.json",
                   "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_MSG(strstr(err, "'x'") != NULL, "%s", err);
    stb_write_text(dir, "model.safetensors.index.json",
                   "{\"weight_map\":{\"x\":\"../a.safetensors\"}}");
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_ERR_FORMAT);
    stb_write_text(dir, "model.safetensors.index.json",
                   "{\"weight_map\":{\"x\":\"c.safetensors\"}}");
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_ERR_IO);
    CHECK_MSG(strstr(err, "c.safetensors") != NULL, "%s", err);
    stb_write_text(dir, "model.safetensors.index.json",
                   "{\"weight_map\":{\"z\":\"a.safetensors\"}}");
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_ERR_FORMAT);
    CHECK_MSG(strstr(err, "'z'") != NULL, "%s", err);
    stb_write_text(dir, "model.safetensors.index.json", "{\"weight_map\":[1]}");
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_ERR_FORMAT);
    stb_write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{}}");
    CHECK_INT_EQ(safetensors_set_open(dir, &set, err, sizeof(err)), ST_ERR_NOT_FOUND);
    stb_rmdir(dir);
}

static void test_sharded_fixture(void)
{
    struct safetensors_set *set = NULL;
    char err[512] = "";
    CHECK_INT_EQ(safetensors_set_open(fixture("aidreams-260k-sharded"), &set, err, sizeof(err)),
                 ST_OK);
    if (!set)
        return;
    CHECK_INT_EQ(safetensors_set_n_files(set), 2);
    struct safetensors *f = NULL;
    CHECK(safetensors_set_find(set, "model.layers.1.mlp.down_proj.weight", &f) != NULL);
    CHECK(f && strstr(safetensors_path(f), "model-00002-of-00002") != NULL);
    CHECK(safetensors_set_find(set, "model.layers.1.mlp.up_proj.weight", &f) != NULL);
    CHECK(f && strstr(safetensors_path(f), "model-00001-of-00002") != NULL);
    safetensors_set_close(set);
}

int main(void)
{
    if (stb_tmpdir(tmp, sizeof(tmp)) != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_good_file);
    RUN(test_truncated_everywhere);
    RUN(test_header_length);
    RUN(test_bad_headers);
    RUN(test_random_garbage);
    RUN(test_model_missing_tensor);
    RUN(test_model_wrong_shape);
    RUN(test_model_config_errors);
    RUN(test_model_unaligned_mmap);
    RUN(test_config_parse);
    RUN(test_sharded_index_errors);
    RUN(test_sharded_fixture);
    stb_rmdir(tmp);
    return harness_finish();
}
