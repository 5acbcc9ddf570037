/*
 * kv_cache.c - paged K/V storage plus block bookkeeping and the prefix cache.
 *
 * Bookkeeping (reference counts, the clean-block stack, the LRU of cached
 * blocks, the hash table, per-sequence block tables) never touches the
 * storage except for the copy-on-write of a shared or published block,
 * which copies one block's K and V for every layer.  Every array is
 * allocated at creation: nothing here allocates afterwards.
 */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model.h"

struct kv_seq {
    bool alive;
    int len;          /* positions written */
    int n_blocks;     /* entries used in blocks */
    int n_hashed;     /* leading full blocks whose chained hash is in hashes */
    int *blocks;      /* (max_seq_blocks) block table */
    uint64_t *hashes; /* (max_seq_blocks) chained hash of each leading full block */
};

struct kv_cache {
    int n_layers;
    int block_tokens;
    size_t kv_dim;      /* n_kv_heads * head_dim */
    enum dtype dtype;   /* of the stored elements: DTYPE_F32 or DTYPE_F16 */
    size_t elem;        /* bytes per element */
    size_t block_elems; /* block_tokens * kv_dim: one block of one layer, K or V */
    size_t n_blocks;
    int max_pos;          /* positions one sequence may hold */
    int max_seq_blocks;   /* block table capacity */
    size_t storage_bytes; /* of k, and of v: each a mapping of its own */
    uint8_t *k;           /* (n_layers, n_blocks, kv_dim, block_tokens) elements */
    uint8_t *v;           /* (n_layers, n_blocks, n_kv_heads, block_tokens, head_dim) elements */
    int *refs;            /* (n_blocks) reference counts */
    int *free_stack;      /* (n_blocks) ids of clean blocks; top at n_free - 1 */
    size_t n_free;
    /* prefix cache: published blocks are in the hash table; the unreferenced
     * ones also in the LRU list (head = next to recycle) */
    bool *pub;        /* (n_blocks) published */
    uint64_t *hash;   /* (n_blocks) chained hash of a published block */
    uint64_t *parent; /* (n_blocks) chained hash of the block before it (0 = first block) */
    int32_t *ids;     /* (n_blocks, block_tokens) token ids of a published block */
    int *bucket;      /* (n_buckets) first block of each hash chain, -1 = none */
    int *hnext;       /* (n_blocks) next block in the same bucket */
    size_t n_buckets; /* a power of two */
    int *lru_prev;    /* (n_blocks) */
    int *lru_next;    /* (n_blocks) */
    int lru_head, lru_tail;
    size_t n_cached;
    size_t n_evicted;
    int *fill;           /* (n_blocks) scratch of kv_cache_counts: -1 outside it */
    struct kv_seq *seqs; /* (max_seqs) */
    int max_seqs;
};

size_t kv_cache_block_bytes(const struct model_config *cfg, int block_tokens, enum dtype dt)
{
    if (block_tokens <= 0)
        block_tokens = KV_BLOCK_TOKENS_DEFAULT;
    return 2 * (size_t)cfg->n_layers * (size_t)block_tokens * (size_t)cfg->n_kv_heads *
           (size_t)cfg->head_dim * dtype_size(dt);
}

size_t kv_cache_blocks_for_budget(const struct model_config *cfg, int block_tokens, enum dtype dt,
                                  size_t budget_bytes)
{
    size_t bb = kv_cache_block_bytes(cfg, block_tokens, dt);
    return bb ? budget_bytes / bb : 0;
}

/* Zeroed storage for K or V: anonymous memory advised into transparent huge
 * pages (attention reads it in 4 KB pieces all over the pool: fewer TLB
 * misses), touched only as blocks are written.  NULL without memory. */
static uint8_t *storage_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, len, MADV_HUGEPAGE); /* advisory: failure only costs speed */
    return p;
}

enum status kv_cache_create(const struct model_config *cfg, size_t n_blocks, int block_tokens,
                            enum dtype dt, int max_seqs, struct kv_cache **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    if (block_tokens <= 0)
        block_tokens = KV_BLOCK_TOKENS_DEFAULT;
    if (dt != DTYPE_F32 && dt != DTYPE_F16)
        return status_fail(err, errlen, ST_ERR_INVALID, "kv cache: K/V must be F32 or F16, not %s",
                           dtype_name(dt));
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
    kv->dtype = dt;
    kv->elem = dtype_size(dt);
    kv->block_elems = (size_t)block_tokens * kv->kv_dim;
    kv->n_blocks = n_blocks;
    kv->max_pos = cfg->max_position_embeddings;
    size_t per_seq = ((size_t)kv->max_pos + (size_t)block_tokens - 1) / (size_t)block_tokens;
    kv->max_seq_blocks = (int)(per_seq < n_blocks ? per_seq : n_blocks);
    kv->max_seqs = max_seqs;
    size_t total = (size_t)kv->n_layers * n_blocks * kv->block_elems;
    if (total / n_blocks / kv->block_elems != (size_t)kv->n_layers || total > SIZE_MAX / kv->elem)
        goto nomem;
    kv->storage_bytes = total * kv->elem;
    kv->k = storage_alloc(kv->storage_bytes);
    kv->v = storage_alloc(kv->storage_bytes);
    kv->refs = calloc(n_blocks, sizeof(int));
    kv->free_stack = malloc(n_blocks * sizeof(int));
    kv->seqs = calloc((size_t)max_seqs, sizeof(*kv->seqs));
    kv->n_buckets = 1;
    while (kv->n_buckets < n_blocks)
        kv->n_buckets <<= 1;
    kv->pub = calloc(n_blocks, sizeof(*kv->pub));
    kv->hash = calloc(n_blocks, sizeof(*kv->hash));
    kv->parent = calloc(n_blocks, sizeof(*kv->parent));
    kv->ids = malloc(n_blocks * (size_t)block_tokens * sizeof(*kv->ids));
    kv->bucket = malloc(kv->n_buckets * sizeof(*kv->bucket));
    kv->hnext = malloc(n_blocks * sizeof(*kv->hnext));
    kv->lru_prev = malloc(n_blocks * sizeof(*kv->lru_prev));
    kv->lru_next = malloc(n_blocks * sizeof(*kv->lru_next));
    kv->fill = malloc(n_blocks * sizeof(*kv->fill));
    if (!kv->fill || !kv->k || !kv->v || !kv->refs || !kv->free_stack || !kv->seqs || !kv->pub ||
        !kv->hash || !kv->parent || !kv->ids || !kv->bucket || !kv->hnext || !kv->lru_prev ||
        !kv->lru_next)
        goto nomem;
    for (int s = 0; s < max_seqs; s++) {
        kv->seqs[s].blocks = malloc((size_t)kv->max_seq_blocks * sizeof(int));
        kv->seqs[s].hashes = malloc((size_t)kv->max_seq_blocks * sizeof(uint64_t));
        if (!kv->seqs[s].blocks || !kv->seqs[s].hashes)
            goto nomem;
    }
    for (size_t i = 0; i < kv->n_buckets; i++)
        kv->bucket[i] = -1;
    kv->lru_head = kv->lru_tail = -1;
    for (size_t i = 0; i < n_blocks; i++)
        kv->fill[i] = -1;
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
                       kv_cache_block_bytes(cfg, block_tokens, dt));
}

void kv_cache_free(struct kv_cache *kv)
{
    if (!kv)
        return;
    if (kv->seqs)
        for (int s = 0; s < kv->max_seqs; s++) {
            free(kv->seqs[s].blocks);
            free(kv->seqs[s].hashes);
        }
    free(kv->seqs);
    free(kv->pub);
    free(kv->hash);
    free(kv->parent);
    free(kv->ids);
    free(kv->bucket);
    free(kv->hnext);
    free(kv->lru_prev);
    free(kv->lru_next);
    free(kv->fill);
    if (kv->k)
        munmap(kv->k, kv->storage_bytes);
    if (kv->v)
        munmap(kv->v, kv->storage_bytes);
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
    return kv->n_free + kv->n_cached;
}

static size_t block_bytes(const struct kv_cache *kv)
{
    return 2 * (size_t)kv->n_layers * kv->block_elems * kv->elem;
}

size_t kv_cache_bytes(const struct kv_cache *kv)
{
    return kv->n_blocks * block_bytes(kv);
}

size_t kv_cache_bytes_used(const struct kv_cache *kv)
{
    return (kv->n_blocks - kv_cache_free_blocks(kv)) * block_bytes(kv);
}

int kv_cache_max_seqs(const struct kv_cache *kv)
{
    return kv->max_seqs;
}

enum dtype kv_cache_dtype(const struct kv_cache *kv)
{
    return kv->dtype;
}

void *kv_cache_block_k(struct kv_cache *kv, int layer, int block)
{
    return kv->k + ((size_t)layer * kv->n_blocks + (size_t)block) * kv->block_elems * kv->elem;
}

void *kv_cache_block_v(struct kv_cache *kv, int layer, int block)
{
    return kv->v + ((size_t)layer * kv->n_blocks + (size_t)block) * kv->block_elems * kv->elem;
}

int kv_cache_block_refs(const struct kv_cache *kv, int block)
{
    if (block < 0 || (size_t)block >= kv->n_blocks)
        return 0;
    return kv->refs[block];
}

/* --- block allocator ---------------------------------------------------- */

static void lru_remove(struct kv_cache *kv, int b)
{
    int p = kv->lru_prev[b], n = kv->lru_next[b];
    if (p >= 0)
        kv->lru_next[p] = n;
    else
        kv->lru_head = n;
    if (n >= 0)
        kv->lru_prev[n] = p;
    else
        kv->lru_tail = p;
    kv->n_cached--;
}

static void lru_append(struct kv_cache *kv, int b)
{
    kv->lru_prev[b] = kv->lru_tail;
    kv->lru_next[b] = -1;
    if (kv->lru_tail >= 0)
        kv->lru_next[kv->lru_tail] = b;
    else
        kv->lru_head = b;
    kv->lru_tail = b;
    kv->n_cached++;
}

static size_t bucket_of(const struct kv_cache *kv, uint64_t h)
{
    return (size_t)(h & (kv->n_buckets - 1));
}

/* Takes a published block out of the hash table (its contents are about to
 * change or be forgotten). */
static void unpublish(struct kv_cache *kv, int b)
{
    int *link = &kv->bucket[bucket_of(kv, kv->hash[b])];
    while (*link != b)
        link = &kv->hnext[*link];
    *link = kv->hnext[b];
    kv->pub[b] = false;
}

/* A clean block if any, else the least recently freed cached one.  The
 * caller has checked kv_cache_free_blocks(). */
static int block_alloc(struct kv_cache *kv)
{
    int b;
    if (kv->n_free) {
        b = kv->free_stack[--kv->n_free];
    } else {
        b = kv->lru_head;
        lru_remove(kv, b);
        unpublish(kv, b);
        kv->n_evicted++;
    }
    kv->refs[b] = 1;
    return b;
}

static void block_unref(struct kv_cache *kv, int b)
{
    if (--kv->refs[b] > 0)
        return;
    if (kv->pub[b])
        lru_append(kv, b);
    else
        kv->free_stack[kv->n_free++] = b;
}

/* One more reference to a block found in the hash table. */
static void block_ref(struct kv_cache *kv, int b)
{
    if (kv->refs[b]++ == 0)
        lru_remove(kv, b);
}

static void block_copy(struct kv_cache *kv, int dst, int src)
{
    for (int l = 0; l < kv->n_layers; l++) {
        memcpy(kv_cache_block_k(kv, l, dst), kv_cache_block_k(kv, l, src),
               kv->block_elems * kv->elem);
        memcpy(kv_cache_block_v(kv, l, dst), kv_cache_block_v(kv, l, src),
               kv->block_elems * kv->elem);
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
            kv->seqs[s].n_hashed = 0;
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
    bool written = last < s->n_blocks; /* an existing block gets new positions */
    size_t avail = kv_cache_free_blocks(kv);
    /* A published block keeps its contents for later matches: copy it too,
     * unless the pool is too tight, then (ours alone) it just stops being
     * published. */
    bool cow = written && (kv->refs[s->blocks[last]] > 1 ||
                           (kv->pub[s->blocks[last]] && avail > (size_t)new_blocks));
    size_t want = (size_t)new_blocks + (cow ? 1 : 0);
    if (need > kv->max_seq_blocks || want > avail)
        return status_fail(err, errlen, ST_ERR_NOMEM,
                           "kv cache: sequence %d needs %zu more blocks, %zu free", seq, want,
                           avail);
    if (written && !cow && kv->pub[s->blocks[last]])
        unpublish(kv, s->blocks[last]);
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
        ds->hashes[i] = s->hashes[i];
        kv->refs[s->blocks[i]]++;
    }
    ds->n_blocks = used;
    ds->n_hashed = s->n_hashed;
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
    if (s->n_hashed > len / kv->block_tokens)
        s->n_hashed = len / kv->block_tokens;
    return ST_OK;
}

void kv_seq_free(struct kv_cache *kv, int seq)
{
    struct kv_seq *s = seq_get(kv, seq);
    if (!s)
        return;
    while (s->n_blocks > 0)
        block_unref(kv, s->blocks[--s->n_blocks]);
    s->alive = false;
    s->len = 0;
    s->n_hashed = 0;
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

/* --- prefix cache ------------------------------------------------------- */

/* The chained hash of one block: its token ids mixed into the hash of the
 * block before it (FNV-1a over the ids, then a splitmix64 finalizer so
 * bucket bits are well spread). */
static uint64_t chain_hash(uint64_t prev, const int32_t *ids, int n)
{
    uint64_t h = prev ^ 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)ids[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* The published block with this hash and these ids, or -1. */
static int lookup(const struct kv_cache *kv, uint64_t h, const int32_t *ids)
{
    int bt = kv->block_tokens;
    for (int b = kv->bucket[bucket_of(kv, h)]; b >= 0; b = kv->hnext[b])
        if (kv->hash[b] == h && !memcmp(kv->ids + (size_t)b * (size_t)bt, ids, (size_t)bt * 4))
            return b;
    return -1;
}

int kv_seq_attach_prefix(struct kv_cache *kv, int seq, const int32_t *tokens, int n, int max_len)
{
    struct kv_seq *s = seq_get(kv, seq);
    if (!s || s->n_blocks || n <= 0 || max_len <= 0)
        return 0;
    int bt = kv->block_tokens;
    uint64_t prev = 0; /* chained hash of the blocks attached so far */
    while ((s->n_blocks + 1) * bt <= n && s->n_blocks < kv->max_seq_blocks) {
        const int32_t *ids = tokens + (size_t)s->n_blocks * (size_t)bt;
        uint64_t h = chain_hash(prev, ids, bt);
        int b = lookup(kv, h, ids);
        if (b < 0)
            break;
        block_ref(kv, b);
        s->hashes[s->n_blocks] = h;
        s->blocks[s->n_blocks++] = b;
        prev = h;
    }
    int matched = s->n_blocks * bt;
    if (matched < n && s->n_blocks < kv->max_seq_blocks) {
        /* The prompt leaves the cached chain inside the next block: a
         * published block after the same prefix that starts with the same
         * ids still holds their K/V.  It is shared like the others and
         * copied on its first write. */
        int want = n - matched < bt ? n - matched : bt, best = -1, best_len = 0;
        const int32_t *ids = tokens + matched;
        for (size_t b = 0; b < kv->n_blocks && best_len < want; b++) {
            if (!kv->pub[b] || kv->parent[b] != prev)
                continue;
            const int32_t *have = kv->ids + b * (size_t)bt;
            int k = 0;
            while (k < want && have[k] == ids[k])
                k++;
            if (k > best_len) {
                best_len = k;
                best = (int)b;
            }
        }
        if (best >= 0) {
            block_ref(kv, best);
            s->blocks[s->n_blocks++] = best;
            matched += best_len;
        }
    }
    s->len = matched < max_len ? matched : max_len;
    s->n_hashed = s->len / bt;
    return s->len;
}

void kv_seq_publish(struct kv_cache *kv, int seq, const int32_t *tokens)
{
    struct kv_seq *s = seq_get(kv, seq);
    if (!s)
        return;
    int bt = kv->block_tokens;
    for (int i = s->n_hashed; i < s->len / bt; i++) {
        const int32_t *ids = tokens + (size_t)i * (size_t)bt;
        uint64_t h = chain_hash(i ? s->hashes[i - 1] : 0, ids, bt);
        s->hashes[i] = h;
        int b = s->blocks[i];
        if (!kv->pub[b] && lookup(kv, h, ids) < 0) {
            kv->pub[b] = true;
            kv->hash[b] = h;
            kv->parent[b] = i ? s->hashes[i - 1] : 0;
            memcpy(kv->ids + (size_t)b * (size_t)bt, ids, (size_t)bt * sizeof(*ids));
            size_t k = bucket_of(kv, h);
            kv->hnext[b] = kv->bucket[k];
            kv->bucket[k] = b;
        }
    }
    if (s->n_hashed < s->len / bt)
        s->n_hashed = s->len / bt;
}

void kv_cache_counts(const struct kv_cache *kv, struct kv_cache_counts *out)
{
    memset(out, 0, sizeof(*out));
    out->cached = kv->n_cached;
    out->clean = kv->n_free;
    out->used = kv->n_blocks - kv->n_free - kv->n_cached;
    out->evicted = kv->n_evicted;
    for (size_t b = 0; b < kv->n_blocks; b++)
        if (kv->refs[b] > 1)
            out->shared++;
    /* Unused slots, block by block: a block's filled slots are the most any
     * sequence referencing it has written there (a shared prefix block
     * counts once, full when any of its sharers filled it), so a slot is
     * unused only when no live sequence holds a position in it.  fill is
     * scratch, -1 everywhere between calls. */
    int bt = kv->block_tokens;
    for (int q = 0; q < kv->max_seqs; q++) {
        const struct kv_seq *s = &kv->seqs[q];
        for (int i = 0; s->alive && i < s->n_blocks; i++) {
            int f = s->len - i * bt, b = s->blocks[i];
            f = f < 0 ? 0 : f > bt ? bt : f;
            if (f > kv->fill[b])
                kv->fill[b] = f;
        }
    }
    for (int q = 0; q < kv->max_seqs; q++) {
        const struct kv_seq *s = &kv->seqs[q];
        for (int i = 0; s->alive && i < s->n_blocks; i++) {
            int b = s->blocks[i];
            if (kv->fill[b] >= 0) {
                out->unused_slots += (size_t)(bt - kv->fill[b]);
                kv->fill[b] = -1;
            }
        }
    }
}

bool kv_cache_check(const struct kv_cache *kv)
{
    size_t n = kv->n_blocks;
    int *count = calloc(n, sizeof(int));
    if (!count)
        return false;
    bool ok = true;
    for (int q = 0; q < kv->max_seqs; q++) {
        const struct kv_seq *s = &kv->seqs[q];
        if (!s->alive)
            continue;
        if (s->len > s->n_blocks * kv->block_tokens || s->n_hashed > s->len / kv->block_tokens)
            ok = false;
        for (int i = 0; i < s->n_blocks; i++)
            count[s->blocks[i]]++;
    }
    for (size_t b = 0; b < n; b++)
        if (count[b] != kv->refs[b])
            ok = false;
    /* every unreferenced block is on the clean stack or the LRU, once */
    memset(count, 0, n * sizeof(int));
    for (size_t i = 0; i < kv->n_free; i++)
        if (kv->refs[kv->free_stack[i]] || kv->pub[kv->free_stack[i]] || count[kv->free_stack[i]]++)
            ok = false;
    size_t lru = 0;
    for (int b = kv->lru_head; b >= 0 && lru <= n; b = kv->lru_next[b], lru++)
        if (kv->refs[b] || !kv->pub[b] || count[b]++)
            ok = false;
    if (lru != kv->n_cached)
        ok = false;
    for (size_t b = 0; b < n; b++)
        if (!kv->refs[b] && !count[b])
            ok = false;
    /* the hash table holds exactly the published blocks */
    size_t in_table = 0, pub = 0;
    for (size_t k = 0; k < kv->n_buckets; k++)
        for (int b = kv->bucket[k]; b >= 0 && in_table <= n; b = kv->hnext[b], in_table++)
            if (!kv->pub[b] || bucket_of(kv, kv->hash[b]) != k)
                ok = false;
    for (size_t b = 0; b < n; b++)
        pub += kv->pub[b];
    free(count);
    return ok && in_table == pub;
}
