/*
 * bench_attention.c - prints the time of one layer's attention on the
 * 110M Llama shape (12 heads of 64, MHA) for the whole prefill of a 512,
 * 2048 and 3400-token prompt, and of one decode step at 3400 positions (GQA:
 * 32 query heads over 8 KV heads; and the MHA 110M shape), one thread:
 *   rows   - every (token, query head) through kernel_attention (the
 *            design before tiles: K/V streamed once per row)
 *   tiles  - kernel_attention_tile per (KV head, tile of tokens) as
 *            block_attention cuts them
 * The KV cache holds random fp32 K/V in 16-token blocks.  Best of 3, in
 * thread CPU time (less disturbed by other processes than wall time).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../st_build.h"
#include "kernels.h"

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

int main(void)
{
    printf("attention, one layer, one thread, isa %s (best of 3)\n",
           kernel_isa_name(kernel_isa_get()));
    static const int prompts[] = {512, 2048, 3400};
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof(label), "prefill %d tokens, 12x64", prompts[i]);
        struct shape s = {12, 12, prompts[i], prompts[i]};
        bench(label, &s, 1);
    }
    struct shape dec = {32, 8, 3400, 1}, dec_mha = {12, 12, 3400, 1};
    bench("decode at 3400, 32q/8kv x64", &dec, 20);
    bench("decode at 3400, 12x64", &dec_mha, 20);
    return 0;
}
