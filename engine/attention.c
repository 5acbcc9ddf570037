/*
 * attention.c - the attention step of a decoder block (block_attention in
 * model_internal.h): every (token, query head) of the batch attends over its
 * sequence's KV cache through the block table, split over the thread pool,
 * then the output projection is added to the residual stream.
 */
#include <math.h>

#include "model_internal.h"

static size_t qdim(const struct model *m)
{
    return (size_t)m->cfg.n_heads * (size_t)m->cfg.head_dim;
}

static size_t kvdim(const struct model *m)
{
    return (size_t)m->cfg.n_kv_heads * (size_t)m->cfg.head_dim;
}

/* One attention job: every (token, head) pair of the batch, split over the pool. */
struct attn_job {
    struct model *m;
    struct kv_cache *kv;
    const struct model_batch *b;
    int layer, n, n_chunks;
};

static void attn_run(void *ctx, int chunk)
{
    const struct attn_job *j = ctx;
    struct model *m = j->m;
    const struct model_config *c = &m->cfg;
    struct model_scratch *s = &m->s;
    size_t hd = (size_t)c->head_dim, qd = qdim(m), kd = kvdim(m);
    int group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)c->head_dim);
    struct kernel_kv_view view = {
        .k = kv_cache_block_k(j->kv, j->layer, 0),
        .v = kv_cache_block_v(j->kv, j->layer, 0),
        .block_stride = (size_t)kv_cache_block_tokens(j->kv) * kd,
        .token_stride = kd,
        .block_tokens = kv_cache_block_tokens(j->kv),
    };
    bool windowed = c->sliding_window > 0 && j->layer >= c->sliding_window_from_layer;
    size_t lo, hi;
    threadpool_split((size_t)j->n * (size_t)c->n_heads, 1, chunk, j->n_chunks, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        int t = (int)(i / (size_t)c->n_heads), h = (int)(i % (size_t)c->n_heads), nb;
        view.blocks = kv_seq_blocks(j->kv, j->b->seqs[s->tok_seq[t]].seq, &nb);
        int n_ctx = s->tok_pos[t] + 1;
        int start = windowed && n_ctx > c->sliding_window ? n_ctx - c->sliding_window : 0;
        kernel_attention(s->q + (size_t)t * qd + (size_t)h * hd, &view, (size_t)(h / group) * hd,
                         c->head_dim, start, n_ctx, scale,
                         s->att_out + (size_t)t * qd + (size_t)h * hd);
    }
}

void block_attention(struct model *m, struct kv_cache *kv, const struct model_batch *b, int layer,
                     int n)
{
    const struct model_config *c = &m->cfg;
    struct model_scratch *s = &m->s;
    struct attn_job job = {m, kv, b, layer, n, 0};
    job.n_chunks = threadpool_chunks(m->pool, (size_t)n * (size_t)c->n_heads);
    threadpool_run(m->pool, attn_run, &job, job.n_chunks);
    const struct layer_weights *lw = &m->w.layers[layer];
    kernel_matmul(m->pool, &lw->wo, s->att_out, (size_t)n, NULL, s->proj, s->mm);
    size_t tot = (size_t)n * (size_t)c->hidden;
    for (size_t i = 0; i < tot; i++)
        s->x[i] += s->proj[i];
}
