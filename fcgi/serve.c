/* serve.c - placeholder replaced below */
#include "cli.h"
int cli_serve(int argc, char **argv) { (void)argc; (void)argv; return 1; }
