/*
 * fuzz_safetensors.c - libFuzzer target: the input bytes are a whole
 * safetensors file.  Parsing must never crash, and whatever is accepted must
 * describe tensors that lie inside the buffer; every accepted tensor is
 * touched so ASan sees any out-of-range offset.
 */
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct safetensors *st = NULL;
    char err[256];
    if (safetensors_parse(data, size, "fuzz", &st, err, sizeof(err)) != ST_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const struct safetensors_tensor *t = safetensors_at(st, i);
        const uint8_t *p = safetensors_data(st, t);
        if (t->end > t->begin) {
            sink ^= p[0];
            sink ^= p[t->end - t->begin - 1];
        }
        if (safetensors_find(st, t->name) != t)
            __builtin_trap();
    }
    (void)sink;
    (void)safetensors_metadata(st, "format");
    safetensors_close(st);
    return 0;
}
