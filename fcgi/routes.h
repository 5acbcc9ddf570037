/*
 * routes.h - the daemon's one route table and the handlers it names.
 *
 * Handlers take the request, answer it through http.h and return the HTTP
 * status they sent.  They run on FastCGI worker threads, concurrently.
 */
#ifndef FCGI_ROUTES_H
#define FCGI_ROUTES_H

#include <stddef.h>

#include "router.h"

extern const struct route routes[];
extern const size_t routes_count;

/* api_health.c */
int api_health(struct http_request *req);

/* api_profiles.c */
int api_profiles_list(struct http_request *req);
int api_profiles_create(struct http_request *req);
int api_profiles_next_port(struct http_request *req);
int api_profiles_get(struct http_request *req);
int api_profiles_update(struct http_request *req);
int api_profiles_delete(struct http_request *req);
int api_profiles_duplicate(struct http_request *req);

/* api_system.c */
int api_system_memory(struct http_request *req);
int api_system_info(struct http_request *req);

/* api_settings.c */
int api_settings_get(struct http_request *req);
int api_settings_put(struct http_request *req);

/* api_models.c */
int api_models_list(struct http_request *req);
int api_models_get(struct http_request *req);

/* api_admin.c */
int api_admin_load(struct http_request *req);
int api_admin_unload(struct http_request *req);
int api_admin_status(struct http_request *req);
int api_admin_memory(struct http_request *req);

/* api_servers.c */
int api_servers_list(struct http_request *req);
int api_servers_start(struct http_request *req);
int api_servers_stop(struct http_request *req);

/* api_anthropic.c */
int api_anthropic_messages(struct http_request *req);
int api_anthropic_count_tokens(struct http_request *req);

/* api_openai_chat.c, api_openai_completions.c, api_openai_embeddings.c */
int api_openai_chat(struct http_request *req);
int api_openai_completions(struct http_request *req);
int api_openai_embeddings(struct http_request *req);

/* api_hub.c */
int api_hub_search(struct http_request *req);
int api_hub_download(struct http_request *req);
int api_hub_downloads(struct http_request *req);
int api_hub_task(struct http_request *req);
int api_hub_progress(struct http_request *req);
int api_hub_pause(struct http_request *req);
int api_hub_resume(struct http_request *req);
int api_hub_cancel(struct http_request *req);
int api_hub_local(struct http_request *req);
int api_hub_delete(struct http_request *req);

/* api_keys.c */
int api_keys_list(struct http_request *req);
int api_keys_create(struct http_request *req);
int api_keys_revoke(struct http_request *req);

/* api_ops.c */
int api_metrics(struct http_request *req);
int api_logs_recent(struct http_request *req);
int api_logs_stream(struct http_request *req);
int api_logs_requests(struct http_request *req);
int api_system_service_get(struct http_request *req);
int api_system_service_post(struct http_request *req);

#endif
