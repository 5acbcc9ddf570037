/*
 * test_attention.c - kernel_attention_tile (kernels_attention.c) against
 * kernel_attention_ref row by row: head dims that are and are not multiples
 * of 8 and 16, GQA groups of 1, 2, 4 and 7, tiles that start and end inside
 * and on block boundaries, sliding windows, tiles of more rows than one pass
 * takes, every ISA level; each row's result bit for bit the same alone
 * as inside a larger tile, and the same from the AVX2 and AVX-512 kernels.  (Several sequences in
 * one batch through block_attention: test_model's goldens.)
 */
#include <math.h>

#include "harness.h"
#include "kernels.h"
#include "st_build.h"

static float *rand_floats(size_t n, uint64_t *seed, float scale)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * stb_randf(seed);
    return p;
}

/* |got - want| / (1 + |want|) over n floats; NaN counts as the worst */
static double worst_err(const float *got, const float *want, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (1.0 + fabs(want[i]));
        worst = e > worst || isnan(e) ? e : worst;
    }
    return worst;
}

enum { MAX_CTX = 200, N_KV = 3 };

/* One KV cache of MAX_CTX positions for N_KV heads behind a scrambled
 * block table. */
struct cache {
    float *k, *v;
    int blocks[MAX_CTX];
    struct kernel_kv_view view;
};

/* dt F16 stores the same random values rounded, in the first half of k/v. */
static void cache_init(struct cache *c, int hd, int block_tokens, enum dtype dt, uint64_t *seed)
{
    int nblocks = (MAX_CTX + block_tokens - 1) / block_tokens;
    size_t kvd = (size_t)N_KV * (size_t)hd, n = (size_t)nblocks * (size_t)block_tokens * kvd;
    c->k = rand_floats(n, seed, 1.0f);
    c->v = rand_floats(n, seed, 1.0f);
    for (size_t i = 0; dt == DTYPE_F16 && i < n; i++) {
        ((uint16_t *)c->k)[i] = f32_to_f16(c->k[i]);
        ((uint16_t *)c->v)[i] = f32_to_f16(c->v[i]);
    }
    for (int i = 0; i < nblocks; i++)
        c->blocks[i] = (i * 7 + 3) % nblocks; /* a permutation: nblocks is prime to 7 */
    c->view = (struct kernel_kv_view){.k = c->k,
                                      .v = c->v,
                                      .dtype = dt,
                                      .block_stride = (size_t)block_tokens * kvd,
                                      .kv_dim = kvd,
                                      .head_dim = hd,
                                      .block_tokens = block_tokens,
                                      .blocks = c->blocks};
}

static void cache_free(struct cache *c)
{
    free(c->k);
    free(c->v);
}

/* Runs one tile of the given shape at the current ISA and checks every row
 * against kernel_attention_ref; returns the worst error. */
static double check_tile(struct cache *c, int hd, int group, int n_tokens, int pos0, int window,
                         uint64_t *seed)
{
    int n_heads = N_KV * group, kvh = N_KV - 1;
    size_t stride = (size_t)n_heads * (size_t)hd, n = (size_t)n_tokens * stride;
    float *q = rand_floats(n, seed, 2.0f), *out = malloc(n * sizeof(float));
    float *want = malloc((size_t)hd * sizeof(float)), att[MAX_CTX];
    for (size_t i = 0; i < n; i++)
        out[i] = NAN; /* rows outside the tile must stay untouched */
    float scale = 1.0f / sqrtf((float)hd);
    size_t off = (size_t)kvh * (size_t)group * (size_t)hd;
    struct kernel_attn_tile t = {.q = q + off,
                                 .out = out + off,
                                 .stride = stride,
                                 .n_tokens = n_tokens,
                                 .n_group = group,
                                 .pos0 = pos0,
                                 .window = window};
    kernel_attention_tile(&t, &c->view, (size_t)kvh * (size_t)hd, hd, scale);
    double worst = 0;
    for (int i = 0; i < n_tokens; i++) {
        int pos = pos0 + i, start = window > 0 && pos + 1 > window ? pos + 1 - window : 0;
        for (int h = 0; h < n_heads; h++) {
            const float *row = out + (size_t)i * stride + (size_t)h * (size_t)hd;
            if (h / group != kvh) {
                CHECK_MSG(isnan(row[0]) && isnan(row[hd - 1]), "head %d of another group written",
                          h);
                continue;
            }
            kernel_attention_ref(q + (size_t)i * stride + (size_t)h * (size_t)hd, &c->view,
                                 (size_t)kvh * (size_t)hd, hd, start, pos + 1, scale, att, want);
            double e = worst_err(row, want, hd);
            worst = e > worst || isnan(e) ? e : worst;
        }
    }
    free(q);
    free(out);
    free(want);
    return worst;
}

static void test_tile_shapes(void)
{
    static const int dims[] = {64, 8, 12, 16, 24, 72, 100, 128, 256};
    static const int groups[] = {1, 2, 4, 7};
    static const int block_sizes[] = {16, 5};
    uint64_t seed = 11;
    for (int f16 = 0; f16 < 2; f16++)
        for (size_t bs = 0; bs < sizeof(block_sizes) / sizeof(*block_sizes); bs++)
            for (size_t d = 0; d < sizeof(dims) / sizeof(*dims); d++) {
                int hd = dims[d];
                struct cache c;
                cache_init(&c, hd, block_sizes[bs], f16 ? DTYPE_F16 : DTYPE_F32, &seed);
                for (int isa = KERNEL_ISA_SCALAR; isa <= KERNEL_ISA_AVX512; isa++) {
                    kernel_isa_set((enum kernel_isa)isa);
                    for (size_t g = 0; g < sizeof(groups) / sizeof(*groups); g++) {
                        int group = groups[g];
                        /* (tokens, first position, window) */
                        static const int shapes[][3] = {
                            {1, 0, 0},   {1, 57, 0},  {3, 14, 0},    {16, 16, 0},
                            {9, 31, 0},  {40, 0, 0},  {33, 150, 0},  {5, 100, 20},
                            {12, 60, 7}, {1, 199, 1}, {20, 170, 50},
                        };
                        for (size_t s = 0; s < sizeof(shapes) / sizeof(*shapes); s++) {
                            double e = check_tile(&c, hd, group, shapes[s][0], shapes[s][1],
                                                  shapes[s][2], &seed);
                            CHECK_MSG(e < 1e-5,
                                      "%s isa %s hd %d group %d bt %d tokens %d pos0 %d window %d: "
                                      "error %g",
                                      f16 ? "F16" : "F32", kernel_isa_name((enum kernel_isa)isa),
                                      hd, group, block_sizes[bs], shapes[s][0], shapes[s][1],
                                      shapes[s][2], e);
                        }
                    }
                }
                cache_free(&c);
            }
    kernel_isa_set(KERNEL_ISA_AVX512);
}

/* A row's result must not depend on the tile it is computed in (chunked
 * prefill equals one pass equals token by token, bit for bit): every row of
 * a 40-token tile against the same row as a one-token tile. */
static void test_tile_row_independent(void)
{
    /* one token alone: 1-8 rows take the positions-in-lanes path, more the
     * rows-in-lanes one; block size 5 makes steps span blocks */
    static const int groups[] = {1, 2, 3, 4, 7, 12};
    static const int block_sizes[] = {16, 32, 5};
    uint64_t seed = 29;
    int hd = 24, pos0 = 90, n_tokens = 40;
    for (int f16 = 0; f16 < 2; f16++)
        for (size_t bs = 0; bs < sizeof(block_sizes) / sizeof(*block_sizes); bs++) {
            struct cache c;
            cache_init(&c, hd, block_sizes[bs], f16 ? DTYPE_F16 : DTYPE_F32, &seed);
            for (int isa = KERNEL_ISA_SCALAR; isa <= KERNEL_ISA_AVX512; isa++)
                for (size_t gi = 0; gi < sizeof(groups) / sizeof(*groups); gi++)
                    for (int window = 0; window <= 30; window += 30) {
                        int group = groups[gi];
                        kernel_isa_set((enum kernel_isa)isa);
                        size_t stride = (size_t)group * (size_t)hd, n = (size_t)n_tokens * stride;
                        float *q = rand_floats(n, &seed, 2.0f), *all = malloc(n * sizeof(float));
                        float *one = malloc(stride * sizeof(float));
                        struct kernel_attn_tile t = {.q = q,
                                                     .out = all,
                                                     .stride = stride,
                                                     .n_tokens = n_tokens,
                                                     .n_group = group,
                                                     .pos0 = pos0,
                                                     .window = window};
                        kernel_attention_tile(&t, &c.view, 0, hd, 0.2f);
                        for (int i = 0; i < n_tokens; i++) {
                            struct kernel_attn_tile t1 = t;
                            t1.q = q + (size_t)i * stride;
                            t1.out = one;
                            t1.n_tokens = 1;
                            t1.pos0 = pos0 + i;
                            kernel_attention_tile(&t1, &c.view, 0, hd, 0.2f);
                            CHECK_MSG(
                                memcmp(one, all + (size_t)i * stride, stride * sizeof(float)) == 0,
                                "%s isa %s group %d bt %d window %d token %d differs alone",
                                f16 ? "F16" : "F32", kernel_isa_name((enum kernel_isa)isa), group,
                                block_sizes[bs], window, i);
                        }
                        free(q);
                        free(all);
                        free(one);
                    }
            cache_free(&c);
        }
    kernel_isa_set(KERNEL_ISA_AVX512);
}

/* The AVX2 and AVX-512 tile kernels compute the same bits (a model's output
 * must not depend on the machine's vector width): every row of tiles of 1,
 * 3 and 40 tokens, head dims the AVX2 kernel takes, both paths of each
 * (few rows: positions in lanes; many: rows in lanes), steps that span
 * blocks, windows.  Needs a CPU with AVX-512; elsewhere it says so. */
static void test_tile_isa_agree(void)
{
    if (kernel_isa_detect() < KERNEL_ISA_AVX512) {
        printf("     (no AVX-512 here: the AVX2 kernel is checked against the reference only)\n");
        return;
    }
    static const int dims[] = {64, 8, 24, 40, 128};
    static const int groups[] = {1, 2, 3, 4, 7, 12};
    static const int block_sizes[] = {16, 32, 5};
    /* (tokens, first position, window) */
    static const int shapes[][3] = {{1, 0, 0}, {1, 95, 0}, {3, 14, 0}, {40, 150, 0}, {40, 90, 30}};
    uint64_t seed = 41;
    for (int f16 = 0; f16 < 2; f16++)
        for (size_t bs = 0; bs < sizeof(block_sizes) / sizeof(*block_sizes); bs++)
            for (size_t d = 0; d < sizeof(dims) / sizeof(*dims); d++) {
                int hd = dims[d];
                struct cache c;
                cache_init(&c, hd, block_sizes[bs], f16 ? DTYPE_F16 : DTYPE_F32, &seed);
                for (size_t gi = 0; gi < sizeof(groups) / sizeof(*groups); gi++)
                    for (size_t s = 0; s < sizeof(shapes) / sizeof(*shapes); s++) {
                        int group = groups[gi], n_tokens = shapes[s][0];
                        size_t stride = (size_t)group * (size_t)hd, n = (size_t)n_tokens * stride;
                        float *q = rand_floats(n, &seed, 2.0f);
                        float *out[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
                        for (int w = 0; w < 2; w++) {
                            kernel_isa_set(w ? KERNEL_ISA_AVX512 : KERNEL_ISA_AVX2);
                            struct kernel_attn_tile t = {.q = q,
                                                         .out = out[w],
                                                         .stride = stride,
                                                         .n_tokens = n_tokens,
                                                         .n_group = group,
                                                         .pos0 = shapes[s][1],
                                                         .window = shapes[s][2]};
                            kernel_attention_tile(&t, &c.view, 0, hd, 1.0f / sqrtf((float)hd));
                        }
                        CHECK_MSG(memcmp(out[0], out[1], n * sizeof(float)) == 0,
                                  "%s hd %d group %d bt %d tokens %d pos0 %d window %d: AVX2 and "
                                  "AVX-512 differ",
                                  f16 ? "F16" : "F32", hd, group, block_sizes[bs], n_tokens,
                                  shapes[s][1], shapes[s][2]);
                        free(q);
                        free(out[0]);
                        free(out[1]);
                    }
                cache_free(&c);
            }
    kernel_isa_set(KERNEL_ISA_AVX512);
}

int main(void)
{
    RUN(test_tile_shapes);
    RUN(test_tile_row_independent);
    RUN(test_tile_isa_agree);
    return harness_finish();
}
