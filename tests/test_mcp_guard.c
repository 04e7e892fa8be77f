/* test_mcp_guard.c — mcp_guard.c: origins normalised or refused (schemes, hosts, ports, paths,
 * "null", capacity), Host values and loopback names, the bearer of an Authorization value in
 * every malformed shape, and the supported protocol versions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mcp_guard.h"
#include <string.h>

static const char *norm(const char *in)
{
    static char out[KX_MCP_ORIGIN_MAX + 1];
    return kx_mcp_origin_norm(in, strlen(in), out, sizeof out) == KX_OK ? out : NULL;
}

static void test_origin(void **state)
{
    (void)state;
    assert_string_equal(norm("https://Auth.Example.com"), "https://auth.example.com");
    assert_string_equal(norm("HTTPS://auth.example.com:443"), "https://auth.example.com");
    assert_string_equal(norm("https://auth.example.com:8443"), "https://auth.example.com:8443");
    assert_string_equal(norm("http://localhost:80"), "http://localhost");
    assert_string_equal(norm("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
    assert_string_equal(norm("http://[::1]:9000"), "http://[::1]:9000");
    static const char *const bad[] = {
        "",
        "null",
        "file://x",
        "ws://a.example",
        "https://",
        "https://a.example/",
        "https://a.example/path",
        "https://user@a.example",
        "https://a.example:",
        "https://a.example:0",
        "https://a.example:65536",
        "https://a.example:123456",
        "https://a example",
        "https://a.example\r\n",
        "https://[::1",
        "https://[]",
        "https://a.example?x",
        "https://a.example#f",
        " https://a.example",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (norm(bad[i])) fail_msg("accepted %s", bad[i]);
    char small[10];
    assert_int_equal(kx_mcp_origin_norm("https://a.example", 17, small, sizeof small), KX_EINVAL);
    /* A NUL inside the value is a byte outside the grammar, never the end of it. */
    char out[KX_MCP_ORIGIN_MAX + 1];
    assert_int_equal(kx_mcp_origin_norm("https://a\0.evil", 15, out, sizeof out), KX_EINVAL);
}

static void host(const char *in, const char *want, unsigned port, bool loopback)
{
    kx_mcp_host_t h;
    if (kx_mcp_host_parse(in, strlen(in), &h) != KX_OK) fail_msg("refused %s", in);
    assert_string_equal(h.host, want);
    assert_int_equal(h.port, port);
    assert_int_equal(h.loopback, loopback);
}

static void test_host(void **state)
{
    (void)state;
    host("Auth.Example.com", "auth.example.com", 0, false);
    host("auth.example.com:443", "auth.example.com", 443, false);
    host("localhost:3000", "localhost", 3000, true);
    host("app.localhost", "app.localhost", 0, true);
    host("127.0.0.1:8080", "127.0.0.1", 8080, true);
    host("127.255.0.9", "127.255.0.9", 0, true);
    host("[::1]:9000", "[::1]", 9000, true);
    host("127.0.0.1.evil.example", "127.0.0.1.evil.example", 0, false);
    host("localhost.evil.example", "localhost.evil.example", 0, false);
    host("128.0.0.1", "128.0.0.1", 0, false);
    host("127.0.0.256", "127.0.0.256", 0, false);
    static const char *const bad[] = {
        "",    ":80",        "a.example:",     "a.example:x", "a.example:99999",
        "a b", "a.example/", "user@a.example", "[::1",        "a.example:80:80"
    };
    kx_mcp_host_t h;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kx_mcp_host_parse(bad[i], strlen(bad[i]), &h) == KX_OK) fail_msg("accepted %s", bad[i]);
}

static const char *bearer(const char *v)
{
    static char out[KX_MCP_TOKEN_MAX + 1];
    size_t off, n;
    if (kx_mcp_bearer(v, strlen(v), &off, &n) != KX_OK) return NULL;
    memcpy(out, v + off, n);
    out[n] = '\0';
    return out;
}

static void test_bearer(void **state)
{
    (void)state;
    assert_string_equal(bearer("Bearer abc-DEF_1.2~3"), "abc-DEF_1.2~3");
    assert_string_equal(bearer("bearer   abc=="), "abc==");
    assert_string_equal(bearer("BEARER a+b/c  "), "a+b/c");
    static const char *const bad[] = { "",           "Bearer",     "Bearer ",       "Basic abc",
                                       "Bearerabc",  "Bearer a b", "Bearer a=b",    "Bearer =",
                                       "Bearer a\t", "Token abc",  "Bearer abc\r\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (bearer(bad[i])) fail_msg("accepted %s", bad[i]);
    char long_value[7 + KX_MCP_TOKEN_MAX + 2];
    memcpy(long_value, "Bearer ", 7);
    memset(long_value + 7, 'a', KX_MCP_TOKEN_MAX + 1);
    long_value[sizeof long_value - 1] = '\0';
    assert_null(bearer(long_value));
    long_value[7 + KX_MCP_TOKEN_MAX] = '\0';
    assert_non_null(bearer(long_value));
}

static void test_versions(void **state)
{
    (void)state;
    assert_true(kx_mcp_version_supported("2025-03-26", 10));
    assert_true(kx_mcp_version_supported("2025-06-18", 10));
    assert_true(kx_mcp_version_supported("2025-11-25", 10));
    assert_false(kx_mcp_version_supported("2024-11-05", 10));
    assert_false(kx_mcp_version_supported("2025-06-18x", 11));
    assert_false(kx_mcp_version_supported("2025-06-1", 9));
    assert_false(kx_mcp_version_supported("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
