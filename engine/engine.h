/*
 * engine.h - the inference engine's public API: load a model, submit
 * generation requests, receive their tokens as events.  Knows nothing of
 * HTTP.
 *
 * A loaded model (`struct engine_model`) bundles the weights (model.h), the
 * tokenizer, the chat template, generation_config.json's EOS ids and
 * defaults, a paged KV cache, and one scheduler thread.  Each scheduler step
 * takes the next token of every running sequence plus chunks of waiting
 * prompts (chunked prefill within a per-step token budget), runs one batched
 * forward pass, samples every sequence with its own sampler, and delivers
 * events.  Requests join at the next step and leave as soon as they finish.
 *
 * KV admission: blocks are taken as a sequence grows, not up front.  A
 * waiting request first attaches every leading full block of its prompt
 * that the prefix cache holds (kv_cache.h), then is admitted, in arrival
 * order, once the rest of its prompt fits in the free blocks with one block
 * of headroom per running sequence.  When a running sequence needs a block
 * and none is free, the newest running request is preempted: its blocks
 * are released (published ones stay cached) and it waits again at its
 * arrival position; on readmission it recomputes its prompt and generated
 * tokens (mostly from the prefix cache) with its sampler, detokenizer and
 * stop state untouched, so its output does not change.  A request that
 * could not fit even in the empty pool is refused by engine_submit.
 *
 * Threads: engine_model_load / engine_model_free from one controlling
 * thread; engine_submit, engine_cancel, engine_request_release and the
 * accessors from any thread.  Event callbacks run on the model's scheduler
 * thread, one at a time: keep them short (copy the text out, signal a
 * waiter); they may call engine_cancel and engine_submit, and
 * engine_request_release (which then suppresses the request's DONE event).
 *
 * Ownership: the model owns its tokenizer, template and cache; a request
 * handle belongs to the caller until engine_request_release().  Submission
 * copies everything it needs from the description.
 */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "chat_template.h"
#include "sampler.h"
#include "status.h"
#include "tensor.h"
#include "tokenizer.h"

struct engine_model;
struct engine_request;

/* ---- models ------------------------------------------------------------ */

/* The element type of a model's KV cache (engine_load_opts.kv_dtype). */
enum engine_kv_dtype {
    ENGINE_KV_AUTO, /* F16 for quantized (MLX) models, F32 for float ones */
    ENGINE_KV_F32,
    ENGINE_KV_F16, /* half the memory and the attention's reads; K/V rounded to 11 bits */
};

/* DTYPE_F32 or DTYPE_F16: what a model stores its K/V as for the choice
 * pref, given whether its weights are MLX-quantized (the one place the
 * ENGINE_KV_AUTO rule is written; the daemon's estimates use it too). */
enum dtype engine_kv_dtype_of(bool quantized, enum engine_kv_dtype pref);

struct engine_load_opts {
    size_t kv_bytes;               /* KV pool budget; 0 = max_seqs full contexts, at most 2 GiB */
    int max_seqs;                  /* sequences running at once; 0 = 16 */
    int max_batch_tokens;          /* tokens per step (prefill chunk budget); 0 = 512 */
    int prefill_chunk;             /* prompt tokens per step while other sequences decode, so their
                                      inter-token latency stays smooth; 0 = 64 */
    int block_tokens;              /* KV block size; 0 = KV_BLOCK_TOKENS_DEFAULT */
    enum engine_kv_dtype kv_dtype; /* of the KV cache; 0 = ENGINE_KV_AUTO */
    bool use_mmap;                 /* map weights instead of reading them (see DESIGN.md) */
    int threads;                   /* compute threads of the model's pool; 0 = physical cores */
};

/* generation_config.json sampling defaults; has_* says which were present. */
struct engine_gen_defaults {
    bool has_temperature, has_top_p, has_top_k, has_repetition_penalty;
    float temperature, top_p, repetition_penalty;
    int top_k;
};

#define ENGINE_MAX_EOS 16

struct engine_model_info {
    char dir[4096];                  /* the resolved model directory */
    int vocab;                       /* logits per row */
    int hidden;                      /* hidden_size: the length of an embedding */
    int n_ctx;                       /* max_position_embeddings: prompt + generated tokens */
    int bos_id;                      /* -1 when none */
    int32_t eos_ids[ENGINE_MAX_EOS]; /* config + generation_config + tokenizer */
    int n_eos;
    bool has_chat_template;
    struct engine_gen_defaults defaults;
    int max_seqs, max_batch_tokens;
    size_t kv_blocks;                             /* blocks in the pool */
    int kv_block_tokens;                          /* positions per block */
    enum dtype kv_dtype;                          /* DTYPE_F32 or DTYPE_F16 */
    size_t weight_bytes, kv_bytes, scratch_bytes; /* footprint, and its sum: */
    size_t total_bytes;
};

/* Live counters, published by the scheduler after each step. */
struct engine_stats {
    size_t kv_free_blocks;   /* allocatable: clean + cached */
    size_t kv_used_blocks;   /* referenced by running sequences */
    size_t kv_cached_blocks; /* unreferenced but kept for prefix matches (LRU) */
    size_t kv_shared_blocks; /* used by more than one sequence */
    double kv_waste;         /* % of the slots in used blocks that no sequence holds a
                                position in (kv_cache_counts.unused_slots / used slots) */
    int n_running, n_waiting;
    int n_prefilling; /* of n_running: prompt (or recompute) not fully computed yet */
    uint64_t steps;
    uint64_t preemptions;      /* running requests sent back to recompute later */
    uint64_t prompt_tokens;    /* prompt tokens of every admitted request */
    uint64_t cached_tokens;    /* of those, served by the prefix cache */
    double prefix_hit_ratio;   /* cached_tokens / prompt_tokens, 0 with none */
    uint64_t generated_tokens; /* since load */
    double tokens_per_s;       /* generated, over the last second or so of work */
};

/*
 * Loads the model named by a directory or a Hugging Face cache id
 * (model_dir_resolve), its tokenizer, chat template (a missing one is fine;
 * a broken one only fails chat requests), generation_config.json, sizes the
 * KV cache and starts the scheduler thread.  opts may be NULL.  Returns
 * ST_OK and *out, or the first error with a message naming the file.
 */
enum status engine_model_load(const char *path_or_id, const struct engine_load_opts *opts,
                              struct engine_model **out, char *err, size_t errlen);

/*
 * Stops the scheduler (unfinished requests get DONE with
 * ENGINE_FINISH_CANCELLED first), joins it and frees the model.  Request
 * handles not yet released must still be released afterwards.  NULL is a
 * no-op.
 */
void engine_model_free(struct engine_model *m);

const struct engine_model_info *engine_model_info(const struct engine_model *m);
void engine_model_stats(struct engine_model *m, struct engine_stats *out);

/* The model's tokenizer (thread-safe for encode/decode) and chat template
 * (NULL when the model has none or it failed to parse). */
const struct tokenizer *engine_model_tokenizer(const struct engine_model *m);
const struct chat_template *engine_model_chat_template(const struct engine_model *m);

/*
 * Renders a chat with the model's template.  `context` is the template's
 * variables (messages, tools, ...); add_generation_prompt defaults to true
 * when the object does not set it.  On ST_OK *out is malloc'd (caller
 * frees).  ST_ERR_UNSUPPORTED when the model has no usable template.
 */
enum status engine_render_chat(const struct engine_model *m, const cJSON *context, char **out,
                               char *err, size_t errlen);

/* ---- requests ---------------------------------------------------------- */

enum engine_prompt_kind {
    ENGINE_PROMPT_IDS,  /* prompt_ids as given */
    ENGINE_PROMPT_TEXT, /* prompt_text, tokenized (add_special_tokens as set) */
    ENGINE_PROMPT_CHAT, /* chat rendered with the template, then tokenized */
};

enum engine_event_kind {
    ENGINE_EVENT_TOKEN, /* one generated token */
    ENGINE_EVENT_DONE,  /* the last event of every submitted request */
};

enum engine_finish {
    ENGINE_FINISH_STOP,      /* EOS, a stop id or a stop string */
    ENGINE_FINISH_LENGTH,    /* max_tokens or the context is full */
    ENGINE_FINISH_CANCELLED, /* engine_cancel, release, or model unload */
    ENGINE_FINISH_ERROR,     /* see status / error */
};

struct engine_usage {
    int prompt_tokens, completion_tokens;
    int cached_tokens; /* prompt tokens whose KV came from the prefix cache */
    double ttft_s;     /* submit -> first token */
    double queue_s;    /* submit -> admitted */
    double prompt_tps; /* prompt tokens / prefill time */
    double decode_tps; /* tokens after the first / their time; 0 with one token */
};

struct engine_event {
    enum engine_event_kind kind;
    /* TOKEN: the token, and the text now safe to show (possibly empty: text
     * that may begin a stop string is held back, and an EOS/stop id has
     * none).  DONE: text is the held-back remainder to append (possibly
     * empty); token is -1. */
    int32_t token;
    const char *text;
    size_t text_len;
    const struct sampler_result *logprobs; /* TOKEN with params.sampling.logprobs, else NULL */
    /* DONE only: */
    enum engine_finish finish;
    enum status status;      /* ST_OK unless finish is ERROR */
    const char *error;       /* message for ERROR, else "" */
    const char *stop_string; /* the stop string that ended it, or NULL */
    struct engine_usage usage;
};

/* Called on the scheduler thread; ev and its pointers live only during the call. */
typedef void (*engine_event_fn)(const struct engine_event *ev, void *user);

#define ENGINE_MAX_STOP_IDS 64  /* extra stop token ids per request */
#define ENGINE_MAX_STOP_LEN 512 /* bytes of one stop string */

struct engine_gen_params {
    /* temperature, top_k, ..., logprobs.  eos_ids and min_tokens are filled
     * in by the engine from the model and min_tokens below. */
    struct sampler_params sampling;
    bool has_seed;  /* false: a seed is drawn from the clock and a counter */
    int max_tokens; /* 0 = up to the context (and the KV pool); larger values are capped
                       at the context */
    int min_tokens; /* EOS and stop ids are banned until this many tokens (stop
                       strings still apply) */
    bool ignore_eos;
    const char *const *stop; /* stop strings (copied) */
    int n_stop;
    const int32_t *stop_ids; /* extra stop token ids (copied) */
    int n_stop_ids;
    bool json_object; /* only tokens that keep the output a prefix of one JSON object
                         (json_constraint.h); it stops when the object is complete */
    const char *const *json_tool_names; /* with json_object: the object must be a tool call
                                           {"name": one of these, "arguments": {...}} or an
                                           array of them (json_check_init_tools); copied */
    int n_json_tool_names;
};

struct engine_request_desc {
    enum engine_prompt_kind kind;
    const int32_t *prompt_ids; /* IDS */
    int n_prompt_ids;
    const char *prompt_text; /* TEXT */
    bool add_special_tokens; /* TEXT: as HF add_special_tokens (e.g. BOS) */
    const cJSON *chat;       /* CHAT: template context, see engine_render_chat */
    struct engine_gen_params params;
    engine_event_fn on_event;
    void *user;
};

/* Fills `p` with greedy decoding, no stop strings, max_tokens 0. */
void engine_gen_params_default(struct engine_gen_params *p);

/*
 * Validates and tokenizes the prompt on the calling thread and queues the
 * request.  Errors come back here, synchronously, with no event: ST_ERR_INVALID
 * (bad parameters, token ids outside the vocabulary, empty prompt),
 * ST_ERR_RANGE (the prompt does not fit the context, or the request needs more
 * KV than the whole pool), ST_ERR_UNSUPPORTED (chat without a template),
 * template and tokenizer errors, ST_ERR_NOMEM.  On ST_OK *out is the handle
 * and exactly one DONE event will follow (unless released early from the
 * scheduler thread).
 */
enum status engine_submit(struct engine_model *m, const struct engine_request_desc *d,
                          struct engine_request **out, char *err, size_t errlen);

/*
 * Asks the request to stop; from any thread, any number of times.  It ends
 * within one step with ENGINE_FINISH_CANCELLED (unless it finished first)
 * and its KV blocks are freed.
 */
void engine_cancel(struct engine_request *r);

/*
 * Gives up the handle.  An unfinished request is cancelled first; from any
 * thread but the scheduler's, this waits until its DONE event was delivered,
 * so no callback for it runs after the call.  From an event callback it
 * returns at once and no further event is delivered.  NULL is a no-op.
 */
void engine_request_release(struct engine_request *r);

/* The prompt ids the request was submitted with (valid until release). */
const int32_t *engine_request_prompt(const struct engine_request *r, int *n);

/* ---- embeddings -------------------------------------------------------- */

enum engine_pooling {
    ENGINE_POOLING_LAST, /* the last token's state (causal embedding models, e.g. Qwen3-Embedding)
                          */
    ENGINE_POOLING_MEAN, /* the mean over all tokens */
};

/*
 * The pooled final hidden state (after the final norm, before lm_head) of
 * the n token ids, into out (info.hidden floats), not normalized.  Runs on
 * the calling thread with a KV cache of its own, taking turns with the
 * scheduler's steps on the model's scratch, so generation keeps going
 * between its chunks.  Errors: ST_ERR_INVALID (empty input, ids outside the
 * vocabulary), ST_ERR_RANGE (longer than the context), ST_ERR_NOMEM.
 */
enum status engine_embed(struct engine_model *m, const int32_t *ids, int n,
                         enum engine_pooling pooling, float *out, char *err, size_t errlen);

#endif
