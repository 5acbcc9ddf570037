/*
 * safetensors_write.h - streaming writer for .safetensors model files,
 * sharded the way Hugging Face / mlx-lm shard them.
 *
 * Usage: safetensors_writer_new(), declare every tensor with
 * safetensors_writer_add() (name, dtype, shape; no data), then
 * safetensors_writer_begin() fixes the layout: tensors sorted by name, split
 * into shards of at most shard_bytes each (a tensor never straddles two
 * files; a lone tensor larger than the limit gets a shard of its own), and
 * each shard's header written.  The caller then streams the data in file
 * order: safetensors_writer_next() names the tensor expected next and
 * safetensors_writer_write() appends any number of bytes to it, so no more
 * than one chunk of one tensor ever needs to be in memory.
 * safetensors_writer_finish() checks that everything was written and, when
 * there is more than one shard (or always_index was asked for, as mlx-lm
 * does), writes model.safetensors.index.json.
 *
 * Files: model.safetensors for one shard, else model-0000N-of-0000M.safetensors.
 * Layout: 8-byte little-endian header length, a JSON header whose
 * __metadata__ is {"format": <format>}, padded with spaces to a multiple of
 * 8; every tensor's data starts 8-byte aligned (zero padding between).
 *
 * The writer owns its copies of names and shapes and its open file.  Not
 * thread-safe: one writer belongs to one thread.
 */
#ifndef ENGINE_SAFETENSORS_WRITE_H
#define ENGINE_SAFETENSORS_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

struct safetensors_writer;

/*
 * Creates a writer that will put its files into the existing directory
 * `dir`.  format is the __metadata__ "format" value ("pt" or "mlx");
 * shard_bytes 0 means one file.  Returns ST_OK with *out set, or
 * ST_ERR_NOMEM / ST_ERR_INVALID.
 */
enum status safetensors_writer_new(const char *dir, const char *format, uint64_t shard_bytes,
                                   bool always_index, struct safetensors_writer **out, char *err,
                                   size_t errlen);

/*
 * Declares a tensor.  `user` is handed back by safetensors_writer_next() so
 * the caller can find its own record.  Returns ST_ERR_INVALID for an empty
 * name, a negative dimension, more than 8 dims or an unknown dtype, and
 * after begin(); ST_ERR_RANGE when the byte size overflows.
 */
enum status safetensors_writer_add(struct safetensors_writer *w, const char *name, enum dtype dt,
                                   int ndim, const int64_t *shape, void *user, char *err,
                                   size_t errlen);

/* Fixes the layout and writes the first shard's header.  ST_ERR_INVALID
 * when a name was declared twice, ST_ERR_IO on a write failure. */
enum status safetensors_writer_begin(struct safetensors_writer *w, char *err, size_t errlen);

/*
 * The tensor whose bytes are expected next: returns true and sets the
 * non-NULL outputs (its name, its user pointer, the bytes still missing);
 * false once every tensor is complete.
 */
bool safetensors_writer_next(const struct safetensors_writer *w, const char **name, void **user,
                             uint64_t *remaining);

/*
 * Appends len bytes to the current tensor.  A chunk may not run past the
 * end of the current tensor (ST_ERR_INVALID); ST_ERR_IO on a write failure.
 */
enum status safetensors_writer_write(struct safetensors_writer *w, const void *data, size_t len,
                                     char *err, size_t errlen);

/*
 * Closes the last shard and writes the index when due.  ST_ERR_INVALID when
 * some tensor is still incomplete, ST_ERR_IO on a write failure.
 */
enum status safetensors_writer_finish(struct safetensors_writer *w, char *err, size_t errlen);

/* Number of shard files (valid after begin()). */
size_t safetensors_writer_n_shards(const struct safetensors_writer *w);

/* Closes any open file and frees the writer; NULL is a no-op.  Files already
 * written stay on disk. */
void safetensors_writer_free(struct safetensors_writer *w);

#endif
