/*
 * quant_packed_simd.h - what the packed matmul's SIMD kernels share
 * (quant_packed.c's AVX2 and AVX-512 ones, quant_packed_amx.c's): the
 * bundle step and the software prefetch of a group's codes and parameters
 * (x86 only).
 */
#ifndef ENGINE_QUANT_PACKED_SIMD_H
#define ENGINE_QUANT_PACKED_SIMD_H

#include "kernels_x86.h"
#include "quant_packed.h"

#define STEP_BYTES 64 /* a bundle step: 4 bytes of each of the 16 rows */

/* codes of one row per step */
static inline size_t step_codes(int bits)
{
    return bits == 4 ? 8 : 4;
}

#ifdef KERNELS_X86

/*
 * Software prefetch, how far ahead of the group being read the kernels ask
 * for a bundle's codes (one stream) and, for 4 bits, its scales and biases
 * (two more).  Measured on this machine's decode-sized matrices (a 1B
 * model's 16 layers, past the caches): 8 bits, codes 1 KB ahead into L1
 * took a matvec from about 40 to 42-51 GB/s of the ~50 available (2
 * threads); 4 bits, which spends more work per byte and so has fewer loads
 * in flight, went from 23 to 27 GB/s on 1 thread and from 36-39 to 40-49
 * on 2 when all three streams are asked for 4 KB ahead into L2 (the same
 * for 8 bits measured no better).
 */
#define PREFETCH8_BYTES 1024
#define PREFETCH4_BYTES 4096

/* Asks for the scales and biases at index pi (of psz bytes each) into L2
 * (past the end of the matrix it asks for nothing that faults: prefetches
 * never do). */
TGT_AVX2 INLINE void prefetch_params(const struct quant_matrix *m, size_t pi, size_t psz)
{
    _mm_prefetch((const char *)m->scales + pi * psz, _MM_HINT_T1);
    _mm_prefetch((const char *)m->biases + pi * psz, _MM_HINT_T1);
}

/* The prefetches for the group whose codes start at wg: its codes as far
 * ahead as the width's distance and, for 4 bits, the scales and biases at
 * index pi_ahead. */
TGT_AVX2 INLINE void prefetch_group(const struct quant_matrix *m, int bits, const uint8_t *wg,
                                    size_t steps, size_t pi_ahead, size_t psz)
{
    if (bits == 4) {
        for (size_t s = 0; s < steps; s++)
            _mm_prefetch((const char *)(wg + PREFETCH4_BYTES + s * STEP_BYTES), _MM_HINT_T1);
        prefetch_params(m, pi_ahead, psz);
    } else {
        for (size_t s = 0; s < steps; s++)
            _mm_prefetch((const char *)(wg + PREFETCH8_BYTES + s * STEP_BYTES), _MM_HINT_T0);
    }
}

#endif

#endif
