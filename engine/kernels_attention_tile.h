/*
 * kernels_attention_tile.h - what the tile attention kernels share
 * (kernels_attention.c's AVX-512 one, kernels_attention_avx2.c's): the step
 * of TILE_POS positions both walk the KV cache by, and the position range
 * a query row sees.  Internal to the engine's kernels.
 *
 * Both kernels compute a row the same way, operation for operation (a
 * score is one FMA chain over the features in order, a step's softmax the
 * same exp and the same pairwise sum, the weighted V one FMA per element in
 * position order), so a row's result is the same bit for bit whichever of
 * them computes it and in whatever tile.
 */
#ifndef ENGINE_KERNELS_ATTENTION_TILE_H
#define ENGINE_KERNELS_ATTENTION_TILE_H

#include <stdint.h>

#include "kernels.h"
#include "tensor.h"

#define TILE_HD_MAX 256 /* head_dim the tile kernels take */
#define TILE_POS 16     /* positions per softmax step, at multiples of 16 */

/* The first position a row at pos sees (its sliding window's start). */
static inline int tile_row_start(const struct kernel_attn_tile *t, int pos)
{
    return t->window > 0 && pos + 1 > t->window ? pos + 1 - t->window : 0;
}

/* Row r of the tile (rows run token, then query head of the group): its
 * query (and output) row and its position. */
static inline size_t tile_row_offset(const struct kernel_attn_tile *t, int hd, int r)
{
    return (size_t)(r / t->n_group) * t->stride + (size_t)(r % t->n_group) * (size_t)hd;
}

/*
 * Sets up rows row0 .. row0+nrows-1 of the tile, then padding rows up to
 * n_lanes (rows of vector lanes the kernel computes): each row's position
 * and window start (padding: -1 and 0, it sees nothing), its query scaled
 * and transposed into qt[d][r] (padding rows below q_pad: zeros), and the
 * range [*lo, *hi) of positions the rows see.
 */
static inline void tile_rows_begin(const struct kernel_attn_tile *t, int hd, float scale, int row0,
                                   int nrows, int n_lanes, int q_pad,
                                   float (*qt)[KERNEL_ATTN_TILE_ROWS], int *pos, int *start,
                                   int *lo, int *hi)
{
    *lo = INT32_MAX;
    *hi = 0;
    for (int r = 0; r < n_lanes; r++) {
        if (r < nrows) {
            const float *q = t->q + tile_row_offset(t, hd, row0 + r);
            pos[r] = t->pos0 + (row0 + r) / t->n_group;
            start[r] = tile_row_start(t, pos[r]);
            *lo = start[r] < *lo ? start[r] : *lo;
            *hi = pos[r] + 1 > *hi ? pos[r] + 1 : *hi;
            for (int d = 0; d < hd; d++)
                qt[d][r] = q[d] * scale;
        } else {
            pos[r] = -1;
            start[r] = 0;
            for (int d = 0; r < q_pad && d < hd; d++)
                qt[d][r] = 0.0f;
        }
    }
}

/* Writes rows row0 .. row0+nrows-1 of the tile's output: each row's
 * unnormalized output o[r] divided by its softmax sum lsum[r]. */
static inline void tile_rows_end(const struct kernel_attn_tile *t, int hd, int row0, int nrows,
                                 const float (*o)[TILE_HD_MAX], const float *lsum)
{
    for (int r = 0; r < nrows; r++) {
        float *out = t->out + tile_row_offset(t, hd, row0 + r), inv = 1.0f / lsum[r];
        for (int d = 0; d < hd; d++)
            out[d] = o[r][d] * inv;
    }
}

/* Where element i of base is, F32 or F16. */
static inline const void *kv_at(const void *base, size_t i, bool f16)
{
    return (const char *)base + i * (f16 ? 2 : 4);
}

/* The K and V of one step's positions (the last repeated up to TILE_POS):
 * element d * kstride from kp[j] is feature d of position j's K, element d
 * from vp[j] of its V. */
struct kv_step_ptrs {
    const void *kp[TILE_POS], *vp[TILE_POS];
    size_t kstride;
};

/* Points s->vp (and s->kp when with_k) at V and K of positions p0 ..
 * p0+np-1, repeating the last up to TILE_POS: one division for the whole
 * step, then a strided fill per block the step touches (one block whenever
 * block_tokens is a multiple of 16; a per-position walk cost a one-row
 * decode head 12 % of its time). */
static inline void kv_step(struct kv_step_ptrs *s, const struct kernel_kv_view *kv, size_t head_off,
                           int p0, int np, bool with_k)
{
    int blk = p0 / kv->block_tokens, in = p0 % kv->block_tokens;
    bool f16 = kv->dtype == DTYPE_F16;
    size_t ks = kernel_kv_k_slot(kv), vs = kernel_kv_v_slot(kv);
    s->kstride = (size_t)kv->block_tokens;
    for (int j = 0; j < np; blk++, in = 0) {
        int run = np - j < kv->block_tokens - in ? np - j : kv->block_tokens - in;
        const void *kb = kv_at(kv->k, kernel_kv_k_at(kv, kv->blocks[blk], in, head_off), f16);
        const void *vb = kv_at(kv->v, kernel_kv_v_at(kv, kv->blocks[blk], in, head_off), f16);
        for (int i = 0; i < run; i++, j++) {
            s->vp[j] = kv_at(vb, (size_t)i * vs, f16);
            if (with_k)
                s->kp[j] = kv_at(kb, (size_t)i * ks, f16);
        }
    }
    for (int j = np; j < TILE_POS; j++) {
        s->vp[j] = s->vp[np - 1];
        if (with_k)
            s->kp[j] = s->kp[np - 1];
    }
}

/*
 * K of the ns steps from p0 (16 positions each, the last ending at or past
 * hi) for the few-rows paths, as (hd, 16) each: element d * *ks from kt[s]
 * is feature d of step s's positions.  Straight from the blocks, in the
 * cache's dtype, when block_tokens is a multiple of 16 (steps past hi
 * repeat the last one); otherwise ns is 1 and the step is copied into copy
 * as floats (positions past hi repeat the last one, as in kv_step).
 * Returns whether kt points at F16.
 */
static inline bool tile_steps_k(const struct kernel_kv_view *kv, size_t head_off, int hd, int p0,
                                int hi, int ns, float (*copy)[TILE_POS], const void **kt,
                                size_t *ks)
{
    size_t bt = (size_t)kv->block_tokens;
    bool f16 = kv->dtype == DTYPE_F16;
    if (bt % TILE_POS == 0) {
        for (int s = 0; s < ns; s++)
            kt[s] = p0 + TILE_POS * s < hi
                        ? kv_at(kv->k, kernel_kv_k(kv, p0 + TILE_POS * s, head_off), f16)
                        : kt[s - 1];
        *ks = bt;
        return f16;
    }
    for (int j = 0; j < TILE_POS; j++) {
        size_t k = kernel_kv_k(kv, p0 + j < hi ? p0 + j : hi - 1, head_off);
        for (int d = 0; d < hd; d++)
            copy[d][j] = dtype_load_f32(kv->k, kv->dtype, k + (size_t)d * bt);
    }
    kt[0] = &copy[0][0];
    *ks = TILE_POS;
    return false;
}

/* A decode pass (the few-rows paths) asks for the K and V of the blocks of
 * the pass after the one it computes: a decode step reads each KV head's
 * blocks (16 KB apart in the layer-major cache) in order, which the
 * hardware prefetcher does not follow (a 1B model's decode attention at
 * 1024 positions: 1.3-1.6x faster with this).  The requests are spread out,
 * K over the scores' features (kv_prefetch_step) and V over the weighted
 * sums' positions (64 prefetches at once stalled on the core's miss
 * buffers; V spread over the weighted sums instead of with K took another
 * 7-10 % off the 110M shape's decode steps at long context). */
#define KV_PREFETCH_BLOCKS 4 /* blocks a pass asks for at most */

struct kv_prefetch {
    const char *k[KV_PREFETCH_BLOCKS], *v[KV_PREFETCH_BLOCKS]; /* the blocks' K and V, one head */
    int n_blocks;                                              /* 0: nothing to ask for */
    size_t feature_bytes;                                      /* of one K feature in a block */
    int per_position; /* V lines to ask for per position of the weighted sums */
};

/* The blocks that start within the ns (<= KV_PREFETCH_BLOCKS) steps from p
 * (< hi), one head. */
static inline struct kv_prefetch kv_prefetch_of(const struct kernel_kv_view *kv, size_t head_off,
                                                int hd, int p, int hi, int ns, bool f16)
{
    struct kv_prefetch pf = {.n_blocks = 0};
    for (int s = 0; s < ns && p + TILE_POS * s < hi; s++) {
        int q = p + TILE_POS * s;
        if (q % kv->block_tokens >= TILE_POS)
            continue; /* its block started in an earlier step */
        pf.k[pf.n_blocks] = kv_at(kv->k, kernel_kv_k(kv, q, head_off), f16);
        pf.v[pf.n_blocks++] = kv_at(kv->v, kernel_kv_v(kv, q, head_off), f16);
    }
    pf.feature_bytes = (size_t)kv->block_tokens * (f16 ? 2 : 4);
    int lines = (int)(((size_t)hd * pf.feature_bytes + 63) / 64); /* of a block's V, one head */
    pf.per_position = (lines + TILE_POS - 1) / TILE_POS;
    return pf;
}

/* The scores' share of pf's K for feature d: the feature's own bytes,
 * which are contiguous (K is feature-major), so the requests need no
 * bookkeeping.  A feature that starts inside a line the one before it
 * started (F16 K of 16-token blocks: two features a line) asks for nothing:
 * asking twice cost a one-row decode head about 5 % of its time. */
static inline void kv_prefetch_step(const struct kv_prefetch *pf, int d)
{
    if ((size_t)d * pf->feature_bytes % 64 >= pf->feature_bytes)
        return;
    for (int b = 0; b < pf->n_blocks; b++)
        for (size_t o = 0; o < pf->feature_bytes; o += 64)
            __builtin_prefetch(pf->k[b] + (size_t)d * pf->feature_bytes + o, 0, 3);
}

/* The weighted sums' share of V for position j: pf_per lines from pfv
 * (NULL: none; a request past the block's last line is harmless,
 * prefetches never fault). */
static inline void kv_prefetch_v(const char *pfv, int pf_per, int j)
{
    for (int l = 0; pfv && l < pf_per; l++)
        __builtin_prefetch(pfv + 64 * (size_t)(j * pf_per + l), 0, 3);
}

/* kernel_attention_tile with AVX2 (kernels_attention_avx2.c), for head_dim a
 * multiple of 8 up to TILE_HD_MAX: the same bits as the AVX-512 kernel. */
void kernel_attention_tile_avx2(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                                size_t head_off, int head_dim, float scale);

#endif
