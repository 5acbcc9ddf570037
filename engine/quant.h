/*
 * quant.h - MLX affine quantization: dequantization and scalar reference
 * kernels on quantized rows.
 *
 * Layout (what mlx_lm.convert -q writes): a [rows, cols] Linear weight becomes
 *   X.weight  uint32 [rows, cols*bits/32]  one continuous LSB-first bit stream
 *             per row over the row's little-endian bytes: element k occupies
 *             bits [k*bits, (k+1)*bits) of the row
 *   X.scales  F16/BF16/F32 [rows, cols/group_size]
 *   X.biases  same dtype and shape as scales
 * and w[r][c] = scales[r][c/group] * q[r][c] + biases[r][c/group].
 * bits is 2, 3, 4, 5, 6 or 8; group_size 32, 64 or 128; scales may be
 * negative.  cols must be a multiple of group_size (hence of 32, so every row
 * is a whole number of uint32 words).
 *
 * A `struct quant_matrix` only points at memory owned by the caller (the model
 * or a test); nothing here allocates.  Thread-safe: pure functions.
 */
#ifndef ENGINE_QUANT_H
#define ENGINE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

struct quant_matrix {
    size_t rows, cols;      /* logical (dequantized) shape: (rows, cols) */
    int bits;               /* 2, 3, 4, 5, 6 or 8 */
    int group_size;         /* 32, 64 or 128 */
    enum dtype param_dtype; /* dtype of scales and biases: F16, BF16 or F32 */
    const uint32_t *q;      /* (rows, cols*bits/32) packed codes */
    const void *scales;     /* (rows, cols/group_size) */
    const void *biases;     /* (rows, cols/group_size) */
    bool packed;            /* codes, scales and biases in quant_packed.h's 16-row bundles
                               (quant_pack); every function here reads both layouts */
};

/* True when bits and group_size are a combination this module supports. */
bool quant_params_valid(int bits, int group_size);

/*
 * Checks that m's parameters are supported and that cols is a multiple of
 * group_size.  Returns ST_OK or ST_ERR_UNSUPPORTED / ST_ERR_INVALID with a
 * message.
 */
enum status quant_matrix_check(const struct quant_matrix *m, char *err, size_t errlen);

/* uint32 words per packed row: cols*bits/32. */
size_t quant_row_words(size_t cols, int bits);

/* Index of (row, group g) in m's scales and biases, in either layout. */
size_t quant_param_index(const struct quant_matrix *m, size_t row, size_t g);

/* Code k (0..cols-1) of one row-major row (the row's first word). */
static inline uint32_t quant_code(const uint32_t *row, size_t k, int bits)
{
    size_t bit = k * (size_t)bits;
    const uint8_t *b = (const uint8_t *)row;
    uint32_t v = b[bit >> 3];
    unsigned shift = (unsigned)(bit & 7);
    if (shift + (unsigned)bits > 8)
        v |= (uint32_t)b[(bit >> 3) + 1] << 8;
    return (v >> shift) & ((1u << bits) - 1u);
}

/* Dequantizes row `row` into out (cols floats). */
void quant_dequantize_row(const struct quant_matrix *m, size_t row, float *out);

/*
 * Writes the codes of row `row` as floats (0 .. 2^bits-1, not dequantized)
 * into out (cols floats).  A matmul over several input rows unpacks a weight
 * row once and applies each group's scale and bias per input.
 */
void quant_unpack_row(const struct quant_matrix *m, size_t row, float *out);

/*
 * The width the integer-dot kernels (quant_packed.h) read codes of `bits`
 * at: 4 for 2-4 bits, 8 for 5-8.  A model widens its 2/3/5/6-bit matrices
 * to it at load (quant_widen), trading memory for their speed.
 */
int quant_kernel_bits(int bits);

/*
 * Writes m's codes (row-major, not packed) re-encoded at `bits` (4 or 8,
 * at least m->bits) into out (rows * quant_row_words(cols, bits) words):
 * every element keeps its integer code, so with m's scales and biases the
 * matrix dequantizes to the same values.  out may be m->q itself, with room
 * for the wider codes (they are written from the end).
 */
void quant_widen(const struct quant_matrix *m, int bits, uint32_t *out);

/* Dequantizes the whole matrix into out (rows*cols floats, row-major).  For
 * tests and tools; kernels never do this. */
void quant_dequantize(const struct quant_matrix *m, float *out);

/*
 * Per-group sums of x: xsum[g] = sum of x[g*group_size .. +group_size).
 * xsum has cols/group_size entries.  Computed once per input vector and
 * shared by every row of a matvec.
 */
void quant_group_sums(const float *x, size_t cols, int group_size, float *xsum);

/*
 * dot(dequantized row `row`, x) without materialising the row:
 * sum over groups g of scale_g * dot(q_g, x_g) + bias_g * xsum[g].
 * xsum comes from quant_group_sums(x).  Scalar reference.  m must have passed
 * quant_matrix_check().  Uses dot_f32_ref's summation order per group, so
 * it equals the same sum over quant_unpack_row() codes bit for bit.
 */
float quant_dot_row_ref(const struct quant_matrix *m, size_t row, const float *x,
                        const float *xsum);

/*
 * y = W x for the whole matrix: y has rows entries, x has cols.  xsum is
 * caller scratch of cols/group_size floats (filled here).  Scalar reference.
 */
void quant_matvec_ref(const struct quant_matrix *m, const float *x, float *xsum, float *y);

/*
 * Integer-dot path: the activations are quantized to int8 per group (the
 * weight's group_size), xd[g] = max|x_g| / 127 and xq = round(x / xd[g]), so
 * dot(w, x) ~ sum_g scale_g * xd[g] * sum(q_g * xq_g) + bias_g * xsum[g]
 * with exact integer inner sums.  The error against the float path is that
 * of int8 activations (about 0.4% of a group's largest |x| per element).
 *
 * quant_x8_quantize writes xq (cols bytes), xd and xsum (cols/group_size
 * each; xsum holds the float sums of x, element k added into partial sum
 * k mod QUANT_X8_SUM_LANES, the partials then folded by quant_x8_sum_lanes:
 * the order a 16-lane vector sums in, so the SIMD version in
 * kernel_x8_quantize gives the same bits).  With pair_order the bytes are
 * laid out for 4-bit codes, whose low nibbles hold the even elements: each
 * 128-element chunk becomes its 64 even elements then its 64 odd ones, and
 * what is left likewise in a 64- then a 32-element chunk.  Otherwise in
 * order.
 */
void quant_x8_quantize(const float *x, size_t cols, int group_size, bool pair_order, int8_t *xq,
                       float *xd, float *xsum);

/* Partial sums per group in quant_x8_quantize's xsum. */
#define QUANT_X8_SUM_LANES 16

/* Folds QUANT_X8_SUM_LANES partial sums in halves (part[i] += part[i + w]
 * for w = 8, 4, 2, 1) and returns the total; part is clobbered. */
float quant_x8_sum_lanes(float *part);

/* The byte index of element k of x in quant_x8_quantize's layout. */
size_t quant_x8_index(size_t k, size_t cols, bool pair_order);

/*
 * Scalar reference of the integer-dot path for row `row`: xq, xd, xsum from
 * quant_x8_quantize(..., pair_order = false).  Any bits.
 */
float quant_dot_row_x8_ref(const struct quant_matrix *m, size_t row, const int8_t *xq,
                           const float *xd, const float *xsum);

#endif
