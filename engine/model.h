/*
 * model.h - a loaded transformer (Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3) and
 * its batched forward pass.
 *
 * model_load() reads config.json and the safetensors weights of a Hugging
 * Face / MLX model directory (float F32/F16/BF16 or MLX affine-quantized,
 * single file or sharded), validates everything against the config, and
 * allocates all scratch memory for up to opts->max_batch_tokens tokens per
 * forward call.  model_forward() then runs one batch, a mix of prefill chunks
 * and decode tokens of several sequences, reading and writing K/V through a
 * kv_cache (kv_cache.h) created for this model's config.
 *
 * Thread-safety: a loaded model's weights are read-only, but its scratch
 * buffers are not: model_forward() must not run concurrently on the same
 * model (one scheduler thread per model).  model_get_config() and
 * model_weight_bytes() may be called from any thread.  Each model has its own
 * compute thread pool (opts->n_threads) that model_forward() splits the
 * kernels over; results do not depend on its size.  The model owns its
 * weights and scratch; the caller owns the kv_cache, batch and logits buffer.
 */
#ifndef ENGINE_MODEL_H
#define ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_cache.h"
#include "status.h"

struct model;

enum model_arch {
    MODEL_ARCH_LLAMA, /* LlamaForCausalLM, MistralForCausalLM */
    MODEL_ARCH_QWEN2, /* Qwen2ForCausalLM: q/k/v biases */
    MODEL_ARCH_QWEN3, /* Qwen3ForCausalLM: per-head RMSNorm on q and k before RoPE */
};

enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE,
    MODEL_ROPE_SCALING_LINEAR, /* positions divided by factor */
    MODEL_ROPE_SCALING_LLAMA3, /* Llama 3.1 frequency-dependent scaling */
};

#define MODEL_MAX_EOS 8

/* Read-only after model_load / model_config_parse. */
struct model_config {
    enum model_arch arch;
    char architecture[64]; /* architectures[0], e.g. "LlamaForCausalLM" */
    char model_type[32];   /* e.g. "llama", "qwen2" */
    int hidden;            /* hidden_size */
    int n_layers;          /* num_hidden_layers */
    int n_heads;           /* num_attention_heads */
    int n_kv_heads;        /* num_key_value_heads (defaults to n_heads) */
    int head_dim;          /* head_dim, else hidden / n_heads */
    int ffn;               /* intermediate_size */
    int vocab;             /* vocab_size */
    int max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;
    enum model_rope_scaling rope_scaling;
    float rope_factor;                /* linear and llama3 */
    float rope_low_freq_factor;       /* llama3 */
    float rope_high_freq_factor;      /* llama3 */
    int rope_original_max_pos;        /* llama3 original_max_position_embeddings */
    int sliding_window;               /* attend to at most this many positions; 0 = no window */
    int sliding_window_from_layer;    /* layers below this attend to everything (Qwen2
                                         max_window_layers) */
    bool tie_word_embeddings;         /* logits use embed_tokens (no lm_head.weight) */
    bool attention_bias;              /* q/k/v projections have biases */
    bool qk_norm;                     /* q_norm / k_norm per head (Qwen3) */
    int bos_token_id;                 /* -1 when absent */
    int eos_token_ids[MODEL_MAX_EOS]; /* eos_token_id (int or list) */
    int n_eos;
    /* quantization / quantization_config defaults (per-layer overrides are
     * applied at load; a layer is quantized iff <name>.scales exists) */
    bool quantized;
    int quant_bits;
    int quant_group_size;
};

/*
 * Parses a config.json text of `len` bytes into *cfg.  Returns ST_OK,
 * ST_ERR_FORMAT for malformed JSON or a missing/ill-typed required key,
 * ST_ERR_UNSUPPORTED for an unknown architecture/model_type (named in the
 * message), rope scaling or quantization, ST_ERR_RANGE for a size outside
 * its bounds, ST_ERR_INVALID for inconsistent sizes.
 */
enum status model_config_parse(const char *json, size_t len, struct model_config *cfg, char *err,
                               size_t errlen);

#define MODEL_MAX_BATCH_TOKENS (1 << 20)

struct model_load_opts {
    bool use_mmap;        /* map the files instead of reading into anonymous memory */
    int max_batch_tokens; /* tokens per model_forward call; 0 picks 512; at most
                             MODEL_MAX_BATCH_TOKENS */
    bool quant_exact;     /* quantized weights: float activations, equal to the reference
                             kernels (slower); false: int8 activations and integer dots,
                             2/3/5/6-bit codes widened to 4/8 bits (unless use_mmap) */
    int n_threads;        /* compute threads of the forward pass (threadpool.h); 0 = the
                             physical cores */
};

/*
 * Loads the model in directory `dir` (config.json + model.safetensors, or a
 * model.safetensors.index.json with its shards).  opts may be NULL for the
 * defaults.  Returns ST_OK and *out, or an error naming the file and tensor:
 * ST_ERR_IO, ST_ERR_FORMAT (bad file/header/config), ST_ERR_NOT_FOUND (a
 * required tensor is missing), ST_ERR_INVALID (a tensor's shape or dtype
 * does not match the config), ST_ERR_UNSUPPORTED, ST_ERR_NOMEM.
 */
enum status model_load(const char *dir, const struct model_load_opts *opts, struct model **out,
                       char *err, size_t errlen);

/*
 * What model_load(dir, opts) would take, from config.json and the safetensors
 * headers only (no weight is read): *weight_bytes >= model_weight_bytes() (every
 * tensor in the files, quantized codes at the width the load widens them to)
 * and *scratch_bytes >= model_scratch_bytes().  For memory
 * admission before a load.  Returns ST_OK or the config/header errors of
 * model_load.
 */
enum status model_estimate(const char *dir, const struct model_load_opts *opts,
                           size_t *weight_bytes, size_t *scratch_bytes, char *err, size_t errlen);

/* Frees the model; model_free(NULL) is a no-op. */
void model_free(struct model *m);

const struct model_config *model_get_config(const struct model *m);

/* Bytes of weights held (read or mapped). */
size_t model_weight_bytes(const struct model *m);

/* Bytes of scratch allocated for the forward pass. */
size_t model_scratch_bytes(const struct model *m);

/* The forward pass's compute pool.  Other work may run on it between
 * forward passes, from the thread that runs them (threadpool.h). */
struct threadpool *model_threadpool(struct model *m);

/* The max_batch_tokens the model was loaded with. */
int model_max_batch_tokens(const struct model *m);

/*
 * One chunk of one sequence in a batch: n_tokens token ids at positions
 * start_pos .. start_pos+n_tokens-1.  start_pos must equal the sequence's
 * kv_seq_len() (K/V of earlier positions are read from the cache).  Logits
 * are produced for the last n_logits tokens of the chunk (0 = none, 1 = the
 * last token, n_tokens = every token).
 */
struct model_batch_seq {
    int seq; /* kv_cache sequence id */
    int start_pos;
    int n_tokens;          /* >= 1 */
    const int32_t *tokens; /* (n_tokens) */
    int n_logits;          /* 0 .. n_tokens */
};

struct model_batch {
    const struct model_batch_seq *seqs; /* (n_seqs); each sequence at most once */
    int n_seqs;
};

/* Total logits rows a batch produces: the sum of n_logits. */
int model_batch_logit_rows(const struct model_batch *b);

/*
 * Runs the batch: reserves KV room for every chunk (kv_seq_reserve), writes
 * the new K/V, advances each sequence's length, and writes logits to
 * logits_out: model_batch_logit_rows(b) rows of vocab floats, in the order of
 * b->seqs and, within a chunk, by position.  logits_out may be NULL when no
 * logits are requested.  No memory is allocated.
 *
 * Returns ST_OK; ST_ERR_INVALID for a bad batch (unknown/duplicate sequence,
 * start_pos != kv_seq_len, token id out of range, n_logits out of range);
 * ST_ERR_RANGE when the batch has more than max_batch_tokens tokens or a
 * position passes max_position_embeddings; ST_ERR_NOMEM when the KV pool has
 * no room (nothing has been computed then, but sequences earlier in the
 * batch may keep the blocks reserved for them).
 */
enum status model_forward(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                          float *logits_out, char *err, size_t errlen);

/*
 * model_forward() without the lm_head: writes the final-normed hidden state
 * (hidden floats per row) of the same rows model_forward() would give
 * logits for.  For embeddings.  Same errors, no allocation.
 */
enum status model_forward_hidden(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                                 float *hidden_out, char *err, size_t errlen);

#endif
