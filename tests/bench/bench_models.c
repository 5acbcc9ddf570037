/*
 * bench_models.c - decode and prefill speed of random-weight models of real
 * shapes against the machine's memory bandwidth, for 1 and 2 threads.
 *
 *   bench_models [--quick] [--only SHAPE] [--dtype DTYPE] [--threads N]
 *                [--prefill N] [--decode N] [--models-only] [--models DIR]
 *                [--json FILE]
 *
 * Models are made once with `mlx-manager mkmodel` under DIR (default
 * $BUILD/bench-models) and reused: Llama-3.2-1B (vocab 128256), Qwen2.5-0.5B,
 * the classic 1B Llama shape with a 32000 vocabulary and the serving
 * benchmark's 110M Llama shape, each in MLX 4-bit g64, MLX 8-bit g64 and
 * BF16.  Per run: prefill tokens/s over 512 tokens, decode tokens/s over 128
 * tokens, weight (+ KV) bytes read per decoded token, the decode speed as a
 * share of the bandwidth roofline (bandwidth / bytes per token), and
 * resident memory during decode against weights + KV + scratch.  Then
 * batched decode, engine only: the time of one decode step carrying 1, 2,
 * 4, 8 or 16 sequences (bench_batch).  The bandwidth is measured here with
 * a STREAM-style read of a 1 GiB buffer on the same threads.  Also a matvec
 * micro-benchmark per dtype (GB/s of weights streamed, cycling through
 * copies of the matrix that together outgrow the caches).  --quick: the
 * 1B/32000 model in 4-bit only, prefill 128 and decode 32 (also
 * BENCH_QUICK=1 in the environment, e.g. `make bench BENCH_QUICK=1`);
 * --only SHAPE: one model shape (all dtypes, full sizes); --dtype DTYPE
 * (mlx-4bit, mlx-8bit or bf16): that dtype only; --threads N (1 or 2): that
 * thread count only; --prefill N and --decode N: other token counts (e.g. a
 * short prefill to profile decode, or --prefill 1 to decode from an empty
 * context); --models-only: the model runs without the matvec and batched
 * decode sections.  Results also go to FILE (default $BUILD/bench.json).
 */
#include <immintrin.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../st_build.h"
#include "engine.h"
#include "kernels.h"
#include "quant_packed.h"
#include "model_internal.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* --- memory bandwidth ---------------------------------------------------- */

struct bw_job {
    const float *buf;
    size_t n;
    int nth;
    float sums[THREADPOOL_MAX_THREADS];
};

/* one chunk per thread: this measures the threads' own streams */
__attribute__((target("avx2"))) static void bw_run(void *ctx, int chunk)
{
    struct bw_job *j = ctx;
    size_t lo, hi;
    threadpool_split(j->n, 64, chunk, j->nth, &lo, &hi);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = lo; i + 32 <= hi; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(j->buf + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(j->buf + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(j->buf + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(j->buf + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    j->sums[chunk] = t[0] + t[7];
}

/* Best of several passes over 1 GiB, GB/s. */
static double measure_bandwidth(struct threadpool *pool)
{
    size_t n = (size_t)1 << 28;
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (!buf)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(i & 7);
    struct bw_job j = {.buf = buf, .n = n, .nth = threadpool_size(pool)};
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        threadpool_run(pool, bw_run, &j, j.nth);
        double gbs = (double)n * sizeof(float) / (now() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    free(buf);
    return best;
}

/* --- kernel micro-benchmark ------------------------------------------------ */

/* Bytes of weights the matvec micro-benchmark cycles through per dtype: a
 * 16384 x 4096 4-bit matrix alone (33.5 MB) partly stays in this CPU's L3
 * cache, so each call reads the next of several copies, as decode reads
 * one layer's matrices after another's. */
#define MATVEC_POOL_BYTES ((size_t)512 << 20)

static void bench_matvec(struct threadpool *pool, int nth)
{
    size_t rows = 16384, cols = 4096, n_par = rows * cols / 64 * 2;
    uint64_t seed = 7;
    uint8_t *data = malloc(MATVEC_POOL_BYTES);
    float *x = malloc(cols * sizeof(float)), *y = malloc(rows * sizeof(float));
    if (!data || !x || !y) {
        printf("  matvec: out of memory\n");
        free(data);
        free(x);
        free(y);
        return;
    }
    for (size_t i = 0; i < MATVEC_POOL_BYTES; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    for (size_t i = 0; i < cols; i++)
        x[i] = stb_randf(&seed);
    static const char *const names[] = {"f32", "f16", "bf16", "q4g64", "q8g64"};
    for (int k = 0; k < 5; k++) {
        int bits = k == 3 ? 4 : k == 4 ? 8 : 0;
        size_t code_bytes = bits ? rows * cols * (size_t)bits / 8 : rows * cols * (k == 0 ? 4 : 2);
        size_t copies = MATVEC_POOL_BYTES / code_bytes, bytes = code_bytes + (bits ? n_par * 2 : 0);
        struct kernel_mat *w = calloc(copies, sizeof(*w));
        uint16_t *par = bits ? malloc(copies * n_par * sizeof(uint16_t)) : NULL;
        if (!w || (bits && !par)) {
            printf("  matvec %s: out of memory\n", names[k]);
            free(w);
            free(par);
            continue;
        }
        for (size_t i = 0; bits && i < copies * n_par; i++)
            par[i] = f32_to_f16(0.01f * stb_randf(&seed));
        /* f16/bf16 from random bytes: keep the values finite */
        for (size_t i = 0; k == 1 || k == 2 ? i < MATVEC_POOL_BYTES / 2 : 0; i++)
            ((uint16_t *)data)[i] &= 0x3bff;
        for (size_t c = 0; c < copies; c++) {
            w[c] = (struct kernel_mat){.rows = rows, .cols = cols, .x8 = true};
            if (!bits) {
                w[c].dtype = k == 0 ? DTYPE_F32 : k == 1 ? DTYPE_F16 : DTYPE_BF16;
                w[c].data = data + c * code_bytes;
                continue;
            }
            w[c].quantized = true;
            w[c].q = (struct quant_matrix){.rows = rows,
                                           .cols = cols,
                                           .bits = bits,
                                           .group_size = 64,
                                           .param_dtype = DTYPE_F16,
                                           .q = (const uint32_t *)(data + c * code_bytes),
                                           .scales = par + c * n_par,
                                           .biases = par + c * n_par + n_par / 2};
            /* the layout model_load gives read weights (the bytes are random anyway) */
            if (quant_pack(&w[c].q, NULL, 0) != ST_OK)
                fprintf(stderr, "bench_matvec: cannot pack the %d-bit matrix\n", bits);
        }
        float *scratch = malloc((kernel_matmul_scratch(&w[0], 1) + 1) * sizeof(float));
        double best = 1e9;
        for (int rep = 0; rep < 8 && scratch; rep++) {
            double t0 = now();
            for (size_t c = 0; c < copies; c++)
                kernel_matmul(pool, &w[c], x, 1, NULL, y, scratch);
            double dt = (now() - t0) / (double)copies;
            best = dt < best ? dt : best;
        }
        if (scratch)
            printf("  matvec %-6s %zux%zu, %d thread%s: %7.2f ms  %6.1f GB/s  (%zu copies)\n",
                   names[k], rows, cols, nth, nth > 1 ? "s" : " ", best * 1e3,
                   (double)bytes / best / 1e9, copies);
        else
            printf("  matvec %s: out of memory\n", names[k]);
        free(scratch);
        free(par);
        free(w);
    }
    free(data);
    free(x);
    free(y);
}

/* --- models ---------------------------------------------------------------- */

struct shape {
    const char *name;
    const char *args; /* mkmodel options */
};

static const struct shape shapes[] = {
    {"llama-1b-32k", "--arch llama --hidden 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 "
                     "--vocab 32000 --no-tie"},
    {"llama-3.2-1b", "--arch llama --preset llama-3.2-1b"},
    {"qwen2.5-0.5b", "--arch qwen2 --preset qwen2.5-0.5b"},
    /* the serving benchmark's small shape, for the batched decode section */
    {"llama-110m", "--arch llama --hidden 768 --layers 12 --heads 12 --ffn 2048 --vocab 32000"},
};
static const char *const dtypes[] = {"mlx-4bit", "mlx-8bit", "bf16"};

static size_t mat_bytes(const struct kernel_mat *w)
{
    if (!w->quantized)
        return w->rows * w->cols * dtype_size(w->dtype);
    size_t ng = w->cols / (size_t)w->q.group_size;
    return w->rows * quant_row_words(w->cols, w->q.bits) * 4 +
           2 * w->rows * ng * dtype_size(w->q.param_dtype);
}

/* Weight bytes one decode step streams: every layer matrix and the lm_head
 * (the embedding table gives one row). */
static size_t decode_weight_bytes(const struct model *m)
{
    size_t b = mat_bytes(&m->w.lm_head);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const struct layer_weights *lw = &m->w.layers[l];
        const struct kernel_mat *ms[] = {&lw->wq,     &lw->wk,   &lw->wv,    &lw->wo,
                                         &lw->w_gate, &lw->w_up, &lw->w_down};
        for (int i = 0; i < 7; i++)
            b += mat_bytes(ms[i]);
    }
    return b;
}

struct run {
    char model[64], dtype[16];
    int threads;
    double prefill_tps, decode_tps, bytes_per_token, roofline_pct;
};

static int bench_model(const char *dir, const char *name, const char *dtype, int nth, int n_prefill,
                       int n_decode, double bw, struct run *out)
{
    char err[512];
    struct model *m = NULL;
    /* the pages an earlier run freed go back to the system first: reused,
     * they would not show in this run's resident set */
    malloc_trim(0);
    long rss0 = rss_kb();
    struct model_load_opts opts = {.max_batch_tokens = n_prefill, .n_threads = nth};
    if (model_load(dir, &opts, &m, err, sizeof(err)) != ST_OK) {
        printf("  %s %s: load failed: %s\n", name, dtype, err);
        return -1;
    }
    const struct model_config *c = model_get_config(m);
    struct kv_cache *kv = NULL;
    int seq = -1, ctx = n_prefill + n_decode;
    if (kv_cache_create(c, (size_t)(ctx + 15) / 16, 16,
                        engine_kv_dtype_of(c->quantized, ENGINE_KV_AUTO), 1, &kv, err,
                        sizeof(err)) != ST_OK ||
        kv_seq_create(kv, &seq, err, sizeof(err)) != ST_OK) {
        printf("  %s: kv cache: %s\n", name, err);
        kv_cache_free(kv);
        model_free(m);
        return -1;
    }
    int32_t *toks = malloc((size_t)n_prefill * sizeof(int32_t));
    float *logits = malloc((size_t)c->vocab * sizeof(float));
    if (!toks || !logits) {
        printf("  %s: out of memory\n", name);
        free(toks);
        free(logits);
        kv_cache_free(kv);
        model_free(m);
        return -1;
    }
    for (int i = 0; i < n_prefill; i++)
        toks[i] = (i * 7919 + 13) % c->vocab;
    struct model_batch_seq e = {
        .seq = seq, .start_pos = 0, .n_tokens = n_prefill, .tokens = toks, .n_logits = 1};
    struct model_batch b = {&e, 1};
    double t0 = now();
    enum status rc = model_forward(m, kv, &b, logits, err, sizeof(err));
    double tp = now() - t0;
    long rss_dec = 0;
    t0 = now();
    for (int i = 0; i < n_decode && rc == ST_OK; i++) {
        int32_t tok = (int32_t)((i * 31 + 7) % c->vocab);
        e.start_pos = n_prefill + i;
        e.n_tokens = 1;
        e.tokens = &tok;
        rc = model_forward(m, kv, &b, logits, err, sizeof(err));
        if (i == n_decode / 2)
            rss_dec = rss_kb();
    }
    double td = (now() - t0) / n_decode;
    if (rc != ST_OK) {
        printf("  %s: forward failed: %s\n", name, err);
    } else {
        /* K and V of the average context, read once per layer, in the
         * cache's dtype (F16 for quantized models, as the daemon keeps them) */
        double kv_read = 2.0 * c->n_layers * c->n_kv_heads * c->head_dim *
                         (double)dtype_size(kv_cache_dtype(kv)) * (n_prefill + n_decode / 2.0);
        double bpt = (double)decode_weight_bytes(m) + kv_read;
        double need_mb =
            (double)(model_weight_bytes(m) + kv_cache_bytes(kv) + model_scratch_bytes(m)) /
            1048576.0;
        snprintf(out->model, sizeof(out->model), "%s", name);
        snprintf(out->dtype, sizeof(out->dtype), "%s", dtype);
        out->threads = nth;
        out->prefill_tps = n_prefill / tp;
        out->decode_tps = 1.0 / td;
        out->bytes_per_token = bpt;
        out->roofline_pct = 100.0 * out->decode_tps / (bw * 1e9 / bpt);
        printf("  %-13s %-9s %d thr  prefill %4d: %7.1f tok/s  decode: %6.2f tok/s  %7.1f MB/tok  "
               "%5.1f%% of roofline  RSS %6.0f MB (weights+KV+scratch %6.0f MB)\n",
               name, dtype, nth, n_prefill, out->prefill_tps, out->decode_tps, bpt / 1e6,
               out->roofline_pct, (double)(rss_dec - rss0) / 1024.0, need_mb);
    }
    fflush(stdout);
    free(toks);
    free(logits);
    kv_cache_free(kv);
    model_free(m);
    return rc == ST_OK ? 0 : -1;
}

/* --- batched decode ------------------------------------------------------- */

/* Sequences a batched decode step carries in the batch section. */
static const int batch_sizes[] = {1, 2, 4, 8, 16};
#define BATCH_MAX 16
/* Context of each sequence in the batch section: about a short chat's
 * prompt and answer, as in the serving benchmark. */
#define BATCH_CTX 64
/* Runs per batch size; the fastest is printed (on a shared machine a slow
 * run is someone else's load, as in the serving benchmark). */
#define BATCH_REPEAT 3

/* One line of the batch section, for the JSON file. */
struct batch_run {
    char model[64];
    int threads, seqs;
    double ms_per_step;
};

/*
 * The engine's own batching gain, without HTTP or sampling: BATCH_MAX
 * sequences are prefilled with ctx tokens each (different tokens, so no
 * two share K/V), then for each batch size n, steps decode steps of n
 * sequences at once are timed (after one untimed step) and the sequences
 * are cut back to ctx positions, BATCH_REPEAT times.  Prints the best run's
 * ms per step, tokens/s and ratio to one sequence (the serving benchmark's
 * 8-client target is 4x) and stores them in out; returns how many.
 */
static int bench_batch(const char *dir, const char *name, int nth, int ctx, int steps,
                       struct batch_run *out)
{
    int nout = 0;
    char err[512];
    struct model *m = NULL;
    struct model_load_opts opts = {.max_batch_tokens = ctx > BATCH_MAX ? ctx : BATCH_MAX,
                                   .n_threads = nth};
    if (model_load(dir, &opts, &m, err, sizeof(err)) != ST_OK) {
        printf("  %s: load failed: %s\n", name, err);
        return 0;
    }
    const struct model_config *c = model_get_config(m);
    /* a sequence holds ctx positions and the steps + 1 written after them */
    int per_seq = (ctx + steps + 1 + 15) / 16;
    struct kv_cache *kv = NULL;
    int seqs[BATCH_MAX];
    enum status rc = kv_cache_create(c, (size_t)(per_seq * BATCH_MAX), 16,
                                     engine_kv_dtype_of(c->quantized, ENGINE_KV_AUTO), BATCH_MAX,
                                     &kv, err, sizeof(err));
    int32_t *toks = malloc((size_t)(ctx + BATCH_MAX) * sizeof(int32_t));
    float *logits = malloc((size_t)BATCH_MAX * (size_t)c->vocab * sizeof(float));
    if (rc == ST_OK && (!toks || !logits))
        rc = status_fail(err, sizeof(err), ST_ERR_NOMEM, "out of memory");
    struct model_batch_seq e[BATCH_MAX];
    for (int i = 0; i < BATCH_MAX && rc == ST_OK; i++) {
        rc = kv_seq_create(kv, &seqs[i], err, sizeof(err));
        for (int t = 0; t < ctx; t++)
            toks[t] = (int32_t)(((long)t * 7919 + (long)i * 104729 + 13) % c->vocab);
        e[0] = (struct model_batch_seq){
            .seq = seqs[i], .start_pos = 0, .n_tokens = ctx, .tokens = toks, .n_logits = 1};
        struct model_batch b = {e, 1};
        if (rc == ST_OK)
            rc = model_forward(m, kv, &b, logits, err, sizeof(err));
    }
    double base = 0;
    for (size_t k = 0; k < sizeof(batch_sizes) / sizeof(batch_sizes[0]) && rc == ST_OK; k++) {
        int n = batch_sizes[k];
        double ms = 1e30;
        for (int rep = 0; rep < BATCH_REPEAT && rc == ST_OK; rep++) {
            double t0 = 0;
            for (int s = 0; s <= steps && rc == ST_OK; s++) {
                if (s == 1)
                    t0 = now();
                for (int i = 0; i < n; i++) {
                    toks[i] = (int32_t)(((long)s * 31 + (long)i * 17 + 7) % c->vocab);
                    e[i] = (struct model_batch_seq){.seq = seqs[i],
                                                    .start_pos = ctx + s,
                                                    .n_tokens = 1,
                                                    .tokens = &toks[i],
                                                    .n_logits = 1};
                }
                struct model_batch b = {e, n};
                rc = model_forward(m, kv, &b, logits, err, sizeof(err));
            }
            double t = (now() - t0) / steps * 1e3;
            ms = t < ms ? t : ms;
            for (int i = 0; i < n && rc == ST_OK; i++)
                rc = kv_seq_truncate(kv, seqs[i], ctx, err, sizeof(err));
        }
        if (rc != ST_OK)
            break;
        if (n == 1)
            base = ms;
        printf("  %-13s %d thr  %2d seq: %7.2f ms/step  %7.1f tok/s  (%.2fx one sequence)\n", name,
               nth, n, ms, n * 1e3 / ms, n * base / ms);
        snprintf(out[nout].model, sizeof(out[nout].model), "%s", name);
        out[nout].threads = nth;
        out[nout].seqs = n;
        out[nout++].ms_per_step = ms;
    }
    if (rc != ST_OK)
        printf("  %s: batched decode failed: %s\n", name, err);
    fflush(stdout);
    free(toks);
    free(logits);
    kv_cache_free(kv);
    model_free(m);
    return nout;
}

static int ensure_model(const char *root, const char *build, const struct shape *s,
                        const char *dtype, char *dir, size_t dirlen)
{
    snprintf(dir, dirlen, "%s/%s-%s", root, s->name, dtype);
    char cfg[1300];
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    struct stat st;
    if (stat(cfg, &st) == 0)
        return 0;
    char cmd[3000];
    snprintf(cmd, sizeof(cmd), "%s/mlx-manager mkmodel %s --dtype %s --out %s --force >/dev/null",
             build, s->args, dtype, dir);
    printf("  making %s ...\n", dir);
    fflush(stdout);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char models[1024], json[1024];
    snprintf(models, sizeof(models), "%s/bench-models", build);
    snprintf(json, sizeof(json), "%s/bench.json", build);
    const char *only = NULL, *only_dtype = NULL;
    int only_threads = 0, n_prefill = 0, n_decode = 0;
    bool models_only = false; /* no matvec and no batched decode section */
    bool quick = getenv("BENCH_QUICK") && *getenv("BENCH_QUICK") && *getenv("BENCH_QUICK") != '0';
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--models-only"))
            models_only = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            only_dtype = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            only_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc)
            n_prefill = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            n_decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            /* a lower instruction set than the CPU's: the kernels other
             * CPUs run (avx2 on an AVX-512 machine) */
            enum kernel_isa isa;
            if (!kernel_isa_by_name(argv[++i], &isa)) {
                fprintf(stderr, "bench_models: this CPU has no instruction set %s\n", argv[i]);
                return 2;
            }
            kernel_isa_set(isa);
        } else if (!strcmp(argv[i], "--models") && i + 1 < argc)
            snprintf(models, sizeof(models), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            snprintf(json, sizeof(json), "%s", argv[++i]);
        else {
            /* --help, or an option it does not know: usage, not a benchmark */
            bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            if (!help)
                fprintf(stderr, "bench_models: unknown option or missing value: %s\n", argv[i]);
            fprintf(
                help ? stdout : stderr,
                "usage: bench_models [--quick] [--only SHAPE] [--dtype DTYPE] [--threads N]\n"
                "                    [--prefill N] [--decode N] [--models-only] [--models DIR]\n"
                "                    [--json FILE]\n"
                "                    [--isa scalar|avx2|avx512|avx512bf16|amx]\n"
                "SHAPE: llama-1b-32k, llama-3.2-1b, qwen2.5-0.5b or llama-110m; "
                "DTYPE: mlx-4bit, mlx-8bit or bf16\n");
            return help ? 0 : 2;
        }
    }
    mkdir(models, 0777);
    char err[256];
    struct threadpool *pools[3] = {0};
    double bw[3] = {0};
    printf("kernels: %s\n", kernel_isa_name(kernel_isa_get()));
    for (int nth = 1; nth <= 2; nth++) {
        if (only_threads && only_threads != nth)
            continue;
        if (threadpool_create(nth, &pools[nth], err, sizeof(err)) != ST_OK) {
            printf("threadpool: %s\n", err);
            return 1;
        }
        bw[nth] = measure_bandwidth(pools[nth]);
        printf("memory read bandwidth, %d thread%s: %.1f GB/s\n", nth, nth > 1 ? "s" : "", bw[nth]);
    }
    for (int nth = 1; nth <= 2; nth++)
        if (!models_only && (!only_threads || only_threads == nth))
            bench_matvec(pools[nth], nth);
    if (n_prefill < 1)
        n_prefill = quick ? 128 : 512;
    if (n_decode < 1)
        n_decode = quick ? 32 : 128;
    struct run runs[64];
    int nr = 0;
    size_t n_shapes = quick ? 1 : sizeof(shapes) / sizeof(shapes[0]);
    int n_dtypes = quick && !only_dtype ? 1 : 3;
    printf("models (prefill %d tokens, decode %d tokens):\n", n_prefill, n_decode);
    for (size_t s = 0; s < n_shapes; s++)
        for (int d = 0; d < n_dtypes; d++) {
            char dir[1100];
            if ((only && strcmp(only, shapes[s].name) != 0) ||
                (only_dtype && strcmp(only_dtype, dtypes[d]) != 0))
                continue;
            if (ensure_model(models, build, &shapes[s], dtypes[d], dir, sizeof(dir)) != 0) {
                printf("  cannot make %s\n", dir);
                continue;
            }
            for (int nth = 1; nth <= 2; nth++)
                if ((!only_threads || only_threads == nth) &&
                    bench_model(dir, shapes[s].name, dtypes[d], nth, n_prefill, n_decode, bw[nth],
                                &runs[nr]) == 0)
                    nr++;
        }
    /* batched decode (none with --models-only): MLX 4-bit (or the --dtype
     * asked for), on the most threads asked for */
    int batch_threads = only_threads ? only_threads : 2;
    const char *batch_dtype = only_dtype ? only_dtype : dtypes[0];
    size_t batch_shapes = models_only ? 0 : n_shapes;
    struct batch_run batch[64];
    int nb = 0;
    if (batch_shapes)
        printf("batched decode, engine only (%d-token contexts, %d steps):\n", BATCH_CTX,
               quick ? 4 : 16);
    for (size_t s = 0; s < batch_shapes; s++) {
        char dir[1100];
        if ((only && strcmp(only, shapes[s].name) != 0) ||
            ensure_model(models, build, &shapes[s], batch_dtype, dir, sizeof(dir)) != 0)
            continue;
        nb +=
            bench_batch(dir, shapes[s].name, batch_threads, BATCH_CTX, quick ? 4 : 16, &batch[nb]);
    }
    FILE *f = fopen(json, "w");
    if (f) {
        fprintf(f,
                "{\"kernels\":\"%s\",\"bandwidth_gbs\":%.2f,\"bandwidth_gbs_1thread\":%.2f,"
                "\"runs\":[",
                kernel_isa_name(kernel_isa_get()), bw[2], bw[1]);
        for (int i = 0; i < nr; i++)
            fprintf(f,
                    "%s{\"model\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,\"prefill_tps\":%.2f,"
                    "\"decode_tps\":%.2f,\"bytes_per_token\":%.0f,\"roofline_pct\":%.1f}",
                    i ? "," : "", runs[i].model, runs[i].dtype, runs[i].threads,
                    runs[i].prefill_tps, runs[i].decode_tps, runs[i].bytes_per_token,
                    runs[i].roofline_pct);
        fprintf(f, "],\"batch\":[");
        for (int i = 0; i < nb; i++)
            fprintf(f, "%s{\"model\":\"%s\",\"threads\":%d,\"seqs\":%d,\"ms_per_step\":%.3f}",
                    i ? "," : "", batch[i].model, batch[i].threads, batch[i].seqs,
                    batch[i].ms_per_step);
        fprintf(f, "]}\n");
        fclose(f);
        printf("wrote %s\n", json);
    }
    threadpool_free(pools[1]);
    threadpool_free(pools[2]);
    return 0;
}
