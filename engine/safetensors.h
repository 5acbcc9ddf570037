/*
 * safetensors.h - validated reader for .safetensors files and sharded sets.
 *
 * File layout: an 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {str: str}}, then the data area; offsets are relative to the data area.
 * The whole header is validated before anything is used: the length against
 * the file size, the JSON, every dtype, shape (dims >= 0, product * element
 * size == end - begin, no overflow), every range inside the data area, and
 * no two tensors overlapping.  Every error names the file and the tensor.
 *
 * A `struct safetensors` (one file) or `struct safetensors_set` (a model's
 * files, from model.safetensors.index.json or a single model.safetensors)
 * owns its header, the file descriptor, and the mapping when mapped.
 * Thread-safety: after open, reads of distinct tensors may run concurrently
 * (pread); open/close are not concurrent with anything on the same object.
 */
#ifndef ENGINE_SAFETENSORS_H
#define ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#define SAFETENSORS_MAX_DIMS 8
/* Headers larger than this are refused (real ones are well under 10 MB). */
#define SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

struct safetensors_tensor {
    const char *name; /* owned by the file object */
    enum dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS]; /* (ndim) */
    uint64_t begin;                      /* byte offsets inside the data area */
    uint64_t end;
    uint64_t nelem; /* product of shape (1 for a scalar) */
};

struct safetensors;

/*
 * Opens `path` and validates its header (the data is not read).  Returns
 * ST_OK and *out; ST_ERR_IO when the file cannot be opened/read; ST_ERR_FORMAT
 * for a malformed file; ST_ERR_UNSUPPORTED for an unknown dtype.
 */
enum status safetensors_open(const char *path, struct safetensors **out, char *err, size_t errlen);

/*
 * Parses a whole safetensors file held in memory (buf, len); `label` names it
 * in messages.  The object points into buf, which must outlive it; tensor
 * data is then available through safetensors_data().  Same errors as
 * safetensors_open().
 */
enum status safetensors_parse(const void *buf, size_t len, const char *label,
                              struct safetensors **out, char *err, size_t errlen);

/* Closes the file, unmaps it and frees the object; NULL is a no-op. */
void safetensors_close(struct safetensors *st);

/* The path (or label) given at open. */
const char *safetensors_path(const struct safetensors *st);

size_t safetensors_count(const struct safetensors *st);

/* Tensor i in header order (i < count). */
const struct safetensors_tensor *safetensors_at(const struct safetensors *st, size_t i);

/* The tensor named `name`, or NULL. */
const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name);

/* The value of `key` in __metadata__, or NULL. */
const char *safetensors_metadata(const struct safetensors *st, const char *key);

/*
 * Copies the tensor's bytes (end - begin) into dst.  Returns ST_OK or
 * ST_ERR_IO (a short read means the file changed since it was opened).
 */
enum status safetensors_read(struct safetensors *st, const struct safetensors_tensor *t, void *dst,
                             char *err, size_t errlen);

/*
 * Maps the whole file read-only (once; later calls reuse the mapping).
 * Returns ST_OK or ST_ERR_IO.  Parsed buffers need no mapping.
 */
enum status safetensors_map(struct safetensors *st, char *err, size_t errlen);

/* The tensor's bytes inside the mapping or parsed buffer, or NULL when the
 * file is not mapped.  8-byte aligned when the file's offsets are. */
const void *safetensors_data(const struct safetensors *st, const struct safetensors_tensor *t);

/* --- a model's set of files ------------------------------------------- */

struct safetensors_set;

/*
 * Opens the weights of model directory `dir`: the files named by
 * model.safetensors.index.json's weight_map when present (every mapped name
 * must exist in its file; a name in two files is an error), else
 * model.safetensors.  Returns ST_OK and *out, ST_ERR_NOT_FOUND when there are
 * no weights, or any safetensors_open() error.
 */
enum status safetensors_set_open(const char *dir, struct safetensors_set **out, char *err,
                                 size_t errlen);

void safetensors_set_close(struct safetensors_set *set);

/* Finds a tensor by name; *file (optional) gets the file that holds it. */
const struct safetensors_tensor *safetensors_set_find(const struct safetensors_set *set,
                                                      const char *name, struct safetensors **file);

/* Number of files and file i. */
size_t safetensors_set_n_files(const struct safetensors_set *set);
struct safetensors *safetensors_set_file(const struct safetensors_set *set, size_t i);

#endif
