/*
 * fuzz_model_config.c - libFuzzer target: the input bytes are a config.json.
 * model_config_parse must never crash, and an accepted config must satisfy
 * the invariants the loader and forward pass rely on.
 */
#include <stddef.h>
#include <stdint.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model_config c;
    char err[256];
    if (model_config_parse((const char *)data, size, &c, err, sizeof(err)) != ST_OK)
        return 0;
    if (c.hidden <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.n_heads % c.n_kv_heads != 0 || c.head_dim <= 0 || c.head_dim % 2 != 0 || c.ffn <= 0 ||
        c.vocab <= 0 || c.max_position_embeddings <= 0 || !(c.rms_norm_eps > 0.0f) ||
        !(c.rope_theta > 0.0f) || c.n_eos < 0 || c.n_eos > MODEL_MAX_EOS)
        __builtin_trap();
    return 0;
}
