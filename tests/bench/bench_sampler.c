/*
 * bench_sampler.c - prints the time of one sampler_sample call on a
 * vocabulary's logits (the 32000, 128256 and 151936-token vocabularies of
 * the benchmark shapes): greedy, temperature alone (the whole-vocabulary
 * draw), and temperature with top_p 0.95, top_k 40 and top_p 0.95, or min_p
 * 0.05 (the filtered path).
 * Each sampled request pays this once per token on the scheduler's pool.
 * Mean of 2000 calls, in thread CPU time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../st_build.h"
#include "sampler.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void bench(const char *label, int n_vocab, const struct sampler_params *p,
                  const float *logits)
{
    enum { CALLS = 2000 };
    struct sampler *s;
    char err[128];
    if (sampler_create(n_vocab, p, &s, err, sizeof(err)) != ST_OK) {
        printf("  %-42s %s\n", label, err);
        return;
    }
    struct sampler_result r;
    long ids = 0;
    double t0 = now();
    for (int i = 0; i < CALLS; i++) {
        sampler_sample(s, logits, &r);
        ids += r.id;
    }
    double us = (now() - t0) / CALLS * 1e6;
    printf("  %-42s %7.1f us a token (mean id %ld)\n", label, us, ids / CALLS);
    sampler_free(s);
}

int main(void)
{
    static const int vocabs[] = {32000, 128256, 151936};
    printf("sampler_sample, one thread\n");
    for (int v = 0; v < 3; v++) {
        int n = vocabs[v];
        float *logits = malloc((size_t)n * sizeof(float));
        if (!logits)
            return 1;
        uint64_t seed = 3;
        for (int i = 0; i < n; i++) /* a few strong tokens over a broad tail */
            logits[i] = 4.0f * stb_randf(&seed) + (i % 997 == 0 ? 8.0f : 0.0f);
        struct sampler_params p;
        sampler_params_default(&p);
        char label[64];
        snprintf(label, sizeof(label), "%d tokens, greedy", n);
        bench(label, n, &p, logits);
        p.temperature = 0.8f;
        p.seed = 1;
        snprintf(label, sizeof(label), "%d tokens, temperature 0.8", n);
        bench(label, n, &p, logits);
        p.top_p = 0.95f;
        snprintf(label, sizeof(label), "%d tokens, + top_p 0.95", n);
        bench(label, n, &p, logits);
        p.top_k = 40;
        snprintf(label, sizeof(label), "%d tokens, + top_k 40, top_p 0.95", n);
        bench(label, n, &p, logits);
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.05f;
        snprintf(label, sizeof(label), "%d tokens, temperature 0.8, min_p 0.05", n);
        bench(label, n, &p, logits);
        free(logits);
    }
    return 0;
}
