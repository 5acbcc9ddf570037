/*
 * model_internal.h - what the model modules share: the loaded weights, the
 * forward-pass scratch, the per-family hooks and the shared transformer
 * blocks.  Not part of the engine API; include model.h instead.
 *
 * Ownership: struct model owns everything reachable from it.  A family
 * (engine/models/<family>.c) describes which config.json names it accepts,
 * adjusts the parsed config, and composes one decoder layer from the shared
 * blocks below.
 */
#ifndef ENGINE_MODEL_INTERNAL_H
#define ENGINE_MODEL_INTERNAL_H

#include <cJSON.h>

#include "kernels.h"
#include "kv_cache.h"
#include "model.h"

struct safetensors_set;

/* One decoder layer; norm vectors and biases are upcast to fp32 at load. */
struct layer_weights {
    const float *attn_norm;   /* (hidden) input_layernorm */
    struct kernel_mat wq;     /* (n_heads*head_dim, hidden) */
    struct kernel_mat wk;     /* (n_kv_heads*head_dim, hidden) */
    struct kernel_mat wv;     /* (n_kv_heads*head_dim, hidden) */
    struct kernel_mat wo;     /* (hidden, n_heads*head_dim) */
    const float *bq;          /* (n_heads*head_dim) or NULL */
    const float *bk;          /* (n_kv_heads*head_dim) or NULL */
    const float *bv;          /* (n_kv_heads*head_dim) or NULL */
    const float *q_norm;      /* (head_dim) or NULL */
    const float *k_norm;      /* (head_dim) or NULL */
    const float *ffn_norm;    /* (hidden) post_attention_layernorm */
    struct kernel_mat w_gate; /* (ffn, hidden) */
    struct kernel_mat w_up;   /* (ffn, hidden) */
    struct kernel_mat w_down; /* (hidden, ffn) */
};

struct model_weights {
    struct kernel_mat embed;      /* (vocab, hidden) */
    struct layer_weights *layers; /* (n_layers) */
    const float *norm;            /* (hidden) final norm */
    struct kernel_mat lm_head;    /* (vocab, hidden); a copy of embed when tied */
};

/* Forward-pass scratch, sized for max_tokens tokens at load; never reallocated. */
struct model_scratch {
    float *x;       /* (max_tokens, hidden) residual stream */
    float *xb;      /* (max_tokens, max(hidden, n_heads*head_dim)) normed input / gathered rows */
    float *q;       /* (max_tokens, n_heads*head_dim) */
    float *k;       /* (max_tokens, n_kv_heads*head_dim) */
    float *v;       /* (max_tokens, n_kv_heads*head_dim) */
    float *att_out; /* (max_tokens, n_heads*head_dim) */
    float *proj;    /* (max_tokens, hidden) output of o_proj / down_proj */
    float *hb;      /* (max_tokens, ffn) gate */
    float *hb2;     /* (max_tokens, ffn) up */
    float *att;     /* (max_position_embeddings) attention weights of one head */
    float *rope;    /* (max_tokens, head_dim) cos then sin per token */
    float *mm;      /* (mm_floats) matmul scratch */
    int *tok_seq;   /* (max_tokens) batch entry of each token */
    int *tok_pos;   /* (max_tokens) position of each token */
};

struct model_family {
    const char *name; /* for messages */
    enum model_arch arch;
    const char *const *architectures; /* NULL-terminated HF class names */
    const char *const *model_types;   /* NULL-terminated model_type values */
    /* Sets family-specific config fields (biases, q/k norm) from root. */
    enum status (*configure)(struct model_config *cfg, const cJSON *root, char *err, size_t errlen);
    /* Runs decoder layer `layer` over the n tokens in m->s. */
    void (*layer_forward)(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                          int layer, int n);
};

extern const struct model_family model_family_llama;
extern const struct model_family model_family_qwen2;
extern const struct model_family model_family_qwen3;

/* One buffer of weights a model owns: from malloc (mapped_len 0, freed with
 * free) or its own anonymous mapping (unmapped with munmap). */
struct weight_buf {
    void *p;
    size_t mapped_len;
};

struct model {
    struct model_config cfg;
    const struct model_family *family;
    struct model_weights w;
    float *inv_freq;           /* (head_dim/2) RoPE inverse frequencies, scaling applied */
    struct weight_buf *allocs; /* buffers holding weights, freed with the model */
    size_t n_allocs, cap_allocs;
    struct safetensors_set *files; /* kept open while mapped */
    size_t weight_bytes;
    size_t scratch_bytes;
    int max_tokens;
    struct model_scratch s;
    struct threadpool *pool; /* the forward pass's compute threads */
};

/* Finds the family for cfg's architecture / model_type, or NULL. */
const struct model_family *model_family_find(const char *architecture, const char *model_type);

/* config.json's quantization item: "quantization" (mlx-lm), else
 * "quantization_config" (transformers), NULL when neither is there or null.
 * model_config_parse has refused one that is not an object. */
const cJSON *model_config_quant_item(const cJSON *root);

/* --- shared blocks (forward.c); n = tokens in this batch ------------------ */

/* xb = rmsnorm(x) with attn_norm; q, k, v = projections (+ biases). */
void block_qkv(struct model *m, int layer, int n);

/* Layer `layer` of the cache as the attention kernels see it (without a
 * block table): the one description of where a K/V element is stored. */
struct kernel_kv_view layer_kv_view(struct kv_cache *kv, const struct model_config *c, int layer);

/* Per token, split over the pool: the per-head RMSNorm of q and k with
 * q_norm / k_norm (when cfg.qk_norm, Qwen3), RoPE on q and k at the token's
 * position, and k, v written into its sequence's cache slot.  (Done by the
 * calling thread alone, RoPE and the store took 7 % of an 8-sequence decode
 * step of the 110M shape, with the other thread spinning.) */
void block_qk_rope_store(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                         int layer, int n);

/* Causal attention through the block tables, o_proj, and the residual add. */
void block_attention(struct model *m, struct kv_cache *kv, const struct model_batch *b, int layer,
                     int n);

/* x += down(silu(gate(rmsnorm(x))) * up(rmsnorm(x))). */
void block_mlp(struct model *m, int layer, int n);

#endif
