/* test_router.c — the action route table: static and dynamic matching, precedence rules,
 * parameter spans, registration refusals, and hostile paths (huge, encoded slashes, NUL bytes,
 * trailing slashes, empty segments). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "router.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static void add_ok(kx_router_t *r, const char *method, const char *route, int id)
{
    char err[256] = "";
    int rc = kx_router_add(r, method, route, id, err, sizeof err);
    if (rc != KX_OK) fail_msg("add %s %s refused: %s", method, route, err);
}

/* Registration must fail with KX_EINVAL and a non-empty message. */
static void add_refused(kx_router_t *r, const char *method, const char *route, char *err, size_t errcap)
{
    err[0] = '\0';
    int rc = kx_router_add(r, method, route, 1, err, errcap);
    if (rc != KX_EINVAL) fail_msg("add %s \"%s\" returned %d, expected KX_EINVAL", method, route, rc);
    assert_true(strlen(err) > 0);
}

/* Matches a NUL-terminated method and path; returns the rc. */
static int match(const kx_router_t *r, const char *method, const char *path, int *id,
                 kx_route_param_t *params, int *np)
{
    return kx_router_match(r, method, strlen(method), path, strlen(path), id, params, np);
}

static int match_id(const kx_router_t *r, const char *method, const char *path)
{
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = -12345, np = -1;
    int rc = match(r, method, path, &id, params, &np);
    if (rc == KX_ENOTFOUND) {
        assert_int_equal(np, 0);
        return -1;
    }
    assert_int_equal(rc, KX_OK);
    return id;
}

static void assert_param(const kx_route_param_t *p, const char *name, const char *value)
{
    assert_int_equal(p->name_len, strlen(name));
    assert_memory_equal(p->name, name, p->name_len);
    assert_int_equal(p->value_len, strlen(value));
    assert_memory_equal(p->value, value, p->value_len);
}

static int setup_router(void **state)
{
    *state = kx_router_new();
    return *state ? 0 : -1;
}

static int teardown_router(void **state)
{
    kx_router_free(*state);
    return 0;
}

/* ---- matching ----------------------------------------------------------------------------- */

static void test_static_routes(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/status", 1);
    add_ok(r, "POST", "/status", 2);
    add_ok(r, "GET", "/a/b/c", 3);
    add_ok(r, "DELETE", "/a/b", 4);

    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = -1;
    assert_int_equal(match(r, "GET", "/status", &id, params, &np), KX_OK);
    assert_int_equal(id, 1);
    assert_int_equal(np, 0);
    assert_int_equal(match_id(r, "POST", "/status"), 2);
    assert_int_equal(match_id(r, "GET", "/a/b/c"), 3);
    assert_int_equal(match_id(r, "DELETE", "/a/b"), 4);

    /* Exact match only: prefixes, extensions, case and encodings are different paths. */
    assert_int_equal(match_id(r, "GET", "/statu"), -1);
    assert_int_equal(match_id(r, "GET", "/statuses"), -1);
    assert_int_equal(match_id(r, "GET", "/STATUS"), -1);
    assert_int_equal(match_id(r, "GET", "/%73tatus"), -1);
    assert_int_equal(match_id(r, "GET", "/a/b"), -1);
    assert_int_equal(match_id(r, "GET", "/a/b/c/d"), -1);
    assert_int_equal(match_id(r, "GET", "status"), -1);
    assert_int_equal(match_id(r, "GET", ""), -1);
}

static void test_static_trailing_slash_and_extra(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/status", 1);
    assert_int_equal(match_id(r, "GET", "/status/"), -1);
    assert_int_equal(match_id(r, "GET", "/status//"), -1);
    assert_int_equal(match_id(r, "GET", "//status"), -1);
    assert_int_equal(match_id(r, "GET", "/status/x"), -1);
}

static void test_root_route(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/", 9);
    assert_int_equal(match_id(r, "GET", "/"), 9);
    assert_int_equal(match_id(r, "HEAD", "/"), 9);
    assert_int_equal(match_id(r, "GET", "//"), -1);
    assert_int_equal(match_id(r, "GET", "/x"), -1);
    assert_int_equal(match_id(r, "POST", "/"), -1);
}

static void test_root_not_matched_by_param_route(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/:id", 5);
    assert_int_equal(match_id(r, "GET", "/"), -1);
    assert_int_equal(match_id(r, "GET", "/x"), 5);
    assert_int_equal(match_id(r, "GET", "/x/"), -1);
}

static void test_head_matches_get(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/s", 1);
    add_ok(r, "GET", "/d/:x", 2);
    add_ok(r, "POST", "/p", 3);
    assert_int_equal(match_id(r, "HEAD", "/s"), 1);
    assert_int_equal(match_id(r, "HEAD", "/d/1"), 2);
    /* HEAD only falls back to GET, never to another method. */
    assert_int_equal(match_id(r, "HEAD", "/p"), -1);
    /* GET does not fall back to HEAD. */
    kx_router_t *r2 = kx_router_new();
    add_ok(r2, "HEAD", "/h", 7);
    assert_int_equal(match_id(r2, "HEAD", "/h"), 7);
    assert_int_equal(match_id(r2, "GET", "/h"), -1);
    kx_router_free(r2);
}

static void test_method_mismatch(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/s", 1);
    add_ok(r, "PUT", "/d/:x", 2);
    assert_int_equal(match_id(r, "POST", "/s"), -1);
    assert_int_equal(match_id(r, "PUT", "/s"), -1);
    assert_int_equal(match_id(r, "GET", "/d/1"), -1);
    assert_int_equal(match_id(r, "OPTIONS", "/s"), -1);
    /* Methods are case-sensitive and must match in full. */
    assert_int_equal(match_id(r, "get", "/s"), -1);
    assert_int_equal(match_id(r, "Get", "/s"), -1);
    assert_int_equal(match_id(r, "GE", "/s"), -1);
    assert_int_equal(match_id(r, "GETS", "/s"), -1);
    assert_int_equal(match_id(r, "", "/s"), -1);
    assert_int_equal(match_id(r, "head", "/s"), -1);
    assert_int_equal(match_id(r, "put", "/d/1"), -1);
}

/* The method is a counted string: bytes past mlen are not part of it. */
static void test_method_counted(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/s", 1);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    assert_int_equal(kx_router_match(r, "GETXYZ", 3, "/s", 2, &id, params, &np), KX_OK);
    assert_int_equal(id, 1);
    assert_int_equal(kx_router_match(r, "GET", 2, "/s", 2, &id, params, &np), KX_ENOTFOUND);
    assert_int_equal(kx_router_match(r, "HEADER", 4, "/s", 2, &id, params, &np), KX_OK);
    /* The path too: "/s" counted out of "/sx". */
    assert_int_equal(kx_router_match(r, "GET", 3, "/sx", 2, &id, params, &np), KX_OK);
    assert_int_equal(kx_router_match(r, "GET", 3, "/sx", 3, &id, params, &np), KX_ENOTFOUND);
}

static void test_dynamic_single_param(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/user/:id", 11);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = -1;
    const char *path = "/user/42";
    assert_int_equal(match(r, "GET", path, &id, params, &np), KX_OK);
    assert_int_equal(id, 11);
    assert_int_equal(np, 1);
    assert_param(&params[0], "id", "42");
    /* The value is a span into the request path, not a copy. */
    assert_ptr_equal(params[0].value, path + 6);

    assert_int_equal(match(r, "GET", "/user/some-thing_with.dots~", &id, params, &np), KX_OK);
    assert_param(&params[0], "id", "some-thing_with.dots~");
}

static void test_dynamic_empty_segment_and_slashes(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/user/:id", 11);
    assert_int_equal(match_id(r, "GET", "/user/"), -1); /* empty segment */
    assert_int_equal(match_id(r, "GET", "/user"), -1);  /* missing segment */
    assert_int_equal(match_id(r, "GET", "/user//"), -1);
    assert_int_equal(match_id(r, "GET", "/user/1/"), -1);  /* trailing slash */
    assert_int_equal(match_id(r, "GET", "/user/1/x"), -1); /* extra segment */
    assert_int_equal(match_id(r, "GET", "/user/1//"), -1);
    assert_int_equal(match_id(r, "GET", "//user/1"), -1);
    assert_int_equal(match_id(r, "GET", "/users/1"), -1);
    assert_int_equal(match_id(r, "GET", "/use/1"), -1);
    assert_int_equal(match_id(r, "GET", "/USER/1"), -1);
    assert_int_equal(match_id(r, "GET", "user/1"), -1);
}

static void test_dynamic_two_params(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/a/:x/b/:y", 3);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = -1;
    const char *path = "/a/first/b/second";
    assert_int_equal(match(r, "GET", path, &id, params, &np), KX_OK);
    assert_int_equal(id, 3);
    assert_int_equal(np, 2);
    assert_param(&params[0], "x", "first");
    assert_param(&params[1], "y", "second");
    assert_ptr_equal(params[0].value, path + 3);
    assert_ptr_equal(params[1].value, path + 11);

    assert_int_equal(match_id(r, "GET", "/a/1/c/2"), -1);
    assert_int_equal(match_id(r, "GET", "/a/1/b/"), -1);
    assert_int_equal(match_id(r, "GET", "/a//b/2"), -1);
    assert_int_equal(match_id(r, "GET", "/a/1/b"), -1);
    assert_int_equal(match_id(r, "GET", "/a/1/b/2/3"), -1);
    assert_int_equal(match_id(r, "GET", "/a/1/b/2/"), -1);
}

/* Values are raw: no percent-decoding, and an encoded slash is not a separator. */
static void test_encoded_slash_not_split(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/user/:id", 1);
    add_ok(r, "GET", "/a/:x/b/:y", 2);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    assert_int_equal(match(r, "GET", "/user/a%2Fb", &id, params, &np), KX_OK);
    assert_int_equal(id, 1);
    assert_int_equal(np, 1);
    assert_param(&params[0], "id", "a%2Fb");
    assert_int_equal(match(r, "GET", "/user/a%2fb%2F..%2F", &id, params, &np), KX_OK);
    assert_param(&params[0], "id", "a%2fb%2F..%2F");
    /* "%2F" does not turn one segment into two. */
    assert_int_equal(match_id(r, "GET", "/a/1%2Fb/2"), -1);
    assert_int_equal(match(r, "GET", "/a/%2F/b/%20", &id, params, &np), KX_OK);
    assert_int_equal(id, 2);
    assert_param(&params[0], "x", "%2F");
    assert_param(&params[1], "y", "%20");
}

static void test_nul_byte_in_path(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/user/a", 1);
    add_ok(r, "GET", "/p/:v", 2);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    /* "/user/a\0" is 8 bytes: not the 7-byte static route. */
    assert_int_equal(kx_router_match(r, "GET", 3, "/user/a\0", 8, &id, params, &np), KX_ENOTFOUND);
    /* A NUL inside a param value is kept as raw bytes, not a terminator. */
    assert_int_equal(kx_router_match(r, "GET", 3, "/p/a\0b", 6, &id, params, &np), KX_OK);
    assert_int_equal(id, 2);
    assert_int_equal(params[0].value_len, 3);
    assert_memory_equal(params[0].value, "a\0b", 3);
}

static void test_static_beats_dynamic_any_order(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        kx_router_t *r = kx_router_new();
        if (order == 0) {
            add_ok(r, "GET", "/user/:id", 1);
            add_ok(r, "GET", "/user/me", 2);
        } else {
            add_ok(r, "GET", "/user/me", 2);
            add_ok(r, "GET", "/user/:id", 1);
        }
        kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
        int id = 0, np = -1;
        assert_int_equal(match(r, "GET", "/user/me", &id, params, &np), KX_OK);
        assert_int_equal(id, 2);
        assert_int_equal(np, 0);
        assert_int_equal(match_id(r, "HEAD", "/user/me"), 2);
        assert_int_equal(match_id(r, "GET", "/user/mee"), 1);
        assert_int_equal(match_id(r, "GET", "/user/m"), 1);
        kx_router_free(r);
    }
}

/* A static route for another method does not shadow a dynamic one for this method. */
static void test_static_other_method_does_not_shadow(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "POST", "/user/me", 1);
    add_ok(r, "GET", "/user/:id", 2);
    assert_int_equal(match_id(r, "GET", "/user/me"), 2);
    assert_int_equal(match_id(r, "POST", "/user/me"), 1);
    assert_int_equal(match_id(r, "POST", "/user/x"), -1);
}

static void test_first_dynamic_wins(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        kx_router_t *r = kx_router_new();
        /* Both match "/a/b"; whichever was registered first wins. */
        if (order == 0) {
            add_ok(r, "GET", "/a/:x", 1);
            add_ok(r, "GET", "/:y/b", 2);
        } else {
            add_ok(r, "GET", "/:y/b", 2);
            add_ok(r, "GET", "/a/:x", 1);
        }
        kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
        int id = 0, np = 0;
        assert_int_equal(match(r, "GET", "/a/b", &id, params, &np), KX_OK);
        assert_int_equal(np, 1);
        if (order == 0) {
            assert_int_equal(id, 1);
            assert_param(&params[0], "x", "b");
        } else {
            assert_int_equal(id, 2);
            assert_param(&params[0], "y", "a");
        }
        /* Paths only one of them matches go to that one. */
        assert_int_equal(match_id(r, "GET", "/a/c"), 1);
        assert_int_equal(match_id(r, "GET", "/c/b"), 2);
        kx_router_free(r);
    }
}

/* A dynamic route that fails part-way must not leave its params in the result of the route
 * that matches next. */
static void test_params_after_partial_failure(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/a/:x/c", 1);
    add_ok(r, "GET", "/:y/b/d", 2);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    assert_int_equal(match(r, "GET", "/a/b/d", &id, params, &np), KX_OK);
    assert_int_equal(id, 2);
    assert_int_equal(np, 1);
    assert_param(&params[0], "y", "a");
}

static void test_many_routes(void **state)
{
    kx_router_t *r = *state;
    char route[64];
    for (int i = 0; i < 300; i++) {
        snprintf(route, sizeof route, i % 2 ? "/r%d/:p" : "/r%d", i);
        add_ok(r, i % 3 ? "GET" : "POST", route, 1000 + i);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(route, sizeof route, i % 2 ? "/r%d/v" : "/r%d", i);
        assert_int_equal(match_id(r, i % 3 ? "GET" : "POST", route), 1000 + i);
        assert_int_equal(match_id(r, i % 3 ? "POST" : "PUT", route), -1);
    }
}

/* ---- params limit ------------------------------------------------------------------------- */

static void build_param_route(char *route, size_t cap, int nparams, char *path, size_t pcap)
{
    size_t rl = 0, pl = 0;
    for (int i = 0; i < nparams; i++) {
        rl += (size_t)snprintf(route + rl, cap - rl, "/:p%d", i);
        pl += (size_t)snprintf(path + pl, pcap - pl, "/v%d", i);
    }
}

static void test_sixteen_params(void **state)
{
    kx_router_t *r = *state;
    char route[256], path[256];
    build_param_route(route, sizeof route, KX_ROUTE_MAX_PARAMS, path, sizeof path);
    add_ok(r, "GET", route, 16);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    assert_int_equal(match(r, "GET", path, &id, params, &np), KX_OK);
    assert_int_equal(id, 16);
    assert_int_equal(np, KX_ROUTE_MAX_PARAMS);
    for (int i = 0; i < KX_ROUTE_MAX_PARAMS; i++) {
        char n[16], v[16];
        snprintf(n, sizeof n, "p%d", i);
        snprintf(v, sizeof v, "v%d", i);
        assert_param(&params[i], n, v);
    }
}

/* A 17-param route must never write past the caller's KX_ROUTE_MAX_PARAMS array (checked by
 * the sanitizer build: params is exactly 16 long). */
static void test_seventeen_params_no_overflow(void **state)
{
    kx_router_t *r = *state;
    char route[256], path[256], err[256];
    build_param_route(route, sizeof route, KX_ROUTE_MAX_PARAMS + 1, path, sizeof path);
    int rc = kx_router_add(r, "GET", route, 17, err, sizeof err);
    kx_route_param_t *params = malloc(sizeof(kx_route_param_t) * KX_ROUTE_MAX_PARAMS);
    assert_non_null(params);
    int id = 0, np = 0;
    int mrc = match(r, "GET", path, &id, params, &np);
    /* Either the route was refused or it cannot match; never 17 params. */
    assert_int_equal(mrc, KX_ENOTFOUND);
    assert_true(np <= KX_ROUTE_MAX_PARAMS);
    (void)rc;
    free(params);
}

/* A route with more than KX_ROUTE_MAX_PARAMS (16) parameters could never match: it is refused
 * at boot with a message instead of being silently unreachable. A *rest segment counts. */
static void test_seventeen_params_refused(void **state)
{
    kx_router_t *r = *state;
    char route[256], path[256], err[256];
    build_param_route(route, sizeof route, KX_ROUTE_MAX_PARAMS + 1, path, sizeof path);
    add_refused(r, "GET", route, err, sizeof err);
    build_param_route(route, sizeof route, KX_ROUTE_MAX_PARAMS, path, sizeof path);
    strcat(route, "/*rest");
    add_refused(r, "GET", route, err, sizeof err);
}

/* 10,000 routes, static and parameterised, each matched to its own id (the hash and the tree
 * must not mix them up), and routes that differ only past a shared prefix. */
static void test_ten_thousand_routes(void **state)
{
    kx_router_t *r = *state;
    char route[96], path[96];
    for (int i = 0; i < 10000; i++) {
        if (i % 2) snprintf(route, sizeof route, "/items%d/:id/detail", i);
        else snprintf(route, sizeof route, "/group/%d/item", i);
        add_ok(r, "GET", route, i);
    }
    for (int i = 0; i < 10000; i++) {
        if (i % 2) snprintf(path, sizeof path, "/items%d/x%d/detail", i, i);
        else snprintf(path, sizeof path, "/group/%d/item", i);
        assert_int_equal(match_id(r, "GET", path), i);
        assert_int_equal(match_id(r, "POST", path), -1);
    }
    assert_int_equal(match_id(r, "GET", "/items1/x/other"), -1);
    assert_int_equal(match_id(r, "GET", "/group/10001/item"), -1);
}

/* The tree tries a literal child first and falls back to the parameter child when the literal
 * branch dies deeper down. */
static void test_literal_branch_falls_back_to_param(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/a/b/:x/z", 1);
    add_ok(r, "GET", "/a/:y/c/d", 2);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    assert_int_equal(match(r, "GET", "/a/b/c/d", &id, params, &np), KX_OK);
    assert_int_equal(id, 2);
    assert_param(&params[0], "y", "b");
    assert_int_equal(match(r, "GET", "/a/b/q/z", &id, params, &np), KX_OK);
    assert_int_equal(id, 1);
    assert_param(&params[0], "x", "q");
    assert_int_equal(match(r, "HEAD", "/a/b/q/z", &id, params, &np), KX_OK);
    assert_int_equal(id, 1);
}

/* Two parameterised routes of the same shape would shadow each other: the second is refused
 * whatever its parameter names. */
static void test_same_shape_refused(void **state)
{
    kx_router_t *r = *state;
    char err[256];
    add_ok(r, "GET", "/u/:id", 1);
    add_refused(r, "GET", "/u/:name", err, sizeof err);
    assert_non_null(strstr(err, "duplicate route"));
    add_ok(r, "POST", "/u/:name", 2);
}

/* ---- hostile paths ------------------------------------------------------------------------ */

static void test_huge_path(void **state)
{
    kx_router_t *r = *state;
    add_ok(r, "GET", "/:id", 1);
    add_ok(r, "GET", "/a/:x/b/:y", 2);
    add_ok(r, "GET", "/static", 3);
    size_t n = 10000;
    char *path = malloc(n + 1);
    assert_non_null(path);

    /* One 9,999-byte segment: matches "/:id" with the whole segment as value. */
    path[0] = '/';
    memset(path + 1, 'x', n - 1);
    path[n] = '\0';
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    assert_int_equal(kx_router_match(r, "GET", 3, path, n, &id, params, &np), KX_OK);
    assert_int_equal(id, 1);
    assert_int_equal(np, 1);
    assert_int_equal(params[0].value_len, n - 1);
    assert_ptr_equal(params[0].value, path + 1);

    /* 5,000 one-byte segments ("/a/a/a..."): no route has that many. */
    for (size_t i = 0; i < n; i += 2) {
        path[i] = '/';
        path[i + 1] = 'a';
    }
    assert_int_equal(kx_router_match(r, "GET", 3, path, n, &id, params, &np), KX_ENOTFOUND);
    assert_int_equal(np, 0);

    /* All slashes. */
    memset(path, '/', n);
    assert_int_equal(kx_router_match(r, "GET", 3, path, n, &id, params, &np), KX_ENOTFOUND);
    free(path);
}

/* ---- registration refusals ---------------------------------------------------------------- */

static void test_duplicate_refused(void **state)
{
    kx_router_t *r = *state;
    char err[256];
    add_ok(r, "GET", "/status", 1);
    add_ok(r, "GET", "/user/:id", 2);
    add_refused(r, "GET", "/status", err, sizeof err);
    assert_non_null(strstr(err, "duplicate"));
    assert_non_null(strstr(err, "/status"));
    add_refused(r, "GET", "/user/:id", err, sizeof err);
    assert_non_null(strstr(err, "/user/:id"));
    /* The original registrations still answer. */
    assert_int_equal(match_id(r, "GET", "/status"), 1);
    assert_int_equal(match_id(r, "GET", "/user/7"), 2);
    /* Same path, other method: not a duplicate. */
    add_ok(r, "POST", "/status", 3);
    assert_int_equal(match_id(r, "POST", "/status"), 3);
    assert_int_equal(match_id(r, "GET", "/status"), 1);
}

static void test_invalid_routes(void **state)
{
    kx_router_t *r = *state;
    char err[256];
    static const char *bad[] = {
        "",     "user",  "user/:id", " /user", "/a//b", "//",   "/a/",    "/user/", "/:",
        "/a/:", "/:a-b", "/:a.b",    "/:a b",  "/:a:b", "/::a", "/x/:/y", "/:é",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        add_refused(r, "GET", bad[i], err, sizeof err);
        if (bad[i][0] && !strstr(err, bad[i]))
            fail_msg("message for \"%s\" does not name it: %s", bad[i], err);
    }
    /* Nothing was registered by the refused calls. */
    assert_int_equal(match_id(r, "GET", "/a/b"), -1);
    assert_int_equal(match_id(r, "GET", "/x"), -1);
    assert_int_equal(match_id(r, "GET", "/user"), -1);
    /* The names allowed by the contract: [A-Za-z0-9_]+. */
    add_ok(r, "GET", "/:aZ09_", 1);
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int id = 0, np = 0;
    assert_int_equal(match(r, "GET", "/v", &id, params, &np), KX_OK);
    assert_param(&params[0], "aZ09_", "v");
}

static void test_too_many_segments(void **state)
{
    kx_router_t *r = *state;
    char err[256], route[512];
    size_t n = 0;
    for (int i = 0; i < 200; i++) n += (size_t)snprintf(route + n, sizeof route - n, "/s");
    add_refused(r, "GET", route, err, sizeof err);
    /* A route with a handful of static segments is fine. */
    add_ok(r, "GET", "/s/s/s/s/s/s/s/s", 1);
    assert_int_equal(match_id(r, "GET", "/s/s/s/s/s/s/s/s"), 1);
}

static void test_invalid_methods(void **state)
{
    kx_router_t *r = *state;
    char err[256];
    static const char *bad[] = { "",
                                 "get",
                                 "Get",
                                 "gET",
                                 "GET ",
                                 " GET",
                                 "GE T",
                                 "GET1",
                                 "M-SEARCH",
                                 "ABCDEFGHIJKLMNOP" /* 16 */,
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ" };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        add_refused(r, bad[i], "/x", err, sizeof err);
        assert_non_null(strstr(err, "method"));
    }
    assert_int_equal(match_id(r, "GET", "/x"), -1);
    /* 15 upper-case letters is the longest accepted method. */
    add_ok(r, "ABCDEFGHIJKLMNO", "/x", 1);
    assert_int_equal(match_id(r, "ABCDEFGHIJKLMNO", "/x"), 1);
    assert_int_equal(match_id(r, "ABCDEFGHIJKLMNOP", "/x"), -1);
}

/* A tiny (or zero) error buffer never overflows. */
static void test_small_err_buffer(void **state)
{
    kx_router_t *r = *state;
    char err[4] = "zzz";
    assert_int_equal(kx_router_add(r, "GET", "bad-route-with-a-long-name", 1, err, sizeof err), KX_EINVAL);
    assert_int_equal(strlen(err), 3);
    char one[1] = { 'q' };
    assert_int_equal(kx_router_add(r, "get", "/x", 1, one, 0), KX_EINVAL);
    assert_int_equal(one[0], 'q');
}

/* keryx's own routes take the rest of a path with *name (last segment only, never empty). */
static void test_rest_segment(void **state)
{
    kx_router_t *r = *state;
    char err[256];
    int id, n;
    kx_route_param_t p[KX_ROUTE_MAX_PARAMS];
    assert_int_equal(kx_router_add(r, "GET", "/swagger/*file", -3, err, sizeof err), KX_OK);
    assert_int_equal(kx_router_add(r, "GET", "/a/*x/b", 1, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "last"));
    assert_int_equal(kx_router_match(r, "GET", 3, "/swagger/css/ui.css", 19, &id, p, &n), KX_OK);
    assert_int_equal(id, -3);
    assert_int_equal(n, 1);
    assert_param(&p[0], "file", "css/ui.css");
    assert_int_equal(kx_router_match(r, "GET", 3, "/swagger/", 9, &id, p, &n), KX_ENOTFOUND);
    assert_int_equal(kx_router_match(r, "GET", 3, "/swagger", 8, &id, p, &n), KX_ENOTFOUND);
}

/* Actions register relative to the API prefix; errors name the route the app wrote. */
static void test_add_under_prefix(void **state)
{
    kx_router_t *r = *state;
    char err[256];
    int id, n;
    kx_route_param_t p[KX_ROUTE_MAX_PARAMS];
    assert_int_equal(kx_router_add_under(r, "/api", "GET", "/user/:id", 4, err, sizeof err), KX_OK);
    assert_int_equal(kx_router_add_under(r, "/", "GET", "/root", 5, err, sizeof err), KX_OK);
    assert_int_equal(kx_router_add_under(r, "/api", "GET", "/user/:id", 6, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "duplicate route GET /user/:id"));
    assert_int_equal(kx_router_add_under(r, "/api", "GET", "user", 6, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "\"user\""));
    assert_int_equal(kx_router_match(r, "GET", 3, "/api/user/9", 11, &id, p, &n), KX_OK);
    assert_int_equal(id, 4);
    assert_param(&p[0], "id", "9");
    assert_int_equal(kx_router_match(r, "GET", 3, "/user/9", 7, &id, p, &n), KX_ENOTFOUND);
    assert_int_equal(kx_router_match(r, "GET", 3, "/root", 5, &id, p, &n), KX_OK);
    assert_int_equal(id, 5);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_router, teardown_router)
    const struct CMUnitTest tests[] = {
        T(test_static_routes),
        T(test_rest_segment),
        T(test_add_under_prefix),
        T(test_static_trailing_slash_and_extra),
        T(test_root_route),
        T(test_root_not_matched_by_param_route),
        T(test_head_matches_get),
        T(test_method_mismatch),
        T(test_method_counted),
        T(test_dynamic_single_param),
        T(test_dynamic_empty_segment_and_slashes),
        T(test_dynamic_two_params),
        T(test_encoded_slash_not_split),
        T(test_nul_byte_in_path),
        T(test_static_beats_dynamic_any_order),
        T(test_static_other_method_does_not_shadow),
        T(test_first_dynamic_wins),
        T(test_params_after_partial_failure),
        T(test_many_routes),
        T(test_sixteen_params),
        T(test_seventeen_params_no_overflow),
        T(test_seventeen_params_refused),
        T(test_ten_thousand_routes),
        T(test_literal_branch_falls_back_to_param),
        T(test_same_shape_refused),
        T(test_huge_path),
        T(test_duplicate_refused),
        T(test_invalid_routes),
        T(test_too_many_segments),
        T(test_invalid_methods),
        T(test_small_err_buffer),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
