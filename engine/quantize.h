/*
 * quantize.h - MLX affine quantization: float weights -> packed codes plus
 * per-group f16 scales and biases, bit for bit what MLX's CPU quantize
 * kernel (mlx/backend/cpu/quantized.cpp) produces for float16 input.
 *
 * The layout is the one quant.h reads back (continuous LSB-first bit stream
 * per row, groups along the input dimension, w = scale * q + bias).  To
 * reproduce `mlx_lm.convert -q` exactly, pass weights that are already
 * float16 values (mlx-lm casts the model to float16 first): the group
 * min/max and the rounding then see the same numbers MLX saw.
 *
 * Thread-safe: pure functions; the caller owns every buffer.
 */
#ifndef ENGINE_QUANTIZE_H
#define ENGINE_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/*
 * Quantizes the row-major [rows, cols] matrix w.
 *   q       rows * cols*bits/32 uint32 words (the X.weight tensor)
 *   scales  rows * cols/group_size f16 bit patterns (X.scales)
 *   biases  same shape as scales (X.biases)
 * bits 2/3/4/5/6/8, group_size 32/64/128, cols a multiple of group_size.
 * Returns ST_OK, or ST_ERR_UNSUPPORTED for bits/group_size, ST_ERR_INVALID
 * when cols is not a multiple of group_size or w holds a non-finite value
 * (nothing useful can be stored for it); on error the outputs are partial.
 */
enum status quantize_affine(const float *w, size_t rows, size_t cols, int bits, int group_size,
                            uint32_t *q, uint16_t *scales, uint16_t *biases, char *err,
                            size_t errlen);

#endif
