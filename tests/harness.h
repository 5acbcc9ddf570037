/*
 * harness.h - the unit tests' single-header harness.
 *
 * A test file defines `static void test_xxx(void)` functions that use CHECK*
 * macros, lists them in main() with RUN(test_xxx), and returns
 * harness_finish().  Each failed check prints file:line and the expression;
 * harness_finish() prints "N passed, M failed" (one count per RUN, a RUN
 * passes when all of its checks pass) and returns the process exit code.
 * tests/run.sh adds those lines up across all test programs.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int harness_passed, harness_failed, harness_case_failures;
static const char *harness_case_name;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_case_failures++;                                                               \
            fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__,                 \
                    harness_case_name, #cond);                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_case_failures++;                                                               \
            fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed: ", __FILE__, __LINE__,                 \
                    harness_case_name, #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long ha_ = (long long)(a), hb_ = (long long)(b);                                      \
        CHECK_MSG(ha_ == hb_, "%lld != %lld", ha_, hb_);                                           \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *ha_ = (a), *hb_ = (b);                                                         \
        CHECK_MSG(ha_ &&hb_ &&strcmp(ha_, hb_) == 0, "\"%s\" != \"%s\"", ha_ ? ha_ : "(null)",     \
                  hb_ ? hb_ : "(null)");                                                           \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        harness_case_name = #fn;                                                                   \
        harness_case_failures = 0;                                                                 \
        fn();                                                                                      \
        if (harness_case_failures) {                                                               \
            harness_failed++;                                                                      \
            printf("FAIL %s\n", #fn);                                                              \
        } else {                                                                                   \
            harness_passed++;                                                                      \
            printf("ok   %s\n", #fn);                                                              \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

static inline int harness_finish(void)
{
    printf("%d passed, %d failed\n", harness_passed, harness_failed);
    return harness_failed ? 1 : 0;
}

/*
 * Returns the path of ../shared (overridable with MLXM_SHARED), or prints a
 * clear message and exits 1 when it is missing: tests that need the
 * fixtures cannot pass without them.
 */
static inline const char *harness_shared_dir(void)
{
    const char *dir = getenv("MLXM_SHARED");
    if (!dir || !*dir)
        dir = "../shared";
    struct stat st;
    char probe[4096];
    snprintf(probe, sizeof(probe), "%s/fixtures/README.md", dir);
    if (stat(probe, &st) != 0) {
        fprintf(stderr,
                "error: test fixtures not found at %s/fixtures (set MLXM_SHARED "
                "to the shared/ folder that sits beside the repository)\n",
                dir);
        printf("0 passed, 1 failed\n");
        exit(1);
    }
    return dir;
}

#endif
