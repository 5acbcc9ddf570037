/*
 * model_dir.h - resolve a model argument to a local directory.
 *
 * A model is named either by a filesystem path (a directory holding
 * config.json / tokenizer.json / ...) or by a Hugging Face model id
 * "org/name", looked up in the Hugging Face cache layout
 * ($HF_HOME/hub, else ~/.cache/huggingface/hub):
 *   models--org--name/snapshots/<revision named by refs/main>/
 * Thread-safe (reads the environment and the filesystem only); the caller
 * owns every buffer.
 */
#ifndef ENGINE_MODEL_DIR_H
#define ENGINE_MODEL_DIR_H

#include <stddef.h>

#include "status.h"

/*
 * Writes the directory for `name_or_path` into out (NUL-terminated).  An
 * existing directory wins over a cache lookup.  Returns ST_OK,
 * ST_ERR_NOT_FOUND when neither exists, ST_ERR_INVALID for an unusable
 * name, ST_ERR_RANGE when the path does not fit in outlen, ST_ERR_IO when
 * refs/main cannot be read.
 */
enum status model_dir_resolve(const char *name_or_path, char *out, size_t outlen, char *err,
                              size_t errlen);

/* Writes the hub directory ($HF_HOME/hub or ~/.cache/huggingface/hub) into out. */
enum status model_dir_hub(char *out, size_t outlen, char *err, size_t errlen);

#endif
