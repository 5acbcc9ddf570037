/*
 * quant_packed.c - packing MLX 4/8-bit matrices into 16-row bundles, and the
 * integer-dot matmul over them (layout and arithmetic in quant_packed.h).
 *
 * The SIMD kernels take one bundle and several tokens at a time: each step
 * of codes is loaded (and, for 4 bits, split into its two nibble halves)
 * once and multiplied into every token's integer sums.  With AVX-512 VNNI
 * (up to 8 tokens) the per-token work is one vpdpbusd per 4 codes of 16
 * rows plus four vector operations per group; with AVX2 alone (up to 4
 * tokens) vpmaddubsw and vpmaddwd do the same exact sums, 8 rows a vector.
 * Rows that are not in a whole bundle of the range take the scalar
 * reference, which computes the same numbers.
 */
#include "quant_packed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_x86.h"
#include "quant_packed_amx.h"
#include "quant_packed_simd.h"

static size_t row_bytes(const struct quant_matrix *m)
{
    return quant_row_words(m->cols, m->bits) * 4;
}

bool quant_packable(const struct quant_matrix *m)
{
    return !m->packed && (m->bits == 4 || m->bits == 8) &&
           quant_params_valid(m->bits, m->group_size) && m->rows >= QUANT_PACK_ROWS &&
           m->cols % (size_t)m->group_size == 0;
}

/* Bundle b's codes, from its 16 row-major rows in src. */
static void pack_codes(const struct quant_matrix *m, const uint8_t *src, uint8_t *dst)
{
    size_t rb = row_bytes(m), steps = m->cols / step_codes(m->bits);
    for (size_t j = 0; j < QUANT_PACK_ROWS; j++)
        for (size_t s = 0; s < steps; s++) {
            uint32_t w;
            memcpy(&w, src + j * rb + 4 * s, 4);
            if (m->bits == 4) {
                /* nibble i of w is code 8s+i: byte k gets codes k and 4+k */
                uint32_t lo = w & 0x0000ffffu, hi = w >> 16, out = 0;
                for (int k = 0; k < 4; k++)
                    out |= (((lo >> (4 * k)) & 0xf) | ((hi >> (4 * k)) & 0xf) << 4) << (8 * k);
                w = out;
            }
            memcpy(dst + s * STEP_BYTES + 4 * j, &w, 4);
        }
}

/* Bundle b's scales or biases (16 rows x groups values of size psz). */
static void pack_params(size_t groups, size_t psz, const uint8_t *src, uint8_t *dst)
{
    for (size_t j = 0; j < QUANT_PACK_ROWS; j++)
        for (size_t g = 0; g < groups; g++)
            memcpy(dst + (g * QUANT_PACK_ROWS + j) * psz, src + (j * groups + g) * psz, psz);
}

enum status quant_pack(struct quant_matrix *m, char *err, size_t errlen)
{
    if (!quant_packable(m))
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "matrix cannot be packed (%d bits, %zu rows%s)", m->bits, m->rows,
                           m->packed ? ", packed already" : "");
    size_t rb = row_bytes(m), groups = m->cols / (size_t)m->group_size;
    size_t psz = dtype_size(m->param_dtype), pbytes = QUANT_PACK_ROWS * groups * psz;
    size_t cbytes = QUANT_PACK_ROWS * rb;
    uint8_t *tmp = malloc(cbytes > pbytes ? cbytes : pbytes);
    if (!tmp)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory packing a matrix");
    /* the matrix is the caller's own memory (see quant_pack's contract) */
    uint8_t *codes = (uint8_t *)(uintptr_t)m->q;
    uint8_t *params[2] = {(uint8_t *)(uintptr_t)m->scales, (uint8_t *)(uintptr_t)m->biases};
    for (size_t b = 0; b < m->rows / QUANT_PACK_ROWS; b++) {
        memcpy(tmp, codes + b * cbytes, cbytes);
        pack_codes(m, tmp, codes + b * cbytes);
        for (int p = 0; p < 2; p++) {
            memcpy(tmp, params[p] + b * pbytes, pbytes);
            pack_params(groups, psz, tmp, params[p] + b * pbytes);
        }
    }
    free(tmp);
    m->packed = true;
    return ST_OK;
}

/* true when row lies in a whole bundle (packed); false: a row-major tail row */
static bool in_bundle(const struct quant_matrix *m, size_t row)
{
    return row < m->rows / QUANT_PACK_ROWS * QUANT_PACK_ROWS;
}

uint32_t quant_packed_code(const struct quant_matrix *m, size_t row, size_t k)
{
    size_t rb = row_bytes(m);
    if (!in_bundle(m, row))
        return quant_code(m->q + row * (rb / 4), k, m->bits);
    const uint8_t *bundle = (const uint8_t *)m->q + row / QUANT_PACK_ROWS * QUANT_PACK_ROWS * rb;
    size_t j = row % QUANT_PACK_ROWS, sc = step_codes(m->bits), s = k / sc, i = k % sc;
    uint8_t byte = bundle[s * STEP_BYTES + 4 * j + (i & 3)];
    if (m->bits == 8)
        return byte;
    return i < 4 ? byte & 0xfu : byte >> 4;
}

size_t quant_packed_param_index(const struct quant_matrix *m, size_t row, size_t g)
{
    size_t groups = m->cols / (size_t)m->group_size;
    if (!in_bundle(m, row))
        return row * groups + g;
    size_t b = row / QUANT_PACK_ROWS;
    return (b * groups + g) * QUANT_PACK_ROWS + row % QUANT_PACK_ROWS;
}

float quant_packed_dot_ref(const struct quant_matrix *m, size_t row, const int8_t *xq,
                           const float *xd, const float *xsum)
{
    size_t gs = (size_t)m->group_size, groups = m->cols / gs;
    float acc = 0.0f;
    for (size_t g = 0; g < groups; g++) {
        int32_t isum = 0;
        for (size_t k = g * gs; k < (g + 1) * gs; k++)
            isum += (int32_t)quant_packed_code(m, row, k) * xq[k];
        size_t pi = quant_packed_param_index(m, row, g);
        float s = dtype_load_f32(m->scales, m->param_dtype, pi);
        float b = dtype_load_f32(m->biases, m->param_dtype, pi);
        acc = fmaf((float)isum, s * xd[g], acc);
        acc = fmaf(b, xsum[g], acc);
    }
    return acc;
}

#ifdef KERNELS_X86

/* acc + the dots of w's 16 rows of 4 unsigned codes with the 4 signed
 * activation bytes at p, broadcast from memory inside the instruction
 * (GCC 12 loads a _mm512_set1_epi32 into a register of its own first: one
 * more instruction per vpdpbusd, which the 8-token kernel's loop, 16
 * vpdpbusd a step, cannot afford) */
TGT_AVX512 INLINE __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t *p)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
    return acc;
}

/* Activations of up to 8 tokens. */
struct x8_block {
    const int8_t *q[8];
    const float *d[8];
    const float *s[8];
};

/*
 * One bundle (codes at wb, params from index pi0 = b * groups * 16) times nt
 * tokens: out[t] gets the 16 rows' dots of token t.  bits and nt are
 * constants in every caller (bundle_dispatch), so the loops over tokens and
 * accumulators unroll and the sums stay in registers.  A token's integer
 * sums are split over nacc accumulators (added up exactly at the group's
 * end) so its vpdpbusd do not wait on each other's latency when few tokens
 * share a step.  The tokens' pointers are copied out of x and the float
 * sums written to out only at the end: stores into out inside the loop
 * made the compiler reload every pointer of x after them, once per group.
 */
TGT_AVX512 INLINE void bundle_dots(const struct quant_matrix *m, int bits, const uint8_t *wb,
                                   size_t pi0, const struct x8_block *x, int nt, __m512 *out)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const int nacc = nt <= 2 ? 4 : nt <= 4 ? 2 : 1;
    /* steps per unrolled iteration: one accumulator per dot product */
    const int su = bits == 4 ? (nacc >= 2 ? nacc / 2 : 1) : nacc;
    size_t gs = (size_t)m->group_size, groups = m->cols / gs;
    size_t sc = step_codes(bits), steps = gs / sc, psz = dtype_size(m->param_dtype);
    /* the group whose scales and biases are as far ahead as the codes */
    size_t params_ahead = PREFETCH4_BYTES / (steps * STEP_BYTES);
    const int8_t *xq[8];
    const float *xd[8], *xs[8];
    __m512 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) {
        xq[t] = x->q[t];
        xd[t] = x->d[t];
        xs[t] = x->s[t];
        acc[t] = _mm512_setzero_ps();
    }
    for (size_t g = 0; g < groups; g++) {
        __m512i is[8][4];
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
            for (int a = 0; a < nacc; a++)
                is[t][a] = _mm512_setzero_si512();
        const uint8_t *wg = wb + g * steps * STEP_BYTES;
        size_t c0 = g * gs;
        prefetch_group(m, bits, wg, steps, pi0 + (g + params_ahead) * QUANT_PACK_ROWS, psz);
        for (size_t s0 = 0; s0 < steps; s0 += (size_t)su) {
#pragma GCC unroll 4
            for (int u = 0; u < su; u++) {
                size_t s = s0 + (size_t)u;
                __m512i raw = _mm512_loadu_si512((const void *)(wg + s * STEP_BYTES));
                if (bits == 4) {
                    __m512i lo = _mm512_and_si512(raw, m4);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
                    int a0 = (2 * u) % nacc, a1 = (2 * u + 1) % nacc;
#pragma GCC unroll 8
                    for (int t = 0; t < nt; t++) {
                        is[t][a0] = dpbusd_bcast(is[t][a0], lo, xq[t] + c0 + 8 * s);
                        is[t][a1] = dpbusd_bcast(is[t][a1], hi, xq[t] + c0 + 8 * s + 4);
                    }
                } else {
#pragma GCC unroll 8
                    for (int t = 0; t < nt; t++)
                        is[t][u] = dpbusd_bcast(is[t][u], raw, xq[t] + c0 + 4 * s);
                }
            }
        }
        size_t pi = pi0 + g * QUANT_PACK_ROWS;
        __m512 sv = load16(m->scales, m->param_dtype, pi);
        __m512 bv = load16(m->biases, m->param_dtype, pi);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
#pragma GCC unroll 4
            for (int a = 1; a < nacc; a++)
                is[t][0] = _mm512_add_epi32(is[t][0], is[t][a]);
            __m512 f = _mm512_mul_ps(sv, _mm512_set1_ps(xd[t][g]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t][0]), f, acc[t]);
            acc[t] = _mm512_fmadd_ps(bv, _mm512_set1_ps(xs[t][g]), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        out[t] = acc[t];
}

#define BUNDLE_CASES(bits)                                                                         \
    switch (nt) {                                                                                  \
    case 8: bundle_dots(m, bits, wb, pi0, x, 8, acc); break;                                       \
    case 7: bundle_dots(m, bits, wb, pi0, x, 7, acc); break;                                       \
    case 6: bundle_dots(m, bits, wb, pi0, x, 6, acc); break;                                       \
    case 5: bundle_dots(m, bits, wb, pi0, x, 5, acc); break;                                       \
    case 4: bundle_dots(m, bits, wb, pi0, x, 4, acc); break;                                       \
    case 3: bundle_dots(m, bits, wb, pi0, x, 3, acc); break;                                       \
    case 2: bundle_dots(m, bits, wb, pi0, x, 2, acc); break;                                       \
    default: bundle_dots(m, bits, wb, pi0, x, 1, acc); break;                                      \
    }

/* bundle_dots with bits and nt constants */
TGT_AVX512 static void bundle_dispatch(const struct quant_matrix *m, const uint8_t *wb, size_t pi0,
                                       const struct x8_block *x, int nt, __m512 *acc)
{
    if (m->bits == 4)
        BUNDLE_CASES(4)
    else
        BUNDLE_CASES(8)
}

/*
 * AVX2 without VNNI.  vpmaddubsw multiplies unsigned code bytes by signed
 * activation bytes and adds neighbouring products into 16-bit lanes;
 * vpmaddwd by 1 then adds neighbouring 16-bit lanes into the 32-bit lane of
 * a row: together vpdpbusd's sum of 4 codes.  The 16-bit step would
 * saturate on 8-bit codes (2 x 255 x 128 > 32767), so 8-bit codes are split
 * into nibbles, code = 16 hi + lo, each multiplied by the activations on
 * its own and widened with a weight of 16 or 1.  A 16-bit lane then adds
 * pairs of products of at most 15 x 128 each, and up to 8 of those pairs
 * are summed in 16 bits before widening (8 x 3840 = 30720 < 32767): every
 * integer sum is exact, so the result equals quant_packed_dot_ref bit for
 * bit like the AVX-512 kernel's.  A bundle's 16 rows are two 8-row halves
 * (bytes 0-31 and 32-63 of each step), done one after the other per group.
 */
#define AVX2_TOKENS 4 /* tokens per pass over a bundle (16 vector registers) */
#define AVX2_SPAN 8   /* nibble products pairs a 16-bit lane may add up exactly */

/* 4 activation bytes at p, in every 32-bit lane */
TGT_AVX2 INLINE __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/*
 * Exact integer sums of one group's codes (at wg, this half's 32 bytes of
 * each step) with nt tokens' activations (xq[t] at the group's first
 * column): is[t] lane j = row j's sum.  bits and nt are constants.
 */
TGT_AVX2 INLINE void half_group_sums(int bits, const uint8_t *wg, size_t steps,
                                     const int8_t *const *xq, int nt, __m256i *is)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const __m256i sixteens = _mm256_set1_epi16(16);
    /* steps whose pairs one 16-bit lane adds up: 4-bit steps put two pairs
     * (low and high nibbles) in it, 8-bit ones one pair per nibble lane */
    const size_t span = bits == 4 ? AVX2_SPAN / 2 : AVX2_SPAN;
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        is[t] = _mm256_setzero_si256();
    /* steps is a multiple of span (group sizes 32, 64, 128) */
    for (size_t s0 = 0; s0 < steps; s0 += span) {
        __m256i lo16[AVX2_TOKENS], hi16[AVX2_TOKENS];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            lo16[t] = hi16[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (size_t s = s0; s < s0 + span; s++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(wg + s * STEP_BYTES));
            __m256i lo = _mm256_and_si256(raw, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (bits == 4) {
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    __m256i a = _mm256_maddubs_epi16(lo, bcast4(xq[t] + 8 * s));
                    __m256i b = _mm256_maddubs_epi16(hi, bcast4(xq[t] + 8 * s + 4));
                    lo16[t] = _mm256_add_epi16(lo16[t], _mm256_add_epi16(a, b));
                }
            } else {
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    __m256i xb = bcast4(xq[t] + 4 * s);
                    lo16[t] = _mm256_add_epi16(lo16[t], _mm256_maddubs_epi16(lo, xb));
                    hi16[t] = _mm256_add_epi16(hi16[t], _mm256_maddubs_epi16(hi, xb));
                }
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(lo16[t], ones));
            if (bits == 8)
                is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(hi16[t], sixteens));
        }
    }
}

/* bundle_dots for AVX2: out[2t + h] gets half h's 8 rows of token t. */
TGT_AVX2 INLINE void bundle_dots_avx2(const struct quant_matrix *m, int bits, const uint8_t *wb,
                                      size_t pi0, const struct x8_block *x, int nt, __m256 *out)
{
    size_t gs = (size_t)m->group_size, groups = m->cols / gs;
    size_t steps = gs / step_codes(bits), psz = dtype_size(m->param_dtype);
    size_t params_ahead = PREFETCH4_BYTES / (steps * STEP_BYTES);
    __m256 acc[2 * AVX2_TOKENS];
#pragma GCC unroll 8
    for (int i = 0; i < 2 * nt; i++)
        acc[i] = _mm256_setzero_ps();
    for (size_t g = 0; g < groups; g++) {
        const uint8_t *wg = wb + g * steps * STEP_BYTES;
        size_t c0 = g * gs, pi = pi0 + g * QUANT_PACK_ROWS;
        prefetch_group(m, bits, wg, steps, pi0 + (g + params_ahead) * QUANT_PACK_ROWS, psz);
        const int8_t *xg[AVX2_TOKENS];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            xg[t] = x->q[t] + c0;
        for (int h = 0; h < 2; h++) {
            __m256i is[AVX2_TOKENS];
            half_group_sums(bits, wg + 32 * (size_t)h, steps, xg, nt, is);
            __m256 sv = load8(m->scales, m->param_dtype, pi + 8 * (size_t)h);
            __m256 bv = load8(m->biases, m->param_dtype, pi + 8 * (size_t)h);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                __m256 f = _mm256_mul_ps(sv, _mm256_set1_ps(x->d[t][g]));
                __m256 *a = &acc[2 * t + h];
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), f, *a);
                *a = _mm256_fmadd_ps(bv, _mm256_set1_ps(x->s[t][g]), *a);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 2 * nt; i++)
        out[i] = acc[i];
}

/* bundle_dots_avx2 with bits and nt constants */
TGT_AVX2 static void bundle_dispatch_avx2(const struct quant_matrix *m, const uint8_t *wb,
                                          size_t pi0, const struct x8_block *x, int nt, __m256 *acc)
{
#define AVX2_CASES(bits)                                                                           \
    switch (nt) {                                                                                  \
    case 4: bundle_dots_avx2(m, bits, wb, pi0, x, 4, acc); break;                                  \
    case 3: bundle_dots_avx2(m, bits, wb, pi0, x, 3, acc); break;                                  \
    case 2: bundle_dots_avx2(m, bits, wb, pi0, x, 2, acc); break;                                  \
    default: bundle_dots_avx2(m, bits, wb, pi0, x, 1, acc); break;                                 \
    }
    if (m->bits == 4)
        AVX2_CASES(4)
    else
        AVX2_CASES(8)
#undef AVX2_CASES
}

/* Token t's pointers into the activations, for tokens t .. t+nt-1. */
static void x8_block_fill(struct x8_block *x, const int8_t *xq, const float *xd, const float *xsum,
                          size_t cols, size_t groups, size_t t, int nt)
{
    for (int k = 0; k < nt; k++) {
        x->q[k] = xq + (t + (size_t)k) * cols;
        x->d[k] = xd + (t + (size_t)k) * groups;
        x->s[k] = xsum + (t + (size_t)k) * groups;
    }
}

/* bundles [b0, b1) for tokens [t0, t1), AVX2_TOKENS tokens per pass */
TGT_AVX2 static void bundles_avx2(const struct quant_matrix *m, const int8_t *xq, const float *xd,
                                  const float *xsum, size_t t0, size_t t1, size_t b0, size_t b1,
                                  float *y)
{
    size_t cols = m->cols, groups = cols / (size_t)m->group_size;
    size_t bundle_bytes = QUANT_PACK_ROWS * row_bytes(m);
    for (size_t b = b0; b < b1; b++) {
        const uint8_t *wb = (const uint8_t *)m->q + b * bundle_bytes;
        for (size_t t = t0; t < t1; t += AVX2_TOKENS) {
            int nt = t1 - t >= AVX2_TOKENS ? AVX2_TOKENS : (int)(t1 - t);
            struct x8_block x;
            x8_block_fill(&x, xq, xd, xsum, cols, groups, t, nt);
            __m256 acc[2 * AVX2_TOKENS];
            bundle_dispatch_avx2(m, wb, b * groups * QUANT_PACK_ROWS, &x, nt, acc);
            for (int k = 0; k < nt; k++)
                for (int h = 0; h < 2; h++)
                    _mm256_storeu_ps(y + (t + (size_t)k) * m->rows + b * QUANT_PACK_ROWS + 8 * h,
                                     acc[2 * k + h]);
        }
    }
}

/* bundles [b0, b1) for tokens [t0, t1), 8 tokens per pass over a bundle */
TGT_AVX512 static void bundles_avx512(const struct quant_matrix *m, const int8_t *xq,
                                      const float *xd, const float *xsum, size_t t0, size_t t1,
                                      size_t b0, size_t b1, float *y)
{
    size_t cols = m->cols, groups = cols / (size_t)m->group_size;
    size_t bundle_bytes = QUANT_PACK_ROWS * row_bytes(m);
    for (size_t b = b0; b < b1; b++) {
        const uint8_t *wb = (const uint8_t *)m->q + b * bundle_bytes;
        for (size_t t = t0; t < t1; t += 8) {
            int nt = t1 - t >= 8 ? 8 : (int)(t1 - t);
            struct x8_block x;
            x8_block_fill(&x, xq, xd, xsum, cols, groups, t, nt);
            __m512 acc[8];
            bundle_dispatch(m, wb, b * groups * QUANT_PACK_ROWS, &x, nt, acc);
            for (int k = 0; k < nt; k++)
                _mm512_storeu_ps(y + (t + (size_t)k) * m->rows + b * QUANT_PACK_ROWS, acc[k]);
        }
    }
}
#endif

/*
 * Tokens from which the AMX kernel takes over from the AVX-512 one.  Hot in
 * the caches (a 2048 x 768 matrix, 1 thread) it is 1.2x faster at 8 tokens
 * and 1.5-1.6x from 12.  In a model's decode step (best of 16 steps, 64-token
 * contexts), 4 bits, whose codes it must unpack first: 8 sequences 12 %
 * slower (1B shape) or the same (110M), 12 sequences 8-12 % faster; 8 bits,
 * loaded as they are: 8 sequences of the 1B shape about 4 % faster.
 */
static size_t amx_min_tokens(int bits)
{
    return bits == 4 ? 12 : 8;
}

void quant_packed_rows(const struct quant_matrix *m, const int8_t *xq, const float *xd,
                       const float *xsum, size_t t0, size_t t1, size_t r0, size_t r1, float *y,
                       enum kernel_isa isa)
{
    size_t cols = m->cols, groups = cols / (size_t)m->group_size;
    /* whole bundles inside [r0, r1) */
    size_t b0 = (r0 + QUANT_PACK_ROWS - 1) / QUANT_PACK_ROWS;
    size_t b1 = r1 < m->rows / QUANT_PACK_ROWS * QUANT_PACK_ROWS ? r1 / QUANT_PACK_ROWS
                                                                 : m->rows / QUANT_PACK_ROWS;
    if (b1 < b0)
        b1 = b0;
    size_t fast0 = r0, fast1 = r0;
#ifdef KERNELS_X86
    if (isa >= KERNEL_ISA_AVX2 && b0 < b1) {
        if (isa >= KERNEL_ISA_AMX && t1 - t0 >= amx_min_tokens(m->bits) &&
            groups <= QUANT_PACKED_AMX_MAX_GROUPS)
            quant_packed_bundles_amx(m, xq, xd, xsum, t0, t1, b0, b1, y);
        else if (isa >= KERNEL_ISA_AVX512)
            bundles_avx512(m, xq, xd, xsum, t0, t1, b0, b1, y);
        else
            bundles_avx2(m, xq, xd, xsum, t0, t1, b0, b1, y);
        fast0 = b0 * QUANT_PACK_ROWS;
        fast1 = b1 * QUANT_PACK_ROWS;
    }
#else
    (void)isa;
#endif
    for (size_t r = r0; r < r1; r++) {
        if (r >= fast0 && r < fast1)
            continue;
        for (size_t t = t0; t < t1; t++)
            y[t * m->rows + r] =
                quant_packed_dot_ref(m, r, xq + t * cols, xd + t * groups, xsum + t * groups);
    }
}
