/*
 * hf_cache.h - the Hugging Face cache layout under models_dir:
 *
 *   models--ORG--NAME/blobs/<sha256 or git oid>        file contents
 *   models--ORG--NAME/snapshots/<commit>/<path>        relative symlinks to blobs
 *   models--ORG--NAME/refs/<branch>                    the commit a branch names
 *
 * Validation of model ids and repo file paths (both come from users or the
 * hub and end up in file names), linking downloaded blobs into a snapshot,
 * listing the local models with a summary of each, and deletion.
 *
 * Thread-safe: functions touch only the filesystem and caller buffers; the
 * caller owns every returned cJSON tree.
 */
#ifndef FCGI_HF_CACHE_H
#define FCGI_HF_CACHE_H

#include <cJSON.h>
#include <stddef.h>

#include "config.h"

/*
 * 1 when `id` is "ORG/NAME" where both parts are 1..96 characters of
 * [A-Za-z0-9._-], neither starts with '.', and neither contains "..";
 * else 0 with the reason in why (may be NULL).
 */
int hf_cache_valid_id(const char *id, char *why, size_t whylen);

/*
 * 1 when `path` (a file path from a repo listing) is safe to create under a
 * snapshot: relative, components of printable non-'\\' characters, no
 * empty, "." or ".." component, at most 1024 bytes; else 0.
 */
int hf_cache_valid_file(const char *path);

/* 1 when `s` is a usable revision, commit or blob name: 1..128 of
 * [A-Za-z0-9._-], no leading dot, no "..". */
int hf_cache_valid_name(const char *s);

/* Writes models_dir/models--ORG--NAME into out; 0, or -1 when it does not fit. */
int hf_cache_repo_dir(const char *models_dir, const char *id, char *out, size_t outlen);

/*
 * Points snapshots/<commit>/<file> at ../../blobs/<blob> (one more "../"
 * per directory level of file), replacing an existing link.  0, or -1 with
 * a message in err.
 */
int hf_cache_link(const char *repo_dir, const char *commit, const char *file, const char *blob,
                  char *err, size_t errlen);

/* Writes refs/<ref> = commit (atomically, via a temporary file); 0 or -1. */
int hf_cache_write_ref(const char *repo_dir, const char *ref, const char *commit);

/*
 * The snapshot directory of `id`: the commit refs/main names, else the only
 * snapshot.  0 with the path in out, or -1 when there is none.
 */
int hf_cache_snapshot(const char *models_dir, const char *id, char *out, size_t outlen);

/*
 * One local model as JSON: id, path, revision, size_bytes, files [{name,
 * size}], config {architecture, model_type, params_estimate, quantization
 * {bits, group_size} or null, context_length} (null without a usable
 * config.json), supported, unsupported_reason.  NULL when `id` has no
 * snapshot or on allocation failure.
 */
cJSON *hf_cache_describe(const char *models_dir, const char *id);

/* Every models--*--* folder with a snapshot, as an array of hf_cache_describe(). */
cJSON *hf_cache_list(const char *models_dir);

/*
 * Removes models--ORG--NAME entirely.  0; 1 when it does not exist; -1 with
 * a message in err.
 */
int hf_cache_delete(const char *models_dir, const char *id, char *err, size_t errlen);

/* Parameters of a model from its config (embeddings, attention, MLP, head). */
long long hf_cache_params_estimate(const cJSON *config);

/* Bytes of KV cache for `context` tokens of a model from its config.json
 * object, K and V stored as the kv_cache_dtype setting says (auto: F16 for
 * MLX-quantized models, those with a quantization object, F32 otherwise);
 * 0 when the config lacks sizes. */
long long hf_cache_kv_estimate(const cJSON *config, int context, enum engine_kv_dtype kv);

#endif
