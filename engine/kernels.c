/*
 * kernels.c - scalar reference implementations of the forward-pass ops.
 *
 * The matmul walks weight rows in the outer loop and input rows in the inner
 * one, so a prefill chunk reads each weight row once however many tokens it
 * has; half-precision rows are upcast, and quantized rows unpacked, once into
 * scratch and reused.  Every dot product runs in dot_f32_ref's order, so a
 * row's result does not depend on how many other rows share the batch.
 */
#include "kernels.h"

#include <math.h>

/* kernel_matmul's int8 activations (n, cols), their scales and group sums */
static size_t x8_scratch(size_t cols, size_t group_size, size_t n)
{
    return n * ((cols + 3) / 4 + 2 * (cols / group_size)) + cols;
}

/* kernel_matmul's bf16 activations of several tokens (64-column steps, two
 * to a float), or the reference's upcast row */
static size_t bf16_scratch(size_t cols, size_t n)
{
    return n > 1 ? n * ((cols + 63) / 64 * 32) : cols;
}

size_t kernel_matmul_scratch(const struct kernel_mat *w, size_t n)
{
    if (w->quantized)
        return x8_scratch(w->cols, (size_t)w->q.group_size, n);
    if (w->dtype == DTYPE_BF16)
        return bf16_scratch(w->cols, n);
    return w->dtype == DTYPE_F32 ? 0 : w->cols;
}

size_t kernel_matmul_scratch_max(size_t cols, size_t n)
{
    size_t q = x8_scratch(cols, 32, n), b = bf16_scratch(cols, n);
    return q > b ? q : b;
}

static void upcast_row(const struct kernel_mat *w, size_t r, float *restrict out)
{
    const uint16_t *restrict src = (const uint16_t *)w->data + r * w->cols;
    if (w->dtype == DTYPE_F16)
        for (size_t i = 0; i < w->cols; i++)
            out[i] = f16_to_f32(src[i]);
    else
        for (size_t i = 0; i < w->cols; i++)
            out[i] = bf16_to_f32(src[i]);
}

void kernel_matmul_ref(const struct kernel_mat *w, const float *x, size_t n, const float *bias,
                       float *y, float *scratch)
{
    size_t rows = w->rows, cols = w->cols;
    if (w->quantized) {
        /* per group scale * dot(codes, x) + bias * sum(x), codes unpacked once per row */
        const struct quant_matrix *q = &w->q;
        size_t gs = (size_t)q->group_size, ng = cols / gs;
        float *xsum = scratch, *codes = scratch + n * ng;
        for (size_t t = 0; t < n; t++)
            quant_group_sums(x + t * cols, cols, q->group_size, xsum + t * ng);
        for (size_t r = 0; r < rows; r++) {
            quant_unpack_row(q, r, codes);
            for (size_t t = 0; t < n; t++) {
                const float *xt = x + t * cols, *st = xsum + t * ng;
                float acc = 0.0f;
                for (size_t g = 0; g < ng; g++) {
                    size_t pi = quant_param_index(q, r, g);
                    float s = dtype_load_f32(q->scales, q->param_dtype, pi);
                    float b = dtype_load_f32(q->biases, q->param_dtype, pi);
                    acc += s * dot_f32_ref(codes + g * gs, xt + g * gs, gs) + b * st[g];
                }
                y[t * rows + r] = acc;
            }
        }
    } else {
        for (size_t r = 0; r < rows; r++) {
            const float *wr;
            if (w->dtype == DTYPE_F32) {
                wr = (const float *)w->data + r * cols;
            } else {
                upcast_row(w, r, scratch);
                wr = scratch;
            }
            for (size_t t = 0; t < n; t++)
                y[t * rows + r] = dot_f32_ref(wr, x + t * cols, cols);
        }
    }
    if (bias)
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < rows; r++)
                y[t * rows + r] += bias[r];
}

void kernel_mat_row(const struct kernel_mat *w, size_t r, float *out)
{
    if (w->quantized)
        quant_dequantize_row(&w->q, r, out);
    else if (w->dtype == DTYPE_F32)
        for (size_t i = 0; i < w->cols; i++)
            out[i] = ((const float *)w->data)[r * w->cols + i];
    else
        upcast_row(w, r, out);
}

void kernel_rmsnorm_ref(float *out, const float *x, const float *weight, size_t n, float eps)
{
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * inv * weight[i];
}

void kernel_rope_angles(float *cs, int head_dim, const float *inv_freq, int pos)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* angles reach max_position * 1 rad; double keeps them exact enough */
        double a = (double)pos * (double)inv_freq[i];
        cs[i] = (float)cos(a);
        cs[half + i] = (float)sin(a);
    }
}

void kernel_rope_ref(float *x, int n_heads, int head_dim, const float *cs)
{
    int half = head_dim / 2;
    const float *c = cs, *s = cs + half;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)head_dim;
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i] = a * c[i] - b * s[i];
            v[i + half] = b * c[i] + a * s[i];
        }
    }
}

void kernel_silu_mul_ref(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void kernel_softmax_ref(float *x, size_t n)
{
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

float kernel_expf_ref(float x)
{
    x = fmaxf(fminf(x, KERNEL_EXP_HI), KERNEL_EXP_LO);
    float n = nearbyintf(x * 1.44269504f);
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r + 1.0f);
    return ldexpf(p, (int)n);
}

/* (x - shift) * scale, the difference rounded before the multiplication:
 * the one step kernel_shift_scale_ref and kernel_scaled_exp_sums16_ref
 * share. */
static float shifted_scaled(float x, float shift, float scale)
{
    float d = x - shift;
    return d * scale;
}

void kernel_shift_scale_ref(float *x, float shift, float scale, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = shifted_scaled(x[i], shift, scale);
}

int kernel_argmax_ref(const float *x, int n)
{
    int best = -1;
    float max = 0.0f;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > max)) {
            best = i;
            max = x[i];
        }
    return best < 0 ? 0 : best;
}

int kernel_select_ge_ref(const float *x, int n, float t, int32_t *out)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        if (x[i] >= t)
            out[c++] = i;
    return c;
}

void kernel_block_sums16_ref(const float *x, size_t n, double *out)
{
    for (size_t b = 0; b * 16 < n; b++) {
        double v[16];
        for (size_t k = 0; k < 16; k++)
            v[k] = b * 16 + k < n ? (double)x[b * 16 + k] : 0.0;
        for (size_t half = 8; half > 0; half /= 2)
            for (size_t k = 0; k < half; k++)
                v[k] += v[k + half];
        out[b] = v[0];
    }
}

void kernel_scaled_exp_sums16_ref(const float *x, float shift, float scale, float *y, size_t n,
                                  double *sums)
{
    for (size_t i = 0; i < n; i++)
        y[i] = kernel_expf_ref(shifted_scaled(x[i], shift, scale));
    kernel_block_sums16_ref(y, n, sums);
}

float kernel_kv_score_ref(const float *q, const struct kernel_kv_view *kv, int p, size_t head_off,
                          int head_dim)
{
    size_t k = kernel_kv_k(kv, p, head_off);
    float acc = 0.0f;
    for (int i = 0; i < head_dim; i++)
        acc += q[i] * dtype_load_f32(kv->k, kv->dtype, k + (size_t)i * (size_t)kv->block_tokens);
    return acc;
}

void kernel_attention_ref(const float *q, const struct kernel_kv_view *kv, size_t head_off,
                          int head_dim, int ctx_start, int n_ctx, float scale, float *att,
                          float *out)
{
    int n = n_ctx - ctx_start;
    for (int p = 0; p < n; p++)
        att[p] = kernel_kv_score_ref(q, kv, ctx_start + p, head_off, head_dim) * scale;
    kernel_softmax_ref(att, (size_t)n);
    for (int i = 0; i < head_dim; i++)
        out[i] = 0.0f;
    for (int p = 0; p < n; p++) {
        size_t v = kernel_kv_v(kv, ctx_start + p, head_off);
        float a = att[p];
        for (int i = 0; i < head_dim; i++)
            out[i] += a * dtype_load_f32(kv->v, kv->dtype, v + (size_t)i);
    }
}
