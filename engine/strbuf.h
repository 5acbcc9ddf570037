/*
 * strbuf.h - a growable byte buffer that is always NUL-terminated, for
 * building text (JSON headers, generated files, parser output) piece by piece.
 *
 * Running out of memory is sticky: the failing append returns -1, sets
 * `oom`, and every later append is a no-op returning -1, so a builder may
 * append freely and check `oom` once at the end.  A zeroed struct is an
 * empty buffer (data may be NULL until the first append).  The buffer owns
 * `data`; strbuf_free releases it.  Not thread-safe: one owner at a time.
 */
#ifndef ENGINE_STRBUF_H
#define ENGINE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *data; /* len bytes then a NUL; NULL before the first append */
    size_t len, cap;
    bool oom;
};

/* Appends n bytes.  0, or -1 when out of memory (now or before). */
int strbuf_put(struct strbuf *b, const char *s, size_t n);

/* Appends a NUL-terminated string. */
int strbuf_puts(struct strbuf *b, const char *s);

/* Appends one byte. */
int strbuf_putc(struct strbuf *b, char c);

/* Appends printf-formatted text. */
int strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Appends s as a JSON string literal: quotes, \" \\ \n \r \t \b \f and
 * \u00XX for other control bytes; bytes >= 0x80 are copied as they are
 * (Python's json.dumps with ensure_ascii=False).
 */
int strbuf_put_json_string(struct strbuf *b, const char *s);

/* Empties the buffer, keeping its memory (and clearing oom). */
void strbuf_reset(struct strbuf *b);

/* Releases the memory; the buffer is empty and usable again. */
void strbuf_free(struct strbuf *b);

#endif
