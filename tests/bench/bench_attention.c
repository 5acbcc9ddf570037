/*
 * bench_attention.c - prints the time of one layer's attention on the
 * 110M Llama shape (12 heads of 64, MHA) for the whole prefill of a 512,
 * 2048 and 3400-token prompt, and of one decode step at 96, 512 and 3400
 * positions (GQA: 32 query heads over 8 KV heads; and the MHA 110M shape),
 * one thread:
 *   rows   - every (token, query head) through kernel_attention (the
 *            design before tiles: K/V streamed once per row)
 *   tiles  - kernel_attention_tile per (KV head, tile of tokens) as
 *            block_attention cuts them
 * The KV cache holds random fp32 K/V in 16-token blocks.  Best of 3, in
 * thread CPU time (less disturbed by other processes than wall time).
 *
 * Then a decode step as the forward pass runs it: F16 K/V of 16 layers in
 * hugepage-backed memory, each layer's attention split over KV heads on a
 * two-thread pool, with 36 MB of other memory (a 1B model's layer of 4-bit
 * weights) streamed by the same pool between layers, so K/V come from DRAM.
 * Only the attention is timed, in wall time; mean of 10 runs of 20 steps.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../st_build.h"
#include "kernels.h"
#include "tensor.h"
#include "threadpool.h"

enum { BLOCK_TOKENS = 16, HEAD_DIM = 64 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* the machine is shared */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct shape {
    int n_heads, n_kv_heads, ctx, n_queries; /* queries: the last n_queries positions */
};

struct bench_data {
    float *k, *v, *q, *out;
    int *blocks;
    struct kernel_kv_view view;
};

static void data_init(struct bench_data *d, const struct shape *s)
{
    uint64_t seed = 5;
    int nblocks = (s->ctx + BLOCK_TOKENS - 1) / BLOCK_TOKENS;
    size_t kvd = (size_t)s->n_kv_heads * HEAD_DIM, qd = (size_t)s->n_heads * HEAD_DIM;
    size_t nkv = (size_t)nblocks * BLOCK_TOKENS * kvd, nq = (size_t)s->n_queries * qd;
    d->k = malloc(nkv * sizeof(float));
    d->v = malloc(nkv * sizeof(float));
    d->q = malloc(nq * sizeof(float));
    d->out = malloc(nq * sizeof(float));
    d->blocks = malloc((size_t)nblocks * sizeof(int));
    for (size_t i = 0; i < nkv; i++) {
        d->k[i] = stb_randf(&seed);
        d->v[i] = stb_randf(&seed);
    }
    for (size_t i = 0; i < nq; i++)
        d->q[i] = stb_randf(&seed);
    for (int i = 0; i < nblocks; i++)
        d->blocks[i] = i;
    d->view = (struct kernel_kv_view){.k = d->k,
                                      .v = d->v,
                                      .block_stride = BLOCK_TOKENS * kvd,
                                      .kv_dim = kvd,
                                      .head_dim = HEAD_DIM,
                                      .block_tokens = BLOCK_TOKENS,
                                      .blocks = d->blocks};
}

static void data_free(struct bench_data *d)
{
    free(d->k);
    free(d->v);
    free(d->q);
    free(d->out);
    free(d->blocks);
}

static void run_rows(struct bench_data *d, const struct shape *s)
{
    size_t qd = (size_t)s->n_heads * HEAD_DIM;
    int group = s->n_heads / s->n_kv_heads, pos0 = s->ctx - s->n_queries;
    for (int t = 0; t < s->n_queries; t++)
        for (int h = 0; h < s->n_heads; h++)
            kernel_attention(d->q + (size_t)t * qd + (size_t)h * HEAD_DIM, &d->view,
                             (size_t)(h / group) * HEAD_DIM, HEAD_DIM, 0, pos0 + t + 1,
                             1.0f / sqrtf(HEAD_DIM),
                             d->out + (size_t)t * qd + (size_t)h * HEAD_DIM);
}

static void run_tiles(struct bench_data *d, const struct shape *s)
{
    size_t qd = (size_t)s->n_heads * HEAD_DIM;
    int group = s->n_heads / s->n_kv_heads, pos0 = s->ctx - s->n_queries;
    int tile = group < KERNEL_ATTN_TILE_ROWS ? KERNEL_ATTN_TILE_ROWS / group : 1;
    for (int kvh = 0; kvh < s->n_kv_heads; kvh++)
        for (int t0 = 0; t0 < s->n_queries; t0 += tile) {
            size_t off = (size_t)t0 * qd + (size_t)kvh * (size_t)group * HEAD_DIM;
            struct kernel_attn_tile t = {
                .q = d->q + off,
                .out = d->out + off,
                .stride = qd,
                .n_tokens = s->n_queries - t0 < tile ? s->n_queries - t0 : tile,
                .n_group = group,
                .pos0 = pos0 + t0,
            };
            kernel_attention_tile(&t, &d->view, (size_t)kvh * HEAD_DIM, HEAD_DIM,
                                  1.0f / sqrtf(HEAD_DIM));
        }
}

static double best_of(void (*fn)(struct bench_data *, const struct shape *), struct bench_data *d,
                      const struct shape *s, int reps)
{
    double best = INFINITY;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        for (int i = 0; i < reps; i++)
            fn(d, s);
        double dt = (now() - t0) / reps;
        best = dt < best ? dt : best;
    }
    return best;
}

static void bench(const char *label, const struct shape *s, int reps)
{
    struct bench_data d;
    data_init(&d, s);
    double rows = best_of(run_rows, &d, s, reps), tiles = best_of(run_tiles, &d, s, reps);
    printf("  %-28s rows %9.3f ms  tiles %9.3f ms  %5.1fx\n", label, rows * 1e3, tiles * 1e3,
           rows / tiles);
    data_free(&d);
}

/* ---- a decode step past the caches ------------------------------------ */

enum { COLD_LAYERS = 16, COLD_STEPS = 20, COLD_RUNS = 10 };
#define COLD_OTHER_BYTES ((size_t)36 << 20) /* streamed between layers */
#define COLD_OTHER_POOL ((size_t)600 << 20) /* where it comes from (a 1B 4-bit model) */

struct cold {
    struct shape s;
    uint16_t *k, *v; /* COLD_LAYERS layers of F16 K/V, consecutive blocks */
    float *q, *out;
    int *blocks;
    size_t layer_elems;
    int layer, n_chunks;
    uint64_t *other;       /* COLD_OTHER_POOL bytes */
    size_t other_at;       /* where the next layer's stream starts, in words */
    _Atomic uint64_t sink; /* what the streams read, so the reads are not dropped */
};

static void *huge_alloc(size_t bytes)
{
    void *p = aligned_alloc((size_t)2 << 20, bytes);
    if (p)
        madvise(p, bytes, MADV_HUGEPAGE); /* as the KV cache and weights ask */
    return p;
}

static void cold_attention(void *ctx, int chunk)
{
    struct cold *c = ctx;
    const struct shape *s = &c->s;
    int group = s->n_heads / s->n_kv_heads;
    size_t kvd = (size_t)s->n_kv_heads * HEAD_DIM, qd = (size_t)s->n_heads * HEAD_DIM;
    struct kernel_kv_view view = {.k = c->k + (size_t)c->layer * c->layer_elems,
                                  .v = c->v + (size_t)c->layer * c->layer_elems,
                                  .dtype = DTYPE_F16,
                                  .block_stride = BLOCK_TOKENS * kvd,
                                  .kv_dim = kvd,
                                  .head_dim = HEAD_DIM,
                                  .block_tokens = BLOCK_TOKENS,
                                  .blocks = c->blocks};
    size_t lo, hi;
    threadpool_split((size_t)s->n_kv_heads, 1, chunk, c->n_chunks, &lo, &hi);
    for (size_t kvh = lo; kvh < hi; kvh++) {
        size_t off = kvh * (size_t)group * HEAD_DIM;
        struct kernel_attn_tile t = {.q = c->q + off,
                                     .out = c->out + off,
                                     .stride = qd,
                                     .n_tokens = 1,
                                     .n_group = group,
                                     .pos0 = s->ctx - 1};
        kernel_attention_tile(&t, &view, kvh * HEAD_DIM, HEAD_DIM, 1.0f / sqrtf(HEAD_DIM));
    }
}

static void cold_other(void *ctx, int chunk)
{
    struct cold *c = ctx;
    size_t words = COLD_OTHER_BYTES / 8, pool = COLD_OTHER_POOL / 8, lo, hi;
    threadpool_split(words, 8, chunk, c->n_chunks, &lo, &hi);
    uint64_t acc = 0;
    for (size_t i = lo; i < hi; i += 8) /* a word per cache line */
        acc += c->other[(c->other_at + i) % pool];
    atomic_fetch_add_explicit(&c->sink, acc, memory_order_relaxed); /* both threads */
}

static void bench_cold(struct threadpool *pool, const char *label, const struct shape *s,
                       uint64_t *other)
{
    int nb = (s->ctx + BLOCK_TOKENS - 1) / BLOCK_TOKENS;
    struct cold c = {.s = *s, .other = other, .n_chunks = threadpool_size(pool)};
    c.layer_elems = (size_t)nb * BLOCK_TOKENS * (size_t)s->n_kv_heads * HEAD_DIM;
    size_t kv_bytes = (size_t)COLD_LAYERS * c.layer_elems * sizeof(uint16_t);
    size_t qd = (size_t)s->n_heads * HEAD_DIM;
    c.k = huge_alloc(kv_bytes);
    c.v = huge_alloc(kv_bytes);
    c.q = malloc(qd * sizeof(float));
    c.out = malloc(qd * sizeof(float));
    c.blocks = malloc((size_t)nb * sizeof(int));
    if (!c.k || !c.v || !c.q || !c.out || !c.blocks) {
        printf("  %-28s out of memory\n", label);
        goto out;
    }
    uint64_t seed = 9;
    for (size_t i = 0; i < (size_t)COLD_LAYERS * c.layer_elems; i++) {
        c.k[i] = f32_to_f16(stb_randf(&seed));
        c.v[i] = f32_to_f16(stb_randf(&seed));
    }
    for (size_t i = 0; i < qd; i++)
        c.q[i] = stb_randf(&seed);
    for (int i = 0; i < nb; i++)
        c.blocks[i] = i;
    double total = 0;
    for (int run = 0; run < COLD_RUNS; run++)
        for (int step = 0; step < COLD_STEPS; step++)
            for (c.layer = 0; c.layer < COLD_LAYERS; c.layer++) {
                threadpool_run(pool, cold_other, &c, c.n_chunks);
                c.other_at = (c.other_at + COLD_OTHER_BYTES / 8) % (COLD_OTHER_POOL / 8);
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                threadpool_run(pool, cold_attention, &c, c.n_chunks);
                clock_gettime(CLOCK_MONOTONIC, &b);
                total += (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
            }
    double step_s = total / (COLD_RUNS * COLD_STEPS);
    double read = 2.0 * (double)s->ctx * (double)s->n_kv_heads * HEAD_DIM * 2 * COLD_LAYERS;
    printf("  %-28s %7.3f ms a token (%d layers), K/V read at %.1f GB/s\n", label, step_s * 1e3,
           COLD_LAYERS, read / step_s / 1e9);
out:
    free(c.k);
    free(c.v);
    free(c.q);
    free(c.out);
    free(c.blocks);
}

static void bench_decode_cold(void)
{
    struct threadpool *pool;
    char err[128];
    if (threadpool_create(2, &pool, err, sizeof(err)) != ST_OK) {
        printf("thread pool: %s\n", err);
        return;
    }
    uint64_t *other = huge_alloc(COLD_OTHER_POOL);
    if (!other) {
        printf("out of memory\n");
        threadpool_free(pool);
        return;
    }
    memset(other, 1, COLD_OTHER_POOL);
    printf("decode attention, %d layers of F16 K/V past the caches, 2 threads (mean)\n",
           COLD_LAYERS);
    static const int ctxs[] = {64, 512, 1024};
    for (int i = 0; i < 3; i++) {
        char label[64];
        struct shape gqa = {32, 8, ctxs[i], 1}, mha = {12, 12, ctxs[i], 1};
        snprintf(label, sizeof(label), "at %d, 32q/8kv x64", ctxs[i]);
        bench_cold(pool, label, &gqa, other);
        snprintf(label, sizeof(label), "at %d, 12x64", ctxs[i]);
        bench_cold(pool, label, &mha, other);
    }
    free(other);
    threadpool_free(pool);
}

int main(int argc, char **argv)
{
    /* --isa NAME: a lower instruction set than the CPU's (avx2 on an
     * AVX-512 machine times the kernels CPUs without AVX-512 run); other
     * arguments are for other benchmarks (tests/bench/run.sh passes its
     * arguments to every one) */
    for (int i = 1; i < argc; i++) {
        enum kernel_isa isa;
        if (strcmp(argv[i], "--isa") != 0)
            continue;
        if (i + 1 == argc) {
            fprintf(stderr, "bench_attention: --isa needs a name (scalar, avx2, avx512, ...)\n");
            return 2;
        }
        if (!kernel_isa_by_name(argv[++i], &isa)) {
            fprintf(stderr, "bench_attention: this CPU has no instruction set %s\n", argv[i]);
            return 2;
        }
        kernel_isa_set(isa);
    }
    printf("attention, one layer, one thread, isa %s (best of 3)\n",
           kernel_isa_name(kernel_isa_get()));
    static const int prompts[] = {512, 2048, 3400};
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof(label), "prefill %d tokens, 12x64", prompts[i]);
        struct shape s = {12, 12, prompts[i], prompts[i]};
        bench(label, &s, 1);
    }
    /* decode steps, K/V in the caches up to 512 positions: the kernel's
     * own cost per step (softmax, pointers, prefetch requests) */
    static const int contexts[] = {96, 512, 3400};
    for (int i = 0; i < 3; i++) {
        char label[64];
        struct shape gqa = {32, 8, contexts[i], 1}, mha = {12, 12, contexts[i], 1};
        int reps = 68000 / contexts[i];
        snprintf(label, sizeof(label), "decode at %d, 32q/8kv x64", contexts[i]);
        bench(label, &gqa, reps);
        snprintf(label, sizeof(label), "decode at %d, 12x64", contexts[i]);
        bench(label, &mha, reps);
    }
    bench_decode_cold();
    return 0;
}
