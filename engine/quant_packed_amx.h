/*
 * quant_packed_amx.h - the packed integer-dot matmul (quant_packed.h) on
 * AMX tiles (x86 with AMX-TILE and AMX-INT8 only; quant_packed_rows calls it
 * at KERNEL_ISA_AMX for enough tokens).
 */
#ifndef ENGINE_QUANT_PACKED_AMX_H
#define ENGINE_QUANT_PACKED_AMX_H

#include <stddef.h>
#include <stdint.h>

#include "quant_packed.h"

/* Groups per row (columns / group size) the AMX kernel takes: its
 * per-token scales and sums are copied onto the stack (32 KB). */
#define QUANT_PACKED_AMX_MAX_GROUPS 256

/*
 * Whole bundles [b0, b1) of the packed matrix m for tokens [t0, t1), as
 * quant_packed_rows writes them (same arguments), equal to
 * quant_packed_dot_ref bit for bit.  m has at most QUANT_PACKED_AMX_MAX_GROUPS
 * groups per row.  The caller checked the CPU and the
 * process's permission to use the tiles (kernel_isa_get() >= KERNEL_ISA_AMX).
 */
void quant_packed_bundles_amx(const struct quant_matrix *m, const int8_t *xq, const float *xd,
                              const float *xsum, size_t t0, size_t t1, size_t b0, size_t b1,
                              float *y);

#endif
