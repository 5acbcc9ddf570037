/*
 * stop.h - stop strings matched on streamed, detokenized text.
 *
 * A stop string may straddle token boundaries, so the matcher holds back
 * any tail of the text that could still become a stop string: that text is
 * never emitted until it is known not to start one, and it is dropped when
 * the stop string completes (the stop string itself is never emitted).
 * Input text arrives in whole UTF-8 characters (the tokenizer's streaming
 * decoder guarantees it), and stop strings start on a character boundary,
 * so what is emitted is always whole characters too.
 *
 * Thread-safety: one matcher belongs to one request and is used by one
 * thread at a time.  The matcher owns copies of the stop strings and its
 * buffer; text it hands back points into that buffer and stays valid until
 * the next call on the matcher.
 */
#ifndef ENGINE_STOP_H
#define ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

struct stop_matcher;

/*
 * Creates a matcher for n stop strings (copied; empty strings never match
 * and are skipped).  n may be 0: then text passes straight through.
 * ST_ERR_NOMEM on allocation failure.
 */
enum status stop_matcher_create(const char *const *stops, int n, struct stop_matcher **out,
                                char *err, size_t errlen);

/* Frees the matcher; NULL is a no-op. */
void stop_matcher_free(struct stop_matcher *m);

/*
 * Appends `len` bytes of text.  Sets *emit / *emit_len to the text that is
 * now safe to show (possibly empty) and *stopped to whether a stop string
 * has completed: *emit is then the text before it, and the matcher must not
 * be fed again.  Allocates only when the held text plus `text` is longer
 * than any seen before; returns ST_ERR_NOMEM if that fails, else ST_OK.
 */
enum status stop_matcher_feed(struct stop_matcher *m, const char *text, size_t len,
                              const char **emit, size_t *emit_len, bool *stopped);

/* At the end of generation: hands back the text still held. */
void stop_matcher_flush(struct stop_matcher *m, const char **emit, size_t *emit_len);

/* The stop string that completed (owned by the matcher), or NULL. */
const char *stop_matcher_matched(const struct stop_matcher *m);

#endif
