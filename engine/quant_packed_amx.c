/*
 * quant_packed_amx.c - the packed integer-dot matmul (quant_packed.h) on
 * AMX tiles, for several tokens at a time.
 *
 * One tdpbsud multiplies a tile of up to 16 tokens' int8 activations (A:
 * tokens x 64 columns) by a tile of 16 rows' codes (B: 16 rows of 64 bytes,
 * each holding 4 consecutive codes of the 16 rows) and adds the exact
 * integer sums into a 16-token x 16-row tile of int32 (C).  B's layout is
 * the bundle's: an 8-bit group of 64 codes is 16 steps of 64 bytes, loaded
 * as they are; a 4-bit step holds 8 codes of each row as two nibbles, so
 * its low and high nibbles are written out as two rows of a 64-byte-per-
 * row buffer first (codes 8s..8s+3 and 8s+4..8s+7: the natural order again).
 * A is the activations as they are, one token per tile row.
 *
 * After each group the int32 tile is stored and every token's 16 row sums
 * are scaled as in quant_packed_dot_ref, in the same order, so the result
 * equals the reference (and the AVX-512 and AVX2 kernels) bit for bit.
 *
 * Four groups are in flight at a time (tiles in configure).  The tile
 * configuration is per thread: every call loads it and releases the tiles
 * when it returns.
 */
#include "quant_packed_amx.h"

#include <string.h>

#include "kernels_x86.h"
#include "quant_packed_simd.h"

#ifdef KERNELS_X86

#define TGT_AMX                                                                                    \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,"                    \
                          "amx-tile,amx-int8")))

#define AMX_TOKENS 16 /* rows of the A and C tiles */
#define AMX_K 64      /* bytes of an A row: codes per tdpbsud */

/* ldtilecfg's 64-byte operand (palette 1) */
struct tile_config {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Tiles for nt tokens and k codes per tdpbsud (k = 32 or 64): C tiles 0-3
 * (token x 16 int32), A tiles 4 and 6 (token x k activations), B tiles 5
 * and 7 (k / 4 rows of 4 codes of 16 rows). */
TGT_AMX static void configure(int nt, int k)
{
    struct tile_config c;
    memset(&c, 0, sizeof(c));
    c.palette = 1;
    for (int i = 0; i < 4; i++) {
        c.rows[i] = (uint8_t)nt;
        c.colsb[i] = 64;
    }
    for (int p = 0; p < 2; p++) {
        c.rows[4 + 2 * p] = (uint8_t)nt;
        c.colsb[4 + 2 * p] = (uint16_t)k;
        c.rows[5 + 2 * p] = (uint8_t)(k / 4);
        c.colsb[5 + 2 * p] = 64;
    }
    _tile_loadconfig(&c);
}

/* The 4-bit steps of k codes at w as B rows in buf (k/4 rows of 64 bytes). */
TGT_AMX INLINE void unpack4(const uint8_t *w, int k, uint8_t *buf)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int s = 0; s < k / 8; s++) {
        __m512i raw = _mm512_loadu_si512((const void *)(w + s * STEP_BYTES));
        _mm512_store_si512((void *)(buf + 2 * s * 64), _mm512_and_si512(raw, m4));
        _mm512_store_si512((void *)(buf + (2 * s + 1) * 64),
                           _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4));
    }
}

/* Groups of a bundle whose integer sums are computed before any of them
 * is scaled: the tile stores and the vector loads of their sums (and the
 * 4-bit codes' stores and tile loads) are then apart, not a chain per
 * group. */
#define CHUNK_GROUPS 8

/*
 * The exact integer sums of a group (B rows at w, stride 64; activations at
 * xg, stride cols) into C tile c, stored to out: tdpbsud over each k-code
 * slice, with A tile ta and B tile tb (literals: the intrinsics paste them
 * into the instruction).
 */
#define GROUP_SUMS(c, ta, tb, w, xg, out)                                                          \
    do {                                                                                           \
        _tile_zero(c);                                                                             \
        for (int sl = 0; sl < slices; sl++) {                                                      \
            _tile_loadd(ta, (xg) + (size_t)sl * k, cols);                                          \
            _tile_loadd(tb, (w) + (size_t)sl * k / 4 * 64, 64);                                    \
            _tile_dpbsud(c, ta, tb);                                                               \
        }                                                                                          \
        _tile_stored(c, out, 64);                                                                  \
    } while (0)

/* Token j's activation scale and sum for group g at [g][j], for the tile's
 * tokens: one base pointer for all of them (per-token pointers into xd and
 * xsum were spilled to the stack and reloaded for every product). */
struct tile_factors {
    float d[QUANT_PACKED_AMX_MAX_GROUPS][AMX_TOKENS];
    float s[QUANT_PACKED_AMX_MAX_GROUPS][AMX_TOKENS];
};

/* acc[j] += token j's 16 row dots of group g (int sums in s) */
TGT_AMX INLINE void scale_group(const struct quant_matrix *m, size_t pi,
                                const struct tile_factors *f, size_t g, int nt,
                                const int32_t (*s)[16], __m512 *acc)
{
    __m512 sv = load16(m->scales, m->param_dtype, pi);
    __m512 bv = load16(m->biases, m->param_dtype, pi);
#pragma GCC unroll 16
    for (int j = 0; j < nt; j++) {
        __m512 sd = _mm512_mul_ps(sv, _mm512_set1_ps(f->d[g][j]));
        __m512i is = _mm512_load_si512((const void *)s[j]);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), sd, acc[j]);
        acc[j] = _mm512_fmadd_ps(bv, _mm512_set1_ps(f->s[g][j]), acc[j]);
    }
}

/*
 * Bundles [b0, b1) times the nt tokens from t (nt a constant in every
 * caller, so the accumulators stay in registers), each bundle's groups in
 * order, CHUNK_GROUPS at a time.
 */
TGT_AMX INLINE void bundles_tokens(const struct quant_matrix *m, const int8_t *xq,
                                   const struct tile_factors *f, size_t t, int nt, size_t b0,
                                   size_t b1, float *y)
{
    const int bits = m->bits;
    size_t cols = m->cols, rows = m->rows, gs = (size_t)m->group_size, groups = cols / gs;
    int k = gs < AMX_K ? (int)gs : AMX_K, slices = (int)gs / k;
    size_t steps = gs / step_codes(bits), group_bytes = steps * STEP_BYTES;
    size_t psz = dtype_size(m->param_dtype);
    size_t params_ahead = PREFETCH4_BYTES / group_bytes;
    /* 4-bit codes as B rows (gs / 4 rows of 64 bytes a group), sums per group */
    _Alignas(64) uint8_t buf[CHUNK_GROUPS][128 / 4 * 64];
    _Alignas(64) int32_t sums[CHUNK_GROUPS][AMX_TOKENS][16];
    const int8_t *xt = xq + t * cols;
    for (size_t b = b0; b < b1; b++) {
        const uint8_t *wb = (const uint8_t *)m->q + b * groups * group_bytes;
        size_t pi0 = b * groups * QUANT_PACK_ROWS;
        __m512 acc[AMX_TOKENS];
#pragma GCC unroll 16
        for (int j = 0; j < nt; j++)
            acc[j] = _mm512_setzero_ps();
        for (size_t g0 = 0; g0 < groups; g0 += CHUNK_GROUPS) {
            size_t n = groups - g0 < CHUNK_GROUPS ? groups - g0 : CHUNK_GROUPS;
            const int8_t *xc = xt + g0 * gs;
            const uint8_t *w[CHUNK_GROUPS];
            for (size_t i = 0; i < n; i++) {
                w[i] = wb + (g0 + i) * group_bytes;
                prefetch_group(m, bits, w[i], steps,
                               pi0 + (g0 + i + params_ahead) * QUANT_PACK_ROWS, psz);
                if (bits == 4) {
                    unpack4(w[i], (int)gs, buf[i]);
                    w[i] = buf[i];
                }
            }
            size_t i = 0;
            for (; i + 4 <= n; i += 4) {
                GROUP_SUMS(0, 4, 5, w[i], xc + i * gs, sums[i]);
                GROUP_SUMS(1, 6, 7, w[i + 1], xc + (i + 1) * gs, sums[i + 1]);
                GROUP_SUMS(2, 4, 5, w[i + 2], xc + (i + 2) * gs, sums[i + 2]);
                GROUP_SUMS(3, 6, 7, w[i + 3], xc + (i + 3) * gs, sums[i + 3]);
            }
            for (; i < n; i++)
                GROUP_SUMS(0, 4, 5, w[i], xc + i * gs, sums[i]);
            for (i = 0; i < n; i++)
                scale_group(m, pi0 + (g0 + i) * QUANT_PACK_ROWS, f, g0 + i, nt, sums[i], acc);
        }
#pragma GCC unroll 16
        for (int j = 0; j < nt; j++)
            _mm512_storeu_ps(y + (t + (size_t)j) * rows + b * QUANT_PACK_ROWS, acc[j]);
    }
}

#define TOKEN_CASE(n)                                                                              \
    case n: bundles_tokens(m, xq, &f, t, n, b0, b1, y); break

TGT_AMX void quant_packed_bundles_amx(const struct quant_matrix *m, const int8_t *xq,
                                      const float *xd, const float *xsum, size_t t0, size_t t1,
                                      size_t b0, size_t b1, float *y)
{
    int k = m->group_size < AMX_K ? m->group_size : AMX_K;
    size_t groups = m->cols / (size_t)m->group_size;
    struct tile_factors f;
    for (size_t t = t0; t < t1; t += AMX_TOKENS) {
        int nt = t1 - t >= AMX_TOKENS ? AMX_TOKENS : (int)(t1 - t);
        for (size_t g = 0; g < groups; g++)
            for (int j = 0; j < nt; j++) {
                f.d[g][j] = xd[(t + (size_t)j) * groups + g];
                f.s[g][j] = xsum[(t + (size_t)j) * groups + g];
            }
        configure(nt, k);
        switch (nt) {
            TOKEN_CASE(16);
            TOKEN_CASE(15);
            TOKEN_CASE(14);
            TOKEN_CASE(13);
            TOKEN_CASE(12);
            TOKEN_CASE(11);
            TOKEN_CASE(10);
            TOKEN_CASE(9);
            TOKEN_CASE(8);
            TOKEN_CASE(7);
            TOKEN_CASE(6);
            TOKEN_CASE(5);
            TOKEN_CASE(4);
            TOKEN_CASE(3);
            TOKEN_CASE(2);
            TOKEN_CASE(1);
        }
    }
    _tile_release();
}

#endif
