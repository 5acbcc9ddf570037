#include "sysinfo.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <utf8proc.h>
#include <yaml.h>

#include "kernels.h"
#include "version.h"

int sysinfo_memory_read(struct sysinfo_memory *out)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    int found = 0;
    out->total_bytes = out->available_bytes = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
            out->total_bytes = kb * 1024;
            found |= 1;
        } else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            out->available_bytes = kb * 1024;
            found |= 2;
        }
    }
    fclose(f);
    return found == 3 ? 0 : -1;
}

/* "PRETTY_NAME" from /etc/os-release, or the kernel name. */
static void sysinfo_os_name(char *buf, size_t len, const char *fallback)
{
    snprintf(buf, len, "%s", fallback);
    FILE *f = fopen("/etc/os-release", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PRETTY_NAME=", 12))
            continue;
        char *v = line + 12;
        v[strcspn(v, "\n")] = '\0';
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
            v[n - 1] = '\0';
            v++;
        }
        snprintf(buf, len, "%s", v);
        break;
    }
    fclose(f);
}

static void sysinfo_cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10))
            continue;
        char *colon = strchr(line, ':');
        if (colon) {
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(buf, len, "%s", v);
        }
        break;
    }
    fclose(f);
}

static void sysinfo_add_simd(cJSON *cpu)
{
    cJSON *simd = cJSON_AddArrayToObject(cpu, "simd");
    if (!simd)
        return;
#if defined(__x86_64__)
    __builtin_cpu_init();
#define SIMD_FEATURE(s)                                                                            \
    if (__builtin_cpu_supports(s))                                                                 \
        cJSON_AddItemToArray(simd, cJSON_CreateString(s));
    SIMD_FEATURE("sse4.2")
    SIMD_FEATURE("avx")
    SIMD_FEATURE("avx2")
    SIMD_FEATURE("fma")
    SIMD_FEATURE("avx512f")
    SIMD_FEATURE("avx512bw")
    SIMD_FEATURE("avx512vl")
    SIMD_FEATURE("avx512vnni")
    SIMD_FEATURE("avx512bf16")
#undef SIMD_FEATURE
#elif defined(__aarch64__)
    cJSON_AddItemToArray(simd, cJSON_CreateString("neon"));
#endif
}

int sysinfo_describe(cJSON *obj)
{
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    char os[256], cpu_model[256];
    sysinfo_os_name(os, sizeof(os), u.sysname);
    sysinfo_cpu_model(cpu_model, sizeof(cpu_model));

    cJSON_AddStringToObject(obj, "os", os);
    cJSON_AddStringToObject(obj, "kernel", u.release);
    cJSON_AddStringToObject(obj, "architecture", u.machine);
    cJSON_AddStringToObject(obj, "hostname", u.nodename);

    cJSON *cpu = cJSON_AddObjectToObject(obj, "cpu");
    if (!cpu)
        return -1;
    cJSON_AddStringToObject(cpu, "model", cpu_model);
    cJSON_AddNumberToObject(cpu, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    sysinfo_add_simd(cpu);
    /* what the engine's kernels use of them (AMX only where Linux grants it) */
    cJSON_AddStringToObject(cpu, "kernels", kernel_isa_name(kernel_isa_get()));

    struct sysinfo_memory mem;
    if (sysinfo_memory_read(&mem) == 0)
        cJSON_AddNumberToObject(obj, "memory_total_bytes", (double)mem.total_bytes);

    cJSON *v = cJSON_AddObjectToObject(obj, "versions");
    if (!v)
        return -1;
    char buf[64];
    cJSON_AddStringToObject(v, "mlx-manager", MLXM_VERSION);
    cJSON_AddStringToObject(v, "sqlite", sqlite3_libversion());
    cJSON_AddStringToObject(v, "cjson", cJSON_Version());
    cJSON_AddStringToObject(v, "libyaml", yaml_get_version_string());
    cJSON_AddStringToObject(v, "libcurl", curl_version_info(CURLVERSION_NOW)->version);
    pcre2_config(PCRE2_CONFIG_VERSION, buf);
    cJSON_AddStringToObject(v, "pcre2", buf);
    cJSON_AddStringToObject(v, "utf8proc", utf8proc_version());
    cJSON_AddStringToObject(v, "openssl", OpenSSL_version(OPENSSL_VERSION));
    snprintf(buf, sizeof(buf), "%d.%d.%d", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
    cJSON_AddStringToObject(v, "compiler", buf);
    return 0;
}
