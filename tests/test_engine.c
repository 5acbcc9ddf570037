/* Tests for engine/engine: the scheduler against the aidreams-260k goldens,
 * batching equivalence, cancellation, errors, and `generate --json`. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include <cJSON.h>

#include "engine.h"
#include "harness.h"

#define MAX_IDS 256

static char model_dir[4096];

/* Everything one request delivered. */
struct collect {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t ids[MAX_IDS];
    int n_ids;
    char text[8192];
    size_t text_len;
    bool done;
    enum engine_finish finish;
    enum status status;
    char stop_string[64];
    struct engine_usage usage;
    int events_after_done;
    int first_order, done_order; /* event_clock values at the first token and at DONE */
    struct sampler_result lp[4]; /* logprobs of the first tokens */
    int hold_at;                 /* > 0: the callback blocks after this many tokens ... */
    bool gate_open;              /* ... until the test opens the gate */
};

/* Orders events across requests (all run on the one scheduler thread). */
static int event_clock;

static void collect_init(struct collect *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void collect_destroy(struct collect *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static void on_event(const struct engine_event *ev, void *user)
{
    struct collect *c = user;
    pthread_mutex_lock(&c->mu);
    if (c->done)
        c->events_after_done++;
    event_clock++;
    if (ev->kind == ENGINE_EVENT_TOKEN && c->n_ids == 0)
        c->first_order = event_clock;
    if (ev->kind == ENGINE_EVENT_TOKEN && ev->logprobs && c->n_ids < 4)
        c->lp[c->n_ids] = *ev->logprobs;
    if (ev->kind == ENGINE_EVENT_TOKEN && c->n_ids < MAX_IDS)
        c->ids[c->n_ids++] = ev->token;
    if (c->text_len + ev->text_len < sizeof(c->text)) {
        memcpy(c->text + c->text_len, ev->text, ev->text_len);
        c->text_len += ev->text_len;
        c->text[c->text_len] = 0;
    }
    if (ev->kind == ENGINE_EVENT_DONE) {
        c->done_order = event_clock;
        c->done = true;
        c->finish = ev->finish;
        c->status = ev->status;
        c->usage = ev->usage;
        snprintf(c->stop_string, sizeof(c->stop_string), "%s",
                 ev->stop_string ? ev->stop_string : "");
    }
    pthread_cond_broadcast(&c->cv);
    /* Blocking here stalls the scheduler thread, which freezes every
     * request of the model at a known point. */
    while (ev->kind == ENGINE_EVENT_TOKEN && c->n_ids == c->hold_at && !c->gate_open)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void collect_wait_done(struct collect *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static struct engine_model *load(const struct engine_load_opts *o)
{
    struct engine_model *m = NULL;
    char err[512] = "";
    enum status st = engine_model_load(model_dir, o, &m, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "%s: %s", status_str(st), err);
    return m;
}

/* Reads goldens/model/aidreams-260k.json cases[case_index] ids. */
static int golden_ids(int case_index, const char *key, int32_t *out, int max)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/fixtures/goldens/model/aidreams-260k.json",
             harness_shared_dir());
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    static char buf[4 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), case_index);
    const cJSON *arr = cJSON_GetObjectItem(c, key), *e;
    int k = 0;
    cJSON_ArrayForEach(e, arr) if (k < max) out[k++] = e->valueint;
    cJSON_Delete(root);
    return k;
}

static enum status submit(struct engine_model *m, struct engine_request_desc *d, struct collect *c,
                          struct engine_request **r)
{
    char err[512] = "";
    d->on_event = on_event;
    d->user = c;
    enum status st = engine_submit(m, d, r, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "%s: %s", status_str(st), err);
    return st;
}

static void test_greedy_golden(void)
{
    int32_t want[64];
    CHECK_INT_EQ(golden_ids(0, "greedy_ids", want, 64), 64);
    struct engine_model *m = load(NULL);
    if (!m)
        return;
    const struct engine_model_info *info = engine_model_info(m);
    CHECK_INT_EQ(info->vocab, 512);
    CHECK_INT_EQ(info->n_ctx, 128);
    CHECK(info->n_eos >= 1 && info->eos_ids[0] == 2);
    CHECK(info->weight_bytes > 0 && info->kv_bytes > 0 && info->scratch_bytes > 0);
    CHECK(info->total_bytes == info->weight_bytes + info->kv_bytes + info->scratch_bytes);
    CHECK_INT_EQ(info->kv_dtype, DTYPE_F32); /* a float model keeps exact K/V */

    int32_t bos[1] = {1};
    struct engine_request_desc d = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = bos, .n_prompt_ids = 1};
    engine_gen_params_default(&d.params);
    d.params.max_tokens = 64;
    d.params.ignore_eos = true;
    struct collect c;
    collect_init(&c);
    struct engine_request *r = NULL;
    if (submit(m, &d, &c, &r) == ST_OK) {
        collect_wait_done(&c);
        CHECK_INT_EQ(c.finish, ENGINE_FINISH_LENGTH);
        CHECK_INT_EQ(c.n_ids, 64);
        int same = 0;
        while (same < 64 && c.ids[same] == want[same])
            same++;
        CHECK_MSG(same == 64, "first difference at token %d", same);
        CHECK_INT_EQ(c.usage.prompt_tokens, 1);
        CHECK_INT_EQ(c.usage.completion_tokens, 64);
        CHECK(c.usage.decode_tps > 0);
        CHECK(strncmp(c.text, "\"Echoes of vectors unfold", 25) == 0);
    }
    engine_request_release(r);
    collect_destroy(&c);

    /* the same from the text prompt "Echoes of" (BOS added) */
    int32_t want2[64], want_prompt[8];
    CHECK_INT_EQ(golden_ids(1, "greedy_ids", want2, 64), 64);
    int n_prompt = golden_ids(1, "prompt_ids", want_prompt, 8);
    struct engine_request_desc t = {
        .kind = ENGINE_PROMPT_TEXT, .prompt_text = "Echoes of", .add_special_tokens = true};
    engine_gen_params_default(&t.params);
    t.params.max_tokens = 16;
    t.params.ignore_eos = true;
    collect_init(&c);
    if (submit(m, &t, &c, &r) == ST_OK) {
        collect_wait_done(&c);
        int n;
        const int32_t *p = engine_request_prompt(r, &n);
        CHECK_INT_EQ(n, n_prompt);
        CHECK(n == n_prompt && !memcmp(p, want_prompt, (size_t)n * sizeof(*p)));
        CHECK_INT_EQ(c.n_ids, 16);
        CHECK(!memcmp(c.ids, want2, 16 * sizeof(int32_t)));
    }
    engine_request_release(r);
    collect_destroy(&c);
    engine_model_free(m);
}

/* Four requests of different kinds; run alone, then all at once. */
static void describe(int i, struct engine_request_desc *d, int32_t *ids_buf)
{
    memset(d, 0, sizeof(*d));
    engine_gen_params_default(&d->params);
    d->params.ignore_eos = true;
    switch (i) {
    case 0:
        ids_buf[0] = 1;
        d->kind = ENGINE_PROMPT_IDS;
        d->prompt_ids = ids_buf;
        d->n_prompt_ids = 1;
        d->params.max_tokens = 40;
        break;
    case 1:
        d->kind = ENGINE_PROMPT_TEXT;
        d->prompt_text = "Echoes of vectors unfold, a gentle";
        d->add_special_tokens = true;
        d->params.max_tokens = 30;
        break;
    case 2:
        ids_buf[0] = 1;
        ids_buf[1] = 388;
        d->kind = ENGINE_PROMPT_IDS;
        d->prompt_ids = ids_buf;
        d->n_prompt_ids = 2;
        d->params.max_tokens = 50;
        d->params.sampling.temperature = 0.8f;
        d->params.sampling.top_p = 0.9f;
        d->params.sampling.seed = 7;
        d->params.has_seed = true;
        break;
    default:
        d->kind = ENGINE_PROMPT_TEXT;
        d->prompt_text = "The stars";
        d->add_special_tokens = true;
        d->params.max_tokens = 45;
        d->params.sampling.temperature = 1.0f;
        d->params.sampling.top_k = 20;
        d->params.sampling.seed = 99;
        d->params.has_seed = true;
        d->params.ignore_eos = false;
        break;
    }
}

/* A prompt prefilled two tokens per step gives the golden continuation. */
static void test_chunked_prefill_golden(void)
{
    int32_t want[64], prompt[8];
    CHECK_INT_EQ(golden_ids(1, "greedy_ids", want, 64), 64);
    int n_prompt = golden_ids(1, "prompt_ids", prompt, 8);
    CHECK(n_prompt > 2);
    struct engine_load_opts o = {.max_seqs = 1, .max_batch_tokens = 2};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    struct engine_request_desc d = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = prompt, .n_prompt_ids = n_prompt};
    engine_gen_params_default(&d.params);
    d.params.max_tokens = 64;
    d.params.ignore_eos = true;
    struct collect c;
    collect_init(&c);
    struct engine_request *r = NULL;
    if (submit(m, &d, &c, &r) == ST_OK) {
        collect_wait_done(&c);
        CHECK_INT_EQ(c.n_ids, 64);
        int same = 0;
        while (same < 64 && c.ids[same] == want[same])
            same++;
        CHECK_MSG(same == 64, "first difference at token %d", same);
    }
    engine_request_release(r);
    struct engine_stats s;
    engine_model_stats(m, &s);
    /* prompt in ceil(n/2) steps, then one step per token after the first */
    CHECK_INT_EQ(s.steps, (uint64_t)((n_prompt + 1) / 2 + 63));
    collect_destroy(&c);
    engine_model_free(m);
}

/* Logprobs of the first three tokens from BOS against the golden logits:
 * log-softmax of the raw logits, and the top ids in order. */
static void test_logprobs_golden(void)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/fixtures/goldens/model/aidreams-260k.json",
             harness_shared_dir());
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    static char buf[4 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    const cJSON *positions =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 0), "positions");
    CHECK_INT_EQ(cJSON_GetArraySize(positions), 3);

    struct engine_model *m = load(NULL);
    int32_t bos[1] = {1};
    struct engine_request_desc d = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = bos, .n_prompt_ids = 1};
    engine_gen_params_default(&d.params);
    d.params.max_tokens = 3;
    d.params.ignore_eos = true;
    d.params.sampling.logprobs = true;
    d.params.sampling.top_logprobs = 5;
    struct collect c;
    collect_init(&c);
    struct engine_request *r = NULL;
    if (m && submit(m, &d, &c, &r) == ST_OK) {
        collect_wait_done(&c);
        CHECK_INT_EQ(c.n_ids, 3);
        for (int i = 0; i < 3 && i < c.n_ids; i++) {
            const cJSON *pos = cJSON_GetArrayItem(positions, i);
            const cJSON *logits = cJSON_GetObjectItem(pos, "logits"), *e;
            double max = -1e30, sum = 0;
            cJSON_ArrayForEach(e, logits) if (e->valuedouble > max) max = e->valuedouble;
            cJSON_ArrayForEach(e, logits) sum += exp(e->valuedouble - max);
            double lse = max + log(sum);
            double want = cJSON_GetArrayItem(logits, c.ids[i])->valuedouble - lse;
            CHECK_MSG(fabs(c.lp[i].logprob - want) < 1e-3, "token %d: logprob %f vs %f", i,
                      c.lp[i].logprob, want);
            CHECK_INT_EQ(c.lp[i].n_top, 5);
            const cJSON *top = cJSON_GetObjectItem(pos, "top");
            for (int k = 0; k < 5; k++) {
                const cJSON *t = cJSON_GetArrayItem(top, k);
                CHECK_INT_EQ(c.lp[i].top[k].id, cJSON_GetArrayItem(t, 0)->valueint);
                CHECK(fabs(c.lp[i].top[k].logprob - (cJSON_GetArrayItem(t, 1)->valuedouble - lse)) <
                      1e-3);
            }
            CHECK_INT_EQ(c.lp[i].top[0].id, c.ids[i]); /* greedy */
        }
    }
    engine_request_release(r);
    collect_destroy(&c);
    engine_model_free(m);
    cJSON_Delete(root);
}

static void test_batched_equals_alone(void)
{
    /* A small step budget forces chunked prefill next to decodes. */
    struct engine_load_opts o = {.max_seqs = 4, .max_batch_tokens = 6};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    static struct collect alone[4], together[4];
    int32_t bufs[4][4];
    struct engine_request_desc d;
    for (int i = 0; i < 4; i++) {
        describe(i, &d, bufs[i]);
        collect_init(&alone[i]);
        struct engine_request *r = NULL;
        if (submit(m, &d, &alone[i], &r) == ST_OK)
            collect_wait_done(&alone[i]);
        engine_request_release(r);
    }
    struct engine_request *rs[4] = {0};
    for (int i = 0; i < 4; i++) {
        describe(i, &d, bufs[i]);
        collect_init(&together[i]);
        submit(m, &d, &together[i], &rs[i]);
    }
    for (int i = 0; i < 4; i++) {
        collect_wait_done(&together[i]);
        CHECK_MSG(alone[i].n_ids == together[i].n_ids, "request %d: %d vs %d tokens", i,
                  alone[i].n_ids, together[i].n_ids);
        CHECK_MSG(!memcmp(alone[i].ids, together[i].ids, (size_t)alone[i].n_ids * 4),
                  "request %d differs when batched", i);
        CHECK_STR_EQ(alone[i].text, together[i].text);
        CHECK(alone[i].n_ids > 0);
        engine_request_release(rs[i]);
    }
    /* greedy and seeded requests really differ from each other */
    CHECK(memcmp(alone[0].ids, alone[2].ids, 20 * 4) != 0);
    struct engine_stats s;
    engine_model_stats(m, &s);
    CHECK_INT_EQ(s.kv_free_blocks, engine_model_info(m)->kv_blocks);
    CHECK(s.steps > 0);
    for (int i = 0; i < 4; i++) {
        collect_destroy(&alone[i]);
        collect_destroy(&together[i]);
    }
    engine_model_free(m);
}

static void test_cancel_frees_blocks(void)
{
    struct engine_model *m = load(NULL);
    if (!m)
        return;
    struct engine_stats s0, s1;
    engine_model_stats(m, &s0);
    CHECK_INT_EQ(s0.kv_free_blocks, engine_model_info(m)->kv_blocks);
    int32_t bos[1] = {1};
    struct engine_request_desc d = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = bos, .n_prompt_ids = 1};
    engine_gen_params_default(&d.params);
    d.params.ignore_eos = true; /* up to the whole context (127 tokens) */
    struct collect c;
    collect_init(&c);
    struct engine_request *r = NULL;
    c.hold_at = 5;
    if (submit(m, &d, &c, &r) == ST_OK) {
        pthread_mutex_lock(&c.mu);
        while (c.n_ids < 5 && !c.done)
            pthread_cond_wait(&c.cv, &c.mu);
        pthread_mutex_unlock(&c.mu);
        /* the scheduler is parked in the 5th token's callback */
        engine_model_stats(m, &s1);
        CHECK(s1.kv_free_blocks < s0.kv_free_blocks);
        CHECK_INT_EQ(s1.n_running, 1);
        engine_cancel(r);
        pthread_mutex_lock(&c.mu);
        c.gate_open = true;
        pthread_cond_broadcast(&c.cv);
        pthread_mutex_unlock(&c.mu);
        collect_wait_done(&c);
        CHECK_INT_EQ(c.finish, ENGINE_FINISH_CANCELLED);
        /* the next step notices: no token after the cancel */
        CHECK_INT_EQ(c.n_ids, 5);
        engine_model_stats(m, &s1);
        CHECK_INT_EQ(s1.kv_free_blocks, s0.kv_free_blocks);
        CHECK_INT_EQ(s1.n_running, 0);
    }
    engine_request_release(r);
    CHECK_INT_EQ(c.events_after_done, 0);
    collect_destroy(&c);

    /* release without waiting: cancels, delivers DONE before returning */
    collect_init(&c);
    if (submit(m, &d, &c, &r) == ST_OK) {
        engine_request_release(r);
        CHECK(c.done);
        engine_model_stats(m, &s1);
        CHECK_INT_EQ(s1.kv_free_blocks, s0.kv_free_blocks);
    }
    collect_destroy(&c);
    engine_model_free(m);
}

/* With one sequence slot, later requests wait in arrival order; a waiting
 * request can be cancelled before it ever runs.  (KV-driven waiting and
 * preemption are in test_scheduler.c.) */
static void test_kv_admission_waits(void)
{
    /* A pool of exactly one full context (128 positions = 8 blocks). */
    struct engine_model *probe = load(NULL);
    if (!probe)
        return;
    size_t block_bytes = engine_model_info(probe)->kv_bytes / engine_model_info(probe)->kv_blocks;
    engine_model_free(probe);
    struct engine_load_opts o = {.max_seqs = 1, .kv_bytes = 8 * block_bytes};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    CHECK_INT_EQ(engine_model_info(m)->kv_blocks, 8);
    int32_t a_ids[1] = {1}, b_ids[2] = {1, 388};
    struct engine_request_desc a = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = a_ids, .n_prompt_ids = 1};
    engine_gen_params_default(&a.params);
    a.params.ignore_eos = true; /* max_tokens 0: the whole context, all 8 blocks */
    struct engine_request_desc b = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = b_ids, .n_prompt_ids = 2};
    engine_gen_params_default(&b.params);
    b.params.ignore_eos = true;
    b.params.max_tokens = 10;
    struct collect ca, cb, cc;
    collect_init(&ca);
    collect_init(&cb);
    collect_init(&cc);
    struct engine_request *ra = NULL, *rb = NULL, *rc = NULL;
    ca.hold_at = 1;
    if (submit(m, &a, &ca, &ra) == ST_OK) {
        pthread_mutex_lock(&ca.mu);
        while (ca.n_ids < 1)
            pthread_cond_wait(&ca.cv, &ca.mu);
        pthread_mutex_unlock(&ca.mu);
        /* the scheduler is parked in A's callback */
        submit(m, &b, &cb, &rb);
        submit(m, &b, &cc, &rc);
        struct engine_stats s;
        engine_model_stats(m, &s);
        CHECK_INT_EQ(s.n_running, 1);
        CHECK_INT_EQ(s.n_waiting, 2);
        /* a waiting request can be cancelled before it ever runs */
        engine_cancel(rc);
        pthread_mutex_lock(&ca.mu);
        ca.gate_open = true;
        pthread_cond_broadcast(&ca.cv);
        pthread_mutex_unlock(&ca.mu);
        collect_wait_done(&cc);
        CHECK_INT_EQ(cc.finish, ENGINE_FINISH_CANCELLED);
        CHECK_INT_EQ(cc.n_ids, 0);
        collect_wait_done(&ca);
        collect_wait_done(&cb);
        CHECK_INT_EQ(ca.n_ids, 127);
        CHECK_INT_EQ(cb.n_ids, 10);
        CHECK_INT_EQ(cb.finish, ENGINE_FINISH_LENGTH);
        CHECK_MSG(cb.first_order > ca.done_order, "B started (%d) before A ended (%d)",
                  cb.first_order, ca.done_order);
        CHECK(cc.done_order < ca.done_order);
        engine_model_stats(m, &s);
        CHECK_INT_EQ(s.kv_free_blocks, 8);
    }
    engine_request_release(ra);
    engine_request_release(rb);
    engine_request_release(rc);
    collect_destroy(&ca);
    collect_destroy(&cb);
    collect_destroy(&cc);
    engine_model_free(m);
}

/* Several threads submit, cancel and release at once; every request ends
 * exactly once and the cache ends empty. */
struct stress_arg {
    struct engine_model *m;
    int id, ok;
};

static void *stress_thread(void *p)
{
    struct stress_arg *a = p;
    for (int i = 0; i < 6; i++) {
        int32_t ids[3] = {1, 100 + a->id, 200 + i};
        struct engine_request_desc d = {
            .kind = ENGINE_PROMPT_IDS, .prompt_ids = ids, .n_prompt_ids = 3};
        engine_gen_params_default(&d.params);
        d.params.max_tokens = 20 + i;
        d.params.ignore_eos = true;
        d.params.sampling.temperature = 0.7f;
        struct collect c;
        collect_init(&c);
        d.on_event = on_event;
        d.user = &c;
        struct engine_request *r = NULL;
        char err[256];
        if (engine_submit(a->m, &d, &r, err, sizeof(err)) == ST_OK) {
            if (i % 3 == 0) {
                engine_request_release(r); /* cancel at once */
                a->ok += c.done && c.events_after_done == 0;
            } else {
                if (i % 3 == 1)
                    engine_cancel(r);
                collect_wait_done(&c);
                engine_request_release(r);
                a->ok += c.events_after_done == 0 &&
                         (c.finish == ENGINE_FINISH_CANCELLED ||
                          (c.finish == ENGINE_FINISH_LENGTH && c.n_ids == 20 + i));
            }
        }
        collect_destroy(&c);
    }
    return NULL;
}

static void test_threads_submit_cancel(void)
{
    struct engine_load_opts o = {.max_seqs = 3, .max_batch_tokens = 8};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    pthread_t t[4];
    struct stress_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct stress_arg){.m = m, .id = i};
        pthread_create(&t[i], NULL, stress_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT_EQ(a[i].ok, 6);
    }
    struct engine_stats s;
    engine_model_stats(m, &s);
    CHECK_INT_EQ(s.kv_free_blocks, engine_model_info(m)->kv_blocks);
    CHECK_INT_EQ(s.n_running, 0);
    CHECK_INT_EQ(s.n_waiting, 0);
    engine_model_free(m);
}

static void test_errors(void)
{
    char err[512] = "";
    struct engine_model *bad = NULL;
    struct engine_load_opts bad_kv = {.kv_dtype = (enum engine_kv_dtype)7};
    CHECK_INT_EQ(engine_model_load(model_dir, &bad_kv, &bad, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(bad == NULL && strstr(err, "KV cache dtype") != NULL);
    struct engine_model *m = load(NULL);
    if (!m)
        return;
    struct engine_request *r = NULL;
    struct collect c;
    collect_init(&c);
    int32_t ids[200];
    for (int i = 0; i < 200; i++)
        ids[i] = 1 + i % 300;
    struct engine_request_desc d = {.kind = ENGINE_PROMPT_IDS,
                                    .prompt_ids = ids,
                                    .n_prompt_ids = 200,
                                    .on_event = on_event,
                                    .user = &c};
    engine_gen_params_default(&d.params);
    CHECK_INT_EQ(engine_submit(m, &d, &r, err, sizeof(err)), ST_ERR_RANGE);
    CHECK_MSG(strstr(err, "200 tokens") && strstr(err, "128"), "message: %s", err);
    CHECK(r == NULL);

    ids[3] = 512;
    d.n_prompt_ids = 10;
    CHECK_INT_EQ(engine_submit(m, &d, &r, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(strstr(err, "512") != NULL);

    d.n_prompt_ids = 0;
    CHECK_INT_EQ(engine_submit(m, &d, &r, err, sizeof(err)), ST_ERR_INVALID);

    ids[3] = 5;
    d.n_prompt_ids = 10;
    d.params.sampling.top_p = 2.0f;
    CHECK_INT_EQ(engine_submit(m, &d, &r, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(strstr(err, "top_p") != NULL);

    const char *long_stop[1] = {NULL};
    d.params.sampling.top_p = 1.0f;
    d.params.stop = long_stop;
    d.params.n_stop = 1;
    CHECK_INT_EQ(engine_submit(m, &d, &r, err, sizeof(err)), ST_ERR_INVALID);
    d.params.n_stop = 0;

    /* aidreams is a base model: no chat template */
    cJSON *ctx = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    struct engine_request_desc cd = {
        .kind = ENGINE_PROMPT_CHAT, .chat = ctx, .on_event = on_event, .user = &c};
    engine_gen_params_default(&cd.params);
    CHECK_INT_EQ(engine_submit(m, &cd, &r, err, sizeof(err)), ST_ERR_UNSUPPORTED);
    cJSON_Delete(ctx);
    CHECK(!c.done);
    collect_destroy(&c);
    engine_model_free(m);
}

static void test_stop_string_and_eos(void)
{
    struct engine_model *m = load(NULL);
    if (!m)
        return;
    int32_t bos[1] = {1};
    struct engine_request_desc d = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = bos, .n_prompt_ids = 1};
    engine_gen_params_default(&d.params);
    d.params.max_tokens = 64;
    d.params.ignore_eos = true;
    struct collect full, c;
    collect_init(&full);
    struct engine_request *r = NULL;
    if (submit(m, &d, &full, &r) == ST_OK)
        collect_wait_done(&full);
    engine_request_release(r);

    /* stop at "gentle": the text ends right before it */
    const char *stops[2] = {"no such text", "gentle"};
    d.params.stop = stops;
    d.params.n_stop = 2;
    collect_init(&c);
    const char *at = strstr(full.text, "gentle");
    CHECK(at != NULL);
    if (at && submit(m, &d, &c, &r) == ST_OK) {
        collect_wait_done(&c);
        CHECK_INT_EQ(c.finish, ENGINE_FINISH_STOP);
        CHECK_STR_EQ(c.stop_string, "gentle");
        CHECK_INT_EQ(c.text_len, (size_t)(at - full.text));
        CHECK(!strncmp(c.text, full.text, c.text_len));
        CHECK(c.n_ids < 64);
    }
    engine_request_release(r);
    collect_destroy(&c);

    /* EOS: make the first generated token EOS (2) with a logit_bias */
    struct sampler_bias b[1] = {{2, 50.0f}};
    d.params.stop = NULL;
    d.params.n_stop = 0;
    d.params.ignore_eos = false;
    d.params.sampling.logit_bias = b;
    d.params.sampling.n_logit_bias = 1;
    collect_init(&c);
    if (submit(m, &d, &c, &r) == ST_OK) {
        collect_wait_done(&c);
        CHECK_INT_EQ(c.finish, ENGINE_FINISH_STOP);
        CHECK_INT_EQ(c.n_ids, 1);
        CHECK_INT_EQ(c.ids[0], 2);
        CHECK_INT_EQ(c.text_len, 0);
    }
    engine_request_release(r);
    collect_destroy(&c);
    /* min_tokens keeps EOS away for 3 tokens */
    d.params.min_tokens = 3;
    collect_init(&c);
    if (submit(m, &d, &c, &r) == ST_OK) {
        collect_wait_done(&c);
        CHECK_INT_EQ(c.n_ids, 4);
        CHECK_INT_EQ(c.ids[3], 2);
    }
    engine_request_release(r);
    collect_destroy(&c);
    collect_destroy(&full);
    engine_model_free(m);
}

static void test_generate_cli_json(void)
{
    int32_t want[64];
    CHECK_INT_EQ(golden_ids(0, "greedy_ids", want, 64), 64);
    const char *build = getenv("BUILD");
    if (!build || !*build)
        build = "build";
    char cmd[8600];
    snprintf(cmd, sizeof(cmd),
             "%s/mlx-manager generate --model '%s' --prompt-ids '[1]' --max-tokens 64 "
             "--ignore-eos --json 2>/dev/null",
             build, model_dir);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p)
        return;
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    CHECK_MSG(rc == 0, "exit status %d: %s", rc, cmd);
    cJSON *root = cJSON_Parse(out);
    CHECK_MSG(cJSON_IsObject(root), "not JSON: %s", out);
    const cJSON *ids = cJSON_GetObjectItem(root, "ids");
    CHECK_INT_EQ(cJSON_GetArraySize(ids), 64);
    int i = 0, same = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ids)
    {
        if (i < 64 && e->valueint == want[i] && same == i)
            same++;
        i++;
    }
    CHECK_MSG(same == 64, "first difference at token %d", same);
    CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(root, "prompt_ids")), 1);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "text")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(root, "prompt_tps")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(root, "decode_tps")));
    cJSON_Delete(root);
}

int main(void)
{
    snprintf(model_dir, sizeof(model_dir), "%s/fixtures/models/aidreams-260k",
             harness_shared_dir());
    RUN(test_greedy_golden);
    RUN(test_chunked_prefill_golden);
    RUN(test_logprobs_golden);
    RUN(test_batched_equals_alone);
    RUN(test_cancel_frees_blocks);
    RUN(test_kv_admission_waits);
    RUN(test_threads_submit_cancel);
    RUN(test_errors);
    RUN(test_stop_string_and_eos);
    RUN(test_generate_cli_json);
    return harness_finish();
}
