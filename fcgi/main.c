/*
 * main.c - entry point of `mlx-manager`: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "version.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct subcommand subcommands[] = {
    {"serve", cli_serve, "run the daemon (FastCGI server behind nginx)"},
    {"generate", cli_generate, "generate text from a model (greedy by default)"},
    {"tokenize", cli_tokenize, "text on stdin -> JSON array of token ids"},
    {"detokenize", cli_detokenize, "JSON array of token ids on stdin -> text"},
    {"render", cli_render, "chat request JSON on stdin -> the model's chat-template prompt"},
    {"mkmodel", cli_mkmodel, "write a random-weight test model (llama/qwen2/qwen3, float or MLX)"},
    {"pull", cli_pull, "download ORG/NAME from the Hugging Face Hub into the cache (resumable)"},
    {"ls", cli_ls, "list the models in the Hugging Face cache"},
    {"service", cli_service, "systemd user units: print, verify, install, uninstall, status"},
    {"keys", cli_keys, "API keys: create NAME [--scopes] [--models], list, revoke ID, models ID"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mlx-manager <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        fprintf(out, "  %-12s %s\n", subcommands[i].name, subcommands[i].help);
    fprintf(out, "\nrun `mlx-manager <command> --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("mlx-manager %s\n", MLXM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "mlx-manager: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
