/*
 * qwen3.c - Qwen3 (dense).
 *
 * The Llama layer plus an RMSNorm over each head of q and k (q_norm, k_norm,
 * weights of head_dim) applied before RoPE; no q/k/v biases unless
 * attention_bias says so; head_dim comes from config.json.
 */
#include "../model_internal.h"

static enum status qwen3_configure(struct model_config *cfg, const cJSON *root, char *err,
                                   size_t errlen)
{
    (void)err;
    (void)errlen;
    cfg->qk_norm = true;
    cfg->attention_bias = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "attention_bias"));
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window")))
        cfg->sliding_window = 0;
    /* HF: only layers from max_window_layers on use the window */
    const cJSON *mwl = cJSON_GetObjectItemCaseSensitive(root, "max_window_layers");
    if (cJSON_IsNumber(mwl))
        cfg->sliding_window_from_layer = mwl->valueint;
    return ST_OK;
}

static void qwen3_layer_forward(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                                int layer, int n)
{
    block_qkv(m, layer, n);
    block_qk_rope_store(m, kv, b, layer, n);
    block_attention(m, kv, b, layer, n);
    block_mlp(m, layer, n);
}

static const char *const qwen3_architectures[] = {"Qwen3ForCausalLM", NULL};
static const char *const qwen3_model_types[] = {"qwen3", NULL};

const struct model_family model_family_qwen3 = {
    .name = "qwen3",
    .arch = MODEL_ARCH_QWEN3,
    .architectures = qwen3_architectures,
    .model_types = qwen3_model_types,
    .configure = qwen3_configure,
    .layer_forward = qwen3_layer_forward,
};
