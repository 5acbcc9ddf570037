/*
 * test_quantize.c - the MLX affine quantizer against MLX's own output (the
 * fixture's mlx-4bit / mlx-8bit tensors), its round-trip error for every
 * supported bits/group combination, and the f32 -> f16/bf16 rounding that
 * the quantizer and the model writer rely on.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "quant.h"
#include "quantize.h"
#include "safetensors.h"
#include "tensor.h"

/* Reads tensor `name` of st into a malloc'ed buffer; NULL when missing. */
static void *read_tensor(struct safetensors *st, const char *name, size_t *nbytes,
                         const struct safetensors_tensor **out)
{
    const struct safetensors_tensor *t = safetensors_find(st, name);
    if (!t)
        return NULL;
    *nbytes = (size_t)(t->end - t->begin);
    void *buf = malloc(*nbytes ? *nbytes : 1);
    char err[256];
    if (buf && safetensors_read(st, t, buf, err, sizeof(err)) != ST_OK) {
        free(buf);
        return NULL;
    }
    if (out)
        *out = t;
    return buf;
}

/* ---- byte-exact against the fixture's MLX variants ---- */

static void check_fixture_variant(const char *variant, int bits)
{
    char path[4096], err[256] = "";
    struct safetensors *src = NULL, *mlx = NULL;
    snprintf(path, sizeof(path), "%s/fixtures/models/aidreams-260k-f16/model.safetensors",
             harness_shared_dir());
    CHECK_INT_EQ(safetensors_open(path, &src, err, sizeof(err)), ST_OK);
    snprintf(path, sizeof(path), "%s/fixtures/models/%s/model.safetensors", harness_shared_dir(),
             variant);
    CHECK_INT_EQ(safetensors_open(path, &mlx, err, sizeof(err)), ST_OK);
    if (!src || !mlx) {
        safetensors_close(src);
        safetensors_close(mlx);
        return;
    }
    int quantized = 0;
    for (size_t i = 0; i < safetensors_count(mlx); i++) {
        const char *name = safetensors_at(mlx, i)->name;
        size_t len = strlen(name);
        if (len < 7 || strcmp(name + len - 7, ".scales") != 0)
            continue;
        char wname[512], bname[512];
        snprintf(wname, sizeof(wname), "%.*s.weight", (int)(len - 7), name);
        snprintf(bname, sizeof(bname), "%.*s.biases", (int)(len - 7), name);
        size_t n_src = 0, n_q = 0, n_s = 0, n_b = 0;
        const struct safetensors_tensor *ts = NULL;
        uint16_t *w16 = read_tensor(src, wname, &n_src, &ts);
        void *want_q = read_tensor(mlx, wname, &n_q, NULL);
        void *want_s = read_tensor(mlx, name, &n_s, NULL);
        void *want_b = read_tensor(mlx, bname, &n_b, NULL);
        CHECK(w16 && want_q && want_s && want_b && ts->dtype == DTYPE_F16 && ts->ndim == 2);
        if (w16 && want_q && want_s && want_b && ts->dtype == DTYPE_F16 && ts->ndim == 2) {
            size_t rows = (size_t)ts->shape[0], cols = (size_t)ts->shape[1];
            size_t groups = cols / 32;
            float *w = malloc(rows * cols * sizeof(float));
            uint32_t *q = malloc(rows * quant_row_words(cols, bits) * 4);
            uint16_t *s = malloc(rows * groups * 2), *b = malloc(rows * groups * 2);
            for (size_t k = 0; k < rows * cols; k++)
                w[k] = f16_to_f32(w16[k]);
            CHECK_INT_EQ(quantize_affine(w, rows, cols, bits, 32, q, s, b, err, sizeof(err)),
                         ST_OK);
            CHECK_INT_EQ(n_q, rows * quant_row_words(cols, bits) * 4);
            CHECK_INT_EQ(n_s, rows * groups * 2);
            CHECK_MSG(n_q == rows * quant_row_words(cols, bits) * 4 && memcmp(q, want_q, n_q) == 0,
                      "%s: packed codes differ from MLX", wname);
            CHECK_MSG(n_s == rows * groups * 2 && memcmp(s, want_s, n_s) == 0,
                      "%s: scales differ from MLX", name);
            CHECK_MSG(n_b == rows * groups * 2 && memcmp(b, want_b, n_b) == 0,
                      "%s: biases differ from MLX", bname);
            quantized++;
            free(w);
            free(q);
            free(s);
            free(b);
        }
        free(w16);
        free(want_q);
        free(want_s);
        free(want_b);
    }
    /* embedding + 6 Linear layers quantized in each of the 4 layers */
    CHECK_INT_EQ(quantized, 1 + 4 * 6);
    safetensors_close(src);
    safetensors_close(mlx);
}

static void test_fixture_mlx_4bit(void)
{
    check_fixture_variant("aidreams-260k-mlx-4bit", 4);
}

static void test_fixture_mlx_8bit(void)
{
    check_fixture_variant("aidreams-260k-mlx-8bit", 8);
}

/* ---- round trip for every bits/group combination ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float rand_uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)(rng_state >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

static void test_round_trip_all_bits_groups(void)
{
    static const int bits_list[] = {2, 3, 4, 5, 6, 8};
    static const int groups_list[] = {32, 64, 128};
    const size_t rows = 7, cols = 256;
    float *w = malloc(rows * cols * sizeof(float));
    float *back = malloc(rows * cols * sizeof(float));
    for (size_t i = 0; i < rows * cols; i++) {
        /* rows of different magnitude and offset; row 3 constant, row 5 all negative */
        size_t r = i / cols;
        float v = rand_uniform() * (0.01f + 0.5f * (float)r);
        if (r == 3)
            v = 0.25f;
        if (r == 5)
            v = -fabsf(v) - 0.1f;
        w[i] = f16_to_f32(f32_to_f16(v));
    }
    for (size_t bi = 0; bi < 6; bi++) {
        for (size_t gi = 0; gi < 3; gi++) {
            int bits = bits_list[bi], gs = groups_list[gi];
            size_t groups = cols / (size_t)gs;
            uint32_t *q = malloc(rows * quant_row_words(cols, bits) * 4);
            uint16_t *s = malloc(rows * groups * 2), *b = malloc(rows * groups * 2);
            char err[256] = "";
            CHECK_INT_EQ(quantize_affine(w, rows, cols, bits, gs, q, s, b, err, sizeof(err)),
                         ST_OK);
            struct quant_matrix m = {rows, cols, bits, gs, DTYPE_F16, q, s, b, false};
            quant_dequantize(&m, back);
            float n_bins = (float)((1 << bits) - 1);
            float worst = 0.0f;
            for (size_t r = 0; r < rows; r++) {
                for (size_t g = 0; g < groups; g++) {
                    const float *wg = w + r * cols + g * (size_t)gs;
                    const float *bg = back + r * cols + g * (size_t)gs;
                    float lo = wg[0], hi = wg[0];
                    for (int j = 0; j < gs; j++) {
                        lo = fminf(lo, wg[j]);
                        hi = fmaxf(hi, wg[j]);
                    }
                    /* MLX snaps the step so the larger edge lands on a code,
                     * which can stretch the rounding error or clip the far end
                     * by up to one step; plus the f16 rounding of scale (times
                     * up to n_bins codes) and of bias */
                    float step = (hi - lo) / n_bins;
                    float bound = step * 1.001f + n_bins * step * 0x1p-11f +
                                  fmaxf(fabsf(lo), fabsf(hi)) * 0x1p-10f + 1e-6f;
                    for (int j = 0; j < gs; j++) {
                        float e = fabsf(bg[j] - wg[j]);
                        if (e / bound > worst)
                            worst = e / bound;
                    }
                }
            }
            CHECK_MSG(worst <= 1.0f, "bits %d group %d: error %.3f x the bound", bits, gs,
                      (double)worst);
            /* the constant row comes back exactly */
            for (size_t c = 0; c < cols; c++)
                CHECK(back[3 * cols + c] == 0.25f);
            free(q);
            free(s);
            free(b);
        }
    }
    free(w);
    free(back);
}

static void test_rejects_bad_arguments(void)
{
    float w[64] = {0};
    uint32_t q[16];
    uint16_t s[2], b[2];
    char err[256] = "";
    CHECK_INT_EQ(quantize_affine(w, 1, 64, 7, 32, q, s, b, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    CHECK(strstr(err, "bits 7") != NULL);
    CHECK_INT_EQ(quantize_affine(w, 1, 64, 4, 48, q, s, b, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    CHECK_INT_EQ(quantize_affine(w, 1, 48, 4, 32, q, s, b, err, sizeof(err)), ST_ERR_INVALID);
    w[5] = NAN;
    CHECK_INT_EQ(quantize_affine(w, 1, 64, 4, 32, q, s, b, err, sizeof(err)), ST_ERR_INVALID);
    w[5] = INFINITY;
    CHECK_INT_EQ(quantize_affine(w, 1, 64, 4, 32, q, s, b, err, sizeof(err)), ST_ERR_INVALID);
}

/* A negative scale: a group whose largest magnitude is its maximum. */
static void test_scale_sign_and_edges(void)
{
    float w[32];
    for (int j = 0; j < 32; j++)
        w[j] = (float)j / 31.0f; /* 0 .. 1: |max| > |min| */
    uint32_t q[4];
    uint16_t s, b;
    char err[256] = "";
    CHECK_INT_EQ(quantize_affine(w, 1, 32, 4, 32, q, &s, &b, err, sizeof(err)), ST_OK);
    CHECK(f16_to_f32(s) < 0.0f);
    CHECK(f16_to_f32(b) == 1.0f);
    CHECK_INT_EQ(quant_code(q, 31, 4), 0); /* the max is the bias itself */
    CHECK_INT_EQ(quant_code(q, 0, 4), 15); /* the min is the far end */
    for (int j = 0; j < 32; j++)
        w[j] = -(float)j / 31.0f; /* |min| > |max|: positive scale, bias = min */
    CHECK_INT_EQ(quantize_affine(w, 1, 32, 4, 32, q, &s, &b, err, sizeof(err)), ST_OK);
    CHECK(f16_to_f32(s) > 0.0f);
    CHECK(f16_to_f32(b) == -1.0f);
    CHECK_INT_EQ(quant_code(q, 31, 4), 0);
    CHECK_INT_EQ(quant_code(q, 0, 4), 15);
}

/* ---- f32 -> f16 / bf16 rounding ---- */

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16_corner_cases(void)
{
    CHECK_INT_EQ(f32_to_f16(1.0f), 0x3c00);
    CHECK_INT_EQ(f32_to_f16(-2.0f), 0xc000);
    CHECK_INT_EQ(f32_to_f16(0.0f), 0x0000);
    CHECK_INT_EQ(f32_to_f16(-0.0f), 0x8000);
    CHECK_INT_EQ(f32_to_f16(65504.0f), 0x7bff);
    CHECK_INT_EQ(f32_to_f16(65519.99f), 0x7bff); /* below the midpoint to 65536 */
    CHECK_INT_EQ(f32_to_f16(65520.0f), 0x7c00);  /* the tie rounds to even: inf */
    CHECK_INT_EQ(f32_to_f16(1e10f), 0x7c00);
    CHECK_INT_EQ(f32_to_f16(-1e10f), 0xfc00);
    CHECK_INT_EQ(f32_to_f16(INFINITY), 0x7c00);
    CHECK_INT_EQ(f32_to_f16(-INFINITY), 0xfc00);
    uint16_t nan = f32_to_f16(NAN);
    CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);
    CHECK(isnan(f16_to_f32(f32_to_f16(-NAN))));
    /* ties to even among normals: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    CHECK_INT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    CHECK_INT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    CHECK_INT_EQ(f32_to_f16(nextafterf(1.0f + 0x1p-11f, 2.0f)), 0x3c01);
    /* subnormals: 2^-24 is the smallest, 2^-25 ties down to zero, 3*2^-25 up to 2 */
    CHECK_INT_EQ(f32_to_f16(0x1p-24f), 0x0001);
    CHECK_INT_EQ(f32_to_f16(0x1p-25f), 0x0000);
    CHECK_INT_EQ(f32_to_f16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    CHECK_INT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);
    CHECK_INT_EQ(f32_to_f16(-0x1p-24f), 0x8001);
    CHECK_INT_EQ(f32_to_f16(1e-10f), 0x0000);
    /* the largest subnormal's upper midpoint rounds up into the normals */
    CHECK_INT_EQ(f32_to_f16(1023.5f * 0x1p-24f), 0x0400);
    CHECK_INT_EQ(f32_to_f16(0x1p-14f), 0x0400);
}

/* Every finite f16 value round-trips, and every midpoint between neighbours
 * goes to the even one (with the floats just either side going their way). */
static void test_f16_exhaustive_midpoints(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float v = f16_to_f32((uint16_t)h);
        if (f32_to_f16(v) != h || f32_to_f16(-v) != (h | 0x8000))
            bad++;
        float next = h + 1 == 0x7c00 ? 65536.0f : f16_to_f32((uint16_t)(h + 1));
        float mid = v + (next - v) / 2; /* exact in float */
        uint32_t even = (h & 1) ? h + 1 : h;
        if (f32_to_f16(mid) != even || f32_to_f16(nextafterf(mid, 0.0f)) != h ||
            f32_to_f16(nextafterf(mid, INFINITY)) != h + 1)
            bad++;
    }
    CHECK_INT_EQ(bad, 0);
}

static void test_bf16_corner_cases(void)
{
    CHECK_INT_EQ(f32_to_bf16(1.0f), 0x3f80);
    CHECK_INT_EQ(f32_to_bf16(-0.0f), 0x8000);
    CHECK_INT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie to even, down */
    CHECK_INT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie to even, up */
    CHECK_INT_EQ(f32_to_bf16(nextafterf(1.0f + 0x1p-8f, 2.0f)), 0x3f81);
    CHECK_INT_EQ(f32_to_bf16(INFINITY), 0x7f80);
    CHECK_INT_EQ(f32_to_bf16(-INFINITY), 0xff80);
    CHECK_INT_EQ(f32_to_bf16(bits_to_f32(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to inf */
    CHECK_INT_EQ(f32_to_bf16(bits_to_f32(0x7f7f7fff)), 0x7f7f);
    CHECK_INT_EQ(f32_to_bf16(bits_to_f32(0x00008000)), 0x0000); /* subnormal tie, even */
    CHECK_INT_EQ(f32_to_bf16(bits_to_f32(0x00018000)), 0x0002);
    CHECK_INT_EQ(f32_to_bf16(bits_to_f32(0x00010001)), 0x0001);
    uint16_t nan = f32_to_bf16(bits_to_f32(0x7f800001)); /* a signalling NaN stays NaN */
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0);
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

int main(void)
{
    RUN(test_fixture_mlx_4bit);
    RUN(test_fixture_mlx_8bit);
    RUN(test_round_trip_all_bits_groups);
    RUN(test_rejects_bad_arguments);
    RUN(test_scale_sign_and_edges);
    RUN(test_f16_corner_cases);
    RUN(test_f16_exhaustive_midpoints);
    RUN(test_bf16_corner_cases);
    return harness_finish();
}
