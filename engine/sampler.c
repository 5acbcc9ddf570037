#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* seen[] flags: a token appeared in the prompt / was generated. */
#define SEEN_PROMPT 1u
#define SEEN_GEN 2u

struct sampler {
    int n_vocab;
    struct sampler_params p;   /* logit_bias / eos_ids point at the copies below */
    struct sampler_bias *bias; /* (n_logit_bias) */
    int32_t *eos;              /* (n_eos_ids) */
    uint64_t rng[4];           /* xoshiro256** state */
    int n_generated;

    uint8_t *seen;      /* (n_vocab) SEEN_* flags */
    uint32_t *count;    /* (n_vocab) times generated */
    int32_t *seen_list; /* (n_vocab) distinct ids with a SEEN_* flag, n_seen of them */
    int n_seen;

    float *work;       /* (n_vocab) the transformed logits of this step */
    float *prob;       /* (n_vocab) unnormalised probabilities, indexed by id */
    int32_t *idx;      /* (n_vocab) candidate ids */
    double *block_sum; /* (blocks_of(n_vocab)) the draw's per-block masses */
};

/* ---- RNG: splitmix64 seeds xoshiro256** ------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4])
{
    return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

/* ---- lifecycle --------------------------------------------------------- */

/* Candidates per block of the draw's running sum (kernel_block_sums16's). */
#define DRAW_BLOCK 16

static int blocks_of(int n)
{
    return (n + DRAW_BLOCK - 1) / DRAW_BLOCK;
}

void sampler_params_default(struct sampler_params *p)
{
    memset(p, 0, sizeof(*p));
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
}

static enum status check_params(int n_vocab, const struct sampler_params *p, char *err,
                                size_t errlen)
{
    if (n_vocab <= 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "vocabulary size %d", n_vocab);
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return status_fail(err, errlen, ST_ERR_INVALID, "temperature must be >= 0");
    if (p->top_k < 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "top_k must be >= 0");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return status_fail(err, errlen, ST_ERR_INVALID, "top_p must be in (0, 1]");
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return status_fail(err, errlen, ST_ERR_INVALID, "min_p must be in [0, 1]");
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty))
        return status_fail(err, errlen, ST_ERR_INVALID, "repetition_penalty must be > 0");
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return status_fail(err, errlen, ST_ERR_INVALID, "penalties must be finite");
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return status_fail(err, errlen, ST_ERR_INVALID, "bad logit_bias list");
    for (int i = 0; i < p->n_logit_bias; i++) {
        if (p->logit_bias[i].id < 0 || p->logit_bias[i].id >= n_vocab)
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "logit_bias token id %d is outside the vocabulary (%d)",
                               (int)p->logit_bias[i].id, n_vocab);
        if (isnan(p->logit_bias[i].bias))
            return status_fail(err, errlen, ST_ERR_INVALID, "logit_bias value is not a number");
    }
    if (p->min_tokens < 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "min_tokens must be >= 0");
    if (p->n_eos_ids < 0 || (p->n_eos_ids > 0 && !p->eos_ids))
        return status_fail(err, errlen, ST_ERR_INVALID, "bad eos id list");
    for (int i = 0; i < p->n_eos_ids; i++)
        if (p->eos_ids[i] < 0 || p->eos_ids[i] >= n_vocab)
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "eos id %d is outside the vocabulary (%d)", (int)p->eos_ids[i],
                               n_vocab);
    if (p->top_logprobs < 0 || p->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS ||
        (p->top_logprobs > 0 && !p->logprobs))
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "top_logprobs must be in [0, %d] and needs logprobs",
                           SAMPLER_MAX_TOP_LOGPROBS);
    return ST_OK;
}

enum status sampler_create(int n_vocab, const struct sampler_params *p, struct sampler **out,
                           char *err, size_t errlen)
{
    *out = NULL;
    enum status st = check_params(n_vocab, p, err, errlen);
    if (st != ST_OK)
        return st;
    struct sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory for a sampler");
    size_t v = (size_t)n_vocab;
    s->n_vocab = n_vocab;
    s->p = *p;
    s->seen = calloc(v, 1);
    s->count = calloc(v, sizeof(*s->count));
    s->seen_list = malloc(v * sizeof(*s->seen_list));
    s->work = malloc(v * sizeof(*s->work));
    s->prob = malloc(v * sizeof(*s->prob));
    s->idx = malloc(v * sizeof(*s->idx));
    s->block_sum = malloc((size_t)blocks_of(n_vocab) * sizeof(*s->block_sum));
    if (p->n_logit_bias)
        s->bias = malloc((size_t)p->n_logit_bias * sizeof(*s->bias));
    if (p->n_eos_ids)
        s->eos = malloc((size_t)p->n_eos_ids * sizeof(*s->eos));
    if (!s->seen || !s->count || !s->seen_list || !s->work || !s->prob || !s->idx ||
        !s->block_sum || (p->n_logit_bias && !s->bias) || (p->n_eos_ids && !s->eos)) {
        sampler_free(s);
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory for a sampler (vocab %d)",
                           n_vocab);
    }
    if (p->n_logit_bias)
        memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof(*s->bias));
    if (p->n_eos_ids)
        memcpy(s->eos, p->eos_ids, (size_t)p->n_eos_ids * sizeof(*s->eos));
    s->p.logit_bias = s->bias;
    s->p.eos_ids = s->eos;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    *out = s;
    return ST_OK;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->bias);
    free(s->eos);
    free(s->seen);
    free(s->count);
    free(s->seen_list);
    free(s->work);
    free(s->prob);
    free(s->idx);
    free(s->block_sum);
    free(s);
}

size_t sampler_bytes(const struct sampler *s)
{
    size_t v = (size_t)s->n_vocab;
    return sizeof(*s) + v * (1 + sizeof(uint32_t) + sizeof(int32_t) * 2 + sizeof(float) * 2) +
           (size_t)blocks_of(s->n_vocab) * sizeof(double) +
           (size_t)s->p.n_logit_bias * sizeof(struct sampler_bias) +
           (size_t)s->p.n_eos_ids * sizeof(int32_t);
}

int sampler_n_generated(const struct sampler *s)
{
    return s->n_generated;
}

static void mark_seen(struct sampler *s, int32_t id, uint8_t flag)
{
    if (!s->seen[id])
        s->seen_list[s->n_seen++] = id;
    s->seen[id] |= flag;
}

void sampler_add_prompt(struct sampler *s, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < s->n_vocab)
            mark_seen(s, ids[i], SEEN_PROMPT);
}

/* ---- ordering: higher logit first, lower id on ties ------------------- */

static int better(const float *w, int32_t a, int32_t b)
{
    return w[a] > w[b] || (w[a] == w[b] && a < b);
}

static void swap_ids(int32_t *x, int i, int j)
{
    int32_t t = x[i];
    x[i] = x[j];
    x[j] = t;
}

/* Lomuto partition of idx[lo, hi) around a median-of-three pivot; returns
 * the pivot's final slot.  Each call places the pivot, so callers always
 * make progress even when NaN logits break the ordering. */
static int partition(const float *w, int32_t *idx, int lo, int hi)
{
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(w, idx[mid], idx[lo]))
        swap_ids(idx, mid, lo);
    if (better(w, idx[last], idx[lo]))
        swap_ids(idx, last, lo);
    if (better(w, idx[mid], idx[last]))
        swap_ids(idx, mid, last);
    int32_t pivot = idx[last];
    int store = lo;
    for (int i = lo; i < last; i++)
        if (better(w, idx[i], pivot))
            swap_ids(idx, i, store++);
    swap_ids(idx, store, last);
    return store;
}

/* Moves the best k of idx[0, n) into idx[0, k), in no particular order. */
static void select_top(const float *w, int32_t *idx, int n, int k)
{
    int lo = 0, hi = n;
    while (hi - lo > 1) {
        int p = partition(w, idx, lo, hi);
        if (p == k || p == k - 1)
            return;
        if (p > k)
            hi = p;
        else
            lo = p + 1;
    }
}

/*
 * Moves the smallest best-first set of candidates whose probability mass
 * reaches `want` into idx[0, c), in no particular order, and returns c; *mass
 * gets that set's mass.  Quickselect on mass instead of a sort: expected
 * O(n), which matters when the nucleus is most of a 150k vocabulary.
 */
static int select_mass(const float *w, const float *prob, int32_t *idx, int n, double want,
                       double *mass)
{
    int lo = 0, hi = n;
    double acc = 0; /* mass of idx[0, lo), all of it kept */
    while (hi - lo > 1) {
        int p = partition(w, idx, lo, hi);
        double better_mass = 0;
        for (int j = lo; j < p; j++)
            better_mass += prob[idx[j]];
        if (acc + better_mass >= want) {
            hi = p;
            continue;
        }
        acc += better_mass + prob[idx[p]];
        if (acc >= want) {
            *mass = acc;
            return p + 1;
        }
        lo = p + 1;
    }
    if (hi > lo) /* the last one left is what reaches want */
        acc += prob[idx[lo++]];
    *mass = acc;
    return lo > 0 ? lo : 1;
}

/* The k-th largest of a[0, n) (1 <= k <= n, no NaN), reordering a. */
static float kth_largest(float *a, int n, int k)
{
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) { /* Hoare: a[lo, i) >= pivot >= a(j, hi] */
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return a[want];
    }
    return a[lo];
}

/* Sample entries per kept token when top_k looks for its threshold. */
#define TOP_K_SAMPLE 32

/*
 * The best k of the whole vocabulary into s->idx[0, k), in no particular
 * order (better()'s order: ties to the lower id).  A strided sample of
 * TOP_K_SAMPLE * k logits gives a threshold no higher than the k-th best
 * logit (a sample's k-th best never beats the whole's), kernel_select_ge
 * keeps the tokens at or above it, a few times k, and the quickselect runs
 * on those instead of on the vocabulary (128256 tokens, top_k 40: 700 us
 * before).  The sample is written over s->prob, which holds nothing yet.
 */
static void select_top_k(struct sampler *s, const float *w, int k)
{
    int n = s->n_vocab, stride = n / (TOP_K_SAMPLE * k);
    int32_t *idx = s->idx;
    if (stride >= 4) {
        float *sample = s->prob;
        int m = 0;
        for (int i = 0; i < n; i += stride)
            sample[m++] = isnan(w[i]) ? -INFINITY : w[i];
        int c = kernel_select_ge(w, n, kth_largest(sample, m, k), idx);
        if (c >= k) { /* fewer only when NaN hides tokens the sample saw as -inf */
            select_top(w, idx, c, k);
            return;
        }
    }
    for (int i = 0; i < n; i++)
        idx[i] = i;
    select_top(w, idx, n, k);
}

/*
 * top_p over the whole vocabulary: s->idx[0, c) gets the nucleus (in no
 * particular order) and c is returned.  The tokens with prob >= t, for t
 * = 1/4, 1/16, ... until their mass reaches want, are a best-first set
 * holding the nucleus (kernel_select_ge, one pass each); select_mass then
 * runs on them alone (128256 tokens, top_p 0.95: 4 ms before).
 */
static int select_nucleus(struct sampler *s, const float *w, double want)
{
    int n = s->n_vocab, c = 0;
    const float *prob = s->prob;
    for (float t = 0.25f;; t *= 0.25f) {
        c = kernel_select_ge(prob, n, t, s->idx);
        double mass = 0;
        for (int j = 0; j < c; j++)
            mass += prob[s->idx[j]];
        if (mass >= want || t == 0.0f)
            break;
    }
    double unused;
    return c > 0 ? select_mass(w, prob, s->idx, c, want, &unused) : 0;
}

/* ---- the step ---------------------------------------------------------- */

/* Whether a penalty applies to the tokens already seen. */
static bool seen_penalties(const struct sampler_params *p)
{
    return p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
           p->frequency_penalty != 0.0f;
}

/* Whether apply_penalties would change any logit this step. */
static bool penalties_apply(const struct sampler *s)
{
    const struct sampler_params *p = &s->p;
    return seen_penalties(p) || p->n_logit_bias > 0 ||
           (s->n_generated < p->min_tokens && p->n_eos_ids > 0);
}

static void apply_penalties(struct sampler *s, float *w)
{
    const struct sampler_params *p = &s->p;
    float rep = p->repetition_penalty;
    for (int i = 0; seen_penalties(p) && i < s->n_seen; i++) {
        int32_t id = s->seen_list[i];
        if (rep != 1.0f)
            w[id] = w[id] > 0 ? w[id] / rep : w[id] * rep;
        if (s->seen[id] & SEEN_GEN)
            w[id] -= p->presence_penalty + p->frequency_penalty * (float)s->count[id];
    }
    for (int i = 0; i < p->n_logit_bias; i++) {
        int32_t id = p->logit_bias[i].id;
        w[id] = p->logit_bias[i].bias <= -100.0f ? -INFINITY : w[id] + p->logit_bias[i].bias;
    }
    if (s->n_generated < p->min_tokens)
        for (int i = 0; i < p->n_eos_ids; i++)
            w[p->eos_ids[i]] = -INFINITY;
}

/* Candidate j's probability: prob by id, candidates idx[j] (or j itself
 * when idx is NULL). */
static inline float cand_prob(const float *prob, const int32_t *idx, int j)
{
    return prob[idx ? idx[j] : j];
}

/* The candidate of block b (DRAW_BLOCK of them) where the running sum,
 * starting at acc, first passes r; the block's last candidate with any mass
 * when rounding leaves r past its own sum. */
static int draw_in_block(const float *prob, const int32_t *idx, int n, int b, double acc, double r)
{
    int j0 = b * DRAW_BLOCK, j1 = j0 + DRAW_BLOCK < n ? j0 + DRAW_BLOCK : n, last = j0;
    for (int j = j0; j < j1; j++) {
        float p = cand_prob(prob, idx, j);
        acc += p;
        if (r < acc)
            return j;
        if (p > 0)
            last = j;
    }
    return last;
}

/* The sum of the n candidates' block masses in s->block_sum, added in
 * block order. */
static double blocks_total(const struct sampler *s, int n)
{
    double total = 0;
    for (int b = 0; b < blocks_of(n); b++)
        total += s->block_sum[b];
    return total;
}

/* Fills s->block_sum with the masses of the n candidates' blocks of
 * DRAW_BLOCK (kernel_block_sums16: the same bits for a candidate list as
 * for the whole vocabulary) and returns their sum (blocks_total). */
static double block_masses(struct sampler *s, const float *prob, const int32_t *idx, int n)
{
    double *bsum = s->block_sum;
    if (!idx)
        kernel_block_sums16(prob, (size_t)n, bsum);
    for (int b = 0; idx && b < blocks_of(n); b++) {
        float block[DRAW_BLOCK];
        int j0 = b * DRAW_BLOCK, len = n - j0 < DRAW_BLOCK ? n - j0 : DRAW_BLOCK;
        for (int k = 0; k < len; k++)
            block[k] = prob[idx[j0 + k]];
        kernel_block_sums16_ref(block, (size_t)len, &bsum[b]);
    }
    return blocks_total(s, n);
}

/*
 * Draws one of n candidates with probability proportional to its prob and
 * returns its id, or -1 (the RNG untouched) when the mass is not positive;
 * s->block_sum holds the masses of their blocks of DRAW_BLOCK and total
 * their sum (block_masses).  The blocks are independent, so their sums
 * overlap in the pipeline instead of making one chain of dependent adds as
 * long as the vocabulary, and the walk steps over whole blocks.  The same
 * candidates in the same order give the same draw whichever path made them
 * (32000 tokens: 20 us a draw, was 75-100 with one running sum and a scalar
 * argmax and scaling).
 */
static int32_t draw_in_blocks(struct sampler *s, const float *prob, const int32_t *idx, int n,
                              double total)
{
    const double *bsum = s->block_sum;
    int nb = blocks_of(n);
    if (!(total > 0))
        return -1;
    double r = rng_uniform(s->rng) * total, acc = 0;
    int b = 0, last = 0; /* last: the last block with mass, for r rounded up to total */
    double last_acc = 0;
    for (; b < nb && !(r < acc + bsum[b]); b++) {
        if (bsum[b] > 0) {
            last = b;
            last_acc = acc;
        }
        acc += bsum[b];
    }
    int j = b < nb ? draw_in_block(prob, idx, n, b, acc, r)
                   : draw_in_block(prob, idx, n, last, last_acc, r);
    return idx ? idx[j] : j;
}

/* draw_in_blocks over the masses block_masses gives the candidates. */
static int32_t draw_from(struct sampler *s, const float *prob, const int32_t *idx, int n)
{
    return draw_in_blocks(s, prob, idx, n, block_masses(s, prob, idx, n));
}

/* Whether top_k keeps fewer tokens than the vocabulary. */
static bool top_k_narrows(const struct sampler *s)
{
    return s->p.top_k > 0 && s->p.top_k < s->n_vocab;
}

/* Whether top_k, top_p or min_p narrows the candidates. */
static bool filtered(const struct sampler *s)
{
    return top_k_narrows(s) || s->p.top_p < 1.0f || s->p.min_p > 0.0f;
}

/* The best token of w and 1 / temperature for a draw over w; false when
 * the draw is the best token outright: every token banned or an infinite
 * bias (the maximum is not finite), or a temperature whose inverse
 * overflows. */
static bool draw_scale(const struct sampler *s, const float *w, int32_t *best, float *inv_t)
{
    *best = kernel_argmax(w, s->n_vocab);
    *inv_t = 1.0f / s->p.temperature;
    return isfinite(w[*best]) && isfinite(*inv_t);
}

/* The draw with temperature only (no top_k, top_p or min_p): w is read in
 * place, so without penalties the model's logits need no copy, and one
 * pass (kernel_scaled_exp_sums16) gives the probabilities and their block
 * masses.  The best token is shifted to 0 before scaling: a tiny
 * temperature then sends everything else to -inf instead of overflowing to
 * +inf.  The same operations as the filtered path, so the same token. */
static int32_t draw_unfiltered(struct sampler *s, const float *w)
{
    int32_t best;
    float inv_t;
    if (!draw_scale(s, w, &best, &inv_t))
        return best;
    int n = s->n_vocab;
    kernel_scaled_exp_sums16(w, w[best], inv_t, s->prob, (size_t)n, s->block_sum);
    /* the best token's own mass is e^0 = 1 (and exp clamps NaN to a finite
     * value), so the total is positive and the draw always picks a token */
    return draw_in_blocks(s, s->prob, NULL, n, blocks_total(s, n));
}

/* Temperature, top_k, top_p, min_p, then a draw, over w (scratch: the
 * filtered path transforms it).  Returns the token. */
static int32_t draw(struct sampler *s, float *w)
{
    if (!filtered(s))
        return draw_unfiltered(s, w);
    const struct sampler_params *p = &s->p;
    int n = s->n_vocab;
    int32_t *idx = s->idx;
    float *prob = s->prob;
    int32_t best;
    float inv_t;
    if (!draw_scale(s, w, &best, &inv_t))
        return best;
    float max = w[best];
    kernel_shift_scale(w, max, inv_t, (size_t)n);
    /* The best token survives top_k, so probabilities are relative to it
     * (its own is exp(0) = 1). */
    bool whole = !top_k_narrows(s); /* the candidates: every token */
    double total = 0;
    if (whole) {
        kernel_exp(w, prob, (size_t)n);
        if (p->top_p < 1.0f)
            total = block_masses(s, prob, NULL, n);
    } else {
        select_top_k(s, w, p->top_k);
        n = p->top_k;
        for (int j = 0; j < n; j++) {
            prob[idx[j]] = kernel_expf_ref(w[idx[j]]);
            total += prob[idx[j]];
        }
    }

    if (p->top_p < 1.0f) {
        if (whole)
            n = select_nucleus(s, w, (double)p->top_p * total);
        else
            n = select_mass(w, prob, idx, n, (double)p->top_p * total, &total);
        whole = false;
    }

    if (p->min_p > 0.0f) {
        /* prob is relative to the best token, so min_p * p_max is min_p. */
        if (whole) {
            n = kernel_select_ge(prob, n, p->min_p, idx);
        } else {
            int kept = 0;
            for (int j = 0; j < n; j++)
                if (prob[idx[j]] >= p->min_p)
                    idx[kept++] = idx[j];
            n = kept;
        }
    }

    int32_t id = n > 0 ? draw_from(s, prob, idx, n) : -1;
    return id >= 0 ? id : kernel_argmax(w, s->n_vocab);
}

static void fill_logprobs(const struct sampler *s, const float *logits, struct sampler_result *out)
{
    int n = s->n_vocab, k = s->p.top_logprobs;
    float max = logits[kernel_argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)logits[i] - max);
    float lse = (float)(max + log(sum));
    out->logprob = logits[out->id] - lse;
    out->n_top = 0;
    /* Insertion into a short sorted list: ascending ids make "strictly
     * better" keep the lower id first on ties. */
    for (int i = 0; i < n && k > 0; i++) {
        float lp = logits[i] - lse;
        if (out->n_top == k && !(lp > out->top[k - 1].logprob))
            continue;
        int j = out->n_top < k ? out->n_top++ : k - 1;
        while (j > 0 && lp > out->top[j - 1].logprob) {
            out->top[j] = out->top[j - 1];
            j--;
        }
        out->top[j].id = i;
        out->top[j].logprob = lp;
    }
}

void sampler_sample(struct sampler *s, const float *logits, struct sampler_result *out)
{
    float *w = s->work;
    bool penalized = penalties_apply(s);
    if (s->p.temperature == 0.0f && !penalized) {
        out->id = kernel_argmax(logits, s->n_vocab); /* plain greedy: no copy to transform */
    } else if (!penalized && !filtered(s)) {
        out->id = draw_unfiltered(s, logits); /* temperature alone: read in place */
    } else {
        memcpy(w, logits, (size_t)s->n_vocab * sizeof(*w));
        apply_penalties(s, w);
        out->id = s->p.temperature == 0.0f ? kernel_argmax(w, s->n_vocab) : draw(s, w);
    }
    out->logprob = 0;
    out->n_top = 0;
    if (s->p.logprobs)
        fill_logprobs(s, logits, out);
    mark_seen(s, out->id, SEEN_GEN);
    s->count[out->id]++;
    s->n_generated++;
}
