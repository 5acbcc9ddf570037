#include "engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_constraint.h"
#include "kv_cache.h"
#include "model.h"
#include "model_dir.h"
#include "stop.h"
#include "threadpool.h"

/* Without a budget the KV pool is sized for max_seqs full contexts, but
 * never beyond this. */
#define KV_DEFAULT_CAP_BYTES ((size_t)2 << 30)

struct engine_request {
    struct engine_model *m;
    struct engine_request *next; /* waiting queue link (under m->mu) */

    /* The prompt then every generated token: (n_prompt + max_tokens).  The
     * KV cache holds the first kv_seq_len(seq) of them; the rest (one token
     * when decoding, more while prefilling or recomputing after a
     * preemption) are the input of the next steps. */
    int32_t *prompt;
    int n_prompt;
    int seq;        /* kv_cache sequence, -1 while waiting / after finish */
    int max_tokens; /* already capped to the context */
    int n_gen;
    uint64_t arrival; /* submission order: admission and preemption priority */
    int n_cached;     /* prompt tokens served by the prefix cache at first admission */
    bool admitted;    /* admitted at least once (preempted requests wait again) */
    bool ignore_eos;
    bool want_logprobs;
    bool json;                     /* output constrained to one JSON object */
    struct json_check jc;          /* the output so far, when json */
    struct json_names *json_names; /* the allowed tool names, when a tool call */
    int32_t *stop_ids;             /* (n_stop_ids) */
    int n_stop_ids;

    struct sampler *sampler;
    struct stop_matcher *stop;
    struct tok_stream *detok;

    engine_event_fn on_event;
    void *user;

    /* this step's sampling (scheduler thread, then one pool thread): the
     * logits row, then the token drawn, or json_dead when the JSON
     * constraint left no token */
    float *step_logits;
    struct sampler_result drawn;
    bool json_dead;

    atomic_bool cancel;
    atomic_bool detached; /* released from the scheduler thread: no more events */
    atomic_bool done;     /* the scheduler will not touch the request again */

    double t_submit, t_admit, t_prefill_start, t_first, t_last;
};

struct engine_model {
    struct engine_model_info info;
    struct model *model;
    struct kv_cache *kv;
    struct tokenizer *tok;
    struct chat_template *tmpl;
    char tmpl_err[256]; /* why tmpl is NULL */
    int tok_vocab;      /* ids at or above this have no text: never sampled */
    /* each token's text (specials empty), built at the first JSON-constrained
     * request: tok_text + tok_off[id] .. tok_off[id + 1]; set once under mu */
    char *tok_text;
    uint32_t *tok_off; /* (tok_vocab + 1) */

    /* scheduler-thread state */
    struct engine_request **running; /* (max_seqs) admitted requests, by arrival */
    int n_running;
    struct model_batch_seq *batch; /* (max_seqs) */
    int n_live;        /* admitted and not yet finished (running may still hold finished ones) */
    int prefill_chunk; /* prompt tokens per step beside decodes */
    int *batch_run;    /* (max_seqs) index into running of each batch entry */
    int *sample_run;   /* (max_seqs) index into running of each request sampled this step */
    uint64_t steps;
    float *logits; /* (max_seqs, vocab) */
    /* counters behind engine_stats */
    uint64_t preemptions, gen_tokens, prompt_tokens, cached_tokens;
    double tps_t0;     /* start of the current tokens/s window */
    uint64_t tps_gen0; /* gen_tokens at tps_t0 */

    /* model_forward uses the model's scratch: the scheduler and engine_embed
     * take turns under forward_mu */
    pthread_mutex_t forward_mu;

    /* shared with other threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* scheduler: new work, cancel, stop */
    pthread_cond_t finished; /* releasers: some request is done */
    struct engine_request *wait_head, *wait_tail;
    int n_waiting;
    bool stopping;
    struct engine_stats stats;
    uint64_t seed_counter;
    uint64_t arrivals;

    pthread_t thread;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ==== loading =========================================================== */

static enum status read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return status_fail(err, errlen, errno == ENOENT ? ST_ERR_NOT_FOUND : ST_ERR_IO,
                           "cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            if (cap > ((size_t)64 << 20))
                break; /* a generation_config.json is small: refuse the rest */
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f) || (cap > ((size_t)64 << 20));
    fclose(f);
    if (bad) {
        free(buf);
        return status_fail(err, errlen, ST_ERR_IO, "cannot read %s", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return ST_OK;
}

static void add_eos(struct engine_model_info *info, int id)
{
    if (id < 0 || id >= info->vocab || info->n_eos >= ENGINE_MAX_EOS)
        return;
    for (int i = 0; i < info->n_eos; i++)
        if (info->eos_ids[i] == id)
            return;
    info->eos_ids[info->n_eos++] = id;
}

/* generation_config.json is optional; when present it must be valid. */
static enum status load_generation_config(struct engine_model *m, char *err, size_t errlen)
{
    char path[4200], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/generation_config.json", m->info.dir);
    enum status st = read_file(path, &text, &len, err, errlen);
    if (st == ST_ERR_NOT_FOUND)
        return ST_OK;
    if (st != ST_OK)
        return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (cJSON_IsNumber(eos)) {
        add_eos(&m->info, eos->valueint);
    } else if (cJSON_IsArray(eos)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, eos) if (cJSON_IsNumber(e)) add_eos(&m->info, e->valueint);
    }
    struct engine_gen_defaults *d = &m->info.defaults;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0) {
        d->has_temperature = true;
        d->temperature = (float)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "top_p");
    if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble <= 1) {
        d->has_top_p = true;
        d->top_p = (float)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "top_k");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9) {
        d->has_top_k = true;
        d->top_k = v->valueint;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "repetition_penalty");
    if (cJSON_IsNumber(v) && v->valuedouble > 0) {
        d->has_repetition_penalty = true;
        d->repetition_penalty = (float)v->valuedouble;
    }
    cJSON_Delete(root);
    return ST_OK;
}

static void *scheduler_main(void *arg);

enum dtype engine_kv_dtype_of(bool quantized, enum engine_kv_dtype pref)
{
    if (pref == ENGINE_KV_AUTO)
        return quantized ? DTYPE_F16 : DTYPE_F32;
    return pref == ENGINE_KV_F16 ? DTYPE_F16 : DTYPE_F32;
}

enum status engine_model_load(const char *path_or_id, const struct engine_load_opts *opts,
                              struct engine_model **out, char *err, size_t errlen)
{
    *out = NULL;
    struct engine_load_opts o = {0};
    if (opts)
        o = *opts;
    if (o.max_seqs < 0 || o.max_batch_tokens < 0 || o.block_tokens < 0 || o.prefill_chunk < 0)
        return status_fail(err, errlen, ST_ERR_INVALID, "negative engine load option");
    if (o.kv_dtype != ENGINE_KV_AUTO && o.kv_dtype != ENGINE_KV_F32 && o.kv_dtype != ENGINE_KV_F16)
        return status_fail(err, errlen, ST_ERR_INVALID, "unknown KV cache dtype %d",
                           (int)o.kv_dtype);
    if (!o.max_seqs)
        o.max_seqs = 16;
    if (!o.max_batch_tokens)
        o.max_batch_tokens = 512;
    if (!o.block_tokens)
        o.block_tokens = KV_BLOCK_TOKENS_DEFAULT;
    if (!o.prefill_chunk)
        o.prefill_chunk = 64;
    if (o.max_batch_tokens < o.max_seqs)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "max_batch_tokens (%d) must be at least max_seqs (%d): every running "
                           "sequence decodes one token per step",
                           o.max_batch_tokens, o.max_seqs);

    struct engine_model *m = calloc(1, sizeof(*m));
    if (!m)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    enum status st = model_dir_resolve(path_or_id, m->info.dir, sizeof(m->info.dir), err, errlen);
    if (st != ST_OK)
        goto fail;
    struct model_load_opts mo = {
        .use_mmap = o.use_mmap, .max_batch_tokens = o.max_batch_tokens, .n_threads = o.threads};
    st = model_load(m->info.dir, &mo, &m->model, err, errlen);
    if (st != ST_OK)
        goto fail;
    st = tok_load(m->info.dir, &m->tok, err, errlen);
    if (st != ST_OK)
        goto fail;
    st = chat_template_load(m->info.dir, &m->tmpl, m->tmpl_err, sizeof(m->tmpl_err));
    if (st == ST_ERR_NOT_FOUND)
        snprintf(m->tmpl_err, sizeof(m->tmpl_err), "the model has no chat template");
    else if (st != ST_OK)
        m->tmpl = NULL; /* only chat requests fail, with tmpl_err */

    const struct model_config *cfg = model_get_config(m->model);
    struct engine_model_info *info = &m->info;
    info->vocab = cfg->vocab;
    info->hidden = cfg->hidden;
    info->n_ctx = cfg->max_position_embeddings;
    info->bos_id = cfg->bos_token_id >= 0 ? cfg->bos_token_id : tok_bos_id(m->tok);
    info->has_chat_template = m->tmpl != NULL;
    info->max_seqs = o.max_seqs;
    /* The step budget is what one forward call accepts. */
    info->max_batch_tokens = model_max_batch_tokens(m->model);
    if (info->max_batch_tokens < o.max_seqs) {
        st = status_fail(err, errlen, ST_ERR_INVALID,
                         "the model takes %d tokens per forward pass, fewer than max_seqs (%d)",
                         info->max_batch_tokens, o.max_seqs);
        goto fail;
    }
    info->kv_block_tokens = o.block_tokens;
    m->prefill_chunk = o.prefill_chunk;
    m->tok_vocab = tok_vocab_size(m->tok);
    if (m->tok_vocab <= 0 || m->tok_vocab > info->vocab)
        m->tok_vocab = info->vocab;
    for (int i = 0; i < cfg->n_eos; i++)
        add_eos(info, cfg->eos_token_ids[i]);
    st = load_generation_config(m, err, errlen);
    if (st != ST_OK)
        goto fail;
    const int32_t *tok_eos;
    size_t n_tok_eos = tok_eos_ids(m->tok, &tok_eos);
    for (size_t i = 0; i < n_tok_eos; i++)
        add_eos(info, tok_eos[i]);

    info->kv_dtype = engine_kv_dtype_of(cfg->quantized, o.kv_dtype);
    size_t budget = o.kv_bytes;
    if (!budget) {
        size_t full =
            (size_t)o.max_seqs * (size_t)info->n_ctx * kv_cache_block_bytes(cfg, 1, info->kv_dtype);
        budget = full < KV_DEFAULT_CAP_BYTES ? full : KV_DEFAULT_CAP_BYTES;
    }
    size_t n_blocks = kv_cache_blocks_for_budget(cfg, o.block_tokens, info->kv_dtype, budget);
    if (!n_blocks) {
        st = status_fail(err, errlen, ST_ERR_RANGE,
                         "a KV budget of %zu bytes holds not even one block", budget);
        goto fail;
    }
    st = kv_cache_create(cfg, n_blocks, o.block_tokens, info->kv_dtype, o.max_seqs, &m->kv, err,
                         errlen);
    if (st != ST_OK)
        goto fail;
    info->kv_blocks = n_blocks;

    size_t v = (size_t)info->vocab, s = (size_t)o.max_seqs;
    m->running = calloc(s, sizeof(*m->running));
    m->batch = calloc(s, sizeof(*m->batch));
    m->batch_run = calloc(s, sizeof(*m->batch_run));
    m->sample_run = calloc(s, sizeof(*m->sample_run));
    m->logits = malloc(s * v * sizeof(*m->logits));
    if (!m->running || !m->batch || !m->batch_run || !m->sample_run || !m->logits) {
        st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory for the scheduler");
        goto fail;
    }
    info->weight_bytes = model_weight_bytes(m->model);
    info->kv_bytes = kv_cache_bytes(m->kv);
    info->scratch_bytes = model_scratch_bytes(m->model) + s * v * sizeof(*m->logits) +
                          s * (sizeof(*m->running) + sizeof(*m->batch) + sizeof(*m->batch_run) +
                               sizeof(*m->sample_run));
    info->total_bytes = info->weight_bytes + info->kv_bytes + info->scratch_bytes;
    m->stats.kv_free_blocks = kv_cache_free_blocks(m->kv);

    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->forward_mu, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->finished, NULL);
    if (pthread_create(&m->thread, NULL, scheduler_main, m) != 0) {
        pthread_mutex_destroy(&m->mu);
        pthread_mutex_destroy(&m->forward_mu);
        pthread_cond_destroy(&m->wake);
        pthread_cond_destroy(&m->finished);
        st = status_fail(err, errlen, ST_ERR_NOMEM, "cannot start the scheduler thread");
        goto fail;
    }
    *out = m;
    return ST_OK;
fail:
    kv_cache_free(m->kv);
    chat_template_free(m->tmpl);
    tok_free(m->tok);
    model_free(m->model);
    free(m->running);
    free(m->batch);
    free(m->batch_run);
    free(m->sample_run);
    free(m->logits);
    free(m->tok_text);
    free(m->tok_off);
    free(m);
    return st;
}

void engine_model_free(struct engine_model *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->forward_mu);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->finished);
    kv_cache_free(m->kv);
    chat_template_free(m->tmpl);
    tok_free(m->tok);
    model_free(m->model);
    free(m->running);
    free(m->batch);
    free(m->batch_run);
    free(m->sample_run);
    free(m->logits);
    free(m->tok_text);
    free(m->tok_off);
    free(m);
}

const struct engine_model_info *engine_model_info(const struct engine_model *m)
{
    return &m->info;
}

void engine_model_stats(struct engine_model *m, struct engine_stats *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    out->n_waiting = m->n_waiting;
    pthread_mutex_unlock(&m->mu);
}

const struct tokenizer *engine_model_tokenizer(const struct engine_model *m)
{
    return m->tok;
}

const struct chat_template *engine_model_chat_template(const struct engine_model *m)
{
    return m->tmpl;
}

enum status engine_render_chat(const struct engine_model *m, const cJSON *context, char **out,
                               char *err, size_t errlen)
{
    *out = NULL;
    if (!m->tmpl)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED, "%s", m->tmpl_err);
    if (!cJSON_IsObject(context))
        return status_fail(err, errlen, ST_ERR_INVALID, "chat context must be a JSON object");
    const cJSON *ctx = context;
    cJSON *copy = NULL;
    if (!cJSON_HasObjectItem(context, "add_generation_prompt")) {
        copy = cJSON_Duplicate(context, 1);
        if (!copy || !cJSON_AddTrueToObject(copy, "add_generation_prompt")) {
            cJSON_Delete(copy);
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        }
        ctx = copy;
    }
    enum status st = chat_template_render(m->tmpl, ctx, out, NULL, err, errlen);
    cJSON_Delete(copy);
    return st;
}

/* ==== requests ========================================================== */

void engine_gen_params_default(struct engine_gen_params *p)
{
    memset(p, 0, sizeof(*p));
    sampler_params_default(&p->sampling);
}

static void request_free(struct engine_request *r)
{
    sampler_free(r->sampler);
    stop_matcher_free(r->stop);
    tok_stream_free(r->detok);
    free(r->prompt);
    free(r->stop_ids);
    json_names_free(r->json_names);
    free(r);
}

/* Fills r->prompt from the description. */
static enum status request_tokenize(struct engine_model *m, const struct engine_request_desc *d,
                                    struct engine_request *r, char *err, size_t errlen)
{
    enum status st;
    int32_t *ids = NULL;
    size_t n = 0;
    switch (d->kind) {
    case ENGINE_PROMPT_IDS:
        if (d->n_prompt_ids < 0 || (d->n_prompt_ids > 0 && !d->prompt_ids))
            return status_fail(err, errlen, ST_ERR_INVALID, "bad prompt id list");
        n = (size_t)d->n_prompt_ids;
        ids = malloc((n ? n : 1) * sizeof(*ids));
        if (!ids)
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            if (d->prompt_ids[i] < 0 || d->prompt_ids[i] >= m->info.vocab) {
                free(ids);
                return status_fail(err, errlen, ST_ERR_INVALID,
                                   "prompt token id %d at index %zu is outside the vocabulary "
                                   "(%d)",
                                   (int)d->prompt_ids[i], i, m->info.vocab);
            }
            ids[i] = d->prompt_ids[i];
        }
        break;
    case ENGINE_PROMPT_TEXT:
        if (!d->prompt_text)
            return status_fail(err, errlen, ST_ERR_INVALID, "no prompt text");
        st = tok_encode(m->tok, d->prompt_text, strlen(d->prompt_text),
                        TOK_ENCODE_PARSE_SPECIAL |
                            (d->add_special_tokens ? TOK_ENCODE_ADD_SPECIAL : 0u),
                        &ids, &n);
        if (st != ST_OK)
            return status_fail(err, errlen, st, "cannot tokenize the prompt: %s", status_str(st));
        break;
    case ENGINE_PROMPT_CHAT: {
        char *text;
        st = engine_render_chat(m, d->chat, &text, err, errlen);
        if (st != ST_OK)
            return st;
        /* The template writes BOS and the turn markers itself, as
         * apply_chat_template does: no post-processor, specials parsed. */
        st = tok_encode(m->tok, text, strlen(text), TOK_ENCODE_PARSE_SPECIAL, &ids, &n);
        free(text);
        if (st != ST_OK)
            return status_fail(err, errlen, st, "cannot tokenize the rendered chat: %s",
                               status_str(st));
        break;
    }
    default:
        return status_fail(err, errlen, ST_ERR_INVALID, "unknown prompt kind %d", (int)d->kind);
    }
    if (n == 0) {
        free(ids);
        return status_fail(err, errlen, ST_ERR_INVALID, "the prompt is empty");
    }
    if (n >= (size_t)m->info.n_ctx) {
        free(ids);
        return status_fail(err, errlen, ST_ERR_RANGE,
                           "the prompt has %zu tokens but the model's context is %d tokens "
                           "(prompt and output together)",
                           n, m->info.n_ctx);
    }
    r->prompt = ids;
    r->n_prompt = (int)n;
    return ST_OK;
}

static size_t blocks_for(const struct engine_model *m, int positions)
{
    return ((size_t)positions + (size_t)m->info.kv_block_tokens - 1) /
           (size_t)m->info.kv_block_tokens;
}

/* Builds the per-token texts the JSON constraint tests (once per model). */
static enum status build_token_texts(struct engine_model *m, char *err, size_t errlen)
{
    pthread_mutex_lock(&m->mu);
    bool ready = m->tok_off != NULL;
    pthread_mutex_unlock(&m->mu);
    if (ready)
        return ST_OK;
    size_t n = (size_t)m->tok_vocab, len = 0, cap = n * 4 + 64;
    uint32_t *off = malloc((n + 1) * sizeof(*off));
    char *text = malloc(cap);
    for (size_t id = 0; off && text && id < n; id++) {
        int32_t tid = (int32_t)id;
        char *t = NULL;
        off[id] = (uint32_t)len;
        if (tok_decode_raw(m->tok, &tid, 1, 1, &t) != ST_OK || !t)
            continue; /* no text: never allowed */
        size_t tl = strlen(t);
        if (len + tl > cap) {
            cap = (len + tl) * 2;
            char *nt = realloc(text, cap);
            if (!nt) {
                free(t);
                free(text);
                text = NULL;
                break;
            }
            text = nt;
        }
        memcpy(text + len, t, tl);
        len += tl;
        free(t);
    }
    if (!off || !text || len > UINT32_MAX) {
        free(off);
        free(text);
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory for the JSON constraint");
    }
    off[n] = (uint32_t)len;
    pthread_mutex_lock(&m->mu);
    if (!m->tok_off) {
        m->tok_off = off;
        m->tok_text = text;
        off = NULL;
        text = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    free(off);
    free(text);
    return ST_OK;
}

enum status engine_submit(struct engine_model *m, const struct engine_request_desc *d,
                          struct engine_request **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct engine_gen_params *gp = &d->params;
    if (!d->on_event)
        return status_fail(err, errlen, ST_ERR_INVALID, "no event callback");
    if (gp->max_tokens < 0 || gp->min_tokens < 0 || gp->n_stop < 0 || gp->n_stop_ids < 0 ||
        (gp->n_stop && !gp->stop) || (gp->n_stop_ids && !gp->stop_ids))
        return status_fail(err, errlen, ST_ERR_INVALID, "bad max_tokens, min_tokens or stop list");
    for (int i = 0; i < gp->n_stop_ids; i++)
        if (gp->stop_ids[i] < 0 || gp->stop_ids[i] >= m->info.vocab)
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "stop token id %d is outside the vocabulary (%d)",
                               (int)gp->stop_ids[i], m->info.vocab);
    if (gp->n_stop_ids > ENGINE_MAX_STOP_IDS)
        return status_fail(err, errlen, ST_ERR_INVALID, "more than %d stop token ids",
                           ENGINE_MAX_STOP_IDS);
    for (int i = 0; i < gp->n_stop; i++) {
        if (!gp->stop[i])
            return status_fail(err, errlen, ST_ERR_INVALID, "stop string %d is NULL", i);
        if (strlen(gp->stop[i]) > ENGINE_MAX_STOP_LEN)
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "stop string %d is longer than %d bytes", i, ENGINE_MAX_STOP_LEN);
    }

    struct engine_request *r = calloc(1, sizeof(*r));
    if (!r)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    r->m = m;
    r->seq = -1;
    r->on_event = d->on_event;
    r->user = d->user;
    r->ignore_eos = gp->ignore_eos;
    r->want_logprobs = gp->sampling.logprobs;
    if (gp->json_object) {
        enum status jst = build_token_texts(m, err, errlen);
        if (jst == ST_OK)
            jst = json_names_copy(gp->json_tool_names, gp->n_json_tool_names, &r->json_names, err,
                                  errlen);
        if (jst != ST_OK) {
            request_free(r);
            return jst;
        }
        r->json = true;
        json_check_init_tools(&r->jc, r->json_names);
    }
    r->t_submit = now_s();
    enum status st = request_tokenize(m, d, r, err, errlen);
    if (st != ST_OK)
        goto fail;
    int room = m->info.n_ctx - r->n_prompt;
    if (!gp->max_tokens) {
        /* Unspecified: as much as the context and the whole KV pool allow. */
        int pool = (int)(m->info.kv_blocks * (size_t)m->info.kv_block_tokens) - r->n_prompt;
        if (pool < room)
            room = pool > 1 ? pool : 1;
    }
    r->max_tokens = gp->max_tokens && gp->max_tokens < room ? gp->max_tokens : room;
    size_t need = blocks_for(m, r->n_prompt + r->max_tokens);
    if (need > m->info.kv_blocks) {
        st = status_fail(err, errlen, ST_ERR_RANGE,
                         "the request needs %zu KV blocks (%d prompt + %d output tokens) but "
                         "the cache has %zu; lower max_tokens",
                         need, r->n_prompt, r->max_tokens, m->info.kv_blocks);
        goto fail;
    }
    /* Room for the generated tokens too: a preempted request recomputes
     * its KV from all of them. */
    int32_t *grown =
        realloc(r->prompt, ((size_t)r->n_prompt + (size_t)r->max_tokens) * sizeof(*grown));
    if (!grown) {
        st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        goto fail;
    }
    r->prompt = grown;

    /* The sampler bans EOS (unless ignored) and stop ids below min_tokens. */
    int32_t ban[ENGINE_MAX_EOS + ENGINE_MAX_STOP_IDS];
    int n_ban = 0;
    if (gp->n_stop_ids) {
        r->stop_ids = malloc((size_t)gp->n_stop_ids * sizeof(*r->stop_ids));
        if (!r->stop_ids) {
            st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(r->stop_ids, gp->stop_ids, (size_t)gp->n_stop_ids * sizeof(*r->stop_ids));
        r->n_stop_ids = gp->n_stop_ids;
    }
    if (!r->ignore_eos)
        for (int i = 0; i < m->info.n_eos; i++)
            ban[n_ban++] = m->info.eos_ids[i];
    for (int i = 0; i < r->n_stop_ids; i++)
        ban[n_ban++] = r->stop_ids[i];
    struct sampler_params sp = gp->sampling;
    sp.min_tokens = gp->min_tokens;
    sp.eos_ids = ban;
    sp.n_eos_ids = n_ban;
    if (!gp->has_seed) {
        pthread_mutex_lock(&m->mu);
        uint64_t c = ++m->seed_counter;
        pthread_mutex_unlock(&m->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sp.seed = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
                  (c * 0x9e3779b97f4a7c15ull);
    }
    st = sampler_create(m->info.vocab, &sp, &r->sampler, err, errlen);
    if (st != ST_OK)
        goto fail;
    sampler_add_prompt(r->sampler, r->prompt, r->n_prompt);
    st = stop_matcher_create(gp->stop, gp->n_stop, &r->stop, err, errlen);
    if (st != ST_OK)
        goto fail;
    st = tok_stream_new(m->tok, 1, &r->detok);
    if (st != ST_OK) {
        status_fail(err, errlen, st, "cannot start detokenization: %s", status_str(st));
        goto fail;
    }

    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        st = status_fail(err, errlen, ST_ERR_BUSY, "the model is being unloaded");
        goto fail;
    }
    r->arrival = ++m->arrivals;
    if (m->wait_tail)
        m->wait_tail->next = r;
    else
        m->wait_head = r;
    m->wait_tail = r;
    m->n_waiting++;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    *out = r;
    return ST_OK;
fail:
    request_free(r);
    return st;
}

void engine_cancel(struct engine_request *r)
{
    if (!r || atomic_load(&r->done))
        return;
    atomic_store(&r->cancel, true);
    struct engine_model *m = r->m;
    pthread_mutex_lock(&m->mu);
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
}

void engine_request_release(struct engine_request *r)
{
    if (!r)
        return;
    if (atomic_load(&r->done)) {
        request_free(r);
        return;
    }
    struct engine_model *m = r->m;
    if (pthread_equal(pthread_self(), m->thread)) {
        /* Inside a callback: the scheduler frees it when it finishes. */
        atomic_store(&r->detached, true);
        atomic_store(&r->cancel, true);
        return;
    }
    atomic_store(&r->cancel, true);
    pthread_mutex_lock(&m->mu);
    pthread_cond_signal(&m->wake);
    while (!atomic_load(&r->done))
        pthread_cond_wait(&m->finished, &m->mu);
    pthread_mutex_unlock(&m->mu);
    request_free(r);
}

const int32_t *engine_request_prompt(const struct engine_request *r, int *n)
{
    *n = r->n_prompt;
    return r->prompt;
}

/* ==== embeddings ======================================================== */

enum status engine_embed(struct engine_model *m, const int32_t *ids, int n,
                         enum engine_pooling pooling, float *out, char *err, size_t errlen)
{
    if (n <= 0 || !ids)
        return status_fail(err, errlen, ST_ERR_INVALID, "nothing to embed");
    if (n > m->info.n_ctx)
        return status_fail(err, errlen, ST_ERR_RANGE,
                           "the input has %d tokens but the model's context is %d tokens", n,
                           m->info.n_ctx);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->info.vocab)
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "token id %d at index %d is outside the vocabulary (%d)",
                               (int)ids[i], i, m->info.vocab);
    const struct model_config *cfg = model_get_config(m->model);
    int bt = m->info.kv_block_tokens, chunk = m->info.max_batch_tokens;
    size_t h = (size_t)cfg->hidden;
    struct kv_cache *kv = NULL;
    float *rows = malloc((size_t)chunk * h * sizeof(*rows));
    int seq;
    enum status st = rows ? kv_cache_create(cfg, ((size_t)n + (size_t)bt - 1) / (size_t)bt, bt,
                                            m->info.kv_dtype, 1, &kv, err, errlen)
                          : status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    if (st == ST_OK)
        st = kv_seq_create(kv, &seq, err, errlen);
    memset(out, 0, h * sizeof(*out));
    for (int pos = 0; st == ST_OK && pos < n; pos += chunk) {
        int len = n - pos < chunk ? n - pos : chunk;
        bool last = pos + len == n;
        struct model_batch_seq bs = {.seq = seq,
                                     .start_pos = pos,
                                     .n_tokens = len,
                                     .tokens = ids + pos,
                                     .n_logits = pooling == ENGINE_POOLING_MEAN ? len
                                                 : last                         ? 1
                                                                                : 0};
        struct model_batch b = {.seqs = &bs, .n_seqs = 1};
        pthread_mutex_lock(&m->forward_mu);
        st = model_forward_hidden(m->model, kv, &b, rows, err, errlen);
        pthread_mutex_unlock(&m->forward_mu);
        for (int r = 0; st == ST_OK && r < bs.n_logits; r++)
            for (size_t i = 0; i < h; i++)
                out[i] += rows[(size_t)r * h + i];
    }
    if (st == ST_OK && pooling == ENGINE_POOLING_MEAN)
        for (size_t i = 0; i < h; i++)
            out[i] /= (float)n;
    kv_cache_free(kv);
    free(rows);
    return st;
}

/* ==== scheduler ========================================================= */

static int request_tokens(const struct engine_request *r);

/* Running sequences with more than one token still to compute: a prompt
 * (or a recompute after preemption) not yet fully in the KV cache. */
static int count_prefilling(const struct engine_model *m)
{
    int n = 0;
    for (int i = 0; i < m->n_running; i++) {
        const struct engine_request *r = m->running[i];
        if (r && r->seq >= 0 && request_tokens(r) - kv_seq_len(m->kv, r->seq) > 1)
            n++;
    }
    return n;
}

/* Allocated-but-unused KV, in percent: slots of used blocks that no
 * sequence holds a position in, over all slots of used blocks.  Blocks are
 * taken as a sequence grows (reserved just before the step that writes
 * them), so between steps only each sequence's last block is partly empty
 * and this stays under block_tokens / mean length; a block shared through
 * the prefix cache counts once (kv_cache_counts). */
static double kv_waste_percent(const struct engine_model *m, const struct kv_cache_counts *c)
{
    if (!c->used)
        return 0;
    return 100.0 * (double)c->unused_slots / ((double)c->used * m->info.kv_block_tokens);
}

static void publish_stats(struct engine_model *m)
{
    struct kv_cache_counts c;
    kv_cache_counts(m->kv, &c);
    double waste = kv_waste_percent(m, &c);
    int prefilling = count_prefilling(m);
    double t = now_s(), tps = -1;
    if (m->n_live == 0) {
        tps = 0; /* idle: nothing is being generated */
        m->tps_t0 = t;
        m->tps_gen0 = m->gen_tokens;
    } else if (t - m->tps_t0 >= 1.0) {
        tps = (double)(m->gen_tokens - m->tps_gen0) / (t - m->tps_t0);
        m->tps_t0 = t;
        m->tps_gen0 = m->gen_tokens;
    }
    pthread_mutex_lock(&m->mu);
    struct engine_stats *s = &m->stats;
    s->kv_free_blocks = c.cached + c.clean;
    s->kv_used_blocks = c.used;
    s->kv_cached_blocks = c.cached;
    s->kv_shared_blocks = c.shared;
    s->kv_waste = waste;
    s->n_running = m->n_live;
    s->n_prefilling = prefilling;
    s->steps = m->steps;
    s->preemptions = m->preemptions;
    s->prompt_tokens = m->prompt_tokens;
    s->cached_tokens = m->cached_tokens;
    s->prefix_hit_ratio =
        m->prompt_tokens ? (double)m->cached_tokens / (double)m->prompt_tokens : 0;
    s->generated_tokens = m->gen_tokens;
    if (tps >= 0)
        s->tokens_per_s = tps;
    pthread_mutex_unlock(&m->mu);
}

static void deliver(struct engine_request *r, const struct engine_event *ev)
{
    if (!atomic_load(&r->detached))
        r->on_event(ev, r->user);
}

/*
 * Ends a request: frees its KV sequence, delivers DONE (with the held-back
 * text when it ended normally) and hands it back to its owner.  The caller
 * removes it from the running array.
 */
static void request_finish(struct engine_model *m, struct engine_request *r,
                           enum engine_finish finish, enum status st, const char *msg)
{
    char tail[ENGINE_MAX_STOP_LEN + 512]; /* held text < the longest stop string */
    size_t tail_len = 0;
    const char *stop_string = NULL;
    if (finish == ENGINE_FINISH_STOP || finish == ENGINE_FINISH_LENGTH) {
        /* Whatever the detokenizer and the stop matcher still hold is output;
         * it may even complete a stop string. */
        const char *text, *e;
        size_t len, el;
        bool stopped = false;
        if (tok_stream_flush(r->detok, &text, &len) == ST_OK && len &&
            !stop_matcher_matched(r->stop)) {
            if (stop_matcher_feed(r->stop, text, len, &e, &el, &stopped) == ST_OK) {
                if (el > sizeof(tail))
                    el = sizeof(tail);
                memcpy(tail, e, el);
                tail_len = el;
            }
            if (stopped)
                finish = ENGINE_FINISH_STOP;
        }
        if (!stopped && !stop_matcher_matched(r->stop)) {
            stop_matcher_flush(r->stop, &e, &el);
            if (el > sizeof(tail) - tail_len)
                el = sizeof(tail) - tail_len;
            memcpy(tail + tail_len, e, el);
            tail_len += el;
        }
        stop_string = stop_matcher_matched(r->stop);
    }
    if (r->seq >= 0) {
        kv_seq_free(m->kv, r->seq);
        r->seq = -1;
        m->n_live--;
    }
    struct engine_event ev = {
        .kind = ENGINE_EVENT_DONE,
        .token = -1,
        .text = tail,
        .text_len = tail_len,
        .finish = finish,
        .status = st,
        .error = msg ? msg : "",
        .stop_string = stop_string,
    };
    struct engine_usage *u = &ev.usage;
    u->prompt_tokens = r->n_prompt;
    u->completion_tokens = r->n_gen;
    u->cached_tokens = r->n_cached;
    if (r->t_admit > 0)
        u->queue_s = r->t_admit - r->t_submit;
    if (r->n_gen > 0) {
        u->ttft_s = r->t_first - r->t_submit;
        double prefill = r->t_first - r->t_prefill_start;
        u->prompt_tps = prefill > 0 ? r->n_prompt / prefill : 0;
        double decode = r->t_last - r->t_first;
        u->decode_tps = r->n_gen > 1 && decode > 0 ? (r->n_gen - 1) / decode : 0;
    }
    publish_stats(m);
    deliver(r, &ev);
    bool detached = atomic_load(&r->detached);
    pthread_mutex_lock(&m->mu);
    atomic_store(&r->done, true);
    pthread_cond_broadcast(&m->finished);
    pthread_mutex_unlock(&m->mu);
    if (detached)
        request_free(r);
}

static bool is_stop_token(const struct engine_model *m, const struct engine_request *r, int32_t id)
{
    if (!r->ignore_eos)
        for (int i = 0; i < m->info.n_eos; i++)
            if (m->info.eos_ids[i] == id)
                return true;
    for (int i = 0; i < r->n_stop_ids; i++)
        if (r->stop_ids[i] == id)
            return true;
    return false;
}

/* Bans every token that cannot continue the JSON object (EOS included:
 * the request stops by itself once the object is complete), and, while the
 * object can still be closed within max_tokens, every token after which it
 * could not.  Returns the number of tokens left. */
static int json_mask(const struct engine_model *m, const struct engine_request *r, float *logits)
{
    size_t left = (size_t)(r->max_tokens - r->n_gen - 1);
    bool budget = json_check_close_cost(&r->jc) <= left + 1;
    int allowed = 0;
    for (int id = 0; id < m->tok_vocab; id++) {
        uint32_t a = m->tok_off[id], b = m->tok_off[id + 1];
        struct json_check c = r->jc;
        if (a == b || !json_check_feed(&c, m->tok_text + a, b - a) ||
            (budget && json_check_close_cost(&c) > left))
            logits[id] = -INFINITY;
        else if (logits[id] > -INFINITY)
            allowed++;
    }
    return allowed;
}

/* Draws r's next token from r->step_logits into r->drawn, or sets
 * r->json_dead.  Runs on a pool thread: touches only r, its sampler and
 * logits row, and the model's read-only token texts. */
static void request_sample(const struct engine_model *m, struct engine_request *r)
{
    float *logits = r->step_logits;
    /* Padding rows of the embedding have no text; never pick them. */
    for (int i = m->tok_vocab; i < m->info.vocab; i++)
        logits[i] = -INFINITY;
    r->json_dead = r->json && json_mask(m, r, logits) == 0;
    if (!r->json_dead)
        sampler_sample(r->sampler, logits, &r->drawn);
}

static void sample_run(void *ctx, int chunk)
{
    struct engine_model *m = ctx;
    request_sample(m, m->running[m->sample_run[chunk]]);
}

/* Samples the n requests of sample_run, over the model's pool when there
 * are several: each has its own sampler and seed, so the tokens do not
 * depend on the split. */
static void sample_all(struct engine_model *m, int n)
{
    if (n == 1) {
        request_sample(m, m->running[m->sample_run[0]]);
        return;
    }
    pthread_mutex_lock(&m->forward_mu); /* the pool serves one caller at a time */
    threadpool_run(model_threadpool(m->model), sample_run, m, n);
    pthread_mutex_unlock(&m->forward_mu);
}

/* Delivers the token request_sample drew.  Returns true when the request
 * has finished (request_finish was called). */
static bool request_deliver(struct engine_model *m, struct engine_request *r)
{
    if (r->json_dead) {
        request_finish(m, r, ENGINE_FINISH_STOP, ST_OK, NULL);
        return true;
    }
    struct sampler_result res = r->drawn;
    double t = now_s();
    if (r->n_gen == 0)
        r->t_first = t;
    r->t_last = t;
    r->prompt[r->n_prompt + r->n_gen++] = res.id;
    m->gen_tokens++;
    if (r->json)
        json_check_feed(&r->jc, m->tok_text + m->tok_off[res.id],
                        m->tok_off[res.id + 1] - m->tok_off[res.id]);
    struct engine_event ev = {
        .kind = ENGINE_EVENT_TOKEN,
        .token = res.id,
        .text = "",
        .logprobs = r->want_logprobs ? &res : NULL,
    };
    /* EOS and stop ids were banned below min_tokens, so no count check. */
    if (is_stop_token(m, r, res.id)) {
        deliver(r, &ev);
        request_finish(m, r, ENGINE_FINISH_STOP, ST_OK, NULL);
        return true;
    }
    const char *text = "";
    size_t len = 0;
    if (tok_stream_push(r->detok, res.id, &text, &len) != ST_OK)
        len = 0;
    bool stopped = false;
    if (stop_matcher_feed(r->stop, text, len, &ev.text, &ev.text_len, &stopped) != ST_OK) {
        deliver(r, &ev);
        request_finish(m, r, ENGINE_FINISH_ERROR, ST_ERR_NOMEM, "out of memory for stop strings");
        return true;
    }
    deliver(r, &ev);
    if (stopped || (r->json && json_check_done(&r->jc))) {
        request_finish(m, r, ENGINE_FINISH_STOP, ST_OK, NULL);
        return true;
    }
    if (r->n_gen >= r->max_tokens) {
        request_finish(m, r, ENGINE_FINISH_LENGTH, ST_OK, NULL);
        return true;
    }
    return false;
}

/* ---- admission and preemption ------------------------------------------ */

/* The prompt and every generated token: what the KV cache will hold once
 * the next step has run. */
static int request_tokens(const struct engine_request *r)
{
    return r->n_prompt + r->n_gen;
}

/* Under m->mu: puts r in the waiting queue at its arrival position (a
 * preempted request goes before everything that arrived after it). */
static void wait_insert_locked(struct engine_model *m, struct engine_request *r)
{
    struct engine_request **link = &m->wait_head;
    while (*link && (*link)->arrival < r->arrival)
        link = &(*link)->next;
    r->next = *link;
    *link = r;
    if (!r->next)
        m->wait_tail = r;
    m->n_waiting++;
}

/* Adds r to running, kept in arrival order. */
static void running_insert(struct engine_model *m, struct engine_request *r)
{
    int i = m->n_running++;
    while (i > 0 && m->running[i - 1]->arrival > r->arrival) {
        m->running[i] = m->running[i - 1];
        i--;
    }
    m->running[i] = r;
}

/* Under m->mu: takes cancelled requests out of the queue (into *cancelled)
 * and admits waiting ones, in arrival order, while the rest of their tokens
 * (after what the prefix cache holds) fit in the free blocks with one block
 * of headroom per running sequence, so sequences already running can grow
 * a little before anyone is preempted. */
static void admit_locked(struct engine_model *m, struct engine_request **cancelled)
{
    struct engine_request *prev = NULL, *r = m->wait_head;
    while (r) {
        struct engine_request *next = r->next;
        if (atomic_load(&r->cancel) || m->stopping) {
            if (prev)
                prev->next = next;
            else
                m->wait_head = next;
            if (m->wait_tail == r)
                m->wait_tail = prev;
            m->n_waiting--;
            r->next = *cancelled;
            *cancelled = r;
        } else {
            prev = r;
        }
        r = next;
    }
    int bt = m->info.kv_block_tokens;
    while ((r = m->wait_head) && m->n_running < m->info.max_seqs) {
        int seq;
        if (kv_seq_create(m->kv, &seq, NULL, 0) != ST_OK)
            break;
        int total = request_tokens(r);
        /* The last token is always computed: its logits pick the next one. */
        int have = kv_seq_attach_prefix(m->kv, seq, r->prompt, total, total - 1);
        int cap = kv_seq_capacity(m->kv, seq);
        size_t need = blocks_for(m, total) - (size_t)(cap / bt) + (have < cap ? 1 : 0);
        if (need + (size_t)m->n_running > kv_cache_free_blocks(m->kv)) {
            kv_seq_free(m->kv, seq);
            break;
        }
        m->wait_head = r->next;
        if (!m->wait_head)
            m->wait_tail = NULL;
        m->n_waiting--;
        r->next = NULL;
        r->seq = seq;
        if (!r->admitted) {
            r->admitted = true;
            r->t_admit = now_s();
            r->n_cached = have < r->n_prompt ? have : r->n_prompt;
            m->prompt_tokens += (uint64_t)r->n_prompt;
            m->cached_tokens += (uint64_t)r->n_cached;
        }
        running_insert(m, r);
        m->n_live++;
    }
}

/* Sends running[i] back to the queue: its blocks are released (published
 * ones stay cached, so the recompute is mostly prefix hits) and its slot
 * in running becomes NULL.  Its sampler, detokenizer and stop matcher are
 * untouched, so its output continues exactly where it was. */
static void preempt(struct engine_model *m, int i)
{
    struct engine_request *r = m->running[i];
    kv_seq_free(m->kv, r->seq);
    r->seq = -1;
    m->running[i] = NULL;
    m->n_live--;
    m->preemptions++;
    pthread_mutex_lock(&m->mu);
    wait_insert_locked(m, r);
    pthread_mutex_unlock(&m->mu);
}

/*
 * Reserves KV for the next n tokens of running[i].  A prefill chunk
 * (shrink) first shrinks to what the free blocks hold; when nothing fits,
 * the newest running request after i is preempted and the reservation
 * retried, and when i is itself the newest, i is preempted.  Older
 * requests therefore always make progress.  Returns the tokens reserved
 * (0: running[i] was preempted).
 */
static int reserve_or_preempt(struct engine_model *m, int i, int n, bool shrink)
{
    struct engine_request *r = m->running[i];
    int bt = m->info.kv_block_tokens;
    for (;;) {
        if (kv_seq_reserve(m->kv, r->seq, n, NULL, 0) == ST_OK)
            return n;
        if (shrink) {
            int len = kv_seq_len(m->kv, r->seq);
            long fit =
                (long)kv_seq_capacity(m->kv, r->seq) - len + (long)kv_cache_free_blocks(m->kv) * bt;
            /* one block less each time: the first write may copy a shared block */
            for (fit = fit < n ? fit : n - 1; fit >= 1; fit -= bt)
                if (kv_seq_reserve(m->kv, r->seq, (int)fit, NULL, 0) == ST_OK)
                    return (int)fit;
        }
        int victim = m->n_running - 1;
        while (victim > i && !m->running[victim])
            victim--;
        if (victim <= i) {
            preempt(m, i);
            return 0;
        }
        preempt(m, victim);
    }
}

/* ---- steps ------------------------------------------------------------- */

/* Drops the NULL slots that finished or preempted requests left in running. */
static void running_compact(struct engine_model *m)
{
    int k = 0;
    for (int i = 0; i < m->n_running; i++)
        if (m->running[i])
            m->running[k++] = m->running[i];
    m->n_running = k;
}

/* One scheduler step: the next token of every decoding sequence plus chunks
 * of prompts (or recomputes) within the token budget, oldest first; one
 * forward pass; newly full blocks published to the prefix cache; sample and
 * deliver. */
static void step(struct engine_model *m)
{
    for (int i = 0; i < m->n_running; i++)
        if (atomic_load(&m->running[i]->cancel)) {
            request_finish(m, m->running[i], ENGINE_FINISH_CANCELLED, ST_OK, NULL);
            m->running[i] = NULL;
        }
    running_compact(m);

    /* Decodes always run; prefill chunks get what they leave of the budget,
     * and at most prefill_chunk tokens while anyone decodes: on a CPU a
     * step costs about its token count, so a long prompt would otherwise
     * stall every stream for seconds. */
    int n_dec = 0;
    for (int i = 0; i < m->n_running; i++)
        if (request_tokens(m->running[i]) - kv_seq_len(m->kv, m->running[i]->seq) == 1)
            n_dec++;
    int budget = m->info.max_batch_tokens - n_dec;
    if (n_dec && budget > m->prefill_chunk)
        budget = m->prefill_chunk;
    int n = 0;
    for (int i = 0; i < m->n_running; i++) {
        struct engine_request *r = m->running[i];
        if (!r)
            continue; /* preempted for an older request in this step */
        int len = kv_seq_len(m->kv, r->seq), left = request_tokens(r) - len, chunk = left;
        if (left > 1) {
            if (budget <= 0)
                continue;
            chunk = left < budget ? left : budget;
        }
        chunk = reserve_or_preempt(m, i, chunk, left > 1);
        if (!chunk)
            continue;
        if (left > 1)
            budget -= chunk;
        if (r->t_prefill_start == 0)
            r->t_prefill_start = now_s();
        m->batch[n] = (struct model_batch_seq){
            .seq = r->seq,
            .start_pos = len,
            .n_tokens = chunk,
            .tokens = r->prompt + len,
            .n_logits = chunk == left ? 1 : 0,
        };
        m->batch_run[n++] = i;
    }
    if (n == 0) {
        running_compact(m);
        publish_stats(m);
        return;
    }

    struct model_batch b = {.seqs = m->batch, .n_seqs = n};
    char err[256] = "";
    pthread_mutex_lock(&m->forward_mu);
    enum status st = model_forward(m->model, m->kv, &b, m->logits, err, sizeof(err));
    pthread_mutex_unlock(&m->forward_mu);
    m->steps++;
    int row = 0, n_sample = 0;
    for (int j = 0; j < n; j++) {
        int i = m->batch_run[j];
        struct engine_request *r = m->running[i];
        if (st != ST_OK) {
            request_finish(m, r, ENGINE_FINISH_ERROR, st, err);
            m->running[i] = NULL;
            continue;
        }
        kv_seq_publish(m->kv, r->seq, r->prompt);
        if (!m->batch[j].n_logits)
            continue;
        r->step_logits = m->logits + (size_t)row++ * (size_t)m->info.vocab;
        if (atomic_load(&r->cancel)) {
            request_finish(m, r, ENGINE_FINISH_CANCELLED, ST_OK, NULL);
            m->running[i] = NULL;
        } else {
            m->sample_run[n_sample++] = i;
        }
    }
    if (n_sample)
        sample_all(m, n_sample);
    for (int k = 0; k < n_sample; k++)
        if (request_deliver(m, m->running[m->sample_run[k]]))
            m->running[m->sample_run[k]] = NULL;
    running_compact(m);
    publish_stats(m);
}

static void *scheduler_main(void *arg)
{
    struct engine_model *m = arg;
    for (;;) {
        struct engine_request *cancelled = NULL;
        pthread_mutex_lock(&m->mu);
        for (;;) {
            admit_locked(m, &cancelled);
            m->stats.n_running = m->n_live;
            m->stats.n_prefilling = count_prefilling(m);
            if (m->stopping || m->n_running > 0 || cancelled)
                break;
            pthread_cond_wait(&m->wake, &m->mu);
        }
        bool stopping = m->stopping;
        pthread_mutex_unlock(&m->mu);
        /* Callbacks run outside the lock: they may submit or cancel. */
        while (cancelled) {
            struct engine_request *next = cancelled->next;
            request_finish(m, cancelled, ENGINE_FINISH_CANCELLED, ST_OK, NULL);
            cancelled = next;
        }
        if (stopping) {
            for (int i = 0; i < m->n_running; i++)
                request_finish(m, m->running[i], ENGINE_FINISH_CANCELLED, ST_OK, NULL);
            m->n_running = 0;
            publish_stats(m);
            return NULL;
        }
        step(m);
    }
}
