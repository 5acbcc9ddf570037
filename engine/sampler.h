/*
 * sampler.h - turns one row of logits into the next token of one sequence.
 *
 * A sampler belongs to one request: it holds that request's parameters, its
 * own RNG (xoshiro256** seeded through splitmix64 from the request seed, so a
 * seeded request picks the same tokens whatever else is batched with it), the
 * token counts the penalties need, and scratch sized to the vocabulary, so
 * sampler_sample() never allocates.
 *
 * Order of transforms on a copy of the logits (the caller's row is never
 * written):
 *   1. repetition penalty over prompt + generated tokens (HF / llama.cpp:
 *      a positive logit is divided by the penalty, a negative one multiplied);
 *   2. presence and frequency penalties over generated tokens (OpenAI:
 *      l -= presence * (count > 0) + frequency * count);
 *   3. logit_bias (added; a bias <= -100 bans the token outright);
 *   4. EOS ids banned while fewer than min_tokens tokens were generated;
 *   5. temperature 0 -> greedy argmax (lowest id wins ties); otherwise
 *      divide by temperature, then top_k, top_p, min_p (HF warper order),
 *      then draw from what is left.
 *
 * Logprobs (the chosen token's and top_logprobs) are log-softmax of the
 * model's raw logits, before any of the transforms above: they say what the
 * model believes, independent of the sampling parameters (vLLM's default
 * "raw_logprobs").
 *
 * Thread-safety: a sampler is used by one thread at a time (the scheduler
 * thread); different samplers are independent.
 */
#ifndef ENGINE_SAMPLER_H
#define ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define SAMPLER_MAX_TOP_LOGPROBS 20

struct sampler_bias {
    int32_t id;
    float bias;
};

struct sampler_params {
    float temperature;        /* 0 = greedy; must be >= 0 */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off; in (0, 1] */
    float min_p;              /* 0 = off; in [0, 1] */
    float repetition_penalty; /* 1 = off; > 0 */
    float presence_penalty;   /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    uint64_t seed;            /* the RNG seed; the caller picks one when the user gave none */
    const struct sampler_bias *logit_bias; /* copied by sampler_create */
    int n_logit_bias;
    int min_tokens;         /* EOS ids are banned until this many tokens were generated */
    const int32_t *eos_ids; /* copied by sampler_create */
    int n_eos_ids;
    bool logprobs;    /* compute the chosen token's logprob (one pass over the vocab) */
    int top_logprobs; /* 0..SAMPLER_MAX_TOP_LOGPROBS alternatives; needs logprobs */
};

struct sampler_logprob {
    int32_t id;
    float logprob;
};

struct sampler_result {
    int32_t id;    /* the chosen token */
    float logprob; /* its raw log-probability; 0 unless params.logprobs */
    int n_top;     /* entries filled in top[], best first (ties: lower id first) */
    struct sampler_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
};

struct sampler;

/* Fills `p` with the neutral parameters (greedy, no penalties, seed 0). */
void sampler_params_default(struct sampler_params *p);

/*
 * Creates a sampler for a vocabulary of n_vocab tokens.  Validates `p`
 * (ST_ERR_INVALID with a message naming the parameter; ids out of the
 * vocabulary included).  On success *out owns all its memory; free it with
 * sampler_free().
 */
enum status sampler_create(int n_vocab, const struct sampler_params *p, struct sampler **out,
                           char *err, size_t errlen);

/* Frees the sampler; NULL is a no-op. */
void sampler_free(struct sampler *s);

/* Records prompt tokens for the repetition penalty; ids outside the
 * vocabulary are ignored (the tokenizer validated them already). */
void sampler_add_prompt(struct sampler *s, const int32_t *ids, int n);

/*
 * Picks the next token from `logits` (n_vocab floats, not modified) and
 * records it as generated.  `out` gets the token and, when params.logprobs
 * is set, its logprob and the top_logprobs best alternatives.  No
 * allocation.
 */
void sampler_sample(struct sampler *s, const float *logits, struct sampler_result *out);

/* Number of tokens sampled so far. */
int sampler_n_generated(const struct sampler *s);

/* Bytes the sampler holds (for memory accounting). */
size_t sampler_bytes(const struct sampler *s);

#endif
