/* Tests for engine/sampler and engine/stop: every transform on hand-made
 * logits with expected results worked out by hand. */
#include <math.h>

#include "harness.h"
#include "sampler.h"
#include "stop.h"

/* The next of a 64-bit LCG's states (Knuth's MMIX constants), for the
 * tests' reproducible random logits and texts. */
static uint64_t lcg_next(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x;
}

static struct sampler *make(int n_vocab, const struct sampler_params *p)
{
    struct sampler *s = NULL;
    char err[256] = "";
    enum status st = sampler_create(n_vocab, p, &s, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "%s", err);
    return s;
}

static int32_t sample_once(int n_vocab, const struct sampler_params *p, const float *logits)
{
    struct sampler *s = make(n_vocab, p);
    struct sampler_result r;
    sampler_sample(s, logits, &r);
    sampler_free(s);
    return r.id;
}

/* Draws `n` tokens from the same logits with one sampler; counts per id. */
static void histogram(int n_vocab, const struct sampler_params *p, const float *logits, int n,
                      int *counts)
{
    struct sampler *s = make(n_vocab, p);
    struct sampler_result r;
    memset(counts, 0, (size_t)n_vocab * sizeof(*counts));
    for (int i = 0; i < n; i++) {
        sampler_sample(s, logits, &r);
        counts[r.id]++;
    }
    sampler_free(s);
}

static void test_greedy_and_ties(void)
{
    struct sampler_params p;
    sampler_params_default(&p);
    float l[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
    CHECK_INT_EQ(sample_once(5, &p, l), 1); /* 1 and 3 tie: lowest id */
    float neg[3] = {-3.0f, -1.0f, -2.0f};
    CHECK_INT_EQ(sample_once(3, &p, neg), 1);
}

static void test_temperature_to_zero_is_greedy(void)
{
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1e-4f;
    float l[6] = {1.0f, 3.0f, 2.99f, -5.0f, 0.0f, 2.5f};
    for (uint64_t seed = 0; seed < 50; seed++) {
        p.seed = seed;
        CHECK_INT_EQ(sample_once(6, &p, l), 1);
    }
    /* so small that logit / T overflows: still the best token, not the
     * first positive one */
    p.temperature = 1e-39f; /* 1 / T is +inf in float */
    CHECK_INT_EQ(sample_once(6, &p, l), 1);
    float all_banned[3] = {-INFINITY, -INFINITY, -INFINITY};
    CHECK_INT_EQ(sample_once(3, &p, all_banned), 0);
}

static void test_top_k(void)
{
    /* top_k = 2 keeps ids 3 (logit 4) and 1 (logit 3): nothing else may come
     * out, and P(3) = e^4 / (e^4 + e^3) = 0.731. */
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.top_k = 2;
    p.seed = 7;
    float l[5] = {1.0f, 3.0f, 2.0f, 4.0f, 0.0f};
    int counts[5];
    histogram(5, &p, l, 10000, counts);
    CHECK_INT_EQ(counts[0] + counts[2] + counts[4], 0);
    CHECK_MSG(fabs(counts[3] / 10000.0 - 0.7311) < 0.02, "P(3) = %f", counts[3] / 10000.0);
    /* top_k = 1 is greedy, whatever the seed */
    p.top_k = 1;
    for (uint64_t seed = 0; seed < 20; seed++) {
        p.seed = seed;
        CHECK_INT_EQ(sample_once(5, &p, l), 3);
    }
}

static void test_top_p(void)
{
    /* probabilities 0.5, 0.25, 0.125, 0.125 (logits are their logs).
     * top_p 0.7: 0.5 < 0.7, 0.5 + 0.25 >= 0.7 -> keep {0, 1}, P = 2/3, 1/3.
     * top_p 0.45: the first token alone reaches it -> always 0. */
    float l[4] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.125f)};
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.top_p = 0.7f;
    p.seed = 3;
    int counts[4];
    histogram(4, &p, l, 10000, counts);
    CHECK_INT_EQ(counts[2] + counts[3], 0);
    CHECK_MSG(fabs(counts[0] / 10000.0 - 2.0 / 3.0) < 0.02, "P(0) = %f", counts[0] / 10000.0);
    p.top_p = 0.45f;
    histogram(4, &p, l, 1000, counts);
    CHECK_INT_EQ(counts[0], 1000);
    /* 0.8 needs a third token; of the tied 2 and 3 the lower id is kept */
    p.top_p = 0.8f;
    histogram(4, &p, l, 10000, counts);
    CHECK_INT_EQ(counts[3], 0);
    CHECK(counts[2] > 0);
}

static void test_top_p_large_vocab(void)
{
    /* 5000 tokens: ids 10, 20, 30 hold almost all the mass; the nucleus
     * search must find them without sorting everything. */
    enum { V = 5000 };
    static float l[V];
    for (int i = 0; i < V; i++)
        l[i] = -20.0f;
    l[10] = 5.0f;
    l[20] = 4.0f;
    l[30] = 3.0f;
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.top_p = 0.9f; /* e^5, e^4 share = 0.665 + 0.245 = 0.91 >= 0.9 */
    p.seed = 11;
    static int counts[V];
    histogram(V, &p, l, 2000, counts);
    CHECK_INT_EQ(counts[10] + counts[20], 2000);
    CHECK(counts[20] > 0);
}

static const float *cmp_logits;

static int cmp_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (cmp_logits[x] != cmp_logits[y])
        return cmp_logits[x] > cmp_logits[y] ? -1 : 1;
    return x < y ? -1 : 1;
}

/* order[0, n) = the ids of l best first (ties: lower id first). */
static void sort_by_logit(const float *l, int32_t *order, int n)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    cmp_logits = l;
    qsort(order, (size_t)n, sizeof(order[0]), cmp_desc);
}

/* top_k 25 of 20000 tokens (the sampled-threshold path), logits with many
 * ties at the boundary: at a temperature that makes the survivors nearly
 * equal, exactly the 25 best by logit, lower id first among equals, come
 * out, every one of them; the same with NaN among the logits. */
static void test_top_k_large_vocab(void)
{
    enum { V = 20000, K = 25, N = 6000 };
    static float l[V];
    static int32_t order[V];
    static int counts[V];
    uint64_t x = 5;
    for (int with_nan = 0; with_nan < 2; with_nan++) {
        for (int i = 0; i < V; i++) {
            l[i] = (float)((lcg_next(&x) >> 40) % 2000) / 100.0f; /* 0 .. 19.99: ~10 of each */
            if (with_nan && i % 1000 == 7)
                l[i] = -INFINITY; /* ranked last here; NaN below, which the sampler never keeps */
        }
        sort_by_logit(l, order, V);
        for (int i = 0; with_nan && i < V; i++)
            if (isinf(l[i]))
                l[i] = NAN;
        struct sampler_params p;
        sampler_params_default(&p);
        p.temperature = 1000.0f;
        p.top_k = K;
        p.seed = 23;
        histogram(V, &p, l, N, counts);
        int inside = 0, missing = 0;
        for (int i = 0; i < K; i++) {
            inside += counts[order[i]];
            missing += counts[order[i]] == 0;
        }
        CHECK_MSG(inside == N, "%s: %d of %d draws outside the top %d", with_nan ? "NaN" : "plain",
                  N - inside, N, K);
        CHECK_MSG(missing == 0, "%s: %d of the top %d never drawn", with_nan ? "NaN" : "plain",
                  missing, K);
    }
}

/* top_p on random logits against a nucleus computed by sorting: nothing
 * outside it is ever drawn, and the boundary token is inside. */
static void test_top_p_vs_sorted_reference(void)
{
    enum { V = 300 };
    static float l[V];
    static int32_t order[V];
    static int counts[V];
    uint64_t x = 99;
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < V; i++)
            l[i] = (float)((lcg_next(&x) >> 40) % 1000) / 250.0f; /* 0 .. 4, with ties */
        sort_by_logit(l, order, V);
        double total = 0, cum = 0;
        for (int i = 0; i < V; i++)
            total += exp(l[i] - l[order[0]]);
        float top_p = 0.3f + 0.03f * (float)trial;
        int nucleus = 0;
        while (nucleus < V && cum < top_p * total)
            cum += exp(l[order[nucleus++]] - l[order[0]]);
        struct sampler_params p;
        sampler_params_default(&p);
        p.temperature = 1.0f;
        p.top_p = top_p;
        p.seed = (uint64_t)trial;
        histogram(V, &p, l, 3000, counts);
        int outside = 0;
        for (int i = nucleus; i < V; i++)
            outside += counts[order[i]];
        CHECK_MSG(outside == 0, "trial %d: %d draws outside a nucleus of %d", trial, outside,
                  nucleus);
        CHECK_MSG(counts[order[nucleus - 1]] > 0, "trial %d: boundary token never drawn", trial);
    }
}

static void test_min_p(void)
{
    /* probabilities relative to the best: 1, 0.5, 0.09, 0.2.
     * min_p 0.15 drops id 2 only. */
    float l[4] = {0.0f, logf(0.5f), logf(0.09f), logf(0.2f)};
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.min_p = 0.15f;
    p.seed = 5;
    int counts[4];
    histogram(4, &p, l, 10000, counts);
    CHECK_INT_EQ(counts[2], 0);
    CHECK(counts[3] > 0);
    /* P(0) = 1 / 1.7 */
    CHECK_MSG(fabs(counts[0] / 10000.0 - 1 / 1.7) < 0.02, "P(0) = %f", counts[0] / 10000.0);
}

static void test_repetition_penalty(void)
{
    /* penalty 2: id 0 (2.0, in prompt) -> 1.0; id 2 (-1.0, in prompt) -> -2.0;
     * id 1 (1.5, unseen) stays: greedy picks 1, where without the penalty
     * it would pick 0. */
    float l[4] = {2.0f, 1.5f, -1.0f, -1.5f};
    struct sampler_params p;
    sampler_params_default(&p);
    p.repetition_penalty = 2.0f;
    struct sampler *s = make(4, &p);
    int32_t prompt[2] = {0, 2};
    sampler_add_prompt(s, prompt, 2);
    struct sampler_result r;
    sampler_sample(s, l, &r);
    CHECK_INT_EQ(r.id, 1);
    /* now 1 is generated too: 1.5 / 2 = 0.75 < 1.0, so 0 wins */
    sampler_sample(s, l, &r);
    CHECK_INT_EQ(r.id, 0);
    sampler_free(s);
    /* negative side: -1.0 * 2 = -2.0 falls below -1.5 */
    float n[3] = {-1.0f, -1.5f, -9.0f};
    s = make(3, &p);
    int32_t pr[1] = {0};
    sampler_add_prompt(s, pr, 1);
    sampler_sample(s, n, &r);
    CHECK_INT_EQ(r.id, 1);
    sampler_free(s);
}

static void test_presence_frequency(void)
{
    float l[3] = {3.0f, 2.2f, 0.0f};
    struct sampler_params p;
    sampler_params_default(&p);
    /* presence 0.5: after 0 once, 3.0 - 0.5 = 2.5 > 2.2 -> 0 again; the
     * presence penalty does not grow, so 0 keeps winning. */
    p.presence_penalty = 0.5f;
    struct sampler *s = make(3, &p);
    struct sampler_result r;
    int32_t prompt[1] = {0}; /* prompt tokens do not count for OpenAI penalties */
    sampler_add_prompt(s, prompt, 1);
    for (int i = 0; i < 4; i++) {
        sampler_sample(s, l, &r);
        CHECK_INT_EQ(r.id, 0);
    }
    sampler_free(s);
    /* frequency 0.5: 3.0, then 2.5 (> 2.2), then 2.0 (< 2.2) -> 0, 0, 1,
     * then 1 is at 1.7 and 0 at 2.0 -> 0, then 0 at 1.5 -> 1. */
    sampler_params_default(&p);
    p.frequency_penalty = 0.5f;
    s = make(3, &p);
    int want[5] = {0, 0, 1, 0, 1};
    for (int i = 0; i < 5; i++) {
        sampler_sample(s, l, &r);
        CHECK_INT_EQ(r.id, want[i]);
    }
    CHECK_INT_EQ(sampler_n_generated(s), 5);
    sampler_free(s);
}

static void test_logit_bias(void)
{
    float l[3] = {3.0f, 2.0f, 1.0f};
    struct sampler_params p;
    sampler_params_default(&p);
    struct sampler_bias b[2] = {{2, 2.5f}, {0, -100.0f}};
    p.logit_bias = b;
    p.n_logit_bias = 2;
    CHECK_INT_EQ(sample_once(3, &p, l), 2); /* 1.0 + 2.5 = 3.5 and 0 banned */
    /* a ban holds under sampling too */
    struct sampler_bias ban[1] = {{0, -100.0f}};
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    p.temperature = 5.0f;
    p.seed = 1;
    int counts[3];
    histogram(3, &p, l, 5000, counts);
    CHECK_INT_EQ(counts[0], 0);
    CHECK(counts[1] > 0 && counts[2] > 0);
}

static void test_min_tokens_bans_eos(void)
{
    float l[3] = {0.0f, 1.0f, 5.0f};
    struct sampler_params p;
    sampler_params_default(&p);
    int32_t eos[1] = {2};
    p.eos_ids = eos;
    p.n_eos_ids = 1;
    p.min_tokens = 2;
    struct sampler *s = make(3, &p);
    struct sampler_result r;
    sampler_sample(s, l, &r);
    CHECK_INT_EQ(r.id, 1);
    sampler_sample(s, l, &r);
    CHECK_INT_EQ(r.id, 1);
    sampler_sample(s, l, &r);
    CHECK_INT_EQ(r.id, 2);
    sampler_free(s);
}

static void test_seed_determinism(void)
{
    enum { V = 50, N = 200 };
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = sinf((float)i) * 2.0f;
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.seed = 1234;
    struct sampler *a = make(V, &p), *b = make(V, &p);
    p.seed = 1235;
    struct sampler *c = make(V, &p);
    struct sampler_result ra, rb, rc;
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < N; i++) {
        sampler_sample(a, l, &ra);
        /* interleave an unrelated sampler: it must not disturb a or b */
        sampler_sample(c, l, &rc);
        sampler_sample(b, l, &rb);
        same_ab += ra.id == rb.id;
        same_ac += ra.id == rc.id;
    }
    CHECK_INT_EQ(same_ab, N);
    CHECK(same_ac < N / 2);
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

/* Temperature alone takes a one-pass draw over the whole vocabulary; it
 * must pick what the filtered path picks when its filter keeps everything
 * (min_p far below every token's probability). */
static void test_temperature_only_equals_filtered_path(void)
{
    enum { V = 3000, N = 300 };
    static float l[V];
    for (int i = 0; i < V; i++)
        l[i] = 2.5f + 2.5f * sinf((float)i * 0.37f);
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0.7f;
    p.seed = 99;
    struct sampler *plain = make(V, &p);
    p.min_p = 1e-30f;
    struct sampler *filtered = make(V, &p);
    struct sampler_result a, b;
    int same = 0, distinct = 0, last = -1;
    for (int i = 0; i < N; i++) {
        sampler_sample(plain, l, &a);
        sampler_sample(filtered, l, &b);
        same += a.id == b.id;
        distinct += a.id != last;
        last = a.id;
    }
    CHECK_INT_EQ(same, N);
    CHECK(distinct > N / 2); /* it really samples */
    sampler_free(plain);
    sampler_free(filtered);
}

static void test_distribution(void)
{
    /* P = 0.1, 0.2, 0.3, 0.4 at temperature 1; at temperature 2 the
     * probabilities become proportional to sqrt(P). */
    float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.seed = 42;
    int counts[4];
    histogram(4, &p, l, 10000, counts);
    double want[4] = {0.1, 0.2, 0.3, 0.4};
    for (int i = 0; i < 4; i++)
        CHECK_MSG(fabs(counts[i] / 10000.0 - want[i]) < 0.015, "id %d: %f vs %f", i,
                  counts[i] / 10000.0, want[i]);
    p.temperature = 2.0f;
    histogram(4, &p, l, 10000, counts);
    double z = sqrt(0.1) + sqrt(0.2) + sqrt(0.3) + sqrt(0.4);
    for (int i = 0; i < 4; i++)
        CHECK_MSG(fabs(counts[i] / 10000.0 - sqrt(want[i]) / z) < 0.015, "T=2 id %d: %f vs %f", i,
                  counts[i] / 10000.0, sqrt(want[i]) / z);
}

/* Mass in five tokens of a 1,001-token vocabulary, weights 1 : 1 : 2 : 1 : 1
 * (one in the first block, three together in a middle one, one alone in
 * the short last block), none anywhere else: the draw steps over the empty
 * blocks, walks within a block from the mass before it, never lands on a
 * token without mass, and follows the weights, through the
 * whole-vocabulary path and the filtered one. */
static void test_draw_over_blocks(void)
{
    enum { V = 1001, N = 12000 };
    static const int ids[] = {5, 300, 301, 302, 1000};
    static const double want[] = {1 / 6.0, 1 / 6.0, 2 / 6.0, 1 / 6.0, 1 / 6.0};
    static float l[V];
    static int counts[V];
    for (int i = 0; i < V; i++)
        l[i] = -INFINITY;
    for (int k = 0; k < 5; k++)
        l[ids[k]] = k == 2 ? logf(2.0f) : 0.0f;
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.seed = 17;
    for (int filtered = 0; filtered < 2; filtered++) {
        p.top_k = filtered ? 50 : 0; /* 45 of the 50 without mass */
        histogram(V, &p, l, N, counts);
        int sum = 0;
        for (int k = 0; k < 5; k++) {
            sum += counts[ids[k]];
            CHECK_MSG(fabs(counts[ids[k]] / (double)N - want[k]) < 0.025,
                      "%s path: id %d drawn %d times of %d",
                      filtered ? "filtered" : "whole-vocabulary", ids[k], counts[ids[k]], N);
        }
        CHECK_INT_EQ(sum, N);
    }
}

static void test_logprobs(void)
{
    /* raw log-softmax of {ln 0.5, ln 0.25, ln 0.25}: -0.693, -1.386, -1.386,
     * regardless of temperature and bias */
    float l[3] = {logf(0.5f), logf(0.25f), logf(0.25f)};
    struct sampler_params p;
    sampler_params_default(&p);
    p.logprobs = true;
    p.top_logprobs = 2;
    struct sampler_bias b[1] = {{2, 10.0f}};
    p.logit_bias = b;
    p.n_logit_bias = 1;
    struct sampler *s = make(3, &p);
    struct sampler_result r;
    sampler_sample(s, l, &r);
    CHECK_INT_EQ(r.id, 2);
    CHECK(fabsf(r.logprob - logf(0.25f)) < 1e-5f);
    CHECK_INT_EQ(r.n_top, 2);
    CHECK_INT_EQ(r.top[0].id, 0);
    CHECK(fabsf(r.top[0].logprob - logf(0.5f)) < 1e-5f);
    CHECK_INT_EQ(r.top[1].id, 1); /* tie with 2: lower id first */
    sampler_free(s);
}

static void test_invalid_params(void)
{
    struct sampler_params p;
    struct sampler *s = NULL;
    char err[128];
    sampler_params_default(&p);
    p.temperature = -1.0f;
    CHECK_INT_EQ(sampler_create(10, &p, &s, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(strstr(err, "temperature") != NULL);
    sampler_params_default(&p);
    p.top_p = 0.0f;
    CHECK_INT_EQ(sampler_create(10, &p, &s, err, sizeof(err)), ST_ERR_INVALID);
    sampler_params_default(&p);
    struct sampler_bias b[1] = {{10, 1.0f}};
    p.logit_bias = b;
    p.n_logit_bias = 1;
    CHECK_INT_EQ(sampler_create(10, &p, &s, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(strstr(err, "logit_bias") != NULL);
    sampler_params_default(&p);
    p.top_logprobs = 21;
    p.logprobs = true;
    CHECK_INT_EQ(sampler_create(10, &p, &s, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(s == NULL);
}

/* ---- stop strings ---------------------------------------------------- */

/* Feeds pieces one by one, appending what is emitted to out. Returns whether
 * a stop string completed. */
static bool feed_all(struct stop_matcher *m, const char *const *pieces, int n, char *out,
                     size_t outlen)
{
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *e;
        size_t el;
        bool stopped;
        CHECK_INT_EQ(stop_matcher_feed(m, pieces[i], strlen(pieces[i]), &e, &el, &stopped), ST_OK);
        strncat(out, e, el < outlen - strlen(out) - 1 ? el : outlen - strlen(out) - 1);
        if (stopped)
            return true;
    }
    const char *e;
    size_t el;
    stop_matcher_flush(m, &e, &el);
    strncat(out, e, el);
    return false;
}

static void test_stop_across_tokens(void)
{
    const char *stops[2] = {"###", "END"};
    struct stop_matcher *m = NULL;
    char err[64], out[256];
    CHECK_INT_EQ(stop_matcher_create(stops, 2, &m, err, sizeof(err)), ST_OK);
    /* "#" and "##" are held back until the third '#' completes the stop */
    const char *pieces[] = {"Hello #", "#", "# tail"};
    const char *e;
    size_t el;
    bool stopped;
    stop_matcher_feed(m, pieces[0], strlen(pieces[0]), &e, &el, &stopped);
    CHECK(!stopped);
    CHECK_INT_EQ(el, 6);
    CHECK(!memcmp(e, "Hello ", 6));
    stop_matcher_feed(m, pieces[1], 1, &e, &el, &stopped);
    CHECK(!stopped);
    CHECK_INT_EQ(el, 0);
    stop_matcher_feed(m, pieces[2], strlen(pieces[2]), &e, &el, &stopped);
    CHECK(stopped);
    CHECK_INT_EQ(el, 0);
    CHECK_STR_EQ(stop_matcher_matched(m), "###");
    stop_matcher_free(m);

    /* a false start is released once it cannot match any more */
    CHECK_INT_EQ(stop_matcher_create(stops, 2, &m, err, sizeof(err)), ST_OK);
    const char *p2[] = {"a #", "#b E", "N", "x"};
    CHECK(!feed_all(m, p2, 4, out, sizeof(out)));
    CHECK_STR_EQ(out, "a ##b ENx");
    stop_matcher_free(m);

    /* stop in the middle of one piece: the text after it is dropped */
    CHECK_INT_EQ(stop_matcher_create(stops, 2, &m, err, sizeof(err)), ST_OK);
    const char *p3[] = {"one E", "ND two"};
    CHECK(feed_all(m, p3, 2, out, sizeof(out)));
    CHECK_STR_EQ(out, "one ");
    CHECK_STR_EQ(stop_matcher_matched(m), "END");
    stop_matcher_free(m);
}

static void test_stop_overlapping_and_utf8(void)
{
    /* "aab" after "aaa...": the held tail must be the longest prefix */
    const char *stops[2] = {"aab", "\xc3\xa9t\xc3\xa9"}; /* "été" */
    struct stop_matcher *m = NULL;
    char err[64], out[256];
    CHECK_INT_EQ(stop_matcher_create(stops, 2, &m, err, sizeof(err)), ST_OK);
    const char *p[] = {"xa", "a", "a", "b!"};
    CHECK(feed_all(m, p, 4, out, sizeof(out)));
    CHECK_STR_EQ(out, "xa");
    stop_matcher_free(m);

    CHECK_INT_EQ(stop_matcher_create(stops, 2, &m, err, sizeof(err)), ST_OK);
    const char *q[] = {"l'\xc3\xa9", "t\xc3\xa9", " fini"};
    CHECK(feed_all(m, q, 3, out, sizeof(out)));
    CHECK_STR_EQ(out, "l'");
    stop_matcher_free(m);

    /* no stop strings: everything passes straight through; long pieces grow
     * the buffer */
    CHECK_INT_EQ(stop_matcher_create(NULL, 0, &m, err, sizeof(err)), ST_OK);
    char big[1000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    const char *r[] = {"plain ", big};
    static char bigout[2048];
    CHECK(!feed_all(m, r, 2, bigout, sizeof(bigout)));
    CHECK_INT_EQ(strlen(bigout), 6 + 999);
    stop_matcher_free(m);
}

/* Random pieces over a tiny alphabet against a direct reference: after the
 * first piece that completes a stop string anywhere in the text so far, the
 * output must be that text up to the earliest stop start; otherwise all of
 * it (after the flush); and what was emitted is always a prefix. */
static void test_stop_random_vs_reference(void)
{
    const char *stops[3] = {"ab#", "##", "bba"};
    uint64_t x = 12345;
    int mismatches = 0, stopped_runs = 0;
    for (int trial = 0; trial < 3000; trial++) {
        struct stop_matcher *m = NULL;
        char err[64];
        if (stop_matcher_create(stops, 3, &m, err, sizeof(err)) != ST_OK) {
            CHECK(0);
            return;
        }
        char text[128] = "", out[128] = "";
        size_t text_len = 0, out_len = 0;
        bool stopped = false, want_stop = false;
        size_t want_len = 0;
        int n_pieces = 1 + (int)((lcg_next(&x) >> 33) % 8);
        for (int piece = 0; piece < n_pieces && !stopped; piece++) {
            char buf[5];
            int n = (int)((lcg_next(&x) >> 33) % 5);
            for (int i = 0; i < n; i++) {
                buf[i] = "ab#"[(lcg_next(&x) >> 33) % 3];
            }
            memcpy(text + text_len, buf, (size_t)n);
            text_len += (size_t)n;
            text[text_len] = 0;
            const char *e;
            size_t el;
            stop_matcher_feed(m, buf, (size_t)n, &e, &el, &stopped);
            memcpy(out + out_len, e, el);
            out_len += el;
            if (out_len > text_len || memcmp(out, text, out_len))
                mismatches++;
            const char *first = NULL;
            for (int k = 0; k < 3; k++) {
                const char *hit = strstr(text, stops[k]);
                if (hit && (!first || hit < first))
                    first = hit;
            }
            if (first) {
                want_stop = true;
                want_len = (size_t)(first - text);
                break;
            }
        }
        if (!stopped) {
            const char *e;
            size_t el;
            stop_matcher_flush(m, &e, &el);
            memcpy(out + out_len, e, el);
            out_len += el;
            want_len = text_len;
        }
        stopped_runs += stopped;
        if (stopped != want_stop || out_len != want_len || memcmp(out, text, out_len))
            mismatches++;
        stop_matcher_free(m);
    }
    CHECK_INT_EQ(mismatches, 0);
    /* both paths exercised */
    CHECK_MSG(stopped_runs > 300 && stopped_runs < 2700, "%d of 3000 stopped", stopped_runs);
}

int main(void)
{
    RUN(test_greedy_and_ties);
    RUN(test_temperature_to_zero_is_greedy);
    RUN(test_top_k);
    RUN(test_top_k_large_vocab);
    RUN(test_top_p);
    RUN(test_top_p_large_vocab);
    RUN(test_top_p_vs_sorted_reference);
    RUN(test_min_p);
    RUN(test_repetition_penalty);
    RUN(test_presence_frequency);
    RUN(test_logit_bias);
    RUN(test_min_tokens_bans_eos);
    RUN(test_seed_determinism);
    RUN(test_temperature_only_equals_filtered_path);
    RUN(test_distribution);
    RUN(test_draw_over_blocks);
    RUN(test_logprobs);
    RUN(test_invalid_params);
    RUN(test_stop_across_tokens);
    RUN(test_stop_overlapping_and_utf8);
    RUN(test_stop_random_vs_reference);
    return harness_finish();
}
