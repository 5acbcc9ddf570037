/*
 * cli_service.c - `mlx-manager service`: the systemd user units for the
 * daemon and its nginx front (service.h), from the command line.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "service.h"

static void service_usage(FILE *out)
{
    fprintf(out,
            "usage: mlx-manager service [--config FILE] [--run-dir DIR] [--state-dir DIR]\n"
            "                           [--listen ADDR] ACTION\n"
            "actions:\n"
            "  print        show the two unit files\n"
            "  verify       check them with systemd-analyze verify\n"
            "  install [--no-start]\n"
            "               write them to the user unit directory, enable and start them\n"
            "  uninstall    stop, disable and remove them\n"
            "  status       installed / active / enabled, or why systemd is unavailable\n"
            "--run-dir is where `make run` keeps nginx.conf (default: run); --listen defaults\n"
            "to RUN_DIR/mlx-manager.sock as tools/run.sh uses it.\n");
}

/* An absolute form of `path` (which need not exist) into out. */
static void service_absolute(const char *path, char *out, size_t len)
{
    char cwd[PATH_MAX];
    if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        snprintf(out, len, "%s", path);
    else
        snprintf(out, len, "%s/%s", cwd, path);
}

static int service_print(const struct service_opts *o)
{
    char msg[512];
    for (int i = 0; i < 2; i++) {
        char *text =
            service_render(o, i == 0 ? SERVICE_UNIT_DAEMON : SERVICE_UNIT_NGINX, msg, sizeof(msg));
        if (!text) {
            fprintf(stderr, "mlx-manager service: %s\n", msg);
            return 1;
        }
        printf("### %s\n%s\n", i == 0 ? SERVICE_DAEMON_UNIT : SERVICE_NGINX_UNIT, text);
        free(text);
    }
    return 0;
}

static int service_verify_both(const struct service_opts *o)
{
    char dir[] = "/tmp/mlxm-units-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mlx-manager service: mkdtemp");
        return 1;
    }
    char paths[2][PATH_MAX], msg[2048];
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        char *text =
            service_render(o, i == 0 ? SERVICE_UNIT_DAEMON : SERVICE_UNIT_NGINX, msg, sizeof(msg));
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir,
                 i == 0 ? SERVICE_DAEMON_UNIT : SERVICE_NGINX_UNIT);
        FILE *f = text ? fopen(paths[i], "w") : NULL;
        if (!f || fputs(text, f) < 0) {
            fprintf(stderr, "mlx-manager service: %s\n",
                    text ? "cannot write a temporary file" : msg);
            rc = 1;
        }
        if (f)
            fclose(f);
        free(text);
    }
    if (rc == 0) {
        int v = service_verify(paths[0], paths[1], msg, sizeof(msg));
        if (v < 0)
            fprintf(stderr, "mlx-manager service: systemd-analyze is not installed; cannot "
                            "verify\n");
        else if (v > 0)
            fprintf(stderr, "systemd-analyze verify reports:\n%s\n", msg);
        else
            printf("%s, %s: ok (systemd-analyze verify)\n", SERVICE_DAEMON_UNIT,
                   SERVICE_NGINX_UNIT);
        rc = v != 0;
    }
    unlink(paths[0]);
    unlink(paths[1]);
    rmdir(dir);
    return rc;
}

int cli_service(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"run-dir", required_argument, NULL, 'r'},
        {"state-dir", required_argument, NULL, 's'},
        {"listen", required_argument, NULL, 'l'},
        {"no-start", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *run_dir = "run", *state_dir = NULL, *listen = NULL;
    int start = 1, c;
    while ((c = getopt_long(argc, argv, "c:r:s:l:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'r': run_dir = optarg; break;
        case 's': state_dir = optarg; break;
        case 'l': listen = optarg; break;
        case 'n': start = 0; break;
        case 'h': service_usage(stdout); return 0;
        default: service_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        service_usage(stderr);
        return 2;
    }
    const char *action = argv[optind];
    if (!config_path && getenv("MLXM_CONFIG") && *getenv("MLXM_CONFIG"))
        config_path = getenv("MLXM_CONFIG");

    struct config cfg;
    char err[1024];
    if (config_defaults(&cfg)) {
        fprintf(stderr, "mlx-manager service: out of memory\n");
        return 1;
    }
    int rc = 1;
    if (config_path && config_load_file(&cfg, config_path, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager service: invalid configuration: %s\n", err);
        goto out;
    }
    if (config_apply_env(&cfg, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager service: %s\n", err);
        goto out;
    }
    char binary[PATH_MAX], config_abs[PATH_MAX], run_abs[PATH_MAX], state_abs[PATH_MAX],
        listen_abs[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", binary, sizeof(binary) - 1);
    if (n <= 0) {
        fprintf(stderr, "mlx-manager service: cannot find my own executable\n");
        goto out;
    }
    binary[n] = '\0';
    if (config_path)
        service_absolute(config_path, config_abs, sizeof(config_abs));
    service_absolute(run_dir, run_abs, sizeof(run_abs));
    service_absolute(state_dir ? state_dir : cfg.state_dir, state_abs, sizeof(state_abs));
    if (listen && strchr(listen, ':') && listen[0] != '/' && listen[0] != '.')
        snprintf(listen_abs, sizeof(listen_abs), "%s", listen); /* TCP */
    else if (listen)
        service_absolute(listen, listen_abs, sizeof(listen_abs));
    else
        snprintf(listen_abs, sizeof(listen_abs), "%s/mlx-manager.sock", run_abs);
    struct service_opts o = {
        .binary = binary,
        .config_path = config_path ? config_abs : NULL,
        .listen = listen_abs,
        .state_dir = state_abs,
        .run_dir = run_abs,
    };

    char msg[2048];
    if (!strcmp(action, "print")) {
        rc = service_print(&o);
    } else if (!strcmp(action, "verify")) {
        rc = service_verify_both(&o);
    } else if (!strcmp(action, "install") || !strcmp(action, "uninstall")) {
        int install = !strcmp(action, "install");
        if ((install ? service_install(&o, start, msg, sizeof(msg))
                     : service_uninstall(msg, sizeof(msg))) != 0) {
            fprintf(stderr, "mlx-manager service %s: %s\n", action, msg);
        } else {
            fprintf(stderr, "mlx-manager service %s: done\n", action);
            rc = 0;
        }
    } else if (!strcmp(action, "status")) {
        cJSON *st = service_status();
        char *text = st ? cJSON_Print(st) : NULL;
        if (text) {
            printf("%s\n", text);
            cJSON *sd = cJSON_GetObjectItemCaseSensitive(st, "systemd");
            rc = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sd, "available")) ? 0 : 3;
        }
        free(text);
        cJSON_Delete(st);
    } else {
        fprintf(stderr, "mlx-manager service: unknown action '%s'\n", action);
        service_usage(stderr);
        rc = 2;
    }
out:
    config_free(&cfg);
    return rc;
}
