/*
 * cli_mkmodel.c - `mlx-manager mkmodel`: writes a random-weight model folder
 * in exactly the layout transformers (float dtypes) or mlx-lm (MLX affine
 * quantized) would write for a Llama / Qwen2 / Qwen3 model, so every loader
 * path can be tested and benchmarked at real model sizes without
 * downloading anything.
 *
 * Weights are uniform with a standard deviation of 0.02 (norm weights 1),
 * drawn from a per-tensor generator seeded by --seed and the tensor's name,
 * so a tensor's values do not depend on which other tensors exist.  Data is
 * produced tensor by tensor while it is written: memory stays at one chunk
 * of a float tensor, or one quantized tensor's packed output.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "mkmodel.h"
#include "quant.h"
#include "quantize.h"
#include "safetensors_write.h"
#include "tensor.h"

#define MK_INIT_STD 0.02f
/* Elements generated per chunk of a float tensor. */
#define MK_CHUNK_ELEMS (1u << 20)
#define MK_MAX_DIM (1 << 20)
#define MK_MAX_PARAMS 200000000000.0
#define MK_MAX_THREADS 8

enum mk_arch { MK_LLAMA, MK_QWEN2, MK_QWEN3 };
enum mk_dtype { MK_F32, MK_F16, MK_BF16, MK_MLX };

struct mk_opts {
    enum mk_arch arch;
    long hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
    enum mk_dtype dtype;
    int bits, group_size;
    uint64_t seed;
    const char *tokenizer;
    const char *out;
    bool force;
    bool tie;
    long max_pos;
    const char *rope_theta; /* spelled as Python prints the float */
    const char *rms_eps;
    bool llama3_rope; /* the llama-3.2-1b preset's rope_scaling */
    uint64_t shard_bytes;
};

/* ---- tensors ---- */

enum mk_kind { MK_MATRIX, MK_NORM, MK_BIAS };

struct mk_tensor {
    char name[160]; /* the float tensor's name ("....weight" / "....bias") */
    enum mk_kind kind;
    int64_t rows, cols; /* 1-D tensors: rows = 1 */
    bool quantized;
    uint64_t seed;
    /* a quantized tensor's outputs, alive from its first part to its last */
    uint32_t *q;
    uint16_t *scales, *biases;
    int parts_left;
};

/* Draw k of a tensor's generator: splitmix64's k-th output from `seed`,
 * computed directly so any slice of a tensor can be generated on its own. */
static uint64_t mk_draw(uint64_t seed, uint64_t k)
{
    uint64_t z = seed + (k + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/*
 * Elements first .. first+n-1 (row-major) of tensor t.  Uniform on [-a, a)
 * with a = std * sqrt(3); each 64-bit draw gives two elements, which keeps
 * the 1B-parameter presets quick to write.  The values do not depend on how
 * a tensor is cut into chunks.
 */
static void mk_generate(const struct mk_tensor *t, uint64_t first, float *out, size_t n)
{
    if (t->kind == MK_NORM) {
        for (size_t i = 0; i < n; i++)
            out[i] = 1.0f;
        return;
    }
    const float a = MK_INIT_STD * 1.7320508f * 0x1p-31f;
    uint64_t e = first;
    for (size_t i = 0; i < n;) {
        uint64_t r = mk_draw(t->seed, e >> 1);
        if (!(e & 1) && i + 1 < n) {
            out[i] = (float)(int32_t)(uint32_t)r * a;
            out[i + 1] = (float)(int32_t)(uint32_t)(r >> 32) * a;
            i += 2;
            e += 2;
        } else {
            out[i] = (float)(int32_t)(uint32_t)((e & 1) ? r >> 32 : r) * a;
            i++;
            e++;
        }
    }
}

static void mk_add_tensor(struct mk_tensor *list, size_t *n, const struct mk_opts *o,
                          const char *name, enum mk_kind kind, int64_t rows, int64_t cols)
{
    if (!list) { /* counting only */
        (*n)++;
        return;
    }
    struct mk_tensor *t = &list[(*n)++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->kind = kind;
    t->rows = rows;
    t->cols = cols;
    /* mlx-lm quantizes every Linear and Embedding whose input dim divides into groups */
    t->quantized = o->dtype == MK_MLX && kind == MK_MATRIX && cols % o->group_size == 0;
    t->seed = o->seed ^ name_hash(name);
}

/* All tensors of the model, in the HF naming; with list NULL only counts them. */
static size_t mk_plan(const struct mk_opts *o, struct mk_tensor *list)
{
    size_t n = 0;
    char name[160];
    int64_t h = o->hidden, q_dim = o->heads * o->head_dim, kv_dim = o->kv_heads * o->head_dim;
    mk_add_tensor(list, &n, o, "model.embed_tokens.weight", MK_MATRIX, o->vocab, h);
    for (long l = 0; l < o->layers; l++) {
        static const char *const attn[] = {"q", "k", "v", "o"};
        for (int i = 0; i < 4; i++) {
            int64_t rows = i == 0 ? q_dim : i == 3 ? h : kv_dim;
            int64_t cols = i == 3 ? q_dim : h;
            snprintf(name, sizeof(name), "model.layers.%ld.self_attn.%s_proj.weight", l, attn[i]);
            mk_add_tensor(list, &n, o, name, MK_MATRIX, rows, cols);
            if (o->arch == MK_QWEN2 && i < 3) {
                snprintf(name, sizeof(name), "model.layers.%ld.self_attn.%s_proj.bias", l, attn[i]);
                mk_add_tensor(list, &n, o, name, MK_BIAS, 1, rows);
            }
        }
        if (o->arch == MK_QWEN3) {
            snprintf(name, sizeof(name), "model.layers.%ld.self_attn.q_norm.weight", l);
            mk_add_tensor(list, &n, o, name, MK_NORM, 1, o->head_dim);
            snprintf(name, sizeof(name), "model.layers.%ld.self_attn.k_norm.weight", l);
            mk_add_tensor(list, &n, o, name, MK_NORM, 1, o->head_dim);
        }
        snprintf(name, sizeof(name), "model.layers.%ld.mlp.gate_proj.weight", l);
        mk_add_tensor(list, &n, o, name, MK_MATRIX, o->ffn, h);
        snprintf(name, sizeof(name), "model.layers.%ld.mlp.up_proj.weight", l);
        mk_add_tensor(list, &n, o, name, MK_MATRIX, o->ffn, h);
        snprintf(name, sizeof(name), "model.layers.%ld.mlp.down_proj.weight", l);
        mk_add_tensor(list, &n, o, name, MK_MATRIX, h, o->ffn);
        snprintf(name, sizeof(name), "model.layers.%ld.input_layernorm.weight", l);
        mk_add_tensor(list, &n, o, name, MK_NORM, 1, h);
        snprintf(name, sizeof(name), "model.layers.%ld.post_attention_layernorm.weight", l);
        mk_add_tensor(list, &n, o, name, MK_NORM, 1, h);
    }
    mk_add_tensor(list, &n, o, "model.norm.weight", MK_NORM, 1, h);
    if (!o->tie)
        mk_add_tensor(list, &n, o, "lm_head.weight", MK_MATRIX, o->vocab, h);
    return n;
}

static enum dtype mk_float_dtype(const struct mk_opts *o)
{
    switch (o->dtype) {
    case MK_F32: return DTYPE_F32;
    case MK_BF16: return DTYPE_BF16;
    default: return DTYPE_F16; /* f16, and mlx-lm's cast before quantizing */
    }
}

/* ---- writing the weights ---- */

/* Declares t's tensors: the float one, or weight/scales/biases. */
static enum status mk_declare(struct safetensors_writer *w, const struct mk_opts *o,
                              struct mk_tensor *t, char *err, size_t errlen)
{
    if (!t->quantized) {
        int64_t shape[2] = {t->rows, t->cols};
        bool one_d = t->kind != MK_MATRIX;
        return safetensors_writer_add(w, t->name, mk_float_dtype(o), one_d ? 1 : 2,
                                      one_d ? shape + 1 : shape, t, err, errlen);
    }
    size_t base = strlen(t->name) - strlen(".weight");
    char name[200];
    int64_t wshape[2] = {t->rows, t->cols * o->bits / 32};
    int64_t gshape[2] = {t->rows, t->cols / o->group_size};
    enum status st = safetensors_writer_add(w, t->name, DTYPE_U32, 2, wshape, t, err, errlen);
    snprintf(name, sizeof(name), "%.*s.scales", (int)base, t->name);
    if (st == ST_OK)
        st = safetensors_writer_add(w, name, DTYPE_F16, 2, gshape, t, err, errlen);
    snprintf(name, sizeof(name), "%.*s.biases", (int)base, t->name);
    if (st == ST_OK)
        st = safetensors_writer_add(w, name, DTYPE_F16, 2, gshape, t, err, errlen);
    t->parts_left = 3;
    return st;
}

/* Streams a float tensor in chunks of rows. */
static enum status mk_write_float(struct safetensors_writer *w, const struct mk_opts *o,
                                  const struct mk_tensor *t, float *buf, void *conv, char *err,
                                  size_t errlen)
{
    size_t total = (size_t)(t->rows * t->cols);
    enum dtype dt = mk_float_dtype(o);
    for (size_t done = 0; done < total;) {
        size_t n = total - done < MK_CHUNK_ELEMS ? total - done : MK_CHUNK_ELEMS;
        mk_generate(t, done, buf, n);
        const void *data = buf;
        size_t bytes = n * sizeof(float);
        if (dt != DTYPE_F32) {
            uint16_t *h = conv;
            for (size_t i = 0; i < n; i++)
                h[i] = dt == DTYPE_BF16 ? f32_to_bf16(buf[i]) : f32_to_f16(buf[i]);
            data = h;
            bytes = n * sizeof(uint16_t);
        }
        enum status st = safetensors_writer_write(w, data, bytes, err, errlen);
        if (st != ST_OK)
            return st;
        done += n;
    }
    return ST_OK;
}

/* One thread's share of a quantized tensor: rows [row_begin, row_end). */
struct mk_quant_job {
    const struct mk_opts *o;
    struct mk_tensor *t;
    size_t row_begin, row_end;
    float *buf; /* MK_CHUNK_ELEMS floats, or one row when rows are longer */
    enum status st;
    char err[256];
};

static void *mk_quant_rows(void *arg)
{
    struct mk_quant_job *j = arg;
    const struct mk_opts *o = j->o;
    struct mk_tensor *t = j->t;
    size_t cols = (size_t)t->cols;
    size_t words = quant_row_words(cols, o->bits), groups = cols / (size_t)o->group_size;
    size_t chunk_rows = MK_CHUNK_ELEMS / cols ? MK_CHUNK_ELEMS / cols : 1;
    j->st = ST_OK;
    for (size_t r = j->row_begin; r < j->row_end && j->st == ST_OK; r += chunk_rows) {
        size_t n = j->row_end - r < chunk_rows ? j->row_end - r : chunk_rows;
        mk_generate(t, (uint64_t)r * cols, j->buf, n * cols);
        /* mlx-lm quantizes the float16 model */
        for (size_t i = 0; i < n * cols; i++)
            j->buf[i] = f16_to_f32(f32_to_f16(j->buf[i]));
        j->st =
            quantize_affine(j->buf, n, cols, o->bits, o->group_size, t->q + r * words,
                            t->scales + r * groups, t->biases + r * groups, j->err, sizeof(j->err));
    }
    return NULL;
}

/*
 * Generates and quantizes the whole of t, keeping its outputs until all
 * three parts are written.  Rows are split over up to MK_MAX_THREADS threads
 * (the quantizer is the slow part of writing a big MLX model); the result
 * does not depend on the split.
 */
static enum status mk_quantize(const struct mk_opts *o, struct mk_tensor *t, char *err,
                               size_t errlen)
{
    size_t rows = (size_t)t->rows, cols = (size_t)t->cols;
    size_t words = quant_row_words(cols, o->bits), groups = cols / (size_t)o->group_size;
    t->q = malloc(rows * words * sizeof(uint32_t));
    t->scales = malloc(rows * groups * sizeof(uint16_t));
    t->biases = malloc(rows * groups * sizeof(uint16_t));
    if (!t->q || !t->scales || !t->biases)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory quantizing %s", t->name);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n_jobs = cpus < 1 ? 1 : cpus > MK_MAX_THREADS ? MK_MAX_THREADS : (size_t)cpus;
    if (rows * cols < 2 * (size_t)MK_CHUNK_ELEMS)
        n_jobs = 1;
    if (n_jobs > rows)
        n_jobs = rows;
    struct mk_quant_job jobs[MK_MAX_THREADS];
    pthread_t threads[MK_MAX_THREADS];
    bool started[MK_MAX_THREADS] = {false};
    size_t buf_elems = cols > MK_CHUNK_ELEMS ? cols : MK_CHUNK_ELEMS;
    enum status st = ST_OK;
    for (size_t i = 0; i < n_jobs; i++) {
        jobs[i] = (struct mk_quant_job){
            o,     t, rows * i / n_jobs, rows * (i + 1) / n_jobs, malloc(buf_elems * sizeof(float)),
            ST_OK, ""};
        if (!jobs[i].buf)
            st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory quantizing %s", t->name);
    }
    for (size_t i = 1; st == ST_OK && i < n_jobs; i++)
        started[i] = pthread_create(&threads[i], NULL, mk_quant_rows, &jobs[i]) == 0;
    if (st == ST_OK)
        mk_quant_rows(&jobs[0]);
    for (size_t i = 0; i < n_jobs; i++) {
        if (i > 0 && !started[i] && st == ST_OK)
            mk_quant_rows(&jobs[i]); /* no thread: do its share here */
        if (started[i])
            pthread_join(threads[i], NULL);
        if (st == ST_OK && jobs[i].st != ST_OK)
            st = status_fail(err, errlen, jobs[i].st, "%s: %s", t->name, jobs[i].err);
        free(jobs[i].buf);
    }
    return st;
}

static void mk_release(struct mk_tensor *t)
{
    free(t->q);
    free(t->scales);
    free(t->biases);
    t->q = NULL;
    t->scales = t->biases = NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static enum status mk_write_weights(const struct mk_opts *o, struct mk_tensor *list, size_t n,
                                    size_t *n_shards, char *err, size_t errlen)
{
    struct safetensors_writer *w = NULL;
    float *buf = NULL;
    void *conv = NULL;
    enum status st = safetensors_writer_new(o->out, o->dtype == MK_MLX ? "mlx" : "pt",
                                            o->shard_bytes, o->dtype == MK_MLX, &w, err, errlen);
    if (st != ST_OK)
        return st;
    size_t max_cols = 1;
    for (size_t i = 0; st == ST_OK && i < n; i++) {
        st = mk_declare(w, o, &list[i], err, errlen);
        if ((size_t)list[i].cols > max_cols)
            max_cols = (size_t)list[i].cols;
    }
    /* a chunk is MK_CHUNK_ELEMS, or one row when rows are longer */
    size_t buf_elems = max_cols > MK_CHUNK_ELEMS ? max_cols : MK_CHUNK_ELEMS;
    buf = malloc(buf_elems * sizeof(float));
    conv = malloc(buf_elems * sizeof(uint16_t));
    if (st == ST_OK && (!buf || !conv))
        st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    if (st == ST_OK)
        st = safetensors_writer_begin(w, err, errlen);
    const char *name;
    void *user;
    while (st == ST_OK && safetensors_writer_next(w, &name, &user, NULL)) {
        struct mk_tensor *t = user;
        if (!t->quantized) {
            st = mk_write_float(w, o, t, buf, conv, err, errlen);
            continue;
        }
        if (!t->q)
            st = mk_quantize(o, t, err, errlen);
        if (st != ST_OK)
            break;
        size_t groups = (size_t)(t->rows * (t->cols / o->group_size));
        if (ends_with(name, ".scales"))
            st = safetensors_writer_write(w, t->scales, groups * sizeof(uint16_t), err, errlen);
        else if (ends_with(name, ".biases"))
            st = safetensors_writer_write(w, t->biases, groups * sizeof(uint16_t), err, errlen);
        else
            st = safetensors_writer_write(
                w, t->q, (size_t)t->rows * quant_row_words((size_t)t->cols, o->bits) * 4, err,
                errlen);
        if (--t->parts_left == 0)
            mk_release(t);
    }
    if (st == ST_OK)
        st = safetensors_writer_finish(w, err, errlen);
    if (st == ST_OK)
        *n_shards = safetensors_writer_n_shards(w);
    for (size_t i = 0; i < n; i++)
        mk_release(&list[i]);
    safetensors_writer_free(w);
    free(buf);
    free(conv);
    return st;
}

/* ---- config.json / generation_config.json ---- */

static const char *arch_class(enum mk_arch a)
{
    return a == MK_LLAMA   ? "LlamaForCausalLM"
           : a == MK_QWEN2 ? "Qwen2ForCausalLM"
                           : "Qwen3ForCausalLM";
}

static const char *arch_type(enum mk_arch a)
{
    return a == MK_LLAMA ? "llama" : a == MK_QWEN2 ? "qwen2" : "qwen3";
}

static void add_id(cJSON *obj, const char *key, int id)
{
    if (id >= 0)
        cJSON_AddNumberToObject(obj, key, id);
    else
        cJSON_AddNullToObject(obj, key);
}

static cJSON *mk_config(const struct mk_opts *o, const struct mkmodel_tok_ids *ids)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(arch_class(o->arch)));
    if (o->arch != MK_QWEN2)
        cJSON_AddBoolToObject(c, "attention_bias", false);
    cJSON_AddRawToObject(c, "attention_dropout", "0.0");
    add_id(c, "bos_token_id", ids->bos);
    add_id(c, "eos_token_id", ids->eos);
    cJSON_AddNumberToObject(c, "head_dim", (double)o->head_dim);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "hidden_size", (double)o->hidden);
    cJSON_AddRawToObject(c, "initializer_range", "0.02");
    cJSON_AddNumberToObject(c, "intermediate_size", (double)o->ffn);
    cJSON_AddNumberToObject(c, "max_position_embeddings", (double)o->max_pos);
    if (o->arch == MK_LLAMA) {
        cJSON_AddBoolToObject(c, "mlp_bias", false);
        cJSON_AddNumberToObject(c, "pretraining_tp", 1);
    } else {
        cJSON_AddNumberToObject(c, "max_window_layers", (double)o->layers);
        if (o->arch == MK_QWEN2)
            cJSON_AddNumberToObject(c, "sliding_window", (double)o->max_pos);
        else
            cJSON_AddNullToObject(c, "sliding_window");
        cJSON_AddBoolToObject(c, "use_sliding_window", false);
    }
    cJSON_AddStringToObject(c, "model_type", arch_type(o->arch));
    cJSON_AddNumberToObject(c, "num_attention_heads", (double)o->heads);
    cJSON_AddNumberToObject(c, "num_hidden_layers", (double)o->layers);
    cJSON_AddNumberToObject(c, "num_key_value_heads", (double)o->kv_heads);
    if (o->dtype == MK_MLX) {
        /* mlx-lm's insertion order inside these two; only top-level keys get sorted */
        for (int i = 0; i < 2; i++) {
            cJSON *q = cJSON_AddObjectToObject(c, i ? "quantization_config" : "quantization");
            cJSON_AddNumberToObject(q, "group_size", o->group_size);
            cJSON_AddNumberToObject(q, "bits", o->bits);
            cJSON_AddStringToObject(q, "mode", "affine");
        }
    }
    cJSON_AddRawToObject(c, "rms_norm_eps", o->rms_eps);
    if (o->llama3_rope) {
        cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddRawToObject(rs, "factor", "32.0");
        cJSON_AddRawToObject(rs, "high_freq_factor", "4.0");
        cJSON_AddRawToObject(rs, "low_freq_factor", "1.0");
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", 8192);
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
    } else {
        cJSON_AddNullToObject(c, "rope_scaling");
    }
    cJSON_AddRawToObject(c, "rope_theta", o->rope_theta);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", o->tie);
    static const char *const torch[] = {"float32", "float16", "bfloat16", "float16"};
    cJSON_AddStringToObject(c, "torch_dtype", torch[o->dtype]);
    cJSON_AddStringToObject(c, "transformers_version", "4.46.0");
    cJSON_AddBoolToObject(c, "use_cache", true);
    cJSON_AddNumberToObject(c, "vocab_size", (double)o->vocab);
    return c;
}

static cJSON *mk_generation_config(const struct mkmodel_tok_ids *ids)
{
    cJSON *g = cJSON_CreateObject();
    add_id(g, "bos_token_id", ids->bos);
    if (ids->eos_alt >= 0 && ids->eos_alt != ids->eos) {
        cJSON *e = cJSON_AddArrayToObject(g, "eos_token_id");
        cJSON_AddItemToArray(e, cJSON_CreateNumber(ids->eos));
        cJSON_AddItemToArray(e, cJSON_CreateNumber(ids->eos_alt));
    } else {
        add_id(g, "eos_token_id", ids->eos);
    }
    if (ids->pad >= 0)
        cJSON_AddNumberToObject(g, "pad_token_id", ids->pad);
    cJSON_AddStringToObject(g, "transformers_version", "4.46.0");
    return g;
}

/* ---- the output directory ---- */

/* True when dir holds anything but "." and "..". */
static bool dir_non_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool any = false;
    struct dirent *e;
    while (!any && (e = readdir(d)) != NULL)
        any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* With --force: removes what an earlier mkmodel (or model download) left
 * that the new model would not overwrite, such as shards of a different
 * count or a chat_template.jinja that would shadow the new template. */
static int remove_model_files(const char *dir)
{
    static const char *const names[] = {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "model.safetensors.index.json",
    };
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char path[PATH_MAX];
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        bool ours = ends_with(e->d_name, ".safetensors");
        for (size_t i = 0; !ours && i < sizeof(names) / sizeof(names[0]); i++)
            ours = !strcmp(e->d_name, names[i]);
        if (!ours)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

/* ---- arguments ---- */

static void mk_usage(FILE *out)
{
    fprintf(out, "usage: mlx-manager mkmodel --arch llama|qwen2|qwen3\n"
                 "           (--preset llama-3.2-1b|qwen2.5-0.5b|qwen3-0.6b|tiny |\n"
                 "            --hidden N --layers N --heads N --ffn N --vocab N [--kv-heads N])\n"
                 "           --dtype f32|f16|bf16|mlx-4bit|mlx-8bit|mlx-Nbit --out DIR\n"
                 "           [--bits B] [--group-size G] [--head-dim N] [--tokenizer DIR]\n"
                 "           [--seed S] [--no-tie] [--shard-mb N] [--force]\n"
                 "\n"
                 "Writes a random-weight model folder in the layout transformers (float\n"
                 "dtypes) or mlx-lm (mlx-*: affine quantized, group 64 unless --group-size)\n"
                 "write.  Presets set every dimension (explicit options override them); tiny\n"
                 "is hidden 64, 2 layers, 4 heads, 2 KV heads, FFN 128, vocab 512.  Without\n"
                 "--tokenizer a synthetic byte-level BPE tokenizer of exactly --vocab ids is\n"
                 "generated.  --out must be empty or missing unless --force, which replaces\n"
                 "the model files (*.safetensors, config and tokenizer files) already there.\n");
}

/* Parses a decimal integer in [lo, hi] into *out; prints why not. */
static bool parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mkmodel: %s wants an integer from %ld to %ld, not '%s'\n", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

struct mk_preset {
    const char *name;
    int arch; /* -1: any (the --arch given) */
    long hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
    long max_pos;
    const char *rope_theta;
    bool llama3_rope;
};

static const struct mk_preset mk_presets[] = {
    {"llama-3.2-1b", MK_LLAMA, 2048, 16, 32, 8, 64, 8192, 128256, 131072, "500000.0", true},
    {"qwen2.5-0.5b", MK_QWEN2, 896, 24, 14, 2, 64, 4864, 151936, 32768, "1000000.0", false},
    {"qwen3-0.6b", MK_QWEN3, 1024, 28, 16, 8, 128, 3072, 151936, 40960, "1000000.0", false},
    {"tiny", -1, 64, 2, 4, 2, 16, 128, 512, 2048, NULL, false},
};

/* Returns 0 ok, 2 usage error (message printed). */
static int mk_parse(int argc, char **argv, struct mk_opts *o, bool *help)
{
    const char *arch = NULL, *preset = NULL, *dtype = NULL;
    long hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
    long bits = 0, group = 0, seed = 0, shard_mb = 0;
    bool no_tie = false;
    memset(o, 0, sizeof(*o));
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        }
        if (!strcmp(a, "--force")) {
            o->force = true;
            continue;
        }
        if (!strcmp(a, "--no-tie")) {
            no_tie = true;
            continue;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "mkmodel: %s '%s'\n",
                    strncmp(a, "--", 2) ? "unexpected argument" : "missing value for", a);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(a, "--arch"))
            arch = v;
        else if (!strcmp(a, "--preset"))
            preset = v;
        else if (!strcmp(a, "--dtype"))
            dtype = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--tokenizer"))
            o->tokenizer = v;
        else if (!strcmp(a, "--hidden"))
            ok = parse_long(a, v, 1, MK_MAX_DIM, &hidden);
        else if (!strcmp(a, "--layers"))
            ok = parse_long(a, v, 1, 1024, &layers);
        else if (!strcmp(a, "--heads"))
            ok = parse_long(a, v, 1, 4096, &heads);
        else if (!strcmp(a, "--kv-heads"))
            ok = parse_long(a, v, 1, 4096, &kv_heads);
        else if (!strcmp(a, "--head-dim"))
            ok = parse_long(a, v, 2, 4096, &head_dim);
        else if (!strcmp(a, "--ffn"))
            ok = parse_long(a, v, 1, MK_MAX_DIM, &ffn);
        else if (!strcmp(a, "--vocab"))
            ok = parse_long(a, v, 1, 4 * MK_MAX_DIM, &vocab);
        else if (!strcmp(a, "--bits"))
            ok = parse_long(a, v, 2, 8, &bits);
        else if (!strcmp(a, "--group-size"))
            ok = parse_long(a, v, 32, 128, &group);
        else if (!strcmp(a, "--seed"))
            ok = parse_long(a, v, 0, LONG_MAX, &seed);
        else if (!strcmp(a, "--shard-mb"))
            ok = parse_long(a, v, 1, 1L << 30, &shard_mb);
        else {
            fprintf(stderr, "mkmodel: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok)
            return 2;
    }
    if (!o->out || !*o->out) {
        fprintf(stderr, "mkmodel: --out DIR is required\n");
        return 2;
    }
    if (!dtype) {
        fprintf(stderr, "mkmodel: --dtype is required (f32, f16, bf16, mlx-4bit, mlx-8bit)\n");
        return 2;
    }
    int nbits = 0;
    char tail = 0;
    if (!strcmp(dtype, "f32") || !strcmp(dtype, "float32")) {
        o->dtype = MK_F32;
    } else if (!strcmp(dtype, "f16") || !strcmp(dtype, "float16")) {
        o->dtype = MK_F16;
    } else if (!strcmp(dtype, "bf16") || !strcmp(dtype, "bfloat16")) {
        o->dtype = MK_BF16;
    } else if (sscanf(dtype, "mlx-%dbit%c", &nbits, &tail) == 1) {
        o->dtype = MK_MLX;
    } else {
        fprintf(stderr, "mkmodel: unknown --dtype '%s' (f32, f16, bf16, mlx-4bit, mlx-8bit)\n",
                dtype);
        return 2;
    }
    if (o->dtype != MK_MLX && (bits || group)) {
        fprintf(stderr, "mkmodel: --bits and --group-size only apply to the mlx-* dtypes\n");
        return 2;
    }
    if (o->dtype == MK_MLX) {
        if (bits && bits != nbits) {
            fprintf(stderr, "mkmodel: --bits %ld contradicts --dtype %s\n", bits, dtype);
            return 2;
        }
        o->bits = nbits;
        o->group_size = group ? (int)group : 64;
        if (!quant_params_valid(o->bits, o->group_size)) {
            fprintf(stderr,
                    "mkmodel: unsupported quantization: %d bits, group size %d (bits "
                    "2/3/4/5/6/8, group 32/64/128)\n",
                    o->bits, o->group_size);
            return 2;
        }
    }
    const struct mk_preset *p = NULL;
    if (preset) {
        for (size_t i = 0; i < sizeof(mk_presets) / sizeof(mk_presets[0]); i++) {
            if (!strcmp(preset, mk_presets[i].name))
                p = &mk_presets[i];
        }
        if (!p) {
            fprintf(stderr,
                    "mkmodel: unknown --preset '%s' (llama-3.2-1b, qwen2.5-0.5b, qwen3-0.6b, "
                    "tiny)\n",
                    preset);
            return 2;
        }
    }
    int arch_id = -1;
    if (arch) {
        if (!strcmp(arch, "llama"))
            arch_id = MK_LLAMA;
        else if (!strcmp(arch, "qwen2"))
            arch_id = MK_QWEN2;
        else if (!strcmp(arch, "qwen3"))
            arch_id = MK_QWEN3;
        else {
            fprintf(stderr, "mkmodel: unknown --arch '%s' (llama, qwen2, qwen3)\n", arch);
            return 2;
        }
    }
    if (p && p->arch >= 0 && arch_id >= 0 && arch_id != p->arch) {
        fprintf(stderr, "mkmodel: --preset %s is a %s model, not --arch %s\n", p->name,
                arch_type((enum mk_arch)p->arch), arch);
        return 2;
    }
    if (p && p->arch >= 0)
        arch_id = p->arch;
    if (arch_id < 0) {
        fprintf(stderr, "mkmodel: --arch is required (llama, qwen2, qwen3)\n");
        return 2;
    }
    o->arch = (enum mk_arch)arch_id;
    /* explicit dimensions override the preset's */
    o->hidden = hidden ? hidden : p ? p->hidden : 0;
    o->layers = layers ? layers : p ? p->layers : 0;
    o->heads = heads ? heads : p ? p->heads : 0;
    o->ffn = ffn ? ffn : p ? p->ffn : 0;
    o->vocab = vocab ? vocab : p ? p->vocab : 0;
    o->kv_heads = kv_heads ? kv_heads : (p && !heads) ? p->kv_heads : o->heads;
    if (!o->hidden || !o->layers || !o->heads || !o->ffn || !o->vocab) {
        fprintf(stderr, "mkmodel: without --preset, --hidden, --layers, --heads, --ffn and "
                        "--vocab are all required\n");
        return 2;
    }
    if (head_dim)
        o->head_dim = head_dim;
    else if (p && !hidden && !heads)
        o->head_dim = p->head_dim;
    else if (o->hidden % o->heads == 0)
        o->head_dim = o->hidden / o->heads;
    else {
        fprintf(stderr, "mkmodel: --hidden %ld is not divisible by --heads %ld; give --head-dim\n",
                o->hidden, o->heads);
        return 2;
    }
    if (o->head_dim % 2) {
        fprintf(stderr, "mkmodel: the head dimension (%ld) must be even for RoPE\n", o->head_dim);
        return 2;
    }
    if (o->heads % o->kv_heads) {
        fprintf(stderr, "mkmodel: --heads %ld is not a multiple of --kv-heads %ld\n", o->heads,
                o->kv_heads);
        return 2;
    }
    double params =
        (double)o->vocab * (double)o->hidden * (no_tie ? 2.0 : 1.0) +
        (double)o->layers * ((double)o->hidden * (double)o->head_dim * (double)(2 * o->heads) +
                             (double)o->hidden * (double)o->head_dim * (double)(2 * o->kv_heads) +
                             3.0 * (double)o->hidden * (double)o->ffn);
    if (params > MK_MAX_PARAMS) {
        fprintf(stderr, "mkmodel: %.3g parameters is more than this tool will write\n", params);
        return 2;
    }
    /* the synthetic tokenizer's 256 byte tokens plus 3 (Qwen) or 4 (Llama 3) special tokens */
    long min_vocab = o->arch == MK_LLAMA ? 260 : 259;
    if (!o->tokenizer && o->vocab < min_vocab) {
        fprintf(stderr,
                "mkmodel: a vocab of %ld is too small for the generated byte-level tokenizer "
                "(at least %ld; or give --tokenizer)\n",
                o->vocab, min_vocab);
        return 2;
    }
    o->seed = (uint64_t)seed;
    o->tie = !no_tie;
    o->llama3_rope = p && p->llama3_rope;
    bool llama = o->arch == MK_LLAMA;
    o->max_pos = p && p->arch >= 0     ? p->max_pos
                 : llama               ? 4096
                 : o->arch == MK_QWEN2 ? 32768
                                       : 40960;
    o->rope_theta = p && p->rope_theta ? p->rope_theta : llama ? "10000.0" : "1000000.0";
    o->rms_eps = llama ? "1e-05" : "1e-06";
    /* mlx-lm's default shard limit is 5 GiB; transformers' is 5 GB */
    o->shard_bytes = shard_mb             ? (uint64_t)shard_mb << 20
                     : o->dtype == MK_MLX ? (uint64_t)5 << 30
                                          : (uint64_t)5000000000;
    return 0;
}

/* ---- the command ---- */

int cli_mkmodel(int argc, char **argv)
{
    struct mk_opts o;
    bool help;
    int rc = mk_parse(argc, argv, &o, &help);
    if (help) {
        mk_usage(stdout);
        return 0;
    }
    if (rc)
        return rc;
    if (o.tokenizer) {
        struct stat sb;
        if (stat(o.tokenizer, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "mkmodel: --tokenizer %s is not a directory\n", o.tokenizer);
            return 2;
        }
    }
    if (dir_non_empty(o.out)) {
        if (!o.force) {
            fprintf(stderr, "mkmodel: %s is not empty (use --force to overwrite)\n", o.out);
            return 1;
        }
        if (remove_model_files(o.out) != 0) {
            fprintf(stderr, "mkmodel: cannot clear %s: %s\n", o.out, strerror(errno));
            return 1;
        }
    }
    if (fs_mkdirs(o.out, 0755) != 0) {
        fprintf(stderr, "mkmodel: cannot create %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    char err[512] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct mkmodel_tok_ids ids;
    enum status st;
    if (o.tokenizer)
        st = mkmodel_tokenizer_copy(o.tokenizer, o.out, (size_t)o.vocab, &ids, err, sizeof(err));
    else
        st = mkmodel_tokenizer_generate(o.out, (size_t)o.vocab,
                                        o.arch == MK_LLAMA ? MKMODEL_TOK_LLAMA3 : MKMODEL_TOK_QWEN,
                                        &ids, err, sizeof(err));
    cJSON *cfg = NULL, *gen = NULL;
    if (st == ST_OK) {
        cfg = mk_config(&o, &ids);
        gen = mk_generation_config(&ids);
        if (!cfg || !gen)
            st = status_fail(err, sizeof(err), ST_ERR_NOMEM, "out of memory");
    }
    /* mlx-lm: top-level keys sorted, indent 4; transformers: all sorted, indent 2, newline */
    bool mlx = o.dtype == MK_MLX;
    if (st == ST_OK)
        st = mkmodel_json_write(o.out, "config.json", cfg, mlx ? 4 : 2, true, !mlx, !mlx, err,
                                sizeof(err));
    char gpath[PATH_MAX];
    snprintf(gpath, sizeof(gpath), "%s/generation_config.json", o.out);
    if (st == ST_OK && access(gpath, F_OK) != 0)
        st = mkmodel_json_write(o.out, "generation_config.json", gen, 2, true, true, true, err,
                                sizeof(err));
    cJSON_Delete(cfg);
    cJSON_Delete(gen);
    size_t n = mk_plan(&o, NULL), n_shards = 0;
    struct mk_tensor *list = NULL;
    if (st == ST_OK) {
        list = calloc(n, sizeof(*list));
        if (!list)
            st = status_fail(err, sizeof(err), ST_ERR_NOMEM, "out of memory");
    }
    if (st == ST_OK) {
        n = mk_plan(&o, list);
        st = mk_write_weights(&o, list, n, &n_shards, err, sizeof(err));
    }
    free(list);
    if (st != ST_OK) {
        fprintf(stderr, "mkmodel: %s: %s\n", status_str(st), err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("wrote %s: %s %s, %zu tensors in %zu file%s, vocab %ld, %.1f s\n", o.out,
           arch_type(o.arch), mlx ? "mlx" : "float", n, n_shards, n_shards == 1 ? "" : "s", o.vocab,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return 0;
}
