/*
 * test_mkmodel.c - `mlx-manager mkmodel` end to end: tiny models of every
 * arch and dtype are written into temp dirs, then checked file by file
 * (config keys, tensor names/dtypes/shapes), loaded by the engine's
 * tokenizer (round trip) and model (one forward step with finite logits).
 * Also the synthetic tokenizer's structure at a real vocab size, a copied
 * tokenizer, sharding, determinism, MLX output equal to quantizing the f16
 * model, and argument validation.
 */
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat_template.h"
#include "harness.h"
#include "kv_cache.h"
#include "mkmodel.h"
#include "model.h"
#include "quant.h"
#include "quantize.h"
#include "safetensors.h"
#include "tensor.h"
#include "tokenizer.h"

/* ---- helpers ---- */

static char tmp_root[64];

static void remove_dir(const char *dir)
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
        if (e->d_type == DT_DIR)
            remove_dir(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Runs `mlx-manager mkmodel <args>` quietly; returns its exit status. */
static int mkmodel(const char *args)
{
    const char *build = getenv("BUILD");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s/mlx-manager mkmodel %s >%s/out.txt 2>&1",
             build && *build ? build : "build", args, tmp_root);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The last run's output (static buffer). */
static const char *last_output(void)
{
    static char buf[4096];
    char path[128];
    snprintf(path, sizeof(path), "%s/out.txt", tmp_root);
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
    buf[n] = 0;
    if (fp)
        fclose(fp);
    return buf;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = 0;
    fclose(fp);
    if (len)
        *len = (size_t)n;
    return buf;
}

static cJSON *read_json(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *text = slurp(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -12345;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Encodes then decodes `text` (no special tokens added); true when equal. */
static bool tok_round_trip(const struct tokenizer *tok, const char *text)
{
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    bool ok = tok_encode(tok, text, strlen(text), TOK_ENCODE_PARSE_SPECIAL, &ids, &n) == ST_OK &&
              tok_decode(tok, ids, n, 0, &back) == ST_OK && strcmp(back, text) == 0;
    if (!ok)
        fprintf(stderr, "  round trip failed for \"%s\" -> \"%s\"\n", text, back ? back : "");
    free(ids);
    free(back);
    return ok;
}

/* Loads dir's model and runs 3 tokens through it; true when every logit of
 * the last position is finite and they are not all the same. */
static bool forward_is_finite(const char *dir)
{
    char err[512] = "";
    struct model *m = NULL;
    struct kv_cache *kv = NULL;
    float *logits = NULL;
    bool ok = false;
    if (model_load(dir, NULL, &m, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "  model_load(%s): %s\n", dir, err);
        return false;
    }
    const struct model_config *cfg = model_get_config(m);
    int seq = -1;
    if (kv_cache_create(cfg, 8, 0, DTYPE_F32, 1, &kv, err, sizeof(err)) == ST_OK &&
        kv_seq_create(kv, &seq, err, sizeof(err)) == ST_OK &&
        (logits = malloc((size_t)cfg->vocab * sizeof(float))) != NULL) {
        int32_t toks[3] = {1, 42, 7};
        struct model_batch_seq s = {seq, 0, 3, toks, 1};
        struct model_batch b = {&s, 1};
        if (model_forward(m, kv, &b, logits, err, sizeof(err)) == ST_OK) {
            ok = true;
            float lo = logits[0], hi = logits[0];
            for (int i = 0; i < cfg->vocab; i++) {
                ok &= isfinite(logits[i]) != 0;
                lo = fminf(lo, logits[i]);
                hi = fmaxf(hi, logits[i]);
            }
            ok &= hi > lo;
        }
    }
    if (!ok)
        fprintf(stderr, "  forward on %s failed: %s\n", dir, err);
    free(logits);
    kv_cache_free(kv);
    model_free(m);
    return ok;
}

/* ---- every arch x dtype ---- */

static void check_tiny(const char *arch, const char *dtype)
{
    char dir[256], args[512];
    snprintf(dir, sizeof(dir), "%s/%s-%s", tmp_root, arch, dtype);
    snprintf(args, sizeof(args), "--arch %s --preset tiny --dtype %s --seed 3 --out %s", arch,
             dtype, dir);
    int rc = mkmodel(args);
    CHECK_MSG(rc == 0, "mkmodel %s exited %d: %s", args, rc, last_output());
    if (rc != 0)
        return;
    bool mlx = !strncmp(dtype, "mlx", 3);
    bool qwen2 = !strcmp(arch, "qwen2"), qwen3 = !strcmp(arch, "qwen3");
    CHECK(file_exists(dir, "model.safetensors"));
    CHECK(file_exists(dir, "tokenizer.json"));
    CHECK(file_exists(dir, "tokenizer_config.json"));
    CHECK(file_exists(dir, "generation_config.json"));
    CHECK(file_exists(dir, "model.safetensors.index.json") == mlx);

    cJSON *cfg = read_json(dir, "config.json");
    CHECK(cfg != NULL);
    CHECK_STR_EQ(json_str(cfg, "model_type"), arch);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const char *cls = qwen2 ? "Qwen2ForCausalLM" : qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
    CHECK(cJSON_IsArray(archs) && !strcmp(cJSON_GetArrayItem(archs, 0)->valuestring, cls));
    CHECK_INT_EQ(json_num(cfg, "hidden_size"), 64);
    CHECK_INT_EQ(json_num(cfg, "num_hidden_layers"), 2);
    CHECK_INT_EQ(json_num(cfg, "num_attention_heads"), 4);
    CHECK_INT_EQ(json_num(cfg, "num_key_value_heads"), 2);
    CHECK_INT_EQ(json_num(cfg, "intermediate_size"), 128);
    CHECK_INT_EQ(json_num(cfg, "head_dim"), 16);
    CHECK_INT_EQ(json_num(cfg, "vocab_size"), 512);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings")));
    const char *torch = !strcmp(dtype, "f32")    ? "float32"
                        : !strcmp(dtype, "bf16") ? "bfloat16"
                                                 : "float16";
    CHECK_STR_EQ(json_str(cfg, "torch_dtype"), torch);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    CHECK((q != NULL) == mlx);
    if (mlx) {
        CHECK_INT_EQ(json_num(q, "bits"), dtype[4] - '0');
        CHECK_INT_EQ(json_num(q, "group_size"), 64);
        CHECK_STR_EQ(json_str(q, "mode"), "affine");
        CHECK(cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config") != NULL);
    }
    /* keys sorted, as mlx-lm and transformers write them */
    const char *prev = "";
    for (const cJSON *c = cfg ? cfg->child : NULL; c; c = c->next) {
        CHECK_MSG(strcmp(prev, c->string) < 0, "config key %s after %s", c->string, prev);
        prev = c->string;
    }
    int bos = (int)json_num(cfg, "bos_token_id"), eos = (int)json_num(cfg, "eos_token_id");
    cJSON_Delete(cfg);

    /* tensors */
    char err[512] = "", path[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    struct safetensors *st = NULL;
    CHECK_INT_EQ(safetensors_open(path, &st, err, sizeof(err)), ST_OK);
    if (st) {
        CHECK_STR_EQ(safetensors_metadata(st, "format"), mlx ? "mlx" : "pt");
        enum dtype fdt = !strcmp(dtype, "f32")    ? DTYPE_F32
                         : !strcmp(dtype, "bf16") ? DTYPE_BF16
                                                  : DTYPE_F16;
        const struct safetensors_tensor *t = safetensors_find(st, "model.embed_tokens.weight");
        CHECK(t != NULL);
        if (t && mlx) {
            int bits = dtype[4] - '0';
            CHECK(t->dtype == DTYPE_U32 && t->shape[0] == 512 && t->shape[1] == 64 * bits / 32);
            const struct safetensors_tensor *s = safetensors_find(st, "model.embed_tokens.scales");
            CHECK(s && s->dtype == DTYPE_F16 && s->shape[1] == 1);
            CHECK(safetensors_find(st, "model.embed_tokens.biases") != NULL);
        } else if (t) {
            CHECK(t->dtype == fdt && t->shape[0] == 512 && t->shape[1] == 64);
        }
        t = safetensors_find(st, "model.layers.1.input_layernorm.weight");
        CHECK(t && t->dtype == fdt && t->ndim == 1 && t->shape[0] == 64);
        CHECK(safetensors_find(st, "model.layers.1.mlp.down_proj.weight") != NULL);
        CHECK(safetensors_find(st, "model.norm.weight") != NULL);
        CHECK(safetensors_find(st, "lm_head.weight") == NULL);
        t = safetensors_find(st, "model.layers.0.self_attn.q_proj.bias");
        CHECK((t != NULL) == qwen2);
        CHECK(!t || (t->dtype == fdt && t->shape[0] == 64));
        t = safetensors_find(st, "model.layers.0.self_attn.k_norm.weight");
        CHECK((t != NULL) == qwen3);
        CHECK(!t || t->shape[0] == 16);
        CHECK_INT_EQ(safetensors_count(st),
                     (size_t)(1 + 2 * (9 + (qwen2 ? 3 : 0) + (qwen3 ? 2 : 0)) + 1) +
                         (mlx ? 2 * (1 + 2 * 7) : 0));
        safetensors_close(st);
    }

    /* the engine's tokenizer loads it, the ids are the config's, text survives */
    struct tokenizer *tok = NULL;
    CHECK_INT_EQ(tok_load(dir, &tok, err, sizeof(err)), ST_OK);
    if (tok) {
        CHECK_INT_EQ(tok_vocab_size(tok), 512);
        CHECK_INT_EQ(tok_token_to_id(tok, "<|im_end|>", 10), eos);
        CHECK_INT_EQ(tok_token_to_id(tok, qwen2 || qwen3 ? "<|endoftext|>" : "<|begin_of_text|>",
                                     qwen2 || qwen3 ? 13 : 17),
                     bos);
        CHECK(tok_is_eos(tok, eos));
        CHECK(tok_round_trip(tok, "Hello world! The model reads the text."));
        CHECK(tok_round_trip(tok, "Grüße, 日本語, emoji 🎉 and tabs\tand\r\nnewlines  "));
        CHECK(tok_round_trip(tok, "<|im_start|>user\nhi<|im_end|>\n"));
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_INT_EQ(tok_encode(tok, "the", 3, TOK_ENCODE_ADD_SPECIAL, &ids, &n), ST_OK);
        /* Llama 3 style puts BOS first; Qwen adds nothing */
        CHECK(n >= 1 && (ids[0] == bos) == !(qwen2 || qwen3));
        free(ids);
        tok_free(tok);
    }
    /* the ChatML template renders in the engine's Jinja */
    struct chat_template *ct = NULL;
    CHECK_INT_EQ(chat_template_load(dir, &ct, err, sizeof(err)), ST_OK);
    if (ct) {
        cJSON *ctx =
            cJSON_Parse("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                        "{\"role\": \"user\", \"content\": \"Hi!\"}], "
                        "\"add_generation_prompt\": true}");
        char *out = NULL;
        CHECK_INT_EQ(chat_template_render(ct, ctx, &out, NULL, err, sizeof(err)), ST_OK);
        const char *want =
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>"
            "\n<|im_start|>assistant\n";
        CHECK(out && !strncmp(out, "<|begin_of_text|>", 17) == !(qwen2 || qwen3));
        CHECK_STR_EQ(out ? out + (qwen2 || qwen3 ? 0 : 17) : NULL, want);
        free(out);
        cJSON_Delete(ctx);
        chat_template_free(ct);
    }
    CHECK(forward_is_finite(dir));
    remove_dir(dir);
}

static void test_tiny_every_arch_and_dtype(void)
{
    static const char *const archs[] = {"llama", "qwen2", "qwen3"};
    static const char *const dtypes[] = {"f32", "f16", "bf16", "mlx-4bit", "mlx-8bit"};
    for (int a = 0; a < 3; a++)
        for (int d = 0; d < 5; d++)
            check_tiny(archs[a], dtypes[d]);
}

/* ---- the synthetic tokenizer at a real vocab size ---- */

/* Ids 0..n-1 are the vocab, the added tokens sit right above it, every merge
 * joins two vocab tokens into a vocab token that earlier merges could build.
 * Token lookups go through the engine's tokenizer (cJSON's are linear). */
static int lookup(const struct tokenizer *tok, const char *s)
{
    return tok ? tok_token_to_id(tok, s, strlen(s)) : -1;
}

static void check_tokenizer_structure(const char *dir, int vocab_size)
{
    char err[256] = "";
    struct tokenizer *tok = NULL;
    CHECK_INT_EQ(tok_load(dir, &tok, err, sizeof(err)), ST_OK);
    char path[512];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    char *text = slurp(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(j != NULL);
    if (!j)
        return;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    int n_vocab = cJSON_GetArraySize(vocab), n_added = cJSON_GetArraySize(added);
    CHECK_INT_EQ(n_vocab + n_added, vocab_size);
    CHECK_INT_EQ(cJSON_GetArraySize(merges), n_vocab - 256);
    int i = 0, bad_ids = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) bad_ids += (int)v->valuedouble != i++;
    CHECK_INT_EQ(bad_ids, 0);
    i = n_vocab;
    cJSON_ArrayForEach(v, added)
    {
        CHECK_INT_EQ(json_num(v, "id"), i++);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "special")));
    }
    /* rank of the merge that creates each token (-1: a byte token) */
    int *made_at = malloc((size_t)n_vocab * sizeof(int));
    for (int k = 0; k < n_vocab; k++)
        made_at[k] = k < 256 ? -1 : -2;
    int bad = 0, rank = 0;
    cJSON_ArrayForEach(v, merges)
    {
        const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
        char joined[1024];
        snprintf(joined, sizeof(joined), "%s%s", a->valuestring, b->valuestring);
        int ia = lookup(tok, a->valuestring), ib = lookup(tok, b->valuestring);
        int ij = lookup(tok, joined);
        if (ia < 0 || ib < 0 || ij < 0 || ia >= n_vocab || ib >= n_vocab || ij >= n_vocab ||
            made_at[ia] == -2 || made_at[ib] == -2 || made_at[ia] >= rank || made_at[ib] >= rank) {
            bad++;
        } else if (made_at[ij] == -2) {
            made_at[ij] = rank;
        }
        rank++;
    }
    CHECK_INT_EQ(bad, 0);
    int unmade = 0;
    for (int k = 0; k < n_vocab; k++)
        unmade += made_at[k] == -2;
    CHECK_INT_EQ(unmade, 0);
    free(made_at);
    cJSON_Delete(j);
    tok_free(tok);
}

static void test_tokenizer_at_qwen_vocab(void)
{
    char dir[256], args[512], err[256] = "";
    snprintf(dir, sizeof(dir), "%s/qwen-vocab", tmp_root);
    snprintf(args, sizeof(args),
             "--arch qwen3 --preset tiny --vocab 151936 --layers 1 --dtype f16 --out %s", dir);
    CHECK_INT_EQ(mkmodel(args), 0);
    check_tokenizer_structure(dir, 151936);
    struct tokenizer *tok = NULL;
    CHECK_INT_EQ(tok_load(dir, &tok, err, sizeof(err)), ST_OK);
    if (tok) {
        CHECK_INT_EQ(tok_vocab_size(tok), 151936);
        CHECK(tok_round_trip(tok, "The quick brown fox jumps over the lazy dog."));
        CHECK(tok_round_trip(
            tok, "Ünïcödé — ελληνικά, русский, 中文 🙂👍🏽"));
        /* merges learned from English make common words single tokens */
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_INT_EQ(tok_encode(tok, " the", 4, 0, &ids, &n), ST_OK);
        CHECK_INT_EQ(n, 1);
        free(ids);
        tok_free(tok);
    }
    cJSON *cfg = read_json(dir, "tokenizer_config.json");
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    CHECK(cJSON_IsString(tmpl) && strstr(tmpl->valuestring, "<|im_start|>") != NULL);
    CHECK_STR_EQ(json_str(cfg, "eos_token"), "<|im_end|>");
    cJSON_Delete(cfg);
    remove_dir(dir);
    snprintf(dir, sizeof(dir), "%s/tiny-vocab", tmp_root);
    snprintf(args, sizeof(args), "--arch llama --preset tiny --dtype f16 --out %s", dir);
    CHECK_INT_EQ(mkmodel(args), 0);
    check_tokenizer_structure(dir, 512);
    remove_dir(dir);
}

/* ---- a real tokenizer copied in ---- */

static void test_copied_tokenizer(void)
{
    char dir[256], args[1024], src[512];
    snprintf(src, sizeof(src), "%s/fixtures/tokenizers/qwen3", harness_shared_dir());
    snprintf(dir, sizeof(dir), "%s/copied", tmp_root);
    snprintf(args, sizeof(args),
             "--arch qwen3 --preset tiny --vocab 151936 --layers 1 --dtype mlx-4bit "
             "--tokenizer %s --out %s",
             src, dir);
    CHECK_INT_EQ(mkmodel(args), 0);
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/tokenizer.json", src);
    snprintf(b, sizeof(b), "%s/tokenizer.json", dir);
    size_t la = 0, lb = 0;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    CHECK(x && y && la == lb && memcmp(x, y, la) == 0);
    free(x);
    free(y);
    cJSON *cfg = read_json(dir, "config.json");
    CHECK_INT_EQ(json_num(cfg, "eos_token_id"), 151645); /* <|im_end|> */
    CHECK_INT_EQ(json_num(cfg, "bos_token_id"), 151643); /* <|endoftext|>, as Qwen writes */
    cJSON_Delete(cfg);
    CHECK(forward_is_finite(dir));
    remove_dir(dir);
    /* a vocab too small for the tokenizer is refused */
    snprintf(args, sizeof(args), "--arch qwen3 --preset tiny --dtype f16 --tokenizer %s --out %s",
             src, dir);
    CHECK_INT_EQ(mkmodel(args), 1);
    CHECK(strstr(last_output(), "vocab") != NULL);
    remove_dir(dir);
}

/* ---- sharding, determinism, MLX = quantize(f16) ---- */

static void test_sharded_model_loads(void)
{
    char dir[256], args[512];
    snprintf(dir, sizeof(dir), "%s/sharded", tmp_root);
    /* 3.7 MB of f32 weights */
    snprintf(args, sizeof(args),
             "--arch llama --hidden 128 --layers 4 --heads 4 --ffn 256 --vocab 1024 --no-tie "
             "--dtype f32 --shard-mb 1 --out %s",
             dir);
    CHECK_INT_EQ(mkmodel(args), 0);
    /* 3.7 MB in shards of at most 1 MB (one tensor alone may be larger) */
    cJSON *idx = read_json(dir, "model.safetensors.index.json");
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map"), *e;
    int shards = 0;
    cJSON_ArrayForEach(e, map)
    {
        int k = 0, of = 0;
        CHECK(sscanf(e->valuestring, "model-%05d-of-%05d.safetensors", &k, &of) == 2);
        CHECK(file_exists(dir, e->valuestring));
        shards = of;
    }
    CHECK(shards >= 4);
    CHECK_INT_EQ(json_num(cJSON_GetObjectItemCaseSensitive(idx, "metadata"), "total_size"),
                 4 * (2 * 1024 * 128 + 4 * (4 * 128 * 128 + 3 * 128 * 256 + 2 * 128) + 128));
    cJSON_Delete(idx);
    CHECK(!file_exists(dir, "model.safetensors"));
    cJSON *cfg = read_json(dir, "config.json");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings")));
    cJSON_Delete(cfg);
    CHECK(forward_is_finite(dir));
    /* --force replaces the sharded model with a single file */
    snprintf(args, sizeof(args), "--arch llama --preset tiny --dtype f16 --force --out %s", dir);
    CHECK_INT_EQ(mkmodel(args), 0);
    CHECK(!file_exists(dir, "model-00001-of-00004.safetensors"));
    CHECK(!file_exists(dir, "model.safetensors.index.json"));
    CHECK(forward_is_finite(dir));
    remove_dir(dir);
}

static char *model_bytes(const char *dir, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    return slurp(path, len);
}

static void test_deterministic_by_seed(void)
{
    char d1[256], d2[256], d3[256], args[512];
    snprintf(d1, sizeof(d1), "%s/seed-a", tmp_root);
    snprintf(d2, sizeof(d2), "%s/seed-b", tmp_root);
    snprintf(d3, sizeof(d3), "%s/seed-c", tmp_root);
    snprintf(args, sizeof(args), "--arch qwen2 --preset tiny --dtype bf16 --seed 9 --out %s", d1);
    CHECK_INT_EQ(mkmodel(args), 0);
    snprintf(args, sizeof(args), "--arch qwen2 --preset tiny --dtype bf16 --seed 9 --out %s", d2);
    CHECK_INT_EQ(mkmodel(args), 0);
    snprintf(args, sizeof(args), "--arch qwen2 --preset tiny --dtype bf16 --seed 10 --out %s", d3);
    CHECK_INT_EQ(mkmodel(args), 0);
    size_t l1 = 0, l2 = 0, l3 = 0;
    char *a = model_bytes(d1, &l1), *b = model_bytes(d2, &l2), *c = model_bytes(d3, &l3);
    CHECK(a && b && c && l1 == l2 && l1 == l3);
    CHECK(a && b && memcmp(a, b, l1) == 0);
    CHECK(a && c && memcmp(a, c, l1) != 0);
    free(a);
    free(b);
    free(c);
    remove_dir(d1);
    remove_dir(d2);
    remove_dir(d3);
}

/* The MLX model is the f16 model (same seed) run through the quantizer. */
static void test_mlx_is_quantized_f16(void)
{
    char df[256], dq[256], args[512], err[256] = "", path[512];
    snprintf(df, sizeof(df), "%s/q-f16", tmp_root);
    snprintf(dq, sizeof(dq), "%s/q-mlx", tmp_root);
    /* a 32768 x 64 embedding is big enough to be quantized by several threads */
    snprintf(args, sizeof(args),
             "--arch llama --preset tiny --vocab 32768 --dtype f16 --seed 5 --out %s", df);
    CHECK_INT_EQ(mkmodel(args), 0);
    snprintf(args, sizeof(args),
             "--arch llama --preset tiny --vocab 32768 --dtype mlx-3bit --group-size 32 --seed 5 "
             "--out %s",
             dq);
    CHECK_INT_EQ(mkmodel(args), 0);
    struct safetensors *sf = NULL, *sq = NULL;
    snprintf(path, sizeof(path), "%s/model.safetensors", df);
    CHECK_INT_EQ(safetensors_open(path, &sf, err, sizeof(err)), ST_OK);
    snprintf(path, sizeof(path), "%s/model.safetensors", dq);
    CHECK_INT_EQ(safetensors_open(path, &sq, err, sizeof(err)), ST_OK);
    if (sf && sq) {
        static const char *const names[] = {"model.embed_tokens", "model.layers.1.mlp.down_proj"};
        for (int i = 0; i < 2; i++) {
            char w[128], s[128], b[128];
            snprintf(w, sizeof(w), "%s.weight", names[i]);
            snprintf(s, sizeof(s), "%s.scales", names[i]);
            snprintf(b, sizeof(b), "%s.biases", names[i]);
            const struct safetensors_tensor *tf = safetensors_find(sf, w);
            const struct safetensors_tensor *tw = safetensors_find(sq, w);
            const struct safetensors_tensor *ts = safetensors_find(sq, s);
            const struct safetensors_tensor *tb = safetensors_find(sq, b);
            CHECK(tf && tw && ts && tb);
            if (!tf || !tw || !ts || !tb)
                continue;
            size_t rows = (size_t)tf->shape[0], cols = (size_t)tf->shape[1];
            uint16_t *h = malloc(rows * cols * 2), *gs = malloc(rows * cols / 16);
            uint16_t *gb = malloc(rows * cols / 16), *ws = malloc(rows * cols / 16);
            uint16_t *wb = malloc(rows * cols / 16);
            uint32_t *gq = malloc(rows * cols * 3 / 8), *wq = malloc(rows * cols * 3 / 8);
            float *f = malloc(rows * cols * sizeof(float));
            CHECK_INT_EQ(safetensors_read(sf, tf, h, err, sizeof(err)), ST_OK);
            CHECK_INT_EQ(safetensors_read(sq, tw, gq, err, sizeof(err)), ST_OK);
            CHECK_INT_EQ(safetensors_read(sq, ts, gs, err, sizeof(err)), ST_OK);
            CHECK_INT_EQ(safetensors_read(sq, tb, gb, err, sizeof(err)), ST_OK);
            for (size_t k = 0; k < rows * cols; k++)
                f[k] = f16_to_f32(h[k]);
            CHECK_INT_EQ(quantize_affine(f, rows, cols, 3, 32, wq, ws, wb, err, sizeof(err)),
                         ST_OK);
            CHECK(memcmp(gq, wq, rows * cols * 3 / 8) == 0);
            CHECK(memcmp(gs, ws, rows * cols / 16) == 0);
            CHECK(memcmp(gb, wb, rows * cols / 16) == 0);
            free(h);
            free(gs);
            free(gb);
            free(ws);
            free(wb);
            free(gq);
            free(wq);
            free(f);
        }
    }
    safetensors_close(sf);
    safetensors_close(sq);
    CHECK(forward_is_finite(dq));
    remove_dir(df);
    remove_dir(dq);
}

/* ---- the Python-json-style printer ---- */

static void test_json_print_like_python(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "zeta", "tab\t \"q\" \\ \x01 \xc4\xa0");
    cJSON_AddRawToObject(o, "eps", "1e-05");
    cJSON_AddNumberToObject(o, "n", 151936);
    cJSON *q = cJSON_AddObjectToObject(o, "quant");
    cJSON_AddNumberToObject(q, "group_size", 64);
    cJSON_AddNumberToObject(q, "bits", 4);
    cJSON_AddArrayToObject(o, "empty");
    cJSON *arr = cJSON_AddArrayToObject(o, "list");
    cJSON_AddItemToArray(arr, cJSON_CreateNull());
    cJSON_AddItemToArray(arr, cJSON_CreateTrue());
    char *top = mkmodel_json_print(o, 4, true, false);
    CHECK_STR_EQ(top, "{\n"
                      "    \"empty\": [],\n"
                      "    \"eps\": 1e-05,\n"
                      "    \"list\": [\n"
                      "        null,\n"
                      "        true\n"
                      "    ],\n"
                      "    \"n\": 151936,\n"
                      "    \"quant\": {\n"
                      "        \"group_size\": 64,\n"
                      "        \"bits\": 4\n"
                      "    },\n"
                      "    \"zeta\": \"tab\\t \\\"q\\\" \\\\ \\u0001 \xc4\xa0\"\n"
                      "}");
    char *all = mkmodel_json_print(q, 2, true, true);
    CHECK_STR_EQ(all, "{\n  \"bits\": 4,\n  \"group_size\": 64\n}");
    free(top);
    free(all);
    cJSON_Delete(o);
}

/* ---- argument validation ---- */

static void test_rejects_bad_arguments(void)
{
    char dir[256], args[512];
    snprintf(dir, sizeof(dir), "%s/bad", tmp_root);
    static const struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"--arch gpt2 --preset tiny --dtype f16", 2, "unknown --arch"},
        {"--arch llama --preset huge --dtype f16", 2, "unknown --preset"},
        {"--arch llama --preset tiny --dtype f8", 2, "unknown --dtype"},
        {"--arch llama --preset tiny", 2, "--dtype is required"},
        {"--arch qwen2 --preset llama-3.2-1b --dtype f16", 2, "llama model"},
        {"--arch llama --hidden 64 --layers 2 --dtype f16", 2, "required"},
        {"--arch llama --preset tiny --heads 4 --kv-heads 3 --dtype f16", 2, "multiple"},
        {"--arch llama --preset tiny --dtype f16 --bits 4", 2, "only apply"},
        {"--arch llama --preset tiny --dtype mlx-7bit", 2, "unsupported quantization"},
        {"--arch llama --preset tiny --dtype mlx-4bit --group-size 48", 2,
         "unsupported quantization"},
        {"--arch llama --preset tiny --dtype f16 --hidden -5", 2, "integer"},
        {"--arch llama --preset tiny --dtype f16 --hidden 66 --heads 4 --head-dim 0", 2, "integer"},
        {"--arch llama --preset tiny --dtype f16 --vocab 100", 2, "too small"},
        {"--arch llama --preset tiny --dtype f16 --frobnicate 1", 2, "unknown option"},
        {"--arch llama --preset tiny --dtype f16 --tokenizer /nonexistent/tok", 2,
         "not a directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(args, sizeof(args), "%s --out %s", cases[i].args, dir);
        int rc = mkmodel(args);
        CHECK_MSG(rc == cases[i].rc, "'%s' exited %d, not %d", cases[i].args, rc, cases[i].rc);
        CHECK_MSG(strstr(last_output(), cases[i].msg) != NULL, "'%s' said: %s", cases[i].args,
                  last_output());
        remove_dir(dir);
    }
    CHECK_INT_EQ(mkmodel("--arch llama --preset tiny --dtype f16"), 2);
    CHECK(strstr(last_output(), "--out") != NULL);
    /* an existing non-empty dir needs --force */
    snprintf(args, sizeof(args), "--arch llama --preset tiny --dtype f16 --out %s", dir);
    CHECK_INT_EQ(mkmodel(args), 0);
    CHECK_INT_EQ(mkmodel(args), 1);
    CHECK(strstr(last_output(), "--force") != NULL);
    CHECK_INT_EQ(mkmodel("--help"), 0);
    CHECK(strstr(last_output(), "usage:") != NULL);
    remove_dir(dir);
}

int main(void)
{
    harness_shared_dir();
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/mlxm-mkmodel-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_tiny_every_arch_and_dtype);
    RUN(test_tokenizer_at_qwen_vocab);
    RUN(test_copied_tokenizer);
    RUN(test_sharded_model_loads);
    RUN(test_deterministic_by_seed);
    RUN(test_mlx_is_quantized_f16);
    RUN(test_json_print_like_python);
    RUN(test_rejects_bad_arguments);
    remove_dir(tmp_root);
    return harness_finish();
}
