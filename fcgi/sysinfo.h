/*
 * sysinfo.h - facts about the machine the daemon runs on: memory (from
 * /proc/meminfo), CPU model and SIMD features, OS and kernel, and the
 * versions of the libraries the daemon is linked with.  Thread-safe.
 */
#ifndef FCGI_SYSINFO_H
#define FCGI_SYSINFO_H

#include <cJSON.h>

struct sysinfo_memory {
    unsigned long long total_bytes;
    unsigned long long available_bytes;
};

/* Reads /proc/meminfo; returns 0 or -1. */
int sysinfo_memory_read(struct sysinfo_memory *out);

/* Adds os, kernel, cpu, memory and library versions to `obj`; 0 or -1. */
int sysinfo_describe(cJSON *obj);

#endif
