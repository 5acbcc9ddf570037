/*
 * cli_keys.c - `mlx-manager keys`: API keys from the command line, on the
 * database the daemon uses (found through the same config file, environment
 * (--config, else $MLXM_CONFIG), environment and --state-dir as `serve`).  Works whether or not the
 * daemon runs: SQLite in WAL mode lets both write.  The full key is printed once, by create.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cli.h"
#include "config.h"
#include "db.h"

static void keys_usage(FILE *out)
{
    fprintf(out, "usage: mlx-manager keys [--config FILE] [--state-dir DIR] ACTION\n"
                 "actions:\n"
                 "  create NAME [--scopes inference,admin] [--models M1,M2]\n"
                 "                  make a key (default scope: inference) and print it once\n"
                 "  list [--json]   every key with its scopes, models and usage (no secrets)\n"
                 "  revoke ID       stop a key from working\n"
                 "  models ID (M1,M2 | --all)\n"
                 "                  limit a key to these model names, or let it use every model\n");
}

/* Splits "a,b,c" in place into names[]; returns the count or -1. */
static int keys_split(char *list, char **names, int max)
{
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max)
            return -1;
        names[n++] = tok;
    }
    return n;
}

static int keys_parse_id(const char *s, long long *id)
{
    char *end;
    errno = 0;
    *id = strtoll(s, &end, 10);
    return !*s || *end || errno || *id <= 0 ? -1 : 0;
}

static void keys_print_row(const cJSON *k)
{
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(k, "scopes");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(k, "models");
    const cJSON *revoked = cJSON_GetObjectItemCaseSensitive(k, "revoked_at");
    char sc[64] = "", md[512] = "*";
    const cJSON *s;
    cJSON_ArrayForEach(s, scopes)
    {
        size_t l = strlen(sc);
        snprintf(sc + l, sizeof(sc) - l, "%s%s", l ? "," : "", s->valuestring);
    }
    if (cJSON_IsArray(models)) {
        md[0] = '\0';
        cJSON_ArrayForEach(s, models)
        {
            size_t l = strlen(md);
            snprintf(md + l, sizeof(md) - l, "%s%s", l ? "," : "", s->valuestring);
        }
    }
    printf("%-5.0f %-20s %-14s %-16s %8.0f %10.0f %10.0f  %s%s\n",
           cJSON_GetObjectItemCaseSensitive(k, "id")->valuedouble,
           cJSON_GetObjectItemCaseSensitive(k, "name")->valuestring,
           cJSON_GetObjectItemCaseSensitive(k, "prefix")->valuestring, sc,
           cJSON_GetObjectItemCaseSensitive(k, "requests")->valuedouble,
           cJSON_GetObjectItemCaseSensitive(k, "prompt_tokens")->valuedouble,
           cJSON_GetObjectItemCaseSensitive(k, "completion_tokens")->valuedouble, md,
           cJSON_IsString(revoked) ? "  (revoked)" : "");
}

static int keys_create(struct db *db, int argc, char **argv)
{
    static const struct option opts[] = {
        {"scopes", required_argument, NULL, 's'},
        {"models", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    const char *scope_text = "inference";
    char *model_text = NULL;
    int c;
    optind = 0; /* glibc: 0 restarts the scan after the global options' */
    while ((c = getopt_long(argc, argv, "s:m:", opts, NULL)) != -1) {
        switch (c) {
        case 's': scope_text = optarg; break;
        case 'm': model_text = optarg; break;
        default: keys_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !argv[optind][0] || strlen(argv[optind]) > 128) {
        fprintf(stderr, "mlx-manager keys create: give one NAME of 1 to 128 bytes\n");
        return 2;
    }
    int scopes = auth_scopes_parse(scope_text);
    if (scopes <= 0) {
        fprintf(stderr, "mlx-manager keys create: --scopes must list inference and/or admin\n");
        return 2;
    }
    char *models[AUTH_MAX_MODELS];
    int n_models = model_text ? keys_split(model_text, models, AUTH_MAX_MODELS) : 0;
    if (model_text && n_models <= 0) {
        fprintf(stderr, "mlx-manager keys create: --models must list 1 to %d names\n",
                AUTH_MAX_MODELS);
        return 2;
    }
    char key[AUTH_KEY_LEN + 1], msg[512] = "";
    cJSON *row = NULL;
    if (auth_key_create(db, argv[optind], scopes, key, &row, msg, sizeof(msg))) {
        fprintf(stderr, "mlx-manager keys create: %s\n", msg);
        return 1;
    }
    long long id = (long long)cJSON_GetObjectItemCaseSensitive(row, "id")->valuedouble;
    cJSON_Delete(row);
    if (model_text &&
        auth_key_set_models(db, id, (const char *const *)models, n_models, msg, sizeof(msg))) {
        /* A key without its limit must not stay usable. */
        auth_key_revoke(db, id);
        fprintf(stderr, "mlx-manager keys create: %s\n", msg);
        return 1;
    }
    fprintf(stderr, "created key %lld; it is shown only now:\n", id);
    printf("%s\n", key);
    return 0;
}

static int keys_list(struct db *db, int argc, char **argv)
{
    int json = argc == 2 && !strcmp(argv[1], "--json");
    if (argc > 2 || (argc == 2 && !json)) {
        keys_usage(stderr);
        return 2;
    }
    cJSON *list = auth_key_list(db);
    if (!list) {
        fprintf(stderr, "mlx-manager keys list: cannot read the API keys\n");
        return 1;
    }
    if (json) {
        char *text = cJSON_Print(list);
        if (text)
            printf("%s\n", text);
        free(text);
    } else {
        printf("%-5s %-20s %-14s %-16s %8s %10s %10s  %s\n", "ID", "NAME", "PREFIX", "SCOPES",
               "REQUESTS", "PROMPT", "COMPLETION", "MODELS");
        const cJSON *k;
        cJSON_ArrayForEach(k, list) keys_print_row(k);
    }
    cJSON_Delete(list);
    return 0;
}

static int keys_revoke(struct db *db, int argc, char **argv)
{
    long long id;
    if (argc != 2 || keys_parse_id(argv[1], &id)) {
        fprintf(stderr, "mlx-manager keys revoke: give one key ID (a positive number)\n");
        return 2;
    }
    int rc = auth_key_revoke(db, id);
    if (rc < 0)
        fprintf(stderr, "mlx-manager keys revoke: database error\n");
    else if (rc > 0)
        fprintf(stderr, "mlx-manager keys revoke: no unrevoked key with id %lld\n", id);
    else
        fprintf(stderr, "revoked key %lld\n", id);
    return rc ? 1 : 0;
}

static int keys_models(struct db *db, int argc, char **argv)
{
    long long id;
    if (argc != 3 || keys_parse_id(argv[1], &id)) {
        fprintf(stderr, "mlx-manager keys models: give a key ID and M1,M2 or --all\n");
        return 2;
    }
    char *models[AUTH_MAX_MODELS];
    int all = !strcmp(argv[2], "--all");
    int n = all ? 0 : keys_split(argv[2], models, AUTH_MAX_MODELS);
    if (n < 0 || (!all && n == 0)) {
        fprintf(stderr, "mlx-manager keys models: list 1 to %d names\n", AUTH_MAX_MODELS);
        return 2;
    }
    char msg[512];
    if (auth_key_set_models(db, id, all ? NULL : (const char *const *)models, n, msg,
                            sizeof(msg))) {
        fprintf(stderr, "mlx-manager keys models: %s\n", msg);
        return 1;
    }
    return 0;
}

int cli_keys(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *state_dir = NULL;
    int c;
    /* "+": options after the action belong to the action. */
    while ((c = getopt_long(argc, argv, "+c:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 's': state_dir = optarg; break;
        case 'h': keys_usage(stdout); return 0;
        default: keys_usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        keys_usage(stderr);
        return 2;
    }
    static const struct {
        const char *name;
        int (*run)(struct db *db, int argc, char **argv);
    } actions[] = {
        {"create", keys_create},
        {"list", keys_list},
        {"revoke", keys_revoke},
        {"models", keys_models},
    };
    int (*run)(struct db *, int, char **) = NULL;
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (!strcmp(argv[optind], actions[i].name))
            run = actions[i].run;
    if (!run) {
        fprintf(stderr, "mlx-manager keys: unknown action '%s'\n", argv[optind]);
        keys_usage(stderr);
        return 2;
    }

    /* The same config file `make run` hands the daemon. */
    if (!config_path && getenv("MLXM_CONFIG") && *getenv("MLXM_CONFIG"))
        config_path = getenv("MLXM_CONFIG");
    struct config cfg;
    char err[1024];
    int rc = 1;
    if (config_defaults(&cfg)) {
        fprintf(stderr, "mlx-manager keys: out of memory\n");
        return 1;
    }
    if (config_path && config_load_file(&cfg, config_path, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager keys: invalid configuration: %s\n", err);
        goto out;
    }
    if (config_apply_env(&cfg, err, sizeof(err)) ||
        (state_dir && config_set_string(&cfg.state_dir, state_dir))) {
        fprintf(stderr, "mlx-manager keys: %s\n", err);
        goto out;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/mlx-manager.db", cfg.state_dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        fprintf(stderr,
                "mlx-manager keys: no database at %s (start the daemon once, or pass the "
                "--state-dir or --config it uses)\n",
                path);
        goto out;
    }
    fclose(probe);
    struct db db;
    if (db_open(&db, path, err, sizeof(err))) {
        fprintf(stderr, "mlx-manager keys: %s\n", err);
        goto out;
    }
    rc = run(&db, argc - optind, argv + optind);
    db_close(&db);
out:
    config_free(&cfg);
    return rc;
}
