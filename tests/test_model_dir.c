/* test_model_dir.c - model_dir_resolve: local paths and the Hugging Face cache layout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "model_dir.h"

static char root[256];

static void make_cache(void)
{
    snprintf(root, sizeof(root), "/tmp/mlxm_model_dir_%d", (int)getpid());
    char path[512];
    const char *dirs[] = {"",
                          "/hub",
                          "/hub/models--org--name",
                          "/hub/models--org--name/refs",
                          "/hub/models--org--name/snapshots",
                          "/hub/models--org--name/snapshots/abc123"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
        mkdir(path, 0755);
    }
    snprintf(path, sizeof(path), "%s/hub/models--org--name/refs/main", root);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("abc123\n", f);
        fclose(f);
    }
    setenv("HF_HOME", root, 1);
}

static void test_local_dir(void)
{
    char out[512], err[256];
    CHECK_INT_EQ(model_dir_resolve("tests", out, sizeof(out), err, sizeof(err)), ST_OK);
    CHECK_STR_EQ(out, "tests");
    CHECK_INT_EQ(model_dir_resolve("", out, sizeof(out), err, sizeof(err)), ST_ERR_INVALID);
    CHECK_INT_EQ(model_dir_resolve("tests", out, 3, err, sizeof(err)), ST_ERR_RANGE);
}

static void test_hub_id(void)
{
    char out[512], err[256], want[512];
    CHECK_INT_EQ(model_dir_resolve("org/name", out, sizeof(out), err, sizeof(err)), ST_OK);
    snprintf(want, sizeof(want), "%s/hub/models--org--name/snapshots/abc123", root);
    CHECK_STR_EQ(out, want);
    CHECK_INT_EQ(model_dir_resolve("org/missing", out, sizeof(out), err, sizeof(err)),
                 ST_ERR_NOT_FOUND);
    CHECK(strstr(err, "org/missing") != NULL);
    CHECK_INT_EQ(model_dir_resolve("../etc", out, sizeof(out), err, sizeof(err)), ST_ERR_NOT_FOUND);
    CHECK_INT_EQ(model_dir_resolve("a/b/c", out, sizeof(out), err, sizeof(err)), ST_ERR_NOT_FOUND);
}

int main(void)
{
    make_cache();
    RUN(test_local_dir);
    RUN(test_hub_id);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", root);
    return harness_finish();
}
