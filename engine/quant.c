/*
 * quant.c - MLX affine dequantization and scalar reference kernels.
 *
 * Codes are read through a 64-bit bit buffer refilled a byte at a time, which
 * handles every bit width (including 3, 5 and 6, whose codes straddle bytes)
 * with one loop.  The reference dot product works per group so a row is never
 * materialised: dot(w, x) = sum_g scale_g * dot(q_g, x_g) + bias_g * sum(x_g).
 */
#include "quant.h"

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

static inline void bitreader_init(struct bitreader *br, const uint32_t *row, int bits)
{
    br->p = (const uint8_t *)row;
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

void quant_dequantize_row(const struct quant_matrix *m, size_t row, float *out)
{
    size_t ngroups = m->cols / (size_t)m->group_size;
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

void quant_unpack_row(const struct quant_matrix *m, size_t row, float *out)
{
    size_t words = quant_row_words(m->cols, m->bits);
    const uint32_t *q = m->q + row * words;
    if (m->bits == 4) {
        for (size_t i = 0; i < words; i++)
            for (int k = 0; k < 8; k++)
                out[i * 8 + (size_t)k] = (float)((q[i] >> (4 * k)) & 0xf);
    } else if (m->bits == 8) {
        for (size_t i = 0; i < words; i++)
            for (int k = 0; k < 4; k++)
                out[i * 4 + (size_t)k] = (float)((q[i] >> (8 * k)) & 0xff);
    } else {
        struct bitreader br;
        bitreader_init(&br, q, m->bits);
        for (size_t k = 0; k < m->cols; k++)
            out[k] = (float)bitreader_next(&br);
    }
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

/*
 * The two common widths read whole words (codes never straddle one).  Both
 * keep dot_f32_ref's order (element i into partial sum i % 8), so this fused
 * dot equals dot_f32_ref over unpacked codes bit for bit.
 */
static float dot_group_4(const uint32_t *w, const float *x, int group_size)
{
    float acc[8] = {0};
    for (int i = 0; i < group_size / 8; i++) {
        uint32_t v = w[i];
        const float *xx = x + i * 8;
        for (int k = 0; k < 8; k++)
            acc[k] += (float)((v >> (4 * k)) & 0xf) * xx[k];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot_group_8(const uint32_t *w, const float *x, int group_size)
{
    float acc[8] = {0};
    for (int i = 0; i < group_size / 8; i++) {
        uint32_t v0 = w[2 * i], v1 = w[2 * i + 1];
        const float *xx = x + i * 8;
        for (int k = 0; k < 4; k++) {
            acc[k] += (float)((v0 >> (8 * k)) & 0xff) * xx[k];
            acc[4 + k] += (float)((v1 >> (8 * k)) & 0xff) * xx[4 + k];
        }
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

float quant_dot_row_ref(const struct quant_matrix *m, size_t row, const float *x, const float *xsum)
{
    size_t ngroups = m->cols / (size_t)m->group_size;
    size_t gs = (size_t)m->group_size;
    const uint32_t *q = m->q + row * quant_row_words(m->cols, m->bits);
    size_t gwords = gs * (size_t)m->bits / 32;
    float acc = 0.0f;
    struct bitreader br;
    bitreader_init(&br, q, m->bits);
    for (size_t g = 0; g < ngroups; g++) {
        const float *xg = x + g * gs;
        float d;
        if (m->bits == 4) {
            d = dot_group_4(q + g * gwords, xg, m->group_size);
        } else if (m->bits == 8) {
            d = dot_group_8(q + g * gwords, xg, m->group_size);
        } else {
            float codes[128]; /* group_size <= 128 */
            for (size_t k = 0; k < gs; k++)
                codes[k] = (float)bitreader_next(&br);
            d = dot_f32_ref(codes, xg, gs);
        }
        float s = dtype_load_f32(m->scales, m->param_dtype, row * ngroups + g);
        float b = dtype_load_f32(m->biases, m->param_dtype, row * ngroups + g);
        acc += s * d + b * xsum[g];
    }
    return acc;
}

void quant_matvec_ref(const struct quant_matrix *m, const float *x, float *xsum, float *y)
{
    quant_group_sums(x, m->cols, m->group_size, xsum);
    for (size_t r = 0; r < m->rows; r++)
        y[r] = quant_dot_row_ref(m, r, x, xsum);
}
