/* test_engine_embed.c - engine_embed (pooled final hidden states) and the
 * json_object decoding constraint, on the aidreams-260k fixture: pooling
 * identities that follow from causal attention, chunked prefill equal to
 * one pass, embeddings taken while the scheduler generates, and
 * constrained output that parses as a JSON object. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include <cJSON.h>

#include "engine.h"
#include "harness.h"

static char model_dir[4096];
static const int32_t PROMPT[] = {1, 388, 355, 260, 275}; /* "Echoes of" with BOS */
#define N_PROMPT 5

static struct engine_model *load(int max_seqs, int max_batch_tokens)
{
    struct engine_load_opts o = {.max_seqs = max_seqs, .max_batch_tokens = max_batch_tokens};
    struct engine_model *m = NULL;
    char err[512];
    enum status st = engine_model_load(model_dir, &o, &m, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "%s", err);
    return m;
}

static float max_diff(const float *a, const float *b, int n)
{
    float d = 0;
    for (int i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

static void test_pooling(void)
{
    struct engine_model *m = load(0, 0);
    if (!m)
        return;
    int h = engine_model_info(m)->hidden;
    CHECK_INT_EQ(h, 64);
    float last1[64], last2[64], mean2[64], again[64];
    char err[256];
    CHECK(engine_embed(m, PROMPT, 1, ENGINE_POOLING_LAST, last1, err, sizeof(err)) == ST_OK);
    CHECK(engine_embed(m, PROMPT, 2, ENGINE_POOLING_LAST, last2, err, sizeof(err)) == ST_OK);
    CHECK(engine_embed(m, PROMPT, 2, ENGINE_POOLING_MEAN, mean2, err, sizeof(err)) == ST_OK);
    /* Causal attention: position 0 of [a, b] is [a] alone, so the mean of
     * [a, b] is the mean of the two last-token states. */
    float want[64];
    for (int i = 0; i < h; i++)
        want[i] = (last1[i] + last2[i]) / 2;
    CHECK_MSG(max_diff(mean2, want, h) < 1e-5f, "%g", max_diff(mean2, want, h));
    CHECK(max_diff(last1, last2, h) > 1e-3f);
    CHECK(engine_embed(m, PROMPT, 1, ENGINE_POOLING_MEAN, again, err, sizeof(err)) == ST_OK);
    CHECK(max_diff(again, last1, h) == 0);

    int32_t bad = 100000;
    CHECK(engine_embed(m, &bad, 1, ENGINE_POOLING_LAST, again, err, sizeof(err)) == ST_ERR_INVALID);
    CHECK(engine_embed(m, PROMPT, 0, ENGINE_POOLING_LAST, again, err, sizeof(err)) ==
          ST_ERR_INVALID);
    int32_t longer[200];
    for (int i = 0; i < 200; i++)
        longer[i] = 300;
    CHECK(engine_embed(m, longer, 200, ENGINE_POOLING_LAST, again, err, sizeof(err)) ==
          ST_ERR_RANGE);
    engine_model_free(m);
}

static void test_chunked_equals_one_pass(void)
{
    struct engine_model *a = load(0, 0), *b = load(1, 2);
    if (!a || !b) {
        engine_model_free(a);
        engine_model_free(b);
        return;
    }
    float ea[64], eb[64];
    char err[256];
    for (int pool = 0; pool < 2; pool++) {
        enum engine_pooling p = pool ? ENGINE_POOLING_MEAN : ENGINE_POOLING_LAST;
        CHECK(engine_embed(a, PROMPT, N_PROMPT, p, ea, err, sizeof(err)) == ST_OK);
        CHECK(engine_embed(b, PROMPT, N_PROMPT, p, eb, err, sizeof(err)) == ST_OK);
        CHECK_MSG(max_diff(ea, eb, 64) < 1e-5f, "pooling %d: %g", pool, max_diff(ea, eb, 64));
    }
    engine_model_free(a);
    engine_model_free(b);
}

struct gen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    enum engine_finish finish;
    int n_tokens;
    char text[4096];
    size_t len;
};

static void on_event(const struct engine_event *ev, void *user)
{
    struct gen *g = user;
    pthread_mutex_lock(&g->mu);
    if (ev->kind == ENGINE_EVENT_TOKEN)
        g->n_tokens++;
    if (g->len + ev->text_len < sizeof(g->text)) {
        memcpy(g->text + g->len, ev->text, ev->text_len);
        g->len += ev->text_len;
        g->text[g->len] = 0;
    }
    if (ev->kind == ENGINE_EVENT_DONE) {
        g->done = true;
        g->finish = ev->finish;
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gen_wait(struct gen *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->done)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void test_embed_while_generating(void)
{
    struct engine_model *m = load(0, 0);
    if (!m)
        return;
    float base[64], e[64];
    char err[256];
    CHECK(engine_embed(m, PROMPT, N_PROMPT, ENGINE_POOLING_LAST, base, err, sizeof(err)) == ST_OK);
    struct gen g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct engine_request_desc d = {.kind = ENGINE_PROMPT_IDS,
                                    .prompt_ids = PROMPT,
                                    .n_prompt_ids = N_PROMPT,
                                    .on_event = on_event,
                                    .user = &g};
    engine_gen_params_default(&d.params);
    d.params.max_tokens = 100;
    d.params.ignore_eos = true;
    struct engine_request *r = NULL;
    CHECK(engine_submit(m, &d, &r, err, sizeof(err)) == ST_OK);
    float worst = 0;
    for (int i = 0; i < 50; i++) {
        CHECK(engine_embed(m, PROMPT, N_PROMPT, ENGINE_POOLING_LAST, e, err, sizeof(err)) == ST_OK);
        worst = fmaxf(worst, max_diff(e, base, 64));
    }
    CHECK_MSG(worst == 0, "%g", worst);
    gen_wait(&g);
    CHECK(g.finish == ENGINE_FINISH_LENGTH && g.n_tokens == 100);
    engine_request_release(r);
    engine_model_free(m);
}

static void test_json_object(void)
{
    struct engine_model *m = load(0, 0);
    if (!m)
        return;
    /* a byte-fallback vocabulary: "}" is the byte token <0x7D> */
    int32_t brace = tok_token_to_id(engine_model_tokenizer(m), "<0x7D>", 6);
    CHECK(brace >= 0);
    for (int seed = 1; seed <= 4 && brace >= 0; seed++) {
        struct gen g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        struct sampler_bias bias = {brace, 4.0f};
        struct engine_request_desc d = {.kind = ENGINE_PROMPT_IDS,
                                        .prompt_ids = PROMPT,
                                        .n_prompt_ids = N_PROMPT,
                                        .on_event = on_event,
                                        .user = &g};
        engine_gen_params_default(&d.params);
        d.params.max_tokens = 100;
        d.params.json_object = true;
        d.params.has_seed = true;
        d.params.sampling.seed = (uint64_t)seed;
        d.params.sampling.temperature = 1.0f;
        d.params.sampling.logit_bias = &bias;
        d.params.sampling.n_logit_bias = 1;
        struct engine_request *r = NULL;
        char err[256];
        CHECK(engine_submit(m, &d, &r, err, sizeof(err)) == ST_OK);
        gen_wait(&g);
        cJSON *j = cJSON_Parse(g.text);
        CHECK_MSG(cJSON_IsObject(j) && g.finish == ENGINE_FINISH_STOP, "seed %d: \"%s\"", seed,
                  g.text);
        cJSON_Delete(j);
        engine_request_release(r);
    }
    engine_model_free(m);
}

int main(void)
{
    snprintf(model_dir, sizeof(model_dir), "%s/fixtures/models/aidreams-260k",
             harness_shared_dir());
    RUN(test_pooling);
    RUN(test_chunked_equals_one_pass);
    RUN(test_embed_while_generating);
    RUN(test_json_object);
    return harness_finish();
}
