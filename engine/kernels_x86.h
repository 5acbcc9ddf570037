/*
 * kernels_x86.h - what the SIMD kernel files share on x86: the target
 * attributes that let one file hold AVX2 and AVX-512 functions picked at run
 * time, and small vector helpers.  Defines KERNELS_X86 where it applies;
 * elsewhere it defines nothing and the kernels use their scalar paths.
 */
#ifndef ENGINE_KERNELS_X86_H
#define ENGINE_KERNELS_X86_H

#if defined(__x86_64__) || defined(__i386__)
#define KERNELS_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define TGT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TGT_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define TGT_AVX512BF16                                                                             \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))
#endif

#ifdef KERNELS_X86
/* sum of the 8 lanes */
TGT_AVX2 INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

#endif
