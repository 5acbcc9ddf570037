/*
 * quant.c - MLX affine dequantization and scalar reference kernels.
 *
 * Codes are unpacked to floats a group or a row at a time: 2, 4 and 8 bits
 * byte by byte (loops compilers vectorize), 3, 5 and 6 bits, whose codes
 * straddle bytes, through a 64-bit bit buffer.  Dots never dequantize:
 * dot(w, x) = sum_g scale_g * dot_f32_ref(q_g, x_g) + bias_g * sum(x_g).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "quant_packed.h"

bool quant_params_valid(int bits, int group_size)
{
    bool bits_ok = bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
    bool group_ok = group_size == 32 || group_size == 64 || group_size == 128;
    return bits_ok && group_ok;
}

enum status quant_matrix_check(const struct quant_matrix *m, char *err, size_t errlen)
{
    if (!quant_params_valid(m->bits, m->group_size))
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "unsupported quantization: %d bits, group size %d (need bits "
                           "2/3/4/5/6/8, group 32/64/128)",
                           m->bits, m->group_size);
    if (m->param_dtype != DTYPE_F16 && m->param_dtype != DTYPE_BF16 && m->param_dtype != DTYPE_F32)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "quantization scales/biases must be F16, BF16 or F32, not %s",
                           dtype_name(m->param_dtype));
    if (m->cols == 0 || m->cols % (size_t)m->group_size != 0)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "quantized matrix has %zu columns, not a multiple of group size %d",
                           m->cols, m->group_size);
    return ST_OK;
}

size_t quant_row_words(size_t cols, int bits)
{
    return cols * (size_t)bits / 32;
}

/* Streams the codes of one row in order. */
struct bitreader {
    const uint8_t *p;
    uint64_t buf;
    unsigned nbits;
    uint32_t mask;
    unsigned bits;
};

static inline void bitreader_init(struct bitreader *br, const void *bytes, int bits)
{
    br->p = bytes;
    br->buf = 0;
    br->nbits = 0;
    br->bits = (unsigned)bits;
    br->mask = (1u << bits) - 1u;
}

static inline uint32_t bitreader_next(struct bitreader *br)
{
    while (br->nbits < br->bits) {
        br->buf |= (uint64_t)*br->p++ << br->nbits;
        br->nbits += 8;
    }
    uint32_t v = (uint32_t)br->buf & br->mask;
    br->buf >>= br->bits;
    br->nbits -= br->bits;
    return v;
}

size_t quant_param_index(const struct quant_matrix *m, size_t row, size_t g)
{
    if (m->packed)
        return quant_packed_param_index(m, row, g);
    return row * (m->cols / (size_t)m->group_size) + g;
}

void quant_dequantize_row(const struct quant_matrix *m, size_t row, float *out)
{
    size_t ngroups = m->cols / (size_t)m->group_size;
    if (m->packed) {
        for (size_t k = 0; k < m->cols; k++) {
            size_t pi = quant_param_index(m, row, k / (size_t)m->group_size);
            out[k] = dtype_load_f32(m->scales, m->param_dtype, pi) *
                         (float)quant_packed_code(m, row, k) +
                     dtype_load_f32(m->biases, m->param_dtype, pi);
        }
        return;
    }
    const uint32_t *q = m->q + row * quant_row_words(m->cols, m->bits);
    struct bitreader br;
    bitreader_init(&br, q, m->bits);
    for (size_t g = 0; g < ngroups; g++) {
        float s = dtype_load_f32(m->scales, m->param_dtype, row * ngroups + g);
        float b = dtype_load_f32(m->biases, m->param_dtype, row * ngroups + g);
        float *o = out + g * (size_t)m->group_size;
        for (int k = 0; k < m->group_size; k++)
            o[k] = s * (float)bitreader_next(&br) + b;
    }
}

/*
 * Codes k .. k+n-1 of a bit stream starting at byte `p` (k*bits a multiple of
 * 8, as every group start is) as floats.
 */
static void unpack_codes(const uint8_t *p, size_t n, int bits, float *out)
{
    if (bits == 8) {
        for (size_t j = 0; j < n; j++)
            out[j] = (float)p[j];
    } else if (bits == 4) {
        for (size_t j = 0; j < n / 2; j++) {
            out[2 * j] = (float)(p[j] & 0xf);
            out[2 * j + 1] = (float)(p[j] >> 4);
        }
    } else if (bits == 2) {
        for (size_t j = 0; j < n / 4; j++)
            for (int k = 0; k < 4; k++)
                out[4 * j + (size_t)k] = (float)((p[j] >> (2 * k)) & 3);
    } else {
        struct bitreader br;
        bitreader_init(&br, p, bits);
        for (size_t j = 0; j < n; j++)
            out[j] = (float)bitreader_next(&br);
    }
}

int quant_kernel_bits(int bits)
{
    return bits <= 4 ? 4 : 8;
}

/*
 * quant_widen over n codes (a multiple of 8), 8 at a time from the last:
 * ib whole bytes in, 8 bytes (ob 8) or 4 (ob 4: two codes a byte, the even
 * one in the low nibble, as MLX) out.  Output chunk k starts at or after
 * input chunk k and every chunk is read before it is written, so out may
 * be in itself.  Inlined with constant widths, the loops unroll.
 */
static inline __attribute__((always_inline)) void widen_codes(const uint8_t *in, size_t n, int ib,
                                                              int ob, uint8_t *out)
{
    const uint64_t mask = (1u << ib) - 1u;
    for (size_t c = n / 8; c-- > 0;) {
        const uint8_t *p = in + c * (size_t)ib;
        uint64_t v = 0;
        for (int i = 0; i < ib; i++)
            v |= (uint64_t)p[i] << (8 * i);
        uint8_t *o = out + c * (size_t)ob;
        if (ob == 8) {
            for (int j = 0; j < 8; j++)
                o[j] = (uint8_t)(v >> (j * ib) & mask);
        } else {
            for (int j = 0; j < 8; j += 2)
                o[j / 2] = (uint8_t)((v >> (j * ib) & mask) | (v >> ((j + 1) * ib) & mask) << 4);
        }
    }
}

void quant_widen(const struct quant_matrix *m, int bits, uint32_t *out)
{
    /* rows are whole words, so the matrix is one stream of rows * cols codes */
    const uint8_t *in = (const uint8_t *)m->q;
    uint8_t *o = (uint8_t *)out;
    size_t n = m->rows * m->cols;
    switch (m->bits * 16 + bits) {
    case 2 * 16 + 4: widen_codes(in, n, 2, 4, o); break;
    case 3 * 16 + 4: widen_codes(in, n, 3, 4, o); break;
    case 5 * 16 + 8: widen_codes(in, n, 5, 8, o); break;
    case 6 * 16 + 8: widen_codes(in, n, 6, 8, o); break;
    default: widen_codes(in, n, m->bits, bits, o); break;
    }
}

void quant_unpack_row(const struct quant_matrix *m, size_t row, float *out)
{
    if (m->packed) {
        for (size_t k = 0; k < m->cols; k++)
            out[k] = (float)quant_packed_code(m, row, k);
        return;
    }
    const uint32_t *q = m->q + row * quant_row_words(m->cols, m->bits);
    unpack_codes((const uint8_t *)q, m->cols, m->bits, out);
}

void quant_dequantize(const struct quant_matrix *m, float *out)
{
    for (size_t r = 0; r < m->rows; r++)
        quant_dequantize_row(m, r, out + r * m->cols);
}

void quant_group_sums(const float *x, size_t cols, int group_size, float *xsum)
{
    size_t ngroups = cols / (size_t)group_size;
    for (size_t g = 0; g < ngroups; g++) {
        float s = 0.0f;
        for (int k = 0; k < group_size; k++)
            s += x[g * (size_t)group_size + (size_t)k];
        xsum[g] = s;
    }
}

float quant_dot_row_ref(const struct quant_matrix *m, size_t row, const float *x, const float *xsum)
{
    size_t gs = (size_t)m->group_size, ng = m->cols / gs;
    const uint8_t *q = (const uint8_t *)(m->q + row * quant_row_words(m->cols, m->bits));
    size_t gbytes = gs * (size_t)m->bits / 8;
    float codes[128]; /* group_size <= 128 */
    float acc = 0.0f;
    for (size_t g = 0; g < ng; g++) {
        if (m->packed)
            for (size_t k = 0; k < gs; k++)
                codes[k] = (float)quant_packed_code(m, row, g * gs + k);
        else
            unpack_codes(q + g * gbytes, gs, m->bits, codes);
        float s = dtype_load_f32(m->scales, m->param_dtype, quant_param_index(m, row, g));
        float b = dtype_load_f32(m->biases, m->param_dtype, quant_param_index(m, row, g));
        acc += s * dot_f32_ref(codes, x + g * gs, gs) + b * xsum[g];
    }
    return acc;
}

void quant_matvec_ref(const struct quant_matrix *m, const float *x, float *xsum, float *y)
{
    quant_group_sums(x, m->cols, m->group_size, xsum);
    for (size_t r = 0; r < m->rows; r++)
        y[r] = quant_dot_row_ref(m, r, x, xsum);
}

size_t quant_x8_index(size_t k, size_t cols, bool pair_order)
{
    if (!pair_order)
        return k;
    size_t base = k & ~(size_t)127, span = 128;
    if (cols - base < 128) {
        base = k & ~(size_t)63;
        span = cols - base >= 64 ? 64 : 32;
    }
    size_t j = k - base;
    return base + (j & 1) * (span / 2) + j / 2;
}

float quant_x8_sum_lanes(float *part)
{
    for (int w = QUANT_X8_SUM_LANES / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++)
            part[i] += part[i + w];
    return part[0];
}

void quant_x8_quantize(const float *x, size_t cols, int group_size, bool pair_order, int8_t *xq,
                       float *xd, float *xsum)
{
    size_t gs = (size_t)group_size, ng = cols / gs;
    for (size_t g = 0; g < ng; g++) {
        const float *xg = x + g * gs;
        float amax = 0.0f, part[QUANT_X8_SUM_LANES] = {0};
        for (size_t k = 0; k < gs; k++) {
            float a = fabsf(xg[k]);
            amax = a > amax ? a : amax;
            part[k % QUANT_X8_SUM_LANES] += xg[k];
        }
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        xd[g] = amax / 127.0f;
        xsum[g] = quant_x8_sum_lanes(part);
        for (size_t k = 0; k < gs; k++)
            xq[quant_x8_index(g * gs + k, cols, pair_order)] = (int8_t)lrintf(xg[k] * inv);
    }
}

float quant_dot_row_x8_ref(const struct quant_matrix *m, size_t row, const int8_t *xq,
                           const float *xd, const float *xsum)
{
    size_t gs = (size_t)m->group_size, ng = m->cols / gs;
    const uint32_t *q = m->q + row * quant_row_words(m->cols, m->bits);
    float acc = 0.0f;
    for (size_t g = 0; g < ng; g++) {
        int32_t isum = 0;
        for (size_t k = 0; k < gs; k++)
            isum += (int32_t)(m->packed ? quant_packed_code(m, row, g * gs + k)
                                        : quant_code(q, g * gs + k, m->bits)) *
                    xq[g * gs + k];
        float s = dtype_load_f32(m->scales, m->param_dtype, quant_param_index(m, row, g));
        float b = dtype_load_f32(m->biases, m->param_dtype, quant_param_index(m, row, g));
        acc += s * xd[g] * (float)isum + b * xsum[g];
    }
    return acc;
}
