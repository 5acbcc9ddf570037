/*
 * cli.h - the subcommands of the one `mlx-manager` binary.
 *
 * Each subcommand is `int cli_<name>(int argc, char **argv)`, where argv[0]
 * is the subcommand's own name; it returns the process exit status (0 ok,
 * 1 runtime failure, 2 usage error).  main.c holds the table that maps names
 * to these functions.  Only main() exits.
 */
#ifndef FCGI_CLI_H
#define FCGI_CLI_H

int cli_serve(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_detokenize(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_mkmodel(int argc, char **argv);
int cli_render(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_ls(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_service(int argc, char **argv);

#endif
