/*
 * db.h - the daemon's SQLite database: opening in WAL mode and versioned
 * schema migrations (PRAGMA user_version).
 *
 * A `struct db` is one connection and belongs to one thread at a time: each
 * FastCGI worker opens its own, and WAL lets them read concurrently while
 * writes wait up to the busy timeout.  All SQL goes through prepared
 * statements with bound parameters.
 */
#ifndef FCGI_DB_H
#define FCGI_DB_H

#include <sqlite3.h>
#include <stddef.h>

struct db {
    sqlite3 *conn;
};

/* The schema version this build migrates to. */
int db_schema_version(void);

/*
 * Opens (creating if needed) the database at `path`, sets WAL mode, foreign
 * keys and a busy timeout, and applies pending migrations in one
 * transaction each.  Returns 0, or -1 with a message in err.  A database
 * newer than this build is refused rather than touched.
 */
int db_open(struct db *db, const char *path, char *err, size_t errlen);

void db_close(struct db *db);

/* Current UTC time as "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 21 bytes). */
void db_now(char *buf, size_t len);

#endif
