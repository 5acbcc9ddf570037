/*
 * kernels.h - the numerical ops of the forward pass, as scalar references.
 *
 * Each op has a `_ref` function: plain C, fp32 accumulation, the ground truth
 * that faster (SIMD, threaded) versions are tested against.  Weights are read
 * in their stored dtype (F32, F16, BF16, or MLX affine-quantized) and upcast
 * on the fly; a matrix is never dequantized as a whole.
 *
 * Beside them, the fast paths the forward pass calls (kernels_simd.c): SIMD
 * versions picked at run time from the CPU's features (AVX2+FMA+F16C;
 * AVX-512 VNNI for the integer dot products of 4- and 8-bit weights), with
 * the work split over a thread pool.  Each is tested against its reference.
 *
 * Nothing here allocates: callers pass scratch of the documented size.
 * Thread-safe: pure functions over caller memory (the pool runs one job at
 * a time: see threadpool.h).
 */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

#include "quant.h"
#include "tensor.h"
#include "threadpool.h"

/* A weight matrix (rows = out features, cols = in features), y = x W^T. */
struct kernel_mat {
    size_t rows, cols;
    bool quantized;        /* true: use q; false: data in dtype */
    enum dtype dtype;      /* F32, F16 or BF16 when !quantized */
    const void *data;      /* (rows, cols) when !quantized */
    struct quant_matrix q; /* when quantized */
    bool x8;               /* 4/8-bit: kernel_matmul uses int8 activations (integer dots);
                              BF16 on KERNEL_ISA_AVX512BF16: bf16 activations (vdpbf16ps);
                              false: float dots as in kernel_matmul_ref */
};

/* Floats of scratch kernel_matmul_ref and kernel_matmul need for n input rows. */
size_t kernel_matmul_scratch(const struct kernel_mat *w, size_t n);

/* The most kernel_matmul_scratch can be for a matrix of cols columns,
 * whatever its dtype or quantization (for estimates before loading). */
size_t kernel_matmul_scratch_max(size_t cols, size_t n);

/*
 * y[t] = W x[t] (+ bias) for t < n: x is (n, cols), y is (n, rows), bias is
 * (rows) or NULL.  scratch holds kernel_matmul_scratch(w, n) floats.
 */
void kernel_matmul_ref(const struct kernel_mat *w, const float *x, size_t n, const float *bias,
                       float *y, float *scratch);

/*
 * The fast matmul: y[t] = W x[t] (+ bias), same arguments as
 * kernel_matmul_ref, rows split over the pool (NULL: the calling thread).
 * F32/F16/BF16 weights: SIMD dot products in fp32 (within 1e-5 relative of
 * the reference).  BF16 weights with w->x8 on KERNEL_ISA_AVX512BF16: x is
 * rounded to bf16 (nearest even) as it is loaded and the dots run on bf16
 * pairs with fp32 accumulation (within 1e-5 relative of kernel_matmul_ref
 * over the rounded x).  4- and 8-bit MLX weights with w->x8: the integer-dot
 * path of quant.h (activations quantized to int8 per group; equal to
 * quant_dot_row_x8_ref within 1e-5 relative).  Other quantized weights: the
 * float reference dot per row (quant_dot_row_ref).  A row's result depends neither on n, nor on the
 * other rows of x, nor on the number of threads.
 */
void kernel_matmul(struct threadpool *pool, const struct kernel_mat *w, const float *x, size_t n,
                   const float *bias, float *y, float *scratch);

#define KERNEL_MATMUL_MAX 3

/*
 * kernel_matmul of nw matrices over the same input x (q/k/v, gate/up):
 * y[i] = W[i] x (+ bias[i]; bias may hold NULLs), the rows of all of them
 * split over the pool in one job, the activations prepared once.  Equal bit
 * for bit to nw kernel_matmul calls.  scratch as for the largest of them.
 */
void kernel_matmul_multi(struct threadpool *pool, int nw, const struct kernel_mat *const *w,
                         const float *x, size_t n, const float *const *bias, float *const *y,
                         float *scratch);

/* Instruction sets the fast kernels may use; each level includes the one before. */
enum kernel_isa {
    KERNEL_ISA_SCALAR,
    KERNEL_ISA_AVX2,       /* AVX2 + FMA + F16C */
    KERNEL_ISA_AVX512,     /* + AVX-512 F/BW/VL/VNNI */
    KERNEL_ISA_AVX512BF16, /* + AVX512-BF16 (bf16 dot products) */
    KERNEL_ISA_AMX,        /* + AMX-TILE/INT8 tiles, granted to the process by the OS */
};

/* The best level this CPU supports. */
enum kernel_isa kernel_isa_detect(void);

/* The level in use (the detected one unless lowered by kernel_isa_set). */
enum kernel_isa kernel_isa_get(void);

/* Lowers (or restores) the level used, clamped to the detected one; for
 * tests and benchmarks comparing paths.  Not thread-safe against running kernels. */
void kernel_isa_set(enum kernel_isa isa);

/* The level kernel_isa_name calls name, if this CPU has it: true and *out;
 * false for an unknown name or a level above the detected one. */
bool kernel_isa_by_name(const char *name, enum kernel_isa *out);

/* "scalar", "avx2", "avx512", "avx512bf16" or "amx". */
const char *kernel_isa_name(enum kernel_isa isa);

/* Writes row r of W (dequantized/upcast) into out (cols floats): embedding lookup. */
void kernel_mat_row(const struct kernel_mat *w, size_t r, float *out);

/* out = x / rms(x) * weight over n elements (out may alias x). */
void kernel_rmsnorm_ref(float *out, const float *x, const float *weight, size_t n, float eps);

/* kernel_rmsnorm_ref with AVX-512 (the sum of squares in 16 lanes, then
 * across them; each element then scaled as the reference does): within
 * 1e-5 relative of it.  A row's result depends only on the row. */
void kernel_rmsnorm(float *out, const float *x, const float *weight, size_t n, float eps);

/*
 * Rotates n_heads heads of head_dim floats in place with HF "rotate_half"
 * RoPE: element i pairs with i + head_dim/2, angle pos * inv_freq[i].  cs
 * holds cos then sin for this position: (2, head_dim/2).
 */
void kernel_rope_ref(float *x, int n_heads, int head_dim, const float *cs);

/* kernel_rope_ref 16 pairs at a time with AVX-512: the same operations per
 * element, so the same bits. */
void kernel_rope(float *x, int n_heads, int head_dim, const float *cs);

/* Fills cs (2, head_dim/2) with cos and sin of pos * inv_freq[i]. */
void kernel_rope_angles(float *cs, int head_dim, const float *inv_freq, int pos);

/* gate[i] = silu(gate[i]) * up[i] for i < n. */
void kernel_silu_mul_ref(float *gate, const float *up, size_t n);

/*
 * e^x as 2^n e^r (n = x log2(e) rounded to nearest, r = x - n ln2 in two
 * steps, e^r by a degree-6 polynomial, every step one FMA or exact
 * operation): within about 2 ulp of expf; x is clamped to [KERNEL_EXP_LO,
 * KERNEL_EXP_HI], so -inf and anything below -150 give exactly 0 and NaN
 * gives e^88.7.  Scalar reference; kernel_exp gives the same bits.
 */
#define KERNEL_EXP_LO (-150.0f)
#define KERNEL_EXP_HI 88.7f
float kernel_expf_ref(float x);

/* y[i] = kernel_expf_ref(x[i]) for i < n, 16 at a time with AVX-512 (y may
 * be x). */
void kernel_exp(const float *x, float *y, size_t n);

/* x[i] = (x[i] - shift) * scale for i < n: a subtraction then a
 * multiplication, rounded each (no FMA).  Scalar reference;
 * kernel_shift_scale gives the same bits, 16 at a time with AVX-512 (a
 * sampler's logits over its temperature). */
void kernel_shift_scale_ref(float *x, float shift, float scale, size_t n);
void kernel_shift_scale(float *x, float shift, float scale, size_t n);

/* The lowest index of the largest of x[0..n-1] (n >= 1), NaN ignored; 0
 * when every element is NaN.  Scalar reference; kernel_argmax gives the
 * same index, 16 elements at a time with AVX-512 (a vocabulary's logits:
 * the scalar loop's compare and branch per element took 10 us of a 32000
 * token sampling step). */
int kernel_argmax_ref(const float *x, int n);
int kernel_argmax(const float *x, int n);

/* Writes the indexes i < n with x[i] >= t (NaN never is), ascending, to
 * out and returns how many.  Scalar reference; kernel_select_ge gives the
 * same list, 16 elements a compare with AVX-512 (a sampler's candidates
 * above a threshold, out of a whole vocabulary). */
int kernel_select_ge_ref(const float *x, int n, float t, int32_t *out);
int kernel_select_ge(const float *x, int n, float t, int32_t *out);

/* out[b] = the sum, in double, of x[16b .. 16b+15] (0 past n) added as a
 * tree: x[k] + x[k+8] for k < 8, then halves onto halves (4, 2, 1), so the
 * same bits however it is computed, and four adds deep instead of sixteen
 * (a sampler's running sum over its vocabulary).  Scalar reference;
 * kernel_block_sums16 gives the same bits with AVX-512. */
void kernel_block_sums16_ref(const float *x, size_t n, double *out);
void kernel_block_sums16(const float *x, size_t n, double *out);

/* y[i] = kernel_expf_ref((x[i] - shift) * scale) for i < n (the
 * subtraction and the multiplication rounded each, as kernel_shift_scale)
 * and sums[b] = kernel_block_sums16 of y: a sampler's unnormalized
 * probabilities over a whole vocabulary and their block masses in one pass
 * over the logits, instead of a copy and three passes (in a daemon with 8
 * streams of a 151936-token model, where the vocabulary leaves the caches
 * between steps, those had cost about 220 us a token).  x is left as it
 * is.  Scalar reference; kernel_scaled_exp_sums16 gives the same bits with
 * AVX-512. */
void kernel_scaled_exp_sums16_ref(const float *x, float shift, float scale, float *y, size_t n,
                                  double *sums);
void kernel_scaled_exp_sums16(const float *x, float shift, float scale, float *y, size_t n,
                              double *sums);

/* y[i] = f32_to_f16(x[i]) for i < n (tensor.h), 16 at a time with AVX-512:
 * the same bits for every non-NaN x. */
void kernel_f32_to_f16(const float *x, uint16_t *y, size_t n);

/* In-place softmax over n > 0 values. */
void kernel_softmax_ref(float *x, size_t n);

/*
 * K/V of one layer seen through a sequence's block table, elements F32 or
 * F16.  Within a pool block K is feature-major, (kv_dim, block_tokens): one
 * feature of the block's positions is contiguous, so decode attention loads
 * the operands of 16 positions' scores as one vector; V is head-major then
 * position-major, (n_kv_heads, block_tokens, head_dim).  Either way one
 * head's K (or V) of a block is one contiguous piece, which decode streams
 * through.  kernel_kv_k and kernel_kv_v give element indexes (the _at forms
 * from a pool block and the position within it); dtype_load_f32 (tensor.h)
 * reads an element.
 */
struct kernel_kv_view {
    const void *k;       /* K of pool block 0 of this layer */
    const void *v;       /* V of pool block 0 of this layer */
    enum dtype dtype;    /* DTYPE_F32 or DTYPE_F16 */
    size_t block_stride; /* elements from one pool block to the next (block_tokens * kv_dim) */
    size_t kv_dim;       /* elements of one position's K (or V), all KV heads */
    int head_dim;
    int block_tokens;
    const int *blocks; /* the sequence's block table */
};

/* Index in k of pool block `block`, slot `in`, feature f; feature f + 1 is
 * block_tokens on. */
static inline size_t kernel_kv_k_at(const struct kernel_kv_view *kv, int block, int in, size_t f)
{
    return (size_t)block * kv->block_stride + f * (size_t)kv->block_tokens + (size_t)in;
}

/* Index in v of pool block `block`, slot `in`, feature f (a head's
 * features contiguous). */
static inline size_t kernel_kv_v_at(const struct kernel_kv_view *kv, int block, int in, size_t f)
{
    size_t hd = (size_t)kv->head_dim, d = f % hd;
    return (size_t)block * kv->block_stride + (f - d) * (size_t)kv->block_tokens + (size_t)in * hd +
           d;
}

/* Elements from slot in to slot in + 1 of the same feature and block:
 * kernel_kv_k_at(kv, b, in, f) = kernel_kv_k_at(kv, b, 0, f) + in * kernel_kv_k_slot(kv),
 * and the same for V. */
static inline size_t kernel_kv_k_slot(const struct kernel_kv_view *kv)
{
    (void)kv;
    return 1;
}

static inline size_t kernel_kv_v_slot(const struct kernel_kv_view *kv)
{
    return (size_t)kv->head_dim;
}

/* The same for position p of the sequence. */
static inline size_t kernel_kv_k(const struct kernel_kv_view *kv, int p, size_t f)
{
    return kernel_kv_k_at(kv, kv->blocks[p / kv->block_tokens], p % kv->block_tokens, f);
}

static inline size_t kernel_kv_v(const struct kernel_kv_view *kv, int p, size_t f)
{
    return kernel_kv_v_at(kv, kv->blocks[p / kv->block_tokens], p % kv->block_tokens, f);
}

/* q . K[p] over head_dim features from head_off, summed in feature order. */
float kernel_kv_score_ref(const float *q, const struct kernel_kv_view *kv, int p, size_t head_off,
                          int head_dim);

/*
 * Causal attention of one query head over positions ctx_start..n_ctx-1:
 * out = softmax(scale * q . K[p]) weighted sum of V[p], where K/V of position
 * p for this KV head start at head_off floats into the position's slot.
 * ctx_start > 0 is a sliding window.  q and out have head_dim floats; att is
 * scratch of n_ctx - ctx_start floats.
 */
void kernel_attention_ref(const float *q, const struct kernel_kv_view *kv, size_t head_off,
                          int head_dim, int ctx_start, int n_ctx, float scale, float *att,
                          float *out);

/*
 * kernel_attention_ref with an online softmax (a running max and sum,
 * rescaled once per group of positions), so it needs no scratch; SIMD when
 * head_dim is a multiple of 8.  Within 1e-5 relative of the reference.
 */
void kernel_attention(const float *q, const struct kernel_kv_view *kv, size_t head_off,
                      int head_dim, int ctx_start, int n_ctx, float scale, float *out);

/*
 * A tile of queries that share one KV head: n_tokens consecutive positions
 * pos0, pos0 + 1, ... of one sequence times the n_group query heads of the
 * GQA group.  Query row (i, g) is at q + i * stride + g * head_dim and its
 * output at out + i * stride + g * head_dim.  Token i (position p = pos0 + i)
 * attends causally to positions p + 1 - window .. p (0 .. p when window is 0).
 */
struct kernel_attn_tile {
    const float *q;
    float *out;
    size_t stride; /* floats from one token's rows to the next, in q and out */
    int n_tokens, n_group, pos0, window;
};

/* Query rows the fast tile kernel handles per pass over K/V. */
#define KERNEL_ATTN_TILE_ROWS 32

/*
 * kernel_attention for every row of the tile (K/V of the head at head_off
 * floats into each position's slot).  With AVX-512 (any head_dim up to 256)
 * or AVX2 (head_dim a multiple of 8 up to 256), every K/V position is read
 * once per KERNEL_ATTN_TILE_ROWS rows (online softmax per row, masked per
 * row for causality and the window), and both compute the same bits: a
 * row's result does not depend on the tile or the instruction set;
 * otherwise row by row through kernel_attention.  Each row within 1e-5
 * relative of kernel_attention_ref.
 */
void kernel_attention_tile(const struct kernel_attn_tile *t, const struct kernel_kv_view *kv,
                           size_t head_off, int head_dim, float scale);

/* quant_x8_quantize (quant.h) with AVX-512 where the layout is natural and
 * group_size a multiple of 16: the same bytes and floats, bit for bit. */
void kernel_x8_quantize(const float *x, size_t cols, int group_size, bool pair_order, int8_t *xq,
                        float *xd, float *xsum);

/* kernel_silu_mul_ref over n elements split over the pool; with AVX-512
 * through kernel_exp's exp (within 1e-5 relative of the reference). */
void kernel_silu_mul(struct threadpool *pool, float *gate, const float *up, size_t n);

#endif
