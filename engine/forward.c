/*
 * forward.c - the batched forward pass and the transformer blocks the model
 * families compose.
 *
 * All tokens of a batch (every chunk of every sequence) are processed
 * together, layer by layer: the projections run as one matmul over all
 * tokens, so each weight row is read once per layer per step.  Each layer
 * stores the batch's K/V in the cache before attending, so a token sees the
 * earlier tokens of its own chunk through the same block-table path as the
 * cached ones.  Everything runs in the scratch allocated at load.
 */
#include <math.h>
#include <string.h>

#include "model_internal.h"

static size_t qdim(const struct model *m)
{
    return (size_t)m->cfg.n_heads * (size_t)m->cfg.head_dim;
}

static size_t kvdim(const struct model *m)
{
    return (size_t)m->cfg.n_kv_heads * (size_t)m->cfg.head_dim;
}

void block_qkv(struct model *m, int layer, int n)
{
    const struct layer_weights *lw = &m->w.layers[layer];
    struct model_scratch *s = &m->s;
    size_t h = (size_t)m->cfg.hidden;
    for (int t = 0; t < n; t++)
        kernel_rmsnorm(s->xb + (size_t)t * h, s->x + (size_t)t * h, lw->attn_norm, h,
                       m->cfg.rms_norm_eps);
    const struct kernel_mat *w[3] = {&lw->wq, &lw->wk, &lw->wv};
    const float *bias[3] = {lw->bq, lw->bk, lw->bv};
    float *y[3] = {s->q, s->k, s->v};
    kernel_matmul_multi(m->pool, 3, w, s->xb, (size_t)n, bias, y, s->mm);
}

/* Per-head RMSNorm of token t's q and k with q_norm / k_norm (Qwen3). */
static void qk_norm_token(struct model *m, int layer, int t)
{
    const struct layer_weights *lw = &m->w.layers[layer];
    size_t hd = (size_t)m->cfg.head_dim;
    float *q = m->s.q + (size_t)t * qdim(m), *k = m->s.k + (size_t)t * kvdim(m);
    for (int h = 0; h < m->cfg.n_heads; h++)
        kernel_rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, lw->q_norm, hd, m->cfg.rms_norm_eps);
    for (int h = 0; h < m->cfg.n_kv_heads; h++)
        kernel_rmsnorm(k + (size_t)h * hd, k + (size_t)h * hd, lw->k_norm, hd, m->cfg.rms_norm_eps);
}

/* RoPE on token t's q and k at its position. */
static void rope_token(struct model *m, int t)
{
    int hd = m->cfg.head_dim;
    const float *cs = m->s.rope + (size_t)t * (size_t)hd;
    kernel_rope(m->s.q + (size_t)t * qdim(m), m->cfg.n_heads, hd, cs);
    kernel_rope(m->s.k + (size_t)t * kvdim(m), m->cfg.n_kv_heads, hd, cs);
}

/* Writes token t's k and v into its sequence's cache slot of the layer
 * (view: its layer_kv_view, made once per layer), at the indexes the
 * attention kernels read: K feature-major (feature f + 1 a block's width
 * on), each head's V features contiguous. */
static void kv_store_token(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                           int layer, const struct kernel_kv_view *view, int t)
{
    int bt = view->block_tokens;
    size_t kd = view->kv_dim, hd = (size_t)view->head_dim;
    int nb, pos = m->s.tok_pos[t];
    const int *blocks = kv_seq_blocks(kv, b->seqs[m->s.tok_seq[t]].seq, &nb);
    int blk = blocks[pos / bt], in = pos % bt;
    const float *kt = m->s.k + (size_t)t * kd, *vt = m->s.v + (size_t)t * kd;
    size_t k0 = kernel_kv_k_at(view, blk, in, 0);
    void *kbase = kv_cache_block_k(kv, layer, 0), *vbase = kv_cache_block_v(kv, layer, 0);
    if (view->dtype == DTYPE_F16) {
        uint16_t *k = (uint16_t *)kbase + k0, *v = vbase, h[256];
        for (size_t f0 = 0; f0 < kd; f0 += 256) {
            size_t nf = kd - f0 < 256 ? kd - f0 : 256;
            kernel_f32_to_f16(kt + f0, h, nf);
            for (size_t f = 0; f < nf; f++)
                k[(f0 + f) * (size_t)bt] = h[f];
        }
        for (size_t f = 0; f < kd; f += hd)
            kernel_f32_to_f16(vt + f, v + kernel_kv_v_at(view, blk, in, f), hd);
    } else {
        float *k = (float *)kbase + k0, *v = vbase;
        for (size_t f = 0; f < kd; f++)
            k[f * (size_t)bt] = kt[f];
        for (size_t f = 0; f < kd; f += hd)
            memcpy(v + kernel_kv_v_at(view, blk, in, f), vt + f, hd * sizeof(float));
    }
}

struct qk_job {
    struct model *m;
    struct kv_cache *kv;
    const struct model_batch *b;
    struct kernel_kv_view view; /* the layer's cache, once per layer */
    int layer, n, n_chunks;
};

static void qk_run(void *ctx, int chunk)
{
    const struct qk_job *j = ctx;
    size_t lo, hi;
    threadpool_split((size_t)j->n, 1, chunk, j->n_chunks, &lo, &hi);
    for (int t = (int)lo; t < (int)hi; t++) {
        if (j->m->cfg.qk_norm)
            qk_norm_token(j->m, j->layer, t);
        rope_token(j->m, t);
        kv_store_token(j->m, j->kv, j->b, j->layer, &j->view, t);
    }
}

void block_qk_rope_store(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                         int layer, int n)
{
    struct qk_job j = {.m = m,
                       .kv = kv,
                       .b = b,
                       .view = layer_kv_view(kv, &m->cfg, layer),
                       .layer = layer,
                       .n = n};
    j.n_chunks = threadpool_chunks(m->pool, (size_t)n);
    threadpool_run(m->pool, qk_run, &j, j.n_chunks);
}

void block_mlp(struct model *m, int layer, int n)
{
    const struct layer_weights *lw = &m->w.layers[layer];
    struct model_scratch *s = &m->s;
    size_t h = (size_t)m->cfg.hidden, f = (size_t)m->cfg.ffn;
    for (int t = 0; t < n; t++)
        kernel_rmsnorm(s->xb + (size_t)t * h, s->x + (size_t)t * h, lw->ffn_norm, h,
                       m->cfg.rms_norm_eps);
    const struct kernel_mat *w[2] = {&lw->w_gate, &lw->w_up};
    const float *bias[2] = {NULL, NULL};
    float *y[2] = {s->hb, s->hb2};
    kernel_matmul_multi(m->pool, 2, w, s->xb, (size_t)n, bias, y, s->mm);
    kernel_silu_mul(m->pool, s->hb, s->hb2, (size_t)n * f);
    kernel_matmul(m->pool, &lw->w_down, s->hb, (size_t)n, NULL, s->proj, s->mm);
    for (size_t i = 0; i < (size_t)n * h; i++)
        s->x[i] += s->proj[i];
}

int model_batch_logit_rows(const struct model_batch *b)
{
    int rows = 0;
    for (int i = 0; i < b->n_seqs; i++)
        rows += b->seqs[i].n_logits;
    return rows;
}

static enum status check_batch(const struct model *m, const struct kv_cache *kv,
                               const struct model_batch *b, int *n_tokens, char *err, size_t errlen)
{
    if (!kv_cache_fits(kv, &m->cfg))
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "batch: the kv cache was created for a different model shape");
    if (b->n_seqs < 0 || (b->n_seqs > 0 && !b->seqs))
        return status_fail(err, errlen, ST_ERR_INVALID, "batch: bad sequence list");
    long total = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const struct model_batch_seq *e = &b->seqs[i];
        if (!kv_seq_alive(kv, e->seq))
            return status_fail(err, errlen, ST_ERR_INVALID, "batch: sequence %d is not live",
                               e->seq);
        for (int j = 0; j < i; j++)
            if (b->seqs[j].seq == e->seq)
                return status_fail(err, errlen, ST_ERR_INVALID, "batch: sequence %d appears twice",
                                   e->seq);
        if (e->n_tokens < 1 || !e->tokens)
            return status_fail(err, errlen, ST_ERR_INVALID, "batch: sequence %d has no tokens",
                               e->seq);
        if (e->n_logits < 0 || e->n_logits > e->n_tokens)
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "batch: sequence %d asks for %d logits of %d tokens", e->seq,
                               e->n_logits, e->n_tokens);
        if (e->start_pos != kv_seq_len(kv, e->seq))
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "batch: sequence %d starts at %d but holds %d positions", e->seq,
                               e->start_pos, kv_seq_len(kv, e->seq));
        if (e->n_tokens > m->cfg.max_position_embeddings - e->start_pos)
            return status_fail(err, errlen, ST_ERR_RANGE,
                               "batch: sequence %d would pass max_position_embeddings %d", e->seq,
                               m->cfg.max_position_embeddings);
        for (int t = 0; t < e->n_tokens; t++)
            if (e->tokens[t] < 0 || e->tokens[t] >= m->cfg.vocab)
                return status_fail(err, errlen, ST_ERR_INVALID,
                                   "batch: token id %d is outside the vocabulary (%d)",
                                   (int)e->tokens[t], m->cfg.vocab);
        total += e->n_tokens;
        if (total > m->max_tokens)
            return status_fail(err, errlen, ST_ERR_RANGE,
                               "batch: more than %d tokens (max_batch_tokens)", m->max_tokens);
    }
    *n_tokens = (int)total;
    return ST_OK;
}

/* Runs the layers and leaves the final-normed hidden state of every row
 * that wants output in s->xb; *rows_out is their count. */
static enum status forward_rows(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                                const float *out, int *rows_out, char *err, size_t errlen)
{
    int n = 0;
    *rows_out = 0;
    enum status rc = check_batch(m, kv, b, &n, err, errlen);
    if (rc != ST_OK)
        return rc;
    if (model_batch_logit_rows(b) > 0 && !out)
        return status_fail(err, errlen, ST_ERR_INVALID, "batch asks for output but no buffer");
    for (int i = 0; i < b->n_seqs; i++) {
        rc = kv_seq_reserve(kv, b->seqs[i].seq, b->seqs[i].n_tokens, err, errlen);
        if (rc != ST_OK)
            return rc;
    }
    if (n == 0)
        return ST_OK;

    struct model_scratch *s = &m->s;
    const struct model_config *c = &m->cfg;
    size_t h = (size_t)c->hidden;
    int t = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const struct model_batch_seq *e = &b->seqs[i];
        for (int j = 0; j < e->n_tokens; j++, t++) {
            s->tok_seq[t] = i;
            s->tok_pos[t] = e->start_pos + j;
            kernel_mat_row(&m->w.embed, (size_t)e->tokens[j], s->x + (size_t)t * h);
            kernel_rope_angles(s->rope + (size_t)t * (size_t)c->head_dim, c->head_dim, m->inv_freq,
                               s->tok_pos[t]);
        }
    }
    for (int l = 0; l < c->n_layers; l++)
        m->family->layer_forward(m, kv, b, l, n);
    for (int i = 0; i < b->n_seqs; i++)
        kv_seq_set_len(kv, b->seqs[i].seq, b->seqs[i].start_pos + b->seqs[i].n_tokens);

    /* gather the rows that want output, normed */
    int rows = 0;
    t = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const struct model_batch_seq *e = &b->seqs[i];
        for (int j = 0; j < e->n_tokens; j++, t++)
            if (j >= e->n_tokens - e->n_logits)
                kernel_rmsnorm(s->xb + (size_t)rows++ * h, s->x + (size_t)t * h, m->w.norm, h,
                               c->rms_norm_eps);
    }
    *rows_out = rows;
    return ST_OK;
}

enum status model_forward(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                          float *logits_out, char *err, size_t errlen)
{
    int rows;
    enum status rc = forward_rows(m, kv, b, logits_out, &rows, err, errlen);
    if (rc == ST_OK && rows > 0)
        kernel_matmul(m->pool, &m->w.lm_head, m->s.xb, (size_t)rows, NULL, logits_out, m->s.mm);
    return rc;
}

enum status model_forward_hidden(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                                 float *hidden_out, char *err, size_t errlen)
{
    int rows;
    enum status rc = forward_rows(m, kv, b, hidden_out, &rows, err, errlen);
    if (rc == ST_OK && rows > 0)
        memcpy(hidden_out, m->s.xb, (size_t)rows * (size_t)m->cfg.hidden * sizeof(float));
    return rc;
}
