/*
 * quantize.c - MLX affine quantization (see quantize.h).
 *
 * Every float operation below is done in single precision and in the same
 * order as MLX's CPU kernel, because the goal is byte-identical output: a
 * reciprocal multiply instead of the division, or a double intermediate,
 * would move some codes by one.
 */
#include "quantize.h"

#include <math.h>
#include <string.h>

#include "quant.h"
#include "tensor.h"

/* MLX's floor for the step size of a constant group. */
#define QUANTIZE_EPS 1e-7f

/* std::max(a, b): keeps `a` unless a < b, which decides the sign of a zero. */
static inline float max_like_std(float a, float b)
{
    return a < b ? b : a;
}

/*
 * One group: picks the scale's sign so that the larger-magnitude edge of the
 * range maps exactly onto a code (that edge becomes the bias), then rounds
 * every element to its nearest code.  Codes are OR-ed into `row` (zeroed by
 * the caller) starting at element index `first`.
 */
static void quantize_group(const float *w, int group_size, int bits, uint8_t *row, size_t first,
                           uint16_t *scale_out, uint16_t *bias_out)
{
    float n_bins = (float)((1 << bits) - 1);
    float w_min = INFINITY, w_max = -INFINITY;
    for (int j = 0; j < group_size; j++) {
        w_max = max_like_std(w_max, w[j]);
        w_min = w[j] < w_min ? w[j] : w_min;
    }
    int neg_edge = fabsf(w_min) > fabsf(w_max);
    float scale = max_like_std((w_max - w_min) / n_bins, QUANTIZE_EPS);
    if (!neg_edge)
        scale = -scale;
    float edge = neg_edge ? w_min : w_max;
    float q0 = rintf(edge / scale);
    float bias = 0.0f;
    if (q0 != 0.0f) {
        scale = edge / q0;
        bias = edge;
    }
    for (int j = 0; j < group_size; j++) {
        float v = rintf((w[j] - bias) / scale);
        v = max_like_std(v, 0.0f);
        v = n_bins < v ? n_bins : v;
        uint32_t code = (uint32_t)v;
        size_t bit = (first + (size_t)j) * (size_t)bits;
        uint32_t shifted = code << (bit & 7);
        row[bit >> 3] |= (uint8_t)shifted;
        if ((bit & 7) + (size_t)bits > 8)
            row[(bit >> 3) + 1] |= (uint8_t)(shifted >> 8);
    }
    *scale_out = f32_to_f16(scale);
    *bias_out = f32_to_f16(bias);
}

enum status quantize_affine(const float *w, size_t rows, size_t cols, int bits, int group_size,
                            uint32_t *q, uint16_t *scales, uint16_t *biases, char *err,
                            size_t errlen)
{
    if (!quant_params_valid(bits, group_size))
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "unsupported quantization: bits %d, group size %d (bits 2/3/4/5/6/8, "
                           "group 32/64/128)",
                           bits, group_size);
    if (cols == 0 || cols % (size_t)group_size != 0)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "%zu columns is not a positive multiple of the group size %d", cols,
                           group_size);
    size_t words = quant_row_words(cols, bits);
    size_t groups = cols / (size_t)group_size;
    for (size_t r = 0; r < rows; r++) {
        const float *wr = w + r * cols;
        for (size_t c = 0; c < cols; c++) {
            if (!isfinite(wr[c]))
                return status_fail(err, errlen, ST_ERR_INVALID,
                                   "non-finite weight at row %zu, column %zu", r, c);
        }
        uint8_t *row = (uint8_t *)(q + r * words);
        memset(row, 0, words * sizeof(uint32_t));
        for (size_t g = 0; g < groups; g++)
            quantize_group(wr + g * (size_t)group_size, group_size, bits, row,
                           g * (size_t)group_size, &scales[r * groups + g],
                           &biases[r * groups + g]);
    }
    return ST_OK;
}
