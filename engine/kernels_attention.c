/*
 * kernels_attention.c - kernel_attention: causal attention of one query head
 * over a sequence's KV cache with an online softmax (kernels.h), scalar and
 * AVX2 paths picked at run time.
 */
#include <math.h>

#include "kernels.h"
#include "kernels_x86.h"

/* ---------------------------------------------------------------------- */
/* attention                                                               */

static const float *kv_pos(const float *base, const struct kernel_kv_view *kv, int p)
{
    int b = kv->blocks[p / kv->block_tokens];
    return base + (size_t)b * kv->block_stride + (size_t)(p % kv->block_tokens) * kv->token_stride;
}

/* positions handled per softmax rescale */
#define ATT_CHUNK 16

static void attention_scalar(const float *q, const struct kernel_kv_view *kv, size_t head_off,
                             int hd, int ctx_start, int n_ctx, float scale, float *out)
{
    float m = -INFINITY, l = 0.0f, s[ATT_CHUNK];
    for (int i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (int p0 = ctx_start; p0 < n_ctx; p0 += ATT_CHUNK) {
        int np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
        float mc = m;
        for (int j = 0; j < np; j++) {
            s[j] = dot_f32_ref(q, kv_pos(kv->k, kv, p0 + j) + head_off, (size_t)hd) * scale;
            mc = s[j] > mc ? s[j] : mc;
        }
        float corr = expf(m - mc);
        l *= corr;
        for (int i = 0; i < hd; i++)
            out[i] *= corr;
        for (int j = 0; j < np; j++) {
            float e = expf(s[j] - mc);
            const float *v = kv_pos(kv->v, kv, p0 + j) + head_off;
            l += e;
            for (int i = 0; i < hd; i++)
                out[i] += e * v[i];
        }
        m = mc;
    }
    float inv = 1.0f / l;
    for (int i = 0; i < hd; i++)
        out[i] *= inv;
}

#ifdef KERNELS_X86
#define ATT_MAX_VEC 32 /* head_dim up to 256 */

TGT_AVX2 static void attention_avx2(const float *q, const struct kernel_kv_view *kv,
                                    size_t head_off, int hd, int ctx_start, int n_ctx, float scale,
                                    float *out)
{
    int nv = hd / 8;
    __m256 o[ATT_MAX_VEC], qv[ATT_MAX_VEC];
    for (int i = 0; i < nv; i++) {
        o[i] = _mm256_setzero_ps();
        qv[i] = _mm256_mul_ps(_mm256_loadu_ps(q + 8 * i), _mm256_set1_ps(scale));
    }
    float m = -INFINITY, l = 0.0f, s[ATT_CHUNK];
    for (int p0 = ctx_start; p0 < n_ctx; p0 += ATT_CHUNK) {
        int np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
        float mc = m;
        int j = 0;
        /* four positions at once: independent FMA chains */
        for (; j + 4 <= np; j += 4) {
            const float *k0 = kv_pos(kv->k, kv, p0 + j) + head_off;
            const float *k1 = kv_pos(kv->k, kv, p0 + j + 1) + head_off;
            const float *k2 = kv_pos(kv->k, kv, p0 + j + 2) + head_off;
            const float *k3 = kv_pos(kv->k, kv, p0 + j + 3) + head_off;
            __m256 a0 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k0));
            __m256 a1 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k1));
            __m256 a2 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k2));
            __m256 a3 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k3));
            for (int i = 1; i < nv; i++) {
                a0 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k0 + 8 * i), a0);
                a1 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k1 + 8 * i), a1);
                a2 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k2 + 8 * i), a2);
                a3 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k3 + 8 * i), a3);
            }
            s[j] = hsum8(a0);
            s[j + 1] = hsum8(a1);
            s[j + 2] = hsum8(a2);
            s[j + 3] = hsum8(a3);
        }
        for (; j < np; j++) {
            const float *k = kv_pos(kv->k, kv, p0 + j) + head_off;
            __m256 a = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k));
            for (int i = 1; i < nv; i++)
                a = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k + 8 * i), a);
            s[j] = hsum8(a);
        }
        for (j = 0; j < np; j++)
            mc = s[j] > mc ? s[j] : mc;
        if (mc > m) {
            __m256 corr = _mm256_set1_ps(expf(m - mc));
            l *= expf(m - mc);
            for (int i = 0; i < nv; i++)
                o[i] = _mm256_mul_ps(o[i], corr);
            m = mc;
        }
        for (j = 0; j < np; j++) {
            float e = expf(s[j] - m);
            const float *v = kv_pos(kv->v, kv, p0 + j) + head_off;
            __m256 ev = _mm256_set1_ps(e);
            l += e;
            for (int i = 0; i < nv; i++)
                o[i] = _mm256_fmadd_ps(ev, _mm256_loadu_ps(v + 8 * i), o[i]);
        }
    }
    __m256 inv = _mm256_set1_ps(1.0f / l);
    for (int i = 0; i < nv; i++)
        _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(o[i], inv));
}
#endif

void kernel_attention(const float *q, const struct kernel_kv_view *kv, size_t head_off,
                      int head_dim, int ctx_start, int n_ctx, float scale, float *out)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX2 && head_dim % 8 == 0 && head_dim <= 8 * ATT_MAX_VEC) {
        attention_avx2(q, kv, head_off, head_dim, ctx_start, n_ctx, scale, out);
        return;
    }
#endif
    attention_scalar(q, kv, head_off, head_dim, ctx_start, n_ctx, scale, out);
}
