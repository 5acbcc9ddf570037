/*
 * bench_forward.c - prints the speed of the reference kernels and of the
 * forward pass, for comparison when faster kernels land.
 *
 * Part 1: one matvec (decode) and one 32-row matmul (prefill) per weight
 * dtype on a 2048 x 2048 matrix: GB/s of weights streamed and GFLOP/s.
 * Part 2: a random-weight Llama-shaped model (hidden 1024, ffn 3072, 4
 * layers, vocab 32000; MLX 4-bit and F16) written to a temp dir: prefill
 * and decode tokens/s.  Usage: bench_forward [model_dir] to time a real model
 * instead of part 2's synthetic ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../st_build.h"
#include "kernels.h"
#include "model.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* --- kernels ------------------------------------------------------------ */

static void bench_matmul(const char *label, struct kernel_mat *w, size_t wbytes)
{
    size_t cols = w->cols, rows = w->rows;
    float *x = malloc(32 * cols * sizeof(float)), *y = malloc(32 * rows * sizeof(float));
    float *scratch = malloc((kernel_matmul_scratch(w, 32) + 1) * sizeof(float));
    uint64_t seed = 1;
    for (size_t i = 0; i < 32 * cols; i++)
        x[i] = stb_randf(&seed);
    for (int nrows = 1; nrows <= 32; nrows += 31) {
        int reps = nrows == 1 ? 20 : 2;
        double t0 = now();
        for (int r = 0; r < reps; r++)
            kernel_matmul_ref(w, x, (size_t)nrows, NULL, y, scratch);
        double dt = (now() - t0) / reps;
        printf("  matmul %-5s %zux%zu, %2d rows: %7.2f ms  %6.2f GB/s weights  %6.2f GFLOP/s\n",
               label, rows, cols, nrows, dt * 1e3, (double)wbytes / dt / 1e9,
               2.0 * (double)rows * (double)cols * nrows / dt / 1e9);
    }
    free(x);
    free(y);
    free(scratch);
}

static void bench_kernels(void)
{
    size_t n = 2048;
    uint64_t seed = 7;
    float *f = malloc(n * n * sizeof(float));
    uint16_t *h = malloc(n * n * 2), *bf = malloc(n * n * 2);
    for (size_t i = 0; i < n * n; i++) {
        f[i] = stb_randf(&seed);
        h[i] = f32_to_f16(f[i]);
        bf[i] = f32_to_bf16(f[i]);
    }
    struct kernel_mat w = {.rows = n, .cols = n, .dtype = DTYPE_F32, .data = f};
    bench_matmul("f32", &w, n * n * 4);
    w.dtype = DTYPE_F16;
    w.data = h;
    bench_matmul("f16", &w, n * n * 2);
    w.dtype = DTYPE_BF16;
    w.data = bf;
    bench_matmul("bf16", &w, n * n * 2);
    for (int bits = 4; bits <= 8; bits += 4) {
        size_t words = n * n * (size_t)bits / 32, ng = n / 64;
        uint32_t *q = malloc(words * 4);
        for (size_t i = 0; i < words; i++)
            q[i] = (uint32_t)((stb_randf(&seed) + 1.0f) * 2147483647.0f);
        struct kernel_mat qm = {.rows = n, .cols = n, .quantized = true};
        qm.q = (struct quant_matrix){.rows = n,
                                     .cols = n,
                                     .bits = bits,
                                     .group_size = 64,
                                     .param_dtype = DTYPE_F16,
                                     .q = q,
                                     .scales = h,
                                     .biases = h};
        bench_matmul(bits == 4 ? "q4g64" : "q8g64", &qm, words * 4 + 2 * n * ng * 2);
        free(q);
    }
    free(f);
    free(h);
    free(bf);
}

/* --- forward pass -------------------------------------------------------- */

static void bench_model(const char *dir, const char *label)
{
    char err[512];
    struct model *m = NULL;
    struct model_load_opts opts = {.max_batch_tokens = 64};
    double t0 = now();
    if (model_load(dir, &opts, &m, err, sizeof(err)) != ST_OK) {
        printf("  %s: load failed: %s\n", label, err);
        return;
    }
    double tl = now() - t0;
    const struct model_config *c = model_get_config(m);
    struct kv_cache *kv = NULL;
    int seq = -1;
    if (kv_cache_create(c, 16, 16, DTYPE_F32, 1, &kv, err, sizeof(err)) != ST_OK ||
        kv_seq_create(kv, &seq, err, sizeof(err)) != ST_OK) {
        printf("  %s: kv cache: %s\n", label, err);
        model_free(m);
        return;
    }
    int32_t toks[64];
    for (int i = 0; i < 64; i++)
        toks[i] = (i * 37 + 11) % c->vocab;
    float *logits = malloc((size_t)c->vocab * sizeof(float));
    struct model_batch_seq e = {
        .seq = seq, .start_pos = 0, .n_tokens = 64, .tokens = toks, .n_logits = 1};
    struct model_batch b = {&e, 1};
    t0 = now();
    enum status rc = model_forward(m, kv, &b, logits, err, sizeof(err));
    double tp = now() - t0;
    int ndec = 16;
    t0 = now();
    for (int i = 0; i < ndec && rc == ST_OK; i++) {
        e.start_pos = 64 + i;
        e.n_tokens = 1;
        rc = model_forward(m, kv, &b, logits, err, sizeof(err));
    }
    double td = (now() - t0) / ndec;
    if (rc != ST_OK)
        printf("  %s: forward failed: %s\n", label, err);
    else
        printf("  %-10s weights %7.1f MB  load %5.2f s  prefill 64: %7.1f tok/s  decode: %6.2f "
               "tok/s (%5.2f GB/s)\n",
               label, (double)model_weight_bytes(m) / 1e6, tl, 64.0 / tp, 1.0 / td,
               (double)model_weight_bytes(m) / td / 1e9);
    free(logits);
    kv_cache_free(kv);
    model_free(m);
}

/* A Llama-shaped model with random weights: F16, or MLX 4-bit group 64 with F16 scales. */
static int write_model(const char *dir, bool quant)
{
    const int h = 1024, ffn = 3072, layers = 4, vocab = 32000, heads = 16, kvh = 4, hd = 64;
    uint64_t seed = 3;
    struct stb b;
    stb_init(&b);
    size_t maxn = (size_t)vocab * (size_t)h;
    uint16_t *buf = malloc(maxn * 2), *par = malloc(maxn / 64 * 2);
    uint32_t *q = malloc(maxn / 2);
    for (size_t i = 0; i < maxn; i++)
        buf[i] = f32_to_f16(0.05f * stb_randf(&seed));
    for (size_t i = 0; i < maxn / 64; i++)
        par[i] = f32_to_f16(0.01f * stb_randf(&seed));
    for (size_t i = 0; i < maxn / 8; i++)
        q[i] = (uint32_t)((stb_randf(&seed) + 1.0f) * 2147483647.0f);
    char name[160];
#define MAT(nm, r, c)                                                                              \
    do {                                                                                           \
        int64_t shp[2] = {(r), (c)};                                                               \
        if (quant) {                                                                               \
            int64_t qs[2] = {(r), (c) / 8}, ps[2] = {(r), (c) / 64};                               \
            snprintf(name, sizeof(name), "%s.weight", nm);                                         \
            stb_add(&b, name, "U32", 2, qs, q, (size_t)(r) * (size_t)(c) / 2);                     \
            snprintf(name, sizeof(name), "%s.scales", nm);                                         \
            stb_add(&b, name, "F16", 2, ps, par, (size_t)(r) * (size_t)(c) / 32);                  \
            snprintf(name, sizeof(name), "%s.biases", nm);                                         \
            stb_add(&b, name, "F16", 2, ps, par, (size_t)(r) * (size_t)(c) / 32);                  \
        } else {                                                                                   \
            snprintf(name, sizeof(name), "%s.weight", nm);                                         \
            stb_add(&b, name, "F16", 2, shp, buf, (size_t)(r) * (size_t)(c)*2);                    \
        }                                                                                          \
    } while (0)
    int64_t hv[1] = {h};
    MAT("model.embed_tokens", vocab, h);
    stb_add(&b, "model.norm.weight", "F16", 1, hv, buf, (size_t)h * 2);
    for (int l = 0; l < layers; l++) {
        char p[128];
        static const char *const nm[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                         "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};
        int rows[] = {heads * hd, kvh * hd, kvh * hd, h, ffn, ffn, h};
        int cols[] = {h, h, h, heads * hd, h, h, ffn};
        for (int i = 0; i < 7; i++) {
            snprintf(p, sizeof(p), "model.layers.%d.%s", l, nm[i]);
            MAT(p, rows[i], cols[i]);
        }
        snprintf(p, sizeof(p), "model.layers.%d.input_layernorm.weight", l);
        stb_add(&b, p, "F16", 1, hv, buf, (size_t)h * 2);
        snprintf(p, sizeof(p), "model.layers.%d.post_attention_layernorm.weight", l);
        stb_add(&b, p, "F16", 1, hv, buf, (size_t)h * 2);
    }
#undef MAT
    char path[512], cfg[1024];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    int rc = stb_write(&b, path);
    stb_free(&b);
    free(buf);
    free(par);
    free(q);
    snprintf(
        cfg, sizeof(cfg),
        "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":%d,\"intermediate_size\":%d,"
        "\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
        "\"vocab_size\":%d,\"max_position_embeddings\":1024,\"tie_word_embeddings\":true}",
        h, ffn, layers, heads, kvh, vocab);
    return rc | stb_write_text(dir, "config.json", cfg);
}

int main(int argc, char **argv)
{
    printf("reference kernels (one thread):\n");
    bench_kernels();
    printf("forward pass:\n");
    if (argc > 1) {
        bench_model(argv[1], argv[1]);
        return 0;
    }
    for (int quant = 1; quant >= 0; quant--) {
        char dir[256];
        if (stb_tmpdir(dir, sizeof(dir)) != 0 || write_model(dir, quant) != 0) {
            printf("cannot write a model to a temp dir\n");
            return 1;
        }
        bench_model(dir, quant ? "mlx-4bit" : "f16");
        stb_rmdir(dir);
    }
    return 0;
}
