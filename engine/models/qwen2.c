/*
 * qwen2.c - Qwen2 / Qwen2.5.
 *
 * The Llama layer with biases on the q, k and v projections (always present
 * in these checkpoints, whatever config.json says).
 */
#include "../model_internal.h"

static enum status qwen2_configure(struct model_config *cfg, const cJSON *root, char *err,
                                   size_t errlen)
{
    (void)err;
    (void)errlen;
    cfg->attention_bias = true;
    /* the window only applies when use_sliding_window is true */
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window")))
        cfg->sliding_window = 0;
    /* HF: only layers from max_window_layers on use the window */
    const cJSON *mwl = cJSON_GetObjectItemCaseSensitive(root, "max_window_layers");
    if (cJSON_IsNumber(mwl))
        cfg->sliding_window_from_layer = mwl->valueint;
    return ST_OK;
}

static void qwen2_layer_forward(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                                int layer, int n)
{
    block_qkv(m, layer, n); /* adds bq, bk, bv */
    block_qk_rope_store(m, kv, b, layer, n);
    block_attention(m, kv, b, layer, n);
    block_mlp(m, layer, n);
}

static const char *const qwen2_architectures[] = {"Qwen2ForCausalLM", NULL};
static const char *const qwen2_model_types[] = {"qwen2", NULL};

const struct model_family model_family_qwen2 = {
    .name = "qwen2",
    .arch = MODEL_ARCH_QWEN2,
    .architectures = qwen2_architectures,
    .model_types = qwen2_model_types,
    .configure = qwen2_configure,
    .layer_forward = qwen2_layer_forward,
};
