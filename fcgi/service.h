/*
 * service.h - systemd user units for the daemon and its nginx front:
 * generation, verification (systemd-analyze verify), installation into
 * ~/.config/systemd/user (or $XDG_CONFIG_HOME/systemd/user), removal and
 * status, for `mlx-manager service` and /api/system/service.
 *
 * Two units: mlx-manager.service runs `mlx-manager serve` with absolute
 * --config/--listen/--state-dir; mlx-manager-nginx.service runs nginx with
 * the configuration tools/run.sh generated in the run directory (nginx.conf
 * must exist: `make run` once writes it).  Where systemd's user manager is
 * not available (containers, no login session) install/uninstall fail with
 * a message saying so, while print and verify still work.
 *
 * Thread-safe (no shared state); external commands run with a time limit.
 * Returned strings and cJSON trees belong to the caller.
 */
#ifndef FCGI_SERVICE_H
#define FCGI_SERVICE_H

#include <cJSON.h>
#include <stddef.h>

#define SERVICE_DAEMON_UNIT "mlx-manager.service"
#define SERVICE_NGINX_UNIT "mlx-manager-nginx.service"

struct service_opts {
    const char *binary;      /* absolute path of mlx-manager */
    const char *config_path; /* absolute, or NULL for none */
    const char *listen;      /* socket path (absolute) or host:port */
    const char *state_dir;   /* absolute */
    const char *run_dir;     /* absolute: nginx.conf, pid and logs live here */
};

enum service_unit {
    SERVICE_UNIT_DAEMON,
    SERVICE_UNIT_NGINX,
};

/* The text of one unit file (malloc'd, caller frees), or NULL when out of
 * memory or a path holds characters a unit file cannot carry (msg says). */
char *service_render(const struct service_opts *o, enum service_unit which, char *msg,
                     size_t msg_len);

/* The directory user units go to; 0, or -1 when HOME is unset. */
int service_unit_dir(char *buf, size_t len);

/*
 * Runs `systemd-analyze verify` on the two unit files (together, since the
 * nginx unit names the daemon's).  Returns 0 when they pass, 1 when it
 * reports problems (msg holds its output), -1 when systemd-analyze is not
 * installed.
 */
int service_verify(const char *daemon_path, const char *nginx_path, char *msg, size_t msg_len);

/* 1 when a systemd user manager answers, else 0 with the reason in msg. */
int service_systemd_available(char *msg, size_t msg_len);

/*
 * Writes both units (verified first where systemd-analyze exists), reloads
 * the user manager and enables and starts them when `start`.  0, or -1
 * with msg (systemd unavailable, nginx.conf missing, a write failed...).
 */
int service_install(const struct service_opts *o, int start, char *msg, size_t msg_len);

/* Stops and disables both units and removes their files; 0 or -1 with msg. */
int service_uninstall(char *msg, size_t msg_len);

/* {systemd: {available, reason}, unit_dir, units: [{name, path, installed,
 * active, enabled}]}; NULL when out of memory. */
cJSON *service_status(void);

#endif
