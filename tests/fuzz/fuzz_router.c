/* fuzz_router.c - route matching on arbitrary paths must never crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = malloc(size + 1);
    if (!path)
        return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    const struct route *found;
    struct route_params params;
    char allow[128];
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    for (size_t i = 0; i < 4; i++)
        router_match(routes, routes_count, methods[i], path, &found, &params, allow,
                     sizeof(allow));
    free(path);
    return 0;
}
