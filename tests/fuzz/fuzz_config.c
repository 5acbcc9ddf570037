/* fuzz_config.c - the YAML configuration parser must reject, never crash. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    if (config_defaults(&cfg))
        return 0;
    char err[512];
    config_load_string(&cfg, "fuzz.yaml", (const char *)data, size, err, sizeof(err));
    config_free(&cfg);
    return 0;
}
