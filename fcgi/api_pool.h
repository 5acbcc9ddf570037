/*
 * api_pool.h - helpers shared by the model pool's HTTP handlers
 * (api_models.c, api_admin.c, api_servers.c) and by the inference APIs that
 * acquire models.  Thread-safe (no state).
 */
#ifndef FCGI_API_POOL_H
#define FCGI_API_POOL_H

#include <cJSON.h>

#include "pool.h"

struct http_request;

/* Sends a pool error as OpenAI error JSON with its status, and a
 * Retry-After header when the error has one.  Returns the status. */
int api_send_pool_error(struct http_request *req, const struct pool_error *err);

/* Adds budget_bytes, used_bytes, free_bytes, memory_limit_percent,
 * loaded_models, max_loaded_models and the system memory to `o`. */
void api_pool_add_memory(cJSON *o, const struct pool_memory *m);

#endif
