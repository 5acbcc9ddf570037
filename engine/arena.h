/*
 * arena.h - a bump allocator for memory that lives exactly as long as one
 * request (or one parse).
 *
 * Allocations come from chunks owned by the arena; nothing is freed
 * individually.  arena_reset() keeps the first chunk for reuse, arena_free()
 * releases everything.  An optional byte limit turns runaway input into a
 * NULL return instead of unbounded growth.  Not thread-safe: one arena
 * belongs to one thread at a time.
 */
#ifndef ENGINE_ARENA_H
#define ENGINE_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head; /* newest chunk first */
    size_t chunk_size;        /* default size of a new chunk */
    size_t limit;             /* max bytes held in chunks; 0 = no limit */
    size_t held;              /* bytes currently held in chunks */
};

/* Initialises `a`; chunk_size 0 picks 16 KiB.  No memory is taken yet. */
void arena_init(struct arena *a, size_t chunk_size, size_t limit);

/* Returns `size` bytes aligned to 16, or NULL when out of memory or over the
 * limit.  The memory is valid until arena_reset()/arena_free(). */
void *arena_alloc(struct arena *a, size_t size);

/* Like arena_alloc() but zero-filled. */
void *arena_calloc(struct arena *a, size_t n, size_t size);

/* Copies the first `len` bytes of `s` plus a NUL; NULL on failure. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Copies a NUL-terminated string; arena_strdup(a, NULL) returns NULL. */
char *arena_strdup(struct arena *a, const char *s);

/* printf into arena memory; NULL on failure. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drops every allocation but keeps one chunk for the next use. */
void arena_reset(struct arena *a);

/* Releases all memory.  The arena may be reused after arena_init(). */
void arena_free(struct arena *a);

#endif
