/*
 * model_access.h - which model names an inference request (/v1) may use.
 *
 * Registry names (profiles, Hugging Face cache ids, folders under
 * <state_dir>/models, see model_registry.h) are for every caller.  A model
 * named by its filesystem path is an administrator's tool: the path must
 * be one a model was already loaded from (POST /admin/models/load; GET
 * /v1/models then lists it), unless the caller may load models itself: a
 * server without keys (everything is open then, /admin included) or a key
 * with the `admin` scope.  Any other path, existing or not (".." forms
 * included), is answered exactly as an unknown model (404 model_not_found),
 * so an inference key learns nothing about the filesystem; relative names
 * never reach outside the registry's folders (model_registry.c refuses "."
 * and ".." segments).
 *
 * Thread-safe: reads the request, its database connection and the pool.
 */
#ifndef FCGI_MODEL_ACCESS_H
#define FCGI_MODEL_ACCESS_H

#include <stdbool.h>

#include "pool.h"

struct http_request;

/* True when `model` may be acquired for `req`; otherwise false with *err
 * set to the pool's answer for an unknown model. */
bool model_access_allowed(struct http_request *req, const char *model, struct pool_error *err);

#endif
