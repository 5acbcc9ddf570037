/*
 * log.h - structured log lines for the daemon.
 *
 * One line per event, JSON ({"ts":..,"level":..,"msg":..,...fields}) or a
 * plain text form, written with one write() so lines from different threads
 * never interleave.  Callers pass extra fields as a cJSON object that stays
 * theirs.  Secrets are never passed here: request logging records method,
 * path (without query string), status and duration only.  Thread-safe.
 * log_reopen() is what SIGHUP triggers, so rotated files are let go.
 *
 * Every event that passes the level filter is also kept, as its JSON line,
 * in a bounded in-memory ring (LOG_RING_LINES lines, each at most
 * LOG_RING_LINE_MAX bytes; longer ones are left out) numbered by a sequence
 * number, for the dashboard's live log view.  Writers hold the ring's lock
 * only to swap one pointer in; readers copy what they take.
 */
#ifndef FCGI_LOG_H
#define FCGI_LOG_H

#include <cJSON.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

/* Opens `path` for appending ("" or NULL = stderr).  Returns 0 or -1. */
int log_open(const char *path, int json, const char *level);

/* Reopens the same path (after rotation).  Returns 0 or -1. */
int log_reopen(void);

/* Changes the minimum level at run time ("debug".."error"); -1 if unknown. */
int log_set_level(const char *level);

/* Writes one line if `level` passes the filter; `fields` may be NULL. */
void log_event(enum log_level level, const char *msg, const cJSON *fields);

/* printf-style convenience for messages without fields. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void log_close(void);

#define LOG_RING_LINES 1024
#define LOG_RING_LINE_MAX 8192

/*
 * Copies up to `max` ring lines with a sequence number above `after`,
 * oldest first, into lines[] (each malloc'd, caller frees) and their
 * numbers into seqs[].  Returns how many were copied.
 */
int log_ring_read(unsigned long long after, char **lines, unsigned long long *seqs, int max);

/* Waits up to timeout_ms for a line numbered above `after`; returns the
 * newest sequence number (0 while the ring is empty). */
unsigned long long log_ring_wait(unsigned long long after, int timeout_ms);

/* Empties the ring (tests). */
void log_ring_clear(void);

#endif
