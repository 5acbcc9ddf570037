/*
 * quant_packed.h - the row-interleaved layout of 4- and 8-bit MLX matrices
 * and the integer-dot matmul over it.
 *
 * MLX stores a quantized matrix row by row (quant.h).  A dot product over one
 * such row ends in a horizontal sum and needs each group's scale spread over
 * the lanes that hold its codes, per row and per token: more work per weight
 * byte than memory takes to deliver it.  Interleaving rows in bundles of 16
 * turns the lanes of a vector into 16 rows instead: one vpdpbusd multiplies
 * 4 consecutive codes of 16 rows by the same 4 activation bytes, a group's
 * integer sums are one vector, its scales and biases another, and the result
 * is 16 finished dots; no lane shuffles, no horizontal sums.
 *
 * Layout (quant_matrix.packed): rows 16b .. 16b+15 form bundle b and keep
 * their bytes (codes, and scales and biases) in place, permuted within the
 * bundle; the last rows % 16 rows stay row-major.  Within a bundle the codes
 * come in 64-byte steps, 4 bytes per row (row j at bytes 4j .. 4j+3):
 *   8-bit: step s holds codes 4s .. 4s+3 of every row, byte k = code 4s+k;
 *   4-bit: step s holds codes 8s .. 8s+7: byte k's low nibble is code 8s+k,
 *          its high nibble code 8s+4+k.
 * Scales and biases: value (row 16b+j, group g) at index (b*groups + g)*16 + j.
 * Activations stay in natural order (quant_x8_quantize with pair_order false).
 *
 * Every (row, token) dot is, per group g in order,
 *   acc = fma((float)isum_g, scale_g * xd[g], acc);  acc = fma(bias_g, xsum[g], acc)
 * with isum_g the exact integer dot of the group's codes and int8
 * activations, whichever path computes it (the SIMD kernel and
 * quant_packed_dot_ref are equal bit for bit), so batching and threading
 * never change a result.
 *
 * Thread-safety: quant_pack writes the matrix (before it is shared); the
 * rest are pure functions.
 */
#ifndef ENGINE_QUANT_PACKED_H
#define ENGINE_QUANT_PACKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "quant.h"

#define QUANT_PACK_ROWS 16

/* True when m (row-major) can be packed: 4 or 8 bits, at least 16 rows. */
bool quant_packable(const struct quant_matrix *m);

/*
 * Rewrites m's codes, scales and biases in place into the packed layout and
 * sets m->packed.  The memory m points at must be the caller's own and
 * writable.  Returns ST_OK, ST_ERR_INVALID when !quant_packable(m) or m is
 * packed already, ST_ERR_NOMEM when the bundle-sized scratch cannot be had.
 */
enum status quant_pack(struct quant_matrix *m, char *err, size_t errlen);

/* Code k of row `row` of a packed matrix. */
uint32_t quant_packed_code(const struct quant_matrix *m, size_t row, size_t k);

/* Index of (row, group) in a packed matrix's scales and biases. */
size_t quant_packed_param_index(const struct quant_matrix *m, size_t row, size_t g);

/*
 * Scalar reference of the packed kernel for one row: xq, xd, xsum as
 * quant_x8_quantize(..., pair_order = false) writes them.
 */
float quant_packed_dot_ref(const struct quant_matrix *m, size_t row, const int8_t *xq,
                           const float *xd, const float *xsum);

/*
 * y[t * rows + r] for rows [r0, r1) and tokens [t0, t1): token t's
 * activations at xq + t * cols, xd + t * groups, xsum + t * groups.  isa:
 * the instructions the kernel may use (the caller checked the CPU: at
 * least KERNEL_ISA_AVX2 for a SIMD kernel); below that, and for rows
 * outside whole bundles, quant_packed_dot_ref.  Every path gives the same
 * bits.
 */
void quant_packed_rows(const struct quant_matrix *m, const int8_t *xq, const float *xd,
                       const float *xsum, size_t t0, size_t t1, size_t r0, size_t r1, float *y,
                       enum kernel_isa isa);

#endif
