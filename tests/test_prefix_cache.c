/* Tests for the prefix cache in engine/kv_cache: chained-hash lookups,
 * sharing, copy-on-write of shared and published blocks, LRU recycling,
 * and allocator counters after random operations. */
#include <stdint.h>

#include "harness.h"
#include "kv_cache.h"
#include "model.h"

#define BT 4 /* tokens per block: small, so tests cross many blocks */

static struct model_config tiny_config(void)
{
    struct model_config c;
    memset(&c, 0, sizeof(c));
    c.n_layers = 2;
    c.n_kv_heads = 1;
    c.head_dim = 2;
    c.max_position_embeddings = 64;
    return c;
}

static struct kv_cache *make(size_t blocks, int seqs)
{
    struct model_config c = tiny_config();
    struct kv_cache *kv = NULL;
    char err[256] = "";
    enum status st = kv_cache_create(&c, blocks, BT, DTYPE_F32, seqs, &kv, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "%s", err);
    return kv;
}

/* Plays the forward pass: reserves n positions, writes value(pos) into
 * every K/V float of them, advances the length. */
static float value(int seq_tag, int pos)
{
    return (float)(seq_tag * 1000 + pos);
}

static void fill(struct kv_cache *kv, int seq, int n, int tag)
{
    CHECK_INT_EQ(kv_seq_reserve(kv, seq, n, NULL, 0), ST_OK);
    int len = kv_seq_len(kv, seq), nb;
    const int *blocks = kv_seq_blocks(kv, seq, &nb);
    for (int p = len; p < len + n; p++)
        for (int l = 0; l < 2; l++) {
            /* K feature-major, V head- then position-major (kv_cache.h; one head of 2 here) */
            float *k = (float *)kv_cache_block_k(kv, l, blocks[p / BT]) + p % BT;
            float *v = (float *)kv_cache_block_v(kv, l, blocks[p / BT]) + (p % BT) * 2;
            k[0] = k[BT] = v[0] = v[1] = value(tag, p);
        }
    kv_seq_set_len(kv, seq, len + n);
}

static float at(struct kv_cache *kv, int seq, int pos)
{
    int nb;
    const int *blocks = kv_seq_blocks(kv, seq, &nb);
    return ((float *)kv_cache_block_k(kv, 1, blocks[pos / BT]))[pos % BT];
}

static void test_attach_shares_full_blocks(void)
{
    struct kv_cache *kv = make(16, 4);
    if (!kv)
        return;
    int32_t toks[10] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    int a, b;
    kv_seq_create(kv, &a, NULL, 0);
    fill(kv, a, 10, 1);
    kv_seq_publish(kv, a, toks);
    kv_seq_create(kv, &b, NULL, 0);
    /* two full blocks (8 positions) match; the partial third never does */
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, b, toks, 10, 9), 8);
    int na, nb;
    const int *ba = kv_seq_blocks(kv, a, &na), *bb = kv_seq_blocks(kv, b, &nb);
    CHECK_INT_EQ(nb, 2);
    CHECK_INT_EQ(bb[0], ba[0]);
    CHECK_INT_EQ(bb[1], ba[1]);
    CHECK_INT_EQ(kv_cache_block_refs(kv, ba[0]), 2);
    CHECK(at(kv, b, 7) == value(1, 7));
    /* a different second block: the first whole, the second up to where
     * the ids differ */
    int32_t other[10] = {5, 6, 7, 8, 9, 10, 11, 99, 13, 14};
    int c;
    kv_seq_create(kv, &c, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, c, other, 10, 9), 7);
    /* the same block contents after a different first block: no match
     * (the hash is chained) */
    int32_t shifted[8] = {1, 2, 3, 4, 9, 10, 11, 12};
    int d;
    kv_seq_create(kv, &d, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, d, shifted, 8, 7), 0);
    CHECK(kv_cache_check(kv));
    kv_seq_free(kv, a);
    kv_seq_free(kv, b);
    kv_seq_free(kv, c);
    kv_seq_free(kv, d);
    struct kv_cache_counts n;
    kv_cache_counts(kv, &n);
    CHECK_INT_EQ(n.used, 0);
    CHECK_INT_EQ(n.cached, 2); /* the published blocks stay cached */
    CHECK(kv_cache_check(kv));
    kv_cache_free(kv);
}

static void test_copy_on_write(void)
{
    struct kv_cache *kv = make(16, 4);
    if (!kv)
        return;
    int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int a, b;
    kv_seq_create(kv, &a, NULL, 0);
    fill(kv, a, 8, 1);
    kv_seq_publish(kv, a, toks);
    kv_seq_create(kv, &b, NULL, 0);
    /* everything matches; b keeps 7 positions so it recomputes the last */
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, b, toks, 8, 7), 7);
    int na, nb;
    const int *ba = kv_seq_blocks(kv, a, &na);
    int shared = ba[1];
    CHECK_INT_EQ(kv_cache_block_refs(kv, shared), 2);
    fill(kv, b, 1, 2); /* writes position 7 of b: the shared block is copied */
    const int *bb = kv_seq_blocks(kv, b, &nb);
    CHECK(bb[1] != shared);
    CHECK_INT_EQ(bb[0], ba[0]);
    CHECK_INT_EQ(kv_cache_block_refs(kv, shared), 1);
    CHECK(at(kv, a, 7) == value(1, 7)); /* a's block was never overwritten */
    CHECK(at(kv, b, 7) == value(2, 7));
    CHECK(at(kv, b, 6) == value(1, 6)); /* the copy kept the earlier positions */
    CHECK(kv_cache_check(kv));
    /* a published block with no other user is copied too, so the cache
     * still serves the original */
    kv_seq_free(kv, b);
    int c;
    kv_seq_create(kv, &c, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, c, toks, 8, 8), 8);
    kv_seq_free(kv, a);
    CHECK_INT_EQ(kv_seq_truncate(kv, c, 6, NULL, 0), ST_OK);
    fill(kv, c, 1, 3);
    int d;
    kv_seq_create(kv, &d, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, d, toks, 8, 8), 8);
    CHECK(at(kv, d, 6) == value(1, 6));
    CHECK(at(kv, c, 6) == value(3, 6));
    CHECK(kv_cache_check(kv));
    kv_cache_free(kv);
}

/* A prompt that leaves the cached chain inside a block (same system
 * prompt, another user message) reuses that block's matching positions. */
static void test_attach_partial_block(void)
{
    struct kv_cache *kv = make(16, 4);
    if (!kv)
        return;
    int32_t first[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int32_t second[11] = {1, 2, 3, 4, 5, 6, 7, 40, 41, 42, 43};
    int a, b;
    kv_seq_create(kv, &a, NULL, 0);
    fill(kv, a, 12, 1);
    kv_seq_publish(kv, a, first);
    kv_seq_create(kv, &b, NULL, 0);
    /* block 0 matches whole, block 1 for 3 of its 4 ids */
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, b, second, 11, 10), 7);
    int na, nb;
    const int *ba = kv_seq_blocks(kv, a, &na), *bb = kv_seq_blocks(kv, b, &nb);
    CHECK_INT_EQ(nb, 2);
    CHECK_INT_EQ(bb[0], ba[0]);
    CHECK_INT_EQ(bb[1], ba[1]);
    CHECK(at(kv, b, 6) == value(1, 6));
    /* writing position 7 copies the block: a and the cache keep theirs */
    fill(kv, b, 4, 2);
    bb = kv_seq_blocks(kv, b, &nb);
    CHECK(bb[1] != ba[1]);
    CHECK(at(kv, b, 6) == value(1, 6));
    CHECK(at(kv, b, 7) == value(2, 7));
    CHECK(at(kv, a, 7) == value(1, 7));
    CHECK(kv_cache_check(kv));
    /* a different prefix never borrows a block published after another one */
    int32_t other[8] = {9, 9, 9, 9, 5, 6, 7, 8};
    int c;
    kv_seq_create(kv, &c, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, c, other, 8, 7), 0);
    /* a prompt shorter than a block matches the start of a first block */
    int32_t shortp[3] = {1, 2, 3};
    int d;
    kv_seq_create(kv, &d, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, d, shortp, 3, 2), 2);
    CHECK(at(kv, d, 1) == value(1, 1));
    CHECK(kv_cache_check(kv));
    kv_cache_free(kv);
}

static void test_lru_recycles_cached_blocks(void)
{
    struct kv_cache *kv = make(4, 2);
    if (!kv)
        return;
    int32_t toks[16];
    for (int i = 0; i < 16; i++)
        toks[i] = 100 + i;
    int a;
    kv_seq_create(kv, &a, NULL, 0);
    fill(kv, a, 16, 1);
    kv_seq_publish(kv, a, toks);
    kv_seq_free(kv, a);
    struct kv_cache_counts n;
    kv_cache_counts(kv, &n);
    CHECK_INT_EQ(n.cached, 4);
    CHECK_INT_EQ(kv_cache_free_blocks(kv), 4);
    /* one new block: the chain's last block is recycled first, so the
     * leading three still match */
    int b;
    kv_seq_create(kv, &b, NULL, 0);
    int32_t fresh[4] = {1, 1, 1, 1};
    fill(kv, b, 4, 2);
    kv_seq_publish(kv, b, fresh);
    kv_cache_counts(kv, &n);
    CHECK_INT_EQ(n.evicted, 1);
    int c;
    kv_seq_create(kv, &c, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, c, toks, 16, 15), 12);
    CHECK(at(kv, c, 11) == value(1, 11));
    /* the pool is full: a fourth block is refused, nothing changes */
    CHECK_INT_EQ(kv_seq_reserve(kv, c, 5, NULL, 0), ST_ERR_NOMEM);
    CHECK_INT_EQ(kv_seq_len(kv, c), 12);
    CHECK(kv_cache_check(kv));
    kv_cache_free(kv);
}

/* 1,000 random operations; the tables stay consistent throughout and
 * nothing is leaked once every sequence is gone. */
static void test_random_ops_no_leak(void)
{
    struct kv_cache *kv = make(24, 6);
    if (!kv)
        return;
    int32_t toks[6][64];
    int seqs[6];
    uint64_t rng = 42;
    for (int i = 0; i < 6; i++)
        seqs[i] = -1;
    bool ok = true;
    for (int op = 0; op < 1000 && ok; op++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(rng >> 33);
        int i = (int)(r % 6), kind = (int)((r / 6) % 6);
        if (seqs[i] < 0) {
            if (kv_seq_create(kv, &seqs[i], NULL, 0) != ST_OK)
                continue;
            /* prompts from a small alphabet of prefixes so matches happen */
            int fam = (int)((r >> 8) % 3);
            for (int p = 0; p < 64; p++)
                toks[i][p] = p < 12 ? fam * 100 + p : (int32_t)((r >> (p % 16)) % 50);
            int len = kv_seq_attach_prefix(kv, seqs[i], toks[i], 40, 39);
            CHECK(len >= 0 && len <= 39 && len <= kv_seq_capacity(kv, seqs[i]));
        } else if (kind <= 2) {
            int len = kv_seq_len(kv, seqs[i]), n = 1 + (int)(r % 7);
            if (len + n <= 64 && kv_seq_reserve(kv, seqs[i], n, NULL, 0) == ST_OK) {
                kv_seq_set_len(kv, seqs[i], len + n);
                kv_seq_publish(kv, seqs[i], toks[i]);
            }
        } else if (kind == 3) {
            int len = kv_seq_len(kv, seqs[i]);
            kv_seq_truncate(kv, seqs[i], len / 2, NULL, 0);
        } else {
            kv_seq_free(kv, seqs[i]);
            seqs[i] = -1;
        }
        ok = kv_cache_check(kv);
        CHECK_MSG(ok, "inconsistent after operation %d", op);
        struct kv_cache_counts c;
        kv_cache_counts(kv, &c);
        CHECK_MSG(c.unused_slots <= c.used * BT, "%zu unused slots in %zu used blocks",
                  c.unused_slots, c.used);
    }
    for (int i = 0; i < 6; i++)
        kv_seq_free(kv, seqs[i]);
    struct kv_cache_counts n;
    kv_cache_counts(kv, &n);
    CHECK_INT_EQ(n.used, 0);
    CHECK_INT_EQ(n.cached + n.clean, 24);
    CHECK(n.cached > 0);
    CHECK(kv_cache_check(kv));
    kv_cache_free(kv);
}

/* unused_slots (the engine's KV waste): slots of used blocks that no
 * sequence holds a position in, a shared block counted once and filled as
 * far as its furthest sharer; reserved-ahead blocks count whole. */
static size_t unused(struct kv_cache *kv)
{
    struct kv_cache_counts n;
    kv_cache_counts(kv, &n);
    return n.unused_slots;
}

static void test_unused_slots(void)
{
    struct kv_cache *kv = make(16, 4);
    if (!kv)
        return;
    int32_t toks[10] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    int a, b, c;
    kv_seq_create(kv, &a, NULL, 0);
    CHECK_INT_EQ(unused(kv), 0);
    fill(kv, a, 10, 1); /* 3 blocks, the last holding 2 of 4 */
    kv_seq_publish(kv, a, toks);
    CHECK_INT_EQ(unused(kv), 2);
    CHECK_INT_EQ(unused(kv), 2); /* the scratch is back to its idle state */
    /* b shares a's two full blocks: nothing more unused */
    kv_seq_create(kv, &b, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, b, toks, 10, 9), 8);
    CHECK_INT_EQ(unused(kv), 2);
    /* c shares a's second block for 3 of its 4 positions: a fills it, so
     * still nothing more (counting per sequence would say 3) */
    int32_t other[10] = {5, 6, 7, 8, 9, 10, 11, 99, 13, 14};
    kv_seq_create(kv, &c, NULL, 0);
    CHECK_INT_EQ(kv_seq_attach_prefix(kv, c, other, 10, 9), 7);
    CHECK_INT_EQ(unused(kv), 2);
    /* room for 2 more: the shared block is copied (c's copy holds 3 of 4)
     * and a new block is taken whole, both empty where c has not written */
    CHECK_INT_EQ(kv_seq_reserve(kv, c, 2, NULL, 0), ST_OK);
    CHECK_INT_EQ(unused(kv), 2 + 1 + 4);
    kv_seq_set_len(kv, c, 9);
    CHECK_INT_EQ(unused(kv), 2 + 3);
    /* a gone: its first two blocks are still b's (full), its last is free */
    kv_seq_free(kv, a);
    CHECK_INT_EQ(unused(kv), 3);
    kv_seq_free(kv, b);
    kv_seq_free(kv, c);
    struct kv_cache_counts n;
    kv_cache_counts(kv, &n);
    CHECK_INT_EQ(n.used, 0);
    CHECK_INT_EQ(n.unused_slots, 0);
    CHECK(kv_cache_check(kv));
    kv_cache_free(kv);
}

int main(void)
{
    RUN(test_attach_shares_full_blocks);
    RUN(test_copy_on_write);
    RUN(test_attach_partial_block);
    RUN(test_lru_recycles_cached_blocks);
    RUN(test_random_ops_no_leak);
    RUN(test_unused_slots);
    return harness_finish();
}
