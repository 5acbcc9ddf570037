/*
 * test_quant_packed.c - the 16-row bundle layout of quant_packed.h: packing
 * keeps every code and parameter (read back through the packed accessors
 * and quant.h's row functions), the scalar reference equals the row-major
 * integer-dot reference within float rounding, and the SIMD kernel equals
 * the scalar reference bit for bit for every row range and token count,
 * including tail rows outside whole bundles, odd shapes and all group sizes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels.h"
#include "quant.h"
#include "quant_packed.h"
#include "st_build.h"
#include "tensor.h"

struct pcase {
    struct quant_matrix row_major, packed;
    void *q0, *s0, *b0; /* the row-major copy */
    void *q1, *s1, *b1; /* packed in place */
};

static void *dup_bytes(const void *p, size_t n)
{
    void *d = malloc(n);
    memcpy(d, p, n);
    return d;
}

static void pcase_make(struct pcase *c, size_t rows, size_t cols, int bits, int gs, enum dtype pdt,
                       uint64_t seed)
{
    size_t ng = cols / (size_t)gs, qbytes = rows * quant_row_words(cols, bits) * 4;
    size_t pbytes = rows * ng * dtype_size(pdt);
    c->q0 = malloc(qbytes);
    c->s0 = malloc(pbytes);
    c->b0 = malloc(pbytes);
    for (size_t i = 0; i < qbytes; i++)
        ((uint8_t *)c->q0)[i] = (uint8_t)((stb_randf(&seed) + 1.0f) * 127.99f);
    for (size_t i = 0; i < rows * ng; i++) {
        float s = 0.02f * stb_randf(&seed), b = 0.1f * stb_randf(&seed);
        if (pdt == DTYPE_F32) {
            ((float *)c->s0)[i] = s;
            ((float *)c->b0)[i] = b;
        } else if (pdt == DTYPE_F16) {
            ((uint16_t *)c->s0)[i] = f32_to_f16(s);
            ((uint16_t *)c->b0)[i] = f32_to_f16(b);
        } else {
            ((uint16_t *)c->s0)[i] = f32_to_bf16(s);
            ((uint16_t *)c->b0)[i] = f32_to_bf16(b);
        }
    }
    c->q1 = dup_bytes(c->q0, qbytes);
    c->s1 = dup_bytes(c->s0, pbytes);
    c->b1 = dup_bytes(c->b0, pbytes);
    c->row_major = (struct quant_matrix){.rows = rows,
                                         .cols = cols,
                                         .bits = bits,
                                         .group_size = gs,
                                         .param_dtype = pdt,
                                         .q = c->q0,
                                         .scales = c->s0,
                                         .biases = c->b0};
    c->packed = c->row_major;
    c->packed.q = c->q1;
    c->packed.scales = c->s1;
    c->packed.biases = c->b1;
}

static void pcase_free(struct pcase *c)
{
    free(c->q0);
    free(c->s0);
    free(c->b0);
    free(c->q1);
    free(c->s1);
    free(c->b1);
}

/* Packing keeps every code and parameter, and the row functions see them. */
static void test_pack_roundtrip(void)
{
    static const int bits[] = {4, 8};
    static const int groups[] = {32, 64, 128};
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 3; gi++) {
            struct pcase c;
            size_t rows = 37, cols = (size_t)groups[gi] * 3;
            pcase_make(&c, rows, cols, bits[bi], groups[gi], DTYPE_BF16, 11u + (uint64_t)gi);
            CHECK(quant_packable(&c.packed));
            CHECK_INT_EQ(quant_pack(&c.packed, NULL, 0), ST_OK);
            CHECK(c.packed.packed);
            CHECK(!quant_packable(&c.packed));
            /* the tail rows (32..36) stay where they were */
            size_t rb = quant_row_words(cols, bits[bi]) * 4;
            CHECK(memcmp((uint8_t *)c.q0 + 32 * rb, (uint8_t *)c.q1 + 32 * rb, 5 * rb) == 0);
            int bad = 0;
            float *a = malloc(cols * sizeof(float)), *b = malloc(cols * sizeof(float));
            for (size_t r = 0; r < rows; r++) {
                for (size_t k = 0; k < cols; k++)
                    bad += quant_packed_code(&c.packed, r, k) !=
                           quant_code(c.row_major.q + r * rb / 4, k, bits[bi]);
                quant_dequantize_row(&c.row_major, r, a);
                quant_dequantize_row(&c.packed, r, b);
                bad += memcmp(a, b, cols * sizeof(float)) != 0;
                quant_unpack_row(&c.row_major, r, a);
                quant_unpack_row(&c.packed, r, b);
                bad += memcmp(a, b, cols * sizeof(float)) != 0;
            }
            CHECK_MSG(bad == 0, "%d bits group %d: %d mismatches after packing", bits[bi],
                      groups[gi], bad);
            free(a);
            free(b);
            pcase_free(&c);
        }
    struct quant_matrix small = {.rows = 15, .cols = 64, .bits = 4, .group_size = 64};
    CHECK(!quant_packable(&small));
    small.rows = 16;
    small.bits = 3;
    CHECK(!quant_packable(&small));
    CHECK_INT_EQ(quant_pack(&small, NULL, 0), ST_ERR_INVALID);
}

/* Activations of n tokens as quant_x8_quantize writes them, natural order. */
static void make_x8(size_t n, size_t cols, int gs, uint64_t seed, int8_t *xq, float *xd, float *xs)
{
    size_t ng = cols / (size_t)gs;
    float *x = malloc(cols * sizeof(float));
    for (size_t t = 0; t < n; t++) {
        for (size_t k = 0; k < cols; k++)
            x[k] = stb_randf(&seed) * (k % 7 == 0 ? 3.0f : 1.0f);
        quant_x8_quantize(x, cols, gs, false, xq + t * cols, xd + t * ng, xs + t * ng);
    }
    free(x);
}

/*
 * The SIMD kernel equals quant_packed_dot_ref bit for bit for any row range
 * and token count, and both stay within float rounding of the row-major
 * integer-dot reference.
 */
static void test_kernel_matches_reference(void)
{
    struct shape {
        size_t rows, cols;
        int bits, gs;
        enum dtype pdt;
    } shapes[] = {{48, 256, 4, 64, DTYPE_BF16},
                  {53, 384, 4, 32, DTYPE_F16},
                  {40, 128, 4, 128, DTYPE_F32},
                  {32, 192, 8, 64, DTYPE_BF16},
                  {21, 96, 8, 32, DTYPE_F16},
                  {64, 512, 8, 128, DTYPE_F32},
                  {16, 64, 4, 64, DTYPE_F16},
                  {80, 2048, 4, 64, DTYPE_BF16},
                  /* more groups a row than the AMX kernel takes */
                  {32, 257 * 32, 4, 32, DTYPE_F16}};
    for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
        struct shape *sh = &shapes[si];
        struct pcase c;
        pcase_make(&c, sh->rows, sh->cols, sh->bits, sh->gs, sh->pdt, 100u + si);
        CHECK_INT_EQ(quant_pack(&c.packed, NULL, 0), ST_OK);
        size_t n = 33, ng = sh->cols / (size_t)sh->gs;
        int8_t *xq = malloc(n * sh->cols);
        float *xd = malloc(n * ng * sizeof(float)), *xs = malloc(n * ng * sizeof(float));
        make_x8(n, sh->cols, sh->gs, 7u + si, xq, xd, xs);
        float *ref = malloc(n * sh->rows * sizeof(float)),
              *y = malloc(n * sh->rows * sizeof(float));
        int bad_ref = 0;
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < sh->rows; r++) {
                const int8_t *q = xq + t * sh->cols;
                const float *d = xd + t * ng, *s = xs + t * ng;
                float v = quant_packed_dot_ref(&c.packed, r, q, d, s);
                float w = quant_dot_row_x8_ref(&c.row_major, r, q, d, s);
                ref[t * sh->rows + r] = v;
                bad_ref += !(fabsf(v - w) <= 1e-5f * (1.0f + fabsf(w)));
            }
        CHECK_MSG(bad_ref == 0, "shape %zu: packed reference vs row-major: %d off", si, bad_ref);
        /* row ranges that cut bundles; token counts below and above each
         * kernel's pass (AVX2 4, AVX-512 8, AMX 16) and the AMX kernel's
         * threshold, with partial passes */
        size_t cuts[][2] = {{0, sh->rows}, {3, sh->rows - 1}, {16, sh->rows}, {0, 5}};
        static const size_t counts[] = {1, 4, 7, 11, 12, 16, 19, 33};
        for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++)
            for (size_t ci = 0; ci < 4; ci++)
                for (size_t ni = 0; ni < sizeof(counts) / sizeof(counts[0]); ni++) {
                    size_t nt = counts[ni];
                    size_t r0 = cuts[ci][0], r1 = cuts[ci][1];
                    for (size_t i = 0; i < n * sh->rows; i++)
                        y[i] = NAN;
                    quant_packed_rows(&c.packed, xq, xd, xs, 0, nt, r0, r1, y,
                                      (enum kernel_isa)isa);
                    int bad = 0;
                    for (size_t t = 0; t < nt; t++)
                        for (size_t r = 0; r < sh->rows; r++) {
                            float v = y[t * sh->rows + r];
                            if (r >= r0 && r < r1)
                                bad += memcmp(&v, &ref[t * sh->rows + r], sizeof(v)) != 0;
                            else
                                bad += !isnan(v); /* rows outside the range are not written */
                        }
                    CHECK_MSG(bad == 0, "shape %zu isa %s rows [%zu,%zu) %zu tokens: %d differ", si,
                              kernel_isa_name((enum kernel_isa)isa), r0, r1, nt, bad);
                }
        free(xq);
        free(xd);
        free(xs);
        free(ref);
        free(y);
        pcase_free(&c);
    }
}

/*
 * The largest integer sums there are: every code at its maximum against
 * activations of +127 and -128 (and alternating signs), for each width and
 * group size.  A SIMD kernel that let a 16-bit partial sum saturate, or
 * summed too many products before widening, differs from the reference.
 */
static void test_kernel_extreme_sums(void)
{
    static const int bits[] = {4, 8};
    static const int groups[] = {32, 64, 128};
    static const int8_t xvals[][2] = {{127, 127}, {-128, -128}, {127, -128}};
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 3; gi++) {
            struct pcase c;
            size_t rows = 32, cols = (size_t)groups[gi] * 2, ng = 2, nt = 17;
            pcase_make(&c, rows, cols, bits[bi], groups[gi], DTYPE_F32, 3u);
            size_t qbytes = rows * quant_row_words(cols, bits[bi]) * 4;
            memset(c.q1, 0xff, qbytes); /* every code 15 or 255 */
            memset(c.q0, 0xff, qbytes);
            CHECK_INT_EQ(quant_pack(&c.packed, NULL, 0), ST_OK);
            int8_t *xq = malloc(nt * cols);
            float xd[17 * 2], xs[17 * 2];
            for (size_t t = 0; t < nt; t++) {
                for (size_t k = 0; k < cols; k++)
                    xq[t * cols + k] = xvals[t % 3][k % 2];
                for (size_t g = 0; g < ng; g++) {
                    xd[t * ng + g] = 1.0f;
                    xs[t * ng + g] = 0.0f;
                }
            }
            float *y = malloc(nt * rows * sizeof(float));
            for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++) {
                quant_packed_rows(&c.packed, xq, xd, xs, 0, nt, 0, rows, y, (enum kernel_isa)isa);
                int bad = 0;
                for (size_t t = 0; t < nt; t++)
                    for (size_t r = 0; r < rows; r++) {
                        float ref = quant_packed_dot_ref(&c.packed, r, xq + t * cols, xd + t * ng,
                                                         xs + t * ng);
                        bad += memcmp(&y[t * rows + r], &ref, sizeof(ref)) != 0;
                    }
                CHECK_MSG(bad == 0, "%d bits group %d isa %s: %d sums differ", bits[bi], groups[gi],
                          kernel_isa_name((enum kernel_isa)isa), bad);
            }
            free(xq);
            free(y);
            pcase_free(&c);
        }
}

/* kernel_matmul on a packed matrix equals the row-major matrix's kernel_matmul within rounding. */
static void test_matmul_packed_vs_row_major(void)
{
    for (int bits = 4; bits <= 8; bits += 4) {
        struct pcase c;
        size_t rows = 70, cols = 320, n = 9;
        pcase_make(&c, rows, cols, bits, 64, DTYPE_F16, 5u + (uint64_t)bits);
        CHECK_INT_EQ(quant_pack(&c.packed, NULL, 0), ST_OK);
        struct kernel_mat a = {.rows = rows, .cols = cols, .quantized = true, .x8 = true};
        struct kernel_mat b = a;
        a.q = c.row_major;
        b.q = c.packed;
        uint64_t seed = 3;
        float *x = malloc(n * cols * sizeof(float));
        for (size_t i = 0; i < n * cols; i++)
            x[i] = stb_randf(&seed);
        float *ya = malloc(n * rows * sizeof(float)), *yb = malloc(n * rows * sizeof(float));
        float *scratch = malloc((kernel_matmul_scratch(&a, n) + 1) * sizeof(float));
        kernel_matmul(NULL, &a, x, n, NULL, ya, scratch);
        kernel_matmul(NULL, &b, x, n, NULL, yb, scratch);
        int bad = 0;
        for (size_t i = 0; i < n * rows; i++)
            bad += !(fabsf(ya[i] - yb[i]) <= 1e-5f * (1.0f + fabsf(ya[i])));
        CHECK_MSG(bad == 0, "%d bits: %d of %zu outputs differ", bits, bad, n * rows);
        /* the float reference reads the packed layout too */
        kernel_matmul_ref(&a, x, n, NULL, ya, scratch);
        kernel_matmul_ref(&b, x, n, NULL, yb, scratch);
        CHECK(memcmp(ya, yb, n * rows * sizeof(float)) == 0);
        free(x);
        free(ya);
        free(yb);
        free(scratch);
        pcase_free(&c);
    }
}

int main(void)
{
    RUN(test_pack_roundtrip);
    RUN(test_kernel_matches_reference);
    RUN(test_kernel_extreme_sums);
    RUN(test_matmul_packed_vs_row_major);
    return harness_finish();
}
