/* routes.c - every (method, path) the daemon answers, in one place. */
#include "routes.h"

const struct route routes[] = {
    {"GET", "/api/health", api_health},
    {"GET", "/admin/health", api_health},

    {"GET", "/api/profiles", api_profiles_list},
    {"POST", "/api/profiles", api_profiles_create},
    {"GET", "/api/profiles/next-port", api_profiles_next_port},
    {"GET", "/api/profiles/{id}", api_profiles_get},
    {"PUT", "/api/profiles/{id}", api_profiles_update},
    {"DELETE", "/api/profiles/{id}", api_profiles_delete},
    {"POST", "/api/profiles/{id}/duplicate", api_profiles_duplicate},

    {"GET", "/api/system/memory", api_system_memory},
    {"GET", "/api/system/info", api_system_info},

    {"GET", "/api/settings", api_settings_get},
    {"PUT", "/api/settings", api_settings_put},

    {"GET", "/v1/models", api_models_list},
    {"GET", "/v1/models/{model}", api_models_get},
    {"GET", "/v1/models/{org}/{name}", api_models_get},
    {"POST", "/admin/models/load", api_admin_load},
    {"POST", "/admin/models/unload", api_admin_unload},
    {"GET", "/admin/models/status", api_admin_status},
    {"GET", "/admin/memory", api_admin_memory},
    {"GET", "/api/servers", api_servers_list},
    {"POST", "/api/servers/{profile_id}/start", api_servers_start},
    {"POST", "/api/servers/{profile_id}/stop", api_servers_stop},

    {"POST", "/v1/messages", api_anthropic_messages},
    {"POST", "/v1/messages/count_tokens", api_anthropic_count_tokens},

    {"POST", "/v1/chat/completions", api_openai_chat},
    {"POST", "/v1/completions", api_openai_completions},
    {"POST", "/v1/embeddings", api_openai_embeddings},

    {"GET", "/api/models/search", api_hub_search},
    {"GET", "/api/models/local", api_hub_local},
    {"GET", "/api/models/downloads", api_hub_downloads},
    {"POST", "/api/models/download", api_hub_download},
    {"GET", "/api/models/download/{task_id}", api_hub_task},
    {"GET", "/api/models/download/{task_id}/progress", api_hub_progress},
    {"POST", "/api/models/download/{task_id}/pause", api_hub_pause},
    {"POST", "/api/models/download/{task_id}/resume", api_hub_resume},
    {"POST", "/api/models/download/{task_id}/cancel", api_hub_cancel},
    {"DELETE", "/api/models/{org}/{name}", api_hub_delete},

    {"GET", "/api/keys", api_keys_list},
    {"POST", "/api/keys", api_keys_create},
    {"DELETE", "/api/keys/{id}", api_keys_revoke},

    {"GET", "/metrics", api_metrics},
    {"GET", "/api/logs", api_logs_recent},
    {"GET", "/api/logs/stream", api_logs_stream},
    {"GET", "/api/logs/requests", api_logs_requests},
    {"GET", "/api/system/service", api_system_service_get},
    {"POST", "/api/system/service", api_system_service_post},
};

const size_t routes_count = sizeof(routes) / sizeof(routes[0]);
