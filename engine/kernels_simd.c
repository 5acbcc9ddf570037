/*
 * kernels_simd.c - the fast paths of kernels.h: run-time ISA dispatch, SIMD
 * matmul for float and MLX-quantized weights and their split over the thread
 * pool, and the element-wise ops (attention is in kernels_attention.c).
 *
 * Matmul work is divided by weight rows, so each thread streams its own
 * slice of the matrix once per call.  Inputs are taken in tiles of tokens
 * small enough to stay in L2 while the slice's rows pass over them, and
 * within a tile up to four tokens share every weight load.  Each (row,
 * token) dot is computed in one fixed order whatever the tile, the thread
 * count or n, so batching never changes a result.
 *
 * 4- and 8-bit weights use integer dot products (vpdpbusd: unsigned codes
 * times int8 activations): 64 multiply-adds per instruction instead of 8
 * float FMAs after unpacking, which is what makes quantized decode
 * bandwidth-bound rather than compute-bound.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels.h"

#include "kernels_x86.h"
#include "quant_packed.h"

/* tokens of x kept in L2 while a thread's rows pass over them */
#define TILE_BYTES (256 * 1024)

/* ---------------------------------------------------------------------- */
/* ISA selection                                                           */

#if defined(KERNELS_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023 /* asm/prctl.h */
#define XFEATURE_XTILEDATA 18

/* True when the CPU has AMX-TILE and AMX-INT8 and Linux lets this process
 * use the tiles (it asks once: the permission is the process's, every
 * thread's, and a kernel before 5.16 refuses the request). */
static bool amx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25)))
        return false;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#else
static bool amx_usable(void)
{
    return false;
}
#endif

static enum kernel_isa isa_detected = KERNEL_ISA_SCALAR, isa_used = KERNEL_ISA_SCALAR;
/* the first caller detects, on any thread (the daemon's request threads ask
 * too: GET /api/system/info); the others wait for it */
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

static void isa_detect_once(void)
{
    enum kernel_isa isa = KERNEL_ISA_SCALAR;
#ifdef KERNELS_X86
    unsigned a, b, c, d;
    __builtin_cpu_init();
    bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        isa = KERNEL_ISA_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
            isa = __builtin_cpu_supports("avx512bf16") ? KERNEL_ISA_AVX512BF16 : KERNEL_ISA_AVX512;
        if (isa == KERNEL_ISA_AVX512BF16 && amx_usable())
            isa = KERNEL_ISA_AMX;
    }
#endif
    isa_detected = isa_used = isa;
}

enum kernel_isa kernel_isa_detect(void)
{
    pthread_once(&isa_once, isa_detect_once);
    return isa_detected;
}

enum kernel_isa kernel_isa_get(void)
{
    kernel_isa_detect();
    return isa_used;
}

void kernel_isa_set(enum kernel_isa isa)
{
    enum kernel_isa top = kernel_isa_detect();
    isa_used = isa < top ? isa : top;
}

bool kernel_isa_by_name(const char *name, enum kernel_isa *out)
{
    for (enum kernel_isa isa = KERNEL_ISA_SCALAR; isa <= kernel_isa_detect(); isa++)
        if (!strcmp(kernel_isa_name(isa), name)) {
            *out = isa;
            return true;
        }
    return false;
}

const char *kernel_isa_name(enum kernel_isa isa)
{
    switch (isa) {
    case KERNEL_ISA_AVX2: return "avx2";
    case KERNEL_ISA_AVX512: return "avx512";
    case KERNEL_ISA_AVX512BF16: return "avx512bf16";
    case KERNEL_ISA_AMX: return "amx";
    default: return "scalar";
    }
}

/* ---------------------------------------------------------------------- */
/* scalar fallbacks (any CPU)                                              */

static float dot_mat_scalar(const struct kernel_mat *w, size_t r, const float *x)
{
    size_t cols = w->cols;
    float acc = 0.0f;
    for (size_t i = 0; i < cols; i++)
        acc += dtype_load_f32(w->data, w->dtype, r * cols + i) * x[i];
    return acc;
}

/* ---------------------------------------------------------------------- */
/* AVX2 + FMA + F16C: float weights                                        */

#ifdef KERNELS_X86

/*
 * nr rows (from r) times nt tokens, nr * nt <= 4.  Per dot: two 8-lane
 * accumulators over 16-element steps, one more 8-step into the first, a
 * scalar tail, then (a0 + a1) summed across lanes plus the tail.  The row
 * and token loops are unrolled so the accumulators stay in registers (as in
 * bf16_block; float_block512 the same: F16 decode of bench_forward's model
 * 108-118 -> 195-211 tok/s).
 */
TGT_AVX2 INLINE void float_block(const struct kernel_mat *w, enum dtype dt, size_t r, int nr,
                                 const float *x, int nt, size_t ldy, float *y)
{
    size_t cols = w->cols;
    __m256 a0[4], a1[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        a0[k] = a1[k] = _mm256_setzero_ps();
    const char *base = (const char *)w->data;
    size_t esz = dt == DTYPE_F32 ? 4 : 2;
    size_t i = 0;
    for (; i + 16 <= cols; i += 16)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const void *row = base + (r + (size_t)j) * cols * esz;
            __m256 w0 = load8(row, dt, i), w1 = load8(row, dt, i + 8);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const float *xt = x + (size_t)t * cols;
                a0[j + t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt + i), a0[j + t]);
                a1[j + t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + i + 8), a1[j + t]);
            }
        }
    if (i + 8 <= cols) {
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const void *row = base + (r + (size_t)j) * cols * esz;
            __m256 w0 = load8(row, dt, i);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                a0[j + t] =
                    _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + (size_t)t * cols + i), a0[j + t]);
        }
        i += 8;
    }
    for (int j = 0; j < nr; j++)
        for (int t = 0; t < nt; t++) {
            float tail = 0.0f;
            for (size_t k = i; k < cols; k++)
                tail += dtype_load_f32(w->data, dt, (r + (size_t)j) * cols + k) *
                        x[(size_t)t * cols + k];
            y[(size_t)t * ldy + r + (size_t)j] = hsum8(_mm256_add_ps(a0[j + t], a1[j + t])) + tail;
        }
}

/* rows [r0, r1) for tokens [t0, t1) of x; dt fixed per instantiation */
TGT_AVX2 INLINE void float_rows(const struct kernel_mat *w, enum dtype dt, const float *x,
                                size_t t0, size_t t1, size_t r0, size_t r1, float *y)
{
    size_t cols = w->cols, rows = w->rows;
    if (t1 - t0 == 1) {
        const float *xt = x + t0 * cols;
        float *yt = y + t0 * rows;
        size_t r = r0;
        for (; r + 4 <= r1; r += 4)
            float_block(w, dt, r, 4, xt, 1, rows, yt);
        for (; r < r1; r++)
            float_block(w, dt, r, 1, xt, 1, rows, yt);
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        size_t t = t0;
        for (; t + 4 <= t1; t += 4)
            float_block(w, dt, r, 1, x + t * cols, 4, rows, y + t * rows);
        for (; t < t1; t++)
            float_block(w, dt, r, 1, x + t * cols, 1, rows, y + t * rows);
    }
}

TGT_AVX2 static void float_rows_f32(const struct kernel_mat *w, const float *x, size_t t0,
                                    size_t t1, size_t r0, size_t r1, float *y)
{
    float_rows(w, DTYPE_F32, x, t0, t1, r0, r1, y);
}

TGT_AVX2 static void float_rows_f16(const struct kernel_mat *w, const float *x, size_t t0,
                                    size_t t1, size_t r0, size_t r1, float *y)
{
    float_rows(w, DTYPE_F16, x, t0, t1, r0, r1, y);
}

TGT_AVX2 static void float_rows_bf16(const struct kernel_mat *w, const float *x, size_t t0,
                                     size_t t1, size_t r0, size_t r1, float *y)
{
    float_rows(w, DTYPE_BF16, x, t0, t1, r0, r1, y);
}

/*
 * float_block on 512-bit vectors: two 16-lane accumulators over 32-element
 * steps, one more 16-step into the first, a scalar tail.
 */
TGT_AVX512 INLINE void float_block512(const struct kernel_mat *w, enum dtype dt, size_t r, int nr,
                                      const float *x, int nt, size_t ldy, float *y)
{
    size_t cols = w->cols;
    __m512 a0[4], a1[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        a0[k] = a1[k] = _mm512_setzero_ps();
    const char *base = (const char *)w->data;
    size_t esz = dt == DTYPE_F32 ? 4 : 2;
    size_t i = 0;
    for (; i + 32 <= cols; i += 32)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const void *row = base + (r + (size_t)j) * cols * esz;
            __m512 w0 = load16(row, dt, i), w1 = load16(row, dt, i + 16);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const float *xt = x + (size_t)t * cols;
                a0[j + t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xt + i), a0[j + t]);
                a1[j + t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xt + i + 16), a1[j + t]);
            }
        }
    if (i + 16 <= cols) {
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const void *row = base + (r + (size_t)j) * cols * esz;
            __m512 w0 = load16(row, dt, i);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                a0[j + t] =
                    _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + (size_t)t * cols + i), a0[j + t]);
        }
        i += 16;
    }
    for (int j = 0; j < nr; j++)
        for (int t = 0; t < nt; t++) {
            float tail = 0.0f;
            for (size_t k = i; k < cols; k++)
                tail += dtype_load_f32(w->data, dt, (r + (size_t)j) * cols + k) *
                        x[(size_t)t * cols + k];
            y[(size_t)t * ldy + r + (size_t)j] =
                _mm512_reduce_add_ps(_mm512_add_ps(a0[j + t], a1[j + t])) + tail;
        }
}

TGT_AVX512 INLINE void float_rows512(const struct kernel_mat *w, enum dtype dt, const float *x,
                                     size_t t0, size_t t1, size_t r0, size_t r1, float *y)
{
    size_t cols = w->cols, rows = w->rows;
    if (t1 - t0 == 1) {
        const float *xt = x + t0 * cols;
        float *yt = y + t0 * rows;
        size_t r = r0;
        for (; r + 4 <= r1; r += 4)
            float_block512(w, dt, r, 4, xt, 1, rows, yt);
        for (; r < r1; r++)
            float_block512(w, dt, r, 1, xt, 1, rows, yt);
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        size_t t = t0;
        for (; t + 4 <= t1; t += 4)
            float_block512(w, dt, r, 1, x + t * cols, 4, rows, y + t * rows);
        for (; t < t1; t++)
            float_block512(w, dt, r, 1, x + t * cols, 1, rows, y + t * rows);
    }
}

TGT_AVX512 static void float_rows512_any(const struct kernel_mat *w, const float *x, size_t t0,
                                         size_t t1, size_t r0, size_t r1, float *y)
{
    if (w->dtype == DTYPE_F32)
        float_rows512(w, DTYPE_F32, x, t0, t1, r0, r1, y);
    else if (w->dtype == DTYPE_F16)
        float_rows512(w, DTYPE_F16, x, t0, t1, r0, r1, y);
    else
        float_rows512(w, DTYPE_BF16, x, t0, t1, r0, r1, y);
}

/* n scales or biases of a row as floats; inlined per row of every matmul */
TGT_AVX2 INLINE void load_params(const void *p, enum dtype dt, size_t off, size_t n, float *out)
{
    size_t i = 0;
    if (dt == DTYPE_F16)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, load8(p, DTYPE_F16, off + i));
    else if (dt == DTYPE_BF16)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, load8(p, DTYPE_BF16, off + i));
    else if (dt == DTYPE_F32)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, load8(p, DTYPE_F32, off + i));
    for (; i < n; i++)
        out[i] = dtype_load_f32(p, dt, off + i);
}

/* ---------------------------------------------------------------------- */
/* AVX-512 VNNI: 4- and 8-bit weights times int8 activations               */

/* Activations of up to four tokens, as quant_x8_quantize wrote them. */
struct x8_tok {
    const int8_t *q[4];
    const float *d[4];
    const float *s[4];
};

/* sum_g b[g] * xs[g]: 8 lanes then the tail, in that order */
TGT_AVX512 INLINE float bias_dot(const float *b, const float *xs, size_t ng)
{
    __m256 acc = _mm256_setzero_ps();
    size_t g = 0;
    for (; g + 8 <= ng; g += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(b + g), _mm256_loadu_ps(xs + g), acc);
    float tail = 0.0f;
    for (; g < ng; g++)
        tail += b[g] * xs[g];
    return hsum8(acc) + tail;
}

/* log2 of a group size (32, 64 or 128): chunk offsets become group indices
 * by a shift, not a 64-bit division per chunk */
INLINE unsigned group_shift(size_t gs)
{
    return gs == 32 ? 5u : gs == 64 ? 6u : 7u;
}

/*
 * One 128-code chunk (64 bytes at wr + c / 2) of a 4-bit row into acc[t]:
 * the int32 lanes of a dot cover 8 consecutive elements, so lane l belongs
 * to group (c + 8l) / gs, and gidx spreads the chunk's first groups' scale *
 * xd over their lanes.
 */
TGT_AVX512 INLINE void q4_chunk(const uint8_t *wr, const float *sc, size_t c, unsigned gshift,
                                __m512i gidx, const struct x8_tok *x, int nt, __m512 *acc)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i raw = _mm512_loadu_si512((const void *)(wr + c / 2));
    __m512i lo = _mm512_and_si512(raw, m4);
    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
    size_t g = c >> gshift;
    __m128 s4 = _mm_loadu_ps(sc + g);
    for (int t = 0; t < nt; t++) {
        __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo,
                                         _mm512_loadu_si512((const void *)(x->q[t] + c)));
        is = _mm512_dpbusd_epi32(is, hi, _mm512_loadu_si512((const void *)(x->q[t] + c + 64)));
        __m128 f4 = _mm_mul_ps(s4, _mm_loadu_ps(x->d[t] + g));
        __m512 sv = _mm512_permutexvar_ps(gidx, _mm512_castps128_ps512(f4));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), sv, acc[t]);
    }
}

/*
 * One row of 4-bit codes against nt tokens.  A 64-byte load holds 128 codes,
 * the even elements in the low nibbles and the odd ones in the high, which is
 * why the activations come in pair order (quant.h).  128-code chunks
 * alternate between two accumulators (even chunks into a0, odd into a1: two
 * chunks per iteration keep both in registers); a 64- and a 32-code tail use
 * ymm and xmm and go into the accumulator the next chunk would have used.
 */
TGT_AVX512 INLINE void q4_row(const uint8_t *wr, const float *sc, const float *bi, size_t cols,
                              size_t gs, const struct x8_tok *x, int nt, float *out)
{
    /* lane -> group within the chunk, for group 32, 64 and 128 */
    const __m512i gidx = gs == 32 ? _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)
                         : gs == 64
                             ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                             : _mm512_setzero_si512();
    unsigned gshift = group_shift(gs);
    __m512 a0[4], a1[4];
    for (int t = 0; t < 4; t++)
        a0[t] = a1[t] = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 256 <= cols; c += 256) {
        q4_chunk(wr, sc, c, gshift, gidx, x, nt, a0);
        q4_chunk(wr, sc, c + 128, gshift, gidx, x, nt, a1);
    }
    bool odd = c + 128 <= cols; /* the tails below go into a1 */
    if (odd) {
        q4_chunk(wr, sc, c, gshift, gidx, x, nt, a0);
        c += 128;
    }
    if (c + 64 <= cols) { /* 64 codes: 32 bytes */
        const __m256i m4y = _mm256_set1_epi8(0x0f);
        __m256i raw = _mm256_loadu_si256((const __m256i *)(wr + c / 2));
        __m256i lo = _mm256_and_si256(raw, m4y);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4y);
        size_t g = c >> gshift;
        for (int t = 0; t < nt; t++) {
            __m256i is = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo,
                                             _mm256_loadu_si256((const __m256i *)(x->q[t] + c)));
            is = _mm256_dpbusd_epi32(is, hi,
                                     _mm256_loadu_si256((const __m256i *)(x->q[t] + c + 32)));
            __m256 sv = gs == 32 ? _mm256_set_m128(_mm_set1_ps(sc[g + 1] * x->d[t][g + 1]),
                                                   _mm_set1_ps(sc[g] * x->d[t][g]))
                                 : _mm256_set1_ps(sc[g] * x->d[t][g]);
            __m512 p = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(is), sv));
            a0[t] = odd ? a0[t] : _mm512_add_ps(a0[t], p);
            a1[t] = odd ? _mm512_add_ps(a1[t], p) : a1[t];
        }
        c += 64;
    }
    if (c < cols) { /* 32 codes: 16 bytes */
        const __m128i m4x = _mm_set1_epi8(0x0f);
        __m128i raw = _mm_loadu_si128((const __m128i *)(wr + c / 2));
        __m128i lo = _mm_and_si128(raw, m4x), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4x);
        size_t g = c >> gshift;
        for (int t = 0; t < nt; t++) {
            __m128i is = _mm_dpbusd_epi32(_mm_setzero_si128(), lo,
                                          _mm_loadu_si128((const __m128i *)(x->q[t] + c)));
            is = _mm_dpbusd_epi32(is, hi, _mm_loadu_si128((const __m128i *)(x->q[t] + c + 16)));
            __m512 p = _mm512_zextps128_ps512(
                _mm_mul_ps(_mm_cvtepi32_ps(is), _mm_set1_ps(sc[g] * x->d[t][g])));
            a0[t] = odd ? a0[t] : _mm512_add_ps(a0[t], p);
            a1[t] = odd ? _mm512_add_ps(a1[t], p) : a1[t];
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = _mm512_reduce_add_ps(_mm512_add_ps(a0[t], a1[t])) +
                 bias_dot(bi, x->s[t], cols >> gshift);
}

/* One group (gs codes from c0) of an 8-bit row into acc[t]: the group's
 * 32-code chunks add up in int32 (exact) before its one scale multiply. */
TGT_AVX512 INLINE void q8_group(const uint8_t *wr, const float *sc, size_t c0, size_t g, size_t gs,
                                const struct x8_tok *x, int nt, __m256 *acc)
{
    __m256i is[4];
    for (int t = 0; t < nt; t++)
        is[t] = _mm256_setzero_si256();
    for (size_t c = c0; c < c0 + gs; c += 32) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(wr + c));
        for (int t = 0; t < nt; t++)
            is[t] =
                _mm256_dpbusd_epi32(is[t], raw, _mm256_loadu_si256((const __m256i *)(x->q[t] + c)));
    }
    for (int t = 0; t < nt; t++)
        acc[t] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_set1_ps(sc[g] * x->d[t][g]), acc[t]);
}

/*
 * One row of 8-bit codes: 32 codes per load.  Groups alternate between two
 * float accumulators (even groups into a0, odd into a1: two groups per
 * iteration keep both in registers).
 */
TGT_AVX512 INLINE void q8_row(const uint8_t *wr, const float *sc, const float *bi, size_t cols,
                              size_t gs, const struct x8_tok *x, int nt, float *out)
{
    __m256 a0[4], a1[4];
    for (int t = 0; t < 4; t++)
        a0[t] = a1[t] = _mm256_setzero_ps();
    size_t c0 = 0, g = 0;
    for (; c0 + 2 * gs <= cols; c0 += 2 * gs, g += 2) {
        q8_group(wr, sc, c0, g, gs, x, nt, a0);
        q8_group(wr, sc, c0 + gs, g + 1, gs, x, nt, a1);
    }
    if (c0 < cols)
        q8_group(wr, sc, c0, g, gs, x, nt, a0);
    for (int t = 0; t < nt; t++)
        out[t] = hsum8(_mm256_add_ps(a0[t], a1[t])) + bias_dot(bi, x->s[t], cols / gs);
}

TGT_AVX512 INLINE void qrow_dispatch(int bits, const uint8_t *wr, const float *sc, const float *bi,
                                     size_t cols, size_t gs, const struct x8_tok *x, int nt,
                                     float *out)
{
    if (bits == 4)
        q4_row(wr, sc, bi, cols, gs, x, nt, out);
    else
        q8_row(wr, sc, bi, cols, gs, x, nt, out);
}

/* largest cols / group_size the stack buffers take; wider rows use the reference */
#define QMAX_GROUPS 1024

/*
 * Rows [r0, r1) of a 4- or 8-bit matrix for tokens [t0, t1): xq holds
 * ldq bytes per token, xd and xs ng floats per token.
 */
TGT_AVX512 static void quant_rows_avx512(const struct quant_matrix *q, const int8_t *xq,
                                         const float *xd, const float *xs, size_t t0, size_t t1,
                                         size_t r0, size_t r1, float *y)
{
    size_t cols = q->cols, gs = (size_t)q->group_size, ng = cols / gs;
    size_t row_bytes = quant_row_words(cols, q->bits) * 4;
    /* 4 floats past the groups: q4_row loads scales 4 at a time */
    float sc[QMAX_GROUPS + 4] = {0}, bi[QMAX_GROUPS], out[4];
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)q->q + r * row_bytes;
        load_params(q->scales, q->param_dtype, r * ng, ng, sc);
        load_params(q->biases, q->param_dtype, r * ng, ng, bi);
        for (size_t t = t0; t < t1;) {
            struct x8_tok x;
            int nt = t1 - t >= 4 ? 4 : (int)(t1 - t);
            for (int j = 0; j < nt; j++) {
                x.q[j] = xq + (t + (size_t)j) * cols;
                x.d[j] = xd + (t + (size_t)j) * ng;
                x.s[j] = xs + (t + (size_t)j) * ng;
            }
            switch (nt) {
            case 4: qrow_dispatch(q->bits, wr, sc, bi, cols, gs, &x, 4, out); break;
            case 3: qrow_dispatch(q->bits, wr, sc, bi, cols, gs, &x, 3, out); break;
            case 2: qrow_dispatch(q->bits, wr, sc, bi, cols, gs, &x, 2, out); break;
            default: qrow_dispatch(q->bits, wr, sc, bi, cols, gs, &x, 1, out); break;
            }
            for (int j = 0; j < nt; j++)
                y[(t + (size_t)j) * q->rows + r] = out[j];
            t += (size_t)nt;
        }
    }
}

/* ---------------------------------------------------------------------- */
/* AVX512-BF16: bf16 weights times bf16 activations                        */

/* 32 floats of x from p, the first `len` of them (<= 32), rounded to bf16
 * (nearest even), zeros after */
TGT_AVX512BF16 INLINE __m512bh bf16_from_f32(const float *p, size_t len)
{
    if (len >= 32)
        return _mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p));
    __mmask16 lo = len >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << len) - 1);
    __mmask16 hi = len > 16 ? (__mmask16)((1u << (len - 16)) - 1) : 0;
    return _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, p + 16), _mm512_maskz_loadu_ps(lo, p));
}

/* 32 bf16 weights from p, the first `len` of them (<= 32), zeros after */
TGT_AVX512BF16 INLINE __m512bh bf16_load(const uint16_t *p, size_t len)
{
    __mmask32 m = len >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << len) - 1);
    return (__m512bh)_mm512_maskz_loadu_epi16(m, p);
}

/* bf16 weights ahead of the current step that bf16_block asks for, per
 * row: a block reads 8 rows as 8 streams, which the hardware prefetcher
 * alone served at 29-36 GB/s; 37-50 with this (2 threads, this machine).
 * A row of a 2048-wide matrix is only 4 KB, so every block starts 8 new
 * streams: bf16_block also asks for the next block's rows, at the column it
 * is reading, into L2 (a 1B model's decode-sized matrices: about 8 % less
 * time, median of 8 runs). */
#define BF16_PREFETCH 512

/*
 * nr rows (from r) times nt tokens of x (cols floats apart), nr * nt <= 8:
 * a token's x is converted once per step for all nr rows.  x is rounded to
 * bf16 as it is loaded (the same instruction for an element whatever the
 * block, so the rounding never depends on n).  Per dot: 64-element steps
 * over two accumulators (the first 32 into a0, the next into a1), a last
 * partial step by masked loads, then a0 + a1 summed across lanes: one order
 * whatever nr and nt.  The loops over rows and tokens are unrolled so the
 * accumulators stay in registers (GCC -O2 kept them on the stack, a load
 * and a store around every vdpbf16ps: the 1B shape's bf16 prefill went
 * from 32 to 50 tok/s with this, decode 5-12 % faster).
 */
TGT_AVX512BF16 INLINE void bf16_block(const uint16_t *w, size_t cols, size_t r, int nr,
                                      const float *x, int nt, size_t ldy, float *y)
{
    __m512 a0[8], a1[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        a0[k] = a1[k] = _mm512_setzero_ps();
    for (size_t i = 0; i < cols; i += 64) {
        size_t left = cols - i;
        __m512bh x0[4], x1[4];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            x0[t] = bf16_from_f32(x + (size_t)t * cols + i, left);
            /* masked to nothing (no load) when the step ends within 32 */
            x1[t] = bf16_from_f32(x + (size_t)t * cols + i + 32, left > 32 ? left - 32 : 0);
        }
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++) {
            const uint16_t *row = w + (r + (size_t)j) * cols + i;
            _mm_prefetch((const char *)(row + BF16_PREFETCH), _MM_HINT_T0);
            _mm_prefetch((const char *)(row + BF16_PREFETCH + 32), _MM_HINT_T0);
            _mm_prefetch((const char *)(row + (size_t)nr * cols), _MM_HINT_T1);
            _mm_prefetch((const char *)(row + (size_t)nr * cols + 32), _MM_HINT_T1);
            __m512bh w0 = bf16_load(row, left);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                a0[j * nt + t] = _mm512_dpbf16_ps(a0[j * nt + t], w0, x0[t]);
            if (left > 32) {
                __m512bh w1 = bf16_load(row + 32, left - 32);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++)
                    a1[j * nt + t] = _mm512_dpbf16_ps(a1[j * nt + t], w1, x1[t]);
            }
        }
    }
    for (int j = 0; j < nr; j++)
        for (int t = 0; t < nt; t++)
            y[(size_t)t * ldy + r + (size_t)j] =
                _mm512_reduce_add_ps(_mm512_add_ps(a0[j * nt + t], a1[j * nt + t]));
}

/* Rows and tokens of a bf16_block_pre block for several tokens: each
 * activation load (from L2: mm_part keeps 256 KB of tokens there) serves 4
 * rows, each weight load 3 tokens, 24 accumulators in registers.  With 2
 * rows x 4 tokens the loads of x took most of the time (1B shape's bf16
 * prefill 63 tok/s). */
#define BF16X_ROWS 4
#define BF16X_TOKENS 3

/* Columns of a token's bf16 activations in kernel_matmul_multi's scratch:
 * cols rounded up to a whole 64-element step, zeros after cols. */
static size_t bf16x_stride(size_t cols)
{
    return (cols + 63) / 64 * 64;
}

/* x (cols floats) rounded to bf16 into out (bf16x_stride(cols) values, zeros
 * after cols): the bits bf16_from_f32 gives each element. */
TGT_AVX512BF16 static void bf16x_convert(const float *x, size_t cols, uint16_t *out)
{
    for (size_t i = 0; i < bf16x_stride(cols); i += 32) {
        size_t left = i < cols ? cols - i : 0;
        _mm512_storeu_si512((void *)(out + i), (__m512i)bf16_from_f32(x + i, left));
    }
}

/*
 * bf16_block for several tokens whose activations are bf16 already (xb:
 * token t at xb + t * ldx, as bf16x_convert writes them): the same
 * products in the same order, so the same bits, without converting every
 * token's x again for every pair of rows (which, with the conversions'
 * registers, had the accumulators spilled to the stack).  Whole 64-element
 * steps first, then the last partial one with bf16_block's masks.
 */
TGT_AVX512BF16 INLINE void bf16_block_pre(const uint16_t *w, size_t cols, size_t r, int nr,
                                          const uint16_t *xb, size_t ldx, int nt, size_t ldy,
                                          float *y)
{
    __m512 a0[BF16X_ROWS * BF16X_TOKENS], a1[BF16X_ROWS * BF16X_TOKENS];
#pragma GCC unroll 12
    for (int k = 0; k < nr * nt; k++)
        a0[k] = a1[k] = _mm512_setzero_ps();
    size_t full = cols / 64 * 64;
    for (size_t i = 0; i < full; i += 64) {
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++) {
            const uint16_t *row = w + (r + (size_t)j) * cols + i;
            _mm_prefetch((const char *)(row + BF16_PREFETCH), _MM_HINT_T0);
            _mm_prefetch((const char *)(row + BF16_PREFETCH + 32), _MM_HINT_T0);
            __m512bh w0 = (__m512bh)_mm512_loadu_si512((const void *)row);
            __m512bh w1 = (__m512bh)_mm512_loadu_si512((const void *)(row + 32));
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const uint16_t *xt = xb + (size_t)t * ldx + i;
                a0[j * nt + t] = _mm512_dpbf16_ps(a0[j * nt + t], w0,
                                                  (__m512bh)_mm512_loadu_si512((const void *)xt));
                a1[j * nt + t] = _mm512_dpbf16_ps(
                    a1[j * nt + t], w1, (__m512bh)_mm512_loadu_si512((const void *)(xt + 32)));
            }
        }
    }
    if (full < cols) {
        size_t left = cols - full;
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++) {
            const uint16_t *row = w + (r + (size_t)j) * cols + full;
            __m512bh w0 = bf16_load(row, left);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const uint16_t *xt = xb + (size_t)t * ldx + full;
                a0[j * nt + t] = _mm512_dpbf16_ps(a0[j * nt + t], w0,
                                                  (__m512bh)_mm512_loadu_si512((const void *)xt));
            }
            if (left > 32) {
                __m512bh w1 = bf16_load(row + 32, left - 32);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const uint16_t *xt = xb + (size_t)t * ldx + full + 32;
                    a1[j * nt + t] = _mm512_dpbf16_ps(
                        a1[j * nt + t], w1, (__m512bh)_mm512_loadu_si512((const void *)xt));
                }
            }
        }
    }
    for (int j = 0; j < nr; j++)
        for (int t = 0; t < nt; t++)
            y[(size_t)t * ldy + r + (size_t)j] =
                _mm512_reduce_add_ps(_mm512_add_ps(a0[j * nt + t], a1[j * nt + t]));
}

/* rows [r0, r1) for tokens [t0, t1): one token by 8 rows from x; more (xb:
 * their bf16 activations, bf16x_stride(cols) apart) in blocks of
 * BF16X_ROWS x BF16X_TOKENS, the rest row by row and token by token */
TGT_AVX512BF16 static void bf16_rows(const struct kernel_mat *w, const float *x, const uint16_t *xb,
                                     size_t t0, size_t t1, size_t r0, size_t r1, float *y)
{
    const uint16_t *wd = w->data;
    size_t cols = w->cols, rows = w->rows, ldx = bf16x_stride(cols);
    if (t1 - t0 == 1) {
        size_t r = r0;
        for (; r + 8 <= r1; r += 8)
            bf16_block(wd, cols, r, 8, x + t0 * cols, 1, rows, y + t0 * rows);
        for (; r < r1; r++)
            bf16_block(wd, cols, r, 1, x + t0 * cols, 1, rows, y + t0 * rows);
        return;
    }
    for (size_t r = r0; r < r1;) {
        bool whole = r + BF16X_ROWS <= r1;
        size_t t = t0;
        for (; t + BF16X_TOKENS <= t1; t += BF16X_TOKENS)
            if (whole)
                bf16_block_pre(wd, cols, r, BF16X_ROWS, xb + t * ldx, ldx, BF16X_TOKENS, rows,
                               y + t * rows);
            else
                bf16_block_pre(wd, cols, r, 1, xb + t * ldx, ldx, BF16X_TOKENS, rows, y + t * rows);
        for (; t < t1; t++)
            if (whole)
                bf16_block_pre(wd, cols, r, BF16X_ROWS, xb + t * ldx, ldx, 1, rows, y + t * rows);
            else
                bf16_block_pre(wd, cols, r, 1, xb + t * ldx, ldx, 1, rows, y + t * rows);
        r += whole ? BF16X_ROWS : 1;
    }
}
#endif /* KERNELS_X86 */

/* ---------------------------------------------------------------------- */
/* e^x                                                                     */

#ifdef KERNELS_X86
TGT_AVX512 static void exp_avx512(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* 8 at a time, the tail through the reference (the same bits) */
TGT_AVX2 static size_t exp_avx2(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    return i;
}
#endif

void kernel_exp(const float *x, float *y, size_t n)
{
    size_t i = 0;
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        exp_avx512(x, y, n);
        return;
    }
    if (kernel_isa_get() >= KERNEL_ISA_AVX2)
        i = exp_avx2(x, y, n);
#endif
    for (; i < n; i++)
        y[i] = kernel_expf_ref(x[i]);
}

/* ---------------------------------------------------------------------- */
/* shift and scale                                                         */

#ifdef KERNELS_X86
/* (v - sh) * sc, rounded after each (no FMA): kernel_shift_scale's and
 * kernel_scaled_exp_sums16's step. */
TGT_AVX512 INLINE __m512 shifted_scaled16(__m512 v, __m512 sh, __m512 sc)
{
    return _mm512_mul_ps(_mm512_sub_ps(v, sh), sc);
}

TGT_AVX512 static void shift_scale_avx512(float *x, float shift, float scale, size_t n)
{
    const __m512 sh = _mm512_set1_ps(shift), sc = _mm512_set1_ps(scale);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(x + i, m, shifted_scaled16(_mm512_maskz_loadu_ps(m, x + i), sh, sc));
    }
}
#endif

void kernel_shift_scale(float *x, float shift, float scale, size_t n)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        shift_scale_avx512(x, shift, scale, n);
        return;
    }
#endif
    kernel_shift_scale_ref(x, shift, scale, n);
}

/* ---------------------------------------------------------------------- */
/* argmax                                                                  */

#ifdef KERNELS_X86
/* One vector's step: lanes of m where v beats best strictly take v and
 * its indexes. */
TGT_AVX512 INLINE void argmax_take(__m512 v, __mmask16 m, __m512i idx, __m512 *best, __m512i *at)
{
    __mmask16 take = _mm512_mask_cmp_ps_mask(m, v, *best, _CMP_GT_OQ);
    *best = _mm512_mask_mov_ps(*best, take, v);
    *at = _mm512_mask_mov_epi32(*at, take, idx);
}

/* Two sets of 16 lanes over alternate vectors; a lane keeps the first
 * largest of its elements (strictly greater replaces; NaN never does),
 * then the 32 meet: the largest value, the lowest index among equals.
 * When no lane took anything (every element -inf or NaN) the reference
 * settles it. */
TGT_AVX512 static int argmax_avx512(const float *x, int n)
{
    /* the sets in named registers: indexed by the vector's parity, GCC kept
     * them on the stack, a load and a store every step (greedy over 128256
     * tokens took 24 us instead of 10) */
    __m512 best0 = _mm512_set1_ps(-INFINITY), best1 = best0;
    __m512i at0 = _mm512_set1_epi32(-1), at1 = at0;
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16), step2 = _mm512_set1_epi32(32);
    int i = 0;
    for (; i + 32 <= n; i += 32, idx = _mm512_add_epi32(idx, step2)) {
        argmax_take(_mm512_loadu_ps(x + i), 0xffff, idx, &best0, &at0);
        argmax_take(_mm512_loadu_ps(x + i + 16), 0xffff, _mm512_add_epi32(idx, step), &best1, &at1);
    }
    for (; i < n; i += 16, idx = _mm512_add_epi32(idx, step)) {
        __mmask16 m = mask16((size_t)(n - i));
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if ((i / 16) & 1)
            argmax_take(v, m, idx, &best1, &at1);
        else
            argmax_take(v, m, idx, &best0, &at0);
    }
    _Alignas(64) float lane_max[32];
    _Alignas(64) int32_t lane_at[32];
    _mm512_store_ps(lane_max, best0);
    _mm512_store_ps(lane_max + 16, best1);
    _mm512_store_si512(lane_at, at0);
    _mm512_store_si512(lane_at + 16, at1);
    int r = -1;
    float max = 0.0f;
    for (int l = 0; l < 32; l++)
        if (lane_at[l] >= 0 &&
            (r < 0 || lane_max[l] > max || (lane_max[l] == max && lane_at[l] < r))) {
            r = lane_at[l];
            max = lane_max[l];
        }
    return r < 0 ? kernel_argmax_ref(x, n) : r;
}
#endif

int kernel_argmax(const float *x, int n)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512)
        return argmax_avx512(x, n);
#endif
    return kernel_argmax_ref(x, n);
}

/* ---------------------------------------------------------------------- */
/* indexes at or above a threshold                                         */

#ifdef KERNELS_X86
/* Compressed in a register and stored under a mask (a compressing store
 * to memory is microcoded and slow on some cores); most vectors of a
 * vocabulary have no index to keep. */
TGT_AVX512 static int select_ge_avx512(const float *x, int n, float t, int32_t *out)
{
    const __m512 tv = _mm512_set1_ps(t);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int c = 0;
    for (int i = 0; i < n; i += 16, idx = _mm512_add_epi32(idx, step)) {
        __mmask16 m = mask16((size_t)(n - i));
        __mmask16 keep =
            _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, x + i), tv, _CMP_GE_OQ);
        if (!keep)
            continue;
        int k = __builtin_popcount(keep);
        _mm512_mask_storeu_epi32(out + c, (__mmask16)((1u << k) - 1),
                                 _mm512_maskz_compress_epi32(keep, idx));
        c += k;
    }
    return c;
}
#endif

int kernel_select_ge(const float *x, int n, float t, int32_t *out)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512)
        return select_ge_avx512(x, n, t, out);
#endif
    return kernel_select_ge_ref(x, n, t, out);
}

/* ---------------------------------------------------------------------- */
/* sums of blocks of 16                                                    */

#ifdef KERNELS_X86
/* The reference's tree over one block, a level per step: the block's
 * halves as doubles added lane for lane, then each vector's halves. */
TGT_AVX512 INLINE double block_sum16(__m512 v)
{
    __m512d a = _mm512_add_pd(
        _mm512_cvtps_pd(_mm512_castps512_ps256(v)),
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    __m256d b = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    __m128d c = _mm_add_pd(_mm256_castpd256_pd128(b), _mm256_extractf128_pd(b, 1));
    return _mm_cvtsd_f64(_mm_add_sd(c, _mm_unpackhi_pd(c, c)));
}

TGT_AVX512 static void block_sums16_avx512(const float *x, size_t n, double *out)
{
    for (size_t i = 0; i < n; i += 16)
        out[i / 16] = block_sum16(_mm512_maskz_loadu_ps(mask16(n - i), x + i));
}

/* Lanes past n are zeroed before the block sum, as the reference reads 0
 * there (e^0 would add 1). */
TGT_AVX512 static void scaled_exp_sums16_avx512(const float *x, float shift, float scale, float *y,
                                                size_t n, double *sums)
{
    const __m512 sh = _mm512_set1_ps(shift), sc = _mm512_set1_ps(scale);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 e = _mm512_maskz_mov_ps(m, exp16(shifted_scaled16(v, sh, sc)));
        _mm512_mask_storeu_ps(y + i, m, e);
        sums[i / 16] = block_sum16(e);
    }
}
#endif

void kernel_block_sums16(const float *x, size_t n, double *out)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        block_sums16_avx512(x, n, out);
        return;
    }
#endif
    kernel_block_sums16_ref(x, n, out);
}

void kernel_scaled_exp_sums16(const float *x, float shift, float scale, float *y, size_t n,
                              double *sums)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        scaled_exp_sums16_avx512(x, shift, scale, y, n, sums);
        return;
    }
#endif
    kernel_scaled_exp_sums16_ref(x, shift, scale, y, n, sums);
}

/* ---------------------------------------------------------------------- */
/* F16 stores                                                              */

#ifdef KERNELS_X86
TGT_AVX512 static void f32_to_f16_avx512(const float *x, uint16_t *y, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(y + i, m, h);
    }
}
#endif

void kernel_f32_to_f16(const float *x, uint16_t *y, size_t n)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        f32_to_f16_avx512(x, y, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        y[i] = f32_to_f16(x[i]);
}

/* ---------------------------------------------------------------------- */
/* int8 activations                                                        */

#ifdef KERNELS_X86
/* quant_x8_quantize in natural order, group_size a multiple of 16: lane k
 * of the running sum is partial sum k, folded as quant_x8_sum_lanes does;
 * the max and the rounding (nearest even, like lrintf) are exact. */
TGT_AVX512 static void x8_quantize_avx512(const float *x, size_t cols, size_t gs, int8_t *xq,
                                          float *xd, float *xsum)
{
    for (size_t g = 0; g < cols / gs; g++) {
        const float *xg = x + g * gs;
        __m512 amax = _mm512_setzero_ps(), sum = _mm512_setzero_ps();
        for (size_t k = 0; k < gs; k += 16) {
            __m512 v = _mm512_loadu_ps(xg + k);
            amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
            sum = _mm512_add_ps(sum, v);
        }
        /* quant_x8_sum_lanes's folds: lanes i + 8, then hsum8's i + 4, i + 2, i + 1 */
        __m256 h =
            _mm256_add_ps(_mm512_castps512_ps256(sum),
                          _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sum), 1)));
        float m = _mm512_reduce_max_ps(amax), inv = m > 0.0f ? 127.0f / m : 0.0f;
        xd[g] = m / 127.0f;
        xsum[g] = hsum8(h);
        __m512 iv = _mm512_set1_ps(inv);
        for (size_t k = 0; k < gs; k += 16) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xg + k), iv));
            _mm_storeu_si128((__m128i *)(xq + g * gs + k), _mm512_cvtsepi32_epi8(q));
        }
    }
}

/* x8_quantize_avx512 with two 8-lane vectors for its 16 partial sums
 * (lanes 0-7 and 8-15), folded the same way, so the same bits. */
TGT_AVX2 static void x8_quantize_avx2(const float *x, size_t cols, size_t gs, int8_t *xq, float *xd,
                                      float *xsum)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t g = 0; g < cols / gs; g++) {
        const float *xg = x + g * gs;
        __m256 amax = _mm256_setzero_ps(), s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        for (size_t k = 0; k < gs; k += 16) {
            __m256 v0 = _mm256_loadu_ps(xg + k), v1 = _mm256_loadu_ps(xg + k + 8);
            amax = _mm256_max_ps(
                amax, _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)));
            s0 = _mm256_add_ps(s0, v0);
            s1 = _mm256_add_ps(s1, v1);
        }
        /* quant_x8_sum_lanes's folds: lanes i + 8, then hsum8's i + 4, i + 2, i + 1 */
        float m = hmax8(amax), inv = m > 0.0f ? 127.0f / m : 0.0f;
        xd[g] = m / 127.0f;
        xsum[g] = hsum8(_mm256_add_ps(s0, s1));
        __m256 iv = _mm256_set1_ps(inv);
        for (size_t k = 0; k < gs; k += 16) {
            /* round to nearest even, like lrintf; |values| <= 127, no saturation */
            __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + k), iv));
            __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + k + 8), iv));
            /* packs works per 128-bit lane: put the words back in order */
            __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xd8);
            __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
            _mm_storeu_si128((__m128i *)(xq + g * gs + k), b);
        }
    }
}
#endif

void kernel_x8_quantize(const float *x, size_t cols, int group_size, bool pair_order, int8_t *xq,
                        float *xd, float *xsum)
{
#ifdef KERNELS_X86
    enum kernel_isa isa = kernel_isa_get();
    if (isa >= KERNEL_ISA_AVX2 && !pair_order && group_size % 16 == 0) {
        if (isa >= KERNEL_ISA_AVX512)
            x8_quantize_avx512(x, cols, (size_t)group_size, xq, xd, xsum);
        else
            x8_quantize_avx2(x, cols, (size_t)group_size, xq, xd, xsum);
        return;
    }
#endif
    quant_x8_quantize(x, cols, group_size, pair_order, xq, xd, xsum);
}

/* ---------------------------------------------------------------------- */
/* matmul: job split over the pool                                         */

#ifndef QMAX_GROUPS
#define QMAX_GROUPS 0
#endif

enum mm_path {
    MM_FLOAT,     /* F32/F16/BF16 */
    MM_X8,        /* 4/8-bit, integer dots */
    MM_BF16X,     /* BF16 weights, bf16 activations */
    MM_QUANT_REF, /* other bit widths: float reference dot per row */
};

struct mm_job {
    const struct kernel_mat *w;
    const float *x;
    size_t n;
    const float *bias;
    float *y;
    enum mm_path path;
    enum kernel_isa isa;
    bool pair_order;
    int8_t *xq;   /* (n, cols) */
    float *xd;    /* (n, ng) */
    float *xs;    /* (n, ng) */
    uint16_t *xb; /* MM_BF16X, n > 1: (n, bf16x_stride(cols)) bf16 activations */
};

/* Activations (tokens x columns) below which kernel_matmul_multi prepares
 * them on the calling thread: a job's hand-out and join cost more than
 * quantizing 8 tokens of 768 (the 110M shape's 8-sequence decode step ran 7 %
 * faster than with a job per matmul from 4 tokens up). */
#define MM_PREPARE_SERIAL 65536

/* Token `chunk`'s activations as the kernels read them: int8 (or only group
 * sums) for quantized weights, bf16 for MM_BF16X with several tokens. */
static void mm_prepare(void *ctx, int chunk)
{
    struct mm_job *j = ctx;
    size_t cols = j->w->cols, t = (size_t)chunk;
#ifdef KERNELS_X86
    if (j->path == MM_BF16X) {
        bf16x_convert(j->x + t * cols, cols, j->xb + t * bf16x_stride(cols));
        return;
    }
#endif
    size_t gs = (size_t)j->w->q.group_size, ng = cols / gs;
    if (j->path == MM_X8)
        kernel_x8_quantize(j->x + t * cols, cols, (int)gs, j->pair_order, j->xq + t * cols,
                           j->xd + t * ng, j->xs + t * ng);
    else
        quant_group_sums(j->x + t * cols, cols, (int)gs, j->xs + t * ng);
}

static void mm_rows(const struct mm_job *j, size_t t0, size_t t1, size_t r0, size_t r1)
{
    const struct kernel_mat *w = j->w;
    size_t cols = w->cols, rows = w->rows;
    size_t ng = w->quantized ? cols / (size_t)w->q.group_size : 0;
    if (j->path == MM_X8 && w->q.packed) {
        quant_packed_rows(&w->q, j->xq, j->xd, j->xs, t0, t1, r0, r1, j->y, j->isa);
        return;
    }
#ifdef KERNELS_X86
    if (j->path == MM_BF16X) {
        bf16_rows(w, j->x, j->xb, t0, t1, r0, r1, j->y);
        return;
    }
    if (j->path == MM_FLOAT && j->isa >= KERNEL_ISA_AVX512) {
        float_rows512_any(w, j->x, t0, t1, r0, r1, j->y);
        return;
    }
    if (j->path == MM_FLOAT && j->isa >= KERNEL_ISA_AVX2) {
        if (w->dtype == DTYPE_F32)
            float_rows_f32(w, j->x, t0, t1, r0, r1, j->y);
        else if (w->dtype == DTYPE_F16)
            float_rows_f16(w, j->x, t0, t1, r0, r1, j->y);
        else
            float_rows_bf16(w, j->x, t0, t1, r0, r1, j->y);
        return;
    }
    if (j->path == MM_X8 && j->isa >= KERNEL_ISA_AVX512 && ng <= QMAX_GROUPS) {
        quant_rows_avx512(&w->q, j->xq, j->xd, j->xs, t0, t1, r0, r1, j->y);
        return;
    }
#endif
    for (size_t r = r0; r < r1; r++)
        for (size_t t = t0; t < t1; t++) {
            float v;
            if (j->path == MM_FLOAT)
                v = dot_mat_scalar(w, r, j->x + t * cols);
            else if (j->path == MM_X8)
                v = quant_dot_row_x8_ref(&w->q, r, j->xq + t * cols, j->xd + t * ng,
                                         j->xs + t * ng);
            else
                v = quant_dot_row_ref(&w->q, r, j->x + t * cols, j->xs + t * ng);
            j->y[t * rows + r] = v;
        }
}

/* rows [r0, r1) of one matrix for every token, then its bias */
static void mm_part(const struct mm_job *j, size_t r0, size_t r1)
{
    const struct kernel_mat *w = j->w;
    size_t rows = w->rows;
    /* bytes of x one token holds in the kernels' input */
    size_t tok_bytes = j->path == MM_X8 ? w->cols : w->cols * sizeof(float);
    size_t tile = TILE_BYTES / (tok_bytes ? tok_bytes : 1);
    tile = tile < 4 ? 4 : tile & ~(size_t)3;
    for (size_t t0 = 0; t0 < j->n; t0 += tile) {
        size_t t1 = t0 + tile < j->n ? t0 + tile : j->n;
        mm_rows(j, t0, t1, r0, r1);
    }
    if (j->bias)
        for (size_t t = 0; t < j->n; t++)
            for (size_t r = r0; r < r1; r++)
                j->y[t * rows + r] += j->bias[r];
}

/* Several matrices over one input: their rows, end to end, split over the pool. */
struct mm_multi {
    struct mm_job *jobs;
    int nw, n_chunks;
    size_t total_rows;
};

static void mm_run(void *ctx, int chunk)
{
    const struct mm_multi *mj = ctx;
    size_t r0, r1, off = 0;
    threadpool_split(mj->total_rows, 16, chunk, mj->n_chunks, &r0, &r1);
    for (int i = 0; i < mj->nw; i++) {
        size_t rows = mj->jobs[i].w->rows;
        size_t lo = r0 > off ? r0 - off : 0, hi = r1 - off < rows ? r1 - off : rows;
        if (r1 > off && lo < hi)
            mm_part(&mj->jobs[i], lo, hi);
        off += rows;
    }
}

/* True when the matrices take the same prepared input (same path and layout). */
static bool mm_compatible(const struct kernel_mat *a, const struct kernel_mat *b)
{
    if (a->cols != b->cols || a->quantized != b->quantized)
        return false;
    if (!a->quantized)
        return true;
    return a->q.bits == b->q.bits && a->q.group_size == b->q.group_size && a->x8 == b->x8 &&
           a->q.packed == b->q.packed;
}

void kernel_matmul_multi(struct threadpool *pool, int nw, const struct kernel_mat *const *w,
                         const float *x, size_t n, const float *const *bias, float *const *y,
                         float *scratch)
{
    if (n == 0 || nw < 1)
        return;
    bool same = nw <= KERNEL_MATMUL_MAX;
    for (int i = 1; i < nw && same; i++)
        same = mm_compatible(w[0], w[i]);
    if (!same) {
        for (int i = 0; i < nw; i++)
            kernel_matmul_multi(pool, 1, &w[i], x, n, &bias[i], &y[i], scratch);
        return;
    }
    struct mm_job jobs[KERNEL_MATMUL_MAX];
    struct mm_multi mj = {.jobs = jobs, .nw = nw};
    for (int i = 0; i < nw; i++) {
        jobs[i] = (struct mm_job){
            .w = w[i], .x = x, .n = n, .bias = bias[i], .y = y[i], .isa = kernel_isa_get()};
        mj.total_rows += w[i]->rows;
    }
    if (w[0]->quantized) {
        size_t ng = w[0]->cols / (size_t)w[0]->q.group_size;
        for (int i = 0; i < nw; i++) {
            struct mm_job *j = &jobs[i];
            j->path = w[i]->x8 && (w[i]->q.bits == 4 || w[i]->q.bits == 8) ? MM_X8 : MM_QUANT_REF;
            j->pair_order = w[i]->q.bits == 4 && !w[i]->q.packed && j->isa >= KERNEL_ISA_AVX512 &&
                            ng <= QMAX_GROUPS;
            j->xd = scratch;
            j->xs = scratch + n * ng;
            j->xq = (int8_t *)(scratch + 2 * n * ng);
        }
    }
    for (int i = 0; i < nw; i++)
        if (!w[i]->quantized && w[i]->dtype == DTYPE_BF16 && w[i]->x8 &&
            jobs[i].isa >= KERNEL_ISA_AVX512BF16)
            jobs[i].path = MM_BF16X;
    /* several tokens' bf16 activations are rounded once, not per block of rows */
    if (jobs[0].path == MM_BF16X && n > 1)
        for (int i = 0; i < nw; i++)
            jobs[i].xb = (uint16_t *)scratch;
    if (w[0]->quantized || jobs[0].xb) {
        /* a few tokens are quicker to prepare than to hand out */
        if (n * w[0]->cols < MM_PREPARE_SERIAL)
            for (size_t t = 0; t < n; t++)
                mm_prepare(&jobs[0], (int)t);
        else
            threadpool_run(pool, mm_prepare, &jobs[0], (int)n);
    }
    mj.n_chunks = threadpool_chunks(pool, (mj.total_rows + 15) / 16);
    threadpool_run(pool, mm_run, &mj, mj.n_chunks);
}

void kernel_matmul(struct threadpool *pool, const struct kernel_mat *w, const float *x, size_t n,
                   const float *bias, float *y, float *scratch)
{
    kernel_matmul_multi(pool, 1, &w, x, n, &bias, &y, scratch);
}

/* ---------------------------------------------------------------------- */
/* element-wise                                                            */

#ifdef KERNELS_X86
TGT_AVX512 static void rmsnorm_avx512(float *out, const float *x, const float *weight, size_t n,
                                      float eps)
{
    __m512 ss = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(mask16(n - i), x + i);
        ss = _mm512_fmadd_ps(v, v, ss);
    }
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(ss) / (float)n + eps));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + i)));
    }
}
#endif

void kernel_rmsnorm(float *out, const float *x, const float *weight, size_t n, float eps)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        rmsnorm_avx512(out, x, weight, n, eps);
        return;
    }
#endif
    kernel_rmsnorm_ref(out, x, weight, n, eps);
}

#ifdef KERNELS_X86
TGT_AVX512 static void rope_avx512(float *x, int n_heads, int head_dim, const float *cs)
{
    size_t half = (size_t)head_dim / 2;
    const float *c = cs, *s = cs + half;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)head_dim;
        for (size_t i = 0; i < half; i += 16) {
            __mmask16 m = mask16(half - i);
            __m512 a = _mm512_maskz_loadu_ps(m, v + i), b = _mm512_maskz_loadu_ps(m, v + half + i);
            __m512 cv = _mm512_maskz_loadu_ps(m, c + i), sv = _mm512_maskz_loadu_ps(m, s + i);
            /* two roundings each, as the reference (no contraction) */
            _mm512_mask_storeu_ps(v + i, m,
                                  _mm512_sub_ps(_mm512_mul_ps(a, cv), _mm512_mul_ps(b, sv)));
            _mm512_mask_storeu_ps(v + half + i, m,
                                  _mm512_add_ps(_mm512_mul_ps(b, cv), _mm512_mul_ps(a, sv)));
        }
    }
}
#endif

void kernel_rope(float *x, int n_heads, int head_dim, const float *cs)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        rope_avx512(x, n_heads, head_dim, cs);
        return;
    }
#endif
    kernel_rope_ref(x, n_heads, head_dim, cs);
}

#ifdef KERNELS_X86
/* kernel_silu_mul_ref with exp16 (kernels_x86.h): 16 at a time, the tail
 * masked, every element the same operations wherever it falls. */
TGT_AVX512 static void silu_mul_avx512(float *gate, const float *up, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        __m512 e = exp16(_mm512_sub_ps(zero, g));
        __m512 y = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)),
                                 _mm512_maskz_loadu_ps(m, up + i));
        _mm512_mask_storeu_ps(gate + i, m, y);
    }
}
#endif

#ifdef KERNELS_X86
/* silu_mul_avx512's arithmetic 8 at a time (exp8 has exp16's bits); the
 * tail the same operations on scalars */
TGT_AVX2 static void silu_mul_avx2(float *gate, const float *up, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(zero, g));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                                 _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++)
        gate[i] = gate[i] / (1.0f + kernel_expf_ref(0.0f - gate[i])) * up[i];
}
#endif

/* One element's arithmetic for every n and every split, so a token's
 * result does not depend on its batch. */
static void silu_mul_range(float *gate, const float *up, size_t n)
{
#ifdef KERNELS_X86
    if (kernel_isa_get() >= KERNEL_ISA_AVX512) {
        silu_mul_avx512(gate, up, n);
        return;
    }
    if (kernel_isa_get() >= KERNEL_ISA_AVX2) {
        silu_mul_avx2(gate, up, n);
        return;
    }
#endif
    kernel_silu_mul_ref(gate, up, n);
}

struct silu_job {
    float *gate;
    const float *up;
    size_t n;
    int n_chunks;
};

static void silu_run(void *ctx, int chunk)
{
    struct silu_job *j = ctx;
    size_t lo, hi;
    threadpool_split(j->n, 64, chunk, j->n_chunks, &lo, &hi);
    if (lo < hi)
        silu_mul_range(j->gate + lo, j->up + lo, hi - lo);
}

void kernel_silu_mul(struct threadpool *pool, float *gate, const float *up, size_t n)
{
    struct silu_job j = {gate, up, n, threadpool_chunks(pool, (n + 63) / 64)};
    if (n < 4096)
        silu_mul_range(gate, up, n);
    else
        threadpool_run(pool, silu_run, &j, j.n_chunks);
}
