/* test_arena.c - the per-request bump allocator. */
#include "arena.h"
#include "harness.h"

#include <stdint.h>

static void test_arena_alignment_and_strings(void)
{
    struct arena a;
    arena_init(&a, 64, 0);
    for (int i = 0; i < 100; i++) {
        void *p = arena_alloc(&a, (size_t)i + 1);
        CHECK(p != NULL);
        CHECK(((uintptr_t)p % 16) == 0);
    }
    CHECK_STR_EQ(arena_strdup(&a, "hello"), "hello");
    CHECK_STR_EQ(arena_strndup(&a, "hello", 3), "hel");
    CHECK_STR_EQ(arena_printf(&a, "%d-%s", 42, "x"), "42-x");
    CHECK(arena_strdup(&a, NULL) == NULL);
    arena_free(&a);
}

static void test_arena_large_allocation_gets_own_chunk(void)
{
    struct arena a;
    arena_init(&a, 128, 0);
    char *big = arena_alloc(&a, 100000);
    CHECK(big != NULL);
    memset(big, 'x', 100000);
    char *small = arena_alloc(&a, 8);
    CHECK(small != NULL);
    arena_free(&a);
}

static void test_arena_limit_refuses(void)
{
    struct arena a;
    arena_init(&a, 1024, 4096);
    CHECK(arena_alloc(&a, 1000) != NULL);
    CHECK(arena_alloc(&a, 5000) == NULL);
    CHECK(arena_alloc(&a, SIZE_MAX) == NULL);
    CHECK(arena_calloc(&a, SIZE_MAX / 2, 4) == NULL);
    arena_free(&a);
}

static void test_arena_reset_keeps_one_chunk(void)
{
    struct arena a;
    arena_init(&a, 256, 0);
    for (int i = 0; i < 50; i++)
        CHECK(arena_alloc(&a, 200) != NULL);
    CHECK(a.held > 256);
    arena_reset(&a);
    CHECK(a.held <= 256);
    int *z = arena_calloc(&a, 10, sizeof(int));
    CHECK(z != NULL && z[0] == 0 && z[9] == 0);
    arena_free(&a);
    CHECK(a.held == 0);
}

int main(void)
{
    RUN(test_arena_alignment_and_strings);
    RUN(test_arena_large_allocation_gets_own_chunk);
    RUN(test_arena_limit_refuses);
    RUN(test_arena_reset_keeps_one_chunk);
    return harness_finish();
}
