/*
 * model_config.c - config.json -> struct model_config.
 *
 * Common keys are read here; the family hook (engine/models/) sets what only
 * its architecture has.  Sizes are bounded so later size arithmetic cannot
 * overflow on hostile configs.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_internal.h"

static const struct model_family *const families[] = {
    &model_family_llama,
    &model_family_qwen2,
    &model_family_qwen3,
};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

const struct model_family *model_family_find(const char *architecture, const char *model_type)
{
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        if (architecture && *architecture && in_list(families[i]->architectures, architecture))
            return families[i];
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        if (model_type && *model_type && in_list(families[i]->model_types, model_type))
            return families[i];
    return NULL;
}

/*
 * Reads an integer key into *out.  Absent or null keeps *out when `required`
 * is false.  Returns ST_OK or ST_ERR_FORMAT / ST_ERR_RANGE.
 */
static enum status get_int(const cJSON *root, const char *key, bool required, int lo, int hi,
                           int *out, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required)
            return status_fail(err, errlen, ST_ERR_FORMAT, "config.json: missing '%s'", key);
        return ST_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return status_fail(err, errlen, ST_ERR_FORMAT, "config.json: '%s' is not an integer", key);
    if (j->valuedouble < lo || j->valuedouble > hi)
        return status_fail(err, errlen, ST_ERR_RANGE, "config.json: '%s' = %.0f is outside %d..%d",
                           key, j->valuedouble, lo, hi);
    *out = (int)j->valuedouble;
    return ST_OK;
}

static enum status get_float(const cJSON *root, const char *key, float *out, char *err,
                             size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j))
        return ST_OK;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return status_fail(err, errlen, ST_ERR_FORMAT, "config.json: '%s' is not a number", key);
    *out = (float)j->valuedouble;
    return ST_OK;
}

static enum status get_bool(const cJSON *root, const char *key, bool *out, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j))
        return ST_OK;
    if (!cJSON_IsBool(j))
        return status_fail(err, errlen, ST_ERR_FORMAT, "config.json: '%s' is not a boolean", key);
    *out = cJSON_IsTrue(j);
    return ST_OK;
}

static enum status parse_rope_scaling(const cJSON *rs, struct model_config *cfg, char *err,
                                      size_t errlen)
{
    cfg->rope_scaling = MODEL_ROPE_SCALING_NONE;
    if (!rs || cJSON_IsNull(rs))
        return ST_OK;
    if (!cJSON_IsObject(rs))
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "config.json: rope_scaling is not an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(type))
        type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type))
        return status_fail(err, errlen, ST_ERR_FORMAT, "config.json: rope_scaling has no type");
    const char *t = type->valuestring;
    enum status rc = get_float(rs, "factor", &cfg->rope_factor, err, errlen);
    if (rc != ST_OK)
        return rc;
    if (strcmp(t, "default") == 0)
        return ST_OK;
    if (!(cfg->rope_factor > 0.0f))
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "config.json: rope_scaling factor must be positive");
    if (strcmp(t, "linear") == 0) {
        cfg->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
        return ST_OK;
    }
    if (strcmp(t, "llama3") != 0)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "config.json: rope_scaling type '%s' is not supported (default, "
                           "linear, llama3)",
                           t);
    cfg->rope_scaling = MODEL_ROPE_SCALING_LLAMA3;
    cfg->rope_low_freq_factor = 1.0f;
    cfg->rope_high_freq_factor = 4.0f;
    cfg->rope_original_max_pos = 8192;
    if ((rc = get_float(rs, "low_freq_factor", &cfg->rope_low_freq_factor, err, errlen)) ||
        (rc = get_float(rs, "high_freq_factor", &cfg->rope_high_freq_factor, err, errlen)) ||
        (rc = get_int(rs, "original_max_position_embeddings", false, 1, 1 << 24,
                      &cfg->rope_original_max_pos, err, errlen)))
        return rc;
    if (!(cfg->rope_low_freq_factor > 0.0f) ||
        !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "config.json: llama3 rope_scaling needs 0 < low_freq_factor < "
                           "high_freq_factor");
    return ST_OK;
}

const cJSON *model_config_quant_item(const cJSON *root)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization");
    if (!q || cJSON_IsNull(q))
        q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    return q && !cJSON_IsNull(q) ? q : NULL;
}

static enum status parse_quant(const cJSON *root, struct model_config *cfg, char *err,
                               size_t errlen)
{
    const cJSON *q = model_config_quant_item(root);
    if (!q)
        return ST_OK;
    if (!cJSON_IsObject(q))
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "config.json: quantization is not an object");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
    if (cJSON_IsString(method) && strcmp(method->valuestring, "mlx") != 0)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "config.json: quant_method '%s' is not supported (MLX affine only)",
                           method->valuestring);
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(q, "mode");
    if (cJSON_IsString(mode) && strcmp(mode->valuestring, "affine") != 0)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "config.json: quantization mode '%s' is not supported (affine only)",
                           mode->valuestring);
    cfg->quant_bits = 4;
    cfg->quant_group_size = 64;
    enum status rc;
    if ((rc = get_int(q, "bits", false, 1, 32, &cfg->quant_bits, err, errlen)) ||
        (rc = get_int(q, "group_size", false, 1, 1 << 20, &cfg->quant_group_size, err, errlen)))
        return rc;
    if (!quant_params_valid(cfg->quant_bits, cfg->quant_group_size))
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "config.json: quantization %d bits / group %d is not supported",
                           cfg->quant_bits, cfg->quant_group_size);
    cfg->quantized = true;
    return ST_OK;
}

static enum status parse_eos(const cJSON *root, struct model_config *cfg, char *err, size_t errlen)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    cfg->n_eos = 0;
    if (!e || cJSON_IsNull(e))
        return ST_OK;
    if (cJSON_IsNumber(e)) {
        cfg->eos_token_ids[cfg->n_eos++] = e->valueint;
        return ST_OK;
    }
    if (!cJSON_IsArray(e))
        return status_fail(err, errlen, ST_ERR_FORMAT,
                           "config.json: eos_token_id must be an integer or a list");
    const cJSON *it;
    cJSON_ArrayForEach(it, e)
    {
        if (!cJSON_IsNumber(it))
            return status_fail(err, errlen, ST_ERR_FORMAT,
                               "config.json: eos_token_id list holds a non-integer");
        if (cfg->n_eos < MODEL_MAX_EOS)
            cfg->eos_token_ids[cfg->n_eos++] = it->valueint;
    }
    return ST_OK;
}

static enum status parse_root(const cJSON *root, struct model_config *cfg, char *err, size_t errlen)
{
    if (!cJSON_IsObject(root))
        return status_fail(err, errlen, ST_ERR_FORMAT, "config.json: not a JSON object");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (cJSON_IsString(a0))
        snprintf(cfg->architecture, sizeof(cfg->architecture), "%s", a0->valuestring);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(mt))
        snprintf(cfg->model_type, sizeof(cfg->model_type), "%s", mt->valuestring);
    const struct model_family *fam = model_family_find(cfg->architecture, cfg->model_type);
    if (!fam)
        return status_fail(err, errlen, ST_ERR_UNSUPPORTED,
                           "config.json: unsupported architecture '%s' (model_type '%s'); "
                           "supported: Llama, Mistral, Qwen2, Qwen3",
                           cfg->architecture[0] ? cfg->architecture : "(none)",
                           cfg->model_type[0] ? cfg->model_type : "(none)");
    cfg->arch = fam->arch;

    enum status rc;
    cfg->n_kv_heads = 0;
    cfg->head_dim = 0;
    cfg->max_position_embeddings = 2048;
    cfg->rms_norm_eps = 1e-6f;
    cfg->rope_theta = 10000.0f;
    cfg->rope_factor = 1.0f;
    cfg->bos_token_id = -1;
    if ((rc = get_int(root, "hidden_size", true, 1, 1 << 16, &cfg->hidden, err, errlen)) ||
        (rc = get_int(root, "num_hidden_layers", true, 1, 1024, &cfg->n_layers, err, errlen)) ||
        (rc = get_int(root, "num_attention_heads", true, 1, 1024, &cfg->n_heads, err, errlen)) ||
        (rc =
             get_int(root, "num_key_value_heads", false, 1, 1024, &cfg->n_kv_heads, err, errlen)) ||
        (rc = get_int(root, "head_dim", false, 1, 4096, &cfg->head_dim, err, errlen)) ||
        (rc = get_int(root, "intermediate_size", true, 1, 1 << 20, &cfg->ffn, err, errlen)) ||
        (rc = get_int(root, "vocab_size", true, 1, 1 << 22, &cfg->vocab, err, errlen)) ||
        (rc = get_int(root, "max_position_embeddings", false, 1, 1 << 24,
                      &cfg->max_position_embeddings, err, errlen)) ||
        (rc = get_float(root, "rms_norm_eps", &cfg->rms_norm_eps, err, errlen)) ||
        (rc = get_float(root, "rope_theta", &cfg->rope_theta, err, errlen)) ||
        (rc = get_bool(root, "tie_word_embeddings", &cfg->tie_word_embeddings, err, errlen)) ||
        (rc = get_int(root, "bos_token_id", false, 0, 1 << 22, &cfg->bos_token_id, err, errlen)) ||
        (rc =
             get_int(root, "sliding_window", false, 0, 1 << 24, &cfg->sliding_window, err, errlen)))
        return rc;
    /* newer transformers write rope_theta and the scaling into rope_parameters */
    const cJSON *rope = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (cJSON_IsObject(rp)) {
        if ((rc = get_float(rp, "rope_theta", &cfg->rope_theta, err, errlen)) != ST_OK)
            return rc;
        if (!rope || cJSON_IsNull(rope))
            rope = rp;
    }
    if ((rc = parse_eos(root, cfg, err, errlen)) ||
        (rc = parse_rope_scaling(rope, cfg, err, errlen)) ||
        (rc = parse_quant(root, cfg, err, errlen)) || (rc = fam->configure(cfg, root, err, errlen)))
        return rc;

    if (cfg->n_kv_heads == 0)
        cfg->n_kv_heads = cfg->n_heads;
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "config.json: num_attention_heads %d is not a multiple of "
                           "num_key_value_heads %d",
                           cfg->n_heads, cfg->n_kv_heads);
    if (cfg->head_dim == 0) {
        if (cfg->hidden % cfg->n_heads != 0)
            return status_fail(err, errlen, ST_ERR_INVALID,
                               "config.json: hidden_size %d is not a multiple of "
                               "num_attention_heads %d",
                               cfg->hidden, cfg->n_heads);
        cfg->head_dim = cfg->hidden / cfg->n_heads;
    }
    if (cfg->head_dim % 2 != 0)
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "config.json: head_dim %d must be even for RoPE", cfg->head_dim);
    if (!(cfg->rms_norm_eps > 0.0f) || !(cfg->rope_theta > 0.0f))
        return status_fail(err, errlen, ST_ERR_INVALID,
                           "config.json: rms_norm_eps and rope_theta must be positive");
    return ST_OK;
}

enum status model_config_parse(const char *json, size_t len, struct model_config *cfg, char *err,
                               size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return status_fail(err, errlen, ST_ERR_FORMAT, "config.json: not valid JSON");
    enum status rc = parse_root(root, cfg, err, errlen);
    cJSON_Delete(root);
    return rc;
}
