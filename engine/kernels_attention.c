/*
 * kernels_attention.c - kernel_attention: causal attention of one query head
 * over a sequence's KV cache with an online softmax (kernels.h), scalar and
 * AVX2 paths picked at run time; and kernel_attention_tile: a tile of query
 * rows sharing one KV head, each K/V position read once for the tile
 * (AVX-512; row by row through kernel_attention elsewhere).
 *
 * The tile kernel is flash attention on a CPU: steps of 16 positions at
 * absolute multiples of 16, scores with one lane per query row (q stored
 * transposed, each K element broadcast once to every row), a per-row online
 * softmax with a vector exp, then the weighted V added to each row's output
 * four rows at a time.  Since steps do not depend on the tile and every lane
 * does the same operations, a row's result is the same bit for bit whatever
 * tile it is computed in.  Scratch is one thread-local struct tile_state.
 */
#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "kernels_x86.h"

/* ---------------------------------------------------------------------- */
/* attention                                                               */

static const float *kv_pos(const float *base, const struct kernel_kv_view *kv, int p)
{
    int b = kv->blocks[p / kv->block_tokens];
    return base + (size_t)b * kv->block_stride + (size_t)(p % kv->block_tokens) * kv->token_stride;
}

/* positions handled per softmax rescale */
#define ATT_CHUNK 16

static void attention_scalar(const float *q, const struct kernel_kv_view *kv, size_t head_off,
                             int hd, int ctx_start, int n_ctx, float scale, float *out)
{
    float m = -INFINITY, l = 0.0f, s[ATT_CHUNK];
    for (int i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (int p0 = ctx_start; p0 < n_ctx; p0 += ATT_CHUNK) {
        int np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
        float mc = m;
        for (int j = 0; j < np; j++) {
            s[j] = dot_f32_ref(q, kv_pos(kv->k, kv, p0 + j) + head_off, (size_t)hd) * scale;
            mc = s[j] > mc ? s[j] : mc;
        }
        float corr = expf(m - mc);
        l *= corr;
        for (int i = 0; i < hd; i++)
            out[i] *= corr;
        for (int j = 0; j < np; j++) {
            float e = expf(s[j] - mc);
            const float *v = kv_pos(kv->v, kv, p0 + j) + head_off;
            l += e;
            for (int i = 0; i < hd; i++)
                out[i] += e * v[i];
        }
        m = mc;
    }
    float inv = 1.0f / l;
    for (int i = 0; i < hd; i++)
        out[i] *= inv;
}

#ifdef KERNELS_X86
#define ATT_MAX_VEC 32 /* head_dim up to 256 */

TGT_AVX2 static void attention_avx2(const float *q, const struct kernel_kv_view *kv,
                                    size_t head_off, int hd, int ctx_start, int n_ctx, float scale,
                                    float *out)
{
    int nv = hd / 8;
    __m256 o[ATT_MAX_VEC], qv[ATT_MAX_VEC];
    for (int i = 0; i < nv; i++) {
        o[i] = _mm256_setzero_ps();
        qv[i] = _mm256_mul_ps(_mm256_loadu_ps(q + 8 * i), _mm256_set1_ps(scale));
    }
    float m = -INFINITY, l = 0.0f, s[ATT_CHUNK];
    for (int p0 = ctx_start; p0 < n_ctx; p0 += ATT_CHUNK) {
        int np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
        float mc = m;
        int j = 0;
        /* four positions at once: independent FMA chains */
        for (; j + 4 <= np; j += 4) {
            const float *k0 = kv_pos(kv->k, kv, p0 + j) + head_off;
            const float *k1 = kv_pos(kv->k, kv, p0 + j + 1) + head_off;
            const float *k2 = kv_pos(kv->k, kv, p0 + j + 2) + head_off;
            const float *k3 = kv_pos(kv->k, kv, p0 + j + 3) + head_off;
            __m256 a0 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k0));
            __m256 a1 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k1));
            __m256 a2 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k2));
            __m256 a3 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k3));
            for (int i = 1; i < nv; i++) {
                a0 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k0 + 8 * i), a0);
                a1 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k1 + 8 * i), a1);
                a2 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k2 + 8 * i), a2);
                a3 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k3 + 8 * i), a3);
            }
            s[j] = hsum8(a0);
            s[j + 1] = hsum8(a1);
            s[j + 2] = hsum8(a2);
            s[j + 3] = hsum8(a3);
        }
        for (; j < np; j++) {
            const float *k = kv_pos(kv->k, kv, p0 + j) + head_off;
            __m256 a = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k));
            for (int i = 1; i < nv; i++)
                a = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k + 8 * i), a);
            s[j] = hsum8(a);
        }
        for (j = 0; j < np; j++)
            mc = s[j] > mc ? s[j] : mc;
        if (mc > m) {
            __m256 corr = _mm256_set1_ps(expf(m - mc));
            l *= expf(m - mc);
            for (int i = 0; i < nv; i++)
                o[i] = _mm256_mul_ps(o[i], corr);
            m = mc;
        }
        for (j = 0; j < np; j++) {
            float e = expf(s[j] - m);
            const float *v = kv_pos(kv->v, kv, p0 + j) + head_off;
            __m256 ev = _mm256_set1_ps(e);
            l += e;
            for (int i = 0; i < nv; i++)
                o[i] = _mm256_fmadd_ps(ev, _mm256_loadu_ps(v + 8 * i), o[i]);
        }
    }
    __m256 inv = _mm256_set1_ps(1.0f / l);
    for (int i = 0; i < nv; i++)
        _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(o[i], inv));
}
#endif

void kernel_attention(const float *q, const struct kernel_kv_view *kv, size_t head_off,
                      int head_dim, int ctx_start, int n_ctx, float scale, float *out)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX2 && head_dim % 8 == 0 && head_dim <= 8 * ATT_MAX_VEC) {
        attention_avx2(q, kv, head_off, head_dim, ctx_start, n_ctx, scale, out);
        return;
    }
#endif
    attention_scalar(q, kv, head_off, head_dim, ctx_start, n_ctx, scale, out);
}

/* ---------------------------------------------------------------------- */
/* tiles of queries sharing one KV head                                    */

static int row_start(const struct kernel_attn_tile *t, int pos)
{
    return t->window > 0 && pos + 1 > t->window ? pos + 1 - t->window : 0;
}

/* Row by row through kernel_attention: the path without AVX-512. */
static void tile_by_rows(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                         size_t head_off, int hd, float scale)
{
    for (int i = 0; i < t->n_tokens; i++)
        for (int g = 0; g < t->n_group; g++) {
            size_t off = (size_t)i * t->stride + (size_t)g * (size_t)hd;
            int pos = t->pos0 + i;
            kernel_attention(t->q + off, kv, head_off, hd, row_start(t, pos), pos + 1, scale,
                             t->out + off);
        }
}

#ifdef KERNELS_X86
#define TILE_HD_MAX 256 /* head_dim the tile kernel takes */
#define TILE_POS 16     /* positions per softmax step, at multiples of 16 */

/* e^x for 16 lanes: 2^n e^r with |r| <= ln2/2 and a degree-6 polynomial
 * (about 2 ulp); x below -150 gives exactly 0, so masked -inf scores
 * vanish. */
TGT_AVX512 INLINE __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-150.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* The tile's state: queries transposed (dimension-major, one lane per row)
 * so one broadcast K element meets 16 rows, and each row's running output. */
struct tile_state {
    _Alignas(64) float qt[TILE_HD_MAX][KERNEL_ATTN_TILE_ROWS]; /* scaled q, (hd, rows) */
    _Alignas(64) float o[KERNEL_ATTN_TILE_ROWS][TILE_HD_MAX];  /* unnormalized output */
    _Alignas(64) float e[TILE_POS][KERNEL_ATTN_TILE_ROWS];     /* scores, then weights */
    _Alignas(64) float corr[KERNEL_ATTN_TILE_ROWS];
    const float *kp[TILE_POS], *vp[TILE_POS]; /* this step's positions (the last repeated) */
};

/* Points kp/vp at K and V of positions p0 .. p0+np-1, repeating the last
 * up to TILE_POS: one division for the whole step. */
static void kv_step(struct tile_state *st, const struct kernel_kv_view *kv, size_t head_off, int p0,
                    int np)
{
    int blk = p0 / kv->block_tokens, in = p0 % kv->block_tokens;
    for (int j = 0; j < TILE_POS; j++) {
        if (j < np) {
            size_t off = (size_t)kv->blocks[blk] * kv->block_stride +
                         (size_t)in * kv->token_stride + head_off;
            st->kp[j] = kv->k + off;
            st->vp[j] = kv->v + off;
            if (++in == kv->block_tokens) {
                in = 0;
                blk++;
            }
        } else {
            st->kp[j] = st->kp[np - 1];
            st->vp[j] = st->vp[np - 1];
        }
    }
}

/* Scores of positions p0 .. p0+np-1 for every row (nvr vectors of 16 rows):
 * e[j][r] = q_r . K[p0+j], or -inf where row r does not see the position.
 * Returns each row's largest score (per lane). */
TGT_AVX512 INLINE void tile_scores(struct tile_state *st, int hd, int p0, int np,
                                   const __m512i *rpos, const __m512i *rstart, __m512 *mc,
                                   const int nvr)
{
    for (int j = 0; j < np; j += 4) {
        const float *kp[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            kp[u] = st->kp[j + u];
        __m512 acc[4][2];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
#pragma GCC unroll 4
            for (int v = 0; v < nvr; v++)
                acc[u][v] = _mm512_setzero_ps();
        for (int d = 0; d < hd; d++) {
            __m512 qv[2];
#pragma GCC unroll 4
            for (int v = 0; v < nvr; v++)
                qv[v] = _mm512_load_ps(&st->qt[d][16 * v]);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                __m512 kb = _mm512_set1_ps(kp[u][d]);
#pragma GCC unroll 4
                for (int v = 0; v < nvr; v++)
                    acc[u][v] = _mm512_fmadd_ps(qv[v], kb, acc[u][v]);
            }
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            __m512i p = _mm512_set1_epi32(p0 + j + u);
#pragma GCC unroll 4
            for (int v = 0; v < nvr; v++) {
                if (j + u >= np)
                    break;
                __mmask16 seen =
                    _mm512_cmple_epi32_mask(p, rpos[v]) & _mm512_cmpge_epi32_mask(p, rstart[v]);
                __m512 sc = _mm512_mask_blend_ps(seen, _mm512_set1_ps(-INFINITY), acc[u][v]);
                _mm512_store_ps(&st->e[j + u][16 * v], sc);
                mc[v] = _mm512_max_ps(mc[v], sc);
            }
        }
    }
}

/* o[r] += sum_j e[j][r] V[p0+j] for rows r0..r0+nr-1 (nr is 1 or 4), head
 * dims d0..d0+16*nv-1 (the last vector masked by tail). */
TGT_AVX512 INLINE void tile_pv(struct tile_state *st, int np, int r0, int d0, __mmask16 tail,
                               const int nr, const int nv)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < nv; i++)
            acc[r][i] = _mm512_load_ps(&st->o[r0 + r][d0 + 16 * i]);
    for (int j = 0; j < np; j++) {
        const float *vp = st->vp[j] + d0;
        __m512 vv[4];
#pragma GCC unroll 4
        for (int i = 0; i < nv; i++)
            vv[i] = _mm512_maskz_loadu_ps(i == nv - 1 ? tail : (__mmask16)0xffff, vp + 16 * i);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m512 w = _mm512_set1_ps(st->e[j][r0 + r]);
#pragma GCC unroll 4
            for (int i = 0; i < nv; i++)
                acc[r][i] = _mm512_fmadd_ps(w, vv[i], acc[r][i]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < nv; i++)
            _mm512_store_ps(&st->o[r0 + r][d0 + 16 * i], acc[r][i]);
}

/* tile_pv over all hd dims of rows r0..r0+nr-1 (nr 1 or 4), 64 at a time,
 * with nr and the vector count known at compile time. */
TGT_AVX512 static void tile_pv_rows(struct tile_state *st, int np, int r0, int hd, int nr)
{
    for (int d0 = 0; d0 < hd; d0 += 64) {
        int left = hd - d0, nv = left >= 64 ? 4 : (left + 15) / 16;
        __mmask16 tail = (__mmask16)(left >= 16 * nv ? 0xffff : (1u << (left % 16)) - 1);
        if (nr == 1)
            switch (nv) {
            case 4: tile_pv(st, np, r0, d0, tail, 1, 4); break;
            case 3: tile_pv(st, np, r0, d0, tail, 1, 3); break;
            case 2: tile_pv(st, np, r0, d0, tail, 1, 2); break;
            default: tile_pv(st, np, r0, d0, tail, 1, 1); break;
            }
        else
            switch (nv) {
            case 4: tile_pv(st, np, r0, d0, tail, 4, 4); break;
            case 3: tile_pv(st, np, r0, d0, tail, 4, 3); break;
            case 2: tile_pv(st, np, r0, d0, tail, 4, 2); break;
            default: tile_pv(st, np, r0, d0, tail, 4, 1); break;
            }
    }
}

/* Transposes the 16 x 16 floats in r (row i = r[i]) in place. */
TGT_AVX512 INLINE void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 1]);
        __m512d c = _mm512_castps_pd(t[4 * k + 2]), d = _mm512_castps_pd(t[4 * k + 3]);
        u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[4k + c] holds column c + 4L of rows 4k..4k+3 in 128-bit lane L */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 x1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 y0 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
        __m512 y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
        r[c] = _mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(2, 0, 2, 0));
        r[c + 8] = _mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(3, 1, 3, 1));
        r[c + 4] = _mm512_shuffle_f32x4(y0, y1, _MM_SHUFFLE(2, 0, 2, 0));
        r[c + 12] = _mm512_shuffle_f32x4(y0, y1, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/*
 * One row alone (a decode step without GQA): the scores of 16 positions in
 * the 16 lanes, from K transposed 16 x 16 in registers, instead of one lane
 * of 16 used per position.  Every score, weight, sum and rescale is the same
 * operation in the same order as for a lane of tile_scores and the softmax
 * step of tile_avx512, so the row's result is bit for bit the same as
 * inside a larger tile.  Leaves the weights in e[j][0].
 */
TGT_AVX512 static void tile_one_row(struct tile_state *st, int hd, int p0, int np, int pos,
                                    int start, float *m, float *l)
{
    __m512 acc = _mm512_setzero_ps();
    for (int d0 = 0; d0 < hd; d0 += 16) {
        int nd = hd - d0 < 16 ? hd - d0 : 16;
        __mmask16 dm = (__mmask16)(nd == 16 ? 0xffff : (1u << nd) - 1);
        __m512 r[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            r[j] = _mm512_maskz_loadu_ps(dm, st->kp[j] + d0);
        transpose16(r);
        /* past head_dim both q (zeroed) and K (masked) are 0: acc + 0 */
#pragma GCC unroll 16
        for (int d = 0; d < 16; d++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(st->qt[d0 + d][0]), r[d], acc);
    }
    __m512i p =
        _mm512_add_epi32(_mm512_set1_epi32(p0),
                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __mmask16 seen = _mm512_cmple_epi32_mask(p, _mm512_set1_epi32(pos)) &
                     _mm512_cmpge_epi32_mask(p, _mm512_set1_epi32(start)) &
                     (__mmask16)((1u << np) - 1);
    __m512 sc = _mm512_mask_blend_ps(seen, _mm512_set1_ps(-INFINITY), acc);
    float mc = _mm512_reduce_max_ps(sc);
    mc = mc > *m ? mc : *m;
    float safe = mc == -INFINITY ? 0.0f : mc;
    float corr = _mm512_cvtss_f32(exp16(_mm512_set1_ps(*m - safe)));
    _Alignas(64) float w[16];
    _mm512_store_ps(w, exp16(_mm512_sub_ps(sc, _mm512_set1_ps(safe))));
    *l *= corr;
    for (int j = 0; j < np; j++) {
        *l += w[j];
        st->e[j][0] = w[j];
    }
    if (mc != *m && corr != 1.0f)
        for (int d = 0; d < hd; d++)
            st->o[0][d] *= corr;
    *m = mc;
}

/* Rows row0 .. row0+nrows-1 (nrows <= KERNEL_ATTN_TILE_ROWS) of the tile. */
TGT_AVX512 static void tile_avx512(const struct kernel_attn_tile *t,
                                   const struct kernel_kv_view *kv, size_t head_off, int hd,
                                   float scale, int row0, int nrows, struct tile_state *st)
{
    const int nvr = nrows > 16 ? 2 : 1, nr4 = (nrows + 3) & ~3;
    _Alignas(64) int pos[KERNEL_ATTN_TILE_ROWS], start[KERNEL_ATTN_TILE_ROWS];
    int lo = INT32_MAX, hi = 0;
    /* a one-row tile reads only its own q column and output row */
    const int q_rows = nrows == 1 ? 1 : 16 * nvr, o_rows = nrows == 1 ? 1 : nr4;
    for (int r = 0; r < 16 * nvr; r++) {
        if (r < nrows) {
            int i = (row0 + r) / t->n_group, g = (row0 + r) % t->n_group;
            const float *q = t->q + (size_t)i * t->stride + (size_t)g * (size_t)hd;
            pos[r] = t->pos0 + i;
            start[r] = row_start(t, pos[r]);
            lo = start[r] < lo ? start[r] : lo;
            hi = pos[r] + 1 > hi ? pos[r] + 1 : hi;
            for (int d = 0; d < hd; d++)
                st->qt[d][r] = q[d] * scale;
        } else {
            pos[r] = -1; /* padding: sees nothing */
            start[r] = 0;
            if (r < q_rows)
                for (int d = 0; d < hd; d++)
                    st->qt[d][r] = 0.0f;
        }
        if (r < q_rows)
            for (int d = hd; d < TILE_HD_MAX && d % 16; d++)
                st->qt[d][r] = 0.0f;
    }
    for (int r = 0; r < o_rows; r++)
        for (int d = 0; d < hd; d++)
            st->o[r][d] = 0.0f;
    __m512i rpos[2], rstart[2];
    __m512 m[2], l[2];
    float m1 = -INFINITY, l1 = 0.0f; /* the row of a one-row tile */
    for (int v = 0; v < nvr; v++) {
        rpos[v] = _mm512_load_si512(pos + 16 * v);
        rstart[v] = _mm512_load_si512(start + 16 * v);
        m[v] = _mm512_set1_ps(-INFINITY);
        l[v] = _mm512_setzero_ps();
    }
    for (int p0 = lo - lo % TILE_POS; p0 < hi; p0 += TILE_POS) {
        int np = hi - p0 < TILE_POS ? hi - p0 : TILE_POS;
        kv_step(st, kv, head_off, p0, np);
        if (nrows == 1) {
            tile_one_row(st, hd, p0, np, pos[0], start[0], &m1, &l1);
            tile_pv_rows(st, np, 0, hd, 1);
            continue;
        }
        __m512 mc[2] = {m[0], m[nvr - 1]};
        if (nvr == 2)
            tile_scores(st, hd, p0, np, rpos, rstart, mc, 2);
        else
            tile_scores(st, hd, p0, np, rpos, rstart, mc, 1);
        bool rescale = false;
        for (int v = 0; v < nvr; v++) {
            /* rows that have seen nothing yet keep -inf; subtract 0 for them */
            __m512 safe = _mm512_mask_blend_ps(
                _mm512_cmp_ps_mask(mc[v], _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), mc[v],
                _mm512_setzero_ps());
            __m512 corr = exp16(_mm512_sub_ps(m[v], safe));
            rescale |= _mm512_cmp_ps_mask(mc[v], m[v], _CMP_NEQ_UQ) != 0;
            _mm512_store_ps(st->corr + 16 * v, corr);
            l[v] = _mm512_mul_ps(l[v], corr);
            for (int j = 0; j < np; j++) {
                __m512 w = exp16(_mm512_sub_ps(_mm512_load_ps(&st->e[j][16 * v]), safe));
                l[v] = _mm512_add_ps(l[v], w);
                _mm512_store_ps(&st->e[j][16 * v], w);
            }
            m[v] = mc[v];
        }
        if (rescale)
            for (int r = 0; r < nr4; r++)
                if (st->corr[r] != 1.0f)
                    for (int d = 0; d < hd; d++)
                        st->o[r][d] *= st->corr[r];
        for (int r0 = 0; r0 < nr4; r0 += 4)
            tile_pv_rows(st, np, r0, hd, 4);
    }
    _Alignas(64) float lsum[KERNEL_ATTN_TILE_ROWS];
    for (int v = 0; v < nvr; v++)
        _mm512_store_ps(lsum + 16 * v, l[v]);
    if (nrows == 1)
        lsum[0] = l1;
    for (int r = 0; r < nrows; r++) {
        int i = (row0 + r) / t->n_group, g = (row0 + r) % t->n_group;
        float *out = t->out + (size_t)i * t->stride + (size_t)g * (size_t)hd, inv = 1.0f / lsum[r];
        for (int d = 0; d < hd; d++)
            out[d] = st->o[r][d] * inv;
    }
}
#endif

void kernel_attention_tile(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                           size_t head_off, int head_dim, float scale)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512 && head_dim <= TILE_HD_MAX) {
        static _Thread_local struct tile_state st;
        int rows = t->n_tokens * t->n_group;
        for (int r0 = 0; r0 < rows; r0 += KERNEL_ATTN_TILE_ROWS)
            tile_avx512(t, kv, head_off, head_dim, scale, r0,
                        rows - r0 < KERNEL_ATTN_TILE_ROWS ? rows - r0 : KERNEL_ATTN_TILE_ROWS, &st);
        return;
    }
#endif
    tile_by_rows(t, kv, head_off, head_dim, scale);
}
