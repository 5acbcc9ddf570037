/*
 * kv_cache.c - paged K/V storage plus block bookkeeping.
 *
 * Bookkeeping (reference counts, the free stack, per-sequence block tables)
 * never touches the storage except for the copy-on-write of a shared block,
 * which copies one block's K and V for every layer.
 */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "model.h"

struct kv_seq {
    bool alive;
    int len;      /* positions written */
    int n_blocks; /* entries used in blocks */
    int *blocks;  /* (max_seq_blocks) block table */
};

struct kv_cache {
    int n_layers;
    int block_tokens;
    size_t kv_dim;       /* n_kv_heads * head_dim */
    size_t block_floats; /* block_tokens * kv_dim: one block of one layer, K or V */
    size_t n_blocks;
    int max_pos;        /* positions one sequence may hold */
    int max_seq_blocks; /* block table capacity */
    float *k;           /* (n_layers, n_blocks, block_tokens, kv_dim) */
    float *v;           /* (n_layers, n_blocks, block_tokens, kv_dim) */
    int *refs;          /* (n_blocks) reference counts */
    int *free_stack;    /* (n_blocks) ids of free blocks; top at n_free - 1 */
    size_t n_free;
    struct kv_seq *seqs; /* (max_seqs) */
    int max_seqs;
};

size_t kv_cache_block_bytes(const struct model_config *cfg, int block_tokens)
{
    if (block_tokens <= 0)
        block_tokens = KV_BLOCK_TOKENS_DEFAULT;
    return 2 * (size_t)cfg->n_layers * (size_t)block_tokens * (size_t)cfg->n_kv_heads *
           (size_t)cfg->head_dim * sizeof(float);
}

size_t kv_cache_blocks_for_budget(const struct model_config *cfg, int block_tokens,
                                  size_t budget_bytes)
{
    size_t bb = kv_cache_block_bytes(cfg, block_tokens);
    return bb ? budget_bytes / bb : 0;
}

enum status kv_cache_create(const struct model_config *cfg, size_t n_blocks, int block_tokens,
                            int max_seqs, struct kv_cache **out, char *err, size_t errlen)
{
    *out = NULL;
    if (block_tokens <= 0)
        block_tokens = KV_BLOCK_TOKENS_DEFAULT;
    if (n_blocks == 0 || max_seqs <= 0 || n_blocks > (size_t)1 << 30)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "kv cache: need 1..2^30 blocks and at least one sequence (got %zu "
                           "blocks, %d sequences)",
                           n_blocks, max_seqs);
    if (cfg->n_layers <= 0 || cfg->n_kv_heads <= 0 || cfg->head_dim <= 0 ||
        cfg->max_position_embeddings <= 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "kv cache: invalid model config");
    struct kv_cache *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return status_fail(err, errlen, ST_ERR_NOMEM, "kv cache: out of memory");
    kv->n_layers = cfg->n_layers;
    kv->block_tokens = block_tokens;
    kv->kv_dim = (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim;
    kv->block_floats = (size_t)block_tokens * kv->kv_dim;
    kv->n_blocks = n_blocks;
    kv->max_pos = cfg->max_position_embeddings;
    size_t per_seq = ((size_t)kv->max_pos + (size_t)block_tokens - 1) / (size_t)block_tokens;
    kv->max_seq_blocks = (int)(per_seq < n_blocks ? per_seq : n_blocks);
    kv->max_seqs = max_seqs;
    size_t total = (size_t)kv->n_layers * n_blocks * kv->block_floats;
    if (total / n_blocks / kv->block_floats != (size_t)kv->n_layers)
        goto nomem;
    kv->k = calloc(total, sizeof(float));
    kv->v = calloc(total, sizeof(float));
    kv->refs = calloc(n_blocks, sizeof(int));
    kv->free_stack = malloc(n_blocks * sizeof(int));
    kv->seqs = calloc((size_t)max_seqs, sizeof(*kv->seqs));
    if (!kv->k || !kv->v || !kv->refs || !kv->free_stack || !kv->seqs)
        goto nomem;
    for (int s = 0; s < max_seqs; s++) {
        kv->seqs[s].blocks = malloc((size_t)kv->max_seq_blocks * sizeof(int));
        if (!kv->seqs[s].blocks)
            goto nomem;
    }
    /* lowest ids on top so allocation order is predictable */
    for (size_t i = 0; i < n_blocks; i++)
        kv->free_stack[i] = (int)(n_blocks - 1 - i);
    kv->n_free = n_blocks;
    *out = kv;
    return ST_OK;
nomem:
    kv_cache_free(kv);
    return status_fail(err, errlen, ST_ERR_NOMEM,
                       "kv cache: cannot allocate %zu blocks of %zu bytes", n_blocks,
                       kv_cache_block_bytes(cfg, block_tokens));
}

void kv_cache_free(struct kv_cache *kv)
{
    if (!kv)
        return;
    if (kv->seqs)
        for (int s = 0; s < kv->max_seqs; s++)
            free(kv->seqs[s].blocks);
    free(kv->seqs);
    free(kv->k);
    free(kv->v);
    free(kv->refs);
    free(kv->free_stack);
    free(kv);
}

int kv_cache_block_tokens(const struct kv_cache *kv)
{
    return kv->block_tokens;
}

size_t kv_cache_n_blocks(const struct kv_cache *kv)
{
    return kv->n_blocks;
}

size_t kv_cache_free_blocks(const struct kv_cache *kv)
{
    return kv->n_free;
}

static size_t block_bytes(const struct kv_cache *kv)
{
    return 2 * (size_t)kv->n_layers * kv->block_floats * sizeof(float);
}

size_t kv_cache_bytes(const struct kv_cache *kv)
{
    return kv->n_blocks * block_bytes(kv);
}

size_t kv_cache_bytes_used(const struct kv_cache *kv)
{
    return (kv->n_blocks - kv->n_free) * block_bytes(kv);
}

int kv_cache_max_seqs(const struct kv_cache *kv)
{
    return kv->max_seqs;
}

float *kv_cache_block_k(struct kv_cache *kv, int layer, int block)
{
    return kv->k + ((size_t)layer * kv->n_blocks + (size_t)block) * kv->block_floats;
}

float *kv_cache_block_v(struct kv_cache *kv, int layer, int block)
{
    return kv->v + ((size_t)layer * kv->n_blocks + (size_t)block) * kv->block_floats;
}

int kv_cache_block_refs(const struct kv_cache *kv, int block)
{
    if (block < 0 || (size_t)block >= kv->n_blocks)
        return 0;
    return kv->refs[block];
}

/* --- block allocator ---------------------------------------------------- */

static int block_alloc(struct kv_cache *kv)
{
    int b = kv->free_stack[--kv->n_free];
    kv->refs[b] = 1;
    return b;
}

static void block_unref(struct kv_cache *kv, int b)
{
    if (--kv->refs[b] == 0)
        kv->free_stack[kv->n_free++] = b;
}

static void block_copy(struct kv_cache *kv, int dst, int src)
{
    for (int l = 0; l < kv->n_layers; l++) {
        memcpy(kv_cache_block_k(kv, l, dst), kv_cache_block_k(kv, l, src),
               kv->block_floats * sizeof(float));
        memcpy(kv_cache_block_v(kv, l, dst), kv_cache_block_v(kv, l, src),
               kv->block_floats * sizeof(float));
    }
}

/* --- sequences -------------------------------------------------------- */

static struct kv_seq *seq_get(const struct kv_cache *kv, int seq)
{
    if (seq < 0 || seq >= kv->max_seqs || !kv->seqs[seq].alive)
        return NULL;
    return &kv->seqs[seq];
}

enum status kv_seq_create(struct kv_cache *kv, int *seq, char *err, size_t errlen)
{
    for (int s = 0; s < kv->max_seqs; s++) {
        if (!kv->seqs[s].alive) {
            kv->seqs[s].alive = true;
            kv->seqs[s].len = 0;
            kv->seqs[s].n_blocks = 0;
            *seq = s;
            return ST_OK;
        }
    }
    return status_fail(err, errlen, ST_ERR_BUSY, "kv cache: all %d sequence slots are in use",
                       kv->max_seqs);
}

enum status kv_seq_reserve(struct kv_cache *kv, int seq, int n_more, char *err, size_t errlen)
{
    struct kv_seq *s = seq_get(kv, seq);
    if (!s || n_more < 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "kv cache: bad sequence %d or count %d",
                           seq, n_more);
    if (n_more == 0)
        return ST_OK;
    if (n_more > kv->max_pos - s->len)
        return status_fail(err, errlen, ST_ERR_RANGE,
                           "sequence %d: %d + %d positions exceed the maximum of %d", seq, s->len,
                           n_more, kv->max_pos);
    int bt = kv->block_tokens;
    int need = (s->len + n_more + bt - 1) / bt;
    int new_blocks = need > s->n_blocks ? need - s->n_blocks : 0;
    /* the block holding position len gets written: it must be ours alone */
    int last = s->len / bt;
    bool cow = last < s->n_blocks && kv->refs[s->blocks[last]] > 1;
    size_t want = (size_t)new_blocks + (cow ? 1 : 0);
    if (need > kv->max_seq_blocks || want > kv->n_free)
        return status_fail(err, errlen, ST_ERR_NOMEM,
                           "kv cache: sequence %d needs %zu more blocks, %zu free", seq, want,
                           kv->n_free);
    if (cow) {
        int old = s->blocks[last];
        int b = block_alloc(kv);
        block_copy(kv, b, old);
        block_unref(kv, old);
        s->blocks[last] = b;
    }
    for (int i = 0; i < new_blocks; i++)
        s->blocks[s->n_blocks++] = block_alloc(kv);
    return ST_OK;
}

enum status kv_seq_fork(struct kv_cache *kv, int src, int *dst, char *err, size_t errlen)
{
    struct kv_seq *s = seq_get(kv, src);
    if (!s)
        return status_fail(err, errlen, ST_ERR_INVALID, "kv cache: bad sequence %d", src);
    int d = -1;
    enum status rc = kv_seq_create(kv, &d, err, errlen);
    if (rc != ST_OK)
        return rc;
    struct kv_seq *ds = &kv->seqs[d];
    /* only blocks that hold positions are shared; spare reserved ones stay with src */
    int used = (s->len + kv->block_tokens - 1) / kv->block_tokens;
    for (int i = 0; i < used; i++) {
        ds->blocks[i] = s->blocks[i];
        kv->refs[s->blocks[i]]++;
    }
    ds->n_blocks = used;
    ds->len = s->len;
    *dst = d;
    return ST_OK;
}

enum status kv_seq_truncate(struct kv_cache *kv, int seq, int len, char *err, size_t errlen)
{
    struct kv_seq *s = seq_get(kv, seq);
    if (!s || len < 0 || len > s->len)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "kv cache: cannot truncate sequence %d to %d positions", seq, len);
    int keep = (len + kv->block_tokens - 1) / kv->block_tokens;
    while (s->n_blocks > keep)
        block_unref(kv, s->blocks[--s->n_blocks]);
    s->len = len;
    return ST_OK;
}

void kv_seq_free(struct kv_cache *kv, int seq)
{
    struct kv_seq *s = seq_get(kv, seq);
    if (!s)
        return;
    for (int i = 0; i < s->n_blocks; i++)
        block_unref(kv, s->blocks[i]);
    s->alive = false;
    s->n_blocks = 0;
    s->len = 0;
}

int kv_seq_alive(const struct kv_cache *kv, int seq)
{
    return seq_get(kv, seq) != NULL;
}

int kv_seq_len(const struct kv_cache *kv, int seq)
{
    const struct kv_seq *s = seq_get(kv, seq);
    return s ? s->len : 0;
}

int kv_seq_capacity(const struct kv_cache *kv, int seq)
{
    const struct kv_seq *s = seq_get(kv, seq);
    return s ? s->n_blocks * kv->block_tokens : 0;
}

const int *kv_seq_blocks(const struct kv_cache *kv, int seq, int *n)
{
    const struct kv_seq *s = seq_get(kv, seq);
    *n = s ? s->n_blocks : 0;
    return s ? s->blocks : NULL;
}

void kv_seq_set_len(struct kv_cache *kv, int seq, int len)
{
    struct kv_seq *s = seq_get(kv, seq);
    if (s && len >= 0 && len <= s->n_blocks * kv->block_tokens)
        s->len = len;
}

bool kv_cache_fits(const struct kv_cache *kv, const struct model_config *cfg)
{
    return kv->n_layers == cfg->n_layers &&
           kv->kv_dim == (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim &&
           kv->max_pos == cfg->max_position_embeddings;
}
