/*
 * tensor.h - element types of stored tensors and the scalar conversions
 * between them.
 *
 * `enum dtype` names what a safetensors file can hold; dtype_size() and
 * dtype_name() describe it, and the inline converters upcast half-precision
 * values to float.  Thread-safe: no state.
 */
#ifndef ENGINE_TENSOR_H
#define ENGINE_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum dtype {
    DTYPE_F32,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_F64,
    DTYPE_I8,
    DTYPE_U8,
    DTYPE_I16,
    DTYPE_U16,
    DTYPE_I32,
    DTYPE_U32,
    DTYPE_I64,
    DTYPE_U64,
    DTYPE_BOOL,
    DTYPE_F8_E4M3,
    DTYPE_F8_E5M2,
    DTYPE_COUNT
};

/* Bytes per element (1..8); 0 for an out-of-range value. */
size_t dtype_size(enum dtype dt);

/* The safetensors spelling ("F32", "BF16", ...); "?" for an out-of-range value. */
const char *dtype_name(enum dtype dt);

/* Parses a safetensors dtype string of `len` bytes; returns 0 and sets *out, or -1 if unknown. */
int dtype_from_name(const char *name, size_t len, enum dtype *out);

/*
 * IEEE binary16 -> float, exact (subnormals, inf and NaN included).  The
 * exponent and mantissa bits are placed where a float keeps them and the
 * result scaled by 2^(127-15); that is exact for normal and subnormal halves
 * alike, so the only special case is inf/NaN.  No branches on the value: the
 * upcast loops vectorize.
 */
static inline float f16_to_f32(uint16_t h)
{
    uint32_t em = h & 0x7fffu;
    uint32_t bits = em << 13;
    float f;
    memcpy(&f, &bits, sizeof(f));
    f *= 0x1p112f;
    uint32_t scaled;
    memcpy(&scaled, &f, sizeof(scaled));
    /* a select by mask rather than a branch keeps the loops vectorizable */
    uint32_t special = (uint32_t) - (int32_t)(em >= 0x7c00u);
    uint32_t r =
        (scaled & ~special) | ((0x7f800000u | bits) & special) | ((uint32_t)(h & 0x8000u) << 16);
    memcpy(&f, &r, sizeof(f));
    return f;
}

/* bfloat16 -> float, exact. */
static inline float bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* float -> bfloat16, round to nearest even (NaN stays NaN). */
static inline uint16_t f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

/* float -> IEEE binary16, round to nearest even, overflow to inf. */
uint16_t f32_to_f16(float f);

/*
 * The dot product every reference kernel uses: eight partial sums (element i
 * goes to sum i % 8), combined pairwise.  One fixed order means a batched and
 * an unbatched path over the same data agree bit for bit, and independent
 * partial sums let compilers vectorize without -ffast-math.
 */
static inline float dot_f32_ref(const float *a, const float *b, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[i + (size_t)k] * b[i + (size_t)k];
    for (size_t k = 0; k < n - i; k++) /* fewer than 8 left */
        acc[k] += a[i + k] * b[i + k];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Element i of a float-valued array stored as F32, F16 or BF16 (other dtypes give 0). */
static inline float dtype_load_f32(const void *p, enum dtype dt, size_t i)
{
    switch (dt) {
    case DTYPE_F32: return ((const float *)p)[i];
    case DTYPE_F16: return f16_to_f32(((const uint16_t *)p)[i]);
    case DTYPE_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    default: return 0.0f;
    }
}

#endif
