/* test_redis_url.c — REDIS_URL parsing (kx_redis_parse_url): every accepted form and a list
 * of malformed ones, each refused with a message that names REDIS_URL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "redis.h"

static kx_redis_url_t parse_ok(const char *url)
{
    kx_redis_url_t u;
    char err[512] = "";
    assert_int_equal(kx_redis_parse_url(url, &u, err, sizeof err), KX_OK);
    return u;
}

static void test_defaults(void **state)
{
    (void)state;
    kx_redis_url_t u = parse_ok("redis://127.0.0.1");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_string_equal(u.unix_path, "");
}

static void test_full_form(void **state)
{
    (void)state;
    kx_redis_url_t u = parse_ok("redis://alice:s%40cret%3A1@cache.internal:6380/5");
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "s@cret:1"); /* percent-decoded */
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 5);
}

static void test_password_only(void **state)
{
    (void)state;
    kx_redis_url_t u = parse_ok("redis://:pw@localhost/2");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "pw");
    u = parse_ok("redis://pw2@localhost");
    assert_string_equal(u.password, "pw2"); /* the short form: a lone userinfo is the password */
    assert_int_equal(u.db, 0);
}

static void test_ipv6(void **state)
{
    (void)state;
    kx_redis_url_t u = parse_ok("redis://[::1]:7000/1");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 1);
    u = parse_ok("redis://[::1]");
    assert_int_equal(u.port, 6379);
}

static void test_unix_socket(void **state)
{
    (void)state;
    kx_redis_url_t u = parse_ok("unix:///run/redis/redis.sock?db=3");
    assert_string_equal(u.unix_path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 3);
    u = parse_ok("unix://:pw@/tmp/r.sock");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.unix_path, "/tmp/r.sock");
}

static void test_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "localhost:6379",
        "http://localhost",
        "rediss://localhost",
        "redis://",
        "redis://:6379",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:12x",
        "redis://host:",
        "redis://host:123456",
        "redis://host/abc",
        "redis://host/-1",
        "redis://host/1x",
        "redis://[::1",
        "redis://[::1]x",
        "redis://u:%zz@host",
        "redis://u:%4@host",
        "unix://",
        "unix://relative.sock",
        "unix:///s.sock?db=x",
        "unix:///s.sock?foo=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kx_redis_url_t u;
        char err[512] = "";
        if (kx_redis_parse_url(bad[i], &u, err, sizeof err) != KX_EINVAL)
            fail_msg("accepted a malformed REDIS_URL: \"%s\"", bad[i]);
        assert_non_null(strstr(err, "REDIS_URL"));
    }
}

static void test_never_overflows(void **state)
{
    (void)state;
    char url[2048];
    memset(url, 'h', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    memcpy(url, "redis://", 8);
    kx_redis_url_t u;
    char err[512];
    assert_int_equal(kx_redis_parse_url(url, &u, err, sizeof err), KX_EINVAL); /* host too long */
    memcpy(url, "unix:///", 8);
    assert_int_equal(kx_redis_parse_url(url, &u, err, sizeof err), KX_EINVAL); /* path too long */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_full_form),
        cmocka_unit_test(test_password_only),   cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_unix_socket),     cmocka_unit_test(test_refused),
        cmocka_unit_test(test_never_overflows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
