/* Tests for the scheduler in engine/engine.c with the aidreams-260k model:
 * outputs unchanged by batching, prefix-cache hits and preemption;
 * exhausting the KV pool; cancellation; random submit/cancel churn leaves
 * no block behind. */
#include <pthread.h>
#include <stdint.h>

#include "engine.h"
#include "harness.h"

#define MAX_IDS 160

static char model_dir[4096];

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t ids[MAX_IDS];
    int n_ids;
    struct result *peer; /* when set: peer's token count is noted at our first token */
    int peer_at_first;
    int hold_at;    /* > 0: the callback blocks after this many tokens ... */
    bool gate_open; /* ... until the test opens the gate */
    bool done;
    enum engine_finish finish;
    struct engine_usage usage;
};

static void on_event(const struct engine_event *ev, void *user)
{
    struct result *r = user;
    if (ev->kind == ENGINE_EVENT_TOKEN && r->peer && r->n_ids == 0) {
        /* callbacks run one at a time on the scheduler thread */
        pthread_mutex_lock(&r->peer->mu);
        r->peer_at_first = r->peer->n_ids;
        pthread_mutex_unlock(&r->peer->mu);
    }
    pthread_mutex_lock(&r->mu);
    if (ev->kind == ENGINE_EVENT_TOKEN && r->n_ids < MAX_IDS)
        r->ids[r->n_ids++] = ev->token;
    if (ev->kind == ENGINE_EVENT_DONE) {
        r->done = true;
        r->finish = ev->finish;
        r->usage = ev->usage;
    }
    pthread_cond_broadcast(&r->cv);
    /* blocking here parks the scheduler thread at a known point */
    while (ev->kind == ENGINE_EVENT_TOKEN && r->n_ids == r->hold_at && !r->gate_open)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void result_init(struct result *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void result_wait(struct result *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void result_destroy(struct result *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static struct engine_model *load(const struct engine_load_opts *o)
{
    struct engine_model *m = NULL;
    char err[512] = "";
    enum status st = engine_model_load(model_dir, o, &m, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "%s: %s", status_str(st), err);
    return m;
}

/* Request i of a varied set: prompt length, greedy or seeded sampling. */
struct job {
    int32_t prompt[96];
    int n_prompt;
    int max_tokens;
    float temperature;
    uint64_t seed;
};

static void make_job(struct job *j, int i, int prompt_len, int max_tokens)
{
    j->prompt[0] = 1;
    for (int p = 1; p < prompt_len; p++)
        j->prompt[p] = 2 + (p * 37 + i * 101) % 450;
    j->n_prompt = prompt_len;
    j->max_tokens = max_tokens;
    j->temperature = i % 2 ? 0.9f : 0;
    j->seed = 1000 + (uint64_t)i;
}

static struct engine_request *submit(struct engine_model *m, const struct job *j, struct result *r)
{
    struct engine_request_desc d = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = j->prompt, .n_prompt_ids = j->n_prompt};
    engine_gen_params_default(&d.params);
    d.params.ignore_eos = true;
    d.params.max_tokens = j->max_tokens;
    d.params.sampling.temperature = j->temperature;
    d.params.sampling.seed = j->seed;
    d.params.has_seed = true;
    d.on_event = on_event;
    d.user = r;
    struct engine_request *req = NULL;
    char err[512] = "";
    enum status st = engine_submit(m, &d, &req, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "%s: %s", status_str(st), err);
    return req;
}

static void run_alone(struct engine_model *m, const struct job *j, struct result *r)
{
    result_init(r);
    struct engine_request *req = submit(m, j, r);
    if (req)
        result_wait(r);
    engine_request_release(req);
}

static void check_idle(struct engine_model *m)
{
    struct engine_stats s;
    engine_model_stats(m, &s);
    CHECK_INT_EQ(s.kv_used_blocks, 0);
    CHECK_INT_EQ(s.kv_free_blocks, engine_model_info(m)->kv_blocks);
    CHECK_INT_EQ(s.n_running, 0);
    CHECK_INT_EQ(s.n_waiting, 0);
}

/* Runs the jobs alone on a fresh model, then all at once on `m`, and
 * checks every token sequence is the same. */
static void check_same_together(struct engine_model *m, struct job *jobs, int n)
{
    struct engine_load_opts lone = {.max_seqs = 1};
    struct engine_model *ref = load(&lone);
    if (!ref)
        return;
    static struct result alone[16], together[16];
    for (int i = 0; i < n; i++)
        run_alone(ref, &jobs[i], &alone[i]);
    engine_model_free(ref);
    struct engine_request *rs[16];
    for (int i = 0; i < n; i++) {
        result_init(&together[i]);
        rs[i] = submit(m, &jobs[i], &together[i]);
    }
    for (int i = 0; i < n; i++) {
        if (rs[i])
            result_wait(&together[i]);
        CHECK_INT_EQ(together[i].n_ids, jobs[i].max_tokens);
        CHECK_MSG(alone[i].n_ids == together[i].n_ids &&
                      !memcmp(alone[i].ids, together[i].ids, (size_t)alone[i].n_ids * 4),
                  "request %d differs when run beside the others", i);
        engine_request_release(rs[i]);
        result_destroy(&alone[i]);
        result_destroy(&together[i]);
    }
}

static void test_alone_equals_beside_seven(void)
{
    /* a small step budget: prefill chunks run beside decodes */
    struct engine_load_opts o = {.max_seqs = 8, .max_batch_tokens = 12};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    struct job jobs[8];
    for (int i = 0; i < 8; i++)
        make_job(&jobs[i], i, 5 + i * 7, 30 + i * 3);
    check_same_together(m, jobs, 8);
    check_idle(m);
    engine_model_free(m);
}

static void test_prefix_hits_equal_cold(void)
{
    struct engine_model *m = load(NULL);
    if (!m)
        return;
    struct job base, other;
    make_job(&base, 0, 70, 20);
    /* same first 60 tokens, different end */
    other = base;
    for (int p = 60; p < 70; p++)
        other.prompt[p] = 400 + p;
    struct result cold, warm, cold_other, warm_other;
    run_alone(m, &base, &cold);
    CHECK_INT_EQ(cold.usage.cached_tokens, 0);
    run_alone(m, &base, &warm);
    /* all of the 70-token prompt but the last token (always computed: its
     * logits pick the first output) comes from the cache, the tail from
     * the block cold published with its first output tokens */
    CHECK_INT_EQ(warm.usage.cached_tokens, 69);
    CHECK_INT_EQ(warm.n_ids, cold.n_ids);
    CHECK(!memcmp(warm.ids, cold.ids, (size_t)cold.n_ids * 4));
    run_alone(m, &other, &warm_other);
    /* 3 full blocks of 16, then 12 positions of the block where it differs */
    CHECK_INT_EQ(warm_other.usage.cached_tokens, 60);
    struct engine_stats s;
    engine_model_stats(m, &s);
    CHECK(s.prefix_hit_ratio > 0.5);
    CHECK(s.kv_cached_blocks > 0);
    engine_model_free(m);
    struct engine_model *fresh = load(NULL);
    if (fresh) {
        run_alone(fresh, &other, &cold_other);
        CHECK_INT_EQ(cold_other.usage.cached_tokens, 0);
        CHECK(!memcmp(warm_other.ids, cold_other.ids, sizeof(cold_other.ids)));
        engine_model_free(fresh);
    }
    /* a prompt that is a whole number of blocks, all cached: the last
     * block is shared, and the recompute of its last position copies it */
    struct engine_model *m2 = load(NULL);
    if (m2) {
        struct job exact;
        make_job(&exact, 3, 32, 10);
        struct result a, b;
        run_alone(m2, &exact, &a);
        run_alone(m2, &exact, &b);
        CHECK_INT_EQ(b.usage.cached_tokens, 31);
        CHECK(!memcmp(a.ids, b.ids, sizeof(a.ids)));
        check_idle(m2);
        engine_model_free(m2);
    }
}

/* A pool of 8 blocks (128 positions) for four requests that each grow to
 * 5 blocks: they are all admitted, then the newest are preempted and
 * recompute later; every output equals its solo run and the pool ends
 * empty. */
static void test_exhausted_pool_preempts(void)
{
    struct engine_model *probe = load(NULL);
    if (!probe)
        return;
    size_t block_bytes = engine_model_info(probe)->kv_bytes / engine_model_info(probe)->kv_blocks;
    engine_model_free(probe);
    struct engine_load_opts o = {
        .max_seqs = 4, .max_batch_tokens = 16, .kv_bytes = 8 * block_bytes};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    struct job jobs[4];
    for (int i = 0; i < 4; i++)
        make_job(&jobs[i], i, 10 + i, 66);
    check_same_together(m, jobs, 4);
    struct engine_stats s;
    engine_model_stats(m, &s);
    CHECK(s.preemptions > 0);
    check_idle(m);
    /* the whole pool for one request: admitted once the pool is empty */
    struct job big;
    make_job(&big, 0, 90, 60);
    struct engine_request_desc d = {
        .kind = ENGINE_PROMPT_IDS, .prompt_ids = big.prompt, .n_prompt_ids = big.n_prompt};
    engine_gen_params_default(&d.params);
    d.params.max_tokens = 37; /* 127 positions: all 8 blocks */
    d.params.ignore_eos = true;
    d.on_event = on_event;
    struct result r;
    result_init(&r);
    d.user = &r;
    struct engine_request *req = NULL;
    char err[512] = "";
    CHECK_INT_EQ(engine_submit(m, &d, &req, err, sizeof(err)), ST_OK);
    if (req)
        result_wait(&r);
    engine_request_release(req);
    CHECK_INT_EQ(r.n_ids, 37);
    result_destroy(&r);
    check_idle(m);
    engine_model_free(m);
}

/* While A decodes, B's 40-token prompt is prefilled 4 tokens per step, so A
 * keeps getting a token every step: about 10 of them before B's first. */
static void test_prefill_chunk_beside_decodes(void)
{
    struct engine_load_opts o = {.max_seqs = 2, .max_batch_tokens = 64, .prefill_chunk = 4};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    struct job a, b;
    make_job(&a, 0, 1, 60);
    make_job(&b, 1, 40, 5);
    struct result ra, rb;
    result_init(&ra);
    result_init(&rb);
    ra.hold_at = 2;
    struct engine_request *qa = submit(m, &a, &ra);
    pthread_mutex_lock(&ra.mu);
    while (ra.n_ids < 2)
        pthread_cond_wait(&ra.cv, &ra.mu);
    int a_before = ra.n_ids;
    pthread_mutex_unlock(&ra.mu);
    rb.peer = &ra;
    struct engine_request *qb = submit(m, &b, &rb); /* queued: the scheduler is parked */
    pthread_mutex_lock(&ra.mu);
    ra.gate_open = true;
    pthread_cond_broadcast(&ra.cv);
    pthread_mutex_unlock(&ra.mu);
    if (qb)
        result_wait(&rb);
    CHECK_MSG(rb.peer_at_first - a_before >= 9, "A made %d tokens during B's prefill",
              rb.peer_at_first - a_before);
    if (qa)
        result_wait(&ra);
    CHECK_INT_EQ(ra.n_ids, 60);
    CHECK_INT_EQ(rb.n_ids, 5);
    engine_request_release(qa);
    engine_request_release(qb);
    result_destroy(&ra);
    result_destroy(&rb);
    check_idle(m);
    engine_model_free(m);
}

/* Waits until r's callback is parked at its hold_at-th token. */
static void wait_parked(struct result *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->n_ids < r->hold_at && !r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void open_gate(struct result *r)
{
    pthread_mutex_lock(&r->mu);
    r->gate_open = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void test_cancel_mid_batch_frees_blocks(void)
{
    struct engine_load_opts o = {.max_seqs = 6, .max_batch_tokens = 16};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    struct job jobs[6];
    struct result rs[6];
    struct engine_request *reqs[6];
    for (int i = 0; i < 6; i++) {
        make_job(&jobs[i], i, 20, 100);
        result_init(&rs[i]);
        /* every other one parks the scheduler at its 3rd token until the
         * cancel is in, so none can run to its end first */
        rs[i].hold_at = i % 2 ? 0 : 3;
        reqs[i] = submit(m, &jobs[i], &rs[i]);
    }
    for (int i = 0; i < 6; i += 2) {
        wait_parked(&rs[i]);
        engine_cancel(reqs[i]);
        open_gate(&rs[i]);
    }
    for (int i = 0; i < 6; i++) {
        if (reqs[i])
            result_wait(&rs[i]);
        CHECK_INT_EQ(rs[i].finish, i % 2 ? ENGINE_FINISH_LENGTH : ENGINE_FINISH_CANCELLED);
        engine_request_release(reqs[i]);
        result_destroy(&rs[i]);
    }
    check_idle(m);
    engine_model_free(m);
}

/* The stats a parked callback sees are the previous step's.  A decoding
 * alone: after step k it holds 20 + k - 1 positions, so at its 5th token
 * 23 in two 16-slot blocks: 9 of 32 slots unused, nothing prefilling.  B's
 * 40-token prompt then goes in 4 tokens a step: until its first token it
 * counts as prefilling. */
static void test_stats_prefilling_and_waste(void)
{
    struct engine_load_opts o = {
        .max_seqs = 2, .max_batch_tokens = 64, .prefill_chunk = 4, .block_tokens = 16};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    struct job a, b;
    make_job(&a, 0, 20, 40);
    make_job(&b, 1, 40, 3);
    struct result ra, rb;
    result_init(&ra);
    result_init(&rb);
    ra.hold_at = 5;
    rb.hold_at = 1;
    struct engine_request *qa = submit(m, &a, &ra);
    wait_parked(&ra);
    struct engine_stats s;
    engine_model_stats(m, &s);
    CHECK_INT_EQ(s.n_running, 1);
    CHECK_INT_EQ(s.n_prefilling, 0);
    CHECK_INT_EQ(s.kv_used_blocks, 2);
    CHECK_MSG(s.kv_waste > 28.12 && s.kv_waste < 28.13, "kv_waste %.3f, want 9/32", s.kv_waste);
    struct engine_request *qb = submit(m, &b, &rb); /* admitted after this step */
    open_gate(&ra);
    wait_parked(&rb);
    engine_model_stats(m, &s);
    CHECK_INT_EQ(s.n_running, 2);
    CHECK_INT_EQ(s.n_prefilling, 1);
    CHECK_MSG(s.kv_waste > 0 && s.kv_waste < 50, "kv_waste %.3f", s.kv_waste);
    open_gate(&rb);
    if (qa)
        result_wait(&ra);
    if (qb)
        result_wait(&rb);
    CHECK_INT_EQ(ra.n_ids, 40);
    CHECK_INT_EQ(rb.n_ids, 3);
    engine_request_release(qa);
    engine_request_release(qb);
    result_destroy(&ra);
    result_destroy(&rb);
    check_idle(m);
    engine_model_stats(m, &s);
    CHECK_INT_EQ(s.n_prefilling, 0);
    CHECK(s.kv_waste == 0);
    engine_model_free(m);
}

/* 1,000 random submits, cancels and releases against a tight pool. */
static void test_random_submit_cancel(void)
{
    struct engine_model *probe = load(NULL);
    if (!probe)
        return;
    size_t block_bytes = engine_model_info(probe)->kv_bytes / engine_model_info(probe)->kv_blocks;
    engine_model_free(probe);
    struct engine_load_opts o = {
        .max_seqs = 6, .max_batch_tokens = 24, .kv_bytes = 12 * block_bytes};
    struct engine_model *m = load(&o);
    if (!m)
        return;
    enum { SLOTS = 12 };
    static struct result rs[SLOTS];
    static struct job jobs[SLOTS];
    struct engine_request *reqs[SLOTS] = {0};
    uint64_t rng = 7;
    int completed = 0;
    for (int op = 0; op < 1000; op++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(rng >> 33);
        int i = (int)(r % SLOTS);
        if (!reqs[i]) {
            make_job(&jobs[i], (int)(r >> 4) % 3, 2 + (int)((r >> 8) % 60),
                     1 + (int)((r >> 16) % 40));
            result_init(&rs[i]);
            reqs[i] = submit(m, &jobs[i], &rs[i]);
        } else if ((r >> 12) % 3 == 0) {
            engine_cancel(reqs[i]);
        } else {
            pthread_mutex_lock(&rs[i].mu);
            bool done = rs[i].done;
            pthread_mutex_unlock(&rs[i].mu);
            if (done || (r >> 12) % 3 == 1) {
                completed += done && rs[i].finish == ENGINE_FINISH_LENGTH;
                engine_request_release(reqs[i]); /* cancels when still running */
                CHECK(rs[i].done);
                result_destroy(&rs[i]);
                reqs[i] = NULL;
            }
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (reqs[i]) {
            engine_request_release(reqs[i]);
            result_destroy(&rs[i]);
        }
    CHECK(completed > 0);
    check_idle(m);
    engine_model_free(m);
}

int main(void)
{
    snprintf(model_dir, sizeof(model_dir), "%s/fixtures/models/aidreams-260k",
             harness_shared_dir());
    RUN(test_alone_equals_beside_seven);
    RUN(test_prefix_hits_equal_cold);
    RUN(test_exhausted_pool_preempts);
    RUN(test_prefill_chunk_beside_decodes);
    RUN(test_stats_prefilling_and_waste);
    RUN(test_cancel_mid_batch_frees_blocks);
    RUN(test_random_submit_cancel);
    return harness_finish();
}
