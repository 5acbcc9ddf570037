/* test_router.c - route matching, captures, 404 vs 405. */
#include "harness.h"
#include "router.h"

static int h_list(struct http_request *r)
{
    (void)r;
    return 1;
}
static int h_get(struct http_request *r)
{
    (void)r;
    return 2;
}
static int h_put(struct http_request *r)
{
    (void)r;
    return 3;
}
static int h_next(struct http_request *r)
{
    (void)r;
    return 4;
}
static int h_dup(struct http_request *r)
{
    (void)r;
    return 5;
}
static int h_model(struct http_request *r)
{
    (void)r;
    return 6;
}

static const struct route table[] = {
    {"GET", "/api/profiles", h_list},
    {"GET", "/api/profiles/next-port", h_next},
    {"GET", "/api/profiles/{id}", h_get},
    {"PUT", "/api/profiles/{id}", h_put},
    {"POST", "/api/profiles/{id}/duplicate", h_dup},
    {"DELETE", "/api/models/{org}/{name}", h_model},
};
#define N (sizeof(table) / sizeof(table[0]))

static enum router_result match(const char *method, const char *path, const struct route **r,
                                struct route_params *p, char *allow)
{
    return router_match(table, N, method, path, r, p, allow, 64);
}

static void test_router_literal_and_capture(void)
{
    const struct route *r = NULL;
    struct route_params p;
    char allow[64];
    CHECK(match("GET", "/api/profiles", &r, &p, allow) == ROUTER_FOUND);
    CHECK(r && r->handler == h_list);
    CHECK(match("GET", "/api/profiles/", &r, &p, allow) == ROUTER_FOUND);
    CHECK(match("GET", "/api/profiles/next-port", &r, &p, allow) == ROUTER_FOUND);
    CHECK(r->handler == h_next);
    CHECK(match("GET", "/api/profiles/42", &r, &p, allow) == ROUTER_FOUND);
    CHECK(r->handler == h_get);
    CHECK_STR_EQ(route_param(&p, "id"), "42");
    CHECK(route_param(&p, "nope") == NULL);
    CHECK(match("POST", "/api/profiles/7/duplicate", &r, &p, allow) == ROUTER_FOUND);
    CHECK_STR_EQ(route_param(&p, "id"), "7");
    CHECK(match("DELETE", "/api/models/mlx-community/Qwen3-0.6B-4bit", &r, &p, allow) ==
          ROUTER_FOUND);
    CHECK_STR_EQ(route_param(&p, "org"), "mlx-community");
    CHECK_STR_EQ(route_param(&p, "name"), "Qwen3-0.6B-4bit");
}

static void test_router_percent_decoding(void)
{
    const struct route *r = NULL;
    struct route_params p;
    char allow[64];
    CHECK(match("GET", "/api/profiles/a%20b", &r, &p, allow) == ROUTER_FOUND);
    CHECK_STR_EQ(route_param(&p, "id"), "a b");
    /* Malformed escapes and NUL bytes never match. */
    CHECK(match("GET", "/api/profiles/a%2", &r, &p, allow) == ROUTER_NOT_FOUND);
    CHECK(match("GET", "/api/profiles/a%zz", &r, &p, allow) == ROUTER_NOT_FOUND);
    CHECK(match("GET", "/api/profiles/a%00b", &r, &p, allow) == ROUTER_NOT_FOUND);
}

static void test_router_not_found_and_method(void)
{
    const struct route *r = NULL;
    struct route_params p;
    char allow[64];
    CHECK(match("GET", "/api/nothing", &r, &p, allow) == ROUTER_NOT_FOUND);
    CHECK(match("GET", "/api/profiles/1/2", &r, &p, allow) == ROUTER_NOT_FOUND);
    CHECK(match("GET", "/api/profiles//duplicate", &r, &p, allow) == ROUTER_NOT_FOUND);
    CHECK(match("GET", "/api/profilesX", &r, &p, allow) == ROUTER_NOT_FOUND);
    CHECK(match("GET", "", &r, &p, allow) == ROUTER_NOT_FOUND);
    CHECK(match("DELETE", "/api/profiles/3", &r, &p, allow) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR_EQ(allow, "GET, PUT");
    CHECK(match("GET", "/api/profiles/3/duplicate", &r, &p, allow) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR_EQ(allow, "POST");
}

static void test_router_long_segment_rejected(void)
{
    char path[2048] = "/api/profiles/";
    memset(path + strlen(path), 'x', 1500);
    path[14 + 1500] = '\0';
    const struct route *r = NULL;
    struct route_params p;
    char allow[64];
    CHECK(match("GET", path, &r, &p, allow) == ROUTER_NOT_FOUND);
}

int main(void)
{
    RUN(test_router_literal_and_capture);
    RUN(test_router_percent_decoding);
    RUN(test_router_not_found_and_method);
    RUN(test_router_long_segment_rejected);
    return harness_finish();
}
