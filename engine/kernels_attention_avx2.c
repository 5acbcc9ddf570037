/*
 * kernels_attention_avx2.c - kernel_attention_tile_avx2: the tile attention
 * kernel (kernels_attention.c) for CPUs with AVX2 but not AVX-512.
 *
 * The same flash attention as the AVX-512 kernel, eight lanes wide: steps
 * of 16 positions at absolute multiples of 16, a per-row online softmax,
 * then the weighted V added to each row's output.  Many rows (a prefill
 * tile): one lane per query row, each K element broadcast once to eight rows,
 * so K/V are read once per tile instead of once per row.  Few rows (a decode
 * step): one lane per position, two vectors a step, several steps' score
 * chains at once, the next pass's K/V blocks asked for along the way
 * (kv_prefetch_of in kernels_attention_tile.h).  Every row's operations are the AVX-512 kernel's,
 * in the same order (kernels_attention_tile.h), so the two give the same bits, and a row's result
 * does not depend on the tile it is computed in.  Scratch is one thread-local struct tile2_state.
 */
#include <math.h>
#include <stdint.h>

#include "kernels_attention_tile.h"
#include "kernels_x86.h"

#ifdef KERNELS_X86

/* Rows up to which scores put positions in lanes (the few-rows path), and
 * the score chains (rows x steps) it runs at once: each is two vectors, so
 * four take 8 of AVX2's 16 registers. */
#define FEW_ROWS_MAX 4
#define FEW_CHAINS 4
_Static_assert(FEW_CHAINS <= KV_PREFETCH_BLOCKS, "a pass asks for its blocks");

struct tile2_state {
    _Alignas(32) float qt[TILE_HD_MAX][KERNEL_ATTN_TILE_ROWS]; /* scaled q, (hd, rows) */
    _Alignas(32) float o[KERNEL_ATTN_TILE_ROWS][TILE_HD_MAX];  /* unnormalized output */
    _Alignas(32) float e[TILE_POS][KERNEL_ATTN_TILE_ROWS];     /* scores, then weights */
    _Alignas(32) float corr[KERNEL_ATTN_TILE_ROWS];
    _Alignas(32) float sc[FEW_CHAINS][TILE_POS];  /* few-rows scores, a lane per position */
    _Alignas(32) float w[FEW_ROWS_MAX][TILE_POS]; /* few-rows weights, a row per query row */
    _Alignas(32) float kt[TILE_HD_MAX][TILE_POS]; /* K of a step that spans blocks */
    struct kv_step_ptrs step;
};

/* Element i of p, F32 or F16, as a float. */
TGT_AVX2 INLINE float load1(const void *p, size_t i, const bool f16)
{
    return f16 ? _cvtsh_ss(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Elements i .. i+7 of p, F32 or F16. */
TGT_AVX2 INLINE __m256 load8_kv(const void *p, size_t i, const bool f16)
{
    return load8(p, f16 ? DTYPE_F16 : DTYPE_F32, i);
}

/* The sum of a step's 16 weights in two vectors (positions 0-7, 8-15),
 * paired as the AVX-512 kernel's step_sum_lanes: j and j + 8, then j and
 * j + 4, then j and j + 2, then the last two. */
TGT_AVX2 INLINE float step_sum_lanes8(__m256 lo, __m256 hi)
{
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* The same pairing with one vector of rows per position (step_sum_rows). */
TGT_AVX2 INLINE __m256 step_sum_rows8(const __m256 *w)
{
    __m256 s8[8], s4[4];
    for (int j = 0; j < 8; j++)
        s8[j] = _mm256_add_ps(w[j], w[j + 8]);
    for (int j = 0; j < 4; j++)
        s4[j] = _mm256_add_ps(s8[j], s8[j + 4]);
    return _mm256_add_ps(_mm256_add_ps(s4[0], s4[2]), _mm256_add_ps(s4[1], s4[3]));
}

/* o[0..hd) *= c */
TGT_AVX2 INLINE void scale_row8(float *o, int hd, float c)
{
    for (int d = 0; d < hd; d += 8)
        _mm256_store_ps(o + d, _mm256_mul_ps(_mm256_load_ps(o + d), _mm256_set1_ps(c)));
}

/*
 * o[r0 + r][d0 + 8i ...] += w(j, r0 + r) V[j][d0 + 8i ...] for j < np in
 * order, rows r < nr, vectors i < nv (nr * nv <= 8, accumulators in
 * registers); w(j, r) = w[j * wpos + r * wrow].  pfv's lines are asked
 * for along the way, pf_per a position (kv_prefetch_v).
 */
TGT_AVX2 INLINE void pv_block(struct tile2_state *st, const float *w, size_t wpos, size_t wrow,
                              int np, int r0, int d0, const char *pfv, int pf_per, const int nr,
                              const int nv, const bool f16)
{
    __m256 acc[8];
#pragma GCC unroll 2
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
        for (int i = 0; i < nv; i++)
            acc[r * nv + i] = _mm256_load_ps(&st->o[r0 + r][d0 + 8 * i]);
    for (int j = 0; j < np; j++) {
        kv_prefetch_v(pfv, pf_per, j);
        __m256 vv[8];
#pragma GCC unroll 8
        for (int i = 0; i < nv; i++)
            vv[i] = load8_kv(st->step.vp[j], (size_t)(d0 + 8 * i), f16);
#pragma GCC unroll 2
        for (int r = 0; r < nr; r++) {
            __m256 wv = _mm256_set1_ps(w[(size_t)j * wpos + (size_t)(r0 + r) * wrow]);
#pragma GCC unroll 8
            for (int i = 0; i < nv; i++)
                acc[r * nv + i] = _mm256_fmadd_ps(wv, vv[i], acc[r * nv + i]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
        for (int i = 0; i < nv; i++)
            _mm256_store_ps(&st->o[r0 + r][d0 + 8 * i], acc[r * nv + i]);
}

/* pv_block over rows 0..nrows-1 and all hd dims with the counts known at
 * compile time: two rows and 32 dims at a time, or a last single row 64 at
 * a time (eight FMA chains either way); pfv's lines are asked for during
 * the first block. */
TGT_AVX2 INLINE void pv_rows(struct tile2_state *st, const float *w, size_t wpos, size_t wrow,
                             int np, int nrows, int hd, const char *pfv, int pf_per, const bool f16)
{
    for (int r0 = 0; r0 < nrows; r0 += 2) {
        int pair = nrows - r0 >= 2, width = pair ? 32 : 64;
        for (int d0 = 0; d0 < hd; d0 += width, pfv = NULL) {
            int nv = hd - d0 >= width ? width / 8 : (hd - d0) / 8;
#define PV(nr, n) pv_block(st, w, wpos, wrow, np, r0, d0, pfv, pf_per, nr, n, f16)
            if (pair)
                switch (nv) {
                case 4: PV(2, 4); break;
                case 3: PV(2, 3); break;
                case 2: PV(2, 2); break;
                default: PV(2, 1); break;
                }
            else
                switch (nv) {
                case 8: PV(1, 8); break;
                case 7: PV(1, 7); break;
                case 6: PV(1, 6); break;
                case 5: PV(1, 5); break;
                case 4: PV(1, 4); break;
                case 3: PV(1, 3); break;
                case 2: PV(1, 2); break;
                default: PV(1, 1); break;
                }
#undef PV
        }
    }
}

/* ---------------------------------------------------------------------- */
/* many rows: a lane per query row                                         */

/* Scores of the step's np positions for rows in nvr vectors of 8:
 * st->e[j][r] = q_r . K[p0+j], or -inf where row r does not see the
 * position; mc[v] takes the largest. */
TGT_AVX2 INLINE void rows_scores(struct tile2_state *st, int hd, int p0, int np,
                                 const __m256i *rpos, const __m256i *rstart, __m256 *mc,
                                 const int nvr, const bool f16)
{
    size_t ks = st->step.kstride;
    for (int j = 0; j < np; j += 2) {
        __m256 acc[2][4];
#pragma GCC unroll 2
        for (int u = 0; u < 2; u++)
#pragma GCC unroll 4
            for (int v = 0; v < nvr; v++)
                acc[u][v] = _mm256_setzero_ps();
        const void *k0 = st->step.kp[j], *k1 = st->step.kp[j + 1];
        for (int d = 0; d < hd; d++) {
            __m256 kb0 = _mm256_set1_ps(load1(k0, (size_t)d * ks, f16));
            __m256 kb1 = _mm256_set1_ps(load1(k1, (size_t)d * ks, f16));
#pragma GCC unroll 4
            for (int v = 0; v < nvr; v++) {
                __m256 qv = _mm256_load_ps(&st->qt[d][8 * v]);
                acc[0][v] = _mm256_fmadd_ps(qv, kb0, acc[0][v]);
                acc[1][v] = _mm256_fmadd_ps(qv, kb1, acc[1][v]);
            }
        }
#pragma GCC unroll 2
        for (int u = 0; u < 2; u++) {
            if (j + u >= np)
                break;
            __m256i p = _mm256_set1_epi32(p0 + j + u);
#pragma GCC unroll 4
            for (int v = 0; v < nvr; v++) {
                /* seen: start <= p <= pos */
                __m256i unseen = _mm256_or_si256(_mm256_cmpgt_epi32(p, rpos[v]),
                                                 _mm256_cmpgt_epi32(rstart[v], p));
                __m256 sc = _mm256_blendv_ps(acc[u][v], _mm256_set1_ps(-INFINITY),
                                             _mm256_castsi256_ps(unseen));
                _mm256_store_ps(&st->e[j + u][8 * v], sc);
                mc[v] = _mm256_max_ps(mc[v], sc);
            }
        }
    }
}

/* The many-rows path over positions from p0 up to hi for rows in nvr
 * vectors (the rows' positions and window starts in pos and start); each
 * row's sum goes to lsum. */
TGT_AVX2 INLINE void tile_rows(struct tile2_state *st, const struct kernel_kv_view *kv,
                               size_t head_off, int hd, int p0, int hi, int nrows, const int *pos,
                               const int *start, float *lsum, const int nvr, const bool f16)
{
    __m256i rpos[4], rstart[4];
    __m256 m[4], l[4];
    for (int v = 0; v < nvr; v++) {
        rpos[v] = _mm256_loadu_si256((const __m256i *)(pos + 8 * v));
        rstart[v] = _mm256_loadu_si256((const __m256i *)(start + 8 * v));
        m[v] = _mm256_set1_ps(-INFINITY);
        l[v] = _mm256_setzero_ps();
    }
    for (; p0 < hi; p0 += TILE_POS) {
        int np = hi - p0 < TILE_POS ? hi - p0 : TILE_POS;
        kv_step(&st->step, kv, head_off, p0, np, true);
        __m256 mc[4];
        for (int v = 0; v < nvr; v++)
            mc[v] = m[v];
        rows_scores(st, hd, p0, np, rpos, rstart, mc, nvr, f16);
        bool rescale = false;
        for (int v = 0; v < nvr; v++) {
            /* rows that have seen nothing yet keep -inf; subtract 0 for them */
            __m256 safe =
                _mm256_blendv_ps(mc[v], _mm256_setzero_ps(),
                                 _mm256_cmp_ps(mc[v], _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ));
            __m256 corr = exp8(_mm256_sub_ps(m[v], safe));
            rescale |= _mm256_movemask_ps(_mm256_cmp_ps(mc[v], m[v], _CMP_NEQ_UQ)) != 0;
            _mm256_store_ps(st->corr + 8 * v, corr);
            __m256 w[TILE_POS];
            for (int j = 0; j < TILE_POS; j++) {
                w[j] = _mm256_setzero_ps();
                if (j < np) {
                    w[j] = exp8(_mm256_sub_ps(_mm256_load_ps(&st->e[j][8 * v]), safe));
                    _mm256_store_ps(&st->e[j][8 * v], w[j]);
                }
            }
            l[v] = _mm256_mul_ps(l[v], corr);
            l[v] = _mm256_add_ps(l[v], step_sum_rows8(w));
            m[v] = mc[v];
        }
        if (rescale)
            for (int r = 0; r < nrows; r++)
                if (st->corr[r] != 1.0f)
                    scale_row8(st->o[r], hd, st->corr[r]);
        pv_rows(st, &st->e[0][0], KERNEL_ATTN_TILE_ROWS, 1, np, nrows, hd, NULL, 0, f16);
    }
    for (int v = 0; v < nvr; v++)
        _mm256_storeu_ps(lsum + 8 * v, l[v]);
}

/* ---------------------------------------------------------------------- */
/* few rows: a lane per position                                           */

/* Scores of ns steps' 16 positions (two vectors each) for rows 0..nr-1
 * (scaled q in q[r]) into st->sc[s * nr + r]: per row the FMA chain over
 * the features that rows_scores runs in the row's lane. */
TGT_AVX2 INLINE void few_scores(struct tile2_state *st, const float (*q)[TILE_HD_MAX],
                                const void **kt, size_t ks, int hd, const struct kv_prefetch *pf,
                                const int nr, const int ns, const bool f16)
{
    __m256 acc[FEW_CHAINS][2];
#pragma GCC unroll 4
    for (int c = 0; c < nr * ns; c++)
        acc[c][0] = acc[c][1] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++) {
        kv_prefetch_step(pf, d);
        __m256 k[FEW_CHAINS][2];
#pragma GCC unroll 4
        for (int s = 0; s < ns; s++) {
            k[s][0] = load8_kv(kt[s], (size_t)d * ks, f16);
            k[s][1] = load8_kv(kt[s], (size_t)d * ks + 8, f16);
        }
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m256 qd = _mm256_set1_ps(q[r][d]);
#pragma GCC unroll 4
            for (int s = 0; s < ns; s++) {
                acc[s * nr + r][0] = _mm256_fmadd_ps(qd, k[s][0], acc[s * nr + r][0]);
                acc[s * nr + r][1] = _mm256_fmadd_ps(qd, k[s][1], acc[s * nr + r][1]);
            }
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < nr * ns; c++) {
        _mm256_store_ps(st->sc[c], acc[c][0]);
        _mm256_store_ps(st->sc[c] + 8, acc[c][1]);
    }
}

TGT_AVX2 INLINE void few_scores_any(struct tile2_state *st, const float (*q)[TILE_HD_MAX],
                                    const void **kt, size_t ks, int hd,
                                    const struct kv_prefetch *pf, int nr, int ns, const bool f16)
{
    switch (nr * 8 + ns) {
    case 1 * 8 + 4: few_scores(st, q, kt, ks, hd, pf, 1, 4, f16); break;
    case 1 * 8 + 3: few_scores(st, q, kt, ks, hd, pf, 1, 3, f16); break;
    case 1 * 8 + 2: few_scores(st, q, kt, ks, hd, pf, 1, 2, f16); break;
    case 1 * 8 + 1: few_scores(st, q, kt, ks, hd, pf, 1, 1, f16); break;
    case 2 * 8 + 2: few_scores(st, q, kt, ks, hd, pf, 2, 2, f16); break;
    case 2 * 8 + 1: few_scores(st, q, kt, ks, hd, pf, 2, 1, f16); break;
    case 3 * 8 + 1: few_scores(st, q, kt, ks, hd, pf, 3, 1, f16); break;
    default: few_scores(st, q, kt, ks, hd, pf, 4, 1, f16); break;
    }
}

/*
 * One row's softmax update for one step from its scores sc (lanes =
 * positions; np valid, the row sees pos and those from start on): the
 * AVX-512 kernel's row_softmax_step.  Updates the running maximum *m and
 * sum *l, leaves the weights in w and returns the factor the row's output
 * must be scaled by.
 */
TGT_AVX2 INLINE float few_softmax_step(const float *sc, int p0, int np, int pos, int start,
                                       float *m, float *l, float *w)
{
    __m256 sv[2];
    float mc = -INFINITY;
    for (int h = 0; h < 2; h++) {
        __m256i p = _mm256_add_epi32(_mm256_set1_epi32(p0 + 8 * h),
                                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256i unseen =
            _mm256_or_si256(_mm256_or_si256(_mm256_cmpgt_epi32(p, _mm256_set1_epi32(pos)),
                                            _mm256_cmpgt_epi32(_mm256_set1_epi32(start), p)),
                            _mm256_cmpgt_epi32(p, _mm256_set1_epi32(p0 + np - 1)));
        sv[h] = _mm256_blendv_ps(_mm256_load_ps(sc + 8 * h), _mm256_set1_ps(-INFINITY),
                                 _mm256_castsi256_ps(unseen));
        float mh = hmax8(sv[h]);
        mc = mh > mc ? mh : mc;
    }
    mc = mc > *m ? mc : *m;
    float safe = mc == -INFINITY ? 0.0f : mc;
    float corr = _mm256_cvtss_f32(exp8(_mm256_set1_ps(*m - safe)));
    __m256 w0 = exp8(_mm256_sub_ps(sv[0], _mm256_set1_ps(safe)));
    __m256 w1 = exp8(_mm256_sub_ps(sv[1], _mm256_set1_ps(safe)));
    _mm256_store_ps(w, w0);
    _mm256_store_ps(w + 8, w1);
    float lr = *l * corr;
    lr += step_sum_lanes8(w0, w1);
    *l = lr;
    *m = mc;
    return corr;
}

/* The few-rows path (nrows <= FEW_ROWS_MAX) over positions from p0 up to
 * hi: passes of up to FEW_CHAINS / nrows steps whose scores are computed
 * together, then per step each row's softmax update and weighted V. */
TGT_AVX2 INLINE void tile_few(struct tile2_state *st, const struct kernel_kv_view *kv,
                              size_t head_off, int hd, int p0, int hi, int nrows, const int *pos,
                              const int *start, float *lsum, const bool f16)
{
    _Alignas(32) float q[FEW_ROWS_MAX][TILE_HD_MAX];
    float m[FEW_ROWS_MAX], l[FEW_ROWS_MAX];
    for (int r = 0; r < nrows; r++) {
        for (int d = 0; d < hd; d++)
            q[r][d] = st->qt[d][r];
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    const int ns_max = kv->block_tokens % TILE_POS ? 1 : FEW_CHAINS / nrows;
    for (int ns = ns_max; p0 < hi; p0 += TILE_POS * ns) {
        int left = (hi - p0 + TILE_POS - 1) / TILE_POS;
        ns = left < ns_max ? left : ns_max;
        struct kv_prefetch pf = {.n_blocks = 0};
        if (kv->block_tokens % TILE_POS == 0)
            pf = kv_prefetch_of(kv, head_off, hd, p0 + TILE_POS * ns, hi, ns, f16);
        const void *kt[FEW_CHAINS];
        size_t ks;
        if (tile_steps_k(kv, head_off, hd, p0, hi, ns, st->kt, kt, &ks))
            few_scores_any(st, (const float(*)[TILE_HD_MAX])q, kt, ks, hd, &pf, nrows, ns, true);
        else
            few_scores_any(st, (const float(*)[TILE_HD_MAX])q, kt, ks, hd, &pf, nrows, ns, false);
        for (int s = 0; s < ns; s++) {
            int ps = p0 + TILE_POS * s, np = hi - ps < TILE_POS ? hi - ps : TILE_POS;
            kv_step(&st->step, kv, head_off, ps, np, false);
            for (int r = 0; r < nrows; r++) {
                float corr = few_softmax_step(st->sc[s * nrows + r], ps, np, pos[r], start[r],
                                              &m[r], &l[r], st->w[r]);
                if (corr != 1.0f)
                    scale_row8(st->o[r], hd, corr);
            }
            /* V of the next pass's block s, spread over this step's positions */
            const char *pfv = s < pf.n_blocks ? pf.v[s] : NULL;
            pv_rows(st, &st->w[0][0], 1, TILE_POS, np, nrows, hd, pfv, pf.per_position, f16);
        }
    }
    for (int r = 0; r < nrows; r++)
        lsum[r] = l[r];
}

/* ---------------------------------------------------------------------- */

/* Rows row0 .. row0+nrows-1 (nrows <= KERNEL_ATTN_TILE_ROWS) of the tile. */
TGT_AVX2 INLINE void tile_avx2(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                               size_t head_off, int hd, float scale, int row0, int nrows,
                               struct tile2_state *st, const bool f16)
{
    const int nvr = (nrows + 7) / 8;
    _Alignas(32) int pos[KERNEL_ATTN_TILE_ROWS], start[KERNEL_ATTN_TILE_ROWS];
    int lo, hi;
    /* the few-rows path reads only its rows' q columns: no padding zeros */
    const bool few = nrows <= FEW_ROWS_MAX;
    tile_rows_begin(t, hd, scale, row0, nrows, 8 * nvr, few ? nrows : 8 * nvr, st->qt, pos, start,
                    &lo, &hi);
    for (int r = 0; r < nrows; r++)
        for (int d = 0; d < hd; d++)
            st->o[r][d] = 0.0f;
    float lsum[KERNEL_ATTN_TILE_ROWS];
    int p0 = lo - lo % TILE_POS;
    if (few)
        tile_few(st, kv, head_off, hd, p0, hi, nrows, pos, start, lsum, f16);
    else
        switch (nvr) {
        case 1: tile_rows(st, kv, head_off, hd, p0, hi, nrows, pos, start, lsum, 1, f16); break;
        case 2: tile_rows(st, kv, head_off, hd, p0, hi, nrows, pos, start, lsum, 2, f16); break;
        case 3: tile_rows(st, kv, head_off, hd, p0, hi, nrows, pos, start, lsum, 3, f16); break;
        default: tile_rows(st, kv, head_off, hd, p0, hi, nrows, pos, start, lsum, 4, f16); break;
        }
    tile_rows_end(t, hd, row0, nrows, (const float(*)[TILE_HD_MAX])st->o, lsum);
}

TGT_AVX2 static void tile_avx2_f32(const struct kernel_attn_tile *t,
                                   const struct kernel_kv_view *kv, size_t head_off, int hd,
                                   float scale, int row0, int nrows, struct tile2_state *st)
{
    tile_avx2(t, kv, head_off, hd, scale, row0, nrows, st, false);
}

TGT_AVX2 static void tile_avx2_f16(const struct kernel_attn_tile *t,
                                   const struct kernel_kv_view *kv, size_t head_off, int hd,
                                   float scale, int row0, int nrows, struct tile2_state *st)
{
    tile_avx2(t, kv, head_off, hd, scale, row0, nrows, st, true);
}

void kernel_attention_tile_avx2(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                                size_t head_off, int head_dim, float scale)
{
    static _Thread_local struct tile2_state st;
    int rows = t->n_tokens * t->n_group;
    for (int r0 = 0; r0 < rows; r0 += KERNEL_ATTN_TILE_ROWS) {
        int nr = rows - r0 < KERNEL_ATTN_TILE_ROWS ? rows - r0 : KERNEL_ATTN_TILE_ROWS;
        if (kv->dtype == DTYPE_F16)
            tile_avx2_f16(t, kv, head_off, head_dim, scale, r0, nr, &st);
        else
            tile_avx2_f32(t, kv, head_off, head_dim, scale, r0, nr, &st);
    }
}

#endif
