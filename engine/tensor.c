/*
 * tensor.c - dtype tables and float -> f16 rounding.
 */
#include "tensor.h"

static const struct {
    const char *name;
    size_t size;
} dtype_table[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 4},   [DTYPE_F16] = {"F16", 2},         [DTYPE_BF16] = {"BF16", 2},
    [DTYPE_F64] = {"F64", 8},   [DTYPE_I8] = {"I8", 1},           [DTYPE_U8] = {"U8", 1},
    [DTYPE_I16] = {"I16", 2},   [DTYPE_U16] = {"U16", 2},         [DTYPE_I32] = {"I32", 4},
    [DTYPE_U32] = {"U32", 4},   [DTYPE_I64] = {"I64", 8},         [DTYPE_U64] = {"U64", 8},
    [DTYPE_BOOL] = {"BOOL", 1}, [DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};

size_t dtype_size(enum dtype dt)
{
    if ((unsigned)dt >= DTYPE_COUNT)
        return 0;
    return dtype_table[dt].size;
}

const char *dtype_name(enum dtype dt)
{
    if ((unsigned)dt >= DTYPE_COUNT)
        return "?";
    return dtype_table[dt].name;
}

int dtype_from_name(const char *name, size_t len, enum dtype *out)
{
    for (int i = 0; i < DTYPE_COUNT; i++) {
        const char *n = dtype_table[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            *out = (enum dtype)i;
            return 0;
        }
    }
    return -1;
}

uint16_t f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return sign | 0x7e00;
    if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return sign | 0x7c00;
    if (abs < 0x38800000u) {
        /* result is subnormal (or zero): scale to units of 2^-24 and round half to even */
        if (abs < 0x33000000u)
            return sign;
        uint32_t man = (abs & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(abs >> 23); /* 14 .. 24 */
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return sign | (uint16_t)q;
    }
    uint32_t r = abs + 0xfffu + ((abs >> 13) & 1);
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}
