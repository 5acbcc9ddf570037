/*
 * test_quant.c - MLX affine dequantization and the quantized dot product,
 * against a bit-by-bit packer/unpacker written here, plus the half-precision
 * conversions the scales go through.
 */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "quant.h"
#include "st_build.h"
#include "tensor.h"

/* Writes code v (bits wide) at element k of a row: bit j of v goes to bit k*bits+j. */
static void pack_code(uint8_t *row, size_t k, int bits, uint32_t v)
{
    for (int j = 0; j < bits; j++) {
        size_t bit = k * (size_t)bits + (size_t)j;
        if (v >> j & 1)
            row[bit / 8] |= (uint8_t)(1u << (bit % 8));
    }
}

static uint32_t unpack_code(const uint8_t *row, size_t k, int bits)
{
    uint32_t v = 0;
    for (int j = 0; j < bits; j++) {
        size_t bit = k * (size_t)bits + (size_t)j;
        v |= (uint32_t)(row[bit / 8] >> (bit % 8) & 1) << j;
    }
    return v;
}

struct qcase {
    struct quant_matrix m;
    uint32_t *q;
    void *scales, *biases;
    uint32_t *codes; /* (rows, cols) the codes packed */
    float *s, *b;    /* (rows, ngroups) the stored params, as floats */
};

static void store_param(void *p, enum dtype dt, size_t i, float v, float *out)
{
    if (dt == DTYPE_F32) {
        ((float *)p)[i] = v;
    } else if (dt == DTYPE_F16) {
        ((uint16_t *)p)[i] = f32_to_f16(v);
    } else {
        ((uint16_t *)p)[i] = f32_to_bf16(v);
    }
    *out = dtype_load_f32(p, dt, i);
}

static void qcase_make(struct qcase *c, size_t rows, size_t cols, int bits, int group,
                       enum dtype pdt, uint64_t seed)
{
    size_t ng = cols / (size_t)group, words = cols * (size_t)bits / 32;
    c->q = calloc(rows * words, 4);
    c->scales = calloc(rows * ng, 4);
    c->biases = calloc(rows * ng, 4);
    c->codes = calloc(rows * cols, 4);
    c->s = calloc(rows * ng, sizeof(float));
    c->b = calloc(rows * ng, sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        uint8_t *row = (uint8_t *)(c->q + r * words);
        for (size_t k = 0; k < cols; k++) {
            uint32_t v = (uint32_t)((stb_randf(&seed) + 1.0f) * 0.5f * (float)(1u << bits));
            if (v >= (1u << bits))
                v = (1u << bits) - 1;
            /* make sure the extreme codes occur */
            if (k % 37 == 0)
                v = (1u << bits) - 1;
            if (k % 41 == 0)
                v = 0;
            c->codes[r * cols + k] = v;
            pack_code(row, k, bits, v);
        }
        for (size_t g = 0; g < ng; g++) {
            /* MLX picks the sign of the scale: negative ones must work as stored */
            store_param(c->scales, pdt, r * ng + g, 0.05f * stb_randf(&seed), &c->s[r * ng + g]);
            store_param(c->biases, pdt, r * ng + g, stb_randf(&seed), &c->b[r * ng + g]);
        }
    }
    c->m = (struct quant_matrix){.rows = rows,
                                 .cols = cols,
                                 .bits = bits,
                                 .group_size = group,
                                 .param_dtype = pdt,
                                 .q = c->q,
                                 .scales = c->scales,
                                 .biases = c->biases};
}

static void qcase_free(struct qcase *c)
{
    free(c->q);
    free(c->scales);
    free(c->biases);
    free(c->codes);
    free(c->s);
    free(c->b);
}

static void test_pack_roundtrip_reference(void)
{
    /* the test's own packer: 4-bit element k sits in bits [4k, 4k+4) of the first word */
    uint32_t w[2] = {0, 0};
    for (size_t k = 0; k < 8; k++)
        pack_code((uint8_t *)w, k, 4, (uint32_t)k + 1);
    CHECK(w[0] == 0x87654321u);
    uint32_t w3[3] = {0, 0, 0};
    for (size_t k = 0; k < 32; k++)
        pack_code((uint8_t *)w3, k, 3, (uint32_t)(k % 8));
    for (size_t k = 0; k < 32; k++) {
        CHECK_INT_EQ(unpack_code((const uint8_t *)w3, k, 3), k % 8);
        CHECK_INT_EQ(quant_code(w3, k, 3), k % 8);
    }
    /* element 10 of a 3-bit row straddles the first two words */
    CHECK_INT_EQ(quant_code(w3, 10, 3), 2);
}

static void test_dequantize_all_widths(void)
{
    const int bitss[] = {2, 3, 4, 5, 6, 8};
    const int groups[] = {32, 64, 128};
    const enum dtype pdts[] = {DTYPE_F16, DTYPE_BF16, DTYPE_F32};
    int n = 0;
    for (size_t bi = 0; bi < 6; bi++)
        for (size_t gi = 0; gi < 3; gi++) {
            size_t rows = 7, cols = 384;
            struct qcase c;
            enum dtype pdt = pdts[(bi + gi) % 3];
            qcase_make(&c, rows, cols, bitss[bi], groups[gi], pdt, 1000 + bi * 10 + gi);
            CHECK_INT_EQ(quant_matrix_check(&c.m, NULL, 0), ST_OK);
            float *out = malloc(rows * cols * sizeof(float));
            quant_dequantize(&c.m, out);
            size_t ng = cols / (size_t)groups[gi], words = quant_row_words(cols, bitss[bi]);
            int bad = 0;
            for (size_t r = 0; r < rows; r++)
                for (size_t k = 0; k < cols; k++) {
                    uint32_t code = unpack_code((const uint8_t *)(c.q + r * words), k, bitss[bi]);
                    size_t g = r * ng + k / (size_t)groups[gi];
                    float want = c.s[g] * (float)code + c.b[g];
                    if (code != c.codes[r * cols + k] || out[r * cols + k] != want ||
                        quant_code(c.q + r * words, k, bitss[bi]) != code)
                        bad++;
                }
            CHECK_MSG(bad == 0, "bits %d group %d %s: %d wrong elements", bitss[bi], groups[gi],
                      dtype_name(pdt), bad);
            free(out);
            qcase_free(&c);
            n++;
        }
    CHECK_INT_EQ(n, 18);
}

/* Widening keeps every element's code (read back through the test's own
 * unpacker at the new width, over a buffer filled with garbage first), so
 * the matrix dequantizes to the same values; widening in place gives the
 * same bytes. */
static void test_widen_keeps_codes(void)
{
    const int bitss[] = {2, 3, 4, 5, 6, 8};
    const int groups[] = {32, 64, 128};
    int n = 0;
    for (size_t bi = 0; bi < 6; bi++)
        for (size_t gi = 0; gi < 3; gi++) {
            int from = bitss[bi], to = quant_kernel_bits(from);
            CHECK_INT_EQ(to, from <= 4 ? 4 : 8);
            size_t rows = 5, cols = 384, words = quant_row_words(cols, to);
            struct qcase c;
            qcase_make(&c, rows, cols, from, groups[gi], DTYPE_F16, 2000 + bi * 10 + gi);
            uint32_t *wide = malloc(rows * words * 4);
            memset(wide, 0xa5, rows * words * 4); /* quant_widen must write every byte */
            quant_widen(&c.m, to, wide);
            /* in place, in a buffer with room for the wider codes: the same */
            uint32_t *in_place = malloc(rows * words * 4);
            memcpy(in_place, c.q, rows * quant_row_words(cols, from) * 4);
            struct quant_matrix ip = c.m;
            ip.q = in_place;
            quant_widen(&ip, to, in_place);
            CHECK_MSG(memcmp(in_place, wide, rows * words * 4) == 0,
                      "%d -> %d bits, group %d: in place differs", from, to, groups[gi]);
            free(in_place);
            struct quant_matrix w = c.m;
            w.bits = to;
            w.q = wide;
            float *a = malloc(rows * cols * sizeof(float)),
                  *b = malloc(rows * cols * sizeof(float));
            quant_dequantize(&c.m, a);
            quant_dequantize(&w, b);
            int bad = 0;
            for (size_t r = 0; r < rows; r++)
                for (size_t k = 0; k < cols; k++)
                    if (unpack_code((const uint8_t *)(wide + r * words), k, to) !=
                            c.codes[r * cols + k] ||
                        a[r * cols + k] != b[r * cols + k])
                        bad++;
            CHECK_MSG(bad == 0, "%d -> %d bits, group %d: %d wrong elements", from, to, groups[gi],
                      bad);
            free(a);
            free(b);
            free(wide);
            qcase_free(&c);
            n++;
        }
    CHECK_INT_EQ(n, 18);
}

static void test_matvec_matches_dequantized(void)
{
    const int bitss[] = {2, 3, 4, 5, 6, 8};
    const int groups[] = {32, 64, 128};
    for (size_t bi = 0; bi < 6; bi++)
        for (size_t gi = 0; gi < 3; gi++) {
            size_t rows = 5 + 2 * bi, cols = 256 + (groups[gi] == 128 ? 0 : (size_t)groups[gi]);
            struct qcase c;
            qcase_make(&c, rows, cols, bitss[bi], groups[gi], DTYPE_F16, 77 + bi * 3 + gi);
            float *w = malloc(rows * cols * sizeof(float));
            float *x = malloc(cols * sizeof(float)), *y = malloc(rows * sizeof(float));
            float *xsum = malloc(cols / (size_t)groups[gi] * sizeof(float));
            uint64_t seed = 5 + bi;
            for (size_t i = 0; i < cols; i++)
                x[i] = stb_randf(&seed);
            quant_dequantize(&c.m, w);
            quant_matvec_ref(&c.m, x, xsum, y);
            double worst = 0;
            for (size_t r = 0; r < rows; r++) {
                double want = 0, mag = 0;
                for (size_t k = 0; k < cols; k++) {
                    want += (double)w[r * cols + k] * x[k];
                    mag += fabs((double)w[r * cols + k] * x[k]);
                }
                double rel = fabs(y[r] - want) / (mag > 0 ? mag : 1);
                worst = rel > worst || isnan(rel) ? rel : worst;
                CHECK_MSG(quant_dot_row_ref(&c.m, r, x, xsum) == y[r], "row %zu", r);
            }
            CHECK_MSG(worst <= 1e-5, "bits %d group %d: relative error %g", bitss[bi], groups[gi],
                      worst);
            free(w);
            free(x);
            free(y);
            free(xsum);
            qcase_free(&c);
        }
}

/* The prefill path (unpack once, dot per group) must equal the fused decode dot bit for bit. */
static void test_unpack_matches_fused_dot(void)
{
    const int bitss[] = {2, 3, 4, 5, 6, 8};
    for (size_t bi = 0; bi < 6; bi++) {
        struct qcase c;
        qcase_make(&c, 3, 256, bitss[bi], 64, DTYPE_F16, 500 + bi);
        float x[256], xsum[4], codes[256];
        uint64_t seed = 17;
        for (int i = 0; i < 256; i++)
            x[i] = stb_randf(&seed);
        quant_group_sums(x, 256, 64, xsum);
        for (size_t r = 0; r < 3; r++) {
            quant_unpack_row(&c.m, r, codes);
            float acc = 0.0f;
            for (size_t g = 0; g < 4; g++)
                acc += c.s[r * 4 + g] * dot_f32_ref(codes + g * 64, x + g * 64, 64) +
                       c.b[r * 4 + g] * xsum[g];
            CHECK_MSG(acc == quant_dot_row_ref(&c.m, r, x, xsum), "bits %d row %zu", bitss[bi], r);
            for (size_t k = 0; k < 256; k++)
                CHECK(codes[k] == (float)c.codes[r * 256 + k]);
        }
        qcase_free(&c);
    }
}

static void test_dequantize_row_single(void)
{
    struct qcase c;
    qcase_make(&c, 3, 64, 5, 32, DTYPE_BF16, 9);
    float full[3 * 64], row[64];
    quant_dequantize(&c.m, full);
    quant_dequantize_row(&c.m, 2, row);
    CHECK(memcmp(row, full + 128, sizeof(row)) == 0);
    qcase_free(&c);
}

static void test_check_rejects(void)
{
    struct quant_matrix m = {
        .rows = 2, .cols = 64, .bits = 4, .group_size = 32, .param_dtype = DTYPE_F16};
    char err[256] = "";
    CHECK_INT_EQ(quant_matrix_check(&m, err, sizeof(err)), ST_OK);
    m.bits = 7;
    CHECK_INT_EQ(quant_matrix_check(&m, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    CHECK(strstr(err, "7 bits") != NULL);
    m.bits = 4;
    m.group_size = 16;
    CHECK_INT_EQ(quant_matrix_check(&m, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    m.group_size = 128;
    CHECK_INT_EQ(quant_matrix_check(&m, err, sizeof(err)), ST_ERR_INVALID);
    m.group_size = 32;
    m.param_dtype = DTYPE_I8;
    CHECK_INT_EQ(quant_matrix_check(&m, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    CHECK(quant_params_valid(3, 64));
    CHECK(!quant_params_valid(1, 64));
}

static void test_half_conversions(void)
{
    CHECK(f16_to_f32(0x3c00) == 1.0f);
    CHECK(f16_to_f32(0xc000) == -2.0f);
    CHECK(f16_to_f32(0x7bff) == 65504.0f);
    CHECK(f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));
    CHECK(isinf(f16_to_f32(0x7c00)));
    CHECK(isnan(f16_to_f32(0x7e00)));
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(bf16_to_f32(0xc2f7) == -123.5f);
    /* every finite f16 survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        if (f32_to_f16(f16_to_f32((uint16_t)h)) != h)
            bad++;
    }
    CHECK_INT_EQ(bad, 0);
    /* ties round to even; overflow goes to inf */
    CHECK_INT_EQ(f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
    CHECK_INT_EQ(f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
    CHECK_INT_EQ(f32_to_f16(65520.0f), 0x7c00);
    CHECK_INT_EQ(f32_to_f16(ldexpf(1.0f, -25)), 0);
    CHECK_INT_EQ(f32_to_f16(ldexpf(3.0f, -26)), 1);
    CHECK_INT_EQ(f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
    CHECK_INT_EQ(f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    enum dtype dt;
    CHECK(dtype_from_name("BF16", 4, &dt) == 0 && dt == DTYPE_BF16);
    CHECK(dtype_from_name("F1", 2, &dt) != 0);
    CHECK_INT_EQ(dtype_size(DTYPE_I64), 8);
    CHECK_STR_EQ(dtype_name(DTYPE_U32), "U32");
}

int main(void)
{
    RUN(test_pack_roundtrip_reference);
    RUN(test_dequantize_all_widths);
    RUN(test_widen_keeps_codes);
    RUN(test_matvec_matches_dequantized);
    RUN(test_unpack_matches_fused_dot);
    RUN(test_dequantize_row_single);
    RUN(test_check_rejects);
    RUN(test_half_conversions);
    return harness_finish();
}
