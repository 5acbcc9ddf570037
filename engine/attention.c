/*
 * attention.c - the attention step of a decoder block (block_attention in
 * model_internal.h), then the output projection added to the residual stream.
 *
 * The batch's queries are cut into units of (sequence, KV head, tile of
 * consecutive tokens): a unit holds the query heads of one GQA group for up
 * to KERNEL_ATTN_TILE_ROWS / group tokens, so kernel_attention_tile streams
 * that KV head's positions once for all of them (a prefill chunk reads its
 * K/V once per tile instead of once per token and head; a decode step once
 * per group instead of once per query head).  Units are split over the pool;
 * the units of one (sequence, KV head) are consecutive, so a thread's share
 * mostly re-reads K/V it has just read.
 */
#include <math.h>

#include "model_internal.h"

static size_t qdim(const struct model *m)
{
    return (size_t)m->cfg.n_heads * (size_t)m->cfg.head_dim;
}

struct kernel_kv_view layer_kv_view(struct kv_cache *kv, const struct model_config *c, int layer)
{
    size_t kd = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    return (struct kernel_kv_view){
        .k = kv_cache_block_k(kv, layer, 0),
        .v = kv_cache_block_v(kv, layer, 0),
        .dtype = kv_cache_dtype(kv),
        .block_stride = (size_t)kv_cache_block_tokens(kv) * kd,
        .kv_dim = kd,
        .head_dim = c->head_dim,
        .block_tokens = kv_cache_block_tokens(kv),
    };
}

struct attn_job {
    struct model *m;
    struct kv_cache *kv;
    const struct model_batch *b;
    int layer, n_chunks;
    int tile_tokens; /* tokens per unit */
};

static int tiles_of(const struct attn_job *j, int seq)
{
    return (j->b->seqs[seq].n_tokens + j->tile_tokens - 1) / j->tile_tokens;
}

static size_t units_of(const struct attn_job *j)
{
    size_t units = 0;
    for (int i = 0; i < j->b->n_seqs; i++)
        units += (size_t)tiles_of(j, i) * (size_t)j->m->cfg.n_kv_heads;
    return units;
}

static void attn_run(void *ctx, int chunk)
{
    const struct attn_job *j = ctx;
    struct model *m = j->m;
    const struct model_config *c = &m->cfg;
    struct model_scratch *s = &m->s;
    size_t hd = (size_t)c->head_dim, qd = qdim(m);
    int group = c->n_heads / c->n_kv_heads;
    bool windowed = c->sliding_window > 0 && j->layer >= c->sliding_window_from_layer;
    struct kernel_kv_view view = layer_kv_view(j->kv, c, j->layer);
    size_t lo, hi;
    threadpool_split(units_of(j), 1, chunk, j->n_chunks, &lo, &hi);
    /* find the sequence of unit lo; units run (sequence, KV head, tile) */
    int seq = 0, first_tok = 0;
    size_t u0 = 0;
    while (u0 + (size_t)tiles_of(j, seq) * (size_t)c->n_kv_heads <= lo) {
        u0 += (size_t)tiles_of(j, seq) * (size_t)c->n_kv_heads;
        first_tok += j->b->seqs[seq].n_tokens;
        seq++;
    }
    for (size_t u = lo; u < hi; u++) {
        int tiles = tiles_of(j, seq);
        if (u - u0 >= (size_t)tiles * (size_t)c->n_kv_heads) {
            u0 += (size_t)tiles * (size_t)c->n_kv_heads;
            first_tok += j->b->seqs[seq].n_tokens;
            seq++;
            tiles = tiles_of(j, seq);
        }
        const struct model_batch_seq *e = &j->b->seqs[seq];
        int kvh = (int)((u - u0) / (size_t)tiles), tile = (int)((u - u0) % (size_t)tiles), nb;
        int t0 = first_tok + tile * j->tile_tokens;
        int n_tok = e->n_tokens - tile * j->tile_tokens;
        view.blocks = kv_seq_blocks(j->kv, e->seq, &nb);
        size_t off = (size_t)t0 * qd + (size_t)kvh * (size_t)group * hd;
        struct kernel_attn_tile t = {
            .q = s->q + off,
            .out = s->att_out + off,
            .stride = qd,
            .n_tokens = n_tok < j->tile_tokens ? n_tok : j->tile_tokens,
            .n_group = group,
            .pos0 = s->tok_pos[t0],
            .window = windowed ? c->sliding_window : 0,
        };
        kernel_attention_tile(&t, &view, (size_t)kvh * hd, c->head_dim,
                              1.0f / sqrtf((float)c->head_dim));
    }
}

void block_attention(struct model *m, struct kv_cache *kv, const struct model_batch *b, int layer,
                     int n)
{
    const struct model_config *c = &m->cfg;
    struct model_scratch *s = &m->s;
    int group = c->n_heads / c->n_kv_heads;
    struct attn_job job = {.m = m,
                           .kv = kv,
                           .b = b,
                           .layer = layer,
                           .tile_tokens =
                               group < KERNEL_ATTN_TILE_ROWS ? KERNEL_ATTN_TILE_ROWS / group : 1};
    job.n_chunks = threadpool_chunks(m->pool, units_of(&job));
    threadpool_run(m->pool, attn_run, &job, job.n_chunks);
    const struct layer_weights *lw = &m->w.layers[layer];
    kernel_matmul(m->pool, &lw->wo, s->att_out, (size_t)n, NULL, s->proj, s->mm);
    size_t tot = (size_t)n * (size_t)c->hidden;
    for (size_t i = 0; i < tot; i++)
        s->x[i] += s->proj[i];
}
