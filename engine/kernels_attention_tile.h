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

/* kernel_attention_tile with AVX2 (kernels_attention_avx2.c), for head_dim a
 * multiple of 8 up to TILE_HD_MAX: the same bits as the AVX-512 kernel. */
void kernel_attention_tile_avx2(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                                size_t head_off, int head_dim, float scale);

#endif
