/*
 * test_kernels_simd.c - the fast kernels (kernels_simd.c) against their
 * scalar references on random inputs: matmul for F32/F16/BF16 and every MLX
 * bit width and group size, odd sizes, 1 and several input rows, 1 and 2
 * threads (bit-identical), each row alone vs in a batch (bit-identical), the
 * scalar fallback; attention with an online softmax; the thread pool.
 */
#include <math.h>
#include <stdatomic.h>

#include "harness.h"
#include "kernels.h"
#include "st_build.h"

static struct threadpool *pool1, *pool2;

static float *rand_floats(size_t n, uint64_t *seed, float scale)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * stb_randf(seed);
    return p;
}

/* y from 1 and 2 threads must agree bit for bit; each token alone too. */
static void check_invariance(const struct kernel_mat *w, const float *x, size_t n, const float *y,
                             const char *what)
{
    float *scratch = malloc((kernel_matmul_scratch(w, n) + 1) * sizeof(float));
    float *y2 = malloc(n * w->rows * sizeof(float)), *y1 = malloc(w->rows * sizeof(float));
    kernel_matmul(pool2, w, x, n, NULL, y2, scratch);
    CHECK_MSG(memcmp(y, y2, n * w->rows * sizeof(float)) == 0, "%s: 2 threads differ", what);
    for (size_t t = 0; t < n; t++) {
        kernel_matmul(pool1, w, x + t * w->cols, 1, NULL, y1, scratch);
        CHECK_MSG(memcmp(y1, y + t * w->rows, w->rows * sizeof(float)) == 0,
                  "%s: token %zu alone differs", what, t);
    }
    free(scratch);
    free(y2);
    free(y1);
}

static void check_float(enum dtype dt, size_t rows, size_t cols, size_t n, enum kernel_isa isa)
{
    uint64_t seed = 5 + rows * 31 + cols;
    float *wf = rand_floats(rows * cols, &seed, 1.0f), *x = rand_floats(n * cols, &seed, 1.0f);
    float *bias = rand_floats(rows, &seed, 1.0f);
    void *raw = malloc(rows * cols * 4);
    for (size_t i = 0; i < rows * cols; i++) {
        if (dt == DTYPE_F32)
            ((float *)raw)[i] = wf[i];
        else if (dt == DTYPE_F16)
            ((uint16_t *)raw)[i] = f32_to_f16(wf[i]);
        else
            ((uint16_t *)raw)[i] = f32_to_bf16(wf[i]);
    }
    struct kernel_mat w = {.rows = rows, .cols = cols, .dtype = dt, .data = raw};
    float *scratch = malloc((kernel_matmul_scratch(&w, n) + 1) * sizeof(float));
    float *y = malloc(n * rows * sizeof(float)), *yr = malloc(n * rows * sizeof(float));
    kernel_isa_set(isa);
    kernel_matmul_ref(&w, x, n, bias, yr, scratch);
    kernel_matmul(pool1, &w, x, n, bias, y, scratch);
    double worst = 0;
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < rows; r++) {
            double mag = fabs(bias[r]);
            for (size_t c = 0; c < cols; c++)
                mag += fabs(dtype_load_f32(raw, dt, r * cols + c) * x[t * cols + c]);
            double e = fabs(y[t * rows + r] - yr[t * rows + r]) / mag;
            worst = e > worst || isnan(e) ? e : worst;
        }
    CHECK_MSG(worst < 1e-5, "%s %zux%zu n=%zu isa %s: relative error %g", dtype_name(dt), rows,
              cols, n, kernel_isa_name(kernel_isa_get()), worst);
    kernel_matmul(pool1, &w, x, n, NULL, y, scratch);
    check_invariance(&w, x, n, y, dtype_name(dt));
    kernel_isa_set(KERNEL_ISA_AVX512);
    free(wf);
    free(x);
    free(bias);
    free(raw);
    free(scratch);
    free(y);
    free(yr);
}

static void test_matmul_float(void)
{
    static const size_t shapes[][2] = {{1, 8}, {5, 7}, {37, 17}, {16, 33}, {33, 130}, {70, 256}};
    for (int isa = KERNEL_ISA_SCALAR; isa <= KERNEL_ISA_AVX512; isa++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
            for (size_t n = 1; n <= 6; n += 5) {
                check_float(DTYPE_F32, shapes[s][0], shapes[s][1], n, (enum kernel_isa)isa);
                check_float(DTYPE_F16, shapes[s][0], shapes[s][1], n, (enum kernel_isa)isa);
                check_float(DTYPE_BF16, shapes[s][0], shapes[s][1], n, (enum kernel_isa)isa);
            }
}

static void check_quant(int bits, int gs, size_t rows, size_t cols, size_t n, enum dtype pdt,
                        enum kernel_isa isa, bool x8)
{
    uint64_t seed = 77 + (uint64_t)bits * 131 + (uint64_t)gs + cols;
    size_t ng = cols / (size_t)gs, words = rows * quant_row_words(cols, bits);
    uint32_t *q = malloc(words * 4);
    for (size_t i = 0; i < words; i++)
        q[i] = (uint32_t)((stb_randf(&seed) + 1.0f) * 2147483647.0f) * 2654435761u;
    void *sc = malloc(rows * ng * 4), *bi = malloc(rows * ng * 4);
    for (size_t i = 0; i < rows * ng; i++) {
        float s = 0.05f * stb_randf(&seed), b = stb_randf(&seed);
        if (pdt == DTYPE_F32) {
            ((float *)sc)[i] = s;
            ((float *)bi)[i] = b;
        } else {
            ((uint16_t *)sc)[i] = pdt == DTYPE_F16 ? f32_to_f16(s) : f32_to_bf16(s);
            ((uint16_t *)bi)[i] = pdt == DTYPE_F16 ? f32_to_f16(b) : f32_to_bf16(b);
        }
    }
    struct kernel_mat w = {.rows = rows, .cols = cols, .quantized = true, .x8 = x8};
    w.q = (struct quant_matrix){.rows = rows,
                                .cols = cols,
                                .bits = bits,
                                .group_size = gs,
                                .param_dtype = pdt,
                                .q = q,
                                .scales = sc,
                                .biases = bi};
    float *x = rand_floats(n * cols, &seed, 1.0f), *wrow = malloc(cols * sizeof(float));
    float *scratch = malloc((kernel_matmul_scratch(&w, n) + 1) * sizeof(float));
    float *y = malloc(n * rows * sizeof(float)), *xd = malloc(ng * 4), *xs = malloc(ng * 4);
    int8_t *xq = malloc(cols);
    kernel_isa_set(isa);
    kernel_matmul(pool1, &w, x, n, NULL, y, scratch);
    double worst = 0, worst_float = 0;
    for (size_t t = 0; t < n; t++) {
        const float *xt = x + t * cols;
        quant_x8_quantize(xt, cols, gs, false, xq, xd, xs);
        for (size_t r = 0; r < rows; r++) {
            quant_dequantize_row(&w.q, r, wrow);
            double mag = 0, exact = 0;
            for (size_t c = 0; c < cols; c++) {
                mag += fabs((double)wrow[c] * xt[c]);
                exact += (double)wrow[c] * xt[c];
            }
            bool int8 = x8 && (bits == 4 || bits == 8);
            float want = int8 ? quant_dot_row_x8_ref(&w.q, r, xq, xd, xs)
                              : quant_dot_row_ref(&w.q, r, xt, xs);
            double e = fabs(y[t * rows + r] - want) / mag;
            worst = e > worst || isnan(e) ? e : worst;
            e = fabs(y[t * rows + r] - exact) / mag;
            worst_float = e > worst_float || isnan(e) ? e : worst_float;
        }
    }
    CHECK_MSG(worst < 1e-5, "q%d g%d %s %zux%zu n=%zu isa %s x8 %d: relative error %g", bits, gs,
              dtype_name(pdt), rows, cols, n, kernel_isa_name(kernel_isa_get()), x8, worst);
    /* int8 activations: a fraction of a percent of sum |w x| */
    CHECK_MSG(worst_float < 1e-2, "q%d g%d: error against float math %g", bits, gs, worst_float);
    check_invariance(&w, x, n, y, "quant");
    kernel_isa_set(KERNEL_ISA_AVX512);
    free(q);
    free(sc);
    free(bi);
    free(x);
    free(wrow);
    free(scratch);
    free(y);
    free(xd);
    free(xs);
    free(xq);
}

static void test_matmul_quant(void)
{
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    for (int isa = KERNEL_ISA_SCALAR; isa <= KERNEL_ISA_AVX512; isa += 2)
        for (size_t b = 0; b < sizeof(bits) / sizeof(bits[0]); b++)
            for (int gs = 32; gs <= 128; gs *= 2)
                for (size_t mult = 1; mult <= 5; mult += 2)
                    for (size_t n = 1; n <= 6; n += n == 1 ? 2 : 3) /* 1, 3, 6 */
                        for (int x8 = 0; x8 <= 1; x8++)
                            check_quant(bits[b], gs, 37, (size_t)gs * mult, n,
                                        mult == 3 ? DTYPE_BF16 : DTYPE_F16, (enum kernel_isa)isa,
                                        x8);
    check_quant(4, 64, 19, 2048, 9, DTYPE_F32, KERNEL_ISA_AVX512, true);
    /* 4-bit: an odd number of 128-code chunks then both tails (480 = 3 * 128 + 64 + 32);
     * 8-bit: an odd number of groups */
    check_quant(4, 32, 23, 480, 5, DTYPE_F16, KERNEL_ISA_AVX512, true);
    check_quant(8, 64, 23, 448, 5, DTYPE_BF16, KERNEL_ISA_AVX512, true);
}

/*
 * BF16 weights with x8 on AVX512-BF16: bf16 activations.  Against
 * kernel_matmul_ref over x rounded to bf16 the same way, within 1e-5 of
 * sum |w x|; without x8 the float path (checked above) is kept.
 */
static void check_bf16x(size_t rows, size_t cols, size_t n)
{
    uint64_t seed = 91 + rows * 7 + cols;
    uint16_t *raw = malloc(rows * cols * 2);
    for (size_t i = 0; i < rows * cols; i++)
        raw[i] = f32_to_bf16(stb_randf(&seed));
    float *x = rand_floats(n * cols, &seed, 1.0f), *xr = malloc(n * cols * sizeof(float));
    for (size_t i = 0; i < n * cols; i++)
        xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
    struct kernel_mat w = {
        .rows = rows, .cols = cols, .dtype = DTYPE_BF16, .data = raw, .x8 = true};
    float *scratch = malloc((kernel_matmul_scratch(&w, n) + 1) * sizeof(float));
    float *ref = malloc(n * rows * sizeof(float)), *y = malloc(n * rows * sizeof(float));
    kernel_matmul_ref(&w, xr, n, NULL, ref, scratch);
    kernel_matmul(pool1, &w, x, n, NULL, y, scratch);
    double worst = 0.0;
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < rows; r++) {
            double mag = 0.0;
            for (size_t c = 0; c < cols; c++)
                mag += fabs(bf16_to_f32(raw[r * cols + c]) * xr[t * cols + c]);
            double e = fabs(y[t * rows + r] - ref[t * rows + r]) / (mag + 1e-30);
            worst = e > worst ? e : worst;
        }
    CHECK_MSG(worst <= 1e-5, "bf16x %zux%zu n=%zu: relative error %g", rows, cols, n, worst);
    check_invariance(&w, x, n, y, "bf16x");
    free(raw);
    free(x);
    free(xr);
    free(scratch);
    free(ref);
    free(y);
}

static void test_matmul_bf16x(void)
{
    if (kernel_isa_detect() < KERNEL_ISA_AVX512BF16) {
        printf("     (no AVX512-BF16 on this CPU: nothing to check)\n");
        return;
    }
    kernel_isa_set(KERNEL_ISA_AVX512BF16);
    /* whole 64-element steps, a partial step under and over 32, odd sizes */
    static const size_t cols[] = {64, 256, 2048, 31, 97, 131, 1};
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
        for (size_t n = 1; n <= 9; n += 4) /* 1, 5, 9 */
            check_bf16x(37, cols[i], n);
    /* a lower level keeps the float path even with x8 */
    kernel_isa_set(KERNEL_ISA_AVX512);
    struct kernel_mat w = {.rows = 3, .cols = 64, .dtype = DTYPE_BF16, .x8 = true};
    uint16_t raw[3 * 64];
    uint64_t seed = 3;
    for (size_t i = 0; i < 3 * 64; i++)
        raw[i] = f32_to_bf16(stb_randf(&seed));
    w.data = raw;
    float x[64], y[3], yf[3], scratch[64 + 32 + 1];
    for (int i = 0; i < 64; i++)
        x[i] = stb_randf(&seed) * 1.001f;
    kernel_matmul(NULL, &w, x, 1, NULL, yf, scratch);
    kernel_isa_set(KERNEL_ISA_AVX512BF16);
    kernel_matmul(NULL, &w, x, 1, NULL, y, scratch);
    CHECK_MSG(memcmp(y, yf, sizeof(y)) != 0, "bf16x: the bf16 path did not round x");
    kernel_isa_set(kernel_isa_detect());
}

/* q/k/v-like matrices in one job equal three separate calls bit for bit */
static void test_matmul_multi(void)
{
    size_t cols = 256, n = 5, rows[3] = {40, 24, 19};
    uint64_t seed = 11;
    for (int quant = 0; quant <= 1; quant++) {
        struct kernel_mat w[3];
        void *raw[3];
        uint16_t *par[3];
        for (int i = 0; i < 3; i++) {
            raw[i] = malloc(rows[i] * cols * 2);
            par[i] = malloc(rows[i] * cols / 64 * 2 * 2);
            for (size_t k = 0; k < rows[i] * cols; k++)
                ((uint16_t *)raw[i])[k] = f32_to_bf16(stb_randf(&seed));
            for (size_t k = 0; k < rows[i] * cols / 64 * 2; k++)
                par[i][k] = f32_to_f16(0.1f * stb_randf(&seed));
            w[i] = (struct kernel_mat){.rows = rows[i],
                                       .cols = cols,
                                       .dtype = DTYPE_BF16,
                                       .data = raw[i],
                                       .quantized = quant,
                                       .x8 = true};
            w[i].q = (struct quant_matrix){.rows = rows[i],
                                           .cols = cols,
                                           .bits = 4,
                                           .group_size = 64,
                                           .param_dtype = DTYPE_F16,
                                           .q = raw[i],
                                           .scales = par[i],
                                           .biases = par[i] + rows[i] * cols / 64};
        }
        float *x = rand_floats(n * cols, &seed, 1.0f), *bias = rand_floats(64, &seed, 1.0f);
        float *scratch = malloc((kernel_matmul_scratch(&w[0], n) + 1) * sizeof(float));
        float *ya[3], *yb[3];
        for (int i = 0; i < 3; i++) {
            ya[i] = malloc(n * rows[i] * sizeof(float));
            yb[i] = malloc(n * rows[i] * sizeof(float));
            kernel_matmul(pool1, &w[i], x, n, i == 1 ? bias : NULL, ya[i], scratch);
        }
        const struct kernel_mat *wp[3] = {&w[0], &w[1], &w[2]};
        const float *bp[3] = {NULL, bias, NULL};
        kernel_matmul_multi(pool2, 3, wp, x, n, bp, yb, scratch);
        for (int i = 0; i < 3; i++) {
            CHECK_MSG(memcmp(ya[i], yb[i], n * rows[i] * sizeof(float)) == 0,
                      "multi: matrix %d differs (quant %d)", i, quant);
            free(ya[i]);
            free(yb[i]);
            free(raw[i]);
            free(par[i]);
        }
        free(x);
        free(bias);
        free(scratch);
    }
}

static void test_attention_online(void)
{
    enum { HDMAX = 64, CTX = 45, BT = 4 };
    static const int dims[] = {16, 64, 12};
    uint64_t seed = 3;
    int nblocks = (CTX + BT - 1) / BT, blocks[16];
    for (int i = 0; i < nblocks; i++)
        blocks[i] = (i * 7 + 3) % nblocks; /* scrambled table */
    size_t kvd = 2 * HDMAX;
    float *k = rand_floats((size_t)nblocks * BT * kvd, &seed, 1.0f);
    float *v = rand_floats((size_t)nblocks * BT * kvd, &seed, 1.0f);
    float *q = rand_floats(HDMAX, &seed, 2.0f), att[CTX], want[HDMAX], got[HDMAX];
    struct kernel_kv_view view = {.k = k,
                                  .v = v,
                                  .dtype = DTYPE_F32,
                                  .block_stride = BT * kvd,
                                  .kv_dim = kvd,
                                  .block_tokens = BT,
                                  .blocks = blocks};
    for (int f16 = 0; f16 < 2; f16++)
        for (int isa = KERNEL_ISA_SCALAR; isa <= KERNEL_ISA_AVX2; isa++)
            for (size_t d = 0; d < 3; d++)
                for (int start = 0; start <= 20; start += 20)
                    for (int n_ctx = start + 1; n_ctx <= CTX; n_ctx += 11) {
                        int hd = dims[d];
                        view.head_dim = hd;
                        if (f16 && view.dtype == DTYPE_F32) { /* the same values, rounded */
                            size_t n = (size_t)nblocks * BT * kvd;
                            for (size_t i = 0; i < n; i++) {
                                ((uint16_t *)k)[i] = f32_to_f16(k[i]);
                                ((uint16_t *)v)[i] = f32_to_f16(v[i]);
                            }
                            view.dtype = DTYPE_F16;
                        }
                        kernel_isa_set((enum kernel_isa)isa);
                        kernel_attention_ref(q, &view, (size_t)hd, hd, start, n_ctx, 0.3f, att,
                                             want);
                        kernel_attention(q, &view, (size_t)hd, hd, start, n_ctx, 0.3f, got);
                        double worst = 0;
                        for (int i = 0; i < hd; i++) {
                            double e = fabs(got[i] - want[i]) / (1.0 + fabs(want[i]));
                            worst = e > worst || isnan(e) ? e : worst;
                        }
                        CHECK_MSG(worst < 1e-5, "attention %s hd %d ctx %d..%d isa %s: error %g",
                                  f16 ? "F16" : "F32", hd, start, n_ctx,
                                  kernel_isa_name((enum kernel_isa)isa), worst);
                    }
    kernel_isa_set(KERNEL_ISA_AVX512);
    free(k);
    free(v);
    free(q);
}

/* kernel_x8_quantize gives quant_x8_quantize's bytes and floats bit for
 * bit: groups 16-128, both layouts, an all-zero group, mixed scales. */
static void test_x8_quantize(void)
{
    static const int groups[] = {16, 32, 64, 128};
    static const size_t cols_of[] = {128, 256, 896, 2048};
    uint64_t seed = 41;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++)
        for (size_t gi = 0; gi < 4; gi++)
            for (size_t ci = 0; ci < 4; ci++)
                for (int pair = 0; pair < 2; pair++) {
                    size_t cols = cols_of[ci], gs = (size_t)groups[gi], ng = cols / gs;
                    float *x = rand_floats(cols, &seed, 3.0f);
                    for (size_t k = 0; k < cols; k++)
                        x[k] *= k % 5 == 0 ? 40.0f : 1.0f;
                    for (size_t k = gs; k < 2 * gs && k < cols; k++)
                        x[k] = 0.0f; /* a group of zeros: xd 0, codes 0 */
                    int8_t *qa = malloc(cols), *qb = malloc(cols);
                    float *da = malloc(ng * sizeof(float)), *db = malloc(ng * sizeof(float));
                    float *sa = malloc(ng * sizeof(float)), *sb = malloc(ng * sizeof(float));
                    kernel_isa_set((enum kernel_isa)isa);
                    quant_x8_quantize(x, cols, (int)gs, pair, qa, da, sa);
                    kernel_x8_quantize(x, cols, (int)gs, pair, qb, db, sb);
                    CHECK_MSG(memcmp(qa, qb, cols) == 0 &&
                                  memcmp(da, db, ng * sizeof(float)) == 0 &&
                                  memcmp(sa, sb, ng * sizeof(float)) == 0,
                              "isa %s cols %zu group %zu pair %d: differs",
                              kernel_isa_name((enum kernel_isa)isa), cols, gs, pair);
                    free(x);
                    free(qa);
                    free(qb);
                    free(da);
                    free(db);
                    free(sa);
                    free(sb);
                }
    kernel_isa_set(kernel_isa_detect());
}

/* kernel_exp gives kernel_expf_ref's bits lane for lane (any length, the
 * clamps, -inf, NaN, subnormal results), and within 3 ulp of e^x for x up
 * to KERNEL_EXP_HI where the result is normal, at every ISA. */
static void test_exp_isa(enum kernel_isa isa)
{
    kernel_isa_set(isa);
    enum { N = 20000 };
    static const float special[] = {-INFINITY, INFINITY, NAN,    -0.0f, 0.0f,   -150.0f, -151.0f,
                                    -149.9f,   -103.5f,  -87.4f, 88.7f, 88.71f, 100.0f,  1e-30f};
    uint64_t seed = 43;
    float *x = malloc((N + 14) * sizeof(float)), *y = malloc((N + 14) * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = 150.0f * stb_randf(&seed) - 60.0f; /* about [-210, 90] */
    memcpy(x + N, special, sizeof(special));
    int bad_bits = 0, bad_ulp = 0;
    for (size_t len = 1; len <= 33; len += 4) { /* tails of every length mod 16 */
        kernel_exp(x, y, len);
        for (size_t i = 0; i < len; i++) {
            float want = kernel_expf_ref(x[i]);
            bad_bits += memcmp(&want, &y[i], sizeof(float)) != 0;
        }
    }
    kernel_exp(x, y, N + 14);
    for (int i = 0; i < N + 14; i++) {
        float want = kernel_expf_ref(x[i]);
        bad_bits += memcmp(&want, &y[i], sizeof(float)) != 0;
        double e = exp((double)x[i]);
        if (x[i] <= KERNEL_EXP_HI && e >= 1.1754944e-38) /* clamped above */
            bad_ulp += fabs(y[i] - e) > 3.0 * e * 5.96e-8;
    }
    CHECK_MSG(bad_bits == 0, "kernel_exp isa %s: %d results differ from kernel_expf_ref",
              kernel_isa_name(isa), bad_bits);
    CHECK_MSG(bad_ulp == 0, "kernel_exp isa %s: %d results off by more than 3 ulp",
              kernel_isa_name(isa), bad_ulp);
    CHECK(kernel_expf_ref(-INFINITY) == 0.0f && kernel_expf_ref(-151.0f) == 0.0f);
    CHECK(kernel_expf_ref(0.0f) == 1.0f);
    free(x);
    free(y);
}

static void test_exp(void)
{
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++)
        test_exp_isa((enum kernel_isa)isa);
    kernel_isa_set(kernel_isa_detect());
}

/* The lengths the whole-vocabulary kernels' tests try, after n (starting
 * at 1): every length to 40 (each tail mod 16, over two and a half
 * vectors), then `last`, a vocabulary's; past last it returns last + 1. */
static int next_length(int n, int last)
{
    return n < 40 ? n + 1 : n == last ? last + 1 : last;
}

/* kernel_shift_scale gives kernel_shift_scale_ref's bits at every ISA
 * (every tail length, infinities and NaN included). */
static void test_shift_scale(void)
{
    enum { N = 32003 };
    float *x = malloc(N * sizeof(float)), *want = malloc(N * sizeof(float));
    float *got = malloc(N * sizeof(float));
    uint64_t seed = 59;
    for (int i = 0; i < N; i++)
        x[i] = 40.0f * stb_randf(&seed);
    x[3] = INFINITY;
    x[7] = -INFINITY;
    x[11] = NAN;
    int bad = 0;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++) {
        kernel_isa_set((enum kernel_isa)isa);
        for (size_t n = 1; n <= N; n = (size_t)next_length((int)n, N)) {
            memcpy(want, x, n * sizeof(float));
            memcpy(got, x, n * sizeof(float));
            kernel_shift_scale_ref(want, 12.5f, 1.0f / 0.7f, n);
            kernel_shift_scale(got, 12.5f, 1.0f / 0.7f, n);
            bad += memcmp(want, got, n * sizeof(float)) != 0;
        }
    }
    kernel_isa_set(kernel_isa_detect());
    CHECK_MSG(bad == 0, "kernel_shift_scale: %d lengths differ from the reference", bad);
    float one[2] = {5.0f, -INFINITY};
    kernel_shift_scale_ref(one, 1.0f, 0.5f, 2);
    CHECK(one[0] == 2.0f && one[1] == -INFINITY);
    free(x);
    free(want);
    free(got);
}

/* kernel_select_ge lists what kernel_select_ge_ref lists at every ISA
 * (every tail length, thresholds keeping none, some, all; NaN and
 * infinities in x and as the threshold), and writes nothing past its
 * count. */
static void test_select_ge(void)
{
    enum { N = 32003 };
    float *x = malloc(N * sizeof(float));
    int32_t *want = malloc(N * sizeof(int32_t)), *got = malloc((N + 1) * sizeof(int32_t));
    uint64_t seed = 67;
    for (int i = 0; i < N; i++)
        x[i] = stb_randf(&seed);
    x[2] = NAN;
    x[9] = INFINITY;
    x[17] = -INFINITY;
    static const float ts[] = {2.0f, 0.999f, 0.5f, 0.0f, -1.0f, -INFINITY, INFINITY, NAN};
    int bad = 0;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++) {
        kernel_isa_set((enum kernel_isa)isa);
        for (int ti = 0; ti < 8; ti++)
            for (int n = 1; n <= N; n = next_length(n, N)) {
                int cw = kernel_select_ge_ref(x, n, ts[ti], want);
                for (int i = 0; i <= n; i++)
                    got[i] = -7;
                int cg = kernel_select_ge(x, n, ts[ti], got);
                bad += cw != cg || memcmp(want, got, (size_t)cw * sizeof(int32_t)) != 0 ||
                       got[cg] != -7;
            }
    }
    kernel_isa_set(kernel_isa_detect());
    CHECK_MSG(bad == 0, "kernel_select_ge: %d cases differ from the reference", bad);
    float hand[5] = {0.5f, NAN, 0.7f, 0.5f, 0.1f};
    int32_t list[5];
    CHECK_INT_EQ(kernel_select_ge_ref(hand, 5, 0.5f, list), 3);
    CHECK(list[0] == 0 && list[1] == 2 && list[2] == 3);
    free(x);
    free(want);
    free(got);
}

/* kernel_block_sums16 gives kernel_block_sums16_ref's bits at every ISA
 * for every tail length and a vocabulary's; and the reference adds as the
 * tree it promises (x[0] + x[8] first). */
static void test_block_sums16(void)
{
    enum { N = 32003 };
    float *x = malloc(N * sizeof(float));
    double *want = malloc((N / 16 + 1) * sizeof(double)),
           *got = malloc((N / 16 + 1) * sizeof(double));
    uint64_t seed = 61;
    for (int i = 0; i < N; i++) /* magnitudes far apart: the order shows */
        x[i] = ldexpf(stb_randf(&seed), (int)(60.0f * stb_randf(&seed)));
    int bad = 0;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++) {
        kernel_isa_set((enum kernel_isa)isa);
        for (size_t n = 1; n <= N; n = (size_t)next_length((int)n, N)) {
            size_t nb = (n + 15) / 16;
            kernel_block_sums16_ref(x, n, want);
            kernel_block_sums16(x, n, got);
            bad += memcmp(want, got, nb * sizeof(double)) != 0;
        }
    }
    kernel_isa_set(kernel_isa_detect());
    CHECK_MSG(bad == 0, "kernel_block_sums16: %d lengths differ from the reference", bad);
    /* in order, 2^53 + 1 would round back to 2^53 and the block sum to 0 */
    float tree[16] = {0};
    tree[0] = 9007199254740992.0f;
    tree[8] = -9007199254740992.0f;
    tree[1] = 1.0f;
    double one;
    kernel_block_sums16_ref(tree, 16, &one);
    CHECK(one == 1.0);
    free(x);
    free(want);
    free(got);
}

/* kernel_scaled_exp_sums16 gives its reference's values and block sums
 * bit for bit at every ISA (every tail length and a vocabulary's; the
 * maximum, -inf, +inf and NaN among the logits), the reference is
 * kernel_shift_scale then kernel_exp then kernel_block_sums16, and x is
 * left as it was. */
static void test_scaled_exp_sums16(void)
{
    enum { N = 32003 };
    float *x = malloc(N * sizeof(float)), *want = malloc(N * sizeof(float));
    float *got = malloc(N * sizeof(float)), *x0 = malloc(N * sizeof(float));
    double *wsum = malloc((N / 16 + 1) * sizeof(double)),
           *gsum = malloc((N / 16 + 1) * sizeof(double));
    uint64_t seed = 71;
    for (int i = 0; i < N; i++)
        x[i] = 30.0f * stb_randf(&seed) - 10.0f;
    x[5] = 20.0f; /* the shift: e^0 */
    x[6] = -INFINITY;
    x[13] = INFINITY;
    x[21] = NAN;
    memcpy(x0, x, N * sizeof(float));
    const float shift = 20.0f, scale = 1.0f / 0.8f;
    int bad = 0;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++) {
        kernel_isa_set((enum kernel_isa)isa);
        for (size_t n = 1; n <= N; n = (size_t)next_length((int)n, N)) {
            size_t nb = (n + 15) / 16;
            kernel_scaled_exp_sums16_ref(x, shift, scale, want, n, wsum);
            kernel_scaled_exp_sums16(x, shift, scale, got, n, gsum);
            bad += memcmp(want, got, n * sizeof(float)) != 0 ||
                   memcmp(wsum, gsum, nb * sizeof(double)) != 0;
        }
    }
    kernel_isa_set(kernel_isa_detect());
    CHECK_MSG(bad == 0, "kernel_scaled_exp_sums16: %d lengths differ from the reference", bad);
    CHECK(memcmp(x, x0, N * sizeof(float)) == 0);
    /* the reference against the three kernels it fuses */
    memcpy(got, x, N * sizeof(float));
    kernel_shift_scale_ref(got, shift, scale, N);
    kernel_exp(got, got, N);
    kernel_block_sums16_ref(got, N, gsum);
    kernel_scaled_exp_sums16_ref(x, shift, scale, want, N, wsum);
    CHECK(memcmp(want, got, N * sizeof(float)) == 0);
    CHECK(memcmp(wsum, gsum, (N / 16 + 1) * sizeof(double)) == 0);
    CHECK(want[5] == 1.0f && want[6] == 0.0f);
    free(x);
    free(x0);
    free(want);
    free(got);
    free(wsum);
    free(gsum);
}

/* kernel_argmax gives kernel_argmax_ref's index at every ISA: lengths of
 * every tail mod 16 and a vocabulary's, values with many ties (the lowest
 * index wins), NaN anywhere, -inf everywhere; and the reference itself on
 * cases worked by hand. */
static void test_argmax(void)
{
    enum { N = 32003 };
    float *x = malloc(N * sizeof(float));
    uint64_t seed = 53;
    static const float hand[][5] = {
        {NAN, 1.0f, 3.0f, 3.0f, 2.0f},
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
        {NAN, NAN, NAN, NAN, NAN},
        {-0.0f, 0.0f, -1.0f, NAN, -0.0f},
        {1.0f, NAN, INFINITY, 5.0f, INFINITY},
    };
    static const int want[] = {2, 0, 0, 0, 2};
    for (int h = 0; h < 5; h++)
        CHECK_MSG(kernel_argmax_ref(hand[h], 5) == want[h], "hand case %d: %d", h,
                  kernel_argmax_ref(hand[h], 5));
    int bad = 0, cases = 0;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++) {
        kernel_isa_set((enum kernel_isa)isa);
        for (int h = 0; h < 5; h++)
            bad += kernel_argmax(hand[h], 5) != want[h];
        for (int kind = 0; kind < 4; kind++)
            for (int n = 1; n <= N; n = next_length(n, N)) {
                for (int i = 0; i < n; i++) {
                    float r = stb_randf(&seed);
                    /* kind 0: distinct; 1: eight values, ties everywhere;
                     * 2: NaN sprinkled; 3: -inf but a few */
                    x[i] = kind == 1   ? (float)(int)(8.0f * r)
                           : kind == 3 ? (r > 0.97f ? r : -INFINITY)
                                       : r;
                    if (kind == 2 && stb_randf(&seed) > 0.7f)
                        x[i] = NAN;
                }
                cases++;
                bad += kernel_argmax(x, n) != kernel_argmax_ref(x, n);
            }
    }
    kernel_isa_set(kernel_isa_detect());
    CHECK_MSG(bad == 0, "kernel_argmax: %d of %d cases differ from the reference", bad, cases);
    free(x);
}

/* kernel_silu_mul within 1e-5 relative of the reference at every ISA, for
 * lengths that do and do not split over the pool, large |x| included. */
static void test_silu_mul(void)
{
    static const size_t lens[] = {1, 15, 17, 4095, 4096, 10000};
    uint64_t seed = 47;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++)
        for (size_t li = 0; li < 6; li++) {
            size_t n = lens[li];
            float *g = rand_floats(n, &seed, 12.0f), *u = rand_floats(n, &seed, 2.0f);
            float *want = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i += 97)
                g[i] *= 10.0f; /* out to about +-120: exp(-x) overflows */
            memcpy(want, g, n * sizeof(float));
            kernel_silu_mul_ref(want, u, n);
            kernel_isa_set((enum kernel_isa)isa);
            kernel_silu_mul(pool2, g, u, n);
            double worst = 0;
            for (size_t i = 0; i < n; i++) {
                double e = fabs(g[i] - want[i]) / (1.0 + fabs(want[i]));
                worst = e > worst || isnan(e) ? e : worst;
            }
            CHECK_MSG(worst < 1e-5, "silu_mul isa %s n %zu: error %g",
                      kernel_isa_name((enum kernel_isa)isa), n, worst);
            free(g);
            free(u);
            free(want);
        }
    kernel_isa_set(kernel_isa_detect());
}

/* kernel_rmsnorm within 1e-5 relative of the reference at every ISA, for
 * lengths with and without a partial vector, in place too. */
static void test_rmsnorm(void)
{
    static const size_t lens[] = {1, 15, 16, 17, 64, 768, 2049};
    uint64_t seed = 53;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++)
        for (size_t li = 0; li < 7; li++) {
            size_t n = lens[li];
            float *x = rand_floats(n, &seed, 3.0f), *w = rand_floats(n, &seed, 2.0f);
            float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
            kernel_rmsnorm_ref(want, x, w, n, 1e-5f);
            kernel_isa_set((enum kernel_isa)isa);
            kernel_rmsnorm(got, x, w, n, 1e-5f);
            kernel_rmsnorm(x, x, w, n, 1e-5f); /* out aliasing x */
            double worst = 0;
            for (size_t i = 0; i < n; i++) {
                double e = fabs(got[i] - want[i]) / (1.0 + fabs(want[i]));
                worst = e > worst || isnan(e) ? e : worst;
                CHECK_MSG(x[i] == got[i], "rmsnorm in place differs at %zu", i);
            }
            CHECK_MSG(worst < 1e-5, "rmsnorm isa %s n %zu: error %g",
                      kernel_isa_name((enum kernel_isa)isa), n, worst);
            free(x);
            free(w);
            free(want);
            free(got);
        }
    kernel_isa_set(kernel_isa_detect());
}

/* kernel_rope gives kernel_rope_ref's bits at every ISA, for head sizes
 * whose half is and is not a multiple of 16. */
static void test_rope(void)
{
    static const int dims[] = {8, 34, 64, 128, 256};
    uint64_t seed = 59;
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++)
        for (int di = 0; di < 5; di++) {
            int hd = dims[di], heads = 3;
            size_t n = (size_t)heads * (size_t)hd;
            float *x = rand_floats(n, &seed, 4.0f), *want = malloc(n * sizeof(float));
            float *inv_freq = malloc((size_t)hd / 2 * sizeof(float)),
                  *cs = malloc((size_t)hd * sizeof(float));
            for (int i = 0; i < hd / 2; i++)
                inv_freq[i] = powf(10000.0f, -2.0f * (float)i / (float)hd);
            kernel_rope_angles(cs, hd, inv_freq, 1234);
            memcpy(want, x, n * sizeof(float));
            kernel_rope_ref(want, heads, hd, cs);
            kernel_isa_set((enum kernel_isa)isa);
            kernel_rope(x, heads, hd, cs);
            CHECK_MSG(memcmp(x, want, n * sizeof(float)) == 0, "rope isa %s head_dim %d differs",
                      kernel_isa_name((enum kernel_isa)isa), hd);
            free(x);
            free(want);
            free(inv_freq);
            free(cs);
        }
    kernel_isa_set(kernel_isa_detect());
}

/* kernel_f32_to_f16 gives f32_to_f16's bits (any length; rounding ties,
 * subnormal and overflowing results, infinities) at every ISA. */
static void test_f32_to_f16(void)
{
    enum { N = 5000 };
    static const float special[] = {0.0f,
                                    -0.0f,
                                    65504.0f,
                                    65520.0f,
                                    65519.99f,
                                    1e9f,
                                    -INFINITY,
                                    INFINITY,
                                    6e-8f,
                                    3e-8f,
                                    2.9e-8f,
                                    1e-30f,
                                    6.1e-5f,
                                    -6.09e-5f,
                                    1.0f + 1.0f / 2048,
                                    1.0f + 3.0f / 2048};
    uint64_t seed = 53;
    float x[N];
    uint16_t want[N], got[N];
    for (int i = 0; i < N; i++) {
        float r = stb_randf(&seed); /* magnitudes from 1e-9 to 1e6 */
        x[i] = r * powf(10.0f, (float)(i % 16) - 9.0f);
    }
    memcpy(x, special, sizeof(special));
    for (int i = 0; i < N; i++)
        want[i] = f32_to_f16(x[i]);
    for (int isa = KERNEL_ISA_SCALAR; isa <= (int)kernel_isa_detect(); isa++) {
        kernel_isa_set((enum kernel_isa)isa);
        for (size_t len = 1; len <= N; len = len * 3 + 1) {
            memset(got, 0, sizeof(got));
            kernel_f32_to_f16(x, got, len);
            CHECK_MSG(memcmp(got, want, len * sizeof(uint16_t)) == 0, "isa %s length %zu differs",
                      kernel_isa_name((enum kernel_isa)isa), len);
        }
    }
    kernel_isa_set(kernel_isa_detect());
}

struct count_job {
    atomic_int calls;
    atomic_long sum;
    int n_chunks;
};

static void count_run(void *ctx, int chunk)
{
    struct count_job *j = ctx;
    size_t lo, hi;
    threadpool_split(1000, 16, chunk, j->n_chunks, &lo, &hi);
    long s = 0;
    for (size_t i = lo; i < hi; i++)
        s += (long)i;
    atomic_fetch_add(&j->calls, 1);
    atomic_fetch_add(&j->sum, s);
}

/* kernel_isa_by_name: every level up to the detected one by its name, none
 * above it, no unknown name. */
static void test_isa_by_name(void)
{
    enum kernel_isa top = kernel_isa_detect(), got = KERNEL_ISA_SCALAR;
    for (enum kernel_isa isa = KERNEL_ISA_SCALAR; isa <= KERNEL_ISA_AMX; isa++) {
        bool found = kernel_isa_by_name(kernel_isa_name(isa), &got);
        CHECK_MSG(found == (isa <= top), "%s: found %d with %s detected", kernel_isa_name(isa),
                  found, kernel_isa_name(top));
        CHECK(!found || got == isa);
    }
    CHECK(!kernel_isa_by_name("avx3", &got));
    CHECK(!kernel_isa_by_name("", &got));
}

static void test_threadpool(void)
{
    char err[256];
    CHECK(threadpool_physical_cores() >= 1);
    for (int n = 1; n <= 3; n++) {
        struct threadpool *p = NULL;
        CHECK_INT_EQ(threadpool_create(n, &p, err, sizeof(err)), ST_OK);
        CHECK_INT_EQ(threadpool_size(p), n);
        for (int rep = 0; rep < 300; rep++) {
            struct count_job j = {.n_chunks = 1 + rep % 17};
            threadpool_run(p, count_run, &j, j.n_chunks);
            CHECK_INT_EQ(atomic_load(&j.calls), j.n_chunks);
            CHECK_INT_EQ(atomic_load(&j.sum), 999L * 1000 / 2);
        }
        CHECK(threadpool_chunks(p, 3) <= 3 && threadpool_chunks(p, 0) == 1);
        threadpool_free(p);
    }
    struct threadpool *p = NULL;
    CHECK_INT_EQ(threadpool_create(-1, &p, err, sizeof(err)), ST_ERR_RANGE);
    CHECK(p == NULL);
    CHECK_INT_EQ(threadpool_create(0, &p, err, sizeof(err)), ST_OK);
    CHECK_INT_EQ(threadpool_size(p), threadpool_physical_cores());
    threadpool_free(p);
    threadpool_free(NULL);
    struct count_job j = {.n_chunks = 3};
    threadpool_run(NULL, count_run, &j, 3);
    CHECK_INT_EQ(atomic_load(&j.calls), 3);
    CHECK_INT_EQ(atomic_load(&j.sum), 999L * 1000 / 2);
    /* splits cover the range once, in aligned pieces */
    size_t lo, hi, next = 0;
    for (int i = 0; i < 3; i++) {
        threadpool_split(100, 16, i, 3, &lo, &hi);
        CHECK_INT_EQ(lo, next);
        CHECK(lo % 16 == 0);
        next = hi;
    }
    CHECK_INT_EQ(next, 100);
}

int main(void)
{
    char err[256];
    printf("kernels: %s\n", kernel_isa_name(kernel_isa_detect()));
    if (threadpool_create(1, &pool1, err, sizeof(err)) != ST_OK ||
        threadpool_create(2, &pool2, err, sizeof(err)) != ST_OK) {
        printf("threadpool: %s\n", err);
        return 1;
    }
    RUN(test_threadpool);
    RUN(test_isa_by_name);
    RUN(test_matmul_float);
    RUN(test_matmul_quant);
    RUN(test_matmul_bf16x);
    RUN(test_matmul_multi);
    RUN(test_attention_online);
    RUN(test_x8_quantize);
    RUN(test_exp);
    RUN(test_argmax);
    RUN(test_shift_scale);
    RUN(test_block_sums16);
    RUN(test_scaled_exp_sums16);
    RUN(test_select_ge);
    RUN(test_silu_mul);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_f32_to_f16);
    threadpool_free(pool1);
    threadpool_free(pool2);
    return harness_finish();
}
