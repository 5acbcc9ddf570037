/*
 * model_registry.h - what a model name means, and which models exist.
 *
 * A name resolves, in this order, to a profile name (the profile's
 * model_path is then resolved by the rules below), a Hugging Face cache id
 * `org/name` under the effective models_dir (snapshots/<refs/main>, or the
 * only snapshot when refs/main is missing), a folder under
 * `<state_dir>/models/` by its name, or an absolute path to a model
 * directory.  A model directory is usable when its config.json parses for an
 * architecture the engine supports and it has safetensors weights; nothing
 * else is read, so resolving and listing are fast.
 *
 * Thread-safe: functions read the filesystem and the caller's database
 * connection only.  Results are owned by the caller.
 */
#ifndef FCGI_MODEL_REGISTRY_H
#define FCGI_MODEL_REGISTRY_H

#include <cJSON.h>
#include <stddef.h>
#include <time.h>

#include "model.h"

struct config;
struct db;

enum registry_kind {
    REGISTRY_PROFILE,   /* a profile name */
    REGISTRY_HF,        /* org/name in the Hugging Face cache */
    REGISTRY_STATE_DIR, /* <state_dir>/models/<name> */
    REGISTRY_PATH,      /* an absolute directory */
};

struct registry_model {
    enum registry_kind kind;
    char name[512]; /* the name as given */
    char dir[4096]; /* the model directory */
    long long profile_id;
    cJSON *profile; /* the profile row (REGISTRY_PROFILE), owned; else NULL */
    struct model_config cfg;
    size_t weight_bytes; /* sum of the safetensors files */
};

/* What a failed lookup should answer: HTTP status, code and message. */
struct registry_error {
    int http_status; /* 404 unknown name, 422 not a supported model, 500 */
    char code[64];
    char message[1024];
};

/*
 * Resolves `name` and inspects the directory it names.  Returns 0 and *out
 * (release with registry_model_clear), or -1 with err filled.
 */
int registry_resolve(struct db *db, const struct config *cfg, const char *name,
                     struct registry_model *out, struct registry_error *err);

void registry_model_clear(struct registry_model *m);

/*
 * Reads config.json of `dir` and sums its safetensors files.  Returns 0, or
 * -1 with a 422 error carrying the engine's message (no config.json,
 * unknown architecture, no weights).
 */
int registry_inspect(const char *dir, struct model_config *cfg, size_t *weight_bytes,
                     struct registry_error *err);

/*
 * Every usable model: profiles, Hugging Face cache models and state-dir
 * models, as a JSON array of {"id", "kind" ("profile" | "hf" | "local"),
 * "dir", "created", "owned_by", "context_length", "size_bytes"}.  Profiles
 * whose model is missing are listed without dir/context_length/size_bytes.
 * NULL on allocation failure.
 */
cJSON *registry_list(struct db *db, const struct config *cfg);

#endif
