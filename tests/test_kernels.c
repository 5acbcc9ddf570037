/*
 * test_kernels.c - each reference kernel against a direct float64 formula:
 * matmul for every weight dtype (F32, F16, BF16, MLX-quantized) with biases
 * and several input rows, RMSNorm, RoPE, SiLU*mul, softmax, and attention
 * through a scrambled block table against attention over contiguous K/V.
 */
#include <math.h>

#include "harness.h"
#include "kernels.h"
#include "st_build.h"

static double rel_err(double got, double want, double mag)
{
    return fabs(got - want) / (mag > 1e-30 ? mag : 1.0);
}

static void check_matmul(enum dtype dt, bool quant)
{
    size_t rows = 13, cols = 128, n = 5;
    uint64_t seed = 99 + (uint64_t)dt;
    float *wf = malloc(rows * cols * sizeof(float));
    void *raw = malloc(rows * cols * 4);
    uint32_t *q = calloc(rows * cols / 8, 4);
    uint16_t *sc = malloc(rows * 4 * 2), *bi = malloc(rows * 4 * 2);
    struct kernel_mat w = {.rows = rows, .cols = cols, .dtype = dt, .data = raw};
    if (quant) {
        for (size_t i = 0; i < rows * 4; i++) {
            sc[i] = f32_to_f16(0.1f * stb_randf(&seed));
            bi[i] = f32_to_f16(stb_randf(&seed));
        }
        for (size_t i = 0; i < rows * cols / 8; i++)
            q[i] = (uint32_t)((stb_randf(&seed) + 1.0f) * 2147483647.0f) * 2654435761u;
        w.quantized = true;
        w.q = (struct quant_matrix){.rows = rows,
                                    .cols = cols,
                                    .bits = 4,
                                    .group_size = 32,
                                    .param_dtype = DTYPE_F16,
                                    .q = q,
                                    .scales = sc,
                                    .biases = bi};
        quant_dequantize(&w.q, wf);
    } else {
        for (size_t i = 0; i < rows * cols; i++) {
            float v = stb_randf(&seed);
            if (dt == DTYPE_F32)
                ((float *)raw)[i] = v;
            else if (dt == DTYPE_F16)
                ((uint16_t *)raw)[i] = f32_to_f16(v);
            else
                ((uint16_t *)raw)[i] = f32_to_bf16(v);
            wf[i] = dtype_load_f32(raw, dt, i);
        }
    }
    float x[5 * 128], bias[13], y[5 * 13], row[128];
    for (size_t i = 0; i < n * cols; i++)
        x[i] = stb_randf(&seed);
    for (size_t i = 0; i < rows; i++)
        bias[i] = stb_randf(&seed);
    float *scratch = malloc((kernel_matmul_scratch(&w, n) + 1) * sizeof(float));
    kernel_matmul_ref(&w, x, n, bias, y, scratch);
    double worst = 0;
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < rows; r++) {
            double want = bias[r], mag = fabs(bias[r]);
            for (size_t c = 0; c < cols; c++) {
                want += (double)wf[r * cols + c] * x[t * cols + c];
                mag += fabs((double)wf[r * cols + c] * x[t * cols + c]);
            }
            double e = rel_err(y[t * rows + r], want, mag);
            worst = e > worst || isnan(e) ? e : worst;
        }
    CHECK_MSG(worst < 1e-5, "%s%s: relative error %g", quant ? "q4 " : "", dtype_name(dt), worst);
    /* batch invariance: each input row alone gives the same bits as in the batch */
    for (size_t t = 0; t < n; t++) {
        float y1[13];
        kernel_matmul_ref(&w, x + t * cols, 1, bias, y1, scratch);
        CHECK_MSG(memcmp(y1, y + t * rows, sizeof(y1)) == 0, "%s: row %zu alone differs",
                  dtype_name(dt), t);
    }
    kernel_mat_row(&w, 5, row);
    CHECK(memcmp(row, wf + 5 * cols, sizeof(row)) == 0);
    free(scratch);
    free(wf);
    free(raw);
    free(q);
    free(sc);
    free(bi);
}

static void test_matmul_dtypes(void)
{
    check_matmul(DTYPE_F32, false);
    check_matmul(DTYPE_F16, false);
    check_matmul(DTYPE_BF16, false);
    check_matmul(DTYPE_F32, true);
}

static void test_dot_lengths(void)
{
    float a[37], b[37];
    uint64_t seed = 21;
    for (int i = 0; i < 37; i++) {
        a[i] = stb_randf(&seed);
        b[i] = stb_randf(&seed);
    }
    for (size_t n = 0; n <= 37; n++) {
        double want = 0, mag = 0;
        for (size_t i = 0; i < n; i++) {
            want += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
        }
        CHECK_MSG(rel_err(dot_f32_ref(a, b, n), want, mag) < 1e-6, "n = %zu", n);
    }
}

static void test_rmsnorm_silu_softmax(void)
{
    float x[5] = {1, -2, 3, 0.5f, 0}, w[5] = {1, 2, 0.5f, 1, 3}, out[5];
    kernel_rmsnorm_ref(out, x, w, 5, 1e-5f);
    double ms = (1 + 4 + 9 + 0.25) / 5.0;
    for (int i = 0; i < 5; i++)
        CHECK(fabs(out[i] - x[i] / sqrt(ms + 1e-5) * w[i]) < 1e-6);
    float g[3] = {-1, 0, 2}, u[3] = {2, 3, -1};
    kernel_silu_mul_ref(g, u, 3);
    CHECK(fabs(g[0] - (-1 / (1 + exp(1.0))) * 2) < 1e-6);
    CHECK(g[1] == 0.0f);
    CHECK(fabs(g[2] - (2 / (1 + exp(-2.0))) * -1) < 1e-6);
    float s[4] = {1000, 1001, 999, -1e30f};
    kernel_softmax_ref(s, 4);
    double z = exp(-1.0) + 1 + exp(-2.0);
    CHECK(fabs(s[0] - exp(-1.0) / z) < 1e-6 && fabs(s[1] - 1 / z) < 1e-6 && s[3] == 0.0f);
}

static void test_rope(void)
{
    float inv[4] = {1.0f, 0.1f, 0.01f, 0.001f}, cs[8], x[16], orig[16];
    uint64_t seed = 3;
    for (int i = 0; i < 16; i++)
        orig[i] = x[i] = stb_randf(&seed);
    kernel_rope_angles(cs, 8, inv, 7);
    kernel_rope_ref(x, 2, 8, cs);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            double a = 7.0 * inv[i];
            double x0 = orig[h * 8 + i], x1 = orig[h * 8 + i + 4];
            CHECK(fabs(x[h * 8 + i] - (x0 * cos(a) - x1 * sin(a))) < 1e-6);
            CHECK(fabs(x[h * 8 + i + 4] - (x1 * cos(a) + x0 * sin(a))) < 1e-6);
        }
    kernel_rope_angles(cs, 8, inv, 0);
    memcpy(x, orig, sizeof(x));
    kernel_rope_ref(x, 2, 8, cs);
    CHECK(memcmp(x, orig, sizeof(x)) == 0);
}

/* kernel_attention_ref through a scrambled block table, K/V stored F32 and
 * F16 in the cache's layout (K feature-major, V head- then position-major), against
 * attention computed in double from the (rounded) values. */
static void test_attention_block_table(void)
{
    enum { BT = 4, NB = 6, KVH = 2, HD = 8, CTX = 11 };
    size_t kd = KVH * HD;
    for (int f16 = 0; f16 < 2; f16++) {
        float *pool_k = calloc(NB * BT * kd, sizeof(float)),
              *pool_v = calloc(NB * BT * kd, sizeof(float));
        uint16_t *hk = (uint16_t *)pool_k, *hv = (uint16_t *)pool_v;
        float K[CTX][KVH * HD], V[CTX][KVH * HD];
        int table[3] = {4, 0, 2}; /* scrambled on purpose */
        uint64_t seed = 8;
        for (int p = 0; p < CTX; p++)
            for (size_t i = 0; i < kd; i++) {
                K[p][i] = stb_randf(&seed);
                V[p][i] = stb_randf(&seed);
                size_t blk = (size_t)table[p / BT] * BT * kd;
                /* K (kd, BT); V (KVH, BT, HD) */
                size_t ki = blk + i * BT + (size_t)(p % BT);
                size_t vi = blk + (i - i % HD) * BT + (size_t)(p % BT) * HD + i % HD;
                if (f16) {
                    hk[ki] = f32_to_f16(K[p][i]);
                    hv[vi] = f32_to_f16(V[p][i]);
                    K[p][i] = f16_to_f32(hk[ki]);
                    V[p][i] = f16_to_f32(hv[vi]);
                } else {
                    pool_k[ki] = K[p][i];
                    pool_v[vi] = V[p][i];
                }
            }
        struct kernel_kv_view view = {.k = pool_k,
                                      .v = pool_v,
                                      .dtype = f16 ? DTYPE_F16 : DTYPE_F32,
                                      .block_stride = BT * kd,
                                      .kv_dim = kd,
                                      .head_dim = HD,
                                      .block_tokens = BT,
                                      .blocks = table};
        float q[HD], out[HD], att[CTX];
        for (int i = 0; i < HD; i++)
            q[i] = stb_randf(&seed);
        float scale = 1.0f / sqrtf(HD);
        for (int kvh = 0; kvh < KVH; kvh++) {
            int lo = kvh == 1 ? 5 : 0; /* second head: a sliding window of 6 positions */
            kernel_attention_ref(q, &view, (size_t)kvh * HD, HD, lo, CTX, scale, att, out);
            double w[CTX] = {0}, mx = -1e300, sum = 0;
            for (int p = lo; p < CTX; p++) {
                double d = 0;
                for (int i = 0; i < HD; i++)
                    d += (double)q[i] * K[p][kvh * HD + i];
                w[p] = d * scale;
                mx = w[p] > mx ? w[p] : mx;
            }
            for (int p = lo; p < CTX; p++)
                sum += (w[p] = exp(w[p] - mx));
            for (int i = 0; i < HD; i++) {
                double want = 0;
                for (int p = lo; p < CTX; p++)
                    want += w[p] / sum * V[p][kvh * HD + i];
                CHECK_MSG(fabs(out[i] - want) < 1e-6, "%s head %d dim %d: %g vs %g",
                          f16 ? "F16" : "F32", kvh, i, out[i], want);
            }
        }
        free(pool_k);
        free(pool_v);
    }
}

int main(void)
{
    RUN(test_matmul_dtypes);
    RUN(test_dot_lengths);
    RUN(test_rmsnorm_silu_softmax);
    RUN(test_rope);
    RUN(test_attention_block_table);
    return harness_finish();
}
