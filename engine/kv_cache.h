/*
 * kv_cache.h - the paged key/value cache of one model.
 *
 * Storage is a fixed pool of blocks allocated once at creation; a block holds
 * the K and V vectors of `block_tokens` consecutive positions of one sequence
 * for every layer, as F32 or F16 (half the memory, and half the bytes
 * attention reads per step, for K/V rounded to 11 significant bits).  Bookkeeping is separate from
 * storage: each sequence (an integer id in [0, max_seqs)) has a block table listing the pool blocks
 * that hold its positions in order, and every block carries a reference count so several sequences
 * can share blocks (kv_seq_fork; prefix caching builds on this).  A shared block is copied before
 * it is written (copy-on-write in kv_seq_reserve).
 *
 * Prefix cache: a full block can be published (kv_seq_publish) under a
 * chained hash of the token ids it holds and every block before it, so a
 * later sequence starting with the same tokens attaches those blocks
 * (kv_seq_attach_prefix) instead of computing them again, down to the
 * token: the first block where they differ is attached too, for its
 * matching leading positions.  A published
 * block whose last reference goes stays cached: it joins an LRU list and is
 * only recycled (least recently freed first) when no never-cached free block
 * is left.  Blocks are therefore in exactly one of three states: used
 * (refs > 0), cached (refs == 0, published) or clean (refs == 0); a cached
 * block is as allocatable as a clean one.  Writing into a published block
 * always copies it first, so cached contents never change.
 *
 * The forward pass (model.h) writes K/V of new positions and advances the
 * sequence length; callers reserve room first or let model_forward reserve.
 *
 * Thread-safety: none.  One kv_cache belongs to one thread at a time (the
 * model's scheduler thread).  The cache owns its storage and tables;
 * kv_cache_free() releases everything.
 */
#ifndef ENGINE_KV_CACHE_H
#define ENGINE_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

struct model_config;
struct kv_cache;

/* Default tokens per block. */
#define KV_BLOCK_TOKENS_DEFAULT 16

/* Bytes one block takes for this model (K and V, all layers, elements of
 * dt: DTYPE_F32 or DTYPE_F16). */
size_t kv_cache_block_bytes(const struct model_config *cfg, int block_tokens, enum dtype dt);

/*
 * How many blocks fit in `budget_bytes` (storage only; the per-sequence tables
 * are small and not counted).  Returns 0 when not even one fits.
 */
size_t kv_cache_blocks_for_budget(const struct model_config *cfg, int block_tokens, enum dtype dt,
                                  size_t budget_bytes);

/*
 * Creates a cache of n_blocks blocks of block_tokens positions (0 picks
 * KV_BLOCK_TOKENS_DEFAULT) storing K/V as dt (DTYPE_F32 or DTYPE_F16) for
 * up to max_seqs live sequences.  One sequence
 * may hold at most cfg->max_position_embeddings positions.  Returns ST_OK and
 * *out, ST_ERR_INVALID for zero sizes or another dt, ST_ERR_NOMEM when the pool cannot be
 * allocated.  cfg is copied; it need not outlive the cache.
 */
enum status kv_cache_create(const struct model_config *cfg, size_t n_blocks, int block_tokens,
                            enum dtype dt, int max_seqs, struct kv_cache **out, char *err,
                            size_t errlen);

/* The element type of the stored K/V. */
enum dtype kv_cache_dtype(const struct kv_cache *kv);

/* Frees the cache and every sequence in it.  kv_cache_free(NULL) is a no-op. */
void kv_cache_free(struct kv_cache *kv);

/* Tokens per block. */
int kv_cache_block_tokens(const struct kv_cache *kv);

/* Blocks in the pool, and blocks referenced by no sequence (clean +
 * cached: all of them can be allocated). */
size_t kv_cache_n_blocks(const struct kv_cache *kv);
size_t kv_cache_free_blocks(const struct kv_cache *kv);

/* Allocator counters; used + cached + clean == n_blocks always. */
struct kv_cache_counts {
    size_t used;    /* referenced by at least one sequence */
    size_t cached;  /* unreferenced but published: reusable by a prefix match */
    size_t clean;   /* unreferenced, holding nothing worth keeping */
    size_t shared;  /* used blocks with more than one reference */
    size_t evicted; /* cached blocks recycled since creation */
    /* Slots (positions) of used blocks that no live sequence referencing the
     * block has written: a block shared by several sequences counts once,
     * filled as far as the furthest of them; reserved-ahead blocks count
     * whole.  O(block-table entries), through scratch inside the cache: like
     * every call here, from the cache's one thread only. */
    size_t unused_slots;
};
void kv_cache_counts(const struct kv_cache *kv, struct kv_cache_counts *out);

/*
 * Walks every table and reference count and returns true when they agree
 * (each block's refs equals the number of block-table entries naming it,
 * the free stack and LRU hold exactly the unreferenced blocks, the hash
 * table exactly the published ones).  O(blocks); for tests.
 */
bool kv_cache_check(const struct kv_cache *kv);

/* Bytes of the whole storage pool, and of the blocks in use. */
size_t kv_cache_bytes(const struct kv_cache *kv);
size_t kv_cache_bytes_used(const struct kv_cache *kv);

/* Maximum number of live sequences. */
int kv_cache_max_seqs(const struct kv_cache *kv);

/* True when kv was created for a config with the same layer count, KV heads,
 * head_dim and max_position_embeddings as cfg (model_forward checks this). */
bool kv_cache_fits(const struct kv_cache *kv, const struct model_config *cfg);

/*
 * Storage of one block for one layer, contiguous elements of
 * kv_cache_dtype(): K feature-major,
 * (n_kv_heads * head_dim, block_tokens), and V head- then position-major,
 * (n_kv_heads, block_tokens, head_dim) (struct kernel_kv_view in kernels.h
 * says why).  No bounds checks (callers take block ids from a
 * block table).
 */
void *kv_cache_block_k(struct kv_cache *kv, int layer, int block);
void *kv_cache_block_v(struct kv_cache *kv, int layer, int block);

/* --- sequences -------------------------------------------------------- */

/*
 * Starts an empty sequence and writes its id to *seq.  Returns ST_OK, or
 * ST_ERR_BUSY when max_seqs sequences are live.
 */
enum status kv_seq_create(struct kv_cache *kv, int *seq, char *err, size_t errlen);

/*
 * Makes room for `n_more` positions after the sequence's current length:
 * allocates blocks as needed and copies a shared last block before it gets
 * written.  All or nothing: on failure the sequence is unchanged.  Returns
 * ST_OK, ST_ERR_NOMEM when the pool has too few free blocks, ST_ERR_RANGE past
 * max_position_embeddings, ST_ERR_INVALID for a dead sequence id.
 */
enum status kv_seq_reserve(struct kv_cache *kv, int seq, int n_more, char *err, size_t errlen);

/*
 * Creates a new sequence sharing all of src's blocks (reference counts go
 * up) with the same length; its id goes to *dst.  Returns ST_OK, ST_ERR_BUSY
 * when no sequence slot is free, ST_ERR_INVALID for a dead src.
 */
enum status kv_seq_fork(struct kv_cache *kv, int src, int *dst, char *err, size_t errlen);

/*
 * Shortens the sequence to its first `len` positions (len <= kv_seq_len) and
 * drops the blocks past them, so a request can roll back or recompute a
 * suffix.  Returns ST_OK or ST_ERR_INVALID for a dead id or a bad len.
 */
enum status kv_seq_truncate(struct kv_cache *kv, int seq, int len, char *err, size_t errlen);

/*
 * Prefix cache lookup for an empty sequence: attaches the longest run of
 * published blocks whose chained hashes and token ids match tokens[0..n),
 * block by block from the start (reference counts go up; cached blocks
 * leave the LRU), then the published block after that same prefix whose
 * leading ids match the most of the next tokens (where the prompt leaves
 * the cached chain mid-block, e.g. a shared system prompt followed by a
 * different user message), and sets the length to min(matched, max_len)
 * positions.
 * A block attached past max_len stays in the table, shared, and is copied
 * on its first write.  Returns the number of positions now stored (0 when
 * nothing matched or seq is not an empty live sequence).
 */
int kv_seq_attach_prefix(struct kv_cache *kv, int seq, const int32_t *tokens, int n, int max_len);

/*
 * Publishes every full block of the sequence not yet published: tokens
 * holds the ids of positions 0 .. kv_seq_len-1 (at least).  A block whose
 * hash is already published by another block stays private (the first
 * copy serves later lookups).  Cheap when nothing new is full.
 */
void kv_seq_publish(struct kv_cache *kv, int seq, const int32_t *tokens);

/* Drops the sequence and its references to blocks; no-op for a dead id.
 * Published blocks go to the LRU, the last block first, so a chain's
 * leading blocks are the last to be recycled. */
void kv_seq_free(struct kv_cache *kv, int seq);

/* True when seq is a live sequence id. */
int kv_seq_alive(const struct kv_cache *kv, int seq);

/* Positions stored so far (0 for a dead id). */
int kv_seq_len(const struct kv_cache *kv, int seq);

/* Positions the reserved blocks can hold (n_blocks * block_tokens). */
int kv_seq_capacity(const struct kv_cache *kv, int seq);

/* The block table: *n gets the number of blocks; the array is owned by the
 * cache and valid until the next call that changes this sequence. */
const int *kv_seq_blocks(const struct kv_cache *kv, int seq, int *n);

/*
 * Sets the stored length after a forward pass wrote positions up to len-1.
 * len must not exceed kv_seq_capacity(); only the forward pass calls this.
 */
void kv_seq_set_len(struct kv_cache *kv, int seq, int len);

/* Reference count of a block (0 = free). */
int kv_cache_block_refs(const struct kv_cache *kv, int block);

#endif
