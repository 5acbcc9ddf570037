/*
 * cli_pull.c - `mlx-manager pull ORG/NAME` (download a model into the HF
 * cache with a terminal progress bar; interrupted pulls resume) and
 * `mlx-manager ls` (the local models as a table).  Both use the
 * configuration file and the HF_HOME / HF_ENDPOINT / HF_TOKEN overrides,
 * not the daemon's database.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "downloads.h"
#include "fsutil.h"
#include "hf_cache.h"
#include "hub.h"

static volatile sig_atomic_t cli_pull_interrupted;

static void cli_pull_on_signal(int sig)
{
    (void)sig;
    cli_pull_interrupted = 1;
}

static int cli_pull_should_stop(void *ctx)
{
    (void)ctx;
    return cli_pull_interrupted;
}

static double cli_pull_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "12.3 MB" into buf. */
static const char *cli_pull_bytes(double b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000 && u < 4) {
        b /= 1000;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
    return buf;
}

struct cli_pull_bar {
    int tty;
    double started, last_draw, last_t;
    long long last_bytes;
    double speed;
    char last_status[16];
};

static int cli_pull_progress(void *ctx, const struct download_status *s)
{
    struct cli_pull_bar *bar = ctx;
    double now = cli_pull_now();
    int changed = strcmp(bar->last_status, s->status) != 0;
    if (now - bar->last_t >= 0.5) {
        double inst =
            bar->last_t > 0 ? (double)(s->bytes_done - bar->last_bytes) / (now - bar->last_t) : 0;
        bar->speed = bar->speed > 0 ? 0.5 * bar->speed + 0.5 * (inst > 0 ? inst : 0) : inst;
        bar->last_t = now;
        bar->last_bytes = s->bytes_done;
    }
    /* A terminal gets a bar redrawn in place; a pipe gets a line a second. */
    double every = bar->tty ? 0.1 : 1.0;
    if (changed || now - bar->last_draw >= every) {
        snprintf(bar->last_status, sizeof(bar->last_status), "%s", s->status);
        bar->last_draw = now;
        double pct =
            s->bytes_total > 0 ? 100.0 * (double)s->bytes_done / (double)s->bytes_total : 0;
        char done[32], total[32], speed[32], eta[32] = "--";
        if (bar->speed > 0 && s->bytes_total > s->bytes_done) {
            long long secs = (long long)((double)(s->bytes_total - s->bytes_done) / bar->speed);
            snprintf(eta, sizeof(eta), "%lld:%02lld", secs / 60, secs % 60);
        }
        char fill[31];
        int n = (int)(pct * 30 / 100);
        for (int i = 0; i < 30; i++)
            fill[i] = i < n ? '#' : '.';
        fill[30] = '\0';
        fprintf(stderr, "%s[%s] %5.1f%% %s / %s  %s/s  ETA %s  %-11s %.40s%s", bar->tty ? "\r" : "",
                fill, pct, cli_pull_bytes((double)s->bytes_done, done, sizeof(done)),
                cli_pull_bytes((double)s->bytes_total, total, sizeof(total)),
                cli_pull_bytes(bar->speed, speed, sizeof(speed)), eta, s->status, s->file,
                bar->tty ? "\033[K" : "\n");
        fflush(stderr);
    }
    return cli_pull_interrupted;
}

static void cli_pull_usage(FILE *out)
{
    fprintf(out, "usage: mlx-manager pull ORG/NAME [--revision REV] [--config FILE]\n"
                 "\n"
                 "Downloads a model from the Hugging Face Hub (HF_ENDPOINT) into the cache\n"
                 "(models_dir, or $HF_HOME/hub), with HF_TOKEN when set.  Files are checked\n"
                 "against the hub's hashes; an interrupted pull resumes where it stopped.\n");
}

/* Loads the configuration the same way `serve` does. 0 or -1 (printed). */
static int cli_pull_config(const char *path, struct config *cfg)
{
    char err[1024];
    if (config_defaults(cfg)) {
        fprintf(stderr, "mlx-manager: out of memory\n");
        return -1;
    }
    if (path && config_load_file(cfg, path, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager: invalid configuration: %s\n", err);
        return -1;
    }
    if (config_apply_env(cfg, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager: %s\n", err);
        return -1;
    }
    return 0;
}

int cli_pull(int argc, char **argv)
{
    static const struct option opts[] = {
        {"revision", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *revision = "main", *config_path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': revision = optarg; break;
        case 'c': config_path = optarg; break;
        case 'h': cli_pull_usage(stdout); return 0;
        default: cli_pull_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        cli_pull_usage(stderr);
        return 2;
    }
    const char *id = argv[optind];
    char why[256];
    if (!hf_cache_valid_id(id, why, sizeof(why))) {
        fprintf(stderr, "mlx-manager pull: invalid model id '%s': %s\n", id, why);
        return 2;
    }
    if (!hf_cache_valid_name(revision)) {
        fprintf(stderr, "mlx-manager pull: invalid revision '%s'\n", revision);
        return 2;
    }
    struct config cfg;
    if (cli_pull_config(config_path, &cfg)) {
        config_free(&cfg);
        return 1;
    }
    if (fs_mkdirs(cfg.models_dir, 0755)) {
        fprintf(stderr, "mlx-manager pull: cannot create %s\n", cfg.models_dir);
        config_free(&cfg);
        return 1;
    }
    hub_global_init();
    struct hub_client client;
    hub_client_init(&client, cfg.hf_endpoint, cfg.hf_token);
    client.should_stop = cli_pull_should_stop;
    struct cli_pull_bar bar = {.tty = isatty(STDERR_FILENO), .started = cli_pull_now()};
    struct download_job job = {
        .client = &client,
        .models_dir = cfg.models_dir,
        .model_id = id,
        .revision = revision,
        .on_progress = cli_pull_progress,
        .ctx = &bar,
    };
    struct sigaction sa = {.sa_handler = cli_pull_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "pulling %s@%s from %s into %s\n", id, revision, client.endpoint,
            cfg.models_dir);
    char err[1024] = "";
    int rc = downloads_fetch(&job, err, sizeof(err));
    if (bar.tty)
        fputc('\n', stderr);
    int status = 0;
    if (rc == 0) {
        char snap[4200];
        if (hf_cache_snapshot(cfg.models_dir, id, snap, sizeof(snap)) == 0)
            printf("%s\n", snap);
        fprintf(stderr, "pulled %s in %.1f s\n", id, cli_pull_now() - bar.started);
    } else if (rc == 1) {
        fprintf(stderr, "interrupted: run the same command again to resume\n");
        status = 130;
    } else {
        fprintf(stderr, "mlx-manager pull: %s\n", err);
        status = 1;
    }
    config_free(&cfg);
    return status;
}

int cli_ls(int argc, char **argv)
{
    const char *config_path = NULL;
    if (argc == 3 && !strcmp(argv[1], "--config")) {
        config_path = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: mlx-manager ls [--config FILE]\n");
        return argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 2;
    }
    struct config cfg;
    if (cli_pull_config(config_path, &cfg)) {
        config_free(&cfg);
        return 1;
    }
    cJSON *list = hf_cache_list(cfg.models_dir);
    if (!list) {
        fprintf(stderr, "mlx-manager ls: out of memory\n");
        config_free(&cfg);
        return 1;
    }
    printf("%-48s %10s %6s %-8s %8s  %s\n", "MODEL", "SIZE", "FILES", "QUANT", "CONTEXT",
           "SUPPORTED");
    const cJSON *m;
    cJSON_ArrayForEach(m, list)
    {
        const cJSON *conf = cJSON_GetObjectItemCaseSensitive(m, "config");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(conf, "quantization");
        const cJSON *bits = cJSON_GetObjectItemCaseSensitive(q, "bits");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(conf, "context_length");
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(m, "unsupported_reason");
        char size[32], quant[16] = "-";
        if (cJSON_IsNumber(bits))
            snprintf(quant, sizeof(quant), "%d-bit", bits->valueint);
        cli_pull_bytes(cJSON_GetObjectItemCaseSensitive(m, "size_bytes")->valuedouble, size,
                       sizeof(size));
        printf("%-48s %10s %6d %-8s %8d  %s%s\n",
               cJSON_GetObjectItemCaseSensitive(m, "id")->valuestring, size,
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "files")), quant,
               cJSON_IsNumber(ctx) ? ctx->valueint : 0, cJSON_IsString(why) ? "no: " : "yes",
               cJSON_IsString(why) ? why->valuestring : "");
    }
    if (!cJSON_GetArraySize(list))
        printf("(no models in %s)\n", cfg.models_dir);
    cJSON_Delete(list);
    config_free(&cfg);
    return 0;
}
