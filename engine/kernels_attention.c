/*
 * kernels_attention.c - kernel_attention: causal attention of one query head
 * over a sequence's KV cache with an online softmax (kernels.h), scalar and
 * AVX2 paths picked at run time; and kernel_attention_tile: a tile of query
 * rows sharing one KV head, each K/V position read once for the tile
 * (AVX-512 here; AVX2 in kernels_attention_avx2.c, which computes the same
 * bits; row by row through kernel_attention elsewhere).
 *
 * The tile kernel is flash attention on a CPU: steps of 16 positions at
 * absolute multiples of 16, a per-row online softmax with a vector exp, then
 * the weighted V added to each row's output four rows at a time.  Scores are
 * computed one of two ways.  Many rows (a prefill tile): one lane per query
 * row, q stored transposed, each K element broadcast once to every row.
 * Few rows (a decode step: one token times the GQA group): one lane per
 * position, a vector of 16 positions of one K feature loaded straight from
 * the feature-major block (kernels.h) and met by each row's broadcast q
 * element.  Either way a score is the same chain of FMAs over the features
 * in order, and every step does the same operations per row, so a row's
 * result is the same bit for bit whatever tile it is computed in (prefill
 * and token-by-token decode agree exactly).  Scratch is one thread-local
 * struct tile_state.
 */
#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "kernels_attention_tile.h"
#include "kernels_x86.h"

/* ---------------------------------------------------------------------- */
/* attention                                                               */

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
            s[j] = kernel_kv_score_ref(q, kv, p0 + j, head_off, hd) * scale;
            mc = s[j] > mc ? s[j] : mc;
        }
        float corr = expf(m - mc);
        l *= corr;
        for (int i = 0; i < hd; i++)
            out[i] *= corr;
        for (int j = 0; j < np; j++) {
            float e = expf(s[j] - mc);
            size_t v = kernel_kv_v(kv, p0 + j, head_off);
            l += e;
            for (int i = 0; i < hd; i++)
                out[i] += e * dtype_load_f32(kv->v, kv->dtype, v + (size_t)i);
        }
        m = mc;
    }
    float inv = 1.0f / l;
    for (int i = 0; i < hd; i++)
        out[i] *= inv;
}

#ifdef KERNELS_X86
#define ATT_MAX_VEC 32 /* head_dim up to 256 */

/* Scores of positions p .. p+n-1, which lie in one block, from the scaled
 * q: eight positions per vector, one FMA per feature (K is feature-major).
 * For 16 positions the features are summed in four phases (d mod 4, hd
 * being a multiple of 8) added pairwise at the end: eight independent FMA
 * chains instead of one hd-long chain per vector, which had bound the
 * loop by the FMA's latency. */
TGT_AVX2 INLINE void scores_avx2(const float *qs, const struct kernel_kv_view *kv, enum dtype dt,
                                 size_t head_off, int hd, int p, int n, float *s)
{
    size_t k = kernel_kv_k(kv, p, head_off), ks = (size_t)kv->block_tokens;
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        /* a[f][h]: features d = f (mod 4), positions j + 8h .. j + 8h + 7 */
        __m256 a[4][2];
#pragma GCC unroll 4
        for (int f = 0; f < 4; f++)
            a[f][0] = a[f][1] = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 4) {
#pragma GCC unroll 4
            for (int f = 0; f < 4; f++) {
                __m256 qd = _mm256_set1_ps(qs[d + f]);
                size_t at = k + (size_t)(d + f) * ks + (size_t)j;
                a[f][0] = _mm256_fmadd_ps(qd, load8(kv->k, dt, at), a[f][0]);
                a[f][1] = _mm256_fmadd_ps(qd, load8(kv->k, dt, at + 8), a[f][1]);
            }
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            _mm256_storeu_ps(s + j + 8 * h, _mm256_add_ps(_mm256_add_ps(a[0][h], a[1][h]),
                                                          _mm256_add_ps(a[2][h], a[3][h])));
    }
    for (; j + 8 <= n; j += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int d = 0; d < hd; d++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(qs[d]),
                                  load8(kv->k, dt, k + (size_t)d * ks + (size_t)j), acc);
        _mm256_storeu_ps(s + j, acc);
    }
    for (; j < n; j++) {
        float acc = 0.0f;
        for (int d = 0; d < hd; d++)
            acc = fmaf(qs[d], dtype_load_f32(kv->k, dt, k + (size_t)d * ks + (size_t)j), acc);
        s[j] = acc;
    }
}

/* The largest of the chunk's np scores. */
static float chunk_max(const float *s, int np)
{
    float mx = s[0];
    for (int j = 1; j < np; j++)
        mx = s[j] > mx ? s[j] : mx;
    return mx;
}

/*
 * o[0 .. ni) += w[j] * V of position p0 + j (its vectors i0 .. i0 + ni), for
 * j < np, in order.  With ni = 8 and dt constants (pv_chunk) the sums stay
 * in registers: 8 independent FMA chains, one per vector.
 */
TGT_AVX2 INLINE void pv_group(__m256 *o, int ni, int i0, const float *w, int np, int p0,
                              const struct kernel_kv_view *kv, enum dtype dt, size_t head_off)
{
    __m256 acc[8] = {0}; /* initialized for the compiler when ni is not a constant */
#pragma GCC unroll 8
    for (int k = 0; k < ni; k++)
        acc[k] = o[k];
    for (int j = 0; j < np; j++) {
        size_t v = kernel_kv_v(kv, p0 + j, head_off) + 8 * (size_t)i0;
        __m256 ev = _mm256_set1_ps(w[j]);
#pragma GCC unroll 8
        for (int k = 0; k < ni; k++)
            acc[k] = _mm256_fmadd_ps(ev, load8(kv->v, dt, v + 8 * (size_t)k), acc[k]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < ni; k++)
        o[k] = acc[k];
}

/* pv_group over all nv vectors of a head, 8 at a time; a rest of fewer
 * (head_dim not a multiple of 64, which no supported model family uses)
 * takes the same function with a variable count. */
TGT_AVX2 INLINE void pv_chunk(__m256 *o, int nv, const float *w, int np, int p0,
                              const struct kernel_kv_view *kv, enum dtype dt, size_t head_off)
{
    int i0 = 0;
    for (; i0 + 8 <= nv; i0 += 8)
        pv_group(o + i0, 8, i0, w, np, p0, kv, dt, head_off);
    if (i0 < nv)
        pv_group(o + i0, nv - i0, i0, w, np, p0, kv, dt, head_off);
}

/* dt is kv->dtype, a constant in each caller (attention_avx2) so that no
 * load asks for it. */
TGT_AVX2 INLINE void attention_avx2_dt(const float *q, const struct kernel_kv_view *kv,
                                       enum dtype dt, size_t head_off, int hd, int ctx_start,
                                       int n_ctx, float scale, float *out)
{
    int nv = hd / 8, bt = kv->block_tokens;
    __m256 o[ATT_MAX_VEC];
    float qs[8 * ATT_MAX_VEC];
    for (int i = 0; i < nv; i++)
        o[i] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++)
        qs[d] = q[d] * scale;
    float m = -INFINITY, l = 0.0f;
    /* zeroed once: a last, partial chunk's unused lanes hold finite values */
    _Alignas(32) float s[ATT_CHUNK] = {0}, w[ATT_CHUNK];
    for (int p0 = ctx_start; p0 < n_ctx; p0 += ATT_CHUNK) {
        int np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
        /* the chunk's positions, a run per block they touch */
        for (int j = 0, run; j < np; j += run) {
            int in = (p0 + j) % bt;
            run = np - j < bt - in ? np - j : bt - in;
            scores_avx2(qs, kv, dt, head_off, hd, p0 + j, run, s + j);
        }
        float mc = chunk_max(s, np);
        if (mc > m) {
            float c = kernel_expf_ref(m - mc);
            __m256 corr = _mm256_set1_ps(c);
            l *= c;
            for (int i = 0; i < nv; i++)
                o[i] = _mm256_mul_ps(o[i], corr);
            m = mc;
        }
        /* the weights, 8 at a time, lanes past np zeroed; their sum as a
         * tree (16 dependent scalar adds had cost more than the exps) */
        __m256 mv = _mm256_set1_ps(m);
        for (int j = 0; j < ATT_CHUNK; j += 8)
            _mm256_store_ps(w + j, exp8(_mm256_sub_ps(_mm256_load_ps(s + j), mv)));
        for (int j = np; j < ATT_CHUNK; j++)
            w[j] = 0.0f;
        l += hsum8(_mm256_add_ps(_mm256_load_ps(w), _mm256_load_ps(w + 8)));
        pv_chunk(o, nv, w, np, p0, kv, dt, head_off);
    }
    __m256 inv = _mm256_set1_ps(1.0f / l);
    for (int i = 0; i < nv; i++)
        _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(o[i], inv));
}

TGT_AVX2 static void attention_avx2(const float *q, const struct kernel_kv_view *kv,
                                    size_t head_off, int hd, int ctx_start, int n_ctx, float scale,
                                    float *out)
{
    if (kv->dtype == DTYPE_F16)
        attention_avx2_dt(q, kv, DTYPE_F16, head_off, hd, ctx_start, n_ctx, scale, out);
    else
        attention_avx2_dt(q, kv, DTYPE_F32, head_off, hd, ctx_start, n_ctx, scale, out);
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

/* Row by row through kernel_attention: the path without AVX-512, and
 * without AVX2 or for head dims the AVX2 tile kernel does not take. */
static void tile_by_rows(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                         size_t head_off, int hd, float scale)
{
    for (int i = 0; i < t->n_tokens; i++)
        for (int g = 0; g < t->n_group; g++) {
            size_t off = (size_t)i * t->stride + (size_t)g * (size_t)hd;
            int pos = t->pos0 + i;
            kernel_attention(t->q + off, kv, head_off, hd, tile_row_start(t, pos), pos + 1, scale,
                             t->out + off);
        }
}

#ifdef KERNELS_X86

/* Rows up to which scores put positions in lanes (the few-rows path). */
#define LANES_ROWS_MAX 8

/* The tile's state: queries transposed (dimension-major, one lane per row)
 * so one broadcast K element meets 16 rows, and each row's running output. */
struct tile_state {
    _Alignas(64) float qt[TILE_HD_MAX][KERNEL_ATTN_TILE_ROWS]; /* scaled q, (hd, rows) */
    _Alignas(64) float o[KERNEL_ATTN_TILE_ROWS][TILE_HD_MAX];  /* unnormalized output */
    _Alignas(64) float e[TILE_POS][KERNEL_ATTN_TILE_ROWS];     /* scores, then weights */
    _Alignas(64) float corr[KERNEL_ATTN_TILE_ROWS];
    _Alignas(64) float sc[LANES_ROWS_MAX][TILE_POS]; /* few-rows scores, a lane per position */
    _Alignas(64) float wl[LANES_ROWS_MAX][TILE_POS]; /* few-rows weights, a row per query row */
    _Alignas(64) float kt[TILE_HD_MAX][TILE_POS];    /* K of a step that spans blocks */
    struct kv_step_ptrs step;                        /* this step's positions */
};

/* The weights tile_pv reads: position j's for row r at w[j * pos + r * row]
 * (the many-rows path's e, rows in lanes; the few-rows path's wl, a row per
 * query row as its softmax leaves them, so it need not transpose them). */
struct pv_weights {
    const float *w;
    size_t pos, row;
};

/* Element i of p, F32 or F16, as a float. */
TGT_AVX512 INLINE float kv_load1(const void *p, size_t i, const bool f16)
{
    return f16 ? _cvtsh_ss(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Elements i .. i+15 of p (those of mask m; 0 elsewhere), F32 or F16. */
TGT_AVX512 INLINE __m512 kv_load16(__mmask16 m, const void *p, size_t i, const bool f16)
{
    if (f16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
    return _mm512_maskz_loadu_ps(m, (const float *)p + i);
}

/* Scores of positions p0 .. p0+np-1 for every row (nvr vectors of 16 rows):
 * e[j][r] = q_r . K[p0+j], or -inf where row r does not see the position.
 * Returns each row's largest score (per lane). */
TGT_AVX512 INLINE void tile_scores(struct tile_state *st, int hd, int p0, int np,
                                   const __m512i *rpos, const __m512i *rstart, __m512 *mc,
                                   const int nvr, const bool f16)
{
    size_t ks = st->step.kstride;
    for (int j = 0; j < np; j += 4) {
        const void *kp[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            kp[u] = st->step.kp[j + u];
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
                __m512 kb = _mm512_set1_ps(kv_load1(kp[u], (size_t)d * ks, f16));
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

/* acc[r * nv + i] += sum_j w(j, r0 + r) V[p0+j][d0 + 16 i ...] for rows
 * r < nr, vectors i < nv (the last masked by tail), one FMA per element in
 * position order, the accumulators wherever the caller keeps them.  pfv,
 * unless NULL: cache lines to ask for, pf_per of them per position (the
 * few-rows path spreads the next pass's V over its weighted sums this way;
 * a request past the block's last line is harmless, prefetches never
 * fault). */
TGT_AVX512 INLINE void pv_sums(const struct tile_state *st, struct pv_weights wt, int np, int r0,
                               int d0, __mmask16 tail, const char *pfv, int pf_per, __m512 *acc,
                               const int nr, const int nv, const bool f16)
{
    for (int j = 0; j < np; j++) {
        kv_prefetch_v(pfv, pf_per, j);
        __m512 vv[8];
#pragma GCC unroll 8
        for (int i = 0; i < nv; i++)
            vv[i] = kv_load16(i == nv - 1 ? tail : (__mmask16)0xffff, st->step.vp[j],
                              (size_t)(d0 + 16 * i), f16);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m512 w = _mm512_set1_ps(wt.w[(size_t)j * wt.pos + (size_t)(r0 + r) * wt.row]);
#pragma GCC unroll 8
            for (int i = 0; i < nv; i++)
                acc[r * nv + i] = _mm512_fmadd_ps(w, vv[i], acc[r * nv + i]);
        }
    }
}

/* pv_sums on st->o: rows r0..r0+nr-1 (nr is 1 or 4), head dims
 * d0..d0+16*nv-1 (nv <= 4). */
TGT_AVX512 INLINE void tile_pv(struct tile_state *st, struct pv_weights wt, int np, int r0, int d0,
                               __mmask16 tail, const char *pfv, int pf_per, const int nr,
                               const int nv, const bool f16)
{
    __m512 acc[16];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < nv; i++)
            acc[r * nv + i] = _mm512_load_ps(&st->o[r0 + r][d0 + 16 * i]);
    pv_sums(st, wt, np, r0, d0, tail, pfv, pf_per, acc, nr, nv, f16);
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < nv; i++)
            _mm512_store_ps(&st->o[r0 + r][d0 + 16 * i], acc[r * nv + i]);
}

/* tile_pv over all hd dims of rows r0..r0+nr-1 (nr 1 or 4), 64 at a time,
 * with nr and the vector count known at compile time; pfv's lines are asked
 * for during the first 64 dims. */
TGT_AVX512 INLINE void tile_pv_rows(struct tile_state *st, struct pv_weights wt, int np, int r0,
                                    int hd, int nr, const char *pfv, int pf_per, const bool f16)
{
    for (int d0 = 0; d0 < hd; d0 += 64, pfv = NULL) {
        int left = hd - d0, nv = left >= 64 ? 4 : (left + 15) / 16;
        __mmask16 tail = (__mmask16)(left >= 16 * nv ? 0xffff : (1u << (left % 16)) - 1);
        if (nr == 1)
            switch (nv) {
            case 4: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 1, 4, f16); break;
            case 3: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 1, 3, f16); break;
            case 2: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 1, 2, f16); break;
            default: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 1, 1, f16); break;
            }
        else
            switch (nv) {
            case 4: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 4, 4, f16); break;
            case 3: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 4, 3, f16); break;
            case 2: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 4, 2, f16); break;
            default: tile_pv(st, wt, np, r0, d0, tail, pfv, pf_per, 4, 1, f16); break;
            }
    }
}

/* Steps of 16 positions whose scores one pass of the few-rows path
 * computes: up to LANES_ROWS_MAX independent FMA chains (rows x steps) to
 * hide the FMA latency (a GQA group of 4 rows takes 2 steps a pass: its
 * decode attention 11 % faster than with 1, past the caches; 8 steps for
 * one row were slower than 4, more steps to repeat past the end).  Steps
 * that span blocks (block_tokens not a multiple of 16) go one at a time
 * through a copy. */
#define LANES_STEPS_MAX 4
_Static_assert(LANES_STEPS_MAX <= KV_PREFETCH_BLOCKS, "a pass asks for its blocks");

static int lanes_steps(int nrows, int block_tokens)
{
    if (block_tokens % TILE_POS)
        return 1;
    int ns = LANES_ROWS_MAX / nrows;
    return ns < LANES_STEPS_MAX ? ns : LANES_STEPS_MAX;
}

/* Scores of ns steps' 16 positions (one per lane) for rows 0..nr-1 into
 * st->sc[s * nr + r]: per row the FMA chain over features that tile_scores
 * runs in the row's lane.  Lanes past the positions hold garbage. */
TGT_AVX512 INLINE void lanes_scores(struct tile_state *st, const void **kt, size_t ks, int hd,
                                    const struct kv_prefetch *pf, const int nr, const int ns,
                                    const bool f16)
{
    __m512 acc[LANES_ROWS_MAX];
#pragma GCC unroll 8
    for (int c = 0; c < nr * ns; c++)
        acc[c] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        kv_prefetch_step(pf, d);
        __m512 k[LANES_STEPS_MAX];
#pragma GCC unroll 4
        for (int s = 0; s < ns; s++)
            k[s] = kv_load16((__mmask16)0xffff, kt[s], (size_t)d * ks, f16);
#pragma GCC unroll 4
        for (int s = 0; s < ns; s++)
#pragma GCC unroll 8
            for (int r = 0; r < nr; r++)
                acc[s * nr + r] =
                    _mm512_fmadd_ps(_mm512_set1_ps(st->qt[d][r]), k[s], acc[s * nr + r]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < nr * ns; c++)
        _mm512_store_ps(st->sc[c], acc[c]);
}

/* o[0..hd) *= c, 16 at a time (GCC left the plain loop scalar; the same
 * products, so the same results). */
TGT_AVX512 INLINE void scale_row(float *o, int hd, float c)
{
    for (int d = 0; d < hd; d += 16) {
        __mmask16 m = hd - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hd - d)) - 1);
        _mm512_mask_storeu_ps(o + d, m,
                              _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + d), _mm512_set1_ps(c)));
    }
}

/*
 * The sum of a step's 16 weights, added pairwise: positions j and j + 8,
 * then those sums j and j + 4, then j and j + 2, then the last two.  The
 * few-rows path holds the weights in lanes (step_sum_lanes), the many-rows
 * path one vector of rows per position (step_sum_rows); both group the
 * additions the same way, so a row's sum is the same bit for bit.  Four
 * dependent additions instead of the sixteen of a running sum, which was a
 * third of a GQA decode head's softmax time.  Positions a row does not see
 * (and past the step's end) weigh exactly 0 (exp16 of -inf).
 */
TGT_AVX512 INLINE float step_sum_lanes(__m512 w)
{
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(w),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1)));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

TGT_AVX512 INLINE __m512 step_sum_rows(const __m512 *w)
{
    __m512 s8[8], s4[4];
    for (int j = 0; j < 8; j++)
        s8[j] = _mm512_add_ps(w[j], w[j + 8]);
    for (int j = 0; j < 4; j++)
        s4[j] = _mm512_add_ps(s8[j], s8[j + 4]);
    return _mm512_add_ps(_mm512_add_ps(s4[0], s4[2]), _mm512_add_ps(s4[1], s4[3]));
}

/*
 * One row's softmax update for one step of 16 positions from its scores sc
 * (lanes = positions; np of them valid, the row sees pos and those from
 * start on): the same operations in the same order as the row's lane in the
 * softmax step of tile_avx512.  Updates the row's running maximum *m and
 * sum *l, leaves the step's weights in w and returns the factor the row's
 * output must be scaled by.
 */
TGT_AVX512 INLINE float row_softmax_step(const float *sc, int p0, int np, int pos, int start,
                                         float *m, float *l, float *w)
{
    __m512i p =
        _mm512_add_epi32(_mm512_set1_epi32(p0),
                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __mmask16 seen = _mm512_cmple_epi32_mask(p, _mm512_set1_epi32(pos)) &
                     _mm512_cmpge_epi32_mask(p, _mm512_set1_epi32(start)) &
                     (__mmask16)((1u << np) - 1);
    __m512 sv = _mm512_mask_blend_ps(seen, _mm512_set1_ps(-INFINITY), _mm512_load_ps(sc));
    float mc = _mm512_reduce_max_ps(sv);
    mc = mc > *m ? mc : *m;
    float safe = mc == -INFINITY ? 0.0f : mc;
    float corr = _mm512_cvtss_f32(exp16(_mm512_set1_ps(*m - safe)));
    __m512 wv = exp16(_mm512_sub_ps(sv, _mm512_set1_ps(safe)));
    _mm512_store_ps(w, wv);
    float lr = *l * corr;
    lr += step_sum_lanes(wv);
    *l = lr;
    *m = mc;
    return corr;
}

/*
 * Each row's softmax update for one step (row_softmax_step on sc[r]).
 * Leaves the weights in wl[r] and rescales the rows' outputs; m and l are the rows' running maxima
 * and sums.
 */
TGT_AVX512 static void lanes_softmax(struct tile_state *st, const float (*sc)[TILE_POS], int hd,
                                     int p0, int np, int nrows, const int *pos, const int *start,
                                     float *m, float *l)
{
    for (int r = 0; r < nrows; r++) {
        float corr = row_softmax_step(sc[r], p0, np, pos[r], start[r], &m[r], &l[r], st->wl[r]);
        if (corr != 1.0f)
            scale_row(st->o[r], hd, corr);
    }
}

/*
 * The few-rows path (at most LANES_ROWS_MAX rows, a decode step) over the
 * steps from p0 up to hi: scores with positions in lanes, several steps per
 * pass, then per step the softmax update and the weighted V.  Each row's
 * sum goes to lsum[r].
 */
/* lanes_scores for the (rows, steps) pairs lanes_steps makes */
TGT_AVX512 INLINE void lanes_scores_any(struct tile_state *st, const void **kt, size_t ks, int hd,
                                        const struct kv_prefetch *pf, int nrows, int ns,
                                        const bool f16)
{
    switch (nrows * 8 + ns) {
    case 1 * 8 + 4: lanes_scores(st, kt, ks, hd, pf, 1, 4, f16); break;
    case 1 * 8 + 3: lanes_scores(st, kt, ks, hd, pf, 1, 3, f16); break;
    case 1 * 8 + 2: lanes_scores(st, kt, ks, hd, pf, 1, 2, f16); break;
    case 1 * 8 + 1: lanes_scores(st, kt, ks, hd, pf, 1, 1, f16); break;
    case 2 * 8 + 4: lanes_scores(st, kt, ks, hd, pf, 2, 4, f16); break;
    case 2 * 8 + 3: lanes_scores(st, kt, ks, hd, pf, 2, 3, f16); break;
    case 2 * 8 + 2: lanes_scores(st, kt, ks, hd, pf, 2, 2, f16); break;
    case 2 * 8 + 1: lanes_scores(st, kt, ks, hd, pf, 2, 1, f16); break;
    case 3 * 8 + 2: lanes_scores(st, kt, ks, hd, pf, 3, 2, f16); break;
    case 3 * 8 + 1: lanes_scores(st, kt, ks, hd, pf, 3, 1, f16); break;
    case 4 * 8 + 2: lanes_scores(st, kt, ks, hd, pf, 4, 2, f16); break;
    case 4 * 8 + 1: lanes_scores(st, kt, ks, hd, pf, 4, 1, f16); break;
    case 5 * 8 + 1: lanes_scores(st, kt, ks, hd, pf, 5, 1, f16); break;
    case 6 * 8 + 1: lanes_scores(st, kt, ks, hd, pf, 6, 1, f16); break;
    case 7 * 8 + 1: lanes_scores(st, kt, ks, hd, pf, 7, 1, f16); break;
    default: lanes_scores(st, kt, ks, hd, pf, 8, 1, f16); break;
    }
}

/*
 * One row's step in registers (tile_lanes with one_nv): row_softmax_step,
 * then pv_sums into the output's one_nv vectors kept in o instead of st->o.  The same operations in
 * the same order, so the same results; what changes is the dependency chain. Through st->o each
 * step's rescale waited on the previous step's stores and the next step's sums on the rescale's; in
 * registers the running sum l, the maximum and the output are separate chains that overlap.
 */
TGT_AVX512 INLINE void lanes_step_one(struct tile_state *st, const float *sc, int hd, int p0,
                                      int np, int pos, int start, float *m, float *l, __m512 *o,
                                      const char *pfv, int pf_per, const int nv, const bool f16)
{
    _Alignas(64) float w[TILE_POS];
    float corr = row_softmax_step(sc, p0, np, pos, start, m, l, w);
    if (corr != 1.0f)
#pragma GCC unroll 8
        for (int i = 0; i < nv; i++)
            o[i] = _mm512_mul_ps(o[i], _mm512_set1_ps(corr));
    __mmask16 tail = (__mmask16)(hd % 16 ? (1u << (hd % 16)) - 1 : 0xffff);
    pv_sums(st, (struct pv_weights){w, 1, 0}, np, 0, 0, tail, pfv, pf_per, o, 1, nv, f16);
}

/*
 * The few-rows path (nrows <= LANES_ROWS_MAX) over positions p0 .. hi:
 * passes of up to ns_max steps whose scores lanes_scores computes together,
 * then per step the softmax update and the weighted V.  With one_nv (1-8,
 * a single row of head_dim <= 16 * one_nv, a decode step without GQA) the
 * row's output stays in registers (lanes_step_one); 0: st->o.  The row
 * sums go to lsum.
 */
TGT_AVX512 INLINE void tile_lanes_impl(struct tile_state *st, const struct kernel_kv_view *kv,
                                       size_t head_off, int hd, int p0, int hi, int nrows,
                                       const int *pos, const int *start, float *lsum,
                                       const int one_nv, const bool f16)
{
    float m[LANES_ROWS_MAX], l[LANES_ROWS_MAX];
    for (int r = 0; r < nrows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    __m512 o[8];
#pragma GCC unroll 8
    for (int i = 0; i < one_nv; i++)
        o[i] = _mm512_setzero_ps();
    const int ns_max = lanes_steps(nrows, kv->block_tokens), nr4 = (nrows + 3) & ~3;
    const struct pv_weights wl = {&st->wl[0][0], 1, TILE_POS};
    /* padding rows (up to a multiple of 4) weigh 0 in tile_pv's 4-row
     * sums; lanes_softmax writes only the real rows */
    for (int r = nrows; nrows > 1 && r < nr4; r++)
        for (int j = 0; j < TILE_POS; j++)
            st->wl[r][j] = 0.0f;
    for (int ns = ns_max; p0 < hi; p0 += TILE_POS * ns) {
        /* the last pass scores only the steps left: a decode head at 72
         * positions scored 4 steps for 1 in its second pass (K/V in the
         * caches, best of 5: 0.75 us, now 0.69-0.70; 0.52 at 64).  Each
         * position's score is the same FMA chain whatever the pass's width. */
        int left = (hi - p0 + TILE_POS - 1) / TILE_POS;
        ns = left < ns_max ? left : ns_max;
        struct kv_prefetch pf = {.n_blocks = 0};
        if (kv->block_tokens % TILE_POS == 0)
            pf = kv_prefetch_of(kv, head_off, hd, p0 + TILE_POS * ns, hi, ns, f16);
        const void *kt[LANES_STEPS_MAX];
        size_t ks;
        if (tile_steps_k(kv, head_off, hd, p0, hi, ns, st->kt, kt, &ks))
            lanes_scores_any(st, kt, ks, hd, &pf, nrows, ns, true);
        else
            lanes_scores_any(st, kt, ks, hd, &pf, nrows, ns, false);
        for (int s = 0; s < ns && p0 + TILE_POS * s < hi; s++) {
            int ps = p0 + TILE_POS * s, np = hi - ps < TILE_POS ? hi - ps : TILE_POS;
            kv_step(&st->step, kv, head_off, ps, np, false);
            /* V of the next pass's block s, spread over this step's positions */
            const char *pfv = s < pf.n_blocks ? pf.v[s] : NULL;
            if (one_nv) {
                lanes_step_one(st, st->sc[s], hd, ps, np, pos[0], start[0], &m[0], &l[0], o, pfv,
                               pf.per_position, one_nv, f16);
                continue;
            }
            lanes_softmax(st, st->sc + s * nrows, hd, ps, np, nrows, pos, start, m, l);
            if (nrows == 1)
                tile_pv_rows(st, wl, np, 0, hd, 1, pfv, pf.per_position, f16);
            else
                for (int r0 = 0; r0 < nr4; r0 += 4, pfv = NULL)
                    tile_pv_rows(st, wl, np, r0, hd, 4, pfv, pf.per_position, f16);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < one_nv; i++)
        _mm512_store_ps(&st->o[0][16 * i], o[i]);
    for (int r = 0; r < nrows; r++)
        lsum[r] = l[r];
}

TGT_AVX512 INLINE void tile_lanes(struct tile_state *st, const struct kernel_kv_view *kv,
                                  size_t head_off, int hd, int p0, int hi, int nrows,
                                  const int *pos, const int *start, float *lsum, const bool f16)
{
#define LANES_ONE(nv) tile_lanes_impl(st, kv, head_off, hd, p0, hi, 1, pos, start, lsum, nv, f16)
    switch (nrows == 1 ? (hd + 15) / 16 : 0) {
    case 1: LANES_ONE(1); break;
    case 2: LANES_ONE(2); break;
    case 3: LANES_ONE(3); break;
    case 4: LANES_ONE(4); break;
    case 5: LANES_ONE(5); break;
    case 6: LANES_ONE(6); break;
    case 7: LANES_ONE(7); break;
    case 8: LANES_ONE(8); break;
    default: tile_lanes_impl(st, kv, head_off, hd, p0, hi, nrows, pos, start, lsum, 0, f16); break;
    }
#undef LANES_ONE
}

/* Rows row0 .. row0+nrows-1 (nrows <= KERNEL_ATTN_TILE_ROWS) of the tile,
 * K/V F16 or F32. */
TGT_AVX512 INLINE void tile_avx512(const struct kernel_attn_tile *t,
                                   const struct kernel_kv_view *kv, size_t head_off, int hd,
                                   float scale, int row0, int nrows, struct tile_state *st,
                                   const bool f16)
{
    const int nvr = nrows > 16 ? 2 : 1, nr4 = (nrows + 3) & ~3;
    _Alignas(64) int pos[KERNEL_ATTN_TILE_ROWS], start[KERNEL_ATTN_TILE_ROWS];
    int lo, hi;
    /* the few-rows path reads only its rows' q columns, and one output row
     * when it has one row */
    const bool lanes = nrows <= LANES_ROWS_MAX;
    const int q_rows = lanes ? nrows : 16 * nvr, o_rows = nrows == 1 ? 1 : nr4;
    tile_rows_begin(t, hd, scale, row0, nrows, 16 * nvr, q_rows, st->qt, pos, start, &lo, &hi);
    for (int r = 0; r < o_rows; r++)
        for (int d = 0; d < hd; d++)
            st->o[r][d] = 0.0f;
    /* both set (the second unused with 16 rows or fewer): GCC cannot tell */
    __m512i rpos[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()},
            rstart[2] = {rpos[0], rpos[0]};
    __m512 m[2], l[2];
    for (int v = 0; v < nvr; v++) {
        rpos[v] = _mm512_load_si512(pos + 16 * v);
        rstart[v] = _mm512_load_si512(start + 16 * v);
        m[v] = _mm512_set1_ps(-INFINITY);
        l[v] = _mm512_setzero_ps();
    }
    _Alignas(64) float lsum[KERNEL_ATTN_TILE_ROWS];
    if (lanes)
        tile_lanes(st, kv, head_off, hd, lo - lo % TILE_POS, hi, nrows, pos, start, lsum, f16);
    const struct pv_weights e = {&st->e[0][0], KERNEL_ATTN_TILE_ROWS, 1};
    for (int p0 = lo - lo % TILE_POS; !lanes && p0 < hi; p0 += TILE_POS) {
        int np = hi - p0 < TILE_POS ? hi - p0 : TILE_POS;
        kv_step(&st->step, kv, head_off, p0, np, true);
        __m512 mc[2] = {m[0], m[nvr - 1]};
        if (nvr == 2)
            tile_scores(st, hd, p0, np, rpos, rstart, mc, 2, f16);
        else
            tile_scores(st, hd, p0, np, rpos, rstart, mc, 1, f16);
        bool rescale = false;
        for (int v = 0; v < nvr; v++) {
            /* rows that have seen nothing yet keep -inf; subtract 0 for them */
            __m512 safe = _mm512_mask_blend_ps(
                _mm512_cmp_ps_mask(mc[v], _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), mc[v],
                _mm512_setzero_ps());
            __m512 corr = exp16(_mm512_sub_ps(m[v], safe));
            rescale |= _mm512_cmp_ps_mask(mc[v], m[v], _CMP_NEQ_UQ) != 0;
            _mm512_store_ps(st->corr + 16 * v, corr);
            __m512 w[TILE_POS];
            for (int j = 0; j < TILE_POS; j++) {
                w[j] = _mm512_setzero_ps();
                if (j < np) {
                    w[j] = exp16(_mm512_sub_ps(_mm512_load_ps(&st->e[j][16 * v]), safe));
                    _mm512_store_ps(&st->e[j][16 * v], w[j]);
                }
            }
            l[v] = _mm512_mul_ps(l[v], corr);
            l[v] = _mm512_add_ps(l[v], step_sum_rows(w));
            m[v] = mc[v];
        }
        if (rescale)
            for (int r = 0; r < nr4; r++)
                if (st->corr[r] != 1.0f)
                    scale_row(st->o[r], hd, st->corr[r]);
        for (int r0 = 0; r0 < nr4; r0 += 4)
            tile_pv_rows(st, e, np, r0, hd, 4, NULL, 0, f16);
    }
    for (int v = 0; !lanes && v < nvr; v++)
        _mm512_store_ps(lsum + 16 * v, l[v]);
    tile_rows_end(t, hd, row0, nrows, (const float(*)[TILE_HD_MAX])st->o, lsum);
}
TGT_AVX512 static void tile_avx512_f32(const struct kernel_attn_tile *t,
                                       const struct kernel_kv_view *kv, size_t head_off, int hd,
                                       float scale, int row0, int nrows, struct tile_state *st)
{
    tile_avx512(t, kv, head_off, hd, scale, row0, nrows, st, false);
}

TGT_AVX512 static void tile_avx512_f16(const struct kernel_attn_tile *t,
                                       const struct kernel_kv_view *kv, size_t head_off, int hd,
                                       float scale, int row0, int nrows, struct tile_state *st)
{
    tile_avx512(t, kv, head_off, hd, scale, row0, nrows, st, true);
}
#endif

void kernel_attention_tile(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                           size_t head_off, int head_dim, float scale)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512 && head_dim <= TILE_HD_MAX) {
        static _Thread_local struct tile_state st;
        int rows = t->n_tokens * t->n_group;
        for (int r0 = 0; r0 < rows; r0 += KERNEL_ATTN_TILE_ROWS) {
            int nr = rows - r0 < KERNEL_ATTN_TILE_ROWS ? rows - r0 : KERNEL_ATTN_TILE_ROWS;
            if (kv->dtype == DTYPE_F16)
                tile_avx512_f16(t, kv, head_off, head_dim, scale, r0, nr, &st);
            else
                tile_avx512_f32(t, kv, head_off, head_dim, scale, r0, nr, &st);
        }
        return;
    }
    if (kernel_isa_get() >= KERNEL_ISA_AVX2 && head_dim % 8 == 0 && head_dim <= TILE_HD_MAX) {
        kernel_attention_tile_avx2(t, kv, head_off, head_dim, scale);
        return;
    }
#endif
    tile_by_rows(t, kv, head_off, head_dim, scale);
}
