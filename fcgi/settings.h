/*
 * settings.h - run-time settings changed from the dashboard, stored in the
 * `settings` table and layered over the configuration file's values.
 *
 * Only the keys in the table in settings.c exist; each has a type, a
 * validation rule and its default from struct config.  Secret settings
 * (hf_token) are never returned in full.  Functions take the calling
 * thread's database connection.
 */
#ifndef FCGI_SETTINGS_H
#define FCGI_SETTINGS_H

#include <cJSON.h>
#include <stddef.h>

struct config;
struct db;

/* Adds every setting's effective value to `out` (secrets masked). 0 or -1. */
int settings_describe(struct db *db, const struct config *cfg, cJSON *out);

/*
 * Validates every key of `patch` first, then stores them all in one
 * transaction.  Returns 0; or 422 with the bad key in `field` and a message
 * in `msg`; or 500 on a database error (message in msg).
 */
int settings_update(struct db *db, const cJSON *patch, char *field, size_t field_len, char *msg,
                    size_t msg_len);

/* The effective value of `key` as text (database over config) into buf. */
void settings_get_text(struct db *db, const struct config *cfg, const char *key, char *buf,
                       size_t len);

/* The effective integer value of `key` (database over config). */
long long settings_get_int(struct db *db, const struct config *cfg, const char *key);

#endif
