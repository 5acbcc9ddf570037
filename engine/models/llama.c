/*
 * llama.c - Llama 2 / 3 / 3.1 / 3.2 and Mistral.
 *
 * Pre-norm decoder: RMSNorm -> q/k/v -> RoPE (rotate_half, optional llama3 or
 * linear scaling) -> grouped-query attention -> o_proj, then RMSNorm ->
 * SwiGLU MLP.  Mistral is the same network, with a sliding attention window
 * on every layer when config.json sets sliding_window (v0.1).
 */
#include <string.h>

#include "../model_internal.h"

static enum status llama_configure(struct model_config *cfg, const cJSON *root, char *err,
                                   size_t errlen)
{
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "attention_bias");
    cfg->attention_bias = cJSON_IsTrue(ab);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "mlp_bias")))
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "config.json: mlp_bias is not supported");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "config.json: hidden_act '%s' is not supported (silu)",
                           act->valuestring);
    return ST_OK;
}

static void llama_layer_forward(struct model *m, struct kv_cache *kv, const struct model_batch *b,
                                int layer, int n)
{
    block_qkv(m, layer, n);
    block_qk_rope_store(m, kv, b, layer, n);
    block_attention(m, kv, b, layer, n);
    block_mlp(m, layer, n);
}

static const char *const llama_architectures[] = {"LlamaForCausalLM", "MistralForCausalLM", NULL};
static const char *const llama_model_types[] = {"llama", "mistral", NULL};

const struct model_family model_family_llama = {
    .name = "llama",
    .arch = MODEL_ARCH_LLAMA,
    .architectures = llama_architectures,
    .model_types = llama_model_types,
    .configure = llama_configure,
    .layer_forward = llama_layer_forward,
};
