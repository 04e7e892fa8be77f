/* test_cors.c — the CORS decision: "*" grants any origin without credentials; a list echoes
 * an exact match with credentials and Vary: Origin; look-alike origins (prefix, suffix, case,
 * scheme, port, "null") never match; Allow-Methods/-Headers are always present. Configs are
 * built the way main.c builds them: defaults → kx_config_set → kx_config_finish. The MCP route's
 * rule: only APPLICATION_URL's origin, MCP_ALLOWED_ORIGINS and explicit web entries, echoed
 * without credentials, with the MCP headers; anything else gets no Access-Control-* at all. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cors.h"

#include <stdio.h>
#include <stdlib.h>

static const kx_config_desc_t *desc(const char *env)
{
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++)
        if (strcmp(d->env, env) == 0) return d;
    fail_msg("no config descriptor for %s", env);
    return NULL;
}

static void cfg_set(kx_config_t *c, const char *env, const char *value)
{
    char err[512] = "";
    if (kx_config_set(c, desc(env), value, env, err, sizeof err) != KX_OK)
        fail_msg("set %s=%s: %s", env, value, err);
}

/* A finished config with the given origins (and optionally methods/headers). */
static void make_cfg(kx_config_t *c, const char *origins, const char *methods, const char *headers)
{
    kx_config_defaults(c, "development");
    cfg_set(c, "WEB_SERVER_ALLOWED_ORIGINS", origins);
    if (methods) cfg_set(c, "WEB_SERVER_ALLOWED_METHODS", methods);
    if (headers) cfg_set(c, "WEB_SERVER_ALLOWED_HEADERS", headers);
    char err[512] = "";
    if (kx_config_finish(c, err, sizeof err) != KX_OK) fail_msg("finish: %s", err);
}

/* Runs kx_cors_append for a NUL-terminated origin (NULL = absent) into a fresh buffer. It
 * runs twice, with *vary preset false then true, so a function that forgets to set it fails. */
static void cors(const kx_config_t *c, const char *origin, kx_buf_t *out, bool *vary)
{
    size_t olen = origin ? strlen(origin) : 0;
    bool first = false;
    kx_buf_reset(out);
    kx_cors_append(c, origin, olen, out, &first);
    char *copy = kx_xstrdup(out->data);
    kx_buf_reset(out);
    *vary = true;
    kx_cors_append(c, origin, olen, out, vary);
    assert_int_equal(first, *vary);
    assert_string_equal(copy, out->data);
    free(copy);
}

/* Number of occurrences of needle in haystack. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* Every line ends in CRLF, there are no bare CR/LF, and the block is non-empty. */
static void assert_well_formed(const kx_buf_t *out)
{
    assert_true(out->len >= 2);
    assert_int_equal(strlen(out->data), out->len);
    assert_memory_equal(out->data + out->len - 2, "\r\n", 2);
    for (size_t i = 0; i < out->len; i++) {
        if (out->data[i] == '\r') assert_int_equal(out->data[i + 1], '\n');
        if (out->data[i] == '\n') assert_true(i > 0 && out->data[i - 1] == '\r');
    }
}

static void assert_methods_headers(const kx_buf_t *out, const char *methods, const char *headers)
{
    char line[512];
    snprintf(line, sizeof line, "Access-Control-Allow-Methods: %s\r\n", methods);
    assert_int_equal(count(out->data, line), 1);
    snprintf(line, sizeof line, "Access-Control-Allow-Headers: %s\r\n", headers);
    assert_int_equal(count(out->data, line), 1);
    assert_int_equal(count(out->data, "Access-Control-Allow-Methods:"), 1);
    assert_int_equal(count(out->data, "Access-Control-Allow-Headers:"), 1);
}

static void assert_no_grant(const kx_buf_t *out)
{
    assert_null(strstr(out->data, "Access-Control-Allow-Origin"));
    assert_null(strstr(out->data, "Access-Control-Allow-Credentials"));
}

#define DEF_METHODS "HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS"
#define DEF_HEADERS "Content-Type"

/* ---- "*" ---------------------------------------------------------------------------------- */

static void test_star_any_origin(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "*", NULL, NULL);
    assert_true(c.origins_any);
    kx_buf_t out = KX_BUF_INIT;
    bool vary;
    static const char *origins[] = { NULL, "https://a.example", "null",
                                     "",   "http://evil.com",   "https://x.example:8443" };
    for (size_t i = 0; i < KX_ARRAY_LEN(origins); i++) {
        cors(&c, origins[i], &out, &vary);
        assert_well_formed(&out);
        assert_int_equal(count(out.data, "Access-Control-Allow-Origin: *\r\n"), 1);
        assert_int_equal(count(out.data, "Access-Control-Allow-Origin"), 1);
        /* Never echoes, never grants credentials, and the answer does not vary. */
        if (origins[i] && origins[i][0]) assert_null(strstr(out.data, origins[i]));
        assert_null(strstr(out.data, "Access-Control-Allow-Credentials"));
        assert_false(vary);
        assert_methods_headers(&out, DEF_METHODS, DEF_HEADERS);
        assert_true(
            kx_cors_origin_allowed(&c, origins[i] ? origins[i] : "", origins[i] ? strlen(origins[i]) : 0));
    }
    kx_buf_free(&out);
    kx_config_free(&c);
}

/* "*" with surrounding spaces is still "*". */
static void test_star_with_spaces(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "  * ", NULL, NULL);
    assert_true(c.origins_any);
    kx_buf_t out = KX_BUF_INIT;
    bool vary;
    cors(&c, "https://a.example", &out, &vary);
    assert_int_equal(count(out.data, "Access-Control-Allow-Origin: *\r\n"), 1);
    assert_null(strstr(out.data, "Credentials"));
    kx_buf_free(&out);
    kx_config_free(&c);
}

/* ---- a list ------------------------------------------------------------------------------- */

static void test_list_match_echoes(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "https://a.example, http://b.example:8080,https://c.example", NULL, NULL);
    assert_false(c.origins_any);
    assert_int_equal(c.n_origins, 3);
    kx_buf_t out = KX_BUF_INIT;
    bool vary;
    static const char *ok[] = { "https://a.example", "http://b.example:8080", "https://c.example" };
    for (size_t i = 0; i < KX_ARRAY_LEN(ok); i++) {
        cors(&c, ok[i], &out, &vary);
        assert_well_formed(&out);
        char line[256];
        snprintf(line, sizeof line, "Access-Control-Allow-Origin: %s\r\n", ok[i]);
        assert_int_equal(count(out.data, line), 1);
        assert_int_equal(count(out.data, "Access-Control-Allow-Origin"), 1);
        assert_int_equal(count(out.data, "Access-Control-Allow-Credentials: true\r\n"), 1);
        assert_null(strstr(out.data, "Access-Control-Allow-Origin: *"));
        assert_true(vary);
        assert_methods_headers(&out, DEF_METHODS, DEF_HEADERS);
        assert_true(kx_cors_origin_allowed(&c, ok[i], strlen(ok[i])));
    }
    kx_buf_free(&out);
    kx_config_free(&c);
}

static void test_list_absent_origin(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "https://a.example", NULL, NULL);
    kx_buf_t out = KX_BUF_INIT;
    bool vary;
    cors(&c, NULL, &out, &vary);
    assert_well_formed(&out);
    assert_no_grant(&out);
    assert_true(vary);
    assert_methods_headers(&out, DEF_METHODS, DEF_HEADERS);
    kx_buf_free(&out);
    kx_config_free(&c);
}

/* Look-alikes of an allowed origin: none may be granted. */
static void test_list_lookalikes_never_match(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "https://a.example,http://localhost:3000", NULL, NULL);
    static const char *bad[] = {
        "",
        "https://a.example.evil.com", /* suffix added */
        "https://a.exampl",           /* prefix of the allowed origin */
        "https://a.example/",         /* trailing slash */
        "https://a.example/path",
        "https://a.example:443",  /* explicit default port is a different string */
        "https://a.example:8443", /* other port */
        "http://a.example",       /* other scheme */
        "wss://a.example",
        "HTTPS://A.EXAMPLE", /* case */
        "https://A.example",
        "null",
        "*",
        " https://a.example",
        "https://a.example ",
        "https://a.example\r\nX-Evil: 1",
        "https://evil.com?https://a.example",
        "https://a.example@evil.com",
        "https://evil.a.example",
        "xhttps://a.example",
        "http://localhost:30000",
        "http://localhost:300",
        "http://localhost",
        "https://a.example,http://localhost:3000", /* the whole configured list */
    };
    kx_buf_t out = KX_BUF_INIT;
    bool vary;
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        cors(&c, bad[i], &out, &vary);
        assert_well_formed(&out);
        if (strstr(out.data, "Access-Control-Allow-Origin")) fail_msg("origin \"%s\" was granted", bad[i]);
        assert_no_grant(&out);
        assert_true(vary);
        assert_methods_headers(&out, DEF_METHODS, DEF_HEADERS);
        assert_false(kx_cors_origin_allowed(&c, bad[i], strlen(bad[i])));
    }
    kx_buf_free(&out);
    kx_config_free(&c);
}

/* The origin is a counted string: a matching prefix of a longer buffer matches exactly as
 * long as len says, and a length one short does not. */
static void test_counted_origin(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "https://a.example", NULL, NULL);
    const char *raw = "https://a.example.evil.com";
    assert_true(kx_cors_origin_allowed(&c, raw, 17));
    assert_false(kx_cors_origin_allowed(&c, raw, 16));
    assert_false(kx_cors_origin_allowed(&c, raw, 18));
    kx_buf_t out = KX_BUF_INIT;
    bool vary = false;
    kx_cors_append(&c, raw, 17, &out, &vary);
    /* Only the counted bytes are echoed. */
    assert_int_equal(count(out.data, "Access-Control-Allow-Origin: https://a.example\r\n"), 1);
    assert_null(strstr(out.data, "evil"));
    assert_true(vary);
    kx_buf_free(&out);
    kx_config_free(&c);
}

/* Configured methods/headers are sent verbatim in both modes and for every outcome. */
static void test_configured_methods_headers(void **state)
{
    (void)state;
    static const char *modes[] = { "*", "https://a.example" };
    for (size_t m = 0; m < KX_ARRAY_LEN(modes); m++) {
        kx_config_t c;
        make_cfg(&c, modes[m], "GET, POST", "Content-Type, Authorization, X-Custom");
        kx_buf_t out = KX_BUF_INIT;
        bool vary;
        const char *origins[] = { NULL, "https://a.example", "https://b.example" };
        for (size_t i = 0; i < KX_ARRAY_LEN(origins); i++) {
            cors(&c, origins[i], &out, &vary);
            assert_well_formed(&out);
            assert_methods_headers(&out, "GET, POST", "Content-Type, Authorization, X-Custom");
            assert_null(strstr(out.data, "DELETE"));
        }
        kx_buf_free(&out);
        kx_config_free(&c);
    }
}

/* Output is appended: what the buffer held before is kept. */
static void test_appends_to_existing(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "https://a.example", NULL, NULL);
    kx_buf_t out = KX_BUF_INIT;
    kx_buf_puts(&out, "HTTP/1.1 200 OK\r\n");
    bool vary = true;
    kx_cors_append(&c, "https://a.example", 17, &out, &vary);
    assert_memory_equal(out.data, "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://a.example\r\n",
                        strlen("HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://a.example\r\n"));
    kx_buf_free(&out);
    kx_config_free(&c);
}

/* Reconfiguring from a list to "*" (kx_config_finish run again) drops the old list. */
static void test_refinish_list_to_star(void **state)
{
    (void)state;
    kx_config_t c;
    make_cfg(&c, "https://a.example,https://b.example", NULL, NULL);
    assert_int_equal(c.n_origins, 2);
    cfg_set(&c, "WEB_SERVER_ALLOWED_ORIGINS", "*");
    char err[512];
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    assert_true(c.origins_any);
    assert_int_equal(c.n_origins, 0);
    kx_buf_t out = KX_BUF_INIT;
    bool vary;
    cors(&c, "https://a.example", &out, &vary);
    assert_int_equal(count(out.data, "Access-Control-Allow-Origin: *\r\n"), 1);
    assert_null(strstr(out.data, "Credentials"));
    assert_false(vary);
    kx_buf_free(&out);
    kx_config_free(&c);
}

/* ---- the MCP route's rule ------------------------------------------------------------------ */

/* A finished config with MCP on, the given APPLICATION_URL, MCP_ALLOWED_ORIGINS and web origins,
 * and its MCP rule. */
static void make_mcp(kx_config_t *c, kx_cors_mcp_t *m, const char *app, const char *mcp_origins,
                     const char *web_origins)
{
    kx_config_defaults(c, "development");
    cfg_set(c, "MCP_SERVER_ENABLED", "true");
    if (app) cfg_set(c, "APPLICATION_URL", app);
    if (mcp_origins) cfg_set(c, "MCP_ALLOWED_ORIGINS", mcp_origins);
    cfg_set(c, "WEB_SERVER_ALLOWED_ORIGINS", web_origins);
    char err[512] = "";
    if (kx_config_finish(c, err, sizeof err) != KX_OK) fail_msg("finish: %s", err);
    kx_cors_mcp_init(m, c);
}

static bool mcp_ok(const kx_cors_mcp_t *m, const char *origin)
{
    return kx_cors_mcp_allowed(m, origin, origin ? strlen(origin) : 0);
}

/* Runs kx_cors_mcp_append with *vary preset false, so a forgotten Vary fails. */
static void mcp_cors(const kx_cors_mcp_t *m, const char *origin, bool preflight, kx_buf_t *out)
{
    bool vary = false;
    kx_buf_reset(out);
    kx_cors_mcp_append(m, origin, origin ? strlen(origin) : 0, preflight, out, &vary);
    assert_true(vary);
    if (!out->data) kx_buf_puts(out, ""); /* strstr-able when nothing was appended */
}

/* APPLICATION_URL's origin (its path dropped), MCP_ALLOWED_ORIGINS and the explicit web entries
 * are allowed, compared after normalisation; the web "*" counts for nothing. */
static void test_mcp_allow_list(void **state)
{
    (void)state;
    kx_config_t c;
    kx_cors_mcp_t m;
    make_mcp(&c, &m, "https://App.example:443/base/path", "https://tool.example, http://localhost:5173",
             "https://web.example");
    assert_true(mcp_ok(&m, "https://app.example"));
    assert_true(mcp_ok(&m, "HTTPS://APP.EXAMPLE:443"));
    assert_true(mcp_ok(&m, "https://tool.example"));
    assert_true(mcp_ok(&m, "http://localhost:5173"));
    assert_true(mcp_ok(&m, "https://web.example"));
    assert_false(mcp_ok(&m, NULL));
    assert_false(mcp_ok(&m, "null"));
    assert_false(mcp_ok(&m, "http://app.example"));
    assert_false(mcp_ok(&m, "https://app.example:8443"));
    assert_false(mcp_ok(&m, "https://app.example.evil"));
    assert_false(mcp_ok(&m, "https://evil.example"));
    assert_false(mcp_ok(&m, "http://localhost:5174"));
    assert_false(mcp_ok(&m, "https://tool.example/"));
    kx_cors_mcp_free(&m);
    kx_config_free(&c);

    make_mcp(&c, &m, "http://localhost:8080", NULL, "*");
    assert_true(mcp_ok(&m, "http://localhost:8080"));
    assert_false(mcp_ok(&m, "https://evil.example"));
    assert_int_equal(m.n, 1);
    kx_cors_mcp_free(&m);
    kx_config_free(&c);
}

static bool host_ok(const kx_cors_mcp_t *m, const char *host)
{
    return kx_cors_mcp_host_allowed(m, host, strlen(host));
}

/* Host names this server as APPLICATION_URL does: its host, its port or none (the scheme's
 * default); a loopback APPLICATION_URL takes any loopback name on any port, nothing else. */
static void test_mcp_host(void **state)
{
    (void)state;
    kx_config_t c;
    kx_cors_mcp_t m;
    make_mcp(&c, &m, "https://App.example/base", NULL, "*");
    assert_true(host_ok(&m, "app.example"));
    assert_true(host_ok(&m, "APP.EXAMPLE:443"));
    assert_false(host_ok(&m, "app.example:8443"));
    assert_false(host_ok(&m, "app.example.evil"));
    assert_false(host_ok(&m, "localhost"));
    assert_false(host_ok(&m, "app.example:443\r\nX: y"));
    assert_false(host_ok(&m, ""));
    kx_cors_mcp_free(&m);
    kx_config_free(&c);

    make_mcp(&c, &m, "http://127.0.0.1:8080", NULL, "*");
    assert_true(host_ok(&m, "127.0.0.1:8080"));
    assert_true(host_ok(&m, "localhost:9999"));
    assert_true(host_ok(&m, "[::1]"));
    assert_false(host_ok(&m, "evil.example"));
    assert_false(host_ok(&m, "127.0.0.1.evil.example"));
    kx_cors_mcp_free(&m);
    kx_config_free(&c);
}

/* The route is MCP_SERVER_ROUTE exactly, and nothing is the route with MCP off. */
static void test_mcp_route(void **state)
{
    (void)state;
    kx_config_t c;
    kx_cors_mcp_t m;
    make_mcp(&c, &m, NULL, NULL, "*");
    assert_true(kx_cors_mcp_route(&m, "/mcp", 4));
    assert_false(kx_cors_mcp_route(&m, "/mcp/", 5));
    assert_false(kx_cors_mcp_route(&m, "/mc", 3));
    assert_false(kx_cors_mcp_route(&m, "/api/mcp", 8));
    assert_false(kx_cors_mcp_route(&m, NULL, 0));
    kx_cors_mcp_free(&m);
    cfg_set(&c, "MCP_SERVER_ENABLED", "false");
    kx_cors_mcp_init(&m, &c);
    assert_false(kx_cors_mcp_route(&m, "/mcp", 4));
    assert_int_equal(m.n, 0);
    kx_cors_mcp_free(&m);
    kx_config_free(&c);
}

/* Preflight from an allowed origin: the origin echoed, the MCP methods and headers, a max age,
 * never credentials nor a "*". A response: the origin and the exposed headers only. */
static void test_mcp_grant(void **state)
{
    (void)state;
    kx_config_t c;
    kx_cors_mcp_t m;
    make_mcp(&c, &m, NULL, "https://tool.example", "*");
    kx_buf_t out = KX_BUF_INIT;
    mcp_cors(&m, "https://tool.example", true, &out);
    assert_well_formed(&out);
    assert_string_equal(out.data,
                        "Access-Control-Allow-Origin: https://tool.example\r\n"
                        "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
                        "Access-Control-Allow-Headers: Authorization, Content-Type, Accept, Mcp-Session-Id, "
                        "MCP-Protocol-Version, Last-Event-ID\r\n"
                        "Access-Control-Max-Age: 600\r\n");
    mcp_cors(&m, "https://tool.example", false, &out);
    assert_string_equal(out.data, "Access-Control-Allow-Origin: https://tool.example\r\n"
                                  "Access-Control-Expose-Headers: Mcp-Session-Id, WWW-Authenticate\r\n");
    kx_buf_free(&out);
    kx_cors_mcp_free(&m);
    kx_config_free(&c);
}

/* Any other origin, or none, gets no Access-Control-* line at all — not the web "*". */
static void test_mcp_refusal(void **state)
{
    (void)state;
    kx_config_t c;
    kx_cors_mcp_t m;
    make_mcp(&c, &m, NULL, "https://tool.example", "*");
    kx_buf_t out = KX_BUF_INIT;
    const char *bad[] = { "https://evil.example", "null", "https://tool.example\r\nX: y", "", NULL };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        for (int pre = 0; pre < 2; pre++) {
            mcp_cors(&m, bad[i], pre, &out);
            assert_int_equal(out.len, 0);
        }
    }
    kx_buf_free(&out);
    kx_cors_mcp_free(&m);
    kx_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_star_any_origin),
        cmocka_unit_test(test_star_with_spaces),
        cmocka_unit_test(test_list_match_echoes),
        cmocka_unit_test(test_list_absent_origin),
        cmocka_unit_test(test_list_lookalikes_never_match),
        cmocka_unit_test(test_counted_origin),
        cmocka_unit_test(test_configured_methods_headers),
        cmocka_unit_test(test_appends_to_existing),
        cmocka_unit_test(test_refinish_list_to_star),
        cmocka_unit_test(test_mcp_allow_list),
        cmocka_unit_test(test_mcp_host),
        cmocka_unit_test(test_mcp_route),
        cmocka_unit_test(test_mcp_grant),
        cmocka_unit_test(test_mcp_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
