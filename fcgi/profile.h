/*
 * profile.h - profiles: a named model plus its serving defaults (sampling
 * parameters, system prompt, parsers, limits), stored in the `profiles`
 * table.
 *
 * The field table in profile.c is the single description of every field:
 * its JSON type, whether it may be null, its range or allowed values and its
 * default.  Validation, JSON output and SQL all come from it.  Functions
 * take the calling thread's database connection; results are new cJSON
 * trees owned by the caller.
 */
#ifndef FCGI_PROFILE_H
#define FCGI_PROFILE_H

#include <cJSON.h>
#include <stddef.h>

struct db;

/* Outcome of a profile operation, mapped to HTTP by the API layer. */
enum profile_result {
    PROFILE_OK = 0,
    PROFILE_INVALID,   /* a field failed validation: 422 (field named) */
    PROFILE_CONFLICT,  /* name or port already used: 409 (field named) */
    PROFILE_NOT_FOUND, /* no profile with that id: 404 */
    PROFILE_DB_ERROR,  /* 500 */
};

struct profile_error {
    char field[64];
    char message[512];
};

/* The lowest port >= 8081 that no profile uses; -1 on error. */
int profile_next_port(struct db *db);

/* All profiles as a JSON array ordered by id; NULL on error. */
cJSON *profile_list(struct db *db);

/* One profile as a JSON object in *out. */
enum profile_result profile_get(struct db *db, long long id, cJSON **out);

/* Validates `in` (all required fields present) and inserts it; *out is the
 * stored profile.  Unknown fields are rejected; id/created_at/updated_at are
 * ignored. */
enum profile_result profile_create(struct db *db, const cJSON *in, cJSON **out,
                                   struct profile_error *err);

/* Applies the fields present in `in` to profile `id` (partial update). */
enum profile_result profile_update(struct db *db, long long id, const cJSON *in, cJSON **out,
                                   struct profile_error *err);

enum profile_result profile_delete(struct db *db, long long id);

/* Copies profile `id` under `new_name` with the next free port. */
enum profile_result profile_duplicate(struct db *db, long long id, const char *new_name,
                                      cJSON **out, struct profile_error *err);

#endif
